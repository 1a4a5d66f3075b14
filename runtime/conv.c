/* conv.c: Conv and ConvTranspose on float32, 1-D and 2-D computed as 3-D (win3,
 * with leading unit dimensions), in parallel over output planes or images.
 *
 * A depthwise convolution (one channel per group) is computed directly, plane
 * by plane: a 3x3 plane (dilation 1) through the AVX-512 kernels
 * (x86/conv_avx512.c) where the CPU has them, else, at stride 1 or 2, through
 * a zero-padded strip in the thread's scratch (no bounds checks, whole
 * vectors), else by the general loop, whose interior runs without bounds
 * checks. Every other convolution is im2col + GEMM (kiln_sgemm_ex, the bias, a
 * residual and the fused activation's clamp its epilogue; im2col skipped for
 * 1x1, stride 1, no padding), in chunks of output positions that stay in L2
 * when the column matrix would be large; one of few input channels goes to
 * x86/conv_avx512.c's direct kernel first. ConvTranspose is GEMMs of W^T by
 * slices of X into a thread's column buffer, whose rows are added into the
 * outputs their taps reach (chunks of output that no two threads share).
 * Winograd F(2x2, 3x3) is winograd.c; the integer convolutions are quant.c's. */
#include "kiln_internal.h"
#include "x86/x86.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The fused activation of conv and gemm: clamp to [lo, hi] (NaN stays NaN). */
KILN_CLONES static void clamp_range(float *y, int64_t n, const kiln_pact *act) {
    float lo, hi;
    if (!act_bounds(act, &lo, &hi)) return;
    for (int64_t i = 0; i < n; i++) y[i] = kiln_clampf(y[i], lo, hi);
}

/* One output row of a 3x3 depthwise convolution (dilation 1) whose three input
 * rows are all inside the image, columns [lo, hi) (all taps inside): nine taps
 * summed in registers, vectorized over the columns. */
KILN_CLONES static void dw3x3_row(const float *r0, const float *r1, const float *r2, const float *wk, float bias,
                                  int64_t sw, int64_t pw, int64_t lo, int64_t hi, float *yr) {
    float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7], w8 = wk[8];
    if (sw == 1) {
        const float *a = r0 - pw, *b = r1 - pw, *c = r2 - pw;
        for (int64_t ow = lo; ow < hi; ow++)
            yr[ow] = bias + w0 * a[ow] + w1 * a[ow + 1] + w2 * a[ow + 2] + w3 * b[ow] + w4 * b[ow + 1] + w5 * b[ow + 2] +
                     w6 * c[ow] + w7 * c[ow + 1] + w8 * c[ow + 2];
        return;
    }
    for (int64_t ow = lo; ow < hi; ow++) {
        int64_t i = ow * sw - pw;
        yr[ow] = bias + w0 * r0[i] + w1 * r0[i + 1] + w2 * r0[i + 2] + w3 * r1[i] + w4 * r1[i + 1] + w5 * r1[i + 2] +
                 w6 * r2[i] + w7 * r2[i + 1] + w8 * r2[i + 2];
    }
}

/* One 2-D depthwise plane: the interior (every tap inside the input) runs without
 * bounds checks in a loop the compiler vectorizes; the border checks each tap. */
KILN_CLONES static void depthwise_plane(const win3 *w, const float *x, const float *wk, float bias, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2];
    int64_t KH = w->k[1], KW = w->k[2], sh = w->stride[1], sw = w->stride[2], dh = w->dil[1], dw = w->dil[2];
    int64_t ph = w->pad[1], pw = w->pad[2];
    int64_t lo, hi; /* interior columns: ow*sw - pw >= 0 and ow*sw - pw + (KW-1)*dw < W */
    window_interior(W, OW, KW, sw, dw, pw, &lo, &hi);
    bool k3 = KH == 3 && KW == 3 && dh == 1 && dw == 1;
    for (int64_t oh = 0; oh < OH; oh++) {
        float *yr = y + oh * OW;
        int64_t ih0 = oh * sh - ph;
        if (k3 && ih0 >= 0 && ih0 + 2 < H) { /* the common case: taps in registers; then the edge columns */
            const float *r0 = x + ih0 * W;
            dw3x3_row(r0, r0 + W, r0 + 2 * W, wk, bias, sw, pw, lo, hi, yr);
            for (int64_t ow = 0; ow < OW; ow++) {
                if (ow == lo) ow = hi > lo ? hi : lo;
                if (ow >= OW) break;
                float s = bias;
                for (int64_t kh = 0; kh < 3; kh++)
                    for (int64_t kw = 0; kw < 3; kw++) {
                        int64_t iw = ow * sw - pw + kw;
                        if (iw >= 0 && iw < W) s += wk[kh * 3 + kw] * r0[kh * W + iw];
                    }
                yr[ow] = s;
            }
            continue;
        }
        for (int64_t ow = 0; ow < OW; ow++) yr[ow] = bias;
        for (int64_t kh = 0; kh < KH; kh++) {
            int64_t ih = oh * sh - ph + kh * dh;
            if (ih < 0 || ih >= H) continue;
            const float *xr = x + ih * W;
            for (int64_t kw = 0; kw < KW; kw++) {
                float wv = wk[kh * KW + kw];
                int64_t off = kw * dw - pw;
                for (int64_t ow = 0; ow < lo; ow++) {
                    int64_t iw = ow * sw + off;
                    if (iw >= 0 && iw < W) yr[ow] += wv * xr[iw];
                }
                if (sw == 1) {
                    const float *xs = xr + off;
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * xs[ow];
                } else {
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow * sw + off];
                }
                for (int64_t ow = hi; ow < OW; ow++) {
                    int64_t iw = ow * sw + off;
                    if (iw >= 0 && iw < W) yr[ow] += wv * xr[iw];
                }
            }
        }
    }
}

/* 3x3 depthwise planes (dilation 1) through a zero-padded copy, so that no
 * tap needs a bounds check and the loops run over whole vectors even on 7x7
 * planes. The plane goes in strips of output rows whose input fits in L1.
 * Stride 1: the padded strip is Wp = OW + 2 wide and the outputs are computed
 * flat over rows * Wp positions (each row's last two are discarded), nine taps
 * at fixed offsets. Stride 2: the padded input rows are split into their even
 * and odd columns, so every tap reads consecutive elements. Bias and the clamp
 * are applied on the way out. The scratch is per thread. */
#define DW_STRIP 2048 /* floats of padded input per strip */

/* Input row ih, columns c0, c0 + step, ... (n of them) into dst, whose
 * columns outside [0, W) are left as they are (zero: the strip buffer is
 * cleared once per plane); a row outside [0, H) is cleared. */
static inline KILN_ALWAYS_INLINE void dw_fill_row(const float *x, int64_t H, int64_t W, int64_t ih, int64_t c0, int64_t step,
                                                  int64_t n, float *dst) {
    if (ih < 0 || ih >= H) {
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    const float *xr = x + ih * W;
    int64_t lo = c0 >= 0 ? 0 : (-c0 + step - 1) / step, hi = W - c0 <= 0 ? 0 : (W - c0 - 1) / step + 1;
    if (hi > n) hi = n;
    if (step == 1) for (int64_t c = lo; c < hi; c++) dst[c] = xr[c0 + c];
    else for (int64_t c = lo; c < hi; c++) dst[c] = xr[c0 + c * step];
}

/* Stride 1's strip: R output rows of Wp = OW + 2; returns the floats it
 * takes: the strip, 32 floats of slack (whole vectors read past the last
 * row, *xn in all), then the sums. */
static int64_t dw_flat_floats(const win3 *w, int64_t *R, int64_t *Wp, int64_t *xn) {
    *Wp = w->out[2] + 2, *R = DW_STRIP / *Wp - 2;
    if (*R < 1) *R = 1;
    if (*R > w->out[1]) *R = w->out[1];
    *xn = (*R + 2) * *Wp + 32;
    return *xn + *R * *Wp + 16;
}

/* Stride 2's: R output rows, We = OW + 1 columns of each half (even and
 * odd), half = (2 R + 1) We floats; returns the floats it takes. */
static int64_t dw_s2_floats(const win3 *w, int64_t *R, int64_t *We, int64_t *half) {
    *We = w->out[2] + 1, *R = (DW_STRIP / (2 * *We) - 1) / 2; /* even columns 0, 2, .., 2 OW; odd 1, .., 2 OW - 1 */
    if (*R < 1) *R = 1;
    if (*R > w->out[1]) *R = w->out[1];
    *half = (2 * *R + 1) * *We;
    return 2 * *half;
}

KILN_CLONES static bool dw3x3_flat(const win3 *w, const float *x, const float *wk, float bias, float lo, float hi, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], ph = w->pad[1], pw = w->pad[2];
    int64_t Wp, R, xn, size = dw_flat_floats(w, &R, &Wp, &xn);
    float *xp = kiln_thread_scratch(size, xn, 1, Wp, pw * 65536 + W), *t = xp + xn;
    if (!xp) return false;
    float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7], w8 = wk[8];
    for (int64_t oh0 = 0; oh0 < OH; oh0 += R) {
        int64_t rows = OH - oh0 < R ? OH - oh0 : R, n = (rows * Wp + 15) & ~(int64_t)15; /* whole vectors */
        for (int64_t r = 0; r < rows + 2; r++) dw_fill_row(x, H, W, oh0 + r - ph, -pw, 1, Wp, xp + r * Wp);
        const float *a = xp, *b = xp + Wp, *c = xp + 2 * Wp;
        for (int64_t i0 = 0; i0 < n; i0 += 16)
            for (int64_t i = i0; i < i0 + 16; i++)
                t[i] = kiln_clampf(w0 * a[i] + w1 * a[i + 1] + w2 * a[i + 2] + w3 * b[i] + w4 * b[i + 1] + w5 * b[i + 2] + w6 * c[i] +
                                   w7 * c[i + 1] + w8 * c[i + 2] + bias, lo, hi);
        for (int64_t r = 0; r < rows; r++) memcpy(y + (oh0 + r) * OW, t + r * Wp, (size_t)OW * sizeof(float));
    }
    return true;
}

KILN_CLONES static bool dw3x3_s2(const win3 *w, const float *x, const float *wk, float bias, float lo, float hi, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], ph = w->pad[1], pw = w->pad[2];
    int64_t We, R, half, size = dw_s2_floats(w, &R, &We, &half); /* even and odd halves */
    float *ev = kiln_thread_scratch(size, size, 2, We, pw * 65536 + W), *od = ev + half;
    if (!ev) return false;
    float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7], w8 = wk[8];
    for (int64_t oh0 = 0; oh0 < OH; oh0 += R) {
        int64_t rows = OH - oh0 < R ? OH - oh0 : R;
        for (int64_t r = 0; r < 2 * rows + 1; r++) {
            dw_fill_row(x, H, W, 2 * oh0 + r - ph, -pw, 2, We, ev + r * We);
            dw_fill_row(x, H, W, 2 * oh0 + r - ph, 1 - pw, 2, We, od + r * We);
        }
        for (int64_t r = 0; r < rows; r++) {
            const float *e0 = ev + 2 * r * We, *e1 = e0 + We, *e2 = e1 + We;
            const float *o0 = od + 2 * r * We, *o1 = o0 + We, *o2 = o1 + We;
            float *yr = y + (oh0 + r) * OW;
            for (int64_t ow = 0; ow < OW; ow++)
                yr[ow] = kiln_clampf(w0 * e0[ow] + w1 * o0[ow] + w2 * e0[ow + 1] + w3 * e1[ow] + w4 * o1[ow] + w5 * e1[ow + 1] +
                                w6 * e2[ow] + w7 * o2[ow] + w8 * e2[ow + 1] + bias, lo, hi);
        }
    }
    return true;
}

static void conv_rows(void *arg, int64_t r0, int64_t r1) {
    const conv_job *j = arg;
    const win3 *w = &j->w;
    if (w->in[0] == 1 && w->k[0] == 1 && w->C == w->group && w->M == w->group) {
        int64_t isz = w->in[1] * w->in[2], osz = w->out[1] * w->out[2];
        bool k3 = w->k[1] == 3 && w->k[2] == 3 && w->dil[1] == 1 && w->dil[2] == 1;
        bool s1 = k3 && w->stride[1] == 1 && w->stride[2] == 1, s2 = k3 && w->stride[1] == 2 && w->stride[2] == 2;
        float lo, hi;
        act_bounds(j->act, &lo, &hi);
#ifdef HAVE_AVX512_KERNELS
        if (s1 && kiln_have_avx512() && dw3x3_small_fits(w)) {
            kiln_dw3x3_small_avx512(j, r0, r1, lo, hi);
            return;
        }
#endif
        for (int64_t r = r0; r < r1; r++) {
            const float *x = j->x + r * isz, *wk = j->wt + (r % w->M) * w->k[1] * w->k[2];
            float bias = j->b ? j->b[r % w->M] : 0.0f, *y = j->y + r * osz;
#ifdef HAVE_AVX512_KERNELS
            if ((s1 || s2) && kiln_have_avx512() && kiln_dw3x3_avx512(w, x, wk, bias, lo, hi, y)) continue;
#endif
            if (!(s1 && dw3x3_flat(w, x, wk, bias, lo, hi, y)) && !(s2 && dw3x3_s2(w, x, wk, bias, lo, hi, y))) {
                depthwise_plane(w, x, wk, bias, y);
                clamp_range(y, osz, j->act);
            }
        }
        return;
    }
    int64_t cpg = w->C / w->group, mpg = w->M / w->group;
    int64_t isz = w->in[0] * w->in[1] * w->in[2], osz = w->out[0] * w->out[1] * w->out[2];
    int64_t ksz = w->k[0] * w->k[1] * w->k[2];
    for (int64_t r = r0; r < r1; r++) { /* r = n * M + m */
        int64_t n = r / w->M, m = r % w->M, g = m / mpg;
        float *y = j->y + r * osz;
        const float *wm = j->wt + m * cpg * ksz;
        float bias = j->b ? j->b[m] : 0.0f;
        for (int64_t od = 0; od < w->out[0]; od++)
            for (int64_t oh = 0; oh < w->out[1]; oh++)
                for (int64_t ow = 0; ow < w->out[2]; ow++) {
                    float s = bias;
                    for (int64_t c = 0; c < cpg; c++) {
                        const float *x = j->x + (n * w->C + g * cpg + c) * isz;
                        const float *wk = wm + c * ksz;
                        for (int64_t kd = 0; kd < w->k[0]; kd++) {
                            int64_t id = od * w->stride[0] - w->pad[0] + kd * w->dil[0];
                            if (id < 0 || id >= w->in[0]) continue;
                            for (int64_t kh = 0; kh < w->k[1]; kh++) {
                                int64_t ih = oh * w->stride[1] - w->pad[1] + kh * w->dil[1];
                                if (ih < 0 || ih >= w->in[1]) continue;
                                const float *xr = x + (id * w->in[1] + ih) * w->in[2];
                                const float *wr = wk + (kd * w->k[1] + kh) * w->k[2];
                                for (int64_t kw = 0; kw < w->k[2]; kw++) {
                                    int64_t iw = ow * w->stride[2] - w->pad[2] + kw * w->dil[2];
                                    if (iw >= 0 && iw < w->in[2]) s += xr[iw] * wr[kw];
                                }
                            }
                        }
                    }
                    y[(od * w->out[1] + oh) * w->out[2] + ow] = s;
                }
        clamp_range(y, osz, j->act);
    }
}

/* Direct when depthwise (one channel per group); else im2col into the scratch
 * buffer (skipped for 1x1, stride 1, no padding) and one GEMM per image and group. */
bool kiln_conv_is_direct(int64_t C, int64_t M, int64_t group) { return C == group && M == group; }

int64_t kiln_conv_smallc_floats(int64_t nd, int64_t C, int64_t M, int64_t group, const int64_t *k) {
    int64_t taps = C;
    for (int64_t i = 0; i < nd; i++) taps *= k[i];
    if (nd != 2 || group != 1 || kiln_conv_is_direct(C, M, group) || C > KILN_SMALLC_MAX_C || taps > KILN_SMALLC_MAX_TAPS) return 0;
    return taps * ((M + 15) / 16 * 16);
}

void kiln_smallc_pack(float *dst, const float *w, int64_t taps, int64_t M) {
    int64_t Mp = (M + 15) / 16 * 16;
    for (int64_t t = 0; t < taps; t++)
        for (int64_t m = 0; m < Mp; m++) dst[t * Mp + m] = m < M ? w[m * taps + t] : 0.0f;
}

KILN_KERNEL(smallc_pack, "packed <- w (f32 [M, taps]; run once, when the context is created): the weights as [taps][M rounded up to 16], for the small-channel convolution",
    F(taps) F(M))
int kiln_k_smallc_pack(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_smallc_pack *q = KILN_P(smallc_pack, p);
    kiln_smallc_pack(bufs[0], bufs[1], q->taps, q->M);
    return 0;
}

/* Rows r0..r1 of the im2col matrix (row r = channel * ksz + kernel offset), its
 * columns j0..j0+nb of the output positions, into col (row stride nb). */
typedef struct { const win3 *w; const float *x; float *col; int64_t j0, nb; } im2col_job;

static void im2col_rows(void *arg, int64_t r0, int64_t r1) {
    const im2col_job *j = arg;
    const win3 *w = j->w;
    int64_t ksz = w->k[0] * w->k[1] * w->k[2], OH = w->out[1], OW = w->out[2];
    int64_t isz = w->in[0] * w->in[1] * w->in[2], j1 = j->j0 + j->nb;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / ksz, kk = r % ksz;
        int64_t kd = kk / (w->k[1] * w->k[2]), kh = kk / w->k[2] % w->k[1], kw = kk % w->k[2];
        const float *x = j->x + c * isz;
        int64_t off = -w->pad[2] + kw * w->dil[2], sw = w->stride[2];
        /* columns whose input iw = ow * sw + off is inside [0, W): [lo, hi) */
        int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw, hi = w->in[2] - off <= 0 ? 0 : (w->in[2] - off - 1) / sw + 1;
        if (hi > OW) hi = OW;
        if (lo > hi) lo = hi;
        for (int64_t pos = j->j0; pos < j1;) { /* one output row's part at a time */
            int64_t ow0 = pos % OW, oh = pos / OW % OH, od = pos / OW / OH;
            int64_t ow1 = OW - ow0 < j1 - pos ? OW : ow0 + (j1 - pos);
            float *row = j->col + (r * j->nb + pos - j->j0) - ow0; /* row[ow], ow in [ow0, ow1) */
            pos += ow1 - ow0;
            int64_t id = od * w->stride[0] - w->pad[0] + kd * w->dil[0], ih = oh * w->stride[1] - w->pad[1] + kh * w->dil[1];
            if (id < 0 || id >= w->in[0] || ih < 0 || ih >= w->in[1]) {
                for (int64_t ow = ow0; ow < ow1; ow++) row[ow] = 0.0f;
                continue;
            }
            const float *xr = x + (id * w->in[1] + ih) * w->in[2];
            int64_t a = lo > ow0 ? (lo < ow1 ? lo : ow1) : ow0, b = hi < ow1 ? (hi > a ? hi : a) : ow1;
            for (int64_t ow = ow0; ow < a; ow++) row[ow] = 0.0f;
            if (sw == 1) memcpy(row + a, xr + a + off, (size_t)(b - a) * sizeof(float));
#ifdef HAVE_AVX512_KERNELS
            else if (sw == 2 && kiln_have_avx512()) kiln_even_copy_avx512(row + a, xr + a * 2 + off, b - a);
#endif
            else for (int64_t ow = a; ow < b; ow++) row[ow] = xr[ow * sw + off];
            for (int64_t ow = b; ow < ow1; ow++) row[ow] = 0.0f;
        }
    }
}

/* A large GEMM convolution goes in chunks of output positions, one thread per
 * chunk: the chunk's im2col columns (at most CONV_CHUNK bytes) are written and
 * multiplied while they are in the thread's L2, instead of a whole im2col
 * matrix of megabytes written, then read back. A thread's chunks share the
 * scratch region where its first one starts. */
#define CONV_CHUNK (384 * 1024)

typedef struct {
    const win3 *w;
    const float *x, *a, *packed;
    float *col, *y;
    int64_t K, M, N, nb;
    kiln_gemm_epi e;
} conv_chunk_job;

/* Positions [32 u0, 32 u1) in chunks of at most nb: the threads split units
 * of 32 positions, not whole chunks (a 3x3/2 convolution at 28x28 was 5
 * chunks, 3 for one thread and 2 for the other). */
static void conv_chunks(void *arg, int64_t u0, int64_t u1) {
    const conv_chunk_job *j = arg;
    int64_t p0 = u0 * 32, p1 = u1 * 32 < j->N ? u1 * 32 : j->N;
    float *col = j->col + p0 * j->K; /* within the scratch: every chunk ends by N */
    int64_t pieces = (p1 - p0 + j->nb - 1) / j->nb, step = ((p1 - p0 + pieces - 1) / pieces + 31) / 32 * 32; /* even chunks */
    for (int64_t j0 = p0; j0 < p1; j0 += step) {
        int64_t nb = p1 - j0 < step ? p1 - j0 : step;
        im2col_job ij = {j->w, j->x, col, j0, nb};
        im2col_rows(&ij, 0, j->K);
        kiln_gemm_epi e = j->e;
        if (e.residual) e.residual += j0;
        kiln_sgemm_ex(NULL, j->M, nb, j->K, 1.0f, j->a, j->K, 0, j->packed, col, nb, 0, NULL, j->y + j0, j->N, &e);
    }
}

void kiln_win3_read(win3 *w, int64_t nd, const kiln_pwin *q) {
    for (int i = 0; i < 3; i++) {
        w->in[i] = w->out[i] = w->k[i] = w->stride[i] = w->dil[i] = 1;
        w->pad[i] = w->pad_end[i] = 0;
    }
    int64_t s = 3 - nd;
    for (int64_t i = 0; i < nd; i++) {
        w->in[s + i] = q->in[i];
        w->out[s + i] = q->out[i];
        w->k[s + i] = q->k[i];
        w->stride[s + i] = q->stride[i];
        w->dil[s + i] = q->dil[i];
        w->pad[s + i] = q->pad_begin[i];
        w->pad_end[s + i] = q->pad_end[i];
    }
}

/* The parameters Conv and ConvTranspose share (the first fields of both rows). */
static void conv_read(conv_job *j, void *const *bufs, int64_t nd, int64_t N, int64_t C, int64_t M, int64_t group, int64_t has_b,
                      const kiln_pwin *win) {
    j->w.N = N;
    j->w.C = C;
    j->w.M = M;
    j->w.group = group;
    kiln_win3_read(&j->w, nd, win);
    j->y = bufs[0];
    j->x = bufs[1];
    j->wt = bufs[2];
    j->b = has_b ? bufs[3] : NULL;
    j->act = NULL;
}

/* A depthwise convolution's 3x3 planes take a strip of the thread's scratch
 * (the larger of this file's and the AVX-512 kernels', either may run);
 * every other convolution the GEMM's packing panels. */
void kiln_need_conv(const int64_t *p, kiln_scratch_need *need) {
    const kiln_p_conv *q = KILN_P(conv, p);
    if (!kiln_conv_is_direct(q->C, q->M, q->group)) {
        kiln_sgemm_need(need);
        return;
    }
    win3 w;
    kiln_win3_read(&w, q->nd, &q->w);
    if (w.in[0] != 1 || w.k[0] != 1 || w.k[1] != 3 || w.k[2] != 3 || w.dil[1] != 1 || w.dil[2] != 1) return; /* conv_rows' */
    int64_t r, c, h, f = 0;
    if (w.stride[1] == 1 && w.stride[2] == 1) f = dw_flat_floats(&w, &r, &c, &h);
    if (w.stride[1] == 2 && w.stride[2] == 2) f = dw_s2_floats(&w, &r, &c, &h);
#ifdef HAVE_AVX512_KERNELS
    if (kiln_dw3x3_avx512_floats(&w) > f) f = kiln_dw3x3_avx512_floats(&w);
#endif
    if (f > need->floats) need->floats = f;
}

KILN_KERNEL(conv, "out <- x, w, b, col, w_packed, residual, w_smallc (f32; b unused unless has_b; col: scratch of Cg*k*out floats, or unused when direct; w_packed: w packed by pack_a, used when packed; residual: added before the activation when has_res; w_smallc: w as the small-channel path reads it (kiln_conv_smallc_floats), packed by smallc_pack when smallc is 2, packed into it by the kernel when it takes that path and smallc is 1 (folding, or weights computed at run time), unused when 0)",
    F(nd) F(N) F(C) F(M) F(group) F(has_b) W(w) E(act) F(packed) F(has_res) F(smallc))
int kiln_k_conv(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_conv, p);
    if (rc) return rc;
    const kiln_p_conv *q = KILN_P(conv, p);
    conv_job j;
    conv_read(&j, bufs, q->nd, q->N, q->C, q->M, q->group, q->has_b, &q->w);
    j.act = &q->act;
    if (kiln_conv_is_direct(j.w.C, j.w.M, j.w.group)) { kiln_parallel_for(pool, j.w.N * j.w.M, conv_rows, &j); return 0; }
    const win3 *w = &j.w;
    int64_t cpg = w->C / w->group, mpg = w->M / w->group;
    int64_t ksz = w->k[0] * w->k[1] * w->k[2], osz = w->out[0] * w->out[1] * w->out[2], isz = w->in[0] * w->in[1] * w->in[2];
    const float *packed = q->packed ? bufs[5] : NULL;
    const float *res = q->has_res ? bufs[6] : NULL; /* kiln.residual (never on the direct path) */
#ifdef HAVE_AVX512_KERNELS
    if (q->smallc && kiln_conv_smallc(pool, &j, res, bufs[7], q->smallc == 1)) return 0;
#endif
    bool pointwise = ksz == 1;
    for (int i = 0; i < 3; i++) pointwise = pointwise && w->stride[i] == 1 && w->pad[i] == 0 && w->pad_end[i] == 0;
    for (int64_t n = 0; n < w->N; n++)
        for (int64_t g = 0; g < w->group; g++) {
            const float *x = j.x + (n * w->C + g * cpg) * isz;
            float *y = j.y + (n * w->M + g * mpg) * osz;
            const float *col = x, *a = j.wt + g * mpg * cpg * ksz;
            const float *pa = packed ? packed + g * kiln_sgemm_packed_a_floats(mpg, cpg * ksz) : NULL;
            kiln_gemm_epi e = epi_of(j.b ? j.b + g * mpg : NULL, NULL, 1, j.act);
            if (res) e.residual = res + (n * w->M + g * mpg) * osz;
            int64_t K = cpg * ksz, nb = CONV_CHUNK / (4 * K) / 32 * 32;
            if (!pointwise && nb >= 64 && osz >= 4 * nb) {
                conv_chunk_job cj = {w, x, a, pa, bufs[4], y, K, mpg, osz, nb, e};
                kiln_parallel_for(pool, (osz + 31) / 32, conv_chunks, &cj);
                continue;
            }
            if (!pointwise) {
                im2col_job ij = {w, x, bufs[4], 0, osz};
                kiln_parallel_for(pool, cpg * ksz, im2col_rows, &ij);
                col = bufs[4];
            }
            kiln_sgemm_ex(pool, mpg, osz, K, 1.0f, a, K, 0, pa, col, osz, 0, NULL, y, osz, &e);
        }
    return 0;
}

/* Transposed convolution as GEMMs and a scatter. Along dimension a (the
 * outermost one that is not 1: depth in 3-D, rows in 2-D, columns in 1-D) the
 * output is cut into chunks of R slices; one unit of work is an image, a
 * group, a block of mb output channels and a chunk, so that no two units
 * write the same output. A unit starts its chunk from the bias, then for each
 * kernel index ka along a takes the input slices ia that land inside the
 * chunk (ia * s - pad + ka * dil in [o0, o1): at most R / s of them), multiplies
 * the weights of ka (reordered per group and ka as [c][m][the other taps t],
 * so that W^T of a block is one matrix) by those slices of X into its column
 * buffer (rows (m, t), one column per input position; in the thread's
 * scratch, sized at create by kiln_need_conv_transpose) and adds each column
 * row into the outputs its tap reaches. Every product is computed once,
 * whatever the overlap of the windows; a stride equal to the kernel writes
 * each output once, bias and all. The scalar scatter this replaced (each
 * input element's products added into its outputs, parallel over images and
 * groups only) took 151 ms for a 2x2 stride-2 layer of 24 channels at
 * 160 x 160 (0.12 GFLOP), now 1.3 ms on one thread (ONNX Runtime 4 to 8). */
#define CONVT_COL (64 * 1024) /* floats of a unit's column buffer and (accumulated) output chunk: in L2 */

typedef struct {
    int a;                         /* the dimension cut into chunks */
    int64_t ka_n, tin;             /* the kernel's size along a; its taps in the dimensions after a */
    int64_t inner, inner_out;      /* input and output elements per slice along a */
    int64_t mb, nia, R;            /* output channels per block, input slices per GEMM, output slices per chunk (nia * stride) */
    bool direct;                   /* each output reached by exactly one tap: written once, bias and all, not accumulated */
} convt_plan;

/* The chunks and blocks of a layer on `threads` threads (1: the largest,
 * what the scratch is sized for; more threads take smaller chunks so that
 * each has a few units). */
static void convt_plan_of(const win3 *w, int64_t mpg, int64_t units0, int64_t threads, convt_plan *pl) {
    int a = 2; /* the dimensions before a are 1s */
    if (w->in[1] > 1 || w->out[1] > 1 || w->k[1] > 1) a = 1;
    if (w->in[0] > 1 || w->out[0] > 1 || w->k[0] > 1) a = 0;
    pl->a = a;
    pl->ka_n = w->k[a];
    pl->tin = pl->inner = pl->inner_out = 1;
    for (int d = a + 1; d < 3; d++) {
        pl->tin *= w->k[d];
        pl->inner *= w->in[d];
        pl->inner_out *= w->out[d];
    }
    /* stride = kernel, no dilation, no output past the last input's taps
     * (output_padding), in every dimension (the 1s before a: no padding) */
    pl->direct = true;
    for (int d = 0; d < 3; d++)
        pl->direct = pl->direct && w->stride[d] == w->k[d] && w->dil[d] == 1 && w->out[d] + w->pad[d] <= w->in[d] * w->stride[d] &&
                     (d >= a || w->pad[d] == 0);
    int64_t s = w->stride[a], most = (w->out[a] + s - 1) / s; /* input slices a chunk of all of out[a] takes per ka */
    /* floats of one channel per input slice: its column rows, and (accumulated
     * there) its chunk of output; both stay in L2 */
    int64_t per = pl->tin * pl->inner + (pl->direct ? 0 : s * pl->inner_out);
    if (per < 1) per = 1;
    pl->nia = CONVT_COL / (mpg * per);
    pl->mb = mpg;
    if (pl->nia < 1) {
        pl->nia = 1;
        pl->mb = CONVT_COL / per > 1 ? CONVT_COL / per : 1;
    }
    if (pl->nia > most) pl->nia = most > 0 ? most : 1;
    for (;;) { /* a few units per thread */
        int64_t chunks = (w->out[a] + pl->nia * s - 1) / (pl->nia * s);
        if (pl->nia == 1 || units0 * ((mpg + pl->mb - 1) / pl->mb) * chunks >= 4 * threads) break;
        pl->nia = (pl->nia + 1) / 2;
    }
    pl->R = pl->nia * s;
}

/* The floats of a unit's column buffer. */
static int64_t convt_col_floats(const convt_plan *pl) { return pl->mb * pl->tin * pl->nia * pl->inner; }

/* yr[iw * sw + off] += cr[iw] (set: = b + cr[iw]) for the iw (< W) whose
 * output column is inside [0, OW). */
KILN_CLONES static void convt_row(float *yr, const float *cr, int64_t W, int64_t OW, int64_t sw, int64_t off, bool set, float b) {
    int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw, hi = OW - off <= 0 ? 0 : (OW - off - 1) / sw + 1;
    if (hi > W) hi = W;
    float *y = yr + off;
    if (set && sw == 1) for (int64_t iw = lo; iw < hi; iw++) y[iw] = b + cr[iw];
    else if (set) for (int64_t iw = lo; iw < hi; iw++) y[iw * sw] = b + cr[iw];
    else if (sw == 1) for (int64_t iw = lo; iw < hi; iw++) y[iw] += cr[iw];
    else for (int64_t iw = lo; iw < hi; iw++) y[iw * sw] += cr[iw];
}

/* Two neighbouring taps of a kernel at stride 2 (dilation 1), interleaved:
 * yr[2 iw + off + kw] += c_kw[iw] (set: = b + c_kw[iw]), columns outside
 * [0, OW) skipped. */
KILN_CLONES static void convt_row2(float *yr, const float *c0, const float *c1, int64_t W, int64_t OW, int64_t off, bool set, float b) {
    int64_t lo = off >= 0 ? 0 : (-off + 1) / 2, hi = OW - off - 1 <= 0 ? 0 : (OW - off - 2) / 2 + 1; /* both columns inside */
    if (hi > W) hi = W;
    if (lo > hi) lo = hi;
    float *y = yr + off;
    if (set)
        for (int64_t iw = lo; iw < hi; iw++) {
            y[2 * iw] = b + c0[iw];
            y[2 * iw + 1] = b + c1[iw];
        }
    else
        for (int64_t iw = lo; iw < hi; iw++) {
            y[2 * iw] += c0[iw];
            y[2 * iw + 1] += c1[iw];
        }
    for (int64_t iw = 0; iw < W; iw++) { /* the edges */
        if (iw == lo) iw = hi;
        if (iw >= W) break;
        for (int kw = 0; kw < 2; kw++) {
            int64_t o = 2 * iw + off + kw;
            float c = kw ? c1[iw] : c0[iw];
            if (o >= 0 && o < OW) yr[o] = set ? b + c : yr[o] + c;
        }
    }
}

/* One output channel's column rows c (tin rows of ldc: input slices i0 ..
 * i0 + nia along a, each of inner positions) added into its output plane y at
 * kernel index ka along a. The slices were chosen to land in the chunk. */
static void convt_scatter(const win3 *w, const convt_plan *pl, const float *c, int64_t ldc, int64_t ka, int64_t i0, int64_t nia, float b, float *y) {
    bool set = pl->direct;
    int a = pl->a;
    int64_t W = w->in[2], OW = w->out[2], KW = w->k[2], sw = w->stride[2], pw = w->pad[2];
    bool two = sw == 2 && w->dil[2] == 1; /* the kernel's columns in pairs, interleaved */
    for (int64_t i = 0; i < nia; i++) {
        int64_t oa = (i0 + i) * w->stride[a] - w->pad[a] + ka * w->dil[a];
        const float *ci = c + i * pl->inner;
        if (a == 2) { /* 1-D: one element */
            y[oa] = set ? b + ci[0] : y[oa] + ci[0];
            continue;
        }
        for (int64_t th = 0; th < (a == 0 ? w->k[1] : 1); th++) /* 3-D: the kernel's rows, then each input row */
            for (int64_t ih = 0; ih < (a == 0 ? w->in[1] : 1); ih++) {
                int64_t oh = a == 0 ? ih * w->stride[1] - w->pad[1] + th * w->dil[1] : oa;
                if (oh < 0 || oh >= w->out[1]) continue;
                float *yr = y + (a == 0 ? oa * w->out[1] * OW : 0) + oh * OW;
                const float *cr = ci + th * KW * ldc + ih * W;
                int64_t kw = 0;
                for (; two && kw + 1 < KW; kw += 2) convt_row2(yr, cr + kw * ldc, cr + (kw + 1) * ldc, W, OW, kw - pw, set, b);
                for (; kw < KW; kw++) convt_row(yr, cr + kw * ldc, W, OW, sw, kw * w->dil[2] - pw, set, b);
            }
    }
}

typedef struct {
    conv_job j;
    convt_plan pl;
    const float *wr; /* the weights as [g][ka][c][m][t] */
    int64_t mblocks, chunks;
} convt_job;

/* Units u0..u1: u = ((n * group + g) * mblocks + block) * chunks + chunk. */
static void convt_units(void *arg, int64_t u0, int64_t u1) {
    const convt_job *cj = arg;
    const win3 *w = &cj->j.w;
    const convt_plan *pl = &cj->pl;
    int a = pl->a;
    int64_t cpg = w->C / w->group, mpg = w->M / w->group, isz = w->in[0] * w->in[1] * w->in[2], osz = w->out[0] * w->out[1] * w->out[2];
    int64_t s = w->stride[a], p = w->pad[a], d = w->dil[a], in_a = w->in[a];
    float *col = kiln_thread_scratch(convt_col_floats(pl), 0, -3, 0, 0);
    if (!col) return; /* kiln_scratch_check ruled it out */
    for (int64_t u = u0; u < u1; u++) {
        int64_t ch = u % cj->chunks, blk = u / cj->chunks % cj->mblocks, ng = u / cj->chunks / cj->mblocks;
        int64_t n = ng / w->group, g = ng % w->group, m0 = blk * pl->mb, m1 = m0 + pl->mb < mpg ? m0 + pl->mb : mpg;
        int64_t o0 = ch * pl->R, o1 = o0 + pl->R < w->out[a] ? o0 + pl->R : w->out[a];
        float *y = cj->j.y + (n * w->M + g * mpg) * osz;
        for (int64_t m = m0; m < m1 && !pl->direct; m++) { /* accumulated: from the bias */
            float b = cj->j.b ? cj->j.b[g * mpg + m] : 0.0f, *ym = y + m * osz + o0 * pl->inner_out;
            for (int64_t e = 0; e < (o1 - o0) * pl->inner_out; e++) ym[e] = b;
        }
        bool pre = true; /* the dimensions before a (1s) reach output 0 only without padding */
        for (int i = 0; i < a; i++) pre = pre && w->pad[i] == 0;
        for (int64_t ka = 0; ka < pl->ka_n && pre; ka++) {
            /* the input slices ia with ia * s - p + ka * d in [o0, o1) */
            int64_t lo = o0 + p - ka * d, hi = o1 + p - ka * d;
            int64_t i0 = lo <= 0 ? 0 : (lo + s - 1) / s, i1 = hi <= 0 ? 0 : (hi + s - 1) / s;
            if (i1 > in_a) i1 = in_a;
            if (i0 >= i1) continue;
            int64_t nn = (i1 - i0) * pl->inner, mm = (m1 - m0) * pl->tin;
            if (nn == 0 || cpg == 0) continue; /* nothing reaches the output (not direct then: from the bias) */
            const float *A = cj->wr + ((g * pl->ka_n + ka) * cpg) * mpg * pl->tin + m0 * pl->tin;
            const float *B = cj->j.x + (n * w->C + g * cpg) * isz + i0 * pl->inner;
            kiln_gemm_epi e = epi_of(NULL, NULL, 1, NULL);
            kiln_sgemm_ex(NULL, mm, nn, cpg, 1.0f, A, mpg * pl->tin, 1, NULL, B, isz, 0, NULL, col, nn, &e);
            for (int64_t m = m0; m < m1; m++)
                convt_scatter(w, pl, col + (m - m0) * pl->tin * nn, nn, ka, i0, i1 - i0, cj->j.b ? cj->j.b[g * mpg + m] : 0.0f, y + m * osz);
        }
    }
}

/* Rows r0..r1 of the reordered weights: r = (g * ka_n + ka) * cpg + c, each
 * [m][t] from w[g * cpg + c][m][ka * tin + t]. */
static void convt_reorder(void *arg, int64_t r0, int64_t r1) {
    const convt_job *cj = arg;
    const win3 *w = &cj->j.w;
    int64_t cpg = w->C / w->group, mpg = w->M / w->group, kn = cj->pl.ka_n, tin = cj->pl.tin;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r % cpg, ka = r / cpg % kn, g = r / cpg / kn;
        const float *src = cj->j.wt + (g * cpg + c) * mpg * kn * tin + ka * tin;
        float *dst = (float *)cj->wr + r * mpg * tin;
        for (int64_t m = 0; m < mpg; m++)
            for (int64_t t = 0; t < tin; t++) dst[m * tin + t] = src[m * kn * tin + t];
    }
}

/* A unit's column buffer in the thread's scratch, and the GEMM's panels. */
void kiln_need_conv_transpose(const int64_t *p, kiln_scratch_need *need) {
    const kiln_p_conv_transpose *q = KILN_P(conv_transpose, p);
    win3 w;
    kiln_win3_read(&w, q->nd, &q->w);
    convt_plan pl;
    convt_plan_of(&w, q->M / q->group, q->N * q->group, 1, &pl);
    if (convt_col_floats(&pl) > need->floats) need->floats = convt_col_floats(&pl);
    kiln_sgemm_need(need);
}

KILN_KERNEL(conv_transpose, "out <- x, w, b, wr (f32; b unused unless has_b; wr: scratch of w's size, the weights reordered per group and kernel index)",
    F(nd) F(N) F(C) F(M) F(group) F(has_b) W(w))
int kiln_k_conv_transpose(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_conv_transpose, p);
    if (rc) return rc;
    const kiln_p_conv_transpose *q = KILN_P(conv_transpose, p);
    convt_job cj;
    conv_read(&cj.j, bufs, q->nd, q->N, q->C, q->M, q->group, q->has_b, &q->w);
    const win3 *w = &cj.j.w;
    int64_t mpg = w->M / w->group, osz = w->out[0] * w->out[1] * w->out[2];
    if (w->N * w->M * osz == 0) return 0;
    convt_plan_of(w, mpg, w->N * w->group, pool ? kiln_pool_threads(pool) : 1, &cj.pl);
    if (w->C == 0 || cj.pl.inner == 0) cj.pl.direct = false; /* no products: the output is the bias */
    cj.wr = bufs[4];
    cj.mblocks = (mpg + cj.pl.mb - 1) / cj.pl.mb;
    cj.chunks = (w->out[cj.pl.a] + cj.pl.R - 1) / cj.pl.R;
    kiln_parallel_for(pool, w->group * cj.pl.ka_n * (w->C / w->group), convt_reorder, &cj);
    kiln_parallel_for(pool, w->N * w->group * cj.mblocks * cj.chunks, convt_units, &cj);
    return 0;
}
