/* quant.c: the shape rules of QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear and of the integer products, MatMulInteger,
 * QLinearMatMul, ConvInteger and QLinearConv (the ops of runtime/quant.c).
 * Integers are uint8 or int8 (also int32 for DequantizeLinear's input and
 * the results of MatMulInteger and ConvInteger); a scale or zero point is a
 * scalar or one value per element of `axis` (for the products: per row of a,
 * per column of b, per output channel of w); the integer convolutions have
 * Conv's window (window_compute). The lowerings are in codegen/quant.c. */
#include "ir.h"
#include "infer.h"

#include <string.h>

/* A scale or zero point: a scalar, or 1-D with one value per element of x's axis. */
static bool check_qparam(Node *n, const Value *x, const Value *q, int axis, Diags *d) {
    if (!q) return true;
    int64_t c = value_numel(q);
    if (c == 1 && q->rank <= 1) return true;
    if (q->rank == 1 && axis >= 0 && c == x->dims[axis]) return true;
    diag_error(d, n, "'%s' must be a scalar or have one value per element of axis %d", q->name, axis);
    return false;
}

/* The axis of a per-axis scale (QuantizeLinear / DequantizeLinear attribute). */
bool quant_axis(const Node *n, const Value *x, int *axis) {
    *axis = -1;
    if (x->rank == 0) return true;
    return axis_norm(node_attrs(n, quantize)->axis, x->rank, axis) || value_numel(n->in[1]) == 1;
}

bool infer_quantize(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *scale = n->in[1], *zp = node_input(n, 2);
    int axis;
    if (!quant_axis(n, x, &axis)) { diag_error(d, n, "axis is out of range"); return false; }
    if (!check_qparam(n, x, scale, axis, d) || !check_qparam(n, x, zp, axis, d)) return false;
    if (!dtype_is_float(scale->dtype)) { diag_error(d, n, "the scale must be a float tensor"); return false; }
    if (n->op == OP_QUANTIZE_LINEAR) {
        DType t = zp ? zp->dtype : DT_U8;
        if (t != DT_U8 && t != DT_I8) { diag_error(d, n, "quantizes to uint8 or int8, not %s", dtype_name(t)); return false; }
        if (!dtype_is_float(x->dtype)) { diag_error(d, n, "input must be a float tensor"); return false; }
        set_out(n->out[0], t, x->rank, x->dims);
    } else {
        if (x->dtype != DT_U8 && x->dtype != DT_I8 && x->dtype != DT_I32) { diag_error(d, n, "dequantizes uint8, int8 or int32, not %s", dtype_name(x->dtype)); return false; }
        if (zp && zp->dtype != x->dtype) { diag_error(d, n, "the zero point's dtype must be the input's"); return false; }
        set_out(n->out[0], scale->dtype, x->rank, x->dims);
    }
    return true;
}

bool infer_dynamic_quantize(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (x->dtype != DT_F32) { diag_error(d, n, "input must be float32"); return false; }
    set_out(n->out[0], DT_U8, x->rank, x->dims);
    if (n->n_out > 1 && n->out[1]) set_out(n->out[1], DT_F32, 0, NULL);
    if (n->n_out > 2 && n->out[2]) set_out(n->out[2], DT_U8, 0, NULL);
    return true;
}

/* MatMulInteger (A, B, a_zp?, b_zp?) and QLinearMatMul (a, a_scale, a_zp, b,
 * b_scale, b_zp, y_scale, y_zp): A [..., M, K] times B [K, N] or [..., K, N]. */
bool infer_matmul_integer(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    bool q = n->op == OP_QLINEAR_MATMUL;
    Value *a = n->in[0], *b = n->in[q ? 3 : 1];
    bool same_batch = b->rank == a->rank;
    for (int i = 0; same_batch && i < a->rank - 2; i++) same_batch = a->dims[i] == b->dims[i];
    if (a->rank < 2 || (b->rank != 2 && !same_batch) || a->dims[a->rank - 1] != b->dims[b->rank - 2]) {
        diag_error(d, n, "needs A [..., M, K] and B [K, N] or B [..., K, N] with A's batch dimensions");
        return false;
    }
    for (int i = 0; i < n->n_in; i++) {
        const Value *v = n->in[i];
        bool is_scale = q && (i == 1 || i == 4 || i == 6);
        if (v && !is_scale && v->dtype != DT_U8 && v->dtype != DT_I8) { diag_error(d, n, "input '%s' must be uint8 or int8", v->name); return false; }
        if (v && is_scale && v->dtype != DT_F32) { diag_error(d, n, "input '%s' must be float32", v->name); return false; }
    }
    int64_t M = a->dims[a->rank - 2], N = b->dims[b->rank - 1];
    const Value *azp = node_input(n, q ? 2 : 2), *bzp = node_input(n, q ? 5 : 3);
    if (azp && value_numel(azp) != 1 && value_numel(azp) != M) { diag_error(d, n, "a's zero point must be a scalar or one per row"); return false; }
    if (bzp && value_numel(bzp) != 1 && value_numel(bzp) != N) { diag_error(d, n, "b's zero point must be a scalar or one per column"); return false; }
    if (q) for (int i = 1; i < 8; i += 3) if (value_numel(n->in[i]) != 1 && i != 4) { diag_error(d, n, "scales must be scalars"); return false; }
    if (q && value_numel(n->in[4]) != 1 && value_numel(n->in[4]) != N) { diag_error(d, n, "b's scale must be a scalar or one per column"); return false; }
    int64_t dims[MAX_RANK];
    memcpy(dims, a->dims, sizeof dims);
    dims[a->rank - 1] = N;
    set_out(n->out[0], q ? n->in[7]->dtype : DT_I32, a->rank, dims);
    return true;
}

/* ---- ConvInteger (x, w, x_zp?, w_zp?) and QLinearConv (x, x_scale, x_zp, w,
 * w_scale, w_zp, y_scale, y_zp, B?) ---- */

bool infer_conv_integer(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    bool q = n->op == OP_QLINEAR_CONV;
    Value *x = n->in[0], *wt = n->in[q ? 3 : 1];
    int64_t group = node_attrs(n, conv)->group;
    if (x->rank < 3 || wt->rank != x->rank || group < 1 || x->dims[1] % group || wt->dims[0] % group || wt->dims[1] * group != x->dims[1]) {
        diag_error(d, n, "the weight's shape does not match the input's channels and group");
        return false;
    }
    for (int i = 0; i < n->n_in; i++) {
        const Value *v = n->in[i];
        bool scale = q && (i == 1 || i == 4 || i == 6), bias = q && i == 8;
        if (!v) continue;
        if (scale && v->dtype != DT_F32) { diag_error(d, n, "scale '%s' must be float32", v->name); return false; }
        if (bias && (v->dtype != DT_I32 || value_numel(v) != wt->dims[0])) { diag_error(d, n, "B must be int32 [%lld]", (long long)wt->dims[0]); return false; }
        if (!scale && !bias && v->dtype != DT_U8 && v->dtype != DT_I8) { diag_error(d, n, "input '%s' must be uint8 or int8", v->name); return false; }
    }
    const Value *xzp = node_input(n, 2), *wzp = node_input(n, q ? 5 : 3);
    if (xzp && value_numel(xzp) != 1) { diag_error(d, n, "x's zero point must be a scalar"); return false; }
    if (wzp && value_numel(wzp) != 1 && value_numel(wzp) != wt->dims[0]) { diag_error(d, n, "w's zero point must be a scalar or one per output channel"); return false; }
    if (q && value_numel(n->in[4]) != 1 && value_numel(n->in[4]) != wt->dims[0]) { diag_error(d, n, "w's scale must be a scalar or one per output channel"); return false; }
    if (q && (value_numel(n->in[1]) != 1 || value_numel(n->in[6]) != 1 || value_numel(n->in[7]) != 1)) { diag_error(d, n, "x and y scales and zero points must be scalars"); return false; }
    Window w;
    if (!window_compute(n, x, wt->dims + 2, &w, d)) return false;
    int64_t dims[MAX_RANK] = {x->dims[0], wt->dims[0]};
    for (int i = 0; i < w.nd; i++) dims[2 + i] = w.out[i];
    set_out(n->out[0], q ? n->in[7]->dtype : DT_I32, x->rank, dims);
    return true;
}
