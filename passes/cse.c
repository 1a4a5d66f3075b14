/* cse.c (pass "cse"): common-subexpression elimination.
 *
 * Two nodes are the same when they have the same op, opset, inputs (the same
 * Value objects) and attributes (scalar and list values compared, tensors and
 * graphs by identity). The later one's outputs are replaced by the earlier's
 * everywhere, graph outputs included; dce then removes it. Quadratic in the
 * worst case but restricted to nodes with the same op and first input. */
#include "passes.h"

#include <string.h>

static bool attr_equal(const Attr *a, const Attr *b) {
    if (strcmp(a->name, b->name) != 0 || a->kind != b->kind || a->i != b->i || a->n != b->n) return false;
    if (a->f != b->f && !(a->f != a->f && b->f != b->f)) return false;
    if ((a->s || b->s) && (!a->s || !b->s || strcmp(a->s, b->s) != 0)) return false;
    if (a->kind == ATTR_INTS && memcmp(a->ints, b->ints, (size_t)a->n * sizeof *a->ints) != 0) return false;
    if (a->kind == ATTR_FLOATS && memcmp(a->floats, b->floats, (size_t)a->n * sizeof *a->floats) != 0) return false;
    if (a->kind == ATTR_STRINGS)
        for (int i = 0; i < a->n; i++) if (strcmp(a->strings[i], b->strings[i]) != 0) return false;
    return a->t == b->t && a->g == b->g;
}

static bool node_equal(const Node *a, const Node *b) {
    if (a->op != b->op || a->opset != b->opset || a->n_in != b->n_in || a->n_out != b->n_out || a->n_attr != b->n_attr) return false;
    for (int i = 0; i < a->n_in; i++) if (a->in[i] != b->in[i]) return false;
    for (int i = 0; i < a->n_attr; i++) if (!attr_equal(&a->attrs[i], &b->attrs[i])) return false;
    return true;
}

static void replace_uses(Graph *g, Value *from, Value *to) {
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        for (int j = 0; j < n->n_in; j++) if (n->in[j] == from) n->in[j] = to;
    }
    for (int i = 0; i < g->outputs.n; i++)
        if (g->outputs.items[i] == from) g->outputs.items[i] = to;
}

bool pass_cse(Graph *g, Diags *d) {
    for (int i = 0; i < g->nodes.n; i++) {
        Node *b = g->nodes.items[i];
        if (b->dead || op_table[b->op].flags & F_META) continue;
        for (int k = 0; k < i; k++) {
            Node *a = g->nodes.items[k];
            if (a->dead || !node_equal(a, b)) continue;
            bool outputs_ok = true; /* keep graph outputs distinct when both are outputs */
            for (int j = 0; j < b->n_out; j++)
                for (int o = 0; o < g->outputs.n; o++)
                    if (g->outputs.items[o] == b->out[j]) outputs_ok = false;
            if (!outputs_ok) continue;
            for (int j = 0; j < b->n_out; j++) replace_uses(g, b->out[j], a->out[j]);
            b->dead = true;
            break;
        }
    }
    return pass_dce(g, d);
}
