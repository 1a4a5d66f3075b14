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
    axis_norm(node_attrs(n, gather)->axis, x->rank, &axis);
    kiln_p_gather p = {.esize = dtype_size(x->dtype), .axis_len = x->dims[axis], .n_idx = value_numel(idx), .idx_esize = dtype_size(idx->dtype)};
    outer_inner(x, axis, &p.outer, &p.inner);
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    LOWER_CALL(l, gather, 3, bufs, &p);
    return true;
}

bool lower_gather_elements(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1];
    int axis, r = x->rank;
    axis_norm(node_attrs(n, gather_elements)->axis, r, &axis);
    kiln_p_gather_elements p = {.esize = dtype_size(x->dtype), .rank = r, .axis = axis, .idx_esize = dtype_size(idx->dtype)};
    for (int i = 0; i < r; i++) { p.idx_dims[i] = idx->dims[i]; p.data_dims[i] = x->dims[i]; }
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    LOWER_CALL(l, gather_elements, 3, bufs, &p);
    return true;
}

bool lower_gather_nd(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1];
    int64_t b = node_attrs(n, gather_nd)->batch_dims, last = idx->dims[idx->rank - 1];
    int64_t batch = dims_numel((int)b, x->dims), n_idx = dims_numel(idx->rank - 1 - (int)b, idx->dims + b);
    int64_t slice = dims_numel(x->rank - (int)(b + last), x->dims + b + last);
    kiln_p_gather_nd p = {.esize = dtype_size(x->dtype), .batch = batch, .n_idx = n_idx, .last = last, .slice = slice,
                          .data_batch_stride = dims_numel(x->rank - (int)b, x->dims + b)};
    for (int64_t k = 0; k < last; k++) p.data_dims[k] = x->dims[b + k];
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    LOWER_CALL(l, gather_nd, 3, bufs, &p);
    return true;
}

bool lower_scatter(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1], *u = n->in[2];
    const char *red = node_attrs(n, scatter)->reduction;
    int r = x->rank, axis = 0;
    if (n->op != OP_SCATTER_ND) axis_norm(node_attrs(n, scatter)->axis, r, &axis);
    kiln_p_scatter p = {.esize = dtype_size(x->dtype), .kind = n->op == OP_SCATTER_ND,
                        .reduction = !strcmp(red, "add") ? 1 : !strcmp(red, "mul") ? 2 : 0,
                        .n_upd = n->op == OP_SCATTER_ND ? dims_numel(idx->rank - 1, idx->dims) : value_numel(u),
                        .axis_or_last = n->op == OP_SCATTER_ND ? idx->dims[idx->rank - 1] : axis, .rank = r,
                        .idx_esize = dtype_size(idx->dtype)};
    for (int i = 0; i < r; i++) { p.dims[i] = x->dims[i]; p.upd_dims[i] = n->op == OP_SCATTER_ND ? 1 : u->dims[i]; }
    int bufs[4] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx), lower_buf(l, u)};
    LOWER_CALL(l, scatter, 4, bufs, &p);
    return true;
}

bool lower_onehot(Lower *l, Node *n) {
    const Value *idx = n->in[0], *y = n->out[0];
    int axis;
    axis_norm(node_attrs(n, one_hot)->axis, y->rank, &axis);
    kiln_p_onehot p = {.esize = dtype_size(y->dtype), .outer = dims_numel(axis, y->dims), .depth = y->dims[axis],
                       .inner = dims_numel(y->rank - axis - 1, y->dims + axis + 1)};
    int bufs[3] = {lower_buf(l, y), in_f32(l, idx), lower_buf(l, n->in[2])};
    LOWER_CALL(l, onehot, 3, bufs, &p);
    return true;
}

bool lower_topk(Lower *l, Node *n) {
    const Value *x = n->in[0], *v = n->out[0];
    const attrs_topk *a = node_attrs(n, topk);
    int axis;
    axis_norm(a->axis, x->rank, &axis);
    const Value *k = n->in[1];
    kiln_p_topk p = {.len = x->dims[axis], .k = k->data ? value_const_int(k, 0) : -1, .largest = a->largest,
                     .sorted = a->sorted, .axis = axis, .rank = x->rank};
    outer_inner(x, axis, &p.outer, &p.inner);
    for (int i = 0; i < x->rank; i++) p.dims[i] = x->dims[i];
    int out = out_f32(l, v);
    int bufs[7] = {out, lower_buf(l, n->out[1]), in_f32(l, x), step_scratch(l, p.len * 20), lower_buf(l, k), 0, 0};
    if (!k->data) { /* K read at run time: both outputs' dims go to their shape buffers */
        bufs[5] = shape_slot(l, n->out[0]);
        bufs[6] = shape_slot(l, n->out[1]);
    } else bufs[5] = bufs[6] = bufs[3];
    LOWER_CALL(l, topk, 7, bufs, &p);
    out_f32_done(l, v, out);
    return true;
}

/* Compress with a constant condition: a Gather of the kept positions. */
bool lower_compress(Lower *l, Node *n) {
    const Value *x = n->in[0], *c = n->in[1], *y = n->out[0];
    const attrs_compress *a = node_attrs(n, compress);
    bool ax = a->has_axis;
    int axis = 0;
    if (ax) axis_norm(a->axis, x->rank, &axis);
    int64_t outer = 1, len = value_numel(x), inner = 1, kept = ax ? y->dims[axis] : value_numel(y);
    if (ax) { len = x->dims[axis]; outer_inner(x, axis, &outer, &inner); }
    int64_t *idx = arena_alloc(l->k->arena, (size_t)(kept + 1) * sizeof *idx), k = 0;
    const unsigned char *cd = c->data;
    for (int64_t i = 0; i < c->dims[0] && i < len; i++) if (cd[i]) idx[k++] = i;
    Value *iv = graph_add_const(l->g, arena_printf(l->k->arena, "%s:kept", n->name), DT_I64, 1, &kept, idx);
    iv->id = -1;
    kiln_p_gather p = {dtype_size(x->dtype), outer, len, inner, kept, 8};
    int bufs[3] = {lower_buf(l, y), lower_buf(l, x), lower_buf(l, iv)};
    LOWER_CALL(l, gather, 3, bufs, &p);
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
    kiln_p_nonzero p = {.rank = x->rank, .numel = value_numel(x), .esize = dtype_size(x->dtype), .kind = elem_kind(x->dtype)};
    for (int i = 0; i < x->rank; i++) p.dims[i] = x->dims[i];
    int bufs[3] = {lower_buf(l, n->out[0]), shape_slot(l, n->out[0]), lower_buf(l, x)};
    LOWER_CALL(l, nonzero, 3, bufs, &p);
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
    const attrs_unique *a = node_attrs(n, unique);
    bool ax = a->has_axis;
    int axis = 0;
    if (ax) axis_norm(a->axis, x->rank, &axis);
    int64_t outer = 1, len = value_numel(x), inner = 1;
    if (ax) { len = x->dims[axis]; outer_inner(x, axis, &outer, &inner); }
    kiln_p_unique p = {.outer = outer, .len = len, .inner = inner, .esize = dtype_size(x->dtype), .kind = elem_kind(x->dtype),
                       .sorted = a->sorted, .axis = ax ? axis : 0, .rank = y->rank};
    for (int i = 0; i < y->rank; i++) p.dims[i] = y->dims[i];
    int b[9];
    b[0] = lower_buf(l, y);
    b[1] = shape_slot(l, n->out[0]);
    b[2] = out_or_scratch(l, n, 1, len, &b[3]);
    b[4] = out_or_scratch(l, n, 2, len, NULL);
    b[5] = out_or_scratch(l, n, 3, len, &b[6]);
    b[7] = lower_buf(l, x);
    b[8] = step_scratch(l, 4 * len * 8);
    LOWER_CALL(l, unique, 9, b, &p);
    return true;
}
