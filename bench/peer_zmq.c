/* SPDX-License-Identifier: MIT */
/*
 * ZeroMQ (libzmq from Debian) over ipc:// endpoints in the suite's private directory:
 *   SPSC, MPSC, ping-pong, one-way  PUSH (connect) -> PULL (bind)
 *   fan-out                         XPUB (bind, ZMQ_XPUB_NODROP: the publisher waits for a
 *                                   slow subscriber instead of dropping, like shmbus's
 *                                   block policy) -> SUB (connect)
 *   group                           PUSH (bind) -> PULL (connect) per member: PUSH deals
 *                                   messages round-robin, a work queue
 * zmq_send() copies the message in; zmq_msg_recv() hands it out without a further copy.
 * Default high-water marks (1000 messages each way). Connecting sockets retry every
 * millisecond so a run does not wait 100 ms for a peer that binds a little later.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "loops.h"

#ifdef HAVE_ZMQ
#include <zmq.h>

static void *zctx;

struct zq {
	void *sock;
	zmq_msg_t msg;
	int has_msg;
};

static void z_endpoint(const struct run *r, int chan, char *buf, size_t n)
{
	snprintf(buf, n, "ipc://%s", chan ? r->b : r->a);
}

static int zmq_prepare(struct run *r)
{
	snprintf(r->a, sizeof(r->a), "%s/zmq-c%d-r%d-a", cfg.dir, r->idx, r->round);
	snprintf(r->b, sizeof(r->b), "%s/zmq-c%d-r%d-b", cfg.dir, r->idx, r->round);
	return 0;
}

static void zmq_cleanup(struct run *r)
{
	unlink(r->a);
	unlink(r->b);
}

static struct zq *z_socket(int type)
{
	struct zq *z = calloc(1, sizeof(*z));
	int one_ms = 1;

	if (!zctx)
		zctx = zmq_ctx_new();
	if (!z || !zctx || !(z->sock = zmq_socket(zctx, type)))
		wfail("zmq socket: %s", zmq_strerror(errno));
	zmq_setsockopt(z->sock, ZMQ_RECONNECT_IVL, &one_ms, sizeof(one_ms));
	return z;
}

static void z_bind(struct zq *z, const struct run *r, int chan)
{
	char ep[200];

	z_endpoint(r, chan, ep, sizeof(ep));
	if (zmq_bind(z->sock, ep) < 0)
		wfail("zmq_bind %s: %s", ep, zmq_strerror(errno));
}

static void z_connect(struct zq *z, const struct run *r, int chan)
{
	char ep[200];

	z_endpoint(r, chan, ep, sizeof(ep));
	if (zmq_connect(z->sock, ep) < 0)
		wfail("zmq_connect %s: %s", ep, zmq_strerror(errno));
}

static void *z_open_tx(struct run *r, int chan, int idx)
{
	struct zq *z;

	(void)idx;
	if (r->c->sc == SC_FANOUT) {
		int one = 1;

		z = z_socket(ZMQ_XPUB);
		zmq_setsockopt(z->sock, ZMQ_XPUB_NODROP, &one, sizeof(one));
		zmq_setsockopt(z->sock, ZMQ_XPUB_VERBOSE, &one, sizeof(one));
		z_bind(z, r, chan);
		/* Every subscriber's subscription must have arrived, or the first messages
		 * go to fewer of them. */
		for (int got = 0; got < r->nsub;) {
			uint8_t b[16];
			int n = zmq_recv(z->sock, b, sizeof(b), 0);

			if (n < 0 && errno != EINTR)
				wfail("zmq xpub recv: %s", zmq_strerror(errno));
			if (n >= 1 && b[0] == 1)
				got++;
		}
	} else if (r->c->sc == SC_GROUP) {
		z = z_socket(ZMQ_PUSH);
		z_bind(z, r, chan);
	} else {
		z = z_socket(ZMQ_PUSH);
		z_connect(z, r, chan);
	}
	return z;
}

static void *z_open_rx(struct run *r, int chan, int idx)
{
	struct zq *z;

	(void)idx;
	if (r->c->sc == SC_FANOUT) {
		z = z_socket(ZMQ_SUB);
		zmq_setsockopt(z->sock, ZMQ_SUBSCRIBE, "", 0);
		z_connect(z, r, chan);
	} else if (r->c->sc == SC_GROUP) {
		z = z_socket(ZMQ_PULL);
		z_connect(z, r, chan);
	} else {
		z = z_socket(ZMQ_PULL);
		z_bind(z, r, chan);
	}
	return z;
}

static inline void z_send(void *h, const uint8_t *buf, uint32_t len)
{
	struct zq *z = h;

	while (zmq_send(z->sock, buf, len, 0) != (int)len)
		if (errno != EINTR)
			wfail("zmq_send: %s", zmq_strerror(errno));
}

static inline void z_recv(void *h, struct view *v)
{
	struct zq *z = h;

	if (z->has_msg)
		zmq_msg_close(&z->msg);
	zmq_msg_init(&z->msg);
	z->has_msg = 1;
	while (zmq_msg_recv(&z->msg, z->sock, 0) < 0)
		if (errno != EINTR)
			wfail("zmq_msg_recv: %s", zmq_strerror(errno));
	v->data = zmq_msg_data(&z->msg);
	v->len = (uint32_t)zmq_msg_size(&z->msg);
	v->lost = 0;
}

static const struct ops z_ops = {
	.open_tx = z_open_tx,
	.open_rx = z_open_rx,
	.send = z_send,
	.recv = z_recv,
};

LOOPS_DEFINE(z, &z_ops)

const struct peer peer_zmq = {
	.id = "zeromq_ipc",
	.label = "zeromq ipc",
	.prepare = zmq_prepare,
	.cleanup = zmq_cleanup,
	LOOPS_ROLES(z),
};

#else

static int zmq_available(char *why, size_t n)
{
	snprintf(why, n, "built without libzmq (install libzmq3-dev and reconfigure)");
	return 0;
}

const struct peer peer_zmq = {
	.id = "zeromq_ipc",
	.label = "zeromq ipc",
	.available = zmq_available,
};

#endif
