/* SPDX-License-Identifier: MIT */
/*
 * The library as the in-tree programs use it beyond include/shmbus.h: shmbusd and its
 * bridge, the tools, the tests. Not installed. Handles stay opaque here too: whatever a
 * caller needs from inside one is a function below, so nobody casts a handle or reads a
 * topic file by offset. Same conventions as the public header: >= 0 success, -errno.
 */
#ifndef SHMBUS_BUS_INTREE_H
#define SHMBUS_BUS_INTREE_H

#include <stdint.h>

#include <shmbus.h>

#include "shm/segment.h"

/* ---- readers for the bridge ----------------------------------------------------------- */

/*
 * A durable reader: the only member of group, reading ahead of the group's cursor with a
 * private position, the cursor moving only when shmbus_sub_commit() says so (the bridge
 * commits what a peer confirmed). In block mode the cursor holds publishers back, so
 * nothing unconfirmed is overwritten; in overwrite mode a lapped reader skips ahead and
 * the loss is counted (msg.lost, the group's lost). See docs/algorithm.md, "Durable
 * readers". Returns as shmbus_sub_open(), and -EBUSY if the group has another live member
 * (dead members are freed first).
 */
int shmbus_sub_open_durable(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic,
			    const char *group, int flags);

/*
 * Move a durable reader's group cursor forward to {pos, seq}: the position just past the
 * last confirmed message (shmbus_msg_end()) and the sequence expected next. Never moves it
 * back, nor past what was read. Returns 1 moved, 0 already there, -EINVAL.
 */
int shmbus_sub_commit(shmbus_sub_t *sub, uint64_t pos, uint64_t seq);

/*
 * Hold a durable reader's group for ms milliseconds from now, member or not: block-mode
 * publishers honour its cursor until then even if the reader's process dies (a daemon
 * that restarts finds everything it had not confirmed). Renew it well before it runs out;
 * ms = 0 drops it. An abandoned lease simply expires.
 */
void shmbus_sub_lease(shmbus_sub_t *sub, uint64_t ms);

/* Read again from a durable reader's cursor (after a peer was lost). */
void shmbus_sub_rewind(shmbus_sub_t *sub);

/*
 * An observer: a fan-out reader whose slot never holds publishers back, in either policy;
 * it copies and validates every record, and counts what it lost when lapped (msg.lost).
 * For readers that must never slow publishers (the bridge's WebSocket clients).
 */
int shmbus_sub_open_observer(shmbus_sub_t **out, shmbus_bus_t *bus, const char *topic, int flags);

/* Would shmbus_recv() find something (a record, padding, a lap) now? No side effects. */
int shmbus_sub_ready(shmbus_sub_t *sub);

/* Is the reader waiting at a claim below the tail that is not committed (a slow or dead
 * publisher)? shmbus_recv() with timeout 0 repairs a dead one's claim. */
int shmbus_sub_stuck(shmbus_sub_t *sub);

/* The position just past message m (for shmbus_sub_commit()). */
uint64_t shmbus_msg_end(const shmbus_msg_t *m);

/*
 * Waiting for a subscriber in someone else's event loop (the bridge's io_uring
 * FUTEX_WAIT), with the same sleep/wake handshake as shmbus_recv() (docs/algorithm.md,
 * "Waking readers"): shmbus_sub_sleep_prepare() arms the topic's wake word and
 * re-checks. It returns 0 when a receive would find something now (nothing armed), 1
 * when armed: wait on the shared futex word *word while it equals *expected (FUTEX_WAIT
 * without the private flag), then receive. Nothing is to be undone after the wait; an
 * armed bit nobody waits on costs the next publisher one spare wake. Calling prepare
 * again while armed is a re-check. The caller also checks shmbus_sub_stuck() and
 * shmbus_sub_ready() now and then (a claim being written when it armed, a damaged word).
 */
int shmbus_sub_sleep_prepare(shmbus_sub_t *sub, uint32_t **word, uint32_t *expected);

/* The random id of the topic file incarnation the subscriber has mapped (a topic removed
 * and created again has another). */
uint64_t shmbus_sub_generation(const shmbus_sub_t *sub);

/* When that topic file was created (CLOCK_REALTIME ns). */
uint64_t shmbus_sub_created_ns(const shmbus_sub_t *sub);

/* The sequence number the topic's next message will take. */
uint64_t shmbus_sub_tail_seq(const shmbus_sub_t *sub);

/* A group reader's cursor sequence: for a durable reader, the one after the last
 * confirmed message. 1 and *seq, or 0 when not known yet (a group created "from
 * earliest" before its first read) or the reader is not in a group. */
int shmbus_sub_cursor_seq(const shmbus_sub_t *sub, uint64_t *seq);

/* Has a topic pattern a wildcard (a "*" or ">" token)? */
int shmbus_pattern_wild(const char *pattern);

/* The ring reader under a subscriber: for tests that take a reader's steps one at a time
 * (a member killed between two of them). */
struct shmbus_ring_reader *shmbus_sub_ring_reader(shmbus_sub_t *sub);

/* ---- topics for the daemon ------------------------------------------------------------ */

/* The generation of the topic file now under name (shmbus_sub_generation() of a
 * subscriber that maps it), or 0 if there is none or it is not a valid topic (then
 * shmbus_errmsg() says why). Reads and checks the file's header only. */
uint64_t shmbus_topic_generation(shmbus_bus_t *bus, const char *name);

/* Apply the defaults to user options and convert them. -EINVAL with a message. */
int shmbus_opts_resolve(const shmbus_topic_opts_t *in, struct shmbus_seg_opts *out);

/* Validate the topic name and open (map) its file, for code that works on the file
 * itself (the daemon's reaper). Close with shmbus_seg_close(). */
int shmbus_topic_open_seg(shmbus_bus_t *bus, const char *name, struct shmbus_seg *seg);

/*
 * The daemon's side of a brokered bus, in its own process: the bus handle the daemon opens
 * calls these instead of asking itself over the control socket. Same contracts as
 * shmbus_broker_open() and friends (bus/internal.h); called from any thread. Descriptors
 * returned are the caller's to close; the daemon's own views are always read-write.
 */
struct shmbus_broker {
	int (*open)(void *ctx, const char *name, int role, const struct shmbus_seg_opts *create,
		    int fd[2], uint64_t *generation);
	int (*remove)(void *ctx, const char *name);
	int (*list)(void *ctx, int (*fn)(const char *name, void *arg), void *arg);
	void *ctx;
};

/* Make bus brokered through b (NULL: a file-mode bus, whatever daemon.state said); every
 * handle on the same bus this process opens from now on (the bridge thread's) uses b too. */
void shmbus_bus_set_broker(shmbus_bus_t *bus, const struct shmbus_broker *b);

/* Is bus brokered (topics through the daemon, none as files)? */
int shmbus_bus_brokered(const shmbus_bus_t *bus);

#endif
