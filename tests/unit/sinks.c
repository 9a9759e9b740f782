/* SPDX-License-Identifier: MIT */
/*
 * Sinks and subscriber fds (include/shmbus.h, docs/sinks.md), in one process:
 *  - patterns: what is valid, what matches (empty tokens, ">" alone, "*" last, names at
 *    the length limit, $sys. topics);
 *  - a sink over a pattern reads every message of each matching topic once, in order per
 *    topic, msg.topic naming it; a topic created later is joined (found by the sink's
 *    receive, woken by inotify), one removed is left; remove() leaves what no pattern
 *    left matches; add() of a name that does not exist yet joins it when it is created;
 *  - fairness: a busy topic gives at most 16 in a row while a quiet one has a message;
 *  - a filter sees each message; what it rejects is never returned;
 *  - a sink in a group shares each topic's messages with a plain member; an acknowledging
 *    one acks through the sink (a stale ack is -ESTALE);
 *  - fds: a subscriber's and a sink's fd are not readable while nothing is there, become
 *    readable after a publish (epoll), and are armed again by a receive of -EAGAIN.
 */
#include <sys/epoll.h>

#include "tests/lib/test.h"

static shmbus_bus_t *bus;

static void mk(const char *name)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	CHECK_RC(shmbus_topic_create(bus, name, &o), 0);
}

static void pub(const char *topic, uint32_t id)
{
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, topic), 0);
	char b[64];
	snprintf(b, sizeof(b), "%s/%u", topic, id);
	CHECK_RC(shmbus_publish(p, b, strlen(b) + 1, id), 0);
	shmbus_pub_close(p);
}

static void recv_is(shmbus_sink_t *k, const char *topic, uint32_t id)
{
	shmbus_msg_t m;
	int rc = shmbus_sink_recv(k, &m, 5000);
	if (rc)
		FAIL("waiting for %s/%u: %d (%s)", topic, id, rc, shmbus_errmsg());
	char want[64];
	snprintf(want, sizeof(want), "%s/%u", topic, id);
	if (strcmp(m.topic, topic) || strcmp(m.data, want) || m.type != id)
		FAIL("got %s from %s, wanted %s", (const char *)m.data, m.topic, want);
}

static void nothing(shmbus_sink_t *k)
{
	shmbus_msg_t m;
	int rc = shmbus_sink_recv(k, &m, 0);
	if (rc != -EAGAIN)
		FAIL("expected nothing, got %d (%s)", rc, rc == 0 ? (const char *)m.data : "");
}

static void patterns(void)
{
	const char *good[] = { "a", "a.b", "*", ">", "a.*", "a.>", "*.b.>", "$sys.>", "a-b_c.9" };
	const char *bad[] = { "", ".", "a.", ".a", "a..b", "a.>.b", "a*", "a.b*", ">a", "a b" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK_RC(shmbus_pattern_check(good[i]), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (shmbus_pattern_check(bad[i]) != -EINVAL)
			FAIL("pattern '%s' accepted", bad[i]);
	char longest[SHMBUS_TOPIC_NAME_MAX + 2];
	memset(longest, 'x', sizeof(longest));
	longest[SHMBUS_TOPIC_NAME_MAX] = 0;
	CHECK_RC(shmbus_pattern_check(longest), 0);
	longest[SHMBUS_TOPIC_NAME_MAX] = 'x';
	longest[SHMBUS_TOPIC_NAME_MAX + 1] = 0;
	CHECK_RC(shmbus_pattern_check(longest), -EINVAL);
	struct {
		const char *p, *t;
		int m;
	} cases[] = {
		{ "a.*", "a.b", 1 },	 { "a.*", "a", 0 },	   { "a.*", "a.b.c", 0 },
		{ "a.>", "a.b", 1 },	 { "a.>", "a.b.c", 1 },	   { "a.>", "a", 0 },
		{ ">", "a", 1 },	 { ">", "a.b.c", 1 },	   { "*", "a", 1 },
		{ "*", "a.b", 0 },	 { "*.b", "a.b", 1 },	   { "*.b", "a.c", 0 },
		{ ">", "$sys.log", 0 },	 { "$sys.>", "$sys.log", 1 }, { "a.b", "a.b", 1 },
		{ "a.b", "a.bc", 0 },	 { "a.*.c", "a.x.c", 1 },  { "a.*.c", "a.x.d", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (shmbus_pattern_match(cases[i].p, cases[i].t) != cases[i].m)
			FAIL("'%s' vs '%s': wanted %d", cases[i].p, cases[i].t, cases[i].m);
}

static void fanout(void)
{
	mk("o.eu");
	mk("o.us");
	mk("other");
	shmbus_sink_t *k;
	CHECK_RC(shmbus_sink_open(&k, bus, NULL, 0), 0);
	CHECK_RC(shmbus_sink_add(k, "o.*"), 2);
	CHECK_RC(shmbus_sink_add(k, "o.*"), -EEXIST);
	CHECK_RC(shmbus_sink_add(k, "late"), 0);
	CHECK_RC(shmbus_sink_add(k, "bad..p"), -EINVAL);
	nothing(k);
	pub("o.eu", 1);
	pub("other", 1);
	pub("o.us", 1);
	pub("o.eu", 2);
	/* Per topic in order; across topics, any order: collect. */
	int eu = 0, us = 0;
	for (int i = 0; i < 3; i++) {
		shmbus_msg_t m;
		CHECK_RC(shmbus_sink_recv(k, &m, 5000), 0);
		if (!strcmp(m.topic, "o.eu"))
			CHECK(m.type == (uint32_t)++eu);
		else
			CHECK(!strcmp(m.topic, "o.us") && m.type == (uint32_t)++us);
	}
	CHECK(eu == 2 && us == 1);
	nothing(k);
	/* Created later: joined, woken for (the sink sleeps until it comes). */
	mk("o.jp");
	mk("late");
	pub("o.jp", 7);
	recv_is(k, "o.jp", 7);
	pub("late", 3);
	recv_is(k, "late", 3);
	char names[8][SHMBUS_TOPIC_NAME_MAX + 1];
	CHECK(shmbus_sink_topics(k, names, 8) == 4);
	CHECK(!strcmp(names[0], "late") && !strcmp(names[1], "o.eu") && !strcmp(names[2], "o.jp") &&
	      !strcmp(names[3], "o.us"));
	/* Removed: left (the next receive finds the event). */
	CHECK_RC(shmbus_topic_remove(bus, "o.jp"), 0);
	nothing(k);
	CHECK(shmbus_sink_topics(k, names, 8) == 3);
	CHECK_RC(shmbus_sink_remove(k, "o.*"), 0);
	CHECK_RC(shmbus_sink_remove(k, "o.*"), -ENOENT);
	CHECK(shmbus_sink_topics(k, names, 8) == 1);
	pub("o.eu", 3);
	nothing(k);
	shmbus_sink_close(k);
}

static void fairness(void)
{
	mk("f.busy");
	mk("f.quiet");
	shmbus_sink_t *k;
	CHECK_RC(shmbus_sink_open(&k, bus, NULL, 0), 0);
	CHECK_RC(shmbus_sink_add(k, "f.>"), 2);
	for (uint32_t i = 1; i <= 100; i++)
		pub("f.busy", i);
	pub("f.quiet", 1);
	int run = 0, seen_quiet = 0;
	for (int i = 0; i < 101; i++) {
		shmbus_msg_t m;
		CHECK_RC(shmbus_sink_recv(k, &m, 5000), 0);
		if (!strcmp(m.topic, "f.quiet")) {
			seen_quiet = 1;
			run = 0;
		} else if (!seen_quiet) {
			run++;
			CHECK(run <= 16);
		}
	}
	CHECK(seen_quiet);
	shmbus_sink_close(k);
}

static int only_even(void *arg, const char *topic, uint32_t type, const void *data, uint32_t len)
{
	(*(int *)arg)++;
	CHECK(!strncmp(topic, "flt", 3) && len > 0 && data);
	return type % 2 == 0;
}

static void filter(void)
{
	mk("flt");
	shmbus_sink_t *k;
	CHECK_RC(shmbus_sink_open(&k, bus, NULL, 0), 0);
	int calls = 0;
	shmbus_sink_set_filter(k, only_even, &calls);
	CHECK_RC(shmbus_sink_add(k, "flt"), 1);
	for (uint32_t i = 1; i <= 6; i++)
		pub("flt", i);
	recv_is(k, "flt", 2);
	recv_is(k, "flt", 4);
	recv_is(k, "flt", 6);
	nothing(k);
	CHECK(calls == 6);
	shmbus_sink_close(k);
}

static void groups(void)
{
	mk("g.a");
	mk("g.b");
	shmbus_sink_t *k;
	CHECK_RC(shmbus_sink_open(&k, bus, "w", SHMBUS_SUB_ACK), 0);
	CHECK_RC(shmbus_sink_add(k, "g.*"), 2);
	shmbus_sub_t *other;
	CHECK_RC(shmbus_sub_open(&other, bus, "g.a", "w", 0), 0);
	for (uint32_t i = 1; i <= 10; i++)
		pub("g.a", i);
	pub("g.b", 1);
	/* Each g.a message goes to the sink or to the other member, never both. */
	int seen[11] = { 0 }, got_b = 0, n = 0;
	shmbus_msg_t m, keep;
	for (;;) {
		int rc = shmbus_sink_recv(k, &m, 0);
		if (rc == -EAGAIN)
			break;
		CHECK_RC(rc, 0);
		CHECK(m.deliveries == 1);
		if (!strcmp(m.topic, "g.b"))
			got_b++;
		else
			seen[m.type]++;
		if (n++ == 0)
			keep = m;
		else
			CHECK_RC(shmbus_sink_ack(k, &m), 0);
	}
	while (shmbus_recv(other, &m, 0) == 0)
		seen[m.type]++;
	for (int i = 1; i <= 10; i++)
		CHECK(seen[i] == 1);
	CHECK(got_b == 1);
	CHECK_RC(shmbus_sink_ack(k, &keep), 0);
	CHECK_RC(shmbus_sink_ack(k, &keep), -ESTALE);
	shmbus_sub_close(other);
	shmbus_sink_close(k);
}

static int readable(int ep, int ms)
{
	struct epoll_event ev;
	int n = epoll_wait(ep, &ev, 1, ms);
	CHECK(n >= 0);
	return n;
}

static void fds(void)
{
	mk("fd.t");
	shmbus_sub_t *s;
	CHECK_RC(shmbus_sub_open(&s, bus, "fd.t", NULL, 0), 0);
	int fd = shmbus_sub_fd(s);
	if (fd == -ENOSYS) {
		printf("no io_uring futex wait here: fd checks skipped (%s)\n", shmbus_errmsg());
		shmbus_sub_close(s);
		return;
	}
	CHECK(fd >= 0);
	CHECK(shmbus_sub_fd(s) == fd);
	shmbus_sink_t *k;
	CHECK_RC(shmbus_sink_open(&k, bus, NULL, 0), 0);
	CHECK_RC(shmbus_sink_add(k, "fd.>"), 1);
	int kfd = shmbus_sink_fd(k);
	CHECK(kfd >= 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
	int ep2 = epoll_create1(EPOLL_CLOEXEC);
	CHECK(epoll_ctl(ep2, EPOLL_CTL_ADD, kfd, &ev) == 0);
	for (uint32_t round = 1; round <= 200; round++) {
		pub("fd.t", round);
		/* Readable (a spurious wake-up before is allowed: receive until -EAGAIN). */
		shmbus_msg_t m;
		int got = 0;
		while (!got) {
			CHECK(readable(ep, 5000) == 1);
			int rc;
			while ((rc = shmbus_recv(s, &m, 0)) == 0) {
				CHECK(m.type == round && !strcmp(m.topic, "fd.t"));
				got++;
			}
			CHECK_RC(rc, -EAGAIN);
		}
		CHECK(got == 1);
		got = 0;
		while (!got) {
			CHECK(readable(ep2, 5000) == 1);
			int rc;
			while ((rc = shmbus_sink_recv(k, &m, 0)) == 0) {
				CHECK(m.type == round);
				got++;
			}
			CHECK_RC(rc, -EAGAIN);
		}
		CHECK(got == 1);
	}
	/* A topic created later wakes the sink's fd too. */
	mk("fd.new");
	pub("fd.new", 9);
	int got = 0;
	for (int tries = 0; !got && tries < 100; tries++) {
		CHECK(readable(ep2, 5000) == 1);
		shmbus_msg_t m;
		while (shmbus_sink_recv(k, &m, 0) == 0)
			got += !strcmp(m.topic, "fd.new") && m.type == 9;
	}
	CHECK(got == 1);
	close(ep);
	close(ep2);
	shmbus_sink_close(k);
	shmbus_sub_close(s);
}

int main(void)
{
	t_private_dir("sinks");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	patterns();
	fanout();
	fairness();
	filter();
	groups();
	fds();
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
