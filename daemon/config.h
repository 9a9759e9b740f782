/* SPDX-License-Identifier: MIT */
/*
 * shmbusd's configuration: an INI file read with libinih. Every key is known and checked;
 * the first problem is reported as "FILE:LINE: reason" and the file is refused whole.
 *
 *   [bus]     name, dir, mode (octal, for topic files and the socket), group,
 *             log_capacity (size of $sys.log), log_file (a detached daemon's stderr),
 *             access (file | brokered: how clients reach topic files)
 *   [limits]  max_clients, max_topics, idle_timeout_ms (a connection that never says
 *             hello), lag_alarm (percent of a topic's capacity a reader may lag before
 *             an alarm goes to $sys.log; 0 = off)
 *   [topic NAME]  capacity, max_message, policy (block | overwrite), max_readers,
 *             max_publishers, max_groups
 *   [access PATTERN]  owner, group, mode, publish, subscribe, create: who may do what
 *             with the topics PATTERN matches (daemon/acl.h); the first section in file
 *             order whose pattern matches a topic decides
 *   [mirror NAME], [import NAME], [websocket]: the bridge's, parsed and checked by
 *             daemon/bridge/config.c (docs/bridge.md lists their keys)
 * Sizes take K, M, G suffixes (powers of 1024).
 */
#ifndef SHMBUSD_CONFIG_H
#define SHMBUSD_CONFIG_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <shmbus.h>

#include "daemon/bridge/config.h"

struct topic_decl {
	char name[SHMBUS_TOPIC_NAME_MAX + 1]; /* first: config_find_or_append() */
	shmbus_topic_opts_t opts;
	int line; /* where its section starts */
};

/* How clients reach topic files: they open them in the bus directory themselves, the kernel
 * checking each file's owner, mode and ACL (file), or they get descriptors from the
 * daemon over control.sock (brokered). */
enum shmbusd_access { SHMBUSD_ACCESS_FILE = 0, SHMBUSD_ACCESS_BROKERED = 1 };

/* One principal of an [access] list: a user or a group, by id (names resolved at load). */
struct acl_principal {
	int is_group;
	uint32_t id;
};

struct acl_list {
	struct acl_principal *p;
	size_t n;
	int set;    /* the key was given (an empty create list is "nobody", not the default) */
	char *text; /* as written, for reasons ("user:alice, gid:10") */
};

/* An [access PATTERN] section. Unset keys take their defaults when evaluated (daemon/acl.c),
 * so that [bus] may come after it. */
struct access_decl {
	char pattern[SHMBUS_TOPIC_NAME_MAX + 1]; /* first: config_find_or_append() */
	int line;				 /* of its section header */
	uid_t owner;
	gid_t group;
	mode_t mode;
	int has_owner, has_group, has_mode;
	struct acl_list publish, subscribe, create;
};

struct shmbusd_config {
	char path[PATH_MAX]; /* the file read, "" for the built-in defaults */
	char bus[SHMBUS_TOPIC_NAME_MAX + 1];
	char dir[PATH_MAX]; /* the root of buses (SHMBUS_DIR) */
	mode_t mode;
	gid_t gid;
	int has_gid;
	uint64_t log_capacity;
	char log_file[PATH_MAX]; /* a detached daemon's stderr ("": /dev/null) */
	uint32_t max_clients;
	uint32_t max_topics;
	uint32_t idle_timeout_ms;
	uint32_t lag_alarm_pct;
	enum shmbusd_access access;
	struct access_decl *access_rules; /* in file order */
	size_t naccess;
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

/* ---- for the section parsers (this file's and daemon/bridge/config.c) ---- */

/* The state of one config_load(), handed to every section's key parser. */
struct config_ctx {
	struct shmbusd_config *c;
	FILE *f;
	int line;     /* lines read so far (the handler is called for the last one) */
	int section_line; /* the last line that opened a section */
	int why_line; /* where why was found, 0 if nowhere */
	char why[1024];
	/* keys seen, to refuse one set twice: "section\nkey" */
	char **seen;
	size_t nseen;
};

/*
 * Say why the current line is refused: fmt with two strings (the first reason is kept,
 * as inih goes on reading). Returns 0, what an inih handler returns for an error.
 */
int config_fail(struct config_ctx *x, const char *fmt, const char *a, const char *b);

/* A size (config_parse_size()) from lo to hi into *out. 0 or -1. */
int config_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out);

/*
 * The element named name in the array *arr of *n elements of size bytes each (each starts
 * with its name, a char array of namelen bytes), or a new one appended, zeroed and named,
 * with *fresh set so that the caller fills in its defaults. NULL if out of memory.
 */
void *config_find_or_append(void **arr, size_t *n, size_t size, size_t namelen, const char *name,
			    int *fresh);

#endif
