/* infer.c: what the shape rules share: set_out, need_shapes, check_size,
 * float_input, const_ints, ints_from, attr_ints, and the window of a
 * convolution or pool (window_compute). The rules themselves are in one file
 * per op family, named as codegen/ names the lowerings: elementwise.c,
 * linalg.c, conv.c, pool.c, resize.c, norm.c, loss.c, reduce.c, index.c,
 * movement.c, meta.c, signal.c, quant.c, rnn.c, attention.c, moe.c,
 * strings.c, detection.c, control.c and sequence.c; ops.c is the table.
 *
 * A rule reads its node's inputs (whose types are already known, since nodes are
 * visited in topological order) and attributes, checks everything a model file
 * can get wrong, and sets each output's dtype and dims. Inputs that decide a
 * shape (Reshape's shape, Slice's starts, ...) must be constants by then; the
 * infer pass folds constant subgraphs as it goes, so exporters' shape
 * arithmetic (Shape -> Gather -> Concat -> Reshape) is constant here. Meta ops
 * (Shape, Constant, ConstantOfShape) compute their output data directly.
 * Opset differences (attributes that became inputs, Softmax's 2-D coercion
 * before opset 13, ...) are handled in the rules and the lowerings, keyed on
 * node->opset. No output may be larger than 64 GiB (check_size). */
#include "ir.h"
#include "infer.h"

#include <string.h>

#define LIMIT_BYTES ((int64_t)1 << 36)

void set_out(Value *o, DType dt, int rank, const int64_t *dims) {
    o->dtype = dt;
    o->rank = rank;
    for (int i = 0; i < rank; i++) o->dims[i] = dims[i];
}

bool check_size(Node *n, Value *o, Diags *d) {
    int64_t nb = value_nbytes(o);
    if (value_numel(o) < 0 || nb < 0 || nb > LIMIT_BYTES) {
        diag_error(d, n, "output '%s' is too large (its size overflows or exceeds 64 GiB)", o->name);
        return false;
    }
    return true;
}

bool need_shapes(Node *n, Diags *d) {
    for (int i = 0; i < n->n_in; i++) {
        Value *v = n->in[i];
        if (v && v->rank < 0) {
            diag_error(d, n, "input '%s' has no known shape (symbolic or data-dependent dimensions: fix them with --shape)", v->name);
            return false;
        }
        if (v && dtype_size(v->dtype) == 0) {
            diag_error(d, n, "input '%s' has dtype %s, which kiln does not support", v->name, dtype_name(v->dtype));
            return false;
        }
    }
    return true;
}

bool const_ints(const Value *v, int64_t *out, int max, int *count) {
    if (!v || !v->data || v->rank > 1 || dtype_is_float(v->dtype)) return false;
    int64_t n = value_numel(v);
    if (n > max) return false;
    for (int64_t i = 0; i < n; i++) out[i] = value_const_int(v, i);
    *count = (int)n;
    return true;
}

/* Integer list from the parsed attribute attr (when opset < since; has: the
 * node carries it) or constant input idx. */
bool ints_from(Node *n, AttrInts attr, bool has, int idx, int since, int64_t *out, int *count, bool *present, Diags *d) {
    *present = false;
    *count = 0;
    if (n->opset < since) {
        if (!has) return true;
        if (attr.n > 64) { diag_error(d, n, "an attribute list of %d values is above the limit of 64", attr.n); return false; }
        for (int i = 0; i < attr.n; i++) out[i] = attr.v[i];
        *count = attr.n;
        *present = true;
        return true;
    }
    Value *v = node_input(n, idx);
    if (!v) return true;
    if (!const_ints(v, out, 64, count)) {
        diag_need(d, n, v, "input '%s' must be a constant list of integers (computed at run time: only an executable built for this machine takes that)", v->name);
        return false;
    }
    *present = true;
    return true;
}

bool float_input(Node *n, Value *v, Diags *d) {
    if (dtype_is_float(v->dtype) || (dtype_size(v->dtype) && v->dtype != DT_BOOL)) return true;
    diag_error(d, n, "input '%s' has dtype %s, which this op does not accept", v->name, dtype_name(v->dtype));
    return false;
}

bool attr_ints(const Node *n, const char *name, AttrInts list, bool has, int64_t *out, int want, int64_t dflt, Diags *d) {
    for (int i = 0; i < want; i++) out[i] = dflt;
    if (!has) return true;
    if (list.n != want) {
        diag_error(d, n, "attribute '%s' must have %d values", name, want);
        return false;
    }
    for (int i = 0; i < want; i++) out[i] = list.v[i];
    return true;
}

bool window_compute(const Node *n, const Value *x, const int64_t *kernel, Window *w, Diags *d) {
    int nd = x->rank - 2;
    if (nd < 1 || nd > MAX_WIN) { diag_error(d, n, "input must have 1 to 3 spatial dimensions (rank 3 to 5), got rank %d", x->rank); return false; }
    memset(w, 0, sizeof *w);
    w->nd = nd;
    /* the window's fields, which the conv and pool sets share (only the pools
     * have ceil_mode) */
    const attrs_pool *p = n->op == OP_MAX_POOL || n->op == OP_AVERAGE_POOL ? node_attrs(n, pool) : NULL;
    const attrs_conv *c = p ? NULL : node_attrs(n, conv);
#define F(f) (p ? p->f : c->f)
#define LIST(f) #f, F(f), F(has_##f)
    int64_t pads[2 * MAX_WIN];
    if (kernel) memcpy(w->k, kernel, (size_t)nd * sizeof *kernel);
    else {
        if (!F(has_kernel_shape) || F(kernel_shape).n != nd) { diag_error(d, n, "attribute 'kernel_shape' must have %d values", nd); return false; }
        memcpy(w->k, F(kernel_shape).v, (size_t)nd * sizeof *w->k);
    }
    if (!attr_ints(n, LIST(strides), w->stride, nd, 1, d) || !attr_ints(n, LIST(dilations), w->dil, nd, 1, d) ||
        !attr_ints(n, LIST(pads), pads, 2 * nd, 0, d))
        return false;
    const char *ap = F(auto_pad);
    bool ceil_mode = p && p->ceil_mode != 0;
#undef LIST
#undef F
    for (int i = 0; i < nd; i++) {
        int64_t in = x->dims[2 + i], k = w->k[i], s = w->stride[i], dl = w->dil[i];
        if (k < 1 || s < 1 || dl < 1 || pads[i] < 0 || pads[nd + i] < 0 || k > (1 << 24) || dl > (1 << 24) || pads[i] > (1 << 30) || pads[nd + i] > (1 << 30)) {
            diag_error(d, n, "invalid kernel, stride, dilation or pad in dimension %d", i);
            return false;
        }
        int64_t ext = dl * (k - 1) + 1;
        w->in[i] = in;
        if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
            int64_t out = (in + s - 1) / s;
            int64_t total = (out - 1) * s + ext - in;
            if (total < 0) total = 0;
            int64_t small = total / 2, big = total - small;
            w->pad_b[i] = strcmp(ap, "SAME_UPPER") == 0 ? small : big;
            w->pad_e[i] = total - w->pad_b[i];
            w->out[i] = out;
            continue;
        }
        if (strcmp(ap, "VALID") == 0) pads[i] = pads[nd + i] = 0;
        else if (strcmp(ap, "NOTSET") != 0) { diag_error(d, n, "unknown auto_pad '%s'", ap); return false; }
        w->pad_b[i] = pads[i];
        w->pad_e[i] = pads[nd + i];
        int64_t span = in + pads[i] + pads[nd + i] - ext;
        if (span < 0) { diag_error(d, n, "the kernel is larger than the padded input in dimension %d", i); return false; }
        w->out[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    }
    return true;
}
