/* SPDX-License-Identifier: MIT */
/*
 * TCP connections through the bridge's io_uring: connect with a linked timeout, one send
 * and one recv in flight at a time, a retry timer. Closing shuts the socket down and
 * cancels what is in flight with one async cancel on the fd; the cancel's own completion
 * guarantees that closed() is always called from a later completion, never from inside a
 * callback that is still using the connection (so an owner may free it in closed()).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/bridge/conn.h"
#include "daemon/clock.h"

#define RECV_BUF (64u << 10)

int bbuf_reserve(struct bbuf *b, size_t more)
{
	if (b->cap - b->len >= more)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < more) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int bbuf_put(struct bbuf *b, const void *data, size_t n)
{
	if (bbuf_reserve(b, n) < 0)
		return -ENOMEM;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

void bbuf_free(struct bbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void bconn_init(struct bconn *c, struct bridge *b, const struct bconn_ops *ops, void *owner,
		const char *host, uint16_t port, uint32_t connect_timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->b = b;
	c->ops = ops;
	c->owner = owner;
	c->fd = -1;
	c->state = BC_IDLE;
	c->connect_op = (struct br_op){ BOP_CONNECT, c };
	c->lt_op = (struct br_op){ BOP_LTIMEOUT, c };
	c->send_op = (struct br_op){ BOP_SEND, c };
	c->recv_op = (struct br_op){ BOP_RECV, c };
	c->timer_op = (struct br_op){ BOP_TIMER, c };
	c->cancel_op = (struct br_op){ BOP_CANCEL, c };
	if (host)
		snprintf(c->host, sizeof(c->host), "%s", host);
	c->port = port;
	c->connect_timeout_ms = connect_timeout_ms;
}

/* Closing and nothing left in flight: close the fd and tell the owner (once). */
static void maybe_closed(struct bconn *c)
{
	if (c->state != BC_CLOSING || c->nops)
		return;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = BC_IDLE;
	c->out.len = 0;
	c->wire.len = 0;
	c->wire_off = 0;
	/* What was queued and not sent never will be: the next connection's frames are
	 * sent (bytes_end <= sent) once the kernel took their own bytes. */
	c->sent = c->queued;
	c->send_busy = c->recv_busy = 0;
	c->recv_paused = 0;
	c->ops->closed(c);
}

void bconn_fail(struct bconn *c, const char *fmt, ...)
{
	if (c->state == BC_CLOSING || c->state == BC_IDLE)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	c->state = BC_CLOSING;
	if (c->fd >= 0)
		shutdown(c->fd, SHUT_RDWR);
	/* Cancel whatever is in flight on the fd; the cancel's completion (counted) is the
	 * one that finally closes, so closed() never runs inside the caller. */
	struct io_uring_sqe *sqe = br_sqe(c->b);
	io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	br_arm(c->b, sqe, &c->cancel_op);
	c->nops++;
}

static void arm_recv(struct bconn *c)
{
	if (c->state != BC_OPEN || c->recv_busy || c->recv_paused)
		return;
	if (!c->rbuf) {
		c->rbuf = malloc(RECV_BUF);
		if (!c->rbuf) {
			bconn_fail(c, "out of memory");
			return;
		}
		c->rcap = RECV_BUF;
	}
	struct io_uring_sqe *sqe = br_sqe(c->b);
	io_uring_prep_recv(sqe, c->fd, c->rbuf, c->rcap, 0);
	br_arm(c->b, sqe, &c->recv_op);
	c->recv_busy = 1;
	c->nops++;
}

void bconn_want_recv(struct bconn *c)
{
	arm_recv(c);
}

void bconn_kick(struct bconn *c)
{
	if (c->state != BC_OPEN || c->send_busy)
		return;
	if (c->wire_off == c->wire.len) {
		if (!c->out.len)
			return;
		/* The filled buffer goes out; the drained one is filled next. */
		struct bbuf t = c->wire;
		c->wire = c->out;
		c->out = t;
		c->out.len = 0;
		c->wire_off = 0;
	}
	struct io_uring_sqe *sqe = br_sqe(c->b);
	io_uring_prep_send(sqe, c->fd, c->wire.p + c->wire_off, c->wire.len - c->wire_off,
			   MSG_NOSIGNAL);
	br_arm(c->b, sqe, &c->send_op);
	c->send_busy = 1;
	c->nops++;
}

static void set_opts(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void bconn_connect(struct bconn *c)
{
	if (c->state != BC_IDLE)
		return;
	struct addrinfo hints, *ai = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	char port[8];
	snprintf(port, sizeof(port), "%u", c->port);
	int rc = getaddrinfo(c->host, port, &hints, &ai);
	c->state = BC_CONNECTING;
	if (rc != 0 || !ai) {
		snprintf(c->why, sizeof(c->why), "cannot resolve '%s': %s", c->host,
			 rc ? gai_strerror(rc) : "no address");
		if (ai)
			freeaddrinfo(ai);
		/* Close through the ring, never from here (see bconn_fail). */
		c->fd = -1;
		c->state = BC_CLOSING;
		struct io_uring_sqe *sqe = br_sqe(c->b);
		io_uring_prep_nop(sqe);
		br_arm(c->b, sqe, &c->cancel_op);
		c->nops++;
		return;
	}
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		int e = errno;
		freeaddrinfo(ai);
		c->state = BC_OPEN; /* so that fail goes through */
		bconn_fail(c, "socket: %s", strerror(e));
		return;
	}
	set_opts(c->fd);
	/* The address must outlive the SQE: keep it in the connection. */
	if (ai->ai_addrlen > sizeof(c->sa)) {
		freeaddrinfo(ai);
		c->state = BC_OPEN;
		bconn_fail(c, "address too long");
		return;
	}
	memcpy(&c->sa, ai->ai_addr, ai->ai_addrlen);
	c->salen = (socklen_t)ai->ai_addrlen;
	freeaddrinfo(ai);
	c->lt_ts.tv_sec = c->connect_timeout_ms / 1000;
	c->lt_ts.tv_nsec = (long long)(c->connect_timeout_ms % 1000) * 1000000ll;
	br_sq_room(c->b, 2);
	struct io_uring_sqe *sqe = br_sqe(c->b);
	io_uring_prep_connect(sqe, c->fd, (struct sockaddr *)&c->sa, c->salen);
	sqe->flags |= IOSQE_IO_LINK;
	br_arm(c->b, sqe, &c->connect_op);
	/* Linked: it must be the very next SQE (br_sqe may submit, but never between). */
	sqe = br_sqe(c->b);
	io_uring_prep_link_timeout(sqe, &c->lt_ts, 0);
	br_arm(c->b, sqe, &c->lt_op);
	c->nops += 2;
}

void bconn_adopt(struct bconn *c, int fd)
{
	c->fd = fd;
	c->state = BC_OPEN;
	c->opened_ms = shmbusd_now_ms();
	set_opts(fd);
	arm_recv(c);
}

void bconn_timer(struct bconn *c, uint64_t ms)
{
	if (c->timer_armed)
		return;
	br_timeout(c->b, &c->timer_ts, ms, &c->timer_op);
	c->timer_armed = 1;
}

void bconn_cancel_timer(struct bconn *c)
{
	if (!c->timer_armed)
		return;
	struct io_uring_sqe *sqe = br_sqe(c->b);
	io_uring_prep_timeout_remove(sqe, (uint64_t)(uintptr_t)&c->timer_op, 0);
	br_arm(c->b, sqe, &c->cancel_op);
	/* Its completion goes through BOP_CANCEL like a close's cancel, and is counted. */
	c->nops++;
}

void bconn_flush_now(struct bconn *c)
{
	if (c->state != BC_OPEN || c->send_busy || c->wire_off != c->wire.len || !c->out.len)
		return;
	ssize_t n = send(c->fd, c->out.p, c->out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0)
		c->sent += (uint64_t)n;
}

void bconn_free(struct bconn *c)
{
	bbuf_free(&c->out);
	bbuf_free(&c->wire);
	free(c->rbuf);
	c->rbuf = NULL;
}

void bconn_complete(struct br_op *op, int res)
{
	struct bconn *c = op->owner;
	switch (op->kind) {
	case BOP_CONNECT:
		c->nops--;
		if (c->state != BC_CONNECTING) {
			maybe_closed(c);
			return;
		}
		if (res < 0) {
			bconn_fail(c, "connect to %s:%u: %s", c->host, c->port,
				   res == -ECANCELED ? "timed out" : strerror(-res));
			return;
		}
		c->state = BC_OPEN;
		c->opened_ms = shmbusd_now_ms();
		arm_recv(c);
		c->ops->opened(c);
		return;
	case BOP_LTIMEOUT:
		c->nops--;
		maybe_closed(c);
		return;
	case BOP_CANCEL:
		c->nops--;
		if (c->state == BC_IDLE)
			return; /* a timer remove */
		maybe_closed(c);
		return;
	case BOP_SEND:
		c->nops--;
		c->send_busy = 0;
		if (c->state != BC_OPEN) {
			maybe_closed(c);
			return;
		}
		if (res < 0) {
			bconn_fail(c, "send: %s", strerror(-res));
			return;
		}
		c->wire_off += (size_t)res;
		c->sent += (uint64_t)res;
		if (c->wire_off == c->wire.len) {
			c->wire.len = 0;
			c->wire_off = 0;
		}
		if (c->ops->sent)
			c->ops->sent(c);
		bconn_kick(c);
		return;
	case BOP_RECV:
		c->nops--;
		c->recv_busy = 0;
		if (c->state != BC_OPEN) {
			maybe_closed(c);
			return;
		}
		if (res == 0) {
			bconn_fail(c, "closed by the peer");
			return;
		}
		if (res < 0) {
			bconn_fail(c, "recv: %s", strerror(-res));
			return;
		}
		c->ops->data(c, c->rbuf, (size_t)res);
		arm_recv(c);
		return;
	case BOP_TIMER:
		c->timer_armed = 0;
		if (res == -ETIME && c->ops->timer)
			c->ops->timer(c);
		return;
	default:
		return;
	}
}
