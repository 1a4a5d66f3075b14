/* kiln_params.h: each kernel's constant parameters as a struct, made from the
 * fields of its kernels.def row: kiln_p_NAME. The lowering (codegen/) fills
 * one and hands it to lower_call; the emitters write it out as int64 words
 * (every field is one or more int64s, so the struct is its own word layout);
 * the kernel reads it back with KILN_P(NAME, p). Both the compiler and the
 * runtime include this header, so the layout is written once, in the row. */
#ifndef KILN_PARAMS_H
#define KILN_PARAMS_H

#include "kiln_rt.h"

#include <stdint.h>

/* The largest number of spatial axes of a convolution or pooling window. */
#define KILN_MAX_WIN 3

/* A convolution/pooling window over nd spatial axes (the first nd of each). */
typedef struct kiln_pwin {
    int64_t in[KILN_MAX_WIN], out[KILN_MAX_WIN], k[KILN_MAX_WIN], stride[KILN_MAX_WIN], dil[KILN_MAX_WIN];
    int64_t pad_begin[KILN_MAX_WIN], pad_end[KILN_MAX_WIN];
} kiln_pwin;

/* A fused activation's clamp: when on, the output is clamped to [lo, hi]
 * (double bits). */
typedef struct kiln_pact {
    int64_t on, lo, hi;
} kiln_pact;

#define F(x) int64_t x;
#define D(x) int64_t x;
#define A(x, n) int64_t x[n];
#define W(x) kiln_pwin x;
#define E(x) kiln_pact x;
#define T(x) int64_t x[];
#define K(name, doc, ...) typedef struct kiln_p_##name { __VA_ARGS__ } kiln_p_##name;
#include "kernels.def"
#undef K
#undef F
#undef D
#undef A
#undef W
#undef E
#undef T

/* The words of each struct (its fixed part, before a tail), with a check that
 * no padding crept in. */
enum {
#define K(name, doc, ...) KILN_PWORDS_##name = (int)(sizeof(kiln_p_##name) / sizeof(int64_t)),
#include "kernels.def"
#undef K
};
#define K(name, doc, ...) _Static_assert(sizeof(kiln_p_##name) % sizeof(int64_t) == 0, "kiln_p_" #name " is not whole int64 words");
#include "kernels.def"
#undef K

/* A kernel's view of its parameter words. */
#define KILN_P(name, p) ((const kiln_p_##name *)(const void *)(p))

#endif
