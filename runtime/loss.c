/* loss.c: NegativeLogLikelihoodLoss on float32 log-probabilities (the lowering
 * of SoftmaxCrossEntropyLoss runs LogSoftmax before it): each position's loss
 * is -x at its target class, times the class's weight; a target equal to
 * ignore_index, or outside [0, C), adds nothing. Reduced by none, sum or the
 * weighted mean, accumulated in double. */
#include "kiln_params.h"

KILN_KERNEL(nll, "out <- logp, target, weight? (f32; target int32/int64)",
    F(N) F(C) F(D) F(reduction /* 0 none, 1 sum, 2 mean */) F(has_weight) F(has_ignore) F(ignore_index) F(target_esize))
int kiln_k_nll(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_nll *q = KILN_P(nll, p);
    int64_t N = q->N, C = q->C, D = q->D, red = q->reduction, has_w = q->has_weight, has_ig = q->has_ignore, ig = q->ignore_index,
            tes = q->target_esize;
    float *y = bufs[0];
    const float *x = bufs[1], *w = has_w ? bufs[3] : NULL;
    double sum = 0, wsum = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t d = 0; d < D; d++) {
            int64_t at = n * D + d;
            int64_t t = tes == 8 ? ((const int64_t *)bufs[2])[at] : ((const int32_t *)bufs[2])[at];
            double l = 0, wt = 0;
            if (!(has_ig && t == ig) && t >= 0 && t < C) {
                wt = w ? w[t] : 1.0;
                l = -(double)x[(n * C + t) * D + d] * wt;
            }
            if (red == 0) y[at] = (float)l;
            sum += l;
            wsum += wt;
        }
    if (red == 1) y[0] = (float)sum;
    if (red == 2) y[0] = (float)(wsum != 0 ? sum / wsum : 0.0 / 0.0);
    return 0;
}
