/* SPDX-License-Identifier: MIT */
/* Helpers shared by the verbs of the shmbus tool (see cli.h). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cli.h"

const char *tool_bus_name;
volatile sig_atomic_t tool_stop;

/* ---- command line ---- */

int tool_usage(const char *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "shmbus %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'shmbus %s --help'.\n", verb);
	return TOOL_USAGE;
}

int tool_bad_option(const char *verb, int ret, char **argv)
{
	extern int optind, optopt;
	const char *arg = optind > 0 ? argv[optind - 1] : "?";

	if (ret == ':')
		return tool_usage(verb, "option '%s' needs a value", arg);
	/* An unknown short option inside a cluster such as -xy: name the letter. */
	if (optopt && arg[0] == '-' && arg[1] != '-')
		return tool_usage(verb, "unknown option '-%c'", optopt);
	return tool_usage(verb, "unknown option '%s'", arg);
}

int tool_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

int tool_parse_size(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned shift = 0;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	default:
		return -1;
	}
	if (shift && *++end)
		return -1;
	if (v > (UINT64_MAX >> shift) || (v << shift) > max)
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int tool_parse_ms(const char *s, int allow_forever, int *out)
{
	uint64_t v;

	if (allow_forever && s && strcmp(s, "-1") == 0) {
		*out = -1;
		return 0;
	}
	if (tool_parse_u64(s, INT32_MAX, &v))
		return -1;
	*out = (int)v;
	return 0;
}

int tool_check_topic(const char *verb, const char *name, int system)
{
	if (shmbus_topic_name_check(name, system) < 0)
		return tool_usage(verb, "%s", tool_why(-EINVAL));
	return 0;
}

/* ---- errors ---- */

const char *tool_why(int rc)
{
	const char *m = shmbus_errmsg();

	return *m ? m : strerror(rc < 0 ? -rc : rc);
}

/* If s starts with prefix then name and then a quote, what follows the quote; else NULL. */
static const char *after_quoted(const char *s, const char *prefix, const char *name)
{
	size_t p = strlen(prefix), n = strlen(name);

	if (strncmp(s, prefix, p) || strncmp(s + p, name, n) || s[p + n] != '\'')
		return NULL;
	return s + p + n + 1;
}

const char *tool_topic_why(const char *name, int rc)
{
	const char *m = tool_why(rc);
	const char *rest = after_quoted(m, "topic '", name);

	if (!rest)
		rest = after_quoted(m, "topic name '", name);
	/* "topic 'x': why" and "topic 'x' does not exist": the reason is what follows. */
	if (rest && rest[0] == ':' && rest[1] == ' ')
		return rest + 2;
	if (rest && rest[0] == ' ' && rest[1] != '\0')
		return rest + 1;
	return m;
}

static void vfail(const char *verb, const char *why, const char *fmt, va_list ap)
{
	fprintf(stderr, "shmbus %s: ", verb);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, ": %s\n", why);
}

int tool_fail(const char *verb, int rc, int slow, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(verb, slow ? tool_why(rc) : strerror(rc < 0 ? -rc : rc), fmt, ap);
	va_end(ap);
	return TOOL_FAILED;
}

int tool_fail_topic(const char *verb, const char *topic, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(verb, tool_topic_why(topic, rc), fmt, ap);
	va_end(ap);
	return TOOL_FAILED;
}

int tool_bus_failed(const char *verb, int rc)
{
	/* The library's message names the bus, its directory or SHMBUS_DIR already. */
	fprintf(stderr, "shmbus %s: %s\n", verb, tool_why(rc));
	/* A bus name or SHMBUS_DIR that can never be a bus is a malformed argument. */
	if (rc == -EINVAL) {
		fprintf(stderr, "Try 'shmbus --help'.\n");
		return TOOL_USAGE;
	}
	return TOOL_FAILED;
}

int tool_bus_open(const char *verb, int flags, shmbus_bus_t **bus)
{
	int rc = shmbus_bus_open_flags(bus, tool_bus_name, flags);

	return rc < 0 ? tool_bus_failed(verb, rc) : TOOL_OK;
}

/* ---- processes ---- */

int tool_pid_gone(int32_t pid)
{
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

/* ---- units ---- */

const char *tool_fmt_size(char buf[TOOL_UNIT_LEN], uint64_t v)
{
	static const char units[] = "KMGTPE";
	unsigned u = 0;

	if (v < 1024) {
		snprintf(buf, TOOL_UNIT_LEN, "%" PRIu64, v);
		return buf;
	}
	while (u + 1 < sizeof(units) - 1 && v >> (10 * (u + 2)))
		u++;
	unsigned shift = 10 * (u + 1);
	if ((v & ((1ull << shift) - 1)) == 0)
		snprintf(buf, TOOL_UNIT_LEN, "%" PRIu64 "%c", v >> shift, units[u]);
	else
		snprintf(buf, TOOL_UNIT_LEN, "%.1f%c", (double)v / (double)(1ull << shift),
			 units[u]);
	return buf;
}

/* v with a decimal prefix and three significant digits ("1.23 M", "45.6 k", "812 "). */
static void fmt_decimal(char *buf, size_t n, double v, const char *unit)
{
	static const char *const prefixes[] = { "", "k", "M", "G", "T", "P", "E" };
	unsigned p = 0;

	if (v < 0)
		v = 0;
	while (v >= 999.5 && p + 1 < sizeof(prefixes) / sizeof(prefixes[0])) {
		v /= 1000;
		p++;
	}
	/* Three significant digits once scaled: 1.23, 12.3, 123. */
	int decimals = p == 0 || v >= 99.95 ? 0 : v >= 9.995 ? 1 : 2;
	snprintf(buf, n, "%.*f %s%s", decimals, v, prefixes[p], unit);
}

const char *tool_fmt_count(char buf[TOOL_UNIT_LEN], uint64_t v)
{
	if (v < 10000) {
		snprintf(buf, TOOL_UNIT_LEN, "%" PRIu64, v);
		return buf;
	}
	fmt_decimal(buf, TOOL_UNIT_LEN, (double)v, "");
	/* "12.3 k" -> "12.3k": a count reads better without the space. */
	char *sp = strchr(buf, ' ');
	if (sp)
		memmove(sp, sp + 1, strlen(sp));
	return buf;
}

const char *tool_fmt_msg_rate(char buf[TOOL_UNIT_LEN], double per_s)
{
	fmt_decimal(buf, TOOL_UNIT_LEN, per_s, "msg/s");
	return buf;
}

const char *tool_fmt_byte_rate(char buf[TOOL_UNIT_LEN], double per_s)
{
	fmt_decimal(buf, TOOL_UNIT_LEN, per_s, "B/s");
	return buf;
}

const char *tool_plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

const char *tool_policy_name(uint32_t policy)
{
	switch (policy) {
	case SHMBUS_BLOCK:
		return "block";
	case SHMBUS_OVERWRITE:
		return "overwrite";
	default:
		return "unknown";
	}
}

/* ---- time ---- */

uint64_t tool_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *tool_fmt_time(char buf[40], uint64_t realtime_ns)
{
	time_t secs = (time_t)(realtime_ns / 1000000000ull);
	unsigned us = (unsigned)(realtime_ns % 1000000000ull / 1000);
	struct tm tm;

	if (!gmtime_r(&secs, &tm)) {
		snprintf(buf, 40, "?");
		return buf;
	}
	size_t n = strftime(buf, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 40 - n, ".%06uZ", us);
	return buf;
}

void tool_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	/* A caught signal ends the sleep (EINTR) and sets tool_stop; other wake-ups resume. */
	while (!tool_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void on_signal(int sig)
{
	(void)sig;
	tool_stop = 1;
}

void tool_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a futex sleep in shmbus_recv() returns -EINTR */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ---- text ---- */

size_t tool_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0; /* a continuation byte, or a lead byte of an overlong or too large */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* ---- JSON ---- */

void tool_json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	fputc('"', f);
	for (const unsigned char *end = p + n; p < end; p++) {
		if (*p >= 0x80) {
			size_t len = tool_utf8_seq(p, (size_t)(end - p));
			if (len) {
				fwrite(p, 1, len, f);
				p += len - 1;
			} else {
				fputs("\\ufffd", f);
			}
			continue;
		}
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}
