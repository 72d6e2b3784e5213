/* test_bn_design.c — every BN mode against an independent float64 statement of DESIGN.md §2.
 *
 * The golden data under tests/fixtures/design/<case>/ comes from scripts/gen_design_fixtures.py
 * (which says how to rerun it): a from-the-specification implementation of DESIGN.md §2 in torch
 * float64, not derived from bnkit's C code, with dx, dgamma and dbeta from torch autograd. The
 * cases mix every flag: momentum and cumulative averaging, eps, center/scale, the unbiased running
 * variance, absolute, relative and running clips (some channels clipped, some not; relative clip
 * before and after its warm-up), normalisation with the batch, the running statistics or Batch
 * Renorm (with and without rmax/dmax clipping), the fused ReLU, in NC, NCHW and NHWC, and
 * inference. The generator redraws any case whose clamped value lies within 1e-6 (relative) of a
 * bound, so float32 rounding cannot flip a clamp decision.
 *
 * Each case holds float32 inputs (x, dy, gamma, beta, running statistics), float64 expectations
 * (y; for training the updated running statistics, dx, dgamma when scale, dbeta when center) and
 * params.txt: one key=value line per bnk_bn_config field plus four tolerance scales computed by
 * the generator in float64. gamma/beta are stored even when scale/center is off; they hold values
 * bnkit must ignore, and every such case also runs with NULL in their place.
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

#define DESIGN_DIR BNK_FIXTURE_DIR "/design"

/* Tolerances, |got - ref| <= atol + rtol*|ref|, against exact (float64) arithmetic on the same
 * float32 inputs. bnkit stores float32 (unit roundoff u = 6e-8), so its error is a few roundings
 * of the size of the terms each result is formed from; the generator writes those sizes:
 *   y:  y_scale = max |gamma*s*r|*(|x| + |center|) + |gamma*d| + |b| (s the inverse std, r, d
 *       Batch Renorm's). y = a*x + c (or a*(x - center) + b) in float is a few roundings of
 *       terms no larger than that: 1e-6*y_scale is ~16 u of the largest term.
 *   running statistics: a blend of float32 values, rounded to float32 for storage: 1e-6
 *       relative (~16 u) plus 1e-6 absolute for values that nearly cancel (all are O(0.1..25)).
 *   dx: a difference of terms of size |gamma*s*r*dy| (it cancels exactly to 0 when m = 2), so
 *       its error is relative to dx_scale = max |gamma*s*r| * max |dy| (as in
 *       tests/test_bn_kernels.c): 1e-6 of it, ~16 u.
 *   dgamma, dbeta: sums over the m values of a channel of g*xhat and g; the error is relative to
 *       the sum of the terms' sizes (dgamma_scale, dbeta_scale = max over channels of
 *       sum |g*xhat|, sum |g|): 1e-6 of it is ~16 u, more than a float32 pairwise or lane-wise
 *       sum of <= 108 terms (the largest m here) loses.
 * With these the ref and opt kernels use at most ~5% of each tolerance (see the
 * BNK_DESIGN_VERBOSE report below). */
#define TOL_Y_ABS_OF_SCALE      1e-6
#define TOL_Y_RTOL              1e-6
#define TOL_RUNNING_ATOL        1e-6
#define TOL_RUNNING_RTOL        1e-6
#define TOL_DX_ABS_OF_SCALE     1e-6
#define TOL_DX_RTOL             1e-6
#define TOL_DPARAM_ABS_OF_SCALE 1e-6
#define TOL_DPARAM_RTOL         1e-6

/* Written into dgamma/dbeta when scale/center is off: the backward must leave them alone. */
#define SENTINEL 42.0f

enum {
    F_X, /* float32 inputs */
    F_DY,
    F_GAMMA,
    F_BETA,
    F_RUNNING_MEAN,
    F_RUNNING_VAR,
    F_Y, /* float64 expectations */
    F_RUNNING_MEAN_OUT,
    F_RUNNING_VAR_OUT,
    F_DX,
    F_DGAMMA,
    F_DBETA,
    F_COUNT
};
#define F_FIRST_EXPECTED F_Y

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

/* params.txt: the configuration, and the generator's tolerance scales. */
typedef struct design_params {
    bnk_bn_config cfg;
    bool train;
    int64_t step;
    double y_scale, dx_scale, dgamma_scale, dbeta_scale;
} design_params;

/* One case: its name, and everything it loads or allocates (freed by teardown_case, which
 * cmocka runs even after a failed check). */
typedef struct design_case {
    const char *name;
    design_params p;
    bnk_bn_shape shape;
    size_t numel;
    bnk_npy file[F_COUNT];
    float *y, *dx, *run_mean, *run_var, *dgamma, *dbeta;
    double *saved;
} design_case;

/* The cases, as written by scripts/gen_design_fixtures.py (test_case_index checks this table
 * against the generator's cases.txt so that no generated case goes unchecked). */
static design_case g_cases[] = {
    {.name = "00_batch_nc"},
    {.name = "01_batch_unbiased_nchw"},
    {.name = "02_batch_unbiased_b_nhwc"},
    {.name = "03_cumulative_step0_nc"},
    {.name = "04_cumulative_stepk_nchw"},
    {.name = "05_cumulative_unbiased_nhwc"},
    {.name = "06_no_center_nc"},
    {.name = "07_no_scale_nchw"},
    {.name = "08_no_affine_nhwc"},
    {.name = "09_mean_clip_nc"},
    {.name = "10_var_clip_nchw"},
    {.name = "11_abs_clips_nhwc"},
    {.name = "12_abs_clips_wide_nc"},
    {.name = "13_rel_r_nchw"},
    {.name = "14_rel_d_nhwc"},
    {.name = "15_rel_rd_nc"},
    {.name = "16_rel_rd_wide_nchw"},
    {.name = "17_rel_warmup_pending_nhwc"},
    {.name = "18_rel_warmup_equal_nc"},
    {.name = "19_rel_then_abs_nchw"},
    {.name = "20_running_mean_clip_nhwc"},
    {.name = "21_running_var_clip_nc"},
    {.name = "22_running_clips_nchw"},
    {.name = "23_norm_running_nhwc"},
    {.name = "24_norm_running_unbiased_nc"},
    {.name = "25_norm_running_cumulative_nchw"},
    {.name = "26_norm_running_clips_nhwc"},
    {.name = "27_norm_running_rel_nc"},
    {.name = "28_renorm_clipped_nchw"},
    {.name = "29_renorm_unclipped_nhwc"},
    {.name = "30_renorm_rel_abs_nc"},
    {.name = "31_renorm_cumulative_nchw"},
    {.name = "32_relu_batch_nhwc"},
    {.name = "33_relu_running_nc"},
    {.name = "34_relu_renorm_nchw"},
    {.name = "35_m2_nc"},
    {.name = "36_hw1_nchw"},
    {.name = "37_c9_tail_nhwc"},
    {.name = "38_random_a_nhwc"},
    {.name = "39_random_b_nc"},
    {.name = "40_infer_nc"},
    {.name = "41_infer_nchw"},
    {.name = "42_infer_nhwc"},
    {.name = "43_infer_relu_nchw"},
};
#define N_CASES (sizeof g_cases / sizeof g_cases[0])

/* BNK_DESIGN_VERBOSE=1 prints, per case, kernel and field, the largest fraction of the tolerance
 * used — the evidence for the margins claimed above. */
static bool g_verbose;

/* ---- params.txt --------------------------------------------------------------------------- */

static double parse_double(const char *path, const char *key, const char *val) {
    char *end;
    errno = 0;
    double v = strtod(val, &end); /* accepts "inf" and "-inf" */
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

/* Every key params.txt must hold, and where its value goes. */
typedef enum key_kind { K_LAYOUT, K_NORM, K_BOOL, K_INT, K_DOUBLE } key_kind;

typedef struct key_spec {
    const char *name;
    key_kind kind;
} key_spec;

static const key_spec k_keys[] = {
    {"layout", K_LAYOUT},
    {"train", K_BOOL},
    {"step", K_INT},
    {"momentum", K_DOUBLE},
    {"cumulative", K_BOOL},
    {"eps", K_DOUBLE},
    {"center", K_BOOL},
    {"scale", K_BOOL},
    {"unbiased_running_var", K_BOOL},
    {"mean_clip_lo", K_DOUBLE},
    {"mean_clip_hi", K_DOUBLE},
    {"var_clip_lo", K_DOUBLE},
    {"var_clip_hi", K_DOUBLE},
    {"rel_clip_r", K_DOUBLE},
    {"rel_clip_d", K_DOUBLE},
    {"clip_warmup", K_INT},
    {"running_mean_clip_lo", K_DOUBLE},
    {"running_mean_clip_hi", K_DOUBLE},
    {"running_var_clip_lo", K_DOUBLE},
    {"running_var_clip_hi", K_DOUBLE},
    {"normalize_with", K_NORM},
    {"rmax", K_DOUBLE},
    {"dmax", K_DOUBLE},
    {"fuse_relu", K_BOOL},
    {"y_scale", K_DOUBLE},
    {"dx_scale", K_DOUBLE},
    {"dgamma_scale", K_DOUBLE},
    {"dbeta_scale", K_DOUBLE},
};
#define N_KEYS (sizeof k_keys / sizeof k_keys[0])

/* The field of p that a double key fills. */
static double *double_field(design_params *p, const char *key) {
    bnk_bn_config *c = &p->cfg;
    static const struct {
        const char *name;
        size_t offset;
    } map[] = {
        {"momentum", offsetof(bnk_bn_config, momentum)},
        {"eps", offsetof(bnk_bn_config, eps)},
        {"mean_clip_lo", offsetof(bnk_bn_config, mean_clip.lo)},
        {"mean_clip_hi", offsetof(bnk_bn_config, mean_clip.hi)},
        {"var_clip_lo", offsetof(bnk_bn_config, var_clip.lo)},
        {"var_clip_hi", offsetof(bnk_bn_config, var_clip.hi)},
        {"rel_clip_r", offsetof(bnk_bn_config, rel_clip_r)},
        {"rel_clip_d", offsetof(bnk_bn_config, rel_clip_d)},
        {"running_mean_clip_lo", offsetof(bnk_bn_config, running_mean_clip.lo)},
        {"running_mean_clip_hi", offsetof(bnk_bn_config, running_mean_clip.hi)},
        {"running_var_clip_lo", offsetof(bnk_bn_config, running_var_clip.lo)},
        {"running_var_clip_hi", offsetof(bnk_bn_config, running_var_clip.hi)},
        {"rmax", offsetof(bnk_bn_config, rmax)},
        {"dmax", offsetof(bnk_bn_config, dmax)},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(map[i].name, key) == 0) return (double *)((char *)c + map[i].offset);
    }
    if (strcmp(key, "y_scale") == 0) return &p->y_scale;
    if (strcmp(key, "dx_scale") == 0) return &p->dx_scale;
    if (strcmp(key, "dgamma_scale") == 0) return &p->dgamma_scale;
    if (strcmp(key, "dbeta_scale") == 0) return &p->dbeta_scale;
    return NULL;
}

static bool *bool_field(design_params *p, const char *key) {
    if (strcmp(key, "train") == 0) return &p->train;
    if (strcmp(key, "cumulative") == 0) return &p->cfg.cumulative;
    if (strcmp(key, "center") == 0) return &p->cfg.center;
    if (strcmp(key, "scale") == 0) return &p->cfg.scale;
    if (strcmp(key, "unbiased_running_var") == 0) return &p->cfg.unbiased_running_var;
    if (strcmp(key, "fuse_relu") == 0) return &p->cfg.fuse_relu;
    return NULL;
}

static void set_key(design_params *p, bnk_layout *layout, const char *path, const key_spec *k,
                    const char *val) {
    switch (k->kind) {
    case K_LAYOUT:
        if (strcmp(val, "nc") == 0) {
            *layout = BNK_LAYOUT_NC;
        } else if (strcmp(val, "nchw") == 0) {
            *layout = BNK_LAYOUT_NCHW;
        } else if (strcmp(val, "nhwc") == 0) {
            *layout = BNK_LAYOUT_NHWC;
        } else {
            fail_msg("%s: unknown layout '%s'", path, val);
        }
        break;
    case K_NORM:
        if (strcmp(val, "batch") == 0) {
            p->cfg.normalize_with = BNK_NORM_BATCH;
        } else if (strcmp(val, "running") == 0) {
            p->cfg.normalize_with = BNK_NORM_RUNNING;
        } else if (strcmp(val, "renorm") == 0) {
            p->cfg.normalize_with = BNK_NORM_RENORM;
        } else {
            fail_msg("%s: unknown normalize_with '%s'", path, val);
        }
        break;
    case K_BOOL: {
        bool *b = bool_field(p, k->name);
        if (b == NULL) fail_msg("%s: no field for '%s'", path, k->name);
        *b = parse_bool(path, k->name, val);
        break;
    }
    case K_INT:
        if (strcmp(k->name, "step") == 0) {
            p->step = parse_int(path, k->name, val);
        } else {
            p->cfg.clip_warmup = parse_int(path, k->name, val);
        }
        break;
    case K_DOUBLE: {
        double *d = double_field(p, k->name);
        if (d == NULL) fail_msg("%s: no field for '%s'", path, k->name);
        *d = parse_double(path, k->name, val);
        break;
    }
    }
}

/* Reads dir/params.txt into p (every key required exactly once) and the layout. */
static void read_params(const char *dir, design_params *p, bnk_layout *layout) {
    enum { MAX_LINES = 64 };
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
    p->cfg = bnk_bn_config_default();
    for (int l = 0; l < n_lines; l++) {
        char *line = lines[l];
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0') continue;
        char *eq = strchr(line, '=');
        if (eq == NULL) fail_msg("%s: line without '=': '%s'", path, line);
        *eq = '\0';
        size_t k = 0;
        while (k < N_KEYS && strcmp(k_keys[k].name, line) != 0) k++;
        if (k == N_KEYS) fail_msg("%s: unknown key '%s'", path, line);
        if (seen[k]) fail_msg("%s: key '%s' given twice", path, line);
        seen[k] = true;
        set_key(p, layout, path, &k_keys[k], eq + 1);
    }
    for (size_t k = 0; k < N_KEYS; k++) {
        if (!seen[k]) fail_msg("%s: missing key '%s'", path, k_keys[k].name);
    }
}

/* ---- arrays ------------------------------------------------------------------------------- */

static bool wanted(const design_params *p, int f) {
    switch (f) {
    case F_DY:
    case F_RUNNING_MEAN_OUT:
    case F_RUNNING_VAR_OUT:
    case F_DX:
        return p->train;
    case F_DGAMMA:
        return p->train && p->cfg.scale;
    case F_DBETA:
        return p->train && p->cfg.center;
    default:
        return true;
    }
}

static void load_file(const char *dir, bnk_npy *arr, int f) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s/%s.npy", dir, k_file_names[f]) >= (int)sizeof path)
        fail_msg("path too long: %s", path);
    if (bnk_npy_read(path, arr) != BNK_OK) fail_msg("%s: %s", path, bnk_errmsg());
    bnk_dtype want = f >= F_FIRST_EXPECTED ? BNK_DTYPE_F64 : BNK_DTYPE_F32;
    if (arr->dtype != want) {
        fail_msg("%s: expected %s data", path, want == BNK_DTYPE_F64 ? "float64" : "float32");
    }
}

/* Sets dc->shape from x's dimensions in the case's layout. */
static void shape_from_x(design_case *dc, bnk_layout layout) {
    const bnk_npy *x = &dc->file[F_X];
    bnk_bn_shape *s = &dc->shape;
    s->layout = layout;
    if (layout == BNK_LAYOUT_NC) {
        if (x->ndim != 2) fail_msg("%s: x.npy: nc wants 2 dims, has %d", dc->name, x->ndim);
        s->n = x->shape[0];
        s->c = x->shape[1];
        s->h = s->w = 1;
    } else {
        if (x->ndim != 4) fail_msg("%s: x.npy: wants 4 dims, has %d", dc->name, x->ndim);
        bool nchw = layout == BNK_LAYOUT_NCHW;
        s->n = x->shape[0];
        s->c = x->shape[nchw ? 1 : 3];
        s->h = x->shape[nchw ? 2 : 1];
        s->w = x->shape[nchw ? 3 : 2];
    }
    dc->numel = x->count;
}

/* Loads everything the case needs and allocates the outputs. */
static void load_case(design_case *dc) {
    char dir[1024];
    bnk_layout layout = BNK_LAYOUT_NC;
    if (snprintf(dir, sizeof dir, "%s/%s", DESIGN_DIR, dc->name) >= (int)sizeof dir)
        fail_msg("path too long: %s", dir);
    read_params(dir, &dc->p, &layout);
    for (int f = 0; f < F_COUNT; f++) {
        if (wanted(&dc->p, f)) load_file(dir, &dc->file[f], f);
    }
    shape_from_x(dc, layout);
    for (int f = 0; f < F_COUNT; f++) {
        if (!wanted(&dc->p, f)) continue;
        const bnk_npy *a = &dc->file[f], *x = &dc->file[F_X];
        bool tensor = f == F_X || f == F_DY || f == F_Y || f == F_DX;
        if (tensor) {
            bool same = a->ndim == x->ndim;
            for (int d = 0; same && d < a->ndim; d++) same = a->shape[d] == x->shape[d];
            if (!same) fail_msg("%s: %s.npy: shape differs from x.npy", dc->name, k_file_names[f]);
        } else if (a->ndim != 1 || a->shape[0] != dc->shape.c) {
            fail_msg("%s: %s.npy: expected shape (%lld,)", dc->name, k_file_names[f],
                     (long long)dc->shape.c);
        }
    }
    size_t c = (size_t)dc->shape.c;
    dc->y = malloc(dc->numel * sizeof *dc->y);
    dc->dx = malloc(dc->numel * sizeof *dc->dx);
    dc->run_mean = malloc(c * sizeof *dc->run_mean);
    dc->run_var = malloc(c * sizeof *dc->run_var);
    dc->dgamma = malloc(c * sizeof *dc->dgamma);
    dc->dbeta = malloc(c * sizeof *dc->dbeta);
    dc->saved = malloc(BNK_BN_SAVED_FIELDS * c * sizeof *dc->saved);
    if (!dc->y || !dc->dx || !dc->run_mean || !dc->run_var || !dc->dgamma || !dc->dbeta ||
        !dc->saved) {
        fail_msg("%s: out of memory", dc->name);
    }
}

static int teardown_case(void **state) {
    design_case *dc = *state;
    for (int f = 0; f < F_COUNT; f++) bnk_npy_free(&dc->file[f]);
    free(dc->y);
    free(dc->dx);
    free(dc->run_mean);
    free(dc->run_var);
    free(dc->dgamma);
    free(dc->dbeta);
    free(dc->saved);
    const char *name = dc->name;
    memset(dc, 0, sizeof *dc);
    dc->name = name;
    return 0;
}

static const float *input(const design_case *dc, int f) {
    return dc->file[f].data;
}

/* Compares got[0..count) with the float64 expectation in file f. */
static void check(const design_case *dc, const char *run, const char *what, const float *got, int f,
                  double atol, double rtol) {
    const bnk_npy *e = &dc->file[f];
    const double *ref = e->data;
    char label[256];
    snprintf(label, sizeof label, "%s [%s]: %s", dc->name, run, what);
    if (g_verbose) {
        double worst = 0.0;
        for (size_t i = 0; i < e->count; i++) {
            worst = fmax(worst, fabs(got[i] - ref[i]) / (atol + rtol * fabs(ref[i])));
        }
        print_message("  %-52s %.3f of tolerance\n", label, worst);
    }
    bnk_test_close_f32(label, got, ref, e->count, atol, rtol);
}

static void fill(float *a, size_t count, float v) {
    for (size_t i = 0; i < count; i++) a[i] = v;
}

/* dgamma/dbeta of a disabled parameter: the backward must not have touched the sentinel. */
static void check_untouched(const design_case *dc, const char *run, const char *what,
                            const float *g) {
    for (size_t i = 0; i < (size_t)dc->shape.c; i++) {
        if (g[i] != SENTINEL) {
            fail_msg("%s [%s]: %s is off but %s[%zu] changed to %g", dc->name, run,
                     what[1] == 'g' ? "scale" : "center", what, i, (double)g[i]);
        }
    }
}

/* ---- the tests ---------------------------------------------------------------------------- */

/* One run of the case on the selected kernel. null_off: pass NULL for a disabled gamma/beta
 * instead of the stored (to-be-ignored) values. */
static void run_case(design_case *dc, const char *kernel, bool null_off) {
    const design_params *p = &dc->p;
    const bnk_bn_config *cfg = &p->cfg;
    size_t c = (size_t)dc->shape.c;
    char run[96];
    snprintf(run, sizeof run, "kernel %s%s", kernel, null_off ? ", NULL gamma/beta" : "");
    if (bnk_bn_config_validate(cfg) != BNK_OK) {
        fail_msg("%s: config rejected: %s", dc->name, bnk_errmsg());
    }
    const float *x = input(dc, F_X);
    const float *gamma = null_off && !cfg->scale ? NULL : input(dc, F_GAMMA);
    const float *beta = null_off && !cfg->center ? NULL : input(dc, F_BETA);
    const float *rm = input(dc, F_RUNNING_MEAN), *rv = input(dc, F_RUNNING_VAR);
    fill(dc->y, dc->numel, NAN); /* an element the kernel does not write fails the check */
    double y_atol = TOL_Y_ABS_OF_SCALE * p->y_scale;
    bnk_status st;

    if (!p->train) {
        st = bnk_bn_forward_infer(cfg, &dc->shape, dc->y, x, gamma, beta, rm, rv);
        if (st != BNK_OK) fail_msg("%s [%s]: infer: %s", dc->name, run, bnk_errmsg());
        check(dc, run, "y", dc->y, F_Y, y_atol, TOL_Y_RTOL);
        return;
    }

    memcpy(dc->run_mean, rm, c * sizeof *rm); /* fresh running statistics for every run */
    memcpy(dc->run_var, rv, c * sizeof *rv);
    st = bnk_bn_forward_train(cfg, &dc->shape, p->step, dc->y, dc->saved, dc->run_mean, dc->run_var,
                              x, gamma, beta);
    if (st != BNK_OK) fail_msg("%s [%s]: train: %s", dc->name, run, bnk_errmsg());
    check(dc, run, "y", dc->y, F_Y, y_atol, TOL_Y_RTOL);
    check(dc, run, "running_mean", dc->run_mean, F_RUNNING_MEAN_OUT, TOL_RUNNING_ATOL,
          TOL_RUNNING_RTOL);
    check(dc, run, "running_var", dc->run_var, F_RUNNING_VAR_OUT, TOL_RUNNING_ATOL,
          TOL_RUNNING_RTOL);

    /* backward accumulates into dgamma/dbeta: zero them, or plant a sentinel when off */
    fill(dc->dgamma, c, cfg->scale ? 0.0f : SENTINEL);
    fill(dc->dbeta, c, cfg->center ? 0.0f : SENTINEL);
    fill(dc->dx, dc->numel, NAN);
    st = bnk_bn_backward(cfg, &dc->shape, dc->dx, dc->dgamma, dc->dbeta, input(dc, F_DY), x, dc->y,
                         gamma, dc->saved);
    if (st != BNK_OK) fail_msg("%s [%s]: backward: %s", dc->name, run, bnk_errmsg());
    check(dc, run, "dx", dc->dx, F_DX, TOL_DX_ABS_OF_SCALE * p->dx_scale, TOL_DX_RTOL);
    if (cfg->scale) {
        check(dc, run, "dgamma", dc->dgamma, F_DGAMMA, TOL_DPARAM_ABS_OF_SCALE * p->dgamma_scale,
              TOL_DPARAM_RTOL);
    } else {
        check_untouched(dc, run, "dgamma", dc->dgamma);
    }
    if (cfg->center) {
        check(dc, run, "dbeta", dc->dbeta, F_DBETA, TOL_DPARAM_ABS_OF_SCALE * p->dbeta_scale,
              TOL_DPARAM_RTOL);
    } else {
        check_untouched(dc, run, "dbeta", dc->dbeta);
    }
}

/* One case against every compiled kernel. */
static void test_case(void **state) {
    design_case *dc = *state;
    load_case(dc);
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
        run_case(dc, kernel, false);
        if (!dc->p.cfg.scale || !dc->p.cfg.center) run_case(dc, kernel, true);
    }
    assert_int_equal(bnk_bn_kernel_select(initial), BNK_OK);
}

/* cases.txt (written by the generator) and g_cases name the same cases. */
static void test_case_index(void **state) {
    (void)state;
    const char *path = DESIGN_DIR "/cases.txt";
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
    const char *v = getenv("BNK_DESIGN_VERBOSE");
    g_verbose = v != NULL && strcmp(v, "0") != 0 && v[0] != '\0';
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
    return cmocka_run_group_tests_name("bn_design", tests, NULL, NULL);
}
