/* quant.c: the lowerings of QuantizeLinear, DequantizeLinear (per tensor or
 * per axis), DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, ConvInteger
 * and QLinearConv: one call each of the kernels in runtime/quant.c, where an
 * absent zero point or scale passes another buffer and a parameter says it is
 * absent. */
#include "kir.h"

#include <string.h>

bool lower_quantize(Lower *l, Node *n) {
    const Value *x = n->in[0], *zp = node_input(n, 2), *y = n->out[0];
    bool q = n->op == OP_QUANTIZE_LINEAR;
    int axis;
    quant_axis(n, x, &axis);
    bool per_axis = value_numel(n->in[1]) > 1;
    kiln_p_quantize p = {!q, 1, 1, 1, per_axis, zp != NULL, q ? y->dtype : x->dtype};
    if (per_axis) { p.axis_len = x->dims[axis]; outer_inner(x, axis, &p.outer, &p.inner); }
    else p.inner = value_numel(x);
    int out = q ? lower_buf(l, y) : out_f32(l, y);
    int bufs[4] = {out, q ? in_f32(l, x) : lower_buf(l, x), in_f32(l, n->in[1]), zp ? lower_buf(l, zp) : out};
    LOWER_CALL(l, quantize, 4, bufs, &p);
    if (!q) out_f32_done(l, y, out);
    return true;
}

bool lower_dynamic_quantize(Lower *l, Node *n) {
    kiln_p_dynamic_quantize p = {value_numel(n->in[0])};
    int bufs[4] = {lower_buf(l, n->out[0]), lower_buf(l, n->out[1]), lower_buf(l, n->out[2]), lower_buf(l, n->in[0])};
    LOWER_CALL(l, dynamic_quantize, 4, bufs, &p);
    return true;
}

bool lower_matmul_integer(Lower *l, Node *n) {
    bool q = n->op == OP_QLINEAR_MATMUL;
    const Value *a = n->in[0], *b = n->in[q ? 3 : 1], *y = n->out[0];
    const Value *azp = node_input(n, 2), *bzp = node_input(n, q ? 5 : 3);
    int64_t M = a->dims[a->rank - 2], K = a->dims[a->rank - 1], N = b->dims[b->rank - 1];
    kiln_p_matmul_integer p = {q, M, N, K, a->dtype, b->dtype, y->dtype, azp ? value_numel(azp) : 0, bzp ? value_numel(bzp) : 0,
                               q ? value_numel(n->in[4]) : 1, value_numel(a) / K, b->rank > 2 ? K * N : 0};
    int yb = lower_buf(l, y), bufs[9] = {yb, lower_buf(l, a), lower_buf(l, b), azp ? lower_buf(l, azp) : yb, bzp ? lower_buf(l, bzp) : yb,
                                         yb, yb, yb, yb};
    if (q) {
        bufs[5] = in_f32(l, n->in[1]);
        bufs[6] = in_f32(l, n->in[4]);
        bufs[7] = in_f32(l, n->in[6]);
        bufs[8] = lower_buf(l, n->in[7]);
    }
    LOWER_CALL(l, matmul_integer, 9, bufs, &p);
    return true;
}

bool lower_conv_integer(Lower *l, Node *n) {
    bool q = n->op == OP_QLINEAR_CONV;
    const Value *x = n->in[0], *wt = n->in[q ? 3 : 1], *y = n->out[0];
    const Value *xzp = node_input(n, 2), *wzp = node_input(n, q ? 5 : 3), *bias = q ? node_input(n, 8) : NULL;
    Window w;
    if (!window_compute(n, x, wt->dims + 2, &w, l->d)) return false;
    kiln_p_conv_integer p = {w.nd, x->dims[0], x->dims[1], wt->dims[0], node_attrs(n, conv)->group, window_params(&w), x->dtype, wt->dtype,
                             xzp != NULL, wzp ? value_numel(wzp) : 0, q, y->dtype, q ? value_numel(n->in[4]) : 1, bias != NULL};
    int yb = lower_buf(l, y);
    int bufs[10] = {yb, lower_buf(l, x), lower_buf(l, wt), xzp ? lower_buf(l, xzp) : yb, wzp ? lower_buf(l, wzp) : yb, yb, yb, yb, yb, yb};
    if (q) {
        bufs[5] = in_f32(l, n->in[1]);
        bufs[6] = in_f32(l, n->in[4]);
        bufs[7] = in_f32(l, n->in[6]);
        bufs[8] = lower_buf(l, n->in[7]);
        if (bias) bufs[9] = lower_buf(l, bias);
    }
    LOWER_CALL(l, conv_integer, 10, bufs, &p);
    return true;
}
