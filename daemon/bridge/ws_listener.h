/* SPDX-License-Identifier: MIT */
/*
 * The bridge's WebSocket listener (ws_listener.c): [websocket] in the config. Clients
 * subscribe to topic patterns or publish to a topic; opaque to the loop, which drives it
 * with these functions. Bridge thread only.
 */
#ifndef SHMBUSD_BRIDGE_WS_LISTENER_H
#define SHMBUSD_BRIDGE_WS_LISTENER_H

#include "daemon/bridge/ring.h"

struct wss;

/* Listen as b->cfg.ws says, an accept armed. NULL with the reason on stderr. */
struct wss *wss_new(struct bridge *b);

/* The accept's completion (BOP_ACCEPT): a new client, or an error. */
void wss_accept(struct wss *s, int res);

/* Each turn: free closed clients, retry held publishes, send what subscriptions hold. */
void wss_work(struct wss *s);

/* Every 100 ms: handshake and close timeouts, pings. */
void wss_tick(struct wss *s);

/* Topics may have appeared: subscriptions attach to those that match. */
void wss_rescan(struct wss *s);

/* Look at every subscription again (the timed poll without futex waits). */
void wss_poll(struct wss *s);

/* The bridge stops: close the listener and the clients, cancel their waits. */
void wss_stop(struct wss *s);

/* After the ring is drained: free. */
void wss_free(struct wss *s);

#endif
