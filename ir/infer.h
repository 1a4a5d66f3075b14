/* infer.h: the shape rules, declared from the op table's rows, and helpers
 * they share; not for use outside ir/. */
#ifndef KILN_INFER_H
#define KILN_INFER_H

#include "ir.h"

/* Every shape rule ops.def names (one declaration per row; repeats agree). */
#define OP(id, name, in_min, in_max, out_min, out_max, flags, infer, lower, batch) bool infer(Graph *, Node *, Diags *);
#include "ops.def"
#undef OP

/* Sets o's dtype and shape. */
void set_out(Value *o, DType dt, int rank, const int64_t *dims);
/* Every input has a known shape and a dtype kiln holds; else a diagnostic. */
bool need_shapes(Node *n, Diags *d);

#endif
