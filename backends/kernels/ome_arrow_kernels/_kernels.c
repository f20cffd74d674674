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

static PyObject *read_chunks(PyObject *self, PyObject *args) {
    int fd;
    Py_buffer ib = {0}, hb = {0}, wb = {0}, cb = {0}, ob = {0}, sb = {0};
    PyObject *result = NULL;
    item_t *items = NULL;
    unsigned char *heads = NULL, *check = NULL;
    uint64_t *want = NULL;
    struct iovec *seg = NULL, *iov = NULL;
    Py_ssize_t head_len, variants;
    int stream = 0;
    if (!PyArg_ParseTuple(args, "iy*nny*y*y*w*w*|p", &fd, &ib, &head_len, &variants, &hb, &wb, &cb, &ob, &sb,
                          &stream))
        return NULL;
    Py_ssize_t k = ib.len / (Py_ssize_t)sizeof(item_t), kinds = 0;
    if (ib.len % (Py_ssize_t)sizeof(item_t)) {
        PyErr_SetString(PyExc_ValueError, "items: not a whole number of items (13 int64 each)");
        goto done;
    }
    if (head_len <= 0 || head_len > MAX_HEAD || variants <= 0 || variants > hb.len / head_len ||
        hb.len % (head_len * variants)) {
        PyErr_SetString(PyExc_ValueError, "heads: not kinds of `variants` heads of `head_len` (1..64) bytes");
        goto done;
    }
    kinds = hb.len / (head_len * variants);
    if (wb.len != k * 8 || cb.len != k) {
        PyErr_SetString(PyExc_ValueError, "want (uint64) and check (uint8) must have one entry per item");
        goto done;
    }
    /* copies: nothing another thread changes while the GIL is released can move a row out of bounds */
    items = PyMem_Malloc(ib.len ? (size_t)ib.len : 1);
    heads = PyMem_Malloc(hb.len ? (size_t)hb.len : 1);
    want = PyMem_Malloc(k ? (size_t)k * 8 : 1);
    check = PyMem_Malloc(k ? (size_t)k : 1);
    if (!items || !heads || !want || !check) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(items, ib.buf, (size_t)ib.len);
    memcpy(heads, hb.buf, (size_t)hb.len);
    memcpy(want, wb.buf, (size_t)k * 8);
    memcpy(check, cb.buf, (size_t)k);
    int64_t most = 1;
    for (Py_ssize_t i = 0; i < k; i++) {
        int64_t rows;
        const char *why;
        if (bounds(&items[i], ob.len, &rows, &why) < 0) {
            PyErr_Format(PyExc_ValueError, "item %zd: %s", i, why);
            goto done;
        }
        if (items[i].f[F_KIND] < 0 || items[i].f[F_KIND] >= kinds) {
            PyErr_Format(PyExc_ValueError, "item %zd: head kind out of range", i);
            goto done;
        }
        if (rows > most) most = rows;
        if (items[i].f[F_VALUE] > sb.len) {
            PyErr_Format(PyExc_ValueError, "item %zd: its value does not fit the scratch buffer", i);
            goto done;
        }
    }
    if ((uint64_t)most >= (uint64_t)PY_SSIZE_T_MAX / (2 * sizeof(struct iovec))) {
        PyErr_NoMemory();
        goto done;
    }
    seg = PyMem_Malloc((size_t)most * sizeof(struct iovec));
    iov = PyMem_Malloc(2 * sizeof(struct iovec));
    if (!seg || !iov) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t i = 0;
    int status = OK, err = 0;
    uint64_t value = 0;
    Py_BEGIN_ALLOW_THREADS
    unsigned char head[MAX_HEAD];
    for (; i < k; i++) {
        const item_t *it = &items[i];
        int64_t m = segments(it, (char *)ob.buf, seg);
        iov[0].iov_base = head;
        iov[0].iov_len = (size_t)head_len;
        /* a value that is one run of the output is read straight into it (zeroed again unless it passes) */
        int direct = m == 1;
        char *value_at = direct ? seg[0].iov_base : sb.buf;
        iov[1].iov_base = value_at;
        iov[1].iov_len = (size_t)it->f[F_VALUE];
        int64_t got = read_all(fd, iov, 2, it->f[F_OFFSET]);
        if (got < 0) {
            err = errno;
            if (direct) memset(value_at, 0, (size_t)it->f[F_VALUE]);
            break;
        }
        if (got < head_len + it->f[F_VALUE]) {
            status = SHORT;
            value = (uint64_t)got;
            if (direct) memset(value_at, 0, (size_t)it->f[F_VALUE]);
            break;
        }
        const unsigned char *usual = heads + it->f[F_KIND] * head_len * variants;
        int found = 0;
        for (Py_ssize_t v = 0; v < variants && !found; v++)
            found = !memcmp(head, usual + v * head_len, (size_t)head_len);
        if (!found) {
            status = HEAD;
            if (direct) memset(value_at, 0, (size_t)it->f[F_VALUE]);
            break;
        }
        if (check[i]) {
            uint64_t h = HASH(value_at, (size_t)it->f[F_VALUE]);
            if (h != want[i]) {
                status = MISMATCH;
                value = h;
                if (direct) memset(value_at, 0, (size_t)it->f[F_VALUE]);
                break;
            }
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
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    result = Py_BuildValue("niK", i, status, (unsigned long long)value);
done:
    PyMem_Free(items);
    PyMem_Free(heads);
    PyMem_Free(want);
    PyMem_Free(check);
    PyMem_Free(seg);
    PyMem_Free(iov);
    PyBuffer_Release(&ib);
    PyBuffer_Release(&hb);
    PyBuffer_Release(&wb);
    PyBuffer_Release(&cb);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&sb);
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
