/* SPDX-License-Identifier: MIT */
/*
 * Cleaning up after dead processes. The library repairs on its own (a reader stuck on a
 * dead publisher's claim, a publisher held back by a dead reader), but only when someone
 * runs into the damage; the daemon does it the moment the kernel says a process is gone
 * (its pidfd polls readable), so no live process ever waits for it.
 *
 * The daemon uses the library's internals here (ring/repair.h, shm/), as
 * docs/architecture.md allows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/intree.h"
#include "daemon/guard.h"
#include "daemon/shmbusd.h"
#include "ring/ack.h"
#include "ring/atomic.h"
#include "ring/repair.h"
#include "shm/proc.h"

struct reap_arg {
	struct daemon *d;
	pid_t pid;
	uint64_t st;
	struct reaped *out;
};

static int owned_by(uint64_t owner, uint64_t slot_st, pid_t pid, uint64_t st)
{
	return owner && SHMBUS_OWNER_PID(owner) == pid && (st == 0 || slot_st == st);
}

static unsigned count_pubs(struct shmbus_seg *seg, pid_t pid, uint64_t st)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < seg->opts.max_publishers; i++) {
		struct shmbus_pub_slot *ps = &seg->pubs[i];
		if (owned_by(sb_ld_acquire(&ps->owner), sb_ld_relaxed(&ps->starttime), pid, st))
			n++;
	}
	return n;
}

void topic_damaged(struct daemon *d, const char *name, void *addr, const char *during)
{
	/* The library's mapping of it, which the abandoned call can no longer unmap. */
	guard_unmap(addr, d->bus_dir);
	char esc[2 * SHMBUS_TOPIC_NAME_MAX + 2];
	event(d, "topic_damaged",
	      "\"topic\":\"%s\",\"during\":\"%s\",\"error\":\"SIGBUS: the file was "
	      "truncated while mapped\"",
	      json_str(esc, sizeof(esc), name), during);
}

int topic_info_guarded(struct daemon *d, const char *name, shmbus_topic_opts_t *o)
{
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		topic_damaged(d, name, g.addr, "topic info");
		return -EIO;
	}
	int rc = shmbus_topic_info(d->bus, name, o);
	guard_leave(&g);
	return rc;
}

static int reap_topic_(const char *name, void *arg)
{
	struct reap_arg *a = arg;
	struct shmbus_seg seg;
	if (shmbus_topic_open_seg(a->d->bus, name, &seg) < 0)
		return 0; /* a damaged or foreign file: `shmbus doctor` reports it */
	int held = 0;
	/* Its pending messages (an acknowledging member) go back to its groups first, for
	 * the other members to take at once. */
	uint32_t ng = sb_ld_acquire(&seg.rt->groups_hwm);
	for (uint32_t g = 0; g < ng && g < seg.opts.max_groups; g++) {
		if (sb_ld_acquire(&seg.groups[g].state) != SHMBUS_GROUP_ACTIVE)
			continue;
		int n = shmbus_ack_scan(&seg, g, a->pid, 0);
		a->out->pending += (unsigned)n;
		held |= n > 0;
	}
	for (uint32_t i = 0; i < seg.opts.max_readers; i++) {
		struct shmbus_reader_slot *r = &seg.readers[i];
		uint64_t o = sb_ld_acquire(&r->owner);
		if (!owned_by(o, sb_ld_relaxed(&r->starttime), a->pid, a->st))
			continue;
		held = 1;
		a->out->readers += (unsigned)shmbus_ring_reclaim_reader(&seg, i, o);
	}
	unsigned pubs = count_pubs(&seg, a->pid, a->st);
	if (pubs) {
		held = 1;
		uint64_t before = sb_ld_relaxed(&seg.hdr->aborted);
		/* Frees the slots of dead publishers, covering unfinished claims with padding
		 * (the process is dead: its pid no longer names it, or it is a zombie). A
		 * repair frees the slot itself, so count what is left, not what gc says. */
		shmbus_ring_pub_gc(&seg, 0);
		a->out->publishers += pubs - count_pubs(&seg, a->pid, a->st);
		a->out->aborted += sb_ld_relaxed(&seg.hdr->aborted) - before;
	}
	a->out->topics += (unsigned)held;
	shmbus_seg_close(&seg);
	return 0;
}

/* Each topic's reaping under a guard: a client may truncate the file meanwhile. */
static int reap_topic(const char *name, void *arg)
{
	struct reap_arg *a = arg;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		topic_damaged(a->d, name, g.addr, "reap");
		return 0;
	}
	reap_topic_(name, arg);
	guard_leave(&g);
	return 0;
}

void reap(struct daemon *d, pid_t pid, uint64_t st, struct reaped *out)
{
	memset(out, 0, sizeof(*out));
	struct reap_arg a = { d, pid, st, out };
	shmbus_topic_foreach(d->bus, reap_topic, &a);
}

/* ---- adoption ------------------------------------------------------------------------ */

static int adopt_topic_(const char *name, void *arg)
{
	struct daemon *d = arg;
	struct shmbus_seg seg;
	if (shmbus_topic_open_seg(d->bus, name, &seg) < 0)
		return 0;
	for (uint32_t i = 0; i < seg.opts.max_readers + seg.opts.max_publishers; i++) {
		uint64_t o, st;
		if (i < seg.opts.max_readers) {
			o = sb_ld_acquire(&seg.readers[i].owner);
			st = sb_ld_relaxed(&seg.readers[i].starttime);
		} else {
			o = sb_ld_acquire(&seg.pubs[i - seg.opts.max_readers].owner);
			st = sb_ld_relaxed(&seg.pubs[i - seg.opts.max_readers].starttime);
		}
		pid_t pid = SHMBUS_OWNER_PID(o);
		if (!o || pid <= 0 || pid == getpid())
			continue;
		int known = 0;
		for (struct proc *p = d->procs; p && !known; p = p->next)
			known = p->pid == pid && p->starttime == st;
		if (known)
			continue;
		if (!conductor_watch(d, pid, st) && !shmbus_proc_alive(pid, st)) {
			/* Dead before we watched it. A slot records only pid and start time;
			 * who it was is in /proc while it is a zombie, and lost after. */
			int uid;
			char prog[64], esc[160];
			proc_ident(pid, st, &uid, prog, sizeof(prog));
			struct reaped r;
			reap(d, pid, st, &r);
			state_reaped(d, &r);
			if (r.readers || r.publishers) {
				d->crashes++;
				event(d, "crash",
				      "\"pid\":%d,\"uid\":%d,\"prog\":\"%s\",\"found\":\"%s\","
				      "\"readers_freed\":%u,\"publishers_freed\":%u,\"aborted\":%llu,"
				      "\"topics\":%u",
				      (int)pid, uid, json_str(esc, sizeof(esc), prog),
				      d->adopted ? "scan" : "at start", r.readers, r.publishers,
				      (unsigned long long)r.aborted, r.topics);
			}
		}
	}
	shmbus_seg_close(&seg);
	return 0;
}

static int adopt_topic(const char *name, void *arg)
{
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		topic_damaged(arg, name, g.addr, "adopt");
		return 0;
	}
	adopt_topic_(name, arg);
	guard_leave(&g);
	return 0;
}

void adopt(struct daemon *d)
{
	shmbus_topic_foreach(d->bus, adopt_topic, d);
	d->adopted = 1;
}

/* ---- lag alarms ---------------------------------------------------------------------- */

static int alarmed_index(struct daemon *d, const char *key)
{
	for (size_t i = 0; i < d->nalarmed; i++)
		if (!strcmp(d->alarmed[i], key))
			return (int)i;
	return -1;
}

/* A reader lost messages to overwrite since the last sweep: say how many. */
static void check_overflow(struct daemon *d, const char *topic, const shmbus_reader_info_t *r)
{
	char key[sizeof(d->lost->key)];
	snprintf(key, sizeof(key), "%s#%u#%d", topic, r->slot, (int)r->pid);
	struct lost_seen *ls = NULL;
	for (size_t i = 0; i < d->nlost && !ls; i++)
		if (!strcmp(d->lost[i].key, key))
			ls = &d->lost[i];
	if (!ls) {
		struct lost_seen *nn = realloc(d->lost, (d->nlost + 1) * sizeof(*nn));
		if (!nn)
			return;
		d->lost = nn;
		ls = &d->lost[d->nlost++];
		memset(ls, 0, sizeof(*ls));
		snprintf(ls->key, sizeof(ls->key), "%s", key);
	}
	ls->live = 1;
	if (r->lost <= ls->lost)
		return;
	char esc[2 * SHMBUS_TOPIC_NAME_MAX];
	event(d, "overflow",
	      "\"topic\":\"%s\",\"pid\":%d,\"slot\":%u,\"lost\":%llu,\"lost_total\":%llu",
	      json_str(esc, sizeof(esc), topic), r->pid, r->slot,
	      (unsigned long long)(r->lost - ls->lost), (unsigned long long)r->lost);
	ls->lost = r->lost;
}

static int lag_topic_(const char *name, void *arg)
{
	struct daemon *d = arg;
	if (!strncmp(name, "$sys.", 5))
		return 0;
	shmbus_topic_opts_t o;
	if (shmbus_topic_info(d->bus, name, &o) < 0)
		return 0;
	shmbus_reader_info_t ri[64];
	int n = shmbus_topic_readers(d->bus, name, ri, 64);
	for (int i = 0; i < n && i < 64; i++) {
		if (ri[i].lost)
			check_overflow(d, name, &ri[i]);
		if (ri[i].group[0])
			continue;
		char key[SHMBUS_TOPIC_NAME_MAX + 16];
		snprintf(key, sizeof(key), "%s#%u", name, ri[i].slot);
		int idx = alarmed_index(d, key);
		if (!d->cfg.lag_alarm_pct)
			continue;
		uint64_t limit = o.capacity / 100 * d->cfg.lag_alarm_pct;
		char esc[2 * SHMBUS_TOPIC_NAME_MAX];
		if (ri[i].lag_bytes >= limit && idx < 0) {
			void *nn = realloc(d->alarmed, (d->nalarmed + 1) * sizeof(*d->alarmed));
			if (!nn)
				continue;
			d->alarmed = nn;
			snprintf(d->alarmed[d->nalarmed++], sizeof(key), "%s", key);
			event(d, "lag_alarm",
			      "\"topic\":\"%s\",\"pid\":%d,\"slot\":%u,\"lag_bytes\":%llu,"
			      "\"lag_msgs\":%llu,\"capacity\":%llu,\"policy\":\"%s\"",
			      json_str(esc, sizeof(esc), name), ri[i].pid, ri[i].slot,
			      (unsigned long long)ri[i].lag_bytes,
			      (unsigned long long)ri[i].lag_msgs, (unsigned long long)o.capacity,
			      o.policy == SHMBUS_BLOCK ? "block" : "overwrite");
		} else if (ri[i].lag_bytes < limit / 2 && idx >= 0) {
			d->alarmed[idx][0] = '\0';
			memmove(d->alarmed[idx], d->alarmed[d->nalarmed - 1], sizeof(key));
			d->nalarmed--;
			event(d, "lag_cleared", "\"topic\":\"%s\",\"pid\":%d,\"slot\":%u",
			      json_str(esc, sizeof(esc), name), ri[i].pid, ri[i].slot);
		}
	}
	return 0;
}

static int lag_topic(const char *name, void *arg)
{
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		topic_damaged(arg, name, g.addr, "lag check");
		return 0;
	}
	lag_topic_(name, arg);
	guard_leave(&g);
	return 0;
}

void check_lag(struct daemon *d)
{
	for (size_t i = 0; i < d->nlost; i++)
		d->lost[i].live = 0;
	shmbus_topic_foreach(d->bus, lag_topic, d);
	/* Forget readers that are gone. */
	for (size_t i = 0; i < d->nlost;) {
		if (!d->lost[i].live)
			d->lost[i] = d->lost[--d->nlost];
		else
			i++;
	}
}
