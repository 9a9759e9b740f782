/* SPDX-License-Identifier: MIT */
/*
 * [access PATTERN] sections (daemon/config.c) and the evaluator (daemon/acl.c), compiled in,
 * no daemon running:
 *
 *  A. Mistakes are "FILE:LINE: reason": an unknown user or group (owner, group, in a list),
 *     a bad or x-bit or owner-less mode, a bad pattern, a $sys. pattern, a principal without
 *     a kind, a key set twice, [bus] access neither file nor brokered.
 *  B. A good file: sections in file order, access = brokered kept.
 *  C. acl_rights' truth table for subscribe, publish, create and remove: the owner (uid
 *     1000), a listed uid, a member of the file's group, a member of a listed group, a
 *     create-listed uid, an unlisted uid (65534), root; the first matching section decides
 *     (a narrower one after a wider one never applies); a topic no section matches gets the
 *     bus's defaults. The reason names the uid, the verb, the topic, the section, its
 *     FILE:LINE, the mode and the list.
 *  D. acl_file_attrs; acl_apply_fd on a real file: owner, group, mode, the named ACL entries
 *     (and none for a topic without lists); acl_denied_event's members.
 *
 * Runs as root (chown to other uids); skips otherwise.
 */
#include <stdarg.h>
#include <sys/acl.h>
#include <acl/libacl.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>

#include "daemon/acl.h"
#include "daemon/shmbusd.h"
#include "tests/lib/test.h"

/* ---- what acl.c needs of events.c: the event captured ---- */

static char last_event[8192];

void event(struct daemon *d, const char *name, const char *fmt, ...)
{
	(void)d;
	va_list ap;
	va_start(ap, fmt);
	int n = snprintf(last_event, sizeof(last_event), "%s {", name);
	vsnprintf(last_event + n, sizeof(last_event) - (size_t)n, fmt, ap);
	va_end(ap);
}

const char *json_str(char *buf, size_t len, const char *s)
{
	size_t o = 0;
	for (; *s && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[o++] = '\\';
		buf[o++] = *s;
	}
	buf[o] = '\0';
	return buf;
}

/* ---- A ---- */

static char conf[600];
static char user1000[256]; /* uid 1000's name: named as the owner of a section */

/* Load text; expect a refusal at line whose reason holds want. */
static void expect_error(const char *text, int line, const char *want)
{
	t_write(conf, "%s", text);
	struct shmbusd_config c;
	char err[2048], at[700];
	if (config_load(conf, &c, err, sizeof(err)) == 0) {
		FAIL("accepted:\n%s", text);
		config_free(&c);
		return;
	}
	snprintf(at, sizeof(at), "%s:%d: ", conf, line);
	if (strncmp(err, at, strlen(at)) || !strstr(err, want))
		FAIL("wanted '%s...%s', got '%s'", at, want, err);
}

static void errors(void)
{
	expect_error("[access a.>]\npublish = user:no-such-user-x\n", 2,
		     "publish: user 'no-such-user-x' does not exist");
	expect_error(
		"[bus]\nname = t\n\n[access a.>]\nmode = 0640\nsubscribe = group:no-such-grp\n", 6,
		"subscribe: group 'no-such-grp' does not exist");
	expect_error("[access a.>]\nowner = no-such-user-x\n", 2, "owner: user 'no-such-user-x'");
	expect_error("[access a.>]\ngroup = no-such-grp\n", 2, "group: group 'no-such-grp'");
	expect_error("[access a.>]\ncreate = uid:12x\n", 2, "create: uid '12x' is not a number");
	expect_error("[access a.>]\npublish = alice\n", 2, "'alice' is not a principal");
	expect_error("[access a.>]\npublish = host:alice\n", 2, "'host:alice' is not a principal");
	expect_error("[access a.>]\nmode = 0755\n", 2, "mode '0755' is not an octal mode");
	expect_error("[access a.>]\nmode = 0440\n", 2, "mode '0440'");
	expect_error("[access a.>]\nmode = rw\n", 2, "mode 'rw'");
	expect_error("[access a.>]\nmode = 0640\nmode = 0600\n", 3, "'mode' is set twice");
	expect_error("# x\n[access a..b]\nmode = 0640\n", 3, "[access a..b]: topic pattern");
	expect_error("[access a.>.b]\nmode = 0640\n", 2, "'>' must be the last token");
	expect_error("[access $sys.log]\nmode = 0666\n", 2, "$sys.*");
	expect_error("[access a]\nowner = root\nsecret = 1\n", 3, "unknown key 'secret'");
	expect_error("[bus]\naccess = open\n", 2, "access 'open' is neither 'file' nor 'brokered'");
}

/* ---- B, C, D ---- */

static const char good[] = "[bus]\n"			    /* 1 */
			   "name = t\n"			    /* 2 */
			   "access = brokered\n"	    /* 3 */
			   "\n"				    /* 4 */
			   "[access orders.special]\n"	    /* 5 */
			   "owner = 1000\n"		    /* 6 */
			   "mode = 0600\n"		    /* 7 */
			   "subscribe = uid:2000\n"	    /* 8 */
			   "\n"				    /* 9 */
			   "[access  orders.>]\n"	    /* 10 */
			   "owner = %s\n"		    /* 11 */
			   "group = 3000\n"		    /* 12 */
			   "mode = 0640\n"		    /* 13 */
			   "publish = uid:2000, gid:4242\n" /* 14 */
			   "create = uid:2001\n"	    /* 15 */
			   "[access open.*]\n"		    /* 16 */
			   "mode = 0666\n"		    /* 17 */
			   "[access wide.>]\n"		    /* 18 */
			   "mode = 0666\n"		    /* 19 */
			   "[access wide.narrow]\n"	    /* 20 */
			   "mode = 0600\n";		    /* 21 */

struct who {
	const char *name;
	struct acl_peer p;
};

static const gid_t g1000[] = { 1000 }, g3000[] = { 3000 }, g4242[] = { 100, 4242 };
static const struct who owner = { "owner 1000", { 1000, 1000, g1000, 1, 11 } };
static const struct who listed = { "listed 2000", { 2000, 2000, NULL, 0, 12 } };
static const struct who member = { "group member 4000", { 4000, 4000, g3000, 1, 13 } };
static const struct who glisted = { "gid 4242 member 5000", { 5000, 5000, g4242, 2, 14 } };
static const struct who creator = { "create-listed 2001", { 2001, 2001, NULL, 0, 15 } };
static const struct who nobody = { "nobody", { 65534, 65534, NULL, 0, 16 } };
static const struct who root = { "root", { 0, 0, NULL, 0, 17 } };
static const struct who wheel = { "gid 0 member 6000", { 6000, 0, NULL, 0, 18 } };

#define S ACL_SUBSCRIBE
#define P ACL_PUBLISH
#define C ACL_CREATE
#define R ACL_REMOVE
#define ALL (S | P | C | R)

static void rights(const struct shmbusd_config *c, const char *topic, const struct who *w,
		   unsigned want)
{
	char why[1024];
	unsigned got = acl_rights(c, topic, &w->p, ALL, why, sizeof(why));
	if (got != want)
		FAIL("%s on '%s': rights %#x, wanted %#x (%s)", w->name, topic, got, want, why);
	if (got == ALL && why[0])
		FAIL("%s on '%s': all granted, but a reason: %s", w->name, topic, why);
	/* Each right alone is the same answer. */
	for (unsigned b = 1; b <= R; b <<= 1)
		if (acl_rights(c, topic, &w->p, b, NULL, 0) != (want & b))
			FAIL("%s on '%s': right %#x asked alone differs", w->name, topic, b);
}

static void why_has(const struct shmbusd_config *c, const char *topic, const struct who *w,
		    unsigned want, const char *const *needles)
{
	char why[1024];
	acl_rights(c, topic, &w->p, want, why, sizeof(why));
	for (; *needles; needles++)
		if (!strstr(why, *needles))
			FAIL("reason for %s on '%s' lacks '%s': %s", w->name, topic, *needles, why);
}

static void evaluate(const struct shmbusd_config *c)
{
	CHECK(c->access == SHMBUSD_ACCESS_BROKERED);
	CHECK(c->naccess == 5);
	static const char *const order[] = { "orders.special", "orders.>", "open.*", "wide.>",
					     "wide.narrow" };
	for (size_t i = 0; i < 5; i++)
		if (strcmp(c->access_rules[i].pattern, order[i]))
			FAIL("section %zu is '%s', wanted '%s'", i, c->access_rules[i].pattern,
			     order[i]);
	CHECK(c->access_rules[1].line == 10);

	/* orders.x: [access orders.>] owner 1000, group 3000, mode 0640, publish = uid:2000,
	 * gid:4242, create = uid:2001 */
	rights(c, "orders.x", &owner, S | P | R); /* not in create */
	rights(c, "orders.x", &listed, P);
	rights(c, "orders.x", &member, S);
	rights(c, "orders.x", &glisted, P);
	rights(c, "orders.x", &creator, C);
	rights(c, "orders.x", &nobody, 0);
	rights(c, "orders.x", &root, ALL);
	/* orders.special: its own section comes first: mode 0600, subscribe = uid:2000, no
	 * create list (so: the publishers) */
	rights(c, "orders.special", &owner, ALL);
	rights(c, "orders.special", &listed, S);
	rights(c, "orders.special", &member, 0);
	rights(c, "orders.special", &nobody, 0);
	/* open.*: the daemon's, mode 0666; one token only */
	rights(c, "open.a", &nobody, S | P | C);
	rights(c, "open.a", &listed, S | P | C);
	/* wide.> comes before wide.narrow, which therefore never applies */
	rights(c, "wide.narrow", &nobody, S | P | C);
	/* open.a.b: no section: owner the daemon (root here), group its egid (0), the bus mode
	 * (0660 by default) */
	rights(c, "open.a.b", &nobody, 0);
	rights(c, "open.a.b", &wheel, S | P | C);
	rights(c, "open.a.b", &root, ALL);

	char sect[700], user1000_owner[300];
	snprintf(user1000_owner, sizeof(user1000_owner), "owner %s, group 3000, mode 0640",
		 user1000);
	snprintf(sect, sizeof(sect), "[access orders.>] at %s:10: ", conf);
	const char *pub[] = { "uid 65534 (nobody) may not publish to 'orders.x' (", sect,
			      user1000_owner, "publish = uid:2000, gid:4242)", NULL };
	why_has(c, "orders.x", &nobody, P, pub);
	const char *two[] = { "may not subscribe to or publish to 'orders.x'", NULL };
	why_has(c, "orders.x", &nobody, S | P, two);
	char cre0[300];
	snprintf(cre0, sizeof(cre0), "uid 1000 (%s) may not create 'orders.x'", user1000);
	const char *cre[] = { cre0, "create = uid:2001", NULL };
	why_has(c, "orders.x", &owner, C, cre);
	const char *rem[] = { "may not remove 'orders.special'", "remove: the owner", NULL };
	why_has(c, "orders.special", &listed, R, rem);
	const char *none[] = { "no [access] section matches: owner root, group root, mode 0660",
			       NULL };
	why_has(c, "open.a.b", &nobody, S, none);

	uid_t u;
	gid_t g;
	mode_t m;
	acl_file_attrs(c, "orders.x", &u, &g, &m);
	if (u != 1000 || g != 3000 || m != 0640)
		FAIL("orders.x file: uid %u gid %u mode %04o", (unsigned)u, (unsigned)g,
		     (unsigned)m);
	acl_file_attrs(c, "open.a.b", &u, &g, &m);
	if (u != 0 || g != 0 || m != 0660)
		FAIL("open.a.b file: uid %u gid %u mode %04o", (unsigned)u, (unsigned)g,
		     (unsigned)m);
}

/* acl_apply_fd on a file of the private directory. */
static void apply(const struct shmbusd_config *c)
{
	char path[700], why[1024];
	snprintf(path, sizeof(path), "%s/f.topic", t_dir());
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	CHECK(fd >= 0);
	int rc = acl_apply_fd(c, "orders.x", fd, why, sizeof(why));
	if (rc == -EOPNOTSUPP) {
		printf("SKIP acl_apply_fd: %s has no POSIX ACLs (%s)\n", t_dir(), why);
		close(fd);
		return;
	}
	if (rc != 0)
		FAIL("acl_apply_fd orders.x: %d %s", rc, why);
	struct stat sb;
	CHECK(fstat(fd, &sb) == 0);
	/* The mode's group bits show the ACL mask (rw, for the named entries). */
	if (sb.st_uid != 1000 || sb.st_gid != 3000 || (sb.st_mode & 0707) != 0600)
		FAIL("orders.x file: uid %u gid %u mode %04o", (unsigned)sb.st_uid,
		     (unsigned)sb.st_gid, (unsigned)sb.st_mode & 07777);
	acl_t acl = acl_get_fd(fd);
	CHECK(acl);
	char *text = acl_to_any_text(acl, NULL, ',', TEXT_NUMERIC_IDS);
	CHECK(text);
	const char *want[] = { "user::rw-",	 "user:2000:rw-", "group::r--",
			       "group:4242:rw-", "mask::rw-",	  "other::---" };
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(text, want[i]))
			FAIL("orders.x ACL lacks %s: %s", want[i], text);
	acl_free(text);
	acl_free(acl);
	/* Another section without lists: the extended ACL goes. */
	CHECK_RC(acl_apply_fd(c, "open.a.b", fd, why, sizeof(why)), 0);
	CHECK(fstat(fd, &sb) == 0);
	if (sb.st_uid != 0 || (sb.st_mode & 0777) != 0660 || acl_extended_fd(fd) != 0)
		FAIL("open.a.b file: uid %u mode %04o extended %d", (unsigned)sb.st_uid,
		     (unsigned)sb.st_mode & 07777, acl_extended_fd(fd));
	close(fd);
}

int main(void)
{
	if (geteuid() != 0) {
		printf("SKIP: needs root (owners of other uids)\n");
		return T_SKIP;
	}
	t_private_dir("acl-config");
	snprintf(conf, sizeof(conf), "%s/shmbusd.conf", t_dir());
	errors();

	struct passwd *pw = getpwuid(1000);
	if (!pw) {
		printf("SKIP: no user with uid 1000 to own a section\n");
		return T_SKIP;
	}
	snprintf(user1000, sizeof(user1000), "%s", pw->pw_name);
	t_write(conf, good, user1000);
	struct shmbusd_config c;
	char err[2048];
	if (config_load(conf, &c, err, sizeof(err)) < 0) {
		fprintf(stderr, "FAIL: good config refused: %s\n", err);
		return 1;
	}
	evaluate(&c);
	apply(&c);

	acl_denied_event(NULL, "orders.x", &nobody.p, S | P, "a \"reason\"");
	const char *ev[] = { "access_denied {",
			     "\"topic\":\"orders.x\"",
			     "\"uid\":65534",
			     "\"pid\":16",
			     "\"want\":\"subscribe,publish\"",
			     "\"reason\":\"a \\\"reason\\\"\"" };
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
		if (!strstr(last_event, ev[i]))
			FAIL("access_denied event lacks %s: %s", ev[i], last_event);
	config_free(&c);

	/* Defaults: file mode, no sections. */
	CHECK_RC(config_load(NULL, &c, err, sizeof(err)), 0);
	CHECK(c.access == SHMBUSD_ACCESS_FILE && c.naccess == 0);
	config_free(&c);
	if (t_failures)
		return 1;
	printf("ok\n");
	return 0;
}
