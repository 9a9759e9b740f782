/* SPDX-License-Identifier: MIT */
/*
 * Members of one new group opened at the same instant, by threads of one process and by
 * several processes, create it once: a message then goes to exactly one member.
 */
#include "tests/lib/proc.h"

#include <poll.h>
#include <pthread.h>

#define NT 6
#define ROUNDS 100

static shmbus_bus_t *bus;
static char topic[32];
static pthread_barrier_t bar;
static shmbus_sub_t *subs[NT];

static void *opener(void *arg)
{
	int i = (int)(intptr_t)arg;
	pthread_barrier_wait(&bar);
	CHECK_RC(shmbus_sub_open(&subs[i], bus, topic, "g", 0), 0);
	return NULL;
}

/* Open NT members in threads; count how many receive one message. */
static int one_round(void)
{
	pthread_t th[NT];
	CHECK(pthread_barrier_init(&bar, NULL, NT) == 0);
	for (int i = 0; i < NT; i++)
		CHECK(pthread_create(&th[i], NULL, opener, (void *)(intptr_t)i) == 0);
	for (int i = 0; i < NT; i++)
		CHECK(pthread_join(th[i], NULL) == 0);
	pthread_barrier_destroy(&bar);
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, topic), 0);
	CHECK_RC(shmbus_publish(pub, "x", 1, 0), 0);
	int got = 0;
	for (int i = 0; i < NT; i++) {
		shmbus_msg_t m;
		int rc = shmbus_recv(subs[i], &m, 0);
		CHECK(rc == 0 || rc == -EAGAIN);
		got += rc == 0;
	}
	for (int i = 0; i < NT; i++)
		shmbus_sub_close(subs[i]);
	shmbus_pub_close(pub);
	return got;
}

/*
 * A member process: join group "g" when told (a byte on go), say so on done, then take
 * what comes until stop is closed. Exits 1 if it got the message, 0 if not, 3 on errors.
 */
static void member(const int go[2], int done, const int stop[2])
{
	char c;
	shmbus_sub_t *s;
	shmbus_msg_t m;
	close(go[1]);
	close(stop[1]);
	if (read(go[0], &c, 1) != 1 || shmbus_sub_open(&s, bus, topic, "g", 0))
		_exit(3);
	if (write(done, "o", 1) != 1)
		_exit(3);
	struct pollfd p = { .fd = stop[0], .events = POLLIN };
	for (;;) {
		int rc = shmbus_recv(s, &m, 10);
		if (rc != -EAGAIN)
			_exit(rc == 0 ? 1 : 3);
		if (poll(&p, 1, 0) == 1) {
			/* Stopped: a last look (for a copy a second group would hold). */
			rc = shmbus_recv(s, &m, 0);
			_exit(rc == 0 ? 1 : rc == -EAGAIN ? 0 : 3);
		}
	}
}

/* Wait until every group of the topic has handed out all that was published. */
static void wait_handed_out(void)
{
	uint64_t end = t_deadline(T_WAIT_MS);
	shmbus_group_info_t gi[4];
	for (;;) {
		int n = shmbus_topic_groups(bus, topic, gi, 4);
		CHECK(n >= 1 && n <= 4);
		int left = 0;
		for (int i = 0; i < n; i++)
			left += gi[i].lag_msgs != 0;
		if (!left)
			return;
		if (t_now_ns() > end) {
			fprintf(stderr, "%s: the message not handed out after %d ms\n", topic,
				T_WAIT_MS);
			exit(1);
		}
		usleep(1000); /* poll interval */
	}
}

int main(void)
{
	t_private_dir("grpcreate");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	for (int round = 0; round < ROUNDS; round++) {
		snprintf(topic, sizeof(topic), "t%d", round);
		CHECK_RC(shmbus_topic_create(bus, topic, NULL), 0);
		int got = one_round();
		if (got != 1) {
			fprintf(stderr, "threads, round %d: the message went to %d members\n",
				round, got);
			return 1;
		}
	}
	/* Processes: each opens a member at once and reports whether it got the message. */
	for (int round = 0; round < ROUNDS / 4; round++) {
		snprintf(topic, sizeof(topic), "p%d", round);
		CHECK_RC(shmbus_topic_create(bus, topic, NULL), 0);
		int go[2], done[2], stop[2];
		CHECK(pipe(go) == 0 && pipe(done) == 0 && pipe(stop) == 0);
		pid_t kids[4];
		for (int k = 0; k < 4; k++) {
			kids[k] = t_fork();
			if (kids[k] == 0)
				member(go, done[1], stop);
		}
		close(go[0]);
		close(stop[0]);
		CHECK(write(go[1], "gggg", 4) == 4);
		for (int k = 0; k < 4; k++)
			t_wait_byte(done[0], "a member's byte: joined");
		shmbus_pub_t *pub;
		CHECK_RC(shmbus_pub_open(&pub, bus, topic), 0);
		CHECK_RC(shmbus_publish(pub, "x", 1, 0), 0);
		/* Once every group has handed the message out, the members may stop. */
		wait_handed_out();
		close(stop[1]);
		int got = 0;
		for (int k = 0; k < 4; k++) {
			int st = t_reap(kids[k], T_WAIT_MS, "a member");
			CHECK(WIFEXITED(st) && WEXITSTATUS(st) <= 1);
			got += WEXITSTATUS(st);
		}
		shmbus_pub_close(pub);
		close(go[1]);
		close(done[0]);
		close(done[1]);
		if (got != 1) {
			fprintf(stderr, "processes, round %d: the message went to %d members\n",
				round, got);
			return 1;
		}
	}
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
