/* SPDX-License-Identifier: MIT */
/*
 * Shared by the crash tests that fork publishers and readers and SIGKILL them: children
 * that die with the parent and are killed at its exit, reaping with a deadline, ready
 * bytes on pipes, checksummed payloads, and "the publisher cannot go on while this reader
 * stays where it is" (the event a test waits for before it kills that reader).
 * Each test sets parent_pid = getpid() and registers atexit(kill_kids) first.
 */
#ifndef SHMBUS_TESTS_CRASH_CRASH_H
#define SHMBUS_TESTS_CRASH_CRASH_H

#include "tests/lib/proc.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "ring/record.h"

/* ---- children ----------------------------------------------------------------------- */

static pid_t kids[8];
static int nkids;
static pid_t parent_pid;

static inline void kill_kids(void)
{
	if (getpid() != parent_pid)
		return;
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
			kids[i] = 0;
		}
}

/* Fork a child that dies with the parent. Returns its pid in the parent, 0 in the child. */
static inline pid_t spawn(void)
{
	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent_pid)
			_exit(1);
		return 0;
	}
	for (int i = 0; i < nkids; i++)
		if (kids[i] == 0) {
			kids[i] = pid;
			return pid;
		}
	CHECK(nkids < (int)(sizeof(kids) / sizeof(kids[0])));
	kids[nkids++] = pid;
	return pid;
}

static inline void forget_kid(pid_t pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

/* Wait up to timeout_ms for pid to end; returns its status, or fails the test. */
static inline int reap(pid_t pid, int timeout_ms)
{
	uint64_t end = t_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		CHECK(r >= 0);
		if (r == pid) {
			forget_kid(pid);
			return st;
		}
		if (t_now_ns() > end) {
			fprintf(stderr, "child %d did not end within %d ms\n", (int)pid,
				timeout_ms);
			exit(1);
		}
		usleep(1000); /* poll interval */
	}
}

/* Read one byte from fd within T_WAIT_MS, or fail saying what was awaited. */
static inline void wait_byte(int fd, const char *what)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc = poll(&p, 1, T_WAIT_MS);
	char c;
	if (rc != 1 || read(fd, &c, 1) != 1) {
		fprintf(stderr, "no %s within %d ms\n", what, T_WAIT_MS);
		exit(1);
	}
}

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

#endif
