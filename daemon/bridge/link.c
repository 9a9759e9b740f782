/* SPDX-License-Identifier: MIT */
#include "daemon/bridge/link.h"

#include "ring/clock.h"

int br_link_up(struct br_link *l, struct shmbus_bridge_slot *st)
{
	if (l->announced)
		return -1;
	l->announced = 1;
	if (l->ever_up)
		BR_ADD(st, reconnects, 1);
	l->ever_up = 1;
	l->down_reported = 0;
	BR_SET(st, up, 1);
	BR_SET(st, last_change_ns, shmbus_wall_ns());
	return 0;
}

int br_link_down(struct br_link *l, struct shmbus_bridge_slot *st, struct bconn *c,
		 const struct br_timing *t)
{
	int was_up = l->announced;
	l->announced = 0;
	BR_SET(st, up, 0);
	BR_ADD(st, errors, 1);
	br_slot_error(st, c->why);
	BR_SET(st, last_change_ns, shmbus_wall_ns());
	/* A connection that lived a while starts the backoff again. */
	if (was_up && c->opened_ms && c->b->now_ms - c->opened_ms > t->backoff_max_ms)
		l->backoff_ms = 0;
	l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : t->backoff_min_ms;
	if (l->backoff_ms > t->backoff_max_ms)
		l->backoff_ms = t->backoff_max_ms;
	if (!c->b->stop)
		bconn_timer(c, l->backoff_ms);
	if (!was_up && l->down_reported)
		return 0;
	l->down_reported = 1;
	return 1;
}
