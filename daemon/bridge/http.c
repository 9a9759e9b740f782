/* SPDX-License-Identifier: MIT */
#include "daemon/bridge/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "daemon/bridge/codec.h"

#define WHY(st, ...) (snprintf(why, whylen, __VA_ARGS__), -(st))

/* Does the comma-separated header value v (n bytes) hold token t (any case)? */
static int has_token(const char *v, size_t n, const char *t)
{
	size_t tl = strlen(t), i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && !strncasecmp(v + s, t, tl))
			return 1;
	}
	return 0;
}

/* Find the end of the header block ("\r\n\r\n") in the first max bytes. Its length
 * including the blank line, 0 if not there yet, -431 when max is exceeded. */
static int block_end(const char *buf, size_t len, size_t max)
{
	size_t n = len < max ? len : max;
	for (size_t i = 3; i < n; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
		    buf[i - 3] == '\r')
			return (int)(i + 1);
	return len >= max ? -431 : 0;
}

struct hdr {
	const char *name, *value;
	size_t nlen, vlen;
};

/* Split [buf, buf+end) into the first line and headers. 0 or -status with why. */
static int split(const char *buf, int end, const char **first, size_t *flen, struct hdr *h, int *nh,
		 char *why, size_t whylen)
{
	const char *p = buf, *stop = buf + end - 2; /* before the blank line's CRLF */
	int line = 0;
	*nh = 0;
	while (p < stop) {
		const char *eol = memchr(p, '\r', (size_t)(stop - p));
		if (!eol || eol[1] != '\n')
			return WHY(400, "a line does not end with CRLF");
		size_t n = (size_t)(eol - p);
		if (n > HTTP_LINE_MAX)
			return WHY(431, "a header line longer than %d bytes", HTTP_LINE_MAX);
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)p[i] < 0x20 && p[i] != '\t')
				return WHY(400, "a control character in the headers");
		if (line == 0) {
			*first = p;
			*flen = n;
		} else {
			if (*nh == HTTP_HEADERS_MAX)
				return WHY(431, "more than %d headers", HTTP_HEADERS_MAX);
			if (p[0] == ' ' || p[0] == '\t')
				return WHY(400, "folded header lines are not allowed");
			const char *colon = memchr(p, ':', n);
			if (!colon || colon == p)
				return WHY(400, "a header line without a name");
			for (const char *q = p; q < colon; q++)
				if (*q == ' ' || *q == '\t')
					return WHY(400, "white space in a header name");
			struct hdr *x = &h[(*nh)++];
			x->name = p;
			x->nlen = (size_t)(colon - p);
			const char *v = colon + 1, *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			x->value = v;
			x->vlen = (size_t)(ve - v);
		}
		line++;
		p = eol + 2;
	}
	if (!line)
		return WHY(400, "an empty request");
	return 0;
}

static const struct hdr *find(const struct hdr *h, int nh, const char *name, int *count)
{
	const struct hdr *f = NULL;
	size_t n = strlen(name);
	*count = 0;
	for (int i = 0; i < nh; i++)
		if (h[i].nlen == n && !strncasecmp(h[i].name, name, n)) {
			f = &h[i];
			(*count)++;
		}
	return f;
}

int ws_parse_request(const char *buf, size_t len, size_t max, struct ws_request *req, char *why,
		     size_t whylen)
{
	memset(req, 0, sizeof(*req));
	int end = block_end(buf, len, max);
	if (end == 0)
		return 0;
	if (end < 0)
		return WHY(431, "the request headers exceed %zu bytes", max);
	const char *first = NULL;
	size_t flen = 0;
	struct hdr h[HTTP_HEADERS_MAX];
	int nh, rc = split(buf, end, &first, &flen, h, &nh, why, whylen);
	if (rc < 0)
		return rc;
	/* GET SP target SP HTTP/1.1 */
	const char *sp1 = memchr(first, ' ', flen);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', flen - (size_t)(sp1 + 1 - first)) : NULL;
	if (!sp1 || !sp2)
		return WHY(400, "a malformed request line");
	if ((size_t)(sp1 - first) != 3 || memcmp(first, "GET", 3))
		return WHY(405, "only GET opens a WebSocket");
	size_t vlen = flen - (size_t)(sp2 + 1 - first);
	if (vlen != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) || sp2[8] < '1' || sp2[8] > '9')
		return WHY(505, "HTTP/1.1 is needed");
	size_t tlen = (size_t)(sp2 - sp1 - 1);
	if (!tlen || sp1[1] != '/')
		return WHY(400, "the target must be a path");
	if (tlen > HTTP_PATH_MAX)
		return WHY(431, "the target is longer than %d bytes", HTTP_PATH_MAX);
	memcpy(req->path, sp1 + 1, tlen);
	req->path[tlen] = '\0';
	int n;
	const struct hdr *x = find(h, nh, "Host", &n);
	if (n != 1)
		return WHY(400, "exactly one Host header is needed");
	x = find(h, nh, "Upgrade", &n);
	if (!x || !has_token(x->value, x->vlen, "websocket"))
		return WHY(400, "no 'Upgrade: websocket'");
	x = find(h, nh, "Connection", &n);
	if (!x || !has_token(x->value, x->vlen, "Upgrade"))
		return WHY(400, "no 'Connection: Upgrade'");
	x = find(h, nh, "Sec-WebSocket-Version", &n);
	if (!x || n != 1 || x->vlen != 2 || memcmp(x->value, "13", 2))
		return WHY(426, "Sec-WebSocket-Version 13 is needed");
	x = find(h, nh, "Sec-WebSocket-Key", &n);
	uint8_t raw[32];
	if (!x || n != 1 || x->vlen != 24 || br_b64_decode(x->value, 24, raw, sizeof(raw)) != 16)
		return WHY(400, "Sec-WebSocket-Key must be base64 of 16 bytes");
	memcpy(req->key, x->value, 24);
	req->key[24] = '\0';
	return end;
}

size_t ws_response_101(const struct ws_request *req, char *out, size_t len)
{
	char acc[29];
	br_ws_accept(req->key, strlen(req->key), acc);
	int n = snprintf(out, len,
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			 acc);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

static const char *status_text(int st)
{
	switch (st) {
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 426:
		return "Upgrade Required";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

size_t ws_response_error(int status, const char *reason, char *out, size_t len)
{
	int n = snprintf(out, len,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n%s%s\r\n%s\n",
			 status, status_text(status), strlen(reason) + 1,
			 status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "",
			 status == 405 ? "Allow: GET\r\n" : "", reason);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

size_t ws_client_request(const char *host, uint16_t port, const char *path, const char *key,
			 char *out, size_t len)
{
	int v6 = strchr(host, ':') != NULL;
	int n = snprintf(out, len,
			 "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\nUser-Agent: shmbusd\r\n\r\n",
			 path, v6 ? "[" : "", host, v6 ? "]" : "", port, key);
	return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

int ws_parse_response(const char *buf, size_t len, size_t max, const char *key, char *why,
		      size_t whylen)
{
	int end = block_end(buf, len, max);
	if (end == 0)
		return 0;
	if (end < 0) {
		snprintf(why, whylen, "the handshake response exceeds %zu bytes", max);
		return -1;
	}
	const char *first = NULL;
	size_t flen = 0;
	struct hdr h[HTTP_HEADERS_MAX];
	int nh;
	if (split(buf, end, &first, &flen, h, &nh, why, whylen) < 0)
		return -1;
	if (flen < 12 || memcmp(first, "HTTP/1.1 ", 9)) {
		snprintf(why, whylen, "not an HTTP/1.1 response");
		return -1;
	}
	if (memcmp(first + 9, "101", 3)) {
		snprintf(why, whylen, "the server said '%.*s'", (int)(flen < 80 ? flen : 80),
			 first);
		return -1;
	}
	int n;
	const struct hdr *x = find(h, nh, "Upgrade", &n);
	if (!x || !has_token(x->value, x->vlen, "websocket")) {
		snprintf(why, whylen, "no 'Upgrade: websocket' in the response");
		return -1;
	}
	x = find(h, nh, "Connection", &n);
	if (!x || !has_token(x->value, x->vlen, "Upgrade")) {
		snprintf(why, whylen, "no 'Connection: Upgrade' in the response");
		return -1;
	}
	char acc[29];
	br_ws_accept(key, strlen(key), acc);
	x = find(h, nh, "Sec-WebSocket-Accept", &n);
	if (!x || n != 1 || x->vlen != 28 || memcmp(x->value, acc, 28)) {
		snprintf(why, whylen, "a wrong Sec-WebSocket-Accept");
		return -1;
	}
	if (find(h, nh, "Sec-WebSocket-Extensions", &n) ||
	    find(h, nh, "Sec-WebSocket-Protocol", &n)) {
		snprintf(why, whylen, "the server chose an extension or protocol we did not offer");
		return -1;
	}
	return end;
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			k = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return 0;
		}
		if (i + k >= n)
			return 0; /* cut short */
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}
