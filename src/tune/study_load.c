/* Loading trials: the rows of trials, trial_params and trial_values of one study into
 * bnk_trial arrays (points, curves as losses, the trainer's per-epoch diagnostics), with one query
 * per table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "tune/study_internal.h"

void bnk_trials_free(bnk_trial *trials, int64_t count) {
    if (!trials) return;
    for (int64_t k = 0; k < count; k++) {
        free(trials[k].curve);
        free(trials[k].epochs);
    }
    free(trials);
}

static bool parse_state(const char *text, bnk_trial_state *state) {
    for (int k = BNK_TRIAL_RUNNING; k <= BNK_TRIAL_FAILED; k++)
        if (text && strcmp(text, bnk_trial_state_str((bnk_trial_state)k)) == 0) {
            *state = (bnk_trial_state)k;
            return true;
        }
    return false;
}

typedef struct id_slot {
    int64_t id, k;
} id_slot;

static int id_slot_cmp(const void *a, const void *b) {
    const int64_t x = ((const id_slot *)a)->id, y = ((const id_slot *)b)->id;
    return (x > y) - (x < y);
}

/* Index of trial `id` in trials[0..n); rows mostly arrive in number order, so the trial at or
 * after *hint is tried before the binary search. */
static int64_t find_slot(const id_slot *slots, const bnk_trial *trials, int64_t n, int64_t id,
                         int64_t *hint) {
    for (int64_t k = *hint; k < n && k <= *hint + 1; k++)
        if (k >= 0 && trials[k].id == id) return *hint = k;
    const id_slot key = {id, 0};
    const id_slot *hit = bsearch(&key, slots, (size_t)n, sizeof *slots, id_slot_cmp);
    return hit ? (*hint = hit->k) : -1;
}

/* Fills the trainer's per-epoch diagnostics of trials[0..n) from one query, in number then
 * step order (the primary key's), each array growing by doubling. */
static bnk_status load_epochs(bnk_study *s, int64_t only_id, const id_slot *slots,
                              bnk_trial *trials, int64_t n) {
    sqlite3_stmt *stmt;
    bool row = true;
    int64_t hint = 0, cur = -1, cap = 0;
    bnk_status st = bnk__db_prepare(
        s, &stmt,
        "SELECT e.trial_id, e.step, e.train_loss, e.train_accuracy, e.val_loss, e.val_accuracy, "
        "e.vanishing_gradients, e.overfitting, e.min_grad_norm, e.min_grad_tensor, "
        "e.bn_min_running_var, e.bn_max_running_var FROM trials t JOIN trial_epochs e ON "
        "e.trial_id = t.id WHERE t.study_id = ?1 AND (?2 < 0 OR t.id = ?2) ORDER BY t.number, "
        "e.step",
        "ii", s->sid, only_id);
    while (st == BNK_OK) {
        st = bnk__db_step(s, stmt, &row);
        if (st != BNK_OK || !row) break;
        const int64_t k = find_slot(slots, trials, n, sqlite3_column_int64(stmt, 0), &hint);
        const int64_t step = sqlite3_column_int64(stmt, 1);
        if (k < 0 || step < 1 || step > BNK__STUDY_MAX_STEP) {
            st = bnk__fail(BNK_ERR_FORMAT, "%s: stored diagnostics (step %lld) are bad", s->path,
                           (long long)step);
            break;
        }
        bnk_trial *t = &trials[k];
        if (k != cur) {
            cur = k;
            cap = t->nepochs;
        }
        if (t->nepochs == cap) {
            const int64_t ncap = cap > 0 ? 2 * cap : 8;
            bnk_trial_epoch *grown = realloc(t->epochs, (size_t)ncap * sizeof *grown);
            if (!grown) {
                st = bnk__fail(BNK_ERR_NOMEM, "%s: out of memory loading diagnostics", s->path);
                break;
            }
            t->epochs = grown;
            cap = ncap;
        }
        bnk_trial_epoch *e = &t->epochs[t->nepochs++];
        e->step = step;
        e->train_loss = bnk__db_double(stmt, 2);
        e->train_accuracy = bnk__db_double(stmt, 3);
        e->val_loss = bnk__db_double(stmt, 4);
        e->val_accuracy = bnk__db_double(stmt, 5);
        e->vanishing_gradients = sqlite3_column_int64(stmt, 6) != 0;
        e->overfitting = sqlite3_column_int64(stmt, 7) != 0;
        e->min_grad_norm = bnk__db_double(stmt, 8);
        bnk__db_text(stmt, 9, e->min_grad_tensor, sizeof e->min_grad_tensor);
        e->bn_min_running_var = bnk__db_double(stmt, 10);
        e->bn_max_running_var = bnk__db_double(stmt, 11);
    }
    return bnk__db_finalize(s, stmt, st);
}

/* Fills the params (and the curves and diagnostics, as `load` asks) of trials[0..n) from one
 * query each. */
static bnk_status load_details(bnk_study *s, int64_t only_id, int load, bnk_trial *trials,
                               int64_t n) {
    const bool curves = load & BNK__LOAD_CURVES;
    id_slot *slots = malloc((size_t)(n ? n : 1) * sizeof *slots);
    if (!slots) return bnk__fail(BNK_ERR_NOMEM, "%s: out of memory loading trials", s->path);
    for (int64_t k = 0; k < n; k++) slots[k] = (id_slot){trials[k].id, k};
    qsort(slots, (size_t)n, sizeof *slots, id_slot_cmp);

    sqlite3_stmt *stmt;
    bool row = true;
    int64_t hint = 0;
    bnk_status st = bnk__db_prepare(s, &stmt,
                                    "SELECT p.trial_id, p.param_index, p.value FROM trial_params "
                                    "p JOIN trials t ON t.id = p.trial_id WHERE t.study_id = ?1 "
                                    "AND (?2 < 0 OR t.id = ?2) ORDER BY t.number",
                                    "ii", s->sid, only_id);
    while (st == BNK_OK) {
        st = bnk__db_step(s, stmt, &row);
        if (st != BNK_OK || !row) break;
        const int64_t k = find_slot(slots, trials, n, sqlite3_column_int64(stmt, 0), &hint);
        const int64_t i = sqlite3_column_int64(stmt, 1);
        if (k < 0 || i < 0 || i >= s->cfg.space.n)
            st = bnk__fail(BNK_ERR_FORMAT,
                           "%s: a stored parameter value (index %lld) does not "
                           "match the study's space",
                           s->path, (long long)i);
        else
            trials[k].x.v[i] = bnk__db_double(stmt, 2);
    }
    st = bnk__db_finalize(s, stmt, st);

    /* Curves, in number then step order: the order of the trials index and of the primary key
     * of trial_values, so SQLite sorts nothing; each curve grows by doubling. */
    if (st == BNK_OK && curves)
        st = bnk__db_prepare(s, &stmt,
                             "SELECT v.trial_id, v.step, v.value FROM trials t JOIN trial_values "
                             "v ON v.trial_id = t.id WHERE t.study_id = ?1 AND (?2 < 0 OR t.id = "
                             "?2) ORDER BY t.number, v.step",
                             "ii", s->sid, only_id);
    int64_t cur = -1, cap = 0; /* the trial being filled and its curve's capacity */
    hint = 0;
    while (st == BNK_OK && curves) {
        st = bnk__db_step(s, stmt, &row);
        if (st != BNK_OK || !row) break;
        const int64_t k = find_slot(slots, trials, n, sqlite3_column_int64(stmt, 0), &hint);
        const int64_t step = sqlite3_column_int64(stmt, 1);
        if (k < 0 || step < 1 || step > BNK__STUDY_MAX_STEP) {
            st = bnk__fail(BNK_ERR_FORMAT, "%s: a stored intermediate value (step %lld) is bad",
                           s->path, (long long)step);
            break;
        }
        bnk_trial *t = &trials[k];
        if (k != cur) {
            cur = k;
            cap = t->ncurve;
        }
        if (step > cap) {
            int64_t ncap = cap > 8 ? cap : 8;
            while (ncap < step) ncap *= 2;
            double *grown = realloc(t->curve, (size_t)ncap * sizeof *grown);
            if (!grown) {
                st = bnk__fail(BNK_ERR_NOMEM, "%s: out of memory loading curves", s->path);
                break;
            }
            t->curve = grown;
            cap = ncap;
        }
        for (int64_t j = t->ncurve; j < step; j++) t->curve[j] = NAN; /* steps not reported */
        if (step > t->ncurve) t->ncurve = step;
        const double v = bnk__db_double(stmt, 2);
        t->curve[step - 1] = s->cfg.maximize ? -v : v;
    }
    if (curves) st = bnk__db_finalize(s, stmt, st);
    if (st == BNK_OK && (load & BNK__LOAD_EPOCHS)) st = load_epochs(s, only_id, slots, trials, n);
    free(slots);
    return st;
}

bnk_status bnk__study_load_trials(bnk_study *s, int64_t only_id, int load, bnk_trial **trials,
                                  int64_t *count) {
    *trials = NULL;
    *count = 0;
    int64_t n;
    bnk_status st = bnk__db_int(s, &n, 0,
                                "SELECT count(*) FROM trials WHERE study_id = ?1 AND (?2 < 0 OR "
                                "id = ?2)",
                                "ii", s->sid, only_id);
    if (st != BNK_OK || n == 0) return st;
    bnk_trial *t = calloc((size_t)n, sizeof *t);
    if (!t)
        return bnk__fail(BNK_ERR_NOMEM, "%s: out of memory for %lld trials", s->path, (long long)n);
    sqlite3_stmt *stmt;
    int64_t got = 0;
    bool row = true;
    st = bnk__db_prepare(s, &stmt,
                         "SELECT id, number, state, value, loss, worker, reason, started, "
                         "finished, heartbeat FROM trials WHERE study_id = ?1 AND (?2 < 0 OR id "
                         "= ?2) ORDER BY number",
                         "ii", s->sid, only_id);
    while (st == BNK_OK) {
        st = bnk__db_step(s, stmt, &row);
        if (st != BNK_OK || !row) break;
        if (got == n) {
            st = bnk__fail(BNK_ERR_FORMAT, "%s: trials changed while being read", s->path);
            break;
        }
        bnk_trial *tr = &t[got++];
        tr->id = sqlite3_column_int64(stmt, 0);
        tr->number = sqlite3_column_int64(stmt, 1);
        if (!parse_state((const char *)sqlite3_column_text(stmt, 2), &tr->state))
            st = bnk__fail(BNK_ERR_FORMAT, "%s: trial %lld has an unknown state", s->path,
                           (long long)tr->number);
        tr->value = bnk__db_double(stmt, 3);
        tr->loss = bnk__db_double(stmt, 4);
        bnk__db_text(stmt, 5, tr->worker, sizeof tr->worker);
        bnk__db_text(stmt, 6, tr->reason, sizeof tr->reason);
        tr->started = sqlite3_column_double(stmt, 7); /* NULL reads as 0 */
        tr->finished = sqlite3_column_double(stmt, 8);
        tr->heartbeat = sqlite3_column_double(stmt, 9);
        for (int i = 0; i < BNK_SPACE_MAX_PARAMS; i++) tr->x.v[i] = NAN;
    }
    st = bnk__db_finalize(s, stmt, st);
    if (st == BNK_OK && got != n)
        st = bnk__fail(BNK_ERR_FORMAT, "%s: trials changed while being read", s->path);
    if (st == BNK_OK) st = load_details(s, only_id, load, t, n);
    if (st != BNK_OK) {
        bnk_trials_free(t, n);
        return st;
    }
    *trials = t;
    *count = n;
    return BNK_OK;
}
