/* kiln_simd.h: KILN_CLONES marks a runtime function whose loops are worth
 * compiling for wider vectors: gcc builds it for x86-64-v4 (AVX-512), x86-64-v3
 * (AVX2 + FMA) and the baseline, and picks one when the program starts (ifunc).
 * Elsewhere (other compilers or CPUs) it is an ordinary function. Installed:
 * generated C marks its exp/erf/sigmoid loops with it too. */
#ifndef KILN_SIMD_H
#define KILN_SIMD_H
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define KILN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define KILN_CLONES
#endif
#endif
