/* SPDX-License-Identifier: MIT */
#include "daemon/bridge/codec.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/intree.h"

/* ---- URLs ------------------------------------------------------------------------------ */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copy [s, s+n) into out (max bytes with the NUL), decoding %XX. -1 if bad or too long. */
static int pct_decode(const char *s, size_t n, char *out, size_t max)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		}
		if (c == 0 || o + 1 >= max)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -1)

int br_url_parse(const char *text, int want_key, struct br_url *u, char *why, size_t whylen)
{
	memset(u, 0, sizeof(*u));
	const char *p;
	if (!strncmp(text, "redis://", 8)) {
		u->scheme = BR_REDIS;
		u->port = 6379;
		p = text + 8;
	} else if (!strncmp(text, "ws://", 5)) {
		u->scheme = BR_WS;
		u->port = 80;
		p = text + 5;
	} else if (!strncmp(text, "rediss://", 9) || !strncmp(text, "wss://", 6)) {
		return WHY("'%.200s': TLS is not supported (use redis:// or ws://)", text);
	} else {
		return WHY("'%.200s' is neither a redis:// nor a ws:// URL", text);
	}
	if (want_key && u->scheme != BR_REDIS)
		return WHY("'%.200s': imports read Redis streams (redis://host:port/key)", text);
	size_t alen = strcspn(p, "/?#");
	const char *rest = p + alen;
	/* userinfo: the last '@' of the authority */
	const char *at = NULL;
	for (const char *q = p; q < rest; q++)
		if (*q == '@')
			at = q;
	if (at) {
		if (u->scheme != BR_REDIS)
			return WHY("'%.200s': credentials in a ws:// URL are not supported", text);
		const char *colon = memchr(p, ':', (size_t)(at - p));
		size_t ulen = colon ? (size_t)(colon - p) : (size_t)(at - p);
		if (pct_decode(p, ulen, u->user, sizeof(u->user)) < 0)
			return WHY("'%.200s': bad user name", text);
		if (colon) {
			if (pct_decode(colon + 1, (size_t)(at - colon - 1), u->password,
				       sizeof(u->password)) < 0)
				return WHY("'%.200s': bad password", text);
			u->has_password = 1;
		} else if (u->user[0]) {
			/* "redis://secret@host": a password alone, as redis-cli reads it */
			snprintf(u->password, sizeof(u->password), "%s", u->user);
			u->user[0] = '\0';
			u->has_password = 1;
		}
		p = at + 1;
	}
	const char *hend;
	const char *port = NULL;
	if (*p == '[') {
		hend = memchr(p, ']', (size_t)(rest - p));
		if (!hend)
			return WHY("'%.200s': unclosed [ in the host", text);
		if ((size_t)(hend - p - 1) > BR_HOST_MAX || hend == p + 1)
			return WHY("'%.200s': bad host", text);
		memcpy(u->host, p + 1, (size_t)(hend - p - 1));
		hend++;
		if (hend < rest && *hend != ':')
			return WHY("'%.200s': bad host", text);
		if (hend < rest)
			port = hend + 1;
	} else {
		const char *colon = memchr(p, ':', (size_t)(rest - p));
		hend = colon ? colon : rest;
		if (hend == p)
			return WHY("'%.200s': no host", text);
		if ((size_t)(hend - p) > BR_HOST_MAX)
			return WHY("'%.200s': host name too long", text);
		for (const char *q = p; q < hend; q++)
			if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
			      (*q >= '0' && *q <= '9') || *q == '-' || *q == '.' || *q == '_'))
				return WHY("'%.200s': bad character in the host", text);
		memcpy(u->host, p, (size_t)(hend - p));
		if (colon)
			port = colon + 1;
	}
	if (port) {
		if (port == rest)
			return WHY("'%.200s': empty port", text);
		unsigned long v = 0;
		for (const char *q = port; q < rest; q++) {
			if (*q < '0' || *q > '9')
				return WHY("'%.200s': bad port", text);
			v = v * 10 + (unsigned long)(*q - '0');
			if (v > 65535)
				return WHY("'%.200s': port out of range", text);
		}
		if (v == 0)
			return WHY("'%.200s': port 0", text);
		u->port = (uint16_t)v;
	}
	if (u->scheme == BR_WS) {
		if (*rest == '#')
			return WHY("'%.200s': a fragment has no meaning here", text);
		if (strchr(rest, '#'))
			return WHY("'%.200s': a fragment has no meaning here", text);
		const char *path = *rest ? rest : "/";
		if (*path == '?')
			snprintf(u->path, sizeof(u->path), "/%.*s", BR_PATH_MAX - 1, path);
		else if (strlen(path) > BR_PATH_MAX)
			return WHY("'%.200s': path too long", text);
		else
			snprintf(u->path, sizeof(u->path), "%s", path);
		for (const char *q = u->path; *q; q++)
			if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
				return WHY("'%.200s': bad character in the path", text);
		return 0;
	}
	/* redis: [/db][/key] */
	if (*rest == '?' || *rest == '#')
		return WHY("'%.200s': Redis URLs take no query", text);
	const char *a = *rest == '/' ? rest + 1 : rest;
	const char *slash = strchr(a, '/');
	const char *dbs = NULL, *key = NULL;
	size_t dblen = 0;
	if (want_key) {
		if (slash) {
			dbs = a;
			dblen = (size_t)(slash - a);
			key = slash + 1;
		} else {
			key = a;
		}
		if (!key || !*key)
			return WHY("'%.200s': no stream key (redis://host:port/[db/]key)", text);
		if (pct_decode(key, strlen(key), u->key, sizeof(u->key)) < 0)
			return WHY("'%.200s': bad stream key", text);
	} else {
		if (slash)
			return WHY("'%.200s': a mirror's URL ends with the database number (the "
				   "key is the 'key' option)",
				   text);
		dbs = a;
		dblen = strlen(a);
	}
	if (dbs && dblen) {
		unsigned long v = 0;
		for (size_t i = 0; i < dblen; i++) {
			if (dbs[i] < '0' || dbs[i] > '9' || v > 1000000)
				return WHY("'%.200s': the database is not a number", text);
			v = v * 10 + (unsigned long)(dbs[i] - '0');
		}
		u->db = (uint32_t)v;
	}
	return 0;
}

void br_url_show(const struct br_url *u, char *buf, size_t len)
{
	int v6 = strchr(u->host, ':') != NULL;
	if (u->scheme == BR_WS) {
		snprintf(buf, len, "ws://%s%s%s:%u%s", v6 ? "[" : "", u->host, v6 ? "]" : "",
			 u->port, u->path);
		return;
	}
	snprintf(buf, len, "redis://%s%s%s%s%s:%u/%u%s%s", u->user, u->user[0] ? "@" : "",
		 v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, u->db, u->key[0] ? "/" : "",
		 u->key);
}

/* ---- patterns (the library's: bus/pattern.c) ------------------------------------------ */

int br_pattern_check(const char *pattern, char *why, size_t whylen)
{
	if (shmbus_pattern_check(pattern) < 0)
		return WHY("%s", shmbus_errmsg());
	return 0;
}

int br_pattern_wild(const char *pattern)
{
	return shmbus_pattern_wild(pattern);
}

int br_pattern_match(const char *pattern, const char *topic)
{
	return shmbus_pattern_match(pattern, topic);
}

/* ---- base64 ---------------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t br_b64_encode(const void *in, size_t n, char *out)
{
	const uint8_t *s = in;
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		out[o++] = b64[v >> 18];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = '=';
	}
	return o;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int br_b64_decode(const char *text, size_t n, uint8_t *out, size_t max)
{
	if (n % 4)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			if (text[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad)
				return -1; /* data after padding */
			v[k] = b64val((unsigned char)text[i + k]);
			if (v[k] < 0)
				return -1;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
			     (uint32_t)v[3];
		size_t take = 3 - (size_t)pad;
		if (o + take > max)
			return -1;
		out[o++] = (uint8_t)(w >> 16);
		if (take > 1)
			out[o++] = (uint8_t)(w >> 8);
		if (take > 2)
			out[o++] = (uint8_t)w;
	}
	return (int)o;
}

/* ---- SHA-1 ------------------------------------------------------------------------------ */

static inline uint32_t rol(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t b[64])
{
	uint32_t w[80];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
		       (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) {
			f = (bb & c) | (~bb & d);
			k = 0x5a827999u;
		} else if (i < 40) {
			f = bb ^ c ^ d;
			k = 0x6ed9eba1u;
		} else if (i < 60) {
			f = (bb & c) | (bb & d) | (c & d);
			k = 0x8f1bbcdcu;
		} else {
			f = bb ^ c ^ d;
			k = 0xca62c1d6u;
		}
		uint32_t t = rol(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol(bb, 30);
		bb = a;
		a = t;
	}
	h[0] += a;
	h[1] += bb;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void br_sha1(const void *data, size_t n, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u, 0xc3d2e1f0u };
	const uint8_t *p = data;
	size_t left = n;
	while (left >= 64) {
		sha1_block(h, p);
		p += 64;
		left -= 64;
	}
	/* The last block(s): the rest, a 1 bit, zeros, the length in bits (big-endian). */
	uint8_t tail[128];
	memset(tail, 0, sizeof(tail));
	memcpy(tail, p, left);
	tail[left] = 0x80;
	size_t blocks = left + 1 + 8 <= 64 ? 1 : 2;
	uint64_t bits = (uint64_t)n * 8;
	for (int i = 0; i < 8; i++)
		tail[blocks * 64 - 1 - (size_t)i] = (uint8_t)(bits >> (8 * i));
	for (size_t i = 0; i < blocks; i++)
		sha1_block(h, tail + 64 * i);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

void br_ws_accept(const char *key, size_t keylen, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char buf[256 + sizeof(guid)];
	if (keylen > 256)
		keylen = 256;
	memcpy(buf, key, keylen);
	memcpy(buf + keylen, guid, sizeof(guid) - 1);
	uint8_t d[20];
	br_sha1(buf, keylen + sizeof(guid) - 1, d);
	br_b64_encode(d, 20, out);
	out[28] = '\0';
}

/* ---- stream IDs ------------------------------------------------------------------------- */

size_t br_u64_dec(char *buf, uint64_t v)
{
	char t[20];
	size_t n = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = t[n - 1 - i];
	buf[n] = '\0';
	return n;
}

size_t br_stream_id(char *buf, uint64_t ms, uint64_t seq)
{
	size_t n = br_u64_dec(buf, ms);
	buf[n++] = '-';
	return n + br_u64_dec(buf + n, seq);
}

int br_stream_id_parse(const char *s, size_t n, uint64_t *ms, uint64_t *seq)
{
	uint64_t v[2] = { 0, 0 };
	int part = 0;
	size_t digits = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '-' && part == 0 && digits) {
			part = 1;
			digits = 0;
			continue;
		}
		if (s[i] < '0' || s[i] > '9' || v[part] > (UINT64_MAX - 9) / 10)
			return -1;
		v[part] = v[part] * 10 + (uint64_t)(s[i] - '0');
		digits++;
	}
	if (part != 1 || !digits)
		return -1;
	*ms = v[0];
	*seq = v[1];
	return 0;
}

/* ---- JSON --------------------------------------------------------------------------------- */

size_t br_json_envelope(char *out, size_t cap, const char *topic, uint64_t seq, uint32_t type,
			uint64_t ts, uint64_t lost, const void *data, size_t len)
{
	int n = snprintf(out, cap,
			 "{\"topic\":\"%s\",\"seq\":%" PRIu64 ",\"type\":%u,\"ts\":%" PRIu64, topic,
			 seq, type, ts);
	if (lost)
		n += snprintf(out + n, cap - (size_t)n, ",\"lost\":%" PRIu64, lost);
	memcpy(out + n, ",\"data\":\"", 9);
	n += 9;
	n += (int)br_b64_encode(data, len, out + n);
	memcpy(out + n, "\"}", 2);
	return (size_t)n + 2;
}

/* Where the value of member key starts in s[0..n) (past the colon and blanks), or NULL. */
static const char *json_value(const char *s, size_t n, const char *key)
{
	char pat[40];
	int pl = snprintf(pat, sizeof(pat), "\"%s\"", key);
	if (pl < 0 || (size_t)pl >= sizeof(pat))
		return NULL;
	const char *p = memmem(s, n, pat, (size_t)pl);
	if (!p)
		return NULL;
	p += pl;
	const char *e = s + n;
	while (p < e && (*p == ' ' || *p == ':'))
		p++;
	return p;
}

int br_json_u64(const char *s, size_t n, const char *key, uint64_t *out)
{
	const char *p = json_value(s, n, key);
	if (!p)
		return -1;
	const char *e = s + n;
	uint64_t v = 0;
	int d = 0;
	while (p < e && *p >= '0' && *p <= '9' && v < UINT64_MAX / 10) {
		v = v * 10 + (uint64_t)(*p++ - '0');
		d++;
	}
	if (!d)
		return -1;
	*out = v;
	return 0;
}

int br_json_str(const char *s, size_t n, const char *key, char *out, size_t len)
{
	const char *p = json_value(s, n, key);
	const char *e = s + n;
	if (!p || p >= e || *p != '"')
		return -1;
	const char *q = memchr(p + 1, '"', (size_t)(e - p - 1));
	if (!q || (size_t)(q - p - 1) >= len)
		return -1;
	memcpy(out, p + 1, (size_t)(q - p - 1));
	out[q - p - 1] = '\0';
	return 0;
}

/* ---- Redis replies ---------------------------------------------------------------------- */

static redisReplyObjectFunctions bounded_fns;
static void *(*plain_array)(const redisReadTask *, int);

/* hiredis 0.14 allocates an array of the size the peer announces: bound it. */
static void *bounded_array(const redisReadTask *task, int n)
{
	if (n < 0 || n > BR_RESP_MAX_ELEMENTS)
		return NULL; /* the reader reports "out of memory": the reply is refused */
	return plain_array(task, n);
}

struct redisReader *br_resp_reader(void)
{
	redisReader *r = redisReaderCreate();
	if (!r)
		return NULL;
	/* (hiredis's default functions are one static table: the first reader copies it.) */
	if (!plain_array) {
		bounded_fns = *r->fn;
		plain_array = bounded_fns.createArray;
		bounded_fns.createArray = bounded_array;
	}
	r->fn = &bounded_fns;
	return r;
}

const char *br_resp_text(const struct redisReply *r, char *buf, size_t len)
{
	static const char *const names[] = { "?",   "string", "array", "integer",
					     "nil", "status", "error" };
	if ((r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ||
	     r->type == REDIS_REPLY_STRING) &&
	    r->str) {
		size_t n = r->len < len - 1 ? r->len : len - 1;
		for (size_t i = 0; i < n; i++)
			buf[i] = (r->str[i] >= 0x20 && r->str[i] < 0x7f) ? r->str[i] : '?';
		buf[n] = '\0';
		return buf;
	}
	snprintf(buf, len, "a%s %s reply",
		 r->type == REDIS_REPLY_ARRAY || r->type == REDIS_REPLY_INTEGER ? "n" : "",
		 names[r->type >= 1 && r->type <= 6 ? r->type : 0]);
	return buf;
}

int br_resp_ok(const struct redisReply *r)
{
	return r->type == REDIS_REPLY_STATUS && r->len == 2 && !memcmp(r->str, "OK", 2);
}

const struct redisReply *br_resp_field(const struct redisReply *f, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i + 1 < f->elements; i += 2) {
		const redisReply *k = f->element[i];
		if (k->type == REDIS_REPLY_STRING && k->len == n && !memcmp(k->str, name, n))
			return f->element[i + 1]->type == REDIS_REPLY_STRING ? f->element[i + 1] :
									       NULL;
	}
	return NULL;
}

int br_resp_xread_check(const struct redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 1)
		return -1;
	const redisReply *s = r->element[0];
	if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
	    s->element[0]->type != REDIS_REPLY_STRING || s->element[1]->type != REDIS_REPLY_ARRAY)
		return -1;
	const redisReply *es = s->element[1];
	for (size_t i = 0; i < es->elements; i++) {
		const redisReply *e = es->element[i];
		uint64_t ms, seq;
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= BR_ID_MAX ||
		    br_stream_id_parse(e->element[0]->str, e->element[0]->len, &ms, &seq) < 0 ||
		    e->element[1]->type != REDIS_REPLY_ARRAY || (e->element[1]->elements & 1))
			return -1;
	}
	return 0;
}
