/* SPDX-License-Identifier: MIT */
/*
 * What was in flight when the connection dropped is sent again after the reconnect, even
 * when nothing more is published (docs/bridge.md: "everything unconfirmed is sent again
 * after a reconnect"). Against a real redis-server: Redis stops (SIGSTOP) with 50 XADDs
 * sent and unanswered, the publisher has nothing more to say, and the mirror waits for new
 * messages; Redis is killed (what it had not read is gone) and started again. The stream
 * must get the 50, in order, once, with nothing else published.
 * usage: bridge_redis_resend PATH-TO-SHMBUSD
 */
#include "bridge_helpers.h"

#define FIRST 100
#define TAIL 50

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	bt_need_redis();
	const char *dir = t_private_dir("brr");
	struct bt_redis rs;
	bt_redis_new(&rs, "redis");
	bt_redis_start(&rs);
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d,
			"[bus]\nname = brr\ndir = %s\n"
			"[topic q]\ncapacity = 64K\n"
			"[mirror r]\ntopics = q\nto = redis://127.0.0.1:%d/0\n"
			"backoff_min_ms = 20\nbackoff_max_ms = 100\n",
			dir, rs.port);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, "brr"), 0);
	t_daemon_start(&d, bus);
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "r", st, st.up);
	redisContext *c = bt_client(&rs);

	bt_publish(bus, "q", 1, 0, FIRST, 3);
	bt_need_xlen(c, "q", FIRST);
	BT_AWAIT(bus, "r", st, st.confirmed == FIRST && st.lag == 0);
	uint64_t errors = st.errors;

	printf("Redis stopped, %d more published: sent, unanswered\n", TAIL);
	CHECK(kill(rs.pid, SIGSTOP) == 0);
	bt_publish(bus, "q", 1, FIRST, TAIL, 3);
	/* All sent: the mirror has read the topic to its end and waits for more. */
	BT_AWAIT(bus, "r", st, st.sent == FIRST + TAIL);
	CHECK(st.confirmed == FIRST);

	printf("Redis killed with SIGKILL (the %d unread), started again\n", TAIL);
	bt_redis_kill(&rs);
	BT_AWAIT(bus, "r", st, !st.up && st.errors > errors);
	bt_redis_start(&rs);
	redisFree(c);
	c = bt_client(&rs);
	/* Nothing else is published: the mirror must send the 50 of its own accord. */
	bt_need_xlen(c, "q", FIRST + TAIL);
	BT_AWAIT(bus, "r", st, st.up && st.lag == 0);
	redisReply *r = bt_cmd(c, "XRANGE q - +");
	CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == FIRST + TAIL);
	uint8_t want[256];
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *e = r->element[i];
		unsigned long long ms, seq;
		CHECK(sscanf(e->element[0]->str, "%llu-%llu", &ms, &seq) == 2 && seq == i);
		size_t len = bt_payload(want, 1, i);
		CHECK(e->element[1]->element[3]->len == len &&
		      !memcmp(e->element[1]->element[3]->str, want, len));
	}
	freeReplyObject(r);
	printf("  the stream has all %d, in order, once; the lag is 0\n", FIRST + TAIL);
	return bt_redis_pass(&d, c, &rs, bus);
}
