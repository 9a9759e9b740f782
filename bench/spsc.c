/* SPDX-License-Identifier: MIT */
/*
 * bench/spsc: one publisher process and one subscriber process, shmbus against its peers,
 * all measured in the same invocation so that the ratios hold on a noisy machine:
 *
 *   1. shmbus SPSC, 64 B messages (one topic, block policy, 1 MiB ring)
 *   2. a bare fixed-slot SPSC ring in shared memory (64-byte slots, head/tail atomics)
 *   3. a Unix socketpair (SOCK_SEQPACKET), one message per send
 *   4. shmbus SPSC, 16 KiB messages (the reader touches every cache line) vs a plain
 *      memcpy loop of 16 KiB blocks into a 1 MiB buffer (bandwidth)
 *   5. ping-pong round trips over two topics vs the same over two bare rings, both sides
 *      busy-waiting: p50, p99, p99.9, max
 *
 * Each throughput run lasts a fixed time after a warm-up; the reader checks every
 * message's counter and measures from the end of the warm-up to the publisher's end
 * marker. Each case runs NRUNS times, rounds interleaved (every case once, then again),
 * and the table shows each case's best run. A target's ratio is taken round by round (the
 * case against its peer, run back to back) and the median of those counts, so that one
 * lucky or unlucky round cannot decide it. Nothing is pinned: the machine is shared.
 * Output: that table, whether each target is met, and one JSON object per case and target
 * (on stdout prefixed with "json: ", or in the file given with --json).
 *
 * Each invocation uses its own bus directory under /dev/shm and removes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <shmbus.h>

#define NRUNS_DEFAULT 3
#define MAX_RUNS 9
#define CAPACITY (1u << 20)
#define SMALL 64u
#define LARGE (16u << 10)
#define SLOT 64u
#define PP_SLOTS 64u
#define TYPE_DATA 1u
#define TYPE_END 2u
#define END_COUNTER UINT64_MAX

/* ---- small helpers ------------------------------------------------------------------ */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static inline uint64_t load_u64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void store_u64(void *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* ---- what the parent and the workers of one run share -------------------------------- */

/* In a MAP_SHARED anonymous mapping made before any fork. Flags on their own lines. */
struct ctl {
	_Alignas(64) uint32_t ready;	/* workers set up and waiting for go */
	_Alignas(64) uint32_t go;	/* parent: start (release; warm_end is set before) */
	_Alignas(64) uint32_t stop;	/* parent: publishers finish now (relaxed is enough) */
	_Alignas(64) uint64_t warm_end; /* CLOCK_MONOTONIC time the measurement starts */
	/* results, written by the measuring worker before it exits */
	double value;		      /* msg/s or bytes/s */
	uint64_t messages;	      /* counted in the measured interval */
	uint64_t p50, p99, p999, max; /* round trips, ns */
	uint32_t failed;	      /* first failure wins the message */
	char err[256];
};

static struct ctl *ctl;

struct config {
	double secs;	  /* measured seconds per throughput run */
	double warm;	  /* warm-up seconds before it */
	uint64_t pp_n;	  /* recorded round trips per ping-pong run */
	uint64_t pp_warm; /* round trips before recording */
	double pp_max;	  /* a ping-pong run stops after this many seconds anyway */
	int runs;
	int quick;
};

static struct config cfg;

/* Called by a worker: record the first failure and leave. */
static __attribute__((format(printf, 1, 2), noreturn)) void wfail(const char *fmt, ...)
{
	uint32_t zero = 0;

	if (__atomic_compare_exchange_n(&ctl->failed, &zero, 1, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_RELAXED)) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(ctl->err, sizeof(ctl->err), fmt, ap);
		va_end(ap);
	}
	_exit(1);
}

static void worker_ready_wait(void)
{
	/* Release: this worker's setup (a subscriber slot, say) precedes its readiness. */
	__atomic_fetch_add(&ctl->ready, 1, __ATOMIC_RELEASE);
	/* Acquire: pairs with the parent's release of go, so warm_end is visible. */
	while (!__atomic_load_n(&ctl->go, __ATOMIC_ACQUIRE))
		usleep(50);
}

static inline int stopped(void)
{
	return __atomic_load_n(&ctl->stop, __ATOMIC_RELAXED) != 0;
}

/*
 * Throughput accounting of a reader: measuring starts at the first check after warm_end
 * (the clock is read every 256 messages only, so it costs nothing per message).
 */
struct meter {
	uint64_t n, n0, t0;
	int on;
};

static inline void meter_tick(struct meter *m)
{
	m->n++;
	if (!m->on && (m->n & 255) == 0) {
		uint64_t t = now_ns();

		if (t >= ctl->warm_end) {
			m->on = 1;
			m->t0 = t;
			m->n0 = m->n;
		}
	}
}

static void meter_done(struct meter *m, double per_msg)
{
	uint64_t t1 = now_ns();

	if (!m->on || t1 <= m->t0 || m->n == m->n0)
		wfail("the run ended before the warm-up did (%" PRIu64 " messages)", m->n);
	ctl->messages = m->n - m->n0;
	ctl->value = (double)(m->n - m->n0) * per_msg * 1e9 / (double)(t1 - m->t0);
}

/* ---- the bare ring -------------------------------------------------------------------- */

/*
 * A single-producer single-consumer ring of fixed 64-byte slots in a shared file: head
 * (slots written) and tail (slots read) on their own cache lines, each side caching the
 * other's index and reloading it only when the ring looks full or empty. The producer
 * fills a slot, then release-stores head; the consumer acquire-loads head, reads the slot,
 * then release-stores tail so the producer may reuse it. Busy-waits on both sides.
 */
struct bring_hdr {
	_Alignas(128) uint64_t head;
	_Alignas(128) uint64_t tail;
	_Alignas(128) uint8_t slots[];
};

struct bring {
	struct bring_hdr *h;
	size_t map_len;
	uint64_t mask;
	uint64_t head, tail_cache; /* producer's */
	uint64_t tail, head_cache; /* consumer's */
};

static size_t bring_size(uint64_t nslots)
{
	return sizeof(struct bring_hdr) + nslots * SLOT;
}

static int bring_create(const char *path, uint64_t nslots)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	int rc = posix_fallocate(fd, 0, (off_t)bring_size(nslots));
	close(fd);
	return -rc;
}

/* In a worker: map the ring file. */
static void bring_open(struct bring *r, const char *path, uint64_t nslots)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		wfail("open %s: %s", path, strerror(errno));
	memset(r, 0, sizeof(*r));
	r->map_len = bring_size(nslots);
	r->h = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (r->h == MAP_FAILED)
		wfail("mmap %s: %s", path, strerror(errno));
	r->mask = nslots - 1;
}

/* The next free slot, waiting for one. */
static inline uint8_t *bring_slot(struct bring *r)
{
	while (r->head - r->tail_cache > r->mask) {
		/* Acquire: the consumer's reads of the slot are done before we overwrite it. */
		r->tail_cache = __atomic_load_n(&r->h->tail, __ATOMIC_ACQUIRE);
		if (r->head - r->tail_cache > r->mask)
			cpu_relax();
	}
	return r->h->slots + (r->head & r->mask) * SLOT;
}

static inline void bring_push(struct bring *r)
{
	/* Release: the slot's contents are visible before the new head. */
	__atomic_store_n(&r->h->head, ++r->head, __ATOMIC_RELEASE);
}

/* The next filled slot, or NULL if there is none yet. */
static inline const uint8_t *bring_peek(struct bring *r)
{
	if (r->tail == r->head_cache) {
		/* Acquire: pairs with bring_push(); the slot's contents are visible. */
		r->head_cache = __atomic_load_n(&r->h->head, __ATOMIC_ACQUIRE);
		if (r->tail == r->head_cache)
			return NULL;
	}
	return r->h->slots + (r->tail & r->mask) * SLOT;
}

static inline void bring_pop(struct bring *r)
{
	/* Release: our reads of the slot happen before the producer may reuse it. */
	__atomic_store_n(&r->h->tail, ++r->tail, __ATOMIC_RELEASE);
}

/* ---- the cases ------------------------------------------------------------------------ */

enum case_id { C_SHM64, C_RING64, C_SOCK64, C_SHM16K, C_MEMCPY16K, C_SHMPP, C_RINGPP, NCASES };

enum kind { THROUGHPUT_MSGS, THROUGHPUT_BYTES, ROUNDTRIP };

static const struct casedef {
	const char *name;  /* JSON */
	const char *label; /* table */
	enum kind kind;
	uint32_t size;
} cases[NCASES] = {
	[C_SHM64] = { "shmbus_spsc_64", "shmbus SPSC 64 B", THROUGHPUT_MSGS, SMALL },
	[C_RING64] = { "bare_ring_spsc_64", "bare ring SPSC 64 B", THROUGHPUT_MSGS, SMALL },
	[C_SOCK64] = { "unix_seqpacket_64", "unix socketpair 64 B", THROUGHPUT_MSGS, SMALL },
	[C_SHM16K] = { "shmbus_spsc_16k", "shmbus SPSC 16 KiB", THROUGHPUT_BYTES, LARGE },
	[C_MEMCPY16K] = { "memcpy_16k", "memcpy 16 KiB blocks", THROUGHPUT_BYTES, LARGE },
	[C_SHMPP] = { "shmbus_pingpong_64", "shmbus ping-pong 64 B", ROUNDTRIP, SMALL },
	[C_RINGPP] = { "bare_ring_pingpong_64", "bare ring ping-pong 64 B", ROUNDTRIP, SMALL },
};

/* What the workers of one run use; set up by the parent before forking. */
struct run {
	enum case_id id;
	char topic_a[64], topic_b[64];
	char ring_a[PATH_MAX], ring_b[PATH_MAX];
	int sock[2];
};

static shmbus_bus_t *w_bus_open(void)
{
	shmbus_bus_t *bus;
	int rc = shmbus_bus_open(&bus, NULL);

	if (rc < 0)
		wfail("bus open: %s (%s)", strerror(-rc), shmbus_errmsg());
	return bus;
}

static shmbus_pub_t *w_pub_open(shmbus_bus_t *bus, const char *topic)
{
	shmbus_pub_t *pub;
	int rc = shmbus_pub_open(&pub, bus, topic);

	if (rc < 0)
		wfail("pub open %s: %s (%s)", topic, strerror(-rc), shmbus_errmsg());
	/* A stalled reader shows up as an error instead of a hang. */
	shmbus_pub_set_timeout(pub, 5000);
	return pub;
}

static shmbus_sub_t *w_sub_open(shmbus_bus_t *bus, const char *topic)
{
	shmbus_sub_t *sub;
	int rc = shmbus_sub_open(&sub, bus, topic, NULL, 0);

	if (rc < 0)
		wfail("sub open %s: %s (%s)", topic, strerror(-rc), shmbus_errmsg());
	return sub;
}

/* The reader of a large message touches one word of each cache line: all of it moves. */
static inline uint64_t touch_lines(const uint8_t *p, size_t n)
{
	uint64_t x = 0;

	for (size_t i = 0; i < n; i += 64)
		x ^= load_u64(p + i);
	return x;
}

static volatile uint64_t sink;

/* 1 and 4: shmbus publisher, then an end marker. */
static void shm_producer(const struct run *r, uint32_t size)
{
	shmbus_bus_t *bus = w_bus_open();
	shmbus_pub_t *pub = w_pub_open(bus, r->topic_a);
	uint8_t *buf = calloc(1, size);

	if (!buf)
		wfail("out of memory");
	worker_ready_wait();
	for (uint64_t n = 0;; n++) {
		if ((n & 63) == 0 && stopped())
			break;
		store_u64(buf, n);
		store_u64(buf + size - 8, n);
		int rc = shmbus_publish(pub, buf, size, TYPE_DATA);
		if (rc < 0)
			wfail("publish #%" PRIu64 ": %s", n, strerror(-rc));
	}
	int rc = shmbus_publish(pub, buf, 0, TYPE_END);
	if (rc < 0)
		wfail("publish end: %s", strerror(-rc));
	shmbus_pub_close(pub);
	shmbus_bus_close(bus);
	_exit(0);
}

/* 1 and 4: shmbus subscriber, checking every message, default waiting (spin, then sleep). */
static void shm_consumer(const struct run *r, uint32_t size)
{
	shmbus_bus_t *bus = w_bus_open();
	shmbus_sub_t *sub = w_sub_open(bus, r->topic_a);
	struct meter mt = { 0 };
	uint64_t x = 0;

	worker_ready_wait();
	for (;;) {
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, 5000);

		if (rc == -EINTR)
			continue;
		if (rc < 0)
			wfail("recv after %" PRIu64 " messages: %s", mt.n, strerror(-rc));
		if (m.type == TYPE_END)
			break;
		if (m.len != size || m.lost || load_u64(m.data) != mt.n)
			wfail("message %" PRIu64 ": len %u, lost %" PRIu64 ", counter %" PRIu64,
			      mt.n, m.len, m.lost, load_u64(m.data));
		if (size > SMALL) {
			if (load_u64((const uint8_t *)m.data + size - 8) != mt.n)
				wfail("message %" PRIu64 ": torn", mt.n);
			x ^= touch_lines(m.data, size);
		}
		meter_tick(&mt);
	}
	meter_done(&mt, size > SMALL ? size : 1);
	sink = x;
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	_exit(0);
}

/* 2: bare ring producer. */
static void ring_producer(const struct run *r)
{
	struct bring q;

	bring_open(&q, r->ring_a, CAPACITY / SLOT);
	worker_ready_wait();
	for (uint64_t n = 0;; n++) {
		if ((n & 63) == 0 && stopped()) {
			store_u64(bring_slot(&q), END_COUNTER);
			bring_push(&q);
			break;
		}
		uint8_t *s = bring_slot(&q);
		/* A 64-byte message, like the others: the counter, then 56 bytes. */
		store_u64(s, n);
		memset(s + 8, (int)(n & 0xff), SLOT - 8);
		bring_push(&q);
	}
	_exit(0);
}

/* 2: bare ring consumer. */
static void ring_consumer(const struct run *r)
{
	struct bring q;
	struct meter mt = { 0 };

	bring_open(&q, r->ring_a, CAPACITY / SLOT);
	worker_ready_wait();
	for (;;) {
		const uint8_t *s;

		while (!(s = bring_peek(&q)))
			cpu_relax();
		uint64_t c = load_u64(s);
		if (c == END_COUNTER)
			break;
		if (c != mt.n)
			wfail("slot %" PRIu64 ": counter %" PRIu64, mt.n, c);
		bring_pop(&q);
		meter_tick(&mt);
	}
	meter_done(&mt, 1);
	_exit(0);
}

/* 3: socket sender: one 64-byte message per send(); a 1-byte message ends. */
static void sock_producer(const struct run *r)
{
	uint8_t buf[SMALL];
	int fd = r->sock[0];

	close(r->sock[1]);
	memset(buf, 0x5a, sizeof(buf));
	worker_ready_wait();
	for (uint64_t n = 0;; n++) {
		if ((n & 63) == 0 && stopped())
			break;
		store_u64(buf, n);
		if (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) != (ssize_t)sizeof(buf))
			wfail("send: %s", strerror(errno));
	}
	if (send(fd, buf, 1, MSG_NOSIGNAL) != 1)
		wfail("send end: %s", strerror(errno));
	_exit(0);
}

static void sock_consumer(const struct run *r)
{
	uint8_t buf[SMALL * 2];
	struct meter mt = { 0 };
	int fd = r->sock[1];

	close(r->sock[0]);
	worker_ready_wait();
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 1)
			break;
		if (n != SMALL || load_u64(buf) != mt.n)
			wfail("message %" PRIu64 ": %zd bytes", mt.n, n);
		meter_tick(&mt);
	}
	meter_done(&mt, 1);
	_exit(0);
}

/* 4: the peer: memcpy 16 KiB blocks from one buffer into a 1 MiB one, round and round. */
static void memcpy_worker(void)
{
	uint8_t *src = aligned_alloc(64, LARGE), *dst = aligned_alloc(64, CAPACITY);
	struct meter mt = { 0 };
	uint64_t off = 0;

	if (!src || !dst)
		wfail("out of memory");
	memset(src, 0x5a, LARGE);
	memset(dst, 0, CAPACITY);
	worker_ready_wait();
	while (!stopped()) {
		for (int i = 0; i < 64; i++) {
			memcpy(dst + off, src, LARGE);
			/* The copy must happen: dst escapes to the compiler here. */
			__asm__ __volatile__("" : : "r"(dst) : "memory");
			off = (off + LARGE) & (CAPACITY - 1);
			meter_tick(&mt);
		}
	}
	meter_done(&mt, LARGE);
	_exit(0);
}

/* ---- ping-pong ------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Record round trip i (ns since the previous one) unless still warming up. */
struct rtt {
	uint32_t *v;
	uint64_t n;
	uint64_t prev;
};

static void rtt_init(struct rtt *t)
{
	t->v = malloc(cfg.pp_n * sizeof(*t->v));
	if (!t->v)
		wfail("out of memory");
	t->n = 0;
}

static inline void rtt_add(struct rtt *t, uint64_t i)
{
	uint64_t now = now_ns();

	if (i >= cfg.pp_warm) {
		uint64_t d = now - t->prev;

		t->v[t->n++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	}
	t->prev = now;
}

static void rtt_done(struct rtt *t)
{
	if (!t->n)
		wfail("no round trip recorded");
	qsort(t->v, t->n, sizeof(*t->v), cmp_u32);
	ctl->messages = t->n;
	ctl->p50 = t->v[t->n / 2];
	ctl->p99 = t->v[t->n * 99 / 100];
	ctl->p999 = t->v[t->n * 999 / 1000];
	ctl->max = t->v[t->n - 1];
	ctl->value = (double)ctl->p50;
}

/* Busy-wait for the next shmbus message: the library spins (its spin is set to 1 s). */
static void shm_wait(shmbus_sub_t *sub, shmbus_msg_t *m, int ponger)
{
	for (;;) {
		int rc = shmbus_recv(sub, m, 1000);

		if (rc == 0)
			return;
		if (rc == -EAGAIN && ponger && stopped())
			_exit(0);
		if (rc != -EINTR && rc != -EAGAIN)
			wfail("recv: %s", strerror(-rc));
		if (rc == -EAGAIN && !ponger)
			wfail("no pong within 1 s");
	}
}

static void shm_pinger(const struct run *r)
{
	shmbus_bus_t *bus = w_bus_open();
	shmbus_pub_t *pub = w_pub_open(bus, r->topic_a);
	shmbus_sub_t *sub = w_sub_open(bus, r->topic_b);
	uint8_t buf[SMALL] = { 0 };
	struct rtt t;
	shmbus_msg_t m;

	shmbus_sub_set_spin(sub, 1000000);
	rtt_init(&t);
	worker_ready_wait();
	uint64_t deadline = now_ns() + (uint64_t)(cfg.pp_max * 1e9);
	t.prev = now_ns();
	for (uint64_t i = 0; i < cfg.pp_warm + cfg.pp_n; i++) {
		store_u64(buf, i);
		int rc = shmbus_publish(pub, buf, sizeof(buf), TYPE_DATA);
		if (rc < 0)
			wfail("publish: %s", strerror(-rc));
		shm_wait(sub, &m, 0);
		if (m.len != SMALL || load_u64(m.data) != i)
			wfail("pong %" PRIu64 ": wrong message", i);
		rtt_add(&t, i);
		if ((i & 1023) == 0 && t.prev > deadline)
			break;
	}
	shmbus_publish(pub, buf, 0, TYPE_END);
	rtt_done(&t);
	_exit(0);
}

static void shm_ponger(const struct run *r)
{
	shmbus_bus_t *bus = w_bus_open();
	shmbus_sub_t *sub = w_sub_open(bus, r->topic_a);
	shmbus_pub_t *pub = w_pub_open(bus, r->topic_b);
	shmbus_msg_t m;

	shmbus_sub_set_spin(sub, 1000000);
	worker_ready_wait();
	for (;;) {
		shm_wait(sub, &m, 1);
		if (m.type == TYPE_END)
			break;
		int rc = shmbus_publish(pub, m.data, m.len, TYPE_DATA);
		if (rc < 0)
			wfail("publish: %s", strerror(-rc));
	}
	_exit(0);
}

static void ring_pinger(const struct run *r)
{
	struct bring ping, pong;
	struct rtt t;

	bring_open(&ping, r->ring_a, PP_SLOTS);
	bring_open(&pong, r->ring_b, PP_SLOTS);
	rtt_init(&t);
	worker_ready_wait();
	uint64_t deadline = now_ns() + (uint64_t)(cfg.pp_max * 1e9);
	t.prev = now_ns();
	for (uint64_t i = 0; i < cfg.pp_warm + cfg.pp_n; i++) {
		uint8_t *s = bring_slot(&ping);
		const uint8_t *p;

		store_u64(s, i);
		memset(s + 8, 0, SLOT - 8);
		bring_push(&ping);
		while (!(p = bring_peek(&pong)))
			cpu_relax();
		if (load_u64(p) != i)
			wfail("pong %" PRIu64 ": wrong message", i);
		bring_pop(&pong);
		rtt_add(&t, i);
		if ((i & 1023) == 0 && t.prev > deadline)
			break;
	}
	store_u64(bring_slot(&ping), END_COUNTER);
	bring_push(&ping);
	rtt_done(&t);
	_exit(0);
}

static void ring_ponger(const struct run *r)
{
	struct bring ping, pong;

	bring_open(&ping, r->ring_a, PP_SLOTS);
	bring_open(&pong, r->ring_b, PP_SLOTS);
	worker_ready_wait();
	for (;;) {
		const uint8_t *p;
		unsigned spins = 0;

		while (!(p = bring_peek(&ping))) {
			if ((++spins & 0xffff) == 0 && stopped())
				_exit(0);
			cpu_relax();
		}
		uint64_t c = load_u64(p);
		if (c == END_COUNTER)
			break;
		uint8_t *s = bring_slot(&pong);
		memcpy(s, p, SLOT);
		bring_pop(&ping);
		bring_push(&pong);
	}
	_exit(0);
}

/* ---- the parent: one run --------------------------------------------------------------- */

static char bench_dir[64];
static pid_t children[2];
static int nchildren;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void remove_bench_dir(void)
{
	if (bench_dir[0])
		nftw(bench_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	bench_dir[0] = 0;
}

static void on_signal(int sig)
{
	/* Interrupted: take the workers and the bus directory down with us. */
	for (int i = 0; i < nchildren; i++)
		kill(children[i], SIGKILL);
	remove_bench_dir();
	_exit(128 + sig);
}

static pid_t spawn(void (*fn)(const struct run *), const struct run *r)
{
	fflush(NULL);
	pid_t pid = fork();

	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		fn(r);
		_exit(0);
	}
	if (pid > 0)
		children[nchildren++] = pid;
	return pid;
}

/*
 * Wait for workers until deadline, then kill what is left: all of them, or only the first
 * (the pinger) when first_only. Returns -1 if one failed or had to be killed, else 0.
 */
static int reap(uint64_t deadline, int first_only)
{
	int bad = 0;

	for (;;) {
		int left = 0;

		for (int i = 0; i < (first_only ? 1 : nchildren); i++) {
			int st;

			if (!children[i])
				continue;
			if (waitpid(children[i], &st, WNOHANG) == children[i]) {
				if (WIFSIGNALED(st) && !ctl->failed && !ctl->err[0])
					snprintf(ctl->err, sizeof(ctl->err),
						 "worker %d killed by signal %d", i, WTERMSIG(st));
				if (!WIFEXITED(st) || WEXITSTATUS(st))
					bad = 1;
				children[i] = 0;
			} else {
				left++;
			}
		}
		if (!left)
			break;
		if (now_ns() > deadline) {
			for (int i = 0; i < (first_only ? 1 : nchildren); i++)
				if (children[i])
					kill(children[i], SIGKILL);
			if (!ctl->failed)
				snprintf(ctl->err, sizeof(ctl->err), "workers hung; killed");
			deadline = UINT64_MAX;
			bad = 1;
		}
		usleep(1000);
	}
	if (!first_only)
		nchildren = 0;
	return bad ? -1 : 0;
}

static void shm_producer64(const struct run *r)
{
	shm_producer(r, SMALL);
}

static void shm_consumer64(const struct run *r)
{
	shm_consumer(r, SMALL);
}

static void shm_producer16k(const struct run *r)
{
	shm_producer(r, LARGE);
}

static void shm_consumer16k(const struct run *r)
{
	shm_consumer(r, LARGE);
}

static void memcpy_role(const struct run *r)
{
	(void)r;
	memcpy_worker();
}

struct result {
	double value; /* msg/s, bytes/s, or p50 ns */
	uint64_t messages, p50, p99, p999, max;
	int ok;
};

static int make_topic(shmbus_bus_t *bus, const char *name)
{
	shmbus_topic_opts_t o;

	shmbus_topic_opts_init(&o);
	o.capacity = CAPACITY;
	o.policy = SHMBUS_BLOCK;
	int rc = shmbus_topic_create(bus, name, &o);
	if (rc < 0)
		fprintf(stderr, "spsc: create topic %s: %s (%s)\n", name, strerror(-rc),
			shmbus_errmsg());
	return rc < 0 ? rc : 0;
}

static struct result run_once(shmbus_bus_t *bus, enum case_id id, int round)
{
	struct result res = { 0 };
	struct run r = { .id = id, .sock = { -1, -1 } };
	void (*a)(const struct run *) = NULL, (*b)(const struct run *) = NULL;
	int rc = 0;

	memset(ctl, 0, sizeof(*ctl));
	snprintf(r.topic_a, sizeof(r.topic_a), "bench.%s.r%d.a", cases[id].name, round);
	snprintf(r.topic_b, sizeof(r.topic_b), "bench.%s.r%d.b", cases[id].name, round);
	snprintf(r.ring_a, sizeof(r.ring_a), "%s/ring-%d-%d-a", bench_dir, id, round);
	snprintf(r.ring_b, sizeof(r.ring_b), "%s/ring-%d-%d-b", bench_dir, id, round);

	switch (id) {
	case C_SHM64:
		rc = make_topic(bus, r.topic_a);
		a = shm_producer64;
		b = shm_consumer64;
		break;
	case C_SHM16K:
		rc = make_topic(bus, r.topic_a);
		a = shm_producer16k;
		b = shm_consumer16k;
		break;
	case C_RING64:
		rc = bring_create(r.ring_a, CAPACITY / SLOT);
		a = ring_producer;
		b = ring_consumer;
		break;
	case C_SOCK64:
		rc = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r.sock) ? -errno : 0;
		a = sock_producer;
		b = sock_consumer;
		break;
	case C_MEMCPY16K:
		a = memcpy_role;
		break;
	case C_SHMPP:
		rc = make_topic(bus, r.topic_a);
		if (!rc)
			rc = make_topic(bus, r.topic_b);
		a = shm_pinger;
		b = shm_ponger;
		break;
	case C_RINGPP:
		rc = bring_create(r.ring_a, PP_SLOTS);
		if (!rc)
			rc = bring_create(r.ring_b, PP_SLOTS);
		a = ring_pinger;
		b = ring_ponger;
		break;
	case NCASES:
		break;
	}
	if (rc < 0) {
		fprintf(stderr, "spsc: %s: setup failed: %s\n", cases[id].name, strerror(-rc));
		goto out;
	}

	uint32_t want = b ? 2 : 1;
	if (spawn(a, &r) < 0 || (b && spawn(b, &r) < 0)) {
		fprintf(stderr, "spsc: fork: %s\n", strerror(errno));
		ctl->stop = 1;
		reap(now_ns() + 10000000000ull, 0);
		goto out;
	}
	if (r.sock[0] >= 0) {
		close(r.sock[0]);
		close(r.sock[1]);
		r.sock[0] = r.sock[1] = -1;
	}
	uint64_t deadline = now_ns() + 10000000000ull;
	/* Acquire: pairs with the workers' release of ready. */
	while (__atomic_load_n(&ctl->ready, __ATOMIC_ACQUIRE) < want && !ctl->failed &&
	       now_ns() < deadline)
		usleep(100);
	ctl->warm_end = now_ns() + (uint64_t)(cfg.warm * 1e9);
	/* Release: warm_end is visible to whoever sees go. */
	__atomic_store_n(&ctl->go, 1, __ATOMIC_RELEASE);
	if (cases[id].kind == ROUNDTRIP) {
		/* The pinger stops by itself; then the ponger is told to. */
		rc = reap(now_ns() + (uint64_t)((cfg.pp_max + 10) * 1e9), 1);
		__atomic_store_n(&ctl->stop, 1, __ATOMIC_RELAXED);
		if (reap(now_ns() + 10000000000ull, 0) < 0)
			rc = -1;
	} else {
		sleep_until(ctl->warm_end + (uint64_t)(cfg.secs * 1e9));
		__atomic_store_n(&ctl->stop, 1, __ATOMIC_RELAXED);
		rc = reap(now_ns() + 20000000000ull, 0);
	}
	if (rc < 0 || ctl->failed) {
		fprintf(stderr, "\nspsc: %s run %d failed: %s\n", cases[id].name, round,
			ctl->err[0] ? ctl->err : "a worker failed");
		goto out;
	}
	res.value = ctl->value;
	res.messages = ctl->messages;
	res.p50 = ctl->p50;
	res.p99 = ctl->p99;
	res.p999 = ctl->p999;
	res.max = ctl->max;
	res.ok = 1;
out:
	if (id == C_SHM64 || id == C_SHM16K || id == C_SHMPP)
		shmbus_topic_remove(bus, r.topic_a);
	if (id == C_SHMPP)
		shmbus_topic_remove(bus, r.topic_b);
	unlink(r.ring_a);
	unlink(r.ring_b);
	if (r.sock[0] >= 0) {
		close(r.sock[0]);
		close(r.sock[1]);
	}
	return res;
}

/* ---- results ------------------------------------------------------------------------ */

static struct result results[NCASES][MAX_RUNS];
static int selected[NCASES]; /* --case */

/* The best run: the highest throughput, or the lowest p50. -1 if none succeeded. */
static int best_run(enum case_id id)
{
	int best = -1;

	for (int i = 0; i < cfg.runs; i++) {
		const struct result *r = &results[id][i];

		if (!r->ok)
			continue;
		if (best < 0)
			best = i;
		else if (cases[id].kind == ROUNDTRIP ? r->value < results[id][best].value :
						       r->value > results[id][best].value)
			best = i;
	}
	return best;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median, min and max of the successful runs' values. Returns how many succeeded. */
static int spread(enum case_id id, double *median, double *lo, double *hi)
{
	double v[MAX_RUNS];
	int n = 0;

	for (int i = 0; i < cfg.runs; i++)
		if (results[id][i].ok)
			v[n++] = results[id][i].value;
	if (!n)
		return 0;
	qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
	*median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	*lo = v[0];
	*hi = v[n - 1];
	return n;
}

static const char *fmt_value(char *buf, size_t len, enum kind k, double v)
{
	if (k == THROUGHPUT_MSGS)
		snprintf(buf, len, "%.2f M msg/s", v / 1e6);
	else if (k == THROUGHPUT_BYTES)
		snprintf(buf, len, "%.2f GB/s", v / 1e9);
	else if (v < 100000)
		snprintf(buf, len, "%.0f ns", v);
	else
		snprintf(buf, len, "%.0f us", v / 1e3);
	return buf;
}

static const char *fmt_ns(char *buf, size_t len, uint64_t ns)
{
	return fmt_value(buf, len, ROUNDTRIP, (double)ns);
}

static const struct target {
	const char *name;
	enum case_id a, b;
	int at_most; /* the ratio a/b must be <= want (else >= want) */
	double want;
	const char *what; /* "... %s ..." with the ratio */
} targets[] = {
	{ "spsc64_vs_bare_ring", C_SHM64, C_RING64, 0, 0.5,
	  "shmbus moves 64 B messages at %sx the bare ring's rate" },
	{ "spsc64_vs_unix_socket", C_SHM64, C_SOCK64, 0, 50,
	  "shmbus moves 64 B messages at %sx the Unix socket's rate" },
	{ "spsc16k_vs_memcpy", C_SHM16K, C_MEMCPY16K, 0, 0.5,
	  "shmbus carries 16 KiB messages at %sx memcpy's bandwidth" },
	{ "pingpong_p50_vs_bare_ring", C_SHMPP, C_RINGPP, 1, 1.5,
	  "a shmbus round trip takes %sx as long as the bare ring's at p50" },
};
#define NTARGETS (sizeof(targets) / sizeof(targets[0]))

static void json_runs(FILE *f, enum case_id id)
{
	fprintf(f, "[");
	for (int i = 0, first = 1; i < cfg.runs; i++) {
		if (!results[id][i].ok)
			continue;
		fprintf(f, "%s%.6g", first ? "" : ",", results[id][i].value);
		first = 0;
	}
	fprintf(f, "]");
}

static void json_case(FILE *f, const char *prefix, enum case_id id)
{
	const struct casedef *c = &cases[id];
	int b = best_run(id);
	double med = 0, lo = 0, hi = 0;

	spread(id, &med, &lo, &hi);
	fprintf(f,
		"%s{\"bench\":\"spsc\",\"case\":\"%s\",\"label\":\"%s\",\"size\":%u,"
		"\"mode\":\"%s\",\"ok\":%s,",
		prefix, c->name, c->label, c->size, cfg.quick ? "quick" : "default",
		b < 0 ? "false" : "true");
	if (c->kind == ROUNDTRIP) {
		const struct result *r = b < 0 ? &(struct result){ 0 } : &results[id][b];

		fprintf(f, "\"unit\":\"ns\",\"runs_p50\":");
		json_runs(f, id);
		fprintf(f,
			",\"p50\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64
			",\"max\":%" PRIu64 ",\"samples\":%" PRIu64 "}\n",
			r->p50, r->p99, r->p999, r->max, r->messages);
	} else {
		fprintf(f,
			"\"unit\":\"%s\",\"runs\":", c->kind == THROUGHPUT_MSGS ? "msg/s" : "B/s");
		json_runs(f, id);
		fprintf(f,
			",\"best\":%.6g,\"median\":%.6g,\"min\":%.6g,\"max\":%.6g,"
			"\"seconds_per_run\":%g}\n",
			b < 0 ? 0 : results[id][b].value, med, lo, hi, cfg.secs);
	}
}

/*
 * The ratios of a target's case to its peer, one per round in which both succeeded (they
 * ran back to back there, so they saw the same machine: on a shared VM even the host's
 * placement of the two vCPUs changes now and then). Returns how many, sorted.
 */
static int paired_ratios(const struct target *t, double *ratios)
{
	int n = 0;

	for (int i = 0; i < cfg.runs; i++) {
		const struct result *a = &results[t->a][i], *b = &results[t->b][i];

		if (a->ok && b->ok && b->value > 0)
			ratios[n++] = a->value / b->value;
	}
	qsort(ratios, (size_t)n, sizeof(ratios[0]), cmp_double);
	return n;
}

/* A target's ratio: the median of the paired ratios; < 0 if there is none. */
static double target_ratio(const struct target *t)
{
	double r[MAX_RUNS];
	int n = paired_ratios(t, r);

	if (!n)
		return -1;
	return n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2;
}

static int target_met(const struct target *t, double ratio)
{
	return ratio >= 0 && (t->at_most ? ratio <= t->want : ratio >= t->want);
}

static void report(FILE *json, const char *prefix)
{
	char v1[32], v2[32], v3[32], v4[32];

	printf("\nshmbus bench/spsc (%s): best of %d runs, cases interleaved; nothing pinned\n",
	       cfg.quick ? "quick" : "default", cfg.runs);
	printf("\n%-26s %16s %16s   %s\n", "throughput", "best", "median", "runs: min .. max");
	for (int id = 0; id < NCASES; id++) {
		const struct casedef *c = &cases[id];
		double med, lo, hi;
		int b = best_run(id);

		if (c->kind == ROUNDTRIP)
			continue;
		if (!selected[id]) {
			printf("  %-24s %16s\n", c->label, "not run");
			continue;
		}
		if (b < 0 || !spread(id, &med, &lo, &hi)) {
			printf("  %-24s %16s\n", c->label, "FAILED");
			continue;
		}
		printf("  %-24s %16s %16s", c->label,
		       fmt_value(v1, sizeof(v1), c->kind, results[id][b].value),
		       fmt_value(v2, sizeof(v2), c->kind, med));
		printf("   %s .. %s\n", fmt_value(v3, sizeof(v3), c->kind, lo),
		       fmt_value(v4, sizeof(v4), c->kind, hi));
	}
	printf("\n%-26s %9s %9s %9s %9s   %s\n", "round trip, busy-waiting", "p50", "p99", "p99.9",
	       "max", "samples (best run by p50)");
	for (int id = 0; id < NCASES; id++) {
		const struct casedef *c = &cases[id];
		int b = best_run(id);

		if (c->kind != ROUNDTRIP)
			continue;
		if (!selected[id]) {
			printf("  %-24s %9s\n", c->label, "not run");
			continue;
		}
		if (b < 0) {
			printf("  %-24s %9s\n", c->label, "FAILED");
			continue;
		}
		const struct result *r = &results[id][b];
		printf("  %-24s %9s %9s %9s %9s   %" PRIu64 "\n", c->label,
		       fmt_ns(v1, sizeof(v1), r->p50), fmt_ns(v2, sizeof(v2), r->p99),
		       fmt_ns(v3, sizeof(v3), r->p999), fmt_ns(v4, sizeof(v4), r->max),
		       r->messages);
	}

	printf("\ntargets (each ratio: the median of the %d rounds' paired ratios)\n", cfg.runs);
	for (size_t i = 0; i < NTARGETS; i++) {
		const struct target *t = &targets[i];
		double ratio = target_ratio(t), r[MAX_RUNS];
		int n = paired_ratios(t, r);
		char rs[32], line[160];
		const char *verdict = "MISSED";

		snprintf(rs, sizeof(rs), ratio >= 10 ? "%.0f" : "%.2f", ratio);
		if (!selected[t->a] || !selected[t->b])
			continue;
		if (ratio < 0)
			verdict = "UNKNOWN";
		else if (target_met(t, ratio))
			verdict = "MET";
		snprintf(line, sizeof(line), t->what, ratio >= 0 ? rs : "?");
		printf("  %-7s %s (target: %s %gx)\n", verdict, line,
		       t->at_most ? "at most" : "at least", t->want);
		if (n > 1)
			printf("          rounds: %.3g .. %.3g\n", r[0], r[n - 1]);
	}
	printf("\nnotes: the memcpy peer is one core copying into a cache-resident 1 MiB buffer;\n"
	       "       shmbus moves each 16 KiB message to a reader on another core, which\n"
	       "       touches every cache line. Ping-pong shmbus readers spin (no futex sleep);\n"
	       "       the 64 B and 16 KiB readers wait the default way (spin 20 us, then sleep).\n\n");
	fflush(stdout);

	for (int id = 0; id < NCASES; id++)
		if (selected[id])
			json_case(json, prefix, id);
	for (size_t i = 0; i < NTARGETS; i++) {
		const struct target *t = &targets[i];

		if (!selected[t->a] || !selected[t->b])
			continue;
		double ratio = target_ratio(t), r[MAX_RUNS];
		int n = paired_ratios(t, r);

		fprintf(json,
			"%s{\"bench\":\"spsc\",\"target\":\"%s\",\"case\":\"%s\","
			"\"peer\":\"%s\",\"ratio\":%.4g,\"round_ratios\":[",
			prefix, t->name, cases[t->a].name, cases[t->b].name, ratio < 0 ? 0 : ratio);
		for (int j = 0; j < n; j++)
			fprintf(json, "%s%.4g", j ? "," : "", r[j]);
		fprintf(json, "],\"op\":\"%s\",\"want\":%g,\"met\":%s}\n",
			t->at_most ? "<=" : ">=", t->want, target_met(t, ratio) ? "true" : "false");
	}
	fflush(json);
}

/* ---- main ------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: spsc [options]\n"
		"  -q, --quick      short runs (about 25 s in all)\n"
		"  -j, --json FILE  write the JSON objects to FILE (default: stdout, each line\n"
		"                   prefixed with \"json: \")\n"
		"  -r, --runs N     runs per case (default %d, at most %d); the best counts\n"
		"  -c, --case NAME  run only the cases named (may be repeated); the names are\n"
		"                  ",
		NRUNS_DEFAULT, MAX_RUNS);
	for (int id = 0; id < NCASES; id++)
		fprintf(f, " %s", cases[id].name);
	fprintf(f, "\n"
		   "  -s, --strict     exit 3 if a target is missed\n"
		   "  -h, --help\n");
}

/* Select the case called name for --case. Returns 0, or -1 if there is none. */
static int select_case(const char *name)
{
	for (int id = 0; id < NCASES; id++) {
		if (!strcmp(cases[id].name, name)) {
			selected[id] = 1;
			return 0;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	/* One option per line. */
	/* clang-format off */
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", required_argument, NULL, 'j' },
		{ "runs", required_argument, NULL, 'r' },
		{ "case", required_argument, NULL, 'c' },
		{ "strict", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	const char *json_path = NULL;
	int strict = 0, opt, failed = 0, ncases = 0;

	cfg.runs = NRUNS_DEFAULT;
	while ((opt = getopt_long(argc, argv, "qj:r:c:sh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			cfg.quick = 1;
			break;
		case 'j':
			json_path = optarg;
			break;
		case 'r':
			cfg.runs = atoi(optarg);
			if (cfg.runs < 1 || cfg.runs > MAX_RUNS) {
				usage(stderr);
				return 2;
			}
			break;
		case 'c':
			if (select_case(optarg)) {
				fprintf(stderr, "spsc: no case called '%s'\n", optarg);
				usage(stderr);
				return 2;
			}
			ncases++;
			break;
		case 's':
			strict = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!ncases)
		for (int id = 0; id < NCASES; id++)
			selected[id] = 1;
	if (cfg.quick) {
		cfg.secs = 1.0;
		cfg.warm = 0.2;
		cfg.pp_n = 100000;
		cfg.pp_warm = 10000;
		cfg.pp_max = 3;
	} else {
		cfg.secs = 3;
		cfg.warm = 0.3;
		cfg.pp_n = 1000000;
		cfg.pp_warm = 50000;
		cfg.pp_max = 15;
	}

	FILE *json = stdout;
	const char *prefix = "json: ";
	if (json_path) {
		json = fopen(json_path, "w");
		if (!json) {
			fprintf(stderr, "spsc: %s: %s\n", json_path, strerror(errno));
			return 1;
		}
		prefix = "";
	}

	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED) {
		fprintf(stderr, "spsc: mmap: %s\n", strerror(errno));
		return 1;
	}
	snprintf(bench_dir, sizeof(bench_dir), "/dev/shm/shmbus-bench-XXXXXX");
	if (!mkdtemp(bench_dir)) {
		fprintf(stderr, "spsc: mkdtemp in /dev/shm: %s\n", strerror(errno));
		return 1;
	}
	atexit(remove_bench_dir);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	setenv("SHMBUS_DIR", bench_dir, 1);
	setenv("SHMBUS_BUS", "bench", 1);

	shmbus_bus_t *bus;
	int rc = shmbus_bus_open(&bus, NULL);
	if (rc < 0) {
		fprintf(stderr, "spsc: bus open: %s (%s)\n", strerror(-rc), shmbus_errmsg());
		return 1;
	}

	fprintf(stderr, "spsc: %d rounds of %d cases, %.1f s per throughput run (%s mode)\n",
		cfg.runs, ncases ? ncases : NCASES, cfg.warm + cfg.secs,
		cfg.quick ? "quick" : "default");
	for (int round = 0; round < cfg.runs; round++) {
		fprintf(stderr, "spsc: round %d/%d:", round + 1, cfg.runs);
		for (int id = 0; id < NCASES; id++) {
			struct result *r = &results[id][round];
			char v[32] = "FAILED";

			if (!selected[id])
				continue;
			*r = run_once(bus, id, round);
			if (r->ok)
				fmt_value(v, sizeof(v), cases[id].kind, r->value);
			else
				failed = 1;
			fprintf(stderr, " %s", v);
		}
		fprintf(stderr, "\n");
	}
	shmbus_bus_close(bus);

	report(json, prefix);
	if (json != stdout)
		fclose(json);

	int missed = 0;
	for (size_t i = 0; i < NTARGETS; i++)
		if (selected[targets[i].a] && selected[targets[i].b] &&
		    !target_met(&targets[i], target_ratio(&targets[i])))
			missed = 1;
	if (failed)
		return 1;
	return strict && missed ? 3 : 0;
}
