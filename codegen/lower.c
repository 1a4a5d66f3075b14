/* lower.c: Graph -> Kir: the driver (kir_lower, kir_fold_node, the lowering
 * column of the op table) and the helpers the lowerings share; the lowerings
 * are in one file per op family, named as ir/ names the shape rules:
 * elementwise.c, linalg.c, conv.c, pool.c, resize.c, norm.c, loss.c,
 * reduce.c, index.c, movement.c, signal.c, quant.c, rnn.c, attention.c,
 * moe.c, strings.c, detection.c, control.c and sequence.c.
 *
 * Every value with storage gets a buffer: a view (Reshape, Squeeze, ...) shares
 * the buffer of the value it aliases, a constant becomes a slice of the weights
 * blob, a graph input is read in place, anything else lives in the workspace at
 * the offset the memory planner gave it. Each op's lower function (named in
 * ops.def) appends steps: a kernel call, or a fused elementwise loop built by
 * expr_node (elementwise.c), which is shared by single elementwise nodes and
 * kiln.Fused nodes. Compute kernels run in float32; other dtypes are cast into
 * scratch buffers placed after the planned workspace. Graph outputs are copied
 * out at the end.
 *
 * Folding uses the same functions with l->fold set: buffers are then host memory
 * (the constants' own data, fresh arena memory for results), and kir_run
 * executes the steps at once. */
#include "kir.h"

#include <math.h>
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

KStep *add_step(Lower *l, KStepKind kind) {
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

/* ---- kernel parameters ---- */

/* The sizes before and after `axis`: a tensor seen as [outer, dims[axis], inner]. */
void outer_inner(const Value *v, int axis, int64_t *outer, int64_t *inner) {
    *outer = dims_numel(axis, v->dims);
    *inner = dims_numel(v->rank - axis - 1, v->dims + axis + 1);
}

/* act, lo, hi of a Conv or Gemm whose Relu/Clip the fuse pass folded in. */
kiln_pact epilogue_params(const Node *n) {
    if (n->op == OP_GEMM) {
        const attrs_gemm *a = node_attrs(n, gemm);
        return (kiln_pact){a->has_kiln_clip_min || a->has_kiln_clip_max, kiln_d2p(a->kiln_clip_min), kiln_d2p(a->kiln_clip_max)};
    }
    const attrs_conv *a = node_attrs(n, conv);
    return (kiln_pact){a->has_kiln_clip_min || a->has_kiln_clip_max, kiln_d2p(a->kiln_clip_min), kiln_d2p(a->kiln_clip_max)};
}

kiln_pwin window_params(const Window *w) {
    kiln_pwin p = {.in = {0}};
    for (int i = 0; i < w->nd; i++) {
        p.in[i] = w->in[i];
        p.out[i] = w->out[i];
        p.k[i] = w->k[i];
        p.stride[i] = w->stride[i];
        p.dil[i] = w->dil[i];
        p.pad_begin[i] = w->pad_b[i];
        p.pad_end[i] = w->pad_e[i];
    }
    return p;
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

bool lower_view(Lower *l, Node *n) {
    (void)l;
    (void)n; /* the planner made output 0 an alias of input 0: no code */
    return true;
}

const LowerFn lower_table[OP_COUNT] = {
#define OP(id, nm, imin, imax, omin, omax, fl, inf, low, bat, at) [OP_##id] = low,
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
        const char *desc = n->op == OP_FUSED ? node_attrs(n, fused)->fused : NULL; /* what the fuse pass fused */
        l->comment = desc ? desc : node_comment(g->arena, n);
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
    int rc = ok ? kir_run(k, NULL, NULL) : 0;
    if (rc) { /* a kernel refused the constants: the model's error, found early */
        diag_error(d, n, "cannot be computed from its constant inputs: %s", kiln_status_text(rc));
        ok = false;
    }
    if (ok) {
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
