/* SPDX-License-Identifier: MIT */
/*
 * ring/log internals: (1) walking the log from position 0 finds a chain of records, none
 * straddling a lap end, lap ends padded, sequences contiguous; (2) the lowest position
 * publishers must keep (fan-out readers, held group messages, cursors of groups with
 * members; groups without members do not count); (3) repair of a dead publisher's claim
 * that straddles a lap end (padding + record): two pieces, the claim's sequence burned by
 * the last, the slot freed, readers go on.
 */
#include "tests/lib/proc.h"

#include "ring/writer.h"
#include "shm/proc.h"

static shmbus_bus_t *bus;

static void walk(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 13;
	o.max_message = 3000;
	CHECK_RC(shmbus_topic_create(bus, "w", &o), 0);
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "w"), 0);
	static uint8_t buf[3000];
	uint64_t rs = 7;
	/* Publish less than one lap after the first lap's worth, so the whole log of the
	 * second lap is intact: walk it from its first record. */
	uint64_t bytes = 0;
	int n = 0;
	while (bytes < (1 << 13) - 3100) {
		size_t len = t_rand(&rs) % 3000;
		CHECK_RC(shmbus_publish(pub, buf, len, 0), 0);
		bytes += shmbus_rec_stride(len);
		n++;
	}
	struct shmbus_seg s;
	CHECK_RC(shmbus_seg_open(&s, shmbus_bus_path(bus), "w"), 0);
	uint64_t tail = s.hdr->tail[0], p = 0, seq = 0;
	int pads = 0, recs = 0;
	while (p < tail) {
		struct shmbus_rec *r = shmbus_rec_at(&s, p);
		CHECK(r->commit == shmbus_rec_stamp(&s, p));
		uint64_t size = (r->len & SHMBUS_REC_PAD) ? r->len & ~SHMBUS_REC_PAD :
							    shmbus_rec_stride(r->len);
		CHECK((p & s.mask) + size <= s.cap); /* never straddles */
		if (r->len & SHMBUS_REC_PAD) {
			CHECK(r->type == 0);
			CHECK(((p + size) & s.mask) == 0); /* pads end laps */
			pads++;
		} else {
			CHECK(r->seq == seq);
			seq++;
			recs++;
		}
		p += size;
	}
	CHECK(p == tail && recs == n && seq == s.hdr->tail[1]);
	printf("walk: %d records, %d lap pads\n", recs, pads);
	shmbus_seg_close(&s);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "w"), 0);
}

static void min_pos(void)
{
	CHECK_RC(shmbus_topic_create(bus, "mp", NULL), 0);
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "mp"), 0);
	struct shmbus_seg s;
	CHECK_RC(shmbus_seg_open(&s, shmbus_bus_path(bus), "mp"), 0);
	uint64_t gcur[16];
	uint8_t ghas[16];
	for (int i = 0; i < 4; i++)
		CHECK_RC(shmbus_publish(pub, "0123456789", 10, 0), 0); /* 64-byte records */
	CHECK(shmbus_ring_min_pos(&s, gcur, ghas) == 256); /* nobody: the tail */
	shmbus_sub_t *f, *m1, *m2;
	CHECK_RC(shmbus_sub_open(&f, bus, "mp", NULL, SHMBUS_SUB_EARLIEST), 0);
	CHECK(shmbus_ring_min_pos(&s, gcur, ghas) == 0);
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(f, &m, 0), 0);
	CHECK(shmbus_ring_min_pos(&s, gcur, ghas) == 0); /* still held */
	CHECK_RC(shmbus_recv(f, &m, 0), 0);
	CHECK(shmbus_ring_min_pos(&s, gcur, ghas) == 64);
	CHECK_RC(shmbus_sub_open(&m1, bus, "mp", "g", SHMBUS_SUB_EARLIEST), 0);
	CHECK(shmbus_ring_min_pos(&s, gcur, ghas) == 0); /* the group's cursor */
	shmbus_sub_close(m1);
	CHECK(shmbus_ring_min_pos(&s, gcur, ghas) == 64); /* no member: no hold */
	CHECK_RC(shmbus_sub_open(&m1, bus, "mp", "g", 0), 0);
	CHECK_RC(shmbus_sub_open(&m2, bus, "mp", "g", 0), 0);
	CHECK_RC(shmbus_recv(m1, &m, 0), 0); /* backlog copy: seq 0 */
	CHECK(m.seq == 0);
	CHECK_RC(shmbus_recv(m2, &m, 0), 0);
	CHECK_RC(shmbus_recv(m2, &m, 0), 0);
	CHECK(m.seq == 2);
	shmbus_sub_close(f);
	CHECK(shmbus_ring_min_pos(&s, gcur, ghas) == 192); /* the cursor */
	shmbus_sub_close(m1);
	shmbus_sub_close(m2);
	CHECK(shmbus_ring_min_pos(&s, gcur, ghas) == 256);
	shmbus_seg_close(&s);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "mp"), 0);
}

static void repair_across_lap(void)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 4096;
	o.max_message = 1000;
	CHECK_RC(shmbus_topic_create(bus, "rp", &o), 0);
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_sub_open(&sub, bus, "rp", NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(&pub, bus, "rp"), 0);
	uint8_t buf[1000] = { 0 };
	/* Fill to 3968 (four 992-byte records; 4 x 992 = 3968), leaving 128 bytes. */
	for (int i = 0; i < 4; i++)
		CHECK_RC(shmbus_publish(pub, buf, 960, (uint32_t)i), 0);
	shmbus_msg_t m;
	for (int i = 0; i < 4; i++)
		CHECK_RC(shmbus_recv(sub, &m, 0), 0);
	CHECK_RC(shmbus_release(sub, &m), 0);

	/* A child claims a 500-byte message (pad 128 + record 544) and is killed. */
	pid_t c = t_fork();
	if (c == 0) {
		shmbus_bus_t *b2;
		shmbus_pub_t *p2;
		void *r;
		if (shmbus_bus_open(&b2, NULL) || shmbus_pub_open(&p2, b2, "rp") ||
		    shmbus_reserve(p2, 500, &r))
			_exit(1);
		pause();
		_exit(0);
	}
	struct shmbus_seg s;
	CHECK_RC(shmbus_seg_open(&s, shmbus_bus_path(bus), "rp"), 0);
	uint64_t end = t_deadline(T_WAIT_MS);
	while (sb_ld_acquire(&s.hdr->tail[0]) != 3968 + 128 + 544) {
		if (t_wait(c, 0, NULL) == 0 || t_now_ns() > end) {
			fprintf(stderr, "the child made no claim within %d ms\n", T_WAIT_MS);
			exit(1);
		}
		usleep(100); /* poll interval */
	}
	CHECK_RC(shmbus_publish(pub, "after", 5, 77), 0);
	CHECK_RC(shmbus_recv(sub, &m, 20), -EAGAIN); /* waits for the live claimant */
	t_kill(c);
	uint64_t t0 = t_now_ns();
	CHECK_RC(shmbus_recv(sub, &m, T_WAIT_MS), 0);
	printf("repair: %.3f ms after the death\n", (double)(t_now_ns() - t0) / 1e6);
	CHECK(m.len == 5 && memcmp(m.data, "after", 5) == 0 && m.seq == 5 && m.lost == 0);
	/* The cover: [3968, 4096) burns nothing, [4096, 4640) burns the claim's one seq. */
	struct shmbus_rec *p1 = shmbus_rec_at(&s, 3968), *p2 = shmbus_rec_at(&s, 4096);
	CHECK(p1->len == (SHMBUS_REC_PAD | 128) && p1->type == 0);
	CHECK(p2->len == (SHMBUS_REC_PAD | 544) && p2->type == 1);
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, "rp", &st), 0);
	CHECK(st.aborted == 1 && st.publishers == 1);
	shmbus_seg_close(&s);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
	CHECK_RC(shmbus_topic_remove(bus, "rp"), 0);
}

int main(void)
{
	t_private_dir("log");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	walk();
	min_pos();
	repair_across_lap();
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
