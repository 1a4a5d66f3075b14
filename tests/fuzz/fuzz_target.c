/* fuzz_target.c: libFuzzer harness of the target file reader
 * (frontend/target.c target_load, libjansson). The input is the JSON file,
 * written to a private target.json and named by its path (a spec ending in
 * .json is a path). A file that asks for the host ("detect": "host") is
 * skipped: describing the host times a 64 MiB copy and GEMMs on this machine,
 * which is measurement, not parsing, and would dominate the run. */
#include "../../frontend/frontend.h"
#include "../../ir/target.h"
#include "fuzz_common.h"

#include <jansson.h>

static int asks_for_host(const uint8_t *data, size_t size) {
    json_error_t e;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
    json_t *det = json_is_object(root) ? json_object_get(root, "detect") : NULL;
    int host = det && json_is_string(det) && strcmp(json_string_value(det), "host") == 0;
    json_decref(root);
    return host;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (asks_for_host(data, size)) return 0;
    const char *path = fuzz_file("target.json", data, size);
    if (!path) return 0;
    Arena *a = arena_new();
    Diags d = {.arena = a};
    PtrVec deps = {0};
    Target t;
    if (target_load(a, path, "/nonexistent", 1, &t, &d, &deps)) {
        /* what the placement pass reads of a loaded target */
        if (t.nodes < 1 || t.per_node < 1 || !t.name || !t.device_name) abort();
        (void)target_gemm_rate(&t, 16, 64, 64);
    }
    arena_free(a);
    return 0;
}
