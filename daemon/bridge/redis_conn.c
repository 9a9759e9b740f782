/* SPDX-License-Identifier: MIT */
#include "daemon/bridge/redis_conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/sds.h>

#define MAX_UNPARSED (256u << 20) /* bytes of one reply not yet complete */

/*
 * redisFormatSdsCommandArgv() rather than redisFormatCommandArgv(): the same encoding, but
 * hiredis 0.14's plain variant calls libc sprintf for every argument's length, which was
 * half of the bridge thread's time under load; the sds variant uses hiredis's own small
 * formatter.
 */
int redis_cmd(struct bconn *c, int argc, const char **argv, const size_t *argl)
{
	sds cmd = NULL;
	int n = redisFormatSdsCommandArgv(&cmd, argc, argv, argl);
	if (n < 0 || !cmd)
		return -ENOMEM;
	int rc = bbuf_put(&c->out, cmd, (size_t)n);
	sdsfree(cmd);
	c->queued += (uint64_t)n;
	return rc;
}

int redis_cmd_last_entry(struct bconn *c, const char *key, size_t keylen)
{
	return redis_cmd(c, 6, (const char *[]){ "XREVRANGE", key, "+", "-", "COUNT", "1" },
			 (size_t[]){ 9, keylen, 1, 1, 5, 1 });
}

/* AUTH and SELECT as the config says; the kinds of their replies into kinds. Their count. */
static int handshake(struct bconn *c, const struct br_peer *p, uint32_t db, uint8_t kinds[2])
{
	int n = 0;
	if (p->has_password) {
		if (p->user[0])
			redis_cmd(c, 3, (const char *[]){ "AUTH", p->user, p->password },
				  (size_t[]){ 4, strlen(p->user), strlen(p->password) });
		else
			redis_cmd(c, 2, (const char *[]){ "AUTH", p->password },
				  (size_t[]){ 4, strlen(p->password) });
		kinds[n++] = PK_AUTH;
	}
	if (db) {
		char dbs[16];
		int l = snprintf(dbs, sizeof(dbs), "%u", db);
		redis_cmd(c, 2, (const char *[]){ "SELECT", dbs }, (size_t[]){ 6, (size_t)l });
		kinds[n++] = PK_SELECT;
	}
	return n;
}

int redis_connected(struct bconn *c, struct redisReader **rd, const struct br_peer *p, uint32_t db,
		    uint8_t kinds[2])
{
	redis_disconnected(rd);
	*rd = br_resp_reader();
	if (!*rd) {
		bconn_fail(c, "out of memory");
		return -1;
	}
	return handshake(c, p, db, kinds);
}

void redis_disconnected(struct redisReader **rd)
{
	if (*rd)
		redisReaderFree(*rd);
	*rd = NULL;
}

int redis_handshake_reply(int kind, const struct redisReply *r, char *why, size_t whylen)
{
	if (br_resp_ok(r))
		return 0;
	char e[200];
	snprintf(why, whylen, "%s refused: %s", kind == PK_AUTH ? "AUTH" : "SELECT",
		 br_resp_text(r, e, sizeof(e)));
	return -1;
}

int redis_replies(struct bconn *c, struct redisReader *rd, const uint8_t *data, size_t n,
		  int (*fn)(void *arg, struct redisReply *r), void *arg)
{
	if (redisReaderFeed(rd, (const char *)data, n) != REDIS_OK) {
		bconn_fail(c, "Redis protocol error: %s", rd->errstr);
		return -ENOMEM;
	}
	for (;;) {
		void *r = NULL;
		if (redisReaderGetReply(rd, &r) != REDIS_OK) {
			bconn_fail(c, "Redis protocol error: %s",
				   rd->err == REDIS_ERR_OOM ? "a reply too large" : rd->errstr);
			return -EPROTO;
		}
		if (!r)
			break;
		if (fn(arg, r) < 0)
			return -1;
	}
	if (rd->len - rd->pos > MAX_UNPARSED)
		bconn_fail(c, "Redis sent a reply of more than %u MiB", MAX_UNPARSED >> 20);
	return 0;
}
