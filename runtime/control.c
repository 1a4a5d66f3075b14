/* control.c: the kernels of compiled control flow (If, Loop, Scan).
 *
 * The branches and jumps themselves are in the generated code (Kir's KS_JUMP
 * and KS_BRANCH steps); these kernels keep the loop counters, test them, and
 * move one step of a Scan sequence between a whole tensor and the body's
 * slice. A counter outside [0, count) moves nothing. */
#include "kiln_params.h"

#include <string.h>

KILN_KERNEL(ctl_set, "x <- value (control flow: counters, conditions)", F(value) F(esize /* 1 or 8 */))
int kiln_k_ctl_set(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    const kiln_p_ctl_set *q = KILN_P(ctl_set, p);
    if (q->esize == 8) memcpy(b[0], &q->value, 8);
    else *(uint8_t *)b[0] = (uint8_t)q->value;
    return 0;
}

KILN_KERNEL(ctl_incr, "counter (i64) += step", F(step))
int kiln_k_ctl_incr(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    *(int64_t *)b[0] += KILN_P(ctl_incr, p)->step;
    return 0;
}

KILN_KERNEL(ctl_test, "flag (u8) <- counter (i64), limit? (i64), cond? (bool)", F(has_limit_buf) F(has_cond) F(limit) F(mode /* 0: counter < limit and cond; 1: counter == limit */))
int kiln_k_ctl_test(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    const kiln_p_ctl_test *q = KILN_P(ctl_test, p);
    int64_t counter = *(const int64_t *)b[1], limit = q->has_limit_buf ? *(const int64_t *)b[2] : q->limit;
    bool cond = !q->has_cond || *(const uint8_t *)b[2 + (q->has_limit_buf != 0)] != 0;
    *(uint8_t *)b[0] = q->mode == 1 ? counter == limit : counter < limit && cond;
    return 0;
}

KILN_KERNEL(ctl_slice, "dst <- src, counter (i64): step `counter` of a sequence axis", F(outer) F(count) F(inner_bytes) F(scatter /* 0: slice <- whole, 1: whole <- slice */) F(reverse))
int kiln_k_ctl_slice(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    const kiln_p_ctl_slice *q = KILN_P(ctl_slice, p);
    int64_t outer = q->outer, count = q->count, inner = q->inner_bytes, t = *(const int64_t *)b[2];
    if (t < 0 || t >= count) return 0;
    if (q->reverse) t = count - 1 - t;
    unsigned char *dst = b[0];
    const unsigned char *src = b[1];
    for (int64_t o = 0; o < outer; o++) {
        if (q->scatter) memcpy(dst + (o * count + t) * inner, src + o * inner, (size_t)inner);
        else memcpy(dst + o * inner, src + (o * count + t) * inner, (size_t)inner);
    }
    return 0;
}
