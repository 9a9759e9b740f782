/* SPDX-License-Identifier: MIT */
#include "daemon/acl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/shmbusd.h"

/* What decides for one topic: its section (NULL: none matched) and the defaults filled in. */
struct rule {
	const struct access_decl *a;
	uid_t owner;
	gid_t group;
	mode_t mode;
};

static void resolve(const struct shmbusd_config *c, const char *topic, struct rule *r)
{
	r->a = NULL;
	for (size_t i = 0; i < c->naccess && !r->a; i++)
		if (br_pattern_match(c->access_rules[i].pattern, topic))
			r->a = &c->access_rules[i];
	const struct access_decl *a = r->a;
	r->owner = a && a->has_owner ? a->owner : geteuid();
	r->group = a && a->has_group ? a->group : c->has_gid ? c->gid : getegid();
	r->mode = a && a->has_mode ? a->mode : c->mode & 0666;
}

void acl_file_attrs(const struct shmbusd_config *c, const char *topic, uid_t *owner, gid_t *group,
		    mode_t *mode)
{
	struct rule r;
	resolve(c, topic, &r);
	*owner = r.owner;
	*group = r.group;
	*mode = r.mode | 0600;
}

static int in_group(const struct acl_peer *p, gid_t g)
{
	if (p->gid == g)
		return 1;
	for (int i = 0; i < p->ngroups; i++)
		if (p->groups[i] == g)
			return 1;
	return 0;
}

static int listed(const struct acl_list *l, const struct acl_peer *p)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->p[i].is_group ? in_group(p, (gid_t)l->p[i].id) : p->uid == l->p[i].id)
			return 1;
	return 0;
}

/* Appends to a bounded buffer, truncating quietly. */
struct out {
	char *s;
	size_t len, at;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	if (!o->s || o->at + 1 >= o->len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->s + o->at, o->len - o->at, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->at = o->at + (size_t)n < o->len ? o->at + (size_t)n : o->len - 1;
}

static const char *user_name(uid_t u, char *buf, size_t len)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r(u, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "%s", pw.pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)u);
	return buf;
}

static const char *group_name(gid_t g, char *buf, size_t len)
{
	struct group gr, *res = NULL;
	char tmp[4096];
	if (getgrgid_r(g, &gr, tmp, sizeof(tmp), &res) == 0 && res)
		snprintf(buf, len, "%s", gr.gr_name);
	else
		snprintf(buf, len, "%u", (unsigned)g);
	return buf;
}

static const char *const verbs[] = { "subscribe to", "publish to", "create", "remove" };
static const char *const words[] = { "subscribe", "publish", "create", "remove" };

static void explain(const struct shmbusd_config *c, const char *topic, const struct acl_peer *p,
		    const struct rule *r, unsigned refused, char *why, size_t whylen)
{
	struct out o = { why, whylen, 0 };
	char name[256];
	struct passwd pw, *res = NULL;
	char tmp[1024];
	put(&o, "uid %u", (unsigned)p->uid);
	if (getpwuid_r(p->uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
		put(&o, " (%s)", pw.pw_name);
	put(&o, " may not");
	const char *sep = " ";
	for (unsigned i = 0; i < 4; i++) {
		if (refused & (1u << i)) {
			put(&o, "%s%s", sep, verbs[i]);
			sep = " or ";
		}
	}
	put(&o, " '%s' (", topic);
	const struct access_decl *a = r->a;
	if (a)
		put(&o, "[access %s] at %s:%d: ", a->pattern, c->path[0] ? c->path : "defaults",
		    a->line);
	else
		put(&o, "no [access] section matches: ");
	put(&o, "owner %s", user_name(r->owner, name, sizeof(name)));
	put(&o, ", group %s, mode %04o", group_name(r->group, name, sizeof(name)),
	    (unsigned)r->mode);
	if (a && (refused & ACL_SUBSCRIBE) && a->subscribe.set)
		put(&o, ", subscribe = %s", a->subscribe.text);
	if (a && (refused & (ACL_PUBLISH | ACL_CREATE)) && a->publish.set)
		put(&o, ", publish = %s", a->publish.text);
	if (refused & ACL_CREATE) {
		if (a && a->create.set)
			put(&o, ", create = %s", a->create.text);
		else
			put(&o, ", create: those who may publish");
	}
	if (refused & ACL_REMOVE)
		put(&o, ", remove: the owner");
	put(&o, ")");
}

unsigned acl_rights(const struct shmbusd_config *c, const char *topic, const struct acl_peer *p,
		    unsigned want, char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	if (p->uid == 0 || p->uid == geteuid())
		return want;
	struct rule r;
	resolve(c, topic, &r);
	const struct access_decl *a = r.a;
	unsigned bits, got = 0;
	if (p->uid == r.owner)
		bits = (r.mode >> 6) & 7;
	else if (in_group(p, r.group))
		bits = (r.mode >> 3) & 7;
	else
		bits = r.mode & 7;
	if ((bits & 4) || (a && listed(&a->subscribe, p)))
		got |= ACL_SUBSCRIBE;
	if ((bits & 2) || (a && listed(&a->publish, p)))
		got |= ACL_PUBLISH;
	if (a && a->create.set ? listed(&a->create, p) : (got & ACL_PUBLISH) != 0)
		got |= ACL_CREATE;
	if (p->uid == r.owner)
		got |= ACL_REMOVE;
	got &= want;
	if (got != want && why && whylen)
		explain(c, topic, p, &r, want & ~got, why, whylen);
	return got;
}

/* Named entries u:ID:rw- / g:ID:rw- for the lists, each once (acl_valid refuses twins). */
static void add_entries(struct out *o, const struct acl_list *l, const struct acl_list *before,
			int *named)
{
	for (size_t i = 0; i < l->n; i++) {
		int twin = 0;
		for (size_t j = 0; j < i && !twin; j++)
			twin = l->p[j].is_group == l->p[i].is_group && l->p[j].id == l->p[i].id;
		for (size_t j = 0; before && j < before->n && !twin; j++)
			twin = before->p[j].is_group == l->p[i].is_group &&
			       before->p[j].id == l->p[i].id;
		if (twin)
			continue;
		put(o, ",%c:%u:rw-", l->p[i].is_group ? 'g' : 'u', (unsigned)l->p[i].id);
		(*named)++;
	}
}

static const char *rw(unsigned bits)
{
	static const char *const s[] = { "---", "---", "-w-", "-w-", "r--", "r--", "rw-", "rw-" };
	return s[bits & 7];
}

int acl_apply_fd(const struct shmbusd_config *c, const char *topic, int fd, char *why,
		 size_t whylen)
{
	struct rule r;
	resolve(c, topic, &r);
	mode_t mode = r.mode | 0600;
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		snprintf(why, whylen, "fstat: %s", strerror(e));
		return -e;
	}
	/* Only when it differs: a daemon that is not root may still set the mode and ACL of
	 * its own files. */
	if ((sb.st_uid != r.owner || sb.st_gid != r.group) && fchown(fd, r.owner, r.group) < 0) {
		int e = errno;
		snprintf(why, whylen, "chown to uid %u gid %u: %s", (unsigned)r.owner,
			 (unsigned)r.group, strerror(e));
		return -e;
	}
	if (fchmod(fd, mode) < 0) {
		int e = errno;
		snprintf(why, whylen, "chmod %04o: %s", (unsigned)mode, strerror(e));
		return -e;
	}
	/* The whole ACL every time: entries of an earlier config go, and a minimal one (no
	 * lists) drops the extended ACL altogether. The mask is the union of the group class,
	 * so the mode's group bits (ls -l) show rw when there are named entries: the owning
	 * group's own bits are in its g:: entry. */
	size_t n = 64 + 24 * (r.a ? r.a->publish.n + r.a->subscribe.n : 0);
	char *text = malloc(n);
	if (!text) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	struct out o = { text, n, 0 };
	int named = 0;
	put(&o, "u::rw-,g::%s,o::%s", rw((unsigned)mode >> 3), rw((unsigned)mode));
	if (r.a) {
		add_entries(&o, &r.a->publish, NULL, &named);
		add_entries(&o, &r.a->subscribe, &r.a->publish, &named);
	}
	if (named)
		put(&o, ",m::rw-");
	acl_t acl = acl_from_text(text);
	int rc = 0;
	if (!acl || acl_valid(acl) < 0) {
		rc = -EINVAL;
		snprintf(why, whylen, "ACL '%.900s' is not valid", text);
	} else if (acl_set_fd(fd, acl) < 0) {
		int e = errno;
		/* Without lists the mode says it all; a filesystem without ACLs is no loss. */
		if (named || (e != EOPNOTSUPP && e != ENOTSUP)) {
			rc = -e;
			snprintf(why, whylen, "setting ACL %.900s: %s%s", text, strerror(e),
				 e == EOPNOTSUPP ? " (the filesystem has no POSIX ACLs: the "
						   "publish and subscribe lists cannot apply)" :
						   "");
		}
	}
	if (acl)
		acl_free(acl);
	free(text);
	return rc;
}

/* Is the file's second link the library's temporary name for it (between its linkat() and
 * its unlinkat())? Any other second link may be someone else's file, handed to us to
 * chown. */
static int tmp_twin(int dirfd, const char *topic, ino_t ino)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	size_t tl = strlen(topic);
	int found = 0;
	for (struct dirent *e; !found && (e = readdir(dir));) {
		size_t n = strlen(e->d_name);
		found = e->d_ino == ino && e->d_name[0] == '.' && n > tl + 5 &&
			!strncmp(e->d_name + 1, topic, tl) && e->d_name[tl + 1] == '.' &&
			!strcmp(e->d_name + n - 4, ".tmp");
	}
	closedir(dir);
	return found;
}

static int apply_at(struct daemon *d, const struct shmbusd_config *c, int dirfd, const char *fname)
{
	size_t n = strlen(fname);
	if (fname[0] == '.' || n <= 6 || strcmp(fname + n - 6, ".topic") ||
	    !strncmp(fname, "$sys.", 5) || n - 6 > SHMBUS_TOPIC_NAME_MAX)
		return 0;
	char topic[SHMBUS_TOPIC_NAME_MAX + 1], why[1024] = "";
	memcpy(topic, fname, n - 6);
	topic[n - 6] = '\0';
	int fd = openat(dirfd, fname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat sb;
	int rc = 0;
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			return 0; /* removed meanwhile: nothing to protect */
		snprintf(why, sizeof(why), "%s",
			 rc == -ELOOP ? "a symlink: left as is" : strerror(-rc));
	} else if (fstat(fd, &sb) < 0) {
		rc = -errno;
		snprintf(why, sizeof(why), "fstat: %s", strerror(-rc));
	} else if (!S_ISREG(sb.st_mode)) {
		rc = -EINVAL;
		snprintf(why, sizeof(why), "not a regular file (mode %06o): left as is",
			 (unsigned)sb.st_mode);
	} else if (sb.st_nlink > 1 && !(sb.st_nlink == 2 && tmp_twin(dirfd, topic, sb.st_ino))) {
		/* Re-read: the library's unlink of its temporary name may have come meanwhile. */
		if (fstat(fd, &sb) < 0 || sb.st_nlink != 1) {
			rc = -EMLINK;
			snprintf(why, sizeof(why),
				 "%u hard links: left as is (a link to another file would hand "
				 "that file over)",
				 (unsigned)sb.st_nlink);
		}
	}
	if (!rc)
		rc = acl_apply_fd(c, topic, fd, why, sizeof(why));
	if (fd >= 0)
		close(fd);
	if (rc < 0) {
		char esc[2 * SHMBUS_TOPIC_NAME_MAX + 2], wesc[2 * sizeof(why)];
		event(d, "access_failed", "\"topic\":\"%s\",\"error\":\"%s\"",
		      json_str(esc, sizeof(esc), topic), json_str(wesc, sizeof(wesc), why));
	}
	return rc;
}

int acl_apply_file(struct daemon *d, const struct shmbusd_config *c, const char *fname)
{
	int dirfd = open(d->bus_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	int rc = apply_at(d, c, dirfd, fname);
	close(dirfd);
	return rc;
}

void acl_apply_all(struct daemon *d)
{
	if (d->cfg.access != SHMBUSD_ACCESS_FILE)
		return;
	int dirfd = open(d->bus_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		close(dirfd);
		return;
	}
	for (struct dirent *e; (e = readdir(dir));)
		apply_at(d, &d->cfg, dirfd, e->d_name);
	closedir(dir);
	close(dirfd);
}

void acl_denied_event(struct daemon *d, const char *topic, const struct acl_peer *p, unsigned want,
		      const char *why)
{
	char esc[2 * SHMBUS_TOPIC_NAME_MAX + 2], wesc[4096], what[64] = "";
	struct out o = { what, sizeof(what), 0 };
	for (unsigned i = 0; i < 4; i++)
		if (want & (1u << i))
			put(&o, "%s%s", o.at ? "," : "", words[i]);
	event(d, "access_denied",
	      "\"topic\":\"%s\",\"uid\":%u,\"pid\":%d,\"want\":\"%s\",\"reason\":\"%s\"",
	      json_str(esc, sizeof(esc), topic), (unsigned)p->uid, (int)p->pid, what,
	      json_str(wesc, sizeof(wesc), why ? why : ""));
}
