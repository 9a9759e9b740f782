/* SPDX-License-Identifier: MIT */
/* Futexes on shared words, and whether the CPUs are crowded (ring/wake.h). */
#include "ring/wake.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ring/clock.h"

int shmbus_futex_wait_set(uint32_t *word, uint32_t val, int64_t timeout_ns, uint32_t set)
{
	struct timespec ts, *tp = NULL;
	if (timeout_ns >= 0) {
		/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. */
		uint64_t at = shmbus_now_ns() + (uint64_t)timeout_ns;
		ts.tv_sec = (time_t)(at / 1000000000);
		ts.tv_nsec = (long)(at % 1000000000);
		tp = &ts;
	}
	long rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, val, tp, NULL, set);
	if (rc == 0)
		return 0;
	if (errno == ETIMEDOUT)
		return -ETIMEDOUT;
	if (errno == EINTR)
		return -EINTR;
	return 0; /* EAGAIN: the value had changed already */
}

void shmbus_futex_wake_set(uint32_t *word, int n, uint32_t set)
{
	syscall(SYS_futex, word, FUTEX_WAKE_BITSET, n, NULL, NULL, set);
}

int shmbus_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns)
{
	return shmbus_futex_wait_set(word, val, timeout_ns, FUTEX_BITSET_MATCH_ANY);
}

void shmbus_futex_wake(uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ---- crowded CPUs ------------------------------------------------------------------ */

#define CROWDED_CACHE_NS 2000000ull

static struct {
	int forced; /* -1 not forced, else the answer */
	int fd;	    /* /proc/loadavg, or -1 */
	int ncpu;
	int last;
	uint64_t checked_ns;
} crowd = { .forced = -2 };

static void crowd_init(void)
{
	const char *e = getenv("SHMBUS_CROWDED");
	int forced = -1;
	if (e && (*e == '0' || *e == '1'))
		forced = *e - '0';
	cpu_set_t set;
	int n = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
	if (n <= 0)
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	crowd.ncpu = n > 0 ? n : 1;
	crowd.fd = forced < 0 ? open("/proc/loadavg", O_RDONLY | O_CLOEXEC) : -1;
	__atomic_store_n(&crowd.forced, forced, __ATOMIC_RELEASE);
}

/* The fourth field of /proc/loadavg, "running/total": running tasks, this one included. */
static int running_tasks(int fd)
{
	char buf[128];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *p = buf;
	for (int field = 0; field < 3; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	return atoi(p);
}

int shmbus_cpus_crowded(void)
{
	int forced = __atomic_load_n(&crowd.forced, __ATOMIC_ACQUIRE);
	if (forced == -2) {
		static pthread_once_t once = PTHREAD_ONCE_INIT;
		pthread_once(&once, crowd_init);
		forced = __atomic_load_n(&crowd.forced, __ATOMIC_ACQUIRE);
	}
	if (forced >= 0)
		return forced;
	if (crowd.fd < 0)
		return 0;
	uint64_t now = shmbus_now_ns();
	/* Relaxed: a race between threads only reads the file twice. */
	if (now - __atomic_load_n(&crowd.checked_ns, __ATOMIC_RELAXED) < CROWDED_CACHE_NS)
		return __atomic_load_n(&crowd.last, __ATOMIC_RELAXED);
	int r = running_tasks(crowd.fd);
	int v = r > crowd.ncpu;
	__atomic_store_n(&crowd.last, v, __ATOMIC_RELAXED);
	__atomic_store_n(&crowd.checked_ns, now, __ATOMIC_RELAXED);
	return v;
}
