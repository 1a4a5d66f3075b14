/* moe.c: the kiln.MoE op's description, shared by its shape rule, its lowering
 * (codegen/moe.c) and the placement pass.
 *
 * kiln.MoE inputs: x [T, H] or [B, S, H] (T = B*S tokens), router logits [T, E],
 * fc1 weights [E, I1, H], fc1 bias [E, I1]?, fc2 weights [E, H, I], fc2 bias
 * [E, H]?, fc3 weights [E, I, H]?, fc3 bias [E, I]?, router bias [E]? (added to
 * the scores for choosing experts only, DeepSeek-V3's e_score_correction_bias).
 * I1 = 2I for SwiGLU fused into fc1 (swiglu_fusion 1 interleaved, 2 halves),
 * else I. Attributes (com.microsoft.MoE's, then kiln's): k, activation_type
 * (relu, gelu (tanh form, as ONNX Runtime computes it), silu, identity, swiglu),
 * normalize_routing_weights, swiglu_fusion, activation_alpha [1], activation_beta
 * [0], swiglu_limit [inf]; scoring_func (softmax | sigmoid) [softmax],
 * routed_scaling_factor [1], n_group [1], topk_group [n_group]. */
#include "ir.h"
#include "infer.h"

#include <string.h>

static const char *const moe_acts[] = {"identity", "relu", "gelu", "silu", "swiglu"};

const char *moe_act_name(int act) { return act >= 0 && act < 5 ? moe_acts[act] : "?"; }

static bool dims_are(const Value *v, int rank, int64_t a, int64_t b, int64_t c) {
    int64_t want[3] = {a, b, c};
    if (!v || v->rank != rank) return false;
    for (int i = 0; i < rank; i++) if (v->dims[i] != want[i]) return false;
    return true;
}

bool moe_info(const Node *n, MoeInfo *m, Diags *d) {
    memset(m, 0, sizeof *m);
    const Value *x = n->in[0], *r = n->in[1], *w1 = n->in[2], *w2 = node_input(n, 4);
    for (int i = 0; i < n->n_in; i++) {
        const Value *v = n->in[i];
        if (!v) continue;
        if (v->rank < 0) { diag_error(d, n, "input '%s' has no known shape", v->name); return false; }
        if (!dtype_is_float(v->dtype)) { diag_error(d, n, "input '%s' has dtype %s; kiln.MoE takes floats", v->name, dtype_name(v->dtype)); return false; }
    }
    if (!w2) { diag_error(d, n, "needs fc2 weights (input 4)"); return false; }
    if (x->rank != 2 && x->rank != 3) { diag_error(d, n, "input must be [tokens, hidden] or [batch, seq, hidden]"); return false; }
    m->H = x->dims[x->rank - 1];
    m->T = x->rank == 2 ? x->dims[0] : x->dims[0] * x->dims[1];
    if (r->rank != 2 || r->dims[0] != m->T) { diag_error(d, n, "router input must be [%lld, experts]", (long long)m->T); return false; }
    m->E = r->dims[1];
    if (m->E < 1 || m->E > 1024) { diag_error(d, n, "%lld experts: kiln.MoE takes 1 to 1024", (long long)m->E); return false; }
    if (w2->rank != 3 || w2->dims[0] != m->E || w2->dims[1] != m->H) {
        diag_error(d, n, "fc2 weights must be [%lld, %lld, inter_size]", (long long)m->E, (long long)m->H); return false;
    }
    m->I = w2->dims[2];
    const attrs_moe *a = node_attrs(n, moe);
    const char *act = a->activation_type;
    m->act = -1;
    for (int i = 0; i < 5; i++) if (strcmp(act, moe_acts[i]) == 0) m->act = i;
    if (m->act < 0) { diag_error(d, n, "activation_type '%s' is not one of identity, relu, gelu, silu, swiglu", act); return false; }
    m->has_w3 = node_input(n, 6) != NULL;
    m->fusion = (int)a->swiglu_fusion;
    if (m->act == MOE_SWIGLU && !m->has_w3) {
        if (m->fusion != 1 && m->fusion != 2) { diag_error(d, n, "swiglu needs swiglu_fusion 1 or 2, or fc3 weights"); return false; }
        m->I1 = 2 * m->I;
    } else m->I1 = m->I;
    if (!dims_are(w1, 3, m->E, m->I1, m->H)) {
        diag_error(d, n, "fc1 weights must be [%lld, %lld, %lld]", (long long)m->E, (long long)m->I1, (long long)m->H); return false;
    }
    const Value *b1 = node_input(n, 3), *b2 = node_input(n, 5), *w3 = node_input(n, 6), *b3 = node_input(n, 7), *rb = node_input(n, 8);
    if (b1 && !dims_are(b1, 2, m->E, m->I1, 0)) { diag_error(d, n, "fc1 bias must be [%lld, %lld]", (long long)m->E, (long long)m->I1); return false; }
    if (b2 && !dims_are(b2, 2, m->E, m->H, 0)) { diag_error(d, n, "fc2 bias must be [%lld, %lld]", (long long)m->E, (long long)m->H); return false; }
    if (w3 && !dims_are(w3, 3, m->E, m->I, m->H)) { diag_error(d, n, "fc3 weights must be [%lld, %lld, %lld]", (long long)m->E, (long long)m->I, (long long)m->H); return false; }
    if (b3 && (!w3 || !dims_are(b3, 2, m->E, m->I, 0))) { diag_error(d, n, "fc3 bias must be [%lld, %lld] and needs fc3 weights", (long long)m->E, (long long)m->I); return false; }
    if (rb && !dims_are(rb, 1, m->E, 0, 0)) { diag_error(d, n, "router bias must be [%lld]", (long long)m->E); return false; }
    m->has_b1 = b1; m->has_b2 = b2; m->has_b3 = b3; m->has_rbias = rb;
    m->k = a->k;
    if (m->k < 1 || m->k > m->E) { diag_error(d, n, "k=%lld must be between 1 and the %lld experts", (long long)m->k, (long long)m->E); return false; }
    if (m->T > 0 && m->k > (int64_t)0x7fffffff / m->T) { diag_error(d, n, "too many tokens x k"); return false; }
    if (a->use_sparse_mixer) { diag_error(d, n, "use_sparse_mixer is not supported"); return false; }
    const char *sc = a->scoring_func;
    if (strcmp(sc, "softmax") && strcmp(sc, "sigmoid")) { diag_error(d, n, "scoring_func '%s' is not softmax or sigmoid", sc); return false; }
    m->sigmoid = strcmp(sc, "sigmoid") == 0;
    m->normalize = a->normalize_routing_weights != 0;
    m->scale = a->routed_scaling_factor;
    m->alpha = a->activation_alpha;
    m->beta = a->activation_beta;
    m->limit = a->swiglu_limit;
    m->n_group = a->n_group;
    m->topk_group = a->topk_group;
    if (m->n_group < 1 || m->E % m->n_group) { diag_error(d, n, "n_group=%lld must divide the %lld experts", (long long)m->n_group, (long long)m->E); return false; }
    if (m->topk_group < 1 || m->topk_group > m->n_group || m->topk_group * (m->E / m->n_group) < m->k) {
        diag_error(d, n, "topk_group=%lld must be in 1..n_group and leave at least k experts", (long long)m->topk_group); return false;
    }
    for (int i = 2; i < 9; i++) {
        const Value *v = node_input(n, i);
        if (v && value_nbytes(v) < 0) { diag_error(d, n, "input '%s' is too large", v->name); return false; }
    }
    return true;
}

/* The layer's name in routing profiles: the node's name, else its output's. */
const char *moe_layer_name(const Node *n) { return *n->name ? n->name : n->out[0]->name; }

/* Weight bytes of one expert (all its matrices and biases). */
int64_t moe_expert_bytes(const Node *n, const MoeInfo *m) {
    int64_t b = 0;
    for (int i = 2; i < 8; i++) {
        const Value *v = node_input(n, i);
        if (v) b += value_nbytes(v) / m->E;
    }
    return b;
}

/* Floating-point operations of one token through one expert. */
double moe_expert_flops(const MoeInfo *m) {
    return 2.0 * (double)m->H * (double)(m->I1 + m->I + (m->has_w3 ? m->I : 0));
}

bool infer_moe(Graph *g, Node *n, Diags *d) {
    (void)g;
    MoeInfo m;
    if (!moe_info(n, &m, d)) return false;
    set_out(n->out[0], n->in[0]->dtype, n->in[0]->rank, n->in[0]->dims);
    return true;
}
