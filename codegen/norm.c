/* norm.c: the lowerings of BatchNormalization (in training mode with its
 * running statistics, written to scratch when the model does not ask for
 * them), LayerNormalization, InstanceNormalization, MeanVarianceNormalization,
 * LRN, and of Softmax, LogSoftmax and Hardmax over [outer, len, inner] around
 * the axis (before opset 13 the input is coerced to 2-D at the axis). Each is
 * one kernel call, in float32. */
#include "kir.h"

#include <string.h>

bool lower_batchnorm(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    const attrs_batch_norm *a = node_attrs(n, batch_norm);
    bool training = n->opset >= 14 && a->training_mode != 0;
    int64_t N = x->dims[0], C = x->dims[1], inner = dims_numel(x->rank - 2, x->dims + 2);
    int64_t eps = kiln_d2p(a->epsilon);
    int outs[3] = {out_f32(l, y), 0, 0}, bufs[8], nb = 0;
    int nout = training ? 3 : 1;
    for (int i = 1; i < nout; i++) {
        /* running statistics: written to scratch when the model does not ask for them */
        const Value *o = i < n->n_out ? n->out[i] : NULL;
        outs[i] = o ? out_f32(l, o) : scratch_buf(l, DT_F32, x->dims[1]);
    }
    for (int i = 0; i < nout; i++) bufs[nb++] = outs[i];
    for (int i = 0; i < 5; i++) bufs[nb++] = in_f32(l, n->in[i]);
    if (training) {
        kiln_p_batchnorm_train p = {.N = N, .C = C, .inner = inner, .eps = eps,
                                    .momentum = kiln_d2p(a->momentum)};
        LOWER_CALL(l, batchnorm_train, nb, bufs, &p);
    } else {
        kiln_p_batchnorm p = {.N = N, .C = C, .inner = inner, .eps = eps};
        LOWER_CALL(l, batchnorm, nb, bufs, &p);
    }
    out_f32_done(l, y, outs[0]);
    for (int i = 1; i < nout && i < n->n_out; i++) if (n->out[i]) out_f32_done(l, n->out[i], outs[i]);
    return true;
}

bool lower_layernorm(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int axis;
    axis_norm(node_attrs(n, layer_norm)->axis, x->rank, &axis);
    int64_t outer = dims_numel(axis, x->dims), inner = dims_numel(x->rank - axis, x->dims + axis);
    const Value *b = node_input(n, 2);
    kiln_p_layernorm p = {.outer = outer, .inner = inner, .eps = kiln_d2p(node_attrs(n, layer_norm)->epsilon), .has_bias = b != NULL};
    int outs[3] = {out_f32(l, y), 0, 0}, bufs[6];
    for (int i = 1; i < 3; i++) {
        const Value *o = i < n->n_out ? n->out[i] : NULL;
        outs[i] = o ? lower_buf(l, o) : scratch_buf(l, DT_F32, outer);
    }
    int sc = in_f32(l, n->in[1]);
    int in[3] = {in_f32(l, x), sc, b ? in_f32(l, b) : sc};
    for (int i = 0; i < 3; i++) { bufs[i] = outs[i]; bufs[3 + i] = in[i]; }
    LOWER_CALL(l, layernorm, 6, bufs, &p);
    out_f32_done(l, y, outs[0]);
    return true;
}

/* LpNormalization: the norms by the reduce kernel (L1 or L2 over axis) into
 * scratch, then one loop over [outer, len, inner]: y = norm == 0 ? 0 : x / norm. */
bool lower_lp_norm(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int axis;
    axis_norm(node_attrs(n, lp_norm)->axis, x->rank, &axis);
    int64_t outer, inner, len = x->dims[axis];
    outer_inner(x, axis, &outer, &inner);
    int xb = in_f32(l, x), norms = scratch_buf(l, DT_F32, outer * inner), out = out_f32(l, y);
    kiln_p_reduce p = {.kind = node_attrs(n, lp_norm)->p == 1 ? 5 : 6, /* the reduce kernel's l1, l2 */
                       .rank = x->rank, .reduce_mask = (int64_t)1 << axis};
    for (int i = 0; i < x->rank; i++) p.dims[i] = x->dims[i];
    int rb[3] = {norms, xb, xb};
    LOWER_CALL(l, reduce, 3, rb, &p);
    KLoop *lp = arena_alloc(l->k->arena, sizeof *lp);
    lp->rank = 3, lp->dims[0] = outer, lp->dims[1] = len, lp->dims[2] = inner;
    lp->nin = 2, lp->in[0] = xb, lp->in[1] = norms;
    lp->strides[0][0] = len * inner, lp->strides[0][1] = inner, lp->strides[0][2] = 1;
    lp->strides[1][0] = inner, lp->strides[1][1] = 0, lp->strides[1][2] = 1;
    static const KInstr code[6] = {
        {KI_LOAD, DT_F32, 0, 0, 0, 0, 0}, {KI_LOAD, DT_F32, 1, 0, 0, 0, 0}, {KI_CONST, DT_F32, 0, 0, 0, 0, 0},
        {KI_EQUAL, DT_BOOL, 1, 2, 0, 0, 0}, {KI_DIV, DT_F32, 0, 1, 0, 0, 0}, {KI_WHERE, DT_F32, 2, 4, 3, 0, 0}};
    lp->code = arena_alloc(l->k->arena, sizeof code);
    memcpy(lp->code, code, sizeof code);
    lp->ncode = 6;
    lp->out = out;
    add_step(l, KS_LOOP)->loop = lp;
    out_f32_done(l, y, out);
    return true;
}

bool lower_instancenorm(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    kiln_p_instancenorm p = {.N = x->dims[0], .C = x->dims[1], .inner = dims_numel(x->rank - 2, x->dims + 2),
                             .eps = kiln_d2p(node_attrs(n, instance_norm)->epsilon)};
    int out = out_f32(l, y);
    int bufs[4] = {out, in_f32(l, x), in_f32(l, n->in[1]), in_f32(l, n->in[2])};
    LOWER_CALL(l, instancenorm, 4, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_mvn(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    kiln_p_mvn p = {.rank = x->rank};
    uint64_t mask = 0;
    const attrs_mvn *a = node_attrs(n, mvn);
    for (int i = 0; i < a->axes.n; i++) {
        int ai;
        axis_norm(a->axes.v[i], x->rank, &ai);
        mask |= 1ull << ai;
    }
    if (!a->has_axes) mask = 1 | 4 | 8;
    for (int d = 0; d < x->rank; d++) p.dims[d] = x->dims[d];
    p.mask = (int64_t)mask;
    int64_t groups = 1;
    for (int d = 0; d < x->rank; d++) if (!(mask >> d & 1)) groups *= x->dims[d];
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), step_scratch(l, (2 * groups + 1) * (int64_t)sizeof(double))};
    LOWER_CALL(l, mvn, 3, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_lrn(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    kiln_p_lrn p = {.N = x->dims[0], .C = x->dims[1], .inner = dims_numel(x->rank - 2, x->dims + 2), .size = node_attrs(n, lrn)->size,
                    .alpha = kiln_d2p(node_attrs(n, lrn)->alpha), .beta = kiln_d2p(node_attrs(n, lrn)->beta),
                    .bias = kiln_d2p(node_attrs(n, lrn)->bias)};
    int out = out_f32(l, y), bufs[2] = {out, in_f32(l, x)};
    LOWER_CALL(l, lrn, 2, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

/* Softmax, LogSoftmax and Hardmax: [outer, len, inner] around the axis. Before
 * opset 13 the input is coerced to 2-D at the axis (len covers the rest). */
static void softmax_split(const Node *n, const Value *x, int64_t *outer, int64_t *len, int64_t *inner) {
    int axis = 0;
    if (x->rank > 0) axis_norm(node_attrs(n, softmax)->axis, x->rank, &axis);
    if (x->rank == 0) { *outer = *len = *inner = 1; return; }
    outer_inner(x, axis, outer, inner);
    *len = x->dims[axis];
    if (n->opset < 13) { *len = dims_numel(x->rank - axis, x->dims + axis); *inner = 1; }
}

/* Softmax and LogSoftmax (the softmax kernel) and Hardmax (its own kernel). */
bool lower_softmax(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t outer, len, inner;
    softmax_split(n, x, &outer, &len, &inner);
    int out = out_f32(l, y);
    int bufs[2] = {out, in_f32(l, x)};
    if (n->op == OP_HARDMAX) {
        kiln_p_hardmax p = {.outer = outer, .len = len, .inner = inner};
        LOWER_CALL(l, hardmax, 2, bufs, &p);
    } else {
        kiln_p_softmax p = {.outer = outer, .axis_len = len, .inner = inner, .log = n->op == OP_LOG_SOFTMAX};
        LOWER_CALL(l, softmax, 2, bufs, &p);
    }
    out_f32_done(l, y, out);
    return true;
}
