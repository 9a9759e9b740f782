/* SPDX-License-Identifier: MIT */
/*
 * Topics: names, options, creating, removing, opening a topic's file, looking at it; and
 * the slots of its two tables, which publishers and subscribers take when they open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bus/internal.h"
#include "bus/proto.h"
#include "ring/repair.h"
#include "shm/err.h"
#include "shm/proc.h"

#define SYS_PREFIX "$sys."

SHMBUS_API void shmbus_topic_opts_init(shmbus_topic_opts_t *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->capacity = 1u << 20;
	opts->max_message = 0; /* capacity / 8, whatever the capacity is set to */
	opts->policy = SHMBUS_BLOCK;
	opts->max_readers = 64;
	opts->max_groups = 16;
	opts->max_publishers = 64;
	opts->max_pending = 256;
}

static int tok_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* Dot-separated tokens from s, none empty. Returns the offending index or -1 if fine. */
static long tokens_bad(const char *s)
{
	size_t tok = 0, i = 0;
	for (; s[i]; i++) {
		if (s[i] == '.') {
			if (!tok)
				return (long)i;
			tok = 0;
		} else if (!tok_char((unsigned char)s[i])) {
			return (long)i;
		} else {
			tok++;
		}
	}
	return tok ? -1 : (long)i;
}

SHMBUS_API int shmbus_topic_name_check(const char *name, int system)
{
	if (!name || !*name)
		return shmbus_err(-EINVAL, "empty topic name");
	size_t n = strnlen(name, SHMBUS_TOPIC_NAME_MAX + 1);
	if (n > SHMBUS_TOPIC_NAME_MAX)
		return shmbus_err(-EINVAL, "topic name longer than %d bytes",
				  SHMBUS_TOPIC_NAME_MAX);
	const char *body = name;
	if (name[0] == '$') {
		if (strncmp(name, SYS_PREFIX, strlen(SYS_PREFIX)) != 0)
			return shmbus_err(-EINVAL, "topic name '%s': only the reserved prefix "
					  "'$sys.' may start with '$'", name);
		if (!system)
			return shmbus_err(-EINVAL, "topic name '%s': the '$sys.' prefix is "
					  "reserved (SHMBUS_TOPIC_SYSTEM)", name);
		body = name + strlen(SYS_PREFIX);
	}
	long bad = tokens_bad(body);
	if (bad >= 0)
		return shmbus_err(-EINVAL, "topic name '%s': bad character or empty token at "
				  "byte %ld (names are dot-separated tokens of A-Z a-z 0-9 _ -)",
				  name, (long)(body - name) + bad);
	return 0;
}

int shmbus_token_check(const char *what, const char *name, size_t max)
{
	if (!name || !*name)
		return shmbus_err(-EINVAL, "empty %s", what);
	size_t n = strnlen(name, max + 1);
	if (n > max)
		return shmbus_err(-EINVAL, "%s longer than %zu bytes", what, max);
	for (size_t i = 0; i < n; i++)
		if (!tok_char((unsigned char)name[i]))
			return shmbus_err(-EINVAL, "%s '%s': bad character at byte %zu (A-Z a-z "
					  "0-9 _ - only)", what, name, i);
	return 0;
}

int shmbus_opts_resolve(const shmbus_topic_opts_t *in, struct shmbus_seg_opts *out)
{
	shmbus_topic_opts_t d;
	shmbus_topic_opts_init(&d);
	if (!in)
		in = &d;
	for (size_t i = 0; i < sizeof(in->reserved) / sizeof(in->reserved[0]); i++)
		if (in->reserved[i])
			return shmbus_err(-EINVAL, "reserved[%zu] is not zero", i);
	out->capacity = in->capacity ? in->capacity : d.capacity;
	if (in->max_message) {
		out->max_message = in->max_message;
	} else {
		uint64_t mm = out->capacity / 8;
		out->max_message = mm > SHMBUS_MAX_MESSAGE_LIMIT ? SHMBUS_MAX_MESSAGE_LIMIT
								 : (uint32_t)mm;
	}
	out->policy = in->policy;
	out->max_readers = in->max_readers ? in->max_readers : d.max_readers;
	out->max_groups = in->max_groups ? in->max_groups : d.max_groups;
	out->max_publishers = in->max_publishers ? in->max_publishers : d.max_publishers;
	out->flags = in->flags;
	out->max_pending = in->max_pending ? in->max_pending : d.max_pending;
	uint64_t size;
	return shmbus_seg_opts_check(out, &size);
}

SHMBUS_API int shmbus_topic_create(shmbus_bus_t *bus, const char *name,
				   const shmbus_topic_opts_t *opts)
{
	shmbus_err_clear();
	struct shmbus_seg_opts o;
	int rc = shmbus_opts_resolve(opts, &o);
	if (rc < 0)
		return rc;
	rc = shmbus_topic_name_check(name, (int)(o.flags & SHMBUS_TOPIC_SYSTEM));
	if (rc < 0)
		return rc;
	if (bus->brokered) {
		/* 1 created → 0; 0 existed (with the same options) → 1. */
		rc = shmbus_broker_open(bus, name, SHMBUS_ROLE_CREATE, &o, NULL, NULL);
		return rc < 0 ? rc : !rc;
	}
	return shmbus_seg_create_at(bus->dirfd, bus->path, name, &o);
}

SHMBUS_API int shmbus_topic_remove(shmbus_bus_t *bus, const char *name)
{
	shmbus_err_clear();
	int rc = shmbus_topic_name_check(name, 1);
	if (rc < 0)
		return rc;
	if (bus->brokered)
		return shmbus_broker_remove(bus, name);
	char fname[SHMBUS_TOPIC_NAME_MAX + 8];
	snprintf(fname, sizeof(fname), "%s.topic", name);
	/* Whatever is there goes, a FIFO or symlink in the way too (never followed). */
	if (unlinkat(bus->dirfd, fname, 0) < 0) {
		int e = errno;
		if (e == ENOENT)
			return shmbus_err(-ENOENT, "topic '%s' does not exist", name);
		return shmbus_err(-e, "topic '%s': unlink %s/%s: %s", name, bus->path, fname,
				  strerror(e));
	}
	return 0;
}

int shmbus_topic_open_role(shmbus_bus_t *bus, const char *name, struct shmbus_seg *seg, int role)
{
	shmbus_err_clear();
	int rc = shmbus_topic_name_check(name, 1);
	if (rc < 0)
		return rc;
	if (!bus->brokered)
		return shmbus_seg_open_at(seg, bus->dirfd, bus->path, name);
	int fd[2];
	rc = shmbus_broker_open(bus, name, role, NULL, fd, NULL);
	if (rc < 0)
		return rc;
	/* Only a publisher writes the log; the daemon's own views are all read-write. */
	rc = shmbus_seg_open_fds(seg, fd[0], fd[1], role != SHMBUS_ROLE_PUB && !bus->broker,
				 name);
	close(fd[0]);
	close(fd[1]);
	return rc;
}

int shmbus_topic_open_seg(shmbus_bus_t *bus, const char *name, struct shmbus_seg *seg)
{
	return shmbus_topic_open_role(bus, name, seg, SHMBUS_ROLE_LOOK);
}

SHMBUS_API int shmbus_topic_info(shmbus_bus_t *bus, const char *name, shmbus_topic_opts_t *opts)
{
	struct shmbus_seg seg;
	int rc = shmbus_topic_open_seg(bus, name, &seg);
	if (rc < 0)
		return rc;
	memset(opts, 0, sizeof(*opts));
	opts->capacity = seg.opts.capacity;
	opts->max_message = seg.opts.max_message;
	opts->policy = seg.opts.policy;
	opts->max_readers = seg.opts.max_readers;
	opts->max_groups = seg.opts.max_groups;
	opts->max_publishers = seg.opts.max_publishers;
	opts->flags = seg.opts.flags;
	opts->max_pending = seg.opts.max_pending;
	shmbus_seg_close(&seg);
	return 0;
}

SHMBUS_API int shmbus_topic_stats(shmbus_bus_t *bus, const char *name, shmbus_topic_stats_t *st)
{
	struct shmbus_seg seg;
	int rc = shmbus_topic_open_seg(bus, name, &seg);
	if (rc < 0)
		return rc;
	struct shmbus_topic_hdr *h = seg.hdr;
	memset(st, 0, sizeof(*st));
	st->published = sb_ld_relaxed(&h->published);
	st->bytes = sb_ld_relaxed(&h->bytes);
	for (uint32_t i = 0; i < seg.opts.max_publishers; i++) {
		struct shmbus_pub_slot *ps = &seg.pubs[i];
		if (sb_ld_acquire(&ps->owner))
			st->publishers++;
		st->published += sb_ld_relaxed(&ps->published);
		st->bytes += sb_ld_relaxed(&ps->bytes);
	}
	/* Readers that joined: a slot is taken before its reader has a position. */
	for (uint32_t i = 0; i < seg.opts.max_readers; i++)
		if (sb_ld_acquire(&seg.readers[i].owner) &&
		    (sb_ld_acquire(&seg.readers[i].flags) & SHMBUS_RSLOT_JOINED))
			st->readers++;
	st->aborted = sb_ld_relaxed(&h->aborted);
	st->backpressure_waits = sb_ld_relaxed(&h->backpressure_waits);
	st->wakeups = sb_ld_relaxed(&h->wakeups);
	st->readers_reclaimed = sb_ld_relaxed(&seg.rt->readers_reclaimed);
	uint64_t t[2];
	sb_ld_pair_ro(h->tail, t);
	st->tail = t[0];
	st->next_seq = t[1];
	shmbus_seg_close(&seg);
	return 0;
}

uint64_t shmbus_topic_generation(shmbus_bus_t *bus, const char *name)
{
	if (bus->brokered) {
		uint64_t g = 0;
		return shmbus_broker_open(bus, name, SHMBUS_ROLE_CREATE, NULL, NULL, &g) < 0 ? 0 : g;
	}
	return shmbus_seg_generation_at(bus->dirfd, name);
}

/* ---- slots ------------------------------------------------------------------------------ */

static uint64_t *slot_owner(struct shmbus_seg *s, enum shmbus_table t, uint32_t i)
{
	return t == SHMBUS_TABLE_READERS ? &s->readers[i].owner : &s->pubs[i].owner;
}

static uint64_t *slot_starttime(struct shmbus_seg *s, enum shmbus_table t, uint32_t i)
{
	return t == SHMBUS_TABLE_READERS ? &s->readers[i].starttime : &s->pubs[i].starttime;
}

/* A slot just taken: everything its last owner left is reset. */
static void slot_reset(struct shmbus_seg *s, enum shmbus_table t, uint32_t i)
{
	if (t == SHMBUS_TABLE_READERS) {
		struct shmbus_reader_slot *r = &s->readers[i];
		sb_st_relaxed(&r->consumed, 0);
		sb_st_relaxed(&r->lost, 0);
		sb_st_relaxed(&r->flags, 0);
		sb_st_relaxed(&r->group, 0);
		sb_st_relaxed(&r->pending, 0);
		sb_st_relaxed(&r->taken_seq, 0);
		sb_st_relaxed(&r->floor, SHMBUS_NOPOS);
		sb_st_seqcst(&r->pos, SHMBUS_NOPOS);
	} else {
		struct shmbus_pub_slot *ps = &s->pubs[i];
		sb_st_relaxed(&ps->claim_pos, SHMBUS_NOPOS);
		sb_st_relaxed(&ps->published, 0);
		sb_st_relaxed(&ps->bytes, 0);
	}
}

int shmbus_slot_take(struct shmbus_seg *s, enum shmbus_table t)
{
	int readers = t == SHMBUS_TABLE_READERS;
	uint32_t n = readers ? s->opts.max_readers : s->opts.max_publishers;
	pid_t pid;
	uint64_t st;
	int rc = shmbus_proc_self(&pid, &st);
	if (rc < 0)
		return shmbus_err(rc, "cannot read /proc/self/stat");
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < n; i++) {
			uint64_t *owner = slot_owner(s, t, i), o = 0;
			if (sb_ld_relaxed(owner) != 0 ||
			    !sb_cas_u64(owner, &o, SHMBUS_OWNER(SHMBUS_SLOT_ACTIVE, pid)))
				continue;
			sb_st_relaxed(slot_starttime(s, t, i), st);
			slot_reset(s, t, i);
			/* Seq_cst: writers and repairers scan up to the mark before the slot
			 * counts (a claim it names, a position it holds). */
			sb_max_u32(readers ? &s->rt->readers_hwm : &s->hdr->pubs_hwm, i + 1);
			return (int)i;
		}
		/* All taken: free those of dead processes (repairing their claims), once. */
		if (pass == 0 && (readers ? shmbus_ring_reclaim_readers(s, SHMBUS_NOPOS) :
					    shmbus_ring_pub_gc(s, 0)) == 0)
			break;
	}
	return shmbus_err(-EUSERS, "topic '%s': all %u %s slots are in use", s->name, n,
			  readers ? "reader" : "publisher");
}

void shmbus_slot_put(struct shmbus_seg *s, enum shmbus_table t, uint32_t idx)
{
	/* Not joined any more, before the slot is free: its next owner counts once it joins. */
	if (t == SHMBUS_TABLE_READERS)
		sb_st_relaxed(&s->readers[idx].flags, 0);
	sb_st_relaxed(slot_starttime(s, t, idx), 0);
	/* Release: the next owner sees the slot as we left it. */
	sb_st_release(slot_owner(s, t, idx), 0);
}
