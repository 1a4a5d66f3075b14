/* x86.h: the x86-64 kernels (runtime/x86/): the AVX-512 helpers they share (the
 * lanes of a row a load may touch, the even and odd columns of a stride-2 row,
 * the tap masks of a window) and the entry points the portable kernels call.
 *
 * The files are compiled for the baseline CPU, each AVX-512 function for
 * AVX-512 by its target attribute; the portable kernels call one only when
 * kiln_have_avx512(), and it returns false (they then run their own loops)
 * where the shape does not fit it. Off x86-64, or with a compiler other than
 * gcc or clang, this header declares nothing and the x86/ files compile to
 * empty objects. Included in place and from the flat copy the -O3 C backend
 * compiles (kiln_src/x86/), so its own includes are relative. */
#ifndef KILN_X86_H
#define KILN_X86_H

#include "../kiln_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX512_KERNELS 1

/* The lanes l of a 16-float load at column b of a row of W for which
 * 0 <= b + l < W (the others read as zero, and are not touched). */
static inline __mmask16 row_lanes(int64_t b, int64_t W) {
    int64_t lo = b < 0 ? -b : 0, hi = W - b;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)((((uint32_t)1 << hi) - 1) & ~(((uint32_t)1 << lo) - 1));
}

/* The even (odd) elements of the 32 floats lo, hi: a stride-2 row's taps. */
__attribute__((target("avx512f"))) static inline __m512 even_cols(__m512 lo, __m512 hi) {
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi);
}
__attribute__((target("avx512f"))) static inline __m512 odd_cols(__m512 lo, __m512 hi) {
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), hi);
}

#define DW_MAXV 64 /* output vectors per row whose load masks are kept (OW <= 1024) */
#define TAP_MAXKW 11 /* kernel columns whose load masks kiln_tap_masks keeps */

/* The load masks of a window's taps along a row of W, the same for every row:
 * output vector v (16 columns at stride s) and kernel column kw load at
 * column b = 16 v s - pw + kw: mk[v][kw][0] for b, [1] for b + 16 (the second
 * load at stride 2). Defined once, in conv_avx512.c, and called, not inlined,
 * by the convolution and the max pool (as before the split). */
KILN_HIDDEN void kiln_tap_masks(int64_t nv, int64_t KW, int64_t s, int64_t pw, int64_t W, __mmask16 (*mk)[TAP_MAXKW][2]);

/* Whether a depthwise layer goes to kiln_dw3x3_small_avx512 (its 3x3 stride-1
 * planes keep their size, and hold at most DWS_MAXV vectors). */
#define DWS_MAXV 16
static inline bool dw3x3_small_fits(const win3 *w) {
    int64_t H = w->in[1], W = w->in[2];
    return w->out[1] == H && w->out[2] == W && H * W <= DWS_MAXV * 16 && w->stride[1] == 1 && w->stride[2] == 1 &&
           w->pad[1] <= 2 && w->pad[2] <= 2;
}

/* ---- the entry points (AVX-512; each checks kiln_have_avx512() first or is
 * called only after it) ---- */

/* x86/conv_avx512.c: one 3x3 depthwise plane (dilation 1, stride 1 or 2), bias
 * and clamp [lo, hi] included; false where it does not fit. */
KILN_HIDDEN bool kiln_dw3x3_avx512(const win3 *w, const float *x, const float *wk, float bias, float lo, float hi, float *y);
/* the floats of the thread's scratch it takes for such a plane (its wide
 * stride-2 rows, split into halves; 0 for the others): conv.c's need */
KILN_HIDDEN int64_t kiln_dw3x3_avx512_floats(const win3 *w);
/* planes r0..r1 of a depthwise layer that dw3x3_small_fits */
KILN_HIDDEN void kiln_dw3x3_small_avx512(const conv_job *j, int64_t r0, int64_t r1, float lo, float hi);
/* a convolution of few input channels, directly, with its weights in wt as
 * kiln_smallc_pack lays them out (packed there first when pack); false where
 * it does not fit (or the CPU has no AVX-512) */
KILN_HIDDEN bool kiln_conv_smallc(kiln_pool *pool, const conv_job *cj, const float *res, float *wt, bool pack);
/* dst[i] = src[2 i], i < n (im2col's stride-2 rows) */
KILN_HIDDEN void kiln_even_copy_avx512(float *dst, const float *src, int64_t n);

/* x86/pool_avx512.c: `planes` consecutive planes of 2-D max pooling, and of
 * 2-D average pooling (count_pad: count_include_pad); false where they do not
 * fit. */
KILN_HIDDEN bool kiln_maxpool_avx512(const win3 *w, const float *x, float *y, int64_t planes);
KILN_HIDDEN bool kiln_avgpool_avx512(const win3 *w, int64_t count_pad, const float *x, float *y, int64_t planes);

/* x86/reduce_avx512.c: y[o] = the sum-like reduction (kind as kiln_k_reduce's:
 * sum, mean, l1, l2, log_sum, sum_square; before its final transform) of
 * row o of x, outer contiguous rows of len. */
KILN_HIDDEN void kiln_reduce_rows_avx512(int64_t kind, int64_t outer, int64_t len, const float *x, float *y);

#endif
#endif
