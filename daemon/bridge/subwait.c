/* SPDX-License-Identifier: MIT */
/* Waiting on a topic through io_uring: see subwait.h. */
#include "daemon/bridge/subwait.h"

#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>

#include "bus/intree.h"
#include "bus/waiter.h"

#ifndef FUTEX_BITSET_MATCH_ANY
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#endif

void br_wait_init(struct bwait *w, shmbus_sub_t *sub, void (*fn)(struct bwait *w))
{
	*w = (struct bwait){ .op = { BOP_FUTEX, w }, .sub = sub, .fn = fn };
}

/*
 * The library arms the reader's half of the sleep handshake (docs/algorithm.md, "Waking
 * readers") and says whether the topic is still idle; only then does the kernel wait for
 * the word to change. A publisher that commits after that check sees the sleeper and bumps
 * the word, so the wait returns at once or is woken.
 */
int br_wait_arm(struct bridge *b, struct bwait *w)
{
	if (w->armed)
		return 1;
	if (!b->futex_ok || w->efault) {
		if (shmbus_sub_ready(w->sub))
			return 0;
		br_poll_soon(b);
		return 1;
	}
	uint32_t *word, val;
	if (!shmbus_sub_sleep_prepare(w->sub, &word, &val))
		return 0;
	struct io_uring_sqe *sqe = br_sqe(b);
	shmbus_prep_futex_wait(sqe, word, val, FUTEX_BITSET_MATCH_ANY);
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
	/* 0 woken, -EAGAIN the word had changed, -ECANCELED: all mean "look". -EFAULT: the
	 * word's page is gone (the file was truncated): the look, guarded like every access,
	 * finds the damage; should it not (the file grew back), this wait polls from now on
	 * rather than fail again at once, in a loop. */
	if (res == -EFAULT)
		w->efault = 1;
	w->armed = 0;
	w->woken = 1;
	if (w->fn)
		w->fn(w);
}

int br_wait_probe(struct bridge *b)
{
	const char *e = getenv("SHMBUSD_BRIDGE_NO_FUTEX");
	if (e && *e && strcmp(e, "0"))
		return 0;
	return shmbus_uring_futex_ok(&b->ring);
}
