/* SPDX-License-Identifier: MIT */
/*
 * Clocks: CLOCK_MONOTONIC and CLOCK_REALTIME as read by clock_gettime(), and the publish
 * timestamp: CLOCK_REALTIME read through the TSC.
 *
 * clock_gettime() costs 20-60 ns under a hypervisor, as much as the rest of a 64-byte
 * publish. Where the TSC is invariant (constant rate, not stopped in sleep states), the
 * clock here reads it (~10 ns, not serialising) and scales it from an anchor pair
 * {tsc, CLOCK_REALTIME} taken at most ANCHOR_TICKS ago; every re-anchoring measures the
 * rate again over the interval since the previous anchor (never a short one: two threads
 * racing to re-anchor take one anchor). Measured here (tests/unit/clock.c): within ~1 us
 * of clock_gettime, from the first call on. Until the first rate is known (a few ms), on
 * CPUs without an invariant TSC, and when SHMBUS_CLOCK=gettime, every call is a
 * clock_gettime().
 *
 * The anchor is process-wide and read under a sequence lock: one thread re-anchors
 * (a busy flag, never waited for) while the others go on with the old anchor, or call
 * clock_gettime if it is not valid yet.
 */
#include "ring/clock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring/atomic.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#define HAVE_TSC 1
#else
#define HAVE_TSC 0
#endif

/* Re-anchor after at most this many ticks (2^27: ~50 ms at 2.6 GHz, ~130 ms at 1 GHz);
 * the first intervals are shorter (the span doubles from FIRST_TICKS), so the error of
 * the first rate, measured over a short interval, does not last long. */
#define ANCHOR_TICKS (1ull << 27)
/* The first rate is measured over at least this many ticks (~1.6 ms at 2.6 GHz). */
#define FIRST_TICKS (1ull << 22)
/* An anchor pair whose two TSC reads are further apart than this (~1.5 us at 2.6 GHz:
 * the thread was preempted or interrupted in clock_gettime) is not used. */
#define PAIR_TICKS (1ull << 12)
/* Plausible rates, in ns per tick as 32.32 fixed point: 100 MHz .. 20 GHz. */
#define MULT_MAX (10ull << 32)
#define MULT_MIN ((1ull << 32) / 20)

struct shmbus_clock shmbus_clk;
#define clk shmbus_clk
static uint32_t clk_busy; /* a thread is re-anchoring */

uint64_t shmbus_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t shmbus_wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#if HAVE_TSC
static int tsc_invariant(void)
{
	unsigned a, b, c, d;
	const char *env = getenv("SHMBUS_CLOCK");
	if (env && strcmp(env, "gettime") == 0)
		return 0;
	/* CPUID 0x80000007 EDX bit 8: invariant TSC (Intel and AMD). */
	if (!__get_cpuid(0x80000000, &a, &b, &c, &d) || a < 0x80000007)
		return 0;
	__get_cpuid(0x80000007, &a, &b, &c, &d);
	return (d >> 8) & 1;
}

/* Take a new anchor; measure the rate against the old one when it is old enough. */
static void reanchor(void)
{
	uint32_t idle = 0;
	if (!sb_cas_u32(&clk_busy, &idle, 1))
		return;
	/* state is read outside the busy flag (shmbus_stamp_slow): atomic on both sides. */
	if (!sb_ld_relaxed(&clk.state))
		sb_st_relaxed(&clk.state, tsc_invariant() ? 1 : -1);
	if (sb_ld_relaxed(&clk.state) < 0)
		goto out;
	/* Another thread may have re-anchored since we looked: a rate measured over a
	 * short interval would be far off, so only re-anchor when one is due. */
	uint64_t now = __rdtsc(), last = sb_ld_relaxed(&clk.tsc);
	if (last && now > last &&
	    now - last < (sb_ld_relaxed(&clk.mult) ? sb_ld_relaxed(&clk.span) : FIRST_TICKS))
		goto out;
	/* The TSC read on either side of clock_gettime, close together, else not at all. */
	uint64_t t0 = 0, t1 = 0, ns = 0;
	for (int tries = 0;; tries++) {
		if (tries == 4)
			goto out;
		t0 = __rdtsc();
		ns = shmbus_wall_ns();
		t1 = __rdtsc();
		if (t1 > t0 && t1 - t0 < PAIR_TICKS)
			break;
	}
	uint64_t tsc = t0 + (t1 - t0) / 2;
	uint64_t old_tsc = sb_ld_relaxed(&clk.tsc), old_ns = sb_ld_relaxed(&clk.ns);
	uint64_t mult = sb_ld_relaxed(&clk.mult);
	if (old_tsc && tsc > old_tsc && ns > old_ns) {
		uint64_t dt = tsc - old_tsc, dn = ns - old_ns;
		if (dt < FIRST_TICKS && !mult)
			goto out; /* too short to measure the rate: keep the first anchor */
		/* dn < 2^32 ns here (intervals are ~0.1 s), so dn << 32 does not overflow
		 * unless the process was stopped; then just start over. */
		if (dn < (1ull << 31)) {
			uint64_t m = (dn << 32) / dt;
			if (m >= MULT_MIN && m <= MULT_MAX)
				mult = m;
		}
	}
	/* Sequence lock: readers retry (or fall back) while seq is odd. */
	sb_st_relaxed(&clk.seq, sb_ld_relaxed(&clk.seq) + 1);
	sb_fence_release();
	sb_st_relaxed(&clk.tsc, tsc);
	sb_st_relaxed(&clk.ns, ns);
	sb_st_relaxed(&clk.mult, mult);
	uint64_t span = sb_ld_relaxed(&clk.span) * 2;
	sb_st_relaxed(&clk.span, !mult ? FIRST_TICKS : span < ANCHOR_TICKS ? span : ANCHOR_TICKS);
	sb_st_release(&clk.seq, sb_ld_relaxed(&clk.seq) + 1);
out:
	sb_st_release(&clk_busy, 0);
}

uint64_t shmbus_stamp_slow(uint64_t now)
{
	uint64_t tsc = sb_ld_relaxed(&clk.tsc), mult = sb_ld_relaxed(&clk.mult);
	/* Another thread anchored after our TSC read. */
	if (mult && now < tsc && tsc - now < FIRST_TICKS)
		return sb_ld_relaxed(&clk.ns) - (((tsc - now) * mult) >> 32);
	/* Re-anchor when the anchor is old, or old enough for the first rate. */
	if (sb_ld_relaxed(&clk.state) >= 0 && (mult || !tsc || now - tsc >= FIRST_TICKS))
		reanchor();
	return shmbus_wall_ns();
}
#else
uint64_t shmbus_stamp_slow(uint64_t now)
{
	(void)now;
	return shmbus_wall_ns();
}
#endif
