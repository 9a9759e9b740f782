/* SPDX-License-Identifier: MIT */
/*
 * Groups: members of one group get disjoint shares that together are every message once;
 * two groups and a fan-out reader each get everything; a group outlives its members and a
 * new member resumes where the group was; group names are validated; EARLIEST applies when
 * the call creates the group.
 */
#include "tests/lib/test.h"

static shmbus_bus_t *bus;

int main(void)
{
	t_private_dir("grp");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	CHECK_RC(shmbus_topic_create(bus, "g", &o), 0);
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "g"), 0);
	shmbus_sub_t *a1, *a2, *b1, *f;
	CHECK_RC(shmbus_sub_open(&a1, bus, "g", "alpha", 0), 0);
	CHECK_RC(shmbus_sub_open(&a2, bus, "g", "alpha", 0), 0);
	CHECK_RC(shmbus_sub_open(&b1, bus, "g", "beta", 0), 0);
	CHECK_RC(shmbus_sub_open(&f, bus, "g", NULL, 0), 0);
	const int N = 3000;
	static uint8_t seen_a[3000], seen_b[3000], seen_f[3000];
	int got_a1 = 0, got_a2 = 0;
	for (int i = 0; i < N; i++) {
		CHECK_RC(shmbus_publish(pub, &i, sizeof(i), 0), 0);
		shmbus_msg_t m;
		/* Alternate members; whichever asks takes the next message. */
		shmbus_sub_t *who = (i % 3) ? a1 : a2;
		CHECK_RC(shmbus_recv(who, &m, 100), 0);
		int v = *(const int *)m.data;
		CHECK(v == i && m.seq == (uint64_t)i && m.lost == 0);
		CHECK(!seen_a[v]);
		seen_a[v] = 1;
		if (who == a1)
			got_a1++;
		else
			got_a2++;
		CHECK_RC(shmbus_recv(who == a1 ? a2 : a1, &m, 0), -EAGAIN);
		if (i % 2 == 0) {
			/* beta reads in pairs, the fan-out reader every time */
			for (int k = 0; k < 1 + (i > 0); k++) {
				CHECK_RC(shmbus_recv(b1, &m, 100), 0);
				v = *(const int *)m.data;
				CHECK(!seen_b[v]);
				seen_b[v] = 1;
			}
		}
		CHECK_RC(shmbus_recv(f, &m, 100), 0);
		v = *(const int *)m.data;
		CHECK(v == i && !seen_f[v]);
		seen_f[v] = 1;
	}
	CHECK(got_a1 == 2000 && got_a2 == 1000);
	/* beta is one behind; close its only member: the group keeps its place. */
	shmbus_sub_close(b1);
	for (int i = N; i < N + 10; i++)
		CHECK_RC(shmbus_publish(pub, &i, sizeof(i), 0), 0);
	CHECK_RC(shmbus_sub_open(&b1, bus, "g", "beta", SHMBUS_SUB_EARLIEST), 0);
	shmbus_msg_t m;
	int next = -1;
	for (int i = 0; i < N; i++)
		if (!seen_b[i]) {
			CHECK(next < 0);
			next = i;
		}
	CHECK(next == N - 1);
	for (int i = next; i < N + 10; i++) {
		CHECK_RC(shmbus_recv(b1, &m, 100), 0);
		CHECK(*(const int *)m.data == i && m.lost == 0);
	}
	CHECK_RC(shmbus_recv(b1, &m, 0), -EAGAIN);

	/* A group created with EARLIEST starts at the backlog; without, at the tail. */
	shmbus_sub_t *e, *l;
	CHECK_RC(shmbus_sub_open(&e, bus, "g", "early", SHMBUS_SUB_EARLIEST), 0);
	CHECK_RC(shmbus_sub_open(&l, bus, "g", "late", 0), 0);
	int x = 12345;
	CHECK_RC(shmbus_publish(pub, &x, sizeof(x), 0), 0);
	CHECK_RC(shmbus_recv(l, &m, 100), 0);
	CHECK(*(const int *)m.data == x);
	CHECK_RC(shmbus_recv(e, &m, 100), 0);
	CHECK(m.seq < (uint64_t)N); /* from the retained backlog */

	/* Names. */
	shmbus_sub_t *bad;
	char longname[64];
	memset(longname, 'n', sizeof(longname));
	longname[SHMBUS_GROUP_NAME_MAX + 1] = '\0';
	CHECK_RC(shmbus_sub_open(&bad, bus, "g", longname, 0), -EINVAL);
	longname[SHMBUS_GROUP_NAME_MAX] = '\0';
	CHECK_RC(shmbus_sub_open(&bad, bus, "g", longname, 0), 0);
	shmbus_sub_close(bad);
	CHECK_RC(shmbus_sub_open(&bad, bus, "g", "a.b", 0), -EINVAL);
	CHECK_RC(shmbus_sub_open(&bad, bus, "g", "", 0), -EINVAL);

	shmbus_sub_close(e);
	shmbus_sub_close(l);
	shmbus_sub_close(a1);
	shmbus_sub_close(a2);
	shmbus_sub_close(b1);
	shmbus_sub_close(f);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "g"), 0);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
