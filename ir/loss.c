/* loss.c: the shape rule of NegativeLogLikelihoodLoss and
 * SoftmaxCrossEntropyLoss: scores [N, C, d...], int32/int64 targets
 * [N, d...], optional weights [C]; reduction none (one loss per target), sum
 * or mean (a scalar). SoftmaxCrossEntropyLoss's optional second output, the
 * log-probabilities, has the scores' shape. The lowering is in
 * codegen/loss.c. */
#include "ir.h"
#include "infer.h"

#include <string.h>

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
    const char *red = node_attrs(n, loss)->reduction;
    if (strcmp(red, "none") == 0) set_out(n->out[0], x->dtype, t->rank, t->dims);
    else if (strcmp(red, "sum") == 0 || strcmp(red, "mean") == 0) set_out(n->out[0], x->dtype, 0, NULL);
    else { diag_error(d, n, "unknown reduction '%s'", red); return false; }
    if (n->n_out > 1 && n->out[1]) set_out(n->out[1], x->dtype, x->rank, x->dims);
    return true;
}
