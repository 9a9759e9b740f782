/* SPDX-License-Identifier: MIT */
/*
 * A topic file truncated under the bridge (anyone who may write it can): shmbusd lives on.
 *  - topic t, mirrored to Redis and read by a WebSocket client (/topics/t?from=0): once
 *    Redis has its messages, t.topic is truncated to 0 bytes. The daemon is still running,
 *    $sys.log has "topic_damaged" for t from the mirror and from the client, the mirror's
 *    counters say why (last_error, errors, no topic read); the file removed and the topic
 *    made again, what is published there reaches Redis (after the first messages) and the
 *    same WebSocket client;
 *  - import in, into imp.t: the file truncated, the next entries make the import fault:
 *    "topic_damaged", the import down saying why; the topic made again, those entries
 *    arrive there, in order, none lost.
 * usage: bridge_truncate PATH-TO-SHMBUSD PATH-TO-ws_peer.py
 */
#include <fcntl.h>

#include "bridge_helpers.h"

static shmbus_bus_t *bus;
static const char *dir;

/* Truncate NAME.topic to 0 bytes through a descriptor opened by path, as a client would. */
static void truncate_topic(const char *name)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/brtr/%s.topic", dir, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, 0) == 0);
	close(fd);
}

static void remake_topic(const char *name)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/brtr/%s.topic", dir, name);
	CHECK(unlink(path) == 0);
	/* An import makes its topic when it finds none: it may have been first. */
	int rc = shmbus_topic_create(bus, name, NULL);
	CHECK(rc >= 0 || rc == -EEXIST);
}

static void need_event(shmbus_sub_t *log, const char *const *needles)
{
	char ev[4096];
	if (t_event_find(log, ev, sizeof(ev), BT_DEADLINE_MS, needles) < 0) {
		fprintf(stderr, "no event with %s %s %s on $sys.log\n", needles[0], needles[1],
			needles[2]);
		exit(1);
	}
	printf("  $sys.log: %s\n", ev);
}

static void xadd_n(redisContext *c, const char *key, uint32_t tag, uint64_t from, uint64_t n)
{
	uint8_t buf[256];
	for (uint64_t i = from; i < from + n; i++) {
		size_t len = bt_payload(buf, tag, i);
		freeReplyObject(bt_cmd(c, "XADD %s * data %b", key, buf, len));
	}
}

/* Messages from..from+n-1 of tag, in order, from sub. */
static void read_n(shmbus_sub_t *sub, uint32_t tag, uint64_t from, uint64_t n)
{
	uint8_t want[256];
	for (uint64_t i = from; i < from + n; i++) {
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, BT_DEADLINE_MS);
		if (rc < 0) {
			fprintf(stderr, "entry %llu not imported: %d\n", (unsigned long long)i, rc);
			bt_show(bus, "in");
			exit(1);
		}
		size_t len = bt_payload(want, tag, i);
		if (m.len != len || memcmp(m.data, want, len)) {
			uint64_t got = 0;
			memcpy(&got, m.data, m.len < 8 ? m.len : 8);
			fprintf(stderr, "entry %llu: got %u bytes starting with %llu (seq %llu)\n",
				(unsigned long long)i, m.len, (unsigned long long)got,
				(unsigned long long)m.seq);
			exit(1);
		}
	}
}

/* The client's lines ("TOPIC SEQ LOST OK"): seqs 0..19 of the first file, then 0..29 of the
 * second, every payload intact. */
static void check_client(const char *path)
{
	FILE *f = fopen(path, "re");
	CHECK(f != NULL);
	char line[256], t[160];
	unsigned long long seq, lost;
	int ok, n = 0;
	while (fgets(line, sizeof(line), f)) {
		CHECK(sscanf(line, "%159s %llu %llu %d", t, &seq, &lost, &ok) == 4);
		unsigned long long want = n < 20 ? (unsigned long long)n :
						   (unsigned long long)n - 20;
		if (strcmp(t, "t") || seq != want || lost || !ok) {
			fprintf(stderr, "%s: line %d: %s", path, n, line);
			exit(1);
		}
		n++;
	}
	fclose(f);
	CHECK(n == 50);
}

int main(int argc, char **argv)
{
	CHECK(argc == 3);
	bt_need_redis();
	bt_need_websockets(argv[2]);
	dir = t_private_dir("brtr");
	struct bt_redis rs;
	bt_redis_new(&rs, "redis");
	bt_redis_start(&rs);
	redisContext *c = bt_client(&rs);
	int wsport = bt_free_port();
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d,
			"[bus]\nname = brtr\ndir = %s\n"
			"[topic t]\ncapacity = 64K\n"
			"[mirror r]\ntopics = t\nto = redis://127.0.0.1:%d\n"
			"[import in]\nfrom = redis://127.0.0.1:%d/ext.in\ntopic = imp.t\n"
			"block_ms = 200\nbackoff_min_ms = 20\nbackoff_max_ms = 100\n"
			"[websocket]\nlisten = 127.0.0.1:%d\n",
			dir, rs.port, rs.port, wsport);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "brtr"), 0);
	/* The import's topic and a reader on it before the daemon publishes there. */
	CHECK(shmbus_topic_create(bus, "imp.t", NULL) >= 0);
	shmbus_sub_t *imp;
	CHECK_RC(shmbus_sub_open(&imp, bus, "imp.t", NULL, SHMBUS_SUB_EARLIEST), 0);
	pid_t pid = t_daemon_start(&d, bus);
	shmbus_sub_t *log = t_events_open(bus);
	shmbus_bridge_info_t st;

	printf("a mirrored topic with a WebSocket client, truncated\n");
	char url[128], out[600];
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/topics/t?from=0", wsport);
	snprintf(out, sizeof(out), "%s/client.out", dir);
	int fd;
	pid_t client = bt_peer(&fd, "sub", url, "50", out, NULL);
	bt_peer_ready(fd, url);
	bt_publish(bus, "t", 0, 0, 20, 0);
	bt_need_xlen(c, "t", 20);
	truncate_topic("t");
	need_event(log, (const char *const[]){ "\"event\":\"topic_damaged\"", "\"topic\":\"t\"",
					       "\"mirror\":\"r\"", NULL });
	need_event(log, (const char *const[]){ "\"event\":\"topic_damaged\"", "\"topic\":\"t\"",
					       "\"client\":", NULL });
	CHECK(t_daemon_alive(&d) && d.pid == pid);
	BT_AWAIT(bus, "r", st, st.topics == 0 && st.errors >= 1);
	printf("  mirror r: %u topics, %llu errors, \"%s\"\n", st.topics,
	       (unsigned long long)st.errors, st.last_error);
	CHECK(strstr(st.last_error, "'t' damaged") && strstr(st.last_error, "truncated"));
	/* The counters change right after the event: waited for, not read at once. */
	BT_AWAIT(bus, "websocket", st, strstr(st.last_error, "'t' damaged") != NULL);

	printf("the topic made again\n");
	remake_topic("t");
	bt_publish(bus, "t", 0, 0, 30, 0);
	bt_need_xlen(c, "t", 50);
	BT_AWAIT(bus, "r", st, st.topics == 1 && st.confirmed == 50);
	bt_peer_done(client, url);
	close(fd);
	check_client(out);
	printf("  Redis has the 30 new messages after the 20; the client got 20 + 30, intact\n");

	printf("an import's topic, truncated\n");
	xadd_n(c, "ext.in", 1, 0, 10);
	read_n(imp, 1, 0, 10);
	/* Done with the last one (its ID saved) before the truncation: else the import may be
	 * in the middle of it, and it comes again, as an entry in flight at a crash would. */
	BT_AWAIT(bus, "in", st, st.confirmed == 10);
	/* Our own mapping goes first: we would die of the truncation too. */
	shmbus_sub_close(imp);
	truncate_topic("imp.t");
	xadd_n(c, "ext.in", 1, 10, 10);
	need_event(log, (const char *const[]){ "\"event\":\"topic_damaged\"", "\"topic\":\"imp.t\"",
					       "\"import\":\"in\"", NULL });
	BT_AWAIT(bus, "in", st, !st.up && strstr(st.last_error, "'imp.t' damaged"));
	printf("  import in: down, \"%s\"\n", st.last_error);
	CHECK(t_daemon_alive(&d) && d.pid == pid);
	remake_topic("imp.t");
	CHECK_RC(shmbus_sub_open(&imp, bus, "imp.t", NULL, SHMBUS_SUB_EARLIEST), 0);
	read_n(imp, 1, 10, 10);
	BT_AWAIT(bus, "in", st, st.up);
	printf("  made again: entries 10..19 arrived in it, the import is up\n");
	shmbus_sub_close(imp);
	shmbus_sub_close(log);
	return bt_redis_pass(&d, c, &rs, bus);
}
