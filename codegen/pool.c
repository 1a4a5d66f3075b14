/* pool.c: the lowerings of MaxPool and AveragePool (one call of the pool
 * kernel with the window as parameters, and MaxPool's optional indices) and
 * MaxUnpool (X scattered at its indices into a zeroed output). The global
 * pools are reductions (reduce.c). */
#include "kir.h"

#include <string.h>

bool lower_pool(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    const Value *idx = n->n_out > 1 ? n->out[1] : NULL;
    Window w;
    if (!window_compute(n, x, NULL, &w, l->d)) return false;
    const attrs_pool *a = node_attrs(n, pool);
    kiln_p_pool p = {n->op == OP_AVERAGE_POOL, w.nd, x->dims[0], x->dims[1], a->count_include_pad, idx != NULL, a->storage_order, window_params(&w)};
    int out = out_f32(l, y);
    int bufs[3] = {out, idx ? lower_buf(l, idx) : 0, 0};
    bufs[idx ? 2 : 1] = in_f32(l, x);
    LOWER_CALL(l, pool, idx ? 3 : 2, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_max_unpool(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    kiln_p_max_unpool p = {.rank = x->rank, .numel_x = value_numel(x)};
    if (!max_unpool_shape(n, x, p.unpooled, l->d)) return false;
    memcpy(p.out_dims, y->dims, sizeof(int64_t) * (size_t)x->rank);
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), lower_buf(l, n->in[1])};
    LOWER_CALL(l, max_unpool, 3, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
