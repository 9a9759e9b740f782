/* SPDX-License-Identifier: MIT */
/*
 * What the suite reports: a readable table (stdout and report.txt) that states each
 * shmbus figure as a ratio to each peer and says in plain words which targets are met and
 * which are missed; one JSON object per case and per target (results.jsonl); PNG plots
 * made with gnuplot (throughput against size, latency CDFs), whose data files and script
 * go to a data/ subdirectory. The report ends with the list of the files it wrote.
 *
 * A figure in the table is the median of a case's rounds. A ratio between two cases is the
 * median of the per-round ratios (the two ran close together in each round, so each ratio
 * saw one state of the machine); where they share no round, the ratio of their medians.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* The report being written: the suite it reports on and where its text goes. */
struct report {
	const struct suite *s;
	FILE *out; /* the caller's (stdout) */
	FILE *txt; /* DIR/report.txt; NULL if it could not be made */
};

/* ---- looking up cases and their figures -------------------------------------------------- */

static int case_find_pin(const struct suite *s, enum scenario sc, enum peer_id peer, uint32_t size,
			 int npub, int nsub, uint32_t rate, enum pin pin)
{
	for (int i = 0; i < s->n; i++) {
		const struct casedef *c = &s->cases[i];

		if (c->sc == sc && c->peer == peer && c->size == size && c->npub == npub &&
		    c->nsub == nsub && c->rate == rate && c->pin == pin)
			return i;
	}
	return -1;
}

static int case_find(const struct suite *s, enum scenario sc, enum peer_id peer, uint32_t size,
		     int npub, int nsub, uint32_t rate)
{
	return case_find_pin(s, sc, peer, size, npub, nsub, rate, PIN_NONE);
}

enum metric {
	MT_MSGS,
	MT_PUB,
	MT_P50,
	MT_P99,
	MT_SYSCALLS,
	MT_WAKEUPS,
	MT_CPU,
	MT_LOST,
	MT_WINDOW,
	MT_BP
};

static double metric(const struct result *r, enum metric m)
{
	switch (m) {
	case MT_MSGS:
		return r->msgs;
	case MT_PUB:
		return r->pub_msgs;
	case MT_P50:
		return (double)r->p50;
	case MT_P99:
		return (double)r->p99;
	case MT_SYSCALLS:
		return r->syscalls;
	case MT_WAKEUPS:
		return r->wakeups;
	case MT_CPU:
		return r->cpu_ns_per_msg;
	case MT_LOST:
		return r->lost;
	case MT_WINDOW:
		return r->window_msgs;
	case MT_BP:
		return r->bp_waits;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of case i's successful rounds; NAN if none. Spread in lo/hi if wanted. */
static double case_med(const struct suite *s, int i, enum metric m, double *lo, double *hi)
{
	double v[MAX_ROUNDS];
	int n = 0;

	if (i < 0)
		return NAN;
	for (int k = 0; k < MAX_ROUNDS; k++)
		if (s->res[i].r[k].ok)
			v[n++] = metric(&s->res[i].r[k], m);
	if (!n)
		return NAN;
	double x = median_of(v, n);
	if (lo)
		*lo = v[0];
	if (hi)
		*hi = v[n - 1];
	return x;
}

/* a / b, round by round; the median. pairs: how many rounds had both (0: medians). */
static double case_ratio(const struct suite *s, int a, int b, enum metric m, int *pairs, double *lo,
			 double *hi)
{
	double v[MAX_ROUNDS];
	int n = 0;

	*pairs = 0;
	if (a < 0 || b < 0)
		return NAN;
	for (int k = 0; k < MAX_ROUNDS; k++) {
		const struct result *x = &s->res[a].r[k], *y = &s->res[b].r[k];

		if (x->ok && y->ok && metric(y, m) > 0)
			v[n++] = metric(x, m) / metric(y, m);
	}
	if (n) {
		*pairs = n;
		double r = median_of(v, n);
		if (lo)
			*lo = v[0];
		if (hi)
			*hi = v[n - 1];
		return r;
	}
	double x = case_med(s, a, m, NULL, NULL), y = case_med(s, b, m, NULL, NULL);
	if (lo)
		*lo = x / y;
	if (hi)
		*hi = x / y;
	return isnan(x) || isnan(y) || y <= 0 ? NAN : x / y;
}

/* ---- formatting ------------------------------------------------------------------------------ */

/* A figure as text, returned by value: fmt_msgs(v).s lives until the end of the full
 * expression that holds the call (C11), long enough for the printf it is an argument of. */
struct cell {
	char s[64];
};

static struct cell fmt_msgs(double v)
{
	struct cell b;

	if (isnan(v))
		snprintf(b.s, sizeof(b.s), "-");
	else if (v >= 1e6)
		snprintf(b.s, sizeof(b.s), "%.*fM", v >= 1e8 ? 0 : v >= 1e7 ? 1 : 2, v / 1e6);
	else if (v >= 1e3)
		snprintf(b.s, sizeof(b.s), "%.*fk", v >= 1e5 ? 0 : v >= 1e4 ? 1 : 2, v / 1e3);
	else
		snprintf(b.s, sizeof(b.s), "%.0f", v);
	return b;
}

static struct cell fmt_bw(double v)
{
	struct cell b;

	if (isnan(v))
		snprintf(b.s, sizeof(b.s), "-");
	else if (v >= 1e9)
		snprintf(b.s, sizeof(b.s), "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(b.s, sizeof(b.s), "%.1fM", v / 1e6);
	else
		snprintf(b.s, sizeof(b.s), "%.0fk", v / 1e3);
	return b;
}

static struct cell fmt_ns(double v)
{
	struct cell b;

	if (isnan(v))
		snprintf(b.s, sizeof(b.s), "-");
	else if (v < 1e4)
		snprintf(b.s, sizeof(b.s), "%.0fns", v);
	else if (v < 1e7)
		snprintf(b.s, sizeof(b.s), "%.*fus", v < 1e5 ? 1 : 0, v / 1e3);
	else if (v < 1e10)
		snprintf(b.s, sizeof(b.s), "%.*fms", v < 1e8 ? 1 : 0, v / 1e6);
	else
		snprintf(b.s, sizeof(b.s), "%.1fs", v / 1e9);
	return b;
}

static struct cell fmt_ratio(double r)
{
	struct cell b;

	if (isnan(r))
		snprintf(b.s, sizeof(b.s), "-");
	else if (r >= 100)
		snprintf(b.s, sizeof(b.s), "%.0fx", r);
	else if (r >= 10)
		snprintf(b.s, sizeof(b.s), "%.1fx", r);
	else if (r >= 0.1)
		snprintf(b.s, sizeof(b.s), "%.2fx", r);
	else
		snprintf(b.s, sizeof(b.s), "%.3fx", r);
	return b;
}

static struct cell fmt_size(uint32_t s)
{
	struct cell b;

	if (s >= (1u << 20) && !(s & ((1u << 20) - 1)))
		snprintf(b.s, sizeof(b.s), "%u MiB", s >> 20);
	else if (s >= 1024 && !(s & 1023))
		snprintf(b.s, sizeof(b.s), "%u KiB", s >> 10);
	else
		snprintf(b.s, sizeof(b.s), "%u B", s);
	return b;
}

/* The ratio of case a's figure to case b's (case_ratio()), as a cell. */
static struct cell ratio_cell(const struct suite *s, int a, int b, enum metric m)
{
	int pairs;

	return fmt_ratio(case_ratio(s, a, b, m, &pairs, NULL, NULL));
}

/* What a cell shows when a case has no figure. */
static const char *case_status(const struct suite *s, int i)
{
	if (i < 0)
		return "-";
	switch (s->res[i].status) {
	case CS_ABSENT:
		return "absent";
	case CS_FAILED:
		return s->res[i].runs_ok ? NULL : "FAILED";
	case CS_NOT_RUN:
		return "-";
	default:
		return NULL;
	}
}

/* Print to the report: on the caller's stream and in report.txt. */
static __attribute__((format(printf, 2, 3))) void rprintf(const struct report *rp, const char *fmt,
							  ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(rp->out, fmt, ap);
	va_end(ap);
	if (rp->txt) {
		va_start(ap, fmt);
		vfprintf(rp->txt, fmt, ap);
		va_end(ap);
	}
}

/* ---- sections -------------------------------------------------------------------------------- */

static const uint32_t all_sizes[] = { 8, 64, 256, 1024, 4096, 16384, 65536, 1048576 };
#define NSIZES (int)(sizeof(all_sizes) / sizeof(all_sizes[0]))

static const enum peer_id spsc_peers[] = {
	PEER_SHMBUS,
	PEER_SHMBUS_OVW,
	PEER_RING,
	PEER_MEMCPY,
	PEER_MEMCPY_DRAM,
	PEER_PIPE,
	PEER_UNIX,
	PEER_UNIX_STREAM,
	PEER_ZMQ,
	PEER_REDIS_PUB,
	PEER_REDIS_PUB_PIPE,
	PEER_REDIS_XADD,
	PEER_REDIS_XADD_PIPE,
};
#define NSPSC_PEERS (int)(sizeof(spsc_peers) / sizeof(spsc_peers[0]))

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
				any |= case_find(s, SC_SPSC, p, sizes[k], 1,
						 p >= PEER_MEMCPY && p <= PEER_MEMCPY_DRAM ? 0 : 1,
						 0) >= 0;
			if (!any)
				continue;
			rprintf(rp, "%-26s", peers[p]->label);
			for (int k = 0; k < ns; k++) {
				int nsub = p == PEER_MEMCPY || p == PEER_MEMCPY_DRAM ? 0 : 1;
				int i = case_find(s, SC_SPSC, p, sizes[k], 1, nsub, 0);
				int self = case_find(s, SC_SPSC,
						     table == 3 ? PEER_SHMBUS_OVW : PEER_SHMBUS,
						     sizes[k], 1, 1, 0);
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

/* MPSC, fan-out, group: for each size, rows of process counts, columns of peers. */
static void section_multi(const struct report *rp, enum scenario sc)
{
	const struct suite *s = rp->s;
	static const enum peer_id mp[] = { PEER_SHMBUS, PEER_SHMBUS_OVW,     PEER_UNIX,
					   PEER_ZMQ,	PEER_REDIS_PUB_PIPE, PEER_REDIS_XADD_PIPE };
	uint32_t sizes[NSIZES];
	int ns = sizes_present(s, sc, sizes);
	const int np = (int)(sizeof(mp) / sizeof(mp[0]));

	for (int k = 0; k < ns; k++) {
		int cols[8], nc = 0;

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
	}
}

static void latency_header(const struct report *rp, const char *extra)
{
	rprintf(rp, "%-26s %8s %8s %8s %8s %8s %9s  %s\n", "peer", "p50", "p90", "p99", "p99.9",
		"max", "samples", extra);
}

/* One latency row from the merged histogram of the rounds. */
static int latency_row(const struct report *rp, int i)
{
	const struct suite *s = rp->s;
	const char *st = case_status(s, i);

	rprintf(rp, "%-26s", peers[s->cases[i].peer]->label);
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

static void section_pingpong(const struct report *rp)
{
	const struct suite *s = rp->s;
	uint32_t sizes[NSIZES];
	int ns = sizes_present(s, SC_PINGPONG, sizes);
	static const enum peer_id pp[] = { PEER_SHMBUS, PEER_RING, PEER_UNIX,
					   PEER_PIPE,	PEER_ZMQ,  PEER_REDIS_PUB };

	for (int k = 0; k < ns; k++) {
		rprintf(rp,
			"\n== Ping-pong round trip, %s over two channels; shmbus and the ring busy-wait, "
			"the others block in the kernel ==\n",
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
	static const enum peer_id wp[] = { PEER_FUTEX, PEER_SHMBUS, PEER_SHMBUS_NOMB };
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
			"   shmbus readers with shmbus_sub_set_spin(sub, 0); a round trip is two "
			"wake-ups ==\n",
			where[pin]);
		latency_header(rp, "  vs futex p50  syscalls/trip");
		for (int j = 0; j < 3; j++) {
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
		" syscalls/trip: both processes' syscalls per round trip, counted by perf.\n"
		" shmbus (no membarrier): SHMBUS_NO_MEMBARRIER=1, a diagnostic: publishers fence after "
		"each\n commit instead of relying on the membarrier() a reader issues before it "
		"sleeps.)\n");
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

/* ---- targets --------------------------------------------------------------------------------- */

struct target {
	const char *id;
	const char *what; /* "shmbus SPSC 64 B against the bare ring's msg/s" */
	int a, b;	  /* case indices (a over b) */
	enum metric m;
	int at_most;
	double want;
	double got;
	int pairs;
	double lo, hi;
	int known;
	const char *why_unknown;
	char context[200]; /* what else this run says about it */
};

#define MAX_TARGETS 32
/* The targets of this run, in the order the report lists them. */
struct targets {
	struct target t[MAX_TARGETS];
	int n;
};

static void target_ratio(struct targets *tg, const struct suite *s, const char *id,
			 const char *what, int a, int b, enum metric m, int at_most, double want)
{
	struct target *t = &tg->t[tg->n++];

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
	struct target *t = &tg->t[tg->n++];

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
	int ring = case_find(s, SC_SPSC, PEER_RING, size, 1, 1, 0), pairs;

	if (ring < 0 || t->b < 0 || case_status(s, ring))
		return;
	double r = case_ratio(s, ring, t->b, MT_MSGS, &pairs, NULL, NULL);
	if (!isnan(r))
		snprintf(t->context, sizeof(t->context), "the bare ring itself reaches %s here",
			 fmt_ratio(r).s);
}

static int met(const struct target *t)
{
	return t->known && (t->at_most ? t->got <= t->want : t->got >= t->want);
}

static void build_targets(struct targets *tg, const struct suite *s)
{
	tg->n = 0;
	int s64 = case_find(s, SC_SPSC, PEER_SHMBUS, 64, 1, 1, 0);

	target_ratio(tg, s, "spsc64_vs_bare_ring", "SPSC 64 B, shmbus msg/s over the bare ring's",
		     s64, case_find(s, SC_SPSC, PEER_RING, 64, 1, 1, 0), MT_MSGS, 0, 0.5);
	target_ratio(tg, s, "spsc64_vs_unix_socket",
		     "SPSC 64 B, shmbus msg/s over a Unix socket's (seqpacket, one message per "
		     "send)",
		     s64, case_find(s, SC_SPSC, PEER_UNIX, 64, 1, 1, 0), MT_MSGS, 0, 50);
	target_ratio(tg, s, "spsc64_vs_zeromq",
		     "SPSC 64 B, shmbus msg/s over ZeroMQ ipc:// PUSH/PULL", s64,
		     case_find(s, SC_SPSC, PEER_ZMQ, 64, 1, 1, 0), MT_MSGS, 0, 10);
	target_ratio(tg, s, "spsc64_vs_redis_pubsub",
		     "SPSC 64 B, shmbus msg/s over Redis Pub/Sub (pipelined PUBLISH, its best)",
		     s64, case_find(s, SC_SPSC, PEER_REDIS_PUB_PIPE, 64, 1, 1, 0), MT_MSGS, 0, 100);
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
		int a = case_find(s, SC_SPSC, PEER_SHMBUS, big[k], 1, 1, 0);

		target_ratio(tg, s, bid[k], bwhat[k], a,
			     case_find(s, SC_SPSC, PEER_MEMCPY, big[k], 1, 0, 0), MT_MSGS, 0, 0.5);
		target_ratio(tg, s, did[k], dwhat[k], a,
			     case_find(s, SC_SPSC, PEER_MEMCPY_DRAM, big[k], 1, 0, 0), MT_MSGS, 0,
			     0.5);
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
	target_ratio(tg, s, "wakeup_vs_raw_futex",
		     "wake-up on different CPUs, shmbus blocking round trip p50 over a raw futex "
		     "ping-pong's",
		     case_find_pin(s, SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, PIN_SPLIT),
		     case_find_pin(s, SC_WAKEUP, PEER_FUTEX, 64, 1, 1, 0, PIN_SPLIT), MT_P50, 1,
		     1.5);
	target_ratio(tg, s, "wakeup_same_cpu_vs_raw_futex",
		     "wake-up on one CPU, shmbus blocking round trip p50 over a raw futex "
		     "ping-pong's",
		     case_find_pin(s, SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, PIN_SAME),
		     case_find_pin(s, SC_WAKEUP, PEER_FUTEX, 64, 1, 1, 0, PIN_SAME), MT_P50, 1,
		     1.5);
	target_abs(tg, s, "syscalls_full_speed",
		   "syscalls per message, publisher as fast as it goes",
		   case_find(s, SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, 0), MT_SYSCALLS, 0.01);
	target_abs(tg, s, "syscalls_1m", "syscalls per message at 1 M msg/s",
		   case_find(s, SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, 1000000), MT_SYSCALLS, 0.01);
	target_abs(tg, s, "syscalls_100k", "syscalls per message at 100 k msg/s",
		   case_find(s, SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, 100000), MT_SYSCALLS, 0.01);
	/* Instructions: from callgrind, not from a case. */
	struct target *t = &tg->t[tg->n++];
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

static int section_targets(const struct report *rp, const struct targets *tg)
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
		snprintf(want, sizeof(want), "%s %g%s", t->at_most ? "at most" : "at least",
			 t->want, t->b == -2 ? "" : "x");
		if (!t->known) {
			rprintf(rp, "UNKNOWN  %s: not measured (%s); target %s\n", t->what,
				t->why_unknown ? t->why_unknown : "no figure", want);
			missed++;
			continue;
		}
		if (t->b == -2)
			snprintf(got, sizeof(got), "%.4f", t->got);
		else
			snprintf(got, sizeof(got), "%s", fmt_ratio(t->got).s);
		if (met(t)) {
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

static void section_absent(const struct report *rp)
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

/* ---- JSON -------------------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else
		fprintf(f, "%.6g", v);
}

static void json_common(FILE *f, const struct suite *s)
{
	fprintf(f, "\"suite\":\"shmbus-bench\",\"mode\":\"%s\",\"git\":", cfg.mode);
	json_str(f, s->git);
	fprintf(f, ",\"machine\":{\"nproc\":%ld,\"model\":", s->m.nproc);
	json_str(f, s->m.model);
	fprintf(f, ",\"kernel\":");
	json_str(f, s->m.kernel);
	fprintf(f, ",\"llc_bytes\":%" PRIu64 ",\"loadavg_at_start\":", s->m.llc);
	json_num(f, s->loadavg);
	fprintf(f, ",\"loadavg_at_end\":");
	json_num(f, s->loadavg_end);
	fprintf(f, ",\"other_processes_cpu_s\":");
	json_num(f, s->busy_s - s->own_s);
	fprintf(f, ",\"steal_cpu_s\":");
	json_num(f, s->steal_s);
	fprintf(f, ",\"run_seconds\":");
	json_num(f, s->elapsed);
	fprintf(f, "}");
}

static void json_case(FILE *f, const struct suite *s, int i)
{
	const struct casedef *c = &s->cases[i];
	const struct caseres *cr = &s->res[i];
	const struct peer *p = peers[c->peer];
	static const char *const st[] = { "not_run", "ok", "absent", "failed" };

	fprintf(f, "{\"type\":\"case\",");
	json_common(f, s);
	fprintf(f, ",\"scenario\":\"%s\",\"peer\":\"%s\",\"label\":", scenario_names[c->sc], p->id);
	json_str(f, p->label);
	fprintf(f,
		",\"policy\":%s,\"size\":%u,\"publishers\":%d,\"subscribers\":%d,"
		"\"rate\":%u,\"pinned\":\"%s\",\"status\":\"%s\"",
		(p->flags & PF_SHMBUS) ?
			(c->peer == PEER_SHMBUS_OVW ? "\"overwrite\"" : "\"block\"") :
			"null",
		c->size, c->npub, c->nsub, c->rate,
		c->pin == PIN_SPLIT ? "split" :
		c->pin == PIN_SAME  ? "same_cpu" :
				      "no",
		st[cr->status]);
	if (cr->status == CS_ABSENT || cr->status == CS_FAILED) {
		fprintf(f, ",\"reason\":");
		json_str(f, cr->why);
	}
	fprintf(f, ",\"rounds\":%d,\"rounds_failed\":%d", cr->runs_ok, cr->runs_failed);
	fprintf(f, ",\"others_cpu_share\":[");
	for (int k = 0, first = 1; k < MAX_ROUNDS; k++) {
		if (!cr->r[k].ok)
			continue;
		fprintf(f, "%s%.3f", first ? "" : ",", cr->r[k].others);
		first = 0;
	}
	fprintf(f, "],\"attempts\":[");
	for (int k = 0, first = 1; k < MAX_ROUNDS; k++) {
		if (!cr->r[k].ok)
			continue;
		fprintf(f, "%s%d", first ? "" : ",", cr->r[k].attempts);
		first = 0;
	}
	fprintf(f, "]");
	if (!cr->runs_ok) {
		fprintf(f, "}\n");
		return;
	}
	double lo, hi;
	double msgs = case_med(s, i, MT_MSGS, &lo, &hi);
	int lat = c->sc == SC_PINGPONG || c->sc == SC_WAKEUP || c->sc == SC_ONEWAY;
	if (!lat) {
		fprintf(f, ",\"msgs_per_s\":");
		json_num(f, msgs);
		fprintf(f, ",\"bytes_per_s\":");
		json_num(f, msgs * c->size);
		fprintf(f, ",\"msgs_per_s_min\":");
		json_num(f, lo);
		fprintf(f, ",\"msgs_per_s_max\":");
		json_num(f, hi);
		fprintf(f, ",\"pub_msgs_per_s\":");
		json_num(f, case_med(s, i, MT_PUB, NULL, NULL));
		fprintf(f, ",\"lost_fraction\":");
		json_num(f, case_med(s, i, MT_LOST, NULL, NULL));
		fprintf(f, ",\"runs_msgs_per_s\":[");
		for (int k = 0, first = 1; k < MAX_ROUNDS; k++) {
			if (!cr->r[k].ok)
				continue;
			fprintf(f, "%s", first ? "" : ",");
			json_num(f, cr->r[k].msgs);
			first = 0;
		}
		fprintf(f, "]");
	}
	if (lat && cr->h) {
		const struct hist *h = cr->h;

		fprintf(f,
			",\"latency_ns\":{\"p50\":%" PRIu64 ",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64
			",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 ",\"samples\":%" PRIu64 "}",
			hist_quantile(h, 0.5), hist_quantile(h, 0.9), hist_quantile(h, 0.99),
			hist_quantile(h, 0.999), h->max, h->n);
		fprintf(f, ",\"runs_p50_ns\":[");
		for (int k = 0, first = 1; k < MAX_ROUNDS; k++) {
			if (!cr->r[k].ok)
				continue;
			fprintf(f, "%s%" PRIu64, first ? "" : ",", cr->r[k].p50);
			first = 0;
		}
		fprintf(f, "]");
		if (c->sc == SC_ONEWAY) {
			int sat = 0;

			for (int k = 0; k < MAX_ROUNDS; k++)
				sat |= cr->r[k].ok && cr->r[k].saturated;
			fprintf(f, ",\"achieved_rate\":");
			json_num(f, msgs);
			fprintf(f, ",\"saturated\":%s", sat ? "true" : "false");
		}
	}
	fprintf(f, ",\"cpu\":{\"seconds_per_run\":");
	double cs[MAX_ROUNDS];
	int n = 0;
	for (int k = 0; k < MAX_ROUNDS; k++)
		if (cr->r[k].ok)
			cs[n++] = cr->r[k].cpu_s;
	json_num(f, n ? median_of(cs, n) : NAN);
	fprintf(f, ",\"ns_per_msg\":");
	json_num(f, case_med(s, i, MT_CPU, NULL, NULL));
	fprintf(f, "}");
	if (c->sc == SC_WAKEUP && case_med(s, i, MT_SYSCALLS, NULL, NULL) >= 0) {
		fprintf(f, ",\"syscalls_per_round_trip\":");
		json_num(f, case_med(s, i, MT_SYSCALLS, NULL, NULL));
	}
	if (c->sc == SC_SYSCALLS || (p->flags & PF_SHMBUS)) {
		double w = case_med(s, i, MT_WAKEUPS, NULL, NULL);

		if (c->sc == SC_SYSCALLS) {
			fprintf(f, ",\"syscalls_per_msg\":");
			json_num(f, case_med(s, i, MT_SYSCALLS, NULL, NULL));
		}
		if (w >= 0) {
			fprintf(f, ",\"futex_wakes_per_msg\":");
			json_num(f, w);
			fprintf(f, ",\"backpressure_waits_per_msg\":");
			json_num(f, case_med(s, i, MT_BP, NULL, NULL));
		}
	}
	fprintf(f, "}\n");
}

static void json_all(FILE *f, const struct suite *s, const struct targets *tg)
{
	for (int i = 0; i < s->n; i++)
		json_case(f, s, i);
	if (s->cpu_ok || strcmp(s->cpu_why, "not selected")) {
		for (int k = 0; k < 2; k++) {
			const struct cpu_counts *c = &s->cpu[k];

			fprintf(f, "{\"type\":\"case\",");
			json_common(f, s);
			fprintf(f, ",\"scenario\":\"cpu\",\"peer\":\"%s\",\"size\":64,\"status\":",
				peers[k ? PEER_RING : PEER_SHMBUS]->id);
			if (!s->cpu_ok) {
				fprintf(f, "\"absent\",\"reason\":");
				json_str(f, s->cpu_why);
			} else if (!c->ok) {
				fprintf(f, "\"failed\",\"reason\":");
				json_str(f, c->err);
			} else {
				fprintf(f, "\"ok\",\"instructions_per_msg\":");
				json_num(f, c->per_msg);
				fprintf(f, ",\"instructions_publish\":");
				json_num(f, c->publish);
				fprintf(f, ",\"instructions_recv\":");
				json_num(f, c->recv);
			}
			fprintf(f, "}\n");
		}
	}
	for (int k = 0; k < tg->n; k++) {
		const struct target *t = &tg->t[k];

		if (t->a < 0 || t->b == -1)
			continue;
		fprintf(f, "{\"type\":\"target\",");
		json_common(f, s);
		fprintf(f, ",\"target\":\"%s\",\"what\":", t->id);
		json_str(f, t->what);
		fprintf(f,
			",\"op\":\"%s\",\"want\":%g,\"value\":", t->at_most ? "<=" : ">=", t->want);
		json_num(f, t->known ? t->got : NAN);
		fprintf(f, ",\"paired_rounds\":%d,\"status\":\"%s\"}\n", t->pairs,
			!t->known ? "unknown" :
			met(t)	  ? "met" :
				    "missed");
	}
}

/* ---- plots ------------------------------------------------------------------------------------ */

/* One colour per peer, the same in every plot; shmbus's own lines thick. */
static struct cell line_style(enum peer_id p)
{
	static const char *const color[NPEERS] = {
		[PEER_SHMBUS] = "#d62728",	[PEER_SHMBUS_OVW] = "#ff7f0e",
		[PEER_SHMBUS_SPIN] = "#8b0000", [PEER_SHMBUS_NOMB] = "#ff9896",
		[PEER_RING] = "#1f77b4",	[PEER_MEMCPY] = "#7f7f7f",
		[PEER_MEMCPY_DRAM] = "#bcbd22", [PEER_FUTEX] = "#000000",
		[PEER_PIPE] = "#8c564b",	[PEER_UNIX] = "#9467bd",
		[PEER_UNIX_STREAM] = "#e377c2", [PEER_ZMQ] = "#17becf",
		[PEER_REDIS_PUB] = "#2ca02c",	[PEER_REDIS_PUB_PIPE] = "#98df8a",
		[PEER_REDIS_XADD] = "#393b79",	[PEER_REDIS_XADD_PIPE] = "#aec7e8",
	};
	struct cell b;

	snprintf(b.s, sizeof(b.s), "lc rgb '%s' lw %d dt %d", color[p],
		 (peers[p]->flags & PF_SHMBUS) ? 3 : 2,
		 p == PEER_SHMBUS_OVW || p == PEER_SHMBUS_NOMB ? 2 : 1);
	return b;
}

/* Where the plots' data files, script and gnuplot's log go, under the output directory;
 * gnuplot runs in the output directory, so the script names them with this prefix. */
#define PLOT_DATA "data"

/* The plots this run asked gnuplot for, with what each shows, for the list of files. */
#define MAX_PLOTS 8
struct plots {
	struct plot {
		const char *png, *what;
	} list[MAX_PLOTS];
	int n;
	/* Why there are no plots, when there are none. */
	char why[768];
};

static void plot_add(struct plots *pl, const char *png, const char *what)
{
	if (pl->n < MAX_PLOTS)
		pl->list[pl->n++] = (struct plot){ png, what };
}

static void cdf_dat(const char *dir, const char *name, const struct hist *h)
{
	char path[512];
	uint64_t seen = 0;

	snprintf(path, sizeof(path), "%s/" PLOT_DATA "/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "# latency_ns cumulative_fraction\n%" PRIu64 " 0\n", h->min);
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		if (!h->b[i])
			continue;
		seen += h->b[i];
		uint64_t v = hist_bucket_lo(i) + hist_bucket_width(i);
		if (v > h->max)
			v = h->max;
		fprintf(f, "%" PRIu64 " %.6f\n", v, (double)seen / (double)h->n);
	}
	fclose(f);
}

/* A CDF plot of the latency cases of one scenario (and rate), one line per peer; what is a
 * few words on it for the list of files. */
static int plot_cdf(struct plots *pl, const struct suite *s, FILE *gp, const char *dir,
		    const char *png, const char *title, const char *what, enum scenario sc,
		    uint32_t rate)
{
	int any = 0;

	for (int i = 0; i < s->n; i++) {
		const struct casedef *c = &s->cases[i];
		char name[128];

		if (c->sc != sc || c->rate != rate || c->size != 64 || !s->res[i].h ||
		    c->pin == PIN_SAME)
			continue;
		snprintf(name, sizeof(name), "cdf-%s-%u-%s.dat", scenario_names[sc], rate,
			 peers[c->peer]->id);
		cdf_dat(dir, name, s->res[i].h);
		if (!any) {
			fprintf(gp,
				"set output '%s'\nset title \"%s\"\nset logscale x 10\nunset logscale "
				"y\nset xlabel 'latency (ns)'\nset ylabel 'fraction of messages at "
				"or below'\nset format x '10^{%%L}'\nset yrange [0:1]\nplot ",
				png, title);
			plot_add(pl, png, what);
		}
		fprintf(gp, "%s'" PLOT_DATA "/%s' using 1:2 with steps %s title '%s'",
			any ? ", \\\n     " : "", name, line_style(c->peer).s,
			peers[c->peer]->label);
		any = 1;
	}
	if (any)
		fprintf(gp, "\nset yrange [*:*]\nunset format\n");
	return any;
}

/* Write the plots' data and script under dir/data and run gnuplot in dir, which writes the
 * PNGs there. Fills pl->list, or pl->why if there are no plots. */
static void plots(struct plots *pl, const struct suite *s, const char *dir)
{
	char path[512];

	pl->n = 0;
	if (getenv("SHMBUS_BENCH_NO_PLOTS")) {
		snprintf(pl->why, sizeof(pl->why), "--no-plots (or SHMBUS_BENCH_NO_PLOTS)");
		return;
	}
	if (!find_program("gnuplot", path, sizeof(path))) {
		snprintf(pl->why, sizeof(pl->why), "gnuplot not found: install gnuplot-nox");
		return;
	}
	snprintf(path, sizeof(path), "%s/" PLOT_DATA, dir);
	if (mkdir(path, 0777) && errno != EEXIST) {
		snprintf(pl->why, sizeof(pl->why), "cannot create %s: %s", path, strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/" PLOT_DATA "/plots.gp", dir);
	FILE *gp = fopen(path, "w");
	if (!gp) {
		snprintf(pl->why, sizeof(pl->why), "cannot write %s: %s", path, strerror(errno));
		return;
	}
	fprintf(gp,
		"# Made by shmbus-bench; run again with: cd %s && gnuplot " PLOT_DATA "/plots.gp\n"
		"set terminal pngcairo size 1100,700 font ',10'\nset grid\n"
		"set key outside right top\n",
		dir);
	/* Throughput against size, one data file per peer. */
	int lines = 0;
	for (int m = 0; m < 2; m++) {
		int any = 0;

		for (int j = 0; j < NSPSC_PEERS; j++) {
			enum peer_id p = spsc_peers[j];
			char name[128];
			int pts = 0;

			snprintf(name, sizeof(name), "spsc-%s.dat", peers[p]->id);
			snprintf(path, sizeof(path), "%s/" PLOT_DATA "/%s", dir, name);
			if (m == 0) {
				FILE *f = fopen(path, "w");
				if (!f)
					continue;
				fprintf(f, "# size_bytes msgs_per_s bytes_per_s\n");
				for (int k = 0; k < NSIZES; k++) {
					int i = case_find(
						s, SC_SPSC, p, all_sizes[k], 1,
						p == PEER_MEMCPY || p == PEER_MEMCPY_DRAM ? 0 : 1,
						0);
					double v = case_med(s, i, MT_MSGS, NULL, NULL);

					if (!isnan(v)) {
						fprintf(f, "%u %.6g %.6g\n", all_sizes[k], v,
							v * all_sizes[k]);
						pts++;
					}
				}
				fclose(f);
				if (!pts) {
					unlink(path);
					continue;
				}
				lines++;
			} else if (access(path, R_OK)) {
				continue;
			}
			if (!any) {
				plot_add(pl, m ? "throughput_bytes.png" : "throughput_msgs.png",
					 m ? "SPSC bandwidth against message size" :
					     "SPSC throughput against message size");
				fprintf(gp,
					"set output '%s'\nset title \"SPSC %s against message size "
					"(1 publisher -> 1 subscriber process)\"\nset logscale x 2\n"
					"set logscale y 10\nset xlabel 'message size (bytes)'\n"
					"set ylabel '%s'\nset xtics ('8 B' 8, '64 B' 64, '256 B' "
					"256, '1 KiB' 1024, '4 KiB' 4096, '16 KiB' 16384, '64 KiB' "
					"65536, '256 KiB' 262144, '1 MiB' 1048576)\n"
					"set format y '%%.0s%%c'\nplot ",
					m ? "throughput_bytes.png" : "throughput_msgs.png",
					m ? "bandwidth" : "throughput",
					m ? "bytes per second" : "messages per second");
			}
			fprintf(gp,
				"%s'" PLOT_DATA "/%s' using 1:%d with linespoints %s title '%s'",
				any ? ", \\\n     " : "", name, m ? 3 : 2, line_style(p).s,
				peers[p]->label);
			any = 1;
		}
		if (any)
			fprintf(gp, "\nunset format\nset xtics auto\n");
	}
	int cdfs = plot_cdf(pl, s, gp, dir, "latency_pingpong.png",
			    "Ping-pong round trip, 64 B: CDF (all rounds)",
			    "ping-pong round trip CDF", SC_PINGPONG, 0);
	cdfs += plot_cdf(pl, s, gp, dir, "latency_wakeup.png",
			 "Wake-up round trip (both sides asleep, on different CPUs), 64 B: CDF",
			 "wake-up round trip CDF", SC_WAKEUP, 0);
	cdfs += plot_cdf(pl, s, gp, dir, "latency_oneway_10k.png",
			 "One-way latency at 10 k msg/s from the intended send time, 64 B: CDF",
			 "one-way latency CDF at 10 k msg/s", SC_ONEWAY, 10000);
	cdfs += plot_cdf(pl, s, gp, dir, "latency_oneway_100k.png",
			 "One-way latency at 100 k msg/s from the intended send time, 64 B: CDF",
			 "one-way latency CDF at 100 k msg/s", SC_ONEWAY, 100000);
	cdfs += plot_cdf(pl, s, gp, dir, "latency_oneway_1m.png",
			 "One-way latency at 1 M msg/s from the intended send time, 64 B: CDF",
			 "one-way latency CDF at 1 M msg/s", SC_ONEWAY, 1000000);
	fclose(gp);
	if (!lines && !cdfs) {
		snprintf(pl->why, sizeof(pl->why), "nothing to plot in this run");
		return;
	}
	char cmd[600];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && gnuplot " PLOT_DATA "/plots.gp > " PLOT_DATA "/gnuplot.log 2>&1", dir);
	if (system(cmd) != 0) {
		pl->n = 0;
		snprintf(pl->why, sizeof(pl->why),
			 "gnuplot failed, see %s/" PLOT_DATA "/gnuplot.log", dir);
	}
}

/* The last lines of the report: every file this run wrote, and what it holds. */
static void list_files(const struct report *rp, const struct plots *pl, const char *dir,
		       const char *json_err)
{
	rprintf(rp, "\nfiles in %s/:\n", dir);
	rprintf(rp, "  %-26s %s\n", "report.txt", rp->txt ? "this report" : "NOT written");
	if (json_err)
		rprintf(rp, "  %-26s NOT written: %s\n", "results.jsonl", json_err);
	else
		rprintf(rp, "  %-26s %s\n", "results.jsonl",
			"one JSON object per case and per target");
	for (int i = 0; i < pl->n; i++)
		rprintf(rp, "  %-26s plot: %s\n", pl->list[i].png, pl->list[i].what);
	if (pl->n)
		rprintf(rp, "  %-26s the plots' data (*.dat), gnuplot script (plots.gp) and log\n",
			PLOT_DATA "/");
	else
		rprintf(rp, "  no plots: %s\n", pl->why);
}

/* ---- the whole report -------------------------------------------------------------------------- */

int report(struct suite *s, FILE *out)
{
	struct report rep = { .s = s, .out = out };
	const struct report *rp = &rep;
	struct targets tg;
	struct plots pl = { .n = 0 };
	char path[512];

	snprintf(path, sizeof(path), "%s/report.txt", s->outdir);
	rep.txt = fopen(path, "w");
	build_targets(&tg, s);

	rprintf(rp, "\nshmbus-bench (%s mode), git %s\n", cfg.mode, s->git);
	rprintf(rp, "machine: %ld CPUs, %s, %s, LLC %" PRIu64 " MiB\n", s->m.nproc, s->m.model,
		s->m.kernel, s->m.llc >> 20);
	double others = s->busy_s - s->own_s, cap = s->elapsed * (double)s->m.nproc;
	if (others < 0)
		others = 0;
	rprintf(rp,
		"noise: load average %.2f at start, %.2f at end; other processes used %.0f%% of the "
		"CPUs during the run,\n       the hypervisor stole %.0f%%\n",
		s->loadavg, s->loadavg_end, cap > 0 ? 100 * others / cap : 0,
		cap > 0 ? 100 * s->steal_s / cap : 0);
	if (cap > 0 && others / cap > 0.1)
		rprintf(rp,
			"WARNING: other processes competed for the CPUs: absolute figures (and syscall "
			"counts, which\n         rise when a process is descheduled) suffer; the "
			"paired ratios suffer less.\n");
	rprintf(rp, "command: %s\n", s->command);
	rprintf(rp,
		"runs: %.2f s measured after %.2f s warm-up; up to %d rounds, cases interleaved; "
		"nothing pinned; %.0f s in all\n",
		cfg.secs, cfg.warm, cfg.rounds, s->elapsed);
	int again = 0, disturbed = 0, runs = 0;
	for (int i = 0; i < s->n; i++)
		for (int k = 0; k < MAX_ROUNDS; k++)
			if (s->res[i].r[k].ok) {
				runs++;
				again += s->res[i].r[k].attempts - 1;
				disturbed += s->res[i].r[k].others > 0.15;
			}
	rprintf(rp,
		"retries: %d of %d runs were made again because other processes took more than 10%% "
		"of the CPUs;\n         %d runs kept were still disturbed so (their share is in the "
		"JSON; > 15%%)\n",
		again, runs, disturbed);
	section_spsc(rp);
	section_multi(rp, SC_MPSC);
	section_multi(rp, SC_FANOUT);
	section_multi(rp, SC_GROUP);
	section_pingpong(rp);
	section_oneway(rp);
	section_wakeup(rp);
	section_syscalls(rp);
	section_cpu(rp);
	int missed = section_targets(rp, &tg);
	section_absent(rp);

	snprintf(path, sizeof(path), "%s/results.jsonl", s->outdir);
	FILE *j = fopen(path, "w");
	const char *json_err = NULL;
	if (j) {
		json_all(j, s, &tg);
		fclose(j);
	} else {
		json_err = strerror(errno);
	}
	plots(&pl, s, s->outdir);
	list_files(rp, &pl, s->outdir, json_err);
	if (rep.txt)
		fclose(rep.txt);
	fflush(out);
	return missed;
}
