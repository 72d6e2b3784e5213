/* The GP sampler (src/tune/gp.c, gp_acq.c): GP regression, log EI, the marginal likelihood's
 * gradient, determinism, bounds and conditional activity, pruned/failed/running trials, and
 * regret against random search on Branin, Hartmann-6 and a conditional toy.
 *
 * BNKIT_GP_TIMING=1 also times one suggestion with 50, 200 and 500 trials in the history. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "synthetic.h"
#include "test_util.h"
#include "tune/gp.h"
#include "tune/tune_internal.h"

static bnk_sampler_config gp_config(uint64_t seed) {
    bnk_sampler_config c = {.kind = BNK_SAMPLER_GP,
                            .seed = seed,
                            .grid_points = 5,
                            .n_startup = 10,
                            .n_candidates = 24,
                            .prior_weight = 1,
                            .constant_liar = true};
    return c;
}

static bnk_trial complete_trial(int64_t number, const bnk_point *x, double loss) {
    bnk_trial t = {.id = number + 1, .number = number, .state = BNK_TRIAL_COMPLETE, .x = *x};
    t.value = t.loss = loss;
    return t;
}

/* Fails unless x is a valid point of space: active values in bounds (INT integral, CAT a choice
 * index), inactive ones NaN. */
static void check_point(const bnk_space *s, const bnk_point *x) {
    for (int i = 0; i < s->n; i++) {
        const bnk_param *p = &s->params[i];
        const double v = x->v[i];
        if (!bnk_space_active(s, x, i)) {
            if (!isnan(v)) fail_msg("parameter %s is inactive but has value %g", p->name, v);
            continue;
        }
        if (p->kind == BNK_PARAM_CAT) {
            if (!(v >= 0 && v < p->nchoices && v == floor(v)))
                fail_msg("parameter %s: bad choice index %g", p->name, v);
        } else {
            if (!(v >= p->lo && v <= p->hi))
                fail_msg("parameter %s: %g outside [%g, %g]", p->name, v, p->lo, p->hi);
            if (p->kind == BNK_PARAM_INT && v != floor(v))
                fail_msg("parameter %s: %g is not an integer", p->name, v);
        }
    }
}

/* ---- log EI -------------------------------------------------------------------------------- */

static void test_log_h_reference(void **state) {
    (void)state;
    /* log(phi(z) + z Phi(z)) and Phi(z)/h(z) from mpmath at 40 digits:
     *   mp.log(mp.npdf(z) + z*mp.ncdf(z)), mp.ncdf(z)/(mp.npdf(z) + z*mp.ncdf(z)) */
    static const double ref[][3] = {
        {-1e4, -50000019.339619307, 10000.000199999994},
        {-40, -808.29856835661996, 40.049906657648518},
        {-20, -206.9178385094251, 20.099262811101282},
        {-10, -55.553122036122356, 10.194383033412553},
        {-6, -22.578879392169797, 6.3098407732098316},
        {-5, -16.74430116266099, 5.3618162412880885},
        {-3, -7.8696860596030285, 3.5323375176251605},
        {-1, -2.4851210257126413, 1.9042712333296918},
        {0, -0.91893853320467274, 1.2533141373155003},
        {1, 0.08002621884930694, 0.77663872520173926},
        {3, 1.0987396653277078, 0.33284096845179524},
        {40, 3.6888794541139363, 0.025},
    };
    for (size_t k = 0; k < sizeof ref / sizeof ref[0]; k++) {
        double ratio;
        const double lh = bnk__gp_log_h(ref[k][0], &ratio);
        /* The direct branch (z > -5) loses < 2 digits to cancellation in phi + z Phi; 1e-13
         * relative leaves a margin of 100 over that. */
        bnk_test_close_at("log h", k, lh, ref[k][1], 1e-13, 1e-13);
        bnk_test_close_at("Phi/h", k, ratio, ref[k][2], 1e-13, 1e-12);
    }
}

static void test_log_h_monotone(void **state) {
    (void)state;
    /* h is increasing (h' = Phi > 0), so log h must be strictly increasing and finite on a fine
     * grid through both branches and the switch at z = -5; Phi/h must match the slope. */
    double prev = -INFINITY;
    for (int k = 0; k <= 80000; k++) {
        const double z = -40 + k * 1e-3;
        double ratio;
        const double lh = bnk__gp_log_h(z, &ratio);
        if (!isfinite(lh) || !(lh > prev)) fail_msg("log h not increasing at z = %.4f", z);
        prev = lh;
        if (k % 997 == 0) { /* central difference, step 1e-5: truncation ~1e-10 */
            const double fd =
                (bnk__gp_log_h(z + 1e-5, NULL) - bnk__gp_log_h(z - 1e-5, NULL)) / 2e-5;
            bnk_test_close_at("d log h / dz", (size_t)k, ratio, fd, 1e-6, 1e-6);
        }
    }
    /* Continuity across the branch switch. */
    bnk_test_close_at("switch", 0, bnk__gp_log_h(-5 - 1e-12, NULL), bnk__gp_log_h(-5 + 1e-12, NULL),
                      1e-10, 0);
    assert_true(isfinite(bnk__gp_log_h(-1e150, NULL)));
    assert_true(isfinite(bnk__gp_log_h(1e150, NULL)));
}

/* ---- GP regression ---------------------------------------------------------------------- */

/* Mixed data for the gradient checks: d = 3 (numeric, categorical with 3 choices, a numeric
 * that is inactive in every third row), n = 14. */
enum { GN = 14, GD = 3 };
static void mixed_data(bnk__gp_data *data, double *x, double *y, uint64_t seed) {
    uint64_t rng = seed;
    for (int j = 0; j < GN; j++) {
        double *xj = x + j * 2 * GD;
        xj[0] = bnk_test_uniform(&rng);
        xj[1] = 0;
        xj[2] = (double)bnk__rng_below(&rng, 3);
        xj[3] = 0;
        const bool inactive = j % 3 == 0;
        xj[4] = inactive ? 0.5 : bnk_test_uniform(&rng);
        xj[5] = inactive ? 1 : 0;
        y[j] = sin(5 * xj[0]) + 0.5 * xj[2] + (inactive ? 0 : xj[4] * xj[4]);
    }
    double mean = 0, var = 0;
    for (int j = 0; j < GN; j++) mean += y[j] / GN;
    for (int j = 0; j < GN; j++) var += (y[j] - mean) * (y[j] - mean) / GN;
    for (int j = 0; j < GN; j++) y[j] = (y[j] - mean) / sqrt(var);
    *data = (bnk__gp_data){.n = GN, .d = GD, .x = x, .y = y};
    data->cat[1] = true;
}

static void test_mll_gradient(void **state) {
    (void)state;
    double x[GN * 2 * GD], y[GN], work[3 * GN * GN + GN];
    bnk__gp_data data;
    mixed_data(&data, x, y, 42);
    uint64_t rng = 7;
    for (int trial = 0; trial < 5; trial++) {
        double theta[GD + 2], grad[GD + 2];
        for (int i = 0; i < GD; i++) theta[i] = -1 + 3 * bnk_test_uniform(&rng);
        theta[GD] = -0.5 + bnk_test_uniform(&rng);
        theta[GD + 1] = log(1e-3) + 3 * bnk_test_uniform(&rng);
        const double lp = bnk__gp_log_posterior(&data, theta, grad, work);
        assert_true(isfinite(lp));
        assert_true(bnk__gp_log_posterior(&data, theta, NULL, work) == lp);
        for (int p = 0; p < GD + 2; p++) {
            /* Central difference, step 1e-5: truncation ~h^2 |f'''| < 1e-9, rounding
             * ~eps |f| / h ~ 1e-10; 1e-6 + 1e-5 relative covers both. */
            double tp[GD + 2], tm[GD + 2];
            memcpy(tp, theta, sizeof tp);
            memcpy(tm, theta, sizeof tm);
            tp[p] += 1e-5;
            tm[p] -= 1e-5;
            const double fd = (bnk__gp_log_posterior(&data, tp, NULL, work) -
                               bnk__gp_log_posterior(&data, tm, NULL, work)) /
                              2e-5;
            bnk_test_close_at("d log posterior / d theta", (size_t)(trial * 10 + p), grad[p], fd,
                              1e-6, 1e-5);
        }
    }
}

static void test_predict_gradient(void **state) {
    (void)state;
    double x[GN * 2 * GD], y[GN], work[3 * GN];
    bnk__gp_data data;
    mixed_data(&data, x, y, 43);
    double theta[GD + 2] = {log(4.0), log(2.0), log(9.0), 0, log(1e-3)};
    bnk__gp gp = {0};
    assert_int_equal(bnk__gp_set_theta(&gp, &data, theta), BNK_OK);
    uint64_t rng = 11;
    for (int trial = 0; trial < 10; trial++) {
        double q[2 * GD] = {bnk_test_uniform(&rng), 0, (double)bnk__rng_below(&rng, 3), 0,
                            bnk_test_uniform(&rng), 0};
        double mu, var, dmu[GD], dvar[GD], mu1, var1, mu2, var2;
        bnk__gp_predict(&gp, q, &mu, &var, dmu, dvar, work);
        /* The batched prediction computes the same quantities another way (BLAS-3 solve). */
        double mb, vb, wb[GN];
        bnk__gp_predict_many(&gp, 1, q, &mb, &vb, wb);
        bnk_test_close_at("mean batch", (size_t)trial, mb, mu, 1e-12, 1e-10);
        bnk_test_close_at("var batch", (size_t)trial, vb, var, 1e-12, 1e-10);
        for (int i = 0; i < GD; i += 2) { /* numeric dimensions 0 and 2 */
            double qp[2 * GD], qm[2 * GD];
            memcpy(qp, q, sizeof q);
            memcpy(qm, q, sizeof q);
            qp[2 * i] += 1e-6;
            qm[2 * i] -= 1e-6;
            bnk__gp_predict(&gp, qp, &mu1, &var1, NULL, NULL, work);
            bnk__gp_predict(&gp, qm, &mu2, &var2, NULL, NULL, work);
            /* Central difference, step 1e-6, of O(1) smooth functions: error < 1e-7. */
            bnk_test_close_at("d mean", (size_t)(trial * 10 + i), dmu[i], (mu1 - mu2) / 2e-6, 1e-6,
                              1e-5);
            bnk_test_close_at("d var", (size_t)(trial * 10 + i), dvar[i], (var1 - var2) / 2e-6,
                              1e-6, 1e-5);
        }
        assert_true(dmu[1] == 0 && dvar[1] == 0); /* categorical */
    }
    bnk__gp_free(&gp);
    bnk__gp_free(&gp); /* twice is harmless */
    bnk__gp_free(NULL);
}

static void test_regression_1d(void **state) {
    (void)state;
    enum { N = 6 };
    double x[N * 2], y[N], work[3 * N];
    for (int j = 0; j < N; j++) {
        x[2 * j] = 0.1 * j; /* data in [0, 0.5] */
        x[2 * j + 1] = 0;
        y[j] = sin(6 * x[2 * j]);
    }
    bnk__gp_data data = {.n = N, .d = 1, .x = x, .y = y};
    /* Fixed hyperparameters: length scale 0.2, s = 1, minimal noise. */
    double theta[3] = {log(25.0), 0, log(1e-9)};
    bnk__gp gp = {0};
    assert_int_equal(bnk__gp_set_theta(&gp, &data, theta), BNK_OK);
    for (int j = 0; j < N; j++) {
        double mu, var;
        bnk__gp_predict(&gp, x + 2 * j, &mu, &var, NULL, NULL, work);
        /* noise 1e-6 against s = 1: the posterior mean misses y by ~1e-6 |K^-1 y|. */
        bnk_test_close_at("mean at data", (size_t)j, mu, y[j], 1e-4, 0);
        if (!(var < 1e-5)) fail_msg("variance at data point %d is %g", j, var);
    }
    double far[2] = {1.0, 0}, mu, var;
    bnk__gp_predict(&gp, far, &mu, &var, NULL, NULL, work);
    if (!(var > 0.9)) fail_msg("variance 2.5 length scales away is %g, expected > 0.9", var);

    /* The MAP fit on the same (standardised) data interpolates too. */
    double mean = 0, sd = 0;
    for (int j = 0; j < N; j++) mean += y[j] / N;
    for (int j = 0; j < N; j++) sd += (y[j] - mean) * (y[j] - mean) / N;
    sd = sqrt(sd);
    for (int j = 0; j < N; j++) y[j] = (y[j] - mean) / sd;
    uint64_t rng = 1;
    bnk__gp fitted = {0};
    assert_int_equal(bnk__gp_fit(&fitted, &data, 2, &rng), BNK_OK);
    double vmax_data = 0;
    for (int j = 0; j < N; j++) {
        bnk__gp_predict(&fitted, x + 2 * j, &mu, &var, NULL, NULL, work);
        /* a smooth function with a fitted noise of ~1e-3 or less: residuals < 0.05 sd */
        bnk_test_close_at("fitted mean at data", (size_t)j, mu, y[j], 0.05, 0);
        if (var > vmax_data) vmax_data = var;
    }
    bnk__gp_predict(&fitted, far, &mu, &var, NULL, NULL, work);
    printf("fitted: lam %.3g (length %.3g), s %.3g, noise %.3g; var at data <= %.3g, at 1.0 %.3g\n",
           fitted.lam[0], 1 / sqrt(fitted.lam[0]), fitted.scale, fitted.noise, vmax_data, var);
    if (!(vmax_data < 0.01 && var > 10 * vmax_data))
        fail_msg("fitted variance: %g at data, %g far away", vmax_data, var);
    bnk__gp_free(&gp);
    bnk__gp_free(&fitted);
}

/* ---- The sampler ------------------------------------------------------------------------- */

typedef double (*objective_fn)(const bnk_point *x);

static bnk_point random_point(const bnk_space *s, uint64_t seed, int64_t number) {
    uint64_t rng = bnk__trial_rng(seed, number, BNK__STREAM_RANDOM);
    bnk_point x;
    bnk__sample_random(s, &rng, &x);
    return x;
}

/* Runs `budget` sequential trials (GP or random) into hist [budget]; returns the best loss. */
static double run_study(bool gp, const bnk_space *s, objective_fn f, int budget, uint64_t seed,
                        bnk_trial *hist) {
    const bnk_sampler_config cfg = gp_config(seed);
    double best = INFINITY;
    for (int t = 0; t < budget; t++) {
        bnk_point x;
        if (gp) {
            bnk_status st = bnk__gp_suggest(&cfg, s, hist, t, t, &x);
            if (st != BNK_OK) fail_msg("trial %d: %s: %s", t, bnk_status_str(st), bnk_errmsg());
        } else {
            x = random_point(s, seed, t);
        }
        check_point(s, &x);
        hist[t] = complete_trial(t, &x, f(&x));
        if (hist[t].loss < best) best = hist[t].loss;
    }
    return best;
}

static void test_startup_is_random(void **state) {
    (void)state;
    bnk_space s;
    bnk_synth_cond_space(&s);
    bnk_trial hist[12];
    const bnk_sampler_config cfg = gp_config(5);
    for (int t = 0; t < 10; t++) { /* 10 = n_startup: trials 0..9 are the random sampler's */
        bnk_point x, r = random_point(&s, 5, t);
        assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, t, t, &x), BNK_OK);
        assert_memory_equal(&x, &r, sizeof x);
        hist[t] = complete_trial(t, &x, bnk_synth_cond(&x));
    }
}

static void test_deterministic(void **state) {
    (void)state;
    bnk_space s;
    bnk_synth_branin_space(&s);
    bnk_trial hist[16];
    run_study(false, &s, bnk_synth_branin, 15, 3, hist);
    const bnk_sampler_config cfg = gp_config(3);
    bnk_point a, b, c;
    assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, 15, 15, &a), BNK_OK);
    assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, 15, 15, &b), BNK_OK);
    assert_memory_equal(&a, &b, sizeof a);
    check_point(&s, &a);
    /* Another trial number draws other candidates; the point may move a little but stays
     * valid. */
    assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, 15, 16, &c), BNK_OK);
    check_point(&s, &c);
}

/* Mixed space with every kind: conditional FLOAT (two parents' values), log FLOAT, small INT
 * (exhaustive search), large log INT (line search). */
static void mixed_space(bnk_space *s) {
    bnk_space_init(s);
    assert_int_equal(bnk_space_add(s, "kind=cat:a,b,c"), BNK_OK);
    assert_int_equal(bnk_space_add(s, "u=float:0:1@kind=a"), BNK_OK);
    assert_int_equal(bnk_space_add(s, "v=log:1e-4:1@kind=b"), BNK_OK);
    assert_int_equal(bnk_space_add(s, "k=int:1:8"), BNK_OK);
    assert_int_equal(bnk_space_add(s, "big=logint:1:1000@kind=a|b"), BNK_OK);
    assert_int_equal(bnk_space_add(s, "opt=cat:sgd,adam"), BNK_OK);
    assert_int_equal(bnk_space_add(s, "beta=float:0.5:0.999@opt=adam"), BNK_OK);
}

static double mixed_objective(const bnk_point *x) {
    double f = 0.1 * fabs(x->v[3] - 5);
    switch ((int)x->v[0]) {
    case 0:
        f += pow(x->v[1] - 0.7, 2) + 0.05 * fabs(log(x->v[4] / 30));
        break;
    case 1:
        f += 0.1 + pow(log10(x->v[2]) + 3, 2) / 8 + 0.05 * fabs(log(x->v[4] / 30));
        break;
    default:
        f += 1;
    }
    if ((int)x->v[5] == 1)
        f += pow(x->v[6] - 0.9, 2);
    else
        f += 0.05;
    return f;
}

static void test_bounds_and_activity(void **state) {
    (void)state;
    bnk_space s;
    mixed_space(&s);
    enum { B = 30 };
    bnk_trial hist[B];
    const double best = run_study(true, &s, mixed_objective, B, 9, hist); /* checks each point */
    printf("mixed space: best loss %.4f after %d trials (optimum 0)\n", best, B);
    int used[3] = {0};
    for (int t = 10; t < B; t++) used[(int)hist[t].x.v[0]]++;
    printf("GP trials per kind: a %d, b %d, c %d\n", used[0], used[1], used[2]);
}

static void test_failed_pruned_running(void **state) {
    (void)state;
    bnk_space s;
    bnk_space_init(&s);
    assert_int_equal(bnk_space_add(&s, "x=float:0:1"), BNK_OK);
    enum { N = 12 };
    bnk_trial hist[N + 4];
    for (int t = 0; t < N; t++) { /* data on [0, 0.5], falling towards the optimum 0.8 */
        bnk_point x = {{0.5 * (t + 0.5) / N}};
        hist[t] = complete_trial(t, &x, pow(x.v[0] - 0.8, 2));
    }
    bnk_sampler_config cfg = gp_config(1);
    bnk_point p0, p;
    assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, N, N + 3, &p0), BNK_OK);

    /* FAILED trials, a COMPLETE with a NaN loss and a PRUNED trial without any finite value
     * never enter the model: same point. */
    double nan_curve[2] = {NAN, NAN};
    bnk_point q = {{0.9}};
    hist[N] = complete_trial(N, &q, NAN);
    hist[N + 1] = complete_trial(N + 1, &q, 0);
    hist[N + 1].state = BNK_TRIAL_FAILED;
    hist[N + 2] = complete_trial(N + 2, &q, NAN);
    hist[N + 2].state = BNK_TRIAL_PRUNED;
    hist[N + 2].ncurve = 2;
    hist[N + 2].curve = nan_curve;
    assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, N + 3, N + 3, &p), BNK_OK);
    assert_memory_equal(&p, &p0, sizeof p);

    /* A PRUNED trial with a finite reported loss does. */
    double curve[2] = {5.0, 0.5};
    hist[N + 2].ncurve = 2;
    hist[N + 2].curve = curve;
    assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, N + 3, N + 3, &p), BNK_OK);
    assert_memory_not_equal(&p, &p0, sizeof p);

    /* A RUNNING trial at p0: the best liar pushes the next point away from it; without the
     * liar it is ignored. */
    hist[N] = complete_trial(N, &p0, NAN);
    hist[N].state = BNK_TRIAL_RUNNING;
    assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, N + 1, N + 3, &p), BNK_OK);
    printf("EI maximiser %.4f; with a pending trial there: %.4f\n", p0.v[0], p.v[0]);
    if (!(fabs(p.v[0] - p0.v[0]) > 0.01))
        fail_msg("constant liar: %.6f is still next to the pending %.6f", p.v[0], p0.v[0]);
    cfg.constant_liar = false;
    assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, N + 1, N + 3, &p), BNK_OK);
    assert_memory_equal(&p, &p0, sizeof p);
}

/* ---- Regret against random search ------------------------------------------------------ */

typedef struct problem {
    const char *name;
    void (*space)(bnk_space *s);
    objective_fn f;
    double min;
    int budget;
    double max_ratio; /* asserted: mean GP regret <= max_ratio * mean random regret */
} problem;

static void test_regret_vs_random(void **state) {
    (void)state;
    /* Asserted: GP's mean regret is at most 1/4 of random search's on Branin and at most 1/2 on
     * Hartmann-6 and the conditional toy. Measured (seeds 0-9, this table): 0.041, 0.039 and
     * 0.000; on seeds 100-159: 0.024, 0.067 and 0.001. One run stuck on the conditional toy's
     * branch "a" (regret 0.2) would push its ratio to ~3, so that bound also checks that EI
     * leaves a locally optimal branch (gp_acq.c, EI_XI). */
    static const problem problems[] = {
        {"branin", bnk_synth_branin_space, bnk_synth_branin, BNK_SYNTH_BRANIN_MIN, 40, 0.25},
        {"hartmann6", bnk_synth_hartmann6_space, bnk_synth_hartmann6, BNK_SYNTH_HARTMANN6_MIN, 60,
         0.5},
        {"conditional", bnk_synth_cond_space, bnk_synth_cond, BNK_SYNTH_COND_MIN, 40, 0.5},
    };
    enum { SEEDS = 10, MAXB = 60 };
    bnk_trial hist[MAXB];
    printf("%-12s %6s %5s %14s %14s %8s %8s\n", "problem", "budget", "seeds", "random regret",
           "GP regret", "ratio", "GP wins");
    for (size_t k = 0; k < sizeof problems / sizeof problems[0]; k++) {
        const problem *pb = &problems[k];
        bnk_space s;
        pb->space(&s);
        double rand_sum = 0, gp_sum = 0;
        int wins = 0;
        for (uint64_t seed = 0; seed < SEEDS; seed++) {
            const double r = run_study(false, &s, pb->f, pb->budget, seed, hist) - pb->min;
            const double g = run_study(true, &s, pb->f, pb->budget, seed, hist) - pb->min;
            rand_sum += r;
            gp_sum += g;
            wins += g < r;
        }
        const double ratio = gp_sum / rand_sum;
        printf("%-12s %6d %5d %14.5f %14.5f %8.3f %5d/%d\n", pb->name, pb->budget, SEEDS,
               rand_sum / SEEDS, gp_sum / SEEDS, ratio, wins, SEEDS);
        if (!(ratio <= pb->max_ratio))
            fail_msg("%s: GP regret / random regret = %.3f > %.3f", pb->name, ratio, pb->max_ratio);
    }
}

/* ---- Timing (BNKIT_GP_TIMING=1) -------------------------------------------------------------- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void test_timing(void **state) {
    (void)state;
    const char *env = getenv("BNKIT_GP_TIMING");
    if (!env || strcmp(env, "1") != 0) skip();
    static const int sizes[] = {50, 200, 500};
    bnk_trial *hist = malloc(500 * sizeof *hist);
    assert_non_null(hist);
    for (int k = 0; k < 2; k++) {
        bnk_space s;
        objective_fn f = k == 0 ? bnk_synth_hartmann6 : mixed_objective;
        if (k == 0)
            bnk_synth_hartmann6_space(&s);
        else
            mixed_space(&s);
        for (int t = 0; t < 500; t++) {
            bnk_point x = random_point(&s, 77, t);
            hist[t] = complete_trial(t, &x, f(&x));
        }
        const bnk_sampler_config cfg = gp_config(77);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            bnk_point x;
            const double t0 = now();
            assert_int_equal(bnk__gp_suggest(&cfg, &s, hist, sizes[i], sizes[i], &x), BNK_OK);
            printf("%-10s d=%d: one suggestion with %3d trials: %.3f s\n",
                   k == 0 ? "hartmann6" : "mixed", s.n, sizes[i], now() - t0);
        }
    }
    free(hist);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_h_reference),
        cmocka_unit_test(test_log_h_monotone),
        cmocka_unit_test(test_mll_gradient),
        cmocka_unit_test(test_predict_gradient),
        cmocka_unit_test(test_regression_1d),
        cmocka_unit_test(test_startup_is_random),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_bounds_and_activity),
        cmocka_unit_test(test_failed_pruned_running),
        cmocka_unit_test(test_regret_vs_random),
        cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
