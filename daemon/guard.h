/* SPDX-License-Identifier: MIT */
/*
 * The SIGBUS guard: a client that can write a topic file (a subscriber of $sys.log must:
 * it takes a reader slot) can also truncate it, and the next access to the pages past the
 * new end raises SIGBUS in whoever has it mapped. The daemon brackets every access to a
 * client-writable mapping (its library calls on topics: reaping, adoption, lag checks,
 * publishing on $sys.log; the bridge thread's reading, publishing and cursor moves) with a
 * guard; a SIGBUS inside one jumps back to where the guard was taken, which then drops what
 * it mapped and reports the damage. A SIGBUS outside any guard (a bug) still kills the
 * process, as it should.
 *
 *	struct guard g;
 *	if (guard_enter(&g)) {
 *		guard_leave(&g);
 *		... the fault: g.addr is where ...
 *	} else {
 *		... the accesses ...
 *		guard_leave(&g);
 *	}
 *
 * Locals changed between guard_enter and the fault and read after it must be volatile.
 * Guards nest (per thread); leave them in the reverse order.
 */
#ifndef SHMBUSD_GUARD_H
#define SHMBUSD_GUARD_H

#include <setjmp.h>

struct guard {
	sigjmp_buf env;
	struct guard *prev;
	void *addr; /* the faulting address, after a fault */
};

extern __thread struct guard *guard_top;

/* Install the SIGBUS handler (once, at start). 0 or -1 (errno). */
int guard_init(void);

/* 0 when taken; nonzero when a SIGBUS came back to it. A macro: sigsetjmp's frame must
 * stay live. The signal mask is not saved (the handler runs with SA_NODEFER). */
#define guard_enter(g) \
	((g)->prev = guard_top, (g)->addr = NULL, guard_top = (g), sigsetjmp((g)->env, 0))

/* Leave g (after the accesses, and also after a fault, before anything else). */
static inline void guard_leave(struct guard *g)
{
	guard_top = g->prev;
}

/*
 * Unmap the whole mapping that holds addr (a faulting address: a file mapping the library
 * made and can no longer unmap, the call having been abandoned), if it is a mapping of a
 * file in dir. 0, or -1 if none was found.
 */
int guard_unmap(void *addr, const char *dir);

/*
 * Put private zeroed memory in place of the file mapping that holds addr (and the mappings
 * of the same file adjoining it), if it is a mapping of a file in dir. The file is never
 * read or written through it again, yet the handle that owned it can still be closed by
 * the library, whose close then writes into zeros and unmaps them: nothing of the handle
 * is leaked (the bridge, which drops handles each time a topic is truncated, needs that).
 * 0, or -1 if none was found (the handle must then be kept, never used).
 */
int guard_detach(void *addr, const char *dir);

#endif
