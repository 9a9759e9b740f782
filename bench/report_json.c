/* SPDX-License-Identifier: MIT */
/*
 * results.jsonl: one JSON object a line, for each case (its parameters, status, the
 * medians and spread of its rounds, each round's figures, the machine it ran on), for the
 * callgrind counts, the summary table, and for each target of this run.
 */
#include <math.h>

#include "report.h"

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

/* ,"key":v, v a number or null. */
static void json_field(FILE *f, const char *key, double v)
{
	fprintf(f, ",\"%s\":", key);
	json_num(f, v);
}

/* What every line holds: the suite, the mode, the revision and the machine. */
static void json_common(FILE *f, const struct suite *s)
{
	fprintf(f, "\"suite\":\"shmbus-bench\",\"mode\":\"%s\",\"git\":", cfg.mode);
	json_str(f, s->git);
	fprintf(f, ",\"machine\":{\"nproc\":%ld,\"model\":", s->m.nproc);
	json_str(f, s->m.model);
	fprintf(f, ",\"kernel\":");
	json_str(f, s->m.kernel);
	fprintf(f, ",\"llc_bytes\":%" PRIu64, s->m.llc);
	json_field(f, "loadavg_at_start", s->loadavg);
	json_field(f, "loadavg_at_end", s->loadavg_end);
	json_field(f, "other_processes_cpu_s", s->busy_s - s->own_s);
	json_field(f, "steal_cpu_s", s->steal_s);
	json_field(f, "run_seconds", s->elapsed);
	fprintf(f, "}");
}

/* The indices of cr's successful rounds, in order, in k[]; returns how many. */
static int rounds_ok(const struct caseres *cr, int k[MAX_ROUNDS])
{
	int n = 0;

	for (int j = 0; j < MAX_ROUNDS; j++)
		if (cr->r[j].ok)
			k[n++] = j;
	return n;
}

static void json_case(FILE *f, const struct suite *s, int i)
{
	const struct casedef *c = &s->cases[i];
	const struct caseres *cr = &s->res[i];
	const struct peer *p = peers[c->peer];
	static const char *const st[] = { "not_run", "ok", "absent", "failed" };
	int ok[MAX_ROUNDS], nok = rounds_ok(cr, ok);

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
	if (p->flags & PF_SHMBUS) {
		int sink = c->peer == PEER_SHMBUS_SINK || c->peer == PEER_SHMBUS_SINK_FD ||
			   c->peer == PEER_SHMBUS_SINK1;

		fprintf(f, ",\"access\":\"%s\"", c->peer == PEER_BROKERED ? "brokered" : "file");
		/* Issue 16: what reads, how many topics, and how it waits. */
		fprintf(f, ",\"reader\":\"%s\",\"topics\":%d,\"wait\":\"%s\"",
			sink ? "sink" : "subscriber",
			sink && c->peer != PEER_SHMBUS_SINK1 ? SINK_TOPICS : 1,
			c->peer == PEER_SHMBUS_SINK_FD || c->peer == PEER_SHMBUS_FD ? "epoll" :
			sink							    ? "sink_recv" :
										      "recv");
	}
	if (cr->status == CS_ABSENT || cr->status == CS_FAILED) {
		fprintf(f, ",\"reason\":");
		json_str(f, cr->why);
	}
	fprintf(f, ",\"rounds\":%d,\"rounds_failed\":%d", cr->runs_ok, cr->runs_failed);
	fprintf(f, ",\"others_cpu_share\":[");
	for (int j = 0; j < nok; j++)
		fprintf(f, "%s%.3f", j ? "," : "", cr->r[ok[j]].others);
	fprintf(f, "],\"attempts\":[");
	for (int j = 0; j < nok; j++)
		fprintf(f, "%s%d", j ? "," : "", cr->r[ok[j]].attempts);
	fprintf(f, "]");
	if (!cr->runs_ok) {
		fprintf(f, "}\n");
		return;
	}
	double lo, hi;
	double msgs = case_med(s, i, MT_MSGS, &lo, &hi);
	int lat = c->sc == SC_PINGPONG || c->sc == SC_WAKEUP || c->sc == SC_ONEWAY ||
		  c->sc == SC_OPEN;
	if (!lat) {
		json_field(f, "msgs_per_s", msgs);
		json_field(f, "bytes_per_s", msgs * c->size);
		json_field(f, "msgs_per_s_min", lo);
		json_field(f, "msgs_per_s_max", hi);
		json_field(f, "pub_msgs_per_s", case_med(s, i, MT_PUB, NULL, NULL));
		json_field(f, "lost_fraction", case_med(s, i, MT_LOST, NULL, NULL));
		fprintf(f, ",\"runs_msgs_per_s\":[");
		for (int j = 0; j < nok; j++) {
			fprintf(f, "%s", j ? "," : "");
			json_num(f, cr->r[ok[j]].msgs);
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
		for (int j = 0; j < nok; j++)
			fprintf(f, "%s%" PRIu64, j ? "," : "", cr->r[ok[j]].p50);
		fprintf(f, "]");
		if (c->sc == SC_ONEWAY) {
			int sat = 0;

			for (int j = 0; j < nok; j++)
				sat |= cr->r[ok[j]].saturated;
			json_field(f, "achieved_rate", msgs);
			fprintf(f, ",\"saturated\":%s", sat ? "true" : "false");
		}
	}
	double cs[MAX_ROUNDS];
	for (int j = 0; j < nok; j++)
		cs[j] = cr->r[ok[j]].cpu_s;
	fprintf(f, ",\"cpu\":{\"seconds_per_run\":");
	json_num(f, nok ? median_of(cs, nok) : NAN);
	json_field(f, "ns_per_msg", case_med(s, i, MT_CPU, NULL, NULL));
	fprintf(f, "}");
	double sys = case_med(s, i, MT_SYSCALLS, NULL, NULL);
	if (c->sc == SC_WAKEUP && sys >= 0)
		json_field(f, "syscalls_per_round_trip", sys);
	if (c->sc == SC_SYSCALLS || (p->flags & PF_SHMBUS)) {
		double w = case_med(s, i, MT_WAKEUPS, NULL, NULL);

		if (c->sc == SC_SYSCALLS)
			json_field(f, "syscalls_per_msg", sys);
		if (w >= 0) {
			json_field(f, "futex_wakes_per_msg", w);
			json_field(f, "backpressure_waits_per_msg",
				   case_med(s, i, MT_BP, NULL, NULL));
		}
	}
	fprintf(f, "}\n");
}

/* The callgrind counts, as two more cases (shmbus, the bare ring) of scenario "cpu". */
static void json_cpu(FILE *f, const struct suite *s)
{
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
			fprintf(f, "\"ok\"");
			json_field(f, "instructions_per_msg", c->per_msg);
			json_field(f, "instructions_publish", c->publish);
			json_field(f, "instructions_recv", c->recv);
		}
		fprintf(f, "}\n");
	}
}

static void json_target(FILE *f, const struct suite *s, const struct target *t)
{
	fprintf(f, "{\"type\":\"target\",");
	json_common(f, s);
	fprintf(f, ",\"target\":\"%s\",\"what\":", t->id);
	json_str(f, t->what);
	fprintf(f, ",\"op\":\"%s\",\"want\":%g", t->at_most ? "<=" : ">=", t->want);
	if (t->unit)
		fprintf(f, ",\"unit\":\"%s\"", t->unit);
	json_field(f, "value", t->known ? t->got : NAN);
	fprintf(f, ",\"paired_rounds\":%d,\"status\":\"%s\"}\n", t->pairs,
		!t->known     ? "unknown" :
		target_met(t) ? "met" :
				"missed");
}

/*
 * The summary table as one line: for each of its rows this run has, the row's scenario
 * and figure, and per column (a peer) the case's peer, status and median figure.
 */
static void json_summary(FILE *f, const struct suite *s)
{
	static const char *const st[] = { "not_run", "ok", "absent", "failed" };
	int any = 0;

	for (int r = 0; r < NSUM_ROWS; r++) {
		const struct sum_row *w = &sum_rows[r];
		int first = 1;

		for (int c = 0; c < NSUM_COLS; c++) {
			int i = sum_case(s, r, c);

			if (i < 0)
				continue;
			if (!any) {
				fprintf(f, "{\"type\":\"summary\",");
				json_common(f, s);
				fprintf(f, ",\"size\":64,\"rows\":[");
			}
			if (first) {
				fprintf(f, "%s{\"row\":\"%s\",\"what\":", any ? "," : "", w->key);
				json_str(f, w->what);
				fprintf(f,
					",\"scenario\":\"%s\",\"subscribers\":%d,\"pinned\":\"%s\","
					"\"figure\":\"%s\",\"cells\":{",
					scenario_names[w->sc], w->nsub,
					w->pin == PIN_SPLIT ? "split" :
					w->pin == PIN_SAME  ? "same_cpu" :
							      "no",
					w->m == MT_P50 ? "p50_ns" :
					w->m == MT_PUB ? "pub_msgs_per_s" :
							 "msgs_per_s");
			}
			any = 1;
			fprintf(f, "%s\"%s\":{\"peer\":\"%s\",\"status\":\"%s\"", first ? "" : ",",
				sum_cols[c].key, peers[s->cases[i].peer]->id, st[s->res[i].status]);
			first = 0;
			json_field(f, "value", case_med(s, i, w->m, NULL, NULL));
			if (w->m != MT_P50)
				json_field(f, "lost_fraction", case_med(s, i, MT_LOST, NULL, NULL));
			fprintf(f, "}");
		}
		if (!first)
			fprintf(f, "}}");
	}
	if (any)
		fprintf(f, "]}\n");
}

void json_write(FILE *f, const struct suite *s, const struct targets *tg)
{
	for (int i = 0; i < s->n; i++)
		json_case(f, s, i);
	if (s->cpu_ok || strcmp(s->cpu_why, "not selected"))
		json_cpu(f, s);
	json_summary(f, s);
	for (int k = 0; k < tg->n; k++)
		if (tg->t[k].a >= 0 && tg->t[k].b != -1) /* not part of this run otherwise */
			json_target(f, s, &tg->t[k]);
}
