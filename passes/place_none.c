/* place_none.c: the place pass of libkilnc (driver/dyn.c). An executable that
 * specializes its model when it runs plans no expert placement (the plan only
 * predicts; the code does not depend on it), so it carries neither the
 * placement pass nor the target and profile readers (and their JSON library). */
#include "passes.h"

bool pass_place(Graph *g, const PassOpts *o, Diags *d) {
    (void)g;
    if (o->place && o->place->target) {
        diag_error(d, NULL, "internal error: expert placement is not part of an executable's run-time compiler");
        return false;
    }
    return true;
}
