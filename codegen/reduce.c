/* reduce.c: the lowerings of the reductions (ReduceSum to ReduceSumSquare and
 * the global pools: one kernel call over the mask of reduced axes that
 * reduce_axes gives, a copy when nothing is reduced), ArgMax, ArgMin and
 * CumSum. */
#include "kir.h"

bool lower_reduce(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    uint32_t mask;
    bool keep, noop;
    if (!reduce_axes(n, x, &mask, &keep, &noop, l->d)) return false;
    if (noop) {
        int bufs[2] = {lower_buf(l, y), lower_buf(l, x)};
        kiln_p_copy p = {.nbytes = value_nbytes(x)};
        LOWER_CALL(l, copy, 2, bufs, &p);
        return true;
    }
    kiln_p_reduce p = {.rank = x->rank, .reduce_mask = mask};
    static const int kinds[OP_COUNT] = {
        [OP_REDUCE_SUM] = 0, [OP_REDUCE_MEAN] = 1, [OP_GLOBAL_AVERAGE_POOL] = 1, [OP_REDUCE_MAX] = 2, [OP_GLOBAL_MAX_POOL] = 2, [OP_REDUCE_MIN] = 3,
        [OP_REDUCE_PROD] = 4, [OP_REDUCE_L1] = 5, [OP_REDUCE_L2] = 6, [OP_REDUCE_LOG_SUM] = 7,
        [OP_REDUCE_LOG_SUM_EXP] = 8, [OP_REDUCE_SUM_SQUARE] = 9};
    p.kind = kinds[n->op];
    for (int i = 0; i < x->rank; i++) p.dims[i] = x->dims[i];
    int out = out_f32(l, y);
    int bufs[3] = {out, in_f32(l, x), 0};
    bufs[2] = p.kind == 8 ? step_scratch(l, value_numel(y) * 4) : bufs[1];
    LOWER_CALL(l, reduce, 3, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_argmax(Lower *l, Node *n) {
    const Value *x = n->in[0];
    const attrs_argmax *a = node_attrs(n, argmax);
    int axis;
    axis_norm(a->axis, x->rank, &axis);
    kiln_p_argmax p = {.min = n->op == OP_ARG_MIN, .len = x->dims[axis], .select_last_index = a->select_last_index};
    outer_inner(x, axis, &p.outer, &p.inner);
    int bufs[2] = {lower_buf(l, n->out[0]), in_f32(l, x)};
    LOWER_CALL(l, argmax, 2, bufs, &p);
    return true;
}

bool lower_cumsum(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int axis;
    axis_norm(value_const_int(n->in[1], 0), x->rank, &axis);
    kiln_p_cumsum p = {.len = x->dims[axis], .exclusive = node_attrs(n, cumsum)->exclusive,
                       .reverse = node_attrs(n, cumsum)->reverse};
    outer_inner(x, axis, &p.outer, &p.inner);
    int out = out_f32(l, y);
    int bufs[2] = {out, in_f32(l, x)};
    LOWER_CALL(l, cumsum, 2, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
