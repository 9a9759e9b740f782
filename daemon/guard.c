/* SPDX-License-Identifier: MIT */
#include "daemon/guard.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

__thread struct guard *guard_top;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	struct guard *g = guard_top;
	if (!g) {
		/* Not ours to survive: die of it as without a handler (the access faults
		 * again on return, now with the default action). */
		signal(sig, SIG_DFL);
		return;
	}
	guard_top = g->prev;
	g->addr = si->si_addr;
	siglongjmp(g->env, 1);
}

int guard_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	/* NODEFER: the jump leaves the handler, so SIGBUS must not stay blocked (and
	 * sigsetjmp need not save the mask: no syscall per guard). */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL);
}

int guard_unmap(void *addr, const char *dir)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -1;
	char line[4096 + 256];
	size_t dlen = strlen(dir);
	int rc = -1;
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2 || !off)
			continue;
		if ((uintptr_t)addr < lo || (uintptr_t)addr >= hi)
			continue;
		char *path = line + off;
		path[strcspn(path, "\n")] = '\0';
		/* Only a file of the bus: never anything else the process holds. */
		if (!strncmp(path, dir, dlen) && path[dlen] == '/')
			rc = munmap((void *)lo, hi - lo);
		break;
	}
	fclose(f);
	return rc;
}

int guard_detach(void *addr, const char *dir)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return -1;
	char line[4096 + 256], dev[32] = "", rdev[32] = "";
	size_t dlen = strlen(dir);
	unsigned long run_lo = 0, run_hi = 0, run_ino = 0, run_end = 0;
	int found = 0, ours = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, fo, ino;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %lx %31s %lu %n", &lo, &hi, &fo, dev, &ino, &off) < 5)
			continue;
		/* One mapping may show as several lines: the same inode, contiguous in memory
		 * and in the file. Another mapping of the same file placed right next to it
		 * starts again at its offset 0, and is another handle's: left alone. */
		if (!(ino && ino == run_ino && !strcmp(dev, rdev) && lo == run_hi && fo == run_end)) {
			if (found)
				break;
			run_lo = lo;
			run_ino = ino;
			memcpy(rdev, dev, sizeof(rdev));
		}
		run_hi = hi;
		run_end = fo + (hi - lo);
		if ((uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
			char *path = line + off;
			found = 1;
			ours = off && ino && !strncmp(path, dir, dlen) && path[dlen] == '/';
		}
	}
	fclose(f);
	if (!found || !ours)
		return -1;
	/* MAP_FIXED replaces the file's pages in one step: no window with nothing there. */
	void *p = mmap((void *)run_lo, run_hi - run_lo, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	return p == MAP_FAILED ? -1 : 0;
}
