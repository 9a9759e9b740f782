/* SPDX-License-Identifier: MIT */
/*
 * Brokered mode (`access = brokered`, daemon/broker.c): topics held as sealed memfds and
 * handed out over the control socket, checked against the ACL (daemon/acl.h).
 */
#ifndef SHMBUSD_BROKER_H
#define SHMBUSD_BROKER_H

#include <stddef.h>

#include "daemon/shmbusd.h"

/* Make d->bus brokered through the registry (topics from here on are memfds). */
void broker_init(struct daemon *d);

/* Close every topic's descriptors (clients keep their mappings). */
void broker_fini(void);

/* A request on a connection (bus/proto.h: OPEN, REMOVE, LIST). Returns 1 if it was one
 * (answered), 0 if not (the caller goes on). Main thread. */
int broker_handle(struct daemon *d, struct conn *c, const void *buf, size_t n);

#endif
