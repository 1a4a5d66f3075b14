/* attrs.c: attributes parsed once into their op's struct.
 *
 * Each ATTRS row of ops.def becomes a struct attrs_<set> (ir/ir.h) and, here,
 * a parser that starts from the row's defaults and takes each attribute the
 * node carries, checking its kind. The parsed struct hangs off the node
 * (Node.pa) until its attributes or its op change (node_add_attr,
 * node_attrs_changed); the shape-inference walk parses a node before its rule
 * runs and the pass manager parses whatever a pass changed, so shape rules,
 * lowerings and passes read fields, not names. */
#include "ir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The attribute named nm, where a '.' of the attribute's name matches a '_' of
 * nm (kiln.clip_min is field kiln_clip_min). */
static const Attr *find(const Node *n, const char *nm) {
    for (int i = 0; i < n->n_attr; i++) {
        const char *a = n->attrs[i].name, *b = nm;
        while (*a && (*a == *b || (*a == '.' && *b == '_'))) a++, b++;
        if (!*a && !*b) return &n->attrs[i];
    }
    return NULL;
}

static const char *kind_name(AttrKind k) {
    switch (k) {
    case ATTR_FLOAT: return "a float";
    case ATTR_INT: return "an integer";
    case ATTR_STRING: return "a string";
    case ATTR_TENSOR: return "a tensor";
    case ATTR_GRAPH: return "a graph";
    case ATTR_FLOATS: return "a list of floats";
    case ATTR_INTS: return "a list of integers";
    case ATTR_STRINGS: return "a list of strings";
    }
    return "of an unknown kind";
}

/* The attribute nm when it is of kind want (or also2), NULL when absent;
 * *ok false with a diagnostic when it is of another kind. */
static const Attr *take(const Node *n, const char *nm, AttrKind want, AttrKind also, bool *ok, bool *has, Diags *d) {
    const Attr *a = find(n, nm);
    if (!a) return NULL;
    if (a->kind != want && a->kind != also) {
        diag_error(d, n, "attribute '%s' must be %s, not %s", a->name, kind_name(want), kind_name(a->kind));
        *ok = false;
        return NULL;
    }
    *has = true;
    return a;
}

#define A_INT(nm, dflt) { a->nm = (dflt); const Attr *x = take(n, #nm, ATTR_INT, ATTR_INT, &ok, &a->has_##nm, d); if (x) a->nm = x->i; }
#define A_FLOAT(nm, dflt) { a->nm = (dflt); const Attr *x = take(n, #nm, ATTR_FLOAT, ATTR_INT, &ok, &a->has_##nm, d); \
                            if (x) a->nm = x->kind == ATTR_INT ? (double)x->i : x->f; }
#define A_STR(nm, dflt) { a->nm = (dflt); const Attr *x = take(n, #nm, ATTR_STRING, ATTR_STRING, &ok, &a->has_##nm, d); if (x) a->nm = x->s; }
#define A_INTS(nm) { const Attr *x = take(n, #nm, ATTR_INTS, ATTR_INTS, &ok, &a->has_##nm, d); if (x) a->nm = (AttrInts){x->n, x->ints}; }
#define A_FLOATS(nm) { const Attr *x = take(n, #nm, ATTR_FLOATS, ATTR_FLOATS, &ok, &a->has_##nm, d); if (x) a->nm = (AttrFloats){x->n, x->floats}; }
#define A_STRS(nm) { const Attr *x = take(n, #nm, ATTR_STRINGS, ATTR_STRINGS, &ok, &a->has_##nm, d); if (x) a->nm = (AttrStrs){x->n, x->strings}; }
#define A_TENSOR(nm) { const Attr *x = take(n, #nm, ATTR_TENSOR, ATTR_TENSOR, &ok, &a->has_##nm, d); if (x) a->nm = x->t; }
#define A_GRAPH(nm) { const Attr *x = take(n, #nm, ATTR_GRAPH, ATTR_GRAPH, &ok, &a->has_##nm, d); if (x) a->nm = x->g; }
#define ATTRS(set, ...)                                                     \
    static const void *parse_##set(Arena *ar, const Node *n, Diags *d) {     \
        attrs_##set *a = arena_alloc(ar, sizeof *a);                         \
        memset(a, 0, sizeof *a);                                             \
        bool ok = true;                                                      \
        __VA_ARGS__                                                          \
        return ok ? a : NULL;                                                \
    }
#define OP(...)
#include "ops.def"
#undef OP
#undef ATTRS

static const void *parse_none(Arena *ar, const Node *n, Diags *d) {
    (void)ar, (void)n, (void)d;
    static const char none;
    return &none;
}

static const void *(*const parsers[AS_COUNT])(Arena *, const Node *, Diags *) = {
    [AS_none] = parse_none,
#define ATTRS(set, ...) [AS_##set] = parse_##set,
#define OP(...)
#include "ops.def"
#undef OP
#undef ATTRS
};

static const char *const set_names[AS_COUNT] = {
    [AS_none] = "none",
#define ATTRS(set, ...) [AS_##set] = #set,
#define OP(...)
#include "ops.def"
#undef OP
#undef ATTRS
};

static bool parsed(const Node *n) { return n->pa && n->pa_set == op_table[n->op].attrs; }

const void *node_attrs_of(const Node *n, AttrSet set) {
    if (op_table[n->op].attrs != set || !parsed(n)) {
        fprintf(stderr, "kiln: internal error: node '%s' (%s) read as attribute set '%s'%s\n", n->name ? n->name : "",
                op_table[n->op].name, set_names[set],
                op_table[n->op].attrs != set ? ", which is not its op's" : " before its attributes were parsed");
        abort();
    }
    return n->pa;
}

bool node_parse_attrs(Graph *g, Node *n, Diags *d) {
    if (parsed(n)) return true;
    AttrSet s = op_table[n->op].attrs;
    const void *p = parsers[s](g->arena, n, d);
    if (!p) return false;
    n->pa = p;
    n->pa_set = s;
    return true;
}

bool graph_parse_attrs(Graph *g, Diags *d) {
    bool ok = true;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (n->dead) continue;
        if (!node_parse_attrs(g, n, d)) ok = false;
        for (int j = 0; j < n->n_attr; j++)
            if (n->attrs[j].kind == ATTR_GRAPH && n->attrs[j].g && !graph_parse_attrs(n->attrs[j].g, d)) ok = false;
    }
    return ok;
}
