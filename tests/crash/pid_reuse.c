/* SPDX-License-Identifier: MIT */
/*
 * A claimant is named by pid AND start time: a hole whose claimant's pid now names another
 * process (pid reuse) is repaired, a hole whose claimant is a live process is never
 * robbed, and a zombie claimant counts as dead.
 *
 * Claims are forged through the mapped topic file exactly as a publisher makes them: take
 * a free publisher slot, write pid, start time and the claim (64 bytes, one sequence
 * number) into it, then move the claim tail {position, sequence} with one 16-byte CAS.
 *  - owner pid = a live process (our parent, then ourselves) with a wrong start time, or
 *    a zombie child with its true start time: a subscriber skips the hole within BOUND_MS
 *    and reads the real message behind it; stats.aborted grows by one; nothing else is
 *    delivered.
 *  - owner = ourselves with our true start time: recv waits (-EAGAIN, twice 100 ms), the
 *    message behind is not delivered and the hole is left untouched; then the forged
 *    claimant commits a record by hand (header, payload, commit word = pos ^ stamp_key,
 *    release) and the subscriber reads that record and then the message behind it.
 * Also unit checks of shmbus_proc_alive(): self 1, wrong start 0, zombie 0, reaped 0.
 */
#include "tests/lib/proc.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "ring/record.h"
#include "shm/layout.h"
#include "shm/proc.h"

#define BOUND_MS 250

static shmbus_bus_t *bus;

struct mapped {
	void *base;
	size_t size;
	struct shmbus_topic_hdr *h;
	struct shmbus_pub_slot *pubs;
	unsigned char *log;
};

static struct mapped map_topic(const char *topic)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s.topic", shmbus_bus_path(bus), topic);
	int fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	struct stat sb;
	CHECK(fstat(fd, &sb) == 0);
	struct mapped m = { 0 };
	m.size = (size_t)sb.st_size;
	m.base = mmap(NULL, m.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(m.base != MAP_FAILED);
	close(fd);
	m.h = m.base;
	CHECK(m.h->magic == SHMBUS_MAGIC);
	CHECK(m.h->pubs_off + (uint64_t)m.h->max_publishers * sizeof(struct shmbus_pub_slot) <=
	      m.size);
	CHECK(m.h->log_off + m.h->capacity <= m.size);
	m.pubs = (void *)((char *)m.base + m.h->pubs_off);
	m.log = (unsigned char *)m.base + m.h->log_off;
	return m;
}

/* 16-byte atomic read and CAS of the claim tail (as ring/atomic.h does it). */
typedef unsigned __int128 u128;
static void tail_load(uint64_t *t, uint64_t out[2])
{
	u128 v = __sync_val_compare_and_swap((u128 *)(void *)t, (u128)0, (u128)0);
	out[0] = (uint64_t)v;
	out[1] = (uint64_t)(v >> 64);
}

static int tail_cas(uint64_t *t, const uint64_t old[2], uint64_t pos, uint64_t seq)
{
	u128 o = ((u128)old[1] << 64) | old[0], n = ((u128)seq << 64) | pos;
	return __sync_bool_compare_and_swap((u128 *)(void *)t, o, n);
}

struct forged {
	struct shmbus_pub_slot *slot;
	uint64_t pos, seq;
};

/* Forge a claim of 64 bytes (one record, one sequence number) owned by (pid, start). */
static struct forged forge(struct mapped *m, pid_t pid, uint64_t start)
{
	struct forged f = { 0 };
	for (uint32_t i = 0; i < m->h->max_publishers && !f.slot; i++) {
		uint64_t free_ = 0;
		if (__atomic_compare_exchange_n(&m->pubs[i].owner, &free_,
						SHMBUS_OWNER(SHMBUS_SLOT_ACTIVE, pid), 0,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			f.slot = &m->pubs[i];
	}
	CHECK(f.slot != NULL);
	__atomic_store_n(&f.slot->starttime, start, __ATOMIC_RELEASE);
	for (;;) {
		uint64_t t[2];
		tail_load(m->h->tail, t);
		CHECK((t[0] & (m->h->capacity - 1)) + 64 <= m->h->capacity);
		/* The claim is recorded before it is made, as a publisher does. */
		__atomic_store_n(&f.slot->claim_end, t[0] + 64, __ATOMIC_RELAXED);
		__atomic_store_n(&f.slot->claim_nmsg, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&f.slot->claim_pos, t[0], __ATOMIC_SEQ_CST);
		if (tail_cas(m->h->tail, t, t[0] + 64, t[1] + 1)) {
			f.pos = t[0];
			f.seq = t[1];
			return f;
		}
	}
}

static void release_slot(struct forged *f)
{
	__atomic_store_n(&f->slot->claim_pos, SHMBUS_NOPOS, __ATOMIC_RELEASE);
	__atomic_store_n(&f->slot->owner, 0, __ATOMIC_RELEASE);
}

static void open_topic(const char *topic, int policy, shmbus_sub_t **sub, shmbus_pub_t **pub)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 64 * 1024;
	o.max_message = 1024;
	o.policy = (uint32_t)policy;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);
	CHECK_RC(shmbus_sub_open(sub, bus, topic, NULL, 0), 0);
	CHECK_RC(shmbus_pub_open(pub, bus, topic), 0);
}

static void expect_msg(shmbus_sub_t *sub, const char *text, int timeout_ms)
{
	shmbus_msg_t m;
	int rc = shmbus_recv(sub, &m, timeout_ms);
	if (rc != 0) {
		fprintf(stderr, "recv returned %d (%s), wanted message \"%s\"\n", rc,
			strerror(-rc), text);
		exit(1);
	}
	if (m.len != strlen(text) || memcmp(m.data, text, m.len) != 0) {
		fprintf(stderr, "got \"%.*s\", wanted \"%s\"\n", (int)m.len, (const char *)m.data,
			text);
		exit(1);
	}
}

static uint64_t aborted(const char *topic)
{
	shmbus_topic_stats_t st;
	CHECK_RC(shmbus_topic_stats(bus, topic, &st), 0);
	return st.aborted;
}

/* A hole claimed by (pid, start), which is not a live process, is skipped in time. */
static void dead_claimant(const char *topic, int policy, pid_t pid, uint64_t start,
			  const char *what)
{
	shmbus_sub_t *sub;
	shmbus_pub_t *pub;
	open_topic(topic, policy, &sub, &pub);
	CHECK_RC(shmbus_publish(pub, "before", 6, 0), 0);
	struct mapped m = map_topic(topic);
	uint64_t a0 = aborted(topic);
	struct forged f = forge(&m, pid, start);
	uint64_t t0 = t_now_ns();
	CHECK_RC(shmbus_publish(pub, "after", 5, 0), 0);
	expect_msg(sub, "before", 1000);
	expect_msg(sub, "after", 5000);
	double ms = (double)(t_now_ns() - t0) / 1e6;
	printf("%s (%s): hole at %" PRIu64 " skipped in %.3f ms\n", what,
	       policy == SHMBUS_BLOCK ? "block" : "overwrite", f.pos, ms);
	if (ms > BOUND_MS) {
		fprintf(stderr, "reader stalled %.3f ms behind a dead claimant (bound %d)\n", ms,
			BOUND_MS);
		exit(1);
	}
	shmbus_msg_t x;
	CHECK_RC(shmbus_recv(sub, &x, 20), -EAGAIN);
	CHECK(aborted(topic) == a0 + 1);
	/* The topic still works after the repair. */
	CHECK_RC(shmbus_publish(pub, "later", 5, 0), 0);
	expect_msg(sub, "later", 1000);
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	munmap(m.base, m.size);
	CHECK_RC(shmbus_topic_remove(bus, topic), 0);
}

/* A hole claimed by a live process (ourselves, true start time) is waited for. */
static void live_claimant(const char *topic, int policy)
{
	pid_t self;
	uint64_t start;
	CHECK_RC(shmbus_proc_self(&self, &start), 0);
	shmbus_sub_t *sub;
	shmbus_pub_t *pub;
	open_topic(topic, policy, &sub, &pub);
	CHECK_RC(shmbus_publish(pub, "before", 6, 0), 0);
	struct mapped m = map_topic(topic);
	uint64_t a0 = aborted(topic);
	struct forged f = forge(&m, self, start);
	CHECK_RC(shmbus_publish(pub, "after", 5, 0), 0);
	expect_msg(sub, "before", 1000);
	shmbus_msg_t x;
	CHECK_RC(shmbus_recv(sub, &x, 100), -EAGAIN);
	CHECK_RC(shmbus_recv(sub, &x, 100), -EAGAIN);
	CHECK(aborted(topic) == a0);
	/* The hole is as the claimant left it: not turned into padding. */
	struct shmbus_rec *r = (void *)(m.log + (f.pos & (m.h->capacity - 1)));
	CHECK(__atomic_load_n(&r->commit, __ATOMIC_ACQUIRE) != (f.pos ^ m.h->stamp_key));
	CHECK((__atomic_load_n(&r->len, __ATOMIC_RELAXED) & SHMBUS_REC_PAD) == 0);
	printf("live claimant (%s): reader waits behind hole at %" PRIu64 "\n",
	       policy == SHMBUS_BLOCK ? "block" : "overwrite", f.pos);

	/* The claimant commits its record, as the library does: body, then commit word. */
	static const char body[] = "forged live commit!";
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	r->len = (uint32_t)strlen(body);
	r->type = 0x11;
	r->seq = f.seq;
	r->ts = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	memcpy(r + 1, body, strlen(body));
	__atomic_store_n(&r->commit, f.pos ^ m.h->stamp_key, __ATOMIC_RELEASE);
	release_slot(&f);

	shmbus_msg_t g;
	CHECK_RC(shmbus_recv(sub, &g, 1000), 0);
	CHECK(g.len == strlen(body) && memcmp(g.data, body, g.len) == 0);
	CHECK(g.type == 0x11 && g.seq == f.seq && g.lost == 0);
	expect_msg(sub, "after", 1000);
	CHECK_RC(shmbus_recv(sub, &x, 20), -EAGAIN);
	CHECK(aborted(topic) == a0);
	shmbus_pub_close(pub);
	shmbus_sub_close(sub);
	munmap(m.base, m.size);
	CHECK_RC(shmbus_topic_remove(bus, topic), 0);
}

/* Fork a child that waits for a byte and exits; returns its pid and start time. */
static pid_t short_child(int *go, uint64_t *start)
{
	int p[2];
	CHECK(pipe(p) == 0);
	pid_t pid = t_fork();
	if (pid == 0) {
		close(p[1]);
		char c;
		if (read(p[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[0]);
	*go = p[1];
	CHECK_RC(shmbus_proc_starttime(pid, start), 0);
	return pid;
}

/* Let the child exit and wait until it is a zombie (not reaped). */
static void make_zombie(pid_t pid, int go)
{
	CHECK(write(go, "x", 1) == 1);
	close(go);
	t_wait_zombie(pid, T_WAIT_MS, "the short-lived child");
}

int main(void)
{
	t_private_dir("pid_reuse");
	setvbuf(stdout, NULL, _IOLBF, 0);
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);

	/* shmbus_proc_alive() itself. */
	pid_t self;
	uint64_t start, st2;
	CHECK_RC(shmbus_proc_self(&self, &start), 0);
	CHECK(self == getpid());
	CHECK_RC(shmbus_proc_starttime(getpid(), &st2), 0);
	CHECK(st2 == start && start != 0);
	CHECK(shmbus_proc_alive(getpid(), start) == 1);
	CHECK(shmbus_proc_alive(getpid(), 0) == 1);
	CHECK(shmbus_proc_alive(getpid(), start + 1) == 0);
	CHECK(shmbus_proc_alive(getpid(), start - 1) == 0);
	CHECK(shmbus_proc_alive(0, 0) == 0);
	CHECK(shmbus_proc_alive(-1, 0) == 0);
	uint64_t pst;
	CHECK_RC(shmbus_proc_starttime(getppid(), &pst), 0);
	CHECK(shmbus_proc_alive(getppid(), pst) == 1);
	CHECK(shmbus_proc_alive(getppid(), pst + 12345) == 0);
	int go;
	uint64_t cst;
	pid_t c = short_child(&go, &cst);
	CHECK(shmbus_proc_alive(c, cst) == 1);
	make_zombie(c, go);
	CHECK(shmbus_proc_alive(c, cst) == 0);
	CHECK(shmbus_proc_alive(c, 0) == 0);
	t_reap(c, T_WAIT_MS, "the zombie");
	CHECK(shmbus_proc_alive(c, cst) == 0);
	CHECK(shmbus_proc_starttime(c, &st2) == -ESRCH || st2 != cst);
	printf("shmbus_proc_alive: self, wrong start, zombie, reaped: ok\n");

	for (int policy = SHMBUS_BLOCK; policy <= SHMBUS_OVERWRITE; policy++) {
		dead_claimant("pr.parent", policy, getppid(), pst + 12345,
			      "parent's pid, wrong start time");
		dead_claimant("pr.self", policy, getpid(), start + 1,
			      "own pid, wrong start time");
		c = short_child(&go, &cst);
		make_zombie(c, go);
		dead_claimant("pr.zombie", policy, c, cst, "zombie child, true start time");
		t_reap(c, T_WAIT_MS, "the zombie");
		live_claimant("pr.live", policy);
	}
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
