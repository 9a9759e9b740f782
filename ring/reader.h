/* SPDX-License-Identifier: MIT */
/*
 * The reader of a topic's log, the writer's counterpart (ring/writer.h). One object serves
 * every kind of reader: fan-out (its own position), group member (takes from the group's
 * shared cursor with a 16-byte CAS), durable (a group of one whose cursor moves only on
 * shmbus_ring_reader_commit()), observer (a fan-out reader that never holds writers back).
 * It finds laps and overruns, validates what it reads, sleeps and is woken, and releases
 * what it read so block-mode writers may reuse it. See docs/algorithm.md.
 *
 * In block mode a reader's slot publishes the position it still needs (a fan-out reader:
 * the record it reads or holds; a member: the record it holds), and writers never overrun
 * it, so a message points straight into the ring. In overwrite mode nothing holds writers
 * back: a reader copies the record out, then checks that the tail has not come within a
 * lap of it; if it has, the copy may be torn and the reader skips ahead instead. Records a
 * reader could reach before its slot was visible to every writer (a join "from earliest",
 * a group's backlog) are read the same careful way.
 *
 * A reader is used by one thread at a time. The common case of a receive (a fan-out reader
 * in block mode finding a message) is inline: shmbus_ring_reader_release() then
 * shmbus_ring_reader_next_fast(), and shmbus_ring_reader_next() when that says no.
 */
#ifndef SHMBUS_RING_READER_H
#define SHMBUS_RING_READER_H

#include <stdint.h>

#include <shmbus.h>

#include "ring/atomic.h"
#include "ring/record.h"
#include "shm/segment.h"

struct shmbus_ring_reader {
	struct shmbus_seg seg;	       /* the mapped topic */
	struct shmbus_group_slot *grp; /* NULL: fan-out */
	struct shmbus_reader_slot *slot;
	uint64_t pos;	    /* fan-out: next record to read */
	uint64_t next_seq;  /* fan-out: sequence expected next, or SHMBUS_NOSEQ */
	uint64_t held;	    /* position of the message handed out, or SHMBUS_NOPOS */
	uint64_t held_end;  /* group: the end of that message's record */
	uint64_t safe_from; /* positions below this are read by copy + validation */
	uint8_t *buf;	    /* copy buffer (max_message bytes) */
	uint64_t spin_ns;   /* spin at most this long before sleeping (the caller's choice) */
	uint64_t spin_cur;  /* and this long now: what spinning paid of late */
	int spin_fixed;	    /* spin_ns every time (shmbus_sub_set_spin()) */
	uint64_t consumed;
	uint64_t seq_slept; /* the topic's next sequence when the reader last slept */
	int lazy_mode;	    /* its last sleep was lazy, and the topic did not go quiet */
	uint64_t lost;
	int copy_all;	    /* overwrite policy: every read is copy + validation */
	int durable;	    /* a group of one whose cursor moves by shmbus_ring_reader_commit() */
	int observer;	    /* a fan-out reader that never holds writers back */
	uint64_t lost_seen; /* durable: losses counted up to this sequence */
	int cheap;	    /* spinning: an uncommitted record means "empty" (no tail read) */
	int batching;	    /* taking more messages while holding the ones taken before */
	int pending;	    /* an error met while batching, for the next receive */
	/* an acknowledging member (ring/ack.c) */
	int ack;
	uint32_t gidx;		  /* its group's index */
	uint32_t slot_idx;	  /* its reader slot's */
	struct shmbus_pend *pend; /* its group's pending entries */
	int64_t res;		  /* entry reserved for the next take, or -1 */
	uint32_t hint, rhint;	  /* where to look next for a free / a ready entry (hint: set
				   * by an ack too, maybe in another thread: atomic) */
	uint64_t next_scan_ns;	  /* the next look for timed-out entries */
	uint64_t next_gone_ns;	  /* ... and for entries of holders that are gone */
	uint32_t ack_calls;	  /* receives since the clock was last read */
	/* The entries this member holds, in the order it took them (a ring of qcap): their
	 * index, generation and position; the slot's floor is the lowest position. */
	uint32_t *qi, *qg;
	uint64_t *qp;
	uint32_t qh, qn, qcap;
	uint32_t qlock;	      /* the queue's lock (ring/ack.c) */
	/* A message delivered max_deliver times: publish it to the dead-letter topic (the
	 * subscriber's, bus/sub.c). 0 done; < 0 not now (it stays ready, tried again). */
	int (*dead)(void *arg, const shmbus_dead_letter_t *h, const void *data, uint32_t len,
		    uint32_t type);
	void *dead_arg;
};

/* ---- setting up ------------------------------------------------------------------------ */

/*
 * Set up a reader on a mapped topic (rd->seg, the rest zeroed): its copy buffer and
 * defaults. The caller then gives it the reader slot it took (rd->slot) and places it with
 * one of the joins below. Returns 0 or -ENOMEM.
 */
int shmbus_ring_reader_init(struct shmbus_ring_reader *rd);

/*
 * Read the message at pos, sequence seq (a pending entry's), into msg: in place where
 * block mode protects it, else copied and validated. 1 got; 0 it is not there any more
 * (overwritten, or damaged). With count, it counts as consumed. For ring/ack.c.
 */
int shmbus_ring_reader_read_at(struct shmbus_ring_reader *rd, uint64_t pos, uint64_t seq,
			       shmbus_msg_t *msg, int count);

/* ---- acknowledging members (ring/ack.c) ---- */

/* Make a group member (joined already) acknowledge; slot_idx: its reader slot. 0 or
 * -ENOMEM. */
int shmbus_ring_ack_join(struct shmbus_ring_reader *rd, uint32_t slot_idx);

/* Reserve an entry for the next take: 0, or -EAGAIN at a pending limit. */
int shmbus_ring_ack_reserve(struct shmbus_ring_reader *rd);

/* The reserved entry now names p (seq sq): before the cursor CAS that takes it. */
static inline void shmbus_ring_ack_name(struct shmbus_ring_reader *rd, uint64_t p, uint64_t sq)
{
	struct shmbus_pend *e = &rd->pend[rd->res];
	sb_st_relaxed(&e->seq, sq);
	sb_st_relaxed(&e->pos, p);
	/* Named now (release: whoever sees it named sees the name). Nobody else writes a
	 * reserved entry of a live member. */
	uint64_t c = sb_ld_relaxed(&e->ctl);
	if (c & 0xf0) /* the reason bits: SHMBUS_PEND_UNNAMED (ring/ack.h) */
		sb_st_release(&e->ctl, c & ~(uint64_t)0xf0);
	/* The member's floor covers p before the cursor CAS: a publisher that sees the
	 * cursor moved past p (it reads cursors before floors) sees the floor at or below
	 * p, the CAS ordering this store before it (a release will do). With older
	 * messages pending, the floor is below p already. */
	if (!__atomic_load_n(&rd->qn, __ATOMIC_RELAXED) && sb_ld_relaxed(&rd->slot->floor) != p)
		sb_st_release(&rd->slot->floor, p);
}

/* Our cursor CAS (to {np, w}, w tagged with our slot) took the message the reserved entry
 * names: confirmed in our slot, then the tag is taken off (whoever moves the cursor from a
 * tagged word confirms for its taker: one CAS now, on a line that is ours, spares the next
 * member a write to our slot). */
static inline void shmbus_ring_ack_took(struct shmbus_ring_reader *rd, struct shmbus_group_slot *g,
					uint64_t np, uint64_t w)
{
	sb_st_relaxed(&rd->slot->taken_seq, shmbus_cseq(w));
	uint64_t e[2] = { np, w }, u[2] = { np, shmbus_cword(w, 0) };
	sb_cas_pair(g->cursor, e, u);
}

/* The message is held, msg says so (after shmbus_ring_ack_took()). */
void shmbus_ring_ack_taken(struct shmbus_ring_reader *rd, shmbus_msg_t *msg);

/* Going to sleep: the reserved entry names nothing (it would hold publishers back). */
void shmbus_ring_ack_idle(struct shmbus_ring_reader *rd);

/* A ready entry due now, delivered again into msg: 1; 0 none; the periodic scans too. */
int shmbus_ring_ack_redeliver(struct shmbus_ring_reader *rd, shmbus_msg_t *msg);

/* shmbus_ack(), shmbus_nack(): 0, -ESTALE. */
int shmbus_ring_ack(struct shmbus_ring_reader *rd, const shmbus_msg_t *msg);
int shmbus_ring_nack(struct shmbus_ring_reader *rd, const shmbus_msg_t *msg, uint32_t delay_ms);

/* Closing: every entry this member holds is handed back, the reserved one freed. */
void shmbus_ring_ack_leave(struct shmbus_ring_reader *rd);

/* Release what the reader holds, stop publishing a position, free the copy buffer. The slot stays owned (the caller gives it back);
 * rd->seg stays mapped. */
void shmbus_ring_reader_fini(struct shmbus_ring_reader *rd);

/*
 * Start a fan-out reader at the tail, or (earliest) at the first intact lap start. An
 * observer publishes no position and copies and validates every record.
 */
void shmbus_ring_reader_join(struct shmbus_ring_reader *rd, int earliest, int observer);

/* Make the reader a member of group g (an active group slot index). */
void shmbus_ring_reader_join_group(struct shmbus_ring_reader *rd, uint32_t g);

/*
 * Make a member the durable reader of its group (the caller has made sure it is the only
 * member): it reads ahead of the cursor with a position of its own, starting at the cursor
 * (a damaged one is reset to the tail).
 */
void shmbus_ring_reader_make_durable(struct shmbus_ring_reader *rd);

/* Spin at most ns before sleeping when nothing is there (0: never spin). Unless fixed,
 * spins are shortened while they do not pay (to no less than a sixteenth of ns) and
 * skipped while the CPUs are crowded; fixed, the reader spins ns every time. */
void shmbus_ring_reader_set_spin(struct shmbus_ring_reader *rd, uint64_t ns, int fixed);

/* ---- reading --------------------------------------------------------------------------- */

/* The writers' wake (there are waiters) of shmbus_ring_wake_publishers. */
void shmbus_ring_wake_waiting_publishers(struct shmbus_seg *s);

/* After a reader released space: wake waiting writers if there are any. Inline: every
 * block-mode read calls it, and the check alone is one load. */
static inline void shmbus_ring_wake_publishers(struct shmbus_seg *s)
{
	/* No fence here (it would cost every release): a writer that misses this wake
	 * re-checks within its 1 ms poll. */
	if (sb_ld_relaxed(&s->rt->pub_waiters))
		shmbus_ring_wake_waiting_publishers(s);
}

/*
 * Let writers have what this reader no longer needs (the message handed out last). Only a
 * release that crosses a sixteenth of the ring wakes waiting writers (and the one before
 * the reader sleeps): once a block-mode ring is full, a wake per message would put the
 * writer and the reader in lockstep, a futex syscall each for every message; so a woken
 * writer finds at least a sixteenth of the ring free.
 */
static inline void shmbus_ring_reader_release(struct shmbus_ring_reader *rd)
{
	struct shmbus_seg *s = &rd->seg;
	if (rd->durable || rd->observer) {
		/* Nothing published: the group cursor (durable) protects what is read, or
		 * nothing does (observer). */
		rd->held = SHMBUS_NOPOS;
		return;
	}
	if (rd->grp) {
		if (rd->held != SHMBUS_NOPOS || sb_ld_relaxed(&rd->slot->pos) != SHMBUS_NOPOS) {
			int due = rd->held == SHMBUS_NOPOS ||
				  shmbus_ring_crosses_16th(s, rd->held, rd->held_end);
			/* Release: our reads of the record happen before its reuse. */
			sb_st_release(&rd->slot->pos, SHMBUS_NOPOS);
			rd->held = SHMBUS_NOPOS;
			if (due && s->opts.policy == SHMBUS_BLOCK)
				shmbus_ring_wake_publishers(s);
		}
		return;
	}
	if (rd->held != SHMBUS_NOPOS) {
		int due = shmbus_ring_crosses_16th(s, rd->held, rd->pos);
		rd->held = SHMBUS_NOPOS;
		/* Release: our reads of the record happen before its reuse. */
		sb_st_release(&rd->slot->pos, rd->pos);
		if (due && s->opts.policy == SHMBUS_BLOCK)
			shmbus_ring_wake_publishers(s);
	}
}

/* Hand out the message at p (header v, payload data), lost: messages skipped before it. */
static inline void shmbus_ring_reader_deliver(struct shmbus_ring_reader *rd, shmbus_msg_t *msg,
					      uint64_t p, const struct shmbus_rec_view *v,
					      const void *data, uint64_t lost)
{
	msg->data = data;
	msg->len = v->len;
	msg->type = v->type;
	msg->seq = v->seq;
	msg->timestamp_ns = v->ts;
	msg->lost = lost;
	msg->deliveries = 1;
	msg->_flags = 0;
	msg->topic = rd->seg.name;
	msg->_pos = p;
	msg->_pend = 0;
	msg->_src = 0;
	rd->consumed++;
	sb_st_relaxed(&rd->slot->consumed, rd->consumed);
	if (!rd->grp)
		sb_st_relaxed(&rd->slot->next_seq, v->seq + 1);
	if (lost) {
		rd->lost += lost;
		sb_st_relaxed(&rd->slot->lost, rd->lost);
	}
}

/* A reader with a position of its own takes the message at p (stride bytes): counts what it
 * skipped, holds it, moves past it. */
static inline void shmbus_ring_reader_take(struct shmbus_ring_reader *rd, shmbus_msg_t *msg,
					   uint64_t p, uint64_t stride,
					   const struct shmbus_rec_view *v, const void *data)
{
	uint64_t lost = 0;
	if (rd->next_seq != SHMBUS_NOSEQ && v->seq > rd->next_seq)
		lost = v->seq - rd->next_seq;
	if (rd->durable && lost) {
		/* Read again after a rewind, a loss is not a new one. */
		if (v->seq > rd->lost_seen) {
			rd->lost_seen = v->seq;
			sb_add_relaxed(&rd->grp->lost, lost);
		} else {
			lost = 0;
		}
	}
	rd->next_seq = v->seq + 1;
	rd->held = p;
	rd->pos = p + stride;
	shmbus_ring_reader_deliver(rd, msg, p, v, data, lost);
}

/*
 * The common case of a fan-out read in block mode, in one piece: the record at our position
 * is committed, of this lap, a message (not padding) of a sane size, and read in place.
 * 1: *msg filled. Anything else: 0 having changed nothing, and shmbus_ring_reader_next()
 * decides (it makes the same checks).
 */
static inline int shmbus_ring_reader_next_fast(struct shmbus_ring_reader *rd, shmbus_msg_t *msg)
{
	struct shmbus_seg *s = &rd->seg;
	uint64_t p = rd->pos;
	if (rd->grp || rd->copy_all || p < rd->safe_from || (p & (SHMBUS_REC_ALIGN - 1)))
		return 0;
	const struct shmbus_rec *r = shmbus_rec_at(s, p);
	/* Acquire: the record's fields and payload are visible once its stamp is. */
	if (sb_ld_acquire(&r->commit) != shmbus_rec_stamp(s, p))
		return 0;
	struct shmbus_rec_view v;
	shmbus_rec_view(r, &v);
	uint64_t stride = shmbus_rec_stride(v.len);
	if ((v.len & SHMBUS_REC_PAD) || v.len > s->opts.max_message ||
	    (p & s->mask) + stride > s->cap)
		return 0;
	shmbus_ring_reader_take(rd, msg, p, stride, &v, r + 1);
	return 1;
}

/*
 * The next message, any kind of reader and record: padding, laps, damage, spinning (up to
 * spin_ns), sleeping, repairing a dead writer's claim, up to timeout_ms (< 0: forever,
 * 0: a poll). Call shmbus_ring_reader_release() first. Returns 0 (*msg filled), -EAGAIN
 * (nothing in time), -EINTR, -EBADMSG (a damaged record or cursor: the reader has
 * resynchronised at the tail).
 */
int shmbus_ring_reader_next(struct shmbus_ring_reader *rd, shmbus_msg_t *msg, int timeout_ms);

/*
 * A batch: after a message was received (and not released), the next one if it is there
 * now and can be handed out in place, keeping everything received since the last release
 * held. 1: *msg filled; 0: none (nothing there, or a message that is copied out; damage
 * is kept for shmbus_ring_reader_pending()).
 */
int shmbus_ring_reader_more(struct shmbus_ring_reader *rd, shmbus_msg_t *msg);

/* The error a batch met (rd->pending, cleared): what the next receive returns. */
int shmbus_ring_reader_pending(struct shmbus_ring_reader *rd);

/* Would shmbus_ring_reader_next() find something (a record, padding, a lap, damage) now?
 * No side effects. */
int shmbus_ring_reader_ready(struct shmbus_ring_reader *rd);

/* Is the reader waiting at a claim below the tail that is not committed (a slow or dead
 * writer)? shmbus_ring_reader_next() with timeout 0 repairs a dead one's claim. */
int shmbus_ring_reader_stuck(struct shmbus_ring_reader *rd);

/* ---- waiting outside the reader (an event loop's futex wait) -------------------------- */

/*
 * The reader's half of the sleep/wake handshake for a caller that waits on its own (the
 * bridge's io_uring FUTEX_WAIT). Arms the topic's wake word and re-checks: 0 when
 * something is there already (nothing to wait for), 1 when armed: wait while
 * *(*word) == *val; nothing to undo after. The caller also checks
 * shmbus_ring_reader_stuck() now and then (docs/algorithm.md, "Waking readers").
 */
int shmbus_ring_reader_sleep_prepare(struct shmbus_ring_reader *rd, uint32_t **word, uint32_t *val);

/* ---- durable readers --------------------------------------------------------------------- */

/*
 * Move a durable reader's group cursor forward to {pos, seq}: the position just past the
 * last confirmed message and the sequence expected next. Never moves it back, nor past
 * what was read. Returns 1 moved, 0 already there, -EINVAL.
 */
int shmbus_ring_reader_commit(struct shmbus_ring_reader *rd, uint64_t pos, uint64_t seq);

/* Hold a durable reader's group for ms from now, member or not (ms = 0: drop the hold). */
void shmbus_ring_reader_lease(struct shmbus_ring_reader *rd, uint64_t ms);

/* Read again from a durable reader's group cursor. */
void shmbus_ring_reader_rewind(struct shmbus_ring_reader *rd);

/* ---- what the topic says ----------------------------------------------------------------- */

/* The sequence number the next message published will take. */
uint64_t shmbus_ring_reader_tail_seq(const struct shmbus_ring_reader *rd);

/* A member's group cursor sequence (for a durable reader: the one after the last
 * confirmed message): 1 and *seq, or 0 when not known yet (a group created "from
 * earliest" before its first read) or the reader is not in a group. */
int shmbus_ring_reader_cursor_seq(const struct shmbus_ring_reader *rd, uint64_t *seq);

#endif
