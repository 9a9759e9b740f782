/* SPDX-License-Identifier: MIT */
/*
 * shmbusd's configuration: an INI file read with libinih. Every key is known and checked;
 * the first problem is reported as "FILE:LINE: reason" and the file is refused whole.
 *
 *   [bus]     name, dir, mode (octal, for topic files and the socket), group,
 *             log_capacity (size of $sys.log)
 *   [limits]  max_clients, max_topics, idle_timeout_ms (a connection that never says
 *             hello), lag_alarm (percent of a topic's capacity a reader may lag before
 *             an alarm goes to $sys.log; 0 = off)
 *   [topic NAME]  capacity, max_message, policy (block | overwrite), max_readers,
 *             max_publishers, max_groups
 * Sizes take K, M, G suffixes (powers of 1024).
 */
#ifndef SHMBUSD_CONFIG_H
#define SHMBUSD_CONFIG_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include <shmbus.h>

struct topic_decl {
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
	shmbus_topic_opts_t opts;
	int line; /* where its section starts */
};

struct shmbusd_config {
	char path[PATH_MAX]; /* the file read, "" for the built-in defaults */
	char bus[SHMBUS_TOPIC_NAME_MAX + 1];
	char dir[PATH_MAX];  /* the root of buses (SHMBUS_DIR) */
	mode_t mode;
	gid_t gid;
	int has_gid;
	uint64_t log_capacity;
	uint32_t max_clients;
	uint32_t max_topics;
	uint32_t idle_timeout_ms;
	uint32_t lag_alarm_pct;
	struct topic_decl *topics;
	size_t ntopics;
};

/*
 * Load path (NULL: the built-in defaults, with SHMBUS_DIR / SHMBUS_BUS from the
 * environment when set). Returns 0, or -1 with the reason in err ("FILE:LINE: ...").
 */
int config_load(const char *path, struct shmbusd_config *c, char *err, size_t errlen);

void config_free(struct shmbusd_config *c);

/* Parse a size with an optional K/M/G suffix. 0 or -1. */
int config_parse_size(const char *s, uint64_t *out);

#endif
