/* winograd.c: 3x3 stride-1 convolutions by Winograd's minimal filtering,
 * F(2x2, 3x3) (Lavin and Gray, 2016).
 *
 * Each 2x2 block of outputs (a tile) comes from a 4x4 input patch: with the
 * patch transformed (V = B' d B) and each filter transformed once, when the
 * context is created (U = G g G'), the 16 positions of a tile are 16
 * independent products over channels, M_xi = U_xi V_xi: sixteen GEMMs of
 * [M x C] by [C x tiles] doing 16 multiply-adds per tile and channel pair
 * where the direct convolution does 36. The outputs are Y = A' m A. Tiles go
 * in chunks whose transformed patches and products stay in cache; within a
 * chunk the input transform runs in parallel over channels, the GEMMs over
 * the 16 positions, the output transform (with the bias, a residual and the
 * activation clamp of the fused epilogue) over output channels. */
#include "kiln_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the widest output row the row buffers hold (kiln_wino_fits) */
#define WINO_MAXW 1024

/* The 4x4 transform of filter g (3x3): U = G g G', G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]. */
static void filter_transform(const float *g, float *u) {
    float t[4][3];
    for (int j = 0; j < 3; j++) {
        float a = g[j], b = g[3 + j], c = g[6 + j];
        t[0][j] = a;
        t[1][j] = 0.5f * (a + b + c);
        t[2][j] = 0.5f * (a - b + c);
        t[3][j] = c;
    }
    for (int i = 0; i < 4; i++) {
        float a = t[i][0], b = t[i][1], c = t[i][2];
        u[i * 4 + 0] = a;
        u[i * 4 + 1] = 0.5f * (a + b + c);
        u[i * 4 + 2] = 0.5f * (a - b + c);
        u[i * 4 + 3] = c;
    }
}

int kiln_wino_fits(int64_t OW) { return OW + 4 <= WINO_MAXW; }

int64_t kiln_wino_packed_floats(int64_t M, int64_t C) { return 16 * kiln_sgemm_packed_a_floats(M, C); }

/* bufs: packed <- w [M, C, 3, 3]. Position xi's [M x C] matrix is
 * packed for kiln_sgemm_ex at xi * kiln_sgemm_packed_a_floats(M, C). */
KILN_KERNEL(wino_pack, "packed <- w (f32 [M, C, 3, 3]; run once, when the context is created): the Winograd F(2x2,3x3) transforms of the filters, packed per position (runtime/winograd.c)",
    F(M) F(C))
int kiln_k_wino_pack(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_wino_pack *q = KILN_P(wino_pack, p);
    int64_t M = q->M, C = q->C, stride = kiln_sgemm_packed_a_floats(M, C);
    const float *w = bufs[1];
    float *u = malloc((size_t)(16 * M * C + 1) * sizeof *u), t[16];
    if (!u) return KILN_E_NOMEM; /* at create: kiln_context_create fails */
    for (int64_t m = 0; m < M; m++)
        for (int64_t c = 0; c < C; c++) {
            filter_transform(w + (m * C + c) * 9, t);
            for (int x = 0; x < 16; x++) u[(x * M + m) * C + c] = t[x];
        }
    for (int x = 0; x < 16; x++) kiln_sgemm_pack_a(M, C, u + x * M * C, C, 0, (float *)bufs[0] + x * stride);
    free(u);
    return 0;
}

typedef struct {
    const float *x, *packed, *bias, *res;
    float *y, *v, *mm;
    int64_t C, M, H, W, OH, OW, pt, pl, TW, t0, tc, ldt;
    float lo, hi;
    kiln_gemm_epi epi;
} wino_job;

/* The tile rows a chunk covers: row ty holds its tiles [*lo, *hi). */
static void tile_span(const wino_job *j, int64_t ty, int64_t *lo, int64_t *hi) {
    int64_t first = ty * j->TW, last = first + j->TW;
    *lo = (j->t0 > first ? j->t0 : first) - first;
    *hi = (j->t0 + j->tc < last ? j->t0 + j->tc : last) - first;
}

/* V = B' d B for the chunk's tiles, channels c0..c1 (B' = [1 0 -1 0; 0 1 1 0;
 * 0 -1 1 0; 0 1 0 -1]): per tile row, the four input rows (zero-padded) are
 * combined down the columns over the whole row, then across each tile's four
 * columns through the rows' even and odd elements: loops over whole rows. */
KILN_CLONES static void input_transform(void *arg, int64_t c0, int64_t c1) {
    const wino_job *j = arg;
    int64_t TW = j->TW, PW = 2 * TW + 2, step = j->C * j->ldt;
    float d[4][WINO_MAXW + 4], ev[WINO_MAXW / 2 + 2], od[WINO_MAXW / 2 + 2];
    int64_t ty0 = j->t0 / TW, ty1 = (j->t0 + j->tc - 1) / TW;
    for (int64_t c = c0; c < c1; c++) {
        const float *x = j->x + c * j->H * j->W;
        float *vc = j->v + c * j->ldt - j->t0;
        for (int64_t ty = ty0; ty <= ty1; ty++) {
            int64_t lo, hi;
            tile_span(j, ty, &lo, &hi);
            for (int a = 0; a < 4; a++) { /* input row 2 ty - pt + a, columns -pl .. PW - pl */
                int64_t iy = ty * 2 - j->pt + a, from = j->pl, n = j->W;
                memset(d[a], 0, (size_t)PW * sizeof(float));
                if (iy < 0 || iy >= j->H) continue;
                if (from + n > PW) n = PW - from;
                memcpy(d[a] + from, x + iy * j->W, (size_t)n * sizeof(float));
            }
            for (int64_t i = 0; i < PW; i++) { /* down the columns, in place */
                float r0 = d[0][i], r1 = d[1][i], r2 = d[2][i], r3 = d[3][i];
                d[0][i] = r0 - r2;
                d[1][i] = r1 + r2;
                d[2][i] = r2 - r1;
                d[3][i] = r1 - r3;
            }
            for (int a = 0; a < 4; a++) {
                for (int64_t k = 0; k <= TW; k++) { ev[k] = d[a][2 * k]; od[k] = d[a][2 * k + 1]; }
                float *v0 = vc + (a * 4 + 0) * step + ty * TW, *v1 = v0 + step, *v2 = v1 + step, *v3 = v2 + step;
                for (int64_t t = lo; t < hi; t++) {
                    v0[t] = ev[t] - ev[t + 1];
                    v1[t] = od[t] + ev[t + 1];
                    v2[t] = ev[t + 1] - od[t];
                    v3[t] = od[t] - od[t + 1];
                }
            }
        }
    }
}

/* M_xi = U_xi V_xi for positions x0..x1, one GEMM each. */
static void products(void *arg, int64_t x0, int64_t x1) {
    const wino_job *j = arg;
    int64_t stride = kiln_sgemm_packed_a_floats(j->M, j->C);
    for (int64_t x = x0; x < x1; x++)
        kiln_sgemm_ex(NULL, j->M, j->tc, j->C, 1.0f, NULL, j->C, 0, j->packed + x * stride, j->v + x * j->C * j->ldt, j->ldt, 0, NULL,
                      j->mm + x * j->M * j->ldt, j->ldt, &j->epi);
}

/* Y = A' m A for output channels m0..m1 (A' = [1 1 1 0; 0 1 -1 -1]), by tile
 * rows, then bias, residual and clamp along each output row; tiles on the
 * bottom or right edge keep their inside part. */
KILN_CLONES static void output_transform(void *arg, int64_t m0, int64_t m1) {
    const wino_job *j = arg;
    int64_t TW = j->TW, step = j->M * j->ldt;
    float rw[2][4][WINO_MAXW / 2 + 2], out[2][WINO_MAXW + 4];
    int64_t ty0 = j->t0 / TW, ty1 = (j->t0 + j->tc - 1) / TW;
    for (int64_t m = m0; m < m1; m++) {
        float *y = j->y + m * j->OH * j->OW;
        const float *res = j->res ? j->res + m * j->OH * j->OW : NULL;
        const float *q = j->mm + m * j->ldt - j->t0;
        float bias = j->bias ? j->bias[m] : 0.0f;
        for (int64_t ty = ty0; ty <= ty1; ty++) {
            int64_t lo, hi;
            tile_span(j, ty, &lo, &hi);
            const float *qr = q + ty * TW;
            for (int b = 0; b < 4; b++) { /* down: rows 0..3 of each tile into its two output rows */
                const float *s0 = qr + b * step, *s1 = s0 + 4 * step, *s2 = s1 + 4 * step, *s3 = s2 + 4 * step;
                for (int64_t t = lo; t < hi; t++) {
                    rw[0][b][t] = s0[t] + s1[t] + s2[t];
                    rw[1][b][t] = s1[t] - s2[t] - s3[t];
                }
            }
            for (int a = 0; a < 2; a++)
                for (int64_t t = lo; t < hi; t++) {
                    out[a][2 * t] = rw[a][0][t] + rw[a][1][t] + rw[a][2][t];
                    out[a][2 * t + 1] = rw[a][1][t] - rw[a][2][t] - rw[a][3][t];
                }
            int64_t x0 = 2 * lo, x1 = 2 * hi < j->OW ? 2 * hi : j->OW;
            for (int a = 0; a < 2 && 2 * ty + a < j->OH; a++) {
                float *yr = y + (2 * ty + a) * j->OW;
                /* two loops: with `rr ? rr[ox] : 0` in one, GCC made the
                 * residual a masked load, whose masked-off lanes then pointed
                 * near NULL, and each such load took a fault-suppression
                 * assist: ResNet-18's convolutions without a residual ran
                 * 2.37 ms against 1.74 with one */
                if (res) {
                    const float *rr = res + (2 * ty + a) * j->OW;
                    for (int64_t ox = x0; ox < x1; ox++) yr[ox] = kiln_clampf(bias + out[a][ox] + rr[ox], j->lo, j->hi);
                } else {
                    for (int64_t ox = x0; ox < x1; ox++) yr[ox] = kiln_clampf(bias + out[a][ox], j->lo, j->hi);
                }
            }
        }
    }
}

/* A chunk's transformed patches and products: about this many bytes. */
#define WINO_CHUNK (512 * 1024)

int64_t kiln_wino_chunk_tiles(int64_t C, int64_t M) {
    int64_t t = WINO_CHUNK / (16 * 4 * (C + M)) / 16 * 16;
    return t < 32 ? 32 : t;
}

/* bufs: y <- x, packed (kiln_k_wino_pack), bias, residual, scratch. The scratch
 * holds 16 x (C + M) x chunk floats (kiln_wino_chunk_tiles). */
void kiln_need_conv_wino(const int64_t *p, kiln_scratch_need *need) { (void)p; kiln_sgemm_need(need); } /* products' GEMMs */

KILN_KERNEL(conv_wino, "y <- x, packed, bias?, residual?, scratch (f32; 3x3, stride 1, one group; packed by wino_pack)",
    F(N) F(C) F(M) F(H) F(W) F(OH) F(OW) F(pad_top) F(pad_left) F(has_bias) F(has_res) E(act))
int kiln_k_conv_wino(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int rc = kiln_scratch_check(pool, kiln_need_conv_wino, p);
    if (rc) return rc;
    const kiln_p_conv_wino *q = KILN_P(conv_wino, p);
    wino_job j;
    memset(&j, 0, sizeof j);
    int64_t N = q->N;
    j.C = q->C, j.M = q->M, j.H = q->H, j.W = q->W, j.OH = q->OH, j.OW = q->OW, j.pt = q->pad_top, j.pl = q->pad_left;
    j.packed = bufs[2];
    j.bias = q->has_bias ? bufs[3] : NULL;
    act_bounds(&q->act, &j.lo, &j.hi);
    j.epi = (kiln_gemm_epi){NULL, NULL, 1, 0, 0, 0, NULL};
    j.TW = (j.OW + 1) / 2;
    int64_t T = ((j.OH + 1) / 2) * j.TW;
    j.ldt = kiln_wino_chunk_tiles(j.C, j.M);
    j.v = bufs[5];
    j.mm = j.v + 16 * j.C * j.ldt;
    for (int64_t n = 0; n < N; n++) {
        j.x = (const float *)bufs[1] + n * j.C * j.H * j.W;
        j.y = (float *)bufs[0] + n * j.M * j.OH * j.OW;
        j.res = q->has_res ? (const float *)bufs[4] + n * j.M * j.OH * j.OW : NULL;
        for (j.t0 = 0; j.t0 < T; j.t0 += j.ldt) {
            j.tc = T - j.t0 < j.ldt ? T - j.t0 : j.ldt;
            kiln_parallel_for(pool, j.C, input_transform, &j);
            kiln_parallel_for(pool, 16, products, &j);
            kiln_parallel_for(pool, j.M, output_transform, &j);
        }
    }
    return 0;
}
