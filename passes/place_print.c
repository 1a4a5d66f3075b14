/* place_print.c: `kiln place`'s report, as text or JSON, read back from the
 * kiln.* attributes that the place pass wrote on each MoE node (so the report,
 * the IR dumps and the generated code all see one plan).
 *
 * Per layer: every device with its experts (e, or e/r for one of r replicas),
 * load (routed tokens per step), memory of its expert slots, predicted time;
 * then the totals: load imbalance (max / mean), the lower bound it is measured
 * against (max of the mean load and the heaviest single replica), cross-node
 * bytes per token, predicted step time. Then the whole model's totals. */
#include "passes.h"

#include <math.h>
#include <string.h>

typedef struct {
    int64_t D, S, E;
    const attrs_moe *a; /* the plan, a->kiln_* (the place pass wrote them) */
    AttrInts rep, se, sd;
    AttrFloats load, us;
    double ebytes;
    MoeInfo m;
} LayerView;

static bool view(const Node *n, LayerView *v) {
    Diags d = {0};
    Arena *a = arena_new();
    d.arena = a;
    bool ok = moe_info(n, &v->m, &d);
    arena_free(a);
    const attrs_moe *p = v->a = node_attrs(n, moe);
    if (!ok || !p->has_kiln_replicas || !p->has_kiln_slot_expert || !p->has_kiln_slot_device || !p->has_kiln_device_load ||
        !p->has_kiln_device_us)
        return false;
    v->rep = p->kiln_replicas;
    v->se = p->kiln_slot_expert;
    v->sd = p->kiln_slot_device;
    v->load = p->kiln_device_load;
    v->us = p->kiln_device_us;
    v->D = v->load.n;
    v->S = v->se.n;
    v->E = v->rep.n;
    v->ebytes = p->kiln_expert_bytes;
    return true;
}

static void device_experts(const LayerView *v, int64_t dv, FILE *f, bool json) {
    bool first = true;
    for (int64_t s = 0; s < v->S; s++) {
        if (v->sd.v[s] != dv) continue;
        int64_t e = v->se.v[s], r = v->rep.v[e];
        if (json) fprintf(f, "%s[%lld, %lld]", first ? "" : ", ", (long long)e, (long long)r);
        else if (r > 1) fprintf(f, " %lld/%lld", (long long)e, (long long)r);
        else fprintf(f, " %lld", (long long)e);
        first = false;
    }
}

static int64_t device_slots(const LayerView *v, int64_t dv) {
    int64_t c = 0;
    for (int64_t s = 0; s < v->S; s++) c += v->sd.v[s] == dv;
    return c;
}

static void layer_text(const Node *n, const LayerView *v, const Target *t, FILE *f) {
    fprintf(f, "\nlayer '%s': %lld experts, top-%lld, %lld tokens per step, %lld slots (%lld redundant), %.1f MiB per expert, routing %s\n",
            moe_layer_name(n), (long long)v->E, (long long)v->m.k, (long long)v->m.T, (long long)v->S, (long long)(v->S - v->E),
            v->ebytes / 1048576.0, v->a->kiln_routing);
    fprintf(f, "  %6s %5s %11s %5s %11s %10s  %s\n", "device", "node", "load(tok)", "slots", "memory(MiB)", "time(us)", "experts (e/r: one of r replicas)");
    for (int64_t dv = 0; dv < v->D; dv++) {
        int64_t slots = device_slots(v, dv);
        fprintf(f, "  %6lld %5lld %11.1f %5lld %11.1f %10.2f ", (long long)dv, (long long)(dv / t->per_node), v->load.v[dv],
                (long long)slots, t->shared_memory ? 0.0 : (double)slots * v->ebytes / 1048576.0, v->us.v[dv]);
        device_experts(v, dv, f, false);
        fputc('\n', f);
    }
    double mean = 0;
    for (int64_t dv = 0; dv < v->D; dv++) mean += v->load.v[dv] / (double)v->D;
    fprintf(f, "  load imbalance (max/mean) %.4f; lower bound %.1f tokens = max(mean %.1f, heaviest replica); max/bound %.4f\n",
            v->a->kiln_imbalance, v->a->kiln_lower_bound, mean, v->a->kiln_bound_ratio);
    fprintf(f, "  cross-node bytes per token (dispatch + combine) %.0f; predicted step time %.2f us\n",
            v->a->kiln_cross_node_bytes_per_token, v->a->kiln_predicted_us);
}

static void layer_json(const Node *n, const LayerView *v, const Target *t, FILE *f) {
    fprintf(f, "{\"name\": ");
    kiln_json_string(f, moe_layer_name(n));
    fprintf(f, ", \"experts\": %lld, \"top_k\": %lld, \"tokens\": %lld, \"slots\": %lld, \"expert_bytes\": %.0f, \"routing\": \"%s\",\n     \"devices\": [",
            (long long)v->E, (long long)v->m.k, (long long)v->m.T, (long long)v->S, v->ebytes, v->a->kiln_routing);
    for (int64_t dv = 0; dv < v->D; dv++) {
        int64_t slots = device_slots(v, dv);
        fprintf(f, "%s\n       {\"device\": %lld, \"node\": %lld, \"load\": %.17g, \"slots\": %lld, \"memory_bytes\": %.0f, \"predicted_us\": %.17g, \"experts\": [",
                dv ? "," : "", (long long)dv, (long long)(dv / t->per_node), v->load.v[dv], (long long)slots,
                t->shared_memory ? 0.0 : (double)slots * v->ebytes, v->us.v[dv]);
        device_experts(v, dv, f, true);
        fprintf(f, "]}");
    }
    double mean = 0;
    for (int64_t dv = 0; dv < v->D; dv++) mean += v->load.v[dv] / (double)v->D;
    fprintf(f, "],\n     \"imbalance\": %.17g, \"mean_load\": %.17g, \"lower_bound\": %.17g, \"bound_ratio\": %.17g, "
               "\"cross_node_bytes_per_token\": %.17g, \"predicted_us\": %.17g}",
            v->a->kiln_imbalance, mean, v->a->kiln_lower_bound, v->a->kiln_bound_ratio,
            v->a->kiln_cross_node_bytes_per_token, v->a->kiln_predicted_us);
}

bool place_print(const Graph *g, const PlaceOpts *o, bool json, FILE *f, Diags *d) {
    const Target *t = o->target;
    int64_t D = (int64_t)t->nodes * t->per_node;
    double total_us = 0, max_mem = 0, *mem = arena_alloc(g->arena, (size_t)D * sizeof(double));
    int layers = 0;
    if (json) {
        fprintf(f, "{\n  \"model\": ");
        kiln_json_string(f, g->source ? g->source : g->name);
        fprintf(f, ",\n  \"target\": {\"name\": ");
        kiln_json_string(f, t->name);
        fprintf(f, ", \"devices\": %lld, \"nodes\": %d, \"devices_per_node\": %d, \"shared_memory\": %s, \"measured\": %s},\n"
                   "  \"placement\": \"%s\",\n  \"layers\": [",
                (long long)D, t->nodes, t->per_node, t->shared_memory ? "true" : "false", t->measured ? "true" : "false",
                place_strategy_name(o->strategy));
    } else {
        fprintf(f, "model %s; target %s: %lld x %s in %d node%s of %d%s; placement %s\n", g->source ? g->source : g->name, t->name,
                (long long)D, t->device_name, t->nodes, t->nodes == 1 ? "" : "s", t->per_node,
                t->measured ? " (measured on this machine)" : "", place_strategy_name(o->strategy));
    }
    for (int i = 0; i < g->nodes.n; i++) {
        const Node *n = g->nodes.items[i];
        if (!(op_table[n->op].flags & F_MOE)) continue;
        LayerView v;
        if (!view(n, &v) || v.D != D) { diag_error(d, n, "internal error: no placement on this layer"); return false; }
        if (json) {
            fprintf(f, "%s\n    ", layers ? "," : "");
            layer_json(n, &v, t, f);
        } else layer_text(n, &v, t, f);
        for (int64_t dv = 0; dv < D; dv++) mem[dv] += (double)device_slots(&v, dv) * v.ebytes;
        total_us += v.a->kiln_predicted_us;
        layers++;
    }
    for (int64_t dv = 0; dv < D; dv++) max_mem = fmax(max_mem, mem[dv]);
    if (t->shared_memory) { /* one copy of every expert, shared */
        max_mem = 0;
        for (int i = 0; i < g->nodes.n; i++) {
            const Node *n = g->nodes.items[i];
            if (op_table[n->op].flags & F_MOE) max_mem += node_attrs(n, moe)->kiln_expert_bytes * (double)n->in[1]->dims[1];
        }
    }
    if (json)
        fprintf(f, "\n  ],\n  \"total\": {\"layers\": %d, \"predicted_us\": %.3f, \"max_device_memory_bytes\": %.0f, \"device_memory_bytes\": %.0f}\n}\n",
                layers, total_us, max_mem, t->mem_bytes);
    else
        fprintf(f, "\ntotal: %d MoE layer%s, predicted %.2f us per step (sum of layers); expert memory %.2f GiB %s of %.2f GiB\n",
                layers, layers == 1 ? "" : "s", total_us, max_mem / 1073741824.0, t->shared_memory ? "(shared)" : "on the fullest device",
                t->mem_bytes / 1073741824.0);
    return !ferror(f);
}
