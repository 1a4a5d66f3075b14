/* quant.c: the quantization kernels (QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear, MatMulInteger, QLinearMatMul).
 *
 * Integers are uint8 or int8 (the input dtype code travels as a parameter), and
 * int32 for DequantizeLinear's input. Rounding is to nearest, ties to even (the
 * default rounding mode's nearbyintf), then saturation to the target type, as
 * the ONNX definitions say. Integer matrix products accumulate exactly in int32. */
#include "kiln_rt.h"
#include "kiln_simd.h"

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

int kiln_k_quantize(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t mode = p[0], outer = p[1], len = p[2], inner = p[3], per_axis = p[4], has_zp = p[5];
    int dt = (int)p[6];
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

int kiln_k_dynamic_quantize(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t n = p[0];
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

int kiln_k_matmul_integer(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    mmi_job j = {bufs[1], bufs[2], p[7] ? bufs[3] : NULL, p[8] ? bufs[4] : NULL, bufs[5], bufs[6], bufs[7], bufs[8], bufs[0],
                 p[1], p[2], p[3], p[7], p[8], p[9], p[11], (int)p[4], (int)p[5], (int)p[6], (int)p[0]};
    kiln_parallel_for(pool, p[10], mmi_rows, &j);
    return 0;
}

/* ConvInteger / QLinearConv, direct: int32 sums of (x - x_zp)(w - w_zp) over
 * each window, then (QLinearConv) + B, times x_scale w_scale / y_scale, rounded,
 * + y_zp, saturated. Padding reads as x_zp (a zero after subtraction). */
int kiln_k_conv_integer(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t nd = p[0], N = p[1], C = p[2], M = p[3], G = p[4];
    const int64_t *in = p + 5, *out = in + nd, *k = out + nd, *st = k + nd, *dl = st + nd, *pb = dl + nd;
    const int64_t *q = p + 5 + 7 * nd; /* x_dt, w_dt, has_xzp, n_wzp, qlinear, y_dt, n_wscale, has_bias */
    int xdt = (int)q[0], wdt = (int)q[1], ydt = (int)q[5];
    int64_t in3[3] = {1, 1, 1}, out3[3] = {1, 1, 1}, k3[3] = {1, 1, 1}, s3[3] = {1, 1, 1}, d3[3] = {1, 1, 1}, p3[3] = {0, 0, 0};
    for (int64_t i = 0; i < nd; i++) {
        int64_t j = 3 - nd + i;
        in3[j] = in[i]; out3[j] = out[i]; k3[j] = k[i]; s3[j] = st[i]; d3[j] = dl[i]; p3[j] = pb[i];
    }
    int64_t cpg = C / G, mpg = M / G, isz = in3[0] * in3[1] * in3[2], osz = out3[0] * out3[1] * out3[2], ksz = k3[0] * k3[1] * k3[2];
    int32_t xzp = q[2] ? int_at(bufs[3], xdt, 0) : 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            int64_t g = m / mpg;
            int32_t wzp = q[3] ? int_at(bufs[4], wdt, q[3] == 1 ? 0 : m) : 0;
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
                if (!q[4]) { ((int32_t *)bufs[0])[at] = acc; continue; }
                if (q[7]) acc += ((const int32_t *)bufs[9])[m];
                const float *ws = bufs[6];
                float r = (float)acc * (((const float *)bufs[5])[0] * ws[q[6] == 1 ? 0 : m] / ((const float *)bufs[7])[0]);
                int_set(bufs[0], ydt, at, nearbyintf(r) + (float)int_at(bufs[8], ydt, 0));
            }
        }
    return 0;
}
