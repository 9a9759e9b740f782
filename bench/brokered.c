/* SPDX-License-Identifier: MIT */
/*
 * The brokered bus (issue 14): a private shmbusd, the one built in this tree, with
 * `access = brokered` on bus BROKERED_BUS in the suite's directory. Its topics are memfds
 * the daemon hands out over control.sock, so the shmbus (brokered) peer measures the same
 * loops as shmbus (block) with only the way a topic is opened changed: what the suite
 * compares, in the same run. Started once if a case wants it, ready when it says so on a
 * notify socket (sd_notify's READY=1, which shmbusd sends in the foreground), stopped with
 * the other servers (daemon.c).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmbus.h>

#include "bench.h"

static pid_t bpid;

/* $SHMBUS_BENCH_SHMBUSD, else the shmbusd of this build tree, else one in PATH. */
static int shmbusd_path(char *path, size_t n)
{
	const char *env = getenv("SHMBUS_BENCH_SHMBUSD");

	if (env && *env) {
		snprintf(path, n, "%s", env);
		return access(path, X_OK) == 0;
	}
#ifdef SHMBUSD_PATH
	snprintf(path, n, "%s", SHMBUSD_PATH);
	if (access(path, X_OK) == 0)
		return 1;
#endif
	return find_program("shmbusd", path, n);
}

int brokered_start(char *why, size_t n)
{
	char prog[PATH_MAX], conf[200], log[200];

	if (bpid > 0)
		return 0;
	if (!shmbusd_path(prog, sizeof(prog))) {
		snprintf(why, n, "shmbusd not found (build it, or set SHMBUS_BENCH_SHMBUSD)");
		return -1;
	}
	snprintf(conf, sizeof(conf), "%s/shmbusd-brokered.conf", cfg.dir);
	snprintf(log, sizeof(log), "%s/shmbusd-brokered.log", cfg.dir);
	FILE *f = fopen(conf, "w");
	if (!f) {
		snprintf(why, n, "cannot write %s: %s", conf, strerror(errno));
		return -1;
	}
	fprintf(f, "[bus]\nname = %s\ndir = %s\naccess = brokered\n", BROKERED_BUS, cfg.dir);
	fclose(f);
#ifndef SHMBUSD_NOTIFY
	snprintf(why, n, "shmbusd was built without libsystemd: it cannot say when it is ready");
	return -1;
#else
	/* Its readiness, as systemd would hear it: a datagram READY=1 on NOTIFY_SOCKET. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify-brokered.sock", cfg.dir);
	unlink(sa.sun_path);
	int ns = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ns < 0 || bind(ns, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, n, "notify socket %s: %s", sa.sun_path, strerror(errno));
		if (ns >= 0)
			close(ns);
		return -1;
	}
	char *argv[] = { prog, "--foreground", "--config", conf, NULL };
	setenv("NOTIFY_SOCKET", sa.sun_path, 1);
	bpid = daemon_spawn(prog, argv, log);
	unsetenv("NOTIFY_SOCKET");
	int rc = -1;
	if (bpid < 0) {
		bpid = 0;
		snprintf(why, n, "fork: %s", strerror(errno));
		goto out;
	}
	/* Until it is ready or gone (its pidfd): up to 20 s on a loaded machine. */
	int pfd = (int)syscall(SYS_pidfd_open, bpid, 0);
	uint64_t deadline = now_ns() + 20000000000ull;
	for (;;) {
		uint64_t now = now_ns();
		struct pollfd p[2] = { { .fd = ns, .events = POLLIN }, { .fd = pfd, .events = POLLIN } };
		int k = now < deadline ? poll(p, pfd >= 0 ? 2 : 1, (int)((deadline - now) / 1000000))
				       : 0;
		if (k < 0 && errno == EINTR)
			continue;
		if (k > 0 && (p[1].revents & POLLIN)) {
			int st = 0;
			waitpid(bpid, &st, 0);
			bpid = 0;
			daemon_exit_why("shmbusd", st, log, why, n);
			break;
		}
		if (k > 0 && (p[0].revents & POLLIN)) {
			char buf[512];
			ssize_t got = recv(ns, buf, sizeof(buf) - 1, 0);
			if (got > 0) {
				buf[got] = '\0';
				if (strstr(buf, "READY=1")) {
					rc = 0;
					break;
				}
			}
			continue;
		}
		if (k <= 0) {
			snprintf(why, n, "shmbusd (%s) did not say it was ready within 20 s; log %s",
				 prog, log);
			brokered_stop();
			break;
		}
	}
	if (pfd >= 0)
		close(pfd);
out:
	close(ns);
	unlink(sa.sun_path);
	return rc;
#endif
}

void brokered_stop(void)
{
	daemon_stop(&bpid, SIGTERM, 5);
}

/* From a signal handler: kill() only. */
void brokered_kill(void)
{
	if (bpid > 0)
		kill(bpid, SIGKILL);
}

double brokered_cpu_s(void)
{
	return pid_cpu_s(bpid);
}
