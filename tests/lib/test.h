/* SPDX-License-Identifier: MIT */
/*
 * The base of every C test (tests/lib, built once as a static library and linked by each
 * test): checks that report file:line, the one deadline, a private bus directory in
 * /dev/shm removed at exit, a seeded PRNG, a payload checksum, the clock, small files.
 * Exit codes: 0 pass, 1 fail, 77 skip (only for what the machine truly lacks).
 *
 * tests/lib/proc.h adds children (fork, spawn, wait, kill); tests/lib/daemon.h a real
 * shmbusd and its events. A forked child may use all of this too; what a process made (the
 * directory, children, daemons) is cleaned up at its own exit, never at a forked child's.
 */
#ifndef SHMBUS_TESTS_LIB_TEST_H
#define SHMBUS_TESTS_LIB_TEST_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shmbus.h>

#define T_SKIP 77

/*
 * How long a test waits for an event that comes at once on an idle machine (a child's
 * ready byte, a process asleep or ended, a daemon answering, a counter reaching a value):
 * long enough for a loaded CI machine running sanitized binaries; reaching it fails the
 * test, saying what was awaited. Bounds that are themselves asserted (a repair within
 * 250 ms, a ping within 1 s) are the tests' own.
 */
#define T_WAIT_MS 30000

#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                                 \
		}                                                                                \
	} while (0)

/* Check that an int expression returns want; print both and shmbus_errmsg() if not. */
#define CHECK_RC(expr, want)                                                                   \
	do {                                                                                   \
		int rc_ = (expr);                                                              \
		if (rc_ != (want)) {                                                           \
			fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %d; errmsg: %s\n", \
				__FILE__, __LINE__, #expr, rc_, strerror(rc_ < 0 ? -rc_ : 0),  \
				(int)(want), shmbus_errmsg());                                 \
			exit(1);                                                               \
		}                                                                              \
	} while (0)

/* For tests of many independent cases: report a failure and go on; main returns 1 at the
 * end if t_failures is not 0. */
extern int t_failures;
#define FAIL(...)                                                    \
	do {                                                         \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__);                        \
		fputc('\n', stderr);                                 \
		t_failures++;                                        \
	} while (0)

/*
 * Make a private bus root /dev/shm/shmbus-t-TAG-XXXXXX, point SHMBUS_DIR at it and remove
 * it at exit (by this process only, not by forked children), after the children of
 * tests/lib/proc.h are killed. Returns its path, which t_dir() returns from then on.
 */
const char *t_private_dir(const char *tag);
const char *t_dir(void);

/* The PRNG's seed: $SHMBUS_TEST_SEED if set, else from the clock and pid (print it). */
uint64_t t_seed(void);

/* splitmix64: a small, seedable PRNG (any process, any thread with its own state). */
static inline uint64_t t_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* FNV-1a 64 over a payload. */
static inline uint64_t t_fnv(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* CLOCK_MONOTONIC in ns; the deadlines of tests/lib are in this time. */
static inline uint64_t t_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The t_now_ns() time timeout_ms from now. */
static inline uint64_t t_deadline(int timeout_ms)
{
	return t_now_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/* Milliseconds left until deadline (a t_now_ns() time), rounded up; 0 once it passed. */
static inline int t_ms_left(uint64_t deadline)
{
	uint64_t now = t_now_ns();
	return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

/* Milliseconds since t0 (a t_now_ns() time). */
static inline double t_ms_since(uint64_t t0)
{
	return (double)(t_now_ns() - t0) / 1e6;
}

/* Write a whole file through a temporary and a rename: a reader never sees half of it. */
void t_write(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Read a whole (small) file into buf, NUL-terminated. Returns its length. */
size_t t_read(const char *path, char *buf, size_t len);

#endif
