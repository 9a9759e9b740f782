/* SPDX-License-Identifier: MIT */
/*
 * The limits shmbus is measured against:
 *   bare ring      a single-producer single-consumer ring of fixed slots in a shared file,
 *                  the least a shared-memory channel can do: no headers, no claims, no
 *                  sequence numbers, no wake-ups (both sides busy-wait)
 *   memcpy         one core copying each message into a cache-resident buffer (the size of
 *                  the topic's ring): what copying costs when nothing crosses cores
 *   memcpy (DRAM)  one core copying through two buffers four times the last-level cache:
 *                  what copying costs when every byte comes from and goes to memory
 *   raw futex      two processes waking each other with FUTEX_WAKE / FUTEX_WAIT on two
 *                  shared words, nothing else: the floor of a blocking wake-up
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bare_ring.h"
#include "loops.h"

/* ---- the bare ring (bare_ring.h) ------------------------------------------------------------ */

static uint64_t ring_slot_size(uint32_t size)
{
	return ((uint64_t)(size ? size : 1) + 63) & ~63ull;
}

static uint64_t ring_nslots(const struct run *r)
{
	uint64_t slot = ring_slot_size(r->size), n = 2;

	while (n * 2 * slot <= r->capacity)
		n *= 2;
	return n;
}

static int ring_create(struct run *r, const char *path)
{
	size_t len = bring_bytes(ring_nslots(r), ring_slot_size(r->size));
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		snprintf(r->err, sizeof(r->err), "create %s: %s", path, strerror(errno));
		return -errno;
	}
	int rc = posix_fallocate(fd, 0, (off_t)len);
	close(fd);
	if (rc) {
		snprintf(r->err, sizeof(r->err), "fallocate %s: %s", path, strerror(rc));
		return -rc;
	}
	return 0;
}

static int ring_prepare(struct run *r)
{
	snprintf(r->a, sizeof(r->a), "%s/ring-c%d-r%d-a", cfg.dir, r->idx, r->round);
	snprintf(r->b, sizeof(r->b), "%s/ring-c%d-r%d-b", cfg.dir, r->idx, r->round);
	int rc = ring_create(r, r->a);
	return rc ? rc : ring_create(r, r->b);
}

static void ring_cleanup(struct run *r)
{
	unlink(r->a);
	unlink(r->b);
}

/* Either end: the ring is the same mapping for both. */
static void *ring_open(struct run *r, int chan, int idx)
{
	const char *path = chan ? r->b : r->a;
	struct bring *q = malloc(sizeof(*q));
	uint64_t slot = ring_slot_size(r->size), n = ring_nslots(r);
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (!q || fd < 0)
		wfail("open %s: %s", path, strerror(errno));
	void *mem = mmap(NULL, bring_bytes(n, slot), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (mem == MAP_FAILED)
		wfail("mmap %s: %s", path, strerror(errno));
	(void)idx;
	bring_init(q, mem, n, slot, r->size);
	return q;
}

static inline void ring_send(void *hp, const uint8_t *buf, uint32_t len)
{
	bring_send(hp, buf, len);
}

static inline void ring_recv(void *hp, struct view *v)
{
	v->data = bring_recv(hp);
	v->len = ((struct bring *)hp)->size;
	v->lost = 0;
}

static const struct ops ring_ops = {
	.open_tx = ring_open,
	.open_rx = ring_open,
	.send = ring_send,
	.recv = ring_recv,
};

LOOPS_DEFINE(ring, &ring_ops)

const struct peer peer_ring = {
	.id = "bare_ring",
	.label = "bare ring",
	.prepare = ring_prepare,
	.cleanup = ring_cleanup,
	LOOPS_ROLES(ring),
};

/* ---- memcpy --------------------------------------------------------------------------------- */

static void memcpy_loop(struct run *r, uint8_t *src, uint64_t src_len, uint8_t *dst,
			uint64_t dst_len)
{
	const uint32_t size = r->size;
	uint64_t soff = 0, doff = 0;

	/* Every page is touched before the clock starts. */
	memset(src, 0x5a, src_len);
	memset(dst, 0, dst_len);
	worker_ready_wait();
	for (uint64_t n = 0;; n++) {
		if ((n & 63) == 0 && stopped())
			break;
		memcpy(dst + doff, src + soff, size);
		/* The copy must happen: dst escapes to the compiler here. */
		__asm__ __volatile__("" : : "r"(dst) : "memory");
		doff += size;
		if (doff + size > dst_len)
			doff = 0;
		soff += size;
		if (soff + size > src_len)
			soff = 0;
		/* Relaxed: sampled by the driver only. */
		__atomic_store_n(&ctl->w[0].count, n + 1, __ATOMIC_RELAXED);
	}
	sender_done(0);
}

/* Into a buffer the size of the topic's ring, from one message-size buffer: all cached. */
static void memcpy_producer(struct run *r, int idx)
{
	uint64_t dlen = r->capacity < 2ull * r->size ? 2ull * r->size : r->capacity;
	uint8_t *src = aligned_alloc(64, (r->size + 63) & ~63u), *dst = aligned_alloc(64, dlen);

	(void)idx;
	if (!src || !dst)
		wfail("out of memory");
	memcpy_loop(r, src, r->size, dst, dlen);
}

/* Through two buffers of four times the last-level cache each (at least 64 MiB). */
static void memcpy_dram_producer(struct run *r, int idx)
{
	uint64_t len = 4 * cfg.llc < (64ull << 20) ? 64ull << 20 : 4 * cfg.llc;
	uint8_t *src = aligned_alloc(4096, len), *dst = aligned_alloc(4096, len);

	(void)idx;
	if (!src || !dst)
		wfail("out of memory for 2 x %" PRIu64 " MiB", len >> 20);
	memcpy_loop(r, src, len, dst, len);
}

const struct peer peer_memcpy = {
	.id = "memcpy",
	.label = "memcpy (in cache)",
	.producer = memcpy_producer,
};

const struct peer peer_memcpy_dram = {
	.id = "memcpy_dram",
	.label = "memcpy (> LLC)",
	.producer = memcpy_dram_producer,
};

/* ---- raw futex ping-pong ---------------------------------------------------------------- */

struct fx {
	_Alignas(128) uint32_t ping;
	_Alignas(128) uint32_t pong;
};

static int futex_prepare(struct run *r)
{
	r->shared = mmap(NULL, sizeof(struct fx), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r->shared == MAP_FAILED) {
		r->shared = NULL;
		snprintf(r->err, sizeof(r->err), "mmap: %s", strerror(errno));
		return -errno;
	}
	memset(r->shared, 0, sizeof(struct fx));
	return 0;
}

static void futex_cleanup(struct run *r)
{
	if (r->shared)
		munmap(r->shared, sizeof(struct fx));
	r->shared = NULL;
}

/* Wait until *w holds want, asleep. */
static inline void fx_wait(uint32_t *w, uint32_t want)
{
	uint32_t v;

	/* Acquire: what the other side did before its store is visible after. */
	while ((v = __atomic_load_n(w, __ATOMIC_ACQUIRE)) != want)
		futex_wait_u32(w, v);
}

static inline void fx_post(uint32_t *w, uint32_t v)
{
	/* Release: pairs with fx_wait()'s acquire. */
	__atomic_store_n(w, v, __ATOMIC_RELEASE);
	futex_wake_u32(w);
}

static void futex_pinger(struct run *r, int idx)
{
	struct fx *f = r->shared;
	struct rt_clock clk;

	(void)idx;
	worker_ready_wait();
	rt_begin(&clk);
	uint64_t t1 = now_ns();
	for (uint64_t i = 0;; i++) {
		uint32_t n = (uint32_t)i + 1;

		/* The same gap as the other pingers of the wake-up scenario (loops.h). */
		spin_until(t1 + WAKEUP_GAP_NS);
		uint64_t t0 = now_ns();
		fx_post(&f->ping, n);
		fx_wait(&f->pong, n);
		t1 = now_ns();
		if (rt_record(&clk, i, t0, t1))
			break;
	}
	_exit(0);
}

static void futex_ponger(struct run *r, int idx)
{
	struct fx *f = r->shared;

	(void)idx;
	worker_ready_wait();
	for (uint32_t n = 1;; n++) {
		fx_wait(&f->ping, n);
		fx_post(&f->pong, n);
	}
}

const struct peer peer_futex = {
	.id = "raw_futex",
	.label = "raw futex",
	.prepare = futex_prepare,
	.cleanup = futex_cleanup,
	.pinger = futex_pinger,
	.ponger = futex_ponger,
};
