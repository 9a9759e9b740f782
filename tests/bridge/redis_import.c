/* SPDX-License-Identifier: MIT */
/*
 * [import NAME]: a Redis stream into a local topic, against a real redis-server.
 *  - entries there before the start, and entries added while it runs, arrive in order
 *    with their bytes and type word, through a small block topic that fills up (the import
 *    waits for room, it never drops);
 *  - shmbusd killed with SIGKILL mid-import and started again: it goes on after the last
 *    ID it published (at most the one entry in flight at the kill comes twice); Redis
 *    killed and started again: nothing lost, nothing twice;
 *  - an entry without the data field is counted as an error and skipped;
 *  - start = latest: only entries added after the first start;
 *  - skip_own: entries our own mirror wrote to the stream are not brought back.
 * usage: bridge_redis_import PATH-TO-SHMBUSD
 */
#include "bridge_helpers.h"

static shmbus_bus_t *bus;
static struct bt_redis rs;

static void xadd_n(redisContext *c, const char *key, uint32_t tag, uint64_t from, uint64_t n,
		   const char *origin)
{
	uint8_t buf[256];
	for (uint64_t i = from; i < from + n; i++) {
		size_t len = bt_payload(buf, tag, i);
		char type[16];
		snprintf(type, sizeof(type), "%llu", (unsigned long long)(i % 7));
		freeReplyObject(bt_cmd(c, "XADD %s * type %s data %b origin %s", key, type, buf,
				       len, origin));
	}
}

/* Read from sub until message `want_last` arrives; every payload is (tag, i) for the i
 * expected next, type i % 7; a repeat of the one just read is counted, not failed. */
static uint64_t read_until(shmbus_sub_t *sub, uint32_t tag, uint64_t *next, uint64_t want_last,
			   int *repeats)
{
	uint8_t want[256];
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	while (*next <= want_last) {
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, 100);
		if (rc == -EAGAIN) {
			if (t_now_ns() > deadline) {
				fprintf(stderr, "entry %llu (tag %u) not imported within %d ms\n",
					(unsigned long long)*next, tag, BT_DEADLINE_MS);
				exit(1);
			}
			continue;
		}
		CHECK_RC(rc, 0);
		uint64_t got;
		CHECK(m.len >= 8);
		memcpy(&got, m.data, 8);
		if (*next && got == *next - 1) {
			(*repeats)++;
			continue;
		}
		if (got != *next) {
			fprintf(stderr, "expected entry %llu, got %llu\n",
				(unsigned long long)*next, (unsigned long long)got);
			exit(1);
		}
		size_t len = bt_payload(want, tag, got);
		CHECK(m.len == len && !memcmp(m.data, want, len) && m.type == got % 7);
		(*next)++;
		/* A slow reader, on purpose: the small topic fills and the import waits for
		 * room (no event to wait for: the pace is the scenario). */
		if (got % 64 == 0)
			usleep(1000);
	}
	return *next;
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	bt_need_redis();
	const char *dir = t_private_dir("bri");
	bt_redis_new(&rs, "redis");
	bt_redis_start(&rs);
	redisContext *c = bt_client(&rs);
	xadd_n(c, "ext.orders", 1, 0, 1500, "elsewhere");
	xadd_n(c, "ext.late", 2, 0, 50, "elsewhere");
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(
		&d,
		"[bus]\nname = bri\ndir = %s\n"
		"[topic local.orders]\ncapacity = 16K\n"
		"[import in]\nfrom = redis://127.0.0.1:%d/0/ext.orders\ntopic = local.orders\n"
		"count = 100\nblock_ms = 200\nbackoff_min_ms = 20\nbackoff_max_ms = 100\n"
		"[import late]\nfrom = redis://127.0.0.1:%d/ext.late\ntopic = local.late\n"
		"start = latest\n"
		"[topic loop.t]\ncapacity = 1M\n"
		"[mirror out]\ntopics = loop.t\nto = redis://127.0.0.1:%d\n"
		"[import back]\nfrom = redis://127.0.0.1:%d/loop.t\ntopic = loop.in\n",
		dir, rs.port, rs.port, rs.port, rs.port);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "bri"), 0);
	/* The readers first (a block topic keeps nothing for readers not there yet): the
	 * topics as the daemon makes them, before it starts importing. */
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 16384;
	CHECK(shmbus_topic_create(bus, "local.orders", &o) >= 0);
	CHECK(shmbus_topic_create(bus, "local.late", NULL) >= 0);
	CHECK(shmbus_topic_create(bus, "loop.in", NULL) >= 0);
	shmbus_sub_t *sub, *late, *back;
	CHECK_RC(shmbus_sub_open(&sub, bus, "local.orders", NULL, SHMBUS_SUB_EARLIEST), 0);
	CHECK_RC(shmbus_sub_open(&late, bus, "local.late", NULL, SHMBUS_SUB_EARLIEST), 0);
	CHECK_RC(shmbus_sub_open(&back, bus, "loop.in", NULL, SHMBUS_SUB_EARLIEST), 0);
	t_daemon_start(&d, bus);
	uint64_t next = 0;
	int repeats = 0;

	printf("entries there before the start, through a 16K block topic\n");
	read_until(sub, 1, &next, 499, &repeats);
	printf("shmbusd killed with SIGKILL mid-import\n");
	t_daemon_kill(&d);
	xadd_n(c, "ext.orders", 1, 1500, 500, "elsewhere");
	t_daemon_start(&d, bus);
	read_until(sub, 1, &next, 1199, &repeats);
	printf("Redis killed with SIGKILL mid-import\n");
	shmbus_bridge_info_t st;
	CHECK(bt_stats(bus, "in", &st) == 0);
	uint64_t errors = st.errors;
	bt_redis_kill(&rs);
	/* Down until the import saw the connection gone and found nobody when it tried again
	 * (each failure counts one error). */
	BT_AWAIT(bus, "in", st, !st.up && st.errors >= errors + 2);
	bt_redis_start(&rs);
	redisFree(c);
	c = bt_client(&rs);
	xadd_n(c, "ext.orders", 1, 2000, 500, "elsewhere");
	read_until(sub, 1, &next, 2499, &repeats);
	printf("  2500 entries in order, bytes and type intact; %d repeated at the kill\n",
	       repeats);
	CHECK(repeats <= 1);

	printf("an entry without a data field\n");
	freeReplyObject(bt_cmd(c, "XADD ext.orders * foo bar"));
	xadd_n(c, "ext.orders", 1, 2500, 10, "elsewhere");
	read_until(sub, 1, &next, 2509, &repeats);
	CHECK(bt_stats(bus, "in", &st) == 0);
	printf("  skipped and counted (errors %llu: \"%s\"); the ten after it arrived\n",
	       (unsigned long long)st.errors, st.last_error);
	CHECK(strstr(st.last_error, "no such field"));

	printf("start = latest\n");
	xadd_n(c, "ext.late", 2, 50, 20, "elsewhere");
	uint64_t lnext = 50;
	int lrep = 0;
	read_until(late, 2, &lnext, 69, &lrep);
	/* Once it has counted the 20 as published, there is nothing more to come. */
	BT_AWAIT(bus, "late", st, st.confirmed >= 20);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(late, &m, 0), -EAGAIN);
	CHECK(st.confirmed == 20 && lrep == 0);
	printf("  the 50 older entries were not imported, the 20 new ones were\n");

	printf("skip_own: no loop through our own mirror\n");
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "loop.t"), 0);
	for (int i = 0; i < 30; i++)
		CHECK_RC(shmbus_publish(p, "mine", 4, 0), 0);
	shmbus_pub_close(p);
	bt_need_xlen(c, "loop.t", 30);
	xadd_n(c, "loop.t", 3, 0, 5, "elsewhere");
	uint64_t bnext = 0;
	int brep = 0;
	read_until(back, 3, &bnext, 4, &brep);
	/* All 35 entries gone through the import: the 5 published, ours skipped, no more. */
	BT_AWAIT(bus, "back", st, st.duplicates + st.confirmed >= 35);
	CHECK_RC(shmbus_recv(back, &m, 0), -EAGAIN);
	printf("  30 of ours skipped (counted %llu), 5 from elsewhere imported\n",
	       (unsigned long long)st.duplicates);
	CHECK(st.duplicates == 30 && st.confirmed == 5);

	shmbus_sub_close(sub);
	shmbus_sub_close(late);
	shmbus_sub_close(back);
	return bt_redis_pass(&d, c, &rs, bus);
}
