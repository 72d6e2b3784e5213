/* Statistics accuracy on an ill-conditioned channel: mean 1e4, standard deviation 1e-2.
 * Every kernel must give the batch variance of the (float) data within 1e-5 relative, and y, dx
 * close to a double-precision evaluation on the same data. The one-pass formula
 * E[x^2] - E[x]^2 is shown to fail the same check, so the check can tell the two apart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn_cases.h"

enum { M = 4096 };

typedef struct data {
    float x[M], dy[M];
    double exact_mean, exact_var; /* of the float values, in long double */
} data;

static void make_data(data *d) {
    uint64_t rng = 12345;
    for (int i = 0; i < M; i++) {
        d->x[i] = (float)(1e4 + 1e-2 * bnk_test_normal(&rng));
        d->dy[i] = (float)bnk_test_normal(&rng);
    }
    long double s = 0, sq = 0;
    for (int i = 0; i < M; i++) s += d->x[i];
    long double mean = s / M;
    for (int i = 0; i < M; i++) sq += (d->x[i] - mean) * (d->x[i] - mean);
    d->exact_mean = (double)mean;
    d->exact_var = (double)(sq / M);
}

static void test_variance_of_large_mean_channel(void **state) {
    (void)state;
    static data d;
    make_data(&d);
    /* the float data really has the intended spread (float rounding at 1e4 is ~5e-4) */
    assert_true(d.exact_var > 0.5e-4 && d.exact_var < 2e-4);
    const bnk_bn_shape shape = {BNK_LAYOUT_NC, M, 1, 1, 1};
    const bnk_bn_config cfg = bnk_bn_config_default();
    for (int k = 0; k < bnk_bn_kernel_count(); k++) {
        const char *name = bnk_bn_kernel_at(k);
        assert_int_equal(bnk_bn_kernel_select(name), BNK_OK);
        static float y[M];
        double saved[BNK_BN_SAVED_FIELDS];
        float rm = 0, rv = 1, gamma = 1, beta = 0;
        assert_int_equal(
            bnk_bn_forward_train(&cfg, &shape, 0, y, saved, &rm, &rv, d.x, &gamma, &beta), BNK_OK);
        char label[64];
        snprintf(label, sizeof label, "%s batch variance", name);
        bnk_test_close_f64(label, &saved[BNK_SAVED_BATCH_VAR], &d.exact_var, 1, 0, 1e-5);
        snprintf(label, sizeof label, "%s batch mean", name);
        bnk_test_close_f64(label, &saved[BNK_SAVED_BATCH_MEAN], &d.exact_mean, 1, 0, 1e-12);
    }
}

/* The naive one-pass variance E[x^2] - E[x]^2, as some peers compute it. */
static double naive_var_f32(const float *x, int m) {
    float s = 0, sq = 0;
    for (int i = 0; i < m; i++) {
        s += x[i];
        sq += x[i] * x[i];
    }
    return (double)(sq / (float)m - (s / (float)m) * (s / (float)m));
}

static double naive_var_f64(const float *x, int m) {
    double s = 0, sq = 0;
    for (int i = 0; i < m; i++) {
        s += x[i];
        sq += (double)x[i] * x[i];
    }
    return sq / m - (s / m) * (s / m);
}

static void test_one_pass_formula_fails(void **state) {
    (void)state;
    static data d;
    make_data(&d);
    double rel32 = fabs(naive_var_f32(d.x, M) - d.exact_var) / d.exact_var;
    double rel64 = fabs(naive_var_f64(d.x, M) - d.exact_var) / d.exact_var;
    printf("one-pass E[x^2]-E[x]^2 relative error: float %.3g, double %.3g (bound 1e-5)\n", rel32,
           rel64);
    assert_true(rel32 > 1e-5);
    assert_true(rel64 > 1e-5);
}

/* y and dx of every kernel against the double-precision reference on the same float data:
 * the outputs are O(1), and their error must stay at the level of float rounding of O(1)
 * quantities, not of 1e4 * 1e2 (what computing a*x + b directly would give). */
static void test_outputs_of_large_mean_channel(void **state) {
    (void)state;
    static data d;
    static double xd[M], dyd[M], yd[M], dxd[M];
    make_data(&d);
    for (int i = 0; i < M; i++) {
        xd[i] = d.x[i];
        dyd[i] = d.dy[i];
    }
    const bnk_bn_shape shape = {BNK_LAYOUT_NCHW, 4, 1, 32, 32};
    const bnk__bn_dims dims = bnk__bn_dims_of(&shape);
    for (int mode = 0; mode < 3; mode++) {
        bnk_bn_config cfg = bnk_bn_config_default();
        cfg.normalize_with = (bnk_bn_norm)mode;
        cfg.eps = 1e-9; /* eps must not swamp the variance 1e-4 for this check to bite */
        double saved_d[BNK_BN_SAVED_FIELDS], gd = 1.5, bd = 0.25, dgd = 0, dbd = 0;
        /* running stats near the batch's so that running / renorm stay well conditioned */
        float rm = 1e4f, rv = 1e-4f;
        bnk__bn_ref_forward_train_f64(&cfg, &dims, 0, yd, saved_d, &rm, &rv, xd, &gd, &bd);
        bnk__bn_ref_backward_f64(&cfg, &dims, dxd, &dgd, &dbd, dyd, xd, yd, &gd, saved_d);
        for (int k = 0; k < bnk_bn_kernel_count(); k++) {
            const char *name = bnk_bn_kernel_at(k);
            assert_int_equal(bnk_bn_kernel_select(name), BNK_OK);
            static float y[M], dx[M];
            double saved[BNK_BN_SAVED_FIELDS];
            float rmf = 1e4f, rvf = 1e-4f, g = 1.5f, b = 0.25f, dg = 0, db = 0;
            assert_int_equal(
                bnk_bn_forward_train(&cfg, &shape, 0, y, saved, &rmf, &rvf, d.x, &g, &b), BNK_OK);
            assert_int_equal(bnk_bn_backward(&cfg, &shape, dx, &dg, &db, d.dy, d.x, y, &g, saved),
                             BNK_OK);
            char label[80];
            /* |y| ~ 1: a few float roundings; the terms of dx are ~ gamma/std*|dy| ~ 150:
             * 1e-5 of that (ignoring the mean's float rounding would cost ~3e-3 here) */
            snprintf(label, sizeof label, "%s mode %d y", name, mode);
            bnk_test_close_f32(label, y, yd, M, 1e-5, 1e-5);
            snprintf(label, sizeof label, "%s mode %d dx", name, mode);
            bnk_test_close_f32(label, dx, dxd, M, 1e-5 * 150.0, 1e-5);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variance_of_large_mean_channel),
        cmocka_unit_test(test_one_pass_formula_fails),
        cmocka_unit_test(test_outputs_of_large_mean_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
