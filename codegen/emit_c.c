/* emit_c.c: Kir -> one C translation unit, and the model's header.
 *
 * The C is deterministic (the same Kir gives the same bytes) and readable: each
 * step opens with a comment naming the model nodes it computes; kernel calls
 * pass their constant parameters as a static array; fused loops are plain loop
 * nests whose body calls the inline scalar functions of kiln_scalar.h, with
 * every temporary declared in its dtype's C type, exactly as kir_interp.c
 * evaluates them. Constants become hexadecimal float literals (exact).
 * Weights are either array literals (--emit c) or pulled in by the assembler's
 * .incbin from a file written beside the build (fast to compile). */
#include "kir.h"
#include "../runtime/kiln_scalar.h"

#include <math.h>
#include <string.h>

/* The class a value of dtype t computes in: f32, f64, i64 or u64 (kiln_scalar.h). */
const char *kir_class(DType t) {
    switch (t) {
    case DT_F32: case DT_F16: case DT_BF16: return "f32";
    case DT_F64: return "f64";
    case DT_I8: case DT_I16: case DT_I32: case DT_I64: return "i64";
    default: return "u64";
    }
}

/* C type of a temporary of dtype t. */
static const char *tmp_type(DType t) {
    return (t == DT_F16 || t == DT_BF16) ? "float" : dtype_ctype(t);
}

static void buf_expr(const Kir *k, int b, char *out, size_t n) {
    const KBuf *kb = &k->bufs[b];
    switch (kb->kind) {
    case KB_INPUT: snprintf(out, n, "((const unsigned char *)inputs[%d])", kb->index); break;
    case KB_CONST: snprintf(out, n, "(W + %lld)", (long long)kb->offset); break;
    case KB_STATE: snprintf(out, n, "(ctx->state + %lld)", (long long)kb->offset); break;
    default: snprintf(out, n, "(ws + %lld)", (long long)kb->offset); break;
    }
}

static void float_lit(FILE *f, double v, bool is_float) {
    if (isnan(v)) fputs("NAN", f);
    else if (isinf(v)) fputs(v > 0 ? "INFINITY" : "-INFINITY", f);
    else fprintf(f, is_float ? "(float)%a" : "%a", v);
}

double kir_float_const(const KInstr *c) {
    double v = kir_class(c->dt)[1] == '3' ? (double)(float)c->f : c->f;
    if (c->dt == DT_F16) v = kiln_round_f16((float)v);
    if (c->dt == DT_BF16) v = kiln_round_bf16((float)v);
    return v;
}

static void emit_const(FILE *f, const KInstr *c) {
    const char *k = kir_class(c->dt);
    if (k[0] == 'f') {
        float_lit(f, kir_float_const(c), k[1] == '3');
    } else if (k[0] == 'i') fprintf(f, "(%s)%lldLL", dtype_ctype(c->dt), (long long)kiln_f2i(c->f));
    else fprintf(f, "(%s)%lluULL", dtype_ctype(c->dt), (unsigned long long)kiln_f2u(c->f));
}

static void emit_cast(FILE *f, const KInstr *c, DType from) {
    const char *a = kir_class(from), *b = kir_class(c->dt);
    if (c->dt == DT_BOOL) { fprintf(f, "(t%d != 0)", c->a); return; }
    if (b[0] == 'f') fprintf(f, "(%s)t%d", b[1] == '3' ? "float" : "double", c->a);
    else if (a[0] == 'f') fprintf(f, "kiln_f2%c((double)t%d)", b[0], c->a);
    else fprintf(f, "(%s)t%d", b[0] == 'i' ? "int64_t" : "uint64_t", c->a);
}

#define PARALLEL_LOOP_MIN 32768

/* The class of the kiln_<fn>_<class> function instruction `in` calls. */
const char *kir_instr_class(const KLoop *lp, const KInstr *in) {
    KInstrKind kk = kinstr_kind[in->op];
    if (kk == KK_CMP2 || kk == KK_FCMP1 || kk == KK_FCMP1P2) return kir_class(lp->code[in->a].dt);
    return (kk == KK_BOOL1 || kk == KK_BOOL2) ? "u64" : kir_class(in->dt);
}

bool kir_load_invariant(const KLoop *lp, const KInstr *in) {
    if (in->op != KI_LOAD) return false;
    for (int d = 0; d < lp->rank; d++)
        if (lp->strides[in->a][d]) return false;
    return true;
}

/* A loop computing float exp, erf or sigmoid (kiln_scalar.h's vectorizable
 * ones): worth compiling for each vector width (KILN_CLONES). */
static bool loop_heavy(const KLoop *lp) {
    for (int c = 0; c < lp->ncode; c++) {
        const KInstr *in = &lp->code[c];
        if ((in->op == KI_EXP || in->op == KI_ERF || in->op == KI_SIGMOID) && kir_class(in->dt)[1] == '3') return true;
    }
    return false;
}

bool kir_loop_parallel(const KLoop *lp) {
    return dims_numel(lp->rank, lp->dims) >= PARALLEL_LOOP_MIN && lp->dims[0] > 1;
}

const char *kir_step_name(const Kir *k, int s) {
    const KStep *st = &k->steps[s];
    return arena_printf(k->arena, "%s [%s]", st->comment ? st->comment : "step",
                        st->kind == KS_LOOP ? "loop" : st->kind == KS_CALL ? kiln_kernel_names[st->kernel] : "control");
}

bool *kir_jump_targets(const Kir *k) {
    bool *t = arena_alloc(k->arena, (size_t)k->nsteps + 1);
    for (int s = 0; s < k->nsteps; s++)
        if (k->steps[s].kind == KS_JUMP || k->steps[s].kind == KS_BRANCH) t[k->steps[s].target] = true;
    return t;
}

/* What a loaded element of dtype t goes through to become a temporary. */
static const char *load_conv(DType t) {
    return t == DT_F16 ? "kiln_f16_to_f32" : t == DT_BF16 ? "kiln_bf16_to_f32" : "";
}

/* The body of a loop nest; with `ranged`, dimension 0 runs over [b, e). */
static void emit_loop_body(const Kir *k, const KLoop *lp, FILE *f, bool ranged) {
    char e[128];
    DType odt = k->bufs[lp->out].dtype;
    buf_expr(k, lp->out, e, sizeof e);
    fprintf(f, "        %s *o = (%s *)%s;\n", dtype_ctype(odt), dtype_ctype(odt), e);
    for (int i = 0; i < lp->nin; i++) {
        DType t = k->bufs[lp->in[i]].dtype;
        buf_expr(k, lp->in[i], e, sizeof e);
        fprintf(f, "        const %s *i%d = (const %s *)%s;\n", dtype_ctype(t), i, dtype_ctype(t), e);
    }
    int64_t inner = dims_numel(lp->rank - 1, lp->dims + 1);
    if (ranged) fprintf(f, "        int64_t n = b * %lld;\n", (long long)inner);
    else fprintf(f, "        int64_t n = 0;\n");
    for (int c = 0; c < lp->ncode; c++) /* broadcast scalars, read once */
        if (kir_load_invariant(lp, &lp->code[c])) {
            const KInstr *in = &lp->code[c];
            fprintf(f, "        const %s t%d = %s(i%d[0]);\n", tmp_type(in->dt), c, load_conv(in->dt), in->a);
        }
    for (int d = 0; d < lp->rank; d++) {
        if (d == 0 && ranged) fprintf(f, "        for (int64_t d0 = b; d0 < e; d0++%s)\n", lp->rank == 1 ? ", n++" : "");
        else fprintf(f, "        for (int64_t d%d = 0; d%d < %lld; d%d++%s)\n", d, d, (long long)lp->dims[d], d,
                     d == lp->rank - 1 ? ", n++" : "");
    }
    fprintf(f, "        {\n");
    for (int c = 0; c < lp->ncode; c++) {
        const KInstr *in = &lp->code[c];
        if (kir_load_invariant(lp, in)) continue;
        fprintf(f, "            %s t%d = ", tmp_type(in->dt), c);
        bool round = in->dt == DT_F16 || in->dt == DT_BF16;
        if (round && in->op != KI_LOAD) fprintf(f, "kiln_round_%s(", in->dt == DT_F16 ? "f16" : "bf16");
        switch (in->op) {
        case KI_LOAD: {
            fprintf(f, "%s(i%d[", load_conv(in->dt), in->a);
            bool any = false;
            for (int d = 0; d < lp->rank; d++)
                if (lp->strides[in->a][d]) {
                    fprintf(f, "%sd%d", any ? " + " : "", d);
                    if (lp->strides[in->a][d] != 1) fprintf(f, " * %lld", (long long)lp->strides[in->a][d]);
                    any = true;
                }
            fprintf(f, "])");
            break;
        }
        case KI_CONST: emit_const(f, in); break;
        case KI_CAST: emit_cast(f, in, lp->code[in->a].dt); break;
        case KI_WHERE: fprintf(f, "t%d ? t%d : t%d", in->c, in->a, in->b); break;
        default: {
            KInstrKind kk = kinstr_kind[in->op];
            const char *c = kir_instr_class(lp, in);
            fprintf(f, "kiln_%s_%s(t%d", kinstr_fn[in->op], c, in->a);
            if (kk == KK_ANY2 || kk == KK_CMP2 || kk == KK_BOOL2) fprintf(f, ", t%d", in->b);
            bool single = c[1] == '3';
            if (kk == KK_FLT1P1 || kk == KK_FLT1P2 || kk == KK_FCMP1P2) {
                fputs(", ", f);
                float_lit(f, single ? (double)(float)in->f : in->f, single);
            }
            if (kk == KK_FLT1P2 || kk == KK_FCMP1P2) {
                fputs(", ", f);
                float_lit(f, single ? (double)(float)in->g : in->g, single);
            }
            fputc(')', f);
        }
        }
        if (round && in->op != KI_LOAD) fputc(')', f);
        fprintf(f, ";\n");
    }
    int last = lp->ncode - 1;
    if (odt == DT_F16) fprintf(f, "            o[n] = kiln_f32_to_f16(t%d);\n", last);
    else if (odt == DT_BF16) fprintf(f, "            o[n] = kiln_f32_to_bf16(t%d);\n", last);
    else fprintf(f, "            o[n] = t%d;\n", last);
    fprintf(f, "        }\n");
}

static void emit_comment(FILE *f, const char *s) {
    fputs("    /* ", f);
    for (; *s; s++) fputc((*s == '*' && s[1] == '/') ? '_' : (*s == '\n' ? ' ' : *s), f);
    fputs(" */\n", f);
}

static void emit_c_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\' || (c == '/' && s[1] == '*') || (c == '*' && s[1] == '/')) fprintf(f, "\\%03o", c);
        else if (c < 32 || c >= 127) fprintf(f, "\\%03o", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void emit_infos(const Kir *k, const char *prefix, FILE *f) {
    const char *kind[2] = {"inputs", "outputs"};
    for (int w = 0; w < 2; w++) {
        const KIo *io = w ? k->outputs : k->inputs;
        int n = w ? k->noutputs : k->ninputs;
        for (int i = 0; i < n; i++) {
            fprintf(f, "static const int64_t %s_%s%d_shape[] = {", prefix, kind[w], i);
            for (int d = 0; d < io[i].v->rank; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)io[i].v->dims[d]);
            fprintf(f, "%s};\n", io[i].v->rank ? "" : "0");
        }
        fprintf(f, "const kiln_tensor_info %s_%s[%d] = {\n", prefix, kind[w], n ? n : 1);
        for (int i = 0; i < n; i++) {
            fprintf(f, "    {");
            emit_c_string(f, io[i].v->name);
            const int *seq = w ? k->out_seq : k->in_seq, *grp = w ? k->out_group : k->in_group;
            fprintf(f, ", %d, %d, %s_%s%d_shape, %lld, %d, %d, %d},\n", io[i].v->dtype, io[i].v->rank, prefix, kind[w], i,
                    (long long)value_nbytes(io[i].v), io[i].v->batch, seq ? seq[i] : 0, grp ? grp[i] : 0);
        }
        if (!n) fprintf(f, "    {0, 0, 0, 0, 0, 0, 0, 0},\n");
        fprintf(f, "};\n");
    }
    fprintf(f, "const kiln_moe_layer %s_moe_layers[%d] = {\n", prefix, k->nmoe ? k->nmoe : 1);
    for (int i = 0; i < k->nmoe; i++) {
        fprintf(f, "    {");
        emit_c_string(f, k->moe[i].name);
        fprintf(f, ", %lld, %lld, %lld, %lld},\n", (long long)k->moe[i].experts, (long long)k->moe[i].top_k,
                (long long)k->moe[i].tokens, (long long)k->moe[i].offset);
    }
    if (!k->nmoe) fprintf(f, "    {0, 0, 0, 0, 0},\n");
    fprintf(f, "};\n");
}

/* One kernel call: its constant parameters as a static array, then the call;
 * a failure ends the run (or create), naming step s. */
static void emit_call(const Kir *k, int s, const char *prefix, FILE *f) {
    const KStep *st = &k->steps[s];
    char e[128];
    fprintf(f, "        static const int64_t p[] = {");
    for (int i = 0; i < st->nparams; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)st->params[i]);
    fprintf(f, "%s};\n        void *const b[] = {", st->nparams ? "" : "0");
    for (int i = 0; i < st->nbufs; i++) {
        buf_expr(k, st->bufs[i], e, sizeof e);
        fprintf(f, "%s(void *)%s", i ? ", " : "", e);
    }
    fprintf(f, "};\n        int rc = kiln_k_%s(ctx->pool, b, p);\n        if (rc) return kiln_step_failed(ctx, rc, %s_step_names[%d]);\n",
            kiln_kernel_names[st->kernel], prefix, s);
}

/* The step profiler's names (kiln_prof_mark; KILN_PROFILE), which a failure names too. */
static void emit_step_names(const Kir *k, const char *prefix, FILE *f) {
    fprintf(f, "static const char *const %s_step_names[%d] = {\n", prefix, k->nsteps ? k->nsteps : 1);
    for (int s = 0; s < k->nsteps; s++) {
        fputs("    ", f);
        emit_c_string(f, kir_step_name(k, s));
        fputs(",\n", f);
    }
    fprintf(f, "%s};\n\n", k->nsteps ? "" : "    0\n");
}

/* The steps whose kernels take per-thread scratch (kiln_kernel_need), each
 * with its parameters, for kiln_context_scratch; returns how many. */
static int emit_needs(const Kir *k, const char *prefix, FILE *f) {
    int n = 0;
    for (int s = 0; s < k->nsteps; s++) {
        const KStep *st = &k->steps[s];
        if (st->kind != KS_CALL || !kiln_kernel_need[st->kernel]) continue;
        if (!n++) fprintf(f, "/* the parameters of the steps that take per-thread scratch, whose needs size it at create */\n");
        fprintf(f, "static const int64_t %s_need%d[] = {", prefix, s);
        for (int i = 0; i < st->nparams; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)st->params[i]);
        fprintf(f, "%s};\n", st->nparams ? "" : "0");
    }
    if (!n) return 0;
    fprintf(f, "static const kiln_step_need %s_needs[%d] = {\n", prefix, n);
    for (int s = 0; s < k->nsteps; s++) {
        const KStep *st = &k->steps[s];
        if (st->kind == KS_CALL && kiln_kernel_need[st->kernel])
            fprintf(f, "    {kiln_need_%s, %s_need%d},\n", kiln_kernel_names[st->kernel], prefix, s);
    }
    fprintf(f, "};\n\n");
    return n;
}

/* The create-time steps: first the per-thread scratch of every step, sized
 * once (a run allocates nothing), then those that run once, when the context
 * is created (packing weights). */
static void emit_init(const Kir *k, const char *prefix, FILE *f) {
    int needs = emit_needs(k, prefix, f);
    fprintf(f, "static int %s_init(kiln_context *ctx) {\n    const unsigned char *W = ctx->W;\n    (void)W;\n", prefix);
    if (needs) fprintf(f, "    if (kiln_context_scratch(ctx, %s_needs, %d)) return kiln_step_failed(ctx, KILN_E_NOMEM, \"per-thread scratch\");\n",
                       prefix, needs);
    for (int s = 0; s < k->nsteps; s++) {
        const KStep *st = &k->steps[s];
        if (!st->at_create) continue;
        emit_comment(f, st->comment ? st->comment : "step");
        fprintf(f, "    {\n");
        emit_call(k, s, prefix, f);
        fprintf(f, "    }\n");
    }
    fprintf(f, "    return 0;\n}\n\n");
}

/* FNV-1a of the weights: the build id an external weights file must carry. */
uint64_t emit_weights_id(const Kir *k) {
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < k->weights_size; i++) h = (h ^ k->weights[i]) * 1099511628211ull;
    return h ^ (uint64_t)k->weights_size;
}

/* create (and, with external weights, create_with_weights), destroy, routing_counts:
 * the context is the runtime's kiln_context. */
static void emit_lifecycle(const Kir *k, const char *prefix, const char *external, uint64_t weights_id, FILE *f) {
    fprintf(f, "struct %s_ctx; /* a kiln_context */\n\n", prefix);
    emit_init(k, prefix, f);
    long long ws = (long long)k->workspace_size, st = (long long)k->state_size;
    if (external) {
        fprintf(f, "struct %s_ctx *%s_create_with_weights(const char *path, int threads) {\n"
                   "    return (struct %s_ctx *)kiln_context_create(%lld, %lld, threads, NULL, path, %lld, 0x%016llxull, %s_init);\n}\n\n",
                prefix, prefix, prefix, ws, st, (long long)k->weights_size, (unsigned long long)weights_id, prefix);
        fprintf(f, "struct %s_ctx *%s_create(int threads) {\n"
                   "    return (struct %s_ctx *)kiln_context_create_beside(%lld, %lld, threads, \"%s\", %lld, 0x%016llxull, %s_init);\n}\n\n",
                prefix, prefix, prefix, ws, st, external, (long long)k->weights_size, (unsigned long long)weights_id, prefix);
    } else
        fprintf(f, "struct %s_ctx *%s_create(int threads) {\n"
                   "    return (struct %s_ctx *)kiln_context_create(%lld, %lld, threads, %s_weights, NULL, 0, 0, %s_init);\n}\n\n",
                prefix, prefix, prefix, ws, st, prefix, prefix);
    fprintf(f, "void %s_destroy(struct %s_ctx *c) { kiln_context_destroy((kiln_context *)c); }\n\n", prefix, prefix);
    fprintf(f, "const char *%s_error(const struct %s_ctx *c) { return kiln_context_error((const kiln_context *)c); }\n\n", prefix, prefix);
    fprintf(f, "const int64_t *%s_routing_counts(const struct %s_ctx *c) {\n"
               "    return (const int64_t *)((const kiln_context *)c)->state;\n}\n\n", prefix, prefix);
}

bool emit_c(const Kir *k, const Graph *g, const char *prefix, const char *incbin, const char *external, uint64_t weights_id,
            bool with_main, int default_threads, bool kernels_inline, FILE *f) {
    fprintf(f, "/* Generated by kiln from ");
    emit_c_string(f, g->source ? g->source : g->name);
    fprintf(f, ". Do not edit.\n * workspace %lld bytes, weights %lld bytes, %d steps. */\n",
            (long long)k->workspace_size, (long long)k->weights_size, k->nsteps);
    fprintf(f, "#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n#include <math.h>\n"
               "#include \"kiln_rt.h\"\n#include \"kiln_scalar.h\"\n#include \"kiln_simd.h\"\n\n");
    if (kernels_inline)
        fprintf(f, "/* -O3: the runtime's kernels are compiled into this file (a whole program: gcc\n"
                   " * keeps those the model calls), each call inlined and specialized to its constant\n"
                   " * parameters; libkilnrt.a supplies main's helpers and file I/O. */\n"
                   "#define K(name, doc, ...) __attribute__((always_inline)) inline int kiln_k_##name(kiln_pool *, void *const *, const int64_t *);\n"
                   "#include \"kernels.def\"\n#undef K\n#include \"kiln_src/kiln_kernels.c\"\n\n");
    emit_infos(k, prefix, f);
    fputc('\n', f);
    if (external) {
        fprintf(f, "/* weights: %lld bytes in the file %s, mapped by %s_create */\n", (long long)k->weights_size, external, prefix);
    } else if (incbin) {
        fprintf(f, "__asm__(\".section .rodata\\n.balign 64\\n.globl %s_weights\\n.hidden %s_weights\\n%s_weights:\\n"
                   ".incbin \\\"%s\\\"\\n.byte 0\\n.previous\\n\");\n"
                   "extern const unsigned char %s_weights[] __attribute__((visibility(\"hidden\")));\n",
                prefix, prefix, prefix, incbin, prefix);
    } else {
        fprintf(f, "static const unsigned char %s_weights[%lld] __attribute__((aligned(64))) = {", prefix,
                (long long)(k->weights_size ? k->weights_size : 1));
        for (int64_t i = 0; i < k->weights_size; i++) fprintf(f, "%s%u,", i % 24 ? "" : "\n    ", k->weights[i]);
        fprintf(f, "%s\n};\n", k->weights_size ? "" : "0");
    }
    fprintf(f, "\ntypedef struct { unsigned char *ws; const unsigned char *W; const void *const *inputs; } kiln_loop_env;\n");
    emit_step_names(k, prefix, f);
    emit_lifecycle(k, prefix, external, weights_id, f);
    for (int s = 0; s < k->nsteps; s++) {
        const KStep *st = &k->steps[s];
        if (st->kind != KS_LOOP || !kir_loop_parallel(st->loop)) continue;
        fprintf(f, "%sstatic void loop%d(void *arg, int64_t b, int64_t e) {\n"
                   "    const kiln_loop_env *env = arg;\n"
                   "    unsigned char *ws = env->ws;\n    const unsigned char *W = env->W;\n"
                   "    const void *const *inputs = env->inputs;\n    (void)ws; (void)W; (void)inputs;\n",
                loop_heavy(st->loop) ? "KILN_CLONES " : "", s);
        emit_comment(f, st->comment ? st->comment : "step");
        fprintf(f, "    {\n");
        emit_loop_body(k, st->loop, f, true);
        fprintf(f, "    }\n}\n\n");
    }
    fprintf(f, "int %s_run(struct %s_ctx *c, const void *const *inputs, void *const *outputs) {\n"
               "    kiln_context *ctx = (kiln_context *)c;\n    unsigned char *ws = ctx->ws;\n    const unsigned char *W = ctx->W;\n"
               "    (void)ws; (void)W; (void)inputs;\n", prefix, prefix);
    char e[128];
    bool *target = kir_jump_targets(k);
    for (int s = 0; s < k->nsteps; s++) {
        const KStep *st = &k->steps[s];
        if (target[s]) fprintf(f, "L%d:;\n", s);
        if (st->at_create) continue;
        if (st->kind == KS_JUMP) { fprintf(f, "    goto L%d;\n", st->target); continue; }
        if (st->kind == KS_FAIL) {
            fprintf(f, "    return kiln_step_failed(ctx, KILN_E_LOOP, %s_step_names[%d]); /* a Loop stopped before its scan outputs were full */\n", prefix, s);
            continue;
        }
        if (st->kind == KS_BRANCH) {
            buf_expr(k, st->bufs[0], e, sizeof e);
            fprintf(f, "    if (%s*(const uint8_t *)%s) goto L%d;\n", st->if_true ? "" : "!", e, st->target);
            continue;
        }
        emit_comment(f, st->comment ? st->comment : "step");
        fprintf(f, "    if (ctx->prof) kiln_prof_mark(ctx, %d, %d, %s_step_names);\n", s, k->nsteps, prefix);
        fprintf(f, "    {\n");
        if (st->kind == KS_LOOP && kir_loop_parallel(st->loop))
            fprintf(f, "        kiln_loop_env env = {ws, W, inputs};\n        kiln_parallel_for(ctx->pool, %lld, loop%d, &env);\n",
                    (long long)st->loop->dims[0], s);
        else if (st->kind == KS_LOOP) emit_loop_body(k, st->loop, f, false);
        else emit_call(k, s, prefix, f);
        fprintf(f, "    }\n");
    }
    if (target[k->nsteps]) fprintf(f, "L%d:;\n", k->nsteps);
    fprintf(f, "    if (ctx->prof) kiln_prof_mark(ctx, -1, %d, %s_step_names);\n", k->nsteps, prefix);
    for (int i = 0; i < k->noutputs; i++) {
        const KIo *o = &k->outputs[i];
        buf_expr(k, o->buf, e, sizeof e);
        if (o->shape_buf < 0) {
            fprintf(f, "    memcpy(outputs[%d], %s, %lld);\n", i, e, (long long)value_nbytes(o->v));
            continue;
        }
        char sh[128]; /* sized at run time: as many bytes as the dims the kernel wrote */
        buf_expr(k, o->shape_buf, sh, sizeof sh);
        fprintf(f, "    {\n        const int64_t *s = (const int64_t *)%s;\n        int64_t nb = %d;\n"
                   "        for (int d = 0; d < %d; d++) nb *= s[d];\n        memcpy(outputs[%d], %s, (size_t)nb);\n    }\n",
                sh, dtype_size(o->v->dtype), o->v->rank, i, e);
    }
    fprintf(f, "    return 0;\n}\n\n");
    fprintf(f, "static int %s_run_one(void *c, const void *const *i, void *const *o) { return %s_run(c, i, o); }\n"
               "int %s_run_batch(struct %s_ctx *c, int64_t n, const void *const *inputs, void *const *outputs) {\n"
               "    return kiln_run_batch(%s_run_one, c, %s_inputs, %d, %s_outputs, %d, n, inputs, outputs);\n}\n\n",
            prefix, prefix, prefix, prefix, prefix, prefix, k->ninputs, prefix, k->noutputs);
    fprintf(f, "const int64_t *%s_output_shape(const struct %s_ctx *c, int i) {\n"
               "    const kiln_context *ctx = (const kiln_context *)c;\n    (void)ctx;\n    switch (i) {\n", prefix, prefix);
    for (int i = 0; i < k->noutputs; i++)
        if (k->outputs[i].shape_buf >= 0)
            fprintf(f, "    case %d: return (const int64_t *)(ctx->ws + %lld);\n", i, (long long)k->bufs[k->outputs[i].shape_buf].offset);
    fprintf(f, "    default: return i >= 0 && i < %d ? %s_outputs[i].shape : NULL;\n    }\n}\n", k->noutputs, prefix);
    if (with_main) {
        fprintf(f, "\nstatic void *create_any(int t) { return %s_create(t); }\n"
                   "static int run_any(void *c, const void *const *i, void *const *o) { return %s_run(c, i, o); }\n"
                   "static void destroy_any(void *c) { %s_destroy(c); }\n"
                   "static const int64_t *counts_any(const void *c) { return %s_routing_counts(c); }\n"
                   "static const int64_t *shape_any(const void *c, int i) { return %s_output_shape(c, i); }\n\n"
                   "int main(int argc, char **argv) {\n"
                   "    static const kiln_model m = {\"%s\", %d, %d, %s_inputs, %s_outputs, create_any, run_any, destroy_any, %d,\n"
                   "                                 %d, %s_moe_layers, counts_any, %s%s%s, %lld, 0x%016llxull, shape_any, NULL};\n"
                   "    return kiln_exe_main(&m, argc, argv);\n}\n",
                prefix, prefix, prefix, prefix, prefix, prefix, k->ninputs, k->noutputs, prefix, prefix, default_threads,
                k->nmoe, prefix, external ? "\"" : "", external ? external : "NULL", external ? "\"" : "",
                external ? (long long)k->weights_size : 0LL, (unsigned long long)weights_id);
    }
    return !ferror(f);
}

bool emit_header(const Kir *k, const char *prefix, const char *external, FILE *f) {
    int batched = 0;
    for (int i = 0; i < k->ninputs; i++) batched |= k->inputs[i].v->batch;
    fprintf(f, "/* %s.h: generated by kiln. The C interface of a compiled model.\n"
               " *\n"
               " *   %s_ctx *c = %s_create(0);              // 0 threads: one per core\n"
               " *   const void *in[%s_NUM_INPUTS] = {...}; // caller-owned, row-major\n"
               " *   void *out[%s_NUM_OUTPUTS] = {...};     // %s_outputs[i].nbytes each\n"
               " *   int rc = %s_run(c, in, out);           // 0 on success, else %s_error(c) says why\n"
               " *   %s_destroy(c);\n"
               " *\n"
               " * A context owns its workspace and threads; no global state, so two contexts\n"
               " * can run at once on two threads. Link with the library kiln wrote. */\n",
            prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix);
    fprintf(f, "#ifndef %s_H\n#define %s_H\n\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", prefix, prefix);
    fprintf(f, "#ifndef KILN_TENSOR_INFO_DEFINED\n#define KILN_TENSOR_INFO_DEFINED\n"
               "typedef struct kiln_tensor_info {\n    const char *name;\n    int dtype;   /* ONNX TensorProto.DataType code */\n"
               "    int rank;\n    const int64_t *shape;\n    int64_t nbytes;\n"
               "    int batch;   /* 1: dim 0 is the batch; shape and nbytes are one sample's */\n"
               "    int seq;     /* on a group's first entry: how many tensors it holds (0: an empty sequence\n"
               "                    or an absent optional, the entry a placeholder of no data); -1 on the others */\n"
               "    int group;   /* 0 a tensor; 1 a sequence, 2 an optional tensor, 3 an optional sequence, 4 an\n"
               "                    absent optional: the entries of one input or output */\n} kiln_tensor_info;\n#endif\n\n");
    fprintf(f, "#ifndef KILN_STR_DEFINED\n#define KILN_STR_DEFINED\n"
               "/* An element of a string tensor (dtype 8): n bytes at p, not NUL-terminated. A string\n"
               " * output's bytes belong to the context (or to the inputs it came from) and stay valid\n"
               " * until the context's next run. */\n"
               "typedef struct kiln_str {\n    const char *p;\n    int64_t n;\n} kiln_str;\n#endif\n\n");
    fprintf(f, "#ifndef KILN_MOE_LAYER_DEFINED\n#define KILN_MOE_LAYER_DEFINED\n"
               "/* An MoE layer: its routing counts are int64 [experts] at byte `offset` of\n"
               " * PREFIX_routing_counts(ctx), summed over every run of the context. */\n"
               "typedef struct kiln_moe_layer {\n    const char *name;\n    int64_t experts, top_k, tokens, offset;\n} kiln_moe_layer;\n#endif\n\n");
    fprintf(f, "#define %s_NUM_INPUTS %d\n#define %s_NUM_OUTPUTS %d\n#define %s_WORKSPACE_SIZE %lld\n#define %s_NUM_MOE_LAYERS %d\n\n",
            prefix, k->ninputs, prefix, k->noutputs, prefix, (long long)k->workspace_size, prefix, k->nmoe);
    char t[256];
    for (int w = 0; w < 2; w++) {
        const KIo *io = w ? k->outputs : k->inputs;
        for (int i = 0; i < (w ? k->noutputs : k->ninputs); i++) {
            fprintf(f, "/* %s %d: ", w ? "output" : "input", i);
            emit_c_string(f, io[i].v->name); /* escaped: a name cannot end the comment */
            fprintf(f, " %s%s%s */\n", value_type_str(io[i].v, t, sizeof t), io[i].v->dyn ? " (upper bounds: sized at run time)" : "",
                    io[i].v->batch ? " (one sample: dim 0 is the batch)" : "");
        }
    }
    fprintf(f, "extern const kiln_tensor_info %s_inputs[%d];\nextern const kiln_tensor_info %s_outputs[%d];\n\n",
            prefix, k->ninputs ? k->ninputs : 1, prefix, k->noutputs ? k->noutputs : 1);
    fprintf(f, "typedef struct %s_ctx %s_ctx;\n%s_ctx *%s_create(int threads);\n"
               "int %s_run(%s_ctx *ctx, const void *const *inputs, void *const *outputs);\n"
               "/* After a run that returned non-zero: which step failed and why. */\n"
               "const char *%s_error(const %s_ctx *ctx);\n"
               "void %s_destroy(%s_ctx *ctx);\n"
               "extern const kiln_moe_layer %s_moe_layers[%d];\n"
               "const int64_t *%s_routing_counts(const %s_ctx *ctx);\n"
               "/* Output i's dims after a run: its shape above, except for outputs whose size\n"
               " * depends on the data (NonZero, Unique, NonMaxSuppression): the sizes the last\n"
               " * run produced, within the upper bounds of %s_outputs[i].shape, whose\n"
               " * nbytes is what to allocate; such an output's data is that shape, row-major. */\n"
               "const int64_t *%s_output_shape(const %s_ctx *ctx, int i);\n"
               "/* Runs n samples (n >= 1) of a model with a batch dimension: the inputs and outputs\n"
               " * whose kiln_tensor_info.batch is 1 hold n samples one after another (n times\n"
               " * their nbytes), the others are as for %s_run, which is n = 1. Without a batch\n"
               " * dimension (%s_BATCHED 0) only n = 1. 0 on success, 2 for a bad n. */\n"
               "int %s_run_batch(%s_ctx *ctx, int64_t n, const void *const *inputs, void *const *outputs);\n"
               "#define %s_BATCHED %d\n\n",
            prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, k->nmoe ? k->nmoe : 1, prefix, prefix, prefix, prefix, prefix,
            prefix, prefix, prefix, prefix, prefix, batched);
    if (external)
        fprintf(f, "/* The weights are in the file %s: %s_create(threads) maps it from the folder of the\n"
                   " * running executable; %s_create_with_weights maps it from any path. NULL when the\n"
                   " * file is missing, truncated or from another build. */\n"
                   "#define %s_WEIGHTS_FILE \"%s\"\n%s_ctx *%s_create_with_weights(const char *path, int threads);\n\n",
                external, prefix, prefix, prefix, external, prefix, prefix);
    fprintf(f, "#ifdef __cplusplus\n}\n#endif\n#endif\n");
    return !ferror(f);
}
