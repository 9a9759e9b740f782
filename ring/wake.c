/* SPDX-License-Identifier: MIT */
/* Futexes on shared words, and membarrier (ring/wake.h). */
#include "ring/wake.h"

#include <errno.h>
#include <stdlib.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int shmbus_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts, *tp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	/* FUTEX_WAIT without FUTEX_PRIVATE_FLAG: the word is in a shared file mapping. */
	long rc = syscall(SYS_futex, word, FUTEX_WAIT, val, tp, NULL, 0);
	if (rc == 0)
		return 0;
	if (errno == ETIMEDOUT)
		return -ETIMEDOUT;
	if (errno == EINTR)
		return -EINTR;
	return 0; /* EAGAIN: the value had changed already */
}

void shmbus_futex_wake(uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}

static int membarrier_state; /* 0 unknown, 1 registered, -1 unavailable */

static int membarrier_query(void)
{
	long mask = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	return mask > 0 && (mask & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
	       (mask & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
}

int shmbus_membarrier_register(void)
{
	int st = __atomic_load_n(&membarrier_state, __ATOMIC_ACQUIRE);
	if (st)
		return st > 0;
	st = -1;
	if (!getenv("SHMBUS_NO_MEMBARRIER") && membarrier_query() &&
	    syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0)
		st = 1;
	__atomic_store_n(&membarrier_state, st, __ATOMIC_RELEASE);
	return st > 0;
}

int shmbus_membarrier_global(void)
{
	static int avail; /* 0 unknown, 1 yes, -1 no */
	int a = __atomic_load_n(&avail, __ATOMIC_RELAXED);
	if (a < 0)
		return 0;
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0) {
		if (!a)
			__atomic_store_n(&avail, 1, __ATOMIC_RELAXED);
		return 1;
	}
	__atomic_store_n(&avail, -1, __ATOMIC_RELAXED);
	return 0;
}
