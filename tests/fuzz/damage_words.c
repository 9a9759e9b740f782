/* SPDX-License-Identifier: MIT */
/*
 * One damaged word never wedges, bricks or hangs a topic (issue 14; docs/algorithm.md,
 * "Damage"). Each case damages one word of a live topic's file, as a writer of the file
 * could, and checks the recovery within its documented bound (asserted with room for a
 * loaded machine, far below "never"):
 *  1. a commit word zeroed below the tail, a block-mode subscriber behind it: its receive
 *     returns -EBADMSG (not -EAGAIN for ever), then the messages after the damaged one,
 *     each once; the publisher, held back by that subscriber on a full ring, goes on;
 *     a group member meets the same and goes on too;
 *  2. the tail moved off a record boundary (+8): the next publish succeeds (the tail is
 *     made a boundary again), the subscriber reports -EBADMSG once and then reads on;
 *  3. the wake word's armed bits cleared while a reader sleeps in shmbus_recv(-1): the
 *     next message still reaches it, within the reader's bounded sleep (100 ms);
 *  4. a live publisher's slot left naming a claim it finished (a damaged claim_pos): the
 *     other publishers are not held back by it (I5 waits only for claims being written).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "bus/intree.h"
#include "ring/clock.h"
#include "ring/record.h"
#include "ring/wake.h"
#include "tests/lib/proc.h"
#include "tests/lib/test.h"

#define MS 1000000ull

static shmbus_bus_t *bus;

static void make(const char *name, uint64_t cap)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = cap;
	o.max_message = 256;
	CHECK_RC(shmbus_topic_create(bus, name, &o), 0);
}

static void publish_u64(shmbus_pub_t *pub, uint64_t v, int timeout_ms)
{
	CHECK_RC(shmbus_publish_timeout(pub, &v, sizeof(v), 0, timeout_ms), 0);
}

/* Receive the next message that is not -EBADMSG; its value. */
static uint64_t recv_u64(shmbus_sub_t *sub, int *badmsg)
{
	shmbus_msg_t m;
	for (;;) {
		int rc = shmbus_recv(sub, &m, T_WAIT_MS);
		if (rc == -EBADMSG) {
			(*badmsg)++;
			continue;
		}
		CHECK_RC(rc, 0);
		CHECK(m.len == sizeof(uint64_t));
		uint64_t v;
		memcpy(&v, m.data, sizeof(v));
		return v;
	}
}

static void case_commit_word(int group)
{
	const char *name = group ? "dmg-commit-g" : "dmg-commit";
	make(name, 1 << 12);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_pub_open(&pub, bus, name), 0);
	CHECK_RC(shmbus_sub_open(&sub, bus, name, group ? "workers" : NULL, 0), 0);
	/* Fill the ring: the subscriber holds the publisher back. */
	uint64_t n = 0;
	for (;;) {
		uint64_t v = n;
		int rc = shmbus_publish_timeout(pub, &v, sizeof(v), 0, 0);
		if (rc == -EAGAIN)
			break;
		CHECK_RC(rc, 0);
		n++;
	}
	CHECK(n > 10);
	/* Zero the commit word of message 5 (records are one stride each here). */
	struct shmbus_seg seg;
	CHECK_RC(shmbus_topic_open_seg(bus, name, &seg), 0);
	uint64_t stride = shmbus_rec_stride(sizeof(uint64_t));
	__atomic_store_n(&shmbus_rec_at(&seg, 5 * stride)->commit, 0, __ATOMIC_SEQ_CST);
	int bad = 0;
	for (uint64_t i = 0; i < 5; i++)
		CHECK(recv_u64(sub, &bad) == i);
	/* Message 5 is lost to the damage: the reader says so and goes on with 6. */
	uint64_t t0 = shmbus_now_ns();
	shmbus_msg_t m;
	int rc = shmbus_recv(sub, &m, T_WAIT_MS);
	uint64_t took = shmbus_now_ns() - t0;
	printf("%s: a zeroed commit word: recv returned %d after %.2f ms\n", name, rc,
	       (double)took / 1e6);
	CHECK_RC(rc, -EBADMSG);
	CHECK(took < 2000 * MS);
	for (uint64_t i = 6; i < n; i++)
		CHECK(recv_u64(sub, &bad) == i);
	CHECK(bad == 0);
	/* The publisher is not pinned: there is room again. */
	publish_u64(pub, n, 1000);
	CHECK(recv_u64(sub, &bad) == n);
	shmbus_seg_close(&seg);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void case_tail(void)
{
	make("dmg-tail", 1 << 16);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "dmg-tail"), 0);
	CHECK_RC(shmbus_sub_open(&sub, bus, "dmg-tail", NULL, 0), 0);
	for (uint64_t i = 0; i < 10; i++)
		publish_u64(pub, i, 1000);
	int bad = 0;
	for (uint64_t i = 0; i < 10; i++)
		CHECK(recv_u64(sub, &bad) == i);
	struct shmbus_seg seg;
	CHECK_RC(shmbus_topic_open_seg(bus, "dmg-tail", &seg), 0);
	__atomic_fetch_add(&seg.hdr->tail[0], 8, __ATOMIC_SEQ_CST);
	/* Publishing goes on at the next boundary. */
	for (uint64_t i = 10; i < 20; i++)
		publish_u64(pub, i, 1000);
	CHECK((__atomic_load_n(&seg.hdr->tail[0], __ATOMIC_SEQ_CST) & (SHMBUS_REC_ALIGN - 1)) == 0);
	/* The reader, waiting at the old tail where nothing will ever be committed, says
	 * so once and reads on. */
	uint64_t t0 = shmbus_now_ns();
	uint64_t v = recv_u64(sub, &bad);
	printf("dmg-tail: tail + 8: the reader got %d -EBADMSG and message %llu after %.2f ms\n",
	       bad, (unsigned long long)v, (double)(shmbus_now_ns() - t0) / 1e6);
	CHECK(bad == 1);
	CHECK(v == 10);
	for (uint64_t i = 11; i < 20; i++)
		CHECK(recv_u64(sub, &bad) == i);
	CHECK(bad == 1);
	shmbus_seg_close(&seg);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

struct sleeper {
	shmbus_sub_t *sub;
	int rc;
	_Atomic pid_t tid;
	uint64_t got_ns;
};

static void *sleeper_main(void *arg)
{
	struct sleeper *sl = arg;
	shmbus_msg_t m;
	shmbus_sub_set_spin(sl->sub, 0);
	sl->tid = gettid();
	sl->rc = shmbus_recv(sl->sub, &m, -1);
	sl->got_ns = shmbus_now_ns();
	return NULL;
}

static void case_wake_word(void)
{
	make("dmg-wake", 1 << 16);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "dmg-wake"), 0);
	CHECK_RC(shmbus_sub_open(&sub, bus, "dmg-wake", NULL, 0), 0);
	struct shmbus_seg seg;
	CHECK_RC(shmbus_topic_open_seg(bus, "dmg-wake", &seg), 0);
	struct sleeper sl = { sub, -1, 0, 0 };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, sleeper_main, &sl) == 0);
	/* Wait until it armed the wake word and sleeps in the kernel, then clear the armed
	 * bits (the damage): nothing will wake it but its own bound. */
	uint64_t t0 = shmbus_now_ns();
	while (!(__atomic_load_n(&seg.rt->wake, __ATOMIC_SEQ_CST) & SHMBUS_WAKE_ARMED) ||
	       !sl.tid || t_proc_state(sl.tid) != 'S') {
		if (shmbus_now_ns() - t0 > (uint64_t)T_WAIT_MS * MS) {
			fprintf(stderr, "the reader never went to sleep armed\n");
			exit(1);
		}
		sched_yield();
	}
	__atomic_and_fetch(&seg.rt->wake, ~SHMBUS_WAKE_ARMED, __ATOMIC_SEQ_CST);
	uint64_t sent = shmbus_now_ns();
	publish_u64(pub, 42, 1000);
	CHECK(pthread_join(th, NULL) == 0);
	double ms = (double)(sl.got_ns - sent) / 1e6;
	printf("dmg-wake: armed bits cleared under a sleeping reader: message after %.1f ms\n", ms);
	CHECK_RC(sl.rc, 0);
	CHECK(sl.got_ns - sent < 2000 * MS);
	shmbus_seg_close(&seg);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void case_claim_pos(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 12;
	o.max_message = 256;
	o.policy = SHMBUS_OVERWRITE;
	CHECK_RC(shmbus_topic_create(bus, "dmg-claim", &o), 0);
	shmbus_pub_t *a, *b;
	CHECK_RC(shmbus_pub_open(&a, bus, "dmg-claim"), 0);
	CHECK_RC(shmbus_pub_open(&b, bus, "dmg-claim"), 0);
	publish_u64(a, 0, 1000);
	struct shmbus_seg seg;
	CHECK_RC(shmbus_topic_open_seg(bus, "dmg-claim", &seg), 0);
	/* a's slot (the one that published) names its finished claim at 0 again. */
	int found = 0;
	for (uint32_t i = 0; i < seg.opts.max_publishers; i++) {
		struct shmbus_pub_slot *ps = &seg.pubs[i];
		if (__atomic_load_n(&ps->owner, __ATOMIC_ACQUIRE) &&
		    __atomic_load_n(&ps->published, __ATOMIC_RELAXED) == 1) {
			__atomic_store_n(&ps->claim_end, shmbus_rec_stride(sizeof(uint64_t)),
					 __ATOMIC_RELAXED);
			__atomic_store_n(&ps->claim_pos, 0, __ATOMIC_SEQ_CST);
			found = 1;
		}
	}
	CHECK(found);
	/* b goes round the ring three times, never waiting for a's non-claim. */
	uint64_t n = 3 * (1 << 12) / shmbus_rec_stride(sizeof(uint64_t));
	for (uint64_t i = 1; i <= n; i++)
		publish_u64(b, i, 1000);
	printf("dmg-claim: a finished claim named again did not hold %llu messages back\n",
	       (unsigned long long)n);
	shmbus_seg_close(&seg);
	shmbus_pub_close(a);
	shmbus_pub_close(b);
}

int main(void)
{
	t_private_dir("dmg");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	case_commit_word(0);
	case_commit_word(1);
	case_tail();
	case_wake_word();
	case_claim_pos();
	shmbus_bus_close(bus);
	if (t_failures)
		return 1;
	printf("damage_words: ok\n");
	return 0;
}
