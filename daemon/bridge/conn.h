/* SPDX-License-Identifier: MIT */
/*
 * TCP connections through the bridge's io_uring (conn.c), used by mirrors, imports and the
 * listener's clients, and the growable byte buffers they send from. Bridge thread only.
 */
#ifndef SHMBUSD_BRIDGE_CONN_H
#define SHMBUSD_BRIDGE_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon/bridge/codec.h"
#include "daemon/bridge/ring.h"

/* A growable byte buffer. */
struct bbuf {
	uint8_t *p;
	size_t len, cap;
};
int bbuf_reserve(struct bbuf *b, size_t more);
int bbuf_put(struct bbuf *b, const void *data, size_t n);
void bbuf_free(struct bbuf *b);

/* ---- connections ---------------------------------------------------------------------- */

enum { BC_IDLE, BC_CONNECTING, BC_OPEN, BC_CLOSING };

struct bconn;
struct bconn_ops {
	void (*opened)(struct bconn *c);			   /* connected */
	void (*data)(struct bconn *c, const uint8_t *p, size_t n); /* bytes came */
	void (*sent)(struct bconn *c);	 /* everything handed to send went out */
	void (*closed)(struct bconn *c); /* all operations done, fd closed; c->why says why */
	void (*timer)(struct bconn *c);	 /* the retry timer fired */
};

/*
 * A TCP connection: one connect (with a linked timeout), at most one send and one recv in
 * flight. Bytes to send are appended to out; bconn_kick() swaps out and wire and sends
 * wire. Closing (bconn_fail) shuts the socket down and cancels what is in flight; the fd
 * is closed and ops->closed called once every operation has completed.
 */
struct bconn {
	struct bridge *b;
	const struct bconn_ops *ops;
	void *owner;
	int fd;
	int state;
	unsigned nops; /* operations in flight (timer excluded) */
	struct br_op connect_op, lt_op, send_op, recv_op, timer_op, cancel_op;
	struct __kernel_timespec lt_ts, timer_ts;
	int timer_armed;
	int send_busy, recv_busy;
	int recv_paused; /* the owner stops reading (its queue is full) */
	struct bbuf out, wire;
	size_t wire_off;
	uint64_t queued; /* bytes appended to out, ever */
	uint64_t sent;	 /* bytes the kernel took, ever */
	uint8_t *rbuf;
	size_t rcap;
	struct sockaddr_storage sa;
	socklen_t salen;
	char host[BR_HOST_MAX + 1];
	uint16_t port;
	uint32_t connect_timeout_ms;
	uint64_t opened_ms;
	char why[512];
};

void bconn_init(struct bconn *c, struct bridge *b, const struct bconn_ops *ops, void *owner,
		const char *host, uint16_t port, uint32_t connect_timeout_ms);
/* Connect (resolving host). Failure shows as closed(). */
void bconn_connect(struct bconn *c);
/* Take an accepted socket (listener side). */
void bconn_adopt(struct bconn *c, int fd);
/* Start a send of what is in out, if none is in flight. */
void bconn_kick(struct bconn *c);
/* Arm a recv if none is in flight (after recv_paused went back to 0). */
void bconn_want_recv(struct bconn *c);
/* Close because of why (printf-style); closed() follows when the ring is done with it. */
void bconn_fail(struct bconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Call ops->timer in ms milliseconds. */
void bconn_timer(struct bconn *c, uint64_t ms);
void bconn_cancel_timer(struct bconn *c);
/* At shutdown: hand what is in out to the kernel now, without waiting (a goodbye). */
void bconn_flush_now(struct bconn *c);
/* Free buffers (the connection must be idle, no timer). */
void bconn_free(struct bconn *c);
void bconn_complete(struct br_op *op, int res);

#endif
