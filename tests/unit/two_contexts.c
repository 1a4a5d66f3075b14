/* two_contexts.c: two contexts of one compiled model (prefix m, header m.h),
 * each with two threads of its own, run at once on two threads of the caller,
 * three runs each, on the inputs given as raw files (argv[1..], one per model
 * input; missing: deterministic values). Both must give the same bytes, run
 * after run. Built with ThreadSanitizer by tests/tsan_test.py: a data race in
 * the runtime (thread pool, kernels, per-context state) is reported there. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m.h"

enum { RUNS = 3 };

typedef struct {
    const void *const *in;
    void *out[m_NUM_OUTPUTS > 0 ? m_NUM_OUTPUTS : 1];
    int rc;
} Job;

static void *work(void *arg) {
    Job *j = arg;
    m_ctx *c = m_create(2);
    if (!c) { j->rc = -1; return NULL; }
    for (int r = 0; r < RUNS && !j->rc; r++) j->rc = m_run(c, j->in, j->out);
    m_destroy(c);
    return NULL;
}

int main(int argc, char **argv) {
    const void *in[m_NUM_INPUTS > 0 ? m_NUM_INPUTS : 1];
    for (int i = 0; i < m_NUM_INPUTS; i++) {
        size_t n = (size_t)m_inputs[i].nbytes;
        unsigned char *p = malloc(n ? n : 1);
        FILE *f = i + 1 < argc ? fopen(argv[i + 1], "rb") : NULL;
        if (i + 1 < argc && (!f || fread(p, 1, n, f) != n)) { fprintf(stderr, "cannot read %zu bytes of %s\n", n, argv[i + 1]); return 1; }
        if (f) fclose(f);
        else for (size_t k = 0; k < n; k++) p[k] = (unsigned char)(k * 2654435761u >> 24) & 0x3f; /* small finite floats */
        in[i] = p;
    }
    Job a = {in, {0}, 0}, b = {in, {0}, 0};
    for (int i = 0; i < m_NUM_OUTPUTS; i++) {
        a.out[i] = calloc(1, (size_t)m_outputs[i].nbytes + 1);
        b.out[i] = calloc(1, (size_t)m_outputs[i].nbytes + 1);
    }
    pthread_t ta, tb;
    pthread_create(&ta, NULL, work, &a);
    pthread_create(&tb, NULL, work, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    int bad = a.rc || b.rc;
    for (int i = 0; i < m_NUM_OUTPUTS && !bad; i++) bad = memcmp(a.out[i], b.out[i], (size_t)m_outputs[i].nbytes) != 0;
    for (int i = 0; i < m_NUM_OUTPUTS; i++) free(a.out[i]), free(b.out[i]);
    for (int i = 0; i < m_NUM_INPUTS; i++) free((void *)in[i]);
    if (bad) { fprintf(stderr, "two_contexts: the contexts failed (%d, %d) or disagree\n", a.rc, b.rc); return 1; }
    printf("two_contexts: %d outputs agree over %d runs\n", m_NUM_OUTPUTS, RUNS);
    return 0;
}
