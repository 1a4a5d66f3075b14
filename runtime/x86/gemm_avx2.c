/* gemm_avx2.c: the GEMM's code for AVX2 and FMA, which gemm.c runs when the CPU
 * has them and no AVX-512: the 6 x 16 microkernel (12 accumulators of 8
 * floats), and the packing of A's rows and B^T's columns, transposed 4 x 8
 * and 8 x 8 in registers (also used beside the AVX-512 microkernel). */
#include "../kiln_gemm.h"

#ifdef HAVE_AVX512_UKERNEL
#include <immintrin.h>

/* One vector of a full tile row: init (C, the row's bias, the columns' bias or
 * 0) + alpha * acc, clamped as clamp_range does (max(lo, v) keeps a NaN v). */
__attribute__((target("avx2,fma"))) static inline void store256(float *c, __m256 acc, __m256 al, const tile_epi *e, int64_t ldc, int r, int j) {
    __m256 init = !e->first ? _mm256_loadu_ps(c) : e->rb ? _mm256_set1_ps(e->rb[r]) : e->cb ? _mm256_loadu_ps(e->cb + j) : _mm256_setzero_ps();
    __m256 v = _mm256_fmadd_ps(al, acc, init);
    if (e->res) v = _mm256_add_ps(v, _mm256_loadu_ps(e->res + r * ldc + j));
    if (e->clamp) v = _mm256_min_ps(_mm256_set1_ps(e->hi), _mm256_max_ps(_mm256_set1_ps(e->lo), v));
    _mm256_storeu_ps(c, v);
}

__attribute__((target("avx2,fma"))) void kiln_ukernel_avx2(int64_t K, const float *a, const float *b, float *c,
                                                           int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(b + k * 16), b1 = _mm256_loadu_ps(b + k * 16 + 8);
        const float *ak = a + k * 6;
        __m256 x = _mm256_broadcast_ss(ak + 0);
        c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(ak + 1);
        c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(ak + 2);
        c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(ak + 3);
        c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(ak + 4);
        c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(ak + 5);
        c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    __m256 al = _mm256_set1_ps(alpha);
    if (nr == NR && mr == 6) { /* a full tile straight from the named accumulators, as the AVX-512 kernel does */
#define ST256(i) store256(c + i * ldc, c##i##0, al, e, ldc, i, 0); store256(c + i * ldc + 8, c##i##1, al, e, ldc, i, 8);
        ST256(0) ST256(1) ST256(2) ST256(3) ST256(4) ST256(5)
#undef ST256
        return;
    }
    __m256 acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    if (nr == NR) {
        for (int r = 0; r < mr; r++) {
            store256(c + r * ldc, acc[r][0], al, e, ldc, r, 0);
            store256(c + r * ldc + 8, acc[r][1], al, e, ldc, r, 8);
        }
        return;
    }
    float tmp[NR];
    for (int r = 0; r < mr; r++) {
        _mm256_storeu_ps(tmp, acc[r][0]);
        _mm256_storeu_ps(tmp + 8, acc[r][1]);
        for (int j = 0; j < nr; j++) c[r * ldc + j] = tile_value(e, c + r * ldc + j, ldc, r, j, alpha, tmp[j]);
    }
}

/* Four rows of a row-major A (a: the first row's k0, row stride lda) into a
 * panel of mr-float lines (dst + k mr: line k, from this group's row), 4 x 8
 * blocks transposed in registers; returns how many k it did, a multiple of 8.
 * Scalar, the packing was 5-7% of BERT-4's and the MLP's time. */
__attribute__((target("avx2"))) int64_t kiln_pack_a_rows4(const float *a, int64_t lda, int64_t kc, int mr, float *dst) {
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r0 = _mm256_loadu_ps(a + k), r1 = _mm256_loadu_ps(a + lda + k);
        __m256 r2 = _mm256_loadu_ps(a + 2 * lda + k), r3 = _mm256_loadu_ps(a + 3 * lda + k);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1); /* k 0,1 | 4,5 and 2,3 | 6,7 of rows 0, 1 */
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        __m256 u[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee), /* k 0 | 4, 1 | 5 */
                       _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xee)}; /* k 2 | 6, 3 | 7 */
        float *d = dst + k * mr;
        for (int q = 0; q < 4; q++) {
            _mm_storeu_ps(d + q * mr, _mm256_castps256_ps128(u[q]));
            _mm_storeu_ps(d + (q + 4) * mr, _mm256_extractf128_ps(u[q], 1));
        }
    }
    return k;
}

/* Eight rows of B^T (b: the first one's k0, row stride ldb; contiguous in k)
 * into eight columns of a panel of nr-float lines, 8 x 8 blocks transposed in
 * registers; returns how many k it did, a multiple of 8. */
__attribute__((target("avx2"))) int64_t kiln_pack_bt_cols8(const float *b, int64_t ldb, int64_t kc, int nr, float *dst) {
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r[8], t[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(b + i * ldb + k);
        for (int i = 0; i < 8; i += 2) { t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]); t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); }
        for (int i = 0; i < 8; i += 4) { /* columns (k) 0 and 1 | 4 and 5, then 2 and 3 | 6 and 7, of rows i..i+3 */
            r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
            r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
            r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
            r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
        }
        for (int q = 0; q < 4; q++) { /* k = q from rows 0-3 and 4-7, k = q + 4 the same */
            _mm256_storeu_ps(dst + (k + q) * nr, _mm256_permute2f128_ps(r[q], r[q + 4], 0x20));
            _mm256_storeu_ps(dst + (k + q + 4) * nr, _mm256_permute2f128_ps(r[q], r[q + 4], 0x31));
        }
    }
    return k;
}

#endif
