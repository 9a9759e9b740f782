/* SPDX-License-Identifier: MIT */
/*
 * The table's sinks-and-fds section (issue 16): a sink over SINK_TOPICS topics and the
 * fds waited for in epoll, each next to the shmbus (block) case it is compared with, side
 * by side in each round: SPSC throughput, wake-ups, syscalls per message.
 */
#include <math.h>

#include "report.h"

/* The rows, shmbus (block) first: what the others are compared with. */
static const enum peer_id sink_rows[] = { PEER_SHMBUS, PEER_SHMBUS_SINK, PEER_SHMBUS_SINK1,
					  PEER_SHMBUS_SINK_FD, PEER_SHMBUS_FD };
#define NSINK_ROWS (int)(sizeof(sink_rows) / sizeof(sink_rows[0]))

/* "  0.93x (0.85x .. 1.01x)": case a over case b, the median of the per-round ratios
 * (lowest .. highest); nothing where either has no figure. */
static void ratio_range(const struct report *rp, int a, int b, enum metric m)
{
	const struct suite *s = rp->s;
	int pairs;
	double lo = NAN, hi = NAN;

	if (a < 0 || b < 0 || a == b || case_status(s, a) || case_status(s, b))
		return;
	double r = case_ratio(s, a, b, m, &pairs, &lo, &hi);
	rprintf(rp, "  %s", fmt_ratio(r).s);
	if (pairs > 1)
		rprintf(rp, " (%s .. %s)", fmt_ratio(lo).s, fmt_ratio(hi).s);
}

static void sinks_spsc(const struct report *rp)
{
	const struct suite *s = rp->s;
	int self = case_find_spsc(s, PEER_SHMBUS, 64);

	rprintf(rp, "SPSC 64 B, 1 publisher process -> 1 reader process, msg/s in all:\n");
	rprintf(rp, "%-26s %12s %12s %12s  %s\n", "reader", "median", "lowest", "highest",
		"/ shmbus (block): median (lowest .. highest) of the rounds");
	for (int j = 0; j < NSINK_ROWS; j++) {
		int i = case_find_spsc(s, sink_rows[j], 64);
		double lo, hi;

		if (i < 0)
			continue;
		const char *st = case_status(s, i);
		rprintf(rp, "%-26s", peers[sink_rows[j]]->label);
		if (st) {
			rprintf(rp, " %12s\n", st);
			continue;
		}
		double med = case_med(s, i, MT_MSGS, &lo, &hi);
		rprintf(rp, " %12s %12s %12s", fmt_msgs(med).s, fmt_msgs(lo).s, fmt_msgs(hi).s);
		ratio_range(rp, i, self, MT_MSGS);
		rprintf(rp, "\n");
	}
}

static void sinks_wakeup(const struct report *rp)
{
	const struct suite *s = rp->s;

	for (int pin = PIN_SPLIT; pin <= PIN_SAME; pin++) {
		int self = case_find_pin(s, SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, pin), any = 0;

		for (int j = 1; j < NSINK_ROWS; j++)
			any |= case_find_pin(s, SC_WAKEUP, sink_rows[j], 64, 1, 1, 0, pin) >= 0;
		if (!any)
			continue;
		rprintf(rp, "Wake-up round trip 64 B, both sides asleep, pinned %s:\n",
			pin == PIN_SPLIT ? "to different CPUs" : "to one CPU");
		latency_header(rp, "  / shmbus (block) p50    syscalls/trip");
		for (int j = 0; j < NSINK_ROWS; j++) {
			int i = case_find_pin(s, SC_WAKEUP, sink_rows[j], 64, 1, 1, 0, pin);

			if (i < 0)
				continue;
			if (latency_row_as(rp, i, peers[sink_rows[j]]->label)) {
				double sc = case_med(s, i, MT_SYSCALLS, NULL, NULL);

				ratio_range(rp, i, self, MT_P50);
				if (sc >= 0)
					rprintf(rp, "  %.2f", sc);
			}
			rprintf(rp, "\n");
		}
	}
}

static void sinks_syscalls(const struct report *rp)
{
	const struct suite *s = rp->s;
	static const uint32_t rates[] = { 0, 1000000, 100000 };

	rprintf(rp, "Syscalls per message (perf, both processes), futex wakes and publisher waits "
		    "for space per message:\n");
	rprintf(rp, "%-26s %-20s %13s %16s %16s %10s\n", "reader", "publisher rate", "syscalls/msg",
		"futex wakes/msg", "pub waits/msg", "messages");
	for (int j = 0; j < NSINK_ROWS; j++) {
		for (int k = 0; k < 3; k++) {
			int i = case_find(s, SC_SYSCALLS, sink_rows[j], 64, 1, 1, rates[k]);
			char rate[80]; /* a cell and " msg/s" */

			if (i < 0)
				continue;
			if (rates[k])
				snprintf(rate, sizeof(rate), "%s msg/s", fmt_msgs(rates[k]).s);
			else
				snprintf(rate, sizeof(rate), "as fast as it goes");
			rprintf(rp, "%-26s %-20s", peers[sink_rows[j]]->label, rate);
			const char *st = case_status(s, i);
			if (st) {
				rprintf(rp, " %13s  %s\n", st, s->res[i].why);
				continue;
			}
			rprintf(rp, " %13.4f %16.4f %16.4f %10s\n",
				case_med(s, i, MT_SYSCALLS, NULL, NULL),
				case_med(s, i, MT_WAKEUPS, NULL, NULL),
				case_med(s, i, MT_BP, NULL, NULL),
				fmt_msgs(case_med(s, i, MT_WINDOW, NULL, NULL)).s);
		}
	}
}

void section_sinks(const struct report *rp)
{
	const struct suite *s = rp->s;
	int any = 0, spsc = 0, sys = 0;

	for (int i = 0; i < s->n; i++) {
		const struct casedef *c = &s->cases[i];
		int mine = c->peer == PEER_SHMBUS_SINK || c->peer == PEER_SHMBUS_SINK_FD ||
			   c->peer == PEER_SHMBUS_FD || c->peer == PEER_SHMBUS_SINK1;

		any |= mine;
		spsc |= mine && c->sc == SC_SPSC;
		sys |= mine && c->sc == SC_SYSCALLS;
	}
	if (!any)
		return;
	rprintf(rp,
		"\n== Sinks and fds (issue 16): a sink over %d topics (one publisher process writes "
		"them in turn),\n   read with shmbus_sink_recv() or in epoll on shmbus_sink_fd(); "
		"a sink over 1 topic; a subscriber in\n   epoll on shmbus_sub_fd(); against "
		"shmbus (block), one subscriber in shmbus_recv(), side by side in each round ==\n",
		SINK_TOPICS);
	if (spsc)
		sinks_spsc(rp);
	sinks_wakeup(rp);
	if (sys)
		sinks_syscalls(rp);
	rprintf(rp, "(An epoll reader receives with timeout 0 until -EAGAIN, then waits in "
		    "epoll_wait(); pub waits: the\n publisher found no space and waited "
		    "(the reader did not keep up).)\n");
}
