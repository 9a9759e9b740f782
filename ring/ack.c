/* SPDX-License-Identifier: MIT */
/* Acknowledging group members: pending entries, redelivery, dead letters (ring/ack.h). */
#include "ring/ack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring/atomic.h"
#include "ring/clock.h"
#include "ring/reader.h"
#include "ring/writer.h"
#include "shm/err.h"
#include "shm/proc.h"

#define ACK_WAIT_DEFAULT_MS 30000u
#define MAX_DELIVER_DEFAULT 5u
#define SCAN_NS 10000000ull	 /* members look for timed-out entries every 10 ms */
#define GONE_SCAN_NS 50000000ull /* ... and for entries of holders gone every 50 ms */

/* ---- options ----------------------------------------------------------------------------- */

SHMBUS_API void shmbus_group_opts_init(shmbus_group_opts_t *o)
{
	memset(o, 0, sizeof(*o));
	o->ack_wait_ms = ACK_WAIT_DEFAULT_MS;
	o->max_deliver = MAX_DELIVER_DEFAULT;
}

void shmbus_group_opts_defaults(shmbus_group_opts_t *o)
{
	shmbus_group_opts_init(o);
}

int shmbus_group_opts_check(const shmbus_group_opts_t *o, const struct shmbus_seg *s)
{
	for (size_t i = 0; i < sizeof(o->reserved) / sizeof(o->reserved[0]); i++)
		if (o->reserved[i])
			return shmbus_err(-EINVAL, "group options: reserved[%zu] is not zero", i);
	if (o->max_pending > s->opts.max_pending)
		return shmbus_err(-EINVAL,
				  "group options: max_pending %u is more than topic "
				  "'%s' has entries for (its max_pending, %u)",
				  o->max_pending, s->name, s->opts.max_pending);
	if (o->max_deliver < 1 || o->max_deliver > 0xffff)
		return shmbus_err(-EINVAL, "group options: max_deliver %u is not within 1..65535",
				  o->max_deliver);
	if (o->ack_wait_ms < 1)
		return shmbus_err(-EINVAL, "group options: ack_wait_ms must be at least 1");
	if (o->dead_letter && strlen(o->dead_letter) > SHMBUS_TOPIC_NAME_MAX)
		return shmbus_err(-EINVAL, "group options: dead-letter topic name longer than %d",
				  SHMBUS_TOPIC_NAME_MAX);
	return 0; /* the dead-letter topic's name is checked by bus/sub.c */
}

void shmbus_group_opts_store(struct shmbus_group_slot *gs, const shmbus_group_opts_t *o,
			     const char *topic)
{
	/* Written before the group goes active (release there). */
	uint32_t mp = o->max_pending ? o->max_pending : UINT32_MAX;
	gs->max_pending = mp;
	gs->max_pending_member = o->max_pending_member ? o->max_pending_member : mp;
	gs->ack_wait_ms = o->ack_wait_ms;
	gs->max_deliver = o->max_deliver;
	gs->npending = 0;
	gs->ack_used = 0;
	gs->nready = 0;
	gs->redelivered = 0;
	gs->dead_lettered = 0;
	memset(gs->dead_letter, 0, sizeof(gs->dead_letter));
	if (!o->dead_letter)
		snprintf(gs->dead_letter, sizeof(gs->dead_letter), "%.122s.dead", topic);
	else
		snprintf(gs->dead_letter, sizeof(gs->dead_letter), "%s", o->dead_letter);
}

/* ---- shared helpers ---------------------------------------------------------------------- */

static uint32_t group_limit(const struct shmbus_seg *s, const struct shmbus_group_slot *g)
{
	uint32_t m = sb_ld_relaxed(&g->max_pending);
	return m > s->opts.max_pending ? s->opts.max_pending : m;
}

/* Is the group's pending count kept? Only for a limit below the table's size: otherwise
 * the table is the limit (no free entry: wait), and the members spare a contended counter
 * two writes a message. */
static int counted(const struct shmbus_seg *s, const struct shmbus_group_slot *g)
{
	return sb_ld_relaxed(&g->max_pending) < s->opts.max_pending;
}

/* Is a member's pending count (its slot's) kept? Only for a member limit below the table's
 * size, for the same reason. */
static int member_counted(const struct shmbus_seg *s, const struct shmbus_group_slot *g)
{
	return sb_ld_relaxed(&g->max_pending_member) < s->opts.max_pending;
}

/* A member's count up or down by one, if it is kept. */
static void member_count(struct shmbus_ring_reader *rd, int d)
{
	if (member_counted(&rd->seg, rd->grp))
		__atomic_fetch_add(&rd->slot->pending, (uint64_t)(int64_t)d, __ATOMIC_RELAXED);
}

/* An entry left its pending state: the group's count. */
static void count_free(struct shmbus_seg *s, struct shmbus_group_slot *g)
{
	if (counted(s, g))
		__atomic_fetch_sub(&g->npending, 1, __ATOMIC_RELAXED);
}

/* The holder's slot count down by one, if the slot is still the holder's. */
static void holder_down(struct shmbus_seg *s, uint32_t slot, uint64_t owner)
{
	if (slot >= s->opts.max_readers)
		return;
	struct shmbus_reader_slot *r = &s->readers[slot];
	if (sb_ld_relaxed(&r->owner) == owner && sb_ld_relaxed(&r->pending))
		__atomic_fetch_sub(&r->pending, 1, __ATOMIC_RELAXED);
}

/* Free entry e (ctl c, ours to free): a new generation, so old acks of it fail. */
static int entry_free(struct shmbus_pend *e, uint64_t c)
{
	return sb_cas_u64(&e->ctl, &c,
			  shmbus_pend_ctl(SHMBUS_PEND_FREE, 0, 0, 0, shmbus_pend_gen(c) + 1));
}

/*
 * Hand entry e (control word *c) back: ready, as want says. nready goes up first (seq_cst)
 * and back down if the CAS fails: whoever sees the entry ready (its holder, dropping it
 * from its floor) comes after the count, so a publisher that misses the floor sees the
 * count (ring/writer.c). 1 if this call did it.
 */
static int to_ready(struct shmbus_group_slot *gs, struct shmbus_pend *e, uint64_t *c, uint64_t want)
{
	__atomic_fetch_add(&gs->nready, 1, __ATOMIC_SEQ_CST);
	if (sb_cas_u64(&e->ctl, c, want))
		return 1;
	__atomic_fetch_sub(&gs->nready, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* Is reader slot sl held by pid, or being reclaimed (from a dead owner)? */
static int slot_of_pid(const struct shmbus_seg *s, uint32_t sl, int32_t pid)
{
	if (sl >= s->opts.max_readers)
		return 0;
	uint64_t so = sb_ld_acquire(&s->readers[sl].owner);
	return SHMBUS_OWNER_STATE(so) == SHMBUS_SLOT_RECLAIM ||
	       (SHMBUS_OWNER_STATE(so) == SHMBUS_SLOT_ACTIVE && SHMBUS_OWNER_PID(so) == pid);
}

/* Is the holder named by e (and its slot) still there? A small cache of verdicts for one
 * scan: /proc is read once per holder. */
struct alive_cache {
	int32_t pid[16];
	uint8_t alive[16];
	int n;
};

static int holder_alive(struct shmbus_seg *s, const struct shmbus_pend *e, uint64_t c,
			struct alive_cache *ac)
{
	uint32_t slot = shmbus_pend_slot(c);
	if (slot >= s->opts.max_readers)
		return 0;
	uint64_t so = sb_ld_acquire(&s->readers[slot].owner);
	uint64_t owner, st;
	if (shmbus_pend_state(c) == SHMBUS_PEND_HELD) {
		/* Held: the owner it names was written before it was marked held. A holder
		 * that closed its slot (or whose slot was reclaimed) is gone. */
		owner = sb_ld_relaxed(&e->owner);
		st = sb_ld_relaxed(&e->starttime);
		if (so != owner)
			return 0;
	} else {
		/* Reserved or being taken: its holder names itself in the entry just after
		 * the CAS, so the slot's owner is what counts (a slot given to another process
		 * since leaves the entry to the daemon, which reaps by pid). */
		owner = so;
		st = sb_ld_relaxed(&s->readers[slot].starttime);
		if (SHMBUS_OWNER_STATE(so) != SHMBUS_SLOT_ACTIVE)
			return 0;
	}
	if (!ac)
		return 1; /* its slot is there: taken as alive until /proc is asked */
	int32_t pid = SHMBUS_OWNER_PID(owner);
	for (int i = 0; i < ac->n; i++)
		if (ac->pid[i] == pid)
			return ac->alive[i];
	int a = shmbus_proc_alive(pid, st);
	if (ac->n < 16) {
		ac->pid[ac->n] = pid;
		ac->alive[ac->n++] = (uint8_t)a;
	}
	return a;
}

void shmbus_ack_confirm(struct shmbus_seg *s, uint64_t w)
{
	uint32_t tag = shmbus_ctag(w);
	if (!tag || tag > s->opts.max_readers)
		return;
	uint64_t *ts = &s->readers[tag - 1].taken_seq, v = shmbus_cseq(w);
	uint64_t cur = sb_ld_acquire(ts);
	/* Only forward (mod 2^48): a confirmer that read the word long ago must not undo a
	 * later take's confirmation. 0 is a slot's first value. */
	while (cur != v && (cur == 0 || ((v - cur) & SHMBUS_CSEQ_MASK) < SHMBUS_CSEQ_MASK / 2))
		if (sb_cas_u64(ts, &cur, v))
			break;
}

int shmbus_ack_scan(struct shmbus_seg *s, uint32_t g, int32_t holder, int how)
{
	int timeouts = how & SHMBUS_SCAN_TIMEOUTS;
	struct shmbus_group_slot *gs = &s->groups[g];
	if (!sb_ld_acquire(&gs->ack_used))
		return 0;
	struct shmbus_pend *pe = shmbus_pend_of(s, g);
	uint64_t now = shmbus_now_ns();
	struct alive_cache ac = { .n = 0 };
	int changed = 0;
	for (uint32_t i = 0; i < s->opts.max_pending; i++) {
		struct shmbus_pend *e = &pe[i];
		uint64_t c = sb_ld_acquire(&e->ctl);
		uint32_t st = shmbus_pend_state(c);
		if (st != SHMBUS_PEND_HELD && st != SHMBUS_PEND_RESERVED &&
		    st != SHMBUS_PEND_TAKING && st != SHMBUS_PEND_RETURNING)
			continue;
		uint64_t owner = sb_ld_relaxed(&e->owner);
		int gone;
		if (holder && (st == SHMBUS_PEND_HELD || st == SHMBUS_PEND_RETURNING))
			gone = SHMBUS_OWNER_PID(owner) == holder;
		else if (holder)
			/* Reserved or being taken: its owner word may still be an earlier
			 * holder's (it is written just after the CAS), so its slot tells: held by
			 * that pid, or being reclaimed from a dead one. */
			gone = slot_of_pid(s, shmbus_pend_slot(c), holder);
		else
			gone = !holder_alive(s, e, c, (how & SHMBUS_SCAN_GONE) ? &ac : NULL);
		if (st == SHMBUS_PEND_RETURNING) {
			/* Its holder died nacking it (counted ready already): ready, due now. */
			if (gone && sb_cas_u64(&e->ctl, &c,
					       shmbus_pend_ctl(SHMBUS_PEND_READY, SHMBUS_DEAD_CRASH,
							       shmbus_pend_deliveries(c), 0,
							       shmbus_pend_gen(c))))
				changed++;
			continue;
		}
		if (st == SHMBUS_PEND_TAKING) {
			/* Its taker died between taking it and naming itself: ready again. */
			if (gone &&
			    to_ready(gs, e, &c,
				     shmbus_pend_ctl(SHMBUS_PEND_READY, shmbus_pend_reason(c),
						     shmbus_pend_deliveries(c), 0,
						     shmbus_pend_gen(c))))
				changed++;
			continue;
		}
		if (st == SHMBUS_PEND_RESERVED) {
			if (!gone)
				continue;
			/* Did its holder take the message it names (the cursor CAS)? A take is
			 * confirmed in the taker's slot (by it, or by whoever moved the cursor
			 * next) or the cursor still carries its tag: confirmed here then. So the
			 * slot says so exactly when the holder's CAS took it. */
			uint64_t pos = sb_ld_acquire(&e->pos), seq = sb_ld_relaxed(&e->seq);
			uint32_t sl = shmbus_pend_slot(c);
			uint64_t w = sb_ld_acquire(&gs->cursor[1]);
			if (shmbus_ctag(w) == sl + 1)
				shmbus_ack_confirm(s, w);
			int took = shmbus_pend_reason(c) != SHMBUS_PEND_UNNAMED &&
				   pos != SHMBUS_NOPOS && sl < s->opts.max_readers &&
				   sb_ld_acquire(&s->readers[sl].taken_seq) == shmbus_cseq(seq + 1);
			if (took) {
				sb_st_relaxed(&e->due_ns, now);
				sb_st_relaxed(&e->first_ns, now);
				if (to_ready(gs, e, &c,
					     shmbus_pend_ctl(SHMBUS_PEND_READY, SHMBUS_DEAD_CRASH,
							     0, 0, shmbus_pend_gen(c)))) {
					holder_down(s, shmbus_pend_slot(c), owner);
					changed++;
				}
			} else if (entry_free(e, c)) {
				count_free(s, gs);
				holder_down(s, shmbus_pend_slot(c), owner);
				changed++;
			}
			continue;
		}
		uint32_t reason = 0;
		if (gone)
			reason = SHMBUS_DEAD_CRASH;
		else if (timeouts && sb_ld_relaxed(&e->due_ns) <= now)
			reason = SHMBUS_DEAD_TIMEOUT;
		if (!reason)
			continue;
		/* The CAS hands it over (the holder's ack after it fails: -ESTALE). Its due time
		 * is not written (the entry is not ours): a timed-out or crashed entry is due at
		 * once whatever it says (only a nack's delay counts). */
		if (to_ready(gs, e, &c,
			     shmbus_pend_ctl(SHMBUS_PEND_READY, reason, shmbus_pend_deliveries(c),
					     0, shmbus_pend_gen(c)))) {
			holder_down(s, shmbus_pend_slot(c), owner);
			changed++;
		}
	}
	/* Members asleep take what was handed back now (a fenced wake: nready was raised
	 * before the wake word is read). */
	if (changed)
		shmbus_ring_wake_readers(s);
	return changed;
}

uint32_t shmbus_ack_pending(const struct shmbus_seg *s, uint32_t g, uint64_t *oldest_ns)
{
	const struct shmbus_pend *pe = shmbus_pend_of(s, g);
	uint32_t n = 0;
	uint64_t oldest = 0;
	for (uint32_t i = 0; i < s->opts.max_pending; i++) {
		uint64_t c = sb_ld_acquire(&pe[i].ctl);
		uint32_t st = shmbus_pend_state(c);
		if (st != SHMBUS_PEND_HELD && st != SHMBUS_PEND_READY)
			continue;
		n++;
		uint64_t f = sb_ld_relaxed(&pe[i].first_ns);
		if (f && (!oldest || f < oldest))
			oldest = f;
	}
	if (oldest_ns)
		*oldest_ns = oldest;
	return n;
}

uint64_t shmbus_ack_min_pos(const struct shmbus_seg *s, uint32_t ngroups, uint64_t tail,
			    uint64_t min, const uint8_t *ghas)
{
	for (uint32_t g = 0; g < ngroups; g++) {
		/* Entries held by live members are under their floors; the others (ready,
		 * being taken) exist only while nready says so (read before the floors: bit
		 * 1 of ghas; and after: ring/writer.c). */
		if (!(ghas[g] & 2) && !sb_ld_seqcst(&s->groups[g].nready))
			continue;
		const struct shmbus_pend *pe = shmbus_pend_of(s, g);
		for (uint32_t i = 0; i < s->opts.max_pending; i++) {
			uint64_t c = sb_ld_seqcst(&pe[i].ctl);
			if (shmbus_pend_state(c) == SHMBUS_PEND_FREE)
				continue;
			uint64_t p = sb_ld_seqcst(&pe[i].pos);
			if (p != SHMBUS_NOPOS && p <= tail && tail - p <= s->cap && p < min)
				min = p;
		}
	}
	return min;
}

/* ---- a member ------------------------------------------------------------------------- */

/* ---- a member's own entries: the queue behind its floor ---- */

/* The queue is the receiving thread's and the acking one's (which may differ): a lock
 * that is almost never contended, one atomic exchange a side. */
static void q_lock(struct shmbus_ring_reader *rd)
{
	while (__atomic_exchange_n(&rd->qlock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&rd->qlock, __ATOMIC_RELAXED))
			__builtin_ia32_pause();
}

static void q_unlock(struct shmbus_ring_reader *rd)
{
	__atomic_store_n(&rd->qlock, 0, __ATOMIC_RELEASE);
}

static void floor_set(struct shmbus_ring_reader *rd)
{
	uint64_t f = SHMBUS_NOPOS;
	for (uint32_t k = 0; k < rd->qn; k++) {
		uint64_t p = rd->qp[(rd->qh + k) % rd->qcap];
		if (p < f)
			f = p;
	}
	/* Lowered (it protects more), seq_cst as a hold; raised, a release will do (a
	 * publisher that sees it late waits a little longer). */
	uint64_t old = sb_ld_relaxed(&rd->slot->floor);
	if (f < old)
		sb_st_seqcst(&rd->slot->floor, f);
	else if (f != old)
		sb_st_release(&rd->slot->floor, f);
}

static void q_free(struct shmbus_ring_reader *rd)
{
	free(rd->qi);
	free(rd->qg);
	free(rd->qp);
	rd->qi = rd->qg = NULL;
	rd->qp = NULL;
	rd->qn = 0;
}

static void q_push(struct shmbus_ring_reader *rd, uint32_t idx, uint32_t gen, uint64_t pos)
{
	if (rd->qn == rd->qcap)
		return; /* cannot be: a member holds at most the table */
	uint32_t t = (rd->qh + rd->qn++) % rd->qcap;
	rd->qi[t] = idx;
	rd->qg[t] = gen;
	rd->qp[t] = pos;
}

/* Drop entry idx (generation gen) from the queue; the floor follows. */
static void q_drop(struct shmbus_ring_reader *rd, uint32_t idx, uint32_t gen)
{
	for (uint32_t k = 0; k < rd->qn; k++) {
		uint32_t t = (rd->qh + k) % rd->qcap;
		if (rd->qi[t] != idx || rd->qg[t] != gen)
			continue;
		/* Move the head into the hole: order matters only for the floor's min. */
		uint32_t h = rd->qh;
		rd->qi[t] = rd->qi[h];
		rd->qg[t] = rd->qg[h];
		rd->qp[t] = rd->qp[h];
		rd->qh = (h + 1) % rd->qcap;
		rd->qn--;
		floor_set(rd);
		return;
	}
}

/* Drop what is not ours any more (handed back by a timeout, say). */
static void q_prune(struct shmbus_ring_reader *rd)
{
	for (uint32_t k = 0; k < rd->qn;) {
		uint32_t t = (rd->qh + k) % rd->qcap;
		uint64_t c = sb_ld_acquire(&rd->pend[rd->qi[t]].ctl);
		uint32_t st = shmbus_pend_state(c);
		if (st == SHMBUS_PEND_HELD && shmbus_pend_slot(c) == rd->slot_idx &&
		    shmbus_pend_gen(c) == rd->qg[t]) {
			k++;
			continue;
		}
		q_drop(rd, rd->qi[t], rd->qg[t]);
	}
}

int shmbus_ring_ack_join(struct shmbus_ring_reader *rd, uint32_t slot_idx)
{
	struct shmbus_seg *s = &rd->seg;
	rd->ack = 1;
	rd->slot_idx = slot_idx;
	rd->gidx = (uint32_t)(rd->grp - s->groups);
	rd->pend = shmbus_pend_of(s, rd->gidx);
	rd->res = -1;
	rd->hint = (slot_idx * 37u) % s->opts.max_pending;
	rd->rhint = 0;
	rd->qcap = s->opts.max_pending;
	rd->qh = rd->qn = 0;
	rd->qi = malloc(rd->qcap * sizeof(*rd->qi));
	rd->qg = malloc(rd->qcap * sizeof(*rd->qg));
	rd->qp = malloc(rd->qcap * sizeof(*rd->qp));
	if (!rd->qi || !rd->qg || !rd->qp) {
		q_free(rd);
		rd->ack = 0;
		return -ENOMEM;
	}
	sb_st_relaxed(&rd->slot->floor, SHMBUS_NOPOS);
	/* Seq_cst, before any entry is used: publishers look at the entries of groups so
	 * marked (shmbus_ack_min_pos()), and scans skip the others. */
	if (!sb_ld_relaxed(&rd->grp->ack_used))
		sb_st_seqcst(&rd->grp->ack_used, 1);
	return 0;
}

static uint64_t my_owner(const struct shmbus_ring_reader *rd)
{
	return sb_ld_relaxed(&rd->slot->owner);
}

int shmbus_ring_ack_reserve(struct shmbus_ring_reader *rd)
{
	if (rd->res >= 0)
		return 0;
	struct shmbus_seg *s = &rd->seg;
	struct shmbus_group_slot *g = rd->grp;
	uint32_t lim = group_limit(s, g);
	if (sb_ld_relaxed(&rd->slot->pending) >= sb_ld_relaxed(&g->max_pending_member))
		return -EAGAIN;
	/* Below the table's size the limit is counted first (a CAS that never passes it);
	 * then a free entry is found, if there is one. */
	int cnt = counted(s, g);
	if (cnt) {
		uint32_t n = sb_ld_relaxed(&g->npending);
		do {
			if (n >= lim)
				return -EAGAIN;
		} while (!__atomic_compare_exchange_n(&g->npending, &n, n + 1, 0, __ATOMIC_ACQ_REL,
						      __ATOMIC_RELAXED));
	}
	uint32_t np = s->opts.max_pending, hint = __atomic_load_n(&rd->hint, __ATOMIC_RELAXED);
	for (uint32_t k = 0;; k++) {
		if (k >= np) {
			/* None free: the table is full (or, counted, a free is landing). */
			if (cnt)
				__atomic_fetch_sub(&g->npending, 1, __ATOMIC_RELAXED);
			return -EAGAIN;
		}
		uint32_t i = (hint + k) % np;
		struct shmbus_pend *e = &rd->pend[i];
		uint64_t c = sb_ld_acquire(&e->ctl);
		if (shmbus_pend_state(c) != SHMBUS_PEND_FREE)
			continue;
		if (!sb_cas_u64(&e->ctl, &c,
				shmbus_pend_ctl(SHMBUS_PEND_RESERVED, SHMBUS_PEND_UNNAMED, 0,
						rd->slot_idx, shmbus_pend_gen(c))))
			continue;
		sb_st_relaxed(&e->pos, SHMBUS_NOPOS);
		sb_st_relaxed(&e->owner, my_owner(rd));
		sb_st_relaxed(&e->starttime, sb_ld_relaxed(&rd->slot->starttime));
		member_count(rd, 1);
		rd->res = i;
		__atomic_store_n(&rd->hint, (i + 1) % np, __ATOMIC_RELAXED);
		return 0;
	}
}

static uint64_t wait_ns(const struct shmbus_group_slot *g)
{
	return (uint64_t)sb_ld_relaxed(&g->ack_wait_ms) * 1000000ull;
}

void shmbus_ring_ack_taken(struct shmbus_ring_reader *rd, shmbus_msg_t *msg)
{
	struct shmbus_pend *e = &rd->pend[rd->res];
	uint64_t now = shmbus_now_ns();
	uint64_t c = sb_ld_relaxed(&e->ctl);
	sb_st_relaxed(&e->first_ns, now);
	sb_st_relaxed(&e->due_ns, now + wait_ns(rd->grp));
	/* Release: the times are there before anyone sees it held. */
	sb_st_release(&e->ctl,
		      shmbus_pend_ctl(SHMBUS_PEND_HELD, 0, 1, rd->slot_idx, shmbus_pend_gen(c)));
	msg->deliveries = 1;
	msg->_pend = (uint64_t)rd->res | (uint64_t)shmbus_pend_gen(c) << 32;
	uint64_t pos = sb_ld_relaxed(&e->pos);
	q_lock(rd);
	q_push(rd, (uint32_t)rd->res, shmbus_pend_gen(c), pos);
	/* Named under the floor already, unless an ack from another thread emptied the
	 * queue meanwhile (the hold still covers it: set the floor before it moves on). */
	if (sb_ld_relaxed(&rd->slot->floor) > pos)
		floor_set(rd);
	q_unlock(rd);
	rd->res = -1;
}

void shmbus_ring_ack_idle(struct shmbus_ring_reader *rd)
{
	if (rd->res >= 0 && sb_ld_relaxed(&rd->pend[rd->res].pos) != SHMBUS_NOPOS)
		sb_st_release(&rd->pend[rd->res].pos, SHMBUS_NOPOS);
	/* Holding nothing, the floor holds nothing (it named the last reservation). */
	q_lock(rd);
	if (!rd->qn && sb_ld_relaxed(&rd->slot->floor) != SHMBUS_NOPOS)
		sb_st_release(&rd->slot->floor, SHMBUS_NOPOS);
	q_unlock(rd);
}

/* Give up on entry e (ours, held, ctl c, deliveries d): the dead-letter topic, or counted
 * lost when it is gone or there is none. 1 done (freed); 0 not now (handed back). */
static int dead_letter(struct shmbus_ring_reader *rd, struct shmbus_pend *e, uint64_t c,
		       uint32_t deliveries, uint32_t reason, shmbus_msg_t *tmp)
{
	struct shmbus_seg *s = &rd->seg;
	struct shmbus_group_slot *g = rd->grp;
	uint64_t pos = sb_ld_relaxed(&e->pos), seq = sb_ld_relaxed(&e->seq);
	int there = shmbus_ring_reader_read_at(rd, pos, seq, tmp, 0);
	if (there && g->dead_letter[0] && rd->dead) {
		shmbus_dead_letter_t h;
		memset(&h, 0, sizeof(h));
		snprintf(h.topic, sizeof(h.topic), "%s", s->name);
		snprintf(h.group, sizeof(h.group), "%.*s", (int)sizeof(g->name), g->name);
		h.seq = seq;
		h.timestamp_ns = tmp->timestamp_ns;
		h.deliveries = deliveries;
		h.reason = reason ? reason : SHMBUS_DEAD_NACK;
		int rc = rd->dead(rd->dead_arg, &h, tmp->data, tmp->len, tmp->type);
		if (rc == -EMSGSIZE) {
			/* It can never fit the dead-letter topic (made smaller by someone else):
			 * lost, counted, not tried forever. */
			there = 0;
			sb_add_relaxed(&g->lost, 1);
		} else if (rc < 0) {
			/* Not now: hand it back, for a try in 100 ms (a delayed hand-back, as a
			 * nack's: ours until then, so the due time is ours to write). */
			__atomic_fetch_add(&g->nready, 1, __ATOMIC_SEQ_CST);
			sb_st_relaxed(&e->due_ns, shmbus_now_ns() + 100000000ull);
			sb_st_release(&e->ctl, shmbus_pend_ctl(SHMBUS_PEND_READY, SHMBUS_DEAD_NACK,
							       deliveries, 0, shmbus_pend_gen(c)));
			return 0;
		}
	} else if (!there) {
		sb_add_relaxed(&g->lost, 1);
	}
	if (entry_free(e, c))
		count_free(s, g);
	sb_add_relaxed(&g->dead_lettered, there ? 1 : 0);
	return 1;
}

int shmbus_ring_ack_redeliver(struct shmbus_ring_reader *rd, shmbus_msg_t *msg)
{
	struct shmbus_seg *s = &rd->seg;
	struct shmbus_group_slot *g = rd->grp;
	uint64_t now = 0;
	/* Now and then: entries whose ack_wait passed, and (less often) of holders gone. The
	 * clock is read every 64th call, and at every one that is not a tight spin's (so
	 * before each sleep). */
	if (!rd->cheap || (++rd->ack_calls & 63) == 0) {
		now = shmbus_now_ns();
		if (now >= rd->next_scan_ns) {
			int gone = now >= rd->next_gone_ns;
			if (gone)
				rd->next_gone_ns = now + GONE_SCAN_NS;
			rd->next_scan_ns = now + SCAN_NS;
			shmbus_ack_scan(s, rd->gidx, 0,
					SHMBUS_SCAN_TIMEOUTS | (gone ? SHMBUS_SCAN_GONE : 0));
			q_lock(rd);
			q_prune(rd); /* what the scan handed back (ours timed out) */
			q_unlock(rd);
		}
	}
	if (!sb_ld_acquire(&g->nready))
		return 0;
	if (!now)
		now = shmbus_now_ns();
	if (sb_ld_relaxed(&rd->slot->pending) >= sb_ld_relaxed(&g->max_pending_member))
		return 0;
	uint32_t np = s->opts.max_pending;
	uint32_t maxd = sb_ld_relaxed(&g->max_deliver);
	for (uint32_t k = 0; k < np; k++) {
		uint32_t i = (rd->rhint + k) % np;
		struct shmbus_pend *e = &rd->pend[i];
		uint64_t c = sb_ld_acquire(&e->ctl);
		/* Only a nack's delay is a due time; a timed-out or crashed entry is due now. */
		if (shmbus_pend_state(c) != SHMBUS_PEND_READY ||
		    (shmbus_pend_reason(c) == SHMBUS_DEAD_NACK && sb_ld_relaxed(&e->due_ns) > now))
			continue;
		uint32_t d = shmbus_pend_deliveries(c);
		uint32_t reason = shmbus_pend_reason(c);
		uint64_t held = shmbus_pend_ctl(SHMBUS_PEND_HELD, 0, d + 1, rd->slot_idx,
						shmbus_pend_gen(c));
		/* Take it (being taken: ours, not held yet), then name us, then mark it held
		 * (release): whoever sees it held sees its holder. */
		uint64_t want = c;
		if (!sb_cas_u64(&e->ctl, &want,
				shmbus_pend_ctl(SHMBUS_PEND_TAKING, reason, d, rd->slot_idx,
						shmbus_pend_gen(c))))
			continue;
		sb_st_relaxed(&e->owner, my_owner(rd));
		sb_st_relaxed(&e->starttime, sb_ld_relaxed(&rd->slot->starttime));
		sb_st_relaxed(&e->due_ns, now + wait_ns(g));
		sb_st_release(&e->ctl, held);
		/* Under our floor (seq_cst) before nready goes down: a publisher reads nready,
		 * the floors, then nready again (ring/writer.c). */
		q_lock(rd);
		q_push(rd, i, shmbus_pend_gen(c), sb_ld_relaxed(&e->pos));
		floor_set(rd);
		q_unlock(rd);
		__atomic_fetch_sub(&g->nready, 1, __ATOMIC_SEQ_CST);
		rd->rhint = (i + 1) % np;
		if (d >= maxd) {
			/* Delivered max_deliver times already: not again. */
			dead_letter(rd, e, held, d, reason, msg);
			continue;
		}
		member_count(rd, 1);
		if (!shmbus_ring_reader_read_at(rd, sb_ld_relaxed(&e->pos), sb_ld_relaxed(&e->seq),
						msg, 1)) {
			/* Overwritten since (overwrite mode) or damaged: lost for the group. */
			sb_add_relaxed(&g->lost, 1);
			if (entry_free(e, held))
				count_free(s, g);
			member_count(rd, -1);
			continue;
		}
		sb_add_relaxed(&g->redelivered, 1);
		msg->deliveries = d + 1;
		msg->_pend = (uint64_t)i | (uint64_t)shmbus_pend_gen(c) << 32;
		return 1;
	}
	return 0;
}

/* The entry msg names, if this member holds it: its ctl in *c. */
static struct shmbus_pend *mine(struct shmbus_ring_reader *rd, const shmbus_msg_t *msg, uint64_t *c)
{
	uint32_t i = (uint32_t)msg->_pend, gen = (uint32_t)(msg->_pend >> 32);
	if (!rd->ack || i >= rd->seg.opts.max_pending || msg->deliveries == 0)
		return NULL;
	struct shmbus_pend *e = &rd->pend[i];
	*c = sb_ld_acquire(&e->ctl);
	/* The delivery too: an earlier delivery of the same message to the same member (it
	 * came back to it) is stale. */
	if (shmbus_pend_state(*c) != SHMBUS_PEND_HELD || shmbus_pend_slot(*c) != rd->slot_idx ||
	    shmbus_pend_gen(*c) != (gen & 0xffffff) ||
	    shmbus_pend_deliveries(*c) != (msg->deliveries & 0xffff) ||
	    sb_ld_relaxed(&e->owner) != my_owner(rd))
		return NULL;
	return e;
}

int shmbus_ring_ack(struct shmbus_ring_reader *rd, const shmbus_msg_t *msg)
{
	uint64_t c;
	struct shmbus_pend *e = mine(rd, msg, &c);
	if (!e || !entry_free(e, c))
		return -ESTALE;
	/* Our next reservation looks here first: the entry's line is in our cache, where
	 * the next free one would be in the member's that used it last. */
	__atomic_store_n(&rd->hint, (uint32_t)msg->_pend, __ATOMIC_RELAXED);
	count_free(&rd->seg, rd->grp);
	member_count(rd, -1);
	/* Off the floor at once: its space is free for publishers. */
	q_lock(rd);
	q_drop(rd, (uint32_t)msg->_pend, shmbus_pend_gen(c));
	q_unlock(rd);
	return 0;
}

int shmbus_ring_nack(struct shmbus_ring_reader *rd, const shmbus_msg_t *msg, uint32_t delay_ms)
{
	uint64_t c;
	struct shmbus_pend *e = mine(rd, msg, &c);
	if (!e)
		return -ESTALE;
	/* Returning (ours, not takeable) first, then the delay, then ready: a due time is
	 * written only into an entry nobody else can have taken meanwhile (a timeout could
	 * have handed it to another member between our look and a store). nready first
	 * (seq_cst): whoever sees the entry ready, and then raises our floor, comes after it,
	 * so a publisher that misses the floor sees nready (writer.c). */
	uint32_t d = shmbus_pend_deliveries(c), gen = shmbus_pend_gen(c);
	__atomic_fetch_add(&rd->grp->nready, 1, __ATOMIC_SEQ_CST);
	if (!sb_cas_u64(&e->ctl, &c,
			shmbus_pend_ctl(SHMBUS_PEND_RETURNING, SHMBUS_DEAD_NACK, d, rd->slot_idx,
					gen))) {
		__atomic_fetch_sub(&rd->grp->nready, 1, __ATOMIC_SEQ_CST);
		return -ESTALE;
	}
	sb_st_relaxed(&e->due_ns, shmbus_now_ns() + (uint64_t)delay_ms * 1000000ull);
	sb_st_release(&e->ctl, shmbus_pend_ctl(SHMBUS_PEND_READY, SHMBUS_DEAD_NACK, d, 0, gen));
	member_count(rd, -1);
	q_lock(rd);
	q_drop(rd, (uint32_t)msg->_pend, shmbus_pend_gen(c));
	q_unlock(rd);
	if (!delay_ms)
		shmbus_ring_wake_readers(&rd->seg); /* another member may take it now */
	return 0;
}

void shmbus_ring_ack_leave(struct shmbus_ring_reader *rd)
{
	if (!rd->ack)
		return;
	struct shmbus_seg *s = &rd->seg;
	struct shmbus_group_slot *g = rd->grp;
	uint64_t now = shmbus_now_ns();
	for (uint32_t i = 0; i < s->opts.max_pending; i++) {
		struct shmbus_pend *e = &rd->pend[i];
		uint64_t c = sb_ld_acquire(&e->ctl);
		uint32_t st = shmbus_pend_state(c);
		if ((st != SHMBUS_PEND_HELD && st != SHMBUS_PEND_RESERVED) ||
		    shmbus_pend_slot(c) != rd->slot_idx || sb_ld_relaxed(&e->owner) != my_owner(rd))
			continue;
		if (st == SHMBUS_PEND_RESERVED) {
			if (entry_free(e, c))
				count_free(s, g);
			continue;
		}
		to_ready(g, e, &c,
			 shmbus_pend_ctl(SHMBUS_PEND_READY, SHMBUS_DEAD_CRASH,
					 shmbus_pend_deliveries(c), 0, shmbus_pend_gen(c)));
	}
	/* Messages due for the dead-letter topic (nacked a last time, by us or another) are
	 * published now rather than left for a member that may never come. */
	uint32_t maxd = sb_ld_relaxed(&g->max_deliver);
	for (uint32_t i = 0; i < s->opts.max_pending; i++) {
		struct shmbus_pend *e = &rd->pend[i];
		uint64_t c = sb_ld_acquire(&e->ctl);
		uint32_t d = shmbus_pend_deliveries(c);
		if (shmbus_pend_state(c) != SHMBUS_PEND_READY || d < maxd ||
		    (shmbus_pend_reason(c) == SHMBUS_DEAD_NACK && sb_ld_relaxed(&e->due_ns) > now))
			continue;
		uint64_t held =
			shmbus_pend_ctl(SHMBUS_PEND_HELD, 0, d, rd->slot_idx, shmbus_pend_gen(c));
		if (!sb_cas_u64(&e->ctl, &c, held))
			continue;
		__atomic_fetch_sub(&g->nready, 1, __ATOMIC_RELAXED);
		shmbus_msg_t tmp;
		dead_letter(rd, e, held, d, shmbus_pend_reason(c), &tmp);
	}
	sb_st_relaxed(&rd->slot->pending, 0);
	/* All handed back (nready counted first): the floor holds nothing any more. */
	sb_st_seqcst(&rd->slot->floor, SHMBUS_NOPOS);
	q_free(rd);
	rd->res = -1;
	rd->ack = 0;
	shmbus_ring_wake_readers(s);
}
