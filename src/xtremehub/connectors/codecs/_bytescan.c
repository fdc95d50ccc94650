/* Positions of one byte value in a buffer, found with memchr: the compiled half of
 * xtremehub.connectors.codecs.byte_positions (which has the NumPy fallback and the docs).
 *
 * With SSE2 (every x86-64) 16 bytes are compared at once, else memchr walks from hit to hit.
 *
 * scan(data, byte, out, start) writes the offsets of `byte` in `data[start:]` into `out`
 * (a writable buffer of Py_ssize_t, e.g. a NumPy intp array) and returns (count, resume):
 * resume == len(data) when every position was written, else the offset to call again from
 * once `out` is full. The GIL is released while scanning.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer data, out;
    int byte;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "y*iw*n", &data, &byte, &out, &start)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (out.itemsize != (Py_ssize_t)sizeof(Py_ssize_t)) {
        PyErr_SetString(PyExc_ValueError, "out must be a buffer of Py_ssize_t");
        goto done;
    }
    if (byte < 0 || byte > 255 || start < 0 || start > data.len) {
        PyErr_SetString(PyExc_ValueError, "byte must be 0-255 and 0 <= start <= len(data)");
        goto done;
    }
    const char *base = (const char *)data.buf;
    const char *p = base + start;
    const char *end = base + data.len;
    Py_ssize_t *pos = (Py_ssize_t *)out.buf;
    Py_ssize_t capacity = out.len / (Py_ssize_t)sizeof(Py_ssize_t);
    Py_ssize_t n = 0;
    Py_BEGIN_ALLOW_THREADS
#if defined(__SSE2__)
    /* 16 bytes at a time: one compare and a bit mask; each set bit is a hit (at most 16) */
    const __m128i needle = _mm_set1_epi8((char)byte);
    while (p + 16 <= end && n + 16 <= capacity) {
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), needle));
        while (mask) {
            pos[n++] = (p - base) + __builtin_ctz(mask);
            mask &= mask - 1;
        }
        p += 16;
    }
#endif
    while (n < capacity && p < end) {
        const char *hit = memchr(p, byte, (size_t)(end - p));
        if (hit == NULL) {
            p = end;
            break;
        }
        pos[n++] = hit - base;
        p = hit + 1;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nn", n, (Py_ssize_t)(p - base));
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "scan(data, byte, out, start) -> (count, resume)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_bytescan", "Byte positions with memchr (see byte_positions.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__bytescan(void) { return PyModule_Create(&module); }
