/* SPDX-License-Identifier: MIT */
/*
 * A waiter: one io_uring whose fd a subscriber (shmbus_sub_fd()) or a sink hands out, so
 * that an event loop waits on it beside sockets. It holds the kernel's half of the
 * reader's sleep handshake (docs/algorithm.md, "Waking readers"): a futex wait per topic
 * wake word (IORING_OP_FUTEX_WAIT, Linux 6.7), queued only after the reader armed the word
 * and found nothing, plus a timer (every sleep is bounded) and, for a sink, a poll on its
 * inotify fd. A completion makes the fd readable; reaping them is a read of the shared
 * completion ring, no system call. Queueing is one io_uring_enter(), and only when the
 * reader is about to sleep.
 */
#ifndef SHMBUS_BUS_WAITER_H
#define SHMBUS_BUS_WAITER_H

#include <liburing.h>
#include <stdint.h>

/* Fill sqe with a wait for the shared futex word to change from val (bitset mask):
 * IORING_OP_FUTEX_WAIT, Linux 6.7; liburing 2.3 has neither the opcode nor a helper. The
 * bridge's loop uses it too (daemon/bridge/subwait.c). */
void shmbus_prep_futex_wait(struct io_uring_sqe *sqe, uint32_t *word, uint32_t val, uint32_t mask);

/* Does ring's kernel have IORING_OP_FUTEX_WAIT? */
int shmbus_uring_futex_ok(struct io_uring *ring);

struct shmbus_waiter {
	struct io_uring ring;
	int up;			/* the ring is set up */
	int timers;		/* timers queued */
	uint64_t due, due_last; /* when the first and the last of them fire (monotonic ns) */
	int queued;		/* SQEs not submitted yet */
	struct __kernel_timespec ts[2];
};

/* Tags (user_data) the waiter keeps for itself. */
#define SHMBUS_WAITER_TIMER UINT64_MAX
#define SHMBUS_WAITER_CANCEL (UINT64_MAX - 1)

/* Set up (entries: a size hint). 0, or -ENOSYS (no io_uring or no IORING_OP_FUTEX_WAIT:
 * the message says which), -ENOMEM, -EMFILE, with a message. */
int shmbus_waiter_init(struct shmbus_waiter *w, unsigned entries);
void shmbus_waiter_fini(struct shmbus_waiter *w);

static inline int shmbus_waiter_fd(const struct shmbus_waiter *w)
{
	return w->ring.ring_fd;
}

/* Queue (not submit) a wait for *word to change from val (futex bitset mask), tagged tag;
 * a poll for POLLIN on fd; a cancel of what is tagged tag; a timer firing in ns, unless one
 * queued fires by then (two at most). 0 or -EBUSY (no SQE free even after a submit). */
int shmbus_waiter_futex(struct shmbus_waiter *w, uint32_t *word, uint32_t val, uint32_t mask,
			uint64_t tag);
int shmbus_waiter_poll(struct shmbus_waiter *w, int fd, uint64_t tag);
int shmbus_waiter_cancel(struct shmbus_waiter *w, uint64_t tag);
int shmbus_waiter_timer(struct shmbus_waiter *w, uint64_t ns);

/* Submit what was queued (one io_uring_enter(), none if nothing was). 0 or -errno. */
int shmbus_waiter_submit(struct shmbus_waiter *w);

/* Take every completion there is: fn(arg, tag, res) for each but the waiter's own. No
 * system call. Returns how many there were. */
int shmbus_waiter_reap(struct shmbus_waiter *w, void (*fn)(void *arg, uint64_t tag, int res),
		       void *arg);

/* Submit, then sleep until a completion is there or timeout_ns (< 0: none) passed, without
 * taking it. 0 (one is there), -ETIMEDOUT, -EINTR. */
int shmbus_waiter_wait(struct shmbus_waiter *w, int64_t timeout_ns);

#endif
