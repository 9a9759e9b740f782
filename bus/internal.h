/* SPDX-License-Identifier: MIT */
/*
 * The handles behind the opaque types of include/shmbus.h, for bus/ alone. Programs in
 * the tree use bus/intree.h instead.
 */
#ifndef SHMBUS_BUS_INTERNAL_H
#define SHMBUS_BUS_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <shmbus.h>

#include "bus/intree.h"
#include "bus/waiter.h"
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
	int look;	    /* opened with SHMBUS_BUS_LOOK: no registration */
	int registered;	    /* daemon_fd said hello (else a looker's plain connection) */
	/* A brokered bus: topics are opened through the daemon (bus/client.c), or, in the
	 * daemon itself, through its in-process broker. */
	int brokered;
	const struct shmbus_broker *broker;
	pthread_mutex_t lock; /* one request at a time on daemon_fd */
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
	/* an acknowledging member: where dead letters go (opened on first use) */
	shmbus_bus_t *bus;
	shmbus_pub_t *dead_pub;
	shmbus_pub_t *log_pub;
	int log_tried;
	/* shmbus_sub_fd(): the waiter it hands out (NULL until asked), a futex wait queued */
	struct shmbus_waiter *w;
	int w_armed;
};

/*
 * The reader's half of an fd wait (shmbus_sub_fd(), sinks): arm the topic's wake word and
 * re-check. 1: armed (*word, *val and the futex bitset *mask to wait with, and *stuck:
 * at a claim being written, look again soon); 0: a receive would find something now.
 */
int shmbus_sub_arm(shmbus_sub_t *sub, uint32_t **word, uint32_t *val, uint32_t *mask, int *stuck);

/* Spin up to budget_ns for the reader to have something (not on crowded CPUs, unless its
 * spin is fixed): what a receive on an fd does before arming it. 1 if something came. */
int shmbus_fd_spin(struct shmbus_ring_reader *rd, uint64_t budget_ns);

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

/* Register with the bus's daemon if one runs (best effort; sets daemon_fd or -1). Learns
 * whether the bus is brokered (from the daemon, or from daemon.state when none answers). */
void shmbus_client_register(shmbus_bus_t *bus);
void shmbus_client_unregister(shmbus_bus_t *bus);

/*
 * A brokered bus's topics, through the in-process broker or the daemon (bus/proto.h):
 * open hands out the two parts' descriptors for role (SHMBUS_ROLE_*; for
 * SHMBUS_ROLE_CREATE none, and with create NULL it only tells whether the topic exists
 * and its generation). Returns 1 when this call created the topic, 0 when it existed,
 * or -errno with a message (-EACCES refused by the daemon's ACL, -ENOTCONN no daemon).
 */
/* Open a topic's view for role (SHMBUS_ROLE_PUB, _SUB, _LOOK): its file, or on a brokered
 * bus the descriptors the daemon hands out (part A read-only unless PUB). */
int shmbus_topic_open_role(shmbus_bus_t *bus, const char *name, struct shmbus_seg *seg, int role);

int shmbus_broker_open(shmbus_bus_t *bus, const char *name, int role,
		       const struct shmbus_seg_opts *create, int fd[2], uint64_t *generation);
int shmbus_broker_remove(shmbus_bus_t *bus, const char *name);
int shmbus_broker_list(shmbus_bus_t *bus, int (*fn)(const char *name, void *arg), void *arg);

#endif
