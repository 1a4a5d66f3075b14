/* fuzz_kir.c: libFuzzer harness of the text IR reader (frontend/kir.c,
 * kir_load_mem: the text and the weights its blobs name, from memory).
 *
 * Input layout: the text, then one NUL byte, then the weights bytes (the text
 * ends at the first NUL; no NUL: text only, no weights). make_corpus writes
 * `kiln dump` outputs this way. The weights are copied to a 64-byte aligned
 * buffer, as a mapped weights file would be, so a blob's alignment is its
 * offset's. A graph that loads goes through the arity check, canonicalize (shape inference)
 * and the IR verifier, as in fuzz_onnx.c. */
#include "../../frontend/frontend.h"
#include "../../passes/passes.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = memchr(data, 0, size);
    size_t tlen = sep ? (size_t)(sep - data) : size;
    size_t wlen = sep ? size - tlen - 1 : 0;
    unsigned char *w = NULL;
    if (sep && posix_memalign((void **)&w, 64, wlen ? wlen : 1) != 0) return 0;
    if (wlen) memcpy(w, sep + 1, wlen);
    Arena *a = arena_new();
    Diags d = {.arena = a};
    FrontendOpts o = {NULL, 0, 1, false};
    Graph *g = kir_load_mem(a, (const char *)data, tlen, w, wlen, &o, &d);
    if (g && graph_check_arity(g, &d) && pass_canonicalize(g, &d)) (void)ir_verify(g, &d);
    arena_free(a);
    free(w);
    return 0;
}
