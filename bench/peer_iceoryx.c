/* SPDX-License-Identifier: MIT */
/*
 * iceoryx 2.0 (Debian's iceoryx and libiceoryx-binding-c-dev), through its C binding:
 * publishers loan a chunk of shared memory, the sender copies the message into it (the
 * loops hand every peer a buffer to send) and publishes it; readers take the chunk itself,
 * with no copy, and release it at the next message.
 *   SPSC, fan-out          a publisher, one subscriber per reader
 *   ping-pong, wake-up     two topics, one each way
 * Lossless like shmbus's block policy: the publisher waits for a subscriber whose queue is
 * full (ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER / QueueFullPolicy_BLOCK_PRODUCER), so a
 * reader must get every message, in order. A reader takes chunks as they come; with none,
 * it polls for 20 us (shmbus's default spin) and then sleeps on a wait set until its
 * subscriber has data; in ping-pong it polls without end, in the wake-up scenario it sleeps
 * at once, as shmbus's readers do in each.
 *
 * iceoryx needs its daemon, iox-roudi: the suite starts one with a config of its own (the
 * memory pools below: a chunk for every message size the suite sends) and stops it at the
 * end. iceoryx 2.0 has no private instance: RouDi's shared memory (/dev/shm/iceoryx_mgmt
 * and one segment named after the user's group) and its socket and locks (/tmp/roudi,
 * /tmp/roudi.lock, /tmp/iox-unique-roudi.lock) are fixed names, so where another RouDi runs, this peer is
 * absent.
 * Each worker process registers with RouDi under a name of its own (its pid); RouDi's
 * monitoring frees what a worker ended by the driver held.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "loops.h"

/* RouDi's lock, held while it runs. */
#define IOX_LOCK "/tmp/iox-unique-roudi.lock"

/* Workers' runtime names: this, the driver's pid, '-', their own. A runtime leaves a socket
 * and a lock named so in /tmp when it is killed: removed when RouDi is stopped. */
#define RUNTIME_PREFIX "shmbus-bench-iox-"

static pid_t ipid, iox_probe;
/* What a RouDi killed outright leaves behind (removed from a signal handler too). */
static char iox_leftovers[5][160];

double iox_cpu_s(void)
{
	return pid_cpu_s(ipid);
}

static void iox_unlink_leftovers(void)
{
	/* Once: a RouDi started later by someone else has its own. */
	for (int i = 0; i < 5; i++) {
		if (iox_leftovers[i][0])
			unlink(iox_leftovers[i]);
		iox_leftovers[i][0] = 0;
	}
}

/* The sockets and locks the workers' runtimes left in /tmp. */
static void iox_unlink_runtimes(void)
{
	char prefix[64], path[320];
	DIR *d = opendir("/tmp");
	struct dirent *e;

	if (!d)
		return;
	snprintf(prefix, sizeof(prefix), RUNTIME_PREFIX "%d-", (int)getpid());
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix))) {
			snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
			unlink(path);
		}
	closedir(d);
}

void iox_stop(void)
{
	/* SIGTERM: RouDi shuts down and removes its shared memory, socket and lock. */
	if (ipid > 0)
		daemon_stop(&ipid, SIGTERM, 15);
	iox_unlink_leftovers();
	iox_unlink_runtimes();
}

void iox_kill(void)
{
	if (iox_probe > 0)
		kill(iox_probe, SIGKILL);
	if (ipid <= 0)
		return;
	kill(ipid, SIGKILL);
	iox_unlink_leftovers();
	iox_unlink_runtimes();
}

#ifdef HAVE_ICEORYX
#include <iceoryx_binding_c/chunk.h>
#include <iceoryx_binding_c/enums.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/notification_info.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>
#include <iceoryx_binding_c/types.h>
#include <iceoryx_binding_c/wait_set.h>

/* Memory pools: chunk payload bytes and how many. Enough chunks for the largest run (four
 * subscribers with full queues) and a few runs' worth more, which workers ended by the
 * driver hold until RouDi notices they are gone. */
static const struct {
	uint32_t size, count;
} pools[] = {
	{ 64, 8192 },	 { 256, 8192 },	  { 1024, 8192 },  { 4096, 4096 },
	{ 16384, 4096 }, { 65536, 1024 }, { 1048576, 96 },
};

/* Subscriber queue: iceoryx's largest (256), but small for 1 MiB messages, to fit the
 * pool. */
static uint64_t queue_for(uint32_t size)
{
	return size >= (1u << 20) ? 16 : 256;
}

/* A runtime that can register with RouDi: the probe's exit says RouDi is ready. */
static void iox_runtime_start(void)
{
	static int started;
	char name[64];

	if (started)
		return;
	started = 1;
	iox_set_loglevel(Iceoryx_LogLevel_Error);
	snprintf(name, sizeof(name), RUNTIME_PREFIX "%d-%d", (int)getppid(), (int)getpid());
	iox_runtime_init(name);
}

static int write_config(const char *path, char *why, size_t n)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		snprintf(why, n, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "[general]\nversion = 1\n\n[[segment]]\n");
	for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++)
		fprintf(f, "\n[[segment.mempool]]\nsize = %u\ncount = %u\n", pools[i].size,
			pools[i].count);
	return fclose(f) == 0 ? 0 : -1;
}

int iox_start(char *why, size_t n)
{
	char prog[PATH_MAX], conf[200], log[200];

	if (!find_program("iox-roudi", prog, sizeof(prog))) {
		snprintf(why, n, "iox-roudi not found in PATH (install iceoryx)");
		return -1;
	}
	/* RouDi holds an flock on this file while it runs (and leaves the file behind). */
	int had_lock = access(IOX_LOCK, F_OK) == 0,
	    had_uds_lock = access("/tmp/roudi.lock", F_OK) == 0;
	int lfd = open(IOX_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		close(lfd);
		snprintf(why, n,
			 "another iox-roudi runs here (it holds %s); iceoryx 2.0 has no private "
			 "instance",
			 IOX_LOCK);
		return -1;
	}
	if (lfd >= 0)
		close(lfd);
	snprintf(conf, sizeof(conf), "%s/roudi.toml", cfg.dir);
	snprintf(log, sizeof(log), "%s/roudi.log", cfg.dir);
	if (write_config(conf, why, n) < 0)
		return -1;
	struct group *g = getgrgid(getegid());
	snprintf(iox_leftovers[0], sizeof(iox_leftovers[0]), "/dev/shm/iceoryx_mgmt");
	if (g)
		snprintf(iox_leftovers[1], sizeof(iox_leftovers[1]), "/dev/shm/%s", g->gr_name);
	snprintf(iox_leftovers[2], sizeof(iox_leftovers[2]), "/tmp/roudi");
	if (!had_uds_lock)
		snprintf(iox_leftovers[3], sizeof(iox_leftovers[3]), "/tmp/roudi.lock");
	if (!had_lock)
		snprintf(iox_leftovers[4], sizeof(iox_leftovers[4]), "%s", IOX_LOCK);

	/* -k 1: at shutdown, RouDi kills what is still registered after 1 s, not 45. */
	char *argv[] = { prog, "-c", conf, "-l", "warning", "-k", "1", NULL };
	ipid = daemon_spawn(prog, argv, log);
	if (ipid < 0) {
		ipid = 0;
		snprintf(why, n, "fork: %s", strerror(errno));
		return -1;
	}
	/* Ready when a runtime can register: a probe process tries (the driver itself must
	 * not, or every worker would inherit its runtime). */
	fflush(NULL);
	pid_t parent = getpid();
	pid_t probe = iox_probe = fork();
	if (probe == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		/* Die with the suite (a runtime waits a minute for a RouDi that is gone). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		if (devnull >= 0) {
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		iox_runtime_start();
		_exit(0);
	}
	if (probe < 0) {
		snprintf(why, n, "fork: %s", strerror(errno));
		iox_stop();
		return -1;
	}
	uint64_t deadline = now_ns() + 30000000000ull;
	int st = 0;
	for (;;) {
		if (waitpid(probe, &st, WNOHANG) == probe) {
			iox_probe = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				return 0;
			snprintf(why, n, "a process could not register with iox-roudi (status %d)",
				 st);
			break;
		}
		if (daemon_exited(ipid, &st)) {
			/* It never ran: what is there (another RouDi's) is not ours to remove. */
			ipid = 0;
			memset(iox_leftovers, 0, sizeof(iox_leftovers));
			daemon_exit_why("iox-roudi", st, log, why, n);
			break;
		}
		if (now_ns() > deadline) {
			snprintf(why, n, "no process could register with iox-roudi within 30 s");
			break;
		}
		usleep(5000);
	}
	if (iox_probe > 0) {
		kill(probe, SIGKILL);
		waitpid(probe, NULL, 0);
	}
	iox_probe = 0;
	iox_stop();
	return -1;
}

static int iceoryx_available(char *why, size_t n)
{
	if (ipid > 0)
		return 1;
	snprintf(why, n, "iox-roudi not started");
	return 0;
}

static int iceoryx_prepare(struct run *r)
{
	static unsigned serial;

	/* The event of the topic: one per run and channel, a run made again included. A
	 * worker the driver killed stays connected to its topic until RouDi notices it is
	 * gone, and its full queue would hold up a publisher of the same topic. */
	serial++;
	snprintf(r->a, sizeof(r->a), "c%d-r%d-%u-a", r->idx, r->round, serial);
	snprintf(r->b, sizeof(r->b), "c%d-r%d-%u-b", r->idx, r->round, serial);
	return 0;
}

struct ih {
	iox_pub_storage_t pub_st;
	iox_sub_storage_t sub_st;
	iox_ws_storage_t ws_st;
	iox_pub_t pub;
	iox_sub_t sub;
	iox_ws_t ws;
	const void *held; /* the chunk the current view points into */
	int64_t spin_ns;  /* poll this long before sleeping; < 0: never sleep */
};

static struct ih *ih_new(void)
{
	struct ih *h = aligned_alloc(64, (sizeof(struct ih) + 63) & ~(size_t)63);

	if (!h)
		wfail("out of memory");
	memset(h, 0, sizeof(*h));
	iox_runtime_start();
	return h;
}

static void *i_open_tx(struct run *r, int chan, int idx)
{
	struct ih *h = ih_new();
	iox_pub_options_t o;

	(void)idx;
	iox_pub_options_init(&o);
	o.historyCapacity = 0;
	o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	h->pub = iox_pub_init(&h->pub_st, "shmbus-bench", "iceoryx", chan ? r->b : r->a, &o);
	if (!h->pub)
		wfail("iox_pub_init failed");
	return h;
}

static void *i_open_rx(struct run *r, int chan, int idx)
{
	struct ih *h = ih_new();
	iox_sub_options_t o;

	(void)idx;
	iox_sub_options_init(&o);
	o.queueCapacity = queue_for(r->size);
	o.historyRequest = 0;
	o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	o.subscribeOnCreate = true;
	h->sub = iox_sub_init(&h->sub_st, "shmbus-bench", "iceoryx", chan ? r->b : r->a, &o);
	if (!h->sub)
		wfail("iox_sub_init failed");
	h->spin_ns = r->spin_us < 0 ? 20000 : r->spin_us >= 1000000 ? -1 : r->spin_us * 1000;
	if (h->spin_ns >= 0) {
		h->ws = iox_ws_init(&h->ws_st);
		if (iox_ws_attach_subscriber_state(h->ws, h->sub, SubscriberState_HAS_DATA, 0,
						   NULL) != WaitSetResult_SUCCESS)
			wfail("iox_ws_attach_subscriber_state failed");
	}
	/* Connected to the publisher (which the other side makes first or soon): from here
	 * on, every message published reaches this subscriber. */
	uint64_t deadline = now_ns() + 20000000000ull;
	while (iox_sub_get_subscription_state(h->sub) != SubscribeState_SUBSCRIBED) {
		if (now_ns() > deadline)
			wfail("iceoryx subscriber %s: not connected to a publisher within 20 s",
			      chan ? r->b : r->a);
		usleep(1000);
	}
	return h;
}

static inline void i_send(void *hp, const uint8_t *buf, uint32_t len)
{
	struct ih *h = hp;
	void *chunk;
	enum iox_AllocationResult rc;
	uint64_t deadline = 0;

	/* Out of chunks: those of workers ended by the driver come back once RouDi notices
	 * they are gone (about a second); wait for that, up to 20 s. */
	while ((rc = iox_pub_loan_chunk(h->pub, &chunk, len)) != AllocationResult_SUCCESS) {
		if (rc != AllocationResult_RUNNING_OUT_OF_CHUNKS)
			wfail("iox_pub_loan_chunk(%u bytes): error %d", len, (int)rc);
		if (!deadline)
			deadline = now_ns() + 20000000000ull;
		else if (now_ns() > deadline)
			wfail("iox_pub_loan_chunk(%u bytes): out of chunks for 20 s", len);
		usleep(1000);
	}
	memcpy(chunk, buf, len);
	iox_pub_publish_chunk(h->pub, chunk);
}

/*
 * The C binding of 2.0 has no accessor for a chunk's payload size: it is read from the
 * chunk header (iceoryx_posh/mepoo/chunk_header.hpp, header version 1: chunkSize u32,
 * version u8, reserved u8, userHeaderId u16, originId u64, sequenceNumber u64,
 * userHeaderSize u32, userPayloadSize u32). The readers check every message's length, so
 * a layout that differs fails the run, it cannot pass unnoticed.
 */
#define CHUNK_HEADER_VERSION_OFF 4
#define CHUNK_PAYLOAD_SIZE_OFF 28

static inline uint32_t payload_size(const void *chunk)
{
	const uint8_t *hdr = (const uint8_t *)iox_chunk_header_from_user_payload_const(chunk);
	uint32_t n;

	if (hdr[CHUNK_HEADER_VERSION_OFF] != 1)
		wfail("iceoryx chunk header version %u, expected 1", hdr[CHUNK_HEADER_VERSION_OFF]);
	memcpy(&n, hdr + CHUNK_PAYLOAD_SIZE_OFF, sizeof(n));
	return n;
}

static inline void i_recv(void *hp, struct view *v)
{
	struct ih *h = hp;
	const void *chunk;
	uint64_t t0 = 0;

	if (h->held)
		iox_sub_release_chunk(h->sub, h->held);
	h->held = NULL;
	for (;;) {
		enum iox_ChunkReceiveResult rc = iox_sub_take_chunk(h->sub, &chunk);

		if (rc == ChunkReceiveResult_SUCCESS)
			break;
		if (rc != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			wfail("iox_sub_take_chunk: error %d", (int)rc);
		if (h->spin_ns < 0) {
			cpu_relax();
			continue;
		}
		if (!t0)
			t0 = now_ns();
		if (h->spin_ns && now_ns() - t0 < (uint64_t)h->spin_ns) {
			cpu_relax();
			continue;
		}
		iox_notification_info_t info[1];
		uint64_t missed;
		iox_ws_wait(h->ws, info, 1, &missed);
	}
	h->held = chunk;
	v->data = chunk;
	v->len = payload_size(chunk);
	v->lost = 0;
}

static const struct ops i_ops = {
	.open_tx = i_open_tx,
	.open_rx = i_open_rx,
	.send = i_send,
	.recv = i_recv,
};

LOOPS_DEFINE(i, &i_ops)

const struct peer peer_iceoryx = {
	.id = "iceoryx",
	.label = "iceoryx",
	.available = iceoryx_available,
	.prepare = iceoryx_prepare,
	LOOPS_ROLES(i),
};

#else

int iox_start(char *why, size_t n)
{
	snprintf(why, n,
		 "built without iceoryx_binding_c (install libiceoryx-binding-c-dev and "
		 "reconfigure)");
	return -1;
}

static int iceoryx_available(char *why, size_t n)
{
	snprintf(why, n,
		 "built without iceoryx_binding_c (install libiceoryx-binding-c-dev and "
		 "reconfigure)");
	return 0;
}

const struct peer peer_iceoryx = {
	.id = "iceoryx",
	.label = "iceoryx",
	.available = iceoryx_available,
};

#endif
