/* SPDX-License-Identifier: MIT */
/*
 * Mirrors (mirror.c): local topics sent to a peer, whatever the peer. A mirror reads each
 * topic that matches its patterns with a durable reader (group "bridge-NAME"), formats what
 * it reads into its connection's buffer, keeps what it sent in a queue until the peer
 * confirms it, and moves the group's cursor only past what was confirmed; on every
 * reconnect the readers go back to the cursor, so what was sent and not confirmed is sent
 * again.
 *
 * What differs between peers is a kind (struct mirror_ops): redis_mirror.c and
 * ws_mirror.c each define one, and the loop gives it to mirror_new() by the URL's scheme.
 * This file never calls a kind but through its ops. Bridge thread only.
 */
#ifndef SHMBUSD_BRIDGE_MIRROR_H
#define SHMBUSD_BRIDGE_MIRROR_H

#include <stddef.h>
#include <stdint.h>

#include <shmbus.h>

#include "daemon/bridge/config.h"
#include "daemon/bridge/conn.h"
#include "daemon/bridge/link.h"
#include "daemon/bridge/ring.h"
#include "daemon/bridge/subwait.h"

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
	uint64_t skip_below; /* sequences below this are in the stream already (Redis), or
			      * acknowledged by the peer (WebSocket, ack = peer) */
	unsigned inflight;   /* commands sent and not answered */
	uint64_t conf_pos, conf_seq;
	int conf_dirty;
	int idle; /* the last read found nothing */
	int gone; /* removed or recreated: finish and detach */
	/* Its file was truncated under us (a SIGBUS in a guarded access, ring.h): its handle
	 * is closed and sub is NULL; what is in flight is let go. It stays, gone, until a
	 * topic of another generation under its name is attached (so that the truncated file
	 * is not opened and refused at every scan), then leaves. */
	int damaged;
	struct bwait w;
};

/* A command or frame sent and not yet confirmed. */
struct pend {
	uint8_t kind; /* the kind's own (redis_conn.h's PK_*) */
	struct mtopic *t;
	uint64_t seq;	    /* the message's sequence */
	uint64_t end;	    /* the position just past it */
	uint64_t bytes_end; /* ws: the connection's byte count once it is out */
};

struct mirror;

/* What a kind of mirror does its own way. */
struct mirror_ops {
	const char *kind; /* in its stats slot: "redis", "ws" */
	/* After the common parts are made: the kind's state (m->kind). 0 or -1. */
	int (*init)(struct mirror *m);
	/* The connection's events (conn.h): connected, bytes came, all was sent (NULL: not
	 * needed), closed (drop what the connection's protocol held; the common part then
	 * rewinds the topics and retries). */
	void (*opened)(struct mirror *m);
	void (*data)(struct mirror *m, const uint8_t *p, size_t n);
	void (*sent)(struct mirror *m);
	void (*down)(struct mirror *m);
	/* Format msg of t into the connection's buffer and queue its pend. 0, or -1 after
	 * bconn_fail(). */
	int (*emit)(struct mirror *m, struct mtopic *t, const shmbus_msg_t *msg);
	/* With m->query_first: ask where t stands at the peer (t goes MT_QUERYING, then
	 * MT_READY when the answer comes). NULL for kinds that never ask. */
	void (*query)(struct mirror *m, struct mtopic *t);
	/* Every 100 ms (NULL: nothing to do). */
	void (*tick)(struct mirror *m);
	/* The bridge stops: a last word to the peer, sent without waiting (NULL: none). */
	void (*goodbye)(struct mirror *m);
	/* Free m->kind (the connection is closed and idle). */
	void (*free)(struct mirror *m);
};

struct mirror {
	struct bridge *b;
	const struct mirror_decl *d;
	const struct mirror_ops *ops;
	void *kind; /* the kind's own state */
	struct shmbus_bridge_slot *st;
	struct bconn c;
	struct br_link link;
	int up;		 /* usable: commands may go (Redis: pipelined behind AUTH) */
	int query_first; /* topics start in MT_QUERY, not MT_READY (set by the kind's init) */
	/* topics and what is in flight */
	struct mtopic *topics;
	unsigned ntopics;
	struct pend *pq;
	size_t pq_head, pq_len, pq_cap;
	uint64_t last_progress_ms; /* last reply, or when the oldest pending was sent */
	uint64_t scan_fail_ms;	   /* last time a topic could not be attached (rate limit) */
};

/* ---- for the loop ------------------------------------------------------------------------ */

/* A mirror for d of kind ops, its stats slot taken. NULL if out of memory. */
struct mirror *mirror_new(struct bridge *b, const struct mirror_decl *d,
			  const struct mirror_ops *ops);

/* Connect (unless the bridge stops); a failure retries after the backoff. */
void mirror_start(struct mirror *m);

/* Read the topics and format what they hold, up to the window and the buffer's bound;
 * wait on the topics that are idle. */
void mirror_fill(struct mirror *m);

/* Housekeeping every 100 ms: a silent peer, stuck topics, leases, the lag counter. */
void mirror_tick(struct mirror *m);

/* The topic name exists: read it if it matches the mirror's patterns. */
void mirror_offer(struct mirror *m, const char *name);

/* Mark the topics whose file was removed or made again (they finish, then leave). */
void mirror_mark_gone(struct mirror *m);

/* Detach gone topics that have nothing left in flight or to send. */
void mirror_reap(struct mirror *m);

/* The timed poll (no futex waits): look at every topic again. */
void mirror_poll(struct mirror *m);

/* Replies the peer owes that may come in the next completions (for batching). */
unsigned mirror_expect(const struct mirror *m);

/* The bridge stops: goodbye, close the connection, cancel the waits. */
void mirror_stop(struct mirror *m);

/* Commit what was confirmed, close the readers, free m. */
void mirror_free(struct mirror *m);

/* ---- for the kinds ----------------------------------------------------------------------- */

/* The queue of what was sent and not confirmed (oldest first). pq_push: 0 or -ENOMEM. */
int pq_push(struct mirror *m, const struct pend *p);
struct pend *pq_front(struct mirror *m);
void pq_pop(struct mirror *m);

/* The peer has t's messages up to end (position) and seq (sequence, exclusive). */
void mirror_confirm(struct mtopic *t, uint64_t end, uint64_t seq);

/* Move the durable cursors to what was confirmed. */
void mirror_commit(struct mirror *m);

/* shmbus_sub_cursor_seq() of t, guarded: 0 also when t is (or just became) damaged. */
int mirror_cursor_seq(struct mtopic *t, uint64_t *seq);

/* The peer answered the handshake: up, in the counters and on $sys.log (detail: more
 * JSON members). */
void mirror_announce_up(struct mirror *m, const char *detail);

#endif
