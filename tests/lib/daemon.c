/* SPDX-License-Identifier: MIT */
/* tests/lib/daemon.c: a real shmbusd for a test, and its $sys.log events. */
#include "tests/lib/daemon.h"

#include <stdarg.h>

#include "tests/lib/internal.h"

/* The logs of the daemons this process started, shown at its exit if it failed. */
#define MAX_LOGS 4
#define LOG_TAIL 60
static char logs[MAX_LOGS][512];
static pid_t logs_owner;

static void remember_log(const char *path)
{
	if (logs_owner != getpid()) {
		memset(logs, 0, sizeof(logs));
		logs_owner = getpid();
	}
	for (int i = 0; i < MAX_LOGS; i++) {
		if (!strcmp(logs[i], path))
			return;
		if (!logs[i][0]) {
			snprintf(logs[i], sizeof(logs[i]), "%s", path);
			return;
		}
	}
}

static void show_tail(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	fprintf(stderr, "---- %s (last %d lines)\n", path, LOG_TAIL);
	char *lines[LOG_TAIL] = { 0 }, line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		free(lines[n % LOG_TAIL]);
		lines[n % LOG_TAIL] = strdup(line);
		n++;
	}
	for (int i = n > LOG_TAIL ? n - LOG_TAIL : 0; i < n; i++) {
		fputs(lines[i % LOG_TAIL] ? lines[i % LOG_TAIL] : "", stderr);
		free(lines[i % LOG_TAIL]);
	}
	fclose(f);
}

void t_daemon_at_exit_(int status)
{
	if (logs_owner != getpid() || status == 0 || status == T_SKIP)
		return;
	for (int i = 0; i < MAX_LOGS && logs[i][0]; i++)
		show_tail(logs[i]);
}

void t_daemon_init(struct t_daemon *d, const char *exe)
{
	memset(d, 0, sizeof(*d));
	d->exe = exe;
	snprintf(d->conf, sizeof(d->conf), "%s/shmbusd.conf", t_dir());
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", t_dir());
}

void t_daemon_config(struct t_daemon *d, const char *fmt, ...)
{
	char text[16384];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	CHECK(n >= 0 && (size_t)n < sizeof(text));
	CHECK(d->conf[0] != '\0');
	t_write(d->conf, "%s", text);
}

pid_t t_daemon_spawn(struct t_daemon *d)
{
	CHECK(d->pid == 0);
	char *argv[] = { (char *)d->exe, (char *)"--foreground", (char *)"--config", d->conf,
			 NULL };
	if (!d->conf[0])
		argv[2] = NULL;
	struct t_cmd c = {
		.argv = argv, .env = d->env, .out = d->log, .append = 1, .err_to_out = 1
	};
	remember_log(d->log);
	d->pid = t_spawn(&c);
	return d->pid;
}

void t_daemon_ready(struct t_daemon *d, shmbus_bus_t *bus, shmbus_daemon_info_t *info)
{
	uint64_t deadline = t_deadline(T_WAIT_MS);
	shmbus_daemon_info_t i;
	int rc;
	for (;;) {
		int st;
		if (t_wait(d->pid, 0, &st) == 0) {
			fprintf(stderr, "shmbusd %d exited at start (wait status %#x); log: %s\n",
				(int)d->pid, st, d->log);
			d->pid = 0;
			exit(1);
		}
		rc = shmbus_daemon_ping(bus, 200, &i);
		if (rc == 0 && i.pid == d->pid)
			break;
		if (t_now_ns() > deadline) {
			fprintf(stderr, "shmbusd %d did not answer within %d ms: %d %s; log: %s\n",
				(int)d->pid, T_WAIT_MS, rc, shmbus_errmsg(), d->log);
			exit(1);
		}
		usleep(2000); /* poll interval */
	}
	if (info)
		*info = i;
}

pid_t t_daemon_start(struct t_daemon *d, shmbus_bus_t *bus)
{
	t_daemon_spawn(d);
	t_daemon_ready(d, bus, NULL);
	return d->pid;
}

int t_daemon_stop(struct t_daemon *d)
{
	int st;
	CHECK(d->pid > 0 && kill(d->pid, SIGTERM) == 0);
	if (t_wait(d->pid, T_WAIT_MS, &st) < 0) {
		fprintf(stderr, "shmbusd %d did not stop within %d ms of SIGTERM\n", (int)d->pid,
			T_WAIT_MS);
		exit(1);
	}
	d->pid = 0;
	return st;
}

void t_daemon_kill(struct t_daemon *d)
{
	CHECK(d->pid > 0);
	t_kill(d->pid);
	d->pid = 0;
}

int t_daemon_alive(struct t_daemon *d)
{
	int st;
	if (d->pid <= 0)
		return 0;
	if (t_wait(d->pid, 0, &st) < 0)
		return 1;
	fprintf(stderr, "shmbusd %d is gone: %s %d\n", (int)d->pid,
		WIFSIGNALED(st) ? "killed by signal" : "exited with",
		WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	d->pid = 0;
	return 0;
}

/* ---- $sys.log ---------------------------------------------------------------------------- */

shmbus_sub_t *t_events_open(shmbus_bus_t *bus)
{
	shmbus_sub_t *s;
	CHECK_RC(shmbus_sub_open(&s, bus, T_LOG_TOPIC, NULL, SHMBUS_SUB_EARLIEST), 0);
	return s;
}

/* Skip one JSON string starting at *p == '"'. Returns the character after it, or NULL. */
static const char *json_skip_str(const char *p)
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
static int json_event_ok(const char *s, size_t len)
{
	if (len < 2 || strlen(s) != len || s[0] != '{' || s[len - 1] != '}')
		return 0;
	if (strncmp(s, "{\"ts\":\"", 7) || !strstr(s, ",\"event\":\""))
		return 0;
	const char *p = s + 1;
	for (;;) {
		p = json_skip_str(p);
		if (!p || *p++ != ':')
			return 0;
		if (*p == '"') {
			p = json_skip_str(p);
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

int t_json_get(const char *obj, const char *key, char *out, size_t len)
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
		end = json_skip_str(p);
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

int t_event_next(shmbus_sub_t *log, uint64_t deadline, char *buf, size_t len, char *name,
		 size_t nlen)
{
	for (;;) {
		shmbus_msg_t m;
		int rc = shmbus_recv(log, &m, t_ms_left(deadline));
		if (rc == -EINTR)
			continue;
		if (rc == -EAGAIN)
			return -ETIMEDOUT;
		CHECK_RC(rc, 0);
		CHECK(m.type == 1);
		CHECK(m.len < len);
		memcpy(buf, m.data, m.len);
		buf[m.len] = '\0';
		if (!json_event_ok(buf, m.len)) {
			fprintf(stderr, "not a JSON event object: %s\n", buf);
			exit(1);
		}
		CHECK(t_json_get(buf, "event", name, nlen) == 0);
		return 0;
	}
}

int t_event_wait(shmbus_sub_t *log, const char *name, char *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = t_deadline(timeout_ms);
	char ev[64];
	int skipped = 0;
	while (t_event_next(log, deadline, buf, len, ev, sizeof(ev)) == 0) {
		if (!strcmp(ev, name))
			return 0;
		fprintf(stderr, "  (event seen while waiting for %s: %s)\n", name, buf);
		skipped++;
	}
	fprintf(stderr, "no '%s' event within %d ms (%d others seen)\n", name, timeout_ms, skipped);
	return -ETIMEDOUT;
}

int t_event_find(shmbus_sub_t *log, char *buf, size_t len, int timeout_ms,
		 const char *const *needles)
{
	uint64_t deadline = t_deadline(timeout_ms);
	char name[64];
	while (t_event_next(log, deadline, buf, len, name, sizeof(name)) == 0) {
		int all = 1;
		for (const char *const *s = needles; *s && all; s++)
			all = strstr(buf, *s) != NULL;
		if (all)
			return 0;
		if (getenv("T_DEBUG"))
			fprintf(stderr, "(skipped event: %s)\n", buf);
	}
	return -ETIMEDOUT;
}
