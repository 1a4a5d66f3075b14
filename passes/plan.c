/* plan.c (pass "plan"): the memory planner.
 *
 * Every value computed at run time gets an offset in one workspace. Views
 * (Reshape, Squeeze, Identity, ...) alias their input, whose lifetime grows to
 * cover theirs. A value lives from its producer's position to its last user's
 * (graph outputs to the end). Offsets are assigned greedily by size, largest
 * first (as TFLite's planner does): each buffer goes to the lowest 64-aligned
 * offset where it overlaps no placed buffer whose lifetime intersects its own.
 * Inputs and outputs of one node never share bytes (their lifetimes touch). */
#include "passes.h"

#include <stdlib.h>

typedef struct { Value *v; int64_t size; } Buf;

static int by_size(const void *a, const void *b) {
    const Buf *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return x->v->first_use - y->v->first_use;
}

static bool needs_memory(const Value *v) { return !v->data && v->producer && !v->alias; }

bool pass_plan(Graph *g, Diags *d) {
    (void)d;
    int n = g->nodes.n;
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
    qsort(bufs, (size_t)nb, sizeof *bufs, by_size);
    int64_t peak = 0;
    for (int i = 0; i < nb; i++) {
        Value *v = bufs[i].v;
        int64_t off = 0;
        bool moved = true;
        while (moved) { /* first fit: bump past any conflicting placed buffer */
            moved = false;
            for (int j = 0; j < i; j++) {
                Value *w = bufs[j].v;
                bool live = v->first_use <= w->last_use && w->first_use <= v->last_use;
                if (live && off < w->mem_offset + bufs[j].size && w->mem_offset < off + bufs[i].size) {
                    off = w->mem_offset + bufs[j].size;
                    moved = true;
                }
            }
        }
        v->mem_offset = off;
        if (off + bufs[i].size > peak) peak = off + bufs[i].size;
    }
    g->workspace_size = peak;
    return true;
}
