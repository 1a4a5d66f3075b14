/* reduce.c: the reductions on float32: ReduceSum, ReduceMean, ReduceMax,
 * ReduceMin, ReduceProd, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp and
 * ReduceSumSquare over any set of axes (and the global pools), ArgMax and
 * ArgMin, and CumSum (accumulated in double).
 *
 * A reduction transforms each element (|x|, x^2, exp(x - max)), combines them
 * (sum, product, max, min), then transforms the result (mean, sqrt, log). A
 * sum-like one over a single run of axes goes row by row: contiguous rows with
 * AVX-512 (x86/reduce_avx512.c) where the CPU has it, else in 16 partial sums
 * the compiler vectorizes; any other walks the input once in order, each
 * element into its output. Max and min let a NaN win. */
#include "kiln_internal.h"
#include "x86/x86.h"

#include <stdbool.h>

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

/* A sum-like reduction (sum, mean, |x|, x^2) over one run of axes, as
 * [outer, len, inner]: along contiguous rows with AVX-512, or elsewhere in 16
 * independent partial sums (vectorized), or, with inner > 1, row by row into
 * the outputs. */
KILN_CLONES static void reduce_runs(int64_t kind, int64_t outer, int64_t len, int64_t inner, const float *x, float *y) {
#ifdef HAVE_AVX512_KERNELS
    if (inner == 1 && kiln_have_avx512()) {
        kiln_reduce_rows_avx512(kind, outer, len, x, y);
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

KILN_KERNEL(reduce, "out <- in, scratch (f32; scratch of one float per output, used by log_sum_exp)",
    F(kind /* 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 l1, 6 l2, 7 log_sum, 8 log_sum_exp, 9 sum_square */) F(rank) A(dims, KILN_MAX_RANK) F(reduce_mask))
int kiln_k_reduce(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_reduce *q = KILN_P(reduce, p);
    int64_t kind = q->kind, rank = q->rank, mask = q->reduce_mask;
    const int64_t *dims = q->dims;
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

KILN_KERNEL(argmax, "out (i64) <- in (f32)", F(min /* 0 argmax, 1 argmin */) F(outer) F(len) F(inner) F(select_last_index))
int kiln_k_argmax(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_argmax *q = KILN_P(argmax, p);
    int64_t mn = q->min, outer = q->outer, len = q->len, inner = q->inner, last = q->select_last_index;
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

KILN_KERNEL(cumsum, "out <- in (f32)", F(outer) F(len) F(inner) F(exclusive) F(reverse))
int kiln_k_cumsum(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_cumsum *q = KILN_P(cumsum, p);
    int64_t outer = q->outer, len = q->len, inner = q->inner, excl = q->exclusive, rev = q->reverse;
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
