/* Search spaces (text and JSON forms, conditions, unit coordinates) and pruning decisions on
 * synthetic learning curves. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/tune.h"
#include "test_util.h"

static void test_space_parse(void **state) {
    (void)state;
    bnk_space s;
    bnk_space_init(&s);
    assert_int_equal(bnk_space_add(&s, "bn.momentum=log:0.7:0.999"), BNK_OK);
    assert_int_equal(bnk_space_add(&s, "units=int:16:256"), BNK_OK);
    assert_int_equal(bnk_space_add(&s, "bn.normalize_with=cat:batch,running,renorm"), BNK_OK);
    assert_int_equal(bnk_space_add(&s, "bn.rmax=float:1:5@bn.normalize_with=renorm"), BNK_OK);
    assert_int_equal(bnk_space_add(&s, "bn.dmax=float:-1:10@bn.normalize_with=running|renorm"),
                     BNK_OK);
    assert_int_equal(s.n, 5);
    assert_true(s.params[0].kind == BNK_PARAM_FLOAT && s.params[0].log);
    assert_true(s.params[1].kind == BNK_PARAM_INT && !s.params[1].log);
    assert_int_equal(s.params[2].nchoices, 3);
    assert_int_equal(s.params[3].parent, 2);
    assert_int_equal(s.params[3].parent_choices, 4u);
    assert_int_equal(s.params[4].parent_choices, 6u);
    char buf[256];
    bnk_space_param_str(&s, 4, buf, sizeof buf);
    assert_string_equal(buf, "bn.dmax=float:-1:10@bn.normalize_with=running|renorm");

    static const char *const bad[] = {
        "nameonly",
        "x=float:1",
        "x=float:2:1",
        "x=log:0:1",
        "x=int:1.5:3",
        "x=cat:",
        "x=cat:a,a",
        "x=poly:1:2",
        "x=float:1:2@nope=a",
        "x=float:1:2@units=3",
        "bn.momentum=float:0:1",
        "x=float:nan:1",
        "x=float:1:2@bn.normalize_with=other",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bnk_space_add(&s, bad[i]) != BNK_ERR_PARAM) fail_msg("'%s' should be rejected", bad[i]);
        assert_non_null(strstr(bnk_errmsg(), "search space"));
    }
    assert_int_equal(s.n, 5); /* nothing half-added */
}

static void test_space_json_and_default(void **state) {
    (void)state;
    bnk_space s, t;
    assert_int_equal(bnk_space_default_bn(&s), BNK_OK);
    assert_int_equal(s.n, 8); /* momentum, eps, rel_clip_r/d, normalize_with, rmax, dmax, lr */
    char *json = NULL;
    assert_int_equal(bnk_space_to_json(&s, &json), BNK_OK);
    assert_int_equal(bnk_space_from_json(&t, json), BNK_OK);
    assert_true(bnk_space_equal(&s, &t));
    free(json);
    t.params[0].hi = 0.9;
    assert_false(bnk_space_equal(&s, &t));
    assert_int_equal(bnk_space_from_json(&t, "{\"params\": [\"x=float:2:1\"]}"), BNK_ERR_FORMAT);
    assert_int_equal(bnk_space_from_json(&t, "not json"), BNK_ERR_FORMAT);
    assert_int_equal(bnk_space_from_json(&t, "{\"params\": [3]}"), BNK_ERR_FORMAT);
}

static void test_space_units_and_activity(void **state) {
    (void)state;
    bnk_space s;
    bnk_space_init(&s);
    bnk_space_add(&s, "a=log:1e-4:1");
    bnk_space_add(&s, "n=int:1:4");
    bnk_space_add(&s, "k=cat:x,y");
    bnk_space_add(&s, "c=float:0:1@k=y");
    /* log: the geometric midpoint maps to 1/2 */
    double u = bnk_space_to_unit(&s, 0, 1e-2);
    assert_true(fabs(u - 0.5) < 1e-12);
    assert_true(fabs(bnk_space_from_unit(&s, 0, 0.5) - 1e-2) < 1e-14);
    /* int: each of 1..4 owns a quarter of [0, 1] */
    assert_true(bnk_space_from_unit(&s, 1, 0.0) == 1 && bnk_space_from_unit(&s, 1, 0.24) == 1);
    assert_true(bnk_space_from_unit(&s, 1, 0.26) == 2 && bnk_space_from_unit(&s, 1, 1.0) == 4);
    assert_true(fabs(bnk_space_to_unit(&s, 1, 1) - 0.125) < 1e-12);
    /* out-of-range unit coordinates are clamped */
    assert_true(bnk_space_from_unit(&s, 0, 1.5) == 1.0);
    bnk_point x = {{1e-3, 2, 0, NAN}};
    assert_true(bnk_space_active(&s, &x, 2));
    assert_false(bnk_space_active(&s, &x, 3));
    x.v[2] = 1;
    assert_true(bnk_space_active(&s, &x, 3));
    char buf[32];
    bnk_space_value_str(&s, 2, 1, buf, sizeof buf);
    assert_string_equal(buf, "y");
    bnk_space_value_str(&s, 3, NAN, buf, sizeof buf);
    assert_string_equal(buf, "-");
}

/* A trial with a curve of n losses. */
static bnk_trial make_trial(int64_t id, bnk_trial_state st, const double *curve, int64_t n) {
    bnk_trial t;
    memset(&t, 0, sizeof t);
    t.id = id;
    t.number = id;
    t.state = st;
    t.ncurve = n;
    t.curve = (double *)curve;
    t.loss = n ? curve[n - 1] : NAN;
    return t;
}

static void test_median_pruner(void **state) {
    (void)state;
    bnk_pruner_config cfg = bnk_pruner_config_default(BNK_PRUNER_MEDIAN);
    /* five completed trials with losses at step 2: 0.5, 0.4, 0.3, 0.2, 0.1 -> median 0.3 */
    static const double curves[5][3] = {
        {0.9, 0.5, 0.45}, {0.8, 0.4, 0.35}, {0.7, 0.3, 0.25}, {0.6, 0.2, 0.15}, {0.5, 0.1, 0.05}};
    bnk_trial hist[6];
    for (int i = 0; i < 5; i++) hist[i] = make_trial(i, BNK_TRIAL_COMPLETE, curves[i], 3);
    const double worse[2] = {0.9, 0.35}, better[2] = {0.9, 0.25}, nan_curve[2] = {0.9, NAN};
    bnk_trial t = make_trial(5, BNK_TRIAL_RUNNING, worse, 2);
    assert_false(bnk_pruner_should_prune(&cfg, hist, 5, &t, 1)); /* warm-up step */
    assert_true(bnk_pruner_should_prune(&cfg, hist, 5, &t, 2));
    t.curve = (double *)better;
    assert_false(bnk_pruner_should_prune(&cfg, hist, 5, &t, 2));
    /* the trial itself in the history does not count as a peer */
    hist[5] = t;
    assert_false(bnk_pruner_should_prune(&cfg, hist, 6, &t, 2));
    /* pruned and running peers count at the steps they reached: two pruned trials with losses
     * 0.9 and 1.0 at step 2 move the median of the seven values to 0.4, so 0.35 survives */
    static const double low[2][2] = {{1.0, 0.9}, {1.1, 1.0}};
    bnk_trial more[7];
    for (int i = 0; i < 5; i++) more[i] = hist[i];
    t.curve = (double *)worse;
    more[5] = make_trial(6, BNK_TRIAL_PRUNED, low[0], 2);
    more[6] = make_trial(7, BNK_TRIAL_RUNNING, low[1], 2);
    assert_false(bnk_pruner_should_prune(&cfg, more, 7, &t, 2));
    /* ...but they do not count as completed trials for n_startup */
    assert_false(bnk_pruner_should_prune(&cfg, more + 1, 6, &t, 2)); /* 4 completed */
    /* fewer than n_startup completed trials: never */
    t.curve = (double *)worse;
    assert_false(bnk_pruner_should_prune(&cfg, hist, 4, &t, 2));
    /* NaN loss: always, even without peers */
    t.curve = (double *)nan_curve;
    assert_true(bnk_pruner_should_prune(&cfg, hist, 0, &t, 2));
    /* NONE never prunes, even NaN */
    bnk_pruner_config none = bnk_pruner_config_default(BNK_PRUNER_NONE);
    assert_false(bnk_pruner_should_prune(&none, hist, 5, &t, 2));
}

/* The median rule as it was before the percentile: the middle value, or the midpoint of the two
 * middle values for an even count. */
static double old_median(double *v, int k) {
    for (int i = 1; i < k; i++) /* insertion sort: k is small */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double tmp = v[j];
            v[j] = v[j - 1];
            v[j - 1] = tmp;
        }
    return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

static void test_percentile_pruner(void **state) {
    (void)state;
    bnk_pruner_config cfg = bnk_pruner_config_default(BNK_PRUNER_MEDIAN);
    assert_true(cfg.percentile == 50);
    /* p = 50 decides exactly as the old median, odd and even counts: random peers, and a trial
     * whose loss is the old median itself (not pruned: not worse) or the next double up
     * (pruned) — equality at the last bit, not within a tolerance */
    uint64_t rng = 12345;
    for (int rep = 0; rep < 2000; rep++) {
        const int k = 5 + rep % 8; /* 5..12 peers, all completed */
        double curves[12][2], sorted[12];
        bnk_trial hist[12];
        for (int i = 0; i < k; i++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            curves[i][0] = 1;
            curves[i][1] = sorted[i] = (double)(rng >> 11) * 0x1p-53 * 3 - 1;
            hist[i] = make_trial(i, BNK_TRIAL_COMPLETE, curves[i], 2);
        }
        const double med = old_median(sorted, k);
        double at[2] = {2, med};
        bnk_trial t = make_trial(99, BNK_TRIAL_RUNNING, at, 2);
        if (bnk_pruner_should_prune(&cfg, hist, k, &t, 2))
            fail_msg("rep %d, %d peers: loss = old median %.17g pruned", rep, k, med);
        at[1] = nextafter(med, INFINITY);
        if (!bnk_pruner_should_prune(&cfg, hist, k, &t, 2))
            fail_msg("rep %d, %d peers: loss just above old median %.17g kept", rep, k, med);
    }
    /* Six peers at step 2: 0.1 .. 0.6 (five completed, one running). NumPy's linear rule, rank
     * h = (6-1)*p/100: p 25 -> h 1.25 -> 0.2 + 0.25*0.1 = 0.225; p 50 -> h 2.5 -> 0.35 (the
     * even-count midpoint); p 75 -> h 3.75 -> 0.4 + 0.75*0.1 = 0.475; p 100 -> 0.6. The trial's
     * losses sit 0.005 either side of each bar, far beyond rounding. */
    static const double c[6][2] = {{0.9, 0.1}, {0.9, 0.2}, {0.9, 0.3},
                                   {0.9, 0.4}, {0.9, 0.5}, {0.9, 0.6}};
    bnk_trial hist[6];
    for (int i = 0; i < 6; i++)
        hist[i] = make_trial(i, i < 5 ? BNK_TRIAL_COMPLETE : BNK_TRIAL_RUNNING, c[i], 2);
    static const struct {
        double p, bar;
    } cases[] = {{25, 0.225}, {50, 0.35}, {75, 0.475}, {100, 0.6}, {1e-9, 0.1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg.percentile = cases[i].p;
        double below[2] = {0.9, cases[i].bar - 0.005}, above[2] = {0.9, cases[i].bar + 0.005};
        bnk_trial t = make_trial(9, BNK_TRIAL_RUNNING, below, 2);
        if (bnk_pruner_should_prune(&cfg, hist, 6, &t, 2))
            fail_msg("p %g: loss %g below the bar %g pruned", cases[i].p, below[1], cases[i].bar);
        t.curve = above;
        if (!bnk_pruner_should_prune(&cfg, hist, 6, &t, 2))
            fail_msg("p %g: loss %g above the bar %g kept", cases[i].p, above[1], cases[i].bar);
    }
    /* lower p prunes more: 0.3 is pruned at 25, kept at 50 and 75 */
    const double mid[2] = {0.9, 0.3};
    bnk_trial t = make_trial(9, BNK_TRIAL_RUNNING, mid, 2);
    cfg.percentile = 25;
    assert_true(bnk_pruner_should_prune(&cfg, hist, 6, &t, 2));
    cfg.percentile = 75;
    assert_false(bnk_pruner_should_prune(&cfg, hist, 6, &t, 2));
    /* an invalid percentile never prunes here (bnk_study_open refuses it: test_study.c) */
    const double bad_p[] = {0, -5, 100.5, NAN};
    t.curve = (double *)c[5];
    for (size_t i = 0; i < sizeof bad_p / sizeof bad_p[0]; i++) {
        cfg.percentile = bad_p[i];
        assert_false(bnk_pruner_should_prune(&cfg, hist, 5, &t, 2));
    }
    /* how logs and reports name it */
    char name[32];
    bnk_pruner_config d = bnk_pruner_config_default(BNK_PRUNER_MEDIAN);
    bnk_pruner_describe(&d, name, sizeof name);
    assert_string_equal(name, "median");
    d.percentile = 75;
    bnk_pruner_describe(&d, name, sizeof name);
    assert_string_equal(name, "percentile-75");
    d = bnk_pruner_config_default(BNK_PRUNER_ASHA);
    bnk_pruner_describe(&d, name, sizeof name);
    assert_string_equal(name, "asha");
}

static void test_asha_pruner(void **state) {
    (void)state;
    bnk_pruner_config cfg = bnk_pruner_config_default(BNK_PRUNER_ASHA); /* eta 3, rungs 1,3,9 */
    static const double c[6][3] = {{0.1, 0.1, 0.1}, {0.2, 0.2, 0.2}, {0.3, 0.3, 0.3},
                                   {0.4, 0.4, 0.4}, {0.5, 0.5, 0.5}, {0.6, 0.6, 0.6}};
    bnk_trial hist[6];
    for (int i = 0; i < 6; i++) hist[i] = make_trial(i, BNK_TRIAL_COMPLETE, c[i], 3);
    /* rung 1 with 6 peers + itself = 7 values: keep the best floor(7/3) = 2 */
    const double good[3] = {0.15, 0.15, 0.15}, bad[3] = {0.25, 0.25, 0.25};
    bnk_trial t = make_trial(9, BNK_TRIAL_RUNNING, good, 1);
    assert_false(bnk_pruner_should_prune(&cfg, hist, 6, &t, 1));
    t.curve = (double *)bad;
    assert_true(bnk_pruner_should_prune(&cfg, hist, 6, &t, 1));
    /* step 2 is not a rung: no decision */
    t.ncurve = 2;
    assert_false(bnk_pruner_should_prune(&cfg, hist, 6, &t, 2));
    /* the first trial at a rung always goes on */
    assert_false(bnk_pruner_should_prune(&cfg, hist, 0, &t, 1));
    bnk_pruner_kind k;
    assert_int_equal(bnk_pruner_kind_parse("asha", &k), BNK_OK);
    assert_int_equal(k, BNK_PRUNER_ASHA);
    assert_int_equal(bnk_pruner_kind_parse("hyperband", &k), BNK_ERR_PARAM);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_space_parse),
        cmocka_unit_test(test_space_json_and_default),
        cmocka_unit_test(test_space_units_and_activity),
        cmocka_unit_test(test_median_pruner),
        cmocka_unit_test(test_percentile_pruner),
        cmocka_unit_test(test_asha_pruner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
