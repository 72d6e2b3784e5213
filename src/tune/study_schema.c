/* The study file format: which files are ours, the schema, and the stored configuration.
 *
 * Schema version 2 (every time is a Unix time in seconds, a REAL; NULL where not set):
 *
 *   meta(key PRIMARY KEY, value)            app = 'bnkit-study', schema_version = '2'
 *   studies(id, name UNIQUE, objective, maximize, space_json, sampler_json, pruner_json,
 *           train_args, created)
 *   trials(id, study_id, number, state, value, loss, worker, reason, started, finished,
 *          heartbeat, UNIQUE(study_id, number))
 *       state: 'running' | 'complete' | 'pruned' | 'failed'; value as given, loss = value or
 *       -value when maximising (NULL for NaN); the UNIQUE index also serves every per-study query
 *   trial_params(trial_id, param_index, value)   value NULL when the parameter is inactive
 *   trial_values(trial_id, step, value)          intermediate objective values, as given
 *   trial_epochs(trial_id, step, train_loss, train_accuracy, val_loss, val_accuracy,
 *                vanishing_gradients, overfitting, min_grad_norm, min_grad_tensor,
 *                bn_min_running_var, bn_max_running_var)
 *       the trainer's diagnostics of a step (bnk_trial_epoch; NULL for NaN), written with the
 *       step's value by bnk_study_report_ex
 *
 * Version 1 lacked trial_epochs. Opening a version-1 file upgrades it in place, inside the
 * write transaction that attaches the study: the table is created and schema_version set to 2.
 * Nothing else changes, so a running version-1 worker keeps working on the file until it
 * reopens it (it would then refuse the newer version).
 * A file is ours only when its meta table says app = 'bnkit-study'; anything else is refused
 * before a single byte is written (the checks use a read-only connection). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/internal.h"
#include "tune/study_internal.h"

static const char *const schema_sql =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE studies("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " objective TEXT NOT NULL,"
    " maximize INTEGER NOT NULL CHECK (maximize IN (0, 1)),"
    " space_json TEXT NOT NULL,"
    " sampler_json TEXT NOT NULL,"
    " pruner_json TEXT NOT NULL,"
    " train_args TEXT NOT NULL,"
    " created REAL NOT NULL);"
    "CREATE TABLE trials("
    " id INTEGER PRIMARY KEY,"
    " study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,"
    " number INTEGER NOT NULL CHECK (number >= 0),"
    " state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'pruned', 'failed')),"
    " value REAL,"
    " loss REAL,"
    " worker TEXT NOT NULL DEFAULT '',"
    " reason TEXT NOT NULL DEFAULT '',"
    " started REAL,"
    " finished REAL,"
    " heartbeat REAL,"
    " UNIQUE (study_id, number));"
    "CREATE TABLE trial_params("
    " trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,"
    " param_index INTEGER NOT NULL CHECK (param_index >= 0),"
    " value REAL,"
    " PRIMARY KEY (trial_id, param_index)) WITHOUT ROWID;"
    "CREATE TABLE trial_values("
    " trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,"
    " step INTEGER NOT NULL CHECK (step >= 1),"
    " value REAL,"
    " PRIMARY KEY (trial_id, step)) WITHOUT ROWID;";

/* What version 2 added to version 1; part of the schema of a new file too. */
static const char *const schema_v2_sql =
    "CREATE TABLE trial_epochs("
    " trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,"
    " step INTEGER NOT NULL CHECK (step >= 1),"
    " train_loss REAL,"
    " train_accuracy REAL,"
    " val_loss REAL,"
    " val_accuracy REAL,"
    " vanishing_gradients INTEGER NOT NULL CHECK (vanishing_gradients IN (0, 1)),"
    " overfitting INTEGER NOT NULL CHECK (overfitting IN (0, 1)),"
    " min_grad_norm REAL,"
    " min_grad_tensor TEXT NOT NULL DEFAULT '',"
    " bn_min_running_var REAL,"
    " bn_max_running_var REAL,"
    " PRIMARY KEY (trial_id, step)) WITHOUT ROWID;";

/* ---- Is this file ours? ------------------------------------------------------------------- */

typedef struct inspection {
    bool fresh;      /* no schema objects at all: ours to fill                     */
    int64_t version; /* the file's schema version (0 when fresh)                   */
    bool judged;     /* a BNK_ERR_FORMAT came from the checks, not from SQLite     */
} inspection;

static bnk_status refuse(const bnk_study *s, inspection *in, const char *why) {
    in->judged = true;
    return bnk__fail(BNK_ERR_FORMAT, "%s: %s; not a bnkit study file, left untouched", s->path,
                     why);
}

/* The checks shared by the read-only precheck and the write transaction of bnk__study_attach. */
static bnk_status inspect(bnk_study *s, void *ctx) {
    inspection *in = ctx;
    bool *fresh = &in->fresh;
    int64_t nobjects, nmeta, version;
    in->judged = false;
    bnk_status st = bnk__db_int(s, &nobjects, 0, "SELECT count(*) FROM sqlite_master", NULL);
    if (st != BNK_OK) return st;
    *fresh = nobjects == 0;
    if (*fresh) return BNK_OK;
    st = bnk__db_int(s, &nmeta, 0,
                     "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                     NULL);
    if (st != BNK_OK) return st;
    if (nmeta == 0)
        return refuse(s, in, "an SQLite database of another application (no meta table)");

    sqlite3_stmt *stmt;
    char app[64] = "", ver[32] = "";
    st = bnk__db_prepare(s, &stmt, "SELECT key, value FROM meta", NULL);
    bool row = true;
    while (st == BNK_OK && row) {
        st = bnk__db_step(s, stmt, &row);
        if (st != BNK_OK || !row) break;
        const char *key = (const char *)sqlite3_column_text(stmt, 0);
        if (key && strcmp(key, "app") == 0) bnk__db_text(stmt, 1, app, sizeof app);
        if (key && strcmp(key, "schema_version") == 0) bnk__db_text(stmt, 1, ver, sizeof ver);
    }
    st = bnk__db_finalize(s, stmt, st);
    if (st != BNK_OK) {
        /* A meta table with other columns: somebody else's. */
        if (!s->busy)
            return refuse(s, in, "an SQLite database of another application (meta table)");
        return st;
    }
    if (strcmp(app, BNK__STUDY_APP) != 0)
        return refuse(s, in,
                      "an SQLite database of another application (meta app is not "
                      "'" BNK__STUDY_APP "')");
    char *end;
    errno = 0;
    version = strtoll(ver, &end, 10);
    in->judged = true;
    if (!ver[0] || *end || errno || version < 1)
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s: bad schema_version '%s' in the meta table; left "
                         "untouched",
                         s->path, ver);
    if (version > BNK__STUDY_SCHEMA_VERSION)
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s: written by a newer bnkit (study schema version %lld; this bnkit "
                         "reads up to %d); left untouched",
                         s->path, (long long)version, BNK__STUDY_SCHEMA_VERSION);
    in->judged = false;
    in->version = version;
    return BNK_OK;
}

/* Upgrades an older file in place (inside the attach transaction). */
static bnk_status migrate(bnk_study *s, int64_t version) {
    if (version < 2) {
        const int rc = sqlite3_exec(s->db, schema_v2_sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) return bnk__db_fail(s, rc, "upgrading the schema to version 2");
        version = 2;
    }
    char text[24]; /* any int64 */
    snprintf(text, sizeof text, "%lld", (long long)version);
    return bnk__db_exec(s, NULL, "UPDATE meta SET value = ?1 WHERE key = 'schema_version'", "t",
                        text);
}

bnk_status bnk__study_precheck(bnk_study *s, bool *fresh) {
    inspection in = {.fresh = true};
    *fresh = true;
    /* Look at the bytes ourselves first: SQLite is never pointed at a file without its magic. */
    int fd = open(s->path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT) return BNK_OK;
        return bnk__fail(BNK_ERR_IO, "%s: cannot open: %s", s->path, strerror(errno));
    }
    struct stat sb;
    unsigned char head[16];
    ssize_t got = 0;
    bnk_status st = BNK_OK;
    if (fstat(fd, &sb) != 0)
        st = bnk__fail(BNK_ERR_IO, "%s: cannot stat: %s", s->path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = bnk__fail(BNK_ERR_IO, "%s: not a regular file", s->path);
    else if (sb.st_size > 0 && (got = read(fd, head, sizeof head)) < 0)
        st = bnk__fail(BNK_ERR_IO, "%s: cannot read: %s", s->path, strerror(errno));
    close(fd);
    if (st != BNK_OK || sb.st_size == 0) return st; /* an empty file is a new study file */
    if (got < (ssize_t)sizeof head || memcmp(head, "SQLite format 3", 16) != 0)
        return refuse(s, &in, "not an SQLite database");

    /* Read-only: not even a hot rollback journal of a foreign database gets replayed. */
    bnk_study ro = {.path = s->path, .jitter = s->jitter};
    int rc = sqlite3_open_v2(s->path, &ro.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) rc = bnk__db_configure(&ro);
    if (rc != SQLITE_OK)
        st = bnk__db_fail(&ro, rc, "opening read-only");
    else
        st = bnk__study_tx(&ro, BNK__TX_READ, inspect, &in);
    if (st == BNK_ERR_FORMAT && !in.judged)
        st = refuse(&ro, &in, "a damaged SQLite database or not one at all");
    *fresh = in.fresh;
    sqlite3_close(ro.db); /* read-only and no statement left: cannot fail in a way that matters */
    return st;
}

/* ---- Stored configuration ----------------------------------------------------------------- */

static bnk_status sampler_to_json(const bnk_sampler_config *c, char **out) {
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    /* The seed is a string: JSON integers are signed 64-bit in jansson. */
    json_t *o =
        json_pack("{s:s, s:s, s:i, s:i, s:i, s:f, s:b, s:b}", "kind", bnk_sampler_kind_str(c->kind),
                  "seed", seed, "grid_points", c->grid_points, "n_startup", c->n_startup,
                  "n_candidates", c->n_candidates, "prior_weight", c->prior_weight, "multivariate",
                  c->multivariate, "constant_liar", c->constant_liar);
    *out = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return *out ? BNK_OK : bnk__fail(BNK_ERR_NOMEM, "study: cannot encode the sampler as JSON");
}

/* "percentile" is written only when it is not the default 50: a median study's JSON stays what
 * older bnkit wrote and reads, and older bnkit refuses (an unknown key) a study it would prune
 * differently. Reading takes a missing "percentile" as 50. */
static bnk_status pruner_to_json(const bnk_pruner_config *c, char **out) {
    json_t *o = json_pack("{s:s, s:i, s:I, s:i, s:I}", "kind", bnk_pruner_kind_str(c->kind),
                          "n_startup", c->n_startup, "n_warmup", (json_int_t)c->n_warmup,
                          "reduction", c->reduction, "min_resource", (json_int_t)c->min_resource);
    if (o && c->percentile != 50 &&
        json_object_set_new(o, "percentile", json_real(c->percentile)) != 0) {
        json_decref(o);
        o = NULL;
    }
    *out = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return *out ? BNK_OK : bnk__fail(BNK_ERR_NOMEM, "study: cannot encode the pruner as JSON");
}

static bnk_status sampler_from_json(const char *path, const char *text, bnk_sampler_config *c) {
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    const char *kind = NULL, *seed = NULL;
    json_int_t grid = 0, nstart = 0, ncand = 0;
    double prior = 0;
    int multi = 0, liar = 0;
    bnk_status st = BNK_OK;
    if (!o || json_unpack_ex(o, &err, JSON_STRICT, "{s:s, s:s, s:I, s:I, s:I, s:F, s:b, s:b}",
                             "kind", &kind, "seed", &seed, "grid_points", &grid, "n_startup",
                             &nstart, "n_candidates", &ncand, "prior_weight", &prior,
                             "multivariate", &multi, "constant_liar", &liar) != 0) {
        st = bnk__fail(BNK_ERR_FORMAT, "%s: stored sampler: %s", path, err.text);
    } else if (bnk_sampler_kind_parse(kind, &c->kind) != BNK_OK) {
        st = bnk__fail(BNK_ERR_FORMAT, "%s: stored sampler: unknown kind '%s'", path, kind);
    } else {
        char *end;
        errno = 0;
        c->seed = strtoull(seed, &end, 10);
        if (!seed[0] || *end || errno)
            st = bnk__fail(BNK_ERR_FORMAT, "%s: stored sampler: bad seed '%s'", path, seed);
        c->grid_points = (int)grid;
        c->n_startup = (int)nstart;
        c->n_candidates = (int)ncand;
        c->prior_weight = prior;
        c->multivariate = multi;
        c->constant_liar = liar;
    }
    json_decref(o);
    return st;
}

static bnk_status pruner_from_json(const char *path, const char *text, bnk_pruner_config *c) {
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    const char *kind = NULL;
    json_int_t nstart = 0, nwarm = 0, red = 0, minres = 0;
    double pct = 50; /* absent in files of older bnkit and in median studies at 50 */
    bnk_status st = BNK_OK;
    if (!o || json_unpack_ex(o, &err, JSON_STRICT, "{s:s, s:I, s:I, s:I, s:I, s?F}", "kind", &kind,
                             "n_startup", &nstart, "n_warmup", &nwarm, "reduction", &red,
                             "min_resource", &minres, "percentile", &pct) != 0) {
        st = bnk__fail(BNK_ERR_FORMAT, "%s: stored pruner: %s", path, err.text);
    } else if (bnk_pruner_kind_parse(kind, &c->kind) != BNK_OK) {
        st = bnk__fail(BNK_ERR_FORMAT, "%s: stored pruner: unknown kind '%s'", path, kind);
    } else if (!(pct > 0 && pct <= 100)) {
        st = bnk__fail(BNK_ERR_FORMAT, "%s: stored pruner: percentile %g not in (0, 100]", path,
                       pct);
    } else {
        c->n_startup = (int)nstart;
        c->n_warmup = nwarm;
        c->reduction = (int)red;
        c->min_resource = minres;
        c->percentile = pct;
    }
    json_decref(o);
    return st;
}

static bool has_nul(const char *buf, size_t size) {
    return memchr(buf, '\0', size) != NULL;
}

bnk_status bnk__study_config_check(const bnk_study_config *cfg) {
    if (!has_nul(cfg->name, sizeof cfg->name) || !cfg->name[0])
        return bnk__fail(BNK_ERR_PARAM, "study: the name must be 1-%zu characters",
                         sizeof cfg->name - 1);
    if (!has_nul(cfg->objective, sizeof cfg->objective))
        return bnk__fail(BNK_ERR_PARAM, "study '%s': objective name too long", cfg->name);
    if (!has_nul(cfg->train_args, sizeof cfg->train_args))
        return bnk__fail(BNK_ERR_PARAM, "study '%s': train_args not terminated", cfg->name);
    if (cfg->sampler.kind < BNK_SAMPLER_GRID || cfg->sampler.kind > BNK_SAMPLER_GP)
        return bnk__fail(BNK_ERR_PARAM, "study '%s': unknown sampler kind %d", cfg->name,
                         (int)cfg->sampler.kind);
    if (cfg->pruner.kind < BNK_PRUNER_NONE || cfg->pruner.kind > BNK_PRUNER_ASHA)
        return bnk__fail(BNK_ERR_PARAM, "study '%s': unknown pruner kind %d", cfg->name,
                         (int)cfg->pruner.kind);
    if (!(cfg->pruner.percentile > 0 && cfg->pruner.percentile <= 100))
        return bnk__fail(BNK_ERR_PARAM, "study '%s': pruner percentile must be in (0, 100], got %g",
                         cfg->name, cfg->pruner.percentile);
    if (cfg->space.n < 1 || cfg->space.n > BNK_SPACE_MAX_PARAMS)
        return bnk__fail(BNK_ERR_PARAM,
                         "study '%s': the search space needs 1-%d parameters, "
                         "has %d",
                         cfg->name, BNK_SPACE_MAX_PARAMS, cfg->space.n);
    /* The space is stored as JSON: it must come back identical (this also validates a space
     * that was filled in by hand rather than by bnk_space_add). */
    char *json = NULL;
    bnk_space back;
    bnk_status st = bnk_space_to_json(&cfg->space, &json);
    if (st == BNK_OK) st = bnk_space_from_json(&back, json);
    free(json);
    if (st == BNK_OK && !bnk_space_equal(&cfg->space, &back))
        st = bnk__fail(BNK_ERR_PARAM, "search space does not survive its text form");
    if (st != BNK_OK && st != BNK_ERR_NOMEM)
        return bnk__fail(BNK_ERR_PARAM, "study '%s': invalid search space: %.300s", cfg->name,
                         bnk_errmsg());
    return st;
}

/* Names the first difference between the stored configuration a and the caller's b. */
static bool config_diff(const bnk_study_config *a, const bnk_study_config *b, char *buf,
                        size_t size) {
#define BNK__DIFF(field, fmt, cast)                                                                \
    if (a->field != b->field) {                                                                    \
        snprintf(buf, size, "%s is " fmt " in the file, " fmt " here", #field, cast(a->field),     \
                 cast(b->field));                                                                  \
        return true;                                                                               \
    }
#define BNK__AS_IS(x)   (x)
#define BNK__LL(x)      ((long long)(x))
#define BNK__ULL(x)     ((unsigned long long)(x))
#define BNK__YESNO(x)   ((x) ? "true" : "false")
#define BNK__SAMPLER(x) bnk_sampler_kind_str(x)
#define BNK__PRUNER(x)  bnk_pruner_kind_str(x)
    if (strcmp(a->objective, b->objective) != 0) {
        snprintf(buf, size, "objective is '%s' in the file, '%s' here", a->objective, b->objective);
        return true;
    }
    BNK__DIFF(maximize, "%s", BNK__YESNO)
    if (!bnk_space_equal(&a->space, &b->space)) {
        char x[512] = "(none)", y[512] = "(none)";
        int i = 0;
        for (; i < a->space.n && i < b->space.n; i++) {
            bnk_space_param_str(&a->space, i, x, sizeof x);
            bnk_space_param_str(&b->space, i, y, sizeof y);
            if (strcmp(x, y) != 0) break;
        }
        if (i < a->space.n) bnk_space_param_str(&a->space, i, x, sizeof x);
        if (i >= a->space.n) snprintf(x, sizeof x, "(none)");
        if (i < b->space.n) bnk_space_param_str(&b->space, i, y, sizeof y);
        if (i >= b->space.n) snprintf(y, sizeof y, "(none)");
        snprintf(buf, size, "search space parameter %d is %.200s in the file, %.200s here", i + 1,
                 x, y);
        return true;
    }
    BNK__DIFF(sampler.kind, "%s", BNK__SAMPLER)
    BNK__DIFF(sampler.seed, "%llu", BNK__ULL)
    BNK__DIFF(sampler.grid_points, "%d", BNK__AS_IS)
    BNK__DIFF(sampler.n_startup, "%d", BNK__AS_IS)
    BNK__DIFF(sampler.n_candidates, "%d", BNK__AS_IS)
    BNK__DIFF(sampler.prior_weight, "%.17g", BNK__AS_IS)
    BNK__DIFF(sampler.multivariate, "%s", BNK__YESNO)
    BNK__DIFF(sampler.constant_liar, "%s", BNK__YESNO)
    BNK__DIFF(pruner.kind, "%s", BNK__PRUNER)
    BNK__DIFF(pruner.n_startup, "%d", BNK__AS_IS)
    BNK__DIFF(pruner.n_warmup, "%lld", BNK__LL)
    BNK__DIFF(pruner.percentile, "%.17g", BNK__AS_IS)
    BNK__DIFF(pruner.reduction, "%d", BNK__AS_IS)
    BNK__DIFF(pruner.min_resource, "%lld", BNK__LL)
    if (strcmp(a->train_args, b->train_args) != 0) {
        snprintf(buf, size, "train_args are '%.200s' in the file, '%.200s' here", a->train_args,
                 b->train_args);
        return true;
    }
    return false;
#undef BNK__DIFF
#undef BNK__AS_IS
#undef BNK__LL
#undef BNK__ULL
#undef BNK__YESNO
#undef BNK__SAMPLER
#undef BNK__PRUNER
}

/* Copies a TEXT column into a fixed buffer, refusing one that does not fit. */
static bnk_status column_fits(bnk_study *s, sqlite3_stmt *stmt, int col, char *buf, size_t size,
                              const char *what) {
    const unsigned char *t = sqlite3_column_text(stmt, col);
    if (!t) return bnk__fail(BNK_ERR_FORMAT, "%s: stored %s is NULL", s->path, what);
    if (strlen((const char *)t) >= size)
        return bnk__fail(BNK_ERR_FORMAT, "%s: stored %s is too long", s->path, what);
    strcpy(buf, (const char *)t);
    return BNK_OK;
}

/* Refuses to guess which study to open when the file holds several: lists their names. */
static bnk_status check_only_study(bnk_study *s) {
    sqlite3_stmt *stmt;
    bool row = false;
    bnk_status st = bnk__db_prepare(s, &stmt,
                                    "SELECT count(*), group_concat(name, ', ') FROM (SELECT "
                                    "name FROM studies ORDER BY id)",
                                    NULL);
    if (st == BNK_OK) st = bnk__db_step(s, stmt, &row);
    if (st == BNK_OK && row && sqlite3_column_int64(stmt, 0) > 1) {
        char names[300];
        bnk__db_text(stmt, 1, names, sizeof names);
        st = bnk__fail(BNK_ERR_PARAM, "%s: the file holds %lld studies (%s); name the one to open",
                       s->path, (long long)sqlite3_column_int64(stmt, 0), names);
    }
    return bnk__db_finalize(s, stmt, st);
}

/* Loads study `name` (NULL: the file's only study) into s->cfg and s->sid; *found false when
 * there is no such study. */
static bnk_status load_study(bnk_study *s, const char *name, bool *found) {
    sqlite3_stmt *stmt = NULL;
    *found = false;
    bnk_status st = name ? BNK_OK : check_only_study(s);
    if (st == BNK_OK)
        st = bnk__db_prepare(s, &stmt,
                             "SELECT id, name, objective, maximize, space_json, sampler_json, "
                             "pruner_json, train_args FROM studies WHERE ?1 IS NULL OR name = ?1 "
                             "ORDER BY id LIMIT 1",
                             "t", name);
    bool row = false;
    if (st == BNK_OK) st = bnk__db_step(s, stmt, &row);
    if (st == BNK_OK && row) {
        bnk_study_config *c = &s->cfg;
        memset(c, 0, sizeof *c);
        s->sid = sqlite3_column_int64(stmt, 0);
        c->maximize = sqlite3_column_int64(stmt, 3) != 0;
        st = column_fits(s, stmt, 1, c->name, sizeof c->name, "study name");
        if (st == BNK_OK)
            st = column_fits(s, stmt, 2, c->objective, sizeof c->objective, "objective");
        if (st == BNK_OK)
            st = column_fits(s, stmt, 7, c->train_args, sizeof c->train_args, "train_args");
        const char *space = (const char *)sqlite3_column_text(stmt, 4);
        const char *sampler = (const char *)sqlite3_column_text(stmt, 5);
        const char *pruner = (const char *)sqlite3_column_text(stmt, 6);
        if (st == BNK_OK && (!space || !sampler || !pruner))
            st = bnk__fail(BNK_ERR_FORMAT, "%s: study '%s' has a NULL configuration", s->path,
                           c->name);
        if (st == BNK_OK && bnk_space_from_json(&c->space, space) != BNK_OK)
            st = bnk__fail(BNK_ERR_FORMAT, "%s: study '%s': stored %.300s", s->path, c->name,
                           bnk_errmsg());
        if (st == BNK_OK) st = sampler_from_json(s->path, sampler, &c->sampler);
        if (st == BNK_OK) st = pruner_from_json(s->path, pruner, &c->pruner);
        *found = st == BNK_OK;
    }
    return bnk__db_finalize(s, stmt, st);
}

static bnk_status insert_study(bnk_study *s, const bnk_study_config *cfg) {
    char *space = NULL, *sampler = NULL, *pruner = NULL;
    bnk_status st = bnk_space_to_json(&cfg->space, &space);
    if (st == BNK_OK) st = sampler_to_json(&cfg->sampler, &sampler);
    if (st == BNK_OK) st = pruner_to_json(&cfg->pruner, &pruner);
    if (st == BNK_OK)
        st = bnk__db_exec(s, NULL,
                          "INSERT INTO studies(name, objective, maximize, space_json, "
                          "sampler_json, pruner_json, train_args, created) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                          "ttittttd", cfg->name, cfg->objective, (int64_t)cfg->maximize, space,
                          sampler, pruner, cfg->train_args, bnk__study_now());
    if (st == BNK_OK) {
        s->sid = sqlite3_last_insert_rowid(s->db);
        s->cfg = *cfg;
    }
    free(space);
    free(sampler);
    free(pruner);
    return st;
}

bnk_status bnk__study_attach(bnk_study *s, const bnk_study_config *cfg, const char *name) {
    inspection in = {.fresh = true};
    bnk_status st = inspect(s, &in);
    if (st != BNK_OK) return st;
    const bool fresh = in.fresh;
    if (fresh && !cfg)
        return bnk__fail(BNK_ERR_IO, "%s: no study in this file (an empty file)", s->path);
    if (fresh) {
        int rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema_v2_sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK) return bnk__db_fail(s, rc, "creating the schema");
        char version[16];
        snprintf(version, sizeof version, "%d", BNK__STUDY_SCHEMA_VERSION);
        st = bnk__db_exec(s, NULL,
                          "INSERT INTO meta(key, value) VALUES ('app', ?1), ('schema_version', "
                          "?2)",
                          "tt", BNK__STUDY_APP, version);
        if (st != BNK_OK) return st;
    } else if (in.version < BNK__STUDY_SCHEMA_VERSION) {
        st = migrate(s, in.version);
        if (st != BNK_OK) return st;
    }
    bool found;
    st = load_study(s, cfg ? cfg->name : name, &found);
    if (st != BNK_OK) return st;
    if (!found && !cfg && name)
        return bnk__fail(BNK_ERR_IO, "%s: no study named '%s' in this file", s->path, name);
    if (!found && !cfg) return bnk__fail(BNK_ERR_IO, "%s: no study in this file", s->path);
    if (!found) return insert_study(s, cfg);
    char diff[640];
    if (cfg && config_diff(&s->cfg, cfg, diff, sizeof diff))
        return bnk__fail(BNK_ERR_PARAM,
                         "%s: study '%s' exists with other settings: %s (resume with the same "
                         "settings, or pick another study name)",
                         s->path, cfg->name, diff);
    return BNK_OK;
}
