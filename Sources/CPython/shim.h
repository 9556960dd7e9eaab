// C shim over CPython's embedding API (Debian python3-dev, pkg-config python3-embed).
//
// Swift calls exported CPython functions directly; this header wraps only what Swift
// cannot reach: macros (reference counts, type checks, buffer flags, singletons),
// PyConfig set-up (a struct whose fields are passed by address next to the struct),
// exception fetching, and a small buffer-exporting type that lets numpy view Swift
// memory without copying while keeping the Swift owner alive.
//
// <sys/select.h> first: pyconfig.h sets _XOPEN_SOURCE/_GNU_SOURCE, which otherwise breaks
// the first clean build of Swift files that also import Glibc/Foundation (fd_set).
#include <sys/select.h>
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>

#define NORMLAB_PY_STR2(x) #x
#define NORMLAB_PY_STR(x) NORMLAB_PY_STR2(x)

// MARK: reference counts (call with the GIL held)

static inline void normlab_py_incref(PyObject *o) { Py_XINCREF(o); }
static inline void normlab_py_decref(PyObject *o) { Py_XDECREF(o); }

// MARK: singletons (borrowed references)

static inline PyObject *normlab_py_none(void) { return Py_None; }
static inline PyObject *normlab_py_true(void) { return Py_True; }
static inline PyObject *normlab_py_false(void) { return Py_False; }

// MARK: type checks (macros in CPython)

static inline int normlab_py_is_none(PyObject *o) { return o == Py_None; }
static inline int normlab_py_bool_check(PyObject *o) { return PyBool_Check(o); }
static inline int normlab_py_long_check(PyObject *o) { return PyLong_Check(o); }
static inline int normlab_py_float_check(PyObject *o) { return PyFloat_Check(o); }
static inline int normlab_py_unicode_check(PyObject *o) { return PyUnicode_Check(o); }
static inline int normlab_py_bytes_check(PyObject *o) { return PyBytes_Check(o) || PyByteArray_Check(o); }
static inline int normlab_py_dict_check(PyObject *o) { return PyDict_Check(o); }
static inline int normlab_py_tuple_check(PyObject *o) { return PyTuple_Check(o); }
static inline int normlab_py_list_check(PyObject *o) { return PyList_Check(o); }
static inline int normlab_py_type_check(PyObject *o) { return PyType_Check(o); }
/// `Py_TYPE(o)->tp_name` (e.g. "int", "numpy.bool_"); valid while `o` lives.
static inline const char *normlab_py_type_name(PyObject *o) { return Py_TYPE(o)->tp_name; }
/// A new reference to `type(o)`.
static inline PyObject *normlab_py_type_of(PyObject *o) {
    PyObject *t = (PyObject *)Py_TYPE(o);
    Py_INCREF(t);
    return t;
}

// MARK: interpreter lifecycle

/// "/usr/bin/pythonX.Y" for the headers this module was compiled against.
static inline const char *normlab_py_default_program_name(void) {
    return "/usr/bin/python" NORMLAB_PY_STR(PY_MAJOR_VERSION) "." NORMLAB_PY_STR(PY_MINOR_VERSION);
}

/// "X.Y" of the headers this module was compiled against.
static inline const char *normlab_py_compiled_version(void) {
    return NORMLAB_PY_STR(PY_MAJOR_VERSION) "." NORMLAB_PY_STR(PY_MINOR_VERSION);
}

/// Initializes the interpreter with an isolated configuration and releases the GIL.
///
/// Isolated: PYTHONHOME / PYTHONPATH / PYTHON* variables, the user site directory and the
/// current directory are ignored, so another Python on PATH (e.g. pyenv) cannot leak its
/// site-packages in. `program_name` (may be NULL) is the interpreter whose installation
/// provides the standard library and site-packages (Debian: /usr/bin/python3.11).
/// No signal handlers are installed, no bytecode is written, stdio is unbuffered.
///
/// Returns 0 on success, 1 when Python was already initialized by the host (nothing is
/// changed), -1 on failure with a message in `errbuf`.
static inline int normlab_py_initialize(const char *program_name, char *errbuf, size_t errlen) {
    if (Py_IsInitialized()) return 1;
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.write_bytecode = 0;
    config.buffered_stdio = 0;
    config.user_site_directory = 0;
    config.site_import = 1;
    PyStatus status;
    if (program_name != NULL && program_name[0] != '\0') {
        status = PyConfig_SetBytesString(&config, &config.program_name, program_name);
        if (PyStatus_Exception(status)) goto fail;
    }
    status = Py_InitializeFromConfig(&config);
    if (PyStatus_Exception(status)) goto fail;
    PyConfig_Clear(&config);
    // Release the GIL. The main thread state stays bound to this OS thread, so a later
    // PyGILState_Ensure on this thread restores it; other threads get their own.
    (void)PyEval_SaveThread();
    return 0;
fail:
    if (errbuf != NULL && errlen > 0) {
        snprintf(errbuf, errlen, "%s%s%s", status.func ? status.func : "",
                 status.func ? ": " : "", status.err_msg ? status.err_msg : "unknown failure");
    }
    PyConfig_Clear(&config);
    return -1;
}

// MARK: exceptions

/// Fetches and clears the current exception, normalized, with its traceback attached to
/// the value. All three outputs are new references or NULL (`*type` NULL: no exception).
static inline void normlab_py_fetch_exception(PyObject **type, PyObject **value, PyObject **traceback) {
    PyErr_Fetch(type, value, traceback);
    if (*type == NULL) return;
    PyErr_NormalizeException(type, value, traceback);
    if (*value != NULL && *traceback != NULL) PyException_SetTraceback(*value, *traceback);
}

/// Whether the pending exception is an AttributeError (or subclass).
static inline int normlab_py_attribute_error_pending(void) {
    return PyErr_ExceptionMatches(PyExc_AttributeError);
}

/// Whether `type` is SyntaxError or a subclass (IndentationError, TabError).
static inline int normlab_py_is_syntax_error(PyObject *type) {
    return type != NULL && PyErr_GivenExceptionMatches(type, PyExc_SyntaxError);
}

// MARK: buffers

/// `PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)`: a read-only,
/// C-contiguous view with shape, strides and format. 0 on success, -1 with an exception.
static inline int normlab_py_get_c_contiguous_buffer(PyObject *o, Py_buffer *view) {
    return PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT);
}

/// Called once, when the last Python reference to an exporter is gone, with its owner.
typedef void (*normlab_release_fn)(void *owner);

/// A Python object exporting a C-contiguous float32 block owned by someone else (a Swift
/// `TensorStorage` retained through `owner`) via the buffer protocol. `numpy.asarray` on
/// it is a zero-copy view whose base chain keeps the exporter, hence the owner, alive.
typedef struct {
    PyObject_HEAD
    void *buf;
    Py_ssize_t len;         /* bytes */
    int readonly;
    int ndim;
    Py_ssize_t *shape;      /* ndim extents, then ndim strides: one PyMem block */
    Py_ssize_t *strides;
    void *owner;
    normlab_release_fn release;
} normlab_float32_buffer;

static inline int normlab_float32_buffer_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    normlab_float32_buffer *b = (normlab_float32_buffer *)self;
    if ((flags & PyBUF_WRITABLE) == PyBUF_WRITABLE && b->readonly) {
        PyErr_SetString(PyExc_BufferError, "normlab tensor view is read-only");
        view->obj = NULL;
        return -1;
    }
    if ((flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS && b->ndim > 1) {
        Py_ssize_t big = 0;
        for (int i = 0; i < b->ndim; i++) if (b->shape[i] > 1) big++;
        if (big > 1) {
            PyErr_SetString(PyExc_BufferError, "normlab tensor view is C-contiguous, not Fortran-contiguous");
            view->obj = NULL;
            return -1;
        }
    }
    view->obj = self;
    Py_INCREF(self);
    view->buf = b->buf;
    view->len = b->len;
    view->readonly = b->readonly;
    view->itemsize = (Py_ssize_t)sizeof(float);
    view->format = (flags & PyBUF_FORMAT) == PyBUF_FORMAT ? (char *)"f" : NULL;
    if ((flags & PyBUF_ND) == PyBUF_ND) {
        view->ndim = b->ndim;
        view->shape = b->shape;
    } else {
        view->ndim = 1;
        view->shape = NULL;
    }
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? b->strides : NULL;
    view->suboffsets = NULL;
    view->internal = NULL;
    return 0;
}

static inline void normlab_float32_buffer_dealloc(PyObject *self) {
    normlab_float32_buffer *b = (normlab_float32_buffer *)self;
    PyTypeObject *tp = Py_TYPE(self);
    if (b->release != NULL && b->owner != NULL) b->release(b->owner);
    b->owner = NULL;
    PyMem_Free(b->shape);
    b->shape = NULL;
    tp->tp_free(self);
    Py_DECREF(tp);
}

/// The exporter type, created on first use (call with the GIL held; the GIL serialises
/// creation). Borrowed reference; NULL with an exception set on failure.
static inline PyObject *normlab_float32_buffer_type(void) {
    static PyObject *type = NULL;
    if (type == NULL) {
        static PyType_Slot slots[] = {
            {Py_tp_dealloc, (void *)normlab_float32_buffer_dealloc},
            {Py_bf_getbuffer, (void *)normlab_float32_buffer_getbuffer},
            {Py_tp_doc, (void *)"A float32 block owned by a Swift normlab Tensor (buffer protocol)."},
            {0, NULL},
        };
        static PyType_Spec spec = {
            "normlab.Float32Buffer", (int)sizeof(normlab_float32_buffer), 0,
            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION, slots,
        };
        type = PyType_FromSpec(&spec);
    }
    return type;
}

/// A new exporter over `count = prod(shape)` floats at `buf`. On success (new reference)
/// the exporter owns `owner` and calls `release(owner)` when it is deallocated; on failure
/// (NULL, exception set) `release` is not called and the caller still owns `owner`.
static inline PyObject *normlab_float32_buffer_new(void *buf, int ndim, const Py_ssize_t *shape,
                                                   int readonly, void *owner, normlab_release_fn release) {
    if (ndim < 0 || (ndim > 0 && shape == NULL)) {
        PyErr_SetString(PyExc_ValueError, "normlab: invalid tensor shape");
        return NULL;
    }
    PyObject *tp = normlab_float32_buffer_type();
    if (tp == NULL) return NULL;
    Py_ssize_t n = ndim > 0 ? ndim : 1;
    Py_ssize_t *dims = (Py_ssize_t *)PyMem_Malloc(sizeof(Py_ssize_t) * 2 * (size_t)n);
    if (dims == NULL) return PyErr_NoMemory();
    Py_ssize_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            PyMem_Free(dims);
            PyErr_SetString(PyExc_ValueError, "normlab: negative extent in tensor shape");
            return NULL;
        }
        dims[i] = shape[i];
        count *= shape[i];
    }
    Py_ssize_t stride = (Py_ssize_t)sizeof(float);
    for (int i = ndim - 1; i >= 0; i--) {
        dims[ndim + i] = stride;
        stride *= shape[i] > 0 ? shape[i] : 1;
    }
    normlab_float32_buffer *b = PyObject_New(normlab_float32_buffer, (PyTypeObject *)tp);
    if (b == NULL) {
        PyMem_Free(dims);
        return NULL;
    }
    b->buf = buf;
    b->len = count * (Py_ssize_t)sizeof(float);
    b->readonly = readonly ? 1 : 0;
    b->ndim = ndim;
    b->shape = dims;
    b->strides = dims + ndim;
    b->owner = owner;
    b->release = release;
    return (PyObject *)b;
}
