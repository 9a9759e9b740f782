/* SPDX-License-Identifier: MIT */
/*
 * Acknowledging members (SHMBUS_SUB_ACK, ring/ack.c) as threads of one process, so that
 * ThreadSanitizer sees every access: 4 member threads of one group (each with its own
 * handle) on a block topic, 2 publisher threads; members nack about 1 in 8 messages on
 * their first delivery (delay 0: any member takes it again) and ack the rest. At the end
 * every message is acked exactly once, none dead-lettered or lost, no ack or nack of a
 * live member was -ESTALE (ack_wait_ms is 10 s: nothing times out), the group's
 * redelivered equals the nacks, and nothing is pending.
 *
 * SHMBUS_STRESS_SCALE scales the message count; SHMBUS_TEST_SEED replays a run.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "tests/lib/test.h"

#define NMEMB 4
#define NPUB 2
#define DEFAULT_PER_PUB 500000ull

static shmbus_bus_t *bus;
static const char *topic = "acks";
static uint64_t per_pub, total;
static _Atomic uint8_t *acks;
static atomic_uint_fast64_t nacks, stale, published_done;
static atomic_int stop;
static atomic_int draining;  /* main waits for acks: members say when they ack */
static int ackpipe[2];
static pthread_barrier_t joined;

struct body {
	uint64_t id;
	uint64_t chk;
};

static void *publisher(void *arg)
{
	uint64_t p = (uint64_t)(uintptr_t)arg;
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, topic), 0);
	shmbus_pub_set_timeout(pub, -1);
	pthread_barrier_wait(&joined);
	for (uint64_t i = 0; i < per_pub; i++) {
		struct body b = { p * per_pub + i, 0 };
		b.chk = b.id * 0x9e3779b97f4a7c15ull;
		CHECK_RC(shmbus_publish(pub, &b, sizeof(b), 1), 0);
	}
	shmbus_pub_close(pub);
	atomic_fetch_add(&published_done, 1);
	return NULL;
}

static void *member(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	shmbus_sub_t *sub;
	shmbus_group_opts_t go;
	shmbus_group_opts_init(&go);
	go.ack_wait_ms = 10000;
	CHECK_RC(shmbus_sub_open_group(&sub, bus, topic, "g", SHMBUS_SUB_ACK, &go), 0);
	pthread_barrier_wait(&joined);
	for (;;) {
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, 10);
		if (rc == -EAGAIN || rc == -EINTR) {
			if (atomic_load(&stop))
				break;
			continue;
		}
		CHECK_RC(rc, 0);
		struct body b;
		CHECK(m.len == sizeof(b));
		memcpy(&b, m.data, sizeof(b));
		CHECK(b.id < total && b.chk == b.id * 0x9e3779b97f4a7c15ull);
		CHECK(m.deliveries >= 1 && m.deliveries <= 2);
		if (m.deliveries == 1 && t_rand(&seed) % 8 == 0) {
			rc = shmbus_nack(sub, &m, 0);
			if (rc == 0)
				atomic_fetch_add(&nacks, 1);
		} else {
			rc = shmbus_ack(sub, &m);
			if (rc == 0)
				atomic_fetch_add(&acks[b.id], 1);
		}
		if (rc == -ESTALE)
			atomic_fetch_add(&stale, 1);
		else
			CHECK_RC(rc, 0);
		if (atomic_load(&draining)) {
			ssize_t w = write(ackpipe[1], "a", 1); /* a full pipe is fine */
			(void)w;
		}
	}
	shmbus_sub_close(sub);
	return NULL;
}

int main(void)
{
	t_private_dir("conc-acks");
	CHECK(pipe2(ackpipe, O_CLOEXEC) == 0);
	CHECK(fcntl(ackpipe[1], F_SETFL, O_NONBLOCK) == 0);
	uint64_t seed = t_seed();
	double scale = 1.0;
	const char *sc = getenv("SHMBUS_STRESS_SCALE");
	if (sc && *sc)
		scale = strtod(sc, NULL);
	per_pub = (uint64_t)((double)DEFAULT_PER_PUB * scale);
	if (per_pub < 5000)
		per_pub = 5000;
	total = per_pub * NPUB;
	acks = calloc(total, 1);
	CHECK(acks);
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 64 * 1024;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);
	printf("%" PRIu64 " messages, seed %" PRIu64 "\n", total, seed);

	CHECK(pthread_barrier_init(&joined, NULL, NMEMB + NPUB) == 0);
	pthread_t th[NMEMB + NPUB];
	uint64_t t0 = t_now_ns();
	for (int i = 0; i < NMEMB; i++)
		CHECK(pthread_create(&th[i], NULL, member, (void *)(uintptr_t)(seed + i)) == 0);
	for (int i = 0; i < NPUB; i++)
		CHECK(pthread_create(&th[NMEMB + i], NULL, publisher, (void *)(uintptr_t)i) == 0);
	for (int i = 0; i < NPUB; i++)
		CHECK(pthread_join(th[NMEMB + i], NULL) == 0);

	/* Drain: everything handed out and acked. The members say when they ack (draining
	 * is set before the first look: an ack after it is told). */
	atomic_store(&draining, 1);
	uint64_t give_up = t_deadline(T_WAIT_MS);
	shmbus_group_info_t gi;
	for (;;) {
		CHECK(shmbus_topic_groups(bus, topic, &gi, 1) == 1);
		if (gi.lag_msgs == 0 && gi.pending == 0)
			break;
		struct pollfd p = { .fd = ackpipe[0], .events = POLLIN };
		char buf[256];
		if (poll(&p, 1, t_ms_left(give_up)) <= 0) {
			fprintf(stderr, "not drained: lag %" PRIu64 ", pending %u\n", gi.lag_msgs,
				gi.pending);
			return 1;
		}
		CHECK(read(ackpipe[0], buf, sizeof(buf)) > 0);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < NMEMB; i++)
		CHECK(pthread_join(th[i], NULL) == 0);
	CHECK(shmbus_topic_groups(bus, topic, &gi, 1) == 1);
	printf("%.0f ms; %" PRIu64 " nacks, %" PRIu64 " stale; group: redelivered %" PRIu64
	       ", dead-lettered %" PRIu64 ", lost %" PRIu64 ", pending %u\n",
	       t_ms_since(t0), (uint64_t)nacks, (uint64_t)stale, gi.redelivered,
	       gi.dead_lettered, gi.lost, gi.pending);
	int bad = 0;
	uint64_t wrong = 0;
	for (uint64_t id = 0; id < total; id++)
		if (acks[id] != 1 && wrong++ < 10)
			fprintf(stderr, "id %" PRIu64 " acked %u times\n", id, (unsigned)acks[id]);
	if (wrong) {
		fprintf(stderr, "%" PRIu64 " ids not acked exactly once\n", wrong);
		bad = 1;
	}
	if (stale || gi.redelivered != nacks || gi.dead_lettered || gi.lost || gi.pending) {
		fprintf(stderr, "stale acks, or redeliveries other than the nacks, or leftovers\n");
		bad = 1;
	}
	shmbus_bus_close(bus);
	free((void *)acks);
	return bad;
}
