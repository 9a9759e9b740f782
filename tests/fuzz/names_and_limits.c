/* SPDX-License-Identifier: MIT */
/*
 * Bad names, bad options and oversize input are refused cleanly, leave nothing behind,
 * and never write anything.
 *  - topic names: empty, empty tokens, spaces, slashes, "../x" (which would name a real
 *    topic of another bus), 128+ bytes, "$sys." without the system flag, non-ASCII →
 *    -EINVAL from shmbus_topic_name_check() and shmbus_topic_create(), with a message;
 *    opens and removes by such names fail and touch nothing. Valid names (letters,
 *    digits, '-', '_', dots between tokens, 127 bytes, "$sys.log" with the flag) work.
 *    Bus and group names likewise.
 *  - oversize messages: publish, publish_timeout, reserve, a batch with one oversize
 *    message, and lengths that would wrap a 32-bit length → -EMSGSIZE, stats.published
 *    and the tail unchanged, a subscriber receives nothing; max_message itself works.
 *  - options: capacity not a power of two, too small, too large; max_message too large;
 *    unknown policy or flags; too many readers/publishers/groups; non-zero reserved
 *    words → -EINVAL and no file; the documented limits themselves are accepted.
 *  - create on an existing topic: same options → 1 (also defaults given as NULL or as
 *    zeros), other options → -EEXIST, and shmbus_topic_info() reads the options back.
 *  - a topic larger than /dev/shm → -ENOSPC at create, no file left (not even a
 *    temporary one), no SIGBUS.
 */
#include "tests/lib/test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

static shmbus_bus_t *bus;

/* Number of entries in the bus directory (a failed create must leave none). */
static int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	CHECK(d != NULL);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void list_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		fprintf(stderr, "  %s/%s\n", dir, e->d_name);
	closedir(d);
}

static void expect_errmsg(const char *what)
{
	if (shmbus_errmsg()[0] == '\0') {
		fprintf(stderr, "%s: no shmbus_errmsg()\n", what);
		exit(1);
	}
}

/* ---- names ---------------------------------------------------------------------------- */

static void names(void)
{
	char n128[129], n127[128], n300[301], g48[49], g47[48];
	memset(n128, 'a', 128);
	n128[128] = '\0';
	memset(n127, 'b', 127);
	n127[127] = '\0';
	n127[40] = '.';
	n127[90] = '.';
	memset(n300, 'c', 300);
	n300[300] = '\0';
	memset(g48, 'g', 48);
	g48[48] = '\0';
	memset(g47, 'h', 47);
	g47[47] = '\0';

	const char *bad[] = { "", "a..b", ".a", "a.", ".", "..", "a b", " a", "a ", "a/b", "/a",
			      "../x", "../other/x", "a\\b", "a\tb", "a\nb", "a*", "a>", "a#b",
			      "caf\xc3\xa9", "$sys.log", "$sys", "$foo", "a$b", "sys.$log",
			      n128, n300 };
	const char *dir = shmbus_bus_path(bus);
	int before = dir_entries(dir);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *nm = bad[i];
		int rc = shmbus_topic_name_check(nm, 0);
		if (rc != -EINVAL) {
			fprintf(stderr, "name_check(\"%s\") returned %d, wanted -EINVAL\n", nm, rc);
			exit(1);
		}
		expect_errmsg(nm);
		rc = shmbus_topic_create(bus, nm, NULL);
		if (rc != -EINVAL) {
			fprintf(stderr, "topic_create(\"%s\") returned %d, wanted -EINVAL\n", nm, rc);
			exit(1);
		}
		expect_errmsg(nm);
	}
	if (dir_entries(dir) != before) {
		fprintf(stderr, "refused names left files behind:\n");
		list_dir(dir);
		exit(1);
	}
	/* The reserved prefix with bad tokens is bad even for the system. */
	CHECK_RC(shmbus_topic_name_check("$sys.", 1), -EINVAL);
	CHECK_RC(shmbus_topic_name_check("$sys.a..b", 1), -EINVAL);
	CHECK_RC(shmbus_topic_name_check("$sys.a b", 1), -EINVAL);

	/* "../other/x" from bus "default" must not reach topic x of bus "other". */
	shmbus_bus_t *other;
	CHECK_RC(shmbus_bus_open(&other, "other"), 0);
	CHECK_RC(shmbus_topic_create(other, "x", NULL), 0);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	shmbus_topic_opts_t o;
	CHECK(shmbus_pub_open(&pub, bus, "../other/x") < 0);
	CHECK(shmbus_sub_open(&sub, bus, "../other/x", NULL, 0) < 0);
	CHECK(shmbus_topic_info(bus, "../other/x", &o) < 0);
	CHECK(shmbus_topic_remove(bus, "../other/x") < 0);
	CHECK(shmbus_topic_remove(bus, "") < 0);
	CHECK_RC(shmbus_topic_info(other, "x", &o), 0);
	CHECK_RC(shmbus_topic_remove(other, "x"), 0);
	shmbus_bus_close(other);

	const char *good[] = { "a", "Z", "0", "-", "_", "a-b", "a_b", "a.b.c", "A1.b2.C3",
			       "orders.eu-west_1.v2", "--.__", n127 };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK_RC(shmbus_topic_name_check(good[i], 0), 0);
		CHECK_RC(shmbus_topic_name_check(good[i], 1), 0);
		shmbus_topic_opts_t so;
		shmbus_topic_opts_init(&so);
		so.capacity = 4096;
		so.max_message = 64;
		int rc = shmbus_topic_create(bus, good[i], &so);
		if (rc != 0) {
			fprintf(stderr, "topic_create(\"%s\") returned %d: %s\n", good[i], rc,
				shmbus_errmsg());
			exit(1);
		}
		CHECK_RC(shmbus_pub_open(&pub, bus, good[i]), 0);
		CHECK_RC(shmbus_sub_open(&sub, bus, good[i], NULL, 0), 0);
		CHECK_RC(shmbus_publish(pub, good[i], strlen(good[i]) > 64 ? 64 : strlen(good[i]),
					0), 0);
		shmbus_msg_t m;
		CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
		CHECK(memcmp(m.data, good[i], m.len) == 0);
		shmbus_sub_close(sub);
		shmbus_pub_close(pub);
		CHECK_RC(shmbus_topic_remove(bus, good[i]), 0);
	}

	/* "$sys." only with the flag. */
	CHECK_RC(shmbus_topic_name_check("$sys.log", 1), 0);
	CHECK_RC(shmbus_topic_name_check("$sys.bridge.redis-1", 1), 0);
	shmbus_topic_opts_init(&o);
	o.capacity = 4096;
	o.max_message = 64;
	CHECK_RC(shmbus_topic_create(bus, "$sys.log", &o), -EINVAL);
	o.flags = SHMBUS_TOPIC_SYSTEM;
	CHECK_RC(shmbus_topic_create(bus, "$sys.log", &o), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "$sys.log"), 0);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "$sys.log"), 0);

	/* Bus names: one token. */
	shmbus_bus_t *b;
	const char *badbus[] = { "", ".", "..", "a/b", "../x", "a.b", "a b", n128 };
	for (size_t i = 0; i < sizeof(badbus) / sizeof(badbus[0]); i++) {
		int rc = shmbus_bus_open(&b, badbus[i]);
		if (rc != -EINVAL) {
			fprintf(stderr, "bus_open(\"%s\") returned %d, wanted -EINVAL\n", badbus[i],
				rc);
			if (rc == 0)
				shmbus_bus_close(b);
			exit(1);
		}
	}
	CHECK_RC(shmbus_bus_open(&b, "ok-bus_1"), 0);
	shmbus_bus_close(b);

	/* Group names: one token, at most SHMBUS_GROUP_NAME_MAX bytes. */
	shmbus_topic_opts_init(&o);
	o.capacity = 4096;
	o.max_message = 64;
	CHECK_RC(shmbus_topic_create(bus, "grp", &o), 0);
	const char *badgrp[] = { "", "a b", "a.b", "a/b", "..", g48 };
	for (size_t i = 0; i < sizeof(badgrp) / sizeof(badgrp[0]); i++) {
		int rc = shmbus_sub_open(&sub, bus, "grp", badgrp[i], 0);
		if (rc != -EINVAL) {
			fprintf(stderr, "sub_open(group \"%s\") returned %d, wanted -EINVAL\n",
				badgrp[i], rc);
			exit(1);
		}
	}
	CHECK_RC(shmbus_sub_open(&sub, bus, "grp", g47, 0), 0);
	shmbus_sub_close(sub);
	CHECK_RC(shmbus_topic_remove(bus, "grp"), 0);
	printf("names: ok\n");
}

/* ---- oversize messages ---------------------------------------------------------------- */

static void oversize(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 64 * 1024;
	o.max_message = 1000;
	CHECK_RC(shmbus_topic_create(bus, "big", &o), 0);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "big"), 0);
	CHECK_RC(shmbus_sub_open(&sub, bus, "big", NULL, 0), 0);
	static uint8_t buf[4096];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);

	shmbus_topic_stats_t s0, s1;
	CHECK_RC(shmbus_topic_stats(bus, "big", &s0), 0);
	CHECK_RC(shmbus_publish(pub, buf, 1001, 1), -EMSGSIZE);
	CHECK_RC(shmbus_publish(pub, buf, 4096, 1), -EMSGSIZE);
	CHECK_RC(shmbus_publish_timeout(pub, buf, 1001, 1, 0), -EMSGSIZE);
	/* Lengths a 32-bit truncation would make small (must not be read: nothing is). */
	CHECK_RC(shmbus_publish(pub, buf, ((size_t)1 << 32) + 10, 1), -EMSGSIZE);
	CHECK_RC(shmbus_publish(pub, buf, SIZE_MAX, 1), -EMSGSIZE);
	void *r = NULL;
	CHECK_RC(shmbus_reserve(pub, 1001, &r), -EMSGSIZE);
	CHECK_RC(shmbus_reserve(pub, ((size_t)1 << 32) + 10, &r), -EMSGSIZE);
	CHECK_RC(shmbus_reserve(pub, SIZE_MAX, &r), -EMSGSIZE);
	CHECK_RC(shmbus_commit(pub), -EINVAL); /* no reservation was left open */
	shmbus_iov_t iov[3] = { { buf, 10, 1 }, { buf, 1001, 2 }, { buf, 10, 3 } };
	CHECK_RC(shmbus_publish_batch(pub, iov, 3), -EMSGSIZE);
	iov[1].len = ((size_t)1 << 32) + 10;
	CHECK_RC(shmbus_publish_batch(pub, iov, 3), -EMSGSIZE);
	iov[1].len = 10;
	iov[2].len = SIZE_MAX;
	CHECK_RC(shmbus_publish_batch(pub, iov, 3), -EMSGSIZE);
	CHECK_RC(shmbus_topic_stats(bus, "big", &s1), 0);
	CHECK(s1.published == s0.published);
	CHECK(s1.bytes == s0.bytes);
	CHECK(s1.tail == s0.tail);
	CHECK(s1.next_seq == s0.next_seq);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 50), -EAGAIN);

	/* The limit itself, and empty messages, go through intact. */
	CHECK_RC(shmbus_publish(pub, buf, 1000, 5), 0);
	CHECK_RC(shmbus_publish(pub, buf, 0, 6), 0);
	CHECK_RC(shmbus_reserve(pub, 1000, &r), 0);
	memcpy(r, buf + 1, 1000);
	CHECK_RC(shmbus_commit_type(pub, 7), 0);
	CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
	CHECK(m.len == 1000 && m.type == 5 && memcmp(m.data, buf, 1000) == 0);
	CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
	CHECK(m.len == 0 && m.type == 6);
	CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
	CHECK(m.len == 1000 && m.type == 7 && memcmp(m.data, buf + 1, 1000) == 0);
	CHECK_RC(shmbus_recv(sub, &m, 20), -EAGAIN);
	CHECK_RC(shmbus_topic_stats(bus, "big", &s1), 0);
	CHECK(s1.published == s0.published + 3);
	CHECK(s1.bytes == s0.bytes + 2000);

	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "big"), 0);
	printf("oversize: ok\n");
}

/* ---- options -------------------------------------------------------------------------- */

static void options(void)
{
	const char *dir = shmbus_bus_path(bus);
	int before = dir_entries(dir);
	struct {
		const char *what;
		shmbus_topic_opts_t o;
	} bad[40];
	int n = 0;
#define BADOPT(field, value)                                                              \
	do {                                                                              \
		shmbus_topic_opts_init(&bad[n].o);                                        \
		bad[n].o.capacity = 64 * 1024;                                            \
		bad[n].o.max_message = 1024;                                              \
		bad[n].o.field = (value);                                                 \
		bad[n].what = #field " = " #value;                                        \
		n++;                                                                      \
	} while (0)
	BADOPT(capacity, 3000);
	BADOPT(capacity, 4097);
	BADOPT(capacity, 3 * 4096);
	BADOPT(capacity, 65535);
	BADOPT(capacity, 2048);
	BADOPT(capacity, 1);
	BADOPT(capacity, 1ull << 41);
	BADOPT(capacity, 1ull << 63);
	BADOPT(capacity, UINT64_MAX);
	BADOPT(max_message, 64 * 1024 / 2 - 63);
	BADOPT(max_message, 64 * 1024);
	BADOPT(max_message, 0xffffffffu);
	BADOPT(policy, 2);
	BADOPT(policy, 0xffffffffu);
	BADOPT(max_readers, 4097);
	BADOPT(max_readers, 0xffffffffu);
	BADOPT(max_publishers, 4097);
	BADOPT(max_publishers, 0xffffffffu);
	BADOPT(max_groups, 1025);
	BADOPT(max_groups, 0xffffffffu);
	BADOPT(flags, 1u << 5);
	BADOPT(flags, 0xffffffffu);
	BADOPT(reserved[0], 1);
	BADOPT(reserved[6], 0x80000000u);
	BADOPT(max_pending, 65537);
	BADOPT(max_pending, 0xffffffffu);
#undef BADOPT
	/* max_message too large for the minimum capacity. */
	shmbus_topic_opts_init(&bad[n].o);
	bad[n].o.capacity = 4096;
	bad[n].o.max_message = 4096 / 2 - 63;
	bad[n++].what = "capacity 4096, max_message 1985";

	for (int i = 0; i < n; i++) {
		int rc = shmbus_topic_create(bus, "opt", &bad[i].o);
		if (rc != -EINVAL) {
			fprintf(stderr, "create with %s returned %d, wanted -EINVAL (%s)\n",
				bad[i].what, rc, shmbus_errmsg());
			exit(1);
		}
		expect_errmsg(bad[i].what);
		shmbus_topic_opts_t o;
		CHECK_RC(shmbus_topic_info(bus, "opt", &o), -ENOENT);
	}
	if (dir_entries(dir) != before) {
		fprintf(stderr, "refused options left files behind:\n");
		list_dir(dir);
		exit(1);
	}

	/* The documented limits are accepted. */
	shmbus_topic_opts_t o, got;
	shmbus_topic_opts_init(&o);
	o.capacity = 4096;
	o.max_message = 4096 / 2 - 64;
	o.max_readers = 4096;
	o.max_publishers = 4096;
	o.max_groups = 1024;
	o.policy = SHMBUS_OVERWRITE;
	CHECK_RC(shmbus_topic_create(bus, "limits", &o), 0);
	CHECK_RC(shmbus_topic_info(bus, "limits", &got), 0);
	CHECK(got.capacity == 4096 && got.max_message == 4096 / 2 - 64);
	CHECK(got.max_readers == 4096 && got.max_publishers == 4096 && got.max_groups == 1024);
	CHECK(got.policy == SHMBUS_OVERWRITE);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "limits"), 0);
	CHECK_RC(shmbus_sub_open(&sub, bus, "limits", NULL, 0), 0);
	static uint8_t buf[4096 / 2 - 64];
	memset(buf, 0x3c, sizeof(buf));
	for (int i = 0; i < 10; i++) /* several laps of the smallest ring */
		CHECK_RC(shmbus_publish(pub, buf, sizeof(buf), (uint32_t)i), 0);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
	CHECK(m.len == sizeof(buf) && memcmp(m.data, buf, m.len) == 0);
	CHECK(m.lost > 0);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "limits"), 0);
	printf("options: ok\n");
}

/* ---- existing topics ------------------------------------------------------------------ */

static void existing(void)
{
	shmbus_topic_opts_t a, got;
	shmbus_topic_opts_init(&a);
	a.capacity = 128 * 1024;
	a.max_message = 5000;
	a.policy = SHMBUS_OVERWRITE;
	a.max_readers = 10;
	a.max_groups = 3;
	a.max_publishers = 7;
	CHECK_RC(shmbus_topic_create(bus, "ex", &a), 0);
	CHECK_RC(shmbus_topic_create(bus, "ex", &a), 1);
	memset(&got, 0, sizeof(got));
	CHECK_RC(shmbus_topic_info(bus, "ex", &got), 0);
	CHECK(got.capacity == a.capacity && got.max_message == a.max_message &&
	      got.policy == a.policy && got.max_readers == a.max_readers &&
	      got.max_groups == a.max_groups && got.max_publishers == a.max_publishers &&
	      got.flags == 0);
	/* What info returns creates the same topic again. */
	CHECK_RC(shmbus_topic_create(bus, "ex", &got), 1);

	shmbus_topic_opts_t d = a;
	d.capacity *= 2;
	CHECK_RC(shmbus_topic_create(bus, "ex", &d), -EEXIST);
	expect_errmsg("-EEXIST");
	d = a;
	d.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, "ex", &d), -EEXIST);
	d = a;
	d.max_message = 4999;
	CHECK_RC(shmbus_topic_create(bus, "ex", &d), -EEXIST);
	d = a;
	d.max_readers = 11;
	CHECK_RC(shmbus_topic_create(bus, "ex", &d), -EEXIST);
	CHECK_RC(shmbus_topic_create(bus, "ex", NULL), -EEXIST);
	/* -EEXIST left the topic as it was. */
	CHECK_RC(shmbus_topic_info(bus, "ex", &got), 0);
	CHECK(got.capacity == a.capacity && got.policy == a.policy);
	CHECK_RC(shmbus_topic_remove(bus, "ex"), 0);
	CHECK_RC(shmbus_topic_remove(bus, "ex"), -ENOENT);

	/* Defaults: NULL, opts_init and all-zero options are the same options. */
	shmbus_topic_opts_t z;
	memset(&z, 0, sizeof(z));
	shmbus_topic_opts_init(&d);
	CHECK_RC(shmbus_topic_create(bus, "def", NULL), 0);
	CHECK_RC(shmbus_topic_create(bus, "def", &d), 1);
	CHECK_RC(shmbus_topic_create(bus, "def", &z), 1);
	CHECK_RC(shmbus_topic_create(bus, "def", NULL), 1);
	CHECK_RC(shmbus_topic_info(bus, "def", &got), 0);
	CHECK(got.capacity == 1024 * 1024 && got.max_message == 1024 * 1024 / 8 &&
	      got.policy == SHMBUS_BLOCK && got.max_readers == 64 && got.max_groups == 16 &&
	      got.max_publishers == 64);
	CHECK_RC(shmbus_topic_remove(bus, "def"), 0);
	printf("existing: ok\n");
}

/* ---- no space ------------------------------------------------------------------------- */

static void no_space(void)
{
	struct statvfs v;
	CHECK(statvfs(shmbus_bus_path(bus), &v) == 0);
	uint64_t total = (uint64_t)v.f_blocks * v.f_frsize;
	uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
	if (v.f_blocks == 0) {
		/* An unlimited tmpfs would really try to allocate: nothing to test safely. */
		printf("no space: %s has no size limit, skipped\n", shmbus_bus_path(bus));
		return;
	}
	/* Above the whole file system, not just its free space: tmpfs then refuses at once
	 * instead of filling memory first (and other tests keep their space). */
	uint64_t cap = 4096;
	while (cap <= total && cap < (1ull << 40))
		cap <<= 1;
	if (cap <= total) {
		printf("no space: %s is larger than 1 TiB, skipped\n", shmbus_bus_path(bus));
		return;
	}
	const char *dir = shmbus_bus_path(bus);
	int before = dir_entries(dir);
	uint64_t caps[2] = { cap, 1ull << 40 };
	for (int i = 0; i < 2; i++) {
		shmbus_topic_opts_t o;
		shmbus_topic_opts_init(&o);
		o.capacity = caps[i];
		o.max_message = 1 << 20;
		printf("no space: /dev/shm %" PRIu64 " MiB (%" PRIu64 " MiB free), capacity %"
		       PRIu64 " MiB\n", total >> 20, avail >> 20, caps[i] >> 20);
		int rc = shmbus_topic_create(bus, "huge", &o);
		if (rc != -ENOSPC) {
			fprintf(stderr, "create of a %" PRIu64 "-byte topic returned %d, wanted "
				"-ENOSPC (%s)\n", caps[i], rc, shmbus_errmsg());
			exit(1);
		}
		expect_errmsg("-ENOSPC");
		if (dir_entries(dir) != before) {
			fprintf(stderr, "-ENOSPC left files behind:\n");
			list_dir(dir);
			exit(1);
		}
		shmbus_topic_opts_t got;
		CHECK_RC(shmbus_topic_info(bus, "huge", &got), -ENOENT);
		shmbus_pub_t *pub;
		CHECK_RC(shmbus_pub_open(&pub, bus, "huge"), -ENOENT);
	}
	struct statvfs v2;
	CHECK(statvfs(dir, &v2) == 0);
	printf("no space: ok (free after: %" PRIu64 " MiB)\n",
	       ((uint64_t)v2.f_bavail * v2.f_frsize) >> 20);
}

int main(void)
{
	t_private_dir("names_and_limits");
	setvbuf(stdout, NULL, _IOLBF, 0);
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	names();
	oversize();
	options();
	existing();
	no_space();
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
