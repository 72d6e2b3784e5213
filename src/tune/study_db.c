/* SQLite helpers for the study: checked prepare/bind/step/finalize, and the transaction runner
 * that retries locked transactions with exponential backoff and jitter. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "core/rng.h"
#include "tune/study_internal.h"

double bnk__study_now(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (double)time(NULL);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pause_for(double seconds) {
    struct timespec ts = {(time_t)seconds, (long)((seconds - floor(seconds)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    } /* EINTR: sleep the rest */
}

/* SQLite's own busy handler (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50,
 * 50, 100 ms: a worker that has waited a little then sleeps through many short transactions of
 * the others while the lock sits idle. Short randomised naps (0.1 ms doubling to at most 3.2 ms)
 * keep the file busy with useful work. */
static int busy_handler(void *ctx, int count) {
    bnk_study *s = ctx;
    const double now = bnk__study_now();
    if (count == 0) s->busy_since = now;
    if (now - s->busy_since > 1e-3 * BNK__STUDY_BUSY_TIMEOUT_MS) return 0; /* give up: BUSY */
    const double nap = 1e-4 * (double)(1 << (count < 5 ? count : 5));
    pause_for(nap * (0.5 + bnk__rng_uniform(&s->jitter)));
    return 1;
}

int bnk__db_configure(bnk_study *s) {
    int rc = sqlite3_extended_result_codes(s->db, 1);
    if (rc == SQLITE_OK) rc = sqlite3_busy_handler(s->db, busy_handler, s);
    return rc;
}

static bool is_busy(int rc) {
    const int primary = rc & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

bnk_status bnk__db_fail(bnk_study *s, int rc, const char *what) {
    const int primary = rc & 0xff;
    s->busy = is_busy(rc);
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    bnk_status st = BNK_ERR_IO;
    if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
        st = BNK_ERR_FORMAT;
    else if (primary == SQLITE_NOMEM)
        st = BNK_ERR_NOMEM;
    return bnk__fail(st, "%s: %s: %s", s->path, what, msg);
}

static bnk_status bind_va(bnk_study *s, sqlite3_stmt *stmt, const char *types, va_list ap) {
    for (int k = 0; types && types[k]; k++) {
        int rc;
        switch (types[k]) {
        case 'i':
            rc = sqlite3_bind_int64(stmt, k + 1, va_arg(ap, int64_t));
            break;
        case 'd': {
            const double v = va_arg(ap, double);
            rc = isnan(v) ? sqlite3_bind_null(stmt, k + 1) : sqlite3_bind_double(stmt, k + 1, v);
            break;
        }
        case 't': {
            const char *t = va_arg(ap, const char *);
            rc = t ? sqlite3_bind_text(stmt, k + 1, t, -1, SQLITE_TRANSIENT)
                   : sqlite3_bind_null(stmt, k + 1);
            break;
        }
        default:
            return bnk__fail(BNK_ERR_PARAM, "%s: internal: bad bind type '%c'", s->path, types[k]);
        }
        if (rc != SQLITE_OK) return bnk__db_fail(s, rc, "binding a value");
    }
    return BNK_OK;
}

static bnk_status prepare_va(bnk_study *s, sqlite3_stmt **stmt, const char *sql, const char *types,
                             va_list ap) {
    *stmt = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, stmt, NULL);
    if (rc != SQLITE_OK) {
        *stmt = NULL; /* sqlite3_prepare_v2 already sets it; be explicit */
        return bnk__db_fail(s, rc, "preparing a statement");
    }
    bnk_status st = bind_va(s, *stmt, types, ap);
    if (st != BNK_OK) {
        sqlite3_finalize(*stmt); /* the bind failure is the error to report */
        *stmt = NULL;
    }
    return st;
}

bnk_status bnk__db_prepare(bnk_study *s, sqlite3_stmt **stmt, const char *sql, const char *types,
                           ...) {
    va_list ap;
    va_start(ap, types);
    bnk_status st = prepare_va(s, stmt, sql, types, ap);
    va_end(ap);
    return st;
}

bnk_status bnk__db_step(bnk_study *s, sqlite3_stmt *stmt, bool *row) {
    const int rc = sqlite3_step(stmt);
    *row = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) return BNK_OK;
    return bnk__db_fail(s, rc, "running a statement");
}

bnk_status bnk__db_finalize(bnk_study *s, sqlite3_stmt *stmt, bnk_status st) {
    /* sqlite3_finalize repeats the error of the last failed step, which st already reports. */
    const int rc = sqlite3_finalize(stmt);
    if (st == BNK_OK && rc != SQLITE_OK) return bnk__db_fail(s, rc, "finishing a statement");
    return st;
}

bnk_status bnk__db_exec(bnk_study *s, int64_t *changes, const char *sql, const char *types, ...) {
    sqlite3_stmt *stmt;
    va_list ap;
    va_start(ap, types);
    bnk_status st = prepare_va(s, &stmt, sql, types, ap);
    va_end(ap);
    bool row = true;
    while (st == BNK_OK && row) st = bnk__db_step(s, stmt, &row);
    if (st == BNK_OK && changes) *changes = sqlite3_changes64(s->db);
    return bnk__db_finalize(s, stmt, st);
}

bnk_status bnk__db_int(bnk_study *s, int64_t *out, int64_t dflt, const char *sql, const char *types,
                       ...) {
    sqlite3_stmt *stmt;
    va_list ap;
    va_start(ap, types);
    bnk_status st = prepare_va(s, &stmt, sql, types, ap);
    va_end(ap);
    bool row = false;
    *out = dflt;
    if (st == BNK_OK) st = bnk__db_step(s, stmt, &row);
    if (st == BNK_OK && row && sqlite3_column_type(stmt, 0) != SQLITE_NULL)
        *out = sqlite3_column_int64(stmt, 0);
    return bnk__db_finalize(s, stmt, st);
}

double bnk__db_double(sqlite3_stmt *stmt, int col) {
    return sqlite3_column_type(stmt, col) == SQLITE_NULL ? NAN : sqlite3_column_double(stmt, col);
}

void bnk__db_text(sqlite3_stmt *stmt, int col, char *buf, size_t size) {
    const unsigned char *t = sqlite3_column_text(stmt, col);
    snprintf(buf, size, "%s", t ? (const char *)t : "");
}

/* Runs a statement that may legitimately fail (ROLLBACK after an error), ignoring its result. */
static void exec_quiet(bnk_study *s, const char *sql) {
    (void)sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

bnk_status bnk__study_tx(bnk_study *s, bnk__tx_kind kind, bnk__tx_fn fn, void *ctx) {
    static const char *const begin[] = {NULL, "BEGIN", "BEGIN IMMEDIATE"};
    const double deadline = bnk__study_now() + BNK__STUDY_TX_DEADLINE_S;
    double backoff = 0.002; /* seconds; doubles up to 0.5 */
    for (int attempt = 1;; attempt++) {
        s->busy = false;
        bnk_status st = BNK_OK;
        if (begin[kind]) st = bnk__db_exec(s, NULL, begin[kind], NULL);
        if (st == BNK_OK) st = fn(s, ctx);
        if (st == BNK_OK && begin[kind]) st = bnk__db_exec(s, NULL, "COMMIT", NULL);
        if (st != BNK_OK && !sqlite3_get_autocommit(s->db)) {
            const bool busy = s->busy;
            exec_quiet(s, "ROLLBACK");
            s->busy = busy;
        }
        if (st == BNK_OK || !s->busy) return st;
        if (bnk__study_now() > deadline)
            return bnk__fail(BNK_ERR_IO,
                             "%s: other processes kept the study file locked; gave up after %d "
                             "attempts in %.0f s",
                             s->path, attempt, BNK__STUDY_TX_DEADLINE_S);
        /* Full jitter in [backoff/2, backoff): workers that collided do not collide again. */
        pause_for(backoff * (0.5 + 0.5 * bnk__rng_uniform(&s->jitter)));
        backoff = fmin(2 * backoff, 0.5);
    }
}
