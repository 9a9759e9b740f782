/* SPDX-License-Identifier: MIT */
/* The handles behind the opaque types of include/shmbus.h. */
#ifndef SHMBUS_BUS_INTERNAL_H
#define SHMBUS_BUS_INTERNAL_H

#include <limits.h>
#include <stdint.h>

#include <shmbus.h>

#include "ring/log.h"
#include "shm/segment.h"

struct shmbus_bus {
	char path[PATH_MAX];
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
	int daemon_fd;      /* registered with the bus's daemon: the connection, else -1 */
	uint64_t client_id; /* the daemon's id for this registration */
};

struct shmbus_pub {
	struct shmbus_seg seg;
	struct shmbus_ring_pub rp;
	uint32_t slot_idx;
	int timeout_ms;
	/* the open reservation */
	int reserved;
	uint64_t res_rec;
	uint64_t res_len;
	uint64_t res_seq;
	/* local copies of this slot's counters (only we write them) */
	uint64_t published;
	uint64_t bytes;
};

struct shmbus_sub {
	struct shmbus_seg seg;
	struct shmbus_reader_slot *slot;
	struct shmbus_group_slot *grp; /* NULL: fan-out */
	uint32_t slot_idx;
	uint64_t pos;          /* fan-out: next record to read */
	uint64_t next_seq;     /* fan-out: sequence expected next, or SHMBUS_NOSEQ */
	uint64_t held;         /* position of the message handed out, or SHMBUS_NOPOS */
	uint64_t held_end;     /* group: the end of that message's record */
	uint64_t safe_from;    /* positions below this are read by copy + validation */
	uint8_t *buf;          /* copy buffer (max_message bytes) */
	uint64_t spin_ns;
	uint64_t consumed;
	uint64_t lost;
	int copy_all;          /* overwrite policy: every read is copy + validation */
	int durable;	       /* a group of one whose cursor moves by shmbus_sub_commit() */
	int observer;	       /* a fan-out reader that never holds publishers back */
	uint64_t lost_seen;    /* durable: losses counted up to this sequence */
	int cheap;             /* spinning: an uncommitted record means "empty" (no tail read) */
};

/* Validate a name for a bus or a group: one topic token of at most max bytes. */
int shmbus_token_check(const char *what, const char *name, size_t max);

/* Apply the defaults to user options and convert them. -EINVAL with a message. */
int shmbus_opts_resolve(const shmbus_topic_opts_t *in, struct shmbus_seg_opts *out);

/* Validate the topic name and open its segment. */
int shmbus_topic_open_seg(shmbus_bus_t *bus, const char *name, struct shmbus_seg *seg);

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

/* Register with the bus's daemon if one runs (best effort; sets daemon_fd or -1). */
void shmbus_client_register(shmbus_bus_t *bus);
void shmbus_client_unregister(shmbus_bus_t *bus);

#endif
