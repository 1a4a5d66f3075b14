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
    axis_norm(node_attrs(n, concat_from_sequence)->axis, y->rank, &axis);
    int64_t words[KILN_PWORDS_concat + 64];
    kiln_p_concat *p = (kiln_p_concat *)words;
    p->esize = dtype_size(y->dtype);
    outer_inner(y, axis, &p->outer, &p->inner); /* the new axis is 1 long in each element */
    p->n = n->n_in;
    int bufs[65];
    bufs[0] = lower_buf(l, y);
    for (int i = 0; i < n->n_in; i++) { p->len[i] = 1; bufs[1 + i] = lower_buf(l, n->in[i]); }
    LOWER_CALL_TAIL(l, concat, 1 + n->n_in, bufs, p, n->n_in);
    return true;
}

/* SplitToSequence: a split whose outputs are the elements (squeezed or not:
 * the same bytes). */
bool lower_split_to_sequence(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int axis, parts;
    bool squeeze;
    int64_t sizes[64], words[KILN_PWORDS_split + 64];
    kiln_p_split *p = (kiln_p_split *)words;
    if (!split_to_sequence_sizes(n, x, &axis, sizes, &parts, &squeeze, l->d)) return false;
    p->esize = dtype_size(x->dtype);
    outer_inner(x, axis, &p->outer, &p->inner);
    p->n = parts;
    int bufs[65];
    for (int i = 0; i < parts; i++) { p->len[i] = sizes[i]; bufs[i] = lower_buf(l, n->out[i]); }
    bufs[parts] = lower_buf(l, x);
    LOWER_CALL_TAIL(l, split, 1 + parts, bufs, p, parts);
    return true;
}
