/* SPDX-License-Identifier: MIT */
/*
 * What bus/intree.h gives the in-tree programs instead of casting a handle or reading a
 * topic file by offset (the bridge):
 *  - the generation of a subscriber's topic equals the one read from the file, and a topic
 *    removed and created again has another; a topic that does not exist, or a file that is
 *    not a topic, has 0;
 *  - the creation time, the tail's sequence and a group cursor's sequence (unknown for a
 *    group joined "from earliest" after the first lap, unknown for a fan-out reader);
 *  - the two-step sleep for an outside waiter: prepare says "already there" without
 *    arming the wake word when something is ready; armed (however often it re-checks),
 *    the next publish changes the word (so a FUTEX_WAIT on it returns) with one FUTEX_WAKE,
 *    and clears the arming: the publishes after it make no syscall until a reader arms
 *    again (the topic's wakeups counter stays put).
 */
#include <pthread.h>

#include "bus/intree.h"
#include "ring/clock.h"
#include "ring/wake.h"
#include "tests/lib/test.h"

static shmbus_bus_t *bus;

/* The armed bits of the topic's wake word (ring/wake.h). */
static uint32_t armed(const char *topic)
{
	struct shmbus_seg seg;
	CHECK_RC(shmbus_topic_open_seg(bus, topic, &seg), 0);
	uint32_t n = __atomic_load_n(&seg.rt->wake, __ATOMIC_SEQ_CST) & SHMBUS_WAKE_ARMED;
	shmbus_seg_close(&seg);
	return n;
}

static void case_generation(void)
{
	CHECK_RC(shmbus_topic_create(bus, "gen", NULL), 0);
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "gen", NULL, 0), 0);
	uint64_t g = shmbus_sub_generation(sub);
	CHECK(g != 0);
	CHECK(shmbus_topic_generation(bus, "gen") == g);
	uint64_t now = shmbus_wall_ns(), made = shmbus_sub_created_ns(sub);
	CHECK(made <= now && now - made < 600 * 1000000000ull);
	CHECK_RC(shmbus_topic_remove(bus, "gen"), 0);
	CHECK(shmbus_topic_generation(bus, "gen") == 0);
	CHECK_RC(shmbus_topic_create(bus, "gen", NULL), 0);
	uint64_t g2 = shmbus_topic_generation(bus, "gen");
	CHECK(g2 != 0 && g2 != g);
	CHECK(shmbus_sub_generation(sub) == g); /* still the file it mapped */
	shmbus_sub_close(sub);
	CHECK(shmbus_topic_generation(bus, "nosuch") == 0);
	/* Not a topic under a topic's name: no generation either. */
	char path[4096];
	snprintf(path, sizeof(path), "%s/junk.topic", shmbus_bus_path(bus));
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	for (int i = 0; i < 4096; i++)
		fputc(0x5a, f);
	CHECK(fclose(f) == 0);
	CHECK(shmbus_topic_generation(bus, "junk") == 0);
}

static void case_sequences(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 4096;
	o.max_message = 64;
	o.policy = SHMBUS_OVERWRITE;
	CHECK_RC(shmbus_topic_create(bus, "seq", &o), 0);
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "seq"), 0);
	shmbus_sub_t *fan, *dur;
	CHECK_RC(shmbus_sub_open(&fan, bus, "seq", NULL, 0), 0);
	CHECK_RC(shmbus_sub_open_durable(&dur, bus, "seq", "d", SHMBUS_SUB_EARLIEST), 0);
	uint64_t seq = 99;
	CHECK(shmbus_sub_tail_seq(fan) == 0);
	CHECK(shmbus_sub_cursor_seq(fan, &seq) == 0 && seq == 99); /* not in a group */
	CHECK(shmbus_sub_cursor_seq(dur, &seq) == 1 && seq == 0);
	char buf[8] = "abcdefg";
	for (int i = 0; i < 5; i++)
		CHECK_RC(shmbus_publish(pub, buf, sizeof(buf), 0), 0);
	CHECK(shmbus_sub_tail_seq(dur) == 5);
	shmbus_msg_t m;
	for (int i = 0; i < 3; i++)
		CHECK_RC(shmbus_recv(dur, &m, 0), 0);
	CHECK(shmbus_sub_cursor_seq(dur, &seq) == 1 && seq == 0); /* reading moves nothing */
	CHECK_RC(shmbus_sub_commit(dur, shmbus_msg_end(&m), m.seq + 1), 1);
	CHECK(shmbus_sub_cursor_seq(dur, &seq) == 1 && seq == 3);
	/* A group created "from earliest" after the first lap starts at a lap start whose
	 * sequence nobody knows. */
	for (int i = 0; i < 200; i++)
		CHECK_RC(shmbus_publish(pub, buf, sizeof(buf), 0), 0);
	shmbus_sub_t *late;
	CHECK_RC(shmbus_sub_open_durable(&late, bus, "seq", "late", SHMBUS_SUB_EARLIEST), 0);
	CHECK(shmbus_sub_cursor_seq(late, &seq) == 0);
	CHECK(shmbus_sub_tail_seq(late) == 205);
	shmbus_sub_close(late);
	shmbus_sub_close(dur);
	shmbus_sub_close(fan);
	shmbus_pub_close(pub);
}

struct waiter {
	uint32_t *word;
	uint32_t expected;
	int rc;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	/* Generous: the publish below wakes it at once, a missed wake fails the test. */
	w->rc = shmbus_futex_wait(w->word, w->expected, 30 * 1000000000ll);
	return NULL;
}

static void case_sleep(void)
{
	CHECK_RC(shmbus_topic_create(bus, "zz", NULL), 0);
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "zz"), 0);
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "zz", NULL, 0), 0);
	uint32_t *word = NULL, expected = 0;

	/* Something there: nothing to wait for, nothing counted. */
	CHECK_RC(shmbus_publish(pub, "x", 1, 0), 0);
	CHECK_RC(shmbus_sub_sleep_prepare(sub, &word, &expected), 0);
	CHECK(armed("zz") == 0);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(sub, &m, 0), 0);

	/* Nothing there: armed, however often it re-checks. */
	CHECK_RC(shmbus_sub_sleep_prepare(sub, &word, &expected), 1);
	CHECK(word != NULL);
	CHECK_RC(shmbus_sub_sleep_prepare(sub, &word, &expected), 1);
	CHECK(armed("zz") == SHMBUS_WAKE_NOW);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "zz", &st), 0);
	uint64_t wakeups = st.wakeups;
	struct waiter w = { word, expected, -1 };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, wait_thread, &w) == 0);
	/* The publisher sees the arming and changes the word: the wait returns whether it
	 * had started or not. */
	CHECK_RC(shmbus_publish(pub, "y", 1, 0), 0);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK_RC(w.rc, 0);
	CHECK(__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected);
	CHECK(armed("zz") == 0);
	/* One wake for the arming; the next publishes find nobody armed: no syscall. */
	CHECK_RC(shmbus_publish(pub, "z", 1, 0), 0);
	CHECK_RC(shmbus_publish(pub, "z", 1, 0), 0);
	CHECK_RC(shmbus_topic_stats(bus, "zz", &st), 0);
	CHECK(st.wakeups == wakeups + 1);
	CHECK_RC(shmbus_recv(sub, &m, 0), 0);
	CHECK(m.len == 1 && ((const char *)m.data)[0] == 'y');
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

int main(void)
{
	t_private_dir("intree");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	case_generation();
	case_sequences();
	case_sleep();
	shmbus_bus_close(bus);
	printf("intree: ok\n");
	return 0;
}
