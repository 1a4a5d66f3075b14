/* rnn.c: the lowering of RNN, GRU and LSTM: one call of the recurrent kernel
 * (runtime/rnn.c, which follows the order of the activation table here), with
 * each direction's activations and their alpha and beta as parameters; absent
 * outputs go to scratch. */
#include "kir.h"

#include <string.h>
#include <strings.h>

/* RNN, GRU, LSTM: one call of the recurrent kernel; absent outputs go to scratch. */
bool lower_rnn(Lower *l, Node *n) {
    static const char *const names[] = {"Sigmoid", "Tanh", "Relu", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
                                        "HardSigmoid", "Elu", "Softsign", "Softplus"};
    static const double dflt[][2] = {{0, 0}, {0, 0}, {0, 0}, {1, 0}, {0.01, 0}, {1, 0}, {1, 1}, {0.2, 0.5}, {1, 0}, {0, 0}, {0, 0}};
    const Value *x = n->in[0];
    const attrs_rnn *a = node_attrs(n, rnn);
    int layout = (int)a->layout, per = n->op == OP_LSTM ? 3 : n->op == OP_GRU ? 2 : 1;
    const char *dir = a->direction;
    int64_t dirs = strcmp(dir, "bidirectional") == 0 ? 2 : 1, S = x->dims[layout ? 1 : 0], B = x->dims[layout ? 0 : 1];
    int64_t H = n->in[2]->dims[2];
    kiln_p_rnn p = {.kind = n->op == OP_LSTM ? 2 : n->op == OP_GRU ? 1 : 0, .seq = S, .batch = B, .input = x->dims[2],
                    .hidden = H, .dirs = dirs, .direction = strcmp(dir, "reverse") == 0 ? 1 : dirs == 2 ? 2 : 0,
                    .layout = layout, .has_B = node_input(n, 3) != NULL, .has_lens = node_input(n, 4) != NULL,
                    .has_h0 = node_input(n, 5) != NULL, .has_c0 = node_input(n, 6) != NULL, .has_P = node_input(n, 7) != NULL,
                    .has_clip = a->has_clip, .clip = kiln_d2p(a->clip), .linear_before_reset = a->linear_before_reset,
                    .input_forget = a->input_forget, .n_act = per * dirs};
    const AttrStrs *acts = a->has_activations ? &a->activations : NULL;
    const AttrFloats *al = &a->activation_alpha, *be = &a->activation_beta;
    int ai = 0, bi = 0;
    for (int k = 0; k < per * dirs; k++) {
        static const int defaults[3][3] = {{1, 1, 1}, {0, 1, 1}, {0, 1, 1}}; /* RNN: Tanh; GRU: Sigmoid, Tanh; LSTM: Sigmoid, Tanh, Tanh */
        int kind = defaults[per - 1][k % per];
        if (acts) {
            kind = -1;
            for (int q = 0; q < 11; q++) if (strcasecmp(acts->v[k], names[q]) == 0) kind = q;
            if (kind < 0) { diag_error(l->d, n, "activation '%s' is not supported", acts->v[k]); return false; }
        }
        double alpha = dflt[kind][0], beta = dflt[kind][1];
        bool uses_a = kind >= 3 && kind <= 8, uses_b = kind == 3 || kind == 6 || kind == 7;
        if (acts && uses_a && ai < al->n) alpha = al->v[ai++];
        if (acts && uses_b && bi < be->n) beta = be->v[bi++];
        p.acts[3 * k] = kind;
        p.acts[3 * k + 1] = kiln_d2p(alpha);
        p.acts[3 * k + 2] = kiln_d2p(beta);
    }
    int outs[3];
    int64_t ysz = S * dirs * B * H, ssz = dirs * B * H;
    for (int i = 0; i < 3; i++) {
        const Value *o = i < n->n_out ? n->out[i] : NULL;
        outs[i] = o ? out_f32(l, o) : scratch_buf(l, DT_F32, i ? ssz : ysz);
    }
    int bufs[14] = {outs[0], outs[1], outs[2], in_f32(l, x), in_f32(l, n->in[1]), in_f32(l, n->in[2])};
    for (int i = 3; i < 8; i++) {
        const Value *v = node_input(n, i);
        bufs[3 + i] = !v ? bufs[3] : i == 4 ? lower_buf(l, v) : in_f32(l, v);
    }
    bufs[11] = step_scratch(l, kiln_rnn_scratch_floats(p.kind, S, B, H) * 4);
    bufs[12] = bufs[13] = bufs[3];
    /* constant float32 W and R: packed for the GEMM once, when the context is
     * created (R's first 2 gates only for GRU, whose h gate is computed apart) */
    const Value *W = n->in[1], *R = n->in[2];
    p.packed = !l->fold && W->data && R->data && W->dtype == DT_F32 && R->dtype == DT_F32;
    if (p.packed) {
        int64_t GH = W->dims[1], I = x->dims[2], RN = n->op == OP_GRU ? 2 * H : GH; /* W: [dirs, gates * H, I] */
        kiln_p_pack_b_many pw = {dirs, GH, I, GH * I}, pr = {dirs, RN, H, GH * H};
        int wp[2] = {state_buf(l, "packed weights", dirs * kiln_sgemm_packed_floats(GH, I) * 4), bufs[4]};
        int rp[2] = {state_buf(l, "packed weights", dirs * kiln_sgemm_packed_floats(RN, H) * 4), bufs[5]};
        LOWER_CALL(l, pack_b_many, 2, wp, &pw)->at_create = true;
        LOWER_CALL(l, pack_b_many, 2, rp, &pr)->at_create = true;
        bufs[12] = wp[0];
        bufs[13] = rp[0];
    }
    LOWER_CALL(l, rnn, 14, bufs, &p);
    for (int i = 0; i < 3 && i < n->n_out; i++) if (n->out[i]) out_f32_done(l, n->out[i], outs[i]);
    return true;
}
