/* movement.c: the kernels that move elements without computing on them: Copy,
 * Transpose (also DepthToSpace and SpaceToDepth, lowered as 6-D transposes),
 * Concat, Split, Slice, Pad (constant, reflect, edge), Tile and
 * ReverseSequence.
 *
 * Each reads its constant parameters from p (its kiln_p_NAME struct) and its
 * buffers from bufs (outputs first), and works on any element size (esize
 * bytes). A transpose moves the trailing dimensions it keeps in place as one
 * run, and goes in 16 x 16 tiles when the last dimension moves; the other
 * kernels walk the output in order, stepping the input offset like an
 * odometer, or copy whole contiguous runs. */
#include "kiln_params.h"

#include <stdbool.h>
#include <string.h>

static void copy_elem(char *dst, const char *src, int64_t esize) {
    switch (esize) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, (size_t)esize);
    }
}

KILN_KERNEL(copy, "out <- in", F(nbytes))
int kiln_k_copy(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_copy *q = KILN_P(copy, p);
    if (q->nbytes > 0 && bufs[0] != bufs[1]) memmove(bufs[0], bufs[1], (size_t)q->nbytes);
    return 0;
}

/* A transpose that moves the last dimension: output dimension c reads the
 * input's last (stride 1), the output's last (stride 1) reads input stride sr.
 * For each index of the other dimensions, the [odims[c] x odims[last]] plane is
 * copied in 16 x 16 tiles, so that both sides are read and written a cache
 * line at a time. */
static bool transpose_tiled(char *out, const char *in, int64_t esize, int64_t rank, const int64_t *odims, const int64_t *ostr,
                            const int64_t *perm) {
    int64_t c = -1, last = rank - 1;
    for (int64_t i = 0; i < rank; i++) if (perm[i] == rank - 1) c = i;
    if (c < 0 || c == last || (esize != 4 && esize != 1 && esize != 2 && esize != 8)) return false;
    int64_t ocs = 1; /* output stride of dimension c */
    for (int64_t i = c + 1; i < rank; i++) ocs *= odims[i];
    int64_t sr = ostr[last], A = odims[c], B = odims[last];
    int64_t idx[KILN_MAX_RANK] = {0}, planes = 1, ooff[KILN_MAX_RANK];
    for (int64_t i = rank - 1, st = 1; i >= 0; i--) { ooff[i] = st; st *= odims[i]; }
    for (int64_t i = 0; i < rank; i++) if (i != c && i != last) planes *= odims[i];
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t ib = 0, ob = 0;
        for (int64_t i = 0; i < rank; i++) if (i != c && i != last) { ib += idx[i] * ostr[i]; ob += idx[i] * ooff[i]; }
        for (int64_t a0 = 0; a0 < A; a0 += 16)
            for (int64_t b0 = 0; b0 < B; b0 += 16) {
                int64_t a1 = a0 + 16 < A ? a0 + 16 : A, b1 = b0 + 16 < B ? b0 + 16 : B;
                for (int64_t a = a0; a < a1; a++)
                    for (int64_t b = b0; b < b1; b++) {
                        int64_t o = ob + a * ocs + b, i = ib + a + b * sr;
                        switch (esize) {
                        case 4: ((uint32_t *)(void *)out)[o] = ((const uint32_t *)(const void *)in)[i]; break;
                        case 8: ((uint64_t *)(void *)out)[o] = ((const uint64_t *)(const void *)in)[i]; break;
                        case 2: ((uint16_t *)(void *)out)[o] = ((const uint16_t *)(const void *)in)[i]; break;
                        default: out[o] = in[i];
                        }
                    }
            }
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (d == c || d == last) continue;
            if (++idx[d] < odims[d]) break;
            idx[d] = 0;
        }
    }
    return true;
}

KILN_KERNEL(transpose, "out <- in", F(esize) F(rank) A(in_dims, KILN_MAX_RANK) A(perm, KILN_MAX_RANK))
int kiln_k_transpose(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    char *out = bufs[0];
    const char *in = bufs[1];
    const kiln_p_transpose *q = KILN_P(transpose, p);
    int64_t esize = q->esize, rank = q->rank;
    const int64_t *dims = q->in_dims, *perm = q->perm;
    int64_t in_stride[KILN_MAX_RANK], odims[KILN_MAX_RANK], ostr[KILN_MAX_RANK], idx[KILN_MAX_RANK];
    int64_t total = 1;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { in_stride[i] = s; s *= dims[i]; }
    for (int64_t i = 0; i < rank; i++) { odims[i] = dims[perm[i]]; ostr[i] = in_stride[perm[i]]; idx[i] = 0; total *= odims[i]; }
    if (total == 0) return 0;
    /* trailing dimensions the permutation keeps in place move as one run (one
     * element when the last dimension moves) */
    int64_t keep = rank, run = 1;
    while (keep > 0 && perm[keep - 1] == keep - 1) run *= dims[--keep];
    if (run == 1 && rank >= 2 && transpose_tiled(out, in, esize, rank, odims, ostr, perm)) return 0;
    int64_t off = 0, bytes = run * esize;
    for (int64_t n = 0; n < total / run; n++) {
        if (run == 1) copy_elem(out + n * esize, in + off * esize, esize);
        else memcpy(out + n * bytes, in + off * esize, (size_t)bytes);
        for (int64_t d = keep - 1; d >= 0; d--) {
            if (++idx[d] < odims[d]) { off += ostr[d]; break; }
            off -= ostr[d] * (odims[d] - 1);
            idx[d] = 0;
        }
    }
    return 0;
}

KILN_KERNEL(concat, "out <- in0..in{n-1}", F(esize) F(outer) F(inner) F(n) T(len /* [n] */))
int kiln_k_concat(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_concat *q = KILN_P(concat, p);
    int64_t esize = q->esize, outer = q->outer, inner = q->inner, n = q->n;
    const int64_t *len = q->len;
    int64_t total = 0;
    for (int64_t k = 0; k < n; k++) total += len[k];
    char *out = bufs[0];
    for (int64_t o = 0; o < outer; o++) {
        int64_t at = 0;
        for (int64_t k = 0; k < n; k++) {
            size_t bytes = (size_t)(len[k] * inner * esize);
            memcpy(out + (o * total + at) * inner * esize, (const char *)bufs[1 + k] + o * bytes, bytes);
            at += len[k];
        }
    }
    return 0;
}

KILN_KERNEL(split, "out0..out{n-1} <- in", F(esize) F(outer) F(inner) F(n) T(len /* [n] */))
int kiln_k_split(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_split *q = KILN_P(split, p);
    int64_t esize = q->esize, outer = q->outer, inner = q->inner, n = q->n;
    const int64_t *len = q->len;
    int64_t total = 0;
    for (int64_t k = 0; k < n; k++) total += len[k];
    const char *in = bufs[n];
    for (int64_t o = 0; o < outer; o++) {
        int64_t at = 0;
        for (int64_t k = 0; k < n; k++) {
            size_t bytes = (size_t)(len[k] * inner * esize);
            memcpy((char *)bufs[k] + o * bytes, in + (o * total + at) * inner * esize, bytes);
            at += len[k];
        }
    }
    return 0;
}

KILN_KERNEL(slice, "out <- in", F(esize) F(rank) A(in_dims, KILN_MAX_RANK) A(out_dims, KILN_MAX_RANK) A(starts, KILN_MAX_RANK) A(steps, KILN_MAX_RANK))
int kiln_k_slice(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_slice *q = KILN_P(slice, p);
    int64_t esize = q->esize, rank = q->rank;
    const int64_t *in_dims = q->in_dims, *out_dims = q->out_dims, *starts = q->starts, *steps = q->steps;
    int64_t in_stride[KILN_MAX_RANK], idx[KILN_MAX_RANK], total = 1, off = 0;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { in_stride[i] = s; s *= in_dims[i]; }
    for (int64_t i = 0; i < rank; i++) { idx[i] = 0; total *= out_dims[i]; off += starts[i] * in_stride[i]; }
    char *out = bufs[0];
    const char *in = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        copy_elem(out + n * esize, in + off * esize, esize);
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++idx[d] < out_dims[d]) { off += steps[d] * in_stride[d]; break; }
            off -= steps[d] * in_stride[d] * (out_dims[d] - 1);
            idx[d] = 0;
        }
    }
    return 0;
}

/* Pad works row by row. The "inner axis" is the last axis that is padded (or
 * cropped); the axes after it are kept whole and move as one unit of `ub`
 * bytes per inner index. Each output row along the inner axis is a left pad,
 * a contiguous interior copied with one memcpy, and a right pad; rows whose
 * outer index lies in a constant pad are filled whole. Rows are split across
 * threads for large tensors. */
typedef struct {
    char *out;
    const char *in;
    const char *val;   /* the constant's esize bytes; NULL when they are all zero */
    int64_t esize, mode, dp, block, ub, W, p0, L, lo, hi;
    const int64_t *in_dims, *out_dims, *pb;
    int64_t istr[KILN_MAX_RANK];
} pad_job;

/* The input index that output index o of an axis (pads_begin b, length len > 0)
 * reads, or -1 where a constant pad is written. */
static int64_t pad_src(int64_t o, int64_t b, int64_t len, int64_t mode) {
    int64_t i = o - b;
    if (i >= 0 && i < len) return i;
    if (mode == 0) return -1;
    if (mode == 2) return i < 0 ? 0 : len - 1;
    int64_t period = 2 * (len - 1);
    if (period == 0) return 0;
    i = ((i % period) + period) % period;
    return i >= len ? period - i : i;
}

/* Writes n elements of esize bytes, each val (zeros when val is NULL). */
static void pad_fill(char *dst, int64_t n, const char *val, int64_t esize) {
    if (n <= 0) return;
    if (!val) { memset(dst, 0, (size_t)(n * esize)); return; }
    switch (esize) {
    case 1: memset(dst, (unsigned char)val[0], (size_t)n); return;
    case 2: { uint16_t v; memcpy(&v, val, 2); for (int64_t k = 0; k < n; k++) memcpy(dst + 2 * k, &v, 2); return; }
    case 4: { uint32_t v; memcpy(&v, val, 4); for (int64_t k = 0; k < n; k++) memcpy(dst + 4 * k, &v, 4); return; }
    case 8: { uint64_t v; memcpy(&v, val, 8); for (int64_t k = 0; k < n; k++) memcpy(dst + 8 * k, &v, 8); return; }
    default: {
        /* one element, then double the filled prefix */
        int64_t total = n * esize, have = esize;
        memcpy(dst, val, (size_t)esize);
        while (have < total) {
            int64_t c = have < total - have ? have : total - have;
            memcpy(dst + have, dst, (size_t)c);
            have += c;
        }
    }
    }
}

/* The reflect/edge pad positions [o0, o1) of one row: each reads its mapped
 * input unit of the source row s. */
static void pad_copy_mapped(const pad_job *j, char *dst, const char *s, int64_t o0, int64_t o1) {
    int64_t ub = j->ub;
    for (int64_t o = o0; o < o1; o++) {
        const char *from = s + pad_src(o, j->p0, j->L, j->mode) * ub;
        switch (ub) {
        case 4: memcpy(dst + o * 4, from, 4); break;
        case 8: memcpy(dst + o * 8, from, 8); break;
        default: memcpy(dst + o * ub, from, (size_t)ub);
        }
    }
}

static void pad_rows(void *arg, int64_t r0, int64_t r1) {
    const pad_job *j = arg;
    int64_t dp = j->dp, ub = j->ub, W = j->W, lo = j->lo, hi = j->hi, rb = W * ub;
    int64_t idx[KILN_MAX_RANK] = {0};
    for (int64_t d = dp - 1, r = r0; d >= 0; d--) { idx[d] = r % j->out_dims[d]; r /= j->out_dims[d]; }
    for (int64_t r = r0; r < r1; r++) {
        char *dst = j->out + r * rb;
        int64_t off = 0;
        bool inside = true;
        for (int64_t d = 0; d < dp; d++) {
            int64_t i = pad_src(idx[d], j->pb[d], j->in_dims[d], j->mode);
            if (i < 0) { inside = false; break; }
            off += i * j->istr[d];
        }
        if (!inside) pad_fill(dst, W * j->block, j->val, j->esize);
        else {
            const char *s = j->in + off * j->esize;
            if (j->mode == 0) {
                pad_fill(dst, lo * j->block, j->val, j->esize);
                pad_fill(dst + hi * ub, (W - hi) * j->block, j->val, j->esize);
            } else {
                pad_copy_mapped(j, dst, s, 0, lo);
                pad_copy_mapped(j, dst, s, hi, W);
            }
            if (hi > lo) memcpy(dst + lo * ub, s + (lo - j->p0) * ub, (size_t)((hi - lo) * ub));
        }
        for (int64_t d = dp - 1; d >= 0; d--) {
            if (++idx[d] < j->out_dims[d]) break;
            idx[d] = 0;
        }
    }
}

KILN_KERNEL(pad, "out <- in, value?", F(esize) F(rank) A(in_dims, KILN_MAX_RANK) A(out_dims, KILN_MAX_RANK) A(pads_begin, KILN_MAX_RANK)
    F(mode /* 0 constant, 1 reflect, 2 edge */) F(has_value))
int kiln_k_pad(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    const kiln_p_pad *q = KILN_P(pad, p);
    int64_t esize = q->esize, rank = q->rank;
    const int64_t *in_dims = q->in_dims, *out_dims = q->out_dims, *pb = q->pads_begin;
    pad_job j = {.out = bufs[0], .in = bufs[1], .esize = esize, .mode = q->mode, .in_dims = in_dims, .out_dims = out_dims, .pb = pb};
    int64_t total = 1;
    bool empty_in = false;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) {
        j.istr[i] = s;
        s *= in_dims[i];
        total *= out_dims[i];
        if (in_dims[i] == 0) empty_in = true;
    }
    if (total == 0) return 0;
    /* the constant; every mode writes it when the input is empty */
    if (q->has_value) {
        const char *v = bufs[2];
        for (int64_t k = 0; k < esize; k++) if (v[k]) { j.val = v; break; }
    }
    if (empty_in) { pad_fill(j.out, total, j.val, esize); return 0; }
    /* the inner axis: the last one padded or cropped; none is a plain copy */
    int64_t dp = rank - 1, block = 1;
    while (dp >= 0 && pb[dp] == 0 && out_dims[dp] == in_dims[dp]) block *= in_dims[dp--];
    if (dp < 0) { memcpy(j.out, j.in, (size_t)(total * esize)); return 0; }
    j.dp = dp;
    j.block = block;
    j.ub = block * esize;
    j.W = out_dims[dp];
    j.L = in_dims[dp];
    j.p0 = pb[dp];
    /* the interior [lo, hi) of a row reads input units lo - p0 .. hi - p0 */
    j.lo = j.p0 < 0 ? 0 : j.p0 > j.W ? j.W : j.p0;
    j.hi = j.p0 + j.L < j.lo ? j.lo : j.p0 + j.L > j.W ? j.W : j.p0 + j.L;
    int64_t rows = total / (j.W * block);
    kiln_parallel_for(rows > 1 && total * esize >= 131072 ? pool : NULL, rows, pad_rows, &j);
    return 0;
}

KILN_KERNEL(tile, "out <- in", F(esize) F(rank) A(in_dims, KILN_MAX_RANK) A(out_dims, KILN_MAX_RANK))
int kiln_k_tile(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_tile *q = KILN_P(tile, p);
    int64_t esize = q->esize, rank = q->rank;
    const int64_t *in_dims = q->in_dims, *out_dims = q->out_dims;
    int64_t istr[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0}, total = 1;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { istr[i] = s; s *= in_dims[i]; total *= out_dims[i]; }
    char *out = bufs[0];
    const char *in = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        int64_t off = 0;
        for (int64_t d = 0; d < rank; d++) off += (idx[d] % in_dims[d]) * istr[d];
        memcpy(out + n * esize, in + off * esize, (size_t)esize);
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++idx[d] < out_dims[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

KILN_KERNEL(reverse_sequence, "out <- x, lens (i64)", F(esize) F(batch_axis) F(d0) F(d1) F(inner))
int kiln_k_reverse_sequence(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_reverse_sequence *q = KILN_P(reverse_sequence, p);
    int64_t es = q->esize, batch_axis = q->batch_axis, d0 = q->d0, d1 = q->d1, inner = q->inner;
    const unsigned char *x = bufs[1];
    const int64_t *lens = bufs[2];
    unsigned char *y = bufs[0];
    int64_t B = batch_axis == 0 ? d0 : d1, T = batch_axis == 0 ? d1 : d0;
    for (int64_t b = 0; b < B; b++) {
        int64_t len = lens[b] < 0 ? 0 : lens[b] > T ? T : lens[b];
        for (int64_t t = 0; t < T; t++) {
            int64_t src = t < len ? len - 1 - t : t;
            int64_t to = batch_axis == 0 ? b * T + t : t * B + b, from = batch_axis == 0 ? b * T + src : src * B + b;
            memcpy(y + to * inner * es, x + from * inner * es, (size_t)(inner * es));
        }
    }
    return 0;
}
