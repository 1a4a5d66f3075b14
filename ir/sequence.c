/* sequence.c: ONNX sequences, built at compile time.
 *
 * A sequence value holds no data of its own: it is the list of the tensor
 * values it contains (Value.elems), known while shapes are inferred. The ops
 * that build one (SequenceEmpty, SequenceConstruct, SequenceInsert,
 * SequenceErase: positions must be constants) only make a new list; the ops
 * that read one are checked here and rewritten by the canonicalize pass
 * (passes/canonicalize.c) into tensor ops on its elements: SequenceAt into
 * an Identity of the element (no copy), SequenceLength into a constant,
 * ConcatFromSequence into a Concat of the elements (or, with new_axis, a
 * concatenation along a new axis), SplitToSequence into a split whose outputs
 * are the elements. Once every reader is rewritten nothing uses the sequence,
 * and dead-code elimination drops it and the nodes that built it. A sequence
 * that is a graph input or output becomes a run of tensor inputs or outputs
 * (the input's tensors' shapes come with --shape NAME=[...]); SequenceMap is
 * unrolled, a copy of its body per position, and so is a Loop that carries a
 * sequence. Optionals are known the same way: present (Value.opt_elem, a
 * tensor or a sequence) or absent; OptionalHasElement folds to a constant and
 * OptionalGetElement becomes its element. A sequence or optional that would be
 * an If result is refused with a message. The two ops that still reach code,
 * ConcatFromSequence with new_axis and SplitToSequence, are lowered in
 * codegen/sequence.c. */
#include "infer.h"

#include <string.h>

static bool is_seq_op(OpKind op) { return (op_table[op].flags & F_SEQ) != 0; }
static bool alias_optional(Node *n);

static Value *seq_input(Node *n, int i, Diags *d) {
    Value *v = node_input(n, i);
    if (!v || !v->is_seq) {
        diag_error(d, n, "input %d must be a sequence", i);
        return NULL;
    }
    if (v->dtype == DT_UNDEF && v->n_elems > 0) v->dtype = v->elems[0]->dtype; /* a SequenceMap's, typed by now */
    return v;
}

void value_set_sequence(Graph *g, Value *o, DType dt, Value *const *elems, int count) {
    o->is_seq = true;
    o->dtype = dt;
    o->rank = 0;
    o->n_elems = count;
    o->elems = arena_alloc(g->arena, (size_t)(count + 1) * sizeof *o->elems);
    if (count) memcpy(o->elems, elems, (size_t)count * sizeof *elems);
}

/* A position input (constant; negative counts from the end); absent: `dflt`. */
bool sequence_position(const Node *n, int i, int count, bool insert, int *pos, Diags *d) {
    Value *v = node_input(n, i);
    int64_t p = insert ? count : count - 1;
    if (v) {
        if (!v->data) {
            diag_need(d, n, v, "input '%s' must be a constant: kiln builds sequences at compile time", v->name);
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
        DType dt = (DType)node_attrs(n, sequence)->dtype;
        if (!dtype_size(dt)) { diag_error(d, n, "dtype %d is not supported", (int)dt); return false; }
        value_set_sequence(g, out, dt, elems, 0);
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
        value_set_sequence(g, out, n->in[0]->dtype, n->in, n->n_in);
        return true;
    case OP_SEQUENCE_INSERT: {
        Value *t = n->in[1];
        if (t->is_seq || t->rank < 0 || t->dtype != s->dtype) { diag_error(d, n, "inserts a tensor of the sequence's dtype %s", dtype_name(s->dtype)); return false; }
        if (count >= 64) { diag_error(d, n, "sequences of more than 64 tensors are not supported"); return false; }
        if (!sequence_position(n, 2, count, true, &pos, d)) return false;
        memmove(elems + pos + 1, elems + pos, (size_t)(count - pos) * sizeof *elems);
        elems[pos] = t;
        value_set_sequence(g, out, s->dtype, elems, count + 1);
        return true;
    }
    case OP_SEQUENCE_ERASE:
        if (!sequence_position(n, 1, count, false, &pos, d)) return false;
        memmove(elems + pos, elems + pos + 1, (size_t)(count - pos - 1) * sizeof *elems);
        value_set_sequence(g, out, s->dtype, elems, count - 1);
        return true;
    case OP_SEQUENCE_AT:
        if (!sequence_position(n, 1, count, false, &pos, d)) return false;
        return diag_rewrite(d, g, n); /* an Identity of the element: passes/canonicalize.c */
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
    if (n->in[0]->is_seq && n->in[0]->n_elems == 0) { diag_error(d, n, "concatenates an empty sequence"); return false; }
    /* the elements become the inputs, and without new_axis the node a Concat: passes/canonicalize.c */
    const attrs_concat_from_sequence *a = node_attrs(n, concat_from_sequence);
    if (n->in[0]->is_seq || a->new_axis == 0) return diag_rewrite(d, g, n);
    if (!need_shapes(n, d)) return false;
    const Value *x = n->in[0];
    int axis;
    if (!a->has_axis || !axis_norm(a->axis, x->rank + 1, &axis) || x->rank + 1 > MAX_RANK) {
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
    const attrs_split_to_sequence *a = node_attrs(n, split_to_sequence);
    if (!axis_norm(a->axis, x->rank, axis)) { diag_error(d, n, "axis is out of range for rank %d", x->rank); return false; }
    int64_t dim = x->dims[*axis];
    const Value *sp = node_input(n, 1);
    *squeeze = false;
    int k = 0;
    if (!sp) {
        *squeeze = a->keepdims == 0;
        if (dim > 64) { diag_error(d, n, "splits into %lld tensors; at most 64 are supported", (long long)dim); return false; }
        for (; k < dim; k++) sizes[k] = 1;
    } else {
        if (!sp->data) { diag_need(d, n, sp, "input '%s' must be a constant: kiln builds sequences at compile time", sp->name); return false; }
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
    if (!node_attrs(n, split_to_sequence)->has_kiln_parts) return diag_rewrite(d, g, n); /* the outputs become the elements: passes/canonicalize.c */
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

/* ---- unrolling a subgraph: SequenceMap, and a Loop that carries a sequence ---- */

static bool makes_sequences(const Graph *branch) {
    for (int i = 0; branch && i < branch->nodes.n; i++)
        if (is_seq_op(((Node *)branch->nodes.items[i])->op)) return true;
    return false;
}

/* Is n an If that if_inline replaces: one whose branches make a sequence or an optional? */
bool if_inlined(const Node *n) {
    return n->op == OP_IF && (makes_sequences(node_attrs(n, if)->then_branch) || makes_sequences(node_attrs(n, if)->else_branch));
}

/* SequenceMap: its body applied to each position of the input sequences (the
 * other inputs as they are): checked here, unrolled by the canonicalize pass
 * (a copy of the body per position, the outputs SequenceConstructs of the
 * copies' results). */
bool infer_sequence_map(Graph *g, Node *n, Diags *d) {
    Graph *b = node_attrs(n, sequence_map)->body;
    if (!b || b->inputs.n != n->n_in || b->outputs.n != n->n_out) {
        diag_error(d, n, "needs a 'body' graph with one input per node input and one output per node output");
        return false;
    }
    Value *s0 = seq_input(n, 0, d);
    if (!s0) return false;
    int k = s0->n_elems;
    for (int j = 0; j < n->n_in; j++) {
        if (!n->in[j]) { diag_error(d, n, "input %d is missing", j); return false; }
        if (n->in[j]->is_seq && n->in[j]->n_elems != k) {
            diag_error(d, n, "input '%s' has %d tensors, the first sequence %d", n->in[j]->name, n->in[j]->n_elems, k);
            return false;
        }
    }
    return graph_parse_attrs(b, d) && diag_rewrite(d, g, n); /* unrolled by the canonicalize pass, which reads the body's nodes */
}

/* Does the Loop carry a sequence (a state, a captured value, a body input)? */
bool loop_carries_sequence(const Node *n, const Graph *b) {
    for (int j = 2; j < n->n_in; j++)
        if (n->in[j] && (n->in[j]->is_seq || n->in[j]->is_opt)) return true;
    for (int j = 0; j < b->inputs.n; j++)
        if (((Value *)b->inputs.items[j])->is_seq || ((Value *)b->inputs.items[j])->is_opt) return true;
    return false;
}

/* Does the body's condition stay true: its condition input passed through
 * (Identity), or a true constant? */
static bool cond_stays_true(const Graph *b) {
    const Value *co = b->outputs.items[0];
    while (co->producer && co->producer->op == OP_IDENTITY && co->producer->n_in == 1) co = co->producer->in[0];
    return co == b->inputs.items[1] || (co->data && value_const_int(co, 0) != 0);
}

/* Can loop_unroll take it: a constant trip count (or a false constant
 * condition), at most 64 iterations, and a condition that stays true? */
bool loop_unrollable(const Node *n, const Graph *b) {
    const Value *M = n->in[0], *cond = n->in[1];
    if (cond && (!cond->data || value_numel(cond) != 1)) return false;
    if (cond && !value_const_int(cond, 0)) return true;
    if (!M || !M->data || value_numel(M) != 1 || value_const_int(M, 0) > 64) return false;
    return cond_stays_true(b);
}

bool loop_unroll_check(const Node *n, const Graph *b, int64_t *trip_out, Diags *d) {
    int formal = n->n_in - b->captures, N = formal - 2, K = n->n_out - N;
    Value *M = n->in[0], *cond = n->in[1];
    if (!M || !M->data || value_numel(M) != 1) {
        if (M) diag_need(d, n, M, "input '%s' must be a constant: kiln unrolls a Loop that carries a sequence", M->name);
        else diag_error(d, n, "input 'M' must be given: kiln unrolls a Loop that carries a sequence");
        return false;
    }
    if (cond && !cond->data) {
        diag_need(d, n, cond, "input '%s' must be a constant: kiln unrolls a Loop that carries a sequence", cond->name);
        return false;
    }
    int64_t trip = cond && !value_const_int(cond, 0) ? 0 : value_const_int(M, 0);
    if (trip < 0) trip = 0;
    if (trip > 64) { diag_error(d, n, "runs %lld times: kiln unrolls a Loop that carries a sequence, up to 64 times", (long long)trip); return false; }
    if (K > 0 && trip == 0) { diag_error(d, n, "has scan outputs but runs no iteration"); return false; }
    if (!cond_stays_true(b)) {
        diag_error(d, n, "its body's condition may turn false: kiln unrolls a Loop that carries a sequence, which needs the condition to stay true");
        return false;
    }
    *trip_out = trip;
    return true;
}

/* Identity of a sequence: the same list (of an optional: alias_optional). */
bool sequence_identity(Graph *g, Node *n) {
    if (alias_optional(n)) return true;
    if (n->op != OP_IDENTITY || !n->in[0]->is_seq) return false;
    value_set_sequence(g, n->out[0], n->in[0]->dtype, n->in[0]->elems, n->in[0]->n_elems);
    return true;
}

/* Optional, OptionalHasElement, OptionalGetElement (and Identity of an
 * optional): the optional is known at compile time, present or not. */
bool infer_optional(Graph *g, Node *n, Diags *d) {
    Value *x = node_input(n, 0), *out = n->out[0];
    switch (n->op) {
    case OP_OPTIONAL:
        out->is_opt = true;
        out->opt_elem = x;
        if (x) {
            out->opt_kind = x->is_seq ? 3 : 1;
            out->dtype = x->dtype;
        } else { /* absent: of the type the attribute gives ([kind, dtype]) */
            AttrInts t = node_attrs(n, optional)->type;
            bool ok = t.n == 2 && (t.v[0] == 1 || t.v[0] == 3);
            out->opt_kind = ok ? (int)t.v[0] : 1;
            out->dtype = ok ? (DType)t.v[1] : DT_F32;
        }
        return true;
    case OP_OPTIONAL_HAS_ELEMENT: {
        set_out(out, DT_BOOL, 0, NULL);
        uint8_t *p = arena_alloc(g->arena, 1);
        *p = x && (!x->is_opt || x->opt_elem != NULL);
        out->data = p;
        return true;
    }
    case OP_OPTIONAL_GET_ELEMENT: {
        Value *e = x && x->is_opt ? x->opt_elem : x;
        if (!e) { diag_error(d, n, "input '%s' is an absent optional: it has no element to get", x ? x->name : "?"); return false; }
        if (e->is_seq) {
            value_set_sequence(g, out, e->dtype, e->elems, e->n_elems);
            return true;
        }
        return diag_rewrite(d, g, n); /* an Identity of the element: passes/canonicalize.c */
    }
    default:
        return false;
    }
}

/* Identity of a sequence or an optional: the same list, the same optional. */
static bool alias_optional(Node *n) {
    if (n->op != OP_IDENTITY || !n->in[0]->is_opt) return false;
    Value *o = n->out[0], *x = n->in[0];
    o->is_opt = true;
    o->opt_kind = x->opt_kind;
    o->opt_elem = x->opt_elem;
    o->dtype = x->dtype;
    return true;
}

/* Sequence inputs reach only the sequence ops (before n's shape rule). */
bool sequence_check(const Node *n, Diags *d) {
    if (is_seq_op(n->op) || (n->op == OP_IDENTITY && (n->in[0]->is_seq || n->in[0]->is_opt)) || n->op == OP_LOOP) return true; /* a Loop: loop_unroll */
    if (if_inlined(n)) return true; /* its captured sequences and optionals are mapped */
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->is_opt) {
            diag_error(d, n, "input '%s' is an optional: %s takes tensors (read it with OptionalGetElement)", n->in[i]->name, op_table[n->op].name);
            return false;
        }
    for (int i = 0; i < n->n_in; i++)
        if (n->in[i] && n->in[i]->is_seq) {
            diag_error(d, n, "input '%s' is a sequence: %s takes tensors (kiln's sequences are lists known at compile time, read by the sequence ops)",
                       n->in[i]->name, op_table[n->op].name);
            return false;
        }
    return true;
}
