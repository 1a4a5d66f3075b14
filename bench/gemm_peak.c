/* gemm_peak: the machine's single-core peak float32 FMA rate (a loop of
 * independent AVX2 FMAs, or scalar FMAs elsewhere) and the fraction of it that
 * kiln's GEMM reaches for square sizes 256, 512, 1024 on one thread. */
#include "kiln_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define FMA12(x) x##0 = _mm256_fmadd_ps(x##0, m, c); x##1 = _mm256_fmadd_ps(x##1, m, c); x##2 = _mm256_fmadd_ps(x##2, m, c); \
    x##3 = _mm256_fmadd_ps(x##3, m, c); x##4 = _mm256_fmadd_ps(x##4, m, c); x##5 = _mm256_fmadd_ps(x##5, m, c); \
    x##6 = _mm256_fmadd_ps(x##6, m, c); x##7 = _mm256_fmadd_ps(x##7, m, c); x##8 = _mm256_fmadd_ps(x##8, m, c); \
    x##9 = _mm256_fmadd_ps(x##9, m, c); x##a = _mm256_fmadd_ps(x##a, m, c); x##b = _mm256_fmadd_ps(x##b, m, c);
__attribute__((target("avx2,fma"))) static double peak_gflops(void) {
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    /* distinct starting values: identical chains would be merged by the compiler */
    __m256 r0 = _mm256_set1_ps(1), r1 = _mm256_set1_ps(2), r2 = _mm256_set1_ps(3), r3 = _mm256_set1_ps(4), r4 = _mm256_set1_ps(5), r5 = _mm256_set1_ps(6);
    __m256 r6 = _mm256_set1_ps(7), r7 = _mm256_set1_ps(8), r8 = _mm256_set1_ps(9), r9 = _mm256_set1_ps(10), ra = _mm256_set1_ps(11), rb = _mm256_set1_ps(12);
    long iters = 20000000;
    double t0 = kiln_now_ms();
    for (long n = 0; n < iters; n++) { FMA12(r) }
    double ms = kiln_now_ms() - t0;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r0, r1), _mm256_add_ps(r2, r3)), _mm256_add_ps(_mm256_add_ps(r4, r5), _mm256_add_ps(r6, r7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(r8, r9), _mm256_add_ps(ra, rb)));
    float tmp[8];
    _mm256_storeu_ps(tmp, s);
    if (tmp[0] == 12345.0f) printf(" ");
    return (double)iters * 12 * 8 * 2 / (ms * 1e6);
}
#define FMA12Z(x) x##0 = _mm512_fmadd_ps(x##0, m, c); x##1 = _mm512_fmadd_ps(x##1, m, c); x##2 = _mm512_fmadd_ps(x##2, m, c); \
    x##3 = _mm512_fmadd_ps(x##3, m, c); x##4 = _mm512_fmadd_ps(x##4, m, c); x##5 = _mm512_fmadd_ps(x##5, m, c); \
    x##6 = _mm512_fmadd_ps(x##6, m, c); x##7 = _mm512_fmadd_ps(x##7, m, c); x##8 = _mm512_fmadd_ps(x##8, m, c); \
    x##9 = _mm512_fmadd_ps(x##9, m, c); x##a = _mm512_fmadd_ps(x##a, m, c); x##b = _mm512_fmadd_ps(x##b, m, c);
__attribute__((target("avx512f"))) static double peak_gflops_512(void) {
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 r0 = _mm512_set1_ps(1), r1 = _mm512_set1_ps(2), r2 = _mm512_set1_ps(3), r3 = _mm512_set1_ps(4), r4 = _mm512_set1_ps(5), r5 = _mm512_set1_ps(6);
    __m512 r6 = _mm512_set1_ps(7), r7 = _mm512_set1_ps(8), r8 = _mm512_set1_ps(9), r9 = _mm512_set1_ps(10), ra = _mm512_set1_ps(11), rb = _mm512_set1_ps(12);
    long iters = 20000000;
    double t0 = kiln_now_ms();
    for (long n = 0; n < iters; n++) { FMA12Z(r) }
    double ms = kiln_now_ms() - t0;
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r0, r1), _mm512_add_ps(r2, r3)), _mm512_add_ps(_mm512_add_ps(r4, r5), _mm512_add_ps(r6, r7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(r8, r9), _mm512_add_ps(ra, rb)));
    float tmp[16];
    _mm512_storeu_ps(tmp, s);
    if (tmp[0] == 12345.0f) printf(" ");
    return (double)iters * 12 * 16 * 2 / (ms * 1e6);
}
#else
static double peak_gflops(void) { return 0; }
#endif

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(void) {
    double peak = peak_gflops();
    printf("peak_single_core_gflops avx2_fma %.1f\n", peak);
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        peak = peak_gflops_512();
        printf("peak_single_core_gflops avx512 %.1f (the fractions below are of this)\n", peak);
    }
#endif
    kiln_pool *pool = kiln_pool_create(1);
    for (int n = 256; n <= 1024; n *= 2) {
        /* 64-byte aligned, as a compiled model's workspace gives its GEMMs their
         * operands (malloc's 16-byte alignment splits every row of C across
         * cache lines: 0.84 of peak at 1024 where aligned gives 0.86) */
        size_t bytes = sizeof(float) * (size_t)n * (size_t)n;
        float *a = aligned_alloc(64, bytes), *b = aligned_alloc(64, bytes), *c = aligned_alloc(64, bytes);
        memset(c, 0, bytes);
        for (long i = 0; i < (long)n * n; i++) { a[i] = (float)(i % 13) * 0.01f; b[i] = (float)(i % 7) * 0.02f; }
        int reps = 11; /* the median of 11 (the 1024 case takes about 0.25 s) */
        double t[16];
        for (int r = 0; r < reps; r++) {
            double t0 = kiln_now_ms();
            kiln_sgemm(pool, n, n, n, 1.0f, a, n, 0, b, n, 0, c, n);
            t[r] = kiln_now_ms() - t0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp);
        double gf = 2.0 * n * n * (double)n / (t[reps / 2] * 1e6);
        printf("gemm %4d median_ms %8.2f gflops %6.1f fraction_of_peak %.2f\n", n, t[reps / 2], gf, peak > 0 ? gf / peak : 0);
        free(a); free(b); free(c);
    }
    kiln_pool_destroy(pool);
    return 0;
}
