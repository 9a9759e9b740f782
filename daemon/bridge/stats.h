/* SPDX-License-Identifier: MIT */
/*
 * The bridge's shared counters (stats.c): bus/proto.h's "bridge.state" in the bus
 * directory, a slot per mirror, import and listener, written by the bridge thread only
 * (relaxed stores), read by `shmbus stat` with nothing of the daemon.
 */
#ifndef SHMBUSD_BRIDGE_STATS_H
#define SHMBUSD_BRIDGE_STATS_H

#include <stddef.h> /* bus/proto.h uses size_t */

#include "bus/proto.h"
#include "daemon/bridge/ring.h"

/* Make bridge.state anew with room for nslots slots. 0, or -1 with the reason on stderr. */
int br_stats_open(struct bridge *b, unsigned nslots);

/* The ring's counters and the update time into the file. */
void br_stats_update(struct bridge *b);

void br_stats_close(struct bridge *b);

/* A stats slot for a mirror, import or the listener (a spare one if there is no room). */
struct shmbus_bridge_slot *br_slot(struct bridge *b, const char *name, const char *kind,
				   const char *peer);

/* The slot's last error (text for humans). */
void br_slot_error(struct shmbus_bridge_slot *s, const char *why);

/* Relaxed counter updates in the shared stats (single writer: this thread). */
#define BR_ADD(slot, field, v) \
	__atomic_store_n(&(slot)->field, (slot)->field + (v), __ATOMIC_RELAXED)
#define BR_SET(slot, field, v) __atomic_store_n(&(slot)->field, (v), __ATOMIC_RELAXED)

#endif
