/* The report's charts, each one inline SVG: optimisation history, parameter importance, parallel
 * coordinates, slice plots and learning curves. Values are shown in the objective's own units
 * (the study stores losses; maximised objectives are negated back). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_internal.h"

enum { WIDE = 1120 };

double bnk__objective(const bnk__report *r, double loss) {
    return r->cfg->maximize ? -loss : loss;
}

/* How good objective value v is on [0, 1] among lo..hi (1 is the best). */
static double goodness(const bnk__report *r, double v, double lo, double hi) {
    double t = hi > lo ? (v - lo) / (hi - lo) : 1;
    return r->cfg->maximize ? t : 1 - t;
}

static bool is_top(const bnk__report *r, const bnk_trial *t) {
    return t->state == BNK_TRIAL_COMPLETE && isfinite(t->loss) && t->loss <= r->cutoff;
}

void bnk__trial_tooltip(const bnk__report *r, const bnk_trial *t, char *buf, size_t size) {
    const bnk_space *s = &r->cfg->space;
    size_t n = (size_t)snprintf(buf, size, "trial %lld (%s)", (long long)t->number,
                                bnk_trial_state_str(t->state));
    if (isfinite(t->value) && n < size)
        n += (size_t)snprintf(buf + n, size - n, ": %s = %.5g", r->cfg->objective, t->value);
    for (int i = 0; i < s->n && n < size; i++) {
        if (isnan(t->x.v[i])) continue;
        char v[48];
        bnk_space_value_str(s, i, t->x.v[i], v, sizeof v);
        n +=
            (size_t)snprintf(buf + n, size - n, "%s%s = %s", i ? ", " : "; ", s->params[i].name, v);
    }
    if (t->reason[0] && n < size) snprintf(buf + n, size - n, " — %s", t->reason);
}

/* "val_accuracy (higher is better)" */
static void objective_title(const bnk__report *r, char *buf, size_t size) {
    snprintf(buf, size, "%s (%s is better)", r->cfg->objective,
             r->cfg->maximize ? "higher" : "lower");
}

/* Range of the final values of complete trials, and of pruned ones with `pruned`. */
static bool value_range(const bnk__report *r, bool pruned, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        if ((t->state == BNK_TRIAL_COMPLETE || (pruned && t->state == BNK_TRIAL_PRUNED)) &&
            isfinite(t->value)) {
            *lo = fmin(*lo, t->value);
            *hi = fmax(*hi, t->value);
        }
    }
    return *lo <= *hi;
}

static void empty_note(bnk__buf *b, int w, int h, const char *text) {
    bnk__buf_printf(b, "<text class=\"empty\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>",
                    w / 2, h / 2, text);
}

/* ---- Optimisation history ------------------------------------------------------------------- */

void bnk__chart_history(bnk__buf *b, const bnk__report *r) {
    const int W = WIDE, H = 380;
    char title[128], tip[1024];
    bnk__svg_open(b, W, H, "Optimisation history: objective per trial and the best so far");
    double lo, hi;
    if (!value_range(r, true, &lo, &hi)) {
        empty_note(b, W, H, "no complete or pruned trial yet");
        bnk__svg_close(b);
        return;
    }
    bnk__plot p = {.x = 84, .y = 40, .w = W - 84 - 24, .h = H - 40 - 58};
    int64_t maxnum = 0;
    for (int64_t k = 0; k < r->n; k++)
        if (r->trials[k].number > maxnum) maxnum = r->trials[k].number;
    p.ax = (bnk__axis){.lo = -0.5, .hi = maxnum + 0.5, .integer = true, .p0 = p.x, .p1 = p.x + p.w};
    bnk__axis_fit(&p.ay, lo, hi);
    /* trials without a value get a lane of their own under the values */
    bool lane = false;
    for (int64_t k = 0; k < r->n; k++) lane |= !isfinite(r->trials[k].value);
    const double lane_y = p.y + p.h - 12;
    p.ay.p0 = p.y + p.h - (lane ? 26 : 0);
    p.ay.p1 = p.y;
    objective_title(r, title, sizeof title);
    if (lane)
        bnk__buf_printf(b,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"26\" "
                        "fill=\"#f6f8fa\"/><text class=\"tl\" x=\"%.1f\" y=\"%.1f\" "
                        "text-anchor=\"end\">no value</text>",
                        p.x, p.y + p.h - 26, p.w, p.x - 8, lane_y + 4);
    bnk__svg_axes(b, &p, "trial number", title);

    /* best so far: a step line over complete trials in number order */
    bnk__buf_puts(b, "<path class=\"best\" d=\"");
    double best = NAN;
    bool started = false;
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        if (t->state != BNK_TRIAL_COMPLETE || !isfinite(t->value)) continue;
        bool better = isnan(best) || (r->cfg->maximize ? t->value > best : t->value < best);
        double x = bnk__axis_px(&p.ax, (double)t->number);
        if (!started) {
            best = t->value;
            bnk__buf_printf(b, "M%.1f %.1f", x, bnk__axis_px(&p.ay, best));
            started = true;
        } else if (better) {
            best = t->value;
            bnk__buf_printf(b, "H%.1fV%.1f", x, bnk__axis_px(&p.ay, best));
        }
    }
    if (started) bnk__buf_printf(b, "H%.1f", bnk__axis_px(&p.ax, (double)maxnum));
    bnk__buf_puts(b, "\"/>");

    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        double x = bnk__axis_px(&p.ax, (double)t->number);
        bnk__trial_tooltip(r, t, tip, sizeof tip);
        if (t->state == BNK_TRIAL_COMPLETE && isfinite(t->value))
            bnk__svg_marker(b, BNK__CIRCLE, x, bnk__axis_px(&p.ay, t->value), k == r->best ? 6 : 4,
                            k == r->best ? BNK__C_GREEN : BNK__C_BLUE, "#ffffff", tip);
        else if (t->state == BNK_TRIAL_PRUNED && isfinite(t->value))
            bnk__svg_marker(b, BNK__TRIANGLE, x, bnk__axis_px(&p.ay, t->value), 4.5, NULL,
                            BNK__C_ORANGE, tip);
        else if (t->state == BNK_TRIAL_FAILED || t->state == BNK_TRIAL_PRUNED)
            bnk__svg_marker(b, BNK__CROSS, x, lane_y, 4, NULL, BNK__C_VERMILLION, tip);
        else if (t->state == BNK_TRIAL_RUNNING)
            bnk__svg_marker(b, BNK__SQUARE, x, lane_y, 3.5, NULL, BNK__C_GREY, tip);
    }
    double lx = p.x;
    lx = bnk__svg_legend(b, lx, 18, BNK__CIRCLE, false, BNK__C_BLUE, NULL, "complete");
    lx = bnk__svg_legend(b, lx, 18, BNK__TRIANGLE, false, BNK__C_ORANGE, NULL,
                         "pruned (last reported value)");
    lx = bnk__svg_legend(b, lx, 18, BNK__CROSS, false, BNK__C_VERMILLION, NULL,
                         "failed (no value: bottom lane)");
    bnk__svg_legend(b, lx, 18, BNK__CIRCLE, true, BNK__C_GREEN, NULL, "best so far");
    bnk__svg_close(b);
}

/* ---- Importance ----------------------------------------------------------------------------- */

void bnk__chart_importance(bnk__buf *b, const bnk__report *r) {
    const bnk_space *s = &r->cfg->space;
    const int row = 30, W = 560, H = 34 + row * (s->n > 0 ? s->n : 1) + 34;
    const double x0 = 190, bw = W - x0 - 70;
    bnk__svg_open(b, W, H, "Parameter importance (PED-ANOVA)");
    int order[BNK_SPACE_MAX_PARAMS];
    for (int i = 0; i < s->n; i++) order[i] = i;
    /* sort by importance, not assessed last (insertion sort: at most 32 entries) */
    for (int i = 1; i < s->n; i++)
        for (int j = i; j > 0; j--) {
            double a = r->importance[order[j - 1]], c = r->importance[order[j]];
            if (!(isnan(a) && !isnan(c)) && !(c > a)) break;
            int tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    const double top = 24, bottom = top + row * s->n;
    for (int q = 0; q <= 4; q++) {
        double x = x0 + bw * q / 4;
        bnk__buf_printf(b,
                        "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                        "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d %%"
                        "</text>",
                        x, x, top - 4, bottom, x, bottom + 16, q * 25);
    }
    bnk__buf_printf(b, "<text class=\"at\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                    x0 + bw / 2, bottom + 34);
    bnk__buf_puts(b, "share of importance (sums to 100 %)</text>");
    for (int k = 0; k < s->n; k++) {
        int i = order[k];
        double y = top + row * k, v = r->importance[i];
        bnk__buf_printf(b, "<text class=\"pn\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", x0 - 10,
                        y + row / 2 + 4);
        bnk__buf_escape(b, s->params[i].name);
        bnk__buf_puts(b, "</text>");
        if (isnan(v)) {
            bnk__buf_printf(b,
                            "<text class=\"na\" x=\"%.1f\" y=\"%.1f\">not assessed (too few top "
                            "trials where active)</text>",
                            x0 + 6, y + row / 2 + 4);
            continue;
        }
        bnk__buf_printf(b,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\">"
                        "<title>",
                        x0, y + 5, fmax(bw * v, 1.0), row - 10, BNK__C_BLUE);
        bnk__buf_escape(b, s->params[i].name);
        bnk__buf_printf(b,
                        ": %.1f %%</title></rect><text class=\"val\" x=\"%.1f\" y=\"%.1f\">"
                        "%.0f %%</text>",
                        100 * v, x0 + fmax(bw * v, 1.0) + 6, y + row / 2 + 4, 100 * v);
    }
    bnk__svg_close(b);
}

/* ---- Parallel coordinates ------------------------------------------------------------------- */

static void param_axis(const bnk_param *p, bnk__axis *a) {
    *a = (bnk__axis){0};
    if (p->kind == BNK_PARAM_CAT) {
        a->ncat = p->nchoices;
        a->cats = p->choices;
        a->lo = -0.5;
        a->hi = p->nchoices - 0.5;
        return;
    }
    a->lo = p->lo;
    a->hi = p->hi;
    a->log = p->log;
    a->integer = p->kind == BNK_PARAM_INT;
    if (!(a->hi > a->lo)) { /* a single value */
        a->lo = p->log ? p->lo / 2 : p->lo - 1;
        a->hi = p->log ? p->hi * 2 : p->hi + 1;
    }
}

/* Draws vertical axis a at x with its ticks and a title above. */
static void vaxis(bnk__buf *b, const bnk__axis *a, double x, double top, const char *name, bool log,
                  bool right) {
    double t[32];
    char lab[64];
    bnk__buf_printf(b, "<line class=\"pax\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", x,
                    x, a->p1, a->p0);
    int nt = bnk__axis_ticks(a, 5, t, 32);
    for (int k = 0; k < nt; k++) {
        double y = bnk__axis_px(a, t[k]);
        bnk__axis_label(a, t[k], lab, sizeof lab);
        bnk__buf_printf(b,
                        "<line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                        "<text class=\"ptl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">",
                        right ? x + 4 : x - 4, x, y, y, right ? x + 6 : x - 6, y + 4,
                        right ? "start" : "end");
        bnk__buf_escape(b, lab);
        bnk__buf_puts(b, "</text>");
    }
    bnk__buf_printf(b, "<text class=\"pn\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x,
                    top - 26);
    bnk__buf_escape(b, name);
    bnk__buf_printf(b,
                    "</text><text class=\"na\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s"
                    "</text>",
                    x, top - 12, log ? "log scale" : "");
}

static int by_loss_desc(const void *a, const void *b) {
    const bnk_trial *x = *(const bnk_trial *const *)a, *y = *(const bnk_trial *const *)b;
    return (x->loss < y->loss) - (x->loss > y->loss);
}

void bnk__chart_parallel(bnk__buf *b, const bnk__report *r) {
    const bnk_space *s = &r->cfg->space;
    const int W = WIDE, H = 440;
    bnk__svg_open(b, W, H, "Parallel coordinates of the complete trials, coloured by objective");
    double lo, hi;
    if (r->ncomplete == 0 || !value_range(r, false, &lo, &hi)) {
        empty_note(b, W, H, "no complete trial yet");
        bnk__svg_close(b);
        return;
    }
    bool conditional = false;
    for (int i = 0; i < s->n; i++) conditional |= s->params[i].parent >= 0;
    const double top = 62, bottom = H - 92, inactive_y = bottom + 24;
    const double left = 110, right = W - 90;
    const int naxes = s->n + 1;
    const double gap = naxes > 1 ? (right - left) / (naxes - 1) : 0;
    bnk__axis axes[BNK_SPACE_MAX_PARAMS + 1];
    for (int i = 0; i < s->n; i++) param_axis(&s->params[i], &axes[i]);
    axes[s->n] = (bnk__axis){0};
    bnk__axis_fit(&axes[s->n], lo, hi);
    for (int i = 0; i < naxes; i++) {
        axes[i].p0 = bottom;
        axes[i].p1 = top;
    }
    /* complete trials, worst first so the best end up on top */
    const bnk_trial **idx = malloc((size_t)(r->n + 1) * sizeof *idx);
    if (!idx) {
        b->oom = true;
        return;
    }
    int64_t m = 0;
    for (int64_t k = 0; k < r->n; k++)
        if (r->trials[k].state == BNK_TRIAL_COMPLETE && isfinite(r->trials[k].value))
            idx[m++] = &r->trials[k];
    qsort(idx, (size_t)m, sizeof *idx, by_loss_desc);
    /* the more lines, the fainter the ordinary ones, so that the crowd stays readable */
    const double faint = fmax(0.22, fmin(0.55, 4.0 / sqrt((double)m)));
    char tip[1024], colour[8];
    for (int64_t j = 0; j < m; j++) {
        const bnk_trial *t = idx[j];
        const bool best = r->best >= 0 && t == &r->trials[r->best], topq = is_top(r, t);
        bnk__viridis(goodness(r, t->value, lo, hi), colour);
        bnk__buf_puts(b, "<g>");
        for (int pass = best ? 0 : 1; pass < 2; pass++) {
            bnk__buf_puts(b, "<polyline fill=\"none\" points=\"");
            for (int i = 0; i < naxes; i++) {
                double x = left + gap * i, y;
                if (i == s->n)
                    y = bnk__axis_px(&axes[i], t->value);
                else if (isnan(t->x.v[i]) || !bnk_space_active(s, &t->x, i))
                    y = inactive_y;
                else
                    y = bnk__axis_px(&axes[i], t->x.v[i]);
                bnk__buf_printf(b, "%s%.1f,%.1f", i ? " " : "", x, y);
            }
            if (pass == 0)
                bnk__buf_puts(b, "\" stroke=\"#1F2328\" stroke-width=\"5\" opacity=\"0.9\"/>");
            else
                bnk__buf_printf(b, "\" stroke=\"%s\" stroke-width=\"%s\" opacity=\"%.2f\">", colour,
                                best   ? "3"
                                : topq ? "2"
                                       : "1.2",
                                topq ? 0.95 : faint);
        }
        bnk__trial_tooltip(r, t, tip, sizeof tip);
        bnk__buf_puts(b, "<title>");
        bnk__buf_escape(b, tip);
        bnk__buf_puts(b, "</title></polyline></g>");
    }
    free(idx);
    for (int i = 0; i < naxes; i++) {
        double x = left + gap * i;
        vaxis(b, &axes[i], x, top, i < s->n ? s->params[i].name : r->cfg->objective,
              i < s->n && s->params[i].log, i == s->n);
        if (conditional && i < s->n && s->params[i].parent >= 0)
            bnk__buf_printf(b,
                            "<text class=\"ptl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">"
                            "inactive</text><line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" "
                            "y1=\"%.1f\" y2=\"%.1f\"/>",
                            x - 6, inactive_y + 4, x - 4, x, inactive_y, inactive_y);
    }
    char l0[32], l1[32];
    bnk__fmt_num(l0, sizeof l0, r->cfg->maximize ? lo : hi);
    bnk__fmt_num(l1, sizeof l1, r->cfg->maximize ? hi : lo);
    char ctitle[96];
    snprintf(ctitle, sizeof ctitle, "line colour: %s (worse → better)", r->cfg->objective);
    bnk__svg_colorbar(b, W / 2.0 - 150, H - 22, 300, l0, l1, ctitle);
    bnk__buf_printf(b,
                    "<text class=\"na\" x=\"%.1f\" y=\"%.1f\">thick lines: top trials; outlined: "
                    "the best trial</text>",
                    (double)W - 330, (double)H - 13);
    bnk__svg_close(b);
}

/* ---- Slice plots ---------------------------------------------------------------------------- */

/* A deterministic jitter in [-0.28, 0.28] for categorical x positions. */
static double jitter(int64_t number) {
    uint64_t z = (uint64_t)number * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
    z ^= z >> 29;
    return ((double)(z >> 11) * 0x1.0p-53 - 0.5) * 0.56;
}

/* Light to dark blue by trial order (ColorBrewer "Blues", single hue: safe for colour-vision
 * deficiencies and in greyscale). */
static void blues(double t, char out[8]) {
    const double a[3] = {189, 215, 238}, z[3] = {8, 48, 107};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    snprintf(out, 8, "#%02x%02x%02x", (int)lround(a[0] + t * (z[0] - a[0])),
             (int)lround(a[1] + t * (z[1] - a[1])), (int)lround(a[2] + t * (z[2] - a[2])));
}

void bnk__chart_slice(bnk__buf *b, const bnk__report *r, int param) {
    const bnk_param *pp = &r->cfg->space.params[param];
    const int W = 372, H = 284;
    char title[160], tip[1024], colour[8];
    snprintf(title, sizeof title, "Slice plot of %s", pp->name);
    bnk__svg_open(b, W, H, title);
    double lo, hi;
    if (r->ncomplete == 0 || !value_range(r, false, &lo, &hi)) {
        empty_note(b, W, H, "no complete trial yet");
        bnk__svg_close(b);
        return;
    }
    bnk__plot p = {.x = 74, .y = 12, .w = W - 74 - 14, .h = H - 12 - 56};
    param_axis(pp, &p.ax);
    p.ax.p0 = p.x + (pp->kind == BNK_PARAM_CAT ? 0 : 6);
    p.ax.p1 = p.x + p.w - (pp->kind == BNK_PARAM_CAT ? 0 : 6);
    bnk__axis_fit(&p.ay, lo, hi);
    p.ay.p0 = p.y + p.h;
    p.ay.p1 = p.y;
    int64_t inactive = 0, maxnum = 1;
    for (int64_t k = 0; k < r->n; k++)
        if (r->trials[k].number > maxnum) maxnum = r->trials[k].number;
    snprintf(title, sizeof title, "%s%s", pp->name, pp->log ? " (log scale)" : "");
    objective_title(r, tip, sizeof tip);
    bnk__svg_axes(b, &p, title, r->cfg->objective);
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        if (t->state != BNK_TRIAL_COMPLETE || !isfinite(t->value)) continue;
        if (isnan(t->x.v[param]) || !bnk_space_active(&r->cfg->space, &t->x, param)) {
            inactive++;
            continue;
        }
        double xv = t->x.v[param] + (pp->kind == BNK_PARAM_CAT ? jitter(t->number) : 0);
        blues((double)t->number / (double)maxnum, colour);
        bnk__trial_tooltip(r, t, tip, sizeof tip);
        bnk__svg_marker(b, BNK__CIRCLE, bnk__axis_px(&p.ax, xv), bnk__axis_px(&p.ay, t->value),
                        k == r->best ? 6 : 3.8, k == r->best ? BNK__C_GREEN : colour,
                        k == r->best ? BNK__C_INK : "#ffffff", tip);
    }
    if (inactive > 0)
        bnk__buf_printf(b,
                        "<text class=\"na\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%lld "
                        "complete trials without it (inactive)</text>",
                        p.x + p.w, (double)H - 4, (long long)inactive);
    bnk__svg_close(b);
}

/* ---- Learning curves ------------------------------------------------------------------------ */

void bnk__chart_curves(bnk__buf *b, const bnk__report *r) {
    const int W = WIDE, H = 400;
    char title[128], tip[1024];
    bnk__svg_open(b, W, H, "Learning curves: intermediate objective per step of every trial");
    double lo = INFINITY, hi = -INFINITY;
    int64_t maxstep = 0;
    for (int64_t k = 0; k < r->n; k++) {
        const bnk_trial *t = &r->trials[k];
        for (int64_t s = 0; s < t->ncurve; s++)
            if (isfinite(t->curve[s])) {
                double v = bnk__objective(r, t->curve[s]);
                lo = fmin(lo, v);
                hi = fmax(hi, v);
                if (s + 1 > maxstep) maxstep = s + 1;
            }
    }
    if (maxstep == 0) {
        empty_note(b, W, H, "no intermediate values reported yet");
        bnk__svg_close(b);
        return;
    }
    bnk__plot p = {.x = 84, .y = 40, .w = W - 84 - 24, .h = H - 40 - 58};
    p.ax = (bnk__axis){.lo = 1, .hi = (double)maxstep, .integer = true, .p0 = p.x, .p1 = p.x + p.w};
    if (maxstep == 1) {
        p.ax.lo = 0.5;
        p.ax.hi = 1.5;
    }
    bnk__axis_fit(&p.ay, lo, hi);
    p.ay.p0 = p.y + p.h;
    p.ay.p1 = p.y;
    objective_title(r, title, sizeof title);
    bnk__svg_axes(b, &p, "step (epoch)", title);
    /* draw order: failed, pruned, complete, running, then the best on top */
    /* the many complete curves first, the few pruned and failed ones over them */
    static const bnk_trial_state order[] = {BNK_TRIAL_COMPLETE, BNK_TRIAL_RUNNING, BNK_TRIAL_PRUNED,
                                            BNK_TRIAL_FAILED};
    char faint[16];
    snprintf(faint, sizeof faint, "%.2f", fmax(0.2, fmin(0.6, 4.0 / sqrt((double)r->n + 1))));
    for (int pass = 0; pass < 5; pass++) {
        for (int64_t k = 0; k < r->n; k++) {
            const bnk_trial *t = &r->trials[k];
            if (pass < 4 ? (t->state != order[pass] || k == r->best) : k != r->best) continue;
            const char *colour = k == r->best                     ? BNK__C_GREEN
                                 : t->state == BNK_TRIAL_COMPLETE ? BNK__C_BLUE
                                 : t->state == BNK_TRIAL_PRUNED   ? BNK__C_ORANGE
                                 : t->state == BNK_TRIAL_FAILED   ? BNK__C_VERMILLION
                                                                  : BNK__C_GREY;
            bnk__trial_tooltip(r, t, tip, sizeof tip);
            /* segments between finite points; a missing step breaks the line */
            bnk__buf_printf(b,
                            "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" "
                            "opacity=\"%s\"%s d=\"",
                            colour, k == r->best ? "3" : "1.4",
                            k == r->best                     ? "1"
                            : t->state == BNK_TRIAL_COMPLETE ? faint
                                                             : "0.75",
                            t->state == BNK_TRIAL_PRUNED ? " stroke-dasharray=\"5 3\"" : "");
            bool pen = false;
            int64_t last = -1;
            for (int64_t s = 0; s < t->ncurve; s++) {
                if (!isfinite(t->curve[s])) {
                    pen = false;
                    continue;
                }
                bnk__buf_printf(b, "%c%.1f %.1f", pen ? 'L' : 'M', bnk__axis_px(&p.ax, s + 1.0),
                                bnk__axis_px(&p.ay, bnk__objective(r, t->curve[s])));
                pen = true;
                last = s;
            }
            bnk__buf_puts(b, "\"><title>");
            bnk__buf_escape(b, tip);
            bnk__buf_puts(b, "</title></path>");
            if (last < 0) continue;
            double x = bnk__axis_px(&p.ax, last + 1.0),
                   y = bnk__axis_px(&p.ay, bnk__objective(r, t->curve[last]));
            if (t->state == BNK_TRIAL_FAILED)
                bnk__svg_marker(b, BNK__CROSS, x, y, 4, NULL, colour, tip);
            else if (t->state == BNK_TRIAL_PRUNED)
                bnk__svg_marker(b, BNK__TRIANGLE, x, y, 4, "#ffffff", colour, tip);
            else if (k == r->best || maxstep == 1)
                bnk__svg_marker(b, BNK__CIRCLE, x, y, k == r->best ? 5 : 3, colour, "#ffffff", tip);
        }
    }
    double lx = p.x;
    lx = bnk__svg_legend(b, lx, 18, BNK__CIRCLE, true, BNK__C_BLUE, NULL, "complete");
    lx = bnk__svg_legend(b, lx, 18, BNK__TRIANGLE, false, BNK__C_ORANGE, NULL,
                         "pruned (dashed, ends where it was stopped)");
    lx = bnk__svg_legend(b, lx, 18, BNK__CROSS, false, BNK__C_VERMILLION, NULL,
                         "failed (× at its last value)");
    bnk__svg_legend(b, lx, 18, BNK__CIRCLE, true, BNK__C_GREEN, NULL, "best trial");
    bnk__svg_close(b);
}
