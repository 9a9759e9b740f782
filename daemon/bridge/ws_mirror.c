/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket kind of mirror (mirror.h's ops), the client side of ws_frame.h: connect to
 * ws://HOST:PORT/PATH, upgrade (http.h), send each message as a binary frame (its payload)
 * or, with format = json, a text frame
 *     {"topic":"T","seq":N,"type":N,"ts":NS,"data":"BASE64"}
 * With ack = none a message is confirmed once the kernel took its last byte; with ack =
 * peer when the peer sends back {"topic":"T","ack":SEQ} (everything of T up to SEQ).
 * Either way the durable cursor follows confirmations and a reconnect resends the rest.
 */
#include "daemon/bridge/ws_mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/intree.h"
#include "daemon/bridge/http.h"
#include "daemon/bridge/stats.h"
#include "daemon/bridge/ws_frame.h"

#define HS_MAX 8192		 /* bytes of a handshake response we read */
#define PEER_MSG_MAX (64u << 10) /* largest message a mirror's peer may send us */

/* The kind's state (m->kind). */
struct wsm {
	struct wsio io; /* first: the wslay user data */
	struct mirror *m;
	wslay_event_context_ptr ws; /* after the handshake */
	char key[32];		    /* our Sec-WebSocket-Key */
	int hs_done;
	struct bbuf scratch;
};

/*
 * Pop what is confirmed from the front of the queue and commit it: a frame is confirmed
 * when the kernel took its last byte and, with ack = peer, when the peer acknowledged its
 * topic's sequence (skip_below holds "acknowledged below" for these mirrors).
 */
static void wm_confirm(struct mirror *m)
{
	struct pend *p;
	while ((p = pq_front(m)) && p->bytes_end <= m->c.sent) {
		if (m->d->ack && p->seq >= p->t->skip_below)
			break;
		struct pend cp = *p;
		pq_pop(m);
		BR_ADD(m->st, confirmed, 1);
		mirror_confirm(cp.t, cp.end, cp.seq + 1);
	}
	mirror_commit(m);
}

static void wm_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		   void *user)
{
	(void)ctx;
	struct wsm *w = user;
	struct mirror *m = w->m;
	if (arg->opcode != WSLAY_TEXT_FRAME || !m->d->ack)
		return; /* pongs; data the peer sends us is not ours to keep */
	char topic[SHMBUS_TOPIC_NAME_MAX + 1];
	uint64_t seq;
	const char *s = (const char *)arg->msg;
	if (br_json_str(s, arg->msg_length, "topic", topic, sizeof(topic)) < 0 ||
	    br_json_u64(s, arg->msg_length, "ack", &seq) < 0) {
		BR_ADD(m->st, errors, 1);
		br_slot_error(m->st, "the peer sent a text frame that is not an ack");
		return;
	}
	/* skip_below serves as "acknowledged below" for ws mirrors with ack = peer. */
	for (struct mtopic *t = m->topics; t; t = t->next)
		if (!strcmp(t->name, topic) && seq + 1 > t->skip_below)
			t->skip_below = seq + 1;
	wm_confirm(m);
}

static int wm_emit(struct mirror *m, struct mtopic *t, const shmbus_msg_t *msg)
{
	struct wsm *w = m->kind;
	if (ws_frame_message(w->ws, &m->c, &w->scratch, m->d->format == BR_FMT_JSON, t->name, msg,
			     0) < 0)
		return -1;
	struct pend p = {
		.t = t, .seq = msg->seq, .end = shmbus_msg_end(msg), .bytes_end = m->c.queued
	};
	if (pq_push(m, &p) < 0) {
		bconn_fail(&m->c, "out of memory");
		return -1;
	}
	BR_ADD(m->st, sent, 1);
	BR_ADD(m->st, bytes, msg->len);
	return 0;
}

static void wm_opened(struct mirror *m)
{
	struct wsm *w = m->kind;
	uint8_t raw[16];
	ws_frame_random(raw, sizeof(raw));
	br_b64_encode(raw, 16, w->key);
	w->key[24] = '\0';
	char req[2048];
	size_t n = ws_client_request(m->d->to.host, m->d->to.port, m->d->to.path, w->key, req,
				     sizeof(req));
	w->hs_done = 0;
	w->io.in.len = w->io.in_off = 0;
	w->scratch.len = 0;
	if (bbuf_put(&m->c.out, req, n) < 0) {
		bconn_fail(&m->c, "out of memory");
		return;
	}
	m->c.queued += n;
	bconn_kick(&m->c);
}

static void wm_handshake_done(struct mirror *m)
{
	struct wsm *w = m->kind;
	if (w->ws)
		wslay_event_context_free(w->ws);
	w->ws = NULL;
	/* wslay's user data is the wsm (its wsio comes first, as the callbacks expect). */
	if (ws_frame_context(&w->ws, 0, wm_msg, w) < 0) {
		bconn_fail(&m->c, "out of memory");
		return;
	}
	wslay_event_config_set_max_recv_msg_length(w->ws, PEER_MSG_MAX);
	w->hs_done = 1;
	m->up = 1;
	for (struct mtopic *t = m->topics; t; t = t->next) {
		t->state = MT_READY;
		t->skip_below = 0;
	}
	char detail[80];
	snprintf(detail, sizeof(detail), "\"format\":\"%s\",\"ack\":\"%s\"",
		 m->d->format == BR_FMT_JSON ? "json" : "binary", m->d->ack ? "peer" : "none");
	mirror_announce_up(m, detail);
}

static void wm_data(struct mirror *m, const uint8_t *p, size_t n)
{
	struct wsm *w = m->kind;
	struct bconn *c = &m->c;
	if (ws_frame_feed(&w->io, p, n) < 0) {
		bconn_fail(c, "out of memory");
		return;
	}
	if (!w->hs_done) {
		char why[300];
		int end = ws_parse_response((const char *)w->io.in.p, w->io.in.len, HS_MAX, w->key,
					    why, sizeof(why));
		if (end == 0)
			return;
		if (end < 0) {
			bconn_fail(c, "WebSocket handshake: %s", why);
			return;
		}
		/* What follows the response is frames already. */
		ws_frame_skip(&w->io, (size_t)end);
		wm_handshake_done(m);
		if (c->state != BC_OPEN)
			return;
	}
	if (w->io.in.len > w->io.in_off && wslay_event_recv(w->ws) != 0) {
		bconn_fail(c, "WebSocket: a protocol error from the peer");
		return;
	}
	if (wslay_event_get_close_received(w->ws)) {
		ws_frame_flush(w->ws, c);
		bconn_fail(c, "the peer closed the WebSocket (code %u)",
			   wslay_event_get_status_code_received(w->ws));
		return;
	}
	if (!wslay_event_get_read_enabled(w->ws)) {
		/* wslay found a protocol error and queued its close frame. */
		ws_frame_flush(w->ws, c);
		bconn_fail(c, "WebSocket: the peer broke the protocol (close %u sent)",
			   wslay_event_get_status_code_sent(w->ws));
		return;
	}
	ws_frame_flush(w->ws, c);
}

static void wm_down(struct mirror *m)
{
	struct wsm *w = m->kind;
	if (w->ws)
		wslay_event_context_free(w->ws);
	w->ws = NULL;
	w->hs_done = 0;
	w->io.in.len = w->io.in_off = 0;
}

static void wm_goodbye(struct mirror *m)
{
	struct wsm *w = m->kind;
	if (!w->ws || m->c.state != BC_OPEN)
		return;
	wslay_event_queue_close(w->ws, 1001, (const uint8_t *)"the bridge stops", 16);
	wslay_event_send(w->ws);
	bconn_flush_now(&m->c);
}

static void wm_tick(struct mirror *m)
{
	struct wsm *w = m->kind;
	if (m->c.state == BC_OPEN && !w->hs_done &&
	    m->b->now_ms - m->c.opened_ms > m->d->peer.timing.connect_timeout_ms)
		bconn_fail(&m->c, "WebSocket handshake: no answer in %u ms",
			   m->d->peer.timing.connect_timeout_ms);
}

static int wm_init(struct mirror *m)
{
	struct wsm *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->m = m;
	w->io.c = &m->c;
	m->kind = w;
	return 0;
}

static void wm_free(struct mirror *m)
{
	struct wsm *w = m->kind;
	if (w->ws)
		wslay_event_context_free(w->ws);
	bbuf_free(&w->io.in);
	bbuf_free(&w->scratch);
	free(w);
	m->kind = NULL;
}

const struct mirror_ops ws_mirror_ops = {
	.kind = "ws",
	.init = wm_init,
	.opened = wm_opened,
	.data = wm_data,
	.sent = wm_confirm,
	.down = wm_down,
	.emit = wm_emit,
	.tick = wm_tick,
	.goodbye = wm_goodbye,
	.free = wm_free,
};
