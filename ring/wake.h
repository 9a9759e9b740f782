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
 * about to) and wants the next commit to wake it; bit 1 says a reader sleeps lazily and
 * wants to be woken when the log crosses a sixteenth of the ring (it also wakes by itself
 * after SHMBUS_WAKE_LAZY_NS); the bits above count the wakes. A waker clears both bits
 * and adds one to the count in one CAS, so the word changes and every sleeper returns.
 */
#define SHMBUS_WAKE_NOW 1u
#define SHMBUS_WAKE_LAZY 2u
#define SHMBUS_WAKE_ARMED (SHMBUS_WAKE_NOW | SHMBUS_WAKE_LAZY)
#define SHMBUS_WAKE_LAZY_NS 1000000ull

/* Sleep while *word == val, at most timeout_ns (< 0: forever). Returns 0 (woken or value
 * changed), -ETIMEDOUT, -EINTR. */
int shmbus_futex_wait(uint32_t *word, uint32_t val, int64_t timeout_ns);

/* Wake up to n sleepers on word. */
void shmbus_futex_wake(uint32_t *word, int n);

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
