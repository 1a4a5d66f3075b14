/* fuzz_tensor.h: checks a tensor the runtime's readers returned, as a compiled
 * executable's main would use it: the header agrees with the data size, and
 * every byte of the data (and of each string of a string tensor) is read, so
 * AddressSanitizer sees any block shorter than the tensor claims. */
#ifndef KILN_FUZZ_TENSOR_H
#define KILN_FUZZ_TENSOR_H

#include "../../runtime/kiln_rt.h"

#include <stdlib.h>

static volatile unsigned fuzz_sink;

static void fuzz_check_tensor(const kiln_tensor *t) {
    int es = kiln_dtype_size(t->dtype);
    if (es <= 0 || t->rank < 0 || t->rank > KILN_MAX_RANK || !t->data) abort();
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0) abort();
        n *= t->shape[i];
    }
    if (t->nbytes != n * es) abort();
    const unsigned char *p = t->data;
    unsigned s = 0;
    if (t->dtype == KILN_DT_STRING) {
        const kiln_str *str = t->data;
        for (int64_t i = 0; i < n; i++) {
            if (str[i].n < 0 || (str[i].n && !str[i].p)) abort();
            for (int64_t k = 0; k < str[i].n; k++) s += (unsigned char)str[i].p[k];
        }
    } else
        for (int64_t i = 0; i < t->nbytes; i++) s += p[i];
    fuzz_sink += s;
}

#endif
