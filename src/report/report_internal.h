/* Internals of the study report (not installed): a growable text buffer with HTML escaping,
 * SVG chart helpers (svg.c), the charts (charts.c), the trainer's diagnostics (trainer_diag.c)
 * and atomic file output (report.c). */
#ifndef BNKIT_REPORT_INTERNAL_H
#define BNKIT_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "bnkit/report.h"
#include "core/internal.h"

/* ---- Text buffer (svg.c) ------------------------------------------------------------------- */

/* Appends never fail visibly: an allocation failure sets `oom`, later appends do nothing, and
 * the writer checks `oom` once at the end. Zero-initialise; free with bnk__buf_free. */
typedef struct bnk__buf {
    char *data;
    size_t len, cap;
    bool oom;
} bnk__buf;

void bnk__buf_free(bnk__buf *b);
void bnk__buf_puts(bnk__buf *b, const char *s);
void bnk__buf_printf(bnk__buf *b, const char *fmt, ...) BNK__PRINTF(2, 3);
/* s with & < > " ' escaped: safe in HTML/SVG text and in quoted attributes. */
void bnk__buf_escape(bnk__buf *b, const char *s);

/* ---- Palette ------------------------------------------------------------------------------- */

/* Okabe & Ito (2008), "Color Universal Design": distinguishable with every common form of
 * colour-vision deficiency. States also differ by marker shape. */
#define BNK__C_BLUE       "#0072B2" /* complete trials, bars            */
#define BNK__C_ORANGE     "#E69F00" /* pruned trials                    */
#define BNK__C_VERMILLION "#D55E00" /* failed trials                    */
#define BNK__C_GREEN      "#009E73" /* best so far, the best trial      */
#define BNK__C_SKY        "#56B4E9"
#define BNK__C_PURPLE     "#CC79A7"
#define BNK__C_GREY       "#8A8A8A" /* running, inactive              */
#define BNK__C_INK        "#1F2328"

/* viridis at t in [0, 1] (clamped) as "#rrggbb": perceptually uniform and colour-blind-safe. */
void bnk__viridis(double t, char out[8]);

/* ---- Axes ---------------------------------------------------------------------------------- */

typedef struct bnk__axis {
    double lo, hi; /* domain (log: lo > 0); categorical: -0.5, ncat - 0.5                */
    bool log;
    bool integer;           /* linear: ticks at whole numbers only (trial numbers, steps)  */
    int ncat;               /* > 0: categorical with labels cats[0..ncat-1]               */
    const char (*cats)[24]; /* bnk_param.choices                                          */
    double p0, p1;          /* pixel positions of lo and hi                               */
} bnk__axis;

/* The pixel position of v. */
double bnk__axis_px(const bnk__axis *a, double v);

/* Up to max tick values of a, about `target` of them: 1-2-5 steps (linear), decades or 1-2-5
 * multiples (log), every choice (categorical). Returns the count. */
int bnk__axis_ticks(const bnk__axis *a, int target, double *ticks, int max);

/* A linear axis over the finite values lo..hi, padded by 6 % (a constant value gets +-1 %
 * or +-1). */
void bnk__axis_fit(bnk__axis *a, double lo, double hi);

/* A short number: 0.001, 0.95, 12, 1e-05 -> "1e-5", 2.5e+06 -> "2.5e6". */
void bnk__fmt_num(char *buf, size_t size, double v);

/* The tick label of value v on a. */
void bnk__axis_label(const bnk__axis *a, double v, char *buf, size_t size);

/* ---- SVG pieces ---------------------------------------------------------------------------- */

/* A plot area: the rectangle x..x+w, y..y+h inside the SVG, with ax (p0 = x, p1 = x + w) and ay
 * (p0 = y + h, p1 = y). */
typedef struct bnk__plot {
    double x, y, w, h;
    bnk__axis ax, ay;
} bnk__plot;

/* <svg> with a viewBox of width x height, scaled to the page width, and an accessible title. */
void bnk__svg_open(bnk__buf *b, int width, int height, const char *title);
void bnk__svg_close(bnk__buf *b);

/* Grid lines, ticks and tick labels of both axes, the frame, and the axis titles (escaped). */
void bnk__svg_axes(bnk__buf *b, const bnk__plot *p, const char *xtitle, const char *ytitle);

typedef enum bnk__shape { BNK__CIRCLE, BNK__TRIANGLE, BNK__CROSS, BNK__SQUARE } bnk__shape;

/* A marker of radius r centred on (x, y); tooltip (escaped, may be NULL) shows on hover.
 * fill NULL: an open marker. */
void bnk__svg_marker(bnk__buf *b, bnk__shape shape, double x, double y, double r, const char *fill,
                     const char *stroke, const char *tooltip);

/* One legend entry at (x, y): a marker or, with line true, a short line, then the text.
 * Returns the x of the next entry. */
double bnk__svg_legend(bnk__buf *b, double x, double y, bnk__shape shape, bool line,
                       const char *colour, const char *dash, const char *text);

/* A horizontal viridis colour bar at (x, y) of width w, dark (left, labelled lo) to bright
 * (right, hi), with a title above. */
void bnk__svg_colorbar(bnk__buf *b, double x, double y, double w, const char *lo, const char *hi,
                       const char *title);

/* ---- Charts (charts.c) ---------------------------------------------------------------------- */

/* What every chart reads: the study, its trials, and values derived once. */
typedef struct bnk__report {
    const bnk_study_config *cfg;
    const bnk_trial *trials;
    int64_t n;
    int64_t best;             /* index of the best complete trial, -1 when none      */
    double cutoff;            /* top trials: complete with loss <= cutoff (NaN: none) */
    const double *importance; /* [cfg->space.n], NaN where not assessed         */
    int64_t ntop;
    int64_t ncomplete, count[4]; /* per bnk_trial_state                          */
} bnk__report;

/* The objective in its own units for a loss (minimised) value. */
double bnk__objective(const bnk__report *r, double loss);

/* "trial 12 · complete · val_accuracy 0.8731 · bn.momentum=0.95 ..." for tooltips. */
void bnk__trial_tooltip(const bnk__report *r, const bnk_trial *t, char *buf, size_t size);

void bnk__chart_history(bnk__buf *b, const bnk__report *r);
void bnk__chart_importance(bnk__buf *b, const bnk__report *r);
void bnk__chart_parallel(bnk__buf *b, const bnk__report *r);
void bnk__chart_slice(bnk__buf *b, const bnk__report *r, int param);
void bnk__chart_curves(bnk__buf *b, const bnk__report *r);

/* ---- The trainer's per-epoch diagnostics (trainer_diag.c) ----------------------------------- */

/* What the stored diagnostics (bnk_trial.epochs) say; lists hold the first 10 trials. */
typedef struct bnk__epoch_stats {
    int64_t with_diag; /* trials with at least one epoch of diagnostics           */
    int64_t complete;  /* ... of which complete                                   */
    int64_t overfit;   /* complete trials the trainer flagged as overfitting       */
    int64_t overfit_list[10];
    const bnk_trial_epoch *overfit_at[10]; /* the first flagged epoch               */
    int64_t vanished; /* trials (any state) flagged with vanishing gradients      */
    int64_t vanished_list[10];
    const bnk_trial_epoch *vanished_at[10];
    double best_gap, median_gap;       /* train - validation accuracy at the last epoch: the best
                                          trial's, the median complete trial's (NaN: unknown) */
    const bnk_trial_epoch *best_epoch; /* the best trial's epoch of best_gap, or NULL      */
    double bn_lo, bn_hi;               /* BN running-variance range over the trials' last epochs */
} bnk__epoch_stats;

bnk__epoch_stats bnk__epoch_diagnostics(const bnk__report *r);

/* The summary's <li> (call only when es->with_diag > 0). */
void bnk__epoch_summary(bnk__buf *b, const bnk__report *r, const bnk__epoch_stats *es);

/* The <li> items of the "Failures and diagnostics" card: flagged trials with the epoch, BN
 * running-variance range, the best trial's table of epochs. */
void bnk__epoch_section(bnk__buf *b, const bnk__report *r, const bnk__epoch_stats *es);

/* The trainer's per-epoch diagnostics of trial t as a JSON array of objects (step, losses,
 * accuracies, the two flags, the smallest gradient norm and its tensor, the BN running-variance
 * range; NaN as null): what `bnkit report --json` writes per trial, and `bnkit trials --json`. */
json_t *bnk__report_epochs_json(const bnk_trial *t);

#endif /* BNKIT_REPORT_INTERNAL_H */
