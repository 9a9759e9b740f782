/* SPDX-License-Identifier: MIT */
/*
 * Acknowledging members (SHMBUS_SUB_ACK, docs/acks.md) killed under traffic: a group of 4
 * member processes on a block topic, one publisher process publishing 64-byte messages,
 * each naming its id, as fast as the members take them; every 50 ms the parent SIGKILLs a
 * random member and starts a new process in its place (it joins the group); after at
 * least MIN_KILLS kills and N (1 M) messages the publisher stops. At the end the group has acked every id
 * exactly once, lost and dead-lettered none, and its redeliveries match the kills:
 * members' observed redeliveries <= the group's redelivered <= what the killed members
 * held (each held at most what it had received and not acked, plus the one being taken),
 * and > 0 if a killed member held anything. ack_wait_ms is 10 s: redeliveries come from
 * the kills, never from timeouts, so no live member's ack is ever -ESTALE.
 *
 * Members receive up to 1, 4, 8 or 16 messages (by member index) and then ack them. Their
 * results are in shared memory that survives their death: per id the successful acks, and
 * per member the id being acked now. A member killed between setting that and clearing it
 * may or may not have acked that id: such an id (at most one per kill) must be acked at
 * most once by the others; every other id exactly once.
 *
 * usage: crash_ack_storm none|PATH-TO-SHMBUSD. none: SHMBUS_NO_DAEMON=1 (the members' own
 * scans hand a dead member's entries back); else a real shmbusd reaps them. The count
 * scales with SHMBUS_STRESS_SCALE (0.2 by default in sanitizer builds).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "tests/lib/daemon.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DEFAULT_SCALE 0.2
#else
#define DEFAULT_SCALE 1.0
#endif
#define DEFAULT_N 1000000ull
#define NMEMB 4
#define PAYLOAD 64u
#define KILL_EVERY_US 50000
#define MIN_KILLS 40 /* the storm goes on until this many kills, N messages at least */
#define MAX_FACTOR 64 /* ... and stops at MAX_FACTOR x N messages, whatever the kills */
#define ACK_WAIT_MS 10000u

static const char *topic = "storm";
static const unsigned batch_of[NMEMB] = { 1, 4, 8, 16 };

/* What a member does, seen by the parent even after the member's death. */
struct member_rec {
	uint64_t intent;  /* id + 1 of the message being acked now; 0: none */
	uint64_t held;	  /* received, not acked (or acked just now, not counted yet) */
	uint64_t recvd;	  /* deliveries */
	uint64_t redeliv; /* deliveries with deliveries > 1 */
	uint64_t acked;	  /* acks that returned 0 */
	uint64_t stale;	  /* acks that returned -ESTALE */
};

struct shared {
	int stop;
	int stop_pub;	    /* the publisher stops at its next message */
	int draining;	    /* members say when they acked (a byte on ackpipe) */
	uint64_t published; /* messages published so far (the publisher's count) */
	int daemon;
	struct member_rec m[NMEMB];
	uint8_t acks[]; /* per id: successful acks */
};

static struct shared *sh;
static uint64_t n_msgs;	 /* published, known once the publisher is done */
static uint64_t n_max;	 /* room for this many ids */
static int ackpipe[2]; /* members -> parent while draining: "acked some" */

static void payload_make(uint8_t *b, uint64_t id)
{
	uint64_t chk = id * 0x9e3779b97f4a7c15ull ^ 0x5eed5eed5eed5eedull;
	memcpy(b, &id, 8);
	memcpy(b + 8, &chk, 8);
	for (unsigned i = 16; i < PAYLOAD; i++)
		b[i] = (uint8_t)(id + i);
}

static uint64_t payload_id(const shmbus_msg_t *m)
{
	uint8_t want[PAYLOAD];
	uint64_t id;
	if (m->len != PAYLOAD) {
		fprintf(stderr, "member: message seq %" PRIu64 " has %u bytes\n", m->seq, m->len);
		_exit(5);
	}
	memcpy(&id, m->data, 8);
	payload_make(want, id);
	if (id >= n_max || memcmp(want, m->data, PAYLOAD) != 0) {
		fprintf(stderr, "member: torn or foreign message seq %" PRIu64 " id %" PRIu64 "\n",
			m->seq, id);
		_exit(5);
	}
	return id;
}

static shmbus_bus_t *child_bus(void)
{
	shmbus_bus_t *b;
	if (shmbus_bus_open(&b, "storm") < 0)
		_exit(2);
	if (sh->daemon && !shmbus_bus_supervised(b)) {
		fprintf(stderr, "child: not registered with the daemon\n");
		_exit(2);
	}
	return b;
}

static void group_opts(shmbus_group_opts_t *go)
{
	shmbus_group_opts_init(go);
	go->ack_wait_ms = ACK_WAIT_MS;
	go->max_deliver = 1000; /* a message held by killed members again and again stays */
}

/* A member process in slot idx: receive a batch, ack it, until the parent says stop and
 * nothing is left. */
static void member(void *arg, int fd)
{
	int idx = (int)(intptr_t)arg;
	struct member_rec *r = &sh->m[idx];
	shmbus_bus_t *bus = child_bus();
	shmbus_sub_t *sub;
	shmbus_group_opts_t go;
	group_opts(&go);
	int rc = shmbus_sub_open_group(&sub, bus, topic, "g", SHMBUS_SUB_ACK, &go);
	if (rc < 0) {
		fprintf(stderr, "member %d: join: %d %s\n", idx, rc, shmbus_errmsg());
		_exit(2);
	}
	if (write(fd, "r", 1) != 1)
		_exit(2);
	unsigned batch = batch_of[idx];
	shmbus_msg_t held[16];
	uint64_t ids[16];
	unsigned n = 0;
	for (;;) {
		shmbus_msg_t m;
		rc = shmbus_recv(sub, &m, n ? 0 : 20);
		if (rc == 0) {
			uint64_t id = payload_id(&m);
			held[n] = m;
			ids[n++] = id;
			__atomic_store_n(&r->held, r->held + 1, __ATOMIC_SEQ_CST);
			__atomic_store_n(&r->recvd, r->recvd + 1, __ATOMIC_RELAXED);
			if (m.deliveries > 1)
				__atomic_store_n(&r->redeliv, r->redeliv + 1, __ATOMIC_RELAXED);
			if (n < batch)
				continue;
		} else if (rc != -EAGAIN && rc != -EINTR) {
			fprintf(stderr, "member %d: recv returned %d\n", idx, rc);
			_exit(4);
		} else if (!n) {
			if (__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE))
				break;
			continue;
		}
		for (unsigned i = 0; i < n; i++) {
			__atomic_store_n(&r->intent, ids[i] + 1, __ATOMIC_SEQ_CST);
			rc = shmbus_ack(sub, &held[i]);
			if (rc == 0) {
				__atomic_fetch_add(&sh->acks[ids[i]], 1, __ATOMIC_SEQ_CST);
				__atomic_store_n(&r->acked, r->acked + 1, __ATOMIC_RELAXED);
			} else if (rc == -ESTALE) {
				__atomic_store_n(&r->stale, r->stale + 1, __ATOMIC_RELAXED);
			} else {
				fprintf(stderr, "member %d: ack returned %d\n", idx, rc);
				_exit(4);
			}
			__atomic_store_n(&r->intent, 0, __ATOMIC_SEQ_CST);
			__atomic_store_n(&r->held, r->held - 1, __ATOMIC_SEQ_CST);
		}
		n = 0;
		/* The parent waits for acks to drain the group: tell it (a full pipe is fine:
		 * it has bytes to read already). */
		if (__atomic_load_n(&sh->draining, __ATOMIC_SEQ_CST)) {
			ssize_t w = write(ackpipe[1], "a", 1);
			(void)w;
		}
	}
	shmbus_sub_close(sub);
	shmbus_bus_close(bus);
}

static void publisher(void *arg, int fd)
{
	(void)arg;
	(void)fd;
	shmbus_bus_t *bus = child_bus();
	shmbus_pub_t *pub;
	if (shmbus_pub_open(&pub, bus, topic) < 0)
		_exit(2);
	shmbus_pub_set_timeout(pub, -1);
	uint8_t b[PAYLOAD];
	uint64_t id = 0;
	for (; id < n_max; id++) {
		if ((id & 255) == 0) {
			__atomic_store_n(&sh->published, id, __ATOMIC_RELEASE);
			if (__atomic_load_n(&sh->stop_pub, __ATOMIC_ACQUIRE))
				break;
		}
		payload_make(b, id);
		int rc = shmbus_publish(pub, b, PAYLOAD, 7);
		if (rc != 0) {
			fprintf(stderr, "publisher: publish %" PRIu64 " returned %d\n", id, rc);
			_exit(3);
		}
	}
	__atomic_store_n(&sh->published, id, __ATOMIC_RELEASE);
	shmbus_pub_close(pub);
	shmbus_bus_close(bus);
}

static pid_t start_member(int idx)
{
	int fd;
	pid_t pid = t_child(member, (void *)(intptr_t)idx, &fd);
	CHECK(t_wait_byte(fd, "a member joining") == 'r');
	close(fd);
	return pid;
}

static shmbus_bus_t *bus;

static shmbus_group_info_t group_info(void)
{
	shmbus_group_info_t gi[2];
	CHECK(shmbus_topic_groups(bus, topic, gi, 2) == 1);
	return gi[0];
}

int main(int argc, char **argv)
{
	CHECK(argc == 2);
	int with_daemon = strcmp(argv[1], "none") != 0;
	double scale = DEFAULT_SCALE;
	const char *sc = getenv("SHMBUS_STRESS_SCALE");
	if (sc && *sc)
		scale = strtod(sc, NULL);
	uint64_t n_min = (uint64_t)((double)DEFAULT_N * scale);
	if (n_min < 20000)
		n_min = 20000;
	n_max = n_min * MAX_FACTOR;
	uint64_t seed = t_seed();
	CHECK(pipe2(ackpipe, O_CLOEXEC) == 0);
	CHECK(fcntl(ackpipe[1], F_SETFL, O_NONBLOCK) == 0);

	size_t shsize = sizeof(struct shared) + n_max;
	sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED);
	sh->daemon = with_daemon;
	uint8_t *ambiguous = calloc(n_max, 1);
	CHECK(ambiguous);

	const char *dir = t_private_dir("ackstorm");
	struct t_daemon d;
	setenv("SHMBUS_NO_DAEMON", "1", 1);
	if (with_daemon) {
		t_daemon_init(&d, argv[1]);
		t_daemon_config(&d, "[bus]\nname = storm\ndir = %s\n", dir);
	}
	CHECK_RC(shmbus_bus_open(&bus, "storm"), 0);
	if (with_daemon) {
		/* The test process itself stays embedded: only the children register. */
		unsetenv("SHMBUS_NO_DAEMON");
		t_daemon_start(&d, bus);
	}
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = 1 << 20;
	o.policy = SHMBUS_BLOCK;
	CHECK_RC(shmbus_topic_create(bus, topic, &o), 0);
	printf("%s, %d kills and %" PRIu64 " messages at least, seed %" PRIu64 "\n",
	       with_daemon ? "with shmbusd" : "without a daemon", MIN_KILLS, n_min, seed);

	pid_t mem[NMEMB];
	for (int i = 0; i < NMEMB; i++)
		mem[i] = start_member(i);
	uint64_t t0 = t_now_ns();
	pid_t pub = t_child(publisher, NULL, NULL);

	/* Kill and restart until the storm had its kills and messages, then stop the
	 * publisher. */
	uint64_t kills = 0, held_at_kills = 0, inflight_bound = 0, nambig = 0;
	uint64_t rs = seed;
	int st;
	while (t_wait(pub, 0, &st) == -ETIMEDOUT) {
		if (kills >= MIN_KILLS && __atomic_load_n(&sh->published, __ATOMIC_ACQUIRE) >= n_min)
			__atomic_store_n(&sh->stop_pub, 1, __ATOMIC_RELEASE);
		/* The storm's rhythm (the issue's: a kill every 50 ms), not a wait for another
		 * process: nothing is ready or done at its end. */
		usleep(KILL_EVERY_US);
		int i = (int)(t_rand(&rs) % NMEMB);
		t_kill(mem[i]);
		struct member_rec *r = &sh->m[i];
		uint64_t h = __atomic_load_n(&r->held, __ATOMIC_SEQ_CST);
		uint64_t in = __atomic_load_n(&r->intent, __ATOMIC_SEQ_CST);
		kills++;
		held_at_kills += h;
		inflight_bound += h + 1; /* + one taken, not counted yet */
		if (in) {
			ambiguous[in - 1] = 1;
			nambig++;
		}
		r->held = 0;
		r->intent = 0;
		mem[i] = start_member(i);
		if (getenv("T_DEBUG") && kills % 20 == 0) {
			shmbus_group_info_t g = group_info();
			shmbus_topic_stats_t ts;
			CHECK_RC(shmbus_topic_stats(bus, topic, &ts), 0);
			printf("  %.0f ms: %" PRIu64 " kills, published %" PRIu64 ", lag %" PRIu64
			       ", pending %u, redelivered %" PRIu64 ", members %u\n",
			       t_ms_since(t0), kills, ts.published, g.lag_msgs, g.pending,
			       g.redelivered, g.members);
		}
		if (t_ms_since(t0) > 2.0 * T_WAIT_MS) {
			fprintf(stderr, "the publisher is not done after %d ms\n", 2 * T_WAIT_MS);
			exit(1);
		}
	}
	CHECK(t_exited(st, 0));
	double pub_ms = t_ms_since(t0);
	n_msgs = __atomic_load_n(&sh->published, __ATOMIC_ACQUIRE);

	/* Drain: every message handed out and acked. The members say when they ack (set
	 * draining before the first look: an ack after that look is told). */
	__atomic_store_n(&sh->draining, 1, __ATOMIC_SEQ_CST);
	uint64_t give_up = t_deadline(T_WAIT_MS);
	shmbus_group_info_t gi;
	for (;;) {
		gi = group_info();
		if (gi.lag_msgs == 0 && gi.pending == 0)
			break;
		struct pollfd p = { .fd = ackpipe[0], .events = POLLIN };
		char drain[256];
		if (poll(&p, 1, t_ms_left(give_up)) <= 0) {
			fprintf(stderr, "not drained after %d ms: lag %" PRIu64 ", pending %u\n",
				T_WAIT_MS, gi.lag_msgs, gi.pending);
			exit(1);
		}
		CHECK(read(ackpipe[0], drain, sizeof(drain)) > 0);
	}
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NMEMB; i++)
		CHECK(t_exited(t_reap(mem[i], T_WAIT_MS, "a member stopping"), 0));
	double all_ms = t_ms_since(t0);

	uint64_t recvd = 0, redeliv = 0, acked = 0, stale = 0;
	for (int i = 0; i < NMEMB; i++) {
		recvd += sh->m[i].recvd;
		redeliv += sh->m[i].redeliv;
		acked += sh->m[i].acked;
		stale += sh->m[i].stale;
	}
	gi = group_info();
	printf("published in %.0f ms, all acked in %.0f ms (%.2f M msg/s); %" PRIu64
	       " kills holding %" PRIu64 " (bound on in flight %" PRIu64 "), %" PRIu64
	       " kills mid-ack\n",
	       pub_ms, all_ms, (double)n_msgs / all_ms / 1000.0, kills, held_at_kills,
	       inflight_bound, nambig);
	printf("members: %" PRIu64 " deliveries, %" PRIu64 " redeliveries seen, %" PRIu64
	       " acks, %" PRIu64 " stale; group: redelivered %" PRIu64 ", pending %u, lost %" PRIu64
	       ", abandoned %" PRIu64 ", dead-lettered %" PRIu64 "\n",
	       recvd, redeliv, acked, stale, gi.redelivered, gi.pending, gi.lost, gi.abandoned,
	       gi.dead_lettered);

	uint64_t never = 0, twice = 0, ambig_acked_by_victim = 0;
	for (uint64_t id = 0; id < n_msgs; id++) {
		uint8_t a = sh->acks[id];
		if (ambiguous[id] && a == 0) {
			ambig_acked_by_victim++;
			continue;
		}
		if (a == 1)
			continue;
		if (a == 0 && never++ < 10)
			fprintf(stderr, "id %" PRIu64 " never acked\n", id);
		if (a > 1 && twice++ < 10)
			fprintf(stderr, "id %" PRIu64 " acked %u times\n", id, a);
	}
	printf("%" PRIu64 " ids acked by a member killed just after\n", ambig_acked_by_victim);
	int bad = 0;
	if (never || twice) {
		fprintf(stderr, "%" PRIu64 " ids never acked, %" PRIu64 " acked more than once\n",
			never, twice);
		bad = 1;
	}
	if (stale) {
		fprintf(stderr, "%" PRIu64 " acks of live members were stale (no timeouts here)\n",
			stale);
		bad = 1;
	}
	if (gi.pending || gi.lost || gi.dead_lettered || gi.abandoned || gi.lag_msgs) {
		fprintf(stderr, "the group is not clean at the end\n");
		bad = 1;
	}
	/* The per-id counts are the truth; a member's own total may miss its last ack (it
	 * was killed between counting the id and counting itself: at most one per kill). */
	uint64_t per_id = 0;
	for (uint64_t id = 0; id < n_msgs; id++)
		per_id += sh->acks[id];
	if (per_id + ambig_acked_by_victim != n_msgs || acked > per_id ||
	    per_id - acked > nambig) {
		fprintf(stderr, "%" PRIu64 " acks by id, %" PRIu64 " by the members' counts (+%" PRIu64
			" by killed members, %" PRIu64 " kills mid-ack) for %" PRIu64 " messages\n",
			per_id, acked, ambig_acked_by_victim, nambig, n_msgs);
		bad = 1;
	}
	if (redeliv > gi.redelivered || gi.redelivered > inflight_bound) {
		fprintf(stderr,
			"redeliveries not explained by the kills: seen %" PRIu64 ", group %" PRIu64
			", at most %" PRIu64 " were in killed members\n",
			redeliv, gi.redelivered, inflight_bound);
		bad = 1;
	}
	if (held_at_kills > 0 && gi.redelivered == 0) {
		fprintf(stderr, "killed members held %" PRIu64 " messages, none redelivered\n",
			held_at_kills);
		bad = 1;
	}
	if (kills < 5) {
		fprintf(stderr, "only %" PRIu64 " kills: the storm was too short\n", kills);
		bad = 1;
	}
	if (with_daemon)
		CHECK(t_daemon_alive(&d));
	shmbus_bus_close(bus);
	free(ambiguous);
	return bad;
}
