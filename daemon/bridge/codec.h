/* SPDX-License-Identifier: MIT */
/*
 * The bridge's pure helpers, no I/O and no state: peer URLs, topic patterns, base64,
 * SHA-1 (for the WebSocket handshake's accept key). Shared by the config parser and the
 * bridge thread; unit-tested in tests/bridge/codec.c. Every function bounds its output
 * and says so in its return value; nothing here allocates.
 */
#ifndef SHMBUSD_BRIDGE_CODEC_H
#define SHMBUSD_BRIDGE_CODEC_H

#include <stddef.h>
#include <stdint.h>

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

#endif
