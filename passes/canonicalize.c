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
 *   - the top graph's sequence and optional outputs -> runs of tensor outputs;
 *   - a two-operand Einsum of static shapes that is a batched matrix product
 *     -> Transpose, Reshape, MatMul, Reshape, Transpose (einsum_as_matmul).
 * Sequences are lists known at compile time (ir/sequence.c), so whether and how
 * a node is rewritten depends on what inference found (the sequence's
 * elements, a constant condition or trip count). The shape rules check the node
 * and answer with diag_rewrite (Diags.rewrite) instead of a type; this pass
 * infers (graph_infer), rewrites the node it named, and infers again, until the
 * whole graph infers. Rewritten nodes are visible with --dump-after
 * canonicalize; a control node whose work moved into copies becomes an Identity
 * nobody reads, which dce drops. The Einsum rewrite is not asked for by a
 * shape rule: it runs once the whole graph infers, and the graph is inferred
 * again after it. */
#include "passes.h"

#include <string.h>

static Value *mapped(Graph *g, Value **map, Value *bv) {
    if (!map[bv->id] && bv->data) /* a constant of the body */
        map[bv->id] = graph_add_const(g, bv->name, bv->dtype, bv->rank, bv->dims, bv->data);
    return map[bv->id];
}

/* The body b ready to be copied: in topological order, its values numbered
 * (Value.id) for map; no subgraph inside unless `once` (the one copy of an
 * If's branch, whose nested nodes may keep their subgraphs: nothing else
 * shares them). */
static Value **copy_prepare(Graph *g, Node *n, Graph *b, bool once, Diags *d) {
    for (int i = 0; i < b->nodes.n && !once; i++) {
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
    Value **map = copy_prepare(g, n, b, false, d);
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
    Value **map = copy_prepare(g, n, b, true, d);
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
    Value **map = copy_prepare(g, n, b, false, d);
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

/* ---- Einsum as MatMul ----
 * A two-operand Einsum whose labels are each a batch label (in both inputs and
 * the output, of equal sizes), an i (first input and output only), a j (second
 * input and output only) or a k (both inputs, summed) is a batched matrix
 * product, which the GEMM kernels compute far faster than the Einsum kernel's
 * generic sum. A is permuted to [batch.., i.., k..] and reshaped to
 * [batch.., I, K], B to [batch.., k.., j..] -> [batch.., K, J]; the MatMul's
 * [batch.., I, J] is reshaped to [batch.., i.., j..] and permuted to the
 * output's order; steps that change nothing are left out. The batch, i and j
 * labels go in the output's order, the k labels in A's; A is the input whose
 * plan needs fewer Transposes (the operands may swap, as (AB)^T = B^T A^T
 * lets them). Without batch labels A keeps its i
 * dimensions (MatMul broadcasts over them) so the output's dimension 0 stays
 * dimension 0 throughout (passes/batch.c compares dimension 0 with the batch),
 * and an operand with no i (no j) labels is 1-D. A Transpose of B feeding the
 * MatMul (q.k^T) is read through by the attention pattern (passes/patterns.c).
 * Anything else (repeated labels, a label summed in one operand only, an
 * ellipsis, one or 3+ operands, size-1 broadcasting, empty tensors, differing
 * dtypes, a batched product with no k labels and no i or no j labels, which is
 * an elementwise multiply) keeps the Einsum kernel. Einsums of subgraphs are
 * left as they are. */

enum { IN_A = 1, IN_B = 2, IN_OUT = 4 }; /* where a label occurs */

/* The value of step `tag` of Einsum n's rewrite: a new node of op (inputs x
 * and w), or n itself when `last`, turned into op and keeping its output. */
static Value *einsum_step(Graph *g, Node *n, OpKind op, Value *x, Value *w, const char *tag, bool last) {
    Node *s = n;
    if (last) {
        n->op = op;
        n->n_attr = 0;
        n->attrs = NULL;
        node_attrs_changed(n);
    } else {
        const char *base = n->out[0]->name;
        s = graph_add_node(g, op, arena_printf(g->arena, "%s.%s", n->name[0] ? n->name : base, tag), 2, 1);
        s->opset = n->opset;
        s->out[0] = graph_add_value(g, arena_printf(g->arena, "%s.%s", base, tag));
        s->out[0]->producer = s;
        s->out[0]->producer_out = 0;
    }
    s->n_in = w ? 2 : 1;
    s->in[0] = x;
    s->in[1] = w;
    return s->out[0];
}

/* x (labels lab, rank r) permuted to the label order `order`: a Transpose,
 * or x itself when the order is x's. */
static Value *einsum_permute(Graph *g, Node *n, Value *x, const int *lab, int r, const int *order, const char *tag, bool last) {
    int64_t perm[MAX_RANK];
    bool same = true;
    for (int q = 0; q < r; q++) {
        int p = 0;
        while (lab[p] != order[q]) p++;
        perm[q] = p;
        same &= p == q;
    }
    if (same) return x;
    Value *y = einsum_step(g, n, OP_TRANSPOSE, x, NULL, tag, last);
    Node *t = last ? n : y->producer;
    Attr *a = node_add_attr(g, t, "perm", ATTR_INTS);
    a->n = r;
    a->ints = arena_alloc(g->arena, sizeof(int64_t) * (size_t)(r + 1));
    memcpy(a->ints, perm, sizeof(int64_t) * (size_t)r);
    return y;
}

/* x, of dims `from` (rank rf), reshaped to `to` (rank rt): a Reshape, or x
 * itself when the shapes are the same. */
static Value *einsum_reshape(Graph *g, Node *n, Value *x, const int64_t *from, int rf, const int64_t *to, int rt, const char *tag,
                             bool last) {
    if (rf == rt && memcmp(from, to, sizeof(int64_t) * (size_t)rt) == 0) return x;
    int64_t len = rt;
    Value *shape = graph_add_const(g, arena_printf(g->arena, "%s.%s_shape", n->out[0]->name, tag), DT_I64, 1, &len, to);
    return einsum_step(g, n, OP_RESHAPE, x, shape, tag, last);
}

/* The steps of an Einsum taken as a MatMul with input a as A: the label
 * orders of A [batch.., i.., k..], B [batch.., k.., j..] and the product
 * [batch.., i.., j..], the shapes the MatMul takes and gives. */
typedef struct {
    int a, na, nb, nt, ra, rb, rm, ao[MAX_RANK], bo[MAX_RANK], to[MAX_RANK];
    int64_t ad[MAX_RANK], bd[MAX_RANK], td[MAX_RANK], a2[MAX_RANK], b2[MAX_RANK], md[MAX_RANK];
} EinsumPlan;

static bool same_order(const int *x, const int *y, int r) {
    for (int q = 0; q < r; q++) if (x[q] != y[q]) return false;
    return true;
}

/* The plan with input a as A (where: each label's IN_ bits); its cost is the
 * number of Transposes it needs. */
static int einsum_plan(const EinsumInfo *e, const int *where, int a, EinsumPlan *p) {
    int b = 1 - a, bl[MAX_RANK], il[MAX_RANK], jl[MAX_RANK], kl[MAX_RANK], nb = 0, ni = 0, nj = 0, nk = 0;
    int64_t I = 1, J = 1, K = 1;
    memset(p, 0, sizeof *p);
    p->a = a;
    for (int q = 0; q < e->out_rank; q++) {
        int l = e->out[q], w = where[l];
        if (w == (IN_A | IN_B | IN_OUT)) bl[nb++] = l;
        else if (w == ((1 << a) | IN_OUT)) { il[ni++] = l; I *= e->size[l]; }
        else { jl[nj++] = l; J *= e->size[l]; }
    }
    for (int q = 0; q < e->rank[a]; q++)
        if (where[e->labels[a][q]] == (IN_A | IN_B)) { kl[nk++] = e->labels[a][q]; K *= e->size[e->labels[a][q]]; }
    for (int q = 0; q < nb; q++) p->ao[p->na++] = p->bo[p->nb++] = p->to[p->nt++] = bl[q];
    for (int q = 0; q < ni; q++) p->ao[p->na++] = p->to[p->nt++] = il[q];
    for (int q = 0; q < nk; q++) p->ao[p->na++] = p->bo[p->nb++] = kl[q];
    for (int q = 0; q < nj; q++) p->bo[p->nb++] = p->to[p->nt++] = jl[q];
    for (int q = 0; q < p->na; q++) p->ad[q] = e->size[p->ao[q]];
    for (int q = 0; q < p->nb; q++) p->bd[q] = e->size[p->bo[q]];
    for (int q = 0; q < p->nt; q++) p->td[q] = e->size[p->to[q]];
    for (int q = 0; q < nb; q++) p->a2[p->ra++] = p->b2[p->rb++] = p->md[p->rm++] = e->size[bl[q]];
    if (nb) { /* [batch.., I, K] x [batch.., K, J] -> [batch.., I, J] */
        p->a2[p->ra++] = I, p->a2[p->ra++] = K;
        p->b2[p->rb++] = K, p->b2[p->rb++] = J;
        p->md[p->rm++] = I, p->md[p->rm++] = J;
    } else { /* [i.., K] x [K, J] -> [i.., J]; no i: A is [K], no j: B is [K] */
        for (int q = 0; q < ni; q++) p->a2[p->ra++] = p->md[p->rm++] = e->size[il[q]];
        p->a2[p->ra++] = p->b2[p->rb++] = K;
        if (nj) p->b2[p->rb++] = p->md[p->rm++] = J;
    }
    return !same_order(e->labels[a], p->ao, p->na) + !same_order(e->labels[b], p->bo, p->nb) + !same_order(p->to, e->out, p->nt);
}

/* Einsum n rewritten as a MatMul (see above); false when it is not one. */
static bool einsum_as_matmul(Graph *g, Node *n) {
    if (n->op != OP_EINSUM || n->n_in != 2 || !n->in[0] || !n->in[1] || n->n_out != 1 || !n->out[0] || n->out[0]->data) return false;
    Value *y = n->out[0];
    for (int s = 0; s < 2; s++)
        if (n->in[s]->dyn || n->in[s]->rank < 0 || n->in[s]->is_seq || n->in[s]->is_opt) return false;
    if (y->dyn || y->rank < 0 || n->in[0]->dtype != n->in[1]->dtype || !dtype_is_float(n->in[0]->dtype)) return false;
    EinsumInfo e;
    Diags quiet = {.arena = g->arena};
    if (!einsum_parse(n, &e, &quiet)) return false;
    int where[52] = {0};
    for (int s = 0; s < 3; s++) {
        int r = s < 2 ? e.rank[s] : e.out_rank;
        const int *lab = s < 2 ? e.labels[s] : e.out;
        for (int q = 0; q < r; q++) {
            int l = lab[q];
            if (l >= 52 || where[l] & (1 << s)) return false; /* an ellipsis's dimension, a repeated label */
            if (e.size[l] <= 0 || (s < 2 && n->in[s]->dims[q] != e.size[l])) return false; /* empty, broadcast */
            where[l] |= 1 << s;
        }
    }
    int count[8] = {0};
    for (int l = 0; l < 52; l++) count[where[l]]++;
    if (count[IN_A] || count[IN_B]) return false; /* summed in one operand only */
    /* batched with nothing summed and no outer product: a broadcast multiply,
     * which many 1-wide GEMMs do slower than the Einsum kernel */
    if (count[IN_A | IN_B | IN_OUT] && !count[IN_A | IN_B] && (!count[IN_A | IN_OUT] || !count[IN_B | IN_OUT])) return false;
    /* A is the input whose plan needs fewer Transposes; on a tie, the one with
     * the output's first non-batch label, which keeps the output's dimension 0
     * at dimension 0 of every step when there are no batch labels */
    int first = 0;
    for (int q = 0; q < e.out_rank && !first; q++) {
        int w = where[e.out[q]];
        first = w == (IN_A | IN_OUT) ? 1 : w == (IN_B | IN_OUT) ? 2 : 0;
    }
    EinsumPlan p0, p1, *p;
    int c0 = einsum_plan(&e, where, 0, &p0), c1 = einsum_plan(&e, where, 1, &p1);
    p = c1 < c0 || (c1 == c0 && first == 2) ? &p1 : &p0;
    int a = p->a, b = 1 - a;
    bool out_perm = !same_order(p->to, e.out, p->nt);
    bool out_reshape = p->rm != p->nt || memcmp(p->md, p->td, sizeof(int64_t) * (size_t)p->nt) != 0;
    Value *va = einsum_permute(g, n, n->in[a], e.labels[a], e.rank[a], p->ao, "a_perm", false);
    va = einsum_reshape(g, n, va, p->ad, p->na, p->a2, p->ra, "a_mat", false);
    Value *vb = einsum_permute(g, n, n->in[b], e.labels[b], e.rank[b], p->bo, "b_perm", false);
    vb = einsum_reshape(g, n, vb, p->bd, p->nb, p->b2, p->rb, "b_mat", false);
    Value *m = einsum_step(g, n, OP_MATMUL, va, vb, "matmul", !out_reshape && !out_perm);
    m = einsum_reshape(g, n, m, p->md, p->rm, p->td, p->nt, "labels", !out_perm);
    if (out_perm) einsum_permute(g, n, m, p->to, p->nt, e.out, "out", true);
    return true;
}

/* Every Einsum of g that is a matrix product rewritten; true when any was. */
static bool einsums_as_matmuls(Graph *g) {
    bool any = false;
    int count = g->nodes.n; /* the nodes added are not Einsums */
    for (int i = 0; i < count; i++) any |= einsum_as_matmul(g, g->nodes.items[i]);
    return any;
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
            if (!g->parent && einsums_as_matmuls(g)) continue; /* their steps get types on the next walk */
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
