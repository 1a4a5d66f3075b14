/* conv_avx512.c: the convolution kernels for AVX-512, which conv.c calls when
 * kiln_have_avx512(): 3x3 depthwise planes (dilation 1, stride 1 or 2) read
 * straight from the NCHW plane, every tap a masked load (the masks stand in for
 * the zero padding, so nothing is copied); small 3x3 stride-1 planes (MobileNet's
 * 14x14 and 7x7) many at a time, read flat across row ends; the direct
 * convolution of few input channels (an image's first layer), 16 output
 * columns times 16 output channels in registers; and im2col's stride-2 row
 * copies. Each is a whole kernel (its loops and the helpers they inline), and
 * each returns false where its shape does not fit; the caller then runs its
 * portable loops. */
#include "x86.h"

#ifdef HAVE_AVX512_KERNELS
#include <stdlib.h>
#include <string.h>

#define DW_R2 4     /* stride 2: output rows per block */

void kiln_tap_masks(int64_t nv, int64_t KW, int64_t s, int64_t pw, int64_t W, __mmask16 (*mk)[TAP_MAXKW][2]) {
    for (int64_t v = 0; v < nv; v++)
        for (int64_t kw = 0; kw < KW; kw++) {
            int64_t b = v * 16 * s - pw + kw;
            mk[v][kw][0] = row_lanes(b, W);
            mk[v][kw][1] = row_lanes(b + 16, W);
        }
}

/* Each path of dw3x3_avx512 is a function of its own (noinline), its taps
 * nine named vectors: in one function, or filled by a loop, gcc kept them on
 * the stack, a load per FMA beside the row loads (56x56 planes, 144 channels:
 * 0.28 -> 0.17 ms). */
#define DW_TAPS                                                                                                        \
    __m512 k0 = _mm512_set1_ps(wk[0]), k1 = _mm512_set1_ps(wk[1]), k2 = _mm512_set1_ps(wk[2]);                         \
    __m512 k3 = _mm512_set1_ps(wk[3]), k4 = _mm512_set1_ps(wk[4]), k5 = _mm512_set1_ps(wk[5]);                         \
    __m512 k6 = _mm512_set1_ps(wk[6]), k7 = _mm512_set1_ps(wk[7]), k8 = _mm512_set1_ps(wk[8]);                         \
    const __m512 kw[9] = {k0, k1, k2, k3, k4, k5, k6, k7, k8};                                                        \
    __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
#define DW_PATH(name)                                                                                                  \
    __attribute__((target("avx512f"), noinline)) static bool name(const float *x, int64_t H, int64_t W, int64_t OH,   \
                                                                  int64_t OW, int64_t ph, int64_t pw, const float *wk, \
                                                                  float bias, float lo, float hi, float *y)

/* dw3x3_avx512's stride 1: DW_R output rows at a time, each input row loaded
 * once (three shifts) for all its outputs. */
DW_PATH(dw3x3_s1_avx512) {
    int64_t nv = (OW + 15) / 16;
    __mmask16 mk[DW_MAXV][3], om[DW_MAXV];
    for (int64_t v = 0; v < nv; v++) {
        for (int t = 0; t < 3; t++) mk[v][t] = row_lanes(v * 16 - pw + t, W);
        om[v] = row_lanes(v * 16, OW);
    }
    DW_TAPS
    enum { DW_R = 4 };
    for (int64_t oh0 = 0; oh0 < OH; oh0 += DW_R) {
        int64_t rows = OH - oh0 < DW_R ? OH - oh0 : DW_R;
        const float *rp[DW_R + 2];
        for (int i = 0; i < DW_R + 2; i++) {
            int64_t ih = oh0 - ph + i;
            rp[i] = i < rows + 2 && ih >= 0 && ih < H ? x + ih * W : NULL;
        }
        for (int64_t v = 0; v < nv; v++) {
            int64_t b = v * 16 - pw;
            const __mmask16 *m = mk[v];
            __m512 acc[DW_R];
#pragma GCC unroll 4
            for (int o = 0; o < DW_R; o++) acc[o] = vb;
#pragma GCC unroll 6
            for (int i = 0; i < DW_R + 2; i++) {
                if (!rp[i]) continue;
                __m512 x0 = _mm512_maskz_loadu_ps(m[0], rp[i] + b), x1 = _mm512_maskz_loadu_ps(m[1], rp[i] + b + 1);
                __m512 x2 = _mm512_maskz_loadu_ps(m[2], rp[i] + b + 2);
#pragma GCC unroll 4
                for (int o = 0; o < DW_R; o++) {
                    int kh = i - o;
                    if (kh < 0 || kh > 2) continue;
                    acc[o] = _mm512_fmadd_ps(kw[kh * 3], x0, acc[o]);
                    acc[o] = _mm512_fmadd_ps(kw[kh * 3 + 1], x1, acc[o]);
                    acc[o] = _mm512_fmadd_ps(kw[kh * 3 + 2], x2, acc[o]);
                }
            }
            /* constant indices once unrolled: a loop to `rows` indexed acc at run time, which
             * kept it on the stack, every FMA a store and a reload */
#pragma GCC unroll 4
            for (int o = 0; o < DW_R; o++)
                if (o < rows)
                    _mm512_mask_storeu_ps(y + (oh0 + o) * OW + v * 16, om[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc[o])));
        }
    }
    return true;
}

/* The stride-2 kernels' load masks (kiln_tap_masks' for 3 columns, in the order
 * the loads take them: columns b, b + 16, b + 2, b + 18 of output vector v)
 * and each output vector's store mask; their taps and bounds. */
#define DW_S2_SETUP                                                                                                     \
    int64_t nv = (OW + 15) / 16;                                                                                       \
    __mmask16 mk[DW_MAXV + 1][4], om[DW_MAXV + 1];                                                                     \
    for (int64_t v = 0; v <= nv; v++) {                                                                                \
        int64_t b = v * 32 - pw;                                                                                       \
        for (int t = 0; t < 4; t++) mk[v][t] = row_lanes(b + (t & 1) * 16 + (t >> 1) * 2, W);                         \
        om[v] = row_lanes(v * 16, OW);                                                                                 \
    }                                                                                                                  \
    DW_TAPS

/* stride 2, rows of at most 7 outputs (MobileNet's 14x14 -> 7x7): two output
 * rows per vector, the first in lanes [0, OW), the next in [OW, 2 OW) (they
 * lie next to each other in the output), each tap one permute of two input
 * rows two apart: five row loads, nine permutes and nine FMAs for 2 OW
 * outputs, where a row a vector took twelve loads, nine permutes and nine
 * FMAs for OW. */
DW_PATH(dw3x3_s2_pairs_avx512) {
    DW_TAPS
    __mmask16 lm = row_lanes(-pw, W); /* a row loaded from column -pw: lane l is column l - pw */
    /* tap column t of lane l: 2 l + t of the first row (l < OW), 16 + 2 (l - OW) + t of the second; lanes
     * from 2 OW on are not stored */
    __m512i two_l = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
    __m512i base = _mm512_mask_add_epi32(two_l, (__mmask16)~((1u << OW) - 1), two_l, _mm512_set1_epi32(16 - 2 * (int)OW));
    __m512i ix[3] = {base, _mm512_add_epi32(base, _mm512_set1_epi32(1)), _mm512_add_epi32(base, _mm512_set1_epi32(2))};
    for (int64_t oh = 0; oh < OH; oh += 2) {
        __m512 r[5];
        for (int i = 0; i < 5; i++) {
            int64_t ih = 2 * oh - ph + i;
            r[i] = ih >= 0 && ih < H ? _mm512_maskz_loadu_ps(lm, x + ih * W - pw) : _mm512_setzero_ps();
        }
        __m512 a0 = vb, a1 = _mm512_setzero_ps(), a2 = a1;
        a0 = _mm512_fmadd_ps(kw[0], _mm512_permutex2var_ps(r[0], ix[0], r[2]), a0);
        a1 = _mm512_fmadd_ps(kw[1], _mm512_permutex2var_ps(r[0], ix[1], r[2]), a1);
        a2 = _mm512_fmadd_ps(kw[2], _mm512_permutex2var_ps(r[0], ix[2], r[2]), a2);
        a0 = _mm512_fmadd_ps(kw[3], _mm512_permutex2var_ps(r[1], ix[0], r[3]), a0);
        a1 = _mm512_fmadd_ps(kw[4], _mm512_permutex2var_ps(r[1], ix[1], r[3]), a1);
        a2 = _mm512_fmadd_ps(kw[5], _mm512_permutex2var_ps(r[1], ix[2], r[3]), a2);
        a0 = _mm512_fmadd_ps(kw[6], _mm512_permutex2var_ps(r[2], ix[0], r[4]), a0);
        a1 = _mm512_fmadd_ps(kw[7], _mm512_permutex2var_ps(r[2], ix[1], r[4]), a1);
        a2 = _mm512_fmadd_ps(kw[8], _mm512_permutex2var_ps(r[2], ix[2], r[4]), a2);
        __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
        __mmask16 om = (__mmask16)((1u << ((oh + 1 < OH ? 2 : 1) * OW)) - 1);
        _mm512_mask_storeu_ps(y + oh * OW, om, _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
    }
    return true;
}

/* stride 2, rows of at most 32 outputs: each tap row's even and odd columns
 * picked from two loads by permutes (splitting the rows first, as below, cost
 * more than it saved on them: 14x14 -> 7x7 0.050 -> 0.074 ms) */
DW_PATH(dw3x3_s2_rows_avx512) {
    DW_S2_SETUP
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t ih = oh * 2 - ph;
        const float *r0 = ih >= 0 && ih < H ? x + ih * W : NULL;
        const float *r1 = ih + 1 >= 0 && ih + 1 < H ? x + (ih + 1) * W : NULL;
        const float *r2 = ih + 2 >= 0 && ih + 2 < H ? x + (ih + 2) * W : NULL;
        for (int64_t v = 0; v < nv; v++) {
            __m512 a0 = vb, a1 = _mm512_setzero_ps(), a2 = a1;
            int64_t b = v * 32 - pw;
            const __mmask16 *m = mk[v];
#define DW_S2(r, acc, t) if (r) { \
            __m512 l0 = _mm512_maskz_loadu_ps(m[0], r + b), l1 = _mm512_maskz_loadu_ps(m[1], r + b + 16); \
            __m512 l2 = _mm512_maskz_loadu_ps(m[2], r + b + 2), l3 = _mm512_maskz_loadu_ps(m[3], r + b + 18); \
            acc = _mm512_fmadd_ps(kw[t], even_cols(l0, l1), acc); \
            acc = _mm512_fmadd_ps(kw[t + 1], odd_cols(l0, l1), acc); \
            acc = _mm512_fmadd_ps(kw[t + 2], even_cols(l2, l3), acc); }
            DW_S2(r0, a0, 0) DW_S2(r1, a1, 3) DW_S2(r2, a2, 6)
#undef DW_S2
            __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
            _mm512_mask_storeu_ps(y + oh * OW + v * 16, om[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
        }
    }
    return true;
}

/* stride 2, wider rows: the input rows of DW_R2 output rows are split once
 * into their even and odd columns, E[i] = x[2i - pw] and O[i] = x[2i + 1 -
 * pw] (zero outside the row), so that the taps are plain loads E[ow],
 * O[ow] and E[ow + 1]: 2 permutes per 16 columns of an input row, which
 * serves up to two output rows, instead of 3 per tap row of every output
 * vector */
DW_PATH(dw3x3_s2_split_avx512) {
    DW_S2_SETUP
    int64_t ne = (nv + 1) * 16, nin = 2 * DW_R2 + 1;
    float *sp = kiln_thread_scratch(2 * nin * ne, 0, 3, ne, 0); /* the flat and split kernels' buffer, nothing cleared (kiln_dw3x3_avx512_floats) */
    if (!sp) return false;
    for (int64_t oh0 = 0; oh0 < OH; oh0 += DW_R2) {
        int64_t rows = OH - oh0 < DW_R2 ? OH - oh0 : DW_R2;
        for (int64_t i = 0; i < 2 * rows + 1; i++) {
            int64_t ih = 2 * oh0 - ph + i;
            float *E = sp + 2 * i * ne, *O = E + ne;
            if (ih < 0 || ih >= H) {
                memset(E, 0, (size_t)(2 * ne) * sizeof(float));
                continue;
            }
            const float *xr = x + ih * W;
            for (int64_t q = 0; q <= nv; q++) {
                int64_t b = q * 32 - pw;
                __m512 l0 = _mm512_maskz_loadu_ps(mk[q][0], xr + b), l1 = _mm512_maskz_loadu_ps(mk[q][1], xr + b + 16);
                _mm512_storeu_ps(E + q * 16, even_cols(l0, l1));
                _mm512_storeu_ps(O + q * 16, odd_cols(l0, l1));
            }
        }
        for (int64_t o = 0; o < rows; o++) {
            const float *e0 = sp + 4 * o * ne, *o0 = e0 + ne, *e1 = o0 + ne, *o1 = e1 + ne, *e2 = o1 + ne, *o2 = e2 + ne;
            float *yr = y + (oh0 + o) * OW;
            for (int64_t v = 0; v < nv; v++) {
                int64_t c = v * 16;
                __m512 a0 = _mm512_fmadd_ps(kw[0], _mm512_loadu_ps(e0 + c), vb);
                __m512 a1 = _mm512_mul_ps(kw[1], _mm512_loadu_ps(o0 + c));
                __m512 a2 = _mm512_mul_ps(kw[2], _mm512_loadu_ps(e0 + c + 1));
                a0 = _mm512_fmadd_ps(kw[3], _mm512_loadu_ps(e1 + c), a0);
                a1 = _mm512_fmadd_ps(kw[4], _mm512_loadu_ps(o1 + c), a1);
                a2 = _mm512_fmadd_ps(kw[5], _mm512_loadu_ps(e1 + c + 1), a2);
                a0 = _mm512_fmadd_ps(kw[6], _mm512_loadu_ps(e2 + c), a0);
                a1 = _mm512_fmadd_ps(kw[7], _mm512_loadu_ps(o2 + c), a1);
                a2 = _mm512_fmadd_ps(kw[8], _mm512_loadu_ps(e2 + c + 1), a2);
                __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
                _mm512_mask_storeu_ps(yr + c, om[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
            }
        }
    }
    return true;
}

/* A 3x3 depthwise plane (dilation 1, stride 1 or 2) straight from the NCHW
 * plane: 16 output columns per vector, each tap one masked load (the masks
 * stand in for the zero padding, so nothing is copied); stride 1 computes four
 * output rows per pass from each input row's three shifted loads; stride 2
 * takes even and odd columns by permutes, two rows to a vector when they are
 * at most 7 wide, row by row up to 32, split into even and odd halves beyond.
 * Bias first, the clamp on the way out. */
__attribute__((target("avx512f"))) bool kiln_dw3x3_avx512(const win3 *w, const float *x, const float *wk, float bias,
                                                          float lo, float hi, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], s = w->stride[1], ph = w->pad[1], pw = w->pad[2];
    int64_t nv = (OW + 15) / 16;
    if (nv > DW_MAXV || (s != 1 && s != 2) || w->stride[2] != s) return false;
    return (s == 1 ? dw3x3_s1_avx512 : OW <= 7 ? dw3x3_s2_pairs_avx512 : nv <= 2 ? dw3x3_s2_rows_avx512 : dw3x3_s2_split_avx512)(
        x, H, W, OH, OW, ph, pw, wk, bias, lo, hi, y);
}

int64_t kiln_dw3x3_avx512_floats(const win3 *w) {
    int64_t OW = w->out[2], nv = (OW + 15) / 16, s = w->stride[1];
    if (nv > DW_MAXV || s != 2 || w->stride[2] != s || OW <= 7 || nv <= 2) return 0; /* not dw3x3_s2_split_avx512 */
    return 2 * (2 * DW_R2 + 1) * (nv + 1) * 16;
}

/* Small 3x3 stride-1 depthwise planes that keep their size (at most 256
 * outputs: MobileNet's 14x14 and 7x7), many planes per call: each plane is
 * read flat, 16 consecutive outputs per vector across row ends, every tap one
 * masked load at a fixed offset (the mask drops the lanes whose tap falls
 * outside the image, computed once for all planes). A 7x7 plane is 4 vectors
 * instead of 7 rows of 7 lanes. */
__attribute__((target("avx512f"))) void kiln_dw3x3_small_avx512(const conv_job *j, int64_t r0, int64_t r1, float lo, float hi) {
    const win3 *w = &j->w;
    int64_t H = w->in[1], W = w->in[2], n = H * W, nv = (n + 15) / 16, ph = w->pad[1], pw = w->pad[2];
    __mmask16 mk[DWS_MAXV][9], om[DWS_MAXV];
    int64_t off[9];
    for (int t = 0; t < 9; t++) off[t] = (t / 3 - ph) * W + (t % 3 - pw);
    for (int64_t v = 0; v < nv; v++) {
        om[v] = 0;
        for (int t = 0; t < 9; t++) mk[v][t] = 0;
        for (int l = 0; l < 16; l++) {
            int64_t i = v * 16 + l, oh = i / W, ow = i % W;
            if (i >= n) break;
            om[v] |= (__mmask16)(1u << l);
            for (int t = 0; t < 9; t++) {
                int64_t ih = oh + t / 3 - ph, iw = ow + t % 3 - pw;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) mk[v][t] |= (__mmask16)(1u << l);
            }
        }
    }
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * n, *wk = j->wt + (r % w->M) * 9;
        float *y = j->y + r * n;
        __m512 k[9];
        for (int t = 0; t < 9; t++) k[t] = _mm512_set1_ps(wk[t]);
        __m512 vb = _mm512_set1_ps(j->b ? j->b[r % w->M] : 0.0f);
        for (int64_t v = 0; v < nv; v++) {
            const float *xv = x + v * 16;
            const __mmask16 *m = mk[v];
            __m512 a0 = _mm512_fmadd_ps(k[0], _mm512_maskz_loadu_ps(m[0], xv + off[0]), vb);
            __m512 a1 = _mm512_mul_ps(k[1], _mm512_maskz_loadu_ps(m[1], xv + off[1]));
            __m512 a2 = _mm512_mul_ps(k[2], _mm512_maskz_loadu_ps(m[2], xv + off[2]));
            a0 = _mm512_fmadd_ps(k[3], _mm512_maskz_loadu_ps(m[3], xv + off[3]), a0);
            a1 = _mm512_fmadd_ps(k[4], _mm512_maskz_loadu_ps(m[4], xv + off[4]), a1);
            a2 = _mm512_fmadd_ps(k[5], _mm512_maskz_loadu_ps(m[5], xv + off[5]), a2);
            a0 = _mm512_fmadd_ps(k[6], _mm512_maskz_loadu_ps(m[6], xv + off[6]), a0);
            a1 = _mm512_fmadd_ps(k[7], _mm512_maskz_loadu_ps(m[7], xv + off[7]), a1);
            a2 = _mm512_fmadd_ps(k[8], _mm512_maskz_loadu_ps(m[8], xv + off[8]), a2);
            __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
            _mm512_mask_storeu_ps(y + v * 16, om[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
        }
    }
}

/* A 2-D convolution of few input channels (an image's first layer: C <= 4,
 * C*KH*KW <= 160, stride 1 or 2, dilation 1, one group), direct: 16 output
 * columns per vector (taps by masked loads; stride 2 by permutes, as in the
 * depthwise kernel) times 16 output channels in 16 accumulators, each tap's
 * input vector made once and used by 16 FMAs. im2col + GEMM spent as long on
 * writing and re-reading the 27-row column matrix as on the products. The
 * weights come transposed to [tap][M rounded up to 16] (kiln_smallc_pack:
 * when the context is created for constant weights). */
typedef struct {
    win3 w;
    const float *x, *wt, *b, *res; /* wt: [C*KH*KW][Mp] */
    float *y;
    int64_t Mp;
    float lo, hi;
} smallc_job;

static bool smallc_fits(const win3 *w) {
    int64_t s = w->stride[1];
    return kiln_have_avx512() && w->group == 1 && w->in[0] == 1 && w->k[0] == 1 && w->out[0] == 1 && w->C <= KILN_SMALLC_MAX_C &&
           w->C * w->k[1] * w->k[2] <= KILN_SMALLC_MAX_TAPS && w->k[2] <= TAP_MAXKW && (s == 1 || s == 2) && w->stride[2] == s && w->dil[1] == 1 &&
           w->dil[2] == 1 && (w->out[2] + 15) / 16 <= DW_MAXV;
}

__attribute__((target("avx512f"))) static void smallc_rows(void *arg, int64_t r0, int64_t r1) {
    const smallc_job *j = arg;
    const win3 *w = &j->w;
    int64_t C = w->C, M = w->M, H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], KH = w->k[1], KW = w->k[2];
    int64_t s = w->stride[1], ph = w->pad[1], pw = w->pad[2], osz = OH * OW, nv = (OW + 15) / 16;
    const __m512 vlo = _mm512_set1_ps(j->lo), vhi = _mm512_set1_ps(j->hi);
    __m512 xs[KILN_SMALLC_MAX_TAPS];
    __mmask16 mk[DW_MAXV][TAP_MAXKW][2]; /* the same for every row, channel and kernel row */
    kiln_tap_masks(nv, KW, s, pw, W, mk);
    for (int64_t r = r0; r < r1; r++) { /* r = n * OH + oh */
        int64_t n = r / OH, oh = r % OH;
        /* the rows two output rows ahead, from memory while this one computes
         * (the model's input is cold at the start of a run) */
        for (int64_t c = 0; c < C; c++)
            for (int64_t ih = (oh + 2) * s - ph + KH - s; ih < (oh + 2) * s - ph + KH; ih++)
                if (ih >= 0 && ih < H)
                    for (int64_t q = 0; q < W; q += 16) _mm_prefetch((const char *)(j->x + ((n * C + c) * H + ih) * W + q), _MM_HINT_T0);
        if (oh + 1 < OH)
            for (int64_t m = 0; m < M; m++)
                for (int64_t q = 0; q < OW; q += 16) _mm_prefetch((const char *)(j->y + (n * M + m) * osz + (oh + 1) * OW + q), _MM_HINT_ET0);
        for (int64_t v = 0; v < nv; v++) {
            /* the input vector of every tap (zero for rows outside the image) */
            int64_t t = 0;
            for (int64_t c = 0; c < C; c++)
                for (int64_t kh = 0; kh < KH; kh++) {
                    int64_t ih = oh * s - ph + kh;
                    bool in = ih >= 0 && ih < H;
                    const float *xr = j->x + ((n * C + c) * H + (in ? ih : 0)) * W;
                    for (int64_t kw = 0; kw < KW; kw++, t++) {
                        int64_t b = v * 16 * s - pw + kw;
                        if (!in) xs[t] = _mm512_setzero_ps();
                        else if (s == 1) xs[t] = _mm512_maskz_loadu_ps(mk[v][kw][0], xr + b);
                        else xs[t] = even_cols(_mm512_maskz_loadu_ps(mk[v][kw][0], xr + b), _mm512_maskz_loadu_ps(mk[v][kw][1], xr + b + 16));
                    }
                }
            __mmask16 om = row_lanes(v * 16, OW);
            for (int64_t m0 = 0; m0 < M; m0 += 16) {
                __m512 acc[16];
#pragma GCC unroll 16
                for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
                const float *wq = j->wt + m0;
                for (int64_t u = 0; u < t; u++, wq += j->Mp) {
                    __m512 xv = xs[u];
#pragma GCC unroll 16
                    for (int q = 0; q < 16; q++) acc[q] = _mm512_fmadd_ps(_mm512_set1_ps(wq[q]), xv, acc[q]);
                }
                int64_t mb = M - m0 < 16 ? M - m0 : 16;
#pragma GCC unroll 16
                for (int q = 0; q < 16; q++) { /* constant indices keep acc in registers (dw3x3_s1_avx512) */
                    if (q >= mb) break;
                    int64_t at = (n * M + m0 + q) * osz + oh * OW + v * 16;
                    __m512 o = j->b ? _mm512_add_ps(acc[q], _mm512_set1_ps(j->b[m0 + q])) : acc[q];
                    if (j->res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(om, j->res + at));
                    _mm512_mask_storeu_ps(j->y + at, om, _mm512_min_ps(vhi, _mm512_max_ps(vlo, o)));
                }
            }
        }
    }
}

/* The small-C path, when it fits. */
bool kiln_conv_smallc(kiln_pool *pool, const conv_job *cj, const float *res, float *wt, bool pack) {
    const win3 *w = &cj->w;
    if (!smallc_fits(w)) return false;
    int64_t taps = w->C * w->k[1] * w->k[2], Mp = (w->M + 15) / 16 * 16;
    if (pack) kiln_smallc_pack(wt, cj->wt, taps, w->M);
    smallc_job j = {*w, cj->x, wt, cj->b, res, cj->y, Mp, 0, 0};
    act_bounds(cj->act, &j.lo, &j.hi);
    kiln_parallel_for(pool, w->N * w->out[1], smallc_rows, &j);
    return true;
}

/* dst[i] = src[2 i], i < n, 16 at a time by the even-column permute; the last
 * loads masked to the elements that exist (stride-2 im2col rows were a scalar
 * loop: a fifth of a 64->128 3x3/2 convolution at 56x56) */
__attribute__((target("avx512f"))) void kiln_even_copy_avx512(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n && 2 * i + 32 <= 2 * n - 1; i += 16)
        _mm512_storeu_ps(dst + i, even_cols(_mm512_loadu_ps(src + 2 * i), _mm512_loadu_ps(src + 2 * i + 16)));
    for (; i < n; i += 16) { /* src[2 i .. 2 n - 2] exist */
        int64_t have = 2 * (n - i) - 1;
        __m512 l0 = _mm512_maskz_loadu_ps(row_lanes(0, have), src + 2 * i);
        __m512 l1 = _mm512_maskz_loadu_ps(row_lanes(0, have - 16), src + 2 * i + 16);
        _mm512_mask_storeu_ps(dst + i, row_lanes(0, n - i), even_cols(l0, l1));
    }
}

#endif
