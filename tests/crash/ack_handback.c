/* SPDX-License-Identifier: MIT */
/*
 * Acknowledging members (docs/acks.md) in separate processes:
 *  A. expiry: member process A takes a message and does not ack it; after ack_wait_ms
 *     (300 ms) member process B gets it, deliveries 2; A's late ack is -ESTALE, B's is 0;
 *     the group has nothing pending, redelivered 1.
 *  B. poison: two member processes nack every delivery (delay 0); the message reaches the
 *     dead-letter topic after exactly max_deliver (4) deliveries, 1..4 each seen once
 *     across both processes, with its header right (topic, group, seq, deliveries, reason
 *     nack, payload and type kept); the group: dead_lettered 1, redelivered 3.
 */
#include <fcntl.h>

#include "tests/lib/proc.h"

static shmbus_bus_t *bus;
static int ctl[2]; /* parent -> child: a byte to go on (or stop) */

static shmbus_sub_t *join(const char *topic, const char *group, uint32_t wait_ms,
			  uint32_t max_deliver)
{
	shmbus_bus_t *b;
	shmbus_sub_t *s;
	shmbus_group_opts_t go;
	shmbus_group_opts_init(&go);
	go.ack_wait_ms = wait_ms;
	go.max_deliver = max_deliver;
	if (shmbus_bus_open(&b, NULL) < 0 ||
	    shmbus_sub_open_group(&s, b, topic, group, SHMBUS_SUB_ACK, &go) < 0)
		_exit(2);
	return s;
}

/* Case A's members: take one message, say "deliveries" as one byte, then on a byte from
 * the parent ack it and say 'E' (-ESTALE) or '0'. */
static void expiry_member(void *arg, int fd)
{
	(void)arg;
	shmbus_sub_t *s = join("hb", "g", 300, 5);
	CHECK(write(fd, "r", 1) == 1);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(s, &m, T_WAIT_MS), 0);
	char d = (char)('0' + m.deliveries);
	CHECK(m.len == 6 && !memcmp(m.data, "hello", 6));
	CHECK(write(fd, &d, 1) == 1);
	char c;
	CHECK(read(ctl[0], &c, 1) == 1);
	int rc = shmbus_ack(s, &m);
	char r = rc == 0 ? '0' : rc == -ESTALE ? 'E' : '?';
	CHECK(write(fd, &r, 1) == 1);
	shmbus_sub_close(s);
}

static void case_expiry(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 64 * 1024;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, "hb", &o), 0);
	CHECK(pipe(ctl) == 0);
	int fa, fb;
	pid_t a = t_child(expiry_member, NULL, &fa);
	CHECK(t_wait_byte(fa, "member A joining") == 'r');
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "hb"), 0);
	uint64_t t_pub = t_now_ns();
	CHECK_RC(shmbus_publish(p, "hello", 6, 3), 0);
	CHECK(t_wait_byte(fa, "member A's delivery") == '1');
	/* B joins once A holds it: only a redelivery can reach B. */
	pid_t b = t_child(expiry_member, NULL, &fb);
	CHECK(t_wait_byte(fb, "member B joining") == 'r');
	char d;
	t_read_within(fb, &d, 1, T_WAIT_MS, "member B's delivery (after ack_wait_ms)");
	double ms = t_ms_since(t_pub);
	printf("A: expired, B got it %.1f ms after the publish, deliveries %c\n", ms, d);
	CHECK(d == '2');
	CHECK(ms >= 300.0);
	CHECK(write(ctl[1], "aa", 2) == 2); /* both ack now; A first */
	char ra = t_wait_byte(fa, "A's late ack");
	char rb = t_wait_byte(fb, "B's ack");
	printf("A: late ack %c, B's ack %c\n", ra, rb);
	CHECK(ra == 'E' && rb == '0');
	CHECK(t_exited(t_reap(a, T_WAIT_MS, "member A"), 0));
	CHECK(t_exited(t_reap(b, T_WAIT_MS, "member B"), 0));
	shmbus_group_info_t gi;
	CHECK(shmbus_topic_groups(bus, "hb", &gi, 1) == 1);
	CHECK(gi.pending == 0 && gi.redelivered == 1 && gi.dead_lettered == 0);
	shmbus_pub_close(p);
	close(ctl[0]);
	close(ctl[1]);
}

/* Case B's members: nack every delivery, saying its deliveries as a byte, until a byte
 * from the parent. */
static void poison_member(void *arg, int fd)
{
	(void)arg;
	shmbus_sub_t *s = join("poison", "p", 10000, 4);
	CHECK(write(fd, "r", 1) == 1);
	CHECK(fcntl(ctl[0], F_SETFL, O_NONBLOCK) == 0);
	for (;;) {
		shmbus_msg_t m;
		int rc = shmbus_recv(s, &m, 20);
		if (rc == -EAGAIN) {
			char c;
			if (read(ctl[0], &c, 1) == 1)
				break;
			continue;
		}
		CHECK_RC(rc, 0);
		CHECK(m.len == 7 && !memcmp(m.data, "poison", 7) && m.type == 42);
		char d = (char)('0' + m.deliveries);
		CHECK(write(fd, &d, 1) == 1);
		CHECK_RC(shmbus_nack(s, &m, 0), 0);
	}
	shmbus_sub_close(s);
}

static void case_poison(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 64 * 1024;
	CHECK_RC(shmbus_topic_create(bus, "poison", &o), 0);
	CHECK_RC(shmbus_topic_create(bus, "poison.dead", &o), 0);
	shmbus_sub_t *dl;
	CHECK_RC(shmbus_sub_open(&dl, bus, "poison.dead", NULL, SHMBUS_SUB_EARLIEST), 0);
	CHECK(pipe(ctl) == 0);
	int f[2];
	pid_t c[2];
	for (int i = 0; i < 2; i++) {
		c[i] = t_child(poison_member, NULL, &f[i]);
		CHECK(t_wait_byte(f[i], "a poison member joining") == 'r');
	}
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "poison"), 0);
	CHECK_RC(shmbus_publish(p, "poison", 7, 42), 0);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(dl, &m, T_WAIT_MS), 0);
	const shmbus_dead_letter_t *h = m.data;
	CHECK(m.len == sizeof(*h) + 7 && m.type == 42);
	printf("dead letter: topic %s group %s seq %" PRIu64 " deliveries %u reason %u\n",
	       h->topic, h->group, h->seq, h->deliveries, h->reason);
	CHECK(!strcmp(h->topic, "poison") && !strcmp(h->group, "p") && h->seq == 0 &&
	      h->deliveries == 4 && h->reason == SHMBUS_DEAD_NACK);
	CHECK(!memcmp(h + 1, "poison", 7));
	CHECK(write(ctl[1], "ss", 2) == 2);
	/* What each member saw: 1..4, each once in all. */
	int seen[10] = { 0 };
	for (int i = 0; i < 2; i++) {
		CHECK(t_exited(t_reap(c[i], T_WAIT_MS, "a poison member"), 0));
		char buf[64];
		ssize_t n = t_read_to_end(f[i], buf, sizeof(buf), T_WAIT_MS, 0);
		CHECK(n >= 0);
		printf("member %d saw deliveries %s\n", i, buf);
		for (ssize_t k = 0; k < n; k++) {
			CHECK(buf[k] >= '1' && buf[k] <= '9');
			seen[buf[k] - '0']++;
		}
	}
	for (int k = 1; k < 10; k++)
		CHECK(seen[k] == (k <= 4));
	CHECK_RC(shmbus_recv(dl, &m, 0), -EAGAIN);
	shmbus_group_info_t gi;
	CHECK(shmbus_topic_groups(bus, "poison", &gi, 1) == 1);
	CHECK(gi.pending == 0 && gi.redelivered == 3 && gi.dead_lettered == 1);
	shmbus_sub_close(dl);
	shmbus_pub_close(p);
}

int main(void)
{
	t_private_dir("ackhb");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	case_expiry();
	case_poison();
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
