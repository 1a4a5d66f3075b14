/* norm.c: the normalizations on float32: BatchNormalization (inference: a
 * scale and a shift per channel; training: the batch's mean and variance in
 * double, the running statistics updated), InstanceNormalization and
 * MeanVarianceNormalization (statistics in double), LayerNormalization (sums
 * in 16 float partial sums, combined in double; in parallel over rows when
 * large), LRN across channels, and Softmax, LogSoftmax and Hardmax along an
 * axis (softmax_rows also computes attention.c's scores, through
 * kiln_softmax_rows). Each reads its constant parameters through
 * KILN_P (kiln_p_NAME, from kernels.def) and its buffers from bufs (outputs
 * first). */
#include "kiln_internal.h"

#include <stdlib.h>
#include <string.h>

KILN_KERNEL(batchnorm, "out <- x, scale, bias, mean, var (f32)", F(N) F(C) F(inner) D(eps))
int kiln_k_batchnorm(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_batchnorm *q = KILN_P(batchnorm, p);
    int64_t N = q->N, C = q->C, inner = q->inner;
    double eps = kiln_p2d(q->eps);
    float *y = bufs[0];
    const float *x = bufs[1], *scale = bufs[2], *bias = bufs[3], *mean = bufs[4], *var = bufs[5];
    for (int64_t c = 0; c < C; c++) {
        float a = scale[c] / sqrtf(var[c] + (float)eps), b = bias[c] - mean[c] * a;
        for (int64_t n = 0; n < N; n++) {
            const float *xs = x + (n * C + c) * inner;
            float *ys = y + (n * C + c) * inner;
            for (int64_t i = 0; i < inner; i++) ys[i] = xs[i] * a + b;
        }
    }
    return 0;
}

KILN_KERNEL(batchnorm_train, "out, run_mean, run_var <- x, scale, bias, mean, var (f32)", F(N) F(C) F(inner) D(eps) D(momentum))
int kiln_k_batchnorm_train(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_batchnorm_train *q = KILN_P(batchnorm_train, p);
    int64_t N = q->N, C = q->C, inner = q->inner;
    double eps = kiln_p2d(q->eps), momentum = kiln_p2d(q->momentum);
    float *y = bufs[0], *rmean = bufs[1], *rvar = bufs[2];
    const float *x = bufs[3], *scale = bufs[4], *bias = bufs[5], *mean = bufs[6], *var = bufs[7];
    double cnt = (double)(N * inner);
    for (int64_t c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) s += x[(n * C + c) * inner + i];
        double mu = cnt > 0 ? s / cnt : 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) {
                double d = x[(n * C + c) * inner + i] - mu;
                ss += d * d;
            }
        double v = cnt > 0 ? ss / cnt : 0;
        float a = (float)(scale[c] / sqrt(v + eps)), b = (float)(bias[c] - mu * a);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) y[(n * C + c) * inner + i] = x[(n * C + c) * inner + i] * a + b;
        rmean[c] = (float)(mean[c] * momentum + mu * (1 - momentum));
        rvar[c] = (float)(var[c] * momentum + v * (1 - momentum));
    }
    return 0;
}

KILN_KERNEL(instancenorm, "out <- x, scale, bias (f32)", F(N) F(C) F(inner) D(eps))
int kiln_k_instancenorm(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_instancenorm *q = KILN_P(instancenorm, p);
    int64_t N = q->N, C = q->C, inner = q->inner;
    double eps = kiln_p2d(q->eps);
    float *y = bufs[0];
    const float *x = bufs[1], *scale = bufs[2], *bias = bufs[3];
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float *xs = x + (n * C + c) * inner;
            float *ys = y + (n * C + c) * inner;
            double s = 0, ss = 0;
            for (int64_t i = 0; i < inner; i++) s += xs[i];
            double mu = inner ? s / (double)inner : 0;
            for (int64_t i = 0; i < inner; i++) ss += (xs[i] - mu) * (xs[i] - mu);
            double a = scale[c] / sqrt((inner ? ss / (double)inner : 0) + eps);
            for (int64_t i = 0; i < inner; i++) ys[i] = (float)((xs[i] - mu) * a + bias[c]);
        }
    return 0;
}

typedef struct {
    int64_t inner;
    float eps;
    float *y, *mean, *inv;
    const float *x, *scale, *bias;
} ln_job;

/* Rows of LayerNormalization: the mean and the centred sum of squares each in
 * 16 float partial sums (vectorized; combined in double), then one pass that
 * scales and shifts. The double sums of one element at a time it replaced
 * were a scalar loop: 0.22 ms per BERT-base LayerNorm of 128 x 768. */
KILN_CLONES static void layernorm_rows(void *arg, int64_t r0, int64_t r1) {
    const ln_job *j = arg;
    int64_t n = j->inner;
    for (int64_t o = r0; o < r1; o++) {
        const float *xs = j->x + o * n;
        float *ys = j->y + o * n;
        float acc[16] = {0};
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) acc[k] += xs[i + k];
        double s = 0;
        for (int k = 0; k < 16; k++) s += acc[k];
        for (; i < n; i++) s += xs[i];
        float mu = n ? (float)(s / (double)n) : 0.0f;
        for (int k = 0; k < 16; k++) acc[k] = 0;
        for (i = 0; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) acc[k] += (xs[i + k] - mu) * (xs[i + k] - mu);
        double ss = 0;
        for (int k = 0; k < 16; k++) ss += acc[k];
        for (; i < n; i++) ss += (double)((xs[i] - mu) * (xs[i] - mu));
        float is = (float)(1.0 / sqrt((n ? ss / (double)n : 0) + (double)j->eps));
        if (j->bias)
            for (i = 0; i < n; i++) ys[i] = (xs[i] - mu) * is * j->scale[i] + j->bias[i];
        else
            for (i = 0; i < n; i++) ys[i] = (xs[i] - mu) * is * j->scale[i];
        j->mean[o] = mu;
        j->inv[o] = is;
    }
}

KILN_KERNEL(layernorm, "out, mean, invstd <- x, scale, bias (f32)", F(outer) F(inner) D(eps) F(has_bias))
int kiln_k_layernorm(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    const kiln_p_layernorm *q = KILN_P(layernorm, p);
    int64_t outer = q->outer, inner = q->inner, has_bias = q->has_bias;
    ln_job j = {inner, (float)kiln_p2d(q->eps), bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], has_bias ? bufs[5] : NULL};
    if (outer * inner < 16384) layernorm_rows(&j, 0, outer);
    else kiln_parallel_for(pool, outer, layernorm_rows, &j);
    return 0;
}

/* Index of element i's reduction group: i with the masked axes dropped. */
static int64_t reduced_index(int64_t i, int rank, const int64_t *dims, uint64_t mask) {
    int64_t r = 0, mul = 1;
    for (int d = rank - 1; d >= 0; d--) {
        int64_t c = i % dims[d];
        i /= dims[d];
        if (!(mask >> d & 1)) { r += c * mul; mul *= dims[d]; }
    }
    return r;
}

KILN_KERNEL(mvn, "out <- x, acc (f32; acc: scratch of 2 groups + 1 doubles): (x - mean) / (sqrt(var) + 1e-9) over the masked axes",
    F(rank) A(dims, KILN_MAX_RANK) F(mask))
int kiln_k_mvn(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_mvn *q = KILN_P(mvn, p);
    int rank = (int)q->rank;
    const int64_t *dims = q->dims;
    uint64_t mask = (uint64_t)q->mask;
    int64_t n = 1, groups = 1;
    for (int d = 0; d < rank; d++) { n *= dims[d]; if (!(mask >> d & 1)) groups *= dims[d]; }
    const float *x = bufs[1];
    float *y = bufs[0];
    double *acc = bufs[2]; /* the step's scratch */
    memset(acc, 0, (size_t)(2 * groups + 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        int64_t g = reduced_index(i, rank, dims, mask);
        acc[2 * g] += x[i];
        acc[2 * g + 1] += (double)x[i] * x[i];
    }
    double cnt = (double)(n / groups);
    for (int64_t i = 0; i < n; i++) {
        int64_t g = reduced_index(i, rank, dims, mask);
        double mean = acc[2 * g] / cnt, var = acc[2 * g + 1] / cnt - mean * mean;
        y[i] = (float)((x[i] - mean) / (sqrt(var > 0 ? var : 0) + 1e-9));
    }
    return 0;
}

KILN_KERNEL(lrn, "out <- x (f32)", F(N) F(C) F(inner) F(size) D(alpha) D(beta) D(bias))
int kiln_k_lrn(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_lrn *q = KILN_P(lrn, p);
    int64_t N = q->N, C = q->C, inner = q->inner, size = q->size;
    float alpha = (float)kiln_p2d(q->alpha), beta = (float)kiln_p2d(q->beta), bias = (float)kiln_p2d(q->bias);
    const float *x = bufs[1];
    float *y = bufs[0];
    int64_t before = (size - 1) / 2, after = size - 1 - before;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < inner; i++) {
                float sq = 0;
                for (int64_t k = c - before; k <= c + after; k++)
                    if (k >= 0 && k < C) { float v = x[(n * C + k) * inner + i]; sq += v * v; }
                int64_t at = (n * C + c) * inner + i;
                y[at] = x[at] / powf(bias + alpha / (float)size * sq, beta);
            }
    return 0;
}

/* Softmax and LogSoftmax over rows of len elements, inner apart: the maximum,
 * e^(x - max) with kiln_expf (vectorized when the row is contiguous), summed
 * in eight partial sums, then scaled (or log-sum subtracted). In parallel over
 * rows. */
typedef struct { const float *x; float *y; int64_t len, inner, lg; } softmax_job;

KILN_CLONES static void softmax_rows(void *arg, int64_t r0, int64_t r1) {
    const softmax_job *j = arg;
    int64_t len = j->len, inner = j->inner, lg = j->lg; /* locals: stores through y could alias *j */
    for (int64_t r = r0; r < r1; r++) {
        int64_t o = r / inner, i = r % inner;
        const float *xs = j->x + o * len * inner + i;
        float *ys = j->y + o * len * inner + i;
        float mx = -INFINITY, part[8] = {0};
        if (inner == 1) { /* contiguous: in 16 partial maxima (vectorized) */
            float m16[16];
            for (int q = 0; q < 16; q++) m16[q] = -INFINITY;
            int64_t k = 0;
            for (; k + 16 <= len; k += 16)
                for (int q = 0; q < 16; q++) m16[q] = xs[k + q] > m16[q] ? xs[k + q] : m16[q];
            for (; k < len; k++) mx = xs[k] > mx ? xs[k] : mx;
            for (int q = 0; q < 16; q++) mx = m16[q] > mx ? m16[q] : mx;
        } else
            for (int64_t k = 0; k < len; k++) if (xs[k * inner] > mx) mx = xs[k * inner];
        if (inner == 1 && !lg) { /* (LogSoftmax keeps x intact: y may be x) */
            for (int64_t k = 0; k < len; k++) ys[k] = kiln_expf(xs[k] - mx);
            int64_t k = 0;
            for (; k + 8 <= len; k += 8)
                for (int q = 0; q < 8; q++) part[q] += ys[k + q];
            for (; k < len; k++) part[k % 8] += ys[k];
        } else {
            for (int64_t k = 0; k < len; k++) {
                float e = kiln_expf(xs[k * inner] - mx);
                part[k % 8] += e;
                if (!lg) ys[k * inner] = e;
            }
        }
        float sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
        if (lg) {
            float ls = logf(sum);
            for (int64_t k = 0; k < len; k++) ys[k * inner] = xs[k * inner] - mx - ls;
        } else if (inner == 1) {
            float inv = 1.0f / sum;
            for (int64_t k = 0; k < len; k++) ys[k] = ys[k] * inv;
        } else {
            for (int64_t k = 0; k < len; k++) ys[k * inner] = ys[k * inner] / sum;
        }
    }
}

KILN_KERNEL(softmax, "out <- in (f32)", F(outer) F(axis_len) F(inner) F(log))
int kiln_k_softmax(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    const kiln_p_softmax *q = KILN_P(softmax, p);
    softmax_job j = {bufs[1], bufs[0], q->axis_len, q->inner, q->log};
    int64_t rows = q->outer * q->inner;
    kiln_parallel_for(rows * j.len >= 32768 ? pool : NULL, rows, softmax_rows, &j);
    return 0;
}

void kiln_softmax_rows(float *s, int64_t len, int64_t rows) {
    softmax_job sj = {s, s, len, 1, 0};
    softmax_rows(&sj, 0, rows);
}

KILN_KERNEL(hardmax, "out <- in (f32)", F(outer) F(len) F(inner))
int kiln_k_hardmax(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_hardmax *q = KILN_P(hardmax, p);
    int64_t outer = q->outer, len = q->len, inner = q->inner;
    float *y = bufs[0];
    const float *x = bufs[1];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t best = 0;
            for (int64_t k = 0; k < len; k++) {
                if (x[(o * len + k) * inner + i] > x[(o * len + best) * inner + i]) best = k;
                y[(o * len + k) * inner + i] = 0;
            }
            if (len) y[(o * len + best) * inner + i] = 1;
        }
    return 0;
}
