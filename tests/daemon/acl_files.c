/* SPDX-License-Identifier: MIT */
/*
 * [access] sections in file mode (issue 14): the kernel enforces what shmbusd writes on topic
 * files. The bus: mode 0666 (anyone may make topics); [access secret.>] owner 4321, group
 * 4321, mode 0600, subscribe = uid:65534; [access open.>] mode 0666; the bus's group
 * nogroup. Users: nobody (65534) and uid 1000, both in nogroup, in forked children that drop
 * root's rights.
 *
 *  A. Declared topics (secret.declared, open.declared) get the section's owner, group and
 *     mode, and secret.declared a POSIX ACL entry for uid 65534.
 *  B. A topic uid 1000 creates while the daemon runs (secret.x) is taken over the same way
 *     by the time its "topic_created" event is on $sys.log; its creator loses it.
 *  C. nobody opens a subscriber on secret.x and secret.declared (its ACL entry); uid 1000
 *     gets -EACCES on both; both open open.declared.
 *  D. A symlink named like a topic is not followed: "access_failed", its target unchanged.
 *  E. SIGHUP with subscribe = uid:1000 instead: by the "reload" event uid 1000 may
 *     subscribe to secret.x and nobody may not.
 *
 * usage: daemon_acl_files SHMBUSD
 */
#include "tests/lib/daemon.h"

#include <acl/libacl.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/acl.h>
#include <sys/stat.h>

#define NOBODY 65534
#define USER 1000
#define OWNER 4321
#define NOGROUP 65534

static char bus_dir[600];
static struct t_daemon shmbusd;

static const char conf_fmt[] = "[bus]\nname = t\ndir = %s\nmode = 0666\ngroup = nogroup\n"
			       "[topic secret.declared]\ncapacity = 64K\n"
			       "[topic open.declared]\ncapacity = 64K\n"
			       "[access secret.>]\nowner = %d\ngroup = %d\nmode = 0600\n"
			       "subscribe = uid:%d\n"
			       "[access open.>]\nmode = 0666\n";

/* ---- as another user ---- */

struct as_user {
	uid_t uid;
	const char *topic;
	int create; /* create the topic, else open a subscriber on it */
};

/* In the bus's group (the library opens a group-writable bus directory only for its
 * members), not in the secret topics' group. */
static void become(uid_t uid)
{
	gid_t g = NOGROUP;
	CHECK(setgroups(1, &g) == 0);
	CHECK(setresgid(uid, uid, uid) == 0);
	CHECK(setresuid(uid, uid, uid) == 0);
}

/* In a child: as a->uid, create a->topic or subscribe to it; write the result. */
static void as_user_run(void *arg, int fd)
{
	const struct as_user *a = arg;
	become(a->uid);
	shmbus_bus_t *bus;
	int rc = shmbus_bus_open(&bus, "t");
	if (rc == 0 && a->create) {
		shmbus_topic_opts_t o;
		shmbus_topic_opts_init(&o);
		o.capacity = 65536;
		rc = shmbus_topic_create(bus, a->topic, &o);
	} else if (rc == 0) {
		shmbus_sub_t *s;
		rc = shmbus_sub_open(&s, bus, a->topic, NULL, 0);
		if (rc == 0)
			shmbus_sub_close(s);
	}
	if (rc < 0)
		fprintf(stderr, "uid %d, %s: %s\n", (int)a->uid, a->topic, shmbus_errmsg());
	if (write(fd, &rc, sizeof(rc)) != sizeof(rc))
		_exit(1);
}

static int as_user(uid_t uid, const char *topic, int create)
{
	struct as_user a = { uid, topic, create };
	int rfd, rc = 1;
	pid_t pid = t_child(as_user_run, &a, &rfd);
	CHECK(read(rfd, &rc, sizeof(rc)) == sizeof(rc));
	close(rfd);
	CHECK(t_reap(pid, T_WAIT_MS, "a client as another user") == 0);
	return rc;
}

static void subscribe_gives(uid_t uid, const char *topic, int want)
{
	int rc = as_user(uid, topic, 0);
	if (rc != want)
		FAIL("uid %d subscribing to %s: %d (%s), wanted %d", (int)uid, topic, rc,
		     strerror(-rc), want);
}

/* ---- the file's attributes ---- */

static void attrs_are(const char *topic, uid_t uid, gid_t gid, mode_t mode, const char *entry)
{
	char path[800];
	snprintf(path, sizeof(path), "%s/%s.topic", bus_dir, topic);
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd >= 0);
	struct stat sb;
	CHECK(fstat(fd, &sb) == 0);
	/* With named entries the group bits are the ACL mask: the owning group's are in g::. */
	mode_t shown = entry ? (sb.st_mode & 0707) : (sb.st_mode & 0777);
	mode_t want = entry ? (mode & 0707) : mode;
	if (sb.st_uid != uid || sb.st_gid != gid || shown != want)
		FAIL("%s: uid %d gid %d mode %04o, wanted uid %d gid %d mode %04o", topic,
		     (int)sb.st_uid, (int)sb.st_gid, (unsigned)sb.st_mode & 07777, (int)uid,
		     (int)gid, (unsigned)mode);
	acl_t acl = acl_get_fd(fd);
	CHECK(acl);
	char *text = acl_to_any_text(acl, NULL, ',', TEXT_NUMERIC_IDS);
	CHECK(text);
	char g[32];
	snprintf(g, sizeof(g), "group::%c%c-", mode & 040 ? 'r' : '-', mode & 020 ? 'w' : '-');
	if (entry && (!strstr(text, entry) || !strstr(text, g)))
		FAIL("%s: ACL %s, wanted %s and %s", topic, text, entry, g);
	if (!entry && acl_extended_fd(fd) != 0)
		FAIL("%s: an extended ACL without lists: %s", topic, text);
	acl_free(text);
	acl_free(acl);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: daemon_acl_files SHMBUSD\n");
		return 2;
	}
	if (geteuid() != 0) {
		printf("SKIP: needs root (acts as other users)\n");
		return T_SKIP;
	}
	const char *dir = t_private_dir("acl-files");
	CHECK(chmod(dir, 0755) == 0); /* the other users reach the bus directory */
	/* Can this tmpfs hold POSIX ACLs at all? */
	{
		char p[700];
		snprintf(p, sizeof(p), "%s/probe", dir);
		int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		CHECK(fd >= 0);
		acl_t a = acl_from_text("u::rw-,u:65534:rw-,g::---,m::rw-,o::---");
		CHECK(a);
		int rc = acl_set_fd(fd, a);
		int e = errno;
		acl_free(a);
		close(fd);
		unlink(p);
		if (rc < 0 && e == EOPNOTSUPP) {
			printf("SKIP: %s has no POSIX ACLs\n", dir);
			return T_SKIP;
		}
		CHECK(rc == 0);
	}
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	unsetenv("SHMBUSD_CONFIG");
	snprintf(bus_dir, sizeof(bus_dir), "%s/t", dir);
	t_daemon_init(&shmbusd, argv[1]);
	t_daemon_config(&shmbusd, conf_fmt, dir, OWNER, OWNER, NOBODY);
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, "t"), 0);
	t_daemon_start(&shmbusd, bus);
	shmbus_sub_t *log = t_events_open(bus);
	char ev[4200], nobody_entry[32], user_entry[32];
	snprintf(nobody_entry, sizeof(nobody_entry), "user:%d:rw-", NOBODY);
	snprintf(user_entry, sizeof(user_entry), "user:%d:rw-", USER);

	/* ---- A: declared ---- */
	attrs_are("secret.declared", OWNER, OWNER, 0600, nobody_entry);
	attrs_are("open.declared", 0, NOGROUP, 0666, NULL); /* the bus's group */

	/* ---- B: made by uid 1000 while the daemon runs ---- */
	CHECK_RC(as_user(USER, "secret.x", 1), 0);
	const char *made[] = { "\"topic_created\"", "\"topic\":\"secret.x\"", NULL };
	if (t_event_find(log, ev, sizeof(ev), T_WAIT_MS, made) < 0) {
		fprintf(stderr, "FAIL: no topic_created event for secret.x\n");
		return 1;
	}
	attrs_are("secret.x", OWNER, OWNER, 0600, nobody_entry);

	/* ---- C: the kernel's verdicts ---- */
	subscribe_gives(NOBODY, "secret.x", 0);
	subscribe_gives(NOBODY, "secret.declared", 0);
	subscribe_gives(USER, "secret.x", -EACCES);
	subscribe_gives(USER, "secret.declared", -EACCES);
	subscribe_gives(USER, "open.declared", 0);
	subscribe_gives(NOBODY, "open.declared", 0);

	/* ---- D: a symlink is not followed ---- */
	char target[700], link[800];
	snprintf(target, sizeof(target), "%s/target", dir);
	t_write(target, "not a topic\n");
	CHECK(chmod(target, 0600) == 0);
	snprintf(link, sizeof(link), "%s/secret.link.topic", bus_dir);
	CHECK(symlink(target, link) == 0);
	const char *failed[] = { "\"access_failed\"", "\"topic\":\"secret.link\"", "symlink",
				 NULL };
	if (t_event_find(log, ev, sizeof(ev), T_WAIT_MS, failed) < 0)
		FAIL("no access_failed event for a symlink named secret.link.topic");
	struct stat sb;
	CHECK(stat(target, &sb) == 0);
	if (sb.st_uid != 0 || (sb.st_mode & 0777) != 0600)
		FAIL("the symlink's target changed: uid %d mode %04o", (int)sb.st_uid,
		     (unsigned)sb.st_mode & 0777);
	CHECK(unlink(link) == 0);

	/* ---- E: a reload changes who may subscribe ---- */
	t_daemon_config(&shmbusd, conf_fmt, dir, OWNER, OWNER, USER);
	CHECK(kill(shmbusd.pid, SIGHUP) == 0);
	if (t_event_wait(log, "reload", ev, sizeof(ev), T_WAIT_MS) < 0) {
		fprintf(stderr, "FAIL: no reload event\n");
		return 1;
	}
	attrs_are("secret.x", OWNER, OWNER, 0600, user_entry);
	subscribe_gives(USER, "secret.x", 0);
	subscribe_gives(NOBODY, "secret.x", -EACCES);

	shmbus_sub_close(log);
	int st = t_daemon_stop(&shmbusd);
	if (!t_exited(st, 0))
		FAIL("the daemon's stop: status %#x", st);
	shmbus_bus_close(bus);
	if (t_failures)
		return 1;
	printf("ok\n");
	return 0;
}
