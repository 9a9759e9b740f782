/* SPDX-License-Identifier: MIT */
/*
 * The module "shmbus": its types, exceptions and constants. The API is described in
 * shmbus.pyi (installed beside the module) and docs/python.md.
 */
#include "bindings/python/pyshmbus.h"

#ifndef SHMBUS_VERSION
#define SHMBUS_VERSION "0.1.0"
#endif

static PyMethodDef module_methods[] = {
	{ "_async_use_fd", (PyCFunction)pysb_async_use_fd, METH_O,
	  "_async_use_fd(flag, /)\n--\n\n"
	  "Internal, for tests: whether asyncio waits on the readers' fds (True, the default) "
	  "or in a helper thread per reader, as where the kernel gives no fd. Returns the "
	  "previous setting." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef shmbus_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "shmbus",
	.m_doc = "shmbus: same-host messaging between processes over shared memory.\n\n"
		 "Open a Bus, create topics on it, then publish with a Publisher and read with "
		 "Subscribers (fan-out, or groups that share the messages out), or with a Sink "
		 "(many topics, by name or pattern). Messages are received zero-copy: "
		 "Message.data is a read-only memoryview into the ring, valid until the "
		 "reader's next recv.",
	.m_size = -1,
	.m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_shmbus(void);
PyMODINIT_FUNC PyInit_shmbus(void)
{
	PyTypeObject *types[] = { &pysb_BusType, &pysb_PubType, &pysb_ResType,
				  &pysb_SubType, &pysb_MsgType, &pysb_SinkType };
	const char *names[] = { "Bus", "Publisher", "Reservation", "Subscriber", "Message", "Sink" };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (PyType_Ready(types[i]) < 0)
			return NULL;
	if (pysb_view_init() < 0 || pysb_sink_init() < 0)
		return NULL;
	PyObject *m = PyModule_Create(&shmbus_module);
	if (!m)
		return NULL;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0)
			goto fail;
	if (pysb_errors_init(m) < 0 ||
	    PyModule_AddStringConstant(m, "__version__", SHMBUS_VERSION) < 0 ||
	    PyModule_AddStringConstant(m, "BLOCK", "block") < 0 ||
	    PyModule_AddStringConstant(m, "OVERWRITE", "overwrite") < 0 ||
	    PyModule_AddIntConstant(m, "TOPIC_NAME_MAX", SHMBUS_TOPIC_NAME_MAX) < 0 ||
	    PyModule_AddIntConstant(m, "GROUP_NAME_MAX", SHMBUS_GROUP_NAME_MAX) < 0)
		goto fail;
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}
