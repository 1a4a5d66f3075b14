/* pool.c: the shape rules of MaxPool and AveragePool (window_compute's
 * geometry, kernel_shape from the attribute; MaxPool's optional indices are
 * int64 of the output's shape) and MaxUnpool (X, I, output_shape?), whose
 * output is the shape its indices address (max_unpool_shape, from
 * kernel_shape, strides and pads) or output_shape, which only pads that shape
 * at the end. The global pools are reductions (reduce.c). The lowerings are in
 * codegen/pool.c. */
#include "ir.h"
#include "infer.h"

#include <string.h>

bool infer_pool(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    Window w;
    if (!window_compute(n, x, NULL, &w, d)) return false;
    int64_t dims[MAX_RANK] = {x->dims[0], x->dims[1]};
    for (int i = 0; i < w.nd; i++) dims[2 + i] = w.out[i];
    set_out(n->out[0], x->dtype, x->rank, dims);
    if (n->n_out > 1 && n->out[1]) set_out(n->out[1], DT_I64, x->rank, dims);
    return check_size(n, n->out[0], d);
}

/* The output shape MaxUnpool's indices refer to: from kernel_shape, strides
 * and pads (output_shape, when given, only pads that shape at the end). */
bool max_unpool_shape(const Node *n, const Value *x, int64_t *dims, Diags *d) {
    int nd = x->rank - 2;
    const attrs_max_unpool *a = node_attrs(n, max_unpool);
    bool st = a->has_strides, pd = a->has_pads;
    if (!a->has_kernel_shape || a->kernel_shape.n != nd || (st && a->strides.n != nd) || (pd && a->pads.n != 2 * nd)) {
        diag_error(d, n, "needs kernel_shape (and strides, pads) for %d spatial dimensions", nd);
        return false;
    }
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < nd; i++) {
        dims[2 + i] = (x->dims[2 + i] - 1) * (st ? a->strides.v[i] : 1) + a->kernel_shape.v[i] - (pd ? a->pads.v[i] + a->pads.v[nd + i] : 0);
        if (dims[2 + i] < 1 || dims[2 + i] > ((int64_t)1 << 40)) { diag_error(d, n, "invalid output size in dimension %d", 2 + i); return false; }
    }
    return true;
}

bool infer_max_unpool(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1];
    int nd = x->rank - 2;
    if (nd < 1 || nd > MAX_WIN || !value_same_shape(x, idx) || idx->dtype != DT_I64) {
        diag_error(d, n, "needs X [N, C, spatial...] and int64 indices of the same shape");
        return false;
    }
    int64_t dims[MAX_RANK], def[MAX_RANK];
    if (!max_unpool_shape(n, x, def, d)) return false;
    memcpy(dims, def, sizeof def);
    const Value *os = node_input(n, 2);
    int count;
    if (os && (!const_ints(os, dims, MAX_RANK, &count) || count != x->rank)) {
        diag_need(d, n, os, "input '%s' must be a constant of %d sizes", os->name, x->rank);
        return false;
    }
    for (int i = 0; i < x->rank; i++)
        if (dims[i] < def[i] || dims[i] > ((int64_t)1 << 40)) {
            diag_error(d, n, "output_shape %lld in dimension %d is smaller than the unpooled size %lld", (long long)dims[i], i, (long long)def[i]);
            return false;
        }
    set_out(n->out[0], x->dtype, x->rank, dims);
    return true;
}
