/* SPDX-License-Identifier: MIT */
/*
 * A damaged topic file is a clear error, never a crash, an out-of-bounds access or a hang
 * (DESIGN "The topic file": "a foreign, truncated, wrong version or corrupted file is a
 * clear error, never a crash"; STYLE: "every value read from shared memory is untrusted").
 *
 * A valid topic (64 KiB log, a few small tables, 60 messages in it) is saved; each case
 * writes a damaged copy over the topic file, then calls shmbus_topic_info,
 * shmbus_topic_stats, shmbus_topic_create, shmbus_pub_open and shmbus_sub_open (fan-out
 * and group) on it:
 *  - must fail (negative errno, non-empty shmbus_errmsg(), and the file left as it was):
 *    missing file (-ENOENT), truncations (0 B, 100 B, header only, tables only, log cut
 *    short, one byte short, one page long), foreign files (random bytes, text, zeros),
 *    wrong magic / version / ready word (-EPROTO), absurd sizes and offsets (-EBADMSG):
 *    capacity not a power of two or beyond the file, offsets beyond the file, overlapping
 *    or unaligned regions, max_message > capacity, tables that do not fit, bad policy;
 *  - may open or fail, never crash: random bytes in the first 256 bytes of the header
 *    (ITER_HDR iterations, seeded) and interesting values in each header field; garbage
 *    in the claim tail and wait words; garbage in the publisher, reader and group tables
 *    (owner words, positions, group indices, names without NUL); garbage in the log.
 * Whenever opens succeed, the handles are exercised: publish (no wait), batch, reserve +
 * commit, recv with small timeouts from a subscriber and a group member; every returned
 * message is read to its last byte; recv returns 0, -EAGAIN or -EBADMSG only.
 * A watchdog (alarm) turns a hang into a failure that names the case and the seed.
 * SHMBUS_TEST_SEED=<seed> replays a run.
 */
#include "tests/lib/test.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "ring/record.h"
#include "shm/layout.h"

#define ITER_HDR 2000
#define ITER_FIELD 1000
#define ITER_TABLE 400
#define ITER_LOG 300
#define CAP (64u * 1024u)
#define MAXMSG 4096u

static shmbus_bus_t *bus;
static char path[512];
static uint8_t *orig;
static size_t orig_size;
static uint64_t seed, rs;
static const char *phase = "setup";
static int iter;
static shmbus_topic_opts_t topts;

static void on_alarm(int sig)
{
	(void)sig;
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "HANG in phase %s iteration %d (seed %" PRIu64 ")\n",
			 phase, iter, seed);
	if (write(2, msg, (size_t)n) < 0) {
	}
	_exit(1);
}

/* Name the case, then let the previous handler (ASan's, or the default) report. */
static struct sigaction old_segv, old_bus;

static void on_fatal(int sig, siginfo_t *si, void *ctx)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "signal %d in phase %s iteration %d (seed %" PRIu64
			 ")\n", sig, phase, iter, seed);
	if (write(2, msg, (size_t)n) < 0) {
	}
	struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
	if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
		old->sa_sigaction(sig, si, ctx);
	} else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void write_file(const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	const uint8_t *p = buf;
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);
		CHECK(w > 0);
		done += (size_t)w;
	}
	CHECK(close(fd) == 0);
}

/* The file is still exactly buf (a failed open or create must not touch it). */
static int file_is(const void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	struct stat sb;
	int same = fstat(fd, &sb) == 0 && (size_t)sb.st_size == len;
	if (same && len) {
		void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		same = m != MAP_FAILED && memcmp(m, buf, len) == 0;
		if (m != MAP_FAILED)
			munmap(m, len);
	}
	close(fd);
	return same;
}

static void fail_case(const char *what, const char *call, int rc)
{
	fprintf(stderr, "phase %s iteration %d (seed %" PRIu64 "): %s: %s returned %d (%s), "
		"errmsg \"%s\"\n", phase, iter, seed, what, call, rc, strerror(rc < 0 ? -rc : 0),
		shmbus_errmsg());
	exit(1);
}

/* A failed slow-path call: negative, a message, and (want != 0) that exact code. */
static void check_fail(const char *what, const char *call, int rc, int want1, int want2)
{
	if (rc >= 0)
		fail_case(what, call, rc);
	if (shmbus_errmsg()[0] == '\0') {
		fprintf(stderr, "%s: %s returned %d with an empty shmbus_errmsg()\n", what, call,
			rc);
		exit(1);
	}
	if (want1 && rc != want1 && rc != want2)
		fail_case(what, call, rc);
}

static volatile uint64_t sink;

static void touch(const shmbus_msg_t *m, uint32_t max)
{
	if (m->len > max) {
		fprintf(stderr, "phase %s iteration %d (seed %" PRIu64 "): recv returned a "
			"%u-byte message, max_message is %u\n", phase, iter, seed, m->len, max);
		exit(1);
	}
	if (m->len)
		CHECK(m->data != NULL);
	sink += t_fnv(m->data, m->len);
}

static void drain(shmbus_sub_t *sub, int rounds, uint32_t max)
{
	int bad = 0;
	for (int i = 0; sub && i < rounds; i++) {
		shmbus_msg_t m;
		int rc = shmbus_recv(sub, &m, (int)(t_rand(&rs) % 3));
		if (rc == 0) {
			touch(&m, max);
			continue;
		}
		if (rc == -EAGAIN)
			break;
		if (rc == -EBADMSG) {
			if (++bad >= 4)
				break;
			continue;
		}
		fail_case("recv on damaged topic", "shmbus_recv", rc);
	}
}

/* Use whatever opens: publish without waiting, receive with tiny timeouts. */
static void exercise(uint32_t max)
{
	shmbus_pub_t *pub = NULL;
	shmbus_sub_t *sub = NULL, *gsub = NULL;
	if (shmbus_pub_open(&pub, bus, "c") < 0)
		pub = NULL;
	if (shmbus_sub_open(&sub, bus, "c", NULL, SHMBUS_SUB_EARLIEST) < 0)
		sub = NULL;
	if (shmbus_sub_open(&gsub, bus, "c", "g", SHMBUS_SUB_EARLIEST) < 0)
		gsub = NULL;
	static uint8_t buf[MAXMSG];
	for (size_t i = 0; i < 64; i++)
		buf[i] = (uint8_t)i;
	if (pub) {
		shmbus_pub_set_timeout(pub, 0);
		for (int i = 0; i < 3; i++) {
			int rc = shmbus_publish(pub, buf, (size_t)(t_rand(&rs) % 300), 1);
			CHECK(rc <= 0);
		}
		shmbus_iov_t iov[3] = { { buf, 10, 1 }, { buf, 0, 2 }, { buf, 100, 3 } };
		int rc = shmbus_publish_batch(pub, iov, 3);
		CHECK(rc <= 3);
		void *r;
		if (shmbus_reserve(pub, 48, &r) == 0) {
			memset(r, 0x5a, 48);
			CHECK_RC(shmbus_commit(pub), 0);
		}
	}
	drain(sub, 80, max);
	drain(gsub, 80, max);
	shmbus_sub_close(gsub);
	shmbus_sub_close(sub);
	shmbus_pub_close(pub);
}

/*
 * Every entry point on the file as it is now. must_fail: each must fail (want1/want2,
 * when not 0, are the accepted codes) and leave the file alone. Otherwise anything but a
 * crash or a hang, and what opens is exercised.
 */
static void probe(const char *what, const void *buf, size_t len, int must_fail, int want1,
		  int want2)
{
	alarm(30);
	shmbus_topic_opts_t o;
	shmbus_topic_stats_t st;
	shmbus_pub_t *pub = NULL;
	shmbus_sub_t *sub = NULL;
	int rc;

	rc = shmbus_topic_info(bus, "c", &o);
	if (must_fail)
		check_fail(what, "shmbus_topic_info", rc, want1, want2);
	else if (rc < 0)
		check_fail(what, "shmbus_topic_info", rc, 0, 0);
	rc = shmbus_topic_stats(bus, "c", &st);
	if (must_fail && rc >= 0)
		fail_case(what, "shmbus_topic_stats", rc);
	rc = shmbus_pub_open(&pub, bus, "c");
	if (must_fail)
		check_fail(what, "shmbus_pub_open", rc, want1, want2);
	else if (rc < 0)
		check_fail(what, "shmbus_pub_open", rc, 0, 0);
	shmbus_pub_close(rc == 0 ? pub : NULL);
	rc = shmbus_sub_open(&sub, bus, "c", NULL, 0);
	if (must_fail)
		check_fail(what, "shmbus_sub_open", rc, want1, want2);
	else if (rc < 0)
		check_fail(what, "shmbus_sub_open", rc, 0, 0);
	shmbus_sub_close(rc == 0 ? sub : NULL);
	rc = shmbus_sub_open(&sub, bus, "c", "g", 0);
	if (must_fail)
		check_fail(what, "shmbus_sub_open(group)", rc, want1, want2);
	shmbus_sub_close(rc == 0 ? sub : NULL);
	if (must_fail) {
		/* Creating over a file that is not a valid topic: an error, file untouched. */
		rc = shmbus_topic_create(bus, "c", &topts);
		check_fail(what, "shmbus_topic_create", rc, -EPROTO, -EBADMSG);
		if (buf && !file_is(buf, len)) {
			fprintf(stderr, "%s: the damaged file was changed by a failed call\n", what);
			exit(1);
		}
	} else {
		exercise(MAXMSG);
	}
	alarm(0);
}

/* Write a damaged copy and probe it. */
static void damaged(const char *what, const void *buf, size_t len, int must_fail, int want1,
		    int want2)
{
	write_file(buf, len);
	probe(what, buf, len, must_fail, want1, want2);
}

static uint8_t *copy(void)
{
	static uint8_t *b;
	if (!b)
		b = malloc(orig_size + 8192);
	CHECK(b != NULL);
	memcpy(b, orig, orig_size);
	return b;
}

#define HDR(b) ((struct shmbus_topic_hdr *)(void *)(b))

/* ---- fixed cases ---------------------------------------------------------------------- */

static void fixed_cases(void)
{
	phase = "fixed";
	shmbus_topic_opts_t o;
	shmbus_pub_t *pub;
	shmbus_sub_t *sub;
	CHECK_RC(shmbus_topic_info(bus, "nosuch", &o), -ENOENT);
	CHECK(shmbus_errmsg()[0] != '\0');
	CHECK_RC(shmbus_pub_open(&pub, bus, "nosuch"), -ENOENT);
	CHECK(shmbus_errmsg()[0] != '\0');
	CHECK_RC(shmbus_sub_open(&sub, bus, "nosuch", NULL, 0), -ENOENT);
	CHECK(shmbus_errmsg()[0] != '\0');

	const struct shmbus_topic_hdr *h = HDR(orig);
	uint64_t log_off = h->log_off, cap = h->capacity;
	struct {
		const char *what;
		size_t len;
	} cuts[] = {
		{ "empty file", 0 },
		{ "100 bytes", 100 },
		{ "header minus one byte", SHMBUS_HEADER_SIZE - 1 },
		{ "header only", SHMBUS_HEADER_SIZE },
		{ "header and publishers, no log", (size_t)log_off },
		{ "log cut in half", (size_t)(log_off + cap / 2) },
		{ "log, no reader table", (size_t)(log_off + cap) },
		{ "last page missing", orig_size - 4096 },
		{ "one byte short", orig_size - 1 },
		{ "one page too long", orig_size + 4096 },
	};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		uint8_t *b = copy();
		if (cuts[i].len > orig_size)
			memset(b + orig_size, 0, cuts[i].len - orig_size);
		damaged(cuts[i].what, b, cuts[i].len, 1, -EPROTO, -EBADMSG);
	}

	uint8_t *b = copy();
	for (size_t i = 0; i < orig_size; i++)
		b[i] = (uint8_t)t_rand(&rs);
	damaged("random bytes", b, orig_size, 1, -EPROTO, -EBADMSG);
	damaged("random page", b, 4096, 1, -EPROTO, -EBADMSG);
	const char *text = "this is not a topic\nbut a text file\n";
	damaged("text file", text, strlen(text), 1, -EPROTO, -EBADMSG);
	memset(b, 0, orig_size);
	damaged("zeros", b, orig_size, 1, -EPROTO, -EBADMSG);

	b = copy();
	b[3] ^= 0x40;
	damaged("wrong magic", b, orig_size, 1, -EPROTO, 0);
	uint32_t versions[] = { 0, SHMBUS_LAYOUT_VERSION + 1, 0xffffffffu };
	for (size_t i = 0; i < 3; i++) {
		b = copy();
		HDR(b)->version = versions[i];
		damaged("other layout version", b, orig_size, 1, -EPROTO, 0);
	}
	b = copy();
	HDR(b)->ready = 0;
	damaged("ready word not set", b, orig_size, 1, -EPROTO, 0);
	b = copy();
	HDR(b)->ready = SHMBUS_READY ^ 1;
	damaged("ready word wrong", b, orig_size, 1, -EPROTO, 0);

	/* Absurd sizes and offsets: each field alone. */
	const uint64_t S = orig_size;
#define BAD(field, value, what)                                                           \
	do {                                                                              \
		b = copy();                                                               \
		HDR(b)->field = (value);                                                  \
		damaged(what " (" #field " = " #value ")", b, orig_size, 1, -EBADMSG, 0); \
	} while (0)
	BAD(capacity, 0, "capacity zero");
	BAD(capacity, cap - 1, "capacity not a power of two");
	BAD(capacity, cap + 4096, "capacity not a power of two");
	BAD(capacity, cap * 2, "capacity beyond the file");
	BAD(capacity, 1ull << 40, "capacity beyond the file");
	BAD(capacity, 1ull << 63, "capacity absurd");
	BAD(file_size, S + 4096, "file_size not the file's size");
	BAD(file_size, S - 4096, "file_size not the file's size");
	BAD(file_size, 0, "file_size zero");
	BAD(file_size, UINT64_MAX, "file_size absurd");
	BAD(pubs_off, S, "publisher table beyond the file");
	BAD(pubs_off, 0, "publisher table over the header");
	BAD(pubs_off, UINT64_MAX - 4095, "publisher table offset wraps");
	BAD(readers_off, S + (1ull << 40), "reader table beyond the file");
	BAD(readers_off, h->pubs_off, "reader table over the publisher table");
	BAD(readers_off, h->readers_off + 8, "reader table unaligned");
	BAD(readers_off, 0, "reader table over the header");
	BAD(groups_off, UINT64_MAX - 4095, "group table offset wraps");
	BAD(groups_off, S - 64, "group table beyond the file");
	BAD(groups_off, h->readers_off, "group table over the reader table");
	BAD(log_off, 0, "log over the header");
	BAD(log_off, log_off + 4096, "log beyond the file");
	BAD(log_off, log_off + 32, "log unaligned and beyond the file");
	BAD(log_off, S, "log at the end of the file");
	BAD(log_off, h->groups_off, "log over the group table");
	BAD(rtab_off, log_off, "reader table header over the log");
	BAD(rtab_off, S, "reader table header at the end of the file");
	BAD(rtab_off, 0, "reader table header over the header");
	BAD(max_message, (uint32_t)cap, "max_message > capacity");
	BAD(max_message, (uint32_t)cap / 2, "max_message > capacity/2 - 64");
	BAD(max_message, 0xffffffffu, "max_message absurd");
	BAD(max_readers, 0, "no reader slot");
	BAD(max_readers, 0xffffffffu, "reader table does not fit");
	BAD(max_readers, h->max_readers * 64, "reader table does not fit");
	BAD(max_publishers, 0, "no publisher slot");
	BAD(max_publishers, 0x80000000u, "publisher table does not fit");
	BAD(max_publishers, h->max_publishers * 64 + 1, "publisher table does not fit");
	BAD(max_groups, 0xffffffffu, "group table does not fit");
	BAD(max_groups, h->max_groups * 64 + 1, "group table does not fit");
	BAD(policy, 2, "unknown policy");
	BAD(policy, 0xffffffffu, "unknown policy");
#undef BAD

	/* Odd but maybe consistent: must not crash. */
#define ODD(field, value)                                                                 \
	do {                                                                              \
		b = copy();                                                               \
		HDR(b)->field = (value);                                                  \
		damaged(#field " = " #value, b, orig_size, 0, 0, 0);                      \
	} while (0)
	ODD(capacity, cap / 2);
	ODD(max_message, 1);
	ODD(max_message, 0);
	ODD(max_readers, 1);
	ODD(max_publishers, 1);
	ODD(max_groups, 0);
	ODD(max_groups, 1);
	ODD(flags, 0xffffffffu);
	ODD(generation, 0);
	ODD(stamp_key, 0);
	ODD(stamp_key, UINT64_MAX);
	ODD(created_ns, UINT64_MAX);
#undef ODD
	b = copy();
	memset(HDR(b)->name, 'A', sizeof(HDR(b)->name));
	damaged("name without NUL", b, orig_size, 0, 0, 0);
	b = copy();
	memset(HDR(b)->name, 0, sizeof(HDR(b)->name));
	damaged("empty name", b, orig_size, 0, 0, 0);
	printf("fixed cases: ok\n");
}

/* ---- random header garbage ------------------------------------------------------------ */

struct field {
	const char *name;
	size_t off, size;
	int rtab; /* in part B's header: off is from rtab_off */
};
#define F(x) { #x, offsetof(struct shmbus_topic_hdr, x), sizeof(((struct shmbus_topic_hdr *)0)->x), 0 }
#define R(x) { #x, offsetof(struct shmbus_rtab_hdr, x), sizeof(((struct shmbus_rtab_hdr *)0)->x), 1 }
static const struct field fields[] = {
	F(magic), F(version), F(ready), F(file_size), F(capacity), F(max_message), F(policy),
	F(max_readers), F(max_groups), F(max_publishers), F(flags), F(generation),
	F(stamp_key), F(pubs_off), F(readers_off), F(groups_off), F(log_off), F(rtab_off),
	F(created_ns), F(pubs_hwm),
	{ "tail[0]", offsetof(struct shmbus_topic_hdr, tail), 8, 0 },
	{ "tail[1]", offsetof(struct shmbus_topic_hdr, tail) + 8, 8, 0 },
	F(published), F(aborted),
	R(magic), R(generation), R(readers_hwm), R(groups_hwm), R(group_lock),
	R(readers_reclaimed), R(wake), R(space), R(pub_waiters),
};
#undef F
#undef R

static uint64_t interesting(uint64_t old)
{
	const uint64_t S = orig_size;
	const uint64_t v[] = { 0, 1, 2, 7, 31, 32, 33, 63, 64, 65, 4095, 4096, 4097, CAP - 1,
			       CAP, CAP + 1, CAP / 2, CAP * 2, S - 1, S, S + 1, 0x7fffffff,
			       0x80000000, 0xffffffff, 1ull << 32, 1ull << 40, 1ull << 62,
			       1ull << 63, UINT64_MAX, UINT64_MAX - 4095, UINT64_MAX - 31, old + 1,
			       old - 1, old + 32, old - 32, old + 4096, old - 4096, old * 2, old / 2,
			       old + CAP, old - CAP, old ^ (1ull << (old & 63)) };
	return v[t_rand(&rs) % (sizeof(v) / sizeof(v[0]))];
}

static void put_field(uint8_t *b, size_t off, size_t size, uint64_t v)
{
	if (size >= 8)
		memcpy(b + off, &v, 8);
	else {
		uint32_t w = (uint32_t)v;
		memcpy(b + off, &w, 4);
	}
}

static uint64_t get_field(const uint8_t *b, size_t off, size_t size)
{
	uint64_t v = 0;
	memcpy(&v, b + off, size >= 8 ? 8 : 4);
	return v;
}

static void header_garbage(void)
{
	char what[128];
	phase = "header bytes";
	for (iter = 0; iter < ITER_HDR; iter++) {
		uint8_t *b = copy();
		int k = 1 + (int)(t_rand(&rs) % 4);
		for (int j = 0; j < k; j++) {
			size_t off = t_rand(&rs) % 256, n = 1 + t_rand(&rs) % 8;
			for (size_t i = 0; i < n && off + i < 256; i++)
				b[off + i] = (uint8_t)t_rand(&rs);
		}
		snprintf(what, sizeof(what), "%d random writes in the header", k);
		damaged(what, b, orig_size, 0, 0, 0);
	}
	printf("%s: %d iterations ok\n", phase, ITER_HDR);

	phase = "header fields";
	for (iter = 0; iter < ITER_FIELD; iter++) {
		uint8_t *b = copy();
		int k = 1 + (int)(t_rand(&rs) % 2);
		const struct field *f = NULL;
		for (int j = 0; j < k; j++) {
			f = &fields[t_rand(&rs) % (sizeof(fields) / sizeof(fields[0]))];
			size_t off = f->off + (f->rtab ? HDR(orig)->rtab_off : 0);
			put_field(b, off, f->size, interesting(get_field(b, off, f->size)));
		}
		snprintf(what, sizeof(what), "%d fields (last %s)", k, f->name);
		damaged(what, b, orig_size, 0, 0, 0);
	}
	printf("%s: %d iterations ok\n", phase, ITER_FIELD);
}

/* ---- table garbage -------------------------------------------------------------------- */

static uint64_t garbage_word(void)
{
	uint64_t tail = HDR(orig)->tail[0];
	pid_t pids[] = { getpid(), getppid(), 1, 0, 0x7fffffff, (pid_t)(t_rand(&rs) % 4194304) };
	pid_t pid = pids[t_rand(&rs) % 6];
	switch (t_rand(&rs) % 8) {
	case 0:
		return t_rand(&rs);
	case 1:
		return SHMBUS_OWNER(SHMBUS_SLOT_ACTIVE, pid);
	case 2:
		return SHMBUS_OWNER(t_rand(&rs), pid);
	case 3:
		return tail + (t_rand(&rs) % 4096) - 2048;
	case 4:
		return SHMBUS_NOPOS;
	case 5:
		return t_rand(&rs) % 8;
	case 6:
		return tail + CAP * (t_rand(&rs) % 4) - 2 * CAP;
	default:
		return interesting(tail);
	}
}

static void scribble_slot(uint8_t *slot, size_t size, int group)
{
	int mode = (int)(t_rand(&rs) % 3);
	for (size_t off = 0; off < size; off += 8) {
		if (mode == 0 && t_rand(&rs) % 2)
			continue;
		uint64_t w = garbage_word();
		memcpy(slot + off, &w, 8);
	}
	if (group) {
		struct shmbus_group_slot *g = (void *)slot;
		switch (t_rand(&rs) % 4) {
		case 0: /* no NUL anywhere */
			for (size_t i = 0; i < sizeof(g->name); i++)
				g->name[i] = (char)('a' + t_rand(&rs) % 26);
			break;
		case 1: /* the name the exercise joins, with garbage after it */
			g->name[0] = 'g';
			g->name[1] = '\0';
			break;
		case 2:
			memcpy(g->name, "g", 1); /* "g" without NUL: "gxxxx..." */
			break;
		default:
			break;
		}
		uint32_t states[] = { SHMBUS_GROUP_FREE, SHMBUS_GROUP_INIT, SHMBUS_GROUP_ACTIVE,
				      (uint32_t)t_rand(&rs) };
		g->state = states[t_rand(&rs) % 4];
	} else if (size == sizeof(struct shmbus_reader_slot) && t_rand(&rs) % 2) {
		struct shmbus_reader_slot *r = (void *)slot;
		uint32_t groups[] = { 0, 1, 2, HDR(orig)->max_groups, HDR(orig)->max_groups + 1,
				      0xffffffffu, (uint32_t)t_rand(&rs) };
		r->group = groups[t_rand(&rs) % 7];
	}
}

static void table_garbage(const char *name, uint64_t off, uint32_t n, size_t size, int group)
{
	phase = name;
	for (iter = 0; iter < ITER_TABLE; iter++) {
		uint8_t *b = copy();
		int k = 1 + (int)(t_rand(&rs) % (n < 4 ? n : 4));
		for (int j = 0; j < k; j++)
			scribble_slot(b + off + (t_rand(&rs) % n) * size, size, group);
		damaged(name, b, orig_size, 0, 0, 0);
	}
	printf("%s: %d iterations ok\n", name, ITER_TABLE);
}

/* ---- log garbage ---------------------------------------------------------------------- */

static void log_garbage(int policy)
{
	phase = policy == SHMBUS_BLOCK ? "log (block)" : "log (overwrite)";
	static uint8_t buf[MAXMSG];
	for (iter = 0; iter < ITER_LOG; iter++) {
		alarm(30);
		shmbus_topic_opts_t o = topts;
		o.policy = (uint32_t)policy;
		CHECK_RC(shmbus_topic_create(bus, "l", &o), 0);
		shmbus_pub_t *pub;
		shmbus_sub_t *sub, *gsub;
		CHECK_RC(shmbus_sub_open(&sub, bus, "l", NULL, 0), 0);
		CHECK_RC(shmbus_sub_open(&gsub, bus, "l", "g", 0), 0);
		CHECK_RC(shmbus_pub_open(&pub, bus, "l"), 0);
		shmbus_pub_set_timeout(pub, 0);
		int n = (int)(t_rand(&rs) % 200);
		for (int i = 0; i < n; i++) {
			size_t len = t_rand(&rs) % (t_rand(&rs) % 2 ? 64 : MAXMSG + 1);
			memset(buf, i, len);
			int rc = shmbus_publish(pub, buf, len, (uint32_t)i);
			CHECK(rc == 0 || rc == -EAGAIN);
		}
		/* Sometimes read part of it first, so cursors are inside the log. */
		drain(sub, (int)(t_rand(&rs) % 20), MAXMSG);

		char lp[512];
		snprintf(lp, sizeof(lp), "%s/l.topic", shmbus_bus_path(bus));
		int fd = open(lp, O_RDWR);
		CHECK(fd >= 0);
		struct stat sb;
		CHECK(fstat(fd, &sb) == 0);
		uint8_t *m = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
				  0);
		CHECK(m != MAP_FAILED);
		close(fd);
		struct shmbus_topic_hdr *h = (void *)m;
		uint8_t *log = m + h->log_off;
		uint64_t cap = h->capacity, tail = __atomic_load_n(&h->tail[0], __ATOMIC_ACQUIRE);
		int k = 1 + (int)(t_rand(&rs) % 5);
		for (int j = 0; j < k; j++) {
			uint64_t off = t_rand(&rs) % cap;
			switch (t_rand(&rs) % 3) {
			case 0: { /* random bytes */
				size_t len = 1 + t_rand(&rs) % 256;
				for (size_t i = 0; i < len && off + i < cap; i++)
					log[off + i] = (uint8_t)t_rand(&rs);
				break;
			}
			case 1: { /* a committed-looking header with garbage in it */
				off &= ~(uint64_t)(SHMBUS_REC_ALIGN - 1);
				uint64_t pos = tail >= cap ? tail - 1 - ((tail - 1 - off) & (cap - 1))
							   : off;
				pos &= ~(uint64_t)(SHMBUS_REC_ALIGN - 1);
				struct shmbus_rec *r = (void *)(log + (pos & (cap - 1)));
				uint32_t lens[] = { (uint32_t)t_rand(&rs), MAXMSG + 1, (uint32_t)cap,
						    0xffffffffu, SHMBUS_REC_PAD,
						    SHMBUS_REC_PAD | (uint32_t)t_rand(&rs),
						    SHMBUS_REC_PAD | (uint32_t)cap,
						    SHMBUS_REC_PAD | 8u,
						    (uint32_t)(t_rand(&rs) % (MAXMSG + 1)) };
				r->len = lens[t_rand(&rs) % 9];
				r->seq = t_rand(&rs) % 2 ? t_rand(&rs) : h->tail[1] - 1;
				r->type = (uint32_t)t_rand(&rs);
				__atomic_store_n(&r->commit, pos ^ h->stamp_key, __ATOMIC_RELEASE);
				break;
			}
			default: { /* flip bits in a header-aligned word */
				off &= ~(uint64_t)7;
				uint64_t w;
				memcpy(&w, log + off, 8);
				w ^= 1ull << (t_rand(&rs) % 64);
				memcpy(log + off, &w, 8);
				break;
			}
			}
		}
		drain(sub, 400, MAXMSG);
		drain(gsub, 400, MAXMSG);
		for (int i = 0; i < 5; i++) {
			int rc = shmbus_publish(pub, buf, (size_t)(t_rand(&rs) % 200), 7);
			CHECK(rc <= 0);
		}
		drain(sub, 50, MAXMSG);
		drain(gsub, 50, MAXMSG);
		munmap(m, (size_t)sb.st_size);
		shmbus_pub_close(pub);
		shmbus_sub_close(gsub);
		shmbus_sub_close(sub);
		CHECK_RC(shmbus_topic_remove(bus, "l"), 0);
		alarm(0);
	}
	printf("%s: %d iterations ok\n", phase, ITER_LOG);
}

int main(void)
{
	t_private_dir("corrupt_files");
	setvbuf(stdout, NULL, _IOLBF, 0);
	seed = t_seed();
	rs = seed;
	printf("seed %" PRIu64 "\n", seed);
	signal(SIGALRM, on_alarm);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);

	CHECK_RC(shmbus_bus_open(&bus, NULL), 0);
	shmbus_topic_opts_init(&topts);
	topts.capacity = CAP;
	topts.max_message = MAXMSG;
	topts.max_readers = 8;
	topts.max_groups = 4;
	topts.max_publishers = 8;
	CHECK_RC(shmbus_topic_create(bus, "c", &topts), 0);
	snprintf(path, sizeof(path), "%s/c.topic", shmbus_bus_path(bus));

	/* Some history in the log, a non-zero tail, and no handle open. */
	shmbus_pub_t *pub;
	CHECK_RC(shmbus_pub_open(&pub, bus, "c"), 0);
	static uint8_t buf[MAXMSG];
	for (int i = 0; i < 60; i++) {
		memset(buf, i, sizeof(buf));
		CHECK_RC(shmbus_publish(pub, buf, (size_t)(i * 67) % MAXMSG, (uint32_t)i), 0);
	}
	shmbus_pub_close(pub);

	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	struct stat sb;
	CHECK(fstat(fd, &sb) == 0);
	orig_size = (size_t)sb.st_size;
	orig = malloc(orig_size);
	CHECK(orig != NULL);
	CHECK(read(fd, orig, orig_size) == (ssize_t)orig_size);
	close(fd);
	const struct shmbus_topic_hdr *h = HDR(orig);
	printf("topic file %zu bytes: pubs@%" PRIu64 " readers@%" PRIu64 " groups@%" PRIu64
	       " log@%" PRIu64 ", tail %" PRIu64 "\n", orig_size, h->pubs_off, h->readers_off,
	       h->groups_off, h->log_off, h->tail[0]);
	CHECK(h->log_off + h->capacity == h->rtab_off && h->file_size == orig_size);

	/* The saved file itself is fine. */
	damaged("the original", orig, orig_size, 0, 0, 0);

	fixed_cases();
	header_garbage();
	table_garbage("publisher slots", h->pubs_off, h->max_publishers,
		      sizeof(struct shmbus_pub_slot), 0);
	table_garbage("reader slots", h->readers_off, h->max_readers,
		      sizeof(struct shmbus_reader_slot), 0);
	table_garbage("group slots", h->groups_off, h->max_groups,
		      sizeof(struct shmbus_group_slot), 1);
	log_garbage(SHMBUS_BLOCK);
	log_garbage(SHMBUS_OVERWRITE);

	free(orig);
	shmbus_bus_close(bus);
	printf("ok\n");
	return 0;
}
