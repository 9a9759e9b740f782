/* SPDX-License-Identifier: MIT */
/*
 * Acknowledging group members (SHMBUS_SUB_ACK, ring/ack.h), in one process:
 *  - a message received is pending until acked; an ack of it again is -ESTALE;
 *  - a nack hands it back: it comes again first, deliveries 2, 3...; after max_deliver
 *    deliveries it goes to the dead-letter topic (header and payload right, a
 *    dead_letter count) and never comes again;
 *  - a message not acked within ack_wait_ms goes to another member; the late ack is
 *    -ESTALE; a member that closes hands its pending messages back (deliveries 2);
 *  - block mode never overwrites a pending message (the publisher times out with
 *    -EAGAIN until it is acked), though the group's cursor is past it;
 *  - a group's pending limit makes a receive wait (-EAGAIN after its timeout) until an
 *    ack makes room;
 *  - shmbus_topic_groups reports pending, redelivered, dead-lettered, the options;
 *  - an ack of an earlier delivery of a message that came back to the same member is
 *    stale; a message nacked a last time is dead-lettered when its member closes, with no
 *    other member to look; a message as large as its topic allows fits the dead-letter
 *    topic the member makes, and one that cannot fit (a smaller one made by someone
 *    else) is counted lost, not tried forever.
 */
#include "tests/lib/test.h"

static shmbus_bus_t *bus;

static void publish(shmbus_pub_t *p, uint32_t id)
{
	char b[64];
	snprintf(b, sizeof(b), "m%u", id);
	CHECK_RC(shmbus_publish_timeout(p, b, strlen(b) + 1, id, 1000), 0);
}

static void recv_is(shmbus_sub_t *s, uint32_t id, uint32_t deliveries, shmbus_msg_t *m)
{
	int rc = shmbus_recv(s, m, 5000);
	if (rc)
		FAIL("waiting for m%u (deliveries %u): %d", id, deliveries, rc);
	char want[64];
	snprintf(want, sizeof(want), "m%u", id);
	if (m->type != id || strcmp(m->data, want) || m->deliveries != deliveries)
		FAIL("got %s (type %u, deliveries %u), wanted %s (deliveries %u)",
		     (const char *)m->data, m->type, m->deliveries, want, deliveries);
}

static shmbus_group_info_t group(const char *topic)
{
	shmbus_group_info_t gi[4];
	CHECK(shmbus_topic_groups(bus, topic, gi, 4) == 1);
	return gi[0];
}

static void semantics(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	CHECK_RC(shmbus_topic_create(bus, "jobs", &o), 0);
	shmbus_group_opts_t go;
	shmbus_group_opts_init(&go);
	CHECK(go.ack_wait_ms == 30000 && go.max_deliver == 5 && go.dead_letter == NULL);
	go.ack_wait_ms = 300;
	go.max_deliver = 3;
	shmbus_sub_t *a, *b;
	CHECK_RC(shmbus_sub_open_group(&a, bus, "jobs", "w", SHMBUS_SUB_ACK, &go), 0);
	/* Options are the creator's: a later member's are ignored. */
	go.max_deliver = 9;
	CHECK_RC(shmbus_sub_open_group(&b, bus, "jobs", "w", SHMBUS_SUB_ACK, &go), 0);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "jobs"), 0);
	shmbus_msg_t m, m0;

	/* ack, and ack again */
	publish(p, 0);
	recv_is(a, 0, 1, &m0);
	CHECK(group("jobs").pending == 1);
	CHECK_RC(shmbus_ack(a, &m0), 0);
	CHECK_RC(shmbus_ack(a, &m0), -ESTALE);
	CHECK_RC(shmbus_nack(a, &m0, 0), -ESTALE);
	/* Another member's message is not ours to ack. */
	publish(p, 1);
	recv_is(a, 1, 1, &m);
	CHECK_RC(shmbus_ack(b, &m), -ESTALE);

	/* nack until the dead-letter topic */
	CHECK_RC(shmbus_nack(a, &m, 0), 0);
	recv_is(a, 1, 2, &m);
	CHECK_RC(shmbus_nack(a, &m, 0), 0);
	recv_is(b, 1, 3, &m); /* any member */
	CHECK_RC(shmbus_nack(b, &m, 0), 0);
	publish(p, 2);
	/* Delivered 3 times (max_deliver): not again; m2 comes next. */
	recv_is(a, 2, 1, &m);
	CHECK_RC(shmbus_ack(a, &m), 0);
	shmbus_group_info_t gi = group("jobs");
	CHECK(gi.dead_lettered == 1 && gi.redelivered == 2 && gi.pending == 0);
	CHECK(gi.max_deliver == 3 && gi.ack_wait_ms == 300 && !strcmp(gi.dead_letter, "jobs.dead"));
	shmbus_sub_t *dl;
	CHECK_RC(shmbus_sub_open(&dl, bus, "jobs.dead", NULL, SHMBUS_SUB_EARLIEST), 0);
	CHECK_RC(shmbus_recv(dl, &m, 1000), 0);
	const shmbus_dead_letter_t *h = m.data;
	CHECK(m.len == sizeof(*h) + 3 && m.type == 1);
	CHECK(!strcmp(h->topic, "jobs") && !strcmp(h->group, "w") && h->seq == 1 &&
	      h->deliveries == 3 && h->reason == SHMBUS_DEAD_NACK);
	CHECK(!strcmp((const char *)(h + 1), "m1"));
	CHECK_RC(shmbus_recv(dl, &m, 0), -EAGAIN);
	shmbus_sub_close(dl);

	/* a nack with a delay: not before it */
	publish(p, 3);
	recv_is(a, 3, 1, &m);
	uint64_t t0 = t_now_ns();
	CHECK_RC(shmbus_nack(a, &m, 150), 0);
	recv_is(a, 3, 2, &m);
	CHECK(t_now_ns() - t0 >= 150000000ull);
	CHECK_RC(shmbus_ack(a, &m), 0);

	/* ack_wait_ms passes: another member gets it; the late ack is stale */
	publish(p, 4);
	recv_is(a, 4, 1, &m0);
	recv_is(b, 4, 2, &m); /* waits out the 300 ms */
	CHECK_RC(shmbus_ack(a, &m0), -ESTALE);
	CHECK_RC(shmbus_ack(b, &m), 0);

	/* a member that closes hands its pending messages back */
	publish(p, 5);
	publish(p, 6);
	recv_is(a, 5, 1, &m);
	recv_is(a, 6, 1, &m);
	CHECK(group("jobs").pending == 2);
	shmbus_sub_close(a);
	recv_is(b, 5, 2, &m);
	CHECK_RC(shmbus_ack(b, &m), 0);
	recv_is(b, 6, 2, &m);
	CHECK_RC(shmbus_ack(b, &m), 0);
	CHECK(group("jobs").pending == 0);
	shmbus_sub_close(b);
	shmbus_pub_close(p);
}

static void block_and_limits(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 4096;
	o.max_message = 1000;
	CHECK_RC(shmbus_topic_create(bus, "small", &o), 0);
	shmbus_group_opts_t go;
	shmbus_group_opts_init(&go);
	go.max_pending = 6;
	shmbus_sub_t *a;
	CHECK_RC(shmbus_sub_open_group(&a, bus, "small", "w", SHMBUS_SUB_ACK, &go), 0);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "small"), 0);
	char buf[480];
	memset(buf, 'x', sizeof(buf));
	/* 512-byte records: 8 fill the ring. Take 4, ack none. */
	shmbus_msg_t m[8];
	for (int i = 0; i < 4; i++)
		CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), (uint32_t)i, 0), 0);
	for (int i = 0; i < 4; i++) {
		CHECK_RC(shmbus_recv(a, &m[i], 1000), 0);
		CHECK(m[i].type == (uint32_t)i);
	}
	CHECK_RC(shmbus_release(a, &m[3]), 0);
	/* The cursor is past all four, but they are pending: 4 more fit, not 5. */
	for (int i = 4; i < 8; i++)
		CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), (uint32_t)i, 0), 0);
	CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), 8, 20), -EAGAIN);
	CHECK_RC(shmbus_ack(a, &m[0]), 0);
	CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), 8, 1000), 0);
	/* The group's limit (6): two more, then a receive waits. */
	CHECK_RC(shmbus_recv(a, &m[4], 1000), 0);
	CHECK_RC(shmbus_recv(a, &m[5], 1000), 0);
	CHECK(m[4].type == 4 && m[5].type == 5);
	CHECK(group("small").pending == 5);
	CHECK_RC(shmbus_recv(a, &m[6], 0), 0); /* the sixth */
	CHECK_RC(shmbus_recv(a, &m[7], 50), -EAGAIN);
	CHECK_RC(shmbus_ack(a, &m[1]), 0);
	CHECK_RC(shmbus_recv(a, &m[7], 1000), 0);
	CHECK(m[7].type == 7);
	shmbus_sub_close(a);
	shmbus_pub_close(p);
}

static void corners(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 22;
	o.max_message = 300000;
	CHECK_RC(shmbus_topic_create(bus, "big", &o), 0);
	shmbus_group_opts_t go;
	shmbus_group_opts_init(&go);
	go.max_deliver = 2;
	shmbus_sub_t *a;
	CHECK_RC(shmbus_sub_open_group(&a, bus, "big", "w", SHMBUS_SUB_ACK, &go), 0);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "big"), 0);
	/* The same member gets it back: the first delivery's ack is stale. */
	shmbus_msg_t m1, m2;
	publish(p, 1);
	recv_is(a, 1, 1, &m1);
	CHECK_RC(shmbus_nack(a, &m1, 0), 0);
	recv_is(a, 1, 2, &m2);
	CHECK_RC(shmbus_ack(a, &m1), -ESTALE);
	CHECK_RC(shmbus_nack(a, &m1, 0), -ESTALE);
	/* Nacked a last time (2 deliveries), then the only member closes: dead-lettered. */
	CHECK_RC(shmbus_nack(a, &m2, 0), 0);
	/* And a message as large as the topic allows, nacked twice too. */
	char *big = malloc(300000);
	CHECK(big);
	memset(big, 'b', 300000);
	CHECK_RC(shmbus_publish_timeout(p, big, 300000, 2, 1000), 0);
	CHECK_RC(shmbus_recv(a, &m1, 1000), 0);
	CHECK(m1.len == 300000 && m1.deliveries == 1);
	CHECK_RC(shmbus_nack(a, &m1, 0), 0);
	CHECK_RC(shmbus_recv(a, &m1, 1000), 0);
	CHECK(m1.len == 300000 && m1.deliveries == 2);
	CHECK_RC(shmbus_nack(a, &m1, 0), 0);
	shmbus_sub_close(a);
	shmbus_group_info_t gi = group("big");
	CHECK(gi.dead_lettered == 2 && gi.pending == 0 && gi.lost == 0);
	shmbus_sub_t *dl;
	CHECK_RC(shmbus_sub_open(&dl, bus, "big.dead", NULL, SHMBUS_SUB_EARLIEST), 0);
	shmbus_msg_t d;
	CHECK_RC(shmbus_recv(dl, &d, 1000), 0);
	CHECK(((const shmbus_dead_letter_t *)d.data)->seq == 0 && d.type == 1);
	CHECK_RC(shmbus_recv(dl, &d, 1000), 0);
	const shmbus_dead_letter_t *h = d.data;
	CHECK(d.len == sizeof(*h) + 300000 && h->seq == 1 && h->deliveries == 2 && d.type == 2);
	CHECK(((const char *)(h + 1))[299999] == 'b');
	shmbus_sub_close(dl);

	/* A dead-letter topic too small for the message: lost, counted, once. */
	shmbus_topic_opts_t so;
	shmbus_topic_opts_init(&so);
	so.capacity = 1 << 16;
	CHECK_RC(shmbus_topic_create(bus, "small.dead", &so), 0);
	go.dead_letter = "small.dead";
	go.max_deliver = 1;
	CHECK_RC(shmbus_sub_open_group(&a, bus, "big", "v", SHMBUS_SUB_ACK | SHMBUS_SUB_EARLIEST,
				       &go),
		 0);
	CHECK_RC(shmbus_recv(a, &m1, 1000), 0); /* message 1 */
	CHECK_RC(shmbus_ack(a, &m1), 0);
	CHECK_RC(shmbus_recv(a, &m1, 1000), 0); /* the big one */
	CHECK(m1.len == 300000);
	CHECK_RC(shmbus_nack(a, &m1, 0), 0);
	CHECK_RC(shmbus_recv(a, &m1, 50), -EAGAIN);
	shmbus_group_info_t gv[2];
	CHECK(shmbus_topic_groups(bus, "big", gv, 2) == 2);
	CHECK(!strcmp(gv[1].name, "v") && gv[1].lost == 1 && gv[1].pending == 0 &&
	      gv[1].dead_lettered == 0);
	shmbus_sub_close(a);
	shmbus_pub_close(p);
	free(big);
}

int main(void)
{
	t_private_dir("acks");
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, "t"), 0);
	semantics();
	block_and_limits();
	corners();
	shmbus_bus_close(bus);
	printf("acks: ack, nack, dead letters, timeouts, close, block mode, limits\n");
	return 0;
}
