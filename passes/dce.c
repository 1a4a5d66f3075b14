/* dce.c (pass "dce"): dead-code elimination (graph_dce, ir/ir.c).
 *
 * Marks live values backwards from the graph outputs: a node is live when one of
 * its outputs is live and not already a constant (constants need no code).
 * Dead nodes are removed and unreferenced values dropped. */
#include "passes.h"

bool pass_dce(Graph *g, Diags *d) {
    (void)d;
    graph_dce(g);
    return true;
}
