/* SPDX-License-Identifier: MIT */
/*
 * A reader counts in shmbus_topic_stats() only once it has joined: a publisher that waits
 * until the topic has N readers (examples/publisher.c --wait-readers) must be able to rely
 * on each of them receiving what it publishes next. A reader slot that is taken but whose
 * reader has no position yet (the moment inside shmbus_sub_open between the two) is not a
 * reader; neither is a slot its reader gave back or that was reclaimed.
 */
#include "tests/lib/test.h"

#include "bus/intree.h"
#include "ring/atomic.h"
#include "shm/layout.h"

static uint32_t readers(shmbus_bus_t *bus)
{
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "j", &st), 0);
	return st.readers;
}

int main(void)
{
	t_private_dir("joined");
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, "joined"), 0);
	CHECK_RC(shmbus_topic_create(bus, "j", NULL), 0);
	CHECK(readers(bus) == 0);

	/* A slot taken the way shmbus_sub_open takes it (its owner word), before the join:
	 * no reader. The last slot, so that the subscribers below take others. */
	struct shmbus_seg seg;
	CHECK_RC(shmbus_topic_open_seg(bus, "j", &seg), 0);
	struct shmbus_reader_slot *half = &seg.readers[seg.opts.max_readers - 1];
	uint64_t free_ = 0;
	CHECK(sb_cas_u64(&half->owner, &free_, SHMBUS_OWNER(SHMBUS_SLOT_ACTIVE, getpid())));
	CHECK(readers(bus) == 0);

	/* A fan-out subscriber and a group member that joined: two readers. */
	shmbus_sub_t *fan, *member;
	CHECK_RC(shmbus_sub_open(&fan, bus, "j", NULL, 0), 0);
	CHECK_RC(shmbus_sub_open(&member, bus, "j", "g", 0), 0);
	CHECK(readers(bus) == 2);

	/* A closed subscriber's slot, taken again the same way: the flag of its old owner
	 * does not count for the new one, which has not joined. */
	uint32_t fan_slot = UINT32_MAX;
	for (uint32_t i = 0; i < seg.opts.max_readers; i++)
		if (sb_ld_acquire(&seg.readers[i].owner) && !sb_ld_acquire(&seg.readers[i].group) &&
		    &seg.readers[i] != half)
			fan_slot = i;
	CHECK(fan_slot != UINT32_MAX);
	shmbus_sub_close(fan);
	CHECK(readers(bus) == 1);
	free_ = 0;
	CHECK(sb_cas_u64(&seg.readers[fan_slot].owner, &free_,
			 SHMBUS_OWNER(SHMBUS_SLOT_ACTIVE, getpid())));
	CHECK(readers(bus) == 1);
	sb_st_release(&seg.readers[fan_slot].owner, 0);
	sb_st_release(&half->owner, 0);

	shmbus_sub_close(member);
	CHECK(readers(bus) == 0);
	shmbus_seg_close(&seg);
	CHECK_RC(shmbus_topic_remove(bus, "j"), 0);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
