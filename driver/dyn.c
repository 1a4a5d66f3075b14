/* dyn.c: executables whose shapes are known only when they run.
 *
 * When a model's shapes depend on its inputs (symbolic input dimensions, a
 * shape operand computed from the data, a value sized by the data that other
 * ops read), `kiln compile` writes an executable that carries the model as
 * text IR with its constants, this file, the compiler's middle end (libkilnc)
 * and the runtime. Its main reads the input files, then specializes: the model
 * read with the files' shapes goes through the same passes and lowering as
 * `kiln compile` and runs on the runtime's kernels (kir_exec), fused loops
 * evaluated a block of elements at a time by kir_interp.c. Where a shape rule
 * wants the contents of a value computed at run time (a Reshape's shape from
 * the data, NonZero's indices read by a Gather, TopK's K), the node that makes
 * the value is compiled alone (its ancestors only) and run first, and its
 * results become constants of the model (Graph.bound): the model is compiled
 * again, until it compiles whole. A value wanted that is a graph input is
 * taken from its file. Everything after the input files are read goes through
 * kiln_exe_main (runtime/main.c), as in every compiled executable. */
#include "../codegen/kir.h"
#include "../frontend/frontend.h"
#include "../passes/passes.h"
#include "../runtime/kiln_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Dyn {
    const char *ir;
    size_t ir_len;
    const unsigned char *w;
    size_t wlen;
    int opt_level, threads;
    /* the model as declared (symbolic dims -1) */
    int nin, nout;
    kiln_tensor_info *ins, *outs;
    int64_t (*in_dims)[KILN_MAX_RANK], (*out_dims)[KILN_MAX_RANK];
    /* this run's input files, and the values computed before the model compiled */
    const kiln_tensor *inputs;
    Bound *bound;
    int nbound, capbound;
    /* the specialized program: its inputs' places among the declared ones */
    Arena *arena;
    Graph *g;
    Kir *k;
    int *in_map;
    const void **in_buf; /* a run's inputs in the program's order (in_map) */
    kiln_moe_layer *moe;
    const char **names; /* the steps' names for the profiler (KILN_PROFILE) */
} Dyn;

static Dyn D;
static kiln_model M;
static const unsigned char no_weights[64];

/* "node 'x' (Op): message" of the first error, into err. */
static void first_error(const Diags *d, char *err, size_t n) {
    for (const Diag *x = d->first; x; x = x->next) {
        if (x->level != DIAG_ERROR) continue;
        if (x->node_name) snprintf(err, n, "node '%s' (%s): %s", x->node_name, x->op_name, x->msg);
        else snprintf(err, n, "%s", x->msg);
        return;
    }
    snprintf(err, n, "the model cannot be specialized to these inputs");
}

static int find_input(const char *name) {
    for (int i = 0; i < D.nin; i++) if (strcmp(D.ins[i].name, name) == 0) return i;
    return -1;
}

static const Bound *find_bound(const char *name) {
    for (int i = 0; i < D.nbound; i++) if (strcmp(D.bound[i].name, name) == 0) return &D.bound[i];
    return NULL;
}

static bool add_bound(const char *name, int dtype, int rank, const int64_t *dims, const void *data, int64_t nbytes) {
    if (D.nbound == D.capbound) {
        int cap = D.capbound ? 2 * D.capbound : 16;
        Bound *nb = realloc(D.bound, sizeof *nb * (size_t)cap);
        if (!nb) return false;
        D.bound = nb, D.capbound = cap;
    }
    void *copy = malloc(nbytes ? (size_t)nbytes : 1);
    char *nm = strdup(name);
    if (!copy || !nm) { free(copy); free(nm); return false; }
    memcpy(copy, data, (size_t)nbytes);
    Bound *b = &D.bound[D.nbound++];
    memset(b, 0, sizeof *b);
    b->name = nm;
    b->dtype = (DType)dtype;
    b->rank = rank;
    for (int i = 0; i < rank; i++) b->dims[i] = dims[i];
    b->data = copy;
    return true;
}

/* The model read with this run's input shapes; bound graph inputs become
 * constants, bound node outputs are left to the infer pass (Graph.bound). */
static Graph *load(Arena *a, Diags *d) {
    ShapeOverride *so = arena_alloc(a, sizeof *so * (size_t)(D.nin ? D.nin : 1));
    for (int i = 0; i < D.nin; i++) {
        so[i].name = D.ins[i].name;
        so[i].rank = D.inputs[i].rank;
        memcpy(so[i].dims, D.inputs[i].shape, sizeof so[i].dims);
    }
    FrontendOpts fo = {so, D.nin, 1, false};
    Graph *g = kir_load_mem(a, D.ir, D.ir_len, D.w, D.wlen, &fo, d);
    if (!g) return NULL;
    g->services = &kir_services;
    for (int i = 0; i < g->inputs.n;) {
        Value *v = g->inputs.items[i];
        const Bound *b = find_bound(v->name);
        if (!b) { i++; continue; }
        v->data = b->data;
        for (int j = i; j + 1 < g->inputs.n; j++) g->inputs.items[j] = g->inputs.items[j + 1];
        g->inputs.n--;
    }
    g->bound = D.bound;
    g->nbound = D.nbound;
    return g;
}

/* Compiles the model, or with `target` only the node that makes that value
 * (its outputs the graph's). */
static Kir *compile(Arena *a, Diags *d, const char *target, Graph **gout) {
    Graph *g = *gout = load(a, d);
    if (!g) return NULL;
    if (target) {
        Value *v = graph_find_value(g, target);
        if (!v) { /* a value of a branch inlined by canonicalize (an If on a condition computed before) */
            Diags scratch = {.arena = a};
            (void)pass_canonicalize(g, &scratch); /* it stops where target is needed, the rewrites done */
            v = graph_find_value(g, target);
        }
        Node *p = v ? v->producer : NULL;
        if (!p) { diag_error(d, NULL, "internal error: value '%s' has no node to compute it", target); return NULL; }
        PtrVec outs = {0};
        for (int i = 0; i < p->n_out; i++)
            if (p->out[i] && p->out[i]->name[0]) vec_push(a, &outs, p->out[i]);
        g->outputs = outs;
        if (!graph_toposort(g, d) || !pass_dce(g, d)) return NULL; /* its ancestors only, before shapes are inferred */
    }
    PassOpts po = {D.opt_level, NULL, NULL, false, NULL, NULL};
    return pipeline_run(g, &po, d) ? kir_lower_ex(g, false, d) : NULL; /* constants read where they are */
}

static int *input_map(const Kir *k) {
    int *map = malloc(sizeof *map * (size_t)(k->ninputs + 1));
    for (int j = 0; map && j < k->ninputs; j++) map[j] = find_input(k->inputs[j].v->name);
    return map;
}

static const void *const *map_inputs(const Kir *k, const int *map, const void *const *inputs, const void **buf) {
    for (int j = 0; j < k->ninputs; j++) buf[j] = inputs[map[j]];
    return buf;
}

static kiln_context *ctx_create(const Kir *k, int threads) {
    kiln_context *c = kiln_context_create(k->workspace_size, k->state_size, threads, k->weights ? k->weights : no_weights, NULL, 0, 0,
                                          NULL);
    if (c && kir_exec(k, c, NULL, NULL, c->ws, 1) != 0) { /* a create-time step failed */
        kiln_context_destroy(c);
        return NULL;
    }
    return c;
}

/* Output i's place, its run-time dims (its declared dims unless sized by the run) and bytes. */
static const void *out_data(const Kir *k, const kiln_context *c, const void *const *inputs, int i, const int64_t **dims, int64_t *nbytes) {
    const KIo *o = &k->outputs[i];
    *dims = o->shape_buf >= 0 ? kir_buf_ptr(k, o->shape_buf, inputs, c->ws, c->state) : o->v->dims;
    *nbytes = dtype_size(o->v->dtype);
    for (int j = 0; j < o->v->rank; j++) *nbytes *= (*dims)[j];
    return kir_buf_ptr(k, o->buf, inputs, c->ws, c->state);
}

/* Runs the program k (the node of `target`) on this run's inputs and binds its outputs. */
static bool run_and_bind(const Kir *k, char *err, size_t n) {
    int *map = input_map(k);
    const void **ib = calloc((size_t)k->ninputs + 1, sizeof *ib), **all = calloc((size_t)D.nin + 1, sizeof *all);
    kiln_context *c = map && ib && all ? ctx_create(k, D.threads) : NULL;
    bool ok = c != NULL;
    if (!ok) snprintf(err, n, "out of memory");
    for (int i = 0; all && i < D.nin; i++) all[i] = D.inputs[i].data;
    const void *const *in = ok ? map_inputs(k, map, all, ib) : NULL;
    if (ok && kir_exec(k, c, NULL, in, c->ws, 0) != 0) {
        snprintf(err, n, "the run failed at %s", kiln_context_error(c));
        ok = false;
    }
    for (int i = 0; ok && i < k->noutputs; i++) {
        const Value *v = k->outputs[i].v;
        const int64_t *dims;
        int64_t nb;
        const void *p = out_data(k, c, in, i, &dims, &nb);
        if (!find_bound(v->name) && !add_bound(v->name, v->dtype, v->rank, dims, p, nb)) { snprintf(err, n, "out of memory"); ok = false; }
    }
    if (c) kiln_context_destroy(c);
    free(map);
    free(ib);
    free(all);
    return ok;
}

/* Compiles the model (target NULL; kept in D) or computes and binds target,
 * computing first what either needs. */
static bool specialize(const char *target, int depth, char *err, size_t n) {
    for (int round = 0; round < 256; round++) {
        Arena *a = arena_new();
        Diags d = {.arena = a};
        Graph *g = NULL;
        Kir *k = compile(a, &d, target, &g);
        if (k && !target) {
            D.arena = a, D.g = g, D.k = k;
            return true;
        }
        if (k) {
            bool ok = run_and_bind(k, err, n);
            arena_free(a);
            return ok;
        }
        const Value *need = d.need;
        if (!need || !g || !graph_has_value(g, need) || depth >= 64) {
            first_error(&d, err, n);
            arena_free(a);
            return false;
        }
        char *name = strdup(need->name);
        bool input = need->producer == NULL;
        arena_free(a);
        if (!name) { snprintf(err, n, "out of memory"); return false; }
        bool ok;
        if (find_bound(name)) ok = false, snprintf(err, n, "internal error: value '%s' is needed again after it was computed", name);
        else if (input) { /* a graph input whose contents decide a shape: the file's */
            int i = find_input(name);
            ok = i >= 0 && add_bound(name, D.inputs[i].dtype, D.inputs[i].rank, D.inputs[i].shape, D.inputs[i].data, D.inputs[i].nbytes);
            if (!ok) snprintf(err, n, "value '%s' is needed to decide a shape but cannot be computed", name);
        } else ok = specialize(name, depth + 1, err, n);
        free(name);
        if (!ok) return false;
    }
    snprintf(err, n, "the model needs too many values computed before it compiles");
    return false;
}

static int prepare(const kiln_model *m, const kiln_tensor *inputs, char *err, size_t n) {
    (void)m;
    D.inputs = inputs;
    if (!specialize(NULL, 0, err, n)) return -1;
    const Kir *k = D.k;
    const Graph *g = D.g;
    if (k->noutputs != D.nout) { /* sequence outputs: their tensors */
        free(D.outs), free(D.out_dims);
        D.nout = k->noutputs;
        D.outs = calloc((size_t)D.nout + 1, sizeof *D.outs);
        D.out_dims = calloc((size_t)D.nout + 1, sizeof *D.out_dims);
        M.outputs = D.outs, M.num_outputs = D.nout;
    }
    D.names = calloc((size_t)k->nsteps + 1, sizeof *D.names);
    D.in_buf = calloc((size_t)k->ninputs + 1, sizeof *D.in_buf);
    if (!D.outs || !D.out_dims || !D.names || !D.in_buf || !(D.in_map = input_map(k))) { snprintf(err, n, "out of memory"); return -1; }
    for (int s = 0; s < k->nsteps; s++) D.names[s] = kir_step_name(k, s);
    for (int i = 0; i < D.nout; i++) {
        const Value *v = k->outputs[i].v;
        kiln_tensor_info *t = &D.outs[i];
        t->name = v->name;
        t->dtype = v->dtype;
        t->rank = v->rank;
        t->shape = D.out_dims[i];
        for (int j = 0; j < v->rank; j++) D.out_dims[i][j] = v->dims[j];
        t->nbytes = value_nbytes(v);
        t->seq = g->out_seq ? g->out_seq[i] : 0;
        t->group = g->out_group ? g->out_group[i] : 0;
    }
    if (k->nmoe) { /* the MoE layers whose routing the context counts (--routing-profile-out) */
        kiln_moe_layer *ml = calloc((size_t)k->nmoe, sizeof *ml);
        if (!ml) { snprintf(err, n, "out of memory"); return -1; }
        for (int i = 0; i < k->nmoe; i++)
            ml[i] = (kiln_moe_layer){k->moe[i].name, k->moe[i].experts, k->moe[i].top_k, k->moe[i].tokens, k->moe[i].offset};
        M.num_moe_layers = k->nmoe, M.moe_layers = D.moe = ml;
    }
    return 0;
}

static void *dyn_create(int threads) { return ctx_create(D.k, threads); }
static void dyn_destroy(void *c) { kiln_context_destroy(c); }

static int dyn_run(void *cv, const void *const *inputs, void *const *outputs) {
    kiln_context *c = cv;
    const Kir *k = D.k;
    const void *const *in = map_inputs(k, D.in_map, inputs, D.in_buf);
    int rc = kir_exec(k, c, D.names, in, c->ws, 0);
    for (int i = 0; rc == 0 && i < k->noutputs; i++) {
        const int64_t *dims;
        int64_t nb;
        const void *p = out_data(k, c, in, i, &dims, &nb);
        memcpy(outputs[i], p, (size_t)nb);
    }
    return rc;
}

static const int64_t *dyn_output_shape(const void *cv, int i) {
    const kiln_context *c = cv;
    const KIo *o = &D.k->outputs[i];
    return o->shape_buf >= 0 ? kir_buf_ptr(D.k, o->shape_buf, NULL, c->ws, c->state) : D.outs[i].shape;
}

static const int64_t *dyn_counts(const void *cv) { return (const int64_t *)((const kiln_context *)cv)->state; }

int kiln_dyn_main(const char *name, const char *ir, size_t ir_len, const unsigned char *w, size_t wlen, int opt_level, int threads,
                  int argc, char **argv);

/* The main() of an executable that specializes its model to its inputs. */
int kiln_dyn_main(const char *name, const char *ir, size_t ir_len, const unsigned char *w, size_t wlen, int opt_level, int threads,
                  int argc, char **argv) {
    D.ir = ir, D.ir_len = ir_len, D.w = w, D.wlen = wlen, D.opt_level = opt_level, D.threads = threads;
    for (int i = 1; i + 1 < argc; i++) /* the executable's --threads, for the runs that compute shapes too */
        if (strcmp(argv[i], "--threads") == 0) D.threads = atoi(argv[i + 1]);
    Arena *a = arena_new();
    Diags d = {.arena = a};
    FrontendOpts fo = {NULL, 0, 1, true};
    Graph *g = kir_load_mem(a, ir, ir_len, w, wlen, &fo, &d);
    if (!g) {
        char err[1024];
        first_error(&d, err, sizeof err);
        fprintf(stderr, "%s: error: the model it carries cannot be read: %s\n", name, err);
        return 1;
    }
    D.nin = g->inputs.n, D.nout = g->outputs.n;
    D.ins = calloc((size_t)D.nin + 1, sizeof *D.ins);
    D.outs = calloc((size_t)D.nout + 1, sizeof *D.outs);
    D.in_dims = calloc((size_t)D.nin + 1, sizeof *D.in_dims);
    D.out_dims = calloc((size_t)D.nout + 1, sizeof *D.out_dims);
    if (!D.ins || !D.outs || !D.in_dims || !D.out_dims) { fprintf(stderr, "%s: error: out of memory\n", name); return 1; }
    for (int i = 0; i < D.nin; i++) {
        const Value *v = g->inputs.items[i];
        for (int j = 0; j < v->rank; j++) D.in_dims[i][j] = v->dims[j];
        D.ins[i] = (kiln_tensor_info){v->name, v->dtype, v->rank, D.in_dims[i], -1, 0, 0, 0};
    }
    for (int i = 0; i < D.nout; i++) {
        const Value *v = g->outputs.items[i];
        D.outs[i] = (kiln_tensor_info){v->name, v->dtype, v->rank > 0 ? v->rank : 0, D.out_dims[i], 0, 0, 0, 0};
    }
    M = (kiln_model){name, D.nin, D.nout, D.ins, D.outs, dyn_create, dyn_run, dyn_destroy, threads, 0, NULL, dyn_counts,
                     NULL, 0, 0, dyn_output_shape, prepare};
    int rc = kiln_exe_main(&M, argc, argv);
    if (D.arena) arena_free(D.arena);
    for (int i = 0; i < D.nbound; i++) free((void *)D.bound[i].name), free((void *)D.bound[i].data);
    free(D.bound);
    free(D.in_map);
    free(D.in_buf);
    free(D.moe);
    free(D.names);
    free(D.ins), free(D.outs), free(D.in_dims), free(D.out_dims);
    arena_free(a);
    return rc;
}
