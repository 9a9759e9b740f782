/* SPDX-License-Identifier: MIT */
/*
 * The bare ring: a single-producer single-consumer ring of fixed slots, the least a
 * shared-memory channel can do (no headers, no claims, no sequence numbers, no wake-ups).
 * head (slots written) and tail (slots read) live on their own cache lines, each side
 * caching the other's index and reloading it only when the ring looks full or empty. The
 * producer copies the message into a slot, then release-stores head; the consumer
 * acquire-loads head, reads the slot, and release-stores tail when it is done with it (at
 * its next recv, as a shmbus reader releases its view at its next shmbus_recv()). Both
 * sides busy-wait. Shared by the peer (peer_ring.c) and the instruction count (cpu.c).
 */
#ifndef SHMBUS_BENCH_BARE_RING_H
#define SHMBUS_BENCH_BARE_RING_H

#include <stdint.h>
#include <string.h>

#include "bench.h"

struct bring_hdr {
	_Alignas(128) uint64_t head;
	_Alignas(128) uint64_t tail;
	_Alignas(128) uint8_t slots[];
};

struct bring {
	struct bring_hdr *h;
	uint64_t mask, slot;
	uint32_t size;
	uint64_t head, tail_cache; /* producer's */
	uint64_t tail, head_cache; /* consumer's */
	int held;
};

/* Bytes of a ring of n slots (a power of two) of slot bytes (a multiple of 64). */
static inline size_t bring_bytes(uint64_t n, uint64_t slot)
{
	return sizeof(struct bring_hdr) + n * slot;
}

/* One side's handle on a ring at mem (zeroed when created). */
static inline void bring_init(struct bring *q, void *mem, uint64_t n, uint64_t slot, uint32_t size)
{
	memset(q, 0, sizeof(*q));
	q->h = mem;
	q->mask = n - 1;
	q->slot = slot;
	q->size = size;
}

static inline void bring_send(struct bring *q, const uint8_t *buf, uint32_t len)
{
	while (q->head - q->tail_cache > q->mask) {
		/* Acquire: the consumer's reads of the slot are done before we overwrite it. */
		q->tail_cache = __atomic_load_n(&q->h->tail, __ATOMIC_ACQUIRE);
		if (q->head - q->tail_cache > q->mask)
			cpu_relax();
	}
	memcpy(q->h->slots + (q->head & q->mask) * q->slot, buf, len);
	/* Release: the slot's contents are visible before the new head. */
	__atomic_store_n(&q->h->head, ++q->head, __ATOMIC_RELEASE);
}

/* The next message (q->size bytes), waiting busily; valid until the next call. */
static inline const uint8_t *bring_recv(struct bring *q)
{
	if (q->held) {
		/* Release: our reads of the slot happen before the producer may reuse it. */
		__atomic_store_n(&q->h->tail, ++q->tail, __ATOMIC_RELEASE);
		q->held = 0;
	}
	while (q->tail == q->head_cache) {
		/* Acquire: pairs with bring_send(); the slot's contents are visible. */
		q->head_cache = __atomic_load_n(&q->h->head, __ATOMIC_ACQUIRE);
		if (q->tail == q->head_cache)
			cpu_relax();
	}
	q->held = 1;
	return q->h->slots + (q->tail & q->mask) * q->slot;
}

#endif
