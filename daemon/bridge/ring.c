/* SPDX-License-Identifier: MIT */
#include "daemon/bridge/ring.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus/intree.h"
#include "daemon/guard.h"
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

#define LOG_TOPIC "$sys.log"

/* Handles that could be neither used nor closed (br_keep): reachable, never freed. */
static void **kept;
static size_t nkept;

void br_keep(void *handle)
{
	void **n = realloc(kept, (nkept + 1) * sizeof(*kept));
	if (n) {
		kept = n;
		kept[nkept++] = handle;
	}
}

/* The library's close faults before it frees anything but what it also forgets (the
 * reader's copy buffer, the writer's group arrays): closing again against zeros is whole. */
void br_sub_close(struct bridge *b, shmbus_sub_t *s)
{
	if (!s)
		return;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		if (guard_detach(g.addr, b->bus_dir) == 0)
			shmbus_sub_close(s);
		else
			br_keep(s);
		return;
	}
	shmbus_sub_close(s);
	guard_leave(&g);
}

void br_pub_close(struct bridge *b, shmbus_pub_t *p)
{
	if (!p)
		return;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		if (guard_detach(g.addr, b->bus_dir) == 0)
			shmbus_pub_close(p);
		else
			br_keep(p);
		return;
	}
	shmbus_pub_close(p);
	guard_leave(&g);
}

void br_log_open(struct bridge *b)
{
	if (b->log)
		return;
	/* Read, not mapped: a truncated file has no generation, and is not opened. */
	uint64_t gen = shmbus_topic_generation(b->bus, LOG_TOPIC);
	if (!gen || gen == b->log_gen)
		return;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		/* Truncated while being opened: what the open had made is lost with it. */
		guard_detach(g.addr, b->bus_dir);
		b->log = NULL;
		return;
	}
	if (shmbus_pub_open(&b->log, b->bus, LOG_TOPIC) == 0)
		b->log_gen = gen;
	guard_leave(&g);
}

/* A fault while publishing on $sys.log: give it up; the conductor makes it again when it
 * next publishes there itself, and the next event opens the new one. */
static void log_drop(struct bridge *b, void *addr)
{
	shmbus_pub_t *p = b->log;
	b->log = NULL;
	if (guard_detach(addr, b->bus_dir) == 0)
		br_pub_close(b, p);
	else
		br_keep(p);
	fprintf(stderr, "shmbusd: bridge: %s was truncated; dropped until it is made again\n",
		LOG_TOPIC);
}

void br_event(struct bridge *b, const char *name, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	size_t n = event_vline(msg, sizeof(msg), name, fmt, ap);
	va_end(ap);
	br_log_open(b);
	if (!b->log)
		return;
	struct guard g;
	if (guard_enter(&g)) {
		guard_leave(&g);
		log_drop(b, g.addr);
		return;
	}
	/* Overwrite policy: never waits. */
	shmbus_publish(b->log, msg, n, 1);
	guard_leave(&g);
}

int br_topic_damaged(struct bridge *b, const char *name, void *addr, const char *during,
		     const char *who, const char *id, char *why, size_t whylen)
{
	int detached = guard_detach(addr, b->bus_dir) == 0;
	char esc[2 * SHMBUS_TOPIC_NAME_MAX + 2], eid[200];
	br_event(b, "topic_damaged",
		 "\"topic\":\"%s\",\"during\":\"%s\",\"error\":\"SIGBUS: the file was "
		 "truncated while mapped\",\"%s\":\"%s\",\"action\":\"dropped, attached again "
		 "once made again\"",
		 json_str(esc, sizeof(esc), name), during, who, json_str(eid, sizeof(eid), id));
	snprintf(why, whylen,
		 "topic '%s' damaged: its file was truncated; dropped until made again", name);
	return detached;
}
