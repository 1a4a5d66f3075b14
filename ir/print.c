/* print.c: the IR as text (the .kir format that frontend/kir.c reads back), as
 * Graphviz DOT, and as JSON.
 *
 * Text form, one line per item:
 *   kiln 1
 *   graph "name" opset 17 {
 *     input %x : f32[1,4]
 *     const %w : f32[4,4] = blob "m.weights" 0 64      (or = [1, 2, ...] inline)
 *     %y : f32[1,4] = MatMul "node_name" (%x, %w) {attr = value, ...}
 *     output %y
 *   }
 * A node whose opset differs from the graph's is written Op@11. Values computed
 * at compile time are written as constants, and the nodes that made them are
 * left out. Floats are printed with enough digits to read back exactly. */
#include "ir.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

/* A quoted string with the text IR's escapes, or JSON's. */
static void quote_string(FILE *f, const char *s, bool json) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (json && c < 32) fprintf(f, "\\u%04x", c);
        else if (json) fputc(c, f);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 32 || c == 127) fprintf(f, "\\x%02x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}
static void print_string(FILE *f, const char *s) { quote_string(f, s, false); }
static void json_string(FILE *f, const char *s) { quote_string(f, s, true); }

static void print_name(FILE *f, const char *s) {
    bool plain = *s != 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.:/-", *p)) plain = false;
    fputc('%', f);
    if (plain) fputs(s, f);
    else print_string(f, s);
}

static void print_float(FILE *f, double v, bool dbl) {
    if (isnan(v)) { fputs("nan", f); return; }
    if (isinf(v)) { fputs(v > 0 ? "inf" : "-inf", f); return; }
    char buf[64];
    snprintf(buf, sizeof buf, dbl ? "%.17g" : "%.9g", v);
    fputs(buf, f);
    if (!strpbrk(buf, ".e")) fputs(".0", f);
}

static void print_type(FILE *f, const Value *v) {
    char buf[256];
    value_type_str(v, buf, sizeof buf);
    bool input = v->rank > 0 && !v->producer && !v->data, symbolic = false;
    for (int i = 0; input && i < v->rank; i++) symbolic |= v->dims[i] < 0 || (i == 0 && v->batch);
    if (!symbolic) { fputs(buf, f); return; }
    /* a graph input's symbolic dims (the batch, or any when kept for run time): f32[?,3] */
    fprintf(f, "%s[", dtype_name(v->dtype));
    for (int i = 0; i < v->rank; i++) {
        if (i) fputc(',', f);
        if (v->dims[i] < 0 || (i == 0 && v->batch)) fputc('?', f);
        else fprintf(f, "%lld", (long long)v->dims[i]);
    }
    fputc(']', f);
}

static void print_elems(FILE *f, const Value *v) {
    int64_t n = value_numel(v);
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) {
        if (i) fputs(", ", f);
        if (dtype_is_float(v->dtype)) print_float(f, value_const_float(v, i), v->dtype == DT_F64);
        else if (v->dtype == DT_U64) fprintf(f, "%llu", (unsigned long long)((const uint64_t *)v->data)[i]);
        else fprintf(f, "%lld", (long long)value_const_int(v, i));
    }
    fputc(']', f);
}

typedef struct { FILE *f; const PrintOpts *o; FILE *wf; int64_t woff; Diags *d; } Printer;

static bool print_graph(Printer *p, const Graph *g, int indent);

static void print_attr(Printer *p, const Attr *a, int indent) {
    FILE *f = p->f;
    fprintf(f, "%s = ", a->name);
    switch (a->kind) {
    case ATTR_INT: fprintf(f, "%lld", (long long)a->i); break;
    case ATTR_FLOAT: print_float(f, a->f, false); break;
    case ATTR_STRING: print_string(f, a->s); break;
    case ATTR_INTS:
        fputs(a->n ? "[" : "ints[", f);
        for (int i = 0; i < a->n; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)a->ints[i]);
        fputc(']', f);
        break;
    case ATTR_FLOATS:
        fputs(a->n ? "[" : "floats[", f);
        for (int i = 0; i < a->n; i++) { if (i) fputs(", ", f); print_float(f, a->floats[i], false); }
        fputc(']', f);
        break;
    case ATTR_STRINGS:
        fputs(a->n ? "[" : "strings[", f);
        for (int i = 0; i < a->n; i++) { if (i) fputs(", ", f); print_string(f, a->strings[i]); }
        fputc(']', f);
        break;
    case ATTR_TENSOR:
        fputs("tensor ", f);
        print_type(f, a->t);
        fputc(' ', f);
        print_elems(f, a->t);
        break;
    case ATTR_GRAPH:
        print_graph(p, a->g, indent + 2);
        break;
    }
}

static bool print_const(Printer *p, const Value *v, int indent) {
    FILE *f = p->f;
    fprintf(f, "%*sconst ", indent, "");
    print_name(f, v->name);
    fputs(" : ", f);
    print_type(f, v);
    fputs(" = ", f);
    int64_t n = value_numel(v), nb = value_nbytes(v);
    if (!p->o || !p->o->weights_path || n <= p->o->inline_limit) print_elems(f, v);
    else {
        if (!p->wf) {
            p->wf = fopen(p->o->weights_path, "wb");
            if (!p->wf) { diag_error(p->d, NULL, "cannot write weights file %s", p->o->weights_path); return false; }
        }
        static const char zeros[64];
        int64_t pad = (64 - p->woff % 64) % 64;
        fwrite(zeros, 1, (size_t)pad, p->wf);
        p->woff += pad;
        if (fwrite(v->data, 1, (size_t)nb, p->wf) != (size_t)nb) { diag_error(p->d, NULL, "cannot write weights file"); return false; }
        fputs("blob ", f);
        print_string(f, p->o->weights_ref);
        fprintf(f, " %lld %lld", (long long)p->woff, (long long)nb);
        p->woff += nb;
    }
    fputc('\n', f);
    return true;
}

static bool node_printed(const Node *n) {
    if (n->n_out && n->out[0]->is_seq) return false; /* a sequence's readers no longer use it (ir/sequence.c) */
    for (int j = 0; j < n->n_out; j++) if (!n->out[j]->data) return true;
    return false;
}

static bool print_graph(Printer *p, const Graph *g, int indent) {
    FILE *f = p->f;
    fputs("graph ", f);
    print_string(f, g->name);
    fprintf(f, " opset %d {\n", g->opset);
    for (int i = 0; i < g->inputs.n; i++) {
        Value *v = g->inputs.items[i];
        fprintf(f, "%*s%s ", indent + 2, "", i >= g->inputs.n - g->captures ? "capture" : "input");
        print_name(f, v->name);
        fputs(" : ", f);
        print_type(f, v);
        fputc('\n', f);
    }
    /* constants used by printed nodes or as outputs */
    for (int i = 0; i < g->values.n; i++) ((Value *)g->values.items[i])->id = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!node_printed(n)) continue;
        for (int j = 0; j < n->n_in; j++) if (n->in[j]) n->in[j]->id = 1;
    }
    for (int i = 0; i < g->outputs.n; i++) ((Value *)g->outputs.items[i])->id = 1;
    for (int i = 0; i < g->values.n; i++) {
        Value *v = g->values.items[i];
        bool is_input = false;
        for (int k = 0; k < g->inputs.n; k++) if (g->inputs.items[k] == v) is_input = true;
        bool own_out = v->producer && node_printed(v->producer);
        if (v->id && v->data && !is_input && !own_out && !print_const(p, v, indent + 2)) return false;
    }
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!node_printed(n)) continue;
        fprintf(f, "%*s", indent + 2, "");
        for (int j = 0; j < n->n_out; j++) {
            if (j) fputs(", ", f);
            print_name(f, n->out[j]->name);
            fputs(" : ", f);
            print_type(f, n->out[j]);
        }
        fprintf(f, " = %s", op_table[n->op].name);
        if (n->opset != g->opset) fprintf(f, "@%d", n->opset);
        fputc(' ', f);
        print_string(f, n->name);
        fputs(" (", f);
        for (int j = 0; j < n->n_in; j++) {
            if (j) fputs(", ", f);
            if (n->in[j]) print_name(f, n->in[j]->name);
            else fputc('_', f);
        }
        fputc(')', f);
        if (n->n_attr) {
            fputs(" {", f);
            for (int j = 0; j < n->n_attr; j++) {
                if (j) fputs(", ", f);
                print_attr(p, &n->attrs[j], indent + 2);
            }
            fputc('}', f);
        }
        fputc('\n', f);
    }
    for (int i = 0; i < g->outputs.n; i++) {
        fprintf(f, "%*soutput ", indent + 2, "");
        print_name(f, ((Value *)g->outputs.items[i])->name);
        fputc('\n', f);
    }
    fprintf(f, "%*s}", indent, "");
    return true;
}

bool ir_print_text(const Graph *g, FILE *f, const PrintOpts *o, Diags *d) {
    Printer p = {f, o, NULL, 0, d};
    fputs("kiln 1\n", f);
    bool ok = print_graph(&p, g, 0);
    fputc('\n', f);
    if (p.wf && fclose(p.wf) != 0) ok = false;
    return ok;
}

static void dot_id(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) { if (*s == '"' || *s == '\\') fputc('\\', f); fputc(*s, f); }
    fputc('"', f);
}

void ir_print_dot(const Graph *g, FILE *f) {
    fprintf(f, "digraph ");
    dot_id(f, g->name);
    fprintf(f, " {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    char buf[256];
    for (int i = 0; i < g->inputs.n; i++) {
        Value *v = g->inputs.items[i];
        fprintf(f, "  v%p [shape=ellipse, label=\"input %s\\n%s\"];\n", (void *)v, v->name, value_type_str(v, buf, sizeof buf));
    }
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!node_printed(n)) continue;
        fprintf(f, "  n%p [label=", (void *)n);
        char *label = arena_printf(g->arena, "%s\\n%s", op_table[n->op].name, n->name);
        dot_id(f, label);
        fprintf(f, "];\n");
        for (int j = 0; j < n->n_in; j++) {
            Value *v = n->in[j];
            if (!v || v->data) continue;
            if (v->producer) fprintf(f, "  n%p -> n%p [label=\"%s\"];\n", (void *)v->producer, (void *)n, value_type_str(v, buf, sizeof buf));
            else fprintf(f, "  v%p -> n%p;\n", (void *)v, (void *)n);
        }
    }
    for (int i = 0; i < g->outputs.n; i++) {
        Value *v = g->outputs.items[i];
        fprintf(f, "  o%d [shape=ellipse, label=\"output %s\\n%s\"];\n", i, v->name, value_type_str(v, buf, sizeof buf));
        if (v->producer) fprintf(f, "  n%p -> o%d;\n", (void *)v->producer, i);
    }
    fprintf(f, "}\n");
}


static void json_value(FILE *f, const Value *v) {
    fputs("{\"name\": ", f);
    json_string(f, v->name);
    fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", dtype_name(v->dtype));
    for (int i = 0; i < v->rank; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)v->dims[i]);
    fputc(']', f);
    if (v->mem_offset >= 0) fprintf(f, ", \"offset\": %lld", (long long)v->mem_offset);
    fputc('}', f);
}

void ir_print_json(const Graph *g, FILE *f) {
    fputs("{\"graph\": ", f);
    json_string(f, g->name);
    fprintf(f, ", \"opset\": %d, \"workspace_bytes\": %lld,\n \"inputs\": [", g->opset, (long long)g->workspace_size);
    for (int i = 0; i < g->inputs.n; i++) { if (i) fputs(", ", f); json_value(f, g->inputs.items[i]); }
    fputs("],\n \"outputs\": [", f);
    for (int i = 0; i < g->outputs.n; i++) { if (i) fputs(", ", f); json_value(f, g->outputs.items[i]); }
    fputs("],\n \"nodes\": [", f);
    bool first = true;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!node_printed(n)) continue;
        fputs(first ? "\n  " : ",\n  ", f);
        first = false;
        fputs("{\"name\": ", f);
        json_string(f, n->name);
        fprintf(f, ", \"op\": \"%s\", \"opset\": %d, \"inputs\": [", op_table[n->op].name, n->opset);
        for (int j = 0; j < n->n_in; j++) {
            if (j) fputs(", ", f);
            if (n->in[j]) json_value(f, n->in[j]);
            else fputs("null", f);
        }
        fputs("], \"outputs\": [", f);
        for (int j = 0; j < n->n_out; j++) { if (j) fputs(", ", f); json_value(f, n->out[j]); }
        fputs("]}", f);
    }
    fputs("\n ]}\n", f);
}
