/* conv.c: the lowerings of Conv and ConvTranspose (the integer convolutions
 * are in quant.c).
 *
 * A convolution runs on the runtime's direct kernel, or as im2col into step
 * scratch and a GEMM whose constant float32 weights are packed once, when the
 * context is created, or, 3x3 with stride 1, one group, constant weights and
 * enough channels, as Winograd F(2x2, 3x3) (runtime/winograd.c). The Relu or
 * Clip and the residual that the fuse pass folded in run in the kernel's
 * epilogue. A transposed convolution is GEMMs and a scatter in the runtime
 * (conv_transpose), its weights reordered into step scratch. */
#include "kir.h"

#include <stdlib.h>

/* A 3x3 stride-1 convolution of one group with constant weights and enough
 * channels goes through Winograd F(2x2, 3x3) (runtime/winograd.c): the filters
 * are transformed and packed when the context is created. KILN_NO_WINOGRAD set
 * at compile time keeps the GEMM path (for comparisons). */
static bool lower_conv_winograd(Lower *l, Node *n, const Window *w) {
    const Value *x = n->in[0], *wt = n->in[1], *b = node_input(n, 2), *y = n->out[0], *res = node_input(n, 3);
    int64_t C = x->dims[1], M = wt->dims[0];
    bool ok = !l->fold && w->nd == 2 && node_attrs(n, conv)->group == 1 && wt->data && wt->dtype == DT_F32 && C >= 16 && M >= 16 &&
              kiln_wino_fits(w->out[1]) && !getenv("KILN_NO_WINOGRAD");
    for (int i = 0; ok && i < 2; i++) ok = w->k[i] == 3 && w->stride[i] == 1 && w->dil[i] == 1;
    if (!ok) return false;
    int wb = in_f32(l, wt), out = out_f32(l, y);
    int packed[2] = {state_buf(l, "winograd weights", kiln_wino_packed_floats(M, C) * 4), wb};
    kiln_p_wino_pack pk = {M, C};
    LOWER_CALL(l, wino_pack, 2, packed, &pk)->at_create = true;
    kiln_p_conv_wino q = {x->dims[0], C, M, w->in[0], w->in[1], w->out[0], w->out[1], w->pad_b[0], w->pad_b[1], b != NULL, res != NULL,
                          epilogue_params(n)};
    int bufs[6] = {out, in_f32(l, x), packed[0], b ? in_f32(l, b) : packed[0], res ? in_f32(l, res) : packed[0],
                   step_scratch(l, 16 * (C + M) * kiln_wino_chunk_tiles(C, M) * 4)};
    LOWER_CALL(l, conv_wino, 6, bufs, &q);
    out_f32_done(l, y, out);
    return true;
}

bool lower_conv(Lower *l, Node *n) {
    const Value *x = n->in[0], *wt = n->in[1], *b = node_input(n, 2), *y = n->out[0];
    Window w;
    if (!window_compute(n, x, wt->dims + 2, &w, l->d)) return false;
    if (lower_conv_winograd(l, n, &w)) return true;
    const Value *res = node_input(n, 3); /* kiln.residual (fuse pass) */
    kiln_p_conv p = {.nd = w.nd, .N = x->dims[0], .C = x->dims[1], .M = wt->dims[0], .group = node_attrs(n, conv)->group,
                     .has_b = b != NULL, .w = window_params(&w), .act = epilogue_params(n), .has_res = res != NULL};
    int out = out_f32(l, y);
    int64_t cpg = x->dims[1] / p.group, ksz = dims_numel(w.nd, w.k), osz = dims_numel(w.nd, w.out);
    int wb = in_f32(l, wt);
    int bufs[8] = {out, in_f32(l, x), wb, b ? in_f32(l, b) : wb, wb, wb, res ? in_f32(l, res) : wb, wb};
    bool direct = kiln_conv_is_direct(x->dims[1], wt->dims[0], p.group);
    if (!direct) bufs[4] = step_scratch(l, cpg * ksz * osz * 4);
    /* constant float32 weights of a GEMM convolution: packed once, at creation */
    p.packed = !direct && !l->fold && wt->data && wt->dtype == DT_F32;
    if (p.packed) {
        kiln_p_pack_a pk = {p.group, wt->dims[0] / p.group, cpg * ksz};
        int packed[2] = {state_buf(l, "packed weights", p.group * kiln_sgemm_packed_a_floats(pk.M, pk.K) * 4), wb};
        LOWER_CALL(l, pack_a, 2, packed, &pk)->at_create = true;
        bufs[5] = packed[0];
    }
    /* the small-channel path's weights (an image's first layer): packed at
     * creation too when constant, else by the kernel into scratch */
    int64_t sc = kiln_conv_smallc_floats(w.nd, p.C, p.M, p.group, w.k);
    if (sc && !l->fold && wt->data && wt->dtype == DT_F32) {
        kiln_p_smallc_pack pk = {sc / ((p.M + 15) / 16 * 16), p.M};
        int packed[2] = {state_buf(l, "small-channel weights", sc * 4), wb};
        LOWER_CALL(l, smallc_pack, 2, packed, &pk)->at_create = true;
        bufs[7] = packed[0];
        p.smallc = 2;
    } else if (sc) {
        bufs[7] = step_scratch(l, sc * 4);
        p.smallc = 1;
    }
    LOWER_CALL(l, conv, 8, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_conv_transpose(Lower *l, Node *n) {
    const Value *x = n->in[0], *wt = n->in[1], *b = node_input(n, 2), *y = n->out[0];
    Window w;
    if (!convt_window(n, x, wt, &w, l->d)) return false;
    int64_t group = node_attrs(n, conv)->group;
    kiln_p_conv_transpose p = {w.nd, x->dims[0], x->dims[1], y->dims[1], group, b != NULL, window_params(&w)};
    int out = out_f32(l, y);
    int wb = in_f32(l, wt);
    /* step scratch of the weights' size: the weights reordered per group and
     * kernel index, so that each block's W^T is one matrix for the GEMM */
    int bufs[5] = {out, in_f32(l, x), wb, b ? in_f32(l, b) : wb, step_scratch(l, value_numel(wt) * 4)};
    LOWER_CALL(l, conv_transpose, 5, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
