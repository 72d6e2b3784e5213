/* The stateful layer, and the running-statistic and normalisation formulas checked by hand on
 * tiny inputs (momentum convention, cumulative average, running mode, Batch Renorm's r and d). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/bn.h"
#include "test_util.h"

/* One channel, five values: mean 3.2, biased variance 2.96. */
static const float X5[5] = {1, 2, 3, 4, 6};
static const double MEAN5 = 3.2, VAR5 = 2.96;
static const bnk_bn_shape SHAPE5 = {BNK_LAYOUT_NC, 5, 1, 1, 1};

static void for_each_kernel(void (*check)(const char *kernel)) {
    for (int k = 0; k < bnk_bn_kernel_count(); k++) {
        assert_int_equal(bnk_bn_kernel_select(bnk_bn_kernel_at(k)), BNK_OK);
        check(bnk_bn_kernel_at(k));
    }
}

static void check_momentum_and_bessel(const char *kernel) {
    bnk_bn_config cfg = bnk_bn_config_default(); /* momentum 0.99: 1% of the batch */
    float y[5], rm = 1.0f, rv = 2.0f, g = 1, b = 0;
    double saved[BNK_BN_SAVED_FIELDS];
    assert_int_equal(bnk_bn_forward_train(&cfg, &SHAPE5, 0, y, saved, &rm, &rv, X5, &g, &b),
                     BNK_OK);
    double want_rm = 0.99 * 1.0 + 0.01 * MEAN5, want_rv = 0.99 * 2.0 + 0.01 * VAR5;
    bnk_test_close_f32(kernel, &rm, &want_rm, 1, 0, 1e-6);
    bnk_test_close_f32(kernel, &rv, &want_rv, 1, 0, 1e-6);
    /* unbiased: the batch variance enters as 2.96 * 5/4 */
    cfg.unbiased_running_var = true;
    cfg.momentum = 0.9;
    rm = 1.0f;
    rv = 2.0f;
    assert_int_equal(bnk_bn_forward_train(&cfg, &SHAPE5, 0, y, saved, &rm, &rv, X5, &g, &b),
                     BNK_OK);
    want_rv = 0.9 * 2.0 + 0.1 * VAR5 * 5.0 / 4.0;
    bnk_test_close_f32(kernel, &rv, &want_rv, 1, 0, 1e-6);
}

static void check_running_mode(const char *kernel) {
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.momentum = 0.5;
    cfg.normalize_with = BNK_NORM_RUNNING;
    float y[5], rm = 1.0f, rv = 2.0f, g = 2, b = 0.5f;
    double saved[BNK_BN_SAVED_FIELDS];
    assert_int_equal(bnk_bn_forward_train(&cfg, &SHAPE5, 0, y, saved, &rm, &rv, X5, &g, &b),
                     BNK_OK);
    const double rm_new = 0.5 * 1.0 + 0.5 * MEAN5, rv_new = 0.5 * 2.0 + 0.5 * VAR5;
    double want[5];
    for (int i = 0; i < 5; i++) want[i] = 2.0 * (X5[i] - rm_new) / sqrt(rv_new + 1e-3) + 0.5;
    bnk_test_close_f32(kernel, y, want, 5, 1e-6, 1e-6);
}

static void check_renorm(const char *kernel) {
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.normalize_with = BNK_NORM_RENORM;
    cfg.rmax = 1.1;
    cfg.dmax = 0.5;
    float y[5], rm = 1.0f, rv = 2.0f, g = 1, b = 0;
    double saved[BNK_BN_SAVED_FIELDS];
    assert_int_equal(bnk_bn_forward_train(&cfg, &SHAPE5, 0, y, saved, &rm, &rv, X5, &g, &b),
                     BNK_OK);
    /* r = sqrt(2.961)/sqrt(2.001) = 1.216 -> 1.1; d = (3.2 - 1)/sqrt(2.001) = 1.555 -> 0.5 */
    double want[5];
    for (int i = 0; i < 5; i++) want[i] = (X5[i] - MEAN5) / sqrt(VAR5 + 1e-3) * 1.1 + 0.5;
    bnk_test_close_f32(kernel, y, want, 5, 1e-6, 1e-6);
    /* unclipped r and d */
    cfg.rmax = 3.0;
    cfg.dmax = 5.0;
    rm = 1.0f;
    rv = 2.0f;
    assert_int_equal(bnk_bn_forward_train(&cfg, &SHAPE5, 0, y, saved, &rm, &rv, X5, &g, &b),
                     BNK_OK);
    const double r = sqrt(VAR5 + 1e-3) / sqrt(2.0 + 1e-3), d = (MEAN5 - 1.0) / sqrt(2.0 + 1e-3);
    for (int i = 0; i < 5; i++) want[i] = (X5[i] - MEAN5) / sqrt(VAR5 + 1e-3) * r + d;
    bnk_test_close_f32(kernel, y, want, 5, 1e-6, 1e-6);
    /* rmax = 1, dmax = 0 is plain batch normalisation */
    cfg.rmax = 1.0;
    cfg.dmax = 0.0;
    rm = 1.0f;
    rv = 2.0f;
    assert_int_equal(bnk_bn_forward_train(&cfg, &SHAPE5, 0, y, saved, &rm, &rv, X5, &g, &b),
                     BNK_OK);
    for (int i = 0; i < 5; i++) want[i] = (X5[i] - MEAN5) / sqrt(VAR5 + 1e-3);
    bnk_test_close_f32(kernel, y, want, 5, 1e-6, 1e-6);
}

static void test_formulas_by_hand(void **state) {
    (void)state;
    for_each_kernel(check_momentum_and_bessel);
    for_each_kernel(check_running_mode);
    for_each_kernel(check_renorm);
}

static void test_layer_matches_kernels(void **state) {
    (void)state;
    enum { N = 6, C = 3, H = 2, W = 2, NUMEL = N * C * H * W };
    const bnk_bn_shape shape = {BNK_LAYOUT_NHWC, N, C, H, W};
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.fuse_relu = true;
    bnk_bn_layer *layer = NULL;
    assert_int_equal(bnk_bn_layer_create(&layer, &cfg, C), BNK_OK);
    assert_int_equal(bnk_bn_layer_channels(layer), C);
    assert_int_equal(bnk_bn_layer_step(layer), 0);
    for (int c = 0; c < C; c++) {
        assert_true(bnk_bn_layer_gamma(layer)[c] == 1.0f && bnk_bn_layer_beta(layer)[c] == 0.0f);
        assert_true(bnk_bn_layer_running_mean(layer)[c] == 0.0f);
        assert_true(bnk_bn_layer_running_var(layer)[c] == 1.0f);
        assert_true(bnk_bn_layer_dgamma(layer)[c] == 0.0f && bnk_bn_layer_dbeta(layer)[c] == 0.0f);
        bnk_bn_layer_gamma(layer)[c] = 0.5f + (float)c;
        bnk_bn_layer_beta(layer)[c] = 0.25f * (float)c;
    }
    float x[NUMEL], dy[NUMEL], y[NUMEL], y2[NUMEL], dx[NUMEL], dx2[NUMEL];
    uint64_t rng = 7;
    for (int i = 0; i < NUMEL; i++) {
        x[i] = (float)(2.0 * bnk_test_normal(&rng) + 1.0);
        dy[i] = (float)bnk_test_normal(&rng);
    }
    float gamma[C], beta[C], rm[C] = {0, 0, 0}, rv[C] = {1, 1, 1}, dg[C] = {0}, db[C] = {0};
    memcpy(gamma, bnk_bn_layer_gamma(layer), sizeof gamma);
    memcpy(beta, bnk_bn_layer_beta(layer), sizeof beta);
    double saved[BNK_BN_SAVED_FIELDS * C];

    for (int step = 0; step < 2; step++) {
        assert_int_equal(bnk_bn_layer_forward(layer, &shape, true, y, x), BNK_OK);
        assert_int_equal(bnk_bn_layer_step(layer), step + 1);
        assert_int_equal(
            bnk_bn_forward_train(&cfg, &shape, step, y2, saved, rm, rv, x, gamma, beta), BNK_OK);
        assert_memory_equal(y, y2, sizeof y);
        assert_memory_equal(bnk_bn_layer_running_mean(layer), rm, sizeof rm);
        assert_memory_equal(bnk_bn_layer_running_var(layer), rv, sizeof rv);
        assert_memory_equal(bnk_bn_layer_saved(layer), saved, sizeof saved);
        assert_int_equal(bnk_bn_layer_backward(layer, &shape, dx, dy, x, y), BNK_OK);
        assert_int_equal(bnk_bn_backward(&cfg, &shape, dx2, dg, db, dy, x, y2, gamma, saved),
                         BNK_OK);
        assert_memory_equal(dx, dx2, sizeof dx);
    }
    /* gradients accumulated over both backward calls */
    assert_memory_equal(bnk_bn_layer_dgamma(layer), dg, sizeof dg);
    assert_memory_equal(bnk_bn_layer_dbeta(layer), db, sizeof db);
    bnk_bn_layer_zero_grad(layer);
    for (int c = 0; c < C; c++)
        assert_true(bnk_bn_layer_dgamma(layer)[c] == 0.0f && bnk_bn_layer_dbeta(layer)[c] == 0.0f);

    /* inference uses the running statistics and leaves the step alone */
    assert_int_equal(bnk_bn_layer_forward(layer, &shape, false, y, x), BNK_OK);
    assert_int_equal(bnk_bn_forward_infer(&cfg, &shape, y2, x, gamma, beta, rm, rv), BNK_OK);
    assert_memory_equal(y, y2, sizeof y);
    assert_int_equal(bnk_bn_layer_step(layer), 2);

    /* wrong channel count, invalid config (kept unchanged) */
    const bnk_bn_shape wrong = {BNK_LAYOUT_NHWC, N, C + 1, H, W};
    assert_int_equal(bnk_bn_layer_forward(layer, &wrong, true, y, x), BNK_ERR_SHAPE);
    bnk_bn_config bad = cfg;
    bad.eps = -1.0;
    assert_int_equal(bnk_bn_layer_set_config(layer, &bad), BNK_ERR_PARAM);
    assert_true(bnk_bn_layer_config(layer)->eps == cfg.eps);
    bnk_bn_layer_destroy(layer);
    bnk_bn_layer_destroy(NULL);
}

/* Cumulative averaging: after k steps the running mean is the plain average of the k batch
 * means (PyTorch momentum=None), whatever the momentum says. */
static void test_cumulative_average(void **state) {
    (void)state;
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.cumulative = true;
    bnk_bn_layer *layer = NULL;
    assert_int_equal(bnk_bn_layer_create(&layer, &cfg, 1), BNK_OK);
    const bnk_bn_shape shape = {BNK_LAYOUT_NC, 4, 1, 1, 1};
    const float batches[3][4] = {{1, 2, 3, 4}, {10, 10, 12, 12}, {-3, -1, -1, -3}};
    double mean_sum = 0, var_sum = 0;
    float y[4];
    for (int k = 0; k < 3; k++) {
        assert_int_equal(bnk_bn_layer_forward(layer, &shape, true, y, batches[k]), BNK_OK);
        double mu = 0, v = 0;
        for (int i = 0; i < 4; i++) mu += batches[k][i] / 4.0;
        for (int i = 0; i < 4; i++) v += (batches[k][i] - mu) * (batches[k][i] - mu) / 4.0;
        mean_sum += mu;
        var_sum += v;
        double want_m = mean_sum / (k + 1), want_v = var_sum / (k + 1);
        bnk_test_close_f32("cumulative mean", bnk_bn_layer_running_mean(layer), &want_m, 1, 1e-6,
                           1e-6);
        bnk_test_close_f32("cumulative var", bnk_bn_layer_running_var(layer), &want_v, 1, 1e-6,
                           1e-6);
    }
    bnk_bn_layer_destroy(layer);
}

static void test_layer_create_errors(void **state) {
    (void)state;
    bnk_bn_config cfg = bnk_bn_config_default();
    bnk_bn_layer *layer = (bnk_bn_layer *)&cfg; /* must be reset to NULL on failure */
    assert_int_equal(bnk_bn_layer_create(&layer, &cfg, 0), BNK_ERR_SIZE);
    assert_null(layer);
    assert_int_equal(bnk_bn_layer_create(NULL, &cfg, 3), BNK_ERR_NULL);
    cfg.momentum = 1.5;
    assert_int_equal(bnk_bn_layer_create(&layer, &cfg, 3), BNK_ERR_PARAM);
    assert_null(layer);
    cfg = bnk_bn_config_default();
    assert_int_equal(bnk_bn_layer_create(&layer, &cfg, INT64_MAX), BNK_ERR_OVERFLOW);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formulas_by_hand),
        cmocka_unit_test(test_layer_matches_kernels),
        cmocka_unit_test(test_cumulative_average),
        cmocka_unit_test(test_layer_create_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
