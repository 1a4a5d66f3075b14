/* gemm_avx512.c: the GEMM's code for AVX-512, which gemm.c runs when the CPU
 * has it: the 12 x 32 microkernel (24 accumulators of 16 floats; B read from
 * its packed panel or in place) with its 8- and 4-row forms and the form for a
 * ragged last panel, and two GEMMs that skip packing: at most 16 columns with
 * a row-major A, and a single row. Each tile's epilogue (bias, residual,
 * clamp) is applied while the tile is in registers. */
#include "../kiln_gemm.h"

#ifdef HAVE_AVX512_UKERNEL
#include <immintrin.h>

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

__attribute__((target("avx512f"))) void kiln_ukernel_avx512(int64_t K, const float *a, const float *b, float *c,
                                                            int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    ukernel_avx512_rows(12, K, a, b, c, ldc, alpha, mr, nr, e);
}
__attribute__((target("avx512f"))) void kiln_ukernel_avx512_8(int64_t K, const float *a, const float *b, float *c,
                                                              int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    ukernel_avx512_rows(8, K, a, b, c, ldc, alpha, mr, nr, e);
}
__attribute__((target("avx512f"))) void kiln_ukernel_avx512_4(int64_t K, const float *a, const float *b, float *c,
                                                              int64_t ldc, float alpha, int mr, int nr, const tile_epi *e) {
    ukernel_avx512_rows(4, K, a, b, c, ldc, alpha, mr, nr, e);
}

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
__attribute__((target("avx512f"))) void kiln_ukernel_avx512_tail(int64_t K, const float *a, const float *b, float *c,
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
__attribute__((target("avx512f"))) bool kiln_gemm_narrow(const gemm_args *g) {
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
__attribute__((target("avx512f"))) bool kiln_gemm_row(const gemm_args *g, float *sums, int64_t nsums) {
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
