/* SPDX-License-Identifier: MIT */
/*
 * The daemon's own files are its alone, and nothing a client does to a file of the bus
 * kills it (issue 14, point 2). The bus: [bus] mode = 0666, group = nogroup (the case of
 * the issue), a configured topic a; the client is uid nobody in group nogroup (a child
 * that drops root's rights), root is the test itself.
 *
 *  A. What the daemon made: the bus directory sticky and setgid, group nogroup; daemon.state
 *     a regular file of the daemon's, writable by nobody else (mode at most 0644); topic a
 *     and $sys.log mode 0666, group nogroup.
 *  B. The client cannot open daemon.state for writing, nor truncate it (EACCES), nor
 *     remove daemon.state, control.sock, $sys.log or topic a (EPERM: sticky directory).
 *  C. Root truncates daemon.state to 0 bytes: the daemon lives, answers a ping, logs
 *     "state_damaged" and writes the file whole again (shmbus_bus_stats names it).
 *  D. Root truncates $sys.log.topic to 0 bytes (the daemon has it mapped: publishing into
 *     it faulted with SIGBUS before): at its next event (a reload) the daemon lives, makes
 *     a new $sys.log whose first event is "log_damaged", and still supervises: a client
 *     killed with a publisher slot in topic a is reaped ("crash", publishers_freed 1).
 *  E. The client truncates $sys.log.topic (it may: watchers take a reader slot in it);
 *     the daemon survives that too.
 *
 * usage: daemon_files SHMBUSD
 */
#include "tests/lib/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>

#include "bus/proto.h"

#define NOBODY 65534
#define NOGROUP 65534

static const char *dir;
static char bus_dir[300];
static shmbus_bus_t *bus;
static struct t_daemon shmbusd;
static pid_t dpid;

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", bus_dir, name);
}

static void ping_ok(const char *when)
{
	shmbus_daemon_info_t info;
	int rc = shmbus_daemon_ping(bus, 5000, &info);
	if (!t_daemon_alive(&shmbusd)) {
		fprintf(stderr, "FAIL %s: the daemon is gone\n", when);
		exit(1);
	}
	if (rc != 0 || info.pid != dpid) {
		fprintf(stderr, "FAIL %s: ping: %d (%s)\n", when, rc, shmbus_errmsg());
		exit(1);
	}
}

/* ---- as the client: uid nobody, group nogroup ---- */

struct as_client {
	int op; /* what to try */
	const char *path;
};

enum { OPEN_WRITE, TRUNCATE, UNLINK };

/* Runs in a child: drop to nobody/nogroup, try the op, write errno (0: it worked). */
static void client_try(void *arg, int fd)
{
	const struct as_client *c = arg;
	gid_t g = NOGROUP;
	int e = 0;
	if (setgroups(1, &g) < 0 || setresgid(NOGROUP, NOGROUP, NOGROUP) < 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) < 0) {
		e = -1;
	} else if (c->op == OPEN_WRITE) {
		int f = open(c->path, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
		e = f < 0 ? errno : 0;
		if (f >= 0)
			close(f);
	} else if (c->op == TRUNCATE) {
		e = truncate(c->path, 0) < 0 ? errno : 0;
	} else {
		e = unlink(c->path) < 0 ? errno : 0;
	}
	if (write(fd, &e, sizeof(e)) != sizeof(e))
		_exit(1);
}

/* The errno the client gets for op on bus file name (0: it could). */
static int client(int op, const char *name)
{
	char path[512];
	path_of(path, sizeof(path), name);
	struct as_client c = { op, path };
	int rfd, e = -2;
	pid_t pid = t_child(client_try, &c, &rfd);
	CHECK(read(rfd, &e, sizeof(e)) == sizeof(e));
	close(rfd);
	CHECK(t_reap(pid, T_WAIT_MS, "client") == 0);
	CHECK(e != -1); /* dropped its rights */
	return e;
}

static void expect_refused(int op, const char *name, int want)
{
	static const char *what[] = { "open for writing", "truncate", "remove" };
	int e = client(op, name);
	if (e != want)
		FAIL("uid %d could %s %s: %s, wanted %s", NOBODY, what[op], name,
		     e ? strerror(e) : "it worked", strerror(want));
}

/* ---- a supervised client that dies ---- */

static void pub_and_wait(void *arg, int fd)
{
	(void)arg;
	unsetenv("SHMBUS_NO_DAEMON");
	shmbus_bus_t *b;
	shmbus_pub_t *p;
	if (shmbus_bus_open(&b, "t") < 0 || shmbus_pub_open(&p, b, "a") < 0)
		_exit(1);
	char ok = 'y';
	if (write(fd, &ok, 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SHMBUSD\n", argv[0]);
		return 1;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root (to be another uid, and root, in turn)\n");
		return 77;
	}
	if (!getgrgid(NOGROUP)) {
		printf("SKIP: no group %d\n", NOGROUP);
		return 77;
	}
	dir = t_private_dir("daemon_files");
	/* The client must reach the bus directory to be refused by its files' modes. */
	CHECK(chmod(dir, 0711) == 0);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	unsetenv("SHMBUSD_CONFIG");
	snprintf(bus_dir, sizeof(bus_dir), "%s/t", dir);
	t_daemon_init(&shmbusd, argv[1]);
	t_daemon_config(&shmbusd,
			"[bus]\nname = t\ndir = %s\nmode = 0666\ngroup = nogroup\n"
			"[topic a]\ncapacity = 64K\n",
			dir);
	CHECK_RC(shmbus_bus_open(&bus, "t"), 0);
	dpid = t_daemon_start(&shmbusd, bus);
	char path[512], ev[4200], v[256];
	struct stat sb;

	/* ---- A: modes, owners, groups ---- */
	CHECK(stat(bus_dir, &sb) == 0);
	if (!(sb.st_mode & S_ISVTX) || !(sb.st_mode & S_ISGID) || sb.st_gid != NOGROUP)
		FAIL("bus directory: mode %04o group %d, wanted sticky, setgid, group %d",
		     (unsigned)sb.st_mode & 07777, (int)sb.st_gid, NOGROUP);
	path_of(path, sizeof(path), SHMBUS_STATE_NAME);
	CHECK(lstat(path, &sb) == 0);
	if (!S_ISREG(sb.st_mode) || sb.st_uid != 0 || (sb.st_mode & 0022))
		FAIL("daemon.state: mode %06o uid %d: wanted a regular file of root's that "
		     "nobody else can write",
		     (unsigned)sb.st_mode, (int)sb.st_uid);
	const char *topics[] = { "a.topic", "$sys.log.topic" };
	for (int i = 0; i < 2; i++) {
		path_of(path, sizeof(path), topics[i]);
		CHECK(stat(path, &sb) == 0);
		if ((sb.st_mode & 0777) != 0666 || sb.st_gid != NOGROUP)
			FAIL("%s: mode %04o group %d, wanted 0666 and group %d (the config's)",
			     topics[i], (unsigned)sb.st_mode & 0777, (int)sb.st_gid, NOGROUP);
	}

	/* ---- B: the client cannot write or remove the daemon's files ---- */
	expect_refused(OPEN_WRITE, SHMBUS_STATE_NAME, EACCES);
	expect_refused(TRUNCATE, SHMBUS_STATE_NAME, EACCES);
	expect_refused(UNLINK, SHMBUS_STATE_NAME, EPERM);
	expect_refused(UNLINK, SHMBUS_SOCK_NAME, EPERM);
	expect_refused(UNLINK, "$sys.log.topic", EPERM);
	expect_refused(UNLINK, "a.topic", EPERM);
	ping_ok("after the client's attempts");

	/* ---- C: root truncates daemon.state ---- */
	shmbus_sub_t *log = t_events_open(bus);
	path_of(path, sizeof(path), SHMBUS_STATE_NAME);
	CHECK(truncate(path, 0) == 0);
	const char *want_state[] = { "\"state_damaged\"", "\"truncated\"", NULL };
	if (t_event_find(log, ev, sizeof(ev), T_WAIT_MS, want_state) < 0)
		FAIL("no \"state_damaged\" event within %d ms of truncating daemon.state",
		     T_WAIT_MS);
	ping_ok("after daemon.state was truncated");
	shmbus_bus_stats_t bst;
	CHECK_RC(shmbus_bus_stats(bus, &bst), 0);
	if (bst.daemon_pid != dpid || !bst.daemon_running)
		FAIL("daemon.state after the truncation names pid %d (running %d), wanted %d",
		     (int)bst.daemon_pid, bst.daemon_running, (int)dpid);

	/* ---- D: root truncates $sys.log.topic; the next event ---- */
	/* Our own subscriber goes first: it would fault too (the library's part, not the
	 * daemon's). */
	shmbus_sub_close(log);
	path_of(path, sizeof(path), "$sys.log.topic");
	CHECK(stat(path, &sb) == 0);
	ino_t old = sb.st_ino;
	CHECK(truncate(path, 0) == 0);
	CHECK(kill(dpid, SIGHUP) == 0); /* an event: "reload" */
	/* A new $sys.log: another inode of a valid size. */
	uint64_t deadline = t_deadline(T_WAIT_MS);
	shmbus_topic_opts_t o;
	while (!(stat(path, &sb) == 0 && sb.st_ino != old &&
		 shmbus_topic_info(bus, T_LOG_TOPIC, &o) == 0)) {
		if (!t_daemon_alive(&shmbusd)) {
			fprintf(stderr, "FAIL: the daemon died after $sys.log was truncated\n");
			return 1;
		}
		CHECK(t_now_ns() < deadline);
		usleep(1000); /* a poll interval, up to the deadline */
	}
	log = t_events_open(bus);
	if (t_event_wait(log, "log_damaged", ev, sizeof(ev), T_WAIT_MS) < 0)
		FAIL("no \"log_damaged\" event on the new $sys.log");
	ping_ok("after $sys.log was truncated");
	int rfd;
	char c;
	pid_t cpid = t_child(pub_and_wait, NULL, &rfd);
	CHECK(read(rfd, &c, 1) == 1);
	close(rfd);
	t_kill(cpid);
	snprintf(v, sizeof(v), "\"pid\":%d,", (int)cpid);
	const char *want_crash[] = { "\"crash\"", v, "\"publishers_freed\":1", NULL };
	if (t_event_find(log, ev, sizeof(ev), T_WAIT_MS, want_crash) < 0)
		FAIL("a client killed after $sys.log was made again was not reaped");

	/* ---- E: the client truncates $sys.log.topic ---- */
	shmbus_sub_close(log);
	CHECK(stat(path, &sb) == 0);
	old = sb.st_ino;
	CHECK(client(TRUNCATE, "$sys.log.topic") == 0);
	CHECK(kill(dpid, SIGHUP) == 0);
	deadline = t_deadline(T_WAIT_MS);
	while (!(stat(path, &sb) == 0 && sb.st_ino != old &&
		 shmbus_topic_info(bus, T_LOG_TOPIC, &o) == 0)) {
		if (!t_daemon_alive(&shmbusd)) {
			fprintf(stderr,
				"FAIL: the daemon died after a client truncated $sys.log\n");
			return 1;
		}
		CHECK(t_now_ns() < deadline);
		usleep(1000); /* a poll interval, up to the deadline */
	}
	log = t_events_open(bus);
	if (t_event_wait(log, "log_damaged", ev, sizeof(ev), T_WAIT_MS) < 0)
		FAIL("no \"log_damaged\" event after the client's truncation");
	ping_ok("after a client truncated $sys.log");
	shmbus_sub_close(log);

	int st = t_daemon_stop(&shmbusd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("the daemon's exit status: 0x%x", st);
	shmbus_bus_close(bus);
	return t_failures ? 1 : 0;
}
