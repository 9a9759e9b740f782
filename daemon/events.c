/* SPDX-License-Identifier: MIT */
/*
 * The bus's event log: the topic $sys.log (overwrite policy: a slow watcher never holds
 * the daemon back), one JSON object per message, type 1. Each event also goes to stderr
 * (the journal, under systemd), or, detached, to the log file (else nowhere): a daemon
 * started from a terminal does not write to it once it is ready.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <sys/mman.h>
#include <sys/stat.h>

#include "daemon/guard.h"
#include "daemon/shmbusd.h"

#define LOG_TOPIC "$sys.log"
#define LOG_TYPE 1u

/* Where event lines go besides $sys.log. Read by the bridge thread too; a detached
 * daemon's log is replaced by dup2() onto this same number, never closed under it. */
static int events_fd = 2;

void events_output(int fd)
{
	__atomic_store_n(&events_fd, fd, __ATOMIC_RELAXED);
}

int events_reopen(struct daemon *d)
{
	if (d->log_fd < 0)
		return 0;
	const char *path = d->cfg.log_file[0] ? d->cfg.log_file : "/dev/null";
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0 || dup2(fd, d->log_fd) < 0 || dup2(fd, 2) < 0) {
		char esc[2 * PATH_MAX], why[256];
		json_str(why, sizeof(why), strerror(errno));
		if (fd >= 0)
			close(fd);
		event(d, "log_failed", "\"file\":\"%s\",\"error\":\"%s\"",
		      json_str(esc, sizeof(esc), path), why);
		return -1;
	}
	close(fd);
	return 0;
}

const char *events_whoami(struct daemon *d, char *buf, size_t len)
{
	char dir[2 * sizeof(d->bus_dir)], cfg[2 * sizeof(d->cfg.path)];
	snprintf(buf, len, "\"pid\":%d,\"bus\":\"%s\",\"dir\":\"%s\",\"config\":\"%s\"",
		 (int)getpid(), d->cfg.bus, json_str(dir, sizeof(dir), d->bus_dir),
		 json_str(cfg, sizeof(cfg), d->cfg.path));
	return buf;
}

/* Create (if missing) and open $sys.log, and publish what waited. Inside a guard: a
 * client may truncate the file meanwhile. */
static int log_open(struct daemon *d)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = d->cfg.log_capacity;
	o.max_message = 4096;
	o.policy = SHMBUS_OVERWRITE;
	o.flags = SHMBUS_TOPIC_SYSTEM;
	int rc = shmbus_topic_create(d->bus, LOG_TOPIC, &o);
	if (rc == 0) {
		/* Ours: the bus's group and mode (its watchers take a reader slot in it). */
		topic_own(d, LOG_TOPIC);
	} else if (rc == -EEXIST) {
		/* Made by another configuration: use it as it is. */
		rc = 0;
	}
	if (rc < 0) {
		fprintf(stderr, "shmbusd: cannot create %s: %s\n", LOG_TOPIC, shmbus_errmsg());
		return -1;
	}
	rc = shmbus_pub_open(&d->log, d->bus, LOG_TOPIC);
	if (rc < 0) {
		fprintf(stderr, "shmbusd: cannot publish to %s: %s\n", LOG_TOPIC, shmbus_errmsg());
		return -1;
	}
	struct stat sb;
	char path[sizeof(d->bus_dir) + 32];
	snprintf(path, sizeof(path), "%s/%s.topic", d->bus_dir, LOG_TOPIC);
	d->log_ino = stat(path, &sb) == 0 ? sb.st_ino : 0;
	while (d->npending) {
		char *m = d->pending[0];
		/* Off the list before the publish: a fault in it must not see it twice. */
		memmove(d->pending, d->pending + 1, --d->npending * sizeof(d->pending[0]));
		if (m)
			shmbus_publish(d->log, m, strlen(m), LOG_TYPE);
		free(m);
	}
	return 0;
}

/* The $sys.log publisher, abandoned after a fault in its mapping: the mapping is
 * removed without a look into the file (the library's close would fault again) and the
 * handle kept, never used again (a few hundred bytes each time $sys.log is truncated:
 * only the library could free them, and reaching into its handle is for bus/ alone). */
static void log_drop(struct daemon *d, void *addr)
{
	shmbus_pub_t *p = d->log;
	d->log = NULL;
	if (!p)
		return;
	guard_unmap(addr, d->bus_dir);
	void *nn = realloc(d->dropped, (d->ndropped + 1) * sizeof(*d->dropped));
	if (nn) {
		d->dropped = nn;
		d->dropped[d->ndropped++] = p;
	}
}

/* Faulted while opening or publishing on $sys.log: someone shrank the file under us.
 * Drop it, remove it if it is still the file we had, and make a new one. The reason is
 * logged after the events that waited for the new file. */
static void log_damaged(struct daemon *d, void *addr, const char *during)
{
	static int again;
	char path[sizeof(d->bus_dir) + 32], line[512];
	snprintf(path, sizeof(path), "%s/%s.topic", d->bus_dir, LOG_TOPIC);
	ino_t ino = d->log_ino;
	log_drop(d, addr);
	struct stat sb;
	off_t size = -1;
	if (stat(path, &sb) == 0) {
		size = sb.st_size;
		if (sb.st_ino == ino || !ino)
			unlink(path);
	}
	snprintf(line, sizeof(line),
		 "\"topic\":\"%s\",\"during\":\"%s\",\"error\":\"SIGBUS: the file "
		 "was truncated (now %lld bytes)\",\"action\":\"recreated\"",
		 "$sys.log", during, (long long)size);
	if (again++ == 0) {
		/* Once: a second fault while recreating leaves $sys.log closed (events wait,
		 * and housekeeping tries again). */
		events_open(d);
	}
	event(d, "log_damaged", "%s", line);
	again--;
}

int events_open(struct daemon *d)
{
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		log_damaged(d, g.addr, "open");
		return d->log ? 0 : -1;
	}
	int rc = log_open(d);
	guard_leave(&g);
	return rc;
}

void events_close(struct daemon *d)
{
	for (size_t i = 0; i < d->npending; i++)
		free(d->pending[i]);
	d->npending = 0;
	if (d->log)
		shmbus_pub_close(d->log);
	d->log = NULL;
}

const char *json_str(char *buf, size_t len, const char *s)
{
	size_t o = 0;
	for (; *s && o + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(buf + o, len - o, "\\u%04x", ch);
		} else {
			buf[o++] = (char)ch;
		}
	}
	buf[o] = '\0';
	return buf;
}

size_t event_vline(char *msg, size_t len, const char *name, const char *fmt, va_list ap)
{
	char body[3072];
	vsnprintf(body, sizeof(body), fmt, ap);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	int n = snprintf(msg, len, "{\"ts\":\"%s.%06ldZ\",\"event\":\"%s\"%s%s}", when,
			 ts.tv_nsec / 1000, name, body[0] ? "," : "", body);
	if (n < 0 || (size_t)n >= len)
		n = (int)strlen(msg);
	/* One write: lines from the two threads never interleave in a log file (O_APPEND). */
	struct iovec iov[3] = { { (void *)"shmbusd: ", 9 },
				{ msg, (size_t)n },
				{ (void *)"\n", 1 } };
	if (writev(__atomic_load_n(&events_fd, __ATOMIC_RELAXED), iov, 3) < 0) {
		/* Nowhere to say so: the event still goes to $sys.log. */
	}
	return (size_t)n;
}

void event(struct daemon *d, const char *name, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	size_t n = event_vline(msg, sizeof(msg), name, fmt, ap);
	va_end(ap);
	if (!d->log) {
		/* Before $sys.log is open (topics made at start): keep it for later. */
		if (d->npending < sizeof(d->pending) / sizeof(d->pending[0]))
			d->pending[d->npending++] = strdup(msg);
		return;
	}
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		/* Keep this event for the new $sys.log, after the reason. */
		if (d->npending < sizeof(d->pending) / sizeof(d->pending[0]))
			d->pending[d->npending++] = strdup(msg);
		log_damaged(d, g.addr, "publish");
		return;
	}
	int rc = shmbus_publish(d->log, msg, n, LOG_TYPE);
	guard_leave(&g);
	if (rc < 0)
		fprintf(stderr, "shmbusd: cannot publish to %s: %s\n", LOG_TOPIC, strerror(-rc));
}
