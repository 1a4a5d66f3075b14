/* norm.c: the shape rules of the normalizations, BatchNormalization,
 * LayerNormalization, InstanceNormalization, MeanVarianceNormalization and LRN,
 * and of Softmax, LogSoftmax and Hardmax (infer_same, which is also Identity's
 * rule). Each output has its input's type and shape; the per-channel or
 * normalized-shape parameters must have as many values as that asks.
 * BatchNormalization has its running statistics as outputs in training mode
 * only; LayerNormalization's mean and inverse std outputs have the input's
 * shape up to the axis (1 after). The lowerings are in codegen/norm.c. */
#include "ir.h"
#include "infer.h"

bool infer_batchnorm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    if (x->rank < 2) { diag_error(d, n, "input must have rank 2 or more"); return false; }
    for (int i = 1; i < 5; i++)
        if (value_numel(n->in[i]) != x->dims[1]) {
            diag_error(d, n, "input %d ('%s') must have %lld elements, one per channel", i, n->in[i]->name, (long long)x->dims[1]);
            return false;
        }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    bool training = n->opset >= 14 && node_attrs(n, batch_norm)->training_mode != 0;
    if (n->n_out > 1 && !training) { diag_error(d, n, "outputs beyond Y are only defined in training mode"); return false; }
    for (int i = 1; i < n->n_out; i++)
        if (n->out[i]) set_out(n->out[i], n->in[3]->dtype, 1, &x->dims[1]);
    return true;
}

bool infer_layernorm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    int axis;
    if (!axis_norm(node_attrs(n, layer_norm)->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t inner = dims_numel(x->rank - axis, x->dims + axis);
    for (int i = 1; i < n->n_in; i++)
        if (n->in[i] && value_numel(n->in[i]) != inner) {
            diag_error(d, n, "input '%s' must have the normalized shape (%lld elements)", n->in[i]->name, (long long)inner);
            return false;
        }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    int64_t dims[MAX_RANK];
    for (int i = 0; i < x->rank; i++) dims[i] = i < axis ? x->dims[i] : 1;
    for (int i = 1; i < n->n_out; i++) if (n->out[i]) set_out(n->out[i], DT_F32, x->rank, dims);
    return true;
}

/* LpNormalization: x divided by its L1 or L2 norm along axis (default -1), a
 * zero norm giving zeros as ONNX Runtime does. */
bool infer_lp_norm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    int axis;
    int64_t p = node_attrs(n, lp_norm)->p;
    if (p != 1 && p != 2) { diag_error(d, n, "p must be 1 or 2, got %lld", (long long)p); return false; }
    if (x->rank < 1 || !axis_norm(node_attrs(n, lp_norm)->axis, x->rank, &axis)) {
        diag_error(d, n, "axis is out of range for rank %d", x->rank);
        return false;
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return check_size(n, n->out[0], d);
}

bool infer_instancenorm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    if (x->rank < 3) { diag_error(d, n, "input must have rank 3 or more"); return false; }
    for (int i = 1; i < 3; i++)
        if (value_numel(n->in[i]) != x->dims[1]) { diag_error(d, n, "scale and B must have one value per channel"); return false; }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}

bool infer_same_float(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (!dtype_is_float(x->dtype)) { diag_error(d, n, "input must be a float tensor"); return false; }
    if (n->op == OP_LRN && (x->rank < 3 || node_attrs(n, lrn)->size < 1)) { diag_error(d, n, "needs an input of rank 3 or more and size >= 1"); return false; }
    if (n->op == OP_MVN) {
        const attrs_mvn *a = node_attrs(n, mvn);
        for (int i = 0; i < a->axes.n; i++) {
            int ai;
            if (!axis_norm(a->axes.v[i], x->rank, &ai)) { diag_error(d, n, "axis %lld is out of range", (long long)a->axes.v[i]); return false; }
        }
        if (!a->has_axes && x->rank != 4) { diag_error(d, n, "the default axes [0, 2, 3] need a 4-D input"); return false; }
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}

bool infer_same(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX || n->op == OP_HARDMAX) {
        int axis;
        if (!float_input(n, x, d)) return false;
        int64_t ax = node_attrs(n, softmax)->axis; /* its default -1 from opset 13 on, 1 before */
        if (!axis_norm(ax, x->rank, &axis) && !(x->rank == 0)) {
            diag_error(d, n, "axis %lld is out of range for rank %d", (long long)ax, x->rank);
            return false;
        }
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}
