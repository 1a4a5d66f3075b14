/* common.c: what both model readers share: the name scope (an open-addressing
 * hash table over arena strings), whole-file reading, and --shape overrides. */
#include "frontend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void scope_init(Scope *s, Arena *a, Scope *parent) {
    memset(s, 0, sizeof *s);
    s->arena = a;
    s->parent = parent;
}

void scope_put(Scope *s, const char *name, Value *v) {
    if (2 * (s->n + 1) > s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        const char **k = arena_alloc(s->arena, (size_t)cap * sizeof *k);
        Value **vals = arena_alloc(s->arena, (size_t)cap * sizeof *vals);
        for (int i = 0; i < s->cap; i++)
            if (s->keys[i]) {
                uint64_t h = hash_str(s->keys[i]) & (uint64_t)(cap - 1);
                while (k[h]) h = (h + 1) & (uint64_t)(cap - 1);
                k[h] = s->keys[i];
                vals[h] = s->vals[i];
            }
        s->keys = k;
        s->vals = vals;
        s->cap = cap;
    }
    uint64_t h = hash_str(name) & (uint64_t)(s->cap - 1);
    while (s->keys[h] && strcmp(s->keys[h], name) != 0) h = (h + 1) & (uint64_t)(s->cap - 1);
    if (!s->keys[h]) s->n++;
    s->keys[h] = name;
    s->vals[h] = v;
}

Value *scope_get_local(const Scope *s, const char *name) {
    Scope own = *s;
    own.parent = NULL;
    return scope_get(&own, name);
}

Value *scope_get(const Scope *s, const char *name) {
    for (; s; s = s->parent) {
        if (!s->cap) continue;
        uint64_t h = hash_str(name) & (uint64_t)(s->cap - 1);
        while (s->keys[h]) {
            if (strcmp(s->keys[h], name) == 0) return s->vals[h];
            h = (h + 1) & (uint64_t)(s->cap - 1);
        }
    }
    return NULL;
}

unsigned char *read_file(Arena *a, const char *path, size_t *len, Diags *d) {
    FILE *f = fopen(path, "rb");
    if (!f) { diag_error(d, NULL, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); diag_error(d, NULL, "cannot read %s", path); return NULL; }
    long n = ftell(f);
    rewind(f);
    if (n < 0) { fclose(f); diag_error(d, NULL, "cannot read %s", path); return NULL; }
    unsigned char *buf = arena_alloc(a, (size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) { diag_error(d, NULL, "cannot read %s", path); return NULL; }
    *len = (size_t)n;
    return buf;
}

/* A sequence input becomes its tensors, inputs of their own (NAME.0, NAME.1,
 * ...), with the shapes --shape NAME=[...] gives; an optional input its tensor
 * (--shape NAME=D0xD1), its sequence's tensors (NAME=[...]), or nothing
 * (NAME=none). g->in_seq and g->in_group group them; an empty sequence or an
 * absent optional is one placeholder input of no data. */
static Value *element(Graph *g, const Value *v, const char *name, const ShapeOverride *s) {
    Value *e = graph_add_value(g, name);
    e->dtype = v->dtype;
    e->rank = s ? s->rank : 1;
    if (s) memcpy(e->dims, s->dims, sizeof e->dims);
    else e->dims[0] = 0; /* a placeholder: no data */
    return e;
}

/* Is s a sequence's or an optional's (NAME=[...], NAME=[], NAME=none)? expand_sequences applies it. */
static bool list_override(const ShapeOverride *s) { return s->nelems || s->empty_list || s->absent; }

static bool expand_sequences(Graph *g, const FrontendOpts *o, Diags *d) {
    PtrVec ins = {0};
    int cap = g->inputs.n * 65 + 1, any = 0;
    int *seq = arena_alloc(g->arena, sizeof *seq * (size_t)cap), *grp = arena_alloc(g->arena, sizeof *grp * (size_t)cap);
    for (int i = 0; i < g->inputs.n; i++) {
        Value *v = g->inputs.items[i];
        const ShapeOverride *s = NULL;
        for (int k = 0; o && k < o->nshapes; k++)
            if (strcmp(o->shapes[k].name, v->name) == 0) s = &o->shapes[k];
        if (!v->is_seq && !v->is_opt) {
            if (s && s->nelems) { diag_error(d, NULL, "--shape %s=[...] gives a sequence, but input '%s' is a tensor", v->name, v->name); return false; }
            if (s && s->absent) { diag_error(d, NULL, "--shape %s=none: input '%s' is a tensor, not an optional", v->name, v->name); return false; }
            seq[ins.n] = grp[ins.n] = 0;
            vec_push(g->arena, &ins, v);
            continue;
        }
        const char *what = v->is_seq ? "a sequence" : v->opt_kind == 1 ? "an optional tensor" : "an optional sequence";
        const char *how = v->is_seq ? "=[D0xD1,D0xD1,...] ([] when empty)" : v->opt_kind == 1 ? "=D0xD1 or =none" : "=[D0xD1,...] or =none";
        bool want_list = v->is_seq || v->opt_kind == 3;
        if (!s || (s->absent && v->is_seq) || (!s->absent && want_list != (s->nelems > 0 || s->empty_list))) {
            diag_error(d, NULL, "input '%s' is %s: give %s with --shape %s%s", v->name, what,
                       v->is_seq ? "the shapes of its tensors" : "whether it is present, and its shapes,", v->name, how);
            return false;
        }
        any = 1;
        int first = ins.n, group = v->is_seq ? 1 : s->absent ? 4 : v->opt_kind == 1 ? 2 : 3;
        Value *list = v;
        if (v->is_opt && !s->absent && v->opt_kind == 3) { /* the optional's sequence */
            list = graph_add_value(g, arena_printf(g->arena, "%s.seq", v->name));
            list->is_seq = true;
            list->dtype = v->dtype;
        }
        if (v->is_opt) v->opt_elem = s->absent ? NULL : v->opt_kind == 1 ? element(g, v, v->name, s) : list;
        if (v->is_opt && v->opt_kind == 1 && !s->absent) vec_push(g->arena, &ins, v->opt_elem);
        if (want_list && !s->absent) {
            list->n_elems = s->nelems;
            list->elems = arena_alloc(g->arena, sizeof *list->elems * (size_t)(s->nelems + 1));
            for (int j = 0; j < s->nelems; j++) {
                list->elems[j] = element(g, v, arena_printf(g->arena, "%s.%d", v->name, j), &s->elems[j]);
                vec_push(g->arena, &ins, list->elems[j]);
            }
        }
        int count = ins.n - first;
        if (!count) vec_push(g->arena, &ins, element(g, v, v->name, NULL)); /* nothing: a placeholder */
        for (int j = first; j < ins.n; j++) {
            seq[j] = j > first ? -1 : count;
            grp[j] = group;
        }
    }
    for (int k = 0; o && k < o->nshapes; k++) {
        bool found = false;
        for (int i = 0; i < g->inputs.n; i++) {
            Value *v = g->inputs.items[i];
            found |= (v->is_seq || v->is_opt) && strcmp(v->name, o->shapes[k].name) == 0;
        }
        if (list_override(&o->shapes[k]) && !found) {
            diag_error(d, NULL, "--shape names '%s', which is not a sequence or optional input", o->shapes[k].name);
            return false;
        }
    }
    g->inputs = ins;
    if (any) g->in_seq = seq, g->in_group = grp;
    return true;
}

bool frontend_fix_inputs(Graph *g, const FrontendOpts *o, Diags *d) {
    if (!expand_sequences(g, o, d)) return false;
    for (int k = 0; o && k < o->nshapes; k++) {
        if (list_override(&o->shapes[k])) continue; /* applied */
        Value *v = NULL;
        for (int i = 0; i < g->inputs.n; i++)
            if (strcmp(((Value *)g->inputs.items[i])->name, o->shapes[k].name) == 0) v = g->inputs.items[i];
        if (!v) { diag_error(d, NULL, "--shape names '%s', which is not a graph input", o->shapes[k].name); return false; }
        v->rank = o->shapes[k].rank;
        memcpy(v->dims, o->shapes[k].dims, sizeof v->dims);
    }
    for (int i = 0; i < g->inputs.n; i++) {
        Value *v = g->inputs.items[i];
        if (v->rank < 0) {
            diag_error(d, NULL, "input '%s' has no shape in the model; give it with --shape %s=D0xD1x...", v->name, v->name);
            return false;
        }
        if (dtype_size(v->dtype) == 0) { diag_error(d, NULL, "input '%s' has dtype %s, which kiln does not support", v->name, dtype_name(v->dtype)); return false; }
        bool symbolic = false;
        for (int j = 0; j < v->rank; j++) symbolic |= v->dims[j] < 0;
        if (symbolic && o && o->keep_symbolic) continue; /* taken from the input files when the executable runs */
        for (int j = 1; j < v->rank; j++)
            if (v->dims[j] < 0) {
                d->run_time = true;
                diag_error(d, NULL, "input '%s' has a symbolic dimension %d: a library is compiled for fixed shapes (but for dimension 0, "
                           "the batch); give them with --shape %s=D0xD1x... (N for dimension 0 keeps it the batch), or compile an "
                           "executable (--emit exe), which takes them from its input files", v->name, j, v->name);
                return false;
            }
        if (v->rank > 0 && v->dims[0] < 0) {
            v->dims[0] = o && o->batch > 0 ? o->batch : 1;
            v->batch = true;
        }
        if (value_numel(v) < 0 || value_nbytes(v) > ((int64_t)1 << 36)) { diag_error(d, NULL, "input '%s' is too large", v->name); return false; }
    }
    return true;
}
