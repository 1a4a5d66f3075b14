/* elementwise.c: fused elementwise loops, and the lowerings of the
 * elementwise ops, kiln.Fused and kiln.DropoutTrain.
 *
 * A loop (KLoop) is an N-d nest over the output: each input is read through its
 * own strides (0 where it broadcasts), one load slot per distinct value, and a
 * short straight-line program of scalar operations, whose semantics live in
 * runtime/kiln_scalar.h, computes the element. expr_node appends the program
 * of one node, for single elementwise nodes and for each node of a kiln.Fused
 * body; loop_simplify then drops unit dims and merges the dims that are
 * contiguous for every operand. cast_loop is the conversion behind in_f32 and
 * out_f32_done (lower.c). Casts to or from strings are kernel calls
 * (strings.c). */
#include "kir.h"

#include <string.h>

typedef struct {
    KLoop *loop;
    int cap;
    const Value *loads[64];
    int rank;
    const int64_t *dims;
} ExprCtx;

/* Appends one scalar operation: operands x, y (and c for Where), parameters f, g. */
static int emit_full(ExprCtx *e, Arena *a, KInstrOp op, DType dt, int x, int y, int c, double f, double g) {
    KLoop *lp = e->loop;
    if (lp->ncode == e->cap) {
        int cap = e->cap ? e->cap * 2 : 16;
        KInstr *nc = arena_alloc(a, (size_t)cap * sizeof *nc);
        if (lp->ncode) memcpy(nc, lp->code, (size_t)lp->ncode * sizeof *nc);
        lp->code = nc;
        e->cap = cap;
    }
    lp->code[lp->ncode] = (KInstr){op, dt, x, y, c, f, g};
    return lp->ncode++;
}

static int emit_instr(ExprCtx *e, Arena *a, KInstrOp op, DType dt, int x, int y, double f) {
    return emit_full(e, a, op, dt, x, y, 0, f, 0);
}

/* Load of an input value, one slot per distinct value. */
static int expr_load(Lower *l, ExprCtx *e, const Value *v) {
    KLoop *lp = e->loop;
    int slot = -1;
    for (int i = 0; i < lp->nin; i++) if (e->loads[i] == v) slot = i;
    if (slot < 0) {
        slot = lp->nin++;
        e->loads[slot] = v;
        lp->in[slot] = lower_buf(l, v);
        int off = e->rank - v->rank;
        int64_t s = 1;
        for (int d = e->rank - 1; d >= 0; d--) {
            int vd = d - off;
            if (vd < 0 || v->dims[vd] == 1) lp->strides[slot][d] = 0;
            else { lp->strides[slot][d] = s; s *= v->dims[vd]; }
        }
    }
    for (int i = 0; i < lp->ncode; i++)
        if (lp->code[i].op == KI_LOAD && lp->code[i].a == slot) return i;
    return emit_instr(e, l->k->arena, KI_LOAD, v->dtype, slot, 0, 0);
}

static int expr_cast(Lower *l, ExprCtx *e, int x, DType to) {
    if (e->loop->code[x].dt == to) return x;
    return emit_instr(e, l->k->arena, KI_CAST, to, x, 0, 0);
}

/* Appends the scalar program of elementwise node n; ops[i] is the instruction
 * computing input i (-1 when absent). Returns the result's instruction. */
static int expr_node(Lower *l, ExprCtx *e, const Node *n, const int *ops) {
    Arena *a = l->k->arena;
    DType dt = n->out[0]->dtype;
    static const KInstrOp unary[OP_COUNT] = {
        [OP_NEG] = KI_NEG, [OP_ABS] = KI_ABS, [OP_SQRT] = KI_SQRT, [OP_EXP] = KI_EXP, [OP_LOG] = KI_LOG,
        [OP_RELU] = KI_RELU, [OP_SIGMOID] = KI_SIGMOID, [OP_TANH] = KI_TANH, [OP_ERF] = KI_ERF,
        [OP_RECIPROCAL] = KI_RECIPROCAL, [OP_FLOOR] = KI_FLOOR, [OP_CEIL] = KI_CEIL, [OP_ROUND] = KI_ROUND,
        [OP_SIN] = KI_SIN, [OP_COS] = KI_COS, [OP_TAN] = KI_TAN, [OP_ASIN] = KI_ASIN, [OP_ACOS] = KI_ACOS,
        [OP_ATAN] = KI_ATAN, [OP_SINH] = KI_SINH, [OP_COSH] = KI_COSH, [OP_ASINH] = KI_ASINH, [OP_ACOSH] = KI_ACOSH,
        [OP_ATANH] = KI_ATANH, [OP_SOFTPLUS] = KI_SOFTPLUS, [OP_SOFTSIGN] = KI_SOFTSIGN, [OP_HARD_SWISH] = KI_HARDSWISH,
        [OP_SIGN] = KI_SIGN, [OP_IS_NAN] = KI_ISNAN, [OP_NOT] = KI_NOT};
    static const KInstrOp binary[OP_COUNT] = {
        [OP_ADD] = KI_ADD, [OP_SUB] = KI_SUB, [OP_MUL] = KI_MUL, [OP_DIV] = KI_DIV, [OP_MIN] = KI_MIN, [OP_MAX] = KI_MAX,
        [OP_AND] = KI_AND, [OP_OR] = KI_OR, [OP_XOR] = KI_XOR, [OP_EQUAL] = KI_EQUAL, [OP_LESS] = KI_LESS,
        [OP_GREATER] = KI_GREATER, [OP_LESS_OR_EQUAL] = KI_LESSOREQUAL, [OP_GREATER_OR_EQUAL] = KI_GREATEROREQUAL,
        [OP_PRELU] = KI_PRELU};
    switch (n->op) {
    /* ops with constant parameters: their attributes */
    case OP_LEAKY_RELU: return emit_full(e, a, KI_LEAKYRELU, dt, ops[0], 0, 0, node_attrs(n, leaky_relu)->alpha, 0);
    case OP_ELU: return emit_full(e, a, KI_ELU, dt, ops[0], 0, 0, node_attrs(n, elu)->alpha, 0);
    case OP_CELU: return emit_full(e, a, KI_CELU, dt, ops[0], 0, 0, node_attrs(n, celu)->alpha, 0);
    case OP_THRESHOLDED_RELU: return emit_full(e, a, KI_THRESHOLDEDRELU, dt, ops[0], 0, 0, node_attrs(n, thresholded_relu)->alpha, 0);
    case OP_SELU: return emit_full(e, a, KI_SELU, dt, ops[0], 0, 0, node_attrs(n, selu)->alpha, node_attrs(n, selu)->gamma);
    case OP_HARD_SIGMOID:
        return emit_full(e, a, KI_HARDSIGMOID, dt, ops[0], 0, 0, node_attrs(n, hard_sigmoid)->alpha, node_attrs(n, hard_sigmoid)->beta);
    case OP_SHRINK: return emit_full(e, a, KI_SHRINK, dt, ops[0], 0, 0, node_attrs(n, shrink)->bias, node_attrs(n, shrink)->lambd);
    case OP_IS_INF:
        return emit_full(e, a, KI_ISINF, dt, ops[0], 0, 0, (double)node_attrs(n, is_inf)->detect_negative,
                         (double)node_attrs(n, is_inf)->detect_positive);
    case OP_CAST: case OP_CAST_LIKE: return expr_cast(l, e, ops[0], dt);
    case OP_WHERE: return emit_full(e, a, KI_WHERE, dt, ops[1], ops[2], ops[0], 0, 0);
    case OP_EXPAND: return ops[0];
    case OP_MOD: return emit_instr(e, a, node_attrs(n, mod)->fmod ? KI_FMOD : KI_MOD, dt, ops[0], ops[1], 0);
    case OP_BIT_SHIFT:
        return emit_instr(e, a, strcmp(node_attrs(n, bit_shift)->direction, "LEFT") == 0 ? KI_SHL : KI_SHR, dt, ops[0], ops[1], 0);
    case OP_POW: {
        if (dtype_is_float(dt) || !dtype_is_float(e->loop->code[ops[1]].dt))
            return emit_instr(e, a, KI_POW, dt, ops[0], expr_cast(l, e, ops[1], dt), 0);
        int x = expr_cast(l, e, ops[0], DT_F64), y = expr_cast(l, e, ops[1], DT_F64);
        return expr_cast(l, e, emit_instr(e, a, KI_POW, DT_F64, x, y, 0), dt);
    }
    case OP_CLIP: {
        int r = ops[0];
        int lo = n->n_in > 1 ? ops[1] : -1, hi = n->n_in > 2 ? ops[2] : -1;
        if (n->opset < 11) { /* min and max were attributes */
            const attrs_clip *c = node_attrs(n, clip);
            if (c->has_min) lo = emit_instr(e, a, KI_CONST, dt, 0, 0, c->min);
            if (c->has_max) hi = emit_instr(e, a, KI_CONST, dt, 0, 0, c->max);
        }
        if (lo >= 0) r = emit_instr(e, a, KI_MAX, dt, r, lo, 0);
        if (hi >= 0) r = emit_instr(e, a, KI_MIN, dt, r, hi, 0);
        return r;
    }
    case OP_MIN: case OP_MAX: case OP_SUM: case OP_MEAN: {
        KInstrOp k = n->op == OP_MIN ? KI_MIN : n->op == OP_MAX ? KI_MAX : KI_ADD;
        int r = ops[0];
        for (int i = 1; i < n->n_in; i++) r = emit_instr(e, a, k, dt, r, ops[i], 0);
        if (n->op == OP_MEAN) r = emit_instr(e, a, KI_DIV, dt, r, emit_instr(e, a, KI_CONST, dt, 0, 0, (double)n->n_in), 0);
        return r;
    }
    default:
        if (n->n_in == 1) return emit_instr(e, a, unary[n->op], dt, ops[0], 0, 0);
        return emit_instr(e, a, binary[n->op], dt, ops[0], ops[1], 0);
    }
}

/* Drops unit dims and merges dims that are contiguous for every operand. */
static void loop_simplify(KLoop *lp) {
    int r = 0;
    for (int d = 0; d < lp->rank; d++) {
        if (lp->dims[d] == 1 && lp->rank > 1) continue;
        lp->dims[r] = lp->dims[d];
        for (int i = 0; i < lp->nin; i++) lp->strides[i][r] = lp->strides[i][d];
        r++;
    }
    if (r == 0) { r = 1; lp->dims[0] = 1; for (int i = 0; i < lp->nin; i++) lp->strides[i][0] = 0; }
    lp->rank = r;
    int m = 0;
    for (int d = 1; d < lp->rank; d++) {
        bool ok = true;
        for (int i = 0; i < lp->nin && ok; i++) ok = lp->strides[i][m] == lp->strides[i][d] * lp->dims[d];
        if (ok) {
            lp->dims[m] *= lp->dims[d];
            for (int i = 0; i < lp->nin; i++) lp->strides[i][m] = lp->strides[i][d];
        } else {
            m++;
            lp->dims[m] = lp->dims[d];
            for (int i = 0; i < lp->nin; i++) lp->strides[i][m] = lp->strides[i][d];
        }
    }
    lp->rank = m + 1;
}

static KLoop *loop_new(Lower *l, ExprCtx *e, const Value *out) {
    KLoop *lp = arena_alloc(l->k->arena, sizeof *lp);
    memset(e, 0, sizeof *e);
    e->loop = lp;
    e->rank = out->rank;
    e->dims = out->dims;
    lp->rank = out->rank;
    for (int d = 0; d < out->rank; d++) lp->dims[d] = out->dims[d];
    return lp;
}

static void loop_finish(Lower *l, KLoop *lp, int out_buf) {
    lp->out = out_buf;
    loop_simplify(lp);
    KStep *s = add_step(l, KS_LOOP);
    s->loop = lp;
}

bool lower_elementwise(Lower *l, Node *n) {
    if ((n->op == OP_CAST || n->op == OP_CAST_LIKE) && (n->in[0]->dtype == DT_STRING || n->out[0]->dtype == DT_STRING))
        return lower_string_cast(l, n);
    ExprCtx e;
    KLoop *lp = loop_new(l, &e, n->out[0]);
    int ops[64];
    for (int i = 0; i < n->n_in; i++) ops[i] = n->in[i] && !((n->op == OP_EXPAND || n->op == OP_CAST_LIKE) && i == 1) ? expr_load(l, &e, n->in[i]) : -1;
    expr_cast(l, &e, expr_node(l, &e, n, ops), n->out[0]->dtype);
    loop_finish(l, lp, lower_buf(l, n->out[0]));
    return true;
}

bool lower_fused(Lower *l, Node *n) {
    Graph *bg = node_attrs(n, fused)->body;
    if (!bg) { diag_error(l->d, n, "kiln.Fused needs a 'body' graph"); return false; }
    if (bg->inputs.n != n->n_in || bg->outputs.n != 1) { diag_error(l->d, n, "kiln.Fused body does not match the node's inputs and output"); return false; }
    ExprCtx e;
    KLoop *lp = loop_new(l, &e, n->out[0]);
    for (int i = 0; i < bg->values.n; i++) ((Value *)bg->values.items[i])->id = -1;
    for (int i = 0; i < bg->inputs.n; i++) ((Value *)bg->inputs.items[i])->id = expr_load(l, &e, n->in[i]);
    for (int i = 0; i < bg->values.n; i++) {
        Value *v = bg->values.items[i];
        if (v->data && v->id < 0) { /* a scalar constant inside the body */
            if (value_numel(v) != 1) { diag_error(l->d, n, "kiln.Fused body constants must be scalars"); return false; }
            v->id = emit_instr(&e, l->k->arena, KI_CONST, v->dtype, 0, 0, value_const_float(v, 0));
        }
    }
    for (int i = 0; i < bg->nodes.n; i++) {
        Node *bn = bg->nodes.items[i];
        if (!(op_table[bn->op].flags & F_ELEM)) { diag_error(l->d, n, "kiln.Fused body holds non-elementwise op %s", op_table[bn->op].name); return false; }
        int ops[64];
        for (int j = 0; j < bn->n_in; j++) {
            if (bn->in[j] && bn->in[j]->id < 0) { diag_error(l->d, n, "kiln.Fused body uses '%s' before defining it", bn->in[j]->name); return false; }
            ops[j] = bn->in[j] ? bn->in[j]->id : -1;
        }
        bn->out[0]->id = expr_node(l, &e, bn, ops);
    }
    Value *res = bg->outputs.items[0];
    if (res->id < 0) { diag_error(l->d, n, "kiln.Fused body output is undefined"); return false; }
    expr_cast(l, &e, res->id, n->out[0]->dtype);
    /* body values' ids were used as instruction indices; reset for lower_buf */
    for (int i = 0; i < bg->values.n; i++) ((Value *)bg->values.items[i])->id = -1;
    loop_finish(l, lp, lower_buf(l, n->out[0]));
    return true;
}

/* A loop that converts buffer src (dtype sdt) into dst (dtype ddt), numel elements. */
void cast_loop(Lower *l, int dst, DType ddt, int src, DType sdt, int64_t numel) {
    KLoop *lp = arena_alloc(l->k->arena, sizeof *lp);
    ExprCtx e = {.loop = lp};
    lp->rank = 1;
    lp->dims[0] = numel;
    lp->nin = 1;
    lp->in[0] = src;
    lp->strides[0][0] = 1;
    int x = emit_instr(&e, l->k->arena, KI_LOAD, sdt, 0, 0, 0);
    emit_instr(&e, l->k->arena, KI_CAST, ddt, x, 0, 0);
    lp->out = dst;
    add_step(l, KS_LOOP)->loop = lp;
}

/* Training-mode Dropout: the mask from the seeded generator (runtime/elementwise.c). */
bool lower_dropout_train(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    const attrs_dropout_train *a = node_attrs(n, dropout_train);
    kiln_p_dropout p = {.n = value_numel(x), .ratio = kiln_d2p(a->kiln_ratio), .seed = a->seed, .has_mask = n->n_out > 1};
    int out = out_f32(l, y);
    int bufs[3] = {out, n->n_out > 1 ? lower_buf(l, n->out[1]) : out, in_f32(l, x)};
    LOWER_CALL(l, dropout, 3, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
