/* SPDX-License-Identifier: MIT */
/*
 * The daemon's small state files: a few pages in the bus directory, written by the daemon
 * only and read by other processes (`shmbus stat`) or by the next daemon. The bridge's
 * counters (bridge.state) and its imports' positions (bridge-import.NAME) are mapped
 * shared and written in place; the conductor's daemon.state is written with pwrite()
 * (statefile_create()), so that no truncation of it, not even root's, can fault the
 * daemon.
 *
 * Nobody but the daemon can write them: their mode is at most STATEFILE_MODE_MAX (a client
 * able to truncate a file the daemon maps would kill it with SIGBUS). A file found in the
 * way that is not a regular file of ours with one link is replaced, never trusted.
 */
#ifndef SHMBUSD_STATEFILE_H
#define SHMBUSD_STATEFILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Make a new file beside path, size it and map it, then rename it over path: a reader
 * that holds the old file keeps seeing it whole (a stopped writer) and never a file being
 * rewritten. Without this flag the file is opened in place (created if missing) and what
 * it held is kept.
 */
#define STATEFILE_REPLACE 1u

/* Owner read and write, read for the others the config lets read. */
#define STATEFILE_MODE_MAX 0644

/*
 * Make a new file of size bytes (mode & STATEFILE_MODE_MAX exactly, whatever the umask)
 * beside path and rename it over whatever path was. Returns its fd (read and write), or -1
 * with the reason on stderr as "WHO: FILE: error".
 */
int statefile_create(const char *path, size_t size, mode_t mode, const char *who);

/*
 * Map size bytes of path (created with mode if missing; grown or shrunk to size) read and
 * write, shared. An existing file is kept (and its mode corrected) only if it is a regular
 * file of ours with one link; anything else is replaced, and said so on stderr.
 * flags: 0 or STATEFILE_REPLACE. Returns the mapping, or NULL with the
 * reason on stderr as "WHO: FILE: error" (who: e.g. "shmbusd: bridge"). The caller's
 * thread only; unmap with statefile_unmap().
 */
void *statefile_map(const char *path, size_t size, mode_t mode, unsigned flags, const char *who);

/* Unmap what statefile_map() returned (NULL: nothing). The file stays. */
void statefile_unmap(void *p, size_t size);

#endif
