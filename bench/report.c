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

static struct suite *S;

/* ---- looking up cases and their figures -------------------------------------------------- */

static int find_pin(enum scenario sc, enum peer_id peer, uint32_t size, int npub, int nsub,
		    uint32_t rate, enum pin pin)
{
	for (int i = 0; i < S->n; i++) {
		const struct casedef *c = &S->cases[i];

		if (c->sc == sc && c->peer == peer && c->size == size && c->npub == npub &&
		    c->nsub == nsub && c->rate == rate && c->pin == pin)
			return i;
	}
	return -1;
}

static int find(enum scenario sc, enum peer_id peer, uint32_t size, int npub, int nsub,
		uint32_t rate)
{
	return find_pin(sc, peer, size, npub, nsub, rate, PIN_NONE);
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

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The median of case i's successful rounds; NAN if none. Spread in lo/hi if wanted. */
static double med(int i, enum metric m, double *lo, double *hi)
{
	double v[MAX_ROUNDS];
	int n = 0;

	if (i < 0)
		return NAN;
	for (int k = 0; k < MAX_ROUNDS; k++)
		if (S->res[i].r[k].ok)
			v[n++] = metric(&S->res[i].r[k], m);
	if (!n)
		return NAN;
	double x = median(v, n);
	if (lo)
		*lo = v[0];
	if (hi)
		*hi = v[n - 1];
	return x;
}

/* a / b, round by round; the median. pairs: how many rounds had both (0: medians). */
static double ratio(int a, int b, enum metric m, int *pairs, double *lo, double *hi)
{
	double v[MAX_ROUNDS];
	int n = 0;

	*pairs = 0;
	if (a < 0 || b < 0)
		return NAN;
	for (int k = 0; k < MAX_ROUNDS; k++) {
		const struct result *x = &S->res[a].r[k], *y = &S->res[b].r[k];

		if (x->ok && y->ok && metric(y, m) > 0)
			v[n++] = metric(x, m) / metric(y, m);
	}
	if (n) {
		*pairs = n;
		double r = median(v, n);
		if (lo)
			*lo = v[0];
		if (hi)
			*hi = v[n - 1];
		return r;
	}
	double x = med(a, m, NULL, NULL), y = med(b, m, NULL, NULL);
	if (lo)
		*lo = x / y;
	if (hi)
		*hi = x / y;
	return isnan(x) || isnan(y) || y <= 0 ? NAN : x / y;
}

/* ---- formatting ------------------------------------------------------------------------------ */

#define CELLS 8
static char cellbuf[CELLS][64];
static int celli;

static char *cell(void)
{
	celli = (celli + 1) % CELLS;
	return cellbuf[celli];
}

static const char *f_msgs(double v)
{
	char *b = cell();

	if (isnan(v))
		snprintf(b, 64, "-");
	else if (v >= 1e6)
		snprintf(b, 64, "%.*fM", v >= 1e8 ? 0 : v >= 1e7 ? 1 : 2, v / 1e6);
	else if (v >= 1e3)
		snprintf(b, 64, "%.*fk", v >= 1e5 ? 0 : v >= 1e4 ? 1 : 2, v / 1e3);
	else
		snprintf(b, 64, "%.0f", v);
	return b;
}

static const char *f_bw(double v)
{
	char *b = cell();

	if (isnan(v))
		snprintf(b, 64, "-");
	else if (v >= 1e9)
		snprintf(b, 64, "%.2fG", v / 1e9);
	else if (v >= 1e6)
		snprintf(b, 64, "%.1fM", v / 1e6);
	else
		snprintf(b, 64, "%.0fk", v / 1e3);
	return b;
}

static const char *f_ns(double v)
{
	char *b = cell();

	if (isnan(v))
		snprintf(b, 64, "-");
	else if (v < 1e4)
		snprintf(b, 64, "%.0fns", v);
	else if (v < 1e7)
		snprintf(b, 64, "%.*fus", v < 1e5 ? 1 : 0, v / 1e3);
	else if (v < 1e10)
		snprintf(b, 64, "%.*fms", v < 1e8 ? 1 : 0, v / 1e6);
	else
		snprintf(b, 64, "%.1fs", v / 1e9);
	return b;
}

static const char *f_ratio(double r)
{
	char *b = cell();

	if (isnan(r))
		snprintf(b, 64, "-");
	else if (r >= 100)
		snprintf(b, 64, "%.0fx", r);
	else if (r >= 10)
		snprintf(b, 64, "%.1fx", r);
	else if (r >= 0.1)
		snprintf(b, 64, "%.2fx", r);
	else
		snprintf(b, 64, "%.3fx", r);
	return b;
}

static const char *f_size(uint32_t s)
{
	char *b = cell();

	if (s >= (1u << 20) && !(s & ((1u << 20) - 1)))
		snprintf(b, 64, "%u MiB", s >> 20);
	else if (s >= 1024 && !(s & 1023))
		snprintf(b, 64, "%u KiB", s >> 10);
	else
		snprintf(b, 64, "%u B", s);
	return b;
}

/* What a cell shows when a case has no figure. */
static const char *status_cell(int i)
{
	if (i < 0)
		return "-";
	switch (S->res[i].status) {
	case CS_ABSENT:
		return "absent";
	case CS_FAILED:
		return S->res[i].runs_ok ? NULL : "FAILED";
	case CS_NOT_RUN:
		return "-";
	default:
		return NULL;
	}
}

static FILE *out, *txt;

static __attribute__((format(printf, 1, 2))) void P(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	if (txt) {
		va_start(ap, fmt);
		vfprintf(txt, fmt, ap);
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

static int sizes_present(enum scenario sc, uint32_t *sizes)
{
	int n = 0;

	for (int k = 0; k < NSIZES; k++) {
		for (int i = 0; i < S->n; i++) {
			if (S->cases[i].sc == sc && S->cases[i].size == all_sizes[k]) {
				sizes[n++] = all_sizes[k];
				break;
			}
		}
	}
	return n;
}

static void section_spsc(void)
{
	uint32_t sizes[NSIZES];
	int ns = sizes_present(SC_SPSC, sizes);

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
		P("\n== %s ==\n%-26s", titles[table], "peer");
		for (int k = 0; k < ns; k++)
			P(" %9s", f_size(sizes[k]));
		P("\n");
		for (int j = 0; j < NSPSC_PEERS; j++) {
			enum peer_id p = spsc_peers[j];
			int any = 0;

			if (table >= 2 &&
			    (p == PEER_SHMBUS || (table == 3 && p == PEER_SHMBUS_OVW)))
				continue;
			for (int k = 0; k < ns; k++)
				any |= find(SC_SPSC, p, sizes[k], 1,
					    p >= PEER_MEMCPY && p <= PEER_MEMCPY_DRAM ? 0 : 1,
					    0) >= 0;
			if (!any)
				continue;
			P("%-26s", peers[p]->label);
			for (int k = 0; k < ns; k++) {
				int nsub = p == PEER_MEMCPY || p == PEER_MEMCPY_DRAM ? 0 : 1;
				int i = find(SC_SPSC, p, sizes[k], 1, nsub, 0);
				int self = find(SC_SPSC, table == 3 ? PEER_SHMBUS_OVW : PEER_SHMBUS,
						sizes[k], 1, 1, 0);
				const char *st = status_cell(i);
				int pairs;

				if (!st && table >= 2)
					st = status_cell(self);
				if (st) {
					P(" %9s", st);
					continue;
				}
				switch (table) {
				case 0:
					P(" %9s", f_msgs(med(i, MT_MSGS, NULL, NULL)));
					break;
				case 1:
					P(" %9s", f_bw(med(i, MT_MSGS, NULL, NULL) * sizes[k]));
					break;
				default:
					P(" %9s",
					  f_ratio(ratio(self, i, MT_MSGS, &pairs, NULL, NULL)));
				}
			}
			P("\n");
		}
	}
	P("(memcpy rows: one process copying; their 'msg/s' are copies of that size per "
	  "second.\n"
	  " Lost messages, where a peer may lose them, are in results.jsonl.)\n");
}

/* MPSC, fan-out, group: for each size, rows of process counts, columns of peers. */
static void section_multi(enum scenario sc)
{
	static const enum peer_id mp[] = { PEER_SHMBUS, PEER_SHMBUS_OVW,     PEER_UNIX,
					   PEER_ZMQ,	PEER_REDIS_PUB_PIPE, PEER_REDIS_XADD_PIPE };
	uint32_t sizes[NSIZES];
	int ns = sizes_present(sc, sizes);
	const int np = (int)(sizeof(mp) / sizeof(mp[0]));

	for (int k = 0; k < ns; k++) {
		int cols[8], nc = 0;

		for (int j = 0; j < np; j++)
			for (int n = 1; n <= 4; n++)
				if (find(sc, mp[j], sizes[k], sc == SC_MPSC ? n : 1,
					 sc == SC_MPSC ? 1 : n, 0) >= 0) {
					cols[nc++] = j;
					break;
				}
		if (!nc)
			continue;
		if (sc == SC_MPSC)
			P("\n== MPSC %s: N publisher processes -> 1 subscriber; delivered msg/s "
			  "[shmbus (block) / peer] ==\n",
			  f_size(sizes[k]));
		else if (sc == SC_FANOUT)
			P("\n== Fan-out %s: 1 publisher -> N subscriber processes, each reads "
			  "everything;\n   publisher msg/s [shmbus (block) / peer] ==\n",
			  f_size(sizes[k]));
		else
			P("\n== Group %s: 1 publisher -> a group of N member processes, each "
			  "message to one;\n   msg/s taken by all members [shmbus (block) / peer] "
			  "==\n",
			  f_size(sizes[k]));
		P("%-3s", "N");
		for (int c = 0; c < nc; c++)
			P(" %-24s", peers[mp[cols[c]]]->label);
		P("\n");
		for (int n = 1; n <= 4; n++) {
			int row = 0;

			for (int c = 0; c < nc; c++)
				row |= find(sc, mp[cols[c]], sizes[k], sc == SC_MPSC ? n : 1,
					    sc == SC_MPSC ? 1 : n, 0) >= 0;
			if (!row)
				continue;
			P("%-3d", n);
			int self = find(sc, PEER_SHMBUS, sizes[k], sc == SC_MPSC ? n : 1,
					sc == SC_MPSC ? 1 : n, 0);
			enum metric m = sc == SC_FANOUT ? MT_PUB : MT_MSGS;
			for (int c = 0; c < nc; c++) {
				enum peer_id p = mp[cols[c]];
				int i = find(sc, p, sizes[k], sc == SC_MPSC ? n : 1,
					     sc == SC_MPSC ? 1 : n, 0);
				const char *st = status_cell(i);
				char b[64];
				int pairs, len = 0;

				if (st) {
					P(" %-24s", st);
					continue;
				}
				len += snprintf(b + len, sizeof(b) - (size_t)len, "%s",
						f_msgs(med(i, m, NULL, NULL)));
				double lost = med(i, MT_LOST, NULL, NULL);
				if (lost > 0.0005)
					len += snprintf(b + len, sizeof(b) - (size_t)len,
							" lost %.1f%%", lost * 100);
				if (p != PEER_SHMBUS && self >= 0 && !status_cell(self))
					snprintf(b + len, sizeof(b) - (size_t)len, " [%s]",
						 f_ratio(ratio(self, i, m, &pairs, NULL, NULL)));
				P(" %-24s", b);
			}
			P("\n");
		}
	}
}

static void latency_header(const char *extra)
{
	P("%-26s %8s %8s %8s %8s %8s %9s  %s\n", "peer", "p50", "p90", "p99", "p99.9", "max",
	  "samples", extra);
}

/* One latency row from the merged histogram of the rounds. */
static int latency_row(int i)
{
	const char *st = status_cell(i);

	P("%-26s", peers[S->cases[i].peer]->label);
	if (st || !S->res[i].h) {
		P(" %8s\n", st ? st : "-");
		return 0;
	}
	const struct hist *h = S->res[i].h;
	P(" %8s %8s %8s %8s %8s %9" PRIu64, f_ns((double)hist_quantile(h, 0.5)),
	  f_ns((double)hist_quantile(h, 0.9)), f_ns((double)hist_quantile(h, 0.99)),
	  f_ns((double)hist_quantile(h, 0.999)), f_ns((double)h->max), h->n);
	return 1;
}

static void section_pingpong(void)
{
	uint32_t sizes[NSIZES];
	int ns = sizes_present(SC_PINGPONG, sizes);
	static const enum peer_id pp[] = { PEER_SHMBUS, PEER_RING, PEER_UNIX,
					   PEER_PIPE,	PEER_ZMQ,  PEER_REDIS_PUB };

	for (int k = 0; k < ns; k++) {
		P("\n== Ping-pong round trip, %s over two channels; shmbus and the ring busy-wait, "
		  "the others block in the kernel ==\n",
		  f_size(sizes[k]));
		latency_header("  shmbus p50 / peer p50, p99 / p99");
		int self = find(SC_PINGPONG, PEER_SHMBUS, sizes[k], 1, 1, 0);
		for (int j = 0; j < (int)(sizeof(pp) / sizeof(pp[0])); j++) {
			int i = find(SC_PINGPONG, pp[j], sizes[k], 1, 1, 0), pairs;

			if (i < 0)
				continue;
			if (latency_row(i) && pp[j] != PEER_SHMBUS && self >= 0 &&
			    !status_cell(self))
				P("  %s, %s", f_ratio(ratio(self, i, MT_P50, &pairs, NULL, NULL)),
				  f_ratio(ratio(self, i, MT_P99, &pairs, NULL, NULL)));
			P("\n");
		}
	}
}

static void section_oneway(void)
{
	static const uint32_t rates[] = { 10000, 100000, 1000000 };
	static const enum peer_id op[] = { PEER_SHMBUS, PEER_SHMBUS_SPIN, PEER_RING,
					   PEER_UNIX,	PEER_ZMQ,	  PEER_REDIS_PUB_PIPE };

	for (int k = 0; k < 3; k++) {
		int any = 0;

		for (int j = 0; j < 6; j++)
			any |= find(SC_ONEWAY, op[j], 64, 1, 1, rates[k]) >= 0;
		if (!any)
			continue;
		P("\n== One-way latency, 64 B at %s msg/s, measured from each message's intended "
		  "send time\n   (coordinated omission corrected) ==\n",
		  f_msgs(rates[k]));
		latency_header("  sender kept");
		for (int j = 0; j < 6; j++) {
			int i = find(SC_ONEWAY, op[j], 64, 1, 1, rates[k]);

			if (i < 0)
				continue;
			if (latency_row(i)) {
				double ach = med(i, MT_MSGS, NULL, NULL);
				int sat = 0;

				for (int r = 0; r < MAX_ROUNDS; r++)
					sat |= S->res[i].r[r].ok && S->res[i].r[r].saturated;
				P("  %s msg/s%s", f_msgs(ach),
				  sat ? "  SATURATED: could not keep the rate" : "");
			}
			P("\n");
		}
	}
}

static void section_wakeup(void)
{
	static const enum peer_id wp[] = { PEER_FUTEX, PEER_SHMBUS, PEER_SHMBUS_NOMB };
	static const char *const where[] = {
		[PIN_SPLIT] = "on different CPUs (each wake-up reaches an idle CPU)",
		[PIN_SAME] = "on the same CPU (each wake-up is a context switch)",
	};

	for (int pin = PIN_SPLIT; pin <= PIN_SAME; pin++) {
		int fx = find_pin(SC_WAKEUP, PEER_FUTEX, 64, 1, 1, 0, pin);

		if (fx < 0 && find_pin(SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, pin) < 0)
			continue;
		P("\n== Wake-up: ping-pong with both sides asleep between messages, pinned %s;\n"
		  "   shmbus readers with shmbus_sub_set_spin(sub, 0); a round trip is two "
		  "wake-ups ==\n",
		  where[pin]);
		latency_header("  vs futex p50  syscalls/trip");
		for (int j = 0; j < 3; j++) {
			int i = find_pin(SC_WAKEUP, wp[j], 64, 1, 1, 0, pin), pairs;

			if (i < 0)
				continue;
			if (latency_row(i)) {
				double sc = med(i, MT_SYSCALLS, NULL, NULL);

				P("  %12s",
				  wp[j] != PEER_FUTEX && fx >= 0 && !status_cell(fx) ?
					  f_ratio(ratio(i, fx, MT_P50, &pairs, NULL, NULL)) :
					  "");
				if (sc >= 0)
					P("  %12.2f", sc);
			}
			P("\n");
		}
	}
	P("(Before each round trip the pinger waits 20 us, so the other side is surely asleep;\n"
	  " syscalls/trip: both processes' syscalls per round trip, counted by perf.\n"
	  " shmbus (no membarrier): SHMBUS_NO_MEMBARRIER=1, a diagnostic: publishers fence after "
	  "each\n commit instead of relying on the membarrier() a reader issues before it "
	  "sleeps.)\n");
}

static void section_syscalls(void)
{
	static const uint32_t rates[] = { 0, 1000000, 100000, 10000 };
	int any = 0;

	for (int k = 0; k < 4; k++)
		any |= find(SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, rates[k]) >= 0;
	if (!any)
		return;
	P("\n== Syscalls per message, shmbus (block) SPSC 64 B: perf counts raw_syscalls:"
	  "sys_enter of both processes\n   over the measured window; futex wakes from "
	  "shmbus_topic_stats().wakeups ==\n");
	P("%-28s %14s %16s %12s\n", "publisher rate", "syscalls/msg", "futex wakes/msg",
	  "messages");
	for (int k = 0; k < 4; k++) {
		int i = find(SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, rates[k]);
		char label[64];

		if (i < 0)
			continue;
		if (rates[k])
			snprintf(label, sizeof(label), "%s msg/s", f_msgs(rates[k]));
		else
			snprintf(label, sizeof(label), "as fast as it goes");
		const char *st = status_cell(i);
		if (st) {
			P("%-28s %14s  %s\n", label, st, S->res[i].why);
			continue;
		}
		P("%-28s %14.4f %16.4f %12s%s\n", label, med(i, MT_SYSCALLS, NULL, NULL),
		  med(i, MT_WAKEUPS, NULL, NULL), f_msgs(med(i, MT_WINDOW, NULL, NULL)),
		  rates[k] == 10000 ? "  (gap 100 us > the reader's 20 us spin: it sleeps, "
				      "by design)" :
				      "");
	}
}

static void section_cpu(void)
{
	if (!S->cpu_ok) {
		if (strcmp(S->cpu_why, "not selected"))
			P("\n== Instructions per message: absent (%s) ==\n", S->cpu_why);
		return;
	}
	P("\n== Instructions per 64 B message, publish + recv in one process (callgrind; the "
	  "harness's own\n   instructions subtracted) ==\n");
	P("%-26s %14s %10s %10s\n", "peer", "publish+recv", "publish", "recv");
	for (int k = 0; k < 2; k++) {
		const struct cpu_counts *c = &S->cpu[k];

		P("%-26s", peers[k ? PEER_RING : PEER_SHMBUS]->label);
		if (!c->ok)
			P(" FAILED: %s\n", c->err);
		else
			P(" %14.1f %10.1f %10.1f\n", c->per_msg, c->publish, c->recv);
	}
	if (S->cpu[0].ok && S->cpu[1].ok && S->cpu[1].per_msg > 0)
		P("%-26s %14s\n", "shmbus / bare ring",
		  f_ratio(S->cpu[0].per_msg / S->cpu[1].per_msg));
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
static struct target T[MAX_TARGETS];
static int nt;

static void target_ratio(const char *id, const char *what, int a, int b, enum metric m, int at_most,
			 double want)
{
	struct target *t = &T[nt++];

	*t = (struct target){
		.id = id, .what = what, .a = a, .b = b, .m = m, .at_most = at_most, .want = want
	};
	if (a < 0 || b < 0)
		return; /* not in this run's case list: not reported */
	if (status_cell(a) || status_cell(b)) {
		t->why_unknown = status_cell(a) ? S->res[a].why : S->res[b].why;
		return;
	}
	t->got = ratio(a, b, m, &t->pairs, &t->lo, &t->hi);
	t->known = !isnan(t->got);
}

static void target_abs(const char *id, const char *what, int a, enum metric m, double want)
{
	struct target *t = &T[nt++];

	*t = (struct target){
		.id = id, .what = what, .a = a, .b = -1, .m = m, .at_most = 1, .want = want
	};
	if (a < 0)
		return;
	if (status_cell(a)) {
		t->why_unknown = S->res[a].why;
		t->b = -2;
		return;
	}
	t->b = -2; /* absolute */
	t->got = med(a, m, &t->lo, &t->hi);
	t->known = !isnan(t->got);
}

/*
 * Where a target compares shmbus with a SPSC peer, what the bare ring (the least a
 * shared-memory channel does) reaches against the same peer in the same run: a target
 * above it is out of any shared-memory design's reach on this machine.
 */
static void context_ring(struct target *t, uint32_t size)
{
	int ring = find(SC_SPSC, PEER_RING, size, 1, 1, 0), pairs;

	if (ring < 0 || t->b < 0 || status_cell(ring))
		return;
	double r = ratio(ring, t->b, MT_MSGS, &pairs, NULL, NULL);
	if (!isnan(r))
		snprintf(t->context, sizeof(t->context), "the bare ring itself reaches %s here",
			 f_ratio(r));
}

static int met(const struct target *t)
{
	return t->known && (t->at_most ? t->got <= t->want : t->got >= t->want);
}

static void build_targets(void)
{
	nt = 0;
	int s64 = find(SC_SPSC, PEER_SHMBUS, 64, 1, 1, 0);

	target_ratio("spsc64_vs_bare_ring", "SPSC 64 B, shmbus msg/s over the bare ring's", s64,
		     find(SC_SPSC, PEER_RING, 64, 1, 1, 0), MT_MSGS, 0, 0.5);
	target_ratio("spsc64_vs_unix_socket",
		     "SPSC 64 B, shmbus msg/s over a Unix socket's (seqpacket, one message per "
		     "send)",
		     s64, find(SC_SPSC, PEER_UNIX, 64, 1, 1, 0), MT_MSGS, 0, 50);
	target_ratio("spsc64_vs_zeromq", "SPSC 64 B, shmbus msg/s over ZeroMQ ipc:// PUSH/PULL",
		     s64, find(SC_SPSC, PEER_ZMQ, 64, 1, 1, 0), MT_MSGS, 0, 10);
	target_ratio("spsc64_vs_redis_pubsub",
		     "SPSC 64 B, shmbus msg/s over Redis Pub/Sub (pipelined PUBLISH, its best)",
		     s64, find(SC_SPSC, PEER_REDIS_PUB_PIPE, 64, 1, 1, 0), MT_MSGS, 0, 100);
	for (int k = nt - 3; k < nt; k++)
		context_ring(&T[k], 64);
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
		int a = find(SC_SPSC, PEER_SHMBUS, big[k], 1, 1, 0);

		target_ratio(bid[k], bwhat[k], a, find(SC_SPSC, PEER_MEMCPY, big[k], 1, 0, 0),
			     MT_MSGS, 0, 0.5);
		target_ratio(did[k], dwhat[k], a, find(SC_SPSC, PEER_MEMCPY_DRAM, big[k], 1, 0, 0),
			     MT_MSGS, 0, 0.5);
		context_ring(&T[nt - 2], big[k]);
		context_ring(&T[nt - 1], big[k]);
	}
	int pp = find(SC_PINGPONG, PEER_SHMBUS, 64, 1, 1, 0),
	    ppr = find(SC_PINGPONG, PEER_RING, 64, 1, 1, 0);
	target_ratio("pingpong_p50_vs_bare_ring", "ping-pong 64 B, shmbus p50 over the bare ring's",
		     pp, ppr, MT_P50, 1, 1.5);
	target_ratio("pingpong_p99_vs_bare_ring", "ping-pong 64 B, shmbus p99 over the bare ring's",
		     pp, ppr, MT_P99, 1, 3);
	target_ratio("mpsc2_vs_spsc", "MPSC 64 B, 2 publishers' msg/s over 1 publisher's (SPSC)",
		     find(SC_MPSC, PEER_SHMBUS, 64, 2, 1, 0),
		     find(SC_MPSC, PEER_SHMBUS, 64, 1, 1, 0), MT_MSGS, 0, 0.5);
	target_ratio("fanout4_vs_spsc",
		     "fan-out 64 B, publisher msg/s with 4 subscribers over with 1 (SPSC)",
		     find(SC_FANOUT, PEER_SHMBUS, 64, 1, 4, 0),
		     find(SC_FANOUT, PEER_SHMBUS, 64, 1, 1, 0), MT_PUB, 0, 0.8);
	if (S->m.nproc < 5)
		snprintf(T[nt - 1].context, sizeof(T[nt - 1].context),
			 "5 busy processes share %ld CPUs: 4 readers each read every message",
			 S->m.nproc);
	target_ratio("wakeup_vs_raw_futex",
		     "wake-up on different CPUs, shmbus blocking round trip p50 over a raw futex "
		     "ping-pong's",
		     find_pin(SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, PIN_SPLIT),
		     find_pin(SC_WAKEUP, PEER_FUTEX, 64, 1, 1, 0, PIN_SPLIT), MT_P50, 1, 1.5);
	target_ratio("wakeup_same_cpu_vs_raw_futex",
		     "wake-up on one CPU, shmbus blocking round trip p50 over a raw futex "
		     "ping-pong's",
		     find_pin(SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, PIN_SAME),
		     find_pin(SC_WAKEUP, PEER_FUTEX, 64, 1, 1, 0, PIN_SAME), MT_P50, 1, 1.5);
	target_abs("syscalls_full_speed", "syscalls per message, publisher as fast as it goes",
		   find(SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, 0), MT_SYSCALLS, 0.01);
	target_abs("syscalls_1m", "syscalls per message at 1 M msg/s",
		   find(SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, 1000000), MT_SYSCALLS, 0.01);
	target_abs("syscalls_100k", "syscalls per message at 100 k msg/s",
		   find(SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, 100000), MT_SYSCALLS, 0.01);
	/* Instructions: from callgrind, not from a case. */
	struct target *t = &T[nt++];
	*t = (struct target){ .id = "instructions_vs_bare_ring",
			      .what = "instructions per 64 B publish + recv, shmbus over the bare "
				      "ring's",
			      .a = S->cpu_ok ? 0 : -1,
			      .b = -3,
			      .at_most = 1,
			      .want = 3 };
	if (S->cpu_ok) {
		if (S->cpu[0].ok && S->cpu[1].ok && S->cpu[1].per_msg > 0) {
			t->got = S->cpu[0].per_msg / S->cpu[1].per_msg;
			t->lo = t->hi = t->got;
			t->known = 1;
		} else {
			t->why_unknown = S->cpu[0].ok ? S->cpu[1].err : S->cpu[0].err;
		}
	} else if (strcmp(S->cpu_why, "not selected")) {
		t->a = 0;
		t->why_unknown = S->cpu_why;
	}
}

static int section_targets(void)
{
	int missed = 0;

	P("\n== Targets (on this machine, as ratios from this one run; a ratio is the median of "
	  "the per-round ratios) ==\n");
	for (int k = 0; k < nt; k++) {
		const struct target *t = &T[k];
		char want[64], got[64];

		if (t->a < 0 || t->b == -1)
			continue; /* its cases were not part of this run */
		snprintf(want, sizeof(want), "%s %g%s", t->at_most ? "at most" : "at least",
			 t->want, t->b == -2 ? "" : "x");
		if (!t->known) {
			P("UNKNOWN  %s: not measured (%s); target %s\n", t->what,
			  t->why_unknown ? t->why_unknown : "no figure", want);
			missed++;
			continue;
		}
		if (t->b == -2)
			snprintf(got, sizeof(got), "%.4f", t->got);
		else
			snprintf(got, sizeof(got), "%s", f_ratio(t->got));
		if (met(t)) {
			P("MET      %s: %s (target %s)", t->what, got, want);
		} else {
			missed++;
			P("MISSED   %s: %s, the target is %s", t->what, got, want);
			if (t->b != -2 && t->got > 0)
				P(" (%s short)",
				  f_ratio(t->at_most ? t->got / t->want : t->want / t->got));
		}
		if (t->pairs > 1)
			P("; rounds %s .. %s", f_ratio(t->lo), f_ratio(t->hi));
		P("\n");
		if (t->context[0])
			P("         (%s)\n", t->context);
	}
	return missed;
}

static void section_absent(void)
{
	int any = 0;

	for (int p = 0; p < NPEERS; p++) {
		int used = 0;

		for (int i = 0; i < S->n; i++)
			used |= S->cases[i].peer == (enum peer_id)p &&
				S->res[i].status == CS_ABSENT;
		if (!used)
			continue;
		if (!any)
			P("\n== Absent (could not run on this machine; reported, not dropped) ==\n");
		any = 1;
		P("%-26s %s\n", peers[p]->label, S->peer_why[p][0] ? S->peer_why[p] : "absent");
	}
	if (!S->perf_ok && S->perf_why[0]) {
		if (!any)
			P("\n== Absent (could not run on this machine; reported, not dropped) ==\n");
		any = 1;
		P("%-26s %s\n", "syscall counts (perf)", S->perf_why);
	}
	for (int i = 0; i < S->n; i++)
		if (S->res[i].status == CS_FAILED)
			P("FAILED: %s %s %s %dx%d: %s\n", scenario_names[S->cases[i].sc],
			  f_size(S->cases[i].size), peers[S->cases[i].peer]->id, S->cases[i].npub,
			  S->cases[i].nsub, S->res[i].why);
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

static void json_common(FILE *f)
{
	fprintf(f, "\"suite\":\"shmbus-bench\",\"mode\":\"%s\",\"git\":", cfg.mode);
	json_str(f, S->git);
	fprintf(f, ",\"machine\":{\"nproc\":%ld,\"model\":", S->m.nproc);
	json_str(f, S->m.model);
	fprintf(f, ",\"kernel\":");
	json_str(f, S->m.kernel);
	fprintf(f, ",\"llc_bytes\":%" PRIu64 ",\"loadavg_at_start\":", S->m.llc);
	json_num(f, S->loadavg);
	fprintf(f, ",\"loadavg_at_end\":");
	json_num(f, S->loadavg_end);
	fprintf(f, ",\"other_processes_cpu_s\":");
	json_num(f, S->busy_s - S->own_s);
	fprintf(f, ",\"steal_cpu_s\":");
	json_num(f, S->steal_s);
	fprintf(f, ",\"run_seconds\":");
	json_num(f, S->elapsed);
	fprintf(f, "}");
}

static void json_case(FILE *f, int i)
{
	const struct casedef *c = &S->cases[i];
	const struct caseres *cr = &S->res[i];
	const struct peer *p = peers[c->peer];
	static const char *const st[] = { "not_run", "ok", "absent", "failed" };

	fprintf(f, "{\"type\":\"case\",");
	json_common(f);
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
	double msgs = med(i, MT_MSGS, &lo, &hi);
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
		json_num(f, med(i, MT_PUB, NULL, NULL));
		fprintf(f, ",\"lost_fraction\":");
		json_num(f, med(i, MT_LOST, NULL, NULL));
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
	json_num(f, n ? median(cs, n) : NAN);
	fprintf(f, ",\"ns_per_msg\":");
	json_num(f, med(i, MT_CPU, NULL, NULL));
	fprintf(f, "}");
	if (c->sc == SC_WAKEUP && med(i, MT_SYSCALLS, NULL, NULL) >= 0) {
		fprintf(f, ",\"syscalls_per_round_trip\":");
		json_num(f, med(i, MT_SYSCALLS, NULL, NULL));
	}
	if (c->sc == SC_SYSCALLS || (p->flags & PF_SHMBUS)) {
		double w = med(i, MT_WAKEUPS, NULL, NULL);

		if (c->sc == SC_SYSCALLS) {
			fprintf(f, ",\"syscalls_per_msg\":");
			json_num(f, med(i, MT_SYSCALLS, NULL, NULL));
		}
		if (w >= 0) {
			fprintf(f, ",\"futex_wakes_per_msg\":");
			json_num(f, w);
			fprintf(f, ",\"backpressure_waits_per_msg\":");
			json_num(f, med(i, MT_BP, NULL, NULL));
		}
	}
	fprintf(f, "}\n");
}

static void json_all(FILE *f)
{
	for (int i = 0; i < S->n; i++)
		json_case(f, i);
	if (S->cpu_ok || strcmp(S->cpu_why, "not selected")) {
		for (int k = 0; k < 2; k++) {
			const struct cpu_counts *c = &S->cpu[k];

			fprintf(f, "{\"type\":\"case\",");
			json_common(f);
			fprintf(f, ",\"scenario\":\"cpu\",\"peer\":\"%s\",\"size\":64,\"status\":",
				peers[k ? PEER_RING : PEER_SHMBUS]->id);
			if (!S->cpu_ok) {
				fprintf(f, "\"absent\",\"reason\":");
				json_str(f, S->cpu_why);
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
	for (int k = 0; k < nt; k++) {
		const struct target *t = &T[k];

		if (t->a < 0 || t->b == -1)
			continue;
		fprintf(f, "{\"type\":\"target\",");
		json_common(f);
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
static const char *line_style(enum peer_id p)
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
	char *b = cell();

	snprintf(b, 64, "lc rgb '%s' lw %d dt %d", color[p], (peers[p]->flags & PF_SHMBUS) ? 3 : 2,
		 p == PEER_SHMBUS_OVW || p == PEER_SHMBUS_NOMB ? 2 : 1);
	return b;
}

/* Where the plots' data files, script and gnuplot's log go, under the output directory;
 * gnuplot runs in the output directory, so the script names them with this prefix. */
#define PLOT_DATA "data"

/* The plots this run asked gnuplot for, with what each shows, for the list of files. */
#define MAX_PLOTS 8
static struct {
	const char *png, *what;
} plot_list[MAX_PLOTS];
static int nplots;
/* Why there are no plots, when there are none. */
static char plots_why[768];

static void plot_add(const char *png, const char *what)
{
	if (nplots < MAX_PLOTS)
		plot_list[nplots++] = (typeof(plot_list[0])){ png, what };
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
static int plot_cdf(FILE *gp, const char *dir, const char *png, const char *title, const char *what,
		    enum scenario sc, uint32_t rate)
{
	int any = 0;

	for (int i = 0; i < S->n; i++) {
		const struct casedef *c = &S->cases[i];
		char name[128];

		if (c->sc != sc || c->rate != rate || c->size != 64 || !S->res[i].h ||
		    c->pin == PIN_SAME)
			continue;
		snprintf(name, sizeof(name), "cdf-%s-%u-%s.dat", scenario_names[sc], rate,
			 peers[c->peer]->id);
		cdf_dat(dir, name, S->res[i].h);
		if (!any) {
			fprintf(gp,
				"set output '%s'\nset title \"%s\"\nset logscale x 10\nunset logscale "
				"y\nset xlabel 'latency (ns)'\nset ylabel 'fraction of messages at "
				"or below'\nset format x '10^{%%L}'\nset yrange [0:1]\nplot ",
				png, title);
			plot_add(png, what);
		}
		fprintf(gp, "%s'" PLOT_DATA "/%s' using 1:2 with steps %s title '%s'",
			any ? ", \\\n     " : "", name, line_style(c->peer), peers[c->peer]->label);
		any = 1;
	}
	if (any)
		fprintf(gp, "\nset yrange [*:*]\nunset format\n");
	return any;
}

/* Write the plots' data and script under dir/data and run gnuplot in dir, which writes the
 * PNGs there. Fills plot_list, or plots_why if there are no plots. */
static void plots(const char *dir)
{
	char path[512];

	nplots = 0;
	if (getenv("SHMBUS_BENCH_NO_PLOTS")) {
		snprintf(plots_why, sizeof(plots_why), "--no-plots (or SHMBUS_BENCH_NO_PLOTS)");
		return;
	}
	if (!find_program("gnuplot", path, sizeof(path))) {
		snprintf(plots_why, sizeof(plots_why), "gnuplot not found: install gnuplot-nox");
		return;
	}
	snprintf(path, sizeof(path), "%s/" PLOT_DATA, dir);
	if (mkdir(path, 0777) && errno != EEXIST) {
		snprintf(plots_why, sizeof(plots_why), "cannot create %s: %s", path,
			 strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/" PLOT_DATA "/plots.gp", dir);
	FILE *gp = fopen(path, "w");
	if (!gp) {
		snprintf(plots_why, sizeof(plots_why), "cannot write %s: %s", path,
			 strerror(errno));
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
					int i = find(SC_SPSC, p, all_sizes[k], 1,
						     p == PEER_MEMCPY || p == PEER_MEMCPY_DRAM ? 0 :
												 1,
						     0);
					double v = med(i, MT_MSGS, NULL, NULL);

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
				plot_add(m ? "throughput_bytes.png" : "throughput_msgs.png",
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
				any ? ", \\\n     " : "", name, m ? 3 : 2, line_style(p),
				peers[p]->label);
			any = 1;
		}
		if (any)
			fprintf(gp, "\nunset format\nset xtics auto\n");
	}
	int cdfs = plot_cdf(gp, dir, "latency_pingpong.png",
			    "Ping-pong round trip, 64 B: CDF (all rounds)",
			    "ping-pong round trip CDF", SC_PINGPONG, 0);
	cdfs += plot_cdf(gp, dir, "latency_wakeup.png",
			 "Wake-up round trip (both sides asleep, on different CPUs), 64 B: CDF",
			 "wake-up round trip CDF", SC_WAKEUP, 0);
	cdfs += plot_cdf(gp, dir, "latency_oneway_10k.png",
			 "One-way latency at 10 k msg/s from the intended send time, 64 B: CDF",
			 "one-way latency CDF at 10 k msg/s", SC_ONEWAY, 10000);
	cdfs += plot_cdf(gp, dir, "latency_oneway_100k.png",
			 "One-way latency at 100 k msg/s from the intended send time, 64 B: CDF",
			 "one-way latency CDF at 100 k msg/s", SC_ONEWAY, 100000);
	cdfs += plot_cdf(gp, dir, "latency_oneway_1m.png",
			 "One-way latency at 1 M msg/s from the intended send time, 64 B: CDF",
			 "one-way latency CDF at 1 M msg/s", SC_ONEWAY, 1000000);
	fclose(gp);
	if (!lines && !cdfs) {
		snprintf(plots_why, sizeof(plots_why), "nothing to plot in this run");
		return;
	}
	char cmd[600];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && gnuplot " PLOT_DATA "/plots.gp > " PLOT_DATA "/gnuplot.log 2>&1", dir);
	if (system(cmd) != 0) {
		nplots = 0;
		snprintf(plots_why, sizeof(plots_why),
			 "gnuplot failed, see %s/" PLOT_DATA "/gnuplot.log", dir);
	}
}

/* The last lines of the report: every file this run wrote, and what it holds. */
static void list_files(const char *dir, const char *json_err)
{
	P("\nfiles in %s/:\n", dir);
	P("  %-26s %s\n", "report.txt", txt ? "this report" : "NOT written");
	if (json_err)
		P("  %-26s NOT written: %s\n", "results.jsonl", json_err);
	else
		P("  %-26s %s\n", "results.jsonl", "one JSON object per case and per target");
	for (int i = 0; i < nplots; i++)
		P("  %-26s plot: %s\n", plot_list[i].png, plot_list[i].what);
	if (nplots)
		P("  %-26s the plots' data (*.dat), gnuplot script (plots.gp) and log\n",
		  PLOT_DATA "/");
	else
		P("  no plots: %s\n", plots_why);
}

/* ---- the whole report -------------------------------------------------------------------------- */

int report(struct suite *s, FILE *o)
{
	char path[512];

	S = s;
	out = o;
	snprintf(path, sizeof(path), "%s/report.txt", s->outdir);
	txt = fopen(path, "w");
	build_targets();

	P("\nshmbus-bench (%s mode), git %s\n", cfg.mode, s->git);
	P("machine: %ld CPUs, %s, %s, LLC %" PRIu64 " MiB\n", s->m.nproc, s->m.model, s->m.kernel,
	  s->m.llc >> 20);
	double others = s->busy_s - s->own_s, cap = s->elapsed * (double)s->m.nproc;
	if (others < 0)
		others = 0;
	P("noise: load average %.2f at start, %.2f at end; other processes used %.0f%% of the "
	  "CPUs during the run,\n       the hypervisor stole %.0f%%\n",
	  s->loadavg, s->loadavg_end, cap > 0 ? 100 * others / cap : 0,
	  cap > 0 ? 100 * s->steal_s / cap : 0);
	if (cap > 0 && others / cap > 0.1)
		P("WARNING: other processes competed for the CPUs: absolute figures (and syscall "
		  "counts, which\n         rise when a process is descheduled) suffer; the "
		  "paired ratios suffer less.\n");
	P("command: %s\n", s->command);
	P("runs: %.2f s measured after %.2f s warm-up; up to %d rounds, cases interleaved; "
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
	P("retries: %d of %d runs were made again because other processes took more than 10%% "
	  "of the CPUs;\n         %d runs kept were still disturbed so (their share is in the "
	  "JSON; > 15%%)\n",
	  again, runs, disturbed);
	section_spsc();
	section_multi(SC_MPSC);
	section_multi(SC_FANOUT);
	section_multi(SC_GROUP);
	section_pingpong();
	section_oneway();
	section_wakeup();
	section_syscalls();
	section_cpu();
	int missed = section_targets();
	section_absent();

	snprintf(path, sizeof(path), "%s/results.jsonl", s->outdir);
	FILE *j = fopen(path, "w");
	const char *json_err = NULL;
	if (j) {
		json_all(j);
		fclose(j);
	} else {
		json_err = strerror(errno);
	}
	plots(s->outdir);
	list_files(s->outdir, json_err);
	if (txt)
		fclose(txt);
	txt = NULL;
	fflush(out);
	return missed;
}
