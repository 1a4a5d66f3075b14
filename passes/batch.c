/* batch.c: may a model whose inputs have a symbolic dimension 0 run once per
 * sample?
 *
 * Kiln compiles such a model at a batch of 1 and runs it once per sample, with
 * each batched input and output advanced by one sample's bytes
 * (kiln_run_batch). That is the model's meaning only when no op mixes samples.
 * batch_verify decides it from two probe compiles of the graph, at batches 1
 * and 2 (types, shapes and constant folding only), compared value by value:
 *
 *  - A value computed from a batched input must have dimension 0 equal to the
 *    batch (1, then 2) and every other dimension unchanged: this catches
 *    reductions, concatenations, splits, transposes and reshapes across the
 *    batch (Reshape(x, [1, -1]) gives [1, 2K] at batch 2).
 *  - A constant folded from the batch size (Shape(x)[0], Range(0, N), a
 *    ConstantOfShape([N, K])) is harmless when it is the same in both compiles,
 *    or batch-shaped with the second sample a copy of the first (zeros of [N, K]);
 *    otherwise it may only be a shape operand (Reshape's shape, Expand's,
 *    Tile's repeats, Resize's sizes, ConstantOfShape's, Slice's bounds).
 *  - Ops that keep the shape but work along an axis must not take axis 0
 *    (Softmax, LayerNormalization, CumSum, TopK, Gather, Slice, ...), and ops
 *    whose meaning crosses samples (training-mode BatchNormalization and Dropout,
 *    MaxPool's flat indices, RoiAlign's batch indices, control flow,
 *    sequences) are refused.
 *
 * The graph's outputs computed from the batch are marked Value.batch. */
#include "passes.h"

#include <string.h>

enum { CLEAN, BATCH, TILED, SIZE }; /* what a value is, in p1's Value.id */

static bool batchy(const Value *v) { return v && (v->id == BATCH || v->id == TILED); }

static bool scales(const Value *a, const Value *b) {
    if (a->dtype != b->dtype || a->rank != b->rank || a->rank < 1 || a->dims[0] != 1 || b->dims[0] != 2) return false;
    for (int i = 1; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return true;
}

static bool same_shape(const Value *a, const Value *b) {
    return a->dtype == b->dtype && a->rank == b->rank && memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0;
}

/* What constant a1 (batch 1) / a2 (batch 2) is. */
static int const_class(const Value *a, const Value *b) {
    int64_t n = value_nbytes(a);
    if (same_shape(a, b) && memcmp(a->data, b->data, (size_t)n) == 0) return CLEAN;
    if (scales(a, b) && memcmp(a->data, b->data, (size_t)n) == 0 && memcmp(a->data, (const char *)b->data + n, (size_t)n) == 0)
        return TILED;
    return SIZE;
}

/* May input j of n be computed from the batch size (a shape operand)? */
static bool shape_operand(const Node *n, int j) {
    switch (n->op) {
    case OP_RESHAPE: case OP_EXPAND: case OP_TILE: case OP_UPSAMPLE: return j == 1;
    case OP_CONSTANT_OF_SHAPE: return j == 0;
    case OP_RESIZE: return j >= 1;
    case OP_SLICE: return j >= 1 && batchy(n->in[0]); /* checked by slice_whole */
    default: return false;
    }
}

static int axis_of(int64_t axis, int rank) {
    int a;
    return axis_norm(axis, rank, &a) ? a : 0;
}

/* Does Slice n keep all of axis 0 of x, in order? */
static bool slice_whole(const Node *n, const Value *x, Diags *scratch) {
    int64_t starts[MAX_RANK], steps[MAX_RANK], dims[MAX_RANK];
    if (!slice_compute(n, x, starts, steps, dims, scratch)) return false;
    return x->rank < 1 || (starts[0] == 0 && steps[0] == 1 && dims[0] == x->dims[0]);
}

/* Each op's rule (the batch column of ops.def): why running node n once per
 * sample differs from running it on the batch, or NULL. n2 is the same node in
 * the batch-2 probe; x is n's input 0 and r its rank. */
typedef const char *(*BatchRule)(const Node *n, const Node *n2, Diags *scratch);
#define OP(id, name, in_min, in_max, out_min, out_max, flags, infer, lower, batch, attrs) \
    const char *batch(const Node *n, const Node *n2, Diags *scratch);
#include "../ir/ops.def"
#undef OP
#define RULE(name) const char *batch_##name(const Node *n, const Node *n2, Diags *scratch)
#define X_RANK const Value *x = n->in[0]; int r = x ? x->rank : 0; (void)x; (void)r; (void)n2; (void)scratch

RULE(rows) { (void)n; (void)n2; (void)scratch; return NULL; }
RULE(control) { (void)n; (void)n2; (void)scratch; return "runs a subgraph on values computed from the batch (not supported)"; }
RULE(sequence) { (void)n; (void)n2; (void)scratch; return "makes a sequence of values computed from the batch (not supported)"; }
RULE(sized_by_data) { (void)n; (void)n2; (void)scratch; return "has an output sized by the data"; }
RULE(softmax) { X_RANK; return axis_of(node_attrs(n, softmax)->axis, r) == 0 ? "normalizes along axis 0, the batch" : NULL; }
RULE(layernorm) {
    X_RANK;
    int64_t axis = n->op == OP_LP_NORM ? node_attrs(n, lp_norm)->axis : node_attrs(n, layer_norm)->axis;
    return axis_of(axis, r) == 0 ? "normalizes over axis 0, the batch" : NULL;
}
RULE(topk) { X_RANK; return axis_of(node_attrs(n, topk)->axis, r) == 0 ? "sorts along axis 0, the batch" : NULL; }
RULE(dft) { X_RANK; return axis_of(node_attrs(n, dft)->axis, r) == 0 ? "transforms along axis 0, the batch" : NULL; }
RULE(gather) { X_RANK; return batchy(x) && axis_of(node_attrs(n, gather)->axis, r) == 0 ? "gathers along axis 0, the batch" : NULL; }
RULE(gather_elements) {
    X_RANK;
    return axis_of(node_attrs(n, gather_elements)->axis, r) == 0 || !batchy(x) || !batchy(n->in[1]) ? "gathers across the batch" : NULL;
}
RULE(scatter) {
    X_RANK;
    return axis_of(node_attrs(n, scatter)->axis, r) == 0 || !batchy(x) || !batchy(n->in[1]) || !batchy(n->in[2])
               ? "scatters across the batch" : NULL;
}
RULE(gather_nd) {
    X_RANK;
    return batchy(x) && (node_attrs(n, gather_nd)->batch_dims < 1 || !batchy(n->in[1])) ? "indexes the batch dimension" : NULL;
}
RULE(scatter_nd) { X_RANK; return batchy(x) ? "indexes the batch dimension" : NULL; }
RULE(trilu) { X_RANK; return r < 3 ? "takes the batch as its row index" : NULL; }
RULE(cumsum) {
    X_RANK;
    int64_t ax;
    int c, a;
    if (!const_ints(n->in[1], &ax, 1, &c) || c != 1) return "sums along an axis known only at run time";
    return !axis_norm(ax, r, &a) || a == 0 ? "sums along axis 0, the batch" : NULL;
}
RULE(mvn) {
    X_RANK;
    const attrs_mvn *a = node_attrs(n, mvn);
    if (!a->has_axes) return "normalizes over axes 0, 2, 3 (its default), across the batch";
    for (int i = 0; i < a->axes.n; i++) {
        int ax;
        if (axis_norm(a->axes.v[i], r, &ax) && ax == 0) return "normalizes over axis 0, the batch";
    }
    return NULL;
}
RULE(batchnorm) {
    X_RANK;
    return n->opset >= 14 && node_attrs(n, batch_norm)->training_mode ? "computes statistics over the batch (training mode)" : NULL;
}
RULE(dropout_train) { X_RANK; return "draws random numbers across the batch (training mode)"; }
RULE(dynamic_quantize) { X_RANK; return "computes one scale over the whole batch"; }
RULE(reverse_sequence) { X_RANK; return node_attrs(n, reverse_sequence)->time_axis == 0 ? "reverses along axis 0, the batch" : NULL; }
RULE(compress) {
    X_RANK;
    const attrs_compress *a = node_attrs(n, compress);
    return !a->has_axis || axis_of(a->axis, r) == 0 ? "selects along the batch" : NULL;
}
RULE(max_pool) { X_RANK; return n->n_out > 1 && n->out[1] ? "returns indices counted across the batch" : NULL; }
RULE(max_unpool) { X_RANK; return "takes indices counted across the batch"; }
RULE(roi_align) { X_RANK; return "takes regions that name their batch entry"; }
RULE(resize) {
    X_RANK;
    return strcmp(node_attrs(n, resize)->coordinate_transformation_mode, "tf_crop_and_resize") == 0
               ? "crops by regions of interest that include the batch axis" : NULL;
}
RULE(slice) {
    X_RANK;
    if (!batchy(x)) return "slices a value that does not depend on the batch by the batch size";
    return slice_whole(n, x, scratch) && slice_whole(n2, n2->in[0], scratch) ? NULL : "slices along axis 0, the batch";
}
/* layout 0 (the default) is [sequence, batch, ...]: dimension 0 is the time
 * axis, along which the state recurs */
RULE(rnn) {
    X_RANK;
    return batchy(x) && node_attrs(n, rnn)->layout == 0 ? "recurs along axis 0 (the sequence with layout 0), across the batch" : NULL;
}
/* kiln.Attention: rows of q are independent, keys and values are not; its
 * perms may move axis 0 */
RULE(attention) {
    X_RANK;
    const attrs_attention *a = node_attrs(n, attention);
    const AttrInts *perms[] = {&a->q_perm, &a->k_perm, &a->v_perm, &a->out_perm};
    for (int i = 0; i < 4; i++)
        if (perms[i]->n > 0 && perms[i]->v[0] != 0) return "moves axis 0, the batch, to another place";
    return r < 3 && (batchy(n->in[1]) || batchy(n->in[2])) ? "attends over keys along axis 0, the batch" : NULL;
}

static const BatchRule batch_rules[OP_COUNT] = {
#define OP(id, name, in_min, in_max, out_min, out_max, flags, infer, lower, batch, attrs) [OP_##id] = batch,
#include "../ir/ops.def"
#undef OP
};

/* Why running n once per sample differs from running it on the batch, or NULL. */
static const char *mixes(const Node *n, const Node *n2, Diags *scratch) {
    if (!(op_table[n->op].flags & (F_CONTROL | F_SEQ))) /* their rules refuse first */
        for (int i = 0; i < n->n_out; i++)
            if (n->out[i] && n->out[i]->dyn) return "has an output sized by the data";
    return batch_rules[n->op](n, n2, scratch);
}

static void shape_text(const Value *v, char *buf, size_t n) { value_type_str(v, buf, n); }

static bool refuse(Diags *d, const Node *n, const char *fmt, const char *a, const char *b, const char *c) {
    char msg[1024];
    snprintf(msg, sizeof msg, fmt, a, b, c);
    if (n) diag_error(d, NULL, "node '%s' (%s) %s; kiln runs a model with a symbolic batch once per sample, so give the batch with --shape",
                      n->name ? n->name : "", op_table[n->op].name, msg);
    else diag_error(d, NULL, "%s; kiln runs a model with a symbolic batch once per sample, so give the batch with --shape", msg);
    return false;
}

bool batch_verify(Graph *p1, Graph *p2, Graph *g, Diags *d) {
    Diags scratch = {.arena = p1->arena};
    if (!pass_canonicalize(p1, &scratch) || !pass_canonicalize(p2, &scratch)) {
        const Diag *x = scratch.first;
        if (x && x->node_name)
            diag_error(d, NULL, "with a batch of 2, node '%s' (%s): %s (the model does not take any batch); kiln runs a model "
                       "with a symbolic batch once per sample, so give the batch with --shape", x->node_name, x->op_name, x->msg);
        else diag_error(d, NULL, "with a batch of 2: %s (the model does not take any batch); kiln runs a model with a symbolic "
                        "batch once per sample, so give the batch with --shape", x ? x->msg : "the model does not compile");
        return false;
    }
    if (p1->out_seq || p1->in_seq) {
        diag_error(d, NULL, "the model has sequence inputs or outputs: kiln runs a model with a symbolic batch once per sample only "
                   "when its inputs and outputs are tensors, so give the batch with --shape");
        return false;
    }
    if (p1->nodes.n != p2->nodes.n || p1->inputs.n != p2->inputs.n || p1->outputs.n != p2->outputs.n || p1->outputs.n != g->outputs.n) {
        diag_error(d, NULL, "the graph changes with the batch size; give the batch with --shape");
        return false;
    }
    for (int i = 0; i < p1->values.n; i++) ((Value *)p1->values.items[i])->id = CLEAN;
    for (int i = 0; i < p1->inputs.n; i++) {
        Value *v = p1->inputs.items[i];
        v->id = v->batch ? BATCH : CLEAN;
    }
    /* the nodes the outputs need (folded ones included: they carry the batch size) */
    bool *live = arena_alloc(p1->arena, sizeof *live * (size_t)(p1->nodes.n + 1));
    for (int i = 0; i < p1->values.n; i++) ((Value *)p1->values.items[i])->first_use = 0;
    for (int k = 0; k < p1->outputs.n; k++) ((Value *)p1->outputs.items[k])->first_use = 1;
    for (int i = p1->nodes.n - 1; i >= 0; i--) {
        Node *n = p1->nodes.items[i];
        for (int j = 0; j < n->n_out; j++) live[i] |= n->out[j] && n->out[j]->first_use;
        for (int j = 0; live[i] && j < n->n_in; j++)
            if (n->in[j]) n->in[j]->first_use = 1;
    }
    char s1[256], s2[256];
    for (int i = 0; i < p1->nodes.n; i++) {
        Node *n = p1->nodes.items[i], *n2 = p2->nodes.items[i];
        if (n->op != n2->op || n->n_in != n2->n_in || n->n_out != n2->n_out)
            return refuse(d, n, "%s%s%sbecomes another op with another batch size", "", "", "");
        if (!live[i]) continue;
        bool dep = false, folds = true;
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] && n->in[j]->id != CLEAN) dep = true;
        if (!dep) continue;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j] && (!n->out[j]->data || !n2->out[j] || !n2->out[j]->data)) folds = false;
        for (int j = 0; j < n->n_in; j++) {
            Value *v = n->in[j];
            if (!v) continue;
            if (v->id == SIZE && !folds && !shape_operand(n, j))
                return refuse(d, n, "uses '%s', computed from the batch size, as data%s%s", v->name, "", "");
        }
        if (!folds) {
            const char *why = mixes(n, n2, &scratch);
            if (why) return refuse(d, n, "%s%s%s", why, "", "");
        }
        for (int j = 0; j < n->n_out; j++) {
            Value *a = n->out[j], *b = n2->out[j];
            if (!a) continue;
            if (folds) { a->id = const_class(a, b); continue; }
            if (!scales(a, b)) {
                shape_text(a, s1, sizeof s1);
                shape_text(b, s2, sizeof s2);
                return refuse(d, n, "gives '%s' of %s with a batch of 1 but %s with a batch of 2 (its dimension 0 is not the batch)",
                              a->name, s1, s2);
            }
            a->id = BATCH;
        }
    }
    for (int k = 0; k < p1->outputs.n; k++) {
        Value *v = p1->outputs.items[k];
        if (v->id == SIZE) return refuse(d, NULL, "output '%s' is computed from the batch size%s%s", v->name, "", "");
        if (batchy(v) && !scales(v, p2->outputs.items[k])) return refuse(d, NULL, "output '%s' does not scale with the batch%s%s", v->name, "", "");
        ((Value *)g->outputs.items[k])->batch = batchy(v);
    }
    return true;
}
