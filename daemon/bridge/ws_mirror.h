/* SPDX-License-Identifier: MIT */
/*
 * The WebSocket kind of mirror (ws_mirror.c): a ws:// peer, binary or JSON frames, confirmed
 * when sent or when the peer acknowledges. The loop gives these ops to mirror_new() for
 * ws:// URLs.
 */
#ifndef SHMBUSD_BRIDGE_WS_MIRROR_H
#define SHMBUSD_BRIDGE_WS_MIRROR_H

#include "daemon/bridge/mirror.h"

extern const struct mirror_ops ws_mirror_ops;

#endif
