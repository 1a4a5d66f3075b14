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
    int64_t p[7 + 7 * MAX_WIN] = {n->op == OP_AVERAGE_POOL, w.nd, x->dims[0], x->dims[1],
                                  node_attr_int(n, "count_include_pad", 0), idx != NULL, node_attr_int(n, "storage_order", 0)};
    int np = 7 + window_params(&w, p + 7);
    int out = out_f32(l, y);
    int bufs[3] = {out, idx ? lower_buf(l, idx) : 0, 0};
    bufs[idx ? 2 : 1] = in_f32(l, x);
    lower_call(l, KILN_K_pool, idx ? 3 : 2, bufs, np, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_max_unpool(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[2 + 2 * MAX_RANK] = {x->rank, value_numel(x)};
    if (!max_unpool_shape(n, x, p + 2, l->d)) return false;
    memcpy(p + 2 + x->rank, y->dims, sizeof(int64_t) * (size_t)x->rank);
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), lower_buf(l, n->in[1])};
    lower_call(l, KILN_K_max_unpool, 3, bufs, 2 + 2 * x->rank, p);
    out_f32_done(l, y, out);
    return true;
}
