/* SPDX-License-Identifier: MIT */
/*
 * The thread's last error text (shmbus_errmsg()). Slow paths set it with context; the hot
 * path only returns codes.
 */
#ifndef SHMBUS_SHM_ERR_H
#define SHMBUS_SHM_ERR_H

/* Format the thread's error text and return rc (a negative errno), for `return err(...)`. */
int shmbus_err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear the thread's error text. */
void shmbus_err_clear(void);

#endif
