/* signal.c: the shape rules of the signal ops.
 *
 * - HannWindow, HammingWindow, BlackmanWindow: computed here, at compile time,
 *   from their constant size (meta ops, like Range);
 * - DFT, STFT (lengths and steps must be constants), MelWeightMatrix (its
 *   sizes constant, its frequencies read at run time), all of opset 17.
 * The lowerings of DFT, STFT and MelWeightMatrix are in codegen/signal.c. */
#include "ir.h"
#include "infer.h"

#include <math.h>
#include <string.h>

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
    const attrs_window *a = node_attrs(n, window);
    DType dt = (DType)a->output_datatype;
    if (dt != DT_F32 && dt != DT_F64 && dt != DT_I32 && dt != DT_I64) { diag_error(d, n, "output_datatype %d is not supported", (int)dt); return false; }
    bool periodic = a->periodic != 0;
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
    const attrs_dft *a = node_attrs(n, dft);
    int64_t axis = a->axis, len;
    if (!dtype_is_float(x->dtype) || x->rank < 2 || (x->dims[x->rank - 1] != 1 && x->dims[x->rank - 1] != 2)) {
        diag_error(d, n, "needs a float input whose last dimension is 1 (real) or 2 (complex)");
        return false;
    }
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank - 1) { diag_error(d, n, "axis is out of range (the last dimension holds the complex parts)"); return false; }
    len = x->dims[axis];
    const Value *dl = node_input(n, 1);
    if (dl && !const_scalar(n, dl, 1, &len, d)) return false;
    bool onesided = a->onesided != 0, inverse = a->inverse != 0;
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
    bool onesided = node_attrs(n, stft)->onesided != 0;
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
    DType dt = (DType)node_attrs(n, mel_weight_matrix)->output_datatype;
    if (!dtype_is_float(dt) && dt != DT_I32 && dt != DT_I64 && dt != DT_U8 && dt != DT_I8) {
        diag_error(d, n, "output_datatype %d is not supported", (int)dt);
        return false;
    }
    int64_t dims[2] = {len / 2 + 1, mel};
    set_out(n->out[0], dt, 2, dims);
    return true;
}
