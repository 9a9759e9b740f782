/* SPDX-License-Identifier: MIT */
#include "shm/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Start time and state letter (field 3) of pid. */
static int proc_stat(pid_t pid, uint64_t *out, char *state)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -EIO;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n == 0 ? -ESRCH : -EIO;
	buf[n] = '\0';
	/* Field 2 (comm) is in parentheses and may hold spaces or ')': skip to the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	if (p[0] != ' ' || !p[1])
		return -EIO;
	*state = p[1];
	/* After ')' come fields 3..; field 22 is the 20th of them. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EIO;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1)
		return -EIO;
	*out = v;
	return 0;
}

int shmbus_proc_starttime(pid_t pid, uint64_t *out)
{
	char state;
	return proc_stat(pid, out, &state);
}

static __thread pid_t self_pid;
static __thread uint64_t self_start;

int shmbus_proc_self(pid_t *pid, uint64_t *starttime)
{
	pid_t now = getpid();
	if (self_pid != now) {
		uint64_t st = 0;
		int rc = shmbus_proc_starttime(now, &st);
		if (rc < 0)
			return rc;
		self_start = st;
		self_pid = now;
	}
	*pid = self_pid;
	*starttime = self_start;
	return 0;
}

int shmbus_proc_alive(pid_t pid, uint64_t starttime)
{
	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	uint64_t st;
	char state = 0;
	int rc = proc_stat(pid, &st, &state);
	if (rc == -ESRCH)
		return 0;
	/* A zombie has run its last instruction: it holds nothing any more. */
	if (rc == 0 && (state == 'Z' || state == 'X'))
		return 0;
	if (rc < 0)
		return 1; /* cannot tell: assume alive, never reclaim a live process's slot */
	return starttime == 0 || st == starttime;
}

char shmbus_proc_state(pid_t pid)
{
	uint64_t st;
	char state = 0;
	return proc_stat(pid, &st, &state) == 0 ? state : 0;
}
