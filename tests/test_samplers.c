/* Samplers: GRID, RANDOM, SOBOL and TPE (GP has its own test) — determinism, validity of every
 * point (bounds, integers, choices, NaN when inactive), the grid's exact cover, Sobol's net
 * property and discrepancy, and TPE's behaviour: random start, failed trials ignored, the
 * constant liar, and lower regret than random search on Branin, Hartmann-6 and a conditional
 * toy (tests/synthetic.h). Prints its measurements (regret table, suggestion times). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_util.h"

#include "bnkit/tune.h"
#include "synthetic.h"

/* ---- Helpers -------------------------------------------------------------------------------- */

typedef double (*objective_fn)(const bnk_point *x);

/* A mixed space: every kind, log and linear, a nested condition. */
static void mixed_space(bnk_space *s) {
    bnk_space_init(s);
    const char *defs[] = {
        "opt=cat:sgd,adam,rms",
        "lr=log:1e-4:1e-1",
        "mom=float:0:0.99@opt=sgd|rms",
        "beta=float:0.8:0.999@opt=adam",
        "width=logint:8:512",
        "depth=int:1:4",
        "act=cat:relu,tanh@opt=adam",
        "slope=float:0:0.3@act=relu",
        "same=float:2:2",
    };
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        assert_int_equal(bnk_space_add(s, defs[i]), BNK_OK);
}

/* A smooth objective on the mixed space (so that TPE has something to model). */
static double mixed_objective(const bnk_point *x) {
    double f = fabs(log10(x->v[1]) + 2.5) + 0.1 * x->v[5] + fabs(log2(x->v[4]) - 6) * 0.05;
    if (!isnan(x->v[2])) f += fabs(x->v[2] - 0.9);
    if (!isnan(x->v[3])) f += fabs(x->v[3] - 0.95);
    if (!isnan(x->v[7])) f += x->v[7];
    return f + (int)x->v[0] * 0.1;
}

/* Fails unless x is a valid point of s: active parameters finite, within bounds, integers for
 * INT, choice indices for CAT; inactive ones (and those past s->n) NaN. */
static void check_point(const char *label, int64_t number, const bnk_space *s, const bnk_point *x) {
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) {
        const double v = x->v[i];
        if (i >= s->n || !bnk_space_active(s, x, i)) {
            if (!isnan(v))
                fail_msg("%s: trial %lld: parameter %d is inactive but %g", label,
                         (long long)number, i, v);
            continue;
        }
        const bnk_param *p = &s->params[i];
        bool ok = isfinite(v);
        if (ok && p->kind == BNK_PARAM_CAT)
            ok = v == floor(v) && v >= 0 && v < p->nchoices;
        else if (ok)
            ok = v >= p->lo && v <= p->hi && (p->kind != BNK_PARAM_INT || v == floor(v));
        if (!ok)
            fail_msg("%s: trial %lld: parameter %d (%s) has invalid value %.17g", label,
                     (long long)number, i, p->name, v);
    }
}

static bool same_point(const bnk_point *a, const bnk_point *b, int n) {
    for (int i = 0; i < n; i++)
        if (!(a->v[i] == b->v[i] || (isnan(a->v[i]) && isnan(b->v[i])))) return false;
    return true;
}

/* Runs a sequential study of `budget` trials (each COMPLETE with loss f(x)) into hist[budget];
 * returns the best loss. Checks every point. */
static double run_study(const bnk_sampler_config *cfg, const bnk_space *s, objective_fn f,
                        int64_t budget, bnk_trial *hist) {
    double best = INFINITY;
    for (int64_t k = 0; k < budget; k++) {
        bnk_trial *t = &hist[k];
        memset(t, 0, sizeof *t);
        bnk_status st = bnk_sampler_suggest(cfg, s, hist, k, k, &t->x);
        if (st != BNK_OK)
            fail_msg("%s: trial %lld: %s (%s)", bnk_sampler_kind_str(cfg->kind), (long long)k,
                     bnk_status_str(st), bnk_errmsg());
        check_point(bnk_sampler_kind_str(cfg->kind), k, s, &t->x);
        t->id = k + 1;
        t->number = k;
        t->state = BNK_TRIAL_COMPLETE;
        t->value = t->loss = f(&t->x);
        if (t->loss < best) best = t->loss;
    }
    return best;
}

static double unit_dist(const bnk_space *s, const bnk_point *a, const bnk_point *b) {
    double d2 = 0;
    for (int i = 0; i < s->n; i++) {
        const double d = bnk_space_to_unit(s, i, a->v[i]) - bnk_space_to_unit(s, i, b->v[i]);
        d2 += d * d;
    }
    return sqrt(d2);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- Configuration and errors --------------------------------------------------------------- */

static void test_config_and_names(void **state) {
    (void)state;
    const bnk_sampler_config c = bnk_sampler_config_default(BNK_SAMPLER_TPE);
    assert_int_equal(c.kind, BNK_SAMPLER_TPE);
    assert_int_equal(c.grid_points, 5);
    assert_int_equal(c.n_startup, 10);
    assert_int_equal(c.n_candidates, 24);
    assert_true(c.prior_weight == 1.0);
    assert_false(c.multivariate);
    assert_true(c.constant_liar);
    const char *names[] = {"grid", "random", "sobol", "tpe", "gp"};
    for (int k = 0; k < 5; k++) {
        bnk_sampler_kind kind;
        assert_string_equal(bnk_sampler_kind_str((bnk_sampler_kind)k), names[k]);
        assert_int_equal(bnk_sampler_kind_parse(names[k], &kind), BNK_OK);
        assert_int_equal(kind, k);
    }
    bnk_sampler_kind kind;
    assert_int_equal(bnk_sampler_kind_parse("bayes", &kind), BNK_ERR_PARAM);
    assert_non_null(strstr(bnk_errmsg(), "bayes"));
    assert_int_equal(bnk_sampler_kind_parse(NULL, &kind), BNK_ERR_NULL);
    assert_string_equal(bnk_sampler_kind_str((bnk_sampler_kind)99), "unknown");
}

static void test_errors(void **state) {
    (void)state;
    bnk_space s;
    bnk_synth_branin_space(&s);
    bnk_sampler_config c = bnk_sampler_config_default(BNK_SAMPLER_RANDOM);
    bnk_point x;
    bnk_trial t = {0};
    assert_int_equal(bnk_sampler_suggest(NULL, &s, NULL, 0, 0, &x), BNK_ERR_NULL);
    assert_int_equal(bnk_sampler_suggest(&c, NULL, NULL, 0, 0, &x), BNK_ERR_NULL);
    assert_int_equal(bnk_sampler_suggest(&c, &s, NULL, 0, 0, NULL), BNK_ERR_NULL);
    assert_int_equal(bnk_sampler_suggest(&c, &s, NULL, 1, 0, &x), BNK_ERR_NULL);
    assert_int_equal(bnk_sampler_suggest(&c, &s, &t, -1, 0, &x), BNK_ERR_SIZE);
    assert_int_equal(bnk_sampler_suggest(&c, &s, NULL, 0, -1, &x), BNK_ERR_SIZE);
    bnk_space empty;
    bnk_space_init(&empty);
    assert_int_equal(bnk_sampler_suggest(&c, &empty, NULL, 0, 0, &x), BNK_ERR_PARAM);
    bnk_sampler_config bad = c;
    bad.kind = (bnk_sampler_kind)7;
    assert_int_equal(bnk_sampler_suggest(&bad, &s, NULL, 0, 0, &x), BNK_ERR_PARAM);
    bad = c;
    bad.grid_points = 0;
    assert_int_equal(bnk_sampler_suggest(&bad, &s, NULL, 0, 0, &x), BNK_ERR_PARAM);
    bad = c;
    bad.n_candidates = 0;
    assert_int_equal(bnk_sampler_suggest(&bad, &s, NULL, 0, 0, &x), BNK_ERR_PARAM);
    bad = c;
    bad.prior_weight = NAN;
    assert_int_equal(bnk_sampler_suggest(&bad, &s, NULL, 0, 0, &x), BNK_ERR_PARAM);
    bad = c;
    bad.n_startup = -1;
    assert_int_equal(bnk_sampler_suggest(&bad, &s, NULL, 0, 0, &x), BNK_ERR_PARAM);
    bnk_space broken = s;
    broken.params[1].parent = 1; /* its own parent */
    broken.params[1].parent_choices = 1;
    assert_int_equal(bnk_sampler_suggest(&c, &broken, NULL, 0, 0, &x), BNK_ERR_PARAM);
}

/* ---- Determinism and validity --------------------------------------------------------------- */

static const bnk_sampler_kind model_free_and_tpe[] = {BNK_SAMPLER_GRID, BNK_SAMPLER_RANDOM,
                                                      BNK_SAMPLER_SOBOL, BNK_SAMPLER_TPE};

static void test_determinism(void **state) {
    (void)state;
    bnk_space s;
    mixed_space(&s);
    enum { N = 40 };
    bnk_trial *a = calloc(N, sizeof *a), *b = calloc(N, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    for (int m = 0; m < 5; m++) {
        bnk_sampler_config c =
            bnk_sampler_config_default(m < 4 ? model_free_and_tpe[m] : BNK_SAMPLER_TPE);
        c.multivariate = m == 4;
        c.grid_points = 2;
        c.seed = 42;
        run_study(&c, &s, mixed_objective, N, a);
        run_study(&c, &s, mixed_objective, N, b);
        for (int k = 0; k < N; k++)
            if (!same_point(&a[k].x, &b[k].x, s.n))
                fail_msg("%s: trial %d differs between two identical runs",
                         bnk_sampler_kind_str(c.kind), k);
        /* Stateless: trial 30 suggested again from the same history gives the same point. */
        bnk_point again;
        assert_int_equal(bnk_sampler_suggest(&c, &s, a, 30, 30, &again), BNK_OK);
        assert_true(same_point(&again, &a[30].x, s.n));
        if (c.kind == BNK_SAMPLER_GRID) continue; /* the grid does not depend on the seed */
        c.seed = 43;
        run_study(&c, &s, mixed_objective, N, b);
        int differ = 0;
        for (int k = 0; k < N; k++) differ += !same_point(&a[k].x, &b[k].x, s.n);
        if (differ < N - 2)
            fail_msg("%s: seeds 42 and 43 give %d identical points of %d",
                     bnk_sampler_kind_str(c.kind), N - differ, N);
    }
    free(a);
    free(b);
}

static void test_validity(void **state) {
    (void)state;
    bnk_space spaces[3];
    mixed_space(&spaces[0]);
    bnk_synth_cond_space(&spaces[1]);
    bnk_space_init(&spaces[2]);
    assert_int_equal(bnk_space_add(&spaces[2], "n=int:-3:3"), BNK_OK);
    assert_int_equal(bnk_space_add(&spaces[2], "k=logint:1:3"), BNK_OK);
    assert_int_equal(bnk_space_add(&spaces[2], "c=cat:only"), BNK_OK);
    objective_fn fs[3] = {mixed_objective, bnk_synth_cond, mixed_objective};
    enum { N = 120 };
    bnk_trial *h = calloc(N, sizeof *h);
    assert_non_null(h);
    for (int sp = 0; sp < 3; sp++)
        for (int m = 0; m < 5; m++) {
            bnk_sampler_config c =
                bnk_sampler_config_default(m < 4 ? model_free_and_tpe[m] : BNK_SAMPLER_TPE);
            c.multivariate = m == 4;
            c.grid_points = 3;
            c.seed = 7;
            int64_t n = N;
            if (c.kind == BNK_SAMPLER_GRID) {
                n = bnk_sampler_grid_size(&c, &spaces[sp]);
                if (n > N) n = N;
            }
            if (sp == 2) { /* a space without a condition: let the objective see valid values */
                for (int64_t k = 0; k < n; k++) {
                    memset(&h[k], 0, sizeof h[k]);
                    assert_int_equal(bnk_sampler_suggest(&c, &spaces[sp], h, k, k, &h[k].x),
                                     BNK_OK);
                    check_point("int space", k, &spaces[sp], &h[k].x);
                    h[k].number = k;
                    h[k].state = BNK_TRIAL_COMPLETE;
                    h[k].loss = fabs(h[k].x.v[0] - 1) + h[k].x.v[1];
                }
                continue;
            }
            run_study(&c, &spaces[sp], fs[sp], n, h);
        }
    free(h);
}

/* ---- GRID ----------------------------------------------------------------------------------- */

static void test_grid_cover(void **state) {
    (void)state;
    bnk_space s;
    bnk_space_init(&s);
    const char *defs[] = {"a=cat:x,y,z", "f=float:0:1@a=x|y", "i=int:1:10", "g=log:1e-3:1@a=z",
                          "k=int:2:3"};
    for (int d = 0; d < 5; d++) assert_int_equal(bnk_space_add(&s, defs[d]), BNK_OK);
    bnk_sampler_config c = bnk_sampler_config_default(BNK_SAMPLER_GRID);
    c.grid_points = 3;
    /* a = x or y: 3 values of f each; a = z: 3 values of g -> 9; i: 10 integers > 3 -> 3 spaced
     * values; k: 2 integers <= 3 -> both. */
    const int64_t expected = (3 + 3 + 3) * 3 * 2;
    assert_int_equal(bnk_sampler_grid_size(&c, &s), expected);
    bnk_point pts[54];
    for (int64_t k = 0; k < expected; k++) {
        assert_int_equal(bnk_sampler_suggest(&c, &s, NULL, 0, k, &pts[k]), BNK_OK);
        check_point("grid", k, &s, &pts[k]);
        for (int64_t j = 0; j < k; j++)
            if (same_point(&pts[j], &pts[k], s.n))
                fail_msg("grid points %lld and %lld are equal", (long long)j, (long long)k);
        /* the values themselves: f in {0, 0.5, 1}, g in {1e-3, ~0.0316, 1}, i in {1, 6, 10} */
        const double f = pts[k].v[1], g = pts[k].v[3], i = pts[k].v[2];
        assert_true(isnan(f) || f == 0 || f == 0.5 || f == 1);
        assert_true(isnan(g) || fabs(g - 1e-3) < 1e-15 || fabs(g - sqrt(1e-3)) < 1e-12 ||
                    fabs(g - 1) < 1e-12);
        assert_true(i == 1 || i == 6 || i == 10); /* round(5.5) = 6 */
    }
    bnk_point x;
    assert_int_equal(bnk_sampler_suggest(&c, &s, NULL, 0, expected, &x), BNK_ERR_SIZE);
    assert_non_null(strstr(bnk_errmsg(), "grid exhausted"));

    /* grid_points = 1: the midpoint of FLOAT ranges (in unit coordinates). */
    bnk_space one;
    bnk_space_init(&one);
    assert_int_equal(bnk_space_add(&one, "m=log:1:100"), BNK_OK);
    assert_int_equal(bnk_space_add(&one, "e=logint:1:6"), BNK_OK);
    c.grid_points = 1;
    assert_int_equal(bnk_sampler_grid_size(&c, &one), 1);
    assert_int_equal(bnk_sampler_suggest(&c, &one, NULL, 0, 0, &x), BNK_OK);
    bnk_test_close_at("log midpoint", 0, x.v[0], 10.0, 0, 1e-12);
    /* logint 1..6 with 5 points: 1, 1.57, 2.45, 3.83, 6 -> 1, 2, 2, 4, 6 -> duplicates dropped. */
    c.grid_points = 5;
    assert_int_equal(bnk_sampler_grid_size(&c, &one), 5 * 4);
    const double want[4] = {1, 2, 4, 6};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(bnk_sampler_suggest(&c, &one, NULL, 0, k, &x), BNK_OK);
        bnk_test_close_at("logint grid", (size_t)k, x.v[1], want[k], 0, 0);
    }
}

/* ---- SOBOL ---------------------------------------------------------------------------------- */

/* Points of a space of `dim` float:0:1 parameters. */
static void unit_space(bnk_space *s, int dim) {
    bnk_space_init(s);
    for (int d = 0; d < dim; d++) {
        char def[32];
        snprintf(def, sizeof def, "x%d=float:0:1", d);
        assert_int_equal(bnk_space_add(s, def), BNK_OK);
    }
}

/* The first 2^m points of a scrambled Sobol sequence are a (0, m, 1)-net in every coordinate
 * (one point per interval of length 2^-m), and a (0, m, 2)-net in the first two (one point in
 * every dyadic box of area 2^-m). Both fail for wrong direction numbers or a broken scramble. */
static void test_sobol_nets(void **state) {
    (void)state;
    bnk_space s;
    unit_space(&s, 32);
    bnk_sampler_config c = bnk_sampler_config_default(BNK_SAMPLER_SOBOL);
    enum { M = 6, N = 1 << M };
    for (uint64_t seed = 0; seed < 3; seed++) {
        c.seed = seed;
        bnk_point pts[N];
        for (int k = 0; k < N; k++) {
            assert_int_equal(bnk_sampler_suggest(&c, &s, NULL, 0, k, &pts[k]), BNK_OK);
            check_point("sobol", k, &s, &pts[k]);
        }
        for (int d = 0; d < 32; d++) {
            int seen[N] = {0};
            for (int k = 0; k < N; k++) seen[(int)(pts[k].v[d] * N)]++;
            for (int b = 0; b < N; b++)
                if (seen[b] != 1)
                    fail_msg("sobol seed %llu: dimension %d has %d points in [%d/%d, %d/%d)",
                             (unsigned long long)seed, d, seen[b], b, N, b + 1, N);
        }
        for (int p = 0; p <= M; p++) {
            const int nx = 1 << p, ny = 1 << (M - p);
            int seen[N] = {0};
            for (int k = 0; k < N; k++)
                seen[(int)(pts[k].v[0] * nx) * ny + (int)(pts[k].v[1] * ny)]++;
            for (int b = 0; b < N; b++)
                if (seen[b] != 1)
                    fail_msg("sobol seed %llu: box %d of the %dx%d partition has %d points",
                             (unsigned long long)seed, b, nx, ny, seen[b]);
        }
    }
}

/* Star discrepancy proxy: max over anchored boxes [0, a) x [0, b), a, b on a G-grid, of
 * |fraction of points inside - area|. */
static double star_discrepancy(const bnk_point *pts, int n) {
    enum { G = 32 };
    double worst = 0;
    for (int i = 1; i <= G; i++)
        for (int j = 1; j <= G; j++) {
            const double a = (double)i / G, b = (double)j / G;
            int in = 0;
            for (int k = 0; k < n; k++) in += pts[k].v[0] < a && pts[k].v[1] < b;
            const double e = fabs((double)in / n - a * b);
            worst = e > worst ? e : worst;
        }
    return worst;
}

static void test_sobol_discrepancy(void **state) {
    (void)state;
    bnk_space s;
    unit_space(&s, 2);
    enum { N = 100, SEEDS = 10 };
    double mean[2] = {0, 0};
    for (int kind = 0; kind < 2; kind++)
        for (uint64_t seed = 1; seed <= SEEDS; seed++) {
            bnk_sampler_config c =
                bnk_sampler_config_default(kind ? BNK_SAMPLER_RANDOM : BNK_SAMPLER_SOBOL);
            c.seed = seed;
            bnk_point pts[N];
            for (int k = 0; k < N; k++)
                assert_int_equal(bnk_sampler_suggest(&c, &s, NULL, 0, k, &pts[k]), BNK_OK);
            mean[kind] += star_discrepancy(pts, N) / SEEDS;
        }
    printf("star discrepancy of %d points in 2-D (mean of %d seeds): sobol %.4f, random %.4f\n", N,
           SEEDS, mean[0], mean[1]);
    /* Theory: ~log(N)^2/N for Sobol against ~1/sqrt(N) for random; measured 0.024 against 0.102. */
    assert_true(mean[0] < 0.6 * mean[1]);
}

/* ---- TPE ------------------------------------------------------------------------------------ */

static void test_tpe_startup_and_failed(void **state) {
    (void)state;
    bnk_space s;
    bnk_synth_branin_space(&s);
    enum { N = 40 };
    bnk_trial *h = calloc(2 * N, sizeof *h), *h2 = calloc(2 * N, sizeof *h2);
    assert_non_null(h);
    assert_non_null(h2);
    bnk_sampler_config tpe = bnk_sampler_config_default(BNK_SAMPLER_TPE);
    bnk_sampler_config rnd = bnk_sampler_config_default(BNK_SAMPLER_RANDOM);
    tpe.seed = rnd.seed = 5;
    run_study(&rnd, &s, bnk_synth_branin, N, h);

    /* 9 finished trials (plus failed and running ones): still the random start. */
    int64_t n = 0;
    for (int k = 0; k < 9; k++) h2[n++] = h[k];
    for (int k = 9; k < 14; k++) {
        h2[n] = h[k];
        h2[n++].state = k % 2 ? BNK_TRIAL_FAILED : BNK_TRIAL_RUNNING;
    }
    bnk_point a, b;
    for (int64_t number = 14; number < 20; number++) {
        assert_int_equal(bnk_sampler_suggest(&tpe, &s, h2, n, number, &a), BNK_OK);
        assert_int_equal(bnk_sampler_suggest(&rnd, &s, h2, n, number, &b), BNK_OK);
        assert_true(same_point(&a, &b, s.n));
    }
    /* The 10th finished trial (a PRUNED one counts) switches the model on. */
    h2[n] = h[20];
    h2[n].number = 20;
    h2[n++].state = BNK_TRIAL_PRUNED;
    int differ = 0;
    for (int64_t number = 21; number < 31; number++) {
        assert_int_equal(bnk_sampler_suggest(&tpe, &s, h2, n, number, &a), BNK_OK);
        assert_int_equal(bnk_sampler_suggest(&rnd, &s, h2, n, number, &b), BNK_OK);
        differ += !same_point(&a, &b, s.n);
    }
    assert_int_equal(differ, 10);

    /* FAILED trials are ignored, and RUNNING ones too without the constant liar: the same
     * suggestions with or without them in the history. */
    tpe.constant_liar = false;
    n = 0;
    for (int k = 0; k < N; k++) {
        h2[n++] = h[k];
        h2[n] = h[k];
        h2[n].number = N + k; /* new numbers, garbage points */
        h2[n].x.v[0] = 1e9;
        h2[n].loss = -1e9;
        h2[n++].state = k % 2 ? BNK_TRIAL_FAILED : BNK_TRIAL_RUNNING;
    }
    for (int64_t number = 2 * N; number < 2 * N + 10; number++) {
        assert_int_equal(bnk_sampler_suggest(&tpe, &s, h, N, number, &a), BNK_OK);
        assert_int_equal(bnk_sampler_suggest(&tpe, &s, h2, n, number, &b), BNK_OK);
        assert_true(same_point(&a, &b, s.n));
    }
    free(h);
    free(h2);
}

/* Awkward histories: PRUNED trials with and without curves (NaN steps), an infinite loss,
 * RUNNING trials with missing values, points outside the bounds, a stale choice index. TPE
 * must still return valid points, in both modes. */
static void test_tpe_odd_history(void **state) {
    (void)state;
    bnk_space s;
    bnk_synth_cond_space(&s);
    enum { N = 30 };
    bnk_trial h[N];
    double curve[3] = {0.5, NAN, 0.2}, nan_curve[2] = {0.1, NAN};
    bnk_sampler_config rnd = bnk_sampler_config_default(BNK_SAMPLER_RANDOM);
    run_study(&rnd, &s, bnk_synth_cond, N, h);
    for (int k = 0; k < N; k += 3) {
        h[k].state = BNK_TRIAL_PRUNED;
        h[k].loss = NAN;
        h[k].ncurve = k % 2 ? 3 : k % 4 ? 2 : 0;
        h[k].curve = k % 2 ? curve : k % 4 ? nan_curve : NULL;
    }
    h[1].loss = INFINITY;
    h[2].state = BNK_TRIAL_RUNNING;
    h[2].x.v[0] = NAN;
    h[4].x.v[0] = 7; /* no such choice */
    h[5].x.v[1] = 40;
    h[5].x.v[2] = -3;
    for (int mv = 0; mv < 2; mv++)
        for (int64_t number = N; number < N + 20; number++) {
            bnk_sampler_config c = bnk_sampler_config_default(BNK_SAMPLER_TPE);
            c.multivariate = mv;
            c.n_candidates = 1 + (int)number % 30;
            bnk_point x;
            assert_int_equal(bnk_sampler_suggest(&c, &s, h, N, number, &x), BNK_OK);
            check_point("tpe odd history", number, &s, &x);
        }
}

/* The constant liar: a RUNNING trial at p (the best point so far, where TPE would otherwise
 * concentrate) counts as bad, so the next suggestions differ from p and move away from it. */
static void test_tpe_constant_liar(void **state) {
    (void)state;
    bnk_space s;
    bnk_synth_branin_space(&s);
    enum { N = 16, TRIES = 40 };
    bnk_trial h[N + 1];
    double mean_dist[2] = {0, 0};
    int equal = 0;
    for (uint64_t seed = 0; seed < 4; seed++) {
        bnk_sampler_config rnd = bnk_sampler_config_default(BNK_SAMPLER_RANDOM);
        rnd.seed = 100 + seed;
        run_study(&rnd, &s, bnk_synth_branin, N, h);
        int best = 0;
        for (int k = 1; k < N; k++)
            if (h[k].loss < h[best].loss) best = k;
        h[N] = h[best];
        h[N].number = N;
        h[N].state = BNK_TRIAL_RUNNING;
        h[N].loss = h[N].value = NAN;
        for (int liar = 0; liar < 2; liar++) {
            bnk_sampler_config c = bnk_sampler_config_default(BNK_SAMPLER_TPE);
            c.seed = seed;
            c.constant_liar = liar;
            for (int64_t number = N + 1; number < N + 1 + TRIES; number++) {
                bnk_point x;
                assert_int_equal(bnk_sampler_suggest(&c, &s, h, N + 1, number, &x), BNK_OK);
                mean_dist[liar] += unit_dist(&s, &x, &h[N].x) / (4 * TRIES);
                if (liar) equal += same_point(&x, &h[N].x, s.n);
            }
        }
    }
    printf("constant liar: mean unit distance of the next suggestion to a running trial at the "
           "best point: %.3f without the liar, %.3f with it\n",
           mean_dist[0], mean_dist[1]);
    assert_int_equal(equal, 0);
    /* measured: 0.521 -> 0.574 (+10%) */
    assert_true(mean_dist[1] > 1.03 * mean_dist[0]);
}

/* Mean regret of TPE against random search (and Sobol, multivariate TPE for the record) over
 * SEEDS seeds at a fixed budget, on Branin, the conditional toy and Hartmann-6. */
static void test_tpe_beats_random(void **state) {
    (void)state;
    enum { SEEDS = 12, NS = 4 };
    struct {
        const char *name;
        void (*space)(bnk_space *);
        objective_fn f;
        double min;
        int budget;
        double margin; /* assert: mean regret of TPE < margin * that of random */
    } problems[] = {
        /* Margins sit well above the measured ratios: with these seeds 0.15, 0.010, 0.32; with
         * four other sets of 12 seeds at most 0.43, 0.011, 0.37. */
        {"branin", bnk_synth_branin_space, bnk_synth_branin, BNK_SYNTH_BRANIN_MIN, 60, 0.6},
        {"cond", bnk_synth_cond_space, bnk_synth_cond, BNK_SYNTH_COND_MIN, 60, 0.2},
        {"hartmann6", bnk_synth_hartmann6_space, bnk_synth_hartmann6, BNK_SYNTH_HARTMANN6_MIN, 100,
         0.6},
    };
    const char *names[NS] = {"random", "sobol", "tpe", "tpe-mv"};
    bnk_trial *h = calloc(100, sizeof *h);
    assert_non_null(h);
    printf("mean regret (best - min) over %d seeds:\n%-10s %6s", SEEDS, "problem", "budget");
    for (int m = 0; m < NS; m++) printf(" %10s", names[m]);
    printf(" %10s\n", "tpe/random");
    for (size_t p = 0; p < sizeof problems / sizeof problems[0]; p++) {
        bnk_space s;
        problems[p].space(&s);
        double regret[NS] = {0};
        for (int m = 0; m < NS; m++)
            for (uint64_t seed = 0; seed < SEEDS; seed++) {
                const bnk_sampler_kind kinds[NS] = {BNK_SAMPLER_RANDOM, BNK_SAMPLER_SOBOL,
                                                    BNK_SAMPLER_TPE, BNK_SAMPLER_TPE};
                bnk_sampler_config c = bnk_sampler_config_default(kinds[m]);
                c.multivariate = m == 3;
                c.seed = 1000 + seed;
                const double best = run_study(&c, &s, problems[p].f, problems[p].budget, h);
                regret[m] += (best - problems[p].min) / SEEDS;
            }
        printf("%-10s %6d", problems[p].name, problems[p].budget);
        for (int m = 0; m < NS; m++) printf(" %10.5f", regret[m]);
        printf(" %10.3f\n", regret[2] / regret[0]);
        if (!(regret[2] < problems[p].margin * regret[0]))
            fail_msg("%s: TPE mean regret %.5f is not below %.2f x random's %.5f", problems[p].name,
                     regret[2], problems[p].margin, regret[0]);
    }
    free(h);
}

/* Suggestion time at 50, 100, 200 and 500 finished trials (Hartmann-6, random history). */
static void test_tpe_timing(void **state) {
    (void)state;
    bnk_space s;
    bnk_synth_hartmann6_space(&s);
    enum { N = 500 };
    bnk_trial *h = calloc(N, sizeof *h);
    assert_non_null(h);
    bnk_sampler_config rnd = bnk_sampler_config_default(BNK_SAMPLER_RANDOM);
    run_study(&rnd, &s, bnk_synth_hartmann6, N, h);
    const int64_t sizes[4] = {50, 100, 200, 500};
    printf("TPE suggestion time, Hartmann-6 (6 floats):");
    for (int mv = 0; mv < 2; mv++)
        for (int k = 0; k < 4; k++) {
            bnk_sampler_config c = bnk_sampler_config_default(BNK_SAMPLER_TPE);
            c.multivariate = mv;
            const int reps = sizes[k] <= 200 ? 40 : 10;
            bnk_point x;
            const double t0 = now_seconds();
            for (int r = 0; r < reps; r++)
                assert_int_equal(bnk_sampler_suggest(&c, &s, h, sizes[k], sizes[k] + r, &x),
                                 BNK_OK);
            const double ms = (now_seconds() - t0) / reps * 1e3;
            printf("%s %lld trials %.3f ms",
                   k    ? ","
                   : mv ? "\n  multivariate:"
                        : "\n  univariate:",
                   (long long)sizes[k], ms);
            /* a bound for sanitizer and debug builds too; optimised builds are ~10x below */
            assert_true(ms < 100);
        }
    printf("\n");
    free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_and_names),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_determinism),       cmocka_unit_test(test_validity),
        cmocka_unit_test(test_grid_cover),        cmocka_unit_test(test_sobol_nets),
        cmocka_unit_test(test_sobol_discrepancy), cmocka_unit_test(test_tpe_startup_and_failed),
        cmocka_unit_test(test_tpe_odd_history),   cmocka_unit_test(test_tpe_constant_liar),
        cmocka_unit_test(test_tpe_beats_random),  cmocka_unit_test(test_tpe_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
