/* resize.c: the resampling kernels on float32: Resize (and Upsample), nearest,
 * linear or cubic with every coordinate transformation of the ONNX definition,
 * and GridSample (bilinear, nearest or bicubic, with zeros, border or
 * reflection padding), which follows PyTorch's grid_sample as ONNX does.
 * Resize maps each output coordinate back to the input per dimension and sums
 * the product of the dimensions' taps, in double. */
#include "kiln_internal.h"

#include <stdbool.h>

/* Resize, separable: per dimension each output coordinate maps back to an
 * input coordinate (coord: 0 half_pixel, 1 pytorch_half_pixel, 2 align_corners,
 * 3 asymmetric, 4 tf_half_pixel_for_nn, 5 tf_crop_and_resize) and reads 1
 * (nearest), 2 (linear) or 4 (cubic) taps; the output is the weighted sum over
 * the product of every dimension's taps. */
static bool resize_taps(const kiln_p_resize *q, int64_t d, int64_t x, int64_t *idx, double *w, int *nt) {
    int64_t mode = q->mode, coord = q->coord, nmode = q->nearest_mode, excl = q->exclude_outside;
    double A = kiln_p2d(q->cubic_a);
    double scale = kiln_p2d(q->scales[d]), rs = kiln_p2d(q->roi_start[d]), re = kiln_p2d(q->roi_end[d]);
    int64_t in = q->in[d], out = q->out[d];
    double xo;
    switch (coord) {
    case 1: xo = out > 1 ? (x + 0.5) / scale - 0.5 : 0; break;
    case 2: { /* the resized length is in * scale, unrounded, as the ONNX reference has it */
        double lr = (double)in * scale;
        xo = (out == 1 || lr <= 1) ? 0 : (double)x * (double)(in - 1) / (lr - 1);
        break;
    }
    case 3: xo = x / scale; break;
    case 4: xo = (x + 0.5) / scale; break;
    case 5:
        xo = out > 1 ? rs * (in - 1) + x * (re - rs) * (in - 1) / (double)(out - 1) : 0.5 * (rs + re) * (in - 1);
        if (xo < 0 || xo > in - 1) return false;
        break;
    default: xo = (x + 0.5) / scale - 0.5;
    }
    if (mode == 0) {
        double r;
        if (nmode == 2) r = floor(xo);
        else if (nmode == 3) r = ceil(xo);
        else if (nmode == 1) r = (xo - floor(xo) == 0.5) ? ceil(xo) : round(xo); /* round_prefer_ceil */
        else r = (xo - floor(xo) == 0.5) ? floor(xo) : round(xo);             /* round_prefer_floor */
        int64_t i = (int64_t)r;
        idx[0] = i < 0 ? 0 : (i >= in ? in - 1 : i);
        w[0] = 1;
        *nt = 1;
    } else if (mode == 1) {
        double c = xo < 0 ? 0 : (xo > in - 1 ? in - 1 : xo);
        int64_t i0 = (int64_t)floor(c);
        idx[0] = i0;
        idx[1] = i0 + 1 < in ? i0 + 1 : in - 1;
        w[1] = c - i0;
        w[0] = 1 - w[1];
        *nt = 2;
    } else {
        int64_t i = (int64_t)floor(xo);
        double t = xo - i, sum = 0;
        double tt[4] = {t + 1, t, 1 - t, 2 - t};
        for (int k = 0; k < 4; k++) {
            double u = tt[k];
            w[k] = (k == 0 || k == 3) ? ((A * u - 5 * A) * u + 8 * A) * u - 4 * A : ((A + 2) * u - (A + 3)) * u * u + 1;
            int64_t j = i - 1 + k;
            if (excl && (j < 0 || j >= in)) w[k] = 0;
            idx[k] = j < 0 ? 0 : (j >= in ? in - 1 : j);
            sum += w[k];
        }
        if (excl && sum != 0) for (int k = 0; k < 4; k++) w[k] /= sum;
        *nt = 4;
    }
    return true;
}

KILN_KERNEL(resize, "out <- in (f32)", F(rank) A(in, KILN_MAX_RANK) A(out, KILN_MAX_RANK) F(mode /* 0 nearest, 1 linear, 2 cubic */) F(coord) F(nearest_mode)
    F(exclude_outside) D(cubic_a) D(extrapolation) A(scales, KILN_MAX_RANK /* doubles */) A(roi_start, KILN_MAX_RANK /* doubles */) A(roi_end, KILN_MAX_RANK /* doubles */))
int kiln_k_resize(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_resize *q = KILN_P(resize, p);
    int64_t rank = q->rank;
    const int64_t *in_d = q->in, *out_d = q->out;
    float extrap = (float)kiln_p2d(q->extrapolation);
    int64_t istr[KILN_MAX_RANK], oidx[KILN_MAX_RANK] = {0}, total = 1;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { istr[i] = s; s *= in_d[i]; total *= out_d[i]; }
    float *y = bufs[0];
    const float *x = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        int64_t tidx[KILN_MAX_RANK][4];
        double tw[KILN_MAX_RANK][4];
        int nt[KILN_MAX_RANK];
        bool ok = true;
        for (int64_t d = 0; d < rank && ok; d++) ok = resize_taps(q, d, oidx[d], tidx[d], tw[d], &nt[d]);
        if (!ok) y[n] = extrap;
        else {
            int cur[KILN_MAX_RANK] = {0};
            double acc = 0;
            for (;;) {
                double wgt = 1;
                int64_t off = 0;
                for (int64_t d = 0; d < rank; d++) { wgt *= tw[d][cur[d]]; off += tidx[d][cur[d]] * istr[d]; }
                if (wgt != 0) acc += wgt * x[off];
                int64_t d = rank - 1;
                for (; d >= 0; d--) { if (++cur[d] < nt[d]) break; cur[d] = 0; }
                if (d < 0) break;
            }
            y[n] = (float)acc;
        }
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++oidx[d] < out_d[d]) break;
            oidx[d] = 0;
        }
    }
    return 0;
}

/* ---- GridSample (the definitions of PyTorch's grid_sample, which ONNX follows) ---- */

static float gs_reflect(float x, float lo2, float hi2) { /* reflect into [lo2/2, hi2/2] */
    if (lo2 == hi2) return 0;
    float mn = lo2 / 2, span = (hi2 - lo2) / 2;
    x = fabsf(x - mn);
    float extra = fmodf(x, span);
    int flips = (int)floorf(x / span);
    return flips % 2 == 0 ? extra + mn : span - extra + mn;
}

/* The padding mode applied to a coordinate: 0 zeros, 1 border, 2 reflection. */
static float gs_pad(float x, int64_t size, int pad, int align) {
    if (pad == 2) x = align ? gs_reflect(x, 0, 2.0f * (float)(size - 1)) : gs_reflect(x, -1, 2.0f * (float)size - 1);
    if (pad >= 1) x = x < 0 ? 0 : x > (float)(size - 1) ? (float)(size - 1) : x;
    return x;
}

static float gs_pixel(const float *img, int64_t H, int64_t W, int64_t y, int64_t x) {
    return (y < 0 || y >= H || x < 0 || x >= W) ? 0.0f : img[y * W + x];
}

static void gs_cubic(float t, float w[4]) {
    const float A = -0.75f;
    float x1 = t + 1, x2 = t, x3 = 1 - t, x4 = 2 - t;
    w[0] = ((A * x1 - 5 * A) * x1 + 8 * A) * x1 - 4 * A;
    w[1] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
    w[2] = ((A + 2) * x3 - (A + 3)) * x3 * x3 + 1;
    w[3] = ((A * x4 - 5 * A) * x4 + 8 * A) * x4 - 4 * A;
}

KILN_KERNEL(grid_sample, "out <- x, grid (f32)", F(N) F(C) F(H) F(W) F(H_out) F(W_out) F(mode /* 0 bilinear, 1 nearest, 2 bicubic */) F(padding /* 0 zeros, 1 border, 2 reflection */) F(align_corners))
int kiln_k_grid_sample(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_grid_sample *q = KILN_P(grid_sample, p);
    int64_t N = q->N, C = q->C, H = q->H, W = q->W, Ho = q->H_out, Wo = q->W_out;
    int mode = (int)q->mode, pad = (int)q->padding, align = (int)q->align_corners;
    const float *x = bufs[1], *grid = bufs[2];
    float *y = bufs[0];
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < Ho * Wo; i++) {
            const float *g = grid + (n * Ho * Wo + i) * 2;
            float fx = align ? (g[0] + 1) / 2 * (float)(W - 1) : ((g[0] + 1) * (float)W - 1) / 2;
            float fy = align ? (g[1] + 1) / 2 * (float)(H - 1) : ((g[1] + 1) * (float)H - 1) / 2;
            if (mode != 2) { fx = gs_pad(fx, W, pad, align); fy = gs_pad(fy, H, pad, align); }
            for (int64_t c = 0; c < C; c++) {
                const float *img = x + (n * C + c) * H * W;
                float v;
                if (mode == 1) v = gs_pixel(img, H, W, (int64_t)nearbyintf(fy), (int64_t)nearbyintf(fx));
                else if (mode == 0) {
                    int64_t x0 = (int64_t)floorf(fx), y0 = (int64_t)floorf(fy);
                    float ax = fx - (float)x0, ay = fy - (float)y0;
                    v = gs_pixel(img, H, W, y0, x0) * (1 - ax) * (1 - ay) + gs_pixel(img, H, W, y0, x0 + 1) * ax * (1 - ay) +
                        gs_pixel(img, H, W, y0 + 1, x0) * (1 - ax) * ay + gs_pixel(img, H, W, y0 + 1, x0 + 1) * ax * ay;
                } else {
                    int64_t x0 = (int64_t)floorf(fx) - 1, y0 = (int64_t)floorf(fy) - 1;
                    float wx[4], wy[4];
                    gs_cubic(fx - floorf(fx), wx);
                    gs_cubic(fy - floorf(fy), wy);
                    v = 0;
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) {
                            int64_t yy = y0 + a, xx = x0 + b;
                            if (pad) { yy = (int64_t)gs_pad((float)yy, H, pad, align); xx = (int64_t)gs_pad((float)xx, W, pad, align); }
                            v += gs_pixel(img, H, W, yy, xx) * wy[a] * wx[b];
                        }
                }
                y[((n * C + c) * Ho * Wo) + i] = v;
            }
        }
    return 0;
}
