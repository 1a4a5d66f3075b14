/* scratch.c: the per-thread scratch buffer of the kernels that need more memory
 * than their step's planned workspace holds: the 3x3 depthwise convolutions'
 * zero-padded strips and split rows (conv.c, x86/conv_avx512.c) and a block of
 * attention scores (attention.c).
 *
 * One buffer per thread, in the thread's slot (kiln_tscratch: its pool's, so
 * freed when the context is destroyed; outside any pool its own, freed when
 * the thread ends), allocated on first use, grown when a larger one is asked
 * for and kept from one call to the next. A key names the layout whose first
 * `clear` floats are zero, so that planes of one layer, which leave the
 * padding untouched, clear it only once. The GEMM's packing panels live in
 * the same slot (gemm.c). */
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

/* The thread's strip buffer of n floats whose first `clear` are zero. Planes
 * of one layer share a layout (key): the fills only write inside [0, W), so
 * the padding columns stay zero from one plane to the next and the buffer is
 * cleared only when the layout changes (small planes paid more for it than
 * for their arithmetic). */
float *kiln_thread_scratch(int64_t n, int64_t clear, int64_t k0, int64_t k1, int64_t k2) {
    kiln_tscratch *s = kiln_tscratch_cur();
    if (!s) return NULL;
    if (n > s->cap) {
        free(s->buf);
        s->buf = aligned_alloc(64, (size_t)((n + 15) / 16 * 16) * sizeof(float));
        s->cap = s->buf ? n : 0;
        s->key[0] = 0;
    }
    if (s->buf && !(s->key[0] == 1 && s->key[1] == k0 && s->key[2] == k1 && s->key[3] == k2 && clear <= s->key[4])) {
        memset(s->buf, 0, (size_t)clear * sizeof(float));
        s->key[0] = 1, s->key[1] = k0, s->key[2] = k1, s->key[3] = k2, s->key[4] = clear;
    }
    return s->buf;
}
