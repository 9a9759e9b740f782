/* SPDX-License-Identifier: MIT */
#include "shm/err.h"

#include <stdarg.h>
#include <stdio.h>

#include <shmbus.h>

static __thread char errbuf[512];

int shmbus_err(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	return rc;
}

void shmbus_err_clear(void)
{
	errbuf[0] = '\0';
}

SHMBUS_API const char *shmbus_errmsg(void)
{
	return errbuf;
}
