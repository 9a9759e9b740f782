/* SPDX-License-Identifier: MIT */
/*
 * The public API in one process: every size from 0 to max_message round-trips with its
 * type, sequence and timestamp; reserve/commit/abort; batches; the lap padding is never
 * seen; a view stays valid until the next recv/release; fan-out readers each get
 * everything published after they joined; SHMBUS_SUB_EARLIEST; recv timeouts; stats.
 */
#include "tests/lib/test.h"

static shmbus_bus_t *bus;

static void fill(uint8_t *b, size_t n, uint64_t tag)
{
	uint64_t s = tag;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)t_rand(&s);
}

static void expect(shmbus_sub_t *sub, const void *data, size_t len, uint32_t type,
		   uint64_t seq)
{
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 1000), 0);
	if (m.len != len || m.type != type || m.seq != seq || (len && memcmp(m.data, data, len))) {
		fprintf(stderr, "got len %u type %u seq %" PRIu64 ", wanted len %zu type %u "
			"seq %" PRIu64 "\n", m.len, m.type, m.seq, len, type, seq);
		exit(1);
	}
	CHECK(m.lost == 0);
}

static void sizes(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	o.max_message = 8000;
	CHECK_RC(shmbus_topic_create(bus, "sizes", &o), 0);
	shmbus_pub_t *pub;
	shmbus_sub_t *a, *b;
	CHECK_RC(shmbus_sub_open(&a, bus, "sizes", NULL, 0), 0);
	CHECK_RC(shmbus_sub_open(&b, bus, "sizes", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "sizes"), 0);
	static uint8_t buf[8000];
	uint64_t seq = 0;
	uint64_t t0 = (uint64_t)time(NULL) * 1000000000ull;
	/* Every size up to 300, then steps to the max: many laps of a 64 KiB ring. */
	for (size_t len = 0; len <= 8000; len += len < 300 ? 1 : 97) {
		fill(buf, len, len);
		/* From a heap block of exactly len bytes: the inline copy of small payloads
		 * must not read past the end (ASan catches it). */
		uint8_t *exact = malloc(len ? len : 1);
		CHECK(exact);
		memcpy(exact, buf, len);
		CHECK_RC(shmbus_publish(pub, exact, len, (uint32_t)len * 3), 0);
		free(exact);
		expect(a, buf, len, (uint32_t)len * 3, seq);
		shmbus_msg_t m;
		CHECK_RC(shmbus_recv(b, &m, 1000), 0);
		CHECK(m.len == len && m.seq == seq && !memcmp(m.data, buf, len));
		CHECK(m.timestamp_ns + 5000000000ull >= t0 && m.timestamp_ns < t0 + 60000000000ull);
		seq++;
	}
	fill(buf, 8000, 1);
	CHECK_RC(shmbus_publish(pub, buf, 8000, 1), 0);
	CHECK_RC(shmbus_publish(pub, buf, 8001, 1), -EMSGSIZE);
	expect(a, buf, 8000, 1, seq);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(a, &m, 0), -EAGAIN);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "sizes", &st), 0);
	CHECK(st.published == seq + 1 && st.next_seq == seq + 1);
	CHECK(st.readers == 2 && st.publishers == 1 && st.aborted == 0);
	CHECK(st.tail > o.capacity); /* it wrapped */
	shmbus_sub_close(a);
	shmbus_sub_close(b);
	shmbus_pub_close(pub);
	/* Counters survive the publisher's close. */
	CHECK_RC(shmbus_topic_stats(bus, "sizes", &st), 0);
	CHECK(st.published == seq + 1 && st.readers == 0 && st.publishers == 0);
	CHECK_RC(shmbus_topic_remove(bus, "sizes"), 0);
}

static void reserve_abort_batch(void)
{
	CHECK_RC(shmbus_topic_create(bus, "res", NULL), 0);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "res", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "res"), 0);
	void *r;
	CHECK_RC(shmbus_reserve(pub, 5, &r), 0);
	CHECK_RC(shmbus_reserve(pub, 5, &r), -EBUSY);
	CHECK_RC(shmbus_publish(pub, "x", 1, 0), -EBUSY);
	memcpy(r, "hello", 5);
	CHECK_RC(shmbus_commit_type(pub, 42), 0);
	CHECK_RC(shmbus_commit(pub), -EINVAL);
	CHECK_RC(shmbus_reserve(pub, 100, &r), 0);
	memset(r, 0xee, 100);
	CHECK_RC(shmbus_abort(pub), 0);
	CHECK_RC(shmbus_abort(pub), -EINVAL);
	CHECK_RC(shmbus_publish(pub, "after", 5, 7), 0);
	shmbus_iov_t iov[4] = { { "a", 1, 1 }, { "", 0, 2 }, { "ccc", 3, 3 }, { "dd", 2, 4 } };
	CHECK_RC(shmbus_publish_batch(pub, iov, 4), 4);
	CHECK_RC(shmbus_publish_batch(pub, iov, 0), 0);

	expect(sub, "hello", 5, 42, 0);
	/* seq 1 was aborted: not lost, just skipped. */
	expect(sub, "after", 5, 7, 2);
	for (int i = 0; i < 4; i++)
		expect(sub, iov[i].data, iov[i].len, iov[i].type, 3 + (uint64_t)i);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 0), -EAGAIN);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "res", &st), 0);
	CHECK(st.aborted == 1 && st.published == 6);
	/* Closing with a reservation open aborts it. */
	CHECK_RC(shmbus_reserve(pub, 10, &r), 0);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_pub_open(&pub, bus, "res"), 0);
	CHECK_RC(shmbus_publish(pub, "z", 1, 9), 0);
	expect(sub, "z", 1, 9, 8);
	CHECK_RC(shmbus_topic_stats(bus, "res", &st), 0);
	CHECK(st.aborted == 2);
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	CHECK_RC(shmbus_topic_remove(bus, "res"), 0);
}

/* A big batch spans several claims and laps; every message arrives in order. */
static void big_batch(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 14;
	o.max_message = 1000;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, "bb", &o), 0);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "bb", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "bb"), 0);
	shmbus_pub_set_timeout(pub, 0);
	static uint8_t data[64][1000];
	shmbus_iov_t iov[64];
	uint64_t seq = 0;
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 64; i++) {
			size_t len = (size_t)(round * 64 + i) * 37 % 1000;
			fill(data[i], len, (uint64_t)round * 64 + (uint64_t)i);
			iov[i] = (shmbus_iov_t){ data[i], len, (uint32_t)i };
		}
		int n = shmbus_publish_batch(pub, iov, 64);
		/* A 16 KiB ring in block mode holds part of a 64-message batch: the rest
		 * would wait, and the timeout is 0. */
		CHECK(n > 0 && n <= 64);
		for (int i = 0; i < n; i++)
			expect(sub, data[i], iov[i].len, (uint32_t)i, seq++);
		shmbus_msg_t m;
		CHECK_RC(shmbus_recv(sub, &m, 0), -EAGAIN);
	}
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	CHECK_RC(shmbus_topic_remove(bus, "bb"), 0);
}

static void views_and_release(void)
{
	CHECK_RC(shmbus_topic_create(bus, "v", NULL), 0);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "v", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "v"), 0);
	CHECK_RC(shmbus_publish(pub, "one", 3, 0), 0);
	CHECK_RC(shmbus_publish(pub, "two", 3, 0), 0);
	shmbus_msg_t m1, m2;
	CHECK_RC(shmbus_recv(sub, &m1, 100), 0);
	CHECK(memcmp(m1.data, "one", 3) == 0);
	CHECK_RC(shmbus_release(sub, &m1), 0);
	CHECK_RC(shmbus_recv(sub, &m2, 100), 0);
	CHECK(memcmp(m2.data, "two", 3) == 0);
	CHECK_RC(shmbus_release(sub, &m1), -EINVAL); /* not the one held */
	CHECK_RC(shmbus_release(sub, &m2), 0);
	CHECK_RC(shmbus_recv(sub, &m2, 0), -EAGAIN);
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	CHECK_RC(shmbus_topic_remove(bus, "v"), 0);
}

/* Joining: a fan-out reader sees what came after it joined; EARLIEST sees the backlog. */
static void joining(void)
{
	CHECK_RC(shmbus_topic_create(bus, "j", NULL), 0);
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "j"), 0);
	for (int i = 0; i < 10; i++)
		CHECK_RC(shmbus_publish(pub, &i, sizeof(i), 0), 0);
	shmbus_sub_t *late, *early;
	CHECK_RC(shmbus_sub_open(&late, bus, "j", NULL, 0), 0);
	CHECK_RC(shmbus_sub_open(&early, bus, "j", NULL, SHMBUS_SUB_EARLIEST), 0);
	shmbus_sub_t *bad;
	CHECK_RC(shmbus_sub_open(&bad, bus, "j", NULL, 0x100), -EINVAL);
	int v = 10;
	CHECK_RC(shmbus_publish(pub, &v, sizeof(v), 0), 0);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(late, &m, 100), 0);
	CHECK(*(const int *)m.data == 10 && m.seq == 10);
	for (int i = 0; i <= 10; i++) {
		CHECK_RC(shmbus_recv(early, &m, 100), 0);
		CHECK(*(const int *)m.data == i && m.seq == (uint64_t)i && m.lost == 0);
	}
	CHECK_RC(shmbus_recv(early, &m, 0), -EAGAIN);
	shmbus_sub_close(late);
	shmbus_sub_close(early);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "j"), 0);
}

static void timeouts(void)
{
	CHECK_RC(shmbus_topic_create(bus, "to", NULL), 0);
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "to", NULL, 0), 0);
	shmbus_msg_t m;
	uint64_t t0 = t_now_ns();
	CHECK_RC(shmbus_recv(sub, &m, 0), -EAGAIN);
	CHECK_RC(shmbus_recv(sub, &m, 30), -EAGAIN);
	uint64_t el = t_now_ns() - t0;
	CHECK(el >= 30000000ull);
	CHECK(el < 2000000000ull);
	shmbus_sub_close(sub);
	CHECK_RC(shmbus_sub_open(&sub, bus, "nope", NULL, 0), -ENOENT);
	CHECK(strstr(shmbus_errmsg(), "nope") != NULL);
	CHECK_RC(shmbus_sub_open(&sub, bus, "to", "bad group", 0), -EINVAL);
	CHECK_RC(shmbus_topic_remove(bus, "to"), 0);
}

/* Slots: a topic with 2 reader and 1 publisher slots refuses the third with -EUSERS. */
static void slots(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.max_readers = 2;
	o.max_publishers = 1;
	o.max_groups = 1;
	CHECK_RC(shmbus_topic_create(bus, "sl", &o), 0);
	shmbus_sub_t *a, *b, *c;
	shmbus_pub_t *p, *q;
	CHECK_RC(shmbus_sub_open(&a, bus, "sl", NULL, 0), 0);
	CHECK_RC(shmbus_sub_open(&b, bus, "sl", "g1", 0), 0);
	CHECK_RC(shmbus_sub_open(&c, bus, "sl", NULL, 0), -EUSERS);
	CHECK(strstr(shmbus_errmsg(), "reader slots") != NULL);
	shmbus_sub_close(a);
	CHECK_RC(shmbus_sub_open(&c, bus, "sl", "g2", 0), -EUSERS); /* one group slot */
	CHECK(strstr(shmbus_errmsg(), "group slots") != NULL);
	CHECK_RC(shmbus_sub_open(&c, bus, "sl", "g1", 0), 0);
	CHECK_RC(shmbus_pub_open(&p, bus, "sl"), 0);
	CHECK_RC(shmbus_pub_open(&q, bus, "sl"), -EUSERS);
	shmbus_pub_close(p);
	CHECK_RC(shmbus_pub_open(&q, bus, "sl"), 0);
	shmbus_pub_close(q);
	shmbus_sub_close(b);
	shmbus_sub_close(c);
	CHECK_RC(shmbus_topic_remove(bus, "sl"), 0);
}

int main(void)
{
	t_private_dir("pubsub");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	sizes();
	reserve_abort_batch();
	big_batch();
	views_and_release();
	joining();
	timeouts();
	slots();
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
