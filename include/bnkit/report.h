/* bnkit/report.h — what a tuning study found: one self-contained HTML page, CSV/JSON exports of
 * every trial, and parameter importance.
 *
 *     bnk_study *study;
 *     bnk_trial *trials;
 *     int64_t n;
 *     if (bnk_study_open_existing(&study, "study.db", NULL) != BNK_OK ||
 *         bnk_study_trials(study, &trials, &n) != BNK_OK) { ... bnk_errmsg() ... }
 *     const bnk_study_config *cfg = bnk_study_config_get(study);
 *     bnk_report_options opt = bnk_report_options_default();
 *     opt.train_command = "bnkit train --bn-momentum 0.95 --lr 0.003";  // optional, see below
 *     bnk_report_write_html("report.html", cfg, trials, n, &opt);
 *     bnk_report_write_csv("trials.csv", cfg, trials, n);
 *     bnk_trials_free(trials, n);
 *     bnk_study_close(study);
 *
 * The HTML page needs no network and runs no script: inline CSS and inline SVG charts
 * (optimisation history with the best value so far, parameter importance, parallel coordinates,
 * one slice plot per parameter, the learning curve of every trial) and a plain-language summary
 * that includes where the trainer flagged overfitting or vanishing gradients and the
 * train/validation gap (from the diagnostics stored by bnk_study_report_ex).
 * Colours come from the Okabe–Ito palette (trial states, which also differ by marker shape) and
 * viridis (objective scale), both readable with colour-vision deficiencies; log-scaled parameters
 * get log axes. Every string taken from the study (names, choices, reasons, workers) is escaped.
 *
 * Importance is PED-ANOVA (Watanabe et al., IJCAI 2023; Optuna's PedAnovaImportanceEvaluator):
 * for each parameter, the Pearson divergence between its distribution among the top-quantile
 * complete trials and among all complete trials, each estimated by a Parzen estimator (Scott's
 * bandwidth) on a grid of at most 50 cells in unit coordinates (log space for log parameters).
 * It answers "which parameters did the good trials agree on", costs O(trials x params x 50), needs
 * no surrogate model, and is well-defined from a handful of trials — what a report wants after
 * 20–200 trials, where fANOVA's random forest is both slower and noisier. A conditional parameter
 * is judged only on the trials where it is active.
 *
 * Outputs are written atomically: a temporary file beside `path`, fsync, rename. */
#ifndef BNKIT_REPORT_H
#define BNKIT_REPORT_H

#include <stdint.h>

#include "bnkit/status.h"
#include "bnkit/tune.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bnk_report_options {
    const char *title;   /* page title; NULL: "Tuning report: <study name>"                 */
    const char *source;  /* shown under the title, e.g. the study file's path; NULL: none   */
    double top_quantile; /* importance and "top trials": this fraction of complete trials; 0.1 */
    /* The best configuration in ready-to-paste forms. The library does not know how a point
     * becomes `bnkit train` options (the CLI does; `bnkit report` fills these), so NULL leaves
     * the line out and the page shows the best trial's parameter values only. */
    const char *train_command; /* "bnkit train --bn-momentum 0.95 ..."                    */
    const char *pytorch_args;  /* "nn.BatchNorm2d(C, eps=0.001, momentum=0.05)"             */
    const char *keras_args;    /* "BatchNormalization(momentum=0.95, epsilon=0.001)"        */
} bnk_report_options;

/* title NULL, source NULL, top_quantile 0.1, no best-configuration lines. */
bnk_report_options bnk_report_options_default(void);

/* Writes the HTML report of trials[0..n-1] (as from bnk_study_trials: number order, curves in
 * losses) of the study configured by cfg. opt NULL: the defaults. n may be 0 (a page that says
 * there is nothing yet). BNK_ERR_NULL, BNK_ERR_PARAM (top_quantile outside (0, 1]), BNK_ERR_NOMEM,
 * BNK_ERR_IO (the file is left untouched). */
bnk_status bnk_report_write_html(const char *path, const bnk_study_config *cfg,
                                 const bnk_trial *trials, int64_t n, const bnk_report_options *opt);

/* One row per trial after a header row: number, id, state, value, one column per parameter
 * (its value; categorical ones by name; empty when inactive), bn.momentum_pytorch when the space
 * has bn.momentum, steps, the intermediate values in the objective's units separated by ';',
 * worker, reason, started, finished (Unix times), seconds, then the trainer's diagnostics of the
 * trial's last epoch (bnk_trial.epochs; empty when none): diag_epoch, train_loss, train_accuracy,
 * val_loss, val_accuracy, vanishing_gradients, overfitting (0/1), min_grad_norm,
 * min_grad_tensor, bn_min_running_var, bn_max_running_var, and overfitting_epochs,
 * vanishing_epochs (how many epochs raised each flag). RFC 4180 quoting. */
bnk_status bnk_report_write_csv(const char *path, const bnk_study_config *cfg,
                                const bnk_trial *trials, int64_t n);

/* {"study", "objective", "maximize", "sampler", "pruner", "space": [{"name", "kind", "log",
 * "low", "high", "choices", "parent", "parent_choices"}], "trials": [{"id", "number", "state",
 * "value", "params": {...}, "intermediate": [...], "epochs": [{"step", "train_loss",
 * "train_accuracy", "val_loss", "val_accuracy", "vanishing_gradients", "overfitting",
 * "min_grad_norm", "min_grad_tensor", "bn_min_running_var", "bn_max_running_var"}], "worker",
 * "reason", "started", "finished"}]}
 * — the trials as `bnkit trials --json` prints them, plus timestamps. NaN becomes null. */
bnk_status bnk_report_write_json(const char *path, const bnk_study_config *cfg,
                                 const bnk_trial *trials, int64_t n);

/* PED-ANOVA importance (see the top of this header) of every parameter of cfg->space, over the
 * COMPLETE trials with a finite loss: importance[i] >= 0 and the assessed ones sum to 1;
 * importance[i] is NaN when parameter i cannot be assessed (fewer than 2 top trials where it is
 * active) and 0 when it has a single possible value. The top trials are those with a loss at or
 * below the ceil(quantile * m)-th smallest of the m complete ones, and at least the best 2.
 * Fewer than 3 complete trials: every entry NaN. ntop (may be NULL) gets the number of top
 * trials (0 when not assessed). importance has room for cfg->space.n values. */
bnk_status bnk_report_importance(const bnk_study_config *cfg, const bnk_trial *trials, int64_t n,
                                 double quantile, double *importance, int64_t *ntop);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_REPORT_H */
