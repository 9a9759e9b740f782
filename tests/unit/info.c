/* SPDX-License-Identifier: MIT */
/*
 * bus/info: listing a bus's topics, and snapshots of a topic's readers and groups with
 * their lag, as `shmbus stat` shows them.
 */
#include "tests/lib/test.h"

struct names {
	char buf[8][64];
	int n;
};

static int collect(const char *name, void *arg)
{
	struct names *nm = arg;
	if (nm->n < 8)
		snprintf(nm->buf[nm->n], sizeof(nm->buf[0]), "%s", name);
	nm->n++;
	return 0;
}

static int stop_at_second(const char *name, void *arg)
{
	(void)name;
	return ++*(int *)arg == 2 ? 42 : 0;
}

int main(void)
{
	t_private_dir("info");
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, "info"), 0);

	struct names nm = { .n = 0 };
	CHECK_RC(shmbus_topic_foreach(bus, collect, &nm), 0);
	CHECK(nm.n == 0);
	CHECK_RC(shmbus_topic_create(bus, "zeta", NULL), 0);
	CHECK_RC(shmbus_topic_create(bus, "alpha.one", NULL), 0);
	CHECK_RC(shmbus_topic_create(bus, "mid", NULL), 0);
	CHECK_RC(shmbus_topic_foreach(bus, collect, &nm), 0);
	CHECK(nm.n == 3);
	CHECK(!strcmp(nm.buf[0], "alpha.one") && !strcmp(nm.buf[1], "mid") &&
	      !strcmp(nm.buf[2], "zeta"));
	int calls = 0;
	CHECK_RC(shmbus_topic_foreach(bus, stop_at_second, &calls), 42);
	CHECK(calls == 2);

	/* Two fan-out readers (one behind), a group of two with one message held. */
	shmbus_sub_t *fast, *slow, *m1, *m2;
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_sub_open(&fast, bus, "mid", NULL, 0), 0);
	CHECK_RC(shmbus_sub_open(&slow, bus, "mid", NULL, 0), 0);
	CHECK_RC(shmbus_sub_open(&m1, bus, "mid", "workers", 0), 0);
	CHECK_RC(shmbus_sub_open(&m2, bus, "mid", "workers", 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "mid"), 0);
	char payload[100] = { 0 };
	for (int i = 0; i < 10; i++)
		CHECK_RC(shmbus_publish(pub, payload, sizeof(payload), 0), 0);
	shmbus_msg_t m;
	for (int i = 0; i < 10; i++)
		CHECK_RC(shmbus_recv(fast, &m, 1000), 0);
	CHECK_RC(shmbus_release(fast, &m), 0);
	for (int i = 0; i < 3; i++)
		CHECK_RC(shmbus_recv(slow, &m, 1000), 0);
	for (int i = 0; i < 4; i++)
		CHECK_RC(shmbus_recv(m1, &m, 1000), 0);
	CHECK_RC(shmbus_recv(m2, &m, 1000), 0);

	shmbus_reader_info_t ri[8];
	CHECK_RC(shmbus_topic_readers(bus, "mid", ri, 8), 4);
	CHECK(ri[0].pid == getpid() && ri[0].group[0] == '\0');
	CHECK(ri[0].consumed == 10 && ri[0].lag_msgs == 0 && ri[0].lag_bytes == 0);
	CHECK(ri[1].consumed == 3 && ri[1].lag_msgs == 7 && ri[1].lag_bytes > 7 * 100);
	CHECK(!strcmp(ri[2].group, "workers") && ri[2].consumed == 4);
	CHECK(!strcmp(ri[3].group, "workers") && ri[3].consumed == 1);
	/* Room for fewer: the count is still the total. */
	CHECK_RC(shmbus_topic_readers(bus, "mid", ri, 1), 4);

	shmbus_group_info_t gi[4];
	CHECK_RC(shmbus_topic_groups(bus, "mid", gi, 4), 1);
	CHECK(!strcmp(gi[0].name, "workers") && gi[0].members == 2);
	CHECK(gi[0].lag_msgs == 5 && gi[0].lag_bytes > 5 * 100 && gi[0].lost == 0);

	/* A group outlives its members. */
	shmbus_sub_close(m1);
	shmbus_sub_close(m2);
	CHECK_RC(shmbus_topic_groups(bus, "mid", gi, 4), 1);
	CHECK(gi[0].members == 0 && gi[0].lag_msgs == 5);
	CHECK_RC(shmbus_topic_readers(bus, "mid", ri, 8), 2);

	CHECK_RC(shmbus_topic_readers(bus, "nosuch", ri, 8), -ENOENT);
	CHECK_RC(shmbus_topic_groups(bus, "nosuch", gi, 8), -ENOENT);

	shmbus_pub_info_t pi[4];
	CHECK_RC(shmbus_topic_publishers(bus, "mid", pi, 4), 1);
	CHECK(pi[0].pid == getpid() && pi[0].published == 10 && pi[0].bytes == 1000);
	CHECK(pi[0].claim_open == 0);
	void *rbuf;
	CHECK_RC(shmbus_reserve(pub, 8, &rbuf), 0);
	CHECK_RC(shmbus_topic_publishers(bus, "mid", pi, 4), 1);
	CHECK(pi[0].claim_open == 1);
	CHECK_RC(shmbus_abort(pub), 0);
	CHECK_RC(shmbus_topic_publishers(bus, "nosuch", pi, 4), -ENOENT);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_publishers(bus, "mid", pi, 4), 0);
	shmbus_sub_close(fast);
	shmbus_sub_close(slow);
	shmbus_bus_close(bus);
	return 0;
}
