/* SPDX-License-Identifier: MIT */
/*
 * The bridge, as the rest of shmbusd sees it: a thread with its own io_uring that mirrors
 * local topics to Redis and WebSocket peers and imports Redis streams (docs/bridge.md).
 *
 * The handoff with the conductor is this small interface and nothing else: the bridge gets
 * its own copy of the config's bridge sections at start, its own bus handle and $sys.log
 * publisher, and an eventfd through which bridge_stop() asks it to end. It never reads or
 * writes the conductor's state, and the conductor never waits for it except in
 * bridge_stop() (at exit, and when a reload changes the bridge's sections).
 */
#ifndef SHMBUSD_BRIDGE_H
#define SHMBUSD_BRIDGE_H

#include "daemon/config.h"

struct bridge;

/*
 * Start the bridge thread for cfg's [mirror], [import] and [websocket] sections on the bus
 * in dir/bus (cfg is copied). A config with none starts nothing and returns 0 with *out
 * NULL. Returns 0, or -1 with the reason on stderr (a listening socket that cannot be
 * bound, no io_uring). Called by the conductor's thread only.
 */
int bridge_start(struct bridge **out, const struct shmbusd_config *cfg, const char *bus_dir);

/* Ask the bridge to stop and wait for it (durable positions stay in the topics). NULL: no-op. */
void bridge_stop(struct bridge *b);

/* Did the bridge sections change between two configs (a reload restarts the bridge)? */
int bridge_config_changed(const struct shmbusd_config *a, const struct shmbusd_config *b);

#endif
