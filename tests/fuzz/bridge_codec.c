/* SPDX-License-Identifier: MIT */
/*
 * The bridge's pure codecs (daemon/bridge/codec.c, http.c) on what a peer, a client or a
 * config file may send: random bytes and mutated valid inputs (bytes flipped, cut,
 * duplicated, swapped for interesting ones), fed whole or in random pieces. Each call must
 * return, stay inside its buffers (ASan) and keep its promises:
 *  - URLs: accepted ones have a scheme, a host and a port, and show without the password;
 *  - patterns: a valid pattern without wildcards matches itself;
 *  - base64: encode then decode gives the bytes back; decode never writes past max;
 *  - stream IDs: format then parse gives the numbers back;
 *  - JSON: an envelope fits br_json_envelope_max() and gives back its topic, seq and data;
 *    member lookups in random text stay in it and terminate their output;
 *  - RESP: the bounded reader refuses huge arrays; every reply it gives can be described,
 *    checked as an XREAD answer and, when that passes, walked for fields;
 *  - HTTP upgrade: requests and responses parse or fail with a status; a parsed request
 *    gives a 101 that the client side accepts with the same key.
 * ITERS rounds per codec; the seed is printed (SHMBUS_TEST_SEED=<seed> replays a run).
 */
#include "tests/lib/test.h"

#include <hiredis/hiredis.h>

#include "daemon/bridge/codec.h"
#include "daemon/bridge/http.h"

#define ITERS 20000

static uint64_t seed, rs;

static uint64_t rnd(uint64_t n)
{
	return n ? t_rand(&rs) % n : 0;
}

static void fill_random(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)t_rand(&rs);
}

/*
 * A mutation of src (n bytes) into out (room for cap): a few bytes replaced (by random
 * ones or by bytes that mean something to these codecs), cut, or a piece repeated. Its
 * length.
 */
static size_t mutate(const char *src, size_t n, char *out, size_t cap)
{
	static const char special[] = "%:@/[]?#&=-.*>$\"{}\\\r\n\0 +0129aZ";
	if (n > cap)
		n = cap;
	memcpy(out, src, n);
	int edits = 1 + (int)rnd(4);
	for (int e = 0; e < edits && n; e++) {
		size_t at = rnd(n);
		switch (rnd(5)) {
		case 0:
			out[at] = (char)t_rand(&rs);
			break;
		case 1:
			out[at] = special[rnd(sizeof(special) - 1)];
			break;
		case 2:
			n = at; /* cut */
			break;
		case 3: { /* repeat a piece */
			size_t len = 1 + rnd(16);
			if (at + len > n)
				len = n - at;
			if (n + len <= cap) {
				memmove(out + at + len, out + at, n - at);
				n += len;
			}
			break;
		}
		default: /* drop a byte */
			memmove(out + at, out + at + 1, n - at - 1);
			n--;
			break;
		}
	}
	return n;
}

/* A NUL-terminated input: a mutated sample or random printable-ish bytes. */
static void input(const char *const *samples, size_t nsamples, char *out, size_t cap)
{
	size_t n;
	if (rnd(4)) {
		const char *s = samples[rnd(nsamples)];
		n = mutate(s, strlen(s), out, cap - 1);
	} else {
		n = rnd(cap - 1);
		fill_random((uint8_t *)out, n);
	}
	out[n] = '\0';
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void fuzz_urls(void)
{
	int accepted = 0;
	static const char *const samples[] = {
		"redis://127.0.0.1:6379/0",
		"redis://u:p%40ss@[::1]:7000/2",
		"redis://h:9/3/a%2Fb",
		"redis://s3cret@h",
		"ws://h:8080/feed?x=1",
		"ws://[fe80::1]:80/",
		"rediss://h",
		"redis://h/0/k",
	};
	for (int i = 0; i < ITERS; i++) {
		char text[256], why[512], shown[4096];
		input(samples, N(samples), text, sizeof(text));
		struct br_url u;
		int want_key = (int)rnd(2);
		if (br_url_parse(text, want_key, &u, why, sizeof(why)) < 0) {
			CHECK(why[0] && memchr(why, 0, sizeof(why)));
			continue;
		}
		accepted++;
		CHECK(u.scheme == BR_REDIS || u.scheme == BR_WS);
		CHECK(u.host[0] && u.port);
		CHECK(memchr(u.host, 0, sizeof(u.host)) && memchr(u.path, 0, sizeof(u.path)));
		CHECK(!want_key || u.key[0]);
		/* Shown as if there were no password. */
		char bare[4096];
		br_url_show(&u, shown, sizeof(shown));
		memset(u.password, 0, sizeof(u.password));
		br_url_show(&u, bare, sizeof(bare));
		CHECK(!strcmp(shown, bare));
	}
	/* The mutations must reach the accepting paths, not only the refusals. */
	CHECK(accepted > ITERS / 20);
	printf("URLs: ok (%d accepted)\n", accepted);
}

static void fuzz_patterns(void)
{
	static const char *const samples[] = { "orders.*", "a.*.c.>", "$sys.log", ">", "a.b-c_d" };
	int valid = 0;
	for (int i = 0; i < ITERS; i++) {
		char p[200], t[200], why[256];
		input(samples, N(samples), p, sizeof(p));
		input(samples, N(samples), t, sizeof(t));
		int ok = br_pattern_check(p, why, sizeof(why)) == 0;
		valid += ok;
		br_pattern_match(p, t);
		br_pattern_wild(p);
		if (ok && !br_pattern_wild(p))
			CHECK(br_pattern_match(p, p));
	}
	CHECK(valid > ITERS / 20);
	printf("patterns: ok (%d valid)\n", valid);
}

static void fuzz_base64(void)
{
	for (int i = 0; i < ITERS; i++) {
		uint8_t in[300], back[300];
		char text[br_b64_len(sizeof(in)) + 1];
		size_t n = rnd(sizeof(in));
		fill_random(in, n);
		size_t tl = br_b64_encode(in, n, text);
		CHECK(tl == br_b64_len(n));
		CHECK(br_b64_decode(text, tl, back, n) == (int)n && !memcmp(back, in, n));
		/* Damaged text: any result, never past max. */
		size_t dl = mutate(text, tl, text, sizeof(text) - 1);
		size_t max = rnd(sizeof(back) + 1);
		uint8_t guard[sizeof(back) + 1];
		memset(guard, 0xa5, sizeof(guard));
		int rc = br_b64_decode(text, dl, guard, max);
		CHECK(rc <= (int)max);
		for (size_t k = max; k < sizeof(guard); k++)
			CHECK(guard[k] == 0xa5);
	}
	printf("base64: ok\n");
}

static void fuzz_ids(void)
{
	static const char *const samples[] = { "1700000000123-42", "0-0", "5-7",
					       "18446744073709551609-1" };
	for (int i = 0; i < ITERS; i++) {
		char id[BR_ID_MAX], text[64];
		uint64_t ms = t_rand(&rs) >> rnd(64), seq = t_rand(&rs) >> rnd(64), m2, s2;
		if (ms > UINT64_MAX - 6)
			ms = UINT64_MAX - 6;
		if (seq > UINT64_MAX - 6)
			seq = UINT64_MAX - 6;
		size_t n = br_stream_id(id, ms, seq);
		CHECK(n < BR_ID_MAX && strlen(id) == n);
		CHECK(br_stream_id_parse(id, n, &m2, &s2) == 0 && m2 == ms && s2 == seq);
		input(samples, N(samples), text, sizeof(text));
		br_stream_id_parse(text, strlen(text), &m2, &s2);
	}
	printf("stream IDs: ok\n");
}

static void fuzz_json(void)
{
	static const char *const samples[] = { "{\"topic\":\"orders.eu\",\"ack\":12345}",
					       "{\"ack\" : 7 , \"topic\" : \"t\"}",
					       "{\"topic\":\"a\",\"seq\":1,\"data\":\"aGk=\"}" };
	for (int i = 0; i < ITERS; i++) {
		/* An envelope holds what it was given. */
		static const char tok[] = "abcdefghijklmnopqrstuvwxyz0123456789_-";
		char topic[128];
		size_t tl = 1 + rnd(sizeof(topic) - 1);
		for (size_t k = 0; k < tl; k++)
			topic[k] = (k && k + 1 < tl && !rnd(8)) ? '.' : tok[rnd(sizeof(tok) - 1)];
		topic[tl] = '\0';
		uint8_t data[400];
		size_t dl = rnd(sizeof(data));
		fill_random(data, dl);
		uint64_t seq = t_rand(&rs), lost = rnd(2) ? t_rand(&rs) : 0;
		size_t max = br_json_envelope_max(tl, dl);
		char *env = malloc(max);
		CHECK(env);
		size_t n = br_json_envelope(env, max, topic, seq, (uint32_t)t_rand(&rs),
					    t_rand(&rs), lost, data, dl);
		CHECK(n <= max);
		char got[129], b64[br_b64_len(sizeof(data)) + 1];
		uint64_t v;
		uint8_t back[sizeof(data)];
		CHECK(br_json_str(env, n, "topic", got, sizeof(got)) == 0 && !strcmp(got, topic));
		CHECK(br_json_u64(env, n, "seq", &v) == 0);
		CHECK(v == seq || seq >= UINT64_MAX / 10); /* the reader stops before overflow */
		CHECK(br_json_str(env, n, "data", b64, sizeof(b64)) == 0);
		CHECK(br_b64_decode(b64, strlen(b64), back, sizeof(back)) == (int)dl);
		CHECK(!memcmp(back, data, dl));
		free(env);
		/* Lookups in damaged text stay in it. */
		char text[200];
		input(samples, N(samples), text, sizeof(text));
		size_t len = strlen(text);
		char *copy = malloc(len ? len : 1); /* exactly len bytes: ASan sees an overrun */
		CHECK(copy);
		memcpy(copy, text, len);
		char out[16];
		if (br_json_str(copy, len, "topic", out, sizeof(out)) == 0)
			CHECK(strlen(out) < sizeof(out));
		br_json_u64(copy, len, "ack", &v);
		free(copy);
	}
	printf("JSON: ok\n");
}

static int xread_ok; /* replies that passed as XREAD answers */

/* Everything the bridge asks of a reply. */
static void use_reply(const redisReply *r)
{
	char text[200];
	br_resp_text(r, text, sizeof(text));
	CHECK(strlen(text) < sizeof(text));
	br_resp_ok(r);
	if (br_resp_xread_check(r) < 0)
		return;
	xread_ok++;
	const redisReply *es = r->element[0]->element[1];
	for (size_t i = 0; i < es->elements; i++) {
		const redisReply *f = es->element[i]->element[1];
		br_resp_field(f, "data");
		br_resp_field(f, "origin");
		br_resp_field(f, "type");
	}
}

static void fuzz_resp(void)
{
	static const char *const samples[] = {
		"+OK\r\n",
		"-ERR equal or smaller than the target stream top item\r\n",
		":42\r\n",
		"$-1\r\n*-1\r\n",
		"$5\r\nhello\r\n",
		"*1\r\n*2\r\n$1\r\nk\r\n*2\r\n*2\r\n$3\r\n1-1\r\n*4\r\n$4\r\ndata\r\n$2\r\nhi\r\n"
		"$6\r\norigin\r\n$3\r\nh/b\r\n*2\r\n$3\r\n1-2\r\n*2\r\n$4\r\ntype\r\n$1\r\n7\r\n",
		"*1\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$3\r\ngen\r\n$16\r\n0123456789abcdef\r\n",
		"*2000000\r\n",
	};
	for (int i = 0; i < ITERS; i++) {
		char text[600];
		input(samples, N(samples), text, sizeof(text));
		size_t len = rnd(4) ? strlen(text) : sizeof(text) - 1; /* NULs too */
		redisReader *rd = br_resp_reader();
		CHECK(rd);
		size_t off = 0;
		int failed = 0;
		while (off < len && !failed) {
			size_t piece = 1 + rnd(len - off);
			CHECK(redisReaderFeed(rd, text + off, piece) == REDIS_OK);
			off += piece;
			for (;;) {
				void *r = NULL;
				if (redisReaderGetReply(rd, &r) != REDIS_OK) {
					failed = 1;
					break;
				}
				if (!r)
					break;
				use_reply(r);
				freeReplyObject(r);
			}
		}
		redisReaderFree(rd);
	}
	/* The bound: a huge array is refused, not allocated. */
	redisReader *rd = br_resp_reader();
	void *r = NULL;
	CHECK(redisReaderFeed(rd, "*2000000000\r\n", 13) == REDIS_OK);
	CHECK(redisReaderGetReply(rd, &r) != REDIS_OK && !r);
	redisReaderFree(rd);
	CHECK(xread_ok > 0);
	printf("Redis replies: ok (%d XREAD answers)\n", xread_ok);
}

static void fuzz_http(void)
{
	static const char *const samples[] = {
		"GET /topics/orders.%3E?from=5&format=binary HTTP/1.1\r\nHost: h\r\n"
		"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
	};
	int upgrades = 0;
	for (int i = 0; i < ITERS; i++) {
		char text[700], why[300];
		input(samples, N(samples), text, sizeof(text));
		size_t len = strlen(text);
		size_t max = 64 + rnd(1024);
		struct ws_request req;
		int rc = ws_parse_request(text, len, max, &req, why, sizeof(why));
		CHECK(rc <= (int)len);
		if (rc > 0) {
			/* A request we accept gets a 101 that its client accepts. */
			upgrades++;
			char resp[512];
			size_t n = ws_response_101(&req, resp, sizeof(resp));
			CHECK(n > 0 && n < sizeof(resp));
			CHECK(ws_parse_response(resp, n, 8192, req.key, why, sizeof(why)) ==
			      (int)n);
		} else if (rc < 0) {
			CHECK(rc == -400 || rc == -405 || rc == -426 || rc == -431 || rc == -505);
		}
		rc = ws_parse_response(text, len, max, "dGhlIHNhbXBsZSBub25jZQ==", why,
				       sizeof(why));
		CHECK(rc <= (int)len);
		ws_utf8_valid((const uint8_t *)text, len);
	}
	CHECK(upgrades > 0);
	printf("HTTP upgrade: ok (%d requests accepted)\n", upgrades);
}

int main(void)
{
	seed = t_seed();
	rs = seed;
	printf("seed %" PRIu64 "\n", seed);
	fuzz_urls();
	fuzz_patterns();
	fuzz_base64();
	fuzz_ids();
	fuzz_json();
	fuzz_resp();
	fuzz_http();
	return 0;
}
