/* SPDX-License-Identifier: MIT */
/*
 * One run of one case. The driver prepares the channel (peer->prepare), forks the workers,
 * waits until each is set up, and starts them all at once (a futex on ctl->go). Then, by
 * kind of scenario:
 *
 *   throughput  after the warm-up, the driver samples every worker's message counter, and
 *               again after the measured time: rates come from those two samples, so
 *               every scenario (SPSC, MPSC, fan-out, group) is measured the same way. Then
 *               the publishers stop, and the driver waits until every reader has accounted
 *               for every message published (received, or reported lost) before it ends
 *               the readers: a message missing from a lossless channel fails the run.
 *   round trip  the pinger measures and exits; the ponger is ended.
 *   opens       one worker opens and closes a publisher or a subscriber, timing each
 *               pair, and exits (measured like a round trip, alone).
 *   paced       the receiver measures from each message's intended send time and exits
 *               when the sender's end marker comes.
 *
 * CPU time is the workers' (from wait4), plus that of the servers the suite started
 * (redis-server, nats-server, iox-roudi) during the run. With
 * SC_SYSCALLS, perf counts the workers' syscalls (the raw_syscalls:sys_enter tracepoint)
 * over exactly the measured window (perf stat --control: enabled and disabled by the
 * driver at the window's edges).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bench.h"

struct kid {
	pid_t pid;
	int ended; /* ended by the driver (SIGKILL); else it ends by itself */
	int done;
	int status;
	double cpu;
};

static struct kid kids[MAX_WORKERS];
static int nkids;
static pid_t perf_pid;

/* From a signal handler too: only kill(). */
void run_kill_all(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i].pid > 0 && !kids[i].done)
			kill(kids[i].pid, SIGKILL);
	if (perf_pid > 0)
		kill(perf_pid, SIGKILL);
}

/* The CPUs this process may run on, for pinning. */
static int cpus[CPU_SETSIZE], ncpus = -1;

static void pin_worker(int pin, int worker)
{
	if (ncpus < 0) {
		cpu_set_t set;

		ncpus = 0;
		if (sched_getaffinity(0, sizeof(set), &set) == 0)
			for (int c = 0; c < CPU_SETSIZE; c++)
				if (CPU_ISSET(c, &set))
					cpus[ncpus++] = c;
	}
	if (pin == PIN_NONE || !ncpus)
		return;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpus[pin == PIN_SAME ? 0 : worker % ncpus], &one);
	if (sched_setaffinity(0, sizeof(one), &one) < 0)
		wfail("sched_setaffinity: %s", strerror(errno));
}

static pid_t spawn(role_fn fn, struct run *r, int idx, int ended)
{
	pid_t parent = getpid();
	int worker = nkids;

	pin_worker(PIN_NONE, 0); /* learn the CPUs in the driver, before the fork */

	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		/* A worker never outlives the suite. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		pin_worker(r->c->pin, worker);
		fn(r, idx);
		_exit(0);
	}
	if (pid > 0) {
		kids[nkids] = (struct kid){ .pid = pid, .ended = ended };
		nkids++;
	}
	return pid;
}

/* Reap what has exited. Returns how many of the selected kids are still running. */
static int reap_some(int all, int *bad)
{
	int left = 0;

	for (int i = 0; i < nkids; i++) {
		struct kid *k = &kids[i];
		struct rusage ru;
		int st;

		if (k->done || (k->ended && !all))
			continue;
		if (wait4(k->pid, &st, WNOHANG, &ru) == k->pid) {
			k->done = 1;
			k->status = st;
			k->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
				 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
			/* A worker ended by the driver dies of SIGKILL; anything else is bad. */
			if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
			    !(k->ended && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
				if (!ctl->failed && !ctl->err[0])
					snprintf(ctl->err, sizeof(ctl->err), "a worker %s %d",
						 WIFSIGNALED(st) ? "was killed by signal" :
								   "exited with status",
						 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
				*bad = 1;
			}
		} else {
			left++;
		}
	}
	return left;
}

/* Wait for the selected kids until deadline, then kill them. 0, or -1 if any failed. */
static int reap_until(uint64_t deadline, int all)
{
	int bad = 0;

	while (reap_some(all, &bad)) {
		if (now_ns() > deadline) {
			for (int i = 0; i < nkids; i++)
				if (!kids[i].done && (all || !kids[i].ended))
					kill(kids[i].pid, SIGKILL);
			if (!ctl->err[0])
				snprintf(ctl->err, sizeof(ctl->err), "workers hung; killed");
			bad = 1;
			deadline = UINT64_MAX;
		}
		usleep(500);
	}
	return bad || ctl->failed ? -1 : 0;
}

/* End the workers the driver ends. */
static void end_workers(void)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i].ended && !kids[i].done)
			kill(kids[i].pid, SIGKILL);
}

/* ---- perf: syscalls over a window ----------------------------------------------------------- */

static int perf_ctl = -1, perf_ack = -1;
static char perf_out[200], perf_ctl_path[200], perf_ack_path[200];

int perf_available(char *why, size_t n)
{
	char prog[PATH_MAX];

	if (!find_program("perf", prog, sizeof(prog))) {
		snprintf(why, n, "perf not found (install linux-perf)");
		return 0;
	}
	/* The tracepoint must be there and readable: try it on a trivial command. */
	if (system("perf stat -e raw_syscalls:sys_enter -x, -o /dev/null -- true "
		   ">/dev/null 2>&1") != 0) {
		snprintf(why, n,
			 "perf cannot count raw_syscalls:sys_enter here "
			 "(tracefs or permissions)");
		return 0;
	}
	return 1;
}

static int perf_cmd(const char *cmd)
{
	char buf[64];
	struct pollfd p = { .fd = perf_ack, .events = POLLIN };

	if (write(perf_ctl, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		return -1;
	if (poll(&p, 1, 3000) != 1)
		return -1;
	ssize_t n = read(perf_ack, buf, sizeof(buf) - 1);
	return n > 0 && !strncmp(buf, "ack", 3) ? 0 : -1;
}

/* Switch counting on or off; 0, or -1 with err. */
static int perf_count(int on, char *err, size_t errlen)
{
	if (perf_cmd(on ? "enable\n" : "disable\n") == 0)
		return 0;
	snprintf(err, errlen, "perf did not %s counting", on ? "enable" : "disable");
	return -1;
}

static void perf_close(void)
{
	if (perf_ctl >= 0)
		close(perf_ctl);
	if (perf_ack >= 0)
		close(perf_ack);
	perf_ctl = perf_ack = -1;
	if (perf_pid > 0) {
		kill(perf_pid, SIGKILL);
		waitpid(perf_pid, NULL, 0);
	}
	perf_pid = 0;
	unlink(perf_ctl_path);
	unlink(perf_ack_path);
}

/* Attach perf, counting disabled, to the workers. 0 or -1. */
static int perf_start(char *err, size_t errlen)
{
	char pids[256] = "", *p = pids;

	snprintf(perf_out, sizeof(perf_out), "%s/perf.out", cfg.dir);
	snprintf(perf_ctl_path, sizeof(perf_ctl_path), "%s/perf.ctl", cfg.dir);
	snprintf(perf_ack_path, sizeof(perf_ack_path), "%s/perf.ack", cfg.dir);
	unlink(perf_out);
	unlink(perf_ctl_path);
	unlink(perf_ack_path);
	if (mkfifo(perf_ctl_path, 0600) < 0 || mkfifo(perf_ack_path, 0600) < 0) {
		snprintf(err, errlen, "mkfifo: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < nkids; i++)
		p += snprintf(p, sizeof(pids) - (size_t)(p - pids), "%s%d", i ? "," : "",
			      (int)kids[i].pid);
	char control[420];
	snprintf(control, sizeof(control), "fifo:%s,%s", perf_ctl_path, perf_ack_path);
	fflush(NULL);
	perf_pid = fork();
	if (perf_pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execlp("perf", "perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,", "-o",
		       perf_out, "-D", "-1", "--control", control, "-p", pids, (char *)NULL);
		_exit(127);
	}
	if (perf_pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		perf_pid = 0;
		return -1;
	}
	perf_ack = open(perf_ack_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	/* The write end opens once perf has opened the fifo for reading. */
	for (int i = 0; i < 5000 && perf_ctl < 0; i++) {
		perf_ctl = open(perf_ctl_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (perf_ctl < 0) {
			if (waitpid(perf_pid, NULL, WNOHANG) == perf_pid) {
				perf_pid = 0;
				break;
			}
			usleep(1000);
		}
	}
	if (perf_ctl < 0 || perf_ack < 0) {
		snprintf(err, errlen, "perf did not start");
		perf_close();
		return -1;
	}
	return 0;
}

/* Stop perf and read its count; -1 if there is none. */
static int64_t perf_finish(void)
{
	char line[512];
	int64_t count = -1;

	if (perf_pid > 0) {
		kill(perf_pid, SIGINT);
		waitpid(perf_pid, NULL, 0);
		perf_pid = 0;
	}
	perf_close();
	FILE *f = fopen(perf_out, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "raw_syscalls:sys_enter"))
			continue;
		count = !strncmp(line, "<not counted>", 13) ? 0 : strtoll(line, NULL, 10);
	}
	fclose(f);
	return count;
}

/* ---- one run ---------------------------------------------------------------------------------- */

static uint64_t capacity_for(uint32_t size)
{
	uint64_t c = 1u << 20;

	while (c < 4ull * size)
		c *= 2;
	return c;
}

/* Sum the counters of the publishers (the first npub workers) and of the readers. */
static void snap(int npub, uint64_t *pub, uint64_t *got)
{
	*pub = *got = 0;
	for (int i = 0; i < nkids; i++) {
		/* Relaxed: counters only grow; any recent value will do. */
		uint64_t c = __atomic_load_n(&ctl->w[i].count, __ATOMIC_RELAXED);

		if (i >= npub)
			*got += c;
		else
			*pub += c;
	}
}

/* Wait until the first n workers (the publishers) have sent all. 0, or -1 (with err). */
static int senders_done(int n, uint64_t deadline)
{
	for (;;) {
		int bad = 0, done = 1;

		for (int i = 0; i < n; i++)
			/* Acquire: pairs with sender_done(); the final count is visible. */
			done &= __atomic_load_n(&ctl->w[i].done, __ATOMIC_ACQUIRE) != 0;
		if (done)
			return 0;
		reap_some(1, &bad);
		if (bad || ctl->failed)
			return -1;
		if (now_ns() > deadline) {
			snprintf(ctl->err, sizeof(ctl->err), "publishers did not finish");
			return -1;
		}
		usleep(500);
	}
}

/*
 * After the publishers are done: wait until the readers account for all published
 * messages. Returns 0, or -1 (with err) if a lossless channel came up short.
 */
static int converge(const struct run *r, const struct peer *p, uint64_t published,
		    uint64_t *missing)
{
	const int group = r->c->sc == SC_GROUP;
	const int silent = p->flags & PF_SILENT_LOSS;
	uint64_t last = UINT64_MAX, t_progress = now_ns();

	*missing = 0;
	for (;;) {
		uint64_t sum = 0, short_by = 0;
		int done = 1;

		for (int j = 0; j < r->nsub; j++) {
			struct wslot *w = &ctl->w[r->npub + j];
			uint64_t have = __atomic_load_n(&w->count, __ATOMIC_RELAXED) +
					__atomic_load_n(&w->lost, __ATOMIC_RELAXED);

			sum += have;
			if (!group && have < published) {
				done = 0;
				short_by += published - have;
			}
		}
		if (group && sum < published) {
			done = 0;
			short_by = published - sum;
		}
		if (done || ctl->failed)
			return ctl->failed ? -1 : 0;
		uint64_t t = now_ns();
		if (sum != last) {
			last = sum;
			t_progress = t;
		}
		/* A lossy channel that stopped delivering has lost the rest. */
		if (silent && t - t_progress > 300000000ull) {
			*missing = short_by;
			return 0;
		}
		if (t - t_progress > 5000000000ull) {
			snprintf(ctl->err, sizeof(ctl->err),
				 "readers are %" PRIu64 " messages short of the %" PRIu64
				 " published, and nothing came for 5 s",
				 short_by, published);
			return -1;
		}
		usleep(1000);
	}
}

/*
 * A group, once its readers are ended: every message published came to exactly one member.
 * Each member checked that its own messages came in order, none twice; here the counts,
 * the sums of the tags and the sums of their hashes over all members must be those of the
 * tags published (a message taken by two members and another by none would keep the count
 * and, but for a rare coincidence, not the sums). With losses (a lossy peer, overwrite)
 * only: not more than published. 0, or -1 with err.
 */
static int group_exactly_once(const struct run *r, uint64_t lost, char *err, size_t errlen)
{
	uint64_t published = 0, got = 0, want_tag = 0, want_hash = 0, sum_tag = 0, sum_hash = 0;

	for (int i = 0; i < r->npub; i++) {
		uint64_t n = ctl->w[i].count;

		published += n;
		for (uint64_t k = 0; k < n; k++) {
			want_tag += TAG(i, k);
			want_hash += tag_hash(TAG(i, k));
		}
	}
	for (int j = 0; j < r->nsub; j++) {
		const struct wslot *w = &ctl->w[r->npub + j];

		got += w->count;
		sum_tag += w->sum_tag;
		sum_hash += w->sum_hash;
	}
	if (got + lost > published) {
		snprintf(err, errlen,
			 "the members got %" PRIu64 " messages (and lost %" PRIu64 ") of %" PRIu64
			 " published: some came more than once",
			 got, lost, published);
		return -1;
	}
	if (!lost && (got != published || sum_tag != want_tag || sum_hash != want_hash)) {
		snprintf(err, errlen,
			 "the members got %" PRIu64 " messages of %" PRIu64
			 " published, but not each exactly once (sums of tags differ)",
			 got, published);
		return -1;
	}
	return 0;
}

struct result run_case(const struct casedef *c, int idx, int round, char *err, size_t errlen)
{
	const struct peer *p = peers[c->peer];
	struct result res = { .syscalls = -1, .wakeups = -1 };
	struct run r = {
		.c = c,
		.round = round,
		.idx = idx,
		.size = c->size,
		.capacity = capacity_for(c->size),
		.npub = c->npub,
		.nsub = c->nsub,
		.spin_us = -1,
		.fd_a = { -1, -1 },
		.fd_b = { -1, -1 },
	};
	const int paced = c->sc == SC_ONEWAY || (c->sc == SC_SYSCALLS && c->rate);
	const int opens = c->sc == SC_OPEN;
	/* Measured like a round trip: the measuring worker fills ctl->h and exits. */
	const int roundtrip = c->sc == SC_PINGPONG || c->sc == SC_WAKEUP || opens;
	/* Syscalls: the scenario's figure; per round trip of a wake-up, a diagnostic. */
	const int count_syscalls = c->sc == SC_SYSCALLS || (c->sc == SC_WAKEUP && cfg.perf_ok);
	int rc, prepared = 0;
	uint64_t pub0 = 0, got0 = 0, pub1 = 0, got1 = 0, t0 = 0, t1 = 0;
	struct sb_counts k0 = { 0 }, k1 = { 0 };

	err[0] = 0;
	if (c->sc == SC_PINGPONG || (c->sc == SC_ONEWAY && c->peer == PEER_SHMBUS_SPIN))
		r.spin_us = 1000000; /* never sleeps within a run */
	else if (c->sc == SC_WAKEUP)
		r.spin_us = 0; /* sleeps at once */
	memset(ctl, 0, sizeof(*ctl));
	hist_reset(&ctl->h);
	hist_reset(&ctl->h_unsent);
	nkids = 0;

	if (p->prepare && (rc = p->prepare(&r)) < 0) {
		snprintf(err, errlen, "setup: %s", r.err[0] ? r.err : strerror(-rc));
		goto out;
	}
	prepared = 1;

	role_fn tx = opens ? p->opener : paced ? p->paced_tx : roundtrip ? p->pinger : p->producer;
	role_fn rx = opens ? NULL : paced ? p->paced_rx : roundtrip ? p->ponger : p->consumer;
	int ntx = paced || roundtrip ? 1 : c->npub, nrx = paced || roundtrip ? 1 : c->nsub;
	if (opens)
		nrx = 0; /* the opener works alone */
	if (!tx || (nrx && !rx)) {
		snprintf(err, errlen, "%s has no role in this scenario", p->id);
		goto out;
	}
	if (paced || (roundtrip && !opens))
		r.npub = r.nsub = 1;
	/* The pinger and the paced receiver measure and end by themselves; the driver ends
	 * the others. */
	for (int i = 0; i < ntx; i++)
		if (spawn(tx, &r, i, !roundtrip) < 0)
			goto fork_failed;
	for (int j = 0; j < nrx; j++)
		if (spawn(rx, &r, j, !paced) < 0)
			goto fork_failed;

	/* Acquire: pairs with the workers' release of ready. */
	uint64_t deadline = now_ns() + 20000000000ull;
	int bad = 0;
	while (__atomic_load_n(&ctl->ready, __ATOMIC_ACQUIRE) < (uint32_t)nkids) {
		if (ctl->failed || now_ns() > deadline || reap_some(1, &bad) < nkids) {
			if (!ctl->err[0])
				snprintf(ctl->err, sizeof(ctl->err), "workers did not get ready");
			goto failed;
		}
		usleep(200);
	}
	if (count_syscalls && perf_start(err, errlen) < 0)
		goto failed;
	/* A round trip run counts from go until the pinger is done. */
	if (count_syscalls && roundtrip && perf_count(1, err, errlen) < 0)
		goto failed;

	double daemons0 = daemons_cpu_s();
	ctl->t_go = now_ns();
	ctl->warm_end = ctl->t_go + (uint64_t)(cfg.warm * 1e9);
	ctl->end = ctl->warm_end + (uint64_t)(cfg.secs * 1e9);
	/* Release: t_go, warm_end and end are visible to whoever sees go. */
	__atomic_store_n(&ctl->go, 1, __ATOMIC_RELEASE);
	futex_wake_u32(&ctl->go);

	if (!roundtrip) {
		sleep_until(ctl->warm_end);
		if (count_syscalls && perf_count(1, err, errlen) < 0)
			goto failed;
		t0 = now_ns();
		snap(r.npub, &pub0, &got0);
		if (p->flags & PF_SHMBUS)
			shmbus_peer_counts(&r, &k0);
		sleep_until(ctl->end);
		t1 = now_ns();
		snap(r.npub, &pub1, &got1);
		if (p->flags & PF_SHMBUS)
			shmbus_peer_counts(&r, &k1);
		if (count_syscalls && perf_count(0, err, errlen) < 0)
			goto failed;
	}

	if (roundtrip || paced) {
		/* The measuring worker ends by itself (the paced receiver at the sender's end
		 * marker: a saturated channel may take a while to drain); then the other. */
		uint64_t limit = roundtrip ? now_ns() + (uint64_t)((cfg.pp_secs + 30) * 1e9) :
					     ctl->end + 60000000000ull;
		if (reap_until(limit, 0) < 0)
			goto failed;
		if (count_syscalls && roundtrip && perf_count(0, err, errlen) < 0)
			goto failed;
		end_workers();
		if (reap_until(now_ns() + 10000000000ull, 1) < 0)
			goto failed;

		struct hist *h = &ctl->h;

		/* Messages a saturated sender never sent count with their lower bounds. */
		if (ctl->h_unsent.n)
			hist_merge(h, &ctl->h_unsent);
		if (!h->n) {
			snprintf(err, errlen, "no latency recorded");
			goto out_reaped;
		}
		res.p50 = hist_quantile(h, 0.5);
		res.p90 = hist_quantile(h, 0.9);
		res.p99 = hist_quantile(h, 0.99);
		res.p999 = hist_quantile(h, 0.999);
		res.max = h->max;
		res.samples = h->n;
		res.value = (double)res.p50;
		if (paced) {
			uint64_t span = ctl->last_send > ctl->t_go ? ctl->last_send - ctl->t_go : 1;

			res.achieved = (double)ctl->sent * 1e9 / (double)span;
			res.saturated = ctl->saturated || res.achieved < 0.95 * (double)c->rate;
			res.window_msgs = (double)(got1 - got0);
			res.msgs = res.achieved;
		}
	} else {
		__atomic_store_n(&ctl->stop, 1, __ATOMIC_RELAXED);
		if (senders_done(r.npub, now_ns() + 20000000000ull) < 0)
			goto failed;
		uint64_t published = 0, got = 0, missing = 0;
		snap(r.npub, &published, &got);
		if (c->nsub && converge(&r, p, published, &missing) < 0)
			goto failed;
		end_workers();
		if (reap_until(now_ns() + 10000000000ull, 1) < 0)
			goto failed;
		snap(r.npub, &published, &got);
		double dt = (double)(t1 - t0) / 1e9;
		uint64_t lost = 0;
		for (int j = 0; j < c->nsub; j++)
			lost += ctl->w[c->npub + j].lost;
		lost += missing;
		if (c->sc == SC_GROUP && group_exactly_once(&r, lost, err, errlen) < 0)
			goto out_reaped;
		uint64_t expected = published * (c->sc == SC_GROUP || !c->nsub ? 1 : c->nsub);
		res.pub_msgs = (double)(pub1 - pub0) / dt;
		res.msgs = c->nsub ? (double)(got1 - got0) / dt /
					     (c->sc == SC_FANOUT ? (double)c->nsub : 1.0) :
				     res.pub_msgs;
		res.lost = expected ? (double)lost / (double)expected : 0;
		res.value = res.msgs;
		res.window_msgs = (double)(pub1 - pub0);
		res.samples = got ? got : published;
	}
	double cpu = daemons_cpu_s() - daemons0;
	for (int i = 0; i < nkids; i++)
		cpu += kids[i].cpu;
	res.cpu_s = cpu;
	if (res.samples)
		res.cpu_ns_per_msg =
			cpu * 1e9 / (double)(roundtrip || paced ? ctl->w[0].count : res.samples);
	if (count_syscalls) {
		int64_t n = perf_finish();
		double msgs = roundtrip ? (double)ctl->w[0].count :
			      paced	? (double)(got1 - got0) :
					  (double)(pub1 - pub0);

		if (n < 0 || msgs <= 0) {
			/* perf could not count here (another perf session, a paranoid
			 * setting), or no message fell in the window (a machine too busy
			 * to pace): the measurement is absent, the programs are not broken. */
			snprintf(err, errlen, "perf counted nothing");
			res.unmeasurable = 1;
			goto out_reaped;
		}
		res.syscalls = (double)n / msgs;
		res.window_msgs = msgs;
	}
	if ((p->flags & PF_SHMBUS) && !roundtrip && k1.published > k0.published) {
		double n = (double)(k1.published - k0.published);

		res.wakeups = (double)(k1.wakeups - k0.wakeups) / n;
		res.bp_waits = (double)(k1.bp_waits - k0.bp_waits) / n;
	}
	res.ok = 1;
	goto out_reaped;

fork_failed:
	snprintf(ctl->err, sizeof(ctl->err), "fork: %s", strerror(errno));
failed:
	if (!err[0])
		snprintf(err, errlen, "%s", ctl->err[0] ? ctl->err : "a worker failed");
out_reaped:
	if (perf_pid > 0 || perf_ctl >= 0)
		perf_close();
	run_kill_all();
	reap_until(now_ns() + 5000000000ull, 1);
	nkids = 0;
out:
	if (prepared && p->cleanup)
		p->cleanup(&r);
	return res;
}
