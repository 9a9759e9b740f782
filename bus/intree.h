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

/* ---- topics for the daemon ------------------------------------------------------------ */

/* Apply the defaults to user options and convert them. -EINVAL with a message. */
int shmbus_opts_resolve(const shmbus_topic_opts_t *in, struct shmbus_seg_opts *out);

/* Validate the topic name and open (map) its file, for code that works on the file
 * itself (the daemon's reaper). Close with shmbus_seg_close(). */
int shmbus_topic_open_seg(shmbus_bus_t *bus, const char *name, struct shmbus_seg *seg);

#endif
