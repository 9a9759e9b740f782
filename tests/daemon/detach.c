/* SPDX-License-Identifier: MIT */
/*
 * shmbusd started without --foreground, as from a terminal (its stdout and stderr are one
 * pipe the test holds, as a terminal would be): `shmbusd` returns 0 once the daemon is
 * ready, and from then on nothing the daemon does reaches that pipe.
 *
 *  A. No log_file. The daemon (another pid, named by its ping and by daemon.state) has
 *     /dev/null as fds 0, 1 and 2. A client attaches, detaches and exits ("attach",
 *     "detach", "exit" on $sys.log); the pipe then ends (EOF) without one byte: the
 *     daemon holds no end of it. SIGTERM by pid: it ends; "stop" carries pid, bus, dir
 *     and config, like "start".
 *  B. log_file: the same, with fd 2 the log file, and every event seen on $sys.log also
 *     a line "shmbusd: EVENT" there. The file moved away and SIGHUP: a new file at that
 *     path gets the "reload" and what follows, the moved one does not.
 *  C. A second detached start on the running bus is refused after the fork ("another
 *     daemon serves"): it exits 1, the reason reaches the pipe, and the running daemon
 *     keeps its control socket and its daemon.state.
 *  D. A log_file that cannot be opened refuses the start before the fork: exit 1, the
 *     reason on the pipe, no bus directory made.
 *
 * usage: daemon_detach SHMBUSD
 */
#include "tests/lib/daemon.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "bus/proto.h"

static const char *exe;
static const char *dir;
static int daemon_pidfd = -1; /* the detached daemon, while it runs */

/* At exit (a failed check included): no detached daemon of ours is left running. It is
 * not our child, so no death signal reaches it: kill it by its pidfd. */
static void kill_daemon(void)
{
	if (daemon_pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, daemon_pidfd, SIGKILL, NULL, 0);
		t_pidfd_wait(daemon_pidfd, T_WAIT_MS);
		close(daemon_pidfd);
		daemon_pidfd = -1;
	}
}

/*
 * Run `shmbusd --config conf` (detaching) with stdout and stderr on a new pipe; wait for
 * it to return. Returns its wait status; *out is the read end of the pipe.
 */
static int start_detached(const char *conf, int *out)
{
	char *argv[] = { (char *)exe, (char *)"--config", (char *)conf, NULL };
	pid_t pid = t_spawn(&(struct t_cmd){ .argv = argv, .out_pipe = out, .err_to_out = 1 });
	return t_reap(pid, T_WAIT_MS, "shmbusd (detaching)");
}

/* Where fd n of pid points ("/dev/null", a file's path, "pipe:[...]"). */
static void fd_target(pid_t pid, int n, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, n);
	ssize_t r = readlink(path, buf, len - 1);
	CHECK(r > 0);
	buf[r] = '\0';
}

/* The events read from $sys.log so far, to find each in the log file. */
static char seen[64][1024];
static unsigned nseen;

/* Read $sys.log until the event name for pid (0: any) comes, keeping what is read. */
static void wait_event(shmbus_sub_t *log, const char *name, pid_t pid, char *ev, size_t len)
{
	uint64_t deadline = t_deadline(T_WAIT_MS);
	char got[64], v[32], want[32];
	snprintf(want, sizeof(want), "%d", (int)pid);
	while (t_event_next(log, deadline, ev, len, got, sizeof(got)) == 0) {
		CHECK(nseen < 64 && strlen(ev) < sizeof(seen[0]));
		snprintf(seen[nseen++], sizeof(seen[0]), "%s", ev);
		if (!strcmp(got, name) &&
		    (!pid || (t_json_get(ev, "pid", v, sizeof(v)) == 0 && !strcmp(v, want))))
			return;
	}
	fprintf(stderr, "no '%s' event for pid %d on %s within %d ms\n", name, (int)pid,
		T_LOG_TOPIC, T_WAIT_MS);
	exit(1);
}

static void expect_member(const char *ev, const char *key, const char *want)
{
	char v[1024];
	if (t_json_get(ev, key, v, sizeof(v)) < 0 || strcmp(v, want)) {
		fprintf(stderr, "event %s: wanted \"%s\": %s\n", ev, key, want);
		exit(1);
	}
}

/* A client process opens the bus (registering with the daemon), closes it and exits. */
static pid_t client(const char *busname)
{
	pid_t pid = t_fork();
	if (pid == 0) {
		unsetenv("SHMBUS_NO_DAEMON");
		shmbus_bus_t *b;
		if (shmbus_bus_open(&b, busname) < 0 || shmbus_bus_supervised(b) != 1)
			_exit(3);
		shmbus_bus_close(b);
		_exit(0);
	}
	CHECK(t_exited(t_reap(pid, T_WAIT_MS, "the client"), 0));
	return pid;
}

/* Does the file at path hold the line "shmbusd: " ev? */
static int file_has_line(const char *path, const char *ev)
{
	static char text[1 << 17];
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	char line[1100];
	snprintf(line, sizeof(line), "shmbusd: %s\n", ev);
	for (const char *p = text; (p = strstr(p, line)); p++)
		if (p == text || p[-1] == '\n')
			return 1;
	return 0;
}

/* Cases A and B (log_file or NULL), then C against the running daemon. */
static void detached(const char *busname, const char *log_file)
{
	char conf[300], bus_dir[300], ev[4200], buf[8192], target[300];
	snprintf(conf, sizeof(conf), "%s/%s.conf", dir, busname);
	snprintf(bus_dir, sizeof(bus_dir), "%s/%s", dir, busname);
	/* A declared topic: its "topic_created" is logged before the fork. */
	t_write(conf, "[bus]\nname = %s\ndir = %s\n%s%s\n[topic t]\ncapacity = 64K\n", busname, dir,
		log_file ? "log_file = " : "", log_file ? log_file : "");

	int out;
	int st = start_detached(conf, &out);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		t_read_to_end(out, buf, sizeof(buf), T_WAIT_MS, 0);
		fprintf(stderr, "shmbusd (detaching) returned 0x%x: %s\n", st, buf);
		exit(1);
	}
	/* Returned 0: ready. The daemon answers now, and its state names it. */
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, busname), 0);
	shmbus_daemon_info_t info;
	CHECK_RC(shmbus_daemon_ping(bus, T_WAIT_MS, &info), 0);
	pid_t dpid = info.pid;
	daemon_pidfd = t_pidfd(dpid);
	shmbus_bus_stats_t bs;
	CHECK_RC(shmbus_bus_stats(bus, &bs), 0);
	CHECK(bs.daemon_pid == dpid && bs.daemon_running == 1);
	printf("%s: shmbusd returned 0; the daemon is pid %d\n", busname, (int)dpid);

	/* Events: a client comes and goes. */
	shmbus_sub_t *log;
	CHECK_RC(shmbus_sub_open(&log, bus, T_LOG_TOPIC, NULL, SHMBUS_SUB_EARLIEST), 0);
	nseen = 0;
	wait_event(log, "topic_created", 0, ev, sizeof(ev));
	expect_member(ev, "topic", "t");
	wait_event(log, "start", dpid, ev, sizeof(ev));
	pid_t c = client(busname);
	wait_event(log, "attach", c, ev, sizeof(ev));
	wait_event(log, "detach", c, ev, sizeof(ev));
	wait_event(log, "exit", c, ev, sizeof(ev));

	/* The pipe: its end, with nothing before it. */
	ssize_t n = t_read_to_end(out, buf, sizeof(buf), T_WAIT_MS, 1);
	if (n != 0) {
		if (n < 0)
			fprintf(stderr,
				"%s: the pipe did not end within %d ms: the daemon holds "
				"it\n",
				busname, T_WAIT_MS);
		else
			fprintf(stderr, "%s: the detached daemon wrote to the terminal: %s\n",
				busname, buf);
		exit(1);
	}
	close(out);
	printf("%s: after %u events, nothing on the terminal, and its end\n", busname, nseen);

	/* Its stdio: nothing of the "terminal". */
	for (int k = 0; k < 3; k++) {
		fd_target(dpid, k, target, sizeof(target));
		const char *want = k == 2 && log_file ? log_file : "/dev/null";
		if (strcmp(target, want)) {
			fprintf(stderr, "%s: the daemon's fd %d is %s, wanted %s\n", busname, k,
				target, want);
			exit(1);
		}
	}

	if (log_file) {
		for (unsigned i = 0; i < nseen; i++)
			if (!file_has_line(log_file, seen[i])) {
				fprintf(stderr, "%s: not in %s: %s\n", busname, log_file, seen[i]);
				exit(1);
			}
		printf("%s: the %u events are in %s\n", busname, nseen, log_file);
		/* Rotation: move the file away, SIGHUP. */
		char moved[320];
		snprintf(moved, sizeof(moved), "%s.1", log_file);
		CHECK(rename(log_file, moved) == 0);
		CHECK(kill(dpid, SIGHUP) == 0);
		nseen = 0;
		wait_event(log, "reload", 0, ev, sizeof(ev));
		if (!file_has_line(log_file, ev) || file_has_line(moved, ev)) {
			fprintf(stderr, "%s: after SIGHUP, %s is in %s, not in %s\n", busname, ev,
				file_has_line(moved, ev) ? moved : "neither", log_file);
			exit(1);
		}
		c = client(busname);
		wait_event(log, "exit", c, ev, sizeof(ev));
		CHECK(file_has_line(log_file, ev) && !file_has_line(moved, ev));
		printf("%s: after the file was moved and SIGHUP, a new %s\n", busname, log_file);
	}

	/* C: a second daemon for this bus, detached, refused after the fork. */
	if (!log_file) {
		int out2;
		st = start_detached(conf, &out2);
		n = t_read_to_end(out2, buf, sizeof(buf), T_WAIT_MS, 0);
		close(out2);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 1 || n <= 0 ||
		    !strstr(buf, "another daemon serves")) {
			fprintf(stderr,
				"a second daemon on a served bus: status 0x%x, stderr: %s\n", st,
				n > 0 ? buf : "(nothing)");
			exit(1);
		}
		printf("%s: a second start exits 1: %s", busname, buf);
		CHECK_RC(shmbus_daemon_ping(bus, T_WAIT_MS, &info), 0);
		CHECK(info.pid == dpid);
		CHECK_RC(shmbus_bus_stats(bus, &bs), 0);
		if (bs.daemon_pid != dpid || bs.daemon_running != 1) {
			fprintf(stderr, "after the refused start, daemon.state names pid %d (%s)\n",
				(int)bs.daemon_pid, bs.daemon_running ? "running" : "not running");
			exit(1);
		}
	}

	/* Stopped by its pid. */
	CHECK(kill(dpid, SIGTERM) == 0);
	if (t_pidfd_wait(daemon_pidfd, T_WAIT_MS) < 0) {
		fprintf(stderr, "%s: the daemon did not end within %d ms of SIGTERM\n", busname,
			T_WAIT_MS);
		exit(1);
	}
	close(daemon_pidfd);
	daemon_pidfd = -1;
	wait_event(log, "stop", dpid, ev, sizeof(ev));
	snprintf(buf, sizeof(buf), "%d", (int)dpid);
	expect_member(ev, "pid", buf);
	expect_member(ev, "bus", busname);
	expect_member(ev, "dir", bus_dir);
	expect_member(ev, "config", conf);
	if (log_file) {
		CHECK(file_has_line(log_file, ev));
		/* Its exit status is not ours to see (not our child): a sanitizer's report at
		 * its exit would be in the log. */
		char text[1 << 16];
		t_read(log_file, text, sizeof(text));
		if (strstr(text, "Sanitizer") || strstr(text, "runtime error")) {
			fprintf(stderr, "%s: the daemon's log has a sanitizer report:\n%s\n",
				busname, text);
			exit(1);
		}
	}
	printf("%s: stopped: %s\n", busname, ev);
	CHECK_RC(shmbus_daemon_ping(bus, 1000, &info), -ENOENT);
	shmbus_sub_close(log);
	shmbus_bus_close(bus);
}

/* D: a log_file that cannot be opened. */
static void bad_log(void)
{
	char conf[300], bus_dir[300], buf[4096];
	snprintf(conf, sizeof(conf), "%s/badlog.conf", dir);
	snprintf(bus_dir, sizeof(bus_dir), "%s/badlog", dir);
	t_write(conf, "[bus]\nname = badlog\ndir = %s\nlog_file = %s/no/such/dir/x.log\n", dir,
		dir);
	int out;
	int st = start_detached(conf, &out);
	ssize_t n = t_read_to_end(out, buf, sizeof(buf), T_WAIT_MS, 0);
	close(out);
	struct stat sb;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 1 || n <= 0 || !strstr(buf, "x.log") ||
	    !strstr(buf, strerror(ENOENT)) || stat(bus_dir, &sb) == 0) {
		fprintf(stderr, "an unwritable log_file: status 0x%x, bus dir %s, stderr: %s\n", st,
			stat(bus_dir, &sb) == 0 ? "made" : "not made", n > 0 ? buf : "(nothing)");
		exit(1);
	}
	printf("badlog: refused: %s", buf);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SHMBUSD\n", argv[0]);
		return 1;
	}
	exe = argv[1];
	dir = t_private_dir("daemon_detach");
	/* The test's own handles stay unregistered: only its client processes attach. */
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	unsetenv("SHMBUSD_CONFIG");
	atexit(kill_daemon);
	char log_file[300];
	snprintf(log_file, sizeof(log_file), "%s/shmbusd.log", dir);
	detached("quiet", NULL);
	detached("logged", log_file);
	bad_log();
	printf("ok\n");
	return 0;
}
