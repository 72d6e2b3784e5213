/* bnkit/tune.h — hyperparameter search: search spaces, samplers, pruners and the SQLite study.
 *
 *     bnk_space space;
 *     bnk_space_init(&space);
 *     bnk_space_add(&space, "bn.momentum=log:0.7:0.999");
 *     bnk_space_add(&space, "bn.normalize_with=cat:batch,running,renorm");
 *     bnk_space_add(&space, "bn.rmax=float:1:5@bn.normalize_with=renorm");   // conditional
 *
 *     bnk_study_config sc = bnk_study_config_default();
 *     sc.space = space;
 *     sc.sampler.kind = BNK_SAMPLER_TPE;
 *     bnk_study *study;
 *     bnk_study_open(&study, "study.db", &sc);        // creates, or resumes the same study
 *     for (;;) {
 *         int64_t id; bnk_point x;
 *         bnk_study_ask(study, "worker-1", 50, &id, &x);   // id < 0: the budget of 50 is used up
 *         if (id < 0) break;
 *         ... train with x, bnk_study_report(study, id, epoch, val_acc, &prune) per epoch
 *             (bnk_study_report_ex also stores the trainer's diagnostics of the epoch) ...
 *         bnk_study_tell(study, id, BNK_TRIAL_COMPLETE, val_acc, NULL);
 *     }
 *     bnk_study_close(study);
 *
 * Values: the study records the objective as given (e.g. validation accuracy) together with its
 * direction; samplers and pruners see `loss` values where lower is better (the study negates
 * maximised objectives before handing them over). */
#ifndef BNKIT_TUNE_H
#define BNKIT_TUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Search space ------------------------------------------------------------------------- */

enum { BNK_SPACE_MAX_PARAMS = 32, BNK_PARAM_MAX_CHOICES = 16 };

typedef enum bnk_param_kind {
    BNK_PARAM_FLOAT, /* real in [lo, hi], uniform or log-uniform                      */
    BNK_PARAM_INT,   /* integer in [lo, hi], uniform or log-uniform                   */
    BNK_PARAM_CAT    /* one of `choices`; a point stores the choice's index           */
} bnk_param_kind;

typedef struct bnk_param {
    char name[48]; /* "bn.momentum", "lr": a `bnkit train` option without "--"        */
    bnk_param_kind kind;
    bool log;      /* FLOAT/INT: sampled uniformly in log(value); needs lo > 0          */
    double lo, hi; /* FLOAT/INT bounds, inclusive                                     */
    int nchoices;  /* CAT */
    char choices[BNK_PARAM_MAX_CHOICES][24];
    int parent;              /* -1, or the index of the CAT parameter this one depends on */
    uint32_t parent_choices; /* bit k set: active when the parent's value is choice k     */
} bnk_param;

typedef struct bnk_space {
    int n;
    bnk_param params[BNK_SPACE_MAX_PARAMS];
} bnk_space;

void bnk_space_init(bnk_space *space);

/* Adds one parameter from its text form:
 *   NAME=float:LO:HI   NAME=log:LO:HI   NAME=int:LO:HI   NAME=logint:LO:HI   NAME=cat:A,B,C
 * optionally followed by @PARENT=V1|V2 (active only when the categorical PARENT, defined
 * earlier, takes one of those values). Errors (BNK_ERR_PARAM) name the definition. */
bnk_status bnk_space_add(bnk_space *space, const char *def);

/* The built-in BN space (docs/tuning.md says why): bn.momentum log in [0.7, 0.999] — i.e.
 * PyTorch's 1 - momentum log-uniform in [1e-3, 0.3] —, bn.eps log [1e-6, 1e-2],
 * bn.normalize_with cat batch,running,renorm, bn.rmax float [1, 5] and bn.dmax float [0, 10]
 * when renorm, lr log [1e-4, 1e-2]. */
bnk_status bnk_space_default_bn(bnk_space *space);

/* Text form of parameter i ("bn.rmax=float:1:5@bn.normalize_with=renorm"), the inverse of
 * bnk_space_add. */
void bnk_space_param_str(const bnk_space *space, int i, char *buf, size_t size);

/* JSON round trip (for the study file): a malloc'd string / a parse with a precise error. */
bnk_status bnk_space_to_json(const bnk_space *space, char **json);
bnk_status bnk_space_from_json(bnk_space *space, const char *json);
bool bnk_space_equal(const bnk_space *a, const bnk_space *b);

/* A point of the space: v[i] is the value of parameter i (a choice index for CAT), NaN when the
 * parameter is inactive (its condition does not hold). */
typedef struct bnk_point {
    double v[BNK_SPACE_MAX_PARAMS];
} bnk_point;

/* Whether parameter i is active at x (its parent is active and has an enabling value). */
bool bnk_space_active(const bnk_space *space, const bnk_point *x, int i);

/* FLOAT/INT value <-> unit coordinate in [0, 1] (log-transformed for log parameters; INT bounds
 * widened by 1/2 on each side so that every integer gets an equal share). */
double bnk_space_to_unit(const bnk_space *space, int i, double value);
double bnk_space_from_unit(const bnk_space *space, int i, double u);

/* Formats x's value of parameter i ("0.9", "renorm", "64"). */
void bnk_space_value_str(const bnk_space *space, int i, double value, char *buf, size_t size);

/* ---- Trials as the samplers and pruners see them ------------------------------------------- */

typedef enum bnk_trial_state {
    BNK_TRIAL_RUNNING,
    BNK_TRIAL_COMPLETE,
    BNK_TRIAL_PRUNED,
    BNK_TRIAL_FAILED
} bnk_trial_state;

/* "running", "complete", "pruned", "failed". */
const char *bnk_trial_state_str(bnk_trial_state state);

/* The trainer's diagnostics of one epoch (step) of a trial, stored beside the intermediate
 * value (bnk_study_report_ex). Definitions of the flags: docs/training.md. NaN where not known;
 * min_grad_tensor "" when no gradient norm was known. */
typedef struct bnk_trial_epoch {
    int64_t step;                      /* 1-based, as reported */
    double train_loss, train_accuracy; /* means over the epoch's batches (training mode) */
    double val_loss, val_accuracy;     /* validation set, inference mode */
    bool vanishing_gradients;          /* the trainer's flags raised this epoch */
    bool overfitting;
    double min_grad_norm;      /* the smallest per-tensor gradient norm (RMS over the epoch) */
    char min_grad_tensor[48];  /* ... and its tensor ("0.dense.weight") */
    double bn_min_running_var; /* over every BN layer's channels; NaN without BN layers */
    double bn_max_running_var;
} bnk_trial_epoch;

/* step 0, every number NaN, flags false, tensor "". */
bnk_trial_epoch bnk_trial_epoch_empty(void);

typedef struct bnk_trial {
    int64_t id;     /* unique in the study file */
    int64_t number; /* 0, 1, 2, ... in the order trials were asked within the study */
    bnk_trial_state state;
    bnk_point x;
    double value;            /* the objective as recorded (NaN unless complete or pruned) */
    double loss;             /* the same, lower is better (negated when maximising); NaN */
    int64_t ncurve;          /* intermediate values reported: steps 1..ncurve */
    double *curve;           /* [ncurve] losses (lower is better), NaN for a missing step */
    int64_t nepochs;         /* steps with the trainer's diagnostics (bnk_study_trials only) */
    bnk_trial_epoch *epochs; /* [nepochs] in step order; NULL when none */
    char worker[64];         /* who ran it */
    char reason[160];        /* failure reason ("diverged at step 120", "worker died") */
    double started, finished, heartbeat; /* Unix times; 0 when not set */
} bnk_trial;

/* ---- Samplers ------------------------------------------------------------------------------ */

typedef enum bnk_sampler_kind {
    BNK_SAMPLER_GRID,   /* full factorial; FLOAT/INT ranges cut into grid_points values   */
    BNK_SAMPLER_RANDOM, /* independent uniform (in unit coordinates)                       */
    BNK_SAMPLER_SOBOL,  /* scrambled Sobol quasi-random sequence                           */
    BNK_SAMPLER_TPE,    /* Optuna's TPE defaults                                           */
    BNK_SAMPLER_GP      /* Gaussian-process Bayesian optimisation, log EI                   */
} bnk_sampler_kind;

typedef struct bnk_sampler_config {
    bnk_sampler_kind kind;
    uint64_t seed;
    int grid_points;     /* GRID: values per FLOAT/INT range; 5                            */
    int n_startup;       /* TPE, GP: random trials before the model is used; 10            */
    int n_candidates;    /* TPE: candidates drawn from l(x); 24                            */
    double prior_weight; /* TPE: 1                                                         */
    bool multivariate;   /* TPE: joint (multivariate) instead of per-parameter; false      */
    bool constant_liar;  /* TPE, GP: running trials count as bad (TPE) / best (GP); true    */
} bnk_sampler_config;

bnk_sampler_config bnk_sampler_config_default(bnk_sampler_kind kind);

/* "grid", "random", "sobol", "tpe", "gp" <-> kind. */
const char *bnk_sampler_kind_str(bnk_sampler_kind kind);
bnk_status bnk_sampler_kind_parse(const char *name, bnk_sampler_kind *kind);

/* Suggests the point for trial `number` given every trial of the study so far (`history`,
 * RUNNING ones included — they are the pending points of other workers). Deterministic: the
 * same config, space, history and number give the same point. Samplers are stateless so that
 * any process can suggest for a shared study.
 * GRID returns BNK_ERR_SIZE ("grid exhausted") once `number` passes the grid's size; it
 * enumerates points in a fixed order, trial k getting grid point k. */
bnk_status bnk_sampler_suggest(const bnk_sampler_config *cfg, const bnk_space *space,
                               const bnk_trial *history, int64_t nhistory, int64_t number,
                               bnk_point *out);

/* Number of points of the grid (GRID's budget), or -1 if it exceeds INT64_MAX. */
int64_t bnk_sampler_grid_size(const bnk_sampler_config *cfg, const bnk_space *space);

/* ---- Pruners ------------------------------------------------------------------------------- */

typedef enum bnk_pruner_kind {
    BNK_PRUNER_NONE,
    BNK_PRUNER_MEDIAN,
    BNK_PRUNER_ASHA
} bnk_pruner_kind;

typedef struct bnk_pruner_config {
    bnk_pruner_kind kind;
    int n_startup;        /* MEDIAN: completed trials needed before pruning; 5            */
    int64_t n_warmup;     /* MEDIAN: steps before a trial can be pruned; 1                */
    double percentile;    /* MEDIAN: the bar, a percentile of the peers' losses; 50       */
    int reduction;        /* ASHA: reduction factor eta; 3                                 */
    int64_t min_resource; /* ASHA: steps at the first rung; 1                              */
} bnk_pruner_config;

bnk_pruner_config bnk_pruner_config_default(bnk_pruner_kind kind);
const char *bnk_pruner_kind_str(bnk_pruner_kind kind);
bnk_status bnk_pruner_kind_parse(const char *name, bnk_pruner_kind *kind);

/* The pruner as logs and reports name it: "median", "percentile-75" (the median rule with a
 * percentile other than 50), "asha" or "none". */
void bnk_pruner_describe(const bnk_pruner_config *cfg, char *buf, size_t size);

/* Whether `trial` (its curve filled up to `step`) should stop now, judged against the other
 * trials in `history` (which may contain `trial` itself; it is recognised by id). MEDIAN: after
 * n_warmup steps and n_startup completed trials, its best loss so far is worse than the
 * `percentile`-th percentile of the losses that all other trials (complete, pruned, running,
 * failed) reported at the same step — Optuna's PercentilePruner, of which its MedianPruner is
 * the case 50, but Optuna takes completed trials only, which biases the bar upwards as trials
 * are pruned (docs/tuning.md). The percentile interpolates linearly between order statistics
 * (NumPy's default, as Optuna uses): 50 is the median, the midpoint for an even count. Lower
 * prunes more (25: keep roughly the best quarter), higher prunes less (75: stop only the worst
 * quarter); 100 stops only a trial worse than every peer. A percentile outside (0, 100] never
 * prunes here; bnk_study_open refuses it. ASHA: at rung steps
 * min_resource*eta^k, it is not among the best max(1, floor(m/eta)) of the m trials (itself
 * included) that reported at that rung. A NaN/Inf loss at `step` always prunes. */
bool bnk_pruner_should_prune(const bnk_pruner_config *cfg, const bnk_trial *history,
                             int64_t nhistory, const bnk_trial *trial, int64_t step);

/* ---- Study storage (SQLite) --------------------------------------------------------------- */

typedef struct bnk_study_config {
    char name[64];      /* the study's name inside the file; "default"                    */
    char objective[32]; /* "val_accuracy"                                                 */
    bool maximize;      /* true                                                           */
    bnk_space space;
    bnk_sampler_config sampler;
    bnk_pruner_config pruner;
    char train_args[1024]; /* the fixed `bnkit train` options of every trial (resume reuses them) */
} bnk_study_config;

/* name "default", objective "val_accuracy" maximised, the built-in BN space
 * (bnk_space_default_bn), TPE and MEDIAN with their defaults, no train_args. */
bnk_study_config bnk_study_config_default(void);

/* An open study: one SQLite connection. Use a handle from one thread at a time (open one per
 * thread), and never across fork(): open it again in the child. */
typedef struct bnk_study bnk_study;

/* Opens (creating if needed) the study file at path and the study cfg->name in it. If the
 * study exists, its stored configuration must equal cfg in every part (objective, maximize,
 * space, every sampler and pruner field, train_args): BNK_ERR_PARAM otherwise, naming the first
 * difference. cfg NULL is bnk_study_open_existing(out, path, NULL). A missing or empty file (or
 * an SQLite file without tables) becomes a new study file; a file that is not a bnkit study (not
 * SQLite, another application's schema, a newer schema version) is refused with BNK_ERR_FORMAT
 * and never modified: it is inspected through a read-only connection before anything writes.
 * Concurrency: WAL mode, a busy timeout, and every transaction retried with randomised
 * exponential backoff for up to 2 minutes, so several processes can share one file and
 * "database is locked" never reaches the caller (WAL needs a local file system, not NFS).
 * Durability: synchronous=FULL, so a committed ask/report/tell survives a process kill and a
 * power cut alike. *out is NULL on failure (details in bnk_errmsg()). */
bnk_status bnk_study_open(bnk_study **out, const char *path, const bnk_study_config *cfg);
void bnk_study_close(bnk_study *study); /* NULL is harmless */

/* Opens an existing study with its stored configuration: the study `name`, or, when name is
 * NULL, the file's only study (BNK_ERR_PARAM if it holds several, naming them). BNK_ERR_IO when
 * there is no such study; foreign files as in bnk_study_open. */
bnk_status bnk_study_open_existing(bnk_study **out, const char *path, const char *name);

const bnk_study_config *bnk_study_config_get(const bnk_study *study);

/* Starts a trial: in one write transaction, counts the trials that use the budget (every trial
 * except those failed with reason "worker died", which are re-issued), and if fewer than
 * `budget`, runs the sampler on the whole history and inserts a RUNNING trial with the
 * suggested point, numbered max(number) + 1 (a re-issued trial gets a new number). *id = -1
 * (and BNK_OK) when the budget is used up or the grid is exhausted. Because the sampler runs
 * inside the write transaction, concurrent workers never get the same grid point nor suggestions
 * from a history that misses each other's running trials. x (may be NULL) gets the point, NaN
 * for inactive parameters. budget < 0 is BNK_ERR_PARAM; worker is truncated to 63 bytes. */
bnk_status bnk_study_ask(bnk_study *study, const char *worker, int64_t budget, int64_t *id,
                         bnk_point *x);

/* Records the objective after `step` (1-based, at most 2^24) steps, replacing an earlier value
 * for the same step, and refreshes the heartbeat; the trial must be RUNNING (BNK_ERR_PARAM
 * otherwise). A NaN value is stored as a missing step (NaN in the curve). *prune (may be NULL)
 * tells whether the pruner says stop; it is computed after the write commits, from a snapshot
 * of the whole history (a few ms at 500 trials of 20 steps; nothing to read with pruner NONE). */
bnk_status bnk_study_report(bnk_study *study, int64_t id, int64_t step, double value, bool *prune);

/* bnk_study_report plus the trainer's diagnostics of that step (diag NULL: none), written in the
 * same transaction as the value and replacing earlier diagnostics of the same step;
 * diag->step is ignored (step is the step). The study keeps them for the report
 * (bnk_trial.epochs); samplers and pruners do not read them. */
bnk_status bnk_study_report_ex(bnk_study *study, int64_t id, int64_t step, double value,
                               const bnk_trial_epoch *diag, bool *prune);

/* Finishes a trial: COMPLETE with its value, PRUNED (value: its last reported one; NaN takes
 * the value of its last reported step), or FAILED with a reason (value ignored; reason
 * truncated to 159 bytes). A NaN/Inf value for COMPLETE is recorded as FAILED ("objective is
 * NaN" / "objective is inf") and the call still returns BNK_OK. Telling a trial that is not
 * RUNNING, e.g. one reaped as "worker died", is BNK_ERR_PARAM. */
bnk_status bnk_study_tell(bnk_study *study, int64_t id, bnk_trial_state state, double value,
                          const char *reason);

/* Refreshes a RUNNING trial's heartbeat (workers call it at least every few seconds). */
bnk_status bnk_study_heartbeat(bnk_study *study, int64_t id);

/* Marks RUNNING trials whose heartbeat is older than stale_seconds as FAILED "worker died"
 * (their budget is re-issued); stale_seconds 0 reaps every RUNNING trial (for a resume when no
 * other worker is alive). *reaped (may be NULL) gets the count. */
bnk_status bnk_study_reap(bnk_study *study, double stale_seconds, int64_t *reaped);

/* Every trial of the study, in number order, with points, curves (losses) and the trainer's
 * per-epoch diagnostics where reported, from one consistent snapshot. Free with bnk_trials_free
 * (NULL, 0 when there are none). */
bnk_status bnk_study_trials(bnk_study *study, bnk_trial **trials, int64_t *count);
void bnk_trials_free(bnk_trial *trials, int64_t count);

/* The best COMPLETE trial: lowest loss, ties to the lowest number (*found false and best->id
 * -1 when none). Its curve is not loaded: best->curve is NULL and best->ncurve 0, so there is
 * nothing to free; nor are its diagnostics (epochs NULL, nepochs 0). */
bnk_status bnk_study_best(bnk_study *study, bnk_trial *best, bool *found);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_TUNE_H */
