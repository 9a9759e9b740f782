/* SPDX-License-Identifier: MIT */
/*
 * Transitional (issue 12): what this header held is now in ring/wake.h (futex, membarrier,
 * pause) and ring/clock.h (clocks, deadlines, timestamps). The daemon still includes it;
 * delete it once daemon/ includes those two instead. The library does not use it.
 */
#ifndef SHMBUS_RING_WAIT_H
#define SHMBUS_RING_WAIT_H

#include "ring/clock.h"
#include "ring/wake.h"

#endif
