/* SPDX-License-Identifier: MIT */
/*
 * Random words written into a live topic's log while a publisher and readers run (issue
 * 14): threads of one process; meant for the ASan+UBSan build too. For each policy, a
 * publisher thread publishes (timeout 100 ms), a fan-out subscriber and two members of a
 * group receive (timeout 100 ms), and a scribbler thread writes random 8-byte words at
 * random places of the log (and now and then the tail's low bits, a record's length or
 * commit word). Nothing may crash, read outside the mapping or hang: every receive is a
 * message whose length is at most max_message and whose bytes can all be read, or
 * -EAGAIN, or -EBADMSG; every publish 0, -EAGAIN or -EBADMSG; and once the scribbler
 * stops, the topic works again: a fresh subscriber gets a fresh message within the
 * documented bounds (docs/algorithm.md, "Damage").
 */
#include <pthread.h>
#include <stdatomic.h>

#include "bus/intree.h"
#include "ring/clock.h"
#include "ring/record.h"
#include "tests/lib/test.h"

#define MAXMSG 512u
#define RUN_NS (1500ull * 1000000ull)

static shmbus_bus_t *bus;
static atomic_int stop, scribbling;
static const char *topic;
static _Atomic uint64_t n_msgs, n_bad, n_again, n_pub, n_pub_fail;

static void *publisher(void *arg)
{
	(void)arg;
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, topic), 0);
	uint8_t buf[MAXMSG];
	uint64_t rng = t_seed() ^ 0x9e3779b97f4a7c15ull;
	while (!atomic_load(&stop)) {
		uint32_t len = (uint32_t)(t_rand(&rng) % MAXMSG);
		memset(buf, (int)len, len);
		int rc = shmbus_publish_timeout(pub, buf, len, len, 100);
		if (rc == 0)
			atomic_fetch_add(&n_pub, 1);
		else if (rc == -EAGAIN || rc == -EBADMSG)
			atomic_fetch_add(&n_pub_fail, 1);
		else
			CHECK_RC(rc, 0);
	}
	shmbus_pub_close(pub);
	return NULL;
}

static void *reader(void *arg)
{
	const char *group = arg;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, topic, group, 0), 0);
	while (!atomic_load(&stop)) {
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, 100);
		if (rc == 0) {
			CHECK(m.len <= MAXMSG);
			/* Every byte readable (ASan would catch a read outside the mapping of
			 * the copy buffer; a bad pointer into nowhere would fault). */
			volatile uint8_t sum = 0;
			for (uint32_t i = 0; i < m.len; i++)
				sum += ((const uint8_t *)m.data)[i];
			(void)sum;
			atomic_fetch_add(&n_msgs, 1);
		} else if (rc == -EBADMSG) {
			atomic_fetch_add(&n_bad, 1);
		} else if (rc == -EAGAIN) {
			atomic_fetch_add(&n_again, 1);
		} else {
			CHECK_RC(rc, 0);
		}
	}
	shmbus_sub_close(sub);
	return NULL;
}

static void *scribbler(void *arg)
{
	struct shmbus_seg *seg = arg;
	uint64_t rng = t_seed() * 7 + 1;
	while (atomic_load(&scribbling)) {
		uint64_t r = t_rand(&rng);
		uint64_t off = (t_rand(&rng) % seg->cap) & ~7ull;
		switch (r % 16) {
		case 0: /* the tail off a boundary */
			__atomic_fetch_add(&seg->hdr->tail[0], 8 * (1 + r % 3), __ATOMIC_SEQ_CST);
			break;
		case 1: /* a commit word of a record boundary */
			__atomic_store_n((uint64_t *)(seg->log + (off & ~31ull)), t_rand(&rng),
					 __ATOMIC_RELAXED);
			break;
		case 2: /* a length word */
			__atomic_store_n((uint32_t *)(seg->log + (off & ~31ull) + 8),
					 (uint32_t)t_rand(&rng), __ATOMIC_RELAXED);
			break;
		default:
			__atomic_store_n((uint64_t *)(seg->log + off), t_rand(&rng),
					 __ATOMIC_RELAXED);
		}
		for (volatile int i = 0; i < 2000; i++)
			;
	}
	return NULL;
}

static void run(const char *name, int policy)
{
	topic = name;
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 14;
	o.max_message = MAXMSG;
	o.policy = policy;
	CHECK_RC(shmbus_topic_create(bus, name, &o), 0);
	struct shmbus_seg seg;
	CHECK_RC(shmbus_topic_open_seg(bus, name, &seg), 0);
	atomic_store(&stop, 0);
	atomic_store(&scribbling, 1);
	n_msgs = n_bad = n_again = n_pub = n_pub_fail = 0;
	pthread_t p, r[3], sc;
	CHECK(pthread_create(&r[0], NULL, reader, NULL) == 0);
	CHECK(pthread_create(&r[1], NULL, reader, "workers") == 0);
	CHECK(pthread_create(&r[2], NULL, reader, "workers") == 0);
	CHECK(pthread_create(&p, NULL, publisher, NULL) == 0);
	CHECK(pthread_create(&sc, NULL, scribbler, &seg) == 0);
	uint64_t t0 = shmbus_now_ns();
	while (shmbus_now_ns() - t0 < RUN_NS)
		usleep(10000); /* the length of the run is what is tested: let it pass */
	atomic_store(&scribbling, 0);
	CHECK(pthread_join(sc, NULL) == 0);
	atomic_store(&stop, 1);
	CHECK(pthread_join(p, NULL) == 0);
	for (int i = 0; i < 3; i++)
		CHECK(pthread_join(r[i], NULL) == 0);
	printf("%s: %llu published (%llu refused), %llu received, %llu -EBADMSG, %llu -EAGAIN\n",
	       name, (unsigned long long)n_pub, (unsigned long long)n_pub_fail,
	       (unsigned long long)n_msgs, (unsigned long long)n_bad, (unsigned long long)n_again);
	CHECK(n_pub > 0 && n_msgs > 0);
	/* Damage over: a fresh subscriber and a fresh publish meet again. */
	shmbus_sub_t *sub;
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_sub_open(&sub, bus, name, NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, name), 0);
	CHECK_RC(shmbus_publish_timeout(pub, "after", 5, 7, T_WAIT_MS), 0);
	shmbus_msg_t m;
	for (;;) {
		int rc = shmbus_recv(sub, &m, T_WAIT_MS);
		if (rc == -EBADMSG)
			continue;
		CHECK_RC(rc, 0);
		if (m.type == 7 && m.len == 5 && !memcmp(m.data, "after", 5))
			break;
	}
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	shmbus_seg_close(&seg);
}

int main(void)
{
	t_private_dir("scribble");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	run("scr-block", SHMBUS_BLOCK);
	run("scr-overwrite", SHMBUS_OVERWRITE);
	shmbus_bus_close(bus);
	printf("scribble: ok\n");
	return 0;
}
