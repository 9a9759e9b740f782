/* SPDX-License-Identifier: MIT */
/*
 * Claims, commits, padding and repair. The invariants (docs/algorithm.md):
 *  I1 positions only grow; a record at position p is committed when its first word equals
 *     p ^ stamp_key (release store, written last), so a stale word of an earlier lap or a
 *     zeroed page never reads as committed;
 *  I2 no record straddles the end of a lap: a claim that would is preceded by padding to
 *     the lap end, so every lap start is a record boundary;
 *  I3 a publisher writes {claim start, end, messages} into its slot before the CAS that
 *     takes the claim, and clears it after the last commit; so whoever finds an
 *     uncommitted position p below the tail finds the slot whose claim covers it;
 *  I4 in block mode a claim never ends beyond (lowest position a live reader needs) +
 *     capacity, so nothing a live reader has not consumed is overwritten (a durable
 *     group's cursor counts while its lease runs, member or not);
 *  I5 in both modes a claim never ends beyond (oldest claim still being written) +
 *     capacity, so a slow publisher can never write over a newer lap.
 */
#include "ring/log.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include <shmbus.h>

#include "ring/clock.h"
#include "ring/wake.h"
#include "shm/proc.h"

#define POLL_NS 1000000ull /* publishers waiting for space re-check liveness every 1 ms */
#define PREFETCH_AHEAD 256u /* bytes beyond a claim to own before the next one */

void shmbus_ring_hwm_raise(uint32_t *hwm, uint32_t v)
{
	uint32_t cur = sb_ld_relaxed(hwm);
	while (cur < v && !sb_cas_u32(hwm, &cur, v))
		;
}

void shmbus_ring_write_pad(struct shmbus_seg *s, uint64_t pos, uint64_t size, uint64_t burned)
{
	struct shmbus_rec *r = ring_rec(s, pos);
	r->len = SHMBUS_REC_PAD | (uint32_t)size;
	r->type = (uint32_t)burned;
	r->seq = 0;
	r->ts = 0;
	/* Release: the pad's fields are visible to whoever acquires its commit word. */
	sb_st_release(&r->commit, ring_stamp(s, pos));
}

int shmbus_ring_fence_free;

void shmbus_ring_wake_sleepers(struct shmbus_seg *s)
{
	struct shmbus_topic_hdr *h = s->hdr;
	__atomic_fetch_add(&h->wake, 1, __ATOMIC_SEQ_CST);
	shmbus_futex_wake(&h->wake, INT_MAX);
	sb_add_relaxed(&h->wakeups, 1);
}

void shmbus_ring_wake_waiting_publishers(struct shmbus_seg *s)
{
	struct shmbus_topic_hdr *h = s->hdr;
	__atomic_fetch_add(&h->space, 1, __ATOMIC_SEQ_CST);
	shmbus_futex_wake(&h->space, INT_MAX);
}

uint64_t shmbus_ring_min_pos(struct shmbus_seg *s, uint64_t *gcur, uint8_t *ghas)
{
	struct shmbus_topic_hdr *h = s->hdr;
	uint64_t tail = sb_ld_seqcst(&h->tail[0]);
	uint64_t min = tail;
	/* Claims still being written (I5): a publisher must never lap another one that is
	 * still writing, or the slow one would scribble over the newer lap. */
	uint32_t np = sb_ld_seqcst(&h->pubs_hwm);
	if (np > s->opts.max_publishers)
		np = s->opts.max_publishers;
	for (uint32_t i = 0; i < np; i++) {
		struct shmbus_pub_slot *ps = &s->pubs[i];
		uint64_t cp = sb_ld_seqcst(&ps->claim_pos);
		if (cp != SHMBUS_NOPOS && cp <= tail && tail - cp <= s->cap && cp < min &&
		    sb_ld_relaxed(&ps->owner))
			min = cp;
	}
	if (s->opts.policy != SHMBUS_BLOCK)
		return min;
	uint32_t ng = sb_ld_seqcst(&h->groups_hwm);
	if (ng > s->opts.max_groups)
		ng = s->opts.max_groups;
	uint32_t nr = sb_ld_seqcst(&h->readers_hwm);
	if (nr > s->opts.max_readers)
		nr = s->opts.max_readers;
	/* Group cursors first, then reader slots: a member publishes its hold (seq_cst)
	 * before it moves the cursor past it, so if we see the moved cursor we see the
	 * hold too. */
	for (uint32_t g = 0; g < ng; g++) {
		ghas[g] = 0;
		gcur[g] = sb_ld_seqcst(&s->groups[g].state) == SHMBUS_GROUP_ACTIVE ?
				  sb_ld_seqcst(&s->groups[g].cursor[0]) :
				  SHMBUS_NOPOS;
	}
	for (uint32_t i = 0; i < nr; i++) {
		struct shmbus_reader_slot *r = &s->readers[i];
		if (!sb_ld_seqcst(&r->owner))
			continue;
		uint64_t p = sb_ld_seqcst(&r->pos);
		uint32_t gi = sb_ld_relaxed(&r->group);
		if (gi && gi <= ng)
			ghas[gi - 1] = 1;
		/* Positions outside the last lap are damage or a stale slot: ignore. */
		if (p != SHMBUS_NOPOS && p <= tail && tail - p <= s->cap && p < min)
			min = p;
	}
	/* A group without a live member still holds publishers while its lease runs (a
	 * durable group whose daemon restarts). The clock is read only if some group has
	 * a lease at all. */
	uint64_t now = 0;
	for (uint32_t g = 0; g < ng; g++) {
		uint64_t p = gcur[g];
		if (!ghas[g] && p != SHMBUS_NOPOS) {
			uint64_t lease = sb_ld_relaxed(&s->groups[g].lease_ns);
			if (lease) {
				if (!now)
					now = shmbus_now_ns();
				ghas[g] = lease > now;
			}
		}
		if (ghas[g] && p != SHMBUS_NOPOS && p <= tail && tail - p <= s->cap && p < min)
			min = p;
	}
	return min;
}

int shmbus_ring_reclaim_reader(struct shmbus_seg *s, uint32_t idx, uint64_t owner)
{
	struct shmbus_reader_slot *r = &s->readers[idx];
	pid_t me = getpid();
	if (!sb_cas_u64(&r->owner, &owner, SHMBUS_OWNER(SHMBUS_SLOT_RECLAIM, me)))
		return 0;
	uint32_t gi = sb_ld_relaxed(&r->group);
	uint64_t held = sb_ld_relaxed(&r->pos);
	if (gi && gi <= s->opts.max_groups && held != SHMBUS_NOPOS)
		sb_add_relaxed(&s->groups[gi - 1].abandoned, 1);
	/* Seq_cst: publishers computing a limit stop seeing the position before the slot
	 * can be taken again. */
	sb_st_seqcst(&r->pos, SHMBUS_NOPOS);
	sb_st_relaxed(&r->group, 0);
	sb_st_relaxed(&r->starttime, 0);
	sb_add_relaxed(&s->hdr->readers_reclaimed, 1);
	sb_st_release(&r->owner, 0);
	shmbus_ring_wake_publishers(s);
	return 1;
}

/* Is the owner of a slot (owner word o, start time st) dead? */
static int owner_dead(uint64_t o, uint64_t st)
{
	return !shmbus_proc_alive(SHMBUS_OWNER_PID(o), st);
}

int shmbus_ring_reclaim_readers(struct shmbus_seg *s, uint64_t minpos)
{
	uint32_t nr = sb_ld_acquire(&s->hdr->readers_hwm);
	if (nr > s->opts.max_readers)
		nr = s->opts.max_readers;
	int n = 0;
	for (uint32_t i = 0; i < nr; i++) {
		struct shmbus_reader_slot *r = &s->readers[i];
		uint64_t o = sb_ld_acquire(&r->owner);
		if (!o)
			continue;
		if (minpos != SHMBUS_NOPOS) {
			uint64_t p = sb_ld_relaxed(&r->pos);
			uint32_t gi = sb_ld_relaxed(&r->group);
			int constrains = p == minpos;
			if (gi && gi <= s->opts.max_groups &&
			    sb_ld_relaxed(&s->groups[gi - 1].cursor[0]) == minpos)
				constrains = 1;
			if (!constrains)
				continue;
		}
		if (owner_dead(o, sb_ld_relaxed(&r->starttime)))
			n += shmbus_ring_reclaim_reader(s, i, o);
	}
	return n;
}

/* Wait until the claim ending at end fits (I4, I5). */
static int wait_space(struct shmbus_ring_pub *rp, uint64_t end, int timeout_ms)
{
	struct shmbus_seg *s = rp->seg;
	struct shmbus_topic_hdr *h = s->hdr;
	uint64_t start = shmbus_now_ns(), next_poll = start;
	uint64_t deadline = shmbus_deadline(start, timeout_ms);
	int counted = 0;
	for (;;) {
		uint64_t min = shmbus_ring_min_pos(s, rp->gcur, rp->ghas);
		rp->limit = min + s->cap;
		if (end <= rp->limit)
			return 0;
		if (!counted) {
			sb_add_relaxed(&h->backpressure_waits, 1);
			counted = 1;
		}
		uint64_t now = shmbus_now_ns();
		if (now >= deadline)
			return -EAGAIN;
		if (now >= next_poll) {
			/* A dead reader or a dead publisher's claim must not hold us back
			 * beyond one poll. */
			int freed = shmbus_ring_pub_gc(s, 1);
			if (s->opts.policy == SHMBUS_BLOCK)
				freed += shmbus_ring_reclaim_readers(s, min);
			if (freed)
				continue;
			next_poll = now + POLL_NS;
		}
		if (now - start < rp->spin_ns) {
			shmbus_pause();
			continue;
		}
		/* Announce ourselves, then re-check, then sleep: a reader that frees space
		 * after our re-check sees pub_waiters (or we time out within 1 ms). */
		__atomic_fetch_add(&h->pub_waiters, 1, __ATOMIC_SEQ_CST);
		uint32_t v = sb_ld_acquire(&h->space);
		min = shmbus_ring_min_pos(s, rp->gcur, rp->ghas);
		rp->limit = min + s->cap;
		if (end > rp->limit) {
			uint64_t left = deadline - now;
			uint64_t nap = next_poll > now ? next_poll - now : 0;
			if (nap > left)
				nap = left;
			if (nap < 20000)
				nap = 20000;
			shmbus_futex_wait(&h->space, v, (int64_t)nap);
		}
		__atomic_fetch_sub(&h->pub_waiters, 1, __ATOMIC_SEQ_CST);
	}
}

int shmbus_ring_claim(struct shmbus_ring_pub *rp, uint64_t size, uint64_t nmsg,
		      int timeout_ms, struct shmbus_claim *c)
{
	struct shmbus_seg *s = rp->seg;
	struct shmbus_topic_hdr *h = s->hdr;
	struct shmbus_pub_slot *slot = rp->slot;
	/* A guess; the CAS corrects it (and fails if the two halves were inconsistent). */
	uint64_t t[2] = { sb_ld_relaxed(&h->tail[0]), sb_ld_relaxed(&h->tail[1]) };
	c->waited = 0;
	for (;;) {
		/* Claims end on record boundaries: an unaligned tail is damage. */
		if (t[0] & (SHMBUS_REC_ALIGN - 1))
			return -EBADMSG;
		uint64_t off = t[0] & s->mask;
		uint64_t pad = off + size > s->cap ? s->cap - off : 0;
		uint64_t end = t[0] + pad + size;
		/* Own the lines we are about to write (and the next claim's) before the
		 * CAS: its full barrier waits for our pending stores, and a store to a line
		 * a reader holds costs a cross-core round trip. PREFETCHW overlaps them. */
		for (uint64_t q = t[0] & ~63ull; q < end + PREFETCH_AHEAD; q += 64)
			__builtin_prefetch(s->log + (q & s->mask), 1, 3);
		if (end > rp->limit) {
			/* A stale candidate of ours must not hold the others back. */
			sb_st_relaxed(&slot->claim_pos, SHMBUS_NOPOS);
			c->waited = 1;
			int rc = wait_space(rp, end, timeout_ms);
			if (rc < 0)
				return rc;
			t[0] = sb_ld_relaxed(&h->tail[0]);
			t[1] = sb_ld_relaxed(&h->tail[1]);
			continue;
		}
		/* I3: the claim is in the slot before the CAS (whose full barrier orders
		 * these stores before it). */
		sb_st_relaxed(&slot->claim_end, end);
		sb_st_relaxed(&slot->claim_nmsg, nmsg);
		sb_st_relaxed(&slot->claim_pos, t[0]);
		uint64_t want[2] = { end, t[1] + nmsg };
		if (sb_cas_pair(h->tail, t, want)) {
			c->start = t[0];
			c->rec = t[0] + pad;
			c->end = end;
			c->seq = t[1];
			if (pad)
				shmbus_ring_write_pad(s, t[0], pad, 0);
			return 0;
		}
	}
}

/* Everything of a dead publisher's claim from p on is padding; a claim's last piece
 * burns its sequence numbers. Pieces never straddle a lap end nor exceed 1 GiB, and are
 * committed last first, so a reader at p sees the whole cover at once. */
static void cover(struct shmbus_seg *s, uint64_t p, uint64_t end, uint64_t burned)
{
	uint64_t cuts[64];
	int n = 0;
	uint64_t q = p;
	while (q < end && n < 64) {
		cuts[n++] = q;
		uint64_t lap_end = (q | s->mask) + 1;
		uint64_t e = end < lap_end ? end : lap_end;
		if (e - q > SHMBUS_CLAIM_MAX)
			e = q + SHMBUS_CLAIM_MAX;
		q = e;
	}
	uint64_t e = end;
	for (int i = n - 1; i >= 0; i--) {
		shmbus_ring_write_pad(s, cuts[i], e - cuts[i], i == n - 1 ? burned : 0);
		e = cuts[i];
	}
}

/* A dead claimant of p: slot index, owner word and its claim as read. */
struct cand {
	uint32_t idx;
	uint64_t owner, start, end, nmsg;
};

static int claim_end_consistent(struct shmbus_seg *s, uint64_t end, uint32_t np)
{
	if (end == sb_ld_acquire(&s->hdr->tail[0]))
		return 1;
	if (sb_ld_acquire(&ring_rec(s, end)->commit) == ring_stamp(s, end))
		return 1;
	for (uint32_t i = 0; i < np; i++)
		if (sb_ld_acquire(&s->pubs[i].owner) && sb_ld_relaxed(&s->pubs[i].claim_pos) == end)
			return 1;
	return 0;
}

static void free_pub_slot(struct shmbus_seg *s, struct shmbus_pub_slot *ps)
{
	struct shmbus_topic_hdr *h = s->hdr;
	/* Fold the dead publisher's counters into the topic's. */
	sb_add_relaxed(&h->published, sb_ld_relaxed(&ps->published));
	sb_add_relaxed(&h->bytes, sb_ld_relaxed(&ps->bytes));
	sb_st_relaxed(&ps->published, 0);
	sb_st_relaxed(&ps->bytes, 0);
	sb_st_relaxed(&ps->claim_pos, SHMBUS_NOPOS);
	sb_st_relaxed(&ps->starttime, 0);
	sb_add_relaxed(&h->pubs_reclaimed, 1);
	/* Release: a new owner that takes the slot sees it clean. */
	sb_st_release(&ps->owner, 0);
}

int shmbus_ring_repair(struct shmbus_seg *s, uint64_t p)
{
	if (p & (SHMBUS_REC_ALIGN - 1))
		return 0;
	if (sb_ld_acquire(&ring_rec(s, p)->commit) == ring_stamp(s, p))
		return 1;
	/* All slots, not up to the mark: this is the slow path, and must not trust it. */
	uint32_t np = s->opts.max_publishers;
	struct cand best = { 0, 0, 0, 0, 0 };
	int nbest = 0, best_consistent = 0;
	for (uint32_t i = 0; i < np; i++) {
		struct shmbus_pub_slot *ps = &s->pubs[i];
		uint64_t o = sb_ld_acquire(&ps->owner);
		if (!o)
			continue;
		uint64_t cp = sb_ld_acquire(&ps->claim_pos);
		uint64_t ce = sb_ld_relaxed(&ps->claim_end);
		if (cp == SHMBUS_NOPOS || p < cp || p >= ce || ce - cp > 2 * SHMBUS_CLAIM_MAX ||
		    ((cp | ce) & (SHMBUS_REC_ALIGN - 1)))
			continue;
		/* A live claimant (or a live repairer) will finish: wait for it. */
		if (!owner_dead(o, sb_ld_relaxed(&ps->starttime)))
			return 0;
		struct cand c = { i, o, cp, ce, sb_ld_relaxed(&ps->claim_nmsg) };
		/* Two dead claimants of p only when one died right after losing the CAS for
		 * it: prefer the one whose end is a real boundary, else the shorter cover
		 * (which can never overwrite a committed record). */
		int cons = claim_end_consistent(s, ce, np);
		if (!nbest || (cons && !best_consistent) ||
		    (cons == best_consistent && ce < best.end)) {
			best = c;
			best_consistent = cons;
		}
		nbest++;
	}
	if (!nbest)
		return 0;
	struct shmbus_pub_slot *ps = &s->pubs[best.idx];
	uint64_t o = best.owner;
	if (!sb_cas_u64(&ps->owner, &o, SHMBUS_OWNER(SHMBUS_SLOT_RECLAIM, getpid())))
		return 0;
	/* We own the repair; the claim cannot change under us (its owner is dead). */
	if (sb_ld_relaxed(&ps->claim_pos) == best.start &&
	    sb_ld_relaxed(&ps->claim_end) == best.end &&
	    sb_ld_acquire(&ring_rec(s, p)->commit) != ring_stamp(s, p)) {
		cover(s, p, best.end, best.nmsg);
		sb_add_relaxed(&s->hdr->aborted, best.nmsg);
	}
	free_pub_slot(s, ps);
	shmbus_ring_wake_readers(s);
	return sb_ld_acquire(&ring_rec(s, p)->commit) == ring_stamp(s, p);
}

/* Is the claim [cp, ce) of a dead publisher finished (nothing uncommitted below the tail)?
 * Returns 1 resolved, 0 not (and tries to repair it). */
static int claim_resolved(struct shmbus_seg *s, uint64_t cp, uint64_t ce)
{
	uint64_t tail = sb_ld_acquire(&s->hdr->tail[0]);
	if (cp == SHMBUS_NOPOS || cp >= tail)
		return 1; /* it never took the claim */
	if (cp & (SHMBUS_REC_ALIGN - 1))
		return 1; /* damaged: nothing sensible to wait for */
	uint64_t q = cp;
	int steps = 0;
	while (q < ce && q < tail && steps++ < 100000) {
		if (tail - q > s->cap)
			return 1; /* overwritten since: nobody can be waiting on it */
		struct shmbus_rec *r = ring_rec(s, q);
		if (sb_ld_acquire(&r->commit) != ring_stamp(s, q)) {
			shmbus_ring_repair(s, q);
			return 0;
		}
		uint32_t len = sb_ld_relaxed(&r->len);
		uint64_t size = (len & SHMBUS_REC_PAD) ? (len & ~SHMBUS_REC_PAD) : ring_stride(len);
		if (size < SHMBUS_REC_HDR || (size & (SHMBUS_REC_ALIGN - 1)))
			return 1; /* damaged: nothing sensible to wait for */
		q += size;
	}
	return 1;
}

int shmbus_ring_pub_gc(struct shmbus_seg *s, int only_claims)
{
	/* All slots, not up to the mark: this is the slow path, and must not trust it. */
	uint32_t np = s->opts.max_publishers;
	int n = 0;
	for (uint32_t i = 0; i < np; i++) {
		struct shmbus_pub_slot *ps = &s->pubs[i];
		uint64_t o = sb_ld_acquire(&ps->owner);
		if (!o || (only_claims && sb_ld_relaxed(&ps->claim_pos) == SHMBUS_NOPOS) ||
		    !owner_dead(o, sb_ld_relaxed(&ps->starttime)))
			continue;
		if (!claim_resolved(s, sb_ld_relaxed(&ps->claim_pos),
				    sb_ld_relaxed(&ps->claim_end)))
			continue;
		/* claim_resolved may have repaired and freed it already. */
		if (!sb_cas_u64(&ps->owner, &o, SHMBUS_OWNER(SHMBUS_SLOT_RECLAIM, getpid())))
			continue;
		free_pub_slot(s, ps);
		n++;
	}
	return n;
}
