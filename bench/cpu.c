/* SPDX-License-Identifier: MIT */
/*
 * CPU cost as instructions, counted by callgrind: unlike time, the count is the same on a
 * busy machine as on an idle one. The driver runs this very program under valgrind in
 * probe mode (--cpu-probe PEER), which publishes and receives 64-byte messages in one
 * process, on a shmbus topic or on the bare ring:
 *
 *   each loop runs twice, n1 then n2 times, with collection on only inside the loop and a
 *   dump (CALLGRIND_DUMP_STATS_AT) after each, so (count(n2) - count(n1)) / (n2 - n1) is
 *   the cost of one iteration with every fixed cost (the call, the first touch) gone;
 *   the same for a loop doing only the harness's work (tag the message, check it), which
 *   is subtracted: what remains is the channel's own publish + recv.
 *
 * Loops: publish+recv pairs (the figure the target is about), then publish only and recv
 * only (n messages published, then read), which split it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <shmbus.h>

#include "bare_ring.h"
#include "bench.h"

#ifdef HAVE_CALLGRIND_H
#include <valgrind/callgrind.h>
#endif

#define PROBE_SIZE 64u
#define PROBE_N1 1000
#define PROBE_N2 4000

enum { L_HARNESS, L_PAIR, L_PUB, L_RECV, NLOOPS };
#ifdef HAVE_CALLGRIND_H
/* Each loop's callgrind dump is named after it. */
static const char *const loop_names[NLOOPS] = { "harness", "pair", "publish", "recv" };
#endif

struct probe {
	int ring;
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	struct bring q_tx, q_rx;
	uint8_t buf[PROBE_SIZE];
	uint64_t n; /* next tag to publish */
	uint64_t r; /* next tag to receive */
};

static __attribute__((noreturn)) void probe_fail(const char *what, int rc)
{
	fprintf(stderr, "cpu probe: %s: %s (%s)\n", what, strerror(rc < 0 ? -rc : rc),
		shmbus_errmsg());
	exit(1);
}

static inline void p_send(struct probe *p)
{
	msg_stamp(p->buf, PROBE_SIZE, p->n, 0);
	p->n++;
	if (p->ring) {
		bring_send(&p->q_tx, p->buf, PROBE_SIZE);
	} else {
		int rc = shmbus_publish(p->pub, p->buf, PROBE_SIZE, 1);
		if (rc < 0)
			probe_fail("publish", rc);
	}
}

static inline void p_recv(struct probe *p)
{
	const uint8_t *d;

	if (p->ring) {
		d = bring_recv(&p->q_rx);
	} else {
		shmbus_msg_t m;
		int rc = shmbus_recv(p->sub, &m, 1000);
		if (rc < 0 || m.len != PROBE_SIZE)
			probe_fail("recv", rc < 0 ? rc : -EBADMSG);
		d = m.data;
	}
	if (load_u64(d) != p->r || load_u64(d + PROBE_SIZE - 8) != p->r)
		probe_fail("check", -EBADMSG);
	p->r++;
}

/* The harness alone: tag a message and check it, as the other loops do. */
static __attribute__((noinline)) void loop_harness(struct probe *p, int n)
{
	for (int i = 0; i < n; i++) {
		msg_stamp(p->buf, PROBE_SIZE, p->n, 0);
		p->n++;
		__asm__ __volatile__("" : : "r"(p->buf) : "memory");
		if (load_u64(p->buf) != p->r || load_u64(p->buf + PROBE_SIZE - 8) != p->r)
			probe_fail("check", -EBADMSG);
		p->r++;
	}
}

static __attribute__((noinline)) void loop_pair(struct probe *p, int n)
{
	for (int i = 0; i < n; i++) {
		p_send(p);
		p_recv(p);
	}
}

static __attribute__((noinline)) void loop_pub(struct probe *p, int n)
{
	for (int i = 0; i < n; i++)
		p_send(p);
}

static __attribute__((noinline)) void loop_recv(struct probe *p, int n)
{
	for (int i = 0; i < n; i++)
		p_recv(p);
}

static void run_loop(struct probe *p, int which, int n)
{
#ifdef HAVE_CALLGRIND_H
	CALLGRIND_TOGGLE_COLLECT;
#endif
	switch (which) {
	case L_HARNESS:
		loop_harness(p, n);
		break;
	case L_PAIR:
		loop_pair(p, n);
		break;
	case L_PUB:
		loop_pub(p, n);
		break;
	default:
		loop_recv(p, n);
		break;
	}
#ifdef HAVE_CALLGRIND_H
	CALLGRIND_TOGGLE_COLLECT;
	CALLGRIND_DUMP_STATS_AT(loop_names[which]);
#endif
}

int cpu_probe_main(const char *peer, int n1, int n2)
{
	struct probe *p = calloc(1, sizeof(*p));
	shmbus_bus_t *bus = NULL;
	char topic[64];
	void *mem = NULL;

	if (!p)
		return 1;
	p->ring = !strcmp(peer, "bare_ring");
	if (p->ring) {
		uint64_t nslots = (1u << 20) / 64;

		mem = aligned_alloc(4096, bring_bytes(nslots, 64));
		if (!mem)
			return 1;
		memset(mem, 0, bring_bytes(nslots, 64));
		bring_init(&p->q_tx, mem, nslots, 64, PROBE_SIZE);
		bring_init(&p->q_rx, mem, nslots, 64, PROBE_SIZE);
	} else {
		shmbus_topic_opts_t o;
		int rc = shmbus_bus_open(&bus, NULL);

		if (rc < 0)
			probe_fail("bus open", rc);
		shmbus_topic_opts_init(&o);
		o.capacity = 1u << 20;
		snprintf(topic, sizeof(topic), "cpu.probe.p%d", (int)getpid());
		if ((rc = shmbus_topic_create(bus, topic, &o)) < 0)
			probe_fail("topic create", rc);
		if ((rc = shmbus_pub_open(&p->pub, bus, topic)) < 0)
			probe_fail("pub open", rc);
		if ((rc = shmbus_sub_open(&p->sub, bus, topic, NULL, 0)) < 0)
			probe_fail("sub open", rc);
	}
	/* Warm-up: first calls, first touches of the ring. */
	loop_pair(p, 2000);
	for (int which = 0; which < NLOOPS; which++) {
		if (which == L_RECV)
			continue; /* run right after its publish loop */
		run_loop(p, which, n1);
		if (which == L_PUB)
			run_loop(p, L_RECV, n1);
		run_loop(p, which, n2);
		if (which == L_PUB)
			run_loop(p, L_RECV, n2);
	}
	if (!p->ring) {
		shmbus_sub_close(p->sub);
		shmbus_pub_close(p->pub);
		shmbus_topic_remove(bus, topic);
		shmbus_bus_close(bus);
	}
	free(mem);
	free(p);
	return 0;
}

/* ---- the driver's side -------------------------------------------------------------------- */

int cpu_available(char *why, size_t n)
{
	char prog[PATH_MAX];

#if !defined(HAVE_CALLGRIND_H)
	snprintf(why, n, "built without valgrind/callgrind.h (install valgrind and reconfigure)");
	return 0;
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	snprintf(why, n, "a sanitizer build: valgrind cannot run it");
	return 0;
#endif
	if (!find_program("valgrind", prog, sizeof(prog))) {
		snprintf(why, n, "valgrind not found (install valgrind)");
		return 0;
	}
	return 1;
}

static int64_t read_totals(const char *path)
{
	char line[256];
	int64_t v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "totals:", 7))
			v = strtoll(line + 7, NULL, 10);
		else if (v < 0 && !strncmp(line, "summary:", 8))
			v = strtoll(line + 8, NULL, 10);
	}
	fclose(f);
	return v;
}

struct cpu_counts cpu_measure(enum peer_id peer)
{
	struct cpu_counts res = { 0 };
	const char *id = peers[peer]->id;
	char self[PATH_MAX], out[200], log[200], n1s[16], n2s[16], outopt[240];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (len <= 0) {
		snprintf(res.err, sizeof(res.err), "readlink /proc/self/exe: %s", strerror(errno));
		return res;
	}
	self[len] = 0;
	snprintf(out, sizeof(out), "%s/callgrind.%s.out", cfg.dir, id);
	snprintf(outopt, sizeof(outopt), "--callgrind-out-file=%s", out);
	snprintf(log, sizeof(log), "%s/callgrind.%s.log", cfg.dir, id);
	snprintf(n1s, sizeof(n1s), "%d", PROBE_N1);
	snprintf(n2s, sizeof(n2s), "%d", PROBE_N2);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("valgrind", "valgrind", "--tool=callgrind", "--collect-atstart=no", outopt,
		       self, "--cpu-probe", id, n1s, n2s, (char *)NULL);
		_exit(127);
	}
	if (pid < 0) {
		snprintf(res.err, sizeof(res.err), "fork: %s", strerror(errno));
		return res;
	}
	int st;
	uint64_t deadline = now_ns() + 300000000000ull;
	while (waitpid(pid, &st, WNOHANG) != pid) {
		if (now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			snprintf(res.err, sizeof(res.err), "valgrind took more than 300 s");
			return res;
		}
		usleep(10000);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(res.err, sizeof(res.err), "valgrind failed (see %.200s)", log);
		return res;
	}
	/* Dumps in order: harness n1, n2; pair n1, n2; pub n1, recv n1, pub n2, recv n2. */
	int64_t d[8];
	for (int i = 0; i < 8; i++) {
		char path[240];

		snprintf(path, sizeof(path), "%s.%d", out, i + 1);
		d[i] = read_totals(path);
		if (d[i] < 0) {
			snprintf(res.err, sizeof(res.err), "no callgrind dump %.200s", path);
			return res;
		}
	}
	double dn = PROBE_N2 - PROBE_N1;
	double harness = (double)(d[1] - d[0]) / dn;
	res.per_msg = (double)(d[3] - d[2]) / dn - harness;
	/* The split loops only tag (publish) or only check (recv): half a harness each. */
	res.publish = (double)(d[6] - d[4]) / dn - harness / 2;
	res.recv = (double)(d[7] - d[5]) / dn - harness / 2;
	res.ok = 1;
	return res;
}
