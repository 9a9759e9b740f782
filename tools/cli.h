/* SPDX-License-Identifier: MIT */
/*
 * What the verbs of the shmbus tool share: exit codes, argument parsing, error reports,
 * human units, JSON output and signal handling. Uses the public API only.
 */
#ifndef SHMBUS_TOOLS_CLI_H
#define SHMBUS_TOOLS_CLI_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <shmbus.h>

/* Exit codes of every verb (documented in `shmbus --help`). */
enum {
	TOOL_OK = 0,	 /* done */
	TOOL_FAILED = 1, /* the bus, a topic or the system refused: a message says why */
	TOOL_USAGE = 2,	 /* the command line could not be understood */
};

/* The --bus given before the verb, or NULL for $SHMBUS_BUS / "default". */
extern const char *tool_bus_name;

/* Set by SIGINT/SIGTERM once tool_catch_signals() ran. */
extern volatile sig_atomic_t tool_stop;

/* One verb: argv[0] is the verb's name; returns the exit code. */
typedef int (*tool_verb_fn)(int argc, char **argv);

int tool_topics(int argc, char **argv);
int tool_stat(int argc, char **argv);
int tool_tail(int argc, char **argv);
int tool_pub(int argc, char **argv);
int tool_create(int argc, char **argv);
int tool_rm(int argc, char **argv);
int tool_doctor(int argc, char **argv);

/* ---- command line ---- */

/*
 * Report a command-line problem of verb (printf-style) with a pointer to its --help, on
 * stderr. Returns TOOL_USAGE, so that a verb can `return tool_usage(...)`.
 */
int tool_usage(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Report the option getopt_long() just refused (ret '?' or ':', with an optstring that
 * starts with ':'), then return TOOL_USAGE.
 */
int tool_bad_option(const char *verb, int ret, char **argv);

/* A non-negative decimal integer up to max. Returns 0 or -1. */
int tool_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* A size: a decimal integer with an optional K, M, G or T suffix (powers of 1024). */
int tool_parse_size(const char *s, uint64_t max, uint64_t *out);

/* Milliseconds: a non-negative integer up to INT32_MAX, or -1 (forever) if allow_forever. */
int tool_parse_ms(const char *s, int allow_forever, int *out);

/*
 * Check a TOPIC argument of verb before anything is opened (shmbus_topic_name_check();
 * system: whether a "$sys." name may be given). Returns 0, or TOOL_USAGE with the
 * library's reason reported.
 */
int tool_check_topic(const char *verb, const char *name, int system);

/* ---- errors ---- */

/*
 * Report on stderr that verb failed to do what (printf-style): "shmbus VERB: WHAT: WHY".
 * WHY is shmbus_errmsg() when slow is nonzero and it says something, else strerror(-rc).
 * Returns TOOL_FAILED.
 */
int tool_fail(const char *verb, int rc, int slow, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * tool_fail() for a WHAT that names topic: WHY is tool_topic_why(topic, rc), so that the
 * topic is named once ("shmbus pub: cannot publish to topic 'x': does not exist (...)").
 */
int tool_fail_topic(const char *verb, const char *topic, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Why a slow-path call failed: shmbus_errmsg(), or strerror(-rc) if it is empty. */
const char *tool_why(int rc);

/*
 * The library's message about topic name without the words that name it ("topic 'NAME': ",
 * "topic name 'NAME': ", "topic 'NAME' " before "does not exist"...), for lines that name
 * the topic already; strerror(-rc) if there is no message.
 */
const char *tool_topic_why(const char *name, int rc);

/*
 * Open the bus (tool_bus_name) for verb, with flags: SHMBUS_BUS_LOOK for the verbs that
 * only look at it (nothing created, nothing registered with the daemon), else 0. Returns
 * 0; TOOL_USAGE for a malformed bus name or SHMBUS_DIR; TOOL_FAILED when the bus cannot
 * be opened (a looked-at bus that does not exist). Failures are reported, as
 * tool_bus_failed() does.
 */
int tool_bus_open(const char *verb, int flags, shmbus_bus_t **bus);

/* Report that opening the bus failed with rc, as verb. Returns TOOL_USAGE or TOOL_FAILED. */
int tool_bus_failed(const char *verb, int rc);

/* ---- processes ---- */

/*
 * Is the process pid known to be gone (kill(pid, 0) fails with ESRCH)? 0 while it runs,
 * or may run (pid <= 0, or another user's process). A slot whose owner is gone is stale:
 * `stat` marks it, `doctor` warns about it.
 */
int tool_pid_gone(int32_t pid);

/* ---- units ---- */

#define TOOL_UNIT_LEN 32

/* Bytes in powers of 1024, as a size is written on the command line: "64M", "1.5K", "512". */
const char *tool_fmt_size(char buf[TOOL_UNIT_LEN], uint64_t v);

/* A count with a decimal prefix when large: "9999", "12.3k", "4.56M". */
const char *tool_fmt_count(char buf[TOOL_UNIT_LEN], uint64_t v);

/* A message rate: "0 msg/s", "812 msg/s", "1.2 Mmsg/s". */
const char *tool_fmt_msg_rate(char buf[TOOL_UNIT_LEN], double per_s);

/* A byte rate in decimal units: "512 B/s", "34.5 MB/s". */
const char *tool_fmt_byte_rate(char buf[TOOL_UNIT_LEN], double per_s);

/* The word for n things: one when n is 1, else many ("1 topic", "0 topics"). */
const char *tool_plural(uint64_t n, const char *one, const char *many);

/* "topic's policy" as a word. */
const char *tool_policy_name(uint32_t policy);

/* ---- time ---- */

uint64_t tool_now_ns(void);

/* ISO 8601 UTC with microseconds, "2024-05-01T12:34:56.123456Z", from ns since the epoch. */
const char *tool_fmt_time(char buf[40], uint64_t realtime_ns);

/* Sleep ms milliseconds or until tool_stop is set. */
void tool_sleep_ms(int ms);

/* Install handlers for SIGINT and SIGTERM that set tool_stop, without SA_RESTART, so a
 * sleep or a blocking call returns early. */
void tool_catch_signals(void);

/* ---- text ---- */

/*
 * The length (1..4) of the valid UTF-8 sequence that starts at p, of at most n bytes; 0 if
 * it is not one (overlong, surrogate, above U+10FFFF, cut short, or a stray byte).
 */
size_t tool_utf8_seq(const unsigned char *p, size_t n);

/* ---- JSON ---- */

/* Write s as a JSON string, quotes included; bytes that are not UTF-8 become U+FFFD. */
void tool_json_str(FILE *f, const char *s);

#endif /* SHMBUS_TOOLS_CLI_H */
