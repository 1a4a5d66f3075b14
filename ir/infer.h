/* infer.h: the shape rules, declared from the op table's rows (each in its
 * op family's file), and the helpers they share (ir/infer.c); not for use
 * outside ir/. */
#ifndef KILN_INFER_H
#define KILN_INFER_H

#include "ir.h"

/* Every shape rule ops.def names (one declaration per row; repeats agree). */
#define OP(id, name, in_min, in_max, out_min, out_max, flags, infer, lower, batch, attrs) bool infer(Graph *, Node *, Diags *);
#include "ops.def"
#undef OP

/* Sets o's dtype and shape. */
void set_out(Value *o, DType dt, int rank, const int64_t *dims);
/* Every input has a known shape and a dtype kiln holds; else a diagnostic. */
bool need_shapes(Node *n, Diags *d);
/* o's size neither overflows nor exceeds 64 GiB; else a diagnostic. */
bool check_size(Node *n, Value *o, Diags *d);
/* v's dtype is a float or a non-bool integer kiln holds; else a diagnostic. */
bool float_input(Node *n, Value *v, Diags *d);
/* Integer list from the parsed attribute attr (when opset < since; has: the
 * node carries it) or constant input idx. */
bool ints_from(Node *n, AttrInts attr, bool has, int idx, int since, int64_t *out, int *count, bool *present, Diags *d);
/* The parsed integer list `list` of exactly `want` values (has: the node
 * carries it; name: the attribute's, for the diagnostic); all dflt when absent.
 * ATTR_LIST(a, f) passes field f of the parsed set a as name, list, has. */
bool attr_ints(const Node *n, const char *name, AttrInts list, bool has, int64_t *out, int want, int64_t dflt, Diags *d);
#define ATTR_LIST(a, f) #f, (a)->f, (a)->has_##f

#endif
