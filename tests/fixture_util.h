/* Helpers for the tests that check bnkit against golden fixtures (test_bn_torch.c,
 * test_bn_design.c, test_nn_torch.c). A fixture set is a folder tests/fixtures/<set>/ with
 * cases.txt (the generator's list of cases) and one folder per case holding params.txt (one
 * key=value line per key) and .npy arrays. Every helper ends the current cmocka test with
 * fail_msg, naming the file, instead of returning an error.
 *
 * The second half is the BN fixture case shared by the torch and design sets: the same arrays,
 * loaded the same way, and one run of forward (inference, or training with the running
 * statistics) and backward on the selected kernel with every output compared with its
 * expectation. */
#ifndef BNKIT_FIXTURE_UTIL_H
#define BNKIT_FIXTURE_UTIL_H

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/bn.h"
#include "bnkit/npy.h"
#include "test_util.h"

/* ---- Paths, numbers, params.txt ------------------------------------------------------------ */

/* buf[size] = the formatted path; fails the test when it does not fit. */
static inline void bnk_fx_path(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void bnk_fx_path(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) fail_msg("path too long: %s", buf);
}

/* The value of key in file path as a double (strtod: "inf" and "nan" pass). */
static inline double bnk_fx_parse_double(const char *path, const char *key, const char *val) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (end == val || *end != '\0' || errno != 0) {
        fail_msg("%s: %s: not a number: '%s'", path, key, val);
    }
    return v;
}

static inline int64_t bnk_fx_parse_int(const char *path, const char *key, const char *val) {
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (end == val || *end != '\0' || errno != 0) {
        fail_msg("%s: %s: not an integer: '%s'", path, key, val);
    }
    return (int64_t)v;
}

/* 0 or 1. */
static inline bool bnk_fx_parse_bool(const char *path, const char *key, const char *val) {
    int64_t v = bnk_fx_parse_int(path, key, val);
    if (v != 0 && v != 1) fail_msg("%s: %s: expected 0 or 1, got '%s'", path, key, val);
    return v == 1;
}

/* Stores the value val of keys[k] (read from path) into ctx. */
typedef void (*bnk_fx_param_fn)(void *ctx, const char *path, size_t k, const char *val);

/* Reads dir/params.txt, which must give every key of keys[n_keys] exactly once (blank lines
 * are skipped), and calls set for each. The file is closed before any check can fail. */
static inline void bnk_fx_read_params(const char *dir, const char *const *keys, size_t n_keys,
                                      bnk_fx_param_fn set, void *ctx) {
    enum { MAX_LINES = 64, MAX_KEYS = 64 };
    bool seen[MAX_KEYS] = {false};
    char path[1024], lines[MAX_LINES][320];
    int n_lines = 0;
    if (n_keys > MAX_KEYS) fail_msg("%s: more than %d keys", dir, MAX_KEYS);
    bnk_fx_path(path, sizeof path, "%s/params.txt", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("%s: cannot open: %s", path, strerror(errno));
    while (n_lines < MAX_LINES && fgets(lines[n_lines], sizeof lines[0], f) != NULL) n_lines++;
    bool too_long = !feof(f);
    fclose(f);
    if (too_long) fail_msg("%s: more than %d lines", path, MAX_LINES);

    for (int l = 0; l < n_lines; l++) {
        char *line = lines[l];
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        char *eq = strchr(line, '=');
        if (eq == NULL) fail_msg("%s: line without '=': '%s'", path, line);
        *eq = '\0';
        size_t k = 0;
        while (k < n_keys && strcmp(keys[k], line) != 0) k++;
        if (k == n_keys) fail_msg("%s: unknown key '%s'", path, line);
        if (seen[k]) fail_msg("%s: key '%s' given twice", path, line);
        seen[k] = true;
        set(ctx, path, k, eq + 1);
    }
    for (size_t k = 0; k < n_keys; k++) {
        if (!seen[k]) fail_msg("%s: missing key '%s'", path, keys[k]);
    }
}

/* ---- Arrays, cases, kernels ----------------------------------------------------------------- */

/* Reads dir/stem.npy into arr. optional: returns false, arr untouched, when the file does not
 * exist. */
static inline bool bnk_fx_load_npy(const char *dir, const char *stem, bnk_npy *arr, bool optional) {
    char path[1024];
    bnk_fx_path(path, sizeof path, "%s/%s.npy", dir, stem);
    if (optional) {
        FILE *f = fopen(path, "rb");
        if (f == NULL) return false;
        fclose(f);
    }
    if (bnk_npy_read(path, arr) != BNK_OK) fail_msg("%s: %s", path, bnk_errmsg());
    return true;
}

/* Reads dir/stem.npy (required) and converts it to float32. */
static inline void bnk_fx_load_f32(const char *dir, const char *stem, bnk_npy *arr) {
    bnk_fx_load_npy(dir, stem, arr, false);
    if (bnk_npy_to_f32(arr) != BNK_OK) fail_msg("%s/%s.npy: %s", dir, stem, bnk_errmsg());
}

/* The file path (a fixture set's cases.txt, written by its generator) and names[n], the cases
 * the test runs, list the same cases: no generated case goes unchecked. */
static inline void bnk_fx_check_case_index(const char *path, const char *const *names, size_t n) {
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("%s: cannot open: %s", path, strerror(errno));
    char line[256], missing[256] = "";
    size_t listed = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        listed++;
        size_t i = 0;
        while (i < n && strcmp(names[i], line) != 0) i++;
        if (i == n && missing[0] == '\0') snprintf(missing, sizeof missing, "%s", line);
    }
    fclose(f);
    if (missing[0] != '\0') fail_msg("%s lists '%s', which this test does not run", path, missing);
    assert_int_equal(listed, n);
}

/* A cmocka test of one fixture case: test(&state), then teardown(&state) even after a failed
 * check. */
static inline struct CMUnitTest bnk_fx_case_test(const char *name, CMUnitTestFunction test,
                                                 CMFixtureFunction teardown, void *state) {
    return (struct CMUnitTest){
        .name = name,
        .test_func = test,
        .setup_func = NULL,
        .teardown_func = teardown,
        .initial_state = state,
    };
}

/* Calls run(ctx, kernel) with each compiled BN kernel selected in turn (bnk_bn_kernel_at), then
 * selects again the kernel that was selected before. */
static inline void bnk_fx_each_bn_kernel(void (*run)(void *ctx, const char *kernel), void *ctx) {
    int count = bnk_bn_kernel_count();
    assert_true(count >= 1);
    char initial[64];
    snprintf(initial, sizeof initial, "%s", bnk_bn_kernel_name());
    for (int i = 0; i < count; i++) {
        const char *kernel = bnk_bn_kernel_at(i);
        assert_non_null(kernel);
        if (bnk_bn_kernel_select(kernel) != BNK_OK) {
            fail_msg("cannot select kernel '%s': %s", kernel, bnk_errmsg());
        }
        assert_string_equal(bnk_bn_kernel_name(), kernel);
        run(ctx, kernel);
    }
    assert_int_equal(bnk_bn_kernel_select(initial), BNK_OK);
}

/* ---- BN cases (tests/fixtures/torch, tests/fixtures/design) -------------------------------- */

/* The arrays of a case, <name>.npy: float32 inputs, then the expectations (float32 or
 * float64). */
enum {
    BNK_FX_X,
    BNK_FX_DY,
    BNK_FX_GAMMA,
    BNK_FX_BETA,
    BNK_FX_RUNNING_MEAN,
    BNK_FX_RUNNING_VAR,
    BNK_FX_Y, /* the first expectation */
    BNK_FX_RUNNING_MEAN_OUT,
    BNK_FX_RUNNING_VAR_OUT,
    BNK_FX_DX,
    BNK_FX_DGAMMA,
    BNK_FX_DBETA,
    BNK_FX_COUNT
};

static inline const char *bnk_fx_bn_file_name(int f) {
    static const char *const names[BNK_FX_COUNT] = {
        "x",
        "dy",
        "gamma",
        "beta",
        "running_mean",
        "running_var",
        "y",
        "running_mean_out",
        "running_var_out",
        "dx",
        "dgamma",
        "dbeta",
    };
    return names[f];
}

/* layout=nc|nchw|nhwc in params.txt. */
static inline bnk_layout bnk_fx_parse_layout(const char *path, const char *val) {
    if (strcmp(val, "nc") == 0) return BNK_LAYOUT_NC;
    if (strcmp(val, "nchw") == 0) return BNK_LAYOUT_NCHW;
    if (strcmp(val, "nhwc") == 0) return BNK_LAYOUT_NHWC;
    fail_msg("%s: unknown layout '%s'", path, val);
    return BNK_LAYOUT_NC; /* not reached */
}

/* Written into dgamma/dbeta when scale/center is off: the backward must leave them alone. */
#define BNK_FX_SENTINEL 42.0f

/* Tolerances of a case, |got - ref| <= atol + rtol*|ref| (each test says why). */
typedef struct bnk_fx_bn_tol {
    double y_atol, y_rtol;
    double running_atol, running_rtol;
    double dx_atol, dx_rtol;
    double dgamma_atol, dbeta_atol, dparam_rtol;
} bnk_fx_bn_tol;

/* One case: what the test reads from params.txt, then everything bnk_fx_bn_load loads or
 * allocates (freed by bnk_fx_bn_teardown, which cmocka runs even after a failed check). */
typedef struct bnk_fx_bn_case {
    const char *name;
    /* set by the test from params.txt */
    bnk_bn_config cfg;
    bnk_layout layout;
    bool train;
    int64_t step;
    bool gamma_beta_always; /* gamma.npy and beta.npy exist even when scale/center is off */
    bnk_fx_bn_tol tol;
    /* set by bnk_fx_bn_load */
    bnk_bn_shape shape;
    size_t numel;
    bnk_npy file[BNK_FX_COUNT];
    float *y, *dx, *run_mean, *run_var, *dgamma, *dbeta;
    double *saved;
    double *ref; /* scratch: a float32 expectation promoted to double */
} bnk_fx_bn_case;

/* Whether the case has array f. */
static inline bool bnk_fx_bn_wanted(const bnk_fx_bn_case *c, int f) {
    switch (f) {
    case BNK_FX_DY:
    case BNK_FX_RUNNING_MEAN_OUT:
    case BNK_FX_RUNNING_VAR_OUT:
    case BNK_FX_DX:
        return c->train;
    case BNK_FX_GAMMA:
        return c->cfg.scale || c->gamma_beta_always;
    case BNK_FX_BETA:
        return c->cfg.center || c->gamma_beta_always;
    case BNK_FX_DGAMMA:
        return c->train && c->cfg.scale;
    case BNK_FX_DBETA:
        return c->train && c->cfg.center;
    default:
        return true;
    }
}

/* Sets c->shape from x's dimensions in the case's layout. */
static inline void bnk_fx_bn_shape_from_x(bnk_fx_bn_case *c) {
    const bnk_npy *x = &c->file[BNK_FX_X];
    bnk_bn_shape *s = &c->shape;
    s->layout = c->layout;
    if (c->layout == BNK_LAYOUT_NC) {
        if (x->ndim != 2) fail_msg("%s: x.npy: nc wants 2 dims, has %d", c->name, x->ndim);
        s->n = x->shape[0];
        s->c = x->shape[1];
        s->h = s->w = 1;
    } else {
        if (x->ndim != 4) fail_msg("%s: x.npy: wants 4 dims, has %d", c->name, x->ndim);
        bool nchw = c->layout == BNK_LAYOUT_NCHW;
        s->n = x->shape[0];
        s->c = x->shape[nchw ? 1 : 3];
        s->h = x->shape[nchw ? 2 : 1];
        s->w = x->shape[nchw ? 3 : 2];
    }
    c->numel = x->count;
}

/* Loads every array the case has from dir as stored (the test then checks or converts their
 * dtypes), checks their shapes against x's and allocates the outputs. */
static inline void bnk_fx_bn_load(bnk_fx_bn_case *c, const char *dir) {
    for (int f = 0; f < BNK_FX_COUNT; f++) {
        if (bnk_fx_bn_wanted(c, f))
            bnk_fx_load_npy(dir, bnk_fx_bn_file_name(f), &c->file[f], false);
    }
    bnk_fx_bn_shape_from_x(c);
    for (int f = 0; f < BNK_FX_COUNT; f++) {
        if (!bnk_fx_bn_wanted(c, f)) continue;
        const bnk_npy *a = &c->file[f], *x = &c->file[BNK_FX_X];
        const char *stem = bnk_fx_bn_file_name(f);
        bool tensor = f == BNK_FX_X || f == BNK_FX_DY || f == BNK_FX_Y || f == BNK_FX_DX;
        if (tensor) {
            bool same = a->ndim == x->ndim;
            for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == x->shape[d];
            if (!same) fail_msg("%s: %s.npy: shape differs from x.npy", c->name, stem);
        } else if (a->ndim != 1 || a->shape[0] != c->shape.c) {
            fail_msg("%s: %s.npy: expected shape (%lld,)", c->name, stem, (long long)c->shape.c);
        }
    }
    size_t ch = (size_t)c->shape.c;
    c->y = malloc(c->numel * sizeof *c->y);
    c->dx = malloc(c->numel * sizeof *c->dx);
    c->ref = malloc(c->numel * sizeof *c->ref);
    c->run_mean = malloc(ch * sizeof *c->run_mean);
    c->run_var = malloc(ch * sizeof *c->run_var);
    c->dgamma = malloc(ch * sizeof *c->dgamma);
    c->dbeta = malloc(ch * sizeof *c->dbeta);
    c->saved = malloc(BNK_BN_SAVED_FIELDS * ch * sizeof *c->saved);
    if (!c->y || !c->dx || !c->ref || !c->run_mean || !c->run_var || !c->dgamma || !c->dbeta ||
        !c->saved) {
        fail_msg("%s: out of memory", c->name);
    }
}

/* cmocka teardown of a case (state: a bnk_fx_bn_case): frees it, keeping its name. */
static inline int bnk_fx_bn_teardown(void **state) {
    bnk_fx_bn_case *c = *state;
    for (int f = 0; f < BNK_FX_COUNT; f++) bnk_npy_free(&c->file[f]);
    free(c->y);
    free(c->dx);
    free(c->ref);
    free(c->run_mean);
    free(c->run_var);
    free(c->dgamma);
    free(c->dbeta);
    free(c->saved);
    const char *name = c->name;
    memset(c, 0, sizeof *c);
    c->name = name;
    return 0;
}

/* The float32 input f, or NULL when the case does not have it. */
static inline const float *bnk_fx_bn_input(const bnk_fx_bn_case *c, int f) {
    const bnk_npy *a = &c->file[f];
    if (a->data == NULL) return NULL;
    if (a->dtype != BNK_DTYPE_F32)
        fail_msg("%s: %s.npy: expected float32", c->name, bnk_fx_bn_file_name(f));
    return a->data;
}

/* Compares got[0..count) with the expectation f (float32 promoted to double, or float64).
 * verbose: also prints the largest fraction of the tolerance used. */
static inline void bnk_fx_bn_check(const bnk_fx_bn_case *c, const char *run, const char *what,
                                   const float *got, int f, double atol, double rtol,
                                   bool verbose) {
    const bnk_npy *e = &c->file[f];
    const double *ref = e->data;
    if (e->dtype == BNK_DTYPE_F32) {
        const float *ev = e->data;
        for (size_t i = 0; i < e->count; i++) c->ref[i] = ev[i];
        ref = c->ref;
    }
    char label[256];
    snprintf(label, sizeof label, "%s [%s]: %s", c->name, run, what);
    if (verbose) {
        double worst = 0.0;
        for (size_t i = 0; i < e->count; i++) {
            worst = fmax(worst, fabs(got[i] - ref[i]) / (atol + rtol * fabs(ref[i])));
        }
        print_message("  %-52s %.3f of tolerance\n", label, worst);
    }
    bnk_test_close_f32(label, got, ref, e->count, atol, rtol);
}

static inline void bnk_fx_fill(float *a, size_t count, float v) {
    for (size_t i = 0; i < count; i++) a[i] = v;
}

/* dgamma/dbeta (what) of a disabled parameter: the backward must not have touched the
 * sentinel. */
static inline void bnk_fx_bn_check_untouched(const bnk_fx_bn_case *c, const char *run,
                                             const char *what, const float *g) {
    for (size_t i = 0; i < (size_t)c->shape.c; i++) {
        if (g[i] != BNK_FX_SENTINEL) {
            fail_msg("%s [%s]: %s is off but %s[%zu] changed to %g", c->name, run,
                     what[1] == 'g' ? "scale" : "center", what, i, (double)g[i]);
        }
    }
}

/* One run of the case on the selected kernel: forward (inference, or training from a fresh copy
 * of the running statistics) and, when training, backward, every output checked. null_off: pass
 * NULL for a disabled gamma/beta instead of the stored (to-be-ignored) values. */
static inline void bnk_fx_bn_run(const bnk_fx_bn_case *c, const char *kernel, bool null_off,
                                 bool verbose) {
    const bnk_bn_config *cfg = &c->cfg;
    const bnk_fx_bn_tol *tol = &c->tol;
    size_t ch = (size_t)c->shape.c;
    char run[96];
    snprintf(run, sizeof run, "kernel %s%s", kernel, null_off ? ", NULL gamma/beta" : "");
    if (bnk_bn_config_validate(cfg) != BNK_OK) {
        fail_msg("%s: config rejected: %s", c->name, bnk_errmsg());
    }
    const float *x = bnk_fx_bn_input(c, BNK_FX_X);
    const float *gamma = null_off && !cfg->scale ? NULL : bnk_fx_bn_input(c, BNK_FX_GAMMA);
    const float *beta = null_off && !cfg->center ? NULL : bnk_fx_bn_input(c, BNK_FX_BETA);
    const float *rm = bnk_fx_bn_input(c, BNK_FX_RUNNING_MEAN);
    const float *rv = bnk_fx_bn_input(c, BNK_FX_RUNNING_VAR);
    bnk_fx_fill(c->y, c->numel, NAN); /* an element the kernel does not write fails the check */
    bnk_status st;

    if (!c->train) {
        st = bnk_bn_forward_infer(cfg, &c->shape, c->y, x, gamma, beta, rm, rv);
        if (st != BNK_OK) fail_msg("%s [%s]: infer: %s", c->name, run, bnk_errmsg());
        bnk_fx_bn_check(c, run, "y", c->y, BNK_FX_Y, tol->y_atol, tol->y_rtol, verbose);
        return;
    }

    memcpy(c->run_mean, rm, ch * sizeof *rm); /* fresh running statistics for every run */
    memcpy(c->run_var, rv, ch * sizeof *rv);
    st = bnk_bn_forward_train(cfg, &c->shape, c->step, c->y, c->saved, c->run_mean, c->run_var, x,
                              gamma, beta);
    if (st != BNK_OK) fail_msg("%s [%s]: train: %s", c->name, run, bnk_errmsg());
    bnk_fx_bn_check(c, run, "y", c->y, BNK_FX_Y, tol->y_atol, tol->y_rtol, verbose);
    bnk_fx_bn_check(c, run, "running_mean", c->run_mean, BNK_FX_RUNNING_MEAN_OUT, tol->running_atol,
                    tol->running_rtol, verbose);
    bnk_fx_bn_check(c, run, "running_var", c->run_var, BNK_FX_RUNNING_VAR_OUT, tol->running_atol,
                    tol->running_rtol, verbose);

    /* backward accumulates into dgamma/dbeta: zero them, or plant a sentinel when off */
    bnk_fx_fill(c->dgamma, ch, cfg->scale ? 0.0f : BNK_FX_SENTINEL);
    bnk_fx_fill(c->dbeta, ch, cfg->center ? 0.0f : BNK_FX_SENTINEL);
    bnk_fx_fill(c->dx, c->numel, NAN);
    st = bnk_bn_backward(cfg, &c->shape, c->dx, c->dgamma, c->dbeta, bnk_fx_bn_input(c, BNK_FX_DY),
                         x, c->y, gamma, c->saved);
    if (st != BNK_OK) fail_msg("%s [%s]: backward: %s", c->name, run, bnk_errmsg());
    bnk_fx_bn_check(c, run, "dx", c->dx, BNK_FX_DX, tol->dx_atol, tol->dx_rtol, verbose);
    if (cfg->scale) {
        bnk_fx_bn_check(c, run, "dgamma", c->dgamma, BNK_FX_DGAMMA, tol->dgamma_atol,
                        tol->dparam_rtol, verbose);
    } else {
        bnk_fx_bn_check_untouched(c, run, "dgamma", c->dgamma);
    }
    if (cfg->center) {
        bnk_fx_bn_check(c, run, "dbeta", c->dbeta, BNK_FX_DBETA, tol->dbeta_atol, tol->dparam_rtol,
                        verbose);
    } else {
        bnk_fx_bn_check_untouched(c, run, "dbeta", c->dbeta);
    }
}

#endif /* BNKIT_FIXTURE_UTIL_H */
