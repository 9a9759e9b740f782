/* SPDX-License-Identifier: MIT */
/*
 * Imports (redis_import.h), on a connection of their own (redis_conn.h): XREAD [COUNT n]
 * BLOCK ms STREAMS KEY LAST-ID, each entry's data field published to the local topic,
 * then its ID saved in a small mapped file (bridge-import.NAME in the bus directory), so a
 * restarted daemon goes on after it.
 */
#include "daemon/bridge/redis_import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "daemon/bridge/link.h"
#include "daemon/bridge/redis_conn.h"
#include "bus/intree.h"
#include "daemon/bridge/stats.h"
#include "daemon/guard.h"
#include "daemon/shmbusd.h"
#include "daemon/statefile.h"

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

struct import {
	struct bridge *b;
	const struct import_decl *d;
	struct shmbus_bridge_slot *st;
	struct bconn c;
	redisReader *rd;
	struct br_link link;
	int up;
	int hs_pending;
	int reading;	 /* an XREAD is outstanding */
	unsigned npend;	 /* replies expected */
	uint8_t pend[8]; /* their kinds (AUTH, SELECT, XREAD) */
	shmbus_pub_t *pub; /* NULL after its file was truncated, until it is made again */
	uint64_t gen;	   /* the generation of the topic file pub maps */
	struct import_state *ps;
	char last_id[BR_ID_MAX]; /* the last entry published ("0-0", or "$" to start) */
	redisReply *batch;	 /* an XREAD answer being published */
	size_t next;		 /* its next entry */
	int blocked;		 /* the local topic is full (block policy): retry soon */
	uint64_t last_progress_ms;
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
		rc = redis_cmd_last_entry(c, key, strlen(key));
	} else {
		rc = redis_cmd(c, 8,
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

static void drop_batch(struct import *im)
{
	if (im->batch)
		freeReplyObject(im->batch);
	im->batch = NULL;
}

/* Publish what is left of the batch (guarded by import_publish). Stops when the local
 * topic is full. */
static void publish_batch(struct import *im)
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
		const redisReply *tf = im->d->type_field[0] ? br_resp_field(f, im->d->type_field) :
							      NULL;
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

/*
 * The batch under one guard. After a SIGBUS (the topic's file was truncated) the publisher
 * is dropped and the connection closed saying why (down, last_error, the retry's backoff):
 * the entries from the last one published are read again once the topic is there again
 * (import_timer). -1 then, else 0.
 */
static int import_publish(struct import *im)
{
	if (!im->pub)
		return -1;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		char why[128];
		if (br_topic_damaged(im->b, im->d->topic, g.addr, "publish", "import", im->d->name,
				     why, sizeof(why)))
			br_pub_close(im->b, im->pub);
		else
			br_keep(im->pub);
		im->pub = NULL;
		bconn_fail(&im->c, "%s", why);
		return -1;
	}
	publish_batch(im);
	guard_leave(&g);
	return 0;
}

/* The publisher on the topic (guarded). 0 or -errno. */
static int pub_open(struct import *im)
{
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		/* Truncated while being opened: what the open had made is lost with it. */
		guard_detach(g.addr, im->b->bus_dir);
		im->pub = NULL;
		return -EIO;
	}
	int rc = shmbus_pub_open(&im->pub, im->b->bus, im->d->topic);
	guard_leave(&g);
	if (rc == 0)
		im->gen = shmbus_topic_generation(im->b->bus, im->d->topic);
	return rc;
}

/* The topic made if it is missing, as at the start. 0, or -1 with shmbus_errmsg(). */
static int topic_make(struct import *im)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	int rc = shmbus_topic_create(im->b->bus, im->d->topic, NULL);
	if (rc < 0 && rc != -EEXIST)
		return -1;
	if (rc == 0) {
		char esc[300];
		br_event(im->b, "topic_created",
			 "\"topic\":\"%s\",\"capacity\":%llu,\"policy\":\"block\","
			 "\"by\":\"import %s\"",
			 json_str(esc, sizeof(esc), im->d->topic), (unsigned long long)o.capacity,
			 im->d->name);
	}
	return 0;
}

/* After the topic's file was truncated: a valid file of another generation under its name
 * (made again by anyone, or by us once the damaged one was removed) is published to. */
static int topic_again(struct import *im)
{
	if (topic_make(im) < 0)
		return -1;
	uint64_t gen = shmbus_topic_generation(im->b->bus, im->d->topic);
	if (!gen || gen == im->gen)
		return -1; /* the truncated file is still there: left to its owner */
	return pub_open(im);
}

static void import_announce_up(struct import *im);

/* The answer to XREVRANGE ... COUNT 1 (start = latest): the stream's last ID, saved. */
static int on_last_entry(struct import *im, redisReply *r)
{
	char e[200];
	char id[BR_ID_MAX] = "0-0";
	uint64_t ms, seq;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
	    r->element[0]->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[0]->element[0]->len < sizeof(id) &&
	    br_stream_id_parse(r->element[0]->element[0]->str, r->element[0]->element[0]->len, &ms,
			       &seq) == 0) {
		snprintf(id, sizeof(id), "%.*s", (int)r->element[0]->element[0]->len,
			 r->element[0]->element[0]->str);
	} else if (!(r->type == REDIS_REPLY_ARRAY && r->elements == 0)) {
		bconn_fail(&im->c, "XREVRANGE %s: %s", im->d->from.key,
			   br_resp_text(r, e, sizeof(e)));
		freeReplyObject(r);
		return -1;
	}
	freeReplyObject(r);
	istate_save(im, id);
	return 0;
}

/* An XREAD answer: nil (nothing came), or a batch to publish. */
static int on_batch(struct import *im, redisReply *r)
{
	char e[200];
	im->reading = 0;
	if (r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		return 0;
	}
	if (r->type == REDIS_REPLY_ERROR || br_resp_xread_check(r) < 0) {
		bconn_fail(&im->c, "XREAD %s: %s", im->d->from.key,
			   r->type == REDIS_REPLY_ERROR ? br_resp_text(r, e, sizeof(e)) :
							  "a reply that is not stream entries");
		freeReplyObject(r);
		return -1;
	}
	if (im->batch) {
		freeReplyObject(r);
		bconn_fail(&im->c, "internal: two batches");
		return -1;
	}
	im->batch = r;
	im->next = 0;
	return import_publish(im);
}

/* A reply for the oldest command in flight (redis_replies). */
static int on_reply(void *arg, redisReply *r)
{
	struct import *im = arg;
	if (!im->npend) {
		freeReplyObject(r);
		bconn_fail(&im->c, "Redis sent a reply to no command");
		return -1;
	}
	int kind = im->pend[0];
	memmove(im->pend, im->pend + 1, --im->npend);
	im->last_progress_ms = im->b->now_ms;
	if (kind == PK_AUTH || kind == PK_SELECT) {
		char why[300];
		int rc = redis_handshake_reply(kind, r, why, sizeof(why));
		freeReplyObject(r);
		if (rc < 0) {
			bconn_fail(&im->c, "%s", why);
			return -1;
		}
		if (im->hs_pending && !--im->hs_pending)
			import_announce_up(im);
		return 0;
	}
	if (kind == PK_QUERY)
		return on_last_entry(im, r);
	return on_batch(im, r);
}

static void import_data(struct bconn *c, const uint8_t *data, size_t n)
{
	struct import *im = c->owner;
	redis_replies(c, im->rd, data, n, on_reply, im);
}

void import_work(struct import *im)
{
	if (!im->up || im->c.state != BC_OPEN || !im->pub)
		return;
	if (im->batch) {
		if (import_publish(im) < 0)
			return;
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
	uint8_t kinds[2];
	int n = redis_connected(c, &im->rd, &im->d->peer, im->d->from.db, kinds);
	if (n < 0)
		return;
	memcpy(im->pend, kinds, (size_t)n);
	im->npend = (unsigned)n;
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
	redis_disconnected(&im->rd);
	/* A batch half published is read again from the last ID published. */
	drop_batch(im);
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
	if (im->b->stop)
		return;
	if (!im->pub && topic_again(im) < 0) {
		/* No topic to publish to yet: look again after the backoff. */
		bconn_timer(c, im->link.backoff_ms);
		return;
	}
	bconn_connect(c);
}

static const struct bconn_ops import_ops = {
	.opened = import_opened,
	.data = import_data,
	.closed = import_closed,
	.timer = import_timer,
};

static int import_init(struct import *im)
{
	char peer[1400];
	br_url_show(&im->d->from, peer, sizeof(peer));
	im->st = br_slot(im->b, im->d->name, "import", peer);
	bconn_init(&im->c, im->b, &import_ops, im, im->d->from.host, im->d->from.port,
		   im->d->peer.timing.connect_timeout_ms);
	if (topic_make(im) < 0) {
		fprintf(stderr, "shmbusd: [import %s]: topic '%s': %s\n", im->d->name, im->d->topic,
			shmbus_errmsg());
		return -1;
	}
	if (pub_open(im) < 0) {
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
	    b->now_ms - im->last_progress_ms >
		    (uint64_t)im->d->block_ms + im->d->peer.timing.timeout_ms)
		bconn_fail(&im->c, "no reply for %u ms",
			   im->d->block_ms + im->d->peer.timing.timeout_ms);
}

void import_start(struct import *im)
{
	bconn_connect(&im->c);
}

void import_stop(struct import *im)
{
	bconn_cancel_timer(&im->c);
	bconn_fail(&im->c, "the bridge stops");
	drop_batch(im);
	br_pub_close(im->b, im->pub);
	im->pub = NULL;
	statefile_unmap(im->ps, IMPORT_STATE_SIZE);
	im->ps = NULL;
}

void import_free(struct import *im)
{
	redis_disconnected(&im->rd);
	bconn_free(&im->c);
	free(im);
}

struct import *import_new(struct bridge *b, const struct import_decl *d)
{
	struct import *im = calloc(1, sizeof(*im));
	if (!im)
		return NULL;
	im->b = b;
	im->d = d;
	if (import_init(im) < 0) {
		import_stop(im);
		import_free(im);
		return NULL;
	}
	return im;
}
