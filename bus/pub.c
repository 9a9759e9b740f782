/* SPDX-License-Identifier: MIT */
/*
 * Publishers: one slot each in the topic's publisher table (who it is, what it claims),
 * then claim → write → commit (release store of the commit word) → wake sleepers only if
 * any are asleep. Batches take one claim per chunk and commit the first record last, so a
 * reader sees a chunk all at once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/internal.h"
#include "ring/clock.h"
#include "ring/wake.h"
#include "shm/err.h"
#include "shm/proc.h"

#define PUB_SPIN_NS 20000ull

static int take_slot(struct shmbus_pub *p)
{
	struct shmbus_seg *s = &p->seg;
	pid_t pid;
	uint64_t st;
	int rc = shmbus_proc_self(&pid, &st);
	if (rc < 0)
		return shmbus_err(rc, "cannot read /proc/self/stat");
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < s->opts.max_publishers; i++) {
			struct shmbus_pub_slot *ps = &s->pubs[i];
			uint64_t o = 0;
			if (sb_ld_relaxed(&ps->owner) != 0 ||
			    !sb_cas_u64(&ps->owner, &o, SHMBUS_OWNER(SHMBUS_SLOT_ACTIVE, pid)))
				continue;
			sb_st_relaxed(&ps->starttime, st);
			sb_st_relaxed(&ps->claim_pos, SHMBUS_NOPOS);
			sb_st_relaxed(&ps->published, 0);
			sb_st_relaxed(&ps->bytes, 0);
			/* Seq_cst: repairers scan up to the mark before we can claim anything. */
			shmbus_ring_hwm_raise(&s->hdr->pubs_hwm, i + 1);
			p->rp.slot = ps;
			p->slot_idx = i;
			return 0;
		}
		if (pass == 0 && shmbus_ring_pub_gc(s, 0) == 0)
			break;
	}
	return shmbus_err(-EUSERS, "topic '%s': all %u publisher slots are in use",
			  s->name, s->opts.max_publishers);
}

SHMBUS_API int shmbus_pub_open(shmbus_pub_t **out, shmbus_bus_t *bus, const char *topic)
{
	*out = NULL;
	struct shmbus_pub *p = calloc(1, sizeof(*p));
	if (!p)
		return shmbus_err(-ENOMEM, "out of memory");
	int rc = shmbus_topic_open_seg(bus, topic, &p->seg);
	if (rc < 0) {
		free(p);
		return rc;
	}
	uint32_t ng = p->seg.opts.max_groups ? p->seg.opts.max_groups : 1;
	p->rp.seg = &p->seg;
	p->rp.gcur = calloc(ng, sizeof(uint64_t));
	p->rp.ghas = calloc(ng, 1);
	p->rp.spin_ns = PUB_SPIN_NS;
	p->timeout_ms = -1;
	if (!p->rp.gcur || !p->rp.ghas) {
		rc = shmbus_err(-ENOMEM, "out of memory");
		goto fail;
	}
	if (shmbus_membarrier_register())
		__atomic_store_n(&shmbus_ring_fence_free, 1, __ATOMIC_RELAXED);
	rc = take_slot(p);
	if (rc < 0)
		goto fail;
	*out = p;
	return 0;
fail:
	free(p->rp.gcur);
	free(p->rp.ghas);
	shmbus_seg_close(&p->seg);
	free(p);
	return rc;
}

SHMBUS_API void shmbus_pub_close(shmbus_pub_t *p)
{
	if (!p)
		return;
	if (p->reserved)
		shmbus_abort(p);
	struct shmbus_pub_slot *ps = p->rp.slot;
	struct shmbus_topic_hdr *h = p->seg.hdr;
	/* Counters move to the topic before the slot is zeroed (a stats reader may briefly
	 * count them twice, never lose them). */
	sb_add_relaxed(&h->published, p->published);
	sb_add_relaxed(&h->bytes, p->bytes);
	sb_st_relaxed(&ps->published, 0);
	sb_st_relaxed(&ps->bytes, 0);
	sb_st_relaxed(&ps->claim_pos, SHMBUS_NOPOS);
	sb_st_relaxed(&ps->starttime, 0);
	/* Release: the next owner sees a clean slot. */
	sb_st_release(&ps->owner, 0);
	free(p->rp.gcur);
	free(p->rp.ghas);
	shmbus_seg_close(&p->seg);
	free(p);
}

SHMBUS_API int shmbus_pub_set_timeout(shmbus_pub_t *p, int timeout_ms)
{
	p->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
	return 0;
}

static inline void count(struct shmbus_pub *p, struct shmbus_pub_slot *slot, uint64_t n,
			 uint64_t bytes)
{
	p->published += n;
	p->bytes += bytes;
	sb_st_relaxed(&slot->published, p->published);
	sb_st_relaxed(&slot->bytes, p->bytes);
}

/* Payloads up to this size are copied inline by the fast path of one publish. */
#define SMALL_MAX 64u

/* Copy len <= SMALL_MAX bytes with no call: two overlapping moves of the largest power of
 * two not above len, reading only [src, src + len). */
static inline void copy_small(uint8_t *d, const uint8_t *src, uint32_t len)
{
	if (len >= 32) {
		memcpy(d, src, 32);
		memcpy(d + len - 32, src + len - 32, 32);
	} else if (len >= 16) {
		memcpy(d, src, 16);
		memcpy(d + len - 16, src + len - 16, 16);
	} else if (len >= 8) {
		memcpy(d, src, 8);
		memcpy(d + len - 8, src + len - 8, 8);
	} else if (len >= 4) {
		memcpy(d, src, 4);
		memcpy(d + len - 4, src + len - 4, 4);
	} else if (len) {
		d[0] = src[0];
		d[len / 2] = src[len / 2];
		d[len - 1] = src[len - 1];
	}
}

/* Fill and commit one record (the commit word last, with release); small: len <= SMALL_MAX,
 * copied inline. */
static inline __attribute__((always_inline)) void put_any(struct shmbus_seg *s, uint64_t pos,
							  const void *data, uint32_t len,
							  uint32_t type, uint64_t seq,
							  uint64_t ts, int small)
{
	struct shmbus_rec *r = ring_rec(s, pos);
	if (small)
		copy_small((uint8_t *)(r + 1), data, len);
	else if (len)
		memcpy(r + 1, data, len);
	r->len = len;
	r->type = type;
	r->seq = seq;
	r->ts = ts;
	sb_st_release(&r->commit, ring_stamp(s, pos));
}

static inline void put(struct shmbus_seg *s, uint64_t pos, const void *data, uint32_t len,
		       uint32_t type, uint64_t seq, uint64_t ts)
{
	put_any(s, pos, data, len, type, seq, ts, 0);
}

/*
 * The common case of one publish, in one piece: the record fits before the lap end, within
 * the cached limit, and nobody else moves the tail between our read and our CAS. Any of
 * those false, it returns 0 having claimed nothing, and shmbus_ring_claim() does the rest.
 * Same steps as the claim (I3: the slot names the claim before the CAS). small: len <=
 * SMALL_MAX, copied inline, so that with the stamp's fast path the whole is a leaf.
 */
static inline __attribute__((always_inline)) int publish_fast(shmbus_pub_t *p, const void *data,
							      uint32_t len, uint32_t type,
							      uint64_t ts, int small)
{
	struct shmbus_seg *s = &p->seg;
	struct shmbus_topic_hdr *h = s->hdr;
	struct shmbus_pub_slot *slot = p->rp.slot;
	uint64_t stride = ring_stride(len);
	uint64_t t[2] = { sb_ld_relaxed(&h->tail[0]), sb_ld_relaxed(&h->tail[1]) };
	uint64_t end = t[0] + stride;
	if ((t[0] & (SHMBUS_REC_ALIGN - 1)) || (t[0] & s->mask) + stride > s->cap ||
	    end > p->rp.limit)
		return 0;
	/* Own the record's lines and the next record's before the CAS (see the claim). */
	const uint8_t *q = s->log + (t[0] & s->mask);
	__builtin_prefetch(q, 1, 3);
	__builtin_prefetch(q + 64, 1, 3);
	__builtin_prefetch(s->log + ((end + 64) & s->mask), 1, 3);
	__builtin_prefetch(s->log + ((end + 128) & s->mask), 1, 3);
	sb_st_relaxed(&slot->claim_end, end);
	sb_st_relaxed(&slot->claim_nmsg, 1);
	sb_st_relaxed(&slot->claim_pos, t[0]);
	uint64_t want[2] = { end, t[1] + 1 };
	if (!sb_cas_pair(h->tail, t, want))
		return 0;
	put_any(s, t[0], data, len, type, t[1], ts, small);
	sb_st_relaxed(&slot->claim_pos, SHMBUS_NOPOS);
	count(p, slot, 1, len);
	shmbus_ring_wake_readers(s);
	return 1;
}

static __attribute__((noinline)) int publish_claim(shmbus_pub_t *p, const void *data,
						   size_t len, uint32_t type, int timeout_ms);

/* One publish, any size and state: the checks, the fast path with a call to memcpy, the
 * claim. */
static __attribute__((noinline)) int publish_any(shmbus_pub_t *p, const void *data, size_t len,
						 uint32_t type, int timeout_ms)
{
	if (p->reserved)
		return -EBUSY;
	if (len > p->seg.opts.max_message)
		return -EMSGSIZE;
	if (publish_fast(p, data, (uint32_t)len, type, shmbus_stamp_ns(), 0))
		return 0;
	return publish_claim(p, data, len, type, timeout_ms);
}

/* A small message on the fast path with no call at all (no registers to save), else
 * publish_any() as a tail call. */
static inline __attribute__((always_inline)) int publish_one(shmbus_pub_t *p, const void *data,
							     size_t len, uint32_t type,
							     int timeout_ms)
{
	uint64_t ts, now;
	if (len <= SMALL_MAX && !p->reserved && len <= p->seg.opts.max_message &&
	    shmbus_stamp_fast(&ts, &now) && publish_fast(p, data, (uint32_t)len, type, ts, 1))
		return 0;
	return publish_any(p, data, len, type, timeout_ms);
}

SHMBUS_API int shmbus_publish_timeout(shmbus_pub_t *p, const void *data, size_t len,
				      uint32_t type, int timeout_ms)
{
	return publish_one(p, data, len, type, timeout_ms);
}

/* Everything but the fast path: lap ends, waiting for space, contention. */
static __attribute__((noinline)) int publish_claim(shmbus_pub_t *p, const void *data,
						   size_t len, uint32_t type, int timeout_ms)
{
	/* The stamp first: its TSC read overlaps the claim (taken again if the claim had to
	 * wait for space). */
	uint64_t ts = shmbus_stamp_ns();
	struct shmbus_claim c;
	int rc = shmbus_ring_claim(&p->rp, ring_stride(len), 1, timeout_ms, &c);
	if (rc < 0) {
		sb_st_relaxed(&p->rp.slot->claim_pos, SHMBUS_NOPOS);
		return rc;
	}
	if (c.waited)
		ts = shmbus_stamp_ns();
	put(&p->seg, c.rec, data, (uint32_t)len, type, c.seq, ts);
	sb_st_relaxed(&p->rp.slot->claim_pos, SHMBUS_NOPOS);
	count(p, p->rp.slot, 1, len);
	shmbus_ring_wake_readers(&p->seg);
	return 0;
}

SHMBUS_API int shmbus_publish(shmbus_pub_t *p, const void *data, size_t len, uint32_t type)
{
	return publish_one(p, data, len, type, p->timeout_ms);
}

SHMBUS_API int shmbus_publish_batch(shmbus_pub_t *p, const shmbus_iov_t *msgs, unsigned n)
{
	if (p->reserved)
		return -EBUSY;
	for (unsigned i = 0; i < n; i++)
		if (msgs[i].len > p->seg.opts.max_message)
			return -EMSGSIZE;
	struct shmbus_seg *s = &p->seg;
	uint64_t chunk_max = ring_claim_max(s);
	unsigned done = 0;
	while (done < n) {
		uint64_t size = 0;
		unsigned k = 0;
		while (done + k < n) {
			uint64_t st = ring_stride(msgs[done + k].len);
			if (k && size + st > chunk_max)
				break;
			size += st;
			k++;
		}
		struct shmbus_claim c;
		int rc = shmbus_ring_claim(&p->rp, size, k, p->timeout_ms, &c);
		if (rc < 0) {
			sb_st_relaxed(&p->rp.slot->claim_pos, SHMBUS_NOPOS);
			return done ? (int)done : rc;
		}
		uint64_t ts = shmbus_stamp_ns(), bytes = 0;
		/* Records 2..k first, the first last: a reader waits at the first and then
		 * finds the rest committed. */
		uint64_t pos = c.rec + ring_stride(msgs[done].len);
		for (unsigned j = 1; j < k; j++) {
			const shmbus_iov_t *m = &msgs[done + j];
			put(s, pos, m->data, (uint32_t)m->len, m->type, c.seq + j, ts);
			pos += ring_stride(m->len);
			bytes += m->len;
		}
		put(s, c.rec, msgs[done].data, (uint32_t)msgs[done].len, msgs[done].type, c.seq, ts);
		bytes += msgs[done].len;
		sb_st_relaxed(&p->rp.slot->claim_pos, SHMBUS_NOPOS);
		count(p, p->rp.slot, k, bytes);
		shmbus_ring_wake_readers(s);
		done += k;
	}
	return (int)done;
}

SHMBUS_API int shmbus_reserve(shmbus_pub_t *p, size_t len, void **buf)
{
	if (p->reserved)
		return -EBUSY;
	if (len > p->seg.opts.max_message)
		return -EMSGSIZE;
	struct shmbus_claim c;
	int rc = shmbus_ring_claim(&p->rp, ring_stride(len), 1, p->timeout_ms, &c);
	if (rc < 0) {
		sb_st_relaxed(&p->rp.slot->claim_pos, SHMBUS_NOPOS);
		return rc;
	}
	p->reserved = 1;
	p->res_rec = c.rec;
	p->res_len = len;
	p->res_seq = c.seq;
	*buf = ring_rec(&p->seg, c.rec) + 1;
	return 0;
}

SHMBUS_API int shmbus_commit_type(shmbus_pub_t *p, uint32_t type)
{
	if (!p->reserved)
		return -EINVAL;
	struct shmbus_rec *r = ring_rec(&p->seg, p->res_rec);
	r->len = (uint32_t)p->res_len;
	r->type = type;
	r->seq = p->res_seq;
	r->ts = shmbus_stamp_ns();
	sb_st_release(&r->commit, ring_stamp(&p->seg, p->res_rec));
	sb_st_relaxed(&p->rp.slot->claim_pos, SHMBUS_NOPOS);
	p->reserved = 0;
	count(p, p->rp.slot, 1, p->res_len);
	shmbus_ring_wake_readers(&p->seg);
	return 0;
}

SHMBUS_API int shmbus_commit(shmbus_pub_t *p)
{
	return shmbus_commit_type(p, 0);
}

SHMBUS_API int shmbus_abort(shmbus_pub_t *p)
{
	if (!p->reserved)
		return -EINVAL;
	shmbus_ring_write_pad(&p->seg, p->res_rec, ring_stride(p->res_len), 1);
	sb_st_relaxed(&p->rp.slot->claim_pos, SHMBUS_NOPOS);
	sb_add_relaxed(&p->seg.hdr->aborted, 1);
	p->reserved = 0;
	shmbus_ring_wake_readers(&p->seg);
	return 0;
}
