/* SPDX-License-Identifier: MIT */
#include "daemon/statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind(mode_t m)
{
	return S_ISREG(m)  ? "regular file" :
	       S_ISDIR(m)  ? "directory" :
	       S_ISLNK(m)  ? "symbolic link" :
	       S_ISFIFO(m) ? "FIFO" :
	       S_ISSOCK(m) ? "socket" :
			     "device";
}

int statefile_create(const char *path, size_t size, mode_t mode, const char *who)
{
	char tmp[PATH_MAX + 96];
	snprintf(tmp, sizeof(tmp), "%s.%d.new", path, (int)getpid());
	/* A leftover of ours (this pid, an earlier incarnation); in a sticky directory
	 * another user's stays, and O_EXCL then refuses it. */
	unlink(tmp);
	int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", who, tmp, strerror(errno));
		return -1;
	}
	/* The mode exactly (not the umask's): never writable by anyone but us. */
	if (fchmod(fd, mode & STATEFILE_MODE_MAX) < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    rename(tmp, path) < 0) {
		fprintf(stderr, "%s: %s: %s\n", who, path, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	return fd;
}

/* The existing file at path, opened in place if it is one we can trust: a regular file of
 * ours with one link. Else -1: nothing there (errno ENOENT), or something else, named on
 * stderr (it is replaced then). A mode writable by others is corrected. */
static int open_ours(const char *path, mode_t mode, const char *who)
{
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno != ENOENT)
			fprintf(stderr, "%s: %s: %s: replaced by a new file\n", who, path,
				strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    sb.st_nlink != 1) {
		fprintf(stderr,
			"%s: %s: a %s of uid %d, mode %04o, %lu link(s), not a file of ours: "
			"replaced by a new file\n",
			who, path, kind(sb.st_mode), (int)sb.st_uid, (unsigned)sb.st_mode & 07777,
			(unsigned long)sb.st_nlink);
		close(fd);
		errno = EPERM;
		return -1;
	}
	if ((sb.st_mode & 07777) != (mode & STATEFILE_MODE_MAX)) {
		fprintf(stderr, "%s: %s: mode %04o corrected to %04o\n", who, path,
			(unsigned)sb.st_mode & 07777, (unsigned)(mode & STATEFILE_MODE_MAX));
		if (fchmod(fd, mode & STATEFILE_MODE_MAX) < 0) {
			fprintf(stderr, "%s: %s: chmod: %s\n", who, path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
}

void *statefile_map(const char *path, size_t size, mode_t mode, unsigned flags, const char *who)
{
	int fd = -1;
	if (!(flags & STATEFILE_REPLACE))
		fd = open_ours(path, mode, who);
	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		fprintf(stderr, "%s: %s: %s\n", who, path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (fd < 0 && (fd = statefile_create(path, size, mode, who)) < 0)
		return NULL;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		fprintf(stderr, "%s: mmap %s: %s\n", who, path, strerror(errno));
		return NULL;
	}
	return m;
}

void statefile_unmap(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}
