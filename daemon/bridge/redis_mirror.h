/* SPDX-License-Identifier: MIT */
/*
 * The Redis kind of mirror (redis_mirror.c): a redis:// peer, mode = stream (XADD) or
 * pubsub (PUBLISH). The loop gives these ops to mirror_new() for redis:// URLs.
 */
#ifndef SHMBUSD_BRIDGE_REDIS_MIRROR_H
#define SHMBUSD_BRIDGE_REDIS_MIRROR_H

#include "daemon/bridge/mirror.h"

extern const struct mirror_ops redis_mirror_ops;

#endif
