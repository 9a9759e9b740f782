/* SPDX-License-Identifier: MIT */
/*
 * Atomics on shared memory, every name prefixed sb_ (as ck_pr_ is). We use the compiler's
 * __atomic builtins rather than ck_pr: ck_pr on x86_64 is inline assembly, which
 * ThreadSanitizer cannot see, and the concurrency suite runs under TSan. The 16-byte CAS
 * is inline assembly (lock cmpxchg16b, see below); GCC's __atomic 16-byte operations would
 * go through libatomic. The spin pause is in ring/wake.h.
 */
#ifndef SHMBUS_RING_ATOMIC_H
#define SHMBUS_RING_ATOMIC_H

#include <stdint.h>

#define sb_ld_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define sb_ld_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define sb_st_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define sb_st_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define sb_st_seqcst(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define sb_ld_seqcst(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define sb_add_relaxed(p, v) ((void)__atomic_fetch_add((p), (v), __ATOMIC_RELAXED))
#define sb_fence_seqcst() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define sb_fence_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define sb_fence_release() __atomic_thread_fence(__ATOMIC_RELEASE)

static inline int sb_cas_u64(uint64_t *p, uint64_t *expect, uint64_t want)
{
	return __atomic_compare_exchange_n(p, expect, want, 0, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

static inline int sb_cas_u32(uint32_t *p, uint32_t *expect, uint32_t want)
{
	return __atomic_compare_exchange_n(p, expect, want, 0, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

/* Raise *p to at least v (a high-water mark); seq_cst like the CAS. */
static inline void sb_max_u32(uint32_t *p, uint32_t v)
{
	uint32_t cur = sb_ld_relaxed(p);
	while (cur < v && !sb_cas_u32(p, &cur, v))
		;
}

typedef unsigned __int128 sb_u128;

static inline sb_u128 sb_pair(uint64_t lo, uint64_t hi)
{
	return ((sb_u128)hi << 64) | lo;
}

#if defined(__x86_64__)
/*
 * 16-byte compare-and-swap of w[0..1] (16-byte aligned); a full barrier. On failure
 * *expect receives the current value. Returns 1 on success.
 *
 * Spelled out rather than __sync_val_compare_and_swap on an __int128: GCC passes that
 * through the stack (a dozen loads and stores on every publish), and ThreadSanitizer runs
 * 16-byte atomics under a mutex of its own process, which is no atomicity at all between
 * processes sharing the ring (TSan does not see the instruction; every other access to
 * these words is an 8-byte atomic it does see).
 */
static inline int sb_cas_pair(uint64_t w[2], uint64_t expect[2], const uint64_t want[2])
{
	unsigned char ok;
	__asm__ __volatile__("lock cmpxchg16b %1\n\tsete %0"
			     : "=q"(ok), "+m"(*(volatile sb_u128 *)(void *)w), "+a"(expect[0]),
			       "+d"(expect[1])
			     : "b"(want[0]), "c"(want[1])
			     : "memory", "cc");
	return ok;
}
#else
static inline int sb_cas_pair(uint64_t w[2], uint64_t expect[2], const uint64_t want[2])
{
	sb_u128 e = sb_pair(expect[0], expect[1]);
	sb_u128 got =
		__sync_val_compare_and_swap((sb_u128 *)(void *)w, e, sb_pair(want[0], want[1]));
	if (got == e)
		return 1;
	expect[0] = (uint64_t)got;
	expect[1] = (uint64_t)(got >> 64);
	return 0;
}
#endif

/*
 * A 16-byte pair that only grows (the claim tail: position and sequence move up together,
 * by one CAS) read without writing to it: what a reader with the log mapped read-only must
 * use (sb_ld_pair's CAS would fault there). [1] is read between two reads of [0] that
 * agree; as [0] never returns to a value, no CAS came between, and [1] is [0]'s. Seq_cst,
 * as a CAS is: callers order it after a store of their own.
 */
static inline void sb_ld_pair_ro(uint64_t w[2], uint64_t out[2])
{
	for (;;) {
		out[0] = __atomic_load_n(&w[0], __ATOMIC_SEQ_CST);
		out[1] = __atomic_load_n(&w[1], __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&w[0], __ATOMIC_SEQ_CST) == out[0])
			return;
	}
}

/* Atomic 16-byte load (a CAS that writes back what it found). */
static inline void sb_ld_pair(uint64_t w[2], uint64_t out[2])
{
	uint64_t zero[2] = { 0, 0 };
	out[0] = 0;
	out[1] = 0;
	sb_cas_pair(w, out, zero);
}

#endif
