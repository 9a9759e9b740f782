/* SPDX-License-Identifier: MIT */
/*
 * A publisher killed between reserve and commit stalls nobody for long and loses nothing
 * that others committed (DESIGN invariant 5).
 *
 * For each policy (block, overwrite): a subscriber is opened first; child A reserves a
 * record and stops; children B1 and B2 then publish checksummed messages behind A's hole.
 * The subscriber cannot get past the hole while A lives (recv times out). The parent's
 * main thread then waits in shmbus_recv() while a helper thread SIGKILLs A; the first
 * message must arrive within BOUND_MS of the kill, and then every message of B1 and B2,
 * whole and in order per publisher, none twice, none lost, with stats.aborted >= 1. In
 * block mode B1/B2 publish more than the ring holds, so they also wait behind the hole.
 * A is reaped only at the end: a zombie must already count as dead.
 */
#include "tests/crash/crash.h"

#include <pthread.h>

#define BOUND_MS 250

/* ---- the test ------------------------------------------------------------------------- */

#define MAXMSG 1000u
#define APUB 0xA

struct killer {
	pid_t victim;
	pid_t waiter; /* the thread that waits in shmbus_recv() */
	uint64_t t_kill;
};

static void *killer_main(void *arg)
{
	struct killer *k = arg;
	/* The waiter is in shmbus_recv() once it sleeps: it sleeps nowhere else. */
	t_wait_asleep(k->waiter, T_WAIT_MS, "the reader waiting behind the hole");
	__atomic_store_n(&k->t_kill, t_now_ns(), __ATOMIC_SEQ_CST);
	kill(k->victim, SIGKILL);
	return NULL;
}

static void run(shmbus_bus_t *bus, int policy)
{
	const char *topic = policy == SHMBUS_BLOCK ? "pk.block" : "pk.overwrite";
	/* Block: more than the ring holds, so B1/B2 wait behind the hole too. Overwrite:
	 * well within one lap, so nothing may be lost. */
	const uint32_t n = policy == SHMBUS_BLOCK ? 1500 : 150;
	printf("policy %s: 2 x %u messages\n", policy == SHMBUS_BLOCK ? "block" : "overwrite", n);

	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 256 * 1024;
	o.max_message = 4096;
	o.policy = (uint32_t)policy;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);

	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, topic, NULL, 0), 0);

	int rp[2];
	CHECK(pipe(rp) == 0);
	pid_t a = t_fork();
	if (a == 0) {
		/* A: reserve, scribble half of it, say so, and stop forever. */
		shmbus_bus_t *b;
		shmbus_pub_t *p;
		void *buf;
		if (shmbus_bus_open(&b, NULL) < 0 || shmbus_pub_open(&p, b, topic) < 0 ||
		    shmbus_reserve(p, 200, &buf) < 0)
			_exit(2);
		struct pl h = { APUB, 0, 200, 0, 0 };
		memcpy(buf, &h, sizeof(h));
		memset((char *)buf + sizeof(h), 0xAB, 60);
		if (write(rp[1], "r", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	t_wait_byte(rp[0], "reservation from the publisher to be killed");

	pid_t b1 = t_fork();
	if (b1 == 0)
		pl_publisher(topic, 1, n, MAXMSG, -1, -1);
	pid_t b2 = t_fork();
	if (b2 == 0)
		pl_publisher(topic, 2, n, MAXMSG, -1, -1);

	/* Let B1/B2 publish behind the hole: overwrite, everything; block, until both wait
	 * for space (the reader cannot pass the hole, so a wait that began lasts until the
	 * kill, and each publisher counts one per wait). */
	shmbus_topic_stats_t st;
	uint64_t until = t_deadline(T_WAIT_MS);
	for (;;) {
		CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
		if (policy == SHMBUS_BLOCK ? st.backpressure_waits >= 2 : st.published >= 2u * n)
			break;
		if (t_now_ns() > until) {
			fprintf(stderr,
				"publishers behind the hole: %" PRIu64 " published, %" PRIu64
				" waits for space after %d ms\n",
				st.published, st.backpressure_waits, T_WAIT_MS);
			exit(1);
		}
		usleep(1000); /* poll interval */
	}
	if (policy == SHMBUS_BLOCK)
		CHECK(st.published < 2u * n);

	/* A lives: its hole holds the reader back, and nobody robs it (for 50 ms). */
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 50), -EAGAIN);
	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	uint64_t aborted0 = st.aborted;

	/* Kill A while this thread waits in recv. */
	struct killer k = { .victim = a, .waiter = gettid(), .t_kill = 0 };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, killer_main, &k) == 0);
	int rc = shmbus_recv(sub, &m, 5000);
	uint64_t t_got = t_now_ns();
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_RC(rc, 0);
	uint64_t t_kill = __atomic_load_n(&k.t_kill, __ATOMIC_SEQ_CST);
	CHECK(t_kill != 0 && t_got >= t_kill);
	double ms = (double)(t_got - t_kill) / 1e6;
	printf("  first message %.3f ms after the kill\n", ms);
	if (ms > BOUND_MS) {
		fprintf(stderr, "reader stalled %.3f ms after the claimant died (bound %d)\n",
			ms, BOUND_MS);
		exit(1);
	}

	uint32_t next[3] = { 0, 0, 0 };
	uint64_t got = 0, last_seq = 0;
	for (;;) {
		uint32_t pubid, idx;
		pl_check(&m, MAXMSG, &pubid, &idx);
		if (pubid != 1 && pubid != 2) {
			fprintf(stderr, "received a message of publisher %u (the killed one?)\n",
				pubid);
			exit(1);
		}
		if (idx != next[pubid]) {
			fprintf(stderr, "publisher %u: got message %u, wanted %u\n", pubid, idx,
				next[pubid]);
			exit(1);
		}
		if (got > 0 && m.seq <= last_seq) {
			fprintf(stderr, "seq went from %" PRIu64 " to %" PRIu64 "\n", last_seq,
				m.seq);
			exit(1);
		}
		CHECK(m.lost == 0);
		last_seq = m.seq;
		next[pubid]++;
		got++;
		if (got == 2ull * n)
			break;
		rc = shmbus_recv(sub, &m, T_WAIT_MS);
		if (rc != 0) {
			fprintf(stderr, "recv returned %d after %" PRIu64 " of %u messages\n", rc,
				got, 2 * n);
			exit(1);
		}
	}
	CHECK_RC(shmbus_recv(sub, &m, 50), -EAGAIN);

	CHECK(t_exited(t_reap(b1, 10000, "publisher B1"), 0));
	CHECK(t_exited(t_reap(b2, 10000, "publisher B2"), 0));
	CHECK(t_signalled(t_reap(a, 10000, "the killed publisher A"), SIGKILL));

	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	printf("  published %" PRIu64 " aborted %" PRIu64 " backpressure_waits %" PRIu64 "\n",
	       st.published, st.aborted, st.backpressure_waits);
	CHECK(st.published == 2ull * n);
	CHECK(st.aborted >= aborted0 + 1);

	shmbus_sub_close(sub);
	close(rp[0]);
	close(rp[1]);
	CHECK_RC(shmbus_topic_remove(bus, topic), 0);
}

int main(void)
{
	t_private_dir("pub_killed");
	setvbuf(stdout, NULL, _IOLBF, 0);

	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	run(bus, SHMBUS_BLOCK);
	run(bus, SHMBUS_OVERWRITE);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
