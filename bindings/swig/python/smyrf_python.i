/* Python specifics of the libsmyrf wrappers (included by ../smyrf.i).
 *
 * - A failed smyrf_status raises at once, in the wrapper, so the thread-local library
 *   message is read before anything else can replace it. The exception object comes from
 *   a factory that the pure-Python package registers (smyrf._errors), so callers see
 *   the smyrf.SmyrfError hierarchy; a successful status is not returned at all.
 * - Handle and value outputs (smyrf_config **cfg, int64_t *value, ...) become return
 *   values.
 * - Tensor arguments of smyrf_execute and smyrf_execute_backward take any buffer-protocol
 *   object (a NumPy array: its data pointer is used as is, no copy), an int (a raw
 *   address, e.g. a torch CUDA tensor's data_ptr()) or None (NULL). Outputs (out, lse,
 *   dq, dk, dv, workspace) must be writable buffers. The buffers stay acquired for the
 *   whole call.
 * - The GIL is released only where the library may work for long: plan creation and
 *   execution, forward and backward. */

%nothread;
%thread smyrf_plan_create;
%thread smyrf_execute;
%thread smyrf_execute_backward;

%{
static PyObject *smyrf_py_error_factory = NULL;

/* Sets the Python error for a failed call; reads the message of this thread first. */
static void smyrf_py_raise(smyrf_status status) {
    const char *msg = smyrf_last_error_message();
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    if (!text) return;
    if (!smyrf_py_error_factory) {
        PyErr_Format(PyExc_RuntimeError, "libsmyrf: %s: %U", smyrf_status_string(status), text);
        Py_DECREF(text);
        return;
    }
    PyObject *exc = PyObject_CallFunction(smyrf_py_error_factory, "iN", (int)status, text);
    if (!exc) return;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
}

/* Adds one output to the wrapper's result: None becomes obj, then a tuple grows. Done
 * here rather than with SWIG's helper, whose rules changed between SWIG versions. */
static PyObject *smyrf_py_append(PyObject *result, PyObject *obj) {
    if (!obj) {
        Py_XDECREF(result);
        return NULL;
    }
    if (!result || result == Py_None) {
        Py_XDECREF(result);
        return obj;
    }
    PyObject *pair = PyTuple_Check(result) ? NULL : PyTuple_Pack(1, result);
    PyObject *head = pair ? pair : result;
    PyObject *tail = PyTuple_Pack(1, obj);
    PyObject *joined = (head && tail) ? PySequence_Concat(head, tail) : NULL;
    Py_XDECREF(pair);
    Py_XDECREF(tail);
    Py_DECREF(obj);
    Py_DECREF(result);
    return joined;
}

/* The address behind a tensor argument: buffer (writable if asked), int, or None.
 * Returns 0 and sets a Python TypeError when obj is none of those. */
static int smyrf_py_address(PyObject *obj, const char *name, int writable, Py_buffer *view,
                            int *have_view, void **address) {
    *have_view = 0;
    *address = NULL;
    if (obj == Py_None) return 1;
    if (PyLong_Check(obj)) {
        *address = PyLong_AsVoidPtr(obj);
        return !PyErr_Occurred();
    }
    if (PyObject_CheckBuffer(obj)) {
        int flags = PyBUF_STRIDES | (writable ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(obj, view, flags) != 0) return 0;
        *have_view = 1;
        *address = view->buf;
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "%s: expected a %sbuffer (e.g. a NumPy array), an int "
                 "address or None, got %s", name, writable ? "writable " : "",
                 Py_TYPE(obj)->tp_name);
    return 0;
}
%}

%rename(_set_error_factory) smyrf_py_set_error_factory;
%inline %{
/* Registers factory(status: int, message: str) -> exception instance. */
void smyrf_py_set_error_factory(PyObject *factory) {
    Py_XINCREF(factory);
    Py_XDECREF(smyrf_py_error_factory);
    smyrf_py_error_factory = factory;
}
%}

%typemap(out) smyrf_status {
    if ($1 != SMYRF_OK) {
        smyrf_py_raise($1);
        SWIG_fail;
    }
    $result = SWIG_Py_Void();
}

/* Handles created by the library. */
%typemap(in, numinputs=0) smyrf_config **cfg (smyrf_config *handle = NULL),
                          smyrf_plan **plan (smyrf_plan *handle = NULL) {
    $1 = &handle;
}
%typemap(argout) smyrf_config **cfg {
    $result = smyrf_py_append($result, SWIG_NewPointerObj(handle$argnum, $descriptor(smyrf_config *), 0));
    if (!$result) SWIG_fail;
}
%typemap(argout) smyrf_plan **plan {
    $result = smyrf_py_append($result, SWIG_NewPointerObj(handle$argnum, $descriptor(smyrf_plan *), 0));
    if (!$result) SWIG_fail;
}

/* Scalar outputs. */
%typemap(in, numinputs=0) int64_t *value (int64_t tmp = 0), int64_t *lower (int64_t tmp = 0),
                          int64_t *upper (int64_t tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) int64_t *value, int64_t *lower, int64_t *upper {
    $result = smyrf_py_append($result, PyLong_FromLongLong((long long)tmp$argnum));
    if (!$result) SWIG_fail;
}
%typemap(in, numinputs=0) double *scale (double tmp = 0) {
    $1 = &tmp;
}
%typemap(argout) double *scale {
    $result = smyrf_py_append($result, PyFloat_FromDouble(tmp$argnum));
    if (!$result) SWIG_fail;
}

/* Tensor arguments of smyrf_execute and smyrf_execute_backward (in the backward, out
 * and lse are read-only inputs: `const void *out`, `const float *lse`). */
%define SMYRF_PY_TENSOR(TYPE, NAME, WRITABLE)
%typemap(in) TYPE NAME (Py_buffer view, int have_view = 0) {
    void *address;
    if (!smyrf_py_address($input, #NAME, WRITABLE, &view, &have_view, &address)) SWIG_fail;
    $1 = ($1_ltype)address;
}
%typemap(freearg) TYPE NAME {
    if (have_view$argnum) PyBuffer_Release(&view$argnum);
}
%enddef
SMYRF_PY_TENSOR(const void *, q, 0)
SMYRF_PY_TENSOR(const void *, k, 0)
SMYRF_PY_TENSOR(const void *, v, 0)
SMYRF_PY_TENSOR(const uint8_t *, key_mask, 0)
SMYRF_PY_TENSOR(void *, out, 1)
SMYRF_PY_TENSOR(float *, lse, 1)
SMYRF_PY_TENSOR(void *, workspace, 1)
SMYRF_PY_TENSOR(void *, stream, 0)
SMYRF_PY_TENSOR(const void *, out, 0)
SMYRF_PY_TENSOR(const float *, lse, 0)
SMYRF_PY_TENSOR(const void *, dout, 0)
SMYRF_PY_TENSOR(void *, dq, 1)
SMYRF_PY_TENSOR(void *, dk, 1)
SMYRF_PY_TENSOR(void *, dv, 1)
