/* SPDX-License-Identifier: MIT */
/*
 * Sinks and subscriber fds (issue 16), through the public API as a user would call them.
 * Four rows:
 *   shmbus (sink, 8 topics)  a fan-out sink (shmbus_sink_open(.., NULL, 0)) over a
 *                            channel's SINK_TOPICS topics, joined by one pattern "<a>.*";
 *                            received with shmbus_sink_recv(), which sleeps in it (its
 *                            io_uring) when no topic has anything
 *   shmbus (sink fd, epoll)  the same sink waited for in epoll_wait() on shmbus_sink_fd();
 *                            once the fd is readable, shmbus_sink_recv(.., 0) until -EAGAIN,
 *                            as an event loop would
 *   shmbus (sub fd, epoll)   one subscriber on one topic, waited for the same way on
 *                            shmbus_sub_fd() with shmbus_recv(.., 0)
 *   shmbus (sink, 1 topic)   a sink over one topic (added by its name), received with
 *                            shmbus_sink_recv(): against shmbus (block), what the sink
 *                            itself costs, with no spread over topics to help or hinder
 * A sink peer's publisher writes the channel's topics in turn (one shmbus_pub_t each),
 * message n to topic n % SINK_TOPICS: every topic is busy, and the sink goes round them
 * all. Its readers check each topic's messages in order (loops.h, ops.lanes). The topics
 * are made and removed by peer_shmbus.c's prepare and cleanup, named "<a>.0" ... "<a>.7".
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <shmbus.h>

#include "loops.h"

/* A topic's lane is the last character of its name: one digit. */
_Static_assert(SINK_TOPICS <= 10, "a sink topic's lane is one digit of its name");
_Static_assert(SINK_TOPICS == 8, "the labels say 8 topics");

/* The publishing end: a publisher per topic of the channel, written in turn. */
struct sk_tx {
	shmbus_pub_t *p[SINK_TOPICS];
	unsigned n, next;
};

/* The reading end: a sink (or a subscriber) and, waited for through its fd, an epoll. */
struct sk_rx {
	shmbus_sink_t *k;
	shmbus_sub_t *s;
	int ep;		/* epoll on the fd, or -1: the sink sleeps in shmbus_sink_recv() */
	size_t lane_at; /* where the lane's digit is in a topic's name; 0: one topic */
};

static int sk_prepare(struct run *r)
{
	r->topics = r->c->peer == PEER_SHMBUS_FD || r->c->peer == PEER_SHMBUS_SINK1 ? 1 :
										      SINK_TOPICS;
	return shmbus_peer_prepare(r);
}

static void *sk_open_tx(struct run *r, int chan, int idx)
{
	struct sk_tx *h = calloc(1, sizeof(*h));

	(void)idx;
	if (!h)
		wfail("out of memory");
	h->n = r->topics > 1 ? (unsigned)r->topics : 1;
	for (unsigned k = 0; k < h->n; k++) {
		char name[200];

		shmbus_peer_topic(r, chan, (int)k, name, sizeof(name));
		int rc = shmbus_pub_open(&h->p[k], shmbus_peer_worker_bus(r), name);
		if (rc < 0)
			wfail("pub open %s: %s (%s)", name, strerror(-rc), shmbus_errmsg());
		/* A stalled reader shows up as an error instead of a hang. */
		shmbus_pub_set_timeout(h->p[k], 5000);
	}
	return h;
}

static void sk_epoll(struct sk_rx *h, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };

	if (fd < 0)
		wfail("no fd to wait on: %s (%s)", strerror(-fd), shmbus_errmsg());
	h->ep = epoll_create1(EPOLL_CLOEXEC);
	if (h->ep < 0 || epoll_ctl(h->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		wfail("epoll: %s", strerror(errno));
}

static void *sk_open_rx(struct run *r, int chan, int idx)
{
	struct sk_rx *h = calloc(1, sizeof(*h));
	shmbus_bus_t *bus = shmbus_peer_worker_bus(r);
	const enum peer_id peer = r->c->peer;
	int rc;

	(void)idx;
	if (!h)
		wfail("out of memory");
	h->ep = -1;
	if (peer == PEER_SHMBUS_FD) {
		rc = shmbus_sub_open(&h->s, bus, chan ? r->b : r->a, NULL, 0);
		if (rc < 0)
			wfail("sub open: %s (%s)", strerror(-rc), shmbus_errmsg());
		sk_epoll(h, shmbus_sub_fd(h->s));
		return h;
	}
	/* Many topics by a pattern, one by its name. */
	char pat[200];
	snprintf(pat, sizeof(pat), "%s%s", chan ? r->b : r->a, r->topics > 1 ? ".*" : "");
	rc = shmbus_sink_open(&h->k, bus, NULL, 0);
	if (rc < 0)
		wfail("sink open: %s (%s)", strerror(-rc), shmbus_errmsg());
	rc = shmbus_sink_add(h->k, pat);
	if (rc != r->topics)
		wfail("sink add %s: %d (%s), not the %d topics", pat, rc,
		      rc < 0 ? shmbus_errmsg() : "", r->topics);
	if (r->topics > 1)
		h->lane_at = strlen(pat) - 1; /* "<a>.*": the digit of "<a>.N" */
	if (peer == PEER_SHMBUS_SINK_FD)
		sk_epoll(h, shmbus_sink_fd(h->k));
	return h;
}

static inline void sk_send(void *hh, const uint8_t *buf, uint32_t len)
{
	struct sk_tx *h = hh;
	int rc = shmbus_publish(h->p[h->next], buf, len, 1);

	if (rc < 0)
		wfail("publish: %s", strerror(-rc));
	if (++h->next == h->n)
		h->next = 0;
}

/* Nothing to receive: wait until the fd is readable (or a second has passed). */
static inline void sk_fd_wait(const struct sk_rx *h)
{
	struct epoll_event ev;

	if (epoll_wait(h->ep, &ev, 1, 1000) < 0 && errno != EINTR)
		wfail("epoll_wait: %s", strerror(errno));
}

/* A receive that came back empty or interrupted; anything else fails the worker. */
static inline void sk_retry(const char *what, int rc)
{
	if (rc != -EAGAIN && rc != -EINTR)
		wfail("%s: %s", what, strerror(-rc));
}

static inline void sk_view(const struct sk_rx *h, const shmbus_msg_t *m, struct view *v)
{
	v->data = m->data;
	v->len = m->len;
	v->lost = m->lost;
	v->lane = h->lane_at ? (unsigned)(m->topic[h->lane_at] - '0') : 0;
}

/* The sink: shmbus_sink_recv() waits (a second at a time). */
static inline void sk_recv(void *hh, struct view *v)
{
	struct sk_rx *h = hh;
	shmbus_msg_t m;
	int rc;

	while ((rc = shmbus_sink_recv(h->k, &m, 1000)) != 0)
		sk_retry("sink recv", rc);
	sk_view(h, &m, v);
}

/* The sink through its fd: receive without waiting until -EAGAIN, then epoll_wait(). */
static inline void skf_recv(void *hh, struct view *v)
{
	struct sk_rx *h = hh;
	shmbus_msg_t m;
	int rc;

	while ((rc = shmbus_sink_recv(h->k, &m, 0)) != 0) {
		sk_retry("sink recv", rc);
		if (rc == -EAGAIN)
			sk_fd_wait(h);
	}
	sk_view(h, &m, v);
}

/* A subscriber through its fd, the same way. */
static inline void sbf_recv(void *hh, struct view *v)
{
	struct sk_rx *h = hh;
	shmbus_msg_t m;
	int rc;

	while ((rc = shmbus_recv(h->s, &m, 0)) != 0) {
		sk_retry("recv", rc);
		if (rc == -EAGAIN)
			sk_fd_wait(h);
	}
	sk_view(h, &m, v);
}

static const struct ops sk_ops = {
	.open_tx = sk_open_tx,
	.open_rx = sk_open_rx,
	.send = sk_send,
	.recv = sk_recv,
	.lanes = SINK_TOPICS,
};
static const struct ops skf_ops = {
	.open_tx = sk_open_tx,
	.open_rx = sk_open_rx,
	.send = sk_send,
	.recv = skf_recv,
	.lanes = SINK_TOPICS,
};
static const struct ops sk1_ops = {
	.open_tx = sk_open_tx,
	.open_rx = sk_open_rx,
	.send = sk_send,
	.recv = sk_recv,
};
static const struct ops sbf_ops = {
	.open_tx = sk_open_tx,
	.open_rx = sk_open_rx,
	.send = sk_send,
	.recv = sbf_recv,
};

LOOPS_DEFINE(sk, &sk_ops)
LOOPS_DEFINE(skf, &skf_ops)
LOOPS_DEFINE(sbf, &sbf_ops)
LOOPS_DEFINE(sk1, &sk1_ops)

/* An fd needs io_uring with IORING_OP_FUTEX_WAIT (Linux 6.7): ask a sink for one. */
static int sk_fd_available(char *why, size_t n)
{
	shmbus_bus_t *bus;
	shmbus_sink_t *k;
	int rc = shmbus_bus_open(&bus, NULL);

	if (rc < 0) {
		snprintf(why, n, "bus open: %s (%s)", strerror(-rc), shmbus_errmsg());
		return 0;
	}
	rc = shmbus_sink_open(&k, bus, NULL, 0);
	if (rc == 0) {
		rc = shmbus_sink_fd(k);
		if (rc < 0)
			snprintf(why, n, "no fd here: %s", shmbus_errmsg());
		shmbus_sink_close(k);
	} else {
		snprintf(why, n, "sink open: %s (%s)", strerror(-rc), shmbus_errmsg());
	}
	shmbus_bus_close(bus);
	return rc >= 0;
}

#define SINK_PEER(var, id_, label_, avail_, pfx) \
	const struct peer var = {                \
		.id = id_,                       \
		.label = label_,                 \
		.flags = PF_SHMBUS,              \
		.prepare = sk_prepare,           \
		.cleanup = shmbus_peer_cleanup,  \
		LOOPS_ROLES(pfx),                \
		.available = (avail_),           \
	}

SINK_PEER(peer_shmbus_sink, "shmbus_sink", "shmbus (sink, 8 topics)", NULL, sk);
SINK_PEER(peer_shmbus_sink_fd, "shmbus_sink_fd", "shmbus (sink fd, epoll)", sk_fd_available, skf);
SINK_PEER(peer_shmbus_fd, "shmbus_fd", "shmbus (sub fd, epoll)", sk_fd_available, sbf);
SINK_PEER(peer_shmbus_sink1, "shmbus_sink1", "shmbus (sink, 1 topic)", NULL, sk1);
