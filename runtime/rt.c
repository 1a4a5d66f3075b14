/* rt.c: dtypes, workspace, clock, and the thread pool.
 *
 * The pool keeps N-1 worker threads parked on a condition variable; the calling
 * thread is worker 0. kiln_parallel_for publishes one job (fn, arg, n), bumps a
 * generation counter, does its own chunk and waits until every worker has
 * finished its chunk. Chunks are static: worker i takes [i*n/N, (i+1)*n/N). */
#define _GNU_SOURCE
#include "kiln_rt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int kiln_dtype_size(int dt) {
    switch (dt) {
    case KILN_DT_F32: case KILN_DT_I32: case KILN_DT_U32: return 4;
    case KILN_DT_U8: case KILN_DT_I8: case KILN_DT_BOOL: return 1;
    case KILN_DT_U16: case KILN_DT_I16: case KILN_DT_F16: case KILN_DT_BF16: return 2;
    case KILN_DT_I64: case KILN_DT_U64: case KILN_DT_F64: return 8;
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

void *kiln_workspace_alloc(size_t nbytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, nbytes ? nbytes : 64) != 0) return NULL;
    memset(p, 0, nbytes ? nbytes : 64);
    return p;
}

void kiln_workspace_free(void *p) { free(p); }

double kiln_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct kiln_pool {
    int n;                       /* workers including the caller */
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    unsigned long gen;
    int pending;
    int quit;
    kiln_range_fn fn;
    void *arg;
    int64_t total;
};

typedef struct { kiln_pool *pool; int id; } worker_arg;

static void pool_chunk(kiln_pool *p, int id) {
    int64_t b = p->total * id / p->n, e = p->total * (id + 1) / p->n;
    if (b < e) p->fn(p->arg, b, e);
}

static void *pool_worker(void *varg) {
    worker_arg wa = *(worker_arg *)varg;
    free(varg);
    kiln_pool *p = wa.pool;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        pool_chunk(p, wa.id);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
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
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)threads, sizeof(pthread_t));
    if (!p->threads) { free(p); return NULL; }
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
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}

int kiln_pool_threads(const kiln_pool *p) { return p ? p->n : 1; }

void kiln_parallel_for(kiln_pool *p, int64_t n, kiln_range_fn fn, void *arg) {
    if (n <= 0) return;
    if (!p || p->n == 1 || n == 1) { fn(arg, 0, n); return; }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->total = n;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    pool_chunk(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
