/* gemm.c: the packed, register-blocked float32 GEMM: C += alpha * op(A) op(B).
 *
 * The algorithm is the BLIS/GotoBLAS one: for each KC-deep slice of K and
 * NC-wide block of columns, B is packed into NR-wide panels; for each MC-tall
 * block of rows A is packed into MR-tall panels; a microkernel then computes one
 * MR x NR tile of C in registers over the whole slice. On x86-64 the microkernel
 * is 12 x 32 with AVX-512 (24 accumulators of 16 floats) or 6 x 16 with AVX2 and
 * FMA (12 accumulators of 8 floats), chosen at run time by cpuid; on 64-bit ARM
 * it is 6 x 16 with NEON (24 accumulators of 4 floats); the plain C microkernel
 * (4 x 16) serves every other CPU. The ISA microkernels are x86/gemm_avx512.c,
 * x86/gemm_avx2.c and arm/gemm_neon.c (what they share with this file:
 * kiln_gemm.h).
 * Threads split the larger of M and N; each works on its own sub-matrix with its
 * own packing buffers, in its scratch slot (scratch.c): a context's are
 * allocated when it is created, for the kernels that declare them
 * (kiln_sgemm_need), so a run allocates nothing. */
#include "kiln_gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MC 120
#define NC 3072
/* at most this many rows of A: B is read in place, not packed (gemm_serial) */
#define DIRECT_B_MAX_M 48
/* or B's rows this short (and wider than two panels): a K slice is then one
 * run of a few contiguous pages, read in place at any M (gemm_serial) */
#define DIRECT_B_MAX_N 256
/* at most this deep a K slice: its tiles go row block by row block (gemm_serial) */
#define ROWS_OUTER_KC 64

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
#else
static int have_avx2(void) { return 0; }
int kiln_have_avx512(void) { return 0; }
#define kiln_ukernel_avx2 ukernel_c
#define kiln_ukernel_avx512 ukernel_c
#endif

/* ---- packing ---- */

static inline float a_at(const gemm_args *g, int64_t i, int64_t k) { return g->ta ? g->A[k * g->lda + i] : g->A[i * g->lda + k]; }
static inline float b_at(const gemm_args *g, int64_t k, int64_t j) { return g->tb ? g->B[j * g->ldb + k] : g->B[k * g->ldb + j]; }

static void pack_a(const gemm_args *g, int mr, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float *pa) {
    for (int64_t p = 0; p < mc; p += mr) {
        int64_t rows = mc - p < mr ? mc - p : mr;
        int64_t r4 = 0, kdone = 0; /* rows [0, r4) x k [0, kdone) packed by kiln_pack_a_rows4 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (!g->ta && have_avx2())
            for (; r4 + 4 <= rows; r4 += 4) kdone = kiln_pack_a_rows4(g->A + (i0 + p + r4) * g->lda + k0, g->lda, kc, mr, pa + p * kc + r4);
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
                    int64_t k = kiln_pack_bt_cols8(src, g->ldb, kc, nr, panel + j);
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

/* The kernel for a tile of `rows` rows and `cols` columns, short of the full
 * tile: a cheaper one where it exists. */
static ukernel_fn tile_ukernel(ukernel_fn uk, int rows, int cols) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (uk == kiln_ukernel_avx512 && cols < 28) return kiln_ukernel_avx512_tail;
    if (uk == kiln_ukernel_avx512 && rows <= 8) return rows <= 4 ? kiln_ukernel_avx512_4 : kiln_ukernel_avx512_8;
#endif
    (void)rows, (void)cols;
    return uk;
}

/* The microkernel of this CPU: rows and panel width. */
static ukernel_fn pick_ukernel(int *mr, int *nr) {
    if (kiln_have_avx512()) { *mr = 12; *nr = 32; return kiln_ukernel_avx512; }
    if (have_avx2()) { *mr = 6; *nr = NR; return kiln_ukernel_avx2; }
#ifdef HAVE_NEON_UKERNEL
    *mr = 6; *nr = NR;
    return kiln_ukernel_neon;
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

/* A thread's packing panels: KC (MC + MR_MAX) floats of A's (a 64-byte
 * multiple), then KC (NC + NR_MAX) of B's. */
#define PANEL_BYTES ((int64_t)sizeof(float) * KC * (MC + MR_MAX + NC + NR_MAX))

void kiln_sgemm_need(kiln_scratch_need *need) {
    if (need->gemm_bytes < PANEL_BYTES) need->gemm_bytes = PANEL_BYTES;
}

/* The panels are the thread's scratch slot's (scratch.c: its pool's, sized
 * when the context was created; outside a context allocated when it first
 * multiplies). */
static void gemm_serial(const gemm_args *g) {
    float *pa = kiln_tscratch_panels(kiln_tscratch_cur(), PANEL_BYTES), *pb = pa ? pa + KC * (MC + MR_MAX) : NULL;
    int mr, nrp;
    ukernel_fn uk = pick_ukernel(&mr, &nrp);
    const kiln_gemm_epi *ep = &g->epi;
    bool init = epi_starts(ep);
    if (!pa || !pb) { gemm_plain(g); return; } /* no packing memory */
#ifdef HAVE_AVX512_UKERNEL
    if (uk == kiln_ukernel_avx512 && (kiln_gemm_narrow(g) || kiln_gemm_row(g, pb, KC * (NC + NR_MAX)))) return;
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
    bool direct = uk == kiln_ukernel_avx512 && !g->packed && !g->tb &&
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
    kiln_tscratch *prev = pool ? kiln_tscratch_use(kiln_pool_caller_scratch(pool)) : NULL; /* the caller's panels: the pool's */
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
    if (pool) kiln_tscratch_use(prev);
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
