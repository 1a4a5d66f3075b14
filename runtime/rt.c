/* rt.c: dtypes, workspace, clock, and the thread pool.
 *
 * The pool keeps N-1 worker threads; the calling thread is worker 0.
 * kiln_parallel_for publishes one job (fn, arg, n), bumps an atomic generation
 * counter, wakes sleepers, does its own chunk and spins until every worker has
 * finished its chunk. Workers spin on the counter for a while after each job
 * before parking on a condition variable. Chunks are static: worker i takes
 * [i*n/N, (i+1)*n/N). */
#define _GNU_SOURCE
#include "kiln_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

int kiln_dtype_size(int dt) {
    switch (dt) {
    case KILN_DT_F32: case KILN_DT_I32: case KILN_DT_U32: return 4;
    case KILN_DT_U8: case KILN_DT_I8: case KILN_DT_BOOL: return 1;
    case KILN_DT_U16: case KILN_DT_I16: case KILN_DT_F16: case KILN_DT_BF16: return 2;
    case KILN_DT_I64: case KILN_DT_U64: case KILN_DT_F64: return 8;
    case KILN_DT_STRING: return (int)sizeof(kiln_str);
    default: return 0;
    }
}

const char *kiln_dtype_name(int dt) {
    switch (dt) {
    case KILN_DT_F32: return "f32"; case KILN_DT_U8: return "u8"; case KILN_DT_I8: return "i8";
    case KILN_DT_U16: return "u16"; case KILN_DT_I16: return "i16"; case KILN_DT_I32: return "i32";
    case KILN_DT_I64: return "i64"; case KILN_DT_STRING: return "string"; case KILN_DT_BOOL: return "bool";
    case KILN_DT_F16: return "f16"; case KILN_DT_F64: return "f64"; case KILN_DT_U32: return "u32";
    case KILN_DT_U64: return "u64"; case KILN_DT_BF16: return "bf16";
    default: return "?";
    }
}

int kiln_run_batch(int (*run)(void *, const void *const *, void *const *), void *ctx, const kiln_tensor_info *ins, int nin,
                   const kiln_tensor_info *outs, int nout, int64_t n, const void *const *inputs, void *const *outputs) {
    bool batched = false;
    for (int i = 0; i < nin; i++) batched |= ins[i].batch != 0;
    if (n < 1 || (n > 1 && !batched)) return 2;
    if (n == 1) return run(ctx, inputs, outputs);
    if (nin > 4096 || nout > 4096) return 2;
    const void *in[nin + 1]; /* on the stack: no allocation per run */
    void *out[nout + 1];
    int rc = 0;
    for (int64_t s = 0; s < n && !rc; s++) {
        for (int i = 0; i < nin; i++) in[i] = (const char *)inputs[i] + (ins[i].batch ? s * ins[i].nbytes : 0);
        for (int i = 0; i < nout; i++) out[i] = (char *)outputs[i] + (outs[i].batch ? s * outs[i].nbytes : 0);
        rc = run(ctx, in, out);
    }
    return rc;
}

void *kiln_workspace_alloc(size_t nbytes) {
    void *p = NULL;
    size_t n = nbytes ? nbytes : 64, align = 64;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* 2 MB pages where the system gives them on request (transparent huge
     * pages in madvise mode): a convolution's input planes lie tens of KB
     * apart, a 4 KB page each for every panel of a 1x1 convolution */
    enum { HUGE = 2 << 20 };
    if (n >= HUGE) {
        align = HUGE;
        n = (n + HUGE - 1) / HUGE * HUGE;
    }
#endif
    if (posix_memalign(&p, align, n) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align > 64) madvise(p, n, MADV_HUGEPAGE); /* advice only: a refusal changes nothing */
#endif
    memset(p, 0, n);
    return p;
}

void kiln_workspace_free(void *p) { free(p); }

/* the step profiler's state (kiln_prof_mark) */
struct kiln_profile {
    double *ms;              /* per step, summed over the runs */
    const char *const *names;
    int n, cur;
    int64_t runs;
    double last;
};

kiln_context *kiln_context_create(int64_t ws_size, int64_t state_size, int threads, const unsigned char *W,
                                  const char *weights_path, int64_t weights_size, uint64_t weights_id,
                                  int (*init)(kiln_context *ctx)) {
    kiln_context *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->ws = kiln_workspace_alloc((size_t)ws_size);
    c->state = kiln_workspace_alloc((size_t)state_size);
    c->pool = kiln_pool_create(threads);
    if (W) c->W = W;
    else if (weights_path) {
        char err[512];
        c->W = kiln_weights_map(weights_path, weights_size, weights_id, &c->W_len, err, sizeof err);
    }
    static const kiln_scratch_need none = {0, 0};
    if (!c->ws || !c->state || !c->pool || !c->W || kiln_pool_scratch(c->pool, &none) != 0) { /* fixed: init sizes it */
        kiln_context_destroy(c);
        return NULL;
    }
    const char *prof = getenv("KILN_PROFILE");
    if (prof && *prof && strcmp(prof, "0") != 0) c->prof = calloc(1, sizeof *c->prof); /* no memory: no profile */
    if (init && init(c) != 0) { /* a create-time step failed (packing weights: out of memory) */
        kiln_context_destroy(c);
        return NULL;
    }
    return c;
}

int kiln_step_failed(kiln_context *c, int status, const char *step) {
    c->status = status;
    c->failed_step = step;
    snprintf(c->error, sizeof c->error, "step %s: %s", step ? step : "?", kiln_status_text(status));
    return status;
}

const char *kiln_context_error(const kiln_context *c) { return c->error; }

const char *kiln_status_text(int status) {
    switch (status) {
    case KILN_OK: return "no error";
    case KILN_E_NOMEM: return "out of memory";
    case KILN_E_INDEX: return "an index is out of range";
    case KILN_E_VALUE: return "an input value is outside what the op accepts";
    case KILN_E_LOOP: return "a Loop stopped before its scan outputs were full";
    default: return "unknown error";
    }
}

kiln_context *kiln_context_create_beside(int64_t ws_size, int64_t state_size, int threads, const char *weights_name,
                                         int64_t weights_size, uint64_t weights_id, int (*init)(kiln_context *ctx)) {
    char path[4096];
    if (kiln_weights_default_path(weights_name, path, sizeof path) != 0) return NULL;
    return kiln_context_create(ws_size, state_size, threads, NULL, path, weights_size, weights_id, init);
}

/* ---- the step profiler ---- */

void kiln_prof_mark(kiln_context *c, int step, int nsteps, const char *const *names) {
    struct kiln_profile *p = c->prof;
    double now = kiln_now_ms();
    if (!p->ms) {
        if (!(p->ms = calloc((size_t)nsteps + 1, sizeof *p->ms))) { free(p); c->prof = NULL; return; }
        p->n = nsteps;
        p->names = names;
        p->cur = -1;
    }
    if (p->cur >= 0 && p->cur < p->n) p->ms[p->cur] += now - p->last;
    if (step < 0) p->runs++;
    p->cur = step;
    p->last = now;
}

/* (declared in kiln_rt.h; here, in the object every model links, for the
 * profiler as well as TopK, Unique and NMS) */
void kiln_sort_indices(int64_t *idx, int64_t *tmp, int64_t n, bool (*before)(int64_t a, int64_t b, const void *c), const void *c) {
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = before(idx[j], idx[i], c) ? idx[j++] : idx[i++];
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)n * sizeof *idx);
    }
}

static bool larger(int64_t a, int64_t b, const void *key) { return ((const double *)key)[a] > ((const double *)key)[b]; }

/* The group of a step for the totals: its op and kernel ("Conv [conv_wino]",
 * from "node 'c' (Conv) [conv_wino]"), or "fused loop". */
static void prof_op(const char *name, char *op, size_t n) {
    name = name ? name : "";
    const char *k = strrchr(name, '['), *o = NULL;
    for (const char *q = name; *q && (!k || q < k); q++) if (*q == '(') o = q;
    const char *e = o ? strchr(o, ')') : NULL;
    if (strncmp(name, "fused", 5) == 0 || (k && strncmp(k, "[loop]", 6) == 0)) snprintf(op, n, "fused loop");
    else if (o && e && k) snprintf(op, n, "%.*s %s", (int)(e - o - 1), o + 1, k);
    else snprintf(op, n, "%s", k ? k : "other");
}

static void prof_print(const struct kiln_profile *p) {
    if (!p->ms || !p->runs) return;
    int64_t *order = malloc((size_t)(2 * p->n + 1) * sizeof *order), *tmp = order + p->n;
    if (!order) return;
    double total = 0;
    for (int i = 0; i < p->n; i++) { order[i] = i; total += p->ms[i]; }
    kiln_sort_indices(order, tmp, p->n, larger, p->ms);
    double per = 1.0 / (double)p->runs;
    fprintf(stderr, "kiln profile: %lld runs, %.3f ms per run in steps\n  ms/run      %%  step\n", (long long)p->runs, total * per);
    for (int i = 0; i < p->n && p->ms[order[i]] > 0; i++)
        fprintf(stderr, "%8.4f %6.2f  %d %s\n", p->ms[order[i]] * per, total > 0 ? 100 * p->ms[order[i]] / total : 0, (int)order[i],
                p->names[order[i]] ? p->names[order[i]] : "");
    fprintf(stderr, "  by op:\n"); /* sums over the steps of each op, slowest first */
    char (*ops)[64] = calloc((size_t)p->n + 1, sizeof *ops);
    double *sum = calloc((size_t)p->n + 1, sizeof *sum);
    int nops = 0;
    for (int i = 0; ops && sum && i < p->n; i++) {
        char op[64];
        prof_op(p->names[i], op, sizeof op);
        int k = 0;
        while (k < nops && strcmp(ops[k], op) != 0) k++;
        if (k == nops) snprintf(ops[nops++], sizeof *ops, "%s", op);
        sum[k] += p->ms[i];
    }
    for (int i = 0; i < nops; i++) order[i] = i;
    if (ops && sum) kiln_sort_indices(order, tmp, nops, larger, sum);
    for (int i = 0; ops && sum && i < nops && sum[order[i]] > 0; i++)
        fprintf(stderr, "%8.4f %6.2f  %s\n", sum[order[i]] * per, total > 0 ? 100 * sum[order[i]] / total : 0, ops[order[i]]);
    free(ops);
    free(sum);
    free(order);
}

void kiln_context_destroy(kiln_context *c) {
    if (!c) return;
    if (c->prof) {
        prof_print(c->prof);
        free(c->prof->ms);
        free(c->prof);
    }
    kiln_pool_destroy(c->pool);
    kiln_workspace_free(c->ws);
    kiln_free_heap_slots(c->state);
    kiln_workspace_free(c->state);
    if (c->W_len) kiln_weights_unmap(c->W, c->W_len);
    free(c);
}

double kiln_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct kiln_pool {
    int n;                       /* workers including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_ulong gen;            /* bumped once per job */
    atomic_ulong *slot;          /* per thread's range: the last job it was claimed for */
    atomic_int done;             /* ranges of the current job finished */
    atomic_int quit;
    kiln_range_fn fn;
    void *arg;
    int64_t total;
    kiln_tscratch *ts;           /* per thread's scratch (scratch.c), freed with the pool */
};

typedef struct { kiln_pool *pool; int id; } worker_arg;

/* Spins before sleeping: waking a thread through the kernel costs tens of
 * microseconds, more than many kernels take. */
#define SPIN_ITERS 20000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Job g's ranges: thread i's is [total i / n, total (i + 1) / n), claimed by
 * whoever marks its slot with g first. Its owner takes it when it wakes; a
 * thread done with its own takes those still unclaimed, so a worker that is
 * late (asleep, or its virtual CPU descheduled) costs the job a range run by
 * another thread instead of a wait for it. Every range is still one call. */
static bool pool_claim(kiln_pool *p, int i, unsigned long g) {
    unsigned long cur = atomic_load_explicit(&p->slot[i], memory_order_relaxed);
    while (cur < g)
        if (atomic_compare_exchange_weak_explicit(&p->slot[i], &cur, g, memory_order_acquire, memory_order_relaxed)) return true;
    return false;
}

static void pool_run(kiln_pool *p, int i) {
    int64_t b = p->total * i / p->n, e = p->total * (i + 1) / p->n;
    if (b < e) p->fn(p->arg, b, e);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
}

/* Thread id's part of job g: its own range, then any left unclaimed. */
static void pool_work(kiln_pool *p, int id, unsigned long g) {
    if (pool_claim(p, id, g)) pool_run(p, id);
    for (int i = 1; i < p->n; i++) {
        int o = (id + i) % p->n;
        if (pool_claim(p, o, g)) pool_run(p, o);
    }
}

static void *pool_worker(void *varg) {
    worker_arg wa = *(worker_arg *)varg;
    free(varg);
    kiln_pool *p = wa.pool;
    kiln_tscratch_use(&p->ts[wa.id]);
    unsigned long seen = 0;
    for (;;) {
        unsigned long g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->quit)) {
            if (++spins < SPIN_ITERS) { cpu_relax(); continue; }
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        pool_work(p, wa.id, g);
    }
    return NULL;
}

kiln_pool *kiln_pool_create(int threads) {
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c > 0 ? (int)c : 1;
    }
    if (threads > 256) threads = 256;
    kiln_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->quit, 0);
    p->threads = calloc((size_t)threads, sizeof(pthread_t));
    p->slot = calloc((size_t)threads, sizeof *p->slot);
    p->ts = kiln_tscratch_new(threads);
    if (!p->threads || !p->slot || !p->ts) { free(p->threads); free(p->slot); free(p->ts); free(p); return NULL; }
    for (int i = 0; i < threads; i++) atomic_init(&p->slot[i], 0);
    for (int i = 1; i < threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) { p->n = i; break; }
        wa->pool = p;
        wa->id = i;
        if (pthread_create(&p->threads[i], NULL, pool_worker, wa) != 0) { free(wa); p->n = i; break; }
    }
    return p;
}

void kiln_pool_destroy(kiln_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    kiln_tscratch_free(p->ts, p->n);
    free(p->threads);
    free(p->slot);
    free(p);
}

kiln_tscratch *kiln_pool_caller_scratch(kiln_pool *p) { return &p->ts[0]; }

int kiln_pool_scratch(kiln_pool *p, const kiln_scratch_need *need) { return kiln_tscratch_size(p->ts, p->n, need); }

int kiln_context_scratch(kiln_context *c, const kiln_step_need *steps, int n) {
    kiln_scratch_need need = {0, 0};
    for (int i = 0; i < n; i++) steps[i].fn(steps[i].p, &need); /* each raises need to its own */
    return kiln_pool_scratch(c->pool, &need);
}

int kiln_pool_threads(const kiln_pool *p) { return p ? p->n : 1; }

void kiln_parallel_for(kiln_pool *p, int64_t n, kiln_range_fn fn, void *arg) {
    if (n <= 0) return;
    if (!p) { fn(arg, 0, n); return; }
    kiln_tscratch *prev = kiln_tscratch_use(&p->ts[0]); /* the caller's share uses the pool's slot 0 */
    if (p->n == 1 || n == 1) {
        fn(arg, 0, n);
        kiln_tscratch_use(prev);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->total = n;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed); /* the last job's ranges all finished: none adds to it now */
    unsigned long g = atomic_fetch_add_explicit(&p->gen, 1, memory_order_release) + 1;
    pthread_mutex_lock(&p->mu); /* wakes workers that went to sleep */
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    pool_work(p, 0, g);
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n) cpu_relax();
    kiln_tscratch_use(prev);
}
