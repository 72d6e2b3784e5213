/* The report's reading of the trainer's per-epoch diagnostics (bnk_trial.epochs, stored by
 * bnk_study_report_ex): which trials the trainer flagged as overfitting or with vanishing
 * gradients, and the train/validation gap. Flag definitions: docs/training.md. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_internal.h"

enum { LIST_MAX = 10, DETAIL_MAX = 3 };

/* The last epoch of t with finite training and validation accuracy, or NULL. */
static const bnk_trial_epoch *last_with_gap(const bnk_trial *t) {
    for (int64_t j = t->nepochs - 1; j >= 0; j--)
        if (isfinite(t->epochs[j].train_accuracy) && isfinite(t->epochs[j].val_accuracy))
            return &t->epochs[j];
    return NULL;
}

/* The first epoch of t that raised the flag (overfitting or vanishing), or NULL. */
static const bnk_trial_epoch *first_flagged(const bnk_trial *t, bool overfit) {
    for (int64_t j = 0; j < t->nepochs; j++)
        if (overfit ? t->epochs[j].overfitting : t->epochs[j].vanishing_gradients)
            return &t->epochs[j];
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bnk__epoch_stats bnk__epoch_diagnostics(const bnk__report *r) {
    bnk__epoch_stats es;
    memset(&es, 0, sizeof es);
    es.median_gap = es.best_gap = es.bn_lo = es.bn_hi = NAN;
    es.best_epoch = NULL;
    double *gaps = malloc((size_t)(r->n + 1) * sizeof *gaps);
    int64_t ngaps = 0;
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        if (t->nepochs <= 0) continue;
        es.with_diag++;
        const bnk_trial_epoch *v = first_flagged(t, false);
        if (v) {
            if (es.vanished < LIST_MAX) {
                es.vanished_list[es.vanished] = t->number;
                es.vanished_at[es.vanished] = v;
            }
            es.vanished++;
        }
        const bnk_trial_epoch *last = &t->epochs[t->nepochs - 1];
        if (isfinite(last->bn_min_running_var)) es.bn_lo = fmin(es.bn_lo, last->bn_min_running_var);
        if (isfinite(last->bn_max_running_var)) es.bn_hi = fmax(es.bn_hi, last->bn_max_running_var);
        if (t->state != BNK_TRIAL_COMPLETE) continue;
        es.complete++;
        const bnk_trial_epoch *o = first_flagged(t, true);
        if (o) {
            if (es.overfit < LIST_MAX) {
                es.overfit_list[es.overfit] = t->number;
                es.overfit_at[es.overfit] = o;
            }
            es.overfit++;
        }
        const bnk_trial_epoch *g = last_with_gap(t);
        if (g && gaps) gaps[ngaps++] = g->train_accuracy - g->val_accuracy;
        if (k == r->best && g) {
            es.best_gap = g->train_accuracy - g->val_accuracy;
            es.best_epoch = g;
        }
    }
    if (gaps && ngaps > 0) {
        qsort(gaps, (size_t)ngaps, sizeof *gaps, cmp_double);
        es.median_gap = ngaps % 2 ? gaps[ngaps / 2] : 0.5 * (gaps[ngaps / 2 - 1] + gaps[ngaps / 2]);
    }
    free(gaps);
    return es;
}

/* "#4, #9, #11" (and " …" past LIST_MAX). */
static void numbers(bnk__buf *b, const int64_t *list, int64_t count) {
    for (int64_t k = 0; k < count && k < LIST_MAX; k++)
        bnk__buf_printf(b, "%s#%lld", k ? ", " : "", (long long)list[k]);
    if (count > LIST_MAX) bnk__buf_printf(b, ", … (%lld in all)", (long long)count);
}

/* "#7 (tensor 0.dense.weight, norm 1e-9 at epoch 3)" for the first DETAIL_MAX, numbers after. */
static void vanished_detail(bnk__buf *b, const bnk__epoch_stats *es) {
    for (int64_t k = 0; k < es->vanished && k < LIST_MAX; k++) {
        const bnk_trial_epoch *e = es->vanished_at[k];
        bnk__buf_printf(b, "%s#%lld", k ? ", " : "", (long long)es->vanished_list[k]);
        if (k >= DETAIL_MAX) continue;
        char norm[32];
        bnk__fmt_num(norm, sizeof norm, e->min_grad_norm);
        bnk__buf_puts(b, " (");
        if (e->min_grad_tensor[0]) {
            bnk__buf_puts(b, "tensor ");
            bnk__buf_escape(b, e->min_grad_tensor);
            bnk__buf_printf(b, ", norm %s ", norm);
        }
        bnk__buf_printf(b, "at epoch %lld)", (long long)e->step);
    }
    if (es->vanished > LIST_MAX) bnk__buf_printf(b, ", … (%lld in all)", (long long)es->vanished);
}

void bnk__epoch_summary(bnk__buf *b, const bnk__report *r, const bnk__epoch_stats *es) {
    bnk__buf_printf(b, "<li>Diagnostics (the trainer's flags, stored for %lld of %lld trials): ",
                    (long long)es->with_diag, (long long)r->n);
    if (es->complete > 0) {
        bnk__buf_printf(b, "%lld of %lld complete trial%s overfitted", (long long)es->overfit,
                        (long long)es->complete, es->complete == 1 ? "" : "s");
        if (es->overfit > 0) {
            bnk__buf_puts(b, " (the train/validation accuracy gap passed 3 points and grew two "
                             "epochs in a row; see trials ");
            numbers(b, es->overfit_list, es->overfit);
            bnk__buf_puts(b, ")");
        }
        bnk__buf_puts(b, "; ");
    } else {
        bnk__buf_puts(b, "no complete trial with diagnostics yet; ");
    }
    if (es->vanished == 0) {
        bnk__buf_puts(b, "gradients never vanished.");
    } else {
        bnk__buf_printf(b, "gradients vanished in %s", es->vanished == 1 ? "trial " : "");
        if (es->vanished > 1) bnk__buf_printf(b, "%lld trials: ", (long long)es->vanished);
        vanished_detail(b, es);
        bnk__buf_puts(b, ".");
    }
    if (es->best_epoch)
        bnk__buf_printf(b,
                        " The best trial ended with a train − validation accuracy gap of %.1f "
                        "points (training %.4g, validation %.4g at epoch %lld)",
                        100 * es->best_gap, es->best_epoch->train_accuracy,
                        es->best_epoch->val_accuracy, (long long)es->best_epoch->step);
    if (es->best_epoch && isfinite(es->median_gap))
        bnk__buf_printf(b, "; the median complete trial's was %.1f points.", 100 * es->median_gap);
    else if (es->best_epoch)
        bnk__buf_puts(b, ".");
    bnk__buf_puts(b, "</li>");
}

/* A number cell: "–" when not finite. */
static void cell(bnk__buf *b, double v) {
    if (isfinite(v))
        bnk__buf_printf(b, "<td class=\"n\">%.4g</td>", v);
    else
        bnk__buf_puts(b, "<td class=\"n\">–</td>");
}

void bnk__epoch_section(bnk__buf *b, const bnk__report *r, const bnk__epoch_stats *es) {
    bnk__buf_printf(b,
                    "<li><b>Overfitting (trainer's flag: the train/validation accuracy gap "
                    "exceeded 3 points and grew two epochs in a row):</b> %lld of %lld complete "
                    "trials with diagnostics",
                    (long long)es->overfit, (long long)es->complete);
    for (int64_t k = 0; k < es->overfit && k < LIST_MAX; k++)
        bnk__buf_printf(b, "%s#%lld from epoch %lld", k ? ", " : " (",
                        (long long)es->overfit_list[k], (long long)es->overfit_at[k]->step);
    if (es->overfit > LIST_MAX) bnk__buf_puts(b, ", …");
    bnk__buf_puts(b, es->overfit > 0 ? ").</li>" : ".</li>");
    bnk__buf_printf(b,
                    "<li><b>Vanishing gradients (trainer's flag: the first weight tensor's "
                    "gradient norm fell below 1/1000 of the last one's, or a weight tensor's "
                    "below 1e-8):</b> %lld of %lld trials with diagnostics",
                    (long long)es->vanished, (long long)es->with_diag);
    if (es->vanished > 0) {
        bnk__buf_puts(b, ": ");
        vanished_detail(b, es);
    }
    bnk__buf_puts(b, ".</li>");
    if (isfinite(es->bn_lo))
        bnk__buf_printf(b,
                        "<li><b>BN running variance</b> at the trials' last epochs ranged from "
                        "%.3g to %.3g.</li>",
                        es->bn_lo, es->bn_hi);
    if (r->best < 0 || r->trials[r->best].nepochs <= 0) return;
    /* the best trial epoch by epoch: where its train and validation numbers parted */
    const bnk_trial *t = &r->trials[r->best];
    bnk__buf_printf(b,
                    "<li><b>The best trial (#%lld) by epoch:</b><table><tr><th>epoch</th>"
                    "<th>train loss</th><th>val loss</th><th>train acc.</th><th>val acc.</th>"
                    "<th>gap (points)</th><th>smallest gradient norm</th><th>flags</th></tr>",
                    (long long)t->number);
    for (int64_t j = 0; j < t->nepochs; j++) {
        const bnk_trial_epoch *e = &t->epochs[j];
        bnk__buf_printf(b, "<tr><td class=\"n\">%lld</td>", (long long)e->step);
        cell(b, e->train_loss);
        cell(b, e->val_loss);
        cell(b, e->train_accuracy);
        cell(b, e->val_accuracy);
        cell(b, 100 * (e->train_accuracy - e->val_accuracy));
        bnk__buf_puts(b, "<td>");
        if (isfinite(e->min_grad_norm)) {
            char norm[32];
            bnk__fmt_num(norm, sizeof norm, e->min_grad_norm);
            bnk__buf_printf(b, "%s ", norm);
            bnk__buf_escape(b, e->min_grad_tensor);
        }
        bnk__buf_printf(b, "</td><td>%s%s%s</td></tr>", e->overfitting ? "overfitting" : "",
                        e->overfitting && e->vanishing_gradients ? ", " : "",
                        e->vanishing_gradients ? "vanishing gradients" : "");
    }
    bnk__buf_puts(b, "</table></li>");
}
