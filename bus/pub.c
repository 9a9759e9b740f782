/* SPDX-License-Identifier: MIT */
/*
 * Publisher handles: a slot in the topic's publisher table and a writer on its log
 * (ring/writer.h, where claiming, writing and committing are). Here: opening, closing,
 * the API's checks, and the dispatch of one publish between the writer's inline fast
 * path and its general one.
 */
#include <errno.h>
#include <stdlib.h>

#include "bus/internal.h"
#include "bus/proto.h"
#include "ring/clock.h"
#include "shm/err.h"

SHMBUS_API int shmbus_pub_open(shmbus_pub_t **out, shmbus_bus_t *bus, const char *topic)
{
	*out = NULL;
	struct shmbus_pub *p = calloc(1, sizeof(*p));
	if (!p)
		return shmbus_err(-ENOMEM, "out of memory");
	struct shmbus_seg *s = &p->w.seg;
	int rc = shmbus_topic_open_role(bus, topic, s, SHMBUS_ROLE_PUB);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p->timeout_ms = -1;
	rc = shmbus_ring_writer_init(&p->w);
	if (rc < 0) {
		rc = shmbus_err(rc, "out of memory");
		goto fail;
	}
	rc = shmbus_slot_take(s, SHMBUS_TABLE_PUBS);
	if (rc < 0)
		goto fail_writer;
	p->slot_idx = (uint32_t)rc;
	p->w.slot = &s->pubs[rc];
	*out = p;
	return 0;
fail_writer:
	shmbus_ring_writer_fini(&p->w);
fail:
	shmbus_seg_close(s);
	free(p);
	return rc;
}

SHMBUS_API void shmbus_pub_close(shmbus_pub_t *p)
{
	if (!p)
		return;
	shmbus_ring_writer_fini(&p->w);
	shmbus_slot_put(&p->w.seg, SHMBUS_TABLE_PUBS, p->slot_idx);
	shmbus_seg_close(&p->w.seg);
	free(p);
}

SHMBUS_API int shmbus_pub_set_timeout(shmbus_pub_t *p, int timeout_ms)
{
	p->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
	return 0;
}

/* One publish, any size and state: the checks, the fast path with a call to memcpy, the
 * writer's general path. */
static __attribute__((noinline)) int publish_any(shmbus_pub_t *p, const void *data, size_t len,
						 uint32_t type, int timeout_ms)
{
	if (p->w.reserved)
		return -EBUSY;
	if (len > p->w.seg.opts.max_message)
		return -EMSGSIZE;
	if (shmbus_ring_write_fast(&p->w, data, (uint32_t)len, type, shmbus_stamp_ns(), 0))
		return 0;
	return shmbus_ring_write(&p->w, data, (uint32_t)len, type, timeout_ms);
}

/* A small message on the fast path with no call at all (no registers to save), else
 * publish_any() as a tail call. */
static inline __attribute__((always_inline)) int publish_one(shmbus_pub_t *p, const void *data,
							     size_t len, uint32_t type,
							     int timeout_ms)
{
	uint64_t ts, now;
	if (len <= SHMBUS_REC_SMALL_MAX && !p->w.reserved && len <= p->w.seg.opts.max_message &&
	    shmbus_stamp_fast(&ts, &now) &&
	    shmbus_ring_write_fast(&p->w, data, (uint32_t)len, type, ts, 1))
		return 0;
	return publish_any(p, data, len, type, timeout_ms);
}

SHMBUS_API int shmbus_publish_timeout(shmbus_pub_t *p, const void *data, size_t len,
				      uint32_t type, int timeout_ms)
{
	return publish_one(p, data, len, type, timeout_ms);
}

SHMBUS_API int shmbus_publish(shmbus_pub_t *p, const void *data, size_t len, uint32_t type)
{
	return publish_one(p, data, len, type, p->timeout_ms);
}

SHMBUS_API int shmbus_publish_batch(shmbus_pub_t *p, const shmbus_iov_t *msgs, unsigned n)
{
	if (p->w.reserved)
		return -EBUSY;
	for (unsigned i = 0; i < n; i++)
		if (msgs[i].len > p->w.seg.opts.max_message)
			return -EMSGSIZE;
	return shmbus_ring_write_batch(&p->w, msgs, n, p->timeout_ms);
}

SHMBUS_API int shmbus_reserve(shmbus_pub_t *p, size_t len, void **buf)
{
	if (p->w.reserved)
		return -EBUSY;
	if (len > p->w.seg.opts.max_message)
		return -EMSGSIZE;
	return shmbus_ring_reserve(&p->w, len, p->timeout_ms, buf);
}

SHMBUS_API int shmbus_commit_type(shmbus_pub_t *p, uint32_t type)
{
	return shmbus_ring_commit(&p->w, type);
}

SHMBUS_API int shmbus_commit(shmbus_pub_t *p)
{
	return shmbus_commit_type(p, 0);
}

SHMBUS_API int shmbus_abort(shmbus_pub_t *p)
{
	return shmbus_ring_abort(&p->w);
}
