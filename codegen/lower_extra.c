/* lower_extra.c: the lowerings of kiln.MoE and of the ops added after the
 * first set (quantization, MVN, LRN, ReverseSequence, Compress, RNN/GRU/LSTM,
 * Einsum, Det, GridSample, ConvInteger/QLinearConv, DFT, STFT, MelWeightMatrix,
 * MaxUnpool, RoiAlign), with the shared helpers of
 * codegen/lower.c (declared in kir.h). */
#include "kir.h"

#include <math.h>
#include <string.h>
#include <strings.h>

/* kiln.MoE: one call of the MoE kernel; absent optional inputs pass x's buffer
 * (the kernel reads them only when their has_ flag is set). The per-expert token
 * counts go to the context's state, one int64 array per layer. */
bool lower_moe(Lower *l, Node *n) {
    MoeInfo m;
    if (!moe_info(n, &m, l->d)) return false;
    const Value *y = n->out[0];
    int64_t p[22] = {m.T, m.H, m.I, m.E, m.k, m.act, m.fusion, m.has_b1, m.has_b2, m.has_w3, m.has_b3, m.has_rbias,
                     m.sigmoid, m.normalize, kiln_d2p(m.scale), m.n_group, m.topk_group, kiln_d2p(m.alpha),
                     kiln_d2p(m.beta), kiln_d2p(m.limit), !l->fold, 0};
    int out = out_f32(l, y), bufs[15];
    bufs[0] = out;
    for (int i = 0; i < 9; i++) {
        const Value *v = node_input(n, i);
        bufs[1 + i] = v ? in_f32(l, v) : bufs[1];
    }
    bufs[10] = step_scratch(l, kiln_moe_scratch_bytes(p));
    if (l->fold) bufs[11] = bufs[1];
    else {
        Kir *k = l->k;
        int64_t at = k->state_size;
        bufs[11] = state_buf(l, "routing counts", m.E * 8);
        KMoeLayer *nl = arena_alloc(k->arena, (size_t)(k->nmoe + 1) * sizeof *nl);
        if (k->nmoe) memcpy(nl, k->moe, (size_t)k->nmoe * sizeof *nl);
        nl[k->nmoe++] = (KMoeLayer){moe_layer_name(n), m.E, m.k, m.T, at};
        k->moe = nl;
    }
    /* constant float32 weights are packed once, when the context is created */
    int nb = 12;
    p[21] = !l->fold && n->in[2]->data && n->in[4]->data && (!m.has_w3 || n->in[6]->data);
    for (int i = 2; i <= 6; i += 2) p[21] = p[21] && (!node_input(n, i) || node_input(n, i)->dtype == DT_F32);
    if (p[21]) {
        static const int wi[3] = {2, 4, 6};
        int64_t dims[3][2] = {{m.I1, m.H}, {m.H, m.I}, {m.I, m.H}};
        for (int w = 0; w < 3; w++) {
            if (w == 2 && !m.has_w3) { bufs[nb++] = bufs[1]; continue; }
            int64_t pk[3] = {m.E, dims[w][0], dims[w][1]};
            int packed[2] = {state_buf(l, "packed weights", m.E * kiln_sgemm_packed_floats(pk[1], pk[2]) * 4), lower_buf(l, n->in[wi[w]])};
            lower_call(l, KILN_K_moe_pack, 2, packed, 3, pk)->at_create = true;
            bufs[nb++] = packed[0];
        }
    }
    lower_call(l, KILN_K_moe, nb, bufs, 22, p);
    out_f32_done(l, y, out);
    return true;
}

/* ---- quantization, MVN, LRN, ReverseSequence, Compress ---- */

bool lower_quantize(Lower *l, Node *n) {
    const Value *x = n->in[0], *zp = node_input(n, 2), *y = n->out[0];
    bool q = n->op == OP_QUANTIZE_LINEAR;
    int axis;
    quant_axis(n, x, &axis);
    bool per_axis = value_numel(n->in[1]) > 1;
    int64_t p[7] = {!q, 1, 1, 1, per_axis, zp != NULL, q ? y->dtype : x->dtype};
    if (per_axis) { p[2] = x->dims[axis]; outer_inner(x, axis, &p[1], &p[3]); }
    else p[3] = value_numel(x);
    int out = q ? lower_buf(l, y) : out_f32(l, y);
    int bufs[4] = {out, q ? in_f32(l, x) : lower_buf(l, x), in_f32(l, n->in[1]), zp ? lower_buf(l, zp) : out};
    lower_call(l, KILN_K_quantize, 4, bufs, 7, p);
    if (!q) out_f32_done(l, y, out);
    return true;
}

bool lower_dynamic_quantize(Lower *l, Node *n) {
    int64_t p[1] = {value_numel(n->in[0])};
    int bufs[4] = {lower_buf(l, n->out[0]), lower_buf(l, n->out[1]), lower_buf(l, n->out[2]), lower_buf(l, n->in[0])};
    lower_call(l, KILN_K_dynamic_quantize, 4, bufs, 1, p);
    return true;
}

bool lower_matmul_integer(Lower *l, Node *n) {
    bool q = n->op == OP_QLINEAR_MATMUL;
    const Value *a = n->in[0], *b = n->in[q ? 3 : 1], *y = n->out[0];
    const Value *azp = node_input(n, 2), *bzp = node_input(n, q ? 5 : 3);
    int64_t M = a->dims[a->rank - 2], K = a->dims[a->rank - 1], N = b->dims[b->rank - 1];
    int64_t p[12] = {q, M, N, K, a->dtype, b->dtype, y->dtype, azp ? value_numel(azp) : 0, bzp ? value_numel(bzp) : 0,
                     q ? value_numel(n->in[4]) : 1, value_numel(a) / K, b->rank > 2 ? K * N : 0};
    int yb = lower_buf(l, y), bufs[9] = {yb, lower_buf(l, a), lower_buf(l, b), azp ? lower_buf(l, azp) : yb, bzp ? lower_buf(l, bzp) : yb,
                                         yb, yb, yb, yb};
    if (q) {
        bufs[5] = in_f32(l, n->in[1]);
        bufs[6] = in_f32(l, n->in[4]);
        bufs[7] = in_f32(l, n->in[6]);
        bufs[8] = lower_buf(l, n->in[7]);
    }
    lower_call(l, KILN_K_matmul_integer, 9, bufs, 12, p);
    return true;
}

bool lower_mvn(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[2 + MAX_RANK] = {x->rank};
    uint64_t mask = 0;
    const Attr *ax = node_attr(n, "axes");
    for (int i = 0; ax && i < ax->n; i++) {
        int a;
        axis_norm(ax->ints[i], x->rank, &a);
        mask |= 1ull << a;
    }
    if (!ax) mask = 1 | 4 | 8;
    for (int d = 0; d < x->rank; d++) p[1 + d] = x->dims[d];
    p[1 + x->rank] = (int64_t)mask;
    int out = out_f32(l, y), bufs[2] = {out, in_f32(l, x)};
    lower_call(l, KILN_K_mvn, 2, bufs, 2 + x->rank, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_lrn(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[7] = {x->dims[0], x->dims[1], dims_numel(x->rank - 2, x->dims + 2), node_attr_int(n, "size", 1),
                    kiln_d2p(node_attr_float(n, "alpha", 1e-4)), kiln_d2p(node_attr_float(n, "beta", 0.75)), kiln_d2p(node_attr_float(n, "bias", 1.0))};
    int out = out_f32(l, y), bufs[2] = {out, in_f32(l, x)};
    lower_call(l, KILN_K_lrn, 2, bufs, 7, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_reverse_sequence(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int b;
    axis_norm(node_attr_int(n, "batch_axis", 1), x->rank, &b);
    int64_t p[5] = {dtype_size(x->dtype), b, x->dims[0], x->dims[1], dims_numel(x->rank - 2, x->dims + 2)};
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, n->in[1])};
    lower_call(l, KILN_K_reverse_sequence, 3, bufs, 5, p);
    return true;
}

/* Compress with a constant condition: a Gather of the kept positions. */
bool lower_compress(Lower *l, Node *n) {
    const Value *x = n->in[0], *c = n->in[1], *y = n->out[0];
    const Attr *ax = node_attr(n, "axis");
    int axis = 0;
    if (ax) axis_norm(ax->i, x->rank, &axis);
    int64_t outer = 1, len = value_numel(x), inner = 1, kept = ax ? y->dims[axis] : value_numel(y);
    if (ax) { len = x->dims[axis]; outer_inner(x, axis, &outer, &inner); }
    int64_t *idx = arena_alloc(l->k->arena, (size_t)(kept + 1) * sizeof *idx), k = 0;
    const unsigned char *cd = c->data;
    for (int64_t i = 0; i < c->dims[0] && i < len; i++) if (cd[i]) idx[k++] = i;
    Value *iv = graph_add_const(l->g, arena_printf(l->k->arena, "%s:kept", n->name), DT_I64, 1, &kept, idx);
    iv->id = -1;
    int64_t p[6] = {dtype_size(x->dtype), outer, len, inner, kept, 8};
    int bufs[3] = {lower_buf(l, y), lower_buf(l, x), lower_buf(l, iv)};
    lower_call(l, KILN_K_gather, 3, bufs, 6, p);
    return true;
}

/* RNN, GRU, LSTM: one call of the recurrent kernel; absent outputs go to scratch. */
bool lower_rnn(Lower *l, Node *n) {
    static const char *const names[] = {"Sigmoid", "Tanh", "Relu", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
                                        "HardSigmoid", "Elu", "Softsign", "Softplus"};
    static const double dflt[][2] = {{0, 0}, {0, 0}, {0, 0}, {1, 0}, {0.01, 0}, {1, 0}, {1, 1}, {0.2, 0.5}, {1, 0}, {0, 0}, {0, 0}};
    const Value *x = n->in[0];
    int layout = (int)node_attr_int(n, "layout", 0), per = n->op == OP_LSTM ? 3 : n->op == OP_GRU ? 2 : 1;
    const char *dir = node_attr_string(n, "direction", "forward");
    int64_t dirs = strcmp(dir, "bidirectional") == 0 ? 2 : 1, S = x->dims[layout ? 1 : 0], B = x->dims[layout ? 0 : 1];
    int64_t H = n->in[2]->dims[2];
    const Attr *clip = node_attr(n, "clip");
    int64_t p[19 + 3 * 6] = {n->op == OP_LSTM ? 2 : n->op == OP_GRU ? 1 : 0, S, B, x->dims[2], H, dirs,
                             strcmp(dir, "reverse") == 0 ? 1 : dirs == 2 ? 2 : 0, layout,
                             node_input(n, 3) != NULL, node_input(n, 4) != NULL, node_input(n, 5) != NULL,
                             node_input(n, 6) != NULL, node_input(n, 7) != NULL, clip != NULL, kiln_d2p(clip ? clip->f : 0),
                             node_attr_int(n, "linear_before_reset", 0), node_attr_int(n, "input_forget", 0), per * dirs};
    const Attr *acts = node_attr(n, "activations"), *al = node_attr(n, "activation_alpha"), *be = node_attr(n, "activation_beta");
    int ai = 0, bi = 0;
    for (int k = 0; k < per * dirs; k++) {
        static const int defaults[3][3] = {{1, 1, 1}, {0, 1, 1}, {0, 1, 1}}; /* RNN: Tanh; GRU: Sigmoid, Tanh; LSTM: Sigmoid, Tanh, Tanh */
        int kind = defaults[per - 1][k % per];
        if (acts) {
            kind = -1;
            for (int q = 0; q < 11; q++) if (strcasecmp(acts->strings[k], names[q]) == 0) kind = q;
            if (kind < 0) { diag_error(l->d, n, "activation '%s' is not supported", acts->strings[k]); return false; }
        }
        double a = dflt[kind][0], b = dflt[kind][1];
        bool uses_a = kind >= 3 && kind <= 8, uses_b = kind == 3 || kind == 6 || kind == 7;
        if (acts && uses_a && al && ai < al->n) a = al->floats[ai++];
        if (acts && uses_b && be && bi < be->n) b = be->floats[bi++];
        p[18 + 3 * k] = kind;
        p[19 + 3 * k] = kiln_d2p(a);
        p[20 + 3 * k] = kiln_d2p(b);
    }
    int outs[3];
    int64_t ysz = S * dirs * B * H, ssz = dirs * B * H;
    for (int i = 0; i < 3; i++) {
        const Value *o = i < n->n_out ? n->out[i] : NULL;
        outs[i] = o ? out_f32(l, o) : scratch_buf(l, DT_F32, i ? ssz : ysz);
    }
    int bufs[12] = {outs[0], outs[1], outs[2], in_f32(l, x), in_f32(l, n->in[1]), in_f32(l, n->in[2])};
    for (int i = 3; i < 8; i++) {
        const Value *v = node_input(n, i);
        bufs[3 + i] = !v ? bufs[3] : i == 4 ? lower_buf(l, v) : in_f32(l, v);
    }
    bufs[11] = step_scratch(l, kiln_rnn_scratch_floats(p[0], S, B, H) * 4);
    lower_call(l, KILN_K_rnn, 12, bufs, 18 + 3 * per * dirs, p);
    for (int i = 0; i < 3 && i < n->n_out; i++) if (n->out[i]) out_f32_done(l, n->out[i], outs[i]);
    return true;
}

bool lower_einsum(Lower *l, Node *n) {
    EinsumInfo e;
    if (!einsum_parse(n, &e, l->d)) return false;
    int64_t p[67 + MAX_RANK + 8 * (1 + 2 * MAX_RANK)];
    int np = 0;
    p[np++] = n->n_in;
    p[np++] = 64;
    for (int k = 0; k < 64; k++) p[np++] = e.size[k] < 0 ? 1 : e.size[k];
    p[np++] = e.out_rank;
    for (int k = 0; k < e.out_rank; k++) p[np++] = e.out[k];
    for (int i = 0; i < n->n_in; i++) {
        p[np++] = e.rank[i];
        for (int k = 0; k < e.rank[i]; k++) p[np++] = e.labels[i][k];
        for (int k = 0; k < e.rank[i]; k++) p[np++] = n->in[i]->dims[k];
    }
    int out = out_f32(l, n->out[0]), bufs[9] = {out};
    for (int i = 0; i < n->n_in; i++) bufs[1 + i] = in_f32(l, n->in[i]);
    lower_call(l, KILN_K_einsum, 1 + n->n_in, bufs, np, p);
    out_f32_done(l, n->out[0], out);
    return true;
}

bool lower_det(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int64_t M = x->dims[x->rank - 1], mm = M * M, p[2] = {mm > 0 ? value_numel(x) / mm : 0, M};
    int out = out_f32(l, n->out[0]), bufs[2] = {out, in_f32(l, x)};
    lower_call(l, KILN_K_det, 2, bufs, 2, p);
    out_f32_done(l, n->out[0], out);
    return true;
}

bool lower_grid_sample(Lower *l, Node *n) {
    const Value *x = n->in[0], *g = n->in[1], *y = n->out[0];
    const char *mode = node_attr_string(n, "mode", "bilinear"), *pad = node_attr_string(n, "padding_mode", "zeros");
    int64_t p[9] = {x->dims[0], x->dims[1], x->dims[2], x->dims[3], g->dims[1], g->dims[2],
                    strcmp(mode, "nearest") == 0 ? 1 : strcmp(mode, "bicubic") == 0 ? 2 : 0,
                    strcmp(pad, "border") == 0 ? 1 : strcmp(pad, "reflection") == 0 ? 2 : 0, node_attr_int(n, "align_corners", 0) != 0};
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), in_f32(l, g)};
    lower_call(l, KILN_K_grid_sample, 3, bufs, 9, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_conv_integer(Lower *l, Node *n) {
    bool q = n->op == OP_QLINEAR_CONV;
    const Value *x = n->in[0], *wt = n->in[q ? 3 : 1], *y = n->out[0];
    const Value *xzp = node_input(n, 2), *wzp = node_input(n, q ? 5 : 3), *bias = q ? node_input(n, 8) : NULL;
    Window w;
    if (!window_compute(n, x, wt->dims + 2, &w, l->d)) return false;
    int64_t p[5 + 7 * MAX_WIN + 8] = {w.nd, x->dims[0], x->dims[1], wt->dims[0], node_attr_int(n, "group", 1)};
    int np = 5 + window_params(&w, p + 5);
    int64_t tail[8] = {x->dtype, wt->dtype, xzp != NULL, wzp ? value_numel(wzp) : 0, q, y->dtype, q ? value_numel(n->in[4]) : 1, bias != NULL};
    memcpy(p + np, tail, sizeof tail);
    np += 8;
    int yb = lower_buf(l, y);
    int bufs[10] = {yb, lower_buf(l, x), lower_buf(l, wt), xzp ? lower_buf(l, xzp) : yb, wzp ? lower_buf(l, wzp) : yb, yb, yb, yb, yb, yb};
    if (q) {
        bufs[5] = in_f32(l, n->in[1]);
        bufs[6] = in_f32(l, n->in[4]);
        bufs[7] = in_f32(l, n->in[6]);
        bufs[8] = lower_buf(l, n->in[7]);
        if (bias) bufs[9] = lower_buf(l, bias);
    }
    lower_call(l, KILN_K_conv_integer, 10, bufs, np, p);
    return true;
}

/* ---- DFT, STFT, MelWeightMatrix, MaxUnpool, RoiAlign ---- */

bool lower_dft(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0], *dl = node_input(n, 1);
    int64_t axis = node_attr_int(n, "axis", 1), outer = 1, inner = 1;
    if (axis < 0) axis += x->rank;
    for (int i = 0; i < axis; i++) outer *= x->dims[i];
    for (int i = (int)axis + 1; i < x->rank - 1; i++) inner *= x->dims[i];
    int64_t len = dl ? value_const_int(dl, 0) : x->dims[axis];
    int64_t p[7] = {outer, x->dims[axis], inner, x->dims[x->rank - 1], len, y->dims[axis], node_attr_int(n, "inverse", 0) != 0};
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), step_scratch(l, 16 * len)};
    lower_call(l, KILN_K_dft, 3, bufs, 7, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_stft(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0], *win = node_input(n, 2);
    int64_t flen = win ? win->dims[0] : value_const_int(n->in[3], 0);
    int64_t p[8] = {x->dims[0], x->dims[1], x->dims[2], value_const_int(n->in[1], 0), y->dims[1], flen, y->dims[2], win != NULL};
    int out = out_f32(l, y), xb = in_f32(l, x), bufs[4] = {out, xb, win ? in_f32(l, win) : xb, step_scratch(l, 16 * flen)};
    lower_call(l, KILN_K_stft, 4, bufs, 8, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_mel_weight_matrix(Lower *l, Node *n) {
    const Value *y = n->out[0];
    int64_t p[2] = {value_const_int(n->in[0], 0), value_const_int(n->in[1], 0)};
    int out = out_f32(l, y), bufs[4] = {out, in_f32(l, n->in[2]), in_f32(l, n->in[3]), in_f32(l, n->in[4])};
    lower_call(l, KILN_K_mel_weight_matrix, 4, bufs, 2, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_max_unpool(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[2 + 2 * MAX_RANK] = {x->rank, value_numel(x)};
    if (!max_unpool_shape(n, x, p + 2, l->d)) return false;
    memcpy(p + 2 + x->rank, y->dims, sizeof(int64_t) * (size_t)x->rank);
    int out = out_f32(l, y), bufs[3] = {out, in_f32(l, x), lower_buf(l, n->in[1])};
    lower_call(l, KILN_K_max_unpool, 3, bufs, 2 + 2 * x->rank, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_roi_align(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[12] = {x->dims[0], x->dims[1], x->dims[2], x->dims[3], y->dims[0], y->dims[2], y->dims[3],
                     node_attr_int(n, "sampling_ratio", 0), kiln_d2p(node_attr_float(n, "spatial_scale", 1.0)),
                     strcmp(node_attr_string(n, "coordinate_transformation_mode", "half_pixel"), "half_pixel") == 0,
                     strcmp(node_attr_string(n, "mode", "avg"), "max") == 0};
    int out = out_f32(l, y), bufs[4] = {out, in_f32(l, x), in_f32(l, n->in[1]), lower_buf(l, n->in[2])};
    lower_call(l, KILN_K_roi_align, 4, bufs, 11, p);
    out_f32_done(l, y, out);
    return true;
}

/* TfIdfVectorizer: the pool, its segments, the output indexes and the weights
 * travel as parameters. */
bool lower_tfidf(Lower *l, Node *n) {
    TfIdfInfo t;
    if (!tfidf_info(n, &t, l->d)) return false;
    const Value *x = n->in[0];
    const Attr *pool = node_attr(n, "pool_int64s"), *idx = node_attr(n, "ngram_indexes"), *w = node_attr(n, "weights");
    int64_t np = 10 + pool->n + 65 + 2 * t.n_grams;
    int64_t *p = arena_alloc(l->k->arena, (size_t)np * sizeof *p), *q = p;
    *q++ = x->rank == 2 ? x->dims[0] : 1;
    *q++ = x->dims[x->rank - 1];
    *q++ = dtype_size(x->dtype);
    *q++ = t.min_n;
    *q++ = t.max_n;
    *q++ = t.max_skip;
    *q++ = t.mode;
    *q++ = t.out_dim;
    *q++ = t.n_grams;
    *q++ = pool->n;
    for (int i = 0; i < pool->n; i++) *q++ = pool->ints[i];
    for (int i = 1; i <= 65; i++) *q++ = t.start[i];
    for (int i = 0; i < t.n_grams; i++) *q++ = idx->ints[i];
    for (int i = 0; i < t.n_grams; i++) *q++ = kiln_d2p(w ? w->floats[i] : 1.0);
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_tfidf, 2, bufs, (int)np, p);
    return true;
}

/* Training-mode Dropout: the mask from the seeded generator (runtime/kernels_extra.c). */
bool lower_dropout_train(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[4] = {value_numel(x), kiln_d2p(node_attr_float(n, "kiln.ratio", 0.5)), node_attr_int(n, "seed", 0), n->n_out > 1};
    int out = out_f32(l, y);
    int bufs[3] = {out, n->n_out > 1 ? lower_buf(l, n->out[1]) : out, in_f32(l, x)};
    lower_call(l, KILN_K_dropout, 3, bufs, 4, p);
    out_f32_done(l, y, out);
    return true;
}

/* ConcatFromSequence with new_axis (without, it became a Concat): each element
 * one slice of the new axis. */
bool lower_concat_from_sequence(Lower *l, Node *n) {
    const Value *y = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", 0), y->rank, &axis);
    int64_t p[4 + 64] = {dtype_size(y->dtype), 0, 0, n->n_in};
    outer_inner(y, axis, &p[1], &p[2]); /* the new axis is 1 long in each element */
    int bufs[65];
    bufs[0] = lower_buf(l, y);
    for (int i = 0; i < n->n_in; i++) { p[4 + i] = 1; bufs[1 + i] = lower_buf(l, n->in[i]); }
    lower_call(l, KILN_K_concat, 1 + n->n_in, bufs, 4 + n->n_in, p);
    return true;
}

/* SplitToSequence: a split whose outputs are the elements (squeezed or not:
 * the same bytes). */
bool lower_split_to_sequence(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int axis, parts;
    bool squeeze;
    int64_t sizes[64], p[4 + 64];
    if (!split_to_sequence_sizes(n, x, &axis, sizes, &parts, &squeeze, l->d)) return false;
    p[0] = dtype_size(x->dtype);
    outer_inner(x, axis, &p[1], &p[2]);
    p[3] = parts;
    int bufs[65];
    for (int i = 0; i < parts; i++) { p[4 + i] = sizes[i]; bufs[i] = lower_buf(l, n->out[i]); }
    bufs[parts] = lower_buf(l, x);
    lower_call(l, KILN_K_split, 1 + parts, bufs, 4 + parts, p);
    return true;
}

/* ---- outputs sized at run time (runtime/dynamic.c) ---- */

static int64_t elem_kind(DType t) {
    switch (t) {
    case DT_F32: return 2;
    case DT_F64: return 3;
    case DT_F16: case DT_BF16: return 4;
    case DT_I8: case DT_I16: case DT_I32: case DT_I64: return 0;
    default: return 1;
    }
}

bool lower_nonzero(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int64_t p[4 + MAX_RANK] = {x->rank, value_numel(x), dtype_size(x->dtype), elem_kind(x->dtype)};
    for (int i = 0; i < x->rank; i++) p[4 + i] = x->dims[i];
    int bufs[3] = {lower_buf(l, n->out[0]), shape_slot(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_nonzero, 3, bufs, 4 + x->rank, p);
    return true;
}

bool lower_string_normalizer(Lower *l, Node *n) {
    const Value *x = n->in[0];
    const char *cas = node_attr_string(n, "case_change_action", "NONE");
    const Attr *sw = node_attr(n, "stopwords");
    int nsw = sw ? sw->n : 0;
    int64_t np = 5;
    for (int i = 0; i < nsw; i++) np += 1 + ((int64_t)strlen(sw->strings[i]) + 7) / 8;
    int64_t *p = arena_alloc(l->k->arena, sizeof *p * (size_t)np);
    memset(p, 0, sizeof *p * (size_t)np);
    p[0] = x->dims[x->rank - 1];
    p[1] = x->rank;
    p[2] = strcmp(cas, "LOWER") == 0 ? 1 : strcmp(cas, "UPPER") == 0 ? 2 : 0;
    p[3] = node_attr_int(n, "is_case_sensitive", 0) != 0;
    p[4] = nsw;
    int64_t at = 5;
    for (int i = 0; i < nsw; i++) {
        int64_t len = (int64_t)strlen(sw->strings[i]);
        p[at] = len;
        memcpy(p + at + 1, sw->strings[i], (size_t)len);
        at += 1 + (len + 7) / 8;
    }
    int bufs[5] = {lower_buf(l, n->out[0]), shape_slot(l, n->out[0]), lower_buf(l, x), 0, 0};
    heap_slot(l, bufs + 3);
    lower_call(l, KILN_K_string_normalizer, 5, bufs, (int)np, p);
    return true;
}

/* Cast to, from or between strings (the other casts are elementwise loops). */
bool lower_string_cast(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[2] = {value_numel(x), x->dtype == DT_STRING ? y->dtype : x->dtype};
    if (x->dtype == DT_STRING && y->dtype == DT_STRING) {
        int bufs[2] = {lower_buf(l, y), lower_buf(l, x)};
        int64_t q[1] = {value_nbytes(x)};
        lower_call(l, KILN_K_copy, 2, bufs, 1, q);
    } else if (y->dtype == DT_STRING) {
        int bufs[4] = {lower_buf(l, y), lower_buf(l, x), 0, 0};
        heap_slot(l, bufs + 2);
        lower_call(l, KILN_K_cast_to_string, 4, bufs, 2, p);
    } else {
        int bufs[2] = {lower_buf(l, y), lower_buf(l, x)};
        lower_call(l, KILN_K_cast_from_string, 2, bufs, 2, p);
    }
    return true;
}

/* an optional output's buffer, or scratch when the model leaves it out */
static int out_or_scratch(Lower *l, Node *n, int i, int64_t numel, int *shape) {
    if (i < n->n_out && n->out[i]) {
        if (shape) *shape = n->out[i]->dyn ? shape_slot(l, n->out[i]) : scratch_buf(l, DT_I64, MAX_RANK);
        return lower_buf(l, n->out[i]);
    }
    if (shape) *shape = scratch_buf(l, DT_I64, MAX_RANK);
    return scratch_buf(l, DT_I64, numel);
}

bool lower_unique(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    const Attr *ax = node_attr(n, "axis");
    int axis = 0;
    if (ax) axis_norm(ax->i, x->rank, &axis);
    int64_t outer = 1, len = value_numel(x), inner = 1;
    if (ax) { len = x->dims[axis]; outer_inner(x, axis, &outer, &inner); }
    int64_t p[8 + MAX_RANK] = {outer, len, inner, dtype_size(x->dtype), elem_kind(x->dtype),
                               node_attr_int(n, "sorted", 1), ax ? axis : 0, y->rank};
    for (int i = 0; i < y->rank; i++) p[8 + i] = y->dims[i];
    int b[9];
    b[0] = lower_buf(l, y);
    b[1] = shape_slot(l, n->out[0]);
    b[2] = out_or_scratch(l, n, 1, len, &b[3]);
    b[4] = out_or_scratch(l, n, 2, len, NULL);
    b[5] = out_or_scratch(l, n, 3, len, &b[6]);
    b[7] = lower_buf(l, x);
    b[8] = step_scratch(l, 4 * len * 8);
    lower_call(l, KILN_K_unique, 9, b, 8 + y->rank, p);
    return true;
}

bool lower_nms(Lower *l, Node *n) {
    const Value *boxes = n->in[0], *scores = n->in[1], *y = n->out[0];
    int64_t N = boxes->dims[1], bc = boxes->dims[0] * scores->dims[1], per_class = bc ? y->dims[0] / bc : 0;
    int64_t p[8] = {boxes->dims[0], N, scores->dims[1], node_attr_int(n, "center_point_box", 0), 0, 0, 0, per_class};
    int b[8], nb = 0;
    b[nb++] = lower_buf(l, y);
    b[nb++] = shape_slot(l, n->out[0]);
    b[nb++] = lower_buf(l, boxes);
    b[nb++] = lower_buf(l, scores);
    for (int i = 2; i < 5; i++)
        if (node_input(n, i)) { p[2 + i] = 1; b[nb++] = lower_buf(l, n->in[i]); }
    b[nb++] = step_scratch(l, 3 * N * 8);
    lower_call(l, KILN_K_nms, nb, b, 8, p);
    return true;
}
