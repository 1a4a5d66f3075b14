/* place.c (pass "place"): expert placement for every kiln.MoE layer.
 *
 * Input: the layer's per-expert load (tokens per step, from the routing profile
 * scaled to the model's token count, or uniform: T*k/E each), a target (devices
 * in nodes, their compute, memory and links) and a strategy:
 *   contiguous   experts split in order, E/D per device, no replicas;
 *   round-robin  expert e on device e mod D, no replicas;
 *   balanced     R redundant slots [default: D - E mod D, so every device gets
 *                the same number of slots; one slot per device when E < D]. Hierarchical when there are several
 *                nodes: expert groups (n_group of them, or single experts) are
 *                packed onto nodes first, balancing node load with equal groups
 *                per node, so a token's group-limited routing stays on few
 *                nodes; then inside each node the hottest experts get replicas
 *                (each extra slot goes to the expert with the largest load per
 *                replica) and replicas are packed onto the node's devices
 *                heaviest first onto the least loaded device with a free slot,
 *                then improved by swapping replicas off the busiest device.
 *                The flat packing (all devices at once) is built too, and the
 *                plan with the shorter predicted step is kept.
 * A replica serves an equal share of its expert's tokens.
 *
 * The cost model, per device: compute = pairs x flops per pair / GEMM rate
 * (the host times its GEMM at the layer's shapes; files give peak x efficiency),
 * at least the time to read the weights of its active experts; plus the
 * all-to-all: each (token, expert) pair is dispatched and combined (2 x hidden x
 * activation bytes) over the intra-node link, and once per token and remote
 * node it touches over the inter-node link (a node is touched with the
 * probability that one of its experts is chosen, estimated from the loads, by
 * group under group-limited routing). Tokens start evenly on all devices. On
 * the host (shared memory) nothing travels: routing, gather and combine cost
 * their memory traffic, spread over the threads. The layer's predicted time is
 * the slowest device's. Results are written as kiln.* attributes on the node,
 * which the dumps show and `kiln place` prints. */
#include "passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t E, S, D;           /* experts, slots, devices */
    const double *load;        /* per expert */
    int *replicas;             /* per expert */
    int *slot_expert, *slot_device;
    double *dev_load;
    int64_t next_slot;
} Plan;

static void slot_add(Plan *p, int e, int dev) {
    p->slot_expert[p->next_slot] = e;
    p->slot_device[p->next_slot] = dev;
    p->next_slot++;
    p->dev_load[dev] += p->load[e] / p->replicas[e];
}

/* Gives `extra` more replicas to the experts in list[0..n), each to the one with the largest load per replica. */
static void replicate(Plan *p, const int *list, int n, int extra) {
    for (int x = 0; x < extra; x++) {
        int best = list[0];
        for (int i = 1; i < n; i++) {
            int e = list[i];
            if (p->load[e] * p->replicas[best] > p->load[best] * p->replicas[e]) best = e;
        }
        p->replicas[best]++;
    }
}

typedef struct { double w; int e; } Item;

static int item_cmp(const void *a, const void *b) {
    const Item *x = a, *y = b;
    if (x->w != y->w) return x->w < y->w ? 1 : -1;
    return x->e - y->e;
}

/* Packs the replicas of the experts in list onto devices dev0..dev0+m-1, with
 * at most cap slots each: heaviest first onto the least loaded device that has
 * room (and no replica of the same expert, when one such exists); then swaps
 * replicas between the busiest device and the others while that lowers it. */
static void pack(Plan *p, Arena *a, const int *list, int n, int dev0, int m) {
    int total = 0;
    for (int i = 0; i < n; i++) total += p->replicas[list[i]];
    if (!total) return;
    int cap = (total + m - 1) / m;
    Item *items = arena_alloc(a, (size_t)total * sizeof *items);
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < p->replicas[list[i]]; r++) items[k++] = (Item){p->load[list[i]] / p->replicas[list[i]], list[i]};
    qsort(items, (size_t)total, sizeof *items, item_cmp);
    int *used = arena_alloc(a, (size_t)m * sizeof *used);
    int64_t first = p->next_slot;
    /* has[dv * E + e]: device dv already holds a replica of e (skipped when huge) */
    unsigned char *has = (int64_t)m * p->E <= ((int64_t)1 << 26) ? arena_alloc(a, (size_t)(m * p->E)) : NULL;
    for (int i = 0; i < total; i++) {
        int best = -1, best_dup = -1;
        for (int dv = 0; dv < m; dv++) {
            if (used[dv] >= cap) continue;
            bool dup = has && has[(int64_t)dv * p->E + items[i].e];
            int *b = dup ? &best_dup : &best;
            if (*b < 0 || p->dev_load[dev0 + dv] < p->dev_load[dev0 + *b]) *b = dv;
        }
        int dv = best >= 0 ? best : best_dup;
        used[dv]++;
        if (has) has[(int64_t)dv * p->E + items[i].e] = 1;
        slot_add(p, items[i].e, dev0 + dv);
    }
    /* local search: move load off the busiest device by swapping two replicas */
    for (int iter = 0; iter < 4 * m + 64 && iter < 4096; iter++) {
        int hi = dev0;
        for (int dv = dev0; dv < dev0 + m; dv++) if (p->dev_load[dv] > p->dev_load[hi]) hi = dv;
        double best_gain = 1e-12 * p->dev_load[hi];
        int64_t bs = -1, bt = -1;
        for (int64_t s = first; s < p->next_slot; s++) {
            if (p->slot_device[s] != hi) continue;
            double ws = p->load[p->slot_expert[s]] / p->replicas[p->slot_expert[s]];
            for (int64_t t = first; t < p->next_slot; t++) {
                int dv = p->slot_device[t];
                if (dv == hi) continue;
                double wt = p->load[p->slot_expert[t]] / p->replicas[p->slot_expert[t]], delta = ws - wt;
                if (delta <= 0) continue;
                double new_max = fmax(p->dev_load[hi] - delta, p->dev_load[dv] + delta);
                double gain = p->dev_load[hi] - new_max;
                if (gain > best_gain) { best_gain = gain; bs = s; bt = t; }
            }
        }
        if (bs < 0) break;
        int dv = p->slot_device[bt];
        double delta = p->load[p->slot_expert[bs]] / p->replicas[p->slot_expert[bs]] - p->load[p->slot_expert[bt]] / p->replicas[p->slot_expert[bt]];
        p->slot_device[bs] = dv;
        p->slot_device[bt] = hi;
        p->dev_load[hi] -= delta;
        p->dev_load[dv] += delta;
    }
}

/* Packs units (groups of gs experts) onto nodes, units/nodes each, heaviest first
 * onto the least loaded node with room. Writes node_of_unit. */
static void units_to_nodes(const Plan *p, Arena *a, int units, int gs, int nodes, int *node_of_unit) {
    Item *it = arena_alloc(a, (size_t)units * sizeof *it);
    for (int u = 0; u < units; u++) {
        it[u] = (Item){0, u};
        for (int e = u * gs; e < (u + 1) * gs; e++) it[u].w += p->load[e];
    }
    qsort(it, (size_t)units, sizeof *it, item_cmp);
    double *nl = arena_alloc(a, (size_t)nodes * sizeof *nl);
    int *cnt = arena_alloc(a, (size_t)nodes * sizeof *cnt), cap = units / nodes;
    for (int i = 0; i < units; i++) {
        int best = -1;
        for (int nd = 0; nd < nodes; nd++)
            if (cnt[nd] < cap && (best < 0 || nl[nd] < nl[best])) best = nd;
        node_of_unit[it[i].e] = best;
        cnt[best]++;
        nl[best] += it[i].w;
    }
}

static void place_balanced(Plan *p, Arena *a, const Target *t, const MoeInfo *m, int64_t R, bool hierarchical) {
    int E = (int)p->E, nodes = t->nodes, per = t->per_node;
    int *list = arena_alloc(a, (size_t)E * sizeof *list);
    int gs = m->n_group > 1 ? (int)(E / m->n_group) : 1, units = E / gs;
    if (hierarchical && nodes > 1 && units % nodes == 0 && R % nodes == 0) {
        int *node_of = arena_alloc(a, (size_t)units * sizeof *node_of);
        units_to_nodes(p, a, units, gs, nodes, node_of);
        for (int nd = 0; nd < nodes; nd++) {
            int n = 0;
            for (int u = 0; u < units; u++)
                if (node_of[u] == nd) for (int e = u * gs; e < (u + 1) * gs; e++) list[n++] = e;
            replicate(p, list, n, (int)(R / nodes));
            pack(p, a, list, n, nd * per, per);
        }
        return;
    }
    for (int e = 0; e < E; e++) list[e] = e;
    replicate(p, list, E, (int)R);
    pack(p, a, list, E, 0, (int)p->D);
}

/* Probability that a token touches node nd: by group under group-limited
 * routing (a group is chosen with probability topk_group x its load share,
 * then each expert in it with its share of the group's k/topk_group picks). */
static double node_touch(const Plan *p, const MoeInfo *m, const double *frac_on_node, double total) {
    int gs = m->n_group > 1 ? (int)(p->E / m->n_group) : 1;
    double none = 1;
    for (int64_t g0 = 0; g0 < p->E; g0 += gs) {
        double gl = 0;
        for (int e = (int)g0; e < g0 + gs; e++) gl += p->load[e];
        if (gl <= 0) continue;
        double per_group = m->n_group > 1 ? (double)m->k / (double)m->topk_group : (double)m->k;
        double qg = m->n_group > 1 ? fmin(1.0, (double)m->topk_group * gl / total) : 1.0;
        double miss = 1;
        for (int e = (int)g0; e < g0 + gs; e++) {
            double pe = m->n_group > 1 ? fmin(1.0, per_group * p->load[e] / gl) : fmin(1.0, per_group * p->load[e] / total);
            miss *= 1 - pe * frac_on_node[e];
        }
        none *= 1 - qg * (1 - miss);
    }
    return 1 - none;
}

static void set_floats(Graph *g, Node *n, const char *name, const double *v, int64_t cnt) {
    Attr *at = node_add_attr(g, n, name, ATTR_FLOATS);
    at->n = (int)cnt;
    at->floats = arena_alloc(g->arena, (size_t)(cnt + 1) * sizeof(double));
    memcpy(at->floats, v, (size_t)cnt * sizeof(double));
}

static void set_ints(Graph *g, Node *n, const char *name, const int *v, int64_t cnt) {
    Attr *at = node_add_attr(g, n, name, ATTR_INTS);
    at->n = (int)cnt;
    at->ints = arena_alloc(g->arena, (size_t)(cnt + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < cnt; i++) at->ints[i] = v[i];
}

static void set_float(Graph *g, Node *n, const char *name, double v) { node_add_attr(g, n, name, ATTR_FLOAT)->f = v; }

/* Per-expert load of a layer: the profile's counts scaled to T tokens, or uniform. */
static bool layer_load(Node *n, const MoeInfo *m, const RoutingProfile *prof, double *load, Diags *d) {
    const char *name = moe_layer_name(n);
    const ProfileLayer *pl = NULL;
    for (int i = 0; prof && i < prof->n; i++) if (strcmp(prof->layers[i].name, name) == 0) pl = &prof->layers[i];
    double sum = 0;
    if (pl && pl->experts != m->E) {
        diag_error(d, n, "the routing profile's layer '%s' has %lld experts; the model's has %lld", name, (long long)pl->experts, (long long)m->E);
        return false;
    }
    for (int64_t e = 0; pl && e < m->E; e++) sum += pl->counts[e];
    if (prof && !pl) diag_add(d, DIAG_WARNING, n, "the routing profile has no layer '%s': assuming uniform routing", name);
    for (int64_t e = 0; e < m->E; e++) load[e] = sum > 0 ? pl->counts[e] / sum * (double)(m->T * m->k) : (double)(m->T * m->k) / (double)m->E;
    return true;
}

/* The cost-model figures of one plan. */
typedef struct {
    double *dev_us, worst, mean, maxl, bound, cross_bytes;
    int *slots_on;
} Cost;

static Plan plan_new(Arena *a, int64_t E, int64_t R, int64_t D, const double *load) {
    Plan p = {E, E + R, D, load, NULL, NULL, NULL, NULL, 0};
    p.replicas = arena_alloc(a, (size_t)E * sizeof(int));
    for (int64_t e = 0; e < E; e++) p.replicas[e] = 1;
    p.slot_expert = arena_alloc(a, (size_t)p.S * sizeof(int));
    p.slot_device = arena_alloc(a, (size_t)p.S * sizeof(int));
    p.dev_load = arena_alloc(a, (size_t)D * sizeof(double));
    return p;
}

static void plan_cost(const Plan *p, Arena *a, Target *t, const Node *n, const MoeInfo *m, Cost *c) {
    int64_t D = p->D, E = p->E;
    double total = (double)(m->T * m->k), flops_pair = moe_expert_flops(m), ebytes = (double)moe_expert_bytes(n, m);
    bool half = dtype_size(n->in[2]->dtype) == 2;
    double rate, heaviest = 0;
    if (!t->measured) rate = (half ? t->flops_16 : t->flops_f32) * t->gemm_efficiency;
    else { /* the expert's GEMMs at their shapes, flops-weighted */
        int64_t M = (int64_t)ceil(total / (double)p->S);
        double f1 = (double)m->I1 * (double)m->H * (m->has_w3 ? 2 : 1), f2 = (double)m->H * (double)m->I;
        rate = (f1 + f2) / (f1 / target_gemm_rate(t, M, m->I1, m->H) + f2 / target_gemm_rate(t, M, m->H, m->I));
    }
    c->dev_us = arena_alloc(a, (size_t)D * sizeof(double));
    c->slots_on = arena_alloc(a, (size_t)D * sizeof(int));
    double *active_bytes = arena_alloc(a, (size_t)D * sizeof(double));
    for (int64_t s = 0; s < p->S; s++) {
        int e = p->slot_expert[s], dv = p->slot_device[s];
        c->slots_on[dv]++;
        if (p->load[e] > 0) active_bytes[dv] += ebytes;
        heaviest = fmax(heaviest, p->load[e] / p->replicas[e]);
    }
    /* nodes touched per token, and the inter-node bytes each node receives */
    double *frac = arena_alloc(a, (size_t)E * sizeof(double)), *node_in = arena_alloc(a, (size_t)t->nodes * sizeof(double));
    double hb = (double)(m->H * dtype_size(n->in[0]->dtype));
    c->cross_bytes = 0;
    if (!t->shared_memory && t->nodes > 1) {
        for (int nd = 0; nd < t->nodes; nd++) {
            for (int64_t e = 0; e < E; e++) frac[e] = 0;
            for (int64_t s = 0; s < p->S; s++)
                if (p->slot_device[s] / t->per_node == nd) frac[p->slot_expert[s]] += 1.0 / p->replicas[p->slot_expert[s]];
            node_in[nd] = (double)m->T * node_touch(p, m, frac, total) * (1.0 - 1.0 / t->nodes) * hb;
            c->cross_bytes += 2 * node_in[nd];
        }
    }
    double overhead = 0;
    if (t->shared_memory) /* routing, gather and combine: memory traffic over all threads */
        overhead = ((double)(m->T * m->E) * 8 + total * (double)m->H * 16) / (t->mem_bw * (double)D);
    double sum_load = 0;
    c->worst = c->maxl = 0;
    for (int64_t dv = 0; dv < D; dv++) {
        double comp = fmax(p->dev_load[dv] * flops_pair / rate, active_bytes[dv] / t->mem_bw), comm = 0;
        if (!t->shared_memory) {
            int nd = (int)(dv / t->per_node);
            double node_load = 0;
            for (int64_t q = (int64_t)nd * t->per_node; q < (int64_t)(nd + 1) * t->per_node; q++) node_load += p->dev_load[q];
            double inter = t->nodes > 1 && node_load > 0 ? node_in[nd] * p->dev_load[dv] / node_load : 0;
            if (t->per_node > 1) comm += 2 * (p->dev_load[dv] * hb / t->intra.bandwidth + t->intra.latency);
            if (t->nodes > 1) comm += 2 * (inter / t->inter.bandwidth + t->inter.latency);
        }
        c->dev_us[dv] = (comp + comm + overhead) * 1e6;
        c->worst = fmax(c->worst, c->dev_us[dv]);
        c->maxl = fmax(c->maxl, p->dev_load[dv]);
        sum_load += p->dev_load[dv];
    }
    c->mean = sum_load / (double)D;
    c->bound = fmax(c->mean, heaviest);
}

static void write_plan(Graph *g, Node *n, const PlaceOpts *o, const Plan *p, const Cost *c, const MoeInfo *m) {
    node_add_attr(g, n, "kiln.placement", ATTR_STRING)->s = place_strategy_name(o->strategy);
    node_add_attr(g, n, "kiln.target", ATTR_STRING)->s = o->target->name;
    node_add_attr(g, n, "kiln.routing", ATTR_STRING)->s = o->profile ? "profile" : "uniform";
    set_ints(g, n, "kiln.replicas", p->replicas, p->E);
    set_ints(g, n, "kiln.slot_expert", p->slot_expert, p->S);
    set_ints(g, n, "kiln.slot_device", p->slot_device, p->S);
    set_floats(g, n, "kiln.device_load", p->dev_load, p->D);
    set_floats(g, n, "kiln.device_us", c->dev_us, p->D);
    set_float(g, n, "kiln.imbalance", c->mean > 0 ? c->maxl / c->mean : 1);
    set_float(g, n, "kiln.lower_bound", c->bound);
    set_float(g, n, "kiln.bound_ratio", c->bound > 0 ? c->maxl / c->bound : 1);
    set_float(g, n, "kiln.cross_node_bytes_per_token", m->T ? c->cross_bytes / (double)m->T : 0);
    set_float(g, n, "kiln.predicted_us", c->worst);
    set_float(g, n, "kiln.expert_bytes", (double)moe_expert_bytes(n, m));
}

static bool place_layer(Graph *g, Node *n, const PlaceOpts *o, double *dev_bytes, Diags *d) {
    MoeInfo m;
    if (!moe_info(n, &m, d)) return false;
    int keep = 0; /* a plan read back from a dump is replaced */
    for (int i = 0; i < n->n_attr; i++)
        if (strncmp(n->attrs[i].name, "kiln.", 5) != 0) n->attrs[keep++] = n->attrs[i];
    n->n_attr = keep;
    node_attrs_changed(n);
    Arena *a = g->arena;
    Target *t = o->target;
    int64_t D = (int64_t)t->nodes * t->per_node, E = m.E;
    int64_t R = 0; /* default: every device gets as many slots, one more than E/D when E >= D */
    if (o->strategy == PLACE_BALANCED) R = o->redundant >= 0 ? o->redundant : E >= D ? D - E % D : (D - E < 64 * E ? D - E : 64 * E);
    if (o->strategy != PLACE_BALANCED && o->redundant > 0) { diag_error(d, n, "--redundant needs --placement balanced"); return false; }
    if (R < 0 || R > 64 * E) { diag_error(d, n, "%lld redundant slots for %lld experts is out of range", (long long)R, (long long)E); return false; }
    double *load = arena_alloc(a, (size_t)E * sizeof *load);
    if (!layer_load(n, &m, o->profile, load, d)) return false;
    Plan p = plan_new(a, E, R, D, load);
    Cost c;
    if (o->strategy == PLACE_CONTIGUOUS) for (int64_t e = 0; e < E; e++) slot_add(&p, (int)e, (int)(e * D / E));
    else if (o->strategy == PLACE_ROUND_ROBIN) for (int64_t e = 0; e < E; e++) slot_add(&p, (int)e, (int)(e % D));
    else place_balanced(&p, a, t, &m, R, true);
    plan_cost(&p, a, t, n, &m, &c);
    if (o->strategy == PLACE_BALANCED && t->nodes > 1) {
        /* nodes first keeps traffic inside nodes but may balance worse: keep
         * whichever of it and the flat packing predicts the shorter step */
        Plan flat = plan_new(a, E, R, D, load);
        Cost fc;
        place_balanced(&flat, a, t, &m, R, false);
        plan_cost(&flat, a, t, n, &m, &fc);
        if (fc.worst < c.worst) { p = flat; c = fc; }
    }
    write_plan(g, n, o, &p, &c, &m);
    for (int64_t dv = 0; dv < D; dv++) dev_bytes[dv] += t->shared_memory ? 0 : (double)c.slots_on[dv] * (double)moe_expert_bytes(n, &m);
    if (t->shared_memory) dev_bytes[0] += (double)E * (double)moe_expert_bytes(n, &m);
    return true;
}

bool pass_place(Graph *g, const PassOpts *po, Diags *d) {
    const PlaceOpts *o = po->place;
    if (!o || !o->target) return true;
    Target *t = o->target;
    int64_t D = (int64_t)t->nodes * t->per_node;
    double *dev_bytes = NULL;
    int layers = 0;
    for (int i = 0; i < g->nodes.n; i++) {
        Node *n = g->nodes.items[i];
        if (!(op_table[n->op].flags & F_MOE)) continue;
        if (!dev_bytes) dev_bytes = arena_alloc(g->arena, (size_t)D * sizeof(double));
        if (!place_layer(g, n, o, dev_bytes, d)) return false;
        layers++;
    }
    for (int64_t dv = 0; layers && dv < (t->shared_memory ? 1 : D); dv++)
        if (dev_bytes[dv] > t->mem_bytes) {
            diag_error(d, NULL, "the experts do not fit: device %lld of target '%s' needs %.2f GiB for its expert slots and has %.2f GiB",
                       (long long)dv, t->name, dev_bytes[dv] / 1073741824.0, t->mem_bytes / 1073741824.0);
            return false;
        }
    return true;
}
