/* movement.c: the lowerings of Transpose, Concat, Split, Slice, Pad, Tile,
 * DepthToSpace and SpaceToDepth (one 6-D transpose each) and ReverseSequence:
 * each a kernel call that moves elements of any size. The views (Reshape,
 * Flatten, Squeeze, Unsqueeze, Identity, Dropout) need no code (lower_view,
 * lower.c). */
#include "kir.h"

#include <string.h>

bool lower_transpose(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int64_t p[2 + 2 * MAX_RANK] = {dtype_size(x->dtype), x->rank};
    const Attr *a = node_attr(n, "perm");
    for (int i = 0; i < x->rank; i++) {
        p[2 + i] = x->dims[i];
        int pi = x->rank - 1 - i;
        if (a) axis_norm(a->ints[i], x->rank, &pi);
        p[2 + x->rank + i] = pi;
    }
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_transpose, 2, bufs, 2 + 2 * x->rank, p);
    return true;
}

bool lower_concat(Lower *l, Node *n) {
    const Value *y = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", 1), y->rank, &axis);
    int64_t p[4 + 64];
    p[0] = dtype_size(y->dtype);
    outer_inner(y, axis, &p[1], &p[2]);
    p[3] = n->n_in;
    int bufs[65];
    bufs[0] = lower_buf(l, y);
    for (int i = 0; i < n->n_in; i++) { p[4 + i] = n->in[i]->dims[axis]; bufs[1 + i] = lower_buf(l, n->in[i]); }
    lower_call(l, KILN_K_concat, 1 + n->n_in, bufs, 4 + n->n_in, p);
    return true;
}

bool lower_split(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis);
    int64_t p[4 + 64];
    p[0] = dtype_size(x->dtype);
    outer_inner(x, axis, &p[1], &p[2]);
    p[3] = n->n_out;
    int bufs[65];
    for (int i = 0; i < n->n_out; i++) { p[4 + i] = n->out[i]->dims[axis]; bufs[i] = lower_buf(l, n->out[i]); }
    bufs[n->n_out] = lower_buf(l, x);
    lower_call(l, KILN_K_split, 1 + n->n_out, bufs, 4 + n->n_out, p);
    return true;
}

bool lower_slice(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int r = x->rank;
    int64_t p[2 + 4 * MAX_RANK] = {dtype_size(x->dtype), r};
    if (!slice_compute(n, x, p + 2 + 2 * r, p + 2 + 3 * r, p + 2 + r, l->d)) return false;
    for (int i = 0; i < r; i++) p[2 + i] = x->dims[i];
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_slice, 2, bufs, 2 + 4 * r, p);
    return true;
}

bool lower_pad(Lower *l, Node *n) {
    const Value *x = n->in[0], *cv = node_input(n, 2);
    int r = x->rank;
    int64_t p[4 + 3 * MAX_RANK], pe[MAX_RANK];
    if (!pad_amounts(n, x, p + 2 + 2 * r, pe, l->d)) return false;
    const char *mode = node_attr_string(n, "mode", "constant");
    p[0] = dtype_size(x->dtype);
    p[1] = r;
    for (int i = 0; i < r; i++) { p[2 + i] = x->dims[i]; p[2 + r + i] = n->out[0]->dims[i]; }
    p[2 + 3 * r] = strcmp(mode, "reflect") == 0 ? 1 : strcmp(mode, "edge") == 0 ? 2 : 0;
    /* opset < 11: the constant is the float attribute "value" */
    const Attr *va = n->opset < 11 ? node_attr(n, "value") : NULL;
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), 0};
    p[3 + 3 * r] = cv != NULL || va != NULL;
    if (cv) bufs[2] = lower_buf(l, cv);
    else if (va) {
        float f = (float)va->f;
        bufs[2] = lower_buf(l, graph_add_const(l->g, "pad_value", DT_F32, 0, NULL, &f));
    }
    lower_call(l, KILN_K_pad, p[3 + 3 * r] ? 3 : 2, bufs, 4 + 3 * r, p);
    return true;
}

bool lower_tile(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int r = x->rank;
    int64_t p[2 + 2 * MAX_RANK] = {dtype_size(x->dtype), r};
    for (int i = 0; i < r; i++) { p[2 + i] = x->dims[i]; p[2 + r + i] = n->out[0]->dims[i]; }
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_tile, 2, bufs, 2 + 2 * r, p);
    return true;
}

/* DepthToSpace and SpaceToDepth are one 6-D transpose each. */
bool lower_space_depth(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int64_t b = node_attr_int(n, "blocksize", 1), N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t p[14] = {dtype_size(x->dtype), 6};
    int64_t *dims = p + 2, *perm = p + 8;
    static const int64_t dcr[6] = {0, 3, 4, 1, 5, 2}, crd[6] = {0, 1, 4, 2, 5, 3}, s2d[6] = {0, 3, 5, 1, 2, 4};
    const int64_t *pm;
    if (n->op == OP_DEPTH_TO_SPACE && strcmp(node_attr_string(n, "mode", "DCR"), "CRD") == 0) {
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
    lower_call(l, KILN_K_transpose, 2, bufs, 14, p);
    return true;
}

bool lower_reverse_sequence(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int b;
    axis_norm(node_attr_int(n, "batch_axis", 1), x->rank, &b);
    int64_t p[5] = {dtype_size(x->dtype), b, x->dims[0], x->dims[1], dims_numel(x->rank - 2, x->dims + 2)};
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, n->in[1])};
    lower_call(l, KILN_K_reverse_sequence, 3, bufs, 5, p);
    return true;
}
