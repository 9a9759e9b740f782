/* SPDX-License-Identifier: MIT */
/*
 * Self-checking messages for the concurrency tests, and the per-reader bookkeeping that
 * turns every received message into checks of DESIGN invariants 1-3.
 *
 * A message of publisher p (0..7) with per-publisher counter c (0 .. 2^24-1) and length
 * len (0 .. 8191) carries:
 *   type word:  p << 29 | (len & 31) << 24 | c
 *   payload:    a 24-byte header { u64 c, u32 p, u32 len, u64 hash of the body } followed
 *               by len - 24 body bytes; the hash is keyed by (p, c, len).
 * A message shorter than 24 bytes carries the first len bytes of that header (the body is
 * then empty), so whatever bytes are there are checked, and p, c and the low bits of len
 * always come with the type word. A torn message, one mixed with another, one of an
 * earlier lap or one with a wrong length fails the check.
 */
#ifndef SHMBUS_TESTS_CONCURRENCY_PAYLOAD_H
#define SHMBUS_TESTS_CONCURRENCY_PAYLOAD_H

#include "tests/lib/proc.h"

#include <stdatomic.h>

#define PL_HDR 24u
#define PL_MAX_PUB 8u
#define PL_MAX_COUNT (1ull << 24)
#define PL_POOL (64u * 1024u)

struct pl_hdr {
	uint64_t counter;
	uint32_t pub;
	uint32_t len;
	uint64_t hash;
};
_Static_assert(sizeof(struct pl_hdr) == PL_HDR, "payload header size");

static inline uint32_t pl_type(uint32_t pub, uint64_t counter, size_t len)
{
	return pub << 29 | (uint32_t)(len & 31) << 24 | (uint32_t)counter;
}

static inline uint64_t pl_key(uint32_t pub, uint64_t counter, size_t len)
{
	uint64_t s = counter ^ (uint64_t)pub << 40 ^ (uint64_t)len << 48;
	return t_rand(&s);
}

/* A keyed hash of n bytes, two independent lanes of 8-byte words (much faster than FNV). */
static inline uint64_t pl_hash(const void *p, size_t n, uint64_t key)
{
	const unsigned char *b = p;
	uint64_t a = key ^ 0x243f6a8885a308d3ull, c = key * 0x9e3779b97f4a7c15ull ^ n;
	uint64_t w[2];

	while (n >= 16) {
		memcpy(w, b, 16);
		a = (a ^ w[0]) * 0xbf58476d1ce4e5b9ull;
		a ^= a >> 31;
		c = (c ^ w[1]) * 0x94d049bb133111ebull;
		c ^= c >> 29;
		b += 16;
		n -= 16;
	}
	w[0] = w[1] = 0;
	if (n)
		memcpy(w, b, n);
	a = (a ^ w[0]) * 0xbf58476d1ce4e5b9ull;
	c = (c ^ w[1]) * 0x94d049bb133111ebull;
	a ^= c >> 17 | c << 47;
	a *= 0xff51afd7ed558ccdull;
	return a ^ a >> 33;
}

/* A pool of random bytes that message bodies are cut from. */
static inline unsigned char *pl_pool(uint64_t *rs)
{
	unsigned char *p = malloc(PL_POOL);
	CHECK(p);
	for (size_t i = 0; i < PL_POOL; i += 8) {
		uint64_t v = t_rand(rs);
		memcpy(p + i, &v, 8);
	}
	return p;
}

/*
 * A random length in 0..max: mostly uniform, and one time in 32 one of the edges (0, 1,
 * just below/at/above the header size, max).
 */
static inline size_t pl_rand_len(uint64_t *rs, size_t max)
{
	static const size_t edge[] = { 0, 1, 7, 8, PL_HDR - 1, PL_HDR, PL_HDR + 1 };
	uint64_t r = t_rand(rs);

	if ((r & 31) == 0) {
		unsigned i = (unsigned)(r >> 8) % (sizeof(edge) / sizeof(edge[0]) + 1);
		return i < sizeof(edge) / sizeof(edge[0]) ? edge[i] : max;
	}
	return (size_t)((r >> 8) % (max + 1));
}

/*
 * Write the payload of message (pub, counter) of len bytes to dst; the body is
 * pool[off .. off + len - 24). off + len must be <= PL_POOL.
 */
static inline void pl_fill(void *dst, size_t len, uint32_t pub, uint64_t counter,
			   const unsigned char *pool, size_t off)
{
	size_t body = len > PL_HDR ? len - PL_HDR : 0;
	struct pl_hdr h = {
		.counter = counter,
		.pub = pub,
		.len = (uint32_t)len,
		.hash = pl_hash(pool + off, body, pl_key(pub, counter, len)),
	};

	if (body)
		memcpy((unsigned char *)dst + PL_HDR, pool + off, body);
	if (len)
		memcpy(dst, &h, len < PL_HDR ? len : PL_HDR);
}

/* A random pool offset that leaves room for len bytes of body. */
static inline size_t pl_rand_off(uint64_t *rs, size_t len)
{
	return (size_t)(t_rand(rs) % (PL_POOL - len + 1));
}

/*
 * Check one received message against the format. npub publishers, count[p] messages each,
 * max the topic's max_message. Returns NULL and sets *pub, *counter, or says what is wrong.
 */
static inline const char *pl_check(const shmbus_msg_t *m, uint32_t npub, const uint64_t *count,
				   size_t max, uint32_t *pub, uint64_t *counter)
{
	uint32_t p = m->type >> 29;
	uint64_t c = m->type & 0xffffffu;

	if (p >= npub)
		return "publisher id (type word) out of range";
	if (c >= count[p])
		return "counter (type word) beyond what that publisher publishes";
	if (m->len > max)
		return "length above max_message";
	if ((m->len & 31) != ((m->type >> 24) & 31))
		return "length does not match the type word";
	if (m->len && !m->data)
		return "NULL data with nonzero length";

	const unsigned char *d = m->data;
	size_t body = m->len > PL_HDR ? m->len - PL_HDR : 0;
	struct pl_hdr h = {
		.counter = c,
		.pub = p,
		.len = m->len,
		.hash = pl_hash(d + (body ? PL_HDR : 0), body, pl_key(p, c, m->len)),
	};
	if (m->len && memcmp(d, &h, m->len < PL_HDR ? m->len : PL_HDR) != 0)
		return "payload does not match its header (torn, mixed or foreign)";
	*pub = p;
	*counter = c;
	return NULL;
}

/*
 * exit() for a failed check that several threads may hit at once (all readers of one torn
 * record): only the first runs the exit handlers (which remove the bus directory), the
 * others wait for the process to end.
 */
static inline void pl_exit(int code)
{
	static int exiting;

	if (__atomic_exchange_n(&exiting, 1, __ATOMIC_SEQ_CST))
		for (;;)
			pause();
	exit(code);
}

/* What one reader (fan-out subscriber or group member) has seen so far. */
struct pl_reader {
	char name[48];
	int overwrite;         /* gaps allowed (lost) */
	int fanout;            /* sees every message: seq advances by exactly 1 + lost */
	uint32_t npub;
	const uint64_t *count; /* messages per publisher */
	size_t max;
	uint64_t next[PL_MAX_PUB]; /* lowest counter allowed next, per publisher */
	uint64_t received, lost, bytes;
	uint64_t first_seq, last_seq;
	uint64_t last_rx_ns;
};

static inline void pl_reader_init(struct pl_reader *r, const char *name, int overwrite,
				  int fanout, uint32_t npub, const uint64_t *count, size_t max)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->overwrite = overwrite;
	r->fanout = fanout;
	r->npub = npub;
	r->count = count;
	r->max = max;
	r->last_rx_ns = t_now_ns();
}

static inline void pl_dump(const struct pl_reader *r, const shmbus_msg_t *m, const char *why)
{
	fprintf(stderr, "%s: %s: seq %" PRIu64 " lost %" PRIu64 " len %u type %#x; "
		"received %" PRIu64 " lost %" PRIu64 " last seq %" PRIu64 "\n",
		r->name, why, m->seq, m->lost, m->len, m->type, r->received, r->lost,
		r->last_seq);
	if (m->len && m->data) {
		const unsigned char *d = m->data;
		fprintf(stderr, "%s: first bytes:", r->name);
		for (uint32_t i = 0; i < m->len && i < 32; i++)
			fprintf(stderr, " %02x", d[i]);
		fprintf(stderr, "\n");
	}
	for (uint32_t p = 0; p < r->npub; p++)
		fprintf(stderr, "%s: publisher %u: next counter %" PRIu64 " of %" PRIu64 "\n",
			r->name, p, r->next[p], r->count[p]);
}

#define PL_FAIL(r, m, why)                                                        \
	do {                                                                      \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                   \
		pl_dump((r), (m), (why));                                         \
		pl_exit(1);                                                       \
	} while (0)

/*
 * Account one received message: content, sequence, loss and per-publisher order.
 * Returns the publisher and its counter.
 */
static inline void pl_reader_take(struct pl_reader *r, const shmbus_msg_t *m, uint32_t *pub,
				  uint64_t *counter)
{
	const char *why = pl_check(m, r->npub, r->count, r->max, pub, counter);
	uint32_t p;
	uint64_t c;

	if (why)
		PL_FAIL(r, m, why);
	p = *pub;
	c = *counter;
	if (!r->overwrite && m->lost)
		PL_FAIL(r, m, "block policy reported lost messages");
	if (r->received) {
		if (m->seq <= r->last_seq)
			PL_FAIL(r, m, "seq did not increase");
		if (r->fanout && m->seq != r->last_seq + 1 + m->lost)
			PL_FAIL(r, m, "fan-out seq gap differs from 1 + lost");
		if (!r->fanout && m->seq - r->last_seq - 1 < m->lost)
			PL_FAIL(r, m, "group member lost more than its seq gap");
	} else {
		/* Joined before anything was published: seq counts from 0. */
		if (r->fanout && m->seq != m->lost)
			PL_FAIL(r, m, "first fan-out message: seq differs from lost");
		if (!r->fanout && m->seq < m->lost)
			PL_FAIL(r, m, "first group message: lost exceeds seq");
		r->first_seq = m->seq;
	}
	if (!r->overwrite && r->fanout) {
		if (c != r->next[p])
			PL_FAIL(r, m, "block fan-out: counter is not exactly the next one");
	} else if (c < r->next[p]) {
		PL_FAIL(r, m, "counter went backwards or repeated for its publisher");
	}
	r->next[p] = c + 1;
	r->last_seq = m->seq;
	r->received++;
	r->lost += m->lost;
	r->bytes += m->len;
	r->last_rx_ns = t_now_ns();
}

/* The fan-out end-of-run checks, given the total published. */
static inline void pl_reader_finish_fanout(const struct pl_reader *r, uint64_t total)
{
	fprintf(stderr, "%s: received %" PRIu64 " lost %" PRIu64 " bytes %" PRIu64 "\n",
		r->name, r->received, r->lost, r->bytes);
	if (r->received + r->lost != total || (total && r->last_seq != total - 1)) {
		fprintf(stderr, "%s: received %" PRIu64 " + lost %" PRIu64 " != published %" PRIu64
			" or last seq %" PRIu64 " != %" PRIu64 "\n", r->name, r->received,
			r->lost, total, r->last_seq, total - 1);
		pl_exit(1);
	}
	if (!r->overwrite) {
		for (uint32_t p = 0; p < r->npub; p++)
			if (r->next[p] != r->count[p]) {
				fprintf(stderr, "%s: publisher %u: got up to %" PRIu64
					" of %" PRIu64 "\n", r->name, p, r->next[p], r->count[p]);
				pl_exit(1);
			}
	}
}

/* ---- a subscriber that stops reading ---------------------------------------------------- */

/*
 * Have the topic's npub publishers all published, and are they all asleep at once? Once
 * started, a publisher sleeps only to wait for space. tids: their thread ids, or NULL when
 * each is a process of its own (then the pids of the publisher slots are looked at).
 */
static inline int pl_publishers_asleep(shmbus_bus_t *bus, const char *topic, uint32_t npub,
				       const _Atomic pid_t *tids)
{
	shmbus_pub_info_t pi[PL_MAX_PUB + 1];
	int n = shmbus_topic_publishers(bus, topic, pi, PL_MAX_PUB + 1);

	CHECK(n == (int)npub);
	for (uint32_t i = 0; i < npub; i++)
		if (!pi[i].published ||
		    t_proc_state(tids ? atomic_load(&tids[i]) : pi[i].pid) != 'S')
			return 0;
	return 1;
}

/*
 * Block mode: fan-out subscriber r (of process pid) has stopped reading; wait until the
 * publishers (npub, thread ids tids as above) are held back by it: less is free behind it
 * than a largest claim (claim_max bytes) after the padding to the lap end that may precede
 * it, so that none can go on until it reads (the others catch up), and all are asleep.
 * Meanwhile the payload it has not read never exceeds the ring (cap), and publishing
 * stops before all (total) is published. Returns stats.backpressure_waits then.
 */
static inline uint64_t pl_stall_until_held(shmbus_bus_t *bus, const char *topic,
					   const struct pl_reader *r, pid_t pid, uint64_t cap,
					   uint64_t claim_max, uint64_t total, uint32_t npub,
					   const _Atomic pid_t *tids)
{
	uint64_t give_up = t_deadline(T_WAIT_MS);
	shmbus_topic_stats_t st;
	shmbus_reader_info_t ri[16];

	for (;;) {
		CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
		if (st.bytes - r->bytes > cap) {
			fprintf(stderr,
				"%s: block: %" PRIu64 " payload bytes published that this "
				"subscriber has not read, more than the ring (%" PRIu64 ")\n",
				r->name, st.bytes - r->bytes, cap);
			pl_exit(1);
		}
		if (st.published >= total) {
			fprintf(stderr,
				"%s: block: everything was published while this subscriber "
				"read nothing (it had %" PRIu64 ")\n",
				r->name, r->received);
			pl_exit(1);
		}
		int n = shmbus_topic_readers(bus, topic, ri, 16);
		CHECK(n >= 0 && n <= 16);
		uint64_t lag = 0;
		for (int i = 0; i < n; i++)
			if (ri[i].pid == pid && !ri[i].group[0] && ri[i].consumed == r->received)
				lag = ri[i].lag_bytes;
		if (lag + 2 * claim_max > cap && pl_publishers_asleep(bus, topic, npub, tids))
			break;
		if (t_now_ns() > give_up) {
			fprintf(stderr,
				"%s: publishers not held back %d ms into the stall "
				"(published %" PRIu64 ", waits %" PRIu64 ", %" PRIu64 " bytes "
				"behind)\n",
				r->name, T_WAIT_MS, st.published, st.backpressure_waits, lag);
			pl_exit(1);
		}
		usleep(1000); /* poll interval */
	}
	CHECK(st.backpressure_waits > 0);
	return st.backpressure_waits;
}

/*
 * Overwrite: a subscriber stops reading until it has been lapped (the tail went more than
 * a ring, cap, past where it was when it stopped), or all npub publishers are done.
 */
static inline void pl_stall_until_lapped(shmbus_bus_t *bus, const char *topic, uint64_t cap,
					 atomic_uint *done, unsigned npub)
{
	uint64_t give_up = t_deadline(T_WAIT_MS);
	shmbus_topic_stats_t st;

	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	/* Our position is at most this tail. */
	uint64_t tail0 = st.tail;
	while (st.tail - tail0 <= cap && atomic_load(done) < npub) {
		if (t_now_ns() > give_up) {
			fprintf(stderr,
				"overwrite: publishers wrote only %" PRIu64 " bytes in %d "
				"ms\n",
				st.tail - tail0, T_WAIT_MS);
			pl_exit(1);
		}
		usleep(1000); /* poll interval */
		CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	}
}

#endif
