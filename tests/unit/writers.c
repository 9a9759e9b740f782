/* SPDX-License-Identifier: MIT */
/*
 * I5: a publisher never laps another publisher that is still writing. In overwrite mode,
 * with publisher A holding an open reservation, publisher B fills the ring: it may go up
 * to A's claim + capacity and no further (-EAGAIN with timeout 0, nothing written), so
 * whatever A then writes lands only in its own record; after A commits, B goes on. The
 * reader gets only intact messages and counts the rest as lost, exactly.
 */
#include "tests/lib/test.h"

int main(void)
{
	t_private_dir("writers");
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 16;
	o.max_message = 1024;
	o.policy = SHMBUS_OVERWRITE;
	CHECK_RC(shmbus_topic_create(bus, "w", &o), 0);
	shmbus_pub_t *a, *b;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "w", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&a, bus, "w"), 0);
	CHECK_RC(shmbus_pub_open(&b, bus, "w"), 0);
	uint8_t buf[480];
	memset(buf, 'B', sizeof(buf));
	for (int i = 0; i < 10; i++)
		CHECK_RC(shmbus_publish(b, buf, sizeof(buf), 2), 0); /* 512-byte records */
	void *r;
	CHECK_RC(shmbus_reserve(a, sizeof(buf), &r), 0); /* A's claim at 5120 */
	/* B may publish up to 5120 + 65536: 127 more records, then it must stop. */
	int n = 0;
	int rc;
	while ((rc = shmbus_publish_timeout(b, buf, sizeof(buf), 2, 0)) == 0 && n < 1000)
		n++;
	CHECK_RC(rc, -EAGAIN);
	CHECK(n == 127);
	/* A writes its record late: only its own bytes change. */
	memset(r, 'A', sizeof(buf));
	CHECK_RC(shmbus_commit_type(a, 1), 0);
	/* B goes on once A is done. */
	CHECK_RC(shmbus_publish_timeout(b, buf, sizeof(buf), 2, 0), 0);
	uint64_t published = 10 + 1 + 127 + 1, got = 0, lost = 0;
	shmbus_msg_t m;
	while ((rc = shmbus_recv(sub, &m, 0)) == 0) {
		got++;
		lost += m.lost;
		CHECK(m.len == sizeof(buf));
		char want = m.type == 1 ? 'A' : 'B';
		for (uint32_t i = 0; i < m.len; i++)
			CHECK(((const char *)m.data)[i] == want);
	}
	CHECK_RC(rc, -EAGAIN);
	printf("received %" PRIu64 ", lost %" PRIu64 " of %" PRIu64 "\n", got, lost, published);
	CHECK(got + lost == published);
	CHECK(lost > 0);
	shmbus_pub_close(a);
	shmbus_pub_close(b);
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
