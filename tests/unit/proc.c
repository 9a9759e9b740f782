/* SPDX-License-Identifier: MIT */
/*
 * shm/proc: a process is alive only if its pid exists, is not a zombie, and started at the
 * recorded time; start time 0 means "pid alone"; bad pids are dead.
 */
#include "tests/lib/proc.h"

#include "shm/proc.h"

int main(void)
{
	pid_t self;
	uint64_t st;
	CHECK_RC(shmbus_proc_self(&self, &st), 0);
	CHECK(self == getpid());
	CHECK(st > 0);
	uint64_t st2;
	CHECK_RC(shmbus_proc_starttime(self, &st2), 0);
	CHECK(st2 == st);
	CHECK(shmbus_proc_alive(self, st) == 1);
	CHECK(shmbus_proc_alive(self, 0) == 1);
	CHECK(shmbus_proc_alive(self, st + 1) == 0); /* same pid, another process */
	CHECK(shmbus_proc_alive(0, 0) == 0);
	CHECK(shmbus_proc_alive(-1, 0) == 0);
	CHECK(shmbus_proc_alive(-(int)self, 0) == 0);

	/* A child: alive while it runs, dead as a zombie, dead once reaped. */
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	pid_t c = t_fork();
	if (c == 0) {
		char b;
		close(pfd[1]);
		if (read(pfd[0], &b, 1) < 0)
			_exit(2);
		_exit(0);
	}
	close(pfd[0]);
	uint64_t cst;
	CHECK_RC(shmbus_proc_starttime(c, &cst), 0);
	CHECK(shmbus_proc_alive(c, cst) == 1);
	CHECK(write(pfd[1], "x", 1) == 1);
	t_wait_zombie(c, T_WAIT_MS, "the child told to exit");
	CHECK(shmbus_proc_alive(c, cst) == 0);
	CHECK(shmbus_proc_alive(c, 0) == 0);
	t_reap(c, T_WAIT_MS, "the zombie");
	CHECK(shmbus_proc_alive(c, cst) == 0);
	CHECK_RC(shmbus_proc_starttime(c, &cst), -ESRCH);

	/* After fork the cached identity follows the new process. */
	c = t_fork();
	if (c == 0) {
		pid_t p;
		uint64_t s;
		if (shmbus_proc_self(&p, &s) != 0 || p != getpid() || p == self)
			_exit(1);
		_exit(0);
	}
	CHECK(t_exited(t_reap(c, T_WAIT_MS, "the forked child"), 0));
	printf("ok\n");
	return 0;
}
