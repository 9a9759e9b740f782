/* SPDX-License-Identifier: MIT */
/*
 * For the bridge tests, on top of tests/lib (whose children the peers are: they die with
 * the test): real redis-server instances on free ports of 127.0.0.1, each with a private
 * directory (its AOF) inside the test's own, started and SIGKILLed by the test; a blocking
 * hiredis client to look at what arrived; the bridge's counters; the tests' payloads;
 * python3-websockets peers (ws_peer.py).
 *
 * Exit 77 only when redis-server or python3-websockets is not installed.
 */
#ifndef SHMBUS_TESTS_BRIDGE_HELPERS_H
#define SHMBUS_TESTS_BRIDGE_HELPERS_H

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "ring/wake.h"
#include "tests/lib/daemon.h"

#define BT_REDIS "/usr/bin/redis-server"

/*
 * How long to wait for anything a peer, Redis or the bridge must do before the test calls
 * it a failure: twice the harness's T_WAIT_MS, for Redis fsyncing every write and Python
 * peers, in an ASan build on a machine whose CPUs are busy with other work. Waits end at
 * the event, so a generous deadline costs nothing when all is well.
 */
#define BT_DEADLINE_MS (2 * T_WAIT_MS)

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

/* ---- redis-server ------------------------------------------------------------------------ */

struct bt_redis {
	int port;
	pid_t pid;
	char dir[512];
	char pass[64]; /* requirepass, "" for none */
};

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
	/* It says when it accepts connections: READY=1 on a socket standing in for systemd. */
	argv[n++] = (char *)"--supervised";
	argv[n++] = (char *)"systemd";
	argv[n] = NULL;
	char env_notify[200], msg[256];
	int nfd = t_notify_open(r->dir, "notify.sock", env_notify, sizeof(env_notify));
	const char *env[] = { env_notify, NULL };
	r->pid = t_spawn(&(struct t_cmd){ .argv = argv, .env = env });
	int rc = t_notify_wait(nfd, r->pid, "READY=1", BT_DEADLINE_MS, msg, sizeof(msg));
	close(nfd);
	if (rc < 0) {
		fprintf(stderr, "redis-server on port %d %s; its log: %s\n", r->port,
			rc == -ESRCH ? "exited at start" : "was not ready in time", log);
		exit(1);
	}
}

static inline void bt_redis_kill(struct bt_redis *r)
{
	if (r->pid <= 0)
		return;
	t_kill(r->pid);
	r->pid = 0;
}

/* A passing test's end: the daemon stops (exit status 0), then the client and the server
 * go; "ok". Returns main's exit status. */
static inline int bt_redis_pass(struct t_daemon *d, redisContext *c, struct bt_redis *r,
				shmbus_bus_t *bus)
{
	CHECK(t_exited(t_daemon_stop(d), 0));
	redisFree(c);
	bt_redis_kill(r);
	shmbus_bus_close(bus);
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

/*
 * Wait until XLEN key reaches n (at most timeout_ms); returns the length seen last. Woken
 * by each entry added: the newest entry's id is read before the length, and XREAD BLOCK
 * returns as soon as an entry comes after it (or at once if one came meanwhile).
 */
static inline long long bt_wait_xlen(redisContext *c, const char *key, long long n, int timeout_ms)
{
	uint64_t deadline = t_deadline(timeout_ms);
	for (;;) {
		char last[64] = "0-0"; /* no stream yet: any entry */
		redisReply *r = bt_cmd(c, "XREVRANGE %s + - COUNT 1", key);
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1 &&
		    r->element[0]->element[0]->type == REDIS_REPLY_STRING)
			snprintf(last, sizeof(last), "%s", r->element[0]->element[0]->str);
		freeReplyObject(r);
		long long have = bt_xlen(c, key);
		int left = t_ms_left(deadline);
		if (have >= n || left <= 0)
			return have;
		/* Blocks at most 10 s at a time: well within the client's command timeout. */
		freeReplyObject(bt_cmd(c, "XREAD COUNT 1 BLOCK %d STREAMS %s %s",
				       left < 10000 ? left : 10000, key, last));
	}
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
		uint64_t bt_dl_ = t_deadline(BT_DEADLINE_MS);                                \
		int bt_found_;                                                               \
		while (!(bt_found_ = bt_stats((bus), (name), &(st)) == 0) || !(cond)) {      \
			if (t_now_ns() > bt_dl_)                                             \
				bt_stats_fail_(__FILE__, __LINE__, (name), #cond, bt_found_, \
					       &(st));                                       \
			usleep(2000); /* poll interval */                                    \
		}                                                                            \
	} while (0)

/* A publisher thread's count of what it published: stored, and its waiter woken. */
static inline void bt_published_set(uint64_t *published, uint64_t n)
{
	__atomic_store_n(published, n, __ATOMIC_RELEASE);
	/* The low half is the futex word (little-endian x86_64 and arm64). */
	shmbus_futex_wake((uint32_t *)published, INT_MAX);
}

/*
 * Wait (at most BT_DEADLINE_MS) until a publisher thread's count of what it published
 * (bt_published_set()) reaches n; it is held back while the mirror name does not confirm.
 * Fails the test showing the mirror's counters.
 */
static inline void bt_wait_published(shmbus_bus_t *bus, const char *name, uint64_t *published,
				     uint64_t n)
{
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	for (;;) {
		uint64_t got = __atomic_load_n(published, __ATOMIC_ACQUIRE);
		if (got >= n)
			return;
		uint64_t now = t_now_ns();
		if (now > deadline) {
			fprintf(stderr, "%llu published after %d ms, waiting for %llu\n",
				(unsigned long long)got, BT_DEADLINE_MS, (unsigned long long)n);
			bt_show(bus, name);
			exit(1);
		}
		shmbus_futex_wait((uint32_t *)published, (uint32_t)got, (int64_t)(deadline - now));
	}
}

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
	char *argv[] = { (char *)BT_PYTHON, (char *)"-c", (char *)"import websockets", NULL };
	int have = 0;
	if (access(BT_PYTHON, X_OK) == 0) {
		pid_t pid = t_spawn(&(struct t_cmd){ .argv = argv, .err = "/dev/null" });
		have = t_exited(t_reap(pid, BT_DEADLINE_MS, "python3 -c 'import websockets'"), 0);
	}
	if (!have) {
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
	return t_spawn(&(struct t_cmd){ .argv = argv, .out_pipe = out_fd });
}

/* Wait for a peer to exit (at most timeout_ms; else it is killed); its exit status, or -1. */
static inline int bt_peer_wait(pid_t pid, int timeout_ms)
{
	int st;
	if (t_wait(pid, timeout_ms, &st) < 0) {
		t_kill(pid);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Wait for the peer's line "ready" (printed once its socket listens or its WebSocket is
 * open); fail the test, naming the peer and what came instead, if it does not come. */
static inline void bt_peer_ready(int fd, const char *what)
{
	char line[256];
	if (t_read_line(fd, line, sizeof(line), BT_DEADLINE_MS) < 0 || strcmp(line, "ready")) {
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
