/* SPDX-License-Identifier: MIT */
#include "daemon/bridge/ring.h"

#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

#include "daemon/shmbusd.h"

#define IDLE_POLL_MS 2	      /* timed poll of idle topics without futex waits */
#define BATCH_WAIT_NS 1000000 /* <= 1 ms more latency, only while completions are due */

int br_submit(struct bridge *b, unsigned wait)
{
	unsigned ready = io_uring_sq_ready(&b->ring);
	int n = wait ? io_uring_submit_and_wait(&b->ring, wait) : io_uring_submit(&b->ring);
	if (n >= 0) {
		b->enters++;
		b->sqes += ready;
	}
	return n;
}

int br_submit_batch(struct bridge *b, unsigned want)
{
	unsigned ready = io_uring_sq_ready(&b->ring);
	struct __kernel_timespec ts = { 0, BATCH_WAIT_NS };
	struct io_uring_cqe *cqe;
	int n = io_uring_submit_and_wait_timeout(&b->ring, &cqe, want, &ts, NULL);
	if (n >= 0 || n == -ETIME) {
		b->enters++;
		b->sqes += ready;
	}
	return n == -ETIME ? 0 : n;
}

struct io_uring_sqe *br_sqe(struct bridge *b)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&b->ring))) {
		/* The SQ ring is full: hand it to the kernel. */
		if (br_submit(b, 0) < 0)
			usleep(100);
	}
	return sqe;
}

void br_arm(struct bridge *b, struct io_uring_sqe *sqe, struct br_op *op)
{
	io_uring_sqe_set_data(sqe, op);
	b->inflight++;
	if (op->kind == BOP_SEND)
		b->sends++;
}

void br_sq_room(struct bridge *b, unsigned n)
{
	if (io_uring_sq_space_left(&b->ring) < n)
		br_submit(b, 0);
}

void br_timeout(struct bridge *b, struct __kernel_timespec *ts, uint64_t ms, struct br_op *op)
{
	ts->tv_sec = (long long)(ms / 1000);
	ts->tv_nsec = (long long)(ms % 1000) * 1000000ll;
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_timeout(sqe, ts, 0, 0);
	br_arm(b, sqe, op);
}

void br_cancel(struct bridge *b, struct br_op *target, unsigned flags)
{
	static struct br_op ignore = { BOP_CANCEL, NULL };
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_cancel(sqe, target, (int)flags);
	br_arm(b, sqe, &ignore);
}

void br_poll_soon(struct bridge *b)
{
	if (b->idle_armed)
		return;
	br_timeout(b, &b->idle_ts, IDLE_POLL_MS, &b->idle_op);
	b->idle_armed = 1;
}

void br_event(struct bridge *b, const char *name, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	size_t n = event_vline(msg, sizeof(msg), name, fmt, ap);
	va_end(ap);
	/* Overwrite policy: never waits. */
	if (b->log)
		shmbus_publish(b->log, msg, n, 1);
}
