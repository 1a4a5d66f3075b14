/* detection.c: the lowerings of RoiAlign, MaxRoiPool and NonMaxSuppression, whose kernel
 * writes the number of boxes it selected to the output's shape buffer
 * (runtime/detection.c). */
#include "kir.h"

#include <string.h>

bool lower_roi_align(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    const attrs_roi_align *a = node_attrs(n, roi_align);
    kiln_p_roi_align p = {.N = x->dims[0], .C = x->dims[1], .H = x->dims[2], .W = x->dims[3], .R = y->dims[0],
                          .out_h = y->dims[2], .out_w = y->dims[3], .sampling_ratio = a->sampling_ratio,
                          .spatial_scale = kiln_d2p(a->spatial_scale), .half_pixel = strcmp(a->coordinate_transformation_mode, "half_pixel") == 0,
                          .max_mode = strcmp(a->mode, "max") == 0};
    int out = out_f32(l, y), bufs[4] = {out, in_f32(l, x), in_f32(l, n->in[1]), lower_buf(l, n->in[2])};
    LOWER_CALL(l, roi_align, 4, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_max_roi_pool(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    kiln_p_max_roi_pool p = {.N = x->dims[0], .C = x->dims[1], .H = x->dims[2], .W = x->dims[3], .R = y->dims[0],
                             .out_h = y->dims[2], .out_w = y->dims[3], .spatial_scale = kiln_d2p(node_attrs(n, max_roi_pool)->spatial_scale)};
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), in_f32(l, n->in[1])};
    LOWER_CALL(l, max_roi_pool, 3, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_nms(Lower *l, Node *n) {
    const Value *boxes = n->in[0], *scores = n->in[1], *y = n->out[0];
    int64_t N = boxes->dims[1], bc = boxes->dims[0] * scores->dims[1], per_class = bc ? y->dims[0] / bc : 0;
    kiln_p_nms p = {.B = boxes->dims[0], .N = N, .C = scores->dims[1], .center_point_box = node_attrs(n, nms)->center_point_box,
                    .has_max = node_input(n, 2) != NULL, .has_iou = node_input(n, 3) != NULL,
                    .has_score = node_input(n, 4) != NULL, .per_class = per_class};
    int b[8], nb = 0;
    b[nb++] = lower_buf(l, y);
    b[nb++] = shape_slot(l, n->out[0]);
    b[nb++] = lower_buf(l, boxes);
    b[nb++] = lower_buf(l, scores);
    for (int i = 2; i < 5; i++)
        if (node_input(n, i)) b[nb++] = lower_buf(l, n->in[i]);
    b[nb++] = step_scratch(l, 3 * N * 8);
    LOWER_CALL(l, nms, nb, b, &p);
    return true;
}
