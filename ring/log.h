/* SPDX-License-Identifier: MIT */
/*
 * The log: a power-of-two byte ring of variable-size records, claimed by any number of
 * publishers with one 16-byte CAS on the tail {position, next sequence}. This header holds
 * the record helpers and the publisher-side operations (claim, wake, limit in block mode),
 * and the repair of claims left open by dead processes. See docs/algorithm.md.
 */
#ifndef SHMBUS_RING_LOG_H
#define SHMBUS_RING_LOG_H

#include <stdint.h>

#include "ring/atomic.h"
#include "shm/segment.h"

/* A sequence number not known (a group created "from earliest" before its first read). */
#define SHMBUS_NOSEQ UINT64_MAX

/* Longest claim, so that a padding record (31-bit length) can always cover it. */
#define SHMBUS_CLAIM_MAX (1ull << 30)

static inline uint64_t ring_stamp(const struct shmbus_seg *s, uint64_t pos)
{
	return pos ^ s->key;
}

static inline struct shmbus_rec *ring_rec(const struct shmbus_seg *s, uint64_t pos)
{
	return (struct shmbus_rec *)(void *)(s->log + (pos & s->mask));
}

static inline uint64_t ring_stride(uint64_t len)
{
	return (SHMBUS_REC_HDR + len + SHMBUS_REC_ALIGN - 1) & ~(uint64_t)(SHMBUS_REC_ALIGN - 1);
}

/* Largest claim this topic allows (the batch chunk size). */
static inline uint64_t ring_claim_max(const struct shmbus_seg *s)
{
	uint64_t m = s->cap / 2;
	return m < SHMBUS_CLAIM_MAX ? m : SHMBUS_CLAIM_MAX;
}

/* Publisher-side state (one per publisher handle). */
struct shmbus_ring_pub {
	struct shmbus_seg *seg;
	struct shmbus_pub_slot *slot;
	uint64_t limit;    /* block: claims may end at or below this (cached; only grows) */
	uint64_t spin_ns;  /* how long to spin for space before sleeping */
	uint64_t *gcur;    /* scratch: group cursors, max_groups entries */
	uint8_t *ghas;     /* scratch: group has a member */
};

/* A claim: [start, end) in the log; records from rec (start, or after lap padding). */
struct shmbus_claim {
	uint64_t start;
	uint64_t rec;
	uint64_t end;
	uint64_t seq;
	int waited; /* the claim waited for space (block mode) */
};

/*
 * Claim size bytes (<= ring_claim_max) for nmsg messages, padding to the lap end first if
 * they would straddle it (the padding is written and committed here). In block mode wait
 * until no live reader would be overrun, up to timeout_ms (< 0: forever).
 * Returns 0 or -EAGAIN. The claim is recorded in the publisher slot before it is taken,
 * so a reader can repair it if this process dies before committing.
 */
int shmbus_ring_claim(struct shmbus_ring_pub *rp, uint64_t size, uint64_t nmsg,
		      int timeout_ms, struct shmbus_claim *c);

/* Write a committed padding record of size bytes at pos that burns `burned` sequences. */
void shmbus_ring_write_pad(struct shmbus_seg *s, uint64_t pos, uint64_t size, uint64_t burned);

/* Set once per process when membarrier registration succeeded (see ring/wake.h). */
extern int shmbus_ring_fence_free;

/* The futex wake of shmbus_ring_wake_readers (there are sleepers). */
void shmbus_ring_wake_sleepers(struct shmbus_seg *s);

/* After commits: wake sleeping readers if there are any (one fence, usually no syscall). */
static inline void shmbus_ring_wake_readers(struct shmbus_seg *s)
{
	/* Orders our commit stores before reading sleepers; pairs with the reader's
	 * increment of sleepers before its last re-check (Dekker): either it sees our
	 * commit or we see it asleep. With membarrier the reader's global barrier does
	 * our half, and we spare the fence (it would wait for the commit's cache line). */
	if (shmbus_ring_fence_free)
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	else
		sb_fence_seqcst();
	if (sb_ld_relaxed(&s->hdr->sleepers))
		shmbus_ring_wake_sleepers(s);
}

/* The futex wake of shmbus_ring_wake_publishers (there are waiters). */
void shmbus_ring_wake_waiting_publishers(struct shmbus_seg *s);

/* After a reader released space: wake waiting publishers if there are any. Inline: every
 * block-mode read calls it, and the check alone is one load. */
static inline void shmbus_ring_wake_publishers(struct shmbus_seg *s)
{
	/* No fence here (it would cost every release): a publisher that misses this wake
	 * re-checks within its 1 ms poll. */
	if (sb_ld_relaxed(&s->hdr->pub_waiters))
		shmbus_ring_wake_waiting_publishers(s);
}

/*
 * The lowest position publishers must not lap: claims still being written, and in block
 * mode what live readers need (fan-out positions, held group messages, cursors of groups
 * with members or with a lease that has not expired); the tail if none.
 * gcur/ghas: scratch of max_groups entries.
 */
uint64_t shmbus_ring_min_pos(struct shmbus_seg *s, uint64_t *gcur, uint8_t *ghas);

/*
 * Free the reader slots of dead processes that hold position minpos (or any, when minpos
 * is SHMBUS_NOPOS). Returns how many were freed.
 */
int shmbus_ring_reclaim_readers(struct shmbus_seg *s, uint64_t minpos);

/* Free one reader slot whose owner (observed as owner) is dead. 1 if this call freed it. */
int shmbus_ring_reclaim_reader(struct shmbus_seg *s, uint32_t idx, uint64_t owner);

/*
 * A reader is stuck at pos p: the tail is past it but no record is committed there.
 * If the publisher whose claim covers p is dead, cover the rest of its claim with
 * padding (counted as aborted) and free its slot. Returns 1 when p is now committed,
 * 0 when the claimant is alive or not found (wait and call again).
 */
int shmbus_ring_repair(struct shmbus_seg *s, uint64_t p);

/*
 * Free publisher slots of dead processes whose claims are resolved (repairing those that
 * are not); only_claims: look only at slots with a claim open. Returns how many.
 */
int shmbus_ring_pub_gc(struct shmbus_seg *s, int only_claims);

/* Raise a high-water mark to at least v. */
void shmbus_ring_hwm_raise(uint32_t *hwm, uint32_t v);

/*
 * Transitional (issue 12): the daemon still spells two atomics without their sb_ prefix
 * (daemon/reaper.c, which includes this header). Remove these once it uses the prefixed
 * names; the library does not use them.
 */
#define ld_relaxed sb_ld_relaxed
#define ld_acquire sb_ld_acquire

#endif
