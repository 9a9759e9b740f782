/* SPDX-License-Identifier: MIT */
/*
 * The client side of the daemon protocol (bus/proto.h): registering a process with the
 * bus's shmbusd when one runs, and asking it how it is. Registration is best effort: with
 * no daemon, or one that does not answer, the library runs embedded (it needs nothing of
 * the daemon to work; the daemon only supervises).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bus/internal.h"
#include "bus/proto.h"
#include "shm/err.h"
#include "shm/proc.h"

#define REGISTER_TIMEOUT_MS 500
/* A brokered request: the daemon answers at once unless it is stopped or swamped. */
#define BROKER_TIMEOUT_MS 5000

/* Connect to the bus's control socket. Returns the fd or -errno (-ENOENT: none). The
 * socket is found through the bus directory's descriptor (the one checked when the bus was
 * opened), not by its path, which may name another directory by now. */
static int control_connect(const shmbus_bus_t *bus)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", bus->dirfd,
			     SHMBUS_SOCK_NAME) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Receive one datagram within timeout_ms. Returns its size, -ETIMEDOUT or -errno. */
static ssize_t recv_timeout(int fd, void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	for (;;) {
		uint64_t now = mono_ms();
		int left = now >= deadline ? 0 : (int)(deadline - now);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc = poll(&p, 1, left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -ETIMEDOUT;
		ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		return n;
	}
}

/* Does daemon.state say the bus is brokered? (A daemon's word even when it is not running:
 * a brokered bus has no topic files, and must not get any.) */
static int state_brokered(const shmbus_bus_t *bus)
{
	int fd = openat(bus->dirfd, SHMBUS_STATE_NAME,
			O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return 0;
	struct shmbus_daemon_state ds;
	ssize_t n = pread(fd, &ds, sizeof(ds), 0);
	close(fd);
	return n == (ssize_t)sizeof(ds) && ds.magic == SHMBUS_STATE_MAGIC &&
	       ds.access == SHMBUS_STATE_BROKERED;
}

/* Connect and say hello. Returns the fd (welcome's flags in *flags) or -errno. */
static int hello(shmbus_bus_t *bus, uint32_t *flags)
{
	int fd = control_connect(bus);
	if (fd < 0)
		return fd;
	struct shmbus_p_hello hello;
	memset(&hello, 0, sizeof(hello));
	shmbus_p_init(&hello.h, SHMBUS_P_HELLO, sizeof(hello));
	pid_t pid;
	uint64_t st;
	int rc = shmbus_proc_self(&pid, &st);
	if (rc < 0)
		goto fail;
	hello.pid = pid;
	hello.starttime = st;
	char comm[64] = "";
	FILE *f = fopen("/proc/self/comm", "re");
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	snprintf(hello.prog, sizeof(hello.prog), "%s", comm);
	rc = -EPROTO;
	if (send(fd, &hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello))
		goto fail;
	union {
		struct shmbus_p_welcome w;
		char raw[SHMBUS_PROTO_MAX];
	} in;
	ssize_t n = recv_timeout(fd, &in, sizeof(in), REGISTER_TIMEOUT_MS);
	if (n < 0 || !shmbus_p_check(&in, (size_t)n, SHMBUS_P_WELCOME, sizeof(in.w)))
		goto fail;
	bus->client_id = in.w.client_id;
	*flags = in.w.flags;
	return fd;
fail:
	close(fd);
	return rc;
}

/* The in-process broker of this process (the daemon's), and the bus directory it serves:
 * every handle on that bus opened in this process (the bridge thread's too) uses it. */
static pthread_mutex_t proc_broker_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct shmbus_broker *proc_broker;
static char proc_broker_path[PATH_MAX];

void shmbus_client_register(shmbus_bus_t *bus)
{
	bus->daemon_fd = -1;
	pthread_mutex_lock(&proc_broker_lock);
	const struct shmbus_broker *pb = proc_broker && !strcmp(proc_broker_path, bus->path) ?
						 proc_broker : NULL;
	pthread_mutex_unlock(&proc_broker_lock);
	if (pb) {
		bus->broker = pb;
		bus->brokered = 1;
		return;
	}
	/* A brokered bus is used through its daemon or not at all. */
	bus->brokered = state_brokered(bus);
	if (bus->look)
		return; /* a looker connects on its first request, without registering */
	const char *off = getenv("SHMBUS_NO_DAEMON");
	if (off && *off && strcmp(off, "0") != 0 && !bus->brokered)
		return;
	uint32_t flags = 0;
	int fd = hello(bus, &flags);
	if (fd < 0)
		return;
	bus->daemon_fd = fd;
	bus->registered = 1;
	bus->brokered = (flags & SHMBUS_P_BROKERED) != 0;
}

void shmbus_client_unregister(shmbus_bus_t *bus)
{
	if (bus->daemon_fd >= 0) {
		struct shmbus_p_hdr bye;
		shmbus_p_init(&bye, SHMBUS_P_BYE, sizeof(bye));
		send(bus->daemon_fd, &bye, sizeof(bye), MSG_NOSIGNAL | MSG_DONTWAIT);
		close(bus->daemon_fd);
	}
	bus->daemon_fd = -1;
}

SHMBUS_API int shmbus_bus_supervised(const shmbus_bus_t *bus)
{
	return bus->daemon_fd >= 0;
}

SHMBUS_API int shmbus_daemon_ping(shmbus_bus_t *bus, int timeout_ms, shmbus_daemon_info_t *info)
{
	int fd = control_connect(bus);
	if (fd == -ENOENT)
		return shmbus_err(fd, "bus '%s': no daemon (no %s/%s)", bus->name, bus->path,
				  SHMBUS_SOCK_NAME);
	if (fd == -ECONNREFUSED)
		return shmbus_err(fd, "bus '%s': %s/%s is there but nobody listens (a daemon "
				      "that died?)", bus->name, bus->path, SHMBUS_SOCK_NAME);
	if (fd < 0)
		return shmbus_err(fd, "bus '%s': cannot connect to the daemon: %s", bus->name,
				  strerror(-fd));
	struct shmbus_p_hdr ping;
	shmbus_p_init(&ping, SHMBUS_P_PING, sizeof(ping));
	int rc = 0;
	if (send(fd, &ping, sizeof(ping), MSG_NOSIGNAL) != (ssize_t)sizeof(ping)) {
		rc = shmbus_err(-errno, "bus '%s': cannot talk to the daemon: %s", bus->name,
				strerror(errno));
		goto out;
	}
	union {
		struct shmbus_p_pong p;
		char raw[SHMBUS_PROTO_MAX];
	} in;
	ssize_t n = recv_timeout(fd, &in, sizeof(in), timeout_ms);
	if (n == -ETIMEDOUT) {
		rc = shmbus_err(-ETIMEDOUT, "bus '%s': the daemon did not answer within %d ms",
				bus->name, timeout_ms);
		goto out;
	}
	if (n < 0) {
		rc = shmbus_err((int)n, "bus '%s': no answer from the daemon: %s", bus->name,
				strerror((int)-n));
		goto out;
	}
	if (!shmbus_p_check(&in, (size_t)n, SHMBUS_P_PONG, sizeof(in.p))) {
		rc = shmbus_err(-EPROTO, "bus '%s': the daemon's answer is malformed", bus->name);
		goto out;
	}
	memset(info, 0, sizeof(*info));
	info->pid = in.p.pid;
	info->clients = in.p.clients;
	info->uptime_ms = in.p.uptime_ms;
	info->crashes = in.p.crashes;
	memcpy(info->version, in.p.version, sizeof(info->version) - 1);
	memcpy(info->config, in.p.config, sizeof(info->config) - 1);
out:
	close(fd);
	return rc;
}

/* ---- brokered topics ------------------------------------------------------------------ */

void shmbus_bus_set_broker(shmbus_bus_t *bus, const struct shmbus_broker *b)
{
	bus->broker = b;
	bus->brokered = b != NULL;
	pthread_mutex_lock(&proc_broker_lock);
	proc_broker = b;
	snprintf(proc_broker_path, sizeof(proc_broker_path), "%s", b ? bus->path : "");
	pthread_mutex_unlock(&proc_broker_lock);
}

int shmbus_bus_brokered(const shmbus_bus_t *bus)
{
	return bus->brokered;
}

/* The connection requests go on: the registration's; a looker's own, made on first use
 * (a looker is no client: it is not registered, so nothing of it is reaped or logged),
 * until it opens a publisher or subscriber (need_reg): that takes slots, which the daemon
 * frees when the process dies, so it registers then. Called with bus->lock held. */
static int broker_conn(shmbus_bus_t *bus, int need_reg)
{
	if (bus->daemon_fd >= 0 && (bus->registered || !need_reg))
		return bus->daemon_fd;
	if (bus->daemon_fd >= 0) {
		close(bus->daemon_fd);
		bus->daemon_fd = -1;
	}
	int fd;
	if (bus->look && !need_reg) {
		fd = control_connect(bus);
	} else {
		uint32_t flags = 0;
		fd = hello(bus, &flags);
		bus->registered = fd >= 0;
	}
	if (fd < 0)
		return shmbus_err(-ENOTCONN, "bus '%s' is brokered (its topics are handed out by "
				  "shmbusd) and its daemon does not answer on %s/%s: %s",
				  bus->name, bus->path, SHMBUS_SOCK_NAME, strerror(-fd));
	bus->daemon_fd = fd;
	return fd;
}

/*
 * One request, one answer of type want (or ERROR), with up to two descriptors. Returns the
 * answer's size or -errno with a message; a connection that fails is dropped (the next
 * request makes a new one).
 */
static ssize_t broker_call(shmbus_bus_t *bus, const void *req, size_t len, void *resp,
			   size_t resplen, uint16_t want, int fds[2], int *nfds, int need_reg)
{
	*nfds = 0;
	int fd = broker_conn(bus, need_reg);
	if (fd < 0)
		return fd;
	ssize_t n;
	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		n = shmbus_err(-errno, "bus '%s': cannot talk to the daemon: %s", bus->name,
			       strerror(errno));
		goto drop;
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int prc;
	uint64_t deadline = mono_ms() + BROKER_TIMEOUT_MS;
	do {
		uint64_t now = mono_ms();
		prc = poll(&p, 1, now >= deadline ? 0 : (int)(deadline - now));
	} while (prc < 0 && errno == EINTR);
	if (prc <= 0) {
		n = shmbus_err(-ETIMEDOUT, "bus '%s': the daemon did not answer within %d ms",
			       bus->name, BROKER_TIMEOUT_MS);
		goto drop;
	}
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} cbuf;
	struct iovec iov = { .iov_base = resp, .iov_len = resplen };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
			     .msg_controllen = sizeof(cbuf.buf) };
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		n = shmbus_err(n < 0 ? -errno : -ECONNRESET, "bus '%s': no answer from the "
			       "daemon: %s", bus->name, n < 0 ? strerror(errno) : "it closed");
		goto drop;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int *in = (int *)(void *)CMSG_DATA(c);
		for (int i = 0; i < k; i++) {
			if (*nfds < 2)
				fds[(*nfds)++] = in[i];
			else
				close(in[i]);
		}
	}
	const struct shmbus_p_hdr *h = resp;
	if (shmbus_p_check(resp, (size_t)n, SHMBUS_P_ERROR, sizeof(struct shmbus_p_error))) {
		const struct shmbus_p_error *e = resp;
		char text[sizeof(e->text) + 1];
		memcpy(text, e->text, sizeof(e->text));
		text[sizeof(e->text)] = '\0';
		n = shmbus_err(e->err > 0 ? -e->err : -EPROTO, "bus '%s': %s", bus->name, text);
		goto close_fds;
	}
	if ((size_t)n < sizeof(*h) || h->magic != SHMBUS_PROTO_MAGIC || h->type != want ||
	    h->len != (size_t)n) {
		n = shmbus_err(-EPROTO, "bus '%s': the daemon's answer is malformed", bus->name);
		goto close_fds;
	}
	return n;
drop:
	close(fd);
	bus->daemon_fd = -1;
	bus->registered = 0;
close_fds:
	for (int i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
	return n;
}

int shmbus_broker_open(shmbus_bus_t *bus, const char *name, int role,
		       const struct shmbus_seg_opts *create, int fd[2], uint64_t *generation)
{
	if (bus->broker)
		return bus->broker->open(bus->broker->ctx, name, role, create, fd, generation);
	struct shmbus_p_open req;
	memset(&req, 0, sizeof(req));
	shmbus_p_init(&req.h, SHMBUS_P_OPEN, sizeof(req));
	snprintf(req.name, sizeof(req.name), "%s", name);
	req.role = (uint32_t)role;
	if (create) {
		req.create = 1;
		req.opts = *create;
	}
	union {
		struct shmbus_p_opened o;
		char raw[SHMBUS_PROTO_MAX];
	} in;
	int got[2], ngot = 0;
	pthread_mutex_lock(&bus->lock);
	ssize_t n = broker_call(bus, &req, sizeof(req), &in, sizeof(in), SHMBUS_P_OPENED, got,
				&ngot, role == SHMBUS_ROLE_PUB || role == SHMBUS_ROLE_SUB);
	pthread_mutex_unlock(&bus->lock);
	if (n < 0)
		return (int)n;
	int want = role == SHMBUS_ROLE_CREATE ? 0 : 2;
	if ((size_t)n != sizeof(in.o) || in.o.nfds != (uint32_t)want || ngot != want) {
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		return shmbus_err(-EPROTO, "bus '%s': the daemon's answer for topic '%s' is "
				  "malformed", bus->name, name);
	}
	if (want) {
		fd[0] = got[0];
		fd[1] = got[1];
	}
	if (generation)
		*generation = in.o.generation;
	return in.o.created ? 1 : 0;
}

int shmbus_broker_remove(shmbus_bus_t *bus, const char *name)
{
	if (bus->broker)
		return bus->broker->remove(bus->broker->ctx, name);
	struct shmbus_p_name req;
	memset(&req, 0, sizeof(req));
	shmbus_p_init(&req.h, SHMBUS_P_REMOVE, sizeof(req));
	snprintf(req.name, sizeof(req.name), "%s", name);
	union {
		struct shmbus_p_done d;
		char raw[SHMBUS_PROTO_MAX];
	} in;
	int got[2], ngot = 0;
	pthread_mutex_lock(&bus->lock);
	ssize_t n = broker_call(bus, &req, sizeof(req), &in, sizeof(in), SHMBUS_P_DONE, got, &ngot,
				0);
	pthread_mutex_unlock(&bus->lock);
	for (int i = 0; i < ngot; i++)
		close(got[i]);
	if (n < 0)
		return (int)n;
	return 0;
}

int shmbus_broker_list(shmbus_bus_t *bus, int (*fn)(const char *name, void *arg), void *arg)
{
	if (bus->broker)
		return bus->broker->list(bus->broker->ctx, fn, arg);
	struct shmbus_p_name req;
	memset(&req, 0, sizeof(req));
	shmbus_p_init(&req.h, SHMBUS_P_LIST, sizeof(req));
	for (;;) {
		union {
			struct shmbus_p_names l;
			char raw[SHMBUS_PROTO_MAX];
		} in;
		int got[2], ngot = 0;
		pthread_mutex_lock(&bus->lock);
		ssize_t n = broker_call(bus, &req, sizeof(req), &in, sizeof(in), SHMBUS_P_NAMES,
					got, &ngot, 0);
		pthread_mutex_unlock(&bus->lock);
		for (int i = 0; i < ngot; i++)
			close(got[i]);
		if (n < 0)
			return (int)n;
		if ((size_t)n != sizeof(in.l) || in.l.names[sizeof(in.l.names) - 1])
			return shmbus_err(-EPROTO, "bus '%s': the daemon's topic list is malformed",
					  bus->name);
		const char *p = in.l.names, *last = NULL;
		for (uint32_t i = 0; i < in.l.n && p < in.l.names + sizeof(in.l.names); i++) {
			int rc = fn(p, arg);
			if (rc)
				return rc;
			last = p;
			p += strlen(p) + 1;
		}
		if (!in.l.more || !last)
			return 0;
		snprintf(req.name, sizeof(req.name), "%s", last);
	}
}
