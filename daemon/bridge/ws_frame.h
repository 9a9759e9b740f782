/* SPDX-License-Identifier: MIT */
/*
 * WebSocket frames through the bridge's ring (ws_frame.c), with wslay as the frame codec
 * only: its event API is given callbacks that read from and write to our buffers (never
 * sockets), so it does masking, fragmentation, ping/pong and the close handshake while
 * every byte still goes through io_uring. Used by the WebSocket mirror (client side) and
 * the listener's clients (server side). Bridge thread only.
 */
#ifndef SHMBUSD_BRIDGE_WS_FRAME_H
#define SHMBUSD_BRIDGE_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <shmbus.h>
#include <wslay/wslay.h>

#include "daemon/bridge/conn.h"

/* What every wslay context of ours shares: input from a buffer, output to a bconn. */
struct wsio {
	struct bconn *c;
	struct bbuf in;
	size_t in_off;
	int paused; /* give wslay no input for now (a message waits for room) */
};

/*
 * A wslay context (server or client side) over our buffers, on_msg called for every
 * message. user is its user data, a struct whose first member is its struct wsio (a
 * mirror's, a listener's client's). 0 or -1 (out of memory).
 */
int ws_frame_context(wslay_event_context_ptr *ctx, int server,
		     wslay_event_on_msg_recv_callback on_msg, void *user);

/* Keep bytes that came for wslay (bounded by the recv size, as it is fed at once). 0 or
 * -ENOMEM. */
int ws_frame_feed(struct wsio *io, const uint8_t *p, size_t n);

/* The first consumed bytes of the input were the HTTP handshake: what follows is frames. */
void ws_frame_skip(struct wsio *io, size_t consumed);

/* Have wslay write what it queued (frames, pongs, close) and send it; the connection
 * fails if wslay cannot. ctx may be NULL (nothing to write). */
void ws_frame_flush(wslay_event_context_ptr ctx, struct bconn *c);

/*
 * Queue msg of topic as one message: with json, a text frame with the JSON envelope (built
 * in scratch; lost in it when not 0), else a binary frame with the payload; then have
 * wslay write it. 0, or -1 after bconn_fail().
 */
int ws_frame_message(wslay_event_context_ptr ctx, struct bconn *c, struct bbuf *scratch, int json,
		     const char *topic, const shmbus_msg_t *msg, uint64_t lost);

/* n unpredictable bytes (masks, handshake keys); never fails. */
void ws_frame_random(uint8_t *p, size_t n);

#endif
