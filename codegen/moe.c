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
    kiln_p_moe p = {.T = m.T, .H = m.H, .I = m.I, .E = m.E, .k = m.k, .act = m.act, .fusion = m.fusion,
                    .has_b1 = m.has_b1, .has_b2 = m.has_b2, .has_w3 = m.has_w3, .has_b3 = m.has_b3, .has_rbias = m.has_rbias,
                    .scoring = m.sigmoid, .normalize = m.normalize, .scale = kiln_d2p(m.scale), .n_group = m.n_group,
                    .topk_group = m.topk_group, .alpha = kiln_d2p(m.alpha), .beta = kiln_d2p(m.beta),
                    .limit = kiln_d2p(m.limit), .has_counts = !l->fold, .packed = 0};
    int out = out_f32(l, y), bufs[15];
    bufs[0] = out;
    for (int i = 0; i < 9; i++) {
        const Value *v = node_input(n, i);
        bufs[1 + i] = v ? in_f32(l, v) : bufs[1];
    }
    bufs[10] = step_scratch(l, kiln_moe_scratch_bytes(&p));
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
    p.packed = !l->fold && n->in[2]->data && n->in[4]->data && (!m.has_w3 || n->in[6]->data);
    for (int i = 2; i <= 6; i += 2) p.packed = p.packed && (!node_input(n, i) || node_input(n, i)->dtype == DT_F32);
    if (p.packed) {
        static const int wi[3] = {2, 4, 6};
        int64_t dims[3][2] = {{m.I1, m.H}, {m.H, m.I}, {m.I, m.H}};
        for (int w = 0; w < 3; w++) {
            if (w == 2 && !m.has_w3) { bufs[nb++] = bufs[1]; continue; }
            kiln_p_pack_b_many pk = {.E = m.E, .N = dims[w][0], .K = dims[w][1], .src_stride = dims[w][0] * dims[w][1]};
            int packed[2] = {state_buf(l, "packed weights", m.E * kiln_sgemm_packed_floats(pk.N, pk.K) * 4), lower_buf(l, n->in[wi[w]])};
            LOWER_CALL(l, pack_b_many, 2, packed, &pk)->at_create = true;
            bufs[nb++] = packed[0];
        }
    }
    LOWER_CALL(l, moe, nb, bufs, &p);
    out_f32_done(l, y, out);
    return true;
}
