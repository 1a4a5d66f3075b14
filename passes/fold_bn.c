/* fold_bn.c (pass "fold-bn"): folds an inference BatchNormalization into the
 * Conv that feeds it.
 *
 * y = (conv(x, W) + b - mean) * scale / sqrt(var + eps) + bias is conv(x, W')
 * + b' with W'[m] = W[m] * a[m], b'[m] = (b[m] - mean[m]) * a[m] + bias[m], and
 * a = scale / sqrt(var + eps). Applies when the Conv output has no other use,
 * the weights, bias and every BatchNormalization parameter are float32
 * constants, and the BatchNormalization is not in training mode. The new
 * weights are computed in double and rounded once. */
#include "passes.h"

#include <math.h>

static bool const_f32(const Value *v) { return v && v->data && v->dtype == DT_F32; }

bool pass_fold_bn(Graph *g, Diags *d) {
    graph_count_uses(g);
    for (int i = 0; i < g->nodes.n; i++) {
        Node *bn = g->nodes.items[i];
        if (bn->dead || bn->op != OP_BATCH_NORM || bn->n_out != 1) continue;
        if (bn->opset >= 14 && node_attrs(bn, batch_norm)->training_mode) continue;
        Value *x = bn->in[0];
        Node *conv = x->producer;
        if (!conv || conv->dead || conv->op != OP_CONV || x->id != 1 || x->dtype != DT_F32) continue;
        Value *w = conv->in[1], *b = node_input(conv, 2);
        bool ok = const_f32(w) && (!b || const_f32(b));
        for (int k = 1; k < 5; k++) ok = ok && const_f32(bn->in[k]);
        if (!ok) continue;
        int64_t M = w->dims[0], per = value_numel(w) / M;
        double eps = node_attrs(bn, batch_norm)->epsilon;
        const float *scale = bn->in[1]->data, *bias = bn->in[2]->data, *mean = bn->in[3]->data, *var = bn->in[4]->data;
        float *nw = arena_alloc(g->arena, (size_t)value_nbytes(w)), *nb = arena_alloc(g->arena, (size_t)M * sizeof(float));
        const float *ow = w->data, *ob = b ? b->data : NULL;
        for (int64_t m = 0; m < M; m++) {
            double a = scale[m] / sqrt((double)var[m] + eps);
            for (int64_t k = 0; k < per; k++) nw[m * per + k] = (float)(ow[m * per + k] * a);
            nb[m] = (float)(((ob ? ob[m] : 0.0) - mean[m]) * a + bias[m]);
        }
        Value *wv = graph_add_const(g, arena_printf(g->arena, "%s.folded_w", conv->name), DT_F32, w->rank, w->dims, nw);
        Value *bv = graph_add_const(g, arena_printf(g->arena, "%s.folded_b", conv->name), DT_F32, 1, &M, nb);
        if (conv->n_in < 3) { /* room for the bias input */
            Value **in = arena_alloc(g->arena, 4 * sizeof(Value *));
            in[0] = conv->in[0];
            in[1] = conv->in[1];
            conv->in = in;
            conv->n_in = 3;
        }
        conv->in[1] = wv;
        conv->in[2] = bv;
        conv->out[0] = bn->out[0];
        bn->out[0]->producer = conv;
        bn->out[0]->producer_out = 0;
        bn->dead = true;
    }
    graph_compact(g);
    return pass_dce(g, d);
}
