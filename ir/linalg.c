/* linalg.c: the shape rules of MatMul (numpy's matmul: a 1-D operand gains a
 * dimension that the result drops, batch dimensions broadcast), Gemm (2-D A and
 * B, either transposed, C broadcast to [M, N]), Einsum (the equation parsed
 * once, by einsum_parse, for the shape rule and the lowering), Det (float
 * square matrices [..., M, M]) and Trilu (k a constant). The integer products
 * are with the quantization ops (quant.c). The lowerings are in
 * codegen/linalg.c. */
#include "ir.h"
#include "infer.h"

#include <string.h>

bool infer_matmul(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *a = n->in[0], *b = n->in[1];
    if (a->dtype != b->dtype) { diag_error(d, n, "inputs have different dtypes"); return false; }
    if (a->rank < 1 || b->rank < 1) { diag_error(d, n, "MatMul inputs must have rank 1 or more"); return false; }
    int64_t K = a->dims[a->rank - 1], Kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
    if (K != Kb) {
        char x[128], y[128];
        diag_error(d, n, "inner dimensions differ: %s x %s", value_type_str(a, x, sizeof x), value_type_str(b, y, sizeof y));
        return false;
    }
    Value ab = *a, bb = *b;
    ab.rank = a->rank > 2 ? a->rank - 2 : 0;
    bb.rank = b->rank > 2 ? b->rank - 2 : 0;
    Value *pair[2] = {&ab, &bb};
    int rank;
    int64_t dims[MAX_RANK];
    if (!shape_broadcast(pair, 2, &rank, dims)) { diag_error(d, n, "batch dimensions do not broadcast"); return false; }
    if (a->rank >= 2) dims[rank++] = a->dims[a->rank - 2];
    if (b->rank >= 2) dims[rank++] = b->dims[b->rank - 1];
    set_out(n->out[0], a->dtype, rank, dims);
    return check_size(n, n->out[0], d);
}

bool infer_gemm(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d) || !float_input(n, n->in[0], d)) return false;
    Value *a = n->in[0], *b = n->in[1], *c = node_input(n, 2);
    if (a->rank != 2 || b->rank != 2) { diag_error(d, n, "Gemm inputs A and B must be 2-D"); return false; }
    int ta = node_attrs(n, gemm)->transA != 0, tb = node_attrs(n, gemm)->transB != 0;
    int64_t M = a->dims[ta], K = a->dims[!ta], Kb = b->dims[tb], N = b->dims[!tb];
    if (K != Kb) { diag_error(d, n, "inner dimensions differ (%lld and %lld)", (long long)K, (long long)Kb); return false; }
    int64_t dims[2] = {M, N};
    if (c) {
        if (c->rank > 2) { diag_error(d, n, "Gemm's C must have rank 2 or less"); return false; }
        for (int i = 0; i < c->rank; i++) {
            int64_t cd = c->dims[i], want = dims[2 - c->rank + i];
            if (cd != 1 && cd != want) { diag_error(d, n, "C does not broadcast to [%lld,%lld]", (long long)M, (long long)N); return false; }
        }
    }
    set_out(n->out[0], a->dtype, 2, dims);
    return check_size(n, n->out[0], d);
}

/* Parses the equation against the inputs' ranks: letters are labels 0..51, the
 * dimensions under "..." get labels 52 and up (right-aligned across inputs).
 * Without "->" the output is the ellipsis dims then the labels used once, in
 * alphabetical order. Sizes must agree (1 broadcasts). */
bool einsum_parse(const Node *n, EinsumInfo *e, Diags *d) {
    memset(e, 0, sizeof *e);
    const char *eq = node_attrs(n, einsum)->equation;
    if (!eq) { diag_error(d, n, "needs an equation"); return false; }
    if (n->n_in > 8) { diag_error(d, n, "takes at most 8 inputs"); return false; }
    for (int l = 0; l < 64; l++) e->size[l] = -1;
    const char *p = eq;
    int count[64] = {0}, max_ell = 0;
    e->n_in = n->n_in;
    for (int i = 0; i <= n->n_in; i++) {
        bool out = i == n->n_in;
        int *labels = out ? e->out : e->labels[i], r = 0, ell_at = -1;
        if (out) {
            while (*p == ' ') p++;
            if (*p != '-') { /* implicit output */
                for (int k = 0; k < max_ell; k++) e->out[e->out_rank++] = 52 + (max_ell - 1 - k);
                for (int l = 0; l < 52; l++) if (count[l] == 1) e->out[e->out_rank++] = l;
                break;
            }
            if (p[1] != '>') { diag_error(d, n, "bad equation '%s'", eq); return false; }
            p += 2;
        }
        for (; *p && *p != ',' && *p != '-'; p++) {
            if (*p == ' ') continue;
            if (*p == '.') {
                if (strncmp(p, "...", 3) != 0 || ell_at >= 0) { diag_error(d, n, "bad equation '%s'", eq); return false; }
                ell_at = r;
                p += 2;
                continue;
            }
            int l = (*p >= 'a' && *p <= 'z') ? *p - 'a' : (*p >= 'A' && *p <= 'Z') ? *p - 'A' + 26 : -1;
            if (l < 0 || r >= MAX_RANK) { diag_error(d, n, "bad equation '%s'", eq); return false; }
            labels[r++] = l;
        }
        int rank = out ? r : n->in[i]->rank, ne = rank - r;
        if (ell_at >= 0) {
            if (out) ne = max_ell;
            if (ne < 0 || r + ne > MAX_RANK) { diag_error(d, n, "the equation does not match input %d's rank", i); return false; }
            memmove(labels + ell_at + ne, labels + ell_at, (size_t)(r - ell_at) * sizeof(int));
            for (int k = 0; k < ne; k++) labels[ell_at + k] = 52 + (ne - 1 - k);
            r += ne;
            if (!out && ne > max_ell) max_ell = ne;
        }
        if (out) { e->out_rank = r; break; }
        if (r != rank) { diag_error(d, n, "the equation gives input %d %d dimensions; it has %d", i, r, rank); return false; }
        e->rank[i] = r;
        for (int k = 0; k < r; k++) {
            int l = labels[k];
            int64_t dim = n->in[i]->dims[k];
            if (l < 52) count[l]++;
            if (e->size[l] < 0 || e->size[l] == 1) e->size[l] = dim;
            else if (dim != 1 && dim != e->size[l]) { diag_error(d, n, "label sizes disagree (%lld and %lld)", (long long)e->size[l], (long long)dim); return false; }
        }
        if (*p == ',') p++;
    }
    for (int k = 0; k < e->out_rank; k++)
        if (e->size[e->out[k]] < 0) { diag_error(d, n, "output label not in any input"); return false; }
    return true;
}

bool infer_einsum(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    for (int i = 0; i < n->n_in; i++) if (!dtype_is_float(n->in[i]->dtype)) { diag_error(d, n, "inputs must be float tensors"); return false; }
    EinsumInfo e;
    if (!einsum_parse(n, &e, d)) return false;
    int64_t dims[MAX_RANK];
    for (int k = 0; k < e.out_rank; k++) dims[k] = e.size[e.out[k]];
    set_out(n->out[0], n->in[0]->dtype, e.out_rank, dims);
    return true;
}

bool infer_det(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *x = n->in[0];
    if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2] || !dtype_is_float(x->dtype)) {
        diag_error(d, n, "needs float square matrices [..., M, M]");
        return false;
    }
    set_out(n->out[0], x->dtype, x->rank - 2, x->dims);
    return true;
}

bool infer_trilu(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *k = node_input(n, 1);
    if (n->in[0]->rank < 2) { diag_error(d, n, "input must have rank 2 or more"); return false; }
    if (k && (!k->data || value_numel(k) != 1)) { diag_need(d, n, k, "input '%s' must be a constant scalar (computed at run time: only an executable built for this machine takes that)", k->name); return false; }
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, n->in[0]->dims);
    return true;
}
