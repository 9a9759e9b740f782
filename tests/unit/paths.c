/* SPDX-License-Identifier: MIT */
/*
 * What a bus directory and a topic's name may be, as any user (tests/unit/squat.c adds
 * other users):
 *  - a bus directory or a bus root that is a symlink is refused with -EPERM and a message
 *    naming it, even when it points at a good directory, and nothing is created there;
 *  - a bus root writable by everyone is refused unless sticky (as /dev/shm); a bus
 *    directory writable by everyone is refused even when sticky;
 *  - what the library creates is safe under umask 0: no write for others;
 *  - a FIFO named like a topic: topic create, publisher and subscriber opens, info, stats
 *    and the generation return at once (-EPROTO, 0), in a child held to a deadline, and
 *    the listing shows the other topics; a symlink named like a topic (even to a good
 *    topic) and a file shorter than a header are -EPROTO too; removing either removes
 *    the entry only.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "bus/intree.h"
#include "tests/lib/proc.h"
#include "tests/lib/test.h"

static char root[512];

static void path_of(char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", root, rel);
}

static void expect_refused(const char *dir, const char *bus, int flags, const char *needle)
{
	setenv("SHMBUS_DIR", dir, 1);
	shmbus_bus_t *b = NULL;
	int rc = shmbus_bus_open_flags(&b, bus, flags);
	if (rc != -EPERM)
		FAIL("SHMBUS_DIR=%s bus %s flags %d: rc %d (%s), wanted -EPERM", dir, bus, flags,
		     rc, shmbus_errmsg());
	else if (!strstr(shmbus_errmsg(), needle) || !strstr(shmbus_errmsg(), "mode"))
		FAIL("SHMBUS_DIR=%s bus %s: message '%s' does not name '%s' and a mode", dir, bus,
		     shmbus_errmsg(), needle);
	if (rc == 0)
		shmbus_bus_close(b);
}

static shmbus_bus_t *open_ok(const char *dir, const char *bus)
{
	setenv("SHMBUS_DIR", dir, 1);
	shmbus_bus_t *b = NULL;
	CHECK_RC(shmbus_bus_open(&b, bus), 0);
	return b;
}

static void case_symlinks(void)
{
	char real[600], link[600], lslash[610], bdir[700];
	path_of(real, sizeof(real), "real");
	path_of(link, sizeof(link), "link");
	shmbus_bus_close(open_ok(real, "good"));
	/* The bus directory a symlink to a good bus directory. */
	path_of(bdir, sizeof(bdir), "real/alias");
	CHECK(symlink("good", bdir) == 0);
	expect_refused(real, "alias", 0, bdir);
	expect_refused(real, "alias", SHMBUS_BUS_LOOK, bdir);
	CHECK(strstr(shmbus_errmsg(), "symbolic link") != NULL);
	path_of(bdir, sizeof(bdir), "real/good");
	CHECK(t_count_entries(bdir) == 0); /* nothing made through the link */
	/* The root a symlink to a good root, with and without a trailing slash. */
	CHECK(symlink(real, link) == 0);
	expect_refused(link, "good", 0, link);
	snprintf(lslash, sizeof(lslash), "%s//", link);
	expect_refused(lslash, "good", 0, link);
	expect_refused(link, "good", SHMBUS_BUS_LOOK, link);
	CHECK(t_count_entries(bdir) == 0);
}

static void case_modes(void)
{
	char ww[600], bdir[700];
	path_of(ww, sizeof(ww), "ww");
	CHECK(mkdir(ww, 0700) == 0);
	CHECK(chmod(ww, 0777) == 0);
	expect_refused(ww, "b", 0, ww);
	CHECK(strstr(shmbus_errmsg(), "0777") != NULL);
	CHECK(t_count_entries(ww) == 0);
	/* Sticky, as /dev/shm: others cannot rename or remove what is ours in it. */
	CHECK(chmod(ww, 01777) == 0);
	shmbus_bus_t *b = open_ok(ww, "b");
	CHECK_RC(shmbus_topic_create(b, "t", NULL), 0);
	shmbus_bus_close(b);
	/* A bus directory writable by everyone: refused unless sticky (a bus its owner shares
	 * with everyone, as shmbusd's mode = 0666 makes it: others may add topics, not
	 * remove or rename ours). */
	path_of(bdir, sizeof(bdir), "ww/b");
	CHECK(chmod(bdir, 01777) == 0);
	shmbus_bus_close(open_ok(ww, "b"));
	CHECK(chmod(bdir, 0777) == 0);
	expect_refused(ww, "b", SHMBUS_BUS_LOOK, bdir);
	CHECK(chmod(bdir, 0770) == 0);
	shmbus_bus_close(open_ok(ww, "b"));

	/* Made by the library under umask 0 (as shmbusd's mode = 0666 sets it): nothing
	 * writable by others, and then accepted. */
	char fresh[600], sub[700];
	path_of(fresh, sizeof(fresh), "fresh/deeper/root");
	mode_t old = umask(0);
	b = open_ok(fresh, "b");
	umask(old);
	shmbus_bus_close(b);
	struct stat sb;
	const char *made[] = { "fresh", "fresh/deeper", "fresh/deeper/root",
			       "fresh/deeper/root/b" };
	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		path_of(sub, sizeof(sub), made[i]);
		CHECK(lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode));
		if (sb.st_mode & S_IWOTH)
			FAIL("%s was made with mode %04o", sub, (unsigned)(sb.st_mode & 07777));
	}
}

struct fifo_arg {
	const char *dir;
};

static int collect(const char *name, void *arg)
{
	char *list = arg;
	strcat(list, name);
	strcat(list, ",");
	return 0;
}

/* In a child: a call that hangs shows as the child missing its deadline. */
static void fifo_child(void *arg, int fd)
{
	struct fifo_arg *a = arg;
	(void)fd;
	shmbus_bus_t *b = open_ok(a->dir, "default");
	/* Not even a generation, and no wait for a writer. */
	CHECK(shmbus_topic_generation(b, "f") == 0);
	const char *bad[] = { "f", "l", "s" }; /* FIFO, symlink to a good topic, short file */
	for (size_t i = 0; i < 3; i++) {
		const char *n = bad[i];
		uint64_t t0 = t_now_ns();
		CHECK_RC(shmbus_topic_create(b, n, NULL), -EPROTO);
		CHECK(strstr(shmbus_errmsg(), n) != NULL);
		shmbus_pub_t *p;
		CHECK_RC(shmbus_pub_open(&p, b, n), -EPROTO);
		shmbus_sub_t *s;
		CHECK_RC(shmbus_sub_open(&s, b, n, NULL, 0), -EPROTO);
		CHECK_RC(shmbus_sub_open(&s, b, n, "g", 0), -EPROTO);
		shmbus_topic_opts_t o;
		CHECK_RC(shmbus_topic_info(b, n, &o), -EPROTO);
		shmbus_topic_stats_t st;
		CHECK_RC(shmbus_topic_stats(b, n, &st), -EPROTO);
		printf("%s: refused in %.1f ms (%s)\n", n, t_ms_since(t0), shmbus_errmsg());
	}
	char list[256] = "";
	CHECK_RC(shmbus_topic_foreach(b, collect, list), 0);
	if (strcmp(list, "a,b,s,"))
		FAIL("listing with a FIFO and a symlink named like topics: '%s', wanted 'a,b,s,'",
		     list);
	shmbus_bus_stats_t bst;
	CHECK_RC(shmbus_bus_stats(b, &bst), 0);
	CHECK(bst.topics == 3);
	/* The good topics still work. */
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, b, "a"), 0);
	shmbus_pub_close(p);
	/* Removing one removes the entry, never what a symlink points at. */
	CHECK_RC(shmbus_topic_remove(b, "l"), 0);
	CHECK_RC(shmbus_topic_remove(b, "f"), 0);
	shmbus_topic_opts_t o;
	CHECK_RC(shmbus_topic_info(b, "a", &o), 0);
	CHECK_RC(shmbus_topic_create(b, "f", NULL), 0);
	shmbus_bus_close(b);
	exit(t_failures ? 1 : 0);
}

static void case_fifo(void)
{
	char dir[600], p[700];
	path_of(dir, sizeof(dir), "fifo");
	shmbus_bus_t *b = open_ok(dir, "default");
	CHECK_RC(shmbus_topic_create(b, "a", NULL), 0);
	CHECK_RC(shmbus_topic_create(b, "b", NULL), 0);
	snprintf(p, sizeof(p), "%s/default/f.topic", dir);
	CHECK(mkfifo(p, 0660) == 0);
	snprintf(p, sizeof(p), "%s/default/l.topic", dir);
	CHECK(symlink("a.topic", p) == 0);
	snprintf(p, sizeof(p), "%s/default/s.topic", dir);
	t_write(p, "short\n");
	shmbus_bus_close(b);

	struct fifo_arg a = { dir };
	pid_t pid = t_child(fifo_child, &a, NULL);
	int st = t_reap(pid, T_WAIT_MS, "the calls on a FIFO named like a topic");
	CHECK(t_exited(st, 0));
}

int main(void)
{
	snprintf(root, sizeof(root), "%s", t_private_dir("paths"));
	case_symlinks();
	case_modes();
	case_fifo();
	if (t_failures)
		return 1;
	printf("paths: ok\n");
	return 0;
}
