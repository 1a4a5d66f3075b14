/* plan.c (pass "plan"): the memory planner.
 *
 * Every value computed at run time gets an offset in one workspace. Views
 * (Reshape, Squeeze, Identity, ...) alias their input, whose lifetime grows to
 * cover theirs. A value lives from its producer's position to its last user's
 * (graph outputs to the end). Offsets are assigned greedily: first by size,
 * largest first, each buffer at the lowest 64-aligned offset where it overlaps
 * no placed buffer whose lifetime intersects its own (TFLite's greedy-by-size
 * planner; its peak is kept in workspace_greedy for comparison); then in two
 * other orders (size x lifetime, first use) with best fit (the smallest gap
 * that holds the buffer). The plan with the smallest peak is kept, so it is
 * never larger than greedy by size. Inputs and outputs of one node never share
 * bytes (their lifetimes touch).
 *
 * The subgraphs of If, Loop and Scan are planned on their own (the lowering
 * gives each a region of the workspace of its own size): a subgraph's inputs,
 * other than its captures, hold the loop state or the scan slices and live
 * from its start to its end. */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

typedef struct { Value *v; int64_t size; } Buf;

static int by_size(const void *a, const void *b) {
    const Buf *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return x->v->first_use - y->v->first_use;
}

static int by_breadth(const void *a, const void *b) {
    const Buf *x = a, *y = b;
    double bx = (double)x->size * (x->v->last_use - x->v->first_use + 1), by = (double)y->size * (y->v->last_use - y->v->first_use + 1);
    if (bx != by) return bx > by ? -1 : 1;
    return by_size(a, b);
}

static int by_first_use(const void *a, const void *b) {
    const Buf *x = a, *y = b;
    if (x->v->first_use != y->v->first_use) return x->v->first_use - y->v->first_use;
    return by_size(a, b);
}

static bool needs_memory(const Value *v) { return !v->data && v->producer && !v->alias; }

/* Places bufs in order: each at the lowest offset (first fit) or in the
 * smallest gap that holds it (best fit) among the placed buffers whose
 * lifetimes intersect its own. Writes off[]; returns the peak. */
static int64_t place_all(const Buf *bufs, int nb, int64_t *off, bool best_fit) {
    int64_t peak = 0;
    int64_t (*iv)[2] = malloc((size_t)(nb + 1) * sizeof *iv);
    if (!iv) best_fit = false;
    for (int i = 0; i < nb; i++) {
        const Value *v = bufs[i].v;
        int64_t size = bufs[i].size, o = 0;
        if (best_fit) {
            int m = 0; /* the live placed intervals, sorted by offset */
            for (int j = 0; j < i; j++) {
                const Value *w = bufs[j].v;
                if (v->first_use <= w->last_use && w->first_use <= v->last_use) {
                    int q = m++;
                    while (q > 0 && iv[q - 1][0] > off[j]) { iv[q][0] = iv[q - 1][0]; iv[q][1] = iv[q - 1][1]; q--; }
                    iv[q][0] = off[j];
                    iv[q][1] = off[j] + bufs[j].size;
                }
            }
            int64_t gap_best = -1, end = 0;
            o = -1;
            for (int q = 0; q < m; q++) {
                int64_t gap = iv[q][0] - end;
                if (gap >= size && (gap_best < 0 || gap < gap_best)) { gap_best = gap; o = end; }
                if (iv[q][1] > end) end = iv[q][1];
            }
            if (o < 0) o = end;
        } else {
            bool moved = true;
            while (moved) { /* first fit: bump past any conflicting placed buffer */
                moved = false;
                for (int j = 0; j < i; j++) {
                    const Value *w = bufs[j].v;
                    bool live = v->first_use <= w->last_use && w->first_use <= v->last_use;
                    if (live && o < off[j] + bufs[j].size && off[j] < o + size) {
                        o = off[j] + bufs[j].size;
                        moved = true;
                    }
                }
            }
        }
        off[i] = o;
        if (o + size > peak) peak = o + size;
    }
    free(iv);
    return peak;
}

bool pass_plan(Graph *g, Diags *d) {
    int n = g->nodes.n;
    for (int i = 0; i < n; i++) {
        Node *nd = g->nodes.items[i];
        if (op_table[nd->op].flags & F_CONTROL)
            for (int j = 0; j < nd->n_attr; j++)
                if (nd->attrs[j].kind == ATTR_GRAPH && subgraph_live(nd, nd->attrs[j].g) && !pass_plan(nd->attrs[j].g, d)) return false;
    }
    for (int i = 0; i < g->values.n; i++) {
        Value *v = g->values.items[i];
        v->alias = NULL;
        v->mem_offset = -1;
        v->first_use = v->last_use = -1;
    }
    for (int i = 0; i < n; i++) {
        Node *nd = g->nodes.items[i];
        if ((op_table[nd->op].flags & F_VIEW) && !nd->out[0]->data && !nd->in[0]->data) nd->out[0]->alias = nd->in[0];
        for (int j = 0; j < nd->n_out; j++) nd->out[j]->first_use = nd->out[j]->last_use = i;
        for (int j = 0; j < nd->n_in; j++) if (nd->in[j]) nd->in[j]->last_use = i;
    }
    for (int i = 0; i < g->outputs.n; i++) ((Value *)g->outputs.items[i])->last_use = n;
    int formal = g->parent ? g->inputs.n - g->captures : 0;
    for (int i = 0; i < formal; i++) {
        Value *v = g->inputs.items[i];
        v->first_use = 0;
        v->last_use = n;
    }
    for (int i = n - 1; i >= 0; i--) {
        Node *nd = g->nodes.items[i];
        Value *o = nd->out[0];
        if (o->alias && o->last_use > o->alias->last_use) o->alias->last_use = o->last_use;
    }
    Buf *bufs = arena_alloc(g->arena, (size_t)(g->values.n + 1) * sizeof *bufs);
    int nb = 0;
    for (int i = 0; i < g->values.n; i++) {
        Value *v = g->values.items[i];
        if (needs_memory(v)) bufs[nb++] = (Buf){v, (value_nbytes(v) + 63) & ~(int64_t)63};
    }
    for (int i = 0; i < formal; i++) {
        Value *v = g->inputs.items[i];
        bufs[nb++] = (Buf){v, (value_nbytes(v) + 63) & ~(int64_t)63};
    }
    /* TFLite's greedy by size first; then by size x lifetime and by first use,
     * each placed best-fit; the smallest peak wins */
    static int (*const orders[])(const void *, const void *) = {by_size, by_breadth, by_first_use};
    int64_t *off = arena_alloc(g->arena, (size_t)(nb + 1) * sizeof *off);
    Buf *sorted = arena_alloc(g->arena, (size_t)(nb + 1) * sizeof *sorted);
    int64_t best_peak = -1;
    for (int k = 0; k < 3; k++) {
        memcpy(sorted, bufs, (size_t)nb * sizeof *sorted);
        qsort(sorted, (size_t)nb, sizeof *sorted, orders[k]);
        int64_t peak = place_all(sorted, nb, off, k > 0);
        if (k == 0) g->workspace_greedy = peak;
        if (best_peak < 0 || peak < best_peak) {
            best_peak = peak;
            for (int i = 0; i < nb; i++) sorted[i].v->mem_offset = off[i];
        }
    }
    g->workspace_size = best_peak < 0 ? 0 : best_peak;
    g->workspace_bound = 0; /* no plan beats the bytes live at the busiest node */
    for (int t = 0; t <= n; t++) {
        int64_t live = 0;
        for (int i = 0; i < nb; i++) if (bufs[i].v->first_use <= t && t <= bufs[i].v->last_use) live += bufs[i].size;
        if (live > g->workspace_bound) g->workspace_bound = live;
    }
    return true;
}
