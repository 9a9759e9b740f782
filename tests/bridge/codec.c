/* SPDX-License-Identifier: MIT */
/*
 * The bridge's pure helpers (daemon/bridge/codec.c): peer URLs (good and bad), topic
 * patterns and matching, base64 (RFC 4648 vectors), SHA-1 (FIPS 180 vectors), the
 * WebSocket accept key (RFC 6455's example), stream IDs, the JSON envelope and acks, and
 * Redis replies (the bounded reader, the XREAD shape, fields, texts).
 */
#include <hiredis/hiredis.h>

#include "daemon/bridge/codec.h"
#include "tests/lib/test.h"

/* The one reply in text (RESP), read with the bridge's reader; NULL if it is refused. */
static redisReply *resp(const char *text)
{
	redisReader *rd = br_resp_reader();
	CHECK(rd);
	void *r = NULL;
	CHECK(redisReaderFeed(rd, text, strlen(text)) == REDIS_OK);
	int rc = redisReaderGetReply(rd, &r);
	redisReaderFree(rd);
	return rc == REDIS_OK ? r : NULL;
}

static void url_ok(const char *text, int want_key, int scheme, const char *host, int port, int db,
		   const char *key_or_path, const char *user, const char *pass)
{
	struct br_url u;
	char why[512];
	if (br_url_parse(text, want_key, &u, why, sizeof(why)) < 0) {
		fprintf(stderr, "'%s' refused: %s\n", text, why);
		exit(1);
	}
	CHECK(u.scheme == scheme && !strcmp(u.host, host) && u.port == port);
	if (scheme == BR_REDIS) {
		CHECK((int)u.db == db && !strcmp(u.key, key_or_path));
		CHECK(!strcmp(u.user, user) && !strcmp(u.password, pass));
		CHECK(u.has_password == (pass[0] != 0));
	} else {
		CHECK(!strcmp(u.path, key_or_path));
	}
}

static void url_bad(const char *text, int want_key, const char *reason)
{
	struct br_url u;
	char why[512];
	CHECK(br_url_parse(text, want_key, &u, why, sizeof(why)) < 0);
	if (!strstr(why, reason)) {
		fprintf(stderr, "'%s': reason '%s' does not say '%s'\n", text, why, reason);
		exit(1);
	}
}

int main(void)
{
	url_ok("redis://127.0.0.1:6379/0", 0, BR_REDIS, "127.0.0.1", 6379, 0, "", "", "");
	url_ok("redis://localhost", 0, BR_REDIS, "localhost", 6379, 0, "", "", "");
	url_ok("redis://h:1/15", 0, BR_REDIS, "h", 1, 15, "", "", "");
	url_ok("redis://:s3cret@h", 0, BR_REDIS, "h", 6379, 0, "", "", "s3cret");
	url_ok("redis://s3cret@h", 0, BR_REDIS, "h", 6379, 0, "", "", "s3cret");
	url_ok("redis://u:p%40ss@[::1]:7000/2", 0, BR_REDIS, "::1", 7000, 2, "", "u", "p@ss");
	url_ok("redis://h/orders", 1, BR_REDIS, "h", 6379, 0, "orders", "", "");
	url_ok("redis://h:9/3/a%2Fb", 1, BR_REDIS, "h", 9, 3, "a/b", "", "");
	url_ok("ws://h:8080/feed?x=1", 0, BR_WS, "h", 8080, 0, "/feed?x=1", "", "");
	url_ok("ws://h", 0, BR_WS, "h", 80, 0, "/", "", "");
	url_bad("rediss://h", 0, "TLS");
	url_bad("wss://h/x", 0, "TLS");
	url_bad("http://h", 0, "neither");
	url_bad("redis://", 0, "no host");
	url_bad("redis://h:0", 0, "port 0");
	url_bad("redis://h:99999", 0, "out of range");
	url_bad("redis://h:x", 0, "bad port");
	url_bad("redis://h/0/k", 0, "database number");
	url_bad("redis://h/zero", 0, "not a number");
	url_bad("redis://h", 1, "no stream key");
	url_bad("redis://h/k%zz", 1, "bad stream key");
	url_bad("redis://h/k%00", 1, "bad stream key");
	url_bad("ws://u:p@h", 0, "credentials");
	url_bad("ws://h/a b", 0, "bad character");
	url_bad("ws://h/a", 1, "imports read Redis");
	url_bad("redis://[::1", 0, "unclosed");
	url_bad("redis://h\x01st", 0, "bad character");
	printf("URLs: ok\n");

	char why[256];
	CHECK(br_pattern_check("orders.*", why, sizeof(why)) == 0);
	CHECK(br_pattern_check(">", why, sizeof(why)) == 0);
	CHECK(br_pattern_check("a.*.c.>", why, sizeof(why)) == 0);
	CHECK(br_pattern_check("$sys.log", why, sizeof(why)) == 0);
	CHECK(br_pattern_check("a..b", why, sizeof(why)) < 0);
	CHECK(br_pattern_check("a.>.b", why, sizeof(why)) < 0);
	CHECK(br_pattern_check("a.b*", why, sizeof(why)) < 0);
	CHECK(br_pattern_check("", why, sizeof(why)) < 0);
	CHECK(br_pattern_wild("a.*") && br_pattern_wild(">") && !br_pattern_wild("a.b"));
	CHECK(br_pattern_match("orders.*", "orders.eu"));
	CHECK(!br_pattern_match("orders.*", "orders.eu.x"));
	CHECK(!br_pattern_match("orders.*", "orders"));
	CHECK(br_pattern_match("orders.>", "orders.eu.x"));
	CHECK(!br_pattern_match("orders.>", "orders"));
	CHECK(br_pattern_match("*.eu", "orders.eu"));
	CHECK(br_pattern_match("a.b", "a.b") && !br_pattern_match("a.b", "a.bc"));
	CHECK(!br_pattern_match("a.bc", "a.b"));
	CHECK(br_pattern_match(">", "x") && br_pattern_match(">", "x.y"));
	CHECK(!br_pattern_match(">", "$sys.log") && !br_pattern_match("*.log", "$sys.log"));
	CHECK(br_pattern_match("$sys.log", "$sys.log") && br_pattern_match("$sys.>", "$sys.log"));
	printf("patterns: ok\n");

	static const char *const b64in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const b64out[] = { "",	  "Zg==",     "Zm8=",	 "Zm9v",
					      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	for (int i = 0; i < 7; i++) {
		char out[16];
		size_t n = br_b64_encode(b64in[i], strlen(b64in[i]), out);
		CHECK(n == strlen(b64out[i]) && !memcmp(out, b64out[i], n));
		CHECK(br_b64_len(strlen(b64in[i])) == n);
		uint8_t back[16];
		CHECK(br_b64_decode(out, n, back, sizeof(back)) == (int)strlen(b64in[i]));
		CHECK(!memcmp(back, b64in[i], strlen(b64in[i])));
	}
	uint8_t tmp[16];
	CHECK(br_b64_decode("Zm9", 3, tmp, sizeof(tmp)) < 0);
	CHECK(br_b64_decode("Zm=v", 4, tmp, sizeof(tmp)) < 0);
	CHECK(br_b64_decode("Z!9v", 4, tmp, sizeof(tmp)) < 0);
	CHECK(br_b64_decode("Zm9vYmFy", 8, tmp, 5) < 0);
	printf("base64: ok\n");

	struct {
		const char *in;
		const char *hex;
	} v[] = {
		{ "", "da39a3ee5e6b4b0d3255bfef95601890afd80709" },
		{ "abc", "a9993e364706816aba3e25717850c26c9cd0d89d" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		  "84983e441c3bd26ebaae4aa1f95129e5e54670f1" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t d[20];
		char hex[41];
		br_sha1(v[i].in, strlen(v[i].in), d);
		for (int k = 0; k < 20; k++)
			snprintf(hex + 2 * k, 3, "%02x", d[k]);
		CHECK(!strcmp(hex, v[i].hex));
	}
	/* A million 'a' (many blocks) and 55/56/64-byte edges (padding into a 2nd block). */
	static char big[1000000];
	memset(big, 'a', sizeof(big));
	uint8_t d[20];
	char hex[41];
	br_sha1(big, sizeof(big), d);
	for (int k = 0; k < 20; k++)
		snprintf(hex + 2 * k, 3, "%02x", d[k]);
	CHECK(!strcmp(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"));
	char acc[29];
	br_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
	CHECK(!strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
	printf("SHA-1, accept key: ok\n");

	char id[BR_ID_MAX];
	uint64_t ms, seq;
	CHECK(br_stream_id(id, 1700000000123ull, 42) == 16 && !strcmp(id, "1700000000123-42"));
	CHECK(br_stream_id(id, UINT64_MAX, UINT64_MAX) == 41 && strlen(id) == 41);
	CHECK(br_stream_id(id, UINT64_MAX - 6, UINT64_MAX - 6) == 41);
	CHECK(br_stream_id_parse(id, strlen(id), &ms, &seq) == 0);
	CHECK(ms == UINT64_MAX - 6 && seq == UINT64_MAX - 6);
	CHECK(br_stream_id_parse("0-0", 3, &ms, &seq) == 0 && ms == 0 && seq == 0);
	CHECK(br_stream_id_parse("5-7", 3, &ms, &seq) == 0 && ms == 5 && seq == 7);
	static const char *const bad_ids[] = {
		"", "5", "5-", "-7", "5--7", "5-7-1", "a-1", "1-b", "+1-1", "18446744073709551616-0"
	};
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++)
		CHECK(br_stream_id_parse(bad_ids[i], strlen(bad_ids[i]), &ms, &seq) < 0);
	CHECK(br_u64_dec(id, 0) == 1 && !strcmp(id, "0"));
	printf("stream IDs: ok\n");

	char env[256];
	size_t n = br_json_envelope(env, sizeof(env), "a.b", 7, 3, 99, 0, "hi", 2);
	CHECK(n == strlen("{\"topic\":\"a.b\",\"seq\":7,\"type\":3,\"ts\":99,\"data\":\"aGk=\"}"));
	CHECK(!memcmp(env, "{\"topic\":\"a.b\",\"seq\":7,\"type\":3,\"ts\":99,\"data\":\"aGk=\"}",
		      n));
	CHECK(n <= br_json_envelope_max(3, 2));
	n = br_json_envelope(env, sizeof(env), "t", 1, 0, 2, 5, NULL, 0);
	CHECK(n ==
	      strlen("{\"topic\":\"t\",\"seq\":1,\"type\":0,\"ts\":2,\"lost\":5,\"data\":\"\"}"));
	CHECK(!memcmp(env,
		      "{\"topic\":\"t\",\"seq\":1,\"type\":0,\"ts\":2,\"lost\":5,\"data\":\"\"}",
		      n));
	const char *ack = "{\"topic\": \"orders.eu\", \"ack\" : 12345}";
	char topic[16];
	uint64_t num;
	CHECK(br_json_str(ack, strlen(ack), "topic", topic, sizeof(topic)) == 0);
	CHECK(!strcmp(topic, "orders.eu"));
	CHECK(br_json_u64(ack, strlen(ack), "ack", &num) == 0 && num == 12345);
	CHECK(br_json_u64(ack, strlen(ack), "seq", &num) < 0);
	CHECK(br_json_u64(ack, strlen(ack), "topic", &num) < 0);
	CHECK(br_json_str(ack, strlen(ack), "ack", topic, sizeof(topic)) < 0);
	CHECK(br_json_str(ack, strlen(ack), "topic", topic, 9) < 0);	/* does not fit */
	CHECK(br_json_str(ack, 20, "topic", topic, sizeof(topic)) < 0); /* cut short */
	printf("JSON: ok\n");

	redisReply *r = resp("+OK\r\n");
	CHECK(r && br_resp_ok(r));
	freeReplyObject(r);
	r = resp("-ERR no\x01way\r\n");
	CHECK(r && !br_resp_ok(r) && !strcmp(br_resp_text(r, env, sizeof(env)), "ERR no?way"));
	freeReplyObject(r);
	r = resp(":3\r\n");
	CHECK(r && !strcmp(br_resp_text(r, env, sizeof(env)), "an integer reply"));
	freeReplyObject(r);
	r = resp("*-1\r\n");
	CHECK(r && !strcmp(br_resp_text(r, env, sizeof(env)), "a nil reply"));
	freeReplyObject(r);
	/* XREAD: one stream, entries with even field lists and valid IDs. */
	r = resp("*1\r\n*2\r\n$1\r\nk\r\n*2\r\n"
		 "*2\r\n$3\r\n1-1\r\n*4\r\n$4\r\ndata\r\n$2\r\nhi\r\n$4\r\ntype\r\n:7\r\n"
		 "*2\r\n$3\r\n1-2\r\n*0\r\n");
	CHECK(r && br_resp_xread_check(r) == 0);
	const redisReply *f = r->element[0]->element[1]->element[0]->element[1];
	const redisReply *data = br_resp_field(f, "data");
	CHECK(data && data->len == 2 && !memcmp(data->str, "hi", 2));
	CHECK(!br_resp_field(f, "type")); /* not a string */
	CHECK(!br_resp_field(f, "origin"));
	freeReplyObject(r);
	static const char *const bad_xread[] = {
		"*0\r\n",
		"*2\r\n*0\r\n*0\r\n",
		"*1\r\n*2\r\n$1\r\nk\r\n$1\r\nx\r\n",
		"*1\r\n*2\r\n$1\r\nk\r\n*1\r\n*2\r\n$3\r\nx-1\r\n*0\r\n",
		"*1\r\n*2\r\n$1\r\nk\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*1\r\n$1\r\na\r\n",
	};
	for (size_t i = 0; i < sizeof(bad_xread) / sizeof(bad_xread[0]); i++) {
		r = resp(bad_xread[i]);
		CHECK(r && br_resp_xread_check(r) < 0);
		freeReplyObject(r);
	}
	/* An array larger than the bound is refused before anything is allocated for it. */
	CHECK(!resp("*1000001\r\n"));
	r = resp("*0\r\n");
	CHECK(r);
	freeReplyObject(r);
	printf("Redis replies: ok\n");
	return 0;
}
