/* passes.h: the pass manager and the passes, one per file, named as
 * --dump-after names them. */
#ifndef KILN_PASSES_H
#define KILN_PASSES_H

#include "../ir/ir.h"
#include "../ir/target.h"
#include "../runtime/kiln_rt.h"

typedef struct PassOpts {
    int opt_level;               /* 0..3 */
    const char *dump_after;      /* pass name, "all", or NULL */
    const char *dump_dir;
    bool verbose;                /* print each pass and its time to stderr */
    const char *stop_after;      /* run every pass, whatever the level, up to this one; or NULL */
    const PlaceOpts *place;      /* expert placement: target, profile, strategy; NULL: no placement */
} PassOpts;

typedef bool (*PassFn)(Graph *g, Diags *d);

bool pass_canonicalize(Graph *g, Diags *d); /* the rewrites shape inference needs first */
bool pass_infer(Graph *g, Diags *d); /* shapes, types, and constant folding */
bool pass_dce(Graph *g, Diags *d);
bool pass_cse(Graph *g, Diags *d);
bool pass_fold_bn(Graph *g, Diags *d);
bool pass_patterns(Graph *g, Diags *d);
bool pass_fuse(Graph *g, Diags *d);
bool pass_plan(Graph *g, Diags *d);
bool pass_place(Graph *g, const PassOpts *o, Diags *d);
/* A model with a symbolic batch (inputs' Value.batch): checks from probe
 * graphs p1 and p2 (batch 1 and 2, as read) that running g once per sample is
 * the model's meaning, and marks g's outputs that carry the batch. */
bool batch_verify(Graph *p1, Graph *p2, Graph *g, Diags *d);

/* `kiln place`'s report of the plan the place pass wrote (text or JSON). */
#include <stdio.h>
bool place_print(const Graph *g, const PlaceOpts *o, bool json, FILE *f, Diags *d);

/* Runs the pipeline of o->opt_level, verifying after every pass. */
bool pipeline_run(Graph *g, const PassOpts *o, Diags *d);
/* The pass names, in pipeline order, for --help and --dump-after checks. */
bool pipeline_has_pass(const char *name);
const char *pipeline_pass_names(void);

#endif
