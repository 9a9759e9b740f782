/* SPDX-License-Identifier: MIT */
/*
 * Who may create, publish, subscribe and remove, over three uids, in file mode and in
 * brokered mode (issue 14), against a real shmbusd with one config:
 *
 *   [bus] mode 0666, group nogroup (in file mode: its members may add files to the bus
 *         directory; both users are members)
 *   [access orders.>] owner root, mode 0600, publish = uid:1000,
 *                     subscribe = uid:1000, uid:65534
 *   [access secret.>] mode 0600 (root only)
 *
 * The uids: root (the daemon's, the owner), 1000 (a publisher) and 65534 (nobody, a
 * subscriber), each in a forked child that dropped root's rights. Brokered mode enforces
 * every cell; file mode only what file permissions can (a topic file is opened read-write
 * by publishers and subscribers alike, and creating is writing the bus directory), and
 * the table says exactly that: those cells are asserted as the documented limits
 * (docs/security.md), so that a change in either direction is seen.
 *
 * Brokered mode also: no topic file exists; a refusal is -EACCES with a message naming the
 * rule and an access_denied event; a subscriber's log is mapped read-only (its maps say
 * so, a write faults and changes nothing); the memfds cannot be truncated, even by root;
 * a killed subscriber is reaped; with the daemon stopped, opens fail with -ENOTCONN and
 * make no file.
 *
 * usage: daemon_access_matrix SHMBUSD file|brokered
 */
#include "tests/lib/daemon.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bus/intree.h"

#define ROOT 0
#define USER 1000
#define NOBODY 65534

enum op { OP_CREATE, OP_PUBLISH, OP_SUBSCRIBE, OP_REMOVE };
static const char *const op_name[] = { "create", "publish", "subscribe", "remove" };

static int brokered;
static char bus_dir[600];
static struct t_daemon shmbusd;

static const char conf_fmt[] = "[bus]\nname = m\ndir = %s\nmode = 0666\ngroup = nogroup\n"
			       "access = %s\n"
			       "[topic orders.in]\ncapacity = 64K\n"
			       "[topic secret.in]\ncapacity = 64K\n"
			       "[access orders.>]\nmode = 0600\npublish = uid:%d\n"
			       "subscribe = uid:%d, uid:%d\n"
			       "[access secret.>]\nmode = 0600\n";

struct job {
	uid_t uid;
	enum op op;
	const char *topic;
};

static void become(uid_t uid)
{
	if (uid == ROOT)
		return;
	/* In the bus's group (nogroup): the library opens a group-writable bus directory only
	 * for its members (file mode). */
	gid_t g[2] = { (gid_t)uid, 65534 };
	CHECK(setgroups(2, g) == 0);
	CHECK(setresgid(uid, uid, uid) == 0);
	CHECK(setresuid(uid, uid, uid) == 0);
}

/* In a child: do j as j->uid; write the result and the message. */
static void job_run(void *arg, int fd)
{
	const struct job *j = arg;
	become(j->uid);
	shmbus_bus_t *bus = NULL;
	int rc = shmbus_bus_open(&bus, "m");
	if (rc == 0) {
		shmbus_topic_opts_t o;
		shmbus_topic_opts_init(&o);
		o.capacity = 65536;
		shmbus_pub_t *p;
		shmbus_sub_t *s;
		switch (j->op) {
		case OP_CREATE:
			rc = shmbus_topic_create(bus, j->topic, &o);
			break;
		case OP_PUBLISH:
			rc = shmbus_pub_open(&p, bus, j->topic);
			if (rc == 0) {
				rc = shmbus_publish(p, "m", 1, 7);
				shmbus_pub_close(p);
			}
			break;
		case OP_SUBSCRIBE:
			rc = shmbus_sub_open(&s, bus, j->topic, NULL, 0);
			if (rc == 0)
				shmbus_sub_close(s);
			break;
		case OP_REMOVE:
			rc = shmbus_topic_remove(bus, j->topic);
			break;
		}
	}
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", rc < 0 ? shmbus_errmsg() : "");
	if (bus)
		shmbus_bus_close(bus);
	if (write(fd, &rc, sizeof(rc)) != sizeof(rc) || write(fd, msg, sizeof(msg)) != sizeof(msg))
		_exit(1);
}

static int as_user(uid_t uid, enum op op, const char *topic, char *msg, size_t len)
{
	struct job j = { uid, op, topic };
	int rfd, rc = 1;
	char m[512];
	pid_t pid = t_child(job_run, &j, &rfd);
	CHECK(read(rfd, &rc, sizeof(rc)) == sizeof(rc));
	CHECK(read(rfd, m, sizeof(m)) == sizeof(m));
	close(rfd);
	CHECK(t_reap(pid, T_WAIT_MS, "a client as another user") == 0);
	if (msg)
		snprintf(msg, len, "%s", m);
	return rc;
}

/* ok: 0 allowed; else the error wanted. */
static int denials;
static void cell(uid_t uid, enum op op, const char *topic, int want)
{
	char msg[512];
	int rc = as_user(uid, op, topic, msg, sizeof(msg));
	/* A topic that existed is created "again": 1. */
	if (op == OP_CREATE && rc == 1)
		rc = 0;
	printf("  %-6s uid %-5d %-10s -> %s%s%s\n", op_name[op], (int)uid, topic,
	       rc == 0 ? "allowed" : strerror(-rc), rc ? ": " : "", rc ? msg : "");
	if (rc != want)
		FAIL("%s mode: uid %d %s %s: %d (%s), wanted %d (%s)",
		     brokered ? "brokered" : "file", (int)uid, op_name[op], topic, rc, msg, want,
		     want ? strerror(-want) : "allowed");
	if (rc == -EACCES && brokered) {
		/* The message names the rule. */
		CHECK(strstr(msg, "may not") != NULL && strstr(msg, topic) != NULL);
		denials++;
	}
}

/* In file mode, a topic a client made is taken over by the daemon (owner, mode, ACL) by
 * the time its topic_created event is out. */
static void created(shmbus_sub_t *log, const char *topic)
{
	if (brokered)
		return;
	char ev[4200], want[200];
	snprintf(want, sizeof(want), "\"topic\":\"%s\"", topic);
	const char *n[] = { "\"topic_created\"", want, NULL };
	if (t_event_find(log, ev, sizeof(ev), T_WAIT_MS, n) < 0)
		FAIL("no topic_created event for %s", topic);
}

static void matrix(shmbus_sub_t *log)
{
	const int D = -EACCES;
	/* File mode: the bus directory (sticky, everyone writes) lets anyone create, and
	 * the sticky bit lets only a file's owner or root remove it (-EPERM). */
	const int F_RM = -EPERM;
	printf("%s mode:\n", brokered ? "brokered" : "file");
	cell(ROOT, OP_CREATE, "orders.a", 0);
	created(log, "orders.a");
	cell(USER, OP_CREATE, "orders.b", 0);
	created(log, "orders.b");
	cell(NOBODY, OP_CREATE, "orders.c", brokered ? D : 0); /* file mode: a limit */
	created(log, "orders.c");
	cell(USER, OP_CREATE, "secret.b", brokered ? D : 0); /* file mode: a limit */
	created(log, "secret.b");

	cell(ROOT, OP_PUBLISH, "orders.in", 0);
	cell(USER, OP_PUBLISH, "orders.in", 0);
	/* File mode: nobody's ACL entry is read-write (a subscriber writes its slot), so it
	 * can publish too: the limit brokered mode removes. */
	cell(NOBODY, OP_PUBLISH, "orders.in", brokered ? D : 0);
	cell(USER, OP_PUBLISH, "secret.in", D);
	cell(NOBODY, OP_PUBLISH, "secret.in", D);

	cell(ROOT, OP_SUBSCRIBE, "orders.in", 0);
	cell(USER, OP_SUBSCRIBE, "orders.in", 0);
	cell(NOBODY, OP_SUBSCRIBE, "orders.in", 0);
	cell(USER, OP_SUBSCRIBE, "secret.in", D);
	cell(NOBODY, OP_SUBSCRIBE, "secret.in", D);
	/* A topic made by a client belongs to the rule's owner, not to its maker. */
	cell(NOBODY, OP_SUBSCRIBE, "secret.b", D);

	cell(USER, OP_REMOVE, "orders.a", brokered ? D : F_RM);
	cell(NOBODY, OP_REMOVE, "orders.a", brokered ? D : F_RM);
	cell(ROOT, OP_REMOVE, "orders.a", 0);
	cell(ROOT, OP_SUBSCRIBE, "orders.a", -ENOENT);
}

/* ---- brokered only ---- */

/* The bus directory has no topic file: only control.sock and daemon.state. */
static void no_files(void)
{
	DIR *dir = opendir(bus_dir);
	CHECK(dir);
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "control.sock") ||
		    !strcmp(de->d_name, "daemon.state"))
			continue;
		FAIL("brokered bus directory holds %s", de->d_name);
	}
	closedir(dir);
	struct stat sb;
	CHECK(stat(bus_dir, &sb) == 0);
	CHECK((sb.st_mode & 07777) == 0755);
}

/* As nobody: subscribe; the log is mapped read-only; a write to it faults. */
static void ro_child(void *arg, int fd)
{
	(void)arg;
	become(NOBODY);
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, "m"), 0);
	shmbus_sub_t *s;
	CHECK_RC(shmbus_sub_open(&s, bus, "orders.in", NULL, SHMBUS_SUB_EARLIEST), 0);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(s, &m, T_WAIT_MS), 0);
	CHECK(m.len == 1 && ((const char *)m.data)[0] == 'm');
	/* The kernel's view of our mappings: part A read-only, part B read-write. */
	FILE *f = fopen("/proc/self/maps", "re");
	CHECK(f);
	char line[512];
	int ro = 0, rw = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "shmbus:orders.in:log"))
			ro += strncmp(strchr(line, ' ') + 1, "r--s", 4) == 0;
		if (strstr(line, "shmbus:orders.in:log") && strstr(line, " rw"))
			FAIL("the log is mapped writable: %s", line);
		if (strstr(line, "shmbus:orders.in:readers"))
			rw += strncmp(strchr(line, ' ') + 1, "rw-s", 4) == 0;
	}
	fclose(f);
	CHECK(ro == 1 && rw == 1);
	/* Forge the message we hold: the write faults. */
	char ok = 'y';
	CHECK(write(fd, &ok, 1) == 1);
	signal(SIGSEGV, SIG_DFL);
	((volatile char *)m.data)[0] = 'X';
	_exit(0); /* not reached */
}

static void readonly_log(shmbus_bus_t *bus)
{
	int rfd;
	pid_t pid = t_child(ro_child, NULL, &rfd);
	char c = t_wait_byte(rfd, "the read-only subscriber");
	CHECK(c == 'y');
	close(rfd);
	int st;
	CHECK(t_wait(pid, T_WAIT_MS, &st) == 0);
	if (!t_signalled(st, SIGSEGV))
		FAIL("a subscriber's write to the log did not fault (status 0x%x)", st);
	/* And the message is as it was. */
	shmbus_sub_t *s;
	CHECK_RC(shmbus_sub_open(&s, bus, "orders.in", NULL, SHMBUS_SUB_EARLIEST), 0);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(s, &m, T_WAIT_MS), 0);
	CHECK(m.len == 1 && ((const char *)m.data)[0] == 'm');
	shmbus_sub_close(s);
}

/* Every memfd the daemon holds refuses ftruncate, even from root through /proc. */
static void no_truncate(void)
{
	char d[64], path[400], target[400];
	snprintf(d, sizeof(d), "/proc/%d/fd", (int)shmbusd.pid);
	DIR *dir = opendir(d);
	CHECK(dir);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(dir))) {
		snprintf(path, sizeof(path), "%s/%s", d, de->d_name);
		ssize_t k = readlink(path, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = '\0';
		if (!strstr(target, "memfd:shmbus:"))
			continue;
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue; /* the read-only reopen */
		CHECK(ftruncate(fd, 0) < 0 && errno == EPERM);
		CHECK(ftruncate(fd, 1 << 30) < 0 && errno == EPERM);
		close(fd);
		n++;
	}
	closedir(dir);
	CHECK(n >= 6); /* $sys.log, orders.in, secret.in: two parts each at least */
	CHECK(t_daemon_alive(&shmbusd));
}

/* A subscriber killed while it holds a slot is reaped through the broker. */
static void sub_child(void *arg, int fd)
{
	(void)arg;
	become(NOBODY);
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, "m"), 0);
	shmbus_sub_t *s;
	CHECK_RC(shmbus_sub_open(&s, bus, "orders.in", NULL, 0), 0);
	char ok = 'y';
	CHECK(write(fd, &ok, 1) == 1);
	for (;;)
		pause();
}

static void killed_reaped(shmbus_bus_t *bus, shmbus_sub_t *log)
{
	shmbus_topic_stats_t st0, st;
	CHECK_RC(shmbus_topic_stats(bus, "orders.in", &st0), 0);
	int rfd;
	pid_t pid = t_child(sub_child, NULL, &rfd);
	CHECK(t_wait_byte(rfd, "the subscriber") == 'y');
	close(rfd);
	CHECK_RC(shmbus_topic_stats(bus, "orders.in", &st), 0);
	CHECK(st.readers == st0.readers + 1);
	kill(pid, SIGKILL);
	char ev[4200], want[64];
	snprintf(want, sizeof(want), "\"pid\":%d", (int)pid);
	const char *n[] = { "\"crash\"", want, NULL };
	if (t_event_find(log, ev, sizeof(ev), T_WAIT_MS, n) < 0)
		FAIL("no crash event for the killed subscriber");
	int status;
	t_wait(pid, T_WAIT_MS, &status);
	/* Its slot is freed by the time the crash is logged. */
	CHECK_RC(shmbus_topic_stats(bus, "orders.in", &st), 0);
	CHECK(st.readers == st0.readers);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: daemon_access_matrix SHMBUSD file|brokered\n");
		return 2;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root (acts as other users)\n");
		return T_SKIP;
	}
	brokered = !strcmp(argv[2], "brokered");
	const char *dir = t_private_dir(brokered ? "matrix-b" : "matrix-f");
	CHECK(chmod(dir, 0755) == 0); /* the other users reach the bus directory */
	unsetenv("SHMBUSD_CONFIG");
	snprintf(bus_dir, sizeof(bus_dir), "%s/m", dir);
	t_daemon_init(&shmbusd, argv[1]);
	t_daemon_config(&shmbusd, conf_fmt, dir, brokered ? "brokered" : "file", USER, USER,
			NOBODY);
	shmbus_bus_t *bus;
	/* The directory exists before the daemon: made by root, as the daemon would. */
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "m"), 0);
	shmbus_bus_close(bus);
	unsetenv("SHMBUS_NO_DAEMON");
	t_daemon_spawn(&shmbusd);
	/* Wait for it (a brokered bus is used through it): a ping answers once it listens. */
	CHECK_RC(shmbus_bus_open_flags(&bus, "m", SHMBUS_BUS_LOOK), 0);
	t_daemon_ready(&shmbusd, bus, NULL);
	shmbus_bus_close(bus);
	CHECK_RC(shmbus_bus_open(&bus, "m"), 0);
	CHECK(shmbus_bus_brokered(bus) == brokered);
	shmbus_sub_t *log = t_events_open(bus);

	matrix(log);
	if (brokered) {
		/* Each refusal is on $sys.log. */
		char ev[4200];
		for (int i = 0; i < denials; i++) {
			const char *n[] = { "\"access_denied\"", NULL };
			if (t_event_find(log, ev, sizeof(ev), T_WAIT_MS, n) < 0)
				FAIL("%d refusals, %d access_denied events", denials, i);
		}
		no_files();
		readonly_log(bus);
		no_truncate();
		killed_reaped(bus, log);
	}
	shmbus_sub_close(log);
	shmbus_bus_close(bus);
	CHECK(t_daemon_stop(&shmbusd) == 0);
	if (brokered) {
		/* No daemon: nothing opens, and no file is made in its place. */
		CHECK_RC(shmbus_bus_open(&bus, "m"), 0);
		CHECK(shmbus_bus_brokered(bus));
		shmbus_pub_t *p;
		CHECK_RC(shmbus_pub_open(&p, bus, "orders.in"), -ENOTCONN);
		shmbus_topic_opts_t o;
		shmbus_topic_opts_init(&o);
		CHECK_RC(shmbus_topic_create(bus, "orders.z", &o), -ENOTCONN);
		shmbus_bus_close(bus);
		no_files();
	}
	printf("access matrix (%s mode): as documented\n", brokered ? "brokered" : "file");
	return 0;
}
