/* SPDX-License-Identifier: MIT */
/*
 * The bridge's sections of shmbusd.conf (docs/bridge.md lists their keys):
 *   [mirror NAME]  the bridge mirrors local topics to a Redis or WebSocket peer
 *   [import NAME]  the bridge brings a Redis stream into a local topic
 *   [websocket]    the bridge's WebSocket listener (subscriptions, optional publishing)
 * daemon/config.c reads the file and hands every key of these sections to
 * bridge_config_key(); once the file is read, bridge_config_check() looks at what one key
 * alone cannot tell. Errors are "FILE:LINE: reason", as for every other section.
 */
#ifndef SHMBUSD_BRIDGE_CONFIG_H
#define SHMBUSD_BRIDGE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <shmbus.h>

#include "daemon/bridge/codec.h"

struct config_ctx;     /* daemon/config.h */
struct shmbusd_config; /* daemon/config.h */

/* Longest mirror or import name: its group on a topic is "bridge-NAME" (47 bytes max). */
#define BR_NAME_MAX 40
#define BR_PATTERNS_MAX 32

struct br_patterns {
	unsigned n;
	char p[BR_PATTERNS_MAX][SHMBUS_TOPIC_NAME_MAX + 1];
};

enum br_mode { BR_MODE_STREAM = 0, BR_MODE_PUBSUB = 1 };
enum br_format { BR_FMT_BINARY = 0, BR_FMT_JSON = 1 };

/* Connection timing shared by mirrors and imports. */
struct br_timing {
	uint32_t connect_timeout_ms; /* connect + handshake */
	uint32_t timeout_ms;	     /* a reply (or a send) outstanding this long: reconnect */
	uint32_t backoff_min_ms;     /* first retry after a failure; doubles up to max */
	uint32_t backoff_max_ms;
};

/* What mirrors and imports both take: credentials, where they start, origin, timing. */
struct br_peer {
	char user[BR_CRED_MAX + 1]; /* AUTH user (overrides the URL's) */
	char password[BR_CRED_MAX + 1];
	int has_password;
	int start_latest; /* mirror: a new group starts at the tail, not the earliest;
			   * import: with no saved position, new entries only ($) */
	char origin[128]; /* the origin field ("" = HOST/BUS) */
	struct br_timing timing;
};

struct mirror_decl {
	char name[BR_NAME_MAX + 1]; /* first: config_find_or_append() */
	int line;
	struct br_patterns topics;
	struct br_url to;
	int has_to;
	int mode;	  /* enum br_mode (redis) */
	char key[256];	  /* key or channel template; "{topic}" is replaced */
	uint64_t maxlen;  /* XADD MAXLEN ~ n (0: none) */
	uint32_t window;  /* commands (frames) in flight, unconfirmed */
	uint32_t hold_ms; /* block topics wait this long for a restarting daemon */
	int format;	  /* enum br_format (ws) */
	int ack;	  /* ws: the peer acknowledges ({"topic":T,"ack":SEQ}) */
	struct br_peer peer;
	unsigned set; /* keys given (bits), for checks that need them all */
};

struct import_decl {
	char name[BR_NAME_MAX + 1]; /* first: config_find_or_append() */
	int line;
	struct br_url from;
	int has_from;
	char topic[SHMBUS_TOPIC_NAME_MAX + 1];
	uint32_t count;	     /* XREAD COUNT */
	uint32_t block_ms;   /* XREAD BLOCK */
	char field[64];	     /* field holding the payload */
	char type_field[64]; /* field holding the type word ("" = none) */
	int skip_own;	     /* drop entries whose origin is ours (no loops) */
	struct br_peer peer;
};

struct ws_decl {
	int enabled;
	int line;
	char host[64]; /* numeric address to listen on */
	uint16_t port;
	struct br_patterns subscribe; /* topics clients may subscribe to */
	struct br_patterns publish;   /* topics clients may publish to (none by default) */
	uint32_t max_clients;
	uint32_t max_queue;   /* bytes queued per client before it is cut off (1013) */
	uint32_t max_header;  /* bytes of an HTTP upgrade request */
	uint32_t max_message; /* bytes of a message from a client */
	uint32_t handshake_timeout_ms;
	uint32_t ping_interval_ms; /* ping an idle client this often (0: never) */
};

/* The defaults of the bridge's parts of c (the listener's limits). */
void bridge_config_defaults(struct shmbusd_config *c);

/*
 * One key of a bridge section: canon is the section as "mirror NAME", "import NAME" or
 * "websocket", name the NAME (NULL for [websocket]). Returns as an inih handler does: 1,
 * or 0 with the reason in x (config_fail()).
 */
int bridge_config_key(struct config_ctx *x, const char *canon, const char *name, const char *key,
		      const char *value);

/*
 * What one key alone cannot tell: required keys, keys that do not fit the peer, sections
 * with no keys at all; fills in credentials from the URLs. Returns 0 or -1 with the reason
 * in err ("FILE:LINE: ...").
 */
int bridge_config_check(struct shmbusd_config *c, char *err, size_t errlen);

/* A deep copy of the parts of src the bridge uses (its thread keeps its own). 0 or -1. */
int bridge_config_copy(struct shmbusd_config *dst, const struct shmbusd_config *src);

/* Free what the bridge's sections allocated in c. */
void bridge_config_free(struct shmbusd_config *c);

#endif
