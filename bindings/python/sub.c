/* SPDX-License-Identifier: MIT */
/*
 * shmbus.Subscriber and shmbus.Message.
 *
 * recv() first polls with the GIL held (a message that is there costs no GIL round trip),
 * then waits with the GIL released in slices of PYSB_SLICE_MS, checking for signals
 * between them, so Ctrl-C ends a blocking recv within a slice (at once, in fact, when the
 * signal interrupts the futex sleep in the main thread). recv_batch() and recv_many() do
 * the same with shmbus_recv_batch(): the wait is for the first message, the rest are
 * taken in the same call if they are there.
 *
 * A Message's payload stays in the ring (block policy) or in the subscriber's copy buffer
 * (overwrite), and is valid until the subscriber's next recv or close. The Message is the
 * buffer exporter of that memory; every buffer taken from it is counted, per message of
 * the held batch (`hold[i].exports`) and in all (`exports`). A recv_batch() holds a batch
 * of messages, all with the same lifetime as one recv()'s: before the library may let go
 * of the memory, pysb_sub_let_go() releases the memoryview handed out as .data of each
 * (any later use raises ValueError) and checks that no other buffer of any is alive; if
 * one is (a slice of .data kept across recv, a numpy array made with asarray), recv
 * raises BufferError naming that message and nothing is consumed. A Message whose
 * generation is past refuses new buffers, so .data of an old message raises too.
 */
#include <errno.h>
#include <string.h>

#include "bindings/python/pyshmbus.h"

int pysb_sub_usable(pysb_sub *s)
{
	if (s->closed || !pysb_open(s)) {
		pysb_closed(pysb_kind(s));
		return 0;
	}
	if (s->busy && !s->infilter) {
		pysb_busy(pysb_kind(s));
		return 0;
	}
	if (s->infilter) {
		/* The library is inside a receive on the handle, calling the filter. */
		PyErr_Format(PyExc_RuntimeError,
			     "this shmbus.%s is receiving (its filter runs): the filter may not "
			     "use it, except ack(), nack() and close()",
			     pysb_kind(s));
		return 0;
	}
	return 1;
}

static shmbus_sub_t *sub_handle(pysb_sub *s)
{
	return pysb_sub_usable(s) ? s->sub : NULL;
}

void pysb_sub_maybe_finish(pysb_sub *s)
{
	if (!s->closed || !pysb_open(s) || s->busy || s->ahelper || s->areader || s->exports > 0)
		return;
	shmbus_sub_t *h = s->sub;
	shmbus_sink_t *k = s->sink;
	s->sub = NULL;
	s->sink = NULL;
	s->held = 0;
	s->fd_known = 0;
	if (k)
		shmbus_sink_close(k);
	else
		shmbus_sub_close(h);
	pysb_bus_unhold(s->bus);
}

int pysb_take(pysb_sub *s, shmbus_msg_t *msgs, unsigned max, int timeout_ms, int gil)
{
	if (s->sink)
		return pysb_sink_take(s, msgs, timeout_ms, gil);
	if (max > 1)
		return shmbus_recv_batch(s->sub, msgs, max, timeout_ms);
	int rc = shmbus_recv(s->sub, msgs, timeout_ms);
	return rc < 0 ? rc : 1;
}

PyObject *pysb_sub_open(pysb_bus *bus, PyObject *topic, PyObject *group, int flags,
			const shmbus_group_opts_t *gopts)
{
	const char *name, *gname = NULL;
	if (pysb_name_arg(topic, "topic", &name) < 0 ||
	    (group != Py_None && pysb_name_arg(group, "group", &gname) < 0))
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	shmbus_topic_opts_t o;
	int rc = shmbus_topic_info(bus->bus, name, &o);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "cannot subscribe to topic '%s'", name);
	pysb_errsnap_take(&snap);
	shmbus_sub_t *h;
	rc = gname ? shmbus_sub_open_group(&h, bus->bus, name, gname, flags, gopts) :
		     shmbus_sub_open(&h, bus->bus, name, NULL, flags);
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
	s->acking = (flags & SHMBUS_SUB_ACK) != 0;
	s->adeadline = -1;
	s->spin_us = 20;
	/* On an overwrite topic recv copies the payload out of the ring: with large messages
	 * that copy should not hold the GIL, so even the first poll runs without it. */
	s->nogil_poll = o.policy == SHMBUS_OVERWRITE && o.max_message >= PYSB_NOGIL_COPY;
	s->hold = &s->hold1;
	s->bmsgs = &s->bmsg1;
	s->hcap = 1;
	/* A batch is what is in the ring (records of at least 32 bytes, docs/layout.md);
	 * overwrite topics copy each message out, one per batch. */
	uint64_t most = o.policy == SHMBUS_OVERWRITE ? 1 : o.capacity / 32;
	s->batch_max = most < 1 ? 1 : most > PYSB_BATCH_MAX ? PYSB_BATCH_MAX : (unsigned)most;
	pysb_bus_hold(bus);
	return (PyObject *)s;
}

/* Let go of the held messages with an index below upto (all of them: the C handle may
 * release the batch at its next receive). */
static int let_go_upto(pysb_sub *s, unsigned upto)
{
	if (upto > s->held)
		upto = s->held;
	/* First every .data memoryview we handed out, then what else holds their memory. */
	unsigned refused = upto;
	for (unsigned i = s->hfirst; i < upto; i++)
		if (pysb_view_drop(&s->hold[i].view) < 0 && refused == upto)
			refused = i;
	if (refused < upto) {
		PyErr_Format(PyExc_BufferError,
			     "message seq %llu: its .data memoryview is exported (something holds "
			     "a buffer of it): release that, or copy with .bytes(), before the "
			     "next recv",
			     (unsigned long long)s->hold[refused].seq);
		return -1;
	}
	for (unsigned i = s->hfirst; i < upto; i++) {
		Py_ssize_t n = s->hold[i].exports;
		if (n > 0) {
			PyErr_Format(
				PyExc_BufferError,
				"message seq %llu: %zd buffer%s of its data %s still alive (a "
				"slice or memoryview of msg.data, a numpy array, ...): release "
				"%s, or copy with .bytes(), before the next recv",
				(unsigned long long)s->hold[i].seq, n, n == 1 ? "" : "s",
				n == 1 ? "is" : "are", n == 1 ? "it" : "them");
			return -1;
		}
	}
	if (upto < s->held) {
		if (upto > s->hfirst)
			s->hfirst = upto;
		return 0;
	}
	s->held = 0;
	s->hfirst = 0;
	s->gen++;
	return 0;
}

int pysb_sub_let_go(pysb_sub *s)
{
	if (!s->held)
		return 0;
	return let_go_upto(s, s->held);
}

int pysb_sub_let_go_before(pysb_sub *s, unsigned idx)
{
	if (idx <= s->hfirst || idx >= s->held)
		return 0;
	return let_go_upto(s, idx);
}

int pysb_sub_batch_room(pysb_sub *s, Py_ssize_t max)
{
	unsigned n = max > (Py_ssize_t)s->batch_max ? s->batch_max : (unsigned)max;
	if (n <= s->hcap)
		return (int)n;
	/* Nothing held: no view or buffer refers to the old array. */
	struct pysb_held *hold = PyMem_Calloc(n, sizeof(*hold));
	shmbus_msg_t *bmsgs = PyMem_Calloc(n, sizeof(*bmsgs));
	if (!hold || !bmsgs) {
		PyMem_Free(hold);
		PyMem_Free(bmsgs);
		PyErr_NoMemory();
		return -1;
	}
	if (s->hold != &s->hold1)
		PyMem_Free(s->hold);
	if (s->bmsgs != &s->bmsg1)
		PyMem_Free(s->bmsgs);
	s->hold = hold;
	s->bmsgs = bmsgs;
	s->hcap = n;
	return (int)n;
}

/* The C handle just returned msgs[0..n): held as one batch until let go, and counted. */
static void sub_hold(pysb_sub *s, const shmbus_msg_t *msgs, unsigned n)
{
	s->held = n;
	s->hfirst = 0;
	s->received += n;
	for (unsigned i = 0; i < n; i++) {
		s->hold[i].seq = msgs[i].seq;
		s->lost += msgs[i].lost;
	}
}

static PyObject *msg_new(pysb_sub *s, const shmbus_msg_t *m, unsigned idx)
{
	pysb_msg *o = PyObject_GC_New(pysb_msg, &pysb_MsgType);
	if (!o)
		return NULL;
	o->sub = (pysb_sub *)Py_NewRef(s);
	o->gen = s->gen;
	o->idx = idx;
	o->data = m->data;
	o->len = m->len;
	o->type = m->type;
	o->seq = m->seq;
	o->timestamp = m->timestamp_ns;
	o->lost = m->lost;
	o->deliveries = m->deliveries;
	o->flags_ = m->_flags;
	o->pos_ = m->_pos;
	o->pend_ = m->_pend;
	o->src_ = m->_src;
	o->topic = s->is_sink ? pysb_sink_topic(s, m->topic) : Py_NewRef(s->topic);
	if (!o->topic) {
		o->topic = Py_NewRef(Py_None);
		Py_DECREF(o);
		return NULL;
	}
	PyObject_GC_Track(o);
	return (PyObject *)o;
}

PyObject *pysb_sub_wrap(pysb_sub *s, const shmbus_msg_t *m)
{
	sub_hold(s, m, 1);
	return msg_new(s, m, 0);
}

PyObject *pysb_sub_wrap_batch(pysb_sub *s, const shmbus_msg_t *msgs, unsigned n)
{
	sub_hold(s, msgs, n);
	PyObject *list = PyList_New(n);
	if (!list)
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		PyObject *o = msg_new(s, &msgs[i], i);
		if (!o) {
			Py_DECREF(list);
			return NULL;
		}
		PyList_SET_ITEM(list, i, o);
	}
	return list;
}

/* ---- recv ------------------------------------------------------------------------------- */

int pysb_sub_poll(pysb_sub *s, shmbus_msg_t *msgs, unsigned max)
{
	if (!s->nogil_poll && !s->sink)
		return pysb_take(s, msgs, max, 0, 1);
	int rc;
	s->busy = 1;
	if (s->sink) {
		/* With the GIL (a poll is short), but busy: the filter runs Python code. */
		rc = pysb_take(s, msgs, max, 0, 1);
	} else {
		Py_BEGIN_ALLOW_THREADS
			rc = pysb_take(s, msgs, max, 0, 0);
		Py_END_ALLOW_THREADS
	}
	s->busy = 0;
	if (s->closed) {
		/* closed meanwhile (by its filter, or another thread): what came goes with it */
		pysb_closed(pysb_kind(s));
		pysb_sub_maybe_finish(s);
		return PYSB_RC_PYERR;
	}
	return rc;
}

/* Wait for messages, GIL released, in slices; signals are checked between them. */
static int recv_wait(pysb_sub *s, shmbus_msg_t *msgs, unsigned max, int64_t timeout_ms)
{
	int64_t deadline = pysb_deadline(timeout_ms);
	int rc;
	s->busy = 1;
	for (;;) {
		int slice = pysb_slice_ms(deadline);
		Py_BEGIN_ALLOW_THREADS
			rc = pysb_take(s, msgs, max, slice, 0);
		Py_END_ALLOW_THREADS
		if (rc != -EAGAIN && rc != -EINTR)
			break;
		rc = pysb_between_slices(s->closed, pysb_kind(s), deadline);
		if (rc)
			break;
	}
	s->busy = 0;
	if ((rc > 0 || rc == PYSB_RC_FILTER) && s->closed) {
		/* closed by another thread meanwhile: the messages go with the handle */
		rc = PYSB_RC_PYERR;
		pysb_closed(pysb_kind(s));
	}
	return rc;
}

static PyObject *recv_error(pysb_sub *s, const char *op, int rc, int64_t timeout_ms)
{
	if (rc == PYSB_RC_PYERR)
		return NULL;
	if (rc == PYSB_RC_FILTER) {
		PyObject *exc = pysb_sink_filter_exc(s);
		if (exc) {
			PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
			Py_DECREF(exc);
		}
		return NULL;
	}
	if (s->is_sink) {
		if (rc == -EAGAIN)
			return pysb_raise(rc, "%s on the sink: no message within %lld ms", op,
					  (long long)timeout_ms);
		return pysb_raise(rc, "%s on the sink", op);
	}
	if (rc == -EAGAIN)
		return pysb_raise(rc, "%s on '%U': no message within %lld ms", op, s->topic,
				  (long long)timeout_ms);
	if (rc == -EBADMSG)
		return pysb_raise(rc,
				  "%s on '%U': the ring holds a record that fails "
				  "validation (the topic is corrupt)",
				  op, s->topic);
	return pysb_raise(rc, "%s on '%U'", op, s->topic);
}

/* Before a synchronous receive: the handle usable, what asyncio left settled (messages
 * a cancelled future left come back in *got: one Message for max 0, else a list of up to
 * max), the held messages let go. 0, or -1 with an exception set. */
static int recv_begin(pysb_sub *s, unsigned max, PyObject **got)
{
	*got = NULL;
	if (!pysb_sub_usable(s))
		return -1;
	if (s->afut || s->aresult || s->astash || s->ahelper || s->areader) {
		if (pysb_sub_async_settle(s, max, got) < 0)
			return -1;
		if (*got)
			return 0;
		if (!pysb_sub_usable(s))
			return -1;
	}
	return pysb_sub_let_go(s);
}

/* recv(timeout) and __next__ (iter: closed ends the iteration instead of raising). */
static PyObject *recv_impl(pysb_sub *s, int64_t timeout_ms, int iter)
{
	if (iter && (s->closed || !pysb_open(s)))
		return NULL; /* StopIteration */
	PyObject *got;
	if (recv_begin(s, 0, &got) < 0)
		return NULL;
	if (got)
		return got;
	shmbus_msg_t m;
	int rc = pysb_sub_poll(s, &m, 1);
	if (rc == -EAGAIN && timeout_ms != 0)
		rc = recv_wait(s, &m, 1, timeout_ms);
	if (rc < 0) {
		pysb_sub_maybe_finish(s);
		return recv_error(s, "recv", rc, timeout_ms);
	}
	return pysb_sub_wrap(s, &m);
}

/* The first message waited for as recv() does, then those already there: up to max into
 * s->bmsgs. The number received, or -1 with an exception set. */
static int recv_batch_take(pysb_sub *s, const char *op, Py_ssize_t max, int64_t timeout_ms)
{
	int cap = pysb_sub_batch_room(s, max);
	if (cap < 0)
		return -1;
	int rc = pysb_sub_poll(s, s->bmsgs, (unsigned)cap);
	if (rc == -EAGAIN && timeout_ms != 0)
		rc = recv_wait(s, s->bmsgs, (unsigned)cap, timeout_ms);
	if (rc < 0) {
		pysb_sub_maybe_finish(s);
		recv_error(s, op, rc, timeout_ms);
		return -1;
	}
	return rc;
}

PyObject *pysb_sub_recv(pysb_sub *s, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
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

PyObject *pysb_sub_iternext(pysb_sub *s)
{
	return recv_impl(s, -1, 1);
}

/* The max_messages and timeout arguments of recv_many() and recv_batch(). */
static int batch_args(PyObject *max_o, PyObject *timeout, Py_ssize_t *max, int64_t *ms)
{
	if (!PyIndex_Check(max_o)) {
		PyErr_Format(PyExc_TypeError, "max_messages must be an int, not %.100s",
			     Py_TYPE(max_o)->tp_name);
		return -1;
	}
	PyObject *i = PyNumber_Index(max_o);
	if (!i)
		return -1;
	int over = 0;
	long long v = PyLong_AsLongLongAndOverflow(i, &over);
	Py_DECREF(i);
	if (v == -1 && !over && PyErr_Occurred())
		return -1;
	if (pysb_timeout_ms(timeout, ms) < 0)
		return -1;
	if (over < 0 || (!over && v < 1)) {
		PyErr_SetString(PyExc_ValueError, "max_messages must be >= 1");
		return -1;
	}
	if (over > 0 || v > PY_SSIZE_T_MAX) {
		PyErr_Format(PyExc_OverflowError, "max_messages must be at most %zd",
			     PY_SSIZE_T_MAX);
		return -1;
	}
	*max = (Py_ssize_t)v;
	return 0;
}

static PyObject *sub_recv_batch(pysb_sub *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "max_messages", "timeout", NULL };
	PyObject *max_o = NULL, *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:recv_batch", kwlist, &max_o, &timeout))
		return NULL;
	Py_ssize_t max = 64;
	int64_t ms;
	if (max_o ? batch_args(max_o, timeout, &max, &ms) < 0 : pysb_timeout_ms(timeout, &ms) < 0)
		return NULL;
	PyObject *got;
	unsigned umax = max > PYSB_BATCH_MAX ? PYSB_BATCH_MAX : (unsigned)max;
	if (recv_begin(s, umax, &got) < 0)
		return NULL;
	if (got)
		return got;
	int n = recv_batch_take(s, "recv_batch", max, ms);
	if (n < 0)
		return NULL;
	return pysb_sub_wrap_batch(s, s->bmsgs, (unsigned)n);
}

/* Copies of the payloads of a list of Messages (taken over from asyncio). Steals list. */
static PyObject *copies_of(PyObject *list)
{
	Py_ssize_t n = PyList_GET_SIZE(list);
	PyObject *out = PyList_New(n);
	for (Py_ssize_t i = 0; out && i < n; i++) {
		pysb_msg *m = (pysb_msg *)PyList_GET_ITEM(list, i);
		PyObject *b = PyBytes_FromStringAndSize(m->data, m->len);
		if (!b)
			Py_CLEAR(out);
		else
			PyList_SET_ITEM(out, i, b);
	}
	Py_DECREF(list);
	return out;
}

static PyObject *sub_recv_many(pysb_sub *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "max_messages", "timeout", NULL };
	PyObject *max_o, *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:recv_many", kwlist, &max_o, &timeout))
		return NULL;
	Py_ssize_t max;
	int64_t ms;
	if (batch_args(max_o, timeout, &max, &ms) < 0)
		return NULL;
	PyObject *got;
	unsigned umax = max > PYSB_BATCH_MAX ? PYSB_BATCH_MAX : (unsigned)max;
	if (recv_begin(s, umax, &got) < 0)
		return NULL;
	if (got)
		return copies_of(got);
	int n = recv_batch_take(s, "recv_many", max, ms);
	if (n < 0)
		return NULL;
	/* Counted as received, copied, and released at once: no Message refers to them. */
	sub_hold(s, s->bmsgs, (unsigned)n);
	PyObject *list = PyList_New(n);
	for (int i = 0; list && i < n; i++) {
		PyObject *b = PyBytes_FromStringAndSize(s->bmsgs[i].data, s->bmsgs[i].len);
		if (!b)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, i, b);
	}
	shmbus_release(s->sub, &s->bmsgs[n - 1]);
	s->held = 0;
	s->gen++;
	return list;
}

/* ---- acknowledging (SHMBUS_SUB_ACK) ------------------------------------------------------- */

/* The C message that msg was, for shmbus_ack()/shmbus_nack(): they need only its delivery
 * count and pending entry, never its data (which may be gone). */
void pysb_msg_as_c(const pysb_msg *m, shmbus_msg_t *out)
{
	memset(out, 0, sizeof(*out));
	out->len = m->len;
	out->type = m->type;
	out->seq = m->seq;
	out->timestamp_ns = m->timestamp;
	out->lost = m->lost;
	out->deliveries = m->deliveries;
	out->_flags = m->flags_;
	out->_pos = m->pos_;
	out->_pend = m->pend_;
	out->_src = m->src_;
}

/*
 * The handle for an ack or nack of msg. Unlike a receive, an ack may run while another
 * thread waits in shmbus_recv() on the handle (a recv without the GIL, the asyncio helper
 * waiting for the next message while a task acks the last one): shmbus_ack() and
 * shmbus_nack() only change the group's pending entries and the slot's count, by atomic
 * operations in shared memory, and read nothing a receive writes (ring/ack.c). Without
 * that an asyncio consumer could not ack while its next recv_async() is pending.
 */
static shmbus_sub_t *ack_handle(pysb_sub *s, PyObject *msg, const char *op, shmbus_msg_t *m)
{
	if (!PyObject_TypeCheck(msg, &pysb_MsgType)) {
		PyErr_Format(PyExc_TypeError, "%s() takes a shmbus.Message, not %.100s", op,
			     Py_TYPE(msg)->tp_name);
		return NULL;
	}
	if (s->closed || !s->sub) {
		pysb_closed("Subscriber");
		return NULL;
	}
	if (!s->acking) {
		pysb_raise(-EINVAL,
			   "%s on '%U': this subscriber does not acknowledge (open it with "
			   "group=..., ack=True)",
			   op, s->topic);
		return NULL;
	}
	pysb_msg_as_c((const pysb_msg *)msg, m);
	return s->sub;
}

PyObject *pysb_ack_result(PyObject *topic, const char *op, const shmbus_msg_t *m, int rc)
{
	if (rc == -ESTALE)
		return pysb_raise(
			rc,
			"%s of message seq %llu on '%U': it is not pending for this member "
			"any more (its ack wait passed and it was handed back, or another "
			"member has it, or it was acked already)",
			op, (unsigned long long)m->seq, topic);
	if (rc < 0)
		return pysb_raise(rc, "%s of message seq %llu on '%U'", op,
				  (unsigned long long)m->seq, topic);
	Py_RETURN_NONE;
}

static PyObject *sub_ack(pysb_sub *s, PyObject *msg)
{
	shmbus_msg_t m;
	shmbus_sub_t *h = ack_handle(s, msg, "ack", &m);
	if (!h)
		return NULL;
	return pysb_ack_result(s->topic, "ack", &m, shmbus_ack(h, &m));
}

static PyObject *sub_nack(pysb_sub *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "msg", "delay_ms", NULL };
	PyObject *msg, *delay_o = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:nack", kwlist, &msg, &delay_o))
		return NULL;
	uint64_t delay = 0;
	if (delay_o && pysb_uint_arg(delay_o, "delay_ms", UINT32_MAX, &delay) < 0)
		return NULL;
	shmbus_msg_t m;
	shmbus_sub_t *h = ack_handle(s, msg, "nack", &m);
	if (!h)
		return NULL;
	return pysb_ack_result(s->topic, "nack", &m, shmbus_nack(h, &m, (uint32_t)delay));
}

/* ---- close ------------------------------------------------------------------------------ */

PyObject *pysb_sub_close(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	if (s->closed)
		Py_RETURN_NONE;
	s->closed = 1;
	pysb_sub_async_close(s);
	/* Another thread (a recv without the GIL, the asyncio helper) leaves the handle
	 * within a slice: wait, so that the reader slot is free when close() returns. Not
	 * while a sink's filter runs (maybe this very call comes from it, inside the
	 * library's receive): the receive closes the handle when it returns. */
	while ((s->busy || s->ahelper) && !s->infilter)
		pysb_nap();
	for (unsigned i = 0; i < s->hcap; i++)
		if (pysb_view_drop(&s->hold[i].view) < 0)
			Py_CLEAR(s->hold[i].view); /* exported: the C close waits for its release */
	/* Old messages refuse new buffers from now on. */
	s->gen++;
	pysb_sub_maybe_finish(s);
	Py_RETURN_NONE;
}

PyObject *pysb_sub_enter(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	if (s->closed)
		return pysb_closed(pysb_kind(s));
	return Py_NewRef(s);
}

PyObject *pysb_sub_exit(pysb_sub *s, PyObject *args)
{
	(void)args;
	return pysb_sub_close(s, NULL);
}

int pysb_sub_traverse(pysb_sub *s, visitproc visit, void *arg)
{
	for (unsigned i = 0; i < s->hcap; i++)
		Py_VISIT(s->hold[i].view);
	Py_VISIT(s->filter);
	Py_VISIT(s->ferr);
	return pysb_sub_async_traverse(s, visit, arg);
}

int pysb_sub_clear(pysb_sub *s)
{
	/* Breaks subscriber -> memoryview -> its buffer -> message -> subscriber. */
	for (unsigned i = 0; i < s->hcap; i++)
		Py_CLEAR(s->hold[i].view);
	Py_CLEAR(s->ferr);
	pysb_sub_async_clear(s);
	return 0;
}

void pysb_sub_dealloc(pysb_sub *s)
{
	PyObject_GC_UnTrack(s);
	if (s->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)s);
	s->closed = 1;
	for (unsigned i = 0; i < s->hcap; i++)
		Py_CLEAR(s->hold[i].view);
	pysb_sub_async_clear(s);
	/* Every buffer and the helper thread hold references: nothing uses the handle. */
	pysb_sub_maybe_finish(s);
	if (s->hold != &s->hold1)
		PyMem_Free(s->hold);
	if (s->bmsgs != &s->bmsg1)
		PyMem_Free(s->bmsgs);
	pysb_sink_free(s);
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

/* ---- fileno ------------------------------------------------------------------------------ */

int pysb_sub_fd(pysb_sub *s, int raise)
{
	if (s->fd_known)
		return s->fd;
	if (s->fd_nosys) {
		if (raise)
			pysb_raise(-ENOSYS,
				   "%s has no file descriptor: this kernel cannot wait on a futex "
				   "through io_uring (IORING_OP_FUTEX_WAIT, Linux 6.7)",
				   s->is_sink ? "the sink" : "the subscriber");
		return -ENOSYS;
	}
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	int fd;
	if (s->sink) {
		int locked = pysb_sink_lock(s, 1);
		fd = shmbus_sink_fd(s->sink);
		pysb_sink_unlock(s, locked);
	} else {
		fd = shmbus_sub_fd(s->sub);
	}
	if (fd < 0) {
		if (fd == -ENOSYS)
			s->fd_nosys = 1;
		if (raise) {
			if (s->is_sink)
				pysb_raise_slow(fd, &snap, "the sink's file descriptor");
			else
				pysb_raise_slow(fd, &snap, "the file descriptor of subscriber '%U'",
						s->topic);
		}
		return fd;
	}
	s->fd = fd;
	s->fd_known = 1;
	return fd;
}

PyObject *pysb_sub_fileno(pysb_sub *s, PyObject *unused)
{
	(void)unused;
	if (s->fd_known && !s->closed && pysb_open(s))
		return PyLong_FromLong(s->fd);
	if (!pysb_sub_usable(s))
		return NULL;
	if (s->ahelper)
		return pysb_busy(pysb_kind(s));
	if (s->sink && !s->fd_nosys) {
		/* Making a sink's fd looks at the bus (a topic removed is left now): the
		 * message last received is let go first, as by a receive. */
		if (s->astash) {
			PyErr_SetString(PyExc_RuntimeError,
					"messages of a cancelled receive are waiting on this sink: "
					"receive them before fileno()");
			return NULL;
		}
		if (pysb_sub_let_go(s) < 0)
			return NULL;
	}
	int fd = pysb_sub_fd(s, 1);
	return fd < 0 ? NULL : PyLong_FromLong(fd);
}

/* ---- asyncio entry points ------------------------------------------------------------- */

PyObject *pysb_sub_recv_async_m(pysb_sub *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:recv_async", kwlist, &timeout))
		return NULL;
	int64_t ms;
	if (pysb_timeout_ms(timeout, &ms) < 0)
		return NULL;
	return pysb_sub_recv_async(s, ms, 0, 0);
}

static PyObject *sub_recv_batch_async(pysb_sub *s, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "max_messages", "timeout", NULL };
	PyObject *max_o = NULL, *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:recv_batch_async", kwlist, &max_o,
					 &timeout))
		return NULL;
	Py_ssize_t max = 64;
	int64_t ms;
	if (max_o ? batch_args(max_o, timeout, &max, &ms) < 0 : pysb_timeout_ms(timeout, &ms) < 0)
		return NULL;
	return pysb_sub_recv_async(s, ms, 0, max > PYSB_BATCH_MAX ? PYSB_BATCH_MAX : (unsigned)max);
}

static PyObject *sub_aiter(PyObject *s)
{
	return Py_NewRef(s);
}

PyObject *pysb_sub_anext(pysb_sub *s)
{
	return pysb_sub_recv_async(s, -1, 1, 0);
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
	uint64_t us;
	if (pysb_uint_arg(v, "spin_us", UINT64_MAX, &us) < 0)
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
	{ "recv", (PyCFunction)(void (*)(void))pysb_sub_recv, METH_FASTCALL | METH_KEYWORDS,
	  "recv($self, /, timeout=None)\n--\n\n"
	  "Receive the next message, waiting up to timeout seconds (None: forever; 0: only "
	  "look), then raise Timeout. The previous message's data is released first: its .data "
	  "memoryview raises ValueError from now on. Raises BufferError, consuming nothing, if "
	  "a buffer of the previous message's data is still alive." },
	{ "recv_batch", (PyCFunction)(void (*)(void))sub_recv_batch, METH_VARARGS | METH_KEYWORDS,
	  "recv_batch($self, /, max_messages=64, timeout=None)\n--\n\n"
	  "Receive up to max_messages messages as a list of Message, in order: the first "
	  "waited for as recv() does (up to timeout seconds, then Timeout), the others only if "
	  "already there (shmbus_recv_batch()). Every message of the batch is valid until the "
	  "subscriber's next recv of any kind or close, as one recv()'s message is; a buffer "
	  "of any of them still alive then makes that recv raise BufferError, consuming "
	  "nothing. On a block topic the whole batch holds its ring space until then. "
	  "Overwrite topics give batches of one." },
	{ "recv_many", (PyCFunction)(void (*)(void))sub_recv_many, METH_VARARGS | METH_KEYWORDS,
	  "recv_many($self, /, max_messages, timeout=None)\n--\n\n"
	  "Receive up to max_messages payloads as a list of bytes (copies): the first waiting "
	  "as recv() does, the others only if already there (one shmbus_recv_batch(), its "
	  "ring space released at once). Types and sequence numbers are not returned; losses "
	  "add up in .lost." },
	{ "recv_async", (PyCFunction)(void (*)(void))pysb_sub_recv_async_m,
	  METH_VARARGS | METH_KEYWORDS,
	  "recv_async($self, /, timeout=None)\n--\n\n"
	  "recv() for asyncio: returns a Future for the next message. A message already there "
	  "completes it at once; otherwise the event loop waits on the subscriber's fileno() "
	  "(loop.add_reader(): no thread) and completes it when a message comes. Where the "
	  "kernel gives no fd, the subscriber's helper thread waits instead (the GIL "
	  "released) and completes it through loop.call_soon_threadsafe(). Cancelling it loses "
	  "nothing: a message that arrives for a cancelled future goes to the next recv." },
	{ "recv_batch_async", (PyCFunction)(void (*)(void))sub_recv_batch_async,
	  METH_VARARGS | METH_KEYWORDS,
	  "recv_batch_async($self, /, max_messages=64, timeout=None)\n--\n\n"
	  "recv_batch() for asyncio: returns a Future for a list of up to max_messages "
	  "messages, waited for as recv_async() does. Cancelling it loses nothing: messages "
	  "that arrive for a cancelled future go to the next receives, in order." },
	{ "ack", (PyCFunction)sub_ack, METH_O,
	  "ack($self, msg, /)\n--\n\n"
	  "An acknowledging member (subscriber(..., group=..., ack=True)) is done with msg: it is "
	  "no longer pending and never delivered again. msg may be any message this member "
	  "received and has not acked or nacked, its data gone or not. Raises Stale if it is "
	  "not pending for this member any more (its ack wait passed and it was handed back, "
	  "another member has it, it was acked already): nothing changed then. Error (EINVAL) "
	  "on a subscriber that does not acknowledge. May be called while another thread or "
	  "the asyncio helper waits for the next message." },
	{ "nack", (PyCFunction)(void (*)(void))sub_nack, METH_VARARGS | METH_KEYWORDS,
	  "nack($self, /, msg, delay_ms=0)\n--\n\n"
	  "Hand msg back for redelivery, to any member of the group, not before delay_ms "
	  "milliseconds; after the group's max_deliver deliveries it goes to the dead-letter "
	  "topic instead. Raises as ack()." },
	{ "fileno", (PyCFunction)pysb_sub_fileno, METH_NOARGS,
	  "fileno($self, /)\n--\n\n"
	  "A file descriptor that becomes readable when recv() would return a message, for "
	  "select, poll, selectors or loop.add_reader() (shmbus_sub_fd(): an io_uring waiting on "
	  "the topic's futex). Edge-triggered like a socket: once it is readable, receive with "
	  "timeout=0 until Timeout; the receive that raises Timeout arms it again. It may be "
	  "readable with nothing to receive (at least every 100 ms while armed). Owned by the "
	  "subscriber (do not close it; it is closed with the subscriber); the same on every "
	  "call. recv_async() and `async for` register it with the loop themselves: do not "
	  "add_reader() it too while using them. Raises Unsupported (an "
	  "io.UnsupportedOperation) where the kernel cannot (Linux before 6.7, io_uring "
	  "disabled)." },
	{ "close", (PyCFunction)pysb_sub_close, METH_NOARGS,
	  "close($self, /)\n--\n\nClose the subscriber, releasing its reader slot; ends iteration over "
	  "it. Closing again does nothing. An acknowledging member's messages not acked yet "
	  "are handed back for redelivery at once." },
	{ "__enter__", (PyCFunction)pysb_sub_enter, METH_NOARGS, "Return the subscriber." },
	{ "__exit__", (PyCFunction)pysb_sub_exit, METH_VARARGS, "Close the subscriber." },
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
	.am_anext = (unaryfunc)pysb_sub_anext,
};

PyTypeObject pysb_SubType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmbus.Subscriber",
	.tp_basicsize = sizeof(pysb_sub),
	.tp_dealloc = (destructor)pysb_sub_dealloc,
	.tp_repr = (reprfunc)sub_repr,
	.tp_as_async = &sub_as_async,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A reader of one topic (Bus.subscriber()): a fan-out subscriber or a group "
		  "member. Iterable (`for msg in sub`, until closed) and async-iterable (`async "
		  "for msg in sub`). Not thread-safe: use one per thread. A context manager.",
	.tp_traverse = (traverseproc)pysb_sub_traverse,
	.tp_clear = (inquiry)pysb_sub_clear,
	.tp_weaklistoffset = offsetof(pysb_sub, weakrefs),
	.tp_iter = PyObject_SelfIter,
	.tp_iternext = (iternextfunc)pysb_sub_iternext,
	.tp_methods = sub_methods,
	.tp_getset = sub_getset,
};

/* ---- Message ------------------------------------------------------------------------------ */

static inline int msg_valid(const pysb_msg *m)
{
	const pysb_sub *s = m->sub;
	return s->held && m->gen == s->gen && m->idx >= s->hfirst && pysb_open(s) && !s->closed;
}

static PyObject *msg_invalid(const pysb_msg *m)
{
	PyErr_Format(PyExc_ValueError,
		     "message seq %llu is gone: its %s received another message or was "
		     "closed (keep a copy with .bytes() if you need the data longer)",
		     (unsigned long long)m->seq, m->sub->is_sink ? "sink" : "subscriber");
	return NULL;
}

static PyObject *msg_get_data(pysb_msg *m, void *c)
{
	(void)c;
	pysb_sub *s = m->sub;
	if (!msg_valid(m))
		return msg_invalid(m);
	PyObject **view = &s->hold[m->idx].view;
	if (!*view) {
		*view = PyMemoryView_FromObject((PyObject *)m);
		if (!*view)
			return NULL;
	}
	return Py_NewRef(*view);
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
	m->sub->hold[m->idx].exports++;
	return 0;
}

static void msg_releasebuffer(pysb_msg *m, Py_buffer *view)
{
	(void)view;
	pysb_sub *s = m->sub;
	s->hold[m->idx].exports--;
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
		return pysb_busy(pysb_kind(s));
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

static PyObject *msg_get_deliveries(pysb_msg *m, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLong(m->deliveries);
}

static PyObject *msg_get_topic(pysb_msg *m, void *c)
{
	(void)c;
	return Py_NewRef(m->topic);
}

static Py_ssize_t msg_len(pysb_msg *m)
{
	return m->len;
}

static PyObject *msg_repr(pysb_msg *m)
{
	return PyUnicode_FromFormat("<shmbus.Message topic=%R seq=%llu type=%u len=%u lost=%llu%s>",
				    m->topic, (unsigned long long)m->seq, m->type, m->len,
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
	Py_DECREF(m->topic);
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
	{ "deliveries", (getter)msg_get_deliveries, NULL,
	  "Which delivery of the message this is: 1 the first time, 2 the next... (an "
	  "acknowledging member's messages come again when not acked); always 1 otherwise.",
	  NULL },
	{ "topic", (getter)msg_get_topic, NULL,
	  "The name of the topic it was published to (a sink reads many).", NULL },
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
