/* SPDX-License-Identifier: MIT */
/*
 * The bridge's shared counters (bus/proto.h, "bridge.state"): made at start with a slot
 * per mirror, import and listener, written by the bridge thread only (relaxed stores), read
 * by shmbus_bridge_stats() with pread, so `shmbus stat` needs nothing of the daemon. The
 * magic is written last (release), as the daemon's own state file does.
 */
#include <stdio.h>
#include <string.h>

#include "daemon/bridge/stats.h"
#include "daemon/statefile.h"
#include "ring/clock.h"
#include "shm/proc.h"

int br_stats_open(struct bridge *b, unsigned nslots)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", b->bus_dir, SHMBUS_BRIDGE_STATE_NAME);
	size_t size = sizeof(struct shmbus_bridge_state) +
		      (size_t)nslots * sizeof(struct shmbus_bridge_slot);
	size = (size + 4095) & ~(size_t)4095;
	/* A new file each time: readers holding the old one see a stopped bridge, not a
	 * half-rewritten one. */
	void *m =
		statefile_map(path, size, b->cfg.mode & 0666, STATEFILE_REPLACE, "shmbusd: bridge");
	if (!m)
		return -1;
	b->stats = m;
	b->stats_size = size;
	struct shmbus_bridge_state *s = b->stats;
	pid_t pid;
	uint64_t st = 0;
	shmbus_proc_self(&pid, &st);
	s->version = SHMBUS_BRIDGE_VERSION;
	s->pid = pid;
	s->starttime = st;
	s->started_ns = shmbus_wall_ns();
	s->updated_ns = s->started_ns;
	s->slot_size = sizeof(struct shmbus_bridge_slot);
	s->nslots = 0; /* grows as slots are handed out */
	s->futex_wait = 0;
	/* Release: the header is whole before a reader sees the magic. */
	__atomic_store_n(&s->magic, SHMBUS_BRIDGE_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

struct shmbus_bridge_slot *br_slot(struct bridge *b, const char *name, const char *kind,
				   const char *peer)
{
	static struct shmbus_bridge_slot spare; /* no file: count into nothing */
	struct shmbus_bridge_state *s = b->stats;
	if (!s)
		return &spare;
	size_t room = (b->stats_size - sizeof(*s)) / sizeof(struct shmbus_bridge_slot);
	if (s->nslots >= room)
		return &spare;
	struct shmbus_bridge_slot *sl =
		(struct shmbus_bridge_slot *)(void *)((char *)s + sizeof(*s)) + s->nslots;
	memset(sl, 0, sizeof(*sl));
	snprintf(sl->name, sizeof(sl->name), "%s", name);
	snprintf(sl->kind, sizeof(sl->kind), "%s", kind);
	snprintf(sl->peer, sizeof(sl->peer), "%s", peer);
	/* Release: the slot is filled before the count that shows it. */
	__atomic_store_n(&s->nslots, s->nslots + 1, __ATOMIC_RELEASE);
	return sl;
}

void br_slot_error(struct shmbus_bridge_slot *s, const char *why)
{
	/* A reader may see it half-written: it is text for humans, always terminated. */
	char buf[sizeof(s->last_error)];
	snprintf(buf, sizeof(buf), "%s", why);
	memcpy(s->last_error, buf, sizeof(buf));
}

void br_stats_update(struct bridge *b)
{
	struct shmbus_bridge_state *s = b->stats;
	if (!s)
		return;
	__atomic_store_n(&s->futex_wait, (uint32_t)b->futex_ok, __ATOMIC_RELAXED);
	__atomic_store_n(&s->enters, b->enters, __ATOMIC_RELAXED);
	__atomic_store_n(&s->sqes, b->sqes, __ATOMIC_RELAXED);
	__atomic_store_n(&s->cqes, b->cqes, __ATOMIC_RELAXED);
	__atomic_store_n(&s->updated_ns, shmbus_wall_ns(), __ATOMIC_RELAXED);
}

void br_stats_close(struct bridge *b)
{
	statefile_unmap(b->stats, b->stats_size);
	b->stats = NULL;
}
