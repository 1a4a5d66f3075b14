/* rnn.c: the shape rule of RNN, GRU and LSTM, every direction and layout: X
 * [S, B, I] (layout 1: [B, S, I]), W [dirs, G*H, I] and R [dirs, G*H, H] for G
 * gates (rnn_gates), and the optional B, sequence_lens, initial states and
 * LSTM's peepholes; Y is [S, dirs, B, H] and the last states [dirs, B, H]
 * (layout 1: [B, S, dirs, H] and [B, dirs, H]). The lowering is in
 * codegen/rnn.c. */
#include "ir.h"
#include "infer.h"

#include <string.h>

int rnn_gates(const Node *n) { return n->op == OP_LSTM ? 4 : n->op == OP_GRU ? 3 : 1; }

bool infer_rnn(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0], *w = n->in[1], *r = n->in[2];
    const attrs_rnn *a = node_attrs(n, rnn);
    int G = rnn_gates(n), layout = (int)a->layout;
    const char *dir = a->direction;
    int64_t dirs = strcmp(dir, "bidirectional") == 0 ? 2 : 1;
    if (strcmp(dir, "forward") && strcmp(dir, "reverse") && dirs == 1) { diag_error(d, n, "direction '%s' is not forward, reverse or bidirectional", dir); return false; }
    if (x->rank != 3 || w->rank != 3 || r->rank != 3 || (layout != 0 && layout != 1)) { diag_error(d, n, "X, W and R must be 3-D and layout 0 or 1"); return false; }
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && i != 4 && !dtype_is_float(n->in[i]->dtype)) { diag_error(d, n, "input '%s' must be a float tensor", n->in[i]->name); return false; }
    int64_t S = x->dims[layout ? 1 : 0], B = x->dims[layout ? 0 : 1], I = x->dims[2];
    int64_t H = a->has_hidden_size ? a->hidden_size : r->dims[2]; /* absent: R's */
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
    int per = n->op == OP_LSTM ? 3 : n->op == OP_GRU ? 2 : 1;
    if (a->has_activations && a->activations.n != per * dirs) { diag_error(d, n, "activations needs %lld names", (long long)(per * dirs)); return false; }
    int64_t y[4] = {S, dirs, B, H};
    if (layout) { y[0] = B; y[1] = S; y[2] = dirs; }
    if (n->n_out > 0 && n->out[0]) set_out(n->out[0], x->dtype, 4, y);
    for (int i = 1; i < n->n_out && i < 3; i++) if (n->out[i]) set_out(n->out[i], x->dtype, 3, st);
    return true;
}
