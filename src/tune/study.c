/* The SQLite study: open/resume, ask/report/tell, heartbeats and reaping, trial queries.
 *
 * Every call is one transaction run by bnk__study_tx (study_db.c), which retries it when
 * another process holds the lock. Writes use BEGIN IMMEDIATE, so a transaction holds the write
 * lock from its first statement and never fails half-way because of another writer. ask runs
 * the sampler inside its write transaction: two workers can never be given the same grid point,
 * or suggestions computed from a history that misses the other's running trial. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "tune/study_internal.h"

/* The reason that marks a trial whose worker stopped sending heartbeats; such trials do not
 * use the budget, so their work is handed out again. */
#define REASON_DIED "worker died"

bnk_study_config bnk_study_config_default(void) {
    bnk_study_config c;
    memset(&c, 0, sizeof c);
    strcpy(c.name, "default");
    strcpy(c.objective, "val_accuracy");
    c.maximize = true;
    (void)bnk_space_default_bn(&c.space); /* built-in definitions: cannot fail */
    c.sampler = bnk_sampler_config_default(BNK_SAMPLER_TPE);
    c.pruner = bnk_pruner_config_default(BNK_PRUNER_MEDIAN);
    return c;
}

/* ---- Open and close ------------------------------------------------------------------------ */

static bnk_status set_pragmas(bnk_study *s, void *ctx) {
    (void)ctx;
    sqlite3_stmt *stmt;
    char mode[16] = "";
    bool row = false;
    bnk_status st = bnk__db_prepare(s, &stmt, "PRAGMA journal_mode = WAL", NULL);
    if (st == BNK_OK) st = bnk__db_step(s, stmt, &row);
    if (st == BNK_OK && row) bnk__db_text(stmt, 0, mode, sizeof mode);
    st = bnk__db_finalize(s, stmt, st);
    if (st == BNK_OK && strcmp(mode, "wal") != 0)
        st = bnk__fail(BNK_ERR_IO,
                       "%s: cannot use SQLite's WAL mode here (journal mode '%s'); study files "
                       "need a local file system",
                       s->path, mode);
    /* Durability: with WAL, synchronous = FULL syncs the log at every commit, so a told result
     * survives a power cut too; NORMAL only syncs at checkpoints and could lose every
     * transaction since the last one. The price (one fsync per ask/report/tell/heartbeat) is
     * small next to a trial that trains a network. Process crashes (SIGKILL) lose nothing in
     * either mode: a committed transaction is already in the log. */
    if (st == BNK_OK) st = bnk__db_exec(s, NULL, "PRAGMA synchronous = FULL", NULL);
    if (st == BNK_OK) st = bnk__db_exec(s, NULL, "PRAGMA foreign_keys = ON", NULL);
    return st;
}

typedef struct attach_ctx {
    const bnk_study_config *cfg;
    const char *name;
} attach_ctx;

static bnk_status attach_tx(bnk_study *s, void *vctx) {
    const attach_ctx *c = vctx;
    return bnk__study_attach(s, c->cfg, c->name);
}

/* bnk_study_open (cfg) and bnk_study_open_existing (cfg NULL, name or NULL). */
static bnk_status open_study(bnk_study **out, const char *path, const bnk_study_config *cfg,
                             const char *name) {
    if (!out) return bnk__fail(BNK_ERR_NULL, "bnk_study_open: out is NULL");
    *out = NULL;
    if (!path) return bnk__fail(BNK_ERR_NULL, "bnk_study_open: path is NULL");
    bnk_status st = cfg ? bnk__study_config_check(cfg) : BNK_OK;
    if (st != BNK_OK) return st;
    bnk_study *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return bnk__fail(BNK_ERR_NOMEM, "bnk_study_open: out of memory");
    }
    /* Retry pauses must differ between processes that collided: seed from pid, time, address. */
    s->jitter =
        ((uint64_t)getpid() << 32) ^ (uint64_t)(bnk__study_now() * 1e6) ^ (uint64_t)(uintptr_t)s;

    bool fresh;
    st = bnk__study_precheck(s, &fresh);
    if (st == BNK_OK && fresh && !cfg)
        st = bnk__fail(BNK_ERR_IO, "%s: no study there (the file is missing or empty)", path);
    if (st == BNK_OK) {
        /* NOMUTEX: a handle serves one thread at a time (tune.h), so SQLite need not lock
         * around every call; that was a quarter of the time spent loading trials. */
        const int flags =
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (cfg ? SQLITE_OPEN_CREATE : 0);
        int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
        if (rc == SQLITE_OK) rc = bnk__db_configure(s);
        if (rc != SQLITE_OK) st = bnk__db_fail(s, rc, "opening");
    }
    if (st == BNK_OK) st = bnk__study_tx(s, BNK__TX_NONE, set_pragmas, NULL);
    attach_ctx c = {cfg, name};
    if (st == BNK_OK) st = bnk__study_tx(s, BNK__TX_WRITE, attach_tx, &c);
    if (st != BNK_OK) {
        bnk_study_close(s);
        return st;
    }
    *out = s;
    return BNK_OK;
}

bnk_status bnk_study_open(bnk_study **out, const char *path, const bnk_study_config *cfg) {
    return open_study(out, path, cfg, NULL);
}

bnk_status bnk_study_open_existing(bnk_study **out, const char *path, const char *name) {
    return open_study(out, path, NULL, name);
}

void bnk_study_close(bnk_study *s) {
    if (!s) return;
    /* Every statement is finalised where it was prepared, so this cannot report SQLITE_BUSY;
     * the last connection to close checkpoints the log into the database. */
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

const bnk_study_config *bnk_study_config_get(const bnk_study *s) {
    return s ? &s->cfg : NULL;
}

/* Explains why trial id cannot be changed (it is not RUNNING, or not in this study). */
static bnk_status not_running(bnk_study *s, int64_t id, const char *action) {
    sqlite3_stmt *stmt;
    bool row = false;
    bnk_status st = bnk__db_prepare(s, &stmt,
                                    "SELECT number, state, reason FROM trials WHERE id = ?1 AND "
                                    "study_id = ?2",
                                    "ii", id, s->sid);
    if (st == BNK_OK) st = bnk__db_step(s, stmt, &row);
    if (st == BNK_OK && !row)
        st = bnk__fail(BNK_ERR_PARAM, "%s: cannot %s trial id %lld: study '%s' has no such trial",
                       s->path, action, (long long)id, s->cfg.name);
    else if (st == BNK_OK) {
        char state[16], reason[160];
        bnk__db_text(stmt, 1, state, sizeof state);
        bnk__db_text(stmt, 2, reason, sizeof reason);
        st = bnk__fail(BNK_ERR_PARAM, "%s: cannot %s trial %lld: it is %s already%s%s%s", s->path,
                       action, (long long)sqlite3_column_int64(stmt, 0), state,
                       reason[0] ? " (" : "", reason, reason[0] ? ")" : "");
    }
    return bnk__db_finalize(s, stmt, st);
}

/* ---- ask ----------------------------------------------------------------------------------- */

typedef struct ask_ctx {
    const char *worker;
    int64_t budget;
    int64_t id;
    bnk_point x;
} ask_ctx;

/* Makes the sampler's point canonical: NaN for inactive parameters (and past the space), INT
 * values rounded, FLOAT/INT clamped to their bounds; refuses a non-finite active value or a
 * choice index out of range. Parents precede their children, so activity is decided on values
 * already made canonical. */
static bnk_status canonical_point(bnk_study *s, bnk_point *x) {
    const bnk_space *sp = &s->cfg.space;
    for (int i = sp->n; i < BNK_SPACE_MAX_PARAMS; i++) x->v[i] = NAN;
    for (int i = 0; i < sp->n; i++) {
        const bnk_param *p = &sp->params[i];
        double v = x->v[i];
        if (!bnk_space_active(sp, x, i)) {
            x->v[i] = NAN;
            continue;
        }
        if (!isfinite(v) ||
            (p->kind == BNK_PARAM_CAT && (v != floor(v) || v < 0 || v >= p->nchoices)))
            return bnk__fail(BNK_ERR_PARAM,
                             "%s: sampler '%s' suggested %s = %g, not a value of "
                             "the parameter",
                             s->path, bnk_sampler_kind_str(s->cfg.sampler.kind), p->name, v);
        if (p->kind == BNK_PARAM_INT) v = round(v);
        if (p->kind != BNK_PARAM_CAT) v = v < p->lo ? p->lo : v > p->hi ? p->hi : v;
        x->v[i] = v;
    }
    return BNK_OK;
}

static int cmp_value(double a, double b) {
    const bool na = isnan(a), nb = isnan(b);
    if (na || nb) return (int)nb - (int)na; /* NaN (inactive) first; equal to itself */
    return (a > b) - (a < b);
}

static bool same_point(const bnk_point *a, const bnk_point *b) {
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++)
        if (cmp_value(a->v[i], b->v[i]) != 0) return false;
    return true;
}

/* Orders trials by point, then by number. */
static int cmp_trial_point(const void *pa, const void *pb) {
    const bnk_trial *a = *(const bnk_trial *const *)pa, *b = *(const bnk_trial *const *)pb;
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) {
        const int c = cmp_value(a->x.v[i], b->x.v[i]);
        if (c) return c;
    }
    return (a->number > b->number) - (a->number < b->number);
}

static bool died(const bnk_trial *t) {
    return t->state == BNK_TRIAL_FAILED && strcmp(t->reason, REASON_DIED) == 0;
}

/* Orders points only (the key of a bsearch among trials sorted by cmp_trial_point). */
static int cmp_point_key(const void *pa, const void *pb) {
    const bnk_point *a = pa;
    const bnk_trial *b = *(const bnk_trial *const *)pb;
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) {
        const int c = cmp_value(a->v[i], b->x.v[i]);
        if (c) return c;
    }
    return 0;
}

/* GRID: the sampler maps grid index k to grid point k, and trial numbers only grow, so passing
 * the trial number would skip the point of a trial whose worker died. Instead: first the point
 * of a dead trial that no other trial (running or finished) holds, the earliest such; else the
 * next fresh index, the number of distinct points handed out so far (moving past any index
 * whose point some trial already holds, so that no point is ever given twice). */
static bnk_status grid_next(bnk_study *s, const bnk_trial *hist, int64_t n, bnk_point *x) {
    const bnk_trial **by_point = malloc((size_t)(n ? n : 1) * sizeof *by_point);
    if (!by_point) return bnk__fail(BNK_ERR_NOMEM, "%s: out of memory", s->path);
    for (int64_t k = 0; k < n; k++) by_point[k] = &hist[k];
    qsort(by_point, (size_t)n, sizeof *by_point, cmp_trial_point);
    int64_t distinct = 0;
    const bnk_trial *reissue = NULL;
    for (int64_t k = 0; k < n;) { /* one group of equal points, its lowest number first */
        int64_t end = k;
        bool all_died = true;
        for (; end < n && same_point(&by_point[end]->x, &by_point[k]->x); end++)
            all_died = all_died && died(by_point[end]);
        if (all_died && (!reissue || by_point[k]->number < reissue->number)) reissue = by_point[k];
        distinct++;
        k = end;
    }
    bnk_status st = BNK_OK;
    if (reissue) {
        *x = reissue->x;
    } else {
        for (int64_t index = distinct;; index++) {
            st = bnk_sampler_suggest(&s->cfg.sampler, &s->cfg.space, hist, n, index, x);
            if (st != BNK_OK) break;
            if ((st = canonical_point(s, x)) != BNK_OK) break; /* as stored, to compare */
            if (!bsearch(x, by_point, (size_t)n, sizeof *by_point, cmp_point_key)) break;
        }
    }
    free(by_point);
    return st;
}

static bnk_status ask_tx(bnk_study *s, void *vctx) {
    ask_ctx *c = vctx;
    c->id = -1;
    for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) c->x.v[i] = NAN;
    int64_t used;
    bnk_status st = bnk__db_int(s, &used, 0,
                                "SELECT count(*) FROM trials WHERE study_id = ?1 AND NOT (state "
                                "= 'failed' AND reason = '" REASON_DIED "')",
                                "i", s->sid);
    if (st != BNK_OK || used >= c->budget) return st;

    bnk_trial *hist;
    int64_t n, number = 0;
    st = bnk__study_load_trials(s, -1, BNK__LOAD_CURVES, &hist, &n);
    if (st != BNK_OK) return st;
    for (int64_t k = 0; k < n; k++)
        if (hist[k].number >= number) number = hist[k].number + 1;
    bnk_point x;
    st = s->cfg.sampler.kind == BNK_SAMPLER_GRID
             ? grid_next(s, hist, n, &x)
             : bnk_sampler_suggest(&s->cfg.sampler, &s->cfg.space, hist, n, number, &x);
    bnk_trials_free(hist, n);
    if (st == BNK_ERR_SIZE && s->cfg.sampler.kind == BNK_SAMPLER_GRID &&
        bnk_sampler_grid_size(&s->cfg.sampler, &s->cfg.space) >= 0)
        return BNK_OK; /* grid exhausted (not: too large to count): nothing left to ask */
    if (st != BNK_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", bnk_errmsg());
        return bnk__fail(st, "%s: study '%s': sampler '%s': %s", s->path, s->cfg.name,
                         bnk_sampler_kind_str(s->cfg.sampler.kind), msg);
    }
    st = canonical_point(s, &x);
    if (st != BNK_OK) return st;

    char worker[sizeof hist->worker];
    snprintf(worker, sizeof worker, "%s", c->worker ? c->worker : "");
    const double now = bnk__study_now();
    st = bnk__db_exec(s, NULL,
                      "INSERT INTO trials(study_id, number, state, worker, started, heartbeat) "
                      "VALUES (?1, ?2, 'running', ?3, ?4, ?4)",
                      "iitd", s->sid, number, worker, now);
    const int64_t id = sqlite3_last_insert_rowid(s->db);
    for (int i = 0; st == BNK_OK && i < s->cfg.space.n; i++)
        st = bnk__db_exec(s, NULL,
                          "INSERT INTO trial_params(trial_id, param_index, value) VALUES (?1, "
                          "?2, ?3)",
                          "iid", id, (int64_t)i, x.v[i]);
    if (st == BNK_OK) {
        c->id = id;
        c->x = x;
    }
    return st;
}

bnk_status bnk_study_ask(bnk_study *s, const char *worker, int64_t budget, int64_t *id,
                         bnk_point *x) {
    if (id) *id = -1;
    if (!s || !id) return bnk__fail(BNK_ERR_NULL, "bnk_study_ask: NULL study or id");
    if (budget < 0)
        return bnk__fail(BNK_ERR_PARAM, "%s: the trial budget must be >= 0, got %lld", s->path,
                         (long long)budget);
    ask_ctx c = {.worker = worker, .budget = budget};
    bnk_status st = bnk__study_tx(s, BNK__TX_WRITE, ask_tx, &c);
    if (st != BNK_OK) return st;
    *id = c.id;
    if (x) *x = c.x;
    return BNK_OK;
}

/* ---- report, tell, heartbeat, reap --------------------------------------------------------- */

typedef struct update_ctx {
    int64_t id, step;
    bnk_trial_state state;
    double value, stale;
    const char *reason;
    const bnk_trial_epoch *diag; /* report: the trainer's diagnostics, or NULL */
    int64_t changed;
} update_ctx;

bnk_trial_epoch bnk_trial_epoch_empty(void) {
    bnk_trial_epoch e;
    memset(&e, 0, sizeof e);
    e.train_loss = e.train_accuracy = e.val_loss = e.val_accuracy = NAN;
    e.min_grad_norm = e.bn_min_running_var = e.bn_max_running_var = NAN;
    return e;
}

static bnk_status insert_epoch(bnk_study *s, int64_t id, int64_t step, const bnk_trial_epoch *e) {
    char tensor[sizeof e->min_grad_tensor];
    snprintf(tensor, sizeof tensor, "%.*s", (int)sizeof tensor - 1, e->min_grad_tensor);
    return bnk__db_exec(s, NULL,
                        "INSERT OR REPLACE INTO trial_epochs(trial_id, step, train_loss, "
                        "train_accuracy, val_loss, val_accuracy, vanishing_gradients, "
                        "overfitting, min_grad_norm, min_grad_tensor, bn_min_running_var, "
                        "bn_max_running_var) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                        "?11, ?12)",
                        "iiddddiidtdd", id, step, e->train_loss, e->train_accuracy, e->val_loss,
                        e->val_accuracy, (int64_t)e->vanishing_gradients, (int64_t)e->overfitting,
                        e->min_grad_norm, tensor, e->bn_min_running_var, e->bn_max_running_var);
}

static bnk_status report_tx(bnk_study *s, void *vctx) {
    update_ctx *c = vctx;
    int64_t changed;
    bnk_status st = bnk__db_exec(s, &changed,
                                 "UPDATE trials SET heartbeat = ?3 WHERE id = ?1 AND study_id = "
                                 "?2 AND state = 'running'",
                                 "iid", c->id, s->sid, bnk__study_now());
    if (st == BNK_OK && changed == 0) return not_running(s, c->id, "report a value of");
    if (st == BNK_OK)
        st = bnk__db_exec(s, NULL,
                          "INSERT OR REPLACE INTO trial_values(trial_id, step, value) VALUES "
                          "(?1, ?2, ?3)",
                          "iid", c->id, c->step, c->value);
    if (st == BNK_OK && c->diag) st = insert_epoch(s, c->id, c->step, c->diag);
    return st;
}

typedef struct prune_ctx {
    int64_t id, step;
    bool prune;
} prune_ctx;

static bnk_status prune_tx(bnk_study *s, void *vctx) {
    prune_ctx *c = vctx;
    bnk_trial *hist;
    int64_t n, k = 0;
    c->prune = false;
    bnk_status st = bnk__study_load_trials(s, -1, BNK__LOAD_CURVES, &hist, &n);
    if (st != BNK_OK) return st;
    while (k < n && hist[k].id != c->id) k++;
    if (k < n) {
        /* The pruner judges the trial against the *other* trials: move it past the end. */
        const bnk_trial self = hist[k];
        memmove(&hist[k], &hist[k + 1], (size_t)(n - 1 - k) * sizeof *hist);
        hist[n - 1] = self;
        c->prune = bnk_pruner_should_prune(&s->cfg.pruner, hist, n - 1, &hist[n - 1], c->step);
    }
    bnk_trials_free(hist, n);
    return BNK_OK;
}

bnk_status bnk_study_report(bnk_study *s, int64_t id, int64_t step, double value, bool *prune) {
    return bnk_study_report_ex(s, id, step, value, NULL, prune);
}

bnk_status bnk_study_report_ex(bnk_study *s, int64_t id, int64_t step, double value,
                               const bnk_trial_epoch *diag, bool *prune) {
    if (prune) *prune = false;
    if (!s) return bnk__fail(BNK_ERR_NULL, "bnk_study_report: NULL study");
    if (step < 1 || step > BNK__STUDY_MAX_STEP)
        return bnk__fail(BNK_ERR_PARAM, "%s: step must be in [1, %lld], got %lld", s->path,
                         (long long)BNK__STUDY_MAX_STEP, (long long)step);
    update_ctx c = {.id = id, .step = step, .value = value, .diag = diag};
    bnk_status st = bnk__study_tx(s, BNK__TX_WRITE, report_tx, &c);
    if (st != BNK_OK || !prune || s->cfg.pruner.kind == BNK_PRUNER_NONE) return st;
    /* The pruner reads a snapshot after the write commits, so it never holds the write lock. */
    prune_ctx p = {.id = id, .step = step};
    st = bnk__study_tx(s, BNK__TX_READ, prune_tx, &p);
    if (st == BNK_OK) *prune = p.prune;
    return st;
}

static bnk_status tell_tx(bnk_study *s, void *vctx) {
    const update_ctx *c = vctx;
    bnk_trial_state state = c->state;
    double value = c->value;
    const char *reason = c->reason ? c->reason : "";
    bnk_status st = BNK_OK;
    if (state == BNK_TRIAL_COMPLETE && !isfinite(value)) {
        reason = isnan(value) ? "objective is NaN" : "objective is inf";
        state = BNK_TRIAL_FAILED;
    }
    if (state == BNK_TRIAL_FAILED) value = NAN;
    if (state == BNK_TRIAL_PRUNED && isnan(value)) { /* its last reported value, if any */
        sqlite3_stmt *stmt;
        bool row = false;
        st = bnk__db_prepare(s, &stmt,
                             "SELECT value FROM trial_values WHERE trial_id = ?1 ORDER BY step "
                             "DESC LIMIT 1",
                             "i", c->id);
        if (st == BNK_OK) st = bnk__db_step(s, stmt, &row);
        if (st == BNK_OK && row) value = bnk__db_double(stmt, 0);
        st = bnk__db_finalize(s, stmt, st);
    }
    const double loss = s->cfg.maximize ? -value : value;
    char why[sizeof((bnk_trial *)0)->reason];
    snprintf(why, sizeof why, "%s", reason);
    const double now = bnk__study_now();
    int64_t changed = 0;
    if (st == BNK_OK)
        st = bnk__db_exec(s, &changed,
                          "UPDATE trials SET state = ?3, value = ?4, loss = ?5, reason = ?6, "
                          "finished = ?7, heartbeat = ?7 WHERE id = ?1 AND study_id = ?2 AND "
                          "state = 'running'",
                          "iitddtd", c->id, s->sid, bnk_trial_state_str(state), value, loss, why,
                          now);
    if (st == BNK_OK && changed == 0) return not_running(s, c->id, "tell");
    return st;
}

bnk_status bnk_study_tell(bnk_study *s, int64_t id, bnk_trial_state state, double value,
                          const char *reason) {
    if (!s) return bnk__fail(BNK_ERR_NULL, "bnk_study_tell: NULL study");
    if (state != BNK_TRIAL_COMPLETE && state != BNK_TRIAL_PRUNED && state != BNK_TRIAL_FAILED)
        return bnk__fail(BNK_ERR_PARAM,
                         "%s: a trial can be told complete, pruned or failed, "
                         "not %s",
                         s->path, bnk_trial_state_str(state));
    update_ctx c = {.id = id, .state = state, .value = value, .reason = reason};
    return bnk__study_tx(s, BNK__TX_WRITE, tell_tx, &c);
}

static bnk_status heartbeat_tx(bnk_study *s, void *vctx) {
    const update_ctx *c = vctx;
    int64_t changed;
    bnk_status st = bnk__db_exec(s, &changed,
                                 "UPDATE trials SET heartbeat = ?3 WHERE id = ?1 AND study_id = "
                                 "?2 AND state = 'running'",
                                 "iid", c->id, s->sid, bnk__study_now());
    if (st == BNK_OK && changed == 0) return not_running(s, c->id, "refresh the heartbeat of");
    return st;
}

bnk_status bnk_study_heartbeat(bnk_study *s, int64_t id) {
    if (!s) return bnk__fail(BNK_ERR_NULL, "bnk_study_heartbeat: NULL study");
    update_ctx c = {.id = id};
    return bnk__study_tx(s, BNK__TX_WRITE, heartbeat_tx, &c);
}

static bnk_status reap_tx(bnk_study *s, void *vctx) {
    update_ctx *c = vctx;
    const double now = bnk__study_now();
    return bnk__db_exec(s, &c->changed,
                        "UPDATE trials SET state = 'failed', reason = '" REASON_DIED "', "
                        "finished = ?2 WHERE study_id = ?1 AND state = 'running' AND "
                        "(heartbeat IS NULL OR heartbeat <= ?3)",
                        "idd", s->sid, now, now - c->stale);
}

bnk_status bnk_study_reap(bnk_study *s, double stale_seconds, int64_t *reaped) {
    if (reaped) *reaped = 0;
    if (!s) return bnk__fail(BNK_ERR_NULL, "bnk_study_reap: NULL study");
    if (!(stale_seconds >= 0))
        return bnk__fail(BNK_ERR_PARAM, "%s: stale_seconds must be >= 0, got %g", s->path,
                         stale_seconds);
    update_ctx c = {.stale = stale_seconds};
    bnk_status st = bnk__study_tx(s, BNK__TX_WRITE, reap_tx, &c);
    if (st == BNK_OK && reaped) *reaped = c.changed;
    return st;
}

/* ---- Queries ------------------------------------------------------------------------------- */

typedef struct trials_ctx {
    bnk_trial *trials;
    int64_t count;
} trials_ctx;

static bnk_status trials_tx(bnk_study *s, void *vctx) {
    trials_ctx *c = vctx;
    bnk_trials_free(c->trials, c->count); /* a retried transaction starts over */
    c->trials = NULL;
    c->count = 0;
    return bnk__study_load_trials(s, -1, BNK__LOAD_CURVES | BNK__LOAD_EPOCHS, &c->trials,
                                  &c->count);
}

bnk_status bnk_study_trials(bnk_study *s, bnk_trial **trials, int64_t *count) {
    if (trials) *trials = NULL;
    if (count) *count = 0;
    if (!s || !trials || !count)
        return bnk__fail(BNK_ERR_NULL, "bnk_study_trials: NULL study, trials or count");
    trials_ctx c = {NULL, 0};
    bnk_status st = bnk__study_tx(s, BNK__TX_READ, trials_tx, &c);
    if (st != BNK_OK) {
        bnk_trials_free(c.trials, c.count);
        return st;
    }
    *trials = c.trials;
    *count = c.count;
    return BNK_OK;
}

typedef struct best_ctx {
    bnk_trial best;
    bool found;
} best_ctx;

static bnk_status best_tx(bnk_study *s, void *vctx) {
    best_ctx *c = vctx;
    c->found = false;
    int64_t id;
    bnk_status st = bnk__db_int(s, &id, -1,
                                "SELECT id FROM trials WHERE study_id = ?1 AND state = "
                                "'complete' AND loss IS NOT NULL ORDER BY loss, number LIMIT 1",
                                "i", s->sid);
    if (st != BNK_OK || id < 0) return st;
    bnk_trial *t;
    int64_t n;
    st = bnk__study_load_trials(s, id, 0, &t, &n);
    if (st == BNK_OK && n == 1) {
        c->best = t[0];
        c->found = true;
    }
    bnk_trials_free(t, n);
    return st;
}

bnk_status bnk_study_best(bnk_study *s, bnk_trial *best, bool *found) {
    if (found) *found = false;
    if (!s || !best || !found)
        return bnk__fail(BNK_ERR_NULL, "bnk_study_best: NULL study, best or found");
    best_ctx c;
    memset(&c, 0, sizeof c);
    bnk_status st = bnk__study_tx(s, BNK__TX_READ, best_tx, &c);
    if (st != BNK_OK) return st;
    if (!c.found) {
        memset(&c.best, 0, sizeof c.best);
        c.best.id = c.best.number = -1;
        c.best.value = c.best.loss = NAN;
        for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) c.best.x.v[i] = NAN;
    }
    c.best.curve = NULL; /* never loaded: the caller frees nothing */
    c.best.ncurve = 0;
    c.best.epochs = NULL;
    c.best.nepochs = 0;
    *best = c.best;
    *found = c.found;
    return BNK_OK;
}
