/* SPDX-License-Identifier: MIT */
/*
 * Block policy: a subscriber killed while it holds the ring full does not block
 * publishers beyond the bound (DESIGN invariant 5, "a reader dies in block mode").
 *
 * Small ring (16 KiB). Children: K, a subscriber that reads 3 messages and stops; L, a
 * live subscriber that must receive all N messages, whole and in order; P, a publisher
 * of N messages (timeout -1). Once P waits for space (K pins the ring), the parent
 * SIGKILLs K and does not reap it (a zombie must count as dead): P's next message must be
 * committed within BOUND_MS of the kill, stats.readers_reclaimed >= 1, P and L finish,
 * and at the end no reader slot is left in use.
 */
#include "tests/crash/crash.h"

#define BOUND_MS 250
#define N 2000u
#define MAXMSG 500u

/* ---- the test ------------------------------------------------------------------------- */

static const char *topic = "skb";

static void child_sub(int okfd, int readyfd, uint32_t count, int stop)
{
	shmbus_bus_t *bus;
	shmbus_sub_t *sub;
	if (shmbus_bus_open(&bus, NULL) < 0 || shmbus_sub_open(&sub, bus, topic, NULL, 0) < 0)
		_exit(2);
	if (write(okfd, "o", 1) != 1)
		_exit(2);
	for (uint32_t i = 0; i < count; i++) {
		shmbus_msg_t m;
		/* Longer than the parent may wait before the kill. */
		int rc = shmbus_recv(sub, &m, 3 * T_WAIT_MS);
		if (rc != 0) {
			fprintf(stderr, "subscriber %d: recv %u returned %d\n", (int)getpid(), i,
				rc);
			_exit(3);
		}
		uint32_t pubid, idx;
		pl_check(&m, MAXMSG, &pubid, &idx);
		if (pubid != 1 || idx != i || m.lost) {
			fprintf(stderr, "subscriber: got %u/%u (lost %" PRIu64 "), wanted 1/%u\n",
				pubid, idx, m.lost, i);
			_exit(4);
		}
	}
	if (stop) {
		if (write(readyfd, "r", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	_exit(0);
}

int main(void)
{
	t_private_dir("sub_killed_block");
	setvbuf(stdout, NULL, _IOLBF, 0);

	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 16 * 1024;
	o.max_message = 1024;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);

	int okp[2], readyp[2], gop[2];
	CHECK(pipe(okp) == 0 && pipe(readyp) == 0 && pipe(gop) == 0);

	pid_t k = t_fork();
	if (k == 0)
		child_sub(okp[1], readyp[1], 3, 1);
	pid_t l = t_fork();
	if (l == 0)
		child_sub(okp[1], readyp[1], N, 0);
	pid_t p = t_fork();
	if (p == 0)
		pl_publisher(topic, 1, N, MAXMSG, okp[1], gop[0]);
	for (int i = 0; i < 3; i++)
		t_wait_byte(okp[0], "ready byte from a child");
	CHECK(write(gop[1], "g", 1) == 1);
	t_wait_byte(readyp[0], "stopped subscriber's 3 messages");

	/* Wait until P waits for space behind K (its next message does not fit before K's
	 * position, which stays where it is), asleep. */
	pl_wait_held_back(bus, topic, k, p, o.capacity, MAXMSG, N, "the stopped subscriber", NULL,
			  NULL);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	uint64_t last = st.published;
	printf("publisher waits at %" PRIu64 " published, %" PRIu64 " backpressure waits, %u "
	       "readers\n", st.published, st.backpressure_waits, st.readers);
	CHECK(st.readers == 2);
	CHECK(st.backpressure_waits >= 1);
	uint64_t reclaimed0 = st.readers_reclaimed;

	pl_kill_holder(bus, topic, k, last, BOUND_MS, "subscriber");

	CHECK(t_exited(t_reap(p, 30000, "the publisher"), 0));
	CHECK(t_exited(t_reap(l, 30000, "the live subscriber"), 0));
	CHECK(t_signalled(t_reap(k, 10000, "the killed subscriber"), SIGKILL));

	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	printf("published %" PRIu64 ", readers_reclaimed %" PRIu64 ", readers %u, publishers %u\n",
	       st.published, st.readers_reclaimed, st.readers, st.publishers);
	CHECK(st.published == N);
	CHECK(st.readers_reclaimed >= reclaimed0 + 1);
	CHECK(st.readers == 0);
	CHECK(st.publishers == 0);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
