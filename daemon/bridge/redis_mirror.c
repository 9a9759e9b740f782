/* SPDX-License-Identifier: MIT */
/*
 * The Redis kind of mirror (mirror.h's ops), on a connection of its own (redis_conn.h).
 *
 * mode = stream. Each message becomes
 *     XADD KEY [MAXLEN ~ N] <base_ms>-<seq> type T data PAYLOAD origin HOST/BUS gen GEN
 * where seq is the message's topic-wide sequence number and base_ms is fixed per
 * generation of the topic (its creation time in ms, unless the stream already holds
 * entries of an earlier generation at or above that, then one more than their last ID's).
 * So IDs grow with seq, and a command sent again after a reconnect carries the ID it had:
 * Redis refuses an ID at or below the stream's last, and the bridge also reads the last
 * entry of each stream when it connects (XREVRANGE KEY + - COUNT 1) and skips what is
 * there already. Commands are pipelined, at most `window` unanswered; the durable cursor
 * of each topic moves when its replies come.
 *
 * mode = pubsub: PUBLISH CHANNEL PAYLOAD; at least once (a message in flight when the
 * connection drops is published again).
 */
#include "daemon/bridge/redis_mirror.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "bus/intree.h"
#include "daemon/bridge/redis_conn.h"
#include "daemon/bridge/stats.h"

#define DUP_ERR "equal or smaller than the target stream top item"

/* The kind's state (m->kind). */
struct rmirror {
	redisReader *rd;  /* replies, while connected */
	int hs_pending;	  /* AUTH/SELECT replies still to come */
	char origin[128]; /* the origin field's value, and its length */
	size_t originlen;
};

static void announce_up(struct mirror *m)
{
	mirror_announce_up(m, m->d->mode == BR_MODE_STREAM ? "\"mode\":\"stream\"" :
							     "\"mode\":\"pubsub\"");
}

static void rm_query(struct mirror *m, struct mtopic *t)
{
	if (redis_cmd_last_entry(&m->c, t->key, t->keylen) < 0 ||
	    pq_push(m, &(struct pend){ .kind = PK_QUERY, .t = t }) < 0) {
		bconn_fail(&m->c, "out of memory");
		return;
	}
	t->state = MT_QUERYING;
}

static int rm_emit(struct mirror *m, struct mtopic *t, const shmbus_msg_t *msg)
{
	struct rmirror *rm = m->kind;
	uint64_t end = shmbus_msg_end(msg);
	if (m->d->mode == BR_MODE_STREAM && msg->seq < t->skip_below) {
		/* In the stream already (sent before a reconnect, its reply lost). */
		BR_ADD(m->st, dups, 1);
		mirror_confirm(t, end, msg->seq + 1);
		return 0;
	}
	const char *argv[16];
	size_t argl[16];
	int argc = 0;
#define ARG(s, n) (argv[argc] = (const char *)(s), argl[argc++] = (n))
	char id[BR_ID_MAX], type[16], maxlen[24];
	struct pend p = { .t = t, .seq = msg->seq, .end = end };
	if (m->d->mode == BR_MODE_STREAM) {
		size_t idl = br_stream_id(id, t->base_ms, msg->seq);
		size_t tl = br_u64_dec(type, msg->type);
		ARG("XADD", 4);
		ARG(t->key, t->keylen);
		if (m->d->maxlen) {
			int ml = snprintf(maxlen, sizeof(maxlen), "%" PRIu64, m->d->maxlen);
			ARG("MAXLEN", 6);
			ARG("~", 1);
			ARG(maxlen, (size_t)ml);
		}
		ARG(id, idl);
		ARG("type", 4);
		ARG(type, tl);
		ARG("data", 4);
		ARG(msg->data ? msg->data : "", msg->len);
		ARG("origin", 6);
		ARG(rm->origin, rm->originlen);
		ARG("gen", 3);
		ARG(t->genhex, 16);
		p.kind = PK_XADD;
	} else {
		ARG("PUBLISH", 7);
		ARG(t->key, t->keylen);
		ARG(msg->data ? msg->data : "", msg->len);
		p.kind = PK_PUBLISH;
	}
#undef ARG
	if (redis_cmd(&m->c, argc, argv, argl) < 0 || pq_push(m, &p) < 0) {
		bconn_fail(&m->c, "out of memory");
		return -1;
	}
	BR_ADD(m->st, sent, 1);
	BR_ADD(m->st, bytes, msg->len);
	return 0;
}

/* The stream's last entry tells where this topic's generation stands in it. */
static int on_query(struct mirror *m, struct mtopic *t, const redisReply *r, char *why,
		    size_t whylen)
{
	if (r->type == REDIS_REPLY_ERROR) {
		char e[200];
		snprintf(why, whylen, "XREVRANGE %.200s: %s", t->key,
			 br_resp_text(r, e, sizeof(e)));
		return -1;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements > 1)
		goto garbage;
	t->base_ms = t->created_ms;
	t->skip_below = 0;
	if (r->elements == 1) {
		const redisReply *e = r->element[0];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[1]->type != REDIS_REPLY_ARRAY)
			goto garbage;
		uint64_t ms, seq;
		if (br_stream_id_parse(e->element[0]->str, e->element[0]->len, &ms, &seq) < 0)
			goto garbage;
		const redisReply *f = e->element[1];
		int ours = 0;
		for (size_t i = 0; i + 1 < f->elements; i += 2) {
			const redisReply *k = f->element[i], *v = f->element[i + 1];
			if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING &&
			    k->len == 3 && !memcmp(k->str, "gen", 3) && v->len == 16 &&
			    !memcmp(v->str, t->genhex, 16))
				ours = 1;
		}
		if (ours) {
			t->base_ms = ms;
			t->skip_below = seq + 1;
			/* Did the stream lose entries it had confirmed (a restart from an old
			 * snapshot)? They cannot be sent again: say so. */
			uint64_t cur;
			if (mirror_cursor_seq(t, &cur) && cur > seq + 1) {
				BR_ADD(m->st, errors, 1);
				br_event(m->b, "bridge_peer_behind",
					 "\"mirror\":\"%s\",\"topic\":\"%s\",\"key\":\"%s\","
					 "\"stream_last_seq\":%" PRIu64
					 ",\"confirmed_seq\":%" PRIu64,
					 m->d->name, t->name, t->key, seq, cur - 1);
			}
		} else {
			if (ms == UINT64_MAX) {
				snprintf(why, whylen,
					 "stream %.200s: its last ID is the largest "
					 "possible",
					 t->key);
				return -1;
			}
			if (ms >= t->base_ms)
				t->base_ms = ms + 1;
		}
	}
	t->state = MT_READY;
	t->idle = 0;
	return 0;
garbage:
	snprintf(why, whylen, "XREVRANGE %.200s: a reply that is not a stream entry", t->key);
	return -1;
}

/* One reply, for the oldest command in flight. 0, or -1 with why (the connection ends). */
static int on_reply(struct mirror *m, const struct pend *p, const redisReply *r, char *why,
		    size_t whylen)
{
	struct rmirror *rm = m->kind;
	char e[200];
	switch (p->kind) {
	case PK_AUTH:
	case PK_SELECT:
		if (redis_handshake_reply(p->kind, r, why, whylen) < 0)
			return -1;
		if (rm->hs_pending && !--rm->hs_pending)
			announce_up(m);
		return 0;
	case PK_QUERY:
		return on_query(m, p->t, r, why, whylen);
	case PK_XADD:
		if (r->type == REDIS_REPLY_STRING) {
			char id[BR_ID_MAX];
			size_t n = br_stream_id(id, p->t->base_ms, p->seq);
			if (n != r->len || memcmp(id, r->str, r->len)) {
				snprintf(why, whylen, "XADD %.200s %s answered with ID '%s'",
					 p->t->key, id, br_resp_text(r, e, sizeof(e)));
				return -1;
			}
			BR_ADD(m->st, confirmed, 1);
		} else if (r->type == REDIS_REPLY_ERROR && r->str && strstr(r->str, DUP_ERR)) {
			/* Written before the reply was lost: it is there once. */
			BR_ADD(m->st, dups, 1);
		} else {
			snprintf(why, whylen, "XADD %.200s: %s", p->t->key,
				 br_resp_text(r, e, sizeof(e)));
			return -1;
		}
		mirror_confirm(p->t, p->end, p->seq + 1);
		return 0;
	case PK_PUBLISH:
		if (r->type != REDIS_REPLY_INTEGER) {
			snprintf(why, whylen, "PUBLISH %.200s: %s", p->t->key,
				 br_resp_text(r, e, sizeof(e)));
			return -1;
		}
		BR_ADD(m->st, confirmed, 1);
		mirror_confirm(p->t, p->end, p->seq + 1);
		return 0;
	default:
		snprintf(why, whylen, "internal: reply for an unknown command");
		return -1;
	}
}

/* A reply for the oldest command in flight (redis_replies). */
static int rm_reply(void *arg, redisReply *r)
{
	struct mirror *m = arg;
	char why[1024];
	struct pend *p = pq_front(m);
	if (!p) {
		freeReplyObject(r);
		bconn_fail(&m->c, "Redis sent a reply to no command");
		return -1;
	}
	struct pend cp = *p;
	pq_pop(m);
	int rc = on_reply(m, &cp, r, why, sizeof(why));
	freeReplyObject(r);
	if (rc < 0) {
		bconn_fail(&m->c, "%s", why);
		return -1;
	}
	return 0;
}

static void rm_data(struct mirror *m, const uint8_t *data, size_t n)
{
	struct rmirror *rm = m->kind;
	int rc = redis_replies(&m->c, rm->rd, data, n, rm_reply, m);
	if (rc == -ENOMEM)
		return;
	if (rc == -EPROTO)
		BR_ADD(m->st, errors, 1);
	mirror_commit(m);
}

static void rm_opened(struct mirror *m)
{
	struct rmirror *rm = m->kind;
	/* AUTH first, then SELECT: their replies come in that order. */
	uint8_t kinds[2];
	int n = redis_connected(&m->c, &rm->rd, &m->d->peer, m->d->to.db, kinds);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++)
		pq_push(m, &(struct pend){ .kind = kinds[i] });
	/* The commands after AUTH are pipelined behind it: if it fails, they fail too and
	 * the connection is closed on the first refusal, before any reply is counted. */
	m->up = 1;
	rm->hs_pending = n;
	for (struct mtopic *t = m->topics; t; t = t->next)
		if (t->state == MT_QUERY)
			rm_query(m, t);
	if (!n)
		announce_up(m);
	bconn_kick(&m->c);
}

static void rm_down(struct mirror *m)
{
	struct rmirror *rm = m->kind;
	redis_disconnected(&rm->rd);
	rm->hs_pending = 0;
}

static int rm_init(struct mirror *m)
{
	struct rmirror *rm = calloc(1, sizeof(*rm));
	if (!rm)
		return -1;
	snprintf(rm->origin, sizeof(rm->origin), "%s",
		 m->d->peer.origin[0] ? m->d->peer.origin : m->b->origin);
	rm->originlen = strlen(rm->origin);
	m->kind = rm;
	m->query_first = m->d->mode == BR_MODE_STREAM;
	return 0;
}

static void rm_free(struct mirror *m)
{
	struct rmirror *rm = m->kind;
	redis_disconnected(&rm->rd);
	free(rm);
	m->kind = NULL;
}

const struct mirror_ops redis_mirror_ops = {
	.kind = "redis",
	.init = rm_init,
	.opened = rm_opened,
	.data = rm_data,
	.down = rm_down,
	.emit = rm_emit,
	.query = rm_query,
	.free = rm_free,
};
