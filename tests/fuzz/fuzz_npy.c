/* fuzz_npy.c: libFuzzer harness of the runtime's .npy input reader
 * (runtime/io.c kiln_read_npy, through kiln_read_tensor as a compiled
 * executable's main calls it). The input is the file's bytes, written to a
 * private input.npy (the reader takes a path). A tensor read is checked
 * against its header and every byte read (fuzz_tensor.h), then freed. */
#include "fuzz_common.h"
#include "fuzz_tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("input.npy", data, size);
    if (!path) return 0;
    kiln_tensor t;
    char err[512];
    if (kiln_read_tensor(path, &t, err, sizeof err) == 0) fuzz_check_tensor(&t);
    else if (t.data) abort(); /* a failed read leaves nothing to free */
    kiln_tensor_free(&t);
    return 0;
}
