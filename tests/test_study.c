/* Tests for the SQLite study (include/bnkit/tune.h, "Study storage"): create, resume and
 * configuration checks; foreign files refused and left byte for byte as they were; the
 * ask/report/tell round trip; budget counting and the re-issue of trials whose worker died;
 * SIGKILL in the middle of a trial and in the middle of writes; several worker processes on one
 * file.
 *
 * Worker processes are forked; they never call cmocka (a failed assertion would longjmp into a
 * copy of the parent's runner) but _exit non-zero after printing what went wrong, and the parent
 * asserts on their exit status. No study handle is open across a fork: SQLite connections must
 * not be shared between processes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bnkit/tune.h"
#include "synthetic.h"
#include "test_util.h"

/* A fresh directory per run, emptied and removed at the end. */
static char g_dir[256];

static void path_of(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", g_dir, name);
}

/* ---- Helpers --------------------------------------------------------------------------------- */

/* A small mixed space: two floats, a categorical and a conditional float. */
static bnk_study_config make_config(const char *name, bnk_sampler_kind kind) {
    static const char *const params[] = {"x=float:-5:10", "lr=log:1e-4:1e-1", "opt=cat:sgd,adam",
                                         "mom=float:0:1@opt=sgd"};
    bnk_study_config c;
    BNK_TEST_OK(bnk_synth_study_config(&c, name, params, 4, kind, 7,
                                       "--epochs 3 --model dense:32,relu,bn,dense:10"));
    snprintf(c.objective, sizeof c.objective, "val_accuracy");
    c.maximize = true;
    return c;
}

/* A grid of exactly 3 * 4 * 5 = 60 points (categorical only, so the size does not depend on
 * grid_points). */
static bnk_study_config make_grid_config(const char *name) {
    bnk_study_config c = make_config(name, BNK_SAMPLER_GRID);
    bnk_space_init(&c.space);
    BNK_TEST_OK(bnk_space_add(&c.space, "a=cat:a0,a1,a2"));
    BNK_TEST_OK(bnk_space_add(&c.space, "b=cat:b0,b1,b2,b3"));
    BNK_TEST_OK(bnk_space_add(&c.space, "c=cat:c0,c1,c2,c3,c4"));
    return c;
}

/* The synthetic objective the workers report: a function of the point, so the parent can check
 * that every told value belongs to its trial's point. */
static double objective_of(const bnk_point *x) {
    double v = 0;
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++)
        if (!isnan(x->v[i])) v += (i + 1) * x->v[i];
    return v;
}

/* Points are equal when every value is, NaN (inactive) matching NaN. */
static bool same_point(const bnk_point *a, const bnk_point *b) {
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++)
        if (!(a->v[i] == b->v[i] || (isnan(a->v[i]) && isnan(b->v[i])))) return false;
    return true;
}

typedef struct blob {
    unsigned char *p;
    size_t len;
} blob;

static blob read_file(const char *path) {
    blob b;
    b.p = (unsigned char *)bnk_test_read_file(path, &b.len);
    return b;
}

static void write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Runs SQL on a file with SQLite directly (to build foreign files and inspect ours). */
static void sql_run(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", sql, err);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int64_t sql_int(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    const int64_t v = sqlite3_column_int64(stmt, 0);
    assert_int_equal(sqlite3_finalize(stmt), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return v;
}

static void expect_refused(const char *path, const bnk_study_config *cfg, bnk_status want,
                           const char *needle) {
    bnk_study *s = (bnk_study *)1;
    bnk_status st = bnk_study_open(&s, path, cfg);
    const char *shown = path ? path : "(null)";
    if (st != want)
        fail_msg("open %s: expected %s, got %s (%s)", shown, bnk_status_str(want),
                 bnk_status_str(st), bnk_errmsg());
    assert_null(s);
    if (needle && !strstr(bnk_errmsg(), needle))
        fail_msg("open %s: message '%s' lacks '%s'", shown, bnk_errmsg(), needle);
}

/* Trials of the study as a sorted snapshot; the caller frees with bnk_trials_free. */
static bnk_trial *all_trials(bnk_study *s, int64_t *n) {
    bnk_trial *t = NULL;
    BNK_TEST_OK(bnk_study_trials(s, &t, n));
    for (int64_t k = 1; k < *n; k++) assert_true(t[k].number > t[k - 1].number);
    return t;
}

/* Diagnostics that encode the point and the step, so that a reader can tell whose they are. */
static bnk_trial_epoch epoch_of(const bnk_point *x, int64_t step) {
    bnk_trial_epoch e = bnk_trial_epoch_empty();
    const double v = objective_of(x);
    e.train_loss = v + (double)step;
    e.train_accuracy = 0.5 + 0.01 * (double)step;
    e.val_loss = v - (double)step;
    e.val_accuracy = NAN; /* stored as NULL, read back as NaN */
    e.vanishing_gradients = step % 2 == 0;
    e.overfitting = step % 3 == 0;
    e.min_grad_norm = 1e-9 * (double)step;
    snprintf(e.min_grad_tensor, sizeof e.min_grad_tensor, "%lld.dense.weight", (long long)step);
    e.bn_min_running_var = 0.25;
    e.bn_max_running_var = v;
    return e;
}

/* Values written as doubles come back bit-identical (SQLite stores REAL as IEEE 754). */
static void expect_epoch(const bnk_trial_epoch *e, const bnk_point *x, int64_t step) {
    const bnk_trial_epoch want = epoch_of(x, step);
    char tensor[48];
    snprintf(tensor, sizeof tensor, "%lld.dense.weight", (long long)step);
    if (e->step != step || e->train_loss != want.train_loss ||
        e->train_accuracy != want.train_accuracy || e->val_loss != want.val_loss ||
        !isnan(e->val_accuracy) || e->vanishing_gradients != want.vanishing_gradients ||
        e->overfitting != want.overfitting || e->min_grad_norm != want.min_grad_norm ||
        strcmp(e->min_grad_tensor, tensor) != 0 || e->bn_min_running_var != 0.25 ||
        e->bn_max_running_var != want.bn_max_running_var)
        fail_msg("epoch %lld: got step %lld train_loss %.17g val_loss %.17g tensor '%s'; "
                 "expected train_loss %.17g val_loss %.17g tensor '%s'",
                 (long long)step, (long long)e->step, e->train_loss, e->val_loss,
                 e->min_grad_tensor, want.train_loss, want.val_loss, tensor);
}

static int64_t count_state(const bnk_trial *t, int64_t n, bnk_trial_state state) {
    int64_t c = 0;
    for (int64_t k = 0; k < n; k++) c += t[k].state == state;
    return c;
}

/* ---- Create, resume, configuration ----------------------------------------------------------- */

static void test_create_and_resume(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "resume.db");
    bnk_study_config cfg = make_config("resume", BNK_SAMPLER_RANDOM);
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t id[3];
    bnk_point x[3];
    for (int k = 0; k < 3; k++) BNK_TEST_OK(bnk_study_ask(s, "w0", 10, &id[k], &x[k]));
    BNK_TEST_OK(bnk_study_tell(s, id[0], BNK_TRIAL_COMPLETE, 0.5, NULL));
    BNK_TEST_OK(bnk_study_tell(s, id[1], BNK_TRIAL_COMPLETE, 0.75, NULL));
    bnk_study_close(s);

    /* The same configuration resumes; the trials and their points are all there. */
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t n;
    bnk_trial *t = all_trials(s, &n);
    assert_int_equal(n, 3);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(t[k].id, id[k]);
        assert_int_equal(t[k].number, k);
        assert_true(same_point(&t[k].x, &x[k]));
        assert_string_equal(t[k].worker, "w0");
        assert_true(t[k].started > 1e9 && t[k].heartbeat >= t[k].started);
    }
    assert_int_equal(t[0].state, BNK_TRIAL_COMPLETE);
    assert_true(t[1].value == 0.75 && t[1].loss == -0.75); /* maximised: loss is negated */
    assert_int_equal(t[2].state, BNK_TRIAL_RUNNING);
    assert_true(isnan(t[2].value) && t[2].finished == 0);
    bnk_trials_free(t, n);
    int64_t next;
    BNK_TEST_OK(bnk_study_ask(s, "w1", 10, &next, NULL));
    t = all_trials(s, &n);
    assert_int_equal(n, 4);
    assert_int_equal(t[3].number, 3);
    bnk_trials_free(t, n);
    bnk_study_close(s);

    /* cfg NULL: the stored configuration comes back, equal in every part. */
    BNK_TEST_OK(bnk_study_open(&s, path, NULL));
    bnk_study_close(s);
    BNK_TEST_OK(bnk_study_open_existing(&s, path, "resume"));
    const bnk_study_config *got = bnk_study_config_get(s);
    assert_string_equal(got->name, "resume");
    assert_string_equal(got->objective, cfg.objective);
    assert_true(got->maximize);
    assert_true(bnk_space_equal(&got->space, &cfg.space));
    /* field by field: the structs' padding bytes are unspecified */
    assert_int_equal(got->sampler.kind, cfg.sampler.kind);
    assert_int_equal(got->sampler.seed, cfg.sampler.seed);
    assert_int_equal(got->sampler.grid_points, cfg.sampler.grid_points);
    assert_int_equal(got->sampler.n_startup, cfg.sampler.n_startup);
    assert_int_equal(got->sampler.n_candidates, cfg.sampler.n_candidates);
    assert_true(got->sampler.prior_weight == cfg.sampler.prior_weight);
    assert_int_equal(got->sampler.multivariate, cfg.sampler.multivariate);
    assert_int_equal(got->sampler.constant_liar, cfg.sampler.constant_liar);
    assert_int_equal(got->pruner.kind, cfg.pruner.kind);
    assert_int_equal(got->pruner.n_startup, cfg.pruner.n_startup);
    assert_int_equal(got->pruner.n_warmup, cfg.pruner.n_warmup);
    assert_true(got->pruner.percentile == cfg.pruner.percentile);
    assert_int_equal(got->pruner.reduction, cfg.pruner.reduction);
    assert_int_equal(got->pruner.min_resource, cfg.pruner.min_resource);
    assert_string_equal(got->train_args, cfg.train_args);
    bnk_study_close(s);

    /* A second study in the same file is separate; cfg NULL is then ambiguous. */
    bnk_study_config other = make_config("other", BNK_SAMPLER_RANDOM);
    BNK_TEST_OK(bnk_study_open(&s, path, &other));
    t = all_trials(s, &n);
    assert_int_equal(n, 0);
    assert_null(t);
    bnk_study_close(s);
    expect_refused(path, NULL, BNK_ERR_PARAM, "2 studies (resume, other)");
    BNK_TEST_OK(bnk_study_open_existing(&s, path, "other"));
    assert_string_equal(bnk_study_config_get(s)->name, "other");
    bnk_study_close(s);
    s = (bnk_study *)1;
    assert_int_equal(bnk_study_open_existing(&s, path, "nope"), BNK_ERR_IO);
    assert_null(s);
    assert_non_null(strstr(bnk_errmsg(), "no study named 'nope'"));

    /* cfg NULL never creates anything. */
    char missing[512];
    path_of(missing, sizeof missing, "missing.db");
    expect_refused(missing, NULL, BNK_ERR_IO, NULL);
    assert_int_not_equal(access(missing, F_OK), 0);
    bnk_study_close(NULL); /* harmless */
    assert_null(bnk_study_config_get(NULL));
}

static void test_config_mismatch(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "mismatch.db");
    const bnk_study_config cfg = make_config("m", BNK_SAMPLER_TPE);
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    bnk_study_close(s);
    const blob before = read_file(path);

    bnk_study_config c = cfg;
    c.space.params[0].hi = 11;
    expect_refused(path, &c, BNK_ERR_PARAM, "search space parameter 1");
    c = cfg;
    BNK_TEST_OK(bnk_space_add(&c.space, "wd=log:1e-6:1e-2"));
    expect_refused(path, &c, BNK_ERR_PARAM, "search space parameter 5");
    c = cfg;
    c.sampler.kind = BNK_SAMPLER_RANDOM;
    expect_refused(path, &c, BNK_ERR_PARAM, "sampler.kind");
    c = cfg;
    c.sampler.seed = 8;
    expect_refused(path, &c, BNK_ERR_PARAM, "sampler.seed");
    c = cfg;
    c.sampler.prior_weight = 2;
    expect_refused(path, &c, BNK_ERR_PARAM, "sampler.prior_weight");
    c = cfg;
    c.sampler.constant_liar = !c.sampler.constant_liar;
    expect_refused(path, &c, BNK_ERR_PARAM, "sampler.constant_liar");
    c = cfg;
    c.pruner = bnk_pruner_config_default(BNK_PRUNER_ASHA);
    expect_refused(path, &c, BNK_ERR_PARAM, "pruner.kind");
    c = cfg;
    c.pruner.n_warmup = 4;
    expect_refused(path, &c, BNK_ERR_PARAM, "pruner.n_warmup");
    c = cfg;
    c.maximize = false;
    expect_refused(path, &c, BNK_ERR_PARAM, "maximize");
    c = cfg;
    snprintf(c.objective, sizeof c.objective, "val_loss");
    expect_refused(path, &c, BNK_ERR_PARAM, "objective");
    c = cfg;
    snprintf(c.train_args, sizeof c.train_args, "--epochs 4");
    expect_refused(path, &c, BNK_ERR_PARAM, "train_args");

    /* Invalid configurations are refused before the file is touched. */
    c = cfg;
    c.name[0] = '\0';
    expect_refused(path, &c, BNK_ERR_PARAM, "name");
    c = cfg;
    c.space.n = 0;
    expect_refused(path, &c, BNK_ERR_PARAM, "search space");
    c = cfg;
    c.sampler.kind = (bnk_sampler_kind)99;
    expect_refused(path, &c, BNK_ERR_PARAM, "sampler");
    const double bad_p[] = {0, -1, 100.5, NAN};
    for (size_t i = 0; i < sizeof bad_p / sizeof bad_p[0]; i++) {
        c = cfg;
        c.pruner.percentile = bad_p[i];
        expect_refused(path, &c, BNK_ERR_PARAM, "pruner percentile must be in (0, 100]");
    }
    expect_refused(NULL, &cfg, BNK_ERR_NULL, NULL);
    assert_int_equal(bnk_study_open(NULL, path, &cfg), BNK_ERR_NULL);

    const blob after = read_file(path);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.p, before.p, before.len);
    free(before.p);
    free(after.p);
}

/* The pruner's percentile is stored and compared; at the default 50 the stored JSON is the one
 * older bnkit wrote (no "percentile" key), and such JSON reads back as 50. */
static void test_pruner_percentile_stored(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "percentile.db");
    bnk_study_config cfg = make_config("med", BNK_SAMPLER_RANDOM);
    cfg.pruner = bnk_pruner_config_default(BNK_PRUNER_MEDIAN);
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    bnk_study_close(s);
    assert_int_equal(sql_int(path, "SELECT instr(pruner_json, 'percentile') FROM studies"), 0);
    BNK_TEST_OK(bnk_study_open_existing(&s, path, "med"));
    assert_true(bnk_study_config_get(s)->pruner.percentile == 50);
    bnk_study_close(s);

    path_of(path, sizeof path, "percentile75.db");
    cfg.pruner.percentile = 75;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    bnk_study_close(s);
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg)); /* resuming with the same percentile */
    bnk_study_close(s);
    BNK_TEST_OK(bnk_study_open_existing(&s, path, "med"));
    assert_true(bnk_study_config_get(s)->pruner.percentile == 75);
    bnk_study_close(s);
    bnk_study_config c = cfg;
    c.pruner.percentile = 50;
    expect_refused(path, &c, BNK_ERR_PARAM, "pruner.percentile is 75 in the file, 50 here");
    /* a stored percentile out of range (edited by hand) is a damaged file */
    sql_run(path, "UPDATE studies SET pruner_json = replace(pruner_json, '75.0', '150.0')");
    expect_refused(path, NULL, BNK_ERR_FORMAT, "percentile 150 not in (0, 100]");
}

/* ---- Trainer diagnostics and the schema upgrade ------------------------------------------------
 */

static void test_epoch_diagnostics(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "epochs.db");
    bnk_study_config cfg = make_config("ep", BNK_SAMPLER_RANDOM);
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t a, b;
    bnk_point xa, xb;
    BNK_TEST_OK(bnk_study_ask(s, "w", 10, &a, &xa));
    BNK_TEST_OK(bnk_study_ask(s, "w", 10, &b, &xb));
    /* steps out of order, one replaced, one without diagnostics, one with a NaN value */
    bnk_trial_epoch e3 = epoch_of(&xa, 3), e1 = epoch_of(&xa, 1), junk = epoch_of(&xb, 7);
    e3.step = 99; /* ignored: the step argument is the step */
    BNK_TEST_OK(bnk_study_report_ex(s, a, 3, 0.5, &e3, NULL));
    BNK_TEST_OK(bnk_study_report_ex(s, a, 1, 0.25, &junk, NULL));
    BNK_TEST_OK(bnk_study_report_ex(s, a, 1, 0.25, &e1, NULL)); /* replaces step 1 */
    BNK_TEST_OK(bnk_study_report_ex(s, a, 2, 0.375, NULL, NULL));
    bnk_trial_epoch e4 = epoch_of(&xa, 4);
    bool prune = true;
    BNK_TEST_OK(bnk_study_report_ex(s, a, 4, NAN, &e4, &prune));
    BNK_TEST_OK(bnk_study_tell(s, a, BNK_TRIAL_COMPLETE, 0.5, NULL));
    /* a 47-byte tensor name (the most that fits) survives; a finished trial takes nothing */
    bnk_trial_epoch eb = bnk_trial_epoch_empty();
    memset(eb.min_grad_tensor, 'w', sizeof eb.min_grad_tensor - 1);
    BNK_TEST_OK(bnk_study_report_ex(s, b, 1, 0.125, &eb, NULL));
    assert_int_equal(bnk_study_report_ex(s, a, 5, 0.5, &e4, NULL), BNK_ERR_PARAM);
    assert_int_equal(bnk_study_report_ex(NULL, a, 5, 0.5, &e4, NULL), BNK_ERR_NULL);

    int64_t n;
    bnk_trial *t = all_trials(s, &n);
    assert_int_equal(n, 2);
    assert_int_equal(t[0].nepochs, 3); /* steps 1, 3, 4; step 2 was reported without any */
    expect_epoch(&t[0].epochs[0], &xa, 1);
    expect_epoch(&t[0].epochs[1], &xa, 3);
    expect_epoch(&t[0].epochs[2], &xa, 4);
    assert_true(isnan(t[0].curve[3])); /* the NaN value is a missing step; its diagnostics stay */
    assert_int_equal(t[1].nepochs, 1);
    const bnk_trial_epoch *f = &t[1].epochs[0];
    assert_int_equal(strlen(f->min_grad_tensor), sizeof f->min_grad_tensor - 1);
    assert_true(isnan(f->train_loss) && isnan(f->min_grad_norm) && isnan(f->bn_max_running_var));
    assert_false(f->overfitting || f->vanishing_gradients);
    bnk_trials_free(t, n);
    /* the refused report left nothing behind */
    assert_int_equal(sql_int(path, "SELECT count(*) FROM trial_epochs WHERE step = 5"), 0);

    bnk_trial best;
    bool found;
    BNK_TEST_OK(bnk_study_best(s, &best, &found));
    assert_true(found && best.id == a && best.epochs == NULL && best.nepochs == 0);
    bnk_study_close(s);
}

/* The schema of version 1 (bnkit before trial_epochs), as src/tune/study_schema.c wrote it. */
static const char V1_SCHEMA[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE studies(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, objective TEXT NOT "
    "NULL, maximize INTEGER NOT NULL CHECK (maximize IN (0, 1)), space_json TEXT NOT NULL, "
    "sampler_json TEXT NOT NULL, pruner_json TEXT NOT NULL, train_args TEXT NOT NULL, created "
    "REAL NOT NULL);"
    "CREATE TABLE trials(id INTEGER PRIMARY KEY, study_id INTEGER NOT NULL REFERENCES "
    "studies(id) ON DELETE CASCADE, number INTEGER NOT NULL CHECK (number >= 0), state TEXT NOT "
    "NULL CHECK (state IN ('running', 'complete', 'pruned', 'failed')), value REAL, loss REAL, "
    "worker TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', started REAL, finished "
    "REAL, heartbeat REAL, UNIQUE (study_id, number));"
    "CREATE TABLE trial_params(trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE "
    "CASCADE, param_index INTEGER NOT NULL CHECK (param_index >= 0), value REAL, PRIMARY KEY "
    "(trial_id, param_index)) WITHOUT ROWID;"
    "CREATE TABLE trial_values(trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE "
    "CASCADE, step INTEGER NOT NULL CHECK (step >= 1), value REAL, PRIMARY KEY (trial_id, "
    "step)) WITHOUT ROWID;"
    "INSERT INTO meta VALUES ('app', 'bnkit-study'), ('schema_version', '1');";

/* A version-1 file at path holding the rows of the (current) study file src. */
static void make_v1_copy(const char *path, const char *src) {
    char sql[4096];
    unlink(path);
    snprintf(sql, sizeof sql,
             "%s ATTACH '%s' AS src; INSERT INTO studies SELECT * FROM src.studies;"
             "INSERT INTO trials SELECT * FROM src.trials;"
             "INSERT INTO trial_params SELECT * FROM src.trial_params;"
             "INSERT INTO trial_values SELECT * FROM src.trial_values; DETACH src;",
             V1_SCHEMA, src);
    sql_run(path, sql);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = "
                                   "'trial_epochs'"),
                     0);
}

static void test_schema_upgrade(void **state) {
    (void)state;
    char src[512], path[512], path2[512];
    path_of(src, sizeof src, "v2_src.db");
    path_of(path, sizeof path, "v1.db");
    path_of(path2, sizeof path2, "v1_existing.db");
    bnk_study_config cfg = make_config("old", BNK_SAMPLER_TPE);
    bnk_study *s = NULL;
    int64_t done, running;
    bnk_point xd, xr;
    BNK_TEST_OK(bnk_study_open(&s, src, &cfg));
    BNK_TEST_OK(bnk_study_ask(s, "w", 10, &done, &xd));
    BNK_TEST_OK(bnk_study_report(s, done, 1, 0.25, NULL));
    BNK_TEST_OK(bnk_study_tell(s, done, BNK_TRIAL_COMPLETE, 0.5, NULL));
    BNK_TEST_OK(bnk_study_ask(s, "w", 10, &running, &xr));
    BNK_TEST_OK(bnk_study_report(s, running, 1, 0.125, NULL));
    bnk_study_close(s);
    make_v1_copy(path, src);
    make_v1_copy(path2, src);

    /* Opening with the configuration resumes the old study and upgrades the file. */
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    assert_int_equal(sql_int(path, "SELECT value FROM meta WHERE key = 'schema_version'"), 2);
    bnk_trial_epoch e2 = epoch_of(&xr, 2);
    BNK_TEST_OK(bnk_study_report_ex(s, running, 2, 0.75, &e2, NULL));
    BNK_TEST_OK(bnk_study_tell(s, running, BNK_TRIAL_COMPLETE, 0.75, NULL));
    int64_t next;
    BNK_TEST_OK(bnk_study_ask(s, "w", 10, &next, NULL));
    assert_true(next > running);
    int64_t n;
    bnk_trial *t = all_trials(s, &n);
    assert_int_equal(n, 3);
    assert_true(t[0].id == done && t[0].value == 0.5 && t[0].ncurve == 1 && t[0].nepochs == 0);
    assert_true(same_point(&t[0].x, &xd) && same_point(&t[1].x, &xr));
    assert_true(t[1].ncurve == 2 && t[1].curve[0] == -0.125 && t[1].curve[1] == -0.75);
    assert_int_equal(t[1].nepochs, 1);
    expect_epoch(&t[1].epochs[0], &xr, 2);
    bnk_trials_free(t, n);
    bnk_study_close(s);
    /* Reopening an upgraded file changes nothing more. */
    BNK_TEST_OK(bnk_study_open_existing(&s, path, NULL));
    bnk_study_close(s);
    assert_int_equal(sql_int(path, "SELECT value FROM meta WHERE key = 'schema_version'"), 2);

    /* Opening with the stored configuration (bnkit report, trials, tell) upgrades too. */
    BNK_TEST_OK(bnk_study_open_existing(&s, path2, "old"));
    t = all_trials(s, &n);
    assert_int_equal(n, 2);
    assert_true(t[0].nepochs == 0 && t[1].nepochs == 0 && t[1].state == BNK_TRIAL_RUNNING);
    bnk_trials_free(t, n);
    bnk_study_close(s);
    assert_int_equal(sql_int(path2, "SELECT value FROM meta WHERE key = 'schema_version'"), 2);
    assert_int_equal(sql_int(path2, "SELECT count(*) FROM sqlite_master WHERE name = "
                                    "'trial_epochs'"),
                     1);

    /* A version-1 file of another configuration is refused as before, and not upgraded. */
    make_v1_copy(path2, src);
    bnk_study_config other = cfg;
    other.sampler.seed++;
    assert_int_equal(bnk_study_open(&s, path2, &other), BNK_ERR_PARAM);
    assert_null(s);
    assert_int_equal(sql_int(path2, "SELECT value FROM meta WHERE key = 'schema_version'"), 1);
}

/* ---- Foreign files --------------------------------------------------------------------------- */

static void expect_untouched(const char *path, const char *needle) {
    const blob before = read_file(path);
    const bnk_study_config cfg = make_config("default", BNK_SAMPLER_RANDOM);
    expect_refused(path, &cfg, BNK_ERR_FORMAT, needle);
    expect_refused(path, NULL, BNK_ERR_FORMAT, needle);
    const blob after = read_file(path);
    if (after.len != before.len || memcmp(after.p, before.p, before.len) != 0)
        fail_msg("%s was modified", path);
    free(before.p);
    free(after.p);
}

static void test_foreign_files(void **state) {
    (void)state;
    char path[512];

    path_of(path, sizeof path, "notes.txt");
    const char *text = "these are my notes\nnot a database\n";
    write_file(path, text, strlen(text));
    expect_untouched(path, "not an SQLite database");

    uint64_t rng = 42;
    unsigned char bytes[8192];
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)bnk_test_next(&rng);
    path_of(path, sizeof path, "random.bin");
    write_file(path, bytes, sizeof bytes);
    expect_untouched(path, "not an SQLite database");

    /* SQLite's magic followed by garbage. */
    memcpy(bytes, "SQLite format 3", 16);
    path_of(path, sizeof path, "damaged.db");
    write_file(path, bytes, sizeof bytes);
    expect_untouched(path, "not a bnkit study file");

    path_of(path, sizeof path, "app.db");
    sql_run(path, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
                  "INSERT INTO users(name) VALUES ('ada'), ('grace');");
    expect_untouched(path, "another application");

    path_of(path, sizeof path, "app_meta.db");
    sql_run(path, "CREATE TABLE meta(key TEXT, value TEXT);"
                  "INSERT INTO meta VALUES ('app', 'someone-else'), ('schema_version', '1');");
    expect_untouched(path, "another application");

    path_of(path, sizeof path, "app_meta_cols.db");
    sql_run(path, "CREATE TABLE meta(k TEXT, v TEXT); INSERT INTO meta VALUES ('app', 'x');");
    expect_untouched(path, "another application");

    /* Our own format from a future bnkit. */
    path_of(path, sizeof path, "future.db");
    const bnk_study_config cfg = make_config("default", BNK_SAMPLER_RANDOM);
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    bnk_study_close(s);
    sql_run(path, "UPDATE meta SET value = '3' WHERE key = 'schema_version';"
                  "CREATE TABLE trial_attrs(trial_id INTEGER, key TEXT, value TEXT);");
    expect_untouched(path, "newer bnkit");

    /* An empty file is a new study file; a directory is an I/O error. */
    path_of(path, sizeof path, "empty.db");
    write_file(path, "", 0);
    expect_refused(path, NULL, BNK_ERR_IO, NULL);
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    bnk_study_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM studies"), 1);
    expect_refused(g_dir, &cfg, BNK_ERR_IO, NULL);
    path_of(path, sizeof path, "no/such/dir.db");
    expect_refused(path, &cfg, BNK_ERR_IO, NULL);
}

/* ---- ask / report / tell --------------------------------------------------------------------- */

static void test_ask_report_tell(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "roundtrip.db");
    bnk_study_config cfg = make_config("rt", BNK_SAMPLER_TPE);
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));

    int64_t id;
    bnk_point x;
    BNK_TEST_OK(bnk_study_ask(s, "w", 100, &id, &x));
    assert_true(id >= 0);
    assert_true(x.v[0] >= -5 && x.v[0] <= 10);
    assert_true(x.v[1] >= 1e-4 && x.v[1] <= 1e-1);
    assert_true(x.v[2] == 0 || x.v[2] == 1);
    assert_true(x.v[2] == 0 ? x.v[3] >= 0 && x.v[3] <= 1 : isnan(x.v[3])); /* conditional */
    for (int i = cfg.space.n; i < BNK_SPACE_MAX_PARAMS; i++) assert_true(isnan(x.v[i]));

    bool prune = true;
    BNK_TEST_OK(bnk_study_report(s, id, 1, 0.25, &prune));
    assert_false(prune);
    BNK_TEST_OK(bnk_study_report(s, id, 3, 0.5, &prune)); /* step 2 missing */
    BNK_TEST_OK(bnk_study_report(s, id, 3, 0.625, NULL)); /* replaces step 3 */
    BNK_TEST_OK(bnk_study_heartbeat(s, id));
    BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, 0.875, NULL));

    int64_t n;
    bnk_trial *t = all_trials(s, &n);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].state, BNK_TRIAL_COMPLETE);
    assert_true(t[0].value == 0.875 && t[0].loss == -0.875);
    assert_int_equal(t[0].ncurve, 3);
    /* Curves come back as losses: the objective negated because it is maximised. */
    assert_true(t[0].curve[0] == -0.25 && isnan(t[0].curve[1]) && t[0].curve[2] == -0.625);
    assert_true(t[0].finished >= t[0].started);
    bnk_trials_free(t, n);

    /* A finished trial cannot change. */
    assert_int_equal(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, 1, NULL), BNK_ERR_PARAM);
    assert_non_null(strstr(bnk_errmsg(), "complete already"));
    assert_int_equal(bnk_study_report(s, id, 4, 1, NULL), BNK_ERR_PARAM);
    assert_int_equal(bnk_study_heartbeat(s, id), BNK_ERR_PARAM);
    assert_int_equal(bnk_study_tell(s, 12345, BNK_TRIAL_FAILED, NAN, "x"), BNK_ERR_PARAM);
    assert_non_null(strstr(bnk_errmsg(), "no such trial"));
    assert_int_equal(bnk_study_tell(s, id, BNK_TRIAL_RUNNING, 1, NULL), BNK_ERR_PARAM);
    assert_int_equal(bnk_study_report(s, id, 0, 1, NULL), BNK_ERR_PARAM);
    assert_int_equal(bnk_study_ask(s, "w", -1, &id, &x), BNK_ERR_PARAM);
    assert_int_equal(bnk_study_ask(NULL, "w", 1, &id, &x), BNK_ERR_NULL);
    assert_int_equal(bnk_study_reap(s, NAN, NULL), BNK_ERR_PARAM);

    /* NaN for COMPLETE is recorded as FAILED; PRUNED without a value takes its last report. */
    int64_t a, b, c;
    BNK_TEST_OK(bnk_study_ask(s, "w", 100, &a, NULL));
    BNK_TEST_OK(bnk_study_tell(s, a, BNK_TRIAL_COMPLETE, NAN, NULL));
    BNK_TEST_OK(bnk_study_ask(s, "w", 100, &b, NULL));
    BNK_TEST_OK(bnk_study_report(s, b, 1, 0.125, NULL));
    BNK_TEST_OK(bnk_study_report(s, b, 2, 0.0625, NULL));
    BNK_TEST_OK(bnk_study_tell(s, b, BNK_TRIAL_PRUNED, NAN, NULL));
    BNK_TEST_OK(bnk_study_ask(s, "w", 100, &c, NULL));
    BNK_TEST_OK(bnk_study_tell(s, c, BNK_TRIAL_FAILED, 3, "diverged at step 120"));
    t = all_trials(s, &n);
    assert_int_equal(n, 4);
    assert_int_equal(t[1].state, BNK_TRIAL_FAILED);
    assert_string_equal(t[1].reason, "objective is NaN");
    assert_true(isnan(t[1].value) && isnan(t[1].loss));
    assert_int_equal(t[2].state, BNK_TRIAL_PRUNED);
    assert_true(t[2].value == 0.0625 && t[2].loss == -0.0625);
    assert_int_equal(t[3].state, BNK_TRIAL_FAILED);
    assert_string_equal(t[3].reason, "diverged at step 120");
    assert_true(isnan(t[3].value));
    bnk_trials_free(t, n);

    /* best: the highest objective among COMPLETE trials, without its curve. */
    int64_t d;
    BNK_TEST_OK(bnk_study_ask(s, "w", 100, &d, &x));
    BNK_TEST_OK(bnk_study_report(s, d, 1, 0.5, NULL));
    BNK_TEST_OK(bnk_study_tell(s, d, BNK_TRIAL_COMPLETE, 0.9375, NULL));
    bnk_trial best;
    bool found = false;
    BNK_TEST_OK(bnk_study_best(s, &best, &found));
    assert_true(found);
    assert_int_equal(best.id, d);
    assert_true(best.value == 0.9375);
    assert_true(same_point(&best.x, &x));
    assert_null(best.curve);
    assert_int_equal(best.ncurve, 0);
    bnk_study_close(s);

    /* Minimised objective: loss = value, best = lowest. */
    bnk_study_config mcfg = make_config("min", BNK_SAMPLER_RANDOM);
    mcfg.maximize = false;
    BNK_TEST_OK(bnk_study_open(&s, path, &mcfg));
    BNK_TEST_OK(bnk_study_best(s, &best, &found));
    assert_false(found);
    const double vals[] = {3, 1, 2};
    for (int k = 0; k < 3; k++) {
        BNK_TEST_OK(bnk_study_ask(s, "w", 100, &id, NULL));
        BNK_TEST_OK(bnk_study_report(s, id, 1, vals[k] + 1, NULL));
        BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, vals[k], NULL));
    }
    BNK_TEST_OK(bnk_study_best(s, &best, &found));
    assert_true(found && best.value == 1 && best.loss == 1 && best.number == 1);
    t = all_trials(s, &n);
    assert_true(t[0].curve[0] == 4); /* not negated */
    bnk_trials_free(t, n);
    bnk_study_close(s);
}

static void test_pruner_is_consulted(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "prune.db");
    bnk_study_config cfg = make_config("p", BNK_SAMPLER_RANDOM);
    cfg.pruner = bnk_pruner_config_default(BNK_PRUNER_MEDIAN);
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t id;
    bool prune = true;
    /* Five completed trials at accuracy 0.8 after step 2 ... */
    for (int k = 0; k < 5; k++) {
        BNK_TEST_OK(bnk_study_ask(s, "w", 100, &id, NULL));
        BNK_TEST_OK(bnk_study_report(s, id, 1, 0.5, &prune));
        BNK_TEST_OK(bnk_study_report(s, id, 2, 0.8, &prune));
        BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, 0.8, NULL));
    }
    /* ... then one stuck at 0.1 is pruned at step 2 (after the warm-up step), one at 0.9 not. */
    BNK_TEST_OK(bnk_study_ask(s, "w", 100, &id, NULL));
    BNK_TEST_OK(bnk_study_report(s, id, 1, 0.1, &prune));
    assert_false(prune);
    BNK_TEST_OK(bnk_study_report(s, id, 2, 0.1, &prune));
    assert_true(prune);
    BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_PRUNED, NAN, NULL));
    BNK_TEST_OK(bnk_study_ask(s, "w", 100, &id, NULL));
    BNK_TEST_OK(bnk_study_report(s, id, 1, 0.9, &prune));
    BNK_TEST_OK(bnk_study_report(s, id, 2, 0.9, &prune));
    assert_false(prune);
    BNK_TEST_OK(bnk_study_report(s, id, 3, NAN, &prune)); /* a NaN loss always prunes */
    assert_true(prune);
    bnk_study_close(s);
}

/* ---- Budget, reaping ------------------------------------------------------------------------- */

static void test_budget_and_reap(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "budget.db");
    bnk_study_config cfg = make_config("b", BNK_SAMPLER_RANDOM);
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t id[3], more, reaped;
    for (int k = 0; k < 3; k++) BNK_TEST_OK(bnk_study_ask(s, "w", 3, &id[k], NULL));
    BNK_TEST_OK(bnk_study_ask(s, "w", 3, &more, NULL));
    assert_int_equal(more, -1);
    BNK_TEST_OK(bnk_study_ask(s, "w", 0, &more, NULL));
    assert_int_equal(more, -1);

    /* Fresh heartbeats: nothing is stale. */
    BNK_TEST_OK(bnk_study_reap(s, 3600, &reaped));
    assert_int_equal(reaped, 0);
    /* Trial 0 finishes, trial 1 keeps beating, trial 2 goes silent. */
    BNK_TEST_OK(bnk_study_tell(s, id[0], BNK_TRIAL_FAILED, NAN, "out of memory"));
    struct timespec nap = {0, 300 * 1000 * 1000};
    nanosleep(&nap, NULL);
    BNK_TEST_OK(bnk_study_heartbeat(s, id[1]));
    BNK_TEST_OK(bnk_study_reap(s, 0.2, &reaped));
    assert_int_equal(reaped, 1);

    int64_t n;
    bnk_trial *t = all_trials(s, &n);
    assert_int_equal(t[0].state, BNK_TRIAL_FAILED); /* failed for another reason: budget used */
    assert_int_equal(t[1].state, BNK_TRIAL_RUNNING);
    assert_int_equal(t[2].state, BNK_TRIAL_FAILED);
    assert_string_equal(t[2].reason, "worker died");
    bnk_trials_free(t, n);

    /* The dead worker's trial is re-issued under a new number; then the budget is used up. */
    BNK_TEST_OK(bnk_study_ask(s, "w", 3, &more, NULL));
    assert_true(more >= 0);
    assert_int_equal(bnk_study_tell(s, id[2], BNK_TRIAL_COMPLETE, 1, NULL), BNK_ERR_PARAM);
    assert_non_null(strstr(bnk_errmsg(), "worker died"));
    BNK_TEST_OK(bnk_study_ask(s, "w", 3, &id[0], NULL));
    assert_int_equal(id[0], -1);
    t = all_trials(s, &n);
    assert_int_equal(n, 4);
    assert_int_equal(t[3].number, 3);
    bnk_trials_free(t, n);

    /* stale 0 reaps every running trial. */
    BNK_TEST_OK(bnk_study_reap(s, 0, &reaped));
    assert_int_equal(reaped, 2);
    bnk_study_close(s);
}

static void test_grid_exhausts(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "grid.db");
    bnk_study_config cfg = make_grid_config("g");
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t id, asked = 0;
    for (;;) {
        BNK_TEST_OK(bnk_study_ask(s, "w", 1000, &id, NULL));
        if (id < 0) break;
        BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, 1, NULL));
        asked++;
    }
    assert_int_equal(asked, 60);
    bnk_study_close(s);
}

/* A grid trial whose worker died: its point is handed out again before any fresh one, and the
 * grid still ends after exactly its 60 points. */
static void test_grid_reissues_dead_points(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "grid_dead.db");
    bnk_study_config cfg = make_grid_config("g");
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t id, reaped;
    bnk_point first[4], x;
    for (int k = 0; k < 6; k++) {
        BNK_TEST_OK(bnk_study_ask(s, "w", 1000, &id, k < 4 ? &first[k] : NULL));
        if (k >= 4) BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, 1, NULL));
    }
    BNK_TEST_OK(bnk_study_reap(s, 0, &reaped)); /* trials 0-3 died */
    assert_int_equal(reaped, 4);
    for (int k = 0;; k++) {
        BNK_TEST_OK(bnk_study_ask(s, "w", 1000, &id, &x));
        if (id < 0) break;
        if (k < 4) assert_true(same_point(&x, &first[k])); /* re-issued, in order */
        BNK_TEST_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, 1, NULL));
    }
    int64_t n;
    bnk_trial *t = all_trials(s, &n);
    assert_int_equal(n, 64);
    assert_int_equal(count_state(t, n, BNK_TRIAL_COMPLETE), 60);
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < a; b++)
            if (t[a].state == BNK_TRIAL_COMPLETE && t[b].state == BNK_TRIAL_COMPLETE &&
                same_point(&t[a].x, &t[b].x))
                fail_msg("trials %lld and %lld share a point", (long long)b, (long long)a);
    bnk_trials_free(t, n);
    bnk_study_close(s);
}

/* ---- Worker processes ------------------------------------------------------------------------ */

#define CHILD_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "worker %d: ", (int)getpid());                                         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

#define CHILD_OK(call)                                                                             \
    do {                                                                                           \
        bnk_status st_ = (call);                                                                   \
        CHILD_CHECK(st_ == BNK_OK, "%s -> %s: %s", #call, bnk_status_str(st_), bnk_errmsg());      \
    } while (0)

/* One worker: ask, report twice, tell the synthetic objective, until the budget is used up.
 * After `stop_after` completed trials (>= 0), asks one more, writes a byte to `ready` and
 * waits to be killed. */
static void worker_main(const char *path, const bnk_study_config *cfg, int64_t budget,
                        int stop_after, int ready) {
    bnk_study *s = NULL;
    char name[32];
    snprintf(name, sizeof name, "pid-%d", (int)getpid());
    CHILD_OK(bnk_study_open(&s, path, cfg));
    for (int done = 0;; done++) {
        int64_t id;
        bnk_point x;
        CHILD_OK(bnk_study_ask(s, name, budget, &id, &x));
        if (id < 0) break;
        if (stop_after >= 0 && done == stop_after) {
            CHILD_CHECK(write(ready, "r", 1) == 1, "cannot signal the parent");
            for (;;) pause(); /* RUNNING until SIGKILL */
        }
        bool prune;
        CHILD_OK(bnk_study_report(s, id, 1, 0.5, &prune));
        CHILD_OK(bnk_study_heartbeat(s, id));
        bnk_trial_epoch diag = epoch_of(&x, 2);
        CHILD_OK(bnk_study_report_ex(s, id, 2, objective_of(&x), &diag, &prune));
        CHILD_OK(bnk_study_tell(s, id, BNK_TRIAL_COMPLETE, objective_of(&x), NULL));
    }
    bnk_study_close(s);
}

/* Forks n workers that start together (they wait on a pipe that the parent then closes); every
 * one must exit 0. */
static void run_workers(const char *path, const bnk_study_config *cfg, int nworkers,
                        int64_t budget) {
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    pid_t pid[16];
    assert_true(nworkers <= 16);
    fflush(NULL);
    for (int w = 0; w < nworkers; w++) {
        pid[w] = fork();
        assert_true(pid[w] >= 0);
        if (pid[w] == 0) {
            char c;
            close(gate[1]);
            while (read(gate[0], &c, 1) < 0 && errno == EINTR) {
            }
            worker_main(path, cfg, budget, -1, -1);
            _exit(0);
        }
    }
    close(gate[0]);
    close(gate[1]); /* go */
    for (int w = 0; w < nworkers; w++) {
        int status;
        assert_int_equal(waitpid(pid[w], &status, 0), pid[w]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("worker %d of %d failed (status %#x)", w, nworkers, status);
    }
}

/* Checks the study after the workers: exactly `budget` trials, numbers 0..budget-1, all
 * complete with the value of their point, points distinct when distinct_points. */
static void check_finished(const char *path, const bnk_study_config *cfg, int64_t budget,
                           bool distinct_points) {
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, cfg));
    int64_t n;
    bnk_trial *t = all_trials(s, &n);
    assert_int_equal(n, budget);
    for (int64_t k = 0; k < n; k++) {
        if (t[k].number != k)
            fail_msg("trial %lld has number %lld", (long long)k, (long long)t[k].number);
        assert_int_equal(t[k].state, BNK_TRIAL_COMPLETE);
        assert_true(t[k].value == objective_of(&t[k].x));
        assert_int_equal(t[k].ncurve, 2);
        /* the diagnostics written with step 2, in the same transaction, by the same worker */
        assert_int_equal(t[k].nepochs, 1);
        expect_epoch(&t[k].epochs[0], &t[k].x, 2);
        for (int64_t j = 0; distinct_points && j < k; j++)
            if (same_point(&t[j].x, &t[k].x))
                fail_msg("trials %lld and %lld got the same point", (long long)j, (long long)k);
    }
    bnk_trials_free(t, n);
    bnk_study_close(s);
}

static void test_concurrent_workers(void **state) {
    (void)state;
    char path[512];
    /* 2 then 4 workers on a file none of them has seen: they race to create it. */
    const int nworkers[] = {2, 4};
    for (int r = 0; r < 2; r++) {
        char name[64];
        snprintf(name, sizeof name, "workers%d.db", nworkers[r]);
        path_of(path, sizeof path, name);
        bnk_study_config cfg = make_config("w", BNK_SAMPLER_TPE);
        run_workers(path, &cfg, nworkers[r], 60);
        check_finished(path, &cfg, 60, false);
    }
    /* Grid: 4 workers on a 60-point grid with a larger budget get every point exactly once. */
    path_of(path, sizeof path, "workers_grid.db");
    bnk_study_config grid = make_grid_config("g");
    run_workers(path, &grid, 4, 1000);
    check_finished(path, &grid, 60, true);
}

/* ---- Crashes --------------------------------------------------------------------------------- */

static void test_sigkill_mid_trial(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "crash.db");
    bnk_study_config cfg = make_config("c", BNK_SAMPLER_RANDOM);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        worker_main(path, &cfg, 10, 5, ready[1]);
        _exit(2); /* not reached: worker_main waits to be killed */
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t n, reaped;
    bnk_trial *t = all_trials(s, &n);
    assert_int_equal(n, 6);
    assert_int_equal(count_state(t, n, BNK_TRIAL_COMPLETE), 5);
    assert_int_equal(t[5].state, BNK_TRIAL_RUNNING);
    bnk_trials_free(t, n);
    BNK_TEST_OK(bnk_study_reap(s, 0, &reaped));
    assert_int_equal(reaped, 1);
    bnk_study_close(s);

    /* A new worker finishes the budget: 10 trials that count, plus the dead one. */
    run_workers(path, &cfg, 1, 10);
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    t = all_trials(s, &n);
    assert_int_equal(n, 11);
    assert_int_equal(count_state(t, n, BNK_TRIAL_COMPLETE), 10);
    assert_string_equal(t[5].reason, "worker died");
    for (int64_t k = 0; k < n; k++)
        if (t[k].state == BNK_TRIAL_COMPLETE) assert_true(t[k].value == objective_of(&t[k].x));
    bnk_trials_free(t, n);
    bnk_study_close(s);
}

/* SIGKILL at a random moment while a worker writes as fast as it can: the file stays intact,
 * no completed trial is lost or duplicated, and the study can be finished. */
static void test_sigkill_mid_write(void **state) {
    (void)state;
    char path[512];
    path_of(path, sizeof path, "crash_write.db");
    bnk_study_config cfg = make_config("cw", BNK_SAMPLER_RANDOM);
    const int64_t budget = 100000; /* never reached before the kill */
    bnk_study *s = NULL;
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    bnk_study_close(s);
    int64_t complete_before = 0;
    for (int round = 0; round < 3; round++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            worker_main(path, &cfg, budget, -1, -1);
            _exit(0);
        }
        struct timespec nap = {0, (60 + 37 * round) * 1000 * 1000};
        nanosleep(&nap, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));

        assert_int_equal(sql_int(path, "SELECT count(*) FROM pragma_integrity_check "
                                       "WHERE integrity_check <> 'ok'"),
                         0);
        BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
        int64_t n, reaped;
        bnk_trial *t = all_trials(s, &n);
        const int64_t complete = count_state(t, n, BNK_TRIAL_COMPLETE);
        assert_true(complete >= complete_before); /* nothing lost */
        assert_true(count_state(t, n, BNK_TRIAL_RUNNING) <= 1);
        for (int64_t k = 0; k < n; k++) {
            assert_int_equal(t[k].number, k); /* unique, no gaps */
            if (t[k].state == BNK_TRIAL_COMPLETE) {
                assert_true(t[k].value == objective_of(&t[k].x));
                assert_int_equal(t[k].ncurve, 2);
            }
        }
        complete_before = complete;
        bnk_trials_free(t, n);
        BNK_TEST_OK(bnk_study_reap(s, 0, &reaped));
        bnk_study_close(s);
    }
    assert_true(complete_before > 0);
    /* Finish with a small budget on top of what exists. */
    const int64_t total = complete_before + 5;
    run_workers(path, &cfg, 2, total);
    BNK_TEST_OK(bnk_study_open(&s, path, &cfg));
    int64_t n;
    bnk_trial *t = all_trials(s, &n);
    int64_t counted = 0;
    for (int64_t k = 0; k < n; k++)
        counted += !(t[k].state == BNK_TRIAL_FAILED && strcmp(t[k].reason, "worker died") == 0);
    assert_int_equal(counted, total);
    bnk_trials_free(t, n);
    bnk_study_close(s);
}

/* ---- Main ------------------------------------------------------------------------------------ */

int main(void) {
    if (bnk_test_mkdtemp(g_dir, sizeof g_dir, "study") != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_resume),
        cmocka_unit_test(test_config_mismatch),
        cmocka_unit_test(test_pruner_percentile_stored),
        cmocka_unit_test(test_foreign_files),
        cmocka_unit_test(test_epoch_diagnostics),
        cmocka_unit_test(test_schema_upgrade),
        cmocka_unit_test(test_ask_report_tell),
        cmocka_unit_test(test_pruner_is_consulted),
        cmocka_unit_test(test_budget_and_reap),
        cmocka_unit_test(test_grid_exhausts),
        cmocka_unit_test(test_grid_reissues_dead_points),
        cmocka_unit_test(test_concurrent_workers),
        cmocka_unit_test(test_sigkill_mid_trial),
        cmocka_unit_test(test_sigkill_mid_write),
    };
    const int failed = cmocka_run_group_tests(tests, NULL, NULL);
    bnk_test_remove_dir(g_dir);
    return failed ? 1 : 0;
}
