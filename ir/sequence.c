/* sequence.c: ONNX sequences, built at compile time.
 *
 * A sequence value holds no data of its own: it is the list of the tensor
 * values it contains (Value.elems), known while shapes are inferred. The ops
 * that build one (SequenceEmpty, SequenceConstruct, SequenceInsert,
 * SequenceErase: positions must be constants) only make a new list; the ops
 * that read one are rewritten into tensor ops on its elements: SequenceAt into
 * an Identity of the element (no copy), SequenceLength into a constant,
 * ConcatFromSequence into a Concat of the elements (or, with new_axis, a
 * concatenation along a new axis), SplitToSequence into a split whose outputs
 * are the elements. Once every reader is rewritten nothing uses the sequence,
 * and dead-code elimination drops it and the nodes that built it. A sequence
 * that would cross the graph's boundary (a graph input or output, a loop
 * state, an If result) is refused with a message: its length would be known
 * only at run time. */
#include "infer.h"

#include <string.h>

static bool is_seq_op(OpKind op) { return (op_table[op].flags & F_SEQ) != 0; }

static Value *seq_input(Node *n, int i, Diags *d) {
    Value *v = node_input(n, i);
    if (!v || !v->is_seq) {
        diag_error(d, n, "input %d must be a sequence (one built in the graph: sequence inputs are not supported)", i);
        return NULL;
    }
    return v;
}

static void set_seq(Graph *g, Value *o, DType dt, Value *const *elems, int count) {
    o->is_seq = true;
    o->dtype = dt;
    o->rank = 0;
    o->n_elems = count;
    o->elems = arena_alloc(g->arena, (size_t)(count + 1) * sizeof *o->elems);
    if (count) memcpy(o->elems, elems, (size_t)count * sizeof *elems);
}

/* A position input (constant; negative counts from the end); absent: `dflt`. */
static bool position(Node *n, int i, int count, bool insert, int *pos, Diags *d) {
    Value *v = node_input(n, i);
    int64_t p = insert ? count : count - 1;
    if (v) {
        if (!v->data) {
            diag_error(d, n, "input '%s' must be a constant: kiln builds sequences at compile time", v->name);
            return false;
        }
        if (value_numel(v) != 1 || dtype_is_float(v->dtype)) { diag_error(d, n, "the position must be one integer"); return false; }
        p = value_const_int(v, 0);
        if (p < 0) p += count;
    }
    if (p < 0 || p > count - (insert ? 0 : 1)) { diag_error(d, n, "position %lld is out of range for a sequence of %d", (long long)p, count); return false; }
    *pos = (int)p;
    return true;
}

bool infer_sequence(Graph *g, Node *n, Diags *d) {
    Value *out = n->out[0], *s = NULL, *elems[65];
    int count = 0, pos;
    if (n->op != OP_SEQUENCE_EMPTY && n->op != OP_SEQUENCE_CONSTRUCT) {
        if (!(s = seq_input(n, 0, d))) return false;
        count = s->n_elems;
        memcpy(elems, s->elems, (size_t)count * sizeof *elems);
    }
    switch (n->op) {
    case OP_SEQUENCE_EMPTY: {
        DType dt = (DType)node_attr_int(n, "dtype", DT_F32);
        if (!dtype_size(dt)) { diag_error(d, n, "dtype %d is not supported", (int)dt); return false; }
        set_seq(g, out, dt, elems, 0);
        return true;
    }
    case OP_SEQUENCE_CONSTRUCT:
        for (int i = 0; i < n->n_in; i++) {
            Value *v = n->in[i];
            if (!v || v->is_seq || v->rank < 0 || v->dtype != n->in[0]->dtype) {
                diag_error(d, n, "takes tensors of one dtype with known shapes");
                return false;
            }
        }
        set_seq(g, out, n->in[0]->dtype, n->in, n->n_in);
        return true;
    case OP_SEQUENCE_INSERT: {
        Value *t = n->in[1];
        if (t->is_seq || t->rank < 0 || t->dtype != s->dtype) { diag_error(d, n, "inserts a tensor of the sequence's dtype %s", dtype_name(s->dtype)); return false; }
        if (count >= 64) { diag_error(d, n, "sequences of more than 64 tensors are not supported"); return false; }
        if (!position(n, 2, count, true, &pos, d)) return false;
        memmove(elems + pos + 1, elems + pos, (size_t)(count - pos) * sizeof *elems);
        elems[pos] = t;
        set_seq(g, out, s->dtype, elems, count + 1);
        return true;
    }
    case OP_SEQUENCE_ERASE:
        if (!position(n, 1, count, false, &pos, d)) return false;
        memmove(elems + pos, elems + pos + 1, (size_t)(count - pos - 1) * sizeof *elems);
        set_seq(g, out, s->dtype, elems, count - 1);
        return true;
    case OP_SEQUENCE_AT:
        if (!position(n, 1, count, false, &pos, d)) return false;
        n->op = OP_IDENTITY; /* the element itself */
        n->in[0] = elems[pos];
        n->n_in = 1;
        return op_table[OP_IDENTITY].infer(g, n, d);
    case OP_SEQUENCE_LENGTH: {
        int64_t len = count;
        set_out(out, DT_I64, 0, NULL);
        int64_t *p = arena_alloc(g->arena, sizeof len);
        *p = len;
        out->data = p;
        return true;
    }
    default:
        return false;
    }
}

bool infer_concat_from_sequence(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (n->in[0]->is_seq) { /* the elements become the inputs */
        Value *s = n->in[0];
        if (s->n_elems == 0) { diag_error(d, n, "concatenates an empty sequence"); return false; }
        n->in = arena_alloc(g->arena, (size_t)(s->n_elems + 1) * sizeof *n->in);
        memcpy(n->in, s->elems, (size_t)s->n_elems * sizeof *n->in);
        n->n_in = s->n_elems;
    }
    if (node_attr_int(n, "new_axis", 0) == 0) {
        n->op = OP_CONCAT;
        return op_table[OP_CONCAT].infer(g, n, d);
    }
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    int axis;
    if (!node_attr(n, "axis") || !axis_norm(node_attr_int(n, "axis", 0), x->rank + 1, &axis) || x->rank + 1 > MAX_RANK) {
        diag_error(d, n, "needs an axis in range for rank %d", x->rank + 1);
        return false;
    }
    for (int i = 1; i < n->n_in; i++)
        if (!value_same_shape(n->in[i], x) || n->in[i]->dtype != x->dtype) {
            diag_error(d, n, "with new_axis, every element must have the first one's type");
            return false;
        }
    int64_t dims[MAX_RANK];
    for (int i = 0, j = 0; i <= x->rank; i++) dims[i] = i == axis ? n->n_in : x->dims[j++];
    set_out(n->out[0], x->dtype, x->rank + 1, dims);
    return true;
}

bool split_to_sequence_sizes(const Node *n, const Value *x, int *axis, int64_t *sizes, int *parts, bool *squeeze, Diags *d) {
    if (!axis_norm(node_attr_int(n, "axis", 0), x->rank, axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t dim = x->dims[*axis];
    const Value *sp = node_input(n, 1);
    *squeeze = false;
    int k = 0;
    if (!sp) {
        *squeeze = node_attr_int(n, "keepdims", 1) == 0;
        if (dim > 64) { diag_error(d, n, "splits into %lld tensors; at most 64 are supported", (long long)dim); return false; }
        for (; k < dim; k++) sizes[k] = 1;
    } else {
        if (!sp->data) { diag_error(d, n, "input '%s' must be a constant: kiln builds sequences at compile time", sp->name); return false; }
        if (dtype_is_float(sp->dtype) || sp->rank > 1) { diag_error(d, n, "split must be an integer scalar or list"); return false; }
        if (sp->rank == 0) {
            int64_t c = value_const_int(sp, 0);
            if (c <= 0) { diag_error(d, n, "split must be positive"); return false; }
            for (int64_t at = 0; at < dim; at += c) {
                if (k == 64) { diag_error(d, n, "splits into more than 64 tensors"); return false; }
                sizes[k++] = at + c <= dim ? c : dim - at;
            }
        } else {
            int64_t sum = 0;
            if (sp->dims[0] > 64) { diag_error(d, n, "splits into more than 64 tensors"); return false; }
            for (; k < sp->dims[0]; k++) {
                sizes[k] = value_const_int(sp, k);
                if (sizes[k] < 0) { diag_error(d, n, "negative split size"); return false; }
                sum += sizes[k];
            }
            if (sum != dim) { diag_error(d, n, "split sizes add up to %lld, not the dimension %lld", (long long)sum, (long long)dim); return false; }
        }
    }
    if (k == 0) { diag_error(d, n, "splits an empty axis into an empty sequence"); return false; }
    *parts = k;
    return true;
}

bool infer_split_to_sequence(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    int axis, parts;
    int64_t sizes[64];
    bool squeeze;
    if (!split_to_sequence_sizes(n, x, &axis, sizes, &parts, &squeeze, d)) return false;
    if (!node_attr(n, "kiln.parts")) { /* first visit: the outputs become the elements */
        Value *s = n->out[0];
        n->out = arena_alloc(g->arena, (size_t)(parts + 1) * sizeof *n->out);
        for (int i = 0; i < parts; i++) {
            Value *e = graph_add_value(g, arena_printf(g->arena, "%s[%d]", s->name, i));
            e->producer = n;
            e->producer_out = i;
            n->out[i] = e;
        }
        n->n_out = parts;
        set_seq(g, s, x->dtype, n->out, parts);
        s->producer = NULL;
        node_add_attr(g, n, "kiln.parts", ATTR_INT)->i = parts;
    }
    if (n->n_out != parts) { diag_error(d, n, "internal: the split changed"); return false; }
    for (int i = 0; i < parts; i++) {
        int64_t dims[MAX_RANK];
        int r = 0;
        for (int j = 0; j < x->rank; j++)
            if (j != axis || !squeeze) dims[r++] = j == axis ? sizes[i] : x->dims[j];
        set_out(n->out[i], x->dtype, r, dims);
    }
    return true;
}

/* Sequence inputs reach only the sequence ops (before n's shape rule). */
bool sequence_check(const Node *n, Diags *d) {
    if (is_seq_op(n->op)) return true;
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->is_seq) {
            diag_error(d, n, "input '%s' is a sequence: %s takes tensors (kiln's sequences are lists known at compile time, read by the sequence ops)",
                       n->in[i]->name, op_table[n->op].name);
            return false;
        }
    return true;
}
