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
 *
 * Inside, one module per concern: a .c and a .h that says what others may use. Lowest
 * first, with the bridge headers each one includes (its .c and .h together); a module
 * includes only modules above it in this list, so there is no include cycle (the build
 * fails otherwise: bridge_order in daemon/meson.build, scripts/include-order.sh). Calls go
 * down the list too, except that the loop gives each mirror a kind (struct mirror_ops,
 * defined by redis_mirror and ws_mirror), which mirror.c calls through its pointers.
 *
 *   codec         pure codecs: URLs, topic patterns, base64, SHA-1, stream IDs, JSON,
 *                 RESP replies (no I/O; fuzzed by tests/fuzz/bridge_codec.c)
 *   http          pure: the WebSocket upgrade, both sides              codec
 *   config        the [mirror], [import], [websocket] sections         codec
 *   ring          struct bridge, its io_uring, $sys.log events         (config, through
 *                                                                      daemon/config.h)
 *   stats         the shared counters (bridge.state)                   ring
 *   conn          byte buffers, TCP connections through the ring       codec, ring
 *   link          a peer's up, down and retry backoff                  config, conn, stats
 *   subwait       waits on topics through the ring (bus/intree.h)      ring
 *   mirror        what both kinds of mirror share; struct mirror_ops   config, conn, link,
 *                                                                      ring, stats, subwait
 *   redis_conn    Redis commands and replies on a connection           config, conn
 *   ws_frame      WebSocket frames over our buffers (wslay)            codec, conn
 *   redis_mirror  the Redis kind of mirror                             mirror, redis_conn,
 *                                                                      stats
 *   ws_mirror     the WebSocket kind of mirror                         http, mirror, stats,
 *                                                                      ws_frame
 *   redis_import  a Redis stream into a topic                          config, link, ring,
 *                                                                      redis_conn, stats
 *   ws_listener   the WebSocket listener and its clients               http, ring, stats,
 *                                                                      subwait, ws_frame
 *   loop          the thread (setup, dispatch, tick, topic scans,      bridge and all the
 *                 teardown) and this header's functions                modules it drives
 *
 * Below the bridge: daemon/config.h, daemon/clock.h, daemon/statefile.h, daemon/shmbusd.h
 * (events, JSON strings) and the library. Of these only daemon/config.h includes a bridge
 * header (bridge/config.h, for the config's types), and daemon/shmbusd.h through it.
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
