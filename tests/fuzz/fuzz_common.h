/* fuzz_common.h: what the libFuzzer harnesses of tests/fuzz/ share.
 *
 * Some of kiln's readers take only a path (onnx_load, kiln_read_npy, the JSON
 * readers): fuzz_file writes the input to one private file per process, in a
 * directory of its own under $TMPDIR or /tmp (kiln-fuzz-PID-XXXXXX), reused
 * for every input and removed at exit. The directory is private so that what a
 * reader resolves relative to the file (ONNX external data, target files)
 * stays inside it. */
#ifndef KILN_FUZZ_COMMON_H
#define KILN_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir[256], fuzz_path[320];

static void fuzz_cleanup(void) {
    if (fuzz_path[0]) unlink(fuzz_path);
    if (fuzz_dir[0]) rmdir(fuzz_dir);
}

/* The input as the file DIR/name (the same path on every call); NULL when it
 * cannot be written (the harness then skips the input). */
static const char *fuzz_file(const char *name, const uint8_t *data, size_t size) {
    if (!fuzz_dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/kiln-fuzz-%d-XXXXXX", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        if (!mkdtemp(fuzz_dir)) { fuzz_dir[0] = 0; return NULL; }
        atexit(fuzz_cleanup);
    }
    snprintf(fuzz_path, sizeof fuzz_path, "%s/%s", fuzz_dir, name);
    FILE *f = fopen(fuzz_path, "wb");
    if (!f) return NULL;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    if (fclose(f) != 0 || w != size) return NULL;
    return fuzz_path;
}

#endif
