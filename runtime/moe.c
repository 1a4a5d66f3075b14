/* moe.c: the Mixture-of-Experts kernel (kiln.MoE).
 *
 * One call computes a whole MoE layer for T tokens:
 *   1. routing, in parallel over tokens: scores = softmax or sigmoid of the router
 *      logits; with n_group > 1 only the best topk_group expert groups stay
 *      eligible (a group scores the sum of its two best experts, as DeepSeek-V3
 *      does); the top k eligible experts by score (+ the optional selection bias)
 *      are chosen, their scores (without the bias) are the weights, optionally
 *      normalized to sum 1, then multiplied by the scaling factor;
 *   2. a counting sort of the T*k (token, expert) pairs by expert, so each
 *      expert's tokens are contiguous rows (no allocation: all in the scratch
 *      buffer whose size kiln_moe_scratch_bytes gives);
 *   3. every expert with tokens runs its MLP on its rows with the packed GEMM:
 *      h = act(x W1^T + b1) [* (x W3^T + b3)], y = h W2^T + b2. Experts are handed
 *      to the pool's workers heaviest first, each worker taking the next one when
 *      it is free (list scheduling); when fewer experts than workers have work,
 *      experts run one after another with the GEMMs split over the workers;
 *   4. the combine, in parallel over tokens: out[t] = sum_j w[t,j] y[slot(t,j)],
 *      in the order of j, so results do not depend on the thread count.
 * Weights are [E, rows, cols] row-major as com.microsoft.MoE lays them out:
 * W1 [E, I1, H], W2 [E, H, I], W3 [E, I, H]. The per-expert token counts of each
 * call are added to an int64 counter array (the routing profile). Constant
 * weights arrive packed in the GEMM's layout too (kiln_k_pack_b_many, run once when
 * the context is created), so no call repacks them. */
#include "kiln_internal.h" /* kiln_scratch_check, kiln_sgemm_need */

#include <math.h>
#include <stdatomic.h>
#include <string.h>

enum { ACT_IDENTITY, ACT_RELU, ACT_GELU, ACT_SILU, ACT_SWIGLU };

typedef struct {
    int64_t T, H, I, I1, E, k, act, fusion, n_group, topk_group;
    int has_b1, has_b2, has_w3, has_b3, has_rbias, sigmoid, normalize;
    float scale, alpha, beta, limit;
    float *out;
    const float *x, *logits, *w1, *b1, *w2, *b2, *w3, *b3, *rbias;
    const float *w1p, *w2p, *w3p;   /* packed weights (pack_b_many), or NULL */
    int64_t s1, s2, s3;             /* floats per expert in them */
    int64_t *counts;
    /* scratch */
    float *scores, *wt, *xs, *hb, *h3, *ys;
    int32_t *sel, *slot;
    int64_t *cnt, *off;
    int32_t *order;
    int64_t n_active;
    atomic_llong next;
    kiln_pool *gemm_pool;
} moe_job;

static int64_t align64(int64_t n) { return (n + 63) & ~(int64_t)63; }

static int64_t moe_i1(const kiln_p_moe *q) { return q->act == ACT_SWIGLU && !q->has_w3 ? 2 * q->I : q->I; }

/* Lays the scratch buffer out (base NULL: only measures); returns its size. */
static int64_t moe_layout(moe_job *j, const kiln_p_moe *q, unsigned char *base) {
    int64_t T = q->T, H = q->H, I = q->I, E = q->E, k = q->k, R = T * k, I1 = moe_i1(q), o = 0;
#define TAKE(field, type, count) do { if (base) j->field = (type *)(base + o); o += align64((int64_t)sizeof(type) * (count)); } while (0)
    TAKE(scores, float, T * E);
    TAKE(wt, float, R);
    TAKE(sel, int32_t, R);
    TAKE(slot, int32_t, R);
    TAKE(cnt, int64_t, E);
    TAKE(off, int64_t, E + 1);
    TAKE(order, int32_t, E);
    TAKE(xs, float, R * H);
    TAKE(hb, float, R * I1);
    if (q->has_w3) TAKE(h3, float, R * I);
    TAKE(ys, float, R * H);
#undef TAKE
    return o;
}

int64_t kiln_moe_scratch_bytes(const kiln_p_moe *q) {
    moe_job j;
    return moe_layout(&j, q, NULL);
}

/* The best `want` of n scores among those with eligible[i] (NULL: all); ties go
 * to the lower index. */
static void top_indices(const float *s, const unsigned char *eligible, int64_t n, int64_t want, int32_t *idx) {
    for (int64_t j = 0; j < want; j++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            if (eligible && !eligible[i]) continue;
            int taken = 0;
            for (int64_t q = 0; q < j; q++) taken |= idx[q] == i;
            if (taken) continue;
            if (best < 0 || s[i] > s[best]) best = i;
        }
        idx[j] = (int32_t)(best < 0 ? 0 : best);
    }
}

static void route_tokens(void *arg, int64_t b, int64_t e) {
    moe_job *j = arg;
    int64_t E = j->E, k = j->k;
    float choice[1024];
    unsigned char eligible[1024];
    int32_t gidx[1024], top2[2];
    for (int64_t t = b; t < e; t++) {
        const float *lg = j->logits + t * E;
        float *s = j->scores + t * E;
        if (j->sigmoid) {
            for (int64_t i = 0; i < E; i++) s[i] = 1.0f / (1.0f + expf(-lg[i]));
        } else {
            float m = lg[0], sum = 0;
            for (int64_t i = 1; i < E; i++) m = lg[i] > m ? lg[i] : m;
            for (int64_t i = 0; i < E; i++) sum += s[i] = expf(lg[i] - m);
            for (int64_t i = 0; i < E; i++) s[i] /= sum;
        }
        for (int64_t i = 0; i < E; i++) choice[i] = s[i] + (j->has_rbias ? j->rbias[i] : 0.0f);
        const unsigned char *elig = NULL;
        if (j->n_group > 1) {
            int64_t gs = E / j->n_group;
            float gscore[1024];
            for (int64_t g = 0; g < j->n_group; g++) {
                int64_t two = gs < 2 ? gs : 2;
                top_indices(choice + g * gs, NULL, gs, two, top2);
                gscore[g] = 0;
                for (int64_t q = 0; q < two; q++) gscore[g] += choice[g * gs + top2[q]];
            }
            top_indices(gscore, NULL, j->n_group, j->topk_group, gidx);
            memset(eligible, 0, (size_t)E);
            for (int64_t q = 0; q < j->topk_group; q++) memset(eligible + gidx[q] * gs, 1, (size_t)gs);
            elig = eligible;
        }
        int32_t *sel = j->sel + t * k;
        float *w = j->wt + t * k, sum = 0;
        top_indices(choice, elig, E, k, sel);
        for (int64_t q = 0; q < k; q++) sum += w[q] = s[sel[q]];
        for (int64_t q = 0; q < k; q++) w[q] = (j->normalize && sum > 0 ? w[q] / sum : w[q]) * j->scale;
    }
}

static void gather_rows(void *arg, int64_t b, int64_t e) {
    moe_job *j = arg;
    for (int64_t r = b; r < e; r++)
        memcpy(j->xs + (int64_t)j->slot[r] * j->H, j->x + (r / j->k) * j->H, (size_t)j->H * sizeof(float));
}

static void combine_rows(void *arg, int64_t b, int64_t e) {
    moe_job *j = arg;
    int64_t H = j->H;
    for (int64_t t = b; t < e; t++) {
        float *o = j->out + t * H;
        memset(o, 0, (size_t)H * sizeof(float));
        for (int64_t q = 0; q < j->k; q++) {
            const float *y = j->ys + (int64_t)j->slot[t * j->k + q] * H;
            float w = j->wt[t * j->k + q];
            for (int64_t c = 0; c < H; c++) o[c] += w * y[c];
        }
    }
}

static void fill_rows(float *c, int64_t n, int64_t width, const float *bias) {
    for (int64_t r = 0; r < n; r++) {
        if (bias) memcpy(c + r * width, bias, (size_t)width * sizeof(float));
        else memset(c + r * width, 0, (size_t)width * sizeof(float));
    }
}

static inline float act_one(int64_t act, float v) {
    switch (act) {
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_GELU: return 0.5f * v * (1.0f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v)));
    case ACT_SILU: return v / (1.0f + expf(-v));
    default: return v;
    }
}

static inline float swiglu(const moe_job *j, float g, float l) {
    g = g < j->limit ? g : j->limit;
    l = l < -j->limit ? -j->limit : l > j->limit ? j->limit : l;
    return g / (1.0f + expf(-j->alpha * g)) * (l + j->beta);
}

/* Applies the activation to n rows of hb (and h3), leaving row r's I results
 * in hb[r * I1 .. + I]. */
static void activate(const moe_job *j, float *hb, const float *h3, int64_t n) {
    int64_t I = j->I, I1 = j->I1;
    for (int64_t r = 0; r < n; r++) {
        float *h = hb + r * I1;
        const float *l3 = h3 ? h3 + r * I : NULL;
        if (j->act == ACT_SWIGLU && l3) for (int64_t i = 0; i < I; i++) h[i] = swiglu(j, h[i], l3[i]);
        else if (j->act == ACT_SWIGLU && j->fusion == 2) for (int64_t i = 0; i < I; i++) h[i] = swiglu(j, h[i], h[I + i]);
        else if (j->act == ACT_SWIGLU) for (int64_t i = 0; i < I; i++) h[i] = swiglu(j, h[2 * i], h[2 * i + 1]);
        else if (l3) for (int64_t i = 0; i < I; i++) h[i] = act_one(j->act, h[i]) * l3[i];
        else for (int64_t i = 0; i < I; i++) h[i] = act_one(j->act, h[i]);
    }
}

/* C[n, N] += A[n, K] W^T for W [N, K]: from the packed copy when there is one. */
static void expert_gemm(kiln_pool *pool, int64_t n, int64_t N, int64_t K, const float *a, int64_t lda, const float *w,
                        const float *wp, float *c, int64_t ldc) {
    if (wp) kiln_sgemm_packed(pool, n, N, K, 1.0f, a, lda, 0, wp, c, ldc);
    else kiln_sgemm(pool, n, N, K, 1.0f, a, lda, 0, w, K, 1, c, ldc);
}

static void run_expert(moe_job *j, int64_t e, kiln_pool *pool) {
    int64_t n = j->cnt[e], r0 = j->off[e], H = j->H, I = j->I, I1 = j->I1;
    if (n == 0) return;
    const float *xs = j->xs + r0 * H;
    float *hb = j->hb + r0 * I1, *ys = j->ys + r0 * H, *h3 = j->has_w3 ? j->h3 + r0 * I : NULL;
    fill_rows(hb, n, I1, j->has_b1 ? j->b1 + e * I1 : NULL);
    expert_gemm(pool, n, I1, H, xs, H, j->w1 + e * I1 * H, j->w1p ? j->w1p + e * j->s1 : NULL, hb, I1);
    if (h3) {
        fill_rows(h3, n, I, j->has_b3 ? j->b3 + e * I : NULL);
        expert_gemm(pool, n, I, H, xs, H, j->w3 + e * I * H, j->w3p ? j->w3p + e * j->s3 : NULL, h3, I);
    }
    activate(j, hb, h3, n);
    fill_rows(ys, n, H, j->has_b2 ? j->b2 + e * H : NULL);
    expert_gemm(pool, n, H, I, hb, I1, j->w2 + e * H * I, j->w2p ? j->w2p + e * j->s2 : NULL, ys, H);
}

/* One worker: takes the next expert, heaviest first, until none is left. */
static void expert_worker(void *arg, int64_t b, int64_t e) {
    moe_job *j = arg;
    (void)b; (void)e;
    for (;;) {
        long long q = atomic_fetch_add(&j->next, 1);
        if (q >= j->n_active) break;
        run_expert(j, j->order[q], NULL);
    }
}

void kiln_need_moe(const int64_t *p, kiln_scratch_need *need) { (void)p; kiln_sgemm_need(need); } /* the experts' GEMMs */

KILN_KERNEL(moe, "out <- x, logits, w1, b1?, w2, b2?, w3?, b3?, router_bias?, scratch, counts, w1p?, w2p?, w3p? (f32; counts int64[E], accumulated; wNp: wN packed by pack_b_many; see runtime/moe.c)",
    F(T) F(H) F(I) F(E) F(k) F(act) F(fusion) F(has_b1) F(has_b2) F(has_w3) F(has_b3) F(has_rbias) F(scoring) F(normalize) D(scale)
    F(n_group) F(topk_group) D(alpha) D(beta) D(limit) F(has_counts) F(packed))
int kiln_k_moe(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_moe, p);
    if (rc) return rc;
    const kiln_p_moe *q = KILN_P(moe, p);
    moe_job j;
    memset(&j, 0, sizeof j);
    moe_layout(&j, q, bufs[10]);
    j.T = q->T; j.H = q->H; j.I = q->I; j.E = q->E; j.k = q->k; j.I1 = moe_i1(q);
    j.act = q->act; j.fusion = q->fusion; j.n_group = q->n_group; j.topk_group = q->topk_group;
    j.has_b1 = (int)q->has_b1; j.has_b2 = (int)q->has_b2; j.has_w3 = (int)q->has_w3; j.has_b3 = (int)q->has_b3;
    j.has_rbias = (int)q->has_rbias; j.sigmoid = q->scoring == 1; j.normalize = (int)q->normalize;
    j.scale = (float)kiln_p2d(q->scale); j.alpha = (float)kiln_p2d(q->alpha);
    j.beta = (float)kiln_p2d(q->beta); j.limit = (float)kiln_p2d(q->limit);
    j.out = bufs[0]; j.x = bufs[1]; j.logits = bufs[2]; j.w1 = bufs[3]; j.b1 = bufs[4]; j.w2 = bufs[5];
    j.b2 = bufs[6]; j.w3 = bufs[7]; j.b3 = bufs[8]; j.rbias = bufs[9];
    j.counts = q->has_counts ? bufs[11] : NULL;
    if (q->packed) {
        j.w1p = bufs[12]; j.w2p = bufs[13]; j.w3p = j.has_w3 ? bufs[14] : NULL;
        j.s1 = kiln_sgemm_packed_floats(j.I1, j.H); j.s2 = kiln_sgemm_packed_floats(j.H, j.I); j.s3 = kiln_sgemm_packed_floats(j.I, j.H);
    }
    int64_t T = j.T, k = j.k, E = j.E;
    if (T <= 0) return 0;

    kiln_parallel_for(pool, T, route_tokens, &j);
    /* counting sort of the (token, slot) pairs by expert, tokens in order */
    memset(j.cnt, 0, (size_t)E * sizeof(int64_t));
    for (int64_t r = 0; r < T * k; r++) j.cnt[j.sel[r]]++;
    j.off[0] = 0;
    for (int64_t e = 0; e < E; e++) j.off[e + 1] = j.off[e] + j.cnt[e];
    for (int64_t r = 0; r < T * k; r++) j.slot[r] = (int32_t)j.off[j.sel[r]]++;
    for (int64_t e = E; e > 0; e--) j.off[e] = j.off[e - 1];
    j.off[0] = 0;
    if (j.counts) for (int64_t e = 0; e < E; e++) j.counts[e] += j.cnt[e];
    kiln_parallel_for(pool, T * k, gather_rows, &j);

    /* experts with tokens, heaviest first (insertion sort: E is small) */
    int64_t na = 0;
    for (int64_t e = 0; e < E; e++) {
        if (!j.cnt[e]) continue;
        int64_t at = na++;
        while (at > 0 && j.cnt[j.order[at - 1]] < j.cnt[e]) { j.order[at] = j.order[at - 1]; at--; }
        j.order[at] = (int32_t)e;
    }
    j.n_active = na;
    int threads = kiln_pool_threads(pool);
    /* experts in parallel when there are enough of them and none dominates */
    if (threads > 1 && na >= 2 * threads && j.cnt[j.order[0]] * threads <= T * k) {
        atomic_init(&j.next, 0);
        kiln_parallel_for(pool, threads, expert_worker, &j);
    } else {
        for (int64_t i = 0; i < na; i++) run_expert(&j, j.order[i], pool);
    }
    kiln_parallel_for(pool, T, combine_rows, &j);
    return 0;
}
