/* SPDX-License-Identifier: MIT */
/*
 * results.jsonl: one JSON object a line, for each case (its parameters, status, the
 * medians and spread of its rounds, each round's figures, the machine it ran on), for the
 * callgrind counts, and for each target of this run.
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

void json_write(FILE *f, const struct suite *s, const struct targets *tg)
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
			!t->known     ? "unknown" :
			target_met(t) ? "met" :
					"missed");
	}
}
