/* Internals of the SQLite study (src/tune/study*.c; not installed).
 *
 * study_db.c      statement helpers, the transaction runner with its retry loop, time
 * study_schema.c  the file format: foreign-file checks, schema, stored study configuration
 * study_load.c    trials, points and curves read into bnk_trial arrays
 * study.c         the public bnk_study_* calls
 *
 * Every helper returns a bnk_status and records its message with bnk__fail. A SQLite error
 * goes through bnk__db_fail, which also sets study->busy when the error is SQLITE_BUSY or
 * SQLITE_LOCKED: bnk__study_tx then rolls the transaction back and runs it again after a
 * randomised, growing pause, so "database is locked" never reaches the caller. */
#ifndef BNKIT_TUNE_STUDY_INTERNAL_H
#define BNKIT_TUNE_STUDY_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "bnkit/tune.h"

/* Version of the schema written by study_schema.c. Files with a larger number are refused;
 * older ones are upgraded in place when opened (study_schema.c). */
#define BNK__STUDY_APP            "bnkit-study"
#define BNK__STUDY_SCHEMA_VERSION 2

/* Each attempt to take a lock waits up to BUSY_TIMEOUT_MS in the busy handler (study_db.c);
 * bnk__study_tx retries whole transactions until TX_DEADLINE_S has passed. Samplers run inside
 * the write transaction of bnk_study_ask, and a GP suggestion at a few hundred trials takes
 * about a second, so a worker may queue behind several others: hence the generous deadline. */
#define BNK__STUDY_BUSY_TIMEOUT_MS 1000
#define BNK__STUDY_TX_DEADLINE_S   120.0

struct bnk_study {
    sqlite3 *db;
    char *path;           /* for messages                                                  */
    int64_t sid;          /* studies.id of the open study                                   */
    bnk_study_config cfg; /* as stored in the file                                          */
    bool busy;            /* the last SQLite error was BUSY/LOCKED: retry the transaction   */
    double busy_since;    /* when the busy handler began waiting for the current lock       */
    uint64_t jitter;      /* RNG state for the retry pauses only (never for sampling)       */
};

/* Seconds since the Unix epoch (CLOCK_REALTIME). */
double bnk__study_now(void);

/* Sets up a fresh connection s->db: extended result codes and the busy handler. Returns an
 * SQLite result code. */
int bnk__db_configure(bnk_study *s);

/* Records "<path>: <what>: <SQLite's message>" and returns the matching status: BNK_ERR_FORMAT
 * for a corrupt file or one that is not a database, BNK_ERR_NOMEM, else BNK_ERR_IO. */
bnk_status bnk__db_fail(bnk_study *s, int rc, const char *what);

/* Prepares sql and binds one value per character of types, in order:
 *   'i' int64_t    'd' double (NaN binds NULL)    't' const char * (NULL binds NULL)
 * *stmt is NULL on failure. */
bnk_status bnk__db_prepare(bnk_study *s, sqlite3_stmt **stmt, const char *sql, const char *types,
                           ...);

/* One sqlite3_step: *row tells whether a row is ready (SQLITE_ROW) or the statement is done. */
bnk_status bnk__db_step(bnk_study *s, sqlite3_stmt *stmt, bool *row);

/* Finalises stmt (NULL is harmless) and returns st, or a failure from finalising when st is
 * BNK_OK. */
bnk_status bnk__db_finalize(bnk_study *s, sqlite3_stmt *stmt, bnk_status st);

/* Prepares, binds (as bnk__db_prepare), steps to completion and finalises a statement that
 * returns no rows. *changes (may be NULL) gets sqlite3_changes(). */
bnk_status bnk__db_exec(bnk_study *s, int64_t *changes, const char *sql, const char *types, ...);

/* Reads the single integer of a one-row, one-column query (NULL or no row: *out = dflt). */
bnk_status bnk__db_int(bnk_study *s, int64_t *out, int64_t dflt, const char *sql, const char *types,
                       ...);

/* Column helpers: NULL reads as NaN / "". */
double bnk__db_double(sqlite3_stmt *stmt, int col);
void bnk__db_text(sqlite3_stmt *stmt, int col, char *buf, size_t size);

typedef enum bnk__tx_kind {
    BNK__TX_NONE, /* no BEGIN: statements that cannot run inside a transaction (PRAGMAs)   */
    BNK__TX_READ, /* BEGIN (deferred): a consistent snapshot; WAL readers never block       */
    BNK__TX_WRITE /* BEGIN IMMEDIATE: takes the write lock first, so the body never has to   */
                  /* upgrade a read lock (the upgrade cannot wait and fails at once)         */
} bnk__tx_kind;

/* Runs fn(s, ctx) inside a transaction of the given kind and commits, rolling back when fn fails.
 * When a step failed because the file was locked (s->busy), the whole transaction is run again
 * after a pause with exponential backoff and jitter, for up to BNK__STUDY_TX_DEADLINE_S. fn must
 * therefore be repeatable: it recomputes its outputs from the database each time. */
typedef bnk_status (*bnk__tx_fn)(bnk_study *s, void *ctx);
bnk_status bnk__study_tx(bnk_study *s, bnk__tx_kind kind, bnk__tx_fn fn, void *ctx);

/* Largest step bnk_study_report accepts: curves are arrays indexed by step. */
#define BNK__STUDY_MAX_STEP ((int64_t)1 << 24)

/* ---- study_load.c ------------------------------------------------------------------------- */

/* What bnk__study_load_trials reads besides the trials and their points. */
enum {
    BNK__LOAD_CURVES = 1, /* curves (losses; NaN for steps not reported)       */
    BNK__LOAD_EPOCHS = 2  /* the trainer's per-epoch diagnostics (trial_epochs) */
};

/* Every trial of the study (only_id >= 0: just that one), in number order, with points and
 * what `load` asks for (BNK__LOAD_* bits). Runs inside a transaction of the caller. *trials is
 * NULL when there are none; free with bnk_trials_free. */
bnk_status bnk__study_load_trials(bnk_study *s, int64_t only_id, int load, bnk_trial **trials,
                                  int64_t *count);

/* ---- study_schema.c ----------------------------------------------------------------------- */

/* Validates a caller's configuration (NUL-terminated strings, kinds in range, a non-empty space
 * that survives its JSON form). */
bnk_status bnk__study_config_check(const bnk_study_config *cfg);

/* Inspects the file at s->path before anything writes to it: a missing or empty file, or an
 * SQLite database without tables, is *fresh; a file that is not SQLite, an SQLite file without
 * our meta table, another application's or a newer schema is refused with BNK_ERR_FORMAT. Opens
 * its own read-only connection, so a foreign file is never modified. */
bnk_status bnk__study_precheck(bnk_study *s, bool *fresh);

/* Inside a write transaction: creates the schema in a fresh file (or re-checks the meta table of
 * an existing one, in case another process created the file since the precheck), then loads
 * study cfg->name and compares it with cfg, or creates it. With cfg NULL it only loads: study
 * `name`, or the file's only study when name is NULL too. Fills s->sid and s->cfg. */
bnk_status bnk__study_attach(bnk_study *s, const bnk_study_config *cfg, const char *name);

#endif /* BNKIT_TUNE_STUDY_INTERNAL_H */
