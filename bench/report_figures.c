/* SPDX-License-Identifier: MIT */
/*
 * A case's figures, as the table, the targets, the JSON and the plots take them: finding a
 * case by its parameters, the median of its rounds, the ratio of two cases, and the short
 * forms numbers take in the table.
 *
 * A figure is the median of a case's rounds. A ratio between two cases is the median of the
 * per-round ratios (the two ran close together in each round, so each ratio saw one state of
 * the machine); where they share no round, the ratio of their medians.
 */
#include <math.h>
#include <stdlib.h>

#include "report.h"

/* NSIZES and NSPSC_PEERS of them (report.h): one more is an error, one fewer a hole. */
const uint32_t all_sizes[] = { 8, 64, 256, 1024, 4096, 16384, 65536, 1048576 };

const enum peer_id spsc_peers[] = {
	PEER_SHMBUS,
	PEER_SHMBUS_OVW,
	PEER_RING,
	PEER_MEMCPY,
	PEER_MEMCPY_DRAM,
	PEER_PIPE,
	PEER_UNIX,
	PEER_UNIX_STREAM,
	PEER_ZMQ,
	PEER_ICEORYX,
	PEER_NATS,
	PEER_REDIS_PUB,
	PEER_REDIS_PUB_PIPE,
	PEER_REDIS_XADD,
	PEER_REDIS_XADD_PIPE,
};

int case_find_pin(const struct suite *s, enum scenario sc, enum peer_id peer, uint32_t size,
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

int case_find(const struct suite *s, enum scenario sc, enum peer_id peer, uint32_t size, int npub,
	      int nsub, uint32_t rate)
{
	return case_find_pin(s, sc, peer, size, npub, nsub, rate, PIN_NONE);
}

int case_find_spsc(const struct suite *s, enum peer_id p, uint32_t size)
{
	return case_find(s, SC_SPSC, p, size, 1, p == PEER_MEMCPY || p == PEER_MEMCPY_DRAM ? 0 : 1,
			 0);
}

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

double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double case_med(const struct suite *s, int i, enum metric m, double *lo, double *hi)
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

double case_ratio(const struct suite *s, int a, int b, enum metric m, int *pairs, double *lo,
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

/* ---- the table's number formats ---------------------------------------------------------- */

/* v / div to prec decimals, then unit; NaN (no figure) as "-". Each format below picks div,
 * prec and unit from v; a NaN fails all its comparisons and ends here at the last. */
static struct cell scaled(double v, double div, int prec, const char *unit)
{
	struct cell b;

	if (isnan(v))
		snprintf(b.s, sizeof(b.s), "-");
	else
		snprintf(b.s, sizeof(b.s), "%.*f%s", prec, v / div, unit);
	return b;
}

struct cell fmt_msgs(double v)
{
	if (v >= 1e6)
		return scaled(v, 1e6, v >= 1e8 ? 0 : v >= 1e7 ? 1 : 2, "M");
	if (v >= 1e3)
		return scaled(v, 1e3, v >= 1e5 ? 0 : v >= 1e4 ? 1 : 2, "k");
	return scaled(v, 1, 0, "");
}

struct cell fmt_bw(double v)
{
	if (v >= 1e9)
		return scaled(v, 1e9, 2, "G");
	if (v >= 1e6)
		return scaled(v, 1e6, 1, "M");
	return scaled(v, 1e3, 0, "k");
}

struct cell fmt_ns(double v)
{
	if (v < 1e4)
		return scaled(v, 1, 0, "ns");
	if (v < 1e7)
		return scaled(v, 1e3, v < 1e5 ? 1 : 0, "us");
	if (v < 1e10)
		return scaled(v, 1e6, v < 1e8 ? 1 : 0, "ms");
	return scaled(v, 1e9, 1, "s");
}

struct cell fmt_ratio(double r)
{
	return scaled(r, 1, r >= 100 ? 0 : r >= 10 ? 1 : r >= 0.1 ? 2 : 3, "x");
}

struct cell fmt_size(uint32_t s)
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

struct cell ratio_cell(const struct suite *s, int a, int b, enum metric m)
{
	int pairs;

	return fmt_ratio(case_ratio(s, a, b, m, &pairs, NULL, NULL));
}

const char *case_status(const struct suite *s, int i)
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
