/* SPDX-License-Identifier: MIT */
/*
 * Repair after dead processes (ring/repair.c): a dead publisher's open claim becomes
 * padding, a dead process's slots are freed. Called by whoever is held up (a stuck reader,
 * a publisher waiting for space, one opening a handle on a full table) and by the daemon,
 * which reaps at once. Safe to call from any number of processes at once: every slot is
 * taken over by CAS before it is touched.
 */
#ifndef SHMBUS_RING_REPAIR_H
#define SHMBUS_RING_REPAIR_H

#include <stdint.h>

#include "shm/segment.h"

/*
 * A reader is stuck at pos p: the tail was past it (the caller read it before this call)
 * but no record is committed there. If the publisher whose claim covers p is dead, cover
 * the rest of its claim with padding (counted as aborted) and free its slot. Returns 1
 * when p is now committed, 0 when its claimant is alive (wait and call again), -EBADMSG
 * when no publisher names a claim covering p and p is still not committed: the commit
 * word was damaged (I3: a claim is named in its slot before the CAS that moves the tail
 * past it, and cleared only after its commits). On a topic whose log is mapped read-only
 * (s->log_ro: a brokered subscriber) nothing is written: a dead claimant's claim is left
 * to the daemon or a publisher (0), damage is still reported.
 */
int shmbus_ring_repair(struct shmbus_seg *s, uint64_t p);

/*
 * The tail's position, made a record boundary first if damage left it unaligned (moved up
 * to the next boundary by CAS: nothing is written in between, and a reader waiting below
 * finds no claim covering its position, which shmbus_ring_repair() reports as damage).
 * With s->log_ro, only the boundary is computed.
 */
uint64_t shmbus_ring_fix_tail(struct shmbus_seg *s);

/*
 * Free publisher slots of dead processes whose claims are resolved (repairing those that
 * are not); only_claims: look only at slots with a claim open. Returns how many.
 */
int shmbus_ring_pub_gc(struct shmbus_seg *s, int only_claims);

/*
 * Free the reader slots of dead processes that hold position minpos (or any, when minpos
 * is SHMBUS_NOPOS). Returns how many were freed.
 */
int shmbus_ring_reclaim_readers(struct shmbus_seg *s, uint64_t minpos);

/* Free one reader slot whose owner (observed as owner) is dead. 1 if this call freed it. */
int shmbus_ring_reclaim_reader(struct shmbus_seg *s, uint32_t idx, uint64_t owner);

#endif
