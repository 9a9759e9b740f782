/* SPDX-License-Identifier: MIT */
/*
 * asyncio: Subscriber.recv_async(), recv_batch_async() and `async for msg in sub`, and the
 * same for a Sink (one message at a time).
 *
 * A message that is there is taken at once. Otherwise the event loop waits on the
 * reader's fd (shmbus_sub_fd(), shmbus_sink_fd(): an io_uring waiting on the topics'
 * futexes), with no thread:
 *  - The receive that found nothing (-EAGAIN) armed the fd. The future's wait registers
 *    the fd with loop.add_reader() (`areader`, `rloop`), a timer for its timeout
 *    (`atimer`, loop.call_later()) and a done callback (a cancel takes the fd off the loop
 *    at once).
 *  - When the loop sees the fd readable, `_async_ready` receives with timeout 0: a message
 *    completes the future (and the fd leaves the loop); -EAGAIN (a spurious wake-up: the
 *    library makes one at least every 100 ms while armed) armed the fd again, and the
 *    loop goes on waiting. Nothing is received while no future waits, so a cancel loses
 *    nothing.
 *  - The fd belongs to the C handle: the handle is closed only once the fd is off the loop
 *    (areader counts as a user). close() in another thread than the loop's asks the loop
 *    (call_soon_threadsafe) to take it off.
 *
 * Where the kernel gives no fd (-ENOSYS: no IORING_OP_FUTEX_WAIT before Linux 6.7, or
 * io_uring disabled) and for event loops without add_reader(), each reader used from
 * asyncio gets one helper thread instead (a daemon threading.Thread, started on the first
 * wait) that waits in shmbus_recv() with the GIL released, in slices of
 * PYSB_HELPER_SLICE_MS, and completes the future through loop.call_soon_threadsafe().
 * Either way the event loop itself never blocks and never spins. The rest of this comment
 * is about the helper thread, and the common parts:
 *
 *  - A message that is already there completes the future at once, on the loop thread,
 *    with no thread hop; every FAIR_STREAK-th such message is delivered through
 *    loop.call_soon() instead, so a consumer that never has to wait still yields to the
 *    other tasks.
 *  - The helper works on the C handle only while `ahelper` is set; nothing else touches
 *    the handle then (recv() waits for it, close() defers the C close to it).
 *  - The result goes to `aresult` and a callback on the loop (`_async_deliver`) sets it on
 *    whatever future is pending *when the callback runs*. If that future was cancelled
 *    meanwhile, the messages are kept in `astash` and returned by the next receives of
 *    any kind: cancelling (asyncio.wait_for, task.cancel) never loses a message.
 *  - A batch (recv_batch_async) is one result, a list. Whoever takes messages of it from
 *    the stash, or a pending future of another kind (a recv_async() that replaced a
 *    cancelled recv_batch_async(), or the other way round), takes what it asked for
 *    from the front (one message, or up to max) and leaves the rest stashed, in order.
 *    Handing out message i of the stashed batch lets go of those before it (their data
 *    dies, as at any recv, BufferError if a buffer of one is alive); the batch stays
 *    held in the ring until the stash is used up and the next receive lets it go.
 *  - Between slices the helper looks whether the future is done (cancelled) or the
 *    subscriber closed, and then stops waiting without consuming anything.
 * All of the state lives in the subscriber and is touched only with the GIL held.
 */
#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bindings/python/pyshmbus.h"

/* Messages completed at once in a row before one goes through the event loop. */
#define FAIR_STREAK 32

enum { RC_CLOSED = -100001, RC_CANCELLED = -100002 };

/* The helper thread of one subscriber. The subscriber and the thread each hold a
 * reference (refs); fields are read and written with the GIL held, except that the
 * semaphore wakes the thread while it waits without the GIL. */
struct pysb_helper {
	sem_t wake;    /* posted when there is work (sub set) or stop */
	int stop;      /* the subscriber is gone or closed: exit when idle */
	pysb_sub *sub; /* the subscriber to serve (a strong reference), or NULL: idle */
	int refs;
};

static PyObject *get_running_loop;  /* asyncio.get_running_loop */
static PyObject *running_loop_here; /* asyncio._get_running_loop (None outside a loop) */
static PyObject *thread_class;	    /* threading.Thread */
static PyObject *str_done, *str_create_future, *str_set_result, *str_set_exception, *str_call_soon,
	*str_call_soon_threadsafe, *str_start, *str_async_deliver, *str_add_reader,
	*str_remove_reader, *str_call_later, *str_cancel, *str_add_done_callback, *str_is_running,
	*str_is_closed, *str_async_ready, *str_async_timeout, *str_async_done, *str_async_detach;

/* Wait on the fd where there is one (_async_use_fd()). */
static int use_fd = 1;

static int lazy_init(void)
{
	if (get_running_loop)
		return 0;
	PyObject *asyncio = PyImport_ImportModule("asyncio");
	if (!asyncio)
		return -1;
	PyObject *threading = PyImport_ImportModule("threading");
	if (!threading) {
		Py_DECREF(asyncio);
		return -1;
	}
	thread_class = PyObject_GetAttrString(threading, "Thread");
	get_running_loop = PyObject_GetAttrString(asyncio, "get_running_loop");
	running_loop_here = PyObject_GetAttrString(asyncio, "_get_running_loop");
	Py_DECREF(threading);
	Py_DECREF(asyncio);
	if (!thread_class || !get_running_loop || !running_loop_here) {
		Py_CLEAR(thread_class);
		Py_CLEAR(get_running_loop);
		Py_CLEAR(running_loop_here);
		return -1;
	}
#define INTERN(var, text)                                      \
	do {                                                   \
		if (!(var = PyUnicode_InternFromString(text))) \
			return -1;                             \
	} while (0)
	INTERN(str_done, "done");
	INTERN(str_create_future, "create_future");
	INTERN(str_set_result, "set_result");
	INTERN(str_set_exception, "set_exception");
	INTERN(str_call_soon, "call_soon");
	INTERN(str_call_soon_threadsafe, "call_soon_threadsafe");
	INTERN(str_start, "start");
	INTERN(str_async_deliver, "_async_deliver");
	INTERN(str_add_reader, "add_reader");
	INTERN(str_remove_reader, "remove_reader");
	INTERN(str_call_later, "call_later");
	INTERN(str_cancel, "cancel");
	INTERN(str_add_done_callback, "add_done_callback");
	INTERN(str_is_running, "is_running");
	INTERN(str_is_closed, "is_closed");
	INTERN(str_async_ready, "_async_ready");
	INTERN(str_async_timeout, "_async_timeout");
	INTERN(str_async_done, "_async_done");
	INTERN(str_async_detach, "_async_detach");
#undef INTERN
	return 0;
}

static int future_done(PyObject *fut)
{
	PyObject *r = PyObject_CallMethodNoArgs(fut, str_done);
	if (!r)
		return -1;
	int d = PyObject_IsTrue(r);
	Py_DECREF(r);
	return d;
}

/* Is loop closed? (An error asking counts as closed: nothing would run on it.) */
static int loop_closed(PyObject *loop)
{
	PyObject *r = PyObject_CallMethodNoArgs(loop, str_is_closed);
	int closed = r ? PyObject_IsTrue(r) : 1;
	Py_XDECREF(r);
	if (closed < 0 || !r) {
		PyErr_Clear();
		closed = 1;
	}
	return closed;
}

/* Is the pending future s->afut gone for good: done (cancelled), or of a closed loop (it can
 * never be awaited)? 1, 0, or -1 with an exception set. */
static int future_gone(pysb_sub *s)
{
	int done = future_done(s->afut);
	if (done || !s->aloop)
		return done;
	return loop_closed(s->aloop);
}

/* ---- the helper thread ------------------------------------------------------------------- */

static void helper_unref(struct pysb_helper *h)
{
	if (--h->refs == 0) {
		sem_destroy(&h->wake);
		PyMem_RawFree(h);
	}
}

static void helper_stop(pysb_sub *s)
{
	struct pysb_helper *h = s->helper;
	if (!h)
		return;
	s->helper = NULL;
	h->stop = 1;
	sem_post(&h->wake);
	helper_unref(h);
}

static PyMethodDef worker_def = {
	"_async_worker",
	(PyCFunction)pysb_async_worker,
	METH_O,
	"Internal: the body of a subscriber's asyncio helper thread.",
};

static int helper_start(pysb_sub *s)
{
	struct pysb_helper *h = PyMem_RawCalloc(1, sizeof(*h));
	if (!h) {
		PyErr_NoMemory();
		return -1;
	}
	if (sem_init(&h->wake, 0, 0) < 0) {
		PyMem_RawFree(h);
		PyErr_SetFromErrno(PyExc_OSError);
		return -1;
	}
	h->refs = 1;
	PyObject *cap = PyCapsule_New(h, "shmbus.helper", NULL);
	PyObject *fn = PyCFunction_New(&worker_def, NULL);
	PyObject *name = PyUnicode_FromFormat("shmbus-recv-%U", s->topic);
	PyObject *kw = cap && fn && name ?
			       Py_BuildValue("{s:O,s:(O),s:O,s:O}", "target", fn, "args", cap,
					     "name", name, "daemon", Py_True) :
			       NULL;
	PyObject *empty = PyTuple_New(0);
	PyObject *thread = kw && empty ? PyObject_Call(thread_class, empty, kw) : NULL;
	Py_XDECREF(empty);
	Py_XDECREF(kw);
	Py_XDECREF(name);
	Py_XDECREF(fn);
	Py_XDECREF(cap);
	if (!thread) {
		helper_unref(h);
		return -1;
	}
	h->refs++; /* the thread's, dropped when it exits */
	PyObject *r = PyObject_CallMethodNoArgs(thread, str_start);
	Py_DECREF(thread);
	if (!r) {
		h->refs--;
		helper_unref(h);
		return -1;
	}
	Py_DECREF(r);
	s->helper = h;
	return 0;
}

static int is_messages(PyObject *res)
{
	return res && (Py_IS_TYPE(res, &pysb_MsgType) || PyList_CheckExact(res));
}

/* Keep a result nobody awaits: messages (a Message or a list of them) go to the end of
 * the stash for the next receives; anything else is dropped. Steals res. */
static void keep_for_next(pysb_sub *s, PyObject *res)
{
	if (!is_messages(res) || s->closed) {
		Py_DECREF(res);
		return;
	}
	if (!s->astash && PyList_CheckExact(res)) {
		s->astash = res;
	} else {
		if (!s->astash && !(s->astash = PyList_New(0)))
			goto lost;
		int rc = PyList_CheckExact(res) ?
				 PyList_SetSlice(s->astash, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, res) :
				 PyList_Append(s->astash, res);
		if (rc < 0)
			goto lost;
		Py_DECREF(res);
	}
	if (PyList_GET_SIZE(s->astash) == 0)
		Py_CLEAR(s->astash);
	return;
lost:
	/* Out of memory: nothing better to do than to say so where nobody listens. */
	PyErr_WriteUnraisable((PyObject *)s);
	Py_DECREF(res);
}

/* Take the front of the stash for a receive that wants one Message (max 0) or a list of
 * up to max: *out is it (new reference), or NULL if the stash is empty. Messages of the
 * stashed batch before the first one handed out are let go. 0, or -1 with an exception
 * set (BufferError: a buffer of an earlier message is alive; nothing taken). */
static int stash_take(pysb_sub *s, unsigned max, PyObject **out)
{
	*out = NULL;
	if (!s->astash)
		return 0;
	PyObject *st = s->astash;
	Py_ssize_t n = PyList_GET_SIZE(st);
	pysb_msg *first = (pysb_msg *)PyList_GET_ITEM(st, 0);
	if (pysb_sub_let_go_before(s, first->idx) < 0)
		return -1;
	Py_ssize_t k = max ? (n < (Py_ssize_t)max ? n : (Py_ssize_t)max) : 1;
	PyObject *res = max ? PyList_GetSlice(st, 0, k) : Py_NewRef(first);
	if (!res)
		return -1;
	if (k == n) {
		Py_CLEAR(s->astash);
	} else if (PyList_SetSlice(st, 0, k, NULL) < 0) {
		Py_DECREF(res);
		return -1;
	}
	*out = res;
	return 0;
}

/* Hand res (stolen) to the pending future through its loop's callback queue; callable
 * from any thread. */
static void schedule(pysb_sub *s, PyObject *res)
{
	if (!s->afut || !s->aloop) {
		keep_for_next(s, res);
		return;
	}
	Py_XSETREF(s->aresult, res);
	if (s->adeliver)
		return; /* the callback already queued delivers the new result */
	/* Set before the call: call_soon_threadsafe may let the loop thread run, and the
	 * callback clears it. */
	s->adeliver = 1;
	PyObject *cb = PyObject_GetAttr((PyObject *)s, str_async_deliver);
	PyObject *r = cb ? PyObject_CallMethodOneArg(s->aloop, str_call_soon_threadsafe, cb) : NULL;
	Py_XDECREF(cb);
	if (r) {
		Py_DECREF(r);
		return;
	}
	/* The loop is closed: nobody will await this future. */
	PyErr_Clear();
	s->adeliver = 0;
	Py_CLEAR(s->afut);
	Py_CLEAR(s->aloop);
	res = s->aresult;
	s->aresult = NULL;
	if (res)
		keep_for_next(s, res);
}

/* The result of a failed wait, as an exception object (new reference, never NULL unless
 * memory ran out). */
static PyObject *wait_exception(pysb_sub *s, const char *op, int rc)
{
	if (rc == PYSB_RC_FILTER) {
		PyObject *exc = pysb_sink_filter_exc(s);
		if (exc)
			return exc;
		rc = -EIO; /* (cannot happen: the filter's exception is kept until taken) */
	}
	if (rc == PYSB_RC_PYERR && PyErr_Occurred()) {
		PyObject *t, *v, *tb;
		PyErr_Fetch(&t, &v, &tb);
		PyErr_NormalizeException(&t, &v, &tb);
		if (tb && v)
			PyException_SetTraceback(v, tb);
		Py_XDECREF(t);
		Py_XDECREF(tb);
		return v;
	}
	if (rc == PYSB_RC_PYERR)
		rc = -EIO;
	char msg[256], where[SHMBUS_TOPIC_NAME_MAX + 8];
	const char *topic = PyUnicode_AsUTF8(s->topic);
	if (!topic) {
		PyErr_Clear();
		topic = "?";
	}
	if (s->is_sink)
		snprintf(where, sizeof(where), "the sink");
	else
		snprintf(where, sizeof(where), "'%s'", topic);
	if (rc == -EAGAIN)
		snprintf(msg, sizeof(msg), "%s on %s: no message within the timeout", op, where);
	else
		snprintf(msg, sizeof(msg), "%s on %s: %s", op, where, strerror(-rc));
	PyObject *exc = pysb_exc_new(rc, msg);
	if (!exc) {
		PyObject *t, *v, *tb;
		PyErr_Fetch(&t, &v, &tb);
		PyErr_NormalizeException(&t, &v, &tb);
		Py_XDECREF(t);
		Py_XDECREF(tb);
		exc = v;
	}
	return exc;
}

/* ---- waiting on the fd -------------------------------------------------------------------- */

PyObject *pysb_async_use_fd(PyObject *module, PyObject *flag)
{
	(void)module;
	int v = PyObject_IsTrue(flag);
	if (v < 0)
		return NULL;
	int old = use_fd;
	use_fd = v;
	return PyBool_FromLong(old);
}

/* What a pending future gets at close(): StopAsyncIteration for __anext__, else
 * ValueError. New reference, or NULL (no exception set) if even that failed. */
static PyObject *closing_exc(pysb_sub *s)
{
	PyObject *exc;
	if (s->aiter) {
		exc = PyObject_CallNoArgs(PyExc_StopAsyncIteration);
	} else {
		PyObject *text =
			PyUnicode_FromFormat("operation on a closed shmbus.%s", pysb_kind(s));
		exc = text ? PyObject_CallOneArg(PyExc_ValueError, text) : NULL;
		Py_XDECREF(text);
	}
	if (!exc)
		PyErr_Clear();
	return exc;
}

/* Call a method of a loop or future that must not fail, for its effect. */
static void call_for_effect(PyObject *obj, PyObject *name, PyObject *arg, PyObject *who)
{
	PyObject *r = arg ? PyObject_CallMethodOneArg(obj, name, arg) :
			    PyObject_CallMethodNoArgs(obj, name);
	if (!r)
		PyErr_WriteUnraisable(who);
	Py_XDECREF(r);
}

/* Take the fd off its loop and cancel the timeout: on the loop's thread, or with the loop
 * not running. An exception set stays set. */
static void fd_detach(pysb_sub *s)
{
	if (!s->areader && !s->atimer)
		return;
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	PyObject *timer = s->atimer;
	s->atimer = NULL;
	if (timer) {
		call_for_effect(timer, str_cancel, NULL, (PyObject *)s);
		Py_DECREF(timer);
	}
	PyObject *loop = s->rloop;
	s->rloop = NULL;
	if (s->areader && loop) {
		/* (a closed loop's remove_reader() does nothing) */
		PyObject *fd = PyLong_FromLong(s->fd);
		if (fd)
			call_for_effect(loop, str_remove_reader, fd, (PyObject *)s);
		else
			PyErr_WriteUnraisable((PyObject *)s);
		Py_XDECREF(fd);
	}
	s->areader = 0;
	Py_XDECREF(loop);
	PyErr_Restore(t, v, tb);
}

/* May this thread call loop's methods (not thread-safe)? Yes on its thread, or while it
 * does not run. */
static int loop_here(PyObject *loop)
{
	PyObject *cur = PyObject_CallNoArgs(running_loop_here);
	if (!cur) {
		PyErr_Clear();
		return 1;
	}
	Py_DECREF(cur);
	if (cur == loop)
		return 1;
	PyObject *r = PyObject_CallMethodNoArgs(loop, str_is_running);
	if (!r) {
		PyErr_Clear();
		return 1;
	}
	int running = PyObject_IsTrue(r);
	Py_DECREF(r);
	return running != 1;
}

/* The wait on the fd is over: the fd off the loop, and the pending future completed with
 * res (stolen: messages or an exception; NULL: nothing to give, the future forgotten). A
 * message that finds the future done (cancelled meanwhile) is kept for the next receive.
 * With the GIL, on the loop's thread. */
static void fd_end(pysb_sub *s, PyObject *res)
{
	PyObject *fut = s->afut, *loop = s->aloop;
	s->afut = NULL;
	s->aloop = NULL;
	fd_detach(s);
	if (res) {
		int done = fut ? future_done(fut) : 1;
		if (done < 0) {
			PyErr_WriteUnraisable((PyObject *)s);
			done = 1;
		}
		/* A future of a closed loop cannot be completed (nor awaited). */
		if (!done && loop)
			done = loop_closed(loop);
		if (done) {
			keep_for_next(s, res);
		} else {
			call_for_effect(fut,
					PyExceptionInstance_Check(res) ? str_set_exception :
									 str_set_result,
					res, fut);
			Py_DECREF(res);
		}
	}
	Py_XDECREF(fut);
	Py_XDECREF(loop);
	pysb_sub_maybe_finish(s);
}

/* The wait on the fd is over, from any thread (close(), a synchronous recv): the fd off
 * the loop, and a pending future, if closed, ended with closing_exc() (else forgotten).
 * From another thread than the one running the loop, the loop is asked to do it
 * (_async_detach()). */
static void fd_end_any(pysb_sub *s)
{
	PyObject *loop = s->rloop;
	if (!loop || loop_here(loop)) {
		fd_end(s, s->closed && s->afut ? closing_exc(s) : NULL);
		return;
	}
	PyObject *cb = PyObject_GetAttr((PyObject *)s, str_async_detach);
	PyObject *r = cb ? PyObject_CallMethodOneArg(loop, str_call_soon_threadsafe, cb) : NULL;
	Py_XDECREF(cb);
	if (r) {
		Py_DECREF(r);
		return;
	}
	/* The loop is closed: nobody will await the future, and its selector is gone. */
	PyErr_Clear();
	fd_end(s, NULL);
}

PyObject *pysb_sub_async_detach(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	if (s->afut && !s->closed)
		Py_RETURN_NONE; /* a new wait on this loop took the registration over */
	fd_end(s, s->closed && s->afut ? closing_exc(s) : NULL);
	Py_RETURN_NONE;
}

/* Wait for the future fut of loop on the fd: add_reader, the done callback, the timer.
 * 0; 1 if the loop cannot watch an fd (NotImplementedError: use the helper thread); -1
 * with an exception set. */
static int fd_wait(pysb_sub *s, PyObject *loop, PyObject *fut, int fd, int64_t timeout_ms)
{
	if (s->areader && s->rloop != loop)
		fd_detach(s);
	if (!s->areader) {
		PyObject *cb = PyObject_GetAttr((PyObject *)s, str_async_ready);
		PyObject *fdo = PyLong_FromLong(fd);
		PyObject *r = cb && fdo ? PyObject_CallMethodObjArgs(loop, str_add_reader, fdo, cb,
								     NULL) :
					  NULL;
		Py_XDECREF(cb);
		Py_XDECREF(fdo);
		if (!r) {
			if (PyErr_ExceptionMatches(PyExc_NotImplementedError)) {
				PyErr_Clear();
				return 1;
			}
			return -1;
		}
		Py_DECREF(r);
		s->areader = 1;
		s->rloop = Py_NewRef(loop);
	}
	PyObject *cb = PyObject_GetAttr((PyObject *)s, str_async_done);
	PyObject *r = cb ? PyObject_CallMethodOneArg(fut, str_add_done_callback, cb) : NULL;
	Py_XDECREF(cb);
	if (!r)
		goto fail;
	Py_DECREF(r);
	if (timeout_ms >= 0) {
		PyObject *delay = PyFloat_FromDouble((double)timeout_ms / 1000.0);
		cb = PyObject_GetAttr((PyObject *)s, str_async_timeout);
		s->atimer = cb && delay ? PyObject_CallMethodObjArgs(loop, str_call_later, delay,
								     cb, NULL) :
					  NULL;
		Py_XDECREF(cb);
		Py_XDECREF(delay);
		if (!s->atimer)
			goto fail;
	}
	return 0;
fail:
	fd_detach(s);
	return -1;
}

/* Take what is there for the pending future (timeout 0): its result (a Message or a list,
 * or an exception), or NULL if nothing is there (the fd armed again). */
static PyObject *fd_take(pysb_sub *s)
{
	const char *op = s->amax ? "recv_batch_async" : "recv_async";
	if (pysb_sub_let_go(s) < 0)
		return wait_exception(s, op, PYSB_RC_PYERR);
	unsigned hmax = s->ahmax;
	shmbus_msg_t one;
	shmbus_msg_t *msgs = hmax ? s->bmsgs : &one;
	int rc = pysb_sub_poll(s, msgs, hmax ? hmax : 1);
	if (rc == -EAGAIN || rc == -EINTR)
		return NULL;
	if (rc <= 0)
		return wait_exception(s, op, rc);
	PyObject *res = hmax ? pysb_sub_wrap_batch(s, msgs, (unsigned)rc) : pysb_sub_wrap(s, msgs);
	return res ? res : wait_exception(s, op, PYSB_RC_PYERR);
}

PyObject *pysb_sub_async_ready(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	if (!s->areader)
		Py_RETURN_NONE; /* a late call: the fd left the loop */
	if (s->closed || !s->afut) {
		fd_end(s, s->closed && s->afut ? closing_exc(s) : NULL);
		Py_RETURN_NONE;
	}
	int done = future_done(s->afut);
	if (done < 0)
		return NULL;
	if (done) {
		fd_end(s, NULL);
		Py_RETURN_NONE;
	}
	/* Another thread copies a payload without the GIL (Message.bytes()), or a result is
	 * on its way through the loop already: the fd is still readable after. */
	if (s->busy || s->ahelper || s->adeliver)
		Py_RETURN_NONE;
	s->astreak = 0;
	PyObject *res = fd_take(s);
	if (res && s->afut)
		fd_end(s, res);
	else
		Py_XDECREF(res); /* (nothing: armed again; or closed by the filter, ended) */
	Py_RETURN_NONE;
}

PyObject *pysb_sub_async_timeout(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	Py_CLEAR(s->atimer);
	if (!s->afut || s->closed)
		Py_RETURN_NONE;
	int done = future_done(s->afut);
	if (done < 0)
		return NULL;
	if (done)
		Py_RETURN_NONE; /* the done callback ends it */
	/* One last look: a message that came just now is not a timeout. */
	PyObject *res = NULL;
	if (!s->busy && !s->ahelper && !s->adeliver)
		res = fd_take(s);
	if (!s->afut) {
		Py_XDECREF(res);
		Py_RETURN_NONE;
	}
	if (!res)
		res = wait_exception(s, s->amax ? "recv_batch_async" : "recv_async", -EAGAIN);
	fd_end(s, res);
	Py_RETURN_NONE;
}

PyObject *pysb_sub_async_done(pysb_sub *s, PyObject *fut)
{
	/* Our own completions forget the future first: this is a cancel (or someone else
	 * set its result). */
	if (fut == s->afut && s->areader)
		fd_end(s, NULL);
	Py_RETURN_NONE;
}

/* ---- the helper thread's work ------------------------------------------------------------- */

/* Serve the pending request of s: wait for a message in slices, then deliver. */
static void serve(struct pysb_helper *h, pysb_sub *s)
{
	/* One message (recv_async), or a batch of up to hmax into s->bmsgs, which nothing
	 * else touches while ahelper is set. */
	unsigned hmax = s->ahmax;
	const char *op = hmax ? "recv_batch_async" : "recv_async";
	shmbus_msg_t one;
	shmbus_msg_t *msgs = hmax ? s->bmsgs : &one;
	int rc;
	for (;;) {
		if (s->closed) {
			rc = RC_CLOSED;
			break;
		}
		int done = s->afut ? future_done(s->afut) : 1;
		if (done) {
			if (done < 0)
				PyErr_Clear();
			rc = RC_CANCELLED;
			break;
		}
		int slice = PYSB_HELPER_SLICE_MS;
		if (s->adeadline >= 0) {
			int64_t left = s->adeadline - pysb_now_ms();
			if (left <= 0) {
				rc = -EAGAIN;
				break;
			}
			if (left < slice)
				slice = (int)left;
		}
		Py_BEGIN_ALLOW_THREADS
			rc = pysb_take(s, msgs, hmax ? hmax : 1, slice, 0);
		Py_END_ALLOW_THREADS
		if (rc != -EAGAIN && rc != -EINTR)
			break;
	}
	/* Done with the handle. No request is queued to this thread from here (h->sub
	 * again) until ahelper is cleared: until then a new one takes the pending one's
	 * place, and a synchronous recv waits. Wrapping may run Python code (the GC) and let
	 * other threads in: the result is in hand before they may look for it. */
	h->sub = NULL;
	PyObject *res = NULL;
	if (rc > 0 && !s->closed) {
		res = hmax ? pysb_sub_wrap_batch(s, msgs, (unsigned)rc) : pysb_sub_wrap(s, msgs);
		if (!res)
			res = wait_exception(s, op, PYSB_RC_PYERR);
	} else if (rc == RC_CANCELLED) {
		/* Nothing consumed; forget the cancelled future. Its finalizer may run Python
		 * code: a request made meanwhile starts afresh. */
		PyObject *fut = s->afut, *loop = s->aloop;
		s->afut = NULL;
		s->aloop = NULL;
		s->ahelper = 0;
		Py_XDECREF(fut);
		Py_XDECREF(loop);
	} else if (rc != RC_CLOSED && rc <= 0) {
		res = wait_exception(s, op, rc);
	}
	s->ahelper = 0;
	/* (closed, even while wrapping: close() already scheduled the closing exception; the
	 * messages, if any, go with the handle) */
	if (res && s->closed)
		Py_CLEAR(res);
	/* schedule() puts res in place before it runs any Python code */
	if (res)
		schedule(s, res);
	pysb_sub_maybe_finish(s);
}

PyObject *pysb_async_worker(PyObject *module, PyObject *capsule)
{
	(void)module;
	struct pysb_helper *h = PyCapsule_GetPointer(capsule, "shmbus.helper");
	if (!h)
		return NULL;
	for (;;) {
		while (!h->sub && !h->stop) {
			Py_BEGIN_ALLOW_THREADS
				while (sem_wait(&h->wake) < 0 && errno == EINTR)
					;
			Py_END_ALLOW_THREADS
		}
		pysb_sub *s = h->sub;
		if (!s)
			break;
		serve(h, s); /* clears h->sub; its reference is ours to drop */
		Py_DECREF(s);
	}
	helper_unref(h);
	Py_RETURN_NONE;
}

/* ---- the loop side -------------------------------------------------------------------- */

PyObject *pysb_sub_async_deliver(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	s->adeliver = 0;
	PyObject *res = s->aresult;
	s->aresult = NULL;
	if (!res)
		Py_RETURN_NONE;
	PyObject *fut = s->afut;
	int done = fut ? future_done(fut) : 1;
	if (done < 0) {
		PyErr_Clear();
		done = 1;
	}
	if (done) {
		/* cancelled meanwhile */
		Py_CLEAR(s->afut);
		Py_CLEAR(s->aloop);
		keep_for_next(s, res);
		Py_RETURN_NONE;
	}
	s->afut = NULL;
	Py_CLEAR(s->aloop);
	if (is_messages(res)) {
		/* What this future asked for, from the front; the rest stays stashed. */
		keep_for_next(s, res);
		if (stash_take(s, s->amax, &res) < 0) {
			PyObject *t, *v, *tb;
			PyErr_Fetch(&t, &v, &tb);
			PyErr_NormalizeException(&t, &v, &tb);
			Py_XDECREF(t);
			Py_XDECREF(tb);
			res = v;
		} else if (!res) {
			res = PyUnicode_FromFormat("operation on a closed shmbus.%s", pysb_kind(s));
			if (res)
				Py_SETREF(res, PyObject_CallOneArg(PyExc_ValueError, res));
		}
		if (!res) {
			Py_DECREF(fut);
			return NULL;
		}
	}
	PyObject *r = PyObject_CallMethodOneArg(
		fut, PyExceptionInstance_Check(res) ? str_set_exception : str_set_result, res);
	Py_DECREF(fut);
	Py_DECREF(res);
	if (!r)
		return NULL;
	Py_DECREF(r);
	Py_RETURN_NONE;
}

static int complete(PyObject *fut, PyObject *res)
{
	PyObject *r = PyObject_CallMethodOneArg(fut, str_set_result, res);
	if (!r)
		return -1;
	Py_DECREF(r);
	return 0;
}

PyObject *pysb_sub_recv_async(pysb_sub *s, int64_t timeout_ms, int aiter, unsigned max)
{
	const char *op = max ? "recv_batch_async" : "recv_async";
	if (s->closed || !pysb_open(s)) {
		if (aiter) {
			PyErr_SetNone(PyExc_StopAsyncIteration);
			return NULL;
		}
		return pysb_closed(pysb_kind(s));
	}
	if (!pysb_sub_usable(s))
		return NULL;
	if (lazy_init() < 0)
		return NULL;
	PyObject *loop = PyObject_CallNoArgs(get_running_loop);
	if (!loop)
		return NULL;
	PyObject *fut = PyObject_CallMethodNoArgs(loop, str_create_future);
	if (!fut)
		goto fail;
	int64_t deadline = pysb_deadline(timeout_ms);
	if (s->areader) {
		/* A wait on the fd: refused while its future is pending; one cancelled is
		 * forgotten (nothing was received for it), and the fd leaves the loop. */
		if (s->afut) {
			int done = future_gone(s);
			if (done < 0)
				goto fail;
			if (!done) {
				PyErr_Format(PyExc_RuntimeError,
					     "recv_async() is already pending on this %s",
					     s->is_sink ? "sink" : "subscriber");
				goto fail;
			}
			Py_CLEAR(s->afut);
			Py_CLEAR(s->aloop);
		}
		fd_end_any(s);
	}
	if (s->afut && !s->ahelper && s->aloop && loop_closed(s->aloop)) {
		/* The pending future's loop was closed: a delivery queued on it never runs.
		 * What it was to bring goes to the next receive. */
		s->adeliver = 0;
		Py_CLEAR(s->afut);
		Py_CLEAR(s->aloop);
		PyObject *res = s->aresult;
		s->aresult = NULL;
		if (res)
			keep_for_next(s, res);
	}
	if (s->afut && !s->ahelper && (!s->adeliver || (s->aresult && !is_messages(s->aresult)))) {
		/* A cancelled future's outcome is on its way, but it is not a message (a
		 * timeout, an error): nothing for the new future to inherit; start afresh. The
		 * queued callback will find nothing to deliver. (With neither a helper nor a
		 * delivery under way a future is never kept; cleared here all the same.) */
		int done = future_gone(s);
		if (done < 0)
			goto fail;
		if (done) {
			Py_CLEAR(s->afut);
			Py_CLEAR(s->aloop);
			Py_CLEAR(s->aresult);
		}
	}
	if (s->afut || s->ahelper) {
		int done = s->afut ? future_gone(s) : 1;
		if (done < 0)
			goto fail;
		if (!done) {
			PyErr_Format(PyExc_RuntimeError,
				     "recv_async() is already pending on this %s",
				     s->is_sink ? "sink" : "subscriber");
			goto fail;
		}
		/* The previous future was cancelled while the helper or its delivery was under
		 * way: this one takes its place and gets what they bring. */
		Py_XSETREF(s->afut, Py_NewRef(fut));
		Py_XSETREF(s->aloop, loop);
		s->aiter = aiter;
		s->amax = max;
		s->adeadline = deadline;
		return fut;
	}
	if (s->astash) {
		PyObject *msg;
		if (stash_take(s, max, &msg) < 0)
			goto fail;
		int rc = complete(fut, msg);
		Py_DECREF(msg);
		if (rc < 0)
			goto fail;
		Py_DECREF(loop);
		return fut;
	}
	if (pysb_sub_let_go(s) < 0)
		goto fail;
	int cap = max ? pysb_sub_batch_room(s, max) : 1;
	if (cap < 0)
		goto fail;
	shmbus_msg_t one;
	shmbus_msg_t *msgs = max ? s->bmsgs : &one;
	int rc = pysb_sub_poll(s, msgs, (unsigned)cap);
	if (rc > 0) {
		PyObject *msg = max ? pysb_sub_wrap_batch(s, msgs, (unsigned)rc) :
				      pysb_sub_wrap(s, msgs);
		if (!msg)
			goto fail;
		if (++s->astreak < FAIR_STREAK) {
			rc = complete(fut, msg);
			Py_DECREF(msg);
			if (rc < 0)
				goto fail;
			Py_DECREF(loop);
			return fut;
		}
		/* Through the loop this time, so that the other tasks get a turn. */
		s->astreak = 0;
		s->afut = Py_NewRef(fut);
		s->aloop = loop;
		s->aiter = aiter;
		s->amax = max;
		s->aresult = msg;
		s->adeliver = 1;
		PyObject *cb = PyObject_GetAttr((PyObject *)s, str_async_deliver);
		PyObject *r = cb ? PyObject_CallMethodOneArg(loop, str_call_soon, cb) : NULL;
		Py_XDECREF(cb);
		if (!r) {
			s->adeliver = 0;
			s->aresult = NULL;
			Py_CLEAR(s->afut);
			s->aloop = NULL;
			keep_for_next(s, msg);
			Py_DECREF(fut);
			Py_DECREF(loop);
			return NULL;
		}
		Py_DECREF(r);
		return fut;
	}
	s->astreak = 0;
	if (rc != -EAGAIN) {
		PyObject *exc = wait_exception(s, op, rc);
		if (exc) {
			PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
			Py_DECREF(exc);
		}
		goto fail;
	}
	if (timeout_ms == 0) {
		if (s->is_sink)
			pysb_raise(-EAGAIN, "%s on the sink: no message (timeout 0)", op);
		else
			pysb_raise(-EAGAIN, "%s on '%U': no message (timeout 0)", op, s->topic);
		goto fail;
	}
	if (use_fd && !s->fd_nosys) {
		/* The receive that found nothing armed the fd (or making it does). */
		int fd = pysb_sub_fd(s, 1);
		if (fd == -ENOSYS)
			PyErr_Clear();
		else if (fd < 0)
			goto fail;
		if (fd >= 0) {
			int how = fd_wait(s, loop, fut, fd, timeout_ms);
			if (how < 0)
				goto fail;
			if (how == 0) {
				s->afut = Py_NewRef(fut);
				s->aloop = loop;
				s->aiter = aiter;
				s->amax = max;
				s->adeadline = deadline;
				s->ahmax = max ? (unsigned)cap : 0;
				return fut;
			}
		}
	}
	if (!s->helper && helper_start(s) < 0)
		goto fail;
	s->afut = Py_NewRef(fut);
	s->aloop = loop;
	s->aiter = aiter;
	s->amax = max;
	s->adeadline = deadline;
	s->ahelper = 1;
	s->ahmax = max ? (unsigned)cap : 0;
	s->helper->sub = (pysb_sub *)Py_NewRef(s);
	sem_post(&s->helper->wake);
	return fut;
fail:
	Py_XDECREF(fut);
	Py_DECREF(loop);
	return NULL;
}

int pysb_sub_async_settle(pysb_sub *s, unsigned max, PyObject **out)
{
	*out = NULL;
	if (s->afut) {
		int done = future_gone(s);
		if (done < 0)
			return -1;
		if (!done) {
			PyErr_Format(
				PyExc_RuntimeError,
				"recv_async() is pending on this %s: await or cancel it before "
				"calling recv()",
				s->is_sink ? "sink" : "subscriber");
			return -1;
		}
		Py_CLEAR(s->afut);
		Py_CLEAR(s->aloop);
	}
	/* A cancelled wait on the fd: the fd off the loop. */
	if (s->areader || s->atimer)
		fd_end_any(s);
	/* A cancelled request's helper is at most one slice from noticing. */
	while (s->ahelper) {
		pysb_nap();
		if (PyErr_CheckSignals() < 0)
			return -1;
	}
	/* A result whose future is gone (its callback, if queued, will find nothing). */
	if (s->aresult) {
		PyObject *res = s->aresult;
		s->aresult = NULL;
		keep_for_next(s, res);
	}
	return stash_take(s, max, out);
}

void pysb_sub_async_close(pysb_sub *s)
{
	Py_CLEAR(s->astash);
	if (s->areader || s->atimer) {
		/* (lazy_init() ran: the fd was put on a loop) */
		fd_end_any(s);
	} else if (s->afut) {
		PyObject *exc = closing_exc(s);
		if (exc)
			schedule(s, exc);
	}
	helper_stop(s);
}

int pysb_sub_async_traverse(pysb_sub *s, visitproc visit, void *arg)
{
	Py_VISIT(s->afut);
	Py_VISIT(s->aloop);
	Py_VISIT(s->aresult);
	Py_VISIT(s->astash);
	Py_VISIT(s->rloop);
	Py_VISIT(s->atimer);
	return 0;
}

void pysb_sub_async_clear(pysb_sub *s)
{
	Py_CLEAR(s->afut);
	Py_CLEAR(s->aloop);
	Py_CLEAR(s->aresult);
	Py_CLEAR(s->astash);
	/* Garbage (the loop with it, or it would hold a reference): no call into the loop. */
	Py_CLEAR(s->atimer);
	Py_CLEAR(s->rloop);
	s->areader = 0;
	helper_stop(s);
}
