/* SPDX-License-Identifier: MIT */
/*
 * The bridge's parts, shared by its files (bridge.c: the thread, its ring, topics and
 * waits; conn.c: TCP connections through io_uring; redis.c: Redis mirrors and imports;
 * ws.c: WebSocket mirrors and the listener; http.c: the upgrade handshake; stats.c: the
 * shared counters). Everything here runs on the bridge thread only.
 *
 * Lifetime rule: an object with an operation in flight in the ring (its br_op is some
 * SQE's user_data) is freed only after that operation's completion has been seen. Each
 * object counts its own operations (nops, armed flags), and the ring counts all of them
 * (bridge.inflight), so that shutdown can drain the ring before freeing anything.
 */
#ifndef SHMBUSD_BRIDGE_INTERNAL_H
#define SHMBUSD_BRIDGE_INTERNAL_H

#include <hiredis/hiredis.h>
#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "bus/internal.h"
#include "bus/proto.h"
#include "daemon/bridge/bridge.h"
#include "daemon/bridge/conn.h"
#include "daemon/bridge/link.h"
#include "daemon/bridge/ring.h"
#include "daemon/bridge/stats.h"
#include "daemon/bridge/sub_glue.h"
#include "daemon/clock.h"
#include "daemon/config.h"

/* ---- mirrors --------------------------------------------------------------------------- */

enum { MT_QUERY, MT_QUERYING, MT_READY };

/* One topic a mirror reads (a durable reader, group "bridge-NAME"). */
struct mtopic {
	struct mtopic *next;
	struct mirror *m;
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
	shmbus_sub_t *sub;
	uint64_t gen;	     /* the topic file's generation */
	uint64_t created_ms; /* its creation time: the ID's first part, by default */
	char key[512];	     /* the stream key or channel */
	size_t keylen;
	char genhex[17];
	int state;	     /* MT_*: a stream's last entry must be read before sending */
	uint64_t base_ms;    /* the ms part of this generation's IDs */
	uint64_t skip_below; /* sequences below this are in the stream already */
	unsigned inflight;   /* commands sent and not answered */
	uint64_t conf_pos, conf_seq;
	int conf_dirty;
	int idle; /* the last read found nothing */
	int gone; /* removed or recreated: finish and detach */
	struct bwait w;
};

/* A command or frame sent and not yet confirmed. */
enum { PK_AUTH = 1, PK_SELECT, PK_QUERY, PK_XADD, PK_PUBLISH, PK_FRAME, PK_XREAD };
struct pend {
	uint8_t kind;
	struct mtopic *t;
	uint64_t seq;	    /* the message's sequence */
	uint64_t end;	    /* the position just past it */
	uint64_t bytes_end; /* ws: the connection's byte count once it is out */
};

struct br_slot; /* stats.c */

struct mirror {
	struct bridge *b;
	const struct mirror_decl *d;
	struct shmbus_bridge_slot *st;
	struct bconn c;
	struct br_link link;
	int up;		/* usable: commands may go (Redis: pipelined behind AUTH) */
	int hs_pending; /* AUTH/SELECT replies still to come */
	redisReader *rd;
	/* ws */
	wslay_event_context_ptr ws;
	char ws_key[32];
	struct bbuf hs;	    /* the handshake response so far */
	uint64_t ws_queued; /* bytes wslay has put in out, ever */
	/* topics and what is in flight */
	struct mtopic *topics;
	unsigned ntopics;
	struct pend *pq;
	size_t pq_head, pq_len, pq_cap;
	uint64_t last_progress_ms; /* last reply, or when the oldest pending was sent */
	uint64_t scan_fail_ms;	   /* last time a topic could not be attached (rate limit) */
	char origin[128];	   /* the origin field's value, and its length */
	size_t originlen;
};

int redis_mirror_init(struct mirror *m);
int redis_emit(struct mirror *m, struct mtopic *t, const shmbus_msg_t *msg);
void redis_query(struct mirror *m, struct mtopic *t);
int ws_emit(struct mirror *m, struct mtopic *t, const shmbus_msg_t *msg);
void ws_mirror_free(struct mirror *m);
void ws_mirror_goodbye(struct mirror *m);
void ws_mirror_tick(struct mirror *m);
void redis_mirror_fill(struct mirror *m);
void mirror_close(struct mirror *m, int free_it);
int ws_mirror_init(struct mirror *m);
void ws_mirror_fill(struct mirror *m);

/* Common to both kinds (bridge.c). */
void mirror_start(struct mirror *m);	 /* connect, or retry later */
void mirror_went_down(struct mirror *m); /* its connection closed */
void mirror_announce_up(struct mirror *m, const char *detail);
void mirror_confirm(struct mtopic *t, uint64_t end, uint64_t seq);
void mirror_commit(struct mirror *m); /* move the durable cursors */
int pq_push(struct mirror *m, const struct pend *p);
struct pend *pq_front(struct mirror *m);
void pq_pop(struct mirror *m);
void mirror_fill(struct mirror *m);
int mirror_read(struct mirror *m, struct mtopic *t, shmbus_msg_t *msg);

/* ---- imports (redis.c) ----------------------------------------------------------------- */

struct import_state; /* the persistent position file */

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
	shmbus_pub_t *pub;
	struct import_state *ps;
	char last_id[BR_ID_MAX];  /* the last entry published ("0-0", or "$" to start) */
	redisReply *batch; /* an XREAD answer being published */
	size_t next;	   /* its next entry */
	int blocked;	   /* the local topic is full (block policy): retry soon */
	uint64_t last_progress_ms;
};

int import_init(struct import *im);
void import_work(struct import *im);
void import_close(struct import *im);
void import_tick(struct import *im);

/* ---- the WebSocket listener (ws.c) ------------------------------------------------------ */

struct wss;
int wss_init(struct bridge *b);
void wss_accept(struct wss *s, int res);
void wss_work(struct wss *s);
void wss_tick(struct wss *s);
void wss_rescan(struct wss *s);
/* Look at every subscription again (the timed poll without futex waits). */
void wss_poll(struct wss *s);
/* First call: stop (close the listener and the clients); second call: free. */
void wss_close(struct wss *s);
void wss_forget_waits(struct wss *s);

#endif
