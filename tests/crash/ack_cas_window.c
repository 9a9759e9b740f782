/* SPDX-License-Identifier: MIT */
/*
 * An acknowledging member killed around its cursor CAS (ring/ack.c, the cursor word's tag
 * in shm/layout.h): its reserved entry names the message, and whether the CAS took it is
 * read from its slot or the cursor. The victim, a real process, does the take's steps by
 * hand up to the instant it dies (raise(SIGKILL)); a scan as the daemon's reaper runs it
 * then decides.
 *  F. killed after a CAS that failed (a rival, member B, took the message and acked it
 *     before the victim's entry was looked at): the message is not delivered again.
 *  S1. killed just after a CAS that took it (the cursor still carries its tag): the
 *     message is delivered again, once.
 *  S2. the same, but another member (C, not acknowledging) moved the cursor past the next
 *     message before the scan: it confirmed the victim's take in the victim's slot first,
 *     so the message is delivered again, once.
 *  R. killed just after the CAS that reserves again the entry of the message it took and
 *     acked last (an ack points the next reservation there): the entry still holds that
 *     message's name, which is its last take, but it is not delivered again.
 *  O. the victim took and acked m0 and died; a live member reserves the entry the victim
 *     used (its CAS, before it writes its name as the entry's owner): the scan for the
 *     dead pid, as the daemon's reaper runs it, leaves that entry alone.
 */
#include "tests/lib/proc.h"

#include "bus/intree.h"
#include "ring/ack.h"
#include "ring/atomic.h"
#include "ring/reader.h"
#include "shm/layout.h"

static shmbus_bus_t *bus;

static shmbus_sub_t *join(const char *topic, int ack)
{
	shmbus_sub_t *s;
	shmbus_group_opts_t go;
	shmbus_group_opts_init(&go);
	go.ack_wait_ms = 600000; /* no timeout hands anything back here */
	CHECK_RC(shmbus_sub_open_group(&s, bus, topic, "g", ack ? SHMBUS_SUB_ACK : 0, &go), 0);
	return s;
}

/* The victim: reserve an entry, name the message at the cursor, then (arg "s") take it
 * with its tagged CAS; say so, and die on the spot. */
static void victim(void *arg, int fd)
{
	const char *topic = ((const char **)arg)[0];
	int take = *((const char **)arg)[1] == 's';
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_sub_t *s = join(topic, 1);
	struct shmbus_ring_reader *rd = shmbus_sub_ring_reader(s);
	if (*((const char **)arg)[1] == 'o') {
		shmbus_msg_t m;
		CHECK_RC(shmbus_recv(s, &m, T_WAIT_MS), 0);
		CHECK_RC(shmbus_ack(s, &m), 0);
		char idx = (char)(uint32_t)m._pend;
		CHECK(write(fd, &idx, 1) == 1);
		raise(SIGKILL);
	}
	if (*((const char **)arg)[1] == 'r') {
		shmbus_msg_t m;
		CHECK_RC(shmbus_recv(s, &m, T_WAIT_MS), 0);
		CHECK(!strcmp(m.data, "m0"));
		uint32_t idx = (uint32_t)m._pend;
		CHECK_RC(shmbus_ack(s, &m), 0);
		/* The reservation's CAS, as shmbus_ring_ack_reserve() makes it (that entry is
		 * where it looks first), and nothing after it. */
		CHECK(rd->hint == idx);
		struct shmbus_pend *e = &rd->pend[idx];
		uint64_t c = sb_ld_acquire(&e->ctl);
		CHECK(shmbus_pend_state(c) == SHMBUS_PEND_FREE && e->seq == 0 &&
		      e->pos != SHMBUS_NOPOS);
		CHECK(sb_cas_u64(&e->ctl, &c,
				 shmbus_pend_ctl(SHMBUS_PEND_RESERVED, SHMBUS_PEND_UNNAMED, 0,
						 rd->slot_idx, shmbus_pend_gen(c))));
		CHECK(write(fd, "v", 1) == 1);
		raise(SIGKILL);
	}
	CHECK_RC(shmbus_ring_ack_reserve(rd), 0);
	uint64_t c[2];
	sb_ld_pair(rd->grp->cursor, c);
	CHECK(shmbus_ctag(c[1]) == 0 && shmbus_cseq(c[1]) == 0);
	shmbus_ring_ack_name(rd, c[0], 0);
	if (take) {
		struct shmbus_rec *r = shmbus_rec_at(&rd->seg, c[0]);
		uint64_t size = shmbus_rec_size(sb_ld_acquire(&r->len));
		uint64_t w[2] = { c[0] + size, shmbus_cword(1, rd->slot_idx + 1) };
		CHECK(sb_cas_pair(rd->grp->cursor, c, w));
	}
	CHECK(write(fd, "v", 1) == 1);
	raise(SIGKILL);
}

static void recv_is(shmbus_sub_t *s, const char *want, uint32_t deliveries)
{
	shmbus_msg_t m;
	CHECK_RC(shmbus_recv(s, &m, T_WAIT_MS), 0);
	if (strcmp(m.data, want) || m.deliveries != deliveries)
		FAIL("got %s (deliveries %u), wanted %s (deliveries %u)", (const char *)m.data,
		     m.deliveries, want, deliveries);
	CHECK_RC(shmbus_ack(s, &m), 0);
}

static void run(const char *topic, const char *mode)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 64 * 1024;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);
	shmbus_sub_t *b = join(topic, 1), *c = join(topic, 0);
	shmbus_pub_t *p;
	CHECK_RC(shmbus_pub_open(&p, bus, topic), 0);
	CHECK_RC(shmbus_publish(p, "m0", 3, 0), 0);
	const char *arg[2] = { topic, mode };
	int fd;
	pid_t v = t_child(victim, (void *)arg, &fd);
	char said = t_wait_byte(fd, "the victim at its CAS");
	CHECK(*mode == 'o' || said == 'v');
	CHECK(t_signalled(t_reap(v, T_WAIT_MS, "the victim"), SIGKILL));
	struct shmbus_seg *seg = &shmbus_sub_ring_reader(b)->seg;
	uint32_t g = shmbus_sub_ring_reader(b)->gidx;
	uint32_t vslot = UINT32_MAX;
	for (uint32_t i = 0; i < seg->opts.max_readers; i++)
		if (SHMBUS_OWNER_PID(sb_ld_acquire(&seg->readers[i].owner)) == v)
			vslot = i;
	CHECK(vslot != UINT32_MAX);
	CHECK_RC(shmbus_publish(p, "m1", 3, 0), 0);
	if (*mode == 'o') {
		struct shmbus_ring_reader *rb = shmbus_sub_ring_reader(b);
		struct shmbus_pend *e = &rb->pend[(uint8_t)said];
		uint64_t c0 = sb_ld_acquire(&e->ctl);
		CHECK(shmbus_pend_state(c0) == SHMBUS_PEND_FREE && SHMBUS_OWNER_PID(e->owner) == v);
		uint64_t want = shmbus_pend_ctl(SHMBUS_PEND_RESERVED, SHMBUS_PEND_UNNAMED, 0,
						rb->slot_idx, shmbus_pend_gen(c0));
		CHECK(sb_cas_u64(&e->ctl, &c0, want));
		CHECK(shmbus_ack_scan(seg, g, v, 0) == 0);
		CHECK(sb_ld_acquire(&e->ctl) == want);
		/* As the reservation goes on: the entry is B's, whose receive uses it. */
		sb_st_relaxed(&e->owner, sb_ld_relaxed(&rb->slot->owner));
		rb->res = (uint8_t)said;
		recv_is(b, "m1", 1);
	} else if (*mode == 'r') {
		shmbus_ack_scan(seg, g, v, 0);
		recv_is(b, "m1", 1);
	} else if (*mode == 'f') {
		/* The rival took m0 (the victim's CAS would have failed) and acked it. */
		recv_is(b, "m0", 1);
		shmbus_ack_scan(seg, g, v, 0);
		recv_is(b, "m1", 1);
	} else if (!strcmp(mode, "s1")) {
		CHECK(shmbus_ctag(sb_ld_acquire(&seg->groups[g].cursor[1])) == vslot + 1);
		CHECK(shmbus_ack_scan(seg, g, v, 0) == 1);
		recv_is(b, "m0", 1);
		recv_is(b, "m1", 1);
	} else {
		/* C takes m1: it confirms the victim's take in its slot first. */
		shmbus_msg_t m;
		CHECK_RC(shmbus_recv(c, &m, T_WAIT_MS), 0);
		CHECK(!strcmp(m.data, "m1"));
		CHECK(shmbus_ctag(sb_ld_acquire(&seg->groups[g].cursor[1])) == 0);
		CHECK(sb_ld_acquire(&seg->readers[vslot].taken_seq) == 1);
		CHECK(shmbus_ack_scan(seg, g, v, 0) == 1);
		recv_is(b, "m0", 1);
	}
	/* Nothing more: none pending, m0 handed back once at most. */
	shmbus_group_info_t gi[2];
	CHECK(shmbus_topic_groups(bus, topic, gi, 2) == 1);
	printf("%s: pending %" PRIu64 ", redelivered %" PRIu64 "\n", mode, (uint64_t)gi[0].pending,
	       (uint64_t)gi[0].redelivered);
	CHECK(gi[0].pending == 0);
	CHECK(gi[0].redelivered == (*mode == 's' ? 1u : 0u));
	CHECK_RC(shmbus_publish(p, "m2", 3, 0), 0);
	recv_is(b, "m2", 1);
	shmbus_pub_close(p);
	shmbus_sub_close(c);
	shmbus_sub_close(b);
}

int main(void)
{
	t_private_dir("ackcas");
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	run("cw_f", "f");
	run("cw_s1", "s1");
	run("cw_s2", "s2");
	run("cw_r", "r");
	run("cw_o", "o");
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
