/* SPDX-License-Identifier: MIT */
/*
 * The daemon launcher: a real shmbusd (fork + exec of the one built here, `--foreground`)
 * on the test's private bus: its config, start, wait until it answers, stop, SIGKILL,
 * start again; and the events it publishes on $sys.log (one flat JSON object a message,
 * parsed here, not just searched).
 *
 * A daemon is a child of tests/lib/proc.h: it dies with the test. Its stdout and stderr
 * go to its log file (appended to across starts); when the test fails (exits with a
 * status other than 0 and 77), the last lines of each log are shown on stderr.
 */
#ifndef SHMBUS_TESTS_LIB_DAEMON_H
#define SHMBUS_TESTS_LIB_DAEMON_H

#include "tests/lib/proc.h"

#define T_LOG_TOPIC "$sys.log"

struct t_daemon {
	const char *exe;	/* shmbusd's path */
	char conf[512];		/* its --config; "" for none (the built-in defaults) */
	char log[512];		/* its stdout and stderr */
	const char *const *env; /* more environment for it (as struct t_cmd's), or NULL */
	pid_t pid;		/* the daemon running now, or 0 */
};

/* A daemon exe (not started) with config t_dir()/shmbusd.conf and log t_dir()/daemon.log. */
void t_daemon_init(struct t_daemon *d, const char *exe);

/* Write its config file (the whole text, atomically: a SIGHUP never reads half of it). */
void t_daemon_config(struct t_daemon *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Run it; return at once (its pid). */
pid_t t_daemon_spawn(struct t_daemon *d);

/*
 * Wait until it answers a ping on bus (the answer naming its pid), at most T_WAIT_MS; the
 * answer into *info (NULL: not wanted). Fails the test if it exits meanwhile or never
 * answers.
 */
void t_daemon_ready(struct t_daemon *d, shmbus_bus_t *bus, shmbus_daemon_info_t *info);

/* t_daemon_spawn, then t_daemon_ready. Returns its pid. After a t_daemon_stop or a
 * t_daemon_kill, this starts it again (a restart) with the same config and log. */
pid_t t_daemon_start(struct t_daemon *d, shmbus_bus_t *bus);

/* SIGTERM, and wait for it (at most T_WAIT_MS, or the test fails). Returns its wait
 * status. */
int t_daemon_stop(struct t_daemon *d);

/* SIGKILL, and reap it. */
void t_daemon_kill(struct t_daemon *d);

/* Is it still running? If not, says how it ended on stderr and reaps it. */
int t_daemon_alive(struct t_daemon *d);

/* ---- $sys.log ---------------------------------------------------------------------------- */

/* A subscriber on $sys.log from its earliest message. */
shmbus_sub_t *t_events_open(shmbus_bus_t *bus);

/*
 * Read the next event from log into buf (its "event" member into name), waiting until
 * deadline (a t_now_ns() time). An event must be a well-formed flat JSON object (strings,
 * integers, booleans; "ts" then "event" first) of type 1, or the test fails. Returns 0 or
 * -ETIMEDOUT.
 */
int t_event_next(shmbus_sub_t *log, uint64_t deadline, char *buf, size_t len, char *name,
		 size_t nlen);

/* Read events until one named name comes (its text into buf), at most timeout_ms. Returns
 * 0, or -ETIMEDOUT (after printing the events skipped). */
int t_event_wait(shmbus_sub_t *log, const char *name, char *buf, size_t len, int timeout_ms);

/* Read events until one contains every one of needles (NULL-terminated), at most
 * timeout_ms; its text into buf. Returns 0 or -ETIMEDOUT (T_DEBUG set: skipped ones
 * printed). */
int t_event_find(shmbus_sub_t *log, char *buf, size_t len, int timeout_ms,
		 const char *const *needles);

/* The raw value of member key of a flat JSON object (a string without its quotes, escapes
 * kept) into out. Returns 0, or -ENOENT. */
int t_json_get(const char *obj, const char *key, char *out, size_t len);

#endif
