/* SPDX-License-Identifier: MIT */
/*
 * The reader (ring/reader.h): everything but the inline fast path. read_fanout() and
 * read_group() each take one step at the reader's next position (a message, padding, a
 * lap, damage, or nothing yet); shmbus_ring_reader_next() spins, sleeps and repairs around
 * them.
 */
#include "ring/reader.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "ring/clock.h"
#include "ring/ack.h"
#include "ring/repair.h"
#include "ring/wake.h"

#define READER_SPIN_NS 20000ull
#define REPAIR_FIRST_NS 50000ull
#define REPAIR_POLL_NS 1000000ull
#define LAZY_AFTER 4u
#define STUCK_NAP_NS 50000ull
#define SLEEP_MAX_NS 100000000ull

enum { R_EMPTY = 0, R_GOT = 1, R_STUCK = 2 };

#if defined(__SANITIZE_THREAD__)
#define RACY_READS __attribute__((no_sanitize("thread"), noinline))
#define RACY_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RACY_READS __attribute__((no_sanitize("thread"), noinline))
#define RACY_TSAN 1
#endif
#endif
#ifndef RACY_READS
#define RACY_READS
#define RACY_TSAN 0
#endif

/* Reads that may race with a publisher of a later lap; validated afterwards (the tail
 * check), so a torn result is never returned. Hidden from TSan, which cannot know that. */
static RACY_READS void snap(const struct shmbus_rec *r, struct shmbus_rec_view *v)
{
	const volatile struct shmbus_rec *vr = r;
	v->len = vr->len;
	v->type = vr->type;
	v->seq = vr->seq;
	v->ts = vr->ts;
}

static RACY_READS void copy_racy(void *dst, const void *src, size_t n)
{
#if RACY_TSAN
	/* TSan intercepts memcpy whatever the attribute says: copy by hand. */
	volatile const unsigned char *s = src;
	unsigned char *d = dst;
	for (size_t i = 0; i < n; i++)
		d[i] = s[i];
#else
	memcpy(dst, src, n);
#endif
}

/* After racy reads of position p: has a writer claimed into p's next lap? */
static inline int overrun(struct shmbus_ring_reader *rd, uint64_t p)
{
	/* Orders the copy's loads before the tail load (seqlock-style validation). */
	sb_fence_acquire();
	uint64_t t = sb_ld_relaxed(&rd->seg.hdr->tail[0]);
	return t - p > rd->seg.cap;
}

/* The header fields of the record at p: straight (block mode, a position writers honour)
 * or by a racy copy that is validated afterwards. */
static inline void rec_view(const struct shmbus_rec *r, int copy, struct shmbus_rec_view *v)
{
	if (copy)
		snap(r, v);
	else
		shmbus_rec_view(r, v);
}

/* Does this reader publish its position in its slot, for block-mode publishers to honour?
 * Fan-out subscribers do; group members publish only what they hold; a durable reader is
 * protected by its group's cursor and an observer by nothing at all. */
static inline int pins_pos(const struct shmbus_ring_reader *rd)
{
	return rd->seg.opts.policy == SHMBUS_BLOCK && !rd->grp && !rd->observer;
}

/* Does this reader take from its group's shared cursor (a member; a durable reader reads
 * ahead of its group's cursor with a position of its own)? */
static inline int takes_from_cursor(const struct shmbus_ring_reader *rd)
{
	return rd->grp && !rd->durable;
}

static void fanout_jump(struct shmbus_ring_reader *rd, uint64_t to)
{
	rd->pos = to;
	if (pins_pos(rd))
		sb_st_release(&rd->slot->pos, to);
}

/* A racy copy was overrun: resume at the first lap start still intact. */
static void fanout_lapped(struct shmbus_ring_reader *rd)
{
	fanout_jump(rd, shmbus_lap_resume(&rd->seg, sb_ld_acquire(&rd->seg.hdr->tail[0])));
}

/* A record failed validation: resynchronise at the tail (a record boundary: made one if
 * damage left it unaligned). */
static int fanout_corrupt(struct shmbus_ring_reader *rd)
{
	fanout_jump(rd, shmbus_ring_fix_tail(&rd->seg));
	rd->next_seq = SHMBUS_NOSEQ;
	return -EBADMSG;
}

/*
 * The commit word of the record at p, below the tail, was damaged (no claim covers p):
 * where to go on. The next record, if p's length word gives a size that ends on a
 * committed record or on the tail; else the tail.
 */
static uint64_t skip_damaged(struct shmbus_seg *s, uint64_t p)
{
	uint64_t t = shmbus_ring_fix_tail(s);
	uint32_t len = __atomic_load_n(&shmbus_rec_at(s, p)->len, __ATOMIC_RELAXED);
	uint64_t size = shmbus_rec_size(len);
	if (p < t && !shmbus_rec_bad_size(s, p, size) && size <= t - p &&
	    (p + size == t || shmbus_rec_committed(s, p + size)))
		return p + size;
	return t;
}

/* ---- setting up ------------------------------------------------------------------------ */

int shmbus_ring_reader_init(struct shmbus_ring_reader *rd)
{
	struct shmbus_seg *s = &rd->seg;
	rd->buf = malloc(s->opts.max_message ? s->opts.max_message : 1);
	if (!rd->buf)
		return -ENOMEM;
	rd->copy_all = s->opts.policy == SHMBUS_OVERWRITE;
	shmbus_ring_reader_set_spin(rd, READER_SPIN_NS, 0);
	rd->held = SHMBUS_NOPOS;
	rd->next_seq = SHMBUS_NOSEQ;
	return 0;
}

void shmbus_ring_reader_fini(struct shmbus_ring_reader *rd)
{
	if (rd->slot) {
		shmbus_ring_reader_release(rd);
		/* Seq_cst: writers stop counting our position before the slot is free. */
		sb_st_seqcst(&rd->slot->pos, SHMBUS_NOPOS);
		sb_st_relaxed(&rd->slot->group, 0);
	}
	free(rd->buf);
	rd->buf = NULL;
}

void shmbus_ring_reader_join(struct shmbus_ring_reader *rd, int earliest, int observer)
{
	struct shmbus_seg *s = &rd->seg;
	uint64_t t[2];
	sb_ld_pair_ro(s->hdr->tail, t);
	uint64_t from = t[0];
	if (earliest)
		from = t[0] >= s->cap ? shmbus_lap_resume(s, t[0]) : 0;
	/* Seq_cst store, then re-read the tail: a writer that did not see our position read
	 * a tail <= the one we read now, so it cannot claim beyond (that tail + capacity);
	 * all from the re-read tail on is ours to keep. An observer keeps nothing: its slot
	 * says SHMBUS_NOPOS and it copies and validates every record, as in overwrite mode. */
	if (observer) {
		rd->observer = 1;
		rd->copy_all = 1;
	} else {
		sb_st_seqcst(&rd->slot->pos, from);
	}
	uint64_t t2[2];
	sb_ld_pair_ro(s->hdr->tail, t2);
	if (earliest) {
		rd->pos = from;
		rd->next_seq = from == 0 ? 0 : SHMBUS_NOSEQ;
	} else {
		rd->pos = t2[0];
		rd->next_seq = t2[1];
	}
	rd->safe_from = observer ? UINT64_MAX : t2[0];
}

void shmbus_ring_reader_join_group(struct shmbus_ring_reader *rd, uint32_t g)
{
	struct shmbus_seg *s = &rd->seg;
	rd->grp = &s->groups[g];
	/* Seq_cst: from here writers honour the group's cursor; anything below the tail we
	 * read next was maybe not protected, so it is read with care. */
	sb_st_seqcst(&rd->slot->group, g + 1);
	rd->safe_from = sb_ld_seqcst(&s->hdr->tail[0]);
}

/* Start a durable reader at its group's cursor (a damaged one is reset to the tail). */
static void durable_load(struct shmbus_ring_reader *rd)
{
	struct shmbus_seg *s = &rd->seg;
	uint64_t c[2], t = sb_ld_acquire(&s->hdr->tail[0]);
	sb_ld_pair(rd->grp->cursor, c);
	if ((c[0] & (SHMBUS_REC_ALIGN - 1)) || c[0] > t) {
		uint64_t want[2] = { t, SHMBUS_CSEQ_NONE };
		if (sb_cas_pair(rd->grp->cursor, c, want)) {
			c[0] = want[0];
			c[1] = want[1];
		}
	}
	rd->pos = c[0];
	rd->next_seq = shmbus_cseq_full(c[1], sb_ld_acquire(&s->hdr->tail[1]));
	rd->held = SHMBUS_NOPOS;
}

void shmbus_ring_reader_make_durable(struct shmbus_ring_reader *rd)
{
	rd->durable = 1;
	durable_load(rd);
}

/* ---- reading --------------------------------------------------------------------------- */

void shmbus_ring_wake_waiting_publishers(struct shmbus_seg *s)
{
	struct shmbus_rtab_hdr *rt = s->rt;
	__atomic_fetch_add(&rt->space, 1, __ATOMIC_SEQ_CST);
	shmbus_futex_wake(&rt->space, INT_MAX);
}

static int read_fanout(struct shmbus_ring_reader *rd, shmbus_msg_t *msg, uint64_t *waitpos)
{
	struct shmbus_seg *s = &rd->seg;
	for (;;) {
		uint64_t p = rd->pos;
		if (p & (SHMBUS_REC_ALIGN - 1))
			return fanout_corrupt(rd); /* from a damaged tail */
		struct shmbus_rec *r = shmbus_rec_at(s, p);
		/* Acquire: the record's fields and payload are visible once its stamp is. */
		uint64_t c = sb_ld_acquire(&r->commit);
		if (c != shmbus_rec_stamp(s, p)) {
			/* While spinning, leave the tail's cache line to the publishers unless
			 * the word there is a later lap's stamp (we were lapped). */
			uint64_t later = c ^ s->key;
			if (rd->cheap && !(later > p && ((later - p) & s->mask) == 0)) {
				*waitpos = p;
				return R_EMPTY;
			}
			uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
			if (t > p && t - p > s->cap) {
				fanout_jump(rd, shmbus_lap_resume(s, t));
				continue;
			}
			*waitpos = p;
			return t > p ? R_STUCK : R_EMPTY;
		}
		int copy = rd->copy_all || p < rd->safe_from;
		struct shmbus_rec_view v;
		rec_view(r, copy, &v);
		if (v.len & SHMBUS_REC_PAD) {
			uint64_t size = v.len & ~SHMBUS_REC_PAD;
			if (copy && overrun(rd, p)) {
				fanout_lapped(rd);
				continue;
			}
			if (shmbus_rec_bad_size(s, p, size))
				return fanout_corrupt(rd);
			rd->pos = p + size;
			if (rd->next_seq != SHMBUS_NOSEQ)
				rd->next_seq += v.type;
			continue;
		}
		uint64_t stride = shmbus_rec_stride(v.len);
		if (v.len > s->opts.max_message || shmbus_rec_bad_size(s, p, stride)) {
			if (copy && overrun(rd, p)) {
				fanout_lapped(rd);
				continue;
			}
			return fanout_corrupt(rd);
		}
		const void *data = r + 1;
		if (copy) {
			copy_racy(rd->buf, r + 1, v.len);
			if (overrun(rd, p)) {
				fanout_lapped(rd);
				continue;
			}
			data = rd->buf;
		}
		shmbus_ring_reader_take(rd, msg, p, stride, &v, data);
		return R_GOT;
	}
}

/* Move the group cursor from {p, sq} to {np, nsq} (cursor words, shm/layout.h); 1 if we did.
 * A take that sq's tag names is confirmed first: its taker may be gone. */
static inline int cursor_move(struct shmbus_seg *s, struct shmbus_group_slot *g, uint64_t p,
			      uint64_t sq, uint64_t np, uint64_t nsq)
{
	if (shmbus_ctag(sq))
		shmbus_ack_confirm(s, sq);
	uint64_t e[2] = { p, sq }, w[2] = { np, nsq };
	return sb_cas_pair(g->cursor, e, w);
}

/* The same cursor word untagged (a move that is not a take), its sequence up by n. */
static inline uint64_t cword_plus(uint64_t sq, uint64_t n)
{
	uint64_t q = shmbus_cseq(sq);
	return q == SHMBUS_CSEQ_NONE ? q : shmbus_cword(q + n, 0);
}

static int read_group(struct shmbus_ring_reader *rd, shmbus_msg_t *msg, uint64_t *waitpos)
{
	struct shmbus_seg *s = &rd->seg;
	struct shmbus_group_slot *g = rd->grp;
	int block = s->opts.policy == SHMBUS_BLOCK;
	if (rd->ack) {
		/* Messages handed back first, then a new one if the limits allow. */
		int r = shmbus_ring_ack_redeliver(rd, msg);
		if (r > 0)
			return R_GOT;
		if (shmbus_ring_ack_reserve(rd) < 0) {
			*waitpos = sb_ld_acquire(&g->cursor[0]);
			return R_EMPTY; /* at a pending limit: wait as for nothing */
		}
	}
	for (;;) {
		/* Two loads, maybe of different moves: the CAS below fails if they disagree. */
		uint64_t p = sb_ld_acquire(&g->cursor[0]);
		uint64_t sq = sb_ld_acquire(&g->cursor[1]);
		if (p & (SHMBUS_REC_ALIGN - 1)) {
			/* A damaged cursor: resynchronise at the tail. */
			cursor_move(s, g, p, sq, shmbus_ring_fix_tail(s), SHMBUS_CSEQ_NONE);
			return -EBADMSG;
		}
		int copy = rd->copy_all || p < rd->safe_from;
		uint64_t hold = sb_ld_relaxed(&rd->slot->pos);
		/* A batch keeps its first hold: it protects every later record as well. */
		if (!copy && hold != p && !(rd->batching && hold != SHMBUS_NOPOS && hold < p)) {
			/* Hold p before reading it (seq_cst, before the cursor re-check): a
			 * publisher that sees the cursor moved past p also sees this hold. (A
			 * hold already on p, with the cursor still there, is as good.) */
			sb_st_seqcst(&rd->slot->pos, p);
			if (sb_ld_seqcst(&g->cursor[0]) != p)
				continue;
		}
		struct shmbus_rec *r = shmbus_rec_at(s, p);
		if (sb_ld_acquire(&r->commit) != shmbus_rec_stamp(s, p)) {
			uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
			if (sb_ld_acquire(&g->cursor[0]) != p)
				continue;
			if (t > p && t - p > s->cap) {
				if (cursor_move(s, g, p, sq, shmbus_lap_resume(s, t),
						cword_plus(sq, 0)))
					sb_st_relaxed(&rd->slot->pos, SHMBUS_NOPOS);
				continue;
			}
			if (p > t) {
				/* A cursor beyond the tail is damage: resynchronise at the tail. */
				cursor_move(s, g, p, sq, shmbus_ring_fix_tail(s), SHMBUS_CSEQ_NONE);
				return -EBADMSG;
			}
			*waitpos = p;
			return t > p ? R_STUCK : R_EMPTY;
		}
		struct shmbus_rec_view v;
		rec_view(r, copy, &v);
		uint64_t size = shmbus_rec_size(v.len);
		int bad = shmbus_rec_bad_size(s, p, size) ||
			  (!(v.len & SHMBUS_REC_PAD) && v.len > s->opts.max_message);
		if (copy && !bad && !(v.len & SHMBUS_REC_PAD))
			copy_racy(rd->buf, r + 1, v.len);
		if (copy && overrun(rd, p)) {
			uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
			cursor_move(s, g, p, sq, shmbus_lap_resume(s, t), cword_plus(sq, 0));
			continue;
		}
		if (bad) {
			if (sb_ld_acquire(&g->cursor[0]) != p)
				continue;
			cursor_move(s, g, p, sq, shmbus_ring_fix_tail(s), SHMBUS_CSEQ_NONE);
			return -EBADMSG;
		}
		if (v.len & SHMBUS_REC_PAD) {
			cursor_move(s, g, p, sq, p + size, cword_plus(sq, v.type));
			continue;
		}
		/* An acknowledging member names the message in its entry before the CAS, and
		 * tags the cursor word with its slot: until it (or whoever moves the cursor
		 * next) has confirmed the take in its slot, the cursor says who took it. A kill
		 * lands after the CAS's long instruction as easily as anywhere: nothing may
		 * have to follow it (ring/ack.c). */
		uint64_t nsq = shmbus_cword(v.seq + 1, 0);
		if (rd->ack) {
			shmbus_ring_ack_name(rd, p, v.seq);
			nsq = shmbus_cword(v.seq + 1, rd->slot_idx + 1);
		}
		if (!cursor_move(s, g, p, sq, p + size, nsq)) {
			if (rd->ack) /* not ours: the entry names nothing again */
				sb_st_relaxed(&rd->pend[rd->res].pos, SHMBUS_NOPOS);
			continue;
		}
		if (rd->ack)
			shmbus_ring_ack_took(rd, g, p + size, nsq);
		uint64_t lost = 0, q = shmbus_cseq(sq);
		if (q != SHMBUS_CSEQ_NONE &&
		    ((v.seq - q) & SHMBUS_CSEQ_MASK) - 1 < SHMBUS_CSEQ_MASK / 2) {
			lost = (v.seq - q) & SHMBUS_CSEQ_MASK;
			sb_add_relaxed(&g->lost, lost);
		}
		rd->held = (block && !copy) ? p : SHMBUS_NOPOS;
		rd->held_end = p + size;
		const void *data = copy ? (const void *)rd->buf : (const void *)(r + 1);
		shmbus_ring_reader_deliver(rd, msg, p, &v, data, lost);
		if (rd->ack)
			shmbus_ring_ack_taken(rd, msg);
		return R_GOT;
	}
}

int shmbus_ring_reader_read_at(struct shmbus_ring_reader *rd, uint64_t pos, uint64_t seq,
			       shmbus_msg_t *msg, int count)
{
	struct shmbus_seg *s = &rd->seg;
	if (pos & (SHMBUS_REC_ALIGN - 1))
		return 0;
	uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
	if (pos >= t || t - pos > s->cap)
		return 0;
	/* In block mode the pending entry keeps writers off the record: read in place. */
	int copy = rd->copy_all || s->opts.policy != SHMBUS_BLOCK;
	struct shmbus_rec *r = shmbus_rec_at(s, pos);
	if (sb_ld_acquire(&r->commit) != shmbus_rec_stamp(s, pos))
		return 0;
	struct shmbus_rec_view v;
	rec_view(r, copy, &v);
	uint64_t size = shmbus_rec_size(v.len);
	if ((v.len & SHMBUS_REC_PAD) || v.len > s->opts.max_message || v.seq != seq ||
	    shmbus_rec_bad_size(s, pos, size))
		return 0;
	if (copy) {
		copy_racy(rd->buf, r + 1, v.len);
		if (overrun(rd, pos))
			return 0;
	}
	rd->held = SHMBUS_NOPOS; /* the entry protects it, not a hold */
	shmbus_ring_reader_deliver(rd, msg, pos, &v,
				   copy ? (const void *)rd->buf : (const void *)(r + 1), 0);
	if (!count) {
		/* Read to be passed on (a dead letter), not received. */
		rd->consumed--;
		sb_st_relaxed(&rd->slot->consumed, rd->consumed);
	}
	return 1;
}

/* Before sleeping or giving up: hold nothing beyond what we wait for. */
static void publish_wait_pos(struct shmbus_ring_reader *rd)
{
	if (rd->durable || rd->observer)
		return;
	if (rd->grp) {
		if (sb_ld_relaxed(&rd->slot->pos) != SHMBUS_NOPOS)
			sb_st_release(&rd->slot->pos, SHMBUS_NOPOS);
		if (rd->ack)
			shmbus_ring_ack_idle(rd);
	} else if (sb_ld_relaxed(&rd->slot->pos) != rd->pos) {
		sb_st_release(&rd->slot->pos, rd->pos);
	}
	/* And the wakes that releases put off (shmbus_ring_crosses_16th()): waiting writers get
	 * all we released now (one load when none waits). */
	if (rd->seg.opts.policy == SHMBUS_BLOCK)
		shmbus_ring_wake_publishers(&rd->seg);
}

static inline int read_one(struct shmbus_ring_reader *rd, shmbus_msg_t *msg, uint64_t *waitpos)
{
	return takes_from_cursor(rd) ? read_group(rd, msg, waitpos) : read_fanout(rd, msg, waitpos);
}

/* ---- the reader's half of the sleep/wake handshake ------------------------------------- */

/*
 * Arm the wake word before the last re-check (docs/algorithm.md, "Waking readers"): the
 * seq_cst RMW and the fence order it before the re-check's loads; a publisher reads the
 * word after its claim's CAS and before its commit (ring/record.h). So either the re-check
 * finds the tail past our position (a claim: the record, or one being written), or that
 * claim's publisher finds us armed and wakes us after its commit. Returns the value to
 * sleep on: a waker changes it (ring/writer.c, shmbus_ring_wake_sleepers()).
 */
static uint32_t sleep_arm(struct shmbus_rtab_hdr *rt, uint32_t bit)
{
	uint32_t v = __atomic_or_fetch(&rt->wake, bit, __ATOMIC_SEQ_CST);
	sb_fence_seqcst();
	return v;
}

int shmbus_ring_reader_sleep_prepare(struct shmbus_ring_reader *rd, uint32_t **word, uint32_t *val)
{
	struct shmbus_rtab_hdr *rt = rd->seg.rt;
	if (shmbus_ring_reader_ready(rd))
		return 0;
	uint32_t v = sleep_arm(rt, SHMBUS_WAKE_NOW);
	if (shmbus_ring_reader_ready(rd))
		return 0;
	/* A claim being written at our position (the tail is past it) is almost always
	 * woken for by its publisher; the caller's periodic shmbus_ring_reader_stuck()
	 * check covers the rest (a publisher that read the word just before we armed). */
	*word = &rt->wake;
	*val = v;
	return 1;
}

/* ---- spinning that pays ------------------------------------------------------------------ */

/* Spin at least this long after a spin that paid, and no less than this after ones that
 * did not (so that a change in the publisher's pace is noticed). */
#define SPIN_FLOOR_DIV 16u

static void spin_set(struct shmbus_ring_reader *rd, uint64_t ns)
{
	uint64_t floor = rd->spin_ns / SPIN_FLOOR_DIV;
	rd->spin_cur = ns > rd->spin_ns ? rd->spin_ns : ns < floor ? floor : ns;
}

void shmbus_ring_reader_set_spin(struct shmbus_ring_reader *rd, uint64_t ns, int fixed)
{
	rd->spin_ns = ns;
	rd->spin_cur = ns;
	rd->spin_fixed = fixed;
}

/* A message came waited ns after the reader found nothing (spinning or asleep): had the
 * spin lasted twice that, it would have paid. */
static void spin_paid(struct shmbus_ring_reader *rd, uint64_t waited)
{
	if (!rd->spin_fixed && waited < rd->spin_ns && 2 * waited > rd->spin_cur)
		spin_set(rd, 2 * waited);
}

/* The reader spun its whole budget and sleeps: spin half as long next time. */
static void spin_wasted(struct shmbus_ring_reader *rd)
{
	if (!rd->spin_fixed)
		spin_set(rd, rd->spin_cur / 2);
}

/* The record at p has a damaged commit word: go on past it and say so (-EBADMSG), or 0
 * when another member of the group moved the cursor meanwhile (look again). */
static int resync_damaged(struct shmbus_ring_reader *rd, uint64_t p)
{
	struct shmbus_seg *s = &rd->seg;
	uint64_t to = skip_damaged(s, p);
	if (takes_from_cursor(rd)) {
		uint64_t sq = sb_ld_acquire(&rd->grp->cursor[1]);
		if (!cursor_move(s, rd->grp, p, sq, to, SHMBUS_CSEQ_NONE))
			return 0;
	} else {
		if (rd->pos != p)
			return 0;
		fanout_jump(rd, to);
		rd->next_seq = SHMBUS_NOSEQ;
	}
	publish_wait_pos(rd);
	return -EBADMSG;
}

/* Everything but the fast path: other kinds of reader and record, spinning, sleeping. */
int shmbus_ring_reader_next(struct shmbus_ring_reader *rd, shmbus_msg_t *msg, int timeout_ms)
{
	struct shmbus_topic_hdr *h = rd->seg.hdr;
	uint64_t start = 0, deadline = UINT64_MAX, next_repair = 0, waitpos = 0, budget = 0;
	uint64_t stuck_nap = STUCK_NAP_NS;
	int spin = -1; /* decided when nothing is there at once */
	for (unsigned spins = 0;; spins++) {
		/* Spinning, every 64th pass tells empty from stuck and lapped (the first, too,
		 * for a poll): reading the tail costs the next writer a cache miss. Not
		 * spinning, every pass does. */
		rd->cheap = spin != 0 && ((spins & 63) != 0 || (spins == 0 && timeout_ms != 0));
		int rc = read_one(rd, msg, &waitpos);
		if (rc == R_GOT) {
			if (start)
				spin_paid(rd, shmbus_now_ns() - start);
			return 0;
		}
		if (rc < 0)
			return rc;
		if (spin < 0) {
			/* No spin while the CPUs are crowded (the publisher may need ours),
			 * unless the caller fixed the spin. */
			spin = timeout_ms != 0 && rd->spin_cur &&
			       (rd->spin_fixed || !shmbus_cpus_crowded());
			if (!spin && rd->cheap)
				continue; /* look once more, at the tail too */
		}
		if (rd->cheap && rc == R_EMPTY) {
			/* The tight part of the spin: no clock read (it costs as much as
			 * the check), the time is looked at every 64th pass. */
			shmbus_pause();
			continue;
		}
		uint64_t now = shmbus_now_ns();
		if (!start) {
			start = now;
			deadline = shmbus_deadline(now, timeout_ms);
			next_repair = timeout_ms == 0 ? now : now + REPAIR_FIRST_NS;
			if (spin)
				budget = rd->spin_cur;
		}
		if (rc == R_STUCK && now >= next_repair) {
			/* A claim below the tail is not committed: if its writer died,
			 * cover it with padding; if no claim covers it, its commit word was
			 * damaged (bounded: see docs/algorithm.md). */
			int r = shmbus_ring_repair(&rd->seg, waitpos);
			if (r > 0)
				continue;
			if (r < 0 && resync_damaged(rd, waitpos) < 0)
				return -EBADMSG;
			if (r < 0)
				continue;
			next_repair = now + REPAIR_POLL_NS;
		}
		if (now >= deadline) {
			publish_wait_pos(rd);
			return -EAGAIN;
		}
		if (now - start < budget) {
			shmbus_pause();
			continue;
		}
		if (budget) {
			spin_wasted(rd);
			budget = 0;
		}
		publish_wait_pos(rd);
		rd->cheap = 0;
		/* On crowded CPUs, a reader of a topic that streams (LAZY_AFTER messages or
		 * more were published since it last slept, or its last lazy sleep did not
		 * time out idle) sleeps lazily: woken when the log crosses a sixteenth of
		 * the ring, or after SHMBUS_WAKE_LAZY_NS. Fewer, fuller wake-ups, and a
		 * publisher that is not preempted for every message it publishes; a
		 * trickle still wakes its readers at once. */
		uint64_t tseq = sb_ld_relaxed(&h->tail[1]);
		int lazy = rc == R_EMPTY && (tseq - rd->seq_slept >= LAZY_AFTER || rd->lazy_mode) &&
			   shmbus_cpus_crowded();
		rd->seq_slept = tseq;
		int member = takes_from_cursor(rd);
		uint32_t w = sleep_arm(rd->seg.rt, !lazy	 ? SHMBUS_WAKE_NOW :
					  member ? SHMBUS_WAKE_LAZY_ONE :
						   SHMBUS_WAKE_LAZY);
		rc = read_one(rd, msg, &waitpos);
		if (rc == R_GOT)
			return 0;
		if (rc < 0)
			return rc;
		int64_t nap = deadline == UINT64_MAX ? -1 : (int64_t)(deadline - now);
		/* At a claim being written (the tail is past us): its publisher wakes us
		 * unless it read the wake word just before we armed, so the nap is short at
		 * first; a dead publisher's claim is repaired at the REPAIR_POLL_NS pace. */
		uint64_t most = lazy ? SHMBUS_WAKE_LAZY_NS : 0;
		if (rc == R_STUCK) {
			most = stuck_nap;
			stuck_nap = stuck_nap * 2 > REPAIR_POLL_NS ? REPAIR_POLL_NS : stuck_nap * 2;
		}
		/* Every sleep is bounded: a wake-up lost to a damaged wake word costs at
		 * most SLEEP_MAX_NS. */
		if (!most || most > SLEEP_MAX_NS)
			most = SLEEP_MAX_NS;
		if (nap < 0 || nap > (int64_t)most)
			nap = (int64_t)most;
		int wr = shmbus_futex_wait_set(
			&rd->seg.rt->wake, w, nap, member ? SHMBUS_WAKE_SET_MEMBER : SHMBUS_WAKE_SET_ALL);
		if (wr == -EINTR)
			return -EINTR;
		/* Lazy until a lazy sleep times out on a topic that went quiet. */
		rd->lazy_mode = lazy && (wr != -ETIMEDOUT ||
					 sb_ld_relaxed(&h->tail[1]) - tseq >= LAZY_AFTER);
	}
}

/* ---- durable readers --------------------------------------------------------------------- */

int shmbus_ring_reader_commit(struct shmbus_ring_reader *rd, uint64_t pos, uint64_t seq)
{
	if (!rd->durable || (pos & (SHMBUS_REC_ALIGN - 1)) || pos > rd->pos)
		return -EINVAL;
	struct shmbus_group_slot *g = rd->grp;
	uint64_t cur[2] = { sb_ld_acquire(&g->cursor[0]), sb_ld_acquire(&g->cursor[1]) };
	uint64_t want[2] = { pos, shmbus_cword(seq, 0) };
	/* Only forward: a stale or repeated commit is a no-op. The CAS fails, and is
	 * retried with what it found, if the two loads above were of different moves. */
	while (cur[0] < pos) {
		if (sb_cas_pair(g->cursor, cur, want)) {
			if (rd->seg.opts.policy == SHMBUS_BLOCK)
				shmbus_ring_wake_publishers(&rd->seg);
			return 1;
		}
	}
	return 0;
}

void shmbus_ring_reader_lease(struct shmbus_ring_reader *rd, uint64_t ms)
{
	if (!rd->durable)
		return;
	uint64_t until = ms ? shmbus_now_ns() + ms * 1000000ull : 0;
	/* Relaxed: a writer that misses a renewal sees the previous, still valid, one;
	 * one that sees the lease late waits for the cursor, as it would for a member. */
	sb_st_relaxed(&rd->grp->lease_ns, until);
	if (!ms && rd->seg.opts.policy == SHMBUS_BLOCK)
		shmbus_ring_wake_publishers(&rd->seg);
}

void shmbus_ring_reader_rewind(struct shmbus_ring_reader *rd)
{
	if (rd->durable)
		durable_load(rd);
}

int shmbus_ring_reader_more(struct shmbus_ring_reader *rd, shmbus_msg_t *msg)
{
	if (rd->copy_all || rd->observer || rd->durable || rd->held == SHMBUS_NOPOS)
		return 0;
	uint64_t waitpos;
	int rc;
	if (takes_from_cursor(rd)) {
		/* The backlog a member joined with is copied out: not in a batch. */
		if (sb_ld_acquire(&rd->grp->cursor[0]) < rd->safe_from)
			return 0;
		rd->batching = 1;
		rc = read_group(rd, msg, &waitpos);
		rd->batching = 0;
	} else {
		if (rd->pos < rd->safe_from)
			return 0;
		rd->cheap = 1; /* an uncommitted record ends the batch: no tail read */
		rc = read_fanout(rd, msg, &waitpos);
	}
	if (rc < 0)
		rd->pending = rc;
	return rc == R_GOT;
}

int shmbus_ring_reader_pending(struct shmbus_ring_reader *rd)
{
	int rc = rd->pending;
	rd->pending = 0;
	return rc;
}

/* Where this reader's next message is. */
static uint64_t next_pos(struct shmbus_ring_reader *rd)
{
	return takes_from_cursor(rd) ? sb_ld_acquire(&rd->grp->cursor[0]) : rd->pos;
}

int shmbus_ring_reader_ready(struct shmbus_ring_reader *rd)
{
	struct shmbus_seg *s = &rd->seg;
	uint64_t p = next_pos(rd);
	if (p & (SHMBUS_REC_ALIGN - 1))
		return 1; /* damage: recv says so */
	/* Acquire: pairs with the publisher's release of the commit word. */
	if (shmbus_rec_committed(s, p))
		return 1;
	uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
	return t > p && t - p > s->cap; /* lapped: recv jumps ahead */
}

int shmbus_ring_reader_stuck(struct shmbus_ring_reader *rd)
{
	struct shmbus_seg *s = &rd->seg;
	return sb_ld_acquire(&s->hdr->tail[0]) > next_pos(rd) && !shmbus_ring_reader_ready(rd);
}

/* ---- what the topic says ----------------------------------------------------------------- */

uint64_t shmbus_ring_reader_tail_seq(const struct shmbus_ring_reader *rd)
{
	return sb_ld_acquire(&rd->seg.hdr->tail[1]);
}

int shmbus_ring_reader_cursor_seq(const struct shmbus_ring_reader *rd, uint64_t *seq)
{
	if (!rd->grp)
		return 0;
	*seq = shmbus_cseq_full(sb_ld_acquire(&rd->grp->cursor[1]),
				sb_ld_acquire(&rd->seg.hdr->tail[1]));
	return *seq != SHMBUS_NOSEQ;
}
