/* SPDX-License-Identifier: MIT */
/*
 * Shared by the crash tests that fork publishers and readers and SIGKILL them (their
 * children are tests/lib/proc.h's): checksummed payloads, and "the publisher cannot go on
 * while this reader stays where it is" (the event a test waits for before it kills that
 * reader).
 */
#ifndef SHMBUS_TESTS_CRASH_CRASH_H
#define SHMBUS_TESTS_CRASH_CRASH_H

#include "tests/lib/proc.h"

#include "bus/intree.h"
#include "ring/record.h"

/* ---- payloads ------------------------------------------------------------------------- */

struct pl {
	uint32_t pubid, idx, len, pad;
	uint64_t hash;
};

static inline size_t pl_len(uint32_t pubid, uint32_t idx, size_t max)
{
	uint64_t s = ((uint64_t)pubid << 32 | idx) ^ 0x1e2d3c4b5a697887ull;
	return sizeof(struct pl) + t_rand(&s) % (max - sizeof(struct pl) + 1);
}

static inline size_t pl_make(uint8_t *buf, uint32_t pubid, uint32_t idx, size_t max)
{
	size_t len = pl_len(pubid, idx, max);
	uint64_t s = ((uint64_t)idx << 32 | pubid) ^ 0x0badc0ffee0ddf00ull;
	for (size_t i = sizeof(struct pl); i < len; i++)
		buf[i] = (uint8_t)(t_rand(&s) >> 7);
	struct pl h = { pubid, idx, (uint32_t)len, 0,
			t_fnv(buf + sizeof(struct pl), len - sizeof(struct pl)) };
	memcpy(buf, &h, sizeof(h));
	return len;
}

/* Check a received payload is exactly one that was published; returns its id. */
static inline void pl_check(const shmbus_msg_t *m, size_t max, uint32_t *pubid, uint32_t *idx)
{
	struct pl h;
	if (m->len < sizeof(h)) {
		fprintf(stderr, "message seq %" PRIu64 " too short: %u\n", m->seq, m->len);
		exit(1);
	}
	memcpy(&h, m->data, sizeof(h));
	if (h.len != m->len || m->len != pl_len(h.pubid, h.idx, max) ||
	    t_fnv((const uint8_t *)m->data + sizeof(h), m->len - sizeof(h)) != h.hash ||
	    m->type != h.pubid) {
		fprintf(stderr,
			"torn or foreign message: seq %" PRIu64 " len %u type %u "
			"(header pub %u idx %u len %u)\n",
			m->seq, m->len, m->type, h.pubid, h.idx, h.len);
		exit(1);
	}
	*pubid = h.pubid;
	*idx = h.idx;
}

/*
 * A publisher child: open topic (timeout -1); with okfd >= 0, say so on okfd and wait for
 * a byte on gofd; then publish messages 0..n-1 of publisher pubid (pl_make, up to max
 * bytes, type pubid). Exits 0, 2 (could not start) or 3 (a publish failed).
 */
static inline void pl_publisher(const char *topic, uint32_t pubid, uint32_t n, size_t max, int okfd,
				int gofd)
{
	shmbus_bus_t *bus;
	shmbus_pub_t *pub;
	uint8_t buf[4096];
	if (max > sizeof(buf) || shmbus_bus_open(&bus, NULL) < 0 ||
	    shmbus_pub_open(&pub, bus, topic) < 0)
		_exit(2);
	shmbus_pub_set_timeout(pub, -1);
	char c;
	if (okfd >= 0 && (write(okfd, "o", 1) != 1 || read(gofd, &c, 1) != 1))
		_exit(2);
	for (uint32_t i = 0; i < n; i++) {
		size_t len = pl_make(buf, pubid, i, max);
		int rc = shmbus_publish(pub, buf, len, pubid);
		if (rc != 0) {
			fprintf(stderr, "publisher %u: publish %u returned %d\n", pubid, i, rc);
			_exit(3);
		}
	}
	shmbus_pub_close(pub);
	shmbus_bus_close(bus);
	_exit(0);
}

/* ---- a publisher held back by one reader ------------------------------------------------ */

/*
 * Block mode, one publisher (publisher id pubid, payload sizes pl_len(pubid, i, max) for
 * its i-th message) and no record aborted yet, so that the topic's next sequence number is
 * the index of its next message: is that message unable to fit before the reader slot of
 * process pid (fan-out: its position; member: its held record) moves? Then the publisher
 * waits for that reader, whatever the others do, until it moves or dies. Once true, this
 * stays true while that reader stays where it is. Fails if pid has no reader slot.
 */
static inline int held_back_by(shmbus_bus_t *bus, const char *topic, pid_t pid, uint64_t cap,
			       uint32_t pubid, size_t max)
{
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	shmbus_reader_info_t ri[8];
	int n = shmbus_topic_readers(bus, topic, ri, 8);
	CHECK(n >= 0 && n <= 8);
	int i = 0;
	while (i < n && ri[i].pid != pid)
		i++;
	if (i == n) {
		fprintf(stderr, "process %d has no reader slot on %s\n", (int)pid, topic);
		exit(1);
	}
	if (ri[i].pos == UINT64_MAX)
		return 0;
	/* The claim the publisher makes next (publish: one record, after padding to the lap
	 * end if it would straddle it); it fits if it ends at most a ring past the reader. */
	uint64_t size = shmbus_rec_stride(pl_len(pubid, (uint32_t)st.next_seq, max));
	uint64_t off = st.tail & (cap - 1);
	uint64_t end = st.tail + (off + size > cap ? cap - off : 0) + size;
	return end > ri[i].pos + cap;
}

/*
 * Wait until publisher process pub (id 1, n messages in all) waits for space behind the
 * reader slot of process holder (held_back_by), asleep; what (e.g. "the held message")
 * names the holder in a failure. idle(arg), if given, runs between looks (to drain a
 * child's reports). Fails if the publisher finishes first or T_WAIT_MS passes.
 */
static inline void pl_wait_held_back(shmbus_bus_t *bus, const char *topic, pid_t holder,
				     pid_t pub, uint64_t cap, size_t max, uint64_t n,
				     const char *what, void (*idle)(void *), void *arg)
{
	uint64_t give_up = t_deadline(T_WAIT_MS);
	while (!held_back_by(bus, topic, holder, cap, 1, max)) {
		if (idle)
			idle(arg);
		shmbus_topic_stats_t st;
		CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
		if (st.published >= n) {
			fprintf(stderr, "the publisher never waited: %s did not hold the ring\n",
				what);
			exit(1);
		}
		if (t_now_ns() > give_up) {
			fprintf(stderr,
				"the publisher is not held back by %s after %d ms (%" PRIu64
				" published)\n",
				what, T_WAIT_MS, st.published);
			exit(1);
		}
		usleep(1000); /* poll interval */
	}
	t_wait_asleep(pub, T_WAIT_MS, "the publisher waiting for space");
}

/*
 * SIGKILL the reader process pid (who: what it is) that holds back the topic's publisher,
 * which has published last messages; it is not reaped (a zombie must count as dead). The
 * publisher must commit again within bound_ms of the kill, or the test fails: an observer
 * (a reader that holds nobody back) joined before the kill is woken by that commit, and
 * when it wakes is what is measured.
 */
static inline void pl_kill_holder(shmbus_bus_t *bus, const char *topic, pid_t pid, uint64_t last,
				  int bound_ms, const char *who)
{
	shmbus_sub_t *obs;
	CHECK_RC(shmbus_sub_open_observer(&obs, bus, topic, 0), 0);
	shmbus_sub_set_spin(obs, 0);
	uint64_t t_kill = t_now_ns();
	CHECK(kill(pid, SIGKILL) == 0);
	shmbus_msg_t m;
	int rc;
	while ((rc = shmbus_recv(obs, &m, 10000)) == -EINTR)
		;
	if (rc == -EAGAIN) {
		fprintf(stderr, "publisher still stuck 10 s after the %s died\n", who);
		exit(1);
	}
	CHECK_RC(rc, 0);
	double ms = (double)(t_now_ns() - t_kill) / 1e6;
	shmbus_sub_close(obs);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	CHECK(st.published > last);
	printf("publisher went on %.3f ms after the kill\n", ms);
	if (ms > bound_ms) {
		fprintf(stderr, "publisher blocked %.3f ms by a dead %s (bound %d)\n", ms, who,
			bound_ms);
		exit(1);
	}
}

#endif
