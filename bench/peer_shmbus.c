/* SPDX-License-Identifier: MIT */
/*
 * shmbus itself, through its public API only, as a user would call it: shmbus_publish()
 * from a buffer, shmbus_recv() into a view. Three rows:
 *   shmbus (block)      the default policy, subscribers wait the default way (spin up to
 *                       20 us while it pays and the CPUs are not crowded, then sleep on
 *                       the futex)
 *   shmbus (overwrite)  the overwrite policy (readers copy each message out, and count
 *                       what they lose)
 *   shmbus (spin)       block, the subscriber never sleeps (one-way latency)
 * Each run gets fresh topics, removed afterwards; the driver and the workers use the bus
 * "bench" in the suite's private directory ($SHMBUS_DIR), with no daemon.
 */
#include <errno.h>
#include <stdlib.h>

#include <shmbus.h>

#include "loops.h"

static shmbus_bus_t *driver_bus, *worker_bus_h;

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
	driver_bus = NULL;
}

static shmbus_bus_t *worker_bus(void)
{
	if (!worker_bus_h) {
		int rc = shmbus_bus_open(&worker_bus_h, NULL);

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
	int rc = shmbus_topic_create(driver_bus, name, &o);
	if (rc < 0) {
		snprintf(r->err, sizeof(r->err), "create topic %s: %s (%s)", name, strerror(-rc),
			 shmbus_errmsg());
		return rc;
	}
	return 0;
}

static int sb_prepare(struct run *r)
{
	snprintf(r->a, sizeof(r->a), "bench.c%d.r%d.a", r->idx, r->round);
	snprintf(r->b, sizeof(r->b), "bench.c%d.r%d.b", r->idx, r->round);
	int rc = sb_make_topic(r, r->a);
	if (!rc)
		rc = sb_make_topic(r, r->b);
	return rc;
}

static void sb_cleanup(struct run *r)
{
	shmbus_topic_remove(driver_bus, r->a);
	shmbus_topic_remove(driver_bus, r->b);
}

int shmbus_peer_counts(const struct run *r, struct sb_counts *k)
{
	shmbus_topic_stats_t st;
	int rc = shmbus_topic_stats(driver_bus, r->a, &st);

	if (rc < 0)
		return rc;
	k->wakeups = st.wakeups;
	k->published = st.next_seq;
	k->bp_waits = st.backpressure_waits;
	return 0;
}

static void *sb_open_tx(struct run *r, int chan, int idx)
{
	shmbus_pub_t *p;

	(void)idx;
	int rc = shmbus_pub_open(&p, worker_bus(), chan ? r->b : r->a);
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
	int rc = shmbus_sub_open(&s, worker_bus(), chan ? r->b : r->a,
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

static inline void sb_recv(void *h, struct view *v)
{
	shmbus_msg_t m;

	for (;;) {
		int rc = shmbus_recv(h, &m, 1000);

		if (rc == 0)
			break;
		if (rc != -EAGAIN && rc != -EINTR)
			wfail("recv: %s", strerror(-rc));
	}
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

#define SHMBUS_PEER(var, id_, label_, flags_)  \
	const struct peer var = {              \
		.id = id_,                     \
		.label = label_,               \
		.flags = PF_SHMBUS | (flags_), \
		.prepare = sb_prepare,         \
		.cleanup = sb_cleanup,         \
		LOOPS_ROLES(sb),               \
	}

SHMBUS_PEER(peer_shmbus, "shmbus", "shmbus (block)", 0);
SHMBUS_PEER(peer_shmbus_ovw, "shmbus_overwrite", "shmbus (overwrite)", PF_REPORTS_LOSS);
SHMBUS_PEER(peer_shmbus_spin, "shmbus_spin", "shmbus (reader spins)", 0);
