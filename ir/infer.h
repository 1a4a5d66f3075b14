/* infer.h: helpers the shape rules share (ir/infer.c, ir/infer_extra.c,
 * ir/moe.c); not for use outside ir/. */
#ifndef KILN_INFER_H
#define KILN_INFER_H

#include "ir.h"

/* Sets o's dtype and shape. */
void set_out(Value *o, DType dt, int rank, const int64_t *dims);
/* Every input has a known shape and a dtype kiln holds; else a diagnostic. */
bool need_shapes(Node *n, Diags *d);

#endif
