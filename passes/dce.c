/* dce.c (pass "dce"): dead-code elimination.
 *
 * Marks live values backwards from the graph outputs: a node is live when one of
 * its outputs is live and not already a constant (constants need no code).
 * Dead nodes are removed and unreferenced values dropped. */
#include "passes.h"

bool pass_dce(Graph *g, Diags *d) {
    (void)d;
    for (int i = 0; i < g->values.n; i++) ((Value *)g->values.items[i])->id = 0;
    for (int i = 0; i < g->outputs.n; i++) ((Value *)g->outputs.items[i])->id = 1;
    for (int i = g->nodes.n - 1; i >= 0; i--) {
        Node *n = g->nodes.items[i];
        bool live = false;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j]->id && !n->out[j]->data) live = true;
        n->dead = !live;
        if (live)
            for (int j = 0; j < n->n_in; j++) if (n->in[j]) n->in[j]->id = 1;
    }
    graph_compact(g);
    return true;
}
