/* fuzz_onnx.c: libFuzzer harness of the ONNX reader (frontend/onnx.c).
 *
 * The input is an ONNX ModelProto. onnx_load reads only from a path, so the
 * input goes to a private file (fuzz_common.h); external data named by the
 * model resolves inside that file's private folder. A model that loads is then
 * taken through what the compiler does next with an untrusted model before any
 * pass of its own: the arity check (graph_check_arity), shape and type
 * inference with the rewrites it needs (pass_canonicalize: graph_infer's
 * topological sort and every op's shape rule, the canonicalize pass's
 * rewrites; no constant folding since no services are installed) and the IR verifier.
 * Everything lives in one arena, freed per input. */
#include "../../frontend/frontend.h"
#include "../../passes/passes.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("model.onnx", data, size);
    if (!path) return 0;
    Arena *a = arena_new();
    Diags d = {.arena = a};
    PtrVec deps = {0};
    FrontendOpts o = {NULL, 0, 1, false};
    Graph *g = onnx_load(a, path, &o, &d, &deps);
    if (g && graph_check_arity(g, &d) && pass_canonicalize(g, &d)) (void)ir_verify(g, &d);
    arena_free(a);
    return 0;
}
