/* conv.c: the shape rules of Conv and ConvTranspose (the integer convolutions
 * are with the quantization ops, quant.c).
 *
 * Conv's output size comes from window_compute (infer.c, shared with the
 * pools); ConvTranspose's from convt_window: stride*(in-1) + output_padding +
 * (k-1)*dil + 1 - pads, or output_shape with the pads derived from it. A Conv
 * takes a 4th input only as the fuse pass's residual (kiln.residual), which
 * the runtime's direct kernel does not take (conv_direct asks the layers
 * above). The lowerings are in codegen/conv.c. */
#include "ir.h"
#include "infer.h"

#include <string.h>

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
    const attrs_conv *a = node_attrs(n, conv);
    int64_t group = a->group;
    if (x->rank < 3) { diag_error(d, n, "input must have rank 3 to 5"); return false; }
    int64_t C = x->dims[1], M = wt->dims[0];
    if (group < 1 || C % group || M % group || wt->dims[1] * group != C) {
        diag_error(d, n, "channels do not match: input has %lld, weight expects %lld x group %lld", (long long)C, (long long)wt->dims[1], (long long)group);
        return false;
    }
    if (a->has_kernel_shape && (a->kernel_shape.n != x->rank - 2 || memcmp(a->kernel_shape.v, wt->dims + 2, (size_t)a->kernel_shape.n * sizeof(int64_t)) != 0)) {
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
    if (n->n_in > 3 && (!a->has_kiln_residual || !b || !r || conv_direct(g, C, M, group) || r->dtype != x->dtype || r->rank != x->rank ||
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
    const attrs_conv *a = node_attrs(n, conv);
    int64_t pads[2 * MAX_WIN], opad[MAX_WIN], oshape[MAX_WIN];
    if (!attr_ints(n, ATTR_LIST(a, strides), w->stride, nd, 1, d) || !attr_ints(n, ATTR_LIST(a, dilations), w->dil, nd, 1, d) ||
        !attr_ints(n, ATTR_LIST(a, pads), pads, 2 * nd, 0, d) || !attr_ints(n, ATTR_LIST(a, output_padding), opad, nd, 0, d))
        return false;
    bool os = a->has_output_shape;
    if (os && a->output_shape.n != nd && a->output_shape.n != x->rank) { diag_error(d, n, "output_shape must have %d values", nd); return false; }
    for (int i = 0; i < nd && os; i++) oshape[i] = a->output_shape.v[a->output_shape.n - nd + i];
    const char *ap = a->auto_pad;
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
    int64_t group = node_attrs(n, conv)->group;
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
