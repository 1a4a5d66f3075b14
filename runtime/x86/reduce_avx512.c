/* reduce_avx512.c: the sum-like reductions (sum, mean, |x|, x^2) of contiguous
 * rows for AVX-512, which reduce.c calls when kiln_have_avx512(): per row two
 * vectors of partial sums, the tail by a masked load, then the sum of the
 * lanes. */
#include "x86.h"

#ifdef HAVE_AVX512_KERNELS

/* One contiguous row's sum-like reduction with AVX-512: two vectors of
 * partial sums, the tail by a masked load (GCC left the generic loop scalar
 * for its per-kind branches: 45 us for MobileNetV2's 1280 rows of 49). */
__attribute__((target("avx512f"))) static float row_reduce_avx512(int64_t kind, const float *x, int64_t len) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
#define RR_F(v) (kind == 5 ? _mm512_abs_ps(v) : kind == 6 || kind == 9 ? _mm512_mul_ps(v, v) : (v))
    int64_t l = 0;
    for (; l + 32 <= len; l += 32) {
        __m512 v0 = _mm512_loadu_ps(x + l), v1 = _mm512_loadu_ps(x + l + 16);
        a0 = _mm512_add_ps(a0, RR_F(v0));
        a1 = _mm512_add_ps(a1, RR_F(v1));
    }
    for (; l < len; l += 16) {
        __m512 v = _mm512_maskz_loadu_ps(row_lanes(0, len - l), x + l);
        a0 = _mm512_add_ps(a0, RR_F(v));
    }
#undef RR_F
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* The rows of kiln_reduce_rows_avx512, one call of row_reduce_avx512 each. */
__attribute__((target("avx512f"))) void kiln_reduce_rows_avx512(int64_t kind, int64_t outer, int64_t len, const float *x, float *y) {
    for (int64_t o = 0; o < outer; o++) y[o] = row_reduce_avx512(kind, x + o * len, len);
}

#endif
