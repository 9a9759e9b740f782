/* SPDX-License-Identifier: MIT */
#include "daemon/bridge/ws_frame.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "daemon/bridge/codec.h"
#include "ring/clock.h"

static uint64_t rnd_state;

void ws_frame_random(uint8_t *p, size_t n)
{
	if (getrandom(p, n, GRND_NONBLOCK) == (ssize_t)n)
		return;
	/* No entropy yet (early boot): masks need not be secret, only unpredictable enough
	 * for caches (RFC 6455 10.3). */
	if (!rnd_state)
		rnd_state = shmbus_now_ns() ^ (uint64_t)getpid() << 32;
	for (size_t i = 0; i < n; i++) {
		rnd_state = rnd_state * 6364136223846793005ull + 1442695040888963407ull;
		p[i] = (uint8_t)(rnd_state >> 56);
	}
}

/* wslay's callbacks: the user data of each context is a struct whose first member is its
 * wsio (a mirror's wsm, a client's wsc). */
static ssize_t io_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
	(void)flags;
	struct wsio *io = user;
	size_t avail = io->in.len - io->in_off;
	if (!avail || io->paused) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = avail < len ? avail : len;
	memcpy(buf, io->in.p + io->in_off, n);
	io->in_off += n;
	if (io->in_off == io->in.len)
		io->in.len = io->in_off = 0;
	return (ssize_t)n;
}

static ssize_t io_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *user)
{
	(void)flags;
	struct wsio *io = user;
	if (bbuf_put(&io->c->out, data, len) < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	io->c->queued += len;
	return (ssize_t)len;
}

static int io_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
	(void)ctx;
	(void)user;
	ws_frame_random(buf, len);
	return 0;
}

int ws_frame_context(wslay_event_context_ptr *ctx, int server,
		     wslay_event_on_msg_recv_callback on_msg, void *user)
{
	struct wslay_event_callbacks cb = {
		.recv_callback = io_recv,
		.send_callback = io_send,
		.genmask_callback = io_genmask,
		.on_msg_recv_callback = on_msg,
	};
	int rc = server ? wslay_event_context_server_init(ctx, &cb, user) :
			  wslay_event_context_client_init(ctx, &cb, user);
	return rc ? -1 : 0;
}

int ws_frame_feed(struct wsio *io, const uint8_t *p, size_t n)
{
	if (io->in_off && io->in_off == io->in.len)
		io->in.len = io->in_off = 0;
	return bbuf_put(&io->in, p, n);
}

void ws_frame_skip(struct wsio *io, size_t consumed)
{
	io->in_off = consumed;
	if (io->in_off == io->in.len)
		io->in.len = io->in_off = 0;
}

void ws_frame_flush(wslay_event_context_ptr ctx, struct bconn *c)
{
	if (ctx && wslay_event_want_write(ctx) && wslay_event_send(ctx) != 0) {
		bconn_fail(c, "WebSocket: cannot send");
		return;
	}
	bconn_kick(c);
}

int ws_frame_message(wslay_event_context_ptr ctx, struct bconn *c, struct bbuf *scratch, int json,
		     const char *topic, const shmbus_msg_t *msg, uint64_t lost)
{
	struct wslay_event_msg em;
	if (json) {
		scratch->len = 0;
		if (bbuf_reserve(scratch, br_json_envelope_max(strlen(topic), msg->len)) < 0) {
			bconn_fail(c, "out of memory");
			return -1;
		}
		scratch->len = br_json_envelope((char *)scratch->p, scratch->cap, topic, msg->seq,
						msg->type, msg->timestamp_ns, lost, msg->data,
						msg->len);
		em.opcode = WSLAY_TEXT_FRAME;
		em.msg = scratch->p;
		em.msg_length = scratch->len;
	} else {
		em.opcode = WSLAY_BINARY_FRAME;
		em.msg = msg->data;
		em.msg_length = msg->len;
	}
	if (wslay_event_queue_msg(ctx, &em) != 0 || wslay_event_send(ctx) != 0) {
		bconn_fail(c, "WebSocket: cannot queue a message");
		return -1;
	}
	return 0;
}
