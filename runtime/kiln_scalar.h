/* kiln_scalar.h: the scalar semantics of every elementwise operation.
 *
 * Fused elementwise loops in generated C call these inline functions, and the
 * compiler's Kir interpreter (constant folding) calls the same ones, so a folded
 * constant and a computed value can never disagree.
 *
 * Values are computed in one of four classes: f32 (float32, float16, bfloat16),
 * f64, i64 (signed integers) and u64 (unsigned integers and bool); a narrow
 * integer result is truncated to its storage type, which wraps as two's
 * complement. Integer arithmetic goes through uint64_t, so overflow is defined;
 * integer division by zero gives 0 instead of trapping. */
#ifndef KILN_SCALAR_H
#define KILN_SCALAR_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* runtime/scalar_bc.c defines KILN_SCALAR as nothing to compile these into the
 * LLVM bitcode the LLVM backend links into every model (and then inlines). */
#ifndef KILN_SCALAR
#define KILN_SCALAR static inline
#endif

/* ---- float16 / bfloat16 <-> float32, round to nearest even ---- */

KILN_SCALAR float kiln_bits2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
KILN_SCALAR uint32_t kiln_f2bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

KILN_SCALAR float kiln_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return kiln_bits2f(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return kiln_bits2f(sign);
        float f = (float)man * (1.0f / 16777216.0f); /* man * 2^-24 */
        return sign ? -f : f;
    }
    return kiln_bits2f(sign | ((exp + 112) << 23) | (man << 13));
}

KILN_SCALAR uint16_t kiln_f32_to_f16(float f) {
    uint32_t u = kiln_f2bits(f), sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds past 65504 */
    if (a < 0x38800000u) {                                  /* subnormal or zero */
        float v = kiln_bits2f(a) * 16777216.0f;             /* exact scale by 2^24 */
        uint32_t m = (uint32_t)v;
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t r = a + 0xfff + ((a >> 13) & 1); /* round to nearest even */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

KILN_SCALAR float kiln_bf16_to_f32(uint16_t h) { return kiln_bits2f((uint32_t)h << 16); }

KILN_SCALAR uint16_t kiln_f32_to_bf16(float f) {
    uint32_t u = kiln_f2bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

KILN_SCALAR float kiln_round_f16(float f) { return kiln_f16_to_f32(kiln_f32_to_f16(f)); }
KILN_SCALAR float kiln_round_bf16(float f) { return kiln_bf16_to_f32(kiln_f32_to_bf16(f)); }

/* ---- conversions between classes (float to integer saturates, NaN gives 0) ---- */

KILN_SCALAR int64_t kiln_f2i(double d) {
    if (d != d) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}
KILN_SCALAR uint64_t kiln_f2u(double d) {
    if (d != d) return 0;
    if (d < 0) return (uint64_t)kiln_f2i(d);
    if (d >= 18446744073709551615.0) return UINT64_MAX;
    return (uint64_t)d;
}

/* ---- exp and erf for float32 ----
 * Branch-free (every value computed, then selected) and always inlined, so
 * that loops of them vectorize (gcc needs -fno-trapping-math to if-convert the
 * selects); within 2 ulp of the correctly rounded result (checked against libm's
 * double exp/erf over the float range by tests/scalar_test.c). exp: a = n ln2 + r
 * with |r| <= ln2/2 (n rounded by adding 1.5 * 2^23 and read from the bits; ln2
 * in two parts so that n ln2 is exact), a degree-6 polynomial for e^r, and 2^n
 * applied as two powers of two, so subnormal results come out right. erf:
 * x + x P(x^2) below 1; above, 1 - e^(-x^2) G(1/x), G a degree-8 polynomial
 * fitted to erfc(x) e^(x^2) on [1, 4]; beyond 4, erfc is under half an ulp of 1.
 * Integer clamps on the bits stand in for float comparisons (no NaN cases). */
#if defined(__GNUC__) || defined(__clang__)
#define KILN_ALWAYS_INLINE __attribute__((always_inline))
#else
#define KILN_ALWAYS_INLINE
#endif

KILN_SCALAR KILN_ALWAYS_INLINE float kiln_expf(float a) {
    int32_t n = (int32_t)(kiln_f2bits(a * 1.44269504f + 12582912.0f) - 0x4B400000u);
    n = n < -160 ? -160 : n;
    n = n > 130 ? 130 : n;
    float nf = (float)n;
    float r = (a - nf * 0.693359375f) - nf * -2.12194440e-4f;
    float p = 1.37514085e-3f;
    p = p * r + 8.36892147e-3f;
    p = p * r + 4.16695327e-2f;
    p = p * r + 1.66665182e-1f;
    p = p * r + 4.99999881e-1f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t n1 = n / 2, n2 = n - n1;
    float y = p * kiln_bits2f((uint32_t)(n1 + 127) << 23) * kiln_bits2f((uint32_t)(n2 + 127) << 23);
    y = a < -104.0f ? 0.0f : y;
    y = a > 89.0f ? INFINITY : y;
    return a != a ? a : y;
}
KILN_SCALAR KILN_ALWAYS_INLINE float kiln_erff(float a) {
    uint32_t b = kiln_f2bits(fabsf(a));
    float x = kiln_bits2f(b < 0x40800000u ? b : 0x40800000u); /* |a| up to 4 (NaN too: selected below) */
    float x2 = x * x;
    float s = 7.898114972e-05f;
    s = s * x2 - 8.024327471e-04f;
    s = s * x2 + 5.190050787e-03f;
    s = s * x2 - 2.685480719e-02f;
    s = s * x2 + 1.128361240e-01f;
    s = s * x2 - 3.761262884e-01f;
    s = s * x2 + 1.28379167e-01f;
    s = x + s * x;
    float u = 1.0f / kiln_bits2f(b > 0x3f800000u ? (b < 0x40800000u ? b : 0x40800000u) : 0x3f800000u);
    float g = -1.207841205e-02f;
    g = g * u + 4.146644258e-02f;
    g = g * u - 3.244636422e-03f;
    g = g * u - 2.106054580e-01f;
    g = g * u + 4.749725383e-01f;
    g = g * u - 4.620630900e-01f;
    g = g * u + 3.947375144e-02f;
    g = g * u + 5.594154194e-01f;
    g = g * u + 2.469902555e-04f;
    float l = 1.0f - kiln_expf(-x2) * g;
    float y = copysignf(b < 0x3f800000u ? s : l, a);
    return a != a ? a : y;
}

/* The fused activation's clamp (Relu, Clip folded into a Conv or Gemm, and
 * depthwise and pooling epilogues): v in [lo, hi], NaN stays NaN. */
KILN_SCALAR float kiln_clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* ---- operations, per class ---- */

#define KILN_FLOAT_OPS(S, T, SQRT, EXP, LOG, TANH, ERF, POW)                               \
    KILN_SCALAR T kiln_add_##S(T a, T b) { return a + b; }                               \
    KILN_SCALAR T kiln_sub_##S(T a, T b) { return a - b; }                               \
    KILN_SCALAR T kiln_mul_##S(T a, T b) { return a * b; }                               \
    KILN_SCALAR T kiln_div_##S(T a, T b) { return a / b; }                               \
    /* x^2 as x*x, the correctly rounded square (decomposed LayerNorm squares) */          \
    KILN_SCALAR T kiln_pow_##S(T a, T b) { return b == (T)2 ? a * a : POW(a, b); }       \
    KILN_SCALAR T kiln_min_##S(T a, T b) { return (a != a || b != b) ? a + b : (a < b ? a : b); } \
    KILN_SCALAR T kiln_max_##S(T a, T b) { return (a != a || b != b) ? a + b : (a > b ? a : b); } \
    KILN_SCALAR T kiln_neg_##S(T a) { return -a; }                                       \
    KILN_SCALAR T kiln_abs_##S(T a) { return a < 0 ? -a : a; }                           \
    KILN_SCALAR T kiln_sqrt_##S(T a) { return SQRT(a); }                                 \
    KILN_SCALAR KILN_ALWAYS_INLINE T kiln_exp_##S(T a) { return EXP(a); }                                   \
    KILN_SCALAR T kiln_log_##S(T a) { return LOG(a); }                                   \
    KILN_SCALAR T kiln_relu_##S(T a) { return a > 0 ? a : (T)0; }                        \
    KILN_SCALAR T kiln_leakyrelu_##S(T a, T alpha) { return a >= 0 ? a : a * alpha; }   \
    KILN_SCALAR KILN_ALWAYS_INLINE T kiln_sigmoid_##S(T a) {                                                \
        return a >= 0 ? (T)1 / ((T)1 + EXP(-a)) : EXP(a) / ((T)1 + EXP(a)); }             \
    KILN_SCALAR T kiln_tanh_##S(T a) { return TANH(a); }                                 \
    KILN_SCALAR KILN_ALWAYS_INLINE T kiln_erf_##S(T a) { return ERF(a); }

KILN_FLOAT_OPS(f32, float, sqrtf, kiln_expf, logf, tanhf, kiln_erff, powf)
KILN_FLOAT_OPS(f64, double, sqrt, exp, log, tanh, erf, pow)

/* More float functions; F is the libm suffix ("f" for float, "" for double). */
#define KILN_FLOAT_OPS2(S, T, F)                                                                   \
    KILN_SCALAR T kiln_reciprocal_##S(T a) { return (T)1 / a; }                                  \
    KILN_SCALAR T kiln_floor_##S(T a) { return floor##F(a); }                                    \
    KILN_SCALAR T kiln_ceil_##S(T a) { return ceil##F(a); }                                      \
    KILN_SCALAR T kiln_round_##S(T a) { return nearbyint##F(a); } /* half to even */             \
    KILN_SCALAR T kiln_sin_##S(T a) { return sin##F(a); }                                        \
    KILN_SCALAR T kiln_cos_##S(T a) { return cos##F(a); }                                        \
    KILN_SCALAR T kiln_tan_##S(T a) { return tan##F(a); }                                        \
    KILN_SCALAR T kiln_asin_##S(T a) { return asin##F(a); }                                      \
    KILN_SCALAR T kiln_acos_##S(T a) { return acos##F(a); }                                      \
    KILN_SCALAR T kiln_atan_##S(T a) { return atan##F(a); }                                      \
    KILN_SCALAR T kiln_sinh_##S(T a) { return sinh##F(a); }                                      \
    KILN_SCALAR T kiln_cosh_##S(T a) { return cosh##F(a); }                                      \
    KILN_SCALAR T kiln_asinh_##S(T a) { return asinh##F(a); }                                    \
    KILN_SCALAR T kiln_acosh_##S(T a) { return acosh##F(a); }                                    \
    KILN_SCALAR T kiln_atanh_##S(T a) { return atanh##F(a); }                                    \
    KILN_SCALAR T kiln_softplus_##S(T a) { return a > 20 ? a : log1p##F(exp##F(a)); }            \
    KILN_SCALAR T kiln_softsign_##S(T a) { return a / ((T)1 + (a < 0 ? -a : a)); }               \
    KILN_SCALAR T kiln_hardswish_##S(T a) {                                                      \
        T h = a / 6 + (T)0.5; return a * (h < 0 ? 0 : (h > 1 ? 1 : h)); }                         \
    KILN_SCALAR T kiln_elu_##S(T a, T al) { return a < 0 ? al * (exp##F(a) - 1) : a; }          \
    KILN_SCALAR T kiln_celu_##S(T a, T al) {                                                     \
        return (a > 0 ? a : 0) + (T)fmin##F(0, al * (exp##F(a / al) - 1)); }                       \
    KILN_SCALAR T kiln_selu_##S(T a, T al, T ga) { return a > 0 ? ga * a : ga * (al * exp##F(a) - al); } \
    KILN_SCALAR T kiln_hardsigmoid_##S(T a, T al, T be) {                                        \
        T h = al * a + be; return h < 0 ? 0 : (h > 1 ? 1 : h); }                                   \
    KILN_SCALAR T kiln_thresholdedrelu_##S(T a, T al) { return a > al ? a : 0; }                \
    KILN_SCALAR T kiln_shrink_##S(T a, T bias, T lambd) {                                        \
        return a < -lambd ? a + bias : (a > lambd ? a - bias : 0); }                               \
    KILN_SCALAR T kiln_fmod_##S(T a, T b) { return fmod##F(a, b); }                              \
    KILN_SCALAR T kiln_mod_##S(T a, T b) { return fmod##F(a, b); }                               \
    KILN_SCALAR T kiln_prelu_##S(T a, T s) { return a < 0 ? a * s : a; }                        \
    KILN_SCALAR T kiln_sign_##S(T a) { return a > 0 ? 1 : (a < 0 ? -1 : a); }                   \
    KILN_SCALAR uint64_t kiln_isnan_##S(T a) { return a != a; }                                  \
    KILN_SCALAR uint64_t kiln_isinf_##S(T a, T neg, T pos) {                                     \
        return (a == (T)INFINITY && pos != 0) || (a == -(T)INFINITY && neg != 0); }                \
    KILN_SCALAR uint64_t kiln_equal_##S(T a, T b) { return a == b; }                             \
    KILN_SCALAR uint64_t kiln_less_##S(T a, T b) { return a < b; }                               \
    KILN_SCALAR uint64_t kiln_greater_##S(T a, T b) { return a > b; }                            \
    KILN_SCALAR uint64_t kiln_lessorequal_##S(T a, T b) { return a <= b; }                       \
    KILN_SCALAR uint64_t kiln_greaterorequal_##S(T a, T b) { return a >= b; }

KILN_FLOAT_OPS2(f32, float, f)
KILN_FLOAT_OPS2(f64, double, )

#define KILN_INT_OPS2(S, T)                                                                        \
    KILN_SCALAR uint64_t kiln_equal_##S(T a, T b) { return a == b; }                             \
    KILN_SCALAR uint64_t kiln_less_##S(T a, T b) { return a < b; }                               \
    KILN_SCALAR uint64_t kiln_greater_##S(T a, T b) { return a > b; }                            \
    KILN_SCALAR uint64_t kiln_lessorequal_##S(T a, T b) { return a <= b; }                       \
    KILN_SCALAR uint64_t kiln_greaterorequal_##S(T a, T b) { return a >= b; }

KILN_INT_OPS2(i64, int64_t)
KILN_INT_OPS2(u64, uint64_t)
KILN_SCALAR int64_t kiln_sign_i64(int64_t a) { return a > 0 ? 1 : (a < 0 ? -1 : 0); }
KILN_SCALAR int64_t kiln_prelu_i64(int64_t a, int64_t s) { return a < 0 ? (int64_t)((uint64_t)a * (uint64_t)s) : a; }
KILN_SCALAR uint64_t kiln_sign_u64(uint64_t a) { return a > 0; }
KILN_SCALAR uint64_t kiln_prelu_u64(uint64_t a, uint64_t s) { (void)s; return a; }

/* Mod with fmod=0: the result takes the divisor's sign (Python's %); 0 for b == 0. */
KILN_SCALAR int64_t kiln_mod_i64(int64_t a, int64_t b) {
    if (b == 0) return 0;
    int64_t r = b == -1 ? 0 : a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
KILN_SCALAR int64_t kiln_fmod_i64(int64_t a, int64_t b) { return b == 0 || b == -1 ? 0 : a % b; }
KILN_SCALAR uint64_t kiln_mod_u64(uint64_t a, uint64_t b) { return b == 0 ? 0 : a % b; }
KILN_SCALAR uint64_t kiln_fmod_u64(uint64_t a, uint64_t b) { return b == 0 ? 0 : a % b; }
KILN_SCALAR uint64_t kiln_not_u64(uint64_t a) { return !a; }
KILN_SCALAR uint64_t kiln_and_u64(uint64_t a, uint64_t b) { return a && b; }
KILN_SCALAR uint64_t kiln_or_u64(uint64_t a, uint64_t b) { return a || b; }
KILN_SCALAR uint64_t kiln_xor_u64(uint64_t a, uint64_t b) { return !a != !b; }
KILN_SCALAR uint64_t kiln_shl_u64(uint64_t a, uint64_t b) { return b >= 64 ? 0 : a << b; }
KILN_SCALAR uint64_t kiln_shr_u64(uint64_t a, uint64_t b) { return b >= 64 ? 0 : a >> b; }

KILN_SCALAR int64_t kiln_ipow(int64_t a, int64_t b) {
    if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
    uint64_t r = 1, x = (uint64_t)a;
    while (b) { if (b & 1) r *= x; x *= x; b >>= 1; }
    return (int64_t)r;
}

KILN_SCALAR int64_t kiln_add_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
KILN_SCALAR int64_t kiln_sub_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
KILN_SCALAR int64_t kiln_mul_i64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
KILN_SCALAR int64_t kiln_div_i64(int64_t a, int64_t b) {
    return b == 0 ? 0 : (b == -1 ? (int64_t)(0 - (uint64_t)a) : a / b); }
KILN_SCALAR int64_t kiln_pow_i64(int64_t a, int64_t b) { return kiln_ipow(a, b); }
KILN_SCALAR int64_t kiln_min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
KILN_SCALAR int64_t kiln_max_i64(int64_t a, int64_t b) { return a > b ? a : b; }
KILN_SCALAR int64_t kiln_neg_i64(int64_t a) { return (int64_t)(0 - (uint64_t)a); }
KILN_SCALAR int64_t kiln_abs_i64(int64_t a) { return a < 0 ? kiln_neg_i64(a) : a; }
KILN_SCALAR int64_t kiln_relu_i64(int64_t a) { return a > 0 ? a : 0; }

KILN_SCALAR uint64_t kiln_add_u64(uint64_t a, uint64_t b) { return a + b; }
KILN_SCALAR uint64_t kiln_sub_u64(uint64_t a, uint64_t b) { return a - b; }
KILN_SCALAR uint64_t kiln_mul_u64(uint64_t a, uint64_t b) { return a * b; }
KILN_SCALAR uint64_t kiln_div_u64(uint64_t a, uint64_t b) { return b == 0 ? 0 : a / b; }
KILN_SCALAR uint64_t kiln_pow_u64(uint64_t a, uint64_t b) { return (uint64_t)kiln_ipow((int64_t)a, (int64_t)b); }
KILN_SCALAR uint64_t kiln_min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
KILN_SCALAR uint64_t kiln_max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }
KILN_SCALAR uint64_t kiln_neg_u64(uint64_t a) { return 0 - a; }
KILN_SCALAR uint64_t kiln_abs_u64(uint64_t a) { return a; }
KILN_SCALAR uint64_t kiln_relu_u64(uint64_t a) { return a; }

#endif
