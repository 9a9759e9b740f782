/* SPDX-License-Identifier: MIT */
/*
 * The Redis mirror's options against a real redis-server with a password and an ACL user:
 *  - AUTH with the default user's password (in the URL); an ACL user and password, and
 *    database 2 (SELECT); a wrong password: that mirror is down saying AUTH was refused,
 *    and the others are not disturbed;
 *  - mode = pubsub: a subscriber gets every message, in order, bytes intact;
 *  - an overwrite topic whose mirror cannot send (Redis paused): it is lapped, the loss is
 *    counted exactly (entries + lost = published), and what arrives is in order;
 *  - maxlen: the stream is trimmed (approximately) to its length;
 *  - a topic created after the start is mirrored (inotify); removed and made again (a new
 *    generation, seq from 0 again), its new entries follow the old ones with larger IDs.
 *  - `shmbus stat --json` shows every mirror with its state and counters;
 *  - idle, the daemon uses next to no CPU (its topics are waited on, not polled);
 *  - SIGHUP with a mirror added restarts the bridge: the new one gets the retained
 *    messages, the others go on without a duplicate; a bad section is refused.
 * usage: bridge_redis_modes PATH-TO-SHMBUSD PATH-TO-SHMBUS-TOOL
 */
#include <pthread.h>

#include "bridge_helpers.h"

static shmbus_bus_t *bus;
static struct bt_redis rs;
static char base_cfg[8192];
static struct t_daemon shmbusd;
static shmbus_sub_t *syslog;

/* Entries of key: IDs into ms[]/seq[], payload checked against (tag, seq). Returns n. */
static size_t read_stream(redisContext *c, const char *key, uint32_t tag, uint64_t *ms,
			  uint64_t *seq, size_t max)
{
	redisReply *r = bt_cmd(c, "XRANGE %s - +", key);
	CHECK(r->type == REDIS_REPLY_ARRAY && r->elements <= max);
	uint8_t want[256];
	for (size_t i = 0; i < r->elements; i++) {
		redisReply *e = r->element[i];
		unsigned long long a, b;
		CHECK(sscanf(e->element[0]->str, "%llu-%llu", &a, &b) == 2);
		ms[i] = a;
		seq[i] = b;
		size_t len = bt_payload(want, tag, b);
		CHECK(e->element[1]->element[3]->len == len &&
		      !memcmp(e->element[1]->element[3]->str, want, len));
	}
	size_t n = r->elements;
	freeReplyObject(r);
	return n;
}

static void case_auth(redisContext *c)
{
	printf("AUTH, ACL user, SELECT, a wrong password\n");
	bt_publish(bus, "auth.t", 1, 0, 200, 3);
	bt_need_xlen(c, "good.auth.t", 200);
	redisContext *c2 = bt_client(&rs);
	freeReplyObject(bt_cmd(c2, "SELECT 2"));
	bt_need_xlen(c2, "acl.auth.t", 200);
	CHECK(bt_xlen(c, "acl.auth.t") == 0); /* in database 2 only */
	redisFree(c2);
	uint64_t ms[300], seq[300];
	CHECK(read_stream(c, "good.auth.t", 1, ms, seq, 300) == 200);
	/* Its first try has been answered: refused. */
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "bad", st, st.errors >= 1);
	CHECK(!st.up);
	printf("  good: 200, acl (db 2): 200; bad: down, \"%s\", %llu errors\n", st.last_error,
	       (unsigned long long)st.errors);
	CHECK(strstr(st.last_error, "AUTH refused") && strstr(st.last_error, "WRONGPASS"));
	CHECK(st.confirmed == 0 && st.errors >= 1);
	CHECK(bt_xlen(c, "bad.auth.t") == 0);
}

struct sub_arg {
	int n;
	int got;
	volatile int ready;
};

static void *subscriber(void *p)
{
	struct sub_arg *a = p;
	redisContext *c = bt_client(&rs);
	redisReply *r = bt_cmd(c, "SUBSCRIBE chan.ps.t");
	freeReplyObject(r);
	__atomic_store_n(&a->ready, 1, __ATOMIC_RELEASE);
	uint8_t want[256];
	for (a->got = 0; a->got < a->n; a->got++) {
		void *rv;
		CHECK(redisGetReply(c, &rv) == REDIS_OK);
		r = rv;
		CHECK(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
		CHECK(!strcmp(r->element[0]->str, "message"));
		size_t len = bt_payload(want, 2, (uint64_t)a->got);
		CHECK(r->element[2]->len == len && !memcmp(r->element[2]->str, want, len));
		freeReplyObject(r);
	}
	redisFree(c);
	return NULL;
}

static void case_pubsub(void)
{
	printf("mode = pubsub\n");
	struct sub_arg a = { .n = 2000 };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, subscriber, &a) == 0);
	/* Ready once Redis confirmed the SUBSCRIBE. */
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	while (!__atomic_load_n(&a.ready, __ATOMIC_ACQUIRE)) {
		if (t_now_ns() > deadline) {
			fprintf(stderr, "no SUBSCRIBE confirmation within %d ms\n", BT_DEADLINE_MS);
			exit(1);
		}
		usleep(1000);
	}
	bt_publish(bus, "ps.t", 2, 0, 2000, 3);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(a.got == 2000);
	/* The subscriber may have had the last message before the bridge had its reply. */
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "ps", st, st.confirmed >= 2000);
	CHECK(st.confirmed == 2000 && st.sent == 2000);
	printf("  the subscriber got all 2000, in order, bytes intact\n");
}

static void case_overwrite(redisContext *c)
{
	printf("overwrite topic, mirror held up: lapped, loss counted\n");
	/* Redis stops answering (every client, the bridge included) until all is published:
	 * the mirror, 16 messages in flight at most, is lapped. */
	CHECK(kill(rs.pid, SIGSTOP) == 0);
	const uint64_t total = 1500; /* ~10 rings of 16K */
	bt_publish(bus, "ow.t", 4, 0, total, 3);
	CHECK(kill(rs.pid, SIGCONT) == 0);
	uint64_t deadline = t_deadline(BT_DEADLINE_MS);
	shmbus_bridge_info_t st;
	long long n;
	for (;;) {
		n = bt_xlen(c, "ow.t");
		CHECK(bt_stats(bus, "ow", &st) == 0);
		if ((uint64_t)n + st.lost == total)
			break;
		if (t_now_ns() > deadline) {
			fprintf(stderr, "entries %lld + lost %llu != %llu\n", n,
				(unsigned long long)st.lost, (unsigned long long)total);
			exit(1);
		}
		usleep(20000);
	}
	static uint64_t ms[2000], seq[2000];
	size_t k = read_stream(c, "ow.t", 4, ms, seq, 2000);
	for (size_t i = 1; i < k; i++)
		CHECK(seq[i] > seq[i - 1] && ms[i] == ms[0]);
	CHECK(k && seq[k - 1] == total - 1);
	printf("  %llu published: %zu in the stream (in order, the last one %llu) + %llu lost\n",
	       (unsigned long long)total, k, (unsigned long long)seq[k - 1],
	       (unsigned long long)st.lost);
	CHECK(st.lost > 0);
}

static void case_maxlen(redisContext *c)
{
	printf("maxlen = 100\n");
	bt_publish(bus, "trim.t", 5, 0, 2000, 3);
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "trim", st, st.confirmed >= 2000);
	long long n = bt_xlen(c, "trim.t");
	printf("  2000 sent, the stream keeps %lld\n", n);
	CHECK(n >= 100 && n <= 300);
}

static void case_late(redisContext *c)
{
	printf("a topic made after the start, then removed and made again\n");
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 65536;
	CHECK_RC(shmbus_topic_create(bus, "late.a", &o), 0);
	bt_publish(bus, "late.a", 6, 0, 10, 3);
	bt_need_xlen(c, "late.a", 10);
	uint64_t ms[64], seq[64];
	CHECK(read_stream(c, "late.a", 6, ms, seq, 64) == 10);
	/* Gone with what it had; the mirror lets go of it, then a new one comes. */
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "late", st, st.topics == 1 && st.lag == 0);
	CHECK_RC(shmbus_topic_remove(bus, "late.a"), 0);
	BT_AWAIT(bus, "late", st, st.topics == 0);
	CHECK_RC(shmbus_topic_create(bus, "late.a", &o), 0);
	bt_publish(bus, "late.a", 6, 0, 10, 3);
	bt_need_xlen(c, "late.a", 20);
	CHECK(read_stream(c, "late.a", 6, ms, seq, 64) == 20);
	for (size_t i = 0; i < 20; i++)
		CHECK(seq[i] == i % 10 && ms[i] == ms[i < 10 ? 0 : 10]);
	CHECK(ms[10] > ms[0]);
	printf("  first generation %llu-0..9, second %llu-0..9: every ID larger than the last\n",
	       (unsigned long long)ms[0], (unsigned long long)ms[10]);
}

/* SIGHUP with a mirror added: the bridge starts again with it; the others go on where
 * they were (nothing twice). A bad section: refused, the running bridge stays. */
static void case_reload(redisContext *c)
{
	printf("reload\n");
	char ev[4096];
	t_daemon_config(&shmbusd,
			"%s[mirror added]\ntopics = auth.t\nto = redis://127.0.0.1:%d\n"
			"password = s3cret\nkey = added.{topic}\n",
			base_cfg, rs.port);
	CHECK(kill(shmbusd.pid, SIGHUP) == 0);
	const char *ok[] = { "\"event\":\"reload\"", "\"bridge_restarted\":true", NULL };
	CHECK(t_event_find(syslog, ev, sizeof(ev), BT_DEADLINE_MS, ok) == 0);
	bt_need_xlen(c, "added.auth.t", 200);
	bt_publish(bus, "auth.t", 1, 200, 10, 3);
	/* The counters are the restarted bridge's: "good" sends only the 10 new ones (one
	 * sent again would be a duplicate), "added" all 210. */
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "good", st, st.confirmed + st.duplicates >= 10 && st.lag == 0);
	printf("  good after the restart: sent %llu, confirmed %llu, duplicates %llu\n",
	       (unsigned long long)st.sent, (unsigned long long)st.confirmed,
	       (unsigned long long)st.duplicates);
	CHECK(st.sent == 10 && st.confirmed == 10 && st.duplicates == 0);
	BT_AWAIT(bus, "added", st, st.confirmed >= 210 && st.lag == 0);
	CHECK(st.confirmed == 210 && st.duplicates == 0);
	CHECK(bt_xlen(c, "good.auth.t") == 210 && bt_xlen(c, "added.auth.t") == 210);
	uint64_t ms[300], seq[300];
	CHECK(read_stream(c, "good.auth.t", 1, ms, seq, 300) == 210);
	for (size_t i = 0; i < 210; i++)
		CHECK(seq[i] == i);
	printf("  a mirror added by SIGHUP got the retained 200; after the restart the others "
	       "went on: 210 each, none twice\n");
	t_daemon_config(&shmbusd, "%s[mirror added]\ntopics = auth.t\nto = rediss://127.0.0.1:%d\n",
			base_cfg, rs.port);
	CHECK(kill(shmbusd.pid, SIGHUP) == 0);
	const char *bad[] = { "\"event\":\"reload_failed\"", "TLS is not supported", NULL };
	CHECK(t_event_find(syslog, ev, sizeof(ev), BT_DEADLINE_MS, bad) == 0);
	CHECK(bt_stats(bus, "added", &st) == 0 && st.up);
	printf("  a bad section: %s; the bridge runs on\n", strstr(ev, "\"error\""));
	CHECK(t_daemon_alive(&shmbusd));
}

/* CPU time (user + system, in clock ticks) of pid so far. */
static uint64_t cpu_ticks(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	t_read(path, buf, sizeof(buf));
	const char *p = strrchr(buf, ')');
	CHECK(p != NULL);
	unsigned long long ut = 0, stt = 0;
	/* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
	 * utime stime */
	CHECK(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) ==
	      2);
	return ut + stt;
}

/* Idle, with seven mirrors waiting on their topics and one retrying AUTH: no busy poll. */
static void case_idle(void)
{
	printf("idle\n");
	uint64_t t0 = cpu_ticks(shmbusd.pid);
	/* The time is what is measured here: CPU used over 2 s of idling. */
	usleep(2000000);
	uint64_t used = cpu_ticks(shmbusd.pid) - t0;
	long hz = sysconf(_SC_CLK_TCK);
	printf("  shmbusd used %.0f ms of CPU in 2 s\n", (double)used * 1000.0 / (double)hz);
	CHECK((double)used / (double)hz < 0.1);
}

/* `shmbus stat --json`: the bridge and its mirrors, as the counters say. */
static void case_stat(const char *tool, const char *dir)
{
	printf("shmbus stat --json\n");
	/* What it must show, as the library shows it first: "good" done (its lag is
	 * refreshed every 100 ms), "bad" refused (again, after Redis was stopped). */
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "good", st, st.lag == 0);
	BT_AWAIT(bus, "bad", st, strstr(st.last_error, "AUTH refused: WRONGPASS") != NULL);
	char out[600], err[600], buf[65536], want[200];
	snprintf(out, sizeof(out), "%s/stat.json", dir);
	snprintf(err, sizeof(err), "%s/stat.err", dir);
	setenv("SHMBUS_BUS", "brx", 1);
	char *argv[] = { (char *)tool, (char *)"stat", (char *)"--json",
			 (char *)"-i", (char *)"0",    NULL };
	pid_t pid = t_spawn(&(struct t_cmd){ .argv = argv, .out = out, .err = err });
	CHECK(t_exited(t_reap(pid, BT_DEADLINE_MS, "shmbus stat --json"), 0));
	t_read(out, buf, sizeof(buf));
	snprintf(want, sizeof(want),
		 "\"bridge\": {\"pid\": %d, \"running\": true, "
		 "\"futex_wait\": true",
		 (int)shmbusd.pid);
	CHECK(strstr(buf, want));
	const char *good = strstr(buf, "{\"name\": \"good\", \"kind\": \"redis\"");
	const char *bad = strstr(buf, "{\"name\": \"bad\", \"kind\": \"redis\"");
	CHECK(good && bad);
	const char *want_good = "\"up\": true, \"topics\": 1, \"sent\": 200, \"confirmed\": 200, "
				"\"lag\": 0,";
	if (strncmp(strstr(good, "\"up\": "), want_good, strlen(want_good))) {
		fprintf(stderr, "good: %.300s\n", good);
		exit(1);
	}
	if (strncmp(strstr(bad, "\"up\": "), "\"up\": false,", 12)) {
		fprintf(stderr, "bad: %.400s\n", bad);
		exit(1);
	}
	CHECK(strstr(bad, "AUTH refused: WRONGPASS"));
	printf("  the bridge (pid %d) and its mirrors, \"good\" up with 200 confirmed, "
	       "\"bad\" down with its AUTH error\n",
	       (int)shmbusd.pid);
}

int main(int argc, char **argv)
{
	CHECK(argc == 3);
	bt_need_redis();
	const char *dir = t_private_dir("brx");
	bt_redis_new(&rs, "redis");
	snprintf(rs.pass, sizeof(rs.pass), "s3cret");
	bt_redis_start(&rs);
	redisContext *c = bt_client(&rs);
	freeReplyObject(bt_cmd(c, "ACL SETUSER bridge on >pw ~* &* +@all"));
	int dead = bt_free_port();
	(void)dead;
	t_daemon_init(&shmbusd, argv[1]);
	snprintf(base_cfg, sizeof(base_cfg),
		 "[bus]\nname = brx\ndir = %s\n"
		 "[topic auth.t]\ncapacity = 64K\n"
		 "[topic ps.t]\ncapacity = 1M\n"
		 "[topic ow.t]\ncapacity = 16K\npolicy = overwrite\n"
		 "[topic trim.t]\ncapacity = 1M\n"
		 "[mirror good]\ntopics = auth.t\nto = redis://:s3cret@127.0.0.1:%d/0\n"
		 "key = good.{topic}\n"
		 "[mirror acl]\ntopics = auth.t\nto = redis://bridge:pw@127.0.0.1:%d/2\n"
		 "key = acl.{topic}\n"
		 "[mirror bad]\ntopics = auth.t\nto = redis://127.0.0.1:%d\npassword = wrong\n"
		 "key = bad.{topic}\nbackoff_max_ms = 100\n"
		 "[mirror ps]\ntopics = ps.t\nto = redis://127.0.0.1:%d\npassword = s3cret\n"
		 "mode = pubsub\nkey = chan.{topic}\n"
		 "[mirror ow]\ntopics = ow.t\nto = redis://127.0.0.1:%d\npassword = s3cret\n"
		 "window = 16\ntimeout_ms = 10000\n"
		 "[mirror trim]\ntopics = trim.t\nto = redis://127.0.0.1:%d\npassword = s3cret\n"
		 "maxlen = 100\n"
		 "[mirror late]\ntopics = late.>\nto = redis://127.0.0.1:%d\npassword = s3cret\n",
		 dir, rs.port, rs.port, rs.port, rs.port, rs.port, rs.port, rs.port);
	t_daemon_config(&shmbusd, "%s", base_cfg);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "brx"), 0);
	t_daemon_start(&shmbusd, bus);
	CHECK_RC(shmbus_sub_open(&syslog, bus, "$sys.log", NULL, 0), 0);
	shmbus_bridge_info_t st;
	BT_AWAIT(bus, "good", st, st.up);
	BT_AWAIT(bus, "ps", st, st.up);
	BT_AWAIT(bus, "ow", st, st.up);
	case_auth(c);
	case_pubsub();
	case_maxlen(c);
	case_late(c);
	case_overwrite(c);
	case_stat(argv[2], dir);
	case_idle();
	case_reload(c);
	shmbus_sub_close(syslog);
	CHECK(t_daemon_alive(&shmbusd));
	return bt_redis_pass(&shmbusd, c, &rs, bus);
}
