/* SPDX-License-Identifier: MIT */
/*
 * The brokered bus (issue 14): a private shmbusd, the one built in this tree, with
 * `access = brokered` on bus BROKERED_BUS in the suite's directory. Its topics are memfds
 * the daemon hands out over control.sock, so the shmbus (brokered) peer measures the same
 * loops as shmbus (block) with only the way a topic is opened changed: what the suite
 * compares, in the same run. Started once if a case wants it, ready when it answers a ping
 * naming its pid, stopped with the other servers (daemon.c).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
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

/* Does the daemon answer a ping on the bus, as process pid? (The bus directory may not be
 * there yet: the daemon makes it.) */
static int answers(pid_t pid)
{
	shmbus_bus_t *bus;
	shmbus_daemon_info_t info;

	if (shmbus_bus_open_flags(&bus, BROKERED_BUS, SHMBUS_BUS_LOOK) < 0)
		return 0;
	int rc = shmbus_daemon_ping(bus, 200, &info);
	shmbus_bus_close(bus);
	return rc == 0 && info.pid == pid;
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
	char *argv[] = { prog, "--foreground", "--config", conf, NULL };
	bpid = daemon_spawn(prog, argv, log);
	if (bpid < 0) {
		bpid = 0;
		snprintf(why, n, "fork: %s", strerror(errno));
		return -1;
	}
	/* Until it answers: up to 20 s on a loaded machine. */
	uint64_t deadline = now_ns() + 20000000000ull;
	for (;;) {
		int st;

		if (daemon_exited(bpid, &st)) {
			bpid = 0;
			daemon_exit_why("shmbusd", st, log, why, n);
			return -1;
		}
		if (answers(bpid))
			return 0;
		if (now_ns() > deadline) {
			snprintf(why, n, "shmbusd (%s) did not answer a ping within 20 s; log %s",
				 prog, log);
			brokered_stop();
			return -1;
		}
		usleep(2000); /* poll interval */
	}
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
