/* SPDX-License-Identifier: MIT */
/*
 * Brokered mode (`access = brokered`): the bus's topics are not files. Each is two sealed
 * memfds held here (shm/segment.c: part A, the log; part B, the reader table), and a
 * client gets them over the control socket after the daemon's ACL (daemon/acl.h) allowed
 * it, by the kernel's word on who it is (SO_PEERCRED, SO_PEERGROUPS): a publisher part A
 * read-write, a subscriber part A through a read-only descriptor, so it cannot change a
 * message. Nobody can shrink a sealed memfd, so no mapping of a topic ever faults.
 *
 * The registry is shared by the main thread (control socket requests, the reaper, the
 * event log) and the bridge thread (which opens topics through its own connection, so
 * through the main thread, but its bus handle may list them): one mutex, held only for
 * lookups and inserts. Topics live as long as the daemon: a restarted daemon starts with
 * its declared topics, empty (docs/security.md).
 */
#include "daemon/broker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/intree.h"
#include "daemon/acl.h"
#include "daemon/clock.h"
#include "shm/err.h"

struct btopic {
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
	int fda, fdb; /* read-write */
	int fda_ro;   /* part A reopened read-only: what subscribers get */
	uint64_t generation;
	struct shmbus_seg_opts opts;
};

static struct {
	pthread_mutex_t lock;
	struct btopic *t; /* sorted by name */
	size_t n, cap;
	struct daemon *d;
	struct shmbus_broker ops;
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Index of name, or -(insertion point) - 1. With reg.lock held. */
static long find(const char *name)
{
	size_t lo = 0, hi = reg.n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(reg.t[mid].name, name);
		if (!c)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

/* Make name with o at insertion point at. With reg.lock held. 0 or -errno + message. */
static int make(const char *name, const struct shmbus_seg_opts *o, size_t at)
{
	if (reg.n == reg.cap) {
		size_t cap = reg.cap ? reg.cap * 2 : 16;
		struct btopic *nt = realloc(reg.t, cap * sizeof(*nt));
		if (!nt)
			return shmbus_err(-ENOMEM, "out of memory");
		reg.t = nt;
		reg.cap = cap;
	}
	struct btopic t;
	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "%s", name);
	int rc = shmbus_seg_create_memfds(name, o, &t.fda, &t.fdb);
	if (rc < 0)
		return rc;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", t.fda);
	t.fda_ro = open(path, O_RDONLY | O_CLOEXEC);
	struct shmbus_topic_hdr h;
	if (t.fda_ro < 0 || pread(t.fda, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		rc = shmbus_err(-errno, "topic '%s': cannot reopen its log read-only: %s", name,
				strerror(errno));
		if (t.fda_ro >= 0)
			close(t.fda_ro);
		close(t.fda);
		close(t.fdb);
		return rc;
	}
	t.generation = h.generation;
	t.opts = *o;
	memmove(&reg.t[at + 1], &reg.t[at], (reg.n - at) * sizeof(*reg.t));
	reg.t[at] = t;
	reg.n++;
	return 0;
}

/*
 * Find or make name; hand out dups of its descriptors for role (ro: part A read-only).
 * Returns 1 made, 0 found, or -errno with a message. Any thread.
 */
static int reg_open(const char *name, int role, const struct shmbus_seg_opts *create, int ro,
		    int fd[2], uint64_t *generation)
{
	pthread_mutex_lock(&reg.lock);
	long i = find(name);
	int made = 0, rc = 0;
	if (i < 0 && !create) {
		rc = shmbus_err(-ENOENT, "topic '%s' does not exist", name);
		goto out;
	}
	if (i < 0) {
		rc = make(name, create, (size_t)(-i - 1));
		if (rc < 0)
			goto out;
		i = -i - 1;
		made = 1;
	} else if (create && !shmbus_seg_opts_equal(&reg.t[i].opts, create)) {
		const struct shmbus_seg_opts *o = &reg.t[i].opts;
		rc = shmbus_err(-EEXIST, "topic '%s' exists with other options (capacity %llu, "
				"max_message %u, policy %s, readers %u, groups %u, publishers %u)",
				name, (unsigned long long)o->capacity, o->max_message,
				o->policy ? "overwrite" : "block", o->max_readers, o->max_groups,
				o->max_publishers);
		goto out;
	}
	const struct btopic *t = &reg.t[i];
	if (generation)
		*generation = t->generation;
	if (role != SHMBUS_ROLE_CREATE) {
		fd[0] = fcntl(ro ? t->fda_ro : t->fda, F_DUPFD_CLOEXEC, 0);
		fd[1] = fcntl(t->fdb, F_DUPFD_CLOEXEC, 0);
		if (fd[0] < 0 || fd[1] < 0) {
			rc = shmbus_err(-errno, "topic '%s': dup: %s", name, strerror(errno));
			if (fd[0] >= 0)
				close(fd[0]);
			if (fd[1] >= 0)
				close(fd[1]);
			goto out;
		}
	}
	rc = made;
out:
	pthread_mutex_unlock(&reg.lock);
	return rc;
}

static int reg_remove(const char *name)
{
	pthread_mutex_lock(&reg.lock);
	long i = find(name);
	int rc = 0;
	if (i < 0) {
		rc = shmbus_err(-ENOENT, "topic '%s' does not exist", name);
	} else {
		/* Mappings live on in whoever has them; the topic is gone for new opens. */
		close(reg.t[i].fda);
		close(reg.t[i].fdb);
		close(reg.t[i].fda_ro);
		memmove(&reg.t[i], &reg.t[i + 1], (reg.n - (size_t)i - 1) * sizeof(*reg.t));
		reg.n--;
	}
	pthread_mutex_unlock(&reg.lock);
	return rc;
}

/* Names after after (""), at most max, into a fresh array; *more if there are others. */
static char **reg_names(const char *after, size_t max, size_t *n, int *more)
{
	pthread_mutex_lock(&reg.lock);
	long i = *after ? find(after) : -1;
	size_t from = i >= 0 ? (size_t)i + 1 : (size_t)(-i - 1);
	size_t k = reg.n > from ? reg.n - from : 0;
	*more = k > max;
	if (k > max)
		k = max;
	char **v = calloc(k ? k : 1, sizeof(*v));
	*n = 0;
	for (size_t j = 0; v && j < k; j++) {
		v[j] = strdup(reg.t[from + j].name);
		if (!v[j])
			break;
		(*n)++;
	}
	pthread_mutex_unlock(&reg.lock);
	return v;
}

static void names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- the daemon's own bus handle -------------------------------------------------------- */

static int in_open(void *ctx, const char *name, int role, const struct shmbus_seg_opts *create,
		   int fd[2], uint64_t *generation)
{
	(void)ctx;
	return reg_open(name, role, create, 0, fd, generation);
}

static int in_remove(void *ctx, const char *name)
{
	(void)ctx;
	return reg_remove(name);
}

static int in_list(void *ctx, int (*fn)(const char *name, void *arg), void *arg)
{
	(void)ctx;
	size_t n;
	int more;
	char **v = reg_names("", (size_t)-1, &n, &more);
	if (!v)
		return shmbus_err(-ENOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = fn(v[i], arg);
	names_free(v, n);
	return rc;
}

void broker_init(struct daemon *d)
{
	reg.d = d;
	reg.ops.open = in_open;
	reg.ops.remove = in_remove;
	reg.ops.list = in_list;
	reg.ops.ctx = NULL;
	shmbus_bus_set_broker(d->bus, &reg.ops);
}

void broker_fini(void)
{
	pthread_mutex_lock(&reg.lock);
	for (size_t i = 0; i < reg.n; i++) {
		close(reg.t[i].fda);
		close(reg.t[i].fdb);
		close(reg.t[i].fda_ro);
	}
	free(reg.t);
	reg.t = NULL;
	reg.n = reg.cap = 0;
	pthread_mutex_unlock(&reg.lock);
}

/* ---- requests on the control socket ----------------------------------------------------- */

static void peer_of(const struct conn *c, struct acl_peer *p)
{
	p->uid = c->peer_uid;
	p->gid = c->peer_gid;
	p->groups = c->groups;
	p->ngroups = c->ngroups;
	p->pid = c->peer_pid;
}

/* May the peer do want to name? If not, it is told why, and $sys.log says so. */
static int allowed(struct daemon *d, struct conn *c, const char *name, unsigned want,
		   unsigned any)
{
	struct acl_peer p;
	peer_of(c, &p);
	char why[256];
	why[0] = '\0';
	unsigned got = acl_rights(&d->cfg, name, &p, want | any, why, sizeof(why));
	if ((got & want) == want && (!any || (got & any)))
		return 1;
	unsigned refused = want ? want & ~got : any;
	if (!why[0])
		snprintf(why, sizeof(why), "uid %d may not use topic '%s'", (int)p.uid, name);
	send_error(c, EACCES, why);
	acl_denied_event(d, name, &p, refused, why);
	return 0;
}

/* A name field: NUL-terminated within the field, a valid topic name. */
static int name_ok(struct conn *c, const char *field, size_t len, int empty_ok)
{
	if (!memchr(field, '\0', len)) {
		send_error(c, EINVAL, "topic name not terminated");
		return 0;
	}
	if (empty_ok && !*field)
		return 1;
	if (shmbus_topic_name_check(field, 1) < 0) {
		send_error(c, EINVAL, shmbus_errmsg());
		return 0;
	}
	return 1;
}

static void handle_open(struct daemon *d, struct conn *c, const struct shmbus_p_open *r)
{
	if (!name_ok(c, r->name, sizeof(r->name), 0))
		return;
	int role = (int)r->role;
	if (role != SHMBUS_ROLE_CREATE && role != SHMBUS_ROLE_PUB && role != SHMBUS_ROLE_SUB &&
	    role != SHMBUS_ROLE_LOOK) {
		send_error(c, EINVAL, "unknown role");
		return;
	}
	/* Publishers and subscribers take slots: the daemon must watch them, to free the slots
	 * when they die, so they say hello first. */
	if ((role == SHMBUS_ROLE_PUB || role == SHMBUS_ROLE_SUB) && !c->proc) {
		send_error(c, EPERM, "register (HELLO) before opening a topic to publish or "
				   "subscribe");
		return;
	}
	struct shmbus_seg_opts o = r->opts;
	uint64_t size;
	if (r->create && shmbus_seg_opts_check(&o, &size) < 0) {
		send_error(c, EINVAL, shmbus_errmsg());
		return;
	}
	if (r->create && (o.flags & SHMBUS_TOPIC_SYSTEM) && c->peer_uid != 0 &&
	    c->peer_uid != geteuid()) {
		send_error(c, EACCES, "only the daemon makes $sys topics");
		return;
	}
	/* Rights: publish or subscribe for what the role does; creating needs create, and
	 * only when the topic is not there yet (an existing one is opened as it is). */
	unsigned want = role == SHMBUS_ROLE_PUB ? ACL_PUBLISH : role == SHMBUS_ROLE_SUB ? ACL_SUBSCRIBE : 0;
	unsigned any = want ? 0 : ACL_PUBLISH | ACL_SUBSCRIBE;
	uint64_t gen = 0;
	int exists = reg_open(r->name, SHMBUS_ROLE_CREATE, NULL, 0, NULL, &gen) == 0;
	if (r->create && !exists) {
		if (!allowed(d, c, r->name, ACL_CREATE, 0))
			return;
		any = 0;
	}
	if ((want || any) && !allowed(d, c, r->name, want, any))
		return;
	int fd[2] = { -1, -1 };
	int rc = reg_open(r->name, role, r->create ? &o : NULL, role != SHMBUS_ROLE_PUB, fd, &gen);
	if (rc < 0) {
		send_error(c, -rc, shmbus_errmsg());
		return;
	}
	struct shmbus_p_opened a;
	memset(&a, 0, sizeof(a));
	shmbus_p_init(&a.h, SHMBUS_P_OPENED, sizeof(a));
	a.created = rc;
	a.nfds = role == SHMBUS_ROLE_CREATE ? 0 : 2;
	a.generation = gen;
	struct iovec iov = { .iov_base = &a, .iov_len = sizeof(a) };
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} cbuf;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (a.nfds) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
		memcpy(CMSG_DATA(cm), fd, 2 * sizeof(int));
	}
	/* Non-blocking: a client that does not read its socket loses the answer, not us. */
	sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (a.nfds) {
		close(fd[0]);
		close(fd[1]);
	}
	if (rc == 1) {
		char esc[2 * SHMBUS_TOPIC_NAME_MAX + 2];
		event(d, "topic_created", "\"topic\":\"%s\",\"capacity\":%llu,\"policy\":\"%s\","
		      "\"uid\":%d,\"pid\":%d", json_str(esc, sizeof(esc), r->name),
		      (unsigned long long)o.capacity, o.policy ? "overwrite" : "block",
		      (int)c->peer_uid, (int)c->peer_pid);
	}
}

static void handle_remove(struct daemon *d, struct conn *c, const struct shmbus_p_name *r)
{
	if (!name_ok(c, r->name, sizeof(r->name), 0) || !allowed(d, c, r->name, ACL_REMOVE, 0))
		return;
	if (!strncmp(r->name, "$sys.", 5)) {
		send_error(c, EACCES, "the daemon's $sys topics cannot be removed");
		return;
	}
	int rc = reg_remove(r->name);
	if (rc < 0) {
		send_error(c, -rc, shmbus_errmsg());
		return;
	}
	struct shmbus_p_done a;
	memset(&a, 0, sizeof(a));
	shmbus_p_init(&a.h, SHMBUS_P_DONE, sizeof(a));
	send(c->fd, &a, sizeof(a), MSG_DONTWAIT | MSG_NOSIGNAL);
	char esc[2 * SHMBUS_TOPIC_NAME_MAX + 2];
	event(d, "topic_removed", "\"topic\":\"%s\",\"uid\":%d,\"pid\":%d",
	      json_str(esc, sizeof(esc), r->name), (int)c->peer_uid, (int)c->peer_pid);
}

/* A page of the names the peer may publish or subscribe to, after r->name. */
static void handle_list(struct daemon *d, struct conn *c, const struct shmbus_p_name *r)
{
	if (!name_ok(c, r->name, sizeof(r->name), 1))
		return;
	struct shmbus_p_names a;
	memset(&a, 0, sizeof(a));
	shmbus_p_init(&a.h, SHMBUS_P_NAMES, sizeof(a));
	char after[sizeof(r->name)];
	memcpy(after, r->name, sizeof(after));
	struct acl_peer p;
	peer_of(c, &p);
	size_t used = 0;
	for (;;) {
		size_t n;
		int more;
		char **v = reg_names(after, 64, &n, &more);
		if (!v) {
			send_error(c, ENOMEM, "out of memory");
			return;
		}
		size_t i = 0;
		for (; i < n; i++) {
			if (!acl_rights(&d->cfg, v[i], &p, ACL_PUBLISH | ACL_SUBSCRIBE, NULL, 0))
				continue;
			size_t len = strlen(v[i]) + 1;
			/* The last byte stays NUL: the client checks it. */
			if (used + len > sizeof(a.names) - 1)
				break;
			memcpy(a.names + used, v[i], len);
			used += len;
			a.n++;
		}
		if (i < n) {
			a.more = 1;
		} else if (more && n) {
			snprintf(after, sizeof(after), "%s", v[n - 1]);
			names_free(v, n);
			continue;
		}
		names_free(v, n);
		break;
	}
	send(c->fd, &a, sizeof(a), MSG_DONTWAIT | MSG_NOSIGNAL);
}

int broker_handle(struct daemon *d, struct conn *c, const void *buf, size_t n)
{
	const struct shmbus_p_hdr *h = buf;
	if (!shmbus_bus_brokered(d->bus))
		return 0;
	if (h->type == SHMBUS_P_OPEN && n == sizeof(struct shmbus_p_open))
		handle_open(d, c, buf);
	else if (h->type == SHMBUS_P_REMOVE && n == sizeof(struct shmbus_p_name))
		handle_remove(d, c, buf);
	else if (h->type == SHMBUS_P_LIST && n == sizeof(struct shmbus_p_name))
		handle_list(d, c, buf);
	else
		return 0;
	/* A client that asks is not idle. */
	c->since_ms = shmbusd_now_ms();
	return 1;
}
