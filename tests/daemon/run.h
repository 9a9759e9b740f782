/* SPDX-License-Identifier: MIT */
/*
 * Shared by the daemon tests: run a real shmbusd (fork + exec) on a private bus, wait
 * until it answers, stop it, and read the events it publishes on $sys.log (one flat JSON
 * object per message, which is parsed here, not just searched).
 *
 * A daemon started here dies with the test: it gets PR_SET_PDEATHSIG, and an exit
 * handler (run before the private directory is removed) kills it if a check failed.
 */
#ifndef SHMBUS_TESTS_DAEMON_RUN_H
#define SHMBUS_TESTS_DAEMON_RUN_H

#include "tests/lib/test.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define DT_LOG_TOPIC "$sys.log"

/* How long to wait for something that must happen (a process to start or end, an
 * event): generous, so a loaded machine or a sanitizer build is never a failure. Bounds
 * that are themselves checked (a reaping within 100 ms, a ping within 1 s) are separate. */
#define DT_DEADLINE_MS 30000

static pid_t dt_pid_;	/* the daemon running now, 0 if none */
static pid_t dt_owner_; /* the test process (not a forked child) */

static void dt_kill_(void)
{
	if (dt_pid_ > 0 && getpid() == dt_owner_) {
		kill(dt_pid_, SIGKILL);
		waitpid(dt_pid_, NULL, 0);
		dt_pid_ = 0;
	}
}

/* Milliseconds since t0 (t_now_ns() values). */
static inline double dt_ms_since(uint64_t t0)
{
	return (double)(t_now_ns() - t0) / 1e6;
}

static inline void dt_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Write a whole file through a temporary and a rename: a reader never sees half of it. */
static inline __attribute__((format(printf, 2, 3))) void dt_write(const char *path, const char *fmt,
								  ...)
{
	char tmp[512];
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

/* Read a whole (small) file into buf, NUL-terminated. Returns its length. */
static inline size_t dt_read(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	CHECK(f != NULL);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n;
}

/* fork() a child that dies with the test (PR_SET_PDEATHSIG). Returns as fork() does. */
static inline pid_t dt_fork(void)
{
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
	}
	return pid;
}

/*
 * Run argv[0] with argv, stdout and stderr to the files out and err (NULL: inherited).
 * The child dies with the test. Returns its pid.
 */
static inline pid_t dt_spawn(char *const argv[], const char *out, const char *err)
{
	pid_t pid = dt_fork();
	if (pid == 0) {
		const char *paths[2] = { out, err };
		for (int i = 0; i < 2; i++) {
			if (!paths[i])
				continue;
			int fd = open(paths[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			if (fd < 0 || dup2(fd, 1 + i) < 0)
				_exit(127);
		}
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* A pidfd for pid (any process, not only a child). Fails the test if there is none. */
static inline int dt_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0) {
		fprintf(stderr, "pidfd_open(%d): %s\n", (int)pid, strerror(errno));
		exit(1);
	}
	return fd;
}

/* Wait up to timeout_ms for the process behind pidfd to end (the pidfd polls readable
 * then). Returns 0, or -ETIMEDOUT. */
static inline int dt_pidfd_wait(int pidfd, int timeout_ms)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		uint64_t now = t_now_ns();
		int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
		struct pollfd p = { .fd = pidfd, .events = POLLIN };
		int rc = poll(&p, 1, left);
		if (rc < 0 && errno == EINTR)
			continue;
		CHECK(rc >= 0);
		return rc == 1 ? 0 : -ETIMEDOUT;
	}
}

/* Wait up to timeout_ms for the child pid to exit. Returns 0 with *status (reaped), or
 * -ETIMEDOUT. */
static inline int dt_wait(pid_t pid, int timeout_ms, int *status)
{
	int fd = dt_pidfd(pid);
	int rc = dt_pidfd_wait(fd, timeout_ms);
	close(fd);
	if (rc == 0)
		CHECK(waitpid(pid, status, 0) == pid);
	return rc;
}

/* Is the daemon still running (not exited, not killed)? Reaps it if it is not. */
static inline int dt_alive(pid_t pid)
{
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);
	if (r == pid) {
		fprintf(stderr, "shmbusd %d is gone: %s %d\n", (int)pid,
			WIFSIGNALED(st) ? "killed by signal" : "exited with",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		if (pid == dt_pid_)
			dt_pid_ = 0;
	}
	return r == 0;
}

/* Start `shmbusd --foreground --config conf` (conf NULL: no --config). */
static inline pid_t dt_start(const char *exe, const char *conf)
{
	static int registered;
	CHECK(dt_pid_ == 0);
	if (!registered) {
		dt_owner_ = getpid();
		atexit(dt_kill_);
		registered = 1;
	}
	char *argv[] = { (char *)exe, (char *)"--foreground", (char *)"--config", (char *)conf,
			 NULL };
	if (!conf)
		argv[2] = NULL;
	dt_pid_ = dt_spawn(argv, NULL, NULL);
	return dt_pid_;
}

/*
 * Wait until the daemon pid answers a ping on bus (the answer naming pid), at most
 * timeout_ms. Fails the test if the daemon exits meanwhile or never answers.
 */
static inline void dt_ready(shmbus_bus_t *bus, pid_t pid, int timeout_ms,
			    shmbus_daemon_info_t *info)
{
	uint64_t t0 = t_now_ns();
	int rc;
	for (;;) {
		CHECK(dt_alive(pid));
		rc = shmbus_daemon_ping(bus, 200, info);
		if (rc == 0 && info->pid == pid)
			return;
		if (dt_ms_since(t0) > timeout_ms)
			break;
		dt_sleep_ms(5);
	}
	fprintf(stderr, "shmbusd %d did not answer within %d ms: %d %s\n", (int)pid, timeout_ms, rc,
		shmbus_errmsg());
	exit(1);
}

/* SIGTERM the daemon and wait (at most timeout_ms) for it. Returns its wait status. */
static inline int dt_stop(pid_t pid, int timeout_ms)
{
	int st = 0;
	CHECK(kill(pid, SIGTERM) == 0);
	if (dt_wait(pid, timeout_ms, &st) < 0) {
		fprintf(stderr, "shmbusd %d did not stop within %d ms of SIGTERM\n", (int)pid,
			timeout_ms);
		exit(1);
	}
	if (pid == dt_pid_)
		dt_pid_ = 0;
	return st;
}

/* ---- $sys.log ------------------------------------------------------------------------ */

/* Skip one JSON string starting at *p == '"'. Returns the character after it, or NULL. */
static inline const char *dt_json_skip_str(const char *p)
{
	if (*p != '"')
		return NULL;
	for (p++; *p && *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
	}
	return *p == '"' ? p + 1 : NULL;
}

/*
 * Is s (len bytes, no NUL inside) one flat JSON object whose members are strings,
 * integers or booleans, the first two being "ts" and "event" (strings)? The daemon's
 * events are exactly that.
 */
static inline int dt_json_event_ok(const char *s, size_t len)
{
	if (len < 2 || strlen(s) != len || s[0] != '{' || s[len - 1] != '}')
		return 0;
	if (strncmp(s, "{\"ts\":\"", 7) || !strstr(s, ",\"event\":\""))
		return 0;
	const char *p = s + 1;
	for (;;) {
		p = dt_json_skip_str(p);
		if (!p || *p++ != ':')
			return 0;
		if (*p == '"') {
			p = dt_json_skip_str(p);
			if (!p)
				return 0;
		} else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
			p += *p == 't' ? 4 : 5;
		} else {
			if (*p == '-')
				p++;
			if (*p < '0' || *p > '9')
				return 0;
			while (*p >= '0' && *p <= '9')
				p++;
		}
		if (*p == '}')
			return p + 1 == s + len;
		if (*p++ != ',')
			return 0;
	}
}

/*
 * The raw value of member key of a flat JSON object (a string without its quotes, escapes
 * kept), into out. Returns 0, or -ENOENT.
 */
static inline int dt_json_get(const char *obj, const char *key, char *out, size_t len)
{
	char pat[80];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = obj;
	/* A member name follows '{' or ','; a match elsewhere is inside a string. */
	while ((p = strstr(p, pat)) && p[-1] != '{' && p[-1] != ',')
		p++;
	if (!p)
		return -ENOENT;
	p += strlen(pat);
	const char *end;
	if (*p == '"') {
		end = dt_json_skip_str(p);
		if (!end)
			return -ENOENT;
		p++;
		end--;
	} else {
		end = p + strcspn(p, ",}");
	}
	snprintf(out, len, "%.*s", (int)(end - p), p);
	return 0;
}

/*
 * Read the next event from sub into buf (its "event" member into name), waiting until
 * deadline (t_now_ns() time). An event must be a well-formed JSON object of type 1, or
 * the test fails. Returns 0, or -ETIMEDOUT.
 */
static inline int dt_next_event(shmbus_sub_t *sub, uint64_t deadline, char *buf, size_t len,
				char *name, size_t nlen)
{
	for (;;) {
		uint64_t now = t_now_ns();
		int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, left);
		if (rc == -EINTR)
			continue;
		if (rc == -EAGAIN)
			return -ETIMEDOUT;
		CHECK_RC(rc, 0);
		CHECK(m.type == 1);
		CHECK(m.len < len);
		memcpy(buf, m.data, m.len);
		buf[m.len] = '\0';
		if (!dt_json_event_ok(buf, m.len)) {
			fprintf(stderr, "not a JSON event object: %s\n", buf);
			exit(1);
		}
		CHECK(dt_json_get(buf, "event", name, nlen) == 0);
		return 0;
	}
}

/*
 * Read events from sub until one named name comes (its text into buf), at most
 * timeout_ms. Returns 0, or -ETIMEDOUT (after printing the events skipped).
 */
static inline int dt_wait_event(shmbus_sub_t *sub, const char *name, char *buf, size_t len,
				int timeout_ms)
{
	uint64_t deadline = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
	char ev[64];
	int skipped = 0;
	while (dt_next_event(sub, deadline, buf, len, ev, sizeof(ev)) == 0) {
		if (!strcmp(ev, name))
			return 0;
		fprintf(stderr, "  (event seen while waiting for %s: %s)\n", name, buf);
		skipped++;
	}
	fprintf(stderr, "no '%s' event within %d ms (%d others seen)\n", name, timeout_ms, skipped);
	return -ETIMEDOUT;
}

#endif
