/* SPDX-License-Identifier: MIT */
/*
 * The stress checks with threads of one process, so that ThreadSanitizer sees every access
 * (DESIGN invariants 1-4; run it in a -Db_sanitize=thread build).
 *
 * For each policy, on its own topic: 3 publisher threads, 2 fan-out subscriber threads and
 * one group of 2 member threads, each with its own handle on one shared bus handle; every
 * reader has joined before any publisher starts; ~100,000 self-checking messages
 * (tests/concurrency/payload.h) of 0..4096 bytes through shmbus_publish, shmbus_reserve +
 * shmbus_commit_type and shmbus_publish_batch.
 *  - block (256 KiB ring): each subscriber gets every message once, whole, per-publisher
 *    counters advancing by exactly 1, seq 0, 1, 2, ..., lost 0; the two members together
 *    get every message exactly once; publishers were held back at least once.
 *  - overwrite (64 KiB ring): never a torn message; increasing per-publisher counters and
 *    seq; for a subscriber seq advances by 1 + lost, so received + lost = published; for
 *    the group, received + lost = published and no message twice; the subscriber that
 *    stops now and then until it is lapped loses messages.
 *
 * SHMBUS_STRESS_SCALE scales the message count; SHMBUS_TEST_SEED replays a run.
 */
#include "tests/concurrency/payload.h"

#include <pthread.h>
#include <stdatomic.h>

#include "ring/record.h"

#define NPUB 3
#define NFAN 2
#define NMEMB 2
#define NREAD (NFAN + NMEMB)
#define NTHREAD (NPUB + NREAD)

#define MAXMSG 4096u
#define BATCH_MAX 8u
#define DEFAULT_TOTAL 100000ull
#define MIN_TOTAL 5000ull
#define DEADLINE_S 240
#define STALL_NS (30ull * 1000000000ull)
#define QUIET_NS (500ull * 1000000ull)
#define MS (1000000ull)

static const char *const group = "workers";

/* One run (one policy). */
static struct run {
	shmbus_bus_t *bus;
	const char *topic;
	int overwrite;
	uint64_t cap;
	uint64_t seed;
	uint64_t total;
	uint64_t count[NPUB];
	uint64_t base[NPUB];
	uint64_t *bitmap;
	uint64_t words;
	pthread_barrier_t joined;  /* readers + main */
	pthread_barrier_t start;   /* publishers + main */
	atomic_uint pubs_done;
	_Atomic uint64_t group_got, group_lost, group_last_seq;
	uint64_t pub_bytes[NPUB];
	_Atomic pid_t pub_tid[NPUB]; /* thread ids of the publishers */
	struct pl_reader rd[NREAD];
	uint64_t backpressure_seen;
} R;

static void *publisher(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t rs = R.seed ^ (0x5055424cull + (uint64_t)id) * 0x9e3779b97f4a7c15ull;
	unsigned char *pool = pl_pool(&rs);
	unsigned char *bufs = malloc(BATCH_MAX * MAXMSG);
	shmbus_pub_t *pub;
	uint64_t n = R.count[id], c = 0, bytes = 0;

	CHECK(bufs);
	atomic_store(&R.pub_tid[id], gettid());
	CHECK_RC(shmbus_pub_open(&pub, R.bus, R.topic), 0);
	pthread_barrier_wait(&R.start);

	while (c < n) {
		unsigned op = (unsigned)(t_rand(&rs) % 4);
		size_t len = pl_rand_len(&rs, MAXMSG);
		size_t off = pl_rand_off(&rs, len);

		if (op < 2) {
			pl_fill(bufs, len, (uint32_t)id, c, pool, off);
			CHECK_RC(shmbus_publish(pub, bufs, len, pl_type((uint32_t)id, c, len)), 0);
		} else if (op < 3) {
			void *buf = NULL;
			CHECK_RC(shmbus_reserve(pub, len, &buf), 0);
			CHECK(buf || !len);
			pl_fill(buf, len, (uint32_t)id, c, pool, off);
			CHECK_RC(shmbus_commit_type(pub, pl_type((uint32_t)id, c, len)), 0);
		} else {
			shmbus_iov_t iov[BATCH_MAX];
			unsigned k = 1 + (unsigned)(t_rand(&rs) % BATCH_MAX);
			if (k > n - c)
				k = (unsigned)(n - c);
			for (unsigned i = 0; i < k; i++) {
				if (i) {
					len = pl_rand_len(&rs, MAXMSG);
					off = pl_rand_off(&rs, len);
				}
				pl_fill(bufs + i * MAXMSG, len, (uint32_t)id, c + i, pool, off);
				iov[i] = (shmbus_iov_t){ bufs + i * MAXMSG, len,
							 pl_type((uint32_t)id, c + i, len) };
				bytes += len;
			}
			CHECK_RC(shmbus_publish_batch(pub, iov, k), (int)k);
			c += k;
			continue;
		}
		bytes += len;
		c++;
	}
	R.pub_bytes[id] = bytes;
	shmbus_pub_close(pub);
	atomic_fetch_add(&R.pubs_done, 1);
	free(bufs);
	free(pool);
	return NULL;
}

static void *reader(void *arg)
{
	int idx = (int)(intptr_t)arg;
	int fan = idx < NFAN, slow = idx == NFAN - 1;
	struct pl_reader *r = &R.rd[idx];
	uint64_t stall_at = R.overwrite ? UINT64_MAX : R.total / 10, quiet_since = 0;
	char name[48];
	shmbus_sub_t *sub;

	snprintf(name, sizeof(name), "%s %s %d", R.overwrite ? "overwrite" : "block",
		 fan ? "subscriber" : "member", fan ? idx : idx - NFAN);
	pl_reader_init(r, name, R.overwrite, fan, NPUB, R.count, MAXMSG);
	CHECK_RC(shmbus_sub_open(&sub, R.bus, R.topic, fan ? NULL : group, 0), 0);
	if (idx == 0 || idx == NFAN)
		CHECK_RC(shmbus_sub_set_spin(sub, 0), 0);
	pthread_barrier_wait(&R.joined);

	for (;;) {
		if (!R.overwrite && fan && r->received == R.total)
			break;
		if (!R.overwrite && !fan && atomic_load(&R.group_got) == R.total)
			break;

		int done = atomic_load(&R.pubs_done) == NPUB;
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, 100);
		uint64_t now = t_now_ns();

		if (rc == -EAGAIN) {
			if (R.overwrite && done) {
				if (!quiet_since)
					quiet_since = now;
				else if (now - quiet_since >= QUIET_NS)
					break;
			}
			if (now - r->last_rx_ns > STALL_NS) {
				shmbus_msg_t z = { 0 };
				PL_FAIL(r, &z, "nothing received for 30 s");
			}
			continue;
		}
		if (rc != 0) {
			fprintf(stderr, "%s: shmbus_recv returned %d (%s)\n", name, rc,
				strerror(-rc));
			pl_exit(1);
		}
		quiet_since = 0;

		uint32_t p;
		uint64_t c;
		pl_reader_take(r, &m, &p, &c);
		if (!fan) {
			uint64_t bit = R.base[p] + c, mask = 1ull << (bit & 63);
			if (__atomic_fetch_or(&R.bitmap[bit >> 6], mask, __ATOMIC_RELAXED) & mask)
				PL_FAIL(r, &m, "delivered to both members of the group");
			atomic_fetch_add(&R.group_lost, m.lost);
			uint64_t s = atomic_load(&R.group_last_seq);
			while (s < m.seq + 1 &&
			       !atomic_compare_exchange_weak(&R.group_last_seq, &s, m.seq + 1))
				;
			atomic_fetch_add(&R.group_got, 1);
		}
		if (idx == NFAN + 1 && (r->received & 1))
			CHECK_RC(shmbus_release(sub, &m), 0);
		if (slow) {
			/* Block: stop once until the publishers wait for us. Overwrite: now
			 * and then, until lapped (to lose messages). */
			if (r->received == stall_at)
				R.backpressure_seen = pl_stall_until_held(
					R.bus, R.topic, r, getpid(), R.cap,
					BATCH_MAX * shmbus_rec_stride(MAXMSG), R.total, NPUB, R.pub_tid);
			else if (R.overwrite && r->received % 500 == 0)
				pl_stall_until_lapped(R.bus, R.topic, R.cap, &R.pubs_done, NPUB);
		}
	}

	shmbus_msg_t m;
	int rc = shmbus_recv(sub, &m, 0);
	if (rc == 0)
		PL_FAIL(r, &m, "a message after the end");
	CHECK_RC(rc, -EAGAIN);
	if (fan)
		pl_reader_finish_fanout(r, R.total);
	if (slow && R.overwrite)
		CHECK(r->lost > 0);
	shmbus_sub_close(sub);
	return NULL;
}

static uint64_t total_wanted(void)
{
	const char *scale = getenv("SHMBUS_STRESS_SCALE");
	uint64_t total = DEFAULT_TOTAL;

	if (scale && *scale)
		total = (uint64_t)((double)DEFAULT_TOTAL * strtod(scale, NULL));
	return total < MIN_TOTAL ? MIN_TOTAL : total;
}

static void run(shmbus_bus_t *bus, int overwrite, uint64_t seed)
{
	uint64_t rs = seed, want = total_wanted();
	pthread_t th[NTHREAD];

	memset(&R, 0, sizeof(R));
	R.bus = bus;
	R.overwrite = overwrite;
	R.topic = overwrite ? "threads.overwrite" : "threads.block";
	R.cap = overwrite ? 64 * 1024 : 256 * 1024;
	R.seed = seed;
	for (int p = 0; p < NPUB; p++) {
		uint64_t share = (want + NPUB - 1) / NPUB;
		R.count[p] = share + t_rand(&rs) % (share / 8 + 1);
		CHECK(R.count[p] < PL_MAX_COUNT);
		R.base[p] = R.total;
		R.total += R.count[p];
	}
	R.words = (R.total + 63) / 64;
	R.bitmap = calloc(R.words, 8);
	CHECK(R.bitmap);
	printf("%s: %" PRIu64 " messages\n", overwrite ? "overwrite" : "block", R.total);

	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = R.cap;
	o.max_message = MAXMSG;
	o.policy = overwrite ? SHMBUS_OVERWRITE : SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, R.topic, &o), 0);

	CHECK(pthread_barrier_init(&R.joined, NULL, NREAD + 1) == 0);
	CHECK(pthread_barrier_init(&R.start, NULL, NPUB + 1) == 0);
	for (int i = 0; i < NREAD; i++)
		CHECK(pthread_create(&th[i], NULL, reader, (void *)(intptr_t)i) == 0);
	pthread_barrier_wait(&R.joined);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, R.topic, &st), 0);
	CHECK(st.readers == NREAD);
	for (int i = 0; i < NPUB; i++)
		CHECK(pthread_create(&th[NREAD + i], NULL, publisher, (void *)(intptr_t)i) == 0);
	uint64_t t0 = t_now_ns();
	pthread_barrier_wait(&R.start);

	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += DEADLINE_S;
	for (int i = 0; i < NTHREAD; i++) {
		int rc = pthread_timedjoin_np(th[i], NULL, &dl);
		if (rc) {
			fprintf(stderr, "thread %d not finished within %d s (%s)\n", i, DEADLINE_S,
				strerror(rc));
			exit(1);
		}
	}
	double secs = (double)(t_now_ns() - t0) / 1e9;
	pthread_barrier_destroy(&R.joined);
	pthread_barrier_destroy(&R.start);

	uint64_t bytes = 0;
	for (int p = 0; p < NPUB; p++)
		bytes += R.pub_bytes[p];
	CHECK_RC(shmbus_topic_stats(bus, R.topic, &st), 0);
	printf("%.2f s; published %" PRIu64 " bytes %" PRIu64 " backpressure_waits %" PRIu64
	       " wakeups %" PRIu64 "\n", secs, st.published, st.bytes, st.backpressure_waits,
	       st.wakeups);
	CHECK(st.published == R.total && st.next_seq == R.total && st.bytes == bytes);
	CHECK(st.readers == 0 && st.publishers == 0 && st.aborted == 0);

	uint64_t got = atomic_load(&R.group_got), lost = atomic_load(&R.group_lost), bits = 0;
	for (uint64_t i = 0; i < R.words; i++)
		bits += (uint64_t)__builtin_popcountll(R.bitmap[i]);
	printf("group: received %" PRIu64 " (members %" PRIu64 " + %" PRIu64 ") lost %" PRIu64
	       "\n", got, R.rd[NFAN].received, R.rd[NFAN + 1].received, lost);
	CHECK(R.rd[NFAN].received + R.rd[NFAN + 1].received == got);
	CHECK(bits == got);
	CHECK(got + lost == R.total);
	CHECK(atomic_load(&R.group_last_seq) == R.total);
	if (!overwrite) {
		CHECK(got == R.total && lost == 0);
		CHECK(R.rd[NFAN].bytes + R.rd[NFAN + 1].bytes == bytes);
		CHECK(R.rd[0].bytes == bytes && R.rd[1].bytes == bytes);
		CHECK(R.backpressure_seen > 0);
	}
	/* Overwrite publishers may wait for a publisher still writing a lap behind (I5). */
	free(R.bitmap);
}

int main(void)
{
	shmbus_bus_t *bus;
	uint64_t seed;

	setvbuf(stdout, NULL, _IOLBF, 0);
	t_private_dir("threads");
	alarm(2 * DEADLINE_S + 60);
	seed = t_seed();
	printf("threads: seed %#" PRIx64 " (SHMBUS_TEST_SEED replays)\n", seed);
	CHECK_RC(shmbus_bus_open(&bus, "threads"), 0);
	run(bus, 0, seed);
	run(bus, 1, seed ^ 0x6f76657277726974ull);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
