/* fuse.c (pass "fuse"): fuses chains of elementwise nodes into one loop.
 *
 * Walking nodes from last to first, an elementwise node roots a group; the group
 * absorbs an elementwise producer of one of its inputs when that producer's
 * output has exactly one use, is not a graph output, and has the root's shape
 * (so no value is recomputed). A group of two or more becomes one kiln.Fused
 * node whose "body" attribute is a subgraph holding copies of the fused nodes;
 * its inputs are the group's outside inputs. Lowering turns the body into one
 * Kir loop, so the intermediates never reach memory. */
#include "passes.h"

#include <math.h>
#include <string.h>

#define MAX_GROUP 32

static bool fusable(const Node *n) {
    /* Expand's shape operand is not a tensor to load: it stays a loop of its own */
    /* Casts to and from strings are kernels of their own (runtime/strings.c) */
    return !n->dead && (op_table[n->op].flags & F_ELEM) && !n->out[0]->data && n->op != OP_EXPAND && n->op != OP_CAST_LIKE &&
           n->out[0]->dtype != DT_STRING && n->in[0]->dtype != DT_STRING;
}

static int node_pos(Graph *g, const Node *n) {
    for (int i = 0; i < g->nodes.n; i++) if (g->nodes.items[i] == n) return i;
    return -1;
}

static void build_fused(Graph *g, Node **group, int ng, int root_pos) {
    Node *root = group[0];
    /* order the group as in the graph (topological) */
    for (int i = 0; i < ng; i++)
        for (int j = i + 1; j < ng; j++)
            if (node_pos(g, group[j]) < node_pos(g, group[i])) { Node *t = group[i]; group[i] = group[j]; group[j] = t; }
    Value *ext[64];
    int next = 0;
    for (int i = 0; i < ng; i++)
        for (int j = 0; j < group[i]->n_in; j++) {
            Value *v = group[i]->in[j];
            if (!v) continue;
            bool inside = false, seen = false;
            for (int k = 0; k < ng; k++) if (v->producer == group[k]) inside = true;
            for (int k = 0; k < next; k++) if (ext[k] == v) seen = true;
            if (!inside && !seen) ext[next++] = v;
        }
    Graph *body = graph_new(g->arena, arena_printf(g->arena, "%s.body", root->name));
    body->parent = g;
    body->opset = g->opset;
    Value **map_from = arena_alloc(g->arena, (size_t)(next + ng) * sizeof(Value *));
    Value **map_to = arena_alloc(g->arena, (size_t)(next + ng) * sizeof(Value *));
    int nmap = 0;
    for (int k = 0; k < next; k++) {
        Value *bv = graph_add_value(body, ext[k]->name);
        bv->dtype = ext[k]->dtype;
        bv->rank = ext[k]->rank;
        memcpy(bv->dims, ext[k]->dims, sizeof bv->dims);
        vec_push(g->arena, &body->inputs, bv);
        map_from[nmap] = ext[k];
        map_to[nmap++] = bv;
    }
    char *desc = arena_strdup(g->arena, "fused:");
    for (int i = 0; i < ng; i++) {
        Node *o = group[i];
        Node *c = graph_add_node(body, o->op, o->name, o->n_in, 1);
        c->opset = o->opset;
        c->n_attr = o->n_attr;
        c->attrs = o->attrs;
        c->pa = o->pa, c->pa_set = o->pa_set;
        for (int j = 0; j < o->n_in; j++) {
            c->in[j] = NULL;
            for (int k = 0; k < nmap; k++) if (map_from[k] == o->in[j]) c->in[j] = map_to[k];
        }
        Value *ov = graph_add_value(body, o->out[0]->name);
        ov->dtype = o->out[0]->dtype;
        ov->rank = o->out[0]->rank;
        memcpy(ov->dims, o->out[0]->dims, sizeof ov->dims);
        ov->producer = c;
        c->out[0] = ov;
        map_from[nmap] = o->out[0];
        map_to[nmap++] = ov;
        desc = arena_printf(g->arena, "%s%s node '%s' (%s)", desc, i ? "," : "", o->name, op_table[o->op].name);
        o->dead = true;
    }
    vec_push(g->arena, &body->outputs, map_to[nmap - 1]);
    Node *f = graph_add_node(g, OP_FUSED, root->name, next, 1);
    g->nodes.n--; /* graph_add_node appended it: put it in the root's place */
    g->nodes.items[root_pos] = f;
    for (int k = 0; k < next; k++) f->in[k] = ext[k];
    f->out[0] = root->out[0];
    f->out[0]->producer = f;
    f->out[0]->producer_out = 0;
    node_add_attr(g, f, "body", ATTR_GRAPH)->g = body;
    node_add_attr(g, f, "fused", ATTR_STRING)->s = desc;
}

/* p (the only user of n's input) takes over n's output, as its epilogue; n goes. */
static void absorb(Node *p, Node *n) {
    p->out[0] = n->out[0];
    n->out[0]->producer = p;
    n->out[0]->producer_out = 0;
    n->dead = true;
}

/* Does Conv or Gemm p have an epilogue (kiln.clip_min/max) already? */
static bool has_epilogue(const Node *p) {
    if (p->op == OP_GEMM) return node_attrs(p, gemm)->has_kiln_clip_min || node_attrs(p, gemm)->has_kiln_clip_max;
    return node_attrs(p, conv)->has_kiln_clip_min || node_attrs(p, conv)->has_kiln_clip_max;
}

/* Relu or Clip (constant bounds) after a float32 Conv or Gemm whose output has no
 * other use becomes the producer's epilogue: attributes kiln.clip_min/max that
 * the kernel applies while the output is in cache. */
static bool fold_activations(Graph *g, Diags *d) {
    for (int i = 0; i < g->nodes.n; i++) {
        Node *act = g->nodes.items[i];
        if (act->dead || (act->op != OP_RELU && act->op != OP_CLIP)) continue;
        Value *x = act->in[0];
        Node *p = x->producer;
        if (!p || p->dead || (p->op != OP_CONV && p->op != OP_GEMM) || x->id != 1 || x->dtype != DT_F32) continue;
        if (has_epilogue(p)) continue;
        double lo = 0, hi = INFINITY;
        if (act->op == OP_CLIP) {
            lo = -INFINITY;
            if (act->opset < 11) {
                lo = node_attrs(act, clip)->min;
                hi = node_attrs(act, clip)->max;
            } else {
                Value *mn = node_input(act, 1), *mx = node_input(act, 2);
                if ((mn && !mn->data) || (mx && !mx->data)) continue;
                if (mn) lo = value_const_float(mn, 0);
                if (mx) hi = value_const_float(mx, 0);
            }
        }
        node_add_attr(g, p, "kiln.clip_min", ATTR_FLOAT)->f = lo;
        node_add_attr(g, p, "kiln.clip_max", ATTR_FLOAT)->f = hi;
        if (!node_parse_attrs(g, p, d)) return false; /* a later Relu of its new output reads them */
        absorb(p, act);
    }
    return true;
}

/* Add(conv, r) of two float32 values of one shape, where the Conv (a GEMM
 * convolution with a bias: not depthwise) has no other use and no epilogue yet:
 * r becomes the Conv's 4th input (kiln.residual), added to each output tile
 * while it is in registers; a following Relu or Clip then folds in too. */
static bool fold_residuals(Graph *g, Diags *d) {
    for (int i = 0; i < g->nodes.n; i++) {
        Node *add = g->nodes.items[i];
        if (add->dead || add->op != OP_ADD || add->n_in != 2 || add->out[0]->dtype != DT_F32) continue;
        for (int k = 0; k < 2; k++) {
            Value *x = add->in[k], *r = add->in[1 - k];
            Node *p = x->producer;
            if (!p || p->dead || p->op != OP_CONV || x->id != 1 || x == r || !value_same_shape(x, r) || r->dtype != DT_F32 ||
                !value_same_shape(x, add->out[0]) || !node_input(p, 2) || p->n_in != 3 || node_attrs(p, conv)->has_kiln_clip_min)
                continue;
            if (kiln_conv_is_direct(p->in[0]->dims[1], p->in[1]->dims[0], node_attrs(p, conv)->group)) continue;
            Value **in = arena_alloc(g->arena, 4 * sizeof *in);
            memcpy(in, p->in, 3 * sizeof *in);
            in[3] = r;
            p->in = in;
            p->n_in = 4;
            node_add_attr(g, p, "kiln.residual", ATTR_INT)->i = 1;
            if (!node_parse_attrs(g, p, d)) return false; /* fold_activations reads it next */
            absorb(p, add);
            break;
        }
    }
    return true;
}

bool pass_fuse(Graph *g, Diags *d) {
    graph_count_uses(g);
    if (!fold_residuals(g, d)) return false;
    graph_compact(g);
    graph_count_uses(g);
    if (!fold_activations(g, d)) return false;
    graph_compact(g);
    graph_count_uses(g);
    for (int i = g->nodes.n - 1; i >= 0; i--) {
        Node *root = g->nodes.items[i];
        if (!fusable(root) || root->op == OP_FUSED) continue;
        Node *group[MAX_GROUP];
        int ng = 1;
        group[0] = root;
        for (int k = 0; k < ng; k++)
            for (int j = 0; j < group[k]->n_in && ng < MAX_GROUP; j++) {
                Value *v = group[k]->in[j];
                Node *p = v ? v->producer : NULL;
                if (!p || !fusable(p) || p->op == OP_FUSED || v->id != 1 || !value_same_shape(v, root->out[0])) continue;
                bool have = false;
                for (int q = 0; q < ng; q++) if (group[q] == p) have = true;
                if (!have) group[ng++] = p;
            }
        if (ng >= 2) build_fused(g, group, ng, i);
    }
    graph_compact(g);
    return graph_toposort(g, d);
}
