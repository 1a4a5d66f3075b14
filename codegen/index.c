/* index.c: the lowerings of Gather, GatherElements, GatherND, the Scatter
 * ops, OneHot, TopK, Compress (a Gather of the positions its constant
 * condition keeps), NonZero and Unique.
 *
 * TopK with K read at run time, NonZero and Unique (runtime/index.c) write
 * the sizes they produced to their outputs' shape buffers (shape_slot); an
 * output the model leaves out goes to scratch. */
#include "kir.h"

#include <string.h>

bool lower_gather(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1];
    int axis;
    axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis);
    int64_t p[6] = {dtype_size(x->dtype), 0, x->dims[axis], 0, value_numel(idx), dtype_size(idx->dtype)};
    outer_inner(x, axis, &p[1], &p[3]);
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    lower_call(l, KILN_K_gather, 3, bufs, 6, p);
    return true;
}

bool lower_gather_elements(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1];
    int axis, r = x->rank;
    axis_norm(node_attr_int(n, "axis", 0), r, &axis);
    int64_t p[4 + 2 * MAX_RANK];
    p[0] = dtype_size(x->dtype);
    p[1] = r;
    for (int i = 0; i < r; i++) { p[2 + i] = idx->dims[i]; p[2 + r + i] = x->dims[i]; }
    p[2 + 2 * r] = axis;
    p[3 + 2 * r] = dtype_size(idx->dtype);
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    lower_call(l, KILN_K_gather_elements, 3, bufs, 4 + 2 * r, p);
    return true;
}

bool lower_gather_nd(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1];
    int64_t b = node_attr_int(n, "batch_dims", 0), last = idx->dims[idx->rank - 1];
    int64_t batch = dims_numel((int)b, x->dims), n_idx = dims_numel(idx->rank - 1 - (int)b, idx->dims + b);
    int64_t slice = dims_numel(x->rank - (int)(b + last), x->dims + b + last);
    int64_t p[6 + MAX_RANK] = {dtype_size(x->dtype), batch, n_idx, last, slice};
    for (int64_t k = 0; k < last; k++) p[5 + k] = x->dims[b + k];
    p[5 + last] = dims_numel(x->rank - (int)b, x->dims + b);
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    lower_call(l, KILN_K_gather_nd, 3, bufs, 6 + (int)last, p);
    return true;
}

bool lower_scatter(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1], *u = n->in[2];
    const char *red = node_attr_string(n, "reduction", "none");
    int r = x->rank, axis = 0;
    if (n->op != OP_SCATTER_ND) axis_norm(node_attr_int(n, "axis", 0), r, &axis);
    int64_t p[8 + 2 * MAX_RANK] = {dtype_size(x->dtype), n->op == OP_SCATTER_ND, !strcmp(red, "add") ? 1 : !strcmp(red, "mul") ? 2 : 0,
                                   n->op == OP_SCATTER_ND ? dims_numel(idx->rank - 1, idx->dims) : value_numel(u),
                                   n->op == OP_SCATTER_ND ? idx->dims[idx->rank - 1] : axis, r};
    for (int i = 0; i < r; i++) { p[6 + i] = x->dims[i]; p[7 + r + i] = n->op == OP_SCATTER_ND ? 1 : u->dims[i]; }
    p[6 + r] = dtype_size(idx->dtype);
    int bufs[4] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx), lower_buf(l, u)};
    lower_call(l, KILN_K_scatter, 4, bufs, 7 + 2 * r, p);
    return true;
}

bool lower_onehot(Lower *l, Node *n) {
    const Value *idx = n->in[0], *y = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", -1), y->rank, &axis);
    int64_t p[4] = {dtype_size(y->dtype), dims_numel(axis, y->dims), y->dims[axis], dims_numel(y->rank - axis - 1, y->dims + axis + 1)};
    int bufs[3] = {lower_buf(l, y), in_f32(l, idx), lower_buf(l, n->in[2])};
    lower_call(l, KILN_K_onehot, 3, bufs, 4, p);
    return true;
}

bool lower_topk(Lower *l, Node *n) {
    const Value *x = n->in[0], *v = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", -1), x->rank, &axis);
    const Value *k = n->in[1];
    int64_t p[8 + MAX_RANK] = {0, x->dims[axis], 0, k->data ? value_const_int(k, 0) : -1, node_attr_int(n, "largest", 1),
                               node_attr_int(n, "sorted", 1), axis, x->rank};
    outer_inner(x, axis, &p[0], &p[2]);
    for (int i = 0; i < x->rank; i++) p[8 + i] = x->dims[i];
    int out = out_f32(l, v);
    int bufs[7] = {out, lower_buf(l, n->out[1]), in_f32(l, x), step_scratch(l, p[1] * 20), lower_buf(l, k), 0, 0};
    if (!k->data) { /* K read at run time: both outputs' dims go to their shape buffers */
        bufs[5] = shape_slot(l, n->out[0]);
        bufs[6] = shape_slot(l, n->out[1]);
    } else bufs[5] = bufs[6] = bufs[3];
    lower_call(l, KILN_K_topk, 7, bufs, 8 + x->rank, p);
    out_f32_done(l, v, out);
    return true;
}

/* Compress with a constant condition: a Gather of the kept positions. */
bool lower_compress(Lower *l, Node *n) {
    const Value *x = n->in[0], *c = n->in[1], *y = n->out[0];
    const Attr *ax = node_attr(n, "axis");
    int axis = 0;
    if (ax) axis_norm(ax->i, x->rank, &axis);
    int64_t outer = 1, len = value_numel(x), inner = 1, kept = ax ? y->dims[axis] : value_numel(y);
    if (ax) { len = x->dims[axis]; outer_inner(x, axis, &outer, &inner); }
    int64_t *idx = arena_alloc(l->k->arena, (size_t)(kept + 1) * sizeof *idx), k = 0;
    const unsigned char *cd = c->data;
    for (int64_t i = 0; i < c->dims[0] && i < len; i++) if (cd[i]) idx[k++] = i;
    Value *iv = graph_add_const(l->g, arena_printf(l->k->arena, "%s:kept", n->name), DT_I64, 1, &kept, idx);
    iv->id = -1;
    int64_t p[6] = {dtype_size(x->dtype), outer, len, inner, kept, 8};
    int bufs[3] = {lower_buf(l, y), lower_buf(l, x), lower_buf(l, iv)};
    lower_call(l, KILN_K_gather, 3, bufs, 6, p);
    return true;
}

/* ---- outputs sized at run time (runtime/index.c) ---- */

static int64_t elem_kind(DType t) {
    switch (t) {
    case DT_F32: return 2;
    case DT_F64: return 3;
    case DT_F16: case DT_BF16: return 4;
    case DT_I8: case DT_I16: case DT_I32: case DT_I64: return 0;
    default: return 1;
    }
}

bool lower_nonzero(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int64_t p[4 + MAX_RANK] = {x->rank, value_numel(x), dtype_size(x->dtype), elem_kind(x->dtype)};
    for (int i = 0; i < x->rank; i++) p[4 + i] = x->dims[i];
    int bufs[3] = {lower_buf(l, n->out[0]), shape_slot(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_nonzero, 3, bufs, 4 + x->rank, p);
    return true;
}

/* an optional output's buffer, or scratch when the model leaves it out */
static int out_or_scratch(Lower *l, Node *n, int i, int64_t numel, int *shape) {
    if (i < n->n_out && n->out[i]) {
        if (shape) *shape = n->out[i]->dyn ? shape_slot(l, n->out[i]) : scratch_buf(l, DT_I64, MAX_RANK);
        return lower_buf(l, n->out[i]);
    }
    if (shape) *shape = scratch_buf(l, DT_I64, MAX_RANK);
    return scratch_buf(l, DT_I64, numel);
}

bool lower_unique(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    const Attr *ax = node_attr(n, "axis");
    int axis = 0;
    if (ax) axis_norm(ax->i, x->rank, &axis);
    int64_t outer = 1, len = value_numel(x), inner = 1;
    if (ax) { len = x->dims[axis]; outer_inner(x, axis, &outer, &inner); }
    int64_t p[8 + MAX_RANK] = {outer, len, inner, dtype_size(x->dtype), elem_kind(x->dtype),
                               node_attr_int(n, "sorted", 1), ax ? axis : 0, y->rank};
    for (int i = 0; i < y->rank; i++) p[8 + i] = y->dims[i];
    int b[9];
    b[0] = lower_buf(l, y);
    b[1] = shape_slot(l, n->out[0]);
    b[2] = out_or_scratch(l, n, 1, len, &b[3]);
    b[4] = out_or_scratch(l, n, 2, len, NULL);
    b[5] = out_or_scratch(l, n, 3, len, &b[6]);
    b[7] = lower_buf(l, x);
    b[8] = step_scratch(l, 4 * len * 8);
    lower_call(l, KILN_K_unique, 9, b, 8 + y->rank, p);
    return true;
}
