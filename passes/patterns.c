/* patterns.c (pass "patterns", -O2): recognizes decomposed ONNX patterns and
 * replaces them with one op each, so they run as one kernel.
 *
 * - LayerNorm: Add(Mul(Div(d, Sqrt(Add(ReduceMean(Pow(d, 2)), eps))), gamma), beta)
 *   with d = Sub(x, ReduceMean(x)), both means over the last axis with keepdims,
 *   gamma and beta constants of the last dimension, eps a constant scalar:
 *   LayerNormalization(x, gamma, beta, axis -1, epsilon eps). (Exporters of
 *   opset < 17 write LayerNorm this way.)
 * - MatMul with constant weights W [K, N] followed by Add of a constant bias [N]:
 *   Reshape(Gemm(Reshape(A, [rows, K]), W, bias), A's shape with N), so the bias
 *   rides in the GEMM and the Relu/Clip after it can join its epilogue.
 * - Attention: MatMul, scale, mask, Softmax, MatMul as one kiln.Attention
 *   (match_attention below).
 * Intermediate values must have no other users; matched nodes are marked dead
 * and removed by dce. New values get their types here (infer has run). */
#include "passes.h"

#include <string.h>

static bool is_const_f32(const Value *v) { return v && v->data && v->dtype == DT_F32; }

/* v's producer when it is op and v has exactly `uses` uses (and is no output). */
static Node *prod(Value *v, OpKind op, int uses) {
    Node *n = v ? v->producer : NULL;
    return n && !n->dead && n->op == op && v->id == uses ? n : NULL;
}

/* One of n's two inputs is constant (returned); the other goes to *other. */
static Value *const_side(Node *n, Value **other) {
    if (n->in[1] && n->in[1]->data) { *other = n->in[0]; return n->in[1]; }
    if (n->in[0] && n->in[0]->data) { *other = n->in[1]; return n->in[0]; }
    return NULL;
}

static bool last_axis_mean(Node *n, const Value *x, Diags *d) {
    uint32_t mask;
    bool keep, noop;
    Diags quiet = {.arena = d->arena};
    return n && reduce_axes(n, x, &mask, &keep, &noop, &quiet) && !noop && keep && mask == 1u << (x->rank - 1);
}

static bool match_layernorm(Graph *g, Node *add_b, Diags *d) {
    Value *y_mul = NULL, *beta = const_side(add_b, &y_mul), *y_div, *gamma, *d1, *sq, *eps, *var, *d2, *two, *x, *mean;
    Node *mul = prod(y_mul, OP_MUL, 1);
    if (!beta || !mul || !(gamma = const_side(mul, &y_div))) return false;
    Node *div = prod(y_div, OP_DIV, 1);
    if (!div) return false;
    d1 = div->in[0];
    sq = div->in[1];
    Node *sqrt_n = prod(sq, OP_SQRT, 1);
    Node *add_e = sqrt_n ? prod(sqrt_n->in[0], OP_ADD, 1) : NULL;
    if (!add_e || !(eps = const_side(add_e, &var)) || value_numel(eps) != 1) return false;
    Node *rm2 = prod(var, OP_REDUCE_MEAN, 1);
    Node *pow_n = rm2 ? prod(rm2->in[0], OP_POW, 1) : NULL;
    if (!pow_n || !(two = pow_n->in[1])->data || value_numel(two) != 1 || value_const_float(two, 0) != 2.0) return false;
    d2 = pow_n->in[0];
    Node *sub = prod(d1, OP_SUB, 2);
    if (d1 != d2 || !sub) return false;
    x = sub->in[0];
    mean = sub->in[1];
    Node *rm1 = prod(mean, OP_REDUCE_MEAN, 1);
    if (!rm1 || rm1->in[0] != x || x->dtype != DT_F32 || !last_axis_mean(rm1, x, d) || !last_axis_mean(rm2, pow_n->out[0], d)) return false;
    int64_t h = x->dims[x->rank - 1];
    if (!is_const_f32(gamma) || !is_const_f32(beta) || gamma->rank != 1 || beta->rank != 1 || gamma->dims[0] != h || beta->dims[0] != h) return false;
    Node *ln = graph_add_node(g, OP_LAYER_NORM, add_b->name, 3, 1);
    ln->in[0] = x;
    ln->in[1] = gamma;
    ln->in[2] = beta;
    ln->out[0] = add_b->out[0];
    ln->out[0]->producer = ln;
    ln->opset = 17;
    node_add_attr(g, ln, "axis", ATTR_INT)->i = -1;
    node_add_attr(g, ln, "epsilon", ATTR_FLOAT)->f = value_const_float(eps, 0);
    Node *gone[] = {add_b, mul, div, sqrt_n, add_e, rm2, pow_n, sub, rm1};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) gone[i]->dead = true;
    return true;
}

static Value *new_value(Graph *g, const char *name, DType dt, int rank, const int64_t *dims) {
    Value *v = graph_add_value(g, name);
    v->dtype = dt;
    v->rank = rank;
    memcpy(v->dims, dims, (size_t)rank * sizeof(int64_t));
    return v;
}

static bool match_matmul_bias(Graph *g, Node *add) {
    Value *mm_out = NULL, *bias = const_side(add, &mm_out);
    Node *mm = prod(mm_out, OP_MATMUL, 1);
    if (!bias || !mm) return false;
    Value *a = mm->in[0], *w = mm->in[1], *y = add->out[0];
    if (!is_const_f32(w) || w->rank != 2 || a->rank < 2 || a->dtype != DT_F32 || !is_const_f32(bias) || bias->rank != 1 ||
        bias->dims[0] != w->dims[1] || !value_same_shape(mm_out, y))
        return false;
    int64_t K = w->dims[0], N = w->dims[1], rows = value_numel(a) / K, d2[2] = {rows, K}, o2[2] = {rows, N}, two = 2;
    int64_t shp[2] = {rows, K};
    Value *a2 = a;
    if (a->rank != 2) {
        Node *r = graph_add_node(g, OP_RESHAPE, arena_printf(g->arena, "%s.rows", mm->name), 2, 1);
        r->in[0] = a;
        r->in[1] = graph_add_const(g, arena_printf(g->arena, "%s.rows_shape", mm->name), DT_I64, 1, &two, shp);
        r->out[0] = a2 = new_value(g, arena_printf(g->arena, "%s.rows", mm->name), DT_F32, 2, d2);
        a2->producer = r;
    }
    Node *gemm = graph_add_node(g, OP_GEMM, mm->name, 3, 1);
    gemm->in[0] = a2;
    gemm->in[1] = w;
    gemm->in[2] = bias;
    Value *g_out = y;
    if (a->rank != 2) {
        g_out = new_value(g, arena_printf(g->arena, "%s.gemm", mm->name), DT_F32, 2, o2);
        Node *r = graph_add_node(g, OP_RESHAPE, add->name, 2, 1);
        int64_t rank = y->rank;
        r->in[0] = g_out;
        r->in[1] = graph_add_const(g, arena_printf(g->arena, "%s.shape", add->name), DT_I64, 1, &rank, y->dims);
        r->out[0] = y;
        y->producer = r;
    } else y->producer = gemm;
    gemm->out[0] = g_out;
    g_out->producer = gemm;
    mm->dead = add->dead = true;
    return true;
}

/* v's perm when it is made by a Transpose with one use (*src its input), else
 * the identity (*src = v). */
static Node *absorb_transpose(Value *v, Value **src, int *perm) {
    Node *tr = prod(v, OP_TRANSPOSE, 1);
    const attrs_transpose *a = tr ? node_attrs(tr, transpose) : NULL;
    for (int i = 0; i < v->rank; i++) perm[i] = tr ? (a->has_perm ? (int)a->perm.v[i] : v->rank - 1 - i) : i;
    *src = tr ? tr->in[0] : v;
    return tr;
}

/* The single node reading v (a value of one use, not a graph output), or NULL. */
static Node *sole_user(Graph *g, const Value *v) {
    if (v->id != 1) return NULL;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        for (int j = 0; !n->dead && j < n->n_in; j++) if (n->in[j] == v) return n;
    }
    return NULL;
}

static void set_perm(Graph *g, Node *n, const char *name, const int *perm, int r) {
    Attr *a = node_add_attr(g, n, name, ATTR_INTS);
    a->n = r;
    a->ints = arena_alloc(g->arena, sizeof(int64_t) * (size_t)r);
    for (int i = 0; i < r; i++) a->ints[i] = perm[i];
}

/* Attention: MatMul(Softmax(Add(Div-or-Mul(MatMul(q, kt), scale), mask)), v),
 * the scale (a constant scalar) and the mask optional, Softmax over the last
 * axis, q, kt, v float with the same batch dims (no broadcasting between
 * them): kiln.Attention(q, kt, v, mask), which computes the scores a block of
 * rows at a time. Transposes of one use around it are read through rather
 * than made: q's and v's (the heads split out of [b, S, H, Dh]) when they keep
 * the last axis last, up to two on kt (the heads, then K^T) when kt's last or
 * second last axis is the source's last, and one on the result (the heads
 * joined back) that keeps its last axis. */
static bool match_attention(Graph *g, Node *mm2) {
    Node *sm = prod(mm2->in[0], OP_SOFTMAX, 1);
    if (!sm || mm2->in[0]->dtype != DT_F32) return false;
    Value *x = sm->in[0], *mask = NULL, *scale = NULL;
    int r = x->rank, axis;
    if (r < 2 || !axis_norm(node_attrs(sm, softmax)->axis, r, &axis) || axis != r - 1) return false;
    Node *add = prod(x, OP_ADD, 1), *sc = NULL, *mm1;
    if (add) { /* the scores on one side, the mask (broadcast to them) on the other */
        Value *a = add->in[0], *b = add->in[1];
        bool a_scores = value_same_shape(a, x) && (prod(a, OP_DIV, 1) || prod(a, OP_MUL, 1) || prod(a, OP_MATMUL, 1));
        x = a_scores ? a : b;
        mask = a_scores ? b : a;
        if (!value_same_shape(x, add->out[0]) || mask->rank > r || mask->dtype != DT_F32) return false;
    }
    if ((sc = prod(x, OP_DIV, 1)) || (sc = prod(x, OP_MUL, 1))) {
        Value *other = NULL;
        scale = sc->op == OP_DIV ? (sc->in[1]->data ? sc->in[1] : NULL) : const_side(sc, &other);
        if (!is_const_f32(scale) || value_numel(scale) != 1) return false;
        x = sc->op == OP_DIV ? sc->in[0] : other;
    }
    if (!(mm1 = prod(x, OP_MATMUL, 1))) return false;
    Value *q = mm1->in[0], *kt = mm1->in[1], *v = mm2->in[1];
    if (q->rank != r || kt->rank != r || v->rank != r || q->dtype != DT_F32 || kt->dtype != DT_F32 || v->dtype != DT_F32)
        return false;
    for (int i = 0; i < r - 2; i++)
        if (kt->dims[i] != q->dims[i] || v->dims[i] != q->dims[i]) return false;
    int qp[MAX_RANK], kp[MAX_RANK], kp2[MAX_RANK], vp[MAX_RANK], op[MAX_RANK];
    Value *qs, *ks, *ks2, *vs;
    Node *tq = absorb_transpose(q, &qs, qp), *tv = absorb_transpose(v, &vs, vp), *tk = absorb_transpose(kt, &ks, kp), *tk2 = NULL;
    if (tq && qp[r - 1] != r - 1) tq = NULL, qs = q;
    if (tv && vp[r - 1] != r - 1) tv = NULL, vs = v;
    if (tk && (tk2 = absorb_transpose(ks, &ks2, kp2))) { /* kt = T(T(ks2, kp2), kp): dim i is ks2's kp2[kp[i]] */
        int c[MAX_RANK];
        for (int i = 0; i < r; i++) c[i] = kp2[kp[i]];
        if (c[r - 1] == r - 1 || c[r - 2] == r - 1) { memcpy(kp, c, sizeof c); ks = ks2; }
        else tk2 = NULL;
    }
    if (tk && !tk2 && kp[r - 1] != r - 1 && kp[r - 2] != r - 1) tk = NULL, ks = kt;
    if (!tq) for (int i = 0; i < r; i++) qp[i] = i;
    if (!tv) for (int i = 0; i < r; i++) vp[i] = i;
    if (!tk) for (int i = 0; i < r; i++) kp[i] = i;
    Value *y = mm2->out[0];
    Node *to = sole_user(g, y);
    if (to && to->op == OP_TRANSPOSE) { /* the perm of the Transpose reading the result */
        const attrs_transpose *a = node_attrs(to, transpose);
        for (int i = 0; i < r; i++) op[i] = a->has_perm ? (int)a->perm.v[i] : r - 1 - i;
        if (op[r - 1] != r - 1) to = NULL;
    } else to = NULL;
    Node *at = graph_add_node(g, OP_ATTENTION, mm2->name, mask ? 4 : 3, 1);
    at->in[0] = qs;
    at->in[1] = ks;
    at->in[2] = vs;
    if (mask) at->in[3] = mask;
    at->out[0] = to ? to->out[0] : y;
    at->out[0]->producer = at;
    if (tq) set_perm(g, at, "q_perm", qp, r);
    if (tk) set_perm(g, at, "k_perm", kp, r);
    if (tv) set_perm(g, at, "v_perm", vp, r);
    if (to) set_perm(g, at, "out_perm", op, r);
    node_add_attr(g, at, "scale_op", ATTR_INT)->i = !sc ? 0 : sc->op == OP_DIV ? 1 : 2;
    node_add_attr(g, at, "scale", ATTR_FLOAT)->f = scale ? (float)value_const_float(scale, 0) : 1.0f;
    Node *gone[] = {mm2, sm, add, sc, mm1, tq, tk, tk2, tv, to};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) if (gone[i]) gone[i]->dead = true;
    return true;
}

bool pass_patterns(Graph *g, Diags *d) {
    graph_count_uses(g);
    int n = g->nodes.n; /* nodes added below are not visited */
    for (int i = 0; i < n; i++) {
        Node *nd = g->nodes.items[i];
        if (!nd->dead && nd->op == OP_MATMUL) match_attention(g, nd);
        if (nd->dead || nd->op != OP_ADD || nd->n_in != 2) continue;
        if (!match_layernorm(g, nd, d)) match_matmul_bias(g, nd);
    }
    graph_compact(g);
    return graph_toposort(g, d) && pass_dce(g, d);
}
