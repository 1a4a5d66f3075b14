/* control.c: the kernels of compiled control flow (If, Loop, Scan).
 *
 * The branches and jumps themselves are in the generated code (Kir's KS_JUMP
 * and KS_BRANCH steps); these kernels keep the loop counters, test them, and
 * move one step of a Scan sequence between a whole tensor and the body's
 * slice. A counter outside [0, count) moves nothing. */
#include "kiln_rt.h"

#include <string.h>

int kiln_k_ctl_set(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    if (p[1] == 8) memcpy(b[0], &p[0], 8);
    else *(uint8_t *)b[0] = (uint8_t)p[0];
    return 0;
}

int kiln_k_ctl_incr(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    *(int64_t *)b[0] += p[0];
    return 0;
}

int kiln_k_ctl_test(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    int64_t counter = *(const int64_t *)b[1], limit = p[0] ? *(const int64_t *)b[2] : p[2];
    bool cond = !p[1] || *(const uint8_t *)b[2 + (p[0] != 0)] != 0;
    *(uint8_t *)b[0] = p[3] == 1 ? counter == limit : counter < limit && cond;
    return 0;
}

int kiln_k_ctl_slice(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    int64_t outer = p[0], count = p[1], inner = p[2], t = *(const int64_t *)b[2];
    if (t < 0 || t >= count) return 0;
    if (p[4]) t = count - 1 - t;
    unsigned char *dst = b[0];
    const unsigned char *src = b[1];
    for (int64_t o = 0; o < outer; o++) {
        if (p[3]) memcpy(dst + (o * count + t) * inner, src + o * inner, (size_t)inner);
        else memcpy(dst + o * inner, src + (o * count + t) * inner, (size_t)inner);
    }
    return 0;
}
