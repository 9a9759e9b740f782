/* SPDX-License-Identifier: MIT */
/*
 * The record format of the log, for its writers and its readers alike (docs/layout.md,
 * "Records"; docs/algorithm.md, I1 and I2). A record is a 32-byte header and its payload,
 * 32-byte aligned; it never straddles the end of a lap (a padding record fills up to it).
 * It is committed when its first word equals its position XOR the topic's stamp key, and
 * that word is stored last, with release, so a reader that acquires it sees the rest; a
 * word left from an earlier lap, or a zeroed page, never reads as committed.
 */
#ifndef SHMBUS_RING_RECORD_H
#define SHMBUS_RING_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ring/atomic.h"
#include "shm/segment.h"

/* Record alignment and header size in the log. */
#define SHMBUS_REC_ALIGN 32u
#define SHMBUS_REC_HDR 32u
/* len word: top bit marks a padding record whose low bits are its whole size. */
#define SHMBUS_REC_PAD 0x80000000u

/* A record in the log. The commit word is written last (release); readers acquire it. */
struct shmbus_rec {
	uint64_t commit; /* position of this record XOR the topic's stamp key */
	uint32_t len;	 /* payload length, or SHMBUS_REC_PAD | total size of the padding */
	uint32_t type;	 /* user type word; padding: the sequence numbers it burns */
	uint64_t seq;	 /* topic-wide sequence number */
	uint64_t ts;	 /* CLOCK_REALTIME ns at commit */
};
_Static_assert(sizeof(struct shmbus_rec) == SHMBUS_REC_HDR, "record header size");
_Static_assert(offsetof(struct shmbus_rec, commit) == 0, "commit word first");

/* Longest claim, so that a padding record (31-bit length) can always cover it. */
#define SHMBUS_CLAIM_MAX (1ull << 30)

/* Payloads up to this size are copied inline by the writer's fast path (no memcpy call). */
#define SHMBUS_REC_SMALL_MAX 64u

/* The commit word of a record at pos. */
static inline uint64_t shmbus_rec_stamp(const struct shmbus_seg *s, uint64_t pos)
{
	return pos ^ s->key;
}

/* The record at pos (any lap). */
static inline struct shmbus_rec *shmbus_rec_at(const struct shmbus_seg *s, uint64_t pos)
{
	return (struct shmbus_rec *)(void *)(s->log + (pos & s->mask));
}

/* Is the record at pos committed? Acquire: if so, its fields and payload are visible. */
static inline int shmbus_rec_committed(const struct shmbus_seg *s, uint64_t pos)
{
	return sb_ld_acquire(&shmbus_rec_at(s, pos)->commit) == shmbus_rec_stamp(s, pos);
}

/* The bytes a message of len bytes takes in the log, header and alignment included. */
static inline uint64_t shmbus_rec_stride(uint64_t len)
{
	return (SHMBUS_REC_HDR + len + SHMBUS_REC_ALIGN - 1) & ~(uint64_t)(SHMBUS_REC_ALIGN - 1);
}

/* The bytes a record takes, from its len word (padding says its size; a message, its
 * payload length). */
static inline uint64_t shmbus_rec_size(uint32_t len)
{
	return (len & SHMBUS_REC_PAD) ? (len & ~SHMBUS_REC_PAD) : shmbus_rec_stride(len);
}

/* Is size impossible for a record at p (shorter than a header, unaligned, or past the end
 * of p's lap)? Every size read from the log is untrusted. */
static inline int shmbus_rec_bad_size(const struct shmbus_seg *s, uint64_t p, uint64_t size)
{
	return size < SHMBUS_REC_HDR || (size & (SHMBUS_REC_ALIGN - 1)) ||
	       (p & s->mask) + size > s->cap;
}

/* The first lap start that is still intact with the tail at t (t >= cap): where a reader
 * that was lapped resumes (lap starts are record boundaries, I2). */
static inline uint64_t shmbus_lap_resume(const struct shmbus_seg *s, uint64_t t)
{
	return (t - s->cap + s->mask) & ~s->mask;
}

/* Does [from, to) cross a sixteenth of the ring (or a lap)? Such a step wakes lazily
 * sleeping readers (ring/writer.h) and publishers waiting for space (ring/reader.h). */
static inline int shmbus_ring_crosses_16th(const struct shmbus_seg *s, uint64_t from, uint64_t to)
{
	return (from ^ to) > (s->mask >> 4);
}

/* ---- reading ------------------------------------------------------------------------- */

/* A record's header fields as a reader took them, to validate before use. */
struct shmbus_rec_view {
	uint32_t len, type;
	uint64_t seq, ts;
};

/* Take the header fields of r, a record that cannot change under us (block mode, a
 * position publishers honour); otherwise see the racy copy in ring/reader.c. */
static inline void shmbus_rec_view(const struct shmbus_rec *r, struct shmbus_rec_view *v)
{
	v->len = r->len;
	v->type = r->type;
	v->seq = r->seq;
	v->ts = r->ts;
}

/* ---- writing (into a claim the caller owns) -------------------------------------------- */

/* Copy len <= SHMBUS_REC_SMALL_MAX bytes with no call: two overlapping moves of the largest
 * power of two not above len, reading only [src, src + len). */
static inline void shmbus_rec_copy_small(uint8_t *d, const uint8_t *src, uint32_t len)
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

/*
 * Fill the header of r (the record at pos), whose payload is in place, and commit it.
 * Returns the topic's wake word as read just before the commit store and after the claim's
 * CAS: the publisher's half of the sleep/wake handshake (ring/writer.h,
 * shmbus_ring_wake_after()).
 */
static inline uint32_t shmbus_rec_seal(const struct shmbus_seg *s, struct shmbus_rec *r,
				       uint64_t pos, uint32_t len, uint32_t type, uint64_t seq,
				       uint64_t ts)
{
	r->len = len;
	r->type = type;
	r->seq = seq;
	r->ts = ts;
	/* Seq_cst, after the claim's CAS (docs/algorithm.md, "Waking readers"); a load is
	 * never reordered after the release store below. */
	uint32_t wake = sb_ld_seqcst(&s->rt->wake);
	/* Release (I1): the header and payload are visible to whoever acquires the word. */
	sb_st_release(&r->commit, shmbus_rec_stamp(s, pos));
	return wake;
}

/* Fill the header of the record at pos, whose payload is in place, and commit it (the
 * wake word as shmbus_rec_seal() read it). */
static inline uint32_t shmbus_rec_commit(const struct shmbus_seg *s, uint64_t pos, uint32_t len,
					 uint32_t type, uint64_t seq, uint64_t ts)
{
	return shmbus_rec_seal(s, shmbus_rec_at(s, pos), pos, len, type, seq, ts);
}

/* Write and commit one message at pos; small: len <= SHMBUS_REC_SMALL_MAX, copied inline.
 * Returns the wake word as shmbus_rec_seal() read it. */
static inline __attribute__((always_inline)) uint32_t
shmbus_rec_write(const struct shmbus_seg *s, uint64_t pos, const void *data, uint32_t len,
		 uint32_t type, uint64_t seq, uint64_t ts, int small)
{
	struct shmbus_rec *r = shmbus_rec_at(s, pos);
	if (small)
		shmbus_rec_copy_small((uint8_t *)(r + 1), data, len);
	else if (len)
		memcpy(r + 1, data, len);
	return shmbus_rec_seal(s, r, pos, len, type, seq, ts);
}

/* Write and commit a padding record of size bytes at pos that burns `burned` sequence
 * numbers (an aborted reservation, a dead publisher's claim; 0 at a lap end). */
static inline uint32_t shmbus_rec_write_pad(const struct shmbus_seg *s, uint64_t pos, uint64_t size,
					    uint64_t burned)
{
	return shmbus_rec_commit(s, pos, SHMBUS_REC_PAD | (uint32_t)size, (uint32_t)burned, 0, 0);
}

#endif
