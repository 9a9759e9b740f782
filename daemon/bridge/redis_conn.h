/* SPDX-License-Identifier: MIT */
/*
 * Redis on a bridge connection (redis_conn.c), for the Redis mirror and the import: hiredis
 * as the codec only. Commands are formatted into the connection's out buffer, replies
 * parsed from what recv brought (codec.h's bounded reader); hiredis does no I/O here.
 * Bridge thread only.
 */
#ifndef SHMBUSD_BRIDGE_REDIS_CONN_H
#define SHMBUSD_BRIDGE_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/bridge/config.h"
#include "daemon/bridge/conn.h"

struct redisReader;
struct redisReply;

/* What a command in flight was, to read its reply (struct pend's kind, the import's). */
enum { PK_AUTH = 1, PK_SELECT, PK_QUERY, PK_XADD, PK_PUBLISH, PK_XREAD };

/* Append the command argv (argc arguments of argl bytes) to c's out. 0 or -ENOMEM. */
int redis_cmd(struct bconn *c, int argc, const char **argv, const size_t *argl);

/* Append XREVRANGE KEY + - COUNT 1 (the stream's last entry). 0 or -ENOMEM. */
int redis_cmd_last_entry(struct bconn *c, const char *key, size_t keylen);

/*
 * A connection to Redis opened: a fresh reader into *rd (the last one freed), then AUTH
 * (when p has a password) and SELECT (when db is not 0) appended to c's out; the kinds of
 * the replies to expect, in order, into kinds. Returns their count (0 to 2), or -1 after
 * bconn_fail() (out of memory).
 */
int redis_connected(struct bconn *c, struct redisReader **rd, const struct br_peer *p, uint32_t db,
		    uint8_t kinds[2]);

/* The connection closed: free the reader (*rd becomes NULL). */
void redis_disconnected(struct redisReader **rd);

/* A reply to AUTH or SELECT (kind): 0 if it is OK, else -1 with "AUTH refused: ..." in
 * why. */
int redis_handshake_reply(int kind, const struct redisReply *r, char *why, size_t whylen);

/*
 * Feed n bytes that came on c to rd and hand every complete reply to fn, which owns it
 * (frees or keeps it) and returns 0, or -1 once it has failed the connection. A protocol
 * error or a reply of more than 256 MiB fails the connection. Returns 0; -ENOMEM if the
 * bytes could not be taken (nothing was parsed), -EPROTO after a reply hiredis could not
 * parse, -1 after fn's -1 (the connection is failing in each case).
 */
int redis_replies(struct bconn *c, struct redisReader *rd, const uint8_t *data, size_t n,
		  int (*fn)(void *arg, struct redisReply *r), void *arg);

#endif
