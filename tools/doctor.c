/* SPDX-License-Identifier: MIT */
/*
 * shmbus doctor: check what a bus needs and report each finding on one line, OK, WARN or
 * FAIL, with what to do about it. Looks only: it changes nothing, creates nothing (not
 * even the bus directory) and does not register with the daemon.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli.h"

/* A bus filesystem smaller than this gets a warning (Docker's /dev/shm is 64 MB). */
#define SMALL_FS (256ull << 20)
/* How long a temporary file of a topic creation may live before it counts as left over. */
#define TMP_AGE_S 60
/* How long the daemon has to answer. */
#define PING_MS 500

enum level { OK, WARN, FAIL };

struct doctor {
	shmbus_bus_t *bus;
	unsigned counts[3];
};

static void report(struct doctor *d, enum level lv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct doctor *d, enum level lv, const char *fmt, ...)
{
	static const char *const names[] = { "OK", "WARN", "FAIL" };
	va_list ap;

	d->counts[lv]++;
	printf("%-4s  ", names[lv]);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void check_dir(struct doctor *d)
{
	const char *path = shmbus_bus_path(d->bus);

	if (access(path, W_OK | X_OK) == 0)
		report(d, OK, "bus directory %s exists and is writable", path);
	else
		report(d, FAIL,
		       "bus directory %s is not writable by uid %u: %s; fix its owner or mode, or "
		       "set SHMBUS_DIR to a directory you may write",
		       path, (unsigned)geteuid(), strerror(errno));
}

static void check_fs(struct doctor *d)
{
	const char *path = shmbus_bus_path(d->bus);
	char sz[TOOL_UNIT_LEN], fr[TOOL_UNIT_LEN];
	struct statvfs vfs;
	struct statfs fs;

	if (statvfs(path, &vfs) < 0) {
		report(d, FAIL, "cannot read the filesystem of %s (statvfs): %s", path,
		       strerror(errno));
		return;
	}
	uint64_t size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	tool_fmt_size(sz, size);
	tool_fmt_size(fr, avail);
	if (size < SMALL_FS)
		report(d, WARN,
		       "the filesystem holding %s is small: %s, %s free (under 256M); in Docker "
		       "run the container with --shm-size=1g, otherwise grow it with "
		       "mount -o remount,size=1G /dev/shm (or its mount point)",
		       path, sz, fr);
	else if (avail < size / 10)
		report(d, WARN,
		       "the filesystem holding %s is almost full: %s free of %s; remove topics "
		       "no longer used (shmbus rm) or grow it (mount -o remount,size=...)",
		       path, fr, sz);
	else
		report(d, OK, "filesystem holding %s: %s, %s free", path, sz, fr);

	if (statfs(path, &fs) == 0 && fs.f_type != TMPFS_MAGIC && fs.f_type != RAMFS_MAGIC)
		report(d, WARN,
		       "%s is not on tmpfs: topic files may be written back to disk; set "
		       "SHMBUS_DIR to a directory under /dev/shm",
		       path);
}

/* Readers whose process is gone hold their slot until a library call reclaims it. */
static void check_readers(struct doctor *d, const char *name, uint32_t max_readers)
{
	shmbus_reader_info_t *r = calloc(max_readers ? max_readers : 1, sizeof(*r));

	if (!r) {
		report(d, FAIL, "topic '%s': out of memory reading its readers", name);
		return;
	}
	int n = shmbus_topic_readers(d->bus, name, r, max_readers);
	if (n < 0) {
		report(d, FAIL, "topic '%s': cannot read its readers: %s", name,
		       tool_topic_why(name, n));
		goto out;
	}
	if ((unsigned)n > max_readers)
		n = (int)max_readers;
	for (int i = 0; i < n; i++) {
		if (!tool_pid_gone(r[i].pid))
			continue;
		report(d, WARN,
		       "topic '%s': stale slot: reader slot %" PRIu32 "%s%s belongs to pid %" PRId32
		       ", which is gone; it is reclaimed when a reader finds no free slot or a "
		       "blocked publisher waits, or at once by shmbusd (start it)",
		       name, r[i].slot, r[i].group[0] ? " of group " : "", r[i].group, r[i].pid);
	}
out:
	free(r);
}

/* Publishers whose process is gone: an unfinished claim of theirs stalls readers until
 * someone repairs it. */
static void check_publishers(struct doctor *d, const char *name, uint32_t max_publishers)
{
	shmbus_pub_info_t *p = calloc(max_publishers ? max_publishers : 1, sizeof(*p));

	if (!p) {
		report(d, FAIL, "topic '%s': out of memory reading its publishers", name);
		return;
	}
	int n = shmbus_topic_publishers(d->bus, name, p, max_publishers);
	if (n < 0) {
		report(d, FAIL, "topic '%s': cannot read its publishers: %s", name,
		       tool_topic_why(name, n));
		goto out;
	}
	if ((unsigned)n > max_publishers)
		n = (int)max_publishers;
	for (int i = 0; i < n; i++) {
		if (!tool_pid_gone(p[i].pid))
			continue;
		report(d, WARN,
		       "topic '%s': stale slot: publisher slot %" PRIu32 " belongs to pid %" PRId32
		       ", which is gone%s; it is reclaimed when a reader or publisher runs into "
		       "it, or at once by shmbusd (start it)",
		       name, p[i].slot, p[i].pid,
		       p[i].claim_open ? ", with a claim it never committed" : "");
	}
out:
	free(p);
}

static int check_topic(const char *name, void *arg)
{
	struct doctor *d = arg;
	shmbus_topic_opts_t o;
	shmbus_topic_stats_t st;
	char cap[TOOL_UNIT_LEN];

	int rc = shmbus_topic_info(d->bus, name, &o);
	if (rc == 0)
		rc = shmbus_topic_stats(d->bus, name, &st);
	if (rc == -ENOENT)
		return 0; /* removed meanwhile */
	if (rc < 0) {
		report(d, FAIL, "topic '%s': %s; remove it with shmbus rm %s", name,
		       tool_topic_why(name, rc), name);
		return 0;
	}
	report(d, OK,
	       "topic '%s': %s, %s ring, %" PRIu32 " %s, %" PRIu32 " %s, %" PRIu64 " published",
	       name, tool_policy_name(o.policy), tool_fmt_size(cap, o.capacity), st.publishers,
	       tool_plural(st.publishers, "publisher", "publishers"), st.readers,
	       tool_plural(st.readers, "reader", "readers"), st.published);
	check_readers(d, name, o.max_readers);
	check_publishers(d, name, o.max_publishers);
	return 0;
}

static void check_topics(struct doctor *d)
{
	unsigned before = d->counts[OK] + d->counts[WARN] + d->counts[FAIL];
	int rc = shmbus_topic_foreach(d->bus, check_topic, d);

	if (rc < 0)
		report(d, FAIL, "cannot list the topics: %s", tool_why(rc));
	else if (d->counts[OK] + d->counts[WARN] + d->counts[FAIL] == before)
		report(d, OK, "no topics on the bus");
}

/*
 * Entries named like a topic that are no regular file (a FIFO, a symlink, a directory):
 * the library's listing skips them and refuses to open them, so say so here, with what
 * to do. A symlink is looked at, never followed.
 */
static void check_strays(struct doctor *d)
{
	const char *path = shmbus_bus_path(d->bus);
	DIR *dir = opendir(path);

	if (!dir)
		return; /* check_tmp reports it */
	struct dirent *de;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		struct stat sb;
		if (de->d_name[0] == '.' || len <= 6 || strcmp(de->d_name + len - 6, ".topic") ||
		    fstatat(dirfd(dir), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISREG(sb.st_mode))
			continue;
		const char *type = S_ISFIFO(sb.st_mode) ? "FIFO" :
				   S_ISLNK(sb.st_mode)	? "symbolic link" :
				   S_ISDIR(sb.st_mode)	? "directory" :
				   S_ISSOCK(sb.st_mode) ? "socket" :
							  "special file";
		report(d, FAIL,
		       "%s/%s is a %s, not a topic file (topics are regular files; it is not "
		       "listed and cannot be opened); remove it with shmbus rm %.*s",
		       path, de->d_name, type, (int)(len - 6), de->d_name);
	}
	closedir(dir);
}

/* Temporary files of topic creations (".NAME.PID.RAND.tmp") older than a minute. */
static void check_tmp(struct doctor *d)
{
	const char *path = shmbus_bus_path(d->bus);
	DIR *dir = opendir(path);
	unsigned found = 0;

	if (!dir) {
		report(d, FAIL, "cannot read %s: %s", path, strerror(errno));
		return;
	}
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		struct stat sb;
		if (de->d_name[0] != '.' || len < 5 || strcmp(de->d_name + len - 4, ".tmp") != 0)
			continue;
		if (fstatat(dirfd(dir), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    now - sb.st_mtime < TMP_AGE_S)
			continue;
		report(d, WARN,
		       "leftover temporary file %s/%s (a topic creation that was interrupted); "
		       "remove it with rm",
		       path, de->d_name);
		found++;
	}
	closedir(dir);
	if (!found)
		report(d, OK, "no leftover temporary files");
}

static void check_daemon(struct doctor *d)
{
	shmbus_daemon_info_t info;
	int rc = shmbus_daemon_ping(d->bus, PING_MS, &info);

	switch (rc) {
	case 0: {
		uint64_t up = info.uptime_ms / 1000;
		report(d, OK,
		       "daemon: pid %" PRId32 ", %" PRIu32 " %s, up %" PRIu64 "h%02" PRIu64
		       "m%02" PRIu64 "s, version %.*s",
		       info.pid, info.clients, tool_plural(info.clients, "client", "clients"),
		       up / 3600, up / 60 % 60, up % 60, (int)sizeof(info.version), info.version);
		break;
	}
	case -ENOENT:
		report(d, WARN, "no daemon (the bus runs embedded; start shmbusd for supervision)");
		break;
	case -ECONNREFUSED:
		report(d, FAIL, "stale control socket: a daemon died; start shmbusd again");
		break;
	case -ETIMEDOUT:
		report(d, FAIL, "daemon not answering within %d ms; check shmbusd (or restart it)",
		       PING_MS);
		break;
	default:
		report(d, FAIL, "daemon: %s; restart shmbusd", tool_why(rc));
		break;
	}
}

static const char doctor_help[] =
	"usage: shmbus doctor\n"
	"\n"
	"Check the bus and report one line per finding, OK, WARN or FAIL, with what to do:\n"
	"the bus directory, the size and free space of its filesystem, every topic file,\n"
	"reader slots held by processes that are gone, temporary files left by interrupted\n"
	"topic creations, and the daemon. Exit status 1 if anything FAILed, else 0.\n"
	"Doctor only looks: it creates nothing, not even the bus directory (a bus that does\n"
	"not exist is a FAIL), and does not register with shmbusd.\n"
	"\n"
	"  -h, --help  show this help\n";

int tool_doctor(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct doctor d = { 0 };
	int opt;

	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (opt != 'h')
			return tool_bad_option("doctor", opt, argv);
		fputs(doctor_help, stdout);
		return TOOL_OK;
	}
	if (optind < argc)
		return tool_usage("doctor", "unexpected argument '%s'", argv[optind]);

	int rc = shmbus_bus_open_flags(&d.bus, tool_bus_name, SHMBUS_BUS_LOOK);
	if (rc == -EINVAL)
		return tool_bus_failed("doctor", rc);
	if (rc == -ENOENT) {
		report(&d, FAIL,
		       "%s; check the bus name (--bus, SHMBUS_BUS) and SHMBUS_DIR (a bus is made "
		       "when a program first opens it)",
		       tool_why(rc));
	} else if (rc == -EPERM) {
		/* A bus directory or root that another user controls, or a symlink. */
		report(&d, FAIL,
		       "%s; have its owner or root remove it, or set SHMBUS_DIR to a directory "
		       "of your own",
		       tool_why(rc));
	} else if (rc < 0) {
		report(&d, FAIL, "%s; set SHMBUS_DIR to a directory you may create or write",
		       tool_why(rc));
	} else {
		check_dir(&d);
		check_fs(&d);
		check_topics(&d);
		check_strays(&d);
		check_tmp(&d);
		check_daemon(&d);
		shmbus_bus_close(d.bus);
	}
	printf("%u OK, %u WARN, %u FAIL\n", d.counts[OK], d.counts[WARN], d.counts[FAIL]);
	return d.counts[FAIL] ? TOOL_FAILED : TOOL_OK;
}
