/* attention.c: the lowering of kiln.Attention: one kernel call
 * (kiln_k_attention) with each operand's strides: q, kt and v through their
 * perms, the result through the inverse of out_perm, the mask 0 where it
 * broadcasts. */
#include "kir.h"

/* Strides of Transpose(x, perm) (x contiguous), dim by dim: x's stride of
 * dim perm[i]. */
static void perm_strides(const Value *x, const int *perm, int64_t *st) {
    int64_t xs[MAX_RANK], s = 1;
    for (int i = x->rank - 1; i >= 0; i--) { xs[i] = s; s *= x->dims[i]; }
    for (int i = 0; i < x->rank; i++) st[i] = xs[perm[i]];
}

/* kiln.Attention: one kernel call (kiln_k_attention) with each operand's
 * strides: q, kt, v through their perms, the result through the inverse of
 * out_perm, the mask 0 where it broadcasts. */
bool lower_attention(Lower *l, Node *n) {
    const Value *q = n->in[0], *k = n->in[1], *v = n->in[2], *m = node_input(n, 3), *y = n->out[0];
    int r = q->rank, nb = r - 2, qp[MAX_RANK], kp[MAX_RANK], vp[MAX_RANK], op[MAX_RANK];
    const attrs_attention *a = node_attrs(n, attention);
    attention_perm(a->q_perm, a->has_q_perm, r, qp);
    attention_perm(a->k_perm, a->has_k_perm, r, kp);
    attention_perm(a->v_perm, a->has_v_perm, r, vp);
    attention_perm(a->out_perm, a->has_out_perm, r, op);
    int64_t st[5][MAX_RANK] = {{0}}, ys[MAX_RANK], s = 1;
    perm_strides(q, qp, st[0]);
    perm_strides(k, kp, st[1]);
    perm_strides(v, vp, st[2]);
    for (int i = r - 1; i >= 0; i--) { ys[i] = s; s *= y->dims[i]; }
    for (int i = 0; i < r; i++) st[3][op[i]] = ys[i]; /* y dim i is the result's dim op[i] */
    int64_t ms = 1;
    for (int i = r - 1; m && i >= 0; i--) { /* score dim i against mask dim i - (r - m->rank) */
        int mi = i - (r - m->rank);
        if (mi < 0) continue;
        st[4][i] = m->dims[mi] == 1 ? 0 : ms;
        ms *= m->dims[mi];
    }
    kiln_p_attention p = {.M = q->dims[qp[r - 2]], .N = k->dims[kp[r - 1]], .Dk = q->dims[qp[r - 1]], .Dv = v->dims[vp[r - 1]],
                          .scale_op = a->scale_op, .scale = kiln_d2p(a->scale),
                          .has_mask = m != NULL, .nb = nb};
    for (int i = 0; i < nb; i++) p.bdims[i] = q->dims[qp[i]];
    for (int t = 0; t < 5; t++) /* each operand's nb batch strides, row stride, column stride */
        for (int i = 0; i < r; i++) p.strides[t * (KILN_MAX_RANK + 2) + i] = st[t][i];
    int out = out_f32(l, y);
    int bufs[5] = {out, in_f32(l, q), in_f32(l, k), in_f32(l, v), m ? in_f32(l, m) : 0};
    LOWER_CALL(l, attention, m ? 5 : 4, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
