/* SPDX-License-Identifier: MIT */
/* Between the files of tests/lib only: the one exit handler and what it runs. */
#ifndef SHMBUS_TESTS_LIB_INTERNAL_H
#define SHMBUS_TESTS_LIB_INTERNAL_H

/*
 * Register the exit handler (once, for the calling process). At the exit of that process,
 * with its exit status: the children of proc.c are killed and reaped, then on a failure
 * the daemons' logs are shown, then the private directory is removed. Forked children
 * run none of it, unless they register it themselves (then for what is theirs).
 */
void t_exit_register_(void);

void t_proc_at_exit_(void);
void t_daemon_at_exit_(int status);

#endif
