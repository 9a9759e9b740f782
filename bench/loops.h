/* SPDX-License-Identifier: MIT */
/*
 * The measuring loops, written once for every peer. A peer file describes its channel as
 * a constant struct ops and instantiates the loops with it (LOOPS_DEFINE); since the loops
 * are always inlined and the ops constant, the compiler calls the peer's functions
 * directly (and inlines them): the bare ring pays no indirect call per message, or it
 * would not be the limit any more.
 *
 * Every loop checks every message: its length, the publisher's counter (in order, none
 * twice, none missing unless the peer may lose messages), and for 16 bytes and up the
 * copy of the tag in the last 8 bytes (a torn message). A peer whose channel is several
 * topics (a sink over SINK_TOPICS of them: ops.lanes) keeps order per topic only; there
 * the counter is checked per topic, each message in the topic it was sent to. Readers of messages above 64 bytes
 * read one word per cache line, so the whole message moves to the reader's core.
 */
#ifndef SHMBUS_BENCH_LOOPS_H
#define SHMBUS_BENCH_LOOPS_H

#include <inttypes.h>
#include <unistd.h>

#include "bench.h"

/* A received message: valid until the next recv on the same handle. */
struct view {
	const uint8_t *data;
	uint32_t len;
	uint64_t lost; /* messages the channel says were lost just before this one */
	unsigned lane; /* the topic it came from, of ops.lanes (0 where there is one) */
};

/* The most lanes (topics of a channel) a peer may have. */
#define MAX_LANES SINK_TOPICS

struct ops {
	/* Open one end of channel chan (0 = a, 1 = b) in a worker; idx is the worker's
	 * index among the publishers (tx) or readers (rx). Fail with wfail(). */
	void *(*open_tx)(struct run *r, int chan, int idx);
	void *(*open_rx)(struct run *r, int chan, int idx);
	/* Send one message (it may be buffered until flush). */
	void (*send)(void *h, const uint8_t *buf, uint32_t len);
	/* Push out what send buffered; NULL if it never buffers. */
	void (*flush)(void *h);
	/* Wait for the next message; set v->lane where lanes > 1. */
	void (*recv)(void *h, struct view *v);
	/* A channel of this many topics (0: one), each in order, not in order with each
	 * other: message n of a sender goes to topic n % lanes. */
	unsigned lanes;
};

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE void sink_u64(uint64_t x)
{
	/* The reader's loads of a large message must happen: x escapes here. */
	__asm__ __volatile__("" : : "r"(x));
}

/*
 * A sender that has sent all it will: it says so and waits, its channel still open, to be
 * ended by the driver once the readers have everything. (Closing could drop what is still
 * queued: ZeroMQ, for one, drops a pipe's messages when its peer disconnects.)
 */
static inline __attribute__((noreturn)) void sender_done(int idx)
{
	/* Release: the final count is visible with the flag. */
	__atomic_store_n(&ctl->w[idx].done, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
}

/* Send one message and push it out at once (round trips and paced sends). */
ALWAYS_INLINE void send_now(const struct ops *o, void *h, const uint8_t *buf, uint32_t len)
{
	o->send(h, buf, len);
	if (o->flush)
		o->flush(h);
}

/* When message i of a paced run is due. */
ALWAYS_INLINE uint64_t due_at(uint64_t t0, uint64_t i, uint64_t rate)
{
	return t0 + (uint64_t)((double)i * 1e9 / (double)rate);
}

/*
 * Throughput publisher: as fast as the channel takes messages, until told to stop. With a
 * rate (a paced fan-out: do readers that could keep up lose anything?), message n is due at
 * t_go + n/rate and the publisher sleeps until then: it leaves the CPUs to the readers, as
 * a publisher with other work would, and the timer's slack makes it send what fell due
 * meanwhile in bursts of a few, which keeps the rate on average. (The one-way sender below
 * waits busily instead: it measures latency from each due time.)
 */
ALWAYS_INLINE void tpl_producer(struct run *r, int idx, const struct ops *o)
{
	void *h = o->open_tx(r, 0, idx);
	const uint32_t size = r->size;
	const uint64_t rate = r->c->rate;
	uint8_t *buf = msg_buf(size);
	uint64_t *cnt = &ctl->w[idx].count;

	worker_ready_wait();
	const uint64_t t0 = ctl->t_go;
	msg_stamp(buf, size, TAG(idx, 0), 0);
	for (uint64_t n = 0;; n++) {
		if ((n & 63) == 0 && stopped())
			break;
		if (rate) {
			uint64_t due = due_at(t0, n, rate);

			if (now_ns() < due)
				sleep_until(due);
		}
		o->send(h, buf, size);
		/* Relaxed: the driver samples the count twice; nothing else depends on it. */
		__atomic_store_n(cnt, n + 1, __ATOMIC_RELAXED);
		/* The next message is tagged now, well before send() copies it: copying a
		 * buffer right after narrower stores to it stalls on store forwarding, a cost
		 * of this harness, not of the channel. */
		msg_stamp(buf, size, TAG(idx, n + 1), 0);
	}
	if (o->flush)
		o->flush(h);
	sender_done(idx);
}

/* Throughput reader: checks and counts every message until the driver ends it. */
ALWAYS_INLINE void tpl_consumer(struct run *r, int idx, const struct ops *o)
{
	void *h = o->open_rx(r, 0, idx);
	const uint32_t size = r->size;
	const unsigned npub = (unsigned)r->npub;
	const unsigned flags = peers[r->c->peer]->flags;
	const int group = r->c->sc == SC_GROUP;
	/* A member of a group sees a subset: only the order is known. */
	const int exact = !group && !(flags & (PF_SILENT_LOSS | PF_REPORTS_LOSS));
	const int gaps = !group && (flags & PF_SILENT_LOSS);
	const unsigned lanes = o->lanes ? o->lanes : 1;
	struct wslot *w = &ctl->w[r->npub + idx];
	/* Per publisher and lane, the counter due next: lane l of a publisher carries its
	 * messages l, l + lanes, l + 2 lanes... */
	uint64_t expect[MAX_PUBS * MAX_LANES], count = 0, lost = 0, sum_tag = 0, sum_hash = 0;

	if (lanes > MAX_LANES)
		wfail("reader %d: %u topics a channel, at most %d", idx, lanes, MAX_LANES);
	for (unsigned e = 0; e < MAX_PUBS * lanes; e++)
		expect[e] = e % lanes;
	worker_ready_wait();
	for (;;) {
		struct view v;

		v.lane = 0;
		o->recv(h, &v);
		if (v.len != size)
			wfail("reader %d: a message of %u bytes, expected %u", idx, v.len, size);
		uint64_t t = load_u64(v.data);
		unsigned p = TAG_PUB(t);
		uint64_t n = TAG_N(t);
		if (p >= npub || v.lane >= lanes)
			wfail("reader %d: a message from publisher %u of %u (topic %u of %u)", idx,
			      p, npub, v.lane, lanes);
		unsigned e = p * lanes + v.lane;
		if (n != expect[e]) {
			if (exact || n < expect[e])
				wfail("reader %d: message %" PRIu64
				      " of publisher %u (topic %u) came when %" PRIu64 " was due",
				      idx, n, p, v.lane, expect[e]);
			if (gaps) {
				lost += (n - expect[e]) / lanes;
				__atomic_store_n(&w->lost, lost, __ATOMIC_RELAXED);
			}
		}
		expect[e] = n + lanes;
		if (v.lost) {
			lost += v.lost;
			__atomic_store_n(&w->lost, lost, __ATOMIC_RELAXED);
		}
		if (size >= 16 && load_u64(v.data + size - 8) != t)
			wfail("reader %d: message %" PRIu64 " of publisher %u is torn", idx, n, p);
		if (size > 64)
			sink_u64(touch_lines(v.data, size));
		if (group) {
			/* Read by the driver once the readers are ended. */
			sum_tag += t;
			sum_hash += tag_hash(t);
			__atomic_store_n(&w->sum_tag, sum_tag, __ATOMIC_RELAXED);
			__atomic_store_n(&w->sum_hash, sum_hash, __ATOMIC_RELAXED);
		}
		/* Relaxed: sampled by the driver only. */
		__atomic_store_n(&w->count, ++count, __ATOMIC_RELAXED);
	}
}

/*
 * Before each round trip of the wake-up scenario the pinger waits this long (busily), so
 * the ponger has surely gone to sleep: a shmbus reader polls the ring a few dozen times
 * even with a spin of 0, and a reply faster than that would measure no wake-up at all.
 */
#define WAKEUP_GAP_NS 20000u

/*
 * Wait busily until t. No PAUSE in this loop: under KVM a vCPU that keeps executing PAUSE
 * can be made to exit to the host and yield (pause-loop exiting), which would delay the
 * very send this wait is timing; the clock reads space the loop out well enough.
 */
ALWAYS_INLINE void spin_until(uint64_t t)
{
	while (now_ns() < t)
		__asm__ __volatile__("" ::: "memory");
}

/*
 * The clock of a round-trip run: a warm-up of cfg.pp_warm round trips or cfg.warm seconds,
 * whichever ends first (a slow peer would otherwise spend the whole run warming up), then
 * cfg.pp_n recorded round trips or cfg.pp_secs seconds, whichever ends first.
 */
struct rt_clock {
	uint64_t warm_until, until;
	int on;
};

ALWAYS_INLINE void rt_begin(struct rt_clock *c)
{
	c->warm_until = now_ns() + (uint64_t)(cfg.warm * 1e9);
	c->until = UINT64_MAX;
	c->on = 0;
}

/* Account for round trip i, from t0 to t1. Returns 1 when the run is over. */
ALWAYS_INLINE int rt_record(struct rt_clock *c, uint64_t i, uint64_t t0, uint64_t t1)
{
	struct hist *hs = &ctl->h;

	__atomic_store_n(&ctl->w[0].count, i + 1, __ATOMIC_RELAXED);
	if (c->on) {
		hist_add(hs, t1 - t0);
		return hs->n >= cfg.pp_n || ((i & 63) == 0 && t1 > c->until);
	}
	if (i + 1 >= cfg.pp_warm || t1 > c->warm_until) {
		c->on = 1;
		c->until = t1 + (uint64_t)(cfg.pp_secs * 1e9);
	}
	return 0;
}

/* Ping-pong, the measuring side: send on a, wait for the echo on b; round trip times. */
ALWAYS_INLINE void tpl_pinger(struct run *r, int idx, const struct ops *o)
{
	void *tx = o->open_tx(r, 0, idx), *rx = o->open_rx(r, 1, idx);
	const uint32_t size = r->size;
	const uint64_t gap = r->c->sc == SC_WAKEUP ? WAKEUP_GAP_NS : 0;
	uint8_t *buf = msg_buf(size);
	struct rt_clock clk;

	worker_ready_wait();
	rt_begin(&clk);
	uint64_t t1 = now_ns();
	for (uint64_t i = 0;; i++) {
		struct view v;

		msg_stamp(buf, size, TAG(0, i), 0);
		if (gap)
			spin_until(t1 + gap);
		uint64_t t0 = now_ns();
		send_now(o, tx, buf, size);
		o->recv(rx, &v);
		t1 = now_ns();
		if (v.len != size || load_u64(v.data) != TAG(0, i))
			wfail("pong %" PRIu64 ": wrong message (%u bytes, tag %" PRIx64 ")", i,
			      v.len, load_u64(v.data));
		if (rt_record(&clk, i, t0, t1))
			break;
	}
	_exit(0);
}

/* Ping-pong, the echoing side: until the driver ends it. */
ALWAYS_INLINE void tpl_ponger(struct run *r, int idx, const struct ops *o)
{
	void *rx = o->open_rx(r, 0, idx), *tx = o->open_tx(r, 1, idx);

	worker_ready_wait();
	for (;;) {
		struct view v;

		o->recv(rx, &v);
		send_now(o, tx, v.data, v.len);
	}
}

/*
 * One-way latency at a fixed rate: message i is due at t_go + i/rate. The sender waits
 * busily for that time (sleeping would add its own wake-up delay to every peer) and
 * writes it into the message; the reader measures from it, not from when the message was
 * actually sent, so a channel that holds the sender up is charged for the messages that
 * waited behind (no coordinated omission). A sender more than a second behind stops.
 */
ALWAYS_INLINE void tpl_paced_tx(struct run *r, int idx, const struct ops *o)
{
	void *tx = o->open_tx(r, 0, idx);
	const uint32_t size = r->size;
	const uint64_t rate = r->c->rate;
	uint8_t *buf = msg_buf(size);
	uint64_t i;

	worker_ready_wait();
	const uint64_t t0 = ctl->t_go, end = ctl->end;
	for (i = 0;; i++) {
		uint64_t due = due_at(t0, i, rate);
		uint64_t t;

		if (due >= end)
			break;
		/* As in spin_until(): no PAUSE. */
		while ((t = now_ns()) < due)
			__asm__ __volatile__("" ::: "memory");
		if (t - due > 1000000000ull) {
			/* A second behind: give up. Every message due in the measured window
			 * and never sent would have waited at least until now. */
			ctl->saturated = 1;
			for (uint64_t j = i;; j++) {
				uint64_t d = due_at(t0, j, rate);

				if (d >= end)
					break;
				if (d >= ctl->warm_end)
					hist_add(&ctl->h_unsent, t - d);
			}
			break;
		}
		msg_stamp(buf, size, TAG(0, i), due);
		send_now(o, tx, buf, size);
		__atomic_store_n(&ctl->w[0].count, i + 1, __ATOMIC_RELAXED);
		ctl->last_send = t;
	}
	ctl->sent = i;
	msg_stamp(buf, size, TAG_END, 0);
	send_now(o, tx, buf, size);
	sender_done(idx);
}

ALWAYS_INLINE void tpl_paced_rx(struct run *r, int idx, const struct ops *o)
{
	void *rx = o->open_rx(r, 0, idx);
	const uint32_t size = r->size;
	struct hist *hs = &ctl->h;
	const unsigned lanes = o->lanes ? o->lanes : 1;
	uint64_t expect[MAX_LANES], count = 0;

	if (lanes > MAX_LANES)
		wfail("%u topics a channel, at most %d", lanes, MAX_LANES);
	for (unsigned l = 0; l < lanes; l++)
		expect[l] = l;
	worker_ready_wait();
	const uint64_t warm = ctl->warm_end;
	for (;;) {
		struct view v;

		v.lane = 0;
		o->recv(rx, &v);
		uint64_t t = now_ns();
		uint64_t tag = load_u64(v.data);
		if (tag == TAG_END)
			break;
		if (v.lane >= lanes || v.len != size || tag != TAG(0, expect[v.lane]))
			wfail("message %" PRIu64 " (topic %u): wrong (%u bytes, tag %" PRIx64 ")",
			      expect[v.lane < lanes ? v.lane : 0], v.lane, v.len, tag);
		expect[v.lane] += lanes;
		uint64_t due = load_u64(v.data + 8);
		if (due >= warm)
			hist_add(hs, t > due ? t - due : 0);
		__atomic_store_n(&ctl->w[1].count, ++count, __ATOMIC_RELAXED);
	}
	_exit(0);
}

/* Define the six roles of a peer from its ops: prefix_producer, ... */
#define LOOPS_DEFINE(prefix, opsp)                                                    \
	__attribute__((unused)) static void prefix##_producer(struct run *r, int idx) \
	{                                                                             \
		tpl_producer(r, idx, opsp);                                           \
	}                                                                             \
	__attribute__((unused)) static void prefix##_consumer(struct run *r, int idx) \
	{                                                                             \
		tpl_consumer(r, idx, opsp);                                           \
	}                                                                             \
	__attribute__((unused)) static void prefix##_pinger(struct run *r, int idx)   \
	{                                                                             \
		tpl_pinger(r, idx, opsp);                                             \
	}                                                                             \
	__attribute__((unused)) static void prefix##_ponger(struct run *r, int idx)   \
	{                                                                             \
		tpl_ponger(r, idx, opsp);                                             \
	}                                                                             \
	__attribute__((unused)) static void prefix##_paced_tx(struct run *r, int idx) \
	{                                                                             \
		tpl_paced_tx(r, idx, opsp);                                           \
	}                                                                             \
	__attribute__((unused)) static void prefix##_paced_rx(struct run *r, int idx) \
	{                                                                             \
		tpl_paced_rx(r, idx, opsp);                                           \
	}

/* The six roles of a struct peer, as LOOPS_DEFINE(prefix, ...) defined them. */
#define LOOPS_ROLES(prefix)                                                                      \
	.producer = prefix##_producer, .consumer = prefix##_consumer, .pinger = prefix##_pinger, \
	.ponger = prefix##_ponger, .paced_tx = prefix##_paced_tx, .paced_rx = prefix##_paced_rx

#endif
