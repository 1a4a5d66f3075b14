/* kernels_extra.c: kernels of the ops added after the first set (see
 * kernels.def): MeanVarianceNormalization, LRN, ReverseSequence, Einsum, Det,
 * GridSample. Plain loops over float32 (Det and MVN accumulate in double). */
#include "kiln_rt.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- MeanVarianceNormalization, LRN, ReverseSequence ---- */

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

int kiln_k_mvn(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int rank = (int)p[0];
    const int64_t *dims = p + 1;
    uint64_t mask = (uint64_t)p[1 + rank];
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

int kiln_k_lrn(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t N = p[0], C = p[1], inner = p[2], size = p[3];
    float alpha = (float)kiln_p2d(p[4]), beta = (float)kiln_p2d(p[5]), bias = (float)kiln_p2d(p[6]);
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

int kiln_k_reverse_sequence(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t es = p[0], batch_axis = p[1], d0 = p[2], d1 = p[3], inner = p[4];
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

/* ---- Einsum (a plain sum over every label not in the output) and Det ---- */

int kiln_k_einsum(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int n = (int)p[0];
    const int64_t *size = p + 2;
    int64_t orank = p[66];
    const int64_t *olab = p + 67;
    int64_t stride[8][64];
    memset(stride, 0, sizeof stride);
    const int64_t *q = olab + orank;
    bool in_out[64] = {false}, used[64] = {false};
    for (int64_t k = 0; k < orank; k++) in_out[olab[k]] = true;
    for (int i = 0; i < n; i++) {
        int64_t r = q[0];
        const int64_t *lab = q + 1, *dims = q + 1 + r;
        int64_t s = 1;
        for (int64_t k = r - 1; k >= 0; k--) {
            if (dims[k] != 1) stride[i][lab[k]] += s; /* a repeated label walks the diagonal */
            used[lab[k]] = true;
            s *= dims[k];
        }
        q += 1 + 2 * r;
    }
    int sum_lab[64], ns = 0;
    int64_t nsum = 1, nout = 1;
    for (int l = 0; l < 64; l++) if (used[l] && !in_out[l]) { sum_lab[ns++] = l; nsum *= size[l]; }
    for (int64_t k = 0; k < orank; k++) nout *= size[olab[k]];
    float *y = bufs[0];
    for (int64_t o = 0; o < nout; o++) {
        int64_t base[8] = {0}, rem = o;
        for (int64_t k = orank - 1; k >= 0; k--) {
            int64_t l = olab[k], c = rem % size[l];
            rem /= size[l];
            for (int i = 0; i < n; i++) base[i] += c * stride[i][l];
        }
        double acc = 0;
        for (int64_t s = 0; s < nsum; s++) {
            int64_t off[8], r2 = s;
            for (int i = 0; i < n; i++) off[i] = base[i];
            for (int k = ns - 1; k >= 0; k--) {
                int l = sum_lab[k];
                int64_t c = r2 % size[l];
                r2 /= size[l];
                for (int i = 0; i < n; i++) off[i] += c * stride[i][l];
            }
            double prod = 1;
            for (int i = 0; i < n; i++) prod *= ((const float *)bufs[1 + i])[off[i]];
            acc += prod;
        }
        y[o] = (float)acc;
    }
    return 0;
}

int kiln_k_det(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t batch = p[0], M = p[1];
    const float *x = bufs[1];
    float *y = bufs[0];
    double *a = bufs[2]; /* the step's scratch */
    for (int64_t b = 0; b < batch; b++) { /* LU with partial pivoting */
        for (int64_t i = 0; i < M * M; i++) a[i] = x[b * M * M + i];
        double det = 1;
        for (int64_t c = 0; c < M && det != 0; c++) {
            int64_t piv = c;
            for (int64_t r = c + 1; r < M; r++) if (fabs(a[r * M + c]) > fabs(a[piv * M + c])) piv = r;
            if (a[piv * M + c] == 0) { det = 0; break; }
            if (piv != c) {
                for (int64_t k = 0; k < M; k++) { double t = a[c * M + k]; a[c * M + k] = a[piv * M + k]; a[piv * M + k] = t; }
                det = -det;
            }
            det *= a[c * M + c];
            for (int64_t r = c + 1; r < M; r++) {
                double f = a[r * M + c] / a[c * M + c];
                for (int64_t k = c; k < M; k++) a[r * M + k] -= f * a[c * M + k];
            }
        }
        y[b] = (float)det;
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

int kiln_k_grid_sample(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t N = p[0], C = p[1], H = p[2], W = p[3], Ho = p[4], Wo = p[5];
    int mode = (int)p[6], pad = (int)p[7], align = (int)p[8];
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

/* TfIdfVectorizer: per row, each n-gram (n from min_n to max_n; items
 * skip + 1 apart, skip from 0 to max_skip; one pass for 1-grams) found in the
 * pool counts once toward its output index; IDF gives weight for a count, TFIDF
 * count x weight. Pool lookups are linear over the n-grams of one length. */
int kiln_k_tfidf(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    int64_t N = p[0], C = p[1], es = p[2], min_n = p[3], max_n = p[4], max_skip = p[5], mode = p[6], out_dim = p[7];
    int64_t grams = p[8], npool = p[9];
    const int64_t *pl = p + 10, *start = pl + npool, *index = start + 65, *weight = index + grams;
    float *out = b[0];
    for (int64_t r = 0; r < N; r++) {
        float *y = out + r * out_dim;
        for (int64_t j = 0; j < out_dim; j++) y[j] = 0;
        const unsigned char *row = (const unsigned char *)b[1] + r * C * es;
#define ITEM(i) (es == 4 ? (int64_t)((const int32_t *)row)[i] : ((const int64_t *)row)[i])
        int64_t first = 0; /* ordinal of the first n-gram of length n */
        for (int64_t n = 1; n <= max_n; n++) {
            int64_t b0 = start[n - 1], count = (start[n] - b0) / n;
            if (n >= min_n)
                for (int64_t skip = 0; skip <= (n == 1 ? 0 : max_skip); skip++)
                    for (int64_t i = 0; i + (n - 1) * (skip + 1) < C; i++)
                        for (int64_t g = 0; g < count; g++) {
                            const int64_t *gram = pl + b0 + g * n;
                            int64_t k = 0;
                            while (k < n && ITEM(i + k * (skip + 1)) == gram[k]) k++;
                            if (k == n) y[index[first + g]] += 1;
                        }
            first += count;
        }
#undef ITEM
        for (int64_t g = 0; g < grams && mode; g++) {
            float *v = &y[index[g]];
            double w = kiln_p2d(weight[g]);
            if (*v > 0) *v = mode == 1 ? (float)w : (float)(*v * w);
        }
    }
    return 0;
}

/* Training-mode Dropout. The draws are MT19937's (Matsumoto and Nishimura,
 * 1998: the generator seeded by init_genrand, 53-bit doubles from two 32-bit
 * outputs), which is what NumPy's legacy np.random.seed(s); uniform() gives, so
 * a seeded mask matches the ONNX reference's. */
typedef struct { uint32_t mt[624]; int i; } mt19937;

static void mt_seed(mt19937 *g, uint32_t s) {
    g->mt[0] = s;
    for (int i = 1; i < 624; i++) g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->i = 624;
}

static uint32_t mt_next(mt19937 *g) {
    if (g->i >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (g->mt[k] & 0x80000000u) | (g->mt[(k + 1) % 624] & 0x7fffffffu);
            g->mt[k] = g->mt[(k + 397) % 624] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0);
        }
        g->i = 0;
    }
    uint32_t y = g->mt[g->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

int kiln_k_dropout(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    int64_t n = p[0];
    float ratio = (float)kiln_p2d(p[1]), keep = 1.0f - ratio;
    float *y = b[0];
    uint8_t *mask = p[3] ? b[1] : NULL;
    const float *x = b[2];
    mt19937 g;
    mt_seed(&g, (uint32_t)p[2]);
    for (int64_t i = 0; i < n; i++) {
        uint32_t a = mt_next(&g) >> 5, c = mt_next(&g) >> 6;
        double u = (a * 67108864.0 + c) / 9007199254740992.0;
        bool kept = u >= ratio;
        y[i] = kept ? x[i] / keep : 0.0f * x[i];
        if (mask) mask[i] = kept;
    }
    return 0;
}
