/* verify.c: the invariants every pass keeps.
 *
 * Nodes are in topological order (every input is a graph input, a constant, or
 * an output of an earlier node), each output names its producer, every value
 * used has a dtype and a shape once inference ran, and arities match ops.def. */
#include "ir.h"

bool ir_verify(const Graph *g, Diags *d) {
    int errors = d->errors;
    for (int i = 0; i < g->values.n; i++) ((Value *)g->values.items[i])->id = 0;
    for (int i = 0; i < g->values.n; i++) {
        Value *v = g->values.items[i];
        if (!v->producer) v->id = 1;
    }
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        const OpInfo *op = &op_table[n->op];
        if (n->n_in > op->in_max || n->n_out > op->out_max) diag_error(d, n, "verifier: arity out of range");
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] && !n->in[j]->id && !n->in[j]->data)
                diag_error(d, n, "verifier: input '%s' is used before it is defined", n->in[j]->name);
        for (int j = 0; j < n->n_out; j++) {
            Value *o = n->out[j];
            if (!o || o->producer != n) { diag_error(d, n, "verifier: output %d does not name this node as producer", j); continue; }
            if (o->id) diag_error(d, n, "verifier: output '%s' is defined twice", o->name);
            o->id = 1;
        }
    }
    for (int i = 0; i < g->outputs.n; i++) {
        Value *v = g->outputs.items[i];
        if (!v->id && !v->data) diag_error(d, NULL, "verifier: graph output '%s' is never defined", v->name);
    }
    return d->errors == errors;
}
