/* movement.c: the lowerings of Transpose, Concat, Split, Slice, Pad, Tile,
 * DepthToSpace and SpaceToDepth (one 6-D transpose each) and ReverseSequence:
 * each a kernel call that moves elements of any size. The views (Reshape,
 * Flatten, Squeeze, Unsqueeze, Identity, Dropout) need no code (lower_view,
 * lower.c). */
#include "kir.h"

#include <string.h>

bool lower_transpose(Lower *l, Node *n) {
    const Value *x = n->in[0];
    kiln_p_transpose p = {.esize = dtype_size(x->dtype), .rank = x->rank};
    const attrs_transpose *a = node_attrs(n, transpose);
    for (int i = 0; i < x->rank; i++) {
        p.in_dims[i] = x->dims[i];
        int pi = x->rank - 1 - i;
        if (a->has_perm) axis_norm(a->perm.v[i], x->rank, &pi);
        p.perm[i] = pi;
    }
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    LOWER_CALL(l, transpose, 2, bufs, &p);
    return true;
}

bool lower_concat(Lower *l, Node *n) {
    const Value *y = n->out[0];
    int axis;
    axis_norm(node_attrs(n, concat)->axis, y->rank, &axis);
    /* any number of inputs: the struct's tail and the buffers sized by n */
    kiln_p_concat *p = arena_alloc(l->k->arena, sizeof(int64_t) * (size_t)(KILN_PWORDS_concat + n->n_in));
    p->esize = dtype_size(y->dtype);
    outer_inner(y, axis, &p->outer, &p->inner);
    p->n = n->n_in;
    int *bufs = arena_alloc(l->k->arena, sizeof(int) * (size_t)(1 + n->n_in));
    bufs[0] = lower_buf(l, y);
    for (int i = 0; i < n->n_in; i++) { p->len[i] = n->in[i]->dims[axis]; bufs[1 + i] = lower_buf(l, n->in[i]); }
    LOWER_CALL_TAIL(l, concat, 1 + n->n_in, bufs, p, n->n_in);
    return true;
}

bool lower_split(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int axis;
    axis_norm(node_attrs(n, split)->axis, x->rank, &axis);
    int64_t words[KILN_PWORDS_split + 64];
    kiln_p_split *p = (kiln_p_split *)words;
    p->esize = dtype_size(x->dtype);
    outer_inner(x, axis, &p->outer, &p->inner);
    p->n = n->n_out;
    int bufs[65];
    for (int i = 0; i < n->n_out; i++) { p->len[i] = n->out[i]->dims[axis]; bufs[i] = lower_buf(l, n->out[i]); }
    bufs[n->n_out] = lower_buf(l, x);
    LOWER_CALL_TAIL(l, split, 1 + n->n_out, bufs, p, n->n_out);
    return true;
}

bool lower_slice(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int r = x->rank;
    kiln_p_slice p = {.esize = dtype_size(x->dtype), .rank = r};
    if (!slice_compute(n, x, p.starts, p.steps, p.out_dims, l->d)) return false;
    for (int i = 0; i < r; i++) p.in_dims[i] = x->dims[i];
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    LOWER_CALL(l, slice, 2, bufs, &p);
    return true;
}

bool lower_pad(Lower *l, Node *n) {
    const Value *x = n->in[0], *cv = node_input(n, 2);
    int r = x->rank;
    kiln_p_pad p = {.esize = dtype_size(x->dtype), .rank = r};
    int64_t pe[MAX_RANK];
    if (!pad_amounts(n, x, p.pads_begin, pe, l->d)) return false;
    const attrs_pad *a = node_attrs(n, pad);
    for (int i = 0; i < r; i++) { p.in_dims[i] = x->dims[i]; p.out_dims[i] = n->out[0]->dims[i]; }
    p.mode = strcmp(a->mode, "reflect") == 0 ? 1 : strcmp(a->mode, "edge") == 0 ? 2 : 0;
    /* opset < 11: the constant is the float attribute "value" */
    bool va = n->opset < 11 && a->has_value;
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), 0};
    p.has_value = cv != NULL || va;
    if (cv) bufs[2] = lower_buf(l, cv);
    else if (va) {
        float f = (float)a->value;
        bufs[2] = lower_buf(l, graph_add_const(l->g, "pad_value", DT_F32, 0, NULL, &f));
    }
    LOWER_CALL(l, pad, p.has_value ? 3 : 2, bufs, &p);
    return true;
}

bool lower_tile(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int r = x->rank;
    kiln_p_tile p = {.esize = dtype_size(x->dtype), .rank = r};
    for (int i = 0; i < r; i++) { p.in_dims[i] = x->dims[i]; p.out_dims[i] = n->out[0]->dims[i]; }
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    LOWER_CALL(l, tile, 2, bufs, &p);
    return true;
}

/* DepthToSpace and SpaceToDepth are one 6-D transpose each. */
bool lower_space_depth(Lower *l, Node *n) {
    const Value *x = n->in[0];
    const attrs_space_depth *a = node_attrs(n, space_depth);
    int64_t b = a->blocksize, N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    kiln_p_transpose p = {.esize = dtype_size(x->dtype), .rank = 6};
    int64_t *dims = p.in_dims, *perm = p.perm;
    static const int64_t dcr[6] = {0, 3, 4, 1, 5, 2}, crd[6] = {0, 1, 4, 2, 5, 3}, s2d[6] = {0, 3, 5, 1, 2, 4};
    const int64_t *pm;
    if (n->op == OP_DEPTH_TO_SPACE && strcmp(a->mode, "CRD") == 0) {
        int64_t v[6] = {N, C / (b * b), b, b, H, W};
        memcpy(dims, v, sizeof v);
        pm = crd;
    } else if (n->op == OP_DEPTH_TO_SPACE) {
        int64_t v[6] = {N, b, b, C / (b * b), H, W};
        memcpy(dims, v, sizeof v);
        pm = dcr;
    } else {
        int64_t v[6] = {N, C, H / b, b, W / b, b};
        memcpy(dims, v, sizeof v);
        pm = s2d;
    }
    memcpy(perm, pm, 6 * sizeof *pm);
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    LOWER_CALL(l, transpose, 2, bufs, &p);
    return true;
}

bool lower_reverse_sequence(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int b;
    axis_norm(node_attrs(n, reverse_sequence)->batch_axis, x->rank, &b);
    kiln_p_reverse_sequence p = {.esize = dtype_size(x->dtype), .batch_axis = b, .d0 = x->dims[0], .d1 = x->dims[1],
                                 .inner = dims_numel(x->rank - 2, x->dims + 2)};
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, n->in[1])};
    LOWER_CALL(l, reverse_sequence, 3, bufs, &p);
    return true;
}
