/* resize.c: the lowerings of Resize and Upsample (resize_geometry's scales,
 * roi and sizes, the mode, the coordinate transformation and the nearest mode
 * as parameters of one kernel call; before opset 11 the coordinates were
 * asymmetric) and GridSample. */
#include "kir.h"

#include <string.h>

bool lower_resize(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int r = x->rank;
    double sc[MAX_RANK], rs[MAX_RANK], re[MAX_RANK];
    int64_t out[MAX_RANK];
    if (!resize_geometry(n, x, sc, rs, re, out, l->d)) return false;
    static const char *coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    const char *mode = node_attr_string(n, "mode", "nearest");
    /* before opset 11 the coordinates were asymmetric */
    const char *cm = node_attr_string(n, "coordinate_transformation_mode", n->opset < 11 ? "asymmetric" : "half_pixel");
    const char *nm = node_attr_string(n, "nearest_mode", n->opset < 11 ? "floor" : "round_prefer_floor");
    int64_t p[8 + 5 * MAX_RANK], c = -1, nmode = -1;
    for (int i = 0; i < 6; i++) if (strcmp(cm, coords[i]) == 0) c = i;
    for (int i = 0; i < 4; i++) if (strcmp(nm, nearest[i]) == 0) nmode = i;
    if (c < 0 || nmode < 0) { diag_error(l->d, n, "unknown coordinate_transformation_mode or nearest_mode"); return false; }
    p[0] = r;
    for (int i = 0; i < r; i++) { p[1 + i] = x->dims[i]; p[1 + r + i] = out[i]; }
    p[1 + 2 * r] = strcmp(mode, "nearest") == 0 ? 0 : strcmp(mode, "cubic") == 0 ? 2 : 1;
    p[2 + 2 * r] = c;
    p[3 + 2 * r] = nmode;
    p[4 + 2 * r] = node_attr_int(n, "exclude_outside", 0);
    p[5 + 2 * r] = kiln_d2p(node_attr_float(n, "cubic_coeff_a", -0.75));
    p[6 + 2 * r] = kiln_d2p(node_attr_float(n, "extrapolation_value", 0.0));
    for (int i = 0; i < r; i++) { p[7 + 2 * r + i] = kiln_d2p(sc[i]); p[7 + 3 * r + i] = kiln_d2p(rs[i]); p[7 + 4 * r + i] = kiln_d2p(re[i]); }
    int o = out_f32(l, y);
    int bufs[2] = {o, in_f32(l, x)};
    lower_call(l, KILN_K_resize, 2, bufs, 7 + 5 * r, p);
    out_f32_done(l, y, o);
    return true;
}

bool lower_grid_sample(Lower *l, Node *n) {
    const Value *x = n->in[0], *g = n->in[1], *y = n->out[0];
    const char *mode = node_attr_string(n, "mode", "bilinear"), *pad = node_attr_string(n, "padding_mode", "zeros");
    int64_t p[9] = {x->dims[0], x->dims[1], x->dims[2], x->dims[3], g->dims[1], g->dims[2],
                    strcmp(mode, "nearest") == 0 ? 1 : strcmp(mode, "bicubic") == 0 ? 2 : 0,
                    strcmp(pad, "border") == 0 ? 1 : strcmp(pad, "reflection") == 0 ? 2 : 0, node_attr_int(n, "align_corners", 0) != 0};
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), in_f32(l, g)};
    lower_call(l, KILN_K_grid_sample, 3, bufs, 9, p);
    out_f32_done(l, y, out);
    return true;
}
