/* SPDX-License-Identifier: MIT */
/*
 * Publishers killed at random instants of shmbus_publish_batch() (often mid-claim, since a
 * batch copies its payloads between claim and commit) never make a reader see a torn,
 * foreign, duplicated or reordered message, and never stall it for long.
 *
 * For each policy, KILLS times: a child publishes batches of 1..64 checksummed messages
 * in a loop; the parent reads until its first message, then for a random 1..30 ms,
 * SIGKILLs it, reaps it, publishes a marker and reads up to the marker. Every message
 * must be whole; per child the indices must be contiguous from 0 (a gap is allowed only
 * when the reader is told it lost messages, overwrite); nothing of a child may come after
 * its marker; and no single shmbus_recv() after a kill may wait longer than BOUND_MS (a
 * hole left by the killed claim is repaired within the bound). Seeded:
 * SHMBUS_TEST_SEED=<seed> replays the sizes and kill times (not the scheduling).
 */
#include "tests/crash/crash.h"

#define BOUND_MS 250
#define KILLS 20
#define MAXMSG 1024u
#define MAXBATCH 64

/* ---- the test ------------------------------------------------------------------------- */

static void publisher_child(const char *topic, uint32_t gen, uint64_t seed)
{
	static uint8_t bufs[MAXBATCH][MAXMSG];
	shmbus_iov_t iov[MAXBATCH];
	shmbus_bus_t *bus;
	shmbus_pub_t *pub;
	if (shmbus_bus_open(&bus, NULL) < 0 || shmbus_pub_open(&pub, bus, topic) < 0)
		_exit(2);
	shmbus_pub_set_timeout(pub, -1);
	uint64_t s = seed ^ ((uint64_t)gen * 0x9e3779b97f4a7c15ull);
	for (uint32_t idx = 0;;) {
		unsigned nb = 1 + (unsigned)(t_rand(&s) % MAXBATCH);
		for (unsigned i = 0; i < nb; i++) {
			iov[i].len = pl_make(bufs[i], gen, idx + i, MAXMSG);
			iov[i].data = bufs[i];
			iov[i].type = gen;
		}
		int rc = shmbus_publish_batch(pub, iov, nb);
		if (rc != (int)nb) {
			fprintf(stderr, "child %u: publish_batch(%u) returned %d\n", gen, nb, rc);
			_exit(3);
		}
		idx += nb;
	}
}

struct state {
	uint32_t gen;      /* the child now (or last) publishing */
	uint32_t next;     /* next index expected from it */
	int marker_seen;
	uint64_t received, lost, partial_tails;
	int policy;
};

static void process(struct state *s, const shmbus_msg_t *m)
{
	uint32_t pubid, idx;
	pl_check(m, MAXMSG, &pubid, &idx);
	s->received++;
	s->lost += m->lost;
	if (m->lost && s->policy == SHMBUS_BLOCK) {
		fprintf(stderr, "block policy reported %" PRIu64 " lost messages\n", m->lost);
		exit(1);
	}
	if (pubid == 0) {
		/* The parent's marker after killing child gen. */
		if (idx != s->gen || s->marker_seen) {
			fprintf(stderr, "marker %u out of place (generation %u)\n", idx, s->gen);
			exit(1);
		}
		s->marker_seen = 1;
		return;
	}
	if (pubid != s->gen || s->marker_seen) {
		fprintf(stderr, "message of child %u idx %u seen during generation %u%s\n",
			pubid, idx, s->gen, s->marker_seen ? " after its marker" : "");
		exit(1);
	}
	if (m->lost ? idx < s->next : idx != s->next) {
		fprintf(stderr, "child %u: got idx %u, expected %u (lost %" PRIu64 ")\n", pubid,
			idx, s->next, m->lost);
		exit(1);
	}
	s->next = idx + 1;
}

static void run(shmbus_bus_t *bus, int policy, uint64_t seed)
{
	const char *topic = policy == SHMBUS_BLOCK ? "pkb.block" : "pkb.overwrite";
	printf("policy %s\n", policy == SHMBUS_BLOCK ? "block" : "overwrite");
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 256 * 1024;
	o.max_message = 2048;
	o.policy = (uint32_t)policy;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);

	shmbus_sub_t *sub;
	shmbus_pub_t *mpub;
	CHECK_RC(shmbus_sub_open(&sub, bus, topic, NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&mpub, bus, topic), 0);

	struct state s = { .policy = policy };
	uint64_t rs = seed ^ (uint64_t)policy;
	double worst = 0;
	for (uint32_t gen = 1; gen <= KILLS; gen++) {
		s.gen = gen;
		s.next = 0;
		s.marker_seen = 0;
		pid_t c = t_fork();
		if (c == 0)
			publisher_child(topic, gen, seed);

		/* Read while it publishes: from its first message on, for a random 1..30 ms
		 * (the time is the point: a random instant of its publishing), then kill it. */
		shmbus_msg_t m;
		uint64_t first_by = t_deadline(T_WAIT_MS);
		while (s.next == 0) {
			int rc = shmbus_recv(sub, &m, 100);
			if (rc == 0)
				process(&s, &m);
			else
				CHECK_RC(rc, -EAGAIN);
			if (s.next == 0 && t_now_ns() > first_by) {
				fprintf(stderr, "child %u published nothing within %d ms\n", gen,
					T_WAIT_MS);
				exit(1);
			}
		}
		uint64_t until = t_now_ns() + (1 + t_rand(&rs) % 30) * 1000000ull;
		while (t_now_ns() < until) {
			int rc = shmbus_recv(sub, &m, 1);
			if (rc == 0)
				process(&s, &m);
			else
				CHECK_RC(rc, -EAGAIN);
		}
		uint64_t t_kill = t_now_ns();
		CHECK(kill(c, SIGKILL) == 0);
		int st = t_reap(c, 10000, "the killed publisher");
		if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
			fprintf(stderr, "child %u ended by itself (status %#x)\n", gen, st);
			exit(1);
		}

		/* Marker; in block mode the ring may be full of the child's messages, and this
		 * thread is the reader, so never wait to publish: read and retry. */
		uint8_t buf[MAXMSG];
		size_t len = pl_make(buf, 0, gen, MAXMSG);
		for (;;) {
			int rc = shmbus_publish_timeout(mpub, buf, len, 0, 0);
			if (rc == 0)
				break;
			CHECK_RC(rc, -EAGAIN);
			uint64_t t0 = t_now_ns();
			rc = shmbus_recv(sub, &m, 2000);
			double ms = (double)(t_now_ns() - t0) / 1e6;
			worst = ms > worst ? ms : worst;
			CHECK_RC(rc, 0);
			process(&s, &m);
		}
		while (!s.marker_seen) {
			uint64_t t0 = t_now_ns();
			int rc = shmbus_recv(sub, &m, 2000);
			double ms = (double)(t_now_ns() - t0) / 1e6;
			worst = ms > worst ? ms : worst;
			if (rc != 0) {
				fprintf(stderr, "generation %u: recv returned %d %.1f ms after the "
					"kill, before the marker\n", gen, rc,
					(double)(t_now_ns() - t_kill) / 1e6);
				exit(1);
			}
			process(&s, &m);
		}
		if (worst > BOUND_MS) {
			fprintf(stderr, "generation %u: a recv waited %.3f ms after the kill "
				"(bound %d)\n", gen, worst, BOUND_MS);
			exit(1);
		}
	}
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 20), -EAGAIN);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	printf("  %d kills: received %" PRIu64 " (lost %" PRIu64 "), published %" PRIu64
	       ", aborted %" PRIu64 ", worst recv after a kill %.3f ms\n", KILLS, s.received,
	       s.lost, st.published, st.aborted, worst);
	shmbus_pub_close(mpub);
	shmbus_sub_close(sub);
	CHECK_RC(shmbus_topic_remove(bus, topic), 0);
}

int main(void)
{
	t_private_dir("pub_killed_batch");
	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t seed = t_seed();
	printf("seed %" PRIu64 "\n", seed);

	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	run(bus, SHMBUS_BLOCK, seed);
	run(bus, SHMBUS_OVERWRITE, seed);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
