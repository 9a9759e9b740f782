/* SPDX-License-Identifier: MIT */
/*
 * shmbus.Subscriber and shmbus.Message.
 *
 * recv() first polls with the GIL held (a message that is there costs no GIL round trip),
 * then waits with the GIL released in slices of PYSB_SLICE_MS, checking for signals
 * between them, so Ctrl-C ends a blocking recv within a slice (at once, in fact, when the
 * signal interrupts the futex sleep in the main thread).
 *
 * A Message's payload stays in the ring (block policy) or in the subscriber's copy buffer
 * (overwrite), and is valid until the subscriber's next recv or close. The Message is the
 * buffer exporter of that memory; every buffer taken from it is counted in the
 * subscriber's `exports`. Before the library may let go of the memory, pysb_sub_let_go()
 * releases the memoryview handed out as .data (any later use raises ValueError) and checks
 * that no other buffer is alive; if one is (a slice of .data kept across recv, a numpy
 * array made with asarray), recv raises BufferError and nothing is consumed. A Message
 * whose generation is past refuses new buffers, so .data of an old message raises too.
 */
#include <errno.h>
#include <string.h>

#include "bindings/python/pyshmbus.h"

static shmbus_sub_t *sub_handle(pysb_sub *s)
{
	if (s->closed || !s->sub) {
		pysb_closed("Subscriber");
		return NULL;
	}
	if (s->busy) {
		pysb_busy("Subscriber");
		return NULL;
	}
	return s->sub;
}

void pysb_sub_maybe_finish(pysb_sub *s)
{
	if (!s->closed || !s->sub || s->busy || s->ahelper || s->exports > 0)
		return;
	shmbus_sub_t *h = s->sub;
	s->sub = NULL;
	s->held = 0;
	shmbus_sub_close(h);
	pysb_bus_unhold(s->bus);
}

PyObject *pysb_sub_open(pysb_bus *bus, PyObject *topic, PyObject *group, int flags)
{
	const char *name = PyUnicode_AsUTF8(topic);
	const char *gname = NULL;
	if (!name)
		return NULL;
	if (group != Py_None && !(gname = PyUnicode_AsUTF8(group)))
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	shmbus_topic_opts_t o;
	int rc = shmbus_topic_info(bus->bus, name, &o);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "cannot subscribe to topic '%s'", name);
	pysb_errsnap_take(&snap);
	shmbus_sub_t *h;
	rc = shmbus_sub_open(&h, bus->bus, name, gname, flags);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "cannot subscribe to topic '%s'", name);
	/* tp_alloc zeroes the object and tracks it for the GC. */
	pysb_sub *s = (pysb_sub *)pysb_SubType.tp_alloc(&pysb_SubType, 0);
	if (!s) {
		shmbus_sub_close(h);
		return NULL;
	}
	s->sub = h;
	s->bus = (pysb_bus *)Py_NewRef(bus);
	s->topic = Py_NewRef(topic);
	s->group = Py_NewRef(group);
	s->max_message = o.max_message;
	s->policy = o.policy;
	s->adeadline = -1;
	s->spin_us = 20;
	/* On an overwrite topic recv copies the payload out of the ring: with large messages
	 * that copy should not hold the GIL, so even the first poll runs without it. */
	s->nogil_poll = o.policy == SHMBUS_OVERWRITE && o.max_message >= PYSB_NOGIL_COPY;
	pysb_bus_hold(bus);
	return (PyObject *)s;
}

int pysb_sub_let_go(pysb_sub *s)
{
	if (!s->held)
		return 0;
	if (pysb_view_drop(&s->view) < 0) {
		PyErr_Format(PyExc_BufferError,
			     "message seq %llu: its .data memoryview is exported (something holds "
			     "a buffer of it): release that, or copy with .bytes(), before the "
			     "next recv",
			     (unsigned long long)s->msg.seq);
		return -1;
	}
	if (s->exports > 0) {
		PyErr_Format(PyExc_BufferError,
			     "message seq %llu: %zd buffer%s of its data %s still alive (a slice "
			     "or memoryview of msg.data, a numpy array, ...): release %s, or copy "
			     "with .bytes(), before the next recv",
			     (unsigned long long)s->msg.seq, s->exports, s->exports == 1 ? "" : "s",
			     s->exports == 1 ? "is" : "are", s->exports == 1 ? "it" : "them");
		return -1;
	}
	s->held = 0;
	s->gen++;
	return 0;
}

/* The C handle just returned m: it is held until let go, and counted. */
static void sub_hold(pysb_sub *s, const shmbus_msg_t *m)
{
	s->msg = *m;
	s->held = 1;
	s->received++;
	s->lost += m->lost;
}

PyObject *pysb_sub_wrap(pysb_sub *s, const shmbus_msg_t *m)
{
	sub_hold(s, m);
	pysb_msg *o = PyObject_GC_New(pysb_msg, &pysb_MsgType);
	if (!o)
		return NULL;
	o->sub = (pysb_sub *)Py_NewRef(s);
	o->gen = s->gen;
	o->data = m->data;
	o->len = m->len;
	o->type = m->type;
	o->seq = m->seq;
	o->timestamp = m->timestamp_ns;
	o->lost = m->lost;
	PyObject_GC_Track(o);
	return (PyObject *)o;
}

/* ---- recv ------------------------------------------------------------------------------- */

int pysb_sub_poll(pysb_sub *s, shmbus_msg_t *m)
{
	if (!s->nogil_poll)
		return shmbus_recv(s->sub, m, 0);
	shmbus_sub_t *h = s->sub;
	int rc;
	s->busy = 1;
	Py_BEGIN_ALLOW_THREADS
		rc = shmbus_recv(h, m, 0);
	Py_END_ALLOW_THREADS
	s->busy = 0;
	return rc;
}

/* Wait for a message, GIL released, in slices; signals are checked between them. */
static int recv_wait(pysb_sub *s, shmbus_msg_t *m, int64_t timeout_ms)
{
	int64_t deadline = pysb_deadline(timeout_ms);
	shmbus_sub_t *h = s->sub;
	int rc;
	s->busy = 1;
	for (;;) {
		int slice = pysb_slice_ms(deadline);
		Py_BEGIN_ALLOW_THREADS
			rc = shmbus_recv(h, m, slice);
		Py_END_ALLOW_THREADS
		if (rc != -EAGAIN && rc != -EINTR)
			break;
		rc = pysb_between_slices(s->closed, "Subscriber", deadline);
		if (rc)
			break;
	}
	s->busy = 0;
	if (rc == 0 && s->closed) {
		/* closed by another thread meanwhile: the message goes with the handle */
		rc = PYSB_RC_PYERR;
		pysb_closed("Subscriber");
	}
	return rc;
}

static PyObject *recv_error(pysb_sub *s, int rc, int64_t timeout_ms)
{
	if (rc == PYSB_RC_PYERR)
		return NULL;
	if (rc == -EAGAIN)
		return pysb_raise(rc, "recv on '%U': no message within %lld ms", s->topic,
				  (long long)timeout_ms);
	if (rc == -EBADMSG)
		return pysb_raise(rc,
				  "recv on '%U': the ring holds a record that fails "
				  "validation (the topic is corrupt)",
				  s->topic);
	return pysb_raise(rc, "recv on '%U'", s->topic);
}

/* recv(timeout) and __next__ (iter: closed ends the iteration instead of raising). */
static PyObject *recv_impl(pysb_sub *s, int64_t timeout_ms, int iter)
{
	if (iter && (s->closed || !s->sub))
		return NULL; /* StopIteration */
	if (!sub_handle(s))
		return NULL;
	if (s->afut || s->aresult || s->astash || s->ahelper) {
		PyObject *got = NULL;
		if (pysb_sub_async_settle(s, &got) < 0)
			return NULL;
		if (got)
			return got;
		if (!sub_handle(s))
			return NULL;
	}
	if (pysb_sub_let_go(s) < 0)
		return NULL;
	shmbus_msg_t m;
	int rc = pysb_sub_poll(s, &m);
	if (rc == -EAGAIN && timeout_ms != 0)
		rc = recv_wait(s, &m, timeout_ms);
	if (rc < 0) {
		pysb_sub_maybe_finish(s);
		return recv_error(s, rc, timeout_ms);
	}
	return pysb_sub_wrap(s, &m);
}

static PyObject *sub_recv(pysb_sub *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	PyObject *timeout = NULL;
	if (nargs > 1 || (kwnames && PyTuple_GET_SIZE(kwnames) + nargs > 1)) {
		PyErr_SetString(PyExc_TypeError, "recv() takes at most one argument (timeout)");
		return NULL;
	}
	if (nargs == 1) {
		timeout = args[0];
	} else if (kwnames && PyTuple_GET_SIZE(kwnames) == 1) {
		if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "timeout")) {
			PyErr_Format(PyExc_TypeError,
				     "recv() got an unexpected keyword argument %R",
				     PyTuple_GET_ITEM(kwnames, 0));
			return NULL;
		}
		timeout = args[0];
	}
	int64_t ms = -1;
	if (timeout && pysb_timeout_ms(timeout, &ms) < 0)
		return NULL;
	return recv_impl(s, ms, 0);
}

static PyObject *sub_iternext(pysb_sub *s)
{
	return recv_impl(s, -1, 1);
}

static PyObject *sub_recv_many(pysb_sub *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "max_messages", "timeout", NULL };
	Py_ssize_t max;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "n|O:recv_many", kwlist, &max, &timeout))
		return NULL;
	int64_t ms;
	if (pysb_timeout_ms(timeout, &ms) < 0)
		return NULL;
	if (max < 1) {
		PyErr_SetString(PyExc_ValueError, "max_messages must be >= 1");
		return NULL;
	}
	/* The first as recv() does (waiting up to the timeout), the rest only if there. */
	PyObject *first = recv_impl(s, ms, 0);
	if (!first)
		return NULL;
	PyObject *list = PyList_New(0);
	pysb_msg *m = (pysb_msg *)first;
	PyObject *b = list ? PyBytes_FromStringAndSize(m->data, m->len) : NULL;
	Py_DECREF(first);
	if (!b || PyList_Append(list, b) < 0) {
		Py_XDECREF(b);
		Py_XDECREF(list);
		return NULL;
	}
	Py_DECREF(b);
	while (PyList_GET_SIZE(list) < max) {
		if (pysb_sub_let_go(s) < 0)
			break;
		shmbus_msg_t mm;
		int rc = pysb_sub_poll(s, &mm);
		if (rc < 0)
			break; /* nothing more now (or an error, which the next recv reports) */
		sub_hold(s, &mm);
		b = PyBytes_FromStringAndSize(mm.data, mm.len);
		if (!b || PyList_Append(list, b) < 0) {
			Py_XDECREF(b);
			Py_DECREF(list);
			return NULL;
		}
		Py_DECREF(b);
	}
	if (PyErr_Occurred()) {
		Py_DECREF(list);
		return NULL;
	}
	return list;
}

/* ---- close ------------------------------------------------------------------------------ */

static PyObject *sub_close(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	if (s->closed)
		Py_RETURN_NONE;
	s->closed = 1;
	pysb_sub_async_close(s);
	/* Another thread (a recv without the GIL, the asyncio helper) leaves the handle
	 * within a slice: wait, so that the reader slot is free when close() returns. */
	while (s->busy || s->ahelper)
		pysb_nap();
	if (pysb_view_drop(&s->view) < 0)
		Py_CLEAR(s->view); /* exported: the C close waits for its release */
	/* Old messages refuse new buffers from now on. */
	s->gen++;
	pysb_sub_maybe_finish(s);
	Py_RETURN_NONE;
}

static PyObject *sub_enter(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	if (s->closed)
		return pysb_closed("Subscriber");
	return Py_NewRef(s);
}

static PyObject *sub_exit(pysb_sub *s, PyObject *args)
{
	(void)args;
	return sub_close(s, NULL);
}

static int sub_traverse(pysb_sub *s, visitproc visit, void *arg)
{
	Py_VISIT(s->view);
	return pysb_sub_async_traverse(s, visit, arg);
}

static int sub_clear(pysb_sub *s)
{
	/* Breaks subscriber -> memoryview -> its buffer -> message -> subscriber. */
	Py_CLEAR(s->view);
	pysb_sub_async_clear(s);
	return 0;
}

static void sub_dealloc(pysb_sub *s)
{
	PyObject_GC_UnTrack(s);
	if (s->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)s);
	s->closed = 1;
	Py_CLEAR(s->view);
	pysb_sub_async_clear(s);
	/* Every buffer and the helper thread hold references: nothing uses the handle. */
	pysb_sub_maybe_finish(s);
	Py_XDECREF(s->bus);
	Py_XDECREF(s->topic);
	Py_XDECREF(s->group);
	PyObject_GC_Del(s);
}

static PyObject *sub_repr(pysb_sub *s)
{
	if (s->group != Py_None)
		return PyUnicode_FromFormat("<shmbus.Subscriber topic=%R group=%R%s>", s->topic,
					    s->group, s->closed ? " closed" : "");
	return PyUnicode_FromFormat("<shmbus.Subscriber topic=%R%s>", s->topic,
				    s->closed ? " closed" : "");
}

/* ---- asyncio entry points ------------------------------------------------------------- */

static PyObject *sub_recv_async(pysb_sub *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:recv_async", kwlist, &timeout))
		return NULL;
	int64_t ms;
	if (pysb_timeout_ms(timeout, &ms) < 0)
		return NULL;
	return pysb_sub_recv_async(s, ms, 0);
}

static PyObject *sub_aiter(PyObject *s)
{
	return Py_NewRef(s);
}

static PyObject *sub_anext(pysb_sub *s)
{
	return pysb_sub_recv_async(s, -1, 1);
}

/* ---- attributes ------------------------------------------------------------------------ */

static PyObject *sub_get_topic(pysb_sub *s, void *c)
{
	(void)c;
	return Py_NewRef(s->topic);
}

static PyObject *sub_get_group(pysb_sub *s, void *c)
{
	(void)c;
	return Py_NewRef(s->group);
}

static PyObject *sub_get_closed(pysb_sub *s, void *c)
{
	(void)c;
	return PyBool_FromLong(s->closed);
}

static PyObject *sub_get_policy(pysb_sub *s, void *c)
{
	(void)c;
	return PyUnicode_FromString(pysb_policy_name(s->policy));
}

static PyObject *sub_get_max_message(pysb_sub *s, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLong(s->max_message);
}

static PyObject *sub_get_lost(pysb_sub *s, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(s->lost);
}

static PyObject *sub_get_received(pysb_sub *s, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(s->received);
}

static PyObject *sub_get_spin_us(pysb_sub *s, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLong(s->spin_us);
}

static int sub_set_spin_us(pysb_sub *s, PyObject *v, void *c)
{
	(void)c;
	if (!v) {
		PyErr_SetString(PyExc_AttributeError, "spin_us cannot be deleted");
		return -1;
	}
	unsigned long us = PyLong_AsUnsignedLong(v);
	if (us == (unsigned long)-1 && PyErr_Occurred())
		return -1;
	if (us > 1000000) {
		PyErr_SetString(PyExc_ValueError, "spin_us must be at most 1000000 (1 s)");
		return -1;
	}
	if (!sub_handle(s))
		return -1;
	shmbus_sub_set_spin(s->sub, (unsigned)us);
	s->spin_us = (unsigned)us;
	return 0;
}

static PyMethodDef sub_methods[] = {
	{ "recv", (PyCFunction)(void (*)(void))sub_recv, METH_FASTCALL | METH_KEYWORDS,
	  "recv($self, /, timeout=None)\n--\n\n"
	  "Receive the next message, waiting up to timeout seconds (None: forever; 0: only "
	  "look), then raise Timeout. The previous message's data is released first: its .data "
	  "memoryview raises ValueError from now on. Raises BufferError, consuming nothing, if "
	  "a buffer of the previous message's data is still alive." },
	{ "recv_many", (PyCFunction)(void (*)(void))sub_recv_many, METH_VARARGS | METH_KEYWORDS,
	  "recv_many($self, /, max_messages, timeout=None)\n--\n\n"
	  "Receive up to max_messages payloads as a list of bytes (copies): the first waiting "
	  "as recv() does, the others only if already there. Types and sequence numbers are "
	  "not returned; losses add up in .lost." },
	{ "recv_async", (PyCFunction)(void (*)(void))sub_recv_async, METH_VARARGS | METH_KEYWORDS,
	  "recv_async($self, /, timeout=None)\n--\n\n"
	  "recv() for asyncio: returns a Future for the next message. A message already there "
	  "completes it at once; otherwise the subscriber's helper thread waits (the GIL "
	  "released) and completes it through loop.call_soon_threadsafe(). Cancelling it loses "
	  "nothing: a message that arrives for a cancelled future goes to the next recv." },
	{ "close", (PyCFunction)sub_close, METH_NOARGS,
	  "close($self, /)\n--\n\nClose the subscriber, releasing its reader slot; ends iteration over "
	  "it. Closing again does nothing." },
	{ "__enter__", (PyCFunction)sub_enter, METH_NOARGS, "Return the subscriber." },
	{ "__exit__", (PyCFunction)sub_exit, METH_VARARGS, "Close the subscriber." },
	{ "_async_deliver", (PyCFunction)pysb_sub_async_deliver, METH_NOARGS,
	  "Internal: completes a recv_async() future on its event loop." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef sub_getset[] = {
	{ "topic", (getter)sub_get_topic, NULL, "The topic's name.", NULL },
	{ "group", (getter)sub_get_group, NULL, "The group's name, or None (fan-out).", NULL },
	{ "closed", (getter)sub_get_closed, NULL, "True once close() was called.", NULL },
	{ "policy", (getter)sub_get_policy, NULL, "The topic's policy: 'block' or 'overwrite'.",
	  NULL },
	{ "max_message", (getter)sub_get_max_message, NULL,
	  "The largest payload the topic takes, in bytes.", NULL },
	{ "lost", (getter)sub_get_lost, NULL,
	  "Messages this subscriber lost so far (overwrite topics).", NULL },
	{ "received", (getter)sub_get_received, NULL, "Messages received so far.", NULL },
	{ "spin_us", (getter)sub_get_spin_us, (setter)sub_set_spin_us,
	  "How long a recv spins, in microseconds, before it sleeps on the futex (default 20; "
	  "shmbus_sub_set_spin()). Longer spins cost CPU while idle but spare a wake-up per "
	  "message when messages come a little slower than the spin.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyAsyncMethods sub_as_async = {
	.am_aiter = sub_aiter,
	.am_anext = (unaryfunc)sub_anext,
};

PyTypeObject pysb_SubType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmbus.Subscriber",
	.tp_basicsize = sizeof(pysb_sub),
	.tp_dealloc = (destructor)sub_dealloc,
	.tp_repr = (reprfunc)sub_repr,
	.tp_as_async = &sub_as_async,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A reader of one topic (Bus.subscriber()): a fan-out subscriber or a group "
		  "member. Iterable (`for msg in sub`, until closed) and async-iterable (`async "
		  "for msg in sub`). Not thread-safe: use one per thread. A context manager.",
	.tp_traverse = (traverseproc)sub_traverse,
	.tp_clear = (inquiry)sub_clear,
	.tp_weaklistoffset = offsetof(pysb_sub, weakrefs),
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = (iternextfunc)sub_iternext,
	.tp_methods = sub_methods,
	.tp_getset = sub_getset,
};

/* ---- Message ------------------------------------------------------------------------------ */

static inline int msg_valid(const pysb_msg *m)
{
	const pysb_sub *s = m->sub;
	return s->held && m->gen == s->gen && s->sub && !s->closed;
}

static PyObject *msg_invalid(const pysb_msg *m)
{
	PyErr_Format(PyExc_ValueError,
		     "message seq %llu is gone: its subscriber received another message or was "
		     "closed (keep a copy with .bytes() if you need the data longer)",
		     (unsigned long long)m->seq);
	return NULL;
}

static PyObject *msg_get_data(pysb_msg *m, void *c)
{
	(void)c;
	pysb_sub *s = m->sub;
	if (!msg_valid(m))
		return msg_invalid(m);
	if (!s->view) {
		s->view = PyMemoryView_FromObject((PyObject *)m);
		if (!s->view)
			return NULL;
	}
	return Py_NewRef(s->view);
}

static int msg_getbuffer(pysb_msg *m, Py_buffer *view, int flags)
{
	if (!msg_valid(m)) {
		PyErr_SetString(PyExc_BufferError, "the message is gone (its subscriber received "
						   "another message or was closed)");
		view->obj = NULL;
		return -1;
	}
	if (PyBuffer_FillInfo(view, (PyObject *)m, (void *)m->data, m->len, 1, flags) < 0)
		return -1;
	m->sub->exports++;
	return 0;
}

static void msg_releasebuffer(pysb_msg *m, Py_buffer *view)
{
	(void)view;
	pysb_sub *s = m->sub;
	if (--s->exports == 0 && s->closed)
		pysb_sub_maybe_finish(s);
}

static PyObject *msg_bytes(pysb_msg *m, PyObject *unused)
{
	(void)unused;
	pysb_sub *s = m->sub;
	if (!msg_valid(m))
		return msg_invalid(m);
	if (m->len < PYSB_NOGIL_COPY)
		return PyBytes_FromStringAndSize(m->data, m->len);
	if (s->busy)
		return pysb_busy("Subscriber");
	PyObject *b = PyBytes_FromStringAndSize(NULL, m->len);
	if (!b)
		return NULL;
	char *dst = PyBytes_AS_STRING(b);
	const void *src = m->data;
	size_t len = m->len;
	/* busy keeps another thread's recv or close from releasing the memory meanwhile */
	s->busy = 1;
	Py_BEGIN_ALLOW_THREADS
		memcpy(dst, src, len);
	Py_END_ALLOW_THREADS
	s->busy = 0;
	pysb_sub_maybe_finish(s);
	return b;
}

static PyObject *msg_get_valid(pysb_msg *m, void *c)
{
	(void)c;
	return PyBool_FromLong(msg_valid(m));
}

static PyObject *msg_get_type(pysb_msg *m, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLong(m->type);
}

static PyObject *msg_get_seq(pysb_msg *m, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(m->seq);
}

static PyObject *msg_get_timestamp(pysb_msg *m, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(m->timestamp);
}

static PyObject *msg_get_lost(pysb_msg *m, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(m->lost);
}

static Py_ssize_t msg_len(pysb_msg *m)
{
	return m->len;
}

static PyObject *msg_repr(pysb_msg *m)
{
	return PyUnicode_FromFormat("<shmbus.Message seq=%llu type=%u len=%u lost=%llu%s>",
				    (unsigned long long)m->seq, m->type, m->len,
				    (unsigned long long)m->lost, msg_valid(m) ? "" : " gone");
}

static int msg_traverse(pysb_msg *m, visitproc visit, void *arg)
{
	Py_VISIT(m->sub);
	return 0;
}

static void msg_dealloc(pysb_msg *m)
{
	PyObject_GC_UnTrack(m);
	Py_DECREF(m->sub);
	PyObject_GC_Del(m);
}

static PyMethodDef msg_methods[] = {
	{ "bytes", (PyCFunction)msg_bytes, METH_NOARGS,
	  "bytes($self, /)\n--\n\nA copy of the payload, which outlives the message (copied with the "
	  "GIL released when large)." },
	{ "__bytes__", (PyCFunction)msg_bytes, METH_NOARGS, "A copy of the payload." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef msg_getset[] = {
	{ "data", (getter)msg_get_data, NULL,
	  "The payload: a read-only memoryview into the ring, valid until the subscriber's next "
	  "recv or close, after which using it raises ValueError.",
	  NULL },
	{ "type", (getter)msg_get_type, NULL, "The publisher's 32-bit type word.", NULL },
	{ "seq", (getter)msg_get_seq, NULL, "The topic-wide sequence number (from 0).", NULL },
	{ "timestamp", (getter)msg_get_timestamp, NULL,
	  "CLOCK_REALTIME at publish, in nanoseconds.", NULL },
	{ "lost", (getter)msg_get_lost, NULL,
	  "Messages this reader lost just before this one (overwrite topics).", NULL },
	{ "valid", (getter)msg_get_valid, NULL, "True until the subscriber's next recv or close.",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyBufferProcs msg_as_buffer = {
	.bf_getbuffer = (getbufferproc)msg_getbuffer,
	.bf_releasebuffer = (releasebufferproc)msg_releasebuffer,
};

static PySequenceMethods msg_as_sequence = {
	.sq_length = (lenfunc)msg_len,
};

PyTypeObject pysb_MsgType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmbus.Message",
	.tp_basicsize = sizeof(pysb_msg),
	.tp_dealloc = (destructor)msg_dealloc,
	.tp_repr = (reprfunc)msg_repr,
	.tp_as_sequence = &msg_as_sequence,
	.tp_as_buffer = &msg_as_buffer,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A received message. .data is valid until the subscriber's next recv or "
		  "close; the other attributes stay. len(msg) is the payload size. Also a "
		  "read-only buffer itself (same lifetime as .data).",
	.tp_traverse = (traverseproc)msg_traverse,
	.tp_methods = msg_methods,
	.tp_getset = msg_getset,
};
