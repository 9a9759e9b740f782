/* SPDX-License-Identifier: MIT */
/*
 * Shared by the test programs: a private bus directory in /dev/shm that is removed at
 * exit, checks that report file:line, a seeded PRNG and a payload checksum.
 * Exit codes: 0 pass, 1 fail, 77 skip (only for what the machine truly lacks).
 */
#ifndef SHMBUS_TESTS_HELPERS_H
#define SHMBUS_TESTS_HELPERS_H

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <shmbus.h>

#define T_SKIP 77

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                   \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

/* Check that an int expression returns want; print both and shmbus_errmsg() if not. */
#define CHECK_RC(expr, want)                                                              \
	do {                                                                              \
		int rc_ = (expr);                                                         \
		if (rc_ != (want)) {                                                      \
			fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %d; errmsg: %s\n", \
				__FILE__, __LINE__, #expr, rc_, strerror(rc_ < 0 ? -rc_ : 0), \
				(int)(want), shmbus_errmsg());                            \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

static char t_dir_[256];
static pid_t t_dir_owner_;

static int t_rm_(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void t_cleanup_(void)
{
	if (t_dir_[0] && getpid() == t_dir_owner_)
		nftw(t_dir_, t_rm_, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Make a private bus root under /dev/shm, point SHMBUS_DIR at it and remove it at exit
 * (by the process that made it only, not by forked children). Returns the root path.
 */
static inline const char *t_private_dir(const char *tag)
{
	snprintf(t_dir_, sizeof(t_dir_), "/dev/shm/shmbus-t-%s-XXXXXX", tag);
	if (!mkdtemp(t_dir_)) {
		perror("mkdtemp");
		exit(1);
	}
	t_dir_owner_ = getpid();
	setenv("SHMBUS_DIR", t_dir_, 1);
	atexit(t_cleanup_);
	return t_dir_;
}

/* splitmix64: a small, seedable PRNG; every random test prints its seed. */
static inline uint64_t t_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t t_seed(void)
{
	const char *e = getenv("SHMBUS_TEST_SEED");
	if (e && *e)
		return strtoull(e, NULL, 0);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
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

static inline uint64_t t_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * How long a test waits for an event that comes at once on an idle machine (a child's
 * ready byte, a process asleep, a counter reaching a value): long enough for a loaded CI
 * machine running sanitized binaries; reaching it fails the test, saying what was awaited.
 */
#define T_WAIT_MS 30000

/* The state letter of /proc/<tid>/stat (R, S, D, Z, ...) of a process or thread; 0 if gone. */
static inline char t_proc_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *e = strrchr(buf, ')');
	return e && e[1] == ' ' ? e[2] : 0;
}

/*
 * Wait until process or thread tid is asleep (state S: in a futex or other interruptible
 * wait), or fail after timeout_ms saying what was awaited.
 */
static inline void t_wait_asleep(pid_t tid, int timeout_ms, const char *what)
{
	uint64_t end = t_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	char st;
	while ((st = t_proc_state(tid)) != 'S') {
		if (t_now_ns() > end) {
			fprintf(stderr, "%s: %d not asleep after %d ms (state %c)\n", what,
				(int)tid, timeout_ms, st ? st : '?');
			exit(1);
		}
		usleep(1000); /* poll interval */
	}
}

#endif
