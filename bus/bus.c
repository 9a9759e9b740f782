/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/internal.h"
#include "shm/err.h"

#define DEFAULT_DIR "/dev/shm/shmbus"

/*
 * Who may have made or changed a directory we are about to trust.
 *
 * The bus root and the bus directory decide which files we map: whoever can add, rename or
 * remove entries in them can hand us a topic file of their own (and read what we publish),
 * or point a name elsewhere. So both are opened O_DIRECTORY|O_NOFOLLOW (a symlink is
 * refused, even one to a good directory) and fstat-checked:
 *  - the owner is the caller (euid) or root: nobody else could have set its mode and group;
 *  - group write only if the caller owns it (its group was its owner's choice) or is in
 *    that group (a root-owned bus directory shared with a group by shmbusd's `group =`);
 *  - write for others: the root may have it (and group write for any group) only with
 *    the sticky bit, as /dev/shm has: others may add buses there, but cannot rename or
 *    remove ours, and each bus directory passes this check on its own. A bus directory
 *    may have it only with the sticky bit too: a bus its owner (the caller, or root, as
 *    shmbusd with `mode = 0666`) shares with everyone, where anyone may add a topic but
 *    nobody can remove or rename another's (docs/security.md says what that leaves).
 * A refusal is -EPERM with a message naming the path, its owner and its mode.
 */
static int in_group(gid_t g)
{
	if (g == getegid())
		return 1;
	int n = getgroups(0, NULL);
	if (n <= 0)
		return 0;
	gid_t *gs = calloc((size_t)n, sizeof(*gs));
	if (!gs)
		return 0;
	n = getgroups(n, gs);
	int found = 0;
	for (int i = 0; i < n && !found; i++)
		found = gs[i] == g;
	free(gs);
	return found;
}

static const char *user_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "uid %u (%s)", (unsigned)uid, res->pw_name);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
	return buf;
}

static int dir_refuse(const char *bus, const char *path, const struct stat *sb, const char *why)
{
	char owner[160], me[160];
	return shmbus_err(-EPERM,
			  "bus '%s': refusing %s (owner %s, group %u, mode %04o): %s; "
			  "you are %s",
			  bus, path, user_name(sb->st_uid, owner, sizeof(owner)),
			  (unsigned)sb->st_gid, (unsigned)(sb->st_mode & 07777), why,
			  user_name(geteuid(), me, sizeof(me)));
}

/* The trust rule above for an open directory; is_root: the bus root, else a bus directory. */
static int dir_trusted(int fd, const char *bus, const char *path, int is_root)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return shmbus_err(-errno, "bus '%s': cannot stat %s: %s", bus, path,
				  strerror(errno));
	uid_t me = geteuid();
	if (sb.st_uid != me && sb.st_uid != 0)
		return dir_refuse(bus, path, &sb,
				  "it belongs to another user, who could swap "
				  "the files in it (it must belong to you or root)");
	/* Sticky (the root only): others may add entries but not rename or remove ours. */
	if (is_root && (sb.st_mode & S_ISVTX))
		return 0;
	if ((sb.st_mode & S_IWGRP) && sb.st_uid != me && !in_group(sb.st_gid))
		return dir_refuse(bus, path, &sb, "it is writable by a group you are not in");
	if ((sb.st_mode & S_IWOTH) && !(sb.st_mode & S_ISVTX))
		return dir_refuse(bus, path, &sb, "it is writable by everyone and not sticky");
	return 0;
}

/*
 * Open dirfd/name (dirfd AT_FDCWD: name is an absolute path) as a directory without
 * following a symlink, creating it with mode first unless look. Returns the fd or -errno
 * with a message; ENOENT is only reported when look.
 */
static int dir_open(int dirfd, const char *name, const char *path, const char *bus, mode_t mode,
		    int look)
{
	if (!look && mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
		return shmbus_err(-errno, "bus '%s': cannot create directory %s: %s", bus, path,
				  strerror(errno));
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	int e = errno;
	struct stat sb;
	if ((e == ENOTDIR || e == ELOOP) && fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(sb.st_mode))
		return dir_refuse(bus, path, &sb,
				  "it is a symbolic link (a bus directory and "
				  "its root are never followed through one)");
	return shmbus_err(-e, "bus '%s': cannot open directory %s: %s", bus, path, strerror(e));
}

/* mkdir -p for the parents of the bus root (not checked: they are the caller's choice). */
static int mkparents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0755);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

/*
 * Open the bus directory root/name into b->dirfd, creating both unless look (the root
 * 0755, the bus directory 0770, both less the umask), and check both as dir_trusted().
 */
static int bus_dir_open(shmbus_bus_t *b, const char *root, int look)
{
	char rpath[PATH_MAX];
	snprintf(rpath, sizeof(rpath), "%s", root);
	/* "dir/" would follow a symlink named dir even with O_NOFOLLOW. */
	for (size_t n = strlen(rpath); n > 1 && rpath[n - 1] == '/'; n--)
		rpath[n - 1] = '\0';
	if (!look) {
		char tmp[PATH_MAX];
		snprintf(tmp, sizeof(tmp), "%s", rpath);
		int rc = mkparents(tmp);
		if (rc < 0)
			return shmbus_err(rc, "bus '%s': cannot create directory %s: %s", b->name,
					  rpath, strerror(-rc));
	}
	int rfd = dir_open(AT_FDCWD, rpath, rpath, b->name, 0755, look);
	if (rfd == -ENOENT || (look && rfd == -ENOTDIR)) {
		/* Looking: a missing root is a missing bus, said about the bus directory. */
		if (rfd == -ENOENT)
			return shmbus_err(-ENOENT, "bus '%s' does not exist (no directory %s)",
					  b->name, b->path);
		return shmbus_err(rfd, "bus '%s': cannot stat %s: %s", b->name, b->path,
				  strerror(-rfd));
	}
	if (rfd < 0)
		return rfd;
	int rc = dir_trusted(rfd, b->name, rpath, 1);
	if (rc < 0)
		goto out;
	int fd = dir_open(rfd, b->name, b->path, b->name, 0770, look);
	if (fd < 0) {
		rc = fd;
		if (rc == -ENOENT)
			rc = shmbus_err(-ENOENT, "bus '%s' does not exist (no directory %s)",
					b->name, b->path);
		else if (rc == -ENOTDIR)
			rc = shmbus_err(-ENOTDIR, "bus '%s': %s is not a directory", b->name,
					b->path);
		goto out;
	}
	rc = dir_trusted(fd, b->name, b->path, 0);
	if (rc < 0) {
		close(fd);
		goto out;
	}
	b->dirfd = fd;
out:
	close(rfd);
	return rc;
}

SHMBUS_API int shmbus_bus_open_flags(shmbus_bus_t **out, const char *name, int flags)
{
	*out = NULL;
	shmbus_err_clear();
	if (flags & ~SHMBUS_BUS_LOOK)
		return shmbus_err(-EINVAL, "unknown bus flags 0x%x", (unsigned)flags);
	if (!name) {
		name = getenv("SHMBUS_BUS");
		if (!name || !*name)
			name = "default";
	}
	int rc = shmbus_token_check("bus name", name, SHMBUS_TOPIC_NAME_MAX);
	if (rc < 0)
		return rc;
	const char *root = getenv("SHMBUS_DIR");
	if (!root || !*root)
		root = DEFAULT_DIR;
	if (root[0] != '/')
		return shmbus_err(-EINVAL, "SHMBUS_DIR '%s' is not an absolute path", root);
	shmbus_bus_t *b = calloc(1, sizeof(*b));
	if (!b)
		return shmbus_err(-ENOMEM, "out of memory");
	b->daemon_fd = -1;
	b->dirfd = -1;
	if ((size_t)snprintf(b->path, sizeof(b->path), "%s/%s", root, name) >= sizeof(b->path)) {
		free(b);
		return shmbus_err(-ENAMETOOLONG, "bus directory path too long: %s/%s", root, name);
	}
	snprintf(b->name, sizeof(b->name), "%s", name);
	rc = bus_dir_open(b, root, flags & SHMBUS_BUS_LOOK);
	if (rc < 0) {
		free(b);
		return rc;
	}
	/* Looking is not using: a looker is no client of the daemon (nothing is logged). */
	b->look = (flags & SHMBUS_BUS_LOOK) != 0;
	pthread_mutex_init(&b->lock, NULL);
	shmbus_client_register(b);
	*out = b;
	return 0;
}

SHMBUS_API int shmbus_bus_open(shmbus_bus_t **out, const char *name)
{
	return shmbus_bus_open_flags(out, name, 0);
}

SHMBUS_API void shmbus_bus_close(shmbus_bus_t *bus)
{
	if (!bus)
		return;
	shmbus_client_unregister(bus);
	if (bus->dirfd >= 0)
		close(bus->dirfd);
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

SHMBUS_API const char *shmbus_bus_path(const shmbus_bus_t *bus)
{
	return bus->path;
}
