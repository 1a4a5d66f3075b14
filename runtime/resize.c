/* resize.c: the resampling kernels on float32: Resize (and Upsample), nearest,
 * linear or cubic with every coordinate transformation of the ONNX definition,
 * and GridSample (bilinear, nearest or bicubic, with zeros, border or
 * reflection padding), which follows PyTorch's grid_sample as ONNX does.
 * Resize maps each output coordinate back to the input per dimension. Nearest
 * and linear resizing of the last two dimensions alone (4-D NCHW, as the
 * segmentation and FPN models do) take the planar path: column taps built once
 * per thread, whole rows by vectorized loops (linear: two lerps along rows, one
 * across), nearest rows copied or their columns replicated, in parallel over
 * output rows. Cubic, tf_crop_and_resize and other dimensions take the generic
 * loop, which sums the product of the dimensions' taps per element in double.
 * The planar path took deeplabv3_mobilenet_v3_large's 21 x 16 x 16 -> 256 x
 * 256 bilinear Resize from 145 ms to 0.4 ms (one thread; ONNX Runtime 22 ms). */
#include "kiln_internal.h"

#include <stdbool.h>
#include <string.h>

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

/* The generic loop over output rows [r0, r1) (a row: the last dimension):
 * each output element maps back per dimension and sums the product of the
 * dimensions' taps in double. Cubic, tf_crop_and_resize and any resize of a
 * dimension other than the last two take it. */
typedef struct {
    const kiln_p_resize *q;
    const float *x;
    float *y;
    bool planar;        /* resize_planar_rows, else resize_generic_rows */
    int64_t per, rows;  /* output rows per unit of the parallel loop, and in all */
} resize_job;

static void resize_generic_rows(void *arg, int64_t r0, int64_t r1) {
    const resize_job *j = arg;
    const kiln_p_resize *q = j->q;
    int64_t rank = q->rank, last = rank ? q->out[rank - 1] : 1;
    const int64_t *out_d = q->out;
    float extrap = (float)kiln_p2d(q->extrapolation);
    int64_t istr[KILN_MAX_RANK], oidx[KILN_MAX_RANK] = {0};
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { istr[i] = s; s *= q->in[i]; }
    for (int64_t d = rank - 2, rem = r0; d >= 0; d--) { oidx[d] = rem % out_d[d]; rem /= out_d[d]; }
    float *y = j->y;
    for (int64_t n = r0 * last; n < r1 * last; n++) {
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
                if (wgt != 0) acc += wgt * j->x[off];
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
}

/* ---- the planar path: nearest or linear resizing of the last two
 * dimensions only (every other maps each index to itself), as planes of
 * H x W -> OH x OW. Each thread builds the column taps once per range in its
 * scratch (source columns as int32, weights as float: resize_taps' own,
 * rounded), and per output row takes the row taps. Linear is separable:
 * each source row it needs is interpolated along the row once (hlerp, kept in
 * one of two row buffers while the following output rows reuse it), then
 * two such rows are blended (vlerp). Nearest copies an output row whose
 * source row is the previous one's, replicates columns where each source
 * column repeats a whole number of times, else gathers. In float32, where the
 * generic loop sums in double: a few ulp apart. ---- */

/* o[i] = r[c0[i]] w0[i] + r[c1[i]] w1[i]: one source row along the row */
KILN_CLONES static void resize_hlerp(const float *r, const int32_t *c0, const int32_t *c1, const float *w0, const float *w1, float *o, int64_t n) {
    for (int64_t i = 0; i < n; i++) o[i] = r[c0[i]] * w0[i] + r[c1[i]] * w1[i];
}

/* o[i] = a[i] wa + b[i] wb: two interpolated rows blended */
KILN_CLONES static void resize_vlerp(const float *a, const float *b, float wa, float wb, float *o, int64_t n) {
    for (int64_t i = 0; i < n; i++) o[i] = a[i] * wa + b[i] * wb;
}

/* o[i] = r[c[i]]: nearest, any column map */
KILN_CLONES static void resize_gather(const float *r, const int32_t *c, float *o, int64_t n) {
    for (int64_t i = 0; i < n; i++) o[i] = r[c[i]];
}

/* o[i f + k] = r[i], k < f: nearest, each source column f times */
KILN_CLONES static void resize_repeat(const float *r, int64_t W, int64_t f, float *o) {
    if (f == 2)
        for (int64_t i = 0; i < W; i++) { o[2 * i] = r[i]; o[2 * i + 1] = r[i]; }
    else
        for (int64_t i = 0; i < W; i++)
            for (int64_t k = 0; k < f; k++) o[i * f + k] = r[i];
}

/* The floats of scratch a planar range takes: per output column two int32
 * sources and two weights, and two interpolated rows (linear only). */
static int64_t resize_planar_floats(const kiln_p_resize *q) {
    int64_t OW = q->out[q->rank - 1];
    return q->mode == 0 ? OW : 6 * OW;
}

/* Whether every dimension before the last two maps each index to itself (the
 * planar path's condition, with the mode nearest or linear and the taps in
 * range, not tf_crop_and_resize's). */
static bool resize_is_planar(const kiln_p_resize *q) {
    if (q->rank < 2 || q->mode == 2 || q->coord == 5 || q->in[q->rank - 1] > INT32_MAX || q->in[q->rank - 2] < 1 ||
        q->in[q->rank - 1] < 1)
        return false;
    for (int64_t d = 0; d < q->rank - 2; d++) {
        if (q->in[d] != q->out[d]) return false;
        for (int64_t i = 0; i < q->in[d]; i++) {
            int64_t idx[4];
            double w[4];
            int nt;
            if (!resize_taps(q, d, i, idx, w, &nt) || idx[0] != i || w[0] != 1 || (nt > 1 && w[1] != 0)) return false;
        }
    }
    return true;
}

void kiln_need_resize(const int64_t *p, kiln_scratch_need *need) {
    const kiln_p_resize *q = KILN_P(resize, p);
    if (!resize_is_planar(q)) return;
    int64_t f = resize_planar_floats(q);
    if (f > need->floats) need->floats = f;
}

/* Output rows [r0, r1) of the planar path (row r: plane r / OH, row r % OH). */
static void resize_planar_rows(void *arg, int64_t r0, int64_t r1) {
    const resize_job *j = arg;
    const kiln_p_resize *q = j->q;
    int64_t rank = q->rank, H = q->in[rank - 2], W = q->in[rank - 1], OH = q->out[rank - 2], OW = q->out[rank - 1];
    float *s = kiln_thread_scratch(resize_planar_floats(q), 0, 0, 0, 0);
    if (!s) { /* (kiln_k_resize checked the scratch first) */
        resize_generic_rows(arg, r0, r1);
        return;
    }
    bool lin = q->mode != 0; /* linear: the scratch holds c1, w0, w1 and the two row buffers too */
    int32_t *c0 = (int32_t *)(void *)s, *c1 = lin ? c0 + OW : NULL;
    float *w0 = lin ? s + 2 * OW : NULL, *w1 = lin ? s + 3 * OW : NULL, *buf[2] = {lin ? s + 4 * OW : NULL, lin ? s + 5 * OW : NULL};
    int64_t idx[4], rep = OW % W == 0 ? OW / W : 0;
    double w[4];
    int nt;
    for (int64_t i = 0; i < OW; i++) {
        resize_taps(q, rank - 1, i, idx, w, &nt);
        c0[i] = (int32_t)idx[0];
        if (lin) { c1[i] = (int32_t)idx[1]; w0[i] = (float)w[0]; w1[i] = (float)w[1]; }
        if (c0[i] != i / (rep ? rep : 1)) rep = 0;
    }
    if (lin) rep = 0;
    int64_t have[2] = {-1, -1}; /* the source rows (plane * H + row) interpolated into buf[] */
    int64_t prev = -1;          /* nearest: the previous output row's source row */
    for (int64_t r = r0; r < r1; r++) {
        int64_t plane = r / OH, oy = r % OH;
        const float *x = j->x + plane * H * W;
        float *y = j->y + r * OW;
        resize_taps(q, rank - 2, oy, idx, w, &nt);
        if (!lin) {
            int64_t src = plane * H + idx[0];
            if (src == prev) memcpy(y, y - OW, (size_t)OW * sizeof *y);
            else if (rep) resize_repeat(x + idx[0] * W, W, rep, y);
            else resize_gather(x + idx[0] * W, c0, y, OW);
            prev = src;
            continue;
        }
        int64_t k0 = plane * H + idx[0], k1 = plane * H + idx[1];
        bool blend = w[1] != 0 && k1 != k0; /* else the row is source row idx[0]'s alone */
        int s0 = have[0] == k0 ? 0 : have[1] == k0 ? 1 : -1;
        if (s0 < 0) { /* keep k1's buffer, if it is one of them */
            s0 = have[0] == k1 && blend ? 1 : 0;
            resize_hlerp(x + idx[0] * W, c0, c1, w0, w1, buf[s0], OW);
            have[s0] = k0;
        }
        if (!blend) {
            memcpy(y, buf[s0], (size_t)OW * sizeof *y);
            continue;
        }
        int s1 = s0 ^ 1;
        if (have[s1] != k1) {
            resize_hlerp(x + idx[1] * W, c0, c1, w0, w1, buf[s1], OW);
            have[s1] = k1;
        }
        resize_vlerp(buf[s0], buf[s1], (float)w[0], (float)w[1], y, OW);
    }
}

/* Units [u0, u1) of the parallel loop: their output rows, by either path. */
static void resize_units(void *arg, int64_t u0, int64_t u1) {
    const resize_job *j = arg;
    int64_t r0 = u0 * j->per, r1 = u1 * j->per < j->rows ? u1 * j->per : j->rows;
    (j->planar ? resize_planar_rows : resize_generic_rows)(arg, r0, r1);
}

KILN_KERNEL(resize, "out <- in (f32)", F(rank) A(in, KILN_MAX_RANK) A(out, KILN_MAX_RANK) F(mode /* 0 nearest, 1 linear, 2 cubic */) F(coord) F(nearest_mode)
    F(exclude_outside) D(cubic_a) D(extrapolation) A(scales, KILN_MAX_RANK /* doubles */) A(roi_start, KILN_MAX_RANK /* doubles */) A(roi_end, KILN_MAX_RANK /* doubles */))
int kiln_k_resize(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_resize, p);
    if (rc) return rc;
    const kiln_p_resize *q = KILN_P(resize, p);
    int64_t total = 1;
    for (int64_t d = 0; d < q->rank; d++) total *= q->out[d];
    if (total == 0) return 0;
    int64_t rows = q->rank ? total / q->out[q->rank - 1] : 1;
    /* small ones in one range: they cost less than waking the pool */
    resize_job j = {q, bufs[1], bufs[0], resize_is_planar(q), total >= 32768 ? 1 : rows, rows};
    kiln_parallel_for(pool, (rows + j.per - 1) / j.per, resize_units, &j);
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
