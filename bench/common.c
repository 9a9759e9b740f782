/* SPDX-License-Identifier: MIT */
/*
 * What every file of the suite uses: the control block shared with the workers, the
 * worker's life cycle (ready, go, fail), clocks, the latency histogram, machine facts.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "bench.h"

struct ctl *ctl;
struct config cfg;

void wfail(const char *fmt, ...)
{
	uint32_t zero = 0;

	if (__atomic_compare_exchange_n(&ctl->failed, &zero, 1, 0, __ATOMIC_ACQ_REL,
					__ATOMIC_RELAXED)) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(ctl->err, sizeof(ctl->err), fmt, ap);
		va_end(ap);
	}
	_exit(1);
}

void futex_wait_u32(uint32_t *w, uint32_t val)
{
	/* Not FUTEX_PRIVATE: the word is in a mapping shared between processes. */
	syscall(SYS_futex, w, FUTEX_WAIT, val, NULL, NULL, 0);
}

void futex_wake_u32(uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void worker_ready_wait(void)
{
	/* Release: this worker's setup (a subscriber slot, say) precedes its readiness. */
	__atomic_fetch_add(&ctl->ready, 1, __ATOMIC_RELEASE);
	/* Acquire: pairs with the driver's release of go, so warm_end and end are visible.
	 * A futex, not a poll: the syscalls scenario counts every syscall after go. */
	while (!__atomic_load_n(&ctl->go, __ATOMIC_ACQUIRE))
		futex_wait_u32(&ctl->go, 0);
}

uint8_t *msg_buf(uint32_t size)
{
	uint8_t *b = aligned_alloc(64, ((size < 16 ? 16 : size) + 63) & ~63u);

	if (!b)
		wfail("out of memory for a %u-byte message", size);
	memset(b, 0x5a, size < 16 ? 16 : size);
	return b;
}

void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* ---- histogram -------------------------------------------------------------------------- */

static inline unsigned bucket_of(uint64_t v)
{
	if (v < H_SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
	unsigned i = (e - 5) * H_SUB + (unsigned)((v >> (e - 6)) & (H_SUB - 1));
	return i < H_BUCKETS ? i : H_BUCKETS - 1;
}

uint64_t hist_bucket_lo(unsigned i)
{
	if (i < H_SUB)
		return i;
	unsigned e = i / H_SUB + 5;
	return (uint64_t)(H_SUB + i % H_SUB) << (e - 6);
}

uint64_t hist_bucket_width(unsigned i)
{
	return i < H_SUB ? 1 : 1ull << (i / H_SUB - 1);
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_add(struct hist *h, uint64_t ns)
{
	h->b[bucket_of(ns)]++;
	h->n++;
	if (ns > h->max)
		h->max = ns;
	if (ns < h->min)
		h->min = ns;
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (unsigned i = 0; i < H_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->n += from->n;
	if (from->max > into->max)
		into->max = from->max;
	if (from->min < into->min)
		into->min = from->min;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	if (!h->n)
		return 0;
	if (q >= 1)
		return h->max;
	/* The rank of the sample at quantile q, 1-based: ceil(q * n), at least 1. */
	uint64_t rank = (uint64_t)(q * (double)h->n);
	if ((double)rank < q * (double)h->n)
		rank++;
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = hist_bucket_lo(i) + hist_bucket_width(i) / 2;
			return v > h->max ? h->max : v < h->min ? h->min : v;
		}
	}
	return h->max;
}

/* ---- machine facts ------------------------------------------------------------------------ */

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	if (*end == 'K')
		v <<= 10;
	else if (*end == 'M')
		v <<= 20;
	return v;
}

void machine_info(struct machine *m)
{
	struct utsname u;
	char line[512];
	FILE *f;

	memset(m, 0, sizeof(*m));
	m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(m->model, sizeof(m->model), "unknown");
	f = fopen("/proc/cpuinfo", "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "model name", 10)) {
				char *p = strchr(line, ':');

				if (p) {
					p += 1 + strspn(p + 1, " \t");
					p[strcspn(p, "\n")] = 0;
					snprintf(m->model, sizeof(m->model), "%s", p);
				}
				break;
			}
		}
		fclose(f);
	}
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s %s", u.sysname, u.release);
	/* The largest cache level cpu0 reports. */
	for (int i = 0; i < 8; i++) {
		char path[96];

		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
		f = fopen(path, "r");
		if (!f)
			break;
		if (fgets(line, sizeof(line), f)) {
			uint64_t v = parse_size(line);

			if (v > m->llc)
				m->llc = v;
		}
		fclose(f);
	}
	if (!m->llc)
		m->llc = 32u << 20;
}

void machine_cpu(double *busy_s, double *steal_s)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy_s = *steal_s = 0;
	if (!f)
		return;
	/* cpu  user nice system idle iowait irq softirq steal */
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]) == 8) {
		double hz = (double)sysconf(_SC_CLK_TCK);

		*busy_s = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
		*steal_s = (double)v[7] / hz;
	}
	fclose(f);
}

static double tv_s(struct timeval t)
{
	return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

double own_cpu(void)
{
	struct rusage a, b;

	getrusage(RUSAGE_SELF, &a);
	getrusage(RUSAGE_CHILDREN, &b);
	return tv_s(a.ru_utime) + tv_s(a.ru_stime) + tv_s(b.ru_utime) + tv_s(b.ru_stime);
}

int find_program(const char *prog, char *path, size_t n)
{
	const char *p = getenv("PATH");
	char dirs[4096];

	snprintf(dirs, sizeof(dirs), "%s", p && *p ? p : "/usr/local/bin:/usr/bin:/bin");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(path, n, "%s/%s", d, prog);
		if (access(path, X_OK) == 0)
			return 1;
	}
	path[0] = 0;
	return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

void rm_tree(const char *path)
{
	if (path[0])
		nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}
