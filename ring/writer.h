/* SPDX-License-Identifier: MIT */
/*
 * The writer of a topic's log: claim, write, commit, wake. Any number of writers claim
 * with one 16-byte CAS on the tail {position, next sequence}; a claim is named in the
 * writer's publisher slot before it is taken (I3), padded to the lap end when it would
 * straddle it (I2), and kept within the limit (I4, I5). See docs/algorithm.md, and
 * ring/reader.h for the other side.
 *
 * The common case of one message is inline (shmbus_ring_write_fast()), built from the same
 * claim step as the general path (shmbus_ring_claim()), so that nothing is slower than a
 * hand-written copy would be. A writer is used by one thread at a time.
 */
#ifndef SHMBUS_RING_WRITER_H
#define SHMBUS_RING_WRITER_H

#include <errno.h>
#include <stdint.h>

#include <shmbus.h>

#include "ring/atomic.h"
#include "ring/record.h"
#include "ring/wake.h"
#include "shm/segment.h"

/* One writer: the mapped topic, its publisher slot, what it caches, what it holds. */
struct shmbus_ring_writer {
	struct shmbus_seg seg;
	struct shmbus_pub_slot *slot;
	uint64_t limit;	  /* claims may end at or below this (cached I4/I5 bound; only grows) */
	uint64_t spin_ns; /* how long to spin for space before sleeping */
	uint64_t *gcur;	  /* scratch: group cursors, max_groups entries */
	uint8_t *ghas;	  /* scratch: group has a member */
	/* local copies of the slot's counters (only we write them) */
	uint64_t published;
	uint64_t bytes;
	/* the open reservation */
	int reserved;
	uint64_t res_rec;
	uint64_t res_len;
	uint64_t res_seq;
};

/*
 * Set up a writer on a mapped topic (w->seg, the rest zeroed); the caller then gives it the
 * publisher slot it took (w->slot) before it writes. Returns 0 or -ENOMEM.
 */
int shmbus_ring_writer_init(struct shmbus_ring_writer *w);

/*
 * Stop writing: abort an open reservation, fold the slot's counters into the topic's and
 * clear them and the claim (when it has a slot), free the scratch. The slot stays owned
 * (the caller gives it back); w->seg stays mapped.
 */
void shmbus_ring_writer_fini(struct shmbus_ring_writer *w);

/* A claim: [start, end) in the log; records from rec (start, or after lap padding). */
struct shmbus_claim {
	uint64_t start;
	uint64_t rec;
	uint64_t end;
	uint64_t seq;
	int waited; /* the claim waited for space (block mode) */
};

/* Largest claim this topic allows (the batch chunk size). */
static inline uint64_t shmbus_ring_claim_max(const struct shmbus_seg *s)
{
	uint64_t m = s->cap / 2;
	return m < SHMBUS_CLAIM_MAX ? m : SHMBUS_CLAIM_MAX;
}

/* Bytes beyond a claim to own before the next one (the general path). */
#define SHMBUS_PREFETCH_AHEAD 256u

/*
 * One attempt at claiming size bytes for nmsg messages, t being the tail as read (a guess:
 * the CAS corrects it, and fails if the two halves were read from different claims).
 * fast: the inline path of one small message, which gives up rather than pad and owns a
 * fixed four lines. Returns 1 claimed (c filled; lap padding from c->start to c->rec is
 * the caller's to write), 0 lost the race (t holds the tail found), -ENOSPC the claim would
 * end past the cached limit at c->end (or, fast, straddle the lap end), -EBADMSG an
 * unaligned tail (damage: claims end on record boundaries).
 */
static inline __attribute__((always_inline)) int shmbus_ring_claim_try(struct shmbus_ring_writer *w,
								       uint64_t t[2], uint64_t size,
								       uint64_t nmsg, int fast,
								       struct shmbus_claim *c)
{
	struct shmbus_seg *s = &w->seg;
	struct shmbus_topic_hdr *h = s->hdr;
	struct shmbus_pub_slot *slot = w->slot;
	uint64_t off = t[0] & s->mask;
	uint64_t pad = 0;
	if (t[0] & (SHMBUS_REC_ALIGN - 1))
		return -EBADMSG;
	if (off + size > s->cap) {
		if (fast)
			return -ENOSPC;
		pad = s->cap - off; /* I2 */
	}
	uint64_t end = t[0] + pad + size;
	c->end = end;
	if (end > w->limit)
		return -ENOSPC;
	/* Own the lines we are about to write (and the next claim's) before the CAS: its full
	 * barrier waits for our pending stores, and a store to a line a reader holds costs a
	 * cross-core round trip. PREFETCHW overlaps them. */
	if (fast) {
		const uint8_t *q = s->log + off;
		__builtin_prefetch(q, 1, 3);
		__builtin_prefetch(q + 64, 1, 3);
		__builtin_prefetch(s->log + ((end + 64) & s->mask), 1, 3);
		__builtin_prefetch(s->log + ((end + 128) & s->mask), 1, 3);
	} else {
		for (uint64_t q = t[0] & ~63ull; q < end + SHMBUS_PREFETCH_AHEAD; q += 64)
			__builtin_prefetch(s->log + (q & s->mask), 1, 3);
	}
	/* I3: the claim is in the slot before the CAS (whose full barrier orders these
	 * stores before it). */
	sb_st_relaxed(&slot->claim_end, end);
	sb_st_relaxed(&slot->claim_nmsg, nmsg);
	sb_st_relaxed(&slot->claim_pos, t[0]);
	uint64_t want[2] = { end, t[1] + nmsg };
	if (!sb_cas_pair(h->tail, t, want))
		return 0;
	c->start = t[0];
	c->rec = t[0] + pad;
	c->seq = t[1];
	return 1;
}

/*
 * Claim size bytes (<= shmbus_ring_claim_max()) for nmsg messages, padding to the lap end
 * first if they would straddle it (the padding is written and committed here). In block
 * mode wait until no live reader would be overrun, up to timeout_ms (< 0: forever).
 * Returns 0, -EAGAIN (timed out) or -EBADMSG (a damaged tail); on failure the caller
 * clears the slot's claim_pos (it may name a candidate that was never taken).
 */
int shmbus_ring_claim(struct shmbus_ring_writer *w, uint64_t size, uint64_t nmsg, int timeout_ms,
		      struct shmbus_claim *c);

/* The futex wake of shmbus_ring_wake_after(): clear the armed bits, count, FUTEX_WAKE. */
void shmbus_ring_wake_sleepers(struct shmbus_seg *s);

/*
 * After the last commit of the claim [start, end), whose seal read the wake word as wake:
 * the publisher's half of the sleep/wake handshake (docs/algorithm.md, "Waking readers").
 * A reader that armed before that read is woken (lazily armed ones only when the claim
 * crosses a sixteenth of the ring); one that armed after it found the tail past its
 * position, so it does not sleep unbounded. No fence, and no syscall while no reader is
 * armed: the word is read, not written.
 */
static inline void shmbus_ring_wake_after(struct shmbus_seg *s, uint32_t wake, uint64_t start,
					  uint64_t end)
{
	if (__builtin_expect(wake & SHMBUS_WAKE_ARMED, 0) &&
	    ((wake & SHMBUS_WAKE_NOW) || shmbus_ring_crosses_16th(s, start, end)))
		shmbus_ring_wake_sleepers(s);
}

/* Wake every armed reader after a commit made outside a claim's handshake (a repair's
 * padding, an aborted reservation): the fence orders the commit before reading the word
 * (Dekker against the reader's arming, then its re-check). */
static inline void shmbus_ring_wake_readers(struct shmbus_seg *s)
{
	sb_fence_seqcst();
	if (sb_ld_relaxed(&s->rt->wake) & SHMBUS_WAKE_ARMED)
		shmbus_ring_wake_sleepers(s);
}

/* After the last commit of the claim [start, end) of n messages, bytes of payload, whose
 * seal read the wake word as wake: the slot (w->slot) names no claim any more, the
 * counters move, armed readers are woken. */
static inline void shmbus_ring_claim_done(struct shmbus_ring_writer *w,
					  struct shmbus_pub_slot *slot, uint64_t n, uint64_t bytes,
					  uint32_t wake, uint64_t start, uint64_t end)
{
	sb_st_relaxed(&slot->claim_pos, SHMBUS_NOPOS);
	w->published += n;
	w->bytes += bytes;
	sb_st_relaxed(&slot->published, w->published);
	sb_st_relaxed(&slot->bytes, w->bytes);
	shmbus_ring_wake_after(&w->seg, wake, start, end);
}

/*
 * The common case of one message, in one piece: it fits before the lap end, within the
 * cached limit, and nobody else moves the tail between our read and our CAS. Any of those
 * false, it returns 0 having claimed nothing (call shmbus_ring_write()); else 1, the
 * message committed. small: len <= SHMBUS_REC_SMALL_MAX, copied inline, so that with the
 * timestamp's fast path (ring/clock.h) the whole is a leaf.
 */
static inline __attribute__((always_inline)) int
shmbus_ring_write_fast(struct shmbus_ring_writer *w, const void *data, uint32_t len, uint32_t type,
		       uint64_t ts, int small)
{
	struct shmbus_topic_hdr *h = w->seg.hdr;
	struct shmbus_pub_slot *slot = w->slot;
	uint64_t t[2] = { sb_ld_relaxed(&h->tail[0]), sb_ld_relaxed(&h->tail[1]) };
	struct shmbus_claim c;
	if (shmbus_ring_claim_try(w, t, shmbus_rec_stride(len), 1, 1, &c) != 1)
		return 0;
	uint32_t wake = shmbus_rec_write(&w->seg, c.rec, data, len, type, c.seq, ts, small);
	shmbus_ring_claim_done(w, slot, 1, len, wake, c.start, c.end);
	return 1;
}

/* One message, any size (<= max_message) and state: lap ends, waiting for space up to
 * timeout_ms, contention. Returns 0, -EAGAIN, -EBADMSG. */
int shmbus_ring_write(struct shmbus_ring_writer *w, const void *data, uint32_t len, uint32_t type,
		      int timeout_ms);

/* n messages (each <= max_message), one claim per chunk of up to shmbus_ring_claim_max()
 * bytes, the first record of a chunk committed last. Returns how many were written, or
 * -EAGAIN / -EBADMSG if none was. */
int shmbus_ring_write_batch(struct shmbus_ring_writer *w, const shmbus_iov_t *msgs, unsigned n,
			    int timeout_ms);

/* Claim room for one message of len bytes (<= max_message) and point *buf at its payload;
 * it is committed by shmbus_ring_commit() or becomes padding by shmbus_ring_abort().
 * Returns 0, -EBUSY (one is open), -EAGAIN, -EBADMSG. */
int shmbus_ring_reserve(struct shmbus_ring_writer *w, uint64_t len, int timeout_ms, void **buf);
int shmbus_ring_commit(struct shmbus_ring_writer *w, uint32_t type);
int shmbus_ring_abort(struct shmbus_ring_writer *w);

/*
 * The lowest position writers must not lap: claims still being written, and in block
 * mode what live readers need (fan-out positions, held group messages, cursors of groups
 * with members or with a lease that has not expired); the tail if none.
 * gcur/ghas: scratch of max_groups entries.
 */
uint64_t shmbus_ring_min_pos(struct shmbus_seg *s, uint64_t *gcur, uint8_t *ghas);

#endif
