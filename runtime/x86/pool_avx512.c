/* pool_avx512.c: 2-D max and average pooling for AVX-512, which pool.c calls
 * for a plane when kiln_have_avx512(): 16 output columns per vector, each tap
 * one masked load (lanes outside the row read -inf for the maximum, so
 * padding never wins, and zero for the sum), stride 2 by the even-column
 * permute. Windows three columns wide (dilation 1) go POOL_R output rows at a
 * time: each input row's three taps are loaded once for all the rows whose
 * window holds it, and the rows' sums (maxima) are independent chains. The
 * others go a row and a tap at a time. Returns false where the shape does not
 * fit. */
#include "x86.h"

#ifdef HAVE_AVX512_KERNELS

#define POOL_R 4 /* output rows at a time (pool3_block) */

/* Each output column's taps inside the row (count_pad: inside the row and its
 * padding), as floats, 16 columns a vector: an average's divisor is its row's
 * count times its column's. False where the columns do not fit in int32. */
__attribute__((target("avx512f"))) static bool col_counts(const win3 *w, int64_t count_pad, int64_t nv, __m512 *cols) {
    int64_t s = w->stride[2], pw = w->pad[2], lo = count_pad ? -pw : 0, hi = count_pad ? w->in[2] + w->pad_end[2] : w->in[2];
    if (pw > (1 << 24) || hi > (1 << 24) || nv * 16 * s + w->k[2] * w->dil[2] > (1 << 24)) return false;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), one = _mm512_set1_epi32(1);
    const __m512i vlo = _mm512_set1_epi32((int)lo), vhi = _mm512_set1_epi32((int)hi), dil = _mm512_set1_epi32((int)w->dil[2]);
    for (int64_t v = 0; v < nv; v++) {
        __m512i at = _mm512_sub_epi32(_mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32((int)(v * 16))), _mm512_set1_epi32((int)s)),
                                      _mm512_set1_epi32((int)pw));
        __m512i n = _mm512_setzero_si512();
        for (int64_t kw = 0; kw < w->k[2]; kw++, at = _mm512_add_epi32(at, dil)) {
            __mmask16 in = _mm512_cmpge_epi32_mask(at, vlo) & _mm512_cmplt_epi32_mask(at, vhi);
            n = _mm512_mask_add_epi32(n, in, n, one);
        }
        cols[v] = _mm512_cvtepi32_ps(n);
    }
    return true;
}

/* What the blocked kernel of a plane needs: its shape, the tap masks
 * (kiln_tap_masks), each output vector's store mask and, for averages, each
 * column's tap count as floats. */
typedef struct {
    int64_t H, W, OH, OW, KH, sh, ph, pe, pw, s, nv, count_pad;
    __mmask16 mk[DW_MAXV][TAP_MAXKW][2], om[DW_MAXV];
    __mmask16 in[DW_MAXV][3]; /* the output lanes whose tap kw is inside the row */
    __m512 cols[DW_MAXV];
} pool3_geom;

/* Output rows oh0 .. oh0 + POOL_R - 1 (those below OH) of a window 3 columns
 * wide and KH rows, at row stride sh, vector v, columns at stride s,
 * average (avg) or maximum. The window's rows in order (t = ih - the block's
 * first row): a row adds its three taps to each output row whose window holds
 * it (kh ascending for each, kw ascending within a row: the general loop's
 * order). The maximum starts from the first tap of the window inside the
 * input (-inf when there is none), and takes a tap only where it is greater,
 * as the general loop does (max_ps(q, acc) keeps acc when either is NaN): a
 * NaN there stays, later NaNs are passed over. inside: every row of the block's windows is
 * inside the input and the block is whole, so that where s, sh and KH are
 * constants every branch folds away. */
static inline KILN_ALWAYS_INLINE __attribute__((target("avx512f"))) void
pool3_block(const pool3_geom *g, const float *x, float *y, int64_t oh0, int64_t v, int64_t s, int64_t sh, int64_t KH, bool avg, bool inside) {
    const __m512 fill = avg ? _mm512_setzero_ps() : _mm512_set1_ps(-INFINITY);
    int64_t nr = inside ? POOL_R : g->OH - oh0 < POOL_R ? g->OH - oh0 : POOL_R, b0 = oh0 * sh - g->ph;
    int64_t t0 = inside || b0 >= 0 ? 0 : -b0, t1 = (nr - 1) * sh + KH;
    if (!inside && t1 > g->H - b0) t1 = g->H - b0;
    __m512 acc[POOL_R];
#pragma GCC unroll 8
    for (int r = 0; r < POOL_R; r++) acc[r] = fill;
    const float *xb = x + b0 * g->W + v * 16 * s - g->pw;
    __mmask16 m0 = g->mk[v][0][0], m1 = g->mk[v][1][0], m2 = g->mk[v][2][0], m0h = g->mk[v][0][1], m2h = g->mk[v][2][1];
#pragma GCC unroll 16 /* whole, where inside and the bounds are constants */
    for (int64_t t = t0; t < t1; t++) {
        const float *xr = xb + t * g->W;
        __m512 q0, q1, q2;
        if (s == 1) {
            q0 = _mm512_mask_loadu_ps(fill, m0, xr);
            q1 = _mm512_mask_loadu_ps(fill, m1, xr + 1);
            q2 = _mm512_mask_loadu_ps(fill, m2, xr + 2);
        } else {
            __m512 lo = _mm512_mask_loadu_ps(fill, m0, xr), hi = _mm512_mask_loadu_ps(fill, m0h, xr + 16);
            q0 = even_cols(lo, hi);
            q1 = odd_cols(lo, hi);
            q2 = even_cols(_mm512_mask_loadu_ps(fill, m2, xr + 2), _mm512_mask_loadu_ps(fill, m2h, xr + 18));
        }
#pragma GCC unroll 8 /* acc in registers */
        for (int r = 0; r < POOL_R; r++) {
            int64_t kh = t - r * sh;
            if (r >= nr || kh < 0 || kh >= KH) continue;
            if (avg)
                acc[r] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[r], q0), q1), q2);
            else if (t == t0 || kh == 0) { /* the window's first row inside the input: each lane's first tap inside starts it */
                __mmask16 on = g->in[v][0] | g->in[v][1];
                acc[r] = _mm512_mask_max_ps(q2, on, q2, _mm512_mask_max_ps(q1, g->in[v][0], q1, q0));
            } else
                acc[r] = _mm512_max_ps(q2, _mm512_max_ps(q1, _mm512_max_ps(q0, acc[r])));
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < POOL_R; r++) {
        if (r >= nr) break;
        __m512 o = acc[r];
        if (avg) { /* the window's rows in [lo, hi) */
            int64_t lo = g->count_pad ? -g->ph : 0, hi = g->count_pad ? g->H + g->pe : g->H, at = b0 + r * sh;
            int64_t first = lo > at ? lo - at : 0, end = hi - at < KH ? hi - at : KH, rows = end > first ? end - first : 0;
            __m512 div = _mm512_mul_ps(_mm512_set1_ps((float)rows), g->cols[v]);
            o = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(div, _mm512_setzero_ps(), _CMP_NEQ_OQ), o, div);
        }
        _mm512_mask_storeu_ps(y + (oh0 + r) * g->OW + v * 16, g->om[v], o);
    }
}

/* Planes by pool3_block, column stride s (1 or 2) a constant in each
 * instance; the blocks inside the input with the row stride and window
 * height constants too where the plane has them (s x 3: 3x3 stride 1 and 2). */
#define POOL3_PLANE(name, s, avg)                                                                                       \
    __attribute__((target("avx512f"), noinline)) static void name(const pool3_geom *g, const float *x, float *y, int64_t planes) { \
        bool fixed = g->sh == s && g->KH == 3;                                                                         \
        for (int64_t p = 0; p < planes; p++, x += g->H * g->W, y += g->OH * g->OW)                                    \
            for (int64_t oh0 = 0; oh0 < g->OH; oh0 += POOL_R) {                                                        \
                int64_t b0 = oh0 * g->sh - g->ph;                                                                      \
                if (fixed && oh0 + POOL_R <= g->OH && b0 >= 0 && b0 + (POOL_R - 1) * s + 3 <= g->H)                    \
                    for (int64_t v = 0; v < g->nv; v++) pool3_block(g, x, y, oh0, v, s, s, 3, avg, true);              \
                else                                                                                                   \
                    for (int64_t v = 0; v < g->nv; v++) pool3_block(g, x, y, oh0, v, s, g->sh, g->KH, avg, false);     \
            }                                                                                                          \
    }
POOL3_PLANE(avg3_s1, 1, true)
POOL3_PLANE(avg3_s2, 2, true)
POOL3_PLANE(max3_s1, 1, false)
POOL3_PLANE(max3_s2, 2, false)

/* The blocked kernel's geometry of w (count_pad: average's count_include_pad);
 * false where it does not apply: a window not 3 columns wide, dilation, a
 * column stride other than 1 or 2, rows too wide for the masks. */
__attribute__((target("avx512f"))) static bool pool3_geom_of(const win3 *w, int64_t count_pad, pool3_geom *g) {
    g->H = w->in[1], g->W = w->in[2], g->OH = w->out[1], g->OW = w->out[2], g->KH = w->k[1], g->sh = w->stride[1];
    g->ph = w->pad[1], g->pe = w->pad_end[1], g->pw = w->pad[2], g->s = w->stride[2], g->nv = (g->OW + 15) / 16, g->count_pad = count_pad;
    if (w->k[2] != 3 || w->dil[1] != 1 || w->dil[2] != 1 || (g->s != 1 && g->s != 2) || g->nv > DW_MAXV || g->W > (1 << 24) ||
        g->pw > (1 << 24) || (count_pad >= 0 && !col_counts(w, count_pad, g->nv, g->cols)))
        return false;
    kiln_tap_masks(g->nv, 3, g->s, g->pw, g->W, g->mk);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), vw = _mm512_set1_epi32((int)g->W);
    for (int64_t v = 0; v < g->nv; v++) {
        g->om[v] = row_lanes(v * 16, g->OW);
        __m512i at = _mm512_sub_epi32(_mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32((int)(v * 16))), _mm512_set1_epi32((int)g->s)),
                                      _mm512_set1_epi32((int)g->pw));
        for (int kw = 0; kw < 3 && count_pad < 0; kw++, at = _mm512_add_epi32(at, _mm512_set1_epi32(1)))
            g->in[v][kw] = _mm512_cmpge_epi32_mask(at, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(at, vw);
    }
    return true;
}

/* 2-D max pooling (dilation 1, stride 1 or 2) with AVX-512: 16 output columns
 * per vector, each tap a load whose lanes outside the row read -inf (padding
 * never wins), stride 2 by the even-column permute of the depthwise kernel.
 * The maximum starts from the window's first tap and takes a tap only when it
 * is greater, as the scalar loops do (a NaN first element stays); where the
 * first tap is padding, a NaN first valid element is passed over. The strided
 * scalar loops it replaced took 0.32 ms for ResNet-18's 64 x 112 x 112 at two
 * threads (ONNX Runtime 0.07). */
__attribute__((target("avx512f"))) bool kiln_maxpool_avx512(const win3 *w, const float *x, float *y, int64_t planes) {
    pool3_geom g;
    if (pool3_geom_of(w, -1, &g)) {
        (g.s == 1 ? max3_s1 : max3_s2)(&g, x, y, planes);
        return true;
    }
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], KH = w->k[1], KW = w->k[2];
    int64_t s = w->stride[1], ph = w->pad[1], pw = w->pad[2], nv = (OW + 15) / 16;
    if (nv > DW_MAXV || KW > TAP_MAXKW || (s != 1 && s != 2) || w->stride[2] != s || w->dil[1] != 1 || w->dil[2] != 1) return false;
    __mmask16 mk[DW_MAXV][TAP_MAXKW][2], om[DW_MAXV];
    kiln_tap_masks(nv, KW, s, pw, W, mk);
    for (int64_t v = 0; v < nv; v++) om[v] = row_lanes(v * 16, OW);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t p = 0; p < planes; p++, x += H * W, y += OH * OW)
        for (int64_t oh = 0; oh < OH; oh++) {
            float *yr = y + oh * OW;
            for (int64_t v = 0; v < nv; v++) {
                __m512 acc = ninf;
                bool first = true;
                for (int64_t kh = 0; kh < KH; kh++) {
                    int64_t ih = oh * s - ph + kh;
                    if (ih < 0 || ih >= H) continue;
                    const float *xr = x + ih * W;
                    for (int64_t kw = 0; kw < KW; kw++) {
                        int64_t b = v * 16 * s - pw + kw;
                        const __mmask16 *m = mk[v][kw];
                        __m512 q = s == 1 ? _mm512_mask_loadu_ps(ninf, m[0], xr + b)
                                          : even_cols(_mm512_mask_loadu_ps(ninf, m[0], xr + b), _mm512_mask_loadu_ps(ninf, m[1], xr + b + 16));
                        acc = first ? q : _mm512_max_ps(q, acc);
                        first = false;
                    }
                }
                _mm512_mask_storeu_ps(yr + v * 16, om[v], acc);
            }
        }
    return true;
}

/* 2-D average pooling (columns at stride 1 or 2, dilation 1; rows at any)
 * with AVX-512: 16 output columns per vector, the taps of each row inside the
 * input added in the general loop's order (kh, then kw), a tap outside the
 * row a zero lane: the sum starts at +0 and so is never -0, and adding +0
 * leaves it as skipping the tap would. Divided by the row's tap count times
 * each column's (inside the input, or inside its padding with count_pad),
 * zero where that is 0. The portable loop (pool.c) took 0.28 ms for
 * Inception-v3's 192 x 35 x 35 (3x3 stride 1) and 0.47 ms for its
 * 2048 x 8 x 8, ONNX Runtime 0.08 and 0.06. */
__attribute__((target("avx512f"))) bool kiln_avgpool_avx512(const win3 *w, int64_t count_pad, const float *x, float *y, int64_t planes) {
    pool3_geom g;
    if (pool3_geom_of(w, count_pad, &g)) {
        (g.s == 1 ? avg3_s1 : avg3_s2)(&g, x, y, planes);
        return true;
    }
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], KH = w->k[1], KW = w->k[2];
    int64_t s = w->stride[2], sh = w->stride[1], dh = w->dil[1], ph = w->pad[1], pw = w->pad[2], nv = (OW + 15) / 16;
    if (nv > DW_MAXV || KW > TAP_MAXKW || (s != 1 && s != 2) || w->dil[2] != 1) return false;
    __mmask16 mk[DW_MAXV][TAP_MAXKW][2], om[DW_MAXV];
    kiln_tap_masks(nv, KW, s, pw, W, mk);
    for (int64_t v = 0; v < nv; v++) om[v] = row_lanes(v * 16, OW);
    __m512 *cols = g.cols;
    if (!col_counts(w, count_pad, nv, cols)) return false;
    for (int64_t p = 0; p < planes; p++, x += H * W, y += OH * OW)
        for (int64_t oh = 0; oh < OH; oh++) {
            float *yr = y + oh * OW;
            int64_t rows = 0;
            for (int64_t kh = 0; kh < KH; kh++) {
                int64_t ih = oh * sh - ph + kh * dh;
                rows += count_pad ? ih >= -ph && ih < H + w->pad_end[1] : ih >= 0 && ih < H;
            }
            const __m512 vr = _mm512_set1_ps((float)rows);
            for (int64_t v = 0; v < nv; v++) {
                __m512 acc = _mm512_setzero_ps();
                for (int64_t kh = 0; kh < KH; kh++) {
                    int64_t ih = oh * sh - ph + kh * dh;
                    if (ih < 0 || ih >= H) continue;
                    const float *xr = x + ih * W;
                    for (int64_t kw = 0; kw < KW; kw++) {
                        int64_t b = v * 16 * s - pw + kw;
                        const __mmask16 *m = mk[v][kw];
                        __m512 q = s == 1 ? _mm512_maskz_loadu_ps(m[0], xr + b)
                                          : even_cols(_mm512_maskz_loadu_ps(m[0], xr + b), _mm512_maskz_loadu_ps(m[1], xr + b + 16));
                        acc = _mm512_add_ps(acc, q);
                    }
                }
                __m512 div = _mm512_mul_ps(vr, cols[v]);
                __mmask16 nz = _mm512_cmp_ps_mask(div, _mm512_setzero_ps(), _CMP_NEQ_OQ);
                _mm512_mask_storeu_ps(yr + v * 16, om[v], _mm512_maskz_div_ps(nz, acc, div));
            }
        }
    return true;
}

#endif
