/* SPDX-License-Identifier: MIT */
/*
 * The bridge thread (bridge.h): one io_uring for everything it waits on. In flight at any
 * time: a read of the eventfd (stop), a 100 ms housekeeping timeout, a read of an inotify
 * descriptor on the bus directory (topics come and go), per connection a connect or a
 * recv and a send, per idle topic a futex wait on its wake word, and the listener's
 * accept. Each turn handles every completion that is ready, then lets every mirror read
 * its topics and format what they hold into its connection's buffer, then submits all the
 * SQEs that produced with one io_uring_enter (which also waits for the next completion).
 *
 * This is the top of the bridge's modules (bridge.h draws them): it owns the mirrors,
 * imports and listener, dispatches completions to them by their struct br_op, and gives
 * each mirror its kind (redis_mirror_ops, ws_mirror_ops) by the URL's scheme.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "daemon/bridge/bridge.h"
#include "daemon/bridge/conn.h"
#include "daemon/bridge/mirror.h"
#include "daemon/bridge/redis_import.h"
#include "daemon/bridge/redis_mirror.h"
#include "daemon/bridge/ring.h"
#include "daemon/bridge/stats.h"
#include "daemon/bridge/subwait.h"
#include "daemon/bridge/ws_listener.h"
#include "daemon/bridge/ws_mirror.h"
#include "daemon/clock.h"

#define TICK_MS 100
#define SCAN_EVERY_MS 5000 /* rescan topics even when inotify says nothing */

/* ---- topics ------------------------------------------------------------------------------- */

struct scan_ctx {
	struct bridge *b;
};

static int scan_one(const char *name, void *arg)
{
	struct bridge *b = ((struct scan_ctx *)arg)->b;
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_offer(b->mirrors[i], name);
	return 0;
}

/* Topics that appeared are attached; those removed or made again are marked gone. */
static void scan_topics(struct bridge *b)
{
	b->rescan = 0;
	b->last_scan_ms = b->now_ms;
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_mark_gone(b->mirrors[i]);
	struct scan_ctx c = { b };
	shmbus_topic_foreach(b->bus, scan_one, &c);
	if (b->ws)
		wss_rescan(b->ws);
}

/* ---- housekeeping -------------------------------------------------------------------------- */

static void tick(struct bridge *b)
{
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_tick(b->mirrors[i]);
	for (size_t i = 0; i < b->nimports; i++)
		import_tick(b->imports[i]);
	if (b->ws)
		wss_tick(b->ws);
	if (b->rescan || b->now_ms - b->last_scan_ms >= SCAN_EVERY_MS)
		scan_topics(b);
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_reap(b->mirrors[i]);
	br_stats_update(b);
}

static void arm_tick(struct bridge *b)
{
	br_timeout(b, &b->tick_ts, TICK_MS, &b->tick_op);
	b->tick_armed = 1;
}

static void arm_wake(struct bridge *b)
{
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_read(sqe, b->wake_fd, &b->wake_buf, sizeof(b->wake_buf), 0);
	br_arm(b, sqe, &b->wake_op);
}

static void arm_inotify(struct bridge *b)
{
	if (b->ino_fd < 0)
		return;
	struct io_uring_sqe *sqe = br_sqe(b);
	io_uring_prep_read(sqe, b->ino_fd, b->ino_buf, sizeof(b->ino_buf), 0);
	br_arm(b, sqe, &b->ino_op);
	b->ino_armed = 1;
}

static void on_idle(struct bridge *b)
{
	b->idle_armed = 0;
	/* Timed poll: every idle topic is looked at again. */
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_poll(b->mirrors[i]);
	if (b->ws)
		wss_poll(b->ws);
}

static void dispatch(struct bridge *b, struct io_uring_cqe *cqe)
{
	struct br_op *op = io_uring_cqe_get_data(cqe);
	int res = cqe->res;
	b->inflight--;
	b->cqes++;
	if (!op)
		return;
	if (op->kind == BOP_SEND)
		b->sends--;
	switch (op->kind) {
	case BOP_WAKE:
		b->stop = 1;
		break;
	case BOP_TICK:
		b->tick_armed = 0;
		tick(b);
		if (!b->stop)
			arm_tick(b);
		break;
	case BOP_INOTIFY:
		b->ino_armed = 0;
		if (res > 0)
			b->rescan = 1;
		if (!b->stop && res > 0)
			arm_inotify(b);
		break;
	case BOP_IDLE:
		on_idle(b);
		break;
	case BOP_FUTEX:
		br_wait_done(op->owner, res);
		break;
	case BOP_ACCEPT:
		wss_accept(op->owner, res);
		break;
	case BOP_CANCEL:
		if (op->owner)
			bconn_complete(op, res);
		break;
	default:
		bconn_complete(op, res);
		break;
	}
}

/* Handle every completion that is there. */
static void reap_completions(struct bridge *b)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	io_uring_for_each_cqe(&b->ring, head, cqe)
	{
		seen++;
		dispatch(b, cqe);
	}
	io_uring_cq_advance(&b->ring, seen);
}

/* ---- the thread --------------------------------------------------------------------------- */

static void report_start(struct bridge *b, char ok)
{
	if (b->start_pipe[1] >= 0) {
		if (write(b->start_pipe[1], &ok, 1) < 0)
			perror("shmbusd: bridge start");
		close(b->start_pipe[1]);
		b->start_pipe[1] = -1;
	}
}

static int setup(struct bridge *b)
{
	const struct shmbusd_config *c = &b->cfg;
	/* One thread submits and reaps: tell the kernel, if it listens (6.0+). */
	struct io_uring_params pr;
	memset(&pr, 0, sizeof(pr));
	pr.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
	int rc = io_uring_queue_init_params(BR_RING_ENTRIES, &b->ring, &pr);
	if (rc < 0)
		rc = io_uring_queue_init(BR_RING_ENTRIES, &b->ring, 0);
	if (rc < 0) {
		fprintf(stderr, "shmbusd: bridge: io_uring_queue_init: %s\n", strerror(-rc));
		return -1;
	}
	b->futex_ok = br_wait_probe(b);
	if (shmbus_bus_open(&b->bus, c->bus) < 0) {
		fprintf(stderr, "shmbusd: bridge: %s\n", shmbus_errmsg());
		return -1;
	}
	br_log_open(b);
	if (!b->log)
		fprintf(stderr, "shmbusd: bridge: no $sys.log: %s\n", shmbus_errmsg());
	char host[64] = "localhost";
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(b->origin, sizeof(b->origin), "%.63s/%.60s", host, c->bus);
	if (br_stats_open(b, (unsigned)(c->nmirrors + c->nimports + (c->ws.enabled ? 1 : 0))) < 0)
		return -1;
	b->mirrors = calloc(c->nmirrors ? c->nmirrors : 1, sizeof(*b->mirrors));
	b->imports = calloc(c->nimports ? c->nimports : 1, sizeof(*b->imports));
	if (!b->mirrors || !b->imports)
		return -1;
	/* The kinds of mirror, by the URL's scheme. */
	for (size_t i = 0; i < c->nmirrors; i++) {
		const struct mirror_decl *d = &c->mirrors[i];
		struct mirror *m = mirror_new(
			b, d, d->to.scheme == BR_REDIS ? &redis_mirror_ops : &ws_mirror_ops);
		if (!m)
			return -1;
		b->mirrors[b->nmirrors++] = m;
	}
	for (size_t i = 0; i < c->nimports; i++) {
		struct import *im = import_new(b, &c->imports[i]);
		if (!im)
			return -1;
		b->imports[b->nimports++] = im;
	}
	if (c->ws.enabled && !(b->ws = wss_new(b)))
		return -1;
	b->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (b->ino_fd >= 0 &&
	    inotify_add_watch(b->ino_fd, b->bus_dir,
			      IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM) < 0) {
		close(b->ino_fd);
		b->ino_fd = -1;
	}
	return 0;
}

/* Stop everything, wait for the ring to give back every operation, free. */
static void teardown(struct bridge *b)
{
	b->stop = 1;
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_stop(b->mirrors[i]);
	for (size_t i = 0; i < b->nimports; i++)
		import_stop(b->imports[i]);
	if (b->ws)
		wss_stop(b->ws);
	/* Everything else in flight (tick, inotify, wake, idle, waits): cancel all. */
	br_cancel(b, NULL, IORING_ASYNC_CANCEL_ANY);
	uint64_t deadline = shmbusd_now_ms() + 3000;
	while (b->inflight && shmbusd_now_ms() < deadline) {
		struct __kernel_timespec ts = { 0, 50000000 };
		struct io_uring_cqe *cqe;
		br_submit(b, 0);
		if (io_uring_wait_cqe_timeout(&b->ring, &cqe, &ts) < 0) {
			/* Ask again: something armed after the first cancel. */
			br_cancel(b, NULL, IORING_ASYNC_CANCEL_ANY);
			continue;
		}
		reap_completions(b);
	}
	int drained = b->inflight == 0;
	if (!drained)
		fprintf(stderr, "shmbusd: bridge: %llu operations still in flight at exit\n",
			(unsigned long long)b->inflight);
	io_uring_queue_exit(&b->ring);
	if (!drained)
		return; /* the kernel may still own buffers: leak rather than free them */
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_free(b->mirrors[i]);
	free(b->mirrors);
	b->mirrors = NULL;
	for (size_t i = 0; i < b->nimports; i++)
		import_free(b->imports[i]);
	free(b->imports);
	b->imports = NULL;
	if (b->ws)
		wss_free(b->ws);
	b->ws = NULL;
	if (b->ino_fd >= 0)
		close(b->ino_fd);
	br_stats_update(b);
	br_stats_close(b);
}

static void *bridge_main(void *arg)
{
	struct bridge *b = arg;
	b->now_ms = shmbusd_now_ms();
	if (setup(b) < 0) {
		report_start(b, 'n');
		return NULL;
	}
	/* The mirrors' readers join their groups (and renew their leases) before the daemon
	 * says it runs: a restarted daemon takes over from the one before at once. */
	scan_topics(b);
	report_start(b, 'y');
	br_event(b, "bridge_start",
		 "\"mirrors\":%zu,\"imports\":%zu,\"websocket\":%s,"
		 "\"futex_wait\":%s",
		 b->nmirrors, b->nimports, b->ws ? "true" : "false",
		 b->futex_ok ? "true" : "false");
	arm_wake(b);
	arm_tick(b);
	arm_inotify(b);
	for (size_t i = 0; i < b->nmirrors; i++)
		mirror_start(b->mirrors[i]);
	for (size_t i = 0; i < b->nimports; i++)
		import_start(b->imports[i]);
	while (!b->stop) {
		b->now_ms = shmbusd_now_ms();
		for (size_t i = 0; i < b->nmirrors; i++)
			mirror_fill(b->mirrors[i]);
		for (size_t i = 0; i < b->nimports; i++)
			import_work(b->imports[i]);
		if (b->ws)
			wss_work(b->ws);
		if (b->rescan) {
			scan_topics(b);
			continue;
		}
		/* Completions already there are handled without waiting; otherwise one enter
		 * submits everything queued this turn and waits for the next completion. */
		/* Under load, wait for as many completions as are on their way (sends in
		 * flight, peers owing replies), for at most ~1 ms (br_submit_batch): the next
		 * turn then re-arms them all with one enter. A batch wait that found nothing
		 * means the peers are slow, not busy: the next wait is a plain one (no
		 * spinning). */
		unsigned expect = b->sends;
		for (size_t i = 0; i < b->nmirrors; i++)
			expect += mirror_expect(b->mirrors[i]);
		int rc;
		if (io_uring_cq_ready(&b->ring)) {
			/* Completions are waiting: handle them first; what this turn queued
			 * goes with the next enter (sooner only if the SQ ring fills up). */
			rc = io_uring_sq_ready(&b->ring) >= BR_RING_ENTRIES / 2 ? br_submit(b, 0) :
										  0;
		} else if (expect >= 2 && !b->batch_idle) {
			rc = br_submit_batch(b, expect < 32 ? expect : 32);
			b->batch_idle = !io_uring_cq_ready(&b->ring);
		} else {
			rc = br_submit(b, 1);
			b->batch_idle = 0;
		}
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
			fprintf(stderr, "shmbusd: bridge: io_uring_enter: %s\n", strerror(-rc));
			usleep(1000);
		}
		reap_completions(b);
	}
	br_event(b, "bridge_stop", "\"enters\":%llu,\"sqes\":%llu", (unsigned long long)b->enters,
		 (unsigned long long)b->sqes);
	teardown(b);
	return NULL;
}

/* ---- the conductor's side ---------------------------------------------------------------- */

int bridge_config_changed(const struct shmbusd_config *a, const struct shmbusd_config *b)
{
	if (a->bridge_len != b->bridge_len)
		return 1;
	return a->bridge_len && memcmp(a->bridge_text, b->bridge_text, a->bridge_len) != 0;
}

static void bridge_free(struct bridge *b)
{
	if (b->bus) {
		br_pub_close(b, b->log);
		shmbus_bus_close(b->bus);
	}
	if (b->wake_fd >= 0)
		close(b->wake_fd);
	if (b->start_pipe[0] >= 0)
		close(b->start_pipe[0]);
	if (b->start_pipe[1] >= 0)
		close(b->start_pipe[1]);
	config_free(&b->cfg);
	free(b);
}

int bridge_start(struct bridge **out, const struct shmbusd_config *cfg, const char *bus_dir)
{
	*out = NULL;
	if (!config_has_bridge(cfg))
		return 0;
	struct bridge *b = calloc(1, sizeof(*b));
	if (!b)
		return -1;
	b->wake_fd = -1;
	b->ino_fd = -1;
	b->start_pipe[0] = b->start_pipe[1] = -1;
	b->wake_op = (struct br_op){ BOP_WAKE, b };
	b->tick_op = (struct br_op){ BOP_TICK, b };
	b->ino_op = (struct br_op){ BOP_INOTIFY, b };
	b->idle_op = (struct br_op){ BOP_IDLE, b };
	snprintf(b->bus_dir, sizeof(b->bus_dir), "%s", bus_dir);
	if (bridge_config_copy(&b->cfg, cfg) < 0 || (b->wake_fd = eventfd(0, EFD_CLOEXEC)) < 0 ||
	    pipe2(b->start_pipe, O_CLOEXEC) < 0) {
		fprintf(stderr, "shmbusd: bridge: %s\n", strerror(errno ? errno : ENOMEM));
		bridge_free(b);
		return -1;
	}
	int rc = pthread_create(&b->thread, NULL, bridge_main, b);
	if (rc) {
		fprintf(stderr, "shmbusd: bridge: pthread_create: %s\n", strerror(rc));
		bridge_free(b);
		return -1;
	}
	char ok = 0;
	ssize_t n;
	while ((n = read(b->start_pipe[0], &ok, 1)) < 0 && errno == EINTR)
		;
	if (n != 1 || ok != 'y') {
		pthread_join(b->thread, NULL);
		bridge_free(b);
		return -1;
	}
	*out = b;
	return 0;
}

void bridge_stop(struct bridge *b)
{
	if (!b)
		return;
	uint64_t one = 1;
	if (write(b->wake_fd, &one, sizeof(one)) < 0)
		perror("shmbusd: bridge stop");
	pthread_join(b->thread, NULL);
	bridge_free(b);
}
