/* SPDX-License-Identifier: MIT */
/*
 * The handles behind the opaque types of include/shmbus.h, for bus/ alone. Programs in
 * the tree use bus/intree.h instead.
 */
#ifndef SHMBUS_BUS_INTERNAL_H
#define SHMBUS_BUS_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <shmbus.h>

#include "bus/intree.h"
#include "ring/reader.h"
#include "ring/writer.h"
#include "shm/segment.h"

struct shmbus_bus {
	char path[PATH_MAX];
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
	/* The bus directory, checked when opened (bus/bus.c); the bus's files are opened
	 * relative to it, never by path. */
	int dirfd;
	int daemon_fd;      /* registered with the bus's daemon: the connection, else -1 */
	uint64_t client_id; /* the daemon's id for this registration */
};

/* A publisher: a writer on the topic (which maps it) and the slot it took. */
struct shmbus_pub {
	struct shmbus_ring_writer w;
	uint32_t slot_idx;
	int timeout_ms;
};

/* A subscriber: a reader on the topic (which maps it) and the slot it took. */
struct shmbus_sub {
	struct shmbus_ring_reader rd;
	uint32_t slot_idx;
};

/* Validate a name for a bus or a group: one topic token of at most max bytes. */
int shmbus_token_check(const char *what, const char *name, size_t max);

/* The two slot tables of a topic. */
enum shmbus_table { SHMBUS_TABLE_PUBS, SHMBUS_TABLE_READERS };

/*
 * Take a free slot of table t for this process (its owner word names us and our start
 * time; its other words are reset), freeing the slots of dead processes first when all are
 * taken. Returns the slot index, or -EUSERS (or what reading /proc/self failed with) with a
 * message.
 */
int shmbus_slot_take(struct shmbus_seg *s, enum shmbus_table t);

/* Give back a slot taken with shmbus_slot_take() (its user has cleared what it wrote). */
void shmbus_slot_put(struct shmbus_seg *s, enum shmbus_table t, uint32_t idx);

/* Register with the bus's daemon if one runs (best effort; sets daemon_fd or -1). */
void shmbus_client_register(shmbus_bus_t *bus);
void shmbus_client_unregister(shmbus_bus_t *bus);

#endif
