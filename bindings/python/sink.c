/* SPDX-License-Identifier: MIT */
/*
 * shmbus.Sink: one reader over many topics (shmbus_sink_*(), docs/sinks.md), by name or
 * pattern, joined as they are created and left as they are removed.
 *
 * A Sink is a pysb_sub with `sink` set (pyshmbus.h): receiving, messages and their
 * lifetime, iteration and asyncio are the Subscriber's code, one message at a time.
 * What is the sink's own:
 *
 *  - The filter, a Python callable(topic, type, data) -> bool, is called by the library
 *    inside shmbus_sink_recv(), maybe in a thread that released the GIL (a blocking recv,
 *    the asyncio helper): the trampoline takes the GIL (PyGILState_Ensure). data is a
 *    read-only memoryview of the payload in the ring, valid for the call only (released
 *    after it; a buffer of it kept beyond the call is an error, BufferError). While the
 *    filter runs the sink is busy: it may ack(), nack() or close() the sink, nothing else.
 *  - A filter that raises (or whose result has no truth value): the trampoline keeps the
 *    exception (`ferr`) and keeps the message, so that the library's receive returns at
 *    once; the binding then consumes that message as a rejected one would be, except
 *    that an acknowledging sink nacks it (delay 0: it is redelivered, and after the
 *    group's max_deliver deliveries dead-lettered) rather than ack it, so that a failing
 *    filter loses nothing there. The receive then raises the exception (recv(), next(),
 *    or the awaited future). Messages the filter did not see yet stay in the ring.
 *  - One library call on the sink at a time, under `klock`: the library lets an ack or
 *    nack run beside a receive in another thread for a subscriber, but a sink's receive
 *    may grow or shrink its table of topics (a topic joined or left) while an ack looks
 *    a message's topic up in it. So an ack from another thread waits for the receive's
 *    current slice (at most PYSB_SLICE_MS, PYSB_HELPER_SLICE_MS in the helper). Nobody
 *    waits for the lock with the GIL held (the filter needs the GIL inside a receive).
 *  - add(), remove() and the first fileno() may leave topics (removed ones, or no longer
 *    matched): they let go of the message last received first, as a receive does.
 */
#include <errno.h>
#include <string.h>

#include "bindings/python/pyshmbus.h"

#include <pythread.h>

/* Topic names of recent messages, as str: a sink reads a topic's messages in bursts. */
#define TNAMES 8
struct pysb_tname {
	PyObject *str;
	char name[SHMBUS_TOPIC_NAME_MAX + 1];
};

/* ---- the payload handed to the filter ------------------------------------------------- */

/* The exporter of the filter's memoryview: counts the buffers taken of it, refuses new
 * ones after the call. */
typedef struct {
	PyObject_HEAD const void *data;
	Py_ssize_t len;
	Py_ssize_t exports;
	int valid;
} pysb_payload;

static int payload_getbuffer(pysb_payload *p, Py_buffer *view, int flags)
{
	if (!p->valid) {
		PyErr_SetString(PyExc_BufferError,
				"a sink filter's data is valid only during the call");
		view->obj = NULL;
		return -1;
	}
	static const char empty[1];
	if (PyBuffer_FillInfo(view, (PyObject *)p, (void *)(p->data ? p->data : empty), p->len, 1,
			      flags) < 0)
		return -1;
	p->exports++;
	return 0;
}

static void payload_releasebuffer(pysb_payload *p, Py_buffer *view)
{
	(void)view;
	p->exports--;
}

static PyBufferProcs payload_as_buffer = {
	.bf_getbuffer = (getbufferproc)payload_getbuffer,
	.bf_releasebuffer = (releasebufferproc)payload_releasebuffer,
};

static PyTypeObject payload_type = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmbus._FilterPayload",
	.tp_basicsize = sizeof(pysb_payload),
	.tp_as_buffer = &payload_as_buffer,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "The payload a sink's filter sees (through a memoryview), during the call.",
};

/* ---- the lock ------------------------------------------------------------------------------- */

int pysb_sink_lock(pysb_sub *s, int gil)
{
	/* From the filter: the receive that calls it holds the lock (in this thread). */
	if (gil && s->infilter && s->fthread == PyThread_get_thread_ident())
		return 0;
	PyThread_type_lock l = s->klock;
	if (PyThread_acquire_lock(l, NOWAIT_LOCK))
		return 1;
	if (gil) {
		Py_BEGIN_ALLOW_THREADS
			PyThread_acquire_lock(l, WAIT_LOCK);
		Py_END_ALLOW_THREADS
	} else {
		PyThread_acquire_lock(l, WAIT_LOCK);
	}
	return 1;
}

void pysb_sink_unlock(pysb_sub *s, int locked)
{
	if (locked)
		PyThread_release_lock(s->klock);
}

/* ---- topic names ------------------------------------------------------------------------ */

PyObject *pysb_sink_topic(pysb_sub *s, const char *name)
{
	if (!name)
		name = "";
	struct pysb_tname *t = s->tnames;
	for (unsigned i = 0; i < TNAMES; i++)
		if (t[i].str && !strcmp(t[i].name, name))
			return Py_NewRef(t[i].str);
	PyObject *str = PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "replace");
	if (!str)
		return NULL;
	unsigned i = s->tnext++ % TNAMES;
	Py_XSETREF(t[i].str, Py_NewRef(str));
	snprintf(t[i].name, sizeof(t[i].name), "%s", name);
	return str;
}

/* ---- the filter ------------------------------------------------------------------------- */

/* Keep the exception set as the filter's (the receive raises it). */
static void keep_filter_error(pysb_sub *s)
{
	if (!PyErr_Occurred())
		PyErr_SetString(PyExc_RuntimeError, "the sink's filter failed");
	PyObject *t, *v, *tb;
	PyErr_Fetch(&t, &v, &tb);
	PyErr_NormalizeException(&t, &v, &tb);
	if (v && tb)
		PyException_SetTraceback(v, tb);
	Py_XDECREF(t);
	Py_XDECREF(tb);
	Py_XSETREF(s->ferr, v);
	s->fpending = 1;
}

/* Call the filter: 1 keep, 0 reject; with an exception, the message is kept (so that the
 * library's receive returns it at once) and fpending says it is not to be returned. */
static int filter_call(pysb_sub *s, const char *topic, uint32_t type, const void *data,
		       uint32_t len)
{
	PyObject *fn = s->filter;
	if (!fn || s->fpending)
		return 1;
	Py_INCREF(fn);
	int ok = -1;
	PyObject *name = pysb_sink_topic(s, topic);
	PyObject *ty = name ? PyLong_FromUnsignedLong(type) : NULL;
	pysb_payload *p = ty ? PyObject_New(pysb_payload, &payload_type) : NULL;
	PyObject *view = NULL;
	if (p) {
		p->data = data;
		p->len = len;
		p->exports = 0;
		p->valid = 1;
		view = PyMemoryView_FromObject((PyObject *)p);
	}
	if (view) {
		PyObject *args[3] = { name, ty, view };
		int was = s->infilter;
		unsigned long by = s->fthread;
		s->infilter = 1;
		s->fthread = PyThread_get_thread_ident();
		PyObject *r = PyObject_Vectorcall(fn, args, 3, NULL);
		s->infilter = was;
		s->fthread = by;
		if (r) {
			ok = PyObject_IsTrue(r);
			Py_DECREF(r);
		}
	}
	if (ok < 0)
		keep_filter_error(s);
	/* The payload is the ring's: nothing may see it after the call. */
	if (view && pysb_view_drop(&view) < 0)
		Py_CLEAR(view);
	if (p) {
		p->valid = 0;
		if (p->exports > 0 && ok >= 0) {
			PyErr_SetString(
				PyExc_BufferError,
				"the sink's filter kept a buffer of the payload (a slice of "
				"data, a numpy array...) beyond its call: copy it instead "
				"(bytes(data))");
			keep_filter_error(s);
			ok = -1;
		}
		Py_DECREF(p);
	}
	Py_XDECREF(ty);
	Py_XDECREF(name);
	Py_DECREF(fn);
	return ok < 0 ? 1 : ok;
}

/* The library's filter: any thread, with or without the GIL. */
static int sink_filter(void *arg, const char *topic, uint32_t type, const void *data, uint32_t len)
{
	PyGILState_STATE g = PyGILState_Ensure();
	int keep = filter_call(arg, topic, type, data, len);
	PyGILState_Release(g);
	return keep;
}

PyObject *pysb_sink_filter_exc(pysb_sub *s)
{
	PyObject *e = s->ferr;
	s->ferr = NULL;
	return e;
}

/* ---- receiving ---------------------------------------------------------------------------- */

int pysb_sink_take(pysb_sub *s, shmbus_msg_t *msg, int timeout_ms, int gil)
{
	int locked = pysb_sink_lock(s, gil);
	s->fpending = 0;
	int rc = shmbus_sink_recv(s->sink, msg, timeout_ms);
	int failed = s->fpending;
	s->fpending = 0;
	if (failed) {
		/* The filter raised on msg: consumed as rejected, but handed back to the group
		 * by an acknowledging sink. */
		if (rc == 0) {
			if (s->acking)
				shmbus_sink_nack(s->sink, msg, 0);
			shmbus_sink_release(s->sink, msg);
		}
		rc = PYSB_RC_FILTER;
	} else if (rc == 0) {
		rc = 1;
	}
	pysb_sink_unlock(s, locked);
	return rc;
}

/* ---- opening and closing ------------------------------------------------------------------ */

void pysb_sink_free(pysb_sub *s)
{
	if (s->tnames) {
		for (unsigned i = 0; i < TNAMES; i++)
			Py_CLEAR(s->tnames[i].str);
		PyMem_Free(s->tnames);
		s->tnames = NULL;
	}
	if (s->klock) {
		PyThread_free_lock(s->klock);
		s->klock = NULL;
	}
	Py_CLEAR(s->filter);
	Py_CLEAR(s->ferr);
}

/* The patterns argument as a list of str: one str, or an iterable of them. */
static PyObject *pattern_list(PyObject *patterns)
{
	if (PyUnicode_Check(patterns)) {
		const char *p;
		if (pysb_name_arg(patterns, "a pattern", &p) < 0)
			return NULL;
		PyObject *list = PyList_New(1);
		if (list)
			PyList_SET_ITEM(list, 0, Py_NewRef(patterns));
		return list;
	}
	if (PyBytes_Check(patterns) || PyByteArray_Check(patterns)) {
		PyErr_Format(PyExc_TypeError,
			     "patterns must be a str or an iterable of str, not %.100s",
			     Py_TYPE(patterns)->tp_name);
		return NULL;
	}
	PyObject *list = PySequence_List(patterns);
	if (!list) {
		if (PyErr_ExceptionMatches(PyExc_TypeError)) {
			PyErr_Clear();
			PyErr_Format(PyExc_TypeError,
				     "patterns must be a str or an iterable of str, not %.100s",
				     Py_TYPE(patterns)->tp_name);
		}
		return NULL;
	}
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
		const char *p;
		if (pysb_name_arg(PyList_GET_ITEM(list, i), "a pattern", &p) < 0) {
			Py_DECREF(list);
			return NULL;
		}
	}
	return list;
}

/* shmbus_sink_add() of pattern p: how many topics it reads now, or -1 (exception set). */
static int add_one(pysb_sub *s, const char *p)
{
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	int rc = shmbus_sink_add(s->sink, p);
	if (rc < 0) {
		pysb_raise_slow(rc, &snap, "sink: cannot add '%s'", p);
		return -1;
	}
	return rc;
}

PyObject *pysb_sink_open(pysb_bus *bus, PyObject *patterns, PyObject *group, PyObject *filter,
			 int flags, const shmbus_group_opts_t *gopts)
{
	if (filter != Py_None && !PyCallable_Check(filter))
		return PyErr_Format(PyExc_TypeError, "filter must be callable or None, not %.100s",
				    Py_TYPE(filter)->tp_name);
	const char *gname = NULL;
	if (group != Py_None && pysb_name_arg(group, "group", &gname) < 0)
		return NULL;
	PyObject *list = pattern_list(patterns);
	if (!list)
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	shmbus_sink_t *k;
	int rc = shmbus_sink_open_group(&k, bus->bus, gname, flags, gname ? gopts : NULL);
	if (rc < 0) {
		Py_DECREF(list);
		return pysb_raise_slow(rc, &snap, "cannot open a sink");
	}
	pysb_sub *s = (pysb_sub *)pysb_SinkType.tp_alloc(&pysb_SinkType, 0);
	if (!s) {
		shmbus_sink_close(k);
		Py_DECREF(list);
		return NULL;
	}
	s->sink = k;
	s->is_sink = 1;
	s->bus = (pysb_bus *)Py_NewRef(bus);
	s->group = Py_NewRef(group);
	s->acking = (flags & SHMBUS_SUB_ACK) != 0;
	s->adeadline = -1;
	s->hold = &s->hold1;
	s->bmsgs = &s->bmsg1;
	s->hcap = 1;
	s->batch_max = 1;
	pysb_bus_hold(bus);
	s->topic = PyUnicode_FromString("sink");
	s->klock = PyThread_allocate_lock();
	s->tnames = PyMem_Calloc(TNAMES, sizeof(*s->tnames));
	if (!s->topic || !s->klock || !s->tnames) {
		if (!PyErr_Occurred())
			PyErr_NoMemory();
		goto fail;
	}
	if (filter != Py_None) {
		s->filter = Py_NewRef(filter);
		shmbus_sink_set_filter(k, sink_filter, s);
	}
	for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++)
		if (add_one(s, PyUnicode_AsUTF8(PyList_GET_ITEM(list, i))) < 0)
			goto fail;
	Py_DECREF(list);
	return (PyObject *)s;
fail:
	Py_DECREF(list);
	Py_DECREF(s); /* closes the handle */
	return NULL;
}

/* ---- methods ------------------------------------------------------------------------------ */

/* Before a call that may leave topics: the handle usable, no receive running, what the
 * sink holds let go. 0 or -1 (exception set). */
static int config_begin(pysb_sub *s, const char *op)
{
	if (!pysb_sub_usable(s))
		return -1;
	if (s->ahelper) {
		pysb_busy("Sink");
		return -1;
	}
	if (s->astash) {
		PyErr_Format(PyExc_RuntimeError,
			     "messages of a cancelled receive are waiting on this sink: receive "
			     "them before %s()",
			     op);
		return -1;
	}
	return pysb_sub_let_go(s);
}

static PyObject *sink_add(pysb_sub *s, PyObject *arg)
{
	const char *p;
	if (pysb_name_arg(arg, "pattern", &p) < 0 || config_begin(s, "add") < 0)
		return NULL;
	int rc = add_one(s, p);
	return rc < 0 ? NULL : PyLong_FromLong(rc);
}

static PyObject *sink_remove(pysb_sub *s, PyObject *arg)
{
	const char *p;
	if (pysb_name_arg(arg, "pattern", &p) < 0 || config_begin(s, "remove") < 0)
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	int rc = shmbus_sink_remove(s->sink, p);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "sink: cannot remove '%s'", p);
	Py_RETURN_NONE;
}

static PyObject *sink_topics(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	if (!pysb_sub_usable(s))
		return NULL;
	if (s->ahelper)
		return pysb_busy("Sink");
	unsigned room = 16;
	char(*names)[SHMBUS_TOPIC_NAME_MAX + 1] = NULL;
	int n;
	for (;;) {
		void *nn = PyMem_Realloc(names, room * sizeof(*names));
		if (!nn) {
			PyMem_Free(names);
			return PyErr_NoMemory();
		}
		names = nn;
		n = shmbus_sink_topics(s->sink, names, room);
		if (n < 0 || (unsigned)n <= room)
			break;
		room = (unsigned)n + 16;
	}
	PyObject *list = PyList_New(n < 0 ? 0 : n);
	for (int i = 0; list && i < n; i++) {
		PyObject *t =
			PyUnicode_DecodeUTF8(names[i], (Py_ssize_t)strlen(names[i]), "replace");
		if (!t)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, i, t);
	}
	PyMem_Free(names);
	return list;
}

static PyObject *sink_ack_impl(pysb_sub *s, PyObject *msg, const char *op, int nack, uint32_t delay)
{
	if (!PyObject_TypeCheck(msg, &pysb_MsgType))
		return PyErr_Format(PyExc_TypeError, "%s() takes a shmbus.Message, not %.100s", op,
				    Py_TYPE(msg)->tp_name);
	pysb_msg *m = (pysb_msg *)msg;
	if (m->sub != s)
		return PyErr_Format(PyExc_ValueError,
				    "%s(): the message did not come from this sink", op);
	if (s->closed || !s->sink)
		return pysb_closed("Sink");
	if (!s->acking)
		return pysb_raise(-EINVAL,
				  "%s on a sink that does not acknowledge (open it with group=..., "
				  "ack=True)",
				  op);
	shmbus_msg_t c;
	pysb_msg_as_c(m, &c);
	int locked = pysb_sink_lock(s, 1);
	/* (closed by another thread while this one waited) */
	int rc = s->closed || !s->sink ? -EBADF :
		 nack		       ? shmbus_sink_nack(s->sink, &c, delay) :
					 shmbus_sink_ack(s->sink, &c);
	pysb_sink_unlock(s, locked);
	if (rc == -EBADF)
		return pysb_closed("Sink");
	return pysb_ack_result(m->topic, op, &c, rc);
}

static PyObject *sink_ack(pysb_sub *s, PyObject *msg)
{
	return sink_ack_impl(s, msg, "ack", 0, 0);
}

static PyObject *sink_nack(pysb_sub *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "msg", "delay_ms", NULL };
	PyObject *msg, *delay_o = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:nack", kwlist, &msg, &delay_o))
		return NULL;
	uint64_t delay = 0;
	if (delay_o && pysb_uint_arg(delay_o, "delay_ms", UINT32_MAX, &delay) < 0)
		return NULL;
	return sink_ack_impl(s, msg, "nack", 1, (uint32_t)delay);
}

static PyObject *sink_aiter(PyObject *s)
{
	return Py_NewRef(s);
}

static PyObject *sink_repr(pysb_sub *s)
{
	if (s->group != Py_None)
		return PyUnicode_FromFormat("<shmbus.Sink group=%R%s%s>", s->group,
					    s->acking ? " ack" : "", s->closed ? " closed" : "");
	return PyUnicode_FromFormat("<shmbus.Sink%s>", s->closed ? " closed" : "");
}

static PyObject *sink_get_group(pysb_sub *s, void *c)
{
	(void)c;
	return Py_NewRef(s->group);
}

static PyObject *sink_get_closed(pysb_sub *s, void *c)
{
	(void)c;
	return PyBool_FromLong(s->closed);
}

static PyObject *sink_get_lost(pysb_sub *s, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(s->lost);
}

static PyObject *sink_get_received(pysb_sub *s, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(s->received);
}

static PyObject *sink_get_filter(pysb_sub *s, void *c)
{
	(void)c;
	return Py_NewRef(s->filter ? s->filter : Py_None);
}

static PyMethodDef sink_methods[] = {
	{ "recv", (PyCFunction)(void (*)(void))pysb_sub_recv, METH_FASTCALL | METH_KEYWORDS,
	  "recv($self, /, timeout=None)\n--\n\n"
	  "Receive the next message of any topic the sink reads (msg.topic names it), waiting "
	  "up to timeout seconds (None: forever; 0: only look), then raise Timeout. Fair: a "
	  "topic gives at most 16 messages in a row while another has some. The previous "
	  "message's data is released first (BufferError, consuming nothing, if a buffer of it "
	  "is still alive). Raises what the filter raised, if it did (see Bus.sink())." },
	{ "recv_async", (PyCFunction)(void (*)(void))pysb_sub_recv_async_m,
	  METH_VARARGS | METH_KEYWORDS,
	  "recv_async($self, /, timeout=None)\n--\n\n"
	  "recv() for asyncio: a Future of the next message. A message already there completes "
	  "it at once; otherwise the event loop waits on the sink's fileno() (no thread). "
	  "Cancelling it loses nothing." },
	{ "fileno", (PyCFunction)pysb_sub_fileno, METH_NOARGS,
	  "fileno($self, /)\n--\n\n"
	  "A file descriptor that becomes readable when recv() would return a message (or the "
	  "topics the sink reads changed), for select, poll, selectors or loop.add_reader(). "
	  "Edge-triggered like a socket: once it is readable, receive with timeout=0 until "
	  "Timeout; that receive arms it again. It may be readable with nothing to receive. "
	  "Owned by the sink (do not close it); the same on every call. The first call looks "
	  "at the bus, and so lets go of the message last received, as a receive does. "
	  "recv_async() and `async for` register it with the loop themselves: do not "
	  "add_reader() it too while using them. Raises Unsupported (an "
	  "io.UnsupportedOperation) where the kernel cannot (Linux before 6.7, io_uring "
	  "disabled)." },
	{ "add", (PyCFunction)sink_add, METH_O,
	  "add($self, pattern, /)\n--\n\n"
	  "Read a topic, or every topic a pattern matches ('orders.*': one token, 'orders.>': "
	  "one or more), now and from now on: a matching topic created later is joined "
	  "(within 10 ms, read from its first message), one removed is left. Returns how many "
	  "topics the sink reads now because of it (0: none exists yet). Raises Exists if it "
	  "was added already, Error (EINVAL) for a bad pattern; an error opening one of its "
	  "topics (AccessDenied...) is raised too, but the pattern stays added and its other "
	  "topics are read. Lets go of the message last received, as a receive does." },
	{ "remove", (PyCFunction)sink_remove, METH_O,
	  "remove($self, pattern, /)\n--\n\n"
	  "Stop reading what pattern (as it was added) names: topics no pattern left matches "
	  "are left at once. Raises NotFound if it was not added. Lets go of the message last "
	  "received, as a receive does." },
	{ "topics", (PyCFunction)sink_topics, METH_NOARGS,
	  "topics($self, /)\n--\n\n"
	  "The names of the topics the sink reads now, sorted (topics created or removed are "
	  "joined or left by the sink's receives, and by add(), remove() and its fd)." },
	{ "ack", (PyCFunction)sink_ack, METH_O,
	  "ack($self, msg, /)\n--\n\n"
	  "An acknowledging sink (bus.sink(..., group=..., ack=True)) is done with msg, a "
	  "message it returned: never delivered again. Raises Stale if it is not pending for "
	  "this sink any more (its ack wait passed, another member has it, acked already, "
	  "its topic left); Error (EINVAL) if the sink does not acknowledge. May be called "
	  "while another thread receives (it waits for that receive's current slice, at most "
	  "50 ms) and from the filter." },
	{ "nack", (PyCFunction)(void (*)(void))sink_nack, METH_VARARGS | METH_KEYWORDS,
	  "nack($self, /, msg, delay_ms=0)\n--\n\n"
	  "Hand msg back for redelivery, to any member of the group, not before delay_ms "
	  "milliseconds; after the group's max_deliver deliveries it goes to the dead-letter "
	  "topic. Raises as ack()." },
	{ "close", (PyCFunction)pysb_sub_close, METH_NOARGS,
	  "close($self, /)\n--\n\nClose the sink and its readers of every topic; ends iteration over it. "
	  "Closing again does nothing. An acknowledging sink's messages not acked yet are "
	  "handed back for redelivery at once." },
	{ "__enter__", (PyCFunction)pysb_sub_enter, METH_NOARGS, "Return the sink." },
	{ "__exit__", (PyCFunction)pysb_sub_exit, METH_VARARGS, "Close the sink." },
	{ "_async_deliver", (PyCFunction)pysb_sub_async_deliver, METH_NOARGS,
	  "Internal: completes a recv_async() future on its event loop." },
	{ "_async_ready", (PyCFunction)pysb_sub_async_ready, METH_NOARGS,
	  "Internal: the event loop saw the fd readable." },
	{ "_async_timeout", (PyCFunction)pysb_sub_async_timeout, METH_NOARGS,
	  "Internal: a recv_async() future's timeout." },
	{ "_async_done", (PyCFunction)pysb_sub_async_done, METH_O,
	  "Internal: a recv_async() future is done." },
	{ "_async_detach", (PyCFunction)pysb_sub_async_detach, METH_NOARGS,
	  "Internal: takes the fd off the event loop." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef sink_getset[] = {
	{ "group", (getter)sink_get_group, NULL, "The group's name, or None (fan-out).", NULL },
	{ "closed", (getter)sink_get_closed, NULL, "True once close() was called.", NULL },
	{ "lost", (getter)sink_get_lost, NULL,
	  "Messages the sink lost so far (overwrite topics), over all its topics.", NULL },
	{ "received", (getter)sink_get_received, NULL,
	  "Messages received so far (those the filter rejected not counted).", NULL },
	{ "filter", (getter)sink_get_filter, NULL, "The filter, or None.", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyAsyncMethods sink_as_async = {
	.am_aiter = sink_aiter,
	.am_anext = (unaryfunc)pysb_sub_anext,
};

PyTypeObject pysb_SinkType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmbus.Sink",
	.tp_basicsize = sizeof(pysb_sub),
	.tp_dealloc = (destructor)pysb_sub_dealloc,
	.tp_repr = (reprfunc)sink_repr,
	.tp_as_async = &sink_as_async,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "One reader over many topics (Bus.sink()): by name or pattern, joined as they "
		  "are created and left as they are removed, fan-out or as one member of a group "
		  "on each. Iterable (`for msg in sink`, until closed) and async-iterable (`async "
		  "for msg in sink`, waiting on its fd: no thread). Not thread-safe (ack() and "
		  "nack() excepted): use one per thread. A context manager.",
	.tp_traverse = (traverseproc)pysb_sub_traverse,
	.tp_clear = (inquiry)pysb_sub_clear,
	.tp_weaklistoffset = offsetof(pysb_sub, weakrefs),
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = (iternextfunc)pysb_sub_iternext,
	.tp_methods = sink_methods,
	.tp_getset = sink_getset,
};

int pysb_sink_init(void)
{
	return PyType_Ready(&payload_type);
}
