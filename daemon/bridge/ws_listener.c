/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket listener (ws_listener.h), the server side of ws_frame.h: clients open
 * /topics/PATTERN[?from=SEQ&format=json|binary] to receive the topics that match (those
 * that appear later too), from SEQ on (the retained part of it) or from now; or
 * /publish/TOPIC, when the config allows that topic, to publish each message they send.
 * Each subscription reads with an observer, which never holds publishers back: a client
 * whose queue (max_queue bytes) stays full while its topic laps it is cut off with close
 * code 1013 and counted. The HTTP upgrade is ours (http.h), with bounds on everything.
 */
#include "daemon/bridge/ws_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/intree.h"
#include "daemon/bridge/http.h"
#include "daemon/bridge/stats.h"
#include "daemon/bridge/subwait.h"
#include "daemon/bridge/ws_frame.h"
#include "daemon/guard.h"
#include "daemon/shmbusd.h"
#include "ring/clock.h"

#define CLOSE_GRACE_MS 3000 /* after our close frame, before we drop the socket */

struct wss;
struct wsc;

struct wssub {
	struct wssub *next;
	struct wsc *cl;
	char topic[SHMBUS_TOPIC_NAME_MAX + 1];
	shmbus_sub_t *sub;
	uint64_t gen;
	struct bwait w;
	int idle;
	int gone;
	int started; /* a message was delivered (a lap after that is a cut-off) */
	/* Its file was truncated (ring.h): sub closed, NULL; freed once its wait is back. A
	 * topic made again under the name is attached anew (wss_rescan). */
	int damaged;
};

enum { WC_HS, WC_OPEN, WC_CLOSING, WC_DEAD };

struct wsc {
	struct wsio io; /* first: the wslay user data */
	struct wsc *next;
	struct wss *s;
	uint64_t id;
	struct bconn c;
	int state;
	int close_after_send;
	uint64_t since_ms, last_rx_ms, last_ping_ms, close_deadline;
	wslay_event_context_ptr ws;
	/* a subscription */
	int subscriber;
	char pattern[SHMBUS_TOPIC_NAME_MAX + 1];
	uint64_t from;
	int has_from;
	int json;
	struct wssub *subs;
	struct bbuf scratch;
	/* publishing */
	shmbus_pub_t *pub;
	char pub_topic[SHMBUS_TOPIC_NAME_MAX + 1];
	struct bbuf held;
	uint32_t held_type;
	int has_held;
	char peer[64];
};

struct wss {
	struct bridge *b;
	const struct ws_decl *d;
	struct shmbus_bridge_slot *st;
	int lfd;
	struct br_op accept_op;
	int accept_armed;
	uint64_t accept_retry_ms; /* after an accept error (no descriptors), not before */
	struct wsc *clients;
	unsigned nclients;
	uint64_t next_id;
};

static void arm_accept(struct wss *s)
{
	if (s->accept_armed || s->b->stop)
		return;
	struct io_uring_sqe *sqe = br_sqe(s->b);
	io_uring_prep_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
	br_arm(s->b, sqe, &s->accept_op);
	s->accept_armed = 1;
}

static int allowed(const struct br_patterns *p, const char *topic)
{
	for (unsigned i = 0; i < p->n; i++)
		if (br_pattern_match(p->p[i], topic))
			return 1;
	return 0;
}

static uint64_t backlog(const struct wsc *cl)
{
	uint64_t q = cl->c.out.len + (cl->c.wire.len - cl->c.wire_off);
	if (cl->ws)
		q += wslay_event_get_queued_msg_length(cl->ws);
	return q;
}

/* Close with a code: our close frame goes after what is queued; the socket is dropped
 * when it is out, or after a grace period. */
static void wc_close(struct wsc *cl, uint16_t code, const char *reason)
{
	if (cl->state != WC_OPEN)
		return;
	cl->state = WC_CLOSING;
	cl->close_deadline = cl->s->b->now_ms + CLOSE_GRACE_MS;
	wslay_event_queue_close(cl->ws, code, (const uint8_t *)reason, strlen(reason));
	ws_frame_flush(cl->ws, &cl->c);
}

/* Refuse the upgrade with an HTTP error, then close once it is sent. */
static void wc_refuse(struct wsc *cl, int status, const char *reason)
{
	char resp[1024];
	size_t n = ws_response_error(status, reason, resp, sizeof(resp));
	BR_ADD(cl->s->st, errors, 1);
	char esc[400];
	snprintf(esc, sizeof(esc), "client %s: %d %s", cl->peer, status, reason);
	br_slot_error(cl->s->st, esc);
	cl->state = WC_CLOSING;
	cl->close_after_send = 1;
	cl->close_deadline = cl->s->b->now_ms + CLOSE_GRACE_MS;
	cl->c.recv_paused = 1;
	if (bbuf_put(&cl->c.out, resp, n) < 0) {
		bconn_fail(&cl->c, "out of memory");
		return;
	}
	bconn_kick(&cl->c);
}

static void sub_woken(struct bwait *w)
{
	struct wssub *x = (struct wssub *)((char *)w - offsetof(struct wssub, w));
	x->idle = 0;
}

/* ---- truncated topics (ring.h) ------------------------------------------------------------ */

/* A SIGBUS at addr while using x: its handle goes and it is read no more. */
static void sub_lost(struct wssub *x, void *addr, const char *during)
{
	struct wss *s = x->cl->s;
	char why[128];
	if (br_topic_damaged(s->b, x->topic, addr, during, "client", x->cl->peer, why, sizeof(why)))
		br_sub_close(s->b, x->sub);
	else
		br_keep(x->sub);
	x->sub = NULL;
	x->w.sub = NULL;
	x->damaged = 1;
	x->gone = 1;
	x->idle = 0;
	br_wait_cancel(s->b, &x->w);
	BR_ADD(s->st, errors, 1);
	br_slot_error(s->st, why);
}

/* fn(x, arg) under one guard for all it does with x's mapping; -EIO after a fault (x is
 * dropped) or if x was dropped before. */
static int sub_guarded(struct wssub *x, const char *during, void (*fn)(struct wssub *, void *),
		       void *arg)
{
	if (x->damaged)
		return -EIO;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		sub_lost(x, g.addr, during);
		return -EIO;
	}
	fn(x, arg);
	guard_leave(&g);
	return 0;
}

/* fn(arg) under a guard, for calls that map a topic and keep no handle of it (opening,
 * topic info): its result, or -EIO after a fault (the mapping detached). */
static int call_guarded(struct wss *s, int (*fn)(void *), void *arg)
{
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		guard_detach(g.addr, s->b->bus_dir);
		return -EIO;
	}
	int rc = fn(arg);
	guard_leave(&g);
	return rc;
}

struct open_arg {
	struct wsc *cl;
	const char *topic;
	shmbus_sub_t *sub;
	shmbus_pub_t *pub;
	shmbus_topic_opts_t o;
};

static int open_observer(void *arg)
{
	struct open_arg *a = arg;
	return shmbus_sub_open_observer(&a->sub, a->cl->s->b->bus, a->topic,
					a->cl->has_from ? SHMBUS_SUB_EARLIEST : 0);
}

static int open_pub(void *arg)
{
	struct open_arg *a = arg;
	return shmbus_pub_open(&a->pub, a->cl->s->b->bus, a->topic);
}

static int topic_info(void *arg)
{
	struct open_arg *a = arg;
	return shmbus_topic_info(a->cl->s->b->bus, a->topic, &a->o);
}

static void sub_attach(struct wsc *cl, const char *topic)
{
	for (struct wssub *x = cl->subs; x; x = x->next)
		if (!strcmp(x->topic, topic) && !x->gone)
			return;
	/* A damaged file is refused by the open (it reads the header, maps nothing). */
	struct open_arg a = { .cl = cl, .topic = topic };
	if (call_guarded(cl->s, open_observer, &a) < 0)
		return;
	shmbus_sub_t *sub = a.sub;
	struct wssub *x = calloc(1, sizeof(*x));
	if (!x) {
		br_sub_close(cl->s->b, sub);
		return;
	}
	x->cl = cl;
	snprintf(x->topic, sizeof(x->topic), "%s", topic);
	x->sub = sub;
	x->gen = shmbus_sub_generation(sub);
	br_wait_init(&x->w, sub, sub_woken);
	x->next = cl->subs;
	cl->subs = x;
}

struct attach_ctx {
	struct wsc *cl;
};

static int attach_one(const char *name, void *arg)
{
	struct wsc *cl = ((struct attach_ctx *)arg)->cl;
	if (br_pattern_match(cl->pattern, name) && allowed(&cl->s->d->subscribe, name))
		sub_attach(cl, name);
	return 0;
}

/* "/topics/PATTERN?from=N&format=json|binary" or "/publish/TOPIC". 0 or -status. */
static int route(struct wsc *cl, const char *target, char *why, size_t whylen)
{
	char path[HTTP_PATH_MAX + 1];
	const char *q = strchr(target, '?');
	size_t pl = q ? (size_t)(q - target) : strlen(target);
	/* %XX in the path (clients write '>' as %3E) */
	size_t o = 0;
	for (size_t i = 0; i < pl && o < sizeof(path) - 1; i++) {
		if (target[i] == '%' && i + 2 < pl) {
			char hx[3] = { target[i + 1], target[i + 2], 0 };
			char *end;
			long v = strtol(hx, &end, 16);
			if (*end || v <= 0) {
				snprintf(why, whylen, "a bad %%-escape in the path");
				return -400;
			}
			path[o++] = (char)v;
			i += 2;
		} else {
			path[o++] = target[i];
		}
	}
	path[o] = '\0';
	char perr[256];
	if (!strncmp(path, "/topics/", 8)) {
		const char *pat = path + 8;
		if (br_pattern_check(pat, perr, sizeof(perr)) < 0) {
			snprintf(why, whylen, "%s", perr);
			return -400;
		}
		snprintf(cl->pattern, sizeof(cl->pattern), "%.127s", pat);
		cl->subscriber = 1;
		cl->json = 1;
		for (const char *a = q ? q + 1 : NULL; a && *a;) {
			size_t n = strcspn(a, "&");
			if (!strncmp(a, "from=", 5) && n > 5) {
				uint64_t v = 0;
				for (size_t i = 5; i < n; i++) {
					if (a[i] < '0' || a[i] > '9' || v > UINT64_MAX / 10) {
						snprintf(why, whylen,
							 "from= takes a sequence number");
						return -400;
					}
					v = v * 10 + (uint64_t)(a[i] - '0');
				}
				cl->from = v;
				cl->has_from = 1;
			} else if (n == 11 && !strncmp(a, "format=json", 11)) {
				cl->json = 1;
			} else if (n == 13 && !strncmp(a, "format=binary", 13)) {
				cl->json = 0;
			} else {
				snprintf(why, whylen,
					 "unknown query parameter '%.*s' (from=SEQ, "
					 "format=json|binary)",
					 (int)(n < 40 ? n : 40), a);
				return -400;
			}
			a += n + (a[n] == '&');
		}
		return 0;
	}
	if (!strncmp(path, "/publish/", 9)) {
		const char *topic = path + 9;
		if (shmbus_topic_name_check(topic, 0) < 0) {
			snprintf(why, whylen, "%s", shmbus_errmsg());
			return -400;
		}
		if (!allowed(&cl->s->d->publish, topic)) {
			snprintf(why, whylen, "publishing to '%.128s' is not allowed here", topic);
			return -403;
		}
		struct open_arg a = { .cl = cl, .topic = topic };
		int rc = call_guarded(cl->s, open_pub, &a);
		if (rc < 0) {
			snprintf(why, whylen, "%s",
				 rc == -EIO ? "the topic's file is damaged" : shmbus_errmsg());
			return -404;
		}
		cl->pub = a.pub;
		snprintf(cl->pub_topic, sizeof(cl->pub_topic), "%.127s", topic);
		return 0;
	}
	snprintf(why, whylen, "paths are /topics/PATTERN and /publish/TOPIC");
	return -404;
}

/* A publishing client's shmbus_publish_timeout(..., 0), guarded: -EIO after a fault, the
 * publisher dropped (the client is then closed with 1011). */
static int client_publish(struct wsc *cl, const void *p, size_t n, uint32_t type)
{
	if (!cl->pub)
		return -EIO;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		char why[128];
		if (br_topic_damaged(cl->s->b, cl->pub_topic, g.addr, "publish", "client", cl->peer,
				     why, sizeof(why)))
			br_pub_close(cl->s->b, cl->pub);
		else
			br_keep(cl->pub);
		cl->pub = NULL;
		BR_ADD(cl->s->st, errors, 1);
		br_slot_error(cl->s->st, why);
		return -EIO;
	}
	int rc = shmbus_publish_timeout(cl->pub, p, n, type, 0);
	guard_leave(&g);
	return rc;
}

/* A message from a publishing client: into its topic, or held while the topic is full. */
static int wc_publish(struct wsc *cl, const uint8_t *p, size_t n, uint32_t type)
{
	int rc = client_publish(cl, p, n, type);
	if (rc == -EAGAIN) {
		/* Block policy, no room: keep it, read nothing more from this client (TCP
		 * pushes back on it), try again soon. Never wait here. */
		cl->held.len = 0;
		if (bbuf_put(&cl->held, p, n) < 0)
			return -ENOMEM;
		cl->held_type = type;
		cl->has_held = 1;
		cl->io.paused = 1;
		cl->c.recv_paused = 1;
		br_poll_soon(cl->s->b);
		return 0;
	}
	if (rc == 0)
		BR_ADD(cl->s->st, confirmed, 1);
	return rc;
}

static void wc_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
		   void *user)
{
	(void)ctx;
	struct wsc *cl = user;
	cl->last_rx_ms = cl->s->b->now_ms;
	if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
		return; /* ping (answered by wslay), pong, close (echoed by wslay) */
	if (cl->state != WC_OPEN)
		return;
	if (!cl->pub) {
		wc_close(cl, 1008,
			 cl->subscriber ? "this connection subscribes; publish on /publish/TOPIC" :
					  "the topic's file was damaged");
		return;
	}
	if (arg->opcode == WSLAY_TEXT_FRAME && !ws_utf8_valid(arg->msg, arg->msg_length)) {
		BR_ADD(cl->s->st, errors, 1);
		wc_close(cl, 1007, "a text message that is not UTF-8");
		return;
	}
	int rc = wc_publish(cl, arg->msg, arg->msg_length, arg->opcode == WSLAY_TEXT_FRAME);
	if (rc == -EMSGSIZE) {
		wc_close(cl, 1009, "larger than the topic's largest message");
	} else if (rc == -EIO) {
		wc_close(cl, 1011, "the topic's file was damaged");
	} else if (rc < 0) {
		BR_ADD(cl->s->st, errors, 1);
		wc_close(cl, 1011, "cannot publish");
	}
}

/* Let wslay read what is buffered; act on what it found. */
static void wc_pump(struct wsc *cl)
{
	int wr = 0;
	if (cl->io.in.len > cl->io.in_off && !cl->io.paused &&
	    wslay_event_get_read_enabled(cl->ws) && (wr = wslay_event_recv(cl->ws)) != 0) {
		/* A frame that cannot even be parsed (a length with its top bit set, say):
		 * wslay queued a close without a status code and gave up. RFC 6455 wants a
		 * reason, so our own close frame goes instead (unmasked: we are the server),
		 * and nothing of wslay's follows it. */
		static const uint8_t close_1002[] = { 0x88, 0x02, 0x03, 0xea };
		static const uint8_t close_1011[] = { 0x88, 0x02, 0x03, 0xf3 };
		BR_ADD(cl->s->st, errors, 1);
		cl->state = WC_CLOSING;
		cl->close_after_send = 1;
		cl->close_deadline = cl->s->b->now_ms + CLOSE_GRACE_MS;
		cl->c.recv_paused = 1;
		if (bbuf_put(&cl->c.out, wr == WSLAY_ERR_NOMEM ? close_1011 : close_1002, 4) < 0) {
			bconn_fail(&cl->c, "out of memory");
			return;
		}
		bconn_kick(&cl->c);
		return;
	}
	if (cl->c.state != BC_OPEN)
		return;
	if (!wslay_event_get_read_enabled(cl->ws) && cl->state == WC_OPEN) {
		/* wslay refused a frame (bad opcode, unmasked, too large, bad close) and
		 * queued its close frame: we close after it. */
		if (!wslay_event_get_close_received(cl->ws))
			BR_ADD(cl->s->st, errors, 1);
		cl->state = WC_CLOSING;
		cl->close_deadline = cl->s->b->now_ms + CLOSE_GRACE_MS;
	}
	ws_frame_flush(cl->ws, &cl->c);
	if (cl->state == WC_CLOSING && wslay_event_get_close_sent(cl->ws) &&
	    (wslay_event_get_close_received(cl->ws) || !wslay_event_get_read_enabled(cl->ws)) &&
	    !backlog(cl))
		bconn_fail(&cl->c, "closed");
}

static void wc_upgrade(struct wsc *cl, const struct ws_request *req, size_t consumed)
{
	char why[300];
	int rc = route(cl, req->path, why, sizeof(why));
	if (rc < 0) {
		wc_refuse(cl, -rc, why);
		return;
	}
	if (ws_frame_context(&cl->ws, 1, wc_msg, cl) < 0) {
		bconn_fail(&cl->c, "out of memory");
		return;
	}
	uint32_t max = cl->s->d->max_message;
	if (cl->pub) {
		struct open_arg a = { .cl = cl, .topic = cl->pub_topic };
		if (call_guarded(cl->s, topic_info, &a) == 0 && a.o.max_message < max)
			max = a.o.max_message;
	}
	wslay_event_config_set_max_recv_msg_length(cl->ws, max);
	char resp[512];
	size_t n = ws_response_101(req, resp, sizeof(resp));
	if (bbuf_put(&cl->c.out, resp, n) < 0) {
		bconn_fail(&cl->c, "out of memory");
		return;
	}
	cl->state = WC_OPEN;
	cl->last_rx_ms = cl->last_ping_ms = cl->s->b->now_ms;
	/* Bytes after the request are frames already. */
	ws_frame_skip(&cl->io, consumed);
	if (cl->subscriber) {
		struct attach_ctx a = { cl };
		shmbus_topic_foreach(cl->s->b->bus, attach_one, &a);
	}
	bconn_kick(&cl->c);
	wc_pump(cl);
}

static void wc_data(struct bconn *c, const uint8_t *p, size_t n)
{
	struct wsc *cl = c->owner;
	if (cl->state == WC_DEAD || cl->state == WC_CLOSING) {
		if (cl->ws && cl->state == WC_CLOSING && !cl->close_after_send &&
		    ws_frame_feed(&cl->io, p, n) == 0)
			wc_pump(cl);
		return;
	}
	if (ws_frame_feed(&cl->io, p, n) < 0) {
		bconn_fail(c, "out of memory");
		return;
	}
	if (cl->state == WC_HS) {
		struct ws_request req;
		char why[300];
		int rc = ws_parse_request((const char *)cl->io.in.p, cl->io.in.len,
					  cl->s->d->max_header, &req, why, sizeof(why));
		if (rc == 0)
			return;
		if (rc < 0) {
			wc_refuse(cl, -rc, why);
			return;
		}
		wc_upgrade(cl, &req, (size_t)rc);
		return;
	}
	cl->last_rx_ms = cl->s->b->now_ms;
	wc_pump(cl);
}

static void wc_sent(struct bconn *c)
{
	struct wsc *cl = c->owner;
	if (cl->close_after_send && !backlog(cl)) {
		bconn_fail(c, "refused");
		return;
	}
	if (cl->state == WC_CLOSING && cl->ws && !cl->close_after_send)
		wc_pump(cl);
}

static void wc_closed(struct bconn *c)
{
	struct wsc *cl = c->owner;
	cl->state = WC_DEAD;
	for (struct wssub *x = cl->subs; x; x = x->next)
		br_wait_cancel(cl->s->b, &x->w);
}

static const struct bconn_ops wc_ops = {
	.opened = NULL,
	.data = wc_data,
	.sent = wc_sent,
	.closed = wc_closed,
};

static void wc_free(struct wsc *cl)
{
	while (cl->subs) {
		struct wssub *x = cl->subs;
		cl->subs = x->next;
		br_sub_close(cl->s->b, x->sub);
		free(x);
	}
	if (cl->ws)
		wslay_event_context_free(cl->ws);
	br_pub_close(cl->s->b, cl->pub);
	bbuf_free(&cl->io.in);
	bbuf_free(&cl->scratch);
	bbuf_free(&cl->held);
	bconn_free(&cl->c);
	free(cl);
}

void wss_accept(struct wss *s, int res)
{
	s->accept_armed = 0;
	if (res < 0) {
		if (res != -ECANCELED && !s->b->stop) {
			fprintf(stderr, "shmbusd: bridge: accept: %s\n", strerror(-res));
			/* Out of descriptors or memory: try again later, not in a loop. */
			s->accept_retry_ms = s->b->now_ms + 100;
		}
		return;
	}
	arm_accept(s);
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char peer[64] = "?";
	if (getpeername(res, (struct sockaddr *)&sa, &sl) == 0 && sa.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)&sa;
		uint32_t ip = ntohl(a->sin_addr.s_addr);
		snprintf(peer, sizeof(peer), "%u.%u.%u.%u:%u", ip >> 24, (ip >> 16) & 255,
			 (ip >> 8) & 255, ip & 255, ntohs(a->sin_port));
	}
	if (s->nclients >= s->d->max_clients) {
		char resp[256];
		size_t n = ws_response_error(503, "too many clients", resp, sizeof(resp));
		if (send(res, resp, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			/* it goes anyway */
		}
		close(res);
		BR_ADD(s->st, errors, 1);
		return;
	}
	struct wsc *cl = calloc(1, sizeof(*cl));
	if (!cl) {
		close(res);
		return;
	}
	cl->s = s;
	cl->id = ++s->next_id;
	cl->since_ms = s->b->now_ms;
	cl->state = WC_HS;
	snprintf(cl->peer, sizeof(cl->peer), "%s", peer);
	cl->io.c = &cl->c;
	bconn_init(&cl->c, s->b, &wc_ops, cl, "", 0, 0);
	cl->next = s->clients;
	s->clients = cl;
	s->nclients++;
	BR_SET(s->st, topics, s->nclients);
	bconn_adopt(&cl->c, res);
}

/* Retry a held publish; resume reading the client once it went in. */
static void wc_retry(struct wsc *cl)
{
	int rc = client_publish(cl, cl->held.p, cl->held.len, cl->held_type);
	if (rc == -EAGAIN) {
		br_poll_soon(cl->s->b);
		return;
	}
	if (rc == -EIO) {
		cl->has_held = 0;
		wc_close(cl, 1011, "the topic's file was damaged");
		return;
	}
	cl->has_held = 0;
	cl->io.paused = 0;
	cl->c.recv_paused = 0;
	if (rc == 0)
		BR_ADD(cl->s->st, confirmed, 1);
	bconn_want_recv(&cl->c);
	wc_pump(cl);
}

struct fill {
	uint64_t room;
	int stop; /* 1: the client's queue is full; 2: it is being closed */
};

/* A burst of x's messages to its client (guarded). As for mirrors (mirror.c), a fault
 * while a payload is copied leaves the connection's buffer whole. */
static void fill_sub(struct wssub *x, void *arg)
{
	struct fill *f = arg;
	struct wsc *cl = x->cl;
	struct wss *s = cl->s;
	for (int k = 0; k < 64; k++) {
		if (backlog(cl) >= f->room) {
			f->stop = 1;
			return;
		}
		shmbus_msg_t msg;
		int rc = shmbus_recv(x->sub, &msg, 0);
		if (rc == -EAGAIN) {
			x->idle = 1;
			return;
		}
		if (rc < 0)
			return;
		if (cl->has_from && msg.seq < cl->from)
			continue; /* older than asked for */
		uint64_t lost = 0;
		if (!x->started && cl->has_from) {
			/* Asked for older messages than the ring keeps: said, not fatal. */
			x->started = 1;
			if (msg.seq > cl->from)
				lost = msg.seq - cl->from;
		} else if (msg.lost) {
			/* Lapped: it cannot have everything it subscribed to. */
			char esc[400];
			BR_ADD(s->st, dropped, 1);
			snprintf(esc, sizeof(esc),
				 "client %s cut off: %" PRIu64
				 " messages of %s lost while its queue was full",
				 cl->peer, msg.lost, x->topic);
			br_slot_error(s->st, esc);
			br_event(s->b, "ws_slow_client",
				 "\"client\":\"%s\",\"topic\":\"%s\",\"lost\":%" PRIu64
				 ",\"max_queue\":%u",
				 cl->peer, x->topic, msg.lost, s->d->max_queue);
			wc_close(cl, 1013, "too slow: messages were lost");
			f->stop = 2;
			return;
		}
		if (ws_frame_message(cl->ws, &cl->c, &cl->scratch, cl->json, x->topic, &msg, lost) <
		    0) {
			f->stop = 2;
			return;
		}
		x->started = 1;
		BR_ADD(s->st, sent, 1);
		BR_ADD(s->st, bytes, msg.len);
	}
}

static void arm_sub(struct wssub *x, void *arg)
{
	(void)arg;
	if (!br_wait_arm(x->cl->s->b, &x->w))
		x->idle = 0;
}

/* Send what the client's topics hold, as long as its queue has room. */
static void wc_fill(struct wsc *cl)
{
	/* Subscriptions dropped for a truncated file go once their wait is back. */
	for (struct wssub **pp = &cl->subs; *pp;) {
		struct wssub *x = *pp;
		if (x->damaged && !x->w.armed) {
			*pp = x->next;
			free(x);
		} else {
			pp = &x->next;
		}
	}
	struct fill f = { .room = cl->s->d->max_queue / 2 };
	for (struct wssub *x = cl->subs; x; x = x->next) {
		if (x->idle || x->w.armed || x->gone)
			continue;
		sub_guarded(x, "read", fill_sub, &f);
		if (f.stop == 1)
			break;
		if (f.stop == 2)
			return;
	}
	bconn_kick(&cl->c);
	/* Idle topics: wait on them (a wait that finds something is read next turn). */
	for (struct wssub *x = cl->subs; x; x = x->next)
		if (x->idle && !x->gone)
			sub_guarded(x, "wait", arm_sub, NULL);
}

void wss_work(struct wss *s)
{
	struct wsc **pp = &s->clients;
	while (*pp) {
		struct wsc *cl = *pp;
		if (cl->state == WC_DEAD) {
			int armed = 0;
			for (struct wssub *x = cl->subs; x; x = x->next)
				armed |= x->w.armed;
			if (!armed && cl->c.state == BC_IDLE) {
				*pp = cl->next;
				s->nclients--;
				BR_SET(s->st, topics, s->nclients);
				wc_free(cl);
				continue;
			}
		} else if (cl->state == WC_OPEN) {
			if (cl->has_held)
				wc_retry(cl);
			if (cl->subscriber && cl->state == WC_OPEN)
				wc_fill(cl);
		}
		pp = &cl->next;
	}
	/* Always accepting: one client too many gets a 503 and is closed. */
	if (!s->accept_armed && s->lfd >= 0 && s->b->now_ms >= s->accept_retry_ms)
		arm_accept(s);
}

static void check_sub(struct wssub *x, void *arg)
{
	(void)arg;
	if (shmbus_sub_stuck(x->sub) || shmbus_sub_ready(x->sub))
		br_wait_cancel(x->cl->s->b, &x->w);
}

void wss_tick(struct wss *s)
{
	uint64_t now = s->b->now_ms;
	for (struct wsc *cl = s->clients; cl; cl = cl->next) {
		if (cl->state == WC_HS && now - cl->since_ms > s->d->handshake_timeout_ms) {
			char why[100];
			snprintf(why, sizeof(why), "no complete request in %u ms",
				 s->d->handshake_timeout_ms);
			wc_refuse(cl, 408, why);
		} else if (cl->state == WC_CLOSING && now > cl->close_deadline) {
			bconn_fail(&cl->c, "close timed out");
		} else if (cl->state == WC_OPEN && s->d->ping_interval_ms) {
			if (now - cl->last_rx_ms > 3ull * s->d->ping_interval_ms) {
				bconn_fail(&cl->c, "no answer to pings");
			} else if (now - cl->last_ping_ms >= s->d->ping_interval_ms) {
				struct wslay_event_msg ping = { WSLAY_PING, NULL, 0 };
				cl->last_ping_ms = now;
				wslay_event_queue_msg(cl->ws, &ping);
				ws_frame_flush(cl->ws, &cl->c);
			}
		}
		/* Idle subscriptions without futex waits are polled. With them, a wait at a
		 * claim that never commits (a dead publisher, a damaged commit word), or one
		 * with something to read (a wake-up lost to a damaged wake word), is ended:
		 * the next read repairs, resynchronises or reads. */
		for (struct wssub *x = cl->subs; x; x = x->next) {
			if (!s->b->futex_ok)
				x->idle = 0;
			else if (x->w.armed && !x->gone)
				sub_guarded(x, "wait check", check_sub, NULL);
		}
	}
}

void wss_poll(struct wss *s)
{
	for (struct wsc *cl = s->clients; cl; cl = cl->next)
		for (struct wssub *x = cl->subs; x; x = x->next)
			x->idle = 0;
}

void wss_rescan(struct wss *s)
{
	for (struct wsc *cl = s->clients; cl; cl = cl->next) {
		if (cl->state != WC_OPEN || !cl->subscriber)
			continue;
		struct attach_ctx a = { cl };
		shmbus_topic_foreach(s->b->bus, attach_one, &a);
	}
}

struct wss *wss_new(struct bridge *b)
{
	const struct ws_decl *d = &b->cfg.ws;
	struct wss *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->b = b;
	s->d = d;
	s->accept_op = (struct br_op){ BOP_ACCEPT, s };
	char peer[120];
	int v6 = strchr(d->host, ':') != NULL;
	snprintf(peer, sizeof(peer), "ws://%s%s%s:%u", v6 ? "[" : "", d->host, v6 ? "]" : "",
		 d->port);
	s->st = br_slot(b, "websocket", "listener", peer);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t sl;
	if (v6) {
		struct sockaddr_in6 *a = (void *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(d->port);
		inet_pton(AF_INET6, d->host, &a->sin6_addr);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (void *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(d->port);
		inet_pton(AF_INET, d->host, &a->sin_addr);
		sl = sizeof(*a);
	}
	s->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(s->lfd, (struct sockaddr *)&ss, sl) < 0 || listen(s->lfd, 128) < 0) {
		fprintf(stderr, "shmbusd: [websocket]: cannot listen on %s: %s\n", peer,
			strerror(errno));
		if (s->lfd >= 0)
			close(s->lfd);
		free(s);
		return NULL;
	}
	BR_SET(s->st, up, 1);
	BR_SET(s->st, last_change_ns, shmbus_wall_ns());
	arm_accept(s);
	return s;
}

void wss_stop(struct wss *s)
{
	if (s->lfd < 0)
		return;
	close(s->lfd);
	s->lfd = -1;
	for (struct wsc *cl = s->clients; cl; cl = cl->next) {
		if (cl->state == WC_OPEN) {
			wc_close(cl, 1001, "the server stops");
			bconn_flush_now(&cl->c);
		}
		bconn_fail(&cl->c, "the bridge stops");
		for (struct wssub *x = cl->subs; x; x = x->next)
			br_wait_cancel(s->b, &x->w);
	}
	BR_SET(s->st, up, 0);
}

void wss_free(struct wss *s)
{
	while (s->clients) {
		struct wsc *cl = s->clients;
		s->clients = cl->next;
		wc_free(cl);
	}
	free(s);
}
