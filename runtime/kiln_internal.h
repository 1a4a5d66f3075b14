/* kiln_internal.h: what the runtime's kernel families share, for the runtime's
 * own files only (it is not installed beside kiln_rt.h): the 3-D window of
 * convolution and pooling (win3, conv_job), the fused activation's bounds, the
 * per-thread scratch buffer (scratch.c) and the softmax of a block of rows
 * (norm.c, which attention.c runs on its scores).
 *
 * The -O3 C backend compiles every kernel file as one translation unit
 * (kiln_kernels.c, made by the Makefile), so what is defined here is static
 * inline behind one include guard, a function one file defines for another is
 * a hidden extern named kiln_*, and no two files define the same static name. */
#ifndef KILN_INTERNAL_H
#define KILN_INTERNAL_H

#include "kiln_rt.h"
#include "kiln_params.h"
#include "kiln_scalar.h"
#include "kiln_simd.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* A function one runtime file defines for another: not part of the interface,
 * and not exported from a model built as a shared library. */
#if defined(__GNUC__) || defined(__clang__)
#define KILN_HIDDEN __attribute__((visibility("hidden")))
#else
#define KILN_HIDDEN
#endif

/* ---- convolution and pooling, as 3-D ---- */

typedef struct {
    int64_t N, C, M, group, in[3], out[3], k[3], stride[3], dil[3], pad[3], pad_end[3];
} win3;

/* The small-channel convolution (x86/conv_avx512.c): at most this many input
 * channels and C * KH * KW taps; its weights as [taps][M rounded up to 16],
 * packed by kiln_smallc_pack (conv.c), at create time for constant weights. */
#define KILN_SMALLC_MAX_C 4
#define KILN_SMALLC_MAX_TAPS 160
KILN_HIDDEN void kiln_smallc_pack(float *dst, const float *w, int64_t taps, int64_t M);

/* A window of nd dimensions (the first nd of each of q's arrays) as 3-D, with
 * leading unit dimensions (defined in conv.c; pool.c and quant.c call it too). */
KILN_HIDDEN void kiln_win3_read(win3 *w, int64_t nd, const kiln_pwin *q);

typedef struct {
    win3 w;
    const float *x, *wt, *b;
    float *y;
    const kiln_pact *act;
} conv_job;

/* The interior of a 2-D window: [lo, hi) of the outputs whose taps all fall in [0, in). */
static inline void window_interior(int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pad, int64_t *lo, int64_t *hi) {
    int64_t l = (pad + s - 1) / s, h = in - 1 - (k - 1) * d + pad;
    h = h < 0 ? 0 : h / s + 1;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* ---- the fused activation of conv and gemm ---- */

/* The activation parameters {on, lo, hi} as bounds: [-inf, inf] when off. */
static inline bool act_bounds(const kiln_pact *act, float *lo, float *hi) {
    bool on = act && act->on;
    *lo = on ? (float)kiln_p2d(act->lo) : -INFINITY;
    *hi = on ? (float)kiln_p2d(act->hi) : INFINITY;
    return on;
}

/* The fused activation's clamp as a GEMM epilogue. */
static inline kiln_gemm_epi epi_of(const float *row_bias, const float *col_bias, int overwrite, const kiln_pact *act) {
    kiln_gemm_epi e = {row_bias, col_bias, overwrite, 0, 0, 0, NULL};
    e.clamp = act_bounds(act, &e.lo, &e.hi);
    return e;
}

/* ---- shared functions ---- */

/* Per-thread scratch (scratch.c): one slot per thread of a pool, owned by the
 * pool (so by its context) and freed with it; a thread outside any pool (the
 * compiler's folding, a kernel called with no pool) uses one of its own,
 * freed when the thread ends. kiln_tscratch_use makes `s` the calling
 * thread's current slot and returns the one it replaces: pool workers take
 * theirs when they start, the caller's slot 0 is current while the pool runs
 * its share of a job (kiln_parallel_for) or a GEMM it was handed. */
typedef struct kiln_tscratch {
    float *buf; /* kiln_thread_scratch's */
    int64_t cap, key[5];
    float *gemm; /* the GEMM's packing panels (gemm.c) */
} kiln_tscratch;
KILN_HIDDEN kiln_tscratch *kiln_tscratch_new(int n);
KILN_HIDDEN void kiln_tscratch_free(kiln_tscratch *s, int n);
KILN_HIDDEN kiln_tscratch *kiln_tscratch_use(kiln_tscratch *s);
/* The calling thread's current slot (its own outside any pool); NULL only
 * when a thread's own slot cannot be registered. */
KILN_HIDDEN kiln_tscratch *kiln_tscratch_cur(void);
/* Slot 0 of a pool: its caller's (rt.c). */
KILN_HIDDEN kiln_tscratch *kiln_pool_caller_scratch(kiln_pool *p);
/* The thread's scratch buffer of n floats whose first `clear` are zero, for a
 * layout named by the key (k0, k1, k2); NULL when it cannot be had
 * (scratch.c). */
KILN_HIDDEN float *kiln_thread_scratch(int64_t n, int64_t clear, int64_t k0, int64_t k1, int64_t k2);

/* Softmax, in place, over `rows` contiguous rows of len floats (norm.c;
 * attention.c's scores). */
KILN_HIDDEN void kiln_softmax_rows(float *s, int64_t len, int64_t rows);

#endif
