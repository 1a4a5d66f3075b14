/* infer_extra.c: shape rules of the signal, quantization, recurrent and other
 * ops added after the first ones (split from infer.c by size; the op table
 * there names them).
 *
 * - HannWindow, HammingWindow, BlackmanWindow: computed here, at compile time,
 *   from their constant size (meta ops, like Range);
 * - QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger,
 *   QLinearMatMul: scale and zero point are a scalar or one value per element
 *   of `axis` (checked here; the kernels are in runtime/quant.c);
 * - MeanVarianceNormalization, LRN, ReverseSequence, and Compress (whose
 *   condition must be a constant: its count of true values is the output's
 *   size);
 * - RNN, GRU, LSTM (every direction and layout), Einsum (the equation parsed
 *   once here for the shape rule and the lowering), Det, GridSample;
 * - DFT, STFT (lengths and steps must be constants), MelWeightMatrix (its
 *   sizes constant, its frequencies read at run time), MaxUnpool, RoiAlign. */
#include "ir.h"
#include "infer.h"

#include <math.h>
#include <string.h>

/* ---- windows ---- */

static void store_double(DType dt, void *p, int64_t i, double v) {
    switch (dt) {
    case DT_F32: ((float *)p)[i] = (float)v; break;
    case DT_F64: ((double *)p)[i] = v; break;
    case DT_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    case DT_I64: ((int64_t *)p)[i] = (int64_t)v; break;
    default: ((float *)p)[i] = (float)v; break;
    }
}

bool infer_window(Graph *g, Node *n, Diags *d) {
    Value *sz = n->in[0];
    if (!need_shapes(n, d)) return false;
    if (!sz->data || value_numel(sz) != 1) { diag_need(d, n, sz, "input '%s' must be a constant scalar (computed at run time: only an executable built for this machine takes that)", sz->name); return false; }
    int64_t N = value_const_int(sz, 0);
    if (N < 0 || N > ((int64_t)1 << 28)) { diag_error(d, n, "window size %lld is out of range", (long long)N); return false; }
    DType dt = (DType)node_attr_int(n, "output_datatype", DT_F32);
    if (dt != DT_F32 && dt != DT_F64 && dt != DT_I32 && dt != DT_I64) { diag_error(d, n, "output_datatype %d is not supported", (int)dt); return false; }
    bool periodic = node_attr_int(n, "periodic", 1) != 0;
    set_out(n->out[0], dt, 1, &N);
    void *p = arena_alloc(g->arena, (size_t)(N * dtype_size(dt) + 1));
    double D = periodic ? (double)N : (double)N - 1, pi2 = 2 * M_PI;
    for (int64_t i = 0; i < N; i++) {
        double x = D > 0 ? pi2 * (double)i / D : 0, v;
        if (n->op == OP_HANN_WINDOW) v = 0.5 - 0.5 * cos(x);
        else if (n->op == OP_HAMMING_WINDOW) v = 25.0 / 46.0 - (1 - 25.0 / 46.0) * cos(x);
        else v = 0.42 - 0.5 * cos(x) + 0.08 * cos(2 * x);
        store_double(dt, p, i, v);
    }
    n->out[0]->data = p;
    return true;
}

/* ---- quantization ---- */

/* A scale or zero point: a scalar, or 1-D with one value per element of x's axis. */
static bool check_qparam(Node *n, const Value *x, const Value *q, int axis, Diags *d) {
    if (!q) return true;
    int64_t c = value_numel(q);
    if (c == 1 && q->rank <= 1) return true;
    if (q->rank == 1 && axis >= 0 && c == x->dims[axis]) return true;
    diag_error(d, n, "'%s' must be a scalar or have one value per element of axis %d", q->name, axis);
    return false;
}

/* The axis of a per-axis scale (QuantizeLinear / DequantizeLinear attribute). */
bool quant_axis(const Node *n, const Value *x, int *axis) {
    *axis = -1;
    if (x->rank == 0) return true;
    return axis_norm(node_attr_int(n, "axis", 1), x->rank, axis) || value_numel(n->in[1]) == 1;
}

bool infer_quantize(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *scale = n->in[1], *zp = node_input(n, 2);
    int axis;
    if (!quant_axis(n, x, &axis)) { diag_error(d, n, "axis is out of range"); return false; }
    if (!check_qparam(n, x, scale, axis, d) || !check_qparam(n, x, zp, axis, d)) return false;
    if (!dtype_is_float(scale->dtype)) { diag_error(d, n, "the scale must be a float tensor"); return false; }
    if (n->op == OP_QUANTIZE_LINEAR) {
        DType t = zp ? zp->dtype : DT_U8;
        if (t != DT_U8 && t != DT_I8) { diag_error(d, n, "quantizes to uint8 or int8, not %s", dtype_name(t)); return false; }
        if (!dtype_is_float(x->dtype)) { diag_error(d, n, "input must be a float tensor"); return false; }
        set_out(n->out[0], t, x->rank, x->dims);
    } else {
        if (x->dtype != DT_U8 && x->dtype != DT_I8 && x->dtype != DT_I32) { diag_error(d, n, "dequantizes uint8, int8 or int32, not %s", dtype_name(x->dtype)); return false; }
        if (zp && zp->dtype != x->dtype) { diag_error(d, n, "the zero point's dtype must be the input's"); return false; }
        set_out(n->out[0], scale->dtype, x->rank, x->dims);
    }
    return true;
}

bool infer_dynamic_quantize(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (x->dtype != DT_F32) { diag_error(d, n, "input must be float32"); return false; }
    set_out(n->out[0], DT_U8, x->rank, x->dims);
    if (n->n_out > 1 && n->out[1]) set_out(n->out[1], DT_F32, 0, NULL);
    if (n->n_out > 2 && n->out[2]) set_out(n->out[2], DT_U8, 0, NULL);
    return true;
}

/* MatMulInteger (A, B, a_zp?, b_zp?) and QLinearMatMul (a, a_scale, a_zp, b,
 * b_scale, b_zp, y_scale, y_zp): A [..., M, K] times B [K, N] or [..., K, N]. */
bool infer_matmul_integer(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    bool q = n->op == OP_QLINEAR_MATMUL;
    Value *a = n->in[0], *b = n->in[q ? 3 : 1];
    bool same_batch = b->rank == a->rank;
    for (int i = 0; same_batch && i < a->rank - 2; i++) same_batch = a->dims[i] == b->dims[i];
    if (a->rank < 2 || (b->rank != 2 && !same_batch) || a->dims[a->rank - 1] != b->dims[b->rank - 2]) {
        diag_error(d, n, "needs A [..., M, K] and B [K, N] or B [..., K, N] with A's batch dimensions");
        return false;
    }
    for (int i = 0; i < n->n_in; i++) {
        const Value *v = n->in[i];
        bool is_scale = q && (i == 1 || i == 4 || i == 6);
        if (v && !is_scale && v->dtype != DT_U8 && v->dtype != DT_I8) { diag_error(d, n, "input '%s' must be uint8 or int8", v->name); return false; }
        if (v && is_scale && v->dtype != DT_F32) { diag_error(d, n, "input '%s' must be float32", v->name); return false; }
    }
    int64_t M = a->dims[a->rank - 2], N = b->dims[b->rank - 1];
    const Value *azp = node_input(n, q ? 2 : 2), *bzp = node_input(n, q ? 5 : 3);
    if (azp && value_numel(azp) != 1 && value_numel(azp) != M) { diag_error(d, n, "a's zero point must be a scalar or one per row"); return false; }
    if (bzp && value_numel(bzp) != 1 && value_numel(bzp) != N) { diag_error(d, n, "b's zero point must be a scalar or one per column"); return false; }
    if (q) for (int i = 1; i < 8; i += 3) if (value_numel(n->in[i]) != 1 && i != 4) { diag_error(d, n, "scales must be scalars"); return false; }
    if (q && value_numel(n->in[4]) != 1 && value_numel(n->in[4]) != N) { diag_error(d, n, "b's scale must be a scalar or one per column"); return false; }
    int64_t dims[MAX_RANK];
    memcpy(dims, a->dims, sizeof dims);
    dims[a->rank - 1] = N;
    set_out(n->out[0], q ? n->in[7]->dtype : DT_I32, a->rank, dims);
    return true;
}

/* ---- normalization and reordering ---- */

bool infer_same_float(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (!dtype_is_float(x->dtype)) { diag_error(d, n, "input must be a float tensor"); return false; }
    if (n->op == OP_LRN && (x->rank < 3 || node_attr_int(n, "size", 0) < 1)) { diag_error(d, n, "needs an input of rank 3 or more and size >= 1"); return false; }
    if (n->op == OP_MVN) {
        const Attr *ax = node_attr(n, "axes");
        for (int i = 0; ax && i < ax->n; i++) {
            int a;
            if (!axis_norm(ax->ints[i], x->rank, &a)) { diag_error(d, n, "axis %lld is out of range", (long long)ax->ints[i]); return false; }
        }
        if (!ax && x->rank != 4) { diag_error(d, n, "the default axes [0, 2, 3] need a 4-D input"); return false; }
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}

bool infer_reverse_sequence(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *lens = n->in[1];
    int b, t;
    if (x->rank < 2 || !axis_norm(node_attr_int(n, "batch_axis", 1), x->rank, &b) || !axis_norm(node_attr_int(n, "time_axis", 0), x->rank, &t) ||
        b == t || (b != 0 && b != 1) || (t != 0 && t != 1)) {
        diag_error(d, n, "batch_axis and time_axis must be 0 and 1 (either order) of an input of rank 2 or more");
        return false;
    }
    if (lens->rank != 1 || lens->dims[0] != x->dims[b] || lens->dtype != DT_I64) { diag_error(d, n, "sequence_lens must be int64 [%lld]", (long long)x->dims[b]); return false; }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    return true;
}

bool infer_compress(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *c = n->in[1];
    if (!c->data) { diag_need(d, n, c, "input '%s' must be a constant (computed at run time: only an executable built for this machine takes that)", c->name); return false; }
    if (c->rank != 1 || c->dtype != DT_BOOL) { diag_error(d, n, "condition must be a 1-D bool tensor"); return false; }
    const Attr *ax = node_attr(n, "axis");
    int axis = -1;
    if (ax && !axis_norm(ax->i, x->rank, &axis)) { diag_error(d, n, "axis is out of range"); return false; }
    int64_t len = ax ? x->dims[axis] : value_numel(x), kept = 0;
    const unsigned char *cd = c->data;
    for (int64_t i = 0; i < c->dims[0] && i < len; i++) kept += cd[i] != 0;
    if (ax) {
        int64_t dims[MAX_RANK];
        memcpy(dims, x->dims, sizeof dims);
        dims[axis] = kept;
        set_out(n->out[0], x->dtype, x->rank, dims);
    } else set_out(n->out[0], x->dtype, 1, &kept);
    return true;
}

/* ---- RNN, GRU, LSTM ---- */

int rnn_gates(const Node *n) { return n->op == OP_LSTM ? 4 : n->op == OP_GRU ? 3 : 1; }

bool infer_rnn(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *w = n->in[1], *r = n->in[2];
    int G = rnn_gates(n), layout = (int)node_attr_int(n, "layout", 0);
    const char *dir = node_attr_string(n, "direction", "forward");
    int64_t dirs = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
    if (strcmp(dir, "forward") && strcmp(dir, "reverse") && dirs == 1) { diag_error(d, n, "direction '%s' is not forward, reverse or bidirectional", dir); return false; }
    if (x->rank != 3 || w->rank != 3 || r->rank != 3 || (layout != 0 && layout != 1)) { diag_error(d, n, "X, W and R must be 3-D and layout 0 or 1"); return false; }
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && i != 4 && !dtype_is_float(n->in[i]->dtype)) { diag_error(d, n, "input '%s' must be a float tensor", n->in[i]->name); return false; }
    int64_t S = x->dims[layout ? 1 : 0], B = x->dims[layout ? 0 : 1], I = x->dims[2];
    int64_t H = node_attr_int(n, "hidden_size", r->dims[2]);
    if (H < 1 || w->dims[0] != dirs || w->dims[1] != G * H || w->dims[2] != I || r->dims[0] != dirs || r->dims[1] != G * H || r->dims[2] != H) {
        diag_error(d, n, "W must be [%lld, %lld, %lld] and R [%lld, %lld, %lld]", (long long)dirs, (long long)(G * H), (long long)I,
                   (long long)dirs, (long long)(G * H), (long long)H);
        return false;
    }
    const Value *b = node_input(n, 3), *lens = node_input(n, 4), *h0 = node_input(n, 5), *c0 = node_input(n, 6), *pp = node_input(n, 7);
    if (b && (b->rank != 2 || b->dims[0] != dirs || b->dims[1] != 2 * G * H)) { diag_error(d, n, "B must be [%lld, %lld]", (long long)dirs, (long long)(2 * G * H)); return false; }
    if (lens && (lens->rank != 1 || lens->dims[0] != B || lens->dtype != DT_I32)) { diag_error(d, n, "sequence_lens must be int32 [%lld]", (long long)B); return false; }
    int64_t st[3] = {layout ? B : dirs, layout ? dirs : B, H};
    for (int i = 0; i < 2; i++) {
        const Value *v = i ? c0 : h0;
        if (v && (v->rank != 3 || v->dims[0] != st[0] || v->dims[1] != st[1] || v->dims[2] != H)) {
            diag_error(d, n, "'%s' must be [%lld, %lld, %lld]", v->name, (long long)st[0], (long long)st[1], (long long)H);
            return false;
        }
    }
    if (pp && (pp->rank != 2 || pp->dims[0] != dirs || pp->dims[1] != 3 * H)) { diag_error(d, n, "P must be [%lld, %lld]", (long long)dirs, (long long)(3 * H)); return false; }
    const Attr *acts = node_attr(n, "activations");
    int per = n->op == OP_LSTM ? 3 : n->op == OP_GRU ? 2 : 1;
    if (acts && (acts->kind != ATTR_STRINGS || acts->n != per * dirs)) { diag_error(d, n, "activations needs %lld names", (long long)(per * dirs)); return false; }
    int64_t y[4] = {S, dirs, B, H};
    if (layout) { y[0] = B; y[1] = S; y[2] = dirs; }
    if (n->n_out > 0 && n->out[0]) set_out(n->out[0], x->dtype, 4, y);
    for (int i = 1; i < n->n_out && i < 3; i++) if (n->out[i]) set_out(n->out[i], x->dtype, 3, st);
    return true;
}

/* ---- Einsum ---- */

/* Parses the equation against the inputs' ranks: letters are labels 0..51, the
 * dimensions under "..." get labels 52 and up (right-aligned across inputs).
 * Without "->" the output is the ellipsis dims then the labels used once, in
 * alphabetical order. Sizes must agree (1 broadcasts). */
bool einsum_parse(const Node *n, EinsumInfo *e, Diags *d) {
    memset(e, 0, sizeof *e);
    const char *eq = node_attr_string(n, "equation", NULL);
    if (!eq) { diag_error(d, n, "needs an equation"); return false; }
    if (n->n_in > 8) { diag_error(d, n, "takes at most 8 inputs"); return false; }
    for (int l = 0; l < 64; l++) e->size[l] = -1;
    const char *p = eq;
    int count[64] = {0}, max_ell = 0;
    e->n_in = n->n_in;
    for (int i = 0; i <= n->n_in; i++) {
        bool out = i == n->n_in;
        int *labels = out ? e->out : e->labels[i], r = 0, ell_at = -1;
        if (out) {
            while (*p == ' ') p++;
            if (*p != '-') { /* implicit output */
                for (int k = 0; k < max_ell; k++) e->out[e->out_rank++] = 52 + (max_ell - 1 - k);
                for (int l = 0; l < 52; l++) if (count[l] == 1) e->out[e->out_rank++] = l;
                break;
            }
            if (p[1] != '>') { diag_error(d, n, "bad equation '%s'", eq); return false; }
            p += 2;
        }
        for (; *p && *p != ',' && *p != '-'; p++) {
            if (*p == ' ') continue;
            if (*p == '.') {
                if (strncmp(p, "...", 3) != 0 || ell_at >= 0) { diag_error(d, n, "bad equation '%s'", eq); return false; }
                ell_at = r;
                p += 2;
                continue;
            }
            int l = (*p >= 'a' && *p <= 'z') ? *p - 'a' : (*p >= 'A' && *p <= 'Z') ? *p - 'A' + 26 : -1;
            if (l < 0 || r >= MAX_RANK) { diag_error(d, n, "bad equation '%s'", eq); return false; }
            labels[r++] = l;
        }
        int rank = out ? r : n->in[i]->rank, ne = rank - r;
        if (ell_at >= 0) {
            if (out) ne = max_ell;
            if (ne < 0 || r + ne > MAX_RANK) { diag_error(d, n, "the equation does not match input %d's rank", i); return false; }
            memmove(labels + ell_at + ne, labels + ell_at, (size_t)(r - ell_at) * sizeof(int));
            for (int k = 0; k < ne; k++) labels[ell_at + k] = 52 + (ne - 1 - k);
            r += ne;
            if (!out && ne > max_ell) max_ell = ne;
        }
        if (out) { e->out_rank = r; break; }
        if (r != rank) { diag_error(d, n, "the equation gives input %d %d dimensions; it has %d", i, r, rank); return false; }
        e->rank[i] = r;
        for (int k = 0; k < r; k++) {
            int l = labels[k];
            int64_t dim = n->in[i]->dims[k];
            if (l < 52) count[l]++;
            if (e->size[l] < 0 || e->size[l] == 1) e->size[l] = dim;
            else if (dim != 1 && dim != e->size[l]) { diag_error(d, n, "label sizes disagree (%lld and %lld)", (long long)e->size[l], (long long)dim); return false; }
        }
        if (*p == ',') p++;
    }
    for (int k = 0; k < e->out_rank; k++)
        if (e->size[e->out[k]] < 0) { diag_error(d, n, "output label not in any input"); return false; }
    return true;
}

bool infer_einsum(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    for (int i = 0; i < n->n_in; i++) if (!dtype_is_float(n->in[i]->dtype)) { diag_error(d, n, "inputs must be float tensors"); return false; }
    EinsumInfo e;
    if (!einsum_parse(n, &e, d)) return false;
    int64_t dims[MAX_RANK];
    for (int k = 0; k < e.out_rank; k++) dims[k] = e.size[e.out[k]];
    set_out(n->out[0], n->in[0]->dtype, e.out_rank, dims);
    return true;
}

/* ---- Det ---- */

bool infer_det(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2] || !dtype_is_float(x->dtype)) {
        diag_error(d, n, "needs float square matrices [..., M, M]");
        return false;
    }
    set_out(n->out[0], x->dtype, x->rank - 2, x->dims);
    return true;
}

/* ---- GridSample ---- */

bool infer_grid_sample(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *grid = n->in[1];
    if (x->rank != 4 || grid->rank != 4 || grid->dims[0] != x->dims[0] || grid->dims[3] != 2 || !dtype_is_float(x->dtype) || !dtype_is_float(grid->dtype)) {
        diag_error(d, n, "needs a float X [N, C, H, W] and a grid [N, H_out, W_out, 2]");
        return false;
    }
    const char *mode = node_attr_string(n, "mode", "bilinear"), *pad = node_attr_string(n, "padding_mode", "zeros");
    if (strcmp(mode, "bilinear") && strcmp(mode, "nearest") && strcmp(mode, "bicubic")) { diag_error(d, n, "mode '%s' is not supported", mode); return false; }
    if (strcmp(pad, "zeros") && strcmp(pad, "border") && strcmp(pad, "reflection")) { diag_error(d, n, "padding_mode '%s' is not supported", pad); return false; }
    int64_t dims[4] = {x->dims[0], x->dims[1], grid->dims[1], grid->dims[2]};
    set_out(n->out[0], x->dtype, 4, dims);
    return true;
}

/* ---- ConvInteger (x, w, x_zp?, w_zp?) and QLinearConv (x, x_scale, x_zp, w,
 * w_scale, w_zp, y_scale, y_zp, B?) ---- */

bool infer_conv_integer(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    bool q = n->op == OP_QLINEAR_CONV;
    Value *x = n->in[0], *wt = n->in[q ? 3 : 1];
    int64_t group = node_attr_int(n, "group", 1);
    if (x->rank < 3 || wt->rank != x->rank || group < 1 || x->dims[1] % group || wt->dims[0] % group || wt->dims[1] * group != x->dims[1]) {
        diag_error(d, n, "the weight's shape does not match the input's channels and group");
        return false;
    }
    for (int i = 0; i < n->n_in; i++) {
        const Value *v = n->in[i];
        bool scale = q && (i == 1 || i == 4 || i == 6), bias = q && i == 8;
        if (!v) continue;
        if (scale && v->dtype != DT_F32) { diag_error(d, n, "scale '%s' must be float32", v->name); return false; }
        if (bias && (v->dtype != DT_I32 || value_numel(v) != wt->dims[0])) { diag_error(d, n, "B must be int32 [%lld]", (long long)wt->dims[0]); return false; }
        if (!scale && !bias && v->dtype != DT_U8 && v->dtype != DT_I8) { diag_error(d, n, "input '%s' must be uint8 or int8", v->name); return false; }
    }
    const Value *xzp = node_input(n, 2), *wzp = node_input(n, q ? 5 : 3);
    if (xzp && value_numel(xzp) != 1) { diag_error(d, n, "x's zero point must be a scalar"); return false; }
    if (wzp && value_numel(wzp) != 1 && value_numel(wzp) != wt->dims[0]) { diag_error(d, n, "w's zero point must be a scalar or one per output channel"); return false; }
    if (q && value_numel(n->in[4]) != 1 && value_numel(n->in[4]) != wt->dims[0]) { diag_error(d, n, "w's scale must be a scalar or one per output channel"); return false; }
    if (q && (value_numel(n->in[1]) != 1 || value_numel(n->in[6]) != 1 || value_numel(n->in[7]) != 1)) { diag_error(d, n, "x and y scales and zero points must be scalars"); return false; }
    Window w;
    if (!window_compute(n, x, wt->dims + 2, &w, d)) return false;
    int64_t dims[MAX_RANK] = {x->dims[0], wt->dims[0]};
    for (int i = 0; i < w.nd; i++) dims[2 + i] = w.out[i];
    set_out(n->out[0], q ? n->in[7]->dtype : DT_I32, x->rank, dims);
    return true;
}

/* ---- DFT, STFT, MelWeightMatrix (opset 17) ---- */

/* A constant integer scalar input (a length, a step); false with a diagnostic. */
static bool const_scalar(Node *n, const Value *v, int64_t lo, int64_t *out, Diags *d) {
    if (!v->data || value_numel(v) != 1 || dtype_is_float(v->dtype)) {
        diag_need(d, n, v, "input '%s' must be a constant integer scalar (computed at run time: only an executable built for this machine takes that)", v->name);
        return false;
    }
    *out = value_const_int(v, 0);
    if (*out < lo || *out > (1 << 24)) { diag_error(d, n, "input '%s' is %lld, out of range", v->name, (long long)*out); return false; }
    return true;
}

/* DFT: x [..., N, 1|2] along `axis` (not the last, complex one); out [..., L or L/2+1, 2]. */
bool infer_dft(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    int64_t axis = node_attr_int(n, "axis", 1), len;
    if (!dtype_is_float(x->dtype) || x->rank < 2 || (x->dims[x->rank - 1] != 1 && x->dims[x->rank - 1] != 2)) {
        diag_error(d, n, "needs a float input whose last dimension is 1 (real) or 2 (complex)");
        return false;
    }
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank - 1) { diag_error(d, n, "axis is out of range (the last dimension holds the complex parts)"); return false; }
    len = x->dims[axis];
    const Value *dl = node_input(n, 1);
    if (dl && !const_scalar(n, dl, 1, &len, d)) return false;
    bool onesided = node_attr_int(n, "onesided", 0) != 0, inverse = node_attr_int(n, "inverse", 0) != 0;
    if (onesided && inverse) { diag_error(d, n, "onesided and inverse together are not supported"); return false; }
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    dims[axis] = onesided ? len / 2 + 1 : len;
    dims[x->rank - 1] = 2;
    set_out(n->out[0], x->dtype, x->rank, dims);
    return true;
}

/* STFT: signal [batch, length, 1|2], frame_step, window [frame_length]?, frame_length?
 * -> [batch, frames, bins, 2]. */
bool infer_stft(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    const Value *win = node_input(n, 2), *fl = node_input(n, 3);
    int64_t step, flen = -1;
    if (!dtype_is_float(x->dtype) || x->rank != 3 || (x->dims[2] != 1 && x->dims[2] != 2)) {
        diag_error(d, n, "needs a float signal [batch, length, 1 or 2]");
        return false;
    }
    if (!const_scalar(n, n->in[1], 1, &step, d) || (fl && !const_scalar(n, fl, 1, &flen, d))) return false;
    if (win && (win->rank != 1 || !dtype_is_float(win->dtype) || (fl && win->dims[0] != flen))) {
        diag_error(d, n, "the window must be a float vector of frame_length values");
        return false;
    }
    if (win) flen = win->dims[0];
    if (flen < 1 || flen > x->dims[1]) { diag_error(d, n, "needs a window or a frame_length of 1 to the signal's length"); return false; }
    bool onesided = node_attr_int(n, "onesided", 1) != 0;
    if (onesided && x->dims[2] == 2) { diag_error(d, n, "onesided needs a real signal"); return false; }
    int64_t dims[4] = {x->dims[0], (x->dims[1] - flen) / step + 1, onesided ? flen / 2 + 1 : flen, 2};
    set_out(n->out[0], x->dtype, 4, dims);
    return true;
}

/* MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
 * upper_edge_hertz) -> [dft_length / 2 + 1, num_mel_bins] of output_datatype. */
bool infer_mel_weight_matrix(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    int64_t mel, len;
    if (!const_scalar(n, n->in[0], 1, &mel, d) || !const_scalar(n, n->in[1], 1, &len, d)) return false;
    for (int i = 2; i < 5; i++)
        if (value_numel(n->in[i]) != 1) { diag_error(d, n, "input '%s' must be a scalar", n->in[i]->name); return false; }
    DType dt = (DType)node_attr_int(n, "output_datatype", DT_F32);
    if (!dtype_is_float(dt) && dt != DT_I32 && dt != DT_I64 && dt != DT_U8 && dt != DT_I8) {
        diag_error(d, n, "output_datatype %d is not supported", (int)dt);
        return false;
    }
    int64_t dims[2] = {len / 2 + 1, mel};
    set_out(n->out[0], dt, 2, dims);
    return true;
}

/* ---- MaxUnpool (X, I, output_shape?) and RoiAlign (X, rois, batch_indices) ---- */

/* The output shape MaxUnpool's indices refer to: from kernel_shape, strides
 * and pads (output_shape, when given, only pads that shape at the end). */
bool max_unpool_shape(const Node *n, const Value *x, int64_t *dims, Diags *d) {
    int nd = x->rank - 2;
    const Attr *ks = node_attr(n, "kernel_shape"), *st = node_attr(n, "strides"), *pd = node_attr(n, "pads");
    if (!ks || ks->kind != ATTR_INTS || ks->n != nd || (st && st->n != nd) || (pd && pd->n != 2 * nd)) {
        diag_error(d, n, "needs kernel_shape (and strides, pads) for %d spatial dimensions", nd);
        return false;
    }
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < nd; i++) {
        dims[2 + i] = (x->dims[2 + i] - 1) * (st ? st->ints[i] : 1) + ks->ints[i] - (pd ? pd->ints[i] + pd->ints[nd + i] : 0);
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

bool infer_roi_align(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *rois = n->in[1], *bi = n->in[2];
    if (x->rank != 4 || !dtype_is_float(x->dtype) || rois->rank != 2 || rois->dims[1] != 4 || bi->rank != 1 || bi->dims[0] != rois->dims[0] ||
        bi->dtype != DT_I64) {
        diag_error(d, n, "needs X [N, C, H, W], rois [R, 4] and int64 batch_indices [R]");
        return false;
    }
    const char *mode = node_attr_string(n, "mode", "avg"), *ct = node_attr_string(n, "coordinate_transformation_mode", "half_pixel");
    if (strcmp(mode, "avg") && strcmp(mode, "max")) { diag_error(d, n, "mode '%s' is not supported", mode); return false; }
    if (strcmp(ct, "half_pixel") && strcmp(ct, "output_half_pixel")) { diag_error(d, n, "coordinate_transformation_mode '%s' is not supported", ct); return false; }
    int64_t oh = node_attr_int(n, "output_height", 1), ow = node_attr_int(n, "output_width", 1);
    if (oh < 1 || ow < 1 || oh > (1 << 16) || ow > (1 << 16) || node_attr_int(n, "sampling_ratio", 0) < 0) {
        diag_error(d, n, "invalid output size or sampling_ratio");
        return false;
    }
    int64_t dims[4] = {rois->dims[0], x->dims[1], oh, ow};
    set_out(n->out[0], x->dtype, 4, dims);
    return true;
}

/* ---- TfIdfVectorizer ---- */

bool tfidf_info(const Node *n, TfIdfInfo *t, Diags *d) {
    memset(t, 0, sizeof *t);
    const char *mode = node_attr_string(n, "mode", "");
    t->mode = strcmp(mode, "TF") == 0 ? 0 : strcmp(mode, "IDF") == 0 ? 1 : strcmp(mode, "TFIDF") == 0 ? 2 : -1;
    if (t->mode < 0) { diag_error(d, n, "mode must be TF, IDF or TFIDF"); return false; }
    t->min_n = node_attr_int(n, "min_gram_length", 0);
    t->max_n = node_attr_int(n, "max_gram_length", 0);
    t->max_skip = node_attr_int(n, "max_skip_count", 0);
    if (t->min_n < 1 || t->max_n < t->min_n || t->max_n > 64 || t->max_skip < 0) {
        diag_error(d, n, "needs 1 <= min_gram_length <= max_gram_length <= 64 and max_skip_count >= 0");
        return false;
    }
    const Attr *pool = node_attr(n, "pool_int64s"), *counts = node_attr(n, "ngram_counts"), *idx = node_attr(n, "ngram_indexes");
    const Attr *w = node_attr(n, "weights");
    if (node_attr(n, "pool_strings")) { diag_error(d, n, "string pools (pool_strings) are not supported"); return false; }
    if (!pool || !counts || !idx || counts->n > 64) { diag_error(d, n, "needs pool_int64s, ngram_counts (at most 64) and ngram_indexes"); return false; }
    int64_t grams = 0;
    for (int i = 0; i < counts->n; i++) {
        int64_t b = counts->ints[i], e = i + 1 < counts->n ? counts->ints[i + 1] : pool->n;
        if (b < 0 || e < b || e > pool->n || (e - b) % (i + 1)) {
            diag_error(d, n, "ngram_counts[%d] does not start a whole number of %d-grams in the pool", i, i + 1);
            return false;
        }
        t->start[i + 1] = b;
        grams += (e - b) / (i + 1);
    }
    for (int i = counts->n + 1; i <= 65; i++) t->start[i] = pool->n;
    if (idx->n != grams || (w && w->n != grams)) {
        diag_error(d, n, "ngram_indexes (and weights) need one entry per pool n-gram (%lld)", (long long)grams);
        return false;
    }
    t->n_grams = grams;
    for (int i = 0; i < idx->n; i++) {
        if (idx->ints[i] < 0 || idx->ints[i] > ((int64_t)1 << 30)) { diag_error(d, n, "ngram_indexes[%d] is out of range", i); return false; }
        if (idx->ints[i] + 1 > t->out_dim) t->out_dim = idx->ints[i] + 1;
    }
    return true;
}

bool infer_tfidf(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    if ((x->dtype != DT_I32 && x->dtype != DT_I64) || x->rank < 1 || x->rank > 2) {
        diag_error(d, n, "input must be int32 or int64 of shape [C] or [N, C] (string inputs are not supported)");
        return false;
    }
    TfIdfInfo t;
    if (!tfidf_info(n, &t, d)) return false;
    int64_t dims[2] = {x->dims[0], t.out_dim};
    if (x->rank == 1) dims[0] = t.out_dim;
    set_out(n->out[0], DT_F32, x->rank, dims);
    return true;
}

/* ---- outputs whose size depends on the data: NonZero, Unique,
 * NonMaxSuppression. Each gets its upper bound as its static shape, with the
 * dimension that varies marked in Value.dyn; the kernel writes the sizes it
 * produced, and such values may only be graph outputs (passes/infer.c). ---- */

bool infer_nonzero(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    int64_t dims[2] = {x->rank, value_numel(x)};
    set_out(n->out[0], DT_I64, 2, dims);
    n->out[0]->dyn = 2;
    return true;
}

/* StringNormalizer: strings [C] or [1, C] without the stopwords, case changed;
 * as many as are left (at least one: [""] when none is), known at run time. */
bool infer_string_normalizer(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    if (x->dtype != DT_STRING || x->rank < 1 || x->rank > 2 || (x->rank == 2 && x->dims[0] != 1)) {
        diag_error(d, n, "input must be strings of shape [C] or [1, C]");
        return false;
    }
    const char *cas = node_attr_string(n, "case_change_action", "NONE");
    if (strcmp(cas, "NONE") != 0 && strcmp(cas, "LOWER") != 0 && strcmp(cas, "UPPER") != 0) {
        diag_error(d, n, "case_change_action must be NONE, LOWER or UPPER, not '%s'", cas);
        return false;
    }
    const Attr *sw = node_attr(n, "stopwords");
    if (sw && sw->kind != ATTR_STRINGS) { diag_error(d, n, "stopwords must be a list of strings"); return false; }
    int64_t c = x->dims[x->rank - 1], dims[2] = {1, c > 0 ? c : 1};
    set_out(n->out[0], DT_STRING, x->rank, x->rank == 2 ? dims : dims + 1);
    n->out[0]->dyn = 1u << (x->rank - 1);
    return true;
}

bool infer_unique(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    const Attr *ax = node_attr(n, "axis");
    int axis = 0;
    if (ax && !axis_norm(ax->i, x->rank, &axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    if (x->dtype == DT_STRING || x->dtype == DT_F16 || x->dtype == DT_BF16) { diag_error(d, n, "dtype %s is not supported", dtype_name(x->dtype)); return false; }
    int64_t len = ax ? x->dims[axis] : value_numel(x);
    if (ax) set_out(n->out[0], x->dtype, x->rank, x->dims);
    else set_out(n->out[0], x->dtype, 1, &len);
    n->out[0]->dyn = 1u << (ax ? axis : 0);
    for (int i = 1; i < n->n_out; i++) {
        set_out(n->out[i], DT_I64, 1, &len);
        n->out[i]->dyn = i == 2 ? 0 : 1; /* inverse_indices: one per input slice */
    }
    return true;
}

bool infer_nms(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    const Value *boxes = n->in[0], *scores = n->in[1];
    if (boxes->rank != 3 || boxes->dims[2] != 4 || scores->rank != 3 || scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1] ||
        boxes->dtype != DT_F32 || scores->dtype != DT_F32) {
        diag_error(d, n, "boxes must be f32 [batch, boxes, 4] and scores f32 [batch, classes, boxes]");
        return false;
    }
    for (int i = 2; i < n->n_in; i++) {
        const Value *v = n->in[i];
        if (v && (value_numel(v) != 1 || v->dtype != (i == 2 ? DT_I64 : DT_F32))) {
            diag_error(d, n, "input %d must hold one %s", i, i == 2 ? "int64" : "float");
            return false;
        }
    }
    int64_t per_class = boxes->dims[1];
    const Value *mo = node_input(n, 2);
    if (!mo) per_class = 0;
    else if (mo->data && value_const_int(mo, 0) < per_class) per_class = value_const_int(mo, 0) < 0 ? 0 : value_const_int(mo, 0);
    int64_t dims[2] = {boxes->dims[0] * scores->dims[1] * per_class, 3};
    set_out(n->out[0], DT_I64, 2, dims);
    n->out[0]->dyn = 1;
    return true;
}
