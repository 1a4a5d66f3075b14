/* pool.c: MaxPool (with its optional indices) and AveragePool on float32, 1-D
 * and 2-D computed as 3-D (win3), in parallel over the N x C planes.
 *
 * 2-D max pooling without indices takes the AVX-512 kernel
 * (x86/pool_avx512.c) where the CPU has it and the shape fits, else the
 * windows inside the input by a vectorized loop, tap by tap over a row's
 * outputs, and the border output by output; indices, averages and 3-D windows
 * go through the general loop. A window's first element starts its maximum,
 * so a NaN there stays. MaxUnpool scatters X into a zeroed output at its
 * indices (into the flattened unpooled shape, as MaxPool writes them; a larger
 * output_shape pads at the ends). */
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

static void pool_rows(void *arg, int64_t r0, int64_t r1) {
    const pool_job *j = arg;
    const win3 *w = &j->w;
    int64_t isz = w->in[0] * w->in[1] * w->in[2], osz = w->out[0] * w->out[1] * w->out[2];
    bool fast = j->kind == 0 && !j->idx && w->in[0] == 1 && w->k[0] == 1 && w->out[0] == 1;
    int64_t hlo = 0, hhi = 0, wlo = 0, whi = 0;
    if (fast) {
        window_interior(w->in[1], w->out[1], w->k[1], w->stride[1], w->dil[1], w->pad[1], &hlo, &hhi);
        window_interior(w->in[2], w->out[2], w->k[2], w->stride[2], w->dil[2], w->pad[2], &wlo, &whi);
    }
    for (int64_t r = r0; r < r1; r++) { /* r = n * C + c */
        const float *x = j->x + r * isz;
        if (fast) {
            float *y = j->y + r * osz;
#ifdef HAVE_AVX512_KERNELS
            if (kiln_have_avx512() && kiln_maxpool_avx512(w, x, y)) continue;
#endif
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
