/* SPDX-License-Identifier: MIT */
/*
 * shmbusd's configuration: an INI file read with libinih. Every key is known and checked;
 * the first problem is reported as "FILE:LINE: reason" and the file is refused whole.
 *
 *   [bus]     name, dir, mode (octal, for topic files and the socket), group,
 *             log_capacity (size of $sys.log), log_file (a detached daemon's stderr)
 *   [limits]  max_clients, max_topics, idle_timeout_ms (a connection that never says
 *             hello), lag_alarm (percent of a topic's capacity a reader may lag before
 *             an alarm goes to $sys.log; 0 = off)
 *   [topic NAME]  capacity, max_message, policy (block | overwrite), max_readers,
 *             max_publishers, max_groups
 *   [mirror NAME]  the bridge mirrors local topics to a Redis or WebSocket peer
 *   [import NAME]  the bridge brings a Redis stream into a local topic
 *   [websocket]    the bridge's WebSocket listener (subscriptions, optional publishing)
 * (docs/bridge.md lists their keys.)
 * Sizes take K, M, G suffixes (powers of 1024).
 */
#ifndef SHMBUSD_CONFIG_H
#define SHMBUSD_CONFIG_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include <shmbus.h>

#include "daemon/bridge/codec.h"

struct topic_decl {
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
	shmbus_topic_opts_t opts;
	int line; /* where its section starts */
};

/* ---- the bridge's sections ---- */

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

struct mirror_decl {
	char name[BR_NAME_MAX + 1];
	int line;
	struct br_patterns topics;
	struct br_url to;
	int has_to;
	int mode;		    /* enum br_mode (redis) */
	char key[256];		    /* key or channel template; "{topic}" is replaced */
	uint64_t maxlen;	    /* XADD MAXLEN ~ n (0: none) */
	char user[BR_CRED_MAX + 1]; /* AUTH user (overrides the URL's) */
	char password[BR_CRED_MAX + 1];
	int has_password;
	uint32_t window;  /* commands (frames) in flight, unconfirmed */
	int start_latest; /* a new group starts at the tail, not the earliest */
	uint32_t hold_ms; /* block topics wait this long for a restarting daemon */
	int format;	  /* enum br_format (ws) */
	int ack;	  /* ws: the peer acknowledges ({"topic":T,"ack":SEQ}) */
	char origin[128]; /* the origin field ("" = HOST/BUS) */
	struct br_timing timing;
	unsigned set; /* keys given (bits), for checks that need them all */
};

struct import_decl {
	char name[BR_NAME_MAX + 1];
	int line;
	struct br_url from;
	int has_from;
	char topic[SHMBUS_TOPIC_NAME_MAX + 1];
	char user[BR_CRED_MAX + 1];
	char password[BR_CRED_MAX + 1];
	int has_password;
	uint32_t count;	     /* XREAD COUNT */
	uint32_t block_ms;   /* XREAD BLOCK */
	int start_latest;    /* with no saved position: new entries only ($) */
	char field[64];	     /* field holding the payload */
	char type_field[64]; /* field holding the type word ("" = none) */
	int skip_own;	     /* drop entries whose origin is ours (no loops) */
	char origin[128];
	struct br_timing timing;
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

struct shmbusd_config {
	char path[PATH_MAX]; /* the file read, "" for the built-in defaults */
	char bus[SHMBUS_TOPIC_NAME_MAX + 1];
	char dir[PATH_MAX];  /* the root of buses (SHMBUS_DIR) */
	mode_t mode;
	gid_t gid;
	int has_gid;
	uint64_t log_capacity;
	char log_file[PATH_MAX]; /* a detached daemon's stderr ("": /dev/null) */
	uint32_t max_clients;
	uint32_t max_topics;
	uint32_t idle_timeout_ms;
	uint32_t lag_alarm_pct;
	struct topic_decl *topics;
	size_t ntopics;
	struct mirror_decl *mirrors;
	size_t nmirrors;
	struct import_decl *imports;
	size_t nimports;
	struct ws_decl ws;
	/* The bridge's sections as read ("section\nkey=value\n" each), to tell on reload
	 * whether they changed. */
	char *bridge_text;
	size_t bridge_len;
};

/* Does the config ask for a bridge at all? */
static inline int config_has_bridge(const struct shmbusd_config *c)
{
	return c->nmirrors || c->nimports || c->ws.enabled;
}

/*
 * Load path (NULL: the built-in defaults, with SHMBUS_DIR / SHMBUS_BUS from the
 * environment when set). Returns 0, or -1 with the reason in err ("FILE:LINE: ...").
 */
int config_load(const char *path, struct shmbusd_config *c, char *err, size_t errlen);

void config_free(struct shmbusd_config *c);

/* Parse a size with an optional K/M/G suffix. 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);

#endif
