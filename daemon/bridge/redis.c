/* SPDX-License-Identifier: MIT */
/*
 * Redis through the bridge's ring, with hiredis as the codec only: commands are formatted
 * with redisFormatCommandArgv() into the connection's buffer, replies parsed from what
 * recv brought with redisReaderFeed()/redisReaderGetReply(). hiredis does no I/O here.
 *
 * Mirror, mode = stream. Each message becomes
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
 * Mirror, mode = pubsub: PUBLISH CHANNEL PAYLOAD; at least once (a message in flight when
 * the connection drops is published again).
 *
 * Import: XREAD [COUNT n] BLOCK ms STREAMS KEY LAST-ID on a connection of its own, each
 * entry's data field published to the local topic, then its ID saved in a small mapped
 * file (bridge-import.NAME in the bus directory), so a restarted daemon goes on after it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/sds.h>

#include "daemon/bridge/internal.h"
#include "daemon/shmbusd.h"
#include "daemon/statefile.h"
#include "ring/wait.h"

#define MAX_UNPARSED (256u << 20) /* bytes of one reply not yet complete */
#define DUP_ERR "equal or smaller than the target stream top item"

/* ---- the codec ------------------------------------------------------------------------ */

/*
 * Format argv into the connection's out buffer. 0 or -ENOMEM.
 * redisFormatSdsCommandArgv() rather than redisFormatCommandArgv(): the same encoding, but
 * hiredis 0.14's plain variant calls libc sprintf for every argument's length, which was
 * half of the bridge thread's time under load; the sds variant uses hiredis's own small
 * formatter.
 */
static int put_cmd(struct bconn *c, int argc, const char **argv, const size_t *argl)
{
	sds cmd = NULL;
	int n = redisFormatSdsCommandArgv(&cmd, argc, argv, argl);
	if (n < 0 || !cmd)
		return -ENOMEM;
	int rc = bbuf_put(&c->out, cmd, (size_t)n);
	sdsfree(cmd);
	c->queued += (uint64_t)n;
	return rc;
}

/* Send AUTH and SELECT as the config says; returns how many replies to expect. */
static int handshake(struct bconn *c, const char *user, const char *password, int has_password,
		     uint32_t db)
{
	int n = 0;
	if (has_password) {
		const char *argv[3] = { "AUTH", user, password };
		size_t argl[3] = { 4, strlen(user), strlen(password) };
		if (user[0])
			put_cmd(c, 3, argv, argl);
		else
			put_cmd(c, 2, (const char *[]){ "AUTH", password },
				(size_t[]){ 4, strlen(password) });
		n++;
	}
	if (db) {
		char dbs[16];
		int l = snprintf(dbs, sizeof(dbs), "%u", db);
		put_cmd(c, 2, (const char *[]){ "SELECT", dbs }, (size_t[]){ 6, (size_t)l });
		n++;
	}
	return n;
}

/* ---- the mirror --------------------------------------------------------------------------- */

void redis_query(struct mirror *m, struct mtopic *t)
{
	const char *argv[5] = { "XREVRANGE", t->key, "+", "-", "COUNT" };
	const char *av[6] = { argv[0], argv[1], argv[2], argv[3], argv[4], "1" };
	size_t al[6] = { 9, t->keylen, 1, 1, 5, 1 };
	if (put_cmd(&m->c, 6, av, al) < 0 ||
	    pq_push(m, &(struct pend){ .kind = PK_QUERY, .t = t }) < 0) {
		bconn_fail(&m->c, "out of memory");
		return;
	}
	t->state = MT_QUERYING;
}

int redis_emit(struct mirror *m, struct mtopic *t, const shmbus_msg_t *msg)
{
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
		ARG(m->origin, m->originlen);
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
	if (put_cmd(&m->c, argc, argv, argl) < 0 || pq_push(m, &p) < 0) {
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
		snprintf(why, whylen, "XREVRANGE %.200s: %s", t->key, br_resp_text(r, e, sizeof(e)));
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
			uint64_t cur = br_sub_group_seq(t->sub);
			if (cur > seq + 1) {
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
	char e[200];
	switch (p->kind) {
	case PK_AUTH:
	case PK_SELECT:
		if (!br_resp_ok(r)) {
			snprintf(why, whylen, "%s refused: %s",
				 p->kind == PK_AUTH ? "AUTH" : "SELECT",
				 br_resp_text(r, e, sizeof(e)));
			return -1;
		}
		if (m->hs_pending && !--m->hs_pending)
			mirror_announce_up(m, m->d->mode == BR_MODE_STREAM ? "\"mode\":\"stream\"" :
									     "\"mode\":\"pubsub\"");
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

static void redis_data(struct bconn *c, const uint8_t *data, size_t n)
{
	struct mirror *m = c->owner;
	char why[1024];
	if (redisReaderFeed(m->rd, (const char *)data, n) != REDIS_OK) {
		bconn_fail(c, "Redis protocol error: %s", m->rd->errstr);
		return;
	}
	for (;;) {
		void *rv = NULL;
		if (redisReaderGetReply(m->rd, &rv) != REDIS_OK) {
			BR_ADD(m->st, errors, 1);
			bconn_fail(c, "Redis protocol error: %s",
				   m->rd->err == REDIS_ERR_OOM ? "a reply too large" :
								 m->rd->errstr);
			break;
		}
		if (!rv)
			break;
		redisReply *r = rv;
		struct pend *p = pq_front(m);
		if (!p) {
			freeReplyObject(r);
			bconn_fail(c, "Redis sent a reply to no command");
			break;
		}
		struct pend cp = *p;
		pq_pop(m);
		int rc = on_reply(m, &cp, r, why, sizeof(why));
		freeReplyObject(r);
		if (rc < 0) {
			bconn_fail(c, "%s", why);
			break;
		}
	}
	mirror_commit(m);
	if (c->state == BC_OPEN && m->rd->len - m->rd->pos > MAX_UNPARSED)
		bconn_fail(c, "Redis sent a reply of more than %u MiB", MAX_UNPARSED >> 20);
}

static void redis_opened(struct bconn *c)
{
	struct mirror *m = c->owner;
	if (m->rd)
		redisReaderFree(m->rd);
	m->rd = br_resp_reader();
	if (!m->rd) {
		bconn_fail(c, "out of memory");
		return;
	}
	int n = handshake(c, m->d->peer.user, m->d->peer.password, m->d->peer.has_password, m->d->to.db);
	for (int i = 0; i < n; i++) {
		/* AUTH first, then SELECT: their replies come in that order. */
		int kind = (i == 0 && m->d->peer.has_password) ? PK_AUTH : PK_SELECT;
		pq_push(m, &(struct pend){ .kind = (uint8_t)kind });
	}
	/* The commands after AUTH are pipelined behind it: if it fails, they fail too and
	 * the connection is closed on the first refusal, before any reply is counted. */
	m->up = 1;
	m->hs_pending = n;
	for (struct mtopic *t = m->topics; t; t = t->next)
		if (t->state == MT_QUERY)
			redis_query(m, t);
	if (!n)
		mirror_announce_up(m, m->d->mode == BR_MODE_STREAM ? "\"mode\":\"stream\"" :
								     "\"mode\":\"pubsub\"");
	bconn_kick(c);
}

static void redis_closed(struct bconn *c)
{
	struct mirror *m = c->owner;
	if (m->rd) {
		redisReaderFree(m->rd);
		m->rd = NULL;
	}
	mirror_went_down(m);
}

static void redis_timer(struct bconn *c)
{
	mirror_start(c->owner);
}

static const struct bconn_ops redis_ops = {
	.opened = redis_opened,
	.data = redis_data,
	.closed = redis_closed,
	.timer = redis_timer,
};

int redis_mirror_init(struct mirror *m)
{
	snprintf(m->origin, sizeof(m->origin), "%s", m->d->peer.origin[0] ? m->d->peer.origin : m->b->origin);
	m->originlen = strlen(m->origin);
	char peer[400];
	br_url_show(&m->d->to, peer, sizeof(peer));
	m->st = br_slot(m->b, m->d->name, "redis", peer);
	bconn_init(&m->c, m->b, &redis_ops, m, m->d->to.host, m->d->to.port,
		   m->d->peer.timing.connect_timeout_ms);
	return 0;
}

void mirror_close(struct mirror *m, int free_it)
{
	if (!free_it) {
		bconn_cancel_timer(&m->c);
		if (m->d->to.scheme == BR_WS)
			ws_mirror_goodbye(m);
		bconn_fail(&m->c, "the bridge stops");
		for (struct mtopic *t = m->topics; t; t = t->next)
			br_wait_cancel(m->b, &t->w);
		return;
	}
	mirror_commit(m);
	while (m->topics) {
		struct mtopic *t = m->topics;
		m->topics = t->next;
		shmbus_sub_close(t->sub);
		free(t);
	}
	free(m->pq);
	if (m->rd)
		redisReaderFree(m->rd);
	if (m->ws)
		wslay_event_context_free(m->ws);
	if (m->d->to.scheme == BR_WS)
		ws_mirror_free(m);
	bbuf_free(&m->hs);
	bconn_free(&m->c);
	free(m);
}

/* ---- the import ---------------------------------------------------------------------------- */

#define IMPORT_MAGIC 0x54524f504d494253ull /* "SBIMPORT" */
#define IMPORT_STATE_SIZE 4096

/* Where an import stands, in a small mapped file that survives the daemon: two slots for
 * the last ID published, the one in use named by cur (written last), so that a crash
 * in the middle of an update leaves the previous one whole. */
struct import_state {
	uint64_t magic;
	uint32_t version;
	uint32_t cur;
	char key[1024];
	char id[2][48];
};

static void istate_save(struct import *im, const char *id)
{
	struct import_state *ps = im->ps;
	snprintf(im->last_id, sizeof(im->last_id), "%s", id);
	if (!ps)
		return;
	uint32_t next = ps->cur ^ 1;
	snprintf(ps->id[next], sizeof(ps->id[next]), "%s", id);
	/* Release: the slot is whole before cur names it. */
	__atomic_store_n(&ps->cur, next, __ATOMIC_RELEASE);
}

static int istate_open(struct import *im)
{
	char path[PATH_MAX + 128];
	snprintf(path, sizeof(path), "%s/bridge-import.%s", im->b->bus_dir, im->d->name);
	void *p = statefile_map(path, IMPORT_STATE_SIZE, 0600, 0, "shmbusd: bridge");
	if (!p)
		return -1;
	im->ps = p;
	struct import_state *ps = im->ps;
	uint64_t ms, seq;
	const char *have = ps->id[ps->cur & 1];
	int valid = ps->magic == IMPORT_MAGIC && ps->version == 1 &&
		    memchr(ps->key, 0, sizeof(ps->key)) && !strcmp(ps->key, im->d->from.key) &&
		    memchr(have, 0, sizeof(ps->id[0])) &&
		    br_stream_id_parse(have, strlen(have), &ms, &seq) == 0;
	if (valid) {
		snprintf(im->last_id, sizeof(im->last_id), "%s", have);
		return 0;
	}
	/* New, another stream, or damaged: start as the config says. */
	memset(ps, 0, sizeof(*ps));
	ps->version = 1;
	snprintf(ps->key, sizeof(ps->key), "%s", im->d->from.key);
	snprintf(ps->id[0], sizeof(ps->id[0]), "%s", im->d->peer.start_latest ? "$" : "0-0");
	__atomic_store_n(&ps->magic, IMPORT_MAGIC, __ATOMIC_RELEASE);
	snprintf(im->last_id, sizeof(im->last_id), "%s", ps->id[0]);
	return 0;
}

static void import_send(struct import *im, int kind)
{
	struct bconn *c = &im->c;
	char count[16], block[16];
	int cl = snprintf(count, sizeof(count), "%u", im->d->count);
	int bl = snprintf(block, sizeof(block), "%u", im->d->block_ms);
	const char *key = im->d->from.key;
	int rc;
	if (kind == PK_QUERY) {
		/* start = latest, first time: the stream's last ID now, saved, so that a
		 * reconnect does not skip what came meanwhile. */
		rc = put_cmd(c, 6, (const char *[]){ "XREVRANGE", key, "+", "-", "COUNT", "1" },
			     (size_t[]){ 9, strlen(key), 1, 1, 5, 1 });
	} else {
		rc = put_cmd(c, 8,
			     (const char *[]){ "XREAD", "COUNT", count, "BLOCK", block, "STREAMS",
					       key, im->last_id },
			     (size_t[]){ 5, 5, (size_t)cl, 5, (size_t)bl, 7, strlen(key),
					 strlen(im->last_id) });
		im->reading = 1;
	}
	if (rc < 0 || im->npend >= sizeof(im->pend)) {
		bconn_fail(c, "out of memory");
		return;
	}
	im->pend[im->npend++] = (uint8_t)kind;
	im->last_progress_ms = im->b->now_ms;
	bconn_kick(c);
}

/* Publish what is left of the batch. Stops when the local topic is full. */
static void import_publish(struct import *im)
{
	const redisReply *r = im->batch;
	/* [[key, [[id, [field, value, ...]], ...]]] (checked when it came) */
	const redisReply *entries = r->element[0]->element[1];
	while (im->next < entries->elements) {
		const redisReply *e = entries->element[im->next];
		const redisReply *id = e->element[0], *f = e->element[1];
		char idbuf[BR_ID_MAX];
		snprintf(idbuf, sizeof(idbuf), "%.*s", (int)id->len, id->str);
		const redisReply *origin = br_resp_field(f, "origin");
		const char *own = im->d->peer.origin[0] ? im->d->peer.origin : im->b->origin;
		if (im->d->skip_own && origin && origin->len == strlen(own) &&
		    !memcmp(origin->str, own, origin->len)) {
			BR_ADD(im->st, dups, 1);
			istate_save(im, idbuf);
			im->next++;
			continue;
		}
		const redisReply *data = br_resp_field(f, im->d->field);
		uint32_t type = 0;
		const redisReply *tf = im->d->type_field[0] ? br_resp_field(f, im->d->type_field) : NULL;
		if (tf && tf->len && tf->len < 11) {
			uint64_t v = 0;
			int ok = 1;
			for (size_t i = 0; i < tf->len; i++)
				ok &= tf->str[i] >= '0' && tf->str[i] <= '9';
			for (size_t i = 0; ok && i < tf->len; i++)
				v = v * 10 + (uint64_t)(tf->str[i] - '0');
			if (ok && v <= UINT32_MAX)
				type = (uint32_t)v;
		}
		int rc = data ? shmbus_publish_timeout(im->pub, data->str, data->len, type, 0) :
				-ENODATA;
		if (rc == -EAGAIN) {
			/* block policy, the topic is full: try again soon (never wait here). */
			im->blocked = 1;
			return;
		}
		if (rc < 0) {
			char esc[400];
			BR_ADD(im->st, errors, 1);
			snprintf(esc, sizeof(esc), "entry %s of %.200s: %s", idbuf, im->d->from.key,
				 rc == -ENODATA ? "no such field" : strerror(-rc));
			br_slot_error(im->st, esc);
			br_event(im->b, "bridge_error", "\"import\":\"%s\",\"error\":\"%s\"",
				 im->d->name, esc);
		} else {
			BR_ADD(im->st, confirmed, 1);
			BR_ADD(im->st, bytes, data->len);
		}
		istate_save(im, idbuf);
		im->next++;
	}
	im->blocked = 0;
	freeReplyObject(im->batch);
	im->batch = NULL;
	im->next = 0;
}

static void import_announce_up(struct import *im);

static void import_data(struct bconn *c, const uint8_t *data, size_t n)
{
	struct import *im = c->owner;
	char e[200];
	if (redisReaderFeed(im->rd, (const char *)data, n) != REDIS_OK) {
		bconn_fail(c, "Redis protocol error: %s", im->rd->errstr);
		return;
	}
	for (;;) {
		void *rv = NULL;
		if (redisReaderGetReply(im->rd, &rv) != REDIS_OK) {
			bconn_fail(c, "Redis protocol error: %s",
				   im->rd->err == REDIS_ERR_OOM ? "a reply too large" :
								  im->rd->errstr);
			return;
		}
		if (!rv)
			break;
		redisReply *r = rv;
		if (!im->npend) {
			freeReplyObject(r);
			bconn_fail(c, "Redis sent a reply to no command");
			return;
		}
		int kind = im->pend[0];
		memmove(im->pend, im->pend + 1, --im->npend);
		im->last_progress_ms = im->b->now_ms;
		if (kind == PK_AUTH || kind == PK_SELECT) {
			if (!br_resp_ok(r)) {
				bconn_fail(c, "%s refused: %s", kind == PK_AUTH ? "AUTH" : "SELECT",
					   br_resp_text(r, e, sizeof(e)));
				freeReplyObject(r);
				return;
			}
			freeReplyObject(r);
			if (im->hs_pending && !--im->hs_pending)
				import_announce_up(im);
			continue;
		}
		if (kind == PK_QUERY) {
			char id[BR_ID_MAX] = "0-0";
			uint64_t ms, seq;
			if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
			    r->element[0]->type == REDIS_REPLY_ARRAY &&
			    r->element[0]->elements == 2 &&
			    r->element[0]->element[0]->type == REDIS_REPLY_STRING &&
			    r->element[0]->element[0]->len < sizeof(id) &&
			    br_stream_id_parse(r->element[0]->element[0]->str, r->element[0]->element[0]->len,
				     &ms, &seq) == 0) {
				snprintf(id, sizeof(id), "%.*s",
					 (int)r->element[0]->element[0]->len,
					 r->element[0]->element[0]->str);
			} else if (!(r->type == REDIS_REPLY_ARRAY && r->elements == 0)) {
				bconn_fail(c, "XREVRANGE %s: %s", im->d->from.key,
					   br_resp_text(r, e, sizeof(e)));
				freeReplyObject(r);
				return;
			}
			freeReplyObject(r);
			istate_save(im, id);
			continue;
		}
		/* XREAD */
		im->reading = 0;
		if (r->type == REDIS_REPLY_NIL) {
			freeReplyObject(r);
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR || br_resp_xread_check(r) < 0) {
			bconn_fail(c, "XREAD %s: %s", im->d->from.key,
				   r->type == REDIS_REPLY_ERROR ?
					   br_resp_text(r, e, sizeof(e)) :
					   "a reply that is not stream entries");
			freeReplyObject(r);
			return;
		}
		if (im->batch) {
			freeReplyObject(r);
			bconn_fail(c, "internal: two batches");
			return;
		}
		im->batch = r;
		im->next = 0;
		import_publish(im);
	}
	if (im->rd->len - im->rd->pos > MAX_UNPARSED)
		bconn_fail(c, "Redis sent a reply of more than %u MiB", MAX_UNPARSED >> 20);
}

void import_work(struct import *im)
{
	if (!im->up || im->c.state != BC_OPEN)
		return;
	if (im->batch) {
		import_publish(im);
		if (im->batch) {
			br_poll_soon(im->b);
			return;
		}
	}
	if (!im->reading && !im->npend)
		import_send(im, PK_XREAD);
}

static void import_announce_up(struct import *im)
{
	if (br_link_up(&im->link, im->st) < 0)
		return;
	char peer[1400], esc[1400];
	br_url_show(&im->d->from, peer, sizeof(peer));
	br_event(im->b, "bridge_up",
		 "\"import\":\"%s\",\"peer\":\"%s\",\"topic\":\"%s\",\"from_id\":\"%s\"",
		 im->d->name, json_str(esc, sizeof(esc), peer), im->d->topic, im->last_id);
}

static void import_opened(struct bconn *c)
{
	struct import *im = c->owner;
	if (im->rd)
		redisReaderFree(im->rd);
	im->rd = br_resp_reader();
	if (!im->rd) {
		bconn_fail(c, "out of memory");
		return;
	}
	im->npend = 0;
	int n = handshake(c, im->d->peer.user, im->d->peer.password, im->d->peer.has_password, im->d->from.db);
	for (int i = 0; i < n; i++)
		im->pend[im->npend++] =
			(uint8_t)((i == 0 && im->d->peer.has_password) ? PK_AUTH : PK_SELECT);
	if (!strcmp(im->last_id, "$"))
		import_send(im, PK_QUERY);
	im->up = 1;
	im->reading = 0;
	im->hs_pending = n;
	if (!n)
		import_announce_up(im);
	import_work(im);
	bconn_kick(c);
}

static void import_closed(struct bconn *c)
{
	struct import *im = c->owner;
	if (im->rd) {
		redisReaderFree(im->rd);
		im->rd = NULL;
	}
	/* A batch half published is read again from the last ID published. */
	if (im->batch) {
		freeReplyObject(im->batch);
		im->batch = NULL;
	}
	im->up = 0;
	im->hs_pending = 0;
	im->reading = 0;
	im->npend = 0;
	if (br_link_down(&im->link, im->st, c, &im->d->peer.timing)) {
		char esc[600];
		br_event(im->b, "bridge_down",
			 "\"import\":\"%s\",\"error\":\"%s\",\"retry_ms\":%llu", im->d->name,
			 json_str(esc, sizeof(esc), c->why),
			 (unsigned long long)im->link.backoff_ms);
	}
}

static void import_timer(struct bconn *c)
{
	struct import *im = c->owner;
	if (!im->b->stop)
		bconn_connect(c);
}

static const struct bconn_ops import_ops = {
	.opened = import_opened,
	.data = import_data,
	.closed = import_closed,
	.timer = import_timer,
};

int import_init(struct import *im)
{
	char peer[1400];
	br_url_show(&im->d->from, peer, sizeof(peer));
	im->st = br_slot(im->b, im->d->name, "import", peer);
	bconn_init(&im->c, im->b, &import_ops, im, im->d->from.host, im->d->from.port,
		   im->d->peer.timing.connect_timeout_ms);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	int rc = shmbus_topic_create(im->b->bus, im->d->topic, NULL);
	if (rc < 0 && rc != -EEXIST) {
		fprintf(stderr, "shmbusd: [import %s]: topic '%s': %s\n", im->d->name, im->d->topic,
			shmbus_errmsg());
		return -1;
	}
	if (rc == 0) {
		char esc[300];
		br_event(im->b, "topic_created",
			 "\"topic\":\"%s\",\"capacity\":%llu,\"policy\":\"block\","
			 "\"by\":\"import %s\"",
			 json_str(esc, sizeof(esc), im->d->topic), (unsigned long long)o.capacity,
			 im->d->name);
	}
	if (shmbus_pub_open(&im->pub, im->b->bus, im->d->topic) < 0) {
		fprintf(stderr, "shmbusd: [import %s]: %s\n", im->d->name, shmbus_errmsg());
		return -1;
	}
	return istate_open(im);
}

void import_tick(struct import *im)
{
	struct bridge *b = im->b;
	/* XREAD BLOCK answers within block_ms; past that and the timeout, the peer is gone. */
	if (im->c.state == BC_OPEN && im->npend && !im->batch &&
	    b->now_ms - im->last_progress_ms > (uint64_t)im->d->block_ms + im->d->peer.timing.timeout_ms)
		bconn_fail(&im->c, "no reply for %u ms",
			   im->d->block_ms + im->d->peer.timing.timeout_ms);
}

void import_close(struct import *im)
{
	bconn_cancel_timer(&im->c);
	bconn_fail(&im->c, "the bridge stops");
	if (im->batch) {
		freeReplyObject(im->batch);
		im->batch = NULL;
	}
	if (im->pub) {
		shmbus_pub_close(im->pub);
		im->pub = NULL;
	}
	statefile_unmap(im->ps, IMPORT_STATE_SIZE);
	im->ps = NULL;
}
