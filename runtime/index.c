/* index.c: the kernels that read or write at indices: Gather, GatherElements,
 * GatherND, ScatterElements and ScatterND (with their none, add or mul
 * reduction), OneHot, TopK, and NonZero and Unique, whose outputs are sized
 * at run time: each such output buffer is sized for the largest result; the
 * kernel writes the result compactly (row-major for the sizes it found) and
 * the sizes into the output's shape buffer, which the generated code copies
 * out with and returns from PREFIX_output_shape. Unique sorts slices
 * lexicographically (stable, so ties keep their first occurrence), as ONNX
 * Runtime does.
 *
 * Indices are int32 or int64 (idx_esize) and count from the end when negative;
 * one still outside its axis fails Gather and GatherElements (KILN_E_INDEX, as
 * ONNX Runtime refuses it), reads as zeros in GatherND and is skipped by the
 * scatters, so that no index, however wrong, addresses outside a buffer.
 * Elements are of any size (esize bytes). TopK sorts each line's indices
 * (kiln_sort_indices, a stable merge sort) and keeps the first k. */
#include "kiln_params.h"

#include <stdbool.h>
#include <string.h>

KILN_KERNEL(gather, "out <- data, idx", F(esize) F(outer) F(axis_len) F(inner) F(n_idx) F(idx_esize))
int kiln_k_gather(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_gather *q = KILN_P(gather, p);
    int64_t esize = q->esize, outer = q->outer, axis_len = q->axis_len, inner = q->inner, n_idx = q->n_idx, idx_esize = q->idx_esize;
    char *out = bufs[0];
    const char *data = bufs[1];
    size_t row = (size_t)(inner * esize);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t ix = idx_esize == 8 ? ((const int64_t *)bufs[2])[j] : ((const int32_t *)bufs[2])[j];
            if (ix < 0) ix += axis_len;
            char *dst = out + (o * n_idx + j) * (int64_t)row;
            if (ix < 0 || ix >= axis_len) return KILN_E_INDEX; /* ONNX: an error, not a value */
            memcpy(dst, data + (o * axis_len + ix) * (int64_t)row, row);
        }
    return 0;
}

KILN_KERNEL(gather_elements, "out <- data, idx", F(esize) F(rank) A(idx_dims, KILN_MAX_RANK) A(data_dims, KILN_MAX_RANK) F(axis) F(idx_esize))
int kiln_k_gather_elements(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_gather_elements *q = KILN_P(gather_elements, p);
    int64_t esize = q->esize, rank = q->rank, axis = q->axis, idx_esize = q->idx_esize;
    const int64_t *idims = q->idx_dims, *ddims = q->data_dims;
    int64_t dstr[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0}, total = 1;
    for (int64_t i = rank - 1, st = 1; i >= 0; i--) { dstr[i] = st; st *= ddims[i]; total *= idims[i]; }
    char *out = bufs[0];
    const char *data = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        int64_t k = idx_esize == 8 ? ((const int64_t *)bufs[2])[n] : ((const int32_t *)bufs[2])[n];
        if (k < 0) k += ddims[axis];
        int64_t off = 0;
        for (int64_t d = 0; d < rank; d++) off += (d == axis ? k : idx[d]) * dstr[d];
        if (k < 0 || k >= ddims[axis]) return KILN_E_INDEX;
        memcpy(out + n * esize, data + off * esize, (size_t)esize);
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++idx[d] < idims[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

/* GatherND with batch_dims folded into `batch`: for each batch and each index
 * tuple (last entries), copy one contiguous slice. */
KILN_KERNEL(gather_nd, "out <- data, idx (i64)", F(esize) F(batch) F(n_idx) F(last) F(slice) A(data_dims, KILN_MAX_RANK) F(data_batch_stride))
int kiln_k_gather_nd(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_gather_nd *q = KILN_P(gather_nd, p);
    int64_t esize = q->esize, batch = q->batch, n_idx = q->n_idx, last = q->last, slice = q->slice, bstride = q->data_batch_stride;
    const int64_t *dd = q->data_dims;
    char *out = bufs[0];
    const char *data = bufs[1];
    const int64_t *idx = bufs[2];
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < n_idx; i++) {
            const int64_t *t = idx + (b * n_idx + i) * last;
            int64_t off = 0;
            bool ok = true;
            for (int64_t k = 0; k < last; k++) {
                int64_t v = t[k] < 0 ? t[k] + dd[k] : t[k];
                if (v < 0 || v >= dd[k]) ok = false;
                off = off * dd[k] + v;
            }
            char *dst = out + (b * n_idx + i) * slice * esize;
            if (!ok) memset(dst, 0, (size_t)(slice * esize));
            else memcpy(dst, data + (b * bstride + off * slice) * esize, (size_t)(slice * esize));
        }
    return 0;
}

static void scatter_put(char *dst, const char *src, int64_t esize, int64_t red) {
    if (red == 0) { memcpy(dst, src, (size_t)esize); return; }
    float a, b;
    memcpy(&a, dst, 4);
    memcpy(&b, src, 4);
    a = red == 1 ? a + b : a * b;
    memcpy(dst, &a, 4);
}

/* ScatterElements (kind 0) and ScatterND (kind 1) on a copy of data. */
KILN_KERNEL(scatter, "out <- data, idx, updates", F(esize) F(kind /* 0 elements, 1 nd */) F(reduction /* 0 none, 1 add, 2 mul; f32 */) F(n_upd) F(axis_or_last)
    F(rank) A(dims, KILN_MAX_RANK) F(idx_esize) A(upd_dims, KILN_MAX_RANK))
int kiln_k_scatter(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_scatter *q = KILN_P(scatter, p);
    int64_t esize = q->esize, kind = q->kind, red = q->reduction, n_upd = q->n_upd, ax = q->axis_or_last, rank = q->rank;
    const int64_t *dims = q->dims, *ud = q->upd_dims;
    int64_t ies = q->idx_esize;
    int64_t str[KILN_MAX_RANK], total = 1;
    for (int64_t i = rank - 1, st = 1; i >= 0; i--) { str[i] = st; st *= dims[i]; total *= dims[i]; }
    char *out = bufs[0];
    if (out != bufs[1]) memcpy(out, bufs[1], (size_t)(total * esize));
    const char *upd = bufs[3];
#define IDX(k) (ies == 8 ? ((const int64_t *)bufs[2])[k] : ((const int32_t *)bufs[2])[k])
    if (kind == 0) {
        int64_t uidx[KILN_MAX_RANK] = {0};
        for (int64_t n = 0; n < n_upd; n++) {
            int64_t v = IDX(n);
            if (v < 0) v += dims[ax];
            if (v >= 0 && v < dims[ax]) {
                int64_t off = 0;
                for (int64_t d = 0; d < rank; d++) off += (d == ax ? v : uidx[d]) * str[d];
                scatter_put(out + off * esize, upd + n * esize, esize, red);
            }
            for (int64_t d = rank - 1; d >= 0; d--) { if (++uidx[d] < ud[d]) break; uidx[d] = 0; }
        }
    } else {
        int64_t last = ax, slice = 1;
        for (int64_t d = last; d < rank; d++) slice *= dims[d];
        for (int64_t n = 0; n < n_upd; n++) {
            int64_t off = 0;
            bool ok = true;
            for (int64_t k = 0; k < last; k++) {
                int64_t v = IDX(n * last + k);
                if (v < 0) v += dims[k];
                if (v < 0 || v >= dims[k]) ok = false;
                off += v * str[k];
            }
            if (!ok) continue;
            for (int64_t e = 0; e < slice; e++) scatter_put(out + (off + e) * esize, upd + (n * slice + e) * esize, esize, red);
        }
    }
#undef IDX
    return 0;
}

KILN_KERNEL(onehot, "out <- idx (f32), values", F(esize) F(outer) F(depth) F(inner))
int kiln_k_onehot(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_onehot *q = KILN_P(onehot, p);
    int64_t esize = q->esize, outer = q->outer, depth = q->depth, inner = q->inner;
    char *out = bufs[0];
    const float *idx = bufs[1];
    const char *vals = bufs[2];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < depth; k++)
            for (int64_t i = 0; i < inner; i++) {
                float f = idx[o * inner + i];
                int64_t v = (int64_t)f;
                if (v < 0) v += depth;
                memcpy(out + ((o * depth + k) * inner + i) * esize, vals + (v == k ? esize : 0), (size_t)esize);
            }
    return 0;
}

/* TopK: per line along the axis, a stable merge sort of the indices by value
 * (largest or smallest first; NaN counts as the largest; equal values keep
 * the lower index first), of which the first k are written: O(len log len)
 * per line. bufs[3]: scratch of 2 x len int64 and len floats. */
typedef struct { const float *v; int64_t largest; } topk_order;

static bool topk_before(int64_t a, int64_t b, const void *c) {
    const topk_order *o = c;
    float x = o->v[a], y = o->v[b];
    bool xn = x != x, yn = y != y;
    if (xn || yn) return xn && !yn ? o->largest != 0 : !xn && yn ? o->largest == 0 : false;
    return o->largest ? x > y : x < y;
}

KILN_KERNEL(topk, "values, indices (i64) <- in (f32), scratch (2 x len int64 + len floats), k (i64), values_shape, indices_shape",
    F(outer) F(len) F(inner) F(k /* -1: read k, clamped to len, and write both outputs' dims: rank, dims */) F(largest) F(sorted) F(axis) F(rank) A(dims, KILN_MAX_RANK))
int kiln_k_topk(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_topk *q = KILN_P(topk, p);
    int64_t outer = q->outer, len = q->len, inner = q->inner, k = q->k;
    float *v = bufs[0];
    int64_t *ix = bufs[1];
    const float *x = bufs[2];
    int64_t *idx = bufs[3], *tmp = idx + len;
    if (k < 0) { /* K given at run time, clamped to the axis: the outputs' dims are written */
        k = *(const int64_t *)bufs[4];
        k = k < 0 ? 0 : k > len ? len : k;
        for (int s = 5; s <= 6; s++)
            for (int64_t r = 0; r < q->rank; r++) ((int64_t *)bufs[s])[r] = r == q->axis ? k : q->dims[r];
    }
    float *line = (float *)(tmp + len);
    topk_order ord = {line, q->largest};
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t t = 0; t < len; t++) { line[t] = x[(o * len + t) * inner + i]; idx[t] = t; }
            kiln_sort_indices(idx, tmp, len, topk_before, &ord);
            for (int64_t j = 0; j < k; j++) {
                ix[(o * k + j) * inner + i] = idx[j];
                v[(o * k + j) * inner + i] = line[idx[j]];
            }
        }
    return 0;
}

/* Element kinds: 0 signed integer, 1 unsigned (and bool), 2 float32, 3 float64. */
static int cmp_elem(const unsigned char *a, const unsigned char *b, int64_t es, int kind) {
    if (kind == 2) { float x, y; memcpy(&x, a, 4); memcpy(&y, b, 4); return x < y ? -1 : x > y; }
    if (kind == 3) { double x, y; memcpy(&x, a, 8); memcpy(&y, b, 8); return x < y ? -1 : x > y; }
    if (kind == 0) {
        int64_t x = es == 1 ? *(const int8_t *)a : es == 2 ? *(const int16_t *)a : es == 4 ? *(const int32_t *)a : *(const int64_t *)a;
        int64_t y = es == 1 ? *(const int8_t *)b : es == 2 ? *(const int16_t *)b : es == 4 ? *(const int32_t *)b : *(const int64_t *)b;
        return x < y ? -1 : x > y;
    }
    uint64_t x = 0, y = 0;
    memcpy(&x, a, (size_t)es);
    memcpy(&y, b, (size_t)es);
    return x < y ? -1 : x > y;
}

static bool nonzero_elem(const unsigned char *e, int64_t es, int kind) {
    if (kind == 2) { float x; memcpy(&x, e, 4); return x != 0; }
    if (kind == 3) { double x; memcpy(&x, e, 8); return x != 0; }
    if (kind == 4) { uint16_t h; memcpy(&h, e, 2); return (h & 0x7fff) != 0; } /* float16 / bfloat16 */
    for (int64_t i = 0; i < es; i++) if (e[i]) return true;
    return false;
}

KILN_KERNEL(nonzero, "out (i64 [rank, count]), shape (i64[2]: the sizes written) <- x",
    F(rank) F(numel) F(esize) F(kind /* 0 int, 1 unsigned/bool, 2 f32, 3 f64, 4 f16/bf16 */) A(dims, KILN_MAX_RANK))
int kiln_k_nonzero(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    const kiln_p_nonzero *q = KILN_P(nonzero, p);
    int64_t rank = q->rank, numel = q->numel, es = q->esize, kind = q->kind, cnt = 0;
    const int64_t *dims = q->dims;
    int64_t *out = b[0], *shape = b[1];
    const unsigned char *x = b[2];
    for (int64_t i = 0; i < numel; i++) cnt += nonzero_elem(x + i * es, es, (int)kind);
    shape[0] = rank;
    shape[1] = cnt;
    int64_t j = 0;
    for (int64_t i = 0; i < numel; i++) {
        if (!nonzero_elem(x + i * es, es, (int)kind)) continue;
        for (int64_t r = rank - 1, rem = i; r >= 0; r--) {
            out[r * cnt + j] = rem % dims[r];
            rem /= dims[r];
        }
        j++;
    }
    return 0;
}

typedef struct { const unsigned char *x; int64_t outer, len, inner, es; int kind; } slices;

/* slice i (x[o, i, :] for every o) against slice j */
static int cmp_slice(const slices *s, int64_t i, int64_t j) {
    for (int64_t o = 0; o < s->outer; o++)
        for (int64_t k = 0; k < s->inner; k++) {
            int c = cmp_elem(s->x + ((o * s->len + i) * s->inner + k) * s->es, s->x + ((o * s->len + j) * s->inner + k) * s->es, s->es, s->kind);
            if (c) return c;
        }
    return 0;
}

static bool slice_before(int64_t a, int64_t b, const void *c) { return cmp_slice(c, a, b) < 0; }

KILN_KERNEL(unique, "y, y_shape, indices, indices_shape, inverse, counts, counts_shape <- x, scratch (4 x len int64)",
    F(outer) F(len) F(inner) F(esize) F(kind /* 0 int, 1 unsigned/bool, 2 f32, 3 f64 */) F(sorted) F(axis) F(rank) A(dims, KILN_MAX_RANK))
int kiln_k_unique(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    const kiln_p_unique *q = KILN_P(unique, p);
    slices s = {b[7], q->outer, q->len, q->inner, q->esize, (int)q->kind};
    int sorted = (int)q->sorted;
    int64_t len = s.len, *y_shape = b[1], *indices = b[2], *idx_shape = b[3], *inverse = b[4], *counts = b[5], *cnt_shape = b[6];
    int64_t *order = b[8], *tmp = order + len, *group = tmp + len, *uid = group + len;
    for (int64_t i = 0; i < len; i++) order[i] = i;
    kiln_sort_indices(order, tmp, len, slice_before, &s);
    int64_t k = 0; /* groups of equal slices, in sorted order; group's first index = its first member */
    for (int64_t i = 0; i < len; i++) {
        if (i == 0 || cmp_slice(&s, order[i - 1], order[i]) != 0) tmp[k++] = order[i];
        group[order[i]] = k - 1;
    }
    /* the unique slices' order: sorted, or by first occurrence */
    for (int64_t g = 0; g < k; g++) uid[g] = g;
    if (!sorted) {
        int64_t u = 0;
        for (int64_t i = 0; i < len; i++) order[i] = -1;
        for (int64_t g = 0; g < k; g++) order[tmp[g]] = g; /* order: reused, first index -> group */
        for (int64_t i = 0; i < len; i++) if (order[i] >= 0) uid[order[i]] = u++;
    }
    for (int64_t g = 0; g < k; g++) { indices[uid[g]] = tmp[g]; counts[uid[g]] = 0; }
    for (int64_t i = 0; i < len; i++) { inverse[i] = uid[group[i]]; counts[inverse[i]]++; }
    unsigned char *y = b[0];
    size_t row = (size_t)(s.inner * s.es);
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t u = 0; u < k; u++) memcpy(y + (o * k + u) * row, s.x + (o * len + indices[u]) * row, row);
    for (int64_t r = 0; r < q->rank; r++) y_shape[r] = r == q->axis ? k : q->dims[r];
    idx_shape[0] = cnt_shape[0] = k;
    return 0;
}
