/* linalg.c: the lowerings of MatMul, Gemm, Einsum, Det and Trilu.
 *
 * MatMul and Gemm are calls of the GEMM kernels (runtime/gemm.c): a constant
 * float32 B is packed into the GEMM's layout once, when the context is
 * created, and a MatMul by constant 2-D weights is one GEMM over all of a's
 * rows; constant batched weights (rank > 2) have every batch slice packed
 * then, each batch's GEMM reading its (broadcast) slice's panels. A Gemm applies the Relu or Clip the fuse pass folded into it in its
 * epilogue. Einsum passes the parsed equation (einsum_parse) as parameters. */
#include "kir.h"

#include <string.h>

/* A GEMM call (kiln_k_gemm). A constant float32 B is packed into the GEMM's
 * layout once, when the context is created. */
static void gemm_call(Lower *l, int out, const Value *a, const Value *b, const Value *c, kiln_p_gemm *p) {
    int bufs[5] = {out, in_f32(l, a), in_f32(l, b), c ? in_f32(l, c) : 0, 0};
    p->packed = !l->fold && b->data && b->dtype == DT_F32;
    if (p->packed) {
        kiln_p_pack_b pk = {p->N, p->K, p->transB, 1};
        int packed[2] = {state_buf(l, "packed weights", kiln_sgemm_packed_floats(p->N, p->K) * 4), bufs[2]};
        LOWER_CALL(l, pack_b, 2, packed, &pk)->at_create = true;
        bufs[4] = packed[0];
        if (!c) bufs[3] = bufs[1];
    }
    LOWER_CALL(l, gemm, p->packed ? 5 : c ? 4 : 3, bufs, p);
}

bool lower_matmul(Lower *l, Node *n) {
    const Value *a = n->in[0], *b = n->in[1], *y = n->out[0];
    int64_t K = a->dims[a->rank - 1], M = a->rank >= 2 ? a->dims[a->rank - 2] : 1;
    int64_t N = b->rank >= 2 ? b->dims[b->rank - 1] : 1;
    int ar = a->rank > 2 ? a->rank - 2 : 0, br = b->rank > 2 ? b->rank - 2 : 0, nb = ar > br ? ar : br;
    kiln_p_matmul p = {.M = M, .N = N, .K = K, .nb = nb};
    int64_t as = 1, bs = 1;
    for (int d = nb - 1; d >= 0; d--) {
        int ad = d - (nb - ar), bd = d - (nb - br);
        int64_t adim = ad >= 0 ? a->dims[ad] : 1, bdim = bd >= 0 ? b->dims[bd] : 1;
        p.out_bdims[d] = adim > bdim ? adim : bdim;
        p.a_bstrides[d] = adim == 1 ? 0 : as;
        p.b_bstrides[d] = bdim == 1 ? 0 : bs;
        as *= adim;
        bs *= bdim;
    }
    int out = out_f32(l, y);
    if (!l->fold && b->data && b->rank == 2 && b->dtype == DT_F32) {
        /* constant weights: one GEMM over all of a's rows, with b packed ahead */
        kiln_p_gemm g = {.M = value_numel(a) / K, .N = N, .K = K, .alpha = kiln_d2p(1.0), .beta = kiln_d2p(0.0)};
        gemm_call(l, out, a, b, NULL, &g);
    } else {
        int bufs[4] = {out, in_f32(l, a), in_f32(l, b), 0};
        p.packed = !l->fold && b->data && b->rank > 2 && b->dtype == DT_F32 && K > 0 && N > 0 && bs > 0;
        if (p.packed) {
            /* constant batched weights: each of b's bs slices packed ahead, the
             * run's GEMMs reading the slice the batch index picks */
            kiln_p_pack_b pk = {N, K, 0, bs};
            int packed[2] = {state_buf(l, "packed weights", kiln_sgemm_packed_floats(N, K) * bs * 4), bufs[2]};
            LOWER_CALL(l, pack_b, 2, packed, &pk)->at_create = true;
            bufs[3] = packed[0];
        }
        LOWER_CALL(l, matmul, p.packed ? 4 : 3, bufs, &p);
    }
    out_f32_done(l, y, out);
    return true;
}

bool lower_gemm(Lower *l, Node *n) {
    const Value *a = n->in[0], *b = n->in[1], *c = node_input(n, 2), *y = n->out[0];
    const attrs_gemm *at = node_attrs(n, gemm);
    int ta = at->transA != 0, tb = at->transB != 0;
    int64_t M = y->dims[0], N = y->dims[1], K = a->dims[!ta];
    int64_t crs = 0, ccs = 0;
    if (c && c->rank == 1) ccs = c->dims[0] == 1 ? 0 : 1;
    if (c && c->rank == 2) { crs = c->dims[0] == 1 ? 0 : c->dims[1]; ccs = c->dims[1] == 1 ? 0 : 1; }
    kiln_p_gemm p = {M, N, K, ta, tb, kiln_d2p(at->alpha), kiln_d2p(at->beta), c != NULL, crs, ccs,
                     epilogue_params(n), 0};
    int out = out_f32(l, y);
    gemm_call(l, out, a, b, c, &p);
    out_f32_done(l, y, out);
    return true;
}

bool lower_einsum(Lower *l, Node *n) {
    EinsumInfo e;
    if (!einsum_parse(n, &e, l->d)) return false;
    int64_t words[KILN_PWORDS_einsum + 8 * (1 + 2 * MAX_RANK)];
    kiln_p_einsum *p = (kiln_p_einsum *)words;
    memset(p, 0, sizeof *p);
    p->n = n->n_in;
    p->n_labels = 64;
    for (int k = 0; k < 64; k++) p->sizes[k] = e.size[k] < 0 ? 1 : e.size[k];
    p->out_rank = e.out_rank;
    for (int k = 0; k < e.out_rank; k++) p->out_labels[k] = e.out[k];
    int nt = 0;
    for (int i = 0; i < n->n_in; i++) {
        p->inputs[nt++] = e.rank[i];
        for (int k = 0; k < e.rank[i]; k++) p->inputs[nt++] = e.labels[i][k];
        for (int k = 0; k < e.rank[i]; k++) p->inputs[nt++] = n->in[i]->dims[k];
    }
    int out = out_f32(l, n->out[0]), bufs[9] = {out};
    for (int i = 0; i < n->n_in; i++) bufs[1 + i] = in_f32(l, n->in[i]);
    LOWER_CALL_TAIL(l, einsum, 1 + n->n_in, bufs, p, nt);
    out_f32_done(l, n->out[0], out);
    return true;
}

bool lower_det(Lower *l, Node *n) {
    const Value *x = n->in[0];
    int64_t M = x->dims[x->rank - 1], mm = M * M;
    kiln_p_det p = {mm > 0 ? value_numel(x) / mm : 0, M};
    int out = out_f32(l, n->out[0]), bufs[3] = {out, in_f32(l, x), step_scratch(l, (mm + 1) * (int64_t)sizeof(double))};
    LOWER_CALL(l, det, 3, bufs, &p);
    out_f32_done(l, n->out[0], out);
    return true;
}

bool lower_trilu(Lower *l, Node *n) {
    const Value *x = n->in[0], *k = node_input(n, 1);
    int r = x->rank;
    kiln_p_trilu p = {dtype_size(x->dtype), dims_numel(r - 2, x->dims), x->dims[r - 2], x->dims[r - 1], k ? value_const_int(k, 0) : 0,
                      node_attrs(n, trilu)->upper};
    int bufs[2] = {lower_buf(l, n->out[0]), lower_buf(l, x)};
    LOWER_CALL(l, trilu, 2, bufs, &p);
    return true;
}
