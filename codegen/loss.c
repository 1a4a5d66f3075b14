/* loss.c: the lowering of NegativeLogLikelihoodLoss and
 * SoftmaxCrossEntropyLoss: the NLL kernel, which applies the weights,
 * ignore_index and the reduction, after LogSoftmax over the classes (the
 * softmax kernel) for SoftmaxCrossEntropyLoss. */
#include "kir.h"

#include <string.h>

/* SoftmaxCrossEntropyLoss is LogSoftmax over the classes, then the NLL kernel. */
bool lower_loss(Lower *l, Node *n) {
    const Value *x = n->in[0], *t = n->in[1], *w = node_input(n, 2), *y = n->out[0];
    int64_t N = x->dims[0], C = x->dims[1], D = dims_numel(x->rank - 2, x->dims + 2);
    int logp = in_f32(l, x);
    if (n->op == OP_SCE_LOSS) {
        const Value *lp = n->n_out > 1 ? n->out[1] : NULL;
        int dst = lp ? out_f32(l, lp) : scratch_buf(l, DT_F32, value_numel(x));
        kiln_p_softmax sp = {.outer = N, .axis_len = C, .inner = D, .log = 1};
        int sb[2] = {dst, logp};
        LOWER_CALL(l, softmax, 2, sb, &sp);
        if (lp) out_f32_done(l, lp, dst);
        logp = dst;
    }
    const attrs_loss *a = node_attrs(n, loss);
    kiln_p_nll p = {.N = N, .C = C, .D = D, .reduction = strcmp(a->reduction, "none") == 0 ? 0 : strcmp(a->reduction, "sum") == 0 ? 1 : 2,
                    .has_weight = w != NULL, .has_ignore = a->has_ignore_index, .ignore_index = a->ignore_index, .target_esize = dtype_size(t->dtype)};
    int out = out_f32(l, y);
    int bufs[4] = {out, logp, lower_buf(l, t), w ? in_f32(l, w) : 0};
    LOWER_CALL(l, nll, w ? 4 : 3, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
