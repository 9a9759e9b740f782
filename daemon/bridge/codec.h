/* SPDX-License-Identifier: MIT */
/*
 * The bridge's pure codecs, no I/O and no state: peer URLs, topic patterns, base64, SHA-1
 * (for the WebSocket handshake's accept key), Redis stream IDs, the flat JSON the bridge
 * writes and reads, and Redis replies (RESP, parsed by hiredis's reader). Shared by the
 * config parser and the bridge thread; unit-tested in tests/bridge/codec.c and fuzzed in
 * tests/fuzz/bridge_codec.c. Every function bounds its output and says so in its return
 * value; only the RESP reader allocates. Any thread may call any of them.
 */
#ifndef SHMBUSD_BRIDGE_CODEC_H
#define SHMBUSD_BRIDGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

struct redisReader; /* hiredis/read.h */
struct redisReply;  /* hiredis/hiredis.h */

/* ---- peer URLs ------------------------------------------------------------------------ */

enum br_scheme { BR_REDIS = 1, BR_WS = 2 };

#define BR_HOST_MAX 255
#define BR_PATH_MAX 1023
#define BR_CRED_MAX 255

struct br_url {
	int scheme;		    /* enum br_scheme */
	char host[BR_HOST_MAX + 1]; /* a name, an IPv4 address, or an IPv6 one without [] */
	uint16_t port;
	uint32_t db;		    /* redis: the database number (default 0) */
	char key[BR_PATH_MAX + 1];  /* redis, with want_key: the stream key (%XX decoded) */
	char path[BR_PATH_MAX + 1]; /* ws: the path and query as sent ("/" by default) */
	char user[BR_CRED_MAX + 1]; /* from "user:password@", %XX decoded; "" if none */
	char password[BR_CRED_MAX + 1];
	int has_password;
};

/*
 * Parse a peer URL:
 *   redis://[user[:password]@]host[:port][/db]          (want_key 0: a mirror's target)
 *   redis://[user[:password]@]host[:port][/db]/key      (want_key 1: an import's source;
 *                                                         one component alone is the key)
 *   ws://host[:port][/path[?query]]
 * host is a name, a dotted IPv4 address or [IPv6]. Default ports 6379 and 80.
 * Returns 0, or -1 with the reason in why (e.g. "TLS (rediss://) is not supported").
 */
int br_url_parse(const char *text, int want_key, struct br_url *u, char *why, size_t whylen);

/* The URL without its password, for logs and counters ("redis://user@host:port/db"). */
void br_url_show(const struct br_url *u, char *buf, size_t len);

/* ---- topic patterns ------------------------------------------------------------------- */

/*
 * Is pattern a valid topic pattern: dot-separated tokens of [A-Za-z0-9_-], each token
 * possibly "*" (exactly one token) or, last only, ">" (one or more tokens); a leading
 * "$sys." is allowed. Returns 0 or -1 with the reason in why.
 */
int br_pattern_check(const char *pattern, char *why, size_t whylen);

/* Has the pattern a wildcard? */
int br_pattern_wild(const char *pattern);

/*
 * Does topic match pattern? Topics under "$sys." match only patterns that start with
 * "$sys." themselves (so that ">" does not mirror the bus's own event log).
 */
int br_pattern_match(const char *pattern, const char *topic);

/* ---- base64 (RFC 4648, with padding) --------------------------------------------------- */

/* Encoded length of n bytes (without a NUL). */
static inline size_t br_b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Encode n bytes into out (br_b64_len(n) bytes; no NUL added). Returns that length. */
size_t br_b64_encode(const void *in, size_t n, char *out);

/* Decode text (n chars, padded) into out (room for max bytes). Returns the length or -1. */
int br_b64_decode(const char *text, size_t n, uint8_t *out, size_t max);

/* ---- SHA-1 (FIPS 180-4), for Sec-WebSocket-Accept only -------------------------------- */

void br_sha1(const void *data, size_t n, uint8_t out[20]);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2): 28 chars and a NUL. */
void br_ws_accept(const char *key, size_t keylen, char out[29]);

/* ---- Redis stream IDs ("MS-SEQ") -------------------------------------------------------- */

/* Room for a stream ID and its NUL (two 20-digit numbers and a dash). */
#define BR_ID_MAX 48

/* Decimal digits of v into buf (room for 21) and a NUL. Their count (no printf: hot path). */
size_t br_u64_dec(char *buf, uint64_t v);

/* The stream ID "ms-seq" into buf (room for BR_ID_MAX) and a NUL. Its length. */
size_t br_stream_id(char *buf, uint64_t ms, uint64_t seq);

/* Parse the stream ID s[0..n) ("ms-seq", both decimal, no sign). 0, or -1 if it is not one. */
int br_stream_id_parse(const char *s, size_t n, uint64_t *ms, uint64_t *seq);

/* ---- JSON --------------------------------------------------------------------------------- */

/*
 * The envelope of a message, one flat JSON object:
 *   {"topic":"T","seq":N,"type":N,"ts":NS[,"lost":N],"data":"BASE64"}
 * ("lost" only when lost is not 0). topic is a topic name (nothing in it needs escaping).
 * out has room for br_json_envelope_max(strlen(topic), len). Returns the length (no NUL).
 */
size_t br_json_envelope(char *out, size_t cap, const char *topic, uint64_t seq, uint32_t type,
			uint64_t ts, uint64_t lost, const void *data, size_t len);

static inline size_t br_json_envelope_max(size_t topic_len, size_t len)
{
	return topic_len + br_b64_len(len) + 160;
}

/*
 * The members of a flat JSON object s[0..n) (no nesting, as in an ack
 * {"topic":"T","ack":SEQ}), found by their quoted name: the decimal number of key (0, or
 * -1 if there is none), and the string of key without its quotes into out (room for len
 * with the NUL; 0, or -1 if there is none or it does not fit). Escapes are not decoded.
 */
int br_json_u64(const char *s, size_t n, const char *key, uint64_t *out);
int br_json_str(const char *s, size_t n, const char *key, char *out, size_t len);

/* ---- Redis replies (RESP) ------------------------------------------------------------------ */

/* Elements of one array in a reply we accept: hiredis 0.14 allocates what the peer says. */
#define BR_RESP_MAX_ELEMENTS 1000000

/*
 * A hiredis reader that refuses arrays of more than BR_RESP_MAX_ELEMENTS (the reply fails
 * with REDIS_ERR_OOM, "out of memory"). Feed it with redisReaderFeed(), take replies with
 * redisReaderGetReply(), free it with redisReaderFree(). NULL if out of memory.
 */
struct redisReader *br_resp_reader(void);

/* A reply as text for a message: an error's or status's text (printable ASCII only, the
 * rest as '?'), or what it is ("an integer reply"). Returns buf. */
const char *br_resp_text(const struct redisReply *r, char *buf, size_t len);

/* Is r the status OK? */
int br_resp_ok(const struct redisReply *r);

/* The string value of field name among an entry's [field, value, ...], or NULL. */
const struct redisReply *br_resp_field(const struct redisReply *fields, const char *name);

/*
 * Is r an XREAD answer for one stream, [[key, [[id, [field, value, ...]], ...]]], every id
 * a stream ID shorter than BR_ID_MAX and every field list of even length? 0 or -1.
 */
int br_resp_xread_check(const struct redisReply *r);

#endif
