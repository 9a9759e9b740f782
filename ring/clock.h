/* SPDX-License-Identifier: MIT */
/*
 * Clocks: CLOCK_MONOTONIC for waiting and deadlines, CLOCK_REALTIME for message
 * timestamps, the latter read through the TSC where it is invariant (ring/clock.c).
 */
#ifndef SHMBUS_RING_CLOCK_H
#define SHMBUS_RING_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
uint64_t shmbus_now_ns(void);
uint64_t shmbus_wall_ns(void);

/* The deadline timeout_ms after now (CLOCK_MONOTONIC ns); < 0: none, UINT64_MAX. */
static inline uint64_t shmbus_deadline(uint64_t now, int timeout_ms)
{
	if (timeout_ms < 0)
		return UINT64_MAX;
	return now + (uint64_t)timeout_ms * 1000000ull;
}

/*
 * CLOCK_REALTIME for message timestamps, read through the TSC where it is invariant
 * (ring/clock.c): within a few us of clock_gettime, at a fraction of its cost.
 * Thread-safe. The common case inline: the anchor under a sequence lock.
 */
struct shmbus_clock {
	uint32_t seq;	  /* odd while being changed */
	int state;	  /* 0 unknown, 1 TSC usable, -1 not */
	uint64_t tsc, ns; /* the anchor */
	uint64_t mult;	  /* ns per tick, 32.32; 0 until measured */
	uint64_t span;	  /* ticks after the anchor that it is used for */
};
extern struct shmbus_clock shmbus_clk;

/* The rest: no anchor yet, an old one, or no TSC (now: the TSC read, or 0). */
uint64_t shmbus_stamp_slow(uint64_t now);

/* The common case alone: 1 and *ns when the anchor serves, else 0 (then call
 * shmbus_stamp_ns()). No call, so a caller's fast path can stay a leaf. */
static inline int shmbus_stamp_fast(uint64_t *ns_out, uint64_t *now_out)
{
#if defined(__x86_64__)
	uint64_t now = __builtin_ia32_rdtsc();
	struct shmbus_clock *c = &shmbus_clk;
	uint32_t seq = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
	uint64_t tsc = __atomic_load_n(&c->tsc, __ATOMIC_RELAXED);
	uint64_t ns = __atomic_load_n(&c->ns, __ATOMIC_RELAXED);
	uint64_t mult = __atomic_load_n(&c->mult, __ATOMIC_RELAXED);
	uint64_t span = __atomic_load_n(&c->span, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	*now_out = now;
	/* |now - tsc| < span <= 2^27 and mult < 2^36: the product fits in 64 bits. */
	if (!(seq & 1) && now >= tsc && now - tsc < span && mult &&
	    __atomic_load_n(&c->seq, __ATOMIC_RELAXED) == seq) {
		*ns_out = ns + (((now - tsc) * mult) >> 32);
		return 1;
	}
#else
	(void)ns_out;
	*now_out = 0;
#endif
	return 0;
}

static inline uint64_t shmbus_stamp_ns(void)
{
	uint64_t ns, now;
	if (shmbus_stamp_fast(&ns, &now))
		return ns;
	return shmbus_stamp_slow(now);
}

#endif
