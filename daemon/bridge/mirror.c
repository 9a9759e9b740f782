/* SPDX-License-Identifier: MIT */
/*
 * What both kinds of mirror share (mirror.h): the topics and their durable readers, the
 * queue of what was sent and not confirmed, the cursors that follow confirmations, up and
 * down, and the connection's events, which go to the kind through its ops.
 */
#include "daemon/bridge/mirror.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/intree.h"
#include "daemon/bridge/stats.h"
#include "daemon/guard.h"
#include "daemon/shmbusd.h"

#define OUT_MAX (1u << 20) /* bytes formatted ahead of the socket, per mirror */
#define READ_BURST 64	   /* messages read from one topic before the next */

/* ---- what was sent ------------------------------------------------------------------------ */

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

/* ---- truncated topics (ring.h) ------------------------------------------------------------ */

/* A SIGBUS at addr while using t: its handle goes, it is read no more, and it leaves once a
 * topic of another generation takes its name (mirror_reap). */
static void topic_lost(struct mtopic *t, void *addr, const char *during)
{
	struct mirror *m = t->m;
	char why[128];
	if (br_topic_damaged(m->b, t->name, addr, during, "mirror", m->d->name, why, sizeof(why)))
		br_sub_close(m->b, t->sub);
	else
		br_keep(t->sub);
	t->sub = NULL;
	t->w.sub = NULL;
	t->damaged = 1;
	t->gone = 1;
	t->idle = 0;
	t->conf_dirty = 0;
	/* Its wait completes (cancelled, or EFAULT) before t may be freed. */
	br_wait_cancel(m->b, &t->w);
	m->ntopics--;
	BR_SET(m->st, topics, m->ntopics);
	BR_ADD(m->st, errors, 1);
	br_slot_error(m->st, why);
}

/*
 * fn(t, arg) under one guard for all it does with t's mapping (a batch, not a message).
 * After a SIGBUS in it, t is dropped (topic_lost) and -EIO returned; a damaged t is not
 * touched. What fn changed in memory before the fault stays; its own locals are gone.
 */
static int guarded(struct mtopic *t, const char *during, void (*fn)(struct mtopic *, void *),
		   void *arg)
{
	if (t->damaged)
		return -EIO;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		topic_lost(t, g.addr, during);
		return -EIO;
	}
	fn(t, arg);
	guard_leave(&g);
	return 0;
}

static void cursor_topic(struct mtopic *t, void *arg)
{
	uint64_t *seq = arg;
	if (!shmbus_sub_cursor_seq(t->sub, &seq[1]))
		seq[0] = 0;
}

int mirror_cursor_seq(struct mtopic *t, uint64_t *seq)
{
	uint64_t r[2] = { 1, 0 };
	if (guarded(t, "cursor", cursor_topic, r) < 0 || !r[0])
		return 0;
	*seq = r[1];
	return 1;
}

void mirror_confirm(struct mtopic *t, uint64_t end, uint64_t seq)
{
	if (!t->conf_dirty || end > t->conf_pos) {
		t->conf_pos = end;
		t->conf_seq = seq;
	}
	t->conf_dirty = 1;
}

static void commit_topic(struct mtopic *t, void *arg)
{
	(void)arg;
	shmbus_sub_commit(t->sub, t->conf_pos, t->conf_seq);
}

void mirror_commit(struct mirror *m)
{
	for (struct mtopic *t = m->topics; t; t = t->next) {
		if (!t->conf_dirty)
			continue;
		t->conf_dirty = 0;
		guarded(t, "commit", commit_topic, NULL);
	}
}

/* ---- reading the topics ------------------------------------------------------------------- */

/* Read the next message of t (recv with no wait), counting what it tells. */
static int mirror_read(struct mirror *m, struct mtopic *t, shmbus_msg_t *msg)
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

static void topic_woken(struct bwait *w)
{
	struct mtopic *t = (struct mtopic *)((char *)w - offsetof(struct mtopic, w));
	t->idle = 0;
}

struct fill {
	uint32_t window;
	int progress;
	int stop; /* 1: the window or the buffer is full; 2: the connection failed */
};

/*
 * A burst of t's messages into the connection (guarded). A fault in it comes from the read
 * or from the kind's copy of the payload, which formats into memory of its own (hiredis's
 * command, the scratch buffer, wslay's copy) before anything reaches the connection's
 * buffer: what is there is whole, and the kind's half-made copy is all that is lost.
 */
static void fill_topic(struct mtopic *t, void *arg)
{
	struct fill *f = arg;
	struct mirror *m = t->m;
	for (int k = 0; k < READ_BURST; k++) {
		if (m->pq_len >= f->window || m->c.out.len >= OUT_MAX) {
			f->stop = 1;
			return;
		}
		shmbus_msg_t msg;
		int rc = mirror_read(m, t, &msg);
		if (rc == -EAGAIN) {
			t->idle = 1;
			return;
		}
		if (rc < 0)
			return;
		f->progress = 1;
		if (m->ops->emit(m, t, &msg) < 0 || m->c.state != BC_OPEN) {
			f->stop = 2;
			return;
		}
	}
}

static void arm_topic(struct mtopic *t, void *arg)
{
	int *again = arg;
	if (br_wait_arm(t->m->b, &t->w))
		return;
	t->idle = 0;
	*again = 1;
}

void mirror_fill(struct mirror *m)
{
	if (!m->up || m->c.state != BC_OPEN)
		return;
	struct fill f = { .window = m->d->window };
	for (int pass = 0; pass < 4; pass++) {
		do {
			f.progress = 0;
			for (struct mtopic *t = m->topics; t; t = t->next) {
				if (t->state != MT_READY || t->w.armed || t->idle || t->damaged)
					continue;
				guarded(t, "read", fill_topic, &f);
				if (f.stop == 1)
					goto full;
				if (f.stop == 2)
					return;
			}
		} while (f.progress);
		/* Everything readable was read: wait on the idle topics. A topic whose
		 * re-check finds something is read in the next pass. */
		int again = 0;
		for (struct mtopic *t = m->topics; t; t = t->next) {
			if (!t->idle || t->state != MT_READY || t->gone)
				continue;
			guarded(t, "wait", arm_topic, &again);
		}
		if (!again)
			break;
	}
full:
	bconn_kick(&m->c);
}

/* ---- up and down ------------------------------------------------------------------------ */

void mirror_start(struct mirror *m)
{
	if (m->b->stop)
		return;
	bconn_connect(&m->c);
}

static void rewind_topic(struct mtopic *t, void *arg)
{
	(void)arg;
	shmbus_sub_rewind(t->sub);
}

/* The connection closed (c->why says why): everything unconfirmed will be sent again. */
static void went_down(struct mirror *m)
{
	/* Confirmed but not yet committed: commit (it was confirmed). */
	mirror_commit(m);
	while (m->pq_len)
		pq_pop(m);
	m->up = 0;
	for (struct mtopic *t = m->topics; t; t = t->next) {
		t->inflight = 0;
		if (guarded(t, "rewind", rewind_topic, NULL) < 0)
			continue;
		/* What was in flight is to be read again: a wait for new messages must not
		 * hold it back until something else is published. */
		br_wait_cancel(m->b, &t->w);
		t->state = m->query_first ? MT_QUERY : MT_READY;
		t->idle = 0;
	}
	if (br_link_down(&m->link, m->st, &m->c, &m->d->peer.timing)) {
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

/* The connection's events, for the kind. */
static void on_opened(struct bconn *c)
{
	struct mirror *m = c->owner;
	m->ops->opened(m);
}

static void on_data(struct bconn *c, const uint8_t *p, size_t n)
{
	struct mirror *m = c->owner;
	m->ops->data(m, p, n);
}

static void on_sent(struct bconn *c)
{
	struct mirror *m = c->owner;
	if (m->ops->sent)
		m->ops->sent(m);
}

static void on_closed(struct bconn *c)
{
	struct mirror *m = c->owner;
	m->ops->down(m);
	went_down(m);
}

static void on_timer(struct bconn *c)
{
	mirror_start(c->owner);
}

static const struct bconn_ops conn_ops = {
	.opened = on_opened,
	.data = on_data,
	.sent = on_sent,
	.closed = on_closed,
	.timer = on_timer,
};

/* ---- topics ------------------------------------------------------------------------------- */

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

/* Open t's durable reader (guarded): t->sub is set once it is open. */
static int open_topic(struct mirror *m, struct mtopic *t)
{
	char group[SHMBUS_GROUP_NAME_MAX + 1];
	snprintf(group, sizeof(group), "bridge-%s", m->d->name);
	int rc = shmbus_sub_open_durable(&t->sub, m->b->bus, t->name, group,
					 m->d->peer.start_latest ? 0 : SHMBUS_SUB_EARLIEST);
	if (rc < 0)
		return rc;
	t->gen = shmbus_sub_generation(t->sub);
	t->created_ms = shmbus_sub_created_ns(t->sub) / 1000000u;
	/* Block topics keep what this mirror has not confirmed even while the daemon is
	 * down, for hold_ms: renewed at every tick. */
	shmbus_sub_lease(t->sub, m->d->hold_ms);
	return 0;
}

static void attach(struct mirror *m, const char *name)
{
	struct bridge *b = m->b;
	for (struct mtopic *t = m->topics; t; t = t->next) {
		if (strcmp(t->name, name))
			continue;
		if (!t->gone)
			return;
		if (t->damaged) {
			/* Read, not mapped: the truncated file has no generation. */
			uint64_t gen = shmbus_topic_generation(b->bus, name);
			if (!gen || gen == t->gen)
				return;
		}
	}
	struct mtopic *t = calloc(1, sizeof(*t));
	if (!t)
		return;
	t->m = m;
	snprintf(t->name, sizeof(t->name), "%s", name);
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		/* Truncated while being opened: the next scan sees a file that is no topic. */
		char why[128];
		if (br_topic_damaged(b, name, g.addr, "attach", "mirror", m->d->name, why,
				     sizeof(why)))
			br_sub_close(b, t->sub);
		else if (t->sub)
			br_keep(t->sub);
		BR_ADD(m->st, errors, 1);
		br_slot_error(m->st, why);
		free(t);
		return;
	}
	int rc = open_topic(m, t);
	guard_leave(&g);
	if (rc < 0) {
		free(t);
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
	if (!t->created_ms)
		t->created_ms = 1;
	snprintf(t->genhex, sizeof(t->genhex), "%016llx", (unsigned long long)t->gen);
	mtopic_key(m, t);
	t->state = m->query_first ? MT_QUERY : MT_READY;
	br_wait_init(&t->w, t->sub, topic_woken);
	t->next = m->topics;
	m->topics = t;
	m->ntopics++;
	BR_SET(m->st, topics, m->ntopics);
	if (m->up && t->state == MT_QUERY)
		m->ops->query(m, t);
}

static void detach(struct mirror *m, struct mtopic *t)
{
	for (struct mtopic **pp = &m->topics; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	if (!t->damaged) {
		m->ntopics--;
		BR_SET(m->st, topics, m->ntopics);
	}
	mirror_commit(m);
	br_sub_close(m->b, t->sub);
	free(t);
}

void mirror_offer(struct mirror *m, const char *name)
{
	for (unsigned k = 0; k < m->d->topics.n; k++)
		if (br_pattern_match(m->d->topics.p[k], name)) {
			attach(m, name);
			return;
		}
}

void mirror_mark_gone(struct mirror *m)
{
	for (struct mtopic *t = m->topics; t; t = t->next)
		if (!t->gone && shmbus_topic_generation(m->b->bus, t->name) != t->gen)
			t->gone = 1;
}

/* Gone topics leave once nothing of theirs is in flight and nothing is left to send (or
 * the peer is down: the file was removed, what it held cannot be kept). */
static void ready_topic(struct mtopic *t, void *arg)
{
	*(int *)arg = shmbus_sub_ready(t->sub);
}

/* Has a topic of another generation taken damaged t's name? */
static int replaced(const struct mirror *m, const struct mtopic *t)
{
	for (const struct mtopic *o = m->topics; o; o = o->next)
		if (!o->gone && !strcmp(o->name, t->name))
			return 1;
	return 0;
}

void mirror_reap(struct mirror *m)
{
	struct mtopic *next;
	for (struct mtopic *t = m->topics; t; t = next) {
		next = t->next;
		if (!t->gone || t->inflight)
			continue;
		if (t->w.armed) {
			br_wait_cancel(m->b, &t->w);
			continue;
		}
		int ready = 0;
		if (!t->damaged && m->up && guarded(t, "reap", ready_topic, &ready) == 0 && ready)
			continue;
		if (t->damaged && !replaced(m, t))
			continue;
		detach(m, t);
	}
}

/* A stuck or lost wake-up ends the wait (mirror_tick). */
static void check_topic(struct mtopic *t, void *arg)
{
	(void)arg;
	if (shmbus_sub_stuck(t->sub) || shmbus_sub_ready(t->sub))
		br_wait_cancel(t->m->b, &t->w);
}

/* The lease renewed, t's lag added to *arg. */
static void keep_topic(struct mtopic *t, void *arg)
{
	uint64_t *lag = arg;
	if (!t->gone)
		shmbus_sub_lease(t->sub, t->m->d->hold_ms);
	/* Not known until the group's first message is read. */
	uint64_t tail = shmbus_sub_tail_seq(t->sub), cur;
	if (shmbus_sub_cursor_seq(t->sub, &cur) && cur <= tail)
		*lag += tail - cur;
}

/* ---- the loop's ------------------------------------------------------------------------- */

struct mirror *mirror_new(struct bridge *b, const struct mirror_decl *d,
			  const struct mirror_ops *ops)
{
	struct mirror *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->b = b;
	m->d = d;
	m->ops = ops;
	char peer[400];
	br_url_show(&d->to, peer, sizeof(peer));
	m->st = br_slot(b, d->name, ops->kind, peer);
	bconn_init(&m->c, b, &conn_ops, m, d->to.host, d->to.port,
		   d->peer.timing.connect_timeout_ms);
	if (ops->init(m) < 0) {
		free(m);
		return NULL;
	}
	return m;
}

void mirror_tick(struct mirror *m)
{
	struct bridge *b = m->b;
	/* A peer that takes too long to answer is as good as gone. */
	if (m->c.state == BC_OPEN && m->pq_len &&
	    b->now_ms - m->last_progress_ms > m->d->peer.timing.timeout_ms)
		bconn_fail(&m->c, "no reply for %u ms", m->d->peer.timing.timeout_ms);
	/* A topic stuck behind a claim that is never committed (its publisher died, or a
	 * damaged commit word): a receive with no wait repairs it or resynchronises. One
	 * with something to read while its wait is armed lost its wake-up (a damaged wake
	 * word): look now. */
	for (struct mtopic *t = m->topics; t; t = t->next)
		if (t->w.armed)
			guarded(t, "wait check", check_topic, NULL);
	if (m->ops->tick)
		m->ops->tick(m);
	uint64_t lag = 0;
	for (struct mtopic *t = m->topics; t; t = t->next)
		guarded(t, "lease", keep_topic, &lag);
	BR_SET(m->st, lag, lag);
}

void mirror_poll(struct mirror *m)
{
	for (struct mtopic *t = m->topics; t; t = t->next)
		t->idle = 0;
}

unsigned mirror_expect(const struct mirror *m)
{
	return m->pq_len && m->c.recv_busy;
}

void mirror_stop(struct mirror *m)
{
	bconn_cancel_timer(&m->c);
	if (m->ops->goodbye)
		m->ops->goodbye(m);
	bconn_fail(&m->c, "the bridge stops");
	for (struct mtopic *t = m->topics; t; t = t->next)
		br_wait_cancel(m->b, &t->w);
}

void mirror_free(struct mirror *m)
{
	mirror_commit(m);
	while (m->topics) {
		struct mtopic *t = m->topics;
		m->topics = t->next;
		br_sub_close(m->b, t->sub);
		free(t);
	}
	free(m->pq);
	m->ops->free(m);
	bconn_free(&m->c);
	free(m);
}
