/* ir.c: the arena, diagnostics, dtypes, and graph construction and queries.
 *
 * The arena is a list of chunks; a request larger than a chunk gets a chunk of
 * its own, so constant data of any size lives in it too. Graph construction
 * functions only build: checking is the verifier's job (ir/verify.c) and the
 * shape rules' (one file per op family, helpers in ir/infer.c). Topological
 * sorting is Kahn's algorithm over producer edges, keeping the original order
 * among ready nodes, so that output is deterministic. */
#include "ir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ArenaChunk {
    ArenaChunk *next;
    size_t size, used;
    _Alignas(64) unsigned char data[];
};

#define CHUNK_SIZE (1u << 20)

Arena *arena_new(void) {
    Arena *a = calloc(1, sizeof *a);
    if (!a) { fputs("kiln: out of memory\n", stderr); abort(); }
    return a;
}

void arena_free(Arena *a) {
    if (!a) return;
    for (ArenaChunk *c = a->head, *n; c; c = n) { n = c->next; free(c); }
    free(a);
}

void *arena_alloc(Arena *a, size_t n) {
    n = (n + 63) & ~(size_t)63;
    ArenaChunk *c = a->head;
    if (!c || c->size - c->used < n) {
        /* chunks grow with the arena, 64 KB to 1 MB: a small model's compile (or
         * a fuzzer's input) does not pay for a megabyte */
        size_t chunk = a->used_total < 65536 ? 65536 : a->used_total < CHUNK_SIZE ? a->used_total : CHUNK_SIZE;
        size_t sz = n > chunk / 2 ? n : chunk;
        void *mem = NULL;
        if (posix_memalign(&mem, 64, sizeof(ArenaChunk) + sz) != 0) { fputs("kiln: out of memory\n", stderr); abort(); }
        c = mem;
        c->size = sz;
        c->used = 0;
        if (sz == n && a->head) { /* big one-off: keep the current chunk in front */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += n;
    a->used_total += n;
    memset(p, 0, n);
    return p;
}

char *arena_strdup(Arena *a, const char *s) {
    size_t n = strlen(s);
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    return p;
}

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void vec_push(Arena *a, PtrVec *v, void *item) {
    if (v->n == v->cap) {
        int cap = v->cap ? v->cap * 2 : 8;
        void **items = arena_alloc(a, (size_t)cap * sizeof *items);
        if (v->n) memcpy(items, v->items, (size_t)v->n * sizeof *items);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = item;
}

static void diag_va(Diags *d, DiagLevel lvl, const Node *n, const char *fmt, va_list ap) {
    Diag *x = arena_alloc(d->arena, sizeof *x);
    va_list ap2;
    va_copy(ap2, ap);
    int len = vsnprintf(NULL, 0, fmt, ap);
    char *msg = arena_alloc(d->arena, (size_t)len + 1);
    vsnprintf(msg, (size_t)len + 1, fmt, ap2);
    va_end(ap2);
    x->level = lvl;
    x->msg = msg;
    if (n) {
        x->node_name = n->name ? n->name : "";
        x->op_name = op_table[n->op].name;
    }
    if (d->last) d->last->next = x;
    else d->first = x;
    d->last = x;
    if (lvl == DIAG_ERROR) d->errors++;
}

void diag_add(Diags *d, DiagLevel lvl, const Node *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_va(d, lvl, n, fmt, ap);
    va_end(ap);
}

void diag_need(Diags *d, const Node *n, const Value *v, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_va(d, DIAG_ERROR, n, fmt, ap);
    va_end(ap);
    if (v->data) return;
    d->run_time = true;
    if (!d->need) d->need = v;
}

void diag_merge(Diags *d, const Diags *from) {
    for (const Diag *x = from->first; x; x = x->next) {
        Diag *c = arena_alloc(d->arena, sizeof *c);
        *c = *x;
        c->next = NULL;
        if (d->last) d->last->next = c;
        else d->first = c;
        d->last = c;
        if (c->level == DIAG_ERROR) d->errors++;
    }
    if (from->run_time) d->run_time = true;
    if (!d->need) d->need = from->need;
}

bool diag_rewrite(Diags *d, Graph *g, Node *n) {
    d->rewrite_graph = g;
    d->rewrite = n;
    return false;
}

/* ---- dtypes ---- */

/* Size and text-IR name per dtype (the codes are ONNX's, and the runtime's
 * KILN_DT_*). A string element is {const char *p; int64_t n} (the runtime's
 * kiln_str: codegen checks the two agree); complex types have names only. */
static const struct { int size; const char *name; } dtypes[] = {
    [DT_UNDEF] = {0, "undef"}, [DT_F32] = {4, "f32"}, [DT_U8] = {1, "u8"}, [DT_I8] = {1, "i8"}, [DT_U16] = {2, "u16"},
    [DT_I16] = {2, "i16"}, [DT_I32] = {4, "i32"}, [DT_I64] = {8, "i64"}, [DT_STRING] = {DTYPE_STRING_SIZE, "string"},
    [DT_BOOL] = {1, "bool"}, [DT_F16] = {2, "f16"}, [DT_F64] = {8, "f64"}, [DT_U32] = {4, "u32"}, [DT_U64] = {8, "u64"},
    [DT_C64] = {0, "c64"}, [DT_C128] = {0, "c128"}, [DT_BF16] = {2, "bf16"},
};

int dtype_size(DType t) { return (unsigned)t < sizeof dtypes / sizeof *dtypes ? dtypes[t].size : 0; }

const char *dtype_name(DType t) { return (unsigned)t < sizeof dtypes / sizeof *dtypes && dtypes[t].name ? dtypes[t].name : "?"; }

DType dtype_from_name(const char *s) {
    for (int t = 1; t <= 16; t++)
        if (strcmp(dtype_name((DType)t), s) == 0) return (DType)t;
    return DT_UNDEF;
}

bool dtype_is_float(DType t) { return t == DT_F32 || t == DT_F64 || t == DT_F16 || t == DT_BF16; }
bool dtype_is_signed_int(DType t) { return t == DT_I8 || t == DT_I16 || t == DT_I32 || t == DT_I64; }

const char *dtype_ctype(DType t) {
    switch (t) {
    case DT_F32: return "float";
    case DT_F64: return "double";
    case DT_F16: case DT_BF16: case DT_U16: return "uint16_t";
    case DT_I8: return "int8_t";
    case DT_U8: case DT_BOOL: return "uint8_t";
    case DT_I16: return "int16_t";
    case DT_I32: return "int32_t";
    case DT_U32: return "uint32_t";
    case DT_I64: return "int64_t";
    case DT_U64: return "uint64_t";
    default: return "void";
    }
}

/* ---- ops ---- */

/* ---- graphs ---- */

const IrServices *graph_services(const Graph *g) {
    while (g->parent) g = g->parent;
    return g->services;
}

void graph_dce(Graph *g) {
    for (int i = 0; i < g->values.n; i++) ((Value *)g->values.items[i])->id = 0;
    for (int i = 0; i < g->outputs.n; i++) ((Value *)g->outputs.items[i])->id = 1;
    for (int i = g->nodes.n - 1; i >= 0; i--) {
        Node *n = g->nodes.items[i];
        bool live = false;
        for (int j = 0; j < n->n_out; j++)
            if (n->out[j]->id && !n->out[j]->data) live = true;
        n->dead = !live;
        if (live)
            for (int j = 0; j < n->n_in; j++) if (n->in[j]) n->in[j]->id = 1;
    }
    graph_compact(g);
}

Graph *graph_new(Arena *a, const char *name) {
    Graph *g = arena_alloc(a, sizeof *g);
    g->arena = a;
    g->name = arena_strdup(a, name ? name : "model");
    g->opset = 17;
    return g;
}

Value *graph_add_value(Graph *g, const char *name) {
    Value *v = arena_alloc(g->arena, sizeof *v);
    v->name = arena_strdup(g->arena, name ? name : "");
    v->rank = -1;
    v->mem_offset = -1;
    v->id = -1; /* scratch: "no buffer yet" to a lowering that meets a value made late */
    vec_push(g->arena, &g->values, v);
    return v;
}

Value *graph_add_const(Graph *g, const char *name, DType dt, int rank, const int64_t *dims, const void *data) {
    Value *v = graph_add_value(g, name);
    v->dtype = dt;
    v->rank = rank;
    for (int i = 0; i < rank; i++) v->dims[i] = dims[i];
    size_t nb = (size_t)value_nbytes(v);
    void *p = arena_alloc(g->arena, nb ? nb : 1);
    if (nb) memcpy(p, data, nb);
    v->data = p;
    return v;
}

Node *graph_add_node(Graph *g, OpKind op, const char *name, int n_in, int n_out) {
    Node *n = arena_alloc(g->arena, sizeof *n);
    n->op = op;
    n->name = arena_strdup(g->arena, name ? name : "");
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = arena_alloc(g->arena, (size_t)(n_in + 1) * sizeof(Value *));
    n->out = arena_alloc(g->arena, (size_t)(n_out + 1) * sizeof(Value *));
    n->opset = g->opset;
    vec_push(g->arena, &g->nodes, n);
    return n;
}

bool graph_has_value(const Graph *g, const Value *v) {
    for (int i = 0; i < g->values.n; i++) if (g->values.items[i] == v) return true;
    return false;
}

Value *graph_find_value(const Graph *g, const char *name) {
    for (int i = g->values.n - 1; i >= 0; i--) {
        Value *v = g->values.items[i];
        if (strcmp(v->name, name) == 0) return v;
    }
    return NULL;
}

void graph_count_uses(Graph *g) {
    for (int i = 0; i < g->values.n; i++) ((Value *)g->values.items[i])->id = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (n->dead) continue;
        for (int j = 0; j < n->n_in; j++) if (n->in[j]) n->in[j]->id++;
    }
    for (int i = 0; i < g->outputs.n; i++) ((Value *)g->outputs.items[i])->id += GRAPH_OUTPUT_USES;
}

void graph_compact(Graph *g) {
    int k = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!n->dead) g->nodes.items[k++] = n;
    }
    g->nodes.n = k;
    for (int i = 0; i < g->values.n; i++) ((Value *)g->values.items[i])->id = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        for (int j = 0; j < n->n_in; j++) if (n->in[j]) n->in[j]->id = 1;
        for (int j = 0; j < n->n_out; j++) n->out[j]->id = 1;
    }
    for (int i = 0; i < g->inputs.n; i++) ((Value *)g->inputs.items[i])->id = 1;
    for (int i = 0; i < g->outputs.n; i++) ((Value *)g->outputs.items[i])->id = 1;
    k = 0;
    for (int i = 0; i < g->values.n; i++) {
        Value *v = g->values.items[i];
        if (v->id) g->values.items[k++] = v;
    }
    g->values.n = k;
}

bool graph_toposort(Graph *g, Diags *d) {
    int n = g->nodes.n;
    Node **order = arena_alloc(g->arena, (size_t)(n + 1) * sizeof *order);
    bool *placed = arena_alloc(g->arena, (size_t)(n + 1));
    for (int i = 0; i < g->values.n; i++) ((Value *)g->values.items[i])->id = 0; /* 1: available */
    for (int i = 0; i < g->values.n; i++) {
        Value *v = g->values.items[i];
        if (!v->producer || v->data) v->id = 1;
    }
    int done = 0;
    bool progress = true;
    while (done < n && progress) {
        progress = false;
        for (int i = 0; i < n; i++) {
            if (placed[i]) continue;
            Node *nd = g->nodes.items[i];
            bool ready = true;
            for (int j = 0; j < nd->n_in && ready; j++)
                if (nd->in[j] && !nd->in[j]->id) ready = false;
            if (!ready) continue;
            placed[i] = true;
            order[done++] = nd;
            for (int j = 0; j < nd->n_out; j++) nd->out[j]->id = 1;
            progress = true;
        }
    }
    if (done < n) {
        for (int i = 0; i < n; i++)
            if (!placed[i]) {
                diag_error(d, g->nodes.items[i], "the graph has a cycle through this node (or it uses a value that is never defined)");
                break;
            }
        return false;
    }
    if (n) memcpy(g->nodes.items, order, (size_t)n * sizeof *order); /* a graph of no nodes has no list */
    return true;
}

/* ---- values ---- */

int64_t dims_numel(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] && n > (INT64_MAX / 16) / dims[i]) return -1;
        n *= dims[i];
    }
    return n;
}

int64_t value_numel(const Value *v) { return v->rank < 0 ? -1 : dims_numel(v->rank, v->dims); }
int64_t value_nbytes(const Value *v) { return value_numel(v) * dtype_size(v->dtype); }

bool value_same_shape(const Value *a, const Value *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++) if (a->dims[i] != b->dims[i]) return false;
    return true;
}

const char *value_type_str(const Value *v, char *buf, size_t n) {
    size_t l = (size_t)snprintf(buf, n, "%s", dtype_name(v->dtype));
    if (v->rank < 0) { snprintf(buf + l, n - l, "[?]"); return buf; }
    l += (size_t)snprintf(buf + l, n - l, "[");
    for (int i = 0; i < v->rank && l < n; i++) l += (size_t)snprintf(buf + l, n - l, "%s%lld", i ? "," : "", (long long)v->dims[i]);
    if (l < n) snprintf(buf + l, n - l, "]");
    return buf;
}

int64_t value_const_int(const Value *v, int64_t i) {
    const void *p = v->data;
    switch (v->dtype) {
    case DT_I64: return ((const int64_t *)p)[i];
    case DT_I32: return ((const int32_t *)p)[i];
    case DT_I16: return ((const int16_t *)p)[i];
    case DT_I8: return ((const int8_t *)p)[i];
    case DT_U8: case DT_BOOL: return ((const uint8_t *)p)[i];
    case DT_U16: return ((const uint16_t *)p)[i];
    case DT_U32: return ((const uint32_t *)p)[i];
    case DT_U64: return (int64_t)((const uint64_t *)p)[i];
    case DT_F32: return (int64_t)((const float *)p)[i];
    case DT_F64: return (int64_t)((const double *)p)[i];
    default: return 0;
    }
}

/* IEEE half to float (exact; the runtime's kiln_f16_to_f32 computes the same). */
static double half_to_float(uint16_t h) {
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double f = exp == 0x1f ? (man ? NAN : INFINITY) : exp == 0 ? ldexp(man, -24) : ldexp(man | 0x400, exp - 25);
    return h & 0x8000 ? -f : f;
}

double value_const_float(const Value *v, int64_t i) {
    switch (v->dtype) {
    case DT_F32: return ((const float *)v->data)[i];
    case DT_F64: return ((const double *)v->data)[i];
    case DT_F16: return half_to_float(((const uint16_t *)v->data)[i]);
    case DT_BF16: { uint32_t u = (uint32_t)((const uint16_t *)v->data)[i] << 16; float f; memcpy(&f, &u, 4); return f; }
    case DT_U64: return (double)((const uint64_t *)v->data)[i];
    default: return (double)value_const_int(v, i);
    }
}

/* ---- attributes ---- */

Attr *node_add_attr(Graph *g, Node *n, const char *name, AttrKind kind) {
    Attr *na = arena_alloc(g->arena, (size_t)(n->n_attr + 1) * sizeof *na);
    if (n->n_attr) memcpy(na, n->attrs, (size_t)n->n_attr * sizeof *na);
    n->attrs = na;
    Attr *a = &na[n->n_attr++];
    node_attrs_changed(n);
    a->name = arena_strdup(g->arena, name);
    a->kind = kind;
    return a;
}

Value *node_input(const Node *n, int i) { return i < n->n_in ? n->in[i] : NULL; }

/* ---- shapes ---- */

bool axis_norm(int64_t axis, int rank, int *out) {
    if (axis < -rank || axis >= rank) return false;
    *out = (int)(axis < 0 ? axis + rank : axis);
    return true;
}

bool shape_broadcast(Value *const *in, int n, int *rank, int64_t *dims) {
    int r = 0;
    for (int i = 0; i < n; i++) if (in[i] && in[i]->rank > r) r = in[i]->rank;
    for (int d = 0; d < r; d++) dims[d] = 1;
    for (int i = 0; i < n; i++) {
        if (!in[i]) continue;
        int off = r - in[i]->rank;
        for (int d = 0; d < in[i]->rank; d++) {
            int64_t x = in[i]->dims[d], *y = &dims[off + d];
            if (x == *y || x == 1) continue;
            if (*y == 1) *y = x;
            else return false;
        }
    }
    *rank = r;
    return true;
}
