/* linalg.c: the linear-algebra kernels on float32: MatMul (one GEMM per batch
 * index, an operand's batch stride 0 where it broadcasts), Gemm (alpha op(A)
 * op(B) + beta C, where C goes into the GEMM's epilogue as a row or column
 * bias when it can, else is written first; the fused activation's clamp is the
 * epilogue's too), the packing of constant GEMM operands when a context is
 * created (pack_a, pack_b: Gemm's and MatMul's B, every batch slice of a
 * batched MatMul's), Einsum, Det and Trilu (of any element size).
 * The GEMM itself is gemm.c, with its microkernels under x86/ and arm/. */
#include "kiln_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* MatMul and Gemm take the GEMM's packing panels of every thread. */
void kiln_need_matmul(const int64_t *p, kiln_scratch_need *need) { (void)p; kiln_sgemm_need(need); }
void kiln_need_gemm(const int64_t *p, kiln_scratch_need *need) { (void)p; kiln_sgemm_need(need); }

KILN_KERNEL(matmul, "out <- a, b, b_packed? (f32; b_packed: each of b's [K, N] batch slices packed by pack_b, kiln_sgemm_packed_floats(N, K) floats apart, used instead of b when packed)",
    F(M) F(N) F(K) F(nb) A(out_bdims, KILN_MAX_RANK) A(a_bstrides, KILN_MAX_RANK) A(b_bstrides, KILN_MAX_RANK) F(packed))
int kiln_k_matmul(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_matmul, p);
    if (rc) return rc;
    const kiln_p_matmul *q = KILN_P(matmul, p);
    int64_t M = q->M, N = q->N, K = q->K, nb = q->nb;
    const int64_t *bdims = q->out_bdims, *astr = q->a_bstrides, *bstr = q->b_bstrides;
    int64_t batches = 1, idx[KILN_MAX_RANK] = {0};
    for (int64_t i = 0; i < nb; i++) batches *= bdims[i];
    float *out = bufs[0];
    memset(out, 0, (size_t)(batches * M * N) * sizeof(float));
    /* a constant b arrives packed (pack_b, when the context was created): its
     * slice bo at bo * kiln_sgemm_packed_floats(N, K) */
    const float *packed = q->packed ? bufs[3] : NULL;
    int64_t pstride = packed ? kiln_sgemm_packed_floats(N, K) : 0;
    int64_t ao = 0, bo = 0;
    for (int64_t b = 0; b < batches; b++) {
        if (packed) kiln_sgemm_packed(pool, M, N, K, 1.0f, (const float *)bufs[1] + ao * M * K, K, 0, packed + bo * pstride, out + b * M * N, N);
        else kiln_sgemm(pool, M, N, K, 1.0f, (const float *)bufs[1] + ao * M * K, K, 0,
                        (const float *)bufs[2] + bo * K * N, N, 0, out + b * M * N, N);
        for (int64_t d = nb - 1; d >= 0; d--) {
            ao += astr[d];
            bo += bstr[d];
            if (++idx[d] < bdims[d]) break;
            ao -= astr[d] * bdims[d];
            bo -= bstr[d] * bdims[d];
            idx[d] = 0;
        }
    }
    return 0;
}

/* Gemm's Y = beta * C (broadcast) before the product adds in, by rows. */
typedef struct { float *y; const float *c; float beta; int64_t n, crs, ccs; } gemm_init_job;

KILN_CLONES static void gemm_init_rows(void *arg, int64_t r0, int64_t r1) {
    const gemm_init_job *j = arg;
    int64_t N = j->n, crs = j->crs, ccs = j->ccs; /* locals: stores through y could alias *j */
    const float *C = j->c;
    float beta = j->beta;
    for (int64_t i = r0; i < r1; i++) {
        float *y = j->y + i * N;
        if (!C) for (int64_t n = 0; n < N; n++) y[n] = 0.0f;
        else if (ccs == 1) for (int64_t n = 0; n < N; n++) y[n] = beta * C[i * crs + n];
        else for (int64_t n = 0; n < N; n++) y[n] = beta * C[i * crs + n * ccs];
    }
}

KILN_KERNEL(gemm, "out <- a, b, c?, b_packed? (f32; b_packed: b packed by pack_b, used instead of b when packed)",
    F(M) F(N) F(K) F(transA) F(transB) D(alpha) D(beta) F(has_c) F(c_rs) F(c_cs) E(act) F(packed))
int kiln_k_gemm(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_gemm, p);
    if (rc) return rc;
    const kiln_p_gemm *q = KILN_P(gemm, p);
    int64_t M = q->M, N = q->N, K = q->K, ta = q->transA, tb = q->transB, has_c = q->has_c, crs = q->c_rs, ccs = q->c_cs;
    float alpha = (float)kiln_p2d(q->alpha), beta = (float)kiln_p2d(q->beta);
    float *Y = bufs[0];
    const float *C = has_c ? bufs[3] : NULL;
    /* C as a bias the epilogue starts from (a row of N, or a column of M), or
     * nothing; otherwise Y = beta * C first, and the product accumulates */
    bool col = C && beta == 1.0f && crs == 0 && ccs == 1, row = C && beta == 1.0f && crs == 1 && ccs == 0;
    kiln_gemm_epi e = epi_of(row ? C : NULL, col ? C : NULL, !C, &q->act);
    if (C && !col && !row) {
        gemm_init_job ij = {Y, C, beta, N, crs, ccs};
        kiln_parallel_for(M * N >= 16384 ? pool : NULL, M, gemm_init_rows, &ij);
    }
    kiln_sgemm_ex(pool, M, N, K, alpha, bufs[1], ta ? M : K, (int)ta, NULL, q->packed ? NULL : bufs[2], tb ? K : N, (int)tb,
                  q->packed ? bufs[4] : NULL, Y, N, &e);
    return 0;
}

KILN_KERNEL(pack_a, "packed <- w (f32; run once, when the context is created): each group's [M, K] rows packed for kiln_sgemm_packed_a, kiln_sgemm_packed_a_floats(M, K) floats apart",
    F(groups) F(M) F(K))
int kiln_k_pack_a(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_pack_a *q = KILN_P(pack_a, p);
    int64_t G = q->groups, M = q->M, K = q->K, stride = kiln_sgemm_packed_a_floats(M, K);
    for (int64_t g = 0; g < G; g++) kiln_sgemm_pack_a(M, K, (const float *)bufs[1] + g * M * K, K, 0, (float *)bufs[0] + g * stride);
    return 0;
}

KILN_KERNEL(pack_b_many, "packed <- w (f32; run once, when the context is created): E row-major [N, K] matrices, src_stride floats apart in w, each packed as the B of a GEMM by its transpose (K x N) for kiln_sgemm_packed, matrix e at e * kiln_sgemm_packed_floats(N, K) floats (MoE experts, recurrent weights)",
    F(E) F(N) F(K) F(src_stride))
int kiln_k_pack_b_many(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_pack_b_many *q = KILN_P(pack_b_many, p);
    float *dst = bufs[0];
    const float *w = bufs[1];
    int64_t stride = kiln_sgemm_packed_floats(q->N, q->K);
    for (int64_t e = 0; e < q->E; e++) kiln_sgemm_pack(q->N, q->K, w + e * q->src_stride, q->K, 1, dst + e * stride);
    return 0;
}

KILN_KERNEL(pack_b, "packed <- b (f32; run once, when the context is created): op(b) (K x N) packed for kiln_sgemm_packed; with E > 1, E such matrices K * N floats apart in b (a MatMul's batch slices), matrix e at e * kiln_sgemm_packed_floats(N, K) floats (E 0 reads as 1)",
    F(N) F(K) F(transB) F(E))
int kiln_k_pack_b(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_pack_b *q = KILN_P(pack_b, p);
    int64_t E = q->E > 1 ? q->E : 1, stride = kiln_sgemm_packed_floats(q->N, q->K);
    for (int64_t e = 0; e < E; e++)
        kiln_sgemm_pack(q->N, q->K, (const float *)bufs[1] + e * q->K * q->N, q->transB ? q->K : q->N, (int)q->transB,
                        (float *)bufs[0] + e * stride);
    return 0;
}

/* ---- Einsum (a plain sum over every label not in the output) and Det ---- */

KILN_KERNEL(einsum, "out <- in0..in{n-1} (f32)", F(n) F(n_labels /* 64 */) A(sizes, 64) F(out_rank) A(out_labels, KILN_MAX_RANK)
    T(inputs /* per input: rank, labels[rank], dims[rank] */))
int kiln_k_einsum(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_einsum *e = KILN_P(einsum, p);
    int n = (int)e->n;
    const int64_t *size = e->sizes;
    int64_t orank = e->out_rank;
    const int64_t *olab = e->out_labels;
    int64_t stride[8][64];
    memset(stride, 0, sizeof stride);
    const int64_t *q = e->inputs;
    bool in_out[64] = {false}, used[64] = {false};
    for (int64_t k = 0; k < orank; k++) in_out[olab[k]] = true;
    for (int i = 0; i < n; i++) {
        int64_t r = q[0];
        const int64_t *lab = q + 1, *dims = q + 1 + r;
        int64_t s = 1;
        for (int64_t k = r - 1; k >= 0; k--) {
            if (dims[k] != 1) stride[i][lab[k]] += s; /* a repeated label walks the diagonal */
            used[lab[k]] = true;
            s *= dims[k];
        }
        q += 1 + 2 * r;
    }
    int sum_lab[64], ns = 0;
    int64_t nsum = 1, nout = 1;
    for (int l = 0; l < 64; l++) if (used[l] && !in_out[l]) { sum_lab[ns++] = l; nsum *= size[l]; }
    for (int64_t k = 0; k < orank; k++) nout *= size[olab[k]];
    float *y = bufs[0];
    for (int64_t o = 0; o < nout; o++) {
        int64_t base[8] = {0}, rem = o;
        for (int64_t k = orank - 1; k >= 0; k--) {
            int64_t l = olab[k], c = rem % size[l];
            rem /= size[l];
            for (int i = 0; i < n; i++) base[i] += c * stride[i][l];
        }
        double acc = 0;
        for (int64_t s = 0; s < nsum; s++) {
            int64_t off[8], r2 = s;
            for (int i = 0; i < n; i++) off[i] = base[i];
            for (int k = ns - 1; k >= 0; k--) {
                int l = sum_lab[k];
                int64_t c = r2 % size[l];
                r2 /= size[l];
                for (int i = 0; i < n; i++) off[i] += c * stride[i][l];
            }
            double prod = 1;
            for (int i = 0; i < n; i++) prod *= ((const float *)bufs[1 + i])[off[i]];
            acc += prod;
        }
        y[o] = (float)acc;
    }
    return 0;
}

KILN_KERNEL(det, "out <- x, a (f32; a: scratch of M * M + 1 doubles)", F(batch) F(M))
int kiln_k_det(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t batch = KILN_P(det, p)->batch, M = KILN_P(det, p)->M;
    const float *x = bufs[1];
    float *y = bufs[0];
    double *a = bufs[2]; /* the step's scratch */
    for (int64_t b = 0; b < batch; b++) { /* LU with partial pivoting */
        for (int64_t i = 0; i < M * M; i++) a[i] = x[b * M * M + i];
        double det = 1;
        for (int64_t c = 0; c < M && det != 0; c++) {
            int64_t piv = c;
            for (int64_t r = c + 1; r < M; r++) if (fabs(a[r * M + c]) > fabs(a[piv * M + c])) piv = r;
            if (a[piv * M + c] == 0) { det = 0; break; }
            if (piv != c) {
                for (int64_t k = 0; k < M; k++) { double t = a[c * M + k]; a[c * M + k] = a[piv * M + k]; a[piv * M + k] = t; }
                det = -det;
            }
            det *= a[c * M + c];
            for (int64_t r = c + 1; r < M; r++) {
                double f = a[r * M + c] / a[c * M + c];
                for (int64_t k = c; k < M; k++) a[r * M + k] -= f * a[c * M + k];
            }
        }
        y[b] = (float)det;
    }
    return 0;
}

KILN_KERNEL(trilu, "out <- in", F(esize) F(batch) F(rows) F(cols) F(k) F(upper))
int kiln_k_trilu(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_trilu *q = KILN_P(trilu, p);
    int64_t esize = q->esize, batch = q->batch, rows = q->rows, cols = q->cols, k = q->k, upper = q->upper;
    char *out = bufs[0];
    const char *in = bufs[1];
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                int64_t at = ((b * rows + r) * cols + c) * esize;
                bool keep = upper ? c - r >= k : c - r <= k;
                if (keep) memcpy(out + at, in + at, (size_t)esize);
                else memset(out + at, 0, (size_t)esize);
            }
    return 0;
}
