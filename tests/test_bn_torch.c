/* test_bn_torch.c — standard batch normalization checked against PyTorch.
 *
 * The golden data under tests/fixtures/torch/<case>/ comes from torch.nn.BatchNorm1d/2d in
 * float32 (PyTorch 1.13); scripts/gen_torch_fixtures.py writes it and says how to rerun it.
 * Each case holds the inputs (x, dy, gamma, beta, running statistics), PyTorch's outputs
 * (y; for training also the updated running statistics, dx, dgamma, dbeta) and params.txt with
 * the hyperparameters in PyTorch's terms. This test maps them to a bnk_bn_config — in
 * particular bnkit's momentum is 1 - p (Keras convention) and PyTorch's momentum=None is
 * bnkit's cumulative average with step = num_batches_tracked — and runs every compiled kernel
 * on every case.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/bn.h"
#include "bnkit/npy.h"
#include "test_util.h"

#define TORCH_DIR BNK_FIXTURE_DIR "/torch"

/* Tolerances, |got - ref| <= atol + rtol*|ref|. The expected values are PyTorch's float32
 * results; the generator checks them against float64 PyTorch and finds them within 2.8e-6
 * absolute. Values are O(1..10), so a few float32 ulps are ~1e-6.
 *   y: one rounding of an affine map of x with double statistics; PyTorch applies alpha*x + beta
 *     in float, so expect a few ulps of |x*alpha| (PyTorch is 1.4e-6 off float64 at worst).
 *   running stats: a single blend of two float32 values; 1e-6 is ~8 ulps at 1.
 *   dx: a difference of terms of size |dy|*gamma/sigma that partly cancel; PyTorch forms it in
 *     float, so allow 1e-5 absolute and 1e-4 relative.
 *   dgamma, dbeta: sums of 2..60 products; PyTorch's channels-last CPU backward sums in float
 *     and is up to 2.8e-6 off float64 on NHWC.
 * When written, the ref and opt kernels used at most a quarter of these (y) and under a tenth
 * elsewhere. */
#define TOL_Y_ATOL       5e-6
#define TOL_Y_RTOL       1e-5
#define TOL_RUNNING_ATOL 1e-6
#define TOL_RUNNING_RTOL 1e-6
#define TOL_DX_ATOL      1e-5
#define TOL_DX_RTOL      1e-4
#define TOL_DPARAM_ATOL  1e-5
#define TOL_DPARAM_RTOL  1e-5

/* Written into dgamma/dbeta when scale/center is off: the backward must leave them alone. */
#define SENTINEL 42.0f

enum {
    F_X,
    F_DY,
    F_GAMMA,
    F_BETA,
    F_RUNNING_MEAN,
    F_RUNNING_VAR,
    F_Y,
    F_RUNNING_MEAN_OUT,
    F_RUNNING_VAR_OUT,
    F_DX,
    F_DGAMMA,
    F_DBETA,
    F_COUNT
};

static const char *const k_file_names[F_COUNT] = {
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

/* params.txt, in PyTorch's terms. */
typedef struct torch_params {
    bnk_layout layout;
    bool train;
    bool has_momentum; /* false: torch_momentum=none */
    double torch_momentum;
    double eps;
    bool unbiased;
    bool cumulative;
    int64_t step;
    bool center, scale;
} torch_params;

/* One case: its name, and everything it loads or allocates (freed by teardown_case, which
 * cmocka runs even after a failed check). */
typedef struct torch_case {
    const char *name;
    torch_params p;
    bnk_bn_shape shape;
    size_t numel;
    bnk_npy file[F_COUNT];
    float *y, *dx, *run_mean, *run_var, *dgamma, *dbeta;
    double *saved;
    double *ref; /* scratch: an expected array promoted to double */
} torch_case;

/* The cases, as written by scripts/gen_torch_fixtures.py (test_case_index checks this table
 * against the generator's cases.txt so that no generated case goes unchecked). */
static torch_case g_cases[] = {
    {.name = "train_nc_p01"},
    {.name = "train_nchw_p01"},
    {.name = "train_nhwc_p01"},
    {.name = "train_nc_p03_eps1e3"},
    {.name = "train_nchw_p03_eps1e3"},
    {.name = "train_nhwc_p03_eps1e3"},
    {.name = "train_nc_n2_c1"},
    {.name = "biased_nc_p001_eps1e3"},
    {.name = "biased_nchw_p001_eps1e3"},
    {.name = "biased_nhwc_p01"},
    {.name = "cumulative_nchw_step3"},
    {.name = "cumulative_nhwc_step3"},
    {.name = "cumulative_nc_step0"},
    {.name = "infer_nc"},
    {.name = "infer_nchw"},
    {.name = "infer_nhwc"},
    {.name = "noaffine_nchw_p01"},
    {.name = "noaffine_infer_nhwc"},
};
#define N_CASES (sizeof g_cases / sizeof g_cases[0])

/* ---- params.txt --------------------------------------------------------------------------- */

static double parse_double(const char *path, const char *key, const char *val) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (end == val || *end != '\0' || errno != 0) {
        fail_msg("%s: %s: not a number: '%s'", path, key, val);
    }
    return v;
}

static int64_t parse_int(const char *path, const char *key, const char *val) {
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (end == val || *end != '\0' || errno != 0) {
        fail_msg("%s: %s: not an integer: '%s'", path, key, val);
    }
    return (int64_t)v;
}

static bool parse_bool(const char *path, const char *key, const char *val) {
    int64_t v = parse_int(path, key, val);
    if (v != 0 && v != 1) fail_msg("%s: %s: expected 0 or 1, got '%s'", path, key, val);
    return v == 1;
}

static void read_params(const char *dir, torch_params *p) {
    static const char *const keys[] = {
        "layout",     "train", "torch_momentum", "eps",   "unbiased_running_var",
        "cumulative", "step",  "center",         "scale",
    };
    enum { N_KEYS = sizeof keys / sizeof keys[0], MAX_LINES = 32 };
    bool seen[N_KEYS] = {false};
    char path[1024], lines[MAX_LINES][256];
    int n_lines = 0;
    if (snprintf(path, sizeof path, "%s/params.txt", dir) >= (int)sizeof path)
        fail_msg("path too long: %s", path);
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("%s: cannot open: %s", path, strerror(errno));
    while (n_lines < MAX_LINES && fgets(lines[n_lines], sizeof lines[0], f) != NULL) n_lines++;
    bool too_long = !feof(f);
    fclose(f); /* closed before any check can fail */
    if (too_long) fail_msg("%s: more than %d lines", path, MAX_LINES);

    memset(p, 0, sizeof *p);
    for (int l = 0; l < n_lines; l++) {
        char *line = lines[l];
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        char *eq = strchr(line, '=');
        if (eq == NULL) fail_msg("%s: line without '=': '%s'", path, line);
        *eq = '\0';
        const char *key = line, *val = eq + 1;
        int k = 0;
        while (k < N_KEYS && strcmp(keys[k], key) != 0) k++;
        if (k == N_KEYS) fail_msg("%s: unknown key '%s'", path, key);
        seen[k] = true;
        if (strcmp(key, "layout") == 0) {
            if (strcmp(val, "nc") == 0) {
                p->layout = BNK_LAYOUT_NC;
            } else if (strcmp(val, "nchw") == 0) {
                p->layout = BNK_LAYOUT_NCHW;
            } else if (strcmp(val, "nhwc") == 0) {
                p->layout = BNK_LAYOUT_NHWC;
            } else {
                fail_msg("%s: unknown layout '%s'", path, val);
            }
        } else if (strcmp(key, "torch_momentum") == 0) {
            p->has_momentum = strcmp(val, "none") != 0;
            if (p->has_momentum) p->torch_momentum = parse_double(path, key, val);
        } else if (strcmp(key, "eps") == 0) {
            p->eps = parse_double(path, key, val);
        } else if (strcmp(key, "step") == 0) {
            p->step = parse_int(path, key, val);
        } else {
            bool b = parse_bool(path, key, val);
            if (strcmp(key, "train") == 0) p->train = b;
            if (strcmp(key, "unbiased_running_var") == 0) p->unbiased = b;
            if (strcmp(key, "cumulative") == 0) p->cumulative = b;
            if (strcmp(key, "center") == 0) p->center = b;
            if (strcmp(key, "scale") == 0) p->scale = b;
        }
    }
    for (int k = 0; k < N_KEYS; k++) {
        if (!seen[k]) fail_msg("%s: missing key '%s'", path, keys[k]);
    }
    if (p->cumulative == p->has_momentum) {
        fail_msg("%s: cumulative=%d contradicts torch_momentum", path, (int)p->cumulative);
    }
}

/* PyTorch's hyperparameters -> bnkit's. */
static bnk_bn_config config_from_params(const torch_params *p) {
    bnk_bn_config cfg = bnk_bn_config_default();
    if (p->has_momentum) {
        cfg.momentum = 1.0 - p->torch_momentum; /* PyTorch p = 1 - bnkit momentum */
    }
    cfg.cumulative = p->cumulative; /* PyTorch momentum=None: factor 1/(step + 1) */
    cfg.eps = p->eps;
    cfg.unbiased_running_var = p->unbiased;
    cfg.center = p->center;
    cfg.scale = p->scale;
    return cfg;
}

/* ---- arrays ------------------------------------------------------------------------------- */

static bool wanted(const torch_params *p, int f) {
    switch (f) {
    case F_GAMMA:
    case F_DGAMMA:
        return p->scale && (f == F_GAMMA || p->train);
    case F_BETA:
    case F_DBETA:
        return p->center && (f == F_BETA || p->train);
    case F_RUNNING_MEAN_OUT:
    case F_RUNNING_VAR_OUT:
    case F_DX:
    case F_DY:
        return p->train;
    default:
        return true;
    }
}

static void load_file(const char *dir, bnk_npy *arr, const char *stem) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s.npy", dir, stem) >= (int)sizeof path)
        fail_msg("path too long: %s", path);
    if (bnk_npy_read(path, arr) != BNK_OK) fail_msg("%s: %s", path, bnk_errmsg());
    if (bnk_npy_to_f32(arr) != BNK_OK) fail_msg("%s: %s", path, bnk_errmsg());
}

/* Sets tc->shape from x's dimensions in the case's layout. */
static void shape_from_x(torch_case *tc) {
    const bnk_npy *x = &tc->file[F_X];
    bnk_bn_shape *s = &tc->shape;
    s->layout = tc->p.layout;
    if (tc->p.layout == BNK_LAYOUT_NC) {
        if (x->ndim != 2) fail_msg("%s: x.npy: nc wants 2 dims, has %d", tc->name, x->ndim);
        s->n = x->shape[0];
        s->c = x->shape[1];
        s->h = s->w = 1;
    } else {
        if (x->ndim != 4) fail_msg("%s: x.npy: wants 4 dims, has %d", tc->name, x->ndim);
        bool nchw = tc->p.layout == BNK_LAYOUT_NCHW;
        s->n = x->shape[0];
        s->c = x->shape[nchw ? 1 : 3];
        s->h = x->shape[nchw ? 2 : 1];
        s->w = x->shape[nchw ? 3 : 2];
    }
    tc->numel = x->count;
}

/* Loads everything the case needs and allocates the outputs. */
static void load_case(torch_case *tc) {
    char dir[1024];
    if (snprintf(dir, sizeof dir, "%s/%s", TORCH_DIR, tc->name) >= (int)sizeof dir)
        fail_msg("path too long: %s", dir);
    read_params(dir, &tc->p);
    for (int f = 0; f < F_COUNT; f++) {
        if (wanted(&tc->p, f)) load_file(dir, &tc->file[f], k_file_names[f]);
    }
    shape_from_x(tc);
    for (int f = 0; f < F_COUNT; f++) {
        if (!wanted(&tc->p, f)) continue;
        const bnk_npy *a = &tc->file[f], *x = &tc->file[F_X];
        bool tensor = f == F_X || f == F_DY || f == F_Y || f == F_DX;
        if (tensor) {
            bool same = a->ndim == x->ndim;
            for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == x->shape[d];
            if (!same) fail_msg("%s: %s.npy: shape differs from x.npy", tc->name, k_file_names[f]);
        } else if (a->ndim != 1 || a->shape[0] != tc->shape.c) {
            fail_msg("%s: %s.npy: expected shape (%lld,)", tc->name, k_file_names[f],
                     (long long)tc->shape.c);
        }
    }
    size_t c = (size_t)tc->shape.c;
    tc->y = malloc(tc->numel * sizeof *tc->y);
    tc->dx = malloc(tc->numel * sizeof *tc->dx);
    tc->ref = malloc(tc->numel * sizeof *tc->ref);
    tc->run_mean = malloc(c * sizeof *tc->run_mean);
    tc->run_var = malloc(c * sizeof *tc->run_var);
    tc->dgamma = malloc(c * sizeof *tc->dgamma);
    tc->dbeta = malloc(c * sizeof *tc->dbeta);
    tc->saved = malloc(BNK_BN_SAVED_FIELDS * c * sizeof *tc->saved);
    if (!tc->y || !tc->dx || !tc->ref || !tc->run_mean || !tc->run_var || !tc->dgamma ||
        !tc->dbeta || !tc->saved) {
        fail_msg("%s: out of memory", tc->name);
    }
}

static int teardown_case(void **state) {
    torch_case *tc = *state;
    for (int f = 0; f < F_COUNT; f++) bnk_npy_free(&tc->file[f]);
    free(tc->y);
    free(tc->dx);
    free(tc->ref);
    free(tc->run_mean);
    free(tc->run_var);
    free(tc->dgamma);
    free(tc->dbeta);
    free(tc->saved);
    const char *name = tc->name;
    memset(tc, 0, sizeof *tc);
    tc->name = name;
    return 0;
}

static const float *data_of(const torch_case *tc, int f) {
    return tc->file[f].data;
}

/* Compares got[0..count) with the expected file f, promoted to double. */
static void check(const torch_case *tc, const char *kernel, const char *what, const float *got,
                  int f, double atol, double rtol) {
    const bnk_npy *e = &tc->file[f];
    const float *ev = e->data;
    for (size_t i = 0; i < e->count; i++) tc->ref[i] = ev[i];
    char label[256];
    snprintf(label, sizeof label, "%s [kernel %s]: %s", tc->name, kernel, what);
    bnk_test_close_f32(label, got, tc->ref, e->count, atol, rtol);
}

static void fill(float *a, size_t count, float v) {
    for (size_t i = 0; i < count; i++) a[i] = v;
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void run_kernel(torch_case *tc, const char *kernel) {
    const torch_params *p = &tc->p;
    const bnk_bn_config cfg = config_from_params(p);
    size_t c = (size_t)tc->shape.c;
    if (bnk_bn_config_validate(&cfg) != BNK_OK) {
        fail_msg("%s: config rejected: %s", tc->name, bnk_errmsg());
    }
    const float *x = data_of(tc, F_X);
    const float *gamma = p->scale ? data_of(tc, F_GAMMA) : NULL;
    const float *beta = p->center ? data_of(tc, F_BETA) : NULL;
    const float *rm = data_of(tc, F_RUNNING_MEAN), *rv = data_of(tc, F_RUNNING_VAR);
    fill(tc->y, tc->numel, NAN); /* an element the kernel does not write fails the check */
    bnk_status st;

    if (!p->train) {
        st = bnk_bn_forward_infer(&cfg, &tc->shape, tc->y, x, gamma, beta, rm, rv);
        if (st != BNK_OK) fail_msg("%s [kernel %s]: infer: %s", tc->name, kernel, bnk_errmsg());
        check(tc, kernel, "y", tc->y, F_Y, TOL_Y_ATOL, TOL_Y_RTOL);
        return;
    }

    memcpy(tc->run_mean, rm, c * sizeof *rm); /* fresh running statistics for every kernel */
    memcpy(tc->run_var, rv, c * sizeof *rv);
    st = bnk_bn_forward_train(&cfg, &tc->shape, p->step, tc->y, tc->saved, tc->run_mean,
                              tc->run_var, x, gamma, beta);
    if (st != BNK_OK) fail_msg("%s [kernel %s]: train: %s", tc->name, kernel, bnk_errmsg());
    check(tc, kernel, "y", tc->y, F_Y, TOL_Y_ATOL, TOL_Y_RTOL);
    check(tc, kernel, "running_mean", tc->run_mean, F_RUNNING_MEAN_OUT, TOL_RUNNING_ATOL,
          TOL_RUNNING_RTOL);
    check(tc, kernel, "running_var", tc->run_var, F_RUNNING_VAR_OUT, TOL_RUNNING_ATOL,
          TOL_RUNNING_RTOL);

    /* backward accumulates into dgamma/dbeta: zero them, or plant a sentinel when off */
    fill(tc->dgamma, c, p->scale ? 0.0f : SENTINEL);
    fill(tc->dbeta, c, p->center ? 0.0f : SENTINEL);
    fill(tc->dx, tc->numel, NAN);
    st = bnk_bn_backward(&cfg, &tc->shape, tc->dx, tc->dgamma, tc->dbeta, data_of(tc, F_DY), x,
                         tc->y, gamma, tc->saved);
    if (st != BNK_OK) fail_msg("%s [kernel %s]: backward: %s", tc->name, kernel, bnk_errmsg());
    check(tc, kernel, "dx", tc->dx, F_DX, TOL_DX_ATOL, TOL_DX_RTOL);
    if (p->scale) {
        check(tc, kernel, "dgamma", tc->dgamma, F_DGAMMA, TOL_DPARAM_ATOL, TOL_DPARAM_RTOL);
    } else {
        for (size_t i = 0; i < c; i++) {
            if (tc->dgamma[i] != SENTINEL) {
                fail_msg("%s [kernel %s]: scale off but dgamma[%zu] changed to %g", tc->name,
                         kernel, i, (double)tc->dgamma[i]);
            }
        }
    }
    if (p->center) {
        check(tc, kernel, "dbeta", tc->dbeta, F_DBETA, TOL_DPARAM_ATOL, TOL_DPARAM_RTOL);
    } else {
        for (size_t i = 0; i < c; i++) {
            if (tc->dbeta[i] != SENTINEL) {
                fail_msg("%s [kernel %s]: center off but dbeta[%zu] changed to %g", tc->name,
                         kernel, i, (double)tc->dbeta[i]);
            }
        }
    }
}

/* One case against every compiled kernel. */
static void test_case(void **state) {
    torch_case *tc = *state;
    load_case(tc);
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
        run_kernel(tc, kernel);
    }
    assert_int_equal(bnk_bn_kernel_select(initial), BNK_OK);
}

/* cases.txt (written by the generator) and g_cases name the same cases. */
static void test_case_index(void **state) {
    (void)state;
    const char *path = TORCH_DIR "/cases.txt";
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("%s: cannot open: %s", path, strerror(errno));
    char line[256], missing[256] = "";
    size_t listed = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        listed++;
        size_t i = 0;
        while (i < N_CASES && strcmp(g_cases[i].name, line) != 0) i++;
        if (i == N_CASES && missing[0] == '\0') snprintf(missing, sizeof missing, "%s", line);
    }
    fclose(f);
    if (missing[0] != '\0') fail_msg("%s lists '%s', which this test does not run", path, missing);
    assert_int_equal(listed, N_CASES);
}

int main(void) {
    struct CMUnitTest tests[N_CASES + 1];
    tests[0] = (struct CMUnitTest)cmocka_unit_test(test_case_index);
    for (size_t i = 0; i < N_CASES; i++) {
        tests[i + 1] = (struct CMUnitTest){
            .name = g_cases[i].name,
            .test_func = test_case,
            .setup_func = NULL,
            .teardown_func = teardown_case,
            .initial_state = &g_cases[i],
        };
    }
    return cmocka_run_group_tests_name("bn_torch", tests, NULL, NULL);
}
