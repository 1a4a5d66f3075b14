/* kir.c: the text IR reader, the inverse of ir/print.c (format described there).
 *
 * A hand-written tokenizer (names %x or %"...", identifiers, strings, numbers,
 * punctuation) and a recursive-descent parser, one function per production.
 * Errors name the file, line and what was expected. Blob constants read their
 * bytes from a weights file named relative to the .kir's folder, with the same
 * checks as ONNX external data (no path leaving the folder, offsets in range).
 * Types written on node outputs are informative: the infer pass recomputes them. */
#include "frontend.h"
#include "../runtime/kiln_scalar.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { T_EOF, T_NAME, T_IDENT, T_STRING, T_NUMBER, T_PUNCT } TokKind;

typedef struct {
    Arena *a;
    Diags *d;
    const char *src, *p, *path, *dir;
    int line;
    TokKind kind;
    char *text;     /* NAME / IDENT / STRING / NUMBER text */
    char punct;
    bool failed;
    PtrVec *deps;
    const char *end; /* the end of src */
    const unsigned char *wmem; /* kir_load_mem: the weights every blob is in, wlen bytes */
    size_t wlen;
} Parser;

static void perr(Parser *P, const char *what) {
    if (!P->failed) diag_error(P->d, NULL, "line %d: %s", P->line, what);
    P->failed = true;
}

static char *lex_string(Parser *P) {
    size_t cap = 32, n = 0;
    char *s = arena_alloc(P->a, cap);
    P->p++;
    while (*P->p && *P->p != '"') {
        char c = *P->p++;
        if (c == '\n') { perr(P, "unterminated string"); return s; }
        if (c == '\\') {
            char e = *P->p++;
            if (e == 'n') c = '\n';
            else if (e == 'x' && isxdigit((unsigned char)P->p[0]) && isxdigit((unsigned char)P->p[1])) {
                char hex[3] = {P->p[0], P->p[1], 0};
                c = (char)strtol(hex, NULL, 16);
                P->p += 2;
            } else if (e == '"' || e == '\\') c = e;
            else { perr(P, "bad escape in string"); return s; }
        }
        if (n + 2 > cap) {
            char *ns = arena_alloc(P->a, cap * 2);
            memcpy(ns, s, n);
            s = ns;
            cap *= 2;
        }
        s[n++] = c;
    }
    if (*P->p != '"') perr(P, "unterminated string");
    else P->p++;
    s[n] = 0;
    return s;
}

static void next(Parser *P) {
    for (;;) {
        while (*P->p == ' ' || *P->p == '\t' || *P->p == '\r' || *P->p == '\n') if (*P->p++ == '\n') P->line++;
        if (*P->p == '#') { while (*P->p && *P->p != '\n') P->p++; continue; }
        break;
    }
    const char *s = P->p;
    if (!*s) { P->kind = T_EOF; return; }
    if (*s == '%') {
        P->p++;
        P->kind = T_NAME;
        if (*P->p == '"') { P->text = lex_string(P); return; }
        const char *b = P->p;
        while (isalnum((unsigned char)*P->p) || strchr("_.:/-", *P->p)) P->p++;
        if (P->p == b) { perr(P, "empty value name"); P->kind = T_EOF; return; }
        P->text = arena_alloc(P->a, (size_t)(P->p - b) + 1);
        memcpy(P->text, b, (size_t)(P->p - b));
        return;
    }
    if (*s == '"') { P->kind = T_STRING; P->text = lex_string(P); return; }
    if (isdigit((unsigned char)*s) || ((*s == '-' || *s == '+') && (isdigit((unsigned char)s[1]) || s[1] == '.' || s[1] == 'i' || s[1] == 'n')) || *s == '.') {
        const char *b = P->p++;
        while (isalnum((unsigned char)*P->p) || *P->p == '.' || ((*P->p == '-' || *P->p == '+') && (P->p[-1] == 'e' || P->p[-1] == 'E'))) P->p++;
        P->kind = T_NUMBER;
        P->text = arena_alloc(P->a, (size_t)(P->p - b) + 1);
        memcpy(P->text, b, (size_t)(P->p - b));
        return;
    }
    if (isalpha((unsigned char)*s) || *s == '_') {
        const char *b = P->p;
        while (isalnum((unsigned char)*P->p) || *P->p == '_' || *P->p == '.') P->p++;
        P->kind = T_IDENT;
        P->text = arena_alloc(P->a, (size_t)(P->p - b) + 1);
        memcpy(P->text, b, (size_t)(P->p - b));
        return;
    }
    P->kind = T_PUNCT;
    P->punct = *P->p++;
}

static bool is_punct(Parser *P, char c) { return P->kind == T_PUNCT && P->punct == c; }
static bool is_ident(Parser *P, const char *s) { return P->kind == T_IDENT && strcmp(P->text, s) == 0; }

static bool expect_punct(Parser *P, char c) {
    if (!is_punct(P, c)) {
        char msg[64];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        perr(P, msg);
        return false;
    }
    next(P);
    return true;
}

static bool expect_ident(Parser *P, const char *s) {
    if (!is_ident(P, s)) {
        perr(P, arena_printf(P->a, "expected '%s'", s));
        return false;
    }
    next(P);
    return true;
}

static bool parse_int(Parser *P, int64_t *out) {
    if (P->kind != T_NUMBER) { perr(P, "expected an integer"); return false; }
    char *end;
    errno = 0;
    long long v = strtoll(P->text, &end, 10);
    if (*end || errno) { perr(P, "expected an integer"); return false; }
    *out = v;
    next(P);
    return true;
}

static bool parse_number(Parser *P, double *out, bool *is_int) {
    const char *t = P->text;
    if (P->kind == T_IDENT && (strcmp(t, "nan") == 0 || strcmp(t, "inf") == 0)) {
        *out = t[0] == 'n' ? NAN : INFINITY;
        *is_int = false;
        next(P);
        return true;
    }
    if (P->kind != T_NUMBER) { perr(P, "expected a number"); return false; }
    if (strcmp(t, "-inf") == 0 || strcmp(t, "-nan") == 0 || strcmp(t, "+inf") == 0) {
        *out = t[1] == 'i' ? (t[0] == '-' ? -INFINITY : INFINITY) : NAN;
        *is_int = false;
        next(P);
        return true;
    }
    char *end;
    *is_int = !strpbrk(t, ".eEn");
    *out = strtod(t, &end);
    if (*end) { perr(P, "malformed number"); return false; }
    next(P);
    return true;
}

/* f32[1,2,3]; with batch_ok (a graph input), f32[?,2,3]: a symbolic dim
 * (-1: the batch when it is dim 0, frontend_fix_inputs), f32[?] a rank-1 input's;
 * elsewhere f32[?] is a value not inferred yet (rank -1) */
static bool parse_type(Parser *P, Value *v, bool batch_ok) {
    if (P->kind != T_IDENT) { perr(P, "expected a type such as f32[1,4]"); return false; }
    v->dtype = dtype_from_name(P->text);
    /* "undef": a value never inferred (the branch an If on a constant never takes) */
    if (v->dtype == DT_UNDEF && strcmp(P->text, "undef") != 0) { perr(P, arena_printf(P->a, "unknown dtype '%s'", P->text)); return false; }
    next(P);
    if (!expect_punct(P, '[')) return false;
    v->rank = 0;
    if (!batch_ok && is_punct(P, '?')) {
        next(P);
        if (is_punct(P, ']')) {
            v->rank = -1;
            return expect_punct(P, ']');
        }
        /* f32[?,?]: a subgraph input of unknown dims (a Loop body's, as ONNX
         * declares it), which the node's inference sets */
        v->dims[0] = -1;
        v->rank = 1;
        if (!expect_punct(P, ',')) return false;
    }
    int64_t known = 1;
    while (!is_punct(P, ']')) {
        if (v->rank >= MAX_RANK) { perr(P, "rank is above 8"); return false; }
        if (is_punct(P, '?')) {
            next(P);
            v->dims[v->rank] = -1;
        } else {
            if (!parse_int(P, &v->dims[v->rank])) return false;
            if (v->dims[v->rank] < 0) { perr(P, "negative dimension"); return false; }
            if (v->dims[v->rank] && known > ((int64_t)1 << 40) / v->dims[v->rank]) { perr(P, "shape is too large"); return false; }
            known *= v->dims[v->rank];
        }
        v->rank++;
        if (is_punct(P, ',')) next(P);
        else if (!is_punct(P, ']')) { perr(P, "expected ',' or ']' in a type"); return false; }
    }
    next(P);
    if (known * (dtype_size(v->dtype) ? dtype_size(v->dtype) : 1) > ((int64_t)1 << 36)) { perr(P, "shape is too large"); return false; }
    return true;
}

/* Whether x (truncated) fits the integer dtype t; any x fits a float dtype. */
static bool fits(DType t, double x) {
    switch (t) {
    case DT_I8: return x > -129 && x < 128;
    case DT_U8: case DT_BOOL: return x > -1 && x < 256;
    case DT_I16: return x > -32769 && x < 32768;
    case DT_U16: return x > -1 && x < 65536;
    case DT_I32: return x > -2147483649.0 && x < 2147483648.0;
    case DT_U32: return x > -1 && x < 4294967296.0;
    case DT_I64: return x >= -0x1p63 && x < 0x1p63;
    case DT_U64: return x > -1 && x < 0x1p64;
    default: return true;
    }
}

static void store_elem(Value *v, unsigned char *p, int64_t i, double x) {
    int es = dtype_size(v->dtype);
    unsigned char *q = p + i * es;
    switch (v->dtype) {
    case DT_F32: { float f = (float)x; memcpy(q, &f, 4); break; }
    case DT_F64: memcpy(q, &x, 8); break;
    case DT_F16: { uint16_t h = kiln_f32_to_f16((float)x); memcpy(q, &h, 2); break; }
    case DT_BF16: { uint16_t h = kiln_f32_to_bf16((float)x); memcpy(q, &h, 2); break; }
    case DT_I8: *(int8_t *)q = (int8_t)x; break;
    case DT_U8: case DT_BOOL: *q = (uint8_t)x; break;
    case DT_I16: { int16_t s = (int16_t)x; memcpy(q, &s, 2); break; }
    case DT_U16: { uint16_t s = (uint16_t)x; memcpy(q, &s, 2); break; }
    case DT_I32: { int32_t s = (int32_t)x; memcpy(q, &s, 4); break; }
    case DT_U32: { uint32_t s = (uint32_t)x; memcpy(q, &s, 4); break; }
    case DT_I64: { int64_t s = (int64_t)x; memcpy(q, &s, 8); break; }
    case DT_U64: { uint64_t s = (uint64_t)x; memcpy(q, &s, 8); break; }
    default: break;
    }
}

/* [e0, e1, ...] into v->data; integers of 64 bits are parsed as integers. */
static bool parse_elems(Parser *P, Value *v) {
    int64_t n = value_numel(v);
    /* each element takes a character at least: a shape the text cannot fill is refused before its memory is taken */
    if (n > P->end - P->p + 1) { perr(P, "the constant's shape holds more elements than the text gives"); return false; }
    unsigned char *p = arena_alloc(P->a, (size_t)(value_nbytes(v) + 1));
    if (!expect_punct(P, '[')) return false;
    int64_t i = 0;
    while (!is_punct(P, ']')) {
        if (i >= n) { perr(P, "more elements than the type holds"); return false; }
        if ((v->dtype == DT_I64 || v->dtype == DT_U64) && P->kind == T_NUMBER) {
            char *end;
            errno = 0;
            if (v->dtype == DT_I64) { long long x = strtoll(P->text, &end, 10); memcpy(p + i * 8, &x, 8); }
            else { unsigned long long x = strtoull(P->text, &end, 10); memcpy(p + i * 8, &x, 8); }
            if (*end || errno) { perr(P, "malformed integer"); return false; }
            next(P);
        } else {
            double x;
            bool is_int;
            if (!parse_number(P, &x, &is_int)) return false;
            if (!fits(v->dtype, x)) { perr(P, arena_printf(P->a, "%g does not fit %s", x, dtype_name(v->dtype))); return false; }
            store_elem(v, p, i, x);
        }
        i++;
        if (is_punct(P, ',')) next(P);
    }
    next(P);
    if (i != n) { perr(P, arena_printf(P->a, "%lld elements given, the type holds %lld", (long long)i, (long long)n)); return false; }
    v->data = p;
    return true;
}

static bool parse_blob(Parser *P, Value *v) {
    next(P); /* blob */
    if (P->kind != T_STRING) { perr(P, "expected the weights file name"); return false; }
    const char *file = P->text;
    next(P);
    int64_t off, len;
    if (!parse_int(P, &off) || !parse_int(P, &len)) return false;
    if (file[0] == '/' || strstr(file, "..")) { perr(P, arena_printf(P->a, "weights path '%s' leaves the model's folder", file)); return false; }
    if (len != value_nbytes(v) || off < 0) { perr(P, "blob length does not match the constant's type"); return false; }
    if (P->wmem) {
        if ((uint64_t)off > P->wlen || P->wlen - (uint64_t)off < (uint64_t)len) { perr(P, "a blob is past the end of the weights"); return false; }
        v->data = P->wmem + off; /* the caller's memory outlives the graph */
        return true;
    }
    char *path = arena_printf(P->a, "%s/%s", P->dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) { perr(P, arena_printf(P->a, "cannot open weights file %s: %s", path, strerror(errno))); return false; }
    bool ok = fseek(f, 0, SEEK_END) == 0;
    long size = ok ? ftell(f) : -1;
    ok = ok && size >= 0 && off <= size && size - off >= len && fseek(f, off, SEEK_SET) == 0; /* before the memory is taken */
    unsigned char *p = ok ? arena_alloc(P->a, (size_t)len + 1) : NULL;
    ok = ok && fread(p, 1, (size_t)len, f) == (size_t)len;
    fclose(f);
    if (!ok) { perr(P, arena_printf(P->a, "weights file %s is too short for a blob at %lld (+%lld)", path, (long long)off, (long long)len)); return false; }
    v->data = p;
    bool seen = false;
    for (int i = 0; i < P->deps->n; i++) if (strcmp(P->deps->items[i], path) == 0) seen = true;
    if (!seen) vec_push(P->a, P->deps, path);
    return true;
}

static Graph *parse_graph(Parser *P, Scope *parent, Graph *pg);

static bool parse_attr(Parser *P, Graph *g, Node *n, Scope *scope) {
    if (P->kind != T_IDENT) { perr(P, "expected an attribute name"); return false; }
    const char *name = P->text;
    next(P);
    if (!expect_punct(P, '=')) return false;
    if (P->kind == T_STRING) {
        node_add_attr(g, n, name, ATTR_STRING)->s = P->text;
        next(P);
    } else if (is_ident(P, "tensor")) {
        next(P);
        Value *v = arena_alloc(P->a, sizeof *v);
        v->name = name;
        v->mem_offset = -1;
        if (!parse_type(P, v, false) || !parse_elems(P, v)) return false;
        node_add_attr(g, n, name, ATTR_TENSOR)->t = v;
    } else if (is_ident(P, "graph")) {
        int depth = 0;
        for (Graph *q = g; q; q = q->parent) depth++;
        if (depth > 32) { perr(P, "subgraphs nest more than 32 deep"); return false; }
        Graph *sub = parse_graph(P, scope, g);
        if (!sub) return false;
        node_add_attr(g, n, name, ATTR_GRAPH)->g = sub;
    } else if (is_punct(P, '[') || is_ident(P, "ints") || is_ident(P, "floats") || is_ident(P, "strings")) {
        AttrKind kind = ATTR_INTS;
        if (P->kind == T_IDENT) { kind = P->text[0] == 'i' ? ATTR_INTS : P->text[0] == 'f' ? ATTR_FLOATS : ATTR_STRINGS; next(P); }
        if (!expect_punct(P, '[')) return false;
        int cap = 16, cnt = 0;
        int64_t *ints = arena_alloc(P->a, (size_t)cap * 8);
        double *fl = arena_alloc(P->a, (size_t)cap * 8);
        const char **strs = arena_alloc(P->a, (size_t)cap * sizeof(char *));
        bool any_float = kind == ATTR_FLOATS;
        while (!is_punct(P, ']')) {
            if (cnt == cap) {
                int64_t *ni = arena_alloc(P->a, (size_t)cap * 16); memcpy(ni, ints, (size_t)cap * 8); ints = ni;
                double *nf = arena_alloc(P->a, (size_t)cap * 16); memcpy(nf, fl, (size_t)cap * 8); fl = nf;
                const char **ns = arena_alloc(P->a, (size_t)cap * 2 * sizeof(char *)); memcpy(ns, strs, (size_t)cap * sizeof(char *)); strs = ns;
                cap *= 2;
            }
            if (P->kind == T_STRING) { kind = ATTR_STRINGS; strs[cnt++] = P->text; next(P); }
            else {
                double x;
                bool is_int;
                const char *txt = P->text;
                if (!parse_number(P, &x, &is_int)) return false;
                if (!is_int) any_float = true;
                ints[cnt] = is_int ? strtoll(txt, NULL, 10) : 0; /* a list with a float is a float list */
                fl[cnt++] = x;
            }
            if (is_punct(P, ',')) next(P);
        }
        next(P);
        if (kind != ATTR_STRINGS && any_float) kind = ATTR_FLOATS;
        Attr *a = node_add_attr(g, n, name, kind);
        a->n = cnt;
        a->ints = ints;
        a->floats = fl;
        a->strings = strs;
    } else {
        double x;
        bool is_int;
        const char *txt = P->text;
        if (!parse_number(P, &x, &is_int)) return false;
        if (is_int) node_add_attr(g, n, name, ATTR_INT)->i = strtoll(txt, NULL, 10);
        else node_add_attr(g, n, name, ATTR_FLOAT)->f = x;
    }
    return true;
}

static Value *new_named(Parser *P, Graph *g, Scope *scope) {
    if (P->kind != T_NAME) { perr(P, "expected a value name (%name)"); return NULL; }
    if (scope_get(scope, P->text) && !scope->parent) {
        bool local = false;
        for (int i = 0; i < g->values.n; i++) if (strcmp(((Value *)g->values.items[i])->name, P->text) == 0) local = true;
        if (local) { perr(P, arena_printf(P->a, "value '%%%s' is defined twice", P->text)); return NULL; }
    }
    Value *v = graph_add_value(g, P->text);
    scope_put(scope, v->name, v);
    next(P);
    return v;
}

static bool parse_node(Parser *P, Graph *g, Scope *scope) {
    Value *outs[64];
    int no = 0;
    for (;;) {
        if (no >= 64) { perr(P, "too many outputs (64 at most)"); return false; }
        Value *v = new_named(P, g, scope);
        if (!v) return false;
        if (is_punct(P, ':')) { next(P); if (!parse_type(P, v, false)) return false; }
        outs[no++] = v;
        if (!is_punct(P, ',')) break;
        next(P);
    }
    if (!expect_punct(P, '=')) return false;
    if (P->kind != T_IDENT) { perr(P, "expected an op name"); return false; }
    OpKind op = op_lookup(P->text);
    if (op == OP_COUNT) { perr(P, arena_printf(P->a, "unknown op '%s'", P->text)); return false; }
    next(P);
    int opset = g->opset;
    if (is_punct(P, '@')) {
        next(P);
        int64_t v;
        if (!parse_int(P, &v)) return false;
        if (v < 1 || v > 17) { perr(P, "opset must be 1 to 17"); return false; }
        opset = (int)v;
    }
    if (P->kind != T_STRING) { perr(P, "expected the node name (a string)"); return false; }
    const char *nm = P->text;
    next(P);
    if (!expect_punct(P, '(')) return false;
    /* inputs: as many as the op takes (Concat: 65535), in arrays that grow */
    int cap = 16, ni = 0;
    Value **ins = arena_alloc(P->a, sizeof *ins * (size_t)cap);
    const char **in_names = arena_alloc(P->a, sizeof *in_names * (size_t)cap);
    while (!is_punct(P, ')')) {
        if (ni >= op_table[op].in_max) { perr(P, arena_printf(P->a, "too many inputs (%s takes at most %d)", op_table[op].name, op_table[op].in_max)); return false; }
        if (ni == cap) {
            Value **ni2 = arena_alloc(P->a, sizeof *ins * (size_t)cap * 2);
            const char **nn2 = arena_alloc(P->a, sizeof *in_names * (size_t)cap * 2);
            memcpy(ni2, ins, sizeof *ins * (size_t)cap);
            memcpy(nn2, in_names, sizeof *in_names * (size_t)cap);
            ins = ni2, in_names = nn2, cap *= 2;
        }
        if (is_ident(P, "_")) { ins[ni] = NULL; in_names[ni++] = NULL; next(P); }
        else if (P->kind == T_NAME) { in_names[ni] = P->text; ins[ni++] = scope_get(scope, P->text); next(P); }
        else { perr(P, "expected an input (%name or _)"); return false; }
        if (is_punct(P, ',')) next(P);
        else if (!is_punct(P, ')')) { perr(P, "expected ',' or ')'"); return false; }
    }
    next(P);
    Node *n = graph_add_node(g, op, nm, ni, no);
    n->opset = opset;
    for (int i = 0; i < ni; i++) {
        n->in[i] = ins[i];
        if (in_names[i] && !ins[i]) { diag_error(P->d, n, "input '%s' is not defined (line %d)", in_names[i], P->line); P->failed = true; return false; }
    }
    for (int i = 0; i < no; i++) { n->out[i] = outs[i]; outs[i]->producer = n; outs[i]->producer_out = i; outs[i]->rank = -1; }
    if (is_punct(P, '{')) {
        next(P);
        while (!is_punct(P, '}')) {
            if (!parse_attr(P, g, n, scope)) return false;
            if (is_punct(P, ',')) next(P);
            else if (!is_punct(P, '}')) { perr(P, "expected ',' or '}'"); return false; }
        }
        next(P);
    }
    return true;
}

static Graph *parse_graph(Parser *P, Scope *parent, Graph *pg) {
    if (!expect_ident(P, "graph")) return NULL;
    if (P->kind != T_STRING) { perr(P, "expected the graph name"); return NULL; }
    Graph *g = graph_new(P->a, P->text);
    g->parent = pg;
    next(P);
    if (!expect_ident(P, "opset")) return NULL;
    int64_t opset;
    if (!parse_int(P, &opset)) return NULL;
    if (opset < 1 || opset > 17) { perr(P, "opset must be 1 to 17"); return NULL; }
    g->opset = (int)opset;
    if (!expect_punct(P, '{')) return NULL;
    Scope scope;
    scope_init(&scope, P->a, parent);
    while (!is_punct(P, '}') && !P->failed) {
        if (P->kind == T_EOF) { perr(P, "unexpected end of file: missing '}'"); return NULL; }
        if (is_ident(P, "input") || is_ident(P, "const") || is_ident(P, "capture")) {
            bool is_const = strcmp(P->text, "const") == 0, is_capture = P->text[1] == 'a';
            if (is_capture && !pg) { perr(P, "only a subgraph captures values"); return NULL; }
            if (!is_const && !is_capture && g->captures) { perr(P, "a subgraph's inputs come before its captures"); return NULL; }
            if (is_capture) g->captures++;
            next(P);
            Value *v = new_named(P, g, &scope);
            if (!v || !expect_punct(P, ':') || !parse_type(P, v, !is_const && !is_capture && !pg)) return NULL;
            if (is_const) {
                if (v->rank < 0) { perr(P, "a constant needs a shape"); return NULL; }
                if (!expect_punct(P, '=')) return NULL;
                if (is_ident(P, "blob")) { if (!parse_blob(P, v)) return NULL; }
                else if (!parse_elems(P, v)) return NULL;
            } else vec_push(P->a, &g->inputs, v);
        } else if (is_ident(P, "output")) {
            next(P);
            if (P->kind != T_NAME) { perr(P, "expected an output name"); return NULL; }
            Value *v = scope_get(&scope, P->text);
            if (!v) { perr(P, arena_printf(P->a, "output '%s' is not defined", P->text)); return NULL; }
            vec_push(P->a, &g->outputs, v);
            next(P);
        } else if (P->kind == T_NAME) {
            if (!parse_node(P, g, &scope)) return NULL;
        } else {
            perr(P, "expected input, const, output or a node");
            return NULL;
        }
    }
    if (P->failed) return NULL;
    next(P);
    if (g->outputs.n == 0) { perr(P, "the graph has no outputs"); return NULL; }
    return g;
}

static Graph *parse_text(Parser *P, const char *path, const char *dir, const FrontendOpts *o) {
    next(P);
    if (!expect_ident(P, "kiln")) return NULL;
    int64_t ver;
    if (!parse_int(P, &ver)) return NULL;
    if (ver != 1) { perr(P, "unsupported text IR version"); return NULL; }
    Graph *g = parse_graph(P, NULL, NULL);
    if (!g) return NULL;
    if (P->kind != T_EOF) { perr(P, "text after the end of the graph"); return NULL; }
    g->source = arena_strdup(P->a, path);
    g->source_dir = dir;
    if (!frontend_fix_inputs(g, o, P->d)) return NULL;
    return g;
}

Graph *kir_load(Arena *a, const char *path, const FrontendOpts *o, Diags *d, PtrVec *deps) {
    size_t len;
    unsigned char *buf = read_file(a, path, &len, d);
    if (!buf) return NULL;
    if (memchr(buf, 0, len)) { diag_error(d, NULL, "not a text IR file (it contains NUL bytes)"); return NULL; }
    char *dir = arena_strdup(a, path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else dir = ".";
    Parser P = {a, d, (const char *)buf, (const char *)buf, path, dir, 1, T_EOF, NULL, 0, false, deps, (const char *)buf + len, NULL, 0};
    return parse_text(&P, path, dir, o);
}

Graph *kir_load_mem(Arena *a, const char *text, size_t len, const unsigned char *weights, size_t wlen, const FrontendOpts *o,
                    Diags *d) {
    char *buf = arena_alloc(a, len + 1); /* NUL-terminated for the tokenizer */
    memcpy(buf, text, len);
    buf[len] = 0;
    static const unsigned char none[1];
    PtrVec deps = {0};
    Parser P = {a, d, buf, buf, "model", ".", 1, T_EOF, NULL, 0, false, &deps, buf + len, weights ? weights : none, weights ? wlen : 0};
    return parse_text(&P, "model", ".", o);
}
