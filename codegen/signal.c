/* signal.c: the lowerings of DFT, STFT and MelWeightMatrix, one call each of
 * the kernels in runtime/signal.c (the window functions are computed at
 * compile time, ir/signal.c). */
#include "kir.h"

bool lower_dft(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0], *dl = node_input(n, 1);
    const attrs_dft *a = node_attrs(n, dft);
    int64_t axis = a->axis, outer = 1, inner = 1;
    if (axis < 0) axis += x->rank;
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank - 1; i++) inner *= x->dims[i];
    int64_t len = dl ? value_const_int(dl, 0) : x->dims[axis];
    kiln_p_dft p = {.outer = outer, .n = x->dims[axis], .inner = inner, .complex_in = x->dims[x->rank - 1], .dft_length = len,
                    .n_out = y->dims[axis], .inverse = a->inverse != 0};
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), step_scratch(l, 16 * len)};
    LOWER_CALL(l, dft, 3, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_stft(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0], *win = node_input(n, 2);
    int64_t flen = win ? win->dims[0] : value_const_int(n->in[3], 0);
    kiln_p_stft p = {.batch = x->dims[0], .length = x->dims[1], .complex_in = x->dims[2], .step = value_const_int(n->in[1], 0),
                     .frames = y->dims[1], .frame_length = flen, .bins = y->dims[2], .has_window = win != NULL};
    int out = out_f32(l, y), xb = in_f32(l, x), bufs[4] = {out, xb, win ? in_f32(l, win) : xb, step_scratch(l, 16 * flen)};
    LOWER_CALL(l, stft, 4, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_mel_weight_matrix(Lower *l, Node *n) {
    const Value *y = n->out[0];
    kiln_p_mel_weight_matrix p = {.num_mel_bins = value_const_int(n->in[0], 0), .dft_length = value_const_int(n->in[1], 0)};
    int out = out_f32(l, y), bufs[4] = {out, in_f32(l, n->in[2]), in_f32(l, n->in[3]), in_f32(l, n->in[4])};
    LOWER_CALL(l, mel_weight_matrix, 4, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
