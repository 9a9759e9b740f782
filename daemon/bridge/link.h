/* SPDX-License-Identifier: MIT */
/*
 * Up, down and the retry backoff of a mirror's or an import's peer (link.c). Bridge
 * thread only.
 */
#ifndef SHMBUSD_BRIDGE_LINK_H
#define SHMBUSD_BRIDGE_LINK_H

#include <stdint.h>

#include "daemon/bridge/config.h"
#include "daemon/bridge/conn.h"
#include "daemon/bridge/stats.h"

/*
 * A mirror's or an import's link to its peer as the counters, $sys.log and the retry timer
 * see it: up once the handshake is answered, down (logged once, and again only after it
 * was up) when the connection closes, retried after a backoff that doubles.
 */
struct br_link {
	int announced;	   /* said up: the handshake was answered */
	int ever_up;	   /* a later up is a reconnect */
	int down_reported; /* the down is on $sys.log already */
	uint64_t backoff_ms;
};
/* The handshake was answered: counted up. 0, or -1 if it was said already. */
int br_link_up(struct br_link *l, struct shmbus_bridge_slot *st);
/* c closed (c->why says why): counted down, the retry timer armed l->backoff_ms ahead
 * (unless the bridge stops). 1 if the down should go to $sys.log, else 0. */
int br_link_down(struct br_link *l, struct shmbus_bridge_slot *st, struct bconn *c,
		 const struct br_timing *t);

#endif
