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
        int64_t sp[4] = {N, C, D, 1};
        int sb[2] = {dst, logp};
        lower_call(l, KILN_K_softmax, 2, sb, 4, sp);
        if (lp) out_f32_done(l, lp, dst);
        logp = dst;
    }
    const char *red = node_attr_string(n, "reduction", "mean");
    const Attr *ig = node_attr(n, "ignore_index");
    int64_t p[8] = {N, C, D, strcmp(red, "none") == 0 ? 0 : strcmp(red, "sum") == 0 ? 1 : 2, w != NULL, ig != NULL,
                    ig ? ig->i : 0, dtype_size(t->dtype)};
    int out = out_f32(l, y);
    int bufs[4] = {out, logp, lower_buf(l, t), w ? in_f32(l, w) : 0};
    lower_call(l, KILN_K_nll, w ? 4 : 3, bufs, 8, p);
    out_f32_done(l, y, out);
    return true;
}
