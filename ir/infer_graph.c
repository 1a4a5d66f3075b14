/* infer_graph.c: types and shapes of every value, and constant folding (the
 * infer pass, passes/infer.c, and the shape rules of control nodes, which infer
 * their subgraphs).
 *
 * Visits nodes in topological order; for each it checks the arity against the op
 * table, runs the op's shape rule (ir/<family>.c), and, when every input is a
 * constant, folds the node through the graph's services (the compiler's runs the
 * node's own lowering in the Kir interpreter, codegen/kir_interp.c), so later shape rules see constants where exporters
 * compute shapes (Shape -> Gather -> Concat -> Reshape). Folding runs at every
 * -O level because static shapes depend on it. Shape rules do not change the
 * graph's structure: a rule whose node must first take another form (a Loop
 * unrolled, a SequenceAt become an Identity, ...) says so (diag_rewrite) and
 * the walk stops; the canonicalize pass rewrites the node and walks again. */
#include "ir.h"

#include <string.h>

static bool check_arity(Node *n, Diags *d) {
    const OpInfo *op = &op_table[n->op];
    if (n->n_in < op->in_min || n->n_in > op->in_max) {
        diag_error(d, n, "takes %d to %d inputs, got %d", op->in_min, op->in_max, n->n_in);
        return false;
    }
    if (n->n_out < op->out_min || n->n_out > op->out_max) {
        diag_error(d, n, "has %d to %d outputs, got %d", op->out_min, op->out_max, n->n_out);
        return false;
    }
    for (int i = 0; i < op->in_min; i++)
        if (!n->in[i]) { diag_error(d, n, "required input %d is missing", i); return false; }
    for (int i = 0; i < n->n_out; i++)
        if (!n->out[i]) { diag_error(d, n, "output %d is missing", i); return false; }
    return true;
}

bool graph_check_arity(const Graph *g, Diags *d) {
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!check_arity(n, d)) return false;
        for (int j = 0; j < n->n_attr; j++)
            if (n->attrs[j].kind == ATTR_GRAPH && n->attrs[j].g && !graph_check_arity(n->attrs[j].g, d)) return false;
    }
    return true;
}

/* A value whose size is known only at run time can only be a graph output. */
static bool dynamic_check(const Node *n, Diags *d) {
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->dyn) {
            const Node *p = n->in[i]->producer;
            diag_need(d, n, n->in[i], "input '%s' (from %s) has a size known only at run time: only an executable built for "
                      "this machine takes that; otherwise such values may only be graph outputs (--bind the inputs that decide it, if "
                      "they are graph inputs)", n->in[i]->name, p ? op_table[p->op].name : "?");
            return false;
        }
    return true;
}

/* String tensors go only through the ops made for them and views of them. */
static bool string_check(const Node *n, Diags *d) {
    if (n->op == OP_CAST || n->op == OP_CAST_LIKE || n->op == OP_STRING_NORMALIZER || (op_table[n->op].flags & F_VIEW)) return true;
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->dtype == DT_STRING) {
            diag_error(d, n, "input '%s' is a string tensor: kiln takes strings in Cast, CastLike, StringNormalizer and the "
                       "ops that only reshape (Identity, Reshape, Squeeze, Unsqueeze, Flatten)", n->in[i]->name);
            return false;
        }
    return true;
}

/* Strings made at run time live in the context's heap, not in constants. */
static bool has_strings(const Node *n) {
    for (int i = 0; i < n->n_in; i++) if (n->in[i] && n->in[i]->dtype == DT_STRING) return true;
    for (int i = 0; i < n->n_out; i++) if (n->out[i] && n->out[i]->dtype == DT_STRING) return true;
    return false;
}

/* A node whose outputs a run already computed (g->bound, driver/dyn.c):
 * they become constants of the sizes that run found. */
static bool apply_bound(Graph *g, Node *n) {
    if (!g->nbound || n->n_out == 0) return false;
    const Bound *b[16];
    if (n->n_out > 16) return false;
    for (int i = 0; i < n->n_out; i++) {
        b[i] = NULL;
        for (int j = 0; j < g->nbound && !b[i]; j++)
            if (n->out[i] && strcmp(g->bound[j].name, n->out[i]->name) == 0) b[i] = &g->bound[j];
        if (!b[i]) return false;
    }
    for (int i = 0; i < n->n_out; i++) {
        Value *v = n->out[i];
        v->dtype = b[i]->dtype;
        v->rank = b[i]->rank;
        memcpy(v->dims, b[i]->dims, sizeof v->dims);
        v->data = b[i]->data;
        v->dyn = 0;
    }
    return true;
}

/* A subgraph of control node n wanted a value computed at run time: what the
 * graph can give is n's trip count or condition (in[0], in[1]), which
 * makes a Loop unrollable or an If's branch known (driver/dyn.c). */
static void need_control_input(const Graph *g, const Node *n, Diags *d) {
    for (int i = 0; i < g->values.n; i++)
        if (g->values.items[i] == d->need) return; /* one of the graph's own */
    d->need = NULL;
    for (int i = 0; i < 2 && i < n->n_in && !d->need; i++)
        if (n->in[i] && !n->in[i]->data) d->need = n->in[i];
}

/* Every output of n is a constant already (folded by an earlier walk, which
 * the canonicalize pass and the infer pass after it make): its rule is not run
 * again, as it would mark a NonZero's folded output as sized at run time. */
static bool folded(const Node *n) {
    if (n->n_out == 0 || n->op == OP_FUSED || (op_table[n->op].flags & (F_MOE | F_CONTROL))) return false;
    for (int j = 0; j < n->n_out; j++)
        if (n->out[j] && (!n->out[j]->data || n->out[j]->is_seq || n->out[j]->is_opt)) return false;
    return true;
}

bool graph_infer(Graph *g, Diags *d) {
    const IrServices *svc = graph_services(g);
    if (!graph_toposort(g, d)) return false;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!node_parse_attrs(g, n, d)) return false;
        if (apply_bound(g, n) || folded(n)) continue;
        if (!check_arity(n, d) || !sequence_check(n, d)) return false;
        if (sequence_identity(g, n)) continue;
        if (!dynamic_check(n, d) || !string_check(n, d)) return false;
        if (!op_table[n->op].infer(g, n, d)) {
            if (d->rewrite) return false; /* the canonicalize pass rewrites it first */
            if (!g->parent && d->run_time && (op_table[n->op].flags & F_CONTROL)) need_control_input(g, n, d);
            return false;
        }
        /* MoE layers run to be profiled; control flow runs its subgraphs at run time */
        bool all_const = n->op != OP_FUSED && !(op_table[n->op].flags & (F_MOE | F_CONTROL)) && !has_strings(n);
        for (int j = 0; j < n->n_in && all_const; j++)
            if (n->in[j] && !n->in[j]->data) all_const = false;
        bool done = true;
        for (int j = 0; j < n->n_out; j++) if (!n->out[j]->data) done = false;
        if (all_const && !done && svc && svc->fold && !svc->fold(g, n, d)) return false;
    }
    for (int i = 0; i < g->outputs.n; i++)
        if (g->parent && ((Value *)g->outputs.items[i])->dyn) {
            diag_error(d, NULL, "subgraph output '%s' has a size known only at run time: kiln supports such values as graph outputs only",
                       ((Value *)g->outputs.items[i])->name);
            return false;
        }
    for (int i = 0; i < g->outputs.n; i++)
        if (g->parent && ((Value *)g->outputs.items[i])->is_seq) {
            diag_error(d, NULL, "subgraph output '%s' is a sequence: kiln's subgraphs take and give tensors", ((Value *)g->outputs.items[i])->name);
            return false;
        }
    return true;
}
