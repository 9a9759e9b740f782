/* SPDX-License-Identifier: MIT */
/*
 * Multi-process stress (DESIGN invariants 1-4 under real contention between processes).
 *
 * 4 publisher processes, 3 fan-out subscriber processes and 2 groups of 2 member processes
 * share one topic; all readers have joined before any publisher starts. Together the
 * publishers send at least 1,000,000 self-checking messages (tests/concurrency/payload.h)
 * of 0..4096 bytes, each through shmbus_publish, shmbus_publish_timeout, shmbus_reserve +
 * shmbus_commit_type or shmbus_publish_batch, chosen at random.
 *
 * block (1 MiB ring): every fan-out subscriber receives every message exactly once, whole,
 * with per-publisher counters advancing by exactly 1, seq = 0, 1, 2, ... and lost = 0; the
 * two members of each group together receive every message exactly once (a shared bitmap:
 * no message twice, none missing); one subscriber stalls until the publishers are held
 * back by it (all asleep, backpressure_waits > 0, the payload it has not read never exceeds
 * the ring); a publish with timeout 0 that fails with -EAGAIN writes nothing.
 *
 * overwrite (128 KiB ring, so readers are lapped): no message is ever torn, mixed or from
 * an earlier lap; per publisher and in seq, every reader sees increasing values; each loss
 * is reported exactly: for a fan-out subscriber seq advances by 1 + lost at every message,
 * so received + lost = published and the last message is the last published; for a group,
 * the members' received + lost = published, no message twice; a subscriber that stops now
 * and then until it is lapped loses messages; publishers never wait or fail.
 *
 * Usage: stress block|overwrite [messages]. SHMBUS_STRESS_SCALE (e.g. 0.1) scales the
 * default of 1,000,000 down for slow (sanitizer) builds; SHMBUS_TEST_SEED replays a run.
 */
#include "tests/concurrency/payload.h"

#include <poll.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "ring/record.h"

#define NPUB 4
#define NFAN 3
#define NGROUP 2
#define NMEMB 2
#define NREAD (NFAN + NGROUP * NMEMB)
#define NCHILD (NREAD + NPUB)

#define MAXMSG 4096u
#define CAP_BLOCK (1024u * 1024u)
#define CAP_OVERWRITE (128u * 1024u)
#define BATCH_MAX 8u

#define DEFAULT_TOTAL 1000000ull
#define MIN_TOTAL 20000ull
#define STALL_NS (30ull * 1000000000ull)
#define QUIET_NS (500ull * 1000000ull)
#define MS (1000000ull)

static const char *const bus_name = "stress";
static const char *const topic = "stress.topic";
static const char *const group_name[NGROUP] = { "g0", "g1" };

/* Each reader's results, written by that reader before it exits. */
struct reader_res {
	uint64_t received, lost, bytes, last_seq;
};

/* Shared by all processes (MAP_SHARED | MAP_ANONYMOUS, made before the forks). */
struct shared {
	atomic_uint joined;     /* readers whose subscription is open */
	atomic_uint pubs_ready; /* publishers whose handle is open */
	atomic_uint go;         /* publishers may start */
	atomic_uint pubs_done;  /* publishers that have published everything */
	uint64_t total;
	uint64_t count[NPUB];   /* messages per publisher, fixed in advance */
	uint64_t base[NPUB];    /* bit of counter 0 of each publisher in a group bitmap */
	uint64_t pub_bytes[NPUB];
	uint64_t pub_ops[NPUB][4]; /* publish, publish_timeout, reserve, batch (messages) */
	uint64_t pub_eagain[NPUB];
	struct reader_res rd[NREAD];
	_Atomic uint64_t group_got[NGROUP];
	_Atomic uint64_t group_lost[NGROUP];
	_Atomic uint64_t group_last_seq[NGROUP]; /* highest seq any member received + 1 */
	uint64_t backpressure_seen;               /* by the stalling subscriber */
};

static struct shared *sh;
static uint64_t *bitmap[NGROUP]; /* one bit per message, in the same shared mapping */
static int overwrite;
static uint64_t seed;
static pid_t kids[NCHILD];
static const char *kid_name[NCHILD];
static shmbus_bus_t *pbus; /* the parent's */

static uint64_t cap(void)
{
	return overwrite ? CAP_OVERWRITE : CAP_BLOCK;
}

/* ---- publishers ------------------------------------------------------------------------ */

static void publisher(int id)
{
	uint64_t rs = seed ^ (0x5055424cull + (uint64_t)id) * 0x9e3779b97f4a7c15ull;
	unsigned char *pool = pl_pool(&rs);
	unsigned char *bufs = malloc(BATCH_MAX * MAXMSG);
	shmbus_bus_t *bus;
	shmbus_pub_t *pub;
	uint64_t n = sh->count[id], c = 0, bytes = 0;

	CHECK(bufs);
	CHECK_RC(shmbus_bus_open(&bus, bus_name), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, topic), 0);
	CHECK_RC(shmbus_pub_set_timeout(pub, -1), 0);
	atomic_fetch_add(&sh->pubs_ready, 1);
	while (!atomic_load(&sh->go))
		usleep(100); /* poll interval: the parent sets go once all are ready */

	while (c < n) {
		unsigned op = (unsigned)(t_rand(&rs) % 8);
		size_t len = pl_rand_len(&rs, MAXMSG);
		size_t off = pl_rand_off(&rs, len);
		uint32_t type = pl_type((uint32_t)id, c, len);

		if (op < 3) {
			pl_fill(bufs, len, (uint32_t)id, c, pool, off);
			CHECK_RC(shmbus_publish(pub, bufs, len, type), 0);
			sh->pub_ops[id][0]++;
		} else if (op < 4) {
			/* Never waits: it may fail (block: a reader a ring behind; both: another
			 * publisher still writing a lap behind), and must then write nothing. */
			pl_fill(bufs, len, (uint32_t)id, c, pool, off);
			int rc = shmbus_publish_timeout(pub, bufs, len, type, 0);
			if (rc == -EAGAIN) {
				sh->pub_eagain[id]++;
				CHECK_RC(shmbus_publish(pub, bufs, len, type), 0);
			} else {
				CHECK_RC(rc, 0);
			}
			sh->pub_ops[id][1]++;
		} else if (op < 6) {
			void *buf = NULL;
			CHECK_RC(shmbus_reserve(pub, len, &buf), 0);
			CHECK(buf || !len);
			pl_fill(buf, len, (uint32_t)id, c, pool, off);
			CHECK_RC(shmbus_commit_type(pub, type), 0);
			sh->pub_ops[id][2]++;
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
			sh->pub_ops[id][3] += k;
			c += k;
			continue;
		}
		bytes += len;
		c++;
	}
	sh->pub_bytes[id] = bytes;
	atomic_fetch_add(&sh->pubs_done, 1);
	shmbus_pub_close(pub);
	shmbus_bus_close(bus);
	free(bufs);
	free(pool);
	exit(0);
}

/* ---- readers ---------------------------------------------------------------------------- */

static void stalled(const struct pl_reader *r, int g)
{
	shmbus_msg_t z = { 0 };

	fprintf(stderr, "%s: nothing received for %llu s; %u publishers done\n", r->name,
		STALL_NS / 1000000000ull, atomic_load(&sh->pubs_done));
	if (g >= 0)
		fprintf(stderr, "%s: the group has received %" PRIu64 " of %" PRIu64 "\n",
			r->name, (uint64_t)atomic_load(&sh->group_got[g]), sh->total);
	pl_dump(r, &z, "stalled");
	exit(1);
}

static void reader(int idx)
{
	int fan = idx < NFAN;
	int g = fan ? -1 : (idx - NFAN) / NMEMB;
	int slow = idx == NFAN - 1;
	uint64_t total = sh->total;
	uint64_t stall_at = overwrite ? UINT64_MAX : total / 20;
	uint64_t quiet_since = 0;
	char name[32];
	struct pl_reader r;
	shmbus_bus_t *bus;
	shmbus_sub_t *sub;

	if (fan)
		snprintf(name, sizeof(name), "subscriber %d%s", idx, slow ? " (slow)" : "");
	else
		snprintf(name, sizeof(name), "group %d member %d", g, (idx - NFAN) % NMEMB);
	pl_reader_init(&r, name, overwrite, fan, NPUB, sh->count, MAXMSG);

	CHECK_RC(shmbus_bus_open(&bus, bus_name), 0);
	CHECK_RC(shmbus_sub_open(&sub, bus, topic, fan ? NULL : group_name[g], 0), 0);
	/* Some readers go to sleep at once, so that the futex wake path is hammered. */
	if (idx == 1 || idx == NFAN + 1)
		CHECK_RC(shmbus_sub_set_spin(sub, 0), 0);
	atomic_fetch_add(&sh->joined, 1);

	for (;;) {
		if (!overwrite && fan && r.received == total)
			break;
		if (!overwrite && !fan && atomic_load(&sh->group_got[g]) == total)
			break;

		int done = atomic_load(&sh->pubs_done) == NPUB;
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, 100);
		uint64_t now = t_now_ns();

		if (rc == -EAGAIN) {
			/* Overwrite: all publishers had finished before this recv found nothing. */
			if (overwrite && done) {
				if (!quiet_since)
					quiet_since = now;
				else if (now - quiet_since >= QUIET_NS)
					break;
			}
			if (now - r.last_rx_ns > STALL_NS)
				stalled(&r, g);
			continue;
		}
		if (rc != 0) {
			fprintf(stderr, "%s: shmbus_recv returned %d (%s)\n", name, rc,
				strerror(-rc));
			exit(1);
		}
		quiet_since = 0;

		uint32_t p;
		uint64_t c;
		pl_reader_take(&r, &m, &p, &c);
		if (!fan) {
			uint64_t bit = sh->base[p] + c;
			uint64_t mask = 1ull << (bit & 63);
			uint64_t old = __atomic_fetch_or(&bitmap[g][bit >> 6], mask,
							 __ATOMIC_RELAXED);
			if (old & mask)
				PL_FAIL(&r, &m, "delivered to both members of the group");
			atomic_fetch_add(&sh->group_lost[g], m.lost);
			uint64_t s = atomic_load(&sh->group_last_seq[g]);
			while (s < m.seq + 1 &&
			       !atomic_compare_exchange_weak(&sh->group_last_seq[g], &s, m.seq + 1))
				;
			atomic_fetch_add(&sh->group_got[g], 1);
		}
		if (idx == 1 && (r.received & 1))
			CHECK_RC(shmbus_release(sub, &m), 0);

		if (slow) {
			/* Block: stop once until the publishers wait for us, and be a little
			 * slow now and then (a pause, not an event: any length will do).
			 * Overwrite: stop now and then until lapped (to lose messages). */
			if (r.received == stall_at) {
				sh->backpressure_seen = pl_stall_until_held(
					bus, topic, &r, getpid(), cap(),
					BATCH_MAX * shmbus_rec_stride(MAXMSG), total, NPUB, NULL);
				fprintf(stderr,
					"%s: stalled at %" PRIu64 " received until the "
					"publishers waited: %" PRIu64 " backpressure waits\n",
					name, r.received, sh->backpressure_seen);
			} else if (!overwrite && r.received % 4096 == 0) {
				usleep(500);
			} else if (overwrite && r.received % 1000 == 0) {
				pl_stall_until_lapped(bus, topic, cap(), &sh->pubs_done, NPUB);
			}
		}
	}

	/* Nothing more may come: everything was delivered already. */
	shmbus_msg_t m;
	int rc = shmbus_recv(sub, &m, 0);
	if (rc != -EAGAIN) {
		if (rc == 0)
			pl_dump(&r, &m, "a message after the end");
		fprintf(stderr, "%s: final shmbus_recv returned %d, wanted -EAGAIN\n", name, rc);
		exit(1);
	}
	if (fan)
		pl_reader_finish_fanout(&r, total);
	else
		fprintf(stderr, "%s: received %" PRIu64 " lost %" PRIu64 "\n", name, r.received,
			r.lost);
	if (slow && overwrite && r.lost == 0) {
		fprintf(stderr, "%s: lapped now and then in a %u-byte ring but lost nothing\n",
			name, CAP_OVERWRITE);
		exit(1);
	}
	sh->rd[idx] = (struct reader_res){ r.received, r.lost, r.bytes, r.last_seq };
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	exit(0);
}

/* ---- parent ------------------------------------------------------------------------------ */

static void spawn(int i, const char *what, void (*fn)(int), int arg)
{
	pid_t pid = t_fork();
	if (pid == 0) {
		fn(arg);
		_exit(1);
	}
	kids[i] = pid;
	kid_name[i] = what;
}

/* Reap children that ended; fail at once if one failed. Returns how many are left. */
static int reap_some(void)
{
	int left = 0;

	for (int i = 0; i < NCHILD; i++) {
		int st;
		if (kids[i] <= 0)
			continue;
		if (t_wait(kids[i], 0, &st) < 0) {
			left++;
			continue;
		}
		kids[i] = 0;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			continue;
		if (WIFEXITED(st))
			fprintf(stderr, "%s failed (exit %d)\n", kid_name[i], WEXITSTATUS(st));
		else
			fprintf(stderr, "%s killed by signal %d\n", kid_name[i], WTERMSIG(st));
		exit(1);
	}
	return left;
}

static void wait_for(atomic_uint *v, unsigned want, const char *what, uint64_t deadline)
{
	while (atomic_load(v) < want) {
		reap_some();
		if (t_now_ns() > deadline) {
			fprintf(stderr, "only %u of %u %s in time\n", atomic_load(v), want, what);
			exit(1);
		}
		usleep(1000); /* poll interval */
	}
}

/* Messages published plus messages received by the readers still there. */
static uint64_t progress_count(void)
{
	shmbus_topic_stats_t st;
	shmbus_reader_info_t ri[NREAD + 1];

	CHECK_RC(shmbus_topic_stats(pbus, topic, &st), 0);
	int n = shmbus_topic_readers(pbus, topic, ri, NREAD + 1);
	CHECK(n >= 0 && n <= NREAD);
	uint64_t k = st.published;
	for (int i = 0; i < n; i++)
		k += ri[i].consumed;
	return k;
}

static uint64_t popcount_bits(const uint64_t *b, uint64_t n)
{
	uint64_t k = 0;
	for (uint64_t i = 0; i < (n + 63) / 64; i++)
		k += (uint64_t)__builtin_popcountll(b[i]);
	return k;
}

static uint64_t total_from_args(int argc, char **argv)
{
	uint64_t total = DEFAULT_TOTAL;
	const char *scale = getenv("SHMBUS_STRESS_SCALE");

	if (argc > 2)
		total = strtoull(argv[2], NULL, 0);
	else if (scale && *scale)
		total = (uint64_t)((double)DEFAULT_TOTAL * strtod(scale, NULL));
	if (total < MIN_TOTAL)
		total = MIN_TOTAL;
	return total;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (strcmp(argv[1], "block") && strcmp(argv[1], "overwrite"))) {
		fprintf(stderr, "usage: %s block|overwrite [messages]\n", argv[0]);
		return 2;
	}
	overwrite = !strcmp(argv[1], "overwrite");
	setvbuf(stdout, NULL, _IOLBF, 0);
	t_private_dir("stress");

	seed = t_seed();
	uint64_t want = total_from_args(argc, argv);
	printf("stress %s: seed %#" PRIx64 " (SHMBUS_TEST_SEED replays), %" PRIu64 " messages\n",
	       argv[1], seed, want);

	/* Counts differ a little (so publishers finish at different times); sum >= want. */
	uint64_t count[NPUB], sum = 0, rs = seed;
	for (int p = 0; p < NPUB; p++) {
		uint64_t share = (want + NPUB - 1) / NPUB;
		count[p] = share + t_rand(&rs) % (share / 8 + 1);
		CHECK(count[p] < PL_MAX_COUNT);
		sum += count[p];
	}

	/* The shared area: results, then one bitmap of `sum` bits per group. */
	uint64_t words = (sum + 63) / 64;
	size_t size = sizeof(struct shared) + NGROUP * words * 8;
	void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(map != MAP_FAILED);
	sh = map;
	for (int g = 0; g < NGROUP; g++)
		bitmap[g] = (uint64_t *)(void *)((char *)map + sizeof(struct shared)) + g * words;
	for (int p = 0; p < NPUB; p++) {
		sh->count[p] = count[p];
		sh->base[p] = sh->total;
		sh->total += count[p];
	}
	printf("per publisher:");
	for (int p = 0; p < NPUB; p++)
		printf(" %" PRIu64, sh->count[p]);
	printf(" = %" PRIu64 "\n", sh->total);

	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = cap();
	o.max_message = MAXMSG;
	o.policy = overwrite ? SHMBUS_OVERWRITE : SHMBUS_BLOCK;
	CHECK_RC(shmbus_bus_open(&pbus, bus_name), 0);
	CHECK_RC(shmbus_topic_create(pbus, topic, &o), 0);

	/* Readers first; publishers start only once every reader has joined. */
	static const char *const rname[NREAD] = {
		"subscriber 0", "subscriber 1", "subscriber 2 (slow)", "group 0 member 0",
		"group 0 member 1", "group 1 member 0", "group 1 member 1",
	};
	static const char *const pname[NPUB] = { "publisher 0", "publisher 1", "publisher 2",
						 "publisher 3" };
	for (int i = 0; i < NREAD; i++)
		spawn(i, rname[i], reader, i);
	wait_for(&sh->joined, NREAD, "readers joined", t_deadline(T_WAIT_MS));

	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(pbus, topic, &st), 0);
	CHECK(st.readers == NREAD);
	CHECK(st.published == 0 && st.next_seq == 0);

	for (int i = 0; i < NPUB; i++)
		spawn(NREAD + i, pname[i], publisher, i);
	wait_for(&sh->pubs_ready, NPUB, "publishers ready", t_deadline(T_WAIT_MS));
	CHECK_RC(shmbus_topic_stats(pbus, topic, &st), 0);
	CHECK(st.publishers == NPUB);

	/* How long the run takes is the machine's speed (meson's timeout bounds it); what
	 * fails it is a run that stops moving: nothing published or received for T_WAIT_MS. */
	uint64_t t0 = t_now_ns(), last = UINT64_MAX;
	atomic_store(&sh->go, 1);
	while (reap_some() > 0) {
		/* Woken when a child ends; checked for progress every T_WAIT_MS otherwise. */
		struct pollfd ends[NCHILD];
		nfds_t n = 0;
		for (int i = 0; i < NCHILD; i++)
			if (kids[i] > 0)
				ends[n++] = (struct pollfd){ .fd = t_pidfd(kids[i]), .events = POLLIN };
		int rc = poll(ends, n, T_WAIT_MS);
		for (nfds_t k = 0; k < n; k++)
			close(ends[k].fd);
		if (rc != 0)
			continue;
		uint64_t progress = progress_count();
		if (progress == last) {
			fprintf(stderr, "nothing published or received for %d ms: %u publishers "
				"done\n", T_WAIT_MS, atomic_load(&sh->pubs_done));
			for (int i = 0; i < NCHILD; i++)
				if (kids[i] > 0)
					fprintf(stderr, "  still running: %s\n", kid_name[i]);
			exit(1);
		}
		last = progress;
	}
	double secs = (double)(t_now_ns() - t0) / 1e9;

	/* ---- what the children saw, put together ---- */
	uint64_t total = sh->total, bytes = 0, eagain = 0, ops[4] = { 0 };
	for (int p = 0; p < NPUB; p++) {
		bytes += sh->pub_bytes[p];
		eagain += sh->pub_eagain[p];
		for (int k = 0; k < 4; k++)
			ops[k] += sh->pub_ops[p][k];
	}
	printf("%.2f s, %.0f messages/s, %.1f MB payload; via publish %" PRIu64 ", "
	       "publish_timeout %" PRIu64 " (%" PRIu64 " -EAGAIN), reserve %" PRIu64
	       ", batch %" PRIu64 "\n", secs, (double)total / secs, (double)bytes / 1e6, ops[0],
	       ops[1], eagain, ops[2], ops[3]);
	CHECK(ops[0] && ops[1] && ops[2] && ops[3]);

	CHECK_RC(shmbus_topic_stats(pbus, topic, &st), 0);
	printf("stats: published %" PRIu64 " bytes %" PRIu64 " aborted %" PRIu64
	       " backpressure_waits %" PRIu64 " wakeups %" PRIu64 " next_seq %" PRIu64
	       " readers %u publishers %u\n", st.published, st.bytes, st.aborted,
	       st.backpressure_waits, st.wakeups, st.next_seq, st.readers, st.publishers);
	CHECK(st.published == total);
	CHECK(st.next_seq == total);
	CHECK(st.bytes == bytes);
	CHECK(st.aborted == 0);
	CHECK(st.readers == 0);
	CHECK(st.publishers == 0);
	if (!overwrite) {
		CHECK(sh->backpressure_seen > 0);
		CHECK(st.backpressure_waits >= sh->backpressure_seen);
	}
	/* Overwrite publishers never wait for readers, but may wait for another publisher
	 * still writing a record a lap behind (I5, docs/algorithm.md): no check there. */

	for (int i = 0; i < NFAN; i++) {
		const struct reader_res *r = &sh->rd[i];
		CHECK(r->received + r->lost == total);
		CHECK(r->last_seq == total - 1);
		if (!overwrite)
			CHECK(r->received == total && r->bytes == bytes);
	}
	for (int g = 0; g < NGROUP; g++) {
		uint64_t got = atomic_load(&sh->group_got[g]);
		uint64_t lost = atomic_load(&sh->group_lost[g]);
		uint64_t bits = popcount_bits(bitmap[g], words * 64), rx = 0, rbytes = 0;
		for (int k = 0; k < NMEMB; k++) {
			rx += sh->rd[NFAN + g * NMEMB + k].received;
			rbytes += sh->rd[NFAN + g * NMEMB + k].bytes;
		}
		printf("group %d: received %" PRIu64 " (members %" PRIu64 " + %" PRIu64 "), lost %"
		       PRIu64 "\n", g, got, sh->rd[NFAN + g * NMEMB].received,
		       sh->rd[NFAN + g * NMEMB + 1].received, lost);
		CHECK(rx == got);
		CHECK(bits == got);
		CHECK(got + lost == total);
		CHECK(atomic_load(&sh->group_last_seq[g]) == total);
		if (!overwrite)
			CHECK(got == total && lost == 0 && rbytes == bytes);
	}

	shmbus_bus_close(pbus);
	pbus = NULL;
	munmap(map, size);
	printf("ok\n");
	return 0;
}
