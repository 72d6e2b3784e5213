/* PED-ANOVA parameter importance (Watanabe, Bansal, Hutter: "PED-ANOVA: Efficiently Quantifying
 * Hyperparameter Importance in Arbitrary Subspaces", IJCAI 2023), following Optuna's
 * PedAnovaImportanceEvaluator with its defaults: 50 grid cells, prior weight 1, at least 2 top
 * trials, importance measured on the study's own trials ("local").
 *
 * For parameter i:
 *   1. every complete trial where i is active gives a cell index: categorical parameters their
 *      choice; FLOAT/INT parameters the nearest of G points spread evenly over [lo, hi] (in log
 *      space for log parameters), G = 50 for FLOAT, min(50, K) for an INT of K integers and
 *      min(50, ceil(log2(K)) + 1) for a log INT;
 *   2. two Parzen estimators over the cells, one from the top trials and one from all of them:
 *      numeric — a mixture of Gaussians discretised to the cells, one per occupied cell weighted
 *      by its count, bandwidth by Scott's rule 1.059 min(IQR/1.34, sd) m^-1/5 (at least
 *      0.5/1.64 cells), plus a prior component (centre of the grid, sigma G) of weight 1;
 *      categorical — per occupied choice a kernel putting mass 1 + 1/(k+1) on it and 1/(k+1) on
 *      every choice (k occupied choices), plus a uniform prior, weighted likewise;
 *   3. D_i = sum over cells of p_all * (p_top / p_all - 1)^2, the Pearson divergence.
 * The importances are D_i / sum_j D_j. A parameter the good trials did not agree on has
 * p_top close to p_all and D close to 0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/report.h"
#include "core/internal.h"

enum { PED_STEPS = 50, PED_MIN_TOP = 2 };
_Static_assert((int)BNK_PARAM_MAX_CHOICES <= (int)PED_STEPS,
               "a categorical parameter fits the grid");
static const double PED_PRIOR_WEIGHT = 1.0;

/* Number of grid cells of parameter p. */
static int grid_size(const bnk_param *p) {
    if (p->kind == BNK_PARAM_CAT) return p->nchoices;
    if (p->kind == BNK_PARAM_INT) {
        double k = p->hi - p->lo + 1;
        if (p->log) k = ceil(log2(k)) + 1;
        return k < PED_STEPS ? (int)k : PED_STEPS;
    }
    return p->hi > p->lo ? PED_STEPS : 1;
}

/* Optuna's rounding: the nearest of g points spread evenly over [lo, hi] (log space for log
 * parameters), halves rounded down. */
static int cell_of(const bnk_param *p, double v, int g) {
    int c;
    if (p->kind == BNK_PARAM_CAT) {
        c = (int)v;
    } else {
        const double pos = p->log ? (log(v) - log(p->lo)) / (log(p->hi) - log(p->lo))
                                  : (v - p->lo) / (p->hi - p->lo);
        c = (int)ceil(pos * (g - 1) - 0.5);
    }
    return c < 0 ? 0 : c >= g ? g - 1 : c;
}

static double norm_cdf(double z) {
    return 0.5 * erfc(-z / sqrt(2.0));
}

/* Adds w * (a Gaussian N(mu, sigma) discretised to cells 0..g-1 and truncated to
 * [-0.5, g-0.5]) to pdf[g]. */
static void add_discrete_normal(double *pdf, int g, double mu, double sigma, double w) {
    double total = norm_cdf((g - 0.5 - mu) / sigma) - norm_cdf((-0.5 - mu) / sigma);
    if (!(total > 0)) total = 1e-300;
    for (int k = 0; k < g; k++) {
        double mass = norm_cdf((k + 0.5 - mu) / sigma) - norm_cdf((k - 0.5 - mu) / sigma);
        pdf[k] += w * mass / total;
    }
}

/* The Parzen estimate pdf[g] from counts[g] (m = their sum > 0). */
static void parzen(double *pdf, const double *counts, int g, bool categorical) {
    double m = 0;
    int occupied = 0;
    for (int k = 0; k < g; k++) {
        m += counts[k];
        occupied += counts[k] > 0;
        pdf[k] = 0;
    }
    const double wsum = m + PED_PRIOR_WEIGHT;
    if (categorical) {
        /* kernel of an occupied choice c: (prior/(k+1) + [j == c]) normalised over j */
        const double fill = PED_PRIOR_WEIGHT / (occupied + 1);
        const double row = 1.0 + fill * g;
        for (int c = 0; c < g; c++) {
            if (counts[c] <= 0) continue;
            const double w = counts[c] / wsum;
            for (int j = 0; j < g; j++) pdf[j] += w * (fill + (j == c)) / row;
        }
        for (int j = 0; j < g; j++) pdf[j] += PED_PRIOR_WEIGHT / wsum / g;
        return;
    }
    /* Scott's rule on the cell indices, as Optuna's _ScottParzenEstimator */
    double mean = 0;
    for (int k = 0; k < g; k++) mean += k * counts[k] / m;
    double ss = 0;
    for (int k = 0; k < g; k++) ss += (k - mean) * (k - mean) * counts[k];
    double sd = sqrt(ss / (m - 1 > 1 ? m - 1 : 1));
    /* quartiles: the first occupied cell whose cumulative count reaches floor(m/4), and the
     * first whose cumulative count exceeds floor(3m/4) */
    const double q25 = floor(m / 4), q75 = floor(3 * m / 4);
    int lo_cell = -1, hi_cell = -1, last = 0;
    double cum = 0;
    for (int k = 0; k < g; k++) {
        if (counts[k] <= 0) continue;
        cum += counts[k];
        last = k;
        if (lo_cell < 0 && cum >= q25) lo_cell = k;
        if (hi_cell < 0 && cum > q75) hi_cell = k;
    }
    if (lo_cell < 0) lo_cell = last;
    if (hi_cell < 0) hi_cell = last;
    const double iqr = hi_cell - lo_cell;
    double sigma = 1.059 * fmin(iqr / 1.34, sd) * pow(m, -0.2);
    if (!(sigma >= 0.5 / 1.64)) sigma = 0.5 / 1.64;
    for (int k = 0; k < g; k++)
        if (counts[k] > 0) add_discrete_normal(pdf, g, k, sigma, counts[k] / wsum);
    add_discrete_normal(pdf, g, 0.5 * (g - 1), g, PED_PRIOR_WEIGHT / wsum);
}

static int by_loss(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bnk_status bnk_report_importance(const bnk_study_config *cfg, const bnk_trial *trials, int64_t n,
                                 double quantile, double *importance, int64_t *ntop) {
    if (!cfg || !importance || (n > 0 && !trials))
        return bnk__fail(BNK_ERR_NULL, "bnk_report_importance: cfg, trials or importance is NULL");
    if (!(quantile > 0 && quantile <= 1))
        return bnk__fail(BNK_ERR_PARAM, "bnk_report_importance: quantile must be in (0, 1], got %g",
                         quantile);
    const bnk_space *s = &cfg->space;
    for (int i = 0; i < s->n; i++) importance[i] = NAN;
    if (ntop) *ntop = 0;

    /* the complete trials and the loss cut-off of the top ones (Optuna's _QuantileFilter) */
    int64_t m = 0;
    for (int64_t t = 0; t < n; t++)
        m += trials[t].state == BNK_TRIAL_COMPLETE && isfinite(trials[t].loss);
    if (m < PED_MIN_TOP + 1) return BNK_OK;
    double *losses = malloc((size_t)m * sizeof *losses);
    if (!losses) return bnk__fail(BNK_ERR_NOMEM, "bnk_report_importance: out of memory");
    m = 0;
    for (int64_t t = 0; t < n; t++)
        if (trials[t].state == BNK_TRIAL_COMPLETE && isfinite(trials[t].loss))
            losses[m++] = trials[t].loss;
    qsort(losses, (size_t)m, sizeof *losses, by_loss);
    int64_t q = (int64_t)ceil(quantile * (double)m) - 1;
    if (q < 0) q = 0;
    const double cutoff = fmax(losses[PED_MIN_TOP - 1], losses[q]);
    free(losses);
    int64_t top = 0;
    for (int64_t t = 0; t < n; t++)
        top += trials[t].state == BNK_TRIAL_COMPLETE && isfinite(trials[t].loss) &&
               trials[t].loss <= cutoff;
    if (ntop) *ntop = top;

    double sum = 0;
    int assessed = 0;
    for (int i = 0; i < s->n; i++) {
        const bnk_param *p = &s->params[i];
        const int g = grid_size(p);
        if (g <= 1) {
            importance[i] = 0;
            continue;
        }
        double c_all[PED_STEPS] = {0};
        double c_top[sizeof c_all / sizeof c_all[0]] = {0};
        double n_top = 0;
        for (int64_t t = 0; t < n; t++) {
            const bnk_trial *tr = &trials[t];
            if (tr->state != BNK_TRIAL_COMPLETE || !isfinite(tr->loss) || isnan(tr->x.v[i]) ||
                !bnk_space_active(s, &tr->x, i))
                continue;
            int c = cell_of(p, tr->x.v[i], g);
            c_all[c] += 1;
            if (tr->loss <= cutoff) {
                c_top[c] += 1;
                n_top += 1;
            }
        }
        if (n_top < PED_MIN_TOP) continue; /* NaN: not assessed */
        double p_all[sizeof c_all / sizeof c_all[0]], p_top[sizeof c_all / sizeof c_all[0]];
        parzen(p_all, c_all, g, p->kind == BNK_PARAM_CAT);
        parzen(p_top, c_top, g, p->kind == BNK_PARAM_CAT);
        double d = 0;
        for (int k = 0; k < g; k++) {
            const double a = p_all[k] + 1e-12, b = p_top[k] + 1e-12;
            d += a * (b / a - 1) * (b / a - 1);
        }
        importance[i] = d;
        sum += d;
        assessed++;
    }
    for (int i = 0; i < s->n; i++) {
        if (isnan(importance[i]) || grid_size(&s->params[i]) <= 1) continue;
        importance[i] = sum > 0 ? importance[i] / sum : 1.0 / assessed;
    }
    return BNK_OK;
}
