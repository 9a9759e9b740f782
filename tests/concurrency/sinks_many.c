/* SPDX-License-Identifier: MIT */
/*
 * Sinks under load (include/shmbus.h, "sinks: one reader over many topics"): 64 sinks in
 * one epoll loop (one thread, one epoll over their 64 fds) read 200 topics that 4 publisher
 * processes fill at random, while topics are created and removed.
 *
 * Topics are "t.F.N", or "t.F.N.x" when N % 10 == 9 (F in a..d, N in 0..49): block topics
 * of 64 KiB. 160 exist before the sinks open ("static"); 40 are created mid-run ("late"),
 * spread over the run by the publishers' progress. A topic lives through 1 to 3
 * incarnations (removed and made again under the same name), the last one kept or
 * removed. Each incarnation has a quota of messages, drawn at random (0 at times), that
 * the publishers claim from one shared word (incarnation, quota, claimed) and publish,
 * alone or in batches: the test knows exactly what each incarnation holds. A late
 * incarnation's quota fits in its ring, so a sink that joins it late still finds its first
 * message there; a static one gets up to three rings' worth (publishers wait for the
 * slowest reader).
 *
 * Sinks: 48 fan-out sinks with 1-3 patterns each (">" alone, "t.>", "t.a.>", "t.a.*",
 * "t.*.*", "t.*.7", "t.*.*.x", "*.b.>", exact names, names that exist only later,
 * overlapping patterns, a pattern that matches nothing; the rest drawn at random), and 16
 * sinks in 4 groups whose members have different patterns: two plain groups, two
 * acknowledging ones (acked with shmbus_sink_ack()). The loop treats each fd as an
 * edge-triggered socket: a readable sink is received from with timeout 0 until -EAGAIN,
 * at most 32 messages at a time so that no sink starves the others.
 *
 * Asserted:
 *  - every message is whole (its payload names topic, incarnation, claim and publisher;
 *    its length and padding follow from them), msg.topic names its topic, and the sink's
 *    patterns match that topic (by a matcher of this file, not the library's);
 *  - a fan-out sink gets every message of each incarnation of each topic it matches
 *    exactly once and in order: seq 0, 1, 2, ... (a late topic's first message too), each
 *    claim once, each publisher's claims increasing;
 *  - a group gets each message of a topic that one of its members matches exactly once,
 *    across its members, each member in increasing seq and claim order; acknowledging
 *    members get each on its first delivery, and ack it;
 *  - removal: an incarnation is removed only once its whole quota was published, every
 *    sink and group that reads it has all of it, and every matching sink lists it
 *    (shmbus_sink_topics()). Then every one of them stops listing it, as its own fd's
 *    events are handled, and gets nothing more of it; the name made again is a new topic,
 *    read from its first message, never mixed with the old one. A sink never lists a
 *    topic it does not match, nor one that does not exist and that it has left;
 *  - shmbus_sink_add() returns how many existing topics the pattern matches;
 *  - at the end each sink lists exactly the existing topics it matches, each such topic
 *    has one reader per matching sink and holds exactly its quota, the groups have nothing
 *    pending, and no sink receives anything more.
 * No progress (no message, no join or leave) for T_WAIT_MS fails the test, saying what is
 * awaited, as does a publisher that ends early.
 *
 * SHMBUS_STRESS_SCALE scales the quotas (default 1; 0.5 under ASan, 0.15 under TSan, which
 * keep a run near 10 and 25 s on an idle 2-CPU machine);
 * SHMBUS_TEST_SEED replays a run.
 */
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "tests/lib/proc.h"

#if defined(__SANITIZE_THREAD__)
#define DEFAULT_SCALE 0.15
#elif defined(__SANITIZE_ADDRESS__)
#define DEFAULT_SCALE 0.5
#else
#define DEFAULT_SCALE 1.0
#endif

#define NT 200		 /* topics */
#define NSINK 64	 /* sinks */
#define NFAN 48		 /* of which fan-out */
#define NGRP 4		 /* groups of the other 16 */
#define NPUB 4		 /* publisher processes */
#define MAXINC 3	 /* incarnations of a topic at most */
#define MAXPATS 4	 /* patterns of a sink at most */
#define CAP (64u << 10)	 /* each topic's ring */
#define LATE_Q 500u	 /* a late incarnation's quota at most (scale 1): 500 x 96 B < CAP */
#define STATIC_Q 1500u	 /* a static one's */
#define BUDGET 32	 /* messages from one sink before the others get a turn */
#define BATCH_MAX 8	 /* messages a publisher claims at once at most */
#define PAD_MAX 40	 /* padding after the 24-byte body: records of 96 bytes at most */
#define NONE UINT32_MAX	 /* no incarnation seen yet */
#define TAG_PUB 0x10000u /* epoll data of a publisher's pidfd: TAG_PUB + its index */

/* ---- what publishers and the test share --------------------------------------------------- */

/* A topic's quota word: incarnation << 48 | quota << 32 | claimed. Publishers claim with a
 * CAS while claimed < quota; the test writes a new word only once the last one is used up
 * (and its topic drained and removed), so a claim always names the incarnation it is for. */
static inline uint64_t qword(uint32_t inc, uint32_t quota, uint32_t used)
{
	return (uint64_t)inc << 48 | (uint64_t)quota << 32 | used;
}
#define QW_INC(w) ((uint32_t)((w) >> 48))
#define QW_QUOTA(w) ((uint32_t)((w) >> 32) & 0xffffu)
#define QW_USED(w) ((uint32_t)(w))

struct shared {
	_Atomic uint64_t quota[NT];
	_Atomic uint32_t work; /* bumped (and woken) when a quota is set, and at the end */
	_Atomic uint32_t done;
	_Atomic uint64_t published[NPUB];
};

static struct shared *sh;

static void futex_wait(_Atomic uint32_t *w, uint32_t v)
{
	/* A shared futex: the word is in memory the processes share (MAP_SHARED). */
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void work_changed(void)
{
	atomic_fetch_add(&sh->work, 1);
	syscall(SYS_futex, (uint32_t *)&sh->work, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- topics and messages ------------------------------------------------------------------ */

static void topic_name(unsigned i, char *out, size_t n)
{
	unsigned f = i % 4, num = i / 4;
	snprintf(out, n, num % 10 == 9 ? "t.%c.%u.x" : "t.%c.%u", 'a' + f, num);
}

/* The index of a name of topic_name(), or -1. */
static int topic_index(const char *s)
{
	if (s[0] != 't' || s[1] != '.' || s[2] < 'a' || s[2] > 'd' || s[3] != '.')
		return -1;
	unsigned f = (unsigned)(s[2] - 'a'), num = 0;
	const char *p = s + 4;
	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9')
		num = num * 10 + (unsigned)(*p++ - '0');
	if (num >= NT / 4 || (num % 10 == 9 ? strcmp(p, ".x") : *p != 0))
		return -1;
	char back[32];
	topic_name(num * 4 + f, back, sizeof(back));
	return strcmp(back, s) ? -1 : (int)(num * 4 + f);
}

/* The payload: this body, then padding whose length and bytes follow from it. */
struct body {
	uint32_t topic, inc, claim, pub;
	uint64_t hash; /* of the four words above */
};

static size_t pad_len(const struct body *b)
{
	return (b->claim * 7u + b->topic * 3u + b->inc) % (PAD_MAX + 1);
}

static uint8_t pad_byte(const struct body *b, size_t j)
{
	return (uint8_t)(b->claim + 3u * j + b->topic * 5u + b->inc * 11u);
}

static uint32_t type_of(const struct body *b)
{
	return b->topic << 20 | b->inc << 16 | b->pub;
}

/* Write a message to buf: its length, and its type word in *type. */
static size_t msg_fill(void *buf, uint32_t topic, uint32_t inc, uint32_t claim, uint32_t pub,
		       uint32_t *type)
{
	struct body b = { topic, inc, claim, pub, 0 };
	b.hash = t_fnv(&b, 16);
	memcpy(buf, &b, sizeof(b));
	size_t n = pad_len(&b);
	for (size_t j = 0; j < n; j++)
		((uint8_t *)buf)[sizeof(b) + j] = pad_byte(&b, j);
	*type = type_of(&b);
	return sizeof(b) + n;
}

/* ---- publishers --------------------------------------------------------------------------- */

/*
 * Claim a run of 1..BATCH_MAX messages of a topic with quota left (the last topic again 3
 * times in 4, else one from a random place) and publish them; sleep on the work word when
 * no quota is left anywhere; end when the test says so.
 */
static void publisher(void *arg, int fd)
{
	uint32_t me = (uint32_t)(uintptr_t)arg;
	(void)fd;
	uint64_t rng = t_seed() * 1000003u + me + 1;
	shmbus_bus_t *bus;
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	static shmbus_pub_t *pub[NT];
	static uint32_t pub_inc[NT];
	static uint8_t buf[BATCH_MAX][sizeof(struct body) + PAD_MAX];
	int cur = -1;
	for (;;) {
		uint32_t work = atomic_load(&sh->work);
		int t = -1;
		uint32_t inc = 0, claim = 0, n = 0;
		unsigned start = cur >= 0 && t_rand(&rng) % 4 ? (unsigned)cur :
								(unsigned)(t_rand(&rng) % NT);
		for (unsigned j = 0; j < NT && t < 0; j++) {
			unsigned i = (start + j) % NT;
			uint64_t w = atomic_load(&sh->quota[i]);
			while (QW_USED(w) < QW_QUOTA(w)) {
				uint32_t want = 1;
				if (t_rand(&rng) % 4 == 0)
					want = 1 + (uint32_t)(t_rand(&rng) % BATCH_MAX);
				if (want > QW_QUOTA(w) - QW_USED(w))
					want = QW_QUOTA(w) - QW_USED(w);
				if (atomic_compare_exchange_weak(&sh->quota[i], &w, w + want)) {
					t = (int)i;
					inc = QW_INC(w);
					claim = QW_USED(w);
					n = want;
					break;
				}
			}
		}
		if (t < 0) {
			cur = -1;
			if (atomic_load(&sh->done))
				break;
			futex_wait(&sh->work, work);
			continue;
		}
		cur = t;
		if (!pub[t] || pub_inc[t] != inc) {
			/* The incarnation's file exists until all of its quota was received. */
			char name[32];
			topic_name((unsigned)t, name, sizeof(name));
			shmbus_pub_close(pub[t]);
			CHECK_RC(shmbus_pub_open(&pub[t], bus, name), 0);
			pub_inc[t] = inc;
		}
		shmbus_iov_t iov[BATCH_MAX];
		for (uint32_t k = 0; k < n; k++) {
			uint32_t type;
			size_t len = msg_fill(buf[k], (uint32_t)t, inc, claim + k, me, &type);
			iov[k] = (shmbus_iov_t){ buf[k], len, type };
		}
		if (n == 1)
			CHECK_RC(shmbus_publish(pub[t], iov[0].data, iov[0].len, iov[0].type), 0);
		else
			CHECK_RC(shmbus_publish_batch(pub[t], iov, n), (int)n);
		atomic_fetch_add(&sh->published[me], n);
	}
	for (unsigned i = 0; i < NT; i++)
		shmbus_pub_close(pub[i]);
	shmbus_bus_close(bus);
}

/* ---- patterns (this file's own matcher) ----------------------------------------------------- */

/* Does pattern p (tokens; "*" one token, a last ">" one or more) match topic t? */
static int match(const char *p, const char *t)
{
	for (;;) {
		size_t pl = strcspn(p, "."), tl = strcspn(t, ".");
		if (pl == 1 && *p == '>' && !p[1])
			return 1; /* t has at least this token */
		if (!(pl == 1 && *p == '*') && (pl != tl || memcmp(p, t, pl)))
			return 0;
		p += pl;
		t += tl;
		if (!*p || !*t)
			return !*p && !*t;
		p++;
		t++;
	}
}

/* ---- the test's state ---------------------------------------------------------------------- */

enum { T_ABSENT, T_LIVE, T_LEAVING, T_KEPT, T_GONE };
static const char *const state_name[] = { "absent", "live", "leaving", "kept", "gone" };

struct topic {
	char name[32];
	int late;
	int ninc;	 /* incarnations */
	int remove_last; /* the last one is removed too */
	uint32_t quota[MAXINC];
	int inc; /* the current incarnation */
	int state;
	int listing_checked; /* live: complete, and listings looked at once */
	int pending;	     /* live: fan-out sinks and groups short of the quota */
	int unconfirmed;     /* sinks not seen listing it yet (live) / still listing it (leaving) */
	int nfan, ngrp, nmatch;
};

/* What one sink has had of one topic (the current incarnation). */
struct seen {
	uint32_t inc, count;
	uint64_t next_seq;
	int64_t last_claim[NPUB];
};

struct sink {
	shmbus_sink_t *k;
	int grp; /* -1: fan-out */
	const char *pats[MAXPATS];
	int npats;
	uint8_t match[NT];
	uint8_t confirm[NT]; /* 1: must list it (joined), 2: must not (left) */
	int nconfirm;
	int ready;
	uint64_t received;
	struct seen seen[NT];
};

struct group {
	const char *name;
	int ack;
	int members;
	const char *pats[6][MAXPATS];
	uint8_t cover[NT];
	struct {
		uint32_t inc, count;
	} seen[NT];
};

static struct group groups[NGRP] = {
	{ .name = "g1",
	  .members = 4,
	  .pats = { { "t.>" }, { "t.>" }, { "t.a.>", "t.b.>" }, { "t.*.*" } } },
	{ .name = "g2",
	  .members = 4,
	  .pats = { { "t.c.>" }, { "t.c.>" }, { "t.*.*.x" }, { "t.c.*" } } },
	{ .name = "g3",
	  .ack = 1,
	  .members = 6,
	  .pats = { { "t.>" }, { "t.>" }, { "t.>" }, { "t.b.>" }, { "t.*.3" }, { "t.d.*" } } },
	{ .name = "g4", .ack = 1, .members = 2, .pats = { { "*.a.>" }, { "t.a.*", "t.a.9.x" } } },
};

/* Fan-out sinks with fixed patterns; the others draw theirs. "t.c.0" and "t.d.1" are late
 * topics (index % 5 == 2), "u.>" matches nothing. */
static const char *const fixed_fan[][MAXPATS] = {
	{ ">" },
	{ "t.>" },
	{ "t.a.>" },
	{ "t.b.>" },
	{ "t.c.>" },
	{ "t.d.>" },
	{ "t.a.*" },
	{ "t.b.*", "t.c.*" },
	{ "t.*.*" },
	{ "t.*.*.x" },
	{ "t.*.7" },
	{ "t.*.9.x", "t.*.19.x" },
	{ "*.b.>" },
	{ "t.c.12", "t.d.3" },
	{ "t.c.0", "t.d.1" },
	{ "t.a.>", "t.a.*", "t.a.1" },
	{ "t.a.1", "t.>" },
	{ "u.>" },
	{ "u.>", "t.c.0" },
	{ "*.*.*.x" },
};
#define NFIXED (int)(sizeof(fixed_fan) / sizeof(fixed_fan[0]))

static shmbus_bus_t *bus;
static struct topic T[NT];
static struct sink S[NSINK];
static uint32_t qbytes;		    /* bytes of a claim bitmap */
static uint8_t *fan_bits;	    /* [sink][topic][qbytes]: claims a fan-out sink had */
static uint8_t *grp_bits;	    /* [group][topic][qbytes] */
static char pat_pool[NFAN * 3][32]; /* patterns drawn for the other fan-out sinks */
static uint64_t deliveries, removals, creations;
static uint64_t progress_ns; /* the last time something happened */

static uint8_t *bits_of(uint8_t *base, int who, int t)
{
	return base + ((size_t)who * NT + (size_t)t) * qbytes;
}

static void sink_desc(const struct sink *s, char *out, size_t n)
{
	size_t o = (size_t)snprintf(out, n, "sink %d (%s%s", (int)(s - S),
				    s->grp < 0 ? "fan-out" : "group ",
				    s->grp < 0 ? "" : groups[s->grp].name);
	for (int i = 0; i < s->npats && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s'%s'", i ? ", " : "; ", s->pats[i]);
	if (o < n)
		snprintf(out + o, n - o, ")");
}

#define DIE(s, ...)                                                     \
	do {                                                            \
		char d_[256];                                           \
		sink_desc((s), d_, sizeof(d_));                         \
		fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, d_); \
		fprintf(stderr, __VA_ARGS__);                           \
		fputc('\n', stderr);                                    \
		exit(1);                                                \
	} while (0)

/* ---- receiving ------------------------------------------------------------------------------ */

static void take(struct sink *s, shmbus_msg_t *m)
{
	struct body b;
	if (m->len < sizeof(b))
		DIE(s, "a message of %u bytes from '%s'", m->len, m->topic);
	memcpy(&b, m->data, sizeof(b));
	if (b.topic >= NT || b.pub >= NPUB || b.inc >= MAXINC || t_fnv(&b, 16) != b.hash)
		DIE(s, "a damaged body from '%s' (topic %u pub %u inc %u)", m->topic, b.topic,
		    b.pub, b.inc);
	struct topic *t = &T[b.topic];
	if (strcmp(m->topic, t->name))
		DIE(s, "msg.topic '%s' for a message of '%s'", m->topic, t->name);
	if (m->len != sizeof(b) + pad_len(&b) || m->type != type_of(&b))
		DIE(s, "'%s' claim %u: length %u or type %#x wrong", t->name, b.claim, m->len,
		    m->type);
	for (size_t j = 0; j < pad_len(&b); j++)
		if (((const uint8_t *)m->data)[sizeof(b) + j] != pad_byte(&b, j))
			DIE(s, "'%s' claim %u: padding byte %zu wrong", t->name, b.claim, j);
	if (!s->match[b.topic])
		DIE(s, "a message of '%s', which its patterns do not match", t->name);
	if (t->state != T_LIVE || b.inc != (uint32_t)t->inc)
		DIE(s, "a message of '%s' incarnation %u, which is %s at incarnation %d", t->name,
		    b.inc, state_name[t->state], t->inc);
	uint32_t quota = t->quota[b.inc];
	if (b.claim >= quota)
		DIE(s, "'%s' claim %u of a quota of %u", t->name, b.claim, quota);
	if (m->deliveries != 1 || m->lost)
		DIE(s, "'%s' seq %" PRIu64 ": deliveries %u lost %" PRIu64, t->name, m->seq,
		    m->deliveries, m->lost);

	struct seen *sn = &s->seen[b.topic];
	if (sn->inc != b.inc) {
		if (sn->inc != NONE && sn->inc > b.inc)
			DIE(s, "'%s': incarnation %u after %u", t->name, b.inc, sn->inc);
		memset(sn, 0, sizeof(*sn));
		sn->inc = b.inc;
		for (int p = 0; p < NPUB; p++)
			sn->last_claim[p] = -1;
		if (s->grp < 0)
			memset(bits_of(fan_bits, (int)(s - S), (int)b.topic), 0, qbytes);
	}
	/* Fan-out: every message from the first, in ring order. A member: increasing. */
	if (s->grp < 0 ? m->seq != sn->next_seq : m->seq < sn->next_seq)
		DIE(s, "'%s': seq %" PRIu64 " after %" PRIu64 " (%u received)", t->name, m->seq,
		    sn->next_seq, sn->count);
	sn->next_seq = m->seq + 1;
	if ((int64_t)b.claim <= sn->last_claim[b.pub])
		DIE(s, "'%s': publisher %u's claim %u after its %" PRId64, t->name, b.pub, b.claim,
		    sn->last_claim[b.pub]);
	sn->last_claim[b.pub] = b.claim;
	sn->count++;

	/* Each claim once: in this sink (fan-out), in the group (a member). */
	uint8_t *bits;
	uint32_t got;
	if (s->grp < 0) {
		bits = bits_of(fan_bits, (int)(s - S), (int)b.topic);
		got = sn->count;
	} else {
		struct group *g = &groups[s->grp];
		if (g->seen[b.topic].inc != b.inc) {
			g->seen[b.topic].inc = b.inc;
			g->seen[b.topic].count = 0;
			memset(bits_of(grp_bits, s->grp, (int)b.topic), 0, qbytes);
		}
		bits = bits_of(grp_bits, s->grp, (int)b.topic);
		got = ++g->seen[b.topic].count;
	}
	if (bits[b.claim / 8] & (1u << (b.claim % 8)))
		DIE(s, "'%s' claim %u (seq %" PRIu64 ") twice%s", t->name, b.claim, m->seq,
		    s->grp < 0 ? "" : " in the group");
	bits[b.claim / 8] |= (uint8_t)(1u << (b.claim % 8));
	if (got == quota)
		t->pending--;

	if (s->confirm[b.topic] == 1) {
		s->confirm[b.topic] = 0;
		s->nconfirm--;
		t->unconfirmed--;
	}
	if (s->grp >= 0 && groups[s->grp].ack) {
		int rc = shmbus_sink_ack(s->k, m);
		if (rc)
			DIE(s, "ack of '%s' seq %" PRIu64 ": %d", t->name, m->seq, rc);
	}
	s->received++;
	deliveries++;
}

/* Look at what the sink lists: resolve its confirmations; it never lists a topic it does
 * not match, nor one that does not exist or that it has left for good. Returns how many it
 * lists. */
static int check_listing(struct sink *s)
{
	static char names[NT + 8][SHMBUS_TOPIC_NAME_MAX + 1];
	int n = shmbus_sink_topics(s->k, names, NT + 8);
	if (n < 0 || n > NT)
		DIE(s, "shmbus_sink_topics: %d", n);
	uint8_t listed[NT] = { 0 };
	for (int i = 0; i < n; i++) {
		int x = topic_index(names[i]);
		if (x < 0 || !s->match[x] || listed[x])
			DIE(s, "lists '%s' (%s)", names[i],
			    x < 0     ? "not a topic of this test" :
			    listed[x] ? "twice" :
					"its patterns do not match it");
		if (T[x].state == T_ABSENT || T[x].state == T_GONE)
			DIE(s, "lists '%s', which is %s", names[i], state_name[T[x].state]);
		listed[x] = 1;
	}
	for (int x = 0; x < NT && s->nconfirm; x++) {
		if ((s->confirm[x] == 1 && listed[x]) || (s->confirm[x] == 2 && !listed[x])) {
			s->confirm[x] = 0;
			s->nconfirm--;
			T[x].unconfirmed--;
			progress_ns = t_now_ns();
		}
	}
	return n;
}

/* ---- topics' lives ----------------------------------------------------------------------- */

static void topic_create(int x)
{
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = CAP;
	o.max_readers = 128;
	CHECK_RC(shmbus_topic_create(bus, T[x].name, &o), 0);
	creations++;
}

/* Incarnation inc of topic x is there: the sinks that match it must join it, and its quota
 * goes to the publishers. */
static void go_live(int x, int inc)
{
	struct topic *t = &T[x];
	t->inc = inc;
	t->state = T_LIVE;
	t->listing_checked = 0;
	t->pending = t->quota[inc] ? t->nfan + t->ngrp : 0;
	t->unconfirmed = 0;
	for (int s = 0; s < NSINK; s++)
		if (S[s].match[x]) {
			S[s].confirm[x] = 1;
			S[s].nconfirm++;
			t->unconfirmed++;
		}
	/* Release: the file is made before a publisher may claim (and open) it. */
	atomic_store(&sh->quota[x], qword((uint32_t)inc, t->quota[inc], 0));
	progress_ns = t_now_ns();
}

static void advance(int x)
{
	struct topic *t = &T[x];
	if (t->state == T_LIVE && !t->pending && !t->listing_checked) {
		/* Complete: those that matched it and got nothing of it (a quota of 0, a
		 * member whose group-mates took all) must list it; their next events tell if
		 * not yet. */
		t->listing_checked = 1;
		for (int s = 0; s < NSINK; s++)
			if (S[s].confirm[x] == 1)
				check_listing(&S[s]);
	}
	if (t->state == T_LIVE && !t->pending && !t->unconfirmed) {
		shmbus_topic_stats_t st;
		CHECK_RC(shmbus_topic_stats(bus, t->name, &st), 0);
		if (st.next_seq != t->quota[t->inc] ||
		    QW_USED(atomic_load(&sh->quota[x])) != t->quota[t->inc]) {
			fprintf(stderr, "'%s' incarnation %d: %" PRIu64 " messages, quota %u\n",
				t->name, t->inc, st.next_seq, t->quota[t->inc]);
			exit(1);
		}
		if (t->inc + 1 < t->ninc || t->remove_last) {
			CHECK_RC(shmbus_topic_remove(bus, t->name), 0);
			removals++;
			t->state = T_LEAVING;
			for (int s = 0; s < NSINK; s++)
				if (S[s].match[x]) {
					S[s].confirm[x] = 2;
					S[s].nconfirm++;
					t->unconfirmed++;
				}
		} else {
			t->state = T_KEPT;
		}
		progress_ns = t_now_ns();
	}
	if (t->state == T_LEAVING && !t->unconfirmed) {
		if (t->inc + 1 < t->ninc) {
			topic_create(x);
			go_live(x, t->inc + 1);
			work_changed();
		} else {
			t->state = T_GONE;
		}
		progress_ns = t_now_ns();
	}
}

/* Late topics are made as the static ones' quotas are claimed, spread over the run. */
static int late_order[NT], nlate, next_late;
static uint64_t static_total;

static void make_late(void)
{
	if (next_late >= nlate)
		return;
	uint64_t claimed = 0;
	for (int x = 0; x < NT; x++)
		if (!T[x].late)
			claimed += T[x].inc > 0 ? T[x].quota[0] :
						  QW_USED(atomic_load(&sh->quota[x]));
	int made = 0;
	while (next_late < nlate &&
	       claimed >= static_total * (uint64_t)(next_late + 1) / (uint64_t)(nlate + 1)) {
		int x = late_order[next_late++];
		topic_create(x);
		go_live(x, 0);
		made = 1;
	}
	if (made)
		work_changed();
}

static int all_final(void)
{
	if (next_late < nlate)
		return 0;
	for (int x = 0; x < NT; x++)
		if (T[x].state != T_KEPT && T[x].state != T_GONE)
			return 0;
	return 1;
}

/* Nothing happened for T_WAIT_MS: say what is awaited. */
static void stalled(void)
{
	fprintf(stderr, "no progress for %d ms (%" PRIu64 " deliveries so far); awaited:\n",
		T_WAIT_MS, deliveries);
	int lines = 0;
	for (int x = 0; x < NT && lines < 40; x++) {
		struct topic *t = &T[x];
		if (t->state != T_LIVE && t->state != T_LEAVING)
			continue;
		fprintf(stderr,
			"  '%s' %s, incarnation %d, quota %u (claimed %u): %d short, "
			"%d unconfirmed\n",
			t->name, state_name[t->state], t->inc, t->quota[t->inc],
			QW_USED(atomic_load(&sh->quota[x])), t->pending, t->unconfirmed);
		lines++;
		for (int s = 0; s < NSINK && lines < 40; s++) {
			struct sink *k = &S[s];
			if (!k->match[x])
				continue;
			uint32_t got = k->grp < 0 ?
					       (k->seen[x].inc == (uint32_t)t->inc ?
							k->seen[x].count :
							0) :
					       (groups[k->grp].seen[x].inc == (uint32_t)t->inc ?
							groups[k->grp].seen[x].count :
							0);
			if ((t->state == T_LIVE && got < t->quota[t->inc]) || k->confirm[x]) {
				char d[256];
				sink_desc(k, d, sizeof(d));
				fprintf(stderr, "    %s: has %u%s%s\n", d, got,
					k->grp < 0 ? "" : " (its group)",
					k->confirm[x] == 1 ? ", not seen listing it" :
					k->confirm[x] == 2 ? ", still lists it" :
							     "");
				lines++;
			}
		}
	}
	exit(1);
}

/* ---- setting up ------------------------------------------------------------------------------ */

static void draw_patterns(uint64_t *rng, int s)
{
	struct sink *k = &S[s];
	k->npats = 1 + (int)(t_rand(rng) % 3);
	for (int i = 0; i < k->npats; i++) {
		char *p = pat_pool[(s - NFIXED) * 3 + i];
		unsigned num = (unsigned)(t_rand(rng) % (NT / 4));
		char f = (char)('a' + t_rand(rng) % 4);
		switch (t_rand(rng) % 7) {
		case 0:
			snprintf(p, 32, "t.%c.>", f);
			break;
		case 1:
			snprintf(p, 32, "t.%c.*", f);
			break;
		case 2:
			snprintf(p, 32, "t.*.%u", num);
			break;
		case 3:
			topic_name(num * 4 + (unsigned)(f - 'a'), p, 32);
			break;
		case 4:
			snprintf(p, 32, "*.%c.*", f);
			break;
		case 5:
			snprintf(p, 32, "t.*.%u.x", num / 10 * 10 + 9);
			break;
		default:
			snprintf(p, 32, "t.%c.*.x", f);
		}
		/* No pattern twice in one sink (add() would say -EEXIST). */
		for (int j = 0; j < i; j++)
			if (!strcmp(k->pats[j], p)) {
				k->npats = i;
				return;
			}
		k->pats[i] = p;
	}
}

static void sink_open(int s, uint64_t *rng)
{
	struct sink *k = &S[s];
	if (s < NFIXED) {
		k->grp = -1;
		for (k->npats = 0; k->npats < MAXPATS && fixed_fan[s][k->npats]; k->npats++)
			k->pats[k->npats] = fixed_fan[s][k->npats];
	} else if (s < NFAN) {
		k->grp = -1;
		draw_patterns(rng, s);
	} else {
		int m = s - NFAN, g = 0;
		while (m >= groups[g].members)
			m -= groups[g++].members;
		k->grp = g;
		for (k->npats = 0; k->npats < MAXPATS && groups[g].pats[m][k->npats]; k->npats++)
			k->pats[k->npats] = groups[g].pats[m][k->npats];
	}
	if (k->grp < 0) {
		CHECK_RC(shmbus_sink_open(&k->k, bus, NULL, 0), 0);
	} else if (!groups[k->grp].ack) {
		CHECK_RC(shmbus_sink_open(&k->k, bus, groups[k->grp].name, 0), 0);
	} else {
		shmbus_group_opts_t go;
		shmbus_group_opts_init(&go);
		go.ack_wait_ms = 600000; /* acked at once: never redelivered */
		go.dead_letter = "";
		CHECK_RC(shmbus_sink_open_group(&k->k, bus, groups[k->grp].name, SHMBUS_SUB_ACK,
						&go),
			 0);
	}
	for (int x = 0; x < NT; x++) {
		k->seen[x].inc = NONE;
		for (int i = 0; i < k->npats; i++)
			k->match[x] |= (uint8_t)match(k->pats[i], T[x].name);
	}
	for (int i = 0; i < k->npats; i++) {
		int want = 0;
		for (int x = 0; x < NT; x++)
			want += !T[x].late && match(k->pats[i], T[x].name);
		int rc = shmbus_sink_add(k->k, k->pats[i]);
		if (rc != want)
			DIE(k, "add('%s') = %d (%s), %d topics match", k->pats[i], rc,
			    shmbus_errmsg(), want);
	}
}

int main(void)
{
	t_private_dir("sinks-many");
	double scale = DEFAULT_SCALE;
	const char *sc = getenv("SHMBUS_STRESS_SCALE");
	if (sc && *sc)
		scale = strtod(sc, NULL);
	uint32_t late_q = (uint32_t)(LATE_Q * scale), static_q = (uint32_t)(STATIC_Q * scale);
	if (late_q < 8)
		late_q = 8;
	if (static_q < 8)
		static_q = 8;
	if (late_q > LATE_Q)
		late_q = LATE_Q;
	uint64_t seed = t_seed(), rng = seed;
	uint64_t tsetup = t_now_ns();
	printf("sinks_many: %d sinks (%d fan-out, %d in %d groups), %d topics, %d publishers; "
	       "quotas up to %u (static) and %u (late), seed %" PRIu64 "\n",
	       NSINK, NFAN, NSINK - NFAN, NGRP, NT, NPUB, static_q, late_q, seed);
	qbytes = (static_q + 7) / 8;
	fan_bits = calloc((size_t)NSINK * NT, qbytes);
	grp_bits = calloc((size_t)NGRP * NT, qbytes);
	CHECK(fan_bits && grp_bits);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(sh != MAP_FAILED);
	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);

	/* The topics' lives. */
	for (int x = 0; x < NT; x++) {
		struct topic *t = &T[x];
		topic_name((unsigned)x, t->name, sizeof(t->name));
		t->late = x % 5 == 2;
		uint64_t r = t_rand(&rng) % 8;
		t->ninc = r < 5 ? 1 : r < 7 ? 2 : 3;
		t->remove_last = t_rand(&rng) % 4 == 0;
		for (int i = 0; i < t->ninc; i++) {
			uint32_t most = i == 0 && !t->late ? static_q : late_q;
			t->quota[i] = t_rand(&rng) % 12 == 0 ? 0 :
							       1 + (uint32_t)(t_rand(&rng) % most);
		}
		t->inc = -1;
		if (t->late)
			late_order[nlate++] = x;
		else
			static_total += t->quota[0];
	}
	for (int i = nlate - 1; i > 0; i--) {
		int j = (int)(t_rand(&rng) % (uint64_t)(i + 1)), v = late_order[i];
		late_order[i] = late_order[j];
		late_order[j] = v;
	}
	for (int x = 0; x < NT; x++)
		if (!T[x].late)
			topic_create(x);

	/* The sinks, then what each topic's readers are. */
	int ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0);
	for (int s = 0; s < NSINK; s++) {
		sink_open(s, &rng);
		int fd = shmbus_sink_fd(S[s].k);
		if (fd == -ENOSYS) {
			printf("SKIP: no fd for a sink here: %s\n", shmbus_errmsg());
			return T_SKIP;
		}
		CHECK(fd >= 0);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u32 = (uint32_t)s };
		CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
		S[s].ready = 1;
	}
	for (int g = 0; g < NGRP; g++)
		for (int x = 0; x < NT; x++)
			groups[g].seen[x].inc = NONE;
	for (int x = 0; x < NT; x++) {
		for (int s = 0; s < NSINK; s++) {
			if (!S[s].match[x])
				continue;
			T[x].nmatch++;
			if (S[s].grp < 0)
				T[x].nfan++;
			else
				groups[S[s].grp].cover[x] = 1;
		}
		for (int g = 0; g < NGRP; g++)
			T[x].ngrp += groups[g].cover[x];
	}
	for (int x = 0; x < NT; x++)
		if (!T[x].late)
			go_live(x, 0);

	pid_t pids[NPUB];
	for (int p = 0; p < NPUB; p++) {
		pids[p] = t_child(publisher, (void *)(uintptr_t)p, NULL);
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = TAG_PUB + (uint32_t)p };
		CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, t_pidfd(pids[p]), &ev) == 0);
	}

	double setup_ms = t_ms_since(tsetup);
	/* The loop: one thread, one epoll. */
	uint64_t t0 = t_now_ns();
	progress_ns = t0;
	uint64_t wakes = 0, empty = 0;
	while (!all_final()) {
		make_late();
		for (int x = 0; x < NT; x++)
			advance(x);
		if (all_final())
			break;
		int any = 0;
		for (int s = 0; s < NSINK; s++)
			any |= S[s].ready;
		int timeout = any ? 0 : t_ms_left(progress_ns + (uint64_t)T_WAIT_MS * 1000000u);
		struct epoll_event evs[NSINK + NPUB];
		int n = epoll_wait(ep, evs, NSINK + NPUB, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n >= 0);
		if (!n && !any)
			stalled();
		for (int i = 0; i < n; i++) {
			uint32_t d = evs[i].data.u32;
			if (d >= TAG_PUB) {
				fprintf(stderr, "publisher %u ended before the end\n", d - TAG_PUB);
				int st = t_reap(pids[d - TAG_PUB], T_WAIT_MS, "publisher");
				fprintf(stderr, "its wait status: %#x\n", st);
				exit(1);
			}
			S[d].ready = 1;
			wakes++;
		}
		for (int s = 0; s < NSINK; s++) {
			struct sink *k = &S[s];
			for (int b = 0; k->ready && b < BUDGET; b++) {
				shmbus_msg_t m;
				int rc = shmbus_sink_recv(k->k, &m, 0);
				if (rc == 0) {
					take(k, &m);
					progress_ns = t_now_ns();
					continue;
				}
				if (rc != -EAGAIN)
					DIE(k, "shmbus_sink_recv: %d", rc);
				k->ready = 0;
				empty += b == 0;
				if (k->nconfirm)
					check_listing(k);
			}
		}
	}
	double ms = t_ms_since(t0);

	/* The end: the publishers are done, and nothing more comes. */
	atomic_store(&sh->done, 1);
	work_changed();
	uint64_t published = 0;
	for (int p = 0; p < NPUB; p++) {
		int st = t_reap(pids[p], T_WAIT_MS, "a publisher's end");
		CHECK(t_exited(st, 0));
		published += atomic_load(&sh->published[p]);
	}
	uint64_t want_published = 0;
	for (int x = 0; x < NT; x++)
		for (int i = 0; i < T[x].ninc; i++)
			want_published += T[x].quota[i];
	CHECK(published == want_published);
	for (int s = 0; s < NSINK; s++) {
		shmbus_msg_t m;
		int rc = shmbus_sink_recv(S[s].k, &m, 0);
		if (rc == 0)
			DIE(&S[s], "a message of '%s' seq %" PRIu64 " after all were received",
			    m.topic, m.seq);
		CHECK_RC(rc, -EAGAIN);
		/* It lists exactly the kept topics it matches. */
		int want = 0;
		for (int x = 0; x < NT; x++)
			if (S[s].match[x] && T[x].state == T_KEPT) {
				S[s].confirm[x] = 1;
				S[s].nconfirm++;
				T[x].unconfirmed++;
				want++;
			}
		int n = check_listing(&S[s]);
		if (S[s].nconfirm || n != want)
			DIE(&S[s], "lists %d topics, not %d of the %d it should", n, S[s].nconfirm,
			    want);
	}
	int kept = 0;
	for (int x = 0; x < NT; x++) {
		if (T[x].state != T_KEPT)
			continue;
		kept++;
		shmbus_topic_stats_t st;
		CHECK_RC(shmbus_topic_stats(bus, T[x].name, &st), 0);
		if (st.readers != (uint32_t)T[x].nmatch || st.next_seq != T[x].quota[T[x].inc]) {
			fprintf(stderr, "'%s': %u readers, %" PRIu64 " messages; wanted %d, %u\n",
				T[x].name, st.readers, st.next_seq, T[x].nmatch,
				T[x].quota[T[x].inc]);
			exit(1);
		}
		shmbus_group_info_t gi[NGRP + 1];
		int ng = shmbus_topic_groups(bus, T[x].name, gi, NGRP + 1);
		CHECK(ng == T[x].ngrp);
		for (int g = 0; g < ng; g++)
			if (gi[g].lag_msgs || gi[g].pending || gi[g].lost || gi[g].redelivered) {
				fprintf(stderr,
					"'%s' group %s: lag %" PRIu64 " pending %u lost %" PRIu64
					" redelivered %" PRIu64 "\n",
					T[x].name, gi[g].name, gi[g].lag_msgs, gi[g].pending,
					gi[g].lost, gi[g].redelivered);
				exit(1);
			}
	}
	printf("sinks_many: %" PRIu64 " messages published, %" PRIu64 " deliveries checked in "
	       "%.0f ms (set-up %.0f ms); %" PRIu64 " topics made, %" PRIu64
	       " removed (%d kept at the end); "
	       "%" PRIu64 " fd wake-ups, %" PRIu64 " with nothing to receive\n",
	       published, deliveries, ms, setup_ms, creations, removals, kept, wakes, empty);
	for (int s = 0; s < NSINK; s++)
		shmbus_sink_close(S[s].k);
	close(ep);
	shmbus_bus_close(bus);
	free(fan_bits);
	free(grp_bits);
	return 0;
}
