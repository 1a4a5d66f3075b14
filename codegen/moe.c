/* moe.c: the lowering of kiln.MoE (ir/moe.c describes the op): one call of
 * the MoE kernel (runtime/moe.c). The per-expert token counts go to the
 * context's state, one int64 array per layer (Kir.moe lists the layers), and
 * constant float32 expert weights are packed once, when the context is
 * created. */
#include "kir.h"

#include <string.h>

/* kiln.MoE: one call of the MoE kernel; absent optional inputs pass x's buffer
 * (the kernel reads them only when their has_ flag is set). The per-expert token
 * counts go to the context's state, one int64 array per layer. */
bool lower_moe(Lower *l, Node *n) {
    MoeInfo m;
    if (!moe_info(n, &m, l->d)) return false;
    const Value *y = n->out[0];
    int64_t p[22] = {m.T, m.H, m.I, m.E, m.k, m.act, m.fusion, m.has_b1, m.has_b2, m.has_w3, m.has_b3, m.has_rbias,
                     m.sigmoid, m.normalize, kiln_d2p(m.scale), m.n_group, m.topk_group, kiln_d2p(m.alpha),
                     kiln_d2p(m.beta), kiln_d2p(m.limit), !l->fold, 0};
    int out = out_f32(l, y), bufs[15];
    bufs[0] = out;
    for (int i = 0; i < 9; i++) {
        const Value *v = node_input(n, i);
        bufs[1 + i] = v ? in_f32(l, v) : bufs[1];
    }
    bufs[10] = step_scratch(l, kiln_moe_scratch_bytes(p));
    if (l->fold) bufs[11] = bufs[1];
    else {
        Kir *k = l->k;
        int64_t at = k->state_size;
        bufs[11] = state_buf(l, "routing counts", m.E * 8);
        KMoeLayer *nl = arena_alloc(k->arena, (size_t)(k->nmoe + 1) * sizeof *nl);
        if (k->nmoe) memcpy(nl, k->moe, (size_t)k->nmoe * sizeof *nl);
        nl[k->nmoe++] = (KMoeLayer){moe_layer_name(n), m.E, m.k, m.T, at};
        k->moe = nl;
    }
    /* constant float32 weights are packed once, when the context is created */
    int nb = 12;
    p[21] = !l->fold && n->in[2]->data && n->in[4]->data && (!m.has_w3 || n->in[6]->data);
    for (int i = 2; i <= 6; i += 2) p[21] = p[21] && (!node_input(n, i) || node_input(n, i)->dtype == DT_F32);
    if (p[21]) {
        static const int wi[3] = {2, 4, 6};
        int64_t dims[3][2] = {{m.I1, m.H}, {m.H, m.I}, {m.I, m.H}};
        for (int w = 0; w < 3; w++) {
            if (w == 2 && !m.has_w3) { bufs[nb++] = bufs[1]; continue; }
            int64_t pk[3] = {m.E, dims[w][0], dims[w][1]};
            int packed[2] = {state_buf(l, "packed weights", m.E * kiln_sgemm_packed_floats(pk[1], pk[2]) * 4), lower_buf(l, n->in[wi[w]])};
            lower_call(l, KILN_K_moe_pack, 2, packed, 3, pk)->at_create = true;
            bufs[nb++] = packed[0];
        }
    }
    lower_call(l, KILN_K_moe, nb, bufs, 22, p);
    out_f32_done(l, y, out);
    return true;
}
