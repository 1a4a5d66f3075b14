/* pool.c: MaxPool (with its optional indices) and AveragePool on float32, 1-D
 * and 2-D computed as 3-D (win3), in parallel over the N x C planes.
 *
 * 2-D (and 1-D) max and average pooling without indices take the AVX-512
 * kernels (x86/pool_avx512.c) where the CPU has them and the shape fits, else
 * the windows inside the input by a vectorized loop, tap by tap over a row's
 * outputs (3x3 stride-1 averages three taps a pass), and the border output by
 * output; indices and 3-D windows go through the general loop. An average
 * adds its taps in the general loop's order and divides by the row's tap
 * count times the column's (inside the input, or inside its padding with
 * count_include_pad), so every path gives the same bits. A window's first
 * element starts its maximum, so a NaN there stays. MaxUnpool scatters X into
 * a zeroed output at its indices (into the flattened unpooled shape, as
 * MaxPool writes them; a larger output_shape pads at the ends). */
#include "kiln_internal.h"
#include "x86/x86.h"

#include <stdbool.h>

typedef struct {
    win3 w;
    int64_t kind, count_pad, storage_order;
    const float *x;
    float *y;
    int64_t *idx;
} pool_job;

/* 2-D max pooling of one plane, windows entirely inside the input only: rows
 * [oh0, oh1), columns [lo, hi). The first element starts the maximum, as in the
 * general loop (a NaN there stays). */
KILN_CLONES static void max_plane_interior(const win3 *w, const float *x, float *y, int64_t oh0, int64_t oh1, int64_t lo, int64_t hi) {
    int64_t W = w->in[2], OW = w->out[2], KH = w->k[1], KW = w->k[2], sh = w->stride[1], sw = w->stride[2];
    int64_t dh = w->dil[1] * W, dw = w->dil[2];
    for (int64_t oh = oh0; oh < oh1; oh++) { /* tap by tap over the row's outputs: vectorized */
        const float *xr = x + (oh * sh - w->pad[1]) * W - w->pad[2];
        float *yr = y + oh * OW;
        for (int64_t ow = lo; ow < hi; ow++) yr[ow] = xr[ow * sw];
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                const float *q = xr + kh * dh + kw * dw;
                if (sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] = q[ow] > yr[ow] ? q[ow] : yr[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] = q[ow * sw] > yr[ow] ? q[ow * sw] : yr[ow];
            }
    }
}

/* One 2-D max-pool output at the border: the taps inside the input, the
 * first starting the maximum as in the general loop (-inf when none is). */
static float max_border(const win3 *w, const float *x, int64_t oh, int64_t ow) {
    float best = -INFINITY;
    bool any = false;
    for (int64_t kh = 0; kh < w->k[1]; kh++) {
        int64_t ih = oh * w->stride[1] - w->pad[1] + kh * w->dil[1];
        if (ih < 0 || ih >= w->in[1]) continue;
        for (int64_t kw = 0; kw < w->k[2]; kw++) {
            int64_t iw = ow * w->stride[2] - w->pad[2] + kw * w->dil[2];
            if (iw < 0 || iw >= w->in[2]) continue;
            float v = x[ih * w->in[2] + iw];
            if (!any || v > best) best = v;
            any = true;
        }
    }
    return best;
}

/* The taps of output o along one dimension that fall in [lo, hi) (the input,
 * or the input and its padding): the divisor's factor of that dimension. */
static inline int64_t taps_within(int64_t o, int64_t s, int64_t pad, int64_t k, int64_t dil, int64_t lo, int64_t hi) {
    int64_t n = 0;
    for (int64_t t = 0; t < k; t++) {
        int64_t at = o * s - pad + t * dil;
        n += at >= lo && at < hi;
    }
    return n;
}

/* One 2-D average-pool output at the border: the taps inside the input added
 * in the general loop's order, divided by div (0 when div is 0). */
static float avg_border(const win3 *w, const float *x, int64_t oh, int64_t ow, int64_t div) {
    float sum = 0;
    for (int64_t kh = 0; kh < w->k[1]; kh++) {
        int64_t ih = oh * w->stride[1] - w->pad[1] + kh * w->dil[1];
        if (ih < 0 || ih >= w->in[1]) continue;
        for (int64_t kw = 0; kw < w->k[2]; kw++) {
            int64_t iw = ow * w->stride[2] - w->pad[2] + kw * w->dil[2];
            if (iw >= 0 && iw < w->in[2]) sum += x[ih * w->in[2] + iw];
        }
    }
    return div ? sum / (float)div : 0.0f;
}

/* 2-D average pooling of one plane. Each output row sums its rows inside the
 * input: the interior columns [lo, hi) (every column tap inside) tap by tap
 * over the row, in a loop the compiler vectorizes (3x3 stride 1: a row's
 * three taps in one pass), the other columns by avg_border. The divisor is
 * the product of the row's and the column's tap counts (taps_within). */
KILN_CLONES static void avg_plane(const win3 *w, int64_t count_pad, const float *x, float *y, int64_t lo, int64_t hi) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], KH = w->k[1], KW = w->k[2];
    int64_t sh = w->stride[1], sw = w->stride[2], dh = w->dil[1], dw = w->dil[2], ph = w->pad[1], pw = w->pad[2];
    bool k3 = KW == 3 && sw == 1 && dw == 1;
    for (int64_t oh = 0; oh < OH; oh++) {
        float *yr = y + oh * OW;
        int64_t rows = count_pad ? taps_within(oh, sh, ph, KH, dh, -ph, H + w->pad_end[1]) : taps_within(oh, sh, ph, KH, dh, 0, H);
        for (int64_t ow = 0; ow < OW; ow++) {
            if (ow == lo) ow = hi > lo ? hi : lo; /* the interior: below */
            if (ow >= OW) break;
            int64_t cols = count_pad ? taps_within(ow, sw, pw, KW, dw, -pw, W + w->pad_end[2]) : taps_within(ow, sw, pw, KW, dw, 0, W);
            yr[ow] = avg_border(w, x, oh, ow, rows * cols);
        }
        if (lo >= hi) continue;
        for (int64_t ow = lo; ow < hi; ow++) yr[ow] = 0.0f;
        for (int64_t kh = 0; kh < KH; kh++) {
            int64_t ih = oh * sh - ph + kh * dh;
            if (ih < 0 || ih >= H) continue;
            const float *xr = x + ih * W - pw;
            if (k3) {
                for (int64_t ow = lo; ow < hi; ow++) yr[ow] = ((yr[ow] + xr[ow]) + xr[ow + 1]) + xr[ow + 2];
                continue;
            }
            for (int64_t kw = 0; kw < KW; kw++) {
                const float *q = xr + kw * dw;
                if (sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] += q[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] += q[ow * sw];
            }
        }
        int64_t div = rows * KW; /* every column tap inside the input, so inside the padding too */
        if (!div)
            for (int64_t ow = lo; ow < hi; ow++) yr[ow] = 0.0f;
        else {
            float d = (float)div;
            for (int64_t ow = lo; ow < hi; ow++) yr[ow] = yr[ow] / d;
        }
    }
}

static void pool_rows(void *arg, int64_t r0, int64_t r1) {
    const pool_job *j = arg;
    const win3 *w = &j->w;
    int64_t isz = w->in[0] * w->in[1] * w->in[2], osz = w->out[0] * w->out[1] * w->out[2];
    bool plane = !j->idx && w->in[0] == 1 && w->k[0] == 1 && w->out[0] == 1, fast = plane && j->kind == 0;
    int64_t hlo = 0, hhi = 0, wlo = 0, whi = 0;
    if (plane) {
        window_interior(w->in[1], w->out[1], w->k[1], w->stride[1], w->dil[1], w->pad[1], &hlo, &hhi);
        window_interior(w->in[2], w->out[2], w->k[2], w->stride[2], w->dil[2], w->pad[2], &wlo, &whi);
    }
#ifdef HAVE_AVX512_KERNELS
    if (plane && j->kind == 1 && kiln_have_avx512() && kiln_avgpool_avx512(w, j->count_pad, j->x + r0 * isz, j->y + r0 * osz, r1 - r0)) return;
    if (fast && kiln_have_avx512() && kiln_maxpool_avx512(w, j->x + r0 * isz, j->y + r0 * osz, r1 - r0)) return;
#endif
    for (int64_t r = r0; r < r1; r++) { /* r = n * C + c */
        const float *x = j->x + r * isz;
        if (plane && j->kind == 1) {
            avg_plane(w, j->count_pad, x, j->y + r * osz, wlo, whi);
            continue;
        }
        if (fast) {
            float *y = j->y + r * osz;
            max_plane_interior(w, x, y, hlo, hhi, wlo, whi);
            for (int64_t oh = 0; oh < w->out[1]; oh++)
                for (int64_t ow = 0; ow < w->out[2]; ow++) {
                    if (oh >= hlo && oh < hhi && ow == wlo) ow = whi; /* done above */
                    if (ow >= w->out[2]) break;
                    y[oh * w->out[2] + ow] = max_border(w, x, oh, ow);
                }
            continue;
        }
        for (int64_t od = 0; od < w->out[0]; od++)
            for (int64_t oh = 0; oh < w->out[1]; oh++)
                for (int64_t ow = 0; ow < w->out[2]; ow++) {
                    float best = -INFINITY, sum = 0;
                    int64_t best_at = -1, count = 0, padded = 0;
                    int64_t o[3] = {od, oh, ow};
                    for (int64_t kd = 0; kd < w->k[0]; kd++)
                        for (int64_t kh = 0; kh < w->k[1]; kh++)
                            for (int64_t kw = 0; kw < w->k[2]; kw++) {
                                int64_t kk[3] = {kd, kh, kw}, at[3], inside = 1, inpad = 1;
                                for (int i = 0; i < 3; i++) {
                                    at[i] = o[i] * w->stride[i] - w->pad[i] + kk[i] * w->dil[i];
                                    if (at[i] < 0 || at[i] >= w->in[i]) inside = 0;
                                    if (at[i] < -w->pad[i] || at[i] >= w->in[i] + w->pad_end[i]) inpad = 0;
                                }
                                padded += inpad;
                                if (!inside) continue;
                                int64_t off = (at[0] * w->in[1] + at[1]) * w->in[2] + at[2];
                                float v = x[off];
                                count++;
                                sum += v;
                                if (v > best || best_at < 0) {
                                    best = v;
                                    best_at = j->storage_order ? (at[2] * w->in[1] + at[1]) * w->in[0] + at[0] : off;
                                }
                            }
                    int64_t oo = r * osz + (od * w->out[1] + oh) * w->out[2] + ow;
                    if (j->kind == 0) {
                        j->y[oo] = best;
                        if (j->idx) j->idx[oo] = r * isz + best_at;
                    } else {
                        int64_t div = j->count_pad ? padded : count;
                        j->y[oo] = div ? sum / (float)div : 0.0f;
                    }
                }
    }
}

KILN_KERNEL(pool, "out, idx? <- x (f32)", F(kind /* 0 max, 1 avg */) F(nd) F(N) F(C) F(count_include_pad) F(has_idx) F(storage_order) W(w))
int kiln_k_pool(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    const kiln_p_pool *q = KILN_P(pool, p);
    pool_job j;
    j.kind = q->kind;
    j.w.N = q->N;
    j.w.C = q->C;
    j.count_pad = q->count_include_pad;
    j.storage_order = q->storage_order;
    kiln_win3_read(&j.w, q->nd, &q->w);
    j.y = bufs[0];
    j.idx = q->has_idx ? bufs[1] : NULL;
    j.x = bufs[q->has_idx ? 2 : 1];
    kiln_parallel_for(pool, j.w.N * j.w.C, pool_rows, &j);
    return 0;
}

KILN_KERNEL(max_unpool, "out <- x (f32), indices (i64, into the flattened unpooled shape)", F(rank) F(numel_x) A(unpooled, KILN_MAX_RANK) A(out_dims, KILN_MAX_RANK))
int kiln_k_max_unpool(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_max_unpool *q = KILN_P(max_unpool, p);
    int rank = (int)q->rank;
    int64_t nx = q->numel_x, ny = 1, nd = 1;
    const int64_t *def = q->unpooled, *dims = q->out_dims;
    for (int i = 0; i < rank; i++) { ny *= dims[i]; nd *= def[i]; }
    float *y = bufs[0];
    const float *x = bufs[1];
    const int64_t *idx = bufs[2];
    memset(y, 0, sizeof(float) * (size_t)ny);
    for (int64_t i = 0; i < nx; i++) {
        int64_t r = idx[i], o = 0, stride = 1;
        if (r < 0 || r >= nd) continue;
        for (int a = rank - 1; a >= 0; a--) { /* the coordinate in the unpooled shape, placed in the output's */
            o += (r % def[a]) * stride;
            r /= def[a];
            stride *= dims[a];
        }
        y[o] = x[i];
    }
    return 0;
}
