/* SPDX-License-Identifier: MIT */
/*
 * Transitional (issue 12): what this header held is now in ring/record.h (the record
 * format), ring/writer.h (claims, limits) and ring/repair.h (repair, dead slots). The
 * daemon still includes it; delete it once daemon/ includes those instead. The library
 * does not use it.
 */
#ifndef SHMBUS_RING_LOG_H
#define SHMBUS_RING_LOG_H

#include "ring/atomic.h"
#include "ring/record.h"
#include "ring/repair.h"
#include "ring/writer.h"

/*
 * Transitional too: the daemon still spells two atomics without their sb_ prefix
 * (daemon/reaper.c, which includes this header). Remove these once it uses the prefixed
 * names; the library does not use them.
 */
#define ld_relaxed sb_ld_relaxed
#define ld_acquire sb_ld_acquire

#endif
