/* quant.c: the quantization kernels (QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear, MatMulInteger, QLinearMatMul).
 *
 * Integers are uint8 or int8 (the input dtype code travels as a parameter), and
 * int32 for DequantizeLinear's input. Rounding is to nearest, ties to even (the
 * default rounding mode's nearbyintf), then saturation to the target type, as
 * the ONNX definitions say. Integer matrix products accumulate exactly in int32. */
#include "kiln_internal.h"

#include <math.h>

static float qmin(int dt) { return dt == KILN_DT_I8 ? -128.0f : 0.0f; }
static float qmax(int dt) { return dt == KILN_DT_I8 ? 127.0f : 255.0f; }

/* Element i of an integer tensor of dtype dt (u8, i8, i32). */
static int32_t int_at(const void *p, int dt, int64_t i) {
    if (dt == KILN_DT_I8) return ((const int8_t *)p)[i];
    if (dt == KILN_DT_I32) return ((const int32_t *)p)[i];
    return ((const uint8_t *)p)[i];
}

static void int_set(void *p, int dt, int64_t i, float v) {
    v = v < qmin(dt) ? qmin(dt) : v > qmax(dt) ? qmax(dt) : v;
    if (dt == KILN_DT_I8) ((int8_t *)p)[i] = (int8_t)v;
    else ((uint8_t *)p)[i] = (uint8_t)v;
}

KILN_KERNEL(quantize, "out <- x, scale (f32), zp?", F(mode /* 0 quantize f32 -> u8/i8, 1 dequantize u8/i8/i32 -> f32 */) F(outer) F(axis_len) F(inner) F(per_axis) F(has_zp) F(int_dtype))
int kiln_k_quantize(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_quantize *pq = KILN_P(quantize, p);
    int64_t mode = pq->mode, outer = pq->outer, len = pq->axis_len, inner = pq->inner, per_axis = pq->per_axis, has_zp = pq->has_zp;
    int dt = (int)pq->int_dtype;
    const float *scale = bufs[2];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t a = 0; a < len; a++) {
            int64_t q = per_axis ? a : 0, base = (o * len + a) * inner;
            float s = scale[q];
            int32_t zp = has_zp ? int_at(bufs[3], dt, q) : 0;
            if (mode == 0) {
                const float *x = bufs[1];
                for (int64_t i = 0; i < inner; i++) int_set(bufs[0], dt, base + i, nearbyintf(x[base + i] / s) + (float)zp);
            } else {
                float *y = bufs[0];
                for (int64_t i = 0; i < inner; i++) y[base + i] = (float)(int_at(bufs[1], dt, base + i) - zp) * s;
            }
        }
    return 0;
}

KILN_KERNEL(dynamic_quantize, "y (u8), scale (f32), zp (u8) <- x (f32)", F(n))
int kiln_k_dynamic_quantize(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t n = KILN_P(dynamic_quantize, p)->n;
    const float *x = bufs[3];
    float lo = 0, hi = 0;
    for (int64_t i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float scale = (hi - lo) / 255.0f, zpf = scale > 0 ? nearbyintf(0.0f - lo / scale) : 0.0f;
    zpf = zpf < 0 ? 0 : zpf > 255 ? 255 : zpf;
    *(float *)bufs[1] = scale;
    *(uint8_t *)bufs[2] = (uint8_t)zpf;
    for (int64_t i = 0; i < n; i++) int_set(bufs[0], KILN_DT_U8, i, scale > 0 ? nearbyintf(x[i] / scale) + zpf : zpf);
    return 0;
}

typedef struct {
    const void *a, *b, *azp, *bzp;
    const float *as, *bs, *ys;
    const void *yzp;
    void *y;
    int64_t M, N, K, na, nb, nbs, bstride;
    int adt, bdt, ydt, q;
} mmi_job;

static void mmi_rows(void *arg, int64_t r0, int64_t r1) {
    const mmi_job *j = arg;
    for (int64_t i = r0; i < r1; i++) {
        int32_t za = j->azp ? int_at(j->azp, j->adt, j->na == 1 ? 0 : i % j->M) : 0;
        for (int64_t c = 0; c < j->N; c++) {
            int32_t zb = j->bzp ? int_at(j->bzp, j->bdt, j->nb == 1 ? 0 : c) : 0, acc = 0;
            int64_t bo = i / j->M * j->bstride;
            for (int64_t k = 0; k < j->K; k++)
                acc += (int_at(j->a, j->adt, i * j->K + k) - za) * (int_at(j->b, j->bdt, bo + k * j->N + c) - zb);
            if (!j->q) ((int32_t *)j->y)[i * j->N + c] = acc;
            else {
                float r = (float)acc * (j->as[0] * j->bs[j->nbs == 1 ? 0 : c] / j->ys[0]);
                int_set(j->y, j->ydt, i * j->N + c, nearbyintf(r) + (float)int_at(j->yzp, j->ydt, 0));
            }
        }
    }
}

KILN_KERNEL(matmul_integer, "y <- a, b, a_zp?, b_zp?, a_scale, b_scale, y_scale, y_zp (a, b, zero points u8/i8; scales f32; y i32, or u8/i8 when qlinear)",
    F(qlinear) F(M) F(N) F(K) F(a_dtype) F(b_dtype) F(y_dtype) F(n_azp) F(n_bzp) F(n_bscale) F(rows) F(b_batch_stride /* 0: one B */))
int kiln_k_matmul_integer(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    const kiln_p_matmul_integer *q = KILN_P(matmul_integer, p);
    mmi_job j = {bufs[1], bufs[2], q->n_azp ? bufs[3] : NULL, q->n_bzp ? bufs[4] : NULL, bufs[5], bufs[6], bufs[7], bufs[8], bufs[0],
                 q->M, q->N, q->K, q->n_azp, q->n_bzp, q->n_bscale, q->b_batch_stride, (int)q->a_dtype, (int)q->b_dtype, (int)q->y_dtype,
                 (int)q->qlinear};
    kiln_parallel_for(pool, q->rows, mmi_rows, &j);
    return 0;
}

/* ConvInteger / QLinearConv, direct: int32 sums of (x - x_zp)(w - w_zp) over
 * each window, then (QLinearConv) + B, times x_scale w_scale / y_scale, rounded,
 * + y_zp, saturated. Padding reads as x_zp (a zero after subtraction). */
KILN_KERNEL(conv_integer, "y <- x, w, x_zp?, w_zp?, x_scale, w_scale, y_scale, y_zp, B? (x, w, zero points u8/i8; scales f32; B i32; y i32, or u8/i8 when qlinear)",
    F(nd) F(N) F(C) F(M) F(group) W(w) F(x_dtype) F(w_dtype) F(has_xzp) F(n_wzp) F(qlinear) F(y_dtype) F(n_wscale) F(has_bias))
int kiln_k_conv_integer(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_conv_integer *q = KILN_P(conv_integer, p);
    int64_t N = q->N, C = q->C, M = q->M, G = q->group;
    int xdt = (int)q->x_dtype, wdt = (int)q->w_dtype, ydt = (int)q->y_dtype;
    win3 w;
    kiln_win3_read(&w, q->nd, &q->w);
    const int64_t *in3 = w.in, *out3 = w.out, *k3 = w.k, *s3 = w.stride, *d3 = w.dil, *p3 = w.pad;
    int64_t cpg = C / G, mpg = M / G, isz = in3[0] * in3[1] * in3[2], osz = out3[0] * out3[1] * out3[2], ksz = k3[0] * k3[1] * k3[2];
    int32_t xzp = q->has_xzp ? int_at(bufs[3], xdt, 0) : 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            int64_t g = m / mpg;
            int32_t wzp = q->n_wzp ? int_at(bufs[4], wdt, q->n_wzp == 1 ? 0 : m) : 0;
            for (int64_t o = 0; o < osz; o++) {
                int64_t od = o / (out3[1] * out3[2]), oh = o / out3[2] % out3[1], ow = o % out3[2];
                int32_t acc = 0;
                for (int64_t c = 0; c < cpg; c++)
                    for (int64_t kk = 0; kk < ksz; kk++) {
                        int64_t kd = kk / (k3[1] * k3[2]), kh = kk / k3[2] % k3[1], kw = kk % k3[2];
                        int64_t id = od * s3[0] - p3[0] + kd * d3[0], ih = oh * s3[1] - p3[1] + kh * d3[1], iw = ow * s3[2] - p3[2] + kw * d3[2];
                        if (id < 0 || id >= in3[0] || ih < 0 || ih >= in3[1] || iw < 0 || iw >= in3[2]) continue;
                        int32_t xv = int_at(bufs[1], xdt, (n * C + g * cpg + c) * isz + (id * in3[1] + ih) * in3[2] + iw) - xzp;
                        int32_t wv = int_at(bufs[2], wdt, (m * cpg + c) * ksz + kk) - wzp;
                        acc += xv * wv;
                    }
                int64_t at = (n * M + m) * osz + o;
                if (!q->qlinear) { ((int32_t *)bufs[0])[at] = acc; continue; }
                if (q->has_bias) acc += ((const int32_t *)bufs[9])[m];
                const float *ws = bufs[6];
                float r = (float)acc * (((const float *)bufs[5])[0] * ws[q->n_wscale == 1 ? 0 : m] / ((const float *)bufs[7])[0]);
                int_set(bufs[0], ydt, at, nearbyintf(r) + (float)int_at(bufs[8], ydt, 0));
            }
        }
    return 0;
}
