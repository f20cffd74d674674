/* ome_arrow_kernels._kernels: whole chunks read from a file, checked, and their rows placed in an output.
 *
 * read_chunks(fd, items, head_len, variants, heads, want, check, out, scratch, stream=False) reads item after
 * item: one preadv of its page (head into a stack buffer, value into ``scratch``), the head compared with the usual
 * ones of the item's kind, XXH3-64 of the value with the item's stored digest (when ``check[i]``), then the value's
 * rows copied into their places in ``out`` (with ``stream``, by non-temporal stores where aligned: large reads).
 * The GIL is released for the whole loop. Every argument is copied or checked before it is released: each item's
 * rows must lie in ``out``, cover exactly its value, and the value fit ``scratch``. It stops at the first item that
 * fails and returns (done, status, value): items ``done`` were read, checked and placed; status OK (done ==
 * len(items)), SHORT (item ``done``'s read reached the end of the file after ``value`` bytes), HEAD (its head is not
 * a usual one) or MISMATCH (``value`` is its digest). A value that is one run of ``out`` (its rows follow each other
 * there) is read straight into it, no scratch copy, and zeroed again when it fails; any other failed item leaves
 * ``out`` untouched. A read error raises OSError (the item's value zeroed when read straight).
 * read_each(fd, items, head_len, variants, heads, want, check, outs) reads item i's value straight into ``outs[i]``
 * (a writable buffer each; the item one row at its F_BASE there), checked as read_chunks checks it, and returns as
 * it does; a failed item's value is zeroed again, the items before it are complete.
 * hash_rows(item, buffer) is XXH3-64 of one item's rows of ``buffer`` (page order).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define STREAMS 1
#else
#define STREAMS 0
#endif

#if defined(__x86_64__) || defined(_M_X64)
/* xxHash's own run-time dispatch to its AVX2/AVX-512 code where the CPU has it (as python-xxhash builds it) */
#include "xxh_x86dispatch.c"
#define HASH XXH3_64bits_dispatch
#define UPDATE XXH3_64bits_update_dispatch
#else
#define XXH_INLINE_ALL
#include "xxhash.h"
#define HASH XXH3_64bits
#define UPDATE XXH3_64bits_update
#endif

#ifndef IOV_MAX
#define IOV_MAX 1024
#endif

enum { F_OFFSET, F_VALUE, F_BASE, F_ROW, F_COUNT, F_STRIDE = F_COUNT + 4, F_KIND = F_STRIDE + 4, FIELDS };
enum { OK, SHORT, HEAD, MISMATCH };
#define MAX_HEAD 64

typedef struct {
    int64_t f[FIELDS];
} item_t;

/* The byte range [lo, hi) of ``out`` that item ``it``'s rows touch, and its row count; -1 when out of range. */
static int bounds(const item_t *it, Py_ssize_t out_len, int64_t *rows, const char **why) {
    const int64_t *f = it->f;
    int64_t n = 1, lo = f[F_BASE], hi, nbytes;
    if (f[F_OFFSET] < 0) { *why = "a file offset is negative"; return -1; }
    if (f[F_ROW] <= 0) { *why = "a row length is not positive"; return -1; }
    for (int d = 0; d < 4; d++) {
        int64_t c = f[F_COUNT + d], s = f[F_STRIDE + d], span;
        if (c <= 0) { *why = "a row count is not positive"; return -1; }
        if (__builtin_mul_overflow(n, c, &n)) { *why = "too many rows"; return -1; }
        if (__builtin_mul_overflow(c - 1, s, &span)) { *why = "a stride overflows"; return -1; }
        if (span < 0 && __builtin_add_overflow(lo, span, &lo)) { *why = "a row lies before the output"; return -1; }
    }
    if (__builtin_mul_overflow(n, f[F_ROW], &nbytes) || nbytes != f[F_VALUE]) {
        *why = "an item's rows do not cover exactly its value";
        return -1;
    }
    hi = f[F_BASE];
    for (int d = 0; d < 4; d++) {
        int64_t span = (f[F_COUNT + d] - 1) * f[F_STRIDE + d];
        if (span > 0 && __builtin_add_overflow(hi, span, &hi)) { *why = "a row lies past the output"; return -1; }
    }
    if (lo < 0 || __builtin_add_overflow(hi, f[F_ROW], &hi) || hi > (int64_t)out_len) {
        *why = "a row lies outside the output";
        return -1;
    }
    *rows = n;
    return 0;
}

/* The rows of ``it`` (page order) as segments of ``out``, rows that follow each other merged; their count. */
static int64_t segments(const item_t *it, char *out, struct iovec *seg) {
    const int64_t *f = it->f, row = f[F_ROW];
    int64_t m = 0;
    for (int64_t a = 0; a < f[F_COUNT]; a++)
        for (int64_t b = 0; b < f[F_COUNT + 1]; b++)
            for (int64_t c = 0; c < f[F_COUNT + 2]; c++)
                for (int64_t d = 0; d < f[F_COUNT + 3]; d++) {
                    char *p = out + f[F_BASE] + a * f[F_STRIDE] + b * f[F_STRIDE + 1] + c * f[F_STRIDE + 2] +
                              d * f[F_STRIDE + 3];
                    if (m > 0 && (char *)seg[m - 1].iov_base + seg[m - 1].iov_len == p) {
                        seg[m - 1].iov_len += (size_t)row;
                    } else {
                        seg[m].iov_base = p;
                        seg[m].iov_len = (size_t)row;
                        m++;
                    }
                }
    return m;
}

/* preadv of all of ``iov`` (``cnt`` entries, consumed) from ``at``, IOV_MAX at a time, again after EINTR and short
 * reads; the bytes read (fewer at the end of the file), or -1 with errno set. */
static int64_t read_all(int fd, struct iovec *iov, int64_t cnt, int64_t at) {
    int64_t total = 0;
    while (cnt > 0) {
        ssize_t r = preadv(fd, iov, (int)(cnt < IOV_MAX ? cnt : IOV_MAX), (off_t)at);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        total += r;
        at += r;
        while (r > 0 && cnt > 0) {
            if ((size_t)r >= iov->iov_len) {
                r -= (ssize_t)iov->iov_len;
                iov++;
                cnt--;
            } else {
                iov->iov_base = (char *)iov->iov_base + r;
                iov->iov_len -= (size_t)r;
                r = 0;
            }
        }
        while (cnt > 0 && iov->iov_len == 0) {  /* zero-length entries need no read */
            iov++;
            cnt--;
        }
    }
    return total;
}

/* One row into the output: with ``stream`` (a large read) and 16-byte aligned, by non-temporal stores that do not
 * read the output's cache lines first nor keep them (a 2048x2048 uint16 plane: 0.85x the CPU time of memmove's
 * copies, 0.90x counting a sum of the output right after; docs/benchmarks.md, session 23); else memmove. */
static void place(void *dst, const void *src, size_t n, int stream) {
#if STREAMS
    if (stream && !(((uintptr_t)dst | (uintptr_t)src | n) & 15)) {
        __m128i *d = dst;
        const __m128i *s = src;
        for (size_t q = 0; q < n / 16; q++) _mm_stream_si128(d + q, _mm_load_si128(s + q));
        return;
    }
#endif
    memmove(dst, src, n);
}

static uint64_t digest(const struct iovec *seg, int64_t m) {
    if (m == 1) return HASH(seg[0].iov_base, seg[0].iov_len);
    XXH3_state_t state;
    XXH3_INITSTATE(&state);
    XXH3_64bits_reset(&state);
    for (int64_t i = 0; i < m; i++) UPDATE(&state, seg[i].iov_base, seg[i].iov_len);
    return XXH3_64bits_digest(&state);
}

/* The arguments both readers take, copied: nothing another thread changes while the GIL is released can move a
 * row out of bounds. */
typedef struct {
    item_t *items;
    unsigned char *heads, *check;
    uint64_t *want;
    Py_ssize_t k, head_len, variants, kinds;
} args_t;

static void free_args(args_t *a) {
    PyMem_Free(a->items);
    PyMem_Free(a->heads);
    PyMem_Free(a->want);
    PyMem_Free(a->check);
}

/* ``a`` filled from the buffers of items, heads, want and check (checked: whole items, heads of `variants` of
 * `head_len` bytes per kind, one want and check per item, kinds in range); -1 with an exception set. */
static int take_args(args_t *a, const Py_buffer *ib, Py_ssize_t head_len, Py_ssize_t variants, const Py_buffer *hb,
                     const Py_buffer *wb, const Py_buffer *cb) {
    a->k = ib->len / (Py_ssize_t)sizeof(item_t);
    a->head_len = head_len;
    a->variants = variants;
    if (ib->len % (Py_ssize_t)sizeof(item_t)) {
        PyErr_SetString(PyExc_ValueError, "items: not a whole number of items (13 int64 each)");
        return -1;
    }
    if (head_len <= 0 || head_len > MAX_HEAD || variants <= 0 || variants > hb->len / head_len ||
        hb->len % (head_len * variants)) {
        PyErr_SetString(PyExc_ValueError, "heads: not kinds of `variants` heads of `head_len` (1..64) bytes");
        return -1;
    }
    a->kinds = hb->len / (head_len * variants);
    if (wb->len != a->k * 8 || cb->len != a->k) {
        PyErr_SetString(PyExc_ValueError, "want (uint64) and check (uint8) must have one entry per item");
        return -1;
    }
    a->items = PyMem_Malloc(ib->len ? (size_t)ib->len : 1);
    a->heads = PyMem_Malloc(hb->len ? (size_t)hb->len : 1);
    a->want = PyMem_Malloc(a->k ? (size_t)a->k * 8 : 1);
    a->check = PyMem_Malloc(a->k ? (size_t)a->k : 1);
    if (!a->items || !a->heads || !a->want || !a->check) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(a->items, ib->buf, (size_t)ib->len);
    memcpy(a->heads, hb->buf, (size_t)hb->len);
    memcpy(a->want, wb->buf, (size_t)a->k * 8);
    memcpy(a->check, cb->buf, (size_t)a->k);
    for (Py_ssize_t i = 0; i < a->k; i++)
        if (a->items[i].f[F_KIND] < 0 || a->items[i].f[F_KIND] >= a->kinds) {
            PyErr_Format(PyExc_ValueError, "item %zd: head kind out of range", i);
            return -1;
        }
    return 0;
}

/* Item ``i`` of ``a``: its page read (head into a stack buffer, value to ``value_at``), the head compared with the
 * usual ones of its kind, XXH3-64 of the value with its digest when checked. OK, SHORT (``*value``: the bytes
 * read), HEAD or MISMATCH (``*value``: the value's digest); -1 with errno set when the read failed. */
static int read_one(int fd, const args_t *a, Py_ssize_t i, char *value_at, uint64_t *value) {
    const item_t *it = &a->items[i];
    unsigned char head[MAX_HEAD];
    struct iovec iov[2] = {{head, (size_t)a->head_len}, {value_at, (size_t)it->f[F_VALUE]}};
    int64_t got = read_all(fd, iov, 2, it->f[F_OFFSET]);
    if (got < 0) return -1;
    if (got < a->head_len + it->f[F_VALUE]) {
        *value = (uint64_t)got;
        return SHORT;
    }
    const unsigned char *usual = a->heads + it->f[F_KIND] * a->head_len * a->variants;
    int found = 0;
    for (Py_ssize_t v = 0; v < a->variants && !found; v++)
        found = !memcmp(head, usual + v * a->head_len, (size_t)a->head_len);
    if (!found) return HEAD;
    if (a->check[i]) {
        uint64_t h = HASH(value_at, (size_t)it->f[F_VALUE]);
        if (h != a->want[i]) {
            *value = h;
            return MISMATCH;
        }
    }
    return OK;
}

/* What read_chunks and read_each return: OSError for ``err`` (an errno), else (items done, status, value). */
static PyObject *outcome(int err, Py_ssize_t i, int status, uint64_t value) {
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return Py_BuildValue("niK", i, status, (unsigned long long)value);
}

static PyObject *read_chunks(PyObject *self, PyObject *args) {
    int fd;
    Py_buffer ib = {0}, hb = {0}, wb = {0}, cb = {0}, ob = {0}, sb = {0};
    PyObject *result = NULL;
    args_t a = {0};
    struct iovec *seg = NULL;
    Py_ssize_t head_len, variants;
    int stream = 0;
    if (!PyArg_ParseTuple(args, "iy*nny*y*y*w*w*|p", &fd, &ib, &head_len, &variants, &hb, &wb, &cb, &ob, &sb,
                          &stream))
        return NULL;
    if (take_args(&a, &ib, head_len, variants, &hb, &wb, &cb) < 0) goto done;
    int64_t most = 1;
    for (Py_ssize_t i = 0; i < a.k; i++) {
        int64_t rows;
        const char *why;
        if (bounds(&a.items[i], ob.len, &rows, &why) < 0) {
            PyErr_Format(PyExc_ValueError, "item %zd: %s", i, why);
            goto done;
        }
        if (rows > most) most = rows;
        if (a.items[i].f[F_VALUE] > sb.len) {
            PyErr_Format(PyExc_ValueError, "item %zd: its value does not fit the scratch buffer", i);
            goto done;
        }
    }
    if ((uint64_t)most >= (uint64_t)PY_SSIZE_T_MAX / (2 * sizeof(struct iovec))) {
        PyErr_NoMemory();
        goto done;
    }
    seg = PyMem_Malloc((size_t)most * sizeof(struct iovec));
    if (!seg) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t i = 0;
    int status = OK, err = 0;
    uint64_t value = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; i < a.k; i++) {
        const item_t *it = &a.items[i];
        int64_t m = segments(it, (char *)ob.buf, seg);
        /* a value that is one run of the output is read straight into it (zeroed again unless it passes); any
         * other into scratch, checked, then placed (a preadv scattering a 256x256 uint16 chunk's rows straight
         * into a plane took twice the time: the kernel's copy per segment of 512 bytes costs more than ours) */
        int direct = m == 1;
        char *value_at = direct ? seg[0].iov_base : sb.buf;
        int got = read_one(fd, &a, i, value_at, &value);
        if (got < 0) err = errno;
        if (got != OK) {
            if (direct) memset(value_at, 0, (size_t)it->f[F_VALUE]);
            if (got > 0) status = got;
            break;
        }
        if (direct) continue;
        const char *src = sb.buf;  /* checked: its rows into their places */
        for (int64_t j = 0; j < m; j++) {
            place(seg[j].iov_base, src, seg[j].iov_len, stream);
            src += seg[j].iov_len;
        }
    }
#if STREAMS
    if (stream) _mm_sfence();  /* the streamed rows are visible before the GIL (and the output) is handed back */
#endif
    Py_END_ALLOW_THREADS
    result = outcome(err, i, status, value);
done:
    free_args(&a);
    PyMem_Free(seg);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&hb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&sb);
    return result;
}

static PyObject *read_each(PyObject *self, PyObject *args) {
    int fd;
    Py_buffer ib = {0}, hb = {0}, wb = {0}, cb = {0};
    PyObject *result = NULL, *outs = NULL, *fast = NULL;
    Py_buffer *ob = NULL;
    Py_ssize_t taken = 0, head_len, variants;
    args_t a = {0};
    if (!PyArg_ParseTuple(args, "iy*nny*y*y*O", &fd, &ib, &head_len, &variants, &hb, &wb, &cb, &outs)) return NULL;
    if (take_args(&a, &ib, head_len, variants, &hb, &wb, &cb) < 0) goto done;
    if (!(fast = PySequence_Fast(outs, "outs: a list or tuple of writable buffers, one per item"))) goto done;
    if (PySequence_Fast_GET_SIZE(fast) != a.k) {
        PyErr_SetString(PyExc_ValueError, "outs: one writable buffer per item");
        goto done;
    }
    if (!(ob = PyMem_Calloc(a.k ? (size_t)a.k : 1, sizeof(Py_buffer)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (; taken < a.k; taken++) {
        PyObject *out = PySequence_Fast_GET_ITEM(fast, taken);
        if (PyObject_GetBuffer(out, &ob[taken], PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) goto done;
    }
    for (Py_ssize_t i = 0; i < a.k; i++) {
        int64_t rows;
        const char *why;
        if (bounds(&a.items[i], ob[i].len, &rows, &why) < 0) {
            PyErr_Format(PyExc_ValueError, "item %zd: %s", i, why);
            goto done;
        }
        if (rows != 1) {
            PyErr_Format(PyExc_ValueError, "item %zd: not one row (read_each reads each value straight)", i);
            goto done;
        }
    }
    Py_ssize_t i = 0;
    int status = OK, err = 0;
    uint64_t value = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; i < a.k; i++) {
        char *value_at = (char *)ob[i].buf + a.items[i].f[F_BASE];
        int got = read_one(fd, &a, i, value_at, &value);
        if (got != OK) {
            if (got < 0) err = errno;
            else status = got;
            memset(value_at, 0, (size_t)a.items[i].f[F_VALUE]);
            break;
        }
    }
    Py_END_ALLOW_THREADS
    result = outcome(err, i, status, value);
done:
    free_args(&a);
    for (Py_ssize_t j = 0; j < taken; j++) PyBuffer_Release(&ob[j]);
    PyMem_Free(ob);
    Py_XDECREF(fast);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&hb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&cb);
    return result;
}

static PyObject *hash_rows(PyObject *self, PyObject *args) {
    Py_buffer ib = {0}, bb = {0};
    PyObject *result = NULL;
    item_t it;
    struct iovec *seg = NULL;
    if (!PyArg_ParseTuple(args, "y*y*", &ib, &bb)) return NULL;
    if (ib.len != (Py_ssize_t)sizeof(item_t)) {
        PyErr_SetString(PyExc_ValueError, "item: not one item (13 int64)");
        goto done;
    }
    memcpy(&it, ib.buf, sizeof it);
    int64_t rows;
    const char *why;
    if (bounds(&it, bb.len, &rows, &why) < 0) {
        PyErr_Format(PyExc_ValueError, "item: %s", why);
        goto done;
    }
    if ((uint64_t)rows >= (uint64_t)PY_SSIZE_T_MAX / sizeof(struct iovec) ||
        !(seg = PyMem_Malloc((size_t)rows * sizeof(struct iovec)))) {
        PyErr_NoMemory();
        goto done;
    }
    uint64_t h;
    Py_BEGIN_ALLOW_THREADS
    h = digest(seg, segments(&it, (char *)bb.buf, seg));
    Py_END_ALLOW_THREADS
    result = PyLong_FromUnsignedLongLong((unsigned long long)h);
done:
    PyMem_Free(seg);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&bb);
    return result;
}

static PyMethodDef methods[] = {
    {"read_chunks", read_chunks, METH_VARARGS,
     "read_chunks(fd, items, head_len, variants, heads, want, check, out, scratch, stream=False) -> (done, status, "
     "value)"},
    {"read_each", read_each, METH_VARARGS,
     "read_each(fd, items, head_len, variants, heads, want, check, outs) -> (done, status, value)"},
    {"hash_rows", hash_rows, METH_VARARGS, "hash_rows(item, buffer) -> XXH3-64 of the item's rows of buffer"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels", NULL, -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "FIELDS", FIELDS) < 0 || PyModule_AddIntConstant(m, "OK", OK) < 0 ||
        PyModule_AddIntConstant(m, "SHORT", SHORT) < 0 || PyModule_AddIntConstant(m, "HEAD", HEAD) < 0 ||
        PyModule_AddIntConstant(m, "MISMATCH", MISMATCH) < 0 || PyModule_AddIntConstant(m, "MAX_HEAD", MAX_HEAD) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
