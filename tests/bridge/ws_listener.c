/* SPDX-License-Identifier: MIT */
/*
 * The bridge's WebSocket listener with real clients (python3-websockets) and raw sockets:
 *  - /topics/ws.*?from=0: both topics' messages, each topic in order, payloads intact;
 *    /topics/ws.a?from=600: exactly 600.. (a reconnecting client resumes); without from:
 *    only what comes after it subscribed;
 *  - /publish/cmd.x (allowed by the config): binary messages, a fragmented one and a text
 *    one arrive in the topic; /publish/ws.a (not allowed): 403;
 *  - a client that reads nothing while a block topic gets 10 MB: the publisher is never
 *    held back, the client is cut off with close code 1013, counted, and logged;
 *  - protocol violations, each answered as RFC 6455 and HTTP say, the daemon alive after:
 *    an oversize handshake (431), a too long line (431), version 8 (426), a bad key (400),
 *    POST (405), an unknown path (404), not an upgrade (400), no Host (400), a handshake
 *    never finished (408 after handshake_timeout_ms), garbage frames and an unmasked
 *    frame (1002), a reserved opcode (1002), invalid UTF-8 (1007), a message larger than
 *    max_message (1009), data on a subscription (1008); a ping gets its pong.
 * usage: bridge_ws_listener PATH-TO-SHMBUSD PATH-TO-ws_peer.py
 */
#include "bridge_helpers.h"

static shmbus_bus_t *bus;
static int port;
static char url[128];

/* Check the lines a "sub" peer wrote: per topic, seqs from..from+n-1 in order, intact. */
static void check_lines(const char *path, const char *topic, uint64_t from, uint64_t n)
{
	FILE *f = fopen(path, "re");
	CHECK(f != NULL);
	char line[256], t[160];
	unsigned long long seq, lost;
	int ok;
	uint64_t next = from, seen = 0;
	while (fgets(line, sizeof(line), f)) {
		CHECK(sscanf(line, "%159s %llu %llu %d", t, &seq, &lost, &ok) == 4);
		if (strcmp(t, topic))
			continue;
		if (seq != next || !ok) {
			fprintf(stderr, "%s: %s seq %llu (ok %d), want %llu\n", path, topic, seq,
				ok, (unsigned long long)next);
			exit(1);
		}
		next++;
		seen++;
	}
	fclose(f);
	CHECK(seen == n);
}

static void run_sub(const char *target, int n, const char *out, void (*after_ready)(void))
{
	char full[256], cnt[16];
	snprintf(full, sizeof(full), "%s%s", url, target);
	snprintf(cnt, sizeof(cnt), "%d", n);
	int fd;
	pid_t pid = bt_peer(&fd, "sub", full, cnt, out, NULL);
	bt_peer_ready(fd, full);
	if (after_ready)
		after_ready();
	bt_peer_done(pid, full);
	close(fd);
}

/* Right after "ready": the bridge subscribes a client before it answers the upgrade, so
 * everything published once the client has its 101 reaches it. */
static void more_a(void)
{
	bt_publish(bus, "ws.a", 1, 1000, 100, 0);
}

static void raw_case(const char *name, const char *want)
{
	char p[16], line[256];
	snprintf(p, sizeof(p), "%d", port);
	int fd;
	pid_t pid = bt_peer(&fd, "raw", p, name, NULL);
	int rc = t_read_line(fd, line, sizeof(line), BT_DEADLINE_MS);
	bt_peer_done(pid, name);
	close(fd);
	if (rc < 0 || !strstr(line, want)) {
		fprintf(stderr, "raw %s: got '%s', want '%s'\n", name, line, want);
		exit(1);
	}
	printf("  %-10s -> %s\n", name, line);
}

int main(int argc, char **argv)
{
	CHECK(argc == 3);
	bt_need_websockets(argv[2]);
	const char *dir = t_private_dir("brws");
	port = bt_free_port();
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d", port);
	char out[600];
	snprintf(out, sizeof(out), "%s/sub.out", dir);
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d,
			"[bus]\nname = brws\ndir = %s\n"
			"[topic ws.a]\ncapacity = 256K\n[topic ws.b]\ncapacity = 256K\n"
			"[topic cmd.x]\ncapacity = 256K\nmax_message = 65536\n"
			"[topic ws.big]\ncapacity = 256K\n"
			"[websocket]\nlisten = 127.0.0.1:%d\npublish = cmd.*\nmax_queue = 64K\n"
			/* Short for the slowloris case, yet long enough for every other client to
			 * send its request on a loaded machine. */
			"handshake_timeout_ms = 2000\n",
			dir, port);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "brws"), 0);
	t_daemon_start(&d, bus);
	shmbus_sub_t *log = t_events_open(bus);

	printf("subscriptions\n");
	bt_publish(bus, "ws.a", 1, 0, 1000, 0);
	bt_publish(bus, "ws.b", 2, 0, 500, 0);
	run_sub("/topics/ws.*?from=0", 1500, out, NULL);
	check_lines(out, "ws.a", 0, 1000);
	check_lines(out, "ws.b", 0, 500);
	printf("  ws.* from 0: ws.a 0..999 and ws.b 0..499, in order, intact\n");
	run_sub("/topics/ws.a?from=600&format=json", 400, out, NULL);
	check_lines(out, "ws.a", 600, 400);
	printf("  ws.a from 600 (a client resuming): exactly 600..999\n");
	run_sub("/topics/ws.a", 100, out, more_a);
	check_lines(out, "ws.a", 1000, 100);
	printf("  ws.a from now: only the 100 published after it subscribed\n");

	printf("publishing\n");
	shmbus_sub_t *cmd;
	CHECK_RC(shmbus_sub_open(&cmd, bus, "cmd.x", NULL, 0), 0);
	char full[256], line[256];
	snprintf(full, sizeof(full), "%s/publish/cmd.x", url);
	int fd;
	pid_t pid = bt_peer(&fd, "pub", full, "3", "200", NULL);
	bt_peer_done(pid, full);
	close(fd);
	uint8_t want[256];
	shmbus_msg_t m;
	for (uint64_t i = 0; i < 200; i++) {
		CHECK_RC(shmbus_recv(cmd, &m, BT_DEADLINE_MS), 0);
		size_t len = bt_payload(want, 3, i);
		CHECK(m.len == len && !memcmp(m.data, want, len) && m.type == 0);
	}
	CHECK_RC(shmbus_recv(cmd, &m, BT_DEADLINE_MS), 0);
	CHECK(m.len == 10 && !memcmp(m.data, "fragmented", 10));
	CHECK_RC(shmbus_recv(cmd, &m, BT_DEADLINE_MS), 0);
	CHECK(m.len == 7 && !memcmp(m.data, "text \xc3\xa9", 7) && m.type == 1);
	shmbus_sub_close(cmd);
	printf("  200 binary, a fragmented and a text message arrived (types 0, 0, 1)\n");
	raw_case("forbidden", "403");

	printf("a client that reads nothing\n");
	snprintf(full, sizeof(full), "%s/topics/ws.big", url);
	pid = bt_peer(&fd, "slow", full, NULL);
	bt_peer_ready(fd, full);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "ws.big"), 0);
	static uint8_t big[1024];
	uint64_t t0 = t_now_ns();
	for (int i = 0; i < 10240; i++) {
		memcpy(big, &i, sizeof(i));
		/* A block topic, but only observers read it: never a wait. */
		CHECK_RC(shmbus_publish_timeout(p, big, sizeof(big), 0, 0), 0);
	}
	double ms = (double)(t_now_ns() - t0) / 1e6;
	shmbus_pub_close(p);
	shmbus_topic_stats_t ts;
	CHECK_RC(shmbus_topic_stats(bus, "ws.big", &ts), 0);
	CHECK(ts.backpressure_waits == 0);
	/* 10 MB is more than the topic, the bridge's queue and the sockets hold: the client
	 * has been lapped. It reads again, and the bridge finds out. */
	CHECK(kill(pid, SIGUSR1) == 0);
	CHECK(t_read_line(fd, line, sizeof(line), BT_DEADLINE_MS) == 0);
	bt_peer_done(pid, full);
	close(fd);
	printf("  10 MB published in %.1f ms, never held back; the client: %s\n", ms, line);
	CHECK(!strncmp(line, "closed 1013 ", 12));
	char ev[4096];
	const char *slow[] = { "\"event\":\"ws_slow_client\"", "\"topic\":\"ws.big\"", NULL };
	CHECK(t_event_find(log, ev, sizeof(ev), BT_DEADLINE_MS, slow) == 0);
	printf("  $sys.log: %s\n", ev);

	printf("protocol violations\n");
	raw_case("oversize", "431");
	raw_case("longline", "431");
	raw_case("version", "426");
	raw_case("nokey", "400");
	raw_case("post", "405");
	raw_case("path", "404");
	raw_case("notws", "400");
	raw_case("nohost", "400");
	raw_case("slowloris", "408");
	raw_case("garbage", "close 1002");
	raw_case("unmasked", "close 1002");
	raw_case("badopcode", "close 1002");
	raw_case("badutf8", "close 1007");
	raw_case("toobig", "close 1009");
	raw_case("subpub", "close 1008");
	raw_case("ping", "pong");
	CHECK(t_daemon_alive(&d));

	/* Each raw client had its answer; the counting is done once every client is gone. */
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "websocket", st, st.topics == 0);
	printf("  listener: up %d, %llu sent, %llu published by clients, %llu cut off, %llu "
	       "errors\n",
	       st.up, (unsigned long long)st.sent, (unsigned long long)st.confirmed,
	       (unsigned long long)st.dropped, (unsigned long long)st.errors);
	CHECK(st.up && st.dropped == 1 && st.confirmed == 202 && st.errors >= 12);
	shmbus_sub_close(log);
	CHECK(t_exited(t_daemon_stop(&d), 0));
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
