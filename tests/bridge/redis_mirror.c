/* SPDX-License-Identifier: MIT */
/*
 * The Redis mirror's guarantee, against a real redis-server (AOF, appendfsync always, in
 * a private directory): every message published to the mirrored topics is in its stream
 * exactly once, in order, with its bytes, type and ID <base>-<seq>, across
 *  A. Redis killed with SIGKILL in the middle of the stream and started again;
 *  B. shmbusd killed with SIGKILL while Redis is down and messages wait unconfirmed, then
 *     Redis and shmbusd started again (the durable cursor is in the topic file);
 *  C. shmbusd killed with SIGKILL right after a burst, with replies in flight (what Redis
 *     has is skipped, not written twice), the publisher going on while it is down (the
 *     mirror's lease holds it at a full ring: nothing unconfirmed is overwritten).
 * Two topics matched by one wildcard, binary payloads; block policy, so a mirror that
 * cannot send holds the publisher back instead of losing anything. Also: bridge_down and
 * bridge_up events, and the counters (confirmed, reconnects, lag back to 0).
 * usage: bridge_redis_mirror PATH-TO-SHMBUSD
 */
#include <pthread.h>

#include "bridge_helpers.h"

#define N 60000 /* messages per topic */
#define TYPE 5

static const char *topics[2] = { "orders.eu", "orders.us" };
static shmbus_bus_t *bus;
static volatile int paused, pausing_done;
static uint64_t published;

/* Message i on both topics: the publisher thread and publish_burst() send the same. */
static void publish_both(shmbus_pub_t *p[2], uint64_t i)
{
	uint8_t buf[256];
	for (int k = 0; k < 2; k++) {
		size_t len = bt_payload(buf, (uint32_t)k, i);
		CHECK_RC(shmbus_publish(p[k], buf, len, TYPE), 0);
	}
}

static void *publisher(void *arg)
{
	(void)arg;
	shmbus_bus_t *b;
	CHECK_RC(shmbus_bus_open(&b, "brm"), 0);
	shmbus_pub_t *p[2];
	for (int k = 0; k < 2; k++)
		CHECK_RC(shmbus_pub_open(&p[k], b, topics[k]), 0);
	for (;;) {
		while (__atomic_load_n(&paused, __ATOMIC_ACQUIRE)) {
			__atomic_store_n(&pausing_done, 1, __ATOMIC_RELEASE);
			usleep(1000);
		}
		__atomic_store_n(&pausing_done, 0, __ATOMIC_RELEASE);
		/* Go on from the shared count: the main thread publishes bursts meanwhile. */
		uint64_t i = __atomic_load_n(&published, __ATOMIC_ACQUIRE);
		if (i >= N)
			break;
		publish_both(p, i);
		bt_published_set(&published, i + 1);
	}
	for (int k = 0; k < 2; k++)
		shmbus_pub_close(p[k]);
	shmbus_bus_close(b);
	return NULL;
}

static void pause_publisher(void)
{
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	__atomic_store_n(&paused, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&pausing_done, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&published, __ATOMIC_ACQUIRE) < N) {
		if (t_now_ns() > deadline) {
			fprintf(stderr, "the publisher did not pause within %d ms (at %llu)\n",
				BT_DEADLINE_MS,
				(unsigned long long)__atomic_load_n(&published, __ATOMIC_ACQUIRE));
			exit(1);
		}
		usleep(500);
	}
}

static void resume_publisher(void)
{
	__atomic_store_n(&paused, 0, __ATOMIC_RELEASE);
}

static void wait_published(uint64_t n)
{
	bt_wait_published(bus, "r", &published, n);
}

/* Publish waits of both topics so far: a publisher held back at a full ring counts one. */
static uint64_t backpressure_waits(void)
{
	uint64_t n = 0;
	for (int k = 0; k < 2; k++) {
		shmbus_topic_stats_t ts;
		CHECK_RC(shmbus_topic_stats(bus, topics[k], &ts), 0);
		n += ts.backpressure_waits;
	}
	return n;
}

/* Messages of the topic not yet confirmed by Redis (the mirror's group). */
static uint64_t group_lag(const char *topic)
{
	shmbus_group_info_t g[4];
	int n = shmbus_topic_groups(bus, topic, g, 4);
	for (int i = 0; i < n && i < 4; i++)
		if (!strcmp(g[i].name, "bridge-r"))
			return g[i].lag_msgs;
	return UINT64_MAX;
}

static void wait_confirmed(void)
{
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	while (group_lag(topics[0]) || group_lag(topics[1])) {
		if (t_now_ns() > deadline) {
			fprintf(stderr, "not confirmed within %d ms: lag %llu / %llu\n",
				BT_DEADLINE_MS, (unsigned long long)group_lag(topics[0]),
				(unsigned long long)group_lag(topics[1]));
			exit(1);
		}
		usleep(2000);
	}
}

static void publish_burst(int n)
{
	/* The publisher thread is paused; publish on its behalf with the same payloads. */
	shmbus_pub_t *p[2];
	for (int k = 0; k < 2; k++)
		CHECK_RC(shmbus_pub_open(&p[k], bus, topics[k]), 0);
	uint64_t from = __atomic_load_n(&published, __ATOMIC_ACQUIRE);
	for (uint64_t i = from; i < from + (uint64_t)n && i < N; i++) {
		publish_both(p, i);
		bt_published_set(&published, i + 1);
	}
	for (int k = 0; k < 2; k++)
		shmbus_pub_close(p[k]);
}

static void verify_stream(redisContext *c, int k)
{
	const char *key = topics[k];
	char last[64] = "-";
	uint64_t next = 0, base = 0;
	uint8_t want[256];
	char gen[32] = "";
	while (next < N) {
		redisReply *r =
			bt_cmd(c, "XRANGE %s %s%s + COUNT 2000", key, next ? "(" : "", last);
		CHECK(r->type == REDIS_REPLY_ARRAY);
		if (r->elements == 0) {
			fprintf(stderr, "%s: stream ends at %llu of %d\n", key,
				(unsigned long long)next, N);
			exit(1);
		}
		for (size_t i = 0; i < r->elements; i++, next++) {
			redisReply *e = r->element[i];
			CHECK(e->type == REDIS_REPLY_ARRAY && e->elements == 2);
			unsigned long long ms, seq;
			CHECK(sscanf(e->element[0]->str, "%llu-%llu", &ms, &seq) == 2);
			if (!base)
				base = ms;
			if (ms != base || seq != next) {
				fprintf(stderr, "%s: entry %llu has ID %s (want %llu-%llu)\n", key,
					(unsigned long long)next, e->element[0]->str,
					(unsigned long long)base, (unsigned long long)next);
				exit(1);
			}
			snprintf(last, sizeof(last), "%s", e->element[0]->str);
			redisReply *f = e->element[1];
			CHECK(f->elements == 8);
			CHECK(!strcmp(f->element[0]->str, "type") &&
			      !strcmp(f->element[1]->str, "5"));
			CHECK(!strcmp(f->element[2]->str, "data"));
			size_t len = bt_payload(want, (uint32_t)k, next);
			if (f->element[3]->len != len || memcmp(f->element[3]->str, want, len)) {
				fprintf(stderr, "%s: entry %llu has other bytes\n", key,
					(unsigned long long)next);
				exit(1);
			}
			CHECK(!strcmp(f->element[4]->str, "origin") && f->element[5]->len > 0);
			CHECK(!strcmp(f->element[6]->str, "gen") && f->element[7]->len == 16);
			if (!gen[0])
				snprintf(gen, sizeof(gen), "%s", f->element[7]->str);
			CHECK(!strcmp(gen, f->element[7]->str));
		}
		freeReplyObject(r);
	}
	CHECK(bt_xlen(c, key) == N);
	printf("  %s: %d entries, IDs %llu-0 .. %llu-%d, every payload intact, none twice\n", key,
	       N, (unsigned long long)base, (unsigned long long)base, N - 1);
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	bt_need_redis();
	const char *dir = t_private_dir("brm");
	struct bt_redis rs;
	bt_redis_new(&rs, "redis");
	bt_redis_start(&rs);
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d,
			"[bus]\nname = brm\ndir = %s\n"
			"[topic orders.eu]\ncapacity = 256K\n"
			"[topic orders.us]\ncapacity = 256K\n"
			"[mirror r]\ntopics = orders.*\nto = redis://127.0.0.1:%d/0\nwindow = 512\n"
			"backoff_min_ms = 20\nbackoff_max_ms = 200\ntimeout_ms = 3000\n"
			/* C: the ring is held for the mirror while no daemon runs, for longer than
			 * a restart can take under ASan on a loaded machine. */
			"hold_ms = 60000\n",
			dir, rs.port);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "brm"), 0);
	t_daemon_start(&d, bus);
	shmbus_sub_t *log = t_events_open(bus);
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "r", st, st.up);
	redisContext *c = bt_client(&rs);

	pthread_t th;
	CHECK(pthread_create(&th, NULL, publisher, NULL) == 0);

	printf("A: Redis killed with SIGKILL mid-stream, started again\n");
	wait_published(N / 5);
	CHECK(bt_stats(bus, "r", &st) == 0);
	uint64_t errors = st.errors;
	bt_redis_kill(&rs);
	uint64_t at = __atomic_load_n(&published, __ATOMIC_ACQUIRE);
	/* Down for as long as it takes the mirror to see the connection gone and to find
	 * nobody there when it tries again (each failure counts one error). */
	BT_AWAIT(bus, "r", st, !st.up && st.errors >= errors + 2);
	printf("  killed at %llu published; %llu published while it was down (the mirror saw it "
	       "gone and a reconnect refused)\n",
	       (unsigned long long)at,
	       (unsigned long long)(__atomic_load_n(&published, __ATOMIC_ACQUIRE) - at));
	bt_redis_start(&rs);
	redisFree(c);
	c = bt_client(&rs);

	printf("B: shmbusd killed with SIGKILL, Redis down, messages unconfirmed\n");
	wait_published(2 * N / 5);
	pause_publisher();
	wait_confirmed();
	bt_redis_kill(&rs);
	publish_burst(500);
	/* The daemon dies knowing Redis is gone, with the 500 of each topic unconfirmed. */
	BT_AWAIT(bus, "r", st, !st.up);
	CHECK(group_lag(topics[0]) == 500 && group_lag(topics[1]) == 500);
	t_daemon_kill(&d);
	bt_redis_start(&rs);
	redisFree(c);
	c = bt_client(&rs);
	t_daemon_start(&d, bus);
	wait_confirmed();
	printf("  the 2 x 500 waiting messages went out after the restart\n");

	printf("C: shmbusd killed with SIGKILL right after a burst (replies in flight)\n");
	BT_AWAIT(bus, "r", st, st.up);
	uint64_t sent = st.sent;
	publish_burst(3000);
	/* Killed as soon as the burst is going out: XADDs sent, their replies still coming. */
	BT_AWAIT(bus, "r", st, st.sent > sent);
	t_daemon_kill(&d);
	printf("  %llu / %llu unconfirmed when it died\n", (unsigned long long)group_lag(topics[0]),
	       (unsigned long long)group_lag(topics[1]));
	uint64_t at_c = __atomic_load_n(&published, __ATOMIC_ACQUIRE);
	/* The publisher goes on while no daemon runs: it fills the ring and is held there
	 * by the mirror's lease (no live member, yet nothing unconfirmed is overwritten).
	 * The daemon starts again once the publisher waits at the full ring. */
	uint64_t waits = backpressure_waits();
	resume_publisher();
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	while (backpressure_waits() == waits) {
		if (t_now_ns() > deadline) {
			fprintf(stderr,
				"the publisher was not held at a full ring within %d ms "
				"(%llu published since the kill)\n",
				BT_DEADLINE_MS,
				(unsigned long long)(__atomic_load_n(&published, __ATOMIC_ACQUIRE) -
						     at_c));
			exit(1);
		}
		usleep(1000);
	}
	printf("  %llu more published while shmbusd was down, then held at the full ring\n",
	       (unsigned long long)(__atomic_load_n(&published, __ATOMIC_ACQUIRE) - at_c));
	t_daemon_start(&d, bus);
	wait_published(N);
	CHECK(pthread_join(th, NULL) == 0);
	for (int k = 0; k < 2; k++)
		bt_need_xlen(c, topics[k], N);
	wait_confirmed();
	printf("verify: every message once, in order\n");
	for (int k = 0; k < 2; k++)
		verify_stream(c, k);

	/* The counters of this daemon (since its start in C), once its lag (refreshed every
	 * 100 ms) shows it confirmed everything. */
	BT_AWAIT(bus, "r", st, st.lag == 0);
	shmbus_bridge_totals_t tot;
	CHECK(shmbus_bridge_stats(bus, &st, 1, &tot) == 1);
	printf("  counters since the last start: up %d, sent %llu, confirmed %llu, duplicates "
	       "%llu, lag %llu, errors %llu; io_uring: %.1f SQEs per enter, futex waits %s\n",
	       st.up, (unsigned long long)st.sent, (unsigned long long)st.confirmed,
	       (unsigned long long)st.duplicates, (unsigned long long)st.lag,
	       (unsigned long long)st.errors,
	       tot.enters ? (double)tot.sqes / (double)tot.enters : 0,
	       tot.futex_wait ? "yes" : "no");
	CHECK(st.up == 1 && st.lag == 0 && tot.running && tot.pid == d.pid);
	/* The meson test runs this twice: with futex waits in io_uring, and with the timed
	 * fallback that kernels without IORING_OP_FUTEX_WAIT get. */
	const char *nf = getenv("SHMBUSD_BRIDGE_NO_FUTEX");
	CHECK(tot.futex_wait == !(nf && *nf && strcmp(nf, "0")));
	CHECK(!strcmp(st.kind, "redis") && st.topics == 2);
	/* At least what was published after the last kill went through this daemon. */
	CHECK(st.confirmed + st.duplicates >= 2 * (N - at_c));
	CHECK(st.lost == 0);

	/* The events of A: down, then up again. */
	char ev[4096];
	const char *down[] = { "\"event\":\"bridge_down\"", "\"mirror\":\"r\"", NULL };
	const char *up[] = { "\"event\":\"bridge_up\"", "\"mirror\":\"r\"", NULL };
	CHECK(t_event_find(log, ev, sizeof(ev), BT_DEADLINE_MS, down) == 0);
	printf("  $sys.log: %s\n", ev);
	CHECK(t_event_find(log, ev, sizeof(ev), BT_DEADLINE_MS, up) == 0);
	printf("  $sys.log: %s\n", ev);
	shmbus_sub_close(log);
	return bt_redis_pass(&d, c, &rs, bus);
}
