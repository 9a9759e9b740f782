/* SPDX-License-Identifier: MIT */
/*
 * TO BE REPLACED BY THE RING READER API (issue 12). The bridge's reach into the library's
 * reader (struct shmbus_sub, the topic header), kept here and nowhere else: see
 * sub_glue.h. The code moved here unchanged from bridge.c, redis.c and ws.c.
 */
#include "daemon/bridge/sub_glue.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus/internal.h"
#include "ring/wait.h"

#ifndef IORING_OP_FUTEX_WAIT
/* Linux 6.7; liburing 2.3 has neither the opcode nor a helper: the SQE is filled by hand. */
#define IORING_OP_FUTEX_WAIT 51
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#endif

static struct shmbus_topic_hdr *sub_hdr(shmbus_sub_t *sub)
{
	return ((struct shmbus_sub *)sub)->seg.hdr;
}

void br_wait_init(struct bwait *w, shmbus_sub_t *sub, void (*fn)(struct bwait *w))
{
	*w = (struct bwait){ .op = { BOP_FUTEX, w }, .sub = sub, .fn = fn };
}

/*
 * The reader's half of the sleep handshake (docs/algorithm.md, "Waking readers"): count
 * ourselves in sleepers (seq_cst), make the publishers' skipped fences happen
 * (membarrier), read the wake word, check the topic once more, and only then have the
 * kernel wait for the word to change. A publisher that commits after our check sees the
 * sleeper and bumps the word, so the wait returns at once or is woken.
 */
int br_wait_arm(struct bridge *b, struct bwait *w)
{
	if (w->armed)
		return 1;
	if (!b->futex_ok) {
		if (shmbus_sub_ready(w->sub))
			return 0;
		br_poll_soon(b);
		return 1;
	}
	struct shmbus_topic_hdr *h = sub_hdr(w->sub);
	if (!w->counted) {
		__atomic_fetch_add(&h->sleepers, 1, __ATOMIC_SEQ_CST);
		w->counted = 1;
		shmbus_membarrier_global();
	}
	uint32_t val = __atomic_load_n(&h->wake, __ATOMIC_ACQUIRE);
	if (shmbus_sub_ready(w->sub)) {
		__atomic_fetch_sub(&h->sleepers, 1, __ATOMIC_SEQ_CST);
		w->counted = 0;
		return 0;
	}
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32, &h->wake, 0, val);
	sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
	br_arm(b, sqe, &w->op);
	w->armed = 1;
	return 1;
}

void br_wait_cancel(struct bridge *b, struct bwait *w)
{
	if (!w->armed)
		return;
	br_cancel(b, &w->op, 0);
}

void br_wait_done(struct bwait *w, int res)
{
	(void)res; /* 0 woken, -EAGAIN the word had changed, -ECANCELED: all mean "look" */
	w->armed = 0;
	if (w->counted) {
		__atomic_fetch_sub(&sub_hdr(w->sub)->sleepers, 1, __ATOMIC_SEQ_CST);
		w->counted = 0;
	}
	w->woken = 1;
	if (w->fn)
		w->fn(w);
}

void br_wait_forget(struct bwait *w)
{
	if (w->counted) {
		__atomic_fetch_sub(&sub_hdr(w->sub)->sleepers, 1, __ATOMIC_SEQ_CST);
		w->counted = 0;
	}
}

int br_wait_probe(struct bridge *b)
{
	const char *e = getenv("SHMBUSD_BRIDGE_NO_FUTEX");
	if (e && *e && strcmp(e, "0"))
		return 0;
	struct io_uring_probe *p = io_uring_get_probe_ring(&b->ring);
	if (!p)
		return 0;
	int ok = io_uring_opcode_supported(p, IORING_OP_FUTEX_WAIT);
	io_uring_free_probe(p);
	return ok;
}

/* ---- what the bridge reads of a reader and its topic ------------------------------------- */

uint64_t br_sub_generation(shmbus_sub_t *sub)
{
	return ((struct shmbus_sub *)sub)->seg.generation;
}

uint64_t br_sub_created_ns(shmbus_sub_t *sub)
{
	return sub_hdr(sub)->created_ns;
}

uint64_t br_sub_lag(shmbus_sub_t *sub)
{
	struct shmbus_sub *s = (struct shmbus_sub *)sub;
	uint64_t tail_seq = __atomic_load_n(&s->seg.hdr->tail[1], __ATOMIC_ACQUIRE);
	uint64_t cur_seq = __atomic_load_n(&s->grp->cursor[1], __ATOMIC_ACQUIRE);
	if (cur_seq != SHMBUS_NOSEQ && cur_seq <= tail_seq)
		return tail_seq - cur_seq;
	return 0; /* not known until the first message is read */
}

uint64_t br_sub_group_seq(shmbus_sub_t *sub)
{
	struct shmbus_sub *s = (struct shmbus_sub *)sub;
	uint64_t cur = __atomic_load_n(&s->grp->cursor[1], __ATOMIC_ACQUIRE);
	return cur == SHMBUS_NOSEQ ? 0 : cur;
}

uint64_t br_topic_generation(const char *bus_dir, const char *name)
{
	char path[PATH_MAX + 256];
	snprintf(path, sizeof(path), "%s/%s.topic", bus_dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	uint64_t g = 0;
	if (pread(fd, &g, sizeof(g), offsetof(struct shmbus_topic_hdr, generation)) != sizeof(g))
		g = 0;
	close(fd);
	return g;
}
