/* The building blocks of the SIMD sweep template (bn_sweep_impl.h, whose comment describes the
 * whole design): tuning constants, the OpenMP team helpers, the shifted-sum statistics and their
 * Chan merge, the spans of a planar channel and the walk over an interleaved or blocked tensor's
 * rows, each calling the ISA file's primitives. Part of the template: included only by
 * bn_sweep_impl.h, after the ISA file has defined its primitives. */
#ifndef BNKIT_BN_SWEEP_BASE_H
#define BNKIT_BN_SWEEP_BASE_H

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdint.h>

#include "bn/bn_channel_impl.h"
#include "bn/bn_internal.h"

enum {
    SW_CHUNK = 4096,       /* planar values summed about one shift                        */
    SW_TILE_ROWS = 64,     /* interleaved rows per chunk (tile of rows x SW_CB channels)   */
    SW_CB = 64,            /* interleaved channels per block                              */
    SW_GROUP = 512,        /* widest interleaved channel group (stack scratch 8 KiB)      */
    SW_PGROUP = 64,        /* most planar channels swept together                          */
    SW_INFER_GROUP = 1024, /* channels per inference coefficient group                    */
    SW_SPLIT_GROUP = 8,    /* planar channels split across threads at a time              */
    SW_MAX_THREADS = 256   /* largest team the kernels use                                */
};
#define SW_PAR_MIN        ((size_t)1 << 16)   /* values below which one thread does everything  */
#define SW_SPLIT_MIN      ((size_t)1 << 14)   /* channel size from which a channel is split      */
#define SW_CACHE_BYTES    ((size_t)256 << 10) /* data a thread revisits: a quarter of a 1 MiB L2 */
#define SW_PREFETCH_BYTES ((size_t)512 << 10) /* channels up to this size prefetch the next    */

static inline size_t sw_min(size_t a, size_t b) {
    return a < b ? a : b;
}

/* p + c, or NULL for a NULL p (gamma, beta when their flag is off). */
static inline const float *sw_at(const float *p, size_t c) {
    return p ? p + c : NULL;
}

/* Whether the output (of `bytes`) of a training forward or backward is written with non-temporal
 * stores: when it is larger than bnk__bn_stream_limit() (half the last-level cache) it would not
 * stay in cache anyway, and streaming it saves the read-for-ownership of each line (4 of the 12
 * bytes per element a forward otherwise moves) while the statistics pass reads. Smaller outputs
 * stay in cache for the next layer. Short runs (planar channel groups) and inference do not
 * stream: on the machine of docs/PERFORMANCE.md that measured slower. */
static int sw_stream(size_t bytes) {
    return bytes > bnk__bn_stream_limit();
}

/* ---- Threads ------------------------------------------------------------------------------ */

/* Team size to ask for: 1 for small calls, else OpenMP's, capped so that every thread gets at
 * least SW_PAR_MIN/2 values. The team actually granted may be smaller (nesting, limits); the
 * bodies share work by omp_get_num_threads(). */
static int sw_threads(size_t numel) {
    if (numel < SW_PAR_MIN) return 1;
    size_t t = (size_t)omp_get_max_threads(), cap = numel / (SW_PAR_MIN / 2);
    if (t > cap) t = cap;
    if (t > SW_MAX_THREADS) t = SW_MAX_THREADS;
    return t < 1 ? 1 : (int)t;
}

typedef void (*sw_body_fn)(void *ctx, size_t tid, size_t nt);

static void sw_run(int nt, sw_body_fn body, void *ctx) {
    if (nt <= 1) {
        body(ctx, 0, 1);
        return;
    }
#pragma omp parallel num_threads(nt)
    body(ctx, (size_t)omp_get_thread_num(), (size_t)omp_get_num_threads());
}

/* [lo, hi) of thread tid's share of n items. */
static inline void sw_share(size_t n, size_t tid, size_t nt, size_t *lo, size_t *hi) {
    *lo = n * tid / nt;
    *hi = n * (tid + 1) / nt;
}

/* ---- Statistics ---------------------------------------------------------------------------- */

typedef struct sw_stat {
    double n, mean, m2; /* count, mean, sum of squared deviations from the mean */
} sw_stat;

/* The shift for a chunk: its first value, or 0 when that is not finite (so that an infinite
 * value makes the mean infinite, as in the reference, rather than NaN). */
static inline double sw_shift(float v) {
    return isfinite(v) ? (double)v : 0.0;
}

/* Chan et al.: merges the statistics (nb, mean_b, m2_b) into *a. */
static inline void sw_merge(sw_stat *a, double nb, double mean_b, double m2_b) {
    if (nb == 0.0) return;
    if (a->n == 0.0) {
        a->n = nb;
        a->mean = mean_b;
        a->m2 = m2_b;
        return;
    }
    const double n = a->n + nb, delta = mean_b - a->mean, f = nb / n;
    a->mean += delta * f;
    a->m2 += m2_b + delta * delta * a->n * f;
    a->n = n;
}

/* Mean and M2 of a chunk of nb values from its shifted sums. M2 cannot be negative; rounding
 * could make it so when all values are nearly equal (NaN is kept). */
static inline void sw_chunk(double nb, double K, double s1, double s2, double *mean, double *m2) {
    const double q = s1 / nb;
    double v = s2 - s1 * q;
    *mean = K + q;
    *m2 = v < 0.0 ? 0.0 : v;
}

/* ---- Planar spans -------------------------------------------------------------------------- */

/* The values [j, j1) of channel c (j = n*hw + s) as spans: nruns runs of len floats, the first
 * at element off, the next ones C*hw apart. A span holds at most max(cap, hw) values: whole
 * runs are grouped up to cap values, a run longer than cap is cut into pieces of cap. */
typedef struct sw_span {
    size_t off, nruns, len;
} sw_span;

static inline int sw_span_next(const bnk__bn_dims *d, size_t c, size_t *j, size_t j1, size_t cap,
                               sw_span *sp) {
    const size_t hw = d->hw;
    if (*j >= j1) return 0;
    const size_t n = *j / hw, s = *j % hw;
    sp->off = (n * d->c + c) * hw + s;
    if (s == 0 && hw <= cap && j1 - *j >= hw) {
        const size_t runs = (j1 - *j) / hw, most = cap / hw;
        sp->nruns = runs < most ? runs : most;
        sp->len = hw;
    } else {
        sp->nruns = 1;
        sp->len = sw_min(sw_min(hw - s, j1 - *j), cap);
    }
    *j += sp->nruns * sp->len;
    return 1;
}

/* Statistics of values [j0, j1) of planar channel c. */
static sw_stat sw_planar_stats(const float *x, const bnk__bn_dims *d, size_t c, size_t j0,
                               size_t j1) {
    sw_stat st = {0.0, 0.0, 0.0};
    const size_t stride = d->c * d->hw;
    sw_span sp;
    size_t j = j0;
    while (sw_span_next(d, c, &j, j1, SW_CHUNK, &sp)) {
        const double K = sw_shift(x[sp.off]), nb = (double)(sp.nruns * sp.len);
        double s1, s2, mean, m2;
        k_sums_runs(x + sp.off, sp.nruns, sp.len, stride, K, &s1, &s2);
        sw_chunk(nb, K, s1, s2, &mean, &m2);
        sw_merge(&st, nb, mean, m2);
    }
    return st;
}

/* Output pass over values [j0, j1) of planar channel c; pf > 0 prefetches the values pf floats
 * on (the next channel's, when that is hw). */
static void sw_planar_affine(float *y, const float *x, const bnk__bn_dims *d, size_t c, size_t j0,
                             size_t j1, float a, float cx, float b, int relu, int nt, size_t pf) {
    const size_t stride = d->c * d->hw;
    sw_span sp;
    size_t j = j0;
    while (sw_span_next(d, c, &j, j1, SIZE_MAX, &sp))
        k_affine_runs(y + sp.off, x + sp.off, sp.nruns, sp.len, stride, a, cx, b, relu, nt, pf);
}

static void sw_planar_gsums(const float *dy, const float *x, const float *y, const bnk__bn_dims *d,
                            size_t c, size_t j0, size_t j1, double center, double *sg,
                            double *sgx) {
    const size_t stride = d->c * d->hw;
    sw_span sp;
    size_t j = j0;
    double g = 0.0, gx = 0.0;
    while (sw_span_next(d, c, &j, j1, SIZE_MAX, &sp)) {
        double a, b;
        k_gsums_runs(dy + sp.off, x + sp.off, y ? y + sp.off : NULL, sp.nruns, sp.len, stride,
                     center, &a, &b);
        g += a;
        gx += b;
    }
    *sg = g;
    *sgx = gx;
}

static void sw_planar_gout(float *dx, const float *dy, const float *x, const float *y,
                           const bnk__bn_dims *d, size_t c, size_t j0, size_t j1, float kg,
                           float kx, float mx, float k0, int nt, size_t pf) {
    const size_t stride = d->c * d->hw;
    sw_span sp;
    size_t j = j0;
    while (sw_span_next(d, c, &j, j1, SIZE_MAX, &sp))
        k_gout_runs(dx + sp.off, dy + sp.off, x + sp.off, y ? y + sp.off : NULL, sp.nruns, sp.len,
                    stride, kg, kx, mx, k0, nt, pf);
}

/* ---- Interleaved tiles --------------------------------------------------------------------- */

/* A piece of an interleaved tensor that the row primitives take: nrows rows of w channels, ld
 * (bnk__bn_rows) floats apart, the first value at element off; its rows start at row r and its
 * channels at the group's channel j; `done` rows of the walk's range came before its rows. */
typedef struct sw_piece {
    size_t r, off, nrows, j, w, done;
} sw_piece;

/* Cuts rows [r0, r1) of a group of channels [c0, c0 + nc) into pieces: row ranges one after the
 * other, and within a row range the channels in order.
 *   Plain layouts (one run of rows): for the sums passes (sums != 0), tiles of SW_TILE_ROWS rows
 *   x SW_CB channels, each tile row across the group, so that a tile's lines stay in cache while
 *   its channels are swept; for the output passes, one piece of all the rows and channels. Rows
 *   are never cut per image (that would make NC a call per row).
 *   Blocked layouts: a row range per image (a run of rows), a block at a time (the group starts
 *   at a block): image by image, a group's blocks come one contiguous stretch of memory after
 *   the other. The sums passes go from the last image to the first, the output passes from the
 *   first: each pass starts with the data that the one before it (or the producer of the data)
 *   touched last, which may still be in cache (the training forward measured 1-2% faster so on
 *   (100,32,28,28), (100,64,14,14) and (32,64,56,56) nChw16c, the backward the same). */
typedef struct sw_walk {
    const bnk__bn_rows *g;
    size_t nc, r0, r1, maxrows, width;
    int rev;      /* row ranges from the last */
    size_t c0off; /* offset of channel c0 within a row */
    size_t r;     /* the current row range's first row (rev: its end) */
    size_t nrows; /* its rows */
    size_t roff;  /* the offset of its first row */
    size_t j;     /* the next piece's channel */
    size_t joff;  /* its offset from channel c0's */
    size_t done;  /* rows of the ranges before the current one */
} sw_walk;

static inline sw_walk sw_walk_start(const bnk__bn_dims *d, const bnk__bn_rows *g, size_t c0,
                                    size_t nc, size_t r0, size_t r1, int sums) {
    const int rev = d->blk && sums;
    const size_t maxrows = d->blk || !sums ? SIZE_MAX : SW_TILE_ROWS;
    const size_t width = d->blk ? d->blk : sums ? SW_CB : nc;
    sw_walk w = {g, nc, r0, r1, maxrows, width, rev, bnk__bn_rows_off(g, 0, c0), rev ? r1 : r0,
                 0, 0,  0,  0,  0};
    return w;
}

/* The next piece; 0 at the end. Integer divisions only once per row range of a blocked layout
 * (an image), none for plain layouts. */
static inline int sw_walk_next(sw_walk *w, sw_piece *p) {
    if (w->j >= w->nc) { /* the row range is done */
        w->r = w->rev ? w->r - w->nrows : w->r + w->nrows;
        w->done += w->nrows;
        w->j = 0;
    }
    if (w->done >= w->r1 - w->r0 || w->nc == 0) return 0;
    if (w->j == 0) {
        if (!w->rev) {
            w->nrows = sw_min(bnk__bn_rows_len(w->g, w->r, w->r1), w->maxrows);
        } else {
            const size_t last = w->r - 1, run0 = last - last % w->g->run;
            w->nrows = sw_min(w->r - (run0 > w->r0 ? run0 : w->r0), w->maxrows);
        }
        w->roff = bnk__bn_rows_off(w->g, w->rev ? w->r - w->nrows : w->r, 0) + w->c0off;
        w->joff = 0;
    }
    p->r = w->rev ? w->r - w->nrows : w->r;
    p->nrows = w->nrows;
    p->done = w->done;
    p->j = w->j;
    p->w = sw_min(w->width, w->nc - w->j);
    p->off = w->roff + w->joff;
    w->j += p->w;
    w->joff += w->g->bstride ? w->g->bstride : p->w; /* the next block, or the next channels */
    return 1;
}

/* Rows per chunk of the interleaved sums: a plain layout's tile (SW_TILE_ROWS); a blocked
 * layout's block of an image is one contiguous stretch, summed in chunks of SW_CHUNK values per
 * channel, as planar channels are. */
static inline size_t sw_tile_rows(const bnk__bn_dims *d) {
    return d->blk ? SW_CHUNK : SW_TILE_ROWS;
}

/* Statistics of rows [r0, r1) for interleaved channels [c0, c0 + nc): mean[nc], m2[nc] (count
 * r1 - r0), in chunks of sw_tile_rows rows merged in the order of sw_walk's pieces. */
static void sw_rows_stats(const float *x, const bnk__bn_dims *d, size_t c0, size_t nc, size_t r0,
                          size_t r1, double *mean, double *m2) {
    const bnk__bn_rows g = bnk__bn_rows_of(d);
    double K[SW_CB], s1[SW_CB], s2[SW_CB];
    for (size_t j = 0; j < nc; j++) mean[j] = m2[j] = 0.0;
    const size_t tile = sw_tile_rows(d);
    sw_walk wk = sw_walk_start(d, &g, c0, nc, r0, r1, 1);
    sw_piece p;
    while (sw_walk_next(&wk, &p)) {
        double n = (double)p.done; /* values of these channels merged so far */
        for (size_t t = 0; t < p.nrows; t += tile) {
            const size_t nr = sw_min(tile, p.nrows - t);
            const double nb = (double)nr, tot = n + nb, f = nb / tot;
            const float *xt = x + p.off + t * g.ld;
            for (size_t j = 0; j < p.w; j++) K[j] = sw_shift(xt[j]);
            k_sums_rows(xt, nr, g.ld, p.w, K, s1, s2);
            double *mu = mean + p.j, *q = m2 + p.j;
            for (size_t j = 0; j < p.w; j++) {
                double mb, qb;
                sw_chunk(nb, K[j], s1[j], s2[j], &mb, &qb);
                if (n == 0.0) {
                    mu[j] = mb;
                    q[j] = qb;
                } else {
                    const double delta = mb - mu[j];
                    mu[j] += delta * f;
                    q[j] += qb + delta * delta * n * f;
                }
            }
            n = tot;
        }
    }
}

/* Backward sums of rows [r0, r1) for interleaved channels [c0, c0 + nc): sg[nc], sgx[nc]
 * (written), in the pieces and chunks of sw_rows_stats. */
static void sw_rows_gsums(const float *dy, const float *x, const float *y, const bnk__bn_dims *d,
                          size_t c0, size_t nc, size_t r0, size_t r1, const double *center,
                          double *sg, double *sgx) {
    const bnk__bn_rows g = bnk__bn_rows_of(d);
    double a[SW_CB], b[SW_CB];
    for (size_t j = 0; j < nc; j++) sg[j] = sgx[j] = 0.0;
    const size_t tile = sw_tile_rows(d);
    sw_walk wk = sw_walk_start(d, &g, c0, nc, r0, r1, 1);
    sw_piece p;
    while (sw_walk_next(&wk, &p))
        for (size_t t = 0; t < p.nrows; t += tile) {
            const size_t nr = sw_min(tile, p.nrows - t), off = p.off + t * g.ld;
            k_gsums_rows(dy + off, x + off, y ? y + off : NULL, nr, g.ld, p.w, center + p.j, a, b);
            for (size_t j = 0; j < p.w; j++) {
                sg[p.j + j] += a[j];
                sgx[p.j + j] += b[j];
            }
        }
}

/* Output pass y = a*(x - c) + b (then ReLU) over rows [r0, r1) of interleaved channels
 * [c0, c0 + nc); a, c, b [nc]. */
static void sw_rows_affine(float *y, const float *x, const bnk__bn_dims *d, size_t c0, size_t nc,
                           size_t r0, size_t r1, const float *a, const float *c, const float *b,
                           int relu, int nt) {
    const bnk__bn_rows g = bnk__bn_rows_of(d);
    sw_walk wk = sw_walk_start(d, &g, c0, nc, r0, r1, 0);
    sw_piece p;
    while (sw_walk_next(&wk, &p))
        k_affine_rows(y + p.off, x + p.off, p.nrows, g.ld, p.w, a + p.j, c + p.j, b + p.j, relu,
                      nt);
}

/* Backward output pass over rows [r0, r1) of interleaved channels [c0, c0 + nc). */
static void sw_rows_gout(float *dx, const float *dy, const float *x, const float *y,
                         const bnk__bn_dims *d, size_t c0, size_t nc, size_t r0, size_t r1,
                         const float *kg, const float *kx, const float *mx, const float *k0,
                         int nt) {
    const bnk__bn_rows g = bnk__bn_rows_of(d);
    sw_walk wk = sw_walk_start(d, &g, c0, nc, r0, r1, 0);
    sw_piece p;
    while (sw_walk_next(&wk, &p))
        k_gout_rows(dx + p.off, dy + p.off, x + p.off, y ? y + p.off : NULL, p.nrows, g.ld, p.w,
                    kg + p.j, kx + p.j, mx + p.j, k0 + p.j, nt);
}

#endif /* BNKIT_BN_SWEEP_BASE_H */
