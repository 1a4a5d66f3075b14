/* kiln.c: the command line, and the only place that prints to the user or exits.
 *
 * main parses the subcommand and its options, then runs the flow of DESIGN.md in
 * one straight line: read the model (frontend/), run the pass pipeline
 * (passes/), lower to Kir (codegen/lower.c), and write outputs (codegen/link.c).
 * Library code reports problems as diagnostics; they are printed here as
 * "FILE: error: message" or "FILE: node 'NAME' (OP): error: message", with exit
 * status 1, and 2 for usage errors. */
#define _GNU_SOURCE
#include "codegen/link.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KILN_VERSION "0.1.0"

static const char *usage_text =
    "usage: kiln compile MODEL [options]       compile MODEL (.onnx or .kir) to native code\n"
    "       kiln dump MODEL [options]          print the IR as text, DOT or JSON\n"
    "       kiln run MODEL [INPUT...] [-o DIR] compile to a cached executable and run it once\n"
    "       kiln place MODEL [options]         plan Mixture-of-Experts placement; print the plan and its cost\n"
    "       kiln --help | --version | --list-ops\n"
    "\n"
    "compile options:\n"
    "  -o PATH               output path [MODEL's name without extension, here]\n"
    "  --emit KIND           exe | lib (static library + header) | so (shared library + header)\n"
    "                        | obj (object + header) | header | c (C source) | ll (LLVM IR) [exe]\n"
    "  --backend c|llvm      generated C compiled by cc, or LLVM IR built and compiled in-process\n"
    "                        with libLLVM (--emit ll implies llvm) [c]\n"
    "  -O0 .. -O3            optimization level [-O2]; -O3 also compiles the runtime's kernels into\n"
    "                        the model, inlined into each call (LLVM: any output; C: executables)\n"
    "  --target T            host (this machine: with llvm, its CPU's features), a triple\n"
    "                        (x86_64-linux-gnu: any x86-64; aarch64-linux-gnu: 64-bit ARM, built\n"
    "                        with aarch64-linux-gnu-gcc, placement on targets/kunpeng920.json),\n"
    "                        or a target file for expert placement (targets/NAME.json, or NAME of a\n"
    "                        shipped one; code for this machine) [host]\n"
    "  --placement P         contiguous | round-robin | balanced expert placement [balanced]\n"
    "  --routing-profile F   routing profile from a binary's --routing-profile-out (repeatable: merged)\n"
    "  --redundant N         extra expert slots per MoE layer for balanced [devices - experts mod\n"
    "                        devices: every device gets as many slots]\n"
    "  --shape NAME=D0xD1..  fix a graph input's dimensions (repeatable); D0 may be N: the batch,\n"
    "                        taken from the input files at run time (as a symbolic dim 0 is);\n"
    "                        unfixed symbolic dims, and shapes computed from input data, make an\n"
    "                        executable that specializes the model to its inputs when it runs\n"
    "                        (for this machine; a library needs them fixed: --shape, --bind);\n"
    "                        a sequence input: NAME=[D0xD1,D0,...], the shapes of its tensors ([]:\n"
    "                        empty, () a scalar); an optional input: its shape(s), or NAME=none\n"
    "  --bind NAME=FILE      make a graph input a constant with FILE's tensor (.npy or .pb)\n"
    "  --threads N           threads the executable starts with [all cores]\n"
    "  --weights embed|external  weights inside the output, or in OUT.weights beside it,\n"
    "                        mapped when the model is created [embed]\n"
    "  --name PREFIX         prefix of exported C symbols [output base name]\n"
    "  --dump-after PASS|all write the IR after PASS to --dump-dir DIR [.]\n"
    "  -MD, -MF FILE         write a make dependency file [OUT.d]\n"
    "  -v                    print each pass, its time, and the commands run\n"
    "\n"
    "dump options: --format text|dot|json [text], --after PASS [the last], -o FILE,\n"
    "  -O0..-O3, --shape, --inline-weights (no side file; constants written inline)\n"
    "place options: --target, --placement, --routing-profile, --redundant as above,\n"
    "  --threads N (devices of the host target), --format text|json [text], -o FILE\n"
    "run options: -o DIR, and --format, --threads, --repeat, --routing-profile-out are passed to the executable\n"
    "\n"
    "environment: KILN_PROFILE=1 when a compiled model runs: each step's time per run, printed\n"
    "  to stderr when its context is destroyed; CC, KILN_CC_aarch64: the C compilers used;\n"
    "  KILN_KEEP_TEMPS=1: keep the generated sources; KILN_NO_WINOGRAD=1: 3x3 convolutions by\n"
    "  im2col GEMM instead of Winograd\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "kiln: error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(run 'kiln --help' for usage)\n");
    return 2;
}

static int print_diags(const Diags *d, const char *file) {
    for (const Diag *x = d->first; x; x = x->next) {
        const char *lvl = x->level == DIAG_ERROR ? "error" : x->level == DIAG_WARNING ? "warning" : "note";
        if (x->node_name) fprintf(stderr, "%s: node '%s' (%s): %s: %s\n", file, x->node_name, x->op_name, lvl, x->msg);
        else fprintf(stderr, "%s: %s: %s\n", file, lvl, x->msg);
    }
    return d->errors ? 1 : 0;
}

typedef struct Options {
    const char *model, *out, *emit, *backend, *target, *name, *dump_after, *dump_dir, *mf, *format, *after, *placement;
    int opt_level, threads, redundant;
    const char *profiles[64];
    int nprofiles;
    bool md, verbose, inline_weights, external_weights;
    ShapeOverride shapes[64];
    int nshapes;
    const char *binds[64];
    int nbinds;
    const char *run_args[256];
    int nrun;
} Options;

static bool parse_dims(const char *p, ShapeOverride *s);

/* NAME=D0xD1x..., or NAME=[D0xD1,D0,...] for a sequence input (its tensors). */
static bool parse_shape(const char *arg, ShapeOverride *s) {
    const char *eq = strrchr(arg, '=');
    if (!eq || eq == arg) return false;
    s->name = strndup(arg, (size_t)(eq - arg));
    s->nelems = 0;
    s->elems = NULL;
    s->empty_list = s->absent = false;
    const char *p = eq + 1;
    if (strcmp(p, "none") == 0) return s->absent = true; /* an absent optional */
    if (strcmp(p, "[]") == 0) return s->empty_list = true; /* an empty sequence */
    if (*p != '[') return parse_dims(p, s);
    size_t l = strlen(p);
    if (l < 3 || p[l - 1] != ']') return false;
    char *list = strndup(p + 1, l - 2);
    for (char *q = list; *q; q++) s->nelems += *q == ',';
    s->nelems++;
    s->elems = calloc((size_t)s->nelems, sizeof *s->elems);
    bool ok = s->elems && s->nelems <= 64;
    char *save = NULL, *tok = strtok_r(list, ",", &save);
    for (int i = 0; ok && i < s->nelems; i++, tok = strtok_r(NULL, ",", &save)) ok = tok && parse_dims(tok, &s->elems[i]) && s->elems[i].dims[0] >= 0;
    free(list);
    return ok;
}

static bool parse_dims(const char *p, ShapeOverride *s) {
    s->rank = 0;
    if (!*p || strcmp(p, "()") == 0) return true; /* a scalar (in a sequence's list: "()") */
    for (;;) {
        char *end;
        if (s->rank == 0 && *p == 'N' && (p[1] == 'x' || !p[1])) { /* the batch, from the input files */
            s->dims[s->rank++] = -1;
            if (!p[1]) return true;
            p += 2;
            continue;
        }
        if (!isdigit((unsigned char)*p)) return false;
        long long v = strtoll(p, &end, 10);
        if (s->rank >= MAX_RANK || v < 0) return false;
        s->dims[s->rank++] = v;
        if (!*end) return true;
        if (*end != 'x') return false;
        p = end + 1;
    }
}

static const char *base_name(const char *path, char *buf, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, n, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    return buf;
}

static char *c_identifier(const char *s) {
    char *r = malloc(strlen(s) + 2), *w = r;
    if (!r) return NULL;
    if (!isalpha((unsigned char)*s) && *s != '_') *w++ = '_';
    for (; *s; s++) *w++ = isalnum((unsigned char)*s) ? *s : '_';
    *w = 0;
    return r;
}

/* Folder holding include/ and lib/: $KILN_HOME, else the kiln binary's parent. */
static const char *find_home(void) {
    static char home[PATH_MAX];
    const char *env = getenv("KILN_HOME");
    if (env && *env) return env;
    ssize_t n = readlink("/proc/self/exe", home, sizeof home - 1);
    if (n <= 0) return ".";
    home[n] = 0;
    for (int i = 0; i < 2; i++) {
        char *s = strrchr(home, '/');
        if (s) *s = 0;
    }
    return home;
}

static int parse_options(int argc, char **argv, int start, Options *o, bool is_run) {
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
#define VAL(field) do { if (!more) return usage_error("option %s needs a value", a); o->field = argv[++i]; } while (0)
        if (strcmp(a, "-o") == 0) VAL(out);
        else if (strcmp(a, "--emit") == 0) VAL(emit);
        else if (strcmp(a, "--backend") == 0) VAL(backend);
        else if (strcmp(a, "--target") == 0) VAL(target);
        else if (strcmp(a, "--name") == 0) VAL(name);
        else if (strcmp(a, "--dump-after") == 0) VAL(dump_after);
        else if (strcmp(a, "--dump-dir") == 0) VAL(dump_dir);
        else if (strcmp(a, "-MF") == 0) VAL(mf);
        else if (strcmp(a, "--after") == 0) VAL(after);
        else if (strcmp(a, "-MD") == 0) o->md = true;
        else if (strcmp(a, "-v") == 0) o->verbose = true;
        else if (strcmp(a, "--inline-weights") == 0) o->inline_weights = true;
        else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3]) o->opt_level = a[2] - '0';
        else if (strcmp(a, "--shape") == 0) {
            if (!more) return usage_error("option %s needs a value", a);
            if (o->nshapes >= 64 || !parse_shape(argv[++i], &o->shapes[o->nshapes++]))
                return usage_error("--shape takes NAME=D0xD1x..., not '%s'", argv[i]);
        } else if (strcmp(a, "--bind") == 0) {
            if (!more) return usage_error("option %s needs a value", a);
            if (o->nbinds >= 64 || !strchr(argv[++i], '=')) return usage_error("--bind takes NAME=FILE, not '%s'", argv[i]);
            o->binds[o->nbinds++] = argv[i];
        } else if (strcmp(a, "--weights") == 0) {
            if (!more) return usage_error("option %s needs a value", a);
            if (strcmp(argv[++i], "embed") == 0) o->external_weights = false;
            else if (strcmp(argv[i], "external") == 0) o->external_weights = true;
            else return usage_error("--weights takes embed or external, not '%s'", argv[i]);
        } else if (strcmp(a, "--placement") == 0) {
            VAL(placement);
            PlaceStrategy ps;
            if (!place_strategy_parse(o->placement, &ps)) return usage_error("--placement takes contiguous, round-robin or balanced, not '%s'", o->placement);
        } else if (strcmp(a, "--routing-profile") == 0) {
            if (!more) return usage_error("option %s needs a value", a);
            if (o->nprofiles >= 64) return usage_error("too many --routing-profile files%s", "");
            o->profiles[o->nprofiles++] = argv[++i];
        } else if (strcmp(a, "--redundant") == 0) {
            if (!more) return usage_error("option %s needs a value", a);
            char *end;
            long r = strtol(argv[++i], &end, 10);
            if (*end || !*argv[i] || r < 0 || r > 1000000) return usage_error("--redundant takes a number of 0 or more, not '%s'", argv[i]);
            o->redundant = (int)r;
        } else if (strcmp(a, "--threads") == 0 && !is_run) {
            if (!more) return usage_error("option %s needs a value", a);
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 1024) return usage_error("--threads takes a number from 1 to 1024, not '%s'", argv[i]);
            o->threads = (int)t;
        } else if (strcmp(a, "--format") == 0 && !is_run) VAL(format);
        else if (is_run && (strcmp(a, "--format") == 0 || strcmp(a, "--threads") == 0 || strcmp(a, "--repeat") == 0 ||
                            strcmp(a, "--routing-profile-out") == 0)) {
            if (!more) return usage_error("option %s needs a value", a);
            if (o->nrun + 2 >= 256) return usage_error("too many arguments%s", "");
            o->run_args[o->nrun++] = a;
            o->run_args[o->nrun++] = argv[++i];
        } else if (a[0] == '-' && a[1]) return usage_error("unknown option '%s'", a);
        else if (!o->model) o->model = a;
        else if (is_run) {
            if (o->nrun + 1 >= 256) return usage_error("too many arguments%s", "");
            o->run_args[o->nrun++] = a;
        } else return usage_error("unexpected argument '%s'", a);
#undef VAL
    }
    if (!o->model) return usage_error("no model given%s", "");
    return 0;
}

/* --bind NAME=FILE: the input becomes a constant holding the file's tensor. */
static bool bind_inputs(Graph *g, const Options *o, Diags *d, PtrVec *deps) {
    for (int b = 0; b < o->nbinds; b++) {
        const char *eq = strchr(o->binds[b], '=');
        char *name = arena_strdup(g->arena, o->binds[b]);
        name[eq - o->binds[b]] = 0;
        const char *file = eq + 1;
        int at = -1;
        for (int i = 0; i < g->inputs.n; i++)
            if (strcmp(((Value *)g->inputs.items[i])->name, name) == 0) at = i;
        if (at < 0) { diag_error(d, NULL, "--bind names '%s', which is not a graph input", name); return false; }
        if (g->in_group && g->in_group[at]) { diag_error(d, NULL, "--bind names '%s', a sequence or optional input: kiln binds tensors", name); return false; }
        kiln_tensor t;
        char err[1024];
        if (kiln_read_tensor(file, &t, err, sizeof err) != 0) { diag_error(d, NULL, "--bind: %s", err); return false; }
        if (t.dtype == KILN_DT_STRING) {
            kiln_tensor_free(&t);
            diag_error(d, NULL, "--bind: %s holds strings: kiln binds numeric tensors only", file);
            return false;
        }
        Value *v = g->inputs.items[at];
        v->dtype = (DType)t.dtype;
        v->rank = t.rank;
        memcpy(v->dims, t.shape, sizeof v->dims);
        void *data = arena_alloc(g->arena, (size_t)(t.nbytes ? t.nbytes : 1));
        memcpy(data, t.data, (size_t)t.nbytes);
        kiln_tensor_free(&t);
        v->data = data;
        for (int i = at; i + 1 < g->inputs.n; i++) {
            g->inputs.items[i] = g->inputs.items[i + 1];
            if (g->in_seq) g->in_seq[i] = g->in_seq[i + 1], g->in_group[i] = g->in_group[i + 1];
        }
        g->inputs.n--;
        vec_push(g->arena, deps, arena_strdup(g->arena, file));
    }
    return true;
}

static Graph *read_model_as(Arena *a, const Options *o, int64_t batch, bool keep_symbolic, Diags *d, PtrVec *deps) {
    FrontendOpts fo = {o->shapes, o->nshapes, batch, keep_symbolic};
    size_t l = strlen(o->model);
    Graph *g = (l > 4 && strcmp(o->model + l - 4, ".kir") == 0) ? kir_load(a, o->model, &fo, d, deps)
                                                                : onnx_load(a, o->model, &fo, d, deps);
    if (g) g->services = &kir_services; /* folding and kernel capabilities, lent to the IR */
    return g && bind_inputs(g, o, d, deps) ? g : NULL;
}

static Graph *read_model(Arena *a, const Options *o, int64_t batch, Diags *d, PtrVec *deps) {
    return read_model_as(a, o, batch, false, d, deps);
}

/* The model at a batch of 1; when its inputs have a symbolic batch (dim 0),
 * after checking on two probe reads (batch 1 and 2) that it may run once per
 * sample (passes/batch.c). */
static Graph *load_model(Arena *a, const Options *o, Diags *d, PtrVec *deps) {
    vec_push(a, deps, (void *)o->model);
    Graph *g = read_model(a, o, 1, d, deps);
    bool batched = false;
    for (int i = 0; g && i < g->inputs.n; i++) batched |= ((Value *)g->inputs.items[i])->batch;
    if (!batched) return g;
    Arena *pa = arena_new();
    Diags pd = {.arena = pa};
    PtrVec pdeps = {0};
    Graph *p1 = read_model(pa, o, 1, &pd, &pdeps), *p2 = p1 ? read_model(pa, o, 2, &pd, &pdeps) : NULL;
    bool ok = p1 && p2 && batch_verify(p1, p2, g, d);
    if (!p1 || !p2) diag_error(d, NULL, "the model cannot be read again to check its symbolic batch");
    if (!ok) d->run_time = true; /* an executable can take the batch when it runs */
    arena_free(pa);
    if (ok && o->verbose) fprintf(stderr, "kiln: dimension 0 of the inputs is the batch: the model runs once per sample\n");
    return ok ? g : NULL;
}

/* --target: host, a triple, or a target file that prepare_place reads. The
 * Debian triple the code is built for goes to *triple (this machine's for
 * host and target files); *host says the code runs here. */
static bool target_triple(const char *t, const char **triple, bool *host) {
    *triple = link_host_triple();
    *host = !t || strcmp(t, "host") == 0;
    if (t && (strcmp(t, "x86_64-linux-gnu") == 0 || strcmp(t, "aarch64-linux-gnu") == 0)) *triple = t;
    else if (t && strstr(t, "-linux-gnu") && !strstr(t, ".json")) return false;
    else *host = true; /* a target file: placement only */
    return true;
}

/* The placement target of --target T: the ARM triple plans for the Kunpeng 920 file. */
static const char *placement_target(const char *t) {
    if (t && strcmp(t, "aarch64-linux-gnu") == 0) return "kunpeng920";
    if (t && strcmp(t, "x86_64-linux-gnu") == 0) return "host";
    return t;
}

/* Placement state of one compilation: filled by prepare_place when the model has
 * MoE layers (the host target is measured, so only then). */
typedef struct PlaceSetup {
    Target target;
    RoutingProfile profile;
    PlaceOpts opts;
} PlaceSetup;

static bool graph_has_moe(const Graph *g) {
    for (int i = 0; i < g->nodes.n; i++)
        if (op_table[((Node *)g->nodes.items[i])->op].flags & F_MOE) return true;
    return false;
}

/* NULL when there is nothing to place (or on error: check d->errors). */
static const PlaceOpts *prepare_place(const Options *o, Graph *g, PlaceSetup *ps, Diags *d, PtrVec *deps) {
    if (!graph_has_moe(g)) return NULL;
    memset(ps, 0, sizeof *ps);
    if (!target_load(g->arena, placement_target(o->target), find_home(), o->threads, &ps->target, d, deps)) return NULL;
    for (int i = 0; i < o->nprofiles; i++)
        if (!profile_load(g->arena, o->profiles[i], &ps->profile, d, deps)) return NULL;
    ps->opts.target = &ps->target;
    ps->opts.profile = o->nprofiles ? &ps->profile : NULL;
    ps->opts.strategy = PLACE_BALANCED;
    if (o->placement) place_strategy_parse(o->placement, &ps->opts.strategy);
    ps->opts.redundant = o->redundant;
    return &ps->opts;
}

/* Reads the model, and with `plan` its placement setup (target, profiles) when
 * it has MoE layers: *pl is NULL when there is nothing to place. NULL on any
 * error (diagnostics in d). */
static Graph *load_for_placement(const Options *o, Arena *a, Diags *d, PtrVec *deps, bool plan, const PlaceOpts **pl) {
    Graph *g = load_model(a, o, d, deps);
    *pl = g && plan ? prepare_place(o, g, arena_alloc(a, sizeof(PlaceSetup)), d, deps) : NULL;
    return g && !d->errors ? g : NULL;
}

static int check_target(const Options *o) {
    const char *triple;
    bool host;
    if (!target_triple(o->target, &triple, &host))
        return usage_error("--target %s: unknown triple (kiln builds for x86_64-linux-gnu and aarch64-linux-gnu)", o->target);
    return 0;
}

/* The executable of a model whose shapes are known only at run time
 * (driver/dyn.c): the model as read, symbolic input dims kept, --shape and
 * --bind applied. why: the static compile's diagnostics (the first error is
 * the reason, printed with -v). */
static bool build_dynamic(const Options *o, Arena *a, const Diags *why, Diags *d, PtrVec *deps, const LinkOpts *lo) {
    for (const Diag *x = why->first; x && o->verbose; x = x->next)
        if (x->level == DIAG_ERROR) {
            fprintf(stderr, "kiln: shapes known only at run time: the executable specializes the model to its inputs when it runs\n");
            if (x->node_name) fprintf(stderr, "kiln:   node '%s' (%s): %s\n", x->node_name, x->op_name, x->msg);
            else fprintf(stderr, "kiln:   %s\n", x->msg);
            break;
        }
    Graph *g = read_model_as(a, o, 1, true, d, deps);
    if (!g) return false;
    if (g->in_seq) { /* the static compile's reason stands */
        *d = *why;
        diag_add(d, DIAG_NOTE, NULL, "an executable takes shapes when it runs only for models without sequence or optional inputs");
        return false;
    }
    if (!graph_check_arity(g, d)) return false;
    if (o->external_weights) {
        diag_error(d, NULL, "--weights external: an executable whose shapes are known only at run time carries its weights inside");
        return false;
    }
    if (lo->llvm && o->verbose) fprintf(stderr, "kiln: --backend llvm: the model's kernels run from the runtime, specialized when it runs\n");
    return link_build_dynamic(g, lo, d);
}

static int cmd_compile(const Options *o) {
    const char *emit = o->emit ? o->emit : "exe";
    static const char *kinds[] = {"exe", "lib", "so", "obj", "header", "c", "ll"};
    bool known = false;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) if (strcmp(emit, kinds[i]) == 0) known = true;
    if (!known) return usage_error("--emit takes exe, lib, so, obj, header, c or ll, not '%s'", emit);
    if (o->backend && strcmp(o->backend, "c") != 0 && strcmp(o->backend, "llvm") != 0)
        return usage_error("--backend takes c or llvm, not '%s'", o->backend);
    bool llvm = (o->backend && strcmp(o->backend, "llvm") == 0) || strcmp(emit, "ll") == 0;
    if (strcmp(emit, "ll") == 0 && o->backend && strcmp(o->backend, "c") == 0)
        return usage_error("--emit ll is the LLVM backend's output (use --backend llvm, or --emit c)%s", "");
    if (strcmp(emit, "c") == 0 && llvm) return usage_error("--emit c is the C backend's output (use --emit ll with --backend llvm)%s", "");
    if (check_target(o)) return 2;
    if (o->dump_after && !pipeline_has_pass(o->dump_after)) return usage_error("--dump-after: unknown pass '%s'", o->dump_after);
    char base[PATH_MAX], outbuf[PATH_MAX];
    base_name(o->model, base, sizeof base);
    const char *out = o->out;
    if (!out) {
        static const struct { const char *emit, *ext; } ext[] = {{"exe", ""}, {"lib", ".a"}, {"so", ".so"}, {"obj", ".o"}, {"header", ".h"}, {"c", ".c"}, {"ll", ".ll"}};
        const char *e = "";
        for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) if (strcmp(ext[i].emit, emit) == 0) e = ext[i].ext;
        snprintf(outbuf, sizeof outbuf, "%s%s", base, e);
        out = outbuf;
    }
    char obase[PATH_MAX];
    char *prefix = c_identifier(o->name ? o->name : base_name(out, obase, sizeof obase));
    Arena *a = arena_new();
    Diags d = {.arena = a};
    PtrVec deps = {0};
    double t0 = kiln_now_ms();
    /* on the host the plan only predicts (the code does not depend on it) and
     * measuring the machine takes about a second: plan when someone will see it */
    const char *triple;
    bool host;
    target_triple(o->target, &triple, &host);
    bool measured = !o->target || strcmp(o->target, "host") == 0 || strcmp(o->target, "x86_64-linux-gnu") == 0;
    bool plan = !measured || o->nprofiles || o->placement || o->redundant >= 0 || o->dump_after || o->verbose;
    const PlaceOpts *pl;
    Graph *g = load_for_placement(o, a, &d, &deps, plan, &pl);
    PassOpts po = {o->opt_level, o->dump_after, o->dump_dir, o->verbose, NULL, pl};
    Kir *k = NULL;
    if (g && pipeline_run(g, &po, &d)) k = kir_lower(g, &d);
    if (k && o->verbose) fprintf(stderr, "kiln: lowered to %d steps, workspace %lld bytes, weights %lld bytes\n", k->nsteps, (long long)k->workspace_size, (long long)k->weights_size);
    LinkOpts lo = {emit, out, prefix, find_home(), o->opt_level, o->threads, o->verbose, o->external_weights, llvm, triple, host};
    bool ok;
    if (!k && d.run_time && strcmp(emit, "exe") == 0) { /* shapes known only at run time: the executable specializes then */
        Diags dd = {.arena = a};
        ok = build_dynamic(o, a, &d, &dd, &deps, &lo);
        d = dd;
    } else ok = k && link_build(k, g, &lo, &d);
    if (!ok && d.run_time && strcmp(emit, "exe") != 0)
        diag_add(&d, DIAG_NOTE, NULL, "an executable (--emit exe) takes such shapes when it runs");
    if (ok && (o->md || o->mf)) {
        char mf[PATH_MAX + 8];
        snprintf(mf, sizeof mf, "%s.d", out);
        ok = link_write_depfile(o->mf ? o->mf : mf, out, &deps, &d);
    }
    if (ok && o->verbose) fprintf(stderr, "kiln: wrote %s in %.1f ms\n", out, kiln_now_ms() - t0);
    int rc = print_diags(&d, o->model);
    if (!ok && !rc) rc = 1;
    free(prefix);
    arena_free(a);
    return rc;
}

/* Report output: stdout, or OUT written through OUT.tmp and renamed when
 * complete (nothing is left of a failed write). */
static FILE *report_open(const char *out, char *tmp, size_t n, Diags *d) {
    if (!out) return stdout;
    snprintf(tmp, n, "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f) diag_error(d, NULL, "cannot write %s: %s", out, strerror(errno));
    return f;
}

static bool report_close(FILE *f, const char *out, const char *tmp, bool ok) {
    if (!out || !f) return ok;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, out) != 0) ok = false;
    if (!ok) remove(tmp);
    return ok;
}

static int cmd_dump(const Options *o) {
    const char *fmt = o->format ? o->format : "text";
    if (strcmp(fmt, "text") != 0 && strcmp(fmt, "dot") != 0 && strcmp(fmt, "json") != 0)
        return usage_error("--format takes text, dot or json, not '%s'", fmt);
    if (o->after && (!pipeline_has_pass(o->after) || strcmp(o->after, "all") == 0)) return usage_error("--after: unknown pass '%s'", o->after);
    Arena *a = arena_new();
    Diags d = {.arena = a};
    PtrVec deps = {0};
    const PlaceOpts *pl;
    Graph *g = load_for_placement(o, a, &d, &deps, true, &pl);
    bool ok = g != NULL;
    if (ok) {
        PassOpts po = {o->opt_level, NULL, NULL, o->verbose, o->after, pl};
        ok = pipeline_run(g, &po, &d);
    }
    if (ok) {
        char tmp[PATH_MAX + 16], wpath[PATH_MAX + 16], base[PATH_MAX];
        FILE *f = report_open(o->out, tmp, sizeof tmp, &d);
        ok = f != NULL;
        if (ok && strcmp(fmt, "text") == 0) {
            /* large constants go to a side file the text names */
            if (o->out) snprintf(wpath, sizeof wpath, "%s.weights", o->out);
            else snprintf(wpath, sizeof wpath, "%s.weights", base_name(o->model, base, sizeof base));
            const char *ref = strrchr(wpath, '/');
            PrintOpts pr = {o->inline_weights ? NULL : wpath, ref ? ref + 1 : wpath, 16};
            ok = ir_print_text(g, f, &pr, &d);
            struct stat wst;
            if (ok && !o->out && !o->inline_weights && stat(wpath, &wst) == 0)
                fprintf(stderr, "kiln: large constants written to %s (the text names it)\n", wpath);
        } else if (ok && strcmp(fmt, "dot") == 0) ir_print_dot(g, f);
        else if (ok) ir_print_json(g, f);
        ok = report_close(f, o->out, tmp, ok);
    }
    int rc = print_diags(&d, o->model);
    arena_free(a);
    return rc ? rc : (ok ? 0 : 1);
}

static int cmd_place(const Options *o) {
    const char *fmt = o->format ? o->format : "text";
    if (strcmp(fmt, "text") != 0 && strcmp(fmt, "json") != 0) return usage_error("--format takes text or json, not '%s'", fmt);
    if (check_target(o)) return 2;
    Arena *a = arena_new();
    Diags d = {.arena = a};
    PtrVec deps = {0};
    const PlaceOpts *pl;
    Graph *g = load_for_placement(o, a, &d, &deps, true, &pl);
    bool ok = g != NULL;
    if (ok && !pl) { diag_error(&d, NULL, "the model has no Mixture-of-Experts layer (kiln.MoE, com.microsoft.MoE) to place"); ok = false; }
    if (ok) {
        PassOpts po = {o->opt_level, NULL, NULL, o->verbose, "place", pl};
        ok = pipeline_run(g, &po, &d);
    }
    if (ok) {
        char tmp[PATH_MAX + 16];
        FILE *f = report_open(o->out, tmp, sizeof tmp, &d);
        ok = f && place_print(g, pl, strcmp(fmt, "json") == 0, f, &d);
        ok = report_close(f, o->out, tmp, ok);
    }
    int rc = print_diags(&d, o->model);
    arena_free(a);
    return rc ? rc : (ok ? 0 : 1);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}

static int cmd_run(Options *o) {
    Arena *a = arena_new();
    Diags d = {.arena = a};
    size_t len;
    unsigned char *bytes = read_file(a, o->model, &len, &d);
    if (!bytes) { int rc = print_diags(&d, o->model); arena_free(a); return rc; }
    uint64_t h = fnv(1469598103934665603ull, bytes, len);
    h = fnv(h, KILN_VERSION, strlen(KILN_VERSION));
    h = fnv(h, &o->opt_level, sizeof o->opt_level);
    for (int i = 0; i < o->nshapes; i++) {
        h = fnv(h, o->shapes[i].name, strlen(o->shapes[i].name));
        h = fnv(h, o->shapes[i].dims, sizeof o->shapes[i].dims);
        h = fnv(h, &o->shapes[i].rank, sizeof o->shapes[i].rank);
        for (int j = 0; j < o->shapes[i].nelems; j++) /* a sequence's tensors */
            h = fnv(h, o->shapes[i].elems[j].dims, sizeof o->shapes[i].elems[j].dims), h = fnv(h, &o->shapes[i].elems[j].rank, sizeof(int));
    }
    for (int i = 0; i < o->nbinds; i++) { /* a bound input's name and its file's bytes */
        size_t bl;
        const char *eq = strchr(o->binds[i], '=');
        unsigned char *bb = read_file(a, eq + 1, &bl, &d);
        if (!bb) { int rc = print_diags(&d, o->model); arena_free(a); return rc; }
        h = fnv(fnv(h, o->binds[i], (size_t)(eq - o->binds[i])), bb, bl);
    }
    struct stat st;
    char rtpath[PATH_MAX + 32];
    snprintf(rtpath, sizeof rtpath, "%s/lib/libkilnrt.a", find_home());
    if (stat(rtpath, &st) == 0) h = fnv(h, &st.st_mtime, sizeof st.st_mtime);
    const char *cache = getenv("KILN_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char dir[PATH_MAX];
    if (cache && *cache) snprintf(dir, sizeof dir, "%s", cache);
    else if (xdg && *xdg) snprintf(dir, sizeof dir, "%s/kiln", xdg);
    else snprintf(dir, sizeof dir, "%s/.cache/kiln", home && *home ? home : "/tmp");
    char *mk = arena_printf(a, "mkdir -p '%s'", dir);
    if (system(mk) != 0) { fprintf(stderr, "kiln: error: cannot create cache folder %s\n", dir); arena_free(a); return 1; }
    char *exe = arena_printf(a, "%s/%016llx", dir, (unsigned long long)h);
    if (access(exe, X_OK) != 0) {
        Options c = *o;
        c.out = exe;
        c.emit = "exe";
        char base[PATH_MAX];
        c.name = base_name(o->model, base, sizeof base);
        int rc = cmd_compile(&c);
        if (rc) { arena_free(a); return rc; }
    }
    char **args = calloc((size_t)o->nrun + 4, sizeof *args);
    int n = 0;
    args[n++] = exe;
    for (int i = 0; i < o->nrun; i++) args[n++] = (char *)o->run_args[i];
    if (o->out) { args[n++] = "-o"; args[n++] = (char *)o->out; }
    args[n] = NULL;
    fflush(stdout);
    execv(exe, args);
    fprintf(stderr, "kiln: error: cannot run %s: %s\n", exe, strerror(errno));
    return 1;
}

static void list_ops(void) {
    for (int i = 0; i < OP_COUNT; i++) {
        if (op_table[i].flags & F_INTERNAL) continue;
        printf("%s%s", i ? ", " : "", op_table[i].name);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { fputs(usage_text, stderr); return 2; }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) { fputs(usage_text, stdout); return 0; }
    if (strcmp(cmd, "--version") == 0) { printf("kiln %s\n", KILN_VERSION); return 0; }
    if (strcmp(cmd, "--list-ops") == 0) { list_ops(); return 0; }
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { fputs(usage_text, stdout); return 0; }
    Options o = {0};
    o.opt_level = 2;
    o.redundant = -1;
    int rc;
    if (strcmp(cmd, "compile") == 0) rc = parse_options(argc, argv, 2, &o, false) ?: cmd_compile(&o);
    else if (strcmp(cmd, "dump") == 0) rc = parse_options(argc, argv, 2, &o, false) ?: cmd_dump(&o);
    else if (strcmp(cmd, "run") == 0) rc = parse_options(argc, argv, 2, &o, true) ?: cmd_run(&o);
    else if (strcmp(cmd, "place") == 0) rc = parse_options(argc, argv, 2, &o, false) ?: cmd_place(&o);
    else return usage_error("unknown command '%s'", cmd);
    for (int i = 0; i < o.nshapes; i++) { /* parse_shape's copies */
        free((char *)o.shapes[i].name);
        free(o.shapes[i].elems);
    }
    return rc;
}
