/* resize.c: the shape rules of Resize (opset 10: X, scales; 11+: X, roi,
 * scales, sizes), Upsample (opset 7: the scales attribute; 9: X, scales) and
 * GridSample (X [N, C, H, W] sampled at a grid [N, H_out, W_out, 2]).
 *
 * resize_geometry gives the shape rule and the lowering the scales, roi and
 * output size: from constant scales (out = floor(in * scale), times the roi's
 * extent for tf_crop_and_resize) or constant sizes, which then set the scales.
 * The lowerings are in codegen/resize.c. */
#include "ir.h"
#include "infer.h"

#include <math.h>
#include <string.h>

/* Resize (opset 10: X, scales; 11+: X, roi, scales, sizes) and Upsample
 * (opset 7: scales attribute; 9: X, scales). Fills scales, roi and out dims. */
bool resize_geometry(const Node *n, const Value *x, double *scales, double *roi_s, double *roi_e, int64_t *out, Diags *d) {
    int r = x->rank;
    const attrs_resize *a = node_attrs(n, resize);
    const Value *sc = NULL, *sz = NULL, *roi = NULL;
    if (n->op == OP_UPSAMPLE || n->opset < 11) sc = node_input(n, 1);
    else { roi = node_input(n, 1); sc = node_input(n, 2); sz = node_input(n, 3); }
    for (int i = 0; i < r; i++) { scales[i] = 1; roi_s[i] = 0; roi_e[i] = 1; }
    if (n->op == OP_UPSAMPLE && n->opset < 9) {
        if (!a->has_scales || a->scales.n != r) { diag_error(d, n, "scales must have %d values", r); return false; }
        for (int i = 0; i < r; i++) scales[i] = a->scales.v[i];
    } else if (sc && value_numel(sc) > 0) {
        if (!sc->data || value_numel(sc) != r || !dtype_is_float(sc->dtype)) { diag_need(d, n, sc, "input '%s' must be a constant (float scales, one per dimension)", sc->name); return false; }
        for (int i = 0; i < r; i++) scales[i] = (float)value_const_float(sc, i);
    }
    if (roi && value_numel(roi) > 0) {
        if (!roi->data || value_numel(roi) != 2 * r) { diag_need(d, n, roi, "input '%s' must be a constant (a roi of %d values)", roi->name, 2 * r); return false; }
        for (int i = 0; i < r; i++) { roi_s[i] = value_const_float(roi, i); roi_e[i] = value_const_float(roi, r + i); }
    }
    for (int i = 0; i < r; i++) {
        if (!(scales[i] > 0)) { diag_error(d, n, "scales must be positive"); return false; }
        double o = floor(x->dims[i] * scales[i] * (roi && strcmp(a->coordinate_transformation_mode, "tf_crop_and_resize") == 0 ? roi_e[i] - roi_s[i] : 1.0));
        if (!(o >= 0 && o <= 0x1p62)) { diag_error(d, n, "scales make output dimension %d %g, out of range", i, o); return false; }
        out[i] = (int64_t)o;
    }
    if (sz && value_numel(sz) > 0) {
        int64_t s[64];
        int cnt;
        if (!const_ints(sz, s, 64, &cnt) || cnt != r) { diag_need(d, n, sz, "input '%s' must be a constant (sizes, one per dimension)", sz->name); return false; }
        for (int i = 0; i < r; i++) {
            if (s[i] < 0) { diag_error(d, n, "negative size"); return false; }
            out[i] = s[i];
            scales[i] = x->dims[i] ? (double)s[i] / (double)x->dims[i] : 1;
        }
    }
    return true;
}

bool infer_resize(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    double sc[MAX_RANK], rs[MAX_RANK], re[MAX_RANK];
    int64_t out[MAX_RANK];
    if (!resize_geometry(n, n->in[0], sc, rs, re, out, d)) return false;
    const char *mode = node_attrs(n, resize)->mode;
    if (strcmp(mode, "nearest") && strcmp(mode, "linear") && strcmp(mode, "cubic") && strcmp(mode, "bilinear")) {
        diag_error(d, n, "unknown mode '%s'", mode);
        return false;
    }
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, out);
    return check_size(n, n->out[0], d);
}

bool infer_grid_sample(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *grid = n->in[1];
    if (x->rank != 4 || grid->rank != 4 || grid->dims[0] != x->dims[0] || grid->dims[3] != 2 || !dtype_is_float(x->dtype) || !dtype_is_float(grid->dtype)) {
        diag_error(d, n, "needs a float X [N, C, H, W] and a grid [N, H_out, W_out, 2]");
        return false;
    }
    const attrs_grid_sample *a = node_attrs(n, grid_sample);
    const char *mode = a->mode, *pad = a->padding_mode;
    if (strcmp(mode, "bilinear") && strcmp(mode, "nearest") && strcmp(mode, "bicubic")) { diag_error(d, n, "mode '%s' is not supported", mode); return false; }
    if (strcmp(pad, "zeros") && strcmp(pad, "border") && strcmp(pad, "reflection")) { diag_error(d, n, "padding_mode '%s' is not supported", pad); return false; }
    int64_t dims[4] = {x->dims[0], x->dims[1], grid->dims[1], grid->dims[2]};
    set_out(n->out[0], x->dtype, 4, dims);
    return true;
}
