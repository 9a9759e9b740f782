/* SPDX-License-Identifier: MIT */
/*
 * For tests that run a real shmbusd: write its config, start it (fork + exec, stderr to a
 * log file in the private directory), wait until it answers, read its events from
 * $sys.log, stop it. Include after helpers.h.
 */
#ifndef SHMBUS_TESTS_DAEMON_HELPERS_H
#define SHMBUS_TESTS_DAEMON_HELPERS_H

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/lib/test.h"
#include "daemon/run.h"

/* Write text to path (replacing it). */
static inline void td_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	CHECK(fputs(text, f) >= 0);
	CHECK(fclose(f) == 0);
}

static pid_t td_pids_[8];
static pid_t td_owner_;

/* At exit (a failed check included), no daemon of ours is left running. */
static void td_cleanup_(void)
{
	if (getpid() != td_owner_)
		return;
	for (int i = 0; i < 8; i++)
		if (td_pids_[i] > 0) {
			kill(td_pids_[i], SIGKILL);
			waitpid(td_pids_[i], NULL, 0);
		}
}

static void td_track_(pid_t pid, int add)
{
	if (!td_owner_) {
		td_owner_ = getpid();
		atexit(td_cleanup_);
	}
	for (int i = 0; i < 8; i++) {
		if (add && td_pids_[i] <= 0) {
			td_pids_[i] = pid;
			return;
		}
		if (!add && td_pids_[i] == pid) {
			td_pids_[i] = 0;
			return;
		}
	}
}

/* Start shmbusd --foreground --config cfg; wait (up to T_WAIT_MS) until bus answers a ping. */
static inline pid_t td_start(const char *shmbusd, const char *cfg, shmbus_bus_t *bus)
{
	char log[512];
	snprintf(log, sizeof(log), "%s/daemon.log", getenv("SHMBUS_DIR"));
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(shmbusd, shmbusd, "--foreground", "--config", cfg, (char *)NULL);
		_exit(127);
	}
	td_track_(pid, 1);
	uint64_t deadline = t_now_ns() + (uint64_t)T_WAIT_MS * 1000000ull;
	shmbus_daemon_info_t info;
	while (shmbus_daemon_ping(bus, 200, &info) < 0 || info.pid != pid) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			td_track_(pid, 0);
			fprintf(stderr, "shmbusd exited at start (status %d); log: %s\n", st, log);
			exit(1);
		}
		if (t_now_ns() > deadline) {
			fprintf(stderr, "shmbusd %d did not answer within %d ms; log: %s\n",
				(int)pid, T_WAIT_MS, log);
			exit(1);
		}
		usleep(2000); /* poll interval */
	}
	return pid;
}

/* SIGTERM and reap; returns the exit status (or -1 if it had to be killed). */
static inline int td_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	uint64_t deadline = t_now_ns() + (uint64_t)T_WAIT_MS * 1000000ull;
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			td_track_(pid, 0);
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		if (t_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			td_track_(pid, 0);
			return -1;
		}
		usleep(1000); /* poll interval */
	}
}

/*
 * Read $sys.log (through sub) until an event contains every one of the needles (a
 * NULL-terminated list), up to timeout_ms. Copies it to out. Returns 0 or -1.
 */
static inline int td_event(shmbus_sub_t *sub, char *out, size_t outlen, int timeout_ms,
			   const char *const *needles)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	char name[64];
	while (dt_next_event(sub, deadline, out, outlen, name, sizeof(name)) == 0) {
		int all = 1;
		for (const char *const *s = needles; *s && all; s++)
			all = strstr(out, *s) != NULL;
		if (all)
			return 0;
		if (getenv("T_DEBUG"))
			fprintf(stderr, "(skipped event: %s)\n", out);
	}
	return -1;
}

#endif
