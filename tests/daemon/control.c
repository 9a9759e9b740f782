/* SPDX-License-Identifier: MIT */
/*
 * shmbusd's control socket under abuse. A real daemon (idle_timeout_ms = 1000) is sent,
 * on raw SOCK_SEQPACKET connections: garbage, a datagram shorter than the header, headers
 * whose len lies either way, bad magic, bad version, unknown types, a known type of the
 * wrong size, an empty datagram, a 4000-byte datagram, a HELLO naming another pid, a
 * HELLO with the wrong start time, a HELLO twice, a client that never speaks, 500
 * registered connections at once, and 11,000 connect/garbage/close cycles.
 *
 * Each refused request must get an ERROR with the right errno and then the end of the
 * connection; after each kind a ping through shmbus_daemon_ping() must answer within
 * 1 s and the daemon must still run. The daemon's VmRSS may grow by at most 2 MiB from
 * after the first 1,000 cycles to after 10,000 more. A real registration through
 * shmbus_bus_open() counts as one client while the bus is open. SIGTERM: exit status 0
 * and control.sock removed.
 *
 * usage: daemon_control SHMBUSD
 */
#include "tests/lib/daemon.h"

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "bus/proto.h"
#include "shm/proc.h"

/* Built with AddressSanitizer (then so is the daemon: same build)? */
#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#endif

/* The daemon's idle_timeout_ms. A connection is judged from its accept, and this test
 * sends its HELLO right after connect(): on a loaded machine the test can be preempted
 * in between for a few hundred ms, so less would drop registrations that did come. */
#define IDLE_MS 1000
#define NCONN 500
#define CYCLES_WARM 1000
#define CYCLES 10000
#define RSS_GROWTH_MAX_KB 2048

static shmbus_bus_t *bus;
static struct t_daemon shmbusd;
static pid_t dpid;
static char sock_path[108];
static double worst_ping_ms;
static uint64_t seed;

/* ---- raw protocol ------------------------------------------------------------------ */

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	CHECK(strlen(sock_path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "connect %s: %s\n", sock_path, strerror(errno));
		exit(1);
	}
	return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
	if (n != (ssize_t)len) {
		fprintf(stderr, "send %zu bytes: %zd (%s)\n", len, n, strerror(errno));
		exit(1);
	}
}

/* One datagram within timeout_ms: its size, 0 at the end of the connection, -ETIMEDOUT. */
static ssize_t raw_recv(int fd, void *buf, size_t len, int timeout_ms)
{
	uint64_t t0 = t_now_ns();
	for (;;) {
		double left = timeout_ms - t_ms_since(t0);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc = poll(&p, 1, left > 0 ? (int)left + 1 : 0);
		if (rc < 0 && errno == EINTR)
			continue;
		CHECK(rc >= 0);
		if (rc == 0)
			return -ETIMEDOUT;
		ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0 && errno == ECONNRESET)
			return 0;
		CHECK(n >= 0);
		return n;
	}
}

/* The connection must end (recv returns 0) within timeout_ms, with nothing more on it. */
static void expect_eof(int fd, int timeout_ms, const char *what)
{
	char buf[SHMBUS_PROTO_MAX];
	ssize_t n = raw_recv(fd, buf, sizeof(buf), timeout_ms);
	if (n != 0) {
		fprintf(stderr, "%s: the daemon did not end the connection within %d ms (%zd)\n",
			what, timeout_ms, n);
		exit(1);
	}
}

/* The next datagram must be an ERROR carrying err. */
static void expect_error(int fd, int err, const char *what)
{
	union {
		struct shmbus_p_error e;
		char raw[SHMBUS_PROTO_MAX];
	} in;
	ssize_t n = raw_recv(fd, &in, sizeof(in), T_WAIT_MS);
	if (n <= 0 || !shmbus_p_check(&in, (size_t)n, SHMBUS_P_ERROR, sizeof(in.e)) ||
	    in.e.err != err || in.e.text[sizeof(in.e.text) - 1] != '\0') {
		fprintf(stderr, "%s: wanted an ERROR %d (%s), got %zd bytes (type %u, err %d)\n",
			what, err, strerror(err), n, n >= 8 ? in.e.h.type : 0u,
			n >= (ssize_t)sizeof(in.e) ? in.e.err : 0);
		exit(1);
	}
}

/*
 * Send one datagram on a new connection; it must be refused with err and dropped at once:
 * well before the idle timeout would drop it anyway.
 */
static void refused(const void *buf, size_t len, int err, const char *what)
{
	int fd = raw_connect();
	raw_send(fd, buf, len);
	expect_error(fd, err, what);
	expect_eof(fd, IDLE_MS / 2, what);
	close(fd);
}

/* A ping through the library answers within 1 s, and the daemon still runs. */
static void healthy(const char *after, shmbus_daemon_info_t *out)
{
	shmbus_daemon_info_t info;
	uint64_t t0 = t_now_ns();
	int rc = shmbus_daemon_ping(bus, 1000, &info);
	double ms = t_ms_since(t0);
	if (rc != 0 || info.pid != dpid || ms > 1000) {
		fprintf(stderr, "after %s: ping returned %d in %.1f ms (pid %d, want %d): %s\n",
			after, rc, ms, rc == 0 ? info.pid : 0, (int)dpid, shmbus_errmsg());
		exit(1);
	}
	if (ms > worst_ping_ms)
		worst_ping_ms = ms;
	if (!t_daemon_alive(&shmbusd)) {
		fprintf(stderr, "after %s: the daemon is gone\n", after);
		exit(1);
	}
	if (out)
		*out = info;
}

/* The daemon counts want clients now (each caller has waited for the event that makes
 * it so: a welcome, the daemon's end of a connection, a detach in $sys.log). */
static void clients_are(uint32_t want, const char *what)
{
	shmbus_daemon_info_t info;
	healthy(what, &info);
	if (info.clients != want) {
		fprintf(stderr, "%s: the daemon counts %u clients, wanted %u\n", what,
			info.clients, want);
		exit(1);
	}
}

/* Hang up as a client may (no goodbye) and wait for the daemon's end: it closes its side
 * of the connection, which our recv reads as the end, once it has forgotten it. */
static void hang_up(int fd, const char *what)
{
	CHECK(shutdown(fd, SHUT_WR) == 0);
	char buf[SHMBUS_PROTO_MAX];
	ssize_t n;
	while ((n = raw_recv(fd, buf, sizeof(buf), T_WAIT_MS)) > 0)
		; /* whatever it still had to say */
	if (n != 0) {
		fprintf(stderr, "%s: the daemon did not close its end within %d ms\n", what,
			T_WAIT_MS);
		exit(1);
	}
	close(fd);
}

static void make_hello(struct shmbus_p_hello *h, pid_t pid, uint64_t st)
{
	memset(h, 0, sizeof(*h));
	shmbus_p_init(&h->h, SHMBUS_P_HELLO, sizeof(*h));
	h->pid = pid;
	h->starttime = st;
	snprintf(h->prog, sizeof(h->prog), "daemon_control");
}

static void expect_welcome(int fd, const char *what)
{
	union {
		struct shmbus_p_welcome w;
		char raw[SHMBUS_PROTO_MAX];
	} in;
	ssize_t n = raw_recv(fd, &in, sizeof(in), T_WAIT_MS);
	if (n <= 0 || !shmbus_p_check(&in, (size_t)n, SHMBUS_P_WELCOME, sizeof(in.w)) ||
	    in.w.daemon_pid != dpid || in.w.client_id == 0) {
		fprintf(stderr, "%s: wanted a WELCOME from %d, got %zd bytes\n", what, (int)dpid,
			n);
		exit(1);
	}
}

static long vm_rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	CHECK(f != NULL);
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	CHECK(kb > 0);
	return kb;
}

/* n cycles of connect, send one random datagram (0..1500 bytes, some with a valid
 * header and a lying length), close without reading. */
static void garbage_cycles(unsigned n)
{
	static unsigned char buf[1500];
	for (unsigned i = 0; i < n; i++) {
		size_t len = (size_t)(t_rand(&seed) % sizeof(buf)) + 1;
		for (size_t j = 0; j < len; j += 8) {
			uint64_t r = t_rand(&seed);
			memcpy(buf + j, &r, len - j < 8 ? len - j : 8);
		}
		if (i % 3 == 0 && len >= sizeof(struct shmbus_p_hdr))
			shmbus_p_init((struct shmbus_p_hdr *)buf, (uint16_t)(i % 7),
				      (uint32_t)len + 1);
		int fd = raw_connect();
		raw_send(fd, buf, len);
		close(fd);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SHMBUSD\n", argv[0]);
		return 1;
	}
	seed = t_seed();
	printf("seed %" PRIu64 "\n", seed);
	const char *dir = t_private_dir("daemon_control");
	/* This process's own bus handle stays unregistered: the client counts below are
	 * only the connections the test makes on purpose. */
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	unsetenv("SHMBUSD_CONFIG");

	/* 500 connections plus the test's own descriptors. */
	struct rlimit rl;
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_cur < NCONN + 100) {
		if (rl.rlim_max < NCONN + 100) {
			fprintf(stderr, "skip: RLIMIT_NOFILE hard limit %llu < %d\n",
				(unsigned long long)rl.rlim_max, NCONN + 100);
			return T_SKIP;
		}
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}

	t_daemon_init(&shmbusd, argv[1]);
	t_daemon_config(&shmbusd,
			"[bus]\n"
			"name = t\n"
			"dir = %s\n"
			"[limits]\n"
			"idle_timeout_ms = %d\n",
			dir, IDLE_MS);
	CHECK(strlen(dir) + 3 + strlen(SHMBUS_SOCK_NAME) < sizeof(sock_path));
	snprintf(sock_path, sizeof(sock_path), "%.80s/t/%s", dir, SHMBUS_SOCK_NAME);
#ifdef T_ASAN
	/* ASan keeps freed blocks in a quarantine (256 MiB by default) instead of reusing
	 * them, which would look like growth here; 1 MiB still catches a recent
	 * use-after-free. For the daemon only: this process has read its options. */
	char asan[512];
	const char *old = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%squarantine_size_mb=1", old ? old : "",
		 old && *old ? ":" : "");
	const char *env[] = { asan, NULL };
	shmbusd.env = env;
#endif
	uint64_t t0 = t_now_ns();
	dpid = t_daemon_spawn(&shmbusd);
	CHECK_RC(shmbus_bus_open(&bus, "t"), 0);
	CHECK(shmbus_bus_supervised(bus) == 0);
	shmbus_daemon_info_t info;
	t_daemon_ready(&shmbusd, bus, &info);
	printf("daemon %d answered after %.0f ms\n", (int)dpid, t_ms_since(t0));
	CHECK(info.clients == 0);
	CHECK(!strcmp(info.config, shmbusd.conf));
	CHECK(!strcmp(info.version, SHMBUS_VERSION));

	/* ---- malformed datagrams ---- */
	struct shmbus_p_hdr ping;
	shmbus_p_init(&ping, SHMBUS_P_PING, sizeof(ping));
	union {
		struct shmbus_p_hdr h;
		unsigned char raw[4000];
	} big;
	memset(&big, 0, sizeof(big));
	struct shmbus_p_hdr bad;

	unsigned char garbage[37];
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (unsigned char)t_rand(&seed);
	garbage[0] = 'x'; /* not the magic's first byte */
	refused(garbage, sizeof(garbage), EPROTO, "garbage");
	healthy("garbage", NULL);

	refused(&ping, 8, EPROTO, "a datagram shorter than the header");
	healthy("a short datagram", NULL);

	bad = ping;
	bad.len = sizeof(bad) + 8;
	refused(&bad, sizeof(bad), EPROTO, "a header whose len is longer than the datagram");
	healthy("a lying len (longer)", NULL);
	shmbus_p_init(&big.h, SHMBUS_P_PING, sizeof(big.h));
	refused(&big, sizeof(big.h) + 8, EPROTO, "a datagram longer than its header's len");
	healthy("a lying len (shorter)", NULL);

	bad = ping;
	bad.magic ^= 1;
	refused(&bad, sizeof(bad), EPROTO, "bad magic");
	healthy("bad magic", NULL);

	bad = ping;
	bad.version = SHMBUS_PROTO_VERSION + 1;
	refused(&bad, sizeof(bad), EPROTO, "bad version");
	healthy("bad version", NULL);

	shmbus_p_init(&bad, 99, sizeof(bad));
	refused(&bad, sizeof(bad), EPROTO, "unknown type 99");
	shmbus_p_init(&bad, 0, sizeof(bad));
	refused(&bad, sizeof(bad), EPROTO, "type 0");
	shmbus_p_init(&bad, SHMBUS_P_PONG, sizeof(bad));
	refused(&bad, sizeof(bad), EPROTO, "a PONG sent to the daemon");
	healthy("unknown types", NULL);

	shmbus_p_init(&big.h, SHMBUS_P_PING, sizeof(big.h) + 8);
	refused(&big, sizeof(big.h) + 8, EPROTO, "a PING with a body");
	shmbus_p_init(&big.h, SHMBUS_P_HELLO, sizeof(struct shmbus_p_hello) - 8);
	refused(&big, sizeof(struct shmbus_p_hello) - 8, EPROTO, "a short HELLO");
	healthy("known types of the wrong size", NULL);

	shmbus_p_init(&big.h, SHMBUS_P_PING, sizeof(big));
	refused(&big, sizeof(big), EPROTO, "a 4000-byte datagram");
	healthy("an oversize datagram", NULL);

	{
		/* An empty datagram: at least the connection must end, not the daemon. */
		int fd = raw_connect();
		raw_send(fd, "", 0);
		char buf[SHMBUS_PROTO_MAX];
		ssize_t n = raw_recv(fd, buf, sizeof(buf), IDLE_MS / 2);
		CHECK(n == 0 || n == (ssize_t)sizeof(struct shmbus_p_error));
		if (n > 0)
			expect_eof(fd, IDLE_MS / 2, "an empty datagram");
		close(fd);
		healthy("an empty datagram", NULL);
	}

	/* ---- HELLO ---- */
	pid_t self;
	uint64_t self_st, parent_st;
	CHECK_RC(shmbus_proc_self(&self, &self_st), 0);
	CHECK_RC(shmbus_proc_starttime(getppid(), &parent_st), 0);
	struct shmbus_p_hello hello;

	make_hello(&hello, getppid(), parent_st);
	refused(&hello, sizeof(hello), EPERM, "a HELLO naming the parent's pid");
	healthy("a HELLO with a foreign pid", NULL);
	clients_are(0, "a HELLO with a foreign pid");

	make_hello(&hello, self, self_st + 1);
	refused(&hello, sizeof(hello), ESRCH, "a HELLO with the wrong start time");
	healthy("a HELLO with the wrong start time", NULL);
	clients_are(0, "a HELLO with the wrong start time");

	{
		/* Twice on one connection: the second is refused, the first registration holds
		 * and the connection is still served. */
		int fd = raw_connect();
		make_hello(&hello, self, self_st);
		raw_send(fd, &hello, sizeof(hello));
		expect_welcome(fd, "the first HELLO");
		raw_send(fd, &hello, sizeof(hello));
		expect_error(fd, EALREADY, "the second HELLO");
		clients_are(1, "a second HELLO");
		raw_send(fd, &ping, sizeof(ping));
		union {
			struct shmbus_p_pong p;
			char raw[SHMBUS_PROTO_MAX];
		} in;
		ssize_t n = raw_recv(fd, &in, sizeof(in), T_WAIT_MS);
		CHECK(n > 0 && shmbus_p_check(&in, (size_t)n, SHMBUS_P_PONG, sizeof(in.p)));
		CHECK(in.p.pid == dpid && in.p.clients == 1);
		hang_up(fd, "closing a registered connection");
		clients_are(0, "closing a registered connection");
	}

	/* ---- a client that never speaks ---- */
	{
		int fd = raw_connect();
		uint64_t c0 = t_now_ns();
		char buf[SHMBUS_PROTO_MAX];
		ssize_t n = raw_recv(fd, buf, sizeof(buf), T_WAIT_MS);
		double ms = t_ms_since(c0);
		if (n != 0) {
			fprintf(stderr, "a silent client was not dropped within %d ms (%zd)\n",
				T_WAIT_MS, n);
			return 1;
		}
		/* Not before its time either: the daemon measures from its accept. */
		CHECK(ms >= IDLE_MS - 20);
		printf("silent client dropped after %.0f ms (idle_timeout_ms %d)\n", ms, IDLE_MS);
		close(fd);
		healthy("a silent client", NULL);
	}

	/* ---- 500 registered connections at once ---- */
	{
		static int fds[NCONN];
		uint64_t c0 = t_now_ns();
		make_hello(&hello, self, self_st);
		for (int i = 0; i < NCONN; i++) {
			fds[i] = raw_connect();
			raw_send(fds[i], &hello, sizeof(hello));
		}
		for (int i = 0; i < NCONN; i++)
			expect_welcome(fds[i], "one of 500 connections");
		printf("%d connections registered in %.0f ms\n", NCONN, t_ms_since(c0));
		/* One process, however many connections. */
		clients_are(1, "500 connections");
		/* Registered connections outlive the idle timeout: nothing may arrive on any
		 * of them (no ERROR, no end) for 2.5 idle timeouts. */
		static struct pollfd pfd[NCONN];
		for (int i = 0; i < NCONN; i++)
			pfd[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		int ready = poll(pfd, NCONN, IDLE_MS * 5 / 2);
		CHECK(ready == 0);
		healthy("500 connections held open", NULL);
		for (int i = 0; i < NCONN; i++)
			hang_up(fds[i], "closing 500 connections");
		clients_are(0, "closing 500 connections");
	}

	/* ---- connect / garbage / close, and memory ---- */
	{
		uint64_t c0 = t_now_ns();
		garbage_cycles(CYCLES_WARM);
		healthy("1,000 garbage cycles", NULL);
		long rss0 = vm_rss_kb(dpid);
		garbage_cycles(CYCLES);
		healthy("10,000 more garbage cycles", NULL);
		long rss1 = vm_rss_kb(dpid);
		printf("%d cycles in %.0f ms; daemon VmRSS %ld kB after %d, %ld kB after %d more "
		       "(%+ld kB)\n",
		       CYCLES_WARM + CYCLES, t_ms_since(c0), rss0, CYCLES_WARM, rss1, CYCLES,
		       rss1 - rss0);
		CHECK(rss1 - rss0 <= RSS_GROWTH_MAX_KB);
		clients_are(0, "garbage cycles");
	}

	/* ---- a real registration ---- */
	{
		unsetenv("SHMBUS_NO_DAEMON");
		shmbus_bus_t *reg;
		CHECK_RC(shmbus_bus_open(&reg, "t"), 0);
		CHECK(shmbus_bus_supervised(reg) == 1);
		CHECK(shmbus_bus_supervised(bus) == 0);
		/* Registered before the welcome that shmbus_bus_open waits for. */
		clients_are(1, "shmbus_bus_open");
		shmbus_sub_t *log = t_events_open(bus);
		shmbus_bus_close(reg);
		char ev[4096];
		/* The detach is logged once the daemon has forgotten the connection. */
		CHECK(t_event_wait(log, "detach", ev, sizeof(ev), T_WAIT_MS) == 0);
		shmbus_sub_close(log);
		clients_are(0, "shmbus_bus_close");
		setenv("SHMBUS_NO_DAEMON", "1", 1);
	}

	printf("slowest ping %.1f ms\n", worst_ping_ms);
	int st = t_daemon_stop(&shmbusd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "shmbusd did not exit 0 on SIGTERM: %s %d\n",
			WIFSIGNALED(st) ? "signal" : "status",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		return 1;
	}
	struct stat sb;
	CHECK(stat(sock_path, &sb) < 0 && errno == ENOENT);
	CHECK_RC(shmbus_daemon_ping(bus, 1000, &info), -ENOENT);
	shmbus_bus_close(bus);
	return 0;
}
