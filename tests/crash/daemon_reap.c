/* SPDX-License-Identifier: MIT */
/*
 * With a real shmbusd, real client processes killed with SIGKILL: the daemon frees what
 * each held within 100 ms of its death, without help from any other client, and says so
 * on $sys.log; the others go on.
 *  A. a publisher killed between reserve and commit: its claim is covered (aborted 1),
 *     its slot freed; a reader gets every other message.
 *  B. a subscriber killed in block mode while a publisher is held back by it: its slot
 *     is freed, the publisher goes on.
 *  C. a group member killed holding a message: it leaves the group (abandoned 1), the
 *     other member gets every later message.
 *  D. alarms: a reader a full ring behind in block mode (lag_alarm, then lag_cleared when
 *     it catches up), a reader lapped in overwrite mode (overflow, with the count).
 * usage: crash_daemon_reap PATH-TO-SHMBUSD
 */
#include <pthread.h>

#include "tests/lib/daemon.h"

#define REAP_LIMIT_NS 100000000ull /* the bound: 100 ms */

static shmbus_bus_t *bus;
static shmbus_sub_t *syslog_sub;

static shmbus_bus_t *child_bus(void)
{
	shmbus_bus_t *b;
	if (shmbus_bus_open(&b, "crash") < 0 || !shmbus_bus_supervised(b)) {
		fprintf(stderr, "child: not registered with the daemon\n");
		_exit(3);
	}
	return b;
}

/*
 * Kill pid and wait for the daemon's crash event for it (naming what) on $sys.log: it logs
 * the death of a registered client once its slots are reclaimed (by it, or already by a
 * publisher that found the reader dead), so done() must hold by then. Returns the time
 * from the kill to the event (what is measured: at most REAP_LIMIT_NS is asserted).
 */
static uint64_t kill_and_time(pid_t pid, int (*done)(void), const char *what)
{
	char pidstr[64], ev[4096];
	snprintf(pidstr, sizeof(pidstr), "\"pid\":%d,", (int)pid);
	const char *needles[] = { "\"event\":\"crash\"", pidstr, what, NULL };
	uint64_t t0 = t_now_ns();
	CHECK(kill(pid, SIGKILL) == 0);
	if (t_event_find(syslog_sub, ev, sizeof(ev), T_WAIT_MS, needles) < 0) {
		fprintf(stderr,
			"no crash event with %s for pid %d on $sys.log; daemon log: "
			"%s/daemon.log\n",
			what, (int)pid, getenv("SHMBUS_DIR"));
		exit(1);
	}
	uint64_t dt = t_now_ns() - t0;
	printf("  $sys.log: %s\n", ev);
	CHECK(done());
	t_reap(pid, T_WAIT_MS, "the killed client");
	return dt;
}

/* ---- A ---------------------------------------------------------------------------- */

static void pub_child(void *arg, int fd)
{
	(void)arg;
	shmbus_bus_t *b = child_bus();
	shmbus_pub_t *p;
	if (shmbus_pub_open(&p, b, "work") < 0)
		_exit(4);
	for (uint32_t i = 0; i < 10; i++)
		if (shmbus_publish(p, &i, sizeof(i), 1) < 0)
			_exit(5);
	void *buf;
	if (shmbus_reserve(p, 100, &buf) < 0)
		_exit(6);
	memset(buf, 0xee, 100);
	CHECK(write(fd, "r", 1) == 1);
	pause();
}

static int a_done(void)
{
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "work", &st), 0);
	return st.aborted == 1 && st.publishers == 0;
}

static void case_a(void)
{
	printf("A: publisher killed between reserve and commit\n");
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "work", NULL, 0), 0);
	int fd;
	pid_t pid = t_child(pub_child, NULL, &fd);
	CHECK(t_wait_byte(fd, "the child's byte") == 'r');
	close(fd);
	uint64_t dt = kill_and_time(pid, a_done, "\"publishers_freed\":1,\"aborted\":1,");
	printf("  claim covered and slot freed %.2f ms after SIGKILL\n", dt / 1e6);
	CHECK(dt <= REAP_LIMIT_NS);
	/* The reader gets the ten, then a later message: the hole is gone. */
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "work"), 0);
	uint32_t after = 1234;
	CHECK_RC(shmbus_publish(p, &after, sizeof(after), 2), 0);
	for (uint32_t i = 0; i < 10; i++) {
		shmbus_msg_t m;
		CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
		CHECK(m.len == 4 && m.type == 1 && !memcmp(m.data, &i, 4));
	}
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
	CHECK(m.type == 2 && !memcmp(m.data, &after, 4) && m.lost == 0);
	shmbus_pub_close(p);
	shmbus_sub_close(sub);
}

/* ---- B ---------------------------------------------------------------------------- */

static void sub_child(void *arg, int fd)
{
	(void)arg;
	shmbus_bus_t *b = child_bus();
	shmbus_sub_t *s;
	if (shmbus_sub_open(&s, b, "small", NULL, 0) < 0)
		_exit(4);
	CHECK(write(fd, "r", 1) == 1);
	pause(); /* reads nothing: publishers fill the ring and wait for it */
}

static volatile int b_stop;
static uint64_t b_published;

static void *b_publisher(void *arg)
{
	(void)arg;
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "small"), 0);
	char payload[200] = { 0 };
	while (!__atomic_load_n(&b_stop, __ATOMIC_RELAXED)) {
		int rc = shmbus_publish_timeout(p, payload, sizeof(payload), 0, 50);
		if (rc == 0)
			__atomic_fetch_add(&b_published, 1, __ATOMIC_RELAXED);
		else
			CHECK(rc == -EAGAIN);
	}
	shmbus_pub_close(p);
	return NULL;
}

static int b_done(void)
{
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "small", &st), 0);
	return st.readers == 0;
}

static void case_b(void)
{
	printf("B: subscriber killed in block mode while it holds publishers back\n");
	int fd;
	pid_t pid = t_child(sub_child, NULL, &fd);
	CHECK(t_wait_byte(fd, "the child's byte") == 'r');
	close(fd);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, b_publisher, NULL) == 0);
	/* Wait until the ring is full and the publisher waits. */
	uint64_t deadline = t_deadline(T_WAIT_MS);
	for (;;) {
		shmbus_topic_stats_t st;
		CHECK_RC(shmbus_topic_stats(bus, "small", &st), 0);
		if (st.backpressure_waits > 0)
			break;
		CHECK(t_now_ns() < deadline);
		usleep(500);
	}
	uint64_t before = __atomic_load_n(&b_published, __ATOMIC_RELAXED);
	uint64_t dt = kill_and_time(pid, b_done, "\"prog\":");
	printf("  reader slot freed %.2f ms after SIGKILL\n", dt / 1e6);
	CHECK(dt <= REAP_LIMIT_NS);
	/* The publisher goes on (polled every 1 ms: the CPUs are for the publisher). */
	deadline = t_deadline(T_WAIT_MS);
	while (__atomic_load_n(&b_published, __ATOMIC_RELAXED) < before + 10000) {
		CHECK(t_now_ns() < deadline);
		usleep(1000);
	}
	__atomic_store_n(&b_stop, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
}

/* ---- C ---------------------------------------------------------------------------- */

static void member_holder(void *arg, int fd)
{
	(void)arg;
	shmbus_bus_t *b = child_bus();
	shmbus_sub_t *s;
	if (shmbus_sub_open(&s, b, "jobs", "g", 0) < 0)
		_exit(4);
	/* Joined: the message published after this is read in place and held (one read
	 * before the join would be copied out, and not count as held). */
	CHECK(write(fd, "r", 1) == 1);
	shmbus_msg_t m;
	if (shmbus_recv(s, &m, T_WAIT_MS) < 0)
		_exit(5);
	CHECK(write(fd, "r", 1) == 1);
	pause(); /* holds the message */
}

static int c_done(void)
{
	shmbus_group_info_t gi[2];
	CHECK_RC(shmbus_topic_groups(bus, "jobs", gi, 2), 1);
	if (getenv("T_DEBUG"))
		fprintf(stderr, "members %u abandoned %llu\n", gi[0].members,
			(unsigned long long)gi[0].abandoned);
	return gi[0].members == 1 && gi[0].abandoned == 1;
}

static void case_c(void)
{
	printf("C: group member killed holding a message\n");
	shmbus_sub_t *other;
	CHECK_RC(shmbus_sub_open(&other, bus, "jobs", "g", 0), 0);
	int fd;
	pid_t pid = t_child(member_holder, NULL, &fd);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "jobs"), 0);
	CHECK(t_wait_byte(fd, "the child's byte") == 'r');
	/* One message for the child: we do not read until it has it. */
	uint32_t v = 0;
	CHECK_RC(shmbus_publish(p, &v, sizeof(v), 0), 0);
	CHECK(t_wait_byte(fd, "the child's byte") == 'r');
	close(fd);
	uint64_t dt = kill_and_time(pid, c_done, "\"readers_freed\":1,");
	printf("  member removed from the group %.2f ms after SIGKILL\n", dt / 1e6);
	CHECK(dt <= REAP_LIMIT_NS);
	for (v = 1; v <= 100; v++)
		CHECK_RC(shmbus_publish(p, &v, sizeof(v), 0), 0);
	for (uint32_t i = 1; i <= 100; i++) {
		shmbus_msg_t m;
		CHECK_RC(shmbus_recv(other, &m, 1000), 0);
		CHECK(!memcmp(m.data, &i, 4));
	}
	shmbus_pub_close(p);
	shmbus_sub_close(other);
}

/* ---- D ---------------------------------------------------------------------------- */

static void expect_event(const char *a, const char *b, const char *c)
{
	char ev[4096];
	const char *needles[] = { a, b, c, NULL };
	if (t_event_find(syslog_sub, ev, sizeof(ev), T_WAIT_MS, needles) < 0) {
		fprintf(stderr, "no event with %s %s %s on $sys.log\n", a, b, c);
		exit(1);
	}
	printf("  $sys.log: %s\n", ev);
}

static void case_d(void)
{
	printf("D: lag and overflow alarms\n");
	shmbus_sub_t *slow;
	shmbus_pub_t *p;
	CHECK_RC(shmbus_sub_open(&slow, bus, "lagt", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&p, bus, "lagt"), 0);
	char payload[100] = { 0 };
	int n = 0;
	while (shmbus_publish_timeout(p, payload, sizeof(payload), 0, 0) == 0)
		n++;
	CHECK(n > 100);
	expect_event("\"event\":\"lag_alarm\"", "\"topic\":\"lagt\"", "\"policy\":\"block\"");
	shmbus_msg_t m;
	for (int i = 0; i < n; i++)
		CHECK_RC(shmbus_recv(slow, &m, 1000), 0);
	CHECK_RC(shmbus_release(slow, &m), 0);
	expect_event("\"event\":\"lag_cleared\"", "\"topic\":\"lagt\"", "\"slot\":");
	shmbus_pub_close(p);
	shmbus_sub_close(slow);

	shmbus_sub_t *lapped;
	CHECK_RC(shmbus_sub_open(&lapped, bus, "ow", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&p, bus, "ow"), 0);
	for (int i = 0; i < 1000; i++)
		CHECK_RC(shmbus_publish(p, payload, sizeof(payload), 0), 0);
	CHECK_RC(shmbus_recv(lapped, &m, 1000), 0);
	CHECK(m.lost > 0);
	char lost[64];
	snprintf(lost, sizeof(lost), "\"lost\":%llu,", (unsigned long long)m.lost);
	expect_event("\"event\":\"overflow\"", "\"topic\":\"ow\"", lost);
	shmbus_pub_close(p);
	shmbus_sub_close(lapped);
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	const char *dir = t_private_dir("dreap");
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d,
			"[bus]\nname = crash\ndir = %s\n\n"
			"[topic work]\ncapacity = 1M\n\n"
			"[topic small]\ncapacity = 64K\npolicy = block\n\n"
			"[topic jobs]\ncapacity = 1M\n\n"
			"[topic lagt]\ncapacity = 64K\n\n"
			"[topic ow]\ncapacity = 4K\npolicy = overwrite\n",
			dir);
	/* The test process itself stays embedded: only the children register. */
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "crash"), 0);
	unsetenv("SHMBUS_NO_DAEMON");
	pid_t dpid = t_daemon_start(&d, bus);
	syslog_sub = t_events_open(bus);

	case_a();
	case_b();
	case_c();
	case_d();

	/* The bus's counters, read without asking the daemon. */
	shmbus_bus_stats_t bs;
	CHECK_RC(shmbus_bus_stats(bus, &bs), 0);
	printf("bus: %u topics, daemon %d running %d, %llu crashes, %llu reader and %llu "
	       "publisher slots reclaimed, %llu aborted\n",
	       bs.topics, (int)bs.daemon_pid, bs.daemon_running,
	       (unsigned long long)bs.crashes, (unsigned long long)bs.readers_reclaimed,
	       (unsigned long long)bs.publishers_reclaimed, (unsigned long long)bs.aborted);
	CHECK(bs.topics == 6 && bs.daemon_pid == dpid && bs.daemon_running == 1);
	CHECK(bs.crashes == 3 && bs.publishers_reclaimed == 1 && bs.aborted == 1);
	/* B's reader may have been freed by the waiting publisher first. */
	CHECK(bs.readers_reclaimed >= 1 && bs.readers_reclaimed <= 2);
	CHECK(bs.published >= 10 + 100 + 1 + 1000);

	shmbus_sub_close(syslog_sub);
	CHECK(t_exited(t_daemon_stop(&d), 0));
	CHECK_RC(shmbus_bus_stats(bus, &bs), 0);
	CHECK(bs.daemon_pid == dpid && bs.daemon_running == 0 && bs.clients == 0);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
