/* Links a model compiled with `kiln compile --emit lib` into a C program.
 * Runs two contexts at once on two threads (the API has no global state) on the
 * raw float32 input file argv[1] and writes the first context's output to argv[2]. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mlp.h"

typedef struct { const float *in; float *out; int rc; } job;

static void *work(void *arg) {
    job *j = arg;
    mlp_ctx *c = mlp_create(1);
    if (!c) { j->rc = -1; return NULL; }
    const void *ins[mlp_NUM_INPUTS] = {j->in};
    void *outs[mlp_NUM_OUTPUTS] = {j->out};
    j->rc = mlp_run(c, ins, outs);
    mlp_destroy(c);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s INPUT.f32 OUTPUT.f32\n", argv[0]); return 2; }
    size_t in_n = (size_t)mlp_inputs[0].nbytes, out_n = (size_t)mlp_outputs[0].nbytes;
    float *in = malloc(in_n), *o1 = malloc(out_n), *o2 = malloc(out_n);
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(in, 1, in_n, f) != in_n) { fprintf(stderr, "cannot read %s (%zu bytes)\n", argv[1], in_n); return 1; }
    fclose(f);
    job a = {in, o1, 0}, b = {in, o2, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, work, &a);
    pthread_create(&tb, NULL, work, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    int bad = a.rc || b.rc || memcmp(o1, o2, out_n) != 0;
    free(in);
    free(o2);
    if (bad) { fprintf(stderr, "the two contexts disagree\n"); free(o1); return 1; }
    f = fopen(argv[2], "wb");
    bool written = f && fwrite(o1, 1, out_n, f) == out_n;
    free(o1);
    if (!f || fclose(f) != 0 || !written) return 1;
    printf("%s: input '%s' -> output '%s' [", argv[0], mlp_inputs[0].name, mlp_outputs[0].name);
    for (int d = 0; d < mlp_outputs[0].rank; d++) printf("%s%lld", d ? "," : "", (long long)mlp_outputs[0].shape[d]);
    printf("]\n");
    return 0;
}
