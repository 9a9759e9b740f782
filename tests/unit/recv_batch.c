/* SPDX-License-Identifier: MIT */
/*
 * shmbus_recv_batch(): up to max messages per call, the first waited for, the rest only if
 * already there; in order, each once, with their sequence numbers.
 *  - fan-out, block: a batch holds its space: while it is held a publisher with timeout 0
 *    fills the ring and then gets -EAGAIN, and every view of the batch still reads what
 *    was published; once released (shmbus_release() of the last message) publishing goes
 *    on; a batch crosses lap ends;
 *  - a group: two members batching take disjoint shares that together are every message;
 *    a member's batch holds its space too;
 *  - overwrite: a batch holds one message (copied out), and still nothing is missed;
 *  - max 0 is -EINVAL; an empty topic gives -EAGAIN; releasing an earlier message of the
 *    batch than the last is -EINVAL.
 */
#include "tests/lib/test.h"

static shmbus_bus_t *bus;

#define CAP (1u << 12)
#define LEN 100u

static void make(const char *name, int policy)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = CAP;
	o.max_message = 256;
	o.policy = policy;
	CHECK_RC(shmbus_topic_create(bus, name, &o), 0);
}

static void fill(uint8_t *buf, uint64_t v)
{
	memset(buf, (int)(v & 0xff), LEN);
	memcpy(buf, &v, sizeof(v));
}

static int intact(const shmbus_msg_t *m, uint64_t v)
{
	uint8_t want[LEN];
	fill(want, v);
	return m->len == LEN && !memcmp(m->data, want, LEN);
}

/* Publish values from *next on while the ring has room (timeout 0); how many. */
static int publish_until_full(shmbus_pub_t *pub, uint64_t *next)
{
	uint8_t buf[LEN];
	int n = 0;
	for (;;) {
		fill(buf, *next);
		int rc = shmbus_publish_timeout(pub, buf, LEN, 0, 0);
		if (rc == -EAGAIN)
			return n;
		CHECK_RC(rc, 0);
		(*next)++;
		n++;
	}
}

static void case_fanout(void)
{
	make("fan", SHMBUS_BLOCK);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "fan"), 0);
	CHECK_RC(shmbus_sub_open(&sub, bus, "fan", NULL, 0), 0);
	shmbus_msg_t m[64];
	CHECK_RC(shmbus_recv_batch(sub, m, 0, 0), -EINVAL);
	CHECK_RC(shmbus_recv_batch(sub, m, 8, 0), -EAGAIN);

	uint64_t next = 0, want = 0;
	int laps = 0;
	for (int round = 0; round < 40; round++) {
		/* The ring is full while nothing is held: the batch takes part of it. */
		int n = publish_until_full(pub, &next);
		CHECK(n > 8);
		int got = shmbus_recv_batch(sub, m, 8, 1000);
		CHECK_RC(got, 8);
		for (int i = 0; i < got; i++)
			CHECK(m[i].seq == want + (uint64_t)i && intact(&m[i], want + (uint64_t)i));
		/* Held: nothing more fits, and the batch still reads what was published. */
		CHECK(publish_until_full(pub, &next) == 0);
		for (int i = 0; i < got; i++)
			CHECK(intact(&m[i], want + (uint64_t)i));
		CHECK_RC(shmbus_release(sub, &m[0]), -EINVAL);
		CHECK_RC(shmbus_release(sub, &m[got - 1]), 0);
		want += (uint64_t)got;
		/* Released: room again. */
		CHECK(publish_until_full(pub, &next) > 0);
		/* Drain the rest in big batches (across lap ends). */
		while (want < next) {
			got = shmbus_recv_batch(sub, m, 64, 1000);
			CHECK(got >= 1);
			for (int i = 0; i < got; i++) {
				CHECK(m[i].seq == want && m[i].lost == 0 && intact(&m[i], want));
				want++;
			}
			CHECK_RC(shmbus_release(sub, &m[got - 1]), 0);
		}
		laps = (int)(next * 128 / CAP);
	}
	CHECK(laps >= 10);
	CHECK_RC(shmbus_recv_batch(sub, m, 8, 0), -EAGAIN);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

static void case_group(void)
{
	make("grp", SHMBUS_BLOCK);
	shmbus_pub_t *pub;
	shmbus_sub_t *a, *b;
	CHECK_RC(shmbus_pub_open(&pub, bus, "grp"), 0);
	CHECK_RC(shmbus_sub_open(&a, bus, "grp", "workers", 0), 0);
	CHECK_RC(shmbus_sub_open(&b, bus, "grp", "workers", 0), 0);
	static uint8_t seen[100000];
	uint64_t next = 0, taken = 0;
	shmbus_msg_t m[16];
	for (int round = 0; round < 200; round++) {
		publish_until_full(pub, &next);
		/* a holds a batch: b takes the next ones, the ring stays full. */
		int na = shmbus_recv_batch(a, m, 5, 1000);
		CHECK_RC(na, 5);
		uint64_t first = m[0].seq;
		for (int i = 0; i < na; i++) {
			CHECK(m[i].seq == first + (uint64_t)i && intact(&m[i], m[i].seq));
			CHECK(!seen[m[i].seq]);
			seen[m[i].seq] = 1;
		}
		taken += (uint64_t)na;
		shmbus_msg_t mb;
		CHECK_RC(shmbus_recv(b, &mb, 1000), 0);
		CHECK(mb.seq == first + 5 && !seen[mb.seq] && intact(&mb, mb.seq));
		seen[mb.seq] = 1;
		taken++;
		CHECK_RC(shmbus_release(b, &mb), 0);
		CHECK(publish_until_full(pub, &next) == 0);
		for (int i = 0; i < na; i++)
			CHECK(intact(&m[i], m[i].seq));
		/* Both drain in batches, alternating. */
		for (int who = 0; taken < next; who ^= 1) {
			int got = shmbus_recv_batch(who ? b : a, m, 16, 1000);
			CHECK(got >= 1);
			for (int i = 0; i < got; i++) {
				CHECK(m[i].seq < next && !seen[m[i].seq] &&
				      intact(&m[i], m[i].seq));
				seen[m[i].seq] = 1;
			}
			taken += (uint64_t)got;
			CHECK_RC(shmbus_release(who ? b : a, &m[got - 1]), 0);
		}
	}
	CHECK(next < sizeof(seen));
	for (uint64_t i = 0; i < next; i++)
		CHECK(seen[i]);
	CHECK_RC(shmbus_recv_batch(a, m, 8, 0), -EAGAIN);
	CHECK_RC(shmbus_recv_batch(b, m, 8, 0), -EAGAIN);
	shmbus_sub_close(a);
	shmbus_sub_close(b);
	shmbus_pub_close(pub);
}

static void case_overwrite(void)
{
	make("ovw", SHMBUS_OVERWRITE);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "ovw"), 0);
	CHECK_RC(shmbus_sub_open(&sub, bus, "ovw", NULL, 0), 0);
	uint8_t buf[LEN];
	for (uint64_t v = 0; v < 10; v++) {
		fill(buf, v);
		CHECK_RC(shmbus_publish(pub, buf, LEN, 0), 0);
	}
	shmbus_msg_t m[8];
	for (uint64_t v = 0; v < 10; v++) {
		CHECK_RC(shmbus_recv_batch(sub, m, 8, 1000), 1);
		CHECK(m[0].seq == v && m[0].lost == 0 && intact(&m[0], v));
	}
	CHECK_RC(shmbus_recv_batch(sub, m, 8, 0), -EAGAIN);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

int main(void)
{
	t_private_dir("rbatch");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	case_fanout();
	case_group();
	case_overwrite();
	shmbus_bus_close(bus);
	printf("recv_batch: ok\n");
	return 0;
}
