/* Pruners: the percentile rule (the median by default) and asynchronous successive halving
 * (ASHA), on loss curves (lower is better) reported once per step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/tune.h"
#include "core/internal.h"

bnk_pruner_config bnk_pruner_config_default(bnk_pruner_kind kind) {
    bnk_pruner_config c = {
        .kind = kind,
        .n_startup = 5,
        .n_warmup = 1,
        .percentile = 50,
        .reduction = 3,
        .min_resource = 1,
    };
    return c;
}

static const char *const PRUNER_NAMES[] = {"none", "median", "asha"};

const char *bnk_pruner_kind_str(bnk_pruner_kind kind) {
    return kind >= BNK_PRUNER_NONE && kind <= BNK_PRUNER_ASHA ? PRUNER_NAMES[kind] : "unknown";
}

bnk_status bnk_pruner_kind_parse(const char *name, bnk_pruner_kind *kind) {
    for (int k = BNK_PRUNER_NONE; k <= BNK_PRUNER_ASHA; k++)
        if (name && strcmp(name, PRUNER_NAMES[k]) == 0) {
            *kind = (bnk_pruner_kind)k;
            return BNK_OK;
        }
    return bnk__fail(BNK_ERR_PARAM, "unknown pruner '%s' (none, median, asha)",
                     name ? name : "(null)");
}

void bnk_pruner_describe(const bnk_pruner_config *cfg, char *buf, size_t size) {
    if (cfg->kind == BNK_PRUNER_MEDIAN && cfg->percentile != 50.0)
        snprintf(buf, size, "percentile-%g", cfg->percentile);
    else
        snprintf(buf, size, "%s", bnk_pruner_kind_str(cfg->kind));
}

/* The loss a trial reported at `step`, NaN when it has none there. */
static double loss_at(const bnk_trial *t, int64_t step) {
    return step >= 1 && step <= t->ncurve ? t->curve[step - 1] : NAN;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (0 < p <= 100) of sorted[0..k-1], k >= 1: linear interpolation between
 * the order statistics at rank h = (k-1)*p/100, NumPy's default method (Optuna's
 * PercentilePruner calls nanpercentile). Written (1-f)*lo + f*hi so that p = 50 gives exactly
 * the old median: the middle value for odd k (f = 0), and 0.5*lo + 0.5*hi, which rounds as
 * 0.5*(lo + hi) does, for even k. */
static double percentile_sorted(const double *sorted, int64_t k, double p) {
    const double h = (double)(k - 1) * p / 100;
    int64_t lo = (int64_t)floor(h);
    if (lo >= k - 1) return sorted[k - 1];
    const double f = h - (double)lo;
    return f == 0 ? sorted[lo] : (1 - f) * sorted[lo] + f * sorted[lo + 1];
}

/* Percentile rule (the median at p = 50): after n_warmup steps and n_startup completed trials,
 * prune when the trial's best loss so far is worse than the p-th percentile of the other trials'
 * losses at this step. The peers are every trial that reported at this step — complete, pruned,
 * running or failed — not only the completed ones as in Optuna's MedianPruner and
 * PercentilePruner: with completed trials only, each pruned trial leaves the reference and the
 * bar ratchets up to the survivors' level (docs/tuning.md has the measurement: 80 % of trials
 * pruned, the best configuration lost in some orders). */
static bool percentile_prune(const bnk_pruner_config *cfg, const bnk_trial *history, int64_t n,
                             const bnk_trial *trial, int64_t step, double *scratch) {
    if (step <= cfg->n_warmup) return false;
    if (!(cfg->percentile > 0 && cfg->percentile <= 100)) return false; /* bnk_study_open refuses */
    int64_t completed = 0, k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (history[i].id == trial->id) continue;
        completed += history[i].state == BNK_TRIAL_COMPLETE;
        double v = loss_at(&history[i], step);
        if (isfinite(v)) scratch[k++] = v;
    }
    if (completed < cfg->n_startup || k == 0) return false;
    qsort(scratch, (size_t)k, sizeof *scratch, cmp_double);
    const double bar = percentile_sorted(scratch, k, cfg->percentile);
    double best = INFINITY;
    for (int64_t s = 1; s <= step; s++) best = fmin(best, loss_at(trial, s));
    return best > bar;
}

/* ASHA: rungs at min_resource * eta^r. At a rung, the trial goes on only if its loss is within
 * the best floor(m/eta) of the m trials (itself included) that reported at that rung, and at
 * least the best one always goes on (Optuna's SuccessiveHalvingPruner rule). */
static bool asha_prune(const bnk_pruner_config *cfg, const bnk_trial *history, int64_t n,
                       const bnk_trial *trial, int64_t step, double *scratch) {
    int64_t rung = cfg->min_resource;
    while (rung < step && rung <= INT64_MAX / cfg->reduction) rung *= cfg->reduction;
    if (rung != step) return false;
    const double mine = loss_at(trial, step);
    int64_t m = 0;
    scratch[m++] = mine;
    for (int64_t i = 0; i < n; i++) {
        if (history[i].id == trial->id || history[i].state == BNK_TRIAL_FAILED) continue;
        double v = loss_at(&history[i], step);
        if (isfinite(v)) scratch[m++] = v;
    }
    qsort(scratch, (size_t)m, sizeof *scratch, cmp_double);
    int64_t keep = m / cfg->reduction;
    if (keep < 1) keep = 1;
    return mine > scratch[keep - 1];
}

bool bnk_pruner_should_prune(const bnk_pruner_config *cfg, const bnk_trial *history,
                             int64_t nhistory, const bnk_trial *trial, int64_t step) {
    if (!cfg || !trial || cfg->kind == BNK_PRUNER_NONE || step < 1) return false;
    const double now = loss_at(trial, step);
    if (!isfinite(now)) return true; /* a NaN/Inf curve never recovers: stop at once */
    double *scratch = malloc((size_t)(nhistory + 1) * sizeof(double));
    if (!scratch) return false; /* out of memory: keep training rather than guess */
    bool prune = cfg->kind == BNK_PRUNER_MEDIAN
                     ? percentile_prune(cfg, history, nhistory, trial, step, scratch)
                     : asha_prune(cfg, history, nhistory, trial, step, scratch);
    free(scratch);
    return prune;
}
