/* scalar_bc.c: the scalar functions of kiln_scalar.h as external definitions.
 *
 * Compiled to LLVM bitcode by clang when kiln is built (one file per target
 * triple, build/lib/TRIPLE/kiln_scalar.bc). The LLVM backend links it into each
 * model's module, where fused loops call kiln_<op>_<class>; the functions are
 * made internal and inlined, so the generated code computes exactly what the C
 * backend's inline functions and the compiler's constant folding compute. */
#define KILN_SCALAR
#include "kiln_scalar.h"
