/* SPDX-License-Identifier: MIT */
/*
 * Block policy: a subscriber killed while it holds the ring full does not block
 * publishers beyond the bound (DESIGN invariant 5, "a reader dies in block mode").
 *
 * Small ring (16 KiB). Children: K, a subscriber that reads 3 messages and stops; L, a
 * live subscriber that must receive all N messages, whole and in order; P, a publisher
 * of N messages (timeout -1). Once P waits for space (K pins the ring), the parent
 * SIGKILLs K and does not reap it (a zombie must count as dead): P's next message must be
 * committed within BOUND_MS of the kill, stats.readers_reclaimed >= 1, P and L finish,
 * and at the end no reader slot is left in use.
 */
#include "tests/helpers.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define BOUND_MS 250
#define N 2000u
#define MAXMSG 500u

/* ---- children ----------------------------------------------------------------------- */

static pid_t kids[8];
static int nkids;
static pid_t parent_pid;

static void kill_kids(void)
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
static pid_t spawn(void)
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

static void forget_kid(pid_t pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

/* Wait up to timeout_ms for pid to end; returns its status, or fails the test. */
static int reap(pid_t pid, int timeout_ms)
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
			fprintf(stderr, "child %d did not end within %d ms\n", (int)pid, timeout_ms);
			exit(1);
		}
		usleep(1000);
	}
}

/* Read one byte from fd within timeout_ms, or fail. */
static void wait_byte(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(poll(&p, 1, timeout_ms) == 1);
	char c;
	CHECK(read(fd, &c, 1) == 1);
}

/* ---- payloads ------------------------------------------------------------------------- */

struct pl {
	uint32_t pubid, idx, len, pad;
	uint64_t hash;
};

static size_t pl_len(uint32_t pubid, uint32_t idx, size_t max)
{
	uint64_t s = ((uint64_t)pubid << 32 | idx) ^ 0x1e2d3c4b5a697887ull;
	return sizeof(struct pl) + t_rand(&s) % (max - sizeof(struct pl) + 1);
}

static size_t pl_make(uint8_t *buf, uint32_t pubid, uint32_t idx, size_t max)
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
static void pl_check(const shmbus_msg_t *m, size_t max, uint32_t *pubid, uint32_t *idx)
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
		fprintf(stderr, "torn or foreign message: seq %" PRIu64 " len %u type %u "
			"(header pub %u idx %u len %u)\n", m->seq, m->len, m->type, h.pubid,
			h.idx, h.len);
		exit(1);
	}
	*pubid = h.pubid;
	*idx = h.idx;
}

/* ---- the test ------------------------------------------------------------------------- */

static const char *topic = "skb";

static void child_sub(int okfd, int readyfd, uint32_t count, int stop)
{
	shmbus_bus_t *bus;
	shmbus_sub_t *sub;
	if (shmbus_bus_open(&bus, NULL) < 0 || shmbus_sub_open(&sub, bus, topic, NULL, 0) < 0)
		_exit(2);
	if (write(okfd, "o", 1) != 1)
		_exit(2);
	for (uint32_t i = 0; i < count; i++) {
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, 20000);
		if (rc != 0) {
			fprintf(stderr, "subscriber %d: recv %u returned %d\n", (int)getpid(), i,
				rc);
			_exit(3);
		}
		uint32_t pubid, idx;
		pl_check(&m, MAXMSG, &pubid, &idx);
		if (pubid != 1 || idx != i || m.lost) {
			fprintf(stderr, "subscriber: got %u/%u (lost %" PRIu64 "), wanted 1/%u\n",
				pubid, idx, m.lost, i);
			_exit(4);
		}
	}
	if (stop) {
		if (write(readyfd, "r", 1) != 1)
			_exit(2);
		for (;;)
			pause();
	}
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	_exit(0);
}

int main(void)
{
	parent_pid = getpid();
	t_private_dir("sub_killed_block");
	atexit(kill_kids);
	setvbuf(stdout, NULL, _IOLBF, 0);

	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 16 * 1024;
	o.max_message = 1024;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);

	int okp[2], readyp[2], gop[2];
	CHECK(pipe(okp) == 0 && pipe(readyp) == 0 && pipe(gop) == 0);

	pid_t k = spawn();
	if (k == 0)
		child_sub(okp[1], readyp[1], 3, 1);
	pid_t l = spawn();
	if (l == 0)
		child_sub(okp[1], readyp[1], N, 0);
	pid_t p = spawn();
	if (p == 0) {
		shmbus_bus_t *b;
		shmbus_pub_t *pub;
		if (shmbus_bus_open(&b, NULL) < 0 || shmbus_pub_open(&pub, b, topic) < 0)
			_exit(2);
		shmbus_pub_set_timeout(pub, -1);
		if (write(okp[1], "o", 1) != 1)
			_exit(2);
		char c;
		if (read(gop[0], &c, 1) != 1)
			_exit(2);
		uint8_t buf[MAXMSG];
		for (uint32_t i = 0; i < N; i++) {
			size_t len = pl_make(buf, 1, i, MAXMSG);
			int rc = shmbus_publish(pub, buf, len, 1);
			if (rc != 0) {
				fprintf(stderr, "publisher: publish %u returned %d\n", i, rc);
				_exit(3);
			}
		}
		shmbus_pub_close(pub);
		shmbus_bus_close(b);
		_exit(0);
	}
	for (int i = 0; i < 3; i++)
		wait_byte(okp[0], 10000);
	CHECK(write(gop[1], "g", 1) == 1);
	wait_byte(readyp[0], 20000);

	/* Wait until P waits for space: it has waited at least once and makes no progress. */
	shmbus_topic_stats_t st;
	uint64_t give_up = t_now_ns() + 20000000000ull, last = UINT64_MAX, since = 0;
	for (;;) {
		CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
		if (st.published >= N) {
			fprintf(stderr, "the publisher never waited: the stopped subscriber did "
				"not hold the ring\n");
			exit(1);
		}
		uint64_t now = t_now_ns();
		if (st.published != last) {
			last = st.published;
			since = now;
		} else if (st.backpressure_waits >= 1 && now - since > 50000000ull) {
			break;
		}
		CHECK(now < give_up);
		usleep(1000);
	}
	printf("publisher waits at %" PRIu64 " published, %" PRIu64 " backpressure waits, %u "
	       "readers\n", st.published, st.backpressure_waits, st.readers);
	CHECK(st.readers == 2);
	uint64_t reclaimed0 = st.readers_reclaimed;

	uint64_t t_kill = t_now_ns();
	CHECK(kill(k, SIGKILL) == 0);
	for (;;) {
		CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
		if (st.published > last)
			break;
		if (t_now_ns() - t_kill > 10000000000ull) {
			fprintf(stderr, "publisher still stuck 10 s after the subscriber died\n");
			exit(1);
		}
		usleep(100);
	}
	double ms = (double)(t_now_ns() - t_kill) / 1e6;
	printf("publisher went on %.3f ms after the kill\n", ms);
	if (ms > BOUND_MS) {
		fprintf(stderr, "publisher blocked %.3f ms by a dead subscriber (bound %d)\n", ms,
			BOUND_MS);
		exit(1);
	}

	int sp = reap(p, 30000), sl = reap(l, 30000), sk = reap(k, 10000);
	CHECK(WIFEXITED(sp) && WEXITSTATUS(sp) == 0);
	CHECK(WIFEXITED(sl) && WEXITSTATUS(sl) == 0);
	CHECK(WIFSIGNALED(sk) && WTERMSIG(sk) == SIGKILL);

	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	printf("published %" PRIu64 ", readers_reclaimed %" PRIu64 ", readers %u, publishers %u\n",
	       st.published, st.readers_reclaimed, st.readers, st.publishers);
	CHECK(st.published == N);
	CHECK(st.readers_reclaimed >= reclaimed0 + 1);
	CHECK(st.readers == 0);
	CHECK(st.publishers == 0);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
