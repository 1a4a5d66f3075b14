/* control.c: If, Loop and Scan as native code (their shape rules: ir/control.c).
 *
 * A subgraph's steps are lowered inline, into the same program, between
 * control steps: If branches on its condition around the two branches; Loop
 * and Scan keep a counter, test it at the top, run the body, and jump back. The
 * body's values live in a region of the workspace reserved for it (its own
 * memory plan, offset by the region's base); its captured inputs are the
 * buffers of the node's inputs, read in place. Loop state moves from the body's
 * outputs back to its inputs with copies (through a staging buffer where one
 * state's new value is another state's old one); Scan reads and writes slices
 * along its axes with ctl_slice. Nothing is interpreted at run time. */
#include "kir.h"

#include <string.h>

/* Prepares s to lower subgraph sub of node n: a region for its values, its
 * captures bound to the buffers of n's inputs from `first` on. */
static void sub_begin(Lower *l, Node *n, Graph *sub, int first, Lower *s) {
    *s = *l;
    s->g = sub;
    s->base = l->k->workspace_size;
    l->k->workspace_size += (sub->workspace_size + 63) & ~(int64_t)63;
    lower_forget(sub);
    int c = sub->captures, formal = sub->inputs.n - c;
    for (int k = 0; k < c; k++) ((Value *)sub->inputs.items[formal + k])->id = lower_buf(l, n->in[first + k]);
    for (int i = 0; i < formal; i++) lower_buf(s, sub->inputs.items[i]);
}

static void copy(Lower *l, int dst, int src, int64_t nbytes) {
    if (dst == src || nbytes == 0) return;
    int b[2] = {dst, src};
    kiln_p_copy p = {.nbytes = nbytes};
    LOWER_CALL(l, copy, 2, b, &p);
}

static void set_i64(Lower *l, int buf, int64_t value, int64_t esize) {
    kiln_p_ctl_set p = {.value = value, .esize = esize};
    LOWER_CALL(l, ctl_set, 1, &buf, &p);
}

/* flag <- counter < limit (a constant, or the int64 in limit_buf when >= 0) and
 * the bool in cond_buf (when >= 0); mode 1: flag <- counter == limit. */
static void test(Lower *l, int flag, int counter, int64_t limit, int limit_buf, int cond_buf, int mode) {
    int b[4] = {flag, counter}, nb = 2;
    if (limit_buf >= 0) b[nb++] = limit_buf;
    if (cond_buf >= 0) b[nb++] = cond_buf;
    kiln_p_ctl_test p = {.has_limit_buf = limit_buf >= 0, .has_cond = cond_buf >= 0, .limit = limit, .mode = mode};
    LOWER_CALL(l, ctl_test, nb, b, &p);
}

/* The slice at the counter's step along `axis` of the tensor v (shape of the
 * whole), between v's buffer and `other` (the slice). */
static void slice(Lower *l, const Value *v, int axis, bool reverse, bool scatter, int other, int counter) {
    kiln_p_ctl_slice p = {.count = v->dims[axis], .scatter = scatter, .reverse = reverse};
    outer_inner(v, axis, &p.outer, &p.inner_bytes);
    p.inner_bytes *= dtype_size(v->dtype);
    int b[3] = {scatter ? lower_buf(l, v) : other, scatter ? other : lower_buf(l, v), counter};
    LOWER_CALL(l, ctl_slice, 3, b, &p);
}

static int buf_of(Lower *l, Graph *g, bool out, int i) {
    return lower_buf(l, (out ? g->outputs.items : g->inputs.items)[i]);
}

/* For the next step, the body's outputs out0.. become its inputs in0.. (count
 * of them), all at once: an output that is another pair's input (states
 * trading values) is read into a staging buffer first. */
static void carry(Lower *l, Lower *s, Graph *b, int in0, int out0, int count) {
    int dst[64], src[64], staged[64];
    int64_t nb[64];
    for (int i = 0; i < count; i++) {
        dst[i] = buf_of(s, b, false, in0 + i);
        src[i] = buf_of(s, b, true, out0 + i);
        nb[i] = value_nbytes(b->inputs.items[in0 + i]);
    }
    for (int i = 0; i < count; i++) {
        staged[i] = -1;
        for (int j = 0; j < count && src[i] != dst[i]; j++)
            if (j != i && src[i] == dst[j] && staged[i] < 0) {
                staged[i] = scratch_buf(l, DT_U8, nb[i]);
                copy(l, staged[i], src[i], nb[i]);
            }
    }
    for (int i = 0; i < count; i++) copy(l, dst[i], staged[i] >= 0 ? staged[i] : src[i], nb[i]);
}

/* The end of a loop's step: the counter advances and the test at `top` runs
 * again; the exit branch lands after this. */
static void loop_back(Lower *l, int counter, int top, int to_exit) {
    LOWER_CALL(l, ctl_incr, 1, &counter, &(kiln_p_ctl_incr){.step = 1});
    l->k->steps[lower_ctl(l, KS_JUMP, -1, false)].target = top;
    l->k->steps[to_exit].target = l->k->nsteps;
}

/* Runs a branch and copies its outputs to the node's. */
static bool branch(Lower *l, Node *n, Graph *sub) {
    Lower s;
    const char *comment = l->comment;
    sub_begin(l, n, sub, 1, &s);
    if (!lower_nodes(&s)) return false;
    l->comment = comment;
    for (int j = 0; j < n->n_out; j++) copy(l, lower_buf(l, n->out[j]), buf_of(&s, sub, true, j), value_nbytes(n->out[j]));
    return true;
}

bool lower_if(Lower *l, Node *n) {
    Graph *t = node_attrs(n, if)->then_branch, *e = node_attrs(n, if)->else_branch;
    const Value *cond = n->in[0];
    if (cond->data) return branch(l, n, subgraph_live(n, t) ? t : e); /* only the branch taken */
    int to_else = lower_ctl(l, KS_BRANCH, lower_buf(l, cond), false);
    if (!branch(l, n, t)) return false;
    int to_end = lower_ctl(l, KS_JUMP, -1, false);
    l->k->steps[to_else].target = l->k->nsteps;
    if (!branch(l, n, e)) return false;
    l->k->steps[to_end].target = l->k->nsteps;
    return true;
}

bool lower_loop(Lower *l, Node *n) {
    Graph *b = node_attrs(n, loop)->body;
    int formal = n->n_in - b->captures, N = formal - 2, K = n->n_out - N;
    const Value *M = n->in[0], *cond = n->in[1];
    const char *comment = l->comment;
    Lower s;
    sub_begin(l, n, b, formal, &s);
    int iter = buf_of(&s, b, false, 0), condb = buf_of(&s, b, false, 1), flag = scratch_buf(l, DT_BOOL, 1);
    set_i64(l, iter, 0, 8);
    if (cond) copy(l, condb, lower_buf(l, cond), 1);
    else set_i64(l, condb, 1, 1);
    for (int j = 0; j < N; j++) copy(l, buf_of(&s, b, false, 2 + j), lower_buf(l, n->in[2 + j]), value_nbytes(n->in[2 + j]));
    int top = l->k->nsteps;
    test(l, flag, iter, 0, M ? lower_buf(l, M) : -1, condb, 0);
    int to_exit = lower_ctl(l, KS_BRANCH, flag, false);
    if (!lower_nodes(&s)) return false;
    l->comment = comment;
    for (int k = 0; k < K; k++) slice(l, n->out[N + k], 0, false, true, buf_of(&s, b, true, 1 + N + k), iter);
    carry(l, &s, b, 1, 0, N + 1); /* the condition, then the states */
    loop_back(l, iter, top, to_exit);
    if (K > 0) { /* stopped early by the condition: the scan outputs would be shorter than their static shape */
        test(l, flag, iter, n->out[N]->dims[0], -1, -1, 1);
        int ok = lower_ctl(l, KS_BRANCH, flag, true);
        lower_ctl(l, KS_FAIL, -1, false);
        l->k->steps[ok].target = l->k->nsteps;
    }
    for (int j = 0; j < N; j++) copy(l, lower_buf(l, n->out[j]), buf_of(&s, b, false, 2 + j), value_nbytes(n->out[j]));
    return true;
}

bool lower_scan(Lower *l, Node *n) {
    ScanInfo si;
    if (!scan_info(n, &si, l->d)) return false;
    Graph *b = node_attrs(n, scan)->body;
    const char *comment = l->comment;
    Lower s;
    sub_begin(l, n, b, si.first + si.N + si.M, &s);
    int ctr = scratch_buf(l, DT_I64, 1), flag = scratch_buf(l, DT_BOOL, 1);
    for (int j = 0; j < si.N; j++) copy(l, buf_of(&s, b, false, j), lower_buf(l, n->in[si.first + j]), value_nbytes(n->in[si.first + j]));
    set_i64(l, ctr, 0, 8);
    int top = l->k->nsteps;
    test(l, flag, ctr, si.T, -1, -1, 0);
    int to_exit = lower_ctl(l, KS_BRANCH, flag, false);
    for (int m = 0; m < si.M; m++)
        slice(l, n->in[si.first + si.N + m], si.in_axis[m], si.in_rev[m], false, buf_of(&s, b, false, si.N + m), ctr);
    if (!lower_nodes(&s)) return false;
    l->comment = comment;
    for (int k = 0; k < si.K; k++) slice(l, n->out[si.N + k], si.out_axis[k], si.out_rev[k], true, buf_of(&s, b, true, si.N + k), ctr);
    carry(l, &s, b, 0, 0, si.N);
    loop_back(l, ctr, top, to_exit);
    for (int j = 0; j < si.N; j++) copy(l, lower_buf(l, n->out[j]), buf_of(&s, b, false, j), value_nbytes(n->out[j]));
    return true;
}
