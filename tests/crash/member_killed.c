/* SPDX-License-Identifier: MIT */
/*
 * Block policy, one group of two member processes: a member killed while it holds a
 * message (after recv, before its next recv) blocks the publisher no longer than the
 * bound, and the group loses nothing but that one message, which is counted as abandoned
 * (DESIGN invariants 4 and 5).
 *
 * Children: M1 and M2 join group "g"; P publishes N checksummed messages (timeout -1)
 * through a 16 KiB ring. Members report every index they receive on a pipe; M1 reports
 * 3, then receives a 4th, reports it as held and stops. Once P waits for space (M1's
 * held record pins the ring) the parent SIGKILLs M1 (not reaped: a zombie is dead) and P
 * must commit again within BOUND_MS. Then: every index in [0, N) is received exactly once
 * by the group, except the held one, which is either abandoned (group counter, read from
 * the topic file) or redelivered; received + abandoned == N; abandoned <= 1.
 */
#include "tests/crash/crash.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "shm/layout.h"

#define BOUND_MS 250
#define N 3000u
#define MAXMSG 400u
#define HELD 0x80000000u

/* ---- the test ------------------------------------------------------------------------- */

static const char *topic = "mk";

/* A group member. victim: report 3 messages, then hold the 4th and stop. Otherwise: read
 * until told to stop (a byte on stopfd) and nothing is left. */
static void member(int okfd, int repfd, int stopfd, int victim)
{
	shmbus_bus_t *bus;
	shmbus_sub_t *sub;
	if (shmbus_bus_open(&bus, NULL) < 0 || shmbus_sub_open(&sub, bus, topic, "g", 0) < 0)
		_exit(2);
	if (write(okfd, "o", 1) != 1)
		_exit(2);
	int stopping = 0;
	uint32_t n = 0;
	int64_t last = -1;
	for (;;) {
		shmbus_msg_t m;
		/* The victim: longer than the parent may wait before the kill. The other:
		 * polls for the stop byte between waits of 100 ms. */
		int rc = shmbus_recv(sub, &m, victim ? 3 * T_WAIT_MS : (stopping ? 0 : 100));
		if (rc == -EAGAIN && !victim) {
			if (stopping)
				break;
			char c;
			if (read(stopfd, &c, 1) == 1)
				stopping = 1;
			continue;
		}
		if (rc != 0) {
			fprintf(stderr, "member %d: recv returned %d\n", (int)getpid(), rc);
			_exit(3);
		}
		uint32_t pubid, idx;
		pl_check(&m, MAXMSG, &pubid, &idx);
		if (pubid != 1 || (int64_t)idx <= last || idx >= N || m.lost) {
			fprintf(stderr, "member %d: got %u/%u after %" PRId64 " (lost %" PRIu64 ")\n",
				(int)getpid(), pubid, idx, last, m.lost);
			_exit(4);
		}
		last = idx;
		n++;
		uint32_t word = victim && n == 4 ? idx | HELD : idx;
		if (write(repfd, &word, sizeof(word)) != sizeof(word))
			_exit(2);
		if (victim && n == 4)
			for (;;)
				pause();
	}
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	_exit(0);
}

/* Drain a report pipe (non-blocking) into the seen table. */
static void drain(int fd, uint8_t *seen, uint32_t *count, int64_t *held)
{
	uint32_t w;
	ssize_t r;
	while ((r = read(fd, &w, sizeof(w))) == sizeof(w)) {
		if (w & HELD) {
			CHECK(held && *held < 0);
			*held = w & ~HELD;
			continue;
		}
		CHECK(w < N);
		if (seen[w]) {
			fprintf(stderr, "message %u delivered twice in the group\n", w);
			exit(1);
		}
		seen[w] = 1;
		(*count)++;
	}
	CHECK(r < 0 && errno == EAGAIN);
}

struct drain_arg {
	int fd;
	uint8_t *seen;
	uint32_t *count;
};

/* drain() for pl_wait_held_back: the surviving member's reports. */
static void drain_m2(void *arg)
{
	struct drain_arg *a = arg;
	drain(a->fd, a->seen, a->count, NULL);
}

/* Reap pid within T_WAIT_MS while draining a report pipe (it must not fill). */
static int reap_draining(pid_t pid, const char *what, int fd, uint8_t *seen, uint32_t *count)
{
	uint64_t end = t_deadline(T_WAIT_MS);
	int st;
	for (;;) {
		drain(fd, seen, count, NULL);
		if (t_wait(pid, 1, &st) == 0) /* drained every 1 ms */
			return st;
		if (t_now_ns() > end) {
			fprintf(stderr, "%s did not end within %d ms\n", what, T_WAIT_MS);
			exit(1);
		}
	}
}

static struct shmbus_group_slot *find_group(void *map, size_t size, const char *name)
{
	struct shmbus_topic_hdr *h = map;
	CHECK(h->groups_off + (uint64_t)h->max_groups * sizeof(struct shmbus_group_slot) <= size);
	struct shmbus_group_slot *g = (void *)((char *)map + h->groups_off);
	for (uint32_t i = 0; i < h->max_groups; i++)
		if (__atomic_load_n(&g[i].state, __ATOMIC_ACQUIRE) == SHMBUS_GROUP_ACTIVE &&
		    strncmp(g[i].name, name, sizeof(g[i].name)) == 0)
			return &g[i];
	return NULL;
}

int main(void)
{
	t_private_dir("member_killed");
	setvbuf(stdout, NULL, _IOLBF, 0);

	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 16 * 1024;
	o.max_message = 1024;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);

	int okp[2], r1[2], r2[2], stopp[2], gop[2];
	CHECK(pipe(okp) == 0 && pipe2(r1, O_NONBLOCK) == 0 && pipe2(r2, O_NONBLOCK) == 0 &&
	      pipe2(stopp, O_NONBLOCK) == 0 && pipe(gop) == 0);

	pid_t m1 = t_fork();
	if (m1 == 0)
		member(okp[1], r1[1], stopp[0], 1);
	pid_t m2 = t_fork();
	if (m2 == 0)
		member(okp[1], r2[1], stopp[0], 0);
	pid_t p = t_fork();
	if (p == 0)
		pl_publisher(topic, 1, N, MAXMSG, okp[1], gop[0]);
	for (int i = 0; i < 3; i++)
		t_wait_byte(okp[0], "ready byte from a child");
	CHECK(write(gop[1], "g", 1) == 1);

	static uint8_t seen[N];
	uint32_t count = 0;
	int64_t held = -1;
	uint64_t give_up = t_deadline(T_WAIT_MS);
	while (held < 0) {
		drain(r1[0], seen, &count, &held);
		drain(r2[0], seen, &count, NULL);
		if (t_now_ns() > give_up) {
			fprintf(stderr, "member %d holds no message after %d ms\n", (int)m1,
				T_WAIT_MS);
			exit(1);
		}
		usleep(500); /* poll interval */
	}
	printf("member %d holds message %" PRId64 "\n", (int)m1, held);

	/* Wait until P waits for space behind the held message (its next message does not
	 * fit before it, and the holder does not move), asleep. */
	struct drain_arg d2 = { r2[0], seen, &count };
	pl_wait_held_back(bus, topic, m1, p, o.capacity, MAXMSG, N, "the held message",
			  drain_m2, &d2);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	uint64_t last = st.published;
	printf("publisher waits at %" PRIu64 " published, %u readers\n", st.published, st.readers);
	CHECK(st.backpressure_waits >= 1);
	uint64_t reclaimed0 = st.readers_reclaimed;

	pl_kill_holder(bus, topic, m1, last, BOUND_MS, "member");

	/* Let P finish, then M2, while draining M2's reports. */
	CHECK(t_exited(reap_draining(p, "the publisher", r2[0], seen, &count), 0));
	CHECK(write(stopp[1], "s", 1) == 1);
	int s2 = reap_draining(m2, "the surviving member", r2[0], seen, &count);
	drain(r2[0], seen, &count, NULL);
	CHECK(t_exited(s2, 0));
	CHECK(t_signalled(t_reap(m1, 10000, "the killed member"), SIGKILL));

	/* The group's abandoned counter, from the topic file. */
	char path[512];
	snprintf(path, sizeof(path), "%s/%s.topic", shmbus_bus_path(bus), topic);
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	struct stat sb;
	CHECK(fstat(fd, &sb) == 0);
	void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	CHECK(map != MAP_FAILED);
	close(fd);
	struct shmbus_group_slot *g = find_group(map, (size_t)sb.st_size, "g");
	CHECK(g != NULL);
	uint64_t abandoned = __atomic_load_n(&g->abandoned, __ATOMIC_RELAXED);

	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	printf("received %u, abandoned %" PRIu64 ", published %" PRIu64
	       ", readers_reclaimed %" PRIu64 ", readers %u\n", count, abandoned, st.published,
	       st.readers_reclaimed, st.readers);
	CHECK(st.published == N);
	CHECK(st.readers_reclaimed >= reclaimed0 + 1);
	CHECK(st.readers == 0);
	CHECK(abandoned <= 1);
	if (abandoned == 1) {
		if (seen[held]) {
			fprintf(stderr, "held message %" PRId64 " both abandoned and redelivered\n",
				held);
			exit(1);
		}
	} else if (!seen[held]) {
		fprintf(stderr, "held message %" PRId64 " neither abandoned nor redelivered\n",
			held);
		exit(1);
	}
	for (uint32_t i = 0; i < N; i++)
		if (!seen[i] && (int64_t)i != held) {
			fprintf(stderr, "message %u never delivered to the group\n", i);
			exit(1);
		}
	CHECK(count + abandoned == N);
	munmap(map, (size_t)sb.st_size);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
