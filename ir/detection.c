/* detection.c: the shape rules of RoiAlign (X [N, C, H, W], rois [R, 4] and
 * batch_indices [R] give [R, C, output_height, output_width]), MaxRoiPool (X
 * [N, C, H, W] and rois [R, 5], each [batch index, x1, y1, x2, y2], give [R,
 * C, pooled_shape]) and
 * NonMaxSuppression, whose output is sized by the data: its upper bound,
 * [batch x classes x the most boxes kept per class, 3], is its static shape,
 * dimension 0 marked in Value.dyn, and it may only be a graph output
 * (passes/infer.c). The lowerings are in codegen/detection.c. */
#include "ir.h"
#include "infer.h"

#include <math.h>
#include <string.h>

bool infer_roi_align(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *rois = n->in[1], *bi = n->in[2];
    if (x->rank != 4 || !dtype_is_float(x->dtype) || rois->rank != 2 || rois->dims[1] != 4 || bi->rank != 1 || bi->dims[0] != rois->dims[0] ||
        bi->dtype != DT_I64) {
        diag_error(d, n, "needs X [N, C, H, W], rois [R, 4] and int64 batch_indices [R]");
        return false;
    }
    const attrs_roi_align *a = node_attrs(n, roi_align);
    const char *mode = a->mode, *ct = a->coordinate_transformation_mode;
    if (strcmp(mode, "avg") && strcmp(mode, "max")) { diag_error(d, n, "mode '%s' is not supported", mode); return false; }
    if (strcmp(ct, "half_pixel") && strcmp(ct, "output_half_pixel")) { diag_error(d, n, "coordinate_transformation_mode '%s' is not supported", ct); return false; }
    int64_t oh = a->output_height, ow = a->output_width;
    if (oh < 1 || ow < 1 || oh > (1 << 16) || ow > (1 << 16) || a->sampling_ratio < 0) {
        diag_error(d, n, "invalid output size or sampling_ratio");
        return false;
    }
    int64_t dims[4] = {rois->dims[0], x->dims[1], oh, ow};
    set_out(n->out[0], x->dtype, 4, dims);
    return true;
}

bool infer_max_roi_pool(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0], *rois = n->in[1];
    if (x->rank != 4 || x->dtype != DT_F32 || rois->rank != 2 || rois->dims[1] != 5 || rois->dtype != DT_F32) {
        diag_error(d, n, "needs f32 X [N, C, H, W] and f32 rois [R, 5]");
        return false;
    }
    const attrs_max_roi_pool *a = node_attrs(n, max_roi_pool);
    if (!a->has_pooled_shape || a->pooled_shape.n != 2 || a->pooled_shape.v[0] < 1 || a->pooled_shape.v[1] < 1 ||
        a->pooled_shape.v[0] > (1 << 16) || a->pooled_shape.v[1] > (1 << 16)) {
        diag_error(d, n, "needs pooled_shape, two positive sizes");
        return false;
    }
    if (!(a->spatial_scale > 0) || !isfinite(a->spatial_scale)) {
        diag_error(d, n, "spatial_scale must be positive");
        return false;
    }
    int64_t dims[4] = {rois->dims[0], x->dims[1], a->pooled_shape.v[0], a->pooled_shape.v[1]};
    set_out(n->out[0], DT_F32, 4, dims);
    return true;
}

bool infer_nms(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *boxes = n->in[0], *scores = n->in[1];
    if (boxes->rank != 3 || boxes->dims[2] != 4 || scores->rank != 3 || scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1] ||
        boxes->dtype != DT_F32 || scores->dtype != DT_F32) {
        diag_error(d, n, "boxes must be f32 [batch, boxes, 4] and scores f32 [batch, classes, boxes]");
        return false;
    }
    for (int i = 2; i < n->n_in; i++) {
        const Value *v = n->in[i];
        if (v && (value_numel(v) != 1 || v->dtype != (i == 2 ? DT_I64 : DT_F32))) {
            diag_error(d, n, "input %d must hold one %s", i, i == 2 ? "int64" : "float");
            return false;
        }
    }
    int64_t per_class = boxes->dims[1];
    const Value *mo = node_input(n, 2);
    if (!mo) per_class = 0;
    else if (mo->data && value_const_int(mo, 0) < per_class) per_class = value_const_int(mo, 0) < 0 ? 0 : value_const_int(mo, 0);
    int64_t dims[2] = {boxes->dims[0] * scores->dims[1] * per_class, 3};
    set_out(n->out[0], DT_I64, 2, dims);
    n->out[0]->dyn = 1;
    return true;
}
