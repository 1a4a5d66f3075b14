/* attention.c: fused attention, kiln.Attention (the fusion pass makes it of
 * MatMul, Div or Mul, Add, Softmax and MatMul), on float32, in parallel over
 * batch indices and blocks of query rows. A block's scores live in the
 * thread's scratch (scratch.c); their softmax is norm.c's (kiln_softmax_rows). */
#include "kiln_internal.h"

/* Attention, softmax(q kt / scale + mask) v per batch index, ATTN_ROWS query
 * rows at a time: their scores (rows x N) are computed into the thread's
 * scratch, scaled, masked and softmaxed there (softmax_rows) and multiplied by
 * v into the output, so the score matrix never exists in full. The same
 * operations, in the same order, as MatMul, Div (or Mul), Add, Softmax and
 * MatMul one after the other. Every operand is read through its strides (the
 * head-split and K transposes around an attention are never materialized):
 * q, v and out contiguous along their last axis, kt along either. */
#define ATTN_ROWS 128            /* query rows per block, at most */
#define ATTN_BLOCK_FLOATS 65536  /* a block's scores, at most (256 KB: fewer rows when rows are long) */
#define ATTN_MAX_N (1 << 20)     /* longer rows go one at a time without scratch */
typedef struct {
    const float *q, *kt, *v, *mask;
    float *out;
    int64_t M, N, Dk, Dv, op, nb, rows, blocks; /* rows per block (0: none, no scratch), blocks per batch index */
    float scale;
    const int64_t *bdims, *str[5]; /* q, kt, v, out, mask: nb batch strides, then the row and column strides */
} attn_job;

/* The offset of batch index b (row-major over bdims) through batch strides st. */
static int64_t attn_off(const attn_job *j, const int64_t *st, int64_t b) {
    int64_t off = 0;
    for (int64_t d = j->nb - 1; d >= 0; d--) { off += b % j->bdims[d] * st[d]; b /= j->bdims[d]; }
    return off;
}

/* A score whose raw product is x: scaled (op 1 divides, 2 multiplies), then
 * plus the mask's element m. */
static inline float attn_score(int64_t op, float scale, float x, float m) {
    if (op == 1) x = x / scale;
    else if (op == 2) x = x * scale;
    return x + m;
}

/* One query row without scratch (rows longer than ATTN_MAX_N, or the thread's
 * buffer could not be had): each score recomputed as a dot product in every
 * pass, the maximum, the sum (in double), then each output column (in
 * double). */
static void attention_row_noscratch(const attn_job *j, const float *q, const float *kt, const float *v, const float *mi,
                                    float *out) {
    const int64_t *ks = j->str[1] + j->nb, *vs = j->str[2] + j->nb, *ms = j->str[4] + j->nb;
    float mx = -INFINITY;
    double sum = 0;
    for (int64_t pass = -2; pass < j->Dv; pass++) { /* -2: the maximum, -1: the sum, d >= 0: output column d */
        double acc = 0;
        for (int64_t c = 0; c < j->N; c++) {
            float x = 0;
            for (int64_t d = 0; d < j->Dk; d++) x += q[d] * kt[d * ks[0] + c * ks[1]];
            x = attn_score(j->op, j->scale, x, mi ? mi[c * ms[1]] : 0.0f);
            if (pass == -2) mx = x > mx ? x : mx;
            else if (pass == -1) sum += kiln_expf(x - mx);
            else acc += (double)kiln_expf(x - mx) * v[c * vs[0] + pass];
        }
        if (pass >= 0) out[pass] = j->N ? (float)(acc / sum) : 0.0f; /* no keys: zeros, as MatMul over K = 0 gives */
    }
}

KILN_CLONES static void attention_blocks(void *arg, int64_t u0, int64_t u1) {
    const attn_job *j = arg;
    int64_t M = j->M, N = j->N, Dk = j->Dk, Dv = j->Dv, nb = j->nb, op = j->op;
    float scale = j->scale; /* a local: the stores into the scores could alias j->scale */
    int64_t qrs = j->str[0][nb], krs = j->str[1][nb], kcs = j->str[1][nb + 1], vrs = j->str[2][nb], ors = j->str[3][nb];
    int64_t mrs = j->str[4][nb], mcs = j->str[4][nb + 1];
    int64_t R = j->rows ? j->rows : 1;
    float *s = j->rows ? kiln_thread_scratch(R * N, 0, -2, N, 0) : NULL; /* the thread's buffer, sized at create */
    kiln_gemm_epi fresh = {NULL, NULL, 1, 0, 0.0f, 0.0f, NULL};
    for (int64_t u = u0; u < u1; u++) {
        int64_t b = u / j->blocks, r0 = u % j->blocks * R, rows = M - r0 < R ? M - r0 : R;
        const float *q = j->q + attn_off(j, j->str[0], b) + r0 * qrs, *kt = j->kt + attn_off(j, j->str[1], b);
        const float *v = j->v + attn_off(j, j->str[2], b), *mrow = j->mask ? j->mask + attn_off(j, j->str[4], b) + r0 * mrs : NULL;
        float *out = j->out + attn_off(j, j->str[3], b) + r0 * ors;
        if (!s) {
            for (int64_t i = 0; i < rows; i++) attention_row_noscratch(j, q + i * qrs, kt, v, mrow ? mrow + i * mrs : NULL, out + i * ors);
            continue;
        }
        /* kt contiguous along N: rows of ldb krs; along Dk: kt^T's rows, ldb kcs */
        kiln_sgemm_ex(NULL, rows, N, Dk, 1.0f, q, qrs, 0, NULL, kt, kcs == 1 ? krs : kcs, kcs != 1, NULL, s, N, &fresh);
        for (int64_t i = 0; i < rows; i++) {
            float *si = s + i * N;
            const float *mi = mrow ? mrow + i * mrs : NULL;
            if (!mi) for (int64_t c = 0; c < N; c++) si[c] = attn_score(op, scale, si[c], 0.0f);
            else if (mcs == 1) for (int64_t c = 0; c < N; c++) si[c] = attn_score(op, scale, si[c], mi[c]);
            else for (int64_t c = 0; c < N; c++) si[c] = attn_score(op, scale, si[c], mi[c * mcs]);
        }
        kiln_softmax_rows(s, N, rows);
        kiln_sgemm_ex(NULL, rows, Dv, N, 1.0f, s, N, 0, NULL, v, vrs, 0, NULL, out, ors, &fresh);
    }
}

/* Query rows per block for rows of N keys (0: one at a time, without scratch). */
static int64_t attn_rows(int64_t N) {
    int64_t rows = N > ATTN_MAX_N ? 0 : N * ATTN_ROWS <= ATTN_BLOCK_FLOATS ? ATTN_ROWS : ATTN_BLOCK_FLOATS / N;
    return N <= ATTN_MAX_N && rows < 1 ? 1 : rows;
}

/* A block's scores in every thread's scratch, and the GEMMs' panels. */
void kiln_need_attention(const int64_t *p, kiln_scratch_need *need) {
    const kiln_p_attention *q = KILN_P(attention, p);
    int64_t rows = attn_rows(q->N);
    if (!rows) return;
    if (need->floats < rows * q->N) need->floats = rows * q->N;
    kiln_sgemm_need(need);
}

KILN_KERNEL(attention, "out <- q, kt, v, mask? (f32; logical q [b.., M, Dk], kt [b.., Dk, N], v [b.., N, Dv], out [b.., M, Dv], each read through strides: q, v, out contiguous along the last axis, kt along either): softmax(q kt / scale + mask) v, a block of query rows at a time",
    F(M) F(N) F(Dk) F(Dv) F(scale_op /* 0 none, 1 divide, 2 multiply */) D(scale) F(has_mask) F(nb) A(bdims, KILN_MAX_RANK)
    A(strides, 5 * (KILN_MAX_RANK + 2) /* q, kt, v, out, mask: each batch strides[nb], row stride, column stride, KILN_MAX_RANK + 2 apart */))
int kiln_k_attention(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_attention, p);
    if (rc) return rc;
    const kiln_p_attention *q = KILN_P(attention, p);
    int64_t nb = q->nb, batches = 1;
    int64_t N = q->N, rows = attn_rows(N);
    int64_t R = rows ? rows : 1;
    attn_job j = {bufs[1], bufs[2], bufs[3], q->has_mask ? bufs[4] : NULL, bufs[0], q->M, N, q->Dk, q->Dv, q->scale_op, nb, rows,
                  (q->M + R - 1) / R, (float)kiln_p2d(q->scale), q->bdims, {NULL}};
    for (int i = 0; i < 5; i++) j.str[i] = q->strides + i * (KILN_MAX_RANK + 2);
    for (int64_t d = 0; d < nb; d++) batches *= q->bdims[d];
    kiln_parallel_for(pool, batches * j.blocks, attention_blocks, &j);
    return 0;
}
