/* SPDX-License-Identifier: MIT */
/*
 * bench/: the benchmark suite. shmbus against its peers, every peer measured in the same
 * invocation on the same messages, so that what the suite reports are ratios that hold on
 * a noisy shared machine.
 *
 * One driver process (main.c) builds a list of cases (scenario x message size x peer x
 * process count), then runs them in rounds: every case once, then again, so that a case
 * and its peer always run close together in time; a ratio is taken round by round and the
 * median of those counts. Each run forks fresh worker processes (publishers, subscribers,
 * pingers, ...), which share a small control block with the driver (struct ctl, a
 * MAP_SHARED anonymous mapping made before the fork).
 *
 * Files:
 *   bench.h      this: what the files share
 *   common.c     the control block, worker life cycle, histograms, clocks, machine info
 *   loops.h      the measuring loops, written once and specialised per peer
 *   peer_*.c     the peers: shmbus, shmbus's sinks and fds, the bare ring / memcpy /
 *                futex, pipes and Unix sockets, ZeroMQ, iceoryx, NATS, Redis
 *   daemon.c     the servers some peers need (nats-server, iox-roudi): start and stop
 *   brokered.c   the brokered bus's shmbusd (access = brokered, issue 14)
 *   run.c        one run of one case: fork, measure, collect, count syscalls
 *   cpu.c        instructions per message under callgrind
 *   report*.c    the table, the targets, JSON, the plots (report.h says which file holds
 *                which)
 *   main.c       options, the case lists of each mode, the rounds
 */
#ifndef SHMBUS_BENCH_H
#define SHMBUS_BENCH_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>

#define MAX_PUBS 4
#define MAX_SUBS 4
#define MAX_WORKERS (MAX_PUBS + MAX_SUBS)
#define MAX_ROUNDS 9

/* The first 8 bytes of every message: publisher index (top byte) and its counter. */
#define TAG(pub, n) (((uint64_t)(pub) << 56) | (n))
#define TAG_PUB(t) ((unsigned)((t) >> 56))
#define TAG_N(t) ((t) & ((1ull << 56) - 1))
/* A message with this tag ends a ping-pong or a paced run. */
#define TAG_END UINT64_MAX

/* A tag's hash (the splitmix64 finaliser): sums of it tell a set of tags from another with
 * the same count and sum (one message twice and one missing). */
static inline uint64_t tag_hash(uint64_t t)
{
	t = (t ^ (t >> 30)) * 0xbf58476d1ce4e5b9ull;
	t = (t ^ (t >> 27)) * 0x94d049bb133111ebull;
	return t ^ (t >> 31);
}

/* ---- scenarios and peers ------------------------------------------------------------ */

enum scenario {
	SC_SPSC,     /* one publisher, one subscriber: throughput */
	SC_MPSC,     /* n publishers, one subscriber */
	SC_FANOUT,   /* one publisher, n subscribers that each read everything */
	SC_GROUP,    /* one publisher, a group of n members sharing the messages */
	SC_PINGPONG, /* round trips over two channels, both sides waiting busily */
	SC_ONEWAY,   /* one-way latency at a fixed rate, from the intended send time */
	SC_WAKEUP,   /* round trips with both sides asleep: the blocking path */
	SC_SYSCALLS, /* syscalls per message (perf), shmbus alone */
	SC_CPU,	     /* instructions per message (callgrind), in one process */
	SC_OPEN,     /* open + close of a publisher (1x0) or a subscriber (0x1): latency */
	NSCENARIOS
};
/* Each scenario's name, as --scenario takes it and the JSON and the report print it. */
extern const char *const scenario_names[NSCENARIOS];

enum peer_id {
	PEER_SHMBUS,	  /* block policy */
	PEER_SHMBUS_OVW,  /* overwrite policy */
	PEER_SHMBUS_SPIN, /* block, subscriber never sleeps (one-way latency) */
	PEER_BROKERED,	  /* block, on a bus a shmbusd brokers (access = brokered) */
	PEER_SHMBUS_ACK,  /* block, group members that ack each message (SHMBUS_SUB_ACK) */
	/* Issue 16 (peer_sink.c): a sink over SINK_TOPICS topics, received with
	 * shmbus_sink_recv() (it sleeps in it); the same waited for in epoll on
	 * shmbus_sink_fd(); one subscriber waited for in epoll on shmbus_sub_fd(); a sink
	 * over one topic, received with shmbus_sink_recv() (the reader's own cost). */
	PEER_SHMBUS_SINK,
	PEER_SHMBUS_SINK_FD,
	PEER_SHMBUS_FD,
	PEER_SHMBUS_SINK1,
	PEER_RING,	  /* bare fixed-slot SPSC ring in shared memory */
	PEER_MEMCPY,	  /* one core, memcpy into a cache-resident buffer */
	PEER_MEMCPY_DRAM, /* one core, memcpy through buffers larger than the LLC */
	PEER_FUTEX,	  /* raw futex ping-pong */
	PEER_PIPE,
	PEER_UNIX,	  /* SOCK_SEQPACKET, one message per send */
	PEER_UNIX_STREAM, /* SOCK_STREAM, many messages per write */
	PEER_ZMQ,
	PEER_ICEORYX, /* iceoryx 2 through its C binding, zero-copy shared memory, iox-roudi */
	PEER_NATS,    /* NATS core pub/sub over loopback TCP, nats-server */
	/* The Redis peers last: the driver starts redis-server if any of them is wanted. */
	PEER_REDIS_PUB,	      /* PUBLISH, one round trip per message */
	PEER_REDIS_PUB_PIPE,  /* PUBLISH, pipelined */
	PEER_REDIS_XADD,      /* XADD / XREAD (XREADGROUP for a group) */
	PEER_REDIS_XADD_PIPE, /* the same, XADD pipelined */
	PEER_REDIS_XACK_PIPE, /* XADD pipelined; a group's readers XACK what they read */
	NPEERS
};

struct run;
typedef void (*role_fn)(struct run *r, int idx);

/* Peer flags. */
enum {
	PF_SHMBUS = 1u << 0,	   /* one of shmbus's own rows */
	PF_SILENT_LOSS = 1u << 1,  /* may drop messages without saying: a gap is a loss */
	PF_REPORTS_LOSS = 1u << 2, /* drops and says so (shmbus overwrite: msg.lost) */
};

struct peer {
	const char *id;	   /* JSON */
	const char *label; /* table */
	unsigned flags;
	/* Can it run here? 1 yes; 0 no, with the reason in why. NULL: always. */
	int (*available)(char *why, size_t n);
	/* In the driver before the workers fork (topics, rings, sockets); -errno, with
	 * r->err set. And after they are gone. */
	int (*prepare)(struct run *r);
	void (*cleanup)(struct run *r);
	/* Worker roles; NULL where the peer does not take part in that scenario. */
	role_fn producer, consumer; /* throughput scenarios */
	role_fn pinger, ponger;	    /* ping-pong and wake-up */
	role_fn paced_tx, paced_rx; /* one-way latency at a rate */
	role_fn opener;		    /* open + close latency, alone (shmbus only) */
};

extern const struct peer *const peers[NPEERS];
extern const struct peer peer_shmbus, peer_shmbus_ovw, peer_shmbus_spin, peer_shmbus_brokered;
extern const struct peer peer_shmbus_ack, peer_shmbus_sink, peer_shmbus_sink_fd, peer_shmbus_fd;
extern const struct peer peer_shmbus_sink1;
extern const struct peer peer_ring, peer_memcpy, peer_memcpy_dram, peer_futex;
extern const struct peer peer_pipe, peer_unix, peer_unix_stream;
extern const struct peer peer_zmq, peer_iceoryx, peer_nats;
extern const struct peer peer_redis_pub, peer_redis_pub_pipe, peer_redis_xadd, peer_redis_xadd_pipe;
extern const struct peer peer_redis_xack_pipe;

/* ---- cases and results --------------------------------------------------------------- */

struct casedef {
	enum scenario sc;
	enum peer_id peer;
	uint32_t size;	/* payload bytes */
	uint8_t npub;	/* publisher processes */
	uint8_t nsub;	/* subscribers, or group members */
	uint32_t rate;	/* one-way, syscalls, a paced fan-out: messages per second (0: as fast
			 * as it goes) */
	uint8_t rounds; /* how many of the rounds run this case */
	uint8_t pin;	/* enum pin */
};

/* The sink peers read this many topics; their publishers write them in turn (message n of
 * a publisher to topic n % SINK_TOPICS), so that each topic is busy. */
#define SINK_TOPICS 8

/* The paced fan-out's rate (shmbus overwrite, 64 B): one its readers can keep up with on
 * 2 CPUs, so a message lost there is one the policy need not have lost. */
#define PACED_FANOUT_RATE 200000

/* Where a run's workers may run. */
enum pin {
	PIN_NONE,  /* where the scheduler puts them (the default: the machine is shared) */
	PIN_SPLIT, /* worker i on the i-th CPU allowed (two CPUs: one each) */
	PIN_SAME,  /* all on the first CPU allowed */
};

/* Log-linear histogram of nanoseconds: exact below 64, then 64 buckets per power of two
 * (at most 1.6% apart), up to 2^41 ns. */
#define H_SUB 64u
#define H_BUCKETS (36u * H_SUB)
struct hist {
	uint64_t n, max, min;
	uint64_t b[H_BUCKETS];
};

void hist_reset(struct hist *h);
void hist_add(struct hist *h, uint64_t ns);
void hist_merge(struct hist *into, const struct hist *from);
/* The value at quantile q (0..1): the middle of its bucket; max for q >= 1. */
uint64_t hist_quantile(const struct hist *h, double q);
/* Bucket i's lower bound and width. */
uint64_t hist_bucket_lo(unsigned i);
uint64_t hist_bucket_width(unsigned i);

struct result {
	int ok;
	int unmeasurable; /* not ok because the machine could not measure it (perf) */
	double value;	  /* what ratios use: msg/s delivered, or p50 in ns */
	double msgs;	  /* msg/s delivered: per subscriber (fan-out), all members (group) */
	double pub_msgs;  /* msg/s published, all publishers */
	double lost;	  /* fraction of the published messages some reader did not get */
	double cpu_s;	  /* CPU seconds of the workers (and of the servers) in the run */
	double cpu_ns_per_msg;
	uint64_t p50, p90, p99, p999, max, samples;
	double achieved; /* one-way: the rate the sender kept up (msg/s) */
	int saturated;	 /* one-way: it could not keep the rate */
	double syscalls; /* per message (perf), < 0 if not counted */
	double wakeups;	 /* futex wakes per message (shmbus counter) */
	double bp_waits; /* publisher waits for space per message (shmbus counter) */
	double window_msgs;
	double others; /* share of the CPUs other processes used during the run */
	int attempts;  /* runs made: more than 1 when other processes disturbed one */
};

/* A case's results over the rounds. */
enum case_status { CS_NOT_RUN, CS_OK, CS_ABSENT, CS_FAILED };
struct caseres {
	enum case_status status;
	int runs_ok, runs_failed;
	struct result r[MAX_ROUNDS];
	struct hist *h; /* latency cases: all rounds' samples */
	char why[256];	/* absent or failed: why */
};

/* ---- what the driver and the workers of one run share ------------------------------- */

struct wslot {
	_Alignas(128) uint64_t count; /* messages sent (publisher) or received (reader) */
	uint64_t lost;		      /* reader: messages it knows it lost */
	uint32_t done;		      /* publisher: all sent; it waits to be ended */
	/* Group member: the sums, over the messages it got, of their tags and of a hash of
	 * their tags. With the counts, they show each message came to exactly one member. */
	uint64_t sum_tag, sum_hash;
};

/* In a MAP_SHARED anonymous mapping made before any fork. Flags on their own lines. */
struct ctl {
	_Alignas(128) uint32_t ready; /* workers set up and waiting for go */
	_Alignas(128) uint32_t go;    /* futex word: the driver says start */
	_Alignas(128) uint32_t stop;  /* the driver: publishers finish now */
	_Alignas(128) uint64_t t_go;  /* CLOCK_MONOTONIC ns: the run started (paced senders) */
	uint64_t warm_end;	      /* measurement starts */
	uint64_t end;		      /* measurement ends (paced senders stop sending) */
	struct wslot w[MAX_WORKERS];  /* publishers first, then readers */
	/* Results of the measuring worker (pinger, paced receiver). */
	uint64_t sent;	    /* paced sender: messages sent */
	uint64_t last_send; /* paced sender: when it actually sent the last one */
	uint32_t saturated; /* paced sender: fell more than a second behind */
	uint32_t failed;    /* first failure wins the message */
	char err[256];
	struct hist h;
	/* Paced sender that gave up: for each message it never sent, a lower bound of its
	 * latency (when it gave up, less when it was due). */
	struct hist h_unsent;
};

extern struct ctl *ctl;

/* Settings of the whole invocation. */
struct config {
	double secs;	  /* measured seconds of a throughput or paced run */
	double warm;	  /* warm-up before it */
	uint64_t pp_n;	  /* recorded round trips per ping-pong run (at most) */
	uint64_t pp_warm; /* warm-up round trips (at most: also at most cfg.warm seconds) */
	double pp_secs;	  /* a ping-pong run records for this long at most */
	uint64_t open_n;  /* recorded open + close pairs per open run */
	int rounds;
	int wake_rounds;       /* the wake-up cases' rounds (>= rounds): their ratios spread
				* most from round to round (a halted vCPU's wake-up) */
	const char *mode;      /* "quick", "full", "smoke" */
	char dir[64];	       /* private directory under /dev/shm for topics, rings, sockets */
	uint64_t llc;	       /* last-level cache bytes */
	int perf_ok;	       /* perf can count syscalls here */
	int retries;	       /* a run disturbed by other processes is made again, this often */
	double retry_budget_s; /* ... while the whole suite has run less than this */
};
extern struct config cfg;

/* One run of one case, as the workers see it. */
struct run {
	const struct casedef *c;
	int round, idx; /* case index in the list */
	uint32_t size;
	uint64_t capacity; /* ring / topic / pipe bytes */
	int npub, nsub;
	int spin_us;	      /* shmbus subscriber spin: -1 default, 0 sleep at once */
	char a[160], b[160];  /* channel names: topic, ring file, endpoint, key */
	int topics;	      /* shmbus: 1, channels are the topics a and b; more (the sink
			       * peers), they are a.0, a.1, ... and b.0, b.1, ... */
	int fd_a[2], fd_b[2]; /* socket pairs and pipes */
	void *shared;	      /* a MAP_SHARED block made in prepare (futex words) */
	char err[256];
};

/* ---- worker helpers (common.c) -------------------------------------------------------- */

/* Record the first failure and leave the worker. */
__attribute__((format(printf, 1, 2), noreturn)) void wfail(const char *fmt, ...);
/* Announce readiness and sleep until the driver says go (a futex: no syscalls after). */
void worker_ready_wait(void);
/* A message buffer of size bytes (at least 16), zeroed. */
uint8_t *msg_buf(uint32_t size);

static inline int stopped(void)
{
	return __atomic_load_n(&ctl->stop, __ATOMIC_RELAXED) != 0;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t load_u64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void store_u64(void *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* Tag a message: the tag first and (16 bytes and up) last; bytes 8..16 carry ts. */
static inline void msg_stamp(uint8_t *buf, uint32_t size, uint64_t tag, uint64_t ts)
{
	store_u64(buf, tag);
	if (size >= 16) {
		store_u64(buf + 8, ts);
		store_u64(buf + size - 8, tag);
	}
}

/* A reader touches one word of each cache line of a large message: all of it moves. */
static inline uint64_t touch_lines(const uint8_t *p, size_t n)
{
	uint64_t x = 0;

	for (size_t i = 0; i < n; i += 64)
		x ^= load_u64(p + i);
	return x;
}

void sleep_until(uint64_t t);
void futex_wait_u32(uint32_t *w, uint32_t val);
void futex_wake_u32(uint32_t *w);

/* ---- driver helpers -------------------------------------------------------------------- */

struct machine {
	long nproc;
	char model[128];
	char kernel[160];
	uint64_t llc;
};
void machine_info(struct machine *m);

/* Everything the report needs. */
struct suite {
	struct casedef *cases;
	struct caseres *res;
	int n;
	int peer_ok[NPEERS];
	char peer_why[NPEERS][200];
	int cpu_ok; /* callgrind measured */
	char cpu_why[200];
	struct cpu_counts {
		int ok;
		double per_msg, publish, recv; /* instructions */
		char err[256];
	} cpu[2]; /* [0] shmbus, [1] bare ring */
	int perf_ok;
	char perf_why[200];
	struct machine m;
	const char *git;
	double loadavg, loadavg_end;
	/* CPU-seconds the whole machine was busy, and stolen by the hypervisor, during the
	 * run, and what this suite (driver and all its children) used of it. */
	double busy_s, steal_s, own_s;
	double elapsed;
	const char *outdir;
	const char *command;
};

/* report.c: the table on out (and report.txt), JSON lines, the plots. Returns how many
 * targets were missed (or unknown). */
int report(struct suite *s, FILE *out);

/* The machine's busy and steal CPU-seconds so far (/proc/stat). */
void machine_cpu(double *busy_s, double *steal_s);
/* CPU-seconds of this process and its reaped children. */
double own_cpu(void);

/* Is prog found in PATH? Fills its full path. */
int find_program(const char *prog, char *path, size_t n);

/* Remove a directory tree. */
void rm_tree(const char *path);

/* Redis (peer_redis.c): start a private redis-server (0, or -1 with why). */
int redis_start(char *why, size_t n);
void redis_stop(void);
pid_t redis_pid(void);
/* CPU seconds the redis-server used so far (0 if none). */
double redis_cpu_s(void);

/* The peers' servers (daemon.c): spawn one with its output to log (pid, or -1); has it
 * exited (reaped, status filled)? Stop it with sig, SIGKILL after secs. */
pid_t daemon_spawn(const char *prog, char *const argv[], const char *log);
int daemon_exited(pid_t pid, int *status);
void daemon_stop(pid_t *pid, int sig, double secs);
/* Why it exited at start: its status and the last line of its log. */
void daemon_exit_why(const char *name, int status, const char *log, char *why, size_t n);
/* CPU seconds a process used so far (0 if none). */
double pid_cpu_s(pid_t pid);
/* A TCP port on 127.0.0.1 nobody listens on now (-1 if none). */
int loopback_free_port(void);
/* All of them: CPU seconds so far; stop them (at the end); kill them (signal handlers:
 * kill() and unlink() only). */
double daemons_cpu_s(void);
void daemons_stop(void);
void daemons_kill(void);

/* NATS (peer_nats.c): start a private nats-server on loopback (0, or -1 with why). */
int nats_start(char *why, size_t n);
void nats_stop(void);
void nats_kill(void);
double nats_cpu_s(void);

/* iceoryx (peer_iceoryx.c): start iox-roudi and wait until a runtime can register (0, or
 * -1 with why). */
int iox_start(char *why, size_t n);
void iox_stop(void);
void iox_kill(void);
double iox_cpu_s(void);

/* The brokered bus (brokered.c): a private shmbusd with access = brokered on the bus
 * BROKERED_BUS in the suite's directory, started and waited for (its ping answers): 0, or
 * -1 with why. */
#define BROKERED_BUS "brokered"
int brokered_start(char *why, size_t n);
void brokered_stop(void);
void brokered_kill(void);
double brokered_cpu_s(void);

/* shmbus topic counters for the syscalls scenario (peer_shmbus.c), from the driver: the
 * sums over channel a's topics. */
struct sb_counts {
	uint64_t wakeups, published, bp_waits;
};
int shmbus_peer_counts(const struct run *r, struct sb_counts *k);
void shmbus_peer_init_driver(void);
void shmbus_peer_fini_driver(void);
/* What the sink peers (peer_sink.c) share with peer_shmbus.c: the name of channel chan's
 * topic k (r->topics > 1: "<a>.<k>"; else a or b); prepare and cleanup of the channels'
 * topics; a worker's handle on its bus. */
void shmbus_peer_topic(const struct run *r, int chan, int k, char *name, size_t n);
int shmbus_peer_prepare(struct run *r);
void shmbus_peer_cleanup(struct run *r);
struct shmbus_bus;
struct shmbus_bus *shmbus_peer_worker_bus(const struct run *r);

/* run.c */
struct result run_case(const struct casedef *c, int idx, int round, char *err, size_t errlen);
void run_kill_all(void);
int perf_available(char *why, size_t n);

/* cpu.c */
int cpu_probe_main(const char *peer, int n1, int n2);
struct cpu_counts cpu_measure(enum peer_id peer);
int cpu_available(char *why, size_t n);

#endif
