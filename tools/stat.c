/* SPDX-License-Identifier: MIT */
/*
 * shmbus stat: topics' counters, readers and groups, refreshed like top. Rates are the
 * difference of two snapshots over the monotonic time between them, so a slow refresh
 * (a daemon slow to answer, a busy machine) does not inflate or deflate them.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli.h"

/* How long a refresh waits for the daemon to say how it is. */
#define PING_MS 200

struct topic_snap {
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
	int rc; /* < 0: could not be read; err says why */
	char err[512];
	shmbus_topic_opts_t opts;
	shmbus_topic_stats_t st;
	shmbus_reader_info_t *readers;
	unsigned nreaders;
	shmbus_group_info_t *groups;
	unsigned ngroups;
};

#define BRIDGE_MAX 256

struct snap {
	uint64_t mono_ns;
	uint64_t wall_ns;
	int daemon_rc; /* shmbus_daemon_ping()'s result */
	shmbus_daemon_info_t daemon;
	int bus_rc; /* shmbus_bus_stats()'s result: shared counters, no daemon needed */
	shmbus_bus_stats_t bus;
	int bridge_n; /* shmbus_bridge_stats()'s result (-ENOENT: no bridge ever ran) */
	shmbus_bridge_totals_t bridge;
	shmbus_bridge_info_t *mirrors; /* BRIDGE_MAX entries */
	struct topic_snap *topics;
	size_t n, cap;
};

static void snap_free(struct snap *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->topics[i].readers);
		free(s->topics[i].groups);
	}
	free(s->topics);
	free(s->mirrors);
	memset(s, 0, sizeof(*s));
}

/* Read one topic into t. Returns 0, or the error (also kept in t). */
static int topic_read(shmbus_bus_t *bus, const char *name, struct topic_snap *t)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	int rc = shmbus_topic_info(bus, name, &t->opts);
	if (rc == 0)
		rc = shmbus_topic_stats(bus, name, &t->st);
	/* The slot counts bound what a snapshot returns, so one call with that room does. */
	if (rc == 0) {
		t->readers =
			calloc(t->opts.max_readers ? t->opts.max_readers : 1, sizeof(*t->readers));
		t->groups = calloc(t->opts.max_groups ? t->opts.max_groups : 1, sizeof(*t->groups));
		if (!t->readers || !t->groups)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		rc = shmbus_topic_readers(bus, name, t->readers, t->opts.max_readers);
		if (rc >= 0) {
			t->nreaders = (unsigned)rc < t->opts.max_readers ? (unsigned)rc :
									   t->opts.max_readers;
			rc = shmbus_topic_groups(bus, name, t->groups, t->opts.max_groups);
		}
		if (rc >= 0) {
			t->ngroups = (unsigned)rc < t->opts.max_groups ? (unsigned)rc :
									 t->opts.max_groups;
			rc = 0;
		}
	}
	if (rc < 0) {
		snprintf(t->err, sizeof(t->err), "%s",
			 rc == -ENOMEM ? "out of memory" : tool_topic_why(name, rc));
		free(t->readers);
		free(t->groups);
		t->readers = NULL;
		t->groups = NULL;
		t->nreaders = t->ngroups = 0;
	}
	t->rc = rc;
	return rc;
}

static struct topic_snap *snap_add(struct snap *s)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct topic_snap *nt = realloc(s->topics, cap * sizeof(*nt));
		if (!nt)
			return NULL;
		s->topics = nt;
		s->cap = cap;
	}
	return &s->topics[s->n++];
}

struct foreach_ctx {
	shmbus_bus_t *bus;
	struct snap *s;
};

static int add_listed(const char *name, void *arg)
{
	struct foreach_ctx *c = arg;
	struct topic_snap *t = snap_add(c->s);

	if (!t)
		return -ENOMEM;
	/* A topic removed since the directory was read is left out. */
	if (topic_read(c->bus, name, t) == -ENOENT)
		c->s->n--;
	return 0;
}

/*
 * Take a snapshot of the named topics, or of all topics when n is 0. Returns 0 or a
 * negative error of listing the bus (reported). Topics that cannot be read are kept,
 * with their error.
 */
static int snap_take(shmbus_bus_t *bus, char **names, int n, int ping, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	s->daemon_rc = -ENOENT;
	if (ping)
		s->daemon_rc = shmbus_daemon_ping(bus, PING_MS, &s->daemon);
	s->bus_rc = shmbus_bus_stats(bus, &s->bus);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	s->wall_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	s->mono_ns = tool_now_ns();
	/* The bridge's counters (shared memory too: no daemon needs to answer). */
	s->mirrors = calloc(BRIDGE_MAX, sizeof(*s->mirrors));
	s->bridge_n = s->mirrors ? shmbus_bridge_stats(bus, s->mirrors, BRIDGE_MAX, &s->bridge) :
				   -ENOMEM;
	if (s->bridge_n > BRIDGE_MAX)
		s->bridge_n = BRIDGE_MAX;
	if (n == 0) {
		struct foreach_ctx c = { bus, s };
		int rc = shmbus_topic_foreach(bus, add_listed, &c);
		/* The library's reason names the bus directory. */
		if (rc < 0)
			tool_fail("stat", rc, rc != -ENOMEM, "cannot list the topics");
		return rc < 0 ? rc : 0;
	}
	for (int i = 0; i < n; i++) {
		struct topic_snap *t = snap_add(s);
		if (!t) {
			tool_fail("stat", -ENOMEM, 0, "cannot take a snapshot");
			return -ENOMEM;
		}
		topic_read(bus, names[i], t);
	}
	return 0;
}

/* ---- rates ---- */

static const struct topic_snap *find_topic(const struct snap *s, const char *name)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (s->topics[i].rc == 0 && strcmp(s->topics[i].name, name) == 0)
			return &s->topics[i];
	return NULL;
}

/* Per-second rate of a counter between two snapshots; -1 when there is none (no earlier
 * snapshot, or the counter went back: the topic was removed and created again). */
static double rate(uint64_t now, uint64_t then, double secs)
{
	if (secs <= 0 || now < then)
		return -1;
	return (double)(now - then) / secs;
}

/* The same reader in the earlier snapshot: same slot, same process, same group. */
static const shmbus_reader_info_t *find_reader(const struct topic_snap *t,
					       const shmbus_reader_info_t *r)
{
	for (unsigned i = 0; t && i < t->nreaders; i++)
		if (t->readers[i].slot == r->slot && t->readers[i].pid == r->pid &&
		    strcmp(t->readers[i].group, r->group) == 0)
			return &t->readers[i];
	return NULL;
}

/* ---- JSON ---- */

static void json_rate(const char *key, double v)
{
	if (v < 0)
		printf("\"%s\": null", key);
	else
		printf("\"%s\": %.1f", key, v);
}

static const shmbus_bridge_info_t *find_mirror(const struct snap *s, const char *name,
					       const char *kind)
{
	for (int i = 0; s && i < s->bridge_n; i++)
		if (!strcmp(s->mirrors[i].name, name) && !strcmp(s->mirrors[i].kind, kind))
			return &s->mirrors[i];
	return NULL;
}

/* ", \"bridge\": {...}" or ", \"bridge\": null" when no bridge ever ran on the bus. */
static void print_bridge_json(const struct snap *s, const struct snap *prev, double secs)
{
	printf(", \"bridge\": ");
	if (s->bridge_n < 0) {
		printf("null");
		return;
	}
	const shmbus_bridge_totals_t *b = &s->bridge;
	printf("{\"pid\": %" PRId32 ", \"running\": %s, \"futex_wait\": %s, \"enters\": %" PRIu64
	       ", \"sqes\": %" PRIu64 ", \"cqes\": %" PRIu64 ", \"sqes_per_enter\": %.2f,\n   "
	       "\"mirrors\": [",
	       b->pid, b->running ? "true" : "false", b->futex_wait ? "true" : "false", b->enters,
	       b->sqes, b->cqes, b->enters ? (double)b->sqes / (double)b->enters : 0.0);
	for (int i = 0; i < s->bridge_n; i++) {
		const shmbus_bridge_info_t *m = &s->mirrors[i];
		const shmbus_bridge_info_t *pm = find_mirror(prev, m->name, m->kind);
		printf("%s\n    {\"name\": ", i ? "," : "");
		tool_json_str(stdout, m->name);
		printf(", \"kind\": ");
		tool_json_str(stdout, m->kind);
		printf(", \"peer\": ");
		tool_json_str(stdout, m->peer);
		printf(", \"up\": %s, \"topics\": %" PRIu32 ", \"sent\": %" PRIu64
		       ", \"confirmed\": %" PRIu64 ", \"lag\": %" PRIu64
		       ", \"reconnects\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"lost\": %" PRIu64
		       ", \"duplicates\": %" PRIu64 ", \"bytes\": %" PRIu64
		       ", \"dropped\": %" PRIu64 ", ",
		       m->up ? "true" : "false", m->topics, m->sent, m->confirmed, m->lag,
		       m->reconnects, m->errors, m->lost, m->duplicates, m->bytes, m->dropped);
		json_rate("msgs_per_s", pm ? rate(m->confirmed, pm->confirmed, secs) : -1);
		printf(", \"last_error\": ");
		tool_json_str(stdout, m->last_error);
		printf("}");
	}
	printf("%s]}", s->bridge_n ? "\n   " : "");
}

static void print_json(shmbus_bus_t *bus, const struct snap *s, const struct snap *prev,
		       int interval_ms)
{
	double secs = prev ? (double)(s->mono_ns - prev->mono_ns) / 1e9 : 0;
	char ts[40];

	printf("{\"bus\": ");
	tool_json_str(stdout, shmbus_bus_path(bus));
	printf(", \"time\": \"%s\", \"interval_ms\": %d, \"daemon\": ",
	       tool_fmt_time(ts, s->wall_ns), prev ? interval_ms : 0);
	if (s->daemon_rc == 0) {
		printf("{\"pid\": %" PRId32 ", \"clients\": %" PRIu32 ", \"uptime_ms\": %" PRIu64
		       ", \"crashes\": %" PRIu64 ", \"version\": ",
		       s->daemon.pid, s->daemon.clients, s->daemon.uptime_ms, s->daemon.crashes);
		/* Fixed arrays filled by another process: bound them before printing. */
		char v[sizeof(s->daemon.version) + 1], c[sizeof(s->daemon.config) + 1];
		snprintf(v, sizeof(v), "%.*s", (int)sizeof(s->daemon.version), s->daemon.version);
		snprintf(c, sizeof(c), "%.*s", (int)sizeof(s->daemon.config), s->daemon.config);
		tool_json_str(stdout, v);
		printf(", \"config\": ");
		tool_json_str(stdout, c);
		printf("}");
	} else {
		printf("null");
	}
	printf(", \"bus_counters\": ");
	if (s->bus_rc == 0) {
		const shmbus_bus_stats_t *b = &s->bus;
		printf("{\"topics\": %" PRIu32 ", \"clients\": %" PRIu32 ", \"watched\": %" PRIu32
		       ", \"daemon_pid\": %" PRId32 ", \"daemon_running\": %s, \"published\": %" PRIu64
		       ", \"bytes\": %" PRIu64 ", \"aborted\": %" PRIu64 ", \"crashes\": %" PRIu64
		       ", \"readers_reclaimed\": %" PRIu64 ", \"publishers_reclaimed\": %" PRIu64 "}",
		       b->topics, b->clients, b->watched, b->daemon_pid,
		       b->daemon_running ? "true" : "false", b->published, b->bytes, b->aborted,
		       b->crashes, b->readers_reclaimed, b->publishers_reclaimed);
	} else {
		printf("null");
	}
	print_bridge_json(s, prev, secs);
	printf(", \"topics\": [");
	for (size_t i = 0; i < s->n; i++) {
		const struct topic_snap *t = &s->topics[i];
		const struct topic_snap *p = find_topic(prev, t->name);
		printf("%s\n  {\"name\": ", i ? "," : "");
		tool_json_str(stdout, t->name);
		if (t->rc < 0) {
			printf(", \"error\": ");
			tool_json_str(stdout, t->err);
			printf("}");
			continue;
		}
		const shmbus_topic_stats_t *st = &t->st;
		printf(", \"policy\": \"%s\", \"capacity\": %" PRIu64 ", \"max_message\": %" PRIu32
		       ", \"max_readers\": %" PRIu32 ", \"max_groups\": %" PRIu32
		       ", \"max_publishers\": %" PRIu32 ", \"max_pending\": %" PRIu32
		       ",\n   \"published\": %" PRIu64 ", \"bytes\": %" PRIu64
		       ", \"aborted\": %" PRIu64 ", \"backpressure_waits\": %" PRIu64
		       ", \"wakeups\": %" PRIu64 ", \"readers_reclaimed\": %" PRIu64
		       ", \"tail\": %" PRIu64 ", \"next_seq\": %" PRIu64
		       ", \"publishers\": %" PRIu32 ",\n   ",
		       tool_policy_name(t->opts.policy), t->opts.capacity, t->opts.max_message,
		       t->opts.max_readers, t->opts.max_groups, t->opts.max_publishers,
		       t->opts.max_pending, st->published, st->bytes, st->aborted,
		       st->backpressure_waits, st->wakeups, st->readers_reclaimed, st->tail,
		       st->next_seq, st->publishers);
		json_rate("msgs_per_s", p ? rate(st->published, p->st.published, secs) : -1);
		printf(", ");
		json_rate("bytes_per_s", p ? rate(st->bytes, p->st.bytes, secs) : -1);
		printf(",\n   \"readers\": [");
		for (unsigned j = 0; j < t->nreaders; j++) {
			const shmbus_reader_info_t *r = &t->readers[j];
			const shmbus_reader_info_t *pr = find_reader(p, r);
			printf("%s\n    {\"slot\": %" PRIu32 ", \"pid\": %" PRId32
			       ", \"alive\": %s, \"group\": ",
			       j ? "," : "", r->slot, r->pid,
			       tool_pid_gone(r->pid) ? "false" : "true");
			if (r->group[0])
				tool_json_str(stdout, r->group);
			else
				printf("null");
			printf(", \"consumed\": %" PRIu64 ", \"lag_msgs\": %" PRIu64
			       ", \"lag_bytes\": %" PRIu64 ", \"lost\": %" PRIu64 ", ",
			       r->consumed, r->lag_msgs, r->lag_bytes, r->lost);
			json_rate("msgs_per_s", pr ? rate(r->consumed, pr->consumed, secs) : -1);
			printf("}");
		}
		printf("%s],\n   \"groups\": [", t->nreaders ? "\n   " : "");
		for (unsigned j = 0; j < t->ngroups; j++) {
			const shmbus_group_info_t *g = &t->groups[j];
			printf("%s\n    {\"name\": ", j ? "," : "");
			tool_json_str(stdout, g->name);
			printf(", \"members\": %" PRIu32 ", \"cursor\": %" PRIu64
			       ", \"lag_msgs\": %" PRIu64 ", \"lag_bytes\": %" PRIu64
			       ", \"lost\": %" PRIu64 ", \"abandoned\": %" PRIu64
			       ",\n     \"pending\": %" PRIu32 ", \"redelivered\": %" PRIu64
			       ", \"dead_lettered\": %" PRIu64 ", \"oldest_pending_ms\": %" PRIu64
			       ", \"max_deliver\": %" PRIu32 ", \"ack_wait_ms\": %" PRIu32
			       ", \"dead_letter\": ",
			       g->members, g->cursor, g->lag_msgs, g->lag_bytes, g->lost,
			       g->abandoned, g->pending, g->redelivered, g->dead_lettered,
			       g->oldest_pending_ms, g->max_deliver, g->ack_wait_ms);
			/* A fixed array another process filled: bounded before printing. */
			char dl[sizeof(g->dead_letter)];
			snprintf(dl, sizeof(dl), "%.*s", (int)sizeof(dl) - 1, g->dead_letter);
			if (dl[0])
				tool_json_str(stdout, dl);
			else
				printf("null");
			printf("}");
		}
		printf("%s]}", t->ngroups ? "\n   " : "");
	}
	printf("%s]}\n", s->n ? "\n" : "");
}

/* ---- the table ---- */

static const char *fmt_rate_or_dash(char buf[TOOL_UNIT_LEN], double v, int bytes)
{
	if (v < 0)
		return "-";
	return bytes ? tool_fmt_byte_rate(buf, v) : tool_fmt_msg_rate(buf, v);
}

static void print_daemon(const struct snap *s)
{
	if (s->daemon_rc == 0) {
		uint64_t up = s->daemon.uptime_ms / 1000;
		printf("daemon: pid %" PRId32 ", %" PRIu32 " %s, up %" PRIu64 "h%02" PRIu64
		       "m%02" PRIu64 "s, %" PRIu64 " %s cleaned up\n",
		       s->daemon.pid, s->daemon.clients,
		       tool_plural(s->daemon.clients, "client", "clients"), up / 3600, up / 60 % 60,
		       up % 60, s->daemon.crashes,
		       tool_plural(s->daemon.crashes, "crash", "crashes"));
	} else if (s->daemon_rc == -ENOENT) {
		printf("daemon: none (the bus runs embedded)\n");
	} else {
		printf("daemon: %s\n", strerror(-s->daemon_rc));
	}
	if (s->bus_rc == 0) {
		const shmbus_bus_stats_t *b = &s->bus;
		printf("bus: %" PRIu32 " %s, %" PRIu32 " %s registered, %" PRIu64
		       " %s cleaned up (%" PRIu64 " reader %s, %" PRIu64
		       " publisher %s reclaimed), %" PRIu64 " %s aborted\n",
		       b->topics, tool_plural(b->topics, "topic", "topics"), b->clients,
		       tool_plural(b->clients, "client", "clients"), b->crashes,
		       tool_plural(b->crashes, "crash", "crashes"), b->readers_reclaimed,
		       tool_plural(b->readers_reclaimed, "slot", "slots"), b->publishers_reclaimed,
		       tool_plural(b->publishers_reclaimed, "slot", "slots"), b->aborted,
		       tool_plural(b->aborted, "message", "messages"));
	}
}

static void print_bridge(const struct snap *s, const struct snap *prev, double secs)
{
	if (s->bridge_n < 0)
		return;
	const shmbus_bridge_totals_t *b = &s->bridge;
	char u[8][TOOL_UNIT_LEN];
	printf("\nbridge: %s (pid %" PRId32 "), %.1f SQEs per io_uring_enter, idle topics %s\n",
	       b->running ? "running" : "not running", b->pid,
	       b->enters ? (double)b->sqes / (double)b->enters : 0.0,
	       b->futex_wait ? "waited on in io_uring (futex)" : "polled");
	if (!s->bridge_n)
		return;
	int w = 6;
	for (int i = 0; i < s->bridge_n; i++) {
		int len = (int)strlen(s->mirrors[i].name);
		if (len > w)
			w = len;
	}
	printf("%-*s %-8s %-4s %6s %14s %9s %9s %7s %6s %6s %6s %6s  %s\n", w, "BRIDGE", "KIND",
	       "UP", "TOPICS", "RATE", "SENT", "CONFIRMED", "LAG", "RECONN", "ERRORS", "LOST",
	       "DUPS", "PEER");
	for (int i = 0; i < s->bridge_n; i++) {
		const shmbus_bridge_info_t *m = &s->mirrors[i];
		const shmbus_bridge_info_t *pm = find_mirror(prev, m->name, m->kind);
		printf("%-*s %-8s %-4s %6" PRIu32 " %14s %9s %9s %7s %6s %6s %6s %6s  %s\n", w,
		       m->name, m->kind, m->up ? "up" : "DOWN", m->topics,
		       fmt_rate_or_dash(u[0], pm ? rate(m->confirmed, pm->confirmed, secs) : -1, 0),
		       tool_fmt_count(u[1], m->sent), tool_fmt_count(u[2], m->confirmed),
		       tool_fmt_count(u[3], m->lag), tool_fmt_count(u[4], m->reconnects),
		       tool_fmt_count(u[5], m->errors), tool_fmt_count(u[6], m->lost),
		       tool_fmt_count(u[7], m->duplicates), m->peer);
		if (!m->up && m->last_error[0])
			printf("%-*s   last error: %s\n", w, "", m->last_error);
		if (m->dropped)
			printf("%-*s   clients cut off for being slow: %" PRIu64 "\n", w, "",
			       m->dropped);
	}
}

/* An age in milliseconds, as a person reads it: "850 ms", "12.3 s", "4m05s", "2h07m". */
static const char *fmt_age(char buf[TOOL_UNIT_LEN], uint64_t ms)
{
	if (ms < 1000)
		snprintf(buf, TOOL_UNIT_LEN, "%" PRIu64 " ms", ms);
	else if (ms < 60000)
		snprintf(buf, TOOL_UNIT_LEN, "%.1f s", (double)ms / 1000);
	else if (ms < 3600000)
		snprintf(buf, TOOL_UNIT_LEN, "%" PRIu64 "m%02" PRIu64 "s", ms / 60000,
			 ms / 1000 % 60);
	else
		snprintf(buf, TOOL_UNIT_LEN, "%" PRIu64 "h%02" PRIu64 "m", ms / 3600000,
			 ms / 60000 % 60);
	return buf;
}

/*
 * A group's acknowledgements, on a line of their own under it (the group line has no room
 * left in 80 columns), only for a group that has seen any: pending now (and the oldest's
 * age), redelivered, dead-lettered (and where to).
 */
static void print_acks(const shmbus_group_info_t *g)
{
	char u[4][TOOL_UNIT_LEN], dl[sizeof(g->dead_letter)];

	if (!g->pending && !g->redelivered && !g->dead_lettered)
		return;
	snprintf(dl, sizeof(dl), "%.*s", (int)sizeof(dl) - 1, g->dead_letter);
	printf("    acks: %s pending", tool_fmt_count(u[0], g->pending));
	if (g->pending)
		printf(" (oldest %s)", fmt_age(u[1], g->oldest_pending_ms));
	printf(", %s redelivered, %s dead-lettered", tool_fmt_count(u[2], g->redelivered),
	       tool_fmt_count(u[3], g->dead_lettered));
	if (dl[0])
		printf(" to %s\n", dl);
	else
		printf(" (dropped: no dead-letter topic)\n");
}

static void print_table(shmbus_bus_t *bus, const struct snap *s, const struct snap *prev,
			int interval_ms)
{
	double secs = prev ? (double)(s->mono_ns - prev->mono_ns) / 1e9 : 0;
	/* One buffer per formatted field of a line: they are all printed by one printf. */
	char ts[40], u[8][TOOL_UNIT_LEN];
	int w = 5; /* strlen("TOPIC") */

	for (size_t i = 0; i < s->n; i++) {
		int len = (int)strlen(s->topics[i].name);
		if (len > w)
			w = len;
	}
	printf("shmbus stat  %s  %s  every %.1f s\n", shmbus_bus_path(bus),
	       tool_fmt_time(ts, s->wall_ns), interval_ms / 1000.0);
	print_daemon(s);
	print_bridge(s, prev, secs);
	if (s->n == 0) {
		printf("\nno topics\n");
		return;
	}
	printf("\n%-*s %14s %12s %9s %7s %7s %7s %7s %4s %4s\n", w, "TOPIC", "RATE", "BYTES/S",
	       "PUBLISHED", "BYTES", "ABORTED", "WAITS", "WAKEUPS", "PUBS", "RDRS");
	for (size_t i = 0; i < s->n; i++) {
		const struct topic_snap *t = &s->topics[i];
		const struct topic_snap *p = find_topic(prev, t->name);
		const shmbus_topic_stats_t *st = &t->st;
		if (t->rc < 0) {
			printf("%-*s error: %s\n", w, t->name, t->err);
			continue;
		}
		printf("%-*s %14s %12s %9s %7s %7s %7s %7s %4" PRIu32 " %4u\n", w, t->name,
		       fmt_rate_or_dash(u[0], p ? rate(st->published, p->st.published, secs) : -1,
					0),
		       fmt_rate_or_dash(u[1], p ? rate(st->bytes, p->st.bytes, secs) : -1, 1),
		       tool_fmt_count(u[2], st->published), tool_fmt_size(u[3], st->bytes),
		       tool_fmt_count(u[4], st->aborted),
		       tool_fmt_count(u[5], st->backpressure_waits),
		       tool_fmt_count(u[6], st->wakeups), st->publishers, t->nreaders);
		if (t->nreaders)
			printf("  %-14s %-16s %9s %14s %9s %9s %7s\n", "PID", "GROUP", "CONSUMED",
			       "RATE", "LAG MSGS", "LAG BYTES", "LOST");
		for (unsigned j = 0; j < t->nreaders; j++) {
			const shmbus_reader_info_t *r = &t->readers[j];
			const shmbus_reader_info_t *pr = find_reader(p, r);
			/* A reader whose process is gone holds its slot until it is reclaimed. */
			char pid[24];
			snprintf(pid, sizeof(pid), "%" PRId32 "%s", r->pid,
				 tool_pid_gone(r->pid) ? " (dead)" : "");
			printf("  %-14s %-16s %9s %14s %9s %9s %7s\n", pid,
			       r->group[0] ? r->group : "-", tool_fmt_count(u[0], r->consumed),
			       fmt_rate_or_dash(u[1],
						pr ? rate(r->consumed, pr->consumed, secs) : -1, 0),
			       r->group[0] ? "-" : tool_fmt_count(u[2], r->lag_msgs),
			       r->group[0] ? "-" : tool_fmt_size(u[3], r->lag_bytes),
			       tool_fmt_count(u[4], r->lost));
		}
		if (t->ngroups)
			printf("  %-31s %9s %14s %9s %9s %7s\n", "GROUP", "MEMBERS", "ABANDONED",
			       "LAG MSGS", "LAG BYTES", "LOST");
		for (unsigned j = 0; j < t->ngroups; j++) {
			const shmbus_group_info_t *g = &t->groups[j];
			printf("  %-31s %9" PRIu32 " %14s %9s %9s %7s\n", g->name, g->members,
			       tool_fmt_count(u[0], g->abandoned),
			       tool_fmt_count(u[1], g->lag_msgs), tool_fmt_size(u[2], g->lag_bytes),
			       tool_fmt_count(u[3], g->lost));
			print_acks(g);
		}
	}
}

static const char stat_help[] =
	"usage: shmbus stat [TOPIC...] [options]\n"
	"\n"
	"Show each topic (all of the bus when none is named), refreshed like top: message\n"
	"and byte rates, totals, aborted reservations, backpressure waits and wake-ups; under\n"
	"it each reader (pid, \"(dead)\" after it when that process is gone but still holds\n"
	"the slot, group or -, consumed, rate, lag in messages and bytes, lost) and each\n"
	"group (members, abandoned, lag, lost; under a group whose members acknowledge,\n"
	"\"acks:\" messages pending and the oldest one's age, redelivered, dead-lettered\n"
	"and to which topic). When shmbusd runs a bridge, each mirror, import and the\n"
	"WebSocket listener too (up, sent, confirmed, lag, reconnects, errors, lost,\n"
	"duplicates skipped) and its io_uring batching. Ctrl-C stops it.\n"
	"The bus must exist; stat creates nothing and does not register with shmbusd.\n"
	"\n"
	"  -i, --interval MS   time between refreshes, and between the two snapshots of\n"
	"                      --json (default 1000; with --json, 0 means no rates)\n"
	"  -n, --count N       stop after N refreshes\n"
	"      --json          print one JSON snapshot of the topics, their readers (\"alive\":\n"
	"                      false when the process is gone) and groups (with their\n"
	"                      acks and options: pending, redelivered, dead_lettered,\n"
	"                      oldest_pending_ms, max_deliver, ack_wait_ms, dead_letter)\n"
	"                      and the daemon\n"
	"                      (null when it does not answer within 200 ms), then exit;\n"
	"                      exit 1 if a topic could not be read\n"
	"  -h, --help          show this help\n";

int tool_stat(int argc, char **argv)
{
	enum { OPT_JSON = 256 };
	static const struct option longopts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int interval_ms = 1000, json = 0, opt;
	uint64_t count = 0;

	while ((opt = getopt_long(argc, argv, ":i:n:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			if (tool_parse_ms(optarg, 0, &interval_ms))
				return tool_usage("stat", "bad --interval '%s' (milliseconds)",
						  optarg);
			break;
		case 'n':
			if (tool_parse_u64(optarg, UINT64_MAX, &count) || count == 0)
				return tool_usage("stat", "bad --count '%s' (a number from 1)",
						  optarg);
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			fputs(stat_help, stdout);
			return TOOL_OK;
		default:
			return tool_bad_option("stat", opt, argv);
		}
	}
	if (!json && interval_ms == 0)
		return tool_usage("stat", "--interval 0 is only for --json");
	char **names = argv + optind;
	int nnames = argc - optind;
	for (int i = 0; i < nnames; i++)
		if (tool_check_topic("stat", names[i], 1))
			return TOOL_USAGE;

	shmbus_bus_t *bus;
	int ret = tool_bus_open("stat", SHMBUS_BUS_LOOK, &bus);
	if (ret)
		return ret;
	ret = TOOL_FAILED;
	struct snap prev = { 0 }, cur = { 0 };
	if (snap_take(bus, names, nnames, json && interval_ms == 0, &prev) < 0)
		goto out;
	/* Topics named on the command line must be there from the start. */
	for (size_t i = 0; i < prev.n && nnames; i++) {
		if (prev.topics[i].rc < 0) {
			fprintf(stderr, "shmbus stat: topic '%s': %s\n", prev.topics[i].name,
				prev.topics[i].err);
			goto out;
		}
	}
	if (json) {
		const struct snap *shown = &prev, *before = NULL;
		if (interval_ms > 0) {
			tool_sleep_ms(interval_ms);
			if (snap_take(bus, names, nnames, 1, &cur) < 0)
				goto out;
			shown = &cur;
			before = &prev;
		}
		print_json(bus, shown, before, interval_ms);
		ret = TOOL_OK;
		for (size_t i = 0; i < shown->n; i++) {
			if (shown->topics[i].rc < 0) {
				fprintf(stderr, "shmbus stat: topic '%s': %s\n",
					shown->topics[i].name, shown->topics[i].err);
				ret = TOOL_FAILED;
			}
		}
		goto out;
	}

	int tty = isatty(STDOUT_FILENO);
	tool_catch_signals();
	ret = TOOL_OK;
	for (uint64_t shown = 0; !count || shown < count; shown++) {
		tool_sleep_ms(interval_ms);
		if (tool_stop)
			break;
		if (snap_take(bus, names, nnames, 1, &cur) < 0) {
			ret = TOOL_FAILED;
			break;
		}
		/* Home and clear only on a terminal; a file or pipe gets refreshes in a row. */
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (shown)
			putchar('\n');
		print_table(bus, &cur, &prev, interval_ms);
		fflush(stdout);
		snap_free(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
	}
out:
	snap_free(&prev);
	snap_free(&cur);
	shmbus_bus_close(bus);
	return ret;
}
