/* SPDX-License-Identifier: MIT */
/*
 * Imports (redis_import.c): a Redis stream brought into a local topic, resumed after a
 * restart from the last entry published. Opaque to the loop, which drives it with these
 * functions. Bridge thread only.
 */
#ifndef SHMBUSD_BRIDGE_REDIS_IMPORT_H
#define SHMBUSD_BRIDGE_REDIS_IMPORT_H

#include "daemon/bridge/config.h"
#include "daemon/bridge/ring.h"

struct import;

/* An import for d: its stats slot, its topic (made if missing), its position file. NULL
 * with the reason on stderr. */
struct import *import_new(struct bridge *b, const struct import_decl *d);

/* Connect; a failure retries after the backoff. */
void import_start(struct import *im);

/* Each turn: publish what a batch still holds, or ask for the next batch. */
void import_work(struct import *im);

/* Every 100 ms: a peer silent past block_ms and the timeout is closed. */
void import_tick(struct import *im);

/* The bridge stops: close the connection, the topic and the position file. */
void import_stop(struct import *im);

/* After the ring is drained: free it. */
void import_free(struct import *im);

#endif
