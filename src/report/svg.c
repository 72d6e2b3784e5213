/* The report's text buffer, HTML escaping, colour scales, axes and SVG pieces. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_internal.h"

/* ---- Text buffer ------------------------------------------------------------------------- */

void bnk__buf_free(bnk__buf *b) {
    if (!b) return;
    free(b->data);
    *b = (bnk__buf){0};
}

static bool reserve(bnk__buf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void bnk__buf_puts(bnk__buf *b, const char *s) {
    size_t n = strlen(s);
    if (!reserve(b, n)) return;
    memcpy(b->data + b->len, s, n + 1);
    b->len += n;
}

void bnk__buf_printf(bnk__buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void bnk__buf_escape(bnk__buf *b, const char *s) {
    for (const char *p = s; *p; p++) {
        const char *e = NULL;
        switch (*p) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        default:
            break;
        }
        if (e) {
            bnk__buf_puts(b, e);
        } else if (reserve(b, 1)) {
            b->data[b->len++] = *p;
            b->data[b->len] = '\0';
        }
    }
}

/* ---- Colour ---------------------------------------------------------------------------------- */

void bnk__viridis(double t, char out[8]) {
    static const unsigned char stops[11][3] = {{68, 1, 84},    {72, 36, 117},  {65, 68, 135},
                                               {53, 95, 141},  {42, 120, 142}, {33, 145, 140},
                                               {34, 168, 132}, {68, 191, 112}, {122, 209, 81},
                                               {189, 223, 38}, {253, 231, 37}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double f = t * 10;
    int k = (int)f;
    if (k > 9) k = 9;
    f -= k;
    int c[3];
    for (int j = 0; j < 3; j++)
        c[j] = (int)lround(stops[k][j] + f * (stops[k + 1][j] - stops[k][j]));
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

/* ---- Axes ---------------------------------------------------------------------------------- */

double bnk__axis_px(const bnk__axis *a, double v) {
    double lo = a->lo, hi = a->hi;
    if (a->log) {
        lo = log(lo);
        hi = log(hi);
        v = v > 0 ? log(v) : lo;
    }
    double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
    return a->p0 + t * (a->p1 - a->p0);
}

static int linear_ticks(double lo, double hi, int target, bool integer, double *ticks, int max) {
    if (!(hi > lo)) {
        if (max > 0) ticks[0] = lo;
        return max > 0;
    }
    double raw = (hi - lo) / (target > 1 ? target : 1);
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
    if (integer && step < 1) step = 1;
    int n = 0;
    for (double k = ceil(lo / step - 1e-9); n < max; k++) {
        double v = k * step;
        if (v > hi + step * 1e-9) break;
        ticks[n++] = fabs(v) < step * 1e-9 ? 0 : v;
    }
    return n;
}

int bnk__axis_ticks(const bnk__axis *a, int target, double *ticks, int max) {
    if (a->ncat > 0) {
        int n = a->ncat < max ? a->ncat : max;
        for (int k = 0; k < n; k++) ticks[k] = k;
        return n;
    }
    if (!a->log) return linear_ticks(a->lo, a->hi, target, a->integer, ticks, max);
    /* decades when the range spans at least two of them, thinned to about `target` */
    int e0 = (int)ceil(log10(a->lo) - 1e-9), e1 = (int)floor(log10(a->hi) + 1e-9);
    if (e1 - e0 >= 1) {
        int every = (e1 - e0 + 1 + target - 1) / target;
        int n = 0;
        for (int e = e0; e <= e1 && n < max; e += every) ticks[n++] = pow(10, e);
        return n;
    }
    /* 1-2-5 multiples inside a narrower range */
    int n = 0;
    for (int e = (int)floor(log10(a->lo)); e <= e1 + 1 && n < max; e++)
        for (int m = 0; m < 3 && n < max; m++) {
            double v = (m == 0 ? 1 : m == 1 ? 2 : 5) * pow(10, e);
            if (v >= a->lo * (1 - 1e-9) && v <= a->hi * (1 + 1e-9)) ticks[n++] = v;
        }
    if (n >= 3) return n;
    return linear_ticks(a->lo, a->hi, target, a->integer, ticks, max); /* placed on the log scale */
}

void bnk__axis_fit(bnk__axis *a, double lo, double hi) {
    a->log = false;
    a->ncat = 0;
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    double pad = (hi - lo) * 0.06;
    if (!(pad > 0)) pad = fabs(lo) > 0 ? fabs(lo) * 0.01 : 1;
    a->lo = lo - pad;
    a->hi = hi + pad;
}

void bnk__fmt_num(char *buf, size_t size, double v) {
    double av = fabs(v);
    if (v == 0 || !isfinite(v)) {
        snprintf(buf, size, "%g", v == 0 ? 0.0 : v);
    } else if (av >= 1e-3 && av < 1e5) {
        snprintf(buf, size, "%.4g", v);
    } else {
        int e = (int)floor(log10(av));
        double mant = v / pow(10, e);
        if (fabs(mant) >= 9.9995) { /* rounding carried into the next decade */
            mant /= 10;
            e++;
        }
        snprintf(buf, size, "%.3ge%d", mant, e);
    }
}

void bnk__axis_label(const bnk__axis *a, double v, char *buf, size_t size) {
    if (a->ncat > 0) {
        int k = (int)lround(v);
        snprintf(buf, size, "%s", k >= 0 && k < a->ncat && a->cats ? a->cats[k] : "?");
    } else {
        bnk__fmt_num(buf, size, v);
    }
}

/* ---- SVG pieces ------------------------------------------------------------------------------ */

void bnk__svg_open(bnk__buf *b, int width, int height, const char *title) {
    bnk__buf_printf(b,
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                    "width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"",
                    width, height, width, height);
    bnk__buf_escape(b, title);
    bnk__buf_puts(b, "\">");
}

void bnk__svg_close(bnk__buf *b) {
    bnk__buf_puts(b, "</svg>\n");
}

void bnk__svg_axes(bnk__buf *b, const bnk__plot *p, const char *xtitle, const char *ytitle) {
    double t[32];
    char lab[64];
    bnk__buf_puts(b, "<g class=\"axis\">");
    /* minor decade lines of log axes (2..9 x 10^k), unlabelled */
    for (int which = 0; which < 2; which++) {
        const bnk__axis *a = which ? &p->ay : &p->ax;
        if (!a->log || log10(a->hi / a->lo) < 1 || log10(a->hi / a->lo) > 8) continue;
        for (int e = (int)floor(log10(a->lo)); e <= (int)ceil(log10(a->hi)); e++)
            for (int m = 2; m <= 9; m++) {
                double v = m * pow(10, e), q = bnk__axis_px(a, v);
                if (v < a->lo || v > a->hi) continue;
                if (which)
                    bnk__buf_printf(b,
                                    "<line class=\"minor\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" "
                                    "y2=\"%.1f\"/>",
                                    p->x, p->x + p->w, q, q);
                else
                    bnk__buf_printf(b,
                                    "<line class=\"minor\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" "
                                    "y2=\"%.1f\"/>",
                                    q, q, p->y, p->y + p->h);
            }
    }
    int nx = bnk__axis_ticks(&p->ax, p->w > 500 ? 10 : 5, t, 32);
    for (int k = 0; k < nx; k++) {
        double q = bnk__axis_px(&p->ax, t[k]);
        bnk__axis_label(&p->ax, t[k], lab, sizeof lab);
        bnk__buf_printf(b,
                        "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                        "<line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                        "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                        q, q, p->y, p->y + p->h, q, q, p->y + p->h, p->y + p->h + 5, q,
                        p->y + p->h + 18);
        bnk__buf_escape(b, lab);
        bnk__buf_puts(b, "</text>");
    }
    int ny = bnk__axis_ticks(&p->ay, p->h > 250 ? 6 : 5, t, 32);
    for (int k = 0; k < ny; k++) {
        double q = bnk__axis_px(&p->ay, t[k]);
        bnk__axis_label(&p->ay, t[k], lab, sizeof lab);
        bnk__buf_printf(b,
                        "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                        "<line class=\"tick\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>"
                        "<text class=\"tl\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">",
                        p->x, p->x + p->w, q, q, p->x - 5, p->x, q, q, p->x - 8, q + 4);
        bnk__buf_escape(b, lab);
        bnk__buf_puts(b, "</text>");
    }
    bnk__buf_printf(b,
                    "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>",
                    p->x, p->y, p->w, p->h);
    if (xtitle) {
        bnk__buf_printf(b, "<text class=\"at\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                        p->x + p->w / 2, p->y + p->h + 38);
        bnk__buf_escape(b, xtitle);
        bnk__buf_puts(b, "</text>");
    }
    if (ytitle) {
        bnk__buf_printf(b,
                        "<text class=\"at\" transform=\"translate(%.1f %.1f) rotate(-90)\" "
                        "text-anchor=\"middle\">",
                        p->x - 52, p->y + p->h / 2);
        bnk__buf_escape(b, ytitle);
        bnk__buf_puts(b, "</text>");
    }
    bnk__buf_puts(b, "</g>");
}

void bnk__svg_marker(bnk__buf *b, bnk__shape shape, double x, double y, double r, const char *fill,
                     const char *stroke, const char *tooltip) {
    char style[96];
    snprintf(style, sizeof style, "fill=\"%s\" stroke=\"%s\"", fill ? fill : "none",
             stroke ? stroke : "none");
    switch (shape) {
    case BNK__CIRCLE:
        bnk__buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" %s>", x, y, r, style);
        break;
    case BNK__SQUARE:
        bnk__buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" %s>", x - r,
                        y - r, 2 * r, 2 * r, style);
        break;
    case BNK__TRIANGLE:
        bnk__buf_printf(b, "<path d=\"M%.1f %.1fL%.1f %.1fL%.1f %.1fZ\" %s>", x, y - 1.2 * r,
                        x + 1.1 * r, y + 0.8 * r, x - 1.1 * r, y + 0.8 * r, style);
        break;
    case BNK__CROSS:
        bnk__buf_printf(b,
                        "<path d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" fill=\"none\" "
                        "stroke=\"%s\" stroke-width=\"2\">",
                        x - r, y - r, x + r, y + r, x - r, y + r, x + r, y - r,
                        stroke ? stroke : (fill ? fill : BNK__C_INK));
        break;
    }
    if (tooltip) {
        bnk__buf_puts(b, "<title>");
        bnk__buf_escape(b, tooltip);
        bnk__buf_puts(b, "</title>");
    }
    bnk__buf_puts(b, shape == BNK__CIRCLE   ? "</circle>"
                     : shape == BNK__SQUARE ? "</rect>"
                                            : "</path>");
}

double bnk__svg_legend(bnk__buf *b, double x, double y, bnk__shape shape, bool line,
                       const char *colour, const char *dash, const char *text) {
    if (line)
        bnk__buf_printf(b,
                        "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                        "stroke-width=\"2.5\"%s%s%s/>",
                        x, x + 18, y, y, colour, dash ? " stroke-dasharray=\"" : "",
                        dash ? dash : "", dash ? "\"" : "");
    else
        bnk__svg_marker(b, shape, x + 9, y, 4.5, shape == BNK__TRIANGLE ? NULL : colour, colour,
                        NULL);
    bnk__buf_printf(b, "<text class=\"lg\" x=\"%.1f\" y=\"%.1f\">", x + 24, y + 4);
    bnk__buf_escape(b, text);
    bnk__buf_puts(b, "</text>");
    /* the next entry's x: the text at about 7 px per character (12.5 px sans), then a gap */
    size_t chars = 0;
    for (const char *p = text; *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
    return x + 24 + 7.0 * (double)chars + 26;
}

void bnk__svg_colorbar(bnk__buf *b, double x, double y, double w, const char *lo, const char *hi,
                       const char *title) {
    enum { STEPS = 40 };
    for (int k = 0; k < STEPS; k++) {
        char c[8];
        double t = (k + 0.5) / STEPS;
        bnk__viridis(t, c);
        bnk__buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"10\" fill=\"%s\"/>",
                        x + w * k / STEPS, y, w / STEPS + 0.3, c);
    }
    bnk__buf_printf(b, "<text class=\"lg\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", x - 6,
                    y + 9);
    bnk__buf_escape(b, lo);
    bnk__buf_printf(b, "</text><text class=\"lg\" x=\"%.1f\" y=\"%.1f\">", x + w + 6, y + 9);
    bnk__buf_escape(b, hi);
    bnk__buf_printf(b, "</text><text class=\"lg\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
                    x + w / 2, y - 4);
    bnk__buf_escape(b, title);
    bnk__buf_puts(b, "</text>");
}
