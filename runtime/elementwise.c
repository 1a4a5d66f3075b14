/* elementwise.c: the elementwise kernels that the generated loops do not
 * compute themselves (every other elementwise op is a loop of the generated
 * code, fused with its neighbours): training-mode Dropout, whose mask draws
 * from MT19937 as NumPy's legacy generator does, so that a seeded mask matches
 * the ONNX reference's. */
#include "kiln_params.h"

#include <stdbool.h>
#include <stdint.h>

/* Training-mode Dropout. The draws are MT19937's (Matsumoto and Nishimura,
 * 1998: the generator seeded by init_genrand, 53-bit doubles from two 32-bit
 * outputs), which is what NumPy's legacy np.random.seed(s); uniform() gives, so
 * a seeded mask matches the ONNX reference's. */
typedef struct { uint32_t mt[624]; int i; } mt19937;

static void mt_seed(mt19937 *g, uint32_t s) {
    g->mt[0] = s;
    for (int i = 1; i < 624; i++) g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->i = 624;
}

static uint32_t mt_next(mt19937 *g) {
    if (g->i >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (g->mt[k] & 0x80000000u) | (g->mt[(k + 1) % 624] & 0x7fffffffu);
            g->mt[k] = g->mt[(k + 397) % 624] ^ (y >> 1) ^ (y & 1 ? 0x9908b0dfu : 0);
        }
        g->i = 0;
    }
    uint32_t y = g->mt[g->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

KILN_KERNEL(dropout, "out, mask (bool; unused unless has_mask) <- x (f32): training-mode Dropout, MT19937 draws as NumPy's legacy uniform()",
    F(n) D(ratio) F(seed) F(has_mask))
int kiln_k_dropout(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    const kiln_p_dropout *q = KILN_P(dropout, p);
    int64_t n = q->n;
    float ratio = (float)kiln_p2d(q->ratio), keep = 1.0f - ratio;
    float *y = b[0];
    uint8_t *mask = q->has_mask ? b[1] : NULL;
    const float *x = b[2];
    mt19937 g;
    mt_seed(&g, (uint32_t)q->seed);
    for (int64_t i = 0; i < n; i++) {
        uint32_t a = mt_next(&g) >> 5, c = mt_next(&g) >> 6;
        double u = (a * 67108864.0 + c) / 9007199254740992.0;
        bool kept = u >= ratio;
        y[i] = kept ? x[i] / keep : 0.0f * x[i];
        if (mask) mask[i] = kept;
    }
    return 0;
}
