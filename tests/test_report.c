/* Tests for the study report (include/bnkit/report.h): the HTML page of a synthetic study with
 * complete, pruned and failed trials and a conditional parameter (every chart present, no
 * network reference, every study string escaped), the CSV and JSON exports (they parse, one row
 * or object per trial), PED-ANOVA importance (the one parameter that matters ranks first),
 * atomic output, argument checks, and `bnkit report` from the outside.
 *
 * BNK_TEST_REPORT_OUT=FILE.html keeps a copy of the synthetic study's report for a look. */
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "bnkit/report.h"
#include "bnkit/tune.h"
#include "synthetic.h"
#include "test_util.h"

static char g_dir[256];

static void path_of(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", g_dir, name);
}

static int count_of(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* Whether word occurs in s other than inside a longer word ("nan" but not "nanny"). */
static bool has_word(const char *s, const char *word) {
    const size_t n = strlen(word);
    for (const char *p = strstr(s, word); p; p = strstr(p + 1, word)) {
        const bool start = p == s || !isalpha((unsigned char)p[-1]);
        if (start && !isalpha((unsigned char)p[n])) return true;
    }
    return false;
}

/* ---- A synthetic study ------------------------------------------------------------------------
 */

enum { N_TRIALS = 60, N_EPOCHS = 10 };

/* The BN space of `bnkit tune` plus, with evil, a parameter whose name and choices are markup. */
static bnk_study_config make_config(bool evil) {
    static const char *const params[] = {"bn.momentum=log:0.7:0.999",
                                         "bn.eps=log:1e-6:1e-2",
                                         "bn.normalize_with=cat:batch,running,renorm",
                                         "bn.rmax=float:1:5@bn.normalize_with=renorm",
                                         "lr=log:1e-4:1e-2",
                                         "batch=int:16:256",
                                         "x<script>alert(1)</script>=cat:a&b,<i>c</i>"};
    const int n = (int)(sizeof params / sizeof params[0]) - (evil ? 0 : 1);
    char train_args[32];
    snprintf(train_args, sizeof train_args, "--epochs=%d", N_EPOCHS);
    bnk_study_config c;
    BNK_TEST_OK(bnk_synth_study_config(&c, evil ? "<b>bold</b> & co" : "bn-study", params, n,
                                       BNK_SAMPLER_RANDOM, 11, train_args));
    return c;
}

/* Validation accuracy after `epoch` epochs: mostly a function of the momentum (best near 0.97),
 * a little of lr; low momentum overfits (the curve turns down). */
static double accuracy(const bnk_study_config *c, const bnk_point *x, int epoch) {
    const double um = bnk_space_to_unit(&c->space, 0, x->v[0]);
    const double ul = bnk_space_to_unit(&c->space, 4, x->v[4]);
    const double final = 0.89 - 0.25 * (um - 0.85) * (um - 0.85) - 0.02 * (ul - 0.6) * (ul - 0.6);
    double a = final - (final - 0.45) * exp(-epoch / 2.2);
    if (um < 0.3 && epoch > 5) a -= 0.006 * (epoch - 5); /* overfitting */
    return a;
}

/* Builds the study at path: N_TRIALS trials, every 9th failing (diverged) after two epochs,
 * every 7th pruned after three, the others complete after N_EPOCHS. With evil, one failure
 * reason is markup with quotes and commas. */
static bnk_study_config build_study(const char *path, bool evil) {
    bnk_study_config c = make_config(evil);
    unlink(path);
    bnk_study *s;
    BNK_TEST_OK(bnk_study_open(&s, path, &c));
    uint64_t rng = 5;
    for (int k = 0; k < N_TRIALS; k++) {
        int64_t id;
        bnk_point x;
        BNK_TEST_OK(bnk_study_ask(s, "worker-1", N_TRIALS, &id, &x));
        assert_true(id >= 0);
        const int epochs = k % 9 == 4 ? 2 : k % 7 == 3 ? 3 : N_EPOCHS;
        double a = 0;
        for (int e = 1; e <= epochs; e++) {
            a = accuracy(&c, &x, e) + 0.004 * (bnk_test_uniform(&rng) - 0.5);
            BNK_TEST_OK(bnk_study_report(s, id, e, a, NULL));
        }
        if (k % 9 == 4)
            BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_FAILED, NAN,
                                       evil && k == 4 ? "<script>alert('x')</script>, \"quoted\""
                                                      : "diverged: NaN/Inf loss at step 120"));
        else if (k % 7 == 3)
            BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_PRUNED, NAN, NULL));
        else
            BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, a, NULL));
    }
    bnk_study_close(s);
    return c;
}

static void load_trials(const char *path, bnk_study **s, bnk_trial **trials, int64_t *n) {
    BNK_TEST_OK(bnk_study_open_existing(s, path, NULL));
    BNK_TEST_OK(bnk_study_trials(*s, trials, n));
    assert_int_equal(*n, N_TRIALS);
}

/* ---- HTML -------------------------------------------------------------------------------------
 */

/* No reference to anything outside the file: no URL but the SVG namespace, no external
 * resource attribute. */
static void check_self_contained(const char *html) {
    char *copy = strdup(html);
    assert_non_null(copy);
    static const char ns[] = "http://www.w3.org/2000/svg";
    for (char *p = strstr(copy, ns); p; p = strstr(p, ns)) memset(p, '_', sizeof ns - 1);
    if (strstr(copy, "http://") || strstr(copy, "https://"))
        fail_msg("the report references the network: %.80s",
                 strstr(copy, "http://") ? strstr(copy, "http://") : strstr(copy, "https://"));
    static const char *const banned[] = {"<script", "<link",   "<iframe", "<img",
                                         "src=",    "@import", "url("};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        for (const char *p = copy; *p; p++)
            if (strncasecmp(p, banned[i], strlen(banned[i])) == 0)
                fail_msg("the report contains %s: %.80s", banned[i], p);
    free(copy);
}

static void test_html_report(void **state) {
    (void)state;
    char db[512], html[512];
    path_of(db, sizeof db, "html.db");
    path_of(html, sizeof html, "report.html");
    const bnk_study_config c = build_study(db, false);
    bnk_study *s;
    bnk_trial *trials;
    int64_t n;
    load_trials(db, &s, &trials, &n);
    bnk_report_options opt = bnk_report_options_default();
    opt.source = db;
    opt.train_command = "bnkit train --bn-momentum 0.97";
    opt.pytorch_args = "nn.BatchNorm1d/2d(C, eps=0.001, momentum=0.03)";
    opt.keras_args = "BatchNormalization(momentum=0.97, epsilon=0.001)";
    BNK_TEST_OK(bnk_report_write_html(html, bnk_study_config_get(s), trials, n, &opt));
    const char *keep = getenv("BNK_TEST_REPORT_OUT");
    if (keep && *keep)
        BNK_TEST_OK(bnk_report_write_html(keep, bnk_study_config_get(s), trials, n, &opt));
    bnk_trials_free(trials, n);
    bnk_study_close(s);

    char *doc = bnk_test_read_file(html, NULL);
    assert_true(strncmp(doc, "<!DOCTYPE html>", 15) == 0);
    assert_non_null(strstr(doc, "</html>"));
    /* one SVG per chart: history, importance, parallel coordinates, curves, a slice each */
    const int nsvg = count_of(doc, "<svg ");
    assert_int_equal(nsvg, 4 + c.space.n);
    assert_int_equal(count_of(doc, "</svg>"), nsvg);
    static const char *const charts[] = {
        "aria-label=\"Optimisation history",      "aria-label=\"Parameter importance",
        "aria-label=\"Parallel coordinates",      "aria-label=\"Learning curves",
        "aria-label=\"Slice plot of bn.momentum", "aria-label=\"Slice plot of bn.rmax"};
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++)
        if (!strstr(doc, charts[i])) fail_msg("no chart %s", charts[i]);
    /* log axes for log parameters, the peers' arguments, the unavailable diagnostics */
    assert_non_null(strstr(doc, "bn.momentum (log scale)"));
    assert_non_null(strstr(doc, "BatchNormalization(momentum=0.97, epsilon=0.001)"));
    assert_non_null(strstr(doc, "Not recorded in the study"));
    assert_non_null(strstr(doc, "diverged"));
    assert_non_null(strstr(doc, "pruned"));
    check_self_contained(doc);
    free(doc);
}

static void test_html_escapes_study_strings(void **state) {
    (void)state;
    char db[512], html[512];
    path_of(db, sizeof db, "evil.db");
    path_of(html, sizeof html, "evil.html");
    build_study(db, true);
    bnk_study *s;
    bnk_trial *trials;
    int64_t n;
    load_trials(db, &s, &trials, &n);
    bnk_report_options opt = bnk_report_options_default();
    opt.title = "Report <script>alert(2)</script>";
    opt.train_command = "bnkit train --x '<script>'";
    BNK_TEST_OK(bnk_report_write_html(html, bnk_study_config_get(s), trials, n, &opt));
    bnk_trials_free(trials, n);
    bnk_study_close(s);
    char *doc = bnk_test_read_file(html, NULL);
    check_self_contained(doc); /* no "<script" anywhere */
    assert_null(strstr(doc, "<b>bold</b>"));
    assert_null(strstr(doc, "<i>c</i>"));
    assert_non_null(strstr(doc, "&lt;b&gt;bold&lt;/b&gt; &amp; co"));
    assert_non_null(strstr(doc, "x&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert_non_null(
        strstr(doc, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;, &quot;quoted&quot;"));
    assert_non_null(strstr(doc, "a&amp;b"));
    assert_non_null(strstr(doc, "Report &lt;script&gt;alert(2)&lt;/script&gt;"));
    free(doc);
}

static void test_html_without_trials(void **state) {
    (void)state;
    char db[512], html[512];
    path_of(db, sizeof db, "empty.db");
    path_of(html, sizeof html, "empty.html");
    const bnk_study_config c = make_config(false);
    unlink(db);
    bnk_study *s;
    BNK_TEST_OK(bnk_study_open(&s, db, &c));
    bnk_study_close(s);
    BNK_TEST_OK(bnk_report_write_html(html, &c, NULL, 0, NULL));
    char *doc = bnk_test_read_file(html, NULL);
    assert_non_null(strstr(doc, "No trial has completed yet"));
    assert_int_equal(count_of(doc, "<svg "), 4 + c.space.n);
    check_self_contained(doc);
    free(doc);
}

/* A minimised objective, a handful of trials in every state, some without any curve, a
 * parameter with a single value and a log-int one: the page is still complete. */
static void test_html_edge_cases(void **state) {
    (void)state;
    char html[512];
    path_of(html, sizeof html, "edge.html");
    bnk_study_config c = bnk_study_config_default();
    snprintf(c.objective, sizeof c.objective, "val_loss");
    c.maximize = false;
    bnk_space_init(&c.space);
    BNK_TEST_OK(bnk_space_add(&c.space, "fixed=float:2:2"));
    BNK_TEST_OK(bnk_space_add(&c.space, "width=logint:8:512"));
    double curve[3] = {0.9, 0.7, 0.5};
    bnk_trial t[4] = {{.number = 0,
                       .state = BNK_TRIAL_COMPLETE,
                       .value = 0.5,
                       .loss = 0.5,
                       .ncurve = 3,
                       .curve = curve},
                      {.number = 1, .state = BNK_TRIAL_PRUNED, .value = NAN, .loss = NAN},
                      {.number = 2, .state = BNK_TRIAL_FAILED, .value = NAN, .loss = NAN},
                      {.number = 3, .state = BNK_TRIAL_RUNNING, .value = NAN, .loss = NAN}};
    for (int k = 0; k < 4; k++) {
        t[k].x.v[0] = 2;
        t[k].x.v[1] = 8 << k;
    }
    for (int64_t n = 1; n <= 4; n++) {
        BNK_TEST_OK(bnk_report_write_html(html, &c, t, n, NULL));
        char *doc = bnk_test_read_file(html, NULL);
        assert_int_equal(count_of(doc, "<svg "), 4 + c.space.n);
        assert_int_equal(count_of(doc, "</svg>"), 4 + c.space.n);
        assert_non_null(strstr(doc, "val_loss (lower is better)"));
        assert_non_null(strstr(doc, "Importance: not enough complete trials"));
        assert_false(has_word(doc, "nan"));
        assert_false(has_word(doc, "inf"));
        check_self_contained(doc);
        free(doc);
    }
}

/* ---- Exports ----------------------------------------------------------------------------------
 */

/* Number of CSV records (RFC 4180: line breaks inside quotes do not end a record), and the
 * number of fields of the first one. */
static int csv_records(const char *s, int *fields0) {
    int records = 0, fields = 1;
    bool quoted = false;
    *fields0 = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == ',')
            fields++;
        else if (!quoted && *p == '\n') {
            if (records == 0) *fields0 = fields;
            records++;
            fields = 1;
        }
    }
    return records;
}

static void test_csv_and_json_exports(void **state) {
    (void)state;
    char db[512], csv[512], js[512];
    path_of(db, sizeof db, "export.db");
    path_of(csv, sizeof csv, "trials.csv");
    path_of(js, sizeof js, "trials.json");
    build_study(db, true);
    bnk_study *s;
    bnk_trial *trials;
    int64_t n;
    load_trials(db, &s, &trials, &n);
    const bnk_study_config *cfg = bnk_study_config_get(s);
    BNK_TEST_OK(bnk_report_write_csv(csv, cfg, trials, n));
    BNK_TEST_OK(bnk_report_write_json(js, cfg, trials, n));

    char *text = bnk_test_read_file(csv, NULL);
    int fields;
    assert_int_equal(csv_records(text, &fields), n + 1);
    /* number,id,state,value, the parameters, bn.momentum_pytorch, steps, intermediate, worker,
     * reason, started, finished, seconds */
    assert_int_equal(fields, 4 + cfg->space.n + 1 + 7 + 13); /* + the diagnostics, empty */
    assert_true(strncmp(text, "number,id,state,val_accuracy,bn.momentum,", 41) == 0);
    assert_non_null(strstr(text, "\"<script>alert('x')</script>, \"\"quoted\"\"\""));
    assert_non_null(strstr(text, ",pruned,"));
    assert_non_null(strstr(text, ",failed,"));
    free(text);

    json_error_t err;
    json_t *root = json_load_file(js, 0, &err);
    if (!root) fail_msg("%s: line %d: %s", js, err.line, err.text);
    json_t *arr = json_object_get(root, "trials");
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), (size_t)n);
    assert_int_equal(json_array_size(json_object_get(root, "space")), (size_t)cfg->space.n);
    assert_true(json_is_true(json_object_get(root, "maximize")));
    int64_t states[4] = {0};
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *t = json_array_get(arr, i);
        const char *st = json_string_value(json_object_get(t, "state"));
        assert_non_null(st);
        states[strcmp(st, "complete") == 0 ? 1 : strcmp(st, "pruned") == 0 ? 2 : 3]++;
        assert_int_equal(json_integer_value(json_object_get(t, "number")), trials[i].number);
        json_t *curve = json_object_get(t, "intermediate");
        assert_int_equal(json_array_size(curve), (size_t)trials[i].ncurve);
        /* intermediate values back in the objective's units (accuracy, not its negation) */
        if (json_array_size(curve) > 0) assert_true(json_real_value(json_array_get(curve, 0)) > 0);
        json_t *params = json_object_get(t, "params");
        assert_non_null(json_object_get(params, "bn.momentum"));
        assert_non_null(json_object_get(params, "bn.momentum_pytorch"));
        /* the conditional parameter appears exactly where it is active */
        assert_int_equal(json_object_get(params, "bn.rmax") != NULL, !isnan(trials[i].x.v[3]));
    }
    assert_true(states[1] > 0 && states[2] > 0 && states[3] > 0);
    json_decref(root);
    bnk_trials_free(trials, n);
    bnk_study_close(s);
}

/* ---- The trainer's diagnostics ------------------------------------------------------------- */

enum { DIAG_TRIALS = 12, DIAG_EPOCHS = 6 };

/* Trials 4, 9 and 11 overfit from epoch 5 (final gap 10 points); trial 7's gradients vanish
 * from epoch 3 (tensor 0.dense.weight, norm 1e-9); trial 5 is the best (gap 5 points); every
 * other trial ends 2 points apart. Two more trials are pruned without diagnostics. */
static void build_diag_study(const char *path) {
    const bnk_study_config c = make_config(false);
    unlink(path);
    bnk_study *s;
    BNK_TEST_OK(bnk_study_open(&s, path, &c));
    for (int k = 0; k < DIAG_TRIALS + 2; k++) {
        int64_t id;
        BNK_TEST_OK(bnk_study_ask(s, "w", 100, &id, NULL));
        if (k >= DIAG_TRIALS) {
            BNK_TEST_OK(bnk_study_report(s, id, 1, 0.5, NULL));
            BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_PRUNED, NAN, NULL));
            continue;
        }
        const bool overfit = k == 4 || k == 9 || k == 11;
        const double final = k == 5 ? 0.95 : 0.8 + 0.005 * k;
        const double gap = k == 5 ? 0.05 : overfit ? 0.10 : 0.02;
        for (int e = 1; e <= DIAG_EPOCHS; e++) {
            bnk_trial_epoch d = bnk_trial_epoch_empty();
            d.val_accuracy = final - 0.01 * (DIAG_EPOCHS - e);
            d.train_accuracy = d.val_accuracy + gap;
            d.train_loss = 1.0 / e;
            d.val_loss = 1.2 / e;
            d.overfitting = overfit && e >= 5;
            d.vanishing_gradients = k == 7 && e >= 3;
            d.min_grad_norm = d.vanishing_gradients ? 1e-9 : 1e-3;
            snprintf(d.min_grad_tensor, sizeof d.min_grad_tensor, "%s",
                     d.vanishing_gradients ? "0.dense.weight" : "2.dense.weight");
            d.bn_min_running_var = 0.5;
            d.bn_max_running_var = 2 + k;
            BNK_TEST_OK(bnk_study_report_ex(s, id, e, d.val_accuracy, &d, NULL));
        }
        BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, final, NULL));
    }
    bnk_study_close(s);
}

static void test_report_trainer_diagnostics(void **state) {
    (void)state;
    char db[512], html[512], csv[512], js[512];
    path_of(db, sizeof db, "diag.db");
    path_of(html, sizeof html, "diag.html");
    path_of(csv, sizeof csv, "diag.csv");
    path_of(js, sizeof js, "diag.json");
    build_diag_study(db);
    bnk_study *s;
    bnk_trial *trials;
    int64_t n;
    BNK_TEST_OK(bnk_study_open_existing(&s, db, NULL));
    BNK_TEST_OK(bnk_study_trials(s, &trials, &n));
    const bnk_study_config *cfg = bnk_study_config_get(s);
    BNK_TEST_OK(bnk_report_write_html(html, cfg, trials, n, NULL));
    BNK_TEST_OK(bnk_report_write_csv(csv, cfg, trials, n));
    BNK_TEST_OK(bnk_report_write_json(js, cfg, trials, n));
    const int nparams = cfg->space.n; /* cfg belongs to the study, closed next */
    bnk_trials_free(trials, n);
    bnk_study_close(s);

    char *doc = bnk_test_read_file(html, NULL);
    /* the summary: counts, trial numbers, the vanishing tensor, the gaps (best 5.0, median of
     * eight 2s, one 5 and three 10s: 2.0) */
    static const char *const want[] = {
        "the trainer's flags, stored for 12 of 14 trials", "3 of 12 complete trials overfitted",
        "see trials #4, #9, #11)",
        "gradients vanished in trial #7 (tensor 0.dense.weight, norm 1e-9 at epoch 3)",
        "accuracy gap of 5.0 points (training 1, validation 0.95 at epoch 6); the median complete "
        "trial's was "
        "2.0 points.",
        /* the diagnostics card: first flagged epochs, BN range, the best trial's epochs */
        "#4 from epoch 5, #9 from epoch 5, #11 from epoch 5",
        "1 of 12 trials with diagnostics: #7 (tensor 0.dense.weight", "ranged from 0.5 to 13",
        "The best trial (#5) by epoch:"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(doc, want[i])) fail_msg("the report lacks '%s'", want[i]);
    assert_null(strstr(doc, "not stored in this study"));
    assert_null(strstr(doc, "Not recorded in the study"));
    check_self_contained(doc);
    free(doc);

    /* CSV: the last epoch's diagnostics in 13 extra columns */
    char *text = bnk_test_read_file(csv, NULL);
    int fields;
    assert_int_equal(csv_records(text, &fields), n + 1);
    assert_int_equal(fields, 4 + nparams + 1 + 7 + 13);
    assert_non_null(strstr(text, ",seconds,diag_epoch,train_loss,train_accuracy,val_loss,"));
    assert_non_null(strstr(text, ",6,0.16666666666666666,")); /* epoch 6: 1/6 */
    assert_non_null(strstr(text, ",1,0,1.0000000000000001e-09,0.dense.weight,0.5,9,0,4\r\n"));
    free(text);

    /* JSON: every epoch */
    json_error_t err;
    json_t *root = json_load_file(js, 0, &err);
    if (!root) fail_msg("%s: line %d: %s", js, err.line, err.text);
    json_t *arr = json_object_get(root, "trials");
    assert_int_equal(json_array_size(arr), DIAG_TRIALS + 2);
    json_t *t7 = json_object_get(json_array_get(arr, 7), "epochs");
    assert_int_equal(json_array_size(t7), DIAG_EPOCHS);
    json_t *e3 = json_array_get(t7, 2);
    assert_int_equal(json_integer_value(json_object_get(e3, "step")), 3);
    assert_true(json_is_true(json_object_get(e3, "vanishing_gradients")));
    assert_true(json_is_false(json_object_get(e3, "overfitting")));
    assert_string_equal(json_string_value(json_object_get(e3, "min_grad_tensor")),
                        "0.dense.weight");
    assert_true(json_real_value(json_object_get(e3, "min_grad_norm")) == 1e-9);
    assert_true(json_real_value(json_object_get(e3, "train_loss")) == 1.0 / 3);
    assert_int_equal(json_array_size(json_object_get(json_array_get(arr, 12), "epochs")), 0);
    json_decref(root);
}

/* ---- Importance -------------------------------------------------------------------------------
 */

/* 200 random points of four parameters; only `a` changes the loss. */
static void test_importance_finds_the_parameter_that_matters(void **state) {
    (void)state;
    bnk_study_config c = bnk_study_config_default();
    bnk_space_init(&c.space);
    BNK_TEST_OK(bnk_space_add(&c.space, "noise1=float:0:1"));
    BNK_TEST_OK(bnk_space_add(&c.space, "a=log:1e-4:1"));
    BNK_TEST_OK(bnk_space_add(&c.space, "noise2=cat:x,y,z"));
    BNK_TEST_OK(bnk_space_add(&c.space, "noise3=int:1:64"));
    BNK_TEST_OK(bnk_space_add(&c.space, "fixed=float:2:2"));
    enum { N = 200 };
    bnk_trial *t = calloc(N, sizeof *t);
    assert_non_null(t);
    uint64_t rng = 3;
    for (int k = 0; k < N; k++) {
        for (int i = 0; i < c.space.n; i++)
            t[k].x.v[i] = bnk_space_from_unit(&c.space, i, bnk_test_uniform(&rng));
        t[k].x.v[2] = (double)(bnk_test_next(&rng) % 3);
        const double u = bnk_space_to_unit(&c.space, 1, t[k].x.v[1]);
        t[k].number = k;
        t[k].state = k % 10 == 9 ? BNK_TRIAL_FAILED : BNK_TRIAL_COMPLETE;
        t[k].loss = t[k].state == BNK_TRIAL_COMPLETE ? (u - 0.3) * (u - 0.3) : NAN;
        t[k].value = -t[k].loss;
    }
    double imp[8];
    int64_t ntop;
    BNK_TEST_OK(bnk_report_importance(&c, t, N, 0.1, imp, &ntop));
    assert_int_equal(ntop, 18); /* ceil(0.1 * 180) */
    for (int i = 0; i < c.space.n; i++)
        if (i != 1 && !(imp[1] > imp[i]))
            fail_msg("a: importance %.3f, not above %s's %.3f", imp[1], c.space.params[i].name,
                     imp[i]);
    assert_true(imp[1] > 0.5); /* it dominates, it is not just first */
    assert_true(imp[4] == 0);  /* a single possible value */
    double sum = 0;
    for (int i = 0; i < c.space.n; i++) sum += imp[i];
    bnk_test_close_at("importance sum", 0, sum, 1.0, 1e-12, 0); /* normalised exactly */

    /* the categorical one when it alone matters */
    for (int k = 0; k < N; k++)
        if (t[k].state == BNK_TRIAL_COMPLETE) t[k].loss = t[k].x.v[2] == 1 ? 0 : 1 + t[k].x.v[0];
    BNK_TEST_OK(bnk_report_importance(&c, t, N, 0.2, imp, &ntop));
    for (int i = 0; i < c.space.n; i++)
        if (i != 2 && !(imp[2] > imp[i]))
            fail_msg("noise2: importance %.3f, not above %s's %.3f", imp[2], c.space.params[i].name,
                     imp[i]);

    /* too few complete trials: nothing assessed; a bad quantile is refused */
    BNK_TEST_OK(bnk_report_importance(&c, t, 2, 0.1, imp, &ntop));
    assert_int_equal(ntop, 0);
    for (int i = 0; i < c.space.n; i++) assert_true(isnan(imp[i]));
    assert_int_equal(bnk_report_importance(&c, t, N, 0, imp, NULL), BNK_ERR_PARAM);
    assert_int_equal(bnk_report_importance(&c, t, N, 1.5, imp, NULL), BNK_ERR_PARAM);
    assert_int_equal(bnk_report_importance(NULL, t, N, 0.1, imp, NULL), BNK_ERR_NULL);
    free(t);
}

/* A conditional parameter is judged where it is active only. */
static void test_importance_conditional(void **state) {
    (void)state;
    bnk_study_config c = bnk_study_config_default();
    bnk_space_init(&c.space);
    BNK_TEST_OK(bnk_space_add(&c.space, "mode=cat:plain,fancy"));
    BNK_TEST_OK(bnk_space_add(&c.space, "r=float:1:5@mode=fancy"));
    BNK_TEST_OK(bnk_space_add(&c.space, "noise=float:0:1"));
    enum { N = 300 };
    bnk_trial *t = calloc(N, sizeof *t);
    assert_non_null(t);
    uint64_t rng = 9;
    for (int k = 0; k < N; k++) {
        t[k].x.v[0] = (double)(k % 2);
        t[k].x.v[1] = k % 2 ? bnk_space_from_unit(&c.space, 1, bnk_test_uniform(&rng)) : NAN;
        t[k].x.v[2] = bnk_test_uniform(&rng);
        t[k].state = BNK_TRIAL_COMPLETE;
        /* fancy with r near 4 is best; plain is mediocre */
        t[k].loss = k % 2 ? fabs(t[k].x.v[1] - 4) : 1.5;
    }
    double imp[3];
    BNK_TEST_OK(bnk_report_importance(&c, t, N, 0.1, imp, NULL));
    assert_true(imp[1] > imp[2]);
    assert_true(imp[0] > imp[2]);
    free(t);
}

/* ---- Output and arguments ---------------------------------------------------------------------
 */

static void test_atomic_output_and_errors(void **state) {
    (void)state;
    char html[512], missing[512];
    path_of(html, sizeof html, "atomic.html");
    path_of(missing, sizeof missing, "no-such-dir/report.html");
    const bnk_study_config c = make_config(false);
    FILE *f = fopen(html, "w");
    assert_non_null(f);
    fputs("old contents that are much longer than nothing at all", f);
    fclose(f);
    BNK_TEST_OK(bnk_report_write_csv(html, &c, NULL, 0));
    char *text = bnk_test_read_file(html, NULL);
    assert_int_equal(count_of(text, "\n"), 1); /* replaced, header only */
    assert_null(strstr(text, "old contents"));
    free(text);
    assert_int_equal(bnk_report_write_html(missing, &c, NULL, 0, NULL), BNK_ERR_IO);
    assert_non_null(strstr(bnk_errmsg(), "no-such-dir"));
    assert_int_equal(bnk_report_write_json(missing, &c, NULL, 0), BNK_ERR_IO);
    assert_int_equal(bnk_report_write_html(NULL, &c, NULL, 0, NULL), BNK_ERR_NULL);
    assert_int_equal(bnk_report_write_csv(html, NULL, NULL, 0), BNK_ERR_NULL);
    assert_int_equal(bnk_report_write_json(html, &c, NULL, 3), BNK_ERR_NULL);
    bnk_report_options opt = bnk_report_options_default();
    opt.top_quantile = 0;
    assert_int_equal(bnk_report_write_html(html, &c, NULL, 0, &opt), BNK_ERR_PARAM);
    /* no temporary file left behind */
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, ".tmp")) fail_msg("temporary file left: %s", e->d_name);
    closedir(d);
}

/* ---- The command ------------------------------------------------------------------------------
 */

static int run(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_report(void **state) {
    (void)state;
    char db[512], html[512], csv[512], js[512], cmd[4096];
    path_of(db, sizeof db, "cli.db");
    path_of(html, sizeof html, "cli.html");
    path_of(csv, sizeof csv, "cli.csv");
    path_of(js, sizeof js, "cli.json");
    build_study(db, false);
    snprintf(cmd, sizeof cmd, "'%s' report --study '%s' --out '%s' --csv '%s' --json '%s'",
             BNK_CLI_PATH, db, html, csv, js);
    assert_int_equal(run(cmd), 0);
    char *doc = bnk_test_read_file(html, NULL);
    /* the CLI fills in the best configuration as `bnkit tune` prints it */
    assert_non_null(strstr(doc, "bnkit train --epochs=10 --bn-momentum "));
    assert_non_null(strstr(doc, "BatchNormalization(momentum="));
    assert_non_null(strstr(doc, "<div class=\"lbl\">PyTorch</div><pre>"));
    free(doc);
    struct stat sb;
    assert_int_equal(stat(csv, &sb), 0);
    assert_int_equal(stat(js, &sb), 0);
    snprintf(cmd, sizeof cmd, "'%s' report --study '%s' 2>/dev/null", BNK_CLI_PATH, db);
    assert_int_equal(run(cmd), 2); /* nothing to write */
    snprintf(cmd, sizeof cmd, "'%s' report --study '%s' --out x.html --top 2 2>/dev/null",
             BNK_CLI_PATH, db);
    assert_int_equal(run(cmd), 2);
    snprintf(cmd, sizeof cmd, "'%s' report --study '%s/none.db' --out '%s' 2>/dev/null",
             BNK_CLI_PATH, g_dir, html);
    assert_int_equal(run(cmd), 1);
}

int main(void) {
    if (bnk_test_mkdtemp(g_dir, sizeof g_dir, "report") != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html_report),
        cmocka_unit_test(test_html_escapes_study_strings),
        cmocka_unit_test(test_html_without_trials),
        cmocka_unit_test(test_html_edge_cases),
        cmocka_unit_test(test_csv_and_json_exports),
        cmocka_unit_test(test_report_trainer_diagnostics),
        cmocka_unit_test(test_importance_finds_the_parameter_that_matters),
        cmocka_unit_test(test_importance_conditional),
        cmocka_unit_test(test_atomic_output_and_errors),
        cmocka_unit_test(test_cli_report),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    bnk_test_remove_dir(g_dir);
    return failed ? 1 : 0;
}
