/* gemm_neon.c: the GEMM's microkernel for 64-bit ARM: 6 x 16 with NEON (24
 * accumulators of 4 floats, B in 4 registers, A's six values in two, each
 * used by lane). Off aarch64 this file compiles to nothing. */
#include "../kiln_gemm.h"

#ifdef HAVE_NEON_UKERNEL
#include <arm_neon.h>

/* 6 x 16 with NEON: 24 accumulators of 4 floats, B in 4 registers, A's six
 * values in two (each used by lane). */
#define NROW(i, av, l) { c##i##0 = vfmaq_laneq_f32(c##i##0, b0, av, l); c##i##1 = vfmaq_laneq_f32(c##i##1, b1, av, l); \
                         c##i##2 = vfmaq_laneq_f32(c##i##2, b2, av, l); c##i##3 = vfmaq_laneq_f32(c##i##3, b3, av, l); }
void kiln_ukernel_neon(int64_t K, const float *a, const float *b, float *c, int64_t ldc, float alpha, int mr, int nr,
                       const tile_epi *e) {
    float32x4_t z = vdupq_n_f32(0);
    float32x4_t c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z, c20 = z, c21 = z, c22 = z, c23 = z;
    float32x4_t c30 = z, c31 = z, c32 = z, c33 = z, c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z, c52 = z, c53 = z;
    for (int64_t k = 0; k < K; k++) {
        const float *bk = b + k * 16, *ak = a + k * 6;
        float32x4_t b0 = vld1q_f32(bk), b1 = vld1q_f32(bk + 4), b2 = vld1q_f32(bk + 8), b3 = vld1q_f32(bk + 12);
        float32x4_t a0 = vld1q_f32(ak), a1 = vcombine_f32(vld1_f32(ak + 4), vdup_n_f32(0));
        NROW(0, a0, 0) NROW(1, a0, 1) NROW(2, a0, 2) NROW(3, a0, 3) NROW(4, a1, 0) NROW(5, a1, 1)
    }
    float32x4_t acc[6][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23},
                             {c30, c31, c32, c33}, {c40, c41, c42, c43}, {c50, c51, c52, c53}};
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        if (nr == NR) {
            for (int v = 0; v < 4; v++) {
                float32x4_t init = !e->first ? vld1q_f32(cr + 4 * v) : e->rb ? vdupq_n_f32(e->rb[r])
                                 : e->cb ? vld1q_f32(e->cb + 4 * v) : vdupq_n_f32(0);
                float32x4_t y = vfmaq_n_f32(init, acc[r][v], alpha);
                if (e->res) y = vaddq_f32(y, vld1q_f32(e->res + r * ldc + 4 * v));
                if (e->clamp) y = vminq_f32(vdupq_n_f32(e->hi), vmaxq_f32(vdupq_n_f32(e->lo), y));
                vst1q_f32(cr + 4 * v, y);
            }
            continue;
        }
        float tmp[NR];
        for (int v = 0; v < 4; v++) vst1q_f32(tmp + 4 * v, acc[r][v]);
        for (int j = 0; j < nr; j++) cr[j] = tile_value(e, cr + j, ldc, r, j, alpha, tmp[j]);
    }
}

#endif
