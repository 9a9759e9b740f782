/* SPDX-License-Identifier: MIT */
/*
 * The process harness: children that die with the test, programs run with their output in
 * files or pipes, waits with a deadline, kills, and what /proc says of a process.
 *
 * Every child made here gets PR_SET_PDEATHSIG (it dies if the thread that forked it does,
 * even by SIGKILL), and the test's exit handler SIGKILLs and reaps each one still there,
 * so a failed check leaves no process behind. Reap children only with t_wait() and the
 * functions built on it, which take them off that list: a child reaped otherwise stays on
 * it, and its pid, perhaps another process's by then, would be killed at exit.
 */
#ifndef SHMBUS_TESTS_LIB_PROC_H
#define SHMBUS_TESTS_LIB_PROC_H

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "tests/lib/test.h"

/* fork() a child that dies with the test. Returns as fork() does (0 in the child). */
pid_t t_fork(void);

/*
 * A child that runs fn(arg, fd) and then _exit(0). With rfd, fd is the write end of a new
 * pipe and *rfd its read end in the test (to report on: a ready byte, results); without,
 * fd is -1. Returns the child's pid.
 */
pid_t t_child(void (*fn)(void *arg, int fd), void *arg, int *rfd);

/* A program to run: argv, environment, where its output goes. */
struct t_cmd {
	char *const *argv;	/* argv[0] is the program's path */
	const char *const *env; /* "NAME=value" to set, "NAME" to unset, NULL-terminated; or
				 * NULL: the test's environment as it is */
	const char *out;	/* stdout to this file (made 0600); NULL: the test's */
	const char *err;	/* stderr likewise */
	int append;		/* out and err are appended to rather than truncated */
	int err_to_out;		/* stderr goes where stdout goes (err is then unused) */
	int *out_pipe;		/* stdout to a new pipe, its read end here (out unused) */
};

/*
 * Stand in for systemd's notification socket, for a daemon that says when it is ready
 * (shmbusd, redis-server --supervised systemd): a datagram socket at dir/name. Writes
 * "NOTIFY_SOCKET=path" into env (for the child's environment). Returns the socket.
 */
int t_notify_open(const char *dir, const char *name, char *env, size_t env_len);

/* Wait up to ms for a datagram on fd that contains want (NULL: any), the ones before it
 * read and dropped; 0 with the text in buf, -ETIMEDOUT, or, with pid > 0 (the process
 * that should send it), -ESRCH as soon as that process ends first. */
int t_notify_wait(int fd, pid_t pid, const char *want, int ms, char *buf, size_t len);

/* Run cmd in a child that dies with the test (exec failing: exit 127). Returns its pid. */
pid_t t_spawn(const struct t_cmd *cmd);

/*
 * Wait up to timeout_ms (0: just look) for the child pid to end. Returns 0 with its wait
 * status in *status (NULL: not wanted), reaped; or -ETIMEDOUT, and it still runs.
 */
int t_wait(pid_t pid, int timeout_ms, int *status);

/* Wait up to timeout_ms for the child pid to end, or fail the test naming what. Returns its
 * wait status (reaped). */
int t_reap(pid_t pid, int timeout_ms, const char *what);

/* SIGKILL the child pid and reap it. */
void t_kill(pid_t pid);

/* Wait up to timeout_ms until the child pid has ended, without reaping it (it stays a
 * zombie), or fail the test naming what. */
void t_wait_zombie(pid_t pid, int timeout_ms, const char *what);

/* Did a wait status come from exit(code)? From signal sig? */
static inline int t_exited(int status, int code)
{
	return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

static inline int t_signalled(int status, int sig)
{
	return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

/* A pidfd for pid (any process, not only a child); fails the test if there is none. */
int t_pidfd(pid_t pid);

/* Wait up to timeout_ms for the process behind pidfd to end. Returns 0 or -ETIMEDOUT. */
int t_pidfd_wait(int pidfd, int timeout_ms);

/* The state letter of /proc/<tid>/stat (R, S, D, Z, ...) of a process or thread; 0 if gone.
 * Any process or thread may call it. */
char t_proc_state(pid_t tid);

/* How many files and directories are below dir (dir itself not counted; -1: unreadable). */
int t_count_entries(const char *dir);

/*
 * Wait until process or thread tid is asleep (state S: in a futex or other interruptible
 * wait), or fail after timeout_ms saying what was awaited. Any thread may call it.
 */
void t_wait_asleep(pid_t tid, int timeout_ms, const char *what);

/* Read exactly n bytes from fd (a pipe) within timeout_ms, or fail saying what was awaited. */
void t_read_within(int fd, void *buf, size_t n, int timeout_ms, const char *what);

/* One byte from fd within T_WAIT_MS (a child's ready byte), or fail naming what. */
char t_wait_byte(int fd, const char *what);

/* A line from fd (without its newline) into buf, within timeout_ms. Returns 0, or -1 (the
 * end came first, or the deadline; buf then holds what came). */
int t_read_line(int fd, char *buf, size_t len, int timeout_ms);

/*
 * Read fd until its end (every write end closed), at most timeout_ms, into buf
 * (NUL-terminated). Returns the bytes read, or -ETIMEDOUT (someone still holds a write
 * end). With stop_early, returns at the first bytes read.
 */
ssize_t t_read_to_end(int fd, char *buf, size_t len, int timeout_ms, int stop_early);

#endif
