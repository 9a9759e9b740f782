/* SPDX-License-Identifier: MIT */
/*
 * No wake-up is ever lost (docs/algorithm.md, "Waking readers"): threads of one process,
 * so that ThreadSanitizer sees the handshake (run it in a -Db_sanitize=thread build too).
 *
 * Two fan-out subscribers and a group of two members wait in shmbus_recv(-1) with no spin
 * (they sleep as soon as they find nothing: no timeout would hide a lost wake-up). For
 * thousands of rounds, two publisher threads publish a burst of random size (1-48
 * messages, by shmbus_publish, shmbus_publish_batch, or shmbus_reserve + a pause +
 * shmbus_commit, so that readers also arm while a claim is being written), after a random
 * pause of 0-50 us so that the burst lands before, during and after the readers arm their
 * sleep. The driver then waits until every fan-out subscriber has every message and the
 * group has each exactly once: a reader left asleep with a message there is a lost
 * wake-up, and fails the round after T_WAIT_MS.
 *
 * `wake now` runs with SHMBUS_CROWDED=0 (readers arm for the next commit), `wake lazy` with
 * SHMBUS_CROWDED=1 (on a streaming topic they sleep lazily: woken at a sixteenth of the ring or by their own
 * bounded timeout, so there a lost wake-up would be a delay, and the test shows that
 * every path still delivers everything). SHMBUS_STRESS_SCALE scales the rounds;
 * SHMBUS_TEST_SEED replays a run.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "ring/clock.h"
#include "tests/lib/test.h"

#define NFAN 2
#define NMEMB 2
#define NPUB 2
#define BURST_MAX 48u
#define DEFAULT_ROUNDS 4000u
#define TYPE_DATA 0u
#define TYPE_STOP 1u

static shmbus_bus_t *bus;
static const char *const topic = "wake";
static uint64_t rounds;

static struct {
	_Atomic uint64_t got[NFAN];	   /* messages each fan-out subscriber received */
	_Atomic uint64_t group_got;	   /* messages the group's members received */
	_Atomic uint64_t want;		   /* messages published so far */
	_Atomic uint64_t burst_seq;	   /* the round publishers are to publish */
	_Atomic uint64_t burst_done[NPUB]; /* the last round each publisher finished */
	_Atomic uint32_t burst_n[NPUB];	   /* the size of each publisher's part of the round */
	_Atomic uint64_t burst_pause_ns;
	_Atomic int bad;
	uint8_t *group_seen; /* by sequence number: each message once in the group */
	pthread_barrier_t joined;
} S;

static void spin_ns(uint64_t ns)
{
	uint64_t t0 = shmbus_now_ns();
	while (shmbus_now_ns() - t0 < ns)
		;
}

struct reader {
	int idx;
	int member;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, topic, r->member ? "workers" : NULL, 0), 0);
	shmbus_sub_set_spin(sub, 0);
	pthread_barrier_wait(&S.joined);
	uint64_t next = 0;
	for (;;) {
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, -1);
		if (rc == -EINTR)
			continue;
		CHECK_RC(rc, 0);
		if (m.type == TYPE_STOP)
			break;
		if (r->member) {
			uint8_t was =
				__atomic_exchange_n(&S.group_seen[m.seq], 1, __ATOMIC_RELAXED);
			if (was) {
				fprintf(stderr, "group: message %llu twice\n",
					(unsigned long long)m.seq);
				atomic_store(&S.bad, 1);
			}
			atomic_fetch_add(&S.group_got, 1);
		} else {
			if (m.seq != next || m.lost) {
				fprintf(stderr, "subscriber %d: seq %llu, expected %llu\n", r->idx,
					(unsigned long long)m.seq, (unsigned long long)next);
				atomic_store(&S.bad, 1);
			}
			next = m.seq + 1;
			atomic_fetch_add(&S.got[r->idx], 1);
		}
	}
	shmbus_sub_close(sub);
	return NULL;
}

/* One publisher's part of a round: n messages, one of three ways. */
static void publish_part(shmbus_pub_t *pub, uint32_t n, uint64_t *rng)
{
	uint64_t v = 0;
	switch (t_rand(rng) % 3) {
	case 0:
		for (uint32_t i = 0; i < n; i++)
			CHECK_RC(shmbus_publish(pub, &v, sizeof(v), TYPE_DATA), 0);
		break;
	case 1: {
		shmbus_iov_t iov[BURST_MAX];
		for (uint32_t i = 0; i < n; i++)
			iov[i] = (shmbus_iov_t){ .data = &v, .len = sizeof(v), .type = TYPE_DATA };
		CHECK_RC(shmbus_publish_batch(pub, iov, n), (int)n);
		break;
	}
	default:
		for (uint32_t i = 0; i < n; i++) {
			void *buf;
			CHECK_RC(shmbus_reserve(pub, sizeof(v), &buf), 0);
			memcpy(buf, &v, sizeof(v));
			/* Readers arm while this claim is being written. */
			spin_ns(t_rand(rng) % 20000);
			CHECK_RC(shmbus_commit_type(pub, TYPE_DATA), 0);
		}
	}
}

static void *publisher_main(void *arg)
{
	int idx = (int)(intptr_t)arg;
	uint64_t rng = t_seed() * 31 + (uint64_t)idx;
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, topic), 0);
	for (uint64_t r = 1; r <= rounds; r++) {
		/* Wait for the driver to start round r (a short poll, bounded by the driver's
		 * own deadline). */
		while (atomic_load(&S.burst_seq) < r)
			sched_yield();
		spin_ns(atomic_load(&S.burst_pause_ns));
		publish_part(pub, atomic_load(&S.burst_n[idx]), &rng);
		atomic_store(&S.burst_done[idx], r);
	}
	shmbus_pub_close(pub);
	return NULL;
}

#define DIE(...)                                       \
	do {                                           \
		fprintf(stderr, "wake: " __VA_ARGS__); \
		fputc('\n', stderr);                   \
		exit(1);                               \
	} while (0)

/* Has every reader everything published so far? */
static int all_in(uint64_t want)
{
	for (int i = 0; i < NFAN; i++)
		if (atomic_load(&S.got[i]) != want)
			return 0;
	return atomic_load(&S.group_got) == want;
}

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "now") && strcmp(argv[1], "lazy")))
		DIE("usage: conc_wake now|lazy");
	setenv("SHMBUS_CROWDED", strcmp(argv[1], "now") ? "1" : "0", 1);
	t_private_dir(strcmp(argv[1], "now") ? "wake-lazy" : "wake-now");
	const char *scale = getenv("SHMBUS_STRESS_SCALE");
	rounds = DEFAULT_ROUNDS;
	if (scale && atof(scale) > 0)
		rounds = (uint64_t)(DEFAULT_ROUNDS * atof(scale));
	if (rounds < 200)
		rounds = 200;
	uint64_t rng = t_seed();
	printf("wake %s: %llu rounds, seed %llu\n", argv[1], (unsigned long long)rounds,
	       (unsigned long long)t_seed());
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);
	S.group_seen = calloc(rounds * BURST_MAX * NPUB + 16, 1);
	CHECK(S.group_seen != NULL);
	pthread_barrier_init(&S.joined, NULL, NFAN + NMEMB + 1);
	pthread_t rt[NFAN + NMEMB], pt[NPUB];
	struct reader rd[NFAN + NMEMB];
	for (int i = 0; i < NFAN + NMEMB; i++) {
		rd[i] = (struct reader){ .idx = i, .member = i >= NFAN };
		CHECK(pthread_create(&rt[i], NULL, reader_main, &rd[i]) == 0);
	}
	pthread_barrier_wait(&S.joined);
	for (int i = 0; i < NPUB; i++)
		CHECK(pthread_create(&pt[i], NULL, publisher_main, (void *)(intptr_t)i) == 0);

	uint64_t want = 0;
	for (uint64_t r = 1; r <= rounds; r++) {
		uint32_t n0 = 1 + (uint32_t)(t_rand(&rng) % BURST_MAX);
		uint32_t n1 = (uint32_t)(t_rand(&rng) % 3 == 0 ? t_rand(&rng) % BURST_MAX : 0);
		atomic_store(&S.burst_n[0], n0);
		atomic_store(&S.burst_n[1], n1);
		atomic_store(&S.burst_pause_ns, t_rand(&rng) % 50000);
		want += n0 + n1;
		atomic_store(&S.burst_seq, r);
		uint64_t t0 = shmbus_now_ns();
		while (!all_in(want) || atomic_load(&S.burst_done[0]) < r ||
		       atomic_load(&S.burst_done[1]) < r) {
			if (atomic_load(&S.bad))
				DIE("round %llu: a reader saw a wrong message",
				    (unsigned long long)r);
			if (shmbus_now_ns() - t0 > (uint64_t)T_WAIT_MS * 1000000ull)
				DIE("round %llu: after %d ms the readers have %llu %llu and the group "
				    "%llu of %llu messages: a lost wake-up",
				    (unsigned long long)r, T_WAIT_MS,
				    (unsigned long long)atomic_load(&S.got[0]),
				    (unsigned long long)atomic_load(&S.got[1]),
				    (unsigned long long)atomic_load(&S.group_got),
				    (unsigned long long)want);
			sched_yield();
		}
	}
	for (int i = 0; i < NPUB; i++)
		CHECK(pthread_join(pt[i], NULL) == 0);
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, topic), 0);
	for (int i = 0; i < NFAN + NMEMB; i++)
		CHECK_RC(shmbus_publish(pub, "", 0, TYPE_STOP), 0);
	for (int i = 0; i < NFAN + NMEMB; i++)
		CHECK(pthread_join(rt[i], NULL) == 0);
	shmbus_pub_close(pub);
	CHECK(!atomic_load(&S.bad));
	for (uint64_t s = 0; s < want; s++)
		CHECK(S.group_seen[s]);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	printf("wake: %llu messages in %llu rounds, every reader got all, %llu futex wakes\n",
	       (unsigned long long)want, (unsigned long long)rounds,
	       (unsigned long long)st.wakeups);
	shmbus_topic_remove(bus, topic);
	shmbus_bus_close(bus);
	free(S.group_seen);
	return 0;
}
