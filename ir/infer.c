/* infer.c: the type and shape rule of every op in ops.def, and the table itself.
 *
 * A rule reads its node's inputs (whose types are already known, since nodes are
 * visited in topological order) and attributes, checks everything a model file
 * can get wrong, and sets each output's dtype and dims. Inputs that decide a
 * shape (Reshape's shape, Slice's starts, ...) must be constants by then; the
 * infer pass folds constant subgraphs as it goes, so exporters' shape
 * arithmetic (Shape -> Gather -> Concat -> Reshape) is constant here. Meta ops
 * (Shape, Constant, ConstantOfShape) compute their output data directly.
 * Opset differences (attributes that became inputs, Softmax's 2-D coercion
 * before opset 13, ...) are handled here and in the lowering, keyed on
 * node->opset. */
#include "ir.h"
#include "infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LIMIT_BYTES ((int64_t)1 << 36)

void set_out(Value *o, DType dt, int rank, const int64_t *dims) {
    o->dtype = dt;
    o->rank = rank;
    for (int i = 0; i < rank; i++) o->dims[i] = dims[i];
}

static bool check_size(Node *n, Value *o, Diags *d) {
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

/* Integer list from attribute `attr` (when opset < since) or constant input idx. */
static bool ints_from(Node *n, const char *attr, int idx, int since, int64_t *out, int *count, bool *present, Diags *d) {
    *present = false;
    *count = 0;
    if (n->opset < since) {
        const Attr *a = node_attr(n, attr);
        if (!a) return true;
        if (a->kind != ATTR_INTS || a->n > 64) { diag_error(d, n, "attribute '%s' must be a list of at most 64 ints", attr); return false; }
        for (int i = 0; i < a->n; i++) out[i] = a->ints[i];
        *count = a->n;
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

/* ---- elementwise ---- */

static bool op_in(OpKind op, const OpKind *list, int n) {
    for (int i = 0; i < n; i++) if (list[i] == op) return true;
    return false;
}

static const OpKind float_only_ops[] = {
    OP_SQRT, OP_EXP, OP_LOG, OP_SIGMOID, OP_TANH, OP_LEAKY_RELU, OP_RECIPROCAL, OP_FLOOR, OP_CEIL, OP_ROUND,
    OP_SIN, OP_COS, OP_TAN, OP_ASIN, OP_ACOS, OP_ATAN, OP_SINH, OP_COSH, OP_ASINH, OP_ACOSH, OP_ATANH,
    OP_SOFTPLUS, OP_SOFTSIGN, OP_HARD_SWISH, OP_ELU, OP_CELU, OP_THRESHOLDED_RELU, OP_SELU, OP_HARD_SIGMOID,
    OP_IS_NAN, OP_IS_INF};
static const OpKind bool_only_ops[] = {OP_NOT, OP_AND, OP_OR, OP_XOR};
static const OpKind bool_result_ops[] = {OP_NOT, OP_AND, OP_OR, OP_XOR, OP_EQUAL, OP_LESS, OP_GREATER,
                                         OP_LESS_OR_EQUAL, OP_GREATER_OR_EQUAL, OP_IS_NAN, OP_IS_INF};
static const OpKind bool_ok_ops[] = {OP_MIN, OP_MAX, OP_EQUAL, OP_WHERE, OP_NOT, OP_AND, OP_OR, OP_XOR, OP_CAST, OP_CAST_LIKE};
#define IN_LIST(op, l) op_in(op, l, (int)(sizeof l / sizeof *l))

bool infer_elementwise(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    if (n->op == OP_PRELU && n->opset < 7 && n->in[1]->data && n->in[1]->rank == 1 && n->in[0]->rank > 2 &&
        n->in[1]->dims[0] == n->in[0]->dims[1] && n->in[1]->dims[0] != 1) {
        /* before opset 7 a 1-D slope holds one value per channel (axis 1) */
        int64_t dims[MAX_RANK];
        int r = n->in[0]->rank - 1;
        for (int i = 0; i < r; i++) dims[i] = i ? 1 : n->in[1]->dims[0];
        n->in[1] = graph_add_const(g, arena_printf(g->arena, "%s.per_channel", n->in[1]->name), n->in[1]->dtype, r, dims, n->in[1]->data);
    }
    int first = n->op == OP_WHERE ? 1 : 0; /* Where: the data inputs decide the type */
    DType dt = n->in[first]->dtype;
    if (n->op == OP_CAST || n->op == OP_CAST_LIKE) {
        int64_t to = n->op == OP_CAST_LIKE ? n->in[1]->dtype : node_attr_int(n, "to", 0);
        if (dtype_size((DType)to) == 0) { diag_error(d, n, "Cast: unsupported or missing 'to' type %lld", (long long)to); return false; }
        dt = (DType)to;
    } else {
        for (int i = first + 1; i < n->n_in; i++)
            if (n->in[i] && n->in[i]->dtype != dt && n->op != OP_POW) {
                diag_error(d, n, "inputs have different dtypes (%s and %s)", dtype_name(dt), dtype_name(n->in[i]->dtype));
                return false;
            }
        if (n->op == OP_WHERE && n->in[0]->dtype != DT_BOOL) { diag_error(d, n, "the condition must be bool, not %s", dtype_name(n->in[0]->dtype)); return false; }
        if (IN_LIST(n->op, float_only_ops) && !dtype_is_float(dt)) { diag_error(d, n, "dtype %s is not accepted (float types only)", dtype_name(dt)); return false; }
        if (IN_LIST(n->op, bool_only_ops) && dt != DT_BOOL) { diag_error(d, n, "dtype %s is not accepted (bool only)", dtype_name(dt)); return false; }
        if (dt == DT_BOOL && !IN_LIST(n->op, bool_ok_ops)) { diag_error(d, n, "dtype bool is not accepted"); return false; }
        if (n->op == OP_BIT_SHIFT && (dtype_is_float(dt) || dtype_is_signed_int(dt))) { diag_error(d, n, "BitShift takes unsigned integers, not %s", dtype_name(dt)); return false; }
        if (n->op == OP_MOD && dtype_is_float(dt) && !node_attr_int(n, "fmod", 0)) { diag_error(d, n, "Mod of floats needs fmod=1"); return false; }
        if (IN_LIST(n->op, bool_result_ops)) dt = DT_BOOL;
    }
    if (n->op == OP_CLIP)
        for (int i = 1; i < n->n_in; i++)
            if (n->in[i] && value_numel(n->in[i]) != 1) { diag_error(d, n, "Clip's min and max must be scalars"); return false; }
    int rank;
    int64_t dims[MAX_RANK];
    if (!shape_broadcast(n->in, (n->op == OP_CLIP || n->op == OP_CAST_LIKE) ? 1 : n->n_in, &rank, dims)) {
        char a[128], b[128];
        diag_error(d, n, "input shapes %s and %s do not broadcast", value_type_str(n->in[0], a, sizeof a),
                   value_type_str(n->in[n->n_in - 1], b, sizeof b));
        return false;
    }
    set_out(n->out[0], dt, rank, dims);
    return check_size(n, n->out[0], d);
}

/* Expand: broadcast input 0 against the constant shape of input 1. */
bool infer_expand(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    int64_t shape[64];
    int count;
    if (!const_ints(n->in[1], shape, 64, &count)) {
        diag_need(d, n, n->in[1], "input '%s' must be a constant list of integers (computed at run time: only an executable built for this machine takes that)", n->in[1]->name);
        return false;
    }
    if (count > MAX_RANK) { diag_error(d, n, "rank %d is above %d", count, MAX_RANK); return false; }
    Value sv = {0};
    sv.rank = count;
    for (int i = 0; i < count; i++) {
        if (shape[i] < 0) { diag_error(d, n, "negative dimension in the shape"); return false; }
        sv.dims[i] = shape[i];
    }
    Value *pair[2] = {n->in[0], &sv};
    int rank;
    int64_t dims[MAX_RANK];
    if (!shape_broadcast(pair, 2, &rank, dims)) { diag_error(d, n, "input does not broadcast to the shape"); return false; }
    set_out(n->out[0], n->in[0]->dtype, rank, dims);
    return check_size(n, n->out[0], d);
}

/* ---- linear algebra ---- */

static bool float_input(Node *n, Value *v, Diags *d) {
    if (dtype_is_float(v->dtype) || (dtype_size(v->dtype) && v->dtype != DT_BOOL)) return true;
    diag_error(d, n, "input '%s' has dtype %s, which this op does not accept", v->name, dtype_name(v->dtype));
    return false;
}

bool infer_matmul(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *a = n->in[0], *b = n->in[1];
    if (a->dtype != b->dtype) { diag_error(d, n, "inputs have different dtypes"); return false; }
    if (a->rank < 1 || b->rank < 1) { diag_error(d, n, "MatMul inputs must have rank 1 or more"); return false; }
    int64_t K = a->dims[a->rank - 1], Kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
    if (K != Kb) {
        char x[128], y[128];
        diag_error(d, n, "inner dimensions differ: %s x %s", value_type_str(a, x, sizeof x), value_type_str(b, y, sizeof y));
        return false;
    }
    Value ab = *a, bb = *b;
    ab.rank = a->rank > 2 ? a->rank - 2 : 0;
    bb.rank = b->rank > 2 ? b->rank - 2 : 0;
    Value *pair[2] = {&ab, &bb};
    int rank;
    int64_t dims[MAX_RANK];
    if (!shape_broadcast(pair, 2, &rank, dims)) { diag_error(d, n, "batch dimensions do not broadcast"); return false; }
    if (a->rank >= 2) dims[rank++] = a->dims[a->rank - 2];
    if (b->rank >= 2) dims[rank++] = b->dims[b->rank - 1];
    set_out(n->out[0], a->dtype, rank, dims);
    return check_size(n, n->out[0], d);
}

bool infer_gemm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *a = n->in[0], *b = n->in[1], *c = node_input(n, 2);
    if (a->rank != 2 || b->rank != 2) { diag_error(d, n, "Gemm inputs A and B must be 2-D"); return false; }
    int ta = node_attr_int(n, "transA", 0) != 0, tb = node_attr_int(n, "transB", 0) != 0;
    int64_t M = a->dims[ta], K = a->dims[!ta], Kb = b->dims[tb], N = b->dims[!tb];
    if (K != Kb) { diag_error(d, n, "inner dimensions differ (%lld and %lld)", (long long)K, (long long)Kb); return false; }
    int64_t dims[2] = {M, N};
    if (c) {
        if (c->rank > 2) { diag_error(d, n, "Gemm's C must have rank 2 or less"); return false; }
        for (int i = 0; i < c->rank; i++) {
            int64_t cd = c->dims[i], want = dims[2 - c->rank + i];
            if (cd != 1 && cd != want) { diag_error(d, n, "C does not broadcast to [%lld,%lld]", (long long)M, (long long)N); return false; }
        }
    }
    set_out(n->out[0], a->dtype, 2, dims);
    return check_size(n, n->out[0], d);
}

/* ---- windows: conv and pools ---- */

static bool attr_ints(const Node *n, const char *name, int64_t *out, int want, int64_t dflt, Diags *d) {
    const Attr *a = node_attr(n, name);
    for (int i = 0; i < want; i++) out[i] = dflt;
    if (!a) return true;
    if (a->kind != ATTR_INTS || a->n != want) {
        diag_error(d, n, "attribute '%s' must have %d values", name, want);
        return false;
    }
    for (int i = 0; i < want; i++) out[i] = a->ints[i];
    return true;
}

bool window_compute(const Node *n, const Value *x, const int64_t *kernel, Window *w, Diags *d) {
    int nd = x->rank - 2;
    if (nd < 1 || nd > MAX_WIN) { diag_error(d, n, "input must have 1 to 3 spatial dimensions (rank 3 to 5), got rank %d", x->rank); return false; }
    memset(w, 0, sizeof *w);
    w->nd = nd;
    int64_t pads[2 * MAX_WIN];
    if (kernel) memcpy(w->k, kernel, (size_t)nd * sizeof *kernel);
    else {
        const Attr *ks = node_attr(n, "kernel_shape");
        if (!ks || ks->kind != ATTR_INTS || ks->n != nd) { diag_error(d, n, "attribute 'kernel_shape' must have %d values", nd); return false; }
        memcpy(w->k, ks->ints, (size_t)nd * sizeof *w->k);
    }
    if (!attr_ints(n, "strides", w->stride, nd, 1, d) || !attr_ints(n, "dilations", w->dil, nd, 1, d) ||
        !attr_ints(n, "pads", pads, 2 * nd, 0, d))
        return false;
    const char *ap = node_attr_string(n, "auto_pad", "NOTSET");
    bool ceil_mode = node_attr_int(n, "ceil_mode", 0) != 0;
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

/* Whether the runtime computes this convolution on its direct kernel (a
 * service of the layers above; without one, every convolution counts as direct). */
static bool conv_direct(const Graph *g, int64_t C, int64_t M, int64_t group) {
    const IrServices *s = graph_services(g);
    return !s || !s->conv_is_direct || s->conv_is_direct(C, M, group);
}

bool infer_conv(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0], *wt = n->in[1], *b = node_input(n, 2);
    if (wt->rank != x->rank) { diag_error(d, n, "weight rank %d differs from input rank %d", wt->rank, x->rank); return false; }
    int64_t group = node_attr_int(n, "group", 1);
    if (x->rank < 3) { diag_error(d, n, "input must have rank 3 to 5"); return false; }
    int64_t C = x->dims[1], M = wt->dims[0];
    if (group < 1 || C % group || M % group || wt->dims[1] * group != C) {
        diag_error(d, n, "channels do not match: input has %lld, weight expects %lld x group %lld", (long long)C, (long long)wt->dims[1], (long long)group);
        return false;
    }
    const Attr *ks = node_attr(n, "kernel_shape");
    if (ks && (ks->kind != ATTR_INTS || ks->n != x->rank - 2 || memcmp(ks->ints, wt->dims + 2, (size_t)ks->n * sizeof(int64_t)) != 0)) {
        diag_error(d, n, "kernel_shape does not match the weight's shape");
        return false;
    }
    if (b && (b->rank != 1 || b->dims[0] != M)) { diag_error(d, n, "bias must have shape [%lld]", (long long)M); return false; }
    Window w;
    if (!window_compute(n, x, wt->dims + 2, &w, d)) return false;
    int64_t dims[MAX_RANK] = {x->dims[0], M};
    for (int i = 0; i < w.nd; i++) dims[2 + i] = w.out[i];
    set_out(n->out[0], x->dtype, x->rank, dims);
    /* a 4th input only as the fuse pass's residual (kiln.residual): added to
     * the output before the clamp, same shape and dtype */
    Value *r = node_input(n, 3);
    if (n->n_in > 3 && (!node_attr(n, "kiln.residual") || !b || !r || conv_direct(g, C, M, group) || r->dtype != x->dtype || r->rank != x->rank ||
                        memcmp(r->dims, dims, (size_t)x->rank * sizeof(int64_t)) != 0)) {
        diag_error(d, n, "takes at most 3 inputs (a 4th is kiln.residual: a bias and an input of the output's shape, not depthwise)");
        return false;
    }
    return check_size(n, n->out[0], d);
}

/* ConvTranspose geometry: out = stride*(in-1) + output_padding + (k-1)*dil + 1
 * - pads, or output_shape given, with pads derived (SAME_* or explicit). */
bool convt_window(const Node *n, const Value *x, const Value *wt, Window *w, Diags *d) {
    int nd = x->rank - 2;
    if (nd < 1 || nd > MAX_WIN) { diag_error(d, n, "input must have 1 to 3 spatial dimensions"); return false; }
    memset(w, 0, sizeof *w);
    w->nd = nd;
    int64_t pads[2 * MAX_WIN], opad[MAX_WIN], oshape[MAX_WIN];
    if (!attr_ints(n, "strides", w->stride, nd, 1, d) || !attr_ints(n, "dilations", w->dil, nd, 1, d) ||
        !attr_ints(n, "pads", pads, 2 * nd, 0, d) || !attr_ints(n, "output_padding", opad, nd, 0, d))
        return false;
    const Attr *os = node_attr(n, "output_shape");
    if (os && (os->kind != ATTR_INTS || (os->n != nd && os->n != x->rank))) { diag_error(d, n, "output_shape must have %d values", nd); return false; }
    for (int i = 0; i < nd && os; i++) oshape[i] = os->ints[os->n - nd + i];
    const char *ap = node_attr_string(n, "auto_pad", "NOTSET");
    for (int i = 0; i < nd; i++) {
        int64_t in = x->dims[2 + i], k = wt->dims[2 + i], s = w->stride[i], dl = w->dil[i];
        if (s < 1 || dl < 1 || k < 1 || pads[i] < 0 || pads[nd + i] < 0) { diag_error(d, n, "invalid stride, dilation, kernel or pad"); return false; }
        w->k[i] = k;
        w->in[i] = in;
        int64_t full = s * (in - 1) + opad[i] + (k - 1) * dl + 1;
        if (os || strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
            int64_t out = os ? oshape[i] : in * s;
            int64_t total = full - out;
            if (total < 0) total = 0;
            /* as the spec says: SAME_UPPER starts with total/2, everything else ends with it */
            w->pad_b[i] = strcmp(ap, "SAME_UPPER") == 0 ? total / 2 : total - total / 2;
            w->pad_e[i] = total - w->pad_b[i];
            w->out[i] = out;
        } else {
            w->pad_b[i] = strcmp(ap, "VALID") == 0 ? 0 : pads[i];
            w->pad_e[i] = strcmp(ap, "VALID") == 0 ? 0 : pads[nd + i];
            w->out[i] = full - w->pad_b[i] - w->pad_e[i];
        }
        if (w->out[i] < 0) { diag_error(d, n, "negative output size"); return false; }
    }
    return true;
}

bool infer_conv_transpose(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0], *wt = n->in[1], *b = node_input(n, 2);
    int64_t group = node_attr_int(n, "group", 1);
    if (wt->rank != x->rank || x->rank < 3 || group < 1 || x->dims[1] != wt->dims[0] || x->dims[1] % group) {
        diag_error(d, n, "weight shape does not match the input's channels");
        return false;
    }
    int64_t M = wt->dims[1] * group;
    if (b && value_numel(b) != M) { diag_error(d, n, "bias must have %lld values", (long long)M); return false; }
    Window w;
    if (!convt_window(n, x, wt, &w, d)) return false;
    int64_t dims[MAX_RANK] = {x->dims[0], M};
    for (int i = 0; i < w.nd; i++) dims[2 + i] = w.out[i];
    set_out(n->out[0], x->dtype, x->rank, dims);
    return check_size(n, n->out[0], d);
}

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

bool infer_global_pool(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    if (x->rank < 3) { diag_error(d, n, "input must have rank 3 or more"); return false; }
    int64_t dims[MAX_RANK];
    for (int i = 0; i < x->rank; i++) dims[i] = i < 2 ? x->dims[i] : 1;
    set_out(n->out[0], x->dtype, x->rank, dims);
    return true;
}

bool infer_batchnorm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    if (x->rank < 2) { diag_error(d, n, "input must have rank 2 or more"); return false; }
    for (int i = 1; i < 5; i++)
        if (value_numel(n->in[i]) != x->dims[1]) {
            diag_error(d, n, "input %d ('%s') must have %lld elements, one per channel", i, n->in[i]->name, (long long)x->dims[1]);
            return false;
        }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    bool training = n->opset >= 14 && node_attr_int(n, "training_mode", 0) != 0;
    if (n->n_out > 1 && !training) { diag_error(d, n, "outputs beyond Y are only defined in training mode"); return false; }
    for (int i = 1; i < n->n_out; i++)
        if (n->out[i]) set_out(n->out[i], n->in[3]->dtype, 1, &x->dims[1]);
    return true;
}

bool infer_same(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (n->op == OP_SOFTMAX || n->op == OP_LOG_SOFTMAX || n->op == OP_HARDMAX) {
        int axis;
        if (!float_input(n, x, d)) return false;
        int64_t dflt = n->opset >= 13 ? -1 : 1;
        if (!axis_norm(node_attr_int(n, "axis", dflt), x->rank, &axis) && !(x->rank == 0)) {
            diag_error(d, n, "axis %lld is out of range for rank %d", (long long)node_attr_int(n, "axis", dflt), x->rank);
            return false;
        }
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}

bool reduce_axes(const Node *n, const Value *x, uint32_t *mask, bool *keepdims, bool *noop, Diags *d) {
    int64_t axes[64];
    int count = 0;
    bool present;
    *keepdims = node_attr_int(n, "keepdims", 1) != 0;
    *noop = false;
    *mask = 0;
    if (n->op == OP_GLOBAL_AVERAGE_POOL || n->op == OP_GLOBAL_MAX_POOL) {
        for (int i = 2; i < x->rank; i++) *mask |= 1u << i;
        *keepdims = true;
        return true;
    }
    int since = n->op == OP_REDUCE_SUM ? 13 : 18;
    if (!ints_from((Node *)n, "axes", 1, since, axes, &count, &present, d)) return false;
    if (count == 0) {
        if (node_attr_int(n, "noop_with_empty_axes", 0)) { *noop = true; return true; }
        for (int i = 0; i < x->rank; i++) *mask |= 1u << i;
        return true;
    }
    for (int i = 0; i < count; i++) {
        int a;
        if (!axis_norm(axes[i], x->rank, &a)) { diag_error(d, n, "axis %lld is out of range for rank %d", (long long)axes[i], x->rank); return false; }
        *mask |= 1u << a;
    }
    return true;
}

bool infer_reduce(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    uint32_t mask;
    bool keep, noop;
    if (!reduce_axes(n, x, &mask, &keep, &noop, d)) return false;
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (noop || !(mask >> i & 1)) dims[r++] = x->dims[i];
        else if (keep) dims[r++] = 1;
    }
    set_out(n->out[0], x->dtype, r, dims);
    return true;
}

bool infer_argmax(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    int axis;
    if (!axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    if (x->dims[axis] == 0) { diag_error(d, n, "cannot take the arg-extremum of an empty axis"); return false; }
    bool keep = node_attr_int(n, "keepdims", 1) != 0;
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++) {
        if (i != axis) dims[r++] = x->dims[i];
        else if (keep) dims[r++] = 1;
    }
    set_out(n->out[0], DT_I64, r, dims);
    return true;
}

bool infer_layernorm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    int axis;
    if (!axis_norm(node_attr_int(n, "axis", -1), x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t inner = dims_numel(x->rank - axis, x->dims + axis);
    for (int i = 1; i < n->n_in; i++)
        if (n->in[i] && value_numel(n->in[i]) != inner) {
            diag_error(d, n, "input '%s' must have the normalized shape (%lld elements)", n->in[i]->name, (long long)inner);
            return false;
        }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    int64_t dims[MAX_RANK];
    for (int i = 0; i < x->rank; i++) dims[i] = i < axis ? x->dims[i] : 1;
    for (int i = 1; i < n->n_out; i++) if (n->out[i]) set_out(n->out[i], DT_F32, x->rank, dims);
    return true;
}

bool infer_gather_elements(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1];
    int axis;
    if (!axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    if (idx->rank != x->rank || (idx->dtype != DT_I64 && idx->dtype != DT_I32)) { diag_error(d, n, "indices must be int32/int64 of the data's rank"); return false; }
    set_out(n->out[0], x->dtype, idx->rank, idx->dims);
    return true;
}

bool infer_trilu(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *k = node_input(n, 1);
    if (n->in[0]->rank < 2) { diag_error(d, n, "input must have rank 2 or more"); return false; }
    if (k && (!k->data || value_numel(k) != 1)) { diag_need(d, n, k, "input '%s' must be a constant scalar (computed at run time: only an executable built for this machine takes that)", k->name); return false; }
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, n->in[0]->dims);
    return true;
}

bool infer_cumsum(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *a = n->in[1];
    int axis;
    if (!a->data || value_numel(a) != 1) { diag_need(d, n, a, "input '%s' must be a constant scalar (computed at run time: only an executable built for this machine takes that)", a->name); return false; }
    if (!axis_norm(value_const_int(a, 0), n->in[0]->rank, &axis)) { diag_error(d, n, "axis is out of range"); return false; }
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, n->in[0]->dims);
    return true;
}

/* NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: scores [N,C,d...],
 * targets [N,d...], optional weights [C]; reduction none | sum | mean. */
bool infer_loss(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0], *t = n->in[1], *w = node_input(n, 2);
    bool ok = x->rank >= 2 && t->rank == x->rank - 1 && t->dims[0] == x->dims[0] && (t->dtype == DT_I64 || t->dtype == DT_I32);
    for (int i = 1; ok && i < t->rank; i++) ok = t->dims[i] == x->dims[i + 1];
    if (!ok) { diag_error(d, n, "targets must be int32/int64 of shape [N, d1, ...] for scores [N, C, d1, ...]"); return false; }
    if (w && value_numel(w) != x->dims[1]) { diag_error(d, n, "weights must have one value per class"); return false; }
    const char *red = node_attr_string(n, "reduction", "mean");
    if (strcmp(red, "none") == 0) set_out(n->out[0], x->dtype, t->rank, t->dims);
    else if (strcmp(red, "sum") == 0 || strcmp(red, "mean") == 0) set_out(n->out[0], x->dtype, 0, NULL);
    else { diag_error(d, n, "unknown reduction '%s'", red); return false; }
    if (n->n_out > 1 && n->out[1]) set_out(n->out[1], x->dtype, x->rank, x->dims);
    return true;
}

/* Pad: pads from the attribute (opset < 11) or a constant input. */
bool pad_amounts(const Node *n, const Value *x, int64_t *pb, int64_t *pe, Diags *d) {
    int64_t pads[64];
    int count;
    bool present;
    if (!ints_from((Node *)n, "pads", 1, 11, pads, &count, &present, d)) return false;
    if (!present || count != 2 * x->rank) { diag_error(d, n, "pads must have %d values", 2 * x->rank); return false; }
    for (int i = 0; i < x->rank; i++) { pb[i] = pads[i]; pe[i] = pads[x->rank + i]; }
    return true;
}

bool infer_pad(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *cv = node_input(n, 2);
    int64_t pb[MAX_RANK], pe[MAX_RANK], dims[MAX_RANK];
    if (!pad_amounts(n, x, pb, pe, d)) return false;
    const char *mode = node_attr_string(n, "mode", "constant");
    if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge")) { diag_error(d, n, "unknown mode '%s'", mode); return false; }
    if (cv && (!cv->data || value_numel(cv) != 1 || cv->dtype != x->dtype)) {
        diag_need(d, n, cv, "input '%s' must be a constant scalar of the data's type", cv->name);
        return false;
    }
    for (int i = 0; i < x->rank; i++) {
        dims[i] = x->dims[i] + pb[i] + pe[i];
        if (dims[i] < 0 || pb[i] < 0 || pe[i] < 0) { diag_error(d, n, "negative pads are not supported"); return false; }
        if (strcmp(mode, "constant") != 0 && x->dims[i] == 0 && dims[i] > 0) { diag_error(d, n, "cannot %s-pad an empty dimension", mode); return false; }
    }
    set_out(n->out[0], x->dtype, x->rank, dims);
    return check_size(n, n->out[0], d);
}

bool infer_tile(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t rep[64];
    int count;
    if (!const_ints(n->in[1], rep, 64, &count)) { diag_need(d, n, n->in[1], "input '%s' must be a constant list of integers (computed at run time: only an executable built for this machine takes that)", n->in[1]->name); return false; }
    if (count != x->rank) { diag_error(d, n, "repeats must have %d values", x->rank); return false; }
    int64_t dims[MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        if (rep[i] < 0 || (rep[i] && x->dims[i] > INT64_MAX / 16 / rep[i])) { diag_error(d, n, "invalid repeat %lld", (long long)rep[i]); return false; }
        dims[i] = x->dims[i] * rep[i];
    }
    set_out(n->out[0], x->dtype, x->rank, dims);
    return check_size(n, n->out[0], d);
}

bool infer_space_depth(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t b = node_attr_int(n, "blocksize", 0);
    if (x->rank != 4 || b < 1) { diag_error(d, n, "needs a 4-D input and a positive blocksize"); return false; }
    int64_t dims[4] = {x->dims[0], x->dims[1], x->dims[2], x->dims[3]};
    if (n->op == OP_DEPTH_TO_SPACE) {
        if (dims[1] % (b * b)) { diag_error(d, n, "channels %lld are not a multiple of blocksize^2", (long long)dims[1]); return false; }
        dims[1] /= b * b; dims[2] *= b; dims[3] *= b;
    } else {
        if (dims[2] % b || dims[3] % b) { diag_error(d, n, "height and width must be multiples of blocksize"); return false; }
        dims[1] *= b * b; dims[2] /= b; dims[3] /= b;
    }
    set_out(n->out[0], x->dtype, 4, dims);
    return true;
}

bool infer_instancenorm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0];
    if (x->rank < 3) { diag_error(d, n, "input must have rank 3 or more"); return false; }
    for (int i = 1; i < 3; i++)
        if (value_numel(n->in[i]) != x->dims[1]) { diag_error(d, n, "scale and B must have one value per channel"); return false; }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}

bool infer_topk(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *x = n->in[0], *k = n->in[1];
    int axis;
    if (value_numel(k) != 1 || k->dtype != DT_I64) { diag_error(d, n, "K must be one int64"); return false; }
    if (!axis_norm(node_attr_int(n, "axis", -1), x->rank, &axis)) { diag_error(d, n, "axis is out of range"); return false; }
    /* K read at run time: the outputs are sized then (at most the whole axis) */
    int64_t kk = k->data ? value_const_int(k, 0) : x->dims[axis];
    if (kk < 0 || kk > x->dims[axis]) { diag_error(d, n, "K=%lld is out of range for a dimension of %lld", (long long)kk, (long long)x->dims[axis]); return false; }
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = kk;
    set_out(n->out[0], x->dtype, x->rank, dims);
    set_out(n->out[1], DT_I64, x->rank, dims);
    n->out[0]->dyn = n->out[1]->dyn = k->data ? 0 : 1u << axis;
    return true;
}

/* Resize (opset 10: X, scales; 11+: X, roi, scales, sizes) and Upsample
 * (opset 7: scales attribute; 9: X, scales). Fills scales, roi and out dims. */
bool resize_geometry(const Node *n, const Value *x, double *scales, double *roi_s, double *roi_e, int64_t *out, Diags *d) {
    int r = x->rank;
    const Value *sc = NULL, *sz = NULL, *roi = NULL;
    if (n->op == OP_UPSAMPLE || n->opset < 11) sc = node_input(n, 1);
    else { roi = node_input(n, 1); sc = node_input(n, 2); sz = node_input(n, 3); }
    for (int i = 0; i < r; i++) { scales[i] = 1; roi_s[i] = 0; roi_e[i] = 1; }
    if (n->op == OP_UPSAMPLE && n->opset < 9) {
        const Attr *a = node_attr(n, "scales");
        if (!a || a->kind != ATTR_FLOATS || a->n != r) { diag_error(d, n, "scales must have %d values", r); return false; }
        for (int i = 0; i < r; i++) scales[i] = a->floats[i];
    } else if (sc && value_numel(sc) > 0) {
        if (!sc->data || value_numel(sc) != r || !dtype_is_float(sc->dtype)) { diag_need(d, n, sc, "input '%s' must be a constant (float scales, one per dimension)", sc->name); return false; }
        for (int i = 0; i < r; i++) scales[i] = (float)value_const_float(sc, i);
    }
    if (roi && value_numel(roi) > 0) {
        if (!roi->data || value_numel(roi) != 2 * r) { diag_need(d, n, roi, "input '%s' must be a constant (a roi of %d values)", roi->name, 2 * r); return false; }
        for (int i = 0; i < r; i++) { roi_s[i] = value_const_float(roi, i); roi_e[i] = value_const_float(roi, r + i); }
    }
    for (int i = 0; i < r; i++) {
        if (!(scales[i] > 0)) { diag_error(d, n, "scales must be positive"); return false; }
        out[i] = (int64_t)floor(x->dims[i] * scales[i] * (roi && strcmp(node_attr_string(n, "coordinate_transformation_mode", ""), "tf_crop_and_resize") == 0 ? roi_e[i] - roi_s[i] : 1.0));
    }
    if (sz && value_numel(sz) > 0) {
        int64_t s[64];
        int cnt;
        if (!const_ints(sz, s, 64, &cnt) || cnt != r) { diag_need(d, n, sz, "input '%s' must be a constant (sizes, one per dimension)", sz->name); return false; }
        for (int i = 0; i < r; i++) {
            if (s[i] < 0) { diag_error(d, n, "negative size"); return false; }
            out[i] = s[i];
            scales[i] = x->dims[i] ? (double)s[i] / (double)x->dims[i] : 1;
        }
    }
    return true;
}

bool infer_resize(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    double sc[MAX_RANK], rs[MAX_RANK], re[MAX_RANK];
    int64_t out[MAX_RANK];
    if (!resize_geometry(n, n->in[0], sc, rs, re, out, d)) return false;
    const char *mode = node_attr_string(n, "mode", "nearest");
    if (strcmp(mode, "nearest") && strcmp(mode, "linear") && strcmp(mode, "cubic") && strcmp(mode, "bilinear")) {
        diag_error(d, n, "unknown mode '%s'", mode);
        return false;
    }
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, out);
    return check_size(n, n->out[0], d);
}

bool infer_gather_nd(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1];
    int64_t b = node_attr_int(n, "batch_dims", 0);
    if (idx->dtype != DT_I64 || idx->rank < 1 || b < 0 || b >= idx->rank || b >= x->rank) { diag_error(d, n, "indices must be int64 with rank above batch_dims"); return false; }
    int64_t last = idx->dims[idx->rank - 1];
    if (last < 1 || b + last > x->rank) { diag_error(d, n, "the last index dimension %lld is too large for the data", (long long)last); return false; }
    for (int i = 0; i < b; i++) if (idx->dims[i] != x->dims[i]) { diag_error(d, n, "batch dimensions differ"); return false; }
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < idx->rank - 1; i++) dims[r++] = idx->dims[i];
    for (int i = (int)(b + last); i < x->rank; i++) { if (r >= MAX_RANK) { diag_error(d, n, "result rank too large"); return false; } dims[r++] = x->dims[i]; }
    set_out(n->out[0], x->dtype, r, dims);
    return true;
}

bool infer_scatter(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1], *u = n->in[2];
    const char *red = node_attr_string(n, "reduction", "none");
    if (strcmp(red, "none") && !(x->dtype == DT_F32 && (!strcmp(red, "add") || !strcmp(red, "mul")))) {
        diag_error(d, n, "reduction '%s' is supported for float32 add and mul only", red);
        return false;
    }
    if ((idx->dtype != DT_I64 && idx->dtype != DT_I32) || u->dtype != x->dtype) { diag_error(d, n, "indices must be int32/int64 and updates of the data's type"); return false; }
    if (n->op == OP_SCATTER_ND) {
        int64_t last = idx->rank ? idx->dims[idx->rank - 1] : 0;
        if (idx->dtype != DT_I64 || last < 1 || last > x->rank || u->rank != idx->rank - 1 + x->rank - last) { diag_error(d, n, "indices and updates do not fit the data"); return false; }
    } else {
        int axis;
        if (!axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis) || !value_same_shape(idx, u) || idx->rank != x->rank) {
            diag_error(d, n, "indices and updates must have one shape and the data's rank");
            return false;
        }
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}

bool infer_onehot(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *idx = n->in[0], *depth = n->in[1], *vals = n->in[2];
    if (!depth->data || value_numel(depth) != 1) { diag_need(d, n, depth, "input '%s' must be a constant (the depth)", depth->name); return false; }
    if (value_numel(vals) != 2) { diag_error(d, n, "values must hold [off, on]"); return false; }
    int64_t dep = (int64_t)value_const_float(depth, 0);
    int r = idx->rank + 1, axis;
    if (dep < 1 || r > MAX_RANK || !axis_norm(node_attr_int(n, "axis", -1), r, &axis)) { diag_error(d, n, "invalid depth or axis"); return false; }
    int64_t dims[MAX_RANK];
    for (int i = 0, j = 0; i < r; i++) dims[i] = i == axis ? dep : idx->dims[j++];
    set_out(n->out[0], vals->dtype, r, dims);
    return check_size(n, n->out[0], d);
}

/* ---- views ---- */

bool infer_reshape(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t shape[64];
    int count;
    bool present;
    if (!ints_from(n, "shape", 1, 5, shape, &count, &present, d)) return false;
    if (!present) { diag_error(d, n, "Reshape needs a shape"); return false; }
    if (count > MAX_RANK) { diag_error(d, n, "rank %d is above kiln's limit of %d", count, MAX_RANK); return false; }
    bool allowzero = node_attr_int(n, "allowzero", 0) != 0;
    int infer_at = -1;
    int64_t known = 1, total = value_numel(x);
    for (int i = 0; i < count; i++) {
        if (shape[i] == 0 && !allowzero) {
            if (i >= x->rank) { diag_error(d, n, "shape entry %d is 0 but the input has rank %d", i, x->rank); return false; }
            shape[i] = x->dims[i];
        }
        if (shape[i] == -1) {
            if (infer_at >= 0) { diag_error(d, n, "more than one -1 in the shape"); return false; }
            infer_at = i;
        } else if (shape[i] < 0) { diag_error(d, n, "invalid shape entry %lld", (long long)shape[i]); return false; }
        else {
            if (shape[i] && known > INT64_MAX / shape[i]) { diag_error(d, n, "shape size overflows"); return false; }
            known *= shape[i];
        }
    }
    if (infer_at >= 0) {
        if (known == 0 || total % known) { diag_error(d, n, "cannot infer the -1 dimension: %lld elements into %lld", (long long)total, (long long)known); return false; }
        shape[infer_at] = total / known;
        known = total;
    }
    if (known != total) { diag_error(d, n, "cannot reshape %lld elements into %lld", (long long)total, (long long)known); return false; }
    set_out(n->out[0], x->dtype, count, shape);
    return true;
}

bool infer_flatten(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t axis = node_attr_int(n, "axis", 1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis > x->rank) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t dims[2] = {dims_numel((int)axis, x->dims), dims_numel(x->rank - (int)axis, x->dims + axis)};
    set_out(n->out[0], x->dtype, 2, dims);
    return true;
}

bool infer_squeeze(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t axes[64];
    int count;
    bool present;
    if (!ints_from(n, "axes", 1, 13, axes, &count, &present, d)) return false;
    uint32_t mask = 0;
    for (int i = 0; i < count; i++) {
        int a;
        if (!axis_norm(axes[i], x->rank, &a)) { diag_error(d, n, "axis %lld is out of range", (long long)axes[i]); return false; }
        if (x->dims[a] != 1) { diag_error(d, n, "cannot squeeze axis %d of size %lld", a, (long long)x->dims[a]); return false; }
        mask |= 1u << a;
    }
    int64_t dims[MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!(count ? (mask >> i & 1) : x->dims[i] == 1)) dims[r++] = x->dims[i];
    set_out(n->out[0], x->dtype, r, dims);
    return true;
}

bool infer_unsqueeze(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t axes[64];
    int count;
    bool present;
    if (!ints_from(n, "axes", 1, 13, axes, &count, &present, d)) return false;
    int r = x->rank + count;
    if (!present || r > MAX_RANK) { diag_error(d, n, "Unsqueeze needs axes, and the result's rank must be at most %d", MAX_RANK); return false; }
    uint32_t mask = 0;
    for (int i = 0; i < count; i++) {
        int a;
        if (!axis_norm(axes[i], r, &a) || (mask >> a & 1)) { diag_error(d, n, "axis %lld is out of range or repeated", (long long)axes[i]); return false; }
        mask |= 1u << a;
    }
    int64_t dims[MAX_RANK];
    for (int i = 0, j = 0; i < r; i++) dims[i] = (mask >> i & 1) ? 1 : x->dims[j++];
    set_out(n->out[0], x->dtype, r, dims);
    return true;
}

/* Training-mode Dropout (kiln.DropoutTrain, which Dropout becomes): the mask
 * keeps an element when a uniform draw in [0, 1) is at least the ratio, the
 * draws coming from MT19937 seeded with the seed attribute (0 when absent) in
 * row-major order, as NumPy's legacy generator draws them; kept elements are
 * divided by 1 - ratio. The same seed gives the same mask on every run. */
bool infer_dropout_train(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (!dtype_is_float(x->dtype)) { diag_error(d, n, "dtype %s is not accepted", dtype_name(x->dtype)); return false; }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    if (n->n_out > 1) set_out(n->out[1], DT_BOOL, x->rank, x->dims);
    return true;
}

bool infer_dropout(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    Value *ratio = node_input(n, 1), *training = node_input(n, 2);
    if (training && !training->data) {
        diag_need(d, n, training, "input '%s' must be a constant (Dropout's training_mode)", training->name);
        return false;
    }
    bool train = training && value_const_int(training, 0) != 0;
    if (n->opset < 7 && node_attr_int(n, "is_test", 0) == 0 && n->n_out > 1) train = true;
    if (train && ratio && !ratio->data) {
        diag_need(d, n, ratio, "input '%s' must be a constant (the ratio of training-mode Dropout)", ratio->name);
        return false;
    }
    double r = ratio && ratio->data ? value_const_float(ratio, 0) : node_attr_float(n, "ratio", 0.5);
    if (train && r != 0) { /* a random mask: computed, no longer a view */
        if (r < 0 || r >= 1) { diag_error(d, n, "the ratio must be in [0, 1)"); return false; }
        if (n->opset < 10 && n->n_out > 1) { diag_error(d, n, "training-mode Dropout before opset 10 (a float mask) is not supported"); return false; }
        n->op = OP_DROPOUT_TRAIN;
        n->n_in = 1;
        node_add_attr(g, n, "kiln.ratio", ATTR_FLOAT)->f = (float)r;
        return infer_dropout_train(g, n, d);
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    if (n->n_out > 1 && n->out[1]) {
        Value *m = n->out[1];
        set_out(m, n->opset >= 10 ? DT_BOOL : x->dtype, x->rank, x->dims);
        if (!check_size(n, m, d)) return false;
        int64_t nb = value_nbytes(m), es = dtype_size(m->dtype);
        unsigned char *ones = arena_alloc(g->arena, (size_t)(nb ? nb : 1));
        for (int64_t i = 0; i < nb / es; i++) {
            if (m->dtype == DT_BOOL) ones[i] = 1;
            else if (m->dtype == DT_F32) ((float *)ones)[i] = 1.0f;
            else if (m->dtype == DT_F64) ((double *)ones)[i] = 1.0;
            else if (m->dtype == DT_F16) ((uint16_t *)ones)[i] = 0x3c00;
        }
        m->data = ones;
    }
    return true;
}

/* ---- data movement ---- */

bool infer_transpose(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t perm[MAX_RANK], dims[MAX_RANK];
    const Attr *a = node_attr(n, "perm");
    for (int i = 0; i < x->rank; i++) perm[i] = x->rank - 1 - i;
    if (a) {
        if (a->kind != ATTR_INTS || a->n != x->rank) { diag_error(d, n, "perm must have %d entries", x->rank); return false; }
        uint32_t seen = 0;
        for (int i = 0; i < x->rank; i++) {
            int p;
            if (!axis_norm(a->ints[i], x->rank, &p) || (seen >> p & 1)) { diag_error(d, n, "perm is not a permutation"); return false; }
            seen |= 1u << p;
            perm[i] = p;
        }
    }
    for (int i = 0; i < x->rank; i++) dims[i] = x->dims[perm[i]];
    set_out(n->out[0], x->dtype, x->rank, dims);
    return true;
}

bool infer_concat(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int axis;
    const Attr *aa = node_attr(n, "axis");
    if (!aa && n->opset >= 4) { diag_error(d, n, "Concat needs an axis"); return false; }
    if (!axis_norm(aa ? aa->i : 1, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof dims);
    dims[axis] = 0;
    for (int i = 0; i < n->n_in; i++) {
        Value *v = n->in[i];
        if (!v) { diag_error(d, n, "Concat input %d is missing", i); return false; }
        bool ok = v->rank == x->rank && v->dtype == x->dtype;
        for (int j = 0; ok && j < x->rank; j++) ok = j == axis || v->dims[j] == x->dims[j];
        if (!ok) {
            char a[128], b[128];
            diag_error(d, n, "input '%s' %s does not match '%s' %s outside axis %d", v->name, value_type_str(v, a, sizeof a), x->name, value_type_str(x, b, sizeof b), axis);
            return false;
        }
        dims[axis] += v->dims[axis];
    }
    set_out(n->out[0], x->dtype, x->rank, dims);
    return check_size(n, n->out[0], d);
}

bool split_sizes(const Node *n, const Value *x, int axis, int64_t *sizes, Diags *d) {
    int64_t split[64];
    int count;
    bool present;
    if (!ints_from((Node *)n, "split", 1, 13, split, &count, &present, d)) return false;
    int64_t dim = x->dims[axis], sum = 0;
    if (!present) {
        if (dim % n->n_out) { diag_error(d, n, "dimension %lld does not split evenly into %d outputs", (long long)dim, n->n_out); return false; }
        for (int i = 0; i < n->n_out; i++) sizes[i] = dim / n->n_out;
        return true;
    }
    if (count != n->n_out) { diag_error(d, n, "split has %d entries for %d outputs", count, n->n_out); return false; }
    for (int i = 0; i < count; i++) {
        if (split[i] < 0) { diag_error(d, n, "negative split size"); return false; }
        sizes[i] = split[i];
        sum += split[i];
    }
    if (sum != dim) { diag_error(d, n, "split sizes add up to %lld, not the dimension %lld", (long long)sum, (long long)dim); return false; }
    return true;
}

bool infer_split(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int axis;
    if (!axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t sizes[64];
    if (!split_sizes(n, x, axis, sizes, d)) return false;
    for (int i = 0; i < n->n_out; i++) {
        int64_t dims[MAX_RANK];
        memcpy(dims, x->dims, sizeof dims);
        dims[axis] = sizes[i];
        set_out(n->out[i], x->dtype, x->rank, dims);
    }
    return true;
}

bool slice_compute(const Node *n, const Value *x, int64_t *starts, int64_t *steps, int64_t *out_dims, Diags *d) {
    int64_t st[64], en[64], ax[64], sp[64];
    int ns, ne, na, nsp;
    bool ps, pe, pa, psp;
    if (!ints_from((Node *)n, "starts", 1, 10, st, &ns, &ps, d) || !ints_from((Node *)n, "ends", 2, 10, en, &ne, &pe, d) ||
        !ints_from((Node *)n, "axes", 3, 10, ax, &na, &pa, d) || !ints_from((Node *)n, "steps", 4, 10, sp, &nsp, &psp, d))
        return false;
    if (!ps || !pe || ns != ne || (pa && na != ns) || (psp && nsp != ns)) { diag_error(d, n, "starts, ends, axes and steps must be given with equal lengths"); return false; }
    for (int i = 0; i < x->rank; i++) { starts[i] = 0; steps[i] = 1; out_dims[i] = x->dims[i]; }
    uint32_t seen = 0;
    for (int i = 0; i < ns; i++) {
        int a;
        if (!axis_norm(pa ? ax[i] : i, x->rank, &a) || (seen >> a & 1)) { diag_error(d, n, "axis %lld is out of range or repeated", (long long)(pa ? ax[i] : i)); return false; }
        seen |= 1u << a;
        int64_t dim = x->dims[a], s = st[i], e = en[i], step = psp ? sp[i] : 1;
        if (step == 0) { diag_error(d, n, "slice step cannot be 0"); return false; }
        if (s < 0) s = s < -dim ? 0 - (step < 0) : s + dim;
        if (e < 0) e = e < -dim ? -1 : e + dim;
        if (step > 0) {
            s = s < 0 ? 0 : (s > dim ? dim : s);
            e = e < 0 ? 0 : (e > dim ? dim : e);
        } else {
            s = s < 0 ? -1 : (s > dim - 1 ? dim - 1 : s);
            e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
        }
        int64_t len = step > 0 ? (e - s + step - 1) / step : (s - e + (-step) - 1) / (-step);
        if (len < 0) len = 0;
        starts[a] = len > 0 ? s : 0;
        steps[a] = step;
        out_dims[a] = len;
    }
    return true;
}

bool infer_slice(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    int64_t starts[MAX_RANK], steps[MAX_RANK], dims[MAX_RANK];
    if (!slice_compute(n, n->in[0], starts, steps, dims, d)) return false;
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, dims);
    return true;
}

bool infer_gather(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *idx = n->in[1];
    int axis;
    if (x->rank < 1 || !axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    if (idx->dtype != DT_I32 && idx->dtype != DT_I64) { diag_error(d, n, "indices must be int32 or int64, not %s", dtype_name(idx->dtype)); return false; }
    int r = x->rank - 1 + idx->rank;
    if (r > MAX_RANK) { diag_error(d, n, "result rank %d is above %d", r, MAX_RANK); return false; }
    if (idx->data)
        for (int64_t i = 0; i < value_numel(idx); i++) {
            int64_t k = value_const_int(idx, i);
            if (k < -x->dims[axis] || k >= x->dims[axis]) { diag_error(d, n, "index %lld is out of range for a dimension of %lld", (long long)k, (long long)x->dims[axis]); return false; }
        }
    int64_t dims[MAX_RANK];
    int k = 0;
    for (int i = 0; i < axis; i++) dims[k++] = x->dims[i];
    for (int i = 0; i < idx->rank; i++) dims[k++] = idx->dims[i];
    for (int i = axis + 1; i < x->rank; i++) dims[k++] = x->dims[i];
    set_out(n->out[0], x->dtype, r, dims);
    return check_size(n, n->out[0], d);
}

/* ---- meta ops: the output is data known now ---- */

bool infer_shape_op(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t r = x->rank, s = node_attr_int(n, "start", 0), e = node_attr_int(n, "end", r);
    if (s < 0) s += r;
    if (e < 0) e += r;
    s = s < 0 ? 0 : (s > r ? r : s);
    e = e < 0 ? 0 : (e > r ? r : e);
    int64_t len = e > s ? e - s : 0;
    set_out(n->out[0], DT_I64, 1, &len);
    int64_t *data = arena_alloc(g->arena, (size_t)(len + 1) * sizeof *data);
    for (int64_t i = 0; i < len; i++) data[i] = x->dims[s + i];
    n->out[0]->data = data;
    return true;
}

bool infer_constant(Graph *g, Node *n, Diags *d) {
    Value *o = n->out[0];
    const Attr *a = n->n_attr == 1 ? &n->attrs[0] : NULL;
    if (!a) { diag_error(d, n, "Constant needs exactly one value attribute"); return false; }
    if (strcmp(a->name, "value") == 0 && a->kind == ATTR_TENSOR) {
        set_out(o, a->t->dtype, a->t->rank, a->t->dims);
        o->data = a->t->data;
        return true;
    }
    int64_t one = 1;
    if (strcmp(a->name, "value_float") == 0 && a->kind == ATTR_FLOAT) {
        float *p = arena_alloc(g->arena, 4);
        *p = (float)a->f;
        set_out(o, DT_F32, 0, &one);
        o->data = p;
    } else if (strcmp(a->name, "value_int") == 0 && a->kind == ATTR_INT) {
        int64_t *p = arena_alloc(g->arena, 8);
        *p = a->i;
        set_out(o, DT_I64, 0, &one);
        o->data = p;
    } else if (strcmp(a->name, "value_floats") == 0 && a->kind == ATTR_FLOATS) {
        float *p = arena_alloc(g->arena, (size_t)a->n * 4 + 4);
        for (int i = 0; i < a->n; i++) p[i] = (float)a->floats[i];
        int64_t len = a->n;
        set_out(o, DT_F32, 1, &len);
        o->data = p;
    } else if (strcmp(a->name, "value_ints") == 0 && a->kind == ATTR_INTS) {
        int64_t len = a->n;
        set_out(o, DT_I64, 1, &len);
        o->data = a->ints;
    } else {
        diag_error(d, n, "Constant attribute '%s' is not supported", a->name);
        return false;
    }
    return true;
}

bool infer_constant_of_shape(Graph *g, Node *n, Diags *d) {
    Value *s = n->in[0];
    int64_t dims[64];
    int count;
    if (!const_ints(s, dims, 64, &count)) { diag_need(d, n, s, "input '%s' must be a constant list of integers (computed at run time: only an executable built for this machine takes that)", s->name); return false; }
    if (count > MAX_RANK) { diag_error(d, n, "rank %d is above %d", count, MAX_RANK); return false; }
    const Attr *a = node_attr(n, "value");
    DType dt = DT_F32;
    const void *fill = NULL;
    if (a) {
        if (a->kind != ATTR_TENSOR || value_numel(a->t) != 1) { diag_error(d, n, "'value' must be a one-element tensor"); return false; }
        dt = a->t->dtype;
        fill = a->t->data;
    }
    Value *o = n->out[0];
    for (int i = 0; i < count; i++)
        if (dims[i] < 0) { diag_error(d, n, "negative dimension %lld", (long long)dims[i]); return false; }
    set_out(o, dt, count, dims);
    if (!check_size(n, o, d)) return false;
    int64_t nb = value_nbytes(o), es = dtype_size(dt);
    unsigned char *p = arena_alloc(g->arena, (size_t)(nb ? nb : 1));
    if (fill)
        for (int64_t i = 0; i < nb; i += es) memcpy(p + i, fill, (size_t)es);
    o->data = p;
    return true;
}

/* The body's inputs take the node's input types; its nodes are inferred in order. */
bool infer_size(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    int64_t *p = arena_alloc(g->arena, sizeof *p);
    *p = value_numel(n->in[0]);
    set_out(n->out[0], DT_I64, 0, NULL);
    n->out[0]->data = p;
    return true;
}

/* Range(start, limit, delta), all constant scalars of one numeric type. */
bool infer_range(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    for (int i = 0; i < 3; i++)
        if (!n->in[i]->data || value_numel(n->in[i]) != 1) {
            diag_need(d, n, n->in[i], "input '%s' must be a constant scalar (computed at run time: only an executable built for this machine takes that)", n->in[i]->name);
            return false;
        }
    DType dt = n->in[0]->dtype;
    if (n->in[1]->dtype != dt || n->in[2]->dtype != dt) { diag_error(d, n, "inputs have different dtypes"); return false; }
    double s = value_const_float(n->in[0], 0), lim = value_const_float(n->in[1], 0), dl = value_const_float(n->in[2], 0);
    if (dl == 0) { diag_error(d, n, "delta is 0"); return false; }
    double cnt = ceil((lim - s) / dl);
    int64_t len = cnt > 0 ? (int64_t)cnt : 0;
    if (len > ((int64_t)1 << 32)) { diag_error(d, n, "the range is too long"); return false; }
    set_out(n->out[0], dt, 1, &len);
    if (!check_size(n, n->out[0], d)) return false;
    int es = dtype_size(dt);
    unsigned char *p = arena_alloc(g->arena, (size_t)(len * es + 1));
    for (int64_t i = 0; i < len; i++) {
        unsigned char *q = p + i * es;
        if (dt == DT_F32) { float v = (float)value_const_float(n->in[0], 0) + (float)i * (float)value_const_float(n->in[2], 0); memcpy(q, &v, 4); }
        else if (dt == DT_F64) { double v = s + (double)i * dl; memcpy(q, &v, 8); }
        else {
            int64_t v = value_const_int(n->in[0], 0) + i * value_const_int(n->in[2], 0);
            if (es == 8) memcpy(q, &v, 8);
            else if (es == 4) { int32_t w = (int32_t)v; memcpy(q, &w, 4); }
            else if (es == 2) { int16_t w = (int16_t)v; memcpy(q, &w, 2); }
            else *q = (unsigned char)v;
        }
    }
    n->out[0]->data = p;
    return true;
}

bool infer_eye_like(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (x->rank != 2) { diag_error(d, n, "input must be 2-D"); return false; }
    DType dt = (DType)node_attr_int(n, "dtype", x->dtype);
    if (dtype_size(dt) == 0) { diag_error(d, n, "unsupported dtype"); return false; }
    set_out(n->out[0], dt, 2, x->dims);
    if (!check_size(n, n->out[0], d)) return false;
    int64_t k = node_attr_int(n, "k", 0), R = x->dims[0], C = x->dims[1];
    int es = dtype_size(dt);
    unsigned char *p = arena_alloc(g->arena, (size_t)(R * C * es + 1));
    for (int64_t r = 0; r < R; r++) {
        int64_t c = r + k;
        if (c < 0 || c >= C) continue;
        unsigned char *q = p + (r * C + c) * es;
        if (dt == DT_F32) { float one = 1; memcpy(q, &one, 4); }
        else if (dt == DT_F64) { double one = 1; memcpy(q, &one, 8); }
        else if (dt == DT_F16) { uint16_t h = 0x3c00; memcpy(q, &h, 2); }
        else if (dt == DT_BF16) { uint16_t h = 0x3f80; memcpy(q, &h, 2); }
        else *q = 1; /* little-endian integer 1 */
    }
    n->out[0]->data = p;
    return true;
}

bool infer_fused(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    const Attr *a = node_attr(n, "body");
    if (!a || a->kind != ATTR_GRAPH || a->g->inputs.n != n->n_in || a->g->outputs.n != 1) {
        diag_error(d, n, "kiln.Fused needs a 'body' graph with one input per node input and one output");
        return false;
    }
    Graph *b = a->g;
    for (int i = 0; i < n->n_in; i++) {
        Value *bi = b->inputs.items[i];
        set_out(bi, n->in[i]->dtype, n->in[i]->rank, n->in[i]->dims);
    }
    for (int i = 0; i < b->nodes.n; i++) {
        Node *bn = b->nodes.items[i];
        if (!(op_table[bn->op].flags & F_ELEM)) { diag_error(d, n, "kiln.Fused body holds non-elementwise op %s", op_table[bn->op].name); return false; }
        if (!op_table[bn->op].infer(g, bn, d)) return false;
    }
    Value *r = b->outputs.items[0];
    if (r->rank < 0) { diag_error(d, n, "kiln.Fused body output has no shape"); return false; }
    set_out(n->out[0], r->dtype, r->rank, r->dims);
    return true;
}

/* Attribute `name` of n as a permutation of rank r (identity when absent). */
bool attention_perm(const Node *n, const char *name, int r, int *perm) {
    const Attr *a = node_attr(n, name);
    uint32_t seen = 0;
    if (a && (a->kind != ATTR_INTS || a->n != r)) return false;
    for (int i = 0; i < r; i++) {
        if (a && (a->ints[i] < 0 || a->ints[i] >= r)) return false;
        perm[i] = a ? (int)a->ints[i] : i;
        if (seen >> perm[i] & 1) return false;
        seen |= 1u << perm[i];
    }
    return true;
}

/* kiln.Attention (the patterns pass makes it): softmax(q kt / scale + mask) v
 * over the last axis, where q, kt and v are the inputs transposed by q_perm,
 * k_perm and v_perm (identity when absent): q [b.., M, Dk], kt [b.., Dk, N],
 * v [b.., N, Dv], the same batch dims b.. on all three, the mask (optional)
 * broadcast to the scores [b.., M, N]. The result [b.., M, Dv] is transposed
 * by out_perm. q, v and the result keep their last axis last; kt's last axis
 * is the input's last or its second last. scale_op: 0 no scale, 1 divide by
 * scale, 2 multiply. */
bool infer_attention(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *qs = n->in[0], *ks = n->in[1], *vs = n->in[2], *m = node_input(n, 3);
    int r = qs->rank, qp[MAX_RANK], kp[MAX_RANK], vp[MAX_RANK], op[MAX_RANK];
    bool ok = r >= 2 && ks->rank == r && vs->rank == r && qs->dtype == DT_F32 && ks->dtype == DT_F32 && vs->dtype == DT_F32 &&
              attention_perm(n, "q_perm", r, qp) && attention_perm(n, "k_perm", r, kp) && attention_perm(n, "v_perm", r, vp) &&
              attention_perm(n, "out_perm", r, op);
    int64_t so = node_attr_int(n, "scale_op", 0);
    ok = ok && qp[r - 1] == r - 1 && vp[r - 1] == r - 1 && op[r - 1] == r - 1 && (kp[r - 1] == r - 1 || kp[r - 2] == r - 1) &&
         so >= 0 && so <= 2;
    int64_t q[MAX_RANK], kt[MAX_RANK], v[MAX_RANK], o[MAX_RANK], y[MAX_RANK];
    for (int i = 0; ok && i < r; i++) q[i] = qs->dims[qp[i]], kt[i] = ks->dims[kp[i]], v[i] = vs->dims[vp[i]];
    for (int i = 0; ok && i < r - 2; i++) ok = kt[i] == q[i] && v[i] == q[i];
    int64_t M = ok ? q[r - 2] : 0, N = ok ? kt[r - 1] : 0;
    ok = ok && kt[r - 2] == q[r - 1] && v[r - 2] == N;
    if (ok && m) {
        ok = m->dtype == DT_F32 && m->rank <= r;
        for (int i = 0; ok && i < m->rank; i++) {
            int64_t want = i == m->rank - 1 ? N : i == m->rank - 2 ? M : q[r - m->rank + i];
            ok = m->dims[i] == 1 || m->dims[i] == want;
        }
    }
    if (!ok) {
        diag_error(d, n, "kiln.Attention needs float q [b.., M, Dk], kt [b.., Dk, N], v [b.., N, Dv] (after their perms) and a mask "
                         "that broadcasts to the scores");
        return false;
    }
    memcpy(o, q, sizeof(int64_t) * (size_t)r);
    o[r - 1] = v[r - 1];
    for (int i = 0; i < r; i++) y[i] = o[op[i]];
    set_out(n->out[0], DT_F32, r, y);
    return true;
}
