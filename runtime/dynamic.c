/* dynamic.c: kernels whose output size depends on the data: NonZero, Unique,
 * NonMaxSuppression.
 *
 * Each output buffer is sized for the largest result; the kernel writes the
 * result compactly (row-major for the sizes it found) and the sizes into the
 * output's shape buffer, which the generated code copies out with and returns
 * from PREFIX_output_shape. Orders follow ONNX Runtime: Unique sorts slices
 * lexicographically (stable, so ties keep their first occurrence), NMS takes
 * boxes by descending score, lower index first among equal scores. */
#include "kiln_rt.h"

#include <string.h>

/* Element kinds: 0 signed integer, 1 unsigned (and bool), 2 float32, 3 float64. */
static int cmp_elem(const unsigned char *a, const unsigned char *b, int64_t es, int kind) {
    if (kind == 2) { float x, y; memcpy(&x, a, 4); memcpy(&y, b, 4); return x < y ? -1 : x > y; }
    if (kind == 3) { double x, y; memcpy(&x, a, 8); memcpy(&y, b, 8); return x < y ? -1 : x > y; }
    if (kind == 0) {
        int64_t x = es == 1 ? *(const int8_t *)a : es == 2 ? *(const int16_t *)a : es == 4 ? *(const int32_t *)a : *(const int64_t *)a;
        int64_t y = es == 1 ? *(const int8_t *)b : es == 2 ? *(const int16_t *)b : es == 4 ? *(const int32_t *)b : *(const int64_t *)b;
        return x < y ? -1 : x > y;
    }
    uint64_t x = 0, y = 0;
    memcpy(&x, a, (size_t)es);
    memcpy(&y, b, (size_t)es);
    return x < y ? -1 : x > y;
}

static bool nonzero_elem(const unsigned char *p, int64_t es, int kind) {
    if (kind == 2) { float x; memcpy(&x, p, 4); return x != 0; }
    if (kind == 3) { double x; memcpy(&x, p, 8); return x != 0; }
    if (kind == 4) { uint16_t h; memcpy(&h, p, 2); return (h & 0x7fff) != 0; } /* float16 / bfloat16 */
    for (int64_t i = 0; i < es; i++) if (p[i]) return true;
    return false;
}

int kiln_k_nonzero(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    int64_t rank = p[0], numel = p[1], es = p[2], kind = p[3], cnt = 0;
    const int64_t *dims = p + 4;
    int64_t *out = b[0], *shape = b[1];
    const unsigned char *x = b[2];
    for (int64_t i = 0; i < numel; i++) cnt += nonzero_elem(x + i * es, es, (int)kind);
    shape[0] = rank;
    shape[1] = cnt;
    int64_t j = 0;
    for (int64_t i = 0; i < numel; i++) {
        if (!nonzero_elem(x + i * es, es, (int)kind)) continue;
        for (int64_t r = rank - 1, rem = i; r >= 0; r--) {
            out[r * cnt + j] = rem % dims[r];
            rem /= dims[r];
        }
        j++;
    }
    return 0;
}

typedef struct { const unsigned char *x; int64_t outer, len, inner, es; int kind; } slices;

/* slice i (x[o, i, :] for every o) against slice j */
static int cmp_slice(const slices *s, int64_t i, int64_t j) {
    for (int64_t o = 0; o < s->outer; o++)
        for (int64_t k = 0; k < s->inner; k++) {
            int c = cmp_elem(s->x + ((o * s->len + i) * s->inner + k) * s->es, s->x + ((o * s->len + j) * s->inner + k) * s->es, s->es, s->kind);
            if (c) return c;
        }
    return 0;
}

static bool slice_before(int64_t a, int64_t b, const void *c) { return cmp_slice(c, a, b) < 0; }

int kiln_k_unique(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    slices s = {b[7], p[0], p[1], p[2], p[3], (int)p[4]};
    int sorted = (int)p[5];
    int64_t len = s.len, *y_shape = b[1], *indices = b[2], *idx_shape = b[3], *inverse = b[4], *counts = b[5], *cnt_shape = b[6];
    int64_t *order = b[8], *tmp = order + len, *group = tmp + len, *uid = group + len;
    for (int64_t i = 0; i < len; i++) order[i] = i;
    kiln_sort_indices(order, tmp, len, slice_before, &s);
    int64_t k = 0; /* groups of equal slices, in sorted order; group's first index = its first member */
    for (int64_t i = 0; i < len; i++) {
        if (i == 0 || cmp_slice(&s, order[i - 1], order[i]) != 0) tmp[k++] = order[i];
        group[order[i]] = k - 1;
    }
    /* the unique slices' order: sorted, or by first occurrence */
    for (int64_t g = 0; g < k; g++) uid[g] = g;
    if (!sorted) {
        int64_t u = 0;
        for (int64_t i = 0; i < len; i++) order[i] = -1;
        for (int64_t g = 0; g < k; g++) order[tmp[g]] = g; /* order: reused, first index -> group */
        for (int64_t i = 0; i < len; i++) if (order[i] >= 0) uid[order[i]] = u++;
    }
    for (int64_t g = 0; g < k; g++) { indices[uid[g]] = tmp[g]; counts[uid[g]] = 0; }
    for (int64_t i = 0; i < len; i++) { inverse[i] = uid[group[i]]; counts[inverse[i]]++; }
    unsigned char *y = b[0];
    size_t row = (size_t)(s.inner * s.es);
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t u = 0; u < k; u++) memcpy(y + (o * k + u) * row, s.x + (o * len + indices[u]) * row, row);
    for (int64_t r = 0; r < p[7]; r++) y_shape[r] = r == p[6] ? k : p[8 + r];
    idx_shape[0] = cnt_shape[0] = k;
    return 0;
}

typedef struct { const float *scores; } by_score;

static bool score_before(int64_t a, int64_t b, const void *c) {
    const float *s = ((const by_score *)c)->scores;
    return s[a] > s[b] || (s[a] == s[b] && a < b);
}

static void box_corners(const float *bx, int center, float *y1, float *x1, float *y2, float *x2) {
    if (center) {
        *x1 = bx[0] - bx[2] / 2, *x2 = bx[0] + bx[2] / 2, *y1 = bx[1] - bx[3] / 2, *y2 = bx[1] + bx[3] / 2;
    } else {
        *y1 = bx[0] < bx[2] ? bx[0] : bx[2], *y2 = bx[0] < bx[2] ? bx[2] : bx[0];
        *x1 = bx[1] < bx[3] ? bx[1] : bx[3], *x2 = bx[1] < bx[3] ? bx[3] : bx[1];
    }
}

static bool suppresses(const float *a, const float *c, int center, float iou_threshold) {
    float ay1, ax1, ay2, ax2, cy1, cx1, cy2, cx2;
    box_corners(a, center, &ay1, &ax1, &ay2, &ax2);
    box_corners(c, center, &cy1, &cx1, &cy2, &cx2);
    float ih = (ay2 < cy2 ? ay2 : cy2) - (ay1 > cy1 ? ay1 : cy1), iw = (ax2 < cx2 ? ax2 : cx2) - (ax1 > cx1 ? ax1 : cx1);
    if (ih <= 0 || iw <= 0) return false;
    float inter = ih * iw, area_a = (ay2 - ay1) * (ax2 - ax1), area_c = (cy2 - cy1) * (cx2 - cx1), uni = area_a + area_c - inter;
    if (area_a <= 0 || area_c <= 0 || uni <= 0) return false;
    return inter / uni > iou_threshold;
}

int kiln_k_nms(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    int64_t B = p[0], N = p[1], C = p[2], per_class = p[7];
    int center = (int)p[3], q = 4;
    int64_t *out = b[0], *shape = b[1];
    const float *boxes = b[2], *scores = b[3];
    int64_t max_out = p[4] ? *(const int64_t *)b[q++] : 0;
    float iou = p[5] ? *(const float *)b[q++] : 0.0f;
    bool has_thr = p[6];
    float thr = has_thr ? *(const float *)b[q++] : 0.0f;
    int64_t *cand = b[q], *tmp = cand + N, *sel = tmp + N;
    if (max_out > per_class) max_out = per_class; /* the compile-time bound */
    int64_t rows = 0;
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t c = 0; c < C; c++) {
            const float *sc = scores + (bi * C + c) * N;
            int64_t n = 0, ns = 0;
            for (int64_t i = 0; i < N; i++) if (!has_thr || sc[i] > thr) cand[n++] = i;
            by_score ctx = {sc};
            kiln_sort_indices(cand, tmp, n, score_before, &ctx);
            for (int64_t i = 0; i < n && ns < max_out; i++) {
                const float *bx = boxes + (bi * N + cand[i]) * 4;
                bool keep = true;
                for (int64_t j = 0; j < ns && keep; j++) keep = !suppresses(boxes + (bi * N + sel[j]) * 4, bx, center, iou);
                if (!keep) continue;
                sel[ns++] = cand[i];
                out[rows * 3] = bi, out[rows * 3 + 1] = c, out[rows * 3 + 2] = cand[i];
                rows++;
            }
        }
    shape[0] = rows;
    shape[1] = 3;
    return 0;
}
