/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bus/internal.h"
#include "shm/err.h"

#define DEFAULT_DIR "/dev/shm/shmbus"

/* mkdir -p for the bus root and the bus directory (mode 0770 plus the caller's umask). */
static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0777);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return -errno;
	}
	if (mkdir(path, 0770) < 0 && errno != EEXIST)
		return -errno;
	struct stat sb;
	if (stat(path, &sb) < 0)
		return -errno;
	if (!S_ISDIR(sb.st_mode))
		return -ENOTDIR;
	return 0;
}

/* A bus that is only looked at must exist already: a directory, which is not made. */
static int bus_exists(const shmbus_bus_t *b)
{
	struct stat sb;
	if (stat(b->path, &sb) < 0) {
		int e = errno;
		if (e == ENOENT)
			return shmbus_err(-ENOENT, "bus '%s' does not exist (no directory %s)",
					  b->name, b->path);
		return shmbus_err(-e, "bus '%s': cannot stat %s: %s", b->name, b->path,
				  strerror(e));
	}
	if (!S_ISDIR(sb.st_mode))
		return shmbus_err(-ENOTDIR, "bus '%s': %s is not a directory", b->name, b->path);
	return 0;
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
	if ((size_t)snprintf(b->path, sizeof(b->path), "%s/%s", root, name) >= sizeof(b->path)) {
		free(b);
		return shmbus_err(-ENAMETOOLONG, "bus directory path too long: %s/%s", root, name);
	}
	snprintf(b->name, sizeof(b->name), "%s", name);
	if (flags & SHMBUS_BUS_LOOK) {
		rc = bus_exists(b);
	} else {
		rc = mkdirs(b->path);
		if (rc < 0)
			shmbus_err(rc, "bus '%s': cannot create directory %s: %s", name, b->path,
				   strerror(-rc));
	}
	if (rc < 0) {
		free(b);
		return rc;
	}
	/* Looking is not using: a looker is no client of the daemon (nothing is logged). */
	if (!(flags & SHMBUS_BUS_LOOK))
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
	free(bus);
}

SHMBUS_API const char *shmbus_bus_path(const shmbus_bus_t *bus)
{
	return bus->path;
}
