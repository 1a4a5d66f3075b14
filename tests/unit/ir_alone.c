/* ir_alone.c: the IR used with nothing else of Kiln's (tests/layers.py links it
 * against libkilnir.a alone). It builds a small graph by hand, infers its
 * shapes with no services installed (so nothing folds), checks them, checks
 * the verifier and the text printer, and exits 0 when all holds. */
#include "../../ir/ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(c, what) do { if (!(c)) { fprintf(stderr, "ir_alone: %s\n", what); failures++; } } while (0)

/* A node of g with fresh outputs named after it. */
static Node *add(Graph *g, OpKind op, const char *name, int n_in, int n_out) {
    Node *n = graph_add_node(g, op, name, n_in, n_out);
    for (int i = 0; i < n_out; i++) {
        char vn[64];
        snprintf(vn, sizeof vn, "%s_%d", name, i);
        n->out[i] = graph_add_value(g, vn);
        n->out[i]->producer = n, n->out[i]->producer_out = i;
    }
    return n;
}

int main(void) {
    Arena *a = arena_new();
    Diags d = {.arena = a};
    Graph *g = graph_new(a, "alone");
    g->opset = 13;
    int64_t xd[2] = {2, 3}, wd[2] = {3, 4};
    Value *x = graph_add_value(g, "x");
    x->dtype = DT_F32, x->rank = 2, memcpy(x->dims, xd, sizeof xd);
    vec_push(a, &g->inputs, x);
    float w[12];
    for (int i = 0; i < 12; i++) w[i] = (float)i;
    Value *wt = graph_add_const(g, "w", DT_F32, 2, wd, w);
    Node *mm = add(g, OP_MATMUL, "mm", 2, 1);
    mm->in[0] = x, mm->in[1] = wt;
    Node *relu = add(g, OP_RELU, "relu", 1, 1);
    relu->in[0] = mm->out[0];
    Node *shape = add(g, OP_SHAPE, "shape", 1, 1);
    shape->in[0] = relu->out[0];
    vec_push(a, &g->outputs, relu->out[0]);
    vec_push(a, &g->outputs, shape->out[0]);

    CHECK(graph_services(g) == NULL, "a new graph has services");
    CHECK(graph_check_arity(g, &d), "arity check failed");
    CHECK(graph_infer(g, &d), d.first ? d.first->msg : "inference failed");
    Value *y = relu->out[0], *s = shape->out[0];
    CHECK(y->dtype == DT_F32 && y->rank == 2 && y->dims[0] == 2 && y->dims[1] == 4, "MatMul -> Relu is not f32[2,4]");
    /* Shape is computed by its rule, with or without a folder */
    CHECK(s->data && s->dtype == DT_I64 && value_const_int(s, 0) == 2 && value_const_int(s, 1) == 4, "Shape is not [2, 4]");
    CHECK(ir_verify(g, &d), "the verifier refused the graph");

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(ir_print_text(g, f, NULL, &d), "printing failed");
    fclose(f);
    CHECK(text && strstr(text, "= MatMul \"mm\" (%x, %w)") && strstr(text, ": f32[2,4] = Relu"), "the printed IR lacks its nodes");
    free(text);

    /* a rule's error is a diagnostic naming the node */
    Graph *b = graph_new(a, "bad");
    b->opset = 13;
    Value *u = graph_add_value(b, "u");
    u->dtype = DT_F32, u->rank = 2, memcpy(u->dims, xd, sizeof xd);
    vec_push(a, &b->inputs, u);
    Node *bad = add(b, OP_MATMUL, "bad_mm", 2, 1);
    bad->in[0] = u, bad->in[1] = u;
    vec_push(a, &b->outputs, bad->out[0]);
    Diags bd = {.arena = a};
    CHECK(!graph_infer(b, &bd) && bd.errors == 1 && bd.first && strcmp(bd.first->node_name, "bad_mm") == 0,
          "a [2,3] x [2,3] MatMul was not refused with a diagnostic on its node");

    arena_free(a);
    printf("ir_alone: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
