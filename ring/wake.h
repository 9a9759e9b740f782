/* SPDX-License-Identifier: MIT */
/*
 * Waiting and waking between processes: shared (not private) futexes on words in the topic
 * file, so that a publisher in one process wakes a reader in another; the asymmetric
 * barrier of the sleep/wake handshake; a spin pause. The handshake itself, on the topic's
 * words, is in ring/writer.h (the publisher's half) and ring/reader.c (the reader's).
 */
#ifndef SHMBUS_RING_WAKE_H
#define SHMBUS_RING_WAKE_H

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

/* One spin-wait pause (PAUSE on x86). */
static inline void shmbus_pause(void)
{
	ck_pr_stall();
}

#endif
