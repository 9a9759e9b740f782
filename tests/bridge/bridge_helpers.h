/* SPDX-License-Identifier: MIT */
/*
 * For the bridge tests: real redis-server instances on free ports of 127.0.0.1, each with
 * a private directory (its AOF) inside the test's own, started and SIGKILLed by the test
 * and killed at exit even when a check fails; a blocking hiredis client to look at what
 * arrived; the bridge's counters; a tiny TCP server for fake peers. Include after
 * daemon_helpers.h.
 *
 * Exit 77 only when redis-server is not installed.
 */
#ifndef SHMBUS_TESTS_BRIDGE_HELPERS_H
#define SHMBUS_TESTS_BRIDGE_HELPERS_H

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "../daemon_helpers.h"

#define BT_REDIS "/usr/bin/redis-server"

/*
 * How long to wait for anything a peer, Redis or the daemon must do before the test calls
 * it a failure. Waits end at the event, so a generous deadline costs nothing when all is
 * well; it has to cover an ASan build on a machine whose CPUs are busy with other work.
 */
#define BT_DEADLINE_MS 60000

/* A port nobody listens on now (bound, then released). */
static inline int bt_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	socklen_t l = sizeof(a);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &l) == 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* On failure, the daemon's log is shown before the private directory goes. */
static int bt_passed;
static pid_t bt_dir_owner_;
static void bt_show_log_(void)
{
	if (bt_passed || getpid() != bt_dir_owner_ || !getenv("SHMBUS_DIR"))
		return;
	char path[600], line[4096];
	snprintf(path, sizeof(path), "%s/daemon.log", getenv("SHMBUS_DIR"));
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	fprintf(stderr, "---- %s (last 60 lines)\n", path);
	char *lines[60] = { 0 };
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		free(lines[n % 60]);
		lines[n % 60] = strdup(line);
		n++;
	}
	for (int i = n > 60 ? n - 60 : 0; i < n; i++) {
		fputs(lines[i % 60] ? lines[i % 60] : "", stderr);
		free(lines[i % 60]);
	}
	fclose(f);
}

/* Make the private directory (as t_private_dir) and show the daemon's log on failure. */
static inline const char *bt_private_dir(const char *tag)
{
	const char *d = t_private_dir(tag);
	bt_dir_owner_ = getpid();
	atexit(bt_show_log_); /* runs before the directory is removed */
	return d;
}

/* ---- redis-server ------------------------------------------------------------------------ */

struct bt_redis {
	int port;
	pid_t pid;
	char dir[512];
	char pass[64]; /* requirepass, "" for none */
};

static pid_t bt_pids_[16];
static pid_t bt_owner_;

static void bt_cleanup_(void)
{
	if (getpid() != bt_owner_)
		return;
	for (int i = 0; i < 16; i++)
		if (bt_pids_[i] > 0) {
			kill(bt_pids_[i], SIGKILL);
			waitpid(bt_pids_[i], NULL, 0);
		}
}

static void bt_track_(pid_t pid, int add)
{
	if (!bt_owner_) {
		bt_owner_ = getpid();
		atexit(bt_cleanup_);
	}
	for (int i = 0; i < 16; i++) {
		if (add && bt_pids_[i] <= 0) {
			bt_pids_[i] = pid;
			return;
		}
		if (!add && bt_pids_[i] == pid) {
			bt_pids_[i] = 0;
			return;
		}
	}
}

static inline void bt_need_redis(void)
{
	if (access(BT_REDIS, X_OK) != 0) {
		printf("SKIP: %s is not installed (apt-get install redis-server)\n", BT_REDIS);
		exit(T_SKIP);
	}
}

/* A blocking client; a command that gets no answer within BT_DEADLINE_MS fails. */
static inline redisContext *bt_connect(int port)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	struct timeval cmd = { BT_DEADLINE_MS / 1000, 0 };
	if (c && redisSetTimeout(c, cmd) != REDIS_OK) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* A command that must succeed (not an error reply). */
static inline redisReply *bt_cmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (!r || r->type == REDIS_REPLY_ERROR) {
		fprintf(stderr, "redis command '%s' failed: %s\n", fmt, r ? r->str : c->errstr);
		exit(1);
	}
	return r;
}

/* Start (or start again, on the same port and directory) and wait until it answers. */
static inline void bt_redis_start(struct bt_redis *r)
{
	char port[16], log[600];
	snprintf(port, sizeof(port), "%d", r->port);
	snprintf(log, sizeof(log), "%s/redis.log", r->dir);
	mkdir(r->dir, 0700);
	char *argv[32];
	int n = 0;
	argv[n++] = (char *)BT_REDIS;
	argv[n++] = (char *)"--port";
	argv[n++] = port;
	argv[n++] = (char *)"--bind";
	argv[n++] = (char *)"127.0.0.1";
	argv[n++] = (char *)"--dir";
	argv[n++] = r->dir;
	/* Every write is in the AOF before Redis answers: a SIGKILL loses nothing that was
	 * confirmed (the directory is in /dev/shm, so fsync costs nothing). */
	argv[n++] = (char *)"--appendonly";
	argv[n++] = (char *)"yes";
	argv[n++] = (char *)"--appendfsync";
	argv[n++] = (char *)"always";
	argv[n++] = (char *)"--save";
	argv[n++] = (char *)"";
	argv[n++] = (char *)"--logfile";
	argv[n++] = log;
	argv[n++] = (char *)"--protected-mode";
	argv[n++] = (char *)"no";
	if (r->pass[0]) {
		argv[n++] = (char *)"--requirepass";
		argv[n++] = r->pass;
	}
	argv[n] = NULL;
	r->pid = dt_spawn(argv, NULL, NULL);
	bt_track_(r->pid, 1);
	uint64_t deadline = t_now_ns() + BT_DEADLINE_MS * 1000000ull;
	for (;;) {
		if (waitpid(r->pid, NULL, WNOHANG) != 0) {
			fprintf(stderr, "redis-server on port %d exited at start; its log: %s\n",
				r->port, log);
			exit(1);
		}
		redisContext *c = bt_connect(r->port);
		if (c) {
			redisReply *rep = r->pass[0] ? redisCommand(c, "AUTH %s", r->pass) : NULL;
			if (rep)
				freeReplyObject(rep);
			rep = redisCommand(c, "PING");
			int ok = rep && rep->type == REDIS_REPLY_STATUS &&
				 !strcmp(rep->str, "PONG");
			if (rep)
				freeReplyObject(rep);
			redisFree(c);
			if (ok)
				return;
		}
		if (t_now_ns() > deadline) {
			fprintf(stderr,
				"redis-server on port %d did not answer PING within %d ms; "
				"its log: %s\n",
				r->port, BT_DEADLINE_MS, log);
			exit(1);
		}
		usleep(5000);
	}
}

static inline void bt_redis_kill(struct bt_redis *r)
{
	if (r->pid <= 0)
		return;
	kill(r->pid, SIGKILL);
	waitpid(r->pid, NULL, 0);
	bt_track_(r->pid, 0);
	r->pid = 0;
}

/* A passing test's end: the daemon stops (exit status 0), then the client and the server
 * go; "ok". Returns main's exit status. */
static inline int bt_redis_pass(pid_t daemon, redisContext *c, struct bt_redis *r,
				shmbus_bus_t *bus)
{
	CHECK(td_stop(daemon) == 0);
	redisFree(c);
	bt_redis_kill(r);
	shmbus_bus_close(bus);
	bt_passed = 1;
	printf("ok\n");
	return 0;
}

/* A new server on a free port with its directory under the test's. */
static inline void bt_redis_new(struct bt_redis *r, const char *name)
{
	memset(r, 0, sizeof(*r));
	r->port = bt_free_port();
	snprintf(r->dir, sizeof(r->dir), "%s/%s", getenv("SHMBUS_DIR"), name);
}

static inline redisContext *bt_client(const struct bt_redis *r)
{
	redisContext *c = bt_connect(r->port);
	CHECK(c != NULL);
	if (r->pass[0])
		freeReplyObject(bt_cmd(c, "AUTH %s", r->pass));
	return c;
}

static inline long long bt_xlen(redisContext *c, const char *key)
{
	redisReply *r = bt_cmd(c, "XLEN %s", key);
	long long n = r->integer;
	freeReplyObject(r);
	return n;
}

/* Wait until XLEN key reaches n (at most timeout_ms); returns the length seen last. */
static inline long long bt_wait_xlen(redisContext *c, const char *key, long long n, int timeout_ms)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
	long long have;
	while ((have = bt_xlen(c, key)) < n && t_now_ns() < deadline)
		usleep(20000);
	return have;
}

/* Wait until XLEN key reaches n, then check it is exactly n; fail the test saying so if not. */
static inline void bt_need_xlen(redisContext *c, const char *key, long long n)
{
	long long have = bt_wait_xlen(c, key, n, BT_DEADLINE_MS);
	if (have != n) {
		fprintf(stderr, "stream %s: XLEN %lld (after waiting up to %d ms), want %lld\n",
			key, have, BT_DEADLINE_MS, n);
		exit(1);
	}
}

/* ---- the bridge's counters ----------------------------------------------------------------- */

static inline int bt_stats(shmbus_bus_t *bus, const char *name, shmbus_bridge_info_t *out)
{
	shmbus_bridge_info_t all[16];
	int n = shmbus_bridge_stats(bus, all, 16, NULL);
	for (int i = 0; i < n && i < 16; i++)
		if (!strcmp(all[i].name, name)) {
			*out = all[i];
			return 0;
		}
	return -ENOENT;
}

static inline void bt_print_info_(const char *what, const shmbus_bridge_info_t *st)
{
	fprintf(stderr,
		"  %s: up %d, topics %u, sent %llu, confirmed %llu, lag %llu, reconnects %llu,"
		" errors %llu, lost %llu, duplicates %llu, dropped %llu, last error \"%s\"\n",
		what, st->up, st->topics, (unsigned long long)st->sent,
		(unsigned long long)st->confirmed, (unsigned long long)st->lag,
		(unsigned long long)st->reconnects, (unsigned long long)st->errors,
		(unsigned long long)st->lost, (unsigned long long)st->duplicates,
		(unsigned long long)st->dropped, st->last_error);
}

/* On stderr: the counters of the mirror, import or listener name (for a failure). */
static inline void bt_show(shmbus_bus_t *bus, const char *name)
{
	shmbus_bridge_info_t st;
	if (bt_stats(bus, name, &st) == 0)
		bt_print_info_(name, &st);
	else
		fprintf(stderr, "  (the bridge has no '%s')\n", name);
}

static inline void bt_stats_fail_(const char *file, int line, const char *name, const char *cond,
				  int found, const shmbus_bridge_info_t *st)
{
	fprintf(stderr, "%s:%d: '%s' never had %s within %d ms\n", file, line, name, cond,
		BT_DEADLINE_MS);
	if (!found)
		fprintf(stderr, "  (the bridge has no '%s')\n", name);
	else
		bt_print_info_("last seen", st);
	exit(1);
}

/*
 * Wait until the counters of the mirror, import or listener name (read into the
 * shmbus_bridge_info_t st) make cond true: a C expression of st, re-checked every 2 ms for
 * up to BT_DEADLINE_MS. Fails the test showing cond and the counters seen last. The
 * counters are the bridge's own, in shared memory: what `shmbus stat` shows.
 */
#define BT_AWAIT(bus, name, st, cond)                                                        \
	do {                                                                                 \
		uint64_t bt_dl_ = t_now_ns() + BT_DEADLINE_MS * 1000000ull;                  \
		int bt_found_;                                                               \
		while (!(bt_found_ = bt_stats((bus), (name), &(st)) == 0) || !(cond)) {      \
			if (t_now_ns() > bt_dl_)                                             \
				bt_stats_fail_(__FILE__, __LINE__, (name), #cond, bt_found_, \
					       &(st));                                       \
			usleep(2000);                                                        \
		}                                                                            \
	} while (0)

/* A message whose every byte depends on (topic tag, seq): binary, NULs included. */
static inline size_t bt_payload(uint8_t *buf, uint32_t tag, uint64_t seq)
{
	size_t len = 8 + (size_t)((seq * 7 + tag) % 120);
	memcpy(buf, &seq, 8);
	uint64_t s = seq * 0x9e3779b97f4a7c15ull + tag;
	for (size_t i = 8; i < len; i++)
		buf[i] = (uint8_t)(t_rand(&s) >> 56);
	return len;
}

/* Publish messages from..from+n-1 of (tag, seq) payloads on topic, with type. */
static inline void bt_publish(shmbus_bus_t *bus, const char *topic, uint32_t tag, uint64_t from,
			      uint64_t n, uint32_t type)
{
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, topic), 0);
	uint8_t buf[256];
	for (uint64_t i = from; i < from + n; i++) {
		size_t len = bt_payload(buf, tag, i);
		CHECK_RC(shmbus_publish(p, buf, len, type), 0);
	}
	shmbus_pub_close(p);
}

/* ---- python3-websockets peers ------------------------------------------------------------ */

#define BT_PYTHON "/usr/bin/python3"

static char bt_peer_py_[600];

/* Skip unless /usr/bin/python3 has websockets; remember where ws_peer.py is. */
static inline void bt_need_websockets(const char *self)
{
	if (access(BT_PYTHON, X_OK) != 0 ||
	    system(BT_PYTHON " -c 'import websockets' 2>/dev/null") != 0) {
		printf("SKIP: %s has no websockets module (apt-get install python3-websockets)\n",
		       BT_PYTHON);
		exit(T_SKIP);
	}
	const char *src = getenv("BT_SOURCE_DIR");
	if (src)
		snprintf(bt_peer_py_, sizeof(bt_peer_py_), "%s/ws_peer.py", src);
	else
		snprintf(bt_peer_py_, sizeof(bt_peer_py_), "%s", self);
	CHECK(access(bt_peer_py_, R_OK) == 0);
}

/* Run ws_peer.py with args (NULL-terminated); its stdout comes through *out_fd. */
static inline pid_t bt_peer(int *out_fd, ...)
{
	char *argv[16];
	int n = 0;
	argv[n++] = (char *)BT_PYTHON;
	argv[n++] = bt_peer_py_;
	va_list ap;
	va_start(ap, out_fd);
	char *a;
	while ((a = va_arg(ap, char *)) && n < 15)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	int p[2];
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	pid_t pid = dt_fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	bt_track_(pid, 1);
	*out_fd = p[0];
	return pid;
}

/* A line of a peer's output (without the newline), waiting at most timeout_ms. 0 or -1. */
static inline int bt_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t o = 0;
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (o + 1 < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = t_now_ns();
		if (now >= deadline)
			break;
		if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
			continue;
		char ch;
		if (read(fd, &ch, 1) != 1)
			break;
		if (ch == '\n') {
			buf[o] = '\0';
			return 0;
		}
		buf[o++] = ch;
	}
	buf[o] = '\0';
	return -1;
}

/* Wait for a peer to exit (at most timeout_ms); its exit status, or -1. */
static inline int bt_peer_wait(pid_t pid, int timeout_ms)
{
	int st;
	if (dt_wait(pid, timeout_ms, &st) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		bt_track_(pid, 0);
		return -1;
	}
	bt_track_(pid, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Wait for the peer's line "ready" (printed once its socket listens or its WebSocket is
 * open); fail the test, naming the peer and what came instead, if it does not come. */
static inline void bt_peer_ready(int fd, const char *what)
{
	char line[256];
	if (bt_line(fd, line, sizeof(line), BT_DEADLINE_MS) < 0 || strcmp(line, "ready")) {
		fprintf(stderr, "peer %s: no \"ready\" (got \"%s\"; it exited, or took %d ms)\n",
			what, line, BT_DEADLINE_MS);
		exit(1);
	}
}

/* Wait for a peer to exit; fail the test unless it exits with status 0. */
static inline void bt_peer_done(pid_t pid, const char *what)
{
	int rc = bt_peer_wait(pid, BT_DEADLINE_MS);
	if (rc != 0) {
		fprintf(stderr, "peer %s: %s\n", what,
			rc < 0 ? "did not exit within the deadline (or was killed)" :
				 "exited with a failure status");
		exit(1);
	}
}

#endif
