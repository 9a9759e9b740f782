/* SPDX-License-Identifier: MIT */
/*
 * Sinks: one reader over many topics (include/shmbus.h, docs/sinks.md). A sink is a set of
 * patterns and a reader (a subscriber, bus/sub.c) per topic they match, read round-robin;
 * it finds topics created or removed later through inotify on the bus directory, or, on a
 * brokered bus (no topic files), through the daemon's $sys.log events; it sleeps, or makes
 * its fd readable, through one io_uring (bus/waiter.h) holding a futex wait per topic wake
 * word, queued only when every topic was found empty after its word was armed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "bus/internal.h"
#include "ring/clock.h"
#include "ring/wake.h"
#include "shm/err.h"

#define BURST 16	      /* messages in a row from one topic while others have some */
#define BOUND_NS 100000000ull /* every sleep is bounded (a wake-up lost to damage) */
#define STUCK_NS 1000000ull
#define SPIN_NS \
	20000ull /* as a subscriber's receive spins at most before sleeping */ /* a claim being written: look again this soon */
#define TAG_INOTIFY (UINT64_MAX - 2) /* the waiter's tag of the inotify poll */
#define TAG_NOP (UINT64_MAX - 3)     /* of a no-op that makes the fd readable now */

struct member {
	shmbus_sub_t *sub; /* NULL: a free entry */
	uint32_t gen;	   /* renewed at each use: a stale completion or ack names another */
	int armed;	   /* a futex wait is queued for it */
	int log;	   /* the $sys.log reader of a brokered bus (topic events, not messages) */
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
};

struct shmbus_sink {
	shmbus_bus_t *bus;
	/* Held where the readers change (m reallocated, a reader closed) and by an ack, which
	 * may run in another thread while a receive is in progress (include/shmbus.h). */
	pthread_mutex_t lock;
	char group[SHMBUS_GROUP_NAME_MAX + 1]; /* "" for fan-out */
	int flags;
	shmbus_group_opts_t gopts;
	char dead_letter[SHMBUS_TOPIC_NAME_MAX + 1];
	int has_dead_letter;
	char (*pats)[SHMBUS_TOPIC_NAME_MAX + 1];
	unsigned npats, cappats;
	struct member *m;
	unsigned nm; /* entries in m (used or free) */
	unsigned rr, burst;
	int cur; /* the member whose message was returned last, or -1 */
	shmbus_filter_fn filter;
	void *farg;
	struct shmbus_waiter w;
	int w_up;
	int fd_out;	  /* the fd was handed out: keep it armed between receives */
	int ino;	  /* inotify on the bus directory, or -1 */
	int ino_armed;	  /* its poll is queued */
	int ino_ready;	  /* its poll completed: events to read */
	int log_idx;	  /* the $sys.log member of a brokered bus, or -1 */
	int rescan;	  /* list the bus again (inotify overflowed) */
	int woken_stuck;  /* a timer fired: repair claims left by dead publishers */
	unsigned changes; /* topics joined or left */
};

static uint64_t tag_of(const struct shmbus_sink *k, unsigned i)
{
	return (uint64_t)k->m[i].gen << 32 | i;
}

/* ---- members ------------------------------------------------------------------------------ */

static int member_find(const struct shmbus_sink *k, const char *name)
{
	for (unsigned i = 0; i < k->nm; i++)
		if (k->m[i].sub && !k->m[i].log && !strcmp(k->m[i].name, name))
			return (int)i;
	return -1;
}

/* Is name one to read: some pattern matches it (an acknowledging sink's wildcards skip
 * dead-letter topics, "<topic>.dead", which would feed its own dead letters back)? */
static int wanted(const struct shmbus_sink *k, const char *name)
{
	size_t n = strlen(name);
	int dead = n > 5 && !strcmp(name + n - 5, ".dead");
	for (unsigned i = 0; i < k->npats; i++) {
		const char *p = k->pats[i];
		if (!strcmp(p, name))
			return 1;
		if ((k->flags & SHMBUS_SUB_ACK) && dead)
			continue;
		if (shmbus_pattern_wild(p) && shmbus_pattern_match(p, name))
			return 1;
	}
	return 0;
}

static int member_slot(struct shmbus_sink *k)
{
	for (unsigned i = 0; i < k->nm; i++)
		if (!k->m[i].sub)
			return (int)i;
	struct member *m = realloc(k->m, (k->nm + 1) * sizeof(*m));
	if (!m)
		return -ENOMEM;
	k->m = m;
	memset(&m[k->nm], 0, sizeof(*m));
	return (int)k->nm++;
}

/* A reader of topic name: the $sys.log's (log), or one of the sink's; new: the topic was
 * created after the sink began to look for it, so it is read from its first message. */
static int open_reader(struct shmbus_sink *k, const char *name, int log, int new,
		       shmbus_sub_t **out)
{
	if (log)
		return shmbus_sub_open(out, k->bus, name, NULL, 0);
	int flags = k->flags | (new ? SHMBUS_SUB_EARLIEST : 0);
	if (!k->group[0])
		return shmbus_sub_open(out, k->bus, name, NULL, flags);
	shmbus_group_opts_t o = k->gopts;
	if (k->has_dead_letter)
		o.dead_letter = k->dead_letter;
	return shmbus_sub_open_group(out, k->bus, name, k->group, flags, &o);
}

/* Read topic name (not read yet). 1 joined, 0 gone meanwhile, < 0 an error (message set). */
static int member_add(struct shmbus_sink *k, const char *name, int log, int new)
{
	shmbus_sub_t *sub;
	int rc = open_reader(k, name, log, new, &sub);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&k->lock);
	int i = member_slot(k);
	if (i < 0) {
		pthread_mutex_unlock(&k->lock);
		shmbus_sub_close(sub);
		return shmbus_err(-ENOMEM, "out of memory");
	}
	struct member *m = &k->m[i];
	m->sub = sub;
	m->gen++;
	m->armed = 0;
	m->log = log;
	snprintf(m->name, sizeof(m->name), "%s", name);
	k->changes++;
	pthread_mutex_unlock(&k->lock);
	return 1;
}

static void member_drop(struct shmbus_sink *k, unsigned i)
{
	struct member *m = &k->m[i];
	if (m->armed && k->w_up)
		shmbus_waiter_cancel(&k->w, tag_of(k, i));
	pthread_mutex_lock(&k->lock);
	shmbus_sub_close(m->sub);
	m->sub = NULL;
	m->armed = 0;
	m->gen++;
	k->changes++;
	pthread_mutex_unlock(&k->lock);
	if (k->cur == (int)i)
		k->cur = -1;
}

/* ---- finding topics ------------------------------------------------------------------------- */

struct join_arg {
	struct shmbus_sink *k;
	const char *pattern; /* count the topics it matches, or NULL */
	int n;
	int err; /* the first error opening one */
};

static int join_one(const char *name, void *arg)
{
	struct join_arg *a = arg;
	struct shmbus_sink *k = a->k;
	if (!wanted(k, name))
		return 0;
	int here = member_find(k, name) >= 0;
	if (!here) {
		int rc = member_add(k, name, 0, a->pattern == NULL);
		if (rc < 0) {
			if (!a->err)
				a->err = rc;
			return 0;
		}
		here = rc;
	}
	if (here && a->pattern &&
	    (!strcmp(a->pattern, name) ||
	     (shmbus_pattern_wild(a->pattern) && shmbus_pattern_match(a->pattern, name))))
		a->n++;
	return 0;
}

/* List the bus and join what the patterns match (what is left is left by the events). */
static int join_all(struct shmbus_sink *k, const char *pattern, int *err)
{
	struct join_arg a = { k, pattern, 0, 0 };
	int rc = shmbus_topic_foreach(k->bus, join_one, &a);
	*err = a.err;
	return rc < 0 ? rc : a.n;
}

/* A topic file came or went (file mode: inotify on the bus directory). */
static void topic_event(struct shmbus_sink *k, const char *name, int created)
{
	int i = member_find(k, name);
	if (i >= 0) {
		/* Gone, or made again (another file): leave what we read. */
		if (!created ||
		    shmbus_topic_generation(k->bus, name) != shmbus_sub_generation(k->m[i].sub))
			member_drop(k, (unsigned)i);
		else
			return;
	}
	if (created && wanted(k, name))
		member_add(k, name, 0, 1);
}

static void inotify_read(struct shmbus_sink *k)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(k->ino, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (ssize_t off = 0; off + (ssize_t)sizeof(struct inotify_event) <= n;) {
			const struct inotify_event *ev = (const void *)(buf + off);
			off += (ssize_t)sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				k->rescan = 1;
				continue;
			}
			size_t len = ev->len ? strlen(ev->name) : 0;
			if (len <= 6 || ev->name[0] == '.' || strcmp(ev->name + len - 6, ".topic"))
				continue;
			char name[SHMBUS_TOPIC_NAME_MAX + 1];
			if (len - 6 > SHMBUS_TOPIC_NAME_MAX)
				continue;
			memcpy(name, ev->name, len - 6);
			name[len - 6] = 0;
			topic_event(k, name, !!(ev->mask & (IN_CREATE | IN_MOVED_TO)));
		}
	}
}

/* A brokered bus: the daemon's "topic_created" / "topic_removed" events. */
static void log_read(struct shmbus_sink *k)
{
	shmbus_sub_t *sub = k->m[k->log_idx].sub;
	shmbus_msg_t msg;
	while (shmbus_recv(sub, &msg, 0) == 0) {
		const char *d = msg.data;
		size_t n = msg.len;
		char text[512];
		if (n >= sizeof(text))
			continue;
		memcpy(text, d, n);
		text[n] = 0;
		int created = strstr(text, "\"event\":\"topic_created\"") != NULL;
		if (!created && !strstr(text, "\"event\":\"topic_removed\""))
			continue;
		const char *t = strstr(text, "\"topic\":\"");
		if (!t)
			continue;
		t += 9;
		size_t l = strcspn(t, "\"");
		if (!l || l > SHMBUS_TOPIC_NAME_MAX)
			continue;
		char name[SHMBUS_TOPIC_NAME_MAX + 1];
		memcpy(name, t, l);
		name[l] = 0;
		int i = member_find(k, name);
		if (!created && i >= 0)
			member_drop(k, (unsigned)i);
		else if (created && i < 0 && wanted(k, name))
			member_add(k, name, 0, 1);
	}
}

/* ---- waiting -------------------------------------------------------------------------------- */

static void woken(void *arg, uint64_t tag, int res)
{
	struct shmbus_sink *k = arg;
	if (tag == TAG_INOTIFY) {
		k->ino_armed = 0;
		k->ino_ready = 1;
		return;
	}
	if (tag == TAG_NOP)
		return;
	unsigned i = (uint32_t)tag;
	if (i < k->nm && k->m[i].sub && k->m[i].gen == (uint32_t)(tag >> 32))
		k->m[i].armed = 0;
	(void)res; /* woken, changed, cancelled or the page gone: all mean "look" */
}

/* Take what the waiter has, then what it told of: topic events, timers. */
/* Returns how many completions it took. */
static int events(struct shmbus_sink *k)
{
	int n = 0;
	if (k->w_up) {
		int timers = k->w.timers;
		n = shmbus_waiter_reap(&k->w, woken, k);
		if (k->w.timers < timers)
			k->woken_stuck = 1;
	}
	if (k->ino >= 0 && (k->ino_ready || !k->w_up)) {
		k->ino_ready = 0;
		inotify_read(k);
	}
	if (k->log_idx >= 0)
		log_read(k);
	if (k->rescan) {
		k->rescan = 0;
		int err;
		join_all(k, NULL, &err);
		for (unsigned i = 0; i < k->nm; i++)
			if (k->m[i].sub && !k->m[i].log &&
			    (!wanted(k, k->m[i].name) ||
			     shmbus_topic_generation(k->bus, k->m[i].name) !=
				     shmbus_sub_generation(k->m[i].sub)))
				member_drop(k, i);
	}
	return n;
}

/*
 * Arm every topic's wake word and look again (the reader's half of the handshake, per
 * topic); queue a futex wait for each not queued yet, the inotify poll, a timer. 0: armed,
 * submitted; 1: something is there now (nothing to wait for).
 */
static int arm_all(struct shmbus_sink *k)
{
	int stuck = 0;
	for (unsigned i = 0; i < k->nm; i++) {
		struct member *m = &k->m[i];
		if (!m->sub)
			continue;
		uint32_t *word, val, mask;
		int st = 0;
		if (!shmbus_sub_arm(m->sub, &word, &val, &mask, &st))
			return 1;
		stuck |= st;
		if (!m->armed && k->w_up &&
		    shmbus_waiter_futex(&k->w, word, val, mask, tag_of(k, i)) == 0)
			m->armed = 1;
	}
	if (!k->w_up)
		return 0;
	if (k->ino >= 0 && !k->ino_armed && shmbus_waiter_poll(&k->w, k->ino, TAG_INOTIFY) == 0)
		k->ino_armed = 1;
	shmbus_waiter_timer(&k->w, stuck ? STUCK_NS : BOUND_NS);
	shmbus_waiter_submit(&k->w);
	return 0;
}

/* ---- receiving ------------------------------------------------------------------------------ */

static void release_cur(struct shmbus_sink *k)
{
	if (k->cur >= 0 && k->m[k->cur].sub)
		shmbus_ring_reader_release(&k->m[k->cur].sub->rd);
	k->cur = -1;
}

/* One pass over the topics from the round-robin point: 0 and a message, -EAGAIN, or an
 * error of a topic's reader (-EBADMSG: damage met, the reader resynchronised). */
static int take(struct shmbus_sink *k, shmbus_msg_t *msg, int repair)
{
	unsigned n = k->nm;
	for (unsigned j = 0; j < n; j++) {
		unsigned i = (k->rr + j) % n;
		struct member *m = &k->m[i];
		if (!m->sub || m->log)
			continue;
		/* A cheap look first; an acknowledging reader always asks (redeliveries), and
		 * after a timer one at a claim being written (repaired if its writer died). */
		if (!(k->flags & SHMBUS_SUB_ACK) && !shmbus_sub_ready(m->sub) &&
		    !(repair && shmbus_sub_stuck(m->sub)))
			continue;
		if (k->cur >= 0 && k->cur != (int)i)
			release_cur(k);
		int rc = shmbus_recv(m->sub, msg, 0);
		if (rc == -EAGAIN)
			continue;
		if (rc < 0)
			return rc;
		k->cur = (int)i;
		if (i == k->rr) {
			if (++k->burst >= BURST) {
				k->rr = (i + 1) % n;
				k->burst = 0;
			}
		} else {
			k->rr = i;
			k->burst = 1;
		}
		msg->_src = tag_of(k, i);
		if (k->filter && !k->filter(k->farg, msg->topic, msg->type, msg->data, msg->len)) {
			/* Rejected: consumed. */
			if (m->sub->rd.ack)
				shmbus_ack(m->sub, msg);
			release_cur(k);
			j = (unsigned)-1; /* look again from the round-robin point */
			continue;
		}
		return 0;
	}
	return -EAGAIN;
}

/* Before arming: spin as a subscriber's receive does before it sleeps (SPIN_NS, not on
 * crowded CPUs), looking at every topic, so that a sink that keeps up with steady streams
 * does not arm, and make system calls, between every two messages. 1 if one has some. */
static int spin(struct shmbus_sink *k)
{
	if (shmbus_cpus_crowded())
		return 0;
	uint64_t end = shmbus_now_ns() + SPIN_NS;
	for (unsigned n = 0;; n++) {
		for (unsigned i = 0; i < k->nm; i++)
			if (k->m[i].sub && !k->m[i].log && shmbus_sub_ready(k->m[i].sub))
				return 1;
		shmbus_pause();
		if ((n & 15) == 15 && shmbus_now_ns() >= end)
			return 0;
	}
}

SHMBUS_API int shmbus_sink_recv(shmbus_sink_t *k, shmbus_msg_t *msg, int timeout_ms)
{
	release_cur(k);
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX : 0;
	int spun = 0;
	for (;;) {
		events(k);
		int repair = k->woken_stuck;
		k->woken_stuck = 0;
		int rc = take(k, msg, repair);
		if (rc != -EAGAIN)
			return rc;
		if (!spun++ && spin(k))
			continue;
		if (arm_all(k))
			continue;
		/* What the arming's submit completed at once (an inotify poll of events
		 * waiting, a wake that came meanwhile): taken here, it would no longer make
		 * the fd readable, and its topic would have no wait queued; so look, and
		 * arm, again. Only an empty completion ring ends a receive with -EAGAIN. */
		if (events(k))
			continue;
		if (timeout_ms == 0)
			return -EAGAIN;
		uint64_t now = shmbus_now_ns();
		if (!deadline)
			deadline = now + (uint64_t)timeout_ms * 1000000ull;
		if (now >= deadline)
			return -EAGAIN;
		int64_t nap = deadline == UINT64_MAX ? -1 : (int64_t)(deadline - now);
		if (!k->w_up) {
			/* No io_uring here: look every millisecond. */
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
			k->woken_stuck = 1;
			continue;
		}
		rc = shmbus_waiter_wait(&k->w, nap);
		if (rc == -EINTR)
			return -EINTR;
	}
}

SHMBUS_API int shmbus_sink_release(shmbus_sink_t *k, shmbus_msg_t *msg)
{
	if (!msg || k->cur < 0 || msg->_src != tag_of(k, (unsigned)k->cur))
		return -EINVAL;
	release_cur(k);
	return 0;
}

static struct member *of_msg(shmbus_sink_t *k, const shmbus_msg_t *msg)
{
	unsigned i = (uint32_t)msg->_src;
	if (i >= k->nm || !k->m[i].sub || k->m[i].gen != (uint32_t)(msg->_src >> 32))
		return NULL;
	return &k->m[i];
}

SHMBUS_API int shmbus_sink_ack(shmbus_sink_t *k, const shmbus_msg_t *msg)
{
	if (!(k->flags & SHMBUS_SUB_ACK))
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	struct member *m = of_msg(k, msg);
	int rc = m ? shmbus_ack(m->sub, msg) : -ESTALE;
	pthread_mutex_unlock(&k->lock);
	return rc;
}

SHMBUS_API int shmbus_sink_nack(shmbus_sink_t *k, const shmbus_msg_t *msg, uint32_t delay_ms)
{
	if (!(k->flags & SHMBUS_SUB_ACK))
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	struct member *m = of_msg(k, msg);
	int rc = m ? shmbus_nack(m->sub, msg, delay_ms) : -ESTALE;
	pthread_mutex_unlock(&k->lock);
	return rc;
}

/* The fd handed out: armed now, or readable now if a receive would find something. */
static void kick(struct shmbus_sink *k)
{
	if (!k->fd_out || !k->w_up)
		return;
	events(k);
	if (arm_all(k)) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&k->w.ring);
		if (sqe) {
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, TAG_NOP);
			k->w.queued++;
		}
		shmbus_waiter_submit(&k->w);
	}
}

SHMBUS_API int shmbus_sink_fd(shmbus_sink_t *k)
{
	if (!k->w_up)
		return shmbus_err(-ENOSYS, "sink: %s", shmbus_errmsg());
	k->fd_out = 1;
	kick(k);
	return shmbus_waiter_fd(&k->w);
}

/* ---- patterns ------------------------------------------------------------------------------ */

SHMBUS_API int shmbus_sink_add(shmbus_sink_t *k, const char *p)
{
	int rc = shmbus_pattern_check(p);
	if (rc < 0)
		return rc;
	if (!shmbus_pattern_wild(p) && (rc = shmbus_topic_name_check(p, 1)) < 0)
		return rc;
	for (unsigned i = 0; i < k->npats; i++)
		if (!strcmp(k->pats[i], p))
			return shmbus_err(-EEXIST, "sink: '%s' is added already", p);
	if (k->npats == k->cappats) {
		unsigned cap = k->cappats ? 2 * k->cappats : 8;
		void *n = realloc(k->pats, cap * sizeof(*k->pats));
		if (!n)
			return shmbus_err(-ENOMEM, "out of memory");
		k->pats = n;
		k->cappats = cap;
	}
	snprintf(k->pats[k->npats++], sizeof(k->pats[0]), "%s", p);
	int err = 0;
	rc = join_all(k, p, &err);
	kick(k);
	if (rc < 0)
		return rc;
	return err ? err : rc;
}

SHMBUS_API int shmbus_sink_remove(shmbus_sink_t *k, const char *p)
{
	unsigned i;
	for (i = 0; i < k->npats; i++)
		if (!strcmp(k->pats[i], p))
			break;
	if (i == k->npats)
		return shmbus_err(-ENOENT, "sink: '%s' was not added", p ? p : "(null)");
	memmove(&k->pats[i], &k->pats[i + 1], (k->npats - i - 1) * sizeof(k->pats[0]));
	k->npats--;
	for (unsigned j = 0; j < k->nm; j++)
		if (k->m[j].sub && !k->m[j].log && !wanted(k, k->m[j].name))
			member_drop(k, j);
	if (k->w_up)
		shmbus_waiter_submit(&k->w);
	return 0;
}

SHMBUS_API void shmbus_sink_set_filter(shmbus_sink_t *k, shmbus_filter_fn fn, void *arg)
{
	k->filter = fn;
	k->farg = arg;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

SHMBUS_API int shmbus_sink_topics(shmbus_sink_t *k, char (*names)[SHMBUS_TOPIC_NAME_MAX + 1],
				  unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < k->nm; i++) {
		if (!k->m[i].sub || k->m[i].log)
			continue;
		if (n < max)
			memcpy(names[n], k->m[i].name, sizeof(names[0]));
		n++;
	}
	if (names && max)
		qsort(names, n < max ? n : max, sizeof(names[0]), name_cmp);
	return (int)n;
}

/* ---- opening -------------------------------------------------------------------------------- */

/* Topic events: inotify on the bus directory (file mode), else the daemon's log. */
static int watch(struct shmbus_sink *k)
{
	if (!shmbus_bus_brokered(k->bus)) {
		k->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (k->ino < 0)
			return shmbus_err(-errno, "inotify_init1: %s", strerror(errno));
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", k->bus->dirfd);
		if (inotify_add_watch(k->ino, path,
				      IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM |
					      IN_ONLYDIR) < 0)
			return shmbus_err(-errno, "inotify on bus '%s' (%s): %s", k->bus->name,
					  k->bus->path, strerror(errno));
		return 0;
	}
	int rc = member_add(k, "$sys.log", 1, 0);
	if (rc <= 0)
		return rc < 0 ? rc :
				shmbus_err(-ENOENT, "bus '%s': no $sys.log to learn of new topics",
					   k->bus->name);
	k->log_idx = (int)k->nm - 1;
	return 0;
}

SHMBUS_API int shmbus_sink_open_group(shmbus_sink_t **out, shmbus_bus_t *bus, const char *group,
				      int flags, const shmbus_group_opts_t *opts)
{
	*out = NULL;
	if (flags & ~(SHMBUS_SUB_EARLIEST | SHMBUS_SUB_ACK))
		return shmbus_err(-EINVAL, "unknown sink flags 0x%x", flags);
	if ((flags & SHMBUS_SUB_ACK) && !group)
		return shmbus_err(-EINVAL, "SHMBUS_SUB_ACK is for a sink in a group");
	if (group) {
		int rc = shmbus_token_check("group name", group, SHMBUS_GROUP_NAME_MAX);
		if (rc < 0)
			return rc;
	}
	struct shmbus_sink *k = calloc(1, sizeof(*k));
	if (!k)
		return shmbus_err(-ENOMEM, "out of memory");
	pthread_mutex_init(&k->lock, NULL);
	k->bus = bus;
	k->flags = flags;
	k->cur = -1;
	k->ino = -1;
	k->log_idx = -1;
	snprintf(k->group, sizeof(k->group), "%s", group ? group : "");
	if (opts) {
		k->gopts = *opts;
		if (opts->dead_letter) {
			if (strlen(opts->dead_letter) > SHMBUS_TOPIC_NAME_MAX) {
				pthread_mutex_destroy(&k->lock);
				free(k);
				return shmbus_err(-EINVAL, "dead-letter topic name too long");
			}
			snprintf(k->dead_letter, sizeof(k->dead_letter), "%s", opts->dead_letter);
			k->has_dead_letter = 1;
		}
	} else {
		shmbus_group_opts_init(&k->gopts);
	}
	k->gopts.dead_letter = NULL;
	/* No io_uring futex wait here: the sink still works, looking every millisecond
	 * when it waits, but has no fd (shmbus_sink_fd() says why). */
	k->w_up = shmbus_waiter_init(&k->w, 64) == 0;
	int rc = watch(k);
	if (rc < 0) {
		shmbus_sink_close(k);
		return rc;
	}
	*out = k;
	return 0;
}

SHMBUS_API int shmbus_sink_open(shmbus_sink_t **out, shmbus_bus_t *bus, const char *group,
				int flags)
{
	return shmbus_sink_open_group(out, bus, group, flags, NULL);
}

SHMBUS_API void shmbus_sink_close(shmbus_sink_t *k)
{
	if (!k)
		return;
	release_cur(k);
	for (unsigned i = 0; i < k->nm; i++)
		if (k->m[i].sub)
			shmbus_sub_close(k->m[i].sub);
	if (k->w_up)
		shmbus_waiter_fini(&k->w);
	if (k->ino >= 0)
		close(k->ino);
	free(k->m);
	free(k->pats);
	pthread_mutex_destroy(&k->lock);
	free(k);
}
