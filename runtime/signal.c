/* signal.c: the spectral ops of ONNX opset 17.
 *
 * DFT and STFT are direct O(n^2) transforms accumulated in double, with the
 * twiddle factors cos/sin(2 pi j / n) computed once per call into the step's
 * scratch and indexed by (k * t) mod n (exact, unlike an angle accumulated
 * step by step). The forward transform multiplies by exp(-i theta), the
 * inverse by exp(+i theta) and divides by n; a real input has no imaginary
 * part; a signal shorter than the transform is zero-padded, a longer one cut.
 * MelWeightMatrix builds the triangular filter bank of the ONNX definition
 * (band edges on the mel scale, mapped to FFT bins by floor). */
#include "kiln_params.h"

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

KILN_KERNEL(dft, "out <- x, scratch (f32; x [outer, n, inner, 1|2], out [outer, n_out, inner, 2])", F(outer) F(n) F(inner) F(complex_in) F(dft_length) F(n_out) F(inverse))
int kiln_k_dft(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_dft *q = KILN_P(dft, p);
    int64_t outer = q->outer, nin = q->n, inner = q->inner, cin = q->complex_in, n = q->dft_length, nout = q->n_out;
    int inverse = (int)q->inverse;
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

KILN_KERNEL(stft, "out <- signal, window (or signal), scratch (f32; out [batch, frames, bins, 2])", F(batch) F(length) F(complex_in) F(step) F(frames) F(frame_length) F(bins) F(has_window))
int kiln_k_stft(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_stft *q = KILN_P(stft, p);
    int64_t batch = q->batch, len = q->length, cin = q->complex_in, step = q->step, frames = q->frames, flen = q->frame_length, bins = q->bins;
    float *y = bufs[0];
    const float *x = bufs[1], *w = q->has_window ? bufs[2] : NULL;
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

KILN_KERNEL(mel_weight_matrix, "out <- sample_rate, lower_edge_hertz, upper_edge_hertz (f32 scalars)", F(num_mel_bins) F(dft_length))
int kiln_k_mel_weight_matrix(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_mel_weight_matrix *q = KILN_P(mel_weight_matrix, p);
    int64_t mel = q->num_mel_bins, len = q->dft_length, bins = len / 2 + 1;
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
