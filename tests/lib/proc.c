/* SPDX-License-Identifier: MIT */
/* tests/lib/proc.c: children that die with the test; waits with deadlines; /proc. */
#include "tests/lib/proc.h"

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "shm/proc.h"
#include "tests/lib/internal.h"

extern char **environ;

/* The children of this process still to kill at its exit (a forked child starts afresh). */
#define MAX_KIDS 64
static pid_t kids[MAX_KIDS];
static pid_t kids_owner;

static void track(pid_t pid)
{
	if (kids_owner != getpid()) {
		memset(kids, 0, sizeof(kids));
		kids_owner = getpid();
	}
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] <= 0) {
			kids[i] = pid;
			return;
		}
	fprintf(stderr, "tests/lib: more than %d children at once\n", MAX_KIDS);
	kill(pid, SIGKILL);
	exit(1);
}

static void forget(pid_t pid)
{
	if (kids_owner != getpid())
		return;
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

void t_proc_at_exit_(void)
{
	if (kids_owner != getpid())
		return;
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
			kids[i] = 0;
		}
}

pid_t t_fork(void)
{
	t_exit_register_();
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* the test died before the line above */
			_exit(127);
		return 0;
	}
	track(pid);
	return pid;
}

pid_t t_child(void (*fn)(void *arg, int fd), void *arg, int *rfd)
{
	int p[2] = { -1, -1 };
	if (rfd)
		CHECK(pipe(p) == 0);
	pid_t pid = t_fork();
	if (pid == 0) {
		if (rfd)
			close(p[0]);
		fn(arg, p[1]);
		_exit(0);
	}
	if (rfd) {
		close(p[1]);
		*rfd = p[0];
	}
	return pid;
}

/* The child's environment: the test's, changed as env says (made before the fork, so that
 * the child calls nothing but async-signal-safe functions until it execs). */
static char **child_env(const char *const *env)
{
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	for (const char *const *e = env; e && *e; e++)
		k++;
	char **out = calloc(n + k + 1, sizeof(*out));
	CHECK(out != NULL);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int replaced = 0;
		for (const char *const *e = env; e && *e && !replaced; e++) {
			size_t len = strcspn(*e, "=");
			replaced = !strncmp(environ[i], *e, len) && environ[i][len] == '=';
		}
		if (!replaced)
			out[o++] = environ[i];
	}
	for (const char *const *e = env; e && *e; e++)
		if (strchr(*e, '='))
			out[o++] = (char *)*e;
	out[o] = NULL;
	return out;
}

/* Open path for output onto fd target, in the child. 0 or -1. */
static int redirect(const char *path, int append, int target)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
	return fd < 0 || dup2(fd, target) < 0 ? -1 : 0;
}

pid_t t_spawn(const struct t_cmd *c)
{
	char **envp = child_env(c->env);
	int p[2] = { -1, -1 };
	if (c->out_pipe)
		CHECK(pipe2(p, O_CLOEXEC) == 0);
	pid_t pid = t_fork();
	if (pid == 0) {
		if (c->out_pipe && dup2(p[1], 1) < 0)
			_exit(127);
		if (!c->out_pipe && c->out && redirect(c->out, c->append, 1) < 0)
			_exit(127);
		if (c->err_to_out ? dup2(1, 2) < 0 : c->err && redirect(c->err, c->append, 2) < 0)
			_exit(127);
		execve(c->argv[0], c->argv, envp);
		fprintf(stderr, "exec %s: %s\n", c->argv[0], strerror(errno));
		_exit(127);
	}
	free(envp);
	if (c->out_pipe) {
		close(p[1]);
		*c->out_pipe = p[0];
	}
	return pid;
}

/* Wait until fd is readable (or at its end) by deadline. 1, or 0 when the deadline passed. */
static int readable(int fd, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc = poll(&p, 1, t_ms_left(deadline));
		if (rc < 0 && errno == EINTR)
			continue;
		CHECK(rc >= 0);
		if (rc == 1 || t_ms_left(deadline) == 0)
			return rc;
	}
}

int t_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		fprintf(stderr, "pidfd_open(%d): %s\n", (int)pid, strerror(errno));
		exit(1);
	}
	return fd;
}

int t_pidfd_wait(int pidfd, int timeout_ms)
{
	return readable(pidfd, t_deadline(timeout_ms)) ? 0 : -ETIMEDOUT;
}

/* Has the child pid ended (reaped or not) within timeout_ms? 0 or -ETIMEDOUT. */
static int ended(pid_t pid, int timeout_ms)
{
	int fd = t_pidfd(pid);
	int rc = t_pidfd_wait(fd, timeout_ms);
	close(fd);
	return rc;
}

int t_wait(pid_t pid, int timeout_ms, int *status)
{
	int rc = ended(pid, timeout_ms);
	if (rc < 0)
		return rc;
	int st;
	CHECK(waitpid(pid, &st, 0) == pid);
	forget(pid);
	if (status)
		*status = st;
	return 0;
}

/* The child pid ends within timeout_ms (reaped or not), or the test fails naming what. */
static void must_end(pid_t pid, int timeout_ms, const char *what)
{
	if (ended(pid, timeout_ms) < 0) {
		fprintf(stderr, "%s (pid %d) did not end within %d ms\n", what, (int)pid,
			timeout_ms);
		exit(1);
	}
}

int t_reap(pid_t pid, int timeout_ms, const char *what)
{
	int st;
	must_end(pid, timeout_ms, what);
	CHECK(t_wait(pid, 0, &st) == 0);
	return st;
}

void t_kill(pid_t pid)
{
	CHECK(kill(pid, SIGKILL) == 0);
	t_reap(pid, T_WAIT_MS, "a child killed with SIGKILL");
}

void t_wait_zombie(pid_t pid, int timeout_ms, const char *what)
{
	must_end(pid, timeout_ms, what);
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0);
	CHECK(si.si_pid == pid);
}

static int entries_seen;

static int count_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)path;
	(void)sb;
	(void)type;
	if (ftw->level > 0)
		entries_seen++;
	return 0;
}

int t_count_entries(const char *dir)
{
	entries_seen = 0;
	if (nftw(dir, count_one, 16, FTW_PHYS) != 0)
		return -1;
	return entries_seen;
}

char t_proc_state(pid_t tid)
{
	return shmbus_proc_state(tid);
}

void t_wait_asleep(pid_t tid, int timeout_ms, const char *what)
{
	uint64_t deadline = t_deadline(timeout_ms);
	char st;
	while ((st = t_proc_state(tid)) != 'S') {
		if (t_now_ns() > deadline) {
			fprintf(stderr, "%s: %d not asleep after %d ms (state %c)\n", what,
				(int)tid, timeout_ms, st ? st : '?');
			exit(1);
		}
		usleep(1000); /* poll interval */
	}
}

void t_read_within(int fd, void *buf, size_t n, int timeout_ms, const char *what)
{
	uint64_t deadline = t_deadline(timeout_ms);
	size_t got = 0;
	while (got < n) {
		if (!readable(fd, deadline)) {
			fprintf(stderr, "no %s within %d ms\n", what, timeout_ms);
			exit(1);
		}
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "no %s: %s\n", what,
				r < 0 ? strerror(errno) : "the pipe ended");
			exit(1);
		}
		got += (size_t)r;
	}
}

char t_wait_byte(int fd, const char *what)
{
	char c;
	t_read_within(fd, &c, 1, T_WAIT_MS, what);
	return c;
}

int t_read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = t_deadline(timeout_ms);
	size_t o = 0;
	while (o + 1 < len && readable(fd, deadline)) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != 1)
			break;
		if (ch == '\n') {
			buf[o] = '\0';
			return 0;
		}
		buf[o++] = ch;
	}
	buf[o] = '\0';
	return -1;
}

ssize_t t_read_to_end(int fd, char *buf, size_t len, int timeout_ms, int stop_early)
{
	uint64_t deadline = t_deadline(timeout_ms);
	size_t n = 0;
	buf[0] = '\0';
	for (;;) {
		if (!readable(fd, deadline))
			return -ETIMEDOUT;
		ssize_t r = read(fd, buf + n, len - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		CHECK(r >= 0);
		n += (size_t)r;
		buf[n] = '\0';
		if (r == 0 || n == len - 1 || (stop_early && n > 0))
			return (ssize_t)n;
	}
}

int t_notify_open(const char *dir, const char *name, char *env, size_t env_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int w = snprintf(sa.sun_path, sizeof(sa.sun_path), "%.80s/%.24s", dir, name);
	CHECK(w > 0 && (size_t)w == strlen(dir) + strlen(name) + 1);
	unlink(sa.sun_path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	CHECK(fd >= 0);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	snprintf(env, env_len, "NOTIFY_SOCKET=%s", sa.sun_path);
	return fd;
}

int t_notify_wait(int fd, pid_t pid, const char *want, int ms, char *buf, size_t len)
{
	uint64_t deadline = t_deadline(ms);
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
			       { .fd = pid > 0 ? t_pidfd(pid) : -1, .events = POLLIN } };
	int rc;
	for (;;) {
		int left = t_ms_left(deadline);
		int n = left > 0 ? poll(p, 2, left) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		ssize_t got = recv(fd, buf, len - 1, MSG_DONTWAIT);
		if (got >= 0) {
			buf[got] = '\0';
			if (!want || strstr(buf, want)) {
				rc = 0;
				break;
			}
		} else if (p[1].revents) {
			rc = -ESRCH; /* ended, and said nothing more */
			break;
		}
	}
	if (p[1].fd >= 0)
		close(p[1].fd);
	return rc;
}
