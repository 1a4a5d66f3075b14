/* pipeline.c: the pass manager.
 *
 * The pipeline is one list; each -O level runs the passes whose min_level it
 * reaches, in order (`kiln dump --after PASS` runs every pass up to PASS). ir_verify runs after every pass, so a pass that breaks an
 * invariant is named at once. --dump-after PASS|all writes the text IR after the
 * named passes to DIR/NN-PASS.kir. */
#include "passes.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *name;
    PassFn fn;
    bool (*fn_opts)(Graph *g, const PassOpts *o, Diags *d); /* a pass that reads the options */
    int min_level;
} Pass;

static const Pass pipeline[] = {
    {"canonicalize", pass_canonicalize, NULL, 0},
    {"infer", pass_infer, NULL, 0},
    {"dce", pass_dce, NULL, 0},
    {"cse", pass_cse, NULL, 1},
    {"fold-bn", pass_fold_bn, NULL, 1},
    {"patterns", pass_patterns, NULL, 2},
    {"fuse", pass_fuse, NULL, 2},
    {"place", NULL, pass_place, 0},
    {"plan", pass_plan, NULL, 0},
};
#define NPASS (int)(sizeof pipeline / sizeof *pipeline)

bool pipeline_has_pass(const char *name) {
    for (int i = 0; i < NPASS; i++) if (strcmp(pipeline[i].name, name) == 0) return true;
    return strcmp(name, "all") == 0;
}

const char *pipeline_pass_names(void) { return "canonicalize, infer, dce, cse (-O1+), fold-bn (-O1+), patterns (-O2+), fuse (-O2+), place, plan"; }

static bool dump(Graph *g, int idx, const char *name, const char *dir, Diags *d) {
    mkdir(dir, 0777);
    char path[4096], wpath[4200];
    snprintf(path, sizeof path, "%s/%02d-%s.kir", dir, idx, name);
    snprintf(wpath, sizeof wpath, "%s.weights", path);
    FILE *f = fopen(path, "w");
    if (!f) { diag_error(d, NULL, "cannot write dump file %s", path); return false; }
    const char *slash = strrchr(wpath, '/');
    PrintOpts po = {wpath, slash ? slash + 1 : wpath, 16};
    bool ok = ir_print_text(g, f, &po, d);
    return fclose(f) == 0 && ok;
}

/* Runs fn over the subgraphs of g's control-flow nodes (If, Loop, Scan), at any
 * depth: their bodies are optimized like the graph. (canonicalize and infer reach them through
 * the nodes' shape rules, plan plans them itself, place looks at the graph's
 * MoE layers only.) */
static bool on_subgraphs(Graph *g, PassFn fn, Diags *d) {
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!(op_table[n->op].flags & F_CONTROL)) continue;
        for (int j = 0; j < n->n_attr; j++)
            if (n->attrs[j].kind == ATTR_GRAPH && subgraph_live(n, n->attrs[j].g) && (!fn(n->attrs[j].g, d) || !on_subgraphs(n->attrs[j].g, fn, d)))
                return false;
    }
    return true;
}

bool pipeline_run(Graph *g, const PassOpts *o, Diags *d) {
    for (int i = 0; i < NPASS; i++) {
        const Pass *p = &pipeline[i];
        if (o->opt_level < p->min_level && !o->stop_after) continue;
        double t0 = kiln_now_ms();
        if (!(p->fn ? p->fn(g, d) : p->fn_opts(g, o, d))) return false;
        if (p->fn && p->fn != pass_canonicalize && p->fn != pass_infer && p->fn != pass_plan && !on_subgraphs(g, p->fn, d)) return false;
        if (!graph_parse_attrs(g, d)) return false; /* what the pass changed, subgraphs included */
        if (o->verbose) {
            fprintf(stderr, "kiln: pass %-6s %8.2f ms  %d nodes", p->name, kiln_now_ms() - t0, g->nodes.n);
            if (p->fn == pass_plan)
                fprintf(stderr, ", workspace %lld bytes (greedy by size %lld, lower bound %lld)", (long long)g->workspace_size,
                        (long long)g->workspace_greedy, (long long)g->workspace_bound);
            fputc('\n', stderr);
        }
        if (!ir_verify(g, d)) {
            diag_error(d, NULL, "internal error: the IR is invalid after pass '%s'", p->name);
            return false;
        }
        if (o->dump_after && (strcmp(o->dump_after, "all") == 0 || strcmp(o->dump_after, p->name) == 0))
            if (!dump(g, i, p->name, o->dump_dir ? o->dump_dir : ".", d)) return false;
        if (o->stop_after && strcmp(o->stop_after, p->name) == 0) break;
    }
    return true;
}
