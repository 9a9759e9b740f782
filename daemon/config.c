/* SPDX-License-Identifier: MIT */
#include "daemon/config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_ROOT "/dev/shm/shmbus"

int config_parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B') /* "64MiB", "64MB" read as 64M */
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -1;
	if (shift && v > (UINT64_MAX >> shift))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

int config_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v;
	if (config_parse_size(s, &v) < 0 || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int config_fail(struct config_ctx *x, const char *fmt, const char *a, const char *b)
{
	/* inih goes on after an error: keep the first. */
	if (!x->why_line) {
		snprintf(x->why, sizeof(x->why), fmt, a, b);
		x->why_line = x->line;
	}
	return 0; /* inih: an error on this line */
}

/* inih's reader: fgets that counts lines, so the handler knows where it is. */
static char *read_line(char *str, int num, void *stream)
{
	struct config_ctx *x = stream;
	char *r = fgets(str, num, x->f);
	if (!r)
		return r;
	x->line++;
	/* An indented line would be a continuation of the previous value to inih: this
	 * file format has none, so indentation is just indentation. */
	size_t skip = strspn(str, " \t");
	if (skip && str[skip] != '\n' && str[skip] != '\0')
		memmove(str, str + skip, strlen(str + skip) + 1);
	if (str[0] == '[')
		x->section_line = x->line;
	return r;
}

static int seen_twice(struct config_ctx *x, const char *section, const char *key)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s\n%s", section, key);
	for (size_t i = 0; i < x->nseen; i++)
		if (!strcmp(x->seen[i], buf))
			return 1;
	char **n = realloc(x->seen, (x->nseen + 1) * sizeof(*n));
	if (!n)
		return 1;
	x->seen = n;
	x->seen[x->nseen] = strdup(buf);
	if (!x->seen[x->nseen])
		return 1;
	x->nseen++;
	return 0;
}

void *config_find_or_append(void **arr, size_t *n, size_t size, size_t namelen, const char *name,
			    int *fresh)
{
	char *a = *arr;
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(a + i * size, name))
			return a + i * size;
	a = realloc(a, (*n + 1) * size);
	if (!a)
		return NULL;
	*arr = a;
	char *e = a + (*n)++ * size;
	memset(e, 0, size);
	snprintf(e, namelen, "%s", name);
	*fresh = 1;
	return e;
}

_Static_assert(offsetof(struct topic_decl, name) == 0, "config_find_or_append: name first");

static struct topic_decl *topic_for(struct config_ctx *x, const char *name)
{
	struct shmbusd_config *c = x->c;
	int fresh = 0;
	struct topic_decl *t = config_find_or_append((void **)&c->topics, &c->ntopics, sizeof(*t),
						     sizeof(t->name), name, &fresh);
	if (t && fresh)
		shmbus_topic_opts_init(&t->opts);
	return t;
}

static int bus_key(struct config_ctx *x, const char *key, const char *value)
{
	struct shmbusd_config *c = x->c;
	if (!strcmp(key, "name")) {
		if (shmbus_topic_name_check(value, 0) < 0 || strchr(value, '.'))
			return config_fail(x,
					   "bus name '%s' is not a valid token ([A-Za-z0-9_-]+)%s",
					   value, "");
		snprintf(c->bus, sizeof(c->bus), "%s", value);
	} else if (!strcmp(key, "dir")) {
		if (value[0] != '/')
			return config_fail(x, "dir '%s' is not an absolute path%s", value, "");
		if (strlen(value) >= sizeof(c->dir) - 200)
			return config_fail(x, "dir is too long (%.100s...)%s", value, "");
		snprintf(c->dir, sizeof(c->dir), "%s", value);
	} else if (!strcmp(key, "mode")) {
		char *end;
		errno = 0;
		unsigned long m = strtoul(value, &end, 8);
		if (errno || end == value || *end || m > 0777 || (m & 0600) != 0600)
			return config_fail(
				x,
				"mode '%s' is not an octal file mode with owner read and "
				"write (e.g. 0660)%s",
				value, "");
		c->mode = (mode_t)m;
	} else if (!strcmp(key, "group")) {
		struct group *g = getgrnam(value);
		if (!g)
			return config_fail(x, "group '%s' does not exist%s", value, "");
		c->gid = g->gr_gid;
		c->has_gid = 1;
	} else if (!strcmp(key, "log_capacity")) {
		uint64_t v;
		if (config_parse_size(value, &v) < 0 || v < 65536 || v > (1ull << 30) ||
		    (v & (v - 1)))
			return config_fail(
				x, "log_capacity '%s' is not a power of two from 64K to 1G%s",
				value, "");
		c->log_capacity = v;
	} else if (!strcmp(key, "access")) {
		if (!strcmp(value, "file"))
			c->access = SHMBUSD_ACCESS_FILE;
		else if (!strcmp(value, "brokered"))
			c->access = SHMBUSD_ACCESS_BROKERED;
		else
			return config_fail(x, "access '%s' is neither 'file' nor 'brokered'%s",
					   value, "");
	} else if (!strcmp(key, "log_file")) {
		/* Absolute: a detached daemon runs in /, and reopens it there on SIGHUP. */
		if (value[0] != '/')
			return config_fail(x, "log_file '%s' is not an absolute path%s", value, "");
		if (strlen(value) >= sizeof(c->log_file))
			return config_fail(x, "log_file is too long (%.100s...)%s", value, "");
		snprintf(c->log_file, sizeof(c->log_file), "%s", value);
	} else {
		return config_fail(x,
				   "unknown key '%s' in [bus] (known: name, dir, mode, group, "
				   "log_capacity, log_file, access)%s",
				   key, "");
	}
	return 1;
}

static int limits_key(struct config_ctx *x, const char *key, const char *value)
{
	struct shmbusd_config *c = x->c;
	if (!strcmp(key, "max_clients")) {
		if (config_parse_u32(value, 1, 100000, &c->max_clients) < 0)
			return config_fail(x, "max_clients '%s' is not a number from 1 to 100000%s",
					   value, "");
	} else if (!strcmp(key, "max_topics")) {
		if (config_parse_u32(value, 1, 100000, &c->max_topics) < 0)
			return config_fail(x, "max_topics '%s' is not a number from 1 to 100000%s",
					   value, "");
	} else if (!strcmp(key, "idle_timeout_ms")) {
		if (config_parse_u32(value, 10, 3600000, &c->idle_timeout_ms) < 0)
			return config_fail(x,
					   "idle_timeout_ms '%s' is not a number from 10 to "
					   "3600000%s",
					   value, "");
	} else if (!strcmp(key, "lag_alarm")) {
		const char *v = value;
		char buf[32];
		size_t n = strlen(v);
		if (n && n < sizeof(buf) && v[n - 1] == '%') {
			memcpy(buf, v, n - 1);
			buf[n - 1] = '\0';
			v = buf;
		}
		if (config_parse_u32(v, 0, 100, &c->lag_alarm_pct) < 0)
			return config_fail(x, "lag_alarm '%s' is not a percentage from 0 to 100%s",
					   value, "");
	} else {
		return config_fail(x,
				   "unknown key '%s' in [limits] (known: max_clients, max_topics, "
				   "idle_timeout_ms, lag_alarm)%s",
				   key, "");
	}
	return 1;
}

static int topic_key(struct config_ctx *x, const char *name, const char *key, const char *value)
{
	if (shmbus_topic_name_check(name, 0) < 0)
		return config_fail(x, "[topic %s]: %s", name, shmbus_errmsg());
	struct topic_decl *t = topic_for(x, name);
	if (!t)
		return config_fail(x, "out of memory%s%s", "", "");
	shmbus_topic_opts_t *o = &t->opts;
	uint64_t v;
	if (!strcmp(key, "capacity")) {
		if (config_parse_size(value, &v) < 0 || v < 4096 || (v & (v - 1)))
			return config_fail(x,
					   "capacity '%s' is not a power of two of at least 4K%s",
					   value, "");
		o->capacity = v;
	} else if (!strcmp(key, "max_message")) {
		if (config_parse_size(value, &v) < 0 || v > (1u << 30))
			return config_fail(x, "max_message '%s' is not a size up to 1G%s", value,
					   "");
		o->max_message = (uint32_t)v;
	} else if (!strcmp(key, "policy")) {
		if (!strcmp(value, "block"))
			o->policy = SHMBUS_BLOCK;
		else if (!strcmp(value, "overwrite"))
			o->policy = SHMBUS_OVERWRITE;
		else
			return config_fail(x, "policy '%s' is neither 'block' nor 'overwrite'%s",
					   value, "");
	} else if (!strcmp(key, "max_readers")) {
		if (config_parse_u32(value, 1, 4096, &o->max_readers) < 0)
			return config_fail(x, "max_readers '%s' is not a number from 1 to 4096%s",
					   value, "");
	} else if (!strcmp(key, "max_publishers")) {
		if (config_parse_u32(value, 1, 4096, &o->max_publishers) < 0)
			return config_fail(x,
					   "max_publishers '%s' is not a number from 1 to 4096%s",
					   value, "");
	} else if (!strcmp(key, "max_groups")) {
		if (config_parse_u32(value, 0, 1024, &o->max_groups) < 0)
			return config_fail(x, "max_groups '%s' is not a number from 0 to 1024%s",
					   value, "");
	} else if (!strcmp(key, "max_pending")) {
		if (config_parse_u32(value, 1, 65536, &o->max_pending) < 0)
			return config_fail(x, "max_pending '%s' is not a number from 1 to 65536%s",
					   value, "");
	} else {
		return config_fail(
			x,
			"unknown key '%s' in a [topic] section (known: capacity, "
			"max_message, policy, max_readers, max_publishers, max_groups, "
			"max_pending)%s",
			key, "");
	}
	return 1;
}

/* A decimal id, or -1. */
static long parse_id(const char *s)
{
	if (!*s || strlen(s) > 10 || strspn(s, "0123456789") != strlen(s))
		return -1;
	unsigned long v = strtoul(s, NULL, 10);
	/* (uid_t)-1 means "no change" to chown(): not an id anyone can have. */
	return v >= UINT32_MAX ? -1 : (long)v;
}

/* A user by name or number (*out), or -1. */
static int user_id(const char *s, uid_t *out)
{
	long v = parse_id(s);
	if (v >= 0) {
		*out = (uid_t)v;
		return 0;
	}
	struct passwd *pw = getpwnam(s);
	if (!pw)
		return -1;
	*out = pw->pw_uid;
	return 0;
}

static int group_id(const char *s, gid_t *out)
{
	long v = parse_id(s);
	if (v >= 0) {
		*out = (gid_t)v;
		return 0;
	}
	struct group *g = getgrnam(s);
	if (!g)
		return -1;
	*out = g->gr_gid;
	return 0;
}

/* "user:alice, group:staff uid:1001,gid:10" into l. 1, or config_fail()'s 0. */
static int parse_list(struct config_ctx *x, const char *key, const char *value, struct acl_list *l)
{
	l->set = 1;
	l->text = strdup(value);
	if (!l->text)
		return config_fail(x, "out of memory%s%s", "", "");
	const char *p = value;
	while (*p) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (!n)
			break;
		char tok[256];
		if (n >= sizeof(tok))
			return config_fail(x, "%s: principal '%.100s...' is too long", key, p);
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += n;
		char *colon = strchr(tok, ':');
		if (!colon || !colon[1])
			return config_fail(x,
					   "%s: '%s' is not a principal (user:NAME, group:NAME, "
					   "uid:N or gid:N)",
					   key, tok);
		*colon = '\0';
		const char *kind = tok, *what = colon + 1;
		struct acl_principal pr = { .is_group = !strcmp(kind, "group") ||
							!strcmp(kind, "gid") };
		int ok, number = !strcmp(kind, "uid") || !strcmp(kind, "gid");
		if (number) {
			long v = parse_id(what);
			ok = v >= 0;
			pr.id = (uint32_t)v;
		} else if (!strcmp(kind, "user")) {
			uid_t u = 0;
			ok = user_id(what, &u) == 0;
			pr.id = u;
		} else if (!strcmp(kind, "group")) {
			gid_t g = 0;
			ok = group_id(what, &g) == 0;
			pr.id = g;
		} else {
			*colon = ':';
			return config_fail(x,
					   "%s: '%s' is not a principal (user:NAME, group:NAME, "
					   "uid:N or gid:N)",
					   key, tok);
		}
		if (!ok) {
			/* key and kind are words of ours: safe in a format */
			char fmt[320];
			snprintf(fmt, sizeof(fmt), "%s: %s '%%s' %s%%s", key, kind,
				 number ? "is not a number" : "does not exist");
			return config_fail(x, fmt, what, "");
		}
		struct acl_principal *np = realloc(l->p, (l->n + 1) * sizeof(*np));
		if (!np)
			return config_fail(x, "out of memory%s%s", "", "");
		l->p = np;
		l->p[l->n++] = pr;
	}
	return 1;
}

static int access_key(struct config_ctx *x, const char *pattern, const char *key, const char *value)
{
	struct shmbusd_config *c = x->c;
	char why[256];
	if (br_pattern_check(pattern, why, sizeof(why)) < 0)
		return config_fail(x, "[access %s]: %s", pattern, why);
	if (!strncmp(pattern, "$sys.", 5))
		return config_fail(x,
				   "[access %s]: the bus's own topics ($sys.*) keep the daemon's "
				   "access%s",
				   pattern, "");
	int fresh = 0;
	struct access_decl *a = config_find_or_append((void **)&c->access_rules, &c->naccess,
						      sizeof(*a), sizeof(a->pattern), pattern,
						      &fresh);
	if (!a)
		return config_fail(x, "out of memory%s%s", "", "");
	if (fresh)
		a->line = x->section_line ? x->section_line : x->line;
	if (!strcmp(key, "owner")) {
		if (user_id(value, &a->owner) < 0)
			return config_fail(x, "owner: user '%s' does not exist%s", value, "");
		a->has_owner = 1;
	} else if (!strcmp(key, "group")) {
		if (group_id(value, &a->group) < 0)
			return config_fail(x, "group: group '%s' does not exist%s", value, "");
		a->has_group = 1;
	} else if (!strcmp(key, "mode")) {
		char *end;
		errno = 0;
		unsigned long m = strtoul(value, &end, 8);
		if (errno || end == value || *end || !isdigit((unsigned char)value[0]) ||
		    (m & ~0666ul) || (m & 0600) != 0600)
			return config_fail(x,
					   "mode '%s' is not an octal mode of r and w bits with "
					   "owner read and write (e.g. 0640)%s",
					   value, "");
		a->mode = (mode_t)m;
		a->has_mode = 1;
	} else if (!strcmp(key, "publish")) {
		return parse_list(x, key, value, &a->publish);
	} else if (!strcmp(key, "subscribe")) {
		return parse_list(x, key, value, &a->subscribe);
	} else if (!strcmp(key, "create")) {
		return parse_list(x, key, value, &a->create);
	} else {
		return config_fail(x,
				   "unknown key '%s' in an [access] section (known: owner, group, "
				   "mode, publish, subscribe, create)%s",
				   key, "");
	}
	return 1;
}

static const char sections_help[] = "sections: [bus], [limits], [topic NAME], [access PATTERN], "
				    "[mirror NAME], [import NAME], [websocket]";

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct config_ctx *x = user;
	/* [topic a] and [topic  a] are one section (and so for mirror, import). */
	char canon[SHMBUS_TOPIC_NAME_MAX + 16];
	const char *name = NULL;
	static const char *const named[] = { "topic ", "mirror ", "import ", "access " };
	snprintf(canon, sizeof(canon), "%s", section);
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		size_t n = strlen(named[i]);
		if (!strncmp(section, named[i], n)) {
			name = section + n + strspn(section + n, " ");
			snprintf(canon, sizeof(canon), "%s%s", named[i], name);
		}
	}
	if (seen_twice(x, canon, key))
		return config_fail(x, "'%s' is set twice in [%s]", key, canon);
	if (!strcmp(section, "bus"))
		return bus_key(x, key, value);
	if (!strcmp(section, "limits"))
		return limits_key(x, key, value);
	if (!strncmp(section, "topic ", 6))
		return topic_key(x, name, key, value);
	if (!strncmp(section, "access ", 7))
		return access_key(x, name, key, value);
	if (!strncmp(section, "mirror ", 7) || !strncmp(section, "import ", 7) ||
	    !strcmp(section, "websocket"))
		return bridge_config_key(x, canon, name, key, value);
	if (!*section)
		return config_fail(x, "'%s' is outside any section (%s)", key, sections_help);
	return config_fail(x, "unknown section [%s] (%s)", section, sections_help);
}

static void defaults(struct shmbusd_config *c)
{
	memset(c, 0, sizeof(*c));
	const char *root = getenv("SHMBUS_DIR");
	const char *bus = getenv("SHMBUS_BUS");
	snprintf(c->dir, sizeof(c->dir), "%s", root && root[0] == '/' ? root : DEFAULT_ROOT);
	snprintf(c->bus, sizeof(c->bus), "%s", bus && *bus ? bus : "default");
	c->mode = 0660;
	c->log_capacity = 1u << 20;
	c->max_clients = 1024;
	c->max_topics = 1024;
	c->idle_timeout_ms = 5000;
	c->lag_alarm_pct = 90;
	bridge_config_defaults(c);
}

int config_load(const char *path, struct shmbusd_config *c, char *err, size_t errlen)
{
	defaults(c);
	if (!path)
		return 0;
	snprintf(c->path, sizeof(c->path), "%s", path);
	FILE *f = fopen(path, "re");
	struct stat sb;
	if (f && fstat(fileno(f), &sb) == 0 && !S_ISREG(sb.st_mode)) {
		fclose(f);
		f = NULL;
		errno = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
	}
	if (!f) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		config_free(c);
		return -1;
	}
	struct config_ctx x = { .c = c, .f = f };
	int line = ini_parse_stream(read_line, &x, handler, &x);
	int read_error = ferror(f);
	fclose(f);
	if (read_error) {
		snprintf(err, errlen, "%s: read error", path);
		for (size_t i = 0; i < x.nseen; i++)
			free(x.seen[i]);
		free(x.seen);
		config_free(c);
		return -1;
	}
	/* inih reports the first line with an error of either kind; ours has a reason. */
	if (line > 0 && x.why_line && x.why_line != line)
		x.why[0] = '\0';
	for (size_t i = 0; i < x.nseen; i++)
		free(x.seen[i]);
	free(x.seen);
	if (line != 0) {
		if (line < 0)
			snprintf(err, errlen, "%s: out of memory while reading", path);
		else if (x.why[0])
			snprintf(err, errlen, "%s:%d: %s", path, line, x.why);
		else
			snprintf(err, errlen,
				 "%s:%d: syntax error (expected '[section]', "
				 "'key = value' or a comment)",
				 path, line);
		config_free(c);
		return -1;
	}
	if (bridge_config_check(c, err, errlen) < 0) {
		config_free(c);
		return -1;
	}
	return 0;
}

static void list_free(struct acl_list *l)
{
	free(l->p);
	free(l->text);
}

void config_free(struct shmbusd_config *c)
{
	for (size_t i = 0; i < c->naccess; i++) {
		list_free(&c->access_rules[i].publish);
		list_free(&c->access_rules[i].subscribe);
		list_free(&c->access_rules[i].create);
	}
	free(c->access_rules);
	c->access_rules = NULL;
	c->naccess = 0;
	free(c->topics);
	c->topics = NULL;
	c->ntopics = 0;
	bridge_config_free(c);
}
