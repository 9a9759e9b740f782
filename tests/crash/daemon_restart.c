/* SPDX-License-Identifier: MIT */
/*
 * The daemon killed with SIGKILL under traffic and started again: the clients never
 * notice (no committed message lost, none stuck, the subscriber gets every message in
 * order), and the new daemon adopts the clients it finds in the topics' slots: one that
 * registered only with the old daemon is still reaped within 100 ms when it is killed.
 * Two clients killed while no daemon runs are reaped by the new one at its start, each
 * a "crash" with "found": "at start": one still a zombie (not waited for) with its uid
 * and prog, as a live crash has them; one already waited for, with uid -1 and prog "",
 * since nothing on the bus recorded them.
 * usage: crash_daemon_restart PATH-TO-SHMBUSD
 */
#include "tests/lib/daemon.h"

#define N 400000u
#define SIZE 64u

static shmbus_bus_t *bus;

static shmbus_bus_t *child_bus(void)
{
	shmbus_bus_t *b;
	if (shmbus_bus_open(&b, "restart") < 0 || !shmbus_bus_supervised(b)) {
		fprintf(stderr, "child %d: not registered with the daemon\n", (int)getpid());
		_exit(3);
	}
	return b;
}

static void fill(uint8_t *buf, uint32_t i)
{
	memcpy(buf, &i, 4);
	for (uint32_t k = 4; k < SIZE; k++)
		buf[k] = (uint8_t)(i * 31u + k);
}

static void publisher(void *arg, int fd)
{
	(void)arg;
	(void)fd;
	shmbus_bus_t *b = child_bus();
	shmbus_pub_t *p;
	if (shmbus_pub_open(&p, b, "t") < 0)
		_exit(4);
	uint8_t buf[SIZE];
	for (uint32_t i = 0; i < N; i++) {
		fill(buf, i);
		if (shmbus_publish(p, buf, SIZE, 0) < 0)
			_exit(5);
	}
	shmbus_pub_close(p);
	shmbus_bus_close(b);
	_exit(0);
}

/* The parent's go-ahead pipe: the subscriber stops reading at HOLD1 and at HOLD2 until it
 * reads a byte, so that the ring is full and the publisher held back, with messages still
 * to come, when the daemon is killed and while none runs: under traffic whatever the
 * machine's speed. It also keeps its slot at the end until told, so that its count stays
 * readable. */
#define HOLD1 (N / 4)
#define HOLD2 (N / 4 + 20000)
static int go[2];

static void go_wait(void)
{
	char c;
	t_read_within(go[0], &c, 1, 6 * T_WAIT_MS, "subscriber: the test's go-ahead");
}

static void subscriber(void *arg, int ready)
{
	(void)arg;
	close(go[1]);
	shmbus_bus_t *b = child_bus();
	shmbus_sub_t *s;
	if (shmbus_sub_open(&s, b, "t", NULL, 0) < 0)
		_exit(4);
	CHECK(write(ready, "r", 1) == 1);
	uint8_t want[SIZE];
	for (uint32_t i = 0; i < N; i++) {
		if (i == HOLD1 || i == HOLD2)
			go_wait();
		shmbus_msg_t m;
		int rc = shmbus_recv(s, &m, 20000);
		if (rc < 0) {
			fprintf(stderr, "subscriber: message %u: %s\n", i, strerror(-rc));
			_exit(5);
		}
		fill(want, i);
		if (m.len != SIZE || m.lost || memcmp(m.data, want, SIZE)) {
			fprintf(stderr, "subscriber: message %u wrong (lost %llu)\n", i,
				(unsigned long long)m.lost);
			_exit(6);
		}
	}
	go_wait();
	shmbus_sub_close(s);
	shmbus_bus_close(b);
	_exit(0);
}

/* Registers with the first daemon only, holds a reader slot on t2, waits to be killed. */
static void idler(void *arg, int ready)
{
	(void)arg;
	shmbus_bus_t *b = child_bus();
	shmbus_sub_t *s;
	if (shmbus_sub_open(&s, b, "t2", NULL, 0) < 0)
		_exit(4);
	CHECK(write(ready, "r", 1) == 1);
	pause();
	_exit(0);
}

/* A client process running fn; with want_ready, once it said it is ready. */
static pid_t client(void (*fn)(void *, int), int want_ready)
{
	int fd;
	pid_t pid = t_child(fn, NULL, &fd);
	if (want_ready)
		t_wait_byte(fd, "a client's ready byte");
	close(fd);
	return pid;
}

static uint64_t consumed(void)
{
	shmbus_reader_info_t ri[4];
	int n = shmbus_topic_readers(bus, "t", ri, 4);
	return n >= 1 ? ri[0].consumed : 0;
}

/* Poll until the subscriber has consumed at least want, at most T_WAIT_MS. The
 * 1 ms interval leaves the CPUs to the publisher and the subscriber. */
static void consumed_reaches(uint64_t want, const char *when)
{
	uint64_t deadline = t_deadline(T_WAIT_MS);
	while (consumed() < want) {
		if (t_now_ns() > deadline) {
			fprintf(stderr, "%s: the subscriber consumed %llu, not %llu, in %d ms\n",
				when, (unsigned long long)consumed(), (unsigned long long)want,
				T_WAIT_MS);
			exit(1);
		}
		usleep(1000);
	}
}

/*
 * Read $sys.log until the "crash" events of pids a and b (in any order), at most
 * T_WAIT_MS; their text into ea and eb.
 */
static void two_crashes(shmbus_sub_t *log, pid_t a, char *ea, pid_t b, char *eb, size_t len)
{
	uint64_t deadline = t_deadline(T_WAIT_MS);
	char ev[4096], name[64], v[32];
	ea[0] = eb[0] = '\0';
	while (!ea[0] || !eb[0]) {
		if (t_event_next(log, deadline, ev, sizeof(ev), name, sizeof(name)) < 0) {
			fprintf(stderr, "no crash event for %s within %d ms\n",
				ea[0] ? "the waited-for client" : "the zombie", T_WAIT_MS);
			exit(1);
		}
		if (strcmp(name, "crash") || t_json_get(ev, "pid", v, sizeof(v)) < 0)
			continue;
		if (atoi(v) == a)
			snprintf(ea, len, "%s", ev);
		else if (atoi(v) == b)
			snprintf(eb, len, "%s", ev);
	}
}

/* Member key of the event ev must be want. */
static void member_is(const char *ev, const char *key, const char *want)
{
	char v[256];
	if (t_json_get(ev, key, v, sizeof(v)) < 0 || strcmp(v, want)) {
		fprintf(stderr, "event %s: wanted \"%s\": %s\n", ev, key, want);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	const char *dir = t_private_dir("drestart");
	struct t_daemon d;
	t_daemon_init(&d, argv[1]);
	t_daemon_config(&d,
			"[bus]\nname = restart\ndir = %s\n\n"
			"[topic t]\ncapacity = 256K\npolicy = block\n\n"
			"[topic t2]\ncapacity = 64K\n",
			dir);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "restart"), 0);
	unsetenv("SHMBUS_NO_DAEMON");

	t_daemon_start(&d, bus);
	pid_t idle = client(idler, 1);
	pid_t zombie = client(idler, 1), gone = client(idler, 1);
	CHECK(pipe(go) == 0);
	pid_t sub = client(subscriber, 1);
	close(go[0]);
	pid_t pub = client(publisher, 0);

	/* Under traffic: a quarter through, the subscriber holding, the ring full. */
	consumed_reaches(HOLD1, "before the daemon is killed");
	t_daemon_kill(&d);
	uint64_t at_kill = consumed();
	printf("daemon killed after %llu of %u messages\n", (unsigned long long)at_kill, N);
	/* Two clients die while no daemon runs: one is left a zombie (its end is waited
	 * for, but not collected), the other is collected. */
	CHECK(kill(zombie, SIGKILL) == 0 && kill(gone, SIGKILL) == 0);
	t_wait_zombie(zombie, T_WAIT_MS, "a client killed with SIGKILL");
	t_reap(gone, T_WAIT_MS, "a client killed with SIGKILL");
	/* The clients go on without it. */
	CHECK(write(go[1], "g", 1) == 1);
	consumed_reaches(at_kill + 10000, "while no daemon runs");

	pid_t d2 = t_daemon_start(&d, bus);
	printf("new daemon %d answers after %llu messages\n", (int)d2,
	       (unsigned long long)consumed());
	shmbus_sub_t *log = t_events_open(bus);
	char ev[4096], pidstr[64];
	snprintf(pidstr, sizeof(pidstr), "\"pid\":%d,", (int)d2);
	const char *start[] = { "\"event\":\"start\"", pidstr, NULL };
	CHECK(t_event_find(log, ev, sizeof(ev), T_WAIT_MS, start) == 0);

	/* The two found dead at its start, each with what can still be known of it. */
	char ez[4096], eg[4096], want[64], comm[64] = "";
	two_crashes(log, zombie, ez, gone, eg, sizeof(ez));
	printf("$sys.log: %s\n$sys.log: %s\n", ez, eg);
	t_read("/proc/self/comm", comm, sizeof(comm)); /* a forked child's too */
	comm[strcspn(comm, "\n")] = '\0';
	snprintf(want, sizeof(want), "%d", (int)geteuid());
	member_is(ez, "found", "at start");
	member_is(ez, "uid", want);
	member_is(ez, "prog", comm);
	member_is(ez, "readers_freed", "1");
	member_is(eg, "found", "at start");
	member_is(eg, "uid", "-1");
	member_is(eg, "prog", "");
	member_is(eg, "readers_freed", "1");
	t_reap(zombie, T_WAIT_MS, "the zombie");

	/* Adopted: the idler registered with the first daemon only. */
	uint64_t t0 = t_now_ns();
	CHECK(kill(idle, SIGKILL) == 0);
	/* The daemon logs the death once the slot is reclaimed: the time to that event is
	 * what is measured. */
	snprintf(pidstr, sizeof(pidstr), "\"pid\":%d,", (int)idle);
	const char *crash[] = { "\"event\":\"crash\"", pidstr, "\"readers_freed\":1,", NULL };
	CHECK(t_event_find(log, ev, sizeof(ev), T_WAIT_MS, crash) == 0);
	uint64_t dt = t_now_ns() - t0;
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "t2", &st), 0);
	CHECK(st.readers == 0);
	t_reap(idle, T_WAIT_MS, "the adopted client");
	printf("adopted client reaped %.2f ms after SIGKILL\n", dt / 1e6);
	CHECK(dt <= 100000000ull);
	printf("$sys.log: %s\n", ev);

	/* Nothing lost, nobody stuck (the rest of the 400,000 messages, in an ASan build on a
	 * busy machine: three deadlines). */
	CHECK(write(go[1], "g", 1) == 1);
	consumed_reaches(N, "after the new daemon started");
	CHECK(write(go[1], "g", 1) == 1);
	CHECK(t_exited(t_reap(pub, 3 * T_WAIT_MS, "the publisher"), 0));
	CHECK(t_exited(t_reap(sub, 3 * T_WAIT_MS, "the subscriber"), 0));
	printf("publisher and subscriber finished: all %u messages, in order\n", N);

	/* New clients register with the new daemon. */
	shmbus_bus_t *b2;
	CHECK_RC(shmbus_bus_open(&b2, "restart"), 0);
	CHECK(shmbus_bus_supervised(b2) == 1);
	shmbus_bus_close(b2);

	shmbus_sub_close(log);
	CHECK(t_exited(t_daemon_stop(&d), 0));
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
