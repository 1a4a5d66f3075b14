/* ops.c: the IR's column of the op table (ops.def): each op's name, arity,
 * flags and shape rule. The rules are declared from the same rows (infer.h),
 * so a row naming a rule that does not exist fails to compile; the lowering
 * keeps its own column over these rows (codegen/lower.c). */
#include "infer.h"

#include <string.h>

const OpInfo op_table[OP_COUNT] = {
#define OP(id, nm, imin, imax, omin, omax, fl, inf, low, bat, at) [OP_##id] = {nm, imin, imax, omin, omax, fl, inf, AS_##at},
#include "ops.def"
#undef OP
};

OpKind op_lookup(const char *name) {
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(op_table[i].name, name) == 0) return (OpKind)i;
    return OP_COUNT;
}
