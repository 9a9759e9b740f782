/* SPDX-License-Identifier: MIT */
/* The client side of the daemon protocol (stub until shmbusd lands). */
#include <errno.h>

#include "bus/internal.h"
#include "shm/err.h"

SHMBUS_API int shmbus_daemon_ping(shmbus_bus_t *bus, int timeout_ms, shmbus_daemon_info_t *info)
{
	(void)bus;
	(void)timeout_ms;
	(void)info;
	return shmbus_err(-ENOENT, "no daemon");
}

SHMBUS_API int shmbus_bus_supervised(const shmbus_bus_t *bus)
{
	(void)bus;
	return 0;
}
