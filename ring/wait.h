/* SPDX-License-Identifier: MIT */
/*
 * Waiting: shared (not private) futexes on words in the topic file, so that a publisher in
 * one process wakes a reader in another; a spin pause; a monotonic clock.
 */
#ifndef SHMBUS_RING_WAIT_H
#define SHMBUS_RING_WAIT_H

#include <ck_pr.h>
#include <stdint.h>

/* Sleep while *word == val, at most timeout_ns (< 0: forever). Returns 0 (woken or value
 * changed), -ETIMEDOUT, -EINTR. */
int shmbus_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns);

/* Wake up to n sleepers on word. */
void shmbus_futex_wake(uint32_t *word, int n);

/*
 * Asymmetric barrier for the sleep/wake handshake (docs/algorithm.md, "Waking readers").
 * Publishers call shmbus_membarrier_register() once per process; if it returns 1 they may
 * skip their fence before reading the sleeper count, because a reader about to sleep calls
 * shmbus_membarrier_global(), which runs a full barrier on every CPU running a registered
 * process. Returns 1 when available, 0 when not (then publishers keep their fence and
 * readers bound their sleeps).
 */
int shmbus_membarrier_register(void);
int shmbus_membarrier_global(void);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
uint64_t shmbus_now_ns(void);
uint64_t shmbus_wall_ns(void);

/* CLOCK_REALTIME for message timestamps, read through the TSC where it is invariant
 * (ring/clock.c): within a few us of clock_gettime, at half its cost. Thread-safe. */
uint64_t shmbus_stamp_ns(void);

/* One spin-wait pause (PAUSE on x86). */
static inline void shmbus_pause(void)
{
	ck_pr_stall();
}

/* A deadline from a timeout in ms (< 0: none, returned as UINT64_MAX). */
uint64_t shmbus_deadline(int timeout_ms);

#endif
