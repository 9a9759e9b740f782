/* SPDX-License-Identifier: MIT */
/*
 * Policies. block: a publisher never overruns a live reader; with the ring full it waits
 * and times out with -EAGAIN (nothing written), and goes on as soon as the reader
 * consumes; closing the reader frees the publisher. overwrite: the publisher never waits;
 * a lapped reader skips ahead, and received + lost == published exactly. Waking: with a
 * block ring kept full by a slow reader, its releases wake the sleeping publisher about
 * sixteen times a lap, not once a message (which put both in lockstep, a futex syscall
 * each per message), and the publisher still gets everything through.
 */
#include "tests/lib/test.h"

#include <pthread.h>

#include "ring/record.h"

static shmbus_bus_t *bus;

static void block(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 14;
	o.max_message = 1000;
	CHECK_RC(shmbus_topic_create(bus, "blk", &o), 0);
	shmbus_sub_t *sub;
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "blk", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "blk"), 0);
	uint8_t buf[480];
	int n = 0;
	/* 512-byte records: exactly 32 fit in 16 KiB. */
	for (;; n++) {
		memset(buf, n, sizeof(buf));
		int rc = shmbus_publish_timeout(pub, buf, sizeof(buf), (uint32_t)n, 0);
		if (rc == -EAGAIN)
			break;
		CHECK_RC(rc, 0);
		CHECK(n < 100);
	}
	CHECK(n == 32);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "blk", &st), 0);
	CHECK(st.published == 32 && st.next_seq == 32 && st.backpressure_waits >= 1);
	/* A timed wait lasts about as long as asked, and writes nothing. */
	uint64_t t0 = t_now_ns();
	CHECK_RC(shmbus_publish_timeout(pub, buf, sizeof(buf), 99, 40), -EAGAIN);
	uint64_t el = t_now_ns() - t0;
	CHECK(el >= 40000000ull && el < 2000000000ull);
	CHECK_RC(shmbus_topic_stats(bus, "blk", &st), 0);
	CHECK(st.next_seq == 32);
	/* Reading one message and releasing it makes room for one more. */
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 100), 0);
	CHECK(m.seq == 0 && m.type == 0);
	CHECK_RC(shmbus_publish_timeout(pub, buf, sizeof(buf), 32, 0), -EAGAIN); /* held */
	CHECK_RC(shmbus_release(sub, &m), 0);
	CHECK_RC(shmbus_publish_timeout(pub, buf, sizeof(buf), 32, 0), 0);
	/* Everything arrives, in order, intact. */
	for (int i = 1; i <= 32; i++) {
		CHECK_RC(shmbus_recv(sub, &m, 100), 0);
		CHECK(m.seq == (uint64_t)i && m.type == (uint32_t)i && m.lost == 0);
		CHECK(((const uint8_t *)m.data)[479] == (uint8_t)i);
	}
	CHECK_RC(shmbus_release(sub, &m), 0);
	/* Full again; a waiting publisher is released when the reader closes. */
	for (int i = 0; i < 32; i++)
		CHECK_RC(shmbus_publish_timeout(pub, buf, sizeof(buf), 0, 0), 0);
	CHECK_RC(shmbus_publish_timeout(pub, buf, sizeof(buf), 0, 0), -EAGAIN);
	shmbus_sub_close(sub);
	CHECK_RC(shmbus_publish_timeout(pub, buf, sizeof(buf), 0, 0), 0);
	/* With no reader at all, block mode never waits. */
	for (int i = 0; i < 200; i++)
		CHECK_RC(shmbus_publish_timeout(pub, buf, sizeof(buf), 0, 0), 0);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "blk"), 0);
}

static void overwrite(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 14;
	o.max_message = 2000;
	o.policy = SHMBUS_OVERWRITE;
	CHECK_RC(shmbus_topic_create(bus, "ow", &o), 0);
	shmbus_sub_t *sub;
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "ow", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "ow"), 0);
	uint64_t seed = t_seed(), rs = seed;
	printf("overwrite: seed %" PRIu64 "\n", seed);
	uint64_t published = 0, received = 0, lost = 0, last = 0;
	static uint8_t buf[2000];
	for (int round = 0; round < 200; round++) {
		int burst = (int)(t_rand(&rs) % 200);
		for (int i = 0; i < burst; i++) {
			size_t len = 8 + t_rand(&rs) % 1992;
			uint64_t h = published * 2654435761u;
			memcpy(buf, &published, 8);
			memset(buf + 8, (int)(h & 0xff), len - 8);
			CHECK_RC(shmbus_publish(pub, buf, len, (uint32_t)len), 0);
			published++;
		}
		int reads = (int)(t_rand(&rs) % 60);
		for (int i = 0; i < reads; i++) {
			shmbus_msg_t m;
			int rc = shmbus_recv(sub, &m, 0);
			if (rc == -EAGAIN)
				break;
			CHECK_RC(rc, 0);
			uint64_t id;
			CHECK(m.len == m.type && m.len >= 8);
			memcpy(&id, m.data, 8);
			CHECK(id == m.seq);
			uint8_t want = (uint8_t)((id * 2654435761u) & 0xff);
			for (uint32_t k = 8; k < m.len; k++)
				CHECK(((const uint8_t *)m.data)[k] == want);
			CHECK(received == 0 || m.seq > last);
			last = m.seq;
			received++;
			lost += m.lost;
		}
	}
	shmbus_msg_t m;
	int rc;
	while ((rc = shmbus_recv(sub, &m, 0)) == 0) {
		received++;
		lost += m.lost;
		CHECK(m.seq > last);
		last = m.seq;
	}
	CHECK_RC(rc, -EAGAIN);
	printf("overwrite: published %" PRIu64 ", received %" PRIu64 ", lost %" PRIu64 "\n",
	       published, received, lost);
	CHECK(lost > 0);
	CHECK(received + lost == published);
	CHECK(last == published - 1);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "ow"), 0);
}

#define WH_N 40000
#define WH_LEN 64

static int wh_done; /* the publisher has published everything */

static void *wh_publisher(void *arg)
{
	shmbus_pub_t *pub = arg;
	uint8_t buf[WH_LEN];
	for (uint32_t i = 0; i < WH_N; i++) {
		memset(buf, (int)(i & 0xff), sizeof(buf));
		CHECK_RC(shmbus_publish_timeout(pub, buf, sizeof(buf), i, T_WAIT_MS), 0);
	}
	__atomic_store_n(&wh_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The slow reader's pause: until the publisher sleeps for space, or is done. */
static void wh_pause(struct shmbus_seg *s)
{
	uint64_t end = t_deadline(T_WAIT_MS);
	while (!sb_ld_acquire(&s->rt->pub_waiters) && !__atomic_load_n(&wh_done, __ATOMIC_ACQUIRE)) {
		if (t_now_ns() > end) {
			fprintf(stderr,
				"wake hysteresis: the publisher neither waited for space "
				"nor finished within %d ms\n",
				T_WAIT_MS);
			exit(1);
		}
		usleep(50); /* poll interval */
	}
}

static void wake_hysteresis(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	o.max_message = 256;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, "wh", &o), 0);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "wh", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "wh"), 0);
	struct shmbus_seg s;
	CHECK_RC(shmbus_seg_open(&s, shmbus_bus_path(bus), "wh"), 0);
	uint32_t wakes0 = sb_ld_relaxed(&s.rt->space);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, wh_publisher, pub) == 0);
	/* A slow reader: a pause every 64 messages, until the ring is full and the publisher
	 * asleep (past its 20 us spin), so that the reader comes back to a sleeping one. */
	shmbus_msg_t m;
	for (uint32_t i = 0; i < WH_N; i++) {
		CHECK_RC(shmbus_recv(sub, &m, T_WAIT_MS), 0);
		CHECK(m.len == WH_LEN && m.type == i && m.seq == i && m.lost == 0);
		CHECK(((const uint8_t *)m.data)[WH_LEN - 1] == (uint8_t)(i & 0xff));
		if (i % 64 == 63)
			wh_pause(&s);
	}
	CHECK(pthread_join(th, NULL) == 0);
	uint32_t wakes = sb_ld_relaxed(&s.rt->space) - wakes0;
	/* One wake per sixteenth of the ring read, and a few for the reader's sleeps. */
	uint64_t bytes = (uint64_t)WH_N * shmbus_rec_stride(WH_LEN);
	uint64_t bound = bytes / (o.capacity / 16) + 32;
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "wh", &st), 0);
	printf("wake hysteresis: %u publisher wakes for %d messages (%" PRIu64
	       " laps, bound %" PRIu64 "), %" PRIu64 " backpressure waits\n",
	       wakes, WH_N, bytes / o.capacity, bound, st.backpressure_waits);
	CHECK(wakes <= bound);
	CHECK(st.backpressure_waits > 0); /* the ring really was full */
	shmbus_seg_close(&s);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "wh"), 0);
}

int main(void)
{
	t_private_dir("pol");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	block();
	overwrite();
	wake_hysteresis();
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
