/* SPDX-License-Identifier: MIT */
/*
 * The bridge's state and its io_uring, which every part of the bridge uses: getting SQEs
 * (br_sqe), marking them as ours (br_arm: user_data is a struct br_op), submitting, the
 * timed poll of idle readers, and events on $sys.log. Everything here runs on the bridge
 * thread only.
 *
 * Lifetime rule: an object with an operation in flight in the ring (its br_op is some
 * SQE's user_data) is freed only after that operation's completion has been seen. Each
 * object counts its own operations (nops, armed flags), and the ring counts all of them
 * (bridge.inflight), so that shutdown can drain the ring before freeing anything.
 */
#ifndef SHMBUSD_BRIDGE_RING_H
#define SHMBUSD_BRIDGE_RING_H

#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include <shmbus.h>

#include "daemon/config.h"

#define BR_RING_ENTRIES 512

/* What a completion is for: the user_data of every SQE points at one of these. */
enum bop_kind {
	BOP_WAKE = 1, /* the eventfd: the conductor asks us to stop */
	BOP_TICK,     /* 100 ms housekeeping */
	BOP_INOTIFY,  /* the bus directory changed: topics came or went */
	BOP_IDLE,     /* timed poll of idle topics (no IORING_OP_FUTEX_WAIT) */
	BOP_FUTEX,    /* a topic's wake word changed */
	BOP_CONNECT,
	BOP_LTIMEOUT, /* the connect's linked timeout */
	BOP_SEND,
	BOP_RECV,
	BOP_TIMER,  /* a connection's retry timer */
	BOP_CANCEL, /* an async cancel we issued */
	BOP_ACCEPT,
};

struct br_op {
	uint8_t kind;
	void *owner;
};

struct mirror;		    /* mirror.h */
struct import;		    /* redis_import.h */
struct wss;		    /* ws_listener.h */
struct shmbus_bridge_state; /* bus/proto.h */

/*
 * The bridge. The parts below the loop read its shared fields (the config, the bus, the
 * clock of this turn, stop, futex_ok) and use its ring through the functions here; the
 * mirrors, imports and listener are the loop's (loop.c), opaque to everyone else.
 */
struct bridge {
	struct shmbusd_config cfg; /* our own copy */
	char bus_dir[PATH_MAX];
	pthread_t thread;
	int wake_fd;
	uint64_t wake_buf;
	int start_pipe[2];
	shmbus_bus_t *bus;
	shmbus_pub_t *log; /* $sys.log; NULL after a fault in it, until it is made again */
	uint64_t log_gen;  /* the generation of the $sys.log file opened last */
	struct io_uring ring;
	int futex_ok;	   /* IORING_OP_FUTEX_WAIT works here */
	uint64_t inflight; /* SQEs whose completion has not come */
	unsigned sends;	   /* sends among them (the load, for batching) */
	int batch_idle;	   /* the last batch wait timed out with nothing */
	uint64_t now_ms;   /* the monotonic clock at the start of this turn */
	int stop;
	struct br_op wake_op, tick_op, ino_op, idle_op;
	struct __kernel_timespec tick_ts, idle_ts;
	int tick_armed, idle_armed, ino_armed;
	int ino_fd;
	uint8_t ino_buf[4096];
	int rescan;
	uint64_t last_scan_ms;
	struct mirror **mirrors;
	size_t nmirrors;
	struct import **imports;
	size_t nimports;
	struct wss *ws;
	struct shmbus_bridge_state *stats;
	size_t stats_size;
	char origin[128]; /* HOST/BUS: the origin field of what the mirrors send */
	uint64_t enters, sqes, cqes;
};

/* An SQE, submitting what is queued if the SQ ring is full. Never NULL. */
struct io_uring_sqe *br_sqe(struct bridge *b);

/* At least n free SQEs, so that a linked pair is never split by a submit. */
void br_sq_room(struct bridge *b, unsigned n);

/* Mark sqe as one of ours (user_data = op) and count it in flight. */
void br_arm(struct bridge *b, struct io_uring_sqe *sqe, struct br_op *op);

/* Submit what is queued and, with wait, wait for that many completions. As
 * io_uring_submit_and_wait(); the enter and the SQEs are counted. */
int br_submit(struct bridge *b, unsigned wait);

/*
 * Submit and wait for want completions or about 1 ms, whichever comes first (under load:
 * one enter hands over every SQE of a turn and collects several completions). Returns as
 * br_submit(), 0 when the time ran out.
 */
int br_submit_batch(struct bridge *b, unsigned want);

/* A timeout of ms milliseconds, completing with op; ts holds the time and must outlive
 * the SQE (it lives beside op). */
void br_timeout(struct bridge *b, struct __kernel_timespec *ts, uint64_t ms, struct br_op *op);

/* Cancel target's operation (NULL with IORING_ASYNC_CANCEL_ANY: every one); the cancel's
 * own completion is counted and ignored. */
void br_cancel(struct bridge *b, struct br_op *target, unsigned flags);

/* Have the loop look again at idle readers in a few ms (a timed poll). */
void br_poll_soon(struct bridge *b);

/* A JSON event on $sys.log (and stderr), as the conductor's. The publishing is guarded: a
 * truncated $sys.log is dropped, and opened again once the conductor has made it anew. */
void br_event(struct bridge *b, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Open $sys.log (guarded) unless it is open, or is still the file given up on. */
void br_log_open(struct bridge *b);

/*
 * Truncated topics. Whoever maps a topic file can be killed by SIGBUS when a client
 * truncates it, so each part of the bridge runs its accesses to a topic (reading and
 * formatting a batch, publishing a batch, moving a cursor, renewing a lease, arming a wait)
 * under a guard of daemon/guard.h, one per topic visit, never one per message. After a
 * fault the part calls br_topic_damaged(), drops the handle (closing it if that returns 1,
 * else br_keep()), never touches that topic again, and attaches anew once a valid file of
 * another generation is under the name (a topic removed and made again).
 *
 * br_topic_damaged: the fault at addr while using topic name (during: what was being done;
 * who and id: "mirror" and its name, "import" and its name, "client" and its address):
 * the mapping is detached (guard_detach), "topic_damaged" goes to $sys.log as the
 * conductor's does, and the text for the stats slot's last_error is in why. Returns 1 when
 * the handle may be closed (its memory is zeros now), 0 when it must be kept.
 */
int br_topic_damaged(struct bridge *b, const char *name, void *addr, const char *during,
		     const char *who, const char *id, char *why, size_t whylen);

/* A handle whose mapping could not be detached: kept for good, never used nor freed. */
void br_keep(void *handle);

/* Close a subscriber or a publisher under a guard: one whose file was truncated meanwhile
 * is closed against zeros once its mapping is detached (or kept). NULL: nothing. */
void br_sub_close(struct bridge *b, shmbus_sub_t *s);
void br_pub_close(struct bridge *b, shmbus_pub_t *p);

#endif
