/* Shared helpers for bnkit's tests (cmocka): float comparisons, deterministic random data, a
 * status check, whole-file reads and a per-run temporary directory. */
#ifndef BNKIT_TEST_UTIL_H
#define BNKIT_TEST_UTIL_H

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "bnkit/status.h"
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

/* Fails the current test unless call returns BNK_OK, naming the call, its status and message. */
#define BNK_TEST_OK(call)                                                                          \
    do {                                                                                           \
        bnk_status st_ = (call);                                                                   \
        if (st_ != BNK_OK) fail_msg("%s -> %s: %s", #call, bnk_status_str(st_), bnk_errmsg());     \
    } while (0)

/* The whole file at path, NUL-terminated (so text can be searched as a string), in a buffer the
 * caller frees; *len (if len is not NULL) = its size in bytes. Fails the test on any error. */
static inline char *bnk_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return s;
}

/* Creates a fresh directory "$TMPDIR/bnkit-<tag>-XXXXXX" (/tmp without TMPDIR) in dir[size], for
 * a test program's main() before the tests run; returns 0, or -1 after printing why. */
static inline int bnk_test_mkdtemp(char *dir, size_t size, const char *tag) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/bnkit-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return -1;
    }
    return 0;
}

/* Removes dir and the files in it (one level: the tests make no subdirectories there). */
static inline void bnk_test_remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[768];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* Offset of element (i, c, p) of an [n, C, hw] tensor in the layout of block b: 0 is NCHW, 8 and
 * 16 are oneDNN's nChw8c / nChw16c (x[((i*(C/b) + c/b)*hw + p)*b + c%b]), written from the
 * layouts' definition, independently of the library's code. */
static inline size_t bnk_test_layout_at(int64_t C, int64_t hw, int b, int64_t i, int64_t c,
                                        int64_t p) {
    if (!b) return (size_t)((i * C + c) * hw + p);
    return (size_t)(((i * (C / b) + c / b) * hw + p) * b + c % b);
}

/* dst in the layout of block db = src in the layout of block sb ([n, C, hw] each). */
static inline void bnk_test_relayout(int64_t n, int64_t C, int64_t hw, int db, float *dst, int sb,
                                     const float *src) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t p = 0; p < hw; p++)
                dst[bnk_test_layout_at(C, hw, db, i, c, p)] =
                    src[bnk_test_layout_at(C, hw, sb, i, c, p)];
}

#endif /* BNKIT_TEST_UTIL_H */
