/* SPDX-License-Identifier: MIT */
/*
 * The bridge thread: one io_uring for everything it waits on. In flight at any time: a
 * read of the eventfd (stop), a 100 ms housekeeping timeout, a read of an inotify
 * descriptor on the bus directory (topics come and go), per connection a connect or a
 * recv and a send, per idle topic a futex wait on its wake word, and the listener's
 * accept. Each turn handles every completion that is ready, then lets every mirror read
 * its topics and format what they hold into its connection's buffer, then submits all the
 * SQEs that produced with one io_uring_enter (which also waits for the next completion).
 *
 * A mirror's topics are read with durable readers (bus/internal.h): the group
 * "bridge-NAME" of each topic is moved forward only when the peer confirmed, and on every
 * reconnect the readers go back to it, so what was sent and not confirmed is sent again.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "daemon/bridge/internal.h"
#include "daemon/shmbusd.h"
#include "ring/wait.h"

#define RING_ENTRIES 512
#define TICK_MS 100
#define IDLE_POLL_MS 2	   /* timed poll of idle topics without futex waits */
#define SCAN_EVERY_MS 5000 /* rescan topics even when inotify says nothing */
#define OUT_MAX (1u << 20) /* bytes formatted ahead of the socket, per mirror */
#define READ_BURST 64	   /* messages read from one topic before the next */

#ifndef IORING_OP_FUTEX_WAIT
/* Linux 6.7; liburing 2.3 has neither the opcode nor a helper: the SQE is filled by hand. */
#define IORING_OP_FUTEX_WAIT 51
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#endif

uint64_t br_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the ring --------------------------------------------------------------------------- */

static int br_submit(struct bridge *b, unsigned wait)
{
	unsigned ready = io_uring_sq_ready(&b->ring);
	int n = wait ? io_uring_submit_and_wait(&b->ring, wait) : io_uring_submit(&b->ring);
	if (n >= 0) {
		b->enters++;
		b->sqes += ready;
	}
	return n;
}

/*
 * Submit and wait for want completions or BATCH_WAIT_NS, whichever comes first: under
 * load (several sends in flight) one enter then hands over every SQE this turn made and
 * collects several completions, instead of an enter per completion.
 */
#define BATCH_WAIT_NS 1000000 /* <= 1 ms more latency, only while completions are due */

static int br_submit_batch(struct bridge *b, unsigned want)
{
	unsigned ready = io_uring_sq_ready(&b->ring);
	struct __kernel_timespec ts = { 0, BATCH_WAIT_NS };
	struct io_uring_cqe *cqe;
	int n = io_uring_submit_and_wait_timeout(&b->ring, &cqe, want, &ts, NULL);
	if (n >= 0 || n == -ETIME) {
		b->enters++;
		b->sqes += ready;
	}
	return n == -ETIME ? 0 : n;
}

struct io_uring_sqe *br_sqe(struct bridge *b)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&b->ring))) {
		/* The SQ ring is full: hand it to the kernel. */
		if (br_submit(b, 0) < 0)
			usleep(100);
	}
	return sqe;
}

void br_arm(struct bridge *b, struct io_uring_sqe *sqe, struct br_op *op)
{
	io_uring_sqe_set_data(sqe, op);
	b->inflight++;
	if (op->kind == BOP_SEND)
		b->sends++;
}

void br_sq_room(struct bridge *b, unsigned n)
{
	if (io_uring_sq_space_left(&b->ring) < n)
		br_submit(b, 0);
}

/* ---- events ---------------------------------------------------------------------------- */

void br_event(struct bridge *b, const char *name, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	size_t n = event_vline(msg, sizeof(msg), name, fmt, ap);
	va_end(ap);
	/* Overwrite policy: never waits. */
	if (b->log)
		shmbus_publish(b->log, msg, n, 1);
}

/* ---- waiting on topics ------------------------------------------------------------------ */

static struct shmbus_topic_hdr *sub_hdr(shmbus_sub_t *sub)
{
	return ((struct shmbus_sub *)sub)->seg.hdr;
}

static void arm_idle(struct bridge *b)
{
	if (b->idle_armed)
		return;
	b->idle_ts.tv_sec = 0;
	b->idle_ts.tv_nsec = IDLE_POLL_MS * 1000000ll;
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_timeout(sqe, &b->idle_ts, 0, 0);
	br_arm(b, sqe, &b->idle_op);
	b->idle_armed = 1;
}

/*
 * The reader's half of the sleep handshake (docs/algorithm.md, "Waking readers"): count
 * ourselves in sleepers (seq_cst), make the publishers' skipped fences happen
 * (membarrier), read the wake word, check the topic once more, and only then have the
 * kernel wait for the word to change. A publisher that commits after our check sees the
 * sleeper and bumps the word, so the wait returns at once or is woken.
 */
int br_wait_arm(struct bridge *b, struct bwait *w)
{
	if (w->armed)
		return 1;
	if (!b->futex_ok) {
		if (shmbus_sub_ready(w->sub))
			return 0;
		arm_idle(b);
		return 1;
	}
	struct shmbus_topic_hdr *h = sub_hdr(w->sub);
	if (!w->counted) {
		__atomic_fetch_add(&h->sleepers, 1, __ATOMIC_SEQ_CST);
		w->counted = 1;
		shmbus_membarrier_global();
	}
	uint32_t val = __atomic_load_n(&h->wake, __ATOMIC_ACQUIRE);
	if (shmbus_sub_ready(w->sub)) {
		__atomic_fetch_sub(&h->sleepers, 1, __ATOMIC_SEQ_CST);
		w->counted = 0;
		return 0;
	}
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32, &h->wake, 0, val);
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
	br_arm(b, sqe, &w->op);
	w->armed = 1;
	return 1;
}

void br_wait_cancel(struct bridge *b, struct bwait *w)
{
	if (!w->armed)
		return;
	static struct br_op ignore = { BOP_CANCEL, NULL };
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_cancel(sqe, &w->op, 0);
	br_arm(b, sqe, &ignore);
}

static void wait_done(struct bwait *w, int res)
{
	(void)res; /* 0 woken, -EAGAIN the word had changed, -ECANCELED: all mean "look" */
	w->armed = 0;
	if (w->counted) {
		__atomic_fetch_sub(&sub_hdr(w->sub)->sleepers, 1, __ATOMIC_SEQ_CST);
		w->counted = 0;
	}
	w->woken = 1;
	if (w->fn)
		w->fn(w);
}

void br_wait_forget(struct bwait *w)
{
	if (w->counted) {
		__atomic_fetch_sub(&sub_hdr(w->sub)->sleepers, 1, __ATOMIC_SEQ_CST);
		w->counted = 0;
	}
}

/* ---- mirrors: what both kinds share ------------------------------------------------------ */

int pq_push(struct mirror *m, const struct pend *p)
{
	if (m->pq_len == m->pq_cap) {
		size_t cap = m->pq_cap ? m->pq_cap * 2 : 256;
		struct pend *n = malloc(cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		for (size_t i = 0; i < m->pq_len; i++)
			n[i] = m->pq[(m->pq_head + i) % m->pq_cap];
		free(m->pq);
		m->pq = n;
		m->pq_cap = cap;
		m->pq_head = 0;
	}
	if (!m->pq_len)
		m->last_progress_ms = m->b->now_ms;
	m->pq[(m->pq_head + m->pq_len) % m->pq_cap] = *p;
	m->pq_len++;
	if (p->t)
		p->t->inflight++;
	return 0;
}

struct pend *pq_front(struct mirror *m)
{
	return m->pq_len ? &m->pq[m->pq_head] : NULL;
}

void pq_pop(struct mirror *m)
{
	struct pend *p = &m->pq[m->pq_head];
	if (p->t)
		p->t->inflight--;
	m->pq_head = (m->pq_head + 1) % m->pq_cap;
	m->pq_len--;
	m->last_progress_ms = m->b->now_ms;
}

void mirror_confirm(struct mtopic *t, uint64_t end, uint64_t seq)
{
	if (!t->conf_dirty || end > t->conf_pos) {
		t->conf_pos = end;
		t->conf_seq = seq;
	}
	t->conf_dirty = 1;
}

void mirror_commit(struct mirror *m)
{
	for (struct mtopic *t = m->topics; t; t = t->next) {
		if (!t->conf_dirty)
			continue;
		t->conf_dirty = 0;
		shmbus_sub_commit(t->sub, t->conf_pos, t->conf_seq);
	}
}

/* Read the next message of t (recv with no wait), counting what it tells. */
int mirror_read(struct mirror *m, struct mtopic *t, shmbus_msg_t *msg)
{
	int rc = shmbus_recv(t->sub, msg, 0);
	if (rc == 0) {
		if (msg->lost)
			BR_ADD(m->st, lost, msg->lost);
		return 0;
	}
	if (rc == -EBADMSG) {
		BR_ADD(m->st, errors, 1);
		br_event(m->b, "bridge_error",
			 "\"mirror\":\"%s\",\"topic\":\"%s\",\"error\":\"a "
			 "record failed validation; reading goes on at the tail\"",
			 m->d->name, t->name);
	}
	return rc;
}

static int emit(struct mirror *m, struct mtopic *t, shmbus_msg_t *msg);

static void topic_woken(struct bwait *w);

void mirror_fill(struct mirror *m)
{
	if (!m->up || m->c.state != BC_OPEN)
		return;
	uint32_t window = m->d->window;
	for (int pass = 0; pass < 4; pass++) {
		int progress;
		do {
			progress = 0;
			for (struct mtopic *t = m->topics; t; t = t->next) {
				if (t->state != MT_READY || t->w.armed || t->idle)
					continue;
				for (int k = 0; k < READ_BURST; k++) {
					if (m->pq_len >= window || m->c.out.len >= OUT_MAX)
						goto full;
					shmbus_msg_t msg;
					int rc = mirror_read(m, t, &msg);
					if (rc == -EAGAIN) {
						t->idle = 1;
						break;
					}
					if (rc < 0)
						break;
					progress = 1;
					if (emit(m, t, &msg) < 0 || m->c.state != BC_OPEN)
						return;
				}
			}
		} while (progress);
		/* Everything readable was read: wait on the idle topics. A topic whose
		 * re-check finds something is read in the next pass. */
		int again = 0;
		for (struct mtopic *t = m->topics; t; t = t->next) {
			if (!t->idle || t->state != MT_READY || t->gone)
				continue;
			if (br_wait_arm(m->b, &t->w))
				continue;
			t->idle = 0;
			again = 1;
		}
		if (!again)
			break;
	}
full:
	bconn_kick(&m->c);
}

static void topic_woken(struct bwait *w)
{
	struct mtopic *t = (struct mtopic *)((char *)w - offsetof(struct mtopic, w));
	t->idle = 0;
}

static int emit(struct mirror *m, struct mtopic *t, shmbus_msg_t *msg)
{
	if (m->d->to.scheme == BR_REDIS)
		return redis_emit(m, t, msg);
	return ws_emit(m, t, msg);
}

void mirror_start(struct mirror *m)
{
	if (m->b->stop)
		return;
	bconn_connect(&m->c);
}

int br_link_up(struct br_link *l, struct shmbus_bridge_slot *st)
{
	if (l->announced)
		return -1;
	l->announced = 1;
	if (l->ever_up)
		BR_ADD(st, reconnects, 1);
	l->ever_up = 1;
	l->down_reported = 0;
	BR_SET(st, up, 1);
	BR_SET(st, last_change_ns, shmbus_wall_ns());
	return 0;
}

int br_link_down(struct br_link *l, struct shmbus_bridge_slot *st, struct bconn *c,
		 const struct br_timing *t)
{
	int was_up = l->announced;
	l->announced = 0;
	BR_SET(st, up, 0);
	BR_ADD(st, errors, 1);
	br_slot_error(st, c->why);
	BR_SET(st, last_change_ns, shmbus_wall_ns());
	/* A connection that lived a while starts the backoff again. */
	if (was_up && c->opened_ms && c->b->now_ms - c->opened_ms > t->backoff_max_ms)
		l->backoff_ms = 0;
	l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : t->backoff_min_ms;
	if (l->backoff_ms > t->backoff_max_ms)
		l->backoff_ms = t->backoff_max_ms;
	if (!c->b->stop)
		bconn_timer(c, l->backoff_ms);
	if (!was_up && l->down_reported)
		return 0;
	l->down_reported = 1;
	return 1;
}

/* The connection closed (c->why says why): everything unconfirmed will be sent again. */
void mirror_went_down(struct mirror *m)
{
	/* Confirmed but not yet committed: commit (it was confirmed). */
	mirror_commit(m);
	while (m->pq_len)
		pq_pop(m);
	m->up = 0;
	m->hs_pending = 0;
	for (struct mtopic *t = m->topics; t; t = t->next) {
		t->inflight = 0;
		shmbus_sub_rewind(t->sub);
		/* What was in flight is to be read again: a wait for new messages must not
		 * hold it back until something else is published. */
		br_wait_cancel(m->b, &t->w);
		t->state = (m->d->to.scheme == BR_REDIS && m->d->mode == BR_MODE_STREAM) ?
				   MT_QUERY :
				   MT_READY;
		t->idle = 0;
	}
	if (br_link_down(&m->link, m->st, &m->c, &m->d->timing)) {
		char esc[600], peer[400];
		br_url_show(&m->d->to, peer, sizeof(peer));
		br_event(m->b, "bridge_down",
			 "\"mirror\":\"%s\",\"peer\":\"%s\",\"error\":\"%s\",\"retry_ms\":%llu",
			 m->d->name, json_str(peer + 200, 200, peer),
			 json_str(esc, sizeof(esc), m->c.why),
			 (unsigned long long)m->link.backoff_ms);
	}
}

/* The peer answered the handshake: up, in the counters and on $sys.log. */
void mirror_announce_up(struct mirror *m, const char *detail)
{
	if (br_link_up(&m->link, m->st) < 0)
		return;
	char peer[400], esc[400];
	br_url_show(&m->d->to, peer, sizeof(peer));
	br_event(m->b, "bridge_up", "\"mirror\":\"%s\",\"peer\":\"%s\",%s,\"topics\":%u",
		 m->d->name, json_str(esc, sizeof(esc), peer), detail, m->ntopics);
}

/* ---- topics ------------------------------------------------------------------------------- */

/* The generation of the topic file now under name, or 0 if there is none. */
static uint64_t file_generation(struct bridge *b, const char *name)
{
	char path[PATH_MAX + 256];
	snprintf(path, sizeof(path), "%s/%s.topic", b->bus_dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t g = 0;
	if (pread(fd, &g, sizeof(g), offsetof(struct shmbus_topic_hdr, generation)) != sizeof(g))
		g = 0;
	close(fd);
	return g;
}

static void mtopic_key(struct mirror *m, struct mtopic *t)
{
	size_t o = 0;
	for (const char *p = m->d->key; *p && o + 1 < sizeof(t->key);) {
		if (!strncmp(p, "{topic}", 7)) {
			size_t n = strlen(t->name);
			if (o + n >= sizeof(t->key))
				break;
			memcpy(t->key + o, t->name, n);
			o += n;
			p += 7;
		} else {
			t->key[o++] = *p++;
		}
	}
	t->key[o] = '\0';
	t->keylen = o;
}

static void attach(struct mirror *m, const char *name)
{
	struct bridge *b = m->b;
	for (struct mtopic *t = m->topics; t; t = t->next)
		if (!strcmp(t->name, name) && !t->gone)
			return;
	char group[SHMBUS_GROUP_NAME_MAX + 1];
	snprintf(group, sizeof(group), "bridge-%s", m->d->name);
	shmbus_sub_t *sub;
	int rc = shmbus_sub_open_durable(&sub, b->bus, name, group,
					 m->d->start_latest ? 0 : SHMBUS_SUB_EARLIEST);
	if (rc < 0) {
		/* Said once per scan at most every 10 s, not at every scan. */
		if (!m->scan_fail_ms || b->now_ms - m->scan_fail_ms > 10000) {
			char esc[600];
			m->scan_fail_ms = b->now_ms;
			BR_ADD(m->st, errors, 1);
			br_slot_error(m->st, shmbus_errmsg());
			br_event(b, "bridge_error",
				 "\"mirror\":\"%s\",\"topic\":\"%s\",\"error\":\"%s\"", m->d->name,
				 name, json_str(esc, sizeof(esc), shmbus_errmsg()));
		}
		return;
	}
	struct mtopic *t = calloc(1, sizeof(*t));
	if (!t) {
		shmbus_sub_close(sub);
		return;
	}
	t->m = m;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->sub = sub;
	struct shmbus_sub *s = (struct shmbus_sub *)sub;
	t->gen = s->seg.generation;
	t->created_ms = s->seg.hdr->created_ns / 1000000u;
	if (!t->created_ms)
		t->created_ms = 1;
	snprintf(t->genhex, sizeof(t->genhex), "%016llx", (unsigned long long)t->gen);
	mtopic_key(m, t);
	t->state = (m->d->to.scheme == BR_REDIS && m->d->mode == BR_MODE_STREAM) ? MT_QUERY :
										   MT_READY;
	t->w.op = (struct br_op){ BOP_FUTEX, &t->w };
	t->w.sub = sub;
	t->w.fn = topic_woken;
	/* Block topics keep what this mirror has not confirmed even while the daemon is
	 * down, for hold_ms: renewed at every tick. */
	shmbus_sub_lease(sub, m->d->hold_ms);
	t->next = m->topics;
	m->topics = t;
	m->ntopics++;
	BR_SET(m->st, topics, m->ntopics);
	if (m->up && t->state == MT_QUERY)
		redis_query(m, t);
}

static void detach(struct mirror *m, struct mtopic *t)
{
	for (struct mtopic **pp = &m->topics; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	m->ntopics--;
	BR_SET(m->st, topics, m->ntopics);
	mirror_commit(m);
	shmbus_sub_close(t->sub);
	free(t);
}

struct scan_ctx {
	struct bridge *b;
};

static int scan_one(const char *name, void *arg)
{
	struct bridge *b = ((struct scan_ctx *)arg)->b;
	for (size_t i = 0; i < b->nmirrors; i++) {
		struct mirror *m = b->mirrors[i];
		for (unsigned k = 0; k < m->d->topics.n; k++)
			if (br_pattern_match(m->d->topics.p[k], name)) {
				attach(m, name);
				break;
			}
	}
	return 0;
}

/* Topics that appeared are attached; those removed or made again are marked gone. */
static void scan_topics(struct bridge *b)
{
	b->rescan = 0;
	b->last_scan_ms = b->now_ms;
	for (size_t i = 0; i < b->nmirrors; i++)
		for (struct mtopic *t = b->mirrors[i]->topics; t; t = t->next)
			if (!t->gone && file_generation(b, t->name) != t->gen)
				t->gone = 1;
	struct scan_ctx c = { b };
	shmbus_topic_foreach(b->bus, scan_one, &c);
	if (b->ws)
		wss_rescan(b->ws);
}

/* Gone topics leave once nothing of theirs is in flight and nothing is left to send (or
 * the peer is down: the file was removed, what it held cannot be kept). */
static void reap_gone(struct bridge *b)
{
	for (size_t i = 0; i < b->nmirrors; i++) {
		struct mirror *m = b->mirrors[i];
		struct mtopic *next;
		for (struct mtopic *t = m->topics; t; t = next) {
			next = t->next;
			if (!t->gone || t->inflight)
				continue;
			if (t->w.armed) {
				br_wait_cancel(b, &t->w);
				continue;
			}
			if (m->up && shmbus_sub_ready(t->sub))
				continue;
			detach(m, t);
		}
	}
}

/* ---- housekeeping -------------------------------------------------------------------------- */

static void lag_update(struct mirror *m)
{
	uint64_t lag = 0;
	for (struct mtopic *t = m->topics; t; t = t->next) {
		struct shmbus_sub *s = (struct shmbus_sub *)t->sub;
		uint64_t tail_seq = __atomic_load_n(&s->seg.hdr->tail[1], __ATOMIC_ACQUIRE);
		uint64_t cur_seq = __atomic_load_n(&s->grp->cursor[1], __ATOMIC_ACQUIRE);
		if (cur_seq != SHMBUS_NOSEQ && cur_seq <= tail_seq)
			lag += tail_seq - cur_seq;
		else if (cur_seq == SHMBUS_NOSEQ && tail_seq)
			lag += 0; /* not known until the first message is read */
	}
	BR_SET(m->st, lag, lag);
}

static void tick(struct bridge *b)
{
	for (size_t i = 0; i < b->nmirrors; i++) {
		struct mirror *m = b->mirrors[i];
		/* A peer that takes too long to answer is as good as gone. */
		if (m->c.state == BC_OPEN && m->pq_len &&
		    b->now_ms - m->last_progress_ms > m->d->timing.timeout_ms)
			bconn_fail(&m->c, "no reply for %u ms", m->d->timing.timeout_ms);
		/* A topic stuck behind a claim that is never committed (its publisher died):
		 * a receive with no wait repairs it. */
		for (struct mtopic *t = m->topics; t; t = t->next)
			if (t->w.armed && shmbus_sub_stuck(t->sub))
				br_wait_cancel(b, &t->w);
		if (m->d->to.scheme == BR_WS)
			ws_mirror_tick(m);
		for (struct mtopic *t = m->topics; t; t = t->next)
			if (!t->gone)
				shmbus_sub_lease(t->sub, m->d->hold_ms);
		lag_update(m);
	}
	for (size_t i = 0; i < b->nimports; i++)
		import_tick(b->imports[i]);
	if (b->ws)
		wss_tick(b->ws);
	if (b->rescan || b->now_ms - b->last_scan_ms >= SCAN_EVERY_MS)
		scan_topics(b);
	reap_gone(b);
	br_stats_update(b);
}

static void arm_tick(struct bridge *b)
{
	b->tick_ts.tv_sec = 0;
	b->tick_ts.tv_nsec = TICK_MS * 1000000ll;
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_timeout(sqe, &b->tick_ts, 0, 0);
	br_arm(b, sqe, &b->tick_op);
	b->tick_armed = 1;
}

static void arm_wake(struct bridge *b)
{
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_read(sqe, b->wake_fd, &b->wake_buf, sizeof(b->wake_buf), 0);
	br_arm(b, sqe, &b->wake_op);
}

static void arm_inotify(struct bridge *b)
{
	if (b->ino_fd < 0)
		return;
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_read(sqe, b->ino_fd, b->ino_buf, sizeof(b->ino_buf), 0);
	br_arm(b, sqe, &b->ino_op);
	b->ino_armed = 1;
}

static void on_idle(struct bridge *b)
{
	b->idle_armed = 0;
	/* Timed poll: every idle topic is looked at again. */
	for (size_t i = 0; i < b->nmirrors; i++)
		for (struct mtopic *t = b->mirrors[i]->topics; t; t = t->next)
			t->idle = 0;
	if (b->ws)
		wss_poll(b->ws);
}

static void dispatch(struct bridge *b, struct io_uring_cqe *cqe)
{
	struct br_op *op = io_uring_cqe_get_data(cqe);
	int res = cqe->res;
	b->inflight--;
	b->cqes++;
	if (!op)
		return;
	if (op->kind == BOP_SEND)
		b->sends--;
	switch (op->kind) {
	case BOP_WAKE:
		b->stop = 1;
		break;
	case BOP_TICK:
		b->tick_armed = 0;
		tick(b);
		if (!b->stop)
			arm_tick(b);
		break;
	case BOP_INOTIFY:
		b->ino_armed = 0;
		if (res > 0)
			b->rescan = 1;
		if (!b->stop && res > 0)
			arm_inotify(b);
		break;
	case BOP_IDLE:
		on_idle(b);
		break;
	case BOP_FUTEX:
		wait_done(op->owner, res);
		break;
	case BOP_ACCEPT:
		wss_accept(op->owner, res);
		break;
	case BOP_CANCEL:
		if (op->owner)
			bconn_complete(op, res);
		break;
	default:
		bconn_complete(op, res);
		break;
	}
}

/* ---- the thread --------------------------------------------------------------------------- */

static void report_start(struct bridge *b, char ok)
{
	if (b->start_pipe[1] >= 0) {
		if (write(b->start_pipe[1], &ok, 1) < 0)
			perror("shmbusd: bridge start");
		close(b->start_pipe[1]);
		b->start_pipe[1] = -1;
	}
}

static int probe_futex(struct bridge *b)
{
	const char *e = getenv("SHMBUSD_BRIDGE_NO_FUTEX");
	if (e && *e && strcmp(e, "0"))
		return 0;
	struct io_uring_probe *p = io_uring_get_probe_ring(&b->ring);
	if (!p)
		return 0;
	int ok = io_uring_opcode_supported(p, IORING_OP_FUTEX_WAIT);
	io_uring_free_probe(p);
	return ok;
}

static int setup(struct bridge *b)
{
	const struct shmbusd_config *c = &b->cfg;
	/* One thread submits and reaps: tell the kernel, if it listens (6.0+). */
	struct io_uring_params pr;
	memset(&pr, 0, sizeof(pr));
	pr.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
	int rc = io_uring_queue_init_params(RING_ENTRIES, &b->ring, &pr);
	if (rc < 0)
		rc = io_uring_queue_init(RING_ENTRIES, &b->ring, 0);
	if (rc < 0) {
		fprintf(stderr, "shmbusd: bridge: io_uring_queue_init: %s\n", strerror(-rc));
		return -1;
	}
	b->futex_ok = probe_futex(b);
	if (shmbus_bus_open(&b->bus, c->bus) < 0) {
		fprintf(stderr, "shmbusd: bridge: %s\n", shmbus_errmsg());
		return -1;
	}
	if (shmbus_pub_open(&b->log, b->bus, "$sys.log") < 0)
		fprintf(stderr, "shmbusd: bridge: no $sys.log: %s\n", shmbus_errmsg());
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(b->origin, sizeof(b->origin), "%.63s/%.60s", host, c->bus);
	if (br_stats_open(b, (unsigned)(c->nmirrors + c->nimports + (c->ws.enabled ? 1 : 0))) < 0)
		return -1;
	b->mirrors = calloc(c->nmirrors ? c->nmirrors : 1, sizeof(*b->mirrors));
	b->imports = calloc(c->nimports ? c->nimports : 1, sizeof(*b->imports));
	if (!b->mirrors || !b->imports)
		return -1;
	for (size_t i = 0; i < c->nmirrors; i++) {
		struct mirror *m = calloc(1, sizeof(*m));
		if (!m)
			return -1;
		m->b = b;
		m->d = &c->mirrors[i];
		b->mirrors[b->nmirrors++] = m;
		if ((m->d->to.scheme == BR_REDIS ? redis_mirror_init(m) : ws_mirror_init(m)) < 0)
			return -1;
	}
	for (size_t i = 0; i < c->nimports; i++) {
		struct import *im = calloc(1, sizeof(*im));
		if (!im)
			return -1;
		im->b = b;
		im->d = &c->imports[i];
		b->imports[b->nimports++] = im;
		if (import_init(im) < 0)
			return -1;
	}
	if (c->ws.enabled && wss_init(b) < 0)
		return -1;
	b->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (b->ino_fd >= 0 &&
	    inotify_add_watch(b->ino_fd, b->bus_dir,
			      IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM) < 0) {
		close(b->ino_fd);
		b->ino_fd = -1;
	}
	return 0;
}

/* Stop everything, wait for the ring to give back every operation, free. */
static void teardown(struct bridge *b)
{
	b->stop = 1;
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_close(b->mirrors[i], 0);
	for (size_t i = 0; i < b->nimports; i++)
		import_close(b->imports[i]);
	if (b->ws)
		wss_close(b->ws);
	/* Everything else in flight (tick, inotify, wake, idle, waits): cancel all. */
	static struct br_op ignore = { BOP_CANCEL, NULL };
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
	br_arm(b, sqe, &ignore);
	uint64_t deadline = br_now_ms() + 3000;
	while (b->inflight && br_now_ms() < deadline) {
		struct __kernel_timespec ts = { 0, 50000000 };
		struct io_uring_cqe *cqe;
		br_submit(b, 0);
		if (io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts) < 0) {
			/* Ask again: something armed after the first cancel. */
			sqe = br_sqe(b);
			io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
			br_arm(b, sqe, &ignore);
			continue;
		}
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&b->ring, head, cqe)
		{
			seen++;
			dispatch(b, cqe);
		}
		io_uring_cq_advance(&b->ring, seen);
	}
	int drained = b->inflight == 0;
	if (!drained)
		fprintf(stderr, "shmbusd: bridge: %llu operations still in flight at exit\n",
			(unsigned long long)b->inflight);
	for (size_t i = 0; i < b->nmirrors; i++)
		for (struct mtopic *t = b->mirrors[i]->topics; t; t = t->next)
			br_wait_forget(&t->w);
	if (b->ws)
		wss_forget_waits(b->ws);
	io_uring_queue_exit(&b->ring);
	if (!drained)
		return; /* the kernel may still own buffers: leak rather than free them */
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_close(b->mirrors[i], 1);
	free(b->mirrors);
	b->mirrors = NULL;
	for (size_t i = 0; i < b->nimports; i++) {
		bconn_free(&b->imports[i]->c);
		free(b->imports[i]);
	}
	free(b->imports);
	b->imports = NULL;
	if (b->ws)
		wss_close(b->ws);
	if (b->ino_fd >= 0)
		close(b->ino_fd);
	br_stats_update(b);
	br_stats_close(b);
}

static void *bridge_main(void *arg)
{
	struct bridge *b = arg;
	b->now_ms = br_now_ms();
	if (setup(b) < 0) {
		report_start(b, 'n');
		return NULL;
	}
	/* The mirrors' readers join their groups (and renew their leases) before the daemon
	 * says it runs: a restarted daemon takes over from the one before at once. */
	scan_topics(b);
	report_start(b, 'y');
	br_event(b, "bridge_start",
		 "\"mirrors\":%zu,\"imports\":%zu,\"websocket\":%s,"
		 "\"futex_wait\":%s",
		 b->nmirrors, b->nimports, b->ws ? "true" : "false",
		 b->futex_ok ? "true" : "false");
	arm_wake(b);
	arm_tick(b);
	arm_inotify(b);
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_start(b->mirrors[i]);
	for (size_t i = 0; i < b->nimports; i++)
		bconn_connect(&b->imports[i]->c);
	while (!b->stop) {
		b->now_ms = br_now_ms();
		for (size_t i = 0; i < b->nmirrors; i++)
			mirror_fill(b->mirrors[i]);
		for (size_t i = 0; i < b->nimports; i++)
			import_work(b->imports[i]);
		if (b->ws)
			wss_work(b->ws);
		if (b->rescan) {
			scan_topics(b);
			continue;
		}
		/* Completions already there are handled without waiting; otherwise one enter
		 * submits everything queued this turn and waits for the next completion. */
		/* Under load, wait for as many completions as are on their way (sends in
		 * flight, peers owing replies), for at most BATCH_WAIT_NS: the next turn then
		 * re-arms them all with one enter. A batch wait that found nothing means the
		 * peers are slow, not busy: the next wait is a plain one (no spinning). */
		unsigned expect = b->sends;
		for (size_t i = 0; i < b->nmirrors; i++)
			expect += b->mirrors[i]->pq_len && b->mirrors[i]->c.recv_busy;
		int rc;
		if (io_uring_cq_ready(&b->ring)) {
			/* Completions are waiting: handle them first; what this turn queued
			 * goes with the next enter (sooner only if the SQ ring fills up). */
			rc = io_uring_sq_ready(&b->ring) >= RING_ENTRIES / 2 ? br_submit(b, 0) : 0;
		} else if (expect >= 2 && !b->batch_idle) {
			rc = br_submit_batch(b, expect < 32 ? expect : 32);
			b->batch_idle = !io_uring_cq_ready(&b->ring);
		} else {
			rc = br_submit(b, 1);
			b->batch_idle = 0;
		}
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
			fprintf(stderr, "shmbusd: bridge: io_uring_enter: %s\n", strerror(-rc));
			usleep(1000);
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&b->ring, head, cqe)
		{
			seen++;
			dispatch(b, cqe);
		}
		io_uring_cq_advance(&b->ring, seen);
	}
	br_event(b, "bridge_stop", "\"enters\":%llu,\"sqes\":%llu", (unsigned long long)b->enters,
		 (unsigned long long)b->sqes);
	teardown(b);
	return NULL;
}

/* ---- the conductor's side ---------------------------------------------------------------- */

/* A deep copy of the parts of cfg the bridge uses. */
static int config_copy(struct shmbusd_config *dst, const struct shmbusd_config *src)
{
	*dst = *src;
	dst->topics = NULL;
	dst->ntopics = 0;
	dst->mirrors = NULL;
	dst->imports = NULL;
	dst->bridge_text = NULL;
	if (src->nmirrors) {
		dst->mirrors = malloc(src->nmirrors * sizeof(*dst->mirrors));
		if (!dst->mirrors)
			return -1;
		memcpy(dst->mirrors, src->mirrors, src->nmirrors * sizeof(*dst->mirrors));
	}
	if (src->nimports) {
		dst->imports = malloc(src->nimports * sizeof(*dst->imports));
		if (!dst->imports)
			return -1;
		memcpy(dst->imports, src->imports, src->nimports * sizeof(*dst->imports));
	}
	return 0;
}

int bridge_config_changed(const struct shmbusd_config *a, const struct shmbusd_config *b)
{
	if (a->bridge_len != b->bridge_len)
		return 1;
	return a->bridge_len && memcmp(a->bridge_text, b->bridge_text, a->bridge_len) != 0;
}

static void bridge_free(struct bridge *b)
{
	if (b->bus) {
		if (b->log)
			shmbus_pub_close(b->log);
		shmbus_bus_close(b->bus);
	}
	if (b->wake_fd >= 0)
		close(b->wake_fd);
	if (b->start_pipe[0] >= 0)
		close(b->start_pipe[0]);
	if (b->start_pipe[1] >= 0)
		close(b->start_pipe[1]);
	config_free(&b->cfg);
	free(b);
}

int bridge_start(struct bridge **out, const struct shmbusd_config *cfg, const char *bus_dir)
{
	*out = NULL;
	if (!config_has_bridge(cfg))
		return 0;
	struct bridge *b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
	b->wake_fd = -1;
	b->ino_fd = -1;
	b->start_pipe[0] = b->start_pipe[1] = -1;
	b->wake_op = (struct br_op){ BOP_WAKE, b };
	b->tick_op = (struct br_op){ BOP_TICK, b };
	b->ino_op = (struct br_op){ BOP_INOTIFY, b };
	b->idle_op = (struct br_op){ BOP_IDLE, b };
	snprintf(b->bus_dir, sizeof(b->bus_dir), "%s", bus_dir);
	if (config_copy(&b->cfg, cfg) < 0 || (b->wake_fd = eventfd(0, EFD_CLOEXEC)) < 0 ||
	    pipe2(b->start_pipe, O_CLOEXEC) < 0) {
		fprintf(stderr, "shmbusd: bridge: %s\n", strerror(errno ? errno : ENOMEM));
		bridge_free(b);
		return -1;
	}
	int rc = pthread_create(&b->thread, NULL, bridge_main, b);
	if (rc) {
		fprintf(stderr, "shmbusd: bridge: pthread_create: %s\n", strerror(rc));
		bridge_free(b);
		return -1;
	}
	char ok = 0;
	ssize_t n;
	while ((n = read(b->start_pipe[0], &ok, 1)) < 0 && errno == EINTR)
		;
	if (n != 1 || ok != 'y') {
		pthread_join(b->thread, NULL);
		bridge_free(b);
		return -1;
	}
	*out = b;
	return 0;
}

void bridge_stop(struct bridge *b)
{
	if (!b)
		return;
	uint64_t one = 1;
	if (write(b->wake_fd, &one, sizeof(one)) < 0)
		perror("shmbusd: bridge stop");
	pthread_join(b->thread, NULL);
	bridge_free(b);
}

void br_poll_soon(struct bridge *b)
{
	arm_idle(b);
}
