/* SPDX-License-Identifier: MIT */
/*
 * What the suite reports: a readable table (stdout and report.txt) that states each
 * shmbus figure as a ratio to each peer and says in plain words which targets are met and
 * which are missed; one JSON object per case and per target (results.jsonl); PNG plots
 * made with gnuplot (throughput against size, latency CDFs), whose data files and script
 * go to a data/ subdirectory. The report ends with the list of the files it wrote.
 *
 * This file holds the frame: the opening lines (the run, the machine, how disturbed it
 * was), the order of the parts, and the closing list of files. report.h says which file
 * holds each part.
 */
#include <errno.h>
#include <stdarg.h>

#include "report.h"

/* Print to the report: on the caller's stream and in report.txt. */
void rprintf(const struct report *rp, const char *fmt, ...)
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

/* The opening lines: the run, the machine, and how much other processes disturbed it. */
static void opening(const struct report *rp)
{
	const struct suite *s = rp->s;

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
		"runs: %.2f s measured after %.2f s warm-up; up to %d rounds (wake-ups %d), cases "
		"interleaved; nothing pinned; %.0f s in all\n",
		cfg.secs, cfg.warm, cfg.rounds, cfg.wake_rounds, s->elapsed);
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

int report(struct suite *s, FILE *out)
{
	struct report rep = { .s = s, .out = out };
	const struct report *rp = &rep;
	struct targets tg;
	struct plots pl = { .n = 0 };
	char path[512];

	snprintf(path, sizeof(path), "%s/report.txt", s->outdir);
	rep.txt = fopen(path, "w");
	targets_build(&tg, s);

	opening(rp);
	tables_print(rp);
	summary_print(rp);
	int missed = targets_print(rp, &tg);
	tables_print_absent(rp);

	snprintf(path, sizeof(path), "%s/results.jsonl", s->outdir);
	FILE *j = fopen(path, "w");
	const char *json_err = NULL;
	if (j) {
		json_write(j, s, &tg);
		fclose(j);
	} else {
		json_err = strerror(errno);
	}
	plots_make(&pl, s, s->outdir);
	list_files(rp, &pl, s->outdir, json_err);
	if (rep.txt)
		fclose(rep.txt);
	fflush(out);
	return missed;
}
