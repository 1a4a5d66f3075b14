/* scratch.c: the per-thread scratch buffer of the kernels that need more memory
 * than their step's planned workspace holds: the 3x3 depthwise convolutions'
 * zero-padded strips and split rows (conv.c, x86/conv_avx512.c) and a block of
 * attention scores (attention.c).
 *
 * One buffer per thread, allocated on first use, grown when a larger one is
 * asked for, kept from one call to the next and freed when its thread ends (a
 * pthread key's destructor holds it). A key names the layout whose first
 * `clear` floats are zero, so that planes of one layer, which leave the
 * padding untouched, clear it only once. */
#include "kiln_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local float *dw_buf;
static _Thread_local int64_t dw_cap, dw_key[5];
static pthread_key_t dw_tl_key; /* its value is the thread's dw_buf, freed when the thread ends */
static pthread_once_t dw_tl_once = PTHREAD_ONCE_INIT;
static void dw_tl_key_make(void) { pthread_key_create(&dw_tl_key, free); }

/* The thread's strip buffer of n floats whose first `clear` are zero. Planes
 * of one layer share a layout (key): the fills only write inside [0, W), so
 * the padding columns stay zero from one plane to the next and the buffer is
 * cleared only when the layout changes (small planes paid more for it than
 * for their arithmetic). */
float *kiln_thread_scratch(int64_t n, int64_t clear, int64_t k0, int64_t k1, int64_t k2) {
    if (n > dw_cap) {
        free(dw_buf);
        dw_buf = aligned_alloc(64, (size_t)((n + 15) / 16 * 16) * sizeof(float));
        dw_cap = dw_buf ? n : 0;
        pthread_once(&dw_tl_once, dw_tl_key_make);
        pthread_setspecific(dw_tl_key, dw_buf); /* freed when the thread ends */
        dw_key[0] = 0;
    }
    if (dw_buf && !(dw_key[0] == 1 && dw_key[1] == k0 && dw_key[2] == k1 && dw_key[3] == k2 && clear <= dw_key[4])) {
        memset(dw_buf, 0, (size_t)clear * sizeof(float));
        dw_key[0] = 1, dw_key[1] = k0, dw_key[2] = k1, dw_key[3] = k2, dw_key[4] = clear;
    }
    return dw_buf;
}
