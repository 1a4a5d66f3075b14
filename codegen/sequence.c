/* sequence.c: the lowerings of the sequence ops that reach code (ir/sequence.c
 * rewrites the others into tensor ops, or computes them, at compile time):
 * ConcatFromSequence with new_axis and SplitToSequence, a concatenation and a
 * split whose parts are the sequence's elements. */
#include "kir.h"

/* ConcatFromSequence with new_axis (without, it became a Concat): each element
 * one slice of the new axis. */
bool lower_concat_from_sequence(Lower *l, Node *n) {
    const Value *y = n->out[0];
    int axis;
    axis_norm(node_attr_int(n, "axis", 0), y->rank, &axis);
    int64_t p[4 + 64] = {dtype_size(y->dtype), 0, 0, n->n_in};
    outer_inner(y, axis, &p[1], &p[2]); /* the new axis is 1 long in each element */
    int bufs[65];
    bufs[0] = lower_buf(l, y);
    for (int i = 0; i < n->n_in; i++) { p[4 + i] = 1; bufs[1 + i] = lower_buf(l, n->in[i]); }
    lower_call(l, KILN_K_concat, 1 + n->n_in, bufs, 4 + n->n_in, p);
    return true;
}

/* SplitToSequence: a split whose outputs are the elements (squeezed or not:
 * the same bytes). */
bool lower_split_to_sequence(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int axis, parts;
    bool squeeze;
    int64_t sizes[64], p[4 + 64];
    if (!split_to_sequence_sizes(n, x, &axis, sizes, &parts, &squeeze, l->d)) return false;
    p[0] = dtype_size(x->dtype);
    outer_inner(x, axis, &p[1], &p[2]);
    p[3] = parts;
    int bufs[65];
    for (int i = 0; i < parts; i++) { p[4 + i] = sizes[i]; bufs[i] = lower_buf(l, n->out[i]); }
    bufs[parts] = lower_buf(l, x);
    lower_call(l, KILN_K_split, 1 + parts, bufs, 4 + parts, p);
    return true;
}
