/* Shared helpers for bnkit's tests (cmocka). */
#ifndef BNKIT_TEST_UTIL_H
#define BNKIT_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* Checks |got[i] - ref[i]| <= atol + rtol*|ref[i]| for every i; on the first violation prints
 * the label, index, expected and got values and fails the current test. NaN never passes
 * unless both are NaN. */
static inline void bnk_test_close_f64(const char *label, const double *got, const double *ref,
                                      size_t count, double atol, double rtol) {
    for (size_t i = 0; i < count; i++) {
        double g = got[i], r = ref[i];
        if (isnan(g) && isnan(r)) continue;
        if (!(fabs(g - r) <= atol + rtol * fabs(r))) {
            fail_msg(
                "%s: index %zu: expected %.10g, got %.10g (|diff| %.3g > atol %.3g + rtol %.3g)",
                label, i, r, g, fabs(g - r), atol, rtol);
        }
    }
}

/* Same for a float result against a double reference. */
static inline void bnk_test_close_f32(const char *label, const float *got, const double *ref,
                                      size_t count, double atol, double rtol) {
    for (size_t i = 0; i < count; i++) {
        double g = got[i], r = ref[i];
        if (isnan(g) && isnan(r)) continue;
        if (!(fabs(g - r) <= atol + rtol * fabs(r))) {
            fail_msg(
                "%s: index %zu: expected %.10g, got %.10g (|diff| %.3g > atol %.3g + rtol %.3g)",
                label, i, r, g, fabs(g - r), atol, rtol);
        }
    }
}

/* Deterministic generator for test data (splitmix64), explicit state. */
static inline uint64_t bnk_test_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double bnk_test_uniform(uint64_t *state) {
    return (double)(bnk_test_next(state) >> 11) * 0x1.0p-53;
}

/* Standard normal (Box-Muller). */
static inline double bnk_test_normal(uint64_t *state) {
    double u1 = bnk_test_uniform(state), u2 = bnk_test_uniform(state);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif /* BNKIT_TEST_UTIL_H */
