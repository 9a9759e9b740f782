/* SPDX-License-Identifier: MIT */
/*
 * Kernel channels between two processes:
 *   pipe                one message per write(), read() of exactly one message; the pipe
 *                       sized like the topic's ring where the kernel allows it
 *   unix seqpacket      a SOCK_SEQPACKET socketpair, one message per send() / recv()
 *                       (every publisher of an MPSC run shares the sending end)
 *   unix stream batched a SOCK_STREAM socketpair, messages packed into 64 KiB writes and
 *                       read back with large reads: the kernel's best case for throughput
 * Send buffers are raised to the topic's ring size (SO_SNDBUFFORCE when allowed), so
 * every channel may hold as much as shmbus's ring does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loops.h"

#define BATCH (64u << 10)

struct sk {
	int fd;
	uint32_t size;
	uint8_t *buf;	  /* rx: receive buffer; tx (stream): the batch */
	size_t cap;	  /* its size */
	size_t off, fill; /* rx (stream): parsed up to off, filled up to fill */
	size_t pending;	  /* tx (stream): bytes in the batch */
};

static void close_pair(int *fd)
{
	for (int i = 0; i < 2; i++) {
		if (fd[i] >= 0)
			close(fd[i]);
		fd[i] = -1;
	}
}

static void sk_cleanup(struct run *r)
{
	close_pair(r->fd_a);
	close_pair(r->fd_b);
}

static void size_sndbuf(struct run *r, int fd)
{
	int want = (int)(r->capacity > 4ull * r->size ? r->capacity : 4ull * r->size);

	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
}

static int sock_prepare_type(struct run *r, int type)
{
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, r->fd_a) < 0 ||
	    socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, r->fd_b) < 0) {
		int e = errno;

		snprintf(r->err, sizeof(r->err), "socketpair: %s", strerror(e));
		sk_cleanup(r);
		return -e;
	}
	for (int i = 0; i < 2; i++) {
		size_sndbuf(r, r->fd_a[i]);
		size_sndbuf(r, r->fd_b[i]);
	}
	return 0;
}

static int seqpacket_prepare(struct run *r)
{
	return sock_prepare_type(r, SOCK_SEQPACKET);
}

static int stream_prepare(struct run *r)
{
	return sock_prepare_type(r, SOCK_STREAM);
}

static int pipe_prepare(struct run *r)
{
	if (pipe2(r->fd_a, O_CLOEXEC) < 0 || pipe2(r->fd_b, O_CLOEXEC) < 0) {
		int e = errno;

		snprintf(r->err, sizeof(r->err), "pipe: %s", strerror(e));
		sk_cleanup(r);
		return -e;
	}
	/* As large as the ring, or as large as an unprivileged pipe may be. */
	for (int i = 0; i < 2; i++) {
		int *fd = i ? r->fd_b : r->fd_a;

		if (fcntl(fd[1], F_SETPIPE_SZ, (int)r->capacity) < 0)
			fcntl(fd[1], F_SETPIPE_SZ, 1 << 20);
	}
	return 0;
}

static struct sk *sk_new(int fd, uint32_t size, size_t cap)
{
	struct sk *s = calloc(1, sizeof(*s));

	if (!s || !(s->buf = aligned_alloc(64, (cap + 63) & ~(size_t)63)))
		wfail("out of memory");
	s->fd = fd;
	s->size = size;
	s->cap = cap;
	return s;
}

/* Socket pairs: tx writes to [0], rx reads from [1]. Pipes: tx writes [1], rx reads [0]. */
static void *seqpacket_open_tx(struct run *r, int chan, int idx)
{
	(void)idx;
	return sk_new((chan ? r->fd_b : r->fd_a)[0], r->size, 64);
}

static void *seqpacket_open_rx(struct run *r, int chan, int idx)
{
	(void)idx;
	return sk_new((chan ? r->fd_b : r->fd_a)[1], r->size, (size_t)r->size + 64);
}

static void *pipe_open_tx(struct run *r, int chan, int idx)
{
	(void)idx;
	return sk_new((chan ? r->fd_b : r->fd_a)[1], r->size, 64);
}

static void *pipe_open_rx(struct run *r, int chan, int idx)
{
	(void)idx;
	return sk_new((chan ? r->fd_b : r->fd_a)[0], r->size, (size_t)r->size + 64);
}

static void *stream_open_tx(struct run *r, int chan, int idx)
{
	(void)idx;
	return sk_new((chan ? r->fd_b : r->fd_a)[0], r->size, r->size > BATCH ? r->size : BATCH);
}

static void *stream_open_rx(struct run *r, int chan, int idx)
{
	(void)idx;
	size_t cap = 2 * (size_t)(r->size > BATCH ? r->size : BATCH);
	return sk_new((chan ? r->fd_b : r->fd_a)[1], r->size, cap);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			wfail("write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

static void read_full(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t g = read(fd, p, n);

		if (g < 0 && errno == EINTR)
			continue;
		if (g <= 0)
			wfail("read: %s", g ? strerror(errno) : "end of file");
		p += g;
		n -= (size_t)g;
	}
}

/* ---- pipe ---- */

static inline void pipe_send(void *h, const uint8_t *buf, uint32_t len)
{
	write_all(((struct sk *)h)->fd, buf, len);
}

static inline void pipe_recv(void *h, struct view *v)
{
	struct sk *s = h;

	read_full(s->fd, s->buf, s->size);
	v->data = s->buf;
	v->len = s->size;
	v->lost = 0;
}

/* ---- seqpacket ---- */

static inline void seqpacket_send(void *h, const uint8_t *buf, uint32_t len)
{
	struct sk *s = h;

	for (;;) {
		ssize_t w = send(s->fd, buf, len, MSG_NOSIGNAL);

		if (w == (ssize_t)len)
			return;
		if (w < 0 && errno == EINTR)
			continue;
		wfail("send of %u bytes: %s", len, w < 0 ? strerror(errno) : "short");
	}
}

static inline void seqpacket_recv(void *h, struct view *v)
{
	struct sk *s = h;

	for (;;) {
		ssize_t g = recv(s->fd, s->buf, s->cap, 0);

		if (g >= 0) {
			v->data = s->buf;
			v->len = (uint32_t)g;
			v->lost = 0;
			return;
		}
		if (errno != EINTR)
			wfail("recv: %s", strerror(errno));
	}
}

/* ---- stream, batched ---- */

static inline void stream_flush(void *h)
{
	struct sk *s = h;

	write_all(s->fd, s->buf, s->pending);
	s->pending = 0;
}

static inline void stream_send(void *h, const uint8_t *buf, uint32_t len)
{
	struct sk *s = h;

	if (s->pending + len > s->cap)
		stream_flush(s);
	memcpy(s->buf + s->pending, buf, len);
	s->pending += len;
	if (s->pending == s->cap)
		stream_flush(s);
}

static inline void stream_recv(void *h, struct view *v)
{
	struct sk *s = h;

	if (s->fill - s->off < s->size) {
		/* Keep the partial message, read as much as has come behind it. */
		memmove(s->buf, s->buf + s->off, s->fill - s->off);
		s->fill -= s->off;
		s->off = 0;
		while (s->fill < s->size) {
			ssize_t g = read(s->fd, s->buf + s->fill, s->cap - s->fill);

			if (g < 0 && errno == EINTR)
				continue;
			if (g <= 0)
				wfail("read: %s", g ? strerror(errno) : "end of file");
			s->fill += (size_t)g;
		}
	}
	v->data = s->buf + s->off;
	v->len = s->size;
	v->lost = 0;
	s->off += s->size;
}

static const struct ops pipe_ops = {
	.open_tx = pipe_open_tx,
	.open_rx = pipe_open_rx,
	.send = pipe_send,
	.recv = pipe_recv,
};
static const struct ops seqpacket_ops = {
	.open_tx = seqpacket_open_tx,
	.open_rx = seqpacket_open_rx,
	.send = seqpacket_send,
	.recv = seqpacket_recv,
};
static const struct ops stream_ops = {
	.open_tx = stream_open_tx,
	.open_rx = stream_open_rx,
	.send = stream_send,
	.flush = stream_flush,
	.recv = stream_recv,
};

LOOPS_DEFINE(pipe, &pipe_ops)
LOOPS_DEFINE(seqpacket, &seqpacket_ops)
LOOPS_DEFINE(stream, &stream_ops)

const struct peer peer_pipe = {
	.id = "pipe",
	.label = "pipe",
	.prepare = pipe_prepare,
	.cleanup = sk_cleanup,
	LOOPS_ROLES(pipe),
};

const struct peer peer_unix = {
	.id = "unix_seqpacket",
	.label = "unix seqpacket",
	.prepare = seqpacket_prepare,
	.cleanup = sk_cleanup,
	LOOPS_ROLES(seqpacket),
};

/* Batching only makes sense for throughput. */
const struct peer peer_unix_stream = {
	.id = "unix_stream_batched",
	.label = "unix stream batched",
	.prepare = stream_prepare,
	.cleanup = sk_cleanup,
	.producer = stream_producer,
	.consumer = stream_consumer,
};
