/* kernels.c: the runtime kernels of kernels.def.
 *
 * Each kernel reads its constant parameters from p (layout in kernels.def) and
 * its buffers from bufs (outputs first). Data-movement kernels (copy, transpose,
 * concat, split, slice, gather) work on any element size; compute kernels work on
 * float32 (the lowering casts other float types around them). Parallel kernels
 * split their outermost independent dimension over the pool. Convolution and
 * pooling treat 1-D and 2-D as 3-D with leading unit dimensions.
 * These are the reference kernels; the fast GEMM family replaces the inner loops
 * of matmul/gemm/conv without changing these signatures. */
#include "kiln_rt.h"
#include "kiln_scalar.h"
#include "kiln_simd.h"

#include <float.h>
#include <pthread.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void copy_elem(char *dst, const char *src, int64_t esize) {
    switch (esize) {
    case 1: *dst = *src; break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, (size_t)esize);
    }
}

int kiln_k_copy(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    if (p[0] > 0 && bufs[0] != bufs[1]) memmove(bufs[0], bufs[1], (size_t)p[0]);
    return 0;
}

/* A transpose that moves the last dimension: output dimension c reads the
 * input's last (stride 1), the output's last (stride 1) reads input stride sr.
 * For each index of the other dimensions, the [odims[c] x odims[last]] plane is
 * copied in 16 x 16 tiles, so that both sides are read and written a cache
 * line at a time. */
static bool transpose_tiled(char *out, const char *in, int64_t esize, int64_t rank, const int64_t *odims, const int64_t *ostr,
                            const int64_t *perm) {
    int64_t c = -1, last = rank - 1;
    for (int64_t i = 0; i < rank; i++) if (perm[i] == rank - 1) c = i;
    if (c < 0 || c == last || (esize != 4 && esize != 1 && esize != 2 && esize != 8)) return false;
    int64_t ocs = 1; /* output stride of dimension c */
    for (int64_t i = c + 1; i < rank; i++) ocs *= odims[i];
    int64_t sr = ostr[last], A = odims[c], B = odims[last];
    int64_t idx[KILN_MAX_RANK] = {0}, planes = 1, ooff[KILN_MAX_RANK];
    for (int64_t i = rank - 1, st = 1; i >= 0; i--) { ooff[i] = st; st *= odims[i]; }
    for (int64_t i = 0; i < rank; i++) if (i != c && i != last) planes *= odims[i];
    for (int64_t pl = 0; pl < planes; pl++) {
        int64_t ib = 0, ob = 0;
        for (int64_t i = 0; i < rank; i++) if (i != c && i != last) { ib += idx[i] * ostr[i]; ob += idx[i] * ooff[i]; }
        for (int64_t a0 = 0; a0 < A; a0 += 16)
            for (int64_t b0 = 0; b0 < B; b0 += 16) {
                int64_t a1 = a0 + 16 < A ? a0 + 16 : A, b1 = b0 + 16 < B ? b0 + 16 : B;
                for (int64_t a = a0; a < a1; a++)
                    for (int64_t b = b0; b < b1; b++) {
                        int64_t o = ob + a * ocs + b, i = ib + a + b * sr;
                        switch (esize) {
                        case 4: ((uint32_t *)(void *)out)[o] = ((const uint32_t *)(const void *)in)[i]; break;
                        case 8: ((uint64_t *)(void *)out)[o] = ((const uint64_t *)(const void *)in)[i]; break;
                        case 2: ((uint16_t *)(void *)out)[o] = ((const uint16_t *)(const void *)in)[i]; break;
                        default: out[o] = in[i];
                        }
                    }
            }
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (d == c || d == last) continue;
            if (++idx[d] < odims[d]) break;
            idx[d] = 0;
        }
    }
    return true;
}

int kiln_k_transpose(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    char *out = bufs[0];
    const char *in = bufs[1];
    int64_t esize = p[0], rank = p[1];
    const int64_t *dims = p + 2, *perm = p + 2 + rank;
    int64_t in_stride[KILN_MAX_RANK], odims[KILN_MAX_RANK], ostr[KILN_MAX_RANK], idx[KILN_MAX_RANK];
    int64_t total = 1;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { in_stride[i] = s; s *= dims[i]; }
    for (int64_t i = 0; i < rank; i++) { odims[i] = dims[perm[i]]; ostr[i] = in_stride[perm[i]]; idx[i] = 0; total *= odims[i]; }
    if (total == 0) return 0;
    /* trailing dimensions the permutation keeps in place move as one run (one
     * element when the last dimension moves) */
    int64_t keep = rank, run = 1;
    while (keep > 0 && perm[keep - 1] == keep - 1) run *= dims[--keep];
    if (run == 1 && rank >= 2 && transpose_tiled(out, in, esize, rank, odims, ostr, perm)) return 0;
    int64_t off = 0, bytes = run * esize;
    for (int64_t n = 0; n < total / run; n++) {
        if (run == 1) copy_elem(out + n * esize, in + off * esize, esize);
        else memcpy(out + n * bytes, in + off * esize, (size_t)bytes);
        for (int64_t d = keep - 1; d >= 0; d--) {
            if (++idx[d] < odims[d]) { off += ostr[d]; break; }
            off -= ostr[d] * (odims[d] - 1);
            idx[d] = 0;
        }
    }
    return 0;
}

int kiln_k_concat(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], outer = p[1], inner = p[2], n = p[3];
    const int64_t *len = p + 4;
    int64_t total = 0;
    for (int64_t k = 0; k < n; k++) total += len[k];
    char *out = bufs[0];
    for (int64_t o = 0; o < outer; o++) {
        int64_t at = 0;
        for (int64_t k = 0; k < n; k++) {
            size_t bytes = (size_t)(len[k] * inner * esize);
            memcpy(out + (o * total + at) * inner * esize, (const char *)bufs[1 + k] + o * bytes, bytes);
            at += len[k];
        }
    }
    return 0;
}

int kiln_k_split(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], outer = p[1], inner = p[2], n = p[3];
    const int64_t *len = p + 4;
    int64_t total = 0;
    for (int64_t k = 0; k < n; k++) total += len[k];
    const char *in = bufs[n];
    for (int64_t o = 0; o < outer; o++) {
        int64_t at = 0;
        for (int64_t k = 0; k < n; k++) {
            size_t bytes = (size_t)(len[k] * inner * esize);
            memcpy((char *)bufs[k] + o * bytes, in + (o * total + at) * inner * esize, bytes);
            at += len[k];
        }
    }
    return 0;
}

int kiln_k_slice(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], rank = p[1];
    const int64_t *in_dims = p + 2, *out_dims = p + 2 + rank, *starts = p + 2 + 2 * rank, *steps = p + 2 + 3 * rank;
    int64_t in_stride[KILN_MAX_RANK], idx[KILN_MAX_RANK], total = 1, off = 0;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { in_stride[i] = s; s *= in_dims[i]; }
    for (int64_t i = 0; i < rank; i++) { idx[i] = 0; total *= out_dims[i]; off += starts[i] * in_stride[i]; }
    char *out = bufs[0];
    const char *in = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        copy_elem(out + n * esize, in + off * esize, esize);
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++idx[d] < out_dims[d]) { off += steps[d] * in_stride[d]; break; }
            off -= steps[d] * in_stride[d] * (out_dims[d] - 1);
            idx[d] = 0;
        }
    }
    return 0;
}

int kiln_k_gather(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], outer = p[1], axis_len = p[2], inner = p[3], n_idx = p[4], idx_esize = p[5];
    char *out = bufs[0];
    const char *data = bufs[1];
    size_t row = (size_t)(inner * esize);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < n_idx; j++) {
            int64_t ix = idx_esize == 8 ? ((const int64_t *)bufs[2])[j] : ((const int32_t *)bufs[2])[j];
            if (ix < 0) ix += axis_len;
            char *dst = out + (o * n_idx + j) * (int64_t)row;
            if (ix < 0 || ix >= axis_len) return KILN_E_INDEX; /* ONNX: an error, not a value */
            memcpy(dst, data + (o * axis_len + ix) * (int64_t)row, row);
        }
    return 0;
}

int kiln_k_matmul(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int64_t M = p[0], N = p[1], K = p[2], nb = p[3];
    const int64_t *bdims = p + 4, *astr = p + 4 + nb, *bstr = p + 4 + 2 * nb;
    int64_t batches = 1, idx[KILN_MAX_RANK] = {0};
    for (int64_t i = 0; i < nb; i++) batches *= bdims[i];
    float *out = bufs[0];
    memset(out, 0, (size_t)(batches * M * N) * sizeof(float));
    int64_t ao = 0, bo = 0;
    for (int64_t b = 0; b < batches; b++) {
        kiln_sgemm(pool, M, N, K, 1.0f, (const float *)bufs[1] + ao * M * K, K, 0,
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

/* The fused activation of conv and gemm: clamp to [lo, hi] (NaN stays NaN). */
/* The activation parameters {on, lo, hi} as bounds: [-inf, inf] when off. */
static bool act_bounds(const int64_t *act, float *lo, float *hi) {
    bool on = act && act[0];
    *lo = on ? (float)kiln_p2d(act[1]) : -INFINITY;
    *hi = on ? (float)kiln_p2d(act[2]) : INFINITY;
    return on;
}

KILN_CLONES static void clamp_range(float *y, int64_t n, const int64_t *act) {
    float lo, hi;
    if (!act_bounds(act, &lo, &hi)) return;
    for (int64_t i = 0; i < n; i++) y[i] = kiln_clampf(y[i], lo, hi);
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

/* The fused activation's clamp as a GEMM epilogue. */
static kiln_gemm_epi epi_of(const float *row_bias, const float *col_bias, int overwrite, const int64_t *act) {
    kiln_gemm_epi e = {row_bias, col_bias, overwrite, 0, 0, 0, NULL};
    e.clamp = act_bounds(act, &e.lo, &e.hi);
    return e;
}

int kiln_k_gemm(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int64_t M = p[0], N = p[1], K = p[2], ta = p[3], tb = p[4], has_c = p[7], crs = p[8], ccs = p[9];
    float alpha = (float)kiln_p2d(p[5]), beta = (float)kiln_p2d(p[6]);
    float *Y = bufs[0];
    const float *C = has_c ? bufs[3] : NULL;
    /* C as a bias the epilogue starts from (a row of N, or a column of M), or
     * nothing; otherwise Y = beta * C first, and the product accumulates */
    bool col = C && beta == 1.0f && crs == 0 && ccs == 1, row = C && beta == 1.0f && crs == 1 && ccs == 0;
    kiln_gemm_epi e = epi_of(row ? C : NULL, col ? C : NULL, !C, p + 10);
    if (C && !col && !row) {
        gemm_init_job ij = {Y, C, beta, N, crs, ccs};
        kiln_parallel_for(M * N >= 16384 ? pool : NULL, M, gemm_init_rows, &ij);
    }
    kiln_sgemm_ex(pool, M, N, K, alpha, bufs[1], ta ? M : K, (int)ta, NULL, p[13] ? NULL : bufs[2], tb ? K : N, (int)tb,
                  p[13] ? bufs[4] : NULL, Y, N, &e);
    return 0;
}

int kiln_k_pack_a(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t G = p[0], M = p[1], K = p[2], stride = kiln_sgemm_packed_a_floats(M, K);
    for (int64_t g = 0; g < G; g++) kiln_sgemm_pack_a(M, K, (const float *)bufs[1] + g * M * K, K, 0, (float *)bufs[0] + g * stride);
    return 0;
}

int kiln_k_pack_b(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    kiln_sgemm_pack(p[0], p[1], bufs[1], p[2] ? p[1] : p[0], (int)p[2], bufs[0]);
    return 0;
}

/* ---- convolution and pooling, as 3-D ---- */

typedef struct {
    int64_t N, C, M, group, in[3], out[3], k[3], stride[3], dil[3], pad[3], pad_end[3];
} win3;

static void win3_read(win3 *w, int64_t nd, const int64_t *q) {
    for (int i = 0; i < 3; i++) {
        w->in[i] = w->out[i] = w->k[i] = w->stride[i] = w->dil[i] = 1;
        w->pad[i] = w->pad_end[i] = 0;
    }
    int64_t s = 3 - nd;
    for (int64_t i = 0; i < nd; i++) {
        w->in[s + i] = q[i];
        w->out[s + i] = q[nd + i];
        w->k[s + i] = q[2 * nd + i];
        w->stride[s + i] = q[3 * nd + i];
        w->dil[s + i] = q[4 * nd + i];
        w->pad[s + i] = q[5 * nd + i];
        w->pad_end[s + i] = q[6 * nd + i];
    }
}

typedef struct {
    win3 w;
    const float *x, *wt, *b;
    float *y;
    const int64_t *act;
} conv_job;

/* One 2-D depthwise plane: the interior (every tap inside the input) runs without
 * bounds checks in a loop the compiler vectorizes; the border checks each tap. */
/* The interior of a 2-D window: [lo, hi) of the outputs whose taps all fall in [0, in). */
static void window_interior(int64_t in, int64_t out, int64_t k, int64_t s, int64_t d, int64_t pad, int64_t *lo, int64_t *hi) {
    int64_t l = (pad + s - 1) / s, h = in - 1 - (k - 1) * d + pad;
    h = h < 0 ? 0 : h / s + 1;
    if (h > out) h = out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* One output row of a 3x3 depthwise convolution (dilation 1) whose three input
 * rows are all inside the image, columns [lo, hi) (all taps inside): nine taps
 * summed in registers, vectorized over the columns. */
KILN_CLONES static void dw3x3_row(const float *r0, const float *r1, const float *r2, const float *wk, float bias,
                                  int64_t sw, int64_t pw, int64_t lo, int64_t hi, float *yr) {
    float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7], w8 = wk[8];
    if (sw == 1) {
        const float *a = r0 - pw, *b = r1 - pw, *c = r2 - pw;
        for (int64_t ow = lo; ow < hi; ow++)
            yr[ow] = bias + w0 * a[ow] + w1 * a[ow + 1] + w2 * a[ow + 2] + w3 * b[ow] + w4 * b[ow + 1] + w5 * b[ow + 2] +
                     w6 * c[ow] + w7 * c[ow + 1] + w8 * c[ow + 2];
        return;
    }
    for (int64_t ow = lo; ow < hi; ow++) {
        int64_t i = ow * sw - pw;
        yr[ow] = bias + w0 * r0[i] + w1 * r0[i + 1] + w2 * r0[i + 2] + w3 * r1[i] + w4 * r1[i + 1] + w5 * r1[i + 2] +
                 w6 * r2[i] + w7 * r2[i + 1] + w8 * r2[i + 2];
    }
}

KILN_CLONES static void depthwise_plane(const win3 *w, const float *x, const float *wk, float bias, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2];
    int64_t KH = w->k[1], KW = w->k[2], sh = w->stride[1], sw = w->stride[2], dh = w->dil[1], dw = w->dil[2];
    int64_t ph = w->pad[1], pw = w->pad[2];
    int64_t lo, hi; /* interior columns: ow*sw - pw >= 0 and ow*sw - pw + (KW-1)*dw < W */
    window_interior(W, OW, KW, sw, dw, pw, &lo, &hi);
    bool k3 = KH == 3 && KW == 3 && dh == 1 && dw == 1;
    for (int64_t oh = 0; oh < OH; oh++) {
        float *yr = y + oh * OW;
        int64_t ih0 = oh * sh - ph;
        if (k3 && ih0 >= 0 && ih0 + 2 < H) { /* the common case: taps in registers; then the edge columns */
            const float *r0 = x + ih0 * W;
            dw3x3_row(r0, r0 + W, r0 + 2 * W, wk, bias, sw, pw, lo, hi, yr);
            for (int64_t ow = 0; ow < OW; ow++) {
                if (ow == lo) ow = hi > lo ? hi : lo;
                if (ow >= OW) break;
                float s = bias;
                for (int64_t kh = 0; kh < 3; kh++)
                    for (int64_t kw = 0; kw < 3; kw++) {
                        int64_t iw = ow * sw - pw + kw;
                        if (iw >= 0 && iw < W) s += wk[kh * 3 + kw] * r0[kh * W + iw];
                    }
                yr[ow] = s;
            }
            continue;
        }
        for (int64_t ow = 0; ow < OW; ow++) yr[ow] = bias;
        for (int64_t kh = 0; kh < KH; kh++) {
            int64_t ih = oh * sh - ph + kh * dh;
            if (ih < 0 || ih >= H) continue;
            const float *xr = x + ih * W;
            for (int64_t kw = 0; kw < KW; kw++) {
                float wv = wk[kh * KW + kw];
                int64_t off = kw * dw - pw;
                for (int64_t ow = 0; ow < lo; ow++) {
                    int64_t iw = ow * sw + off;
                    if (iw >= 0 && iw < W) yr[ow] += wv * xr[iw];
                }
                if (sw == 1) {
                    const float *xs = xr + off;
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * xs[ow];
                } else {
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow * sw + off];
                }
                for (int64_t ow = hi; ow < OW; ow++) {
                    int64_t iw = ow * sw + off;
                    if (iw >= 0 && iw < W) yr[ow] += wv * xr[iw];
                }
            }
        }
    }
}

/* 3x3 depthwise planes (dilation 1) through a zero-padded copy, so that no
 * tap needs a bounds check and the loops run over whole vectors even on 7x7
 * planes. The plane goes in strips of output rows whose input fits in L1.
 * Stride 1: the padded strip is Wp = OW + 2 wide and the outputs are computed
 * flat over rows * Wp positions (each row's last two are discarded), nine taps
 * at fixed offsets. Stride 2: the padded input rows are split into their even
 * and odd columns, so every tap reads consecutive elements. Bias and the clamp
 * are applied on the way out. The scratch is per thread. */
static _Thread_local float *dw_buf;
static _Thread_local int64_t dw_cap, dw_key[5];
static pthread_key_t dw_tl_key; /* its value is the thread's dw_buf, freed when the thread ends */
static pthread_once_t dw_tl_once = PTHREAD_ONCE_INIT;
static void dw_tl_key_make(void) { pthread_key_create(&dw_tl_key, free); }

/* The thread's strip buffer of n floats whose first `clear` are zero. Planes
 * of one layer share a layout (key): the fills only write inside [0, W), so
 * the padding columns stay zero from one plane to the next and the buffer is
 * cleared only when the layout changes (small planes paid more for it than
 * for their arithmetic). */
static float *dw_scratch(int64_t n, int64_t clear, int64_t k0, int64_t k1, int64_t k2) {
    if (n > dw_cap) {
        free(dw_buf);
        dw_buf = aligned_alloc(64, (size_t)((n + 15) / 16 * 16) * sizeof(float));
        dw_cap = dw_buf ? n : 0;
        pthread_once(&dw_tl_once, dw_tl_key_make);
        pthread_setspecific(dw_tl_key, dw_buf); /* freed when the thread ends */
        dw_key[0] = 0;
    }
    if (dw_buf && !(dw_key[0] == 1 && dw_key[1] == k0 && dw_key[2] == k1 && dw_key[3] == k2 && clear <= dw_key[4])) {
        memset(dw_buf, 0, (size_t)clear * sizeof(float));
        dw_key[0] = 1, dw_key[1] = k0, dw_key[2] = k1, dw_key[3] = k2, dw_key[4] = clear;
    }
    return dw_buf;
}

#define DW_STRIP 2048 /* floats of padded input per strip */

/* Input row ih, columns c0, c0 + step, ... (n of them) into dst, whose
 * columns outside [0, W) are left as they are (zero: the strip buffer is
 * cleared once per plane); a row outside [0, H) is cleared. */
static inline KILN_ALWAYS_INLINE void dw_fill_row(const float *x, int64_t H, int64_t W, int64_t ih, int64_t c0, int64_t step,
                                                  int64_t n, float *dst) {
    if (ih < 0 || ih >= H) {
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    const float *xr = x + ih * W;
    int64_t lo = c0 >= 0 ? 0 : (-c0 + step - 1) / step, hi = W - c0 <= 0 ? 0 : (W - c0 - 1) / step + 1;
    if (hi > n) hi = n;
    if (step == 1) for (int64_t c = lo; c < hi; c++) dst[c] = xr[c0 + c];
    else for (int64_t c = lo; c < hi; c++) dst[c] = xr[c0 + c * step];
}

KILN_CLONES static bool dw3x3_flat(const win3 *w, const float *x, const float *wk, float bias, float lo, float hi, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], ph = w->pad[1], pw = w->pad[2];
    int64_t Wp = OW + 2, R = DW_STRIP / Wp - 2;
    if (R < 1) R = 1;
    if (R > OH) R = OH;
    /* the strip, 32 floats of slack (whole vectors read past the last row), then the sums */
    int64_t xn = (R + 2) * Wp + 32;
    float *xp = dw_scratch(xn + R * Wp + 16, xn, 1, Wp, pw * 65536 + W), *t = xp + xn;
    if (!xp) return false;
    float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7], w8 = wk[8];
    for (int64_t oh0 = 0; oh0 < OH; oh0 += R) {
        int64_t rows = OH - oh0 < R ? OH - oh0 : R, n = (rows * Wp + 15) & ~(int64_t)15; /* whole vectors */
        for (int64_t r = 0; r < rows + 2; r++) dw_fill_row(x, H, W, oh0 + r - ph, -pw, 1, Wp, xp + r * Wp);
        const float *a = xp, *b = xp + Wp, *c = xp + 2 * Wp;
        for (int64_t i0 = 0; i0 < n; i0 += 16)
            for (int64_t i = i0; i < i0 + 16; i++)
                t[i] = kiln_clampf(w0 * a[i] + w1 * a[i + 1] + w2 * a[i + 2] + w3 * b[i] + w4 * b[i + 1] + w5 * b[i + 2] + w6 * c[i] +
                                   w7 * c[i + 1] + w8 * c[i + 2] + bias, lo, hi);
        for (int64_t r = 0; r < rows; r++) memcpy(y + (oh0 + r) * OW, t + r * Wp, (size_t)OW * sizeof(float));
    }
    return true;
}

KILN_CLONES static bool dw3x3_s2(const win3 *w, const float *x, const float *wk, float bias, float lo, float hi, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], ph = w->pad[1], pw = w->pad[2];
    int64_t We = OW + 1, R = (DW_STRIP / (2 * We) - 1) / 2; /* even columns 0, 2, .., 2 OW; odd 1, .., 2 OW - 1 */
    if (R < 1) R = 1;
    if (R > OH) R = OH;
    int64_t half = (2 * R + 1) * We; /* even and odd halves */
    float *ev = dw_scratch(2 * half, 2 * half, 2, We, pw * 65536 + W), *od = ev + half;
    if (!ev) return false;
    float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7], w8 = wk[8];
    for (int64_t oh0 = 0; oh0 < OH; oh0 += R) {
        int64_t rows = OH - oh0 < R ? OH - oh0 : R;
        for (int64_t r = 0; r < 2 * rows + 1; r++) {
            dw_fill_row(x, H, W, 2 * oh0 + r - ph, -pw, 2, We, ev + r * We);
            dw_fill_row(x, H, W, 2 * oh0 + r - ph, 1 - pw, 2, We, od + r * We);
        }
        for (int64_t r = 0; r < rows; r++) {
            const float *e0 = ev + 2 * r * We, *e1 = e0 + We, *e2 = e1 + We;
            const float *o0 = od + 2 * r * We, *o1 = o0 + We, *o2 = o1 + We;
            float *yr = y + (oh0 + r) * OW;
            for (int64_t ow = 0; ow < OW; ow++)
                yr[ow] = kiln_clampf(w0 * e0[ow] + w1 * o0[ow] + w2 * e0[ow + 1] + w3 * e1[ow] + w4 * o1[ow] + w5 * e1[ow + 1] +
                                w6 * e2[ow] + w7 * o2[ow] + w8 * e2[ow + 1] + bias, lo, hi);
        }
    }
    return true;
}

/* ---- AVX-512 kernels: depthwise 3x3, small-C convolution, max pooling,
 * row reductions, stride-2 copies. Compiled for AVX-512 by target
 * attributes in a baseline build, called only when kiln_have_avx512(); each
 * falls back to the portable loops above when its shape does not fit. ---- */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX512_KERNELS 1

/* The lanes l of a 16-float load at column b of a row of W for which
 * 0 <= b + l < W (the others read as zero, and are not touched). */
static inline __mmask16 row_lanes(int64_t b, int64_t W) {
    int64_t lo = b < 0 ? -b : 0, hi = W - b;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)((((uint32_t)1 << hi) - 1) & ~(((uint32_t)1 << lo) - 1));
}

/* The even (odd) elements of the 32 floats lo, hi: a stride-2 row's taps. */
__attribute__((target("avx512f"))) static inline __m512 even_cols(__m512 lo, __m512 hi) {
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi);
}
__attribute__((target("avx512f"))) static inline __m512 odd_cols(__m512 lo, __m512 hi) {
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), hi);
}

#define DW_MAXV 64 /* output vectors per row whose load masks are kept (OW <= 1024) */
#define DW_R2 4     /* stride 2: output rows per block */
#define TAP_MAXKW 11 /* kernel columns whose load masks tap_masks keeps */

/* The load masks of a window's taps along a row of W, the same for every row:
 * output vector v (16 columns at stride s) and kernel column kw load at
 * column b = 16 v s - pw + kw: mk[v][kw][0] for b, [1] for b + 16 (the second
 * load at stride 2). */
static void tap_masks(int64_t nv, int64_t KW, int64_t s, int64_t pw, int64_t W, __mmask16 (*mk)[TAP_MAXKW][2]) {
    for (int64_t v = 0; v < nv; v++)
        for (int64_t kw = 0; kw < KW; kw++) {
            int64_t b = v * 16 * s - pw + kw;
            mk[v][kw][0] = row_lanes(b, W);
            mk[v][kw][1] = row_lanes(b + 16, W);
        }
}

/* Each path of dw3x3_avx512 is a function of its own (noinline), its taps
 * nine named vectors: in one function, or filled by a loop, gcc kept them on
 * the stack, a load per FMA beside the row loads (56x56 planes, 144 channels:
 * 0.28 -> 0.17 ms). */
#define DW_TAPS                                                                                                        \
    __m512 k0 = _mm512_set1_ps(wk[0]), k1 = _mm512_set1_ps(wk[1]), k2 = _mm512_set1_ps(wk[2]);                         \
    __m512 k3 = _mm512_set1_ps(wk[3]), k4 = _mm512_set1_ps(wk[4]), k5 = _mm512_set1_ps(wk[5]);                         \
    __m512 k6 = _mm512_set1_ps(wk[6]), k7 = _mm512_set1_ps(wk[7]), k8 = _mm512_set1_ps(wk[8]);                         \
    const __m512 kw[9] = {k0, k1, k2, k3, k4, k5, k6, k7, k8};                                                        \
    __m512 vb = _mm512_set1_ps(bias), vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
#define DW_PATH(name)                                                                                                  \
    __attribute__((target("avx512f"), noinline)) static bool name(const float *x, int64_t H, int64_t W, int64_t OH,   \
                                                                  int64_t OW, int64_t ph, int64_t pw, const float *wk, \
                                                                  float bias, float lo, float hi, float *y)

/* dw3x3_avx512's stride 1: DW_R output rows at a time, each input row loaded
 * once (three shifts) for all its outputs. */
DW_PATH(dw3x3_s1_avx512) {
    int64_t nv = (OW + 15) / 16;
    __mmask16 mk[DW_MAXV][3], om[DW_MAXV];
    for (int64_t v = 0; v < nv; v++) {
        for (int t = 0; t < 3; t++) mk[v][t] = row_lanes(v * 16 - pw + t, W);
        om[v] = row_lanes(v * 16, OW);
    }
    DW_TAPS
    enum { DW_R = 4 };
    for (int64_t oh0 = 0; oh0 < OH; oh0 += DW_R) {
        int64_t rows = OH - oh0 < DW_R ? OH - oh0 : DW_R;
        const float *rp[DW_R + 2];
        for (int i = 0; i < DW_R + 2; i++) {
            int64_t ih = oh0 - ph + i;
            rp[i] = i < rows + 2 && ih >= 0 && ih < H ? x + ih * W : NULL;
        }
        for (int64_t v = 0; v < nv; v++) {
            int64_t b = v * 16 - pw;
            const __mmask16 *m = mk[v];
            __m512 acc[DW_R];
#pragma GCC unroll 4
            for (int o = 0; o < DW_R; o++) acc[o] = vb;
#pragma GCC unroll 6
            for (int i = 0; i < DW_R + 2; i++) {
                if (!rp[i]) continue;
                __m512 x0 = _mm512_maskz_loadu_ps(m[0], rp[i] + b), x1 = _mm512_maskz_loadu_ps(m[1], rp[i] + b + 1);
                __m512 x2 = _mm512_maskz_loadu_ps(m[2], rp[i] + b + 2);
#pragma GCC unroll 4
                for (int o = 0; o < DW_R; o++) {
                    int kh = i - o;
                    if (kh < 0 || kh > 2) continue;
                    acc[o] = _mm512_fmadd_ps(kw[kh * 3], x0, acc[o]);
                    acc[o] = _mm512_fmadd_ps(kw[kh * 3 + 1], x1, acc[o]);
                    acc[o] = _mm512_fmadd_ps(kw[kh * 3 + 2], x2, acc[o]);
                }
            }
            /* constant indices once unrolled: a loop to `rows` indexed acc at run time, which
             * kept it on the stack, every FMA a store and a reload */
#pragma GCC unroll 4
            for (int o = 0; o < DW_R; o++)
                if (o < rows)
                    _mm512_mask_storeu_ps(y + (oh0 + o) * OW + v * 16, om[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc[o])));
        }
    }
    return true;
}

/* The stride-2 kernels' load masks (tap_masks' for 3 columns, in the order
 * the loads take them: columns b, b + 16, b + 2, b + 18 of output vector v)
 * and each output vector's store mask; their taps and bounds. */
#define DW_S2_SETUP                                                                                                     \
    int64_t nv = (OW + 15) / 16;                                                                                       \
    __mmask16 mk[DW_MAXV + 1][4], om[DW_MAXV + 1];                                                                     \
    for (int64_t v = 0; v <= nv; v++) {                                                                                \
        int64_t b = v * 32 - pw;                                                                                       \
        for (int t = 0; t < 4; t++) mk[v][t] = row_lanes(b + (t & 1) * 16 + (t >> 1) * 2, W);                         \
        om[v] = row_lanes(v * 16, OW);                                                                                 \
    }                                                                                                                  \
    DW_TAPS

/* stride 2, rows of at most 7 outputs (MobileNet's 14x14 -> 7x7): two output
 * rows per vector, the first in lanes [0, OW), the next in [OW, 2 OW) (they
 * lie next to each other in the output), each tap one permute of two input
 * rows two apart: five row loads, nine permutes and nine FMAs for 2 OW
 * outputs, where a row a vector took twelve loads, nine permutes and nine
 * FMAs for OW. */
DW_PATH(dw3x3_s2_pairs_avx512) {
    DW_TAPS
    __mmask16 lm = row_lanes(-pw, W); /* a row loaded from column -pw: lane l is column l - pw */
    /* tap column t of lane l: 2 l + t of the first row (l < OW), 16 + 2 (l - OW) + t of the second; lanes
     * from 2 OW on are not stored */
    __m512i two_l = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
    __m512i base = _mm512_mask_add_epi32(two_l, (__mmask16)~((1u << OW) - 1), two_l, _mm512_set1_epi32(16 - 2 * (int)OW));
    __m512i ix[3] = {base, _mm512_add_epi32(base, _mm512_set1_epi32(1)), _mm512_add_epi32(base, _mm512_set1_epi32(2))};
    for (int64_t oh = 0; oh < OH; oh += 2) {
        __m512 r[5];
        for (int i = 0; i < 5; i++) {
            int64_t ih = 2 * oh - ph + i;
            r[i] = ih >= 0 && ih < H ? _mm512_maskz_loadu_ps(lm, x + ih * W - pw) : _mm512_setzero_ps();
        }
        __m512 a0 = vb, a1 = _mm512_setzero_ps(), a2 = a1;
        a0 = _mm512_fmadd_ps(kw[0], _mm512_permutex2var_ps(r[0], ix[0], r[2]), a0);
        a1 = _mm512_fmadd_ps(kw[1], _mm512_permutex2var_ps(r[0], ix[1], r[2]), a1);
        a2 = _mm512_fmadd_ps(kw[2], _mm512_permutex2var_ps(r[0], ix[2], r[2]), a2);
        a0 = _mm512_fmadd_ps(kw[3], _mm512_permutex2var_ps(r[1], ix[0], r[3]), a0);
        a1 = _mm512_fmadd_ps(kw[4], _mm512_permutex2var_ps(r[1], ix[1], r[3]), a1);
        a2 = _mm512_fmadd_ps(kw[5], _mm512_permutex2var_ps(r[1], ix[2], r[3]), a2);
        a0 = _mm512_fmadd_ps(kw[6], _mm512_permutex2var_ps(r[2], ix[0], r[4]), a0);
        a1 = _mm512_fmadd_ps(kw[7], _mm512_permutex2var_ps(r[2], ix[1], r[4]), a1);
        a2 = _mm512_fmadd_ps(kw[8], _mm512_permutex2var_ps(r[2], ix[2], r[4]), a2);
        __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
        __mmask16 om = (__mmask16)((1u << ((oh + 1 < OH ? 2 : 1) * OW)) - 1);
        _mm512_mask_storeu_ps(y + oh * OW, om, _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
    }
    return true;
}

/* stride 2, rows of at most 32 outputs: each tap row's even and odd columns
 * picked from two loads by permutes (splitting the rows first, as below, cost
 * more than it saved on them: 14x14 -> 7x7 0.050 -> 0.074 ms) */
DW_PATH(dw3x3_s2_rows_avx512) {
    DW_S2_SETUP
    for (int64_t oh = 0; oh < OH; oh++) {
        int64_t ih = oh * 2 - ph;
        const float *r0 = ih >= 0 && ih < H ? x + ih * W : NULL;
        const float *r1 = ih + 1 >= 0 && ih + 1 < H ? x + (ih + 1) * W : NULL;
        const float *r2 = ih + 2 >= 0 && ih + 2 < H ? x + (ih + 2) * W : NULL;
        for (int64_t v = 0; v < nv; v++) {
            __m512 a0 = vb, a1 = _mm512_setzero_ps(), a2 = a1;
            int64_t b = v * 32 - pw;
            const __mmask16 *m = mk[v];
#define DW_S2(r, acc, t) if (r) { \
            __m512 l0 = _mm512_maskz_loadu_ps(m[0], r + b), l1 = _mm512_maskz_loadu_ps(m[1], r + b + 16); \
            __m512 l2 = _mm512_maskz_loadu_ps(m[2], r + b + 2), l3 = _mm512_maskz_loadu_ps(m[3], r + b + 18); \
            acc = _mm512_fmadd_ps(kw[t], even_cols(l0, l1), acc); \
            acc = _mm512_fmadd_ps(kw[t + 1], odd_cols(l0, l1), acc); \
            acc = _mm512_fmadd_ps(kw[t + 2], even_cols(l2, l3), acc); }
            DW_S2(r0, a0, 0) DW_S2(r1, a1, 3) DW_S2(r2, a2, 6)
#undef DW_S2
            __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
            _mm512_mask_storeu_ps(y + oh * OW + v * 16, om[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
        }
    }
    return true;
}

/* stride 2, wider rows: the input rows of DW_R2 output rows are split once
 * into their even and odd columns, E[i] = x[2i - pw] and O[i] = x[2i + 1 -
 * pw] (zero outside the row), so that the taps are plain loads E[ow],
 * O[ow] and E[ow + 1]: 2 permutes per 16 columns of an input row, which
 * serves up to two output rows, instead of 3 per tap row of every output
 * vector */
DW_PATH(dw3x3_s2_split_avx512) {
    DW_S2_SETUP
    int64_t ne = (nv + 1) * 16, nin = 2 * DW_R2 + 1;
    float *sp = dw_scratch(2 * nin * ne, 0, 3, ne, 0); /* the flat and split kernels' buffer, nothing cleared */
    if (!sp) return false;
    for (int64_t oh0 = 0; oh0 < OH; oh0 += DW_R2) {
        int64_t rows = OH - oh0 < DW_R2 ? OH - oh0 : DW_R2;
        for (int64_t i = 0; i < 2 * rows + 1; i++) {
            int64_t ih = 2 * oh0 - ph + i;
            float *E = sp + 2 * i * ne, *O = E + ne;
            if (ih < 0 || ih >= H) {
                memset(E, 0, (size_t)(2 * ne) * sizeof(float));
                continue;
            }
            const float *xr = x + ih * W;
            for (int64_t q = 0; q <= nv; q++) {
                int64_t b = q * 32 - pw;
                __m512 l0 = _mm512_maskz_loadu_ps(mk[q][0], xr + b), l1 = _mm512_maskz_loadu_ps(mk[q][1], xr + b + 16);
                _mm512_storeu_ps(E + q * 16, even_cols(l0, l1));
                _mm512_storeu_ps(O + q * 16, odd_cols(l0, l1));
            }
        }
        for (int64_t o = 0; o < rows; o++) {
            const float *e0 = sp + 4 * o * ne, *o0 = e0 + ne, *e1 = o0 + ne, *o1 = e1 + ne, *e2 = o1 + ne, *o2 = e2 + ne;
            float *yr = y + (oh0 + o) * OW;
            for (int64_t v = 0; v < nv; v++) {
                int64_t c = v * 16;
                __m512 a0 = _mm512_fmadd_ps(kw[0], _mm512_loadu_ps(e0 + c), vb);
                __m512 a1 = _mm512_mul_ps(kw[1], _mm512_loadu_ps(o0 + c));
                __m512 a2 = _mm512_mul_ps(kw[2], _mm512_loadu_ps(e0 + c + 1));
                a0 = _mm512_fmadd_ps(kw[3], _mm512_loadu_ps(e1 + c), a0);
                a1 = _mm512_fmadd_ps(kw[4], _mm512_loadu_ps(o1 + c), a1);
                a2 = _mm512_fmadd_ps(kw[5], _mm512_loadu_ps(e1 + c + 1), a2);
                a0 = _mm512_fmadd_ps(kw[6], _mm512_loadu_ps(e2 + c), a0);
                a1 = _mm512_fmadd_ps(kw[7], _mm512_loadu_ps(o2 + c), a1);
                a2 = _mm512_fmadd_ps(kw[8], _mm512_loadu_ps(e2 + c + 1), a2);
                __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
                _mm512_mask_storeu_ps(yr + c, om[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
            }
        }
    }
    return true;
}

/* A 3x3 depthwise plane (dilation 1, stride 1 or 2) straight from the NCHW
 * plane: 16 output columns per vector, each tap one masked load (the masks
 * stand in for the zero padding, so nothing is copied); stride 1 computes four
 * output rows per pass from each input row's three shifted loads; stride 2
 * takes even and odd columns by permutes, two rows to a vector when they are
 * at most 7 wide, row by row up to 32, split into even and odd halves beyond.
 * Bias first, the clamp on the way out. */
__attribute__((target("avx512f"))) static bool dw3x3_avx512(const win3 *w, const float *x, const float *wk, float bias,
                                                            float lo, float hi, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], s = w->stride[1], ph = w->pad[1], pw = w->pad[2];
    int64_t nv = (OW + 15) / 16;
    if (nv > DW_MAXV || (s != 1 && s != 2) || w->stride[2] != s) return false;
    return (s == 1 ? dw3x3_s1_avx512 : OW <= 7 ? dw3x3_s2_pairs_avx512 : nv <= 2 ? dw3x3_s2_rows_avx512 : dw3x3_s2_split_avx512)(
        x, H, W, OH, OW, ph, pw, wk, bias, lo, hi, y);
}

/* Small 3x3 stride-1 depthwise planes that keep their size (at most 256
 * outputs: MobileNet's 14x14 and 7x7), many planes per call: each plane is
 * read flat, 16 consecutive outputs per vector across row ends, every tap one
 * masked load at a fixed offset (the mask drops the lanes whose tap falls
 * outside the image, computed once for all planes). A 7x7 plane is 4 vectors
 * instead of 7 rows of 7 lanes. */
#define DWS_MAXV 16
static bool dw3x3_small_fits(const win3 *w) {
    int64_t H = w->in[1], W = w->in[2];
    return w->out[1] == H && w->out[2] == W && H * W <= DWS_MAXV * 16 && w->stride[1] == 1 && w->stride[2] == 1 &&
           w->pad[1] <= 2 && w->pad[2] <= 2;
}

__attribute__((target("avx512f"))) static void dw3x3_small_avx512(const conv_job *j, int64_t r0, int64_t r1, float lo, float hi) {
    const win3 *w = &j->w;
    int64_t H = w->in[1], W = w->in[2], n = H * W, nv = (n + 15) / 16, ph = w->pad[1], pw = w->pad[2];
    __mmask16 mk[DWS_MAXV][9], om[DWS_MAXV];
    int64_t off[9];
    for (int t = 0; t < 9; t++) off[t] = (t / 3 - ph) * W + (t % 3 - pw);
    for (int64_t v = 0; v < nv; v++) {
        om[v] = 0;
        for (int t = 0; t < 9; t++) mk[v][t] = 0;
        for (int l = 0; l < 16; l++) {
            int64_t i = v * 16 + l, oh = i / W, ow = i % W;
            if (i >= n) break;
            om[v] |= (__mmask16)(1u << l);
            for (int t = 0; t < 9; t++) {
                int64_t ih = oh + t / 3 - ph, iw = ow + t % 3 - pw;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W) mk[v][t] |= (__mmask16)(1u << l);
            }
        }
    }
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * n, *wk = j->wt + (r % w->M) * 9;
        float *y = j->y + r * n;
        __m512 k[9];
        for (int t = 0; t < 9; t++) k[t] = _mm512_set1_ps(wk[t]);
        __m512 vb = _mm512_set1_ps(j->b ? j->b[r % w->M] : 0.0f);
        for (int64_t v = 0; v < nv; v++) {
            const float *xv = x + v * 16;
            const __mmask16 *m = mk[v];
            __m512 a0 = _mm512_fmadd_ps(k[0], _mm512_maskz_loadu_ps(m[0], xv + off[0]), vb);
            __m512 a1 = _mm512_mul_ps(k[1], _mm512_maskz_loadu_ps(m[1], xv + off[1]));
            __m512 a2 = _mm512_mul_ps(k[2], _mm512_maskz_loadu_ps(m[2], xv + off[2]));
            a0 = _mm512_fmadd_ps(k[3], _mm512_maskz_loadu_ps(m[3], xv + off[3]), a0);
            a1 = _mm512_fmadd_ps(k[4], _mm512_maskz_loadu_ps(m[4], xv + off[4]), a1);
            a2 = _mm512_fmadd_ps(k[5], _mm512_maskz_loadu_ps(m[5], xv + off[5]), a2);
            a0 = _mm512_fmadd_ps(k[6], _mm512_maskz_loadu_ps(m[6], xv + off[6]), a0);
            a1 = _mm512_fmadd_ps(k[7], _mm512_maskz_loadu_ps(m[7], xv + off[7]), a1);
            a2 = _mm512_fmadd_ps(k[8], _mm512_maskz_loadu_ps(m[8], xv + off[8]), a2);
            __m512 acc = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
            _mm512_mask_storeu_ps(y + v * 16, om[v], _mm512_min_ps(vhi, _mm512_max_ps(vlo, acc)));
        }
    }
}

/* A 2-D convolution of few input channels (an image's first layer: C <= 4,
 * C*KH*KW <= 160, stride 1 or 2, dilation 1, one group), direct: 16 output
 * columns per vector (taps by masked loads; stride 2 by permutes, as in the
 * depthwise kernel) times 16 output channels in 16 accumulators, each tap's
 * input vector made once and used by 16 FMAs. im2col + GEMM spent as long on
 * writing and re-reading the 27-row column matrix as on the products. The
 * weights are transposed per call to [tap][M rounded up to 16]. */
typedef struct {
    win3 w;
    const float *x, *wt, *b, *res; /* wt: [C*KH*KW][Mp] */
    float *y;
    int64_t Mp;
    float lo, hi;
} smallc_job;

#define SMALLC_MAX_C 4
#define SMALLC_MAX_TAPS 160

static bool smallc_fits(const win3 *w) {
    int64_t s = w->stride[1];
    return kiln_have_avx512() && w->group == 1 && w->in[0] == 1 && w->k[0] == 1 && w->out[0] == 1 && w->C <= SMALLC_MAX_C &&
           w->C * w->k[1] * w->k[2] <= SMALLC_MAX_TAPS && w->k[2] <= TAP_MAXKW && (s == 1 || s == 2) && w->stride[2] == s && w->dil[1] == 1 &&
           w->dil[2] == 1 && (w->out[2] + 15) / 16 <= DW_MAXV;
}

__attribute__((target("avx512f"))) static void smallc_rows(void *arg, int64_t r0, int64_t r1) {
    const smallc_job *j = arg;
    const win3 *w = &j->w;
    int64_t C = w->C, M = w->M, H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], KH = w->k[1], KW = w->k[2];
    int64_t s = w->stride[1], ph = w->pad[1], pw = w->pad[2], osz = OH * OW, nv = (OW + 15) / 16;
    const __m512 vlo = _mm512_set1_ps(j->lo), vhi = _mm512_set1_ps(j->hi);
    __m512 xs[SMALLC_MAX_TAPS];
    __mmask16 mk[DW_MAXV][TAP_MAXKW][2]; /* the same for every row, channel and kernel row */
    tap_masks(nv, KW, s, pw, W, mk);
    for (int64_t r = r0; r < r1; r++) { /* r = n * OH + oh */
        int64_t n = r / OH, oh = r % OH;
        /* the rows two output rows ahead, from memory while this one computes
         * (the model's input is cold at the start of a run) */
        for (int64_t c = 0; c < C; c++)
            for (int64_t ih = (oh + 2) * s - ph + KH - s; ih < (oh + 2) * s - ph + KH; ih++)
                if (ih >= 0 && ih < H)
                    for (int64_t q = 0; q < W; q += 16) _mm_prefetch((const char *)(j->x + ((n * C + c) * H + ih) * W + q), _MM_HINT_T0);
        if (oh + 1 < OH)
            for (int64_t m = 0; m < M; m++)
                for (int64_t q = 0; q < OW; q += 16) _mm_prefetch((const char *)(j->y + (n * M + m) * osz + (oh + 1) * OW + q), _MM_HINT_ET0);
        for (int64_t v = 0; v < nv; v++) {
            /* the input vector of every tap (zero for rows outside the image) */
            int64_t t = 0;
            for (int64_t c = 0; c < C; c++)
                for (int64_t kh = 0; kh < KH; kh++) {
                    int64_t ih = oh * s - ph + kh;
                    bool in = ih >= 0 && ih < H;
                    const float *xr = j->x + ((n * C + c) * H + (in ? ih : 0)) * W;
                    for (int64_t kw = 0; kw < KW; kw++, t++) {
                        int64_t b = v * 16 * s - pw + kw;
                        if (!in) xs[t] = _mm512_setzero_ps();
                        else if (s == 1) xs[t] = _mm512_maskz_loadu_ps(mk[v][kw][0], xr + b);
                        else xs[t] = even_cols(_mm512_maskz_loadu_ps(mk[v][kw][0], xr + b), _mm512_maskz_loadu_ps(mk[v][kw][1], xr + b + 16));
                    }
                }
            __mmask16 om = row_lanes(v * 16, OW);
            for (int64_t m0 = 0; m0 < M; m0 += 16) {
                __m512 acc[16];
#pragma GCC unroll 16
                for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
                const float *wq = j->wt + m0;
                for (int64_t u = 0; u < t; u++, wq += j->Mp) {
                    __m512 xv = xs[u];
#pragma GCC unroll 16
                    for (int q = 0; q < 16; q++) acc[q] = _mm512_fmadd_ps(_mm512_set1_ps(wq[q]), xv, acc[q]);
                }
                int64_t mb = M - m0 < 16 ? M - m0 : 16;
#pragma GCC unroll 16
                for (int q = 0; q < 16; q++) { /* constant indices keep acc in registers (dw3x3_s1_avx512) */
                    if (q >= mb) break;
                    int64_t at = (n * M + m0 + q) * osz + oh * OW + v * 16;
                    __m512 o = j->b ? _mm512_add_ps(acc[q], _mm512_set1_ps(j->b[m0 + q])) : acc[q];
                    if (j->res) o = _mm512_add_ps(o, _mm512_maskz_loadu_ps(om, j->res + at));
                    _mm512_mask_storeu_ps(j->y + at, om, _mm512_min_ps(vhi, _mm512_max_ps(vlo, o)));
                }
            }
        }
    }
}

/* The small-C path, when it fits and the transposed weights can be had. */
static bool conv_smallc(kiln_pool *pool, const conv_job *cj, const float *res) {
    const win3 *w = &cj->w;
    if (!smallc_fits(w)) return false;
    int64_t taps = w->C * w->k[1] * w->k[2], Mp = (w->M + 15) / 16 * 16;
    float *wt = aligned_alloc(64, (size_t)(taps * Mp) * sizeof(float));
    if (!wt) return false;
    for (int64_t t = 0; t < taps; t++)
        for (int64_t m = 0; m < Mp; m++) wt[t * Mp + m] = m < w->M ? cj->wt[m * taps + t] : 0.0f;
    smallc_job j = {*w, cj->x, wt, cj->b, res, cj->y, Mp, 0, 0};
    act_bounds(cj->act, &j.lo, &j.hi);
    kiln_parallel_for(pool, w->N * w->out[1], smallc_rows, &j);
    free(wt);
    return true;
}
#endif

static void conv_rows(void *arg, int64_t r0, int64_t r1) {
    const conv_job *j = arg;
    const win3 *w = &j->w;
    if (w->in[0] == 1 && w->k[0] == 1 && w->C == w->group && w->M == w->group) {
        int64_t isz = w->in[1] * w->in[2], osz = w->out[1] * w->out[2];
        bool k3 = w->k[1] == 3 && w->k[2] == 3 && w->dil[1] == 1 && w->dil[2] == 1;
        bool s1 = k3 && w->stride[1] == 1 && w->stride[2] == 1, s2 = k3 && w->stride[1] == 2 && w->stride[2] == 2;
        float lo, hi;
        act_bounds(j->act, &lo, &hi);
#ifdef HAVE_AVX512_KERNELS
        if (s1 && kiln_have_avx512() && dw3x3_small_fits(w)) {
            dw3x3_small_avx512(j, r0, r1, lo, hi);
            return;
        }
#endif
        for (int64_t r = r0; r < r1; r++) {
            const float *x = j->x + r * isz, *wk = j->wt + (r % w->M) * w->k[1] * w->k[2];
            float bias = j->b ? j->b[r % w->M] : 0.0f, *y = j->y + r * osz;
#ifdef HAVE_AVX512_KERNELS
            if ((s1 || s2) && kiln_have_avx512() && dw3x3_avx512(w, x, wk, bias, lo, hi, y)) continue;
#endif
            if (!(s1 && dw3x3_flat(w, x, wk, bias, lo, hi, y)) && !(s2 && dw3x3_s2(w, x, wk, bias, lo, hi, y))) {
                depthwise_plane(w, x, wk, bias, y);
                clamp_range(y, osz, j->act);
            }
        }
        return;
    }
    int64_t cpg = w->C / w->group, mpg = w->M / w->group;
    int64_t isz = w->in[0] * w->in[1] * w->in[2], osz = w->out[0] * w->out[1] * w->out[2];
    int64_t ksz = w->k[0] * w->k[1] * w->k[2];
    for (int64_t r = r0; r < r1; r++) { /* r = n * M + m */
        int64_t n = r / w->M, m = r % w->M, g = m / mpg;
        float *y = j->y + r * osz;
        const float *wm = j->wt + m * cpg * ksz;
        float bias = j->b ? j->b[m] : 0.0f;
        for (int64_t od = 0; od < w->out[0]; od++)
            for (int64_t oh = 0; oh < w->out[1]; oh++)
                for (int64_t ow = 0; ow < w->out[2]; ow++) {
                    float s = bias;
                    for (int64_t c = 0; c < cpg; c++) {
                        const float *x = j->x + (n * w->C + g * cpg + c) * isz;
                        const float *wk = wm + c * ksz;
                        for (int64_t kd = 0; kd < w->k[0]; kd++) {
                            int64_t id = od * w->stride[0] - w->pad[0] + kd * w->dil[0];
                            if (id < 0 || id >= w->in[0]) continue;
                            for (int64_t kh = 0; kh < w->k[1]; kh++) {
                                int64_t ih = oh * w->stride[1] - w->pad[1] + kh * w->dil[1];
                                if (ih < 0 || ih >= w->in[1]) continue;
                                const float *xr = x + (id * w->in[1] + ih) * w->in[2];
                                const float *wr = wk + (kd * w->k[1] + kh) * w->k[2];
                                for (int64_t kw = 0; kw < w->k[2]; kw++) {
                                    int64_t iw = ow * w->stride[2] - w->pad[2] + kw * w->dil[2];
                                    if (iw >= 0 && iw < w->in[2]) s += xr[iw] * wr[kw];
                                }
                            }
                        }
                    }
                    y[(od * w->out[1] + oh) * w->out[2] + ow] = s;
                }
        clamp_range(y, osz, j->act);
    }
}

/* Direct when depthwise (one channel per group); else im2col into the scratch
 * buffer (skipped for 1x1, stride 1, no padding) and one GEMM per image and group. */
bool kiln_conv_is_direct(int64_t C, int64_t M, int64_t group) { return C == group && M == group; }

/* Rows r0..r1 of the im2col matrix (row r = channel * ksz + kernel offset), its
 * columns j0..j0+nb of the output positions, into col (row stride nb). */
typedef struct { const win3 *w; const float *x; float *col; int64_t j0, nb; } im2col_job;

#ifdef HAVE_AVX512_KERNELS
/* dst[i] = src[2 i], i < n, 16 at a time by the even-column permute; the last
 * loads masked to the elements that exist (stride-2 im2col rows were a scalar
 * loop: a fifth of a 64->128 3x3/2 convolution at 56x56) */
__attribute__((target("avx512f"))) static void even_copy_avx512(float *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n && 2 * i + 32 <= 2 * n - 1; i += 16)
        _mm512_storeu_ps(dst + i, even_cols(_mm512_loadu_ps(src + 2 * i), _mm512_loadu_ps(src + 2 * i + 16)));
    for (; i < n; i += 16) { /* src[2 i .. 2 n - 2] exist */
        int64_t have = 2 * (n - i) - 1;
        __m512 l0 = _mm512_maskz_loadu_ps(row_lanes(0, have), src + 2 * i);
        __m512 l1 = _mm512_maskz_loadu_ps(row_lanes(0, have - 16), src + 2 * i + 16);
        _mm512_mask_storeu_ps(dst + i, row_lanes(0, n - i), even_cols(l0, l1));
    }
}
#endif

static void im2col_rows(void *arg, int64_t r0, int64_t r1) {
    const im2col_job *j = arg;
    const win3 *w = j->w;
    int64_t ksz = w->k[0] * w->k[1] * w->k[2], OH = w->out[1], OW = w->out[2];
    int64_t isz = w->in[0] * w->in[1] * w->in[2], j1 = j->j0 + j->nb;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / ksz, kk = r % ksz;
        int64_t kd = kk / (w->k[1] * w->k[2]), kh = kk / w->k[2] % w->k[1], kw = kk % w->k[2];
        const float *x = j->x + c * isz;
        int64_t off = -w->pad[2] + kw * w->dil[2], sw = w->stride[2];
        /* columns whose input iw = ow * sw + off is inside [0, W): [lo, hi) */
        int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw, hi = w->in[2] - off <= 0 ? 0 : (w->in[2] - off - 1) / sw + 1;
        if (hi > OW) hi = OW;
        if (lo > hi) lo = hi;
        for (int64_t pos = j->j0; pos < j1;) { /* one output row's part at a time */
            int64_t ow0 = pos % OW, oh = pos / OW % OH, od = pos / OW / OH;
            int64_t ow1 = OW - ow0 < j1 - pos ? OW : ow0 + (j1 - pos);
            float *row = j->col + (r * j->nb + pos - j->j0) - ow0; /* row[ow], ow in [ow0, ow1) */
            pos += ow1 - ow0;
            int64_t id = od * w->stride[0] - w->pad[0] + kd * w->dil[0], ih = oh * w->stride[1] - w->pad[1] + kh * w->dil[1];
            if (id < 0 || id >= w->in[0] || ih < 0 || ih >= w->in[1]) {
                for (int64_t ow = ow0; ow < ow1; ow++) row[ow] = 0.0f;
                continue;
            }
            const float *xr = x + (id * w->in[1] + ih) * w->in[2];
            int64_t a = lo > ow0 ? (lo < ow1 ? lo : ow1) : ow0, b = hi < ow1 ? (hi > a ? hi : a) : ow1;
            for (int64_t ow = ow0; ow < a; ow++) row[ow] = 0.0f;
            if (sw == 1) memcpy(row + a, xr + a + off, (size_t)(b - a) * sizeof(float));
#ifdef HAVE_AVX512_KERNELS
            else if (sw == 2 && kiln_have_avx512()) even_copy_avx512(row + a, xr + a * 2 + off, b - a);
#endif
            else for (int64_t ow = a; ow < b; ow++) row[ow] = xr[ow * sw + off];
            for (int64_t ow = b; ow < ow1; ow++) row[ow] = 0.0f;
        }
    }
}

/* A large GEMM convolution goes in chunks of output positions, one thread per
 * chunk: the chunk's im2col columns (at most CONV_CHUNK bytes) are written and
 * multiplied while they are in the thread's L2, instead of a whole im2col
 * matrix of megabytes written, then read back. A thread's chunks share the
 * scratch region where its first one starts. */
#define CONV_CHUNK (384 * 1024)

typedef struct {
    const win3 *w;
    const float *x, *a, *packed;
    float *col, *y;
    int64_t K, M, N, nb;
    kiln_gemm_epi e;
} conv_chunk_job;

/* Positions [32 u0, 32 u1) in chunks of at most nb: the threads split units
 * of 32 positions, not whole chunks (a 3x3/2 convolution at 28x28 was 5
 * chunks, 3 for one thread and 2 for the other). */
static void conv_chunks(void *arg, int64_t u0, int64_t u1) {
    const conv_chunk_job *j = arg;
    int64_t p0 = u0 * 32, p1 = u1 * 32 < j->N ? u1 * 32 : j->N;
    float *col = j->col + p0 * j->K; /* within the scratch: every chunk ends by N */
    int64_t pieces = (p1 - p0 + j->nb - 1) / j->nb, step = ((p1 - p0 + pieces - 1) / pieces + 31) / 32 * 32; /* even chunks */
    for (int64_t j0 = p0; j0 < p1; j0 += step) {
        int64_t nb = p1 - j0 < step ? p1 - j0 : step;
        im2col_job ij = {j->w, j->x, col, j0, nb};
        im2col_rows(&ij, 0, j->K);
        kiln_gemm_epi e = j->e;
        if (e.residual) e.residual += j0;
        kiln_sgemm_ex(NULL, j->M, nb, j->K, 1.0f, j->a, j->K, 0, j->packed, col, nb, 0, NULL, j->y + j0, j->N, &e);
    }
}

/* The parameters Conv and ConvTranspose share: nd, N, C, M, group, has_b, window. */
static void conv_read(conv_job *j, void *const *bufs, const int64_t *p) {
    j->w.N = p[1];
    j->w.C = p[2];
    j->w.M = p[3];
    j->w.group = p[4];
    win3_read(&j->w, p[0], p + 6);
    j->y = bufs[0];
    j->x = bufs[1];
    j->wt = bufs[2];
    j->b = p[5] ? bufs[3] : NULL;
    j->act = NULL;
}

int kiln_k_conv(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    conv_job j;
    conv_read(&j, bufs, p);
    j.act = p + 6 + 7 * p[0];
    if (kiln_conv_is_direct(j.w.C, j.w.M, j.w.group)) { kiln_parallel_for(pool, j.w.N * j.w.M, conv_rows, &j); return 0; }
    const win3 *w = &j.w;
    int64_t cpg = w->C / w->group, mpg = w->M / w->group;
    int64_t ksz = w->k[0] * w->k[1] * w->k[2], osz = w->out[0] * w->out[1] * w->out[2], isz = w->in[0] * w->in[1] * w->in[2];
    const float *packed = p[6 + 7 * p[0] + 3] ? bufs[5] : NULL;
    const float *res = p[6 + 7 * p[0] + 4] ? bufs[6] : NULL; /* kiln.residual (never on the direct path) */
#ifdef HAVE_AVX512_KERNELS
    if (conv_smallc(pool, &j, res)) return 0;
#endif
    bool pointwise = ksz == 1;
    for (int i = 0; i < 3; i++) pointwise = pointwise && w->stride[i] == 1 && w->pad[i] == 0 && w->pad_end[i] == 0;
    for (int64_t n = 0; n < w->N; n++)
        for (int64_t g = 0; g < w->group; g++) {
            const float *x = j.x + (n * w->C + g * cpg) * isz;
            float *y = j.y + (n * w->M + g * mpg) * osz;
            const float *col = x, *a = j.wt + g * mpg * cpg * ksz;
            const float *pa = packed ? packed + g * kiln_sgemm_packed_a_floats(mpg, cpg * ksz) : NULL;
            kiln_gemm_epi e = epi_of(j.b ? j.b + g * mpg : NULL, NULL, 1, j.act);
            if (res) e.residual = res + (n * w->M + g * mpg) * osz;
            int64_t K = cpg * ksz, nb = CONV_CHUNK / (4 * K) / 32 * 32;
            if (!pointwise && nb >= 64 && osz >= 4 * nb) {
                conv_chunk_job cj = {w, x, a, pa, bufs[4], y, K, mpg, osz, nb, e};
                kiln_parallel_for(pool, (osz + 31) / 32, conv_chunks, &cj);
                continue;
            }
            if (!pointwise) {
                im2col_job ij = {w, x, bufs[4], 0, osz};
                kiln_parallel_for(pool, cpg * ksz, im2col_rows, &ij);
                col = bufs[4];
            }
            kiln_sgemm_ex(pool, mpg, osz, K, 1.0f, a, K, 0, pa, col, osz, 0, NULL, y, osz, &e);
        }
    return 0;
}

typedef struct {
    win3 w;
    int64_t kind, count_pad, storage_order;
    const float *x;
    float *y;
    int64_t *idx;
} pool_job;

/* 2-D max pooling of one plane, windows entirely inside the input only: rows
 * [oh0, oh1), columns [lo, hi). The first element starts the maximum, as in the
 * general loop (a NaN there stays). */
KILN_CLONES static void max_plane_interior(const win3 *w, const float *x, float *y, int64_t oh0, int64_t oh1, int64_t lo, int64_t hi) {
    int64_t W = w->in[2], OW = w->out[2], KH = w->k[1], KW = w->k[2], sh = w->stride[1], sw = w->stride[2];
    int64_t dh = w->dil[1] * W, dw = w->dil[2];
    for (int64_t oh = oh0; oh < oh1; oh++) { /* tap by tap over the row's outputs: vectorized */
        const float *xr = x + (oh * sh - w->pad[1]) * W - w->pad[2];
        float *yr = y + oh * OW;
        for (int64_t ow = lo; ow < hi; ow++) yr[ow] = xr[ow * sw];
        for (int64_t kh = 0; kh < KH; kh++)
            for (int64_t kw = 0; kw < KW; kw++) {
                const float *q = xr + kh * dh + kw * dw;
                if (sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] = q[ow] > yr[ow] ? q[ow] : yr[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] = q[ow * sw] > yr[ow] ? q[ow * sw] : yr[ow];
            }
    }
}

/* One 2-D max-pool output at the border: the taps inside the input, the
 * first starting the maximum as in the general loop (-inf when none is). */
static float max_border(const win3 *w, const float *x, int64_t oh, int64_t ow) {
    float best = -INFINITY;
    bool any = false;
    for (int64_t kh = 0; kh < w->k[1]; kh++) {
        int64_t ih = oh * w->stride[1] - w->pad[1] + kh * w->dil[1];
        if (ih < 0 || ih >= w->in[1]) continue;
        for (int64_t kw = 0; kw < w->k[2]; kw++) {
            int64_t iw = ow * w->stride[2] - w->pad[2] + kw * w->dil[2];
            if (iw < 0 || iw >= w->in[2]) continue;
            float v = x[ih * w->in[2] + iw];
            if (!any || v > best) best = v;
            any = true;
        }
    }
    return best;
}

#ifdef HAVE_AVX512_KERNELS
/* 2-D max pooling (dilation 1, stride 1 or 2) with AVX-512: 16 output columns
 * per vector, each tap a load whose lanes outside the row read -inf (padding
 * never wins), stride 2 by the even-column permute of the depthwise kernel.
 * The maximum starts from the window's first tap and takes a tap only when it
 * is greater, as the scalar loops do (a NaN first element stays); where the
 * first tap is padding, a NaN first valid element is passed over. The strided
 * scalar loops it replaced took 0.32 ms for ResNet-18's 64 x 112 x 112 at two
 * threads (ONNX Runtime 0.07). */
__attribute__((target("avx512f"))) static bool maxpool_avx512(const win3 *w, const float *x, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], KH = w->k[1], KW = w->k[2];
    int64_t s = w->stride[1], ph = w->pad[1], pw = w->pad[2], nv = (OW + 15) / 16;
    if (nv > DW_MAXV || KW > TAP_MAXKW || (s != 1 && s != 2) || w->stride[2] != s || w->dil[1] != 1 || w->dil[2] != 1) return false;
    __mmask16 mk[DW_MAXV][TAP_MAXKW][2], om[DW_MAXV];
    tap_masks(nv, KW, s, pw, W, mk);
    for (int64_t v = 0; v < nv; v++) om[v] = row_lanes(v * 16, OW);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t oh = 0; oh < OH; oh++) {
        float *yr = y + oh * OW;
        for (int64_t v = 0; v < nv; v++) {
            __m512 acc = ninf;
            bool first = true;
            for (int64_t kh = 0; kh < KH; kh++) {
                int64_t ih = oh * s - ph + kh;
                if (ih < 0 || ih >= H) continue;
                const float *xr = x + ih * W;
                for (int64_t kw = 0; kw < KW; kw++) {
                    int64_t b = v * 16 * s - pw + kw;
                    const __mmask16 *m = mk[v][kw];
                    __m512 q = s == 1 ? _mm512_mask_loadu_ps(ninf, m[0], xr + b)
                                      : even_cols(_mm512_mask_loadu_ps(ninf, m[0], xr + b), _mm512_mask_loadu_ps(ninf, m[1], xr + b + 16));
                    acc = first ? q : _mm512_max_ps(q, acc);
                    first = false;
                }
            }
            _mm512_mask_storeu_ps(yr + v * 16, om[v], acc);
        }
    }
    return true;
}
#endif

static void pool_rows(void *arg, int64_t r0, int64_t r1) {
    const pool_job *j = arg;
    const win3 *w = &j->w;
    int64_t isz = w->in[0] * w->in[1] * w->in[2], osz = w->out[0] * w->out[1] * w->out[2];
    bool fast = j->kind == 0 && !j->idx && w->in[0] == 1 && w->k[0] == 1 && w->out[0] == 1;
    int64_t hlo = 0, hhi = 0, wlo = 0, whi = 0;
    if (fast) {
        window_interior(w->in[1], w->out[1], w->k[1], w->stride[1], w->dil[1], w->pad[1], &hlo, &hhi);
        window_interior(w->in[2], w->out[2], w->k[2], w->stride[2], w->dil[2], w->pad[2], &wlo, &whi);
    }
    for (int64_t r = r0; r < r1; r++) { /* r = n * C + c */
        const float *x = j->x + r * isz;
        if (fast) {
            float *y = j->y + r * osz;
#ifdef HAVE_AVX512_KERNELS
            if (kiln_have_avx512() && maxpool_avx512(w, x, y)) continue;
#endif
            max_plane_interior(w, x, y, hlo, hhi, wlo, whi);
            for (int64_t oh = 0; oh < w->out[1]; oh++)
                for (int64_t ow = 0; ow < w->out[2]; ow++) {
                    if (oh >= hlo && oh < hhi && ow == wlo) ow = whi; /* done above */
                    if (ow >= w->out[2]) break;
                    y[oh * w->out[2] + ow] = max_border(w, x, oh, ow);
                }
            continue;
        }
        for (int64_t od = 0; od < w->out[0]; od++)
            for (int64_t oh = 0; oh < w->out[1]; oh++)
                for (int64_t ow = 0; ow < w->out[2]; ow++) {
                    float best = -INFINITY, sum = 0;
                    int64_t best_at = -1, count = 0, padded = 0;
                    int64_t o[3] = {od, oh, ow};
                    for (int64_t kd = 0; kd < w->k[0]; kd++)
                        for (int64_t kh = 0; kh < w->k[1]; kh++)
                            for (int64_t kw = 0; kw < w->k[2]; kw++) {
                                int64_t kk[3] = {kd, kh, kw}, at[3], inside = 1, inpad = 1;
                                for (int i = 0; i < 3; i++) {
                                    at[i] = o[i] * w->stride[i] - w->pad[i] + kk[i] * w->dil[i];
                                    if (at[i] < 0 || at[i] >= w->in[i]) inside = 0;
                                    if (at[i] < -w->pad[i] || at[i] >= w->in[i] + w->pad_end[i]) inpad = 0;
                                }
                                padded += inpad;
                                if (!inside) continue;
                                int64_t off = (at[0] * w->in[1] + at[1]) * w->in[2] + at[2];
                                float v = x[off];
                                count++;
                                sum += v;
                                if (v > best || best_at < 0) {
                                    best = v;
                                    best_at = j->storage_order ? (at[2] * w->in[1] + at[1]) * w->in[0] + at[0] : off;
                                }
                            }
                    int64_t oo = r * osz + (od * w->out[1] + oh) * w->out[2] + ow;
                    if (j->kind == 0) {
                        j->y[oo] = best;
                        if (j->idx) j->idx[oo] = r * isz + best_at;
                    } else {
                        int64_t div = j->count_pad ? padded : count;
                        j->y[oo] = div ? sum / (float)div : 0.0f;
                    }
                }
    }
}

int kiln_k_pool(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    pool_job j;
    j.kind = p[0];
    j.w.N = p[2];
    j.w.C = p[3];
    j.count_pad = p[4];
    j.storage_order = p[6];
    win3_read(&j.w, p[1], p + 7);
    j.y = bufs[0];
    j.idx = p[5] ? bufs[1] : NULL;
    j.x = bufs[p[5] ? 2 : 1];
    kiln_parallel_for(pool, j.w.N * j.w.C, pool_rows, &j);
    return 0;
}

int kiln_k_batchnorm(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t N = p[0], C = p[1], inner = p[2];
    double eps = kiln_p2d(p[3]);
    float *y = bufs[0];
    const float *x = bufs[1], *scale = bufs[2], *bias = bufs[3], *mean = bufs[4], *var = bufs[5];
    for (int64_t c = 0; c < C; c++) {
        float a = scale[c] / sqrtf(var[c] + (float)eps), b = bias[c] - mean[c] * a;
        for (int64_t n = 0; n < N; n++) {
            const float *xs = x + (n * C + c) * inner;
            float *ys = y + (n * C + c) * inner;
            for (int64_t i = 0; i < inner; i++) ys[i] = xs[i] * a + b;
        }
    }
    return 0;
}

int kiln_k_batchnorm_train(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t N = p[0], C = p[1], inner = p[2];
    double eps = kiln_p2d(p[3]), momentum = kiln_p2d(p[4]);
    float *y = bufs[0], *rmean = bufs[1], *rvar = bufs[2];
    const float *x = bufs[3], *scale = bufs[4], *bias = bufs[5], *mean = bufs[6], *var = bufs[7];
    double cnt = (double)(N * inner);
    for (int64_t c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) s += x[(n * C + c) * inner + i];
        double mu = cnt > 0 ? s / cnt : 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) {
                double d = x[(n * C + c) * inner + i] - mu;
                ss += d * d;
            }
        double v = cnt > 0 ? ss / cnt : 0;
        float a = (float)(scale[c] / sqrt(v + eps)), b = (float)(bias[c] - mu * a);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < inner; i++) y[(n * C + c) * inner + i] = x[(n * C + c) * inner + i] * a + b;
        rmean[c] = (float)(mean[c] * momentum + mu * (1 - momentum));
        rvar[c] = (float)(var[c] * momentum + v * (1 - momentum));
    }
    return 0;
}

/* Softmax and LogSoftmax over rows of len elements, inner apart: the maximum,
 * e^(x - max) with kiln_expf (vectorized when the row is contiguous), summed
 * in eight partial sums, then scaled (or log-sum subtracted). In parallel over
 * rows. */
typedef struct { const float *x; float *y; int64_t len, inner, lg; } softmax_job;

KILN_CLONES static void softmax_rows(void *arg, int64_t r0, int64_t r1) {
    const softmax_job *j = arg;
    int64_t len = j->len, inner = j->inner, lg = j->lg; /* locals: stores through y could alias *j */
    for (int64_t r = r0; r < r1; r++) {
        int64_t o = r / inner, i = r % inner;
        const float *xs = j->x + o * len * inner + i;
        float *ys = j->y + o * len * inner + i;
        float mx = -INFINITY, part[8] = {0};
        if (inner == 1) { /* contiguous: in 16 partial maxima (vectorized) */
            float m16[16];
            for (int q = 0; q < 16; q++) m16[q] = -INFINITY;
            int64_t k = 0;
            for (; k + 16 <= len; k += 16)
                for (int q = 0; q < 16; q++) m16[q] = xs[k + q] > m16[q] ? xs[k + q] : m16[q];
            for (; k < len; k++) mx = xs[k] > mx ? xs[k] : mx;
            for (int q = 0; q < 16; q++) mx = m16[q] > mx ? m16[q] : mx;
        } else
            for (int64_t k = 0; k < len; k++) if (xs[k * inner] > mx) mx = xs[k * inner];
        if (inner == 1 && !lg) { /* (LogSoftmax keeps x intact: y may be x) */
            for (int64_t k = 0; k < len; k++) ys[k] = kiln_expf(xs[k] - mx);
            int64_t k = 0;
            for (; k + 8 <= len; k += 8)
                for (int q = 0; q < 8; q++) part[q] += ys[k + q];
            for (; k < len; k++) part[k % 8] += ys[k];
        } else {
            for (int64_t k = 0; k < len; k++) {
                float e = kiln_expf(xs[k * inner] - mx);
                part[k % 8] += e;
                if (!lg) ys[k * inner] = e;
            }
        }
        float sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
        if (lg) {
            float ls = logf(sum);
            for (int64_t k = 0; k < len; k++) ys[k * inner] = xs[k * inner] - mx - ls;
        } else if (inner == 1) {
            float inv = 1.0f / sum;
            for (int64_t k = 0; k < len; k++) ys[k] = ys[k] * inv;
        } else {
            for (int64_t k = 0; k < len; k++) ys[k * inner] = ys[k * inner] / sum;
        }
    }
}

int kiln_k_softmax(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    softmax_job j = {bufs[1], bufs[0], p[1], p[2], p[3]};
    int64_t rows = p[0] * p[2];
    kiln_parallel_for(rows * j.len >= 32768 ? pool : NULL, rows, softmax_rows, &j);
    return 0;
}

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
    float *s = j->rows ? dw_scratch(R * N, 0, -2, N, 0) : NULL; /* the thread's buffer, kept: no allocation per run */
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
        softmax_job sj = {s, s, N, 1, 0};
        softmax_rows(&sj, 0, rows);
        kiln_sgemm_ex(NULL, rows, Dv, N, 1.0f, s, N, 0, NULL, v, vrs, 0, NULL, out, ors, &fresh);
    }
}

int kiln_k_attention(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int64_t nb = p[7], batches = 1;
    int64_t N = p[1], rows = N > ATTN_MAX_N ? 0 : N * ATTN_ROWS <= ATTN_BLOCK_FLOATS ? ATTN_ROWS : ATTN_BLOCK_FLOATS / N;
    if (N <= ATTN_MAX_N && rows < 1) rows = 1;
    int64_t R = rows ? rows : 1;
    attn_job j = {bufs[1], bufs[2], bufs[3], p[6] ? bufs[4] : NULL, bufs[0], p[0], N, p[2], p[3], p[4], nb, rows,
                  (p[0] + R - 1) / R, (float)kiln_p2d(p[5]), p + 8, {NULL}};
    for (int i = 0; i < 5; i++) j.str[i] = p + 8 + nb + i * (nb + 2);
    for (int64_t d = 0; d < nb; d++) batches *= p[8 + d];
    kiln_parallel_for(pool, batches * j.blocks, attention_blocks, &j);
    return 0;
}

/* Reductions: each element is transformed (|x|, x^2, exp(x - max)), combined
 * (sum, product, max, min), then the result transformed (mean, sqrt, log). */
static void reduce_pass(int64_t kind, int64_t rank, const int64_t *dims, const int64_t *ostr, const float *x,
                        float *y, const float *shift) {
    int64_t idx[KILN_MAX_RANK] = {0}, total = 1, off = 0;
    for (int64_t i = 0; i < rank; i++) total *= dims[i];
    for (int64_t n = 0; n < total; n++) {
        float v = x[n], *o = &y[off];
        switch (kind) {
        case 2: if (v > *o || v != v) *o = v; break;
        case 3: if (v < *o || v != v) *o = v; break;
        case 4: *o *= v; break;
        case 5: *o += fabsf(v); break;
        case 6: case 9: *o += v * v; break;
        case 8: *o += expf(v - shift[off]); break;
        default: *o += v;
        }
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++idx[d] < dims[d]) { off += ostr[d]; break; }
            off -= ostr[d] * (dims[d] - 1);
            idx[d] = 0;
        }
    }
}

#ifdef HAVE_AVX512_KERNELS
/* One contiguous row's sum-like reduction with AVX-512: two vectors of
 * partial sums, the tail by a masked load (GCC left the generic loop scalar
 * for its per-kind branches: 45 us for MobileNetV2's 1280 rows of 49). */
__attribute__((target("avx512f"))) static float row_reduce_avx512(int64_t kind, const float *x, int64_t len) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
#define RR_F(v) (kind == 5 ? _mm512_abs_ps(v) : kind == 6 || kind == 9 ? _mm512_mul_ps(v, v) : (v))
    int64_t l = 0;
    for (; l + 32 <= len; l += 32) {
        __m512 v0 = _mm512_loadu_ps(x + l), v1 = _mm512_loadu_ps(x + l + 16);
        a0 = _mm512_add_ps(a0, RR_F(v0));
        a1 = _mm512_add_ps(a1, RR_F(v1));
    }
    for (; l < len; l += 16) {
        __m512 v = _mm512_maskz_loadu_ps(row_lanes(0, len - l), x + l);
        a0 = _mm512_add_ps(a0, RR_F(v));
    }
#undef RR_F
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}
#endif

/* A sum-like reduction (sum, mean, |x|, x^2) over one run of axes, as
 * [outer, len, inner]: along contiguous rows with AVX-512, or elsewhere in 16
 * independent partial sums (vectorized), or, with inner > 1, row by row into
 * the outputs. */
KILN_CLONES static void reduce_runs(int64_t kind, int64_t outer, int64_t len, int64_t inner, const float *x, float *y) {
#ifdef HAVE_AVX512_KERNELS
    if (inner == 1 && kiln_have_avx512()) {
        for (int64_t o = 0; o < outer; o++) y[o] = row_reduce_avx512(kind, x + o * len, len);
        return;
    }
#endif
    for (int64_t o = 0; o < outer; o++) {
        const float *xs = x + o * len * inner;
        float *ys = y + o * inner;
        if (inner == 1) {
            float acc[16] = {0};
            int64_t l = 0;
            for (; l + 16 <= len; l += 16)
                for (int k = 0; k < 16; k++) {
                    float v = xs[l + k];
                    acc[k] += kind == 5 ? fabsf(v) : kind == 6 || kind == 9 ? v * v : v;
                }
            float s = 0;
            for (int k = 0; k < 16; k++) s += acc[k];
            for (; l < len; l++) s += kind == 5 ? fabsf(xs[l]) : kind == 6 || kind == 9 ? xs[l] * xs[l] : xs[l];
            ys[0] = s;
            continue;
        }
        for (int64_t l = 0; l < len; l++)
            for (int64_t i = 0; i < inner; i++) {
                float v = xs[l * inner + i];
                ys[i] += kind == 5 ? fabsf(v) : kind == 6 || kind == 9 ? v * v : v;
            }
    }
}

int kiln_k_reduce(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t kind = p[0], rank = p[1], mask = p[2 + rank];
    const int64_t *dims = p + 2;
    int64_t ostr[KILN_MAX_RANK], total = 1, ototal = 1;
    for (int64_t i = rank - 1; i >= 0; i--) {
        total *= dims[i];
        if (mask >> i & 1) ostr[i] = 0;
        else { ostr[i] = ototal; ototal *= dims[i]; }
    }
    float *y = bufs[0];
    const float *x = bufs[1];
    float init = kind == 2 || kind == 8 ? -INFINITY : kind == 3 ? INFINITY : kind == 4 ? 1.0f : 0.0f;
    for (int64_t o = 0; o < ototal; o++) y[o] = init;
    /* one run of reduced axes [a, b): outer x len x inner */
    int64_t a = 0, b;
    while (a < rank && !(mask >> a & 1)) a++;
    for (b = a; b < rank && (mask >> b & 1); b++) {}
    bool one_run = a < rank && (mask >> b) == 0;
    if (one_run && (kind == 0 || kind == 1 || kind == 5 || kind == 6 || kind == 7 || kind == 9)) {
        int64_t outer = 1, len = 1, inner = 1;
        for (int64_t i = 0; i < rank; i++) *(i < a ? &outer : i < b ? &len : &inner) *= dims[i];
        reduce_runs(kind, outer, len, inner, x, y);
    } else if (kind == 8) { /* log-sum-exp: the max first, then the shifted sum */
        float *mx = bufs[2];
        reduce_pass(2, rank, dims, ostr, x, y, NULL);
        for (int64_t o = 0; o < ototal; o++) { mx[o] = isinf(y[o]) ? 0.0f : y[o]; y[o] = 0; }
        reduce_pass(8, rank, dims, ostr, x, y, mx);
        for (int64_t o = 0; o < ototal; o++) y[o] = logf(y[o]) + mx[o];
        return 0;
    } else reduce_pass(kind, rank, dims, ostr, x, y, NULL);
    float cnt = ototal > 0 ? (float)(total / ototal) : 0;
    for (int64_t o = 0; o < ototal; o++) {
        if (kind == 1) y[o] = cnt > 0 ? y[o] / cnt : NAN;
        else if (kind == 6) y[o] = sqrtf(y[o]);
        else if (kind == 7) y[o] = logf(y[o]);
    }
    return 0;
}

int kiln_k_argmax(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t mn = p[0], outer = p[1], len = p[2], inner = p[3], last = p[4];
    int64_t *y = bufs[0];
    const float *x = bufs[1];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const float *xs = x + o * len * inner + i;
            int64_t best = 0;
            for (int64_t k = 1; k < len; k++) {
                float v = xs[k * inner], b = xs[best * inner];
                bool better = mn ? (v < b || (last && v == b)) : (v > b || (last && v == b));
                if (better) best = k;
            }
            y[o * inner + i] = best;
        }
    return 0;
}

typedef struct {
    int64_t inner;
    float eps;
    float *y, *mean, *inv;
    const float *x, *scale, *bias;
} ln_job;

/* Rows of LayerNormalization: the mean and the centred sum of squares each in
 * 16 float partial sums (vectorized; combined in double), then one pass that
 * scales and shifts. The double sums of one element at a time it replaced
 * were a scalar loop: 0.22 ms per BERT-base LayerNorm of 128 x 768. */
KILN_CLONES static void layernorm_rows(void *arg, int64_t r0, int64_t r1) {
    const ln_job *j = arg;
    int64_t n = j->inner;
    for (int64_t o = r0; o < r1; o++) {
        const float *xs = j->x + o * n;
        float *ys = j->y + o * n;
        float acc[16] = {0};
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) acc[k] += xs[i + k];
        double s = 0;
        for (int k = 0; k < 16; k++) s += acc[k];
        for (; i < n; i++) s += xs[i];
        float mu = n ? (float)(s / (double)n) : 0.0f;
        for (int k = 0; k < 16; k++) acc[k] = 0;
        for (i = 0; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++) acc[k] += (xs[i + k] - mu) * (xs[i + k] - mu);
        double ss = 0;
        for (int k = 0; k < 16; k++) ss += acc[k];
        for (; i < n; i++) ss += (double)((xs[i] - mu) * (xs[i] - mu));
        float is = (float)(1.0 / sqrt((n ? ss / (double)n : 0) + (double)j->eps));
        if (j->bias)
            for (i = 0; i < n; i++) ys[i] = (xs[i] - mu) * is * j->scale[i] + j->bias[i];
        else
            for (i = 0; i < n; i++) ys[i] = (xs[i] - mu) * is * j->scale[i];
        j->mean[o] = mu;
        j->inv[o] = is;
    }
}

int kiln_k_layernorm(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    int64_t outer = p[0], inner = p[1], has_bias = p[3];
    ln_job j = {inner, (float)kiln_p2d(p[2]), bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], has_bias ? bufs[5] : NULL};
    if (outer * inner < 16384) layernorm_rows(&j, 0, outer);
    else kiln_parallel_for(pool, outer, layernorm_rows, &j);
    return 0;
}

int kiln_k_gather_elements(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], rank = p[1], axis = p[2 + 2 * rank], idx_esize = p[3 + 2 * rank];
    const int64_t *idims = p + 2, *ddims = p + 2 + rank;
    int64_t dstr[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0}, total = 1;
    for (int64_t i = rank - 1, st = 1; i >= 0; i--) { dstr[i] = st; st *= ddims[i]; total *= idims[i]; }
    char *out = bufs[0];
    const char *data = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        int64_t k = idx_esize == 8 ? ((const int64_t *)bufs[2])[n] : ((const int32_t *)bufs[2])[n];
        if (k < 0) k += ddims[axis];
        int64_t off = 0;
        for (int64_t d = 0; d < rank; d++) off += (d == axis ? k : idx[d]) * dstr[d];
        if (k < 0 || k >= ddims[axis]) return KILN_E_INDEX;
        memcpy(out + n * esize, data + off * esize, (size_t)esize);
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++idx[d] < idims[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

int kiln_k_trilu(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], batch = p[1], rows = p[2], cols = p[3], k = p[4], upper = p[5];
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

int kiln_k_cumsum(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t outer = p[0], len = p[1], inner = p[2], excl = p[3], rev = p[4];
    float *y = bufs[0];
    const float *x = bufs[1];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double acc = 0;
            for (int64_t t = 0; t < len; t++) {
                int64_t k = rev ? len - 1 - t : t, at = (o * len + k) * inner + i;
                if (excl) { y[at] = (float)acc; acc += x[at]; }
                else { acc += x[at]; y[at] = (float)acc; }
            }
        }
    return 0;
}

int kiln_k_nll(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t N = p[0], C = p[1], D = p[2], red = p[3], has_w = p[4], has_ig = p[5], ig = p[6], tes = p[7];
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

int kiln_k_pad(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], rank = p[1], mode = p[2 + 3 * rank], has_val = p[3 + 3 * rank];
    const int64_t *in_dims = p + 2, *out_dims = p + 2 + rank, *pb = p + 2 + 2 * rank;
    int64_t istr[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0}, total = 1;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { istr[i] = s; s *= in_dims[i]; total *= out_dims[i]; }
    char *out = bufs[0];
    const char *in = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        int64_t off = 0;
        bool inside = true;
        for (int64_t d = 0; d < rank && inside; d++) {
            int64_t i = idx[d] - pb[d], len = in_dims[d];
            if (i < 0 || i >= len) {
                if (mode == 0 || len == 0) inside = false;
                else if (mode == 2) i = i < 0 ? 0 : len - 1;
                else {
                    int64_t period = 2 * (len - 1);
                    if (period == 0) i = 0;
                    else { i = ((i % period) + period) % period; if (i >= len) i = period - i; }
                }
            }
            off += i * istr[d];
        }
        if (inside) memcpy(out + n * esize, in + off * esize, (size_t)esize);
        else if (has_val) memcpy(out + n * esize, bufs[2], (size_t)esize);
        else memset(out + n * esize, 0, (size_t)esize);
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++idx[d] < out_dims[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

int kiln_k_tile(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], rank = p[1];
    const int64_t *in_dims = p + 2, *out_dims = p + 2 + rank;
    int64_t istr[KILN_MAX_RANK], idx[KILN_MAX_RANK] = {0}, total = 1;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { istr[i] = s; s *= in_dims[i]; total *= out_dims[i]; }
    char *out = bufs[0];
    const char *in = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        int64_t off = 0;
        for (int64_t d = 0; d < rank; d++) off += (idx[d] % in_dims[d]) * istr[d];
        memcpy(out + n * esize, in + off * esize, (size_t)esize);
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++idx[d] < out_dims[d]) break;
            idx[d] = 0;
        }
    }
    return 0;
}

int kiln_k_hardmax(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t outer = p[0], len = p[1], inner = p[2];
    float *y = bufs[0];
    const float *x = bufs[1];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t best = 0;
            for (int64_t k = 0; k < len; k++) {
                if (x[(o * len + k) * inner + i] > x[(o * len + best) * inner + i]) best = k;
                y[(o * len + k) * inner + i] = 0;
            }
            if (len) y[(o * len + best) * inner + i] = 1;
        }
    return 0;
}

int kiln_k_instancenorm(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t N = p[0], C = p[1], inner = p[2];
    double eps = kiln_p2d(p[3]);
    float *y = bufs[0];
    const float *x = bufs[1], *scale = bufs[2], *bias = bufs[3];
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) {
            const float *xs = x + (n * C + c) * inner;
            float *ys = y + (n * C + c) * inner;
            double s = 0, ss = 0;
            for (int64_t i = 0; i < inner; i++) s += xs[i];
            double mu = inner ? s / (double)inner : 0;
            for (int64_t i = 0; i < inner; i++) ss += (xs[i] - mu) * (xs[i] - mu);
            double a = scale[c] / sqrt((inner ? ss / (double)inner : 0) + eps);
            for (int64_t i = 0; i < inner; i++) ys[i] = (float)((xs[i] - mu) * a + bias[c]);
        }
    return 0;
}

/* Top-k by selection: each of the k picks scans the row for the best remaining
 * element; ties keep the lower index first. */
/* TopK: per line along the axis, a stable merge sort of the indices by value
 * (largest or smallest first; NaN counts as the largest; equal values keep
 * the lower index first), of which the first k are written: O(len log len)
 * per line. bufs[3]: scratch of 2 x len int64 and len floats. */
typedef struct { const float *v; int64_t largest; } topk_order;

static bool topk_before(int64_t a, int64_t b, const void *c) {
    const topk_order *o = c;
    float x = o->v[a], y = o->v[b];
    bool xn = x != x, yn = y != y;
    if (xn || yn) return xn && !yn ? o->largest != 0 : !xn && yn ? o->largest == 0 : false;
    return o->largest ? x > y : x < y;
}

int kiln_k_topk(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t outer = p[0], len = p[1], inner = p[2], k = p[3];
    float *v = bufs[0];
    int64_t *ix = bufs[1];
    const float *x = bufs[2];
    int64_t *idx = bufs[3], *tmp = idx + len;
    if (k < 0) { /* K given at run time, clamped to the axis: the outputs' dims are written */
        k = *(const int64_t *)bufs[4];
        k = k < 0 ? 0 : k > len ? len : k;
        for (int s = 5; s <= 6; s++)
            for (int64_t r = 0; r < p[7]; r++) ((int64_t *)bufs[s])[r] = r == p[6] ? k : p[8 + r];
    }
    float *line = (float *)(tmp + len);
    topk_order ord = {line, p[4]};
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            for (int64_t t = 0; t < len; t++) { line[t] = x[(o * len + t) * inner + i]; idx[t] = t; }
            kiln_sort_indices(idx, tmp, len, topk_before, &ord);
            for (int64_t j = 0; j < k; j++) {
                ix[(o * k + j) * inner + i] = idx[j];
                v[(o * k + j) * inner + i] = line[idx[j]];
            }
        }
    return 0;
}

/* Transposed convolution by scattering: every input element adds its products
 * with the kernel into the outputs it reaches. Parallel over (n, output channel
 * group) is not safe for scatter, so threads split images and groups. */
static void convt_rows(void *arg, int64_t r0, int64_t r1) {
    const conv_job *j = arg;
    const win3 *w = &j->w;
    int64_t cpg = w->C / w->group, mpg = w->M / w->group;
    int64_t isz = w->in[0] * w->in[1] * w->in[2], osz = w->out[0] * w->out[1] * w->out[2], ksz = w->k[0] * w->k[1] * w->k[2];
    for (int64_t r = r0; r < r1; r++) { /* r = n * group + g */
        int64_t n = r / w->group, g = r % w->group;
        float *y = j->y + (n * w->M + g * mpg) * osz;
        for (int64_t m = 0; m < mpg; m++)
            for (int64_t o = 0; o < osz; o++) y[m * osz + o] = j->b ? j->b[g * mpg + m] : 0.0f;
        for (int64_t c = 0; c < cpg; c++) {
            const float *x = j->x + (n * w->C + g * cpg + c) * isz;
            for (int64_t id = 0; id < w->in[0]; id++)
                for (int64_t ih = 0; ih < w->in[1]; ih++)
                    for (int64_t iw = 0; iw < w->in[2]; iw++) {
                        float xv = x[(id * w->in[1] + ih) * w->in[2] + iw];
                        for (int64_t m = 0; m < mpg; m++) {
                            const float *wk = j->wt + ((g * cpg + c) * mpg + m) * ksz;
                            float *ym = y + m * osz;
                            for (int64_t kd = 0; kd < w->k[0]; kd++) {
                                int64_t od = id * w->stride[0] - w->pad[0] + kd * w->dil[0];
                                if (od < 0 || od >= w->out[0]) continue;
                                for (int64_t kh = 0; kh < w->k[1]; kh++) {
                                    int64_t oh = ih * w->stride[1] - w->pad[1] + kh * w->dil[1];
                                    if (oh < 0 || oh >= w->out[1]) continue;
                                    for (int64_t kw = 0; kw < w->k[2]; kw++) {
                                        int64_t ow = iw * w->stride[2] - w->pad[2] + kw * w->dil[2];
                                        if (ow < 0 || ow >= w->out[2]) continue;
                                        ym[(od * w->out[1] + oh) * w->out[2] + ow] += xv * wk[(kd * w->k[1] + kh) * w->k[2] + kw];
                                    }
                                }
                            }
                        }
                    }
        }
    }
}

int kiln_k_conv_transpose(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    conv_job j;
    conv_read(&j, bufs, p);
    kiln_parallel_for(pool, j.w.N * j.w.group, convt_rows, &j);
    return 0;
}

/* Resize, separable: per dimension each output coordinate maps back to an
 * input coordinate (coord: 0 half_pixel, 1 pytorch_half_pixel, 2 align_corners,
 * 3 asymmetric, 4 tf_half_pixel_for_nn, 5 tf_crop_and_resize) and reads 1
 * (nearest), 2 (linear) or 4 (cubic) taps; the output is the weighted sum over
 * the product of every dimension's taps. */
static bool resize_taps(const int64_t *p, int64_t rank, int64_t d, int64_t x, int64_t *idx, double *w, int *nt) {
    const int64_t *in_d = p + 1, *out_d = p + 1 + rank;
    int64_t mode = p[1 + 2 * rank], coord = p[2 + 2 * rank], nmode = p[3 + 2 * rank], excl = p[4 + 2 * rank];
    double A = kiln_p2d(p[5 + 2 * rank]);
    double scale = kiln_p2d(p[7 + 2 * rank + d]), rs = kiln_p2d(p[7 + 3 * rank + d]), re = kiln_p2d(p[7 + 4 * rank + d]);
    int64_t in = in_d[d], out = out_d[d];
    double xo;
    switch (coord) {
    case 1: xo = out > 1 ? (x + 0.5) / scale - 0.5 : 0; break;
    case 2: { /* the resized length is in * scale, unrounded, as the ONNX reference has it */
        double lr = (double)in * scale;
        xo = (out == 1 || lr <= 1) ? 0 : (double)x * (double)(in - 1) / (lr - 1);
        break;
    }
    case 3: xo = x / scale; break;
    case 4: xo = (x + 0.5) / scale; break;
    case 5:
        xo = out > 1 ? rs * (in - 1) + x * (re - rs) * (in - 1) / (double)(out - 1) : 0.5 * (rs + re) * (in - 1);
        if (xo < 0 || xo > in - 1) return false;
        break;
    default: xo = (x + 0.5) / scale - 0.5;
    }
    if (mode == 0) {
        double r;
        if (nmode == 2) r = floor(xo);
        else if (nmode == 3) r = ceil(xo);
        else if (nmode == 1) r = (xo - floor(xo) == 0.5) ? ceil(xo) : round(xo); /* round_prefer_ceil */
        else r = (xo - floor(xo) == 0.5) ? floor(xo) : round(xo);             /* round_prefer_floor */
        int64_t i = (int64_t)r;
        idx[0] = i < 0 ? 0 : (i >= in ? in - 1 : i);
        w[0] = 1;
        *nt = 1;
    } else if (mode == 1) {
        double c = xo < 0 ? 0 : (xo > in - 1 ? in - 1 : xo);
        int64_t i0 = (int64_t)floor(c);
        idx[0] = i0;
        idx[1] = i0 + 1 < in ? i0 + 1 : in - 1;
        w[1] = c - i0;
        w[0] = 1 - w[1];
        *nt = 2;
    } else {
        int64_t i = (int64_t)floor(xo);
        double t = xo - i, sum = 0;
        double tt[4] = {t + 1, t, 1 - t, 2 - t};
        for (int k = 0; k < 4; k++) {
            double u = tt[k];
            w[k] = (k == 0 || k == 3) ? ((A * u - 5 * A) * u + 8 * A) * u - 4 * A : ((A + 2) * u - (A + 3)) * u * u + 1;
            int64_t j = i - 1 + k;
            if (excl && (j < 0 || j >= in)) w[k] = 0;
            idx[k] = j < 0 ? 0 : (j >= in ? in - 1 : j);
            sum += w[k];
        }
        if (excl && sum != 0) for (int k = 0; k < 4; k++) w[k] /= sum;
        *nt = 4;
    }
    return true;
}

int kiln_k_resize(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t rank = p[0];
    const int64_t *in_d = p + 1, *out_d = p + 1 + rank;
    float extrap = (float)kiln_p2d(p[6 + 2 * rank]);
    int64_t istr[KILN_MAX_RANK], oidx[KILN_MAX_RANK] = {0}, total = 1;
    for (int64_t i = rank - 1, s = 1; i >= 0; i--) { istr[i] = s; s *= in_d[i]; total *= out_d[i]; }
    float *y = bufs[0];
    const float *x = bufs[1];
    for (int64_t n = 0; n < total; n++) {
        int64_t tidx[KILN_MAX_RANK][4];
        double tw[KILN_MAX_RANK][4];
        int nt[KILN_MAX_RANK];
        bool ok = true;
        for (int64_t d = 0; d < rank && ok; d++) ok = resize_taps(p, rank, d, oidx[d], tidx[d], tw[d], &nt[d]);
        if (!ok) y[n] = extrap;
        else {
            int cur[KILN_MAX_RANK] = {0};
            double acc = 0;
            for (;;) {
                double wgt = 1;
                int64_t off = 0;
                for (int64_t d = 0; d < rank; d++) { wgt *= tw[d][cur[d]]; off += tidx[d][cur[d]] * istr[d]; }
                if (wgt != 0) acc += wgt * x[off];
                int64_t d = rank - 1;
                for (; d >= 0; d--) { if (++cur[d] < nt[d]) break; cur[d] = 0; }
                if (d < 0) break;
            }
            y[n] = (float)acc;
        }
        for (int64_t d = rank - 1; d >= 0; d--) {
            if (++oidx[d] < out_d[d]) break;
            oidx[d] = 0;
        }
    }
    return 0;
}

/* GatherND with batch_dims folded into `batch`: for each batch and each index
 * tuple (last entries), copy one contiguous slice. */
int kiln_k_gather_nd(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], batch = p[1], n_idx = p[2], last = p[3], slice = p[4], bstride = p[5 + last];
    const int64_t *dd = p + 5;
    char *out = bufs[0];
    const char *data = bufs[1];
    const int64_t *idx = bufs[2];
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < n_idx; i++) {
            const int64_t *t = idx + (b * n_idx + i) * last;
            int64_t off = 0;
            bool ok = true;
            for (int64_t k = 0; k < last; k++) {
                int64_t v = t[k] < 0 ? t[k] + dd[k] : t[k];
                if (v < 0 || v >= dd[k]) ok = false;
                off = off * dd[k] + v;
            }
            char *dst = out + (b * n_idx + i) * slice * esize;
            if (!ok) memset(dst, 0, (size_t)(slice * esize));
            else memcpy(dst, data + (b * bstride + off * slice) * esize, (size_t)(slice * esize));
        }
    return 0;
}

static void scatter_put(char *dst, const char *src, int64_t esize, int64_t red) {
    if (red == 0) { memcpy(dst, src, (size_t)esize); return; }
    float a, b;
    memcpy(&a, dst, 4);
    memcpy(&b, src, 4);
    a = red == 1 ? a + b : a * b;
    memcpy(dst, &a, 4);
}

/* ScatterElements (kind 0) and ScatterND (kind 1) on a copy of data. */
int kiln_k_scatter(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], kind = p[1], red = p[2], n_upd = p[3], ax = p[4], rank = p[5];
    const int64_t *dims = p + 6, *ud = p + 7 + rank;
    int64_t ies = p[6 + rank];
    int64_t str[KILN_MAX_RANK], total = 1;
    for (int64_t i = rank - 1, st = 1; i >= 0; i--) { str[i] = st; st *= dims[i]; total *= dims[i]; }
    char *out = bufs[0];
    if (out != bufs[1]) memcpy(out, bufs[1], (size_t)(total * esize));
    const char *upd = bufs[3];
#define IDX(k) (ies == 8 ? ((const int64_t *)bufs[2])[k] : ((const int32_t *)bufs[2])[k])
    if (kind == 0) {
        int64_t uidx[KILN_MAX_RANK] = {0};
        for (int64_t n = 0; n < n_upd; n++) {
            int64_t v = IDX(n);
            if (v < 0) v += dims[ax];
            if (v >= 0 && v < dims[ax]) {
                int64_t off = 0;
                for (int64_t d = 0; d < rank; d++) off += (d == ax ? v : uidx[d]) * str[d];
                scatter_put(out + off * esize, upd + n * esize, esize, red);
            }
            for (int64_t d = rank - 1; d >= 0; d--) { if (++uidx[d] < ud[d]) break; uidx[d] = 0; }
        }
    } else {
        int64_t last = ax, slice = 1;
        for (int64_t d = last; d < rank; d++) slice *= dims[d];
        for (int64_t n = 0; n < n_upd; n++) {
            int64_t off = 0;
            bool ok = true;
            for (int64_t k = 0; k < last; k++) {
                int64_t v = IDX(n * last + k);
                if (v < 0) v += dims[k];
                if (v < 0 || v >= dims[k]) ok = false;
                off += v * str[k];
            }
            if (!ok) continue;
            for (int64_t e = 0; e < slice; e++) scatter_put(out + (off + e) * esize, upd + (n * slice + e) * esize, esize, red);
        }
    }
#undef IDX
    return 0;
}

int kiln_k_onehot(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    int64_t esize = p[0], outer = p[1], depth = p[2], inner = p[3];
    char *out = bufs[0];
    const float *idx = bufs[1];
    const char *vals = bufs[2];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < depth; k++)
            for (int64_t i = 0; i < inner; i++) {
                float f = idx[o * inner + i];
                int64_t v = (int64_t)f;
                if (v < 0) v += depth;
                memcpy(out + ((o * depth + k) * inner + i) * esize, vals + (v == k ? esize : 0), (size_t)esize);
            }
    return 0;
}
