/* SPDX-License-Identifier: MIT */
/*
 * bench/bridge: shmbusd's bridge against its peers, in the same invocation.
 *
 *   redis   the bridge mirroring 32 topics to a local redis-server (32 mirrors, one
 *           connection each), from publish to Redis's confirmation of the last message,
 *           against `redis-benchmark -P 16` XADDing the same payloads with the same fields
 *           to the same server. Target: >= 0.8x (the bridge is not the bottleneck).
 *           Also: SQEs per io_uring_enter while the bridge is loaded (target >= 16).
 *   ws      the bridge's WebSocket listener fanning a topic out to 10 local clients,
 *           against a broadcast server written with node's `ws` package sending the same
 *           messages to the same 10 clients. Target: >= 1x.
 *
 * Runs alternate (bridge, peer, bridge, peer, ...) after a warm-up; each target's ratio
 * is the median of the per-round ratios, so a noisy machine moves both sides. Prints a
 * table and one JSON object per case and target ("json: {...}" lines, or --json FILE).
 *
 * usage: bridge SHMBUSD NODE_WS_SH WS_BROADCAST_JS [--quick] [--runs N] [--size BYTES]
 *               [--case redis|ws] [--json FILE] [--strict]
 * Exit 0; with --strict, 1 if a target is missed. A peer that is not installed (redis,
 * node) is skipped and said so.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmbus.h>

#define TOPICS 32
#define CLIENTS 10
#define MAX_RUNS 16

static const char *shmbusd_path, *node_ws_sh, *ws_js;
static char dir[256];
static FILE *json_out;
static int quick, runs = 5, size = 100, strict;
static char *payload; /* size bytes of 'x' (and a NUL): every publisher's message */
static const char *only;
static pid_t children[16];

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "bridge bench: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void cleanup(void)
{
	for (int i = 0; i < 16; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void track(pid_t pid, int add)
{
	for (int i = 0; i < 16; i++) {
		if (add && children[i] <= 0) {
			children[i] = pid;
			return;
		}
		if (!add && children[i] == pid) {
			children[i] = 0;
			return;
		}
	}
}

/* fork + exec argv; stdout to a pipe (*out) when out is not NULL, else to devnull. */
static pid_t spawn(char *const argv[], int *out, const char *log)
{
	int p[2] = { -1, -1 };
	if (out && pipe2(p, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			if (!out)
				dup2(fd, 1);
		}
		if (out)
			dup2(p[1], 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (out) {
		close(p[1]);
		*out = p[0];
	}
	track(pid, 1);
	return pid;
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	for (int i = 0; i < 500 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		sleep_ms(10);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	track(pid, 0);
}

static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t o = 0;
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (o + 1 < len && now_ns() < end) {
		char c;
		ssize_t n = read(fd, &c, 1);
		if (n == 1) {
			if (c == '\n')
				break;
			buf[o++] = c;
		} else if (n == 0) {
			break;
		}
	}
	buf[o] = '\0';
	return o ? 0 : -1;
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &l) < 0)
		die("no free port");
	close(fd);
	return ntohs(a.sin_port);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* A figure over the rounds: median and range. */
struct spread {
	double med, lo, hi;
};

static struct spread spread_of(const double *v, int n)
{
	double t[MAX_RUNS];

	memcpy(t, v, (size_t)n * sizeof(*v));
	qsort(t, (size_t)n, sizeof(*t), cmp_d);
	return (struct spread){ .med = n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2,
				.lo = t[0],
				.hi = t[n - 1] };
}

/* io_uring entries (d of them between two samples of the totals) per io_uring_enter. */
static double per_enter(uint64_t d, const shmbus_bridge_totals_t *t0,
			const shmbus_bridge_totals_t *t1)
{
	return t1->enters > t0->enters ? (double)d / (double)(t1->enters - t0->enters) : 0;
}

static void emit_json(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (json_out)
		fprintf(json_out, "%s\n", buf);
	else
		printf("json: %s\n", buf);
}

/* ---- shmbusd ---------------------------------------------------------------------------- */

static pid_t daemon_start(const char *conf, shmbus_bus_t *bus)
{
	char log[300];
	snprintf(log, sizeof(log), "%s/daemon.log", dir);
	char *argv[] = { (char *)shmbusd_path, (char *)"--foreground", (char *)"--config",
			 (char *)conf, NULL };
	pid_t pid = spawn(argv, NULL, log);
	uint64_t end = now_ns() + 10000000000ull;
	shmbus_daemon_info_t info;
	while (shmbus_daemon_ping(bus, 200, &info) < 0 || info.pid != pid) {
		if (waitpid(pid, NULL, WNOHANG) == pid || now_ns() > end)
			die("shmbusd did not start (see %s)", log);
		sleep_ms(5);
	}
	return pid;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f))
		die("%s: %s", path, strerror(errno));
}

/* Sum of a field of the bridge's mirrors whose name starts with prefix. */
static uint64_t confirmed_sum(shmbus_bus_t *bus, shmbus_bridge_totals_t *tot)
{
	shmbus_bridge_info_t m[TOPICS + 4];
	int n = shmbus_bridge_stats(bus, m, TOPICS + 4, tot);
	uint64_t s = 0;
	for (int i = 0; i < n && i < TOPICS + 4; i++)
		s += m[i].confirmed;
	return s;
}

/* ---- case redis -------------------------------------------------------------------------- */

/* The publisher: a child process, round-robin over the topics, as fast as it can. */
static pid_t publish_child(shmbus_bus_t *bus, const char *prefix, int ntopics, uint64_t n)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	shmbus_pub_t *p[TOPICS];
	for (int k = 0; k < ntopics; k++) {
		char t[64];
		snprintf(t, sizeof(t), "%s%d", prefix, k);
		if (shmbus_pub_open(&p[k], bus, t) < 0)
			_exit(2);
	}
	for (uint64_t i = 0; i < n; i++)
		if (shmbus_publish(p[i % (uint64_t)ntopics], payload, (size_t)size, 0) < 0)
			_exit(3);
	_exit(0);
}

static double redis_benchmark(int port, uint64_t n, char *origin)
{
	char ports[16], ns[32];
	snprintf(ports, sizeof(ports), "%d", port);
	snprintf(ns, sizeof(ns), "%llu", (unsigned long long)n);
	char *argv[] = { (char *)"redis-benchmark",
			 (char *)"-h",
			 (char *)"127.0.0.1",
			 (char *)"-p",
			 ports,
			 (char *)"-P",
			 (char *)"16",
			 (char *)"-n",
			 ns,
			 (char *)"--csv",
			 (char *)"XADD",
			 (char *)"bench",
			 (char *)"*",
			 (char *)"type",
			 (char *)"0",
			 (char *)"data",
			 payload,
			 (char *)"origin",
			 origin,
			 (char *)"gen",
			 (char *)"0123456789abcdef",
			 NULL };
	int fd;
	pid_t pid = spawn(argv, &fd, NULL);
	char line[4096], last[4096] = "";
	while (read_line(fd, line, sizeof(line), 120000) == 0)
		snprintf(last, sizeof(last), "%s", line);
	close(fd);
	waitpid(pid, NULL, 0);
	track(pid, 0);
	/* "XADD bench * ...","264690.31",... */
	const char *q = strstr(last, "\",\"");
	if (!q)
		die("cannot read redis-benchmark's output: '%s'", last);
	return strtod(q + 3, NULL);
}

static void case_redis(void)
{
	if (access("/usr/bin/redis-server", X_OK) || access("/usr/bin/redis-benchmark", X_OK)) {
		printf("redis: SKIPPED (redis-server / redis-benchmark are not installed)\n");
		emit_json("{\"case\":\"redis\",\"skipped\":\"redis-server not installed\"}");
		return;
	}
	uint64_t n = quick ? 400000 : 1000000;
	int port = free_port();
	char rdir[300], ports[16], rlog[320];
	snprintf(rdir, sizeof(rdir), "%s/redis", dir);
	snprintf(rlog, sizeof(rlog), "%s/redis.log", dir);
	mkdir(rdir, 0700);
	snprintf(ports, sizeof(ports), "%d", port);
	char *rargv[] = { (char *)"redis-server",
			  (char *)"--port",
			  ports,
			  (char *)"--bind",
			  (char *)"127.0.0.1",
			  (char *)"--dir",
			  rdir,
			  (char *)"--save",
			  (char *)"",
			  (char *)"--appendonly",
			  (char *)"no",
			  (char *)"--protected-mode",
			  (char *)"no",
			  NULL };
	pid_t rpid = spawn(rargv, NULL, rlog);
	redisContext *rc = NULL;
	for (int i = 0; i < 500 && !rc; i++) {
		struct timeval tv = { 1, 0 };
		rc = redisConnectWithTimeout("127.0.0.1", port, tv);
		if (rc && rc->err) {
			redisFree(rc);
			rc = NULL;
			sleep_ms(10);
		}
	}
	if (!rc)
		die("redis-server did not start");
	char conf[300], text[16384];
	snprintf(conf, sizeof(conf), "%s/redis.conf", dir);
	int o = snprintf(text, sizeof(text), "[bus]\nname = benchr\ndir = %s\n", dir);
	for (int k = 0; k < TOPICS; k++)
		o += snprintf(text + o, sizeof(text) - (size_t)o,
			      "[topic bench.%d]\ncapacity = 8M\n"
			      "[mirror m%d]\ntopics = bench.%d\nto = redis://127.0.0.1:%d/0\n"
			      "window = 4096\n",
			      k, k, k, port);
	write_file(conf, text);
	shmbus_bus_t *bus;
	if (shmbus_bus_open(&bus, "benchr") < 0)
		die("%s", shmbus_errmsg());
	pid_t d = daemon_start(conf, bus);
	for (int i = 0; i < 500; i++) {
		shmbus_bridge_info_t m[TOPICS];
		int up = 0, k = shmbus_bridge_stats(bus, m, TOPICS, NULL);
		for (int j = 0; j < k && j < TOPICS; j++)
			up += m[j].up;
		if (up == TOPICS)
			break;
		sleep_ms(10);
	}
	char origin[80];
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	snprintf(origin, sizeof(origin), "%.63s/benchr", host);

	double br[MAX_RUNS], peer[MAX_RUNS], ratio[MAX_RUNS], spe[MAX_RUNS];
	int total_rounds = runs + 1; /* the first is a warm-up */
	int r = 0;
	for (int round = 0; round < total_rounds; round++) {
		freeReplyObject(redisCommand(rc, "FLUSHALL"));
		shmbus_bridge_totals_t t0, t1;
		uint64_t c0 = confirmed_sum(bus, &t0);
		uint64_t start = now_ns();
		pid_t pub = publish_child(bus, "bench.", TOPICS, n);
		while (confirmed_sum(bus, &t1) - c0 < n) {
			if (now_ns() - start > 300000000000ull)
				die("the bridge did not confirm %llu messages in 300 s",
				    (unsigned long long)n);
			usleep(200);
		}
		double secs = (double)(now_ns() - start) / 1e9;
		int st;
		waitpid(pub, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			die("the publisher failed");
		double sqe = per_enter(t1.sqes - t0.sqes, &t0, &t1);
		double cqe = per_enter(t1.cqes - t0.cqes, &t0, &t1);
		freeReplyObject(redisCommand(rc, "FLUSHALL"));
		double pr = redis_benchmark(port, n, origin);
		if (round == 0)
			continue;
		br[r] = (double)n / secs;
		peer[r] = pr;
		ratio[r] = br[r] / pr;
		spe[r] = sqe;
		printf("  round %d: bridge %.0f msg/s (%.1f SQEs, %.1f CQEs per enter), "
		       "redis-benchmark -P 16 %.0f XADD/s: %.2fx\n",
		       r + 1, br[r], sqe, cqe, pr, ratio[r]);
		fflush(stdout);
		r++;
	}
	struct spread b = spread_of(br, r), pb = spread_of(peer, r), q = spread_of(ratio, r),
		      s = spread_of(spe, r);
	int q_met = q.med >= 0.8, s_met = s.med >= 16;
	printf("redis, %d B payloads, %llu messages over %d topics and mirrors, %d rounds:\n"
	       "  bridge           %10.0f msg/s median (%.0f .. %.0f)\n"
	       "  redis-benchmark  %10.0f XADD/s median (%.0f .. %.0f), -P 16, 50 clients\n"
	       "  ratio            %10.2fx median (%.2f .. %.2f)   target >= 0.80  %s\n"
	       "  SQEs per enter   %10.1f median (%.1f .. %.1f)     target >= 16    %s\n",
	       size, (unsigned long long)n, TOPICS, r, b.med, b.lo, b.hi, pb.med, pb.lo, pb.hi,
	       q.med, q.lo, q.hi, q_met ? "MET" : "MISSED", s.med, s.lo, s.hi,
	       s_met ? "MET" : "MISSED");
	emit_json("{\"case\":\"redis\",\"size\":%d,\"messages\":%llu,\"topics\":%d,\"rounds\":%d,"
		  "\"bridge_msgs_per_s\":{\"median\":%.0f,\"min\":%.0f,\"max\":%.0f},"
		  "\"redis_benchmark_per_s\":{\"median\":%.0f,\"min\":%.0f,\"max\":%.0f},"
		  "\"sqes_per_enter\":{\"median\":%.2f,\"min\":%.2f,\"max\":%.2f}}",
		  size, (unsigned long long)n, TOPICS, r, b.med, b.lo, b.hi, pb.med, pb.lo, pb.hi,
		  s.med, s.lo, s.hi);
	emit_json("{\"target\":\"redis_vs_redis_benchmark\",\"ratio\":%.3f,\"min\":%.3f,"
		  "\"max\":%.3f,\"want\":0.8,\"met\":%s}",
		  q.med, q.lo, q.hi, q_met ? "true" : "false");
	emit_json("{\"target\":\"sqes_per_enter\",\"value\":%.2f,\"want\":16,\"met\":%s}", s.med,
		  s_met ? "true" : "false");
	if (strict && !(q_met && s_met))
		strict = 2;
	stop(d);
	shmbus_bus_close(bus);
	redisFree(rc);
	stop(rpid);
}

/* ---- case ws ----------------------------------------------------------------------------- */

/*
 * The clients: one process, CLIENTS connections on one epoll, each upgrading to a
 * WebSocket and counting the binary frames it gets. It prints "ready" when all are
 * upgraded, then "done SECONDS" once every client has n messages (SECONDS from the last
 * upgrade). The same clients for both servers.
 */
static void ws_clients(int port, const char *path, uint64_t n)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct cl {
		int fd;
		int upgraded;
		uint64_t got;
		uint8_t buf[1 << 16];
		size_t len;
	} *c = calloc(CLIENTS, sizeof(*c));
	for (int i = 0; i < CLIENTS; i++) {
		c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int ok = 0;
		for (int t = 0; t < 300 && !ok; t++) {
			ok = connect(c[i].fd, (struct sockaddr *)&a, sizeof(a)) == 0;
			if (!ok) {
				close(c[i].fd);
				c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
				sleep_ms(10);
			}
		}
		if (!ok)
			_exit(4);
		char req[512];
		int l = snprintf(
			req, sizeof(req),
			"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
			"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			"Sec-WebSocket-Version: 13\r\n\r\n",
			path, port);
		if (write(c[i].fd, req, (size_t)l) != l)
			_exit(5);
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
	}
	int upgraded = 0, done = 0;
	uint64_t start = 0;
	while (done < CLIENTS) {
		struct epoll_event evs[CLIENTS];
		int k = epoll_wait(ep, evs, CLIENTS, 60000);
		if (k <= 0)
			_exit(6);
		for (int e = 0; e < k; e++) {
			struct cl *x = &c[evs[e].data.u32];
			ssize_t r = read(x->fd, x->buf + x->len, sizeof(x->buf) - x->len);
			if (r <= 0)
				_exit(7);
			x->len += (size_t)r;
			size_t off = 0;
			if (!x->upgraded) {
				uint8_t *end = memmem(x->buf, x->len, "\r\n\r\n", 4);
				if (!end)
					continue;
				if (memcmp(x->buf, "HTTP/1.1 101", 12))
					_exit(8);
				x->upgraded = 1;
				off = (size_t)(end + 4 - x->buf);
				if (++upgraded == CLIENTS) {
					printf("ready\n");
					fflush(stdout);
					start = now_ns();
				}
			}
			/* Frames from a server: unmasked. */
			while (x->len - off >= 2) {
				uint8_t *p = x->buf + off;
				uint64_t plen = p[1] & 0x7f;
				size_t h = 2;
				if (plen == 126) {
					if (x->len - off < 4)
						break;
					plen = (uint64_t)p[2] << 8 | p[3];
					h = 4;
				} else if (plen == 127) {
					if (x->len - off < 10)
						break;
					plen = 0;
					for (int b = 0; b < 8; b++)
						plen = plen << 8 | p[2 + b];
					h = 10;
				}
				if (plen > sizeof(x->buf) - 16)
					_exit(9);
				if (x->len - off < h + plen)
					break;
				if ((p[0] & 0x0f) == 2 && ++x->got == n)
					done++;
				off += h + plen;
			}
			memmove(x->buf, x->buf + off, x->len - off);
			x->len -= off;
		}
	}
	printf("done %.6f\n", (double)(now_ns() - start) / 1e9);
	fflush(stdout);
	_exit(0);
}

static pid_t clients_start(int port, const char *path, uint64_t n, int *fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(p[1], 1);
		ws_clients(port, path, n);
	}
	close(p[1]);
	*fd = p[0];
	track(pid, 1);
	return pid;
}

/* Wait for a child's "ready" line on fd; die saying what did not happen. */
static void wait_ready(int fd, const char *what)
{
	char line[128];

	if (read_line(fd, line, sizeof(line), 30000) < 0 || strcmp(line, "ready"))
		die("%s", what);
}

static double clients_wait(pid_t pid, int fd)
{
	char line[128];
	if (read_line(fd, line, sizeof(line), 300000) < 0 || strncmp(line, "done ", 5))
		die("the WebSocket clients did not finish ('%s')", line);
	double secs = strtod(line + 5, NULL);
	waitpid(pid, NULL, 0);
	track(pid, 0);
	close(fd);
	return secs;
}

static void case_ws(void)
{
	uint64_t n = quick ? 100000 : 200000;
	/* node's ws package lives beside this program (build/bench/node-ws) unless told: an
	 * absolute path, since node resolves a relative one against the script's directory. */
	char modules[PATH_MAX + 16];
	const char *given = getenv("SHMBUS_BENCH_NODE_DIR");
	if (given) {
		snprintf(modules, sizeof(modules), "%s", given);
	} else {
		char self[PATH_MAX];
		ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
		self[len > 0 ? len : 0] = 0;
		char *slash = strrchr(self, '/');
		if (slash)
			*slash = 0;
		snprintf(modules, sizeof(modules), "%s/node-ws", slash ? self : ".");
	}
	char cmd[PATH_MAX + 400];
	snprintf(cmd, sizeof(cmd), "'%s' '%s'", node_ws_sh, modules);
	int have_node = system(cmd) == 0;
	if (!have_node)
		printf("ws: node's ws package is not available (node, npm or the registry is "
		       "missing): the peer is skipped\n");
	int port = free_port();
	char conf[300], text[2048];
	snprintf(conf, sizeof(conf), "%s/ws.conf", dir);
	snprintf(text, sizeof(text),
		 "[bus]\nname = benchw\ndir = %s\n[topic bench.ws]\ncapacity = 64M\n"
		 "[websocket]\nlisten = 127.0.0.1:%d\nmax_queue = 4M\nping_interval_ms = 0\n",
		 dir, port);
	write_file(conf, text);
	shmbus_bus_t *bus;
	if (shmbus_bus_open(&bus, "benchw") < 0)
		die("%s", shmbus_errmsg());
	pid_t d = daemon_start(conf, bus);
	double br[MAX_RUNS], peer[MAX_RUNS], ratio[MAX_RUNS], spe[MAX_RUNS];
	int r = 0;
	for (int round = 0; round < runs + 1; round++) {
		int fd;
		shmbus_bridge_totals_t t0, t1;
		confirmed_sum(bus, &t0);
		pid_t cp = clients_start(port, "/topics/bench.ws?format=binary", n, &fd);
		wait_ready(fd, "the clients did not connect to shmbusd");
		shmbus_pub_t *p;
		if (shmbus_pub_open(&p, bus, "bench.ws") < 0)
			die("%s", shmbus_errmsg());
		for (uint64_t i = 0; i < n; i++)
			if (shmbus_publish(p, payload, (size_t)size, 0) < 0)
				die("publish");
		shmbus_pub_close(p);
		double bs = clients_wait(cp, fd);
		confirmed_sum(bus, &t1);
		double sqe = per_enter(t1.sqes - t0.sqes, &t0, &t1);
		double ps = 0;
		if (have_node) {
			int nport = free_port(), nfd;
			char np[16], nc[16], nn[32], ns[16];
			snprintf(np, sizeof(np), "%d", nport);
			snprintf(nc, sizeof(nc), "%d", CLIENTS);
			snprintf(nn, sizeof(nn), "%llu", (unsigned long long)n);
			snprintf(ns, sizeof(ns), "%d", size);
			char *nargv[] = {
				(char *)"node", (char *)ws_js, modules, np, nc, nn, ns, NULL
			};
			pid_t node = spawn(nargv, &nfd, NULL);
			wait_ready(nfd, "the node server did not start");
			pid_t cp2 = clients_start(nport, "/", n, &fd);
			wait_ready(fd, "the clients did not connect to node");
			ps = clients_wait(cp2, fd);
			close(nfd);
			stop(node);
		}
		if (round == 0)
			continue;
		br[r] = (double)n / bs;
		peer[r] = ps > 0 ? (double)n / ps : 0;
		ratio[r] = peer[r] > 0 ? br[r] / peer[r] : 0;
		spe[r] = sqe;
		printf("  round %d: bridge %.0f msg/s to %d clients (%.1f SQEs/enter), node ws %.0f: "
		       "%.2fx\n",
		       r + 1, br[r], CLIENTS, sqe, peer[r], ratio[r]);
		fflush(stdout);
		r++;
	}
	struct spread b = spread_of(br, r), pb = spread_of(peer, r), q = spread_of(ratio, r),
		      s = spread_of(spe, r);
	int q_met = q.med >= 1;
	printf("ws, %d B payloads, %llu messages fanned out to %d clients, %d rounds:\n"
	       "  bridge listener  %10.0f msg/s median (%.0f .. %.0f), %.0f frames/s\n",
	       size, (unsigned long long)n, CLIENTS, r, b.med, b.lo, b.hi, b.med * CLIENTS);
	if (have_node)
		printf("  node ws server   %10.0f msg/s median (%.0f .. %.0f)\n"
		       "  ratio            %10.2fx median (%.2f .. %.2f)   target >= 1.00  %s\n",
		       pb.med, pb.lo, pb.hi, q.med, q.lo, q.hi, q_met ? "MET" : "MISSED");
	printf("  SQEs per enter   %10.1f median (%.1f .. %.1f)\n", s.med, s.lo, s.hi);
	emit_json("{\"case\":\"ws\",\"size\":%d,\"messages\":%llu,\"clients\":%d,\"rounds\":%d,"
		  "\"bridge_msgs_per_s\":{\"median\":%.0f,\"min\":%.0f,\"max\":%.0f},"
		  "\"node_ws_msgs_per_s\":%s%.0f%s,\"sqes_per_enter\":%.2f}",
		  size, (unsigned long long)n, CLIENTS, r, b.med, b.lo, b.hi,
		  have_node ? "{\"median\":" : "", have_node ? pb.med : 0, have_node ? "}" : "",
		  s.med);
	if (have_node) {
		emit_json("{\"target\":\"ws_fanout_vs_node_ws\",\"ratio\":%.3f,\"min\":%.3f,"
			  "\"max\":%.3f,\"want\":1.0,\"met\":%s}",
			  q.med, q.lo, q.hi, q_met ? "true" : "false");
		if (strict && !q_met)
			strict = 2;
	}
	stop(d);
	shmbus_bus_close(bus);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		die("usage: bridge SHMBUSD NODE_WS_SH WS_BROADCAST_JS [--quick] [--runs N] "
		    "[--size BYTES] [--case redis|ws] [--json FILE] [--strict]");
	shmbusd_path = argv[1];
	node_ws_sh = argv[2];
	ws_js = argv[3];
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
			runs = 3;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			size = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--case") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
			json_out = fopen(argv[++i], "w");
			if (!json_out)
				die("%s: %s", argv[i], strerror(errno));
		} else if (!strcmp(argv[i], "--strict")) {
			strict = 1;
		} else {
			die("unknown option %s", argv[i]);
		}
	}
	if (runs < 1 || runs >= MAX_RUNS || size < 8 || size > 60000)
		die("--runs 1..15, --size 8..60000");
	payload = malloc((size_t)size + 1);
	if (!payload)
		die("out of memory");
	memset(payload, 'x', (size_t)size);
	payload[size] = '\0';
	snprintf(dir, sizeof(dir), "/dev/shm/shmbus-bench-bridge-XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	atexit(cleanup);
	setenv("SHMBUS_DIR", dir, 1);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	signal(SIGPIPE, SIG_IGN);
	if (!only || !strcmp(only, "redis"))
		case_redis();
	if (!only || !strcmp(only, "ws"))
		case_ws();
	if (json_out)
		fclose(json_out);
	return strict == 2 ? 1 : 0;
}
