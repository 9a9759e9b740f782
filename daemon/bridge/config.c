/* SPDX-License-Identifier: MIT */
/*
 * The bridge's sections of shmbusd.conf: every key checked as it is read (the reasons go
 * to config_fail(), which keeps the first), then what needs the whole file
 * (bridge_config_check()). The sections are also kept as text ("section\nkey=value\n"
 * each) so that a reload can tell whether the bridge must restart.
 */
#include "daemon/bridge/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/config.h"

/* Keys a mirror was given (mirror_decl.set), for checks that need them all. A key with a
 * refused value refuses the whole file, so a bit may be set before the value is checked. */
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

_Static_assert(offsetof(struct mirror_decl, name) == 0, "config_find_or_append: name first");
_Static_assert(offsetof(struct import_decl, name) == 0, "config_find_or_append: name first");

/* ---- values --------------------------------------------------------------------------- */

/* Append "section\nkey=value\n" to the bridge text (reload compares it). */
static void note(struct config_ctx *x, const char *section, const char *key, const char *value)
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
static int parse_patterns(struct config_ctx *x, const char *key, const char *value,
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
			return config_fail(x, "%s: more than 32 patterns%s", key, "");
		if (n > SHMBUS_TOPIC_NAME_MAX)
			return config_fail(x, "%s: pattern '%.60s...' is too long", key, p);
		char *d = out->p[out->n];
		memcpy(d, p, n);
		d[n] = '\0';
		char why[256];
		if (br_pattern_check(d, why, sizeof(why)) < 0)
			return config_fail(x, "%s: %s", key, why);
		out->n++;
		p += n;
	}
	if (!out->n)
		return config_fail(x, "%s: no topic pattern given%s", key, "");
	return 1;
}

static int parse_ms(struct config_ctx *x, const char *key, const char *value, uint32_t lo,
		    uint32_t hi, uint32_t *out)
{
	if (config_parse_u32(value, lo, hi, out) < 0) {
		char range[64];
		snprintf(range, sizeof(range), "from %u to %u", lo, hi);
		return config_fail(x, "%s: not a number %s", key, range);
	}
	return 1;
}

/* A peer's URL (codec.h: want_key for an import's). */
static int parse_url(struct config_ctx *x, const char *key, const char *value, int want_key,
		     struct br_url *u, int *has)
{
	char why[512];
	if (br_url_parse(value, want_key, u, why, sizeof(why)) < 0)
		return config_fail(x, "%s: %s", key, why);
	*has = 1;
	return 1;
}

/* value is a (*out = 0) or b (*out = 1): "KEY 'VALUE' is neither 'A' nor 'B'" if not. */
static int parse_choice(struct config_ctx *x, const char *key, const char *value, const char *a,
			const char *b, int *out)
{
	if (!strcmp(value, a) || !strcmp(value, b)) {
		*out = !strcmp(value, b);
		return 1;
	}
	char fmt[128];
	snprintf(fmt, sizeof(fmt), "%s '%%s' is neither '%s' nor '%s'%%s", key, a, b);
	return config_fail(x, fmt, value, "");
}

static int bridge_name_check(struct config_ctx *x, const char *kind, const char *name)
{
	if (shmbus_topic_name_check(name, 0) < 0 || strchr(name, '.') || strlen(name) > BR_NAME_MAX)
		return config_fail(x,
				   "[%s %s]: the name must be one token ([A-Za-z0-9_-], at most 40 "
				   "bytes)",
				   kind, name);
	return 1;
}

/*
 * The declaration of [kind name] in the array *arr of *n, found, or appended and given its
 * defaults by init (with the line of the section's first key). NULL with the reason given
 * to config_fail() (a bad name, no memory).
 */
static void *decl_for(struct config_ctx *x, const char *kind, const char *name, void **arr,
		      size_t *n, size_t size, size_t namelen, void (*init)(void *decl, int line))
{
	if (!bridge_name_check(x, kind, name))
		return NULL;
	int fresh = 0;
	void *d = config_find_or_append(arr, n, size, namelen, name, &fresh);
	if (!d) {
		config_fail(x, "out of memory%s%s", "", "");
		return NULL;
	}
	if (fresh)
		init(d, x->line);
	return d;
}

/* ---- what mirrors and imports share ---------------------------------------------------- */

static void peer_defaults(struct br_peer *p)
{
	p->timing.connect_timeout_ms = 2000;
	p->timing.timeout_ms = 5000;
	p->timing.backoff_min_ms = 100;
	p->timing.backoff_max_ms = 5000;
}

/* A key of struct br_peer: 1 or 0 as a handler, -1 if key is not one of them. */
static int peer_key(struct config_ctx *x, const char *key, const char *value, struct br_peer *p)
{
	struct br_timing *t = &p->timing;
	if (!strcmp(key, "user")) {
		if (!*value || strlen(value) > BR_CRED_MAX)
			return config_fail(x, "user: empty or too long%s%s", "", "");
		snprintf(p->user, sizeof(p->user), "%s", value);
	} else if (!strcmp(key, "password")) {
		if (strlen(value) > BR_CRED_MAX)
			return config_fail(x, "password: too long%s%s", "", "");
		snprintf(p->password, sizeof(p->password), "%s", value);
		p->has_password = 1;
	} else if (!strcmp(key, "start")) {
		return parse_choice(x, key, value, "earliest", "latest", &p->start_latest);
	} else if (!strcmp(key, "origin")) {
		if (!*value || strlen(value) >= sizeof(p->origin))
			return config_fail(x, "origin: empty or longer than 127 bytes%s%s", "", "");
		snprintf(p->origin, sizeof(p->origin), "%s", value);
	} else if (!strcmp(key, "connect_timeout_ms")) {
		return parse_ms(x, key, value, 10, 600000, &t->connect_timeout_ms);
	} else if (!strcmp(key, "timeout_ms")) {
		return parse_ms(x, key, value, 10, 3600000, &t->timeout_ms);
	} else if (!strcmp(key, "backoff_min_ms")) {
		return parse_ms(x, key, value, 1, 600000, &t->backoff_min_ms);
	} else if (!strcmp(key, "backoff_max_ms")) {
		return parse_ms(x, key, value, 1, 3600000, &t->backoff_max_ms);
	} else {
		return -1;
	}
	return 1;
}

/* ---- [mirror NAME] ------------------------------------------------------------------- */

static void mirror_decl_init(void *decl, int line)
{
	struct mirror_decl *m = decl;
	m->line = line;
	snprintf(m->key, sizeof(m->key), "{topic}");
	m->window = 1024;
	m->hold_ms = 10000;
	peer_defaults(&m->peer);
}

/* The key template: text and {topic}. */
static int key_template(struct config_ctx *x, const char *value, char *out, size_t len)
{
	if (!*value || strlen(value) >= len)
		return config_fail(x, "key: empty or longer than 255 bytes%s%s", "", "");
	for (const char *p = value; *p; p++) {
		if (*p == '{' && strncmp(p, "{topic}", 7))
			return config_fail(x, "key '%s': the only placeholder is {topic}%s", value,
					   "");
		if (*p == '{')
			p += 6;
		else if (*p == '}' || (unsigned char)*p < 0x20)
			return config_fail(x, "key '%s': stray '}' or control character%s", value,
					   "");
	}
	snprintf(out, len, "%s", value);
	return 1;
}

static int mirror_key(struct config_ctx *x, struct mirror_decl *m, const char *key,
		      const char *value)
{
	int rc;
	if (!strcmp(key, "topics")) {
		m->set |= MK_TOPICS;
		return parse_patterns(x, key, value, &m->topics);
	} else if (!strcmp(key, "to")) {
		m->set |= MK_TO;
		return parse_url(x, key, value, 0, &m->to, &m->has_to);
	} else if (!strcmp(key, "window")) {
		if (config_parse_u32(value, 1, 65536, &m->window) < 0)
			return config_fail(x, "window '%s' is not a number from 1 to 65536%s",
					   value, "");
	} else if (!strcmp(key, "hold_ms")) {
		return parse_ms(x, key, value, 0, 3600000, &m->hold_ms);
	} else if (!strcmp(key, "mode")) {
		m->set |= MK_MODE;
		return parse_choice(x, key, value, "stream", "pubsub", &m->mode);
	} else if (!strcmp(key, "key")) {
		m->set |= MK_KEY;
		return key_template(x, value, m->key, sizeof(m->key));
	} else if (!strcmp(key, "maxlen")) {
		if (config_parse_size(value, &m->maxlen) < 0)
			return config_fail(x, "maxlen '%s' is not a number%s", value, "");
		m->set |= MK_MAXLEN;
	} else if (!strcmp(key, "format")) {
		m->set |= MK_FORMAT;
		return parse_choice(x, key, value, "binary", "json", &m->format);
	} else if (!strcmp(key, "ack")) {
		m->set |= MK_ACK;
		return parse_choice(x, key, value, "none", "peer", &m->ack);
	} else if ((rc = peer_key(x, key, value, &m->peer)) >= 0) {
		if (!strcmp(key, "user"))
			m->set |= MK_USER;
		else if (!strcmp(key, "password"))
			m->set |= MK_PASSWORD;
		return rc;
	} else {
		return config_fail(
			x,
			"unknown key '%s' in a [mirror] section (known: topics, to, mode, "
			"key, maxlen, user, password, window, start, hold_ms, format, ack, origin, "
			"connect_timeout_ms, timeout_ms, backoff_min_ms, backoff_max_ms)%s",
			key, "");
	}
	return 1;
}

/* ---- [import NAME] ------------------------------------------------------------------- */

static void import_decl_init(void *decl, int line)
{
	struct import_decl *m = decl;
	m->line = line;
	m->count = 256;
	m->block_ms = 1000;
	snprintf(m->field, sizeof(m->field), "data");
	snprintf(m->type_field, sizeof(m->type_field), "type");
	m->skip_own = 1;
	peer_defaults(&m->peer);
}

static int field_name(struct config_ctx *x, const char *key, const char *value, char *out,
		      size_t len, int may_be_empty)
{
	if ((!*value && !may_be_empty) || strlen(value) >= len)
		return config_fail(x, "%s: empty or longer than 63 bytes%s", key, "");
	snprintf(out, len, "%s", value);
	return 1;
}

static int import_key(struct config_ctx *x, struct import_decl *m, const char *key,
		      const char *value)
{
	int rc;
	if (!strcmp(key, "from")) {
		return parse_url(x, key, value, 1, &m->from, &m->has_from);
	} else if (!strcmp(key, "topic")) {
		if (shmbus_topic_name_check(value, 0) < 0)
			return config_fail(x, "topic: %s%s", shmbus_errmsg(), "");
		snprintf(m->topic, sizeof(m->topic), "%s", value);
	} else if (!strcmp(key, "count")) {
		if (config_parse_u32(value, 1, 100000, &m->count) < 0)
			return config_fail(x, "count '%s' is not a number from 1 to 100000%s",
					   value, "");
	} else if (!strcmp(key, "block_ms")) {
		return parse_ms(x, key, value, 1, 600000, &m->block_ms);
	} else if (!strcmp(key, "field")) {
		return field_name(x, key, value, m->field, sizeof(m->field), 0);
	} else if (!strcmp(key, "type_field")) {
		return field_name(x, key, value, m->type_field, sizeof(m->type_field), 1);
	} else if (!strcmp(key, "skip_own")) {
		if (parse_bool(value, &m->skip_own) < 0)
			return config_fail(x, "skip_own '%s' is not yes or no%s", value, "");
	} else if ((rc = peer_key(x, key, value, &m->peer)) >= 0) {
		return rc;
	} else {
		return config_fail(x,
				   "unknown key '%s' in an [import] section (known: from, topic, "
				   "user, password, count, block_ms, start, field, type_field, "
				   "skip_own, origin, connect_timeout_ms, timeout_ms, "
				   "backoff_min_ms, backoff_max_ms)%s",
				   key, "");
	}
	return 1;
}

/* ---- [websocket] ---------------------------------------------------------------------- */

/* listen = HOST:PORT with a numeric host ([v6]:port for IPv6). */
static int ws_listen(struct config_ctx *x, struct ws_decl *w, const char *value)
{
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
	if (!colon || !hl || hl >= sizeof(host) || errno || !end || end == colon + 1 || *end ||
	    port == 0 || port > 65535)
		return config_fail(x, "listen '%s' is not ADDRESS:PORT (e.g. 127.0.0.1:8080)%s",
				   value, "");
	memcpy(host, h, hl);
	host[hl] = '\0';
	unsigned char buf[16];
	if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
		return config_fail(x, "listen '%s': '%s' is not a numeric IP address", value, host);
	snprintf(w->host, sizeof(w->host), "%s", host);
	w->port = (uint16_t)port;
	return 1;
}

static int ws_key(struct config_ctx *x, const char *key, const char *value)
{
	struct ws_decl *w = &x->c->ws;
	if (!w->enabled) {
		w->enabled = 1;
		w->line = x->line;
	}
	if (!strcmp(key, "listen")) {
		return ws_listen(x, w, value);
	} else if (!strcmp(key, "subscribe")) {
		return parse_patterns(x, key, value, &w->subscribe);
	} else if (!strcmp(key, "publish")) {
		if (!strcmp(value, "none")) {
			w->publish.n = 0;
			return 1;
		}
		return parse_patterns(x, key, value, &w->publish);
	} else if (!strcmp(key, "max_clients")) {
		if (config_parse_u32(value, 1, 100000, &w->max_clients) < 0)
			return config_fail(x, "max_clients '%s' is not a number from 1 to 100000%s",
					   value, "");
	} else if (!strcmp(key, "max_queue")) {
		if (config_parse_u32(value, 4096, 1u << 30, &w->max_queue) < 0)
			return config_fail(x, "max_queue '%s' is not a size from 4K to 1G%s", value,
					   "");
	} else if (!strcmp(key, "max_header")) {
		if (config_parse_u32(value, 1024, 1u << 20, &w->max_header) < 0)
			return config_fail(x, "max_header '%s' is not a size from 1K to 1M%s",
					   value, "");
	} else if (!strcmp(key, "max_message")) {
		if (config_parse_u32(value, 1, 1u << 30, &w->max_message) < 0)
			return config_fail(x, "max_message '%s' is not a size up to 1G%s", value,
					   "");
	} else if (!strcmp(key, "handshake_timeout_ms")) {
		return parse_ms(x, key, value, 10, 600000, &w->handshake_timeout_ms);
	} else if (!strcmp(key, "ping_interval_ms")) {
		return parse_ms(x, key, value, 0, 3600000, &w->ping_interval_ms);
	} else {
		return config_fail(x,
				   "unknown key '%s' in [websocket] (known: listen, subscribe, "
				   "publish, max_clients, max_queue, max_header, max_message, "
				   "handshake_timeout_ms, ping_interval_ms)%s",
				   key, "");
	}
	return 1;
}

int bridge_config_key(struct config_ctx *x, const char *canon, const char *name, const char *key,
		      const char *value)
{
	struct shmbusd_config *c = x->c;
	note(x, canon, key, value);
	if (!strncmp(canon, "mirror ", 7)) {
		struct mirror_decl *m = decl_for(x, "mirror", name, (void **)&c->mirrors,
						 &c->nmirrors, sizeof(*m), sizeof(m->name),
						 mirror_decl_init);
		return m ? mirror_key(x, m, key, value) : 0;
	}
	if (!strncmp(canon, "import ", 7)) {
		struct import_decl *m = decl_for(x, "import", name, (void **)&c->imports,
						 &c->nimports, sizeof(*m), sizeof(m->name),
						 import_decl_init);
		return m ? import_key(x, m, key, value) : 0;
	}
	return ws_key(x, key, value);
}

/* ---- the whole file --------------------------------------------------------------------- */

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

/* "FILE:LINE: [kind name]: why" into err (LINE: the section's header). Returns -1. */
static int __attribute__((format(printf, 6, 7)))
bad(const char *path, char *err, size_t errlen, const char *kind, const char *name, const char *fmt,
    ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s:%d: [%s%s%s]: %s", path, header_line(path, kind, name), kind,
		 name ? " " : "", name ? name : "", why);
	return -1;
}

/* Credentials from the URL where the section gives none; a user needs a password; the
 * backoffs in order. 0 or -1 with err. */
static int peer_check(const char *path, char *err, size_t errlen, const char *kind,
		      const char *name, struct br_peer *p, const struct br_url *u)
{
	if (!p->user[0] && u->user[0])
		snprintf(p->user, sizeof(p->user), "%s", u->user);
	if (!p->has_password && u->has_password) {
		snprintf(p->password, sizeof(p->password), "%s", u->password);
		p->has_password = 1;
	}
	if (p->user[0] && !p->has_password)
		return bad(path, err, errlen, kind, name, "user '%s' needs a password", p->user);
	if (p->timing.backoff_min_ms > p->timing.backoff_max_ms)
		return bad(path, err, errlen, kind, name, "backoff_min_ms is above backoff_max_ms");
	return 0;
}

static int mirror_check(const char *path, char *err, size_t errlen, struct mirror_decl *m)
{
#define BAD(...) return bad(path, err, errlen, "mirror", m->name, __VA_ARGS__)
	if (!(m->set & MK_TOPICS))
		BAD("no 'topics' (e.g. topics = orders.*)");
	if (!m->has_to)
		BAD("no 'to' (redis://HOST:PORT/DB or ws://HOST:PORT/PATH)");
	if (m->to.scheme == BR_WS) {
		if (m->set & (MK_MODE | MK_KEY | MK_MAXLEN | MK_USER | MK_PASSWORD))
			BAD("mode, key, maxlen, user and password are for redis:// mirrors");
		if (m->ack && m->format != BR_FMT_JSON)
			BAD("ack = peer needs format = json (the peer acknowledges a topic's "
			    "sequence number)");
		return 0;
	}
	if (m->set & (MK_FORMAT | MK_ACK))
		BAD("format and ack are for ws:// mirrors");
	if (m->mode == BR_MODE_PUBSUB && (m->set & MK_MAXLEN))
		BAD("maxlen is for mode = stream");
	int many = m->topics.n > 1;
	for (unsigned k = 0; k < m->topics.n; k++)
		many |= br_pattern_wild(m->topics.p[k]);
	if (m->mode == BR_MODE_STREAM && many && !strstr(m->key, "{topic}"))
		BAD("key '%s' has no {topic} but the mirror has several topics: each stream must "
		    "come from one topic (its IDs are the topic's sequence numbers)",
		    m->key);
#undef BAD
	return peer_check(path, err, errlen, "mirror", m->name, &m->peer, &m->to);
}

static int import_check(const struct shmbusd_config *c, char *err, size_t errlen,
			struct import_decl *m)
{
	const char *path = c->path;
	if (!m->has_from)
		return bad(path, err, errlen, "import", m->name,
			   "no 'from' (redis://HOST:PORT/[DB/]KEY)");
	if (!m->topic[0])
		return bad(path, err, errlen, "import", m->name,
			   "no 'topic' (the local topic to publish into)");
	if (peer_check(path, err, errlen, "import", m->name, &m->peer, &m->from) < 0)
		return -1;
	for (size_t k = 0; k < c->nmirrors; k++)
		for (unsigned j = 0; j < c->mirrors[k].topics.n; j++)
			if (br_pattern_match(c->mirrors[k].topics.p[j], m->topic) &&
			    c->mirrors[k].to.scheme == BR_REDIS &&
			    !strcmp(c->mirrors[k].to.host, m->from.host) &&
			    c->mirrors[k].to.port == m->from.port && !m->skip_own)
				return bad(path, err, errlen, "import", m->name,
					   "topic '%s' is mirrored back to the same Redis by "
					   "[mirror %s] and skip_own is off: a loop",
					   m->topic, c->mirrors[k].name);
	return 0;
}

/* Sections with no key at all never reach the handler: find them in the file. */
static int empty_sections(const struct shmbusd_config *c, char *err, size_t errlen)
{
	FILE *f = fopen(c->path, "re");
	if (!f)
		return 0;
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		n++;
		char *p = line + strspn(line, " \t");
		int mirror = !strncmp(p, "[mirror ", 8), import = !strncmp(p, "[import ", 8);
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
			snprintf(err, errlen, "%s:%d: the section has no keys (%s)", c->path, n,
				 mirror ? "a mirror needs topics and to" :
				 import ? "an import needs from and topic" :
					  "[websocket] needs listen");
			return -1;
		}
	}
	fclose(f);
	return 0;
}

int bridge_config_check(struct shmbusd_config *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->nmirrors; i++)
		if (mirror_check(c->path, err, errlen, &c->mirrors[i]) < 0)
			return -1;
	for (size_t i = 0; i < c->nimports; i++)
		if (import_check(c, err, errlen, &c->imports[i]) < 0)
			return -1;
	if (c->ws.enabled && !c->ws.host[0])
		return bad(c->path, err, errlen, "websocket", NULL,
			   "no 'listen' (e.g. listen = 127.0.0.1:8080)");
	return empty_sections(c, err, errlen);
}

/* ---- the config as a whole ---------------------------------------------------------------- */

void bridge_config_defaults(struct shmbusd_config *c)
{
	c->ws.max_clients = 256;
	c->ws.max_queue = 1u << 20;
	c->ws.max_header = 8192;
	c->ws.max_message = 1u << 20;
	c->ws.handshake_timeout_ms = 5000;
	c->ws.ping_interval_ms = 30000;
	c->ws.subscribe.n = 1;
	snprintf(c->ws.subscribe.p[0], sizeof(c->ws.subscribe.p[0]), ">");
}

int bridge_config_copy(struct shmbusd_config *dst, const struct shmbusd_config *src)
{
	*dst = *src;
	dst->topics = NULL;
	dst->ntopics = 0;
	dst->access_rules = NULL; /* the daemon's, freed with its config */
	dst->naccess = 0;
	dst->mirrors = NULL;
	dst->imports = NULL;
	dst->bridge_text = NULL;
	if (src->nmirrors) {
		dst->mirrors = malloc(src->nmirrors * sizeof(*dst->mirrors));
		if (!dst->mirrors)
			return -1;
		memcpy(dst->mirrors, src->mirrors, src->nmirrors * sizeof(*dst->mirrors));
	}
	if (src->nimports) {
		dst->imports = malloc(src->nimports * sizeof(*dst->imports));
		if (!dst->imports)
			return -1;
		memcpy(dst->imports, src->imports, src->nimports * sizeof(*dst->imports));
	}
	return 0;
}

void bridge_config_free(struct shmbusd_config *c)
{
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
