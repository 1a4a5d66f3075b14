/* kernel_table.c: every kernel of kernels.def by number, for the compiler's Kir
 * interpreter (constant folding). Kept apart from the kernels so that a compiled
 * model, which calls its kernels by name, links only the runtime objects whose
 * kernels it uses (MoE, recurrent and quantization kernels stay out of models
 * that have none). (--gc-sections to drop unused kernels inside an object trips
 * an internal error of Debian's ld 2.40 with the ifunc clones.) */
#include "kiln_rt.h"

const char *const kiln_kernel_names[KILN_K_COUNT] = {
#define K(name, doc, ...) #name,
#include "kernels.def"
#undef K
};

const kiln_kernel_fn kiln_kernel_table[KILN_K_COUNT] = {
#define K(name, doc, ...) kiln_k_##name,
#include "kernels.def"
#undef K
};
