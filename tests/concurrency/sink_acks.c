/* SPDX-License-Identifier: MIT */
/*
 * An acknowledging sink acked from another thread while its receive runs (include/shmbus.h
 * allows it), while topics its pattern matches are created and removed: the sink's
 * readers are joined (its table reallocated) and closed under the acks. Under ASan and
 * TSan: no use after free, no race. Every message is received once and acked once (the
 * acker acks each again and again until the next comes: -ESTALE after the first).
 */
#include <pthread.h>

#include "tests/lib/test.h"

#define ROUNDS 8
#define TOPICS 25 /* round r makes (r + 1) * TOPICS: the sink's table grows every round */

static shmbus_bus_t *bus;
static shmbus_sink_t *sink;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t taken = PTHREAD_COND_INITIALIZER;
static shmbus_msg_t last;
static int have, stop;
static unsigned long received, acked, stale;

static void *receiver(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		shmbus_msg_t m;
		int rc = shmbus_sink_recv(sink, &m, 5);
		if (rc == -EAGAIN)
			continue;
		CHECK_RC(rc, 0);
		/* Handed over once the acker acked the last one (the next receive then runs
		 * while the acker acks this one again and again: -ESTALE after the first). */
		pthread_mutex_lock(&mu);
		while (have && !__atomic_load_n(&stop, __ATOMIC_ACQUIRE))
			pthread_cond_wait(&taken, &mu);
		last = m;
		have = 1;
		received++;
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

static void *acker(void *arg)
{
	(void)arg;
	int fresh = 0;
	shmbus_msg_t m;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		if (!fresh) {
			pthread_mutex_lock(&mu);
			if (have) {
				m = last;
				have = 0;
				fresh = 1;
				pthread_cond_signal(&taken);
			}
			pthread_mutex_unlock(&mu);
			if (!fresh)
				continue;
		}
		int rc = shmbus_sink_ack(sink, &m);
		CHECK(rc == 0 || rc == -ESTALE);
		if (rc == 0)
			__atomic_fetch_add(&acked, 1, __ATOMIC_RELAXED);
		else
			__atomic_fetch_add(&stale, 1, __ATOMIC_RELAXED);
		/* Acked: hammer it with stale acks until the next comes. */
		pthread_mutex_lock(&mu);
		if (have) {
			m = last;
			have = 0;
			pthread_cond_signal(&taken);
		}
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

int main(void)
{
	t_private_dir("sinkacks");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	CHECK_RC(shmbus_sink_open(&sink, bus, "g", SHMBUS_SUB_ACK), 0);
	CHECK_RC(shmbus_sink_add(sink, "r.>"), 0);
	pthread_t a, b;
	CHECK(pthread_create(&a, NULL, receiver, NULL) == 0);
	CHECK(pthread_create(&b, NULL, acker, NULL) == 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 4096;
	unsigned long published = 0;
	for (int round = 0; round < ROUNDS; round++) {
		char name[64];
		int n = (round + 1) * TOPICS;
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "r.t%d", i);
			CHECK_RC(shmbus_topic_create(bus, name, &o), 0);
			shmbus_pub_t *p;
			CHECK_RC(shmbus_pub_open(&p, bus, name), 0);
			CHECK_RC(shmbus_publish(p, "x", 1, 0), 0);
			published++;
			shmbus_pub_close(p);
		}
		/* Each message received and acked (or its topic left) before the removal. */
		uint64_t deadline = t_deadline(T_WAIT_MS);
		while (__atomic_load_n(&acked, __ATOMIC_RELAXED) < published) {
			CHECK(t_ms_left(deadline) > 0);
			sched_yield();
		}
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "r.t%d", i);
			CHECK_RC(shmbus_topic_remove(bus, name), 0);
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&mu);
	pthread_cond_broadcast(&taken);
	pthread_mutex_unlock(&mu);
	CHECK(pthread_join(a, NULL) == 0);
	CHECK(pthread_join(b, NULL) == 0);
	printf("published %lu, received %lu, acked %lu, stale %lu\n", published, received, acked,
	       stale);
	CHECK(received == published);
	CHECK(acked == published);
	shmbus_sink_close(sink);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
