/* SPDX-License-Identifier: MIT */
/*
 * Directory squatting (issue 14): a user who makes the bus root or the bus directory
 * before its owner does, in a sticky world-writable directory such as /dev/shm, must not
 * get the owner's topics. Run as root (as CI does), acting as user nobody (65534) in
 * forked children that drop to it:
 *  - a bus root made by nobody is refused to root with -EPERM and a message naming the
 *    path, its owner and its mode, looking too, and nothing is created in it;
 *  - a bus directory made by nobody (mode 0777, inviting) likewise, inside a root that
 *    is root's own and sticky (/dev/shm's modes), where root's own bus still opens;
 *  - nobody, in that sticky root-owned root, makes and uses its own bus; root refuses it;
 *  - a root-owned bus directory writable by a group is refused to a user not in that
 *    group, and accepted for one in it: shmbusd's `group =`, made as the daemon makes it
 *    (umask 0, chgrp), works for the group's members.
 * Exit 77 when not root: only root can act as another user.
 */
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>

#include "tests/lib/proc.h"
#include "tests/lib/test.h"

#define NOBODY 65534

static char top[512];

static void become_nobody(void)
{
	CHECK(setgroups(0, NULL) == 0);
	CHECK(setresgid(NOBODY, NOBODY, NOBODY) == 0);
	CHECK(setresuid(NOBODY, NOBODY, NOBODY) == 0);
	umask(022);
}

/* Open bus in SHMBUS_DIR=root with flags: want the rc, and for -EPERM a message naming
 * path, owner and mode. */
static void expect_open(const char *root, const char *bus, int flags, int want, const char *path,
			const char *owner, const char *mode)
{
	setenv("SHMBUS_DIR", root, 1);
	shmbus_bus_t *b = NULL;
	int rc = shmbus_bus_open_flags(&b, bus, flags);
	if (rc != want) {
		fprintf(stderr, "SHMBUS_DIR=%s bus %s flags %d as uid %u: rc %d, wanted %d: %s\n",
			root, bus, flags, (unsigned)geteuid(), rc, want, shmbus_errmsg());
		exit(1);
	}
	if (rc == 0) {
		shmbus_bus_close(b);
		return;
	}
	const char *m = shmbus_errmsg();
	if ((path && !strstr(m, path)) || (owner && !strstr(m, owner)) ||
	    (mode && !strstr(m, mode))) {
		fprintf(stderr, "message '%s' does not name %s, %s, %s\n", m, path, owner, mode);
		exit(1);
	}
	printf("refused: %s\n", m);
}

struct mk {
	const char *paths[3];
	mode_t mode;
};

static void mkdirs_as_nobody(void *arg, int fd)
{
	struct mk *m = arg;
	(void)fd;
	become_nobody();
	for (int i = 0; i < 3 && m->paths[i]; i++) {
		CHECK(mkdir(m->paths[i], 0700) == 0);
		CHECK(chmod(m->paths[i], m->mode) == 0);
	}
}

static void as_nobody(void (*fn)(void *, int), void *arg, const char *what)
{
	pid_t pid = t_child(fn, arg, NULL);
	CHECK(t_exited(t_reap(pid, T_WAIT_MS, what), 0));
}

static void case_root_squatted(void)
{
	char root[600], bdir[700];
	snprintf(root, sizeof(root), "%s/shmbus", top);
	snprintf(bdir, sizeof(bdir), "%s/default", root);
	struct mk m = { { root, bdir, NULL }, 0755 };
	as_nobody(mkdirs_as_nobody, &m, "nobody making the bus root and bus directory");
	expect_open(root, "default", 0, -EPERM, root, "uid 65534", "mode 0755");
	expect_open(root, "default", SHMBUS_BUS_LOOK, -EPERM, root, "uid 65534", "mode 0755");
	expect_open(root, "other", 0, -EPERM, root, "uid 65534", "mode 0755");
	CHECK(t_count_entries(root) == 1); /* its own "default", still empty: nothing made */
	/* Inviting root in changes nothing. */
	CHECK(chmod(root, 0777) == 0 && chmod(bdir, 0777) == 0);
	expect_open(root, "default", 0, -EPERM, root, "uid 65534", "mode 0777");
	CHECK(t_count_entries(root) == 1);
}

static void case_bus_dir_squatted(void)
{
	char root[600], bdir[700];
	snprintf(root, sizeof(root), "%s/sticky", top);
	CHECK(mkdir(root, 0700) == 0 && chmod(root, 01777) == 0); /* as /dev/shm */
	snprintf(bdir, sizeof(bdir), "%s/default", root);
	struct mk m = { { bdir, NULL }, 0777 };
	as_nobody(mkdirs_as_nobody, &m, "nobody making the bus directory");
	expect_open(root, "default", 0, -EPERM, bdir, "uid 65534", "mode 0777");
	expect_open(root, "default", SHMBUS_BUS_LOOK, -EPERM, bdir, "uid 65534", "mode 0777");
	CHECK(t_count_entries(bdir) == 0);
	/* Root's own bus in the same sticky root is fine. */
	setenv("SHMBUS_DIR", root, 1);
	shmbus_bus_t *b;
	CHECK_RC(shmbus_bus_open(&b, "mine"), 0);
	CHECK_RC(shmbus_topic_create(b, "t", NULL), 0);
	shmbus_bus_close(b);
}

static void nobody_own_bus(void *arg, int fd)
{
	const char *root = arg;
	(void)fd;
	become_nobody();
	setenv("SHMBUS_DIR", root, 1);
	shmbus_bus_t *b;
	CHECK_RC(shmbus_bus_open(&b, "nb"), 0);
	CHECK_RC(shmbus_topic_create(b, "t", NULL), 0);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, b, "t"), 0);
	shmbus_pub_close(p);
	shmbus_bus_close(b);
	/* Root's bus there (0770 less umask, group root) is not ours to use: the kernel. */
	CHECK_RC(shmbus_bus_open(&b, "mine"), -EACCES);
}

static void case_sticky_root_for_users(void)
{
	char root[600], nb[700];
	snprintf(root, sizeof(root), "%s/sticky", top);
	as_nobody(nobody_own_bus, root, "nobody using its own bus in a sticky root");
	snprintf(nb, sizeof(nb), "%s/nb", root);
	expect_open(root, "nb", 0, -EPERM, nb, "uid 65534", "mode 07");
}

static void nobody_group_bus(void *arg, int fd)
{
	const int *want = arg;
	(void)fd;
	become_nobody();
	shmbus_bus_t *b;
	int rc = shmbus_bus_open(&b, "d");
	if (rc != want[0]) {
		fprintf(stderr, "as nobody: bus open %d, wanted %d: %s\n", rc, want[0],
			shmbus_errmsg());
		exit(1);
	}
	if (rc < 0) {
		CHECK(strstr(shmbus_errmsg(), "group you are not in") != NULL);
		return;
	}
	/* A member's topic is for the group whatever the member's umask: its mode follows
	 * the bus directory's. */
	mode_t um = umask(077);
	CHECK_RC(shmbus_topic_create(b, "by_member", NULL), 0);
	umask(um);
	struct stat sb;
	char f[800];
	snprintf(f, sizeof(f), "%s/d/by_member.topic", getenv("SHMBUS_DIR"));
	CHECK(stat(f, &sb) == 0);
	if ((sb.st_mode & 0777) != 0660) {
		fprintf(stderr, "a member's topic in a group bus: mode %04o, wanted 0660\n",
			(unsigned)(sb.st_mode & 0777));
		exit(1);
	}
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, b, "by_daemon"), 0);
	CHECK_RC(shmbus_publish(p, "x", 1, 0), 0);
	shmbus_pub_close(p);
	shmbus_bus_close(b);
}

static void case_daemon_group(void)
{
	char root[600], bdir[700];
	snprintf(root, sizeof(root), "%s/daemon", top);
	setenv("SHMBUS_DIR", root, 1);
	/* As shmbusd with mode = 0666 and group = nogroup makes it. */
	mode_t old = umask(0);
	shmbus_bus_t *b;
	CHECK_RC(shmbus_bus_open(&b, "d"), 0);
	umask(old);
	snprintf(bdir, sizeof(bdir), "%s/d", root);
	CHECK(chown(bdir, (uid_t)-1, 0) == 0);
	CHECK(chmod(bdir, 0775) == 0); /* group root writes: nobody is not in it */
	int refused[1] = { -EPERM };
	as_nobody(nobody_group_bus, refused, "nobody and a bus writable by a group not its own");
	CHECK(chown(bdir, (uid_t)-1, NOBODY) == 0);
	CHECK(chmod(bdir, 0770) == 0);
	old = umask(077); /* any umask: the file's mode follows the directory's */
	CHECK_RC(shmbus_topic_create(b, "by_daemon", NULL), 0);
	umask(old);
	/* The daemon's topic files get the group too (not the library's business here). */
	char f[800];
	snprintf(f, sizeof(f), "%s/by_daemon.topic", bdir);
	CHECK(chown(f, (uid_t)-1, NOBODY) == 0);
	int ok[1] = { 0 };
	as_nobody(nobody_group_bus, ok, "nobody, in the bus's group");
	/* Root still opens it (root's own directory). */
	shmbus_bus_t *b2;
	CHECK_RC(shmbus_bus_open(&b2, "d"), 0);
	shmbus_bus_close(b2);
	shmbus_bus_close(b);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("squat: needs root to act as another user, skipped\n");
		return T_SKIP;
	}
	snprintf(top, sizeof(top), "%s", t_private_dir("squat"));
	/* /dev/shm's modes, so that nobody can make the squatting directories in it. */
	CHECK(chmod(top, 01777) == 0);
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	case_root_squatted();
	case_bus_dir_squatted();
	case_sticky_root_for_users();
	case_daemon_group();
	printf("squat: ok\n");
	return 0;
}
