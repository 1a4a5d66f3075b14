/* detection.c: the object-detection kernels. RoiAlign averages (or takes the
 * maximum of) bilinear samples on a grid in each output bin, with ONNX
 * Runtime's rules at the borders. MaxRoiPool takes the maximum of each bin of
 * a region rounded to whole pixels (Caffe's ROI pooling). NonMaxSuppression, whose output is sized at
 * run time, writes the selected rows compactly and their count into its shape
 * buffer (see index.c's NonZero); it takes boxes by descending score, lower
 * index first among equal scores, as ONNX Runtime does. */
#include "kiln_params.h"

#include <math.h>
#include <string.h>

/* One bilinear sample of a H x W plane at (y, x) with its four weights, or
 * nothing when the point is more than one pixel outside. */
static int roi_sample(float y, float x, int64_t H, int64_t W, int64_t pos[4], float w[4]) {
    if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W) return 0;
    if (y <= 0) y = 0;
    if (x <= 0) x = 0;
    int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1, x1;
    if (y0 >= H - 1) { y1 = y0 = H - 1; y = (float)y0; } else y1 = y0 + 1;
    if (x0 >= W - 1) { x1 = x0 = W - 1; x = (float)x0; } else x1 = x0 + 1;
    float ly = y - (float)y0, lx = x - (float)x0, hy = 1 - ly, hx = 1 - lx;
    pos[0] = y0 * W + x0; pos[1] = y0 * W + x1; pos[2] = y1 * W + x0; pos[3] = y1 * W + x1;
    w[0] = hy * hx; w[1] = hy * lx; w[2] = ly * hx; w[3] = ly * lx;
    return 1;
}

KILN_KERNEL(roi_align, "out <- x, rois (f32), batch_indices (i64)", F(N) F(C) F(H) F(W) F(R) F(out_h) F(out_w) F(sampling_ratio) D(spatial_scale) F(half_pixel) F(max_mode))
int kiln_k_roi_align(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_roi_align *q = KILN_P(roi_align, p);
    int64_t N = q->N, C = q->C, H = q->H, W = q->W, R = q->R, oh = q->out_h, ow = q->out_w, ratio = q->sampling_ratio;
    float scale = (float)kiln_p2d(q->spatial_scale), off = q->half_pixel ? 0.5f : 0.0f;
    int max_mode = (int)q->max_mode;
    float *y = bufs[0];
    const float *x = bufs[1], *rois = bufs[2];
    const int64_t *bi = bufs[3];
    for (int64_t r = 0; r < R; r++) {
        const float *b = rois + r * 4;
        float sw = b[0] * scale - off, sh = b[1] * scale - off, rw = b[2] * scale - off - sw, rh = b[3] * scale - off - sh;
        if (!q->half_pixel) { rw = rw > 1 ? rw : 1; rh = rh > 1 ? rh : 1; }
        float bh = rh / (float)oh, bw = rw / (float)ow;
        int64_t gh = ratio > 0 ? ratio : (int64_t)ceilf(rh / (float)oh), gw = ratio > 0 ? ratio : (int64_t)ceilf(rw / (float)ow);
        float count = (float)(gh * gw > 1 ? gh * gw : 1);
        int64_t n = bi[r] < 0 ? 0 : bi[r] >= N ? N - 1 : bi[r];
        for (int64_t c = 0; c < C; c++) {
            const float *img = x + (n * C + c) * H * W;
            for (int64_t ph = 0; ph < oh; ph++)
                for (int64_t pw = 0; pw < ow; pw++) {
                    float acc = 0;
                    int first = 1;
                    for (int64_t iy = 0; iy < gh; iy++)
                        for (int64_t ix = 0; ix < gw; ix++) {
                            float yy = sh + (float)ph * bh + ((float)iy + 0.5f) * bh / (float)gh;
                            float xx = sw + (float)pw * bw + ((float)ix + 0.5f) * bw / (float)gw;
                            int64_t pos[4] = {0, 0, 0, 0};
                            float w[4] = {0, 0, 0, 0};
                            roi_sample(yy, xx, H, W, pos, w);
                            if (!max_mode) acc += w[0] * img[pos[0]] + w[1] * img[pos[1]] + w[2] * img[pos[2]] + w[3] * img[pos[3]];
                            else {
                                float v = fmaxf(fmaxf(fmaxf(w[0] * img[pos[0]], w[1] * img[pos[1]]), w[2] * img[pos[2]]), w[3] * img[pos[3]]);
                                acc = first ? v : fmaxf(acc, v);
                                first = 0;
                            }
                        }
                    y[((r * C + c) * oh + ph) * ow + pw] = max_mode ? acc : acc / count;
                }
        }
    }
    return 0;
}

/* A region [batch, x1, y1, x2, y2] scaled and rounded to pixels (half away
 * from zero), at least 1 x 1; bin (ph, pw) spans rows floor(ph * height /
 * out_h) to ceil((ph + 1) * height / out_h) of it (bin sizes in float, as ONNX
 * Runtime computes them), clipped to the image; an empty bin is 0. A batch
 * index outside [0, N) is an error. */
KILN_KERNEL(max_roi_pool, "out <- x, rois (f32)", F(N) F(C) F(H) F(W) F(R) F(out_h) F(out_w) D(spatial_scale))
int kiln_k_max_roi_pool(kiln_pool *pool, void *const *bufs, const int64_t *p) {
    (void)pool;
    const kiln_p_max_roi_pool *q = KILN_P(max_roi_pool, p);
    int64_t N = q->N, C = q->C, H = q->H, W = q->W, oh = q->out_h, ow = q->out_w;
    float scale = (float)kiln_p2d(q->spatial_scale);
    float *y = bufs[0];
    const float *x = bufs[1], *rois = bufs[2];
    for (int64_t r = 0; r < q->R; r++) {
        const float *b = rois + r * 5;
        if (!(b[0] >= 0 && b[0] < (float)N)) return KILN_E_INDEX;
        int64_t n = (int64_t)b[0], box[4];
        for (int i = 0; i < 4; i++) {
            float v = roundf(b[1 + i] * scale);
            box[i] = v > 1e9f ? (int64_t)1e9 : !(v >= -1e9f) ? (int64_t)-1e9 : (int64_t)v; /* NaN reads as -1e9: empty bins */
        }
        int64_t rw = box[2] - box[0] + 1, rh = box[3] - box[1] + 1;
        float bh = (float)(rh > 1 ? rh : 1) / (float)oh, bw = (float)(rw > 1 ? rw : 1) / (float)ow;
        for (int64_t ph = 0; ph < oh; ph++) {
            int64_t h0 = (int64_t)floorf((float)ph * bh) + box[1], h1 = (int64_t)ceilf((float)(ph + 1) * bh) + box[1];
            h0 = h0 < 0 ? 0 : h0 > H ? H : h0;
            h1 = h1 < 0 ? 0 : h1 > H ? H : h1;
            for (int64_t pw = 0; pw < ow; pw++) {
                int64_t w0 = (int64_t)floorf((float)pw * bw) + box[0], w1 = (int64_t)ceilf((float)(pw + 1) * bw) + box[0];
                w0 = w0 < 0 ? 0 : w0 > W ? W : w0;
                w1 = w1 < 0 ? 0 : w1 > W ? W : w1;
                for (int64_t c = 0; c < C; c++) {
                    const float *img = x + (n * C + c) * H * W;
                    float m = h1 > h0 && w1 > w0 ? -INFINITY : 0;
                    for (int64_t h = h0; h < h1; h++)
                        for (int64_t w = w0; w < w1; w++) m = img[h * W + w] > m ? img[h * W + w] : m;
                    y[((r * C + c) * oh + ph) * ow + pw] = m;
                }
            }
        }
    }
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

KILN_KERNEL(nms, "out (i64 [rows, 3]), shape (i64[2]) <- boxes, scores (f32), max_out? (i64), iou? (f32), score_threshold? (f32), scratch (3 x N int64)",
    F(B) F(N) F(C) F(center_point_box) F(has_max) F(has_iou) F(has_score) F(per_class /* the bound */))
int kiln_k_nms(kiln_pool *pool, void *const *b, const int64_t *p) {
    (void)pool;
    const kiln_p_nms *q = KILN_P(nms, p);
    int64_t B = q->B, N = q->N, C = q->C, per_class = q->per_class;
    int center = (int)q->center_point_box, at = 4;
    int64_t *out = b[0], *shape = b[1];
    const float *boxes = b[2], *scores = b[3];
    int64_t max_out = q->has_max ? *(const int64_t *)b[at++] : 0;
    float iou = q->has_iou ? *(const float *)b[at++] : 0.0f;
    bool has_thr = q->has_score;
    float thr = has_thr ? *(const float *)b[at++] : 0.0f;
    int64_t *cand = b[at], *tmp = cand + N, *sel = tmp + N;
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
