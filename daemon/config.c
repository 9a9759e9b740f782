/* SPDX-License-Identifier: MIT */
#include "daemon/config.h"

#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define DEFAULT_ROOT "/dev/shm/shmbus"

struct ctx {
	struct shmbusd_config *c;
	FILE *f;
	int line;     /* lines read so far (the handler is called for the last one) */
	int why_line; /* where why was found, 0 if nowhere */
	char why[1024];
	/* keys seen, to refuse one set twice: "section\nkey" */
	char **seen;
	size_t nseen;
};

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

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v;
	if (config_parse_size(s, &v) < 0 || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int fail(struct ctx *x, const char *fmt, const char *a, const char *b)
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
	struct ctx *x = stream;
	char *r = fgets(str, num, x->f);
	if (!r)
		return r;
	x->line++;
	/* An indented line would be a continuation of the previous value to inih: this
	 * file format has none, so indentation is just indentation. */
	size_t skip = strspn(str, " \t");
	if (skip && str[skip] != '\n' && str[skip] != '\0')
		memmove(str, str + skip, strlen(str + skip) + 1);
	return r;
}

static int seen_twice(struct ctx *x, const char *section, const char *key)
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

static struct topic_decl *topic_for(struct ctx *x, const char *name)
{
	struct shmbusd_config *c = x->c;
	for (size_t i = 0; i < c->ntopics; i++)
		if (!strcmp(c->topics[i].name, name))
			return &c->topics[i];
	struct topic_decl *t = realloc(c->topics, (c->ntopics + 1) * sizeof(*t));
	if (!t)
		return NULL;
	c->topics = t;
	t = &c->topics[c->ntopics++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	shmbus_topic_opts_init(&t->opts);
	return t;
}

static int bus_key(struct ctx *x, const char *key, const char *value)
{
	struct shmbusd_config *c = x->c;
	if (!strcmp(key, "name")) {
		if (shmbus_topic_name_check(value, 0) < 0 || strchr(value, '.'))
			return fail(x, "bus name '%s' is not a valid token ([A-Za-z0-9_-]+)%s",
				    value, "");
		snprintf(c->bus, sizeof(c->bus), "%s", value);
	} else if (!strcmp(key, "dir")) {
		if (value[0] != '/')
			return fail(x, "dir '%s' is not an absolute path%s", value, "");
		if (strlen(value) >= sizeof(c->dir) - 200)
			return fail(x, "dir is too long (%.100s...)%s", value, "");
		snprintf(c->dir, sizeof(c->dir), "%s", value);
	} else if (!strcmp(key, "mode")) {
		char *end;
		errno = 0;
		unsigned long m = strtoul(value, &end, 8);
		if (errno || end == value || *end || m > 0777 || (m & 0600) != 0600)
			return fail(x, "mode '%s' is not an octal file mode with owner read and "
				       "write (e.g. 0660)%s",
				    value, "");
		c->mode = (mode_t)m;
	} else if (!strcmp(key, "group")) {
		struct group *g = getgrnam(value);
		if (!g)
			return fail(x, "group '%s' does not exist%s", value, "");
		c->gid = g->gr_gid;
		c->has_gid = 1;
	} else if (!strcmp(key, "log_capacity")) {
		uint64_t v;
		if (config_parse_size(value, &v) < 0 || v < 65536 || v > (1ull << 30) ||
		    (v & (v - 1)))
			return fail(x, "log_capacity '%s' is not a power of two from 64K to 1G%s",
				    value, "");
		c->log_capacity = v;
	} else if (!strcmp(key, "log_file")) {
		/* Absolute: a detached daemon runs in /, and reopens it there on SIGHUP. */
		if (value[0] != '/')
			return fail(x, "log_file '%s' is not an absolute path%s", value, "");
		if (strlen(value) >= sizeof(c->log_file))
			return fail(x, "log_file is too long (%.100s...)%s", value, "");
		snprintf(c->log_file, sizeof(c->log_file), "%s", value);
	} else {
		return fail(x, "unknown key '%s' in [bus] (known: name, dir, mode, group, "
			       "log_capacity, log_file)%s",
			    key, "");
	}
	return 1;
}

static int limits_key(struct ctx *x, const char *key, const char *value)
{
	struct shmbusd_config *c = x->c;
	if (!strcmp(key, "max_clients")) {
		if (parse_u32(value, 1, 100000, &c->max_clients) < 0)
			return fail(x, "max_clients '%s' is not a number from 1 to 100000%s", value,
				    "");
	} else if (!strcmp(key, "max_topics")) {
		if (parse_u32(value, 1, 100000, &c->max_topics) < 0)
			return fail(x, "max_topics '%s' is not a number from 1 to 100000%s", value,
				    "");
	} else if (!strcmp(key, "idle_timeout_ms")) {
		if (parse_u32(value, 10, 3600000, &c->idle_timeout_ms) < 0)
			return fail(x, "idle_timeout_ms '%s' is not a number from 10 to "
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
		if (parse_u32(v, 0, 100, &c->lag_alarm_pct) < 0)
			return fail(x, "lag_alarm '%s' is not a percentage from 0 to 100%s", value,
				    "");
	} else {
		return fail(x, "unknown key '%s' in [limits] (known: max_clients, max_topics, "
			       "idle_timeout_ms, lag_alarm)%s",
			    key, "");
	}
	return 1;
}

static int topic_key(struct ctx *x, const char *name, const char *key, const char *value)
{
	if (shmbus_topic_name_check(name, 0) < 0)
		return fail(x, "[topic %s]: %s", name, shmbus_errmsg());
	struct topic_decl *t = topic_for(x, name);
	if (!t)
		return fail(x, "out of memory%s%s", "", "");
	shmbus_topic_opts_t *o = &t->opts;
	uint64_t v;
	if (!strcmp(key, "capacity")) {
		if (config_parse_size(value, &v) < 0 || v < 4096 || (v & (v - 1)))
			return fail(x, "capacity '%s' is not a power of two of at least 4K%s", value,
				    "");
		o->capacity = v;
	} else if (!strcmp(key, "max_message")) {
		if (config_parse_size(value, &v) < 0 || v > (1u << 30))
			return fail(x, "max_message '%s' is not a size up to 1G%s", value, "");
		o->max_message = (uint32_t)v;
	} else if (!strcmp(key, "policy")) {
		if (!strcmp(value, "block"))
			o->policy = SHMBUS_BLOCK;
		else if (!strcmp(value, "overwrite"))
			o->policy = SHMBUS_OVERWRITE;
		else
			return fail(x, "policy '%s' is neither 'block' nor 'overwrite'%s", value,
				    "");
	} else if (!strcmp(key, "max_readers")) {
		if (parse_u32(value, 1, 4096, &o->max_readers) < 0)
			return fail(x, "max_readers '%s' is not a number from 1 to 4096%s", value,
				    "");
	} else if (!strcmp(key, "max_publishers")) {
		if (parse_u32(value, 1, 4096, &o->max_publishers) < 0)
			return fail(x, "max_publishers '%s' is not a number from 1 to 4096%s", value,
				    "");
	} else if (!strcmp(key, "max_groups")) {
		if (parse_u32(value, 0, 1024, &o->max_groups) < 0)
			return fail(x, "max_groups '%s' is not a number from 0 to 1024%s", value,
				    "");
	} else {
		return fail(x,
			    "unknown key '%s' in a [topic] section (known: capacity, "
			    "max_message, policy, max_readers, max_publishers, max_groups)%s",
			    key, "");
	}
	return 1;
}

/* ---- the bridge's sections ---- */

/* Append "section\nkey=value\n" to the bridge text (reload compares it). */
static void bridge_note(struct ctx *x, const char *section, const char *key, const char *value)
{
	struct shmbusd_config *c = x->c;
	size_t add = strlen(section) + strlen(key) + strlen(value) + 4;
	char *n = realloc(c->bridge_text, c->bridge_len + add);
	if (!n)
		return;
	c->bridge_text = n;
	c->bridge_len +=
		(size_t)snprintf(n + c->bridge_len, add, "%s\n%s=%s\n", section, key, value);
}

static int parse_bool(const char *v, int *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
		*out = 1;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
		*out = 0;
	else
		return -1;
	return 0;
}

/* A list of topic patterns separated by commas and/or spaces. */
static int parse_patterns(struct ctx *x, const char *key, const char *value,
			  struct br_patterns *out)
{
	out->n = 0;
	const char *p = value;
	for (;;) {
		p += strspn(p, ", \t");
		if (!*p)
			break;
		size_t n = strcspn(p, ", \t");
		if (out->n == BR_PATTERNS_MAX)
			return fail(x, "%s: more than 32 patterns%s", key, "");
		if (n > SHMBUS_TOPIC_NAME_MAX)
			return fail(x, "%s: pattern '%.60s...' is too long", key, p);
		char *d = out->p[out->n];
		memcpy(d, p, n);
		d[n] = '\0';
		char why[256];
		if (br_pattern_check(d, why, sizeof(why)) < 0)
			return fail(x, "%s: %s", key, why);
		out->n++;
		p += n;
	}
	if (!out->n)
		return fail(x, "%s: no topic pattern given%s", key, "");
	return 1;
}

static int parse_ms(struct ctx *x, const char *key, const char *value, uint32_t lo, uint32_t hi,
		    uint32_t *out)
{
	if (parse_u32(value, lo, hi, out) < 0) {
		char range[64];
		snprintf(range, sizeof(range), "from %u to %u", lo, hi);
		return fail(x, "%s: not a number %s", key, range);
	}
	return 1;
}

static int timing_key(struct ctx *x, const char *key, const char *value, struct br_timing *t)
{
	if (!strcmp(key, "connect_timeout_ms"))
		return parse_ms(x, key, value, 10, 600000, &t->connect_timeout_ms);
	if (!strcmp(key, "timeout_ms"))
		return parse_ms(x, key, value, 10, 3600000, &t->timeout_ms);
	if (!strcmp(key, "backoff_min_ms"))
		return parse_ms(x, key, value, 1, 600000, &t->backoff_min_ms);
	if (!strcmp(key, "backoff_max_ms"))
		return parse_ms(x, key, value, 1, 3600000, &t->backoff_max_ms);
	return -1;
}

static void timing_defaults(struct br_timing *t)
{
	t->connect_timeout_ms = 2000;
	t->timeout_ms = 5000;
	t->backoff_min_ms = 100;
	t->backoff_max_ms = 5000;
}

static int bridge_name_check(struct ctx *x, const char *kind, const char *name)
{
	if (shmbus_topic_name_check(name, 0) < 0 || strchr(name, '.') || strlen(name) > BR_NAME_MAX)
		return fail(x,
			    "[%s %s]: the name must be one token ([A-Za-z0-9_-], at most 40 "
			    "bytes)",
			    kind, name);
	return 1;
}

enum {
	MK_TOPICS = 1u << 0,
	MK_TO = 1u << 1,
	MK_MODE = 1u << 2,
	MK_KEY = 1u << 3,
	MK_MAXLEN = 1u << 4,
	MK_USER = 1u << 5,
	MK_PASSWORD = 1u << 6,
	MK_FORMAT = 1u << 7,
	MK_ACK = 1u << 8,
};

static struct mirror_decl *mirror_for(struct ctx *x, const char *name)
{
	struct shmbusd_config *c = x->c;
	for (size_t i = 0; i < c->nmirrors; i++)
		if (!strcmp(c->mirrors[i].name, name))
			return &c->mirrors[i];
	struct mirror_decl *m = realloc(c->mirrors, (c->nmirrors + 1) * sizeof(*m));
	if (!m)
		return NULL;
	c->mirrors = m;
	m = &c->mirrors[c->nmirrors++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->line = x->line;
	snprintf(m->key, sizeof(m->key), "{topic}");
	m->window = 1024;
	m->hold_ms = 10000;
	timing_defaults(&m->timing);
	return m;
}

static int mirror_key(struct ctx *x, const char *name, const char *key, const char *value)
{
	int rc = bridge_name_check(x, "mirror", name);
	if (rc != 1)
		return rc;
	struct mirror_decl *m = mirror_for(x, name);
	if (!m)
		return fail(x, "out of memory%s%s", "", "");
	char why[512];
	if (!strcmp(key, "topics")) {
		m->set |= MK_TOPICS;
		return parse_patterns(x, key, value, &m->topics);
	} else if (!strcmp(key, "to")) {
		if (br_url_parse(value, 0, &m->to, why, sizeof(why)) < 0)
			return fail(x, "to: %s%s", why, "");
		m->has_to = 1;
		m->set |= MK_TO;
	} else if (!strcmp(key, "mode")) {
		if (!strcmp(value, "stream"))
			m->mode = BR_MODE_STREAM;
		else if (!strcmp(value, "pubsub"))
			m->mode = BR_MODE_PUBSUB;
		else
			return fail(x, "mode '%s' is neither 'stream' nor 'pubsub'%s", value, "");
		m->set |= MK_MODE;
	} else if (!strcmp(key, "key")) {
		if (!*value || strlen(value) >= sizeof(m->key))
			return fail(x, "key: empty or longer than 255 bytes%s%s", "", "");
		for (const char *p = value; *p; p++) {
			if (*p == '{' && strncmp(p, "{topic}", 7))
				return fail(x, "key '%s': the only placeholder is {topic}%s", value,
					    "");
			if (*p == '{')
				p += 6;
			else if (*p == '}' || (unsigned char)*p < 0x20)
				return fail(x, "key '%s': stray '}' or control character%s", value,
					    "");
		}
		snprintf(m->key, sizeof(m->key), "%s", value);
		m->set |= MK_KEY;
	} else if (!strcmp(key, "maxlen")) {
		if (config_parse_size(value, &m->maxlen) < 0)
			return fail(x, "maxlen '%s' is not a number%s", value, "");
		m->set |= MK_MAXLEN;
	} else if (!strcmp(key, "user")) {
		if (!*value || strlen(value) > BR_CRED_MAX)
			return fail(x, "user: empty or too long%s%s", "", "");
		snprintf(m->user, sizeof(m->user), "%s", value);
		m->set |= MK_USER;
	} else if (!strcmp(key, "password")) {
		if (strlen(value) > BR_CRED_MAX)
			return fail(x, "password: too long%s%s", "", "");
		snprintf(m->password, sizeof(m->password), "%s", value);
		m->has_password = 1;
		m->set |= MK_PASSWORD;
	} else if (!strcmp(key, "window")) {
		if (parse_u32(value, 1, 65536, &m->window) < 0)
			return fail(x, "window '%s' is not a number from 1 to 65536%s", value, "");
	} else if (!strcmp(key, "start")) {
		if (!strcmp(value, "earliest"))
			m->start_latest = 0;
		else if (!strcmp(value, "latest"))
			m->start_latest = 1;
		else
			return fail(x, "start '%s' is neither 'earliest' nor 'latest'%s", value,
				    "");
	} else if (!strcmp(key, "format")) {
		if (!strcmp(value, "binary"))
			m->format = BR_FMT_BINARY;
		else if (!strcmp(value, "json"))
			m->format = BR_FMT_JSON;
		else
			return fail(x, "format '%s' is neither 'binary' nor 'json'%s", value, "");
		m->set |= MK_FORMAT;
	} else if (!strcmp(key, "hold_ms")) {
		return parse_ms(x, key, value, 0, 3600000, &m->hold_ms);
	} else if (!strcmp(key, "ack")) {
		if (!strcmp(value, "none"))
			m->ack = 0;
		else if (!strcmp(value, "peer"))
			m->ack = 1;
		else
			return fail(x, "ack '%s' is neither 'none' nor 'peer'%s", value, "");
		m->set |= MK_ACK;
	} else if (!strcmp(key, "origin")) {
		if (!*value || strlen(value) >= sizeof(m->origin))
			return fail(x, "origin: empty or longer than 127 bytes%s%s", "", "");
		snprintf(m->origin, sizeof(m->origin), "%s", value);
	} else if ((rc = timing_key(x, key, value, &m->timing)) >= 0) {
		return rc;
	} else {
		return fail(
			x,
			"unknown key '%s' in a [mirror] section (known: topics, to, mode, "
			"key, maxlen, user, password, window, start, hold_ms, format, ack, origin, "
			"connect_timeout_ms, timeout_ms, backoff_min_ms, backoff_max_ms)%s",
			key, "");
	}
	return 1;
}

static struct import_decl *import_for(struct ctx *x, const char *name)
{
	struct shmbusd_config *c = x->c;
	for (size_t i = 0; i < c->nimports; i++)
		if (!strcmp(c->imports[i].name, name))
			return &c->imports[i];
	struct import_decl *m = realloc(c->imports, (c->nimports + 1) * sizeof(*m));
	if (!m)
		return NULL;
	c->imports = m;
	m = &c->imports[c->nimports++];
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->line = x->line;
	m->count = 256;
	m->block_ms = 1000;
	snprintf(m->field, sizeof(m->field), "data");
	snprintf(m->type_field, sizeof(m->type_field), "type");
	m->skip_own = 1;
	timing_defaults(&m->timing);
	return m;
}

static int field_name(struct ctx *x, const char *key, const char *value, char *out, size_t len,
		      int may_be_empty)
{
	if ((!*value && !may_be_empty) || strlen(value) >= len)
		return fail(x, "%s: empty or longer than 63 bytes%s", key, "");
	snprintf(out, len, "%s", value);
	return 1;
}

static int import_key(struct ctx *x, const char *name, const char *key, const char *value)
{
	int rc = bridge_name_check(x, "import", name);
	if (rc != 1)
		return rc;
	struct import_decl *m = import_for(x, name);
	if (!m)
		return fail(x, "out of memory%s%s", "", "");
	char why[512];
	if (!strcmp(key, "from")) {
		if (br_url_parse(value, 1, &m->from, why, sizeof(why)) < 0)
			return fail(x, "from: %s%s", why, "");
		m->has_from = 1;
	} else if (!strcmp(key, "topic")) {
		if (shmbus_topic_name_check(value, 0) < 0)
			return fail(x, "topic: %s%s", shmbus_errmsg(), "");
		snprintf(m->topic, sizeof(m->topic), "%s", value);
	} else if (!strcmp(key, "user")) {
		if (!*value || strlen(value) > BR_CRED_MAX)
			return fail(x, "user: empty or too long%s%s", "", "");
		snprintf(m->user, sizeof(m->user), "%s", value);
	} else if (!strcmp(key, "password")) {
		if (strlen(value) > BR_CRED_MAX)
			return fail(x, "password: too long%s%s", "", "");
		snprintf(m->password, sizeof(m->password), "%s", value);
		m->has_password = 1;
	} else if (!strcmp(key, "count")) {
		if (parse_u32(value, 1, 100000, &m->count) < 0)
			return fail(x, "count '%s' is not a number from 1 to 100000%s", value, "");
	} else if (!strcmp(key, "block_ms")) {
		return parse_ms(x, key, value, 1, 600000, &m->block_ms);
	} else if (!strcmp(key, "start")) {
		if (!strcmp(value, "earliest"))
			m->start_latest = 0;
		else if (!strcmp(value, "latest"))
			m->start_latest = 1;
		else
			return fail(x, "start '%s' is neither 'earliest' nor 'latest'%s", value,
				    "");
	} else if (!strcmp(key, "field")) {
		return field_name(x, key, value, m->field, sizeof(m->field), 0);
	} else if (!strcmp(key, "type_field")) {
		return field_name(x, key, value, m->type_field, sizeof(m->type_field), 1);
	} else if (!strcmp(key, "skip_own")) {
		if (parse_bool(value, &m->skip_own) < 0)
			return fail(x, "skip_own '%s' is not yes or no%s", value, "");
	} else if (!strcmp(key, "origin")) {
		if (!*value || strlen(value) >= sizeof(m->origin))
			return fail(x, "origin: empty or longer than 127 bytes%s%s", "", "");
		snprintf(m->origin, sizeof(m->origin), "%s", value);
	} else if ((rc = timing_key(x, key, value, &m->timing)) >= 0) {
		return rc;
	} else {
		return fail(x,
			    "unknown key '%s' in an [import] section (known: from, topic, user, "
			    "password, count, block_ms, start, field, type_field, skip_own, "
			    "origin, connect_timeout_ms, timeout_ms, backoff_min_ms, "
			    "backoff_max_ms)%s",
			    key, "");
	}
	return 1;
}

static int ws_key(struct ctx *x, const char *key, const char *value)
{
	struct ws_decl *w = &x->c->ws;
	if (!w->enabled) {
		w->enabled = 1;
		w->line = x->line;
	}
	if (!strcmp(key, "listen")) {
		/* HOST:PORT with a numeric host ([v6]:port for IPv6) */
		const char *colon = strrchr(value, ':');
		const char *h = value;
		size_t hl = colon ? (size_t)(colon - value) : 0;
		if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
			h++;
			hl -= 2;
		}
		char host[64];
		unsigned long port = 0;
		char *end = NULL;
		if (colon) {
			errno = 0;
			port = strtoul(colon + 1, &end, 10);
		}
		if (!colon || !hl || hl >= sizeof(host) || errno || !end || end == colon + 1 ||
		    *end || port == 0 || port > 65535)
			return fail(x, "listen '%s' is not ADDRESS:PORT (e.g. 127.0.0.1:8080)%s",
				    value, "");
		memcpy(host, h, hl);
		host[hl] = '\0';
		unsigned char buf[16];
		if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
			return fail(x, "listen '%s': '%s' is not a numeric IP address", value,
				    host);
		snprintf(w->host, sizeof(w->host), "%s", host);
		w->port = (uint16_t)port;
	} else if (!strcmp(key, "subscribe")) {
		return parse_patterns(x, key, value, &w->subscribe);
	} else if (!strcmp(key, "publish")) {
		if (!strcmp(value, "none")) {
			w->publish.n = 0;
			return 1;
		}
		return parse_patterns(x, key, value, &w->publish);
	} else if (!strcmp(key, "max_clients")) {
		if (parse_u32(value, 1, 100000, &w->max_clients) < 0)
			return fail(x, "max_clients '%s' is not a number from 1 to 100000%s", value,
				    "");
	} else if (!strcmp(key, "max_queue")) {
		if (parse_u32(value, 4096, 1u << 30, &w->max_queue) < 0)
			return fail(x, "max_queue '%s' is not a size from 4K to 1G%s", value, "");
	} else if (!strcmp(key, "max_header")) {
		if (parse_u32(value, 1024, 1u << 20, &w->max_header) < 0)
			return fail(x, "max_header '%s' is not a size from 1K to 1M%s", value, "");
	} else if (!strcmp(key, "max_message")) {
		if (parse_u32(value, 1, 1u << 30, &w->max_message) < 0)
			return fail(x, "max_message '%s' is not a size up to 1G%s", value, "");
	} else if (!strcmp(key, "handshake_timeout_ms")) {
		return parse_ms(x, key, value, 10, 600000, &w->handshake_timeout_ms);
	} else if (!strcmp(key, "ping_interval_ms")) {
		return parse_ms(x, key, value, 0, 3600000, &w->ping_interval_ms);
	} else {
		return fail(x,
			    "unknown key '%s' in [websocket] (known: listen, subscribe, publish, "
			    "max_clients, max_queue, max_header, max_message, "
			    "handshake_timeout_ms, ping_interval_ms)%s",
			    key, "");
	}
	return 1;
}

static const char sections_help[] =
	"sections: [bus], [limits], [topic NAME], [mirror NAME], [import NAME], [websocket]";

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct ctx *x = user;
	/* [topic a] and [topic  a] are one section (and so for mirror, import). */
	char canon[SHMBUS_TOPIC_NAME_MAX + 16];
	const char *name = NULL;
	static const char *const named[] = { "topic ", "mirror ", "import " };
	snprintf(canon, sizeof(canon), "%s", section);
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		size_t n = strlen(named[i]);
		if (!strncmp(section, named[i], n)) {
			name = section + n + strspn(section + n, " ");
			snprintf(canon, sizeof(canon), "%s%s", named[i], name);
		}
	}
	if (seen_twice(x, canon, key))
		return fail(x, "'%s' is set twice in [%s]", key, canon);
	if (!strcmp(section, "bus"))
		return bus_key(x, key, value);
	if (!strcmp(section, "limits"))
		return limits_key(x, key, value);
	if (!strncmp(section, "topic ", 6))
		return topic_key(x, name, key, value);
	if (!strncmp(section, "mirror ", 7)) {
		bridge_note(x, canon, key, value);
		return mirror_key(x, name, key, value);
	}
	if (!strncmp(section, "import ", 7)) {
		bridge_note(x, canon, key, value);
		return import_key(x, name, key, value);
	}
	if (!strcmp(section, "websocket")) {
		bridge_note(x, canon, key, value);
		return ws_key(x, key, value);
	}
	if (!*section)
		return fail(x, "'%s' is outside any section (%s)", key, sections_help);
	return fail(x, "unknown section [%s] (%s)", section, sections_help);
}

/* The line of "[kind name]" (or "[kind]"), for errors about a whole section. 0 if none. */
static int header_line(const char *path, const char *kind, const char *name)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char line[1024];
	int n = 0, found = 0;
	size_t kl = strlen(kind);
	while (!found && fgets(line, sizeof(line), f)) {
		n++;
		char *p = line + strspn(line, " \t");
		if (*p++ != '[' || strncmp(p, kind, kl))
			continue;
		p += kl;
		if (!name) {
			if (*p == ']')
				found = n;
			continue;
		}
		if (*p != ' ')
			continue;
		p += strspn(p, " ");
		size_t len = strlen(name);
		if (!strncmp(p, name, len) && (p[len] == ']' || p[len] == ' '))
			found = n;
	}
	fclose(f);
	return found;
}

/*
 * What one key alone cannot tell: required keys, keys that do not fit the peer, sections
 * with no keys at all. Returns 0 or -1 with the reason in err ("FILE:LINE: ...").
 */
static int bridge_check(struct shmbusd_config *c, char *err, size_t errlen)
{
	const char *path = c->path;
#define BAD(kind, name, ...)                                                                      \
	do {                                                                                      \
		char why_[512];                                                                   \
		snprintf(why_, sizeof(why_), __VA_ARGS__);                                        \
		snprintf(err, errlen, "%s:%d: [%s%s%s]: %s", path, header_line(path, kind, name), \
			 kind, name ? " " : "", name ? name : "", why_);                          \
		return -1;                                                                        \
	} while (0)
	for (size_t i = 0; i < c->nmirrors; i++) {
		struct mirror_decl *m = &c->mirrors[i];
		if (!(m->set & MK_TOPICS))
			BAD("mirror", m->name, "no 'topics' (e.g. topics = orders.*)");
		if (!m->has_to)
			BAD("mirror", m->name,
			    "no 'to' (redis://HOST:PORT/DB or ws://HOST:PORT/PATH)");
		if (m->to.scheme == BR_WS) {
			if (m->set & (MK_MODE | MK_KEY | MK_MAXLEN | MK_USER | MK_PASSWORD))
				BAD("mirror", m->name,
				    "mode, key, maxlen, user and password are "
				    "for redis:// mirrors");
			if (m->ack && m->format != BR_FMT_JSON)
				BAD("mirror", m->name,
				    "ack = peer needs format = json (the peer "
				    "acknowledges a topic's sequence number)");
			continue;
		}
		if (m->set & (MK_FORMAT | MK_ACK))
			BAD("mirror", m->name, "format and ack are for ws:// mirrors");
		if (m->mode == BR_MODE_PUBSUB && (m->set & MK_MAXLEN))
			BAD("mirror", m->name, "maxlen is for mode = stream");
		int many = m->topics.n > 1;
		for (unsigned k = 0; k < m->topics.n; k++)
			many |= br_pattern_wild(m->topics.p[k]);
		if (m->mode == BR_MODE_STREAM && many && !strstr(m->key, "{topic}"))
			BAD("mirror", m->name,
			    "key '%s' has no {topic} but the mirror has several "
			    "topics: each stream must come from one topic (its IDs are the topic's "
			    "sequence numbers)",
			    m->key);
		if (!(m->set & MK_USER) && m->to.user[0])
			snprintf(m->user, sizeof(m->user), "%s", m->to.user);
		if (!m->has_password && m->to.has_password) {
			snprintf(m->password, sizeof(m->password), "%s", m->to.password);
			m->has_password = 1;
		}
		if (m->user[0] && !m->has_password)
			BAD("mirror", m->name, "user '%s' needs a password", m->user);
		if (m->timing.backoff_min_ms > m->timing.backoff_max_ms)
			BAD("mirror", m->name, "backoff_min_ms is above backoff_max_ms");
	}
	for (size_t i = 0; i < c->nimports; i++) {
		struct import_decl *m = &c->imports[i];
		if (!m->has_from)
			BAD("import", m->name, "no 'from' (redis://HOST:PORT/[DB/]KEY)");
		if (!m->topic[0])
			BAD("import", m->name, "no 'topic' (the local topic to publish into)");
		if (!m->user[0] && m->from.user[0])
			snprintf(m->user, sizeof(m->user), "%s", m->from.user);
		if (!m->has_password && m->from.has_password) {
			snprintf(m->password, sizeof(m->password), "%s", m->from.password);
			m->has_password = 1;
		}
		if (m->user[0] && !m->has_password)
			BAD("import", m->name, "user '%s' needs a password", m->user);
		if (m->timing.backoff_min_ms > m->timing.backoff_max_ms)
			BAD("import", m->name, "backoff_min_ms is above backoff_max_ms");
		for (size_t k = 0; k < c->nmirrors; k++)
			for (unsigned j = 0; j < c->mirrors[k].topics.n; j++)
				if (br_pattern_match(c->mirrors[k].topics.p[j], m->topic) &&
				    c->mirrors[k].to.scheme == BR_REDIS &&
				    !strcmp(c->mirrors[k].to.host, m->from.host) &&
				    c->mirrors[k].to.port == m->from.port && !m->skip_own)
					BAD("import", m->name,
					    "topic '%s' is mirrored back to the "
					    "same Redis by [mirror %s] and skip_own is off: a loop",
					    m->topic, c->mirrors[k].name);
	}
	if (c->ws.enabled && !c->ws.host[0])
		BAD("websocket", (const char *)NULL, "no 'listen' (e.g. listen = 127.0.0.1:8080)");
	/* Sections with no key at all never reach the handler. */
	FILE *f = fopen(path, "re");
	if (f) {
		char line[1024];
		int n = 0;
		while (fgets(line, sizeof(line), f)) {
			n++;
			char *p = line + strspn(line, " \t");
			int mirror = !strncmp(p, "[mirror ", 8),
			    import = !strncmp(p, "[import ", 8);
			if (!mirror && !import && strncmp(p, "[websocket]", 11))
				continue;
			char nm[64] = "";
			if (mirror || import) {
				p += 8;
				p += strspn(p, " ");
				size_t l = strcspn(p, " ]");
				if (l >= sizeof(nm))
					l = sizeof(nm) - 1;
				memcpy(nm, p, l);
				nm[l] = '\0';
			}
			int found = 0;
			if (mirror)
				for (size_t i = 0; i < c->nmirrors; i++)
					found |= !strcmp(c->mirrors[i].name, nm);
			else if (import)
				for (size_t i = 0; i < c->nimports; i++)
					found |= !strcmp(c->imports[i].name, nm);
			else
				found = c->ws.enabled;
			if (!found) {
				fclose(f);
				snprintf(err, errlen, "%s:%d: the section has no keys (%s)", path,
					 n,
					 mirror ? "a mirror needs topics and to" :
					 import ? "an import needs from and topic" :
						  "[websocket] needs listen");
				return -1;
			}
		}
		fclose(f);
	}
#undef BAD
	return 0;
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
	c->ws.max_clients = 256;
	c->ws.max_queue = 1u << 20;
	c->ws.max_header = 8192;
	c->ws.max_message = 1u << 20;
	c->ws.handshake_timeout_ms = 5000;
	c->ws.ping_interval_ms = 30000;
	c->ws.subscribe.n = 1;
	snprintf(c->ws.subscribe.p[0], sizeof(c->ws.subscribe.p[0]), ">");
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
	struct ctx x = { .c = c, .f = f };
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
	if (bridge_check(c, err, errlen) < 0) {
		config_free(c);
		return -1;
	}
	return 0;
}

void config_free(struct shmbusd_config *c)
{
	free(c->topics);
	c->topics = NULL;
	c->ntopics = 0;
	free(c->mirrors);
	c->mirrors = NULL;
	c->nmirrors = 0;
	free(c->imports);
	c->imports = NULL;
	c->nimports = 0;
	free(c->bridge_text);
	c->bridge_text = NULL;
	c->bridge_len = 0;
	c->ws.enabled = 0;
}
