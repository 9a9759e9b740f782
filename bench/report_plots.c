/* SPDX-License-Identifier: MIT */
/*
 * The plots, made with gnuplot: SPSC throughput and bandwidth against message size, and
 * latency CDFs (ping-pong, wake-up, one-way at each rate), one line per peer in the same
 * colour everywhere. The data files (*.dat), the script (plots.gp) and gnuplot's log go to
 * DIR/data/; gnuplot runs in DIR and writes the PNGs there.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report.h"

/* One colour per peer, the same in every plot; shmbus's own lines thick. */
static struct cell line_style(enum peer_id p)
{
	static const char *const color[NPEERS] = {
		[PEER_SHMBUS] = "#d62728",	[PEER_SHMBUS_OVW] = "#ff7f0e",
		[PEER_SHMBUS_SPIN] = "#8b0000", [PEER_BROKERED] = "#e7969c",
		[PEER_RING] = "#1f77b4",	[PEER_MEMCPY] = "#7f7f7f",
		[PEER_MEMCPY_DRAM] = "#bcbd22", [PEER_FUTEX] = "#000000",
		[PEER_PIPE] = "#8c564b",	[PEER_UNIX] = "#9467bd",
		[PEER_UNIX_STREAM] = "#e377c2", [PEER_ZMQ] = "#17becf",
		[PEER_ICEORYX] = "#9edae5",	[PEER_NATS] = "#c49c94",
		[PEER_REDIS_PUB] = "#2ca02c",	[PEER_REDIS_PUB_PIPE] = "#98df8a",
		[PEER_REDIS_XADD] = "#393b79",	[PEER_REDIS_XADD_PIPE] = "#aec7e8",
		[PEER_SHMBUS_ACK] = "#a50f15",	[PEER_REDIS_XACK_PIPE] = "#5254a3",
		[PEER_SHMBUS_SINK] = "#fdae6b", [PEER_SHMBUS_SINK_FD] = "#e6550d",
		[PEER_SHMBUS_FD] = "#fd8d3c",	[PEER_SHMBUS_SINK1] = "#fdd0a2",
	};
	struct cell b;

	snprintf(b.s, sizeof(b.s), "lc rgb '%s' lw %d dt %d", color[p],
		 (peers[p]->flags & PF_SHMBUS) ? 3 : 2,
		 p == PEER_SHMBUS_OVW ? 2 :
		 p == PEER_BROKERED   ? 3 :
					1);
	return b;
}

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

/* The latency CDF plots: the 64 B cases of one scenario (and rate), one line per peer; what
 * is a few words on it for the list of files. */
static const struct cdf_plot {
	const char *png, *title, *what;
	enum scenario sc;
	uint32_t rate;
} cdf_plots[] = {
	{ "latency_pingpong.png", "Ping-pong round trip, 64 B: CDF (all rounds)",
	  "ping-pong round trip CDF", SC_PINGPONG, 0 },
	{ "latency_wakeup.png",
	  "Wake-up round trip (both sides asleep, on different CPUs), 64 B: CDF",
	  "wake-up round trip CDF", SC_WAKEUP, 0 },
	{ "latency_oneway_10k.png",
	  "One-way latency at 10 k msg/s from the intended send time, 64 B: CDF",
	  "one-way latency CDF at 10 k msg/s", SC_ONEWAY, 10000 },
	{ "latency_oneway_100k.png",
	  "One-way latency at 100 k msg/s from the intended send time, 64 B: CDF",
	  "one-way latency CDF at 100 k msg/s", SC_ONEWAY, 100000 },
	{ "latency_oneway_1m.png",
	  "One-way latency at 1 M msg/s from the intended send time, 64 B: CDF",
	  "one-way latency CDF at 1 M msg/s", SC_ONEWAY, 1000000 },
};

/* One CDF plot, if this run has its cases; returns whether it has. */
static int plot_cdf(struct plots *pl, const struct suite *s, FILE *gp, const char *dir,
		    const struct cdf_plot *cp)
{
	const enum scenario sc = cp->sc;
	const uint32_t rate = cp->rate;
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
				cp->png, cp->title);
			plot_add(pl, cp->png, cp->what);
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

/* The SPSC throughput and bandwidth plots against message size, from one data file per peer;
 * returns how many peers have a line. */
static int plot_throughput(struct plots *pl, const struct suite *s, FILE *gp, const char *dir)
{
	char path[512];
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
					int i = case_find_spsc(s, p, all_sizes[k]);
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
	return lines;
}

void plots_make(struct plots *pl, const struct suite *s, const char *dir)
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
	int lines = plot_throughput(pl, s, gp, dir);
	int cdfs = 0;
	for (size_t k = 0; k < sizeof(cdf_plots) / sizeof(cdf_plots[0]); k++)
		cdfs += plot_cdf(pl, s, gp, dir, &cdf_plots[k]);
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
