/* SPDX-License-Identifier: MIT */
/*
 * The writer: claims, commits, padding, limits. The invariants (docs/algorithm.md):
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
#include "ring/writer.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ring/clock.h"
#include "ring/ack.h"
#include "ring/repair.h"
#include "ring/wake.h"

#define POLL_NS 1000000ull	/* writers waiting for space re-check liveness every 1 ms */
#define WRITER_SPIN_NS 20000ull /* and spin this long before they sleep */

int shmbus_ring_writer_init(struct shmbus_ring_writer *w)
{
	uint32_t ng = w->seg.opts.max_groups ? w->seg.opts.max_groups : 1;
	w->spin_ns = WRITER_SPIN_NS;
	w->gcur = calloc(ng, sizeof(uint64_t));
	w->ghas = calloc(ng, 1);
	if (!w->gcur || !w->ghas) {
		free(w->gcur);
		free(w->ghas);
		w->gcur = NULL;
		w->ghas = NULL;
		return -ENOMEM;
	}
	return 0;
}

void shmbus_ring_writer_fini(struct shmbus_ring_writer *w)
{
	struct shmbus_pub_slot *ps = w->slot;
	if (ps) {
		struct shmbus_topic_hdr *h = w->seg.hdr;
		if (w->reserved)
			shmbus_ring_abort(w);
		/* Counters move to the topic before the slot is zeroed (a stats reader may
		 * briefly count them twice, never lose them). */
		sb_add_relaxed(&h->published, w->published);
		sb_add_relaxed(&h->bytes, w->bytes);
		sb_st_relaxed(&ps->published, 0);
		sb_st_relaxed(&ps->bytes, 0);
		sb_st_relaxed(&ps->claim_pos, SHMBUS_NOPOS);
	}
	free(w->gcur);
	free(w->ghas);
	w->gcur = NULL;
	w->ghas = NULL;
}

void shmbus_ring_wake_sleepers(struct shmbus_seg *s)
{
	struct shmbus_rtab_hdr *rt = s->rt;
	uint32_t v = sb_ld_relaxed(&rt->wake);
	/* One waker per arming: who clears the bits makes the syscall; a CAS that fails
	 * because another cleared them leaves the loop with nothing to do. */
	while (v & SHMBUS_WAKE_ARMED) {
		if (sb_cas_u32(&rt->wake, &v, (v | SHMBUS_WAKE_ARMED) + 1)) {
			if (v & SHMBUS_WAKE_NOW) {
				shmbus_futex_wake(&rt->wake, INT_MAX);
			} else {
				/* Lazy: every fan-out reader, one member (the others
				 * wake by their own timeouts if there is more). */
				if (v & SHMBUS_WAKE_LAZY)
					shmbus_futex_wake_set(&rt->wake, INT_MAX,
							      SHMBUS_WAKE_SET_ALL);
				if (v & SHMBUS_WAKE_LAZY_ONE)
					shmbus_futex_wake_set(&rt->wake, 1, SHMBUS_WAKE_SET_MEMBER);
			}
			sb_add_relaxed(&s->hdr->wakeups, 1);
			return;
		}
	}
}

/*
 * Is the claim that starts at cp (named in a publisher's slot) written? Its first record is
 * committed last (a batch commits the rest first); a claim that starts with padding to the
 * lap end has its first record at the next lap start. So a slot that still names a written
 * claim (a publisher between its last commit and clearing the slot, or a damaged slot)
 * does not hold the others back.
 */
static int claim_done(struct shmbus_seg *s, uint64_t cp)
{
	if ((cp & (SHMBUS_REC_ALIGN - 1)) || !shmbus_rec_committed(s, cp))
		return 0;
	uint32_t len = __atomic_load_n(&shmbus_rec_at(s, cp)->len, __ATOMIC_RELAXED);
	if (!(len & SHMBUS_REC_PAD) || ((cp + shmbus_rec_size(len)) & s->mask))
		return 1; /* a record, or padding that does not end the lap */
	return shmbus_rec_committed(s, cp + shmbus_rec_size(len));
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
		    sb_ld_relaxed(&ps->owner) && !claim_done(s, cp))
			min = cp;
	}
	if (s->opts.policy != SHMBUS_BLOCK)
		return min;
	uint32_t ng = sb_ld_seqcst(&s->rt->groups_hwm);
	if (ng > s->opts.max_groups)
		ng = s->opts.max_groups;
	uint32_t nr = sb_ld_seqcst(&s->rt->readers_hwm);
	if (nr > s->opts.max_readers)
		nr = s->opts.max_readers;
	/* Group cursors first, then reader slots: a member publishes its hold (seq_cst)
	 * before it moves the cursor past it, so if we see the moved cursor we see the
	 * hold too. */
	/* ghas[g]: bit 0 the group has a live member (or a lease), bit 1 it has entries
	 * waiting for redelivery, read before the floors and again after
	 * (shmbus_ack_min_pos): a member lowers its floor before it takes a ready entry
	 * (nready down), and entries are counted ready before their holder raises its floor
	 * past them, so whichever a publisher misses, it sees the other. */
	for (uint32_t g = 0; g < ng; g++) {
		gcur[g] = sb_ld_seqcst(&s->groups[g].state) == SHMBUS_GROUP_ACTIVE ?
				  sb_ld_seqcst(&s->groups[g].cursor[0]) :
				  SHMBUS_NOPOS;
		ghas[g] = sb_ld_seqcst(&s->groups[g].ack_used) &&
				  sb_ld_seqcst(&s->groups[g].nready) != 0 ?
				  2 :
				  0;
	}
	for (uint32_t i = 0; i < nr; i++) {
		struct shmbus_reader_slot *r = &s->readers[i];
		if (!sb_ld_seqcst(&r->owner))
			continue;
		uint64_t p = sb_ld_seqcst(&r->pos);
		uint32_t gi = sb_ld_relaxed(&r->group);
		if (gi && gi <= ng)
			ghas[gi - 1] |= 1;
		/* Positions outside the last lap are damage or a stale slot: ignore. */
		if (p != SHMBUS_NOPOS && p <= tail && tail - p <= s->cap && p < min)
			min = p;
		/* An acknowledging member's pending messages (ring/ack.h). */
		uint64_t f = sb_ld_seqcst(&r->floor);
		if (f != SHMBUS_NOPOS && f <= tail && tail - f <= s->cap && f < min)
			min = f;
	}
	/* Then pending entries no member's floor covers (ring/ack.h). A pending message
	 * counts as unread, member or not. */
	min = shmbus_ack_min_pos(s, ng, tail, min, ghas);
	/* A group without a live member still holds publishers while its lease runs (a
	 * durable group whose daemon restarts). The clock is read only if some group has
	 * a lease at all. */
	uint64_t now = 0;
	for (uint32_t g = 0; g < ng; g++) {
		uint64_t p = gcur[g];
		if (!(ghas[g] & 1) && p != SHMBUS_NOPOS) {
			uint64_t lease = sb_ld_relaxed(&s->groups[g].lease_ns);
			if (lease) {
				if (!now)
					now = shmbus_now_ns();
				ghas[g] |= lease > now;
			}
		}
		if ((ghas[g] & 1) && p != SHMBUS_NOPOS && p <= tail && tail - p <= s->cap && p < min)
			min = p;
	}
	return min;
}

/* Wait until the claim ending at end fits (I4, I5). */
static int wait_space(struct shmbus_ring_writer *w, uint64_t end, int timeout_ms)
{
	struct shmbus_seg *s = &w->seg;
	struct shmbus_topic_hdr *h = s->hdr;
	uint64_t start = shmbus_now_ns(), next_poll = start;
	uint64_t deadline = shmbus_deadline(start, timeout_ms);
	int counted = 0;
	for (;;) {
		uint64_t min = shmbus_ring_min_pos(s, w->gcur, w->ghas);
		w->limit = min + s->cap;
		if (end <= w->limit)
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
		/* Spin only while the CPUs are not crowded: otherwise the readers we wait
		 * for may need this one. */
		if (now - start < w->spin_ns && !shmbus_cpus_crowded()) {
			shmbus_pause();
			continue;
		}
		/* Announce ourselves, then re-check, then sleep: a reader that frees space
		 * after our re-check sees pub_waiters (or we time out within 1 ms). */
		__atomic_fetch_add(&s->rt->pub_waiters, 1, __ATOMIC_SEQ_CST);
		uint32_t v = sb_ld_acquire(&s->rt->space);
		min = shmbus_ring_min_pos(s, w->gcur, w->ghas);
		w->limit = min + s->cap;
		if (end > w->limit) {
			uint64_t left = deadline - now;
			uint64_t nap = next_poll > now ? next_poll - now : 0;
			if (nap > left)
				nap = left;
			if (nap < 20000)
				nap = 20000;
			shmbus_futex_wait(&s->rt->space, v, (int64_t)nap);
		}
		__atomic_fetch_sub(&s->rt->pub_waiters, 1, __ATOMIC_SEQ_CST);
	}
}

int shmbus_ring_claim(struct shmbus_ring_writer *w, uint64_t size, uint64_t nmsg, int timeout_ms,
		      struct shmbus_claim *c)
{
	struct shmbus_topic_hdr *h = w->seg.hdr;
	/* A guess; the CAS corrects it (and fails if the two halves were inconsistent). */
	uint64_t t[2] = { sb_ld_relaxed(&h->tail[0]), sb_ld_relaxed(&h->tail[1]) };
	c->waited = 0;
	int fixes = 0;
	for (;;) {
		int rc = shmbus_ring_claim_try(w, t, size, nmsg, 0, c);
		if (rc == 1)
			break;
		if (rc == -EBADMSG) {
			/* An unaligned tail is damage: make it a boundary and go on. */
			if (++fixes > 3)
				return rc;
			shmbus_ring_fix_tail(&w->seg);
			t[0] = sb_ld_relaxed(&h->tail[0]);
			t[1] = sb_ld_relaxed(&h->tail[1]);
			continue;
		}
		if (rc == -ENOSPC) {
			/* A stale candidate of ours must not hold the others back. */
			sb_st_relaxed(&w->slot->claim_pos, SHMBUS_NOPOS);
			c->waited = 1;
			rc = wait_space(w, c->end, timeout_ms);
			if (rc < 0)
				return rc;
			t[0] = sb_ld_relaxed(&h->tail[0]);
			t[1] = sb_ld_relaxed(&h->tail[1]);
		}
	}
	if (c->rec != c->start)
		shmbus_rec_write_pad(&w->seg, c->start, c->rec - c->start, 0);
	return 0;
}

/* A claim failed: the slot must not name a stale candidate. */
static int claim_failed(struct shmbus_ring_writer *w, int rc)
{
	sb_st_relaxed(&w->slot->claim_pos, SHMBUS_NOPOS);
	return rc;
}

int shmbus_ring_write(struct shmbus_ring_writer *w, const void *data, uint32_t len, uint32_t type,
		      int timeout_ms)
{
	/* The stamp first: its TSC read overlaps the claim (taken again if the claim had to
	 * wait for space). */
	uint64_t ts = shmbus_stamp_ns();
	struct shmbus_claim c;
	int rc = shmbus_ring_claim(w, shmbus_rec_stride(len), 1, timeout_ms, &c);
	if (rc < 0)
		return claim_failed(w, rc);
	if (c.waited)
		ts = shmbus_stamp_ns();
	uint32_t wake = shmbus_rec_write(&w->seg, c.rec, data, len, type, c.seq, ts, 0);
	shmbus_ring_claim_done(w, w->slot, 1, len, wake, c.start, c.end);
	return 0;
}

int shmbus_ring_write_batch(struct shmbus_ring_writer *w, const shmbus_iov_t *msgs, unsigned n,
			    int timeout_ms)
{
	struct shmbus_seg *s = &w->seg;
	uint64_t chunk_max = shmbus_ring_claim_max(s);
	unsigned done = 0;
	while (done < n) {
		uint64_t size = 0;
		unsigned k = 0;
		while (done + k < n) {
			uint64_t st = shmbus_rec_stride(msgs[done + k].len);
			if (k && size + st > chunk_max)
				break;
			size += st;
			k++;
		}
		struct shmbus_claim c;
		int rc = shmbus_ring_claim(w, size, k, timeout_ms, &c);
		if (rc < 0)
			return claim_failed(w, done ? (int)done : rc);
		uint64_t ts = shmbus_stamp_ns(), bytes = 0;
		/* Records 2..k first, the first last: a reader waits at the first and then
		 * finds the rest committed. */
		uint64_t pos = c.rec + shmbus_rec_stride(msgs[done].len);
		for (unsigned j = 1; j < k; j++) {
			const shmbus_iov_t *m = &msgs[done + j];
			shmbus_rec_write(s, pos, m->data, (uint32_t)m->len, m->type, c.seq + j, ts,
					 0);
			pos += shmbus_rec_stride(m->len);
			bytes += m->len;
		}
		uint32_t wake = shmbus_rec_write(s, c.rec, msgs[done].data,
						 (uint32_t)msgs[done].len, msgs[done].type, c.seq,
						 ts, 0);
		bytes += msgs[done].len;
		shmbus_ring_claim_done(w, w->slot, k, bytes, wake, c.start, c.end);
		done += k;
	}
	return (int)done;
}

int shmbus_ring_reserve(struct shmbus_ring_writer *w, uint64_t len, int timeout_ms, void **buf)
{
	if (w->reserved)
		return -EBUSY;
	struct shmbus_claim c;
	int rc = shmbus_ring_claim(w, shmbus_rec_stride(len), 1, timeout_ms, &c);
	if (rc < 0)
		return claim_failed(w, rc);
	w->reserved = 1;
	w->res_rec = c.rec;
	w->res_len = len;
	w->res_seq = c.seq;
	*buf = shmbus_rec_at(&w->seg, c.rec) + 1;
	return 0;
}

int shmbus_ring_commit(struct shmbus_ring_writer *w, uint32_t type)
{
	if (!w->reserved)
		return -EINVAL;
	uint32_t wake = shmbus_rec_commit(&w->seg, w->res_rec, (uint32_t)w->res_len, type,
					  w->res_seq, shmbus_stamp_ns());
	w->reserved = 0;
	uint64_t end = w->res_rec + shmbus_rec_stride(w->res_len);
	shmbus_ring_claim_done(w, w->slot, 1, w->res_len, wake, w->res_rec, end);
	return 0;
}

int shmbus_ring_abort(struct shmbus_ring_writer *w)
{
	if (!w->reserved)
		return -EINVAL;
	shmbus_rec_write_pad(&w->seg, w->res_rec, shmbus_rec_stride(w->res_len), 1);
	sb_st_relaxed(&w->slot->claim_pos, SHMBUS_NOPOS);
	sb_add_relaxed(&w->seg.hdr->aborted, 1);
	w->reserved = 0;
	shmbus_ring_wake_readers(&w->seg);
	return 0;
}
