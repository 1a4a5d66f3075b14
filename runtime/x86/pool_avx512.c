/* pool_avx512.c: 2-D max pooling for AVX-512, which pool.c calls for a plane
 * when kiln_have_avx512(): 16 output columns per vector, each tap one masked
 * load (lanes outside the row read -inf, so padding never wins), stride 2 by
 * the even-column permute. Returns false where the shape does not fit. */
#include "x86.h"

#ifdef HAVE_AVX512_KERNELS

/* 2-D max pooling (dilation 1, stride 1 or 2) with AVX-512: 16 output columns
 * per vector, each tap a load whose lanes outside the row read -inf (padding
 * never wins), stride 2 by the even-column permute of the depthwise kernel.
 * The maximum starts from the window's first tap and takes a tap only when it
 * is greater, as the scalar loops do (a NaN first element stays); where the
 * first tap is padding, a NaN first valid element is passed over. The strided
 * scalar loops it replaced took 0.32 ms for ResNet-18's 64 x 112 x 112 at two
 * threads (ONNX Runtime 0.07). */
__attribute__((target("avx512f"))) bool kiln_maxpool_avx512(const win3 *w, const float *x, float *y) {
    int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2], KH = w->k[1], KW = w->k[2];
    int64_t s = w->stride[1], ph = w->pad[1], pw = w->pad[2], nv = (OW + 15) / 16;
    if (nv > DW_MAXV || KW > TAP_MAXKW || (s != 1 && s != 2) || w->stride[2] != s || w->dil[1] != 1 || w->dil[2] != 1) return false;
    __mmask16 mk[DW_MAXV][TAP_MAXKW][2], om[DW_MAXV];
    kiln_tap_masks(nv, KW, s, pw, W, mk);
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
