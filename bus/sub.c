/* SPDX-License-Identifier: MIT */
/*
 * Readers. A fan-out subscriber owns its position; group members share the group's cursor
 * {position, expected sequence} and take a record by moving it with one 16-byte CAS.
 *
 * In block mode a reader's slot publishes the position it still needs (a fan-out reader:
 * the record it reads or holds; a member: the record it holds), and publishers never
 * overrun it, so a returned view points straight into the ring. In overwrite mode nothing
 * holds publishers back: a reader copies the record out, then (acquire fence) checks that
 * the tail has not come within a lap of it; if it has, the copy may be torn and the reader
 * skips ahead instead. Records a reader could reach before its slot was visible to every
 * publisher (a join "from earliest", a group's backlog) are read the same careful way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/internal.h"
#include "ring/clock.h"
#include "ring/wake.h"
#include "shm/err.h"
#include "shm/proc.h"

#define SUB_SPIN_NS 20000ull
#define REPAIR_FIRST_NS 50000ull
#define REPAIR_POLL_NS 1000000ull

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

struct view {
	uint32_t len, type;
	uint64_t seq, ts;
};

/* Reads that may race with a publisher of a later lap; validated afterwards (the tail
 * check), so a torn result is never returned. Hidden from TSan, which cannot know that. */
static RACY_READS void snap(const struct shmbus_rec *r, struct view *v)
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

/* After racy reads of position p: has a publisher claimed into p's next lap? */
static inline int overrun(struct shmbus_sub *sb, uint64_t p)
{
	/* Orders the copy's loads before the tail load (seqlock-style validation). */
	sb_fence_acquire();
	uint64_t t = sb_ld_relaxed(&sb->seg.hdr->tail[0]);
	return t - p > sb->seg.cap;
}

/* The first lap start that is still intact with the tail at t (t >= cap). */
static inline uint64_t lap_resume(const struct shmbus_seg *s, uint64_t t)
{
	return (t - s->cap + s->mask) & ~s->mask;
}

/* Does this reader publish its position in its slot, for block-mode publishers to honour?
 * Fan-out subscribers do; group members publish only what they hold; a durable reader is
 * protected by its group's cursor and an observer by nothing at all. */
static inline int pins_pos(const struct shmbus_sub *sb)
{
	return sb->seg.opts.policy == SHMBUS_BLOCK && !sb->grp && !sb->observer;
}

/* Does this reader take from its group's shared cursor (a member; a durable reader reads
 * ahead of its group's cursor with a position of its own)? */
static inline int takes_from_cursor(const struct shmbus_sub *sb)
{
	return sb->grp && !sb->durable;
}

static void fanout_jump(struct shmbus_sub *sb, uint64_t to)
{
	sb->pos = to;
	if (pins_pos(sb))
		sb_st_release(&sb->slot->pos, to);
}

/* A record failed validation: resynchronise at the tail (always a record boundary). */
static int fanout_corrupt(struct shmbus_sub *sb)
{
	uint64_t t = sb_ld_acquire(&sb->seg.hdr->tail[0]);
	fanout_jump(sb, t);
	sb->next_seq = SHMBUS_NOSEQ;
	return -EBADMSG;
}

static void deliver(struct shmbus_sub *sb, shmbus_msg_t *msg, uint64_t p, const struct view *v,
		    const void *data, uint64_t lost)
{
	msg->data = data;
	msg->len = v->len;
	msg->type = v->type;
	msg->seq = v->seq;
	msg->timestamp_ns = v->ts;
	msg->lost = lost;
	msg->_pos = p;
	sb->consumed++;
	sb_st_relaxed(&sb->slot->consumed, sb->consumed);
	if (!sb->grp)
		sb_st_relaxed(&sb->slot->next_seq, v->seq + 1);
	if (lost) {
		sb->lost += lost;
		sb_st_relaxed(&sb->slot->lost, sb->lost);
	}
}

/* A fan-out reader takes the message at p (stride bytes): counts what it skipped, holds
 * it, moves past it. */
static inline void fanout_take(struct shmbus_sub *sb, shmbus_msg_t *msg, uint64_t p,
			       uint64_t stride, const struct view *v, const void *data)
{
	uint64_t lost = 0;
	if (sb->next_seq != SHMBUS_NOSEQ && v->seq > sb->next_seq)
		lost = v->seq - sb->next_seq;
	if (sb->durable && lost) {
		/* Read again after a rewind, a loss is not a new one. */
		if (v->seq > sb->lost_seen) {
			sb->lost_seen = v->seq;
			sb_add_relaxed(&sb->grp->lost, lost);
		} else {
			lost = 0;
		}
	}
	sb->next_seq = v->seq + 1;
	sb->held = p;
	sb->pos = p + stride;
	deliver(sb, msg, p, v, data, lost);
}

static int bad_size(const struct shmbus_seg *s, uint64_t p, uint64_t size)
{
	return size < SHMBUS_REC_HDR || (size & (SHMBUS_REC_ALIGN - 1)) ||
	       (p & s->mask) + size > s->cap;
}

static int read_fanout(struct shmbus_sub *sb, shmbus_msg_t *msg, uint64_t *waitpos)
{
	struct shmbus_seg *s = &sb->seg;
	for (;;) {
		uint64_t p = sb->pos;
		if (p & (SHMBUS_REC_ALIGN - 1))
			return fanout_corrupt(sb); /* from a damaged tail */
		struct shmbus_rec *r = ring_rec(s, p);
		/* Acquire: the record's fields and payload are visible once its stamp is. */
		uint64_t c = sb_ld_acquire(&r->commit);
		if (c != ring_stamp(s, p)) {
			/* While spinning, leave the tail's cache line to the publishers unless
			 * the word there is a later lap's stamp (we were lapped). */
			uint64_t later = c ^ s->key;
			if (sb->cheap && !(later > p && ((later - p) & s->mask) == 0)) {
				*waitpos = p;
				return R_EMPTY;
			}
			uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
			if (t > p && t - p > s->cap) {
				fanout_jump(sb, lap_resume(s, t));
				continue;
			}
			*waitpos = p;
			return t > p ? R_STUCK : R_EMPTY;
		}
		int copy = sb->copy_all || p < sb->safe_from;
		struct view v;
		if (copy) {
			snap(r, &v);
		} else {
			v.len = r->len;
			v.type = r->type;
			v.seq = r->seq;
			v.ts = r->ts;
		}
		if (v.len & SHMBUS_REC_PAD) {
			uint64_t size = v.len & ~SHMBUS_REC_PAD;
			if (copy && overrun(sb, p)) {
				fanout_jump(sb, lap_resume(s, sb_ld_acquire(&s->hdr->tail[0])));
				continue;
			}
			if (bad_size(s, p, size))
				return fanout_corrupt(sb);
			sb->pos = p + size;
			if (sb->next_seq != SHMBUS_NOSEQ)
				sb->next_seq += v.type;
			continue;
		}
		uint64_t stride = ring_stride(v.len);
		if (v.len > s->opts.max_message || bad_size(s, p, stride)) {
			if (copy && overrun(sb, p)) {
				fanout_jump(sb, lap_resume(s, sb_ld_acquire(&s->hdr->tail[0])));
				continue;
			}
			return fanout_corrupt(sb);
		}
		const void *data = r + 1;
		if (copy) {
			copy_racy(sb->buf, r + 1, v.len);
			if (overrun(sb, p)) {
				fanout_jump(sb, lap_resume(s, sb_ld_acquire(&s->hdr->tail[0])));
				continue;
			}
			data = sb->buf;
		}
		fanout_take(sb, msg, p, stride, &v, data);
		return R_GOT;
	}
}

/* Move the group cursor from {p, sq} to {np, nsq}; 1 if we did. */
static inline int cursor_move(struct shmbus_group_slot *g, uint64_t p, uint64_t sq, uint64_t np,
			      uint64_t nsq)
{
	uint64_t e[2] = { p, sq }, w[2] = { np, nsq };
	return sb_cas_pair(g->cursor, e, w);
}

static int read_group(struct shmbus_sub *sb, shmbus_msg_t *msg, uint64_t *waitpos)
{
	struct shmbus_seg *s = &sb->seg;
	struct shmbus_group_slot *g = sb->grp;
	int block = s->opts.policy == SHMBUS_BLOCK;
	for (;;) {
		/* Two loads, maybe of different moves: the CAS below fails if they disagree. */
		uint64_t p = sb_ld_acquire(&g->cursor[0]);
		uint64_t sq = sb_ld_acquire(&g->cursor[1]);
		if (p & (SHMBUS_REC_ALIGN - 1)) {
			/* A damaged cursor: resynchronise at the tail. */
			uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
			cursor_move(g, p, sq, t, SHMBUS_NOSEQ);
			return -EBADMSG;
		}
		int copy = sb->copy_all || p < sb->safe_from;
		if (!copy && sb_ld_relaxed(&sb->slot->pos) != p) {
			/* Hold p before reading it (seq_cst, before the cursor re-check): a
			 * publisher that sees the cursor moved past p also sees this hold. (A
			 * hold already on p, with the cursor still there, is as good.) */
			sb_st_seqcst(&sb->slot->pos, p);
			if (sb_ld_seqcst(&g->cursor[0]) != p)
				continue;
		}
		struct shmbus_rec *r = ring_rec(s, p);
		if (sb_ld_acquire(&r->commit) != ring_stamp(s, p)) {
			uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
			if (sb_ld_acquire(&g->cursor[0]) != p)
				continue;
			if (t > p && t - p > s->cap) {
				if (cursor_move(g, p, sq, lap_resume(s, t), sq))
					sb_st_relaxed(&sb->slot->pos, SHMBUS_NOPOS);
				continue;
			}
			if (p > t) {
				/* A cursor beyond the tail is damage: resynchronise at the tail. */
				cursor_move(g, p, sq, t, SHMBUS_NOSEQ);
				return -EBADMSG;
			}
			*waitpos = p;
			return t > p ? R_STUCK : R_EMPTY;
		}
		struct view v;
		if (copy) {
			snap(r, &v);
		} else {
			v.len = r->len;
			v.type = r->type;
			v.seq = r->seq;
			v.ts = r->ts;
		}
		uint64_t size = (v.len & SHMBUS_REC_PAD) ? (v.len & ~SHMBUS_REC_PAD)
							 : ring_stride(v.len);
		int bad = bad_size(s, p, size) ||
			  (!(v.len & SHMBUS_REC_PAD) && v.len > s->opts.max_message);
		if (copy && !bad && !(v.len & SHMBUS_REC_PAD))
			copy_racy(sb->buf, r + 1, v.len);
		if (copy && overrun(sb, p)) {
			uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
			cursor_move(g, p, sq, lap_resume(s, t), sq);
			continue;
		}
		if (bad) {
			if (sb_ld_acquire(&g->cursor[0]) != p)
				continue;
			cursor_move(g, p, sq, sb_ld_acquire(&s->hdr->tail[0]), SHMBUS_NOSEQ);
			return -EBADMSG;
		}
		if (v.len & SHMBUS_REC_PAD) {
			cursor_move(g, p, sq, p + size, sq == SHMBUS_NOSEQ ? sq : sq + v.type);
			continue;
		}
		if (!cursor_move(g, p, sq, p + size, v.seq + 1))
			continue;
		uint64_t lost = 0;
		if (sq != SHMBUS_NOSEQ && v.seq > sq) {
			lost = v.seq - sq;
			sb_add_relaxed(&g->lost, lost);
		}
		sb->held = (block && !copy) ? p : SHMBUS_NOPOS;
		sb->held_end = p + size;
		deliver(sb, msg, p, &v, copy ? (const void *)sb->buf : (const void *)(r + 1), lost);
		return R_GOT;
	}
}

/*
 * Does releasing the record [from, to) cross a sixteenth of the ring? Only then does a
 * release wake waiting publishers (and before the reader sleeps, publish_wait_pos()):
 * once a block-mode ring is full, a wake per message would put the publisher and the
 * reader in lockstep, a futex syscall each for every message. With this, a woken
 * publisher finds at least a sixteenth of the ring free.
 */
static inline int wake_due(const struct shmbus_seg *s, uint64_t from, uint64_t to)
{
	return (from ^ to) > (s->mask >> 4);
}

/* Let publishers have what this reader no longer needs. */
static inline void release_held(struct shmbus_sub *sb)
{
	if (sb->durable || sb->observer) {
		/* Nothing published: the group cursor (durable) protects what is read, or
		 * nothing does (observer). */
		sb->held = SHMBUS_NOPOS;
		return;
	}
	if (sb->grp) {
		if (sb->held != SHMBUS_NOPOS || sb_ld_relaxed(&sb->slot->pos) != SHMBUS_NOPOS) {
			int due = sb->held == SHMBUS_NOPOS ||
				  wake_due(&sb->seg, sb->held, sb->held_end);
			/* Release: our reads of the record happen before its reuse. */
			sb_st_release(&sb->slot->pos, SHMBUS_NOPOS);
			sb->held = SHMBUS_NOPOS;
			if (due && sb->seg.opts.policy == SHMBUS_BLOCK)
				shmbus_ring_wake_publishers(&sb->seg);
		}
		return;
	}
	if (sb->held != SHMBUS_NOPOS) {
		int due = wake_due(&sb->seg, sb->held, sb->pos);
		sb->held = SHMBUS_NOPOS;
		/* Release: our reads of the record happen before its reuse. */
		sb_st_release(&sb->slot->pos, sb->pos);
		if (due && sb->seg.opts.policy == SHMBUS_BLOCK)
			shmbus_ring_wake_publishers(&sb->seg);
	}
}

/* Before sleeping or giving up: hold nothing beyond what we wait for. */
static void publish_wait_pos(struct shmbus_sub *sb)
{
	if (sb->durable || sb->observer)
		return;
	if (sb->grp) {
		if (sb_ld_relaxed(&sb->slot->pos) != SHMBUS_NOPOS)
			sb_st_release(&sb->slot->pos, SHMBUS_NOPOS);
	} else if (sb_ld_relaxed(&sb->slot->pos) != sb->pos) {
		sb_st_release(&sb->slot->pos, sb->pos);
	}
	/* And the wakes that releases put off (wake_due()): waiting publishers get all we
	 * released now (one load when none waits). */
	if (sb->seg.opts.policy == SHMBUS_BLOCK)
		shmbus_ring_wake_publishers(&sb->seg);
}

static inline int read_one(struct shmbus_sub *sb, shmbus_msg_t *msg, uint64_t *waitpos)
{
	return takes_from_cursor(sb) ? read_group(sb, msg, waitpos) :
				       read_fanout(sb, msg, waitpos);
}

/*
 * The common case of a fan-out read in block mode, in one piece: the record at our
 * position is committed, of this lap, a message (not padding) of a sane size, and read
 * in place. Anything else: 0, and read_fanout() decides. Same checks as read_fanout.
 */
static inline int recv_fast(struct shmbus_sub *sb, shmbus_msg_t *msg)
{
	struct shmbus_seg *s = &sb->seg;
	uint64_t p = sb->pos;
	if (sb->grp || sb->copy_all || p < sb->safe_from || (p & (SHMBUS_REC_ALIGN - 1)))
		return 0;
	const struct shmbus_rec *r = ring_rec(s, p);
	if (sb_ld_acquire(&r->commit) != ring_stamp(s, p))
		return 0;
	struct view v = { r->len, r->type, r->seq, r->ts };
	uint64_t stride = ring_stride(v.len);
	if ((v.len & SHMBUS_REC_PAD) || v.len > s->opts.max_message ||
	    (p & s->mask) + stride > s->cap)
		return 0;
	fanout_take(sb, msg, p, stride, &v, r + 1);
	return 1;
}

static __attribute__((noinline)) int recv_wait(struct shmbus_sub *sb, shmbus_msg_t *msg,
					       int timeout_ms);

SHMBUS_API int shmbus_recv(shmbus_sub_t *sb, shmbus_msg_t *msg, int timeout_ms)
{
	release_held(sb);
	if (recv_fast(sb, msg))
		return 0;
	return recv_wait(sb, msg, timeout_ms);
}

/* Everything but the fast path: other kinds of reader and record, spinning, sleeping. */
static __attribute__((noinline)) int recv_wait(struct shmbus_sub *sb, shmbus_msg_t *msg,
					       int timeout_ms)
{
	struct shmbus_topic_hdr *h = sb->seg.hdr;
	uint64_t start = 0, deadline = UINT64_MAX, next_repair = 0, waitpos = 0;
	for (unsigned spins = 0;; spins++) {
		/* Every 64th pass tells empty from stuck and lapped (the first, too, for a
		 * poll): reading the tail costs the next publisher a cache miss. */
		sb->cheap = (spins & 63) != 0 || (spins == 0 && timeout_ms != 0);
		int rc = read_one(sb, msg, &waitpos);
		if (rc == R_GOT)
			return 0;
		if (rc < 0)
			return rc;
		if (sb->cheap && rc == R_EMPTY) {
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
		}
		if (rc == R_STUCK && now >= next_repair) {
			/* A claim below the tail is not committed: if its publisher died,
			 * cover it with padding (bounded: see docs/algorithm.md). */
			if (shmbus_ring_repair(&sb->seg, waitpos))
				continue;
			next_repair = now + REPAIR_POLL_NS;
		}
		if (now >= deadline) {
			publish_wait_pos(sb);
			return -EAGAIN;
		}
		if (now - start < sb->spin_ns) {
			shmbus_pause();
			continue;
		}
		publish_wait_pos(sb);
		sb->cheap = 0;
		/* Announce the sleep, then re-check (seq_cst increment before the re-check's
		 * loads pairs with the publisher's fence between commit and reading sleepers). */
		__atomic_fetch_add(&h->sleepers, 1, __ATOMIC_SEQ_CST);
		/* Publishers that skip their fence rely on this barrier on their CPUs;
		 * without it, sleep at most 1 ms at a time. */
		int barrier = shmbus_membarrier_global();
		uint32_t w = sb_ld_acquire(&h->wake);
		rc = read_one(sb, msg, &waitpos);
		if (rc == R_GOT || rc < 0) {
			__atomic_fetch_sub(&h->sleepers, 1, __ATOMIC_SEQ_CST);
			return rc < 0 ? rc : 0;
		}
		int64_t nap = deadline == UINT64_MAX ? -1 : (int64_t)(deadline - now);
		if ((rc == R_STUCK || !barrier) && (nap < 0 || nap > (int64_t)REPAIR_POLL_NS))
			nap = (int64_t)REPAIR_POLL_NS;
		int wr = shmbus_futex_wait(&h->wake, w, nap);
		__atomic_fetch_sub(&h->sleepers, 1, __ATOMIC_SEQ_CST);
		if (wr == -EINTR)
			return -EINTR;
	}
}

SHMBUS_API int shmbus_release(shmbus_sub_t *sb, shmbus_msg_t *msg)
{
	if (!msg || sb->consumed == 0 || (sb->held != SHMBUS_NOPOS && msg->_pos != sb->held))
		return -EINVAL;
	release_held(sb);
	return 0;
}

SHMBUS_API int shmbus_sub_set_spin(shmbus_sub_t *sb, unsigned spin_us)
{
	sb->spin_ns = (uint64_t)spin_us * 1000ull;
	return 0;
}

/* ---- opening ------------------------------------------------------------------------ */

static int take_reader_slot(struct shmbus_sub *sb)
{
	struct shmbus_seg *s = &sb->seg;
	pid_t pid;
	uint64_t st;
	int rc = shmbus_proc_self(&pid, &st);
	if (rc < 0)
		return shmbus_err(rc, "cannot read /proc/self/stat");
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < s->opts.max_readers; i++) {
			struct shmbus_reader_slot *r = &s->readers[i];
			uint64_t o = 0;
			if (sb_ld_relaxed(&r->owner) != 0 ||
			    !sb_cas_u64(&r->owner, &o, SHMBUS_OWNER(SHMBUS_SLOT_ACTIVE, pid)))
				continue;
			sb_st_relaxed(&r->starttime, st);
			sb_st_relaxed(&r->consumed, 0);
			sb_st_relaxed(&r->lost, 0);
			sb_st_relaxed(&r->flags, 0);
			sb_st_relaxed(&r->group, 0);
			sb_st_seqcst(&r->pos, SHMBUS_NOPOS);
			/* Seq_cst: publishers scan up to the mark before our position counts. */
			shmbus_ring_hwm_raise(&s->hdr->readers_hwm, i + 1);
			sb->slot = r;
			sb->slot_idx = i;
			return 0;
		}
		if (pass == 0 && shmbus_ring_reclaim_readers(s, SHMBUS_NOPOS) == 0)
			break;
	}
	return shmbus_err(-EUSERS, "topic '%s': all %u reader slots are in use", s->name,
			  s->opts.max_readers);
}

static void free_reader_slot(struct shmbus_sub *sb)
{
	struct shmbus_reader_slot *r = sb->slot;
	/* Seq_cst: publishers stop counting our position before the slot is free. */
	sb_st_seqcst(&r->pos, SHMBUS_NOPOS);
	sb_st_relaxed(&r->group, 0);
	sb_st_relaxed(&r->starttime, 0);
	sb_st_release(&r->owner, 0);
	if (sb->seg.opts.policy == SHMBUS_BLOCK)
		shmbus_ring_wake_publishers(&sb->seg);
}

/* The group-creation lock (a pid; a dead holder's lock is taken over). */
static int group_lock(struct shmbus_seg *s)
{
	uint32_t *l = &s->hdr->group_lock;
	/* A thread id, not the pid: threads of one process must exclude each other too. */
	uint32_t me = (uint32_t)gettid();
	uint64_t t0 = shmbus_now_ns();
	for (;;) {
		uint32_t v = 0;
		if (sb_cas_u32(l, &v, me))
			return 0;
		if (!shmbus_proc_alive((pid_t)v, 0) && sb_cas_u32(l, &v, me))
			return 0;
		if (shmbus_now_ns() - t0 > 2000000000ull)
			return shmbus_err(-EBUSY, "topic '%s': group table locked by pid %u for "
					  "2 s", s->name, v);
		usleep(50);
	}
}

static int find_group(struct shmbus_seg *s, const char *name)
{
	uint32_t n = sb_ld_acquire(&s->hdr->groups_hwm);
	if (n > s->opts.max_groups)
		n = s->opts.max_groups;
	for (uint32_t g = 0; g < n; g++)
		if (sb_ld_acquire(&s->groups[g].state) == SHMBUS_GROUP_ACTIVE &&
		    strncmp(s->groups[g].name, name, sizeof(s->groups[g].name)) == 0)
			return (int)g;
	return -1;
}

static int open_group(struct shmbus_seg *s, const char *name, int earliest)
{
	int g = find_group(s, name);
	if (g >= 0)
		return g;
	int rc = group_lock(s);
	if (rc < 0)
		return rc;
	g = find_group(s, name);
	if (g >= 0)
		goto out;
	rc = shmbus_err(-EUSERS, "topic '%s': all %u group slots are in use", s->name,
			s->opts.max_groups);
	for (uint32_t i = 0; i < s->opts.max_groups; i++) {
		struct shmbus_group_slot *gs = &s->groups[i];
		if (sb_ld_acquire(&gs->state) != SHMBUS_GROUP_FREE)
			continue;
		sb_st_relaxed(&gs->state, SHMBUS_GROUP_INIT);
		memset(gs->name, 0, sizeof(gs->name));
		snprintf(gs->name, sizeof(gs->name), "%s", name);
		uint64_t t[2];
		sb_ld_pair(s->hdr->tail, t);
		uint64_t c[2] = { t[0], t[1] };
		if (earliest) {
			c[0] = t[0] >= s->cap ? lap_resume(s, t[0]) : 0;
			c[1] = c[0] == 0 ? 0 : SHMBUS_NOSEQ;
		}
		uint64_t cur[2];
		sb_ld_pair(gs->cursor, cur);
		while (!sb_cas_pair(gs->cursor, cur, c))
			;
		sb_st_relaxed(&gs->lost, 0);
		sb_st_relaxed(&gs->abandoned, 0);
		sb_st_relaxed(&gs->lease_ns, 0);
		shmbus_ring_hwm_raise(&s->hdr->groups_hwm, i + 1);
		/* Seq_cst: the cursor and name are set before anyone sees the group. */
		sb_st_seqcst(&gs->state, SHMBUS_GROUP_ACTIVE);
		g = (int)i;
		break;
	}
out:
	sb_st_release(&s->hdr->group_lock, 0);
	return g >= 0 ? g : rc;
}

enum sub_kind { SUB_PLAIN, SUB_DURABLE, SUB_OBSERVER };

/* The other live members of group g besides our own slot; dead ones are freed. */
static int other_members(struct shmbus_sub *sb, uint32_t g, int32_t *pid)
{
	struct shmbus_seg *s = &sb->seg;
	int n = 0;
	for (uint32_t i = 0; i < s->opts.max_readers; i++) {
		struct shmbus_reader_slot *r = &s->readers[i];
		uint64_t o = sb_ld_acquire(&r->owner);
		if (i == sb->slot_idx || SHMBUS_OWNER_STATE(o) != SHMBUS_SLOT_ACTIVE ||
		    sb_ld_relaxed(&r->group) != g + 1)
			continue;
		if (!shmbus_proc_alive(SHMBUS_OWNER_PID(o), sb_ld_relaxed(&r->starttime))) {
			shmbus_ring_reclaim_reader(s, i, o);
			continue;
		}
		*pid = SHMBUS_OWNER_PID(o);
		n++;
	}
	return n;
}

/* Start a durable reader at its group's cursor (a damaged one is reset to the tail). */
static void durable_load(struct shmbus_sub *sb)
{
	struct shmbus_seg *s = &sb->seg;
	uint64_t c[2], t = sb_ld_acquire(&s->hdr->tail[0]);
	sb_ld_pair(sb->grp->cursor, c);
	if ((c[0] & (SHMBUS_REC_ALIGN - 1)) || c[0] > t) {
		uint64_t want[2] = { t, SHMBUS_NOSEQ };
		if (sb_cas_pair(sb->grp->cursor, c, want)) {
			c[0] = want[0];
			c[1] = want[1];
		}
	}
	sb->pos = c[0];
	sb->next_seq = c[1];
	sb->held = SHMBUS_NOPOS;
}

static int sub_open(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic, const char *group,
		    int flags, enum sub_kind kind)
{
	*out = NULL;
	if (group) {
		int rc = shmbus_token_check("group name", group, SHMBUS_GROUP_NAME_MAX);
		if (rc < 0)
			return rc;
	}
	if (flags & ~SHMBUS_SUB_EARLIEST)
		return shmbus_err(-EINVAL, "unknown subscriber flags 0x%x", flags);
	struct shmbus_sub *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return shmbus_err(-ENOMEM, "out of memory");
	int rc = shmbus_topic_open_seg(bus, topic, &sb->seg);
	if (rc < 0) {
		free(sb);
		return rc;
	}
	struct shmbus_seg *s = &sb->seg;
	sb->buf = malloc(s->opts.max_message ? s->opts.max_message : 1);
	if (!sb->buf) {
		rc = shmbus_err(-ENOMEM, "out of memory for a %u-byte copy buffer",
				s->opts.max_message);
		goto fail;
	}
	sb->copy_all = s->opts.policy == SHMBUS_OVERWRITE;
	sb->spin_ns = SUB_SPIN_NS;
	sb->held = SHMBUS_NOPOS;
	sb->next_seq = SHMBUS_NOSEQ;
	rc = take_reader_slot(sb);
	if (rc < 0)
		goto fail;
	int earliest = flags & SHMBUS_SUB_EARLIEST;
	uint64_t t[2];
	if (group) {
		int g = open_group(s, group, earliest);
		if (g < 0) {
			rc = g;
			goto fail_slot;
		}
		sb->grp = &s->groups[g];
		/* Seq_cst: from here publishers honour the group's cursor; anything below
		 * the tail we read next was maybe not protected, so it is read with care. */
		sb_st_seqcst(&sb->slot->group, (uint32_t)g + 1);
		sb->safe_from = sb_ld_seqcst(&s->hdr->tail[0]);
		if (kind == SUB_DURABLE) {
			int32_t other = 0;
			if (other_members(sb, (uint32_t)g, &other)) {
				rc = shmbus_err(-EBUSY,
						"topic '%s': group '%s' has another "
						"member (pid %d): a durable reader is its "
						"group's only member",
						s->name, group, other);
				goto fail_slot;
			}
			sb->durable = 1;
			durable_load(sb);
		}
	} else {
		sb_ld_pair(s->hdr->tail, t);
		uint64_t from = t[0];
		if (earliest)
			from = t[0] >= s->cap ? lap_resume(s, t[0]) : 0;
		/* Seq_cst store, then re-read the tail: a publisher that did not see our
		 * position read a tail <= the one we read now, so it cannot claim beyond
		 * (that tail + capacity); all from the re-read tail on is ours to keep.
		 * An observer keeps nothing: its slot says SHMBUS_NOPOS and it copies and
		 * validates every record, as in overwrite mode. */
		if (kind == SUB_OBSERVER) {
			sb->observer = 1;
			sb->copy_all = 1;
		} else {
			sb_st_seqcst(&sb->slot->pos, from);
		}
		uint64_t t2[2];
		sb_ld_pair(s->hdr->tail, t2);
		if (earliest) {
			sb->pos = from;
			sb->next_seq = from == 0 ? 0 : SHMBUS_NOSEQ;
		} else {
			sb->pos = t2[0];
			sb->next_seq = t2[1];
		}
		sb->safe_from = kind == SUB_OBSERVER ? UINT64_MAX : t2[0];
	}
	*out = sb;
	return 0;
fail_slot:
	free_reader_slot(sb);
fail:
	free(sb->buf);
	shmbus_seg_close(s);
	free(sb);
	return rc;
}

SHMBUS_API void shmbus_sub_close(shmbus_sub_t *sb)
{
	if (!sb)
		return;
	release_held(sb);
	free_reader_slot(sb);
	free(sb->buf);
	shmbus_seg_close(&sb->seg);
	free(sb);
}

SHMBUS_API int shmbus_sub_open(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic,
			       const char *group, int flags)
{
	return sub_open(out, bus, topic, group, flags, SUB_PLAIN);
}

/* ---- durable readers and observers (internal: bus/internal.h) ------------------------ */

int shmbus_sub_open_durable(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic,
			    const char *group, int flags)
{
	if (!group) {
		*out = NULL;
		return shmbus_err(-EINVAL, "a durable reader needs a group name");
	}
	return sub_open(out, bus, topic, group, flags, SUB_DURABLE);
}

int shmbus_sub_open_observer(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic, int flags)
{
	return sub_open(out, bus, topic, NULL, flags, SUB_OBSERVER);
}

int shmbus_sub_commit(shmbus_sub_t *sb, uint64_t pos, uint64_t seq)
{
	if (!sb->durable || (pos & (SHMBUS_REC_ALIGN - 1)) || pos > sb->pos)
		return -EINVAL;
	struct shmbus_group_slot *g = sb->grp;
	uint64_t cur[2] = { sb_ld_acquire(&g->cursor[0]), sb_ld_acquire(&g->cursor[1]) };
	uint64_t want[2] = { pos, seq };
	/* Only forward: a stale or repeated commit is a no-op. The CAS fails, and is
	 * retried with what it found, if the two loads above were of different moves. */
	while (cur[0] < pos) {
		if (sb_cas_pair(g->cursor, cur, want)) {
			if (sb->seg.opts.policy == SHMBUS_BLOCK)
				shmbus_ring_wake_publishers(&sb->seg);
			return 1;
		}
	}
	return 0;
}

void shmbus_sub_lease(shmbus_sub_t *sb, uint64_t ms)
{
	if (!sb->durable)
		return;
	uint64_t until = ms ? shmbus_now_ns() + ms * 1000000ull : 0;
	/* Relaxed: a publisher that misses a renewal sees the previous, still valid, one;
	 * one that sees the lease late waits for the cursor, as it would for a member. */
	sb_st_relaxed(&sb->grp->lease_ns, until);
	if (!ms && sb->seg.opts.policy == SHMBUS_BLOCK)
		shmbus_ring_wake_publishers(&sb->seg);
}

void shmbus_sub_rewind(shmbus_sub_t *sb)
{
	if (sb->durable)
		durable_load(sb);
}

/* Where this reader's next message is. */
static uint64_t next_pos(struct shmbus_sub *sb)
{
	return takes_from_cursor(sb) ? sb_ld_acquire(&sb->grp->cursor[0]) : sb->pos;
}

int shmbus_sub_ready(shmbus_sub_t *sb)
{
	struct shmbus_seg *s = &sb->seg;
	uint64_t p = next_pos(sb);
	if (p & (SHMBUS_REC_ALIGN - 1))
		return 1; /* damage: recv says so */
	/* Acquire: pairs with the publisher's release of the commit word. */
	if (sb_ld_acquire(&ring_rec(s, p)->commit) == ring_stamp(s, p))
		return 1;
	uint64_t t = sb_ld_acquire(&s->hdr->tail[0]);
	return t > p && t - p > s->cap; /* lapped: recv jumps ahead */
}

int shmbus_sub_stuck(shmbus_sub_t *sb)
{
	struct shmbus_seg *s = &sb->seg;
	return sb_ld_acquire(&s->hdr->tail[0]) > next_pos(sb) && !shmbus_sub_ready(sb);
}

uint64_t shmbus_msg_end(const shmbus_msg_t *m)
{
	return m->_pos + ring_stride(m->len);
}
