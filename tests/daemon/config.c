/* SPDX-License-Identifier: MIT */
/*
 * shmbusd's configuration, as a user meets it. Every bad file makes both `--check` and a
 * start exit with status 1 and "shmbusd: FILE:LINE: reason" on stderr, LINE being the
 * line at fault (an unknown key in [bus] or in a [topic], an unknown section, a bad size,
 * a capacity that is not a power of two, a bad policy, a key set twice, a syntax error,
 * a bad mode, a topic whose options do not fit together: the line of its section; of two
 * mistakes, the first with its own reason). A missing or unreadable file is refused
 * naming the file and the reason. `--check` on a good file prints ok, exits 0 and
 * creates nothing. A topic too big for /dev/shm is refused at start with what it needs,
 * what is free, and --shm-size. With no config at all the daemon runs a working bus on
 * the built-in defaults, and packaging/shmbusd.conf passes --check.
 *
 * The cases are independent: each failure is reported and the others still run.
 *
 * usage: daemon_config SHMBUSD PACKAGING_CONF INSTALLED_DEFAULT_CONF
 */
#include "tests/lib/daemon.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "bus/proto.h"

static const char *exe;
static const char *dir;


struct run {
	int status; /* wait status */
	char out[8192];
	char err[8192];
};

/*
 * Run shmbusd with the arguments args (NULL-terminated), at most timeout_ms. Returns 0,
 * or -1 if it was still running then (it is killed: a bad config that starts).
 */
static int run(struct run *r, const char *const *args, int timeout_ms)
{
	char *argv[8];
	int n = 0;
	argv[n++] = (char *)exe;
	for (; *args; args++) {
		CHECK(n < 7);
		argv[n++] = (char *)*args;
	}
	argv[n] = NULL;
	char out[300], err[300];
	snprintf(out, sizeof(out), "%s/stdout.txt", dir);
	snprintf(err, sizeof(err), "%s/stderr.txt", dir);
	pid_t pid = t_spawn(&(struct t_cmd){ .argv = argv, .out = out, .err = err });
	int rc = t_wait(pid, timeout_ms, &r->status);
	if (rc < 0) {
		CHECK(kill(pid, SIGKILL) == 0);
		r->status = t_reap(pid, T_WAIT_MS, "shmbusd killed with SIGKILL");
	}
	t_read(out, r->out, sizeof(r->out));
	t_read(err, r->err, sizeof(r->err));
	return rc < 0 ? -1 : 0;
}

static int exited_with(const struct run *r, int code)
{
	return WIFEXITED(r->status) && WEXITSTATUS(r->status) == code;
}

/*
 * Write the config text to DIR/name.conf. "DIR" in text becomes the private directory,
 * and the line that starts with '@' is the line at fault (the '@' is dropped). Returns
 * that line's number (0 if none).
 */
static int write_conf(char *path, size_t len, const char *name, const char *text)
{
	snprintf(path, len, "%s/%s.conf", dir, name);
	char body[4096];
	size_t o = 0;
	int line = 1, marked = 0;
	for (const char *p = text; *p; p++) {
		CHECK(o + 300 < sizeof(body));
		if (*p == '@' && (p == text || p[-1] == '\n')) {
			marked = line;
			continue;
		}
		if (!strncmp(p, "DIR", 3)) {
			o += (size_t)snprintf(body + o, sizeof(body) - o, "%s", dir);
			p += 2;
			continue;
		}
		if (*p == '\n')
			line++;
		body[o++] = *p;
	}
	body[o] = '\0';
	t_write(path, "%s", body);
	return marked;
}

/*
 * A bad config: `--check` and a start must both exit 1 with "shmbusd: PATH:LINE: " and
 * reason on stderr, LINE being the marked line (or, when alt_next, the one after it).
 */
static void bad_config(const char *name, const char *text, const char *reason, int alt_next)
{
	char path[300];
	int line = write_conf(path, sizeof(path), name, text);
	CHECK(line > 0);
	static const char *const modes[] = { "--check", "--foreground" };
	for (int m = 0; m < 2; m++) {
		struct run r;
		const char *args[] = { modes[m], "--config", path, NULL };
		if (run(&r, args, T_WAIT_MS) < 0) {
			FAIL("%s (%s): shmbusd started with this config:\n%s", name, modes[m],
			     r.err);
			continue;
		}
		char want[400], want2[400];
		snprintf(want, sizeof(want), "shmbusd: %s:%d: ", path, line);
		snprintf(want2, sizeof(want2), "shmbusd: %s:%d: ", path, line + 1);
		const char *at = strstr(r.err, want);
		if (!at && alt_next)
			at = strstr(r.err, want2);
		if (!exited_with(&r, 1) || !at || !strstr(at, reason) || strstr(r.out, "ok")) {
			FAIL("%s (%s): wanted exit 1 and \"%s...%s\" on stderr; got %s %d, "
			     "stderr: %s",
			     name, modes[m], want, reason,
			     WIFEXITED(r.status) ? "status" : "signal",
			     WIFEXITED(r.status) ? WEXITSTATUS(r.status) : WTERMSIG(r.status),
			     r.err);
			continue;
		}
		if (m == 0)
			printf("ok  %-22s %s", name, r.err);
	}
}

/* A config file that cannot be read: refused naming the file and the reason. */
static void unreadable(const char *name, const char *path, const char *reason)
{
	static const char *const modes[] = { "--check", "--foreground" };
	for (int m = 0; m < 2; m++) {
		struct run r;
		const char *args[] = { modes[m], "--config", path, NULL };
		if (run(&r, args, T_WAIT_MS) < 0) {
			FAIL("%s (%s): shmbusd started with %s as its config:\n%s", name, modes[m],
			     path, r.err);
			continue;
		}
		char want[400];
		snprintf(want, sizeof(want), "shmbusd: %s: ", path);
		const char *at = strstr(r.err, want);
		if (!exited_with(&r, 1) || !at || !strstr(at, reason)) {
			FAIL("%s (%s): wanted exit 1 and \"%s...%s\" on stderr; got %s %d, "
			     "stdout: %s stderr: %s",
			     name, modes[m], want, reason,
			     WIFEXITED(r.status) ? "status" : "signal",
			     WIFEXITED(r.status) ? WEXITSTATUS(r.status) : WTERMSIG(r.status),
			     r.out, r.err);
			continue;
		}
		if (m == 0)
			printf("ok  %-22s %s", name, r.err);
	}
}

static int exists(const char *path)
{
	struct stat sb;
	return lstat(path, &sb) == 0;
}

static void bad_configs(void)
{
	bad_config("bus_unknown_key",
		   "# shmbusd test configuration\n"
		   "[bus]\n"
		   "name = t\n"
		   "dir = DIR\n"
		   "@colour = blue\n"
		   "[limits]\n"
		   "max_clients = 10\n",
		   "unknown key 'colour' in [bus]", 0);
	bad_config("topic_unknown_key",
		   "[bus]\n"
		   "dir = DIR\n"
		   "\n"
		   "[topic orders]\n"
		   "capacity = 64K\n"
		   "@retention = 7d\n",
		   "unknown key 'retention' in a [topic] section", 0);
	/* The section's line, or that of its first key (where the parser sees it). */
	bad_config("unknown_section",
		   "[bus]\n"
		   "dir = DIR\n"
		   "@[buss]\n"
		   "name = t\n",
		   "unknown section [buss]", 1);
	bad_config("bad_size",
		   "[bus]\n"
		   "dir = DIR\n"
		   "[topic orders]\n"
		   "policy = block\n"
		   "@capacity = 12Q\n",
		   "capacity '12Q'", 0);
	bad_config("capacity_not_pow2",
		   "[bus]\n"
		   "dir = DIR\n"
		   "[topic orders]\n"
		   "@capacity = 3000K\n",
		   "capacity '3000K' is not a power of two", 0);
	bad_config("bad_policy",
		   "[bus]\n"
		   "dir = DIR\n"
		   "[topic orders]\n"
		   "capacity = 64K\n"
		   "@policy = sometimes\n"
		   "max_readers = 4\n",
		   "policy 'sometimes'", 0);
	bad_config("key_twice",
		   "[bus]\n"
		   "dir = DIR\n"
		   "[topic orders]\n"
		   "capacity = 64K\n"
		   "policy = block\n"
		   "@capacity = 128K\n",
		   "'capacity' is set twice", 0);
	bad_config("syntax_error",
		   "[bus]\n"
		   "dir = DIR\n"
		   "@this line has no equals sign\n"
		   "[limits]\n"
		   "max_clients = 10\n",
		   "syntax error", 0);
	bad_config("bad_mode",
		   "[bus]\n"
		   "name = t\n"
		   "@mode = 0999\n"
		   "dir = DIR\n",
		   "mode '0999'", 0);
	/* A detached daemon runs in / and reopens its log there: the path must say where. */
	bad_config("log_file_relative",
		   "[bus]\n"
		   "name = t\n"
		   "dir = DIR\n"
		   "@log_file = shmbusd.log\n",
		   "log_file 'shmbusd.log' is not an absolute path", 0);
	/* Each option fine alone; together they do not fit: the topic's section line. */
	bad_config("topic_inconsistent",
		   "[bus]\n"
		   "dir = DIR\n"
		   "name = t\n"
		   "[topic small]\n"
		   "capacity = 64K\n"
		   "\n"
		   "@[topic big]\n"
		   "capacity = 4K\n"
		   "max_message = 4K\n"
		   "policy = overwrite\n",
		   "[topic big]: max_message", 0);
	/* Two mistakes: the first is reported, with its own reason (not the last one's). */
	bad_config("first_of_two_keys",
		   "[bus]\n"
		   "dir = DIR\n"
		   "@colour = blue\n"
		   "[limits]\n"
		   "max_clients = 10\n"
		   "idle_timeout_ms = never\n",
		   "unknown key 'colour' in [bus]", 0);
	bad_config("syntax_then_key",
		   "[bus]\n"
		   "@name t\n"
		   "mode = 0999\n"
		   "dir = DIR\n",
		   "syntax error", 0);

	char path[300];
	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	unreadable("missing_file", path, strerror(ENOENT));
	snprintf(path, sizeof(path), "%s/conf.d", dir);
	CHECK(mkdir(path, 0700) == 0);
	unreadable("directory_as_file", path, strerror(EISDIR));
	if (geteuid() != 0) {
		write_conf(path, sizeof(path), "noperm", "[bus]\ndir = DIR\n");
		CHECK(chmod(path, 0) == 0);
		unreadable("unreadable_file", path, strerror(EACCES));
	} else {
		printf("note: running as root, a mode 000 file is readable: not tested\n");
	}
}

/* --check on a good file: ok on stdout, status 0, nothing created. */
static void check_good(void)
{
	char path[300], root[300];
	write_conf(path, sizeof(path), "good",
		   "# every key, each once\n"
		   "[bus]\n"
		   "name = chk\n"
		   "dir = DIR/checkroot\n"
		   "mode = 0660\n"
		   "log_capacity = 64K\n"
		   "log_file = DIR/checkroot.log\n"
		   "\n"
		   "[limits]\n"
		   "max_clients = 10\n"
		   "max_topics = 8\n"
		   "idle_timeout_ms = 1000\n"
		   "lag_alarm = 50%\n"
		   "\n"
		   "[topic orders]\n"
		   "capacity = 64K\n"
		   "max_message = 1K\n"
		   "policy = overwrite\n"
		   "max_readers = 8\n"
		   "max_publishers = 4\n"
		   "max_groups = 2\n"
		   "\n"
		   "[topic events.audit]\n"
		   "capacity = 1M\n"
		   "policy = block\n");
	snprintf(root, sizeof(root), "%s/checkroot", dir);
	struct run r;
	const char *args[] = { "--check", "--config", path, NULL };
	if (run(&r, args, T_WAIT_MS) < 0 || !exited_with(&r, 0) ||
	    !strstr(r.out, ": ok (2 topics)\n")) {
		FAIL("--check on a good config: status %d, stdout: %s stderr: %s",
		     WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1, r.out, r.err);
		return;
	}
	char bus[310], log[310];
	snprintf(bus, sizeof(bus), "%s/chk", root);
	snprintf(log, sizeof(log), "%s.log", root);
	if (exists(root) || exists(log)) {
		FAIL("--check created %s", exists(log) ? log : exists(bus) ? bus : root);
		return;
	}
	printf("ok  check_good             %s", r.out);

	/* One topic is "1 topic". */
	write_conf(path, sizeof(path), "one", "[topic orders]\ncapacity = 64K\n");
	if (run(&r, args, T_WAIT_MS) < 0 || !exited_with(&r, 0) ||
	    !strstr(r.out, ": ok (1 topic)\n")) {
		FAIL("--check on a config of one topic: stdout: %s stderr: %s", r.out, r.err);
		return;
	}
	printf("ok  check_good one topic   %s", r.out);
}

/* A topic bigger than /dev/shm's free space is refused at start. 1 if it could not be
 * tried (the tmpfs is that big). */
static int too_big(void)
{
	struct statvfs vfs;
	CHECK(statvfs(dir, &vfs) == 0);
	uint64_t avail_mib = ((uint64_t)vfs.f_bavail * vfs.f_frsize) >> 20;
	if (avail_mib > 600ull * 1024) {
		printf("note: %s has %" PRIu64 " MiB free: a 512G topic fits, not tested\n", dir,
		       avail_mib);
		return 1;
	}
	char path[300], topic[300], sock[300];
	write_conf(path, sizeof(path), "huge",
		   "[bus]\n"
		   "name = huge\n"
		   "dir = DIR\n"
		   "[topic small]\n"
		   "capacity = 64K\n"
		   "[topic huge]\n"
		   "capacity = 512G\n");
	struct run r;
	const char *args[] = { "--foreground", "--config", path, NULL };
	if (run(&r, args, T_WAIT_MS) < 0) {
		FAIL("a 512G topic: shmbusd started:\n%s", r.err);
		return 0;
	}
	unsigned long long need = 0, freemib = 0;
	const char *p = strstr(r.err, "need ");
	const char *q = p ? strstr(p, " has ") : NULL;
	if (p)
		need = strtoull(p + 5, NULL, 10);
	if (q)
		freemib = strtoull(q + 5, NULL, 10);
	uint64_t slack = 64 + avail_mib / 10; /* other tests use /dev/shm meanwhile */
	if (!exited_with(&r, 1) || !p || !q || strncmp(p + 5 + strcspn(p + 5, " "), " MiB", 4) ||
	    strncmp(q + 5 + strcspn(q + 5, " "), " MiB free", 9) || need < 512ull * 1024 ||
	    need > 513ull * 1024 || freemib + slack < avail_mib || freemib > avail_mib + slack ||
	    !strstr(r.err, "--shm-size")) {
		FAIL("a 512G topic with %" PRIu64 " MiB free: wanted exit 1 and a message with "
		     "the MiB needed and free and --shm-size; got status %d, stderr: %s",
		     avail_mib, WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1, r.err);
		return 0;
	}
	snprintf(topic, sizeof(topic), "%s/huge/huge.topic", dir);
	snprintf(sock, sizeof(sock), "%s/huge/%s", dir, SHMBUS_SOCK_NAME);
	if (exists(topic) || exists(sock))
		FAIL("a refused start left %s", exists(topic) ? topic : sock);
	printf("ok  too_big                %s", r.err);
	return 0;
}

/* No config at all: the built-in defaults serve bus "default" under $SHMBUS_DIR. */
static void defaults(const char *installed)
{
	if (exists(installed)) {
		printf("note: %s exists, so shmbusd would read it: built-in defaults not tested\n",
		       installed);
		return;
	}
	char root[300];
	snprintf(root, sizeof(root), "%s/defroot", dir);
	setenv("SHMBUS_DIR", root, 1);
	unsetenv("SHMBUSD_CONFIG");
	unsetenv("SHMBUS_BUS");
	setenv("SHMBUS_NO_DAEMON", "1", 1); /* the test's own handle stays unregistered */
	struct t_daemon d;
	t_daemon_init(&d, exe);
	d.conf[0] = '\0'; /* no --config */
	pid_t pid = t_daemon_spawn(&d);
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	CHECK(strstr(shmbus_bus_path(bus), "/defroot/default") != NULL);
	shmbus_daemon_info_t info;
	t_daemon_ready(&d, bus, &info);
	if (info.config[0] != '\0' || info.clients != 0)
		FAIL("defaults: the daemon says config '%s', %u clients", info.config,
		     info.clients);
	shmbus_topic_opts_t o;
	int rc = shmbus_topic_info(bus, T_LOG_TOPIC, &o);
	if (rc != 0 || o.policy != SHMBUS_OVERWRITE || o.capacity != 1u << 20)
		FAIL("defaults: %s: %d (%s)", T_LOG_TOPIC, rc, shmbus_errmsg());
	/* A client registers with it. */
	unsetenv("SHMBUS_NO_DAEMON");
	shmbus_bus_t *reg;
	CHECK_RC(shmbus_bus_open(&reg, NULL), 0);
	if (shmbus_bus_supervised(reg) != 1)
		FAIL("defaults: a client did not register");
	shmbus_bus_close(reg);
	int st = t_daemon_stop(&d);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("defaults: SIGTERM: wait status 0x%x", st);
	shmbus_bus_close(bus);
	printf("ok  defaults               pid %d served %s/default\n", (int)pid, root);
	setenv("SHMBUS_DIR", dir, 1);
}

/* The shipped file passes --check. It names /dev/shm/shmbus: if --check made the bus
 * directory there (it should make nothing), take that back. */
static void packaged(const char *path)
{
	const char *sysroot = "/dev/shm/shmbus", *sysbus = "/dev/shm/shmbus/default";
	int had_root = exists(sysroot), had_bus = exists(sysbus);
	struct run r;
	const char *args[] = { "--check", "--config", path, NULL };
	int rc = run(&r, args, T_WAIT_MS);
	if (!had_bus && exists(sysbus)) {
		fprintf(stderr, "note: --check created %s (removed again)\n", sysbus);
		rmdir(sysbus);
		if (!had_root)
			rmdir(sysroot);
	}
	if (rc < 0 || !exited_with(&r, 0) || !strstr(r.out, ": ok")) {
		FAIL("%s does not pass --check: status %d, stdout: %s stderr: %s", path,
		     WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1, r.out, r.err);
		return;
	}
	printf("ok  packaging              %s", r.out);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s SHMBUSD PACKAGING_CONF INSTALLED_DEFAULT_CONF\n",
			argv[0]);
		return 1;
	}
	exe = argv[1];
	dir = t_private_dir("daemon_config");
	unsetenv("SHMBUSD_CONFIG");
	bad_configs();
	check_good();
	int untried = too_big();
	defaults(argv[3]);
	packaged(argv[2]);
	if (t_failures) {
		fprintf(stderr, "%d case(s) failed\n", t_failures);
		return 1;
	}
	/* Everything else passed; the one case this machine cannot refuse is a skip. */
	return untried ? T_SKIP : 0;
}
