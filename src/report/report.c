/* The HTML report of a study: one self-contained page (inline CSS and SVG, no script, no
 * network) with headline numbers, a plain-language summary, the best configuration, the charts
 * of charts.c and a table of every trial. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/report_internal.h"

bnk_report_options bnk_report_options_default(void) {
    return (bnk_report_options){.top_quantile = 0.1};
}

static const char CSS[] =
    ":root{--ink:#1F2328;--muted:#59636e;--line:#d1d9e0}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:#f3f5f7;color:var(--ink);font:14px/1.5 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif}"
    "main{max-width:1180px;margin:0 auto;padding:20px 24px 40px}"
    "h1{font-size:24px;margin:4px 0 2px}h2{font-size:17px;margin:0 0 2px}"
    ".sub{color:var(--muted);margin:0 0 14px}"
    ".card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 20px 16px;"
    "margin:14px 0}"
    ".cap{color:var(--muted);margin:0 0 10px;font-size:13px}"
    ".kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:12px}"
    ".kpi{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 16px}"
    ".kpi .l{color:var(--muted);font-size:11.5px;text-transform:uppercase;letter-spacing:.05em}"
    ".kpi .v{font-size:26px;font-weight:650;line-height:1.25}"
    ".kpi .d{color:var(--muted);font-size:12.5px}"
    ".two{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:14px}"
    ".two>.card{margin:0}"
    "ul.sum{margin:6px 0 0;padding-left:20px}ul.sum li{margin:5px 0}"
    "b.good{color:#006d4f}"
    "pre{background:#f6f8fa;border:1px solid var(--line);border-radius:6px;padding:8px 12px;"
    "margin:4px 0 10px;font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;"
    "white-space:pre-wrap;word-break:break-word}"
    ".lbl{font-size:12px;font-weight:600;color:var(--muted);margin-top:8px}"
    "code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa;"
    "padding:1px 4px;border-radius:4px}"
    "table{border-collapse:collapse;font-size:12.5px;width:100%}"
    "th,td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:left;white-space:nowrap}"
    "th{position:sticky;top:0;background:#fff;font-weight:600;border-bottom:1px solid var(--line)}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "td.r{white-space:normal;min-width:200px}"
    "tr.top td{background:#eef6fb}tr.best td{background:#dff3ec;font-weight:600}"
    ".scroll{max-height:560px;overflow:auto;border:1px solid #eaeef2;border-radius:6px}"
    ".st-complete{color:#0072B2}.st-pruned{color:#9a6700}.st-failed{color:#c24e00}"
    ".st-running{color:#6e7781}"
    ".slices{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:4px 12px}"
    "figure{margin:0}figcaption{font-weight:600;font-size:13px;margin:6px 0 0 8px}"
    "svg{max-width:100%;height:auto;display:block}svg text{font-family:inherit}"
    ".grid{stroke:#e4e8ec}.minor{stroke:#f0f2f4}.tick{stroke:#8c959f}"
    ".frame{fill:none;stroke:#8c959f}"
    ".tl{font-size:11.5px;fill:#424a53}.at{font-size:12.5px;fill:#1F2328;font-weight:600}"
    ".lg{font-size:12.5px;fill:#1F2328}.pn{font-size:12.5px;font-weight:600;fill:#1F2328}"
    ".na{font-size:11.5px;fill:#6e7781;font-style:italic}.val{font-size:12px;font-weight:600}"
    ".ptl{font-size:11px;fill:#424a53;paint-order:stroke;stroke:#fff;stroke-width:3px;"
    "stroke-linejoin:round}"
    ".pax{stroke:#57606a;stroke-width:1.2}.best{fill:none;stroke:#009E73;stroke-width:2.5}"
    ".empty{font-size:15px;fill:#6e7781}"
    "footer{color:var(--muted);font-size:12px;margin-top:18px}";

/* ---- Small formatting helpers --------------------------------------------------------------- */

static void esc(bnk__buf *b, const char *s) {
    bnk__buf_escape(b, s ? s : "");
}

/* Escaped value of parameter i of t ("-" when inactive). */
static void value_html(bnk__buf *b, const bnk__report *r, const bnk_trial *t, int i) {
    char v[48];
    bnk_space_value_str(&r->cfg->space, i, t->x.v[i], v, sizeof v);
    esc(b, v);
}

static void fmt_duration(char *buf, size_t size, double s) {
    if (!(s >= 0))
        snprintf(buf, size, "–");
    else if (s < 90)
        snprintf(buf, size, "%.0f s", s);
    else if (s < 5400)
        snprintf(buf, size, "%.0f min", s / 60);
    else
        snprintf(buf, size, "%.1f h", s / 3600);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int64_t n) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static bool is_top(const bnk__report *r, const bnk_trial *t) {
    return t->state == BNK_TRIAL_COMPLETE && isfinite(t->loss) && t->loss <= r->cutoff;
}

/* ---- Curve diagnostics ----------------------------------------------------------------------- */

enum { LIST_MAX = 10 };

typedef struct curve_stats {
    int64_t declined, flat, examined;                     /* complete trials with >= 3 steps */
    int64_t declined_list[LIST_MAX], flat_list[LIST_MAX]; /* their first trial numbers */
    int64_t best_peak, best_steps; /* the best trial's best step and length (0: unknown) */
    double best_drop;              /* its objective lost after the peak          */
} curve_stats;

/* Validation-only evidence from the stored curves: a curve that ends clearly worse than its
 * best step (the usual sign of overfitting), or one that never moved after the first step. */
static curve_stats curve_diagnostics(const bnk__report *r) {
    curve_stats cs = {0};
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t k = 0; k < r->n; k++)
        for (int64_t j = 0; j < r->trials[k].ncurve; j++)
            if (isfinite(r->trials[k].curve[j])) {
                lo = fmin(lo, r->trials[k].curve[j]);
                hi = fmax(hi, r->trials[k].curve[j]);
            }
    const double tol = hi > lo ? 0.02 * (hi - lo) : 0;
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        if (t->state != BNK_TRIAL_COMPLETE || t->ncurve < 3) continue;
        int64_t first = -1, last = -1, peak = -1;
        for (int64_t j = 0; j < t->ncurve; j++) {
            if (!isfinite(t->curve[j])) continue;
            if (first < 0) first = j;
            last = j;
            if (peak < 0 || t->curve[j] < t->curve[peak]) peak = j;
        }
        if (first < 0 || last - first < 2) continue;
        cs.examined++;
        const double drop = t->curve[last] - t->curve[peak];
        if (drop > tol && peak <= last - 2) {
            if (cs.declined < LIST_MAX) cs.declined_list[cs.declined] = t->number;
            cs.declined++;
        }
        if (t->curve[first] - t->curve[peak] <= tol) {
            if (cs.flat < LIST_MAX) cs.flat_list[cs.flat] = t->number;
            cs.flat++;
        }
        if (k == r->best) {
            cs.best_peak = peak + 1;
            cs.best_steps = last + 1;
            cs.best_drop = drop;
        }
    }
    return cs;
}

/* " (#3, #7, ...)" for a list of trial numbers of which `count` exist. */
static void trial_list(bnk__buf *b, const int64_t *list, int64_t count) {
    if (count <= 0) return;
    bnk__buf_puts(b, " (");
    for (int64_t k = 0; k < count && k < LIST_MAX; k++)
        bnk__buf_printf(b, "%s#%lld", k ? ", " : "", (long long)list[k]);
    bnk__buf_puts(b, count > LIST_MAX ? ", …)" : ")");
}

/* ---- Summary sentences ---------------------------------------------------------------------- */

/* How the top trials used parameter i: "high values (0.93–0.99)", "renorm in 4 of 5 top trials
 * (31 % of all)". Nothing when there are too few. */
static void tendency(bnk__buf *b, const bnk__report *r, int i) {
    const bnk_space *s = &r->cfg->space;
    const bnk_param *p = &s->params[i];
    int64_t n_all = 0, n_top = 0, c_all[BNK_PARAM_MAX_CHOICES] = {0},
            c_top[BNK_PARAM_MAX_CHOICES] = {0};
    double *u_all = malloc((size_t)(r->n + 1) * sizeof *u_all);
    double *u_top = malloc((size_t)(r->n + 1) * sizeof *u_top);
    double vmin = INFINITY, vmax = -INFINITY;
    if (!u_all || !u_top) {
        b->oom = true;
        goto done;
    }
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        if (t->state != BNK_TRIAL_COMPLETE || !isfinite(t->loss) || isnan(t->x.v[i]) ||
            !bnk_space_active(s, &t->x, i))
            continue;
        const double v = t->x.v[i];
        const bool top = is_top(r, t);
        if (p->kind == BNK_PARAM_CAT) {
            c_all[(int)v]++;
            if (top) c_top[(int)v]++;
        } else {
            u_all[n_all] = bnk_space_to_unit(s, i, v);
            if (top) {
                u_top[n_top] = u_all[n_all];
                vmin = fmin(vmin, v);
                vmax = fmax(vmax, v);
            }
        }
        n_all++;
        n_top += top;
    }
    if (n_top < 2) goto done;
    if (p->kind == BNK_PARAM_CAT) {
        int c = 0;
        for (int k = 1; k < p->nchoices; k++)
            if (c_top[k] > c_top[c]) c = k;
        bnk__buf_puts(b, "<b>");
        esc(b, p->choices[c]);
        bnk__buf_printf(b, "</b> in %lld of %lld top trials (%.0f %% of all)", (long long)c_top[c],
                        (long long)n_top, 100.0 * (double)c_all[c] / (double)n_all);
    } else {
        double umin = 1, umax = 0;
        for (int64_t k = 0; k < n_top; k++) {
            umin = fmin(umin, u_top[k]);
            umax = fmax(umax, u_top[k]);
        }
        const double shift = median(u_top, n_top) - median(u_all, n_all);
        char lo[32], hi[32], slo[32], shi[32];
        bnk__fmt_num(lo, sizeof lo, vmin);
        bnk__fmt_num(hi, sizeof hi, vmax);
        bnk__fmt_num(slo, sizeof slo, p->lo);
        bnk__fmt_num(shi, sizeof shi, p->hi);
        /* a narrow band of the searched range (in unit coordinates), else a direction */
        if (umax - umin < 0.35)
            bnk__buf_printf(b, "top trials within <b>%s–%s</b> (searched %s–%s%s)", lo, hi, slo,
                            shi, p->log ? ", log scale" : "");
        else
            bnk__buf_printf(b, "%s (top trials: %s–%s)",
                            shift > 0.15    ? "<b>higher</b> values"
                            : shift < -0.15 ? "<b>lower</b> values"
                                            : "no clear direction",
                            lo, hi);
    }
done:
    free(u_all);
    free(u_top);
}

/* Groups of failure reasons: "diverged", "worker died", or NULL for the reason itself. */
static const char KIND_DIVERGED[] = "diverged (NaN/Inf loss or objective)";
static const char KIND_DIED[] = "worker died (no heartbeat)";

static const char *failure_kind(const char *reason) {
    if (strstr(reason, "diverged") || strstr(reason, "NaN") || strstr(reason, "objective is inf"))
        return KIND_DIVERGED;
    if (strstr(reason, "worker died")) return KIND_DIED;
    return NULL;
}

static void summary(bnk__buf *b, const bnk__report *r) {
    const bnk_study_config *cfg = r->cfg;
    const bnk_space *s = &cfg->space;
    bnk__buf_puts(b, "<section class=\"card\"><h2>Summary</h2><ul class=\"sum\">");
    if (r->best < 0) {
        bnk__buf_puts(b, "<li>No trial has completed yet: there is no best configuration.</li>");
    } else {
        const bnk_trial *best = &r->trials[r->best];
        double *v = malloc((size_t)r->ncomplete * sizeof *v);
        int64_t m = 0;
        for (int64_t k = 0; v && k < r->n; k++)
            if (r->trials[k].state == BNK_TRIAL_COMPLETE && isfinite(r->trials[k].value))
                v[m++] = r->trials[k].value;
        bnk__buf_puts(b, "<li>Best ");
        esc(b, cfg->objective);
        bnk__buf_printf(b,
                        " <b class=\"good\">%.5g</b> in trial %lld; the median complete trial "
                        "reached %.4g",
                        best->value, (long long)best->number, v ? median(v, m) : NAN);
        free(v);
        bnk__buf_puts(b, ".</li><li>Winning settings: ");
        bool any = false;
        for (int pass = 0; pass < 2; pass++) /* BN parameters first */
            for (int i = 0; i < s->n; i++) {
                if ((strncmp(s->params[i].name, "bn.", 3) == 0) != (pass == 0)) continue;
                if (isnan(best->x.v[i])) continue;
                bnk__buf_puts(b, any ? ", " : "");
                esc(b, s->params[i].name);
                bnk__buf_puts(b, " = <b>");
                value_html(b, r, best, i);
                bnk__buf_puts(b, "</b>");
                if (strcmp(s->params[i].name, "bn.momentum") == 0)
                    bnk__buf_printf(b, " (PyTorch momentum %.4g)", 1.0 - best->x.v[i]);
                any = true;
            }
        bnk__buf_puts(b, any ? ".</li>" : "none (empty search space).</li>");
    }
    /* importance, most important first, with what the top trials did */
    int order[BNK_SPACE_MAX_PARAMS], na = 0;
    for (int i = 0; i < s->n; i++)
        if (!isnan(r->importance[i])) order[na++] = i;
    for (int i = 1; i < na; i++)
        for (int j = i; j > 0 && r->importance[order[j]] > r->importance[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    if (na == 0) {
        bnk__buf_puts(b, "<li>Importance: not enough complete trials yet (at least 3 are "
                         "needed).</li>");
    } else {
        bnk__buf_printf(b,
                        "<li>What mattered (share of PED-ANOVA importance; the top %lld "
                        "trials are the best %.0f %% of the complete ones):<ul>",
                        (long long)r->ntop, 100.0 * r->ntop / (double)r->ncomplete);
        for (int k = 0; k < na; k++) {
            int i = order[k];
            bnk__buf_puts(b, "<li><b>");
            esc(b, s->params[i].name);
            bnk__buf_printf(b, "</b> %.0f %%%s", 100 * r->importance[i],
                            r->importance[i] < 0.05 ? " (mattered little)" : "");
            if (r->importance[i] >= 0.05) {
                bnk__buf_puts(b, ": ");
                tendency(b, r, i);
            }
            bnk__buf_puts(b, "</li>");
        }
        bnk__buf_puts(b, "</ul></li>");
    }
    /* pruning: how much training it saved */
    int64_t full = 0, pruned_steps = 0;
    for (int64_t k = 0; k < r->n; k++)
        if (r->trials[k].state == BNK_TRIAL_COMPLETE && r->trials[k].ncurve > full)
            full = r->trials[k].ncurve;
    for (int64_t k = 0; k < r->n; k++)
        if (r->trials[k].state == BNK_TRIAL_PRUNED) pruned_steps += r->trials[k].ncurve;
    const int64_t np = r->count[BNK_TRIAL_PRUNED];
    if (np > 0 && full > 0)
        bnk__buf_printf(b,
                        "<li>The pruner stopped %lld trial%s after %.1f steps on average "
                        "(complete trials ran %lld), saving about %.0f %% of their "
                        "training.</li>",
                        (long long)np, np == 1 ? "" : "s", (double)pruned_steps / np,
                        (long long)full,
                        100.0 * (1.0 - (double)pruned_steps / ((double)np * (double)full)));
    /* failures grouped by cause */
    int64_t nfail = r->count[BNK_TRIAL_FAILED], diverged = 0, died = 0;
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        if (t->state != BNK_TRIAL_FAILED) continue;
        const char *kind = failure_kind(t->reason);
        diverged += kind == KIND_DIVERGED;
        died += kind == KIND_DIED;
    }
    if (nfail > 0)
        bnk__buf_printf(b,
                        "<li>%lld trial%s failed: %lld diverged, %lld lost a worker, %lld "
                        "other (reasons in <i>Failures and diagnostics</i>).</li>",
                        (long long)nfail, nfail == 1 ? "" : "s", (long long)diverged,
                        (long long)died, (long long)(nfail - diverged - died));
    const bnk__epoch_stats es = bnk__epoch_diagnostics(r);
    const curve_stats cs = curve_diagnostics(r);
    if (es.with_diag > 0) {
        bnk__epoch_summary(b, r, &es);
    } else {
        /* a study without the trainer's diagnostics (older bnkit, or `bnkit tell` without
         * them): what the validation curves alone suggest */
        bnk__buf_puts(b, "<li>Diagnostics: ");
        if (cs.examined > 0)
            bnk__buf_printf(b,
                            "%lld of %lld complete trials lost ground after their best step "
                            "(overfitting?) and %lld never improved after the first (vanishing "
                            "gradients or too low a learning rate?). ",
                            (long long)cs.declined, (long long)cs.examined, (long long)cs.flat);
        bnk__buf_puts(b, "The trainer's own vanishing-gradient and overfitting flags and the "
                         "train/validation gap are not stored in this study, so they are not "
                         "shown.</li>");
    }
    bnk__buf_puts(b, "</ul></section>\n");
}

static void diagnostics(bnk__buf *b, const bnk__report *r) {
    const curve_stats cs = curve_diagnostics(r);
    bnk__buf_puts(b, "<section class=\"card\"><h2>Failures and diagnostics</h2><ul class=\"sum\">");
    if (cs.examined > 0) {
        bnk__buf_printf(b,
                        "<li><b>Overfitting (validation evidence only):</b> %lld of %lld "
                        "complete trials ended clearly worse than their best step",
                        (long long)cs.declined, (long long)cs.examined);
        trial_list(b, cs.declined_list, cs.declined);
        if (cs.best_steps > 0 && cs.best_peak < cs.best_steps - 1)
            bnk__buf_printf(b,
                            ". The best trial peaked at step %lld of %lld and then lost %.3g: "
                            "fewer epochs or early stopping may serve it better.",
                            (long long)cs.best_peak, (long long)cs.best_steps, cs.best_drop);
        else if (cs.best_steps > 0)
            bnk__buf_printf(b,
                            ". The best trial was still at or near its best at the last step "
                            "(%lld).",
                            (long long)cs.best_steps);
        bnk__buf_printf(b,
                        "</li><li><b>Stalled learning:</b> %lld of %lld complete trials never "
                        "improved after their first step",
                        (long long)cs.flat, (long long)cs.examined);
        trial_list(b, cs.flat_list, cs.flat);
        bnk__buf_puts(b, cs.flat ? ": too low a learning rate, or vanishing gradients (the study "
                                   "cannot tell which).</li>"
                                 : ".</li>");
    }
    const bnk__epoch_stats es = bnk__epoch_diagnostics(r);
    if (es.with_diag > 0)
        bnk__epoch_section(b, r, &es);
    else
        bnk__buf_puts(b, "<li><b>Not recorded in the study:</b> the training loss, the train/"
                         "validation gap, gradient norms and the trainer's per-epoch "
                         "<i>vanishing gradients</i> and <i>overfitting</i> flags; this study "
                         "keeps the objective per step only (trials told by <code>bnkit "
                         "tell</code> without <code>--train-loss</code> …, or a study from an "
                         "older bnkit). Run the best configuration with "
                         "<code>bnkit train … --metrics FILE</code> to see them.</li>");
    bnk__buf_puts(b, "</ul>");
    /* failure reasons, grouped */
    if (r->count[BNK_TRIAL_FAILED] > 0) {
        bnk__buf_puts(b, "<table><tr><th>cause</th><th>trials</th><th>example reason</th></tr>");
        const char *seen[64];
        int nseen = 0;
        for (int64_t k = 0; k < r->n && nseen < 64; k++) {
            const bnk_trial *t = &r->trials[k];
            if (t->state != BNK_TRIAL_FAILED) continue;
            const char *kind = failure_kind(t->reason);
            const char *key = kind ? kind : t->reason;
            bool dup = false;
            for (int j = 0; j < nseen; j++) dup |= strcmp(seen[j], key) == 0;
            if (dup) continue;
            seen[nseen++] = key;
            int64_t count = 0;
            bnk__buf_puts(b, "<tr><td>");
            esc(b, key[0] ? key : "(no reason given)");
            bnk__buf_puts(b, "</td><td class=\"r\">");
            for (int64_t j = 0; j < r->n; j++) {
                const bnk_trial *u = &r->trials[j];
                if (u->state != BNK_TRIAL_FAILED) continue;
                const char *kj = failure_kind(u->reason);
                if (strcmp(kj ? kj : u->reason, key) != 0) continue;
                if (count < 12)
                    bnk__buf_printf(b, "%s#%lld", count ? ", " : "", (long long)u->number);
                count++;
            }
            if (count > 12) bnk__buf_printf(b, " … (%lld in all)", (long long)count);
            bnk__buf_puts(b, "</td><td class=\"r\">");
            esc(b, t->reason);
            bnk__buf_puts(b, "</td></tr>");
        }
        bnk__buf_puts(b, "</table>");
    }
    bnk__buf_puts(b, "</section>\n");
}

/* ---- Page sections ------------------------------------------------------------------------ */

static void header(bnk__buf *b, const bnk__report *r, const bnk_report_options *opt) {
    const bnk_study_config *cfg = r->cfg;
    bnk__buf_puts(b, "<header><h1>");
    if (opt->title) {
        esc(b, opt->title);
    } else {
        bnk__buf_puts(b, "Tuning report: ");
        esc(b, cfg->name);
    }
    bnk__buf_puts(b, "</h1><p class=\"sub\">study ");
    esc(b, cfg->name);
    bnk__buf_puts(b, " · ");
    if (opt->source) {
        esc(b, opt->source);
        bnk__buf_puts(b, " · ");
    }
    bnk__buf_printf(b, "%s ", cfg->maximize ? "maximising" : "minimising");
    esc(b, cfg->objective);
    char pruner[32];
    bnk_pruner_describe(&cfg->pruner, pruner, sizeof pruner);
    bnk__buf_printf(b, " · sampler %s · pruner %s · %d parameters",
                    bnk_sampler_kind_str(cfg->sampler.kind), pruner, cfg->space.n);
    bnk__buf_puts(b, "</p></header>\n");

    double t0 = INFINITY, t1 = 0;
    for (int64_t k = 0; k < r->n; k++) {
        if (r->trials[k].started > 0) t0 = fmin(t0, r->trials[k].started);
        t1 = fmax(t1, fmax(r->trials[k].finished, r->trials[k].heartbeat));
    }
    char dur[32], when[32] = "";
    fmt_duration(dur, sizeof dur, isfinite(t0) && t1 >= t0 ? t1 - t0 : NAN);
    if (isfinite(t0)) {
        time_t tt = (time_t)t0;
        struct tm tm;
        if (gmtime_r(&tt, &tm)) strftime(when, sizeof when, "started %Y-%m-%d %H:%M UTC", &tm);
    }
    bnk__buf_puts(b, "<section class=\"kpis\"><div class=\"kpi\"><div class=\"l\">best ");
    esc(b, cfg->objective);
    if (r->best >= 0)
        bnk__buf_printf(b, "</div><div class=\"v\">%.5g</div><div class=\"d\">trial %lld</div>",
                        r->trials[r->best].value, (long long)r->trials[r->best].number);
    else
        bnk__buf_puts(b, "</div><div class=\"v\">–</div><div class=\"d\">no complete trial</div>");
    bnk__buf_printf(b,
                    "</div><div class=\"kpi\"><div class=\"l\">trials</div><div class=\"v\">%lld"
                    "</div><div class=\"d\">%lld complete · %lld pruned · %lld failed%s</div>"
                    "</div>",
                    (long long)r->n, (long long)r->count[BNK_TRIAL_COMPLETE],
                    (long long)r->count[BNK_TRIAL_PRUNED], (long long)r->count[BNK_TRIAL_FAILED],
                    r->count[BNK_TRIAL_RUNNING] ? " · some running" : "");
    int64_t top = r->best >= 0 ? r->ntop : 0;
    bnk__buf_printf(b,
                    "<div class=\"kpi\"><div class=\"l\">top trials</div><div class=\"v\">"
                    "%lld</div><div class=\"d\">the best %.0f %% of complete trials</div></div>",
                    (long long)top, r->ncomplete ? 100.0 * top / (double)r->ncomplete : 0.0);
    bnk__buf_printf(b,
                    "<div class=\"kpi\"><div class=\"l\">wall time</div><div class=\"v\">%s"
                    "</div><div class=\"d\">%s</div></div></section>\n",
                    dur, when[0] ? when : "no timestamps");
}

static void best_config(bnk__buf *b, const bnk__report *r, const bnk_report_options *opt) {
    const bnk_space *s = &r->cfg->space;
    bnk__buf_puts(b, "<section class=\"card\"><h2>Best configuration</h2>");
    if (r->best < 0) {
        bnk__buf_puts(b, "<p class=\"cap\">No complete trial yet.</p></section>");
        return;
    }
    const bnk_trial *t = &r->trials[r->best];
    bnk__buf_printf(b,
                    "<p class=\"cap\">Trial %lld. Momentum is in the Keras convention "
                    "(running = momentum·running + (1 − momentum)·batch); PyTorch's is "
                    "1 − momentum.</p>",
                    (long long)t->number);
    bnk__buf_puts(b, "<table><tr><th>parameter</th><th>value</th><th>note</th></tr>");
    for (int i = 0; i < s->n; i++) {
        const bnk_param *p = &s->params[i];
        bnk__buf_puts(b, "<tr><td>");
        esc(b, p->name);
        bnk__buf_puts(b, "</td><td class=\"n\">");
        value_html(b, r, t, i);
        bnk__buf_puts(b, "</td><td>");
        if (isnan(t->x.v[i]) && p->parent >= 0) {
            bnk__buf_puts(b, "inactive: depends on ");
            esc(b, s->params[p->parent].name);
        } else if (strcmp(p->name, "bn.momentum") == 0) {
            bnk__buf_printf(b, "PyTorch momentum = %.4g", 1.0 - t->x.v[i]);
        }
        bnk__buf_puts(b, "</td></tr>");
    }
    bnk__buf_puts(b, "</table>");
    const char *labels[3] = {"bnkit", "PyTorch", "Keras"};
    const char *lines[3] = {opt->train_command, opt->pytorch_args, opt->keras_args};
    for (int k = 0; k < 3; k++) {
        if (!lines[k] || !lines[k][0]) continue;
        bnk__buf_printf(b, "<div class=\"lbl\">%s</div><pre>", labels[k]);
        esc(b, lines[k]);
        bnk__buf_puts(b, "</pre>");
    }
    bnk__buf_puts(b, "</section>\n");
}

static void trials_table(bnk__buf *b, const bnk__report *r) {
    const bnk_space *s = &r->cfg->space;
    static const char *const marks[] = {"■", "●", "▲", "✕"};
    bnk__buf_printf(b,
                    "<section class=\"card\"><h2>All trials</h2><p class=\"cap\">%lld trials "
                    "in number order; the top trials are shaded, the best in green.</p>"
                    "<div class=\"scroll\"><table><tr><th>#</th><th>state</th><th>",
                    (long long)r->n);
    esc(b, r->cfg->objective);
    bnk__buf_puts(b, "</th>");
    for (int i = 0; i < s->n; i++) {
        bnk__buf_puts(b, "<th>");
        esc(b, s->params[i].name);
        bnk__buf_puts(b, "</th>");
    }
    /* columns that would say the same thing on every row are left out */
    bool timed = false, workers = false, reasons = false;
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        timed |= t->started > 0 && t->finished - t->started >= 0.5;
        workers |= strcmp(t->worker, r->trials[0].worker) != 0;
        reasons |= t->reason[0] != '\0';
    }
    bnk__buf_printf(b, "<th>steps</th>%s%s%s</tr>", timed ? "<th>time</th>" : "",
                    workers ? "<th>worker</th>" : "", reasons ? "<th>reason</th>" : "");
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        const char *st = bnk_trial_state_str(t->state);
        char dur[32];
        fmt_duration(dur, sizeof dur,
                     t->started > 0 && t->finished >= t->started ? t->finished - t->started : NAN);
        bnk__buf_printf(b, "<tr%s><td class=\"n\">%lld</td><td class=\"st-%s\">%s %s</td>",
                        k == r->best   ? " class=\"best\""
                        : is_top(r, t) ? " class=\"top\""
                                       : "",
                        (long long)t->number, st, marks[t->state & 3], st);
        if (isfinite(t->value))
            bnk__buf_printf(b, "<td class=\"n\">%.5g</td>", t->value);
        else
            bnk__buf_puts(b, "<td class=\"n\">–</td>");
        for (int i = 0; i < s->n; i++) {
            bnk__buf_puts(b, "<td class=\"n\">");
            value_html(b, r, t, i);
            bnk__buf_puts(b, "</td>");
        }
        bnk__buf_printf(b, "<td class=\"n\">%lld</td>", (long long)t->ncurve);
        if (timed) bnk__buf_printf(b, "<td class=\"n\">%s</td>", dur);
        if (workers) {
            bnk__buf_puts(b, "<td>");
            esc(b, t->worker);
            bnk__buf_puts(b, "</td>");
        }
        if (reasons) {
            bnk__buf_puts(b, "<td class=\"r\">");
            esc(b, t->reason);
            bnk__buf_puts(b, "</td>");
        }
        bnk__buf_puts(b, "</tr>");
    }
    bnk__buf_puts(b, "</table></div></section>\n");
}

static void chart_card(bnk__buf *b, const char *title, const char *caption) {
    bnk__buf_printf(b, "<section class=\"card\"><h2>%s</h2><p class=\"cap\">%s</p>", title,
                    caption);
}

/* ---- The page ------------------------------------------------------------------------------- */

bnk_status bnk_report_write_html(const char *path, const bnk_study_config *cfg,
                                 const bnk_trial *trials, int64_t n,
                                 const bnk_report_options *opt) {
    if (!path || !cfg || (n > 0 && !trials))
        return bnk__fail(BNK_ERR_NULL, "bnk_report_write_html: path, cfg or trials is NULL");
    if (n < 0)
        return bnk__fail(BNK_ERR_SIZE, "bnk_report_write_html: negative trial count %lld",
                         (long long)n);
    const bnk_report_options def = bnk_report_options_default();
    if (!opt) opt = &def;
    if (!(opt->top_quantile > 0 && opt->top_quantile <= 1))
        return bnk__fail(BNK_ERR_PARAM, "report: top quantile must be in (0, 1], got %g",
                         opt->top_quantile);

    double importance[BNK_SPACE_MAX_PARAMS];
    bnk__report r = {
        .cfg = cfg, .trials = trials, .n = n, .best = -1, .cutoff = NAN, .importance = importance};
    bnk_status st = bnk_report_importance(cfg, trials, n, opt->top_quantile, importance, &r.ntop);
    if (st != BNK_OK) return st;
    for (int64_t k = 0; k < n; k++) {
        const bnk_trial *t = &trials[k];
        r.count[t->state & 3]++;
        if (t->state != BNK_TRIAL_COMPLETE || !isfinite(t->loss)) continue;
        r.ncomplete++;
        if (r.best < 0 || t->loss < trials[r.best].loss) r.best = k;
    }
    /* the top trials: the ntop lowest losses (importance used the same rule) */
    if (r.ncomplete > 0) {
        double *l = malloc((size_t)r.ncomplete * sizeof *l);
        if (!l) return bnk__fail(BNK_ERR_NOMEM, "bnk_report_write_html: out of memory");
        int64_t m = 0;
        for (int64_t k = 0; k < n; k++)
            if (trials[k].state == BNK_TRIAL_COMPLETE && isfinite(trials[k].loss))
                l[m++] = trials[k].loss;
        qsort(l, (size_t)m, sizeof *l, cmp_double);
        int64_t top = r.ntop > 0 ? r.ntop : 1;
        r.cutoff = l[(top < m ? top : m) - 1];
        free(l);
    }

    bnk__buf b = {0};
    bnk__buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                      "<title>");
    if (opt->title) {
        esc(&b, opt->title);
    } else {
        bnk__buf_puts(&b, "Tuning report: ");
        esc(&b, cfg->name);
    }
    bnk__buf_printf(&b, "</title><style>%s</style></head><body><main>\n", CSS);
    header(&b, &r, opt);
    summary(&b, &r);
    bnk__buf_puts(&b, "<div class=\"two\">");
    best_config(&b, &r, opt);
    chart_card(&b, "Parameter importance",
               "PED-ANOVA: how differently each parameter is distributed among the top trials "
               "than among all complete trials (Pearson divergence of Parzen estimates). Long "
               "bar: the good trials agreed on this parameter.");
    bnk__chart_importance(&b, &r);
    bnk__buf_printf(&b,
                    "<p class=\"cap\">Method: PED-ANOVA (Watanabe et al., IJCAI 2023), as "
                    "Optuna's PedAnovaImportanceEvaluator: top trials are the best %.0f %% of the "
                    "complete ones; each parameter is binned on a grid of at most 50 cells in "
                    "unit coordinates (log space for log parameters) and smoothed by Parzen "
                    "estimators with Scott's bandwidth. Chosen over fANOVA because it needs no "
                    "surrogate model, takes milliseconds and is stable from a few dozen trials. "
                    "A conditional parameter is judged on the trials where it is active.</p>",
                    100 * opt->top_quantile);
    bnk__buf_puts(&b, "</section></div>\n");
    chart_card(&b, "Optimisation history",
               "The objective of every trial in the order they were started, and the best value "
               "so far. Hover a point for its parameters.");
    bnk__chart_history(&b, &r);
    bnk__buf_puts(&b, "</section>\n");
    chart_card(&b, "Parallel coordinates",
               "One line per complete trial through its parameter values and objective; colour "
               "from worse (dark) to better (bright). Log-scaled parameters have log axes.");
    bnk__chart_parallel(&b, &r);
    bnk__buf_puts(&b, "</section>\n");
    chart_card(&b, "Slice plots",
               "The objective against each parameter, one point per complete trial; colour "
               "shows trial order (light: early, dark: late); the best trial in green.");
    bnk__buf_puts(&b, "<div class=\"slices\">");
    for (int i = 0; i < cfg->space.n; i++) {
        bnk__buf_puts(&b, "<figure><figcaption>");
        esc(&b, cfg->space.params[i].name);
        bnk__buf_puts(&b, "</figcaption>");
        bnk__chart_slice(&b, &r, i);
        bnk__buf_puts(&b, "</figure>");
    }
    bnk__buf_puts(&b, "</div></section>\n");
    chart_card(&b, "Learning curves",
               "The intermediate objective the trials reported at each step, pruned and failed "
               "ones included.");
    bnk__chart_curves(&b, &r);
    bnk__buf_puts(&b, "</section>\n");
    diagnostics(&b, &r);
    trials_table(&b, &r);
    bnk__buf_printf(&b, "<footer>bnkit report · self-contained: no scripts, no network. Exports: "
                        "<code>bnkit report --csv FILE --json FILE</code>.</footer>"
                        "</main></body></html>\n");
    st = b.oom ? bnk__fail(BNK_ERR_NOMEM, "bnk_report_write_html: out of memory")
               : bnk__write_atomic(path, b.data, b.len);
    bnk__buf_free(&b);
    return st;
}
