/* SPDX-License-Identifier: MIT */
/*
 * Subscriber handles: a slot in the topic's reader table, maybe a group, and a reader on
 * its log (ring/reader.h, where reading, laps, overruns, sleeping and releasing are).
 * Here: opening (taking the slot, finding or creating the group, placing the reader),
 * closing, and the API around the reader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus/internal.h"
#include "bus/proto.h"
#include "ring/clock.h"
#include "ring/ack.h"
#include "ring/repair.h"
#include "ring/wake.h"
#include "shm/err.h"
#include "shm/proc.h"

/* ---- receiving --------------------------------------------------------------------------- */

static int fd_rearm(shmbus_sub_t *sb, shmbus_msg_t *msg);

SHMBUS_API int shmbus_recv(shmbus_sub_t *sb, shmbus_msg_t *msg, int timeout_ms)
{
	if (__builtin_expect(sb->rd.pending != 0, 0))
		return shmbus_ring_reader_pending(&sb->rd);
	shmbus_ring_reader_release(&sb->rd);
	if (shmbus_ring_reader_next_fast(&sb->rd, msg))
		return 0;
	int rc = shmbus_ring_reader_next(&sb->rd, msg, timeout_ms);
	if (__builtin_expect(rc == -EAGAIN && sb->w != NULL, 0))
		return fd_rearm(sb, msg);
	return rc;
}

/* ---- waiting on an fd (shmbus_sub_fd()) ---------------------------------------------------- */

/* Every fd wait is bounded, as every sleep of shmbus_recv() is (a wake-up lost to a damaged
 * wake word costs at most this); at a claim being written, the first look comes sooner. */
#define FD_BOUND_NS 100000000ull
#define FD_STUCK_NS 1000000ull

int shmbus_sub_arm(shmbus_sub_t *sb, uint32_t **word, uint32_t *val, uint32_t *mask, int *stuck)
{
	if (!shmbus_ring_reader_sleep_prepare(&sb->rd, word, val))
		return 0;
	*mask = sb->rd.grp ? SHMBUS_WAKE_SET_MEMBER : SHMBUS_WAKE_SET_ALL;
	*stuck = shmbus_ring_reader_stuck(&sb->rd);
	/* Stuck reads the tail, then the commit word again: a commit between those (whose
	 * publisher read the wake word before we armed it) makes neither "stuck" nor a
	 * wake. Looked at once more, it is there. */
	if (!*stuck && shmbus_ring_reader_ready(&sb->rd))
		return 0;
	return 1;
}

/* Tags: the futex wait 1, a no-op that makes the fd readable now 0. */
static void fd_done(void *arg, uint64_t tag, int res)
{
	(void)res;
	if (tag == 1)
		((shmbus_sub_t *)arg)->w_armed = 0;
}

/* Before arming: spin as a receive would before sleeping (the subscriber's spin, not on
 * crowded CPUs), so that a reader that keeps up with a steady stream in an event loop does
 * not arm, and make system calls, between every two messages. 1 if something came. */
int shmbus_fd_spin(struct shmbus_ring_reader *rd, uint64_t budget_ns)
{
	if (!budget_ns || (!rd->spin_fixed && shmbus_cpus_crowded()))
		return 0;
	uint64_t end = shmbus_now_ns() + budget_ns;
	for (unsigned n = 0;; n++) {
		if (shmbus_ring_reader_ready(rd))
			return 1;
		shmbus_pause();
		if ((n & 63) == 63 && shmbus_now_ns() >= end)
			return 0;
	}
}

/* Nothing to receive: make the fd readable at the next message (or now, with a no-op, if
 * one came meanwhile and msg is NULL); with msg, take one that came meanwhile instead. */
static int fd_rearm(shmbus_sub_t *sb, shmbus_msg_t *msg)
{
	struct shmbus_waiter *w = sb->w;
	if (msg && shmbus_fd_spin(&sb->rd, sb->rd.spin_cur)) {
		int rc = shmbus_ring_reader_next(&sb->rd, msg, 0);
		if (rc != -EAGAIN)
			return rc;
	}
	for (int tries = 0;; tries++) {
		shmbus_waiter_reap(w, fd_done, sb);
		uint32_t *word, val, mask;
		int stuck = 0;
		if (!shmbus_sub_arm(sb, &word, &val, &mask, &stuck)) {
			if (msg && tries >= 2) {
				/* There, yet not ours to take (an acknowledging member at its
				 * pending limit): look again in a while. */
				shmbus_waiter_timer(w, FD_STUCK_NS);
				int rc = shmbus_waiter_submit(w);
				return rc < 0 ? rc : -EAGAIN;
			}
			if (!msg) {
				struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
				if (sqe) {
					io_uring_prep_nop(sqe);
					io_uring_sqe_set_data64(sqe, 0);
					w->queued++;
				}
				shmbus_waiter_submit(w);
				return 0;
			}
			int rc = shmbus_ring_reader_next(&sb->rd, msg, 0);
			if (rc != -EAGAIN)
				return rc;
			continue;
		}
		if (!sb->w_armed && shmbus_waiter_futex(w, word, val, mask, 1) == 0)
			sb->w_armed = 1;
		shmbus_waiter_timer(w, stuck ? FD_STUCK_NS : FD_BOUND_NS);
		int rc = shmbus_waiter_submit(w);
		return rc < 0 ? rc : -EAGAIN;
	}
}

SHMBUS_API int shmbus_sub_fd(shmbus_sub_t *sb)
{
	if (sb->w)
		return shmbus_waiter_fd(sb->w);
	struct shmbus_waiter *w = malloc(sizeof(*w));
	if (!w)
		return shmbus_err(-ENOMEM, "out of memory");
	int rc = shmbus_waiter_init(w, 8);
	if (rc < 0) {
		free(w);
		return rc;
	}
	sb->w = w;
	sb->w_armed = 0;
	rc = fd_rearm(sb, NULL);
	if (rc < 0 && rc != -EAGAIN) {
		shmbus_waiter_fini(w);
		free(w);
		sb->w = NULL;
		return shmbus_err(rc, "arming the subscriber's fd: %s", strerror(-rc));
	}
	return shmbus_waiter_fd(w);
}

SHMBUS_API int shmbus_recv_batch(shmbus_sub_t *sb, shmbus_msg_t *msgs, unsigned max, int timeout_ms)
{
	if (!msgs || !max)
		return -EINVAL;
	int rc = shmbus_recv(sb, &msgs[0], timeout_ms);
	if (rc < 0)
		return rc;
	unsigned n = 1;
	while (n < max && shmbus_ring_reader_more(&sb->rd, &msgs[n]))
		n++;
	return (int)n;
}

SHMBUS_API int shmbus_release(shmbus_sub_t *sb, shmbus_msg_t *msg)
{
	struct shmbus_ring_reader *rd = &sb->rd;
	if (!msg || rd->consumed == 0 || (rd->held != SHMBUS_NOPOS && msg->_pos != rd->held))
		return -EINVAL;
	shmbus_ring_reader_release(rd);
	return 0;
}

SHMBUS_API int shmbus_sub_set_spin(shmbus_sub_t *sb, unsigned spin_us)
{
	shmbus_ring_reader_set_spin(&sb->rd, (uint64_t)spin_us * 1000ull, 1);
	return 0;
}

/* ---- opening ------------------------------------------------------------------------ */

/* The group-creation lock (a pid; a dead holder's lock is taken over). */
static int group_lock(struct shmbus_seg *s)
{
	uint32_t *l = &s->rt->group_lock;
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
			return shmbus_err(-EBUSY,
					  "topic '%s': group table locked by pid %u for "
					  "2 s",
					  s->name, v);
		usleep(50);
	}
}

static int find_group(struct shmbus_seg *s, const char *name)
{
	uint32_t n = sb_ld_acquire(&s->rt->groups_hwm);
	if (n > s->opts.max_groups)
		n = s->opts.max_groups;
	for (uint32_t g = 0; g < n; g++)
		if (sb_ld_acquire(&s->groups[g].state) == SHMBUS_GROUP_ACTIVE &&
		    strncmp(s->groups[g].name, name, sizeof(s->groups[g].name)) == 0)
			return (int)g;
	return -1;
}

static int open_group(struct shmbus_seg *s, const char *name, int earliest,
		      const shmbus_group_opts_t *gopts)
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
		sb_ld_pair_ro(s->hdr->tail, t);
		uint64_t c[2] = { t[0], shmbus_cword(t[1], 0) };
		if (earliest) {
			c[0] = t[0] >= s->cap ? shmbus_lap_resume(s, t[0]) : 0;
			c[1] = c[0] == 0 ? 0 : SHMBUS_CSEQ_NONE;
		}
		uint64_t cur[2];
		sb_ld_pair(gs->cursor, cur);
		while (!sb_cas_pair(gs->cursor, cur, c))
			;
		sb_st_relaxed(&gs->lost, 0);
		sb_st_relaxed(&gs->abandoned, 0);
		sb_st_relaxed(&gs->lease_ns, 0);
		shmbus_group_opts_store(gs, gopts, s->name);
		sb_max_u32(&s->rt->groups_hwm, i + 1);
		/* Seq_cst: the cursor and name are set before anyone sees the group. */
		sb_st_seqcst(&gs->state, SHMBUS_GROUP_ACTIVE);
		g = (int)i;
		break;
	}
out:
	sb_st_release(&s->rt->group_lock, 0);
	return g >= 0 ? g : rc;
}

enum sub_kind { SUB_PLAIN, SUB_DURABLE, SUB_OBSERVER };

static const char *const dead_reasons[] = { "nack", "nack", "timeout", "crash" };

/* A "dead_letter" event on $sys.log, best effort (where the bus has one we may write). */
static void dead_event(struct shmbus_sub *sb, const shmbus_dead_letter_t *h, const char *to)
{
	if (!sb->log_pub && !sb->log_tried) {
		sb->log_tried = 1;
		if (shmbus_pub_open(&sb->log_pub, sb->bus, "$sys.log") < 0)
			sb->log_pub = NULL;
	}
	if (!sb->log_pub)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40], line[600];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	/* Names are topic tokens: nothing in them needs escaping in JSON. */
	int n = snprintf(line, sizeof(line),
			 "{\"ts\":\"%s.%06ldZ\",\"event\":\"dead_letter\",\"topic\":\"%s\","
			 "\"group\":\"%s\",\"seq\":%llu,\"deliveries\":%u,\"reason\":\"%s\","
			 "\"dead_letter\":\"%s\",\"pid\":%d}",
			 when, ts.tv_nsec / 1000, h->topic, h->group, (unsigned long long)h->seq,
			 h->deliveries, dead_reasons[h->reason & 3], to, (int)getpid());
	if (n > 0 && (size_t)n < sizeof(line))
		shmbus_publish_timeout(sb->log_pub, line, (size_t)n, 1, 0);
}

/* Publish a message given up on to the group's dead-letter topic (made if missing, with
 * the defaults). 0, or < 0 to try again later (the entry stays ready). */
static int sub_dead(void *arg, const shmbus_dead_letter_t *h, const void *data, uint32_t len,
		    uint32_t type)
{
	struct shmbus_sub *sb = arg;
	char to[SHMBUS_TOPIC_NAME_MAX + 1];
	snprintf(to, sizeof(to), "%.*s", (int)sizeof(sb->rd.grp->dead_letter) - 1,
		 sb->rd.grp->dead_letter);
	if (!sb->dead_pub) {
		/* Room for any message of the topic and its header: twice its capacity. */
		const struct shmbus_seg *s = &sb->rd.seg;
		shmbus_topic_opts_t o;
		shmbus_topic_opts_init(&o);
		o.capacity = s->cap < (1ull << 39) ? s->cap * 2 : s->cap;
		if (o.capacity < (1u << 20))
			o.capacity = 1u << 20;
		/* (The topic's max_message <= capacity/2 - 64, so this fits half of twice it.) */
		o.max_message = s->opts.max_message + (uint32_t)sizeof(*h);
		if (o.max_message < o.capacity / 8 && o.capacity / 8 <= (1u << 30))
			o.max_message = (uint32_t)(o.capacity / 8);
		int rc = shmbus_topic_create(sb->bus, to, &o);
		if (rc < 0 && rc != -EEXIST)
			return rc;
		rc = shmbus_pub_open(&sb->dead_pub, sb->bus, to);
		if (rc < 0) {
			sb->dead_pub = NULL;
			return rc;
		}
	}
	void *buf;
	int rc = shmbus_reserve(sb->dead_pub, sizeof(*h) + len, &buf);
	if (rc < 0)
		return rc; /* -EMSGSIZE: it never fits (the topic was made by someone else) */
	memcpy(buf, h, sizeof(*h));
	memcpy((char *)buf + sizeof(*h), data, len);
	rc = shmbus_commit_type(sb->dead_pub, type);
	if (rc < 0)
		return rc;
	dead_event(sb, h, to);
	return 0;
}

/* The other live members of group g besides our own slot; dead ones are freed. */
static int other_members(struct shmbus_sub *sb, uint32_t g, int32_t *pid)
{
	struct shmbus_seg *s = &sb->rd.seg;
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

/* Stop reading and give the slot back: block-mode publishers held back by it may go on. */
static void sub_stop(struct shmbus_sub *sb)
{
	struct shmbus_seg *s = &sb->rd.seg;
	shmbus_ring_ack_leave(&sb->rd);
	shmbus_ring_reader_fini(&sb->rd);
	shmbus_slot_put(s, SHMBUS_TABLE_READERS, sb->slot_idx);
	if (s->opts.policy == SHMBUS_BLOCK)
		shmbus_ring_wake_publishers(s);
}

static int sub_open(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic, const char *group,
		    int flags, enum sub_kind kind, const shmbus_group_opts_t *gopts)
{
	*out = NULL;
	if (group) {
		int rc = shmbus_token_check("group name", group, SHMBUS_GROUP_NAME_MAX);
		if (rc < 0)
			return rc;
	}
	if (flags & ~(SHMBUS_SUB_EARLIEST | SHMBUS_SUB_ACK))
		return shmbus_err(-EINVAL, "unknown subscriber flags 0x%x", flags);
	if ((flags & SHMBUS_SUB_ACK) && (!group || kind != SUB_PLAIN))
		return shmbus_err(-EINVAL, "SHMBUS_SUB_ACK is for a group member");
	shmbus_group_opts_t dflt;
	shmbus_group_opts_init(&dflt);
	if (!gopts)
		gopts = &dflt;
	struct shmbus_sub *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return shmbus_err(-ENOMEM, "out of memory");
	struct shmbus_ring_reader *rd = &sb->rd;
	struct shmbus_seg *s = &rd->seg;
	int rc = shmbus_topic_open_role(bus, topic, s, SHMBUS_ROLE_SUB);
	if (rc < 0) {
		free(sb);
		return rc;
	}
	rc = shmbus_ring_reader_init(rd);
	if (rc < 0) {
		rc = shmbus_err(rc, "out of memory for a %u-byte copy buffer", s->opts.max_message);
		goto fail;
	}
	rc = shmbus_slot_take(s, SHMBUS_TABLE_READERS);
	if (rc < 0)
		goto fail;
	sb->slot_idx = (uint32_t)rc;
	rd->slot = &s->readers[rc];
	int earliest = flags & SHMBUS_SUB_EARLIEST;
	if (group) {
		rc = shmbus_group_opts_check(gopts, s);
		if (rc == 0 && gopts->dead_letter && *gopts->dead_letter)
			rc = shmbus_topic_name_check(gopts->dead_letter, 0);
		if (rc < 0)
			goto fail_slot;
		int g = open_group(s, group, earliest, gopts);
		if (g < 0) {
			rc = g;
			goto fail_slot;
		}
		shmbus_ring_reader_join_group(rd, (uint32_t)g);
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
			shmbus_ring_reader_make_durable(rd);
		}
		if (flags & SHMBUS_SUB_ACK) {
			if (shmbus_ring_ack_join(rd, sb->slot_idx) < 0) {
				rc = shmbus_err(-ENOMEM, "out of memory");
				goto fail_slot;
			}
			sb->bus = bus;
			rd->dead = sub_dead;
			rd->dead_arg = sb;
		}
	} else {
		shmbus_ring_reader_join(rd, earliest, kind == SUB_OBSERVER);
	}
	/* Release, after the join's stores: who counts this reader (a publisher waiting for
	 * N readers) can rely on it receiving what is published from then on. */
	sb_st_release(&rd->slot->flags, SHMBUS_RSLOT_JOINED | (rd->ack ? SHMBUS_RSLOT_ACK : 0));
	*out = sb;
	return 0;
fail_slot:
	sub_stop(sb);
	goto out;
fail:
	shmbus_ring_reader_fini(rd);
out:
	shmbus_seg_close(s);
	free(sb);
	return rc;
}

SHMBUS_API void shmbus_sub_close(shmbus_sub_t *sb)
{
	if (!sb)
		return;
	sub_stop(sb);
	if (sb->w) {
		shmbus_waiter_fini(sb->w);
		free(sb->w);
	}
	shmbus_pub_close(sb->dead_pub);
	shmbus_pub_close(sb->log_pub);
	shmbus_seg_close(&sb->rd.seg);
	free(sb);
}

SHMBUS_API int shmbus_sub_open(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic,
			       const char *group, int flags)
{
	return sub_open(out, bus, topic, group, flags, SUB_PLAIN, NULL);
}

SHMBUS_API int shmbus_sub_open_group(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic,
				     const char *group, int flags, const shmbus_group_opts_t *opts)
{
	if (!group) {
		*out = NULL;
		return shmbus_err(-EINVAL, "shmbus_sub_open_group needs a group name");
	}
	return sub_open(out, bus, topic, group, flags, SUB_PLAIN, opts);
}

SHMBUS_API int shmbus_ack(shmbus_sub_t *sb, const shmbus_msg_t *msg)
{
	if (!sb->rd.ack)
		return -EINVAL;
	return shmbus_ring_ack(&sb->rd, msg);
}

SHMBUS_API int shmbus_nack(shmbus_sub_t *sb, const shmbus_msg_t *msg, uint32_t delay_ms)
{
	if (!sb->rd.ack)
		return -EINVAL;
	return shmbus_ring_nack(&sb->rd, msg, delay_ms);
}

/* ---- in-tree users (bus/intree.h) --------------------------------------------------------- */

int shmbus_sub_open_durable(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic,
			    const char *group, int flags)
{
	if (!group) {
		*out = NULL;
		return shmbus_err(-EINVAL, "a durable reader needs a group name");
	}
	return sub_open(out, bus, topic, group, flags, SUB_DURABLE, NULL);
}

int shmbus_sub_open_observer(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic, int flags)
{
	return sub_open(out, bus, topic, NULL, flags, SUB_OBSERVER, NULL);
}

int shmbus_sub_commit(shmbus_sub_t *sb, uint64_t pos, uint64_t seq)
{
	return shmbus_ring_reader_commit(&sb->rd, pos, seq);
}

void shmbus_sub_lease(shmbus_sub_t *sb, uint64_t ms)
{
	shmbus_ring_reader_lease(&sb->rd, ms);
}

void shmbus_sub_rewind(shmbus_sub_t *sb)
{
	shmbus_ring_reader_rewind(&sb->rd);
}

int shmbus_sub_ready(shmbus_sub_t *sb)
{
	return shmbus_ring_reader_ready(&sb->rd);
}

int shmbus_sub_stuck(shmbus_sub_t *sb)
{
	return shmbus_ring_reader_stuck(&sb->rd);
}

uint64_t shmbus_msg_end(const shmbus_msg_t *m)
{
	return m->_pos + shmbus_rec_stride(m->len);
}

int shmbus_sub_sleep_prepare(shmbus_sub_t *sb, uint32_t **word, uint32_t *expected)
{
	return shmbus_ring_reader_sleep_prepare(&sb->rd, word, expected);
}

uint64_t shmbus_sub_generation(const shmbus_sub_t *sb)
{
	return sb->rd.seg.generation;
}

uint64_t shmbus_sub_created_ns(const shmbus_sub_t *sb)
{
	return sb->rd.seg.hdr->created_ns;
}

uint64_t shmbus_sub_tail_seq(const shmbus_sub_t *sb)
{
	return shmbus_ring_reader_tail_seq(&sb->rd);
}

int shmbus_sub_cursor_seq(const shmbus_sub_t *sb, uint64_t *seq)
{
	return shmbus_ring_reader_cursor_seq(&sb->rd, seq);
}

struct shmbus_ring_reader *shmbus_sub_ring_reader(shmbus_sub_t *sb)
{
	return &sb->rd;
}
