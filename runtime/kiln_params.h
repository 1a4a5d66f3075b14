/* kiln_params.h: the runtime's kernels and each one's constant parameters.
 *
 * A kernel is declared by a row written just above its definition in its op
 * family's file of runtime/:
 *     KILN_KERNEL(name, "buffers", fields...)
 * make gathers the rows into runtime/kernels.def (scripts/kernels_def.sh), as
 *     K(name, "buffers", fields...)
 * which kiln_rt.h (the prototypes), kernel_table.c (the table by number),
 * codegen/kir.h (the kernels' numbers) and this header include. Every kernel
 * has the signature
 *     int kiln_k_NAME(kiln_pool *pool, void *const *bufs, const int64_t *p);
 * bufs[0..] are the output buffers first, then the inputs, in the order the
 * row's "buffers" gives. p holds the kernel's constant parameters, laid out as
 * the struct kiln_p_NAME this header makes of the row's fields: the lowering
 * (codegen/) fills that struct and hands it to lower_call, the emitters write it
 * out as int64 words (every field is one or more int64s, so the struct is its
 * own word layout), and the kernel reads it back through KILN_P(NAME, p). Both
 * the compiler and the runtime include this header, so the layout is written
 * once, in the row. A field is
 *     F(x)     one int64
 *     D(x)     a double, as its bits (kiln_d2p / kiln_p2d)
 *     A(x, n)  n int64s, of which the kernel reads those its rank or count says
 *     W(x)     a convolution/pooling window of nd <= 3 spatial axes (kiln_pwin)
 *     E(x)     a fused activation's clamp (kiln_pact: on, lo, hi)
 *     T(x)     a tail of int64s whose length the fields before it give (last)
 * Generated code calls these functions directly; the compiler's Kir interpreter
 * calls the very same functions through kiln_kernel_table, so constant folding
 * and generated code cannot disagree. */
#ifndef KILN_PARAMS_H
#define KILN_PARAMS_H

#include "kiln_rt.h"

#include <stdint.h>

/* The largest number of spatial axes of a convolution or pooling window. */
#define KILN_MAX_WIN 3

/* A kernel's row, read by make (see above); it compiles to nothing. */
#define KILN_KERNEL(name, doc, ...)

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
