/* target.c: reads target files (targets/NAME.json) and routing profiles (JSON, as a
 * compiled binary's --routing-profile-out writes them) with libjansson, and
 * describes the host.
 *
 * Both files are untrusted: every field is checked for its type and range before
 * use, and errors name the file and the field. `--target NAME` finds
 * NAME.json in the targets folder of the kiln installation; a value with a '/'
 * or ending in .json is a path. The host is measured, not read: its devices are
 * the worker threads, and its GEMM rate (for the expert shapes of the model, see
 * target_gemm_rate) and memory bandwidth are timed on this machine. */
#define _GNU_SOURCE
#include "frontend.h"
#include "../runtime/kiln_rt.h"
#include "../ir/target.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *place_strategy_name(PlaceStrategy s) {
    return s == PLACE_CONTIGUOUS ? "contiguous" : s == PLACE_ROUND_ROBIN ? "round-robin" : "balanced";
}

bool place_strategy_parse(const char *s, PlaceStrategy *out) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, place_strategy_name((PlaceStrategy)i)) == 0) { *out = (PlaceStrategy)i; return true; }
    return false;
}

/* ---- JSON field helpers: each adds a diagnostic naming file and field ---- */

typedef struct { Diags *d; const char *file; Arena *a; } Reader;

static bool num_field(Reader *r, json_t *obj, const char *where, const char *key, double lo, double hi, bool required,
                      double *out) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required) diag_error(r->d, NULL, "%s: %s: missing field \"%s\"", r->file, where, key);
        return !required;
    }
    if (!json_is_number(v) || !(json_number_value(v) >= lo && json_number_value(v) <= hi)) {
        diag_error(r->d, NULL, "%s: %s: \"%s\" must be a number from %g to %g", r->file, where, key, lo, hi);
        return false;
    }
    *out = json_number_value(v);
    return true;
}

static const char *str_field(Reader *r, json_t *obj, const char *key, const char *dflt) {
    json_t *v = json_object_get(obj, key);
    return v && json_is_string(v) ? arena_strdup(r->a, json_string_value(v)) : dflt;
}

static bool read_link(Reader *r, json_t *root, const char *key, bool required, Link *l) {
    json_t *o = json_object_get(root, key);
    if (!o) {
        if (required) diag_error(r->d, NULL, "%s: missing \"%s\"", r->file, key);
        return !required;
    }
    if (!json_is_object(o)) { diag_error(r->d, NULL, "%s: \"%s\" must be an object", r->file, key); return false; }
    double bw = 0, lat = 0;
    if (!num_field(r, o, key, "bandwidth_GBps", 1e-3, 1e6, true, &bw) || !num_field(r, o, key, "latency_us", 0, 1e6, true, &lat))
        return false;
    l->name = str_field(r, o, "name", key);
    l->bandwidth = bw * 1e9;
    l->latency = lat * 1e-6;
    return true;
}

static bool read_target_file(Reader *r, json_t *root, Target *t) {
    if (!json_is_object(root)) { diag_error(r->d, NULL, "%s: a target file is a JSON object", r->file); return false; }
    double nodes = 0, per = 0, f32 = 0, f16 = 0, mem = 0, bw = 0;
    json_t *dev = json_object_get(root, "device"), *tf = dev ? json_object_get(dev, "tflops") : NULL;
    if (!dev || !json_is_object(dev) || !tf || !json_is_object(tf)) {
        diag_error(r->d, NULL, "%s: needs \"device\" with \"tflops\" (see the README)", r->file);
        return false;
    }
    if (!num_field(r, root, "target", "nodes", 1, 1 << 20, true, &nodes) ||
        !num_field(r, root, "target", "devices_per_node", 1, 1 << 16, true, &per) ||
        !num_field(r, tf, "device.tflops", "f32", 1e-6, 1e6, true, &f32) ||
        !num_field(r, tf, "device.tflops", "f16", 1e-6, 1e6, true, &f16) ||
        !num_field(r, dev, "device", "memory_GiB", 1e-3, 1e7, true, &mem) ||
        !num_field(r, dev, "device", "memory_bandwidth_GBps", 1e-3, 1e7, true, &bw))
        return false;
    if (nodes != floor(nodes) || per != floor(per) || nodes * per > (1 << 20)) {
        diag_error(r->d, NULL, "%s: nodes and devices_per_node must be whole numbers (at most 2^20 devices)", r->file);
        return false;
    }
    t->name = str_field(r, root, "name", t->name);
    t->device_name = str_field(r, dev, "name", "device");
    t->nodes = (int)nodes;
    t->per_node = (int)per;
    t->flops_f32 = f32 * 1e12;
    t->flops_16 = f16 * 1e12;
    t->mem_bytes = mem * 1073741824.0;
    t->mem_bw = bw * 1e9;
    t->gemm_efficiency = 0.6;
    if (!num_field(r, root, "target", "gemm_efficiency", 0.01, 1, false, &t->gemm_efficiency)) return false;
    json_t *sm = json_object_get(root, "shared_memory");
    t->shared_memory = sm && json_is_true(sm);
    return read_link(r, root, "intra_node_link", t->per_node > 1 && !t->shared_memory, &t->intra) &&
           read_link(r, root, "inter_node_link", t->nodes > 1, &t->inter);
}

/* ---- the host ---- */

static double host_mem_bw(void) {
    size_t n = (size_t)64 << 20;
    unsigned char *a = malloc(n), *b = malloc(n);
    if (!a || !b) { free(a); free(b); return 10e9; }
    memset(a, 1, n);
    memset(b, 2, n);
    double best = 1e30;
    for (int i = 0; i < 5; i++) {
        double t0 = kiln_now_ms();
        memcpy(b, a, n);
        double ms = kiln_now_ms() - t0;
        if (ms < best) best = ms;
    }
    volatile unsigned char sink = b[n / 2];
    (void)sink;
    free(a);
    free(b);
    return 2.0 * (double)n / (best * 1e-3); /* read + write */
}

static void host_describe(Target *t, int threads) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN), pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    t->name = "host";
    t->device_name = "CPU core (worker thread)";
    t->nodes = 1;
    t->per_node = threads > 0 ? threads : (cores > 0 ? (int)cores : 1);
    t->mem_bytes = pages > 0 && psz > 0 ? (double)pages * (double)psz : 8e9;
    t->mem_bw = host_mem_bw() / t->per_node;
    t->shared_memory = true;
    t->measured = true;
    t->gemm_efficiency = 1;
    /* flops_f32/flops_16 stay 0: a measured host's rate comes from
     * target_gemm_rate at each layer's own shapes */
}

/* The float32 GEMM rate of one worker, C[M,N] += A[M,K] B[N,K]^T with B packed
 * ahead (as the MoE kernel runs an expert's constant weights), measured once per shape with every worker of the host running such
 * GEMMs at once (they share caches and memory bandwidth, as an MoE layer's
 * experts do). Each worker cycles through enough copies of B to exceed the
 * caches, as a layer's weights do; sizes are capped so a timing takes a few
 * milliseconds. */
typedef struct {
    int64_t M, N, K, nb, iters, stride;
    float *a, *b, *c;      /* per worker: a [M*K], b: nb packed copies of [N, K], c [M*N] */
} RateJob;

static void rate_worker(void *arg, int64_t w0, int64_t w1) {
    const RateJob *j = arg;
    for (int64_t w = w0; w < w1; w++) {
        const float *a = j->a + w * j->M * j->K, *b = j->b + w * j->nb * j->N * j->K;
        float *c = j->c + w * j->M * j->N;
        for (int64_t i = 0; i < j->iters; i++)
            kiln_sgemm_packed(NULL, j->M, j->N, j->K, 1.0f, a, j->K, 0, b + (i % j->nb) * j->stride, c, j->N);
    }
}

double target_gemm_rate(Target *t, int64_t M, int64_t N, int64_t K) {
    if (!t->measured) return t->flops_f32 * t->gemm_efficiency;
    M = M < 1 ? 1 : M > 512 ? 512 : M;
    N = N > 2048 ? 2048 : N;
    K = K > 2048 ? 2048 : K;
    for (int i = 0; i < t->nrates; i++)
        if (t->rates[i].M == M && t->rates[i].N == N && t->rates[i].K == K) return t->rates[i].rate;
    int64_t W = t->per_node > 64 ? 64 : t->per_node, nb = ((int64_t)64 << 20) / (N * K * 4) + 1;
    nb = nb > 64 ? 64 : nb;
    RateJob j = {M, N, K, nb, nb, kiln_sgemm_packed_floats(N, K), NULL, NULL, NULL};
    j.a = calloc((size_t)(W * M * K), 4);
    j.b = malloc((size_t)(W * nb * j.stride) * 4);
    j.c = calloc((size_t)(W * M * N), 4);
    float *w = malloc((size_t)(N * K) * 4);
    kiln_pool *pool = kiln_pool_create((int)W);
    double rate = 50e9;
    if (j.a && j.b && j.c && w && pool) {
        for (int64_t i = 0; i < N * K; i++) w[i] = (float)(i % 7) * 1e-3f;
        for (int64_t i = 0; i < W * nb; i++) kiln_sgemm_pack(N, K, w, K, 1, j.b + i * j.stride);
        kiln_parallel_for(pool, W, rate_worker, &j); /* pages everything in */
        double ms[3], flops = 2.0 * (double)M * (double)N * (double)K * (double)j.iters;
        for (int trial = 0; trial < 3; trial++) {
            double t0 = kiln_now_ms();
            kiln_parallel_for(pool, W, rate_worker, &j);
            ms[trial] = kiln_now_ms() - t0;
        }
        double med = fmax(fmin(ms[0], ms[1]), fmin(fmax(ms[0], ms[1]), ms[2])); /* the median, like a benchmark's */
        rate = flops / (med * 1e-3);
    }
    kiln_pool_destroy(pool);
    free(j.a); free(j.b); free(j.c); free(w);
    if (t->nrates < (int)(sizeof t->rates / sizeof *t->rates)) t->rates[t->nrates++] = (GemmRate){M, N, K, rate};
    return rate;
}

/* ---- loading ---- */

bool target_load(Arena *a, const char *spec, const char *home, int threads, Target *t, Diags *d, PtrVec *deps) {
    memset(t, 0, sizeof *t);
    if (!spec || strcmp(spec, "host") == 0 || strcmp(spec, "x86_64-linux-gnu") == 0) {
        host_describe(t, threads);
        return true;
    }
    char *path;
    size_t l = strlen(spec);
    if (strchr(spec, '/') || (l > 5 && strcmp(spec + l - 5, ".json") == 0)) path = arena_strdup(a, spec);
    else path = arena_printf(a, "%s/targets/%s.json", home, spec);
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        if (access(path, R_OK) != 0) diag_error(d, NULL, "--target %s: no such target (%s is not readable; `ls %s/targets` lists the shipped ones)", spec, path, home);
        else diag_error(d, NULL, "%s: line %d: %s", path, err.line, err.text);
        return false;
    }
    Reader r = {d, path, a};
    t->name = spec;
    t->path = path;
    json_t *detect = json_is_object(root) ? json_object_get(root, "detect") : NULL;
    bool ok = true;
    if (detect && json_is_string(detect) && strcmp(json_string_value(detect), "host") == 0) host_describe(t, threads);
    else ok = read_target_file(&r, root, t);
    json_decref(root);
    if (ok) vec_push(a, deps, path);
    return ok;
}

static bool read_profile(Reader *r, json_t *root, RoutingProfile *p) {
    json_t *layers = json_is_object(root) ? json_object_get(root, "layers") : NULL;
    json_t *fmt = json_is_object(root) ? json_object_get(root, "format") : NULL;
    if (!fmt || !json_is_string(fmt) || strcmp(json_string_value(fmt), "kiln-routing-profile") != 0 || !json_is_array(layers)) {
        diag_error(r->d, NULL, "%s: not a kiln routing profile (needs \"format\": \"kiln-routing-profile\" and \"layers\")", r->file);
        return false;
    }
    double runs = 1;
    if (!num_field(r, root, "profile", "runs", 0, 1e9, false, &runs)) return false;
    if (p->runs > 2000000000 - (int)runs) { diag_error(r->d, NULL, "%s: the merged profiles count more than 2e9 runs", r->file); return false; }
    p->runs += (int)runs;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *L = json_array_get(layers, i), *name = json_object_get(L, "name"), *counts = json_object_get(L, "counts");
        double experts = 0, tokens = 0, top_k = 1;
        char where[64];
        snprintf(where, sizeof where, "layers[%zu]", i);
        if (!json_is_object(L) || !name || !json_is_string(name) || !json_is_array(counts)) {
            diag_error(r->d, NULL, "%s: %s needs \"name\" and \"counts\"", r->file, where);
            return false;
        }
        if (!num_field(r, L, where, "experts", 1, 1 << 20, true, &experts) || !num_field(r, L, where, "tokens", 0, 1e18, true, &tokens) ||
            !num_field(r, L, where, "top_k", 1, 1 << 20, false, &top_k))
            return false;
        if (json_array_size(counts) != (size_t)experts) {
            diag_error(r->d, NULL, "%s: %s has %zu counts for %g experts", r->file, where, json_array_size(counts), experts);
            return false;
        }
        ProfileLayer *pl = NULL;
        for (int j = 0; j < p->n; j++) if (strcmp(p->layers[j].name, json_string_value(name)) == 0) pl = &p->layers[j];
        if (pl && pl->experts != (int64_t)experts) {
            diag_error(r->d, NULL, "%s: layer '%s' has %g experts here and %lld in another profile", r->file, pl->name, experts, (long long)pl->experts);
            return false;
        }
        if (!pl) {
            if (p->n == p->cap) {
                int cap = p->cap ? 2 * p->cap : 8;
                ProfileLayer *nl = arena_alloc(r->a, (size_t)cap * sizeof *nl);
                if (p->n) memcpy(nl, p->layers, (size_t)p->n * sizeof *nl);
                p->layers = nl;
                p->cap = cap;
            }
            pl = &p->layers[p->n++];
            pl->name = arena_strdup(r->a, json_string_value(name));
            pl->experts = (int64_t)experts;
            pl->top_k = (int64_t)top_k;
            pl->counts = arena_alloc(r->a, (size_t)experts * sizeof(double));
        }
        if (pl->tokens > (int64_t)1e18 - (int64_t)tokens) {
            diag_error(r->d, NULL, "%s: layer '%s' counts more than 1e18 tokens in all", r->file, pl->name);
            return false;
        }
        pl->tokens += (int64_t)tokens;
        for (size_t e = 0; e < (size_t)experts; e++) {
            json_t *c = json_array_get(counts, e);
            if (!json_is_number(c) || json_number_value(c) < 0) {
                diag_error(r->d, NULL, "%s: %s: counts must be numbers of zero or more", r->file, where);
                return false;
            }
            pl->counts[e] += json_number_value(c);
        }
    }
    return true;
}

bool profile_load(Arena *a, const char *path, RoutingProfile *p, Diags *d, PtrVec *deps) {
    json_error_t err;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!root) { diag_error(d, NULL, "%s: %s%s", path, access(path, R_OK) ? "cannot read the routing profile: " : "", err.text); return false; }
    Reader r = {d, path, a};
    bool ok = read_profile(&r, root, p);
    json_decref(root);
    if (ok) vec_push(a, deps, arena_strdup(a, path));
    return ok;
}
