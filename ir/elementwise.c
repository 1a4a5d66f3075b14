/* elementwise.c: the shape rules of the elementwise ops (the F_ELEM rows, Add
 * to CastLike, and Expand), of kiln.Fused, and of Dropout and
 * kiln.DropoutTrain.
 *
 * An elementwise output has the broadcast (numpy) shape of the inputs and
 * their dtype, which must agree (Pow's exponent excepted; Where's condition is
 * bool), except that Cast and CastLike give `to` and the comparisons and logic
 * ops give bool; the tables below say which ops take floats only, bools only,
 * or bool at all. Expand broadcasts input 0 against a constant shape. A
 * kiln.Fused node (the fuse pass's chain of elementwise nodes) infers its body.
 * Dropout is a view unless it trains with a nonzero ratio: then the
 * canonicalize pass makes it kiln.DropoutTrain. The lowerings are in codegen/elementwise.c. */
#include "ir.h"
#include "infer.h"

static bool op_in(OpKind op, const OpKind *list, int n) {
    for (int i = 0; i < n; i++) if (list[i] == op) return true;
    return false;
}

static const OpKind float_only_ops[] = {
    OP_SQRT, OP_EXP, OP_LOG, OP_SIGMOID, OP_TANH, OP_LEAKY_RELU, OP_RECIPROCAL, OP_FLOOR, OP_CEIL, OP_ROUND,
    OP_SIN, OP_COS, OP_TAN, OP_ASIN, OP_ACOS, OP_ATAN, OP_SINH, OP_COSH, OP_ASINH, OP_ACOSH, OP_ATANH,
    OP_SOFTPLUS, OP_SOFTSIGN, OP_HARD_SWISH, OP_ELU, OP_CELU, OP_THRESHOLDED_RELU, OP_SELU, OP_HARD_SIGMOID,
    OP_IS_NAN, OP_IS_INF};

static const OpKind bool_only_ops[] = {OP_NOT, OP_AND, OP_OR, OP_XOR};

static const OpKind bool_result_ops[] = {OP_NOT, OP_AND, OP_OR, OP_XOR, OP_EQUAL, OP_LESS, OP_GREATER,
                                         OP_LESS_OR_EQUAL, OP_GREATER_OR_EQUAL, OP_IS_NAN, OP_IS_INF};

static const OpKind bool_ok_ops[] = {OP_MIN, OP_MAX, OP_EQUAL, OP_WHERE, OP_NOT, OP_AND, OP_OR, OP_XOR, OP_CAST, OP_CAST_LIKE};

#define IN_LIST(op, l) op_in(op, l, (int)(sizeof l / sizeof *l))

bool prelu_per_channel(const Node *n) {
    return n->op == OP_PRELU && n->opset < 7 && n->in[1]->data && n->in[1]->rank == 1 && n->in[0]->rank > 2 &&
           n->in[1]->dims[0] == n->in[0]->dims[1] && n->in[1]->dims[0] != 1;
}

bool infer_elementwise(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    if (prelu_per_channel(n)) return diag_rewrite(d, g, n); /* the slope reshaped: passes/canonicalize.c */
    int first = n->op == OP_WHERE ? 1 : 0; /* Where: the data inputs decide the type */
    DType dt = n->in[first]->dtype;
    if (n->op == OP_CAST || n->op == OP_CAST_LIKE) {
        int64_t to = n->op == OP_CAST_LIKE ? n->in[1]->dtype : node_attrs(n, cast)->to;
        if (dtype_size((DType)to) == 0) { diag_error(d, n, "Cast: unsupported or missing 'to' type %lld", (long long)to); return false; }
        dt = (DType)to;
    } else {
        for (int i = first + 1; i < n->n_in; i++)
            if (n->in[i] && n->in[i]->dtype != dt && n->op != OP_POW) {
                diag_error(d, n, "inputs have different dtypes (%s and %s)", dtype_name(dt), dtype_name(n->in[i]->dtype));
                return false;
            }
        if (n->op == OP_WHERE && n->in[0]->dtype != DT_BOOL) { diag_error(d, n, "the condition must be bool, not %s", dtype_name(n->in[0]->dtype)); return false; }
        if (IN_LIST(n->op, float_only_ops) && !dtype_is_float(dt)) { diag_error(d, n, "dtype %s is not accepted (float types only)", dtype_name(dt)); return false; }
        if (IN_LIST(n->op, bool_only_ops) && dt != DT_BOOL) { diag_error(d, n, "dtype %s is not accepted (bool only)", dtype_name(dt)); return false; }
        if (dt == DT_BOOL && !IN_LIST(n->op, bool_ok_ops)) { diag_error(d, n, "dtype bool is not accepted"); return false; }
        if (n->op == OP_BIT_SHIFT && (dtype_is_float(dt) || dtype_is_signed_int(dt))) { diag_error(d, n, "BitShift takes unsigned integers, not %s", dtype_name(dt)); return false; }
        if (n->op == OP_MOD && dtype_is_float(dt) && !node_attrs(n, mod)->fmod) { diag_error(d, n, "Mod of floats needs fmod=1"); return false; }
        if (IN_LIST(n->op, bool_result_ops)) dt = DT_BOOL;
    }
    if (n->op == OP_CLIP)
        for (int i = 1; i < n->n_in; i++)
            if (n->in[i] && value_numel(n->in[i]) != 1) { diag_error(d, n, "Clip's min and max must be scalars"); return false; }
    int rank;
    int64_t dims[MAX_RANK];
    if (!shape_broadcast(n->in, (n->op == OP_CLIP || n->op == OP_CAST_LIKE) ? 1 : n->n_in, &rank, dims)) {
        char a[128], b[128];
        diag_error(d, n, "input shapes %s and %s do not broadcast", value_type_str(n->in[0], a, sizeof a),
                   value_type_str(n->in[n->n_in - 1], b, sizeof b));
        return false;
    }
    set_out(n->out[0], dt, rank, dims);
    return check_size(n, n->out[0], d);
}

/* Expand: broadcast input 0 against the constant shape of input 1. */
bool infer_expand(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    int64_t shape[64];
    int count;
    if (!const_ints(n->in[1], shape, 64, &count)) {
        diag_need(d, n, n->in[1], "input '%s' must be a constant list of integers (computed at run time: only an executable built for this machine takes that)", n->in[1]->name);
        return false;
    }
    if (count > MAX_RANK) { diag_error(d, n, "rank %d is above %d", count, MAX_RANK); return false; }
    Value sv = {0};
    sv.rank = count;
    for (int i = 0; i < count; i++) {
        if (shape[i] < 0) { diag_error(d, n, "negative dimension in the shape"); return false; }
        sv.dims[i] = shape[i];
    }
    Value *pair[2] = {n->in[0], &sv};
    int rank;
    int64_t dims[MAX_RANK];
    if (!shape_broadcast(pair, 2, &rank, dims)) { diag_error(d, n, "input does not broadcast to the shape"); return false; }
    set_out(n->out[0], n->in[0]->dtype, rank, dims);
    return check_size(n, n->out[0], d);
}

/* The body's inputs take the node's input types; its nodes are parsed (the
 * walk parses the graph's own nodes only) and inferred in order. */
bool infer_fused(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    Graph *b = node_attrs(n, fused)->body;
    if (!b || b->inputs.n != n->n_in || b->outputs.n != 1) {
        diag_error(d, n, "kiln.Fused needs a 'body' graph with one input per node input and one output");
        return false;
    }
    for (int i = 0; i < n->n_in; i++) {
        Value *bi = b->inputs.items[i];
        set_out(bi, n->in[i]->dtype, n->in[i]->rank, n->in[i]->dims);
    }
    for (int i = 0; i < b->nodes.n; i++) {
        Node *bn = b->nodes.items[i];
        if (!(op_table[bn->op].flags & F_ELEM)) { diag_error(d, n, "kiln.Fused body holds non-elementwise op %s", op_table[bn->op].name); return false; }
        if (!node_parse_attrs(b, bn, d) || !op_table[bn->op].infer(g, bn, d)) return false;
    }
    Value *r = b->outputs.items[0];
    if (r->rank < 0) { diag_error(d, n, "kiln.Fused body output has no shape"); return false; }
    set_out(n->out[0], r->dtype, r->rank, r->dims);
    return true;
}

/* Training-mode Dropout (kiln.DropoutTrain, which Dropout becomes): the mask
 * keeps an element when a uniform draw in [0, 1) is at least the ratio, the
 * draws coming from MT19937 seeded with the seed attribute (0 when absent) in
 * row-major order, as NumPy's legacy generator draws them; kept elements are
 * divided by 1 - ratio. The same seed gives the same mask on every run. */
bool infer_dropout_train(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (!dtype_is_float(x->dtype)) { diag_error(d, n, "dtype %s is not accepted", dtype_name(x->dtype)); return false; }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    if (n->n_out > 1) set_out(n->out[1], DT_BOOL, x->rank, x->dims);
    return true;
}

double dropout_ratio(const Node *n) {
    const Value *ratio = node_input(n, 1);
    return ratio && ratio->data ? value_const_float(ratio, 0) : node_attrs(n, dropout)->ratio;
}

bool infer_dropout(Graph *g, Node *n, Diags *d) {
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    Value *ratio = node_input(n, 1), *training = node_input(n, 2);
    if (training && !training->data) {
        diag_need(d, n, training, "input '%s' must be a constant (Dropout's training_mode)", training->name);
        return false;
    }
    bool train = training && value_const_int(training, 0) != 0;
    if (n->opset < 7 && node_attrs(n, dropout)->is_test == 0 && n->n_out > 1) train = true;
    if (train && ratio && !ratio->data) {
        diag_need(d, n, ratio, "input '%s' must be a constant (the ratio of training-mode Dropout)", ratio->name);
        return false;
    }
    double r = dropout_ratio(n);
    if (train && r != 0) { /* a random mask: computed, no longer a view */
        if (r < 0 || r >= 1) { diag_error(d, n, "the ratio must be in [0, 1)"); return false; }
        if (n->opset < 10 && n->n_out > 1) { diag_error(d, n, "training-mode Dropout before opset 10 (a float mask) is not supported"); return false; }
        return diag_rewrite(d, g, n); /* it becomes kiln.DropoutTrain: passes/canonicalize.c */
    }
    set_out(n->out[0], x->dtype, x->rank, x->dims);
    if (n->n_out > 1 && n->out[1]) {
        Value *m = n->out[1];
        set_out(m, n->opset >= 10 ? DT_BOOL : x->dtype, x->rank, x->dims);
        if (!check_size(n, m, d)) return false;
        int64_t nb = value_nbytes(m), es = dtype_size(m->dtype);
        unsigned char *ones = arena_alloc(g->arena, (size_t)(nb ? nb : 1));
        for (int64_t i = 0; i < nb / es; i++) {
            if (m->dtype == DT_BOOL) ones[i] = 1;
            else if (m->dtype == DT_F32) ((float *)ones)[i] = 1.0f;
            else if (m->dtype == DT_F64) ((double *)ones)[i] = 1.0;
            else if (m->dtype == DT_F16) ((uint16_t *)ones)[i] = 0x3c00;
        }
        m->data = ones;
    }
    return true;
}
