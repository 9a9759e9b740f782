/* SPDX-License-Identifier: MIT */
/*
 * A Redis peer that misbehaves: the bridge closes the connection with a clear reason,
 * counts an error, retries with backoff, and the daemon survives; then a real redis-server
 * comes up on the same port and every message published meanwhile arrives exactly once.
 * A fake server in this test plays one misbehaviour per connection:
 *   random bytes; replies of the wrong type; arrays of 10^11 and 5 million elements (the
 *   codec takes at most a million); a bulk string of
 *   2 GiB announced and never sent (silence: the reply timeout); replies nobody asked for;
 *   nesting deeper than the codec takes; an error reply to every command; accept and
 *   say nothing at all.
 * usage: bridge_redis_faults PATH-TO-SHMBUSD
 */
#include <poll.h>
#include <pthread.h>

#include "bridge_helpers.h"

#define N 3000

static int port;
static int lfd;
static volatile int scripts_done;

static const char *const scripts[] = {
	"random",
	"+OK\r\n",
	"*100000000000\r\n",
	"*5000000\r\n",
	"$2147483647\r\nabc",
	"*0\r\n:1\r\n:2\r\n:3\r\n",
	"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
	"-ERR this server refuses everything\r\n",
	"silence",
};
#define NSCRIPTS (sizeof(scripts) / sizeof(scripts[0]))

/*
 * Read what the bridge sends (it must not matter to it) until it closes the connection, or
 * with until_bytes, until it sent that much. Fails the test after BT_DEADLINE_MS.
 */
static void drain(int fd, const char *script, size_t until_bytes)
{
	char buf[65536];
	size_t got = 0;
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = t_now_ns();
		if (now > deadline) {
			fprintf(stderr, "script '%.20s': the bridge %s within %d ms\n", script,
				until_bytes ? "sent no command" : "did not close the connection",
				BT_DEADLINE_MS);
			exit(1);
		}
		if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
			continue;
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return; /* closed (or reset) by the bridge */
		if (n > 0)
			got += (size_t)n;
		if (until_bytes && got >= until_bytes)
			return;
	}
}

static void *fake_redis(void *arg)
{
	(void)arg;
	uint64_t seed = t_seed();
	printf("fake Redis on port %d, seed %llu\n", port, (unsigned long long)seed);
	for (size_t i = 0; i < NSCRIPTS; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		CHECK(fd >= 0);
		const char *s = scripts[i];
		if (!strcmp(s, "random")) {
			uint8_t junk[4096];
			for (size_t k = 0; k < sizeof(junk); k++)
				junk[k] = (uint8_t)(t_rand(&seed) >> 56);
			junk[0] = '*'; /* starts like an array, goes on as nonsense */
			junk[sizeof(junk) - 2] = '\r';
			junk[sizeof(junk) - 1] = '\n';
			/* An answer to the bridge's first command. */
			drain(fd, s, 1);
			if (send(fd, junk, sizeof(junk), MSG_NOSIGNAL) < 0)
				perror("send");
		} else if (strcmp(s, "silence")) {
			drain(fd, s, 1);
			if (send(fd, s, strlen(s), MSG_NOSIGNAL) < 0)
				perror("send");
		}
		/* Keep it open until the bridge gives up on it (silence: its reply timeout). */
		drain(fd, s, 0);
		close(fd);
	}
	close(lfd);
	__atomic_store_n(&scripts_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	bt_need_redis();
	const char *dir = t_private_dir("brf");
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	CHECK(bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(lfd, 16) == 0);
	socklen_t al = sizeof(a);
	CHECK(getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
	port = ntohs(a.sin_port);
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d,
			"[bus]\nname = brf\ndir = %s\n[topic f]\ncapacity = 1M\n"
			"[mirror r]\ntopics = f\nto = redis://127.0.0.1:%d\n"
			"backoff_min_ms = 10\nbackoff_max_ms = 40\ntimeout_ms = 1500\n",
			dir, port);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, "brf"), 0);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, fake_redis, NULL) == 0);
	t_daemon_start(&d, bus);
	shmbus_sub_t *log = t_events_open(bus);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "f"), 0);
	uint8_t buf[256];
	for (uint64_t i = 0; i < N; i++) {
		size_t len = bt_payload(buf, 9, i);
		CHECK_RC(shmbus_publish(p, buf, len, 1), 0);
	}
	/* Each misbehaviour ends its connection with a reason. */
	const char *want[] = {
		"protocol error",	"not a stream entry",
		"protocol error",	"a reply too large",
		"no reply for 1500 ms", "a reply to no command",
		"protocol error",	"XREVRANGE f: ERR this server refuses everything",
		"no reply for 1500 ms"
	};
	_Static_assert(sizeof(want) / sizeof(want[0]) == NSCRIPTS, "one reason per script");
	char ev[4096];
	for (size_t i = 0; i < NSCRIPTS; i++) {
		const char *needles[] = { "\"event\":\"bridge_down\"", want[i], NULL };
		if (t_event_find(log, ev, sizeof(ev), BT_DEADLINE_MS, needles) < 0) {
			fprintf(stderr, "no bridge_down saying '%s'\n", want[i]);
			exit(1);
		}
		printf("  %-40.40s -> %s\n",
		       scripts[i][0] == '$' || scripts[i][0] == '*' || scripts[i][0] == ':' ||
				       scripts[i][0] == '+' || scripts[i][0] == '-' ?
			       "(a RESP script)" :
			       scripts[i],
		       strstr(ev, "\"error\":"));
		CHECK(t_daemon_alive(&d));
	}
	CHECK(pthread_join(th, NULL) == 0);
	shmbus_bridge_info_t st;
	CHECK(bt_stats(bus, "r", &st) == 0);
	CHECK(st.errors >= NSCRIPTS && st.confirmed == 0 && !st.up);
	printf("  %llu errors counted, nothing confirmed; the daemon is alive\n",
	       (unsigned long long)st.errors);

	/* Now a real Redis where the fake one was. */
	struct bt_redis rs;
	memset(&rs, 0, sizeof(rs));
	rs.port = port;
	snprintf(rs.dir, sizeof(rs.dir), "%s/redis", dir);
	bt_redis_start(&rs);
	redisContext *c = bt_client(&rs);
	bt_need_xlen(c, "f", N);
	redisReply *r = bt_cmd(c, "XRANGE f - +");
	CHECK(r->elements == N);
	for (size_t i = 0; i < N; i++) {
		size_t len = bt_payload(buf, 9, i);
		redisReply *e = r->element[i];
		unsigned long long ms, seq;
		CHECK(sscanf(e->element[0]->str, "%llu-%llu", &ms, &seq) == 2 && seq == i);
		CHECK(e->element[1]->element[3]->len == len &&
		      !memcmp(e->element[1]->element[3]->str, buf, len));
	}
	freeReplyObject(r);
	printf("  then a real Redis on the port: all %d messages, once, in order\n", N);
	BT_AWAIT(bus, "r", st, st.up);
	shmbus_pub_close(p);
	shmbus_sub_close(log);
	return bt_redis_pass(&d, c, &rs, bus);
}
