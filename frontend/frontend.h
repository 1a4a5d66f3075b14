/* frontend.h: model readers. Each returns a Graph with typed inputs, constant
 * initializers and untyped node outputs (the infer pass types them), or NULL
 * with diagnostics. deps collects every file read (for -MD). */
#ifndef KILN_FRONTEND_H
#define KILN_FRONTEND_H

#include "../ir/ir.h"

typedef struct ShapeOverride {
    const char *name;
    int rank;
    int64_t dims[MAX_RANK]; /* dims[0] may be -1: the batch, taken at run time */
    /* a sequence input, NAME=[D0xD1,D0,...]: its tensors' shapes (nelems >= 1; 0: a tensor) */
    int nelems;
    struct ShapeOverride *elems;
    bool empty_list; /* NAME=[]: an empty sequence */
    bool absent;     /* NAME=none: an absent optional */
} ShapeOverride;

typedef struct FrontendOpts {
    const ShapeOverride *shapes;
    int nshapes;
    int64_t batch; /* the size a symbolic batch dimension takes in this graph [1] */
    bool keep_symbolic; /* leave symbolic input dims (-1) as they are (driver/dyn.c) */
} FrontendOpts;

Graph *onnx_load(Arena *a, const char *path, const FrontendOpts *o, Diags *d, PtrVec *deps);
Graph *kir_load(Arena *a, const char *path, const FrontendOpts *o, Diags *d, PtrVec *deps);
/* The same from memory: the text, and the weights file its blobs name (any name). */
Graph *kir_load_mem(Arena *a, const char *text, size_t len, const unsigned char *weights, size_t wlen, const FrontendOpts *o,
                    Diags *d);

/* Shared by both readers: a name -> Value scope with a parent (subgraphs). */
typedef struct Scope {
    Arena *arena;
    const char **keys;
    Value **vals;
    int cap, n;
    struct Scope *parent;
} Scope;
void scope_init(Scope *s, Arena *a, Scope *parent);
void scope_put(Scope *s, const char *name, Value *v);
Value *scope_get(const Scope *s, const char *name);
/* s's own names only, not its parents'. */
Value *scope_get_local(const Scope *s, const char *name);

/* Reads a whole file into arena memory; NULL with a diagnostic. */
unsigned char *read_file(Arena *a, const char *path, size_t *len, Diags *d);
/* Applies --shape overrides to graph inputs; checks every input is static but
 * for a symbolic dim 0 (the batch), which becomes o->batch (1 by default) and
 * marks the input Value.batch. */
bool frontend_fix_inputs(Graph *g, const FrontendOpts *o, Diags *d);

#endif
