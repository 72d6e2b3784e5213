/* Shared helpers for bnkit's tests (cmocka). */
#ifndef BNKIT_TEST_UTIL_H
#define BNKIT_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "core/rng.h"

/* Checks |got - ref| <= atol + rtol*|ref| for element i of label; on a violation prints the
 * label, index, expected and got values and fails the current test. NaN never passes unless
 * both are NaN. */
static inline void bnk_test_close_at(const char *label, size_t i, double got, double ref,
                                     double atol, double rtol) {
    if (isnan(got) && isnan(ref)) return;
    if (!(fabs(got - ref) <= atol + rtol * fabs(ref))) {
        fail_msg("%s: index %zu: expected %.10g, got %.10g (|diff| %.3g > atol %.3g + rtol %.3g)",
                 label, i, ref, got, fabs(got - ref), atol, rtol);
    }
}

/* The same check for every i < count; the first violation fails the test. */
static inline void bnk_test_close_f64(const char *label, const double *got, const double *ref,
                                      size_t count, double atol, double rtol) {
    for (size_t i = 0; i < count; i++) bnk_test_close_at(label, i, got[i], ref[i], atol, rtol);
}

/* Same for a float result against a double reference. */
static inline void bnk_test_close_f32(const char *label, const float *got, const double *ref,
                                      size_t count, double atol, double rtol) {
    for (size_t i = 0; i < count; i++) bnk_test_close_at(label, i, got[i], ref[i], atol, rtol);
}

/* Deterministic test data from the library's own generator (core/rng.h: splitmix64, explicit
 * state); these names only keep the tests' spelling. */
static inline uint64_t bnk_test_next(uint64_t *state) {
    return bnk__rng_next(state);
}

/* Uniform in [0, 1). */
static inline double bnk_test_uniform(uint64_t *state) {
    return bnk__rng_uniform(state);
}

/* Standard normal (Box-Muller). */
static inline double bnk_test_normal(uint64_t *state) {
    return bnk__rng_normal(state);
}

#endif /* BNKIT_TEST_UTIL_H */
