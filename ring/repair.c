/* SPDX-License-Identifier: MIT */
/*
 * Repair: what dead processes leave behind. A publisher that died between its claim and
 * its last commit leaves positions below the tail that never commit; its slot names the
 * claim (I3), so whoever is held up by it covers the rest of the claim with padding and
 * frees the slot. A reader that died leaves a slot whose position holds block-mode
 * publishers back (I4); it is freed. Liveness is pid + start time (shm/proc.h).
 * See docs/algorithm.md, "Crashes".
 */
#include "ring/repair.h"

#include <errno.h>
#include <unistd.h>

#include <shmbus.h>

#include "ring/atomic.h"
#include "ring/reader.h"
#include "ring/record.h"
#include "ring/ack.h"
#include "ring/writer.h"
#include "shm/proc.h"

int shmbus_ring_reclaim_reader(struct shmbus_seg *s, uint32_t idx, uint64_t owner)
{
	struct shmbus_reader_slot *r = &s->readers[idx];
	pid_t me = getpid();
	if (!sb_cas_u64(&r->owner, &owner, SHMBUS_OWNER(SHMBUS_SLOT_RECLAIM, me)))
		return 0;
	uint32_t gi = sb_ld_relaxed(&r->group);
	uint64_t held = sb_ld_relaxed(&r->pos);
	if (gi && gi <= s->opts.max_groups && (sb_ld_relaxed(&r->flags) & SHMBUS_RSLOT_ACK)) {
		/* An acknowledging member: what it held goes back to its group (before the
		 * slot is reset: its last take is read from it). */
		shmbus_ack_scan(s, gi - 1, SHMBUS_OWNER_PID(owner), 0);
	} else if (gi && gi <= s->opts.max_groups && held != SHMBUS_NOPOS) {
		sb_add_relaxed(&s->groups[gi - 1].abandoned, 1);
	}
	sb_st_relaxed(&r->pending, 0);
	sb_st_relaxed(&r->taken_seq, 0);
	/* After the hand-back above (its entries counted ready first). */
	sb_st_seqcst(&r->floor, SHMBUS_NOPOS);
	/* Seq_cst: publishers computing a limit stop seeing the position before the slot
	 * can be taken again. */
	sb_st_seqcst(&r->pos, SHMBUS_NOPOS);
	sb_st_relaxed(&r->group, 0);
	sb_st_relaxed(&r->flags, 0);
	sb_st_relaxed(&r->starttime, 0);
	sb_add_relaxed(&s->rt->readers_reclaimed, 1);
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
	uint32_t nr = sb_ld_acquire(&s->rt->readers_hwm);
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
			int constrains = p == minpos || sb_ld_relaxed(&r->floor) == minpos;
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
		shmbus_rec_write_pad(s, cuts[i], e - cuts[i], i == n - 1 ? burned : 0);
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
	if (shmbus_rec_committed(s, end))
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
	if (shmbus_rec_committed(s, p))
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
	if (!nbest) {
		/* Acquire loads of the slots above: a claim cleared since was committed
		 * first, so its commit is visible now. */
		if (shmbus_rec_committed(s, p))
			return 1;
		/* Overwritten by a later lap since the caller looked (overwrite mode, or a
		 * position nobody held): not damage; the reader's next look jumps ahead. */
		uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
		uint64_t later = sb_ld_acquire(&shmbus_rec_at(s, p)->commit) ^ s->key;
		if (p >= t || t - p > s->cap || (later > p && ((later - p) & s->mask) == 0))
			return 0;
		return -EBADMSG;
	}
	/* A reader given the log read-only (brokered mode) cannot cover the claim: the daemon,
	 * which reaps every death at once, or the next publisher does. It waits. */
	if (s->log_ro)
		return 0;
	struct shmbus_pub_slot *ps = &s->pubs[best.idx];
	uint64_t o = best.owner;
	if (!sb_cas_u64(&ps->owner, &o, SHMBUS_OWNER(SHMBUS_SLOT_RECLAIM, getpid())))
		return 0;
	/* We own the repair; the claim cannot change under us (its owner is dead). */
	if (sb_ld_relaxed(&ps->claim_pos) == best.start &&
	    sb_ld_relaxed(&ps->claim_end) == best.end && !shmbus_rec_committed(s, p)) {
		cover(s, p, best.end, best.nmsg);
		sb_add_relaxed(&s->hdr->aborted, best.nmsg);
	}
	free_pub_slot(s, ps);
	shmbus_ring_wake_readers(s);
	return shmbus_rec_committed(s, p);
}

uint64_t shmbus_ring_fix_tail(struct shmbus_seg *s)
{
	uint64_t t[2];
	if (s->log_ro) {
		/* Read-only: the boundary the repair would move it to (a publisher does). */
		uint64_t p = sb_ld_acquire(&s->hdr->tail[0]);
		return (p + SHMBUS_REC_ALIGN - 1) & ~(uint64_t)(SHMBUS_REC_ALIGN - 1);
	}
	sb_ld_pair(s->hdr->tail, t);
	while (t[0] & (SHMBUS_REC_ALIGN - 1)) {
		uint64_t want[2] = { (t[0] + SHMBUS_REC_ALIGN - 1) & ~(uint64_t)(SHMBUS_REC_ALIGN - 1),
				     t[1] };
		if (sb_cas_pair(s->hdr->tail, t, want))
			return want[0];
	}
	return t[0];
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
		if (!shmbus_rec_committed(s, q)) {
			shmbus_ring_repair(s, q);
			return 0;
		}
		uint64_t size = shmbus_rec_size(sb_ld_relaxed(&shmbus_rec_at(s, q)->len));
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
