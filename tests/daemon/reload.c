/* SPDX-License-Identifier: MIT */
/*
 * shmbusd reloads its configuration on SIGHUP, and says what it does on $sys.log.
 *
 * The daemon starts with topic a; a subscriber on $sys.log (from the earliest message)
 * must see "start" (pid, bus, dir, config) and "topic_created" for a (capacity, policy),
 * each a well-formed JSON object. The config gains topic b, SIGHUP: "topic_created" b
 * then "reload" (topics: 2) are logged, and b exists by then, with its options. The config
 * gets a syntax error, SIGHUP: "reload_failed" names FILE:LINE, the daemon keeps running,
 * answers a ping, topics a and b still work. A good file after that is applied again.
 * SIGTERM: exit status 0, and "stop" with pid, bus, dir and config, as "start" has.
 *
 * Event checks are independent: each failure is reported and the rest still runs.
 *
 * usage: daemon_reload SHMBUSD
 */
#include "tests/lib/daemon.h"

static const char *dir;
static shmbus_bus_t *bus;
static shmbus_sub_t *log_sub;
static struct t_daemon shmbusd;
static pid_t dpid;

/* Does the event ev have member key with (raw) value want? */
static int field_is(const char *ev, const char *key, const char *want)
{
	char v[1024];
	return t_json_get(ev, key, v, sizeof(v)) == 0 && !strcmp(v, want);
}

static void expect_field(const char *ev, const char *key, const char *want)
{
	char v[1024] = "";
	if (t_json_get(ev, key, v, sizeof(v)) < 0 || strcmp(v, want))
		FAIL("event %s: wanted \"%s\": %s, got %s", ev, key, want, v);
}

/* Read events until "reload" or "reload_failed" (at most timeout_ms); every
 * "topic_created" on the way is appended to created (names, space-separated). */
static int until_reload(char *ev, size_t len, int timeout_ms, char *created, size_t clen)
{
	uint64_t deadline = t_deadline(timeout_ms);
	created[0] = '\0';
	for (;;) {
		char name[64], topic[200];
		if (t_event_next(log_sub, deadline, ev, len, name, sizeof(name)) < 0)
			return -ETIMEDOUT;
		if (!strcmp(name, "topic_created") &&
		    t_json_get(ev, "topic", topic, sizeof(topic)) == 0) {
			size_t o = strlen(created);
			snprintf(created + o, clen - o, "%s%s", o ? " " : "", topic);
		}
		if (!strcmp(name, "reload") || !strcmp(name, "reload_failed"))
			return 0;
	}
}

/* Write the daemon's config: bus t in the private directory, then topics (so that a line
 * of topics is line 3 + its line in topics). */
static void config(const char *topics)
{
	t_daemon_config(&shmbusd, "[bus]\nname = t\ndir = %s\n%s", dir, topics);
}

/* Publish one message on topic and receive it back on a fresh subscriber. */
static void topic_works(const char *topic, const char *text)
{
	shmbus_sub_t *sub;
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_sub_open(&sub, bus, topic, NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, topic), 0);
	CHECK_RC(shmbus_publish(pub, text, strlen(text), 7), 0);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
	CHECK(m.len == strlen(text) && m.type == 7 && !memcmp(m.data, text, m.len));
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
}

static void ping_ok(const char *when)
{
	shmbus_daemon_info_t info;
	uint64_t t0 = t_now_ns();
	int rc = shmbus_daemon_ping(bus, 1000, &info);
	if (rc != 0 || info.pid != dpid || t_ms_since(t0) > 1000) {
		fprintf(stderr, "%s: ping: %d (%s)\n", when, rc, shmbus_errmsg());
		exit(1);
	}
	if (!t_daemon_alive(&shmbusd)) {
		fprintf(stderr, "%s: the daemon is gone\n", when);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s SHMBUSD\n", argv[0]);
		return 1;
	}
	dir = t_private_dir("daemon_reload");
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	unsetenv("SHMBUSD_CONFIG");
	char bus_dir[300], ev[4200], want[600], created[600];
	snprintf(bus_dir, sizeof(bus_dir), "%s/t", dir);
	t_daemon_init(&shmbusd, argv[1]);
	const char *conf = shmbusd.conf;
	config("[topic a]\n"
	       "capacity = 64K\n"
	       "policy = block\n");
	dpid = t_daemon_spawn(&shmbusd);
	CHECK_RC(shmbus_bus_open(&bus, "t"), 0);
	t_daemon_ready(&shmbusd, bus, NULL);
	log_sub = t_events_open(bus);
	shmbus_topic_opts_t o;
	CHECK_RC(shmbus_topic_info(bus, "a", &o), 0);
	CHECK(o.capacity == 65536 && o.policy == SHMBUS_BLOCK);

	/* ---- start: "start" and "topic_created" a, in either order ---- */
	{
		int got_start = 0, got_a = 0;
		uint64_t deadline = t_deadline(T_WAIT_MS);
		char name[64], v[64];
		while ((!got_start || !got_a) &&
		       t_event_next(log_sub, deadline, ev, sizeof(ev), name, sizeof(name)) == 0) {
			CHECK(t_json_get(ev, "ts", v, sizeof(v)) == 0 && strlen(v) == 27 &&
			      v[26] == 'Z');
			if (!strcmp(name, "start")) {
				got_start = 1;
				snprintf(v, sizeof(v), "%d", (int)dpid);
				expect_field(ev, "pid", v);
				expect_field(ev, "bus", "t");
				expect_field(ev, "dir", bus_dir);
				expect_field(ev, "config", conf);
			} else if (!strcmp(name, "topic_created") && field_is(ev, "topic", "a")) {
				got_a = 1;
				expect_field(ev, "capacity", "65536");
				expect_field(ev, "policy", "block");
			} else {
				printf("  other event at start: %s\n", ev);
			}
		}
		if (!got_start)
			FAIL("no \"start\" event on %s within %d ms", T_LOG_TOPIC, T_WAIT_MS);
		if (!got_a)
			FAIL("no \"topic_created\" event for topic a (made at start) on %s within "
			     "%d ms",
			     T_LOG_TOPIC, T_WAIT_MS);
	}

	/* ---- a good reload adds topic b ---- */
	config("[topic a]\n"
	       "capacity = 64K\n"
	       "policy = block\n"
	       "\n"
	       "[topic b]\n"
	       "capacity = 128K\n"
	       "policy = overwrite\n");
	CHECK(kill(dpid, SIGHUP) == 0);
	uint64_t t0 = t_now_ns();
	/* The daemon logs "reload" once the new topics exist. */
	if (until_reload(ev, sizeof(ev), T_WAIT_MS, created, sizeof(created)) < 0) {
		FAIL("no \"reload\" event within %d ms of SIGHUP", T_WAIT_MS);
	} else {
		printf("reload logged %.1f ms after SIGHUP\n", t_ms_since(t0));
		if (!field_is(ev, "event", "reload"))
			FAIL("a good reload logged %s", ev);
		expect_field(ev, "topics", "2");
		if (strcmp(created, "b"))
			FAIL("before \"reload\", topic_created for '%s', wanted 'b'", created);
	}
	CHECK_RC(shmbus_topic_info(bus, "b", &o), 0);
	CHECK(o.capacity == 131072 && o.policy == SHMBUS_OVERWRITE);
	ping_ok("after a good reload");

	/* ---- a bad file is refused; the daemon runs on ---- */
	config("[topic a]\n"
	       "capacity = 64K\n"
	       "policy block\n"
	       "[topic c]\n"
	       "capacity = 64K\n");
	CHECK(kill(dpid, SIGHUP) == 0);
	if (until_reload(ev, sizeof(ev), T_WAIT_MS, created, sizeof(created)) < 0) {
		FAIL("no \"reload_failed\" event within %d ms of SIGHUP with a syntax error",
		     T_WAIT_MS);
	} else {
		char err[2048] = "";
		t_json_get(ev, "error", err, sizeof(err));
		snprintf(want, sizeof(want), "%s:6: syntax error", conf);
		if (!field_is(ev, "event", "reload_failed") || strncmp(err, want, strlen(want)))
			FAIL("wanted \"reload_failed\" with \"%s...\", got %s", want, ev);
		if (created[0])
			FAIL("a refused reload created topics: %s", created);
	}
	ping_ok("after a failed reload");
	CHECK_RC(shmbus_topic_info(bus, "c", &o), -ENOENT);
	topic_works("a", "a still works after a failed reload");
	topic_works("b", "b too");

	/* ---- and a good file after that is applied again ---- */
	config("[topic a]\n"
	       "capacity = 64K\n"
	       "[topic b]\n"
	       "capacity = 128K\n"
	       "policy = overwrite\n"
	       "[topic c]\n"
	       "capacity = 64K\n");
	CHECK(kill(dpid, SIGHUP) == 0);
	if (until_reload(ev, sizeof(ev), T_WAIT_MS, created, sizeof(created)) < 0 ||
	    !field_is(ev, "event", "reload") || !field_is(ev, "topics", "3") ||
	    strcmp(created, "c"))
		FAIL("the reload after a failed one: %s (created '%s')", ev, created);
	CHECK_RC(shmbus_topic_info(bus, "c", &o), 0);
	topic_works("c", "c works");

	/* ---- SIGTERM ---- */
	int st = t_daemon_stop(&shmbusd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("SIGTERM: wait status 0x%x, wanted exit 0", st);
	if (t_event_wait(log_sub, "stop", ev, sizeof(ev), T_WAIT_MS) < 0) {
		FAIL("no \"stop\" event");
	} else {
		char v[32];
		snprintf(v, sizeof(v), "%d", (int)dpid);
		expect_field(ev, "pid", v);
		expect_field(ev, "bus", "t");
		expect_field(ev, "dir", bus_dir);
		expect_field(ev, "config", conf);
	}
	shmbus_sub_close(log_sub);
	shmbus_bus_close(bus);
	if (t_failures) {
		fprintf(stderr, "%d check(s) failed\n", t_failures);
		return 1;
	}
	return 0;
}
