/* SPDX-License-Identifier: MIT */
/*
 * Where the bridge reaches inside the library's reader, all in this one place (sub_glue.c)
 * and TO BE REPLACED BY THE RING READER API (issue 12: struct shmbus_ring_reader): the
 * casts of shmbus_sub_t to struct shmbus_sub, the copy of the reader's sleep handshake
 * (sleepers, membarrier, wake word) for waits through io_uring, and the pread of a topic
 * file's generation. The rest of the bridge uses bus/internal.h's functions only
 * (durable readers and observers: open, commit, lease, rewind, ready, stuck, msg_end),
 * never its structs.
 *
 * A reader the bridge waits on (struct bwait) registers as a sleeper on the topic's wake
 * word, checks once more, and has io_uring wait on the word (IORING_OP_FUTEX_WAIT); the
 * publisher that commits next wakes it. Without that opcode, idle readers are polled every
 * few ms (br_poll_soon). Bridge thread only.
 */
#ifndef SHMBUSD_BRIDGE_SUB_GLUE_H
#define SHMBUSD_BRIDGE_SUB_GLUE_H

#include <stdint.h>

#include <shmbus.h>

#include "daemon/bridge/ring.h"

struct bwait {
	struct br_op op; /* BOP_FUTEX, owner: this bwait */
	shmbus_sub_t *sub;
	int armed;		     /* a futex wait is in flight */
	int counted;		     /* we hold a count in the topic's sleepers */
	int woken;		     /* its completion came: read the topic */
	void (*fn)(struct bwait *w); /* called when woken */
};

/* Make w a wait on sub's topic, fn called when it is woken. */
void br_wait_init(struct bwait *w, shmbus_sub_t *sub, void (*fn)(struct bwait *w));

/* Does this kernel wait on futexes through io_uring (and may we: SHMBUSD_BRIDGE_NO_FUTEX)? */
int br_wait_probe(struct bridge *b);

/* 1 if armed (the topic is idle), 0 if the reader has something to read now. */
int br_wait_arm(struct bridge *b, struct bwait *w);

/* Cancel an armed wait (its completion still comes). */
void br_wait_cancel(struct bridge *b, struct bwait *w);

/* The wait's completion (BOP_FUTEX) with its result: w is woken, w->fn called. */
void br_wait_done(struct bwait *w, int res);

/* Give back the sleeper count (at shutdown, when the ring's waits are gone). */
void br_wait_forget(struct bwait *w);

/* The generation of the topic file sub reads, and the time it was created (ns). */
uint64_t br_sub_generation(shmbus_sub_t *sub);
uint64_t br_sub_created_ns(shmbus_sub_t *sub);

/* A durable reader's group: how many messages it is behind the tail (0 if not known yet),
 * and the sequence its cursor is at (0 if none yet). */
uint64_t br_sub_lag(shmbus_sub_t *sub);
uint64_t br_sub_group_seq(shmbus_sub_t *sub);

/* The generation of the topic file now at bus_dir/name.topic, or 0 if there is none. */
uint64_t br_topic_generation(const char *bus_dir, const char *name);

#endif
