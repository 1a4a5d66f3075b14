/* kiln_gemm.h: the inside of the GEMM (gemm.c) that its microkernels for each
 * ISA share (x86/gemm_avx512.c, x86/gemm_avx2.c, arm/gemm_neon.c): the depth of
 * K's slices, the panel widths, what a microkernel does with its tile
 * (tile_epi, tile_value), the arguments of one GEMM (gemm_args) and the
 * microkernels' declarations. gemm.c alone picks a microkernel for the CPU. */
#ifndef KILN_GEMM_H
#define KILN_GEMM_H

#include "kiln_internal.h"

#include <stdbool.h>
#include <stdint.h>

#define KC 192
/* The depth of K's slices: as even as they go, none deeper than KC (a K of
 * 784 is five slices of 157, not four of 192 and one of 16, whose tiles
 * cost their loads and stores of C for 16 products). */
static inline int64_t kc_of(int64_t K) {
    int64_t n = (K + KC - 1) / KC;
    return n > 1 ? (K + n - 1) / n : K;
}

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

/* One GEMM, or a thread's part of one (gemm.c's gemm_part). */
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

/* Whether the first K block starts C afresh (from a bias or zero). */
static inline bool epi_starts(const kiln_gemm_epi *e) { return e->overwrite || e->row_bias || e->col_bias; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX512_UKERNEL 1
/* x86/gemm_avx2.c: 6 x 16 with AVX2 and FMA; four rows of A and eight of B^T
 * packed by transposes in registers (each returns the k it did, a multiple
 * of 8). */
KILN_HIDDEN void kiln_ukernel_avx2(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                   int mr, int nr, const tile_epi *e);
KILN_HIDDEN int64_t kiln_pack_a_rows4(const float *a, int64_t lda, int64_t kc, int mr, float *dst);
KILN_HIDDEN int64_t kiln_pack_bt_cols8(const float *b, int64_t ldb, int64_t kc, int nr, float *dst);
/* x86/gemm_avx512.c: 12 x 32 with AVX-512, its forms for tiles of 8 and 4
 * rows and for a ragged last panel; the GEMMs of at most 16 columns and of one
 * row, false where they do not apply. */
KILN_HIDDEN void kiln_ukernel_avx512(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                     int mr, int nr, const tile_epi *e);
KILN_HIDDEN void kiln_ukernel_avx512_8(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                       int mr, int nr, const tile_epi *e);
KILN_HIDDEN void kiln_ukernel_avx512_4(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                       int mr, int nr, const tile_epi *e);
KILN_HIDDEN void kiln_ukernel_avx512_tail(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                          int mr, int nr, const tile_epi *e);
KILN_HIDDEN bool kiln_gemm_narrow(const gemm_args *g);
KILN_HIDDEN bool kiln_gemm_row(const gemm_args *g, float *sums, int64_t nsums);
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define HAVE_NEON_UKERNEL 1
/* arm/gemm_neon.c: 6 x 16 with NEON. */
KILN_HIDDEN void kiln_ukernel_neon(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha,
                                   int mr, int nr, const tile_epi *e);
#endif

#endif
