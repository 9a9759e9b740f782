/* SPDX-License-Identifier: MIT */
/*
 * Process liveness, robust against pid reuse: a process is named by its pid and its start
 * time (/proc/<pid>/stat field 22, clock ticks since boot), and is alive only if a process
 * with that pid exists now and started at that time.
 */
#ifndef SHMBUS_SHM_PROC_H
#define SHMBUS_SHM_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* Start time of pid into *out. Returns 0, -ESRCH (no such process) or -EIO. */
int shmbus_proc_starttime(pid_t pid, uint64_t *out);

/* This process's pid and start time, cached (refreshed after fork). */
int shmbus_proc_self(pid_t *pid, uint64_t *starttime);

/*
 * 1 if the process (pid, starttime) is alive, 0 if it is dead or its pid now names
 * another process. starttime 0 means "unknown": then the pid alone decides.
 */
int shmbus_proc_alive(pid_t pid, uint64_t starttime);

/* The state letter of /proc/<pid>/stat (R, S, D, Z, ...; a thread's tid works too), or 0
 * if it cannot be read (gone). */
char shmbus_proc_state(pid_t pid);

#endif
