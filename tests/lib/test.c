/* SPDX-License-Identifier: MIT */
/* tests/lib/test.c: the private directory, the exit handler, the seed, small files. */
#include "tests/lib/test.h"

#include <ftw.h>
#include <stdarg.h>

#include "tests/lib/internal.h"

int t_failures;

static char dir[256];
static pid_t dir_owner;	 /* the process that made dir: it alone removes it */
static pid_t exit_owner; /* the process that registered the handler */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* on_exit, not atexit: the handler sees the exit status (a failure shows the logs). */
static void at_exit(int status, void *arg)
{
	(void)arg;
	if (getpid() != exit_owner)
		return;
	t_proc_at_exit_();
	t_daemon_at_exit_(status);
	if (dir[0] && getpid() == dir_owner)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void t_exit_register_(void)
{
	if (exit_owner == getpid())
		return;
	exit_owner = getpid();
	CHECK(on_exit(at_exit, NULL) == 0);
}

const char *t_private_dir(const char *tag)
{
	snprintf(dir, sizeof(dir), "/dev/shm/shmbus-t-%s-XXXXXX", tag);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		exit(1);
	}
	dir_owner = getpid();
	setenv("SHMBUS_DIR", dir, 1);
	t_exit_register_();
	return dir;
}

const char *t_dir(void)
{
	CHECK(dir[0] != '\0'); /* t_private_dir() first */
	return dir;
}

uint64_t t_seed(void)
{
	const char *e = getenv("SHMBUS_TEST_SEED");
	if (e && *e)
		return strtoull(e, NULL, 0);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

void t_write(const char *path, const char *fmt, ...)
{
	char tmp[1024];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "we");
	CHECK(f != NULL);
	va_list ap;
	va_start(ap, fmt);
	CHECK(vfprintf(f, fmt, ap) >= 0);
	va_end(ap);
	CHECK(fclose(f) == 0);
	CHECK(rename(tmp, path) == 0);
}

size_t t_read(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	CHECK(f != NULL);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n;
}
