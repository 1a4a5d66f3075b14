/* canonicalize.c (pass "canonicalize"): the graph rewrites that shape
 * inference needs before it can go on, each the canonical form of a node:
 *   - Dropout in training mode with a nonzero ratio -> kiln.DropoutTrain;
 *   - PRelu before opset 7 with a per-channel 1-D slope -> the slope reshaped;
 *   - SequenceAt and OptionalGetElement of a tensor -> Identity of the element;
 *   - ConcatFromSequence -> its elements as inputs, a Concat without new_axis;
 *   - SplitToSequence -> a split whose outputs are the sequence's elements;
 *   - SequenceMap -> a copy of its body per position, its outputs
 *     SequenceConstructs (SequenceEmpty for none) of the copies' results;
 *   - an If on a constant whose branches make sequences or optionals -> the
 *     branch taken, copied into the graph;
 *   - a Loop that carries a sequence, or whose body needs its iteration number
 *     as a constant -> unrolled, a copy of the body per iteration;
 *   - the top graph's sequence and optional outputs -> runs of tensor outputs.
 * Sequences are lists known at compile time (ir/sequence.c), so whether and how
 * a node is rewritten depends on what inference found (the sequence's
 * elements, a constant condition or trip count). The shape rules check the node
 * and answer with diag_rewrite (Diags.rewrite) instead of a type; this pass
 * infers (graph_infer), rewrites the node it named, and infers again, until the
 * whole graph infers. Rewritten nodes are visible with --dump-after
 * canonicalize; a control node whose work moved into copies becomes an Identity
 * nobody reads, which dce drops. */
#include "passes.h"

#include <string.h>

static Value *mapped(Graph *g, Value **map, Value *bv) {
    if (!map[bv->id] && bv->data) /* a constant of the body */
        map[bv->id] = graph_add_const(g, bv->name, bv->dtype, bv->rank, bv->dims, bv->data);
    return map[bv->id];
}

/* The body b ready to be copied: no subgraph inside, in topological order,
 * its values numbered (Value.id) for map. */
static Value **copy_prepare(Graph *g, Node *n, Graph *b, Diags *d) {
    for (int i = 0; i < b->nodes.n; i++) {
        Node *bn = b->nodes.items[i];
        if (if_inlined(bn)) continue; /* it only reads its branches: copies may share them */
        for (int j = 0; j < bn->n_attr; j++)
            if (bn->attrs[j].kind == ATTR_GRAPH) {
                diag_error(d, n, "its body holds a subgraph (kiln unrolls this %s, and does not unroll nested control flow)", op_table[n->op].name);
                return NULL;
            }
    }
    if (!graph_toposort(b, d)) return NULL;
    for (int i = 0; i < b->values.n; i++) ((Value *)b->values.items[i])->id = i;
    return arena_alloc(g->arena, sizeof(Value *) * (size_t)(b->values.n + 1));
}

/* Appends to g a copy of b's nodes whose inputs are map's (set for b's inputs;
 * copy i of node n's body), and fills map for their outputs. */
static void copy_body(Graph *g, Node *n, Graph *b, Value **map, int i) {
    for (int q = 0; q < b->nodes.n; q++) {
        Node *bn = b->nodes.items[q];
        Node *c = graph_add_node(g, bn->op, arena_printf(g->arena, "%s.%d.%s", n->name, i, bn->name), bn->n_in, bn->n_out);
        c->opset = bn->opset;
        c->n_attr = bn->n_attr;
        c->attrs = bn->attrs;
        c->pa = bn->pa, c->pa_set = bn->pa_set;
        for (int j = 0; j < bn->n_in; j++) c->in[j] = bn->in[j] ? mapped(g, map, bn->in[j]) : NULL;
        for (int j = 0; j < bn->n_out; j++) {
            if (!bn->out[j]) { c->out[j] = NULL; continue; }
            Value *o = graph_add_value(g, arena_printf(g->arena, "%s.%d.%s", n->name, i, bn->out[j]->name));
            o->producer = c;
            o->producer_out = j;
            c->out[j] = map[bn->out[j]->id] = o;
        }
    }
}

/* Moves the nodes appended to g since `start` to right after n: the
 * inference, walking the list, visits them next. */
static void place_after(Graph *g, Node *n, int start) {
    int pos = 0, added = g->nodes.n - start;
    while (pos < start && g->nodes.items[pos] != n) pos++;
    void **moved = arena_alloc(g->arena, sizeof *moved * (size_t)(added + 1));
    memcpy(moved, g->nodes.items + start, sizeof *moved * (size_t)added);
    memmove(g->nodes.items + pos + 1 + added, g->nodes.items + pos + 1, sizeof *moved * (size_t)(start - pos - 1));
    memcpy(g->nodes.items + pos + 1, moved, sizeof *moved * (size_t)added);
}

/* Node n's output j, produced from now on by a new node of op (n_in inputs, to be set). */
static Node *take_output(Graph *g, Node *n, int j, OpKind op, int n_in) {
    Node *o = graph_add_node(g, op, arena_printf(g->arena, "%s.out%d", n->name, j), n_in, 1);
    o->out[0] = n->out[j];
    n->out[j]->producer = o;
    n->out[j]->producer_out = 0;
    return o;
}

/* A control-flow node whose work now lies in copies of its subgraph becomes
 * an Identity of its first input to a value nobody reads (dead-code
 * elimination drops it). */
static bool made_inert(Graph *g, Node *n) {
    n->op = OP_IDENTITY;
    n->n_in = 1;
    n->n_out = 1;
    n->n_attr = 0;
    node_attrs_changed(n);
    n->out = arena_alloc(g->arena, 2 * sizeof *n->out);
    n->out[0] = graph_add_value(g, arena_printf(g->arena, "%s.copied", n->name));
    n->out[0]->producer = n;
    return true;
}

/* SequenceMap unrolled: the body copied once per position of the input
 * sequences (the other inputs as they are); output m becomes a
 * SequenceConstruct of the copies' m-th results (a SequenceEmpty of the body
 * output's dtype when the sequences are empty). */
static bool expand_sequence_map(Graph *g, Node *n, Diags *d) {
    Graph *b = node_attrs(n, sequence_map)->body;
    int k = n->in[0]->n_elems;
    Value **map = copy_prepare(g, n, b, d);
    if (!map) return false;
    int start = g->nodes.n;
    Value **outs = arena_alloc(g->arena, sizeof *outs * (size_t)(n->n_out * k + 1));
    for (int i = 0; i < k; i++) {
        memset(map, 0, sizeof *map * (size_t)b->values.n);
        for (int j = 0; j < n->n_in; j++) map[((Value *)b->inputs.items[j])->id] = n->in[j]->is_seq ? n->in[j]->elems[i] : n->in[j];
        copy_body(g, n, b, map, i);
        for (int m = 0; m < n->n_out; m++) {
            Value *o = mapped(g, map, b->outputs.items[m]);
            if (!o) { diag_error(d, n, "body output '%s' is not computed", ((Value *)b->outputs.items[m])->name); return false; }
            outs[m * k + i] = o;
        }
    }
    for (int m = 0; m < n->n_out; m++) {
        Node *o = take_output(g, n, m, k ? OP_SEQUENCE_CONSTRUCT : OP_SEQUENCE_EMPTY, k);
        if (k) memcpy(o->in, outs + m * k, sizeof *o->in * (size_t)k);
        else node_add_attr(g, o, "dtype", ATTR_INT)->i = ((Value *)b->outputs.items[m])->dtype ? ((Value *)b->outputs.items[m])->dtype : DT_F32;
    }
    place_after(g, n, start);
    return made_inert(g, n);
}

/* An If on a constant whose branch makes sequences or optionals: the branch
 * taken is copied into the graph after the node (its results then are the
 * lists themselves, which kiln keeps at compile time), the If becomes an inert
 * Identity of its condition; its outputs come from Identity nodes. */
static bool inline_if(Graph *g, Node *n, Diags *d) {
    const attrs_if *a = node_attrs(n, if);
    Graph *b = *(const unsigned char *)n->in[0]->data ? a->then_branch : a->else_branch;
    Value **map = copy_prepare(g, n, b, d);
    if (!map) return false;
    int start = g->nodes.n;
    memset(map, 0, sizeof *map * (size_t)b->values.n);
    for (int c = 0; c < b->captures; c++) map[((Value *)b->inputs.items[c])->id] = n->in[1 + c];
    copy_body(g, n, b, map, 0);
    for (int j = 0; j < n->n_out; j++) {
        Value *r = mapped(g, map, b->outputs.items[j]);
        if (!r) { diag_error(d, n, "branch output '%s' is not computed", ((Value *)b->outputs.items[j])->name); return false; }
        take_output(g, n, j, OP_IDENTITY, 1)->in[0] = r;
    }
    place_after(g, n, start);
    return made_inert(g, n);
}

/* A Loop that carries a sequence, unrolled: kiln's sequences are lists known
 * at compile time, so each iteration is a copy of the body (the iteration
 * number a constant, the states the previous copy's results); the trip count
 * must be a constant and the condition stay true (loop_unroll_check). A Loop
 * whose body needs its iteration number as a constant is unrolled the same way. The Loop's outputs come
 * from Identity nodes of the last states and, for scan outputs, a
 * concatenation of the copies' values along a new axis 0. The Loop node
 * itself becomes an unused Identity, which dead-code elimination drops. */
static bool unroll_loop(Graph *g, Node *n, Diags *d) {
    Graph *b = node_attrs(n, loop)->body;
    int formal = n->n_in - b->captures, N = formal - 2, K = n->n_out - N;
    int64_t trip;
    if (!loop_unroll_check(n, b, &trip, d)) return false;
    Value **map = copy_prepare(g, n, b, d);
    if (!map) return false;
    int start = g->nodes.n;
    Value **state = arena_alloc(g->arena, sizeof *state * (size_t)(N + 1));
    Value **scans = arena_alloc(g->arena, sizeof *scans * (size_t)(K * trip + 1));
    for (int j = 0; j < N; j++) state[j] = n->in[2 + j];
    Value *bi = b->inputs.items[0];
    for (int64_t i = 0; i < trip; i++) {
        memset(map, 0, sizeof *map * (size_t)b->values.n);
        int64_t one = 1;
        uint8_t yes = 1;
        map[bi->id] = graph_add_const(g, arena_printf(g->arena, "%s.%lld.iteration", n->name, (long long)i), DT_I64, bi->rank == 1 ? 1 : 0, &one, &i);
        map[((Value *)b->inputs.items[1])->id] = graph_add_const(g, arena_printf(g->arena, "%s.%lld.cond", n->name, (long long)i), DT_BOOL, 0, NULL, &yes);
        for (int j = 0; j < N; j++) map[((Value *)b->inputs.items[2 + j])->id] = state[j];
        for (int c = 0; c < b->captures; c++) map[((Value *)b->inputs.items[formal + c])->id] = n->in[formal + c];
        copy_body(g, n, b, map, (int)i);
        for (int j = 0; j < N + K; j++) {
            Value *o = mapped(g, map, b->outputs.items[1 + j]);
            if (!o) { diag_error(d, n, "body output '%s' is not computed", ((Value *)b->outputs.items[1 + j])->name); return false; }
            if (j < N) state[j] = o;
            else scans[(j - N) * trip + i] = o;
        }
    }
    for (int j = 0; j < N + K; j++) { /* the Loop's outputs, from the copies */
        Node *o = take_output(g, n, j, j < N ? OP_IDENTITY : OP_CONCAT_FROM_SEQUENCE, j < N ? 1 : (int)trip);
        if (j < N) o->in[0] = state[j];
        else {
            memcpy(o->in, scans + (j - N) * trip, sizeof *o->in * (size_t)trip);
            node_add_attr(g, o, "axis", ATTR_INT)->i = 0;
            node_add_attr(g, o, "new_axis", ATTR_INT)->i = 1;
        }
    }
    place_after(g, n, start);
    return made_inert(g, n);
}

/* SplitToSequence: its outputs become the elements of the sequence it gave
 * (which loses its producer); the split itself is lowered (codegen/sequence.c). */
static bool split_into_elements(Graph *g, Node *n, Diags *d) {
    int axis, parts;
    int64_t sizes[64];
    bool squeeze;
    if (!split_to_sequence_sizes(n, n->in[0], &axis, sizes, &parts, &squeeze, d)) return false;
    Value *s = n->out[0];
    n->out = arena_alloc(g->arena, (size_t)(parts + 1) * sizeof *n->out);
    for (int i = 0; i < parts; i++) {
        Value *e = graph_add_value(g, arena_printf(g->arena, "%s[%d]", s->name, i));
        e->producer = n;
        e->producer_out = i;
        n->out[i] = e;
    }
    n->n_out = parts;
    value_set_sequence(g, s, n->in[0]->dtype, n->out, parts);
    s->producer = NULL;
    node_add_attr(g, n, "kiln.parts", ATTR_INT)->i = parts;
    return true;
}

/* n becomes an Identity of x. */
static bool identity_of(Node *n, Value *x) {
    n->op = OP_IDENTITY;
    n->in[0] = x;
    n->n_in = 1;
    return true;
}

/* The rewrite node n of graph g asked for (its shape rule checked it). */
static bool rewrite(Graph *g, Node *n, Diags *d) {
    switch (n->op) {
    case OP_DROPOUT: {
        double r = dropout_ratio(n);
        n->op = OP_DROPOUT_TRAIN;
        n->n_in = 1;
        node_add_attr(g, n, "kiln.ratio", ATTR_FLOAT)->f = (float)r;
        return true;
    }
    case OP_PRELU: { /* before opset 7 a 1-D slope holds one value per channel (axis 1) */
        int64_t dims[MAX_RANK];
        int r = n->in[0]->rank - 1;
        for (int i = 0; i < r; i++) dims[i] = i ? 1 : n->in[1]->dims[0];
        n->in[1] = graph_add_const(g, arena_printf(g->arena, "%s.per_channel", n->in[1]->name), n->in[1]->dtype, r, dims, n->in[1]->data);
        return true;
    }
    case OP_SEQUENCE_AT: {
        int pos;
        if (!sequence_position(n, 1, n->in[0]->n_elems, false, &pos, d)) return false;
        return identity_of(n, n->in[0]->elems[pos]);
    }
    case OP_OPTIONAL_GET_ELEMENT:
        return identity_of(n, n->in[0]->is_opt ? n->in[0]->opt_elem : n->in[0]);
    case OP_CONCAT_FROM_SEQUENCE:
        if (n->in[0]->is_seq) { /* the elements become the inputs */
            Value *s = n->in[0];
            n->in = arena_alloc(g->arena, (size_t)(s->n_elems + 1) * sizeof *n->in);
            memcpy(n->in, s->elems, (size_t)s->n_elems * sizeof *n->in);
            n->n_in = s->n_elems;
        }
        if (!node_attrs(n, concat_from_sequence)->new_axis) {
            n->op = OP_CONCAT;
            node_attrs_changed(n);
        }
        return true;
    case OP_SPLIT_TO_SEQUENCE:
        return split_into_elements(g, n, d);
    case OP_SEQUENCE_MAP:
        return expand_sequence_map(g, n, d);
    case OP_IF:
        return inline_if(g, n, d);
    case OP_LOOP:
        return unroll_loop(g, n, d);
    default:
        diag_error(d, n, "internal error: the shape rule asked for a rewrite the canonicalize pass does not know");
        return false;
    }
}

/* A graph's outputs that are sequences or optionals become their tensors,
 * outputs of their own; g->out_seq and g->out_group group them, as the
 * inputs' (the top graph only: a subgraph's are refused). An empty sequence or
 * an absent optional is one placeholder output of no data. */
static Value *placeholder(Graph *g, const Value *v) {
    int64_t zero = 0;
    return graph_add_const(g, arena_printf(g->arena, "%s.none", v->name), v->dtype ? v->dtype : DT_F32, 1, &zero, "");
}

static void sequence_outputs(Graph *g) {
    bool any = false;
    for (int i = 0; i < g->outputs.n; i++) any |= ((Value *)g->outputs.items[i])->is_seq || ((Value *)g->outputs.items[i])->is_opt;
    if (!any) return;
    PtrVec outs = {0};
    int total = 0;
    for (int i = 0; i < g->outputs.n; i++) {
        Value *v = g->outputs.items[i];
        total += v->is_seq ? v->n_elems + 1 : v->is_opt && v->opt_elem && v->opt_elem->is_seq ? v->opt_elem->n_elems + 1 : 1;
    }
    int *seq = arena_alloc(g->arena, sizeof *seq * (size_t)(total + 1)), *grp = arena_alloc(g->arena, sizeof *grp * (size_t)(total + 1));
    for (int i = 0; i < g->outputs.n; i++) {
        Value *v = g->outputs.items[i];
        int first = outs.n;
        if (!v->is_seq && !v->is_opt) {
            seq[outs.n] = grp[outs.n] = 0;
            vec_push(g->arena, &outs, v);
            continue;
        }
        Value *list = v->is_seq ? v : v->opt_elem && v->opt_elem->is_seq ? v->opt_elem : NULL;
        int group = v->is_seq ? 1 : !v->opt_elem ? 4 : v->opt_elem->is_seq ? 3 : 2, count = 0;
        if (list)
            for (int j = 0; j < list->n_elems; j++) vec_push(g->arena, &outs, list->elems[j]);
        else if (v->is_opt && v->opt_elem) vec_push(g->arena, &outs, v->opt_elem);
        count = outs.n - first;
        if (!count) vec_push(g->arena, &outs, placeholder(g, list ? list : v));
        for (int j = first; j < outs.n; j++) {
            seq[j] = j > first ? -1 : count;
            grp[j] = group;
        }
    }
    g->outputs = outs;
    g->out_seq = seq;
    g->out_group = grp;
}

bool pass_canonicalize(Graph *g, Diags *d) {
    for (long rounds = 0;; rounds++) {
        Diags t = {.arena = d->arena}; /* a walk that stops at a rewrite says nothing */
        if (graph_infer(g, &t)) {
            diag_merge(d, &t);
            break;
        }
        if (!t.rewrite) {
            diag_merge(d, &t);
            return false;
        }
        if (rounds > 1000000) {
            diag_error(d, t.rewrite, "internal error: the canonicalize pass does not converge");
            return false;
        }
        if (!rewrite(t.rewrite_graph, t.rewrite, d)) return false;
    }
    if (!g->parent) sequence_outputs(g);
    return true;
}
