/* SPDX-License-Identifier: MIT */
/*
 * Durable readers (bus/intree.h): a group of one that reads ahead of its cursor and moves
 * it only by an explicit commit, as the bridge does when a peer confirmed.
 *  - reading does not move the cursor; a commit does, forward only, never past what was
 *    read; a new reader (a restarted daemon) starts at the cursor; a rewind reads again
 *    from it, the same messages;
 *  - block: the held-back cursor holds publishers back (nothing unconfirmed is
 *    overwritten), a commit lets them go on;
 *  - overwrite: a lapped durable reader counts the loss exactly, once, even when it reads
 *    the place again after a rewind;
 *  - a live second member is refused, a dead one is freed;
 *  - a lease holds block-mode publishers at the cursor with no member at all, even after
 *    the member's process died and its slot was freed, until it expires;
 * and observers: readers that never hold publishers back, and count what they lost.
 */

#include "bus/intree.h"
#include "ring/record.h"
#include "tests/lib/proc.h"

/* The lease of case_lease(): the checks made while it holds take far less. */
#define LEASE_MS 1000

static shmbus_bus_t *bus;

static void make(const char *name, uint32_t policy, uint64_t cap)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = cap;
	o.max_message = 1024;
	o.policy = policy;
	CHECK_RC(shmbus_topic_create(bus, name, &o), 0);
}

static void group_info(const char *topic, shmbus_group_info_t *gi)
{
	CHECK_RC(shmbus_topic_groups(bus, topic, gi, 1), 1);
}

static void publish_n(shmbus_pub_t *p, uint32_t from, uint32_t n)
{
	char buf[100];
	for (uint32_t i = from; i < from + n; i++) {
		memset(buf, (int)(i & 0xff), sizeof(buf));
		memcpy(buf, &i, sizeof(i));
		CHECK_RC(shmbus_publish(p, buf, sizeof(buf), 7), 0);
	}
}

static uint32_t body(const shmbus_msg_t *m)
{
	uint32_t v;
	CHECK(m->len == 100 && m->type == 7);
	memcpy(&v, m->data, sizeof(v));
	for (uint32_t i = 4; i < 100; i++)
		CHECK(((const uint8_t *)m->data)[i] == (v & 0xff));
	return v;
}

static void case_commit_and_resume(void)
{
	make("d.block", SHMBUS_BLOCK, 1 << 16);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "d.block"), 0);
	shmbus_sub_t *d;
	CHECK_RC(shmbus_sub_open_durable(&d, bus, "d.block", "bridge-x", SHMBUS_SUB_EARLIEST), 0);
	CHECK(!shmbus_sub_ready(d));
	publish_n(p, 0, 10);
	CHECK(shmbus_sub_ready(d));
	shmbus_msg_t m;
	uint64_t end[10];
	for (uint32_t i = 0; i < 10; i++) {
		CHECK_RC(shmbus_recv(d, &m, 0), 0);
		CHECK(body(&m) == i && m.seq == i && m.lost == 0);
		end[i] = shmbus_msg_end(&m);
	}
	CHECK_RC(shmbus_recv(d, &m, 0), -EAGAIN);
	shmbus_group_info_t gi;
	group_info("d.block", &gi);
	/* Read all ten, confirmed none: the cursor has not moved. */
	CHECK(gi.cursor == 0 && gi.lag_msgs == 10 && gi.members == 1);
	CHECK_RC(shmbus_sub_commit(d, end[3], 4), 1);
	CHECK_RC(shmbus_sub_commit(d, end[3], 4), 0);		  /* repeated: no-op */
	CHECK_RC(shmbus_sub_commit(d, end[1], 2), 0);		  /* backwards: no-op */
	CHECK_RC(shmbus_sub_commit(d, end[9] + 32, 11), -EINVAL); /* past what was read */
	CHECK_RC(shmbus_sub_commit(d, end[3] + 1, 4), -EINVAL);	  /* unaligned */
	group_info("d.block", &gi);
	CHECK(gi.cursor == end[3] && gi.lag_msgs == 6);
	/* Rewind: the unconfirmed six again, the same. */
	shmbus_sub_rewind(d);
	for (uint32_t i = 4; i < 10; i++) {
		CHECK_RC(shmbus_recv(d, &m, 0), 0);
		CHECK(body(&m) == i && m.seq == i && m.lost == 0);
	}
	CHECK_RC(shmbus_sub_commit(d, end[6], 7), 1);
	/* A restarted bridge starts at the cursor. */
	shmbus_sub_close(d);
	CHECK_RC(shmbus_sub_open_durable(&d, bus, "d.block", "bridge-x", SHMBUS_SUB_EARLIEST), 0);
	CHECK_RC(shmbus_recv(d, &m, 0), 0);
	CHECK(body(&m) == 7 && m.seq == 7);
	/* A second live member is refused (a durable reader is a group of one)... */
	shmbus_sub_t *other;
	CHECK_RC(shmbus_sub_open_durable(&other, bus, "d.block", "bridge-x", 0), -EBUSY);
	CHECK(strstr(shmbus_errmsg(), "another member") != NULL);
	CHECK_RC(shmbus_sub_open(&other, bus, "d.block", "bridge-y", 0), 0);
	shmbus_sub_t *third;
	CHECK_RC(shmbus_sub_open_durable(&third, bus, "d.block", "bridge-y", 0), -EBUSY);
	shmbus_sub_close(other);
	shmbus_sub_close(d);
	/* ... a dead one is freed. */
	pid_t pid = t_fork();
	if (pid == 0) {
		shmbus_sub_t *c;
		_exit(shmbus_sub_open(&c, bus, "d.block", "bridge-x", 0) == 0 ? 0 : 1);
	}
	CHECK(t_exited(t_reap(pid, T_WAIT_MS, "the member that dies"), 0));
	CHECK_RC(shmbus_sub_open_durable(&d, bus, "d.block", "bridge-x", 0), 0);
	CHECK_RC(shmbus_recv(d, &m, 0), 0);
	CHECK(body(&m) == 7);
	shmbus_sub_close(d);
	shmbus_pub_close(p);
	printf("commit, rewind, resume, one member: ok\n");
}

static void case_block_holds_publishers(void)
{
	make("d.full", SHMBUS_BLOCK, 1 << 14);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "d.full"), 0);
	shmbus_sub_t *d;
	CHECK_RC(shmbus_sub_open_durable(&d, bus, "d.full", "bridge-x", 0), 0);
	char buf[100] = { 0 };
	/* The reader reads everything at once but confirms nothing: publishers stop at a
	 * ring's worth past the cursor. */
	uint32_t n = 0;
	shmbus_msg_t m;
	uint64_t last_end = 0;
	for (;;) {
		memcpy(buf, &n, sizeof(n));
		memset(buf + 4, (int)(n & 0xff), sizeof(buf) - 4);
		int rc = shmbus_publish_timeout(p, buf, sizeof(buf), 7, 0);
		if (rc == -EAGAIN)
			break;
		CHECK_RC(rc, 0);
		n++;
		CHECK_RC(shmbus_recv(d, &m, 0), 0);
		CHECK(body(&m) == n - 1);
		last_end = shmbus_msg_end(&m);
		CHECK(n < 1000);
	}
	uint64_t stride = shmbus_rec_stride(100);
	CHECK(n == (1u << 14) / stride);
	/* Confirm half: that much room comes back. */
	CHECK_RC(shmbus_sub_commit(d, (n / 2) * stride, n / 2), 1);
	uint32_t more = 0;
	while (shmbus_publish_timeout(p, buf, sizeof(buf), 7, 0) == 0)
		more++;
	CHECK(more == n / 2);
	CHECK_RC(shmbus_sub_commit(d, last_end, n), 1);
	shmbus_sub_close(d);
	shmbus_pub_close(p);
	printf("block: %u messages in flight hold publishers back; commits free room: ok\n", n);
}

static void case_lease(void)
{
	make("d.lease", SHMBUS_BLOCK, 1 << 14);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "d.lease"), 0);
	/* A child takes the group with a lease of LEASE_MS and dies without a word, telling
	 * us when it took the lease (the lease runs out LEASE_MS after that, or later). */
	int tp[2];
	CHECK(pipe(tp) == 0);
	pid_t pid = t_fork();
	if (pid == 0) {
		shmbus_sub_t *c;
		if (shmbus_sub_open_durable(&c, bus, "d.lease", "bridge-l", 0) < 0)
			_exit(1);
		uint64_t t = t_now_ns();
		shmbus_sub_lease(c, LEASE_MS);
		_exit(write(tp[1], &t, sizeof(t)) == sizeof(t) ? 0 : 1);
	}
	CHECK(t_exited(t_reap(pid, T_WAIT_MS, "the lease holder"), 0));
	uint64_t t0;
	CHECK(read(tp[0], &t0, sizeof(t0)) == sizeof(t0));
	close(tp[0]);
	close(tp[1]);
	char buf[100] = { 0 };
	uint32_t n = 0;
	while (shmbus_publish_timeout(p, buf, sizeof(buf), 7, 0) == 0)
		n++;
	/* A ring's worth, then held: the dead member's slot is freed (a blocked publisher
	 * does that), yet the cursor still counts. */
	CHECK(n == (1u << 14) / shmbus_rec_stride(100));
	CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), 7, 100), -EAGAIN);
	shmbus_group_info_t gi;
	group_info("d.lease", &gi);
	CHECK(gi.members == 0 && gi.cursor == 0);
	/* Until the lease runs out. */
	CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), 7, T_WAIT_MS), 0);
	double ms = (double)(t_now_ns() - t0) / 1e6;
	CHECK(ms >= LEASE_MS && ms < LEASE_MS + 1100);
	shmbus_pub_close(p);
	/* Dropping a lease (0) lets publishers go at once. */
	make("d.lease2", SHMBUS_BLOCK, 1 << 14);
	CHECK_RC(shmbus_pub_open(&p, bus, "d.lease2"), 0);
	shmbus_sub_t *d;
	CHECK_RC(shmbus_sub_open_durable(&d, bus, "d.lease2", "bridge-l", 0), 0);
	shmbus_sub_lease(d, 60000);
	shmbus_sub_close(d);
	while (shmbus_publish_timeout(p, buf, sizeof(buf), 7, 0) == 0)
		;
	CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), 7, 50), -EAGAIN);
	CHECK_RC(shmbus_sub_open_durable(&d, bus, "d.lease2", "bridge-l", 0), 0);
	shmbus_sub_lease(d, 0);
	shmbus_sub_close(d);
	CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), 7, 50), 0);
	shmbus_pub_close(p);
	printf("lease: publishers held %.0f ms after the member took its lease (%d ms): ok\n", ms,
	       LEASE_MS);
}

static void case_overwrite_loss(void)
{
	make("d.ow", SHMBUS_OVERWRITE, 1 << 14);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "d.ow"), 0);
	shmbus_sub_t *d;
	CHECK_RC(shmbus_sub_open_durable(&d, bus, "d.ow", "bridge-x", 0), 0);
	/* Three rings' worth, none read: the reader is lapped. */
	uint32_t per_lap = (1u << 14) / (uint32_t)shmbus_rec_stride(100);
	publish_n(p, 0, 3 * per_lap);
	shmbus_msg_t m;
	uint64_t lost = 0, got = 0, first = UINT64_MAX;
	while (shmbus_recv(d, &m, 0) == 0) {
		if (first == UINT64_MAX)
			first = m.seq;
		lost += m.lost;
		got++;
		CHECK(body(&m) == m.seq);
	}
	CHECK(first > 0 && lost == first && lost + got == 3 * per_lap);
	shmbus_group_info_t gi;
	group_info("d.ow", &gi);
	CHECK(gi.lost == lost);
	/* Read again from the cursor (never committed): the loss is not counted twice. */
	shmbus_sub_rewind(d);
	uint64_t lost2 = 0, got2 = 0;
	while (shmbus_recv(d, &m, 0) == 0) {
		lost2 += m.lost;
		got2++;
	}
	CHECK(lost2 == 0 && got2 == got);
	group_info("d.ow", &gi);
	CHECK(gi.lost == lost);
	shmbus_sub_close(d);
	shmbus_pub_close(p);
	printf("overwrite: lapped, %llu lost counted once: ok\n", (unsigned long long)lost);
}

static void case_observer(void)
{
	make("d.obs", SHMBUS_BLOCK, 1 << 14);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, "d.obs"), 0);
	shmbus_sub_t *o;
	CHECK_RC(shmbus_sub_open_observer(&o, bus, "d.obs", 0), 0);
	uint32_t per_lap = (1u << 14) / (uint32_t)shmbus_rec_stride(100);
	shmbus_msg_t m;
	/* Keeping up, it gets everything. */
	publish_n(p, 0, per_lap / 2);
	for (uint32_t i = 0; i < per_lap / 2; i++) {
		CHECK_RC(shmbus_recv(o, &m, 0), 0);
		CHECK(body(&m) == i && m.lost == 0);
	}
	/* A block topic with only an observer: publishers never wait for it. */
	char buf[100] = { 0 };
	uint32_t n = 4 * per_lap;
	for (uint32_t i = per_lap / 2; i < per_lap / 2 + n; i++) {
		memcpy(buf, &i, sizeof(i));
		memset(buf + 4, (int)(i & 0xff), sizeof(buf) - 4);
		CHECK_RC(shmbus_publish_timeout(p, buf, sizeof(buf), 7, 0), 0);
	}
	uint64_t lost = 0, got = 0;
	while (shmbus_recv(o, &m, 0) == 0) {
		CHECK(body(&m) == m.seq);
		lost += m.lost;
		got++;
	}
	CHECK(lost > 0 && lost + got == n);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "d.obs", &st), 0);
	CHECK(st.backpressure_waits == 0);
	shmbus_sub_close(o);
	shmbus_pub_close(p);
	printf("observer: never holds publishers back, lost %llu counted: ok\n",
	       (unsigned long long)lost);
}

int main(void)
{
	t_private_dir("durable");
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	case_commit_and_resume();
	case_block_holds_publishers();
	case_lease();
	case_overwrite_loss();
	case_observer();
	shmbus_bus_close(bus);
	return 0;
}
