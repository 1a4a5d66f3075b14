/* signal.c: the spectral ops of ONNX opset 17 and two image ops.
 *
 * DFT and STFT are direct O(n^2) transforms accumulated in double, with the
 * twiddle factors cos/sin(2 pi j / n) computed once per call into the step's
 * scratch and indexed by (k * t) mod n (exact, unlike an angle accumulated
 * step by step). The forward transform multiplies by exp(-i theta), the
 * inverse by exp(+i theta) and divides by n; a real input has no imaginary
 * part; a signal shorter than the transform is zero-padded, a longer one cut.
 * MelWeightMatrix builds the triangular filter bank of the ONNX definition
 * (band edges on the mel scale, mapped to FFT bins by floor). MaxUnpool
 * scatters X into a zeroed output at its indices (into the flattened unpooled
 * shape, as MaxPool writes them; a larger output_shape pads at the ends); RoiAlign averages (or takes the maximum of)
 * bilinear samples on a grid in each output bin, with ONNX Runtime's rules at
 * the borders. */
#include "kiln_rt.h"

#include <math.h>
#include <string.h>

static void twiddles(double *tw, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double a = 2.0 * M_PI * (double)j / (double)n;
        tw[2 * j] = cos(a);
        tw[2 * j + 1] = sin(a);
    }
}

/* out[k] (re, im) = sum over t < m of x[t * xs] * w(t) * e^(-/+ i 2 pi k t / n). */
static void dft1(const float *x, int64_t xs, int64_t cin, int64_t m, const float *w, const double *tw, int64_t n, int inverse,
                 int64_t k, double *re, double *im) {
    double r = 0, i = 0;
    for (int64_t t = 0; t < m; t++) {
        double xr = x[t * xs], xi = cin == 2 ? x[t * xs + 1] : 0.0;
        if (w) { xr *= w[t]; xi *= w[t]; }
        int64_t j = (k * t) % n;
        double c = tw[2 * j], s = inverse ? tw[2 * j + 1] : -tw[2 * j + 1];
        r += xr * c - xi * s;
        i += xr * s + xi * c;
    }
    *re = inverse ? r / (double)n : r;
    *im = inverse ? i / (double)n : i;
}

int kiln_k_dft(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t outer = p[0], nin = p[1], inner = p[2], cin = p[3], n = p[4], nout = p[5];
    int inverse = (int)p[6];
    float *y = bufs[0];
    const float *x = bufs[1];
    double *tw = bufs[2];
    twiddles(tw, n);
    int64_t m = nin < n ? nin : n;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < nout; k++)
            for (int64_t i = 0; i < inner; i++) {
                double re, im;
                dft1(x + (o * nin * inner + i) * cin, inner * cin, cin, m, NULL, tw, n, inverse, k, &re, &im);
                float *d = y + ((o * nout + k) * inner + i) * 2;
                d[0] = (float)re;
                d[1] = (float)im;
            }
    return 0;
}

int kiln_k_stft(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t batch = p[0], len = p[1], cin = p[2], step = p[3], frames = p[4], flen = p[5], bins = p[6];
    float *y = bufs[0];
    const float *x = bufs[1], *w = p[7] ? bufs[2] : NULL;
    double *tw = bufs[3];
    twiddles(tw, flen);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t f = 0; f < frames; f++)
            for (int64_t k = 0; k < bins; k++) {
                double re, im;
                dft1(x + (b * len + f * step) * cin, cin, cin, flen, w, tw, flen, 0, k, &re, &im);
                float *d = y + ((b * frames + f) * bins + k) * 2;
                d[0] = (float)re;
                d[1] = (float)im;
            }
    return 0;
}

int kiln_k_mel_weight_matrix(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t mel = p[0], len = p[1], bins = len / 2 + 1;
    float *y = bufs[0];
    double rate = ((const float *)bufs[1])[0];
    float lo = ((const float *)bufs[2])[0], hi = ((const float *)bufs[3])[0];
    /* the band edges in mel as float32 (the definition's scalar arithmetic), the rest in double */
    float lo_mel = 2595.0f * log10f(1.0f + lo / 700.0f), hi_mel = 2595.0f * log10f(1.0f + hi / 700.0f);
    float step = (hi_mel - lo_mel) / (float)(mel + 1);
    memset(y, 0, sizeof(float) * (size_t)(bins * mel));
    int64_t prev2 = 0, prev = 0;
    for (int64_t e = 0; e < mel + 2; e++) {
        double hz = 700.0 * (pow(10.0, ((double)e * step + lo_mel) / 2595.0) - 1.0);
        int64_t bin = rate > 0 ? (int64_t)floor((double)(len + 1) * hz / rate) : 0;
        if (e >= 2) { /* filter e - 2: rises over [prev2, prev], falls over [prev, bin) */
            int64_t i = e - 2, lo_b = prev2, c = prev, hi_b = bin;
            if (c == lo_b) {
                if (c >= 0 && c < bins) y[c * mel + i] = 1;
            } else
                for (int64_t j = lo_b; j <= c; j++)
                    if (j >= 0 && j < bins) y[j * mel + i] = (float)((double)(j - lo_b) / (double)(c - lo_b));
            for (int64_t j = c; j < hi_b; j++)
                if (j >= 0 && j < bins) y[j * mel + i] = (float)((double)(hi_b - j) / (double)(hi_b - c));
        }
        prev2 = prev;
        prev = bin;
    }
    return 0;
}

int kiln_k_max_unpool(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int rank = (int)p[0];
    int64_t nx = p[1], ny = 1, nd = 1;
    const int64_t *def = p + 2, *dims = p + 2 + rank;
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

/* One bilinear sample of a H x W plane at (y, x) with its four weights, or
 * nothing when the point is more than one pixel outside. */
static int roi_sample(float y, float x, int64_t H, int64_t W, int64_t pos[4], float w[4]) {
    if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W) return 0;
    if (y <= 0) y = 0;
    if (x <= 0) x = 0;
    int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1, x1;
    if (y0 >= H - 1) { y1 = y0 = H - 1; y = (float)y0; } else y1 = y0 + 1;
    if (x0 >= W - 1) { x1 = x0 = W - 1; x = (float)x0; } else x1 = x0 + 1;
    float ly = y - (float)y0, lx = x - (float)x0, hy = 1 - ly, hx = 1 - lx;
    pos[0] = y0 * W + x0; pos[1] = y0 * W + x1; pos[2] = y1 * W + x0; pos[3] = y1 * W + x1;
    w[0] = hy * hx; w[1] = hy * lx; w[2] = ly * hx; w[3] = ly * lx;
    return 1;
}

int kiln_k_roi_align(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t N = p[0], C = p[1], H = p[2], W = p[3], R = p[4], oh = p[5], ow = p[6], ratio = p[7];
    float scale = (float)kiln_p2d(p[8]), off = p[9] ? 0.5f : 0.0f;
    int max_mode = (int)p[10];
    float *y = bufs[0];
    const float *x = bufs[1], *rois = bufs[2];
    const int64_t *bi = bufs[3];
    for (int64_t r = 0; r < R; r++) {
        const float *b = rois + r * 4;
        float sw = b[0] * scale - off, sh = b[1] * scale - off, rw = b[2] * scale - off - sw, rh = b[3] * scale - off - sh;
        if (!p[9]) { rw = rw > 1 ? rw : 1; rh = rh > 1 ? rh : 1; }
        float bh = rh / (float)oh, bw = rw / (float)ow;
        int64_t gh = ratio > 0 ? ratio : (int64_t)ceilf(rh / (float)oh), gw = ratio > 0 ? ratio : (int64_t)ceilf(rw / (float)ow);
        float count = (float)(gh * gw > 1 ? gh * gw : 1);
        int64_t n = bi[r] < 0 ? 0 : bi[r] >= N ? N - 1 : bi[r];
        for (int64_t c = 0; c < C; c++) {
            const float *img = x + (n * C + c) * H * W;
            for (int64_t ph = 0; ph < oh; ph++)
                for (int64_t pw = 0; pw < ow; pw++) {
                    float acc = 0;
                    int first = 1;
                    for (int64_t iy = 0; iy < gh; iy++)
                        for (int64_t ix = 0; ix < gw; ix++) {
                            float yy = sh + (float)ph * bh + ((float)iy + 0.5f) * bh / (float)gh;
                            float xx = sw + (float)pw * bw + ((float)ix + 0.5f) * bw / (float)gw;
                            int64_t pos[4] = {0, 0, 0, 0};
                            float w[4] = {0, 0, 0, 0};
                            roi_sample(yy, xx, H, W, pos, w);
                            if (!max_mode) acc += w[0] * img[pos[0]] + w[1] * img[pos[1]] + w[2] * img[pos[2]] + w[3] * img[pos[3]];
                            else {
                                float v = fmaxf(fmaxf(fmaxf(w[0] * img[pos[0]], w[1] * img[pos[1]]), w[2] * img[pos[2]]), w[3] * img[pos[3]]);
                                acc = first ? v : fmaxf(acc, v);
                                first = 0;
                            }
                        }
                    y[((r * C + c) * oh + ph) * ow + pw] = max_mode ? acc : acc / count;
                }
        }
    }
    return 0;
}
