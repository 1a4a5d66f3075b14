/* fuzz_profile.c: libFuzzer harness of the routing profile reader
 * (frontend/target.c profile_load, libjansson; the format a compiled binary's
 * --routing-profile-out writes, runtime/io.c kiln_write_routing_profile).
 * The input is the JSON file, written to a private profile.json. Each input
 * is read twice into one RoutingProfile, as `--routing-profile F` given twice
 * merges them (layers matched by name, counts added). */
#include "../../frontend/frontend.h"
#include "../../ir/target.h"
#include "fuzz_common.h"

static volatile double fuzz_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("profile.json", data, size);
    if (!path) return 0;
    Arena *a = arena_new();
    Diags d = {.arena = a};
    PtrVec deps = {0};
    RoutingProfile p = {0};
    if (profile_load(a, path, &p, &d, &deps) && profile_load(a, path, &p, &d, &deps)) {
        double s = 0;
        for (int i = 0; i < p.n; i++) {
            const ProfileLayer *l = &p.layers[i];
            if (!l->name || l->experts < 1 || !l->counts) abort();
            for (int64_t e = 0; e < l->experts; e++) s += l->counts[e];
        }
        fuzz_sink = s;
    }
    arena_free(a);
    return 0;
}
