/* SPDX-License-Identifier: MIT */
/*
 * The conductor: one thread, one io_uring. In flight at any time: an accept on the
 * control socket, a recv on each connection, a poll on each watched process's pidfd, a
 * read of the signalfd and a 100 ms housekeeping timeout. Every completion re-arms what
 * it consumed; everything is submitted with one io_uring_submit_and_wait per turn.
 *
 * Connections are freed only when their recv has completed (a shutdown() ends it), and
 * processes only when their pidfd poll has completed (the process died), so no
 * completion ever points at freed memory.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon/acl.h"
#include "bus/intree.h"
#include "daemon/bridge/bridge.h"
#include "daemon/broker.h"
#include "daemon/clock.h"
#include "daemon/shmbusd.h"
#include "daemon/statefile.h"
#include "ring/clock.h"
#include "shm/proc.h"

#define TICK_NS 100000000ll /* housekeeping every 100 ms */
#define RING_ENTRIES 256

static int state_make(struct daemon *d)
{
	char path[sizeof(d->bus_dir) + 32];
	snprintf(path, sizeof(path), "%s/%s", d->bus_dir, SHMBUS_STATE_NAME);
	/* Always a new file, renamed over whatever was there: a file left by anyone else
	 * (another owner, another type, more links, a wider mode) is never written to. */
	/* Brokered: everyone may read it (it says the bus is brokered, for clients that find
	 * no daemon). */
	int brokered = d->cfg.access == SHMBUSD_ACCESS_BROKERED;
	int fd = statefile_create(path, 4096, brokered ? 0644 : d->cfg.mode, "shmbusd");
	if (fd < 0)
		return -1;
	if (d->state_fd >= 0)
		close(d->state_fd);
	d->state_fd = fd;
	return 0;
}

int state_open(struct daemon *d)
{
	if (state_make(d) < 0)
		return -1;
	struct shmbus_daemon_state *s = &d->state;
	/* A new incarnation: the counters start again. */
	memset(s, 0, sizeof(*s));
	pid_t pid;
	uint64_t st = 0;
	shmbus_proc_self(&pid, &st);
	s->pid = pid;
	s->starttime = st;
	s->started_ns = shmbus_wall_ns();
	s->version = SHMBUS_STATE_VERSION;
	s->access = d->cfg.access == SHMBUSD_ACCESS_BROKERED ? SHMBUS_STATE_BROKERED : 0;
	s->magic = SHMBUS_STATE_MAGIC;
	state_update(d);
	return 0;
}

/* The file as it is now: truncated (by root: nobody else can write it) or removed, it is
 * said so and made whole again. Never fatal: the counters live here, not in the file. */
static void state_check(struct daemon *d)
{
	struct stat sb;
	if (fstat(d->state_fd, &sb) < 0)
		return;
	if (sb.st_nlink == 0) {
		event(d, "state_damaged", "\"file\":\"%s\",\"damage\":\"removed\"",
		      SHMBUS_STATE_NAME);
		state_make(d);
	} else if (sb.st_size < (off_t)sizeof(d->state)) {
		event(d, "state_damaged", "\"file\":\"%s\",\"damage\":\"truncated\",\"size\":%lld",
		      SHMBUS_STATE_NAME, (long long)sb.st_size);
		if (ftruncate(d->state_fd, 4096) < 0) {
			/* the pwrite below extends it enough */
		}
	}
}

void state_update(struct daemon *d)
{
	struct shmbus_daemon_state *s = &d->state;
	if (d->state_fd < 0)
		return;
	unsigned clients = 0;
	for (struct proc *q = d->procs; q; q = q->next)
		clients += q->nconn > 0;
	s->clients = clients;
	s->watched = d->nprocs;
	s->crashes = d->crashes;
	s->updated_ns = shmbus_wall_ns();
	state_check(d);
	if (pwrite(d->state_fd, s, sizeof(*s), 0) != (ssize_t)sizeof(*s)) {
		/* ENOSPC and the like: tried again at the next update */
	}
}

void state_close(struct daemon *d)
{
	if (d->state_fd >= 0)
		close(d->state_fd);
	d->state_fd = -1;
}

/* Count a reaping into the shared counters. */
void state_reaped(struct daemon *d, const struct reaped *r)
{
	struct shmbus_daemon_state *s = &d->state;
	s->readers_reclaimed += r->readers;
	s->publishers_reclaimed += r->publishers;
	s->aborted += r->aborted;
	state_update(d);
}

static struct io_uring_sqe *sqe_get(struct daemon *d)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&d->ring);
	if (!sqe) {
		/* The ring is full: hand what is queued to the kernel and try again. */
		io_uring_submit(&d->ring);
		sqe = io_uring_get_sqe(&d->ring);
	}
	return sqe;
}

static void arm_accept(struct daemon *d)
{
	struct io_uring_sqe *sqe = sqe_get(d);
	io_uring_prep_accept(sqe, d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data(sqe, &d->accept_op);
}

static void arm_recv(struct daemon *d, struct conn *c)
{
	struct io_uring_sqe *sqe = sqe_get(d);
	/* One byte more than the largest message: a longer datagram shows up as truncated. */
	io_uring_prep_recv(sqe, c->fd, c->buf, sizeof(c->buf), 0);
	io_uring_sqe_set_data(sqe, &c->recv_op);
}

static void arm_pidfd(struct daemon *d, struct proc *p)
{
	struct io_uring_sqe *sqe = sqe_get(d);
	io_uring_prep_poll_add(sqe, p->pidfd, POLLIN);
	io_uring_sqe_set_data(sqe, &p->pidfd_op);
}

static void arm_signal(struct daemon *d)
{
	struct io_uring_sqe *sqe = sqe_get(d);
	io_uring_prep_read(sqe, d->signal_fd, d->sigbuf, sizeof(struct signalfd_siginfo), 0);
	io_uring_sqe_set_data(sqe, &d->signal_op);
}

static void arm_timer(struct daemon *d)
{
	struct io_uring_sqe *sqe = sqe_get(d);
	d->tick.tv_sec = 0;
	d->tick.tv_nsec = TICK_NS;
	io_uring_prep_timeout(sqe, &d->tick, 0, 0);
	io_uring_sqe_set_data(sqe, &d->timer_op);
}

static void arm_inotify(struct daemon *d)
{
	struct io_uring_sqe *sqe = sqe_get(d);
	io_uring_prep_read(sqe, d->inotify_fd, d->inbuf, sizeof(d->inbuf), 0);
	io_uring_sqe_set_data(sqe, &d->inotify_op);
}

/* Topic files appear (a creation renames its temporary file into place) and disappear
 * (shmbus_topic_remove unlinks): say so on $sys.log, whoever did it. */
static void on_inotify(struct daemon *d, int res)
{
	for (int off = 0; res > 0 && off + (int)sizeof(struct inotify_event) <= res;) {
		const struct inotify_event *ev = (const void *)(d->inbuf + off);
		off += (int)sizeof(*ev) + (int)ev->len;
		if (off > res || !ev->len)
			break;
		size_t n = strnlen(ev->name, ev->len);
		if (ev->name[0] == '.' || n <= 6 || strcmp(ev->name + n - 6, ".topic"))
			continue;
		char name[SHMBUS_TOPIC_NAME_MAX + 1], esc[2 * SHMBUS_TOPIC_NAME_MAX + 2];
		snprintf(name, sizeof(name), "%.*s", (int)(n - 6), ev->name);
		json_str(esc, sizeof(esc), name);
		int ours = 0;
		for (size_t i = 0; i < d->nselfmade && !ours; i++) {
			if (!strcmp(d->selfmade[i], name)) {
				ours = 1;
				memmove(d->selfmade[i], d->selfmade[--d->nselfmade],
					sizeof(*d->selfmade));
			}
		}
		if (ours && (ev->mask & (IN_MOVED_TO | IN_CREATE)))
			continue;
		if (ev->mask & (IN_MOVED_TO | IN_CREATE)) {
			/* Before the event: whoever waits for it finds the file's access set. In
			 * brokered mode clients do not make files. */
			if (d->cfg.access == SHMBUSD_ACCESS_FILE)
				acl_apply_file(d, &d->cfg, ev->name);
			shmbus_topic_opts_t o;
			if (topic_info_guarded(d, name, &o) == 0)
				event(d, "topic_created",
				      "\"topic\":\"%s\",\"capacity\":%llu,\"policy\":\"%s\"", esc,
				      (unsigned long long)o.capacity,
				      o.policy == SHMBUS_OVERWRITE ? "overwrite" : "block");
			else
				event(d, "topic_created", "\"topic\":\"%s\"", esc);
		} else if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
			event(d, "topic_removed", "\"topic\":\"%s\"", esc);
		}
	}
	if (res != -ECANCELED && !d->stop)
		arm_inotify(d);
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int proc_ident(pid_t pid, uint64_t st, int *uid, char *prog, size_t len)
{
	char path[64];
	struct stat sb;
	*uid = -1;
	prog[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &sb) < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(prog, (int)len, f))
		prog[strcspn(prog, "\n")] = '\0';
	fclose(f);
	/* Read before the check: a pid reused in between fails it, not passes it. */
	uint64_t now;
	if (st && (shmbus_proc_starttime(pid, &now) < 0 || now != st)) {
		prog[0] = '\0';
		return 0;
	}
	*uid = (int)sb.st_uid;
	return 1;
}

struct proc *conductor_watch(struct daemon *d, pid_t pid, uint64_t st)
{
	for (struct proc *p = d->procs; p; p = p->next)
		if (p->pid == pid && p->starttime == st)
			return p;
	int fd = pidfd_open_(pid);
	if (fd < 0)
		return NULL;
	/* The pidfd names whatever has the pid now: make sure it is the process we mean
	 * (checked after opening, so the pid cannot be reused between check and open). */
	if (!shmbus_proc_alive(pid, st)) {
		close(fd);
		return NULL;
	}
	struct proc *p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return NULL;
	}
	p->pidfd_op.kind = OP_PIDFD;
	p->pidfd_op.owner = p;
	p->pid = pid;
	p->starttime = st;
	p->pidfd = fd;
	int uid;
	if (proc_ident(pid, st, &uid, p->prog, sizeof(p->prog))) {
		p->uid = (uid_t)uid;
		p->uid_known = 1;
	}
	p->next = d->procs;
	d->procs = p;
	d->nprocs++;
	arm_pidfd(d, p);
	return p;
}

static void proc_free(struct daemon *d, struct proc *p)
{
	for (struct proc **pp = &d->procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	for (struct conn *c = d->conns; c; c = c->next)
		if (c->proc == p)
			c->proc = NULL;
	close(p->pidfd);
	d->nprocs--;
	free(p);
}

/* Log how a dead process ended, and forget it. */
static void proc_report(struct daemon *d, struct proc *p)
{
	char prog[160];
	json_str(prog, sizeof(prog), p->prog);
	/* A connection that ended without a goodbye, one still open, or slots left
	 * behind: a crash. Otherwise it closed its bus and exited cleanly. */
	int crashed = p->nconn > 0 || p->died_attached || p->r_readers || p->r_publishers;
	if (crashed)
		d->crashes++;
	state_update(d);
	/* One found in the slots without registering (a looking tool, SHMBUS_NO_DAEMON) had no
	 * attach logged; its clean end is not news either. */
	if (!crashed && !p->registered) {
		proc_free(d, p);
		return;
	}
	event(d, crashed ? "crash" : "exit",
	      "\"pid\":%d,\"uid\":%d,\"prog\":\"%s\",\"readers_freed\":%u,"
	      "\"publishers_freed\":%u,\"aborted\":%llu,\"topics\":%u,\"pending_returned\":%u",
	      (int)p->pid, p->uid_known ? (int)p->uid : -1, prog, p->r_readers, p->r_publishers,
	      (unsigned long long)p->r_aborted, p->r_topics, p->r_pending);
	proc_free(d, p);
}

/* The kernel says p is gone: reclaim now. Its connections' last datagrams (a goodbye)
 * may still be queued in completions behind this one, so the verdict waits for them
 * (they end at once: the kernel closed the sockets), or one housekeeping tick. */
static void proc_died(struct daemon *d, struct proc *p)
{
	/* The kernel notifies pidfds a moment before /proc shows the process as a zombie, and
	 * the repairs ask /proc whether a slot's owner is dead (a live one is never robbed):
	 * let /proc catch up, for at most 20 ms, or a publisher slot is left to the next scan
	 * and the crash counted twice. */
	for (int i = 0; i < 1000 && shmbus_proc_alive(p->pid, p->starttime); i++) {
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	struct reaped r;
	reap(d, p->pid, p->starttime, &r);
	state_reaped(d, &r);
	p->r_readers = r.readers;
	p->r_publishers = r.publishers;
	p->r_aborted = r.aborted;
	p->r_topics = r.topics;
	p->r_pending = r.pending;
	p->dead = 1;
	p->dead_ms = shmbusd_now_ms();
	if (p->nconn == 0)
		proc_report(d, p);
}

static void conn_close(struct conn *c)
{
	if (!c->closing) {
		c->closing = 1;
		/* Ends the pending recv with 0; the conn is freed when it completes. */
		shutdown(c->fd, SHUT_RDWR);
	}
}

static void conn_free(struct daemon *d, struct conn *c)
{
	for (struct conn **pp = &d->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->proc) {
		struct proc *p = c->proc;
		p->nconn--;
		/* Still alive: a detach (it closed its bus). Keep watching until it exits:
		 * it may still hold slots through other handles. */
		/* Without a goodbye, the connection ended because the process did (or it
		 * dropped the socket some other way, e.g. exec): a crash when it is reaped. */
		if (!c->bye)
			p->died_attached = 1;
		else if (p->nconn == 0)
			event(d, "detach", "\"pid\":%d,\"uid\":%d,\"client\":%llu", (int)p->pid,
			      (int)c->peer_uid, (unsigned long long)c->id);
	}
	close(c->fd);
	d->nconns--;
	struct proc *p = c->proc;
	free(c);
	if (p && p->dead && p->nconn == 0)
		proc_report(d, p);
}

void send_error(struct conn *c, int err, const char *text)
{
	struct shmbus_p_error e;
	memset(&e, 0, sizeof(e));
	shmbus_p_init(&e.h, SHMBUS_P_ERROR, sizeof(e));
	e.err = err;
	snprintf(e.text, sizeof(e.text), "%s", text);
	/* Non-blocking: a client that does not read its socket loses the error, not us. */
	send(c->fd, &e, sizeof(e), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void handle_hello(struct daemon *d, struct conn *c, const struct shmbus_p_hello *h)
{
	if (c->proc) {
		send_error(c, EALREADY, "already registered");
		return;
	}
	/* The kernel's word on who is calling, not the message's. */
	if (h->pid != c->peer_pid) {
		send_error(c, EPERM, "pid does not match the peer's credentials");
		conn_close(c);
		return;
	}
	uint64_t st = 0;
	if (shmbus_proc_starttime(c->peer_pid, &st) < 0 || st != h->starttime) {
		send_error(c, ESRCH, "start time does not match the process");
		conn_close(c);
		return;
	}
	struct proc *p = conductor_watch(d, c->peer_pid, st);
	if (!p) {
		send_error(c, ESRCH, "cannot watch the process");
		conn_close(c);
		return;
	}
	p->nconn++;
	p->registered = 1;
	c->proc = p;
	struct shmbus_p_welcome w;
	memset(&w, 0, sizeof(w));
	shmbus_p_init(&w.h, SHMBUS_P_WELCOME, sizeof(w));
	w.daemon_pid = getpid();
	w.client_id = c->id;
	w.flags = shmbus_bus_brokered(d->bus) ? SHMBUS_P_BROKERED : 0;
	send(c->fd, &w, sizeof(w), MSG_DONTWAIT | MSG_NOSIGNAL);
	char prog[160];
	event(d, "attach", "\"pid\":%d,\"uid\":%d,\"prog\":\"%s\",\"client\":%llu", (int)p->pid,
	      (int)c->peer_uid,
	      json_str(prog, sizeof(prog), h->prog[sizeof(h->prog) - 1] ? "?" : h->prog),
	      (unsigned long long)c->id);
}

static void handle_ping(struct daemon *d, struct conn *c)
{
	struct shmbus_p_pong p;
	memset(&p, 0, sizeof(p));
	shmbus_p_init(&p.h, SHMBUS_P_PONG, sizeof(p));
	p.pid = getpid();
	unsigned clients = 0;
	for (struct proc *q = d->procs; q; q = q->next)
		clients += q->nconn > 0;
	p.clients = clients;
	p.uptime_ms = shmbusd_now_ms() - d->started_ms;
	p.crashes = d->crashes;
	snprintf(p.version, sizeof(p.version), "%s", SHMBUS_VERSION);
	snprintf(p.config, sizeof(p.config), "%.255s", d->cfg.path);
	send(c->fd, &p, sizeof(p), MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* One datagram from a connection. Anything malformed ends the connection. */
static void handle_msg(struct daemon *d, struct conn *c, size_t n)
{
	const struct shmbus_p_hdr *h = (const void *)c->buf;
	if (n > SHMBUS_PROTO_MAX || n < sizeof(*h) || h->magic != SHMBUS_PROTO_MAGIC ||
	    h->version != SHMBUS_PROTO_VERSION || h->len != n) {
		send_error(c, EPROTO, "malformed request");
		conn_close(c);
		return;
	}
	if (h->type == SHMBUS_P_HELLO && n == sizeof(struct shmbus_p_hello))
		handle_hello(d, c, (const void *)c->buf);
	else if (h->type == SHMBUS_P_PING && n == sizeof(struct shmbus_p_hdr))
		handle_ping(d, c);
	else if (h->type == SHMBUS_P_BYE && n == sizeof(struct shmbus_p_hdr))
		c->bye = 1;
	else if (broker_handle(d, c, c->buf, n))
		;
	else {
		send_error(c, EPROTO, "unknown request");
		conn_close(c);
	}
}

static void on_accept(struct daemon *d, int res)
{
	if (res < 0) {
		if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN)
			fprintf(stderr, "shmbusd: accept: %s\n", strerror(-res));
		if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
			/* Out of descriptors: try again at the next tick, not in a busy loop. */
			return;
		}
		arm_accept(d);
		return;
	}
	arm_accept(d);
	if (d->nconns >= d->cfg.max_clients) {
		close(res);
		return;
	}
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	struct conn *c = calloc(1, sizeof(*c));
	if (!c || getsockopt(res, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
		free(c);
		close(res);
		return;
	}
	c->recv_op.kind = OP_RECV;
	c->recv_op.owner = c;
	c->fd = res;
	c->id = ++d->next_conn_id;
	c->peer_pid = cred.pid;
	c->peer_uid = cred.uid;
	c->peer_gid = cred.gid;
	/* The supplementary groups as the kernel has them (for the ACL's group: entries). */
	socklen_t gl = sizeof(c->groups);
	if (getsockopt(res, SOL_SOCKET, SO_PEERGROUPS, c->groups, &gl) == 0)
		c->ngroups = (int)(gl / sizeof(gid_t));
	c->since_ms = shmbusd_now_ms();
	c->next = d->conns;
	d->conns = c;
	d->nconns++;
	d->state.connections++; /* in the file at the next update */
	arm_recv(d, c);
}

static void on_recv(struct daemon *d, struct conn *c, int res)
{
	if (res <= 0 || c->closing) {
		/* EOF, an error or our own shutdown. If the peer died, its pidfd says so
		 * too; the process is reaped there. */
		conn_free(d, c);
		return;
	}
	handle_msg(d, c, (size_t)res);
	arm_recv(d, c);
}

static void on_signal(struct daemon *d, int res)
{
	if (res == (int)sizeof(struct signalfd_siginfo)) {
		const struct signalfd_siginfo *si = (const void *)d->sigbuf;
		if (si->ssi_signo == SIGHUP)
			d->reload = 1;
		else
			d->stop = 1;
	}
	if (!d->stop)
		arm_signal(d);
}

static void housekeeping(struct daemon *d)
{
	uint64_t now = shmbusd_now_ms();
	/* Connections that never registered (and never pinged) for too long. */
	for (struct conn *c = d->conns; c; c = c->next)
		if (!c->proc && !c->closing && now - c->since_ms > d->cfg.idle_timeout_ms)
			conn_close(c);
	check_lag(d);
	state_update(d);
	/* Dead processes whose connections live on (inherited by a child, say). */
	for (struct proc *p = d->procs, *next; p; p = next) {
		next = p->next;
		if (p->dead && now - p->dead_ms >= 1000)
			proc_report(d, p);
	}
	/* Processes that took slots without registering (SHMBUS_NO_DAEMON, or attached
	 * before we started): found every second. */
	static uint64_t last_adopt;
	if (now - last_adopt >= 1000) {
		last_adopt = now;
		/* $sys.log lost to damage and not made again: try again. */
		if (!d->log)
			events_open(d);
		adopt(d);
	}
}

static int reload(struct daemon *d)
{
	struct shmbusd_config next;
	char err[1024];
	const char *path = d->cfg_path[0] ? d->cfg_path : NULL;
	if (config_load(path, &next, err, sizeof(err)) < 0) {
		char esc[2048];
		event(d, "reload_failed", "\"error\":\"%s\"", json_str(esc, sizeof(esc), err));
		return -1;
	}
	if (strcmp(next.bus, d->cfg.bus) || strcmp(next.dir, d->cfg.dir)) {
		config_free(&next);
		event(d, "reload_failed",
		      "\"error\":\"the bus name and directory cannot change on reload\"");
		return -1;
	}
	if (apply_topics(d, &next, err, sizeof(err)) < 0) {
		char esc[2048];
		config_free(&next);
		event(d, "reload_failed", "\"error\":\"%s\"", json_str(esc, sizeof(esc), err));
		return -1;
	}
	snprintf(next.path, sizeof(next.path), "%s", d->cfg.path);
	int log_changed = strcmp(next.log_file, d->cfg.log_file) != 0;
	int bridge_changed = bridge_config_changed(&d->cfg, &next);
	if (bridge_changed) {
		/* The bridge starts again with the new sections; durable positions are in
		 * the topics, so nothing is lost or sent twice. If it cannot start, the old
		 * one comes back and the reload is refused. */
		bridge_stop(d->bridge);
		d->bridge = NULL;
		if (bridge_start(&d->bridge, &next, d->bus_dir) < 0) {
			config_free(&next);
			event(d, "reload_failed",
			      "\"error\":\"the bridge could not start with "
			      "the new sections (see the daemon's stderr); the old ones stay\"");
			if (bridge_start(&d->bridge, &d->cfg, d->bus_dir) < 0)
				event(d, "bridge_failed",
				      "\"error\":\"the old bridge could not "
				      "start again either\"");
			return -1;
		}
	}
	config_free(&d->cfg);
	d->cfg = next;
	if (log_changed)
		events_reopen(d);
	/* [access] sections may have changed: every topic file gets them again. */
	acl_apply_all(d);
	event(d, "reload", "\"topics\":%zu,\"bridge_restarted\":%s", d->cfg.ntopics,
	      bridge_changed ? "true" : "false");
	return 0;
}

int conductor_init(struct daemon *d)
{
	int rc = io_uring_queue_init(RING_ENTRIES, &d->ring, 0);
	if (rc < 0) {
		fprintf(stderr, "shmbusd: io_uring_queue_init: %s\n", strerror(-rc));
		return -1;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	d->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (d->signal_fd < 0) {
		perror("shmbusd: signalfd");
		return -1;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", d->bus_dir,
			     SHMBUS_SOCK_NAME) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "shmbusd: %s/%s: path too long for a socket\n", d->bus_dir,
			SHMBUS_SOCK_NAME);
		return -1;
	}
	d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0) {
		perror("shmbusd: socket");
		return -1;
	}
	/* A socket file left by a daemon that died: nobody answers on it. A connect alone
	 * does not tell: a daemon killed a moment ago still has its listening socket open
	 * while the kernel tears down its io_uring (a pending accept holds it), so the
	 * connect succeeds. Only a daemon that answers a ping is another daemon. */
	int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (probe >= 0) {
		if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			struct shmbus_p_hdr ping;
			shmbus_p_init(&ping, SHMBUS_P_PING, sizeof(ping));
			struct pollfd pfd = { .fd = probe, .events = POLLIN };
			uint8_t reply[SHMBUS_PROTO_MAX];
			int alive = send(probe, &ping, sizeof(ping), MSG_NOSIGNAL) ==
					    sizeof(ping) &&
				    poll(&pfd, 1, 1000) == 1 &&
				    recv(probe, reply, sizeof(reply), MSG_DONTWAIT) ==
					    (ssize_t)sizeof(struct shmbus_p_pong);
			if (alive) {
				close(probe);
				/* Its socket: conductor_fini must not remove it. */
				close(d->listen_fd);
				d->listen_fd = -1;
				fprintf(stderr, "shmbusd: another daemon serves %s already\n",
					d->bus_dir);
				return -1;
			}
		}
		close(probe);
	}
	unlink(sa.sun_path);
	/* Brokered: anyone may connect; each request is checked against the ACL with the
	 * kernel's word on who asks. */
	mode_t sockmode = d->cfg.access == SHMBUSD_ACCESS_BROKERED ? 0666 : d->cfg.mode;
	mode_t old = umask((0777 & ~sockmode) | 0111);
	rc = bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(d->listen_fd, 128) < 0) {
		fprintf(stderr, "shmbusd: cannot listen on %s: %s\n", sa.sun_path, strerror(errno));
		return -1;
	}
	if (d->cfg.has_gid && chown(sa.sun_path, (uid_t)-1, d->cfg.gid) < 0)
		fprintf(stderr, "shmbusd: chgrp %s: %s\n", sa.sun_path, strerror(errno));
	d->inotify_fd = inotify_init1(IN_CLOEXEC);
	if (d->inotify_fd < 0 ||
	    inotify_add_watch(d->inotify_fd, d->bus_dir,
			      IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM) < 0) {
		fprintf(stderr, "shmbusd: inotify on %s: %s\n", d->bus_dir, strerror(errno));
		return -1;
	}
	d->inotify_op.kind = OP_INOTIFY;
	d->accept_op.kind = OP_ACCEPT;
	d->signal_op.kind = OP_SIGNAL;
	d->timer_op.kind = OP_TIMER;
	arm_accept(d);
	arm_signal(d);
	arm_timer(d);
	arm_inotify(d);
	return 0;
}

int conductor_run(struct daemon *d)
{
	int accept_armed = 1;
	while (!d->stop) {
		int tick = 0;
		int rc = io_uring_submit_and_wait(&d->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
			fprintf(stderr, "shmbusd: io_uring_submit_and_wait: %s\n", strerror(-rc));
			return -1;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&d->ring, head, cqe)
		{
			seen++;
			struct op *op = io_uring_cqe_get_data(cqe);
			int res = cqe->res;
			if (!op)
				continue;
			switch (op->kind) {
			case OP_ACCEPT:
				on_accept(d, res);
				accept_armed = !(res == -EMFILE || res == -ENFILE ||
						 res == -ENOBUFS || res == -ENOMEM);
				break;
			case OP_RECV:
				on_recv(d, op->owner, res);
				break;
			case OP_PIDFD:
				proc_died(d, op->owner);
				break;
			case OP_SIGNAL:
				on_signal(d, res);
				break;
			case OP_INOTIFY:
				on_inotify(d, res);
				break;
			case OP_TIMER:
				tick = 1;
				break;
			}
		}
		io_uring_cq_advance(&d->ring, seen);
		/* After the rest of the batch: a daemon that did not run for a while (a
		 * loaded machine) reads the HELLO that came in time before it judges the
		 * connection idle. */
		if (tick) {
			housekeeping(d);
			if (!accept_armed) {
				arm_accept(d);
				accept_armed = 1;
			}
			arm_timer(d);
		}
		if (d->reload) {
			d->reload = 0;
			/* A detached daemon's log file, reopened first: logrotate moved it. */
			events_reopen(d);
			reload(d);
		}
	}
	return 0;
}

void conductor_fini(struct daemon *d)
{
	char path[sizeof(d->bus_dir) + 32];
	snprintf(path, sizeof(path), "%s/%s", d->bus_dir, SHMBUS_SOCK_NAME);
	if (d->listen_fd >= 0) {
		unlink(path);
		close(d->listen_fd);
	}
	/* Exiting: the kernel drops what is in flight with the ring. */
	io_uring_queue_exit(&d->ring);
	while (d->conns) {
		struct conn *c = d->conns;
		d->conns = c->next;
		close(c->fd);
		free(c);
	}
	while (d->procs) {
		struct proc *p = d->procs;
		d->procs = p->next;
		close(p->pidfd);
		free(p);
	}
	if (d->signal_fd >= 0)
		close(d->signal_fd);
	if (d->inotify_fd >= 0)
		close(d->inotify_fd);
}
