/* kernel_table.c: every kernel of kernels.def by number, for the compiler's Kir
 * interpreter (constant folding, and the contexts of driver/dyn.c): its name,
 * its function and its need of per-thread scratch (kiln_need_NAME, or NULL).
 * Kept apart from the kernels so that a compiled model, which calls its
 * kernels by name, links only the runtime objects whose kernels it uses (MoE,
 * recurrent and quantization kernels stay out of models that have none).
 * (--gc-sections to drop unused kernels inside an object trips an internal
 * error of Debian's ld 2.40 with the ifunc clones.) */
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

/* Each kernel's need of per-thread scratch, where its family's file defines
 * one (kiln_need_NAME, beside the kernel), else NULL: a weak reference, which
 * the definition fills in. It never pulls an object in by itself, but the
 * kernel beside it is pulled in by the table above. */
#define K(name, doc, ...) extern __typeof__(kiln_need_##name) kiln_need_##name __attribute__((weak));
#include "kernels.def"
#undef K
const kiln_need_fn kiln_kernel_need[KILN_K_COUNT] = {
#define K(name, doc, ...) kiln_need_##name,
#include "kernels.def"
#undef K
};
