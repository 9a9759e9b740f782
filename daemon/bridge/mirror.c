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
					if (m->ops->emit(m, t, &msg) < 0 || m->c.state != BC_OPEN)
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

/* ---- up and down ------------------------------------------------------------------------ */

void mirror_start(struct mirror *m)
{
	if (m->b->stop)
		return;
	bconn_connect(&m->c);
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
		shmbus_sub_rewind(t->sub);
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
					 m->d->peer.start_latest ? 0 : SHMBUS_SUB_EARLIEST);
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
	t->gen = shmbus_sub_generation(sub);
	t->created_ms = shmbus_sub_created_ns(sub) / 1000000u;
	if (!t->created_ms)
		t->created_ms = 1;
	snprintf(t->genhex, sizeof(t->genhex), "%016llx", (unsigned long long)t->gen);
	mtopic_key(m, t);
	t->state = m->query_first ? MT_QUERY : MT_READY;
	br_wait_init(&t->w, sub, topic_woken);
	/* Block topics keep what this mirror has not confirmed even while the daemon is
	 * down, for hold_ms: renewed at every tick. */
	shmbus_sub_lease(sub, m->d->hold_ms);
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
	m->ntopics--;
	BR_SET(m->st, topics, m->ntopics);
	mirror_commit(m);
	shmbus_sub_close(t->sub);
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
		if (m->up && shmbus_sub_ready(t->sub))
			continue;
		detach(m, t);
	}
}

static void lag_update(struct mirror *m)
{
	uint64_t lag = 0;
	for (struct mtopic *t = m->topics; t; t = t->next) {
		/* Not known until the group's first message is read. */
		uint64_t tail = shmbus_sub_tail_seq(t->sub), cur;
		if (shmbus_sub_cursor_seq(t->sub, &cur) && cur <= tail)
			lag += tail - cur;
	}
	BR_SET(m->st, lag, lag);
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
		if (t->w.armed && (shmbus_sub_stuck(t->sub) || shmbus_sub_ready(t->sub)))
			br_wait_cancel(b, &t->w);
	if (m->ops->tick)
		m->ops->tick(m);
	for (struct mtopic *t = m->topics; t; t = t->next)
		if (!t->gone)
			shmbus_sub_lease(t->sub, m->d->hold_ms);
	lag_update(m);
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
		shmbus_sub_close(t->sub);
		free(t);
	}
	free(m->pq);
	m->ops->free(m);
	bconn_free(&m->c);
	free(m);
}
