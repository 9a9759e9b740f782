/* SPDX-License-Identifier: MIT */
/*
 * Waiting and waking between processes: shared (not private) futexes on words in the topic
 * file, so that a publisher in one process wakes a reader in another; whether the CPUs are
 * crowded (spinning then only steals the CPU from whoever would give us work); a spin
 * pause. The handshake itself, on the topic's wake word, is in ring/writer.h (the
 * publisher's half) and ring/reader.c (the reader's); docs/algorithm.md, "Waking readers".
 */
#ifndef SHMBUS_RING_WAKE_H
#define SHMBUS_RING_WAKE_H

#include <ck_pr.h>
#include <stdint.h>

/*
 * The topic's wake word (shm/layout.h, hdr->wake): bit 0 says a reader sleeps (or is
 * about to) and wants the next commit to wake it; bit 1 says a fan-out reader sleeps
 * lazily and wants to be woken when the log crosses a sixteenth of the ring, bit 2 that a
 * group member does, and one of them is enough (a lazy sleeper also wakes by itself after
 * SHMBUS_WAKE_LAZY_NS); the bits above count the wakes. A waker clears the bits and adds
 * one to the count in one CAS, so the word changes for every sleeper.
 *
 * Sleepers wait with a futex bitset: fan-out readers SHMBUS_WAKE_SET_ALL, members
 * SHMBUS_WAKE_SET_MEMBER. A wake for bit 0 wakes every sleeper; for bit 1 every fan-out
 * reader; for bit 2 one member (the one that waited longest).
 */
#define SHMBUS_WAKE_NOW 1u
#define SHMBUS_WAKE_LAZY 2u
#define SHMBUS_WAKE_LAZY_ONE 4u
#define SHMBUS_WAKE_ARMED (SHMBUS_WAKE_NOW | SHMBUS_WAKE_LAZY | SHMBUS_WAKE_LAZY_ONE)
#define SHMBUS_WAKE_LAZY_NS 1000000ull
#define SHMBUS_WAKE_SET_ALL 1u
#define SHMBUS_WAKE_SET_MEMBER 2u

/* Sleep while *word == val, at most timeout_ns (< 0: forever). Returns 0 (woken or value
 * changed), -ETIMEDOUT, -EINTR. */
int shmbus_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns);

/* Wake up to n sleepers on word. */
void shmbus_futex_wake(uint32_t *word, int n);

/* The same with a futex bitset: a waiter in set, and a wake of up to n waiters whose set
 * meets set (a plain wake meets every set). */
int shmbus_futex_wait_set(uint32_t *word, uint32_t val, int64_t timeout_ns, uint32_t set);
void shmbus_futex_wake_set(uint32_t *word, int n, uint32_t set);

/*
 * Are there more runnable tasks on the machine than CPUs this process may use? Then a
 * reader or publisher that finds nothing to do sleeps at once instead of spinning (a spin
 * would hold a CPU that the task it waits for needs), and readers sleep lazily. Read from
 * /proc/loadavg's running count at most every 2 ms per process (cached; a few us when
 * read); 0 when it cannot be read. SHMBUS_CROWDED=0 or 1 in the environment forces the
 * answer (a diagnostic, and how the tests reach both paths).
 */
int shmbus_cpus_crowded(void);

/* One spin-wait pause (PAUSE on x86). */
static inline void shmbus_pause(void)
{
	ck_pr_stall();
}

#endif
