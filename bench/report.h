/* SPDX-License-Identifier: MIT */
/*
 * What the files of the report share; the rest of bench/ calls only report() (bench.h).
 *
 *   report.c          report(): the opening lines, the order of the parts, the list of files
 *   report_figures.c  a case's figures: looking cases up, medians, paired ratios, number formats
 *   report_tables.c   the table's sections: throughput, latency, syscalls, instructions, absent,
 *                     and the summary (a row a scenario, a column a peer)
 *   report_sinks.c    the table's sinks-and-fds section (issue 16)
 *   report_targets.c  the targets: built from the figures, printed MET / MISSED / UNKNOWN
 *   report_json.c     results.jsonl: one JSON object per case and per target
 *   report_plots.c    the plots: data files and gnuplot script in data/, gnuplot run, PNGs
 *
 * Nothing here keeps state between calls: report() holds the report, the targets and the
 * plots, and passes them to what needs them.
 */
#ifndef SHMBUS_BENCH_REPORT_H
#define SHMBUS_BENCH_REPORT_H

#include "bench.h"

/* The report being written: the suite it reports on and where its text goes. */
struct report {
	const struct suite *s;
	FILE *out; /* the caller's (stdout) */
	FILE *txt; /* DIR/report.txt; NULL if it could not be made */
};

/* Print to the report: on the caller's stream and in report.txt (report.c). */
__attribute__((format(printf, 2, 3))) void rprintf(const struct report *rp, const char *fmt, ...);

/* ---- a case's figures (report_figures.c) ---------------------------------------------------- */

/* The message sizes the tables and plots know, smallest first. */
#define NSIZES 8
extern const uint32_t all_sizes[NSIZES];
/* The peers of the SPSC tables and plots, in their order. */
#define NSPSC_PEERS 15
extern const enum peer_id spsc_peers[NSPSC_PEERS];

/* The index of the case with these parameters in s->cases, or -1 if this run has none. */
int case_find_pin(const struct suite *s, enum scenario sc, enum peer_id peer, uint32_t size,
		  int npub, int nsub, uint32_t rate, enum pin pin);
/* The same, not pinned. */
int case_find(const struct suite *s, enum scenario sc, enum peer_id peer, uint32_t size, int npub,
	      int nsub, uint32_t rate);
/* Peer p's SPSC case at this size: one publisher, one subscriber (the memcpy peers copy
 * alone: none). */
int case_find_spsc(const struct suite *s, enum peer_id p, uint32_t size);

/* What a figure is of a run (struct result). */
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

/* The median of v[0..n) (n > 0); sorts v. */
double median_of(double *v, int n);
/* The median of case i's successful rounds; NAN if none (or i < 0). The lowest and highest
 * in lo and hi where not NULL. */
double case_med(const struct suite *s, int i, enum metric m, double *lo, double *hi);
/* Case a's figure over case b's: the median of the per-round ratios, pairs the number of
 * rounds both had (0: the ratio of their medians); lo and hi as for case_med(). */
double case_ratio(const struct suite *s, int a, int b, enum metric m, int *pairs, double *lo,
		  double *hi);
/* What a cell shows when case i has no figure ("absent", "FAILED", "-"); NULL if it has. */
const char *case_status(const struct suite *s, int i);

/* A figure as text, returned by value: fmt_msgs(v).s lives until the end of the full
 * expression that holds the call (C11), long enough for the printf it is an argument of. */
struct cell {
	char s[64];
};
struct cell fmt_msgs(double v);	  /* 1.23M, 45.6k, 789 */
struct cell fmt_bw(double v);	  /* bytes/s: 1.23G, 45.6M, 789k */
struct cell fmt_ns(double v);	  /* 123ns, 4.5us, 67ms, 1.2s */
struct cell fmt_ratio(double r);  /* 123x, 45.6x, 7.89x, 0.012x */
struct cell fmt_size(uint32_t s); /* 64 B, 16 KiB, 1 MiB */
/* case_ratio() of a over b, as a cell. */
struct cell ratio_cell(const struct suite *s, int a, int b, enum metric m);

/* ---- the table (report_tables.c) ------------------------------------------------------------ */

/* The figures' sections: SPSC, MPSC, fan-out, group, ping-pong, one-way, wake-up, syscalls,
 * instructions, brokered mode, sinks and fds; each only if this run has its cases. */
void tables_print(const struct report *rp);
/* A latency table's header, extra at the end; one row of case i (the merged histogram of
 * its rounds), labelled label: returns 1, or 0 where it has no figure (why is printed). */
void latency_header(const struct report *rp, const char *extra);
int latency_row_as(const struct report *rp, int i, const char *label);

/* ---- sinks and fds (report_sinks.c) --------------------------------------------------------- */

/* The sinks-and-fds section (issue 16), if this run has its cases. */
void section_sinks(const struct report *rp);
/* What could not run here, and the cases that failed. */
void tables_print_absent(const struct report *rp);

/* ---- the summary (report_tables.c) ---------------------------------------------------------- */

/* The summary: one row a scenario at 64 B with its figure, one column a peer; printed
 * before the targets, and a line of results.jsonl. */
#define NSUM_ROWS 8
#define NSUM_COLS 9
struct sum_row {
	const char *what, *key; /* the table's, the JSON's */
	enum scenario sc;
	int nsub;
	enum pin pin;
	enum metric m; /* MT_MSGS, MT_PUB or MT_P50 */
};
struct sum_col {
	const char *name, *key;
	/* The peer's case in each scenario: Redis takes a different form in some. */
	enum peer_id peer, in_group, in_pingpong;
};
extern const struct sum_row sum_rows[NSUM_ROWS];
extern const struct sum_col sum_cols[NSUM_COLS];
/* The case of row r in column c in this run, or -1. */
int sum_case(const struct suite *s, int r, int c);
void summary_print(const struct report *rp);

/* ---- targets (report_targets.c) ------------------------------------------------------------- */

struct target {
	const char *id;
	const char *what; /* "shmbus SPSC 64 B against the bare ring's msg/s" */
	/* Case indices, a over b. a < 0 or b == -1: not part of this run (not reported);
	 * b == -2: an absolute figure of a; b == -3: instructions, from callgrind. */
	int a, b;
	enum metric m;
	int at_most;
	double want;
	double got;
	int pairs;
	double lo, hi;
	int known;
	const char *why_unknown;
	const char *unit;  /* an absolute figure's unit ("ms"); NULL: none */
	char context[200]; /* what else this run says about it */
};

#define MAX_TARGETS 48
/* The targets of this run, in the order the report lists them. */
struct targets {
	struct target t[MAX_TARGETS];
	int n;
};

void targets_build(struct targets *tg, const struct suite *s);
/* Is t known and met? */
int target_met(const struct target *t);
/* The targets' section of the table; returns how many were missed or unknown. */
int targets_print(const struct report *rp, const struct targets *tg);

/* ---- results.jsonl (report_json.c) ---------------------------------------------------------- */

/* One line per case (the callgrind counts included) and per target of this run. */
void json_write(FILE *f, const struct suite *s, const struct targets *tg);

/* ---- plots (report_plots.c) ----------------------------------------------------------------- */

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

/* Write the plots' data and script under dir/data and run gnuplot in dir, which writes the
 * PNGs there. Fills pl->list, or pl->why if there are no plots. */
void plots_make(struct plots *pl, const struct suite *s, const char *dir);

#endif
