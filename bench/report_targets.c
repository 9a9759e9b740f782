/* SPDX-License-Identifier: MIT */
/*
 * The targets shmbus sets itself, as ratios to its peers (or absolute figures) measured in
 * this one run: built from the cases' figures, then printed in plain words as MET, MISSED
 * or UNKNOWN, with what else the run says about each (how far the bare ring gets).
 */
#include <math.h>
#include <stdlib.h>

#include "report.h"

/* The next target of the list: a list longer than MAX_TARGETS is this file's bug. */
static struct target *target_next(struct targets *tg)
{
	if (tg->n == MAX_TARGETS) {
		fprintf(stderr, "shmbus-bench: more targets than MAX_TARGETS (report.h)\n");
		abort();
	}
	return &tg->t[tg->n++];
}

static void target_ratio(struct targets *tg, const struct suite *s, const char *id,
			 const char *what, int a, int b, enum metric m, int at_most, double want)
{
	struct target *t = target_next(tg);

	*t = (struct target){
		.id = id, .what = what, .a = a, .b = b, .m = m, .at_most = at_most, .want = want
	};
	if (a < 0 || b < 0)
		return; /* not in this run's case list: not reported */
	if (case_status(s, a) || case_status(s, b)) {
		t->why_unknown = case_status(s, a) ? s->res[a].why : s->res[b].why;
		return;
	}
	t->got = case_ratio(s, a, b, m, &t->pairs, &t->lo, &t->hi);
	t->known = !isnan(t->got);
}

static void target_abs(struct targets *tg, const struct suite *s, const char *id, const char *what,
		       int a, enum metric m, double want)
{
	struct target *t = target_next(tg);

	*t = (struct target){
		.id = id, .what = what, .a = a, .b = -1, .m = m, .at_most = 1, .want = want
	};
	if (a < 0)
		return;
	if (case_status(s, a)) {
		t->why_unknown = s->res[a].why;
		t->b = -2;
		return;
	}
	t->b = -2; /* absolute */
	t->got = case_med(s, a, m, &t->lo, &t->hi);
	t->known = !isnan(t->got);
}

/*
 * Where a target compares shmbus with a SPSC peer, what the bare ring (the least a
 * shared-memory channel does) reaches against the same peer in the same run: a target
 * above it is out of any shared-memory design's reach on this machine.
 */
static void context_ring(const struct suite *s, struct target *t, uint32_t size)
{
	int ring = case_find_spsc(s, PEER_RING, size), pairs;

	if (ring < 0 || t->b < 0 || case_status(s, ring))
		return;
	double r = case_ratio(s, ring, t->b, MT_MSGS, &pairs, NULL, NULL);
	if (!isnan(r))
		snprintf(t->context, sizeof(t->context), "the bare ring itself reaches %s here",
			 fmt_ratio(r).s);
}

int target_met(const struct target *t)
{
	return t->known && (t->at_most ? t->got <= t->want : t->got >= t->want);
}

/* Instructions per message against the bare ring's: from callgrind, not from a case. */
static void target_cpu(struct targets *tg, const struct suite *s)
{
	struct target *t = target_next(tg);

	*t = (struct target){ .id = "instructions_vs_bare_ring",
			      .what = "instructions per 64 B publish + recv, shmbus over the bare "
				      "ring's",
			      .a = s->cpu_ok ? 0 : -1,
			      .b = -3,
			      .at_most = 1,
			      .want = 3 };
	if (s->cpu_ok) {
		if (s->cpu[0].ok && s->cpu[1].ok && s->cpu[1].per_msg > 0) {
			t->got = s->cpu[0].per_msg / s->cpu[1].per_msg;
			t->lo = t->hi = t->got;
			t->known = 1;
		} else {
			t->why_unknown = s->cpu[0].ok ? s->cpu[1].err : s->cpu[0].err;
		}
	} else if (strcmp(s->cpu_why, "not selected")) {
		t->a = 0;
		t->why_unknown = s->cpu_why;
	}
}

/*
 * Where a fan-out or group target compares shmbus with a peer, what shmbus spent on each
 * message it published in that case: futex wakes and CPU (all its processes').
 */
static void context_cost(const struct suite *s, struct target *t)
{
	if (t->a < 0 || case_status(s, t->a))
		return;
	double w = case_med(s, t->a, MT_WAKEUPS, NULL, NULL),
	       cpu = case_med(s, t->a, MT_CPU, NULL, NULL);
	if (!isnan(w) && w >= 0 && !isnan(cpu))
		snprintf(t->context, sizeof(t->context),
			 "shmbus: %.3f futex wakes per message published, %s of CPU per message "
			 "read",
			 w, fmt_ns(cpu).s);
}

/*
 * Many readers on few CPUs (issue 13): fan-out to 2 and 4 subscribers and groups of 2 and
 * 4 members against ZeroMQ in the same run, each in the metric its table prints (the
 * publisher's msg/s for fan-out, what all members took for a group); and the overwrite
 * policy, its publisher paced at a rate the readers can keep up with, losing nothing.
 */
static void targets_many_readers(struct targets *tg, const struct suite *s)
{
	static const struct {
		enum scenario sc;
		int n;
		enum metric m;
		const char *id, *what;
	} mr[] = {
		{ SC_FANOUT, 2, MT_PUB, "fanout2_vs_zeromq",
		  "fan-out 64 B to 2 subscribers, shmbus publisher msg/s over ZeroMQ ipc's" },
		{ SC_FANOUT, 4, MT_PUB, "fanout4_vs_zeromq",
		  "fan-out 64 B to 4 subscribers, shmbus publisher msg/s over ZeroMQ ipc's" },
		{ SC_GROUP, 2, MT_MSGS, "group2_vs_zeromq",
		  "group of 2 members, 64 B, shmbus msg/s taken by all members over ZeroMQ ipc's" },
		{ SC_GROUP, 4, MT_MSGS, "group4_vs_zeromq",
		  "group of 4 members, 64 B, shmbus msg/s taken by all members over ZeroMQ ipc's" },
	};
	for (size_t k = 0; k < sizeof(mr) / sizeof(mr[0]); k++) {
		target_ratio(tg, s, mr[k].id, mr[k].what,
			     case_find(s, mr[k].sc, PEER_SHMBUS, 64, 1, mr[k].n, 0),
			     case_find(s, mr[k].sc, PEER_ZMQ, 64, 1, mr[k].n, 0), mr[k].m, 0, 3);
		context_cost(s, &tg->t[tg->n - 1]);
	}
	_Static_assert(PACED_FANOUT_RATE == 200000, "the target's text says 200 k msg/s");
	int paced = case_find(s, SC_FANOUT, PEER_SHMBUS_OVW, 64, 1, 4, PACED_FANOUT_RATE);
	target_abs(tg, s, "overwrite_fanout4_paced_lost",
		   "fan-out 64 B to 4 subscribers, overwrite policy, publisher paced at 200 k "
		   "msg/s: fraction of the messages lost",
		   paced, MT_LOST, 0);
	if (paced >= 0 && !case_status(s, paced)) {
		struct target *t = &tg->t[tg->n - 1];

		snprintf(t->context, sizeof(t->context),
			 "the publisher kept %s msg/s; each subscriber read %s msg/s",
			 fmt_msgs(case_med(s, paced, MT_PUB, NULL, NULL)).s,
			 fmt_msgs(case_med(s, paced, MT_MSGS, NULL, NULL)).s);
	}
}

/*
 * Acknowledged groups (issue 15): members that ack every message, 64 B, against the same
 * group without acks and against Redis Streams XREADGROUP + XACK (pipelined), in the same
 * run; what all members took, msg/s.
 */
static void targets_acks(struct targets *tg, const struct suite *s)
{
	static const struct {
		int n;
		enum peer_id peer;
		double want;
		const char *id, *what;
	} ak[] = {
		{ 2, PEER_SHMBUS, 0.5, "group2_ack_vs_noack",
		  "group of 2 acking members, 64 B, shmbus msg/s with acks over without" },
		{ 4, PEER_SHMBUS, 0.5, "group4_ack_vs_noack",
		  "group of 4 acking members, 64 B, shmbus msg/s with acks over without" },
		{ 2, PEER_REDIS_XACK_PIPE, 5, "group2_ack_vs_redis",
		  "group of 2 acking members, 64 B, shmbus msg/s over Redis Streams XREADGROUP + "
		  "XACK (pipelined)" },
		{ 4, PEER_REDIS_XACK_PIPE, 5, "group4_ack_vs_redis",
		  "group of 4 acking members, 64 B, shmbus msg/s over Redis Streams XREADGROUP + "
		  "XACK (pipelined)" },
	};
	for (size_t k = 0; k < sizeof(ak) / sizeof(ak[0]); k++) {
		target_ratio(tg, s, ak[k].id, ak[k].what,
			     case_find(s, SC_GROUP, PEER_SHMBUS_ACK, 64, 1, ak[k].n, 0),
			     case_find(s, SC_GROUP, ak[k].peer, 64, 1, ak[k].n, 0), MT_MSGS, 0,
			     ak[k].want);
		context_cost(s, &tg->t[tg->n - 1]);
	}
}

/* Blocking wake-ups against a raw futex ping-pong and against iceoryx (its readers on a
 * wait set), both pinnings. */
static void targets_wakeup(struct targets *tg, const struct suite *s)
{
	static const struct {
		enum pin pin;
		enum peer_id peer;
		double want;
		const char *id, *what;
	} w[] = {
		{ PIN_SPLIT, PEER_FUTEX, 1.2, "wakeup_vs_raw_futex",
		  "wake-up on different CPUs, shmbus blocking round trip p50 over a raw futex "
		  "ping-pong's" },
		{ PIN_SAME, PEER_FUTEX, 1.2, "wakeup_same_cpu_vs_raw_futex",
		  "wake-up on one CPU, shmbus blocking round trip p50 over a raw futex "
		  "ping-pong's" },
		{ PIN_SPLIT, PEER_ICEORYX, 1, "wakeup_vs_iceoryx",
		  "wake-up on different CPUs, shmbus blocking round trip p50 over iceoryx's" },
		{ PIN_SAME, PEER_ICEORYX, 1, "wakeup_same_cpu_vs_iceoryx",
		  "wake-up on one CPU, shmbus blocking round trip p50 over iceoryx's" },
	};
	for (int k = 0; k < (int)(sizeof(w) / sizeof(w[0])); k++)
		target_ratio(tg, s, w[k].id, w[k].what,
			     case_find_pin(s, SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, w[k].pin),
			     case_find_pin(s, SC_WAKEUP, w[k].peer, 64, 1, 1, 0, w[k].pin), MT_P50,
			     1, w[k].want);
}

/*
 * Brokered mode (issue 14), against the same cases on the file-mode bus in the same run:
 * SPSC throughput and ping-pong latency within noise of file mode, and an open (publisher
 * or subscriber, with its close) within 1 ms at p99.
 */
static void targets_brokered(struct targets *tg, const struct suite *s)
{
	int pp = case_find(s, SC_PINGPONG, PEER_BROKERED, 64, 1, 1, 0),
	    ppf = case_find(s, SC_PINGPONG, PEER_SHMBUS, 64, 1, 1, 0);

	target_ratio(tg, s, "brokered_spsc_vs_file",
		     "SPSC 64 B, shmbus msg/s on a brokered bus over on a file-mode bus",
		     case_find_spsc(s, PEER_BROKERED, 64), case_find_spsc(s, PEER_SHMBUS, 64),
		     MT_MSGS, 0, 0.9);
	target_ratio(tg, s, "brokered_pingpong_p50_vs_file",
		     "ping-pong 64 B, shmbus p50 on a brokered bus over on a file-mode bus", pp,
		     ppf, MT_P50, 1, 1.1);
	if (pp >= 0 && ppf >= 0 && !case_status(s, pp) && !case_status(s, ppf)) {
		int pairs;
		double r = case_ratio(s, pp, ppf, MT_P99, &pairs, NULL, NULL);

		snprintf(tg->t[tg->n - 1].context, sizeof(tg->t[tg->n - 1].context),
			 "p99: brokered over file %s", fmt_ratio(r).s);
	}

	/* The open: the worse of the publisher's and the subscriber's (each the median of
	 * the rounds' p99), in ms. */
	struct target *t = target_next(tg);
	int ob[2] = { case_find(s, SC_OPEN, PEER_BROKERED, 64, 1, 0, 0),
		      case_find(s, SC_OPEN, PEER_BROKERED, 64, 0, 1, 0) };
	int of[2] = { case_find(s, SC_OPEN, PEER_SHMBUS, 64, 1, 0, 0),
		      case_find(s, SC_OPEN, PEER_SHMBUS, 64, 0, 1, 0) };
	double p99[2] = { NAN, NAN }, lo[2] = { NAN, NAN }, hi[2] = { NAN, NAN };

	*t = (struct target){ .id = "brokered_open_p99_ms",
			      .what = "open + close of a publisher or a subscriber on a brokered "
				      "bus, p99 (the worse of the two)",
			      .a = ob[0] >= 0 ? ob[0] : ob[1],
			      .b = -2,
			      .at_most = 1,
			      .want = 1,
			      .unit = "ms" };
	if (t->a < 0)
		return;
	for (int k = 0; k < 2; k++) {
		if (ob[k] < 0)
			continue;
		if (case_status(s, ob[k])) {
			t->a = ob[k];
			t->why_unknown = s->res[ob[k]].why;
			return;
		}
		p99[k] = case_med(s, ob[k], MT_P99, &lo[k], &hi[k]) / 1e6;
	}
	int w = isnan(p99[0]) || (!isnan(p99[1]) && p99[1] > p99[0]);
	t->a = ob[w];
	t->got = p99[w];
	t->lo = lo[w] / 1e6;
	t->hi = hi[w] / 1e6;
	t->known = !isnan(t->got);
	int n = snprintf(t->context, sizeof(t->context), "p99 publisher %s, subscriber %s",
			 fmt_ns(p99[0] * 1e6).s, fmt_ns(p99[1] * 1e6).s);
	if (of[0] >= 0 && of[1] >= 0 && !case_status(s, of[0]) && !case_status(s, of[1]) && n > 0)
		snprintf(t->context + n, sizeof(t->context) - (size_t)n,
			 "; on the file-mode bus %s, %s",
			 fmt_ns(case_med(s, of[0], MT_P99, NULL, NULL)).s,
			 fmt_ns(case_med(s, of[1], MT_P99, NULL, NULL)).s);
}

/*
 * Sinks and fds (issue 16), against shmbus (block) in the same rounds: a sink over 8
 * topics, its one publisher process writing them in turn, against one subscriber of one
 * topic (SPSC, its one publisher process), msg/s in all; the wake-up of a reader asleep in
 * epoll_wait() on its fd (a subscriber's, a sink's) against one asleep in shmbus_recv() on
 * the futex, p50 round trip, on two CPUs and on one; and the syscalls per message (of both
 * processes) of a sink, or of an epoll loop, that keeps up with a publisher paced at
 * 1 M msg/s (the sink's 8 topics 125 k msg/s each).
 */
static void targets_sinks(struct targets *tg, const struct suite *s)
{
	target_ratio(
		tg, s, "sink8_vs_sub",
		"a sink over 8 topics (1 publisher writing them in turn), 64 B, msg/s over one "
		"subscriber of one topic's (SPSC)",
		case_find_spsc(s, PEER_SHMBUS_SINK, 64), case_find_spsc(s, PEER_SHMBUS, 64),
		MT_MSGS, 0, 0.8);
	/* One publisher writing 8 rings in turn is not one writing 1: what the sink's reader
	 * costs alone is a sink over the subscriber's one topic. */
	int one = case_find_spsc(s, PEER_SHMBUS_SINK1, 64),
	    sub = case_find_spsc(s, PEER_SHMBUS, 64);
	if (tg->t[tg->n - 1].a >= 0 && one >= 0 && sub >= 0 && !case_status(s, one) &&
	    !case_status(s, sub)) {
		int pairs;
		double lo, hi, r = case_ratio(s, one, sub, MT_MSGS, &pairs, &lo, &hi);

		snprintf(
			tg->t[tg->n - 1].context, sizeof(tg->t[tg->n - 1].context),
			"a sink over the subscriber's 1 topic: %.15s of its msg/s; rounds %.15s .. %.15s",
			fmt_ratio(r).s, fmt_ratio(lo).s, fmt_ratio(hi).s);
	}
	static const struct {
		enum peer_id peer;
		enum pin pin;
		const char *id, *what;
	} w[] = {
		{ PEER_SHMBUS_FD, PIN_SPLIT, "fd_wakeup_vs_futex",
		  "wake-up on different CPUs, a subscriber asleep in epoll on shmbus_sub_fd(): round "
		  "trip p50 over asleep in shmbus_recv()" },
		{ PEER_SHMBUS_FD, PIN_SAME, "fd_wakeup_same_cpu_vs_futex",
		  "wake-up on one CPU, a subscriber asleep in epoll on shmbus_sub_fd(): round trip "
		  "p50 over asleep in shmbus_recv()" },
		{ PEER_SHMBUS_SINK_FD, PIN_SPLIT, "sink_fd_wakeup_vs_futex",
		  "wake-up on different CPUs, a sink (8 topics) asleep in epoll on shmbus_sink_fd(): "
		  "round trip p50 over a subscriber asleep in shmbus_recv()" },
		{ PEER_SHMBUS_SINK_FD, PIN_SAME, "sink_fd_wakeup_same_cpu_vs_futex",
		  "wake-up on one CPU, a sink (8 topics) asleep in epoll on shmbus_sink_fd(): round "
		  "trip p50 over a subscriber asleep in shmbus_recv()" },
	};
	for (size_t k = 0; k < sizeof(w) / sizeof(w[0]); k++) {
		int a = case_find_pin(s, SC_WAKEUP, w[k].peer, 64, 1, 1, 0, w[k].pin),
		    b = case_find_pin(s, SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, w[k].pin);

		target_ratio(tg, s, w[k].id, w[k].what, a, b, MT_P50, 1, 1.5);
		/* The tail: a wake-up lost and made good by the reader's bounded sleep (at
		 * most 100 ms) shows at p99.9 and max, not at p50. */
		if (a >= 0 && b >= 0 && s->res[a].h && s->res[b].h)
			snprintf(tg->t[tg->n - 1].context, sizeof(tg->t[tg->n - 1].context),
				 "p99.9 %.15s, max %.15s; asleep in shmbus_recv(): %.15s, %.15s",
				 fmt_ns((double)hist_quantile(s->res[a].h, 0.999)).s,
				 fmt_ns((double)s->res[a].h->max).s,
				 fmt_ns((double)hist_quantile(s->res[b].h, 0.999)).s,
				 fmt_ns((double)s->res[b].h->max).s);
	}
	static const struct {
		enum peer_id peer;
		const char *id, *what;
	} sys[] = {
		{ PEER_SHMBUS_SINK, "sink_syscalls_per_msg",
		  "syscalls per message, a sink reading 8 busy topics (1 M msg/s in all) with "
		  "shmbus_sink_recv()" },
		{ PEER_SHMBUS_SINK_FD, "sink_fd_syscalls_per_msg",
		  "syscalls per message, a sink reading 8 busy topics (1 M msg/s in all) in an epoll "
		  "loop on its fd" },
		{ PEER_SHMBUS_FD, "fd_syscalls_per_msg",
		  "syscalls per message, a subscriber (1 M msg/s) in an epoll loop on its fd" },
	};
	for (size_t k = 0; k < sizeof(sys) / sizeof(sys[0]); k++) {
		int a = case_find(s, SC_SYSCALLS, sys[k].peer, 64, 1, 1, 1000000),
		    full = case_find(s, SC_SYSCALLS, sys[k].peer, 64, 1, 1, 0);

		target_abs(tg, s, sys[k].id, sys[k].what, a, MT_SYSCALLS, 0.001);
		if (a < 0 || case_status(s, a))
			continue;
		/* A reader that keeps up never makes the publisher wait for space: one that
		 * did fell behind (a stall), and slept less for it. */
		struct target *t = &tg->t[tg->n - 1];
		double bp = case_med(s, a, MT_BP, NULL, NULL);
		int n = snprintf(t->context, sizeof(t->context),
				 "%.4f futex wakes per message; the publisher waited for space "
				 "%.2g times per message%s",
				 case_med(s, a, MT_WAKEUPS, NULL, NULL), bp,
				 bp > 0 ? " (the reader fell behind)" : "");
		if (full >= 0 && !case_status(s, full) && n > 0 && (size_t)n < sizeof(t->context))
			snprintf(t->context + n, sizeof(t->context) - (size_t)n,
				 "; as fast as it goes: %.4f syscalls per message",
				 case_med(s, full, MT_SYSCALLS, NULL, NULL));
	}
}

void targets_build(struct targets *tg, const struct suite *s)
{
	tg->n = 0;
	int s64 = case_find_spsc(s, PEER_SHMBUS, 64);

	target_ratio(tg, s, "spsc64_vs_bare_ring", "SPSC 64 B, shmbus msg/s over the bare ring's",
		     s64, case_find_spsc(s, PEER_RING, 64), MT_MSGS, 0, 0.5);
	target_ratio(tg, s, "spsc64_vs_unix_socket",
		     "SPSC 64 B, shmbus msg/s over a Unix socket's (seqpacket, one message per "
		     "send)",
		     s64, case_find_spsc(s, PEER_UNIX, 64), MT_MSGS, 0, 50);
	target_ratio(tg, s, "spsc64_vs_zeromq",
		     "SPSC 64 B, shmbus msg/s over ZeroMQ ipc:// PUSH/PULL", s64,
		     case_find_spsc(s, PEER_ZMQ, 64), MT_MSGS, 0, 10);
	target_ratio(tg, s, "spsc64_vs_redis_pubsub",
		     "SPSC 64 B, shmbus msg/s over Redis Pub/Sub (pipelined PUBLISH, its best)",
		     s64, case_find_spsc(s, PEER_REDIS_PUB_PIPE, 64), MT_MSGS, 0, 100);
	for (int k = tg->n - 3; k < tg->n; k++)
		context_ring(s, &tg->t[k], 64);
	static const uint32_t big[] = { 16384, 65536, 1048576 };
	static const char *const bid[] = { "bw16k_vs_memcpy", "bw64k_vs_memcpy", "bw1m_vs_memcpy" };
	static const char *const bwhat[] = {
		"16 KiB, shmbus bandwidth over memcpy's (cache-resident)",
		"64 KiB, shmbus bandwidth over memcpy's (cache-resident)",
		"1 MiB, shmbus bandwidth over memcpy's (cache-resident)",
	};
	static const char *const did[] = { "bw16k_vs_memcpy_dram", "bw64k_vs_memcpy_dram",
					   "bw1m_vs_memcpy_dram" };
	static const char *const dwhat[] = {
		"16 KiB, shmbus bandwidth over memcpy's through buffers > LLC",
		"64 KiB, shmbus bandwidth over memcpy's through buffers > LLC",
		"1 MiB, shmbus bandwidth over memcpy's through buffers > LLC",
	};
	for (int k = 0; k < 3; k++) {
		int a = case_find_spsc(s, PEER_SHMBUS, big[k]);

		target_ratio(tg, s, bid[k], bwhat[k], a, case_find_spsc(s, PEER_MEMCPY, big[k]),
			     MT_MSGS, 0, 0.5);
		target_ratio(tg, s, did[k], dwhat[k], a,
			     case_find_spsc(s, PEER_MEMCPY_DRAM, big[k]), MT_MSGS, 0, 0.5);
		context_ring(s, &tg->t[tg->n - 2], big[k]);
		context_ring(s, &tg->t[tg->n - 1], big[k]);
	}
	int pp = case_find(s, SC_PINGPONG, PEER_SHMBUS, 64, 1, 1, 0),
	    ppr = case_find(s, SC_PINGPONG, PEER_RING, 64, 1, 1, 0);
	target_ratio(tg, s, "pingpong_p50_vs_bare_ring",
		     "ping-pong 64 B, shmbus p50 over the bare ring's", pp, ppr, MT_P50, 1, 1.5);
	target_ratio(tg, s, "pingpong_p99_vs_bare_ring",
		     "ping-pong 64 B, shmbus p99 over the bare ring's", pp, ppr, MT_P99, 1, 3);
	target_ratio(tg, s, "mpsc2_vs_spsc",
		     "MPSC 64 B, 2 publishers' msg/s over 1 publisher's (SPSC)",
		     case_find(s, SC_MPSC, PEER_SHMBUS, 64, 2, 1, 0),
		     case_find(s, SC_MPSC, PEER_SHMBUS, 64, 1, 1, 0), MT_MSGS, 0, 0.5);
	target_ratio(tg, s, "fanout4_vs_spsc",
		     "fan-out 64 B, publisher msg/s with 4 subscribers over with 1 (SPSC)",
		     case_find(s, SC_FANOUT, PEER_SHMBUS, 64, 1, 4, 0),
		     case_find(s, SC_FANOUT, PEER_SHMBUS, 64, 1, 1, 0), MT_PUB, 0, 0.8);
	if (s->m.nproc < 5)
		snprintf(tg->t[tg->n - 1].context, sizeof(tg->t[tg->n - 1].context),
			 "5 busy processes share %ld CPUs: 4 readers each read every message",
			 s->m.nproc);
	targets_many_readers(tg, s);
	targets_wakeup(tg, s);
	targets_brokered(tg, s);
	targets_acks(tg, s);
	targets_sinks(tg, s);
	static const struct {
		uint32_t rate;
		const char *id, *what;
	} sys[] = {
		{ 0, "syscalls_full_speed", "syscalls per message, publisher as fast as it goes" },
		{ 1000000, "syscalls_1m", "syscalls per message at 1 M msg/s" },
		{ 100000, "syscalls_100k", "syscalls per message at 100 k msg/s" },
	};
	for (int k = 0; k < 3; k++)
		target_abs(tg, s, sys[k].id, sys[k].what,
			   case_find(s, SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, sys[k].rate),
			   MT_SYSCALLS, 0.01);
	target_cpu(tg, s);
}

int targets_print(const struct report *rp, const struct targets *tg)
{
	int missed = 0;

	rprintf(rp,
		"\n== Targets (on this machine, as ratios from this one run; a ratio is the median of "
		"the per-round ratios) ==\n");
	for (int k = 0; k < tg->n; k++) {
		const struct target *t = &tg->t[k];
		char want[64], got[64];

		if (t->a < 0 || t->b == -1)
			continue; /* its cases were not part of this run */
		snprintf(want, sizeof(want), "%s %g%s%s", t->at_most ? "at most" : "at least",
			 t->want,
			 t->unit    ? " " :
			 t->b == -2 ? "" :
				      "x",
			 t->unit ? t->unit : "");
		if (!t->known) {
			rprintf(rp, "UNKNOWN  %s: not measured (%s); target %s\n", t->what,
				t->why_unknown ? t->why_unknown : "no figure", want);
			missed++;
			continue;
		}
		if (t->b == -2 && t->got > 0 && t->got < 0.0005)
			snprintf(got, sizeof(got), "%.2g", t->got); /* not 0.0000 when not 0 */
		else if (t->b == -2)
			snprintf(got, sizeof(got), "%.4f", t->got);
		else
			snprintf(got, sizeof(got), "%s", fmt_ratio(t->got).s);
		if (t->unit)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), " %s", t->unit);
		if (target_met(t)) {
			rprintf(rp, "MET      %s: %s (target %s)", t->what, got, want);
		} else {
			missed++;
			rprintf(rp, "MISSED   %s: %s, the target is %s", t->what, got, want);
			if (t->b != -2 && t->got > 0) {
				double by = t->at_most ? t->got / t->want : t->want / t->got;

				rprintf(rp, " (%s short)", fmt_ratio(by).s);
			}
		}
		if (t->pairs > 1)
			rprintf(rp, "; rounds %s .. %s", fmt_ratio(t->lo).s, fmt_ratio(t->hi).s);
		rprintf(rp, "\n");
		if (t->context[0])
			rprintf(rp, "         (%s)\n", t->context);
	}
	return missed;
}
