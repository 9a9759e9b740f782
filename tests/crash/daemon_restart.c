/* SPDX-License-Identifier: MIT */
/*
 * The daemon killed with SIGKILL under traffic and started again: the clients never
 * notice (no committed message lost, none stuck, the subscriber gets every message in
 * order), and the new daemon adopts the clients it finds in the topics' slots: one that
 * registered only with the old daemon is still reaped within 100 ms when it is killed.
 * usage: crash_daemon_restart PATH-TO-SHMBUSD
 */
#include "../daemon_helpers.h"

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

static void publisher(void)
{
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

static void subscriber(int ready)
{
	shmbus_bus_t *b = child_bus();
	shmbus_sub_t *s;
	if (shmbus_sub_open(&s, b, "t", NULL, 0) < 0)
		_exit(4);
	CHECK(write(ready, "r", 1) == 1);
	uint8_t want[SIZE];
	for (uint32_t i = 0; i < N; i++) {
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
	shmbus_sub_close(s);
	shmbus_bus_close(b);
	_exit(0);
}

/* Registers with the first daemon only, holds a reader slot on t2, waits to be killed. */
static void idler(int ready)
{
	shmbus_bus_t *b = child_bus();
	shmbus_sub_t *s;
	if (shmbus_sub_open(&s, b, "t2", NULL, 0) < 0)
		_exit(4);
	CHECK(write(ready, "r", 1) == 1);
	pause();
	_exit(0);
}

static pid_t spawn(void (*fn)(int), int want_ready)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		fn(p[1]);
		_exit(0);
	}
	close(p[1]);
	if (want_ready) {
		char c;
		CHECK(read(p[0], &c, 1) == 1);
	}
	close(p[0]);
	return pid;
}

static void publisher_fn(int fd)
{
	(void)fd;
	publisher();
}

static uint64_t consumed(void)
{
	shmbus_reader_info_t ri[4];
	int n = shmbus_topic_readers(bus, "t", ri, 4);
	return n >= 1 ? ri[0].consumed : 0;
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	const char *dir = t_private_dir("drestart");
	char cfg[512], text[1024];
	snprintf(cfg, sizeof(cfg), "%s/shmbusd.conf", dir);
	snprintf(text, sizeof(text),
		 "[bus]\nname = restart\ndir = %s\n\n"
		 "[topic t]\ncapacity = 256K\npolicy = block\n\n"
		 "[topic t2]\ncapacity = 64K\n",
		 dir);
	td_write_file(cfg, text);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "restart"), 0);
	unsetenv("SHMBUS_NO_DAEMON");

	pid_t d1 = td_start(argv[1], cfg, bus);
	pid_t idle = spawn(idler, 1);
	pid_t sub = spawn(subscriber, 1);
	pid_t pub = spawn(publisher_fn, 0);

	/* Under traffic: a quarter through. */
	uint64_t deadline = t_now_ns() + 30000000000ull;
	while (consumed() < N / 4)
		CHECK(t_now_ns() < deadline);
	CHECK(kill(d1, SIGKILL) == 0);
	waitpid(d1, NULL, 0);
	uint64_t at_kill = consumed();
	printf("daemon killed after %llu of %u messages\n", (unsigned long long)at_kill, N);
	/* The clients go on without it. */
	deadline = t_now_ns() + 10000000000ull;
	while (consumed() < at_kill + 10000)
		CHECK(t_now_ns() < deadline);

	pid_t d2 = td_start(argv[1], cfg, bus);
	printf("new daemon %d answers after %llu messages\n", (int)d2,
	       (unsigned long long)consumed());
	shmbus_sub_t *log;
	CHECK_RC(shmbus_sub_open(&log, bus, "$sys.log", NULL, SHMBUS_SUB_EARLIEST), 0);
	char ev[4096], pidstr[64];
	snprintf(pidstr, sizeof(pidstr), "\"pid\":%d,", (int)d2);
	const char *start[] = { "\"event\":\"start\"", pidstr, NULL };
	CHECK(td_event(log, ev, sizeof(ev), 2000, start) == 0);

	/* Adopted: the idler registered with the first daemon only. */
	uint64_t t0 = t_now_ns();
	CHECK(kill(idle, SIGKILL) == 0);
	for (;;) {
		shmbus_topic_stats_t st;
		CHECK_RC(shmbus_topic_stats(bus, "t2", &st), 0);
		if (st.readers == 0)
			break;
		CHECK(t_now_ns() - t0 < 2000000000ull);
		usleep(200);
	}
	uint64_t dt = t_now_ns() - t0;
	waitpid(idle, NULL, 0);
	printf("adopted client reaped %.2f ms after SIGKILL\n", dt / 1e6);
	CHECK(dt <= 100000000ull);
	snprintf(pidstr, sizeof(pidstr), "\"pid\":%d,", (int)idle);
	const char *crash[] = { "\"event\":\"crash\"", pidstr, "\"readers_freed\":1,", NULL };
	CHECK(td_event(log, ev, sizeof(ev), 2000, crash) == 0);
	printf("$sys.log: %s\n", ev);

	/* Nothing lost, nobody stuck. */
	int st;
	CHECK(waitpid(pub, &st, 0) == pub && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(waitpid(sub, &st, 0) == sub && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("publisher and subscriber finished: all %u messages, in order\n", N);

	/* New clients register with the new daemon. */
	shmbus_bus_t *b2;
	CHECK_RC(shmbus_bus_open(&b2, "restart"), 0);
	CHECK(shmbus_bus_supervised(b2) == 1);
	shmbus_bus_close(b2);

	shmbus_sub_close(log);
	CHECK(td_stop(d2) == 0);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
