/* SPDX-License-Identifier: MIT */
/*
 * shmbus-bench: the benchmark suite's driver. See bench.h for how the files fit, and
 * docs/performance.md for what it measures and the latest results.
 *
 *   shmbus-bench --quick   every scenario, fewer sizes for the costlier scenarios, short
 *                          runs, three rounds of the cases the targets compare (< 2 min
 *                          on a 2-core machine)
 *   shmbus-bench --full    every scenario at every size, five rounds of everything
 *   shmbus-bench --smoke   one size, one round, tiny runs: proves the programs work
 *   shmbus-bench --brokered  (with any mode) only brokered mode (issue 14): a private
 *                          shmbusd with access = brokered, its SPSC, ping-pong, wake-up
 *                          and open latency against the same cases on the file-mode bus
 *   shmbus-bench --acks    (with any mode) only acknowledged groups (issue 15): groups of
 *                          2 and 4 acking members, 64 B, against the same groups without
 *                          acks and against Redis Streams XREADGROUP + XACK
 *   shmbus-bench --sinks   (with any mode) only sinks and fds (issue 16): a sink over 8
 *                          topics against one subscriber on one topic (SPSC), wake-ups
 *                          through shmbus_sub_fd() / shmbus_sink_fd() in epoll against the
 *                          futex one, and their syscalls per message
 *
 * Results go to the directory given with --out (default ./bench-results): results.jsonl
 * (one JSON object per case and per target), report.txt (the table, also on stdout) and
 * PNG plots made with gnuplot, whose data and script go to data/ below it; the report ends
 * with the list of these files. Each invocation works in its own directory under /dev/shm
 * and removes it, and stops the servers it started (redis-server, nats-server, iox-roudi),
 * however it ends.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "gitrev.h"

const struct peer *const peers[NPEERS] = {
	[PEER_SHMBUS] = &peer_shmbus,
	[PEER_SHMBUS_OVW] = &peer_shmbus_ovw,
	[PEER_SHMBUS_SPIN] = &peer_shmbus_spin,
	[PEER_BROKERED] = &peer_shmbus_brokered,
	[PEER_SHMBUS_ACK] = &peer_shmbus_ack,
	[PEER_SHMBUS_SINK] = &peer_shmbus_sink,
	[PEER_SHMBUS_SINK_FD] = &peer_shmbus_sink_fd,
	[PEER_SHMBUS_FD] = &peer_shmbus_fd,
	[PEER_SHMBUS_SINK1] = &peer_shmbus_sink1,
	[PEER_RING] = &peer_ring,
	[PEER_MEMCPY] = &peer_memcpy,
	[PEER_MEMCPY_DRAM] = &peer_memcpy_dram,
	[PEER_FUTEX] = &peer_futex,
	[PEER_PIPE] = &peer_pipe,
	[PEER_UNIX] = &peer_unix,
	[PEER_UNIX_STREAM] = &peer_unix_stream,
	[PEER_ZMQ] = &peer_zmq,
	[PEER_ICEORYX] = &peer_iceoryx,
	[PEER_NATS] = &peer_nats,
	[PEER_REDIS_PUB] = &peer_redis_pub,
	[PEER_REDIS_PUB_PIPE] = &peer_redis_pub_pipe,
	[PEER_REDIS_XADD] = &peer_redis_xadd,
	[PEER_REDIS_XADD_PIPE] = &peer_redis_xadd_pipe,
	[PEER_REDIS_XACK_PIPE] = &peer_redis_xack_pipe,
};

const char *const scenario_names[NSCENARIOS] = {
	[SC_SPSC] = "spsc",	[SC_MPSC] = "mpsc",	    [SC_FANOUT] = "fanout",
	[SC_GROUP] = "group",	[SC_PINGPONG] = "pingpong", [SC_ONEWAY] = "oneway",
	[SC_WAKEUP] = "wakeup", [SC_SYSCALLS] = "syscalls", [SC_CPU] = "cpu",
	[SC_OPEN] = "open",
};

enum mode { M_QUICK, M_FULL, M_SMOKE };

static struct suite S;
static int cap_cases;
static int want_sc[NSCENARIOS], any_sc;
static int want_peer[NPEERS], any_peer;
static uint32_t want_size;
static int only_brokered, only_acks, only_sinks;

/* --brokered: the brokered cases and the file-mode cases they are compared with. */
static int brokered_section(enum scenario sc, enum peer_id peer, uint32_t size, int npub, int nsub,
			    uint32_t rate, enum pin pin)
{
	if (peer == PEER_BROKERED)
		return 1;
	if (peer != PEER_SHMBUS || size != 64 || rate)
		return 0;
	return sc == SC_OPEN || (sc == SC_SPSC && npub == 1 && nsub == 1) || sc == SC_PINGPONG ||
	       (sc == SC_WAKEUP && pin == PIN_SPLIT);
}

/* --acks: the acknowledged groups and the cases they are compared with. */
static int acks_section(enum scenario sc, enum peer_id peer, uint32_t size)
{
	return sc == SC_GROUP && size == 64 &&
	       (peer == PEER_SHMBUS || peer == PEER_SHMBUS_ACK || peer == PEER_REDIS_XACK_PIPE);
}

/* --sinks: the sink and fd cases (issue 16) and the shmbus (block) cases they are compared
 * with: SPSC, the wake-ups, the syscall counts, at 64 B. */
static int sinks_section(enum scenario sc, enum peer_id peer, uint32_t size, int npub, int nsub)
{
	if (peer == PEER_SHMBUS_SINK || peer == PEER_SHMBUS_SINK_FD || peer == PEER_SHMBUS_FD ||
	    peer == PEER_SHMBUS_SINK1)
		return 1;
	if (peer != PEER_SHMBUS || size != 64)
		return 0;
	return (sc == SC_SPSC && npub == 1 && nsub == 1) || sc == SC_WAKEUP || sc == SC_SYSCALLS;
}

static void add_pinned(enum scenario sc, enum peer_id peer, uint32_t size, int npub, int nsub,
		       uint32_t rate, int rounds, enum pin pin)
{
	if ((any_sc && !want_sc[sc]) || (any_peer && !want_peer[peer]) ||
	    (want_size && size != want_size) ||
	    (only_brokered && !brokered_section(sc, peer, size, npub, nsub, rate, pin)) ||
	    (only_acks && !acks_section(sc, peer, size)) ||
	    (only_sinks && !sinks_section(sc, peer, size, npub, nsub)))
		return;
	if (S.n == cap_cases) {
		cap_cases = cap_cases ? 2 * cap_cases : 256;
		S.cases = realloc(S.cases, (size_t)cap_cases * sizeof(*S.cases));
		if (!S.cases) {
			perror("shmbus-bench");
			exit(1);
		}
	}
	S.cases[S.n++] = (struct casedef){ .sc = sc,
					   .peer = peer,
					   .size = size,
					   .npub = (uint8_t)npub,
					   .nsub = (uint8_t)nsub,
					   .rate = rate,
					   .rounds = (uint8_t)rounds,
					   .pin = (uint8_t)pin };
}

static void add(enum scenario sc, enum peer_id peer, uint32_t size, int npub, int nsub,
		uint32_t rate, int rounds)
{
	add_pinned(sc, peer, size, npub, nsub, rate, rounds, PIN_NONE);
}

/*
 * The case lists. R rounds for the cases a target compares (so the ratio is a median of
 * R paired rounds); `one` for the rest (1 in quick mode: each still measured, once).
 */
static void build_cases(enum mode mode)
{
	static const uint32_t sizes[] = { 8, 64, 256, 1024, 4096, 16384, 65536, 1048576 };
	const int R = cfg.rounds, one = mode == M_FULL ? R : 1;
	/* Brokered against file-mode SPSC (issue 14) is a within-noise target (0.9x): on a
	 * shared 2-CPU machine one round in three can read 0.5x, so its pair runs as many
	 * rounds as the wake-ups. */
	const int RB = cfg.wake_rounds > R ? cfg.wake_rounds : R;
	const int nsizes = mode == M_SMOKE ? 1 : (int)(sizeof(sizes) / sizeof(sizes[0]));
	/* Scenarios beyond SPSC: 64 B (and 1 KiB, 16 KiB in full mode). */
	const uint32_t msizes[] = { 64, 1024, 16384 };
	const int nm = mode == M_FULL ? 3 : 1;

	for (int i = 0; i < nsizes; i++) {
		uint32_t s = mode == M_SMOKE ? 64 : sizes[i];
		int key = s == 64, big = s >= 16384;
		/* Redis at every size in full mode; in quick mode the pipelined Pub/Sub (the
		 * target's peer) at every size and the others at three. */
		int redis_more = mode != M_QUICK || s == 64 || s == 4096 || s == 65536;

		add(SC_SPSC, PEER_SHMBUS, s, 1, 1, 0, key ? RB : big ? R : one);
		/* Brokered mode (issue 14) next to the file-mode case it is compared with. */
		if (key)
			add(SC_SPSC, PEER_BROKERED, s, 1, 1, 0, RB);
		/* A sink over 8 topics (issue 16), its one publisher writing them in turn,
		 * against shmbus (block) above, and over its one topic (what the reader
		 * costs, the topics' spread apart); and both waited for through their fds. */
		if (key) {
			add(SC_SPSC, PEER_SHMBUS_SINK, s, 1, 1, 0, RB);
			add(SC_SPSC, PEER_SHMBUS_SINK1, s, 1, 1, 0, RB);
			add(SC_SPSC, PEER_SHMBUS_SINK_FD, s, 1, 1, 0, R);
			add(SC_SPSC, PEER_SHMBUS_FD, s, 1, 1, 0, R);
		}
		add(SC_SPSC, PEER_SHMBUS_OVW, s, 1, 1, 0, one);
		add(SC_SPSC, PEER_RING, s, 1, 1, 0, key ? R : one);
		add(SC_SPSC, PEER_MEMCPY, s, 1, 0, 0, big ? R : one);
		add(SC_SPSC, PEER_MEMCPY_DRAM, s, 1, 0, 0, big ? R : one);
		add(SC_SPSC, PEER_PIPE, s, 1, 1, 0, one);
		add(SC_SPSC, PEER_UNIX, s, 1, 1, 0, key ? R : one);
		add(SC_SPSC, PEER_UNIX_STREAM, s, 1, 1, 0, one);
		add(SC_SPSC, PEER_ZMQ, s, 1, 1, 0, key ? R : one);
		add(SC_SPSC, PEER_ICEORYX, s, 1, 1, 0, key ? R : one);
		if (redis_more)
			add(SC_SPSC, PEER_NATS, s, 1, 1, 0, key ? R : one);
		add(SC_SPSC, PEER_REDIS_PUB_PIPE, s, 1, 1, 0, key ? R : one);
		if (redis_more) {
			add(SC_SPSC, PEER_REDIS_PUB, s, 1, 1, 0, one);
			add(SC_SPSC, PEER_REDIS_XADD, s, 1, 1, 0, one);
			add(SC_SPSC, PEER_REDIS_XADD_PIPE, s, 1, 1, 0, one);
		}
	}
	for (int i = 0; i < nm; i++) {
		uint32_t s = msizes[i];
		static const int ns[] = { 1, 2, 4 };

		for (int k = 0; k < 3; k++) {
			int n = ns[k];

			if (mode == M_SMOKE && n == 4)
				continue;
			/* n = 1 is SPSC measured next to its MPSC and fan-out forms: the targets'
			 * reference. */
			add(SC_MPSC, PEER_SHMBUS, s, n, 1, 0, s == 64 && n <= 2 ? R : one);
			add(SC_MPSC, PEER_SHMBUS_OVW, s, n, 1, 0, one);
			if (n > 1) {
				add(SC_MPSC, PEER_UNIX, s, n, 1, 0, one);
				add(SC_MPSC, PEER_ZMQ, s, n, 1, 0, one);
				add(SC_MPSC, PEER_REDIS_PUB_PIPE, s, n, 1, 0, one);
			}
		}
		for (int k = 0; k < 3; k++) {
			int n = ns[k];

			if (mode == M_SMOKE && n == 4)
				continue;
			add(SC_FANOUT, PEER_SHMBUS, s, 1, n, 0, s == 64 ? R : one);
			add(SC_FANOUT, PEER_SHMBUS_OVW, s, 1, n, 0, one);
			add(SC_FANOUT, PEER_ZMQ, s, 1, n, 0, s == 64 && n > 1 ? R : one);
			add(SC_FANOUT, PEER_ICEORYX, s, 1, n, 0, one);
			add(SC_FANOUT, PEER_NATS, s, 1, n, 0, one);
			add(SC_FANOUT, PEER_REDIS_PUB_PIPE, s, 1, n, 0, one);
		}
		/* Overwrite with the publisher paced at a rate its readers can keep up with
		 * (4 of them on 2 CPUs): they should lose nothing. */
		if (s == 64)
			add(SC_FANOUT, PEER_SHMBUS_OVW, s, 1, mode == M_SMOKE ? 2 : 4,
			    PACED_FANOUT_RATE, R);
		for (int k = 1; k < 3; k++) {
			int n = ns[k];

			if (mode == M_SMOKE && n == 4)
				continue;
			add(SC_GROUP, PEER_SHMBUS, s, 1, n, 0, s == 64 ? R : one);
			/* Acknowledging members (issue 15), against the same group without
			 * acks and against Redis Streams with XACK, at 64 B. */
			if (s == 64) {
				add(SC_GROUP, PEER_SHMBUS_ACK, s, 1, n, 0, R);
				add(SC_GROUP, PEER_REDIS_XACK_PIPE, s, 1, n, 0, R);
			}
			add(SC_GROUP, PEER_SHMBUS_OVW, s, 1, n, 0, one);
			add(SC_GROUP, PEER_ZMQ, s, 1, n, 0, s == 64 ? R : one);
			add(SC_GROUP, PEER_REDIS_XADD_PIPE, s, 1, n, 0, one);
		}
		add(SC_PINGPONG, PEER_SHMBUS, s, 1, 1, 0, s == 64 ? R : one);
		if (s == 64)
			add(SC_PINGPONG, PEER_BROKERED, s, 1, 1, 0, R);
		add(SC_PINGPONG, PEER_RING, s, 1, 1, 0, s == 64 ? R : one);
		add(SC_PINGPONG, PEER_UNIX, s, 1, 1, 0, one);
		add(SC_PINGPONG, PEER_PIPE, s, 1, 1, 0, one);
		add(SC_PINGPONG, PEER_ZMQ, s, 1, 1, 0, one);
		add(SC_PINGPONG, PEER_ICEORYX, s, 1, 1, 0, s == 64 ? R : one);
		add(SC_PINGPONG, PEER_REDIS_PUB, s, 1, 1, 0, one);
	}
	static const uint32_t rates[] = { 10000, 100000, 1000000 };
	for (int i = 0; i < 3; i++) {
		if (mode == M_SMOKE && rates[i] != 100000)
			continue;
		add(SC_ONEWAY, PEER_SHMBUS, 64, 1, 1, rates[i], one);
		add(SC_ONEWAY, PEER_SHMBUS_SPIN, 64, 1, 1, rates[i], one);
		add(SC_ONEWAY, PEER_RING, 64, 1, 1, rates[i], one);
		add(SC_ONEWAY, PEER_UNIX, 64, 1, 1, rates[i], one);
		add(SC_ONEWAY, PEER_ZMQ, 64, 1, 1, rates[i], one);
		add(SC_ONEWAY, PEER_REDIS_PUB_PIPE, 64, 1, 1, rates[i], one);
	}
	/* Wake-ups on a VM differ by where the sleeper wakes: on another CPU (an IPI to a
	 * halted vCPU: the hypervisor's cost) or on the waker's (a context switch). Both,
	 * pinned, so each run measures one of them. */
	for (int pin = PIN_SPLIT; pin <= PIN_SAME; pin++) {
		add_pinned(SC_WAKEUP, PEER_FUTEX, 64, 1, 1, 0, cfg.wake_rounds, pin);
		add_pinned(SC_WAKEUP, PEER_SHMBUS, 64, 1, 1, 0, cfg.wake_rounds, pin);
		if (pin == PIN_SPLIT)
			add_pinned(SC_WAKEUP, PEER_BROKERED, 64, 1, 1, 0, cfg.wake_rounds, pin);
		/* Readers asleep in epoll_wait() on their fds (issue 16), and a sink asleep
		 * in shmbus_sink_recv(). */
		add_pinned(SC_WAKEUP, PEER_SHMBUS_FD, 64, 1, 1, 0, cfg.wake_rounds, pin);
		add_pinned(SC_WAKEUP, PEER_SHMBUS_SINK_FD, 64, 1, 1, 0, cfg.wake_rounds, pin);
		add_pinned(SC_WAKEUP, PEER_SHMBUS_SINK, 64, 1, 1, 0, cfg.wake_rounds, pin);
		add_pinned(SC_WAKEUP, PEER_ICEORYX, 64, 1, 1, 0, cfg.wake_rounds, pin);
	}
	static const uint32_t srates[] = { 0, 1000000, 100000, 10000 };
	for (int i = 0; i < 4; i++) {
		if (mode == M_SMOKE && i > 1)
			continue;
		add(SC_SYSCALLS, PEER_SHMBUS, 64, 1, 1, srates[i], one);
		/* A sink reading 8 busy topics, and the fds in epoll loops (issue 16). */
		if (i < 3) {
			add(SC_SYSCALLS, PEER_SHMBUS_SINK, 64, 1, 1, srates[i], R);
			add(SC_SYSCALLS, PEER_SHMBUS_SINK_FD, 64, 1, 1, srates[i], R);
			add(SC_SYSCALLS, PEER_SHMBUS_FD, 64, 1, 1, srates[i], R);
		}
	}
	/* Open + close latency, a publisher (1x0) and a subscriber (0x1), on the brokered
	 * bus and on the file-mode one. */
	for (int sub = 0; sub < 2; sub++) {
		add(SC_OPEN, PEER_SHMBUS, 64, !sub, sub, 0, R);
		add(SC_OPEN, PEER_BROKERED, 64, !sub, sub, 0, R);
	}
}

/* ---- the rounds ------------------------------------------------------------------------------ */

static const char *fmt_rate(char *b, size_t n, double v)
{
	if (v >= 1e6)
		snprintf(b, n, "%.2f M msg/s", v / 1e6);
	else
		snprintf(b, n, "%.1f k msg/s", v / 1e3);
	return b;
}

static void progress(const struct casedef *c, int i, int round, const struct caseres *cr,
		     const struct result *r)
{
	char v[300] = "";

	if (cr->status == CS_ABSENT)
		snprintf(v, sizeof(v), "absent");
	else if (!r->ok)
		snprintf(v, sizeof(v), "FAILED: %s", cr->why);
	else if (c->sc == SC_SYSCALLS)
		snprintf(v, sizeof(v), "%.4f syscalls/msg", r->syscalls);
	else if (c->sc == SC_PINGPONG || c->sc == SC_WAKEUP || c->sc == SC_ONEWAY ||
		 c->sc == SC_OPEN)
		snprintf(v, sizeof(v), "p50 %" PRIu64 " ns, p99 %" PRIu64 " ns%s", r->p50, r->p99,
			 r->saturated ? " (saturated)" : "");
	else
		fmt_rate(v, sizeof(v), r->msgs);
	if (r->ok && c->sc == SC_FANOUT && c->rate)
		snprintf(v + strlen(v), sizeof(v) - strlen(v), ", lost %.4f%%", 100 * r->lost);
	fprintf(stderr, "  [r%d %3d/%d] %-8s %7u B  %dx%d%s %-24s %s\n", round + 1, i + 1, S.n,
		scenario_names[c->sc], c->size, c->npub, c->nsub,
		c->pin == PIN_SAME	      ? " 1cpu" :
		c->pin == PIN_SPLIT	      ? " 2cpu" :
		c->sc == SC_FANOUT && c->rate ? " paced" :
						"",
		peers[c->peer]->label, v);
}

/*
 * Run a case, and run it again (up to cfg.retries times, while the suite is within its
 * time budget) when other processes took more than a tenth of the CPUs meanwhile: on a
 * shared machine a burst of someone else's work can cut a figure tenfold. The share is
 * the machine's busy time (/proc/stat) less what the run's own processes used; the last
 * attempt counts, with its share recorded in the JSON.
 */
static uint64_t t_suite;

static struct result run_measured(const struct casedef *c, int i, int round, char *err,
				  size_t errlen)
{
	struct result r = { 0 };

	for (int attempt = 0;; attempt++) {
		double busy0, steal0, busy1, steal1;
		uint64_t t0 = now_ns();

		double own0 = own_cpu() + daemons_cpu_s();

		machine_cpu(&busy0, &steal0);
		r = run_case(c, i, round, err, errlen);
		machine_cpu(&busy1, &steal1);
		double wall = (double)(now_ns() - t0) / 1e9;
		/* Ours: the driver, the workers it reaped (perf too), the peers' servers. */
		double others = (busy1 - busy0) - (own_cpu() + daemons_cpu_s() - own0);
		double cap = wall * (double)S.m.nproc;
		r.others = cap > 0 ? (others > 0 ? others : 0) / cap : 0;
		r.attempts = attempt + 1;
		/* /proc/stat counts in ticks (10 ms): allow two of them of error. */
		if (!r.ok || r.others <= 0.10 + 0.02 / cap || attempt >= cfg.retries ||
		    (double)(now_ns() - t_suite) / 1e9 > cfg.retry_budget_s)
			return r;
		fprintf(stderr, "  (other processes took %.0f%% of the CPUs: again)\n",
			100 * r.others);
	}
}

static void run_rounds(void)
{
	t_suite = now_ns();
	int nrounds = cfg.wake_rounds > cfg.rounds ? cfg.wake_rounds : cfg.rounds;
	for (int round = 0; round < nrounds; round++) {
		fprintf(stderr, "shmbus-bench: round %d/%d\n", round + 1, nrounds);
		for (int i = 0; i < S.n; i++) {
			const struct casedef *c = &S.cases[i];
			struct caseres *cr = &S.res[i];

			if (c->rounds <= round)
				continue;
			if (!S.peer_ok[c->peer] || (c->sc == SC_SYSCALLS && !S.perf_ok)) {
				cr->status = CS_ABSENT;
				snprintf(cr->why, sizeof(cr->why), "%s",
					 c->sc == SC_SYSCALLS && !S.perf_ok ? S.perf_why :
									      S.peer_why[c->peer]);
				if (round == 0)
					progress(c, i, round, cr, &cr->r[round]);
				continue;
			}
			char err[256];
			cr->r[round] = run_measured(c, i, round, err, sizeof(err));
			if (cr->r[round].ok) {
				cr->runs_ok++;
				if (cr->status != CS_FAILED)
					cr->status = CS_OK;
				if (cr->h || c->sc == SC_PINGPONG || c->sc == SC_WAKEUP ||
				    c->sc == SC_ONEWAY || c->sc == SC_OPEN) {
					if (!cr->h) {
						cr->h = malloc(sizeof(*cr->h));
						if (!cr->h)
							exit(1);
						hist_reset(cr->h);
					}
					hist_merge(cr->h, &ctl->h);
				}
			} else if (cr->r[round].unmeasurable && cr->status != CS_FAILED) {
				if (cr->status != CS_OK)
					cr->status = CS_ABSENT;
				snprintf(cr->why, sizeof(cr->why), "not measured here: %.200s",
					 err);
			} else {
				cr->runs_failed++;
				cr->status = CS_FAILED;
				snprintf(cr->why, sizeof(cr->why), "%s", err);
			}
			progress(c, i, round, cr, &cr->r[round]);
		}
	}
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static void cleanup(void)
{
	run_kill_all();
	daemons_stop();
	rm_tree(cfg.dir);
	cfg.dir[0] = 0;
}

static void on_signal(int sig)
{
	/* Interrupted: take the workers, the servers and the directory down with us. */
	run_kill_all();
	daemons_kill();
	rm_tree(cfg.dir);
	_exit(128 + sig);
}

static int mkdir_p(const char *path)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shmbus-bench [--quick | --full | --smoke] [options]\n"
		"  -q, --quick          every scenario, short runs (default; < 2 min on 2 cores)\n"
		"  -f, --full           every scenario at every size, 5 rounds (20-30 min)\n"
		"      --smoke          one size, one round, tiny runs (a few seconds)\n"
		"  -o, --out DIR        results directory (default ./bench-results)\n"
		"  -r, --rounds N       rounds (default 3 quick, 5 full, 1 smoke; wake-ups 7 quick,\n"
		"                       9 full; at most %d)\n"
		"      --secs S         measured seconds per throughput or paced run\n"
		"  -s, --scenario NAME  only these scenarios (repeatable): spsc mpsc fanout group\n"
		"                       pingpong oneway wakeup syscalls cpu open\n"
		"  -b, --brokered       only the brokered-mode cases (issue 14) and the file-mode\n"
		"                       cases they are compared with\n"
		"  -a, --acks           only the acknowledged groups (issue 15) and the groups\n"
		"                       they are compared with (no acks; Redis XREADGROUP + XACK)\n"
		"  -k, --sinks          only the sinks and fds (issue 16) and the shmbus (block)\n"
		"                       cases they are compared with (SPSC, wake-up, syscalls)\n"
		"  -p, --peer NAME      only these peers (repeatable), e.g. shmbus bare_ring\n"
		"      --size BYTES     only this message size\n"
		"      --no-plots       no gnuplot\n"
		"      --strict         exit 3 if a target is missed\n"
		"  -h, --help\n"
		"exit status: 0; 1 if a case failed (an absent peer is not a failure); 2 usage;\n"
		"3 with --strict when a target is missed.\n",
		MAX_ROUNDS);
}

int main(int argc, char **argv)
{
	/* clang-format off */
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "full", no_argument, NULL, 'f' },
		{ "smoke", no_argument, NULL, 'S' },
		{ "out", required_argument, NULL, 'o' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "secs", required_argument, NULL, 'T' },
		{ "scenario", required_argument, NULL, 's' },
		{ "peer", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 'z' },
		{ "brokered", no_argument, NULL, 'b' },
		{ "acks", no_argument, NULL, 'a' },
		{ "sinks", no_argument, NULL, 'k' },
		{ "no-plots", no_argument, NULL, 'P' },
		{ "strict", no_argument, NULL, 'X' },
		{ "cpu-probe", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	enum mode mode = M_QUICK;
	const char *outdir = "bench-results", *probe = NULL;
	int opt, rounds = 0, strict = 0, plots = 1;
	double secs = 0;
	static char command[1024];

	while ((opt = getopt_long(argc, argv, "qfo:r:s:p:bakh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			mode = M_QUICK;
			break;
		case 'f':
			mode = M_FULL;
			break;
		case 'S':
			mode = M_SMOKE;
			break;
		case 'o':
			outdir = optarg;
			break;
		case 'r':
			rounds = atoi(optarg);
			if (rounds < 1 || rounds > MAX_ROUNDS) {
				usage(stderr);
				return 2;
			}
			break;
		case 'T':
			secs = atof(optarg);
			break;
		case 's': {
			int found = 0;

			for (int i = 0; i < NSCENARIOS; i++)
				if (!strcmp(optarg, scenario_names[i]))
					want_sc[i] = found = 1;
			if (!found) {
				fprintf(stderr, "shmbus-bench: no scenario '%s'\n", optarg);
				return 2;
			}
			any_sc = 1;
			break;
		}
		case 'p': {
			int found = 0;

			for (int i = 0; i < NPEERS; i++)
				if (!strcmp(optarg, peers[i]->id))
					want_peer[i] = found = 1;
			if (!found) {
				fprintf(stderr, "shmbus-bench: no peer '%s'; peers:", optarg);
				for (int i = 0; i < NPEERS; i++)
					fprintf(stderr, " %s", peers[i]->id);
				fprintf(stderr, "\n");
				return 2;
			}
			any_peer = 1;
			break;
		}
		case 'z':
			want_size = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 'b':
			only_brokered = 1;
			break;
		case 'a':
			only_acks = 1;
			break;
		case 'k':
			only_sinks = 1;
			break;
		case 'P':
			plots = 0;
			break;
		case 'X':
			strict = 1;
			break;
		case 'C':
			probe = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (probe) {
		/* Under valgrind, run by cpu_measure(): --cpu-probe PEER N1 N2. */
		if (argc - optind != 2)
			return 2;
		return cpu_probe_main(probe, atoi(argv[optind]), atoi(argv[optind + 1]));
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	for (int i = 0, n = 0; i < argc && n < (int)sizeof(command) - 2; i++)
		n += snprintf(command + n, sizeof(command) - (size_t)n, "%s%s", i ? " " : "",
			      argv[i]);

	switch (mode) {
	case M_QUICK:
		cfg = (struct config){ .secs = 0.2,
				       .warm = 0.08,
				       .pp_n = 100000,
				       .pp_warm = 2000,
				       .pp_secs = 0.25,
				       .open_n = 2000,
				       .rounds = 3,
				       .wake_rounds = 7,
				       .mode = "quick",
				       .retries = 1,
				       .retry_budget_s = 80 };
		break;
	case M_FULL:
		cfg = (struct config){ .secs = 0.8,
				       .warm = 0.2,
				       .pp_n = 1000000,
				       .pp_warm = 20000,
				       .pp_secs = 1.5,
				       .open_n = 20000,
				       .rounds = 5,
				       .wake_rounds = 9,
				       .mode = "full",
				       .retries = 2,
				       .retry_budget_s = 3600 };
		break;
	case M_SMOKE:
		cfg = (struct config){ .secs = 0.03,
				       .warm = 0.02,
				       .pp_n = 2000,
				       .pp_warm = 100,
				       .pp_secs = 0.05,
				       .open_n = 200,
				       .rounds = 1,
				       .wake_rounds = 1,
				       .mode = "smoke" };
		break;
	}
	if (rounds)
		cfg.rounds = cfg.wake_rounds = rounds;
	if (secs > 0)
		cfg.secs = secs;

	if (mkdir_p(outdir) < 0) {
		fprintf(stderr, "shmbus-bench: cannot create %s: %s\n", outdir, strerror(errno));
		return 1;
	}
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ctl == MAP_FAILED) {
		fprintf(stderr, "shmbus-bench: mmap: %s\n", strerror(errno));
		return 1;
	}
	snprintf(cfg.dir, sizeof(cfg.dir), "/dev/shm/shmbus-bench-XXXXXX");
	if (!mkdtemp(cfg.dir)) {
		fprintf(stderr, "shmbus-bench: mkdtemp in /dev/shm: %s\n", strerror(errno));
		return 1;
	}
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	setenv("SHMBUS_DIR", cfg.dir, 1);
	setenv("SHMBUS_BUS", "bench", 1);
	setenv("SHMBUS_NO_DAEMON", "1", 1);

	machine_info(&S.m);
	cfg.llc = S.m.llc;
	S.git = BENCH_GIT_REV;
	S.outdir = outdir;
	S.command = command;
	double la[1];
	S.loadavg = getloadavg(la, 1) == 1 ? la[0] : -1;

	build_cases(mode);
	S.res = calloc((size_t)S.n + 1, sizeof(*S.res));
	if (!S.res)
		return 1;

	/* Which peers can run here; Redis is started once if any case wants it. */
	int want_redis = 0, want_nats = 0, want_iox = 0, want_brokered = 0,
	    want_cpu = !only_brokered && !only_acks && !only_sinks && (!any_sc || want_sc[SC_CPU]),
	    want_perf = 0;
	for (int i = 0; i < S.n; i++) {
		enum peer_id p = S.cases[i].peer;

		want_redis |= p >= PEER_REDIS_PUB;
		want_nats |= p == PEER_NATS;
		want_iox |= p == PEER_ICEORYX;
		want_brokered |= p == PEER_BROKERED;
		want_perf |= S.cases[i].sc == SC_SYSCALLS || S.cases[i].sc == SC_WAKEUP;
	}
	if (any_peer && !want_peer[PEER_SHMBUS] && !want_peer[PEER_RING])
		want_cpu = 0;
	for (int p = 0; p < NPEERS; p++)
		S.peer_ok[p] = !peers[p]->available ||
			       peers[p]->available(S.peer_why[p], sizeof(S.peer_why[p]));
	if (want_redis) {
		char why[200] = "";

		if (redis_start(why, sizeof(why)) == 0) {
			for (int p = PEER_REDIS_PUB; p < NPEERS; p++) {
				S.peer_ok[p] = 1;
				S.peer_why[p][0] = 0;
			}
		} else {
			for (int p = PEER_REDIS_PUB; p < NPEERS; p++) {
				S.peer_ok[p] = 0;
				snprintf(S.peer_why[p], sizeof(S.peer_why[p]), "%s", why);
			}
		}
	}
	/* The other servers likewise, each once if a case wants its peer. */
	struct {
		int want;
		enum peer_id p;
		int (*start)(char *why, size_t n);
	} servers[] = { { want_nats, PEER_NATS, nats_start },
			{ want_iox, PEER_ICEORYX, iox_start },
			{ want_brokered, PEER_BROKERED, brokered_start } };
	for (size_t k = 0; k < sizeof(servers) / sizeof(servers[0]); k++) {
		enum peer_id p = servers[k].p;

		if (!servers[k].want)
			continue;
		S.peer_why[p][0] = 0;
		S.peer_ok[p] = servers[k].start(S.peer_why[p], sizeof(S.peer_why[p])) == 0 &&
			       peers[p]->available(S.peer_why[p], sizeof(S.peer_why[p]));
	}
	if (want_perf)
		S.perf_ok = cfg.perf_ok = perf_available(S.perf_why, sizeof(S.perf_why));
	S.cpu_ok = want_cpu && cpu_available(S.cpu_why, sizeof(S.cpu_why));
	if (!want_cpu)
		snprintf(S.cpu_why, sizeof(S.cpu_why), "not selected");

	shmbus_peer_init_driver();
	fprintf(stderr,
		"shmbus-bench: %s mode, %d cases, up to %d rounds (wake-ups %d), %.2f s + %.2f s "
		"warm-up per run; %s, %ld CPUs, %s\n",
		cfg.mode, S.n, cfg.rounds, cfg.wake_rounds, cfg.secs, cfg.warm, S.m.model,
		S.m.nproc, S.m.kernel);
	uint64_t t_start = now_ns();
	double busy0, steal0, own0 = own_cpu();
	machine_cpu(&busy0, &steal0);
	run_rounds();
	if (S.cpu_ok) {
		fprintf(stderr, "shmbus-bench: instructions per message under callgrind\n");
		S.cpu[0] = cpu_measure(PEER_SHMBUS);
		S.cpu[1] = cpu_measure(PEER_RING);
	}
	shmbus_peer_fini_driver();
	daemons_stop();
	S.elapsed = (double)(now_ns() - t_start) / 1e9;
	machine_cpu(&S.busy_s, &S.steal_s);
	S.busy_s -= busy0;
	S.steal_s -= steal0;
	S.own_s = own_cpu() - own0;
	S.loadavg_end = getloadavg(la, 1) == 1 ? la[0] : -1;

	if (!plots)
		setenv("SHMBUS_BENCH_NO_PLOTS", "1", 1);
	int missed = report(&S, stdout);

	int failed = 0;
	for (int i = 0; i < S.n; i++)
		failed |= S.res[i].status == CS_FAILED;
	for (int i = 0; i < 2; i++)
		failed |= S.cpu_ok && !S.cpu[i].ok;
	for (int i = 0; i < S.n; i++)
		free(S.res[i].h);
	free(S.res);
	free(S.cases);
	if (failed)
		return 1;
	return strict && missed ? 3 : 0;
}
