/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket opening handshake (RFC 6455 section 4), both sides, as pure functions over
 * bytes received so far: no I/O, no allocation, every length bounded. A request or
 * response is "incomplete" until its blank line; past max bytes without one it is refused
 * (431), as is any line longer than HTTP_LINE_MAX or more than HTTP_HEADERS_MAX headers.
 */
#ifndef SHMBUSD_BRIDGE_HTTP_H
#define SHMBUSD_BRIDGE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_LINE_MAX 4096
#define HTTP_HEADERS_MAX 64
#define HTTP_PATH_MAX 1024

struct ws_request {
	char path[HTTP_PATH_MAX + 1]; /* the request target, as sent (path and query) */
	char key[64];		      /* Sec-WebSocket-Key */
};

/*
 * Parse an upgrade request from buf (len bytes so far, at most max looked at).
 * Returns 0 if more bytes are needed, the request's length (headers and blank line) when
 * it is complete and valid, or -status (400, 405, 426, 431, 505) with the reason in why.
 */
int ws_parse_request(const char *buf, size_t len, size_t max, struct ws_request *req, char *why,
		     size_t whylen);

/* The 101 response for a valid request into out (room for len). Its length. */
size_t ws_response_101(const struct ws_request *req, char *out, size_t len);

/* An error response (status, reason as text/plain), "Connection: close". Its length. */
size_t ws_response_error(int status, const char *reason, char *out, size_t len);

/* The client's request for path on host:port with key (base64 of 16 random bytes). */
size_t ws_client_request(const char *host, uint16_t port, const char *path, const char *key,
			 char *out, size_t len);

/*
 * Parse the server's answer to our request with key: 0 if more bytes are needed, its
 * length if it is a valid 101 with the right accept key, or -1 with why.
 */
int ws_parse_response(const char *buf, size_t len, size_t max, const char *key, char *why,
		      size_t whylen);

/* Is p[0..n) valid UTF-8 (no overlong forms, surrogates, or code points past U+10FFFF)? */
int ws_utf8_valid(const uint8_t *p, size_t n);

#endif
