/* SPDX-License-Identifier: MIT */
/*
 * Exceptions: shmbus.Error (with .errno) and one subclass per errno a caller acts on.
 * Timeout, NotFound, Exists and AccessDenied also derive from the builtin OSError
 * subclasses they mean, so `except TimeoutError` or `except FileNotFoundError` work too;
 * Unsupported from io.UnsupportedOperation, what fileno() raises for an object without one.
 * Instances are built with the message as their only argument (so str() is the message)
 * and get .errno set afterwards (the OSError slot on those that are OSErrors).
 *
 * Also the small helpers the objects share: timeouts and waits in slices, and the release
 * of the memoryviews they hand out.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bindings/python/pyshmbus.h"

PyObject *pysb_Error, *pysb_Timeout, *pysb_Exists, *pysb_NotFound, *pysb_TooBig, *pysb_AccessDenied,
	*pysb_Stale, *pysb_Unsupported;

static PyObject *new_class(PyObject *m, const char *name, const char *doc, PyObject *bases)
{
	char full[64];
	snprintf(full, sizeof(full), "shmbus.%s", name);
	PyObject *cls = PyErr_NewExceptionWithDoc(full, doc, bases, NULL);
	if (!cls)
		return NULL;
	if (PyModule_AddObjectRef(m, name, cls) < 0) {
		Py_DECREF(cls);
		return NULL;
	}
	return cls;
}

static PyObject *sub_class(PyObject *m, const char *name, const char *doc, PyObject *builtin)
{
	PyObject *bases = builtin ? PyTuple_Pack(2, pysb_Error, builtin) :
				    PyTuple_Pack(1, pysb_Error);
	if (!bases)
		return NULL;
	PyObject *cls = new_class(m, name, doc, bases);
	Py_DECREF(bases);
	return cls;
}

int pysb_errors_init(PyObject *m)
{
	pysb_Error = new_class(m, "Error",
			       "A shmbus call failed. .errno is the errno it failed with and "
			       "str() the library's message.",
			       NULL);
	if (!pysb_Error)
		return -1;
	pysb_Timeout = sub_class(m, "Timeout",
				 "Nothing came, or no space freed up, within the timeout "
				 "(EAGAIN, ETIMEDOUT). Also a TimeoutError.",
				 PyExc_TimeoutError);
	pysb_Exists = sub_class(m, "Exists",
				"The topic exists with other options (EEXIST). Also a "
				"FileExistsError.",
				PyExc_FileExistsError);
	pysb_NotFound = sub_class(m, "NotFound",
				  "No such topic, or no daemon (ENOENT). Also a "
				  "FileNotFoundError.",
				  PyExc_FileNotFoundError);
	pysb_TooBig = sub_class(m, "TooBig",
				"The message is larger than the topic's max_message (EMSGSIZE).",
				NULL);
	pysb_AccessDenied = sub_class(m, "AccessDenied",
				      "Not allowed (EACCES, EPERM). Also a PermissionError.",
				      PyExc_PermissionError);
	pysb_Stale =
		sub_class(m, "Stale",
			  "An ack or nack of a message that is not pending for this member any "
			  "more (ESTALE): its ack wait passed and it was handed back, another "
			  "member has it, or it was acked already. Nothing changed.",
			  NULL);
	PyObject *io = PyImport_ImportModule("io");
	PyObject *unsupported = io ? PyObject_GetAttrString(io, "UnsupportedOperation") : NULL;
	Py_XDECREF(io);
	if (!unsupported)
		return -1;
	pysb_Unsupported =
		sub_class(m, "Unsupported",
			  "The kernel cannot do this (ENOSYS): fileno() where io_uring "
			  "cannot wait on a futex (Linux before 6.7, io_uring disabled). "
			  "Also an io.UnsupportedOperation (an OSError).",
			  unsupported);
	Py_DECREF(unsupported);
	if (!pysb_Timeout || !pysb_Exists || !pysb_NotFound || !pysb_TooBig || !pysb_AccessDenied ||
	    !pysb_Stale || !pysb_Unsupported)
		return -1;
	return 0;
}

static PyObject *class_for(int err)
{
	switch (err) {
	case EAGAIN:
	case ETIMEDOUT:
		return pysb_Timeout;
	case EEXIST:
		return pysb_Exists;
	case ENOENT:
		return pysb_NotFound;
	case EMSGSIZE:
		return pysb_TooBig;
	case EACCES:
	case EPERM:
		return pysb_AccessDenied;
	case ESTALE:
		return pysb_Stale;
	case ENOSYS:
		return pysb_Unsupported;
	default:
		return pysb_Error;
	}
}

/* A new exception instance for rc with message text (a str; stolen). */
static PyObject *exc_from(int rc, PyObject *text)
{
	int err = rc < 0 ? -rc : rc;
	if (!text)
		return NULL;
	PyObject *exc = PyObject_CallOneArg(class_for(err), text);
	Py_DECREF(text);
	if (!exc)
		return NULL;
	PyObject *e = PyLong_FromLong(err);
	if (!e || PyObject_SetAttrString(exc, "errno", e) < 0) {
		Py_XDECREF(e);
		Py_DECREF(exc);
		return NULL;
	}
	Py_DECREF(e);
	return exc;
}

PyObject *pysb_exc_new(int rc, const char *msg)
{
	return exc_from(rc, PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace"));
}

/* Raise for rc with message text (stolen). NULL. */
static PyObject *raise_from(int rc, PyObject *text)
{
	PyObject *exc = exc_from(rc, text);
	if (exc) {
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

/* fmt's text (PyUnicode_FromFormat conventions), ": ", strerror(rc). */
static PyObject *context_text(int rc, const char *fmt, va_list ap)
{
	PyObject *ctx = PyUnicode_FromFormatV(fmt, ap);
	if (!ctx)
		return NULL;
	PyObject *text = PyUnicode_FromFormat("%U: %s", ctx, strerror(rc < 0 ? -rc : rc));
	Py_DECREF(ctx);
	return text;
}

PyObject *pysb_raise(int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	PyObject *text = context_text(rc, fmt, ap);
	va_end(ap);
	return raise_from(rc, text);
}

void pysb_errsnap_take(struct pysb_errsnap *s)
{
	snprintf(s->text, sizeof(s->text), "%s", shmbus_errmsg());
}

PyObject *pysb_raise_slow(int rc, const struct pysb_errsnap *s, const char *fmt, ...)
{
	const char *lib = shmbus_errmsg();
	if (lib[0] && strncmp(lib, s->text, sizeof(s->text)) != 0)
		return raise_from(rc,
				  PyUnicode_DecodeUTF8(lib, (Py_ssize_t)strlen(lib), "replace"));
	va_list ap;
	va_start(ap, fmt);
	PyObject *text = context_text(rc, fmt, ap);
	va_end(ap);
	return raise_from(rc, text);
}

PyObject *pysb_closed(const char *what)
{
	PyErr_Format(PyExc_ValueError, "operation on a closed shmbus.%s", what);
	return NULL;
}

PyObject *pysb_busy(const char *what)
{
	PyErr_Format(PyExc_RuntimeError,
		     "this shmbus.%s is in use by another thread (handles are not "
		     "thread-safe: use one per thread)",
		     what);
	return NULL;
}

int pysb_uint_arg(PyObject *o, const char *name, uint64_t max, uint64_t *out)
{
	if (!PyIndex_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	PyObject *i = PyNumber_Index(o);
	if (!i)
		return -1;
	int over = 0;
	long long v = PyLong_AsLongLongAndOverflow(i, &over);
	unsigned long long u = (unsigned long long)v;
	if (v == -1 && !over && PyErr_Occurred()) {
		Py_DECREF(i);
		return -1;
	}
	if (over > 0) {
		/* Above LLONG_MAX: it may still fit in 64 bits. */
		u = PyLong_AsUnsignedLongLong(i);
		if (u == (unsigned long long)-1 && PyErr_Occurred()) {
			Py_DECREF(i);
			PyErr_Clear();
			PyErr_Format(PyExc_OverflowError,
				     "%s must be at most %llu, not a number beyond 64 bits", name,
				     (unsigned long long)max);
			return -1;
		}
	}
	Py_DECREF(i);
	if (over < 0 || (!over && v < 0)) {
		if (over)
			PyErr_Format(PyExc_OverflowError, "%s must be >= 0, not a negative number",
				     name);
		else
			PyErr_Format(PyExc_OverflowError, "%s must be >= 0, not %lld", name, v);
		return -1;
	}
	if (u > max) {
		PyErr_Format(PyExc_OverflowError, "%s must be at most %llu, not %llu", name,
			     (unsigned long long)max, u);
		return -1;
	}
	*out = u;
	return 0;
}

int pysb_name_arg(PyObject *o, const char *what, const char **out)
{
	if (!PyUnicode_Check(o)) {
		PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what,
			     Py_TYPE(o)->tp_name);
		return -1;
	}
	Py_ssize_t len;
	const char *s = PyUnicode_AsUTF8AndSize(o, &len);
	if (!s)
		return -1;
	if (strlen(s) != (size_t)len) {
		PyErr_Format(PyExc_ValueError, "%s must not contain a NUL character: %R", what, o);
		return -1;
	}
	*out = s;
	return 0;
}

int pysb_timeout_ms(PyObject *o, int64_t *ms)
{
	if (!o || o == Py_None) {
		*ms = -1;
		return 0;
	}
	double secs = PyFloat_AsDouble(o);
	if (secs == -1.0 && PyErr_Occurred()) {
		if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
			/* An int too large for a double: not made "forever" behind the caller's
			 * back, as None says that. */
			PyErr_Clear();
			PyErr_SetString(PyExc_OverflowError,
					"timeout is too large (None waits forever)");
		} else if (PyErr_ExceptionMatches(PyExc_TypeError)) {
			PyErr_Clear();
			PyErr_Format(PyExc_TypeError,
				     "timeout must be None or a number of seconds, not %.100s",
				     Py_TYPE(o)->tp_name);
		}
		return -1;
	}
	if (!(secs >= 0)) {
		PyErr_SetString(PyExc_ValueError, "timeout must be None or a number >= 0");
		return -1;
	}
	/* Beyond a year is forever for our purposes (and keeps the sums below overflow). */
	if (secs > 365.0 * 86400.0) {
		*ms = -1;
		return 0;
	}
	double v = secs * 1000.0;
	int64_t whole = (int64_t)v;
	*ms = (double)whole < v ? whole + 1 : whole;
	return 0;
}

int64_t pysb_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pysb_nap(void)
{
	Py_BEGIN_ALLOW_THREADS
		usleep(200);
	Py_END_ALLOW_THREADS
}

int64_t pysb_deadline(int64_t timeout_ms)
{
	return timeout_ms < 0 ? -1 : pysb_now_ms() + timeout_ms;
}

int pysb_slice_ms(int64_t deadline)
{
	if (deadline < 0)
		return PYSB_SLICE_MS;
	int64_t left = deadline - pysb_now_ms();
	if (left <= 0)
		return 0;
	return left < PYSB_SLICE_MS ? (int)left : PYSB_SLICE_MS;
}

int pysb_between_slices(int closed, const char *what, int64_t deadline)
{
	if (closed) {
		pysb_closed(what);
		return PYSB_RC_PYERR;
	}
	if (PyErr_CheckSignals() < 0)
		return PYSB_RC_PYERR;
	if (deadline >= 0 && pysb_now_ms() >= deadline)
		return -EAGAIN;
	return 0;
}

static PyObject *str_release;

int pysb_view_init(void)
{
	str_release = PyUnicode_InternFromString("release");
	return str_release ? 0 : -1;
}

int pysb_view_drop(PyObject **view)
{
	if (!*view)
		return 0;
	/* Only our reference: dropping it releases the buffer, nobody can use the view. */
	if (Py_REFCNT(*view) > 1) {
		PyObject *ok = PyObject_CallMethodNoArgs(*view, str_release);
		if (!ok) {
			PyErr_Clear();
			return -1;
		}
		Py_DECREF(ok);
	}
	Py_CLEAR(*view);
	return 0;
}
