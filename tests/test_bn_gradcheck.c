/* Finite-difference gradient checks in double precision: for every case of bn_cases.h and every
 * layout, the reference backward (run on double data) must match central differences of the
 * reference forward for dx, dgamma and dbeta. The loss is L = sum(w * y) with fixed random w, so
 * dL/dy = w.
 *
 * Batch Renorm's r and d are constants in the gradient (stop-gradient), so for renorm cases the
 * loss freezes them at their values in the unperturbed forward: it normalises with the batch
 * statistics (the batch mode, itself checked here) and applies the frozen r, d, affine and ReLU
 * by hand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn_cases.h"

typedef struct problem {
    bnk__bn_dims d;
    bnk_bn_config cfg;
    int64_t step;
    size_t numel;
    double *x, *w, *y, *gamma, *beta;
    float rm0[8], rv0[8];
    double frozen_r[8], frozen_d[8]; /* renorm only */
} problem;

/* L(x, gamma, beta) with the running statistics reset to their initial values. */
static double loss(problem *p) {
    float rm[8], rv[8];
    double saved[BNK_BN_SAVED_FIELDS * 8];
    memcpy(rm, p->rm0, sizeof rm);
    memcpy(rv, p->rv0, sizeof rv);
    if (p->cfg.normalize_with != BNK_NORM_RENORM) {
        bnk__bn_ref_forward_train_f64(&p->cfg, &p->d, p->step, p->y, saved, rm, rv, p->x, p->gamma,
                                      p->beta);
    } else {
        bnk_bn_config plain = p->cfg;
        plain.normalize_with = BNK_NORM_BATCH;
        plain.fuse_relu = false;
        plain.center = false;
        plain.scale = false;
        /* y = xhat0 = (x - mu~)/sqrt(var~ + eps) */
        bnk__bn_ref_forward_train_f64(&plain, &p->d, p->step, p->y, saved, rm, rv, p->x, NULL,
                                      NULL);
        const size_t m = p->d.n * p->d.hw;
        for (size_t c = 0; c < p->d.c; c++) {
            const double g = p->cfg.scale ? p->gamma[c] : 1.0, b = p->cfg.center ? p->beta[c] : 0.0;
            for (size_t j = 0; j < m; j++) {
                double *v = &p->y[bnk_case_index(&p->d, c, j)];
                *v = g * (*v * p->frozen_r[c] + p->frozen_d[c]) + b;
                if (p->cfg.fuse_relu && *v < 0.0) *v = 0.0;
            }
        }
    }
    double l = 0.0;
    for (size_t i = 0; i < p->numel; i++) l += p->w[i] * p->y[i];
    return l;
}

/* Central difference of L with respect to *v. */
static double numeric(problem *p, double *v) {
    const double h = 1e-6 * fmax(1.0, fabs(*v)), keep = *v;
    *v = keep + h;
    double lp = loss(p);
    *v = keep - h;
    double lm = loss(p);
    *v = keep;
    return (lp - lm) / (2.0 * h);
}

static void check_case(const bnk_case *tc, bnk_layout layout) {
    problem p = {0};
    const size_t C = 4;
    const bnk_bn_shape shape = {layout, layout == BNK_LAYOUT_NC ? 9 : 3, (int64_t)C,
                                layout == BNK_LAYOUT_NC ? 1 : 2, layout == BNK_LAYOUT_NC ? 1 : 3};
    p.d = bnk__bn_dims_of(&shape);
    p.cfg = tc->cfg;
    p.step = tc->step;
    p.numel = bnk_bn_shape_numel(&shape);
    double *buf = calloc(7 * p.numel + 4 * C, sizeof(double));
    assert_non_null(buf);
    p.x = buf;
    p.w = p.x + p.numel;
    p.y = p.w + p.numel;
    double *dx = p.y + p.numel, *y_fwd = dx + p.numel, *z = y_fwd + p.numel;
    p.gamma = z + 2 * p.numel;
    p.beta = p.gamma + C;
    double *dgamma = p.beta + C, *dbeta = dgamma + C;

    uint64_t rng = 0x5eed0001u + (uint64_t)layout;
    bnk_case_fill_x(&p.d, p.x, z, &rng);
    for (size_t i = 0; i < p.numel; i++) p.w[i] = bnk_test_normal(&rng);
    for (size_t c = 0; c < C; c++) {
        p.gamma[c] = 0.5 + bnk_test_uniform(&rng);
        p.beta[c] = bnk_test_normal(&rng);
        /* backward accumulates: start from non-zero values and subtract them afterwards */
        dgamma[c] = 0.25;
        dbeta[c] = -0.5;
    }
    bnk_case_fill_running(C, p.rm0, p.rv0);

    float rm[8], rv[8];
    double saved[BNK_BN_SAVED_FIELDS * 8];
    memcpy(rm, p.rm0, sizeof rm);
    memcpy(rv, p.rv0, sizeof rv);
    bnk__bn_ref_forward_train_f64(&p.cfg, &p.d, p.step, y_fwd, saved, rm, rv, p.x, p.gamma, p.beta);
    bnk__bn_ref_backward_f64(&p.cfg, &p.d, dx, dgamma, dbeta, p.w, p.x, y_fwd, p.gamma, saved);
    for (size_t c = 0; c < C; c++) {
        p.frozen_r[c] = saved[BNK_SAVED_RENORM_R * C + c];
        p.frozen_d[c] = saved[BNK_SAVED_RENORM_D * C + c];
        dgamma[c] -= 0.25;
        dbeta[c] += 0.5;
    }

    /* Central differences with h = 1e-6 have truncation error O(h^2) and rounding error
     * O(1e-16/h) = 1e-10 on O(1) losses: 1e-6 leaves a wide margin. */
    const double atol = 1e-6, rtol = 1e-6;
    char label[160];
    double *num = calloc(p.numel, sizeof(double));
    assert_non_null(num);
    for (size_t i = 0; i < p.numel; i++) num[i] = numeric(&p, &p.x[i]);
    snprintf(label, sizeof label, "%s layout %d dx", tc->name, (int)layout);
    bnk_test_close_f64(label, dx, num, p.numel, atol, rtol);

    double num_g[8], num_b[8], zero[8] = {0};
    for (size_t c = 0; c < C; c++) {
        num_g[c] = numeric(&p, &p.gamma[c]);
        num_b[c] = numeric(&p, &p.beta[c]);
    }
    snprintf(label, sizeof label, "%s layout %d dgamma", tc->name, (int)layout);
    /* a disabled scale/center has no gradient and its buffer is left alone */
    bnk_test_close_f64(label, dgamma, p.cfg.scale ? num_g : zero, C, atol, rtol);
    snprintf(label, sizeof label, "%s layout %d dbeta", tc->name, (int)layout);
    bnk_test_close_f64(label, dbeta, p.cfg.center ? num_b : zero, C, atol, rtol);
    if (!p.cfg.scale)
        bnk_test_close_f64("gamma is inert when scale is off", num_g, zero, C, 1e-8, 0);
    if (!p.cfg.center)
        bnk_test_close_f64("beta is inert when center is off", num_b, zero, C, 1e-8, 0);
    free(num);
    free(buf);
}

static void test_gradcheck_all_cases(void **state) {
    (void)state;
    bnk_case cases[64];
    size_t n = bnk_cases(cases, 64);
    assert_true(n <= 64);
    const bnk_layout layouts[] = {BNK_LAYOUT_NC, BNK_LAYOUT_NCHW, BNK_LAYOUT_NHWC};
    for (size_t i = 0; i < n; i++)
        for (size_t l = 0; l < 3; l++) check_case(&cases[i], layouts[l]);
}

/* The clamp derivative matters: with the mean clipped on every channel, dx must NOT equal the
 * unclipped textbook gradient (so a kernel ignoring the clip would fail the check above). */
static void test_clip_changes_gradient(void **state) {
    (void)state;
    const bnk_bn_shape shape = {BNK_LAYOUT_NC, 6, 1, 1, 1};
    bnk__bn_dims d = bnk__bn_dims_of(&shape);
    double x[6] = {1, 2, 4, 4, 5, 9}, w[6] = {1, -2, 0.5, 3, -1, 0.25}, y[6], dx0[6], dx1[6];
    double gamma = 1.5, beta = 0.1, dg = 0, db = 0, saved[BNK_BN_SAVED_FIELDS];
    float rm = 0, rv = 1;
    bnk_bn_config cfg = bnk_bn_config_default();
    bnk__bn_ref_forward_train_f64(&cfg, &d, 0, y, saved, &rm, &rv, x, &gamma, &beta);
    bnk__bn_ref_backward_f64(&cfg, &d, dx0, &dg, &db, w, x, y, &gamma, saved);
    cfg.mean_clip = (bnk_range){-1.0, 1.0};
    rm = 0;
    rv = 1;
    bnk__bn_ref_forward_train_f64(&cfg, &d, 0, y, saved, &rm, &rv, x, &gamma, &beta);
    bnk__bn_ref_backward_f64(&cfg, &d, dx1, &dg, &db, w, x, y, &gamma, saved);
    /* clipped mean: the -mean(g) term disappears, so sum(dx) = gamma*s*sum(w) != 0 */
    double s0 = 0, s1 = 0;
    for (int i = 0; i < 6; i++) {
        s0 += dx0[i];
        s1 += dx1[i];
    }
    assert_true(fabs(s0) < 1e-12);
    assert_true(fabs(s1) > 1e-3);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_all_cases),
        cmocka_unit_test(test_clip_changes_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
