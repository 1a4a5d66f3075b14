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
    int64_t p[7] = {!q, 1, 1, 1, per_axis, zp != NULL, q ? y->dtype : x->dtype};
    if (per_axis) { p[2] = x->dims[axis]; outer_inner(x, axis, &p[1], &p[3]); }
    else p[3] = value_numel(x);
    int out = q ? lower_buf(l, y) : out_f32(l, y);
    int bufs[4] = {out, q ? in_f32(l, x) : lower_buf(l, x), in_f32(l, n->in[1]), zp ? lower_buf(l, zp) : out};
    lower_call(l, KILN_K_quantize, 4, bufs, 7, p);
    if (!q) out_f32_done(l, y, out);
    return true;
}

bool lower_dynamic_quantize(Lower *l, Node *n) {
    int64_t p[1] = {value_numel(n->in[0])};
    int bufs[4] = {lower_buf(l, n->out[0]), lower_buf(l, n->out[1]), lower_buf(l, n->out[2]), lower_buf(l, n->in[0])};
    lower_call(l, KILN_K_dynamic_quantize, 4, bufs, 1, p);
    return true;
}

bool lower_matmul_integer(Lower *l, Node *n) {
    bool q = n->op == OP_QLINEAR_MATMUL;
    const Value *a = n->in[0], *b = n->in[q ? 3 : 1], *y = n->out[0];
    const Value *azp = node_input(n, 2), *bzp = node_input(n, q ? 5 : 3);
    int64_t M = a->dims[a->rank - 2], K = a->dims[a->rank - 1], N = b->dims[b->rank - 1];
    int64_t p[12] = {q, M, N, K, a->dtype, b->dtype, y->dtype, azp ? value_numel(azp) : 0, bzp ? value_numel(bzp) : 0,
                     q ? value_numel(n->in[4]) : 1, value_numel(a) / K, b->rank > 2 ? K * N : 0};
    int yb = lower_buf(l, y), bufs[9] = {yb, lower_buf(l, a), lower_buf(l, b), azp ? lower_buf(l, azp) : yb, bzp ? lower_buf(l, bzp) : yb,
                                         yb, yb, yb, yb};
    if (q) {
        bufs[5] = in_f32(l, n->in[1]);
        bufs[6] = in_f32(l, n->in[4]);
        bufs[7] = in_f32(l, n->in[6]);
        bufs[8] = lower_buf(l, n->in[7]);
    }
    lower_call(l, KILN_K_matmul_integer, 9, bufs, 12, p);
    return true;
}

bool lower_conv_integer(Lower *l, Node *n) {
    bool q = n->op == OP_QLINEAR_CONV;
    const Value *x = n->in[0], *wt = n->in[q ? 3 : 1], *y = n->out[0];
    const Value *xzp = node_input(n, 2), *wzp = node_input(n, q ? 5 : 3), *bias = q ? node_input(n, 8) : NULL;
    Window w;
    if (!window_compute(n, x, wt->dims + 2, &w, l->d)) return false;
    int64_t p[5 + 7 * MAX_WIN + 8] = {w.nd, x->dims[0], x->dims[1], wt->dims[0], node_attr_int(n, "group", 1)};
    int np = 5 + window_params(&w, p + 5);
    int64_t tail[8] = {x->dtype, wt->dtype, xzp != NULL, wzp ? value_numel(wzp) : 0, q, y->dtype, q ? value_numel(n->in[4]) : 1, bias != NULL};
    memcpy(p + np, tail, sizeof tail);
    np += 8;
    int yb = lower_buf(l, y);
    int bufs[10] = {yb, lower_buf(l, x), lower_buf(l, wt), xzp ? lower_buf(l, xzp) : yb, wzp ? lower_buf(l, wzp) : yb, yb, yb, yb, yb, yb};
    if (q) {
        bufs[5] = in_f32(l, n->in[1]);
        bufs[6] = in_f32(l, n->in[4]);
        bufs[7] = in_f32(l, n->in[6]);
        bufs[8] = lower_buf(l, n->in[7]);
        if (bias) bufs[9] = lower_buf(l, bias);
    }
    lower_call(l, KILN_K_conv_integer, 10, bufs, np, p);
    return true;
}
