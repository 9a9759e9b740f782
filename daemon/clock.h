/* SPDX-License-Identifier: MIT */
/*
 * shmbusd's monotonic clock in milliseconds, for timeouts, backoffs and uptime (never for
 * anything that crosses processes: that is the library's wall clock). One definition for
 * every part of the daemon.
 */
#ifndef SHMBUSD_CLOCK_H
#define SHMBUSD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC. Any thread may call it. */
static inline uint64_t shmbusd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
