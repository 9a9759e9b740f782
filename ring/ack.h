/* SPDX-License-Identifier: MIT */
/*
 * Acknowledging group members (SHMBUS_SUB_ACK; docs/acks.md): a message such a member takes
 * from the group's cursor stays *pending* in one of the group's pending entries
 * (shm/layout.h, struct shmbus_pend) until it is acked; nacked, timed out or held by a
 * member that went away, it becomes *ready* and the next member to look takes it again;
 * delivered max_deliver times it goes to the dead-letter topic instead.
 *
 * An entry's ctl word (one CAS per transition) packs its state, the reason it became
 * ready, its deliveries, the reader slot holding it and a generation that each free
 * renews: an ack names the entry and generation it was given, so an ack of a message
 * redelivered since (or never this member's) fails with -ESTALE and changes nothing.
 *
 *   FREE --reserve--> RESERVED --cursor CAS--> HELD --ack--> FREE
 *                        |  (pos written, seq_cst,   |--nack / timeout / holder gone--> READY
 *                        |   before the cursor CAS,  READY --taken again--> HELD
 *                        |   which tags the cursor with the taker: shmbus_ack_confirm())
 *                        +--holder gone, nothing taken--> FREE
 *   READY --CAS--> TAKING --holder named--> HELD      (TAKING of a taker gone: READY)
 *
 * Block-mode publishers never overwrite a record a non-free entry names (it counts as
 * unread: ring/writer.c, shmbus_ring_min_pos()); in overwrite mode a pending record that
 * was overwritten is counted lost when it would be delivered again.
 */
#ifndef SHMBUS_RING_ACK_H
#define SHMBUS_RING_ACK_H

#include <stdint.h>

#include <shmbus.h>

#include "shm/segment.h"

#define SHMBUS_PEND_FREE 0u
#define SHMBUS_PEND_RESERVED 1u
#define SHMBUS_PEND_HELD 2u
#define SHMBUS_PEND_READY 3u
#define SHMBUS_PEND_TAKING 4u /* ready, being taken again: ours, holder not named yet */
#define SHMBUS_PEND_RETURNING 5u /* held, being nacked: its holder writes the delay */

/* The reason of a reserved entry that names no message yet (its pos and seq are left from
 * an earlier use): shmbus_ring_ack_name() clears it once they are written. */
#define SHMBUS_PEND_UNNAMED 1u

static inline uint32_t shmbus_pend_state(uint64_t c)
{
	return (uint32_t)(c & 0xf);
}
static inline uint32_t shmbus_pend_reason(uint64_t c)
{
	return (uint32_t)((c >> 4) & 0xf);
}
static inline uint32_t shmbus_pend_deliveries(uint64_t c)
{
	return (uint32_t)((c >> 8) & 0xffff);
}
static inline uint32_t shmbus_pend_slot(uint64_t c)
{
	return (uint32_t)((c >> 24) & 0xffff);
}
static inline uint32_t shmbus_pend_gen(uint64_t c)
{
	return (uint32_t)(c >> 40);
}
static inline uint64_t shmbus_pend_ctl(uint32_t state, uint32_t reason, uint32_t deliveries,
				       uint32_t slot, uint32_t gen)
{
	return (uint64_t)state | (uint64_t)(reason & 0xf) << 4 |
	       (uint64_t)(deliveries & 0xffff) << 8 | (uint64_t)(slot & 0xffff) << 24 |
	       (uint64_t)(gen & 0xffffff) << 40;
}

/* Group g's entries. */
static inline struct shmbus_pend *shmbus_pend_of(const struct shmbus_seg *s, uint32_t g)
{
	return s->pend + (uint64_t)g * s->opts.max_pending;
}

/* The defaults and checks of group options; into the group slot being made. */
void shmbus_group_opts_defaults(shmbus_group_opts_t *o);
int shmbus_group_opts_check(const shmbus_group_opts_t *o, const struct shmbus_seg *s);
void shmbus_group_opts_store(struct shmbus_group_slot *gs, const shmbus_group_opts_t *o,
			     const char *topic);

/*
 * Hand entries back (held -> ready) whose holder is gone or, with SHMBUS_SCAN_TIMEOUTS,
 * whose ack_wait_ms passed; free reserved entries of gone holders (made ready if their
 * holder took the message). Gone: holder != 0: that pid's entries (the daemon reaping
 * it); else a holder whose reader slot is not its own any more, and with SHMBUS_SCAN_GONE
 * also one that /proc says is dead. Returns how many it changed. Anyone may call it at
 * any time: the members do, every 10 ms (asking /proc every 50 ms), and the daemon when
 * it reaps a process.
 */
#define SHMBUS_SCAN_TIMEOUTS 1
#define SHMBUS_SCAN_GONE 2
int shmbus_ack_scan(struct shmbus_seg *s, uint32_t g, int32_t holder, int how);

/* A cursor word's tag (shm/layout.h) names a take: confirm it in the taker's slot
 * (taken_seq, only ever forward). Whoever moves a cursor from a tagged word calls it first,
 * and so does a scan deciding on a reserved entry of a holder gone. */
void shmbus_ack_confirm(struct shmbus_seg *s, uint64_t w);

/* Pending entries of group g, the oldest first delivery among them (CLOCK_MONOTONIC ns,
 * 0 if none). A snapshot. */
uint32_t shmbus_ack_pending(const struct shmbus_seg *s, uint32_t g, uint64_t *oldest_ns);

/*
 * Lowest position a non-free entry names (for block-mode publishers), or min if none is
 * lower; positions outside [tail - capacity, tail] are ignored. Only groups with entries
 * waiting (bit 1 of ghas[g], read before the members' floors, or nready now, after them) are
 * looked at: a live member's entries are under its slot's floor.
 */
uint64_t shmbus_ack_min_pos(const struct shmbus_seg *s, uint32_t ngroups, uint64_t tail,
			    uint64_t min, const uint8_t *ghas);

#endif
