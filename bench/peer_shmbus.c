/* SPDX-License-Identifier: MIT */
/*
 * shmbus itself, through its public API only, as a user would call it: shmbus_publish()
 * from a buffer, shmbus_recv() into a view. Five rows:
 *   shmbus (block)      the default policy, subscribers wait the default way (spin up to
 *                       20 us while it pays and the CPUs are not crowded, then sleep on
 *                       the futex)
 *   shmbus (overwrite)  the overwrite policy (readers copy each message out, and count
 *                       what they lose)
 *   shmbus (spin)       block, the subscriber never sleeps (one-way latency)
 *   shmbus (brokered)   block, on the brokered bus (brokered.c): topics are memfds a
 *                       shmbusd hands out; once open, the same hot path as shmbus (block)
 *   shmbus (acks)       block, group members that ack every message (SHMBUS_SUB_ACK,
 *                       issue 15)
 * Each run gets fresh topics, removed afterwards; the driver and the workers use the bus
 * "bench" in the suite's private directory ($SHMBUS_DIR), with no daemon, or the brokered
 * one (BROKERED_BUS) through its daemon. Both also time open + close (SC_OPEN).
 */
#include <errno.h>
#include <stdlib.h>

#include <shmbus.h>

#include "loops.h"

/* The driver's handles on the file-mode bus and on the brokered one (opened on first use,
 * once its daemon runs); a worker's on the one bus of its peer. */
static shmbus_bus_t *driver_bus, *driver_bus_b, *worker_bus_h;

static int brokered(const struct run *r)
{
	return r->c->peer == PEER_BROKERED;
}

void shmbus_peer_init_driver(void)
{
	int rc = shmbus_bus_open(&driver_bus, NULL);

	if (rc < 0) {
		fprintf(stderr, "shmbus-bench: bus open: %s (%s)\n", strerror(-rc),
			shmbus_errmsg());
		exit(1);
	}
}

void shmbus_peer_fini_driver(void)
{
	shmbus_bus_close(driver_bus);
	shmbus_bus_close(driver_bus_b);
	driver_bus = driver_bus_b = NULL;
}

/* The driver's handle on r's bus; NULL with r->err set. */
static shmbus_bus_t *driver_bus_of(struct run *r)
{
	if (!brokered(r))
		return driver_bus;
	if (!driver_bus_b) {
		int rc = shmbus_bus_open(&driver_bus_b, BROKERED_BUS);

		if (rc < 0) {
			snprintf(r->err, sizeof(r->err), "bus %s open: %s (%s)", BROKERED_BUS,
				 strerror(-rc), shmbus_errmsg());
			driver_bus_b = NULL;
		}
	}
	return driver_bus_b;
}

shmbus_bus_t *shmbus_peer_worker_bus(const struct run *r)
{
	if (!worker_bus_h) {
		int rc = shmbus_bus_open(&worker_bus_h, brokered(r) ? BROKERED_BUS : NULL);

		if (rc < 0)
			wfail("bus open: %s (%s)", strerror(-rc), shmbus_errmsg());
	}
	return worker_bus_h;
}

static int sb_make_topic(struct run *r, const char *name)
{
	shmbus_topic_opts_t o;

	shmbus_topic_opts_init(&o);
	o.capacity = r->capacity;
	o.max_message = r->size < 64 ? 64 : r->size;
	o.policy = r->c->peer == PEER_SHMBUS_OVW ? SHMBUS_OVERWRITE : SHMBUS_BLOCK;
	shmbus_bus_t *bus = driver_bus_of(r);
	if (!bus)
		return -ENOTCONN;
	int rc = shmbus_topic_create(bus, name, &o);
	if (rc < 0) {
		snprintf(r->err, sizeof(r->err), "create topic %s: %s (%s)", name, strerror(-rc),
			 shmbus_errmsg());
		return rc;
	}
	return 0;
}

void shmbus_peer_topic(const struct run *r, int chan, int k, char *name, size_t n)
{
	if (r->topics > 1)
		snprintf(name, n, "%s.%d", chan ? r->b : r->a, k);
	else
		snprintf(name, n, "%s", chan ? r->b : r->a);
}

/* The topics of channels a and b (r->topics of each). */
int shmbus_peer_prepare(struct run *r)
{
	snprintf(r->a, sizeof(r->a), "bench.c%d.r%d.a", r->idx, r->round);
	snprintf(r->b, sizeof(r->b), "bench.c%d.r%d.b", r->idx, r->round);
	for (int chan = 0; chan < 2; chan++) {
		for (int k = 0; k < (r->topics > 1 ? r->topics : 1); k++) {
			char name[200];

			shmbus_peer_topic(r, chan, k, name, sizeof(name));
			int rc = sb_make_topic(r, name);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

void shmbus_peer_cleanup(struct run *r)
{
	shmbus_bus_t *bus = driver_bus_of(r);

	if (!bus)
		return;
	for (int chan = 0; chan < 2; chan++) {
		for (int k = 0; k < (r->topics > 1 ? r->topics : 1); k++) {
			char name[200];

			shmbus_peer_topic(r, chan, k, name, sizeof(name));
			shmbus_topic_remove(bus, name);
		}
	}
}

int shmbus_peer_counts(const struct run *r, struct sb_counts *k)
{
	shmbus_bus_t *bus = brokered(r) ? driver_bus_b : driver_bus;
	if (!bus)
		return -ENOTCONN;
	*k = (struct sb_counts){ 0 };
	for (int t = 0; t < (r->topics > 1 ? r->topics : 1); t++) {
		shmbus_topic_stats_t st;
		char name[200];

		shmbus_peer_topic(r, 0, t, name, sizeof(name));
		int rc = shmbus_topic_stats(bus, name, &st);
		if (rc < 0)
			return rc;
		k->wakeups += st.wakeups;
		k->published += st.next_seq;
		k->bp_waits += st.backpressure_waits;
	}
	return 0;
}

static void *sb_open_tx(struct run *r, int chan, int idx)
{
	shmbus_pub_t *p;

	(void)idx;
	int rc = shmbus_pub_open(&p, shmbus_peer_worker_bus(r), chan ? r->b : r->a);
	if (rc < 0)
		wfail("pub open: %s (%s)", strerror(-rc), shmbus_errmsg());
	/* A stalled reader shows up as an error instead of a hang. */
	shmbus_pub_set_timeout(p, 5000);
	return p;
}

static void *sb_open_rx(struct run *r, int chan, int idx)
{
	shmbus_sub_t *s;

	(void)idx;
	int rc = shmbus_sub_open(&s, shmbus_peer_worker_bus(r), chan ? r->b : r->a,
				 r->c->sc == SC_GROUP ? "workers" : NULL, 0);
	if (rc < 0)
		wfail("sub open: %s (%s)", strerror(-rc), shmbus_errmsg());
	if (r->spin_us >= 0)
		shmbus_sub_set_spin(s, (unsigned)r->spin_us);
	return s;
}

static inline void sb_send(void *h, const uint8_t *buf, uint32_t len)
{
	int rc = shmbus_publish(h, buf, len, 1);

	if (rc < 0)
		wfail("publish: %s", strerror(-rc));
}

/* The next message, however long it takes (a second at a time). */
static inline void sb_recv_msg(void *h, shmbus_msg_t *m)
{
	for (;;) {
		int rc = shmbus_recv(h, m, 1000);

		if (rc == 0)
			return;
		if (rc != -EAGAIN && rc != -EINTR)
			wfail("recv: %s", strerror(-rc));
	}
}

static inline void sb_recv(void *h, struct view *v)
{
	shmbus_msg_t m;

	sb_recv_msg(h, &m);
	v->data = m.data;
	v->len = m.len;
	v->lost = m.lost;
}

static const struct ops sb_ops = {
	.open_tx = sb_open_tx,
	.open_rx = sb_open_rx,
	.send = sb_send,
	.recv = sb_recv,
};

LOOPS_DEFINE(sb, &sb_ops)

/*
 * shmbus (acks): group members opened with SHMBUS_SUB_ACK and the group's default options
 * (ack_wait 30 s, 256 pending), each acking every message right after it receives it, as
 * a worker that acks when done would. A message delivered twice, or an ack refused, fails
 * the run: nothing here is slow enough to be handed back.
 */
static void *sba_open_rx(struct run *r, int chan, int idx)
{
	shmbus_sub_t *s;
	shmbus_group_opts_t go;

	(void)idx;
	if (r->c->sc != SC_GROUP)
		wfail("shmbus (acks) runs only as a group");
	shmbus_group_opts_init(&go);
	int rc = shmbus_sub_open_group(&s, shmbus_peer_worker_bus(r), chan ? r->b : r->a, "workers",
				       SHMBUS_SUB_ACK, &go);
	if (rc < 0)
		wfail("sub open (acks): %s (%s)", strerror(-rc), shmbus_errmsg());
	if (r->spin_us >= 0)
		shmbus_sub_set_spin(s, (unsigned)r->spin_us);
	return s;
}

static inline void sba_recv(void *h, struct view *v)
{
	shmbus_msg_t m;

	sb_recv_msg(h, &m);
	if (m.deliveries != 1)
		wfail("message %" PRIu64 " delivered %u times", m.seq, m.deliveries);
	int rc = shmbus_ack(h, &m);
	if (rc < 0)
		wfail("ack of message %" PRIu64 ": %s", m.seq, strerror(-rc));
	/* The view stays valid until the next receive, acked or not. */
	v->data = m.data;
	v->len = m.len;
	v->lost = m.lost;
}

static const struct ops sba_ops = {
	.open_tx = sb_open_tx,
	.open_rx = sba_open_rx,
	.send = sb_send,
	.recv = sba_recv,
};

LOOPS_DEFINE(sba, &sba_ops)

/*
 * Open latency (SC_OPEN): open and close a publisher (a 1x0 case) or a subscriber (0x1)
 * on topic a, cfg.open_n times after a short warm-up, each pair timed; the bus handle is
 * opened before (a process opens its bus once). On the brokered bus an open is a request
 * to the daemon and two descriptors back (SCM_RIGHTS), then the mapping; on the file bus,
 * an open of the topic file and the mapping.
 */
static void sb_opener(struct run *r, int idx)
{
	shmbus_bus_t *bus = shmbus_peer_worker_bus(r);
	const int pub = r->c->npub > 0;
	const uint64_t warm = cfg.open_n / 10 < 100 ? cfg.open_n / 10 : 100;
	/* A machine so slow that the run would take minutes stops early. */
	const uint64_t limit_ns = 5000000000ull;
	uint64_t t_end = 0;

	(void)idx;
	worker_ready_wait();
	for (uint64_t i = 0;; i++) {
		shmbus_pub_t *p = NULL;
		shmbus_sub_t *s = NULL;
		uint64_t t0 = now_ns();
		int rc = pub ? shmbus_pub_open(&p, bus, r->a) :
			       shmbus_sub_open(&s, bus, r->a, NULL, 0);

		if (rc < 0)
			wfail("%s open %" PRIu64 ": %s (%s)", pub ? "pub" : "sub", i, strerror(-rc),
			      shmbus_errmsg());
		if (pub)
			shmbus_pub_close(p);
		else
			shmbus_sub_close(s);
		uint64_t t1 = now_ns();

		__atomic_store_n(&ctl->w[0].count, i + 1, __ATOMIC_RELAXED);
		if (i < warm)
			continue;
		if (!t_end)
			t_end = t1 + limit_ns;
		hist_add(&ctl->h, t1 - t0);
		if (ctl->h.n >= cfg.open_n || t1 > t_end)
			break;
	}
	_exit(0);
}

#define SHMBUS_PEER_OF(var, id_, label_, flags_, avail_, pfx) \
	const struct peer var = {                             \
		.id = id_,                                    \
		.label = label_,                              \
		.flags = PF_SHMBUS | (flags_),                \
		.prepare = shmbus_peer_prepare,               \
		.cleanup = shmbus_peer_cleanup,               \
		LOOPS_ROLES(pfx),                             \
		.opener = sb_opener,                          \
		.available = (avail_),                        \
	}
#define SHMBUS_PEER(var, id_, label_, flags_, avail_) \
	SHMBUS_PEER_OF(var, id_, label_, flags_, avail_, sb)

/* The brokered peer runs if its daemon does: main.c starts it (brokered_start()). */
static int sb_brokered_available(char *why, size_t n)
{
	shmbus_bus_t *bus;
	shmbus_daemon_info_t info;

	if (shmbus_bus_open_flags(&bus, BROKERED_BUS, SHMBUS_BUS_LOOK) < 0) {
		snprintf(why, n, "no shmbusd with access = brokered running (not started)");
		return 0;
	}
	int rc = shmbus_daemon_ping(bus, 1000, &info);
	shmbus_bus_close(bus);
	if (rc < 0)
		snprintf(why, n, "the brokered bus's shmbusd does not answer: %s", strerror(-rc));
	return rc == 0;
}

SHMBUS_PEER(peer_shmbus, "shmbus", "shmbus (block)", 0, NULL);
SHMBUS_PEER(peer_shmbus_ovw, "shmbus_overwrite", "shmbus (overwrite)", PF_REPORTS_LOSS, NULL);
SHMBUS_PEER(peer_shmbus_spin, "shmbus_spin", "shmbus (reader spins)", 0, NULL);
SHMBUS_PEER(peer_shmbus_brokered, "shmbus_brokered", "shmbus (brokered)", 0, sb_brokered_available);
SHMBUS_PEER_OF(peer_shmbus_ack, "shmbus_ack", "shmbus (acks)", 0, NULL, sba);
