// C shim over CPython's embedding API (Debian python3-dev, pkg-config python3-embed).
// <sys/select.h> first: pyconfig.h sets _XOPEN_SOURCE/_GNU_SOURCE, which otherwise breaks
// the first clean build of Swift files that also import Glibc/Foundation (fd_set).
#include <sys/select.h>
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static inline void normlab_py_incref(PyObject *o) { Py_XINCREF(o); }
static inline void normlab_py_decref(PyObject *o) { Py_XDECREF(o); }
