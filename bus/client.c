/* SPDX-License-Identifier: MIT */
/*
 * The client side of the daemon protocol (bus/proto.h): registering a process with the
 * bus's shmbusd when one runs, and asking it how it is. Registration is best effort: with
 * no daemon, or one that does not answer, the library runs embedded (it needs nothing of
 * the daemon to work; the daemon only supervises).
 */
#include <errno.h>
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

/* Connect to the bus's control socket. Returns the fd or -errno (-ENOENT: none). */
static int control_connect(const shmbus_bus_t *bus)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", bus->path,
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

void shmbus_client_register(shmbus_bus_t *bus)
{
	bus->daemon_fd = -1;
	const char *off = getenv("SHMBUS_NO_DAEMON");
	if (off && *off && strcmp(off, "0") != 0)
		return;
	int fd = control_connect(bus);
	if (fd < 0)
		return;
	struct shmbus_p_hello hello;
	memset(&hello, 0, sizeof(hello));
	shmbus_p_init(&hello.h, SHMBUS_P_HELLO, sizeof(hello));
	pid_t pid;
	uint64_t st;
	if (shmbus_proc_self(&pid, &st) < 0)
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
	if (send(fd, &hello, sizeof(hello), MSG_NOSIGNAL) != (ssize_t)sizeof(hello))
		goto fail;
	union {
		struct shmbus_p_welcome w;
		char raw[SHMBUS_PROTO_MAX];
	} in;
	ssize_t n = recv_timeout(fd, &in, sizeof(in), REGISTER_TIMEOUT_MS);
	if (n < 0 || !shmbus_p_check(&in, (size_t)n, SHMBUS_P_WELCOME, sizeof(in.w)))
		goto fail;
	bus->daemon_fd = fd;
	bus->client_id = in.w.client_id;
	return;
fail:
	close(fd);
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
