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
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bnkit/bn.h"
#include "fixture_util.h"

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

/* The cases, as written by scripts/gen_torch_fixtures.py (test_case_index checks this table
 * against the generator's cases.txt so that no generated case goes unchecked). */
static const char *const k_case_names[] = {
    "train_nc_p01",
    "train_nchw_p01",
    "train_nhwc_p01",
    "train_nc_p03_eps1e3",
    "train_nchw_p03_eps1e3",
    "train_nhwc_p03_eps1e3",
    "train_nc_n2_c1",
    "biased_nc_p001_eps1e3",
    "biased_nchw_p001_eps1e3",
    "biased_nhwc_p01",
    "cumulative_nchw_step3",
    "cumulative_nhwc_step3",
    "cumulative_nc_step0",
    "infer_nc",
    "infer_nchw",
    "infer_nhwc",
    "noaffine_nchw_p01",
    "noaffine_infer_nhwc",
};
#define N_CASES (sizeof k_case_names / sizeof k_case_names[0])

/* Each case's arrays and outputs (fixture_util.h). */
static bnk_fx_bn_case g_cases[N_CASES];

/* ---- params.txt --------------------------------------------------------------------------- */

static const char *const k_keys[] = {
    "layout",     "train", "torch_momentum", "eps",   "unbiased_running_var",
    "cumulative", "step",  "center",         "scale",
};
#define N_KEYS (sizeof k_keys / sizeof k_keys[0])

static void set_param(void *ctx, const char *path, size_t k, const char *val) {
    torch_params *p = ctx;
    const char *key = k_keys[k];
    if (strcmp(key, "layout") == 0) {
        p->layout = bnk_fx_parse_layout(path, val);
    } else if (strcmp(key, "torch_momentum") == 0) {
        p->has_momentum = strcmp(val, "none") != 0;
        if (p->has_momentum) p->torch_momentum = bnk_fx_parse_double(path, key, val);
    } else if (strcmp(key, "eps") == 0) {
        p->eps = bnk_fx_parse_double(path, key, val);
    } else if (strcmp(key, "step") == 0) {
        p->step = bnk_fx_parse_int(path, key, val);
    } else {
        bool b = bnk_fx_parse_bool(path, key, val);
        if (strcmp(key, "train") == 0) p->train = b;
        if (strcmp(key, "unbiased_running_var") == 0) p->unbiased = b;
        if (strcmp(key, "cumulative") == 0) p->cumulative = b;
        if (strcmp(key, "center") == 0) p->center = b;
        if (strcmp(key, "scale") == 0) p->scale = b;
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

/* Reads the case's params.txt and arrays (every one converted to float32). */
static void load_case(bnk_fx_bn_case *c) {
    char dir[1024];
    bnk_fx_path(dir, sizeof dir, "%s/%s", TORCH_DIR, c->name);
    torch_params p = {0};
    bnk_fx_read_params(dir, k_keys, N_KEYS, set_param, &p);
    if (p.cumulative == p.has_momentum) {
        fail_msg("%s/params.txt: cumulative=%d contradicts torch_momentum", dir, (int)p.cumulative);
    }
    c->cfg = config_from_params(&p);
    c->layout = p.layout;
    c->train = p.train;
    c->step = p.step;
    c->tol = (bnk_fx_bn_tol){
        .y_atol = TOL_Y_ATOL,
        .y_rtol = TOL_Y_RTOL,
        .running_atol = TOL_RUNNING_ATOL,
        .running_rtol = TOL_RUNNING_RTOL,
        .dx_atol = TOL_DX_ATOL,
        .dx_rtol = TOL_DX_RTOL,
        .dgamma_atol = TOL_DPARAM_ATOL,
        .dbeta_atol = TOL_DPARAM_ATOL,
        .dparam_rtol = TOL_DPARAM_RTOL,
    };
    bnk_fx_bn_load(c, dir);
    for (int f = 0; f < BNK_FX_COUNT; f++) {
        if (c->file[f].data != NULL && bnk_npy_to_f32(&c->file[f]) != BNK_OK)
            fail_msg("%s/%s.npy: %s", dir, bnk_fx_bn_file_name(f), bnk_errmsg());
    }
}

/* ---- the tests ---------------------------------------------------------------------------- */

static void run_kernel(void *ctx, const char *kernel) {
    bnk_fx_bn_run(ctx, kernel, false, false);
}

/* One case against every compiled kernel. */
static void test_case(void **state) {
    load_case(*state);
    bnk_fx_each_bn_kernel(run_kernel, *state);
}

static void test_case_index(void **state) {
    (void)state;
    bnk_fx_check_case_index(TORCH_DIR "/cases.txt", k_case_names, N_CASES);
}

int main(void) {
    struct CMUnitTest tests[N_CASES + 1] = {cmocka_unit_test(test_case_index)};
    for (size_t i = 0; i < N_CASES; i++) {
        g_cases[i].name = k_case_names[i];
        tests[i + 1] =
            bnk_fx_case_test(k_case_names[i], test_case, bnk_fx_bn_teardown, &g_cases[i]);
    }
    return cmocka_run_group_tests_name("bn_torch", tests, NULL, NULL);
}
