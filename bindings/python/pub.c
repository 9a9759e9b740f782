/* SPDX-License-Identifier: MIT */
/*
 * shmbus.Publisher and shmbus.Reservation.
 *
 * publish() takes any C-contiguous bytes-like object and hands its memory straight to
 * shmbus_publish(): no copy in Python. Small messages are published with the GIL held and
 * no wait (one try); only when that finds the ring full (block policy), or the payload is
 * large enough that the copy into the ring is worth running in parallel with other
 * threads, does the call release the GIL, and then it waits in slices of PYSB_SLICE_MS so
 * that Ctrl-C and close() are noticed.
 *
 * reserve() gives a writable memoryview into the ring. The Reservation is the exporter of
 * that memory and counts the buffers alive; commit and abort first release the memoryview
 * we handed out and refuse (BufferError, reservation left open) while any other buffer of
 * it lives, because after a commit or abort that space belongs to readers and, a lap later,
 * to other publishers.
 */
#include <errno.h>
#include <string.h>

#include "bindings/python/pyshmbus.h"

enum { RES_OPEN = 0, RES_COMMITTED = 1, RES_ABORTED = 2 };

/* The handle for a call, or NULL with an exception. */
static shmbus_pub_t *pub_handle(pysb_pub *p)
{
	if (p->closed || !p->pub) {
		pysb_closed("Publisher");
		return NULL;
	}
	if (p->busy) {
		pysb_busy("Publisher");
		return NULL;
	}
	return p->pub;
}

/* Close the C handle if close() was called and nothing uses it any more. The library
 * aborts an open reservation; that is safe only with no buffer of it alive. */
static void pub_maybe_finish(pysb_pub *p)
{
	if (!p->closed || !p->pub || p->busy)
		return;
	if (p->res && p->res->exports > 0)
		return;
	if (p->res) {
		p->res->state = RES_ABORTED;
		p->res = NULL;
	}
	shmbus_pub_t *h = p->pub;
	p->pub = NULL;
	shmbus_pub_close(h);
	pysb_bus_unhold(p->bus);
}

PyObject *pysb_pub_open(pysb_bus *bus, PyObject *topic)
{
	const char *name;
	if (pysb_name_arg(topic, "topic", &name) < 0)
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	shmbus_topic_opts_t o;
	int rc = shmbus_topic_info(bus->bus, name, &o);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "cannot publish to topic '%s'", name);
	pysb_errsnap_take(&snap);
	shmbus_pub_t *h;
	rc = shmbus_pub_open(&h, bus->bus, name);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "cannot publish to topic '%s'", name);
	pysb_pub *p = PyObject_New(pysb_pub, &pysb_PubType);
	if (!p) {
		shmbus_pub_close(h);
		return NULL;
	}
	p->pub = h;
	p->bus = (pysb_bus *)Py_NewRef(bus);
	p->topic = Py_NewRef(topic);
	p->max_message = o.max_message;
	p->policy = o.policy;
	p->closed = 0;
	p->busy = 0;
	p->res = NULL;
	p->weakrefs = NULL;
	pysb_bus_hold(bus);
	return (PyObject *)p;
}

static void pub_dealloc(pysb_pub *p)
{
	if (p->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)p);
	/* An open reservation holds a reference to us, so none is left here. */
	p->closed = 1;
	pub_maybe_finish(p);
	Py_XDECREF(p->bus);
	Py_XDECREF(p->topic);
	PyObject_Free(p);
}

static PyObject *pub_close(pysb_pub *p, PyObject *unused)
{
	(void)unused;
	if (p->closed)
		Py_RETURN_NONE;
	p->closed = 1;
	/* A publish waiting without the GIL in another thread stops within a slice. */
	while (p->busy)
		pysb_nap();
	if (p->res)
		pysb_view_drop(&p->res->view); /* if exported, the close waits for its release */
	pub_maybe_finish(p);
	Py_RETURN_NONE;
}

static PyObject *pub_enter(pysb_pub *p, PyObject *unused)
{
	(void)unused;
	if (p->closed)
		return pysb_closed("Publisher");
	return Py_NewRef(p);
}

static PyObject *pub_exit(pysb_pub *p, PyObject *args)
{
	(void)args;
	return pub_close(p, NULL);
}

static PyObject *pub_repr(pysb_pub *p)
{
	return PyUnicode_FromFormat("<shmbus.Publisher topic=%R%s>", p->topic,
				    p->closed ? " closed" : "");
}

/* ---- argument parsing ------------------------------------------------------------------ */

/*
 * Arguments of a METH_FASTCALL | METH_KEYWORDS call by position or by name into out[],
 * which holds the defaults. The first `required` must be given. 0 or -1.
 */
static int fast_args(const char *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
		     const char *const *names, int n, int required, PyObject **out)
{
	if (nargs > n) {
		PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)", fn, n,
			     nargs);
		return -1;
	}
	for (Py_ssize_t i = 0; i < nargs; i++)
		out[i] = args[i];
	int have = (int)nargs;
	Py_ssize_t nk = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
	for (Py_ssize_t k = 0; k < nk; k++) {
		PyObject *key = PyTuple_GET_ITEM(kwnames, k);
		int i;
		for (i = 0; i < n; i++)
			if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0)
				break;
		if (i == n) {
			PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R",
				     fn, key);
			return -1;
		}
		if (i < nargs) {
			PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
				     fn, names[i]);
			return -1;
		}
		out[i] = args[nargs + k];
		if (i + 1 > have)
			have = i + 1;
	}
	for (int i = 0; i < required; i++)
		if (!out[i]) {
			PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fn,
				     names[i]);
			return -1;
		}
	return 0;
}

static int parse_type(PyObject *o, uint32_t *type)
{
	if (!o) {
		*type = 0;
		return 0;
	}
	uint64_t v;
	if (pysb_uint_arg(o, "type", UINT32_MAX, &v) < 0)
		return -1;
	*type = (uint32_t)v;
	return 0;
}

/* ---- waiting for space ----------------------------------------------------------------- */

/* Publish one message, waiting (GIL released, in slices) up to timeout_ms for space. */
static int pub_put_wait(pysb_pub *p, const void *data, size_t len, uint32_t type,
			int64_t timeout_ms)
{
	int64_t deadline = pysb_deadline(timeout_ms);
	shmbus_pub_t *h = p->pub;
	int rc;
	p->busy = 1;
	for (;;) {
		int slice = pysb_slice_ms(deadline);
		Py_BEGIN_ALLOW_THREADS
			rc = shmbus_publish_timeout(h, data, len, type, slice);
		Py_END_ALLOW_THREADS
		if (rc != -EAGAIN)
			break;
		rc = pysb_between_slices(p->closed, "Publisher", deadline);
		if (rc)
			break;
	}
	p->busy = 0;
	pub_maybe_finish(p);
	return rc;
}

static PyObject *pub_error(pysb_pub *p, int rc, size_t len, int64_t timeout_ms)
{
	switch (rc) {
	case PYSB_RC_PYERR:
		return NULL;
	case -EMSGSIZE:
		return pysb_raise(rc,
				  "publish to '%U': a message of %zu bytes exceeds the topic's "
				  "max_message of %u bytes",
				  p->topic, len, p->max_message);
	case -EAGAIN:
		return pysb_raise(rc, "publish to '%U': no space in the ring within %lld ms",
				  p->topic, (long long)timeout_ms);
	case -EBUSY:
		return pysb_raise(rc, "publish to '%U': this publisher has an open reservation",
				  p->topic);
	default:
		return pysb_raise(rc, "publish to '%U'", p->topic);
	}
}

/* ---- publish ---------------------------------------------------------------------------- */

static PyObject *pub_publish(pysb_pub *p, PyObject *const *args, Py_ssize_t nargs,
			     PyObject *kwnames)
{
	static const char *const names[] = { "data", "type", "timeout" };
	PyObject *a[3] = { NULL, NULL, NULL };
	uint32_t type = 0;
	int64_t timeout_ms = -1;
	if (nargs == 1 && !kwnames) {
		a[0] = args[0]; /* the common call: publish(data) */
	} else if (fast_args("publish", args, nargs, kwnames, names, 3, 1, a) < 0 ||
		   parse_type(a[1], &type) < 0 || pysb_timeout_ms(a[2], &timeout_ms) < 0) {
		return NULL;
	}
	shmbus_pub_t *h = pub_handle(p);
	if (!h)
		return NULL;
	PyObject *data = a[0];
	Py_buffer view;
	const void *buf;
	size_t len;
	int have_view = 0;
	if (PyBytes_CheckExact(data)) {
		/* bytes are immutable and we hold a reference: no buffer request needed */
		buf = PyBytes_AS_STRING(data);
		len = (size_t)PyBytes_GET_SIZE(data);
	} else {
		if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
			return NULL;
		have_view = 1;
		buf = view.buf;
		len = (size_t)view.len;
	}
	int rc = -EAGAIN;
	if (len < PYSB_NOGIL_COPY)
		rc = shmbus_publish_timeout(h, buf, len, type, 0);
	if (rc == -EAGAIN && (timeout_ms != 0 || len >= PYSB_NOGIL_COPY))
		rc = pub_put_wait(p, buf, len, type, timeout_ms);
	if (have_view)
		PyBuffer_Release(&view);
	if (rc < 0)
		return pub_error(p, rc, len, timeout_ms);
	Py_RETURN_NONE;
}

static PyObject *pub_publish_batch(pysb_pub *p, PyObject *const *args, Py_ssize_t nargs,
				   PyObject *kwnames)
{
	static const char *const names[] = { "messages", "type", "timeout" };
	PyObject *a[3] = { NULL, NULL, NULL };
	uint32_t type = 0;
	int64_t timeout_ms = -1;
	if (fast_args("publish_batch", args, nargs, kwnames, names, 3, 1, a) < 0 ||
	    parse_type(a[1], &type) < 0 || pysb_timeout_ms(a[2], &timeout_ms) < 0)
		return NULL;
	shmbus_pub_t *h = pub_handle(p);
	if (!h)
		return NULL;
	PyObject *seq = PySequence_Fast(a[0], "publish_batch() takes a sequence of bytes-like "
					      "objects");
	if (!seq)
		return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if (n == 0) {
		Py_DECREF(seq);
		return PyLong_FromLong(0);
	}
	if (n > INT32_MAX) {
		Py_DECREF(seq);
		PyErr_SetString(PyExc_OverflowError, "too many messages in one batch");
		return NULL;
	}
	PyObject **items = PySequence_Fast_ITEMS(seq);
	Py_buffer *views = PyMem_Malloc((size_t)n * sizeof(*views));
	shmbus_iov_t *iov = PyMem_Malloc((size_t)n * sizeof(*iov));
	Py_ssize_t got = 0;
	size_t total = 0;
	PyObject *ret = NULL;
	if (!views || !iov) {
		PyErr_NoMemory();
		goto out;
	}
	for (; got < n; got++) {
		if (PyObject_GetBuffer(items[got], &views[got], PyBUF_SIMPLE) < 0)
			goto out;
		iov[got].data = views[got].buf;
		iov[got].len = (size_t)views[got].len;
		iov[got].type = type;
		total += iov[got].len;
	}
	/* A first try without waiting, and with the GIL unless there is much to copy; then
	 * the rest in slices with the GIL released. */
	unsigned done = 0;
	int rc = -EAGAIN;
	int64_t deadline = pysb_deadline(timeout_ms);
	if (total < PYSB_NOGIL_COPY) {
		shmbus_pub_set_timeout(h, 0);
		rc = shmbus_publish_batch(h, iov, (unsigned)n);
		if (rc > 0)
			done = (unsigned)rc;
	}
	if (done < (unsigned)n && (rc > 0 || rc == -EAGAIN) &&
	    (timeout_ms != 0 || total >= PYSB_NOGIL_COPY)) {
		p->busy = 1;
		for (;;) {
			shmbus_pub_set_timeout(h, pysb_slice_ms(deadline));
			Py_BEGIN_ALLOW_THREADS
				rc = shmbus_publish_batch(h, iov + done, (unsigned)n - done);
			Py_END_ALLOW_THREADS
			if (rc > 0)
				done += (unsigned)rc;
			if (done == (unsigned)n || (rc < 0 && rc != -EAGAIN))
				break;
			rc = pysb_between_slices(p->closed, "Publisher", deadline);
			if (rc)
				break;
		}
		p->busy = 0;
	}
	if (rc == PYSB_RC_PYERR) {
		/* Ctrl-C or a close while waiting: the exception wins over the count. */
	} else if (done > 0) {
		ret = PyLong_FromUnsignedLong(done); /* all, or those before a timeout */
	} else if (rc == -EMSGSIZE) {
		size_t big = 0;
		for (Py_ssize_t i = 0; i < n; i++)
			if (iov[i].len > big)
				big = iov[i].len;
		pub_error(p, rc, big, timeout_ms);
	} else {
		pub_error(p, rc, 0, timeout_ms);
	}
	pub_maybe_finish(p);
out:
	for (Py_ssize_t i = 0; i < got; i++)
		PyBuffer_Release(&views[i]);
	PyMem_Free(views);
	PyMem_Free(iov);
	Py_DECREF(seq);
	return ret;
}

/* ---- reserve ----------------------------------------------------------------------------- */

static PyObject *pub_reserve(pysb_pub *p, PyObject *const *args, Py_ssize_t nargs,
			     PyObject *kwnames)
{
	static const char *const names[] = { "size", "type", "timeout" };
	PyObject *a[3] = { NULL, NULL, NULL };
	uint32_t type = 0;
	int64_t timeout_ms = -1;
	if (fast_args("reserve", args, nargs, kwnames, names, 3, 1, a) < 0 ||
	    parse_type(a[1], &type) < 0 || pysb_timeout_ms(a[2], &timeout_ms) < 0)
		return NULL;
	/* A negative size stays a ValueError (as it always was); a size beyond what a
	 * buffer can hold is an OverflowError, never wrapped. */
	if (!PyIndex_Check(a[0]))
		return PyErr_Format(PyExc_TypeError, "size must be an int, not %.100s",
				    Py_TYPE(a[0])->tp_name);
	int over = 0;
	PyObject *size_i = PyNumber_Index(a[0]);
	if (!size_i)
		return NULL;
	long long size_ll = PyLong_AsLongLongAndOverflow(size_i, &over);
	Py_DECREF(size_i);
	if (size_ll == -1 && !over && PyErr_Occurred())
		return NULL;
	if (over < 0 || (!over && size_ll < 0))
		return PyErr_Format(PyExc_ValueError, "size must be >= 0");
	if (over > 0 || size_ll > PY_SSIZE_T_MAX)
		return PyErr_Format(PyExc_OverflowError, "size must be at most %zd",
				    PY_SSIZE_T_MAX);
	Py_ssize_t size = (Py_ssize_t)size_ll;
	shmbus_pub_t *h = pub_handle(p);
	if (!h)
		return NULL;
	void *buf = NULL;
	shmbus_pub_set_timeout(h, 0);
	int rc = shmbus_reserve(h, (size_t)size, &buf);
	if (rc == -EAGAIN && timeout_ms != 0) {
		int64_t deadline = pysb_deadline(timeout_ms);
		p->busy = 1;
		for (;;) {
			shmbus_pub_set_timeout(h, pysb_slice_ms(deadline));
			Py_BEGIN_ALLOW_THREADS
				rc = shmbus_reserve(h, (size_t)size, &buf);
			Py_END_ALLOW_THREADS
			if (rc != -EAGAIN)
				break;
			rc = pysb_between_slices(p->closed, "Publisher", deadline);
			if (rc)
				break;
		}
		p->busy = 0;
	}
	if (rc < 0) {
		pub_maybe_finish(p);
		if (rc == -EBUSY)
			return pysb_raise(rc, "reserve on '%U': a reservation is already open",
					  p->topic);
		return pub_error(p, rc, (size_t)size, timeout_ms);
	}
	pysb_res *r = PyObject_GC_New(pysb_res, &pysb_ResType);
	if (!r) {
		shmbus_abort(h);
		return NULL;
	}
	r->pub = (pysb_pub *)Py_NewRef(p);
	r->buf = buf;
	r->len = size;
	r->type = type;
	r->state = RES_OPEN;
	r->exports = 0;
	r->view = NULL;
	p->res = r;
	PyObject_GC_Track(r);
	return (PyObject *)r;
}

/* ---- attributes ------------------------------------------------------------------------ */

static PyObject *pub_get_topic(pysb_pub *p, void *c)
{
	(void)c;
	return Py_NewRef(p->topic);
}

static PyObject *pub_get_closed(pysb_pub *p, void *c)
{
	(void)c;
	return PyBool_FromLong(p->closed);
}

static PyObject *pub_get_policy(pysb_pub *p, void *c)
{
	(void)c;
	return PyUnicode_FromString(pysb_policy_name(p->policy));
}

static PyObject *pub_get_max_message(pysb_pub *p, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLong(p->max_message);
}

static PyMethodDef pub_methods[] = {
	{ "publish", (PyCFunction)(void (*)(void))pub_publish, METH_FASTCALL | METH_KEYWORDS,
	  "publish($self, /, data, type=0, timeout=None)\n--\n\n"
	  "Publish one message: data is any C-contiguous bytes-like object (bytes, bytearray, "
	  "memoryview, array.array, numpy array), copied once, straight into the ring. type is "
	  "a 32-bit user word. On a 'block' topic whose readers are a ring behind, wait up to "
	  "timeout seconds for space (None: as long as it takes; 0: not at all), then raise "
	  "Timeout. Raises TooBig if data exceeds the topic's max_message." },
	{ "publish_batch", (PyCFunction)(void (*)(void))pub_publish_batch,
	  METH_FASTCALL | METH_KEYWORDS,
	  "publish_batch($self, /, messages, type=0, timeout=None)\n--\n\n"
	  "Publish a sequence of bytes-like objects with as few claims on the ring as possible "
	  "(readers never see part of a claim). Returns how many were published: all of them, "
	  "or fewer if the timeout expired after some went out; raises Timeout if none did, "
	  "TooBig (nothing published) if one is too large." },
	{ "reserve", (PyCFunction)(void (*)(void))pub_reserve, METH_FASTCALL | METH_KEYWORDS,
	  "reserve($self, /, size, type=0, timeout=None)\n--\n\n"
	  "Reserve size bytes in the ring and return a Reservation: `with pub.reserve(n) as "
	  "buf:` gives a writable memoryview of the space, committed (published) when the block "
	  "ends and aborted if it raises. Readers behind an open reservation wait for it: "
	  "finish it soon. One reservation per publisher at a time." },
	{ "close", (PyCFunction)pub_close, METH_NOARGS,
	  "close($self, /)\n--\n\nClose the publisher (an open reservation is aborted). Closing again "
	  "does nothing." },
	{ "__enter__", (PyCFunction)pub_enter, METH_NOARGS, "Return the publisher." },
	{ "__exit__", (PyCFunction)pub_exit, METH_VARARGS, "Close the publisher." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef pub_getset[] = {
	{ "topic", (getter)pub_get_topic, NULL, "The topic's name.", NULL },
	{ "closed", (getter)pub_get_closed, NULL, "True once close() was called.", NULL },
	{ "policy", (getter)pub_get_policy, NULL, "The topic's policy: 'block' or 'overwrite'.",
	  NULL },
	{ "max_message", (getter)pub_get_max_message, NULL,
	  "The largest payload the topic takes, in bytes.", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject pysb_PubType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmbus.Publisher",
	.tp_basicsize = sizeof(pysb_pub),
	.tp_dealloc = (destructor)pub_dealloc,
	.tp_repr = (reprfunc)pub_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A publisher on one topic (Bus.publisher()). Not thread-safe: use one per "
		  "thread. A context manager.",
	.tp_weaklistoffset = offsetof(pysb_pub, weakrefs),
	.tp_methods = pub_methods,
	.tp_getset = pub_getset,
};

/* ---- Reservation ------------------------------------------------------------------------ */

static int res_getbuffer(pysb_res *r, Py_buffer *view, int flags)
{
	if (r->state != RES_OPEN) {
		PyErr_SetString(PyExc_BufferError, r->state == RES_COMMITTED ?
							   "the reservation was committed" :
							   "the reservation was aborted");
		view->obj = NULL;
		return -1;
	}
	if (PyBuffer_FillInfo(view, (PyObject *)r, r->buf, r->len, 0, flags) < 0)
		return -1;
	r->exports++;
	return 0;
}

static void res_releasebuffer(pysb_res *r, Py_buffer *view)
{
	(void)view;
	if (--r->exports == 0 && r->pub->closed)
		pub_maybe_finish(r->pub);
}

/* Commit or abort: only once no buffer of the space is alive. 0 or -1. */
static int res_finish(pysb_res *r, int commit, uint32_t type)
{
	if (r->state != RES_OPEN) {
		PyErr_SetString(PyExc_ValueError, r->state == RES_COMMITTED ?
							  "the reservation was already committed" :
							  "the reservation was already aborted");
		return -1;
	}
	if (pysb_view_drop(&r->view) < 0) {
		PyErr_SetString(PyExc_BufferError,
				"the reservation's memoryview is exported (something holds a "
				"buffer of it): release that first; the reservation stays open");
		return -1;
	}
	if (r->exports > 0) {
		PyErr_Format(PyExc_BufferError,
			     "%zd buffer%s of the reservation's space %s still alive (a slice or "
			     "memoryview of it, a numpy array, ...): release %s first; the "
			     "reservation stays open",
			     r->exports, r->exports == 1 ? "" : "s", r->exports == 1 ? "is" : "are",
			     r->exports == 1 ? "it" : "them");
		return -1;
	}
	pysb_pub *p = r->pub;
	if (!pub_handle(p))
		return -1;
	int rc = commit ? shmbus_commit_type(p->pub, type) : shmbus_abort(p->pub);
	r->state = commit ? RES_COMMITTED : RES_ABORTED;
	p->res = NULL;
	if (rc < 0) {
		pysb_raise(rc, "%s on '%U'", commit ? "commit" : "abort", p->topic);
		return -1;
	}
	return 0;
}

static PyObject *res_commit(pysb_res *r, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	static const char *const names[] = { "type" };
	PyObject *a[1] = { NULL };
	uint32_t type = r->type;
	if (fast_args("commit", args, nargs, kwnames, names, 1, 0, a) < 0)
		return NULL;
	if (a[0] && a[0] != Py_None && parse_type(a[0], &type) < 0)
		return NULL;
	if (res_finish(r, 1, type) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *res_abort(pysb_res *r, PyObject *unused)
{
	(void)unused;
	if (res_finish(r, 0, 0) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *res_get_buffer(pysb_res *r, void *c)
{
	(void)c;
	if (r->state != RES_OPEN)
		return PyErr_Format(PyExc_ValueError, "the reservation was %s",
				    r->state == RES_COMMITTED ? "committed" : "aborted");
	if (!r->view) {
		r->view = PyMemoryView_FromObject((PyObject *)r);
		if (!r->view)
			return NULL;
	}
	return Py_NewRef(r->view);
}

static PyObject *res_enter(pysb_res *r, PyObject *unused)
{
	(void)unused;
	return res_get_buffer(r, NULL);
}

static PyObject *res_exit(pysb_res *r, PyObject *args)
{
	PyObject *et = PyTuple_Size(args) > 0 ? PyTuple_GET_ITEM(args, 0) : Py_None;
	if (r->state != RES_OPEN)
		Py_RETURN_FALSE; /* committed or aborted explicitly in the block */
	if (res_finish(r, et == Py_None, r->type) < 0)
		return NULL;
	Py_RETURN_FALSE;
}

static PyObject *res_get_state(pysb_res *r, void *c)
{
	(void)c;
	static const char *const s[] = { "open", "committed", "aborted" };
	return PyUnicode_FromString(s[r->state]);
}

static Py_ssize_t res_len(pysb_res *r)
{
	return r->len;
}

static PyObject *res_repr(pysb_res *r)
{
	static const char *const s[] = { "open", "committed", "aborted" };
	return PyUnicode_FromFormat("<shmbus.Reservation topic=%R size=%zd %s>", r->pub->topic,
				    r->len, s[r->state]);
}

static int res_traverse(pysb_res *r, visitproc visit, void *arg)
{
	Py_VISIT(r->view);
	Py_VISIT(r->pub);
	return 0;
}

static int res_clear(pysb_res *r)
{
	/* Breaks the cycle reservation -> memoryview -> its buffer -> reservation. */
	Py_CLEAR(r->view);
	return 0;
}

static void res_dealloc(pysb_res *r)
{
	PyObject_GC_UnTrack(r);
	Py_CLEAR(r->view);
	pysb_pub *p = r->pub;
	/* Dropped while open: nobody can write into it any more (every buffer of it held a
	 * reference to us), so aborting is safe. */
	if (r->state == RES_OPEN && p->pub && p->res == r && !p->busy)
		shmbus_abort(p->pub);
	if (p->res == r)
		p->res = NULL;
	PyObject_GC_Del(r);
	pub_maybe_finish(p);
	Py_DECREF(p);
}

static PyMethodDef res_methods[] = {
	{ "commit", (PyCFunction)(void (*)(void))res_commit, METH_FASTCALL | METH_KEYWORDS,
	  "commit($self, /, type=None)\n--\n\nPublish the reserved space (with type, or the type given "
	  "to reserve()). Raises BufferError, leaving the reservation open, while a buffer of "
	  "the space other than the memoryview handed out is alive." },
	{ "abort", (PyCFunction)res_abort, METH_NOARGS,
	  "abort($self, /)\n--\n\nDrop the reservation: readers skip it. Same BufferError rule as "
	  "commit()." },
	{ "__enter__", (PyCFunction)res_enter, METH_NOARGS,
	  "Return the writable memoryview of the reserved space." },
	{ "__exit__", (PyCFunction)res_exit, METH_VARARGS,
	  "Commit if the block ended normally, abort if it raised; the memoryview is released "
	  "either way." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef res_getset[] = {
	{ "buffer", (getter)res_get_buffer, NULL,
	  "The writable memoryview of the reserved space (while open).", NULL },
	{ "state", (getter)res_get_state, NULL, "'open', 'committed' or 'aborted'.", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyBufferProcs res_as_buffer = {
	.bf_getbuffer = (getbufferproc)res_getbuffer,
	.bf_releasebuffer = (releasebufferproc)res_releasebuffer,
};

static PySequenceMethods res_as_sequence = {
	.sq_length = (lenfunc)res_len,
};

PyTypeObject pysb_ResType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmbus.Reservation",
	.tp_basicsize = sizeof(pysb_res),
	.tp_dealloc = (destructor)res_dealloc,
	.tp_repr = (reprfunc)res_repr,
	.tp_as_sequence = &res_as_sequence,
	.tp_as_buffer = &res_as_buffer,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "Space reserved in a topic's ring by Publisher.reserve(): a context manager "
		  "whose target is a writable memoryview of the space; also a buffer itself. "
		  "Committed on normal exit, aborted on an exception.",
	.tp_traverse = (traverseproc)res_traverse,
	.tp_clear = (inquiry)res_clear,
	.tp_methods = res_methods,
	.tp_getset = res_getset,
};
