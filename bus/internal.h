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
	uint64_t safe_from;    /* positions below this are read by copy + validation */
	uint8_t *buf;          /* copy buffer (max_message bytes) */
	uint64_t spin_ns;
	uint64_t consumed;
	uint64_t lost;
	int copy_all;          /* overwrite policy: every read is copy + validation */
	int cheap;             /* spinning: an uncommitted record means "empty" (no tail read) */
};

/* Validate a name for a bus or a group: one topic token of at most max bytes. */
int shmbus_token_check(const char *what, const char *name, size_t max);

/* Apply the defaults to user options and convert them. -EINVAL with a message. */
int shmbus_opts_resolve(const shmbus_topic_opts_t *in, struct shmbus_seg_opts *out);

/* Validate the topic name and open its segment. */
int shmbus_topic_open_seg(shmbus_bus_t *bus, const char *name, struct shmbus_seg *seg);

/* Register with the bus's daemon if one runs (best effort; sets daemon_fd or -1). */
void shmbus_client_register(shmbus_bus_t *bus);
void shmbus_client_unregister(shmbus_bus_t *bus);

#endif
