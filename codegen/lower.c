/* lower.c: Graph -> Kir.
 *
 * Every value with storage gets a buffer: a view (Reshape, Squeeze, ...) shares
 * the buffer of the value it aliases, a constant becomes a slice of the weights
 * blob, a graph input is read in place, anything else lives in the workspace at
 * the offset the memory planner gave it. Each op's lower function (named in
 * ops.def) appends steps: a kernel call, or a fused elementwise loop built by
 * expr_node, which is shared by single elementwise nodes and kiln.Fused nodes.
 * Compute kernels run in float32; other dtypes are cast into scratch buffers
 * placed after the planned workspace. Graph outputs are copied out at the end.
 *
 * Folding uses the same functions with l->fold set: buffers are then host memory
 * (the constants' own data, fresh arena memory for results), and kir_run
 * executes the steps at once. */
#include "kir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int add_buf(Kir *k, KBuf b) {
    if (k->nbufs == k->capbufs) {
        int cap = k->capbufs ? k->capbufs * 2 : 32;
        KBuf *nb = arena_alloc(k->arena, (size_t)cap * sizeof *nb);
        if (k->nbufs) memcpy(nb, k->bufs, (size_t)k->nbufs * sizeof *nb);
        k->bufs = nb;
        k->capbufs = cap;
    }
    k->bufs[k->nbufs] = b;
    return k->nbufs++;
}

static KStep *add_step(Lower *l, KStepKind kind) {
    Kir *k = l->k;
    if (k->nsteps == k->capsteps) {
        int cap = k->capsteps ? k->capsteps * 2 : 32;
        KStep *ns = arena_alloc(k->arena, (size_t)cap * sizeof *ns);
        if (k->nsteps) memcpy(ns, k->steps, (size_t)k->nsteps * sizeof *ns);
        k->steps = ns;
        k->capsteps = cap;
    }
    KStep *s = &k->steps[k->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->comment = l->comment;
    return s;
}

static const Value *value_root(const Value *v) {
    while (v->alias) v = v->alias;
    return v;
}

int lower_buf(Lower *l, const Value *v) {
    Kir *k = l->k;
    if (!l->fold) v = value_root(v);
    if (v->id >= 0) return v->id;
    KBuf b = {0};
    b.dtype = v->dtype;
    b.nbytes = value_nbytes(v);
    b.name = v->name;
    if (l->fold) {
        b.kind = KB_HOST;
        b.host = v->data ? (void *)v->data : arena_alloc(k->arena, (size_t)(b.nbytes ? b.nbytes : 1));
    } else if (v->data) {
        b.kind = KB_CONST;
        b.offset = k->weights_size;
        k->weights_size += (b.nbytes + 63) & ~(int64_t)63;
    } else if (!v->producer && !l->g->parent) {
        b.kind = KB_INPUT;
        for (int i = 0; i < l->g->inputs.n; i++)
            if (l->g->inputs.items[i] == v) b.index = i;
    } else {
        b.kind = KB_ARENA; /* a subgraph's inputs too: they live in its region */
        b.offset = l->base + v->mem_offset;
    }
    if (b.kind == KB_CONST) b.host = (void *)v->data; /* copied into the weights at the end */
    ((Value *)v)->id = add_buf(k, b);
    return v->id;
}

int scratch_buf(Lower *l, DType dt, int64_t numel) {
    Kir *k = l->k;
    KBuf b = {0};
    b.dtype = dt;
    b.nbytes = numel * dtype_size(dt);
    b.name = "scratch";
    if (l->fold) {
        b.kind = KB_HOST;
        b.host = arena_alloc(k->arena, (size_t)(b.nbytes ? b.nbytes : 1));
    } else {
        b.kind = KB_ARENA;
        b.offset = k->workspace_size;
        k->workspace_size += (b.nbytes + 63) & ~(int64_t)63;
    }
    return add_buf(k, b);
}

int shape_slot(Lower *l, Value *v) {
    if (v->shape_buf < 0) v->shape_buf = scratch_buf(l, DT_I64, v->rank ? v->rank : 1);
    return v->shape_buf;
}

/* Scratch that lives only during one step: every such buffer shares one region
 * placed after the rest of the workspace (kir_lower fixes the offsets). */
int step_scratch(Lower *l, int64_t nbytes) {
    if (l->fold) return scratch_buf(l, DT_U8, nbytes);
    KBuf b = {0};
    b.kind = KB_ARENA;
    b.offset = -1;
    b.dtype = DT_U8;
    b.nbytes = nbytes;
    b.name = "step scratch";
    if (nbytes > l->k->step_scratch) l->k->step_scratch = nbytes;
    return add_buf(l->k, b);
}

/* Per-context memory that lives as long as the context (KB_STATE). */
int state_buf(Lower *l, const char *name, int64_t nbytes) {
    Kir *k = l->k;
    KBuf b = {0};
    b.kind = KB_STATE;
    b.offset = k->state_size;
    b.dtype = DT_U8;
    b.nbytes = nbytes;
    b.name = name;
    k->state_size += (nbytes + 63) & ~(int64_t)63;
    return add_buf(k, b);
}

/* The heap block a string kernel keeps its bytes in: the list head (the
 * state's first word) and a slot of its own (runtime/strings.c). */
void heap_slot(Lower *l, int bufs[2]) {
    KBuf h = {0};
    h.kind = KB_STATE;
    h.offset = 0;
    h.dtype = DT_U8;
    h.nbytes = 8;
    h.name = "string heap list";
    bufs[0] = add_buf(l->k, h);
    bufs[1] = state_buf(l, "string heap", KILN_HEAP_SLOT_BYTES);
}

int lower_ctl(Lower *l, KStepKind kind, int buf, bool if_true) {
    KStep *s = add_step(l, kind);
    if (kind == KS_BRANCH) {
        s->nbufs = 1;
        s->bufs = arena_alloc(l->k->arena, sizeof(int));
        s->bufs[0] = buf;
    }
    s->if_true = if_true;
    return l->k->nsteps - 1;
}

KStep *lower_call(Lower *l, int kernel, int nbufs, const int *bufs, int nparams, const int64_t *params) {
    KStep *s = add_step(l, KS_CALL);
    s->kernel = kernel;
    s->nbufs = nbufs;
    s->bufs = arena_alloc(l->k->arena, (size_t)(nbufs + 1) * sizeof(int));
    memcpy(s->bufs, bufs, (size_t)nbufs * sizeof(int));
    s->nparams = nparams;
    s->params = arena_alloc(l->k->arena, (size_t)(nparams + 1) * sizeof(int64_t));
    memcpy(s->params, params, (size_t)nparams * sizeof(int64_t));
    return s;
}

/* ---- fused elementwise loops ---- */

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
    /* ops with constant parameters: KI op, attribute names and defaults */
    static const struct { OpKind op; KInstrOp ki; const char *a1; double d1; const char *a2; double d2; } params[] = {
        {OP_LEAKY_RELU, KI_LEAKYRELU, "alpha", 0.01, NULL, 0},
        {OP_ELU, KI_ELU, "alpha", 1.0, NULL, 0},
        {OP_CELU, KI_CELU, "alpha", 1.0, NULL, 0},
        {OP_THRESHOLDED_RELU, KI_THRESHOLDEDRELU, "alpha", 1.0, NULL, 0},
        {OP_SELU, KI_SELU, "alpha", 1.67326319217681884765625, "gamma", 1.05070102214813232421875},
        {OP_HARD_SIGMOID, KI_HARDSIGMOID, "alpha", 0.2, "beta", 0.5},
        {OP_SHRINK, KI_SHRINK, "bias", 0.0, "lambd", 0.5},
    };
    for (size_t i = 0; i < sizeof params / sizeof *params; i++)
        if (params[i].op == n->op)
            return emit_full(e, a, params[i].ki, dt, ops[0], 0, 0, node_attr_float(n, params[i].a1, params[i].d1),
                             params[i].a2 ? node_attr_float(n, params[i].a2, params[i].d2) : 0);
    switch (n->op) {
    case OP_CAST: case OP_CAST_LIKE: return expr_cast(l, e, ops[0], dt);
    case OP_IS_INF:
        return emit_full(e, a, KI_ISINF, dt, ops[0], 0, 0, (double)node_attr_int(n, "detect_negative", 1),
                         (double)node_attr_int(n, "detect_positive", 1));
    case OP_WHERE: return emit_full(e, a, KI_WHERE, dt, ops[1], ops[2], ops[0], 0, 0);
    case OP_EXPAND: return ops[0];
    case OP_MOD: return emit_instr(e, a, node_attr_int(n, "fmod", 0) ? KI_FMOD : KI_MOD, dt, ops[0], ops[1], 0);
    case OP_BIT_SHIFT:
        return emit_instr(e, a, strcmp(node_attr_string(n, "direction", ""), "LEFT") == 0 ? KI_SHL : KI_SHR, dt, ops[0], ops[1], 0);
    case OP_POW: {
        if (dtype_is_float(dt) || !dtype_is_float(e->loop->code[ops[1]].dt))
            return emit_instr(e, a, KI_POW, dt, ops[0], expr_cast(l, e, ops[1], dt), 0);
        int x = expr_cast(l, e, ops[0], DT_F64), y = expr_cast(l, e, ops[1], DT_F64);
        return expr_cast(l, e, emit_instr(e, a, KI_POW, DT_F64, x, y, 0), dt);
    }
    case OP_CLIP: {
        int r = ops[0];
        int lo = n->n_in > 1 ? ops[1] : -1, hi = n->n_in > 2 ? ops[2] : -1;
        if (n->opset < 11) {
            const Attr *mn = node_attr(n, "min"), *mx = node_attr(n, "max");
            if (mn) lo = emit_instr(e, a, KI_CONST, dt, 0, 0, mn->f);
            if (mx) hi = emit_instr(e, a, KI_CONST, dt, 0, 0, mx->f);
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

bool lower_string_cast(Lower *l, Node *n);

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
    const Attr *body = node_attr(n, "body");
    if (!body || body->kind != ATTR_GRAPH) { diag_error(l->d, n, "kiln.Fused needs a 'body' graph"); return false; }
    Graph *bg = body->g;
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
static void cast_loop(Lower *l, int dst, DType ddt, int src, DType sdt, int64_t numel) {
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

/* Buffer holding v as float32 (casting into scratch when needed). */
int in_f32(Lower *l, const Value *v) {
    int b = lower_buf(l, v);
    if (v->dtype == DT_F32) return b;
    int s = scratch_buf(l, DT_F32, value_numel(v));
    cast_loop(l, s, DT_F32, b, v->dtype, value_numel(v));
    return s;
}

/* Buffer a kernel writes v into as float32; out_f32_done casts it back. */
int out_f32(Lower *l, const Value *v) {
    return v->dtype == DT_F32 ? lower_buf(l, v) : scratch_buf(l, DT_F32, value_numel(v));
}

void out_f32_done(Lower *l, const Value *v, int b) {
    if (v->dtype != DT_F32) cast_loop(l, lower_buf(l, v), v->dtype, b, DT_F32, value_numel(v));
}

/* ---- kernels ---- */

/* The sizes before and after `axis`: a tensor seen as [outer, dims[axis], inner]. */
void outer_inner(const Value *v, int axis, int64_t *outer, int64_t *inner) {
    *outer = dims_numel(axis, v->dims);
    *inner = dims_numel(v->rank - axis - 1, v->dims + axis + 1);
}

/* Softmax, LogSoftmax and Hardmax: [outer, len, inner] around the axis. Before
 * opset 13 the input is coerced to 2-D at the axis (len covers the rest). */
static void softmax_split(const Node *n, const Value *x, int64_t *outer, int64_t *len, int64_t *inner) {
    int axis = 0;
    if (x->rank > 0) axis_norm(node_attr_int(n, "axis", n->opset >= 13 ? -1 : 1), x->rank, &axis);
    if (x->rank == 0) { *outer = *len = *inner = 1; return; }
    outer_inner(x, axis, outer, inner);
    *len = x->dims[axis];
    if (n->opset < 13) { *len = dims_numel(x->rank - axis, x->dims + axis); *inner = 1; }
}

/* A GEMM call (kiln_k_gemm): p holds its 14 parameters. A constant float32 B is
 * packed into the GEMM's layout once, when the context is created. */
static void gemm_call(Lower *l, int out, const Value *a, const Value *b, const Value *c, int64_t *p) {
    int bufs[5] = {out, in_f32(l, a), in_f32(l, b), c ? in_f32(l, c) : 0, 0};
    p[13] = !l->fold && b->data && b->dtype == DT_F32;
    if (p[13]) {
        int64_t pk[3] = {p[1], p[2], p[4]};
        int packed[2] = {state_buf(l, "packed weights", kiln_sgemm_packed_floats(p[1], p[2]) * 4), bufs[2]};
        lower_call(l, KILN_K_pack_b, 2, packed, 3, pk)->at_create = true;
        bufs[4] = packed[0];
        if (!c) bufs[3] = bufs[1];
    }
    lower_call(l, KILN_K_gemm, p[13] ? 5 : c ? 4 : 3, bufs, 14, p);
}

bool lower_matmul(Lower *l, Node *n) {
    const Value *a = n->in[0], *b = n->in[1], *y = n->out[0];
    int64_t K = a->dims[a->rank - 1], M = a->rank >= 2 ? a->dims[a->rank - 2] : 1;
    int64_t N = b->rank >= 2 ? b->dims[b->rank - 1] : 1;
    int ar = a->rank > 2 ? a->rank - 2 : 0, br = b->rank > 2 ? b->rank - 2 : 0, nb = ar > br ? ar : br;
    int64_t p[4 + 3 * MAX_RANK];
    p[0] = M; p[1] = N; p[2] = K; p[3] = nb;
    int64_t as = 1, bs = 1;
    for (int d = nb - 1; d >= 0; d--) {
        int ad = d - (nb - ar), bd = d - (nb - br);
        int64_t adim = ad >= 0 ? a->dims[ad] : 1, bdim = bd >= 0 ? b->dims[bd] : 1;
        p[4 + d] = adim > bdim ? adim : bdim;
        p[4 + nb + d] = adim == 1 ? 0 : as;
        p[4 + 2 * nb + d] = bdim == 1 ? 0 : bs;
        as *= adim;
        bs *= bdim;
    }
    int out = out_f32(l, y);
    if (!l->fold && b->data && b->rank == 2 && b->dtype == DT_F32) {
        /* constant weights: one GEMM over all of a's rows, with b packed ahead */
        int64_t g[14] = {value_numel(a) / K, N, K, 0, 0, kiln_d2p(1.0), kiln_d2p(0.0), 0, 0, 0, 0, 0, 0};
        gemm_call(l, out, a, b, NULL, g);
    } else {
        int bufs[3] = {out, in_f32(l, a), in_f32(l, b)};
        lower_call(l, KILN_K_matmul, 3, bufs, 4 + 3 * nb, p);
    }
    out_f32_done(l, y, out);
    return true;
}

/* act, lo, hi of a Conv or Gemm whose Relu/Clip the fuse pass folded in. */
static void epilogue_params(const Node *n, int64_t *p) {
    const Attr *lo = node_attr(n, "kiln.clip_min"), *hi = node_attr(n, "kiln.clip_max");
    p[0] = lo || hi;
    p[1] = kiln_d2p(lo ? lo->f : -INFINITY);
    p[2] = kiln_d2p(hi ? hi->f : INFINITY);
}

bool lower_gemm(Lower *l, Node *n) {
    const Value *a = n->in[0], *b = n->in[1], *c = node_input(n, 2), *y = n->out[0];
    int ta = node_attr_int(n, "transA", 0) != 0, tb = node_attr_int(n, "transB", 0) != 0;
    int64_t M = y->dims[0], N = y->dims[1], K = a->dims[!ta];
    int64_t crs = 0, ccs = 0;
    if (c && c->rank == 1) ccs = c->dims[0] == 1 ? 0 : 1;
    if (c && c->rank == 2) { crs = c->dims[0] == 1 ? 0 : c->dims[1]; ccs = c->dims[1] == 1 ? 0 : 1; }
    int64_t p[14] = {M, N, K, ta, tb, kiln_d2p(node_attr_float(n, "alpha", 1.0)), kiln_d2p(node_attr_float(n, "beta", 1.0)), c != NULL, crs, ccs};
    epilogue_params(n, p + 10);
    int out = out_f32(l, y);
    gemm_call(l, out, a, b, c, p);
    out_f32_done(l, y, out);
    return true;
}

int window_params(const Window *w, int64_t *p) {
    int k = 0, nd = w->nd;
    for (int i = 0; i < nd; i++) p[k + i] = w->in[i];
    k += nd;
    for (int i = 0; i < nd; i++) p[k + i] = w->out[i];
    k += nd;
    for (int i = 0; i < nd; i++) p[k + i] = w->k[i];
    k += nd;
    for (int i = 0; i < nd; i++) p[k + i] = w->stride[i];
    k += nd;
    for (int i = 0; i < nd; i++) p[k + i] = w->dil[i];
    k += nd;
    for (int i = 0; i < nd; i++) p[k + i] = w->pad_b[i];
    k += nd;
    for (int i = 0; i < nd; i++) p[k + i] = w->pad_e[i];
    return k + nd;
}

/* A 3x3 stride-1 convolution of one group with constant weights and enough
 * channels goes through Winograd F(2x2, 3x3) (runtime/winograd.c): the filters
 * are transformed and packed when the context is created. KILN_NO_WINOGRAD set
 * at compile time keeps the GEMM path (for comparisons). */
static bool lower_conv_winograd(Lower *l, Node *n, const Window *w) {
    const Value *x = n->in[0], *wt = n->in[1], *b = node_input(n, 2), *y = n->out[0], *res = node_input(n, 3);
    int64_t C = x->dims[1], M = wt->dims[0];
    bool ok = !l->fold && w->nd == 2 && node_attr_int(n, "group", 1) == 1 && wt->data && wt->dtype == DT_F32 && C >= 16 && M >= 16 &&
              kiln_wino_fits(w->out[1]) && !getenv("KILN_NO_WINOGRAD");
    for (int i = 0; ok && i < 2; i++) ok = w->k[i] == 3 && w->stride[i] == 1 && w->dil[i] == 1;
    if (!ok) return false;
    int wb = in_f32(l, wt), out = out_f32(l, y);
    int packed[2] = {state_buf(l, "winograd weights", kiln_wino_packed_floats(M, C) * 4), wb};
    int64_t pk[2] = {M, C};
    lower_call(l, KILN_K_wino_pack, 2, packed, 2, pk)->at_create = true;
    int64_t q[14] = {x->dims[0], C, M, w->in[0], w->in[1], w->out[0], w->out[1], w->pad_b[0], w->pad_b[1], b != NULL, res != NULL};
    epilogue_params(n, q + 11);
    int bufs[6] = {out, in_f32(l, x), packed[0], b ? in_f32(l, b) : packed[0], res ? in_f32(l, res) : packed[0],
                   step_scratch(l, 16 * (C + M) * kiln_wino_chunk_tiles(C, M) * 4)};
    lower_call(l, KILN_K_conv_wino, 6, bufs, 14, q);
    out_f32_done(l, y, out);
    return true;
}

bool lower_conv(Lower *l, Node *n) {
    const Value *x = n->in[0], *wt = n->in[1], *b = node_input(n, 2), *y = n->out[0];
    Window w;
    if (!window_compute(n, x, wt->dims + 2, &w, l->d)) return false;
    if (lower_conv_winograd(l, n, &w)) return true;
    int64_t p[11 + 7 * MAX_WIN] = {w.nd, x->dims[0], x->dims[1], wt->dims[0], node_attr_int(n, "group", 1), b != NULL};
    int np = 6 + window_params(&w, p + 6);
    epilogue_params(n, p + np);
    np += 3;
    int out = out_f32(l, y);
    int64_t cpg = x->dims[1] / p[4], ksz = dims_numel(w.nd, w.k), osz = dims_numel(w.nd, w.out);
    int wb = in_f32(l, wt);
    const Value *res = node_input(n, 3); /* kiln.residual (fuse pass) */
    int bufs[7] = {out, in_f32(l, x), wb, b ? in_f32(l, b) : wb, wb, wb, res ? in_f32(l, res) : wb};
    bool direct = kiln_conv_is_direct(x->dims[1], wt->dims[0], p[4]);
    if (!direct) bufs[4] = step_scratch(l, cpg * ksz * osz * 4);
    /* constant float32 weights of a GEMM convolution: packed once, at creation */
    p[np] = !direct && !l->fold && wt->data && wt->dtype == DT_F32;
    if (p[np]) {
        int64_t pk[3] = {p[4], wt->dims[0] / p[4], cpg * ksz};
        int packed[2] = {state_buf(l, "packed weights", p[4] * kiln_sgemm_packed_a_floats(pk[1], pk[2]) * 4), wb};
        lower_call(l, KILN_K_pack_a, 2, packed, 3, pk)->at_create = true;
        bufs[5] = packed[0];
    }
    np++;
    p[np++] = res != NULL;
    lower_call(l, KILN_K_conv, 7, bufs, np, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_conv_transpose(Lower *l, Node *n) {
    const Value *x = n->in[0], *wt = n->in[1], *b = node_input(n, 2), *y = n->out[0];
    Window w;
    if (!convt_window(n, x, wt, &w, l->d)) return false;
    int64_t group = node_attr_int(n, "group", 1);
    int64_t p[6 + 7 * MAX_WIN] = {w.nd, x->dims[0], x->dims[1], y->dims[1], group, b != NULL};
    int np = 6 + window_params(&w, p + 6);
    int out = out_f32(l, y);
    int wb = in_f32(l, wt);
    int bufs[4] = {out, in_f32(l, x), wb, b ? in_f32(l, b) : wb};
    lower_call(l, KILN_K_conv_transpose, 4, bufs, np, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_resize(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int r = x->rank;
    double sc[MAX_RANK], rs[MAX_RANK], re[MAX_RANK];
    int64_t out[MAX_RANK];
    if (!resize_geometry(n, x, sc, rs, re, out, l->d)) return false;
    static const char *coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    const char *mode = node_attr_string(n, "mode", "nearest");
    /* before opset 11 the coordinates were asymmetric */
    const char *cm = node_attr_string(n, "coordinate_transformation_mode", n->opset < 11 ? "asymmetric" : "half_pixel");
    const char *nm = node_attr_string(n, "nearest_mode", n->opset < 11 ? "floor" : "round_prefer_floor");
    int64_t p[8 + 5 * MAX_RANK], c = -1, nmode = -1;
    for (int i = 0; i < 6; i++) if (strcmp(cm, coords[i]) == 0) c = i;
    for (int i = 0; i < 4; i++) if (strcmp(nm, nearest[i]) == 0) nmode = i;
    if (c < 0 || nmode < 0) { diag_error(l->d, n, "unknown coordinate_transformation_mode or nearest_mode"); return false; }
    p[0] = r;
    for (int i = 0; i < r; i++) { p[1 + i] = x->dims[i]; p[1 + r + i] = out[i]; }
    p[1 + 2 * r] = strcmp(mode, "nearest") == 0 ? 0 : strcmp(mode, "cubic") == 0 ? 2 : 1;
    p[2 + 2 * r] = c;
    p[3 + 2 * r] = nmode;
    p[4 + 2 * r] = node_attr_int(n, "exclude_outside", 0);
    p[5 + 2 * r] = kiln_d2p(node_attr_float(n, "cubic_coeff_a", -0.75));
    p[6 + 2 * r] = kiln_d2p(node_attr_float(n, "extrapolation_value", 0.0));
    for (int i = 0; i < r; i++) { p[7 + 2 * r + i] = kiln_d2p(sc[i]); p[7 + 3 * r + i] = kiln_d2p(rs[i]); p[7 + 4 * r + i] = kiln_d2p(re[i]); }
    int o = out_f32(l, y);
    int bufs[2] = {o, in_f32(l, x)};
    lower_call(l, KILN_K_resize, 2, bufs, 7 + 5 * r, p);
    out_f32_done(l, y, o);
    return true;
}

bool lower_gather_nd(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1];
    int64_t b = node_attr_int(n, "batch_dims", 0), last = idx->dims[idx->rank - 1];
    int64_t batch = dims_numel((int)b, x->dims), n_idx = dims_numel(idx->rank - 1 - (int)b, idx->dims + b);
    int64_t slice = dims_numel(x->rank - (int)(b + last), x->dims + b + last);
    int64_t p[6 + MAX_RANK] = {dtype_size(x->dtype), batch, n_idx, last, slice};
    for (int64_t k = 0; k < last; k++) p[5 + k] = x->dims[b + k];
    p[5 + last] = dims_numel(x->rank - (int)b, x->dims + b);
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    lower_call(l, KILN_K_gather_nd, 3, bufs, 6 + (int)last, p);
    return true;
}

bool lower_scatter(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1], *u = n->in[2];
    const char *red = node_attr_string(n, "reduction", "none");
    int r = x->rank, axis = 0;
    if (n->op != OP_SCATTER_ND) axis_norm(node_attr_int(n, "axis", 0), r, &axis);
    int64_t p[8 + 2 * MAX_RANK] = {dtype_size(x->dtype), n->op == OP_SCATTER_ND, !strcmp(red, "add") ? 1 : !strcmp(red, "mul") ? 2 : 0,
                                   n->op == OP_SCATTER_ND ? dims_numel(idx->rank - 1, idx->dims) : value_numel(u),
                                   n->op == OP_SCATTER_ND ? idx->dims[idx->rank - 1] : axis, r};
    for (int i = 0; i < r; i++) { p[6 + i] = x->dims[i]; p[7 + r + i] = n->op == OP_SCATTER_ND ? 1 : u->dims[i]; }
    p[6 + r] = dtype_size(idx->dtype);
    int bufs[4] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx), lower_buf(l, u)};
    lower_call(l, KILN_K_scatter, 4, bufs, 7 + 2 * r, p);
    return true;
}

bool lower_onehot(Lower *l, Node *n) {
    const Value *idx = n->in[0], *y = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", -1), y->rank, &axis);
    int64_t p[4] = {dtype_size(y->dtype), dims_numel(axis, y->dims), y->dims[axis], dims_numel(y->rank - axis - 1, y->dims + axis + 1)};
    int bufs[3] = {lower_buf(l, y), in_f32(l, idx), lower_buf(l, n->in[2])};
    lower_call(l, KILN_K_onehot, 3, bufs, 4, p);
    return true;
}

bool lower_pool(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    const Value *idx = n->n_out > 1 ? n->out[1] : NULL;
    Window w;
    if (!window_compute(n, x, NULL, &w, l->d)) return false;
    int64_t p[7 + 7 * MAX_WIN] = {n->op == OP_AVERAGE_POOL, w.nd, x->dims[0], x->dims[1],
                                  node_attr_int(n, "count_include_pad", 0), idx != NULL, node_attr_int(n, "storage_order", 0)};
    int np = 7 + window_params(&w, p + 7);
    int out = out_f32(l, y);
    int bufs[3] = {out, idx ? lower_buf(l, idx) : 0, 0};
    bufs[idx ? 2 : 1] = in_f32(l, x);
    lower_call(l, KILN_K_pool, idx ? 3 : 2, bufs, np, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_reduce(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    uint32_t mask;
    bool keep, noop;
    if (!reduce_axes(n, x, &mask, &keep, &noop, l->d)) return false;
    if (noop) {
        int bufs[2] = {lower_buf(l, y), lower_buf(l, x)};
        int64_t p[1] = {value_nbytes(x)};
        lower_call(l, KILN_K_copy, 2, bufs, 1, p);
        return true;
    }
    int64_t p[3 + MAX_RANK];
    static const int kinds[OP_COUNT] = {
        [OP_REDUCE_SUM] = 0, [OP_REDUCE_MEAN] = 1, [OP_GLOBAL_AVERAGE_POOL] = 1, [OP_REDUCE_MAX] = 2, [OP_GLOBAL_MAX_POOL] = 2, [OP_REDUCE_MIN] = 3,
        [OP_REDUCE_PROD] = 4, [OP_REDUCE_L1] = 5, [OP_REDUCE_L2] = 6, [OP_REDUCE_LOG_SUM] = 7,
        [OP_REDUCE_LOG_SUM_EXP] = 8, [OP_REDUCE_SUM_SQUARE] = 9};
    p[0] = kinds[n->op];
    p[1] = x->rank;
    for (int i = 0; i < x->rank; i++) p[2 + i] = x->dims[i];
    p[2 + x->rank] = mask;
    int out = out_f32(l, y);
    int bufs[3] = {out, in_f32(l, x), 0};
    bufs[2] = p[0] == 8 ? step_scratch(l, value_numel(y) * 4) : bufs[1];
    lower_call(l, KILN_K_reduce, 3, bufs, 3 + x->rank, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_argmax(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis);
    int64_t p[5] = {n->op == OP_ARG_MIN, 0, x->dims[axis], 0, node_attr_int(n, "select_last_index", 0)};
    outer_inner(x, axis, &p[1], &p[3]);
    int bufs[2] = {lower_buf(l, n->out[0]), in_f32(l, x)};
    lower_call(l, KILN_K_argmax, 2, bufs, 5, p);
    return true;
}

bool lower_layernorm(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", -1), x->rank, &axis);
    int64_t outer = dims_numel(axis, x->dims), inner = dims_numel(x->rank - axis, x->dims + axis);
    const Value *b = node_input(n, 2);
    int64_t p[4] = {outer, inner, kiln_d2p(node_attr_float(n, "epsilon", 1e-5)), b != NULL};
    int outs[3] = {out_f32(l, y), 0, 0}, bufs[6];
    for (int i = 1; i < 3; i++) {
        const Value *o = i < n->n_out ? n->out[i] : NULL;
        outs[i] = o ? lower_buf(l, o) : scratch_buf(l, DT_F32, outer);
    }
    int sc = in_f32(l, n->in[1]);
    int in[3] = {in_f32(l, x), sc, b ? in_f32(l, b) : sc};
    for (int i = 0; i < 3; i++) { bufs[i] = outs[i]; bufs[3 + i] = in[i]; }
    lower_call(l, KILN_K_layernorm, 6, bufs, 4, p);
    out_f32_done(l, y, outs[0]);
    return true;
}

bool lower_gather_elements(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1];
    int axis, r = x->rank;
    axis_norm(node_attr_int(n, "axis", 0), r, &axis);
    int64_t p[4 + 2 * MAX_RANK];
    p[0] = dtype_size(x->dtype);
    p[1] = r;
    for (int i = 0; i < r; i++) { p[2 + i] = idx->dims[i]; p[2 + r + i] = x->dims[i]; }
    p[2 + 2 * r] = axis;
    p[3 + 2 * r] = dtype_size(idx->dtype);
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    lower_call(l, KILN_K_gather_elements, 3, bufs, 4 + 2 * r, p);
    return true;
}

bool lower_trilu(Lower *l, Node *n) {
    const Value *x = n->in[0], *k = node_input(n, 1);
    int r = x->rank;
    int64_t p[6] = {dtype_size(x->dtype), dims_numel(r - 2, x->dims), x->dims[r - 2], x->dims[r - 1],
                    k ? value_const_int(k, 0) : 0, node_attr_int(n, "upper", 1)};
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_trilu, 2, bufs, 6, p);
    return true;
}

bool lower_cumsum(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int axis;
    axis_norm(value_const_int(n->in[1], 0), x->rank, &axis);
    int64_t p[5] = {0, x->dims[axis], 0, node_attr_int(n, "exclusive", 0), node_attr_int(n, "reverse", 0)};
    outer_inner(x, axis, &p[0], &p[2]);
    int out = out_f32(l, y);
    int bufs[2] = {out, in_f32(l, x)};
    lower_call(l, KILN_K_cumsum, 2, bufs, 5, p);
    out_f32_done(l, y, out);
    return true;
}

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

bool lower_pad(Lower *l, Node *n) {
    const Value *x = n->in[0], *cv = node_input(n, 2);
    int r = x->rank;
    int64_t p[4 + 3 * MAX_RANK], pe[MAX_RANK];
    if (!pad_amounts(n, x, p + 2 + 2 * r, pe, l->d)) return false;
    const char *mode = node_attr_string(n, "mode", "constant");
    p[0] = dtype_size(x->dtype);
    p[1] = r;
    for (int i = 0; i < r; i++) { p[2 + i] = x->dims[i]; p[2 + r + i] = n->out[0]->dims[i]; }
    p[2 + 3 * r] = strcmp(mode, "reflect") == 0 ? 1 : strcmp(mode, "edge") == 0 ? 2 : 0;
    /* opset < 11: the constant is the float attribute "value" */
    const Attr *va = n->opset < 11 ? node_attr(n, "value") : NULL;
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), 0};
    p[3 + 3 * r] = cv != NULL || va != NULL;
    if (cv) bufs[2] = lower_buf(l, cv);
    else if (va) {
        float f = (float)va->f;
        bufs[2] = lower_buf(l, graph_add_const(l->g, "pad_value", DT_F32, 0, NULL, &f));
    }
    lower_call(l, KILN_K_pad, p[3 + 3 * r] ? 3 : 2, bufs, 4 + 3 * r, p);
    return true;
}

bool lower_tile(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int r = x->rank;
    int64_t p[2 + 2 * MAX_RANK] = {dtype_size(x->dtype), r};
    for (int i = 0; i < r; i++) { p[2 + i] = x->dims[i]; p[2 + r + i] = n->out[0]->dims[i]; }
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_tile, 2, bufs, 2 + 2 * r, p);
    return true;
}

/* DepthToSpace and SpaceToDepth are one 6-D transpose each. */
bool lower_space_depth(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int64_t b = node_attr_int(n, "blocksize", 1), N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    int64_t p[14] = {dtype_size(x->dtype), 6};
    int64_t *dims = p + 2, *perm = p + 8;
    static const int64_t dcr[6] = {0, 3, 4, 1, 5, 2}, crd[6] = {0, 1, 4, 2, 5, 3}, s2d[6] = {0, 3, 5, 1, 2, 4};
    const int64_t *pm;
    if (n->op == OP_DEPTH_TO_SPACE && strcmp(node_attr_string(n, "mode", "DCR"), "CRD") == 0) {
        int64_t v[6] = {N, C / (b * b), b, b, H, W};
        memcpy(dims, v, sizeof v);
        pm = crd;
    } else if (n->op == OP_DEPTH_TO_SPACE) {
        int64_t v[6] = {N, b, b, C / (b * b), H, W};
        memcpy(dims, v, sizeof v);
        pm = dcr;
    } else {
        int64_t v[6] = {N, C, H / b, b, W / b, b};
        memcpy(dims, v, sizeof v);
        pm = s2d;
    }
    memcpy(perm, pm, 6 * sizeof *pm);
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_transpose, 2, bufs, 14, p);
    return true;
}

bool lower_instancenorm(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[4] = {x->dims[0], x->dims[1], dims_numel(x->rank - 2, x->dims + 2), kiln_d2p(node_attr_float(n, "epsilon", 1e-5))};
    int out = out_f32(l, y);
    int bufs[4] = {out, in_f32(l, x), in_f32(l, n->in[1]), in_f32(l, n->in[2])};
    lower_call(l, KILN_K_instancenorm, 4, bufs, 4, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_topk(Lower *l, Node *n) {
    const Value *x = n->in[0], *v = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", -1), x->rank, &axis);
    const Value *k = n->in[1];
    int64_t p[8 + MAX_RANK] = {0, x->dims[axis], 0, k->data ? value_const_int(k, 0) : -1, node_attr_int(n, "largest", 1),
                               node_attr_int(n, "sorted", 1), axis, x->rank};
    outer_inner(x, axis, &p[0], &p[2]);
    for (int i = 0; i < x->rank; i++) p[8 + i] = x->dims[i];
    int out = out_f32(l, v);
    int bufs[7] = {out, lower_buf(l, n->out[1]), in_f32(l, x), step_scratch(l, p[1] * 20), lower_buf(l, k), 0, 0};
    if (!k->data) { /* K read at run time: both outputs' dims go to their shape buffers */
        bufs[5] = shape_slot(l, n->out[0]);
        bufs[6] = shape_slot(l, n->out[1]);
    } else bufs[5] = bufs[6] = bufs[3];
    lower_call(l, KILN_K_topk, 7, bufs, 8 + x->rank, p);
    out_f32_done(l, v, out);
    return true;
}

bool lower_batchnorm(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    bool training = n->opset >= 14 && node_attr_int(n, "training_mode", 0) != 0;
    int64_t p[5] = {x->dims[0], x->dims[1], dims_numel(x->rank - 2, x->dims + 2),
                    kiln_d2p(node_attr_float(n, "epsilon", 1e-5)), kiln_d2p(node_attr_float(n, "momentum", 0.9))};
    int outs[3] = {out_f32(l, y), 0, 0}, bufs[8], nb = 0;
    int nout = training ? 3 : 1;
    for (int i = 1; i < nout; i++) {
        /* running statistics: written to scratch when the model does not ask for them */
        const Value *o = i < n->n_out ? n->out[i] : NULL;
        outs[i] = o ? out_f32(l, o) : scratch_buf(l, DT_F32, x->dims[1]);
    }
    for (int i = 0; i < nout; i++) bufs[nb++] = outs[i];
    for (int i = 0; i < 5; i++) bufs[nb++] = in_f32(l, n->in[i]);
    lower_call(l, training ? KILN_K_batchnorm_train : KILN_K_batchnorm, nb, bufs, training ? 5 : 4, p);
    out_f32_done(l, y, outs[0]);
    for (int i = 1; i < nout && i < n->n_out; i++) if (n->out[i]) out_f32_done(l, n->out[i], outs[i]);
    return true;
}

/* Softmax and LogSoftmax (the softmax kernel) and Hardmax (its own kernel). */
bool lower_softmax(Lower *l, Node *n) {
    const Value *x = n->in[0], *y = n->out[0];
    int64_t p[4];
    softmax_split(n, x, &p[0], &p[1], &p[2]);
    p[3] = n->op == OP_LOG_SOFTMAX;
    int out = out_f32(l, y);
    int bufs[2] = {out, in_f32(l, x)};
    if (n->op == OP_HARDMAX) lower_call(l, KILN_K_hardmax, 2, bufs, 3, p);
    else lower_call(l, KILN_K_softmax, 2, bufs, 4, p);
    out_f32_done(l, y, out);
    return true;
}

/* Strides of Transpose(x, perm) (x contiguous), dim by dim: x's stride of
 * dim perm[i]. */
static void perm_strides(const Value *x, const int *perm, int64_t *st) {
    int64_t xs[MAX_RANK], s = 1;
    for (int i = x->rank - 1; i >= 0; i--) { xs[i] = s; s *= x->dims[i]; }
    for (int i = 0; i < x->rank; i++) st[i] = xs[perm[i]];
}

/* kiln.Attention: one kernel call (kiln_k_attention) with each operand's
 * strides: q, kt, v through their perms, the result through the inverse of
 * out_perm, the mask 0 where it broadcasts. */
bool lower_attention(Lower *l, Node *n) {
    const Value *q = n->in[0], *k = n->in[1], *v = n->in[2], *m = node_input(n, 3), *y = n->out[0];
    int r = q->rank, nb = r - 2, qp[MAX_RANK], kp[MAX_RANK], vp[MAX_RANK], op[MAX_RANK];
    attention_perm(n, "q_perm", r, qp);
    attention_perm(n, "k_perm", r, kp);
    attention_perm(n, "v_perm", r, vp);
    attention_perm(n, "out_perm", r, op);
    int64_t st[5][MAX_RANK] = {{0}}, ys[MAX_RANK], s = 1;
    perm_strides(q, qp, st[0]);
    perm_strides(k, kp, st[1]);
    perm_strides(v, vp, st[2]);
    for (int i = r - 1; i >= 0; i--) { ys[i] = s; s *= y->dims[i]; }
    for (int i = 0; i < r; i++) st[3][op[i]] = ys[i]; /* y dim i is the result's dim op[i] */
    int64_t ms = 1;
    for (int i = r - 1; m && i >= 0; i--) { /* score dim i against mask dim i - (r - m->rank) */
        int mi = i - (r - m->rank);
        if (mi < 0) continue;
        st[4][i] = m->dims[mi] == 1 ? 0 : ms;
        ms *= m->dims[mi];
    }
    int64_t p[8 + MAX_RANK + 5 * (MAX_RANK + 2)] = {q->dims[qp[r - 2]], k->dims[kp[r - 1]], q->dims[qp[r - 1]], v->dims[vp[r - 1]],
                                                   node_attr_int(n, "scale_op", 0), kiln_d2p(node_attr_float(n, "scale", 1.0)),
                                                   m != NULL, nb};
    int np = 8;
    for (int i = 0; i < nb; i++) p[np++] = q->dims[qp[i]];
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < r; i++) p[np++] = st[t][i];
    int out = out_f32(l, y);
    int bufs[5] = {out, in_f32(l, q), in_f32(l, k), in_f32(l, v), m ? in_f32(l, m) : 0};
    lower_call(l, KILN_K_attention, m ? 5 : 4, bufs, np, p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_view(Lower *l, Node *n) {
    (void)l;
    (void)n; /* the planner made output 0 an alias of input 0: no code */
    return true;
}

bool lower_transpose(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int64_t p[2 + 2 * MAX_RANK] = {dtype_size(x->dtype), x->rank};
    const Attr *a = node_attr(n, "perm");
    for (int i = 0; i < x->rank; i++) {
        p[2 + i] = x->dims[i];
        int pi = x->rank - 1 - i;
        if (a) axis_norm(a->ints[i], x->rank, &pi);
        p[2 + x->rank + i] = pi;
    }
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_transpose, 2, bufs, 2 + 2 * x->rank, p);
    return true;
}

bool lower_concat(Lower *l, Node *n) {
    const Value *y = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", 1), y->rank, &axis);
    int64_t p[4 + 64];
    p[0] = dtype_size(y->dtype);
    outer_inner(y, axis, &p[1], &p[2]);
    p[3] = n->n_in;
    int bufs[65];
    bufs[0] = lower_buf(l, y);
    for (int i = 0; i < n->n_in; i++) { p[4 + i] = n->in[i]->dims[axis]; bufs[1 + i] = lower_buf(l, n->in[i]); }
    lower_call(l, KILN_K_concat, 1 + n->n_in, bufs, 4 + n->n_in, p);
    return true;
}

bool lower_split(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis);
    int64_t p[4 + 64];
    p[0] = dtype_size(x->dtype);
    outer_inner(x, axis, &p[1], &p[2]);
    p[3] = n->n_out;
    int bufs[65];
    for (int i = 0; i < n->n_out; i++) { p[4 + i] = n->out[i]->dims[axis]; bufs[i] = lower_buf(l, n->out[i]); }
    bufs[n->n_out] = lower_buf(l, x);
    lower_call(l, KILN_K_split, 1 + n->n_out, bufs, 4 + n->n_out, p);
    return true;
}

bool lower_slice(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int r = x->rank;
    int64_t p[2 + 4 * MAX_RANK] = {dtype_size(x->dtype), r};
    if (!slice_compute(n, x, p + 2 + 2 * r, p + 2 + 3 * r, p + 2 + r, l->d)) return false;
    for (int i = 0; i < r; i++) p[2 + i] = x->dims[i];
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    lower_call(l, KILN_K_slice, 2, bufs, 2 + 4 * r, p);
    return true;
}

bool lower_gather(Lower *l, Node *n) {
    const Value *x = n->in[0], *idx = n->in[1];
    int axis;
    axis_norm(node_attr_int(n, "axis", 0), x->rank, &axis);
    int64_t p[6] = {dtype_size(x->dtype), 0, x->dims[axis], 0, value_numel(idx), dtype_size(idx->dtype)};
    outer_inner(x, axis, &p[1], &p[3]);
    int bufs[3] = {lower_buf(l, n->out[0]), lower_buf(l, x), lower_buf(l, idx)};
    lower_call(l, KILN_K_gather, 3, bufs, 6, p);
    return true;
}

/* ---- whole graphs and single-node folding ---- */

static const char *node_comment(Arena *a, const Node *n) {
    return arena_printf(a, "node '%s' (%s)", n->name, op_table[n->op].name);
}

void lower_forget(Graph *g) {
    for (int i = 0; i < g->values.n; i++) ((Value *)g->values.items[i])->id = ((Value *)g->values.items[i])->shape_buf = -1;
}

bool lower_none(Lower *l, Node *n) {
    diag_error(l->d, n, "op %s has no lowering", op_table[n->op].name);
    return false;
}

const LowerFn lower_table[OP_COUNT] = {
#define OP(id, nm, imin, imax, omin, omax, fl, inf, low, bat) [OP_##id] = low,
#include "../ir/ops.def"
#undef OP
};

bool lower_nodes(Lower *l) {
    Graph *g = l->g;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        bool all_const = true;
        for (int j = 0; j < n->n_out; j++) if (n->out[j] && !n->out[j]->data) all_const = false;
        if (all_const) continue; /* computed at compile time */
        l->comment = n->op == OP_FUSED ? node_attr_string(n, "fused", node_comment(g->arena, n)) : node_comment(g->arena, n);
        if (!lower_table[n->op](l, n)) return false;
    }
    return true;
}

Kir *kir_lower_ex(Graph *g, bool copy_weights, Diags *d) {
    Kir *k = arena_alloc(g->arena, sizeof *k);
    k->arena = g->arena;
    k->workspace_size = g->workspace_size;
    k->state_size = KILN_STATE_RESERVED; /* the string heap list (runtime/strings.c) */
    k->in_seq = g->in_seq;
    k->out_seq = g->out_seq;
    k->in_group = g->in_group;
    k->out_group = g->out_group;
    Lower l = {k, g, d, false, NULL, 0};
    lower_forget(g);
    k->ninputs = g->inputs.n;
    k->inputs = arena_alloc(g->arena, (size_t)(g->inputs.n + 1) * sizeof(KIo));
    for (int i = 0; i < g->inputs.n; i++) k->inputs[i] = (KIo){lower_buf(&l, g->inputs.items[i]), g->inputs.items[i], -1};
    if (!lower_nodes(&l)) return NULL;
    k->noutputs = g->outputs.n;
    k->outputs = arena_alloc(g->arena, (size_t)(g->outputs.n + 1) * sizeof(KIo));
    for (int i = 0; i < g->outputs.n; i++) {
        Value *v = g->outputs.items[i];
        k->outputs[i] = (KIo){lower_buf(&l, v), v, v->dyn ? v->shape_buf : -1};
    }
    if (copy_weights) {
        k->weights = arena_alloc(g->arena, (size_t)(k->weights_size ? k->weights_size : 64));
        for (int i = 0; i < k->nbufs; i++) /* the constants of the graph and its subgraphs */
            if (k->bufs[i].kind == KB_CONST && k->bufs[i].nbytes) memcpy(k->weights + k->bufs[i].offset, k->bufs[i].host, (size_t)k->bufs[i].nbytes);
    }
    k->workspace_size = (k->workspace_size + 63) & ~(int64_t)63;
    for (int i = 0; i < k->nbufs; i++)
        if (k->bufs[i].kind == KB_ARENA && k->bufs[i].offset < 0) k->bufs[i].offset = k->workspace_size;
    k->workspace_size += (k->step_scratch + 63) & ~(int64_t)63;
    return k;
}

bool kir_fold_node(Graph *g, Node *n, Diags *d) {
    if (op_table[n->op].flags & F_VIEW) {
        n->out[0]->data = n->in[0]->data;
        return true;
    }
    LowerFn fn = lower_table[n->op];
    if (fn == lower_none) return true; /* computed by its shape rule, or not at all */
    Arena *scratch = arena_new();
    Kir *k = arena_alloc(scratch, sizeof *k);
    k->arena = scratch;
    Lower l = {k, g, d, true, NULL, 0};
    for (int i = 0; i < n->n_in; i++) if (n->in[i]) n->in[i]->id = -1;
    for (int i = 0; i < n->n_out; i++) n->out[i]->id = n->out[i]->shape_buf = -1;
    bool ok = fn(&l, n);
    if (ok) {
        kir_run(k, NULL, NULL);
        for (int i = 0; i < n->n_out; i++) {
            Value *o = n->out[i];
            if (o->data) continue;
            if (o->dyn) { /* folded: the sizes it produced become its static shape (data written compactly) */
                memcpy(o->dims, k->bufs[o->shape_buf].host, (size_t)o->rank * sizeof *o->dims);
                o->dyn = 0;
            }
            int64_t nb = value_nbytes(o);
            void *p = arena_alloc(g->arena, (size_t)(nb ? nb : 1));
            if (o->id >= 0) memcpy(p, k->bufs[o->id].host, (size_t)nb);
            o->data = p;
        }
    }
    arena_free(scratch);
    return ok;
}

Kir *kir_lower(Graph *g, Diags *d) { return kir_lower_ex(g, true, d); }

_Static_assert(MAX_RANK == KILN_MAX_RANK, "the IR's and the runtime's ranks differ");
_Static_assert(DTYPE_STRING_SIZE == sizeof(kiln_str), "the IR's string element is not the runtime's kiln_str");

const IrServices kir_services = {kir_fold_node, kiln_conv_is_direct};
