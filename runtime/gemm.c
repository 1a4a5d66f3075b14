/* gemm.c: the packed, register-blocked float32 GEMM: C += alpha * op(A) op(B).
 *
 * The algorithm is the BLIS/GotoBLAS one: for each KC-deep slice of K and
 * NC-wide block of columns, B is packed into NR-wide panels; for each MC-tall
 * block of rows A is packed into MR-tall panels; a microkernel then computes one
 * MR x NR tile of C in registers over the whole slice. On x86-64 the microkernel
 * is 12 x 32 with AVX-512 (24 accumulators of 16 floats) or 6 x 16 with AVX2 and
 * FMA (12 accumulators of 8 floats), chosen at run time by cpuid; on 64-bit ARM
 * it is 6 x 16 with NEON (24 accumulators of 4 floats); the plain C microkernel
 * (4 x 16) serves every other CPU.
 * Threads split the larger of M and N; each works on its own sub-matrix with its
 * own packing buffers, allocated once per thread and kept (no allocation per
 * call after the first). */
#include "kiln_rt.h"
#include "kiln_scalar.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KC 192
/* The depth of K's slices: as even as they go, none deeper than KC (a K of
 * 784 is five slices of 157, not four of 192 and one of 16, whose tiles
 * cost their loads and stores of C for 16 products). */
static inline int64_t kc_of(int64_t K) {
    int64_t n = (K + KC - 1) / KC;
    return n > 1 ? (K + n - 1) / n : K;
}
#define MC 120
#define NC 3072
/* at most this many rows of A: B is read in place, not packed (gemm_serial) */
#define DIRECT_B_MAX_M 48
/* or B's rows this short (and wider than two panels): a K slice is then one
 * run of a few contiguous pages, read in place at any M (gemm_serial) */
#define DIRECT_B_MAX_N 256
/* at most this deep a K slice: its tiles go row block by row block (gemm_serial) */
#define ROWS_OUTER_KC 64
#define NR 16       /* the AVX2 and plain C panels */
#define NR_MAX 32
#define MR_MAX 12

/* What a microkernel does with its tile (kiln_gemm_epi, offset to the tile):
 * first: start from rb[r], cb[j] or 0 instead of C; res: add res[r ldc + j];
 * clamp: clamp to [lo, hi]. */
typedef struct {
    const float *rb, *cb;
    int first, clamp;
    float lo, hi;
    const float *res; /* last block: the residual's tile (row stride ldc), or NULL */
    int64_t bs;       /* AVX-512 kernels: B's row stride when read in place (0: packed, 32) */
} tile_epi;

typedef void (*ukernel_fn)(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha, int mr, int nr,
                           const tile_epi *e);

/* Element (r, j) of a tile: init + alpha * acc, clamped (the partial tiles'
 * scalar path, and the plain C microkernel's). */
static inline float tile_value(const tile_epi *e, const float *c, int64_t ldc, int r, int j, float alpha, float acc) {
    float init = !e->first ? *c : e->rb ? e->rb[r] : e->cb ? e->cb[j] : 0.0f;
    float v = init + alpha * acc;
    if (e->res) v = v + e->res[r * ldc + j];
    return e->clamp ? kiln_clampf(v, e->lo, e->hi) : v;
}

/* ---- plain C microkernel, MR = 4 ---- */

static void ukernel_c(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha, int mr, int nr,
                      const tile_epi *e) {
    float acc[4][NR] = {{0}};
    for (int64_t k = 0; k < K; k++) {
        const float *bk = b + k * NR, *ak = a + k * 4;
        for (int r = 0; r < 4; r++)
            for (int j = 0; j < NR; j++) acc[r][j] += ak[r] * bk[j];
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) c[r * ldc + j] = tile_value(e, c + r * ldc + j, ldc, r, j, alpha, acc[r][j]);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX512_UKERNEL 1

/* One vector of a full tile row: init (C, the row's bias, the columns' bias or
 * 0) + alpha * acc, clamped as clamp_range does (max(lo, v) keeps a NaN v). */
__attribute__((target("avx2,fma"))) static inline void store256(float *c, __m256 acc, __m256 al, const tile_epi *e, int64_t ldc, int r, int j) {
    __m256 init = !e->first ? _mm256_loadu_ps(c) : e->rb ? _mm256_set1_ps(e->rb[r]) : e->cb ? _mm256_loadu_ps(e->cb + j) : _mm256_setzero_ps();
    __m256 v = _mm256_fmadd_ps(al, acc, init);
    if (e->res) v = _mm256_add_ps(v, _mm256_loadu_ps(e->res + r * ldc + j));
    if (e->clamp) v = _mm256_min_ps(_mm256_set1_ps(e->hi), _mm256_max_ps(_mm256_set1_ps(e->lo), v));
    _mm256_storeu_ps(c, v);
}

__attribute__((target("avx2,fma"))) static void ukernel_avx2(int64_t K, const float *a, const float *b, float *c,
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

/* The end of a vector's epilogue: v (its start value already in) plus the
 * residual, clamped, stored. */
__attribute__((target("avx512f"))) static inline void store512_pre(float *c, __m512 v, const tile_epi *e, int64_t ldc, int r, int j) {
    if (e->res) v = _mm512_add_ps(v, _mm512_loadu_ps(e->res + r * ldc + j));
    if (e->clamp) v = _mm512_min_ps(_mm512_set1_ps(e->hi), _mm512_max_ps(_mm512_set1_ps(e->lo), v));
    _mm512_storeu_ps(c, v);
}

__attribute__((target("avx512f"))) static inline void store512(float *c, __m512 acc, __m512 al, const tile_epi *e, int64_t ldc, int r, int j) {
    __m512 init = !e->first ? _mm512_loadu_ps(c) : e->rb ? _mm512_set1_ps(e->rb[r]) : e->cb ? _mm512_loadu_ps(e->cb + j) : _mm512_setzero_ps();
    store512_pre(c, _mm512_fmadd_ps(al, acc, init), e, ldc, r, j);
}

#define ROW512(i) if (R > i) { __m512 x = _mm512_set1_ps(ak[i]); c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0); c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1); }
/* R rows of the 12 (a tile of 4 or 8 rows skips the others' FMAs: an M of 64
 * is 5 x 12 + 4 rows, not 6 x 12). */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void ukernel_avx512_rows(
    int R, int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    __m512 z = _mm512_setzero_ps();
    __m512 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
    __m512 c60 = z, c61 = z, c70 = z, c71 = z, c80 = z, c81 = z, c90 = z, c91 = z, cA0 = z, cA1 = z, cB0 = z, cB1 = z;
    /* A full tile that starts C afresh with alpha 1 starts its accumulators
     * from the bias, and its stores skip the multiply-add (with K = 16 the
     * epilogue was a fifth of the tile's vector operations). */
    bool pre = e->first && alpha == 1.0f && nr == 32 && mr == R;
    if (pre && (e->rb || e->cb)) {
        __m512 q0 = e->cb ? _mm512_loadu_ps(e->cb) : z, q1 = e->cb ? _mm512_loadu_ps(e->cb + 16) : z;
#define INIT_ROW(i, ri) if (R > ri) { c##i##0 = e->rb ? _mm512_set1_ps(e->rb[ri]) : q0; c##i##1 = e->rb ? c##i##0 : q1; }
        INIT_ROW(0, 0) INIT_ROW(1, 1) INIT_ROW(2, 2) INIT_ROW(3, 3) INIT_ROW(4, 4) INIT_ROW(5, 5)
        INIT_ROW(6, 6) INIT_ROW(7, 7) INIT_ROW(8, 8) INIT_ROW(9, 9) INIT_ROW(A, 10) INIT_ROW(B, 11)
#undef INIT_ROW
    }
    int64_t bs = e->bs ? e->bs : 32;
    /* the tile of C on its way to L1 while the products run: with C beyond
     * L2 (1024 x 1024), the stores' line fills and the loads of a later K
     * slice stalled the epilogue (1024^3 94 -> 100 GFLOP/s) */
    for (int r = 0; r < R; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
    }
    for (int64_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(b + k * bs), b1 = _mm512_loadu_ps(b + k * bs + 16);
        const float *ak = a + k * 12;
        ROW512(0) ROW512(1) ROW512(2) ROW512(3) ROW512(4) ROW512(5)
        ROW512(6) ROW512(7) ROW512(8) ROW512(9)
        if (R > 10) { __m512 x = _mm512_set1_ps(ak[10]); cA0 = _mm512_fmadd_ps(x, b0, cA0); cA1 = _mm512_fmadd_ps(x, b1, cA1); }
        if (R > 11) { __m512 x = _mm512_set1_ps(ak[11]); cB0 = _mm512_fmadd_ps(x, b0, cB0); cB1 = _mm512_fmadd_ps(x, b1, cB1); }
    }
    __m512 al = _mm512_set1_ps(alpha);
    if (pre) {
#define ST_PRE(i, ri) if (R > ri) { store512_pre(c + ri * ldc, c##i##0, e, ldc, ri, 0); store512_pre(c + ri * ldc + 16, c##i##1, e, ldc, ri, 16); }
        ST_PRE(0, 0) ST_PRE(1, 1) ST_PRE(2, 2) ST_PRE(3, 3) ST_PRE(4, 4) ST_PRE(5, 5)
        ST_PRE(6, 6) ST_PRE(7, 7) ST_PRE(8, 8) ST_PRE(9, 9) ST_PRE(A, 10) ST_PRE(B, 11)
#undef ST_PRE
        return;
    }
    if (nr == 32 && mr == R) { /* a full tile straight from the named accumulators (an array of them went through the stack) */
#define ST_ROW(i, ri) if (R > ri) { store512(c + ri * ldc, c##i##0, al, e, ldc, ri, 0); store512(c + ri * ldc + 16, c##i##1, al, e, ldc, ri, 16); }
        ST_ROW(0, 0) ST_ROW(1, 1) ST_ROW(2, 2) ST_ROW(3, 3) ST_ROW(4, 4) ST_ROW(5, 5)
        ST_ROW(6, 6) ST_ROW(7, 7) ST_ROW(8, 8) ST_ROW(9, 9) ST_ROW(A, 10) ST_ROW(B, 11)
#undef ST_ROW
        return;
    }
    __m512 acc[12][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51},
                         {c60, c61}, {c70, c71}, {c80, c81}, {c90, c91}, {cA0, cA1}, {cB0, cB1}};
    if (nr == 32) {
        for (int r = 0; r < mr; r++) {
            store512(c + r * ldc, acc[r][0], al, e, ldc, r, 0);
            store512(c + r * ldc + 16, acc[r][1], al, e, ldc, r, 16);
        }
        return;
    }
    float tmp[32];
    for (int r = 0; r < mr; r++) {
        _mm512_storeu_ps(tmp, acc[r][0]);
        _mm512_storeu_ps(tmp + 16, acc[r][1]);
        for (int j = 0; j < nr; j++) c[r * ldc + j] = tile_value(e, c + r * ldc + j, ldc, r, j, alpha, tmp[j]);
    }
}

__attribute__((target("avx512f"))) static void ukernel_avx512(int64_t K, const float *a, const float *b, float *c,
                                                              int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    ukernel_avx512_rows(12, K, a, b, c, ldc, alpha, mr, nr, e);
}
__attribute__((target("avx512f"))) static void ukernel_avx512_8(int64_t K, const float *a, const float *b, float *c,
                                                                int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    ukernel_avx512_rows(8, K, a, b, c, ldc, alpha, mr, nr, e);
}
__attribute__((target("avx512f"))) static void ukernel_avx512_4(int64_t K, const float *a, const float *b, float *c,
                                                                int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    ukernel_avx512_rows(4, K, a, b, c, ldc, alpha, mr, nr, e);
}

/* The CPU's features, asked once; contexts created at once on several
 * threads may all ask (the answer is the same: relaxed atomics suffice). */
int kiln_have_avx512(void) {
    static int cached = -1;
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        __builtin_cpu_init();
        c = __builtin_cpu_supports("avx512f");
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return c;
}

static int have_avx2(void) {
    static int cached = -1;
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c < 0) {
        __builtin_cpu_init();
        c = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&cached, c, __ATOMIC_RELAXED);
    }
    return c;
}
#elif defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

/* 6 x 16 with NEON: 24 accumulators of 4 floats, B in 4 registers, A's six
 * values in two (each used by lane). */
#define NROW(i, av, l) { c##i##0 = vfmaq_laneq_f32(c##i##0, b0, av, l); c##i##1 = vfmaq_laneq_f32(c##i##1, b1, av, l); \
                         c##i##2 = vfmaq_laneq_f32(c##i##2, b2, av, l); c##i##3 = vfmaq_laneq_f32(c##i##3, b3, av, l); }
static void ukernel_neon(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha, int mr, int nr,
                         const tile_epi *e) {
    float32x4_t z = vdupq_n_f32(0);
    float32x4_t c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z, c20 = z, c21 = z, c22 = z, c23 = z;
    float32x4_t c30 = z, c31 = z, c32 = z, c33 = z, c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z, c52 = z, c53 = z;
    for (int64_t k = 0; k < K; k++) {
        const float *bk = b + k * 16, *ak = a + k * 6;
        float32x4_t b0 = vld1q_f32(bk), b1 = vld1q_f32(bk + 4), b2 = vld1q_f32(bk + 8), b3 = vld1q_f32(bk + 12);
        float32x4_t a0 = vld1q_f32(ak), a1 = vcombine_f32(vld1_f32(ak + 4), vdup_n_f32(0));
        NROW(0, a0, 0) NROW(1, a0, 1) NROW(2, a0, 2) NROW(3, a0, 3) NROW(4, a1, 0) NROW(5, a1, 1)
    }
    float32x4_t acc[6][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23},
                             {c30, c31, c32, c33}, {c40, c41, c42, c43}, {c50, c51, c52, c53}};
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        if (nr == NR) {
            for (int v = 0; v < 4; v++) {
                float32x4_t init = !e->first ? vld1q_f32(cr + 4 * v) : e->rb ? vdupq_n_f32(e->rb[r])
                                 : e->cb ? vld1q_f32(e->cb + 4 * v) : vdupq_n_f32(0);
                float32x4_t y = vfmaq_n_f32(init, acc[r][v], alpha);
                if (e->res) y = vaddq_f32(y, vld1q_f32(e->res + r * ldc + 4 * v));
                if (e->clamp) y = vminq_f32(vdupq_n_f32(e->hi), vmaxq_f32(vdupq_n_f32(e->lo), y));
                vst1q_f32(cr + 4 * v, y);
            }
            continue;
        }
        float tmp[NR];
        for (int v = 0; v < 4; v++) vst1q_f32(tmp + 4 * v, acc[r][v]);
        for (int j = 0; j < nr; j++) cr[j] = tile_value(e, cr + j, ldc, r, j, alpha, tmp[j]);
    }
}
#define HAVE_NEON_UKERNEL 1
static int have_avx2(void) { return 0; }
int kiln_have_avx512(void) { return 0; }
#define ukernel_avx2 ukernel_c
#define ukernel_avx512 ukernel_c
#else
static int have_avx2(void) { return 0; }
int kiln_have_avx512(void) { return 0; }
#define ukernel_avx2 ukernel_c
#define ukernel_avx512 ukernel_c
#endif

/* ---- packing ---- */

typedef struct {
    int64_t M, N, K, lda, ldb, ldc;
    int ta, tb;
    float alpha;
    const float *A, *B;
    float *C;
    const float *packed;  /* B already packed (kiln_sgemm_pack), or NULL */
    int64_t npad, pj;     /* packed: padded width, and this sub-problem's first column */
    const float *packed_a; /* A already packed (kiln_sgemm_pack_a), or NULL */
    int64_t mpad, pi;     /* packed_a: padded height, and this sub-problem's first row */
    kiln_gemm_epi epi;    /* biases offset to this sub-problem; all zero: accumulate */
} gemm_args;

static inline float a_at(const gemm_args *g, int64_t i, int64_t k) { return g->ta ? g->A[k * g->lda + i] : g->A[i * g->lda + k]; }
static inline float b_at(const gemm_args *g, int64_t k, int64_t j) { return g->tb ? g->B[j * g->ldb + k] : g->B[k * g->ldb + j]; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* Four rows of a row-major A (a: the first row's k0, row stride lda) into a
 * panel of mr-float lines (dst + k mr: line k, from this group's row), 4 x 8
 * blocks transposed in registers; returns how many k it did, a multiple of 8.
 * Scalar, the packing was 5-7% of BERT-4's and the MLP's time. */
__attribute__((target("avx2"))) static int64_t pack_a_rows4(const float *a, int64_t lda, int64_t kc, int mr, float *dst) {
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
#endif

static void pack_a(const gemm_args *g, int mr, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float *pa) {
    for (int64_t p = 0; p < mc; p += mr) {
        int64_t rows = mc - p < mr ? mc - p : mr;
        int64_t r4 = 0, kdone = 0; /* rows [0, r4) x k [0, kdone) packed by pack_a_rows4 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (!g->ta && have_avx2())
            for (; r4 + 4 <= rows; r4 += 4) kdone = pack_a_rows4(g->A + (i0 + p + r4) * g->lda + k0, g->lda, kc, mr, pa + p * kc + r4);
#endif
        for (int64_t k = 0; k < kc; k++) {
            float *dst = pa + p * kc + k * mr;
            int64_t r = k < kdone ? r4 : 0;
            if (!g->ta) for (; r < rows; r++) dst[r] = g->A[(i0 + p + r) * g->lda + k0 + k];
            else for (; r < rows; r++) dst[r] = g->A[(k0 + k) * g->lda + i0 + p + r];
            for (; r < mr; r++) dst[r] = 0;
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* Eight rows of B^T (b: the first one's k0, row stride ldb; contiguous in k)
 * into eight columns of a panel of nr-float lines, 8 x 8 blocks transposed in
 * registers; returns how many k it did, a multiple of 8. */
__attribute__((target("avx2"))) static int64_t pack_bt_cols8(const float *b, int64_t ldb, int64_t kc, int nr, float *dst) {
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

static void pack_b(const gemm_args *g, int nr, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float *pb) {
    for (int64_t q = 0; q < nc; q += nr) {
        int64_t cols = nc - q < nr ? nc - q : nr;
        float *panel = pb + q * kc;
        if (g->tb) { /* B^T rows are contiguous in k: read them row by row (eight at a time, transposed in registers) */
            int64_t j = 0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
            if (have_avx2())
                for (; j + 8 <= cols; j += 8) {
                    const float *src = g->B + (j0 + q + j) * g->ldb + k0;
                    int64_t k = pack_bt_cols8(src, g->ldb, kc, nr, panel + j);
                    for (int i = 0; i < 8; i++)
                        for (int64_t kk = k; kk < kc; kk++) panel[kk * nr + j + i] = src[i * g->ldb + kk];
                }
#endif
            for (; j < cols; j++) {
                const float *src = g->B + (j0 + q + j) * g->ldb + k0;
                for (int64_t k = 0; k < kc; k++) panel[k * nr + j] = src[k];
            }
            for (int64_t k = 0; cols < nr && k < kc; k++)
                for (int64_t j = cols; j < nr; j++) panel[k * nr + j] = 0;
            continue;
        }
        for (int64_t k = 0; k < kc; k++) {
            float *dst = panel + k * nr;
            memcpy(dst, g->B + (k0 + k) * g->ldb + j0 + q, (size_t)cols * sizeof(float));
            for (int64_t j = cols; j < nr; j++) dst[j] = 0;
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The last panel of a ragged N, when it has fewer than 28 of its 32 columns:
 * a 12 x 16 block for the first 16 when there are that many, then the rest
 * four columns at a time, each column one vector over the 12 rows (the panel's
 * columns beyond N are zeros). An N of 49 then costs 12 + 4 FMAs per k for
 * its last 17 columns instead of 24. */
#define ROW16(i, x) { c##i = _mm512_fmadd_ps(_mm512_set1_ps(ak[x]), b0, c##i); }
/* CNT columns of the panel b (row stride 32) over the 12 rows of a, each one
 * vector of rows. One column alone goes in four partial sums over k: as one
 * chain of K dependent FMAs its latency bounded it (MobileNetV2's 7x7 1x1
 * convolutions, N = 49, spent a quarter of their tail kernel there). */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void tail_cols(int CNT, int64_t K, const float *a,
                                                                                           const float *b, __m512 *s) {
    __m512 s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3];
    if (CNT == 1) {
        int64_t k = 0;
        for (; k + 4 <= K; k += 4) {
            const float *ak = a + k * 12, *bk = b + k * 32;
            s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)0x0fff, ak), _mm512_set1_ps(bk[0]), s0);
            s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)0x0fff, ak + 12), _mm512_set1_ps(bk[32]), s1);
            s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)0x0fff, ak + 24), _mm512_set1_ps(bk[64]), s2);
            s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)0x0fff, ak + 36), _mm512_set1_ps(bk[96]), s3);
        }
        for (; k < K; k++) s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps((__mmask16)0x0fff, a + k * 12), _mm512_set1_ps(b[k * 32]), s0);
        s[0] = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
        return;
    }
    for (int64_t k = 0; k < K; k++) {
        __m512 av = _mm512_maskz_loadu_ps((__mmask16)0x0fff, a + k * 12);
        const float *bk = b + k * 32;
        s0 = _mm512_fmadd_ps(av, _mm512_set1_ps(bk[0]), s0);
        if (CNT > 1) s1 = _mm512_fmadd_ps(av, _mm512_set1_ps(bk[1]), s1);
        if (CNT > 2) s2 = _mm512_fmadd_ps(av, _mm512_set1_ps(bk[2]), s2);
        if (CNT > 3) s3 = _mm512_fmadd_ps(av, _mm512_set1_ps(bk[3]), s3);
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3;
}
__attribute__((target("avx512f"))) static void ukernel_avx512_tail(int64_t K, const float *a, const float *b, float *c,
                                                                   int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    __m512 z = _mm512_setzero_ps(), al = _mm512_set1_ps(alpha);
    int j0 = 0;
    if (nr >= 16) {
        __m512 c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z, c8 = z, c9 = z, cA = z, cB = z;
        for (int64_t k = 0; k < K; k++) {
            __m512 b0 = _mm512_loadu_ps(b + k * 32);
            const float *ak = a + k * 12;
            ROW16(0, 0) ROW16(1, 1) ROW16(2, 2) ROW16(3, 3) ROW16(4, 4) ROW16(5, 5) ROW16(6, 6) ROW16(7, 7)
            ROW16(8, 8) ROW16(9, 9) ROW16(A, 10) ROW16(B, 11)
        }
        if (mr == 12) { /* straight from the named accumulators, as in ukernel_avx512_rows */
#define ST16(i, ri) store512(c + ri * ldc, c##i, al, e, ldc, ri, 0);
            ST16(0, 0) ST16(1, 1) ST16(2, 2) ST16(3, 3) ST16(4, 4) ST16(5, 5)
            ST16(6, 6) ST16(7, 7) ST16(8, 8) ST16(9, 9) ST16(A, 10) ST16(B, 11)
#undef ST16
        } else {
            __m512 acc[12] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, cA, cB};
            for (int r = 0; r < mr; r++) store512(c + r * ldc, acc[r], al, e, ldc, r, 0);
        }
        j0 = 16;
    }
    for (int j = j0; j < nr; j += 4) {
        __m512 s[4] = {z, z, z, z};
        /* only the columns that exist (N = 49 leaves one after the 12x16
         * block), a lone column in four partial sums over k */
        switch (nr - j) {
        case 1: tail_cols(1, K, a, b + j, s); break;
        case 2: tail_cols(2, K, a, b + j, s); break;
        case 3: tail_cols(3, K, a, b + j, s); break;
        default: tail_cols(4, K, a, b + j, s);
        }
        float t[4][16];
        _mm512_storeu_ps(t[0], s[0]);
        _mm512_storeu_ps(t[1], s[1]);
        _mm512_storeu_ps(t[2], s[2]);
        _mm512_storeu_ps(t[3], s[3]);
        for (int q = 0; q < 4 && j + q < nr; q++)
            for (int r = 0; r < mr; r++) c[r * ldc + j + q] = tile_value(e, c + r * ldc + j + q, ldc, r, j + q, alpha, t[q][r]);
    }
}
#endif

/* Whether the first K block starts C afresh (from a bias or zero). */
static bool epi_starts(const kiln_gemm_epi *e) { return e->overwrite || e->row_bias || e->col_bias; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* C's row i, columns j.. from an accumulator (lanes outside m masked off):
 * the whole epilogue, as gemm_plain does it. */
__attribute__((target("avx512f"))) static inline void narrow_store(const gemm_args *g, int64_t i, int64_t j, __m512 acc, __mmask16 m) {
    const kiln_gemm_epi *ep = &g->epi;
    float *c = g->C + i * g->ldc + j;
    __m512 init = !epi_starts(ep) ? _mm512_maskz_loadu_ps(m, c)
                  : ep->row_bias ? _mm512_set1_ps(ep->row_bias[i])
                  : ep->col_bias ? _mm512_maskz_loadu_ps(m, ep->col_bias + j) : _mm512_setzero_ps();
    __m512 v = _mm512_fmadd_ps(_mm512_set1_ps(g->alpha), acc, init);
    if (ep->residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, ep->residual + i * g->ldc + j));
    if (ep->clamp) v = _mm512_min_ps(_mm512_set1_ps(ep->hi), _mm512_max_ps(_mm512_set1_ps(ep->lo), v));
    _mm512_mask_storeu_ps(c, m, v);
}

/* The lanes of 16 columns from column j of N. */
static inline __mmask16 col_lanes(int64_t j, int64_t N) { return N - j >= 16 ? (__mmask16)0xffff : N > j ? (__mmask16)((1u << (N - j)) - 1) : 0; }

#define NROW(i) if (R > i) c##i = _mm512_fmadd_ps(_mm512_set1_ps(a[i * lda + k]), bk, c##i);
/* R rows of C from row i, over all of K: each row one vector of B's columns
 * (b: rows of stride bs), A's values broadcast from its rows in place. */
__attribute__((target("avx512f"))) static inline __attribute__((always_inline)) void narrow_rows(int R, const gemm_args *g, int64_t i,
                                                                                             const float *b, int64_t bs, __mmask16 m) {
    __m512 z = _mm512_setzero_ps();
    __m512 c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z, c8 = z, c9 = z, c10 = z, c11 = z;
    const float *a = g->A + i * g->lda;
    int64_t lda = g->lda;
    for (int64_t k = 0; k < g->K; k++) {
        __m512 bk = _mm512_maskz_loadu_ps(m, b + k * bs);
        NROW(0) NROW(1) NROW(2) NROW(3) NROW(4) NROW(5) NROW(6) NROW(7) NROW(8) NROW(9) NROW(10) NROW(11)
    }
    __m512 acc[12] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11};
    for (int r = 0; r < R; r++) narrow_store(g, i + r, 0, acc[r], m);
}
#undef NROW

/* A GEMM of at most 16 columns with a row-major A: no packing of A, which for
 * so few columns cost more than the products (the MLP's 1024 -> 10 layer,
 * M = 64: 0.092 ms, of it most packing, against ONNX Runtime's 0.029). B is
 * the packed panel (npad 32: one panel, rows of 32 across all K blocks) or B
 * itself (rows of ldb). Returns false where it does not apply. */
__attribute__((target("avx512f"))) static bool gemm_narrow(const gemm_args *g) {
    const float *b;
    int64_t bs;
    if (g->N > 16 || g->ta || g->packed_a) return false;
    if (g->packed && g->npad == 32 && g->pj == 0) b = g->packed, bs = 32;
    else if (!g->packed && !g->tb) b = g->B, bs = g->ldb;
    else return false;
    __mmask16 m = col_lanes(0, g->N);
    int64_t i = 0;
    for (; i + 12 <= g->M; i += 12) narrow_rows(12, g, i, b, bs, m);
    for (; i + 4 <= g->M; i += 4) narrow_rows(4, g, i, b, bs, m);
    for (; i < g->M; i++) narrow_rows(1, g, i, b, bs, m);
    return true;
}

/* A single row of C (M = 1: a classifier at batch 1), A read in place: each
 * 32 columns in eight accumulators, four partial sums over k (one chain of K
 * dependent FMAs would bound it), B streamed once. As a 12-row tile it packed
 * 11 rows of zeros and did four times the FMAs. B is packed (panels of 32 in
 * kc_of slices) or B itself (rows of ldb). */
__attribute__((target("avx512f"))) static bool gemm_row(const gemm_args *g, float *sums, int64_t nsums) {
    if (g->M != 1 || g->packed_a || (!g->packed && g->tb)) return false;
    const float *a = g->A;
    int64_t sa = g->ta ? g->lda : 1, KB = kc_of(g->K), np = (g->N + 31) / 32 * 32;
    /* a packed B with several K slices goes slice by slice, its panels one
     * run of memory, the column sums kept in sums between slices */
    int64_t pass = g->packed && KB < g->K && np <= nsums ? KB : g->K; /* the K of one pass over the columns */
    for (int64_t k0 = 0; k0 < g->K; k0 += pass) {
        for (int64_t j = 0; j < g->N; j += 32) {
            __mmask16 m0 = col_lanes(j, g->N), m1 = col_lanes(j + 16, g->N);
            __m512 z = _mm512_setzero_ps(), s0 = z, s1 = z, s2 = z, s3 = z, t0 = z, t1 = z, t2 = z, t3 = z;
            for (int64_t k1 = k0; k1 < k0 + pass; k1 += KB) {
                int64_t kc = g->K - k1 < KB ? g->K - k1 : KB, bs = g->packed ? 32 : g->ldb, k = 0;
                const float *b = g->packed ? g->packed + k1 * g->npad + (g->pj + j) * kc : g->B + k1 * g->ldb + j;
                const float *ak = a + k1 * sa;
#define ROW_K(s, t, q) { __m512 x = _mm512_set1_ps(ak[(k + q) * sa]); const float *bk = b + (k + q) * bs; \
                s = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m0, bk), s); t = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m1, bk + 16), t); }
                for (; k + 4 <= kc; k += 4) { ROW_K(s0, t0, 0) ROW_K(s1, t1, 1) ROW_K(s2, t2, 2) ROW_K(s3, t3, 3) }
                for (; k < kc; k++) ROW_K(s0, t0, 0)
#undef ROW_K
            }
            __m512 u = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
            __m512 w = _mm512_add_ps(_mm512_add_ps(t0, t1), _mm512_add_ps(t2, t3));
            if (k0 > 0) {
                u = _mm512_add_ps(u, _mm512_load_ps(sums + j));
                w = _mm512_add_ps(w, _mm512_load_ps(sums + j + 16));
            }
            if (k0 + pass < g->K) {
                _mm512_store_ps(sums + j, u);
                _mm512_store_ps(sums + j + 16, w);
                continue;
            }
            narrow_store(g, 0, j, u, m0);
            if (m1) narrow_store(g, 0, j + 16, w, m1);
        }
    }
    return true;
}
#endif

/* The kernel for a tile of `rows` rows and `cols` columns, short of the full
 * tile: a cheaper one where it exists. */
static ukernel_fn tile_ukernel(ukernel_fn uk, int rows, int cols) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (uk == ukernel_avx512 && cols < 28) return ukernel_avx512_tail;
    if (uk == ukernel_avx512 && rows <= 8) return rows <= 4 ? ukernel_avx512_4 : ukernel_avx512_8;
#endif
    (void)rows, (void)cols;
    return uk;
}

/* The microkernel of this CPU: rows and panel width. */
static ukernel_fn pick_ukernel(int *mr, int *nr) {
    if (kiln_have_avx512()) { *mr = 12; *nr = 32; return ukernel_avx512; }
    if (have_avx2()) { *mr = 6; *nr = NR; return ukernel_avx2; }
#ifdef HAVE_NEON_UKERNEL
    *mr = 6; *nr = NR;
    return ukernel_neon;
#endif
    *mr = 4; *nr = NR;
    return ukernel_c;
}

/* Element (k, j) of a packed B: K in KC-deep blocks of npad columns, each
 * block nr-wide panels of kc x nr. */
static inline float packed_at(const gemm_args *g, int nr, int64_t k, int64_t j) {
    int64_t KB = kc_of(g->K), k0 = k / KB * KB, kc = g->K - k0 < KB ? g->K - k0 : KB, q = j / nr * nr;
    return g->packed[k0 * g->npad + q * kc + (k - k0) * nr + (j - q)];
}

/* Element (row i, k) of a packed A: K in KC-deep blocks of mpad rows, each
 * block mr-tall panels of kc x mr. */
static inline float packed_a_at(const gemm_args *g, int mr, int64_t k, int64_t i) {
    int64_t KB = kc_of(g->K), k0 = k / KB * KB, kc = g->K - k0 < KB ? g->K - k0 : KB, p = i / mr * mr;
    return g->packed_a[k0 * g->mpad + p * kc + (k - k0) * mr + (i - p)];
}

/* Plain loops (no packing memory, or K = 0): the epilogue's start, the
 * products, the residual and the clamp, row by row. */
static void gemm_plain(const gemm_args *g) {
    int mr, nrp;
    pick_ukernel(&mr, &nrp);
    const kiln_gemm_epi *ep = &g->epi;
    bool init = epi_starts(ep);
    for (int64_t i = 0; i < g->M; i++) {
        float *c = g->C + i * g->ldc;
        if (init)
            for (int64_t j = 0; j < g->N; j++) c[j] = ep->row_bias ? ep->row_bias[i] : ep->col_bias ? ep->col_bias[j] : 0.0f;
        for (int64_t k = 0; k < g->K; k++) {
            float a = g->alpha * (g->packed_a ? packed_a_at(g, mr, k, g->pi + i) : a_at(g, i, k));
            for (int64_t j = 0; j < g->N; j++) c[j] += a * (g->packed ? packed_at(g, nrp, k, g->pj + j) : b_at(g, k, j));
        }
        if (ep->residual)
            for (int64_t j = 0; j < g->N; j++) c[j] = c[j] + ep->residual[i * g->ldc + j];
        if (ep->clamp)
            for (int64_t j = 0; j < g->N; j++) c[j] = kiln_clampf(c[j], ep->lo, ep->hi);
    }
}

/* A thread's packing panels, allocated when it first multiplies and freed
 * when the thread ends (a pool's workers end with their context): the block
 * is also the thread's value of gemm_tl_key, whose destructor frees it. */
static _Thread_local float *tl_pa, *tl_pb;
static pthread_key_t gemm_tl_key;
static pthread_once_t gemm_tl_once = PTHREAD_ONCE_INIT;
static void gemm_tl_key_make(void) { pthread_key_create(&gemm_tl_key, free); }

static void gemm_serial(const gemm_args *g) {
    if (!tl_pa) {
        float *p = aligned_alloc(64, sizeof(float) * KC * (MC + MR_MAX + NC + NR_MAX)); /* KC (MC + MR_MAX) floats: 64-byte multiple */
        pthread_once(&gemm_tl_once, gemm_tl_key_make);
        pthread_setspecific(gemm_tl_key, p);
        tl_pa = p;
        tl_pb = p ? p + KC * (MC + MR_MAX) : NULL;
    }
    float *pa = tl_pa, *pb = tl_pb;
    int mr, nrp;
    ukernel_fn uk = pick_ukernel(&mr, &nrp);
    const kiln_gemm_epi *ep = &g->epi;
    bool init = epi_starts(ep);
    if (!pa || !pb) { gemm_plain(g); return; } /* no packing memory */
#ifdef HAVE_AVX512_UKERNEL
    if (uk == ukernel_avx512 && (gemm_narrow(g) || gemm_row(g, pb, KC * (NC + NR_MAX)))) return;
#endif
    /* With few rows of A, packing B costs more than it saves: the AVX-512
     * kernel reads B's full 32-column panels in place (row stride ldb; a
     * ragged last panel is still packed). Measured on MobileNetV2's 1x1
     * convolutions (one thread, alternating): M = 16, K = 96, N = 12544
     * 0.60-0.80 -> 0.43-0.74 ms; M = 24, K = 144, N = 3136 0.25 -> 0.20 ms.
     * With more rows the packed copy pays (and with K > KC the strided reads
     * lost: M = 64, K = 576 3.1 -> 3.3 ms), unless B's rows are short: at
     * 14x14 (N = 196, K slices of 150 KB in one run) reading in place won at
     * every M (96 x 576 0.218 -> 0.207 ms, 64 x 384 0.101 -> 0.096); at 7x7
     * only one full panel is read in place, and that was no faster. */
#ifdef HAVE_AVX512_UKERNEL
    bool direct = uk == ukernel_avx512 && !g->packed && !g->tb &&
                  (g->M <= DIRECT_B_MAX_M || (g->ldb <= DIRECT_B_MAX_N && g->N > 2 * nrp));
#else
    bool direct = false;
#endif
    for (int64_t j0 = 0; j0 < g->N; j0 += NC) {
        int64_t nc = g->N - j0 < NC ? g->N - j0 : NC;
        for (int64_t k0 = 0, KB = kc_of(g->K); k0 < g->K; k0 += KB) {
            int64_t kc = g->K - k0 < KB ? g->K - k0 : KB;
            bool last = k0 + kc >= g->K;
            tile_epi te = {NULL, NULL, init && k0 == 0, ep->clamp && last, ep->lo, ep->hi, NULL, 0};
            const float *bp = pb;
            if (g->packed) bp = g->packed + k0 * g->npad + (g->pj + j0) * kc;
            else if (direct) pack_b(g, nrp, k0, kc, j0 + nc / nrp * nrp, nc % nrp, pb); /* only a ragged last panel */
            else pack_b(g, nrp, k0, kc, j0, nc, pb);
            for (int64_t i0 = 0; i0 < g->M; i0 += MC) {
                int64_t mc = g->M - i0 < MC ? g->M - i0 : MC;
                const float *ap = pa;
                if (g->packed_a) ap = g->packed_a + k0 * g->mpad + (g->pi + i0) * kc;
                else pack_a(g, mr, i0, mc, k0, kc, pa);
                /* the tiles, panel by panel (the panel stays in L1 for all its rows); with a shallow
                 * slice, row block by row block (its stores then go to mr rows at a time, not mc) */
                int64_t nq = (nc + nrp - 1) / nrp, np = (mc + mr - 1) / mr;
                bool rows_outer = kc <= ROWS_OUTER_KC && !direct; /* direct: the panel's second row block reads it from L1 */
                for (int64_t t = 0; t < nq * np; t++) {
                    int64_t q = (rows_outer ? t % nq : t / np) * nrp, p = (rows_outer ? t / nq : t % np) * mr;
                    int nr = (int)(nc - q < nrp ? nc - q : nrp);
                    const float *bq = bp + q * kc;
                    te.bs = 0;
                    if (direct && nr == nrp) { bq = g->B + k0 * g->ldb + j0 + q; te.bs = g->ldb; }
                    else if (direct) bq = pb;
                    te.cb = ep->col_bias ? ep->col_bias + j0 + q : NULL;
                    int rows = (int)(mc - p < mr ? mc - p : mr);
                    te.rb = ep->row_bias ? ep->row_bias + i0 + p : NULL;
                    te.res = ep->residual && last ? ep->residual + (i0 + p) * g->ldc + j0 + q : NULL;
                    ukernel_fn k = rows == mr && nr == nrp ? uk : tile_ukernel(uk, rows, nr);
                    k(kc, ap + p * kc, bq, g->C + (i0 + p) * g->ldc + j0 + q, g->ldc, g->alpha, rows, nr, &te);
                }
            }
        }
    }
}

typedef struct { gemm_args g; int split_m; int64_t unit; } gemm_job;

static void gemm_part(void *arg, int64_t b, int64_t e) {
    const gemm_job *j = arg;
    gemm_args s = j->g;
    int64_t lo = b * j->unit, hi = e * j->unit;
    if (j->split_m) {
        if (hi > s.M) hi = s.M;
        if (s.packed_a) s.pi += lo;
        else s.A = s.ta ? s.A + lo : s.A + lo * s.lda;
        if (s.epi.row_bias) s.epi.row_bias += lo;
        s.C += lo * s.ldc;
        if (s.epi.residual) s.epi.residual += lo * s.ldc;
        s.M = hi - lo;
    } else {
        if (hi > s.N) hi = s.N;
        if (s.packed) s.pj += lo;
        else s.B = s.tb ? s.B + lo * s.ldb : s.B + lo;
        if (s.epi.col_bias) s.epi.col_bias += lo;
        s.C += lo;
        if (s.epi.residual) s.epi.residual += lo;
        s.N = hi - lo;
    }
    if (s.M > 0 && s.N > 0) gemm_serial(&s);
}

static void gemm_run(kiln_pool *pool, gemm_args a) {
    int64_t M = a.M, N = a.N, K = a.K;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* no products: only the epilogue */
        gemm_plain(&a);
        return;
    }
    gemm_job j = {a, M >= N, 0};
    int64_t threads = kiln_pool_threads(pool);
    double flops = 2.0 * (double)M * (double)N * (double)K;
    if (threads > 1 && flops > 2e5) {
        /* units as fine as the layouts allow (the pool hands each thread one
         * contiguous run of them): rows by MR_MAX (a multiple of every mr, so a
         * packed A splits on its panels), columns by a vector of 16 (by NR_MAX
         * when B is packed). Units of 24 rows and 64 columns left a 64 x 196
         * output split 128 | 68 columns and a 160-row one 72 | 88 rows. */
        j.unit = j.split_m ? MR_MAX : a.packed ? NR_MAX : 16;
        int64_t units = ((j.split_m ? M : N) + j.unit - 1) / j.unit;
        kiln_parallel_for(pool, units, gemm_part, &j);
    } else {
        j.unit = j.split_m ? M : N;
        gemm_part(&j, 0, 1);
    }
}

void kiln_sgemm(kiln_pool *pool, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, int ta,
                const float *B, int64_t ldb, int tb, float *C, int64_t ldc) {
    kiln_sgemm_ex(pool, M, N, K, alpha, A, lda, ta, NULL, B, ldb, tb, NULL, C, ldc, NULL);
}

/* ---- B packed ahead of time (weights, at context creation) ---- */

static int64_t npad_of(int64_t N, int nr) { return (N + nr - 1) / nr * nr; }

int64_t kiln_sgemm_packed_floats(int64_t N, int64_t K) { return npad_of(N, NR_MAX) * K; }

void kiln_sgemm_pack(int64_t N, int64_t K, const float *B, int64_t ldb, int tb, float *dst) {
    int mr, nr;
    pick_ukernel(&mr, &nr);
    int64_t npad = npad_of(N, nr);
    gemm_args g = {0, N, K, 0, ldb, 0, 0, tb, 1.0f, NULL, B, NULL, NULL, 0, 0, NULL, 0, 0, {0}};
    for (int64_t k0 = 0, KB = kc_of(K); k0 < K; k0 += KB) {
        int64_t kc = K - k0 < KB ? K - k0 : KB;
        pack_b(&g, nr, k0, kc, 0, N, dst + k0 * npad);
    }
}

void kiln_sgemm_packed(kiln_pool *pool, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, int ta,
                       const float *packed, float *C, int64_t ldc) {
    kiln_sgemm_ex(pool, M, N, K, alpha, A, lda, ta, NULL, NULL, 0, 0, packed, C, ldc, NULL);
}

int64_t kiln_sgemm_packed_a_floats(int64_t M, int64_t K) { return npad_of(M, MR_MAX) * K; }

void kiln_sgemm_pack_a(int64_t M, int64_t K, const float *A, int64_t lda, int ta, float *dst) {
    int mr, nr;
    pick_ukernel(&mr, &nr);
    int64_t mpad = npad_of(M, mr);
    gemm_args g = {M, 0, K, lda, 0, 0, ta, 0, 1.0f, A, NULL, NULL, NULL, 0, 0, NULL, 0, 0, {0}};
    for (int64_t k0 = 0, KB = kc_of(K); k0 < K; k0 += KB) {
        int64_t kc = K - k0 < KB ? K - k0 : KB;
        pack_a(&g, mr, 0, M, k0, kc, dst + k0 * mpad);
    }
}

void kiln_sgemm_packed_a(kiln_pool *pool, int64_t M, int64_t N, int64_t K, float alpha, const float *packed_a,
                         const float *B, int64_t ldb, int tb, float *C, int64_t ldc) {
    kiln_sgemm_ex(pool, M, N, K, alpha, NULL, 0, 0, packed_a, B, ldb, tb, NULL, C, ldc, NULL);
}

void kiln_sgemm_ex(kiln_pool *pool, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda, int ta,
                   const float *packed_a, const float *B, int64_t ldb, int tb, const float *packed_b, float *C, int64_t ldc,
                   const kiln_gemm_epi *epi) {
    int mr, nr;
    pick_ukernel(&mr, &nr);
    gemm_args g = {M, N, K, lda, ldb, ldc, ta, tb, alpha, A, B, C, packed_b, npad_of(N, nr), 0, packed_a, npad_of(M, mr), 0, {0}};
    if (epi) g.epi = *epi;
    gemm_run(pool, g);
}
