/* SPDX-License-Identifier: MIT */
/*
 * shmbus.Bus: a bus handle, its topics, and what the shared counters and the daemon say
 * about them. Calls that may take a while (creating a topic reserves its whole file; a
 * daemon ping waits for an answer; opening registers with the daemon) run with the GIL
 * released, counted in `users` so that close() from another thread cannot free the handle
 * under them.
 */
#include <errno.h>
#include <string.h>

#include "bindings/python/pyshmbus.h"

/* Close the C handle (with the GIL released: it may talk to the daemon). */
static void close_handle(pysb_bus *b)
{
	shmbus_bus_t *h = b->bus;
	b->bus = NULL;
	Py_BEGIN_ALLOW_THREADS
		shmbus_bus_close(h);
	Py_END_ALLOW_THREADS
}

void pysb_bus_hold(pysb_bus *b)
{
	b->users++;
}

void pysb_bus_unhold(pysb_bus *b)
{
	if (--b->users == 0 && b->closed && b->bus)
		close_handle(b);
}

/* The handle for a call, or NULL with ValueError if closed. */
static shmbus_bus_t *handle(pysb_bus *b)
{
	if (b->closed || !b->bus) {
		pysb_closed("Bus");
		return NULL;
	}
	return b->bus;
}

static PyObject *bus_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name", NULL };
	PyObject *name_o = Py_None;
	const char *name = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Bus", kwlist, &name_o))
		return NULL;
	if (name_o != Py_None && pysb_name_arg(name_o, "bus name", &name) < 0)
		return NULL;
	pysb_bus *b = (pysb_bus *)type->tp_alloc(type, 0);
	if (!b)
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	shmbus_bus_t *h = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
		rc = shmbus_bus_open(&h, name);
	Py_END_ALLOW_THREADS
	if (rc < 0) {
		Py_DECREF(b);
		return pysb_raise_slow(rc, &snap, "cannot open bus '%s'",
				       name ? name : "(default)");
	}
	b->bus = h;
	/* The name the library resolved: the last component of the bus directory. */
	const char *path = shmbus_bus_path(h);
	const char *slash = strrchr(path, '/');
	b->name = PyUnicode_DecodeFSDefault(slash ? slash + 1 : path);
	if (!b->name) {
		Py_DECREF(b);
		return NULL;
	}
	return (PyObject *)b;
}

static void bus_dealloc(pysb_bus *b)
{
	if (b->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)b);
	/* Children and calls hold references, so none is left here. */
	if (b->bus)
		close_handle(b);
	Py_XDECREF(b->name);
	Py_TYPE(b)->tp_free((PyObject *)b);
}

static PyObject *bus_close(pysb_bus *b, PyObject *unused)
{
	(void)unused;
	if (!b->closed) {
		b->closed = 1;
		/* Open publishers and subscribers keep the C handle until they close. */
		b->users++;
		pysb_bus_unhold(b);
	}
	Py_RETURN_NONE;
}

static PyObject *bus_enter(pysb_bus *b, PyObject *unused)
{
	(void)unused;
	if (!handle(b))
		return NULL;
	return Py_NewRef(b);
}

static PyObject *bus_exit(pysb_bus *b, PyObject *args)
{
	(void)args;
	return bus_close(b, NULL);
}

static PyObject *bus_repr(pysb_bus *b)
{
	return PyUnicode_FromFormat("<shmbus.Bus %R%s>", b->name, b->closed ? " closed" : "");
}

/* ---- topics ---------------------------------------------------------------------------- */

static int parse_policy(const char *s, uint32_t *out)
{
	if (!strcmp(s, "block")) {
		*out = SHMBUS_BLOCK;
		return 0;
	}
	if (!strcmp(s, "overwrite")) {
		*out = SHMBUS_OVERWRITE;
		return 0;
	}
	PyErr_Format(PyExc_ValueError, "policy must be 'block' or 'overwrite', not '%s'", s);
	return -1;
}

/* A topic name argument and the handle for a slow-path call about it, the library's error
 * text taken just before the call (snap). NULL with an exception set. */
static shmbus_bus_t *topic_call(pysb_bus *b, PyObject *arg, const char **name,
				struct pysb_errsnap *snap)
{
	if (pysb_name_arg(arg, "topic name", name) < 0)
		return NULL;
	shmbus_bus_t *h = handle(b);
	if (h)
		pysb_errsnap_take(snap);
	return h;
}

static PyObject *bus_create_topic(pysb_bus *b, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name",	"capacity",    "max_message",
				  "policy",	"max_readers", "max_publishers",
				  "max_groups", "system",      "max_pending",
				  NULL };
	const char *name, *policy = "block";
	PyObject *name_o, *policy_o = NULL, *capacity_o = NULL, *max_message_o = NULL,
			  *max_readers_o = NULL, *max_publishers_o = NULL, *max_groups_o = NULL,
			  *max_pending_o = NULL;
	int system = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOO$OOOpO:create_topic", kwlist, &name_o,
					 &capacity_o, &max_message_o, &policy_o, &max_readers_o,
					 &max_publishers_o, &max_groups_o, &system, &max_pending_o))
		return NULL;
	/* Each checked against its C field's width: ints are never wrapped (capacity=2**70
	 * must not become 1 MiB); the library then checks what the values mean. */
	uint64_t capacity = 1u << 20, max_message = 0, max_readers = 0, max_publishers = 0,
		 max_groups = 0, max_pending = 0;
	if (pysb_name_arg(name_o, "topic name", &name) < 0 ||
	    (policy_o && pysb_name_arg(policy_o, "policy", &policy) < 0) ||
	    (capacity_o && pysb_uint_arg(capacity_o, "capacity", UINT64_MAX, &capacity) < 0) ||
	    (max_message_o &&
	     pysb_uint_arg(max_message_o, "max_message", UINT32_MAX, &max_message) < 0) ||
	    (max_readers_o &&
	     pysb_uint_arg(max_readers_o, "max_readers", UINT32_MAX, &max_readers) < 0) ||
	    (max_publishers_o &&
	     pysb_uint_arg(max_publishers_o, "max_publishers", UINT32_MAX, &max_publishers) < 0) ||
	    (max_groups_o &&
	     pysb_uint_arg(max_groups_o, "max_groups", UINT32_MAX, &max_groups) < 0) ||
	    (max_pending_o &&
	     pysb_uint_arg(max_pending_o, "max_pending", UINT32_MAX, &max_pending) < 0))
		return NULL;
	shmbus_topic_opts_t o;
	shmbus_topic_opts_init(&o);
	o.capacity = capacity;
	o.max_message = (uint32_t)max_message;
	if (parse_policy(policy, &o.policy) < 0)
		return NULL;
	if (max_readers)
		o.max_readers = (uint32_t)max_readers;
	if (max_publishers)
		o.max_publishers = (uint32_t)max_publishers;
	if (max_groups)
		o.max_groups = (uint32_t)max_groups;
	if (max_pending)
		o.max_pending = (uint32_t)max_pending;
	if (system)
		o.flags |= SHMBUS_TOPIC_SYSTEM;
	shmbus_bus_t *h = handle(b);
	if (!h)
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	int rc;
	pysb_bus_hold(b);
	Py_BEGIN_ALLOW_THREADS
		rc = shmbus_topic_create(h, name, &o);
	Py_END_ALLOW_THREADS
	pysb_bus_unhold(b);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "cannot create topic '%s'", name);
	return PyBool_FromLong(rc == 0);
}

static PyObject *bus_remove_topic(pysb_bus *b, PyObject *arg)
{
	const char *name;
	struct pysb_errsnap snap;
	shmbus_bus_t *h = topic_call(b, arg, &name, &snap);
	if (!h)
		return NULL;
	int rc = shmbus_topic_remove(h, name);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "cannot remove topic '%s'", name);
	Py_RETURN_NONE;
}

static PyObject *bus_topic_info(pysb_bus *b, PyObject *arg)
{
	const char *name;
	struct pysb_errsnap snap;
	shmbus_bus_t *h = topic_call(b, arg, &name, &snap);
	if (!h)
		return NULL;
	shmbus_topic_opts_t o;
	int rc = shmbus_topic_info(h, name, &o);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "topic '%s'", name);
	return Py_BuildValue("{s:K,s:I,s:s,s:I,s:I,s:I,s:I,s:O}", "capacity",
			     (unsigned long long)o.capacity, "max_message", o.max_message, "policy",
			     pysb_policy_name(o.policy), "max_readers", o.max_readers,
			     "max_publishers", o.max_publishers, "max_groups", o.max_groups,
			     "max_pending", o.max_pending, "system",
			     (o.flags & SHMBUS_TOPIC_SYSTEM) ? Py_True : Py_False);
}

static int collect_name(const char *name, void *arg)
{
	PyObject *s = PyUnicode_FromString(name);
	if (!s)
		return -ENOMEM;
	int rc = PyList_Append((PyObject *)arg, s);
	Py_DECREF(s);
	return rc < 0 ? -ENOMEM : 0;
}

static PyObject *bus_topics(pysb_bus *b, PyObject *unused)
{
	(void)unused;
	shmbus_bus_t *h = handle(b);
	if (!h)
		return NULL;
	PyObject *list = PyList_New(0);
	if (!list)
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	int rc = shmbus_topic_foreach(h, collect_name, list);
	if (rc < 0) {
		if (PyErr_Occurred()) {
			Py_DECREF(list);
			return NULL;
		}
		Py_DECREF(list);
		return pysb_raise_slow(rc, &snap, "cannot list the topics of bus %R", b->name);
	}
	return list;
}

static PyObject *bus_topic_stats(pysb_bus *b, PyObject *arg)
{
	const char *name;
	struct pysb_errsnap snap;
	shmbus_bus_t *h = topic_call(b, arg, &name, &snap);
	if (!h)
		return NULL;
	shmbus_topic_stats_t st;
	int rc = shmbus_topic_stats(h, name, &st);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "topic '%s'", name);
	return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:I,s:I}", "published",
			     (unsigned long long)st.published, "bytes",
			     (unsigned long long)st.bytes, "aborted",
			     (unsigned long long)st.aborted, "backpressure_waits",
			     (unsigned long long)st.backpressure_waits, "wakeups",
			     (unsigned long long)st.wakeups, "readers_reclaimed",
			     (unsigned long long)st.readers_reclaimed, "tail",
			     (unsigned long long)st.tail, "next_seq",
			     (unsigned long long)st.next_seq, "readers", st.readers, "publishers",
			     st.publishers);
}

/* The library's snapshot functions, one signature for snapshot_list(). */
typedef int (*fetch_fn)(shmbus_bus_t *h, const char *topic, void *out, unsigned room);
typedef PyObject *(*item_fn)(const void *rec);

/* A snapshot of records of `size` bytes about a topic (arg), as a list of item(record).
 * The snapshot functions return how many there are; call again with room for all. */
static PyObject *snapshot_list(pysb_bus *b, PyObject *arg, size_t size, unsigned room,
			       fetch_fn fetch, item_fn item)
{
	const char *name;
	struct pysb_errsnap snap;
	shmbus_bus_t *h = topic_call(b, arg, &name, &snap);
	if (!h)
		return NULL;
	char *recs = NULL;
	int n;
	for (;;) {
		char *nr = PyMem_Realloc(recs, room * size);
		if (!nr) {
			PyMem_Free(recs);
			return PyErr_NoMemory();
		}
		recs = nr;
		n = fetch(h, name, recs, room);
		if (n < 0) {
			PyMem_Free(recs);
			return pysb_raise_slow(n, &snap, "topic '%s'", name);
		}
		if ((unsigned)n <= room)
			break;
		room = (unsigned)n + 16;
	}
	PyObject *list = PyList_New(n);
	for (int i = 0; list && i < n; i++) {
		PyObject *d = item(recs + (size_t)i * size);
		if (!d) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, i, d);
	}
	PyMem_Free(recs);
	return list;
}

static int fetch_readers(shmbus_bus_t *h, const char *topic, void *out, unsigned room)
{
	return shmbus_topic_readers(h, topic, out, room);
}

static PyObject *reader_dict(const void *rec)
{
	const shmbus_reader_info_t *r = rec;
	/* A group member holding nothing has no position. */
	PyObject *pos = r->pos == UINT64_MAX ? Py_NewRef(Py_None) :
					       PyLong_FromUnsignedLongLong(r->pos);
	if (!pos)
		return NULL;
	return Py_BuildValue("{s:I,s:i,s:z,s:K,s:K,s:N,s:K,s:K}", "slot", r->slot, "pid", r->pid,
			     "group", r->group[0] ? r->group : NULL, "consumed",
			     (unsigned long long)r->consumed, "lost", (unsigned long long)r->lost,
			     "pos", pos, "lag_bytes", (unsigned long long)r->lag_bytes, "lag_msgs",
			     (unsigned long long)r->lag_msgs);
}

static PyObject *bus_readers(pysb_bus *b, PyObject *arg)
{
	return snapshot_list(b, arg, sizeof(shmbus_reader_info_t), 64, fetch_readers, reader_dict);
}

static int fetch_groups(shmbus_bus_t *h, const char *topic, void *out, unsigned room)
{
	return shmbus_topic_groups(h, topic, out, room);
}

static PyObject *group_dict(const void *rec)
{
	const shmbus_group_info_t *g = rec;
	/* Another process wrote the name: bounded, and "" (no dead-letter topic) is None. */
	char dl[sizeof(g->dead_letter)];
	snprintf(dl, sizeof(dl), "%.*s", (int)sizeof(dl) - 1, g->dead_letter);
	return Py_BuildValue(
		"{s:s,s:I,s:K,s:K,s:K,s:K,s:K,s:I,s:K,s:K,s:K,s:I,s:I,s:z}", "name", g->name,
		"members", g->members, "cursor", (unsigned long long)g->cursor, "lag_bytes",
		(unsigned long long)g->lag_bytes, "lag_msgs", (unsigned long long)g->lag_msgs,
		"lost", (unsigned long long)g->lost, "abandoned", (unsigned long long)g->abandoned,
		"pending", g->pending, "redelivered", (unsigned long long)g->redelivered,
		"dead_lettered", (unsigned long long)g->dead_lettered, "oldest_pending_ms",
		(unsigned long long)g->oldest_pending_ms, "max_deliver", g->max_deliver,
		"ack_wait_ms", g->ack_wait_ms, "dead_letter", dl[0] ? dl : NULL);
}

static PyObject *bus_groups(pysb_bus *b, PyObject *arg)
{
	return snapshot_list(b, arg, sizeof(shmbus_group_info_t), 16, fetch_groups, group_dict);
}

/* ---- the bus as a whole, and its daemon ---------------------------------------------- */

static PyObject *bus_stats(pysb_bus *b, PyObject *unused)
{
	(void)unused;
	shmbus_bus_t *h = handle(b);
	if (!h)
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	shmbus_bus_stats_t st;
	int rc = shmbus_bus_stats(h, &st);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "bus %R: cannot read its counters", b->name);
	return Py_BuildValue(
		"{s:I,s:I,s:I,s:i,s:O,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "topics", st.topics,
		"clients", st.clients, "watched", st.watched, "daemon_pid", st.daemon_pid,
		"daemon_running", st.daemon_running ? Py_True : Py_False, "published",
		(unsigned long long)st.published, "bytes", (unsigned long long)st.bytes, "aborted",
		(unsigned long long)st.aborted, "crashes", (unsigned long long)st.crashes,
		"readers_reclaimed", (unsigned long long)st.readers_reclaimed,
		"publishers_reclaimed", (unsigned long long)st.publishers_reclaimed,
		"daemon_started_ns", (unsigned long long)st.daemon_started_ns, "daemon_updated_ns",
		(unsigned long long)st.daemon_updated_ns);
}

static PyObject *bus_daemon_ping(pysb_bus *b, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:daemon_ping", kwlist, &timeout))
		return NULL;
	int64_t ms = 1000;
	if (timeout && pysb_timeout_ms(timeout, &ms) < 0)
		return NULL;
	if (ms < 0 || ms > INT32_MAX)
		ms = INT32_MAX;
	shmbus_bus_t *h = handle(b);
	if (!h)
		return NULL;
	struct pysb_errsnap snap;
	pysb_errsnap_take(&snap);
	shmbus_daemon_info_t info;
	int rc;
	pysb_bus_hold(b);
	Py_BEGIN_ALLOW_THREADS
		rc = shmbus_daemon_ping(h, (int)ms, &info);
	Py_END_ALLOW_THREADS
	pysb_bus_unhold(b);
	if (rc < 0)
		return pysb_raise_slow(rc, &snap, "bus %R: daemon ping", b->name);
	info.version[sizeof(info.version) - 1] = '\0';
	info.config[sizeof(info.config) - 1] = '\0';
	return Py_BuildValue("{s:i,s:I,s:K,s:K,s:s,s:s}", "pid", info.pid, "clients", info.clients,
			     "uptime_ms", (unsigned long long)info.uptime_ms, "crashes",
			     (unsigned long long)info.crashes, "version", info.version, "config",
			     info.config);
}

/* ---- handles ---------------------------------------------------------------------------- */

static PyObject *bus_publisher(pysb_bus *b, PyObject *arg)
{
	const char *name;
	if (pysb_name_arg(arg, "topic", &name) < 0)
		return NULL;
	if (!handle(b))
		return NULL;
	return pysb_pub_open(b, arg);
}

/* The group options of subscriber() and sink(): opt_o ack_wait_ms, max_deliver, max_pending,
 * max_pending_member (NULL or None: the default), dead_o (None or a str). ValueError for
 * ack or a group option without a group. *go lives as long as dead_o. 0 or -1. */
static int group_opts(PyObject *const opt_o[4], PyObject *dead_o, int ack, PyObject *group,
		      shmbus_group_opts_t *go)
{
	static const char *const opt_name[4] = { "ack_wait_ms", "max_deliver", "max_pending",
						 "max_pending_member" };
	uint64_t opt[4] = { 0, 0, 0, 0 };
	int have_opts = dead_o != Py_None;
	for (int i = 0; i < 4; i++) {
		if (!opt_o[i] || opt_o[i] == Py_None)
			continue;
		if (pysb_uint_arg(opt_o[i], opt_name[i], UINT32_MAX, &opt[i]) < 0)
			return -1;
		have_opts = 1;
	}
	const char *dead = NULL;
	if (dead_o != Py_None) {
		if (!PyUnicode_Check(dead_o)) {
			PyErr_Format(PyExc_TypeError,
				     "dead_letter must be a str or None, not %.100s",
				     Py_TYPE(dead_o)->tp_name);
			return -1;
		}
		if (pysb_name_arg(dead_o, "dead_letter", &dead) < 0)
			return -1;
	}
	if ((ack || have_opts) && group == Py_None) {
		PyErr_Format(PyExc_ValueError, "%s is for a group member: give group too",
			     ack ? "ack=True" : "a group's option");
		return -1;
	}
	const char *name;
	if (group != Py_None && !PyUnicode_Check(group)) {
		PyErr_Format(PyExc_TypeError, "group must be a str or None, not %.100s",
			     Py_TYPE(group)->tp_name);
		return -1;
	}
	if (group != Py_None && pysb_name_arg(group, "group", &name) < 0)
		return -1;
	shmbus_group_opts_init(go);
	if (opt[0])
		go->ack_wait_ms = (uint32_t)opt[0];
	if (opt[1])
		go->max_deliver = (uint32_t)opt[1];
	go->max_pending = (uint32_t)opt[2];
	go->max_pending_member = (uint32_t)opt[3];
	go->dead_letter = dead;
	return 0;
}

static PyObject *bus_subscriber(pysb_bus *b, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {
		"topic",       "group",	      "from_earliest",	    "ack",	   "ack_wait_ms",
		"max_deliver", "max_pending", "max_pending_member", "dead_letter", NULL
	};
	PyObject *topic, *group = Py_None, *dead_o = Py_None;
	/* The group's options, for when this creates the group; None or 0: the default. */
	PyObject *opt_o[4] = { NULL, NULL, NULL, NULL };
	int earliest = 0, ack = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "U|Op$pOOOOO:subscriber", kwlist, &topic, &group,
					 &earliest, &ack, &opt_o[0], &opt_o[1], &opt_o[2],
					 &opt_o[3], &dead_o))
		return NULL;
	shmbus_group_opts_t go;
	if (group_opts(opt_o, dead_o, ack, group, &go) < 0)
		return NULL;
	const char *name;
	if (pysb_name_arg(topic, "topic", &name) < 0)
		return NULL;
	if (!handle(b))
		return NULL;
	return pysb_sub_open(b, topic, group,
			     (earliest ? SHMBUS_SUB_EARLIEST : 0) | (ack ? SHMBUS_SUB_ACK : 0),
			     &go);
}

static PyObject *bus_sink(pysb_bus *b, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "patterns",	   "group",	  "filter",
				  "from_earliest", "ack",	  "ack_wait_ms",
				  "max_deliver",   "max_pending", "max_pending_member",
				  "dead_letter",   NULL };
	PyObject *patterns, *group = Py_None, *filter = Py_None, *dead_o = Py_None;
	PyObject *opt_o[4] = { NULL, NULL, NULL, NULL };
	int earliest = 0, ack = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO$ppOOOOO:sink", kwlist, &patterns, &group,
					 &filter, &earliest, &ack, &opt_o[0], &opt_o[1], &opt_o[2],
					 &opt_o[3], &dead_o))
		return NULL;
	shmbus_group_opts_t go;
	if (group_opts(opt_o, dead_o, ack, group, &go) < 0)
		return NULL;
	if (!handle(b))
		return NULL;
	return pysb_sink_open(b, patterns, group, filter,
			      (earliest ? SHMBUS_SUB_EARLIEST : 0) | (ack ? SHMBUS_SUB_ACK : 0),
			      &go);
}

/* ---- attributes ------------------------------------------------------------------------- */

static PyObject *bus_get_name(pysb_bus *b, void *c)
{
	(void)c;
	return Py_NewRef(b->name);
}

static PyObject *bus_get_path(pysb_bus *b, void *c)
{
	(void)c;
	shmbus_bus_t *h = handle(b);
	return h ? PyUnicode_DecodeFSDefault(shmbus_bus_path(h)) : NULL;
}

static PyObject *bus_get_closed(pysb_bus *b, void *c)
{
	(void)c;
	return PyBool_FromLong(b->closed);
}

static PyObject *bus_get_supervised(pysb_bus *b, void *c)
{
	(void)c;
	shmbus_bus_t *h = handle(b);
	return h ? PyBool_FromLong(shmbus_bus_supervised(h)) : NULL;
}

static PyMethodDef bus_methods[] = {
	{ "close", (PyCFunction)bus_close, METH_NOARGS,
	  "close($self, /)\n--\n\nClose the bus handle. Publishers and subscribers opened from it stay "
	  "usable until they are closed themselves. Closing again does nothing." },
	{ "__enter__", (PyCFunction)bus_enter, METH_NOARGS, "Return the bus." },
	{ "__exit__", (PyCFunction)bus_exit, METH_VARARGS, "Close the bus." },
	{ "create_topic", (PyCFunction)(void (*)(void))bus_create_topic,
	  METH_VARARGS | METH_KEYWORDS,
	  "create_topic($self, /, name, capacity=1048576, max_message=0, policy='block', *, "
	  "max_readers=0, max_publishers=0, max_groups=0, system=False, max_pending=0)\n--\n\n"
	  "Create a topic; True if it was created, False if it existed with the same options.\n"
	  "capacity is the ring size in bytes (a power of two, 4 KiB .. 1 TiB); max_message the "
	  "largest payload (0: capacity/8); policy 'block' (publishers wait for readers) or "
	  "'overwrite' (readers that fall a lap behind lose messages, counted); max_pending "
	  "the messages each group's acknowledging members may hold unacked (1..65536); 0 for "
	  "the max_* counts takes the library's defaults. Raises Exists if the topic exists with "
	  "other options, Error (EINVAL) for a bad name or option, OverflowError for an int "
	  "that does not fit its C field (negative, or beyond 64 bits for capacity, 32 for the "
	  "others), ValueError for a name containing NUL." },
	{ "remove_topic", (PyCFunction)bus_remove_topic, METH_O,
	  "remove_topic($self, name, /)\n--\n\nRemove a topic. Handles open on it keep working on the "
	  "orphaned ring until closed. Raises NotFound if there is no such topic." },
	{ "topic_info", (PyCFunction)bus_topic_info, METH_O,
	  "topic_info($self, name, /)\n--\n\nThe options a topic was created with, as a dict." },
	{ "topics", (PyCFunction)bus_topics, METH_NOARGS,
	  "topics($self, /)\n--\n\nThe names of the bus's topics, sorted ('$sys.' topics included)." },
	{ "topic_stats", (PyCFunction)bus_topic_stats, METH_O,
	  "topic_stats($self, name, /)\n--\n\nA snapshot of a topic's shared counters, as a dict." },
	{ "readers", (PyCFunction)bus_readers, METH_O,
	  "readers($self, name, /)\n--\n\nThe topic's reader slots in use (fan-out subscribers and group "
	  "members), a list of dicts: slot, pid, group (None for fan-out), consumed, lost, pos, "
	  "lag_bytes, lag_msgs." },
	{ "groups", (PyCFunction)bus_groups, METH_O,
	  "groups($self, name, /)\n--\n\nThe topic's groups, a list of dicts: name, members, cursor, "
	  "lag_bytes, lag_msgs, lost, abandoned; for acknowledging members pending, "
	  "redelivered, dead_lettered, oldest_pending_ms, and the group's options max_deliver, "
	  "ack_wait_ms, dead_letter (None: none)." },
	{ "stats", (PyCFunction)bus_stats, METH_NOARGS,
	  "stats($self, /)\n--\n\nThe bus's counters (summed over topics, and the daemon's), a dict. "
	  "Needs no daemon." },
	{ "daemon_ping", (PyCFunction)(void (*)(void))bus_daemon_ping, METH_VARARGS | METH_KEYWORDS,
	  "daemon_ping($self, /, timeout=1.0)\n--\n\nAsk the bus's daemon (shmbusd) how it is: a dict "
	  "with pid, clients, uptime_ms, crashes, version, config. Raises NotFound if no daemon "
	  "socket exists, Timeout if it does not answer in time, Error (ECONNREFUSED) if its "
	  "socket is dead." },
	{ "publisher", (PyCFunction)bus_publisher, METH_O,
	  "publisher($self, topic, /)\n--\n\nOpen a Publisher on an existing topic." },
	{ "subscriber", (PyCFunction)(void (*)(void))bus_subscriber, METH_VARARGS | METH_KEYWORDS,
	  "subscriber($self, /, topic, group=None, from_earliest=False, *, ack=False, "
	  "ack_wait_ms=None, max_deliver=None, max_pending=None, max_pending_member=None, "
	  "dead_letter=None)\n--\n\n"
	  "Open a Subscriber on an existing topic: a fan-out reader of every message published "
	  "from now on (or from the earliest one retained, with from_earliest), or, with a "
	  "group name, a member of that group (each message goes to one member).\n"
	  "ack=True makes it an acknowledging member (docs/acks.md): each message it receives "
	  "stays pending until sub.ack(msg); sub.nack(msg), the group's ack wait or the "
	  "member's close or death hands it back for redelivery (msg.deliveries counts), up "
	  "to max_deliver deliveries, then it goes to the dead-letter topic. The group's "
	  "options apply only when this call creates the group (None or 0: the default): "
	  "ack_wait_ms (30000), max_deliver (5), max_pending (the topic's max_pending), "
	  "max_pending_member (max_pending), dead_letter (None: '<topic>.dead'; '': none, "
	  "such messages are dropped and counted). ValueError for ack or a group option "
	  "without a group." },
	{ "sink", (PyCFunction)(void (*)(void))bus_sink, METH_VARARGS | METH_KEYWORDS,
	  "sink($self, /, patterns, group=None, filter=None, *, from_earliest=False, ack=False, "
	  "ack_wait_ms=None, max_deliver=None, max_pending=None, max_pending_member=None, "
	  "dead_letter=None)\n--\n\n"
	  "Open a Sink: one reader over every topic that patterns name (a str or an iterable "
	  "of str: topic names, or patterns where a token '*' matches one token and a last "
	  "'>' one or more: 'orders.>'), now and from now on (sink.add(), sink.remove()). "
	  "Without a group it reads every message of each topic, as a fan-out subscriber of "
	  "each (from the earliest retained with from_earliest; a topic created later is read "
	  "from its first message); with one it is one member of that group on every topic "
	  "(ack=True: an acknowledging member, sink.ack(), sink.nack(); the group options are "
	  "subscriber()'s).\n"
	  "filter: a callable(topic: str, type: int, data: memoryview) -> bool called with "
	  "each message before it is returned; a message it rejects is consumed (acked, for "
	  "an acknowledging sink) and never returned. data is valid during the call only. It "
	  "runs inside the sink's receive, maybe in another thread (the GIL taken), and may "
	  "ack(), nack() or close() the sink, nothing else. If it raises, its message is "
	  "consumed as a rejected one (but nacked, not acked, by an acknowledging sink: "
	  "redelivered, then dead-lettered) and the receive raises that exception. ValueError "
	  "for ack or a group option without a group." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef bus_getset[] = {
	{ "name", (getter)bus_get_name, NULL, "The bus's name.", NULL },
	{ "path", (getter)bus_get_path, NULL, "The bus's directory.", NULL },
	{ "closed", (getter)bus_get_closed, NULL, "True once close() was called.", NULL },
	{ "supervised", (getter)bus_get_supervised, NULL,
	  "True if this handle is registered with the bus's daemon, False if embedded.", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

PyTypeObject pysb_BusType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shmbus.Bus",
	.tp_basicsize = sizeof(pysb_bus),
	.tp_dealloc = (destructor)bus_dealloc,
	.tp_repr = (reprfunc)bus_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Bus(name=None)\n--\n\n"
		  "A bus: a directory of topic files, $SHMBUS_DIR/<name> (SHMBUS_DIR defaults to "
		  "/dev/shm/shmbus; name None means $SHMBUS_BUS or 'default'). Created if "
		  "needed. Registers with the bus's daemon when one runs. A context manager; "
		  "may be shared by threads.",
	.tp_weaklistoffset = offsetof(pysb_bus, weakrefs),
	.tp_methods = bus_methods,
	.tp_getset = bus_getset,
	.tp_new = bus_new,
};
