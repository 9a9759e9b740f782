/* SPDX-License-Identifier: MIT */
/*
 * The CPython extension module "shmbus": what its files share. Internal to
 * bindings/python/; the Python-visible API is documented in shmbus.pyi and docs/python.md.
 *
 * Lifetime rules the objects keep (each enforced by a counter or flag, never by hope):
 *  - A handle of the C library is closed only when nothing can touch it any more: close()
 *    marks the object closed (Python calls on it raise ValueError), and the C close runs
 *    once no call is using the handle with the GIL released (busy), no helper thread is
 *    inside shmbus_recv() on it, no event loop has its fd registered (areader), and no
 *    buffer exported from ring memory is alive (exports). Whichever of those ends last
 *    runs the close.
 *  - Ring memory reaches Python only through buffers exported by a Message (read-only) or a
 *    Reservation (writable). The memoryviews we hand out are released before the memory
 *    may change (next recv, commit, abort, close; for a batch of messages, the next recv
 *    lets all of them go); if anything else still holds a buffer of it, the operation
 *    refuses with BufferError rather than let that buffer see other bytes.
 */
#ifndef SHMBUS_PY_PYSHMBUS_H
#define SHMBUS_PY_PYSHMBUS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <semaphore.h>
#include <stdint.h>

#include <shmbus.h>

/* Longest wait inside one C call with the GIL released: signals (Ctrl-C), close() and
 * cancellation are looked at between slices. */
#define PYSB_SLICE_MS 50
/* The same for a subscriber's asyncio helper thread: close() waits for it to leave the
 * handle, so its slice bounds how long a close may take. A slice costs a wake-up and the
 * library's 20 us spin: 50 of them a second are nothing. */
#define PYSB_HELPER_SLICE_MS 20

/* Sleep briefly with the GIL released, while waiting for another thread to leave a
 * handle. */
void pysb_nap(void);
/* Returned by the waiting helpers when a Python exception is set (not an errno). */
#define PYSB_RC_PYERR (-100000)
/* Returned by a sink's receive when its filter raised: the exception is in the sink's
 * `ferr` (raised by the caller, with the GIL), the message consumed (see sink.c). */
#define PYSB_RC_FILTER (-100003)
/* Payloads of at least this many bytes are copied with the GIL released (below it, the
 * release and re-acquisition cost more than the copy). */
#define PYSB_NOGIL_COPY 16384

/* A topic's policy as the Python API spells it. */
static inline const char *pysb_policy_name(uint32_t policy)
{
	return policy == SHMBUS_OVERWRITE ? "overwrite" : "block";
}

/* ---- exceptions (errors.c) ----------------------------------------------------------- */

extern PyObject *pysb_Error, *pysb_Timeout, *pysb_Exists, *pysb_NotFound, *pysb_TooBig,
	*pysb_AccessDenied, *pysb_Stale, *pysb_Unsupported;

/* Create the exception classes and add them to module m. 0 or -1 (exception set). */
int pysb_errors_init(PyObject *m);

/* A new exception instance for -errno rc (the class chosen by errno) with message msg;
 * its .errno is set. NULL with an exception set if that failed. */
PyObject *pysb_exc_new(int rc, const char *msg);

/* Raise the exception for -errno rc; the message is fmt's text, ": ", strerror. NULL. */
PyObject *pysb_raise(int rc, const char *fmt, ...);

/* The library's thread-local error text before a slow-path call, to tell afterwards
 * whether the call set a new one (the library does not clear it on success). */
struct pysb_errsnap {
	char text[512];
};
void pysb_errsnap_take(struct pysb_errsnap *s);

/* Raise for a failed slow-path call: the library's message if the call left a new one,
 * else fmt's text, ": ", strerror. NULL. */
PyObject *pysb_raise_slow(int rc, const struct pysb_errsnap *s, const char *fmt, ...);

/* ValueError for an operation on a closed object. NULL. */
PyObject *pysb_closed(const char *what);
/* RuntimeError: another thread is using a handle that is not thread-safe. NULL. */
PyObject *pysb_busy(const char *what);

/* An int argument (name: the argument's name, in the error) for an unsigned C field of at
 * most max: TypeError if it is not an int, OverflowError if it is negative or above max
 * (never wrapped). 0 or -1 (exception set). */
int pysb_uint_arg(PyObject *o, const char *name, uint64_t max, uint64_t *out);

/* A name argument (a bus, topic or group name) as the C string the library gets:
 * TypeError if it is not a str, ValueError if it contains a NUL character (the library
 * would see only what comes before it). *out lives as long as o. 0 or -1. */
int pysb_name_arg(PyObject *o, const char *what, const char **out);

/* A timeout argument in seconds: None means forever (-1), otherwise a number >= 0,
 * rounded up to whole milliseconds. 0 or -1 (exception set). */
int pysb_timeout_ms(PyObject *o, int64_t *ms);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t pysb_now_ms(void);

/* The pysb_now_ms() deadline of a wait of timeout_ms, or -1 (none) if timeout_ms < 0. */
int64_t pysb_deadline(int64_t timeout_ms);
/* The next slice (at most PYSB_SLICE_MS) of a wait ending at deadline (-1: none). */
int pysb_slice_ms(int64_t deadline);
/* After a slice of a wait came back empty-handed: a close of the object (closed, named
 * what in the error), a signal or the deadline ends the wait. 0 to go on, PYSB_RC_PYERR
 * (exception set) or -EAGAIN. */
int pysb_between_slices(int closed, const char *what, int64_t deadline);

/* ---- memoryviews of ring memory (errors.c) ------------------------------------------ */

/* Intern the names the helpers below call. 0 or -1 (exception set). */
int pysb_view_init(void);
/* Release the memoryview *view we handed out and drop our reference (*view becomes NULL),
 * so that using it raises ValueError. 0, or -1 with no exception set and *view kept if
 * something holds a buffer of that memoryview (its release() refused). */
int pysb_view_drop(PyObject **view);

/* ---- Bus (bus.c) -------------------------------------------------------------------- */

typedef struct pysb_bus {
	PyObject_HEAD shmbus_bus_t *bus; /* NULL once closed in C */
	PyObject *name;			 /* str */
	int closed;			 /* close() was called */
	Py_ssize_t users; /* open publishers and subscribers, and calls without the GIL */
	PyObject *weakrefs;
} pysb_bus;

extern PyTypeObject pysb_BusType;

/* Count a user of the bus's C handle (a child handle or a call without the GIL). */
void pysb_bus_hold(pysb_bus *b);
/* Drop one; the last one of a closed bus closes the C handle. */
void pysb_bus_unhold(pysb_bus *b);

/* ---- Publisher and Reservation (pub.c) ------------------------------------------------ */

struct pysb_res;

typedef struct pysb_pub {
	PyObject_HEAD shmbus_pub_t *pub; /* NULL once closed in C */
	pysb_bus *bus;			 /* strong */
	PyObject *topic;		 /* str */
	uint32_t max_message;
	uint32_t policy;
	int closed;
	int busy;	      /* a call uses the handle with the GIL released */
	struct pysb_res *res; /* the open reservation (borrowed; it clears this) */
	PyObject *weakrefs;
} pysb_pub;

typedef struct pysb_res {
	PyObject_HEAD pysb_pub *pub; /* strong */
	void *buf;
	Py_ssize_t len;
	uint32_t type;
	int state;	    /* RES_OPEN, RES_COMMITTED, RES_ABORTED */
	Py_ssize_t exports; /* buffers of the ring space alive */
	PyObject *view;	    /* the memoryview handed out (strong), or NULL */
} pysb_res;

extern PyTypeObject pysb_PubType, pysb_ResType;

/* Open a publisher on topic (bus.publisher()). New reference or NULL. */
PyObject *pysb_pub_open(pysb_bus *bus, PyObject *topic);

/* ---- Subscriber and Message (sub.c) --------------------------------------------------- */

struct pysb_helper;
struct pysb_tname;

/* The most messages one recv_batch() takes (a list of Message objects is the cost). */
#define PYSB_BATCH_MAX 65536

/* One message of the batch a subscriber holds. */
struct pysb_held {
	PyObject *view;	    /* the memoryview handed out as its .data (strong), or NULL */
	Py_ssize_t exports; /* buffers of its data alive (memoryviews and others) */
	uint64_t seq;
};

/*
 * A Subscriber, or a Sink (sink.c): both types share this structure, so that receiving,
 * the lifetime of messages and asyncio are the same code. A sink has `sink` set instead of
 * `sub` and takes one message at a time (hcap and batch_max 1).
 */
typedef struct pysb_sub {
	PyObject_HEAD shmbus_sub_t *sub; /* NULL once closed in C (a Subscriber) */
	shmbus_sink_t *sink;		 /* NULL once closed in C (a Sink) */
	int is_sink;			 /* a Sink (pysb_SinkType), even once closed */
	pysb_bus *bus;			 /* strong */
	PyObject *topic;		 /* str ("sink" for a sink: only for messages) */
	PyObject *group;		 /* str or None */
	uint32_t max_message;
	uint32_t policy;
	int closed;
	int busy;	/* a call uses the handle with the GIL released */
	int nogil_poll; /* overwrite topics with large messages: copies happen in recv */
	int acking;	/* an acknowledging group member (SHMBUS_SUB_ACK) */
	/* The messages the C handle holds: the batch of `held` (0: none; 1 after recv) that
	 * one receive returned, all let go together. Message i of it is valid while gen
	 * matches and i >= hfirst (those before hfirst were let go early: a batch handed out
	 * piecemeal from the asyncio stash, see async.c). */
	unsigned held;
	unsigned hfirst;
	uint64_t gen;		/* bumped each time the held batch is let go */
	struct pysb_held *hold; /* [hcap]: &hold1, or allocated for batches */
	shmbus_msg_t *bmsgs;	/* [hcap]: what a batch receive fills: &bmsg1, or allocated */
	unsigned hcap;
	unsigned batch_max; /* the most messages one batch can take here (ring, policy) */
	struct pysb_held hold1;
	shmbus_msg_t bmsg1;
	Py_ssize_t exports; /* buffers of held messages alive, summed over the batch */
	uint64_t lost;	    /* messages lost so far (overwrite), summed over recv */
	uint64_t received;
	unsigned spin_us; /* what shmbus_sub_set_spin() was given (the library's default 20) */
	/* asyncio (async.c); all of it is read and written with the GIL held */
	PyObject *afut;	   /* the pending future of recv_async()/recv_batch_async()/__anext__ */
	PyObject *aloop;   /* its event loop */
	PyObject *aresult; /* a Message, a list of them, or an exception waiting to be
	                    * delivered, or NULL */
	PyObject *astash;  /* a list of the messages received for futures that were cancelled
	                    * (one batch, in order): the next receives return them (nothing
	                    * is lost) */
	int aiter;	   /* the pending future is __anext__'s (closing ends iteration) */
	unsigned amax;	   /* what it wants: 0 one Message, else a list of up to amax */
	int ahelper;	   /* the helper thread is inside shmbus_recv() on this handle */
	unsigned ahmax;	   /* what the helper takes: 0 one message, else up to ahmax */
	int adeliver;	   /* a delivery callback is scheduled on aloop */
	int64_t adeadline; /* pysb_now_ms() deadline, or -1 */
	unsigned astreak;  /* futures completed at once in a row (fairness) */
	struct pysb_helper *helper;
	/* asyncio without a thread (async.c): the fd, on the event loop while a future waits */
	int fd;		  /* shmbus_sub_fd()/shmbus_sink_fd(), once fd_known */
	int fd_known;	  /* fd is set (the library made it: it lives as long as the handle) */
	int fd_nosys;	  /* the library said -ENOSYS: asyncio uses the helper thread */
	int areader;	  /* the fd is registered with rloop (add_reader): a user of the handle */
	PyObject *rloop;  /* the loop it is registered with (strong), or NULL */
	PyObject *atimer; /* the pending future's timeout (a TimerHandle), or NULL */
	/* a Sink (sink.c) */
	PyObject *filter; /* the callable, or NULL */
	PyObject *ferr;	  /* the exception the filter raised, waiting to be raised */
	int fpending;	  /* in a receive: the filter raised on the message it returns */
	int infilter;	  /* the filter runs (in thread fthread) */
	unsigned long fthread;
	void *klock;		   /* PyThread_type_lock: one library call on the sink at a time */
	struct pysb_tname *tnames; /* topic names of received messages, as str (a cache) */
	unsigned tnext;
	PyObject *weakrefs;
} pysb_sub;

/* The type's name, for errors: "Subscriber" or "Sink". */
static inline const char *pysb_kind(const pysb_sub *s)
{
	return s->is_sink ? "Sink" : "Subscriber";
}

/* Is the C handle open (not closed in C yet)? */
static inline int pysb_open(const pysb_sub *s)
{
	return s->sub != NULL || s->sink != NULL;
}

typedef struct pysb_msg {
	PyObject_HEAD pysb_sub *sub; /* strong */
	uint64_t gen;		     /* sub->gen when it was received */
	unsigned idx;		     /* its index in the batch it came in (0 for recv) */
	const void *data;
	uint32_t len;
	uint32_t type;
	uint64_t seq;
	uint64_t timestamp;
	uint64_t lost;
	/* What shmbus_ack()/shmbus_nack() need of the C message, which outlives its data:
	 * the delivery count and the private words naming its pending entry. */
	uint32_t deliveries;
	uint32_t flags_;
	uint64_t pos_;
	uint64_t pend_;
	uint64_t src_;	 /* a sink's: the reader it came from */
	PyObject *topic; /* str: the topic it was published to */
} pysb_msg;

extern PyTypeObject pysb_SubType, pysb_MsgType, pysb_SinkType;

/* Open a subscriber (bus.subscriber()): with a group, shmbus_sub_open_group() with gopts
 * (NULL: the defaults). New reference or NULL. */
PyObject *pysb_sub_open(pysb_bus *bus, PyObject *topic, PyObject *group, int flags,
			const shmbus_group_opts_t *gopts);

/* Let go of the held messages before the C handle may release them: invalidate their
 * Python views. 0, or -1 with BufferError set if a buffer of one is still alive (then
 * nothing was consumed and the messages stay held). */
int pysb_sub_let_go(pysb_sub *s);
/* The same for the held messages with an index below idx only: the others stay valid
 * (handing out message idx of a stashed batch). */
int pysb_sub_let_go_before(pysb_sub *s, unsigned idx);

/* Receive into msgs[0..max) from the handle of s (shmbus_recv() for max 1,
 * shmbus_recv_batch() otherwise; shmbus_sink_recv() for a sink, one message): the number
 * received (>= 1) or -errno, or PYSB_RC_FILTER (a sink's filter raised). gil: the caller
 * holds the GIL (a sink's lock is then never waited for with it held). The caller keeps
 * the handle from closing meanwhile (busy or ahelper). */
int pysb_take(pysb_sub *s, shmbus_msg_t *msgs, unsigned max, int timeout_ms, int gil);

/* Make room in s->bmsgs for a batch of up to max (>= 1) messages, the held ones let go
 * and no helper inside the handle. Returns how many one receive may take (max, capped by
 * PYSB_BATCH_MAX and by what the topic gives in one batch), or -1 (MemoryError). */
int pysb_sub_batch_room(pysb_sub *s, Py_ssize_t max);

/* One look for messages without waiting (pysb_take() with timeout 0), without the GIL
 * when that may copy a large payload. The held messages must have been let go. */
int pysb_sub_poll(pysb_sub *s, shmbus_msg_t *msgs, unsigned max);

/* Wrap the message the C handle just returned (held until let go). New reference, or
 * NULL (the message stays held). */
PyObject *pysb_sub_wrap(pysb_sub *s, const shmbus_msg_t *m);
/* Wrap the batch msgs[0..n) the C handle just returned, as a list of Messages. */
PyObject *pysb_sub_wrap_batch(pysb_sub *s, const shmbus_msg_t *msgs, unsigned n);

/* Close the C handle now if nothing uses it any more (see the rules above). */
void pysb_sub_maybe_finish(pysb_sub *s);

/* The methods and slots a Sink shares with a Subscriber (sub.c). */
PyObject *pysb_sub_recv(pysb_sub *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);
PyObject *pysb_sub_iternext(pysb_sub *s);
PyObject *pysb_sub_recv_async_m(pysb_sub *s, PyObject *args, PyObject *kw);
PyObject *pysb_sub_anext(pysb_sub *s);
PyObject *pysb_sub_close(pysb_sub *s, PyObject *unused);
PyObject *pysb_sub_enter(pysb_sub *s, PyObject *unused);
PyObject *pysb_sub_exit(pysb_sub *s, PyObject *args);
PyObject *pysb_sub_fileno(pysb_sub *s, PyObject *unused);
int pysb_sub_traverse(pysb_sub *s, visitproc visit, void *arg);
int pysb_sub_clear(pysb_sub *s);
void pysb_sub_dealloc(pysb_sub *s);
/* The handle of s for a call (NULL with ValueError if closed, RuntimeError if another
 * thread uses it or from its own filter). */
int pysb_sub_usable(pysb_sub *s);
/* The C message msg was, for an ack or nack, and the result of one as Python sees it. */
void pysb_msg_as_c(const pysb_msg *m, shmbus_msg_t *out);
PyObject *pysb_ack_result(PyObject *topic, const char *op, const shmbus_msg_t *m, int rc);

/* The fd of s (made on the first call), or -errno; with raise, an exception is set for
 * an error (Unsupported for -ENOSYS). Not for a handle another thread uses. */
int pysb_sub_fd(pysb_sub *s, int raise);

/* ---- Sink (sink.c) -------------------------------------------------------------------- */

/* bus.sink(): open a sink reading patterns (a str or an iterable of them), in group (None:
 * fan-out) with gopts, flags SHMBUS_SUB_*, filter a callable or None. New reference or
 * NULL. */
PyObject *pysb_sink_open(pysb_bus *bus, PyObject *patterns, PyObject *group, PyObject *filter,
			 int flags, const shmbus_group_opts_t *gopts);
/* The str of a topic name a sink's message names (cached). New reference or NULL. */
PyObject *pysb_sink_topic(pysb_sub *s, const char *name);
/* The sink's receive: shmbus_sink_recv() under its lock, a message whose filter raised
 * consumed (PYSB_RC_FILTER). As pysb_take(). */
int pysb_sink_take(pysb_sub *s, shmbus_msg_t *msg, int timeout_ms, int gil);
/* Take the sink's lock around another library call (gil: the caller holds the GIL, which
 * is released while waiting); a call from the sink's own filter takes nothing. */
int pysb_sink_lock(pysb_sub *s, int gil);
void pysb_sink_unlock(pysb_sub *s, int locked);
/* The exception the filter raised (new reference; ferr cleared), or NULL. */
PyObject *pysb_sink_filter_exc(pysb_sub *s);
/* Free what a sink has beyond a subscriber (dealloc). */
void pysb_sink_free(pysb_sub *s);
/* Ready the sink's private types. 0 or -1. */
int pysb_sink_init(void);

/* ---- asyncio (async.c) ---------------------------------------------------------------- */

/* recv_async(timeout) (max 0), __anext__ (max 0, aiter 1) and recv_batch_async(max,
 * timeout). New reference (a Future) or NULL. */
PyObject *pysb_sub_recv_async(pysb_sub *s, int64_t timeout_ms, int aiter, unsigned max);
/* sub._async_deliver(): the callback the helper schedules on the event loop. */
PyObject *pysb_sub_async_deliver(pysb_sub *s, PyObject *unused);
/* A synchronous receive is about to run: settle what asyncio left. Messages a cancelled
 * future left are taken over into *out: one Message for max 0, else a list of up to max.
 * 0, or -1 with an exception set. */
int pysb_sub_async_settle(pysb_sub *s, unsigned max, PyObject **out);
/* close(): resolve a pending future (StopAsyncIteration for __anext__, ValueError for
 * recv_async), drop a stashed message, stop the helper thread. */
void pysb_sub_async_close(pysb_sub *s);
/* GC support for the asyncio fields; clear also stops the helper thread (dealloc). */
int pysb_sub_async_traverse(pysb_sub *s, visitproc visit, void *arg);
void pysb_sub_async_clear(pysb_sub *s);
/* Module function _async_worker(capsule): the helper thread's body. */
PyObject *pysb_async_worker(PyObject *module, PyObject *capsule);
/* The callbacks of a future waiting on the fd: sub._async_ready() (the loop saw the fd
 * readable), sub._async_timeout() (its timer), sub._async_done(fut) (a future's done
 * callback: a cancel), sub._async_detach() (off the loop, from close() in another thread). */
PyObject *pysb_sub_async_ready(pysb_sub *s, PyObject *unused);
PyObject *pysb_sub_async_timeout(pysb_sub *s, PyObject *unused);
PyObject *pysb_sub_async_done(pysb_sub *s, PyObject *fut);
PyObject *pysb_sub_async_detach(pysb_sub *s, PyObject *unused);
/* Module function _async_use_fd(flag): whether asyncio waits on the fd (True, the
 * default) or in the helper thread (as where the kernel has no fd); returns the previous
 * setting. For tests of the helper thread. */
PyObject *pysb_async_use_fd(PyObject *module, PyObject *flag);

#endif
