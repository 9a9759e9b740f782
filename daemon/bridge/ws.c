/* SPDX-License-Identifier: MIT */
/* WebSocket mirrors and the listener: not yet. */
#include <stdio.h>

#include "daemon/bridge/internal.h"

int ws_mirror_init(struct mirror *m)
{
	fprintf(stderr, "shmbusd: [mirror %s]: ws:// mirrors are not built yet\n", m->d->name);
	return -1;
}

int ws_emit(struct mirror *m, struct mtopic *t, const shmbus_msg_t *msg)
{
	(void)m;
	(void)t;
	(void)msg;
	return -1;
}

int wss_init(struct bridge *b)
{
	(void)b;
	fprintf(stderr, "shmbusd: [websocket] is not built yet\n");
	return -1;
}
void wss_accept(struct wss *s, int res)
{
	(void)s;
	(void)res;
}
void wss_work(struct wss *s)
{
	(void)s;
}
void wss_tick(struct wss *s)
{
	(void)s;
}
void wss_rescan(struct wss *s)
{
	(void)s;
}
void wss_close(struct wss *s)
{
	(void)s;
}
