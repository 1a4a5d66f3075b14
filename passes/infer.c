/* infer.c (pass "infer"): types and shapes of every value, and constant
 * folding: graph_infer (ir/infer_graph.c) over the top graph, with the
 * services the pipeline installed (folding through the Kir interpreter). */
#include "passes.h"

bool pass_infer(Graph *g, Diags *d) { return graph_infer(g, d); }
