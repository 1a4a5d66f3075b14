/* fuzz_pb.c: libFuzzer harness of the runtime's ONNX .pb input readers
 * (runtime/io.c): the same bytes, written to a private input.pb, are read as
 * a TensorProto (kiln_read_tensor -> kiln_read_pb), as a SequenceProto
 * (kiln_read_pb_sequence) and as an OptionalProto (kiln_read_pb_optional),
 * the three ways a compiled executable's main reads an input file. Every
 * tensor read is checked and touched (fuzz_tensor.h), then freed. */
#include "fuzz_common.h"
#include "fuzz_tensor.h"

static void check_list(kiln_tensor *ts, int count) {
    if (count < 0 || (count && !ts)) abort();
    for (int i = 0; i < count; i++) {
        fuzz_check_tensor(&ts[i]);
        kiln_tensor_free(&ts[i]);
    }
    free(ts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("input.pb", data, size);
    if (!path) return 0;
    char err[512];
    kiln_tensor t;
    if (kiln_read_tensor(path, &t, err, sizeof err) == 0) fuzz_check_tensor(&t);
    else if (t.data) abort();
    kiln_tensor_free(&t);

    kiln_tensor *ts = NULL;
    int count = -1, kind = -1;
    if (kiln_read_pb_sequence(path, &ts, &count, err, sizeof err) == 0) check_list(ts, count);
    else if (ts || count) abort();

    ts = NULL;
    count = -1;
    if (kiln_read_pb_optional(path, &kind, &ts, &count, err, sizeof err) == 0) {
        if (kind != 0 && kind != 1 && kind != 3) abort();
        if ((kind == 0 && count) || (kind == 1 && count != 1)) abort();
        check_list(ts, count);
    } else if (ts || count) abort();
    return 0;
}
