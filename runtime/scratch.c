/* scratch.c: the per-thread scratch buffer of the kernels that need more memory
 * than their step's planned workspace holds: the 3x3 depthwise convolutions'
 * zero-padded strips and split rows (conv.c, x86/conv_avx512.c), a block of
 * attention scores (attention.c) and the GEMM's packing panels (gemm.c).
 *
 * One buffer per thread, in the thread's slot (kiln_tscratch: its pool's, so
 * freed when the context is destroyed; outside any pool its own, freed when
 * the thread ends). A context's slots are sized when it is created: each
 * kernel that takes scratch declares its need beside itself (kiln_need_NAME,
 * from its parameters), kiln_context_scratch sizes every slot to the largest
 * need of the model's steps and fixes it, and a run only checks capacity
 * (kiln_scratch_check, a kernel's first step): it never allocates. A
 * thread's own slot (the compiler's constant folding) and the slots of a pool
 * made alone grow on first use instead, and keep their buffers from one call
 * to the next. A key names the layout whose first `clear` floats are zero, so
 * that planes of one layer, which leave the padding untouched, clear it only
 * once. */
#include "kiln_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local kiln_tscratch *cur; /* the slot of the pool this thread works for */
static _Thread_local kiln_tscratch own;  /* outside any pool: the thread's own */
static _Thread_local bool own_registered;
static pthread_key_t own_key; /* its value is &own, whose buffers it frees when the thread ends */
static pthread_once_t own_once = PTHREAD_ONCE_INIT;

static void slot_release(kiln_tscratch *s) {
    free(s->buf);
    free(s->gemm);
    memset(s, 0, sizeof *s);
}
static void own_free(void *s) { slot_release(s); }
static void own_key_make(void) { pthread_key_create(&own_key, own_free); }

/* 64-byte aligned, a whole number of 64-byte lines (aligned_alloc's rule) */
static void *line_alloc(int64_t bytes) { return aligned_alloc(64, (size_t)((bytes + 63) / 64 * 64)); }

kiln_tscratch *kiln_tscratch_new(int n) { return calloc((size_t)(n > 0 ? n : 1), sizeof(kiln_tscratch)); }

void kiln_tscratch_free(kiln_tscratch *s, int n) {
    if (!s) return;
    for (int i = 0; i < n; i++) slot_release(&s[i]);
    if (cur >= s && cur < s + n) cur = NULL;
    free(s);
}

kiln_tscratch *kiln_tscratch_use(kiln_tscratch *s) {
    kiln_tscratch *prev = cur;
    cur = s;
    return prev;
}

kiln_tscratch *kiln_tscratch_cur(void) {
    if (cur) return cur;
    if (!own_registered) {
        pthread_once(&own_once, own_key_make);
        if (pthread_setspecific(own_key, &own) != 0) return NULL;
        own_registered = true;
    }
    return &own;
}

/* Slot s's strip buffer of at least n floats (its contents are lost). */
static bool slot_grow(kiln_tscratch *s, int64_t n) {
    if (n <= s->cap) return true;
    free(s->buf);
    s->buf = line_alloc(((n + 15) / 16 * 16) * (int64_t)sizeof(float));
    s->cap = s->buf ? n : 0;
    s->key[0] = 0;
    return s->buf != NULL;
}

/* Slot s's packing panels of at least `bytes` (their contents are lost). */
static bool slot_panels(kiln_tscratch *s, int64_t bytes) {
    if (bytes <= 0 || (s->gemm && bytes <= s->gemm_bytes)) return true;
    free(s->gemm);
    s->gemm = line_alloc(bytes);
    s->gemm_bytes = s->gemm ? bytes : 0;
    return s->gemm != NULL;
}

float *kiln_tscratch_panels(kiln_tscratch *s, int64_t bytes) {
    bool have = s && s->gemm && bytes <= s->gemm_bytes;
    /* fixed and short: a kernel that did not declare them (a bug); the caller computes without */
    return have || (s && !s->fixed && slot_panels(s, bytes)) ? s->gemm : NULL;
}

int kiln_tscratch_size(kiln_tscratch *s, int n, const kiln_scratch_need *need) {
    for (int i = 0; i < n; i++) {
        s[i].fixed = true;
        if (!slot_grow(&s[i], need->floats) || !slot_panels(&s[i], need->gemm_bytes)) return KILN_E_NOMEM;
    }
    return KILN_OK;
}

int kiln_scratch_check(kiln_pool *pool, kiln_need_fn fn, const int64_t *p) {
    kiln_tscratch *s = pool ? kiln_pool_caller_scratch(pool) : kiln_tscratch_cur(); /* a pool's slots are all sized alike */
    if (!s) return KILN_E_NOMEM;
    if (!s->fixed) return KILN_OK; /* grows on first use */
    kiln_scratch_need need = {0, 0};
    fn(p, &need);
    return need.floats <= s->cap && (need.gemm_bytes <= 0 || (s->gemm && need.gemm_bytes <= s->gemm_bytes)) ? KILN_OK : KILN_E_NOMEM;
}

/* The thread's strip buffer of n floats whose first `clear` are zero. Planes
 * of one layer share a layout (key): the fills only write inside [0, W), so
 * the padding columns stay zero from one plane to the next and the buffer is
 * cleared only when the layout changes (small planes paid more for it than
 * for their arithmetic). */
float *kiln_thread_scratch(int64_t n, int64_t clear, int64_t k0, int64_t k1, int64_t k2) {
    kiln_tscratch *s = kiln_tscratch_cur();
    if (!s || (n > s->cap && (s->fixed || !slot_grow(s, n))) || !s->buf) return NULL; /* fixed: never grown by a run */
    if (!(s->key[0] == 1 && s->key[1] == k0 && s->key[2] == k1 && s->key[3] == k2 && clear <= s->key[4])) {
        memset(s->buf, 0, (size_t)clear * sizeof(float));
        s->key[0] = 1, s->key[1] = k0, s->key[2] = k1, s->key[3] = k2, s->key[4] = clear;
    }
    return s->buf;
}
