/* signal.c: the lowerings of DFT, STFT and MelWeightMatrix, one call each of
 * the kernels in runtime/signal.c (the window functions are computed at
 * compile time, ir/signal.c). */
#include "kir.h"

bool lower_dft(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0], *dl = node_input(n, 1);
    int64_t axis = node_attr_int(n, "axis", 1), outer = 1, inner = 1;
    if (axis < 0) axis += x->rank;
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank - 1; i++) inner *= x->dims[i];
    int64_t len = dl ? value_const_int(dl, 0) : x->dims[axis];
    int64_t p[7] = {outer, x->dims[axis], inner, x->dims[x->rank - 1], len, y->dims[axis], node_attr_int(n, "inverse", 0) != 0};
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), step_scratch(l, 16 * len)};
    lower_call(l, KILN_K_dft, 3, bufs, 7, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_stft(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0], *win = node_input(n, 2);
    int64_t flen = win ? win->dims[0] : value_const_int(n->in[3], 0);
    int64_t p[8] = {x->dims[0], x->dims[1], x->dims[2], value_const_int(n->in[1], 0), y->dims[1], flen, y->dims[2], win != NULL};
    int out = out_f32(l, y), xb = in_f32(l, x), bufs[4] = {out, xb, win ? in_f32(l, win) : xb, step_scratch(l, 16 * flen)};
    lower_call(l, KILN_K_stft, 4, bufs, 8, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_mel_weight_matrix(Lower *l, Node *n) {
    const Value *y = n->out[0];
    int64_t p[2] = {value_const_int(n->in[0], 0), value_const_int(n->in[1], 0)};
    int out = out_f32(l, y), bufs[4] = {out, in_f32(l, n->in[2]), in_f32(l, n->in[3]), in_f32(l, n->in[4])};
    lower_call(l, KILN_K_mel_weight_matrix, 4, bufs, 2, p);
    out_f32_done(l, y, out);
    return true;
}
