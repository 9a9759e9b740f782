/* SPDX-License-Identifier: MIT */
/*
 * The daemon's small state files: a few pages in the bus directory, mapped shared and
 * written in place, read by other processes (`shmbus stat`) or by the next daemon. Used by
 * the bridge's counters (bridge.state) and its imports' positions (bridge-import.NAME);
 * written so that the conductor's daemon.state can use it too.
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

/*
 * Map size bytes of path (created with mode if missing; grown or shrunk to size) read and
 * write, shared. flags: 0 or STATEFILE_REPLACE. Returns the mapping, or NULL with the
 * reason on stderr as "WHO: FILE: error" (who: e.g. "shmbusd: bridge"). The caller's
 * thread only; unmap with statefile_unmap().
 */
void *statefile_map(const char *path, size_t size, mode_t mode, unsigned flags, const char *who);

/* Unmap what statefile_map() returned (NULL: nothing). The file stays. */
void statefile_unmap(void *p, size_t size);

#endif
