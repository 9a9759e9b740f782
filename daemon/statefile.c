/* SPDX-License-Identifier: MIT */
#include "daemon/statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *statefile_map(const char *path, size_t size, mode_t mode, unsigned flags, const char *who)
{
	char tmp[PATH_MAX + 96];
	const char *file = path;
	int oflags = O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
	if (flags & STATEFILE_REPLACE) {
		snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
		file = tmp;
		oflags |= O_TRUNC;
	}
	int fd = open(file, oflags, mode);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		fprintf(stderr, "%s: %s: %s\n", who, file, strerror(errno));
		if (fd >= 0) {
			close(fd);
			if (file != path)
				unlink(file);
		}
		return NULL;
	}
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		fprintf(stderr, "%s: mmap %s: %s\n", who, file, strerror(errno));
		if (file != path)
			unlink(file);
		return NULL;
	}
	if (file != path && rename(file, path) < 0) {
		fprintf(stderr, "%s: %s: %s\n", who, path, strerror(errno));
		munmap(m, size);
		unlink(file);
		return NULL;
	}
	return m;
}

void statefile_unmap(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}
