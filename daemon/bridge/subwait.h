/* SPDX-License-Identifier: MIT */
/*
 * Waiting on a topic through the bridge's io_uring. A reader the bridge waits on (struct
 * bwait) arms the library's sleep handshake (bus/intree.h: shmbus_sub_sleep_prepare(),
 * which counts it among the topic's sleepers and checks once more) and has io_uring wait on
 * the wake word it returns (IORING_OP_FUTEX_WAIT); the publisher that commits next wakes
 * it. Without that opcode, idle readers are polled every few ms (br_poll_soon). Everything
 * else the bridge reads of a reader goes through bus/intree.h too. Bridge thread only.
 */
#ifndef SHMBUSD_BRIDGE_SUBWAIT_H
#define SHMBUSD_BRIDGE_SUBWAIT_H

#include <stdint.h>

#include <shmbus.h>

#include "daemon/bridge/ring.h"

struct bwait {
	struct br_op op; /* BOP_FUTEX, owner: this bwait */
	shmbus_sub_t *sub;
	int armed;		     /* a futex wait is in flight */
	int woken;		     /* its completion came: read the topic */
	int efault;		     /* the kernel could not read the word: poll instead */
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

#endif
