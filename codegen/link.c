/* link.c: writes outputs, calling the system C compiler (CC, default cc) and ar.
 *
 * With the C backend the C file is compiled by CC (weights pulled in with
 * .incbin from a file beside it, so even large models compile fast); with the
 * LLVM backend emit_llvm writes the object itself and CC only links. For
 * another triple (--target aarch64-linux-gnu) the compiler and linker are
 * TRIPLE-gcc (or KILN_CC_<arch>) and the runtime is lib/TRIPLE/libkilnrt.a.
 * Work happens in a private temporary folder: the C file, the object,
 * the archive. The final files are written as OUT.tmp next to their destination
 * and renamed into place only when everything succeeded, so a failed compile
 * leaves no output, half-written or stale. Commands are run through /bin/sh
 * with every path single-quoted. */
#define _GNU_SOURCE
#include "link.h"
#include "elf.h"
#include "../runtime/kiln_rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *quote(Arena *a, const char *s) {
    size_t n = 3;
    for (const char *p = s; *p; p++) n += *p == '\'' ? 4 : 1;
    char *q = arena_alloc(a, n), *w = q;
    *w++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') { memcpy(w, "'\\''", 4); w += 4; }
        else *w++ = *p;
    }
    *w++ = '\'';
    return q;
}

static bool run_cmd(Arena *a, const char *cmd, bool verbose, Diags *d) {
    if (verbose) fprintf(stderr, "kiln: run: %s\n", cmd);
    char *full = arena_printf(a, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) { diag_error(d, NULL, "cannot run: %s", cmd); return false; }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    while (fread((char[256]){0}, 1, 256, p) > 0) {}
    int rc = pclose(p);
    if (rc != 0) {
        diag_error(d, NULL, "command failed (exit %d): %s%s%s", WEXITSTATUS(rc), cmd, n ? "\n" : "", buf);
        return false;
    }
    return true;
}

static bool write_file(const char *path, bool (*fn)(const void *, FILE *), const void *arg, Diags *d) {
    FILE *f = fopen(path, "w");
    if (!f) { diag_error(d, NULL, "cannot write %s: %s", path, strerror(errno)); return false; }
    bool ok = fn(arg, f);
    ok = fclose(f) == 0 && ok;
    if (!ok) { remove(path); diag_error(d, NULL, "cannot write %s", path); }
    return ok;
}

typedef struct {
    const Kir *k;
    const Graph *g;
    const LinkOpts *o;
    const char *incbin;
    bool weights_obj;      /* the LLVM backend's weights are the object weights.o */
    bool main;
    const char *external;  /* the weights file's name with --weights external */
    uint64_t weights_id;   /* its build id, hashed once */
} CArgs;
/* -O3 executables from the C backend compile the kernels into the model's file
 * (emit_c) as one whole program: gcc keeps only the kernels the model calls,
 * inlined into each call and specialized; the library's own copies are then
 * unused except for what main and file I/O need. */
static bool kernels_inline(const LinkOpts *o) {
    return !o->llvm && o->opt_level >= 3 && strcmp(o->emit, "exe") == 0;
}

static bool write_c(const void *arg, FILE *f) {
    const CArgs *c = arg;
    bool inline_kernels = kernels_inline(c->o);
    return emit_c(c->k, c->g, c->o->prefix, c->external ? NULL : c->incbin, c->external, c->weights_id, c->main, c->o->threads,
                  inline_kernels, f);
}
static bool write_h(const void *arg, FILE *f) {
    const CArgs *c = arg;
    return emit_header(c->k, c->o->prefix, c->external, f);
}
static bool write_w(const void *arg, FILE *f) {
    const Kir *k = arg;
    return fwrite(k->weights, 1, (size_t)k->weights_size, f) == (size_t)k->weights_size;
}

/* OUT.weights: "KILNWTS1", data size, build id, padding to 64 bytes, the data. */
static bool write_external(const void *arg, FILE *f) {
    const CArgs *c = arg;
    unsigned char head[64] = "KILNWTS1";
    int64_t size = c->k->weights_size;
    memcpy(head + 8, &size, 8);
    memcpy(head + 16, &c->weights_id, 8);
    return fwrite(head, 1, 64, f) == 64 && write_w(c->k, f);
}

static char *header_path(Arena *a, const LinkOpts *o) {
    char *dir = arena_strdup(a, o->out);
    char *slash = strrchr(dir, '/');
    if (slash) { slash[1] = 0; return arena_printf(a, "%s%s.h", dir, o->prefix); }
    return arena_printf(a, "%s.h", o->prefix);
}

const char *link_host_triple(void) {
#if defined(__x86_64__)
    return "x86_64-linux-gnu";
#elif defined(__aarch64__)
    return "aarch64-linux-gnu";
#else
    return "unknown-linux-gnu";
#endif
}

/* Whether the code is built for this machine's triple (--target host, or its
 * own triple named: x86_64-linux-gnu here), by cc with the runtime of lib/. */
static bool native(const LinkOpts *o) { return o->host || strcmp(o->triple, link_host_triple()) == 0; }

/* The runtime library NAME (libkilnrt.a, libkilnc.a) for the output's triple, quoted. */
static char *lib_for(Arena *a, const LinkOpts *o, const char *name) {
    return quote(a, native(o) ? arena_printf(a, "%s/lib/%s", o->home, name) : arena_printf(a, "%s/lib/%s/%s", o->home, o->triple, name));
}

/* The C compiler (and linker) for the output's triple. */
static const char *cc_for(Arena *a, const LinkOpts *o) {
    const char *cc = getenv("CC");
    if (native(o)) return cc && *cc ? cc : "cc";
    char var[64];
    snprintf(var, sizeof var, "KILN_CC_%.*s", (int)strcspn(o->triple, "-"), o->triple);
    cc = getenv(var);
    return cc && *cc ? cc : arena_printf(a, "%s-gcc", o->triple);
}

static bool write_llvm(const Kir *k, const Graph *g, const LinkOpts *o, const CArgs *ca, const char *ll, const char *obj, Diags *d) {
    const char *bc = arena_printf(g->arena, "%s/lib/%s/kiln_scalar.bc", o->home, o->triple);
    double ms[3];
    const char *rbc = o->opt_level >= 3 ? arena_printf(g->arena, "%s/lib/%s/kiln_rt.bc", o->home, o->triple) : NULL;
    LlvmOpts lo = {o->triple, o->host, o->opt_level, bc, rbc, o->prefix, ca->external, ca->weights_id, ca->incbin, ca->weights_obj,
                   ca->main, o->threads, ms};
    bool ok = emit_llvm(k, g, &lo, ll, obj, d);
    if (ok && o->verbose)
        fprintf(stderr, "kiln: llvm: module %.1f ms, passes (O%d) %.1f ms, wrote %s in %.1f ms\n", ms[0], o->opt_level, ms[1],
                ll ? ll : obj, ms[2]);
    return ok;
}

bool link_build(const Kir *k, const Graph *g, const LinkOpts *o, Diags *d) {
    Arena *a = g->arena;
    const char *emit = o->emit;
    char *tmp_out = arena_printf(a, "%s.tmp%d", o->out, (int)getpid());
    char *hpath = header_path(a, o), *tmp_h = arena_printf(a, "%s.tmp%d", hpath, (int)getpid());
    bool want_h = strcmp(emit, "lib") == 0 || strcmp(emit, "so") == 0 || strcmp(emit, "obj") == 0;
    CArgs ca = {k, g, o, NULL, false, strcmp(emit, "exe") == 0, NULL, 0};
    char *xpath = arena_printf(a, "%s.weights", o->out), *tmp_x = arena_printf(a, "%s.tmp%d", xpath, (int)getpid());
    if (o->external_weights) {
        const char *slash = strrchr(xpath, '/');
        ca.external = slash ? slash + 1 : xpath;
        ca.weights_id = emit_weights_id(k);
        if (!write_file(tmp_x, write_external, &ca, d)) return false;
    }
    if (strcmp(emit, "c") == 0 || strcmp(emit, "header") == 0 || strcmp(emit, "ll") == 0) {
        bool ok = strcmp(emit, "ll") == 0 ? write_llvm(k, g, o, &ca, tmp_out, NULL, d)
                                          : write_file(tmp_out, emit[0] == 'c' ? write_c : write_h, &ca, d);
        if (ok && rename(tmp_out, o->out) != 0) { remove(tmp_out); diag_error(d, NULL, "cannot write %s", o->out); ok = false; }
        if (o->external_weights && ok && rename(tmp_x, xpath) != 0) { diag_error(d, NULL, "cannot write %s", xpath); ok = false; }
        if (o->external_weights && !ok) remove(tmp_x);
        return ok;
    }
    const char *tdir = getenv("TMPDIR");
    char *dir = arena_printf(a, "%s/kiln-XXXXXX", tdir && *tdir ? tdir : "/tmp");
    if (!mkdtemp(dir)) { diag_error(d, NULL, "cannot create a temporary folder: %s", strerror(errno)); return false; }
    char *wpath = arena_printf(a, "%s/weights.bin", dir), *cpath = arena_printf(a, "%s/model.c", dir);
    char *opath = arena_printf(a, "%s/model.o", dir);
    ca.incbin = wpath;
    const char *cc = cc_for(a, o);
    const char *olev = o->opt_level == 0 ? "-O0" : o->opt_level >= 3 ? "-O3" : "-O2";
    char *inc = quote(a, arena_printf(a, "%s/include", o->home));
    char *rtlib = lib_for(a, o, "libkilnrt.a");
    /* vectorized loops (-fno-trapping-math lets gcc if-convert kiln_scalar.h's
     * selects; values are unchanged), computed exactly as written (no FMA
     * contraction), so they agree with constant folding */
    char *flags = arena_printf(a, "%s %s -std=gnu11 -fPIC -fno-strict-aliasing -ftree-vectorize -fvect-cost-model=dynamic "
                                  "-fno-trapping-math -ffp-contract=off -I%s", cc, olev, inc);
    bool ok;
    char *src; /* what the link commands compile: the C file, or the object LLVM wrote */
    if (o->llvm) {
        /* the weights: their own object, written straight from memory (one
         * object is wanted for --emit obj: there the assembler's .incbin) */
        char *wobj = arena_printf(a, "%s/weights.o", dir);
        int machine = elf_machine_of(o->triple);
        ca.weights_obj = !o->external_weights && machine && strcmp(emit, "obj") != 0;
        if (ca.weights_obj) ok = elf_write_blob(wobj, arena_printf(a, "%s_weights", o->prefix), k->weights, k->weights_size, machine, d);
        else ok = o->external_weights || write_file(wpath, write_w, k, d);
        bool obj = strcmp(emit, "obj") == 0; /* then LLVM writes the output itself */
        ok = ok && write_llvm(k, g, o, &ca, NULL, obj ? tmp_out : opath, d);
        src = ca.weights_obj ? arena_printf(a, "%s %s", quote(a, opath), quote(a, wobj)) : quote(a, opath);
    } else {
        ok = (o->external_weights || write_file(wpath, write_w, k, d)) && write_file(cpath, write_c, &ca, d);
        src = quote(a, cpath);
    }
    if (ok && strcmp(emit, "exe") == 0)
        ok = run_cmd(a, arena_printf(a, "%s%s %s %s -lm -lpthread -o %s", flags, kernels_inline(o) ? " -fwhole-program" : "", src, rtlib,
                                     quote(a, tmp_out)), o->verbose, d);
    else if (ok && strcmp(emit, "so") == 0)
        ok = run_cmd(a, arena_printf(a, "%s -shared %s %s -lm -lpthread -o %s", flags, src, rtlib, quote(a, tmp_out)), o->verbose, d);
    else if (ok && strcmp(emit, "obj") == 0 && !o->llvm)
        ok = run_cmd(a, arena_printf(a, "%s -c %s -o %s", flags, src, quote(a, tmp_out)), o->verbose, d);
    else if (ok && strcmp(emit, "lib") == 0) {
        char *q = quote(a, dir);
        ok = (o->llvm || run_cmd(a, arena_printf(a, "%s -c %s -o %s", flags, src, quote(a, opath)), o->verbose, d)) &&
             run_cmd(a, arena_printf(a, "cd %s && ar x %s && ar rcs model.a *.o", q, rtlib), o->verbose, d) &&
             run_cmd(a, arena_printf(a, "mv %s/model.a %s", q, quote(a, tmp_out)), o->verbose, d);
    }
    if (ok && want_h) ok = write_file(tmp_h, write_h, &ca, d);
    if (ok && rename(tmp_out, o->out) != 0) { diag_error(d, NULL, "cannot write %s: %s", o->out, strerror(errno)); ok = false; }
    if (ok && want_h && rename(tmp_h, hpath) != 0) { diag_error(d, NULL, "cannot write %s: %s", hpath, strerror(errno)); ok = false; }
    if (ok && o->external_weights && rename(tmp_x, xpath) != 0) { diag_error(d, NULL, "cannot write %s: %s", xpath, strerror(errno)); ok = false; }
    if (!ok) { remove(tmp_out); remove(tmp_h); remove(tmp_x); }
    if (!getenv("KILN_KEEP_TEMPS")) run_cmd(a, arena_printf(a, "rm -rf %s", quote(a, dir)), false, d);
    else fprintf(stderr, "kiln: kept temporary files in %s\n", dir);
    return ok;
}

typedef struct {
    const Graph *g;
    const char *wpath;
} IrArgs;

static bool write_ir(const void *arg, FILE *f) {
    const IrArgs *ia = arg;
    Diags d = {.arena = ia->g->arena};
    PrintOpts po = {ia->wpath, "model.weights", 16};
    return ir_print_text(ia->g, f, &po, &d);
}

typedef struct {
    const LinkOpts *o;
    const char *ir, *weights;
} StubArgs;

/* main(): the model's text IR and constants (.incbin), and kiln_dyn_main. */
static bool write_stub(const void *arg, FILE *f) {
    const StubArgs *sa = arg;
    fprintf(f, "/* Generated by kiln: an executable whose shapes are known when it runs. Do not edit. */\n"
               "#include <stddef.h>\n");
    /* global hidden symbols (a local label is not what C's extern names on every target) */
    static const char *const names[4] = {"kiln_dyn_ir", "kiln_dyn_ir_end", "kiln_dyn_w", "kiln_dyn_w_end"};
    fprintf(f, "__asm__(\".section .rodata\\n");
    for (int i = 0; i < 4; i++) fprintf(f, ".globl %s\\n.hidden %s\\n", names[i], names[i]);
    fprintf(f, ".balign 64\\nkiln_dyn_ir:\\n.incbin \\\"%s\\\"\\nkiln_dyn_ir_end:\\n.byte 0\\n"
               ".balign 64\\nkiln_dyn_w:\\n.incbin \\\"%s\\\"\\nkiln_dyn_w_end:\\n.byte 0\\n.previous\\n\");\n", sa->ir, sa->weights);
    for (int i = 0; i < 4; i++)
        fprintf(f, "extern const %s %s[] __attribute__((visibility(\"hidden\")));\n", i < 2 ? "char" : "unsigned char", names[i]);
    fprintf(f, "int kiln_dyn_main(const char *name, const char *ir, size_t ir_len, const unsigned char *w, size_t wlen, int opt_level,\n"
               "                  int threads, int argc, char **argv);\n"
               "int main(int argc, char **argv) {\n"
               "    return kiln_dyn_main(\"%s\", kiln_dyn_ir, (size_t)(kiln_dyn_ir_end - kiln_dyn_ir), kiln_dyn_w,\n"
               "                         (size_t)(kiln_dyn_w_end - kiln_dyn_w), %d, %d, argc, argv);\n}\n",
            sa->o->prefix, sa->o->opt_level, sa->o->threads);
    return !ferror(f);
}

bool link_build_dynamic(const Graph *g, const LinkOpts *o, Diags *d) {
    Arena *a = g->arena;
    const char *tdir = getenv("TMPDIR");
    char *dir = arena_printf(a, "%s/kiln-XXXXXX", tdir && *tdir ? tdir : "/tmp");
    if (!mkdtemp(dir)) { diag_error(d, NULL, "cannot create a temporary folder: %s", strerror(errno)); return false; }
    char *ir = arena_printf(a, "%s/model.kir", dir), *wpath = arena_printf(a, "%s/model.weights", dir);
    char *cpath = arena_printf(a, "%s/main.c", dir), *tmp_out = arena_printf(a, "%s.tmp%d", o->out, (int)getpid());
    IrArgs ia = {g, wpath};
    StubArgs sa = {o, ir, wpath};
    FILE *wf = fopen(wpath, "a"); /* the IR writes it only when a constant is large */
    bool ok = wf && fclose(wf) == 0 && write_file(ir, write_ir, &ia, d) && write_file(cpath, write_stub, &sa, d);
    if (!wf) diag_error(d, NULL, "cannot write %s: %s", wpath, strerror(errno));
    const char *cc = cc_for(a, o);
    char *lib = lib_for(a, o, "libkilnc.a"), *rtlib = lib_for(a, o, "libkilnrt.a");
    ok = ok && run_cmd(a, arena_printf(a, "%s -O2 -std=gnu11 %s %s %s -lm -lpthread -o %s", cc, quote(a, cpath), lib, rtlib, quote(a, tmp_out)),
                       o->verbose, d);
    if (ok && rename(tmp_out, o->out) != 0) { diag_error(d, NULL, "cannot write %s: %s", o->out, strerror(errno)); ok = false; }
    if (!ok) remove(tmp_out);
    if (!getenv("KILN_KEEP_TEMPS")) run_cmd(a, arena_printf(a, "rm -rf %s", quote(a, dir)), false, d);
    else fprintf(stderr, "kiln: kept temporary files in %s\n", dir);
    return ok;
}

bool link_write_depfile(const char *path, const char *target, const PtrVec *deps, Diags *d) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) { diag_error(d, NULL, "cannot write %s: %s", path, strerror(errno)); return false; }
    fprintf(f, "%s:", target);
    for (int i = 0; i < deps->n; i++) {
        fputc(' ', f);
        for (const char *p = deps->items[i]; *p; p++) {
            if (*p == ' ' || *p == '#') fputc('\\', f);
            if (*p == '$') fputc('$', f);
            fputc(*p, f);
        }
    }
    fputc('\n', f);
    for (int i = 0; i < deps->n; i++) fprintf(f, "%s:\n", (const char *)deps->items[i]);
    if (fclose(f) != 0 || rename(tmp, path) != 0) { remove(tmp); diag_error(d, NULL, "cannot write %s", path); return false; }
    return true;
}
