/* index.c: the shape rules of the ops that select elements by index or by
 * condition: Gather, GatherElements, GatherND, Scatter, ScatterElements,
 * ScatterND, OneHot (its depth a constant), TopK, Compress, NonZero, Unique.
 *
 * Compress's condition must be a constant: its count of true values is the
 * output's size. Outputs whose size depends on the data (NonZero, Unique, and
 * TopK whose K is read at run time) get their upper bound as their static
 * shape, with the dimension that varies marked in Value.dyn; the kernel writes
 * the sizes it produced, and such values may only be graph outputs
 * (passes/infer.c). The lowerings are in codegen/index.c. */
#include "ir.h"
#include "infer.h"

#include <string.h>

bool infer_gather(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1];
    int axis;
    if (x->rank < 1 || !axis_norm(node_attrs(n, gather)->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    if (idx->dtype != DT_I32 && idx->dtype != DT_I64) { diag_error(d, n, "indices must be int32 or int64, not %s", dtype_name(idx->dtype)); return false; }
    int r = x->rank - 1 + idx->rank;
    if (r > MAX_RANK) { diag_error(d, n, "result rank %d is above %d", r, MAX_RANK); return false; }
    if (idx->data)
        for (int64_t i = 0; i < value_numel(idx); i++) {
            int64_t k = value_const_int(idx, i);
            if (k < -x->dims[axis] || k >= x->dims[axis]) { diag_error(d, n, "index %lld is out of range for a dimension of %lld", (long long)k, (long long)x->dims[axis]); return false; }
        }
    int64_t dims[MAX_RANK];
    int k = 0;
    for (int i = 0; i < axis; i++) dims[k++] = x->dims[i];
    for (int i = 0; i < idx->rank; i++) dims[k++] = idx->dims[i];
    for (int i = axis + 1; i < x->rank; i++) dims[k++] = x->dims[i];
    set_out(n->out[0], x->dtype, r, dims);
    return check_size(n, n->out[0], d);
}

bool infer_gather_elements(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1];
    int axis;
    if (!axis_norm(node_attrs(n, gather_elements)->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    if (idx->rank != x->rank || (idx->dtype != DT_I64 && idx->dtype != DT_I32)) { diag_error(d, n, "indices must be int32/int64 of the data's rank"); return false; }
    set_out(n->out[0], x->dtype, idx->rank, idx->dims);
    return true;
}

bool infer_gather_nd(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1];
    int64_t b = node_attrs(n, gather_nd)->batch_dims;
    if (idx->dtype != DT_I64 || idx->rank < 1 || b < 0 || b >= idx->rank || b >= x->rank) { diag_error(d, n, "indices must be int64 with rank above batch_dims"); return false; }
    int64_t last = idx->dims[idx->rank - 1];
    if (last < 1 || b + last > x->rank) { diag_error(d, n, "the last index dimension %lld is too large for the data", (long long)last); return false; }
    for (int i = 0; i < b; i++) if (idx->dims[i] != x->dims[i]) { diag_error(d, n, "batch dimensions differ"); return false; }
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < idx->rank - 1; i++) dims[r++] = idx->dims[i];
    for (int i = (int)(b + last); i < x->rank; i++) { if (r >= MAX_RANK) { diag_error(d, n, "result rank too large"); return false; } dims[r++] = x->dims[i]; }
    set_out(n->out[0], x->dtype, r, dims);
    return true;
}

bool infer_scatter(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1], *u = n->in[2];
    const char *red = node_attrs(n, scatter)->reduction;
    if (strcmp(red, "none") && !(x->dtype == DT_F32 && (!strcmp(red, "add") || !strcmp(red, "mul")))) {
        diag_error(d, n, "reduction '%s' is supported for float32 add and mul only", red);
        return false;
    }
    if ((idx->dtype != DT_I64 && idx->dtype != DT_I32) || u->dtype != x->dtype) { diag_error(d, n, "indices must be int32/int64 and updates of the data's type"); return false; }
    if (n->op == OP_SCATTER_ND) {
        int64_t last = idx->rank ? idx->dims[idx->rank - 1] : 0;
        if (idx->dtype != DT_I64 || last < 1 || last > x->rank || u->rank != idx->rank - 1 + x->rank - last) { diag_error(d, n, "indices and updates do not fit the data"); return false; }
    } else {
        int axis;
        if (!axis_norm(node_attrs(n, scatter)->axis, x->rank, &axis) || !value_same_shape(idx, u) || idx->rank != x->rank) {
            diag_error(d, n, "indices and updates must have one shape and the data's rank");
            return false;
        }
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}

bool infer_onehot(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *idx = n->in[0], *depth = n->in[1], *vals = n->in[2];
    if (!depth->data || value_numel(depth) != 1) { diag_need(d, n, depth, "input '%s' must be a constant (the depth)", depth->name); return false; }
    if (value_numel(vals) != 2) { diag_error(d, n, "values must hold [off, on]"); return false; }
    int64_t dep = (int64_t)value_const_float(depth, 0);
    int r = idx->rank + 1, axis;
    if (dep < 1 || r > MAX_RANK || !axis_norm(node_attrs(n, one_hot)->axis, r, &axis)) { diag_error(d, n, "invalid depth or axis"); return false; }
    int64_t dims[MAX_RANK];
    for (int i = 0, j = 0; i < r; i++) dims[i] = i == axis ? dep : idx->dims[j++];
    set_out(n->out[0], vals->dtype, r, dims);
    return check_size(n, n->out[0], d);
}

bool infer_topk(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0], *k = n->in[1];
    int axis;
    if (value_numel(k) != 1 || k->dtype != DT_I64) { diag_error(d, n, "K must be one int64"); return false; }
    if (!axis_norm(node_attrs(n, topk)->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range"); return false; }
    /* K read at run time: the outputs are sized then (at most the whole axis) */
    int64_t kk = k->data ? value_const_int(k, 0) : x->dims[axis];
    if (kk < 0 || kk > x->dims[axis]) { diag_error(d, n, "K=%lld is out of range for a dimension of %lld", (long long)kk, (long long)x->dims[axis]); return false; }
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = kk;
    set_out(n->out[0], x->dtype, x->rank, dims);
    set_out(n->out[1], DT_I64, x->rank, dims);
    n->out[0]->dyn = n->out[1]->dyn = k->data ? 0 : 1u << axis;
    return true;
}

bool infer_compress(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *c = n->in[1];
    if (!c->data) { diag_need(d, n, c, "input '%s' must be a constant (computed at run time: only an executable built for this machine takes that)", c->name); return false; }
    if (c->rank != 1 || c->dtype != DT_BOOL) { diag_error(d, n, "condition must be a 1-D bool tensor"); return false; }
    const attrs_compress *a = node_attrs(n, compress);
    bool ax = a->has_axis; /* none: over the flattened input */
    int axis = -1;
    if (ax && !axis_norm(a->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range"); return false; }
    int64_t len = ax ? x->dims[axis] : value_numel(x), kept = 0;
    const unsigned char *cd = c->data;
    for (int64_t i = 0; i < c->dims[0] && i < len; i++) kept += cd[i] != 0;
    if (ax) {
        int64_t dims[MAX_RANK];
        memcpy(dims, x->dims, sizeof dims);
        dims[axis] = kept;
        set_out(n->out[0], x->dtype, x->rank, dims);
    } else set_out(n->out[0], x->dtype, 1, &kept);
    return true;
}

bool infer_nonzero(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    int64_t dims[2] = {x->rank, value_numel(x)};
    set_out(n->out[0], DT_I64, 2, dims);
    n->out[0]->dyn = 2;
    return true;
}

bool infer_unique(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    const attrs_unique *a = node_attrs(n, unique);
    bool ax = a->has_axis; /* none: over the flattened input */
    int axis = 0;
    if (ax && !axis_norm(a->axis, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    if (x->dtype == DT_STRING || x->dtype == DT_F16 || x->dtype == DT_BF16) { diag_error(d, n, "dtype %s is not supported", dtype_name(x->dtype)); return false; }
    int64_t len = ax ? x->dims[axis] : value_numel(x);
    if (ax) set_out(n->out[0], x->dtype, x->rank, x->dims);
    else set_out(n->out[0], x->dtype, 1, &len);
    n->out[0]->dyn = 1u << (ax ? axis : 0);
    for (int i = 1; i < n->n_out; i++) {
        set_out(n->out[i], DT_I64, 1, &len);
        n->out[i]->dyn = i == 2 ? 0 : 1; /* inverse_indices: one per input slice */
    }
    return true;
}
