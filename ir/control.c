/* control.c: the shape rules of If, Loop and Scan, and Scan's geometry.
 *
 * A control-flow node's subgraphs are self-contained. The readers turn every
 * value a subgraph takes from an enclosing graph into a capture: one of the
 * subgraph's last g->captures inputs, bound to one of the node's last inputs
 * (If's two branches share one capture list). Passes over the enclosing graph
 * then see those values as ordinary inputs of the node (lifetimes, DCE, CSE),
 * and nothing inside a subgraph points outside it.
 *
 * The shape rule gives a subgraph's inputs the types of what they are bound to
 * (a captured constant becomes a constant inside, so shape operands fold), runs
 * shape inference and dead-code elimination over the subgraph, and takes the
 * node's output types from the subgraph's outputs. Shapes are static: a
 * loop-carried value keeps its shape, If's branches agree (or the condition is
 * a constant and only the branch taken counts), and a Loop with scan outputs
 * needs a constant trip count. The lowering is in codegen/control.c. */
#include "infer.h"

#include <string.h>

bool subgraph_live(const Node *n, const Graph *sub) {
    if (n->op != OP_IF || !n->in[0]->data) return true;
    const attrs_if *a = node_attrs(n, if);
    return sub == (*(const unsigned char *)n->in[0]->data ? a->then_branch : a->else_branch);
}

static bool scalar_of(const Value *v, DType dt) { return v->dtype == dt && v->rank >= 0 && value_numel(v) == 1; }

/* Gives subgraph input i the type of v (and its data when v is a constant and
 * `constant` allows: captures only; loop state changes from step to step). */
static bool bind_input(Node *n, Graph *sub, int i, const Value *v, bool constant, Diags *d) {
    Value *s = sub->inputs.items[i];
    if (v->is_seq) { diag_error(d, n, "subgraph '%s' receives the sequence '%s': sequences cannot enter subgraphs", sub->name, v->name); return false; }
    if (s->dtype != DT_UNDEF && s->dtype != v->dtype) {
        diag_error(d, n, "subgraph '%s' declares input '%s' as %s, but it receives %s", sub->name, s->name,
                   dtype_name(s->dtype), dtype_name(v->dtype));
        return false;
    }
    set_out(s, v->dtype, v->rank, v->dims);
    s->data = constant ? v->data : NULL;
    return true;
}

/* Binds the captures of sub to n's inputs from `first` on, infers the subgraph
 * and drops its dead nodes. */
static bool run_sub(Node *n, Graph *sub, int first, Diags *d) {
    int c = sub->captures;
    if (first + c != n->n_in || sub->inputs.n < c) {
        diag_error(d, n, "subgraph '%s' captures %d values but the node passes %d", sub->name, c, n->n_in - first);
        return false;
    }
    for (int k = 0; k < c; k++) {
        if (!n->in[first + k]) { diag_error(d, n, "captured input %d is missing", k); return false; }
        if (!bind_input(n, sub, sub->inputs.n - c + k, n->in[first + k], true, d)) return false;
    }
    for (int i = 0; i < sub->inputs.n; i++)
        if (((Value *)sub->inputs.items[i])->rank < 0) {
            diag_error(d, n, "subgraph '%s': input '%s' has no shape", sub->name, ((Value *)sub->inputs.items[i])->name);
            return false;
        }
    if (!graph_infer(sub, d)) return false;
    graph_dce(sub);
    /* nothing inside may name a value of an enclosing graph directly */
    for (int i = 0; i < sub->values.n; i++) ((Value *)sub->values.items[i])->id = 7;
    for (int i = 0; i < sub->nodes.n; i++) {
        Node *bn = sub->nodes.items[i];
        for (int j = 0; j < bn->n_in; j++)
            if (bn->in[j] && bn->in[j]->id != 7 && !bn->in[j]->data) {
                diag_error(d, n, "subgraph '%s' uses '%s' of an enclosing graph without capturing it", sub->name, bn->in[j]->name);
                return false;
            }
    }
    for (int i = 0; i < sub->outputs.n; i++)
        if (((Value *)sub->outputs.items[i])->rank < 0) {
            diag_error(d, n, "subgraph '%s': output %d has no shape", sub->name, i);
            return false;
        }
    return true;
}

static bool same_type(const Value *a, const Value *b) { return a->dtype == b->dtype && value_same_shape(a, b); }

bool infer_if(Graph *g, Node *n, Diags *d) {
    Graph *t = node_attrs(n, if)->then_branch, *e = node_attrs(n, if)->else_branch;
    if (!t || !e) { diag_error(d, n, "If needs the subgraphs then_branch and else_branch"); return false; }
    Value *cond = n->in[0];
    if (!scalar_of(cond, DT_BOOL)) { diag_error(d, n, "the condition must be one bool"); return false; }
    if (t->inputs.n != t->captures || e->inputs.n != e->captures || t->captures != e->captures) {
        diag_error(d, n, "If's branches take no inputs of their own");
        return false;
    }
    if (t->outputs.n != n->n_out || e->outputs.n != n->n_out) {
        diag_error(d, n, "each branch must give the node's %d outputs", n->n_out);
        return false;
    }
    /* Inlined by passes/canonicalize.c, which reads the branch's nodes (not
     * inferred: their attributes parsed here): the branch taken when it makes
     * lists known at compile time (sequences, optionals), and in the top graph
     * any branch taken on a constant condition, so that its values are the
     * graph's (an executable of run-time shapes computes those a shape depends
     * on, e.g. a NonMaxSuppression's boxes read by a Gather, only at the top). */
    if (if_inlined(n) || (cond->data && !g->parent)) {
        if (!cond->data) {
            diag_need(d, n, cond, "input '%s' must be a constant: a branch makes a sequence or an optional, which kiln builds at compile time", cond->name);
            return false;
        }
        return graph_parse_attrs(subgraph_live(n, t) ? t : e, d) && diag_rewrite(d, g, n);
    }
    /* with a constant condition only the branch taken must make sense */
    bool then_live = subgraph_live(n, t), else_live = subgraph_live(n, e);
    const Value *need = d->need;
    if ((then_live && !run_sub(n, t, 1, d)) || (else_live && !run_sub(n, e, 1, d))) {
        /* a branch needs a value of its own computed first: ask for the
         * condition instead, after which the branch taken is inlined (above) */
        if (!need && d->need && !cond->data && !g->parent && !graph_has_value(g, d->need)) {
            d->need = NULL;
            diag_need(d, n, cond, "a branch needs a value of its own computed first: the condition '%s' decides which", cond->name);
        }
        return false;
    }
    for (int j = 0; j < n->n_out; j++) {
        Value *a = t->outputs.items[j], *b = e->outputs.items[j];
        if (then_live && else_live && !same_type(a, b)) {
            char x[128], y[128];
            diag_need(d, n, n->in[0], "the branches give output %d as %s and %s: kiln needs one static type (or a constant condition)", j,
                      value_type_str(a, x, sizeof x), value_type_str(b, y, sizeof y));
            return false;
        }
        Value *r = then_live ? a : b;
        set_out(n->out[j], r->dtype, r->rank, r->dims);
    }
    return true;
}

/* Loop-carried (or Scan state) output j of the body must keep input j's type. */
static bool check_carried(Node *n, const Value *in, const Value *out, int j, Diags *d) {
    if (same_type(in, out)) return true;
    char x[128], y[128];
    const char *fmt = "state %d enters the body as %s and leaves it as %s: kiln needs its type to stay the same";
    if (n->op == OP_LOOP && n->in[0]) /* with a constant trip count the Loop unrolls instead */
        diag_need(d, n, n->in[0], fmt, j, value_type_str(in, x, sizeof x), value_type_str(out, y, sizeof y));
    else diag_error(d, n, fmt, j, value_type_str(in, x, sizeof x), value_type_str(out, y, sizeof y));
    return false;
}

static bool loop_native(Node *n, Graph *b, int formal, int N, Diags *d);

bool infer_loop(Graph *g, Node *n, Diags *d) {
    Graph *b = node_attrs(n, loop)->body;
    if (!b) { diag_error(d, n, "Loop needs the subgraph body"); return false; }
    int formal = n->n_in - b->captures, N = formal - 2;
    if (N < 0 || b->inputs.n != formal + b->captures || b->outputs.n < 1 + N || n->n_out != b->outputs.n - 1) {
        diag_error(d, n, "the body must take (iteration, condition, %d states) and give (condition, the states, scan outputs)", N < 0 ? 0 : N);
        return false;
    }
    Value *M = n->in[0], *cond = n->in[1];
    if (!M && !cond) { diag_error(d, n, "a Loop with neither a trip count nor a condition never ends"); return false; }
    int64_t trip;
    /* unrolled by passes/canonicalize.c, which reads the body's nodes (not inferred: their attributes parsed here) */
    if (loop_carries_sequence(n, b)) return loop_unroll_check(n, b, &trip, d) && graph_parse_attrs(b, d) && diag_rewrite(d, g, n);
    for (int j = 0; j < n->n_in; j++)
        if (n->in[j] && n->in[j]->is_seq) { diag_error(d, n, "input '%s' is a sequence: a Loop takes tensors", n->in[j]->name); return false; }
    /* a body that needs its iteration number as a constant (a Slice by the
     * counter) compiles unrolled, when the loop can be */
    Diags tried = {.arena = d->arena};
    if (loop_native(n, b, formal, N, &tried)) return true;
    if (tried.rewrite) { /* a node of the body first takes its canonical form */
        d->rewrite_graph = tried.rewrite_graph;
        d->rewrite = tried.rewrite;
        return false;
    }
    if (loop_unrollable(n, b)) return loop_unroll_check(n, b, &trip, d) && graph_parse_attrs(b, d) && diag_rewrite(d, g, n);
    diag_merge(d, &tried); /* the native attempt's messages */
    return false;
}

/* The Loop as a loop of the generated code. */
static bool loop_native(Node *n, Graph *b, int formal, int N, Diags *d) {
    Value *M = n->in[0], *cond = n->in[1];
    if (M && !scalar_of(M, DT_I64)) { diag_error(d, n, "the trip count M must be one int64"); return false; }
    if (cond && !scalar_of(cond, DT_BOOL)) { diag_error(d, n, "the condition must be one bool"); return false; }
    Value *bi = b->inputs.items[0], *bc = b->inputs.items[1];
    int64_t one = 1;
    int ri = bi->rank == 1 ? 1 : 0, rc = bc->rank == 1 ? 1 : 0; /* [] or [1], as declared */
    if ((bi->dtype != DT_UNDEF && bi->dtype != DT_I64) || (bc->dtype != DT_UNDEF && bc->dtype != DT_BOOL)) {
        diag_error(d, n, "the body's first two inputs must be int64 and bool");
        return false;
    }
    set_out(bi, DT_I64, ri, &one);
    set_out(bc, DT_BOOL, rc, &one);
    for (int j = 0; j < N; j++) {
        if (!n->in[2 + j]) { diag_error(d, n, "loop state %d has no initial value", j); return false; }
        if (!bind_input(n, b, 2 + j, n->in[2 + j], false, d)) return false;
    }
    if (!run_sub(n, b, formal, d)) return false;
    if (!scalar_of(b->outputs.items[0], DT_BOOL)) { diag_error(d, n, "the body's first output (the condition) must be one bool"); return false; }
    for (int j = 0; j < N; j++) {
        if (!check_carried(n, n->in[2 + j], b->outputs.items[1 + j], j, d)) return false;
        set_out(n->out[j], n->in[2 + j]->dtype, n->in[2 + j]->rank, n->in[2 + j]->dims);
    }
    int K = n->n_out - N;
    if (K > 0 && (!M || !M->data)) {
        if (M) diag_need(d, n, M, "input '%s' must be a constant: the Loop's scan outputs are as long as the trip count, and kiln's "
                         "shapes are static", M->name);
        else diag_error(d, n, "input 'M' must be given: the Loop's scan outputs are as long as the trip count, and kiln's shapes are static");
        return false;
    }
    int64_t trip = K > 0 ? value_const_int(M, 0) : 0;
    if (trip < 0) trip = 0;
    for (int k = 0; k < K; k++) {
        Value *s = b->outputs.items[1 + N + k];
        if (s->rank >= MAX_RANK) { diag_error(d, n, "scan output %d has too many dimensions", k); return false; }
        int64_t dims[MAX_RANK] = {trip};
        memcpy(dims + 1, s->dims, (size_t)s->rank * sizeof *dims);
        set_out(n->out[N + k], s->dtype, s->rank + 1, dims);
        if (value_nbytes(n->out[N + k]) < 0) { diag_error(d, n, "scan output %d is too large", k); return false; }
    }
    return true;
}

/* Axis list attribute `name` (a; has: present, else all 0) normalized against
 * the given ranks. */
static bool scan_axes(const Node *n, const char *name, AttrInts a, bool has, int count, const int *ranks, int *axes, Diags *d) {
    if (has && a.n != count) { diag_error(d, n, "%s has %d entries, expected %d", name, a.n, count); return false; }
    for (int i = 0; i < count; i++)
        if (!axis_norm(has ? a.v[i] : 0, ranks[i], &axes[i])) { diag_error(d, n, "%s[%d] is out of range", name, i); return false; }
    return true;
}

static bool scan_dirs(const Node *n, const char *name, AttrInts a, bool has, int count, bool *rev, Diags *d) {
    if (has && a.n != count) { diag_error(d, n, "%s has %d entries, expected %d", name, a.n, count); return false; }
    for (int i = 0; i < count; i++) {
        int64_t v = has ? a.v[i] : 0;
        if (v != 0 && v != 1) { diag_error(d, n, "%s[%d] must be 0 or 1", name, i); return false; }
        rev[i] = v == 1;
    }
    return true;
}

bool scan_info(const Node *n, ScanInfo *s, Diags *d) {
    memset(s, 0, sizeof *s);
    const attrs_scan *a = node_attrs(n, scan);
    Graph *b = a->body;
    if (!b) { diag_error(d, n, "Scan needs the subgraph body"); return false; }
    s->batch = n->opset < 9;
    s->first = s->batch ? 1 : 0;
    s->M = (int)a->num_scan_inputs;
    int formal = n->n_in - b->captures - s->first;
    s->N = formal - s->M;
    s->K = n->n_out - s->N;
    if (s->M < 1 || s->N < 0 || s->K < 0 || b->inputs.n != formal + b->captures || b->outputs.n != n->n_out) {
        diag_error(d, n, "num_scan_inputs, the node's inputs and outputs and the body's do not agree");
        return false;
    }
    if (s->batch && n->in[0]) { diag_error(d, n, "Scan's sequence_lens (opset 8) is not supported: all sequences run in full"); return false; }
    int ranks[64];
    for (int m = 0; m < s->M; m++) {
        const Value *x = n->in[s->first + s->N + m];
        if (!x || x->rank < 1 + s->batch) { diag_error(d, n, "scan input %d needs a sequence axis", m); return false; }
        ranks[m] = x->rank;
    }
    if (s->batch) {
        if (a->has_directions && a->directions.n != s->M) {
            diag_error(d, n, "directions has %d entries, expected %d", a->directions.n, s->M);
            return false;
        }
        for (int m = 0; m < s->M; m++) { s->in_axis[m] = 1; s->in_rev[m] = a->has_directions && a->directions.v[m] == 1; }
        for (int k = 0; k < s->K; k++) s->out_axis[k] = 1;
        for (int j = 0; j < s->N + s->M; j++) {
            const Value *x = n->in[1 + j];
            if (!x || x->rank < 1 || x->dims[0] != 1) {
                diag_error(d, n, "Scan (opset 8) with a batch other than 1 is not supported");
                return false;
            }
        }
    } else {
        if (!scan_axes(n, "scan_input_axes", a->scan_input_axes, a->has_scan_input_axes, s->M, ranks, s->in_axis, d) ||
            !scan_dirs(n, "scan_input_directions", a->scan_input_directions, a->has_scan_input_directions, s->M, s->in_rev, d) ||
            !scan_dirs(n, "scan_output_directions", a->scan_output_directions, a->has_scan_output_directions, s->K, s->out_rev, d))
            return false;
        /* output axes count in the output's rank, known once the body is inferred */
        AttrInts oa = a->scan_output_axes;
        bool has_oa = a->has_scan_output_axes;
        if (has_oa && oa.n != s->K) { diag_error(d, n, "scan_output_axes has %d entries, expected %d", oa.n, s->K); return false; }
        for (int k = 0; k < s->K; k++) {
            const Value *y = b->outputs.items[s->N + k];
            s->out_axis[k] = has_oa ? (int)oa.v[k] : 0;
            if (y->rank >= 0 && !axis_norm(has_oa ? oa.v[k] : 0, y->rank + 1, &s->out_axis[k])) {
                diag_error(d, n, "scan_output_axes[%d] is out of range", k);
                return false;
            }
        }
    }
    s->T = n->in[s->first + s->N]->dims[s->in_axis[0]];
    for (int m = 1; m < s->M; m++)
        if (n->in[s->first + s->N + m]->dims[s->in_axis[m]] != s->T) {
            diag_error(d, n, "the scan inputs have different sequence lengths");
            return false;
        }
    return true;
}

/* v's shape without axis `axis` (and without axis 0 too when `batch`). */
static void drop_axis(const Value *v, int axis, bool batch, int *rank, int64_t *dims) {
    *rank = 0;
    for (int i = 0; i < v->rank; i++)
        if (i != axis && !(batch && i == 0)) dims[(*rank)++] = v->dims[i];
}

bool infer_scan(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    ScanInfo s;
    if (!scan_info(n, &s, d)) return false;
    Graph *b = node_attrs(n, scan)->body;
    int r;
    int64_t dims[MAX_RANK + 1];
    for (int j = 0; j < s.N; j++) {
        Value *x = n->in[s.first + j];
        drop_axis(x, -1, s.batch, &r, dims);
        Value tmp = *x;
        set_out(&tmp, x->dtype, r, dims);
        if (!bind_input(n, b, j, &tmp, false, d)) return false;
    }
    for (int m = 0; m < s.M; m++) {
        Value *x = n->in[s.first + s.N + m];
        drop_axis(x, s.in_axis[m], s.batch, &r, dims);
        Value tmp = *x;
        set_out(&tmp, x->dtype, r, dims);
        if (!bind_input(n, b, s.N + m, &tmp, false, d)) return false;
    }
    if (!run_sub(n, b, s.first + s.N + s.M, d) || !scan_info(n, &s, d)) return false; /* output axes against the inferred body */
    for (int j = 0; j < s.N; j++) {
        const Value *x = n->in[s.first + j];
        if (!check_carried(n, b->inputs.items[j], b->outputs.items[j], j, d)) return false;
        set_out(n->out[j], x->dtype, x->rank, x->dims);
    }
    for (int k = 0; k < s.K; k++) {
        const Value *y = b->outputs.items[s.N + k];
        int rank = y->rank + 1 + s.batch, axis = s.out_axis[k];
        if (rank > MAX_RANK) { diag_error(d, n, "scan output %d has too many dimensions", k); return false; }
        int q = 0;
        if (s.batch) dims[q++] = 1;
        for (int i = 0; i < y->rank; i++) {
            if (q == axis) dims[q++] = s.T;
            dims[q++] = y->dims[i];
        }
        if (q == axis) dims[q++] = s.T;
        set_out(n->out[s.N + k], y->dtype, rank, dims);
    }
    return true;
}
