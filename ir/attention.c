/* attention.c: the shape rule of kiln.Attention, which the patterns pass
 * makes: softmax(q kt / scale + mask) v over the last axis, its operands and
 * result transposed by the attributes q_perm, k_perm, v_perm and out_perm
 * (attention_perm, which the lowering reads too). The lowering is in
 * codegen/attention.c. */
#include "ir.h"
#include "infer.h"

#include <string.h>

/* Perm attribute p (has: present) as a permutation of rank r (identity when absent). */
bool attention_perm(AttrInts p, bool has, int r, int *perm) {
    uint32_t seen = 0;
    if (has && p.n != r) return false;
    for (int i = 0; i < r; i++) {
        if (has && (p.v[i] < 0 || p.v[i] >= r)) return false;
        perm[i] = has ? (int)p.v[i] : i;
        if (seen >> perm[i] & 1) return false;
        seen |= 1u << perm[i];
    }
    return true;
}

/* kiln.Attention (the patterns pass makes it): softmax(q kt / scale + mask) v
 * over the last axis, where q, kt and v are the inputs transposed by q_perm,
 * k_perm and v_perm (identity when absent): q [b.., M, Dk], kt [b.., Dk, N],
 * v [b.., N, Dv], the same batch dims b.. on all three, the mask (optional)
 * broadcast to the scores [b.., M, N]. The result [b.., M, Dv] is transposed
 * by out_perm. q, v and the result keep their last axis last; kt's last axis
 * is the input's last or its second last. scale_op: 0 no scale, 1 divide by
 * scale, 2 multiply. */
bool infer_attention(Graph *g, Node *n, Diags *d) {
    (void)g;
    if (!need_shapes(n, d)) return false;
    Value *qs = n->in[0], *ks = n->in[1], *vs = n->in[2], *m = node_input(n, 3);
    const attrs_attention *a = node_attrs(n, attention);
    int r = qs->rank, qp[MAX_RANK], kp[MAX_RANK], vp[MAX_RANK], op[MAX_RANK];
    bool ok = r >= 2 && ks->rank == r && vs->rank == r && qs->dtype == DT_F32 && ks->dtype == DT_F32 && vs->dtype == DT_F32 &&
              attention_perm(a->q_perm, a->has_q_perm, r, qp) && attention_perm(a->k_perm, a->has_k_perm, r, kp) &&
              attention_perm(a->v_perm, a->has_v_perm, r, vp) && attention_perm(a->out_perm, a->has_out_perm, r, op);
    int64_t so = a->scale_op;
    ok = ok && qp[r - 1] == r - 1 && vp[r - 1] == r - 1 && op[r - 1] == r - 1 && (kp[r - 1] == r - 1 || kp[r - 2] == r - 1) &&
         so >= 0 && so <= 2;
    int64_t q[MAX_RANK], kt[MAX_RANK], v[MAX_RANK], o[MAX_RANK], y[MAX_RANK];
    for (int i = 0; ok && i < r; i++) q[i] = qs->dims[qp[i]], kt[i] = ks->dims[kp[i]], v[i] = vs->dims[vp[i]];
    for (int i = 0; ok && i < r - 2; i++) ok = kt[i] == q[i] && v[i] == q[i];
    int64_t M = ok ? q[r - 2] : 0, N = ok ? kt[r - 1] : 0;
    ok = ok && kt[r - 2] == q[r - 1] && v[r - 2] == N;
    if (ok && m) {
        ok = m->dtype == DT_F32 && m->rank <= r;
        for (int i = 0; ok && i < m->rank; i++) {
            int64_t want = i == m->rank - 1 ? N : i == m->rank - 2 ? M : q[r - m->rank + i];
            ok = m->dims[i] == 1 || m->dims[i] == want;
        }
    }
    if (!ok) {
        diag_error(d, n, "kiln.Attention needs float q [b.., M, Dk], kt [b.., Dk, N], v [b.., N, Dv] (after their perms) and a mask "
                         "that broadcasts to the scores");
        return false;
    }
    memcpy(o, q, sizeof(int64_t) * (size_t)r);
    o[r - 1] = v[r - 1];
    for (int i = 0; i < r; i++) y[i] = o[op[i]];
    set_out(n->out[0], DT_F32, r, y);
    return true;
}
