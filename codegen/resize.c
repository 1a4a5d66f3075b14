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
    const attrs_resize *a = node_attrs(n, resize); /* before opset 11 its defaults are asymmetric, floor */
    const char *mode = a->mode, *cm = a->coordinate_transformation_mode, *nm = a->nearest_mode;
    int64_t c = -1, nmode = -1;
    for (int i = 0; i < 6; i++) if (strcmp(cm, coords[i]) == 0) c = i;
    for (int i = 0; i < 4; i++) if (strcmp(nm, nearest[i]) == 0) nmode = i;
    if (c < 0 || nmode < 0) { diag_error(l->d, n, "unknown coordinate_transformation_mode or nearest_mode"); return false; }
    kiln_p_resize p = {.rank = r, .mode = strcmp(mode, "nearest") == 0 ? 0 : strcmp(mode, "cubic") == 0 ? 2 : 1, .coord = c,
                       .nearest_mode = nmode, .exclude_outside = a->exclude_outside,
                       .cubic_a = kiln_d2p(a->cubic_coeff_a), .extrapolation = kiln_d2p(a->extrapolation_value)};
    for (int i = 0; i < r; i++) {
        p.in[i] = x->dims[i];
        p.out[i] = out[i];
        p.scales[i] = kiln_d2p(sc[i]);
        p.roi_start[i] = kiln_d2p(rs[i]);
        p.roi_end[i] = kiln_d2p(re[i]);
    }
    int o = out_f32(l, y);
    int bufs[2] = {o, in_f32(l, x)};
    LOWER_CALL(l, resize, 2, bufs, &p);
    out_f32_done(l, y, o);
    return true;
}

bool lower_grid_sample(Lower *l, Node *n) {
    const Value *x = n->in[0], *g = n->in[1], *y = n->out[0];
    const attrs_grid_sample *a = node_attrs(n, grid_sample);
    const char *mode = a->mode, *pad = a->padding_mode;
    kiln_p_grid_sample p = {.N = x->dims[0], .C = x->dims[1], .H = x->dims[2], .W = x->dims[3], .H_out = g->dims[1], .W_out = g->dims[2],
                            .mode = strcmp(mode, "nearest") == 0 ? 1 : strcmp(mode, "bicubic") == 0 ? 2 : 0,
                            .padding = strcmp(pad, "border") == 0 ? 1 : strcmp(pad, "reflection") == 0 ? 2 : 0,
                            .align_corners = a->align_corners != 0};
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), in_f32(l, g)};
    LOWER_CALL(l, grid_sample, 3, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
