/* SPDX-License-Identifier: MIT */
/*
 * A reader waiting in epoll on an fd is woken for every message (issue 16: "an fd waiter
 * wakes within a bound after a publish in a loop of 100 k wake-ups, none lost"): one
 * publisher process, and one reader (this process) waiting in epoll, edge-triggered, on
 * shmbus_sub_fd() (`fd_wakeups sub`) or on shmbus_sink_fd() of a sink over 8 topics
 * (`fd_wakeups sink`).
 *
 * A round: the reader says "go" on a pipe; the publisher waits 0-20 us (so that the publish
 * lands before, while and after the reader enters epoll), publishes one message stamped
 * with the time (for the sink, to one of the 8 topics at random), and then says in shared
 * memory that it has; the reader receives with timeout 0 until -EAGAIN, waiting in epoll
 * between, until it has that message and no other. In 3 rounds of 4 the reader says go
 * only after a receive of -EAGAIN armed its fd ("armed" rounds: the publish must wake it;
 * they are the wake-ups counted); in the others it says go first and arms after, so that
 * the publish races the arming ("racing" rounds; the message may come without a sleep).
 *
 * While armed, the fd also becomes readable every 100 ms (a timer: a wake-up lost to a
 * damaged file costs at most that), so a lost wake-up is a late one, not a hang; the time
 * it takes is spread over those 100 ms. So it is looked for three ways:
 *  - the waker's half: in an armed round (armed after the last publish ended, wake
 *    included) the publish must issue one futex wake (the topic's wakeups counter, read by
 *    the publisher around its publish, goes up by exactly one; in a racing round by at
 *    most one);
 *  - the reader's half, by cause: epoll waits at most 5 ms at a time; when it comes back
 *    with the fd not readable although the round's publish is over (so its wake was
 *    issued, or the arming found the message), the fd must be readable at once, or after
 *    the system call or two that run the kernel's task work posting the completion. If
 *    not, the wake-up was lost (caught unless the timer fired within those 5 ms);
 *  - by time: every round ends within 1 s of its go (a dead fd fails clearly). Percentiles
 *    and the counts over 10 ms and over 90 ms are printed; those are not failures (a
 *    process on a loaded machine waits that long for a CPU now and then, and the first two
 *    ways catch a lost wake-up by its cause).
 * The 5 ms is not a wait for the publisher (which is waited for by the fd alone): it is how
 * often the invariant is looked at.
 *
 * 100 k armed rounds (about 5 s for each mode, sanitized or not: the time is in system
 * calls and context switches), scaled by SHMBUS_STRESS_SCALE. SHMBUS_TEST_SEED replays a
 * run.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#include "bus/intree.h"
#include "shm/layout.h"
#include "shm/segment.h"
#include "tests/lib/proc.h"

#define DEFAULT_ARMED 100000u
#define NTOPIC 8	/* the sink's */
#define BOUND_MS 1000	/* every round ends within this of its go */
#define SLOW_MS 90	/* counted: armed rounds whose message took this long */
#define WATCH_MS 5	/* how often a wait looks at the invariant */
#define PAUSE_NS 20000u /* the publisher's pause before a publish, at most */
#define TAG_PUB 1u	/* epoll data of the publisher's pidfd (the fd's is 0) */

struct go {
	uint64_t round;
	uint32_t armed;
	uint32_t pad_;
};

struct payload {
	uint64_t round;
	uint64_t stamp_ns; /* t_now_ns() just before the publish */
	uint32_t topic;
	uint32_t pad_;
};

static int sink_mode, ntopics;
static char topics[NTOPIC][16];
static int go_pipe[2];
static _Atomic uint64_t *published; /* shared: the last round published, plus one */

static void publisher(void *arg, int fd)
{
	(void)arg;
	(void)fd;
	close(go_pipe[1]);
	uint64_t rng = t_seed() ^ 0x2545f4914f6cdd1dull;
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_pub_t *pub[NTOPIC];
	struct shmbus_seg seg[NTOPIC];
	for (int i = 0; i < ntopics; i++) {
		CHECK_RC(shmbus_pub_open(&pub[i], bus, topics[i]), 0);
		CHECK_RC(shmbus_topic_open_seg(bus, topics[i], &seg[i]), 0);
	}
	for (;;) {
		struct go g;
		ssize_t n = read(go_pipe[0], &g, sizeof(g));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			break; /* the reader is done */
		CHECK(n == (ssize_t)sizeof(g));
		uint32_t t = (uint32_t)(t_rand(&rng) % (uint64_t)ntopics);
		uint64_t pause = t_rand(&rng) % PAUSE_NS, t0 = t_now_ns();
		while (t_now_ns() - t0 < pause)
			;
		uint64_t *wakeups = &seg[t].hdr->wakeups;
		uint64_t w0 = __atomic_load_n(wakeups, __ATOMIC_RELAXED);
		struct payload p = { g.round, t_now_ns(), t, 0 };
		CHECK_RC(shmbus_publish(pub[t], &p, sizeof(p), 0), 0);
		/* Our own publish's increment, if any: program order suffices. */
		uint64_t w = __atomic_load_n(wakeups, __ATOMIC_RELAXED) - w0;
		if (w > 1 || (g.armed && w != 1)) {
			fprintf(stderr,
				"round %" PRIu64 " ('%s', %s): the publish issued %" PRIu64
				" futex wakes; wanted %s\n",
				g.round, topics[t], g.armed ? "reader armed" : "racing", w,
				g.armed ? "1: a lost wake-up" : "at most 1");
			exit(1);
		}
		atomic_store(published, g.round + 1);
	}
	for (int i = 0; i < ntopics; i++) {
		shmbus_seg_close(&seg[i]);
		shmbus_pub_close(pub[i]);
	}
	shmbus_bus_close(bus);
}

static shmbus_sub_t *sub;
static shmbus_sink_t *sink;
static int ep;
static pid_t pid;
static uint64_t eintr;

static int recv0(shmbus_msg_t *m)
{
	return sink_mode ? shmbus_sink_recv(sink, m, 0) : shmbus_recv(sub, m, 0);
}

/* Wait up to ms for the fd: 1 readable, 0 not, -1 interrupted. The publisher's end fails
 * the test. */
static int wait_fd(int ms)
{
	struct epoll_event evs[2];
	int n = epoll_wait(ep, evs, 2, ms);
	if (n < 0 && errno == EINTR) {
		/* No signal here: a completion of the fd's io_uring, run as task work,
		 * interrupts the sleep; the fd is readable after it. */
		eintr++;
		return -1;
	}
	CHECK(n >= 0);
	for (int i = 0; i < n; i++)
		if (evs[i].data.u32 == TAG_PUB) {
			int st = t_reap(pid, T_WAIT_MS, "the publisher");
			fprintf(stderr, "the publisher ended (wait status %#x)\n", st);
			exit(1);
		}
	return n > 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "sub") && strcmp(argv[1], "sink"))) {
		fprintf(stderr, "usage: conc_fd_wakeups sub|sink\n");
		return 1;
	}
	sink_mode = !strcmp(argv[1], "sink");
	ntopics = sink_mode ? NTOPIC : 1;
	t_private_dir(sink_mode ? "fdwake-sink" : "fdwake-sub");
	double scale = 1.0;
	const char *sc = getenv("SHMBUS_STRESS_SCALE");
	if (sc && *sc)
		scale = strtod(sc, NULL);
	uint64_t want = (uint64_t)(DEFAULT_ARMED * scale);
	if (want < 1000)
		want = 1000;
	uint64_t seed = t_seed(), rng = seed;
	printf("fd_wakeups %s: %" PRIu64 " armed rounds, seed %" PRIu64 "\n", argv[1], want, seed);

	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 64u << 10;
	for (int i = 0; i < ntopics; i++) {
		if (sink_mode)
			snprintf(topics[i], sizeof(topics[i]), "w.%d", i);
		else
			snprintf(topics[i], sizeof(topics[i]), "w");
		CHECK_RC(shmbus_topic_create(bus, topics[i], &o), 0);
	}
	int fd;
	if (sink_mode) {
		CHECK_RC(shmbus_sink_open(&sink, bus, NULL, 0), 0);
		CHECK_RC(shmbus_sink_add(sink, "w.*"), NTOPIC);
		fd = shmbus_sink_fd(sink);
	} else {
		CHECK_RC(shmbus_sub_open(&sub, bus, "w", NULL, 0), 0);
		fd = shmbus_sub_fd(sub);
	}
	if (fd == -ENOSYS) {
		printf("SKIP: no fd here: %s\n", shmbus_errmsg());
		return T_SKIP;
	}
	CHECK(fd >= 0);
	ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0);
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u32 = 0 };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);

	published = mmap(NULL, sizeof(*published), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(published != MAP_FAILED);
	CHECK(pipe2(go_pipe, O_CLOEXEC) == 0);
	pid = t_child(publisher, NULL, NULL);
	close(go_pipe[0]);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.u32 = TAG_PUB };
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, t_pidfd(pid), &ev) == 0);

	uint32_t *lat_us = malloc(want * sizeof(*lat_us));
	CHECK(lat_us);
	uint64_t armed = 0, racing = 0, slept_armed = 0, raced_through = 0, spurious = 0;
	uint64_t watched = 0, over10 = 0, slow = 0, next_seq = 0;
	uint64_t t0 = t_now_ns();
	shmbus_msg_t m;
	CHECK_RC(recv0(&m), -EAGAIN);
	for (uint64_t round = 0; armed < want; round++) {
		int is_armed = t_rand(&rng) % 4 != 0;
		if (is_armed) {
			/* The last publish may still be in its wake (its message was there to
			 * receive before): that wake would clear the bit we arm now, so that
			 * this round's publish would find none. Let it end first (it is at most
			 * a system call away). */
			uint64_t until = t_deadline(T_WAIT_MS);
			while (atomic_load(published) < round) {
				if (t_now_ns() > until) {
					fprintf(stderr,
						"round %" PRIu64 ": the last publish did "
						"not end within %d ms\n",
						round, T_WAIT_MS);
					exit(1);
				}
				sched_yield();
			}
			int rc = recv0(&m);
			if (rc == 0)
				fprintf(stderr,
					"round %" PRIu64 ": a message of '%s' before the go\n",
					round, m.topic);
			CHECK_RC(rc, -EAGAIN);
		}
		struct go g = { round, (uint32_t)is_armed, 0 };
		CHECK(write(go_pipe[1], &g, sizeof(g)) == (ssize_t)sizeof(g));
		uint64_t deadline = t_deadline(BOUND_MS);
		int wakes = 0, woke = 0;
		for (;;) {
			int rc = recv0(&m);
			if (rc == 0)
				break;
			CHECK_RC(rc, -EAGAIN);
			spurious += woke; /* readable, and nothing to receive */
			int left = t_ms_left(deadline);
			if (!left) {
				fprintf(stderr,
					"round %" PRIu64 " (%s): nothing received within %d ms of "
					"the go (%d wake-ups meanwhile): a lost wake-up\n",
					round, is_armed ? "reader armed" : "racing", BOUND_MS,
					wakes);
				exit(1);
			}
			int r = wait_fd(left < WATCH_MS ? left : WATCH_MS);
			woke = r != 0;
			wakes += woke;
			if (r || atomic_load(published) <= round)
				continue;
			/* The fd is not readable, the publish is over: it must be now, or after
			 * the task work that the next system calls run. */
			watched++;
			for (int i = 0; i < 4 && r <= 0; i++)
				r = wait_fd(0);
			if (r <= 0) {
				fprintf(stderr,
					"round %" PRIu64 " (%s), %.1f ms after the go: the message "
					"was published, and the fd is not readable: a lost wake-up\n",
					round, is_armed ? "reader armed" : "racing",
					t_ms_since(deadline - BOUND_MS * 1000000ull));
				exit(1);
			}
			woke = 1;
			wakes++;
		}
		uint64_t now = t_now_ns();
		struct payload p;
		CHECK(m.len == sizeof(p));
		memcpy(&p, m.data, sizeof(p));
		if (p.round != round || p.topic >= (uint32_t)ntopics ||
		    strcmp(m.topic, topics[p.topic])) {
			fprintf(stderr, "round %" PRIu64 ": got round %" PRIu64 " of '%s'\n", round,
				p.round, m.topic);
			exit(1);
		}
		if (!sink_mode && (m.seq != next_seq || m.lost)) {
			fprintf(stderr,
				"round %" PRIu64 ": seq %" PRIu64 " lost %" PRIu64
				", wanted seq %" PRIu64 "\n",
				round, m.seq, m.lost, next_seq);
			exit(1);
		}
		next_seq++;
		if (!is_armed) {
			racing++;
			raced_through += !wakes;
			continue;
		}
		uint64_t us = (now - p.stamp_ns) / 1000u;
		lat_us[armed++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
		slept_armed += wakes > 0;
		over10 += us >= 10000;
		if (us >= SLOW_MS * 1000u) {
			slow++;
			fprintf(stderr, "round %" PRIu64 ": received %.1f ms after the publish\n",
				round, (double)us / 1000);
		}
	}
	double ms = t_ms_since(t0);
	close(go_pipe[1]);
	CHECK(t_exited(t_reap(pid, T_WAIT_MS, "the publisher's end"), 0));

	qsort(lat_us, armed, sizeof(*lat_us), cmp_u32);
	printf("fd_wakeups %s: %" PRIu64 " armed rounds (%" PRIu64 " slept in epoll), %" PRIu64
	       " racing (%" PRIu64 " without a sleep) in %.0f ms; %" PRIu64
	       " wake-ups with nothing to receive, %" PRIu64 " by EINTR, %" PRIu64
	       " looks at a published message\n",
	       argv[1], armed, slept_armed, racing, raced_through, ms, spurious, eintr, watched);
	printf("  publish to receive, armed rounds (us): p50 %u p99 %u p99.9 %u max %u; "
	       "%" PRIu64 " >= 10 ms, %" PRIu64 " >= %d ms\n",
	       lat_us[armed / 2], lat_us[armed * 99 / 100], lat_us[armed * 999 / 1000],
	       lat_us[armed - 1], over10, slow, SLOW_MS);
	/* Not a failure: on a loaded machine (CI's, with busy loops) a process waits that
	 * long for a CPU now and then; a lost wake-up is caught by its cause above. */
	if (slow)
		printf("  %" PRIu64 " took %d ms or more: the reader waited for a CPU (a lost "
		       "wake-up would have failed the checks by cause)\n",
		       slow, SLOW_MS);
	free(lat_us);
	close(ep);
	shmbus_sink_close(sink);
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	return 0;
}
