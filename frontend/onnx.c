/* onnx.c: ONNX ModelProto -> Graph, through libprotobuf-c and the C bindings
 * that protoc-c generates at build time from the onnx.proto of python3-onnx.
 *
 * The file is untrusted: protobuf-c rejects malformed wire data, and everything
 * else is checked here before use: opset versions, tensor ranks and sizes (with
 * overflow checks), data lengths against shapes, external-data paths (relative,
 * inside the model's folder, offset and length within the file), names that
 * nodes use but nothing defines. Node outputs are created before node inputs are
 * resolved, so a use that comes before its definition (a cycle, or unsorted
 * nodes) is left to the topological sort, and a name nothing defines is an error.
 * Initializers become constants, including those also listed as graph inputs.
 *
 * Subgraphs (If, Loop, Scan) are read after their graph's nodes exist; a name
 * a subgraph uses from an enclosing graph becomes a capture: an input of the
 * subgraph after its own, bound to an input appended to the node (the same
 * list for all of a node's subgraphs; see ir/control.c). */
#include "frontend.h"
#include "onnx.pb-c.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPSET 17

typedef struct {
    Arena *a;
    Diags *d;
    const char *dir;
    PtrVec *deps;
    int depth;          /* subgraph nesting */
} Loader;

static bool external_data(Loader *L, const Onnx__TensorProto *t, unsigned char *dst, int64_t nbytes) {
    const char *loc = NULL;
    int64_t offset = 0, length = -1;
    for (size_t i = 0; i < t->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = t->external_data[i];
        if (!e->key || !e->value) continue;
        if (strcmp(e->key, "location") == 0) loc = e->value;
        else if (strcmp(e->key, "offset") == 0) offset = strtoll(e->value, NULL, 10);
        else if (strcmp(e->key, "length") == 0) length = strtoll(e->value, NULL, 10);
    }
    const char *tn = t->name ? t->name : "";
    if (!loc || !*loc) { diag_error(L->d, NULL, "tensor '%s': external data has no location", tn); return false; }
    if (loc[0] == '/' || strstr(loc, "..")) {
        diag_error(L->d, NULL, "tensor '%s': external data path '%s' leaves the model's folder", tn, loc);
        return false;
    }
    char *path = arena_printf(L->a, "%s/%s", L->dir, loc);
    char real_dir[PATH_MAX], real_file[PATH_MAX];
    if (!realpath(L->dir, real_dir) || !realpath(path, real_file)) {
        diag_error(L->d, NULL, "tensor '%s': external data file '%s' is missing", tn, path);
        return false;
    }
    size_t dl = strlen(real_dir);
    if (strncmp(real_file, real_dir, dl) != 0 || real_file[dl] != '/') {
        diag_error(L->d, NULL, "tensor '%s': external data path '%s' leaves the model's folder", tn, loc);
        return false;
    }
    if (offset < 0 || (length >= 0 && length != nbytes)) {
        diag_error(L->d, NULL, "tensor '%s': external data offset/length do not match its shape (%lld bytes)", tn, (long long)nbytes);
        return false;
    }
    FILE *f = fopen(real_file, "rb");
    if (!f) { diag_error(L->d, NULL, "tensor '%s': cannot open external data '%s': %s", tn, path, strerror(errno)); return false; }
    bool ok = fseek(f, 0, SEEK_END) == 0;
    long size = ok ? ftell(f) : -1;
    if (!ok || size < 0 || offset > size || size - offset < nbytes) {
        fclose(f);
        diag_error(L->d, NULL, "tensor '%s': external data file '%s' is too short (needs %lld bytes at offset %lld)", tn, path, (long long)nbytes, (long long)offset);
        return false;
    }
    ok = fseek(f, offset, SEEK_SET) == 0 && fread(dst, 1, (size_t)nbytes, f) == (size_t)nbytes;
    fclose(f);
    if (!ok) { diag_error(L->d, NULL, "tensor '%s': cannot read external data", tn); return false; }
    bool seen = false;
    for (int i = 0; i < L->deps->n; i++) if (strcmp(L->deps->items[i], path) == 0) seen = true;
    if (!seen) vec_push(L->a, L->deps, path);
    return true;
}

/* TensorProto -> a constant Value of graph g (not added to any scope). */
static Value *tensor_value(Loader *L, Graph *g, const Onnx__TensorProto *t) {
    const char *tn = t->name ? t->name : "";
    DType dt = (DType)t->data_type;
    if (dt == DT_STRING) { diag_error(L->d, NULL, "tensor '%s': string constants are not supported (string inputs are)", tn); return NULL; }
    if (dtype_size(dt) == 0) { diag_error(L->d, NULL, "tensor '%s': unsupported data type %d", tn, t->data_type); return NULL; }
    if (t->n_dims > MAX_RANK) { diag_error(L->d, NULL, "tensor '%s': rank %zu is above %d", tn, t->n_dims, MAX_RANK); return NULL; }
    if (t->segment) { diag_error(L->d, NULL, "tensor '%s': segmented tensors are not supported", tn); return NULL; }
    Value *v = graph_add_value(g, tn);
    v->dtype = dt;
    v->rank = (int)t->n_dims;
    for (size_t i = 0; i < t->n_dims; i++) v->dims[i] = t->dims[i];
    int64_t n = value_numel(v), es = dtype_size(dt);
    if (n < 0 || n > ((int64_t)1 << 36) / es) { diag_error(L->d, NULL, "tensor '%s': invalid or too large shape", tn); return NULL; }
    int64_t nb = n * es;
    unsigned char *p = arena_alloc(L->a, (size_t)(nb ? nb : 1));
    v->data = p;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return external_data(L, t, p, nb) ? v : NULL;
    if (t->has_raw_data) {
        if ((int64_t)t->raw_data.len != nb) {
            diag_error(L->d, NULL, "tensor '%s': raw_data has %zu bytes, its shape needs %lld", tn, t->raw_data.len, (long long)nb);
            return NULL;
        }
        if (nb) memcpy(p, t->raw_data.data, (size_t)nb);
        return v;
    }
    size_t have;
    switch (dt) {
    case DT_F32: have = t->n_float_data; break;
    case DT_F64: have = t->n_double_data; break;
    case DT_I64: have = t->n_int64_data; break;
    case DT_U32: case DT_U64: have = t->n_uint64_data; break;
    default: have = t->n_int32_data; break;
    }
    if ((int64_t)have != n) {
        diag_error(L->d, NULL, "tensor '%s' has %zu values, its shape needs %lld", tn, have, (long long)n);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        unsigned char *q = p + i * es;
        switch (dt) {
        case DT_F32: memcpy(q, &t->float_data[i], 4); break;
        case DT_F64: memcpy(q, &t->double_data[i], 8); break;
        case DT_I64: memcpy(q, &t->int64_data[i], 8); break;
        case DT_U64: memcpy(q, &t->uint64_data[i], 8); break;
        case DT_U32: { uint32_t x = (uint32_t)t->uint64_data[i]; memcpy(q, &x, 4); break; }
        case DT_I32: memcpy(q, &t->int32_data[i], 4); break;
        case DT_I16: case DT_U16: case DT_F16: case DT_BF16: { uint16_t x = (uint16_t)t->int32_data[i]; memcpy(q, &x, 2); break; }
        default: *q = (unsigned char)t->int32_data[i]; break;
        }
    }
    return v;
}

static bool value_info_type(Loader *L, Value *v, const Onnx__ValueInfoProto *vi, bool sub) {
    const Onnx__TypeProto *tp = vi->type;
    if (!tp && sub) { v->rank = -1; return true; } /* a subgraph's inputs take their types from the node */
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && tp->sequence_type && tp->sequence_type->elem_type &&
        tp->sequence_type->elem_type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->sequence_type->elem_type->tensor_type) {
        /* a sequence input: its tensors' shapes come with --shape (frontend_fix_inputs);
         * a subgraph's: from the node (a Loop that carries one is unrolled) */
        v->is_seq = true;
        v->n_elems = -1;
        v->rank = -1;
        v->dtype = (DType)tp->sequence_type->elem_type->tensor_type->elem_type;
        return true;
    }
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE && tp->optional_type && tp->optional_type->elem_type) {
        /* an optional input: present or absent, with its shapes, comes with --shape */
        const Onnx__TypeProto *e = tp->optional_type->elem_type;
        if (e->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && e->tensor_type) {
            v->opt_kind = 1;
            v->dtype = (DType)e->tensor_type->elem_type;
        } else if (e->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && e->sequence_type && e->sequence_type->elem_type &&
                   e->sequence_type->elem_type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && e->sequence_type->elem_type->tensor_type) {
            v->opt_kind = 3;
            v->dtype = (DType)e->sequence_type->elem_type->tensor_type->elem_type;
        }
        if (v->opt_kind) { /* a subgraph's: a Loop that carries one is unrolled */
            v->is_opt = true;
            v->rank = -1;
            return true;
        }
    }
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type) {
        diag_error(L->d, NULL, "value '%s': only tensor, sequence and optional types are supported", v->name);
        return false;
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    v->dtype = (DType)tt->elem_type;
    if (!tt->shape) { v->rank = -1; return true; }
    if (tt->shape->n_dim > MAX_RANK) { diag_error(L->d, NULL, "value '%s': rank %zu is above %d", v->name, tt->shape->n_dim, MAX_RANK); return false; }
    v->rank = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[i];
        v->dims[i] = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ? dm->dim_value : -1;
    }
    return true;
}

static bool convert_attr(Loader *L, Graph *g, Node *n, const Onnx__AttributeProto *ap) {
    if (!ap->name) { diag_error(L->d, n, "attribute without a name"); return false; }
    if (ap->ref_attr_name && *ap->ref_attr_name) { diag_error(L->d, n, "attribute references (functions) are not supported"); return false; }
    Attr *a;
    switch (ap->type) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: a = node_add_attr(g, n, ap->name, ATTR_FLOAT); a->f = ap->f; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: a = node_add_attr(g, n, ap->name, ATTR_INT); a->i = ap->i; break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: {
        a = node_add_attr(g, n, ap->name, ATTR_STRING);
        char *s = arena_alloc(L->a, ap->s.len + 1);
        if (ap->s.len) memcpy(s, ap->s.data, ap->s.len);
        a->s = s;
        break;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        a = node_add_attr(g, n, ap->name, ATTR_FLOATS);
        a->n = (int)ap->n_floats;
        a->floats = arena_alloc(L->a, (ap->n_floats + 1) * sizeof(double));
        for (size_t i = 0; i < ap->n_floats; i++) a->floats[i] = ap->floats[i];
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        a = node_add_attr(g, n, ap->name, ATTR_INTS);
        a->n = (int)ap->n_ints;
        a->ints = arena_alloc(L->a, (ap->n_ints + 1) * sizeof(int64_t));
        if (ap->n_ints) memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
        a = node_add_attr(g, n, ap->name, ATTR_STRINGS);
        a->n = (int)ap->n_strings;
        a->strings = arena_alloc(L->a, (ap->n_strings + 1) * sizeof(char *));
        for (size_t i = 0; i < ap->n_strings; i++) {
            char *s = arena_alloc(L->a, ap->strings[i].len + 1);
            if (ap->strings[i].len) memcpy(s, ap->strings[i].data, ap->strings[i].len);
            a->strings[i] = s;
        }
        break;
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
        if (!ap->t) { diag_error(L->d, n, "attribute '%s' has no tensor", ap->name); return false; }
        Graph tmp = *g; /* the value must not join g's value list: keep it private */
        tmp.values = (PtrVec){0};
        Value *v = tensor_value(L, &tmp, ap->t);
        if (!v) return false;
        a = node_add_attr(g, n, ap->name, ATTR_TENSOR);
        a->t = v;
        break;
    }
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO: { /* Optional's type: [1, dtype] a tensor, [3, dtype] a sequence of tensors */
        const Onnx__TypeProto *tp = ap->tp, *e = NULL;
        int kind = 0;
        if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type) kind = 1, e = tp;
        else if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE && tp->sequence_type && tp->sequence_type->elem_type &&
                 tp->sequence_type->elem_type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->sequence_type->elem_type->tensor_type)
            kind = 3, e = tp->sequence_type->elem_type;
        if (!kind) { diag_error(L->d, n, "attribute '%s': only tensor and sequence-of-tensor types are supported", ap->name); return false; }
        a = node_add_attr(g, n, ap->name, ATTR_INTS);
        a->n = 2;
        a->ints = arena_alloc(L->a, 2 * sizeof *a->ints);
        a->ints[0] = kind;
        a->ints[1] = e->tensor_type->elem_type;
        break;
    }
    default:
        diag_error(L->d, n, "attribute '%s' has a type (%d) kiln does not support yet (sparse tensors, lists of graphs)", ap->name, (int)ap->type);
        return false;
    }
    return true;
}

/* name in g's scope; a name of an enclosing graph becomes a capture of g (a
 * placeholder value, listed in caps, made an input at the end). */
static Value *resolve(Loader *L, Graph *g, Scope *scope, PtrVec *caps, const char *name) {
    Value *v = scope_get_local(scope, name);
    if (v || !scope->parent || !scope_get(scope->parent, name)) return v;
    v = graph_add_value(g, name);
    v->rank = -1;
    scope_put(scope, v->name, v);
    vec_push(L->a, caps, v);
    return v;
}

static Graph *convert_graph(Loader *L, const Onnx__GraphProto *gp, int opset, Scope *outer, Graph *parent);

/* Reads node n's subgraph attributes, gives them one capture list, and
 * appends the captured values (resolved in g) to n's inputs. */
static bool convert_subgraphs(Loader *L, Graph *g, Scope *scope, PtrVec *caps, Node *n, const Onnx__NodeProto *np) {
    PtrVec subs = {0}, names = {0};
    for (size_t k = 0; k < np->n_attribute; k++) {
        const Onnx__AttributeProto *ap = np->attribute[k];
        if (ap->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH) continue;
        if (!ap->name || !ap->g) { diag_error(L->d, n, "graph attribute without a name or a graph"); return false; }
        if (L->depth >= 32) { diag_error(L->d, n, "subgraphs nest more than 32 deep"); return false; }
        L->depth++;
        Graph *sub = convert_graph(L, ap->g, g->opset, scope, g);
        L->depth--;
        if (!sub) return false;
        node_add_attr(g, n, ap->name, ATTR_GRAPH)->g = sub;
        vec_push(L->a, &subs, sub);
        for (int i = sub->inputs.n - sub->captures; i < sub->inputs.n; i++) {
            const char *nm = ((Value *)sub->inputs.items[i])->name;
            bool seen = false;
            for (int j = 0; j < names.n; j++) if (strcmp(names.items[j], nm) == 0) seen = true;
            if (!seen) vec_push(L->a, &names, (void *)nm);
        }
    }
    if (!subs.n) return true;
    for (int s = 0; s < subs.n; s++) { /* every subgraph takes the whole list, in one order */
        Graph *sub = subs.items[s];
        int formal = sub->inputs.n - sub->captures;
        Value **old = arena_alloc(L->a, (size_t)(sub->captures + 1) * sizeof *old);
        for (int i = 0; i < sub->captures; i++) old[i] = sub->inputs.items[formal + i];
        int had = sub->captures;
        sub->inputs.n = formal;
        for (int j = 0; j < names.n; j++) {
            Value *v = NULL;
            for (int i = 0; i < had && !v; i++) if (strcmp(old[i]->name, names.items[j]) == 0) v = old[i];
            if (!v) { v = graph_add_value(sub, names.items[j]); v->rank = -1; }
            vec_push(L->a, &sub->inputs, v);
        }
        sub->captures = names.n;
    }
    if (n->n_in + names.n > 64) { diag_error(L->d, n, "the node and its subgraphs use too many values"); return false; }
    Value **in = arena_alloc(L->a, (size_t)(n->n_in + names.n + 1) * sizeof *in);
    memcpy(in, n->in, (size_t)n->n_in * sizeof *in);
    for (int j = 0; j < names.n; j++) {
        in[n->n_in + j] = resolve(L, g, scope, caps, names.items[j]);
        if (!in[n->n_in + j]) { diag_error(L->d, n, "a subgraph uses '%s', which is not defined", (const char *)names.items[j]); return false; }
    }
    n->in = in;
    n->n_in += names.n;
    return true;
}

static Graph *convert_graph(Loader *L, const Onnx__GraphProto *gp, int opset, Scope *outer, Graph *parent) {
    Graph *g = graph_new(L->a, gp->name ? gp->name : "model");
    g->opset = opset;
    g->parent = parent;
    Scope scope;
    scope_init(&scope, L->a, outer);
    PtrVec caps = {0};
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Value *v = tensor_value(L, g, gp->initializer[i]);
        if (!v) return NULL;
        scope_put(&scope, v->name, v);
    }
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !*vi->name) { diag_error(L->d, NULL, "graph input %zu has no name", i); return NULL; }
        if (scope_get_local(&scope, vi->name)) continue; /* an initializer: a constant */
        Value *v = graph_add_value(g, vi->name);
        if (!value_info_type(L, v, vi, parent != NULL)) return NULL;
        vec_push(L->a, &g->inputs, v);
        scope_put(&scope, v->name, v);
    }
    /* create every node and its outputs first */
    Node **nodes = arena_alloc(L->a, (gp->n_node + 1) * sizeof *nodes);
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        const char *nm = np->name && *np->name ? np->name : (np->n_output && np->output[0] ? np->output[0] : "");
        const char *opt = np->op_type ? np->op_type : "";
        bool std_domain = !np->domain || !*np->domain || strcmp(np->domain, "ai.onnx") == 0;
        OpKind op = std_domain ? op_lookup(opt) : OP_COUNT;
        /* ONNX Runtime's contrib MoE (8 inputs at most) and kiln's own (ai.kiln: 9,
         * with the router bias) are kiln.MoE */
        bool ms_moe = np->domain && strcmp(np->domain, "com.microsoft") == 0 && strcmp(opt, "MoE") == 0 && np->n_input <= 8;
        bool kiln_moe = np->domain && strcmp(np->domain, "ai.kiln") == 0 && strcmp(opt, "MoE") == 0;
        if (ms_moe || kiln_moe) op = OP_MOE;
        else if (op != OP_COUNT && (op_table[op].flags & F_INTERNAL)) op = OP_COUNT;
        if (op == OP_COUNT) {
            diag_error(L->d, NULL, "unsupported op%s%s", std_domain ? "" : " in domain ", std_domain ? "" : np->domain);
            L->d->last->node_name = arena_strdup(L->a, nm);
            L->d->last->op_name = arena_strdup(L->a, opt);
            return NULL;
        }
        if (np->n_input > (size_t)op_table[op].in_max || np->n_output > (size_t)op_table[op].out_max) {
            diag_error(L->d, NULL, "node '%s' (%s) has %zu inputs and %zu outputs: kiln takes at most %d and %d", nm, opt, np->n_input,
                       np->n_output, op_table[op].in_max, op_table[op].out_max);
            return NULL;
        }
        Node *n = graph_add_node(g, op, nm, (int)np->n_input, (int)np->n_output);
        n->opset = opset;
        nodes[i] = n;
        for (size_t j = 0; j < np->n_output; j++) {
            const char *on = np->output[j] ? np->output[j] : "";
            if (!*on) { /* an omitted optional output: keep a private value */
                on = arena_printf(L->a, "%s:unused%zu", nm, j);
            } else if (scope_get_local(&scope, on)) {
                diag_error(L->d, n, "value '%s' is defined more than once", on);
                return NULL;
            }
            Value *v = graph_add_value(g, on);
            v->producer = n;
            v->producer_out = (int)j;
            n->out[j] = v;
            scope_put(&scope, v->name, v);
        }
        for (size_t k = 0; k < np->n_attribute; k++)
            if (np->attribute[k]->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH && !convert_attr(L, g, n, np->attribute[k])) return NULL;
    }
    /* trailing omitted optional outputs are dropped so arity checks see them absent */
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *np = gp->node[i];
        Node *n = nodes[i];
        while (n->n_out > 1 && (!np->output[n->n_out - 1] || !*np->output[n->n_out - 1])) n->n_out--;
        for (size_t j = 0; j < np->n_input; j++) {
            const char *in = np->input[j];
            if (!in || !*in) { n->in[j] = NULL; continue; }
            Value *v = resolve(L, g, &scope, &caps, in);
            if (!v) { diag_error(L->d, n, "input '%s' is not defined anywhere in the graph", in); return NULL; }
            n->in[j] = v;
        }
        bool has_graph = false; /* control flow: inputs keep their positions (captures follow) */
        for (size_t k = 0; k < np->n_attribute; k++) has_graph |= np->attribute[k]->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
        while (!has_graph && n->n_in > 0 && !n->in[n->n_in - 1]) n->n_in--;
        if (!convert_subgraphs(L, g, &scope, &caps, n, np)) return NULL;
    }
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *on = gp->output[i]->name ? gp->output[i]->name : "";
        Value *v = resolve(L, g, &scope, &caps, on);
        if (!v) { diag_error(L->d, NULL, "graph output '%s' is not defined", on); return NULL; }
        vec_push(L->a, &g->outputs, v);
    }
    if (gp->n_output == 0) { diag_error(L->d, NULL, "the graph has no outputs"); return NULL; }
    for (int i = 0; i < caps.n; i++) vec_push(L->a, &g->inputs, caps.items[i]);
    g->captures = caps.n;
    return g;
}

Graph *onnx_load(Arena *a, const char *path, const FrontendOpts *o, Diags *d, PtrVec *deps) {
    size_t len;
    unsigned char *buf = read_file(a, path, &len, d);
    if (!buf) return NULL;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
    if (!mp) { diag_error(d, NULL, "not a valid ONNX model (the protobuf is truncated or corrupt)"); return NULL; }
    Graph *g = NULL;
    int opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[i];
        if (!os->domain || !*os->domain || strcmp(os->domain, "ai.onnx") == 0) opset = (int)os->version;
    }
    if (!mp->graph) diag_error(d, NULL, "the model has no graph");
    else if (opset < 0 && mp->n_opset_import == 0) opset = 1;
    if (mp->graph && opset < 0) diag_error(d, NULL, "the model imports no default-domain (ai.onnx) opset");
    else if (mp->graph && opset > MAX_OPSET) diag_error(d, NULL, "opset %d is not supported (kiln supports ai.onnx opsets 1 to %d)", opset, MAX_OPSET);
    else if (mp->graph) {
        char *dir = arena_strdup(a, path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else dir = ".";
        Loader L = {a, d, dir, deps, 0};
        g = convert_graph(&L, mp->graph, opset, NULL, NULL);
        if (g) {
            g->source = arena_strdup(a, path);
            g->source_dir = dir;
            if (!frontend_fix_inputs(g, o, d)) g = NULL;
        }
    }
    onnx__model_proto__free_unpacked(mp, NULL);
    return g;
}
