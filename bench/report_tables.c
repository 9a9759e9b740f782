/* SPDX-License-Identifier: MIT */
/*
 * The table's sections, on stdout and in report.txt: each states shmbus's figures and, as
 * a ratio, how they compare with each peer's in the same run. A section whose cases this
 * run does not have is left out; a case with no figure shows why ("absent", "FAILED").
 */
#include <math.h>

#include "report.h"

static int sizes_present(const struct suite *s, enum scenario sc, uint32_t *sizes)
{
	int n = 0;

	for (int k = 0; k < NSIZES; k++) {
		for (int i = 0; i < s->n; i++) {
			if (s->cases[i].sc == sc && s->cases[i].size == all_sizes[k]) {
				sizes[n++] = all_sizes[k];
				break;
			}
		}
	}
	return n;
}

static void section_spsc(const struct report *rp)
{
	const struct suite *s = rp->s;
	uint32_t sizes[NSIZES];
	int ns = sizes_present(s, SC_SPSC, sizes);

	if (!ns)
		return;
	for (int table = 0; table < 4; table++) {
		static const char *const titles[] = {
			"SPSC throughput: 1 publisher process -> 1 subscriber process, msg/s "
			"(median of the rounds)",
			"SPSC bandwidth, bytes/s (msg/s x message size)",
			"shmbus (block) as a ratio to each peer's msg/s (> 1: shmbus is faster)",
			"shmbus (overwrite) as a ratio to each peer's msg/s",
		};
		/* The row the ratio tables (2, 3) divide by each peer's. */
		enum peer_id self_peer = table == 3 ? PEER_SHMBUS_OVW : PEER_SHMBUS;

		rprintf(rp, "\n== %s ==\n%-26s", titles[table], "peer");
		for (int k = 0; k < ns; k++)
			rprintf(rp, " %9s", fmt_size(sizes[k]).s);
		rprintf(rp, "\n");
		for (int j = 0; j < NSPSC_PEERS; j++) {
			enum peer_id p = spsc_peers[j];
			int any = 0;

			if (table >= 2 &&
			    (p == PEER_SHMBUS || (table == 3 && p == PEER_SHMBUS_OVW)))
				continue;
			for (int k = 0; k < ns; k++)
				any |= case_find_spsc(s, p, sizes[k]) >= 0;
			if (!any)
				continue;
			rprintf(rp, "%-26s", peers[p]->label);
			for (int k = 0; k < ns; k++) {
				int i = case_find_spsc(s, p, sizes[k]);
				int self = case_find_spsc(s, self_peer, sizes[k]);
				const char *st = case_status(s, i);

				if (!st && table >= 2)
					st = case_status(s, self);
				if (st) {
					rprintf(rp, " %9s", st);
					continue;
				}
				double msgs = case_med(s, i, MT_MSGS, NULL, NULL);

				switch (table) {
				case 0:
					rprintf(rp, " %9s", fmt_msgs(msgs).s);
					break;
				case 1:
					rprintf(rp, " %9s", fmt_bw(msgs * sizes[k]).s);
					break;
				default:
					rprintf(rp, " %9s", ratio_cell(s, self, i, MT_MSGS).s);
				}
			}
			rprintf(rp, "\n");
		}
	}
	rprintf(rp, "(memcpy rows: one process copying; their 'msg/s' are copies of that size per "
		    "second.\n"
		    " Lost messages, where a peer may lose them, are in results.jsonl.)\n");
}

/* The fan-out cases of this size whose publisher keeps a rate: what it kept, what each
 * reader got, what they lost. */
static void fanout_paced(const struct report *rp, uint32_t size)
{
	const struct suite *s = rp->s;

	for (int i = 0; i < s->n; i++) {
		const struct casedef *c = &s->cases[i];
		const char *st = case_status(s, i);

		if (c->sc != SC_FANOUT || c->size != size || !c->rate)
			continue;
		rprintf(rp, "paced, %s to %d subscribers at %s msg/s: ", peers[c->peer]->label,
			c->nsub, fmt_msgs(c->rate).s);
		if (st) {
			rprintf(rp, "%s\n", st);
			continue;
		}
		rprintf(rp,
			"the publisher kept %s msg/s, each subscriber read %s msg/s, lost %.4f%%\n",
			fmt_msgs(case_med(s, i, MT_PUB, NULL, NULL)).s,
			fmt_msgs(case_med(s, i, MT_MSGS, NULL, NULL)).s,
			100 * case_med(s, i, MT_LOST, NULL, NULL));
	}
}

/* MPSC, fan-out, group: for each size, rows of process counts, columns of peers. */
static void section_multi(const struct report *rp, enum scenario sc)
{
	const struct suite *s = rp->s;
	static const enum peer_id mp[] = { PEER_SHMBUS,
					   PEER_SHMBUS_OVW,
					   PEER_SHMBUS_ACK,
					   PEER_UNIX,
					   PEER_ZMQ,
					   PEER_ICEORYX,
					   PEER_NATS,
					   PEER_REDIS_PUB_PIPE,
					   PEER_REDIS_XADD_PIPE,
					   PEER_REDIS_XACK_PIPE };
	uint32_t sizes[NSIZES];
	int ns = sizes_present(s, sc, sizes);
	const int np = (int)(sizeof(mp) / sizeof(mp[0]));

	for (int k = 0; k < ns; k++) {
		int cols[sizeof(mp) / sizeof(mp[0])], nc = 0;

		for (int j = 0; j < np; j++)
			for (int n = 1; n <= 4; n++)
				if (case_find(s, sc, mp[j], sizes[k], sc == SC_MPSC ? n : 1,
					      sc == SC_MPSC ? 1 : n, 0) >= 0) {
					cols[nc++] = j;
					break;
				}
		if (!nc)
			continue;
		if (sc == SC_MPSC)
			rprintf(rp,
				"\n== MPSC %s: N publisher processes -> 1 subscriber; delivered msg/s "
				"[shmbus (block) / peer] ==\n",
				fmt_size(sizes[k]).s);
		else if (sc == SC_FANOUT)
			rprintf(rp,
				"\n== Fan-out %s: 1 publisher -> N subscriber processes, each reads "
				"everything;\n   publisher msg/s [shmbus (block) / peer] ==\n",
				fmt_size(sizes[k]).s);
		else
			rprintf(rp,
				"\n== Group %s: 1 publisher -> a group of N member processes, each "
				"message to one;\n   msg/s taken by all members [shmbus (block) / peer] "
				"==\n",
				fmt_size(sizes[k]).s);
		rprintf(rp, "%-3s", "N");
		for (int c = 0; c < nc; c++)
			rprintf(rp, " %-24s", peers[mp[cols[c]]]->label);
		rprintf(rp, "\n");
		for (int n = 1; n <= 4; n++) {
			int row = 0;

			for (int c = 0; c < nc; c++)
				row |= case_find(s, sc, mp[cols[c]], sizes[k],
						 sc == SC_MPSC ? n : 1, sc == SC_MPSC ? 1 : n,
						 0) >= 0;
			if (!row)
				continue;
			rprintf(rp, "%-3d", n);
			int self = case_find(s, sc, PEER_SHMBUS, sizes[k], sc == SC_MPSC ? n : 1,
					     sc == SC_MPSC ? 1 : n, 0);
			enum metric m = sc == SC_FANOUT ? MT_PUB : MT_MSGS;
			for (int c = 0; c < nc; c++) {
				enum peer_id p = mp[cols[c]];
				int i = case_find(s, sc, p, sizes[k], sc == SC_MPSC ? n : 1,
						  sc == SC_MPSC ? 1 : n, 0);
				const char *st = case_status(s, i);
				char b[64];
				int len = 0;

				if (st) {
					rprintf(rp, " %-24s", st);
					continue;
				}
				len += snprintf(b + len, sizeof(b) - (size_t)len, "%s",
						fmt_msgs(case_med(s, i, m, NULL, NULL)).s);
				double lost = case_med(s, i, MT_LOST, NULL, NULL);
				if (lost > 0.0005)
					len += snprintf(b + len, sizeof(b) - (size_t)len,
							" lost %.1f%%", lost * 100);
				if (p != PEER_SHMBUS && self >= 0 && !case_status(s, self))
					snprintf(b + len, sizeof(b) - (size_t)len, " [%s]",
						 ratio_cell(s, self, i, m).s);
				rprintf(rp, " %-24s", b);
			}
			rprintf(rp, "\n");
		}
		if (sc == SC_FANOUT)
			fanout_paced(rp, sizes[k]);
	}
}

void latency_header(const struct report *rp, const char *extra)
{
	rprintf(rp, "%-26s %8s %8s %8s %8s %8s %9s  %s\n", "peer", "p50", "p90", "p99", "p99.9",
		"max", "samples", extra);
}

int latency_row_as(const struct report *rp, int i, const char *label)
{
	const struct suite *s = rp->s;
	const char *st = case_status(s, i);

	rprintf(rp, "%-26s", label);
	if (st || !s->res[i].h) {
		rprintf(rp, " %8s\n", st ? st : "-");
		return 0;
	}
	const struct hist *h = s->res[i].h;
	rprintf(rp, " %8s %8s %8s %8s %8s %9" PRIu64, fmt_ns((double)hist_quantile(h, 0.5)).s,
		fmt_ns((double)hist_quantile(h, 0.9)).s, fmt_ns((double)hist_quantile(h, 0.99)).s,
		fmt_ns((double)hist_quantile(h, 0.999)).s, fmt_ns((double)h->max).s, h->n);
	return 1;
}

/* The same, labelled with the case's peer. */
static int latency_row(const struct report *rp, int i)
{
	return latency_row_as(rp, i, peers[rp->s->cases[i].peer]->label);
}

static void section_pingpong(const struct report *rp)
{
	const struct suite *s = rp->s;
	uint32_t sizes[NSIZES];
	int ns = sizes_present(s, SC_PINGPONG, sizes);
	static const enum peer_id pp[] = { PEER_SHMBUS, PEER_RING,    PEER_UNIX,     PEER_PIPE,
					   PEER_ZMQ,	PEER_ICEORYX, PEER_REDIS_PUB };

	for (int k = 0; k < ns; k++) {
		rprintf(rp,
			"\n== Ping-pong round trip, %s over two channels; shmbus, the ring and iceoryx "
			"busy-wait,\n   the others block in the kernel ==\n",
			fmt_size(sizes[k]).s);
		latency_header(rp, "  shmbus p50 / peer p50, p99 / p99");
		int self = case_find(s, SC_PINGPONG, PEER_SHMBUS, sizes[k], 1, 1, 0);
		for (int j = 0; j < (int)(sizeof(pp) / sizeof(pp[0])); j++) {
			int i = case_find(s, SC_PINGPONG, pp[j], sizes[k], 1, 1, 0);

			if (i < 0)
				continue;
			if (latency_row(rp, i) && pp[j] != PEER_SHMBUS && self >= 0 &&
			    !case_status(s, self))
				rprintf(rp, "  %s, %s", ratio_cell(s, self, i, MT_P50).s,
					ratio_cell(s, self, i, MT_P99).s);
			rprintf(rp, "\n");
		}
	}
}

static void section_oneway(const struct report *rp)
{
	const struct suite *s = rp->s;
	static const uint32_t rates[] = { 10000, 100000, 1000000 };
	static const enum peer_id op[] = { PEER_SHMBUS, PEER_SHMBUS_SPIN, PEER_RING,
					   PEER_UNIX,	PEER_ZMQ,	  PEER_REDIS_PUB_PIPE };

	for (int k = 0; k < 3; k++) {
		int any = 0;

		for (int j = 0; j < 6; j++)
			any |= case_find(s, SC_ONEWAY, op[j], 64, 1, 1, rates[k]) >= 0;
		if (!any)
			continue;
		rprintf(rp,
			"\n== One-way latency, 64 B at %s msg/s, measured from each message's intended "
			"send time\n   (coordinated omission corrected) ==\n",
			fmt_msgs(rates[k]).s);
		latency_header(rp, "  sender kept");
		for (int j = 0; j < 6; j++) {
			int i = case_find(s, SC_ONEWAY, op[j], 64, 1, 1, rates[k]);

			if (i < 0)
				continue;
			if (latency_row(rp, i)) {
				double ach = case_med(s, i, MT_MSGS, NULL, NULL);
				int sat = 0;

				for (int r = 0; r < MAX_ROUNDS; r++)
					sat |= s->res[i].r[r].ok && s->res[i].r[r].saturated;
				rprintf(rp, "  %s msg/s%s", fmt_msgs(ach).s,
					sat ? "  SATURATED: could not keep the rate" : "");
			}
			rprintf(rp, "\n");
		}
	}
}

static void section_wakeup(const struct report *rp)
{
	const struct suite *s = rp->s;
	static const enum peer_id wp[] = { PEER_FUTEX, PEER_SHMBUS, PEER_ICEORYX };
	static const char *const where[] = {
		[PIN_SPLIT] = "on different CPUs (each wake-up reaches an idle CPU)",
		[PIN_SAME] = "on the same CPU (each wake-up is a context switch)",
	};

	for (int pin = PIN_SPLIT; pin <= PIN_SAME; pin++) {
		int fx = case_find_pin(s, SC_WAKEUP, PEER_FUTEX, 64, 1, 1, 0, pin);

		if (fx < 0 && case_find_pin(s, SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, pin) < 0)
			continue;
		rprintf(rp,
			"\n== Wake-up: ping-pong with both sides asleep between messages, pinned %s;\n"
			"   shmbus readers with shmbus_sub_set_spin(sub, 0), iceoryx readers on a wait "
			"set;\n   a round trip is two wake-ups ==\n",
			where[pin]);
		latency_header(rp, "  vs futex p50  syscalls/trip");
		for (int j = 0; j < (int)(sizeof(wp) / sizeof(wp[0])); j++) {
			int i = case_find_pin(s, SC_WAKEUP, wp[j], 64, 1, 1, 0, pin);

			if (i < 0)
				continue;
			if (latency_row(rp, i)) {
				double sc = case_med(s, i, MT_SYSCALLS, NULL, NULL);

				rprintf(rp, "  %12s",
					wp[j] != PEER_FUTEX && fx >= 0 && !case_status(s, fx) ?
						ratio_cell(s, i, fx, MT_P50).s :
						"");
				if (sc >= 0)
					rprintf(rp, "  %12.2f", sc);
			}
			rprintf(rp, "\n");
		}
	}
	rprintf(rp,
		"(Before each round trip the pinger waits 20 us, so the other side is surely asleep;\n"
		" syscalls/trip: both processes' syscalls per round trip, counted by perf.)\n");
}

static void section_syscalls(const struct report *rp)
{
	const struct suite *s = rp->s;
	static const uint32_t rates[] = { 0, 1000000, 100000, 10000 };
	int any = 0;

	for (int k = 0; k < 4; k++)
		any |= case_find(s, SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, rates[k]) >= 0;
	if (!any)
		return;
	rprintf(rp, "\n== Syscalls per message, shmbus (block) SPSC 64 B: perf counts raw_syscalls:"
		    "sys_enter of both processes\n   over the measured window; futex wakes from "
		    "shmbus_topic_stats().wakeups ==\n");
	rprintf(rp, "%-28s %14s %16s %12s\n", "publisher rate", "syscalls/msg", "futex wakes/msg",
		"messages");
	for (int k = 0; k < 4; k++) {
		int i = case_find(s, SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, rates[k]);
		char label[80]; /* a cell and " msg/s" */

		if (i < 0)
			continue;
		if (rates[k])
			snprintf(label, sizeof(label), "%s msg/s", fmt_msgs(rates[k]).s);
		else
			snprintf(label, sizeof(label), "as fast as it goes");
		const char *st = case_status(s, i);
		if (st) {
			rprintf(rp, "%-28s %14s  %s\n", label, st, s->res[i].why);
			continue;
		}
		rprintf(rp, "%-28s %14.4f %16.4f %12s%s\n", label,
			case_med(s, i, MT_SYSCALLS, NULL, NULL),
			case_med(s, i, MT_WAKEUPS, NULL, NULL),
			fmt_msgs(case_med(s, i, MT_WINDOW, NULL, NULL)).s,
			rates[k] == 10000 ? "  (gap 100 us > the reader's 20 us spin: it sleeps, "
					    "by design)" :
					    "");
	}
}

static void section_cpu(const struct report *rp)
{
	const struct suite *s = rp->s;

	if (!s->cpu_ok) {
		if (strcmp(s->cpu_why, "not selected"))
			rprintf(rp, "\n== Instructions per message: absent (%s) ==\n", s->cpu_why);
		return;
	}
	rprintf(rp,
		"\n== Instructions per 64 B message, publish + recv in one process (callgrind; the "
		"harness's own\n   instructions subtracted) ==\n");
	rprintf(rp, "%-26s %14s %10s %10s\n", "peer", "publish+recv", "publish", "recv");
	for (int k = 0; k < 2; k++) {
		const struct cpu_counts *c = &s->cpu[k];

		rprintf(rp, "%-26s", peers[k ? PEER_RING : PEER_SHMBUS]->label);
		if (!c->ok)
			rprintf(rp, " FAILED: %s\n", c->err);
		else
			rprintf(rp, " %14.1f %10.1f %10.1f\n", c->per_msg, c->publish, c->recv);
	}
	if (s->cpu[0].ok && s->cpu[1].ok && s->cpu[1].per_msg > 0)
		rprintf(rp, "%-26s %14s\n", "shmbus / bare ring",
			fmt_ratio(s->cpu[0].per_msg / s->cpu[1].per_msg).s);
}

/*
 * Brokered mode (issue 14): each brokered case next to the same case on the suite's
 * file-mode bus, with the ratio of the two taken round by round (they ran side by side in
 * each round).
 */
static void brokered_ratio(const struct report *rp, int b, int f, enum metric m)
{
	const struct suite *s = rp->s;
	int pairs;
	double lo = NAN, hi = NAN;

	if (b < 0 || f < 0 || case_status(s, b) || case_status(s, f))
		return;
	double r = case_ratio(s, b, f, m, &pairs, &lo, &hi);
	rprintf(rp, "  %s", fmt_ratio(r).s);
	if (pairs > 1)
		rprintf(rp, " (%s .. %s)", fmt_ratio(lo).s, fmt_ratio(hi).s);
}

static void section_brokered(const struct report *rp)
{
	const struct suite *s = rp->s;
	int any = 0;

	for (int i = 0; i < s->n; i++)
		any |= s->cases[i].peer == PEER_BROKERED;
	if (!any)
		return;
	rprintf(rp,
		"\n== Brokered mode (issue 14): bus '" BROKERED_BUS
		"' under a shmbusd with access = "
		"brokered (topics are memfds it\n   hands out over control.sock) against the "
		"file-mode bus, same cases, side by side in each round;\n   brokered / file: the "
		"median of the per-round ratios (lowest .. highest) ==\n");
	int fs = case_find_spsc(s, PEER_SHMBUS, 64), bs = case_find_spsc(s, PEER_BROKERED, 64);
	if (bs >= 0) {
		rprintf(rp, "SPSC 64 B, msg/s%10s %12s %12s  %s\n", "", "median", "lowest",
			"brokered / file");
		for (int k = 0; k < 2; k++) {
			int i = k ? bs : fs;
			double lo, hi;

			if (i < 0)
				continue;
			const char *st = case_status(s, i);
			rprintf(rp, "%-26s", k ? "brokered bus" : "file bus");
			if (st) {
				rprintf(rp, " %12s\n", st);
				continue;
			}
			double med = case_med(s, i, MT_MSGS, &lo, &hi);
			rprintf(rp, " %12s %12s", fmt_msgs(med).s, fmt_msgs(lo).s);
			if (k)
				brokered_ratio(rp, bs, fs, MT_MSGS);
			rprintf(rp, "\n");
		}
	}
	static const struct {
		enum scenario sc;
		enum pin pin;
		const char *title;
	} lat[] = {
		{ SC_PINGPONG, PIN_NONE,
		  "Ping-pong round trip 64 B, block policy, readers busy-wait" },
		{ SC_WAKEUP, PIN_SPLIT, "Wake-up round trip 64 B, both sides asleep, 2 CPUs" },
	};
	for (int k = 0; k < (int)(sizeof(lat) / sizeof(lat[0])); k++) {
		int f = case_find_pin(s, lat[k].sc, PEER_SHMBUS, 64, 1, 1, 0, lat[k].pin),
		    b = case_find_pin(s, lat[k].sc, PEER_BROKERED, 64, 1, 1, 0, lat[k].pin);

		if (b < 0)
			continue;
		rprintf(rp, "%s:\n", lat[k].title);
		latency_header(rp, "  brokered / file p50; p99");
		if (f >= 0) {
			latency_row_as(rp, f, "file bus");
			rprintf(rp, "\n");
		}
		if (latency_row_as(rp, b, "brokered bus")) {
			brokered_ratio(rp, b, f, MT_P50);
			rprintf(rp, ";");
			brokered_ratio(rp, b, f, MT_P99);
		}
		rprintf(rp, "\n");
	}
	if (case_find(s, SC_OPEN, PEER_BROKERED, 64, 1, 0, 0) < 0 &&
	    case_find(s, SC_OPEN, PEER_BROKERED, 64, 0, 1, 0) < 0)
		return;
	rprintf(rp, "Open + close, %" PRIu64 " timed pairs per round (the bus already open):\n",
		cfg.open_n);
	latency_header(rp, "  brokered / file p50; p99");
	for (int sub = 0; sub < 2; sub++) {
		static const char *const label[2][2] = {
			{ "publisher, file bus", "publisher, brokered bus" },
			{ "subscriber, file bus", "subscriber, brokered bus" },
		};
		int f = case_find(s, SC_OPEN, PEER_SHMBUS, 64, !sub, sub, 0),
		    b = case_find(s, SC_OPEN, PEER_BROKERED, 64, !sub, sub, 0);

		if (f >= 0) {
			latency_row_as(rp, f, label[sub][0]);
			rprintf(rp, "\n");
		}
		if (b >= 0 && latency_row_as(rp, b, label[sub][1])) {
			brokered_ratio(rp, b, f, MT_P50);
			rprintf(rp, ";");
			brokered_ratio(rp, b, f, MT_P99);
		}
		if (b >= 0)
			rprintf(rp, "\n");
	}
}

void tables_print(const struct report *rp)
{
	section_spsc(rp);
	section_multi(rp, SC_MPSC);
	section_multi(rp, SC_FANOUT);
	section_multi(rp, SC_GROUP);
	section_pingpong(rp);
	section_oneway(rp);
	section_wakeup(rp);
	section_syscalls(rp);
	section_cpu(rp);
	section_brokered(rp);
	section_sinks(rp);
}

/* ---- the summary ---------------------------------------------------------------------------- */

const struct sum_row sum_rows[NSUM_ROWS] = {
	{ "SPSC, msg/s", "spsc", SC_SPSC, 1, PIN_NONE, MT_MSGS },
	{ "fan-out to 2, publisher msg/s", "fanout2", SC_FANOUT, 2, PIN_NONE, MT_PUB },
	{ "fan-out to 4, publisher msg/s", "fanout4", SC_FANOUT, 4, PIN_NONE, MT_PUB },
	{ "group of 2, msg/s", "group2", SC_GROUP, 2, PIN_NONE, MT_MSGS },
	{ "group of 4, msg/s", "group4", SC_GROUP, 4, PIN_NONE, MT_MSGS },
	{ "ping-pong round trip, p50", "pingpong", SC_PINGPONG, 1, PIN_NONE, MT_P50 },
	{ "wake-up round trip, 2 CPUs, p50", "wakeup_2cpu", SC_WAKEUP, 1, PIN_SPLIT, MT_P50 },
	{ "wake-up round trip, 1 CPU, p50", "wakeup_1cpu", SC_WAKEUP, 1, PIN_SAME, MT_P50 },
};

const struct sum_col sum_cols[NSUM_COLS] = {
	{ "shmbus (block)", "shmbus", PEER_SHMBUS, PEER_SHMBUS, PEER_SHMBUS },
	{ "bare ring", "bare_ring", PEER_RING, PEER_RING, PEER_RING },
	{ "raw futex", "raw_futex", PEER_FUTEX, PEER_FUTEX, PEER_FUTEX },
	{ "ZeroMQ ipc", "zeromq_ipc", PEER_ZMQ, PEER_ZMQ, PEER_ZMQ },
	{ "iceoryx", "iceoryx", PEER_ICEORYX, PEER_ICEORYX, PEER_ICEORYX },
	{ "NATS", "nats", PEER_NATS, PEER_NATS, PEER_NATS },
	{ "Redis", "redis", PEER_REDIS_PUB_PIPE, PEER_REDIS_XADD_PIPE, PEER_REDIS_PUB },
	{ "Unix socket", "unix_socket", PEER_UNIX, PEER_UNIX, PEER_UNIX },
	{ "pipe", "pipe", PEER_PIPE, PEER_PIPE, PEER_PIPE },
};

int sum_case(const struct suite *s, int r, int c)
{
	const struct sum_row *w = &sum_rows[r];
	const struct sum_col *k = &sum_cols[c];
	enum peer_id p = w->sc == SC_GROUP    ? k->in_group :
			 w->sc == SC_PINGPONG ? k->in_pingpong :
						k->peer;

	return case_find_pin(s, w->sc, p, 64, 1, w->nsub, 0, w->pin);
}

/* Nanoseconds in three digits at most: 382ns, 3.12us, 41.2us, 138us, 1.25ms. */
static struct cell fmt_ns3(double v)
{
	struct cell b;
	const char *unit = "ns";
	double x = v;
	int prec = 0;

	if (isnan(v))
		return fmt_ns(v);
	if (v >= 999.5e3) {
		x = v / 1e6;
		unit = "ms";
	} else if (v >= 999.5) {
		x = v / 1e3;
		unit = "us";
	}
	if (unit[0] != 'n')
		prec = x < 9.995 ? 2 : x < 99.95 ? 1 : 0;
	snprintf(b.s, sizeof(b.s), "%.*f%s", prec, x, unit);
	return b;
}

/* A summary cell: the median of the rounds, "-" where the peer has no such case here, why
 * where it has no figure; a '*' where it lost messages. */
static struct cell sum_cell(const struct suite *s, int r, int c)
{
	int i = sum_case(s, r, c);
	const char *st = case_status(s, i);
	struct cell b;

	if (st) {
		snprintf(b.s, sizeof(b.s), "%s", st);
		return b;
	}
	double v = case_med(s, i, sum_rows[r].m, NULL, NULL);
	if (sum_rows[r].m == MT_P50)
		return fmt_ns3(v);
	b = fmt_msgs(v);
	if (case_med(s, i, MT_LOST, NULL, NULL) > 0.0005)
		strcat(b.s, "*");
	return b;
}

void summary_print(const struct report *rp)
{
	const struct suite *s = rp->s;
	int rows[NSUM_ROWS], cols[NSUM_COLS], nr = 0, nc = 0, wr = 4;
	int width[NSUM_COLS];

	/* The rows and columns this run has a case in. */
	for (int r = 0; r < NSUM_ROWS; r++)
		for (int c = 0; c < NSUM_COLS; c++)
			if (sum_case(s, r, c) >= 0) {
				rows[nr++] = r;
				break;
			}
	for (int c = 0; c < NSUM_COLS; c++)
		for (int r = 0; r < NSUM_ROWS; r++)
			if (sum_case(s, r, c) >= 0) {
				cols[nc++] = c;
				break;
			}
	if (!nr)
		return;
	for (int j = 0; j < nr; j++)
		if ((int)strlen(sum_rows[rows[j]].what) > wr)
			wr = (int)strlen(sum_rows[rows[j]].what);
	for (int k = 0; k < nc; k++) {
		width[k] = (int)strlen(sum_cols[cols[k]].name);
		for (int j = 0; j < nr; j++) {
			int n = (int)strlen(sum_cell(s, rows[j], cols[k]).s);

			if (n > width[k])
				width[k] = n;
		}
	}
	rprintf(rp,
		"\n== Summary, 64 B: the median of the rounds (throughput in msg/s, latency the "
		"p50 round trip) ==\n");
	rprintf(rp, "| %-*s |", wr, "64 B");
	for (int k = 0; k < nc; k++)
		rprintf(rp, " %*s |", width[k], sum_cols[cols[k]].name);
	rprintf(rp, "\n|:");
	for (int n = 0; n < wr + 1; n++)
		rprintf(rp, "-");
	rprintf(rp, "|");
	for (int k = 0; k < nc; k++) {
		for (int n = 0; n < width[k] + 1; n++)
			rprintf(rp, "-");
		rprintf(rp, ":|");
	}
	rprintf(rp, "\n");
	for (int j = 0; j < nr; j++) {
		rprintf(rp, "| %-*s |", wr, sum_rows[rows[j]].what);
		for (int k = 0; k < nc; k++)
			rprintf(rp, " %*s |", width[k], sum_cell(s, rows[j], cols[k]).s);
		rprintf(rp, "\n");
	}
	rprintf(rp,
		"(fan-out: each subscriber reads every message; group: each message to one member, "
		"msg/s all members took;\n"
		" ping-pong: shmbus, the ring and iceoryx busy-wait, the others block in the kernel; "
		"wake-up: both sides asleep\n"
		" between messages, pinned to different CPUs or to one. Redis: pipelined PUBLISH, "
		"for groups pipelined XADD\n"
		" read with XREADGROUP, for ping-pong one PUBLISH per message. Unix socket: "
		"seqpacket. -: no such case; *: lost\n"
		" messages (the fan-out and group tables say how many).)\n");
}

void tables_print_absent(const struct report *rp)
{
	const struct suite *s = rp->s;
	int any = 0;

	for (int p = 0; p < NPEERS; p++) {
		int used = 0;

		for (int i = 0; i < s->n; i++)
			used |= s->cases[i].peer == (enum peer_id)p &&
				s->res[i].status == CS_ABSENT;
		if (!used)
			continue;
		if (!any)
			rprintf(rp,
				"\n== Absent (could not run on this machine; reported, not dropped) ==\n");
		any = 1;
		rprintf(rp, "%-26s %s\n", peers[p]->label,
			s->peer_why[p][0] ? s->peer_why[p] : "absent");
	}
	if (!s->perf_ok && s->perf_why[0]) {
		if (!any)
			rprintf(rp,
				"\n== Absent (could not run on this machine; reported, not dropped) ==\n");
		any = 1;
		rprintf(rp, "%-26s %s\n", "syscall counts (perf)", s->perf_why);
	}
	for (int i = 0; i < s->n; i++)
		if (s->res[i].status == CS_FAILED)
			rprintf(rp, "FAILED: %s %s %s %dx%d: %s\n", scenario_names[s->cases[i].sc],
				fmt_size(s->cases[i].size).s, peers[s->cases[i].peer]->id,
				s->cases[i].npub, s->cases[i].nsub, s->res[i].why);
}
