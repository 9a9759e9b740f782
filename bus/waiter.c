/* SPDX-License-Identifier: MIT */
/* A waiter: one io_uring to wait on topics' wake words from an event loop (bus/waiter.h). */
#include "bus/waiter.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

#include "ring/clock.h"
#include "shm/err.h"

#ifndef IORING_OP_FUTEX_WAIT
#define IORING_OP_FUTEX_WAIT 51
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif

void shmbus_prep_futex_wait(struct io_uring_sqe *sqe, uint32_t *word, uint32_t val, uint32_t mask)
{
	/* A shared futex (no FUTEX2_PRIVATE): the word is in a file other processes map. */
	io_uring_prep_rw(IORING_OP_FUTEX_WAIT, sqe, FUTEX2_SIZE_U32, word, 0, val);
	sqe->addr3 = mask;
}

int shmbus_uring_futex_ok(struct io_uring *ring)
{
	struct io_uring_probe *pr = io_uring_get_probe_ring(ring);
	int ok = pr && io_uring_opcode_supported(pr, IORING_OP_FUTEX_WAIT);
	if (pr)
		io_uring_free_probe(pr);
	return ok;
}

int shmbus_waiter_init(struct shmbus_waiter *w, unsigned entries)
{
	memset(w, 0, sizeof(*w));
	w->ring.ring_fd = -1;
	unsigned n = 8;
	while (n < entries && n < 4096)
		n *= 2;
	/* The completion ring four times the submission ring: a sink may have a wait queued
	 * per topic (the kernel keeps what overflows it, IORING_FEAT_NODROP). No
	 * COOP_TASKRUN: a wake completes while the thread that armed it sleeps in epoll.
	 * The ring's fd is close-on-exec, as every io_uring's. */
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 4 * n;
	int rc = io_uring_queue_init_params(n, &w->ring, &p);
	if (rc < 0) {
		w->ring.ring_fd = -1;
		if (rc == -ENOSYS || rc == -EPERM)
			return shmbus_err(-ENOSYS, "io_uring is not available here (%s)",
					  strerror(-rc));
		return shmbus_err(rc, "io_uring_queue_init: %s", strerror(-rc));
	}
	w->up = 1;
	if (!shmbus_uring_futex_ok(&w->ring)) {
		shmbus_waiter_fini(w);
		return shmbus_err(-ENOSYS, "this kernel cannot wait on a futex through io_uring "
					   "(IORING_OP_FUTEX_WAIT, Linux 6.7): no fd to wait on");
	}
	return 0;
}

void shmbus_waiter_fini(struct shmbus_waiter *w)
{
	if (w->up)
		io_uring_queue_exit(&w->ring);
	w->up = 0;
	w->ring.ring_fd = -1;
}

static struct io_uring_sqe *sqe_get(struct shmbus_waiter *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe && shmbus_waiter_submit(w) == 0)
		sqe = io_uring_get_sqe(&w->ring);
	if (sqe)
		w->queued++;
	return sqe;
}

int shmbus_waiter_futex(struct shmbus_waiter *w, uint32_t *word, uint32_t val, uint32_t mask,
			uint64_t tag)
{
	struct io_uring_sqe *sqe = sqe_get(w);
	if (!sqe)
		return -EBUSY;
	shmbus_prep_futex_wait(sqe, word, val, mask);
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
}

int shmbus_waiter_poll(struct shmbus_waiter *w, int fd, uint64_t tag)
{
	struct io_uring_sqe *sqe = sqe_get(w);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
}

int shmbus_waiter_cancel(struct shmbus_waiter *w, uint64_t tag)
{
	struct io_uring_sqe *sqe = sqe_get(w);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_cancel64(sqe, tag, 0);
	io_uring_sqe_set_data64(sqe, SHMBUS_WAITER_CANCEL);
	return 0;
}

int shmbus_waiter_timer(struct shmbus_waiter *w, uint64_t ns)
{
	uint64_t at = shmbus_now_ns() + ns;
	if (w->timers && (w->due <= at || w->timers >= 2))
		return 0;
	struct io_uring_sqe *sqe = sqe_get(w);
	if (!sqe)
		return -EBUSY;
	struct __kernel_timespec *ts = &w->ts[w->timers];
	ts->tv_sec = (long long)(ns / 1000000000ull);
	ts->tv_nsec = (long long)(ns % 1000000000ull);
	io_uring_prep_timeout(sqe, ts, 0, 0);
	io_uring_sqe_set_data64(sqe, SHMBUS_WAITER_TIMER);
	if (!w->timers++)
		w->due_last = at;
	w->due = at;
	return 0;
}

int shmbus_waiter_submit(struct shmbus_waiter *w)
{
	if (!w->queued)
		return 0;
	int rc;
	do
		rc = io_uring_submit(&w->ring);
	while (rc == -EINTR);
	if (rc < 0)
		return rc;
	w->queued = 0;
	return 0;
}

int shmbus_waiter_reap(struct shmbus_waiter *w, void (*fn)(void *arg, uint64_t tag, int res),
		       void *arg)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&w->ring, head, cqe)
	{
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		n++;
		if (tag == SHMBUS_WAITER_TIMER) {
			/* The first to fire went; the other, if any, is taken to be the later. */
			if (--w->timers <= 0)
				w->timers = 0;
			w->due = w->due_last;
		} else if (tag != SHMBUS_WAITER_CANCEL && fn)
			fn(arg, tag, cqe->res);
	}
	io_uring_cq_advance(&w->ring, n);
	return (int)n;
}

int shmbus_waiter_wait(struct shmbus_waiter *w, int64_t timeout_ns)
{
	struct io_uring_cqe *cqe = NULL;
	struct __kernel_timespec ts, *tp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tp = &ts;
	}
	int rc = shmbus_waiter_submit(w);
	if (rc < 0)
		return rc;
	rc = io_uring_wait_cqe_timeout(&w->ring, &cqe, tp);
	if (rc == -ETIME)
		return -ETIMEDOUT;
	return rc < 0 ? rc : 0;
}
