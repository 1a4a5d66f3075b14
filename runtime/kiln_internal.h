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
 * its share of a job (kiln_parallel_for) or a GEMM it was handed.
 * A context's slots are fixed: sized when it is created (kiln_context_scratch,
 * to the largest kiln_need_NAME of its steps), never grown by a run. A
 * thread's own slot, and those of a pool made alone (kiln_pool_create, as a
 * program calling kiln_sgemm itself does), grow on first use instead. */
typedef struct kiln_tscratch {
    float *buf; /* kiln_thread_scratch's */
    int64_t cap, key[5];
    float *gemm; /* the GEMM's packing panels (gemm.c), gemm_bytes of them */
    int64_t gemm_bytes;
    bool fixed; /* sized at create: never grows */
} kiln_tscratch;
KILN_HIDDEN kiln_tscratch *kiln_tscratch_new(int n);
KILN_HIDDEN void kiln_tscratch_free(kiln_tscratch *s, int n);
KILN_HIDDEN kiln_tscratch *kiln_tscratch_use(kiln_tscratch *s);
/* The calling thread's current slot (its own outside any pool); NULL only
 * when a thread's own slot cannot be had. */
KILN_HIDDEN kiln_tscratch *kiln_tscratch_cur(void);
/* Sizes the n slots s to at least need and fixes them (at create only);
 * KILN_OK or KILN_E_NOMEM. */
KILN_HIDDEN int kiln_tscratch_size(kiln_tscratch *s, int n, const kiln_scratch_need *need);
/* Slot 0 of a pool: its caller's (rt.c). */
KILN_HIDDEN kiln_tscratch *kiln_pool_caller_scratch(kiln_pool *p);
/* Sizes every slot of pool p (rt.c; kiln_tscratch_size). */
KILN_HIDDEN int kiln_pool_scratch(kiln_pool *p, const kiln_scratch_need *need);
/* A kernel's first check: KILN_OK when the slots of the threads that run it
 * (pool's, or with no pool the calling thread's) hold what fn says its
 * parameters p need, or grow on first use; else KILN_E_NOMEM (the kernel
 * returns it, having computed nothing). */
KILN_HIDDEN int kiln_scratch_check(kiln_pool *pool, kiln_need_fn fn, const int64_t *p);
/* The thread's scratch buffer of n floats whose first `clear` are zero, for a
 * layout named by the key (k0, k1, k2); NULL when it cannot be had: a fixed
 * slot too small (kiln_scratch_check rules that out), or no memory
 * (scratch.c). */
KILN_HIDDEN float *kiln_thread_scratch(int64_t n, int64_t clear, int64_t k0, int64_t k1, int64_t k2);
/* The GEMM's packing panels, `bytes` of them, in slot s: allocated now only
 * in a slot that grows; NULL when they cannot be had (scratch.c). */
KILN_HIDDEN float *kiln_tscratch_panels(kiln_tscratch *s, int64_t bytes);
/* Raises need to the packing panels of one thread's GEMM (gemm.c): the need
 * of every kernel that multiplies through kiln_sgemm*. */
KILN_HIDDEN void kiln_sgemm_need(kiln_scratch_need *need);

/* Softmax, in place, over `rows` contiguous rows of len floats (norm.c;
 * attention.c's scores). */
KILN_HIDDEN void kiln_softmax_rows(float *s, int64_t len, int64_t rows);

#endif
