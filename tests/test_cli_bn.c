/* Numerics of the `bnkit bn` command: training with --dy on every layout, inference, the
 * defaults and float64 inputs against direct library calls, and PyTorch's outputs from
 * tests/fixtures/torch/ (written by scripts/gen_torch_fixtures.py). Helpers in cli_bn_util.h. */
#include "cli_bn_util.h"

/* ---- (a) training with --dy on every layout ------------------------------------------------- */

static void check_train_layout(tctx *c, bnk_layout layout, int64_t n, int64_t ch, int64_t h,
                               int64_t w) {
    bn_case d;
    case_init(&d, layout, n, ch, h, w, 11 + (uint64_t)layout);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    full_args(&a, c, &d, true, c->out);
    cli_result r;
    run_ok(c, &a, &r);
    bnk_bn_config cfg = bnk_bn_config_default();
    bn_ref ref;
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(c->out, &d, &ref, false, true);
    ref_free(&ref);
    case_free(&d);
}

static void test_train_nc(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NC, 7, 5, 1, 1);
}
static void test_train_nchw(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NCHW, 3, 4, 3, 5);
}
static void test_train_nhwc(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NHWC, 2, 3, 4, 5);
}

/* oneDNN's nChw8c as a 5-D (N, C/8, H, W, 8) array, two channel blocks. */
static void test_train_nchw8c(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NCHW8C, 2, 16, 3, 5);
}

/* N = 1 is fine for a 4-D tensor: m = H*W values per channel. */
static void test_train_n1_spatial(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NCHW, 1, 2, 2, 3);
}

/* ---- (c) inference, (d) defaults, (e) float64 ----------------------------------------------- */

static void test_infer(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NHWC, 2, 3, 2, 4, 31);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--infer");
    arg(&a, "--fuse-relu");
    arg(&a, "--eps=0.01");
    cli_result r;
    run_ok(c, &a, &r);
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.fuse_relu = true;
    cfg.eps = 0.01;
    bn_ref ref;
    ref_compute(&cfg, &d, 0, true, &ref);
    expect_outputs(c->out, &d, &ref, true, false);
    ref_free(&ref);
    case_free(&d);
}

static void test_defaults(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 9, 4, 1, 1, 41);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--x");
    arg(&a, c->x);
    arg(&a, "--layout=nc");
    arg(&a, "--dy");
    arg(&a, c->dy);
    arg(&a, "--out");
    arg(&a, c->out);
    cli_result r;
    run_ok(c, &a, &r);
    for (int64_t k = 0; k < d.shape.c; k++) {
        d.gamma[k] = 1.0f;
        d.beta[k] = 0.0f;
        d.rmean[k] = 0.0f;
        d.rvar[k] = 1.0f;
    }
    bnk_bn_config cfg = bnk_bn_config_default();
    bn_ref ref;
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(c->out, &d, &ref, false, true);
    ref_free(&ref);

    /* Without --dy: the three forward outputs only. */
    char out2[160];
    snprintf(out2, sizeof out2, "%s/nody", c->root);
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, "nc");
    arg(&a, "--x");
    arg(&a, c->x);
    arg(&a, "--out");
    arg(&a, out2);
    run_ok(c, &a, &r);
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(out2, &d, &ref, false, false);
    ref_free(&ref);
    case_free(&d);
}

static void test_float64_inputs(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NCHW, 2, 3, 3, 3, 51);
    write_case(c, &d, BNK_DTYPE_F64); /* values are floats, so float64 -> float32 is exact */
    args a;
    full_args(&a, c, &d, true, c->out);
    cli_result r;
    run_ok(c, &a, &r);
    bnk_bn_config cfg = bnk_bn_config_default();
    bn_ref ref;
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(c->out, &d, &ref, false, true);
    ref_free(&ref);
    case_free(&d);
}

/* ---- (g) PyTorch fixtures ------------------------------------------------------------------- */

typedef struct torch_params {
    char layout[16];
    int train, unbiased, cumulative, center, scale;
    char momentum[32]; /* "0.1" or "none" */
    char eps[32];
    char step[32];
} torch_params;

static bool read_params(const char *path, torch_params *p) {
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (strcmp(k, "layout") == 0)
            snprintf(p->layout, sizeof p->layout, "%s", v);
        else if (strcmp(k, "torch_momentum") == 0)
            snprintf(p->momentum, sizeof p->momentum, "%s", v);
        else if (strcmp(k, "eps") == 0)
            snprintf(p->eps, sizeof p->eps, "%s", v);
        else if (strcmp(k, "step") == 0)
            snprintf(p->step, sizeof p->step, "%s", v);
        else if (strcmp(k, "train") == 0)
            p->train = strcmp(v, "1") == 0;
        else if (strcmp(k, "unbiased_running_var") == 0)
            p->unbiased = strcmp(v, "1") == 0;
        else if (strcmp(k, "cumulative") == 0)
            p->cumulative = strcmp(v, "1") == 0;
        else if (strcmp(k, "center") == 0)
            p->center = strcmp(v, "1") == 0;
        else if (strcmp(k, "scale") == 0)
            p->scale = strcmp(v, "1") == 0;
    }
    fclose(f);
    return p->layout[0] && p->momentum[0] && p->eps[0];
}

/* Compares a CLI output with a PyTorch file (float32 or float64). */
static void expect_torch(const char *got_dir, const char *got_name, const char *case_dir,
                         const char *want_name) {
    char gp[1100], wp[1100];
    snprintf(gp, sizeof gp, "%s/%s", got_dir, got_name);
    snprintf(wp, sizeof wp, "%s/%s", case_dir, want_name);
    bnk_npy got, want;
    if (bnk_npy_read(gp, &got) != BNK_OK) fail_msg("reading %s: %s", gp, bnk_errmsg());
    if (bnk_npy_read(wp, &want) != BNK_OK) fail_msg("reading %s: %s", wp, bnk_errmsg());
    assert_int_equal(got.dtype, BNK_DTYPE_F32);
    assert_int_equal(got.ndim, want.ndim);
    for (int i = 0; i < got.ndim; i++) assert_int_equal(got.shape[i], want.shape[i]);
    double *w = malloc(want.count * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < want.count; i++)
        w[i] = want.dtype == BNK_DTYPE_F32 ? ((float *)want.data)[i] : ((double *)want.data)[i];
    bnk_test_close_f32(gp, got.data, w, got.count, TORCH_ATOL, TORCH_RTOL);
    free(w);
    bnk_npy_free(&got);
    bnk_npy_free(&want);
}

static bool case_has(const char *dir, const char *name) {
    return file_exists(dir, name);
}

static void run_torch_case(tctx *c, const char *name) {
    char dir[512], params[600];
    snprintf(dir, sizeof dir, "%s/torch/%s", BNK_FIXTURE_DIR, name);
    snprintf(params, sizeof params, "%s/params.txt", dir);
    torch_params p;
    if (!read_params(params, &p)) fail_msg("%s: missing or incomplete", params);

    char out[200], xs[600], gs[600], bs[600], rms[600], rvs[600], dys[600], mom[64], eps[64],
        step[64];
    snprintf(out, sizeof out, "%s/torch_%s", c->root, name);
    snprintf(xs, sizeof xs, "%s/x.npy", dir);
    snprintf(gs, sizeof gs, "%s/gamma.npy", dir);
    snprintf(bs, sizeof bs, "%s/beta.npy", dir);
    snprintf(rms, sizeof rms, "%s/running_mean.npy", dir);
    snprintf(rvs, sizeof rvs, "%s/running_var.npy", dir);
    snprintf(dys, sizeof dys, "%s/dy.npy", dir);
    args a;
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, p.layout);
    arg(&a, "--x");
    arg(&a, xs);
    if (p.scale) {
        arg(&a, "--gamma");
        arg(&a, gs);
    } else {
        arg(&a, "--no-scale");
    }
    if (p.center) {
        arg(&a, "--beta");
        arg(&a, bs);
    } else {
        arg(&a, "--no-center");
    }
    if (case_has(dir, "running_mean.npy")) {
        arg(&a, "--running-mean");
        arg(&a, rms);
    }
    if (case_has(dir, "running_var.npy")) {
        arg(&a, "--running-var");
        arg(&a, rvs);
    }
    snprintf(eps, sizeof eps, "--eps=%s", p.eps);
    arg(&a, eps);
    if (p.cumulative || strcmp(p.momentum, "none") == 0) {
        arg(&a, "--cumulative");
    } else {
        char *end;
        double pm = strtod(p.momentum, &end);
        if (*end || end == p.momentum) fail_msg("%s: bad torch_momentum '%s'", params, p.momentum);
        snprintf(mom, sizeof mom, "--momentum=%.17g", 1.0 - pm); /* bnkit beta = 1 - PyTorch p */
        arg(&a, mom);
    }
    if (p.unbiased) arg(&a, "--unbiased-running-var");
    if (p.step[0]) {
        snprintf(step, sizeof step, "--step=%s", p.step);
        arg(&a, step);
    }
    bool with_dy = p.train && case_has(dir, "dy.npy") && case_has(dir, "dx.npy");
    if (!p.train) arg(&a, "--infer");
    if (with_dy) {
        arg(&a, "--dy");
        arg(&a, dys);
    }
    arg(&a, "--out");
    arg(&a, out);
    cli_result r;
    run_ok(c, &a, &r);

    expect_torch(out, "y.npy", dir, "y.npy");
    if (!p.train) return;
    expect_torch(out, "running_mean.npy", dir, "running_mean_out.npy");
    expect_torch(out, "running_var.npy", dir, "running_var_out.npy");
    if (!with_dy) return;
    expect_torch(out, "dx.npy", dir, "dx.npy");
    if (p.scale) expect_torch(out, "dgamma.npy", dir, "dgamma.npy");
    if (p.center) expect_torch(out, "dbeta.npy", dir, "dbeta.npy");
}

/* Every case listed in tests/fixtures/torch/cases.txt (train/infer, every layout, cumulative,
 * biased/unbiased running variance, no affine parameters). Skipped when the fixtures are absent. */
static void test_torch_fixtures(void **state) {
    tctx *c = *state;
    char list[512];
    snprintf(list, sizeof list, "%s/torch/cases.txt", BNK_FIXTURE_DIR);
    FILE *f = fopen(list, "r");
    if (!f) {
        fprintf(stderr, "note: %s not found; PyTorch comparison skipped\n", list);
        skip();
    }
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n \t#")] = '\0';
        if (!line[0]) continue;
        run_torch_case(c, line);
        n++;
    }
    fclose(f);
    assert_true(n > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_train_nc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_nchw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_nhwc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_nchw8c, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_n1_spatial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_infer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_float64_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torch_fixtures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
