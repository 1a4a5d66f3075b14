/* reduce.c: the shape rules of the reductions, ReduceSum to ReduceSumSquare
 * (axes from the attribute, or from a constant input since opset 18, 13 for
 * ReduceSum; none: every axis, or nothing with noop_with_empty_axes) and the
 * global pools (every spatial axis, kept), of ArgMax and ArgMin (int64, one
 * axis) and CumSum (its axis a constant input). reduce_axes gives the lowering
 * the same mask of reduced axes. The lowerings are in codegen/reduce.c. */
#include "ir.h"
#include "infer.h"

bool reduce_axes(const Node *n, const Value *x, uint32_t *mask, bool *keepdims, bool *noop, Diags *d) {
    int64_t axes[64];
    int count = 0;
    bool present;
    *noop = false;
    *mask = 0;
    if (n->op == OP_GLOBAL_AVERAGE_POOL || n->op == OP_GLOBAL_MAX_POOL) {
        for (int i = 2; i < x->rank; i++) *mask |= 1u << i;
        *keepdims = true;
        return true;
    }
    const attrs_reduce *a = node_attrs(n, reduce);
    *keepdims = a->keepdims != 0;
    int since = n->op == OP_REDUCE_SUM ? 13 : 18;
    if (!ints_from((Node *)n, a->axes, a->has_axes, 1, since, axes, &count, &present, d)) return false;
    if (count == 0) {
        if (a->noop_with_empty_axes) { *noop = true; return true; }
        for (int i = 0; i < x->rank; i++) *mask |= 1u << i;
        return true;
    }
    for (int i = 0; i < count; i++) {
        int a;
        if (!axis_norm(axes[i], x->rank, &a)) { diag_error(d, n, "axis %lld is out of range for rank %d", (long long)axes[i], x->rank); return false; }
        *mask |= 1u << a;
    }
    return true;
}

bool infer_reduce(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    uint32_t mask;
    bool keep, noop;
    if (!reduce_axes(n, x, &mask, &keep, &noop, d)) return false;
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (noop || !(mask >> i & 1)) dims[r++] = x->dims[i];
        else if (keep) dims[r++] = 1;
    }
    set_out(n->out[0], x->dtype, r, dims);
    return true;
}

bool infer_global_pool(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    if (x->rank < 3) { diag_error(d, n, "input must have rank 3 or more"); return false; }
    int64_t dims[MAX_RANK];
    for (int i = 0; i < x->rank; i++) dims[i] = i < 2 ? x->dims[i] : 1;
    set_out(n->out[0], x->dtype, x->rank, dims);
    return true;
}

bool infer_argmax(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    int axis;
    const attrs_argmax *a = node_attrs(n, argmax);
    if (!axis_norm(a->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    if (x->dims[axis] == 0) { diag_error(d, n, "cannot take the arg-extremum of an empty axis"); return false; }
    bool keep = a->keepdims != 0;
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (i != axis) dims[r++] = x->dims[i];
        else if (keep) dims[r++] = 1;
    }
    set_out(n->out[0], DT_I64, r, dims);
    return true;
}

bool infer_cumsum(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *a = n->in[1];
    int axis;
    if (!a->data || value_numel(a) != 1) { diag_need(d, n, a, "input '%s' must be a constant scalar (computed at run time: only an executable built for this machine takes that)", a->name); return false; }
    if (!axis_norm(value_const_int(a, 0), n->in[0]->rank, &axis)) { diag_error(d, n, "axis is out of range"); return false; }
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, n->in[0]->dims);
    return true;
}
