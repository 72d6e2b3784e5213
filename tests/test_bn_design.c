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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/bn.h"
#include "fixture_util.h"

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

/* params.txt, beside what goes into the case itself: the generator's tolerance scales. */
typedef struct design_params {
    bnk_fx_bn_case *c;
    double y_scale, dx_scale, dgamma_scale, dbeta_scale;
} design_params;

/* The cases, as written by scripts/gen_design_fixtures.py (test_case_index checks this table
 * against the generator's cases.txt so that no generated case goes unchecked). */
static const char *const k_case_names[] = {
    "00_batch_nc",
    "01_batch_unbiased_nchw",
    "02_batch_unbiased_b_nhwc",
    "03_cumulative_step0_nc",
    "04_cumulative_stepk_nchw",
    "05_cumulative_unbiased_nhwc",
    "06_no_center_nc",
    "07_no_scale_nchw",
    "08_no_affine_nhwc",
    "09_mean_clip_nc",
    "10_var_clip_nchw",
    "11_abs_clips_nhwc",
    "12_abs_clips_wide_nc",
    "13_rel_r_nchw",
    "14_rel_d_nhwc",
    "15_rel_rd_nc",
    "16_rel_rd_wide_nchw",
    "17_rel_warmup_pending_nhwc",
    "18_rel_warmup_equal_nc",
    "19_rel_then_abs_nchw",
    "20_running_mean_clip_nhwc",
    "21_running_var_clip_nc",
    "22_running_clips_nchw",
    "23_norm_running_nhwc",
    "24_norm_running_unbiased_nc",
    "25_norm_running_cumulative_nchw",
    "26_norm_running_clips_nhwc",
    "27_norm_running_rel_nc",
    "28_renorm_clipped_nchw",
    "29_renorm_unclipped_nhwc",
    "30_renorm_rel_abs_nc",
    "31_renorm_cumulative_nchw",
    "32_relu_batch_nhwc",
    "33_relu_running_nc",
    "34_relu_renorm_nchw",
    "35_m2_nc",
    "36_hw1_nchw",
    "37_c9_tail_nhwc",
    "38_random_a_nhwc",
    "39_random_b_nc",
    "40_infer_nc",
    "41_infer_nchw",
    "42_infer_nhwc",
    "43_infer_relu_nchw",
};
#define N_CASES (sizeof k_case_names / sizeof k_case_names[0])

/* Each case's arrays and outputs (fixture_util.h). */
static bnk_fx_bn_case g_cases[N_CASES];

/* BNK_DESIGN_VERBOSE=1 prints, per case, kernel and field, the largest fraction of the tolerance
 * used — the evidence for the margins claimed above. */
static bool g_verbose;

/* ---- params.txt --------------------------------------------------------------------------- */

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
    bnk_bn_config *c = &p->c->cfg;
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
    bnk_bn_config *c = &p->c->cfg;
    if (strcmp(key, "train") == 0) return &p->c->train;
    if (strcmp(key, "cumulative") == 0) return &c->cumulative;
    if (strcmp(key, "center") == 0) return &c->center;
    if (strcmp(key, "scale") == 0) return &c->scale;
    if (strcmp(key, "unbiased_running_var") == 0) return &c->unbiased_running_var;
    if (strcmp(key, "fuse_relu") == 0) return &c->fuse_relu;
    return NULL;
}

static void set_key(void *ctx, const char *path, size_t index, const char *val) {
    design_params *p = ctx;
    const key_spec *k = &k_keys[index];
    switch (k->kind) {
    case K_LAYOUT:
        p->c->layout = bnk_fx_parse_layout(path, val);
        break;
    case K_NORM:
        if (strcmp(val, "batch") == 0) {
            p->c->cfg.normalize_with = BNK_NORM_BATCH;
        } else if (strcmp(val, "running") == 0) {
            p->c->cfg.normalize_with = BNK_NORM_RUNNING;
        } else if (strcmp(val, "renorm") == 0) {
            p->c->cfg.normalize_with = BNK_NORM_RENORM;
        } else {
            fail_msg("%s: unknown normalize_with '%s'", path, val);
        }
        break;
    case K_BOOL: {
        bool *b = bool_field(p, k->name);
        if (b == NULL) fail_msg("%s: no field for '%s'", path, k->name);
        *b = bnk_fx_parse_bool(path, k->name, val);
        break;
    }
    case K_INT:
        if (strcmp(k->name, "step") == 0) {
            p->c->step = bnk_fx_parse_int(path, k->name, val);
        } else {
            p->c->cfg.clip_warmup = bnk_fx_parse_int(path, k->name, val);
        }
        break;
    case K_DOUBLE: {
        double *d = double_field(p, k->name);
        if (d == NULL) fail_msg("%s: no field for '%s'", path, k->name);
        *d = bnk_fx_parse_double(path, k->name, val); /* accepts "inf" and "-inf" */
        break;
    }
    }
}

/* Reads the case's params.txt (every key required exactly once) and arrays: float32 inputs,
 * float64 expectations. */
static void load_case(bnk_fx_bn_case *c) {
    char dir[1024];
    bnk_fx_path(dir, sizeof dir, "%s/%s", DESIGN_DIR, c->name);
    const char *names[N_KEYS];
    for (size_t k = 0; k < N_KEYS; k++) names[k] = k_keys[k].name;
    design_params p = {.c = c};
    c->cfg = bnk_bn_config_default();
    bnk_fx_read_params(dir, names, N_KEYS, set_key, &p);
    c->gamma_beta_always = true; /* the values bnkit must ignore */
    c->tol = (bnk_fx_bn_tol){
        .y_atol = TOL_Y_ABS_OF_SCALE * p.y_scale,
        .y_rtol = TOL_Y_RTOL,
        .running_atol = TOL_RUNNING_ATOL,
        .running_rtol = TOL_RUNNING_RTOL,
        .dx_atol = TOL_DX_ABS_OF_SCALE * p.dx_scale,
        .dx_rtol = TOL_DX_RTOL,
        .dgamma_atol = TOL_DPARAM_ABS_OF_SCALE * p.dgamma_scale,
        .dbeta_atol = TOL_DPARAM_ABS_OF_SCALE * p.dbeta_scale,
        .dparam_rtol = TOL_DPARAM_RTOL,
    };
    bnk_fx_bn_load(c, dir);
    for (int f = 0; f < BNK_FX_COUNT; f++) {
        bnk_dtype want = f >= BNK_FX_Y ? BNK_DTYPE_F64 : BNK_DTYPE_F32;
        if (c->file[f].data != NULL && c->file[f].dtype != want) {
            fail_msg("%s/%s.npy: expected %s data", dir, bnk_fx_bn_file_name(f),
                     want == BNK_DTYPE_F64 ? "float64" : "float32");
        }
    }
}

/* ---- the tests ---------------------------------------------------------------------------- */

/* The case on one kernel; with scale or center off, once more with NULL in place of the stored
 * gamma/beta. */
static void run_kernel(void *ctx, const char *kernel) {
    const bnk_fx_bn_case *c = ctx;
    bnk_fx_bn_run(c, kernel, false, g_verbose);
    if (!c->cfg.scale || !c->cfg.center) bnk_fx_bn_run(c, kernel, true, g_verbose);
}

/* One case against every compiled kernel. */
static void test_case(void **state) {
    load_case(*state);
    bnk_fx_each_bn_kernel(run_kernel, *state);
}

static void test_case_index(void **state) {
    (void)state;
    bnk_fx_check_case_index(DESIGN_DIR "/cases.txt", k_case_names, N_CASES);
}

int main(void) {
    const char *v = getenv("BNK_DESIGN_VERBOSE");
    g_verbose = v != NULL && strcmp(v, "0") != 0 && v[0] != '\0';
    struct CMUnitTest tests[N_CASES + 1] = {cmocka_unit_test(test_case_index)};
    for (size_t i = 0; i < N_CASES; i++) {
        g_cases[i].name = k_case_names[i];
        tests[i + 1] =
            bnk_fx_case_test(k_case_names[i], test_case, bnk_fx_bn_teardown, &g_cases[i]);
    }
    return cmocka_run_group_tests_name("bn_design", tests, NULL, NULL);
}
