/* SPDX-License-Identifier: MIT */
/*
 * Looking at a bus from outside: its topics, and each topic's readers and groups, read
 * from the shared counters without locks and without the daemon (for `shmbus stat`).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bus/internal.h"
#include "ring/ack.h"
#include "ring/clock.h"
#include "bus/proto.h"
#include "shm/proc.h"
#include "shm/err.h"

/*
 * A file of the bus opened for reading as the topics are: relative to the bus directory,
 * never through a symlink, never waiting on a FIFO, and only if it is a regular file.
 * Returns the fd or -errno (-EPROTO: not a regular file), without a message.
 */
static int open_bus_file(shmbus_bus_t *bus, const char *fname)
{
	int fd = openat(bus->dirfd, fname,
			O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return errno == ELOOP || errno == ENXIO ? -EPROTO : -errno;
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return -EPROTO;
	}
	return fd;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

SHMBUS_API int shmbus_topic_foreach(shmbus_bus_t *bus, int (*fn)(const char *name, void *arg),
				    void *arg)
{
	if (bus->brokered)
		return shmbus_broker_list(bus, fn, arg);
	/* The bus's own directory, not whatever its path names now; a descriptor of our
	 * own for the DIR, whose position is then ours alone. */
	int dfd = openat(bus->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		int e = errno;
		if (dfd >= 0)
			close(dfd);
		return shmbus_err(-e, "bus '%s': cannot read %s: %s", bus->name, bus->path,
				  strerror(e));
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		/* NAME.topic; temporary files of a creation in progress start with '.' */
		if (de->d_name[0] == '.' || len <= 6 || strcmp(de->d_name + len - 6, ".topic"))
			continue;
		/* Only regular files are topics: a FIFO, symlink or directory named like one
		 * is not listed (`shmbus doctor` reports it), and the others still are. */
		if (de->d_type != DT_REG) {
			struct stat sb;
			if (de->d_type != DT_UNKNOWN ||
			    fstatat(bus->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(sb.st_mode))
				continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				rc = shmbus_err(-ENOMEM, "out of memory");
				goto out;
			}
			names = nn;
		}
		names[n] = strndup(de->d_name, len - 6);
		if (!names[n]) {
			rc = shmbus_err(-ENOMEM, "out of memory");
			goto out;
		}
		n++;
	}
	/* names is NULL for an empty bus, and qsort's pointer must not be even for n == 0. */
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && !rc; i++)
		rc = fn(names[i], arg);
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

/* The tail as a pair without writing to it. */
static void tail_snapshot(struct shmbus_topic_hdr *h, uint64_t t[2])
{
	sb_ld_pair_ro(h->tail, t);
}

SHMBUS_API int shmbus_topic_readers(shmbus_bus_t *bus, const char *topic,
				    shmbus_reader_info_t *out, unsigned max)
{
	struct shmbus_seg seg;
	int rc = shmbus_topic_open_seg(bus, topic, &seg);
	if (rc < 0)
		return rc;
	uint64_t t[2];
	tail_snapshot(seg.hdr, t);
	unsigned n = 0;
	for (uint32_t i = 0; i < seg.opts.max_readers; i++) {
		struct shmbus_reader_slot *r = &seg.readers[i];
		uint64_t o = sb_ld_acquire(&r->owner);
		if (SHMBUS_OWNER_STATE(o) != SHMBUS_SLOT_ACTIVE)
			continue;
		if (n < max) {
			shmbus_reader_info_t *ri = &out[n];
			memset(ri, 0, sizeof(*ri));
			ri->slot = i;
			ri->pid = SHMBUS_OWNER_PID(o);
			ri->consumed = sb_ld_relaxed(&r->consumed);
			ri->lost = sb_ld_relaxed(&r->lost);
			ri->pos = sb_ld_relaxed(&r->pos);
			uint32_t gi = sb_ld_relaxed(&r->group);
			if (gi && gi <= seg.opts.max_groups) {
				struct shmbus_group_slot *g = &seg.groups[gi - 1];
				memcpy(ri->group, g->name, sizeof(ri->group) - 1);
				ri->group[sizeof(ri->group) - 1] = '\0';
			} else {
				uint64_t ns = sb_ld_relaxed(&r->next_seq);
				if (ri->pos != SHMBUS_NOPOS && ri->pos <= t[0])
					ri->lag_bytes = t[0] - ri->pos;
				/* Before its first message a reader has no sequence yet. */
				if (ri->consumed && ns <= t[1])
					ri->lag_msgs = t[1] - ns;
			}
		}
		n++;
	}
	shmbus_seg_close(&seg);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

SHMBUS_API int shmbus_topic_publishers(shmbus_bus_t *bus, const char *topic,
				       shmbus_pub_info_t *out, unsigned max)
{
	struct shmbus_seg seg;
	int rc = shmbus_topic_open_seg(bus, topic, &seg);
	if (rc < 0)
		return rc;
	unsigned n = 0;
	for (uint32_t i = 0; i < seg.opts.max_publishers; i++) {
		struct shmbus_pub_slot *ps = &seg.pubs[i];
		uint64_t o = sb_ld_acquire(&ps->owner);
		if (SHMBUS_OWNER_STATE(o) != SHMBUS_SLOT_ACTIVE)
			continue;
		if (n < max) {
			shmbus_pub_info_t *pi = &out[n];
			memset(pi, 0, sizeof(*pi));
			pi->slot = i;
			pi->pid = SHMBUS_OWNER_PID(o);
			pi->published = sb_ld_relaxed(&ps->published);
			pi->bytes = sb_ld_relaxed(&ps->bytes);
			pi->claim_open = sb_ld_relaxed(&ps->claim_pos) != SHMBUS_NOPOS;
		}
		n++;
	}
	shmbus_seg_close(&seg);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

SHMBUS_API int shmbus_topic_groups(shmbus_bus_t *bus, const char *topic,
				   shmbus_group_info_t *out, unsigned max)
{
	struct shmbus_seg seg;
	int rc = shmbus_topic_open_seg(bus, topic, &seg);
	if (rc < 0)
		return rc;
	uint64_t t[2];
	tail_snapshot(seg.hdr, t);
	unsigned n = 0;
	for (uint32_t g = 0; g < seg.opts.max_groups; g++) {
		struct shmbus_group_slot *gs = &seg.groups[g];
		if (sb_ld_acquire(&gs->state) != SHMBUS_GROUP_ACTIVE)
			continue;
		if (n < max) {
			shmbus_group_info_t *gi = &out[n];
			memset(gi, 0, sizeof(*gi));
			memcpy(gi->name, gs->name, sizeof(gi->name) - 1);
			gi->name[sizeof(gi->name) - 1] = '\0';
			uint64_t c = sb_ld_acquire(&gs->cursor[0]);
			uint64_t cs = shmbus_cseq_full(sb_ld_acquire(&gs->cursor[1]), t[1]);
			gi->cursor = c;
			if (c <= t[0])
				gi->lag_bytes = t[0] - c;
			if (cs != SHMBUS_NOSEQ && cs <= t[1])
				gi->lag_msgs = t[1] - cs;
			gi->lost = sb_ld_relaxed(&gs->lost);
			gi->abandoned = sb_ld_relaxed(&gs->abandoned);
			uint64_t oldest = 0;
			gi->pending = shmbus_ack_pending(&seg, g, &oldest);
			if (oldest) {
				uint64_t now = shmbus_now_ns();
				gi->oldest_pending_ms = now > oldest ? (now - oldest) / 1000000 : 0;
			}
			gi->max_deliver = sb_ld_relaxed(&gs->max_deliver);
			gi->ack_wait_ms = sb_ld_relaxed(&gs->ack_wait_ms);
			gi->redelivered = sb_ld_relaxed(&gs->redelivered);
			gi->dead_lettered = sb_ld_relaxed(&gs->dead_lettered);
			memcpy(gi->dead_letter, gs->dead_letter, sizeof(gi->dead_letter) - 1);
			for (uint32_t i = 0; i < seg.opts.max_readers; i++) {
				struct shmbus_reader_slot *r = &seg.readers[i];
				if (SHMBUS_OWNER_STATE(sb_ld_acquire(&r->owner)) ==
					    SHMBUS_SLOT_ACTIVE &&
				    sb_ld_relaxed(&r->group) == g + 1)
					gi->members++;
			}
		}
		n++;
	}
	shmbus_seg_close(&seg);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

struct sum_arg {
	shmbus_bus_t *bus;
	shmbus_bus_stats_t *st;
};

static int sum_topic(const char *name, void *arg)
{
	struct sum_arg *a = arg;
	shmbus_topic_stats_t ts;
	a->st->topics++;
	if (shmbus_topic_stats(a->bus, name, &ts) == 0) {
		a->st->published += ts.published;
		a->st->bytes += ts.bytes;
		a->st->aborted += ts.aborted;
	}
	return 0;
}

SHMBUS_API int shmbus_bus_stats(shmbus_bus_t *bus, shmbus_bus_stats_t *st)
{
	memset(st, 0, sizeof(*st));
	struct sum_arg a = { bus, st };
	int rc = shmbus_topic_foreach(bus, sum_topic, &a);
	if (rc < 0)
		return rc;
	int fd = open_bus_file(bus, SHMBUS_STATE_NAME);
	if (fd < 0)
		return 0; /* no daemon ever ran here (or not a file of one: ignored) */
	struct shmbus_daemon_state ds;
	ssize_t n = pread(fd, &ds, sizeof(ds), 0);
	close(fd);
	if (n != (ssize_t)sizeof(ds) || ds.magic != SHMBUS_STATE_MAGIC ||
	    ds.version != SHMBUS_STATE_VERSION)
		return 0; /* not ours: ignored (`shmbus doctor` can say more) */
	st->daemon_pid = ds.pid;
	st->daemon_running = ds.pid > 0 && shmbus_proc_alive(ds.pid, ds.starttime);
	st->clients = st->daemon_running ? ds.clients : 0;
	st->watched = st->daemon_running ? ds.watched : 0;
	st->crashes = ds.crashes;
	st->readers_reclaimed = ds.readers_reclaimed;
	st->publishers_reclaimed = ds.publishers_reclaimed;
	st->daemon_started_ns = ds.started_ns;
	st->daemon_updated_ns = ds.updated_ns;
	return 0;
}

SHMBUS_API int shmbus_bridge_stats(shmbus_bus_t *bus, shmbus_bridge_info_t *out, unsigned max,
				   shmbus_bridge_totals_t *totals)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/%s", bus->path, SHMBUS_BRIDGE_STATE_NAME);
	int fd = open_bus_file(bus, SHMBUS_BRIDGE_STATE_NAME);
	if (fd == -EPROTO)
		return shmbus_err(-EPROTO, "%s is not a regular file; not a bridge state file",
				  path);
	if (fd < 0)
		return shmbus_err(-ENOENT, "bus '%s': no bridge has run here (%s)", bus->name,
				  path);
	struct shmbus_bridge_state h;
	int rc;
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != SHMBUS_BRIDGE_MAGIC ||
	    h.version != SHMBUS_BRIDGE_VERSION || h.slot_size < sizeof(struct shmbus_bridge_slot) ||
	    h.slot_size > (1u << 20) || h.nslots > 100000) {
		rc = shmbus_err(-EPROTO, "%s is not a bridge state file this library reads", path);
		goto out;
	}
	int running = h.pid > 0 && shmbus_proc_alive(h.pid, h.starttime);
	if (totals) {
		memset(totals, 0, sizeof(*totals));
		totals->pid = h.pid;
		totals->running = running;
		totals->futex_wait = (int)h.futex_wait;
		totals->enters = h.enters;
		totals->sqes = h.sqes;
		totals->cqes = h.cqes;
		totals->started_ns = h.started_ns;
		totals->updated_ns = h.updated_ns;
	}
	rc = 0;
	for (uint32_t i = 0; i < h.nslots; i++) {
		struct shmbus_bridge_slot sl;
		off_t at = (off_t)sizeof(h) + (off_t)i * h.slot_size;
		if (pread(fd, &sl, sizeof(sl), at) != (ssize_t)sizeof(sl))
			break;
		if ((unsigned)rc < max) {
			shmbus_bridge_info_t *o = &out[rc];
			memset(o, 0, sizeof(*o));
			/* Text from another process: bound it. */
			snprintf(o->name, sizeof(o->name), "%.*s", (int)sizeof(sl.name) - 1,
				 sl.name);
			snprintf(o->kind, sizeof(o->kind), "%.*s", (int)sizeof(sl.kind) - 1,
				 sl.kind);
			snprintf(o->peer, sizeof(o->peer), "%.*s", (int)sizeof(sl.peer) - 1,
				 sl.peer);
			snprintf(o->last_error, sizeof(o->last_error), "%.*s",
				 (int)sizeof(sl.last_error) - 1, sl.last_error);
			o->up = sl.up != 0 && running;
			o->topics = sl.topics;
			o->sent = sl.sent;
			o->confirmed = sl.confirmed;
			o->lag = sl.lag;
			o->reconnects = sl.reconnects;
			o->errors = sl.errors;
			o->lost = sl.lost;
			o->duplicates = sl.dups;
			o->bytes = sl.bytes;
			o->dropped = sl.dropped;
			o->changed_ns = sl.last_change_ns;
		}
		rc++;
	}
out:
	close(fd);
	return rc;
}
