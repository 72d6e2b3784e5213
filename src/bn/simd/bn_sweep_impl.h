/* The threaded sweeps of the explicit-SIMD BN kernels (avx2, avx512). This file is a template:
 * an ISA file (src/bn/avx512/bn_avx512.c, src/bn/avx2/bn_avx2.c) defines the vector primitives
 * below as static functions, compiled with its own -m flags, then includes this file once and
 * builds its kernel table from sw_forward_train, sw_forward_infer and sw_backward. The
 * per-channel scalar math is bn_channel.c's, as in every kernel; this file decides who sweeps
 * which values, in what order, and how partial results meet. Its building blocks (constants,
 * team helpers, statistics merging, planar spans, the row walk) are in bn_sweep_base.h.
 *
 * Primitives the ISA file provides. "runs": nruns runs of len contiguous floats, the first at
 * the pointer and each next one `stride` floats further (planar layout). "rows": nrows rows of
 * nc contiguous floats, `ld` floats apart (interleaved layout); nc <= SW_CB for the sums. Rows
 * without gaps (ld == nc) of at most 16 channels, as a blocked layout's are, are one stretch of
 * memory, which the ISA files sweep as one run (their *_flat loops).
 *
 *   k_sums_runs(x, nruns, len, stride, K, *s1, *s2)      s1 = sum(x-K), s2 = sum((x-K)^2)
 *   k_affine_runs(y, x, nruns, len, stride, a, c, b, relu, nt)
 *                                    y = a*(x-c) + b, then max(y,0); nt: non-temporal stores
 *   k_gsums_runs(dy, x, y, nruns, len, stride, ctr, *sg, *sgx)
 *                                    g = dy masked by y > 0 when y != NULL;
 *                                    sg = sum(g), sgx = sum(g*(x-ctr))
 *   k_gout_runs(dx, dy, x, y, nruns, len, stride, kg, kx, mx, k0, nt)
 *                                    dx = kg*g + kx*(x-mx) + k0
 *   k_sums_rows(x, nrows, ld, nc, K[nc], s1[nc], s2[nc]) per column, written (not added)
 *   k_affine_rows(y, x, nrows, ld, nc, a[nc], c[nc], b[nc], relu, nt)
 *   k_gsums_rows(dy, x, y, nrows, ld, nc, ctr[nc], sg[nc], sgx[nc])   written (not added)
 *   k_gout_rows(dx, dy, x, y, nrows, ld, nc, kg[nc], kx[nc], mx[nc], k0[nc], nt)
 *
 * Layouts. Planar: NCHW. Interleaved: NC, NHWC, and the blocked nChw16c and nChw8c, which are
 * interleaved tensors seen one channel block at a time: rows of the block's channels, one
 * contiguous run of H*W rows per image (bnk__bn_rows; sw_walk cuts row ranges at images for
 * them only, and channel groups at blocks).
 *
 * Statistics. Each channel's values are cut into chunks of at most SW_CHUNK values (planar,
 * blocked) or SW_TILE_ROWS rows (NC, NHWC). A chunk is summed in one pass in double about a
 * shift K, the chunk's first value: s1 = sum(x-K), s2 = sum((x-K)^2), so the chunk's mean is
 * K + s1/n and its squared deviations M2 = s2 - s1^2/n. Because K is one of the chunk's values,
 * (K - mean)^2 <= M2, so s2 <= (n+1)*M2 and the cancellation costs at most log10(n+1) digits
 * of double precision (about 3.6 for n = 4096), leaving ~1e-12 relative: the same accuracy as
 * the reference's two passes over the data, in one pass, and with one read of each value.
 * Chunks, and the partial statistics of threads, meet with the parallel-variance formula of
 * Chan, Golub and LeVeque (n, mean, M2), the merge DESIGN.md states for synchronised BN, always
 * in the same order, so results do not depend on timing. Backward needs no shift: its sums are
 * taken about the saved centre, in double.
 *
 * Threads (OpenMP; no allocation, no locks). With T threads:
 *   planar      channels [0, C - C%T) are shared out whole, one thread per channel, so each
 *               channel's data is summed and then written while it is still in cache. Small
 *               channels (H*W small, as in (32,2048,7,7)) go in groups that fit SW_CACHE_BYTES,
 *               swept image by image so that memory is read in long sequential runs instead of
 *               N short ones per channel. The C%T remaining channels (all of them when C < T)
 *               are swept by every thread, each over its own slice of the channel's m values,
 *               when m >= SW_SPLIT_MIN; the partial statistics meet after a barrier. Inference
 *               splits planes (or, with fewer planes than 4T, values).
 *   interleaved by channels when there are enough SW_CB-channel blocks to go round evenly and
 *               a block's rows fit SW_CACHE_BYTES (no barrier); otherwise (tensors larger than
 *               the caches, few channels, tall NC) every thread streams a slice of the rows, and
 *               each group of channels' partial statistics meet after a barrier.
 *               Channel groups are SW_GROUP wide: few barriers, and rows read in long runs.
 *               Blocked layouts share out their channel blocks whenever they go round evenly
 *               (sw_by_channels), else rows as above (a thread's rows may start or end inside an
 *               image). A group's statistics are summed image by image, from the last image,
 *               each image's blocks in memory order, and its output written from the first.
 * Scratch: partial results live on each thread's own stack, in fixed sizes (SW_SPLIT_GROUP
 * channel triples; or a SW_GROUP-channel group's partials and coefficients, ~24 KiB at most);
 * threads publish a pointer to theirs in a fixed array of SW_MAX_THREADS pointers on the
 * calling thread's stack, read by the others after a barrier. Teams larger than SW_MAX_THREADS
 * are capped. The per-channel steps run vectorised over a group of channels
 * (bn_channel_impl.h). Calls smaller than SW_PAR_MIN values stay on
 * the calling thread. */
#include "bn/simd/bn_sweep_base.h"

/* ---- Training forward ---------------------------------------------------------------------- */

/* One context, and one set of thread bodies, for the fused training forward and for its two
 * phases (bn_internal.h): `stats` sweeps the statistics, `output` the output pass. Fused (both),
 * each channel's statistics go through steps 2-4 and its output follows, from cache where it
 * fits. Statistics alone store each channel's mean and M2 in mean[C], m2[C]; output alone takes
 * the coefficients from the saved fields. */
typedef struct sw_train_ctx {
    const bnk_bn_config *cfg;
    const bnk__bn_dims *d;
    int64_t step;
    float *y;
    double *saved;
    float *running_mean, *running_var;
    const float *x, *gamma, *beta;
    int stats, output;          /* the phases this call runs */
    double *mean, *m2;          /* [C] results of the statistics phase alone */
    int nt;                     /* write y with non-temporal stores */
    void *part[SW_MAX_THREADS]; /* per-thread partial results, published before a barrier */
} sw_train_ctx;

/* A thread's partial statistics of a row-split group (on its own stack, 8 KiB). */
typedef struct sw_rows_part {
    double n, mean[SW_GROUP], m2[SW_GROUP];
} sw_rows_part;

static void sw_train_stats_done(const sw_train_ctx *k, size_t c, double m, const sw_stat *st) {
    if (!k->output) {
        k->mean[c] = st->mean;
        k->m2[c] = st->m2;
        return;
    }
    bnk__bn_channel_forward(k->cfg, m, k->step, st->mean, st->m2 / m, &k->running_mean[c],
                            &k->running_var[c], k->saved, k->d->c, c);
}

/* The output coefficients a, cx, b [count] of channels [c0, c0 + count) from the saved fields. */
static void sw_train_coefs(const sw_train_ctx *k, size_t c0, size_t count, float *a, float *cx,
                           float *b) {
    bnk__bn_train_coefs_impl(k->cfg, count, k->saved + c0, k->d->c, sw_at(k->gamma, c0),
                             sw_at(k->beta, c0), a, cx, b);
}

/* Channels [c0, c0 + count) with batch means mean[] and squared deviations m2[] (turned into
 * variances in place) over m values: steps 2-4 vectorised over the channels, then the output
 * coefficients a, cx, b [count]. Statistics phase alone: stores mean[] and m2[] instead. */
static void sw_train_channels_done(const sw_train_ctx *k, size_t c0, size_t count, double m,
                                   const double *mean, double *m2, float *a, float *cx, float *b) {
    const size_t C = k->d->c;
    if (!k->output) {
        for (size_t j = 0; j < count; j++) {
            k->mean[c0 + j] = mean[j];
            k->m2[c0 + j] = m2[j];
        }
        return;
    }
    for (size_t j = 0; j < count; j++) m2[j] /= m;
    bnk__bn_channels_forward_impl(k->cfg, m, k->step, count, mean, m2, k->running_mean + c0,
                                  k->running_var + c0, k->saved + c0, C);
    sw_train_coefs(k, c0, count, a, cx, b);
}

/* How many planar channels to sweep together: as many as fit SW_CACHE_BYTES (bytes per value:
 * 4 forward, 8 backward), at most SW_PGROUP, and 1 when a run is longer than a chunk (long runs
 * already read memory sequentially). */
static size_t sw_planar_group(const bnk__bn_dims *d, size_t bytes) {
    if (d->hw > SW_CHUNK) return 1;
    const size_t g = SW_CACHE_BYTES / (d->n * d->hw * bytes);
    return g < 1 ? 1 : g > SW_PGROUP ? SW_PGROUP : g;
}

/* Planar channels [c0, c0 + g), each channel whole, swept image by image: for each n, the g
 * channels' runs are one contiguous stretch of memory. */
static void sw_train_planar_group(const sw_train_ctx *k, size_t c0, size_t g) {
    const bnk__bn_dims *d = k->d;
    const size_t C = d->c, hw = d->hw, N = d->n;
    float a[SW_PGROUP], cx[SW_PGROUP], b[SW_PGROUP];
    if (k->stats) {
        sw_stat st[SW_PGROUP];
        double K[SW_PGROUP], s1[SW_PGROUP], s2[SW_PGROUP];
        size_t cnt = 0;
        for (size_t i = 0; i < g; i++) st[i] = (sw_stat){0.0, 0.0, 0.0};
        for (size_t n = 0; n < N; n++) {
            const float *xn = k->x + (n * C + c0) * hw;
            if (cnt == 0)
                for (size_t i = 0; i < g; i++) {
                    K[i] = sw_shift(xn[i * hw]);
                    s1[i] = s2[i] = 0.0;
                }
            for (size_t i = 0; i < g; i++) {
                double u, v;
                k_sums_runs(xn + i * hw, 1, hw, 0, K[i], &u, &v);
                s1[i] += u;
                s2[i] += v;
            }
            cnt += hw;
            if (cnt >= SW_CHUNK || n + 1 == N) {
                for (size_t i = 0; i < g; i++) {
                    double mean, m2;
                    sw_chunk((double)cnt, K[i], s1[i], s2[i], &mean, &m2);
                    sw_merge(&st[i], (double)cnt, mean, m2);
                }
                cnt = 0;
            }
        }
        double mean[SW_PGROUP] = {0}, m2[SW_PGROUP] = {0}; /* only [0, g) is used */
        for (size_t i = 0; i < g; i++) {
            mean[i] = st[i].mean;
            m2[i] = st[i].m2;
        }
        sw_train_channels_done(k, c0, g, (double)(N * hw), mean, m2, a, cx, b);
    } else {
        sw_train_coefs(k, c0, g, a, cx, b);
    }
    if (!k->output) return;
    for (size_t n = 0; n < N; n++) {
        const size_t off = (n * C + c0) * hw;
        for (size_t i = 0; i < g; i++)
            k_affine_runs(k->y + off + i * hw, k->x + off + i * hw, 1, hw, 0, a[i], cx[i], b[i],
                          k->cfg->fuse_relu, 0, 0);
    }
}

static void sw_train_planar(void *ctx, size_t tid, size_t nt) {
    sw_train_ctx *k = ctx;
    const bnk__bn_dims *d = k->d;
    const size_t C = d->c, m = d->n * d->hw;
    const int relu = k->output && k->cfg->fuse_relu;
    const size_t whole = (nt > 1 && m >= SW_SPLIT_MIN) ? C - C % nt : C;
    const size_t G = sw_planar_group(d, sizeof(float));
    float a, cx, b;
    size_t lo, hi;
    sw_share(whole, tid, nt, &lo, &hi);
    for (size_t c = lo; c < hi; c += G) {
        const size_t g = sw_min(G, hi - c);
        if (g > 1) {
            sw_train_planar_group(k, c, g);
            continue;
        }
        if (k->stats) {
            const sw_stat st = sw_planar_stats(k->x, d, c, 0, m);
            sw_train_stats_done(k, c, (double)m, &st);
        }
        if (!k->output) continue;
        bnk__bn_train_coef(k->cfg, k->saved, C, c, k->gamma, k->beta, &a, &cx, &b);
        sw_planar_affine(k->y, k->x, d, c, 0, m, a, cx, b, relu, k->nt,
                         c + 1 < hi && m * sizeof(float) <= SW_PREFETCH_BYTES ? d->hw : 0);
    }
    /* The remaining channels: every thread sweeps its slice [lo, hi) of each. */
    sw_share(m, tid, nt, &lo, &hi);
    for (size_t g = whole; g < C; g += SW_SPLIT_GROUP) {
        const size_t gl = sw_min(SW_SPLIT_GROUP, C - g);
        if (k->stats) {
            sw_stat mine[SW_SPLIT_GROUP];
            for (size_t l = 0; l < gl; l++) mine[l] = sw_planar_stats(k->x, d, g + l, lo, hi);
            k->part[tid] = mine;
#pragma omp barrier
            for (size_t l = tid; l < gl; l += nt) {
                sw_stat st = {0.0, 0.0, 0.0};
                for (size_t t = 0; t < nt; t++) {
                    const sw_stat *p = (const sw_stat *)k->part[t] + l;
                    sw_merge(&st, p->n, p->mean, p->m2);
                }
                sw_train_stats_done(k, g + l, (double)m, &st);
            }
#pragma omp barrier /* the saved fields are ready, and `mine` is free again */
        }
        if (!k->output) continue;
        for (size_t l = 0; l < gl; l++) {
            bnk__bn_train_coef(k->cfg, k->saved, C, g + l, k->gamma, k->beta, &a, &cx, &b);
            sw_planar_affine(k->y, k->x, d, g + l, lo, hi, a, cx, b, relu, k->nt, 0);
        }
    }
}

/* Interleaved channels are shared out between threads in units of SW_CB channels, or of the
 * layout's block. */
static size_t sw_unit(const bnk__bn_dims *d) {
    return d->blk ? d->blk : SW_CB;
}

/* Interleaved: whether threads take channels (units of sw_unit; no barrier) rather than rows.
 * Plain layouts take channels when the units go round evenly and a unit's rows fit
 * SW_CACHE_BYTES, so the output pass re-reads from cache; otherwise rows: each thread streams
 * its rows sequentially, which measured faster for tensors larger than the caches (a unit is a
 * narrow column of long rows), and is the only way to share few channels or tall NC. A blocked
 * layout's unit, a block, is a contiguous stretch per image, read as fast as rows: it takes
 * channels whenever they go round evenly (faster than rows and their barriers with 2 threads
 * on (100,32,28,28), and far faster when a core is also busy with other work). */
static int sw_by_channels(const bnk__bn_dims *d, size_t nt) {
    const size_t U = sw_unit(d), nb = (d->c + U - 1) / U, R = d->n * d->hw;
    if (nt == 1) return 1;
    return nb >= nt && (nb % nt == 0 || nb >= 4 * nt) &&
           (d->blk || R * U * sizeof(float) <= SW_CACHE_BYTES);
}

static void sw_train_interleaved(void *ctx, size_t tid, size_t nt) {
    sw_train_ctx *k = ctx;
    const bnk__bn_dims *d = k->d;
    const size_t C = d->c, R = d->n * d->hw;
    const int relu = k->output && k->cfg->fuse_relu;
    float a[SW_GROUP], cx[SW_GROUP], b[SW_GROUP];
    size_t lo, hi;
    /* (an output pass alone has nothing to re-read from cache, and takes rows) */
    if (k->stats ? sw_by_channels(d, nt) : nt == 1) {
        double mean[SW_GROUP], m2[SW_GROUP];
        const size_t w = SW_GROUP, U = sw_unit(d);
        sw_share((C + U - 1) / U, tid, nt, &lo, &hi);
        lo *= U;
        hi = sw_min(hi * U, C);
        for (size_t g = lo; g < hi; g += w) {
            const size_t gl = sw_min(w, hi - g);
            if (k->stats) {
                sw_rows_stats(k->x, d, g, gl, 0, R, mean, m2);
                sw_train_channels_done(k, g, gl, (double)R, mean, m2, a, cx, b);
            } else {
                sw_train_coefs(k, g, gl, a, cx, b);
            }
            if (k->output) sw_rows_affine(k->y, k->x, d, g, gl, 0, R, a, cx, b, relu, k->nt);
        }
        return;
    }
    /* Row split: thread tid sums rows [lo, hi) of a group of channels; partials meet. */
    sw_rows_part mine;
    double mean[SW_GROUP], m2[SW_GROUP];
    const size_t w = SW_GROUP;
    sw_share(R, tid, nt, &lo, &hi);
    mine.n = (double)(hi - lo);
    for (size_t g = 0; g < C; g += w) {
        const size_t gl = sw_min(w, C - g);
        if (k->stats) {
            sw_rows_stats(k->x, d, g, gl, lo, hi, mine.mean, mine.m2);
            k->part[tid] = &mine;
#pragma omp barrier
            /* thread tid finishes channels [j0, j1) of the group, merging in thread order */
            size_t j0, j1;
            sw_share(gl, tid, nt, &j0, &j1);
            for (size_t j = j0; j < j1; j++) {
                sw_stat st = {0.0, 0.0, 0.0};
                for (size_t t = 0; t < nt; t++) {
                    const sw_rows_part *p = k->part[t];
                    sw_merge(&st, p->n, p->mean[j], p->m2[j]);
                }
                mean[j - j0] = st.mean;
                m2[j - j0] = st.m2;
            }
            if (j1 > j0) sw_train_channels_done(k, g + j0, j1 - j0, (double)R, mean, m2, a, cx, b);
#pragma omp barrier /* the saved fields are ready, and `mine` is free again */
        }
        if (!k->output) continue;
        sw_train_coefs(k, g, gl, a, cx, b);
        sw_rows_affine(k->y, k->x, d, g, gl, lo, hi, a, cx, b, relu, k->nt);
    }
}

static void sw_forward_train(const bnk_bn_config *cfg, const bnk__bn_dims *d, int64_t step,
                             float *y, double *saved, float *running_mean, float *running_var,
                             const float *x, const float *gamma, const float *beta) {
    sw_train_ctx k = {.cfg = cfg,
                      .d = d,
                      .step = step,
                      .y = y,
                      .saved = saved,
                      .running_mean = running_mean,
                      .running_var = running_var,
                      .x = x,
                      .gamma = gamma,
                      .beta = beta,
                      .stats = 1,
                      .output = 1,
                      .nt = sw_stream(d->n * d->c * d->hw * sizeof(float))};
    sw_run(sw_threads(d->n * d->c * d->hw), d->planar ? sw_train_planar : sw_train_interleaved, &k);
}

/* Phase (a): the statistics sweep of sw_forward_train alone. */
static void sw_moments(const bnk__bn_dims *d, double *count, double *mean, double *m2,
                       const float *x) {
    for (size_t c = 0; c < d->c; c++) count[c] = (double)(d->n * d->hw);
    sw_train_ctx k = {.d = d, .x = x, .stats = 1, .output = 0, .mean = mean, .m2 = m2};
    sw_run(sw_threads(d->n * d->c * d->hw), d->planar ? sw_train_planar : sw_train_interleaved, &k);
}

/* Phase (b): the output sweep of sw_forward_train alone, coefficients from the saved fields. */
static void sw_train_output(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                            const double *saved, const float *x, const float *gamma,
                            const float *beta) {
    sw_train_ctx k = {.cfg = cfg,
                      .d = d,
                      .y = y,
                      .saved = (double *)saved, /* only read when stats is off */
                      .x = x,
                      .gamma = gamma,
                      .beta = beta,
                      .stats = 0,
                      .output = 1,
                      .nt = sw_stream(d->n * d->c * d->hw * sizeof(float))};
    sw_run(sw_threads(d->n * d->c * d->hw), d->planar ? sw_train_planar : sw_train_interleaved, &k);
}

/* ---- Inference forward --------------------------------------------------------------------- */

typedef struct sw_infer_ctx {
    const bnk_bn_config *cfg;
    const bnk__bn_dims *d;
    float *y;
    const float *x, *gamma, *beta, *running_mean, *running_var;
    int nt; /* write y with non-temporal stores */
} sw_infer_ctx;

static void sw_infer_planar(void *ctx, size_t tid, size_t nt) {
    const sw_infer_ctx *k = ctx;
    const bnk__bn_dims *d = k->d;
    const size_t C = d->c, hw = d->hw, planes = d->n * C;
    const int relu = k->cfg->fuse_relu;
    size_t lo, hi;
    if (planes < 4 * nt) {
        /* Few planes: split the values, in pieces of whole 64-byte lines. */
        const size_t total = planes * hw, lines = (total + 15) / 16;
        sw_share(lines, tid, nt, &lo, &hi);
        lo *= 16;
        hi = sw_min(hi * 16, total);
        for (size_t e = lo; e < hi;) {
            const size_t p = e / hw, s = e % hw, len = sw_min(hw - s, hi - e), c = p % C;
            float a, b;
            bnk__bn_infer_coef(k->cfg, c, k->gamma, k->beta, k->running_var, &a, &b);
            k_affine_runs(k->y + e, k->x + e, 1, len, 0, a, k->running_mean[c], b, relu, k->nt, 0);
            e += len;
        }
        return;
    }
    /* Planes [lo, hi) in memory order, with the coefficients of up to SW_INFER_GROUP channels
     * computed once (for C > SW_INFER_GROUP, one pass per channel group). */
    float a[SW_INFER_GROUP], b[SW_INFER_GROUP];
    sw_share(planes, tid, nt, &lo, &hi);
    if (lo == hi) return;
    for (size_t g0 = 0; g0 < C; g0 += SW_INFER_GROUP) {
        const size_t g1 = sw_min(C, g0 + SW_INFER_GROUP);
        int ready = 0;
        for (size_t n = lo / C; n <= (hi - 1) / C; n++) {
            const size_t p0 = lo > n * C + g0 ? lo : n * C + g0, p1 = sw_min(hi, n * C + g1);
            if (p0 >= p1) continue;
            if (!ready) {
                for (size_t c = g0; c < g1; c++)
                    bnk__bn_infer_coef(k->cfg, c, k->gamma, k->beta, k->running_var, &a[c - g0],
                                       &b[c - g0]);
                ready = 1;
            }
            for (size_t p = p0; p < p1; p++) {
                const size_t c = p - n * C;
                k_affine_runs(k->y + p * hw, k->x + p * hw, 1, hw, 0, a[c - g0], k->running_mean[c],
                              b[c - g0], relu, k->nt, 0);
            }
        }
    }
}

static void sw_infer_interleaved(void *ctx, size_t tid, size_t nt) {
    const sw_infer_ctx *k = ctx;
    const bnk__bn_dims *d = k->d;
    const size_t C = d->c, R = d->n * d->hw;
    const int relu = k->cfg->fuse_relu;
    float a[SW_INFER_GROUP], b[SW_INFER_GROUP];
    size_t lo, hi;
    sw_share(R, tid, nt, &lo, &hi);
    if (lo == hi) return;
    for (size_t g = 0; g < C; g += SW_INFER_GROUP) {
        const size_t gl = sw_min(SW_INFER_GROUP, C - g);
        for (size_t j = 0; j < gl; j++)
            bnk__bn_infer_coef(k->cfg, g + j, k->gamma, k->beta, k->running_var, &a[j], &b[j]);
        sw_rows_affine(k->y, k->x, d, g, gl, lo, hi, a, k->running_mean + g, b, relu, k->nt);
    }
}

static void sw_forward_infer(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                             const float *x, const float *gamma, const float *beta,
                             const float *running_mean, const float *running_var) {
    /* Inference streams one pass; non-temporal stores measured slower there (PERFORMANCE.md). */
    sw_infer_ctx k = {cfg, d, y, x, gamma, beta, running_mean, running_var, 0};
    sw_run(sw_threads(d->n * d->c * d->hw), d->planar ? sw_infer_planar : sw_infer_interleaved, &k);
}

/* ---- Backward ------------------------------------------------------------------------------ */

/* As for the training forward, one context and one set of bodies for the fused backward and
 * its two phases: `sums` sweeps the per-channel sums, `output` the dx pass. Sums alone store
 * sum(g) and sum(g*xhat) in sum_g[C], sum_gxh[C]; output alone takes them (the group's) from
 * there, with the group's value count m, and leaves dgamma and dbeta alone. */
typedef struct sw_back_ctx {
    const bnk_bn_config *cfg;
    const bnk__bn_dims *d;
    float *dx, *dgamma, *dbeta;
    const float *dy, *x, *y, *gamma;
    const double *saved;
    int sums, output;        /* the phases this call runs */
    double *sum_g, *sum_gxh; /* [C] results of the sums phase, or inputs of the output phase */
    double m;                /* the output phase's value count */
    int nt;                  /* write dx with non-temporal stores */
    void *part[SW_MAX_THREADS];
} sw_back_ctx;

/* A thread's partial backward sums of a row-split group (on its own stack, 8 KiB). */
typedef struct sw_rows_gpart {
    double sg[SW_GROUP], sgx[SW_GROUP];
} sw_rows_gpart;

/* Channel c's sums sg = sum(g), sgx = sum(g*(x - center)) are complete. Sums phase alone:
 * stores them (sgx times inv_std) and returns 1; otherwise returns 0. */
static int sw_back_sums_done(const sw_back_ctx *k, size_t c, double sg, double sgx) {
    if (k->output) return 0;
    k->sum_g[c] = sg;
    k->sum_gxh[c] = sgx * k->saved[BNK_SAVED_INV_STD * k->d->c + c];
    return 1;
}

/* Coefficients of channel c: fused, from this call's sums sg, sgx over m values, accumulating
 * dgamma, dbeta when acc; output phase alone, from the group's sums and m (sg, sgx, acc
 * unused). */
static void sw_back_coef(const sw_back_ctx *k, size_t c, double m, double sg, double sgx, int acc,
                         float *kg, float *kx, float *mx, float *k0) {
    const bnk_bn_config *cfg = k->cfg;
    const size_t C = k->d->c;
    double sgxh;
    if (k->sums) {
        sgxh = sgx * k->saved[BNK_SAVED_INV_STD * C + c];
    } else {
        m = k->m;
        sg = k->sum_g[c];
        sgxh = k->sum_gxh[c];
        acc = 0;
    }
    const bnk__bn_grad_coef q = bnk__bn_channel_backward(
        cfg, m, cfg->scale ? (double)k->gamma[c] : 1.0, k->saved, C, c, sg, sgxh);
    bnk__bn_grad_coef_f32(&q, k->saved[BNK_SAVED_BATCH_MEAN * C + c], kg, kx, mx, k0);
    if (acc) {
        if (cfg->scale && k->dgamma) k->dgamma[c] = (float)((double)k->dgamma[c] + q.dgamma);
        if (cfg->center && k->dbeta) k->dbeta[c] = (float)((double)k->dbeta[c] + q.dbeta);
    }
}

/* Backward of planar channels [c0, c0 + g), each whole, image by image (see
 * sw_train_planar_group). */
static void sw_back_planar_group(const sw_back_ctx *k, size_t c0, size_t g) {
    const bnk__bn_dims *d = k->d;
    const size_t C = d->c, hw = d->hw, N = d->n;
    const float *ymask = k->cfg->fuse_relu ? k->y : NULL;
    const double *center = k->saved + BNK_SAVED_CENTER * C + c0;
    double sg[SW_PGROUP], sgx[SW_PGROUP];
    float kg[SW_PGROUP], kx[SW_PGROUP], mx[SW_PGROUP], k0[SW_PGROUP];
    for (size_t i = 0; i < g; i++) sg[i] = sgx[i] = 0.0;
    if (k->sums)
        for (size_t n = 0; n < N; n++) {
            const size_t off = (n * C + c0) * hw;
            for (size_t i = 0; i < g; i++) {
                const size_t o = off + i * hw;
                double u, v;
                k_gsums_runs(k->dy + o, k->x + o, ymask ? ymask + o : NULL, 1, hw, 0, center[i], &u,
                             &v);
                sg[i] += u;
                sgx[i] += v;
            }
        }
    for (size_t i = 0; i < g; i++)
        if (!sw_back_sums_done(k, c0 + i, sg[i], sgx[i]))
            sw_back_coef(k, c0 + i, (double)(N * hw), sg[i], sgx[i], 1, &kg[i], &kx[i], &mx[i],
                         &k0[i]);
    if (!k->output) return;
    for (size_t n = 0; n < N; n++) {
        const size_t off = (n * C + c0) * hw;
        for (size_t i = 0; i < g; i++) {
            const size_t o = off + i * hw;
            k_gout_runs(k->dx + o, k->dy + o, k->x + o, ymask ? ymask + o : NULL, 1, hw, 0, kg[i],
                        kx[i], mx[i], k0[i], 0, 0);
        }
    }
}

static void sw_back_planar(void *ctx, size_t tid, size_t nt) {
    sw_back_ctx *k = ctx;
    const bnk__bn_dims *d = k->d;
    const size_t C = d->c, m = d->n * d->hw;
    const float *ymask = k->cfg->fuse_relu ? k->y : NULL;
    const double *center = k->saved + BNK_SAVED_CENTER * C;
    const size_t whole = (nt > 1 && m >= SW_SPLIT_MIN) ? C - C % nt : C;
    const size_t G = sw_planar_group(d, 2 * sizeof(float));
    float kg, kx, mx, k0;
    size_t lo, hi;
    sw_share(whole, tid, nt, &lo, &hi);
    for (size_t c = lo; c < hi; c += G) {
        const size_t g = sw_min(G, hi - c);
        if (g > 1) {
            sw_back_planar_group(k, c, g);
            continue;
        }
        double sg = 0.0, sgx = 0.0;
        if (k->sums) sw_planar_gsums(k->dy, k->x, ymask, d, c, 0, m, center[c], &sg, &sgx);
        if (sw_back_sums_done(k, c, sg, sgx)) continue;
        sw_back_coef(k, c, (double)m, sg, sgx, 1, &kg, &kx, &mx, &k0);
        sw_planar_gout(k->dx, k->dy, k->x, ymask, d, c, 0, m, kg, kx, mx, k0, k->nt, 0);
    }
    sw_share(m, tid, nt, &lo, &hi);
    for (size_t g = whole; g < C; g += SW_SPLIT_GROUP) {
        const size_t gl = sw_min(SW_SPLIT_GROUP, C - g);
        double mine[SW_SPLIT_GROUP][2];
        if (k->sums) {
            for (size_t l = 0; l < gl; l++)
                sw_planar_gsums(k->dy, k->x, ymask, d, g + l, lo, hi, center[g + l], &mine[l][0],
                                &mine[l][1]);
            k->part[tid] = mine;
#pragma omp barrier
        }
        /* Every thread merges the same partials in the same order, so every thread derives the
         * same coefficients; thread l % nt alone accumulates (or stores) channel l's. */
        for (size_t l = 0; l < gl; l++) {
            double sg = 0.0, sgx = 0.0;
            if (k->sums)
                for (size_t t = 0; t < nt; t++) {
                    const double(*p)[2] = k->part[t];
                    sg += p[l][0];
                    sgx += p[l][1];
                }
            if (!k->output) {
                if (l % nt == tid) sw_back_sums_done(k, g + l, sg, sgx);
                continue;
            }
            sw_back_coef(k, g + l, (double)m, sg, sgx, l % nt == tid, &kg, &kx, &mx, &k0);
            sw_planar_gout(k->dx, k->dy, k->x, ymask, d, g + l, lo, hi, kg, kx, mx, k0, k->nt, 0);
        }
        if (k->sums) {
#pragma omp barrier /* before `mine` is overwritten by the next group */
        }
    }
}

static void sw_back_interleaved(void *ctx, size_t tid, size_t nt) {
    sw_back_ctx *k = ctx;
    const bnk__bn_dims *d = k->d;
    const size_t C = d->c, R = d->n * d->hw;
    const float *ymask = k->cfg->fuse_relu ? k->y : NULL;
    const double *center = k->saved + BNK_SAVED_CENTER * C;
    float kg[SW_GROUP], kx[SW_GROUP], mx[SW_GROUP], k0[SW_GROUP];
    size_t lo, hi;
    /* (an output pass alone has nothing to re-read from cache, and takes rows) */
    if (k->sums ? sw_by_channels(d, nt) : nt == 1) {
        double sg[SW_GROUP], sgx[SW_GROUP];
        const size_t w = SW_GROUP, U = sw_unit(d);
        sw_share((C + U - 1) / U, tid, nt, &lo, &hi);
        lo *= U;
        hi = sw_min(hi * U, C);
        for (size_t g = lo; g < hi; g += w) {
            const size_t gl = sw_min(w, hi - g);
            if (k->sums) sw_rows_gsums(k->dy, k->x, ymask, d, g, gl, 0, R, center + g, sg, sgx);
            for (size_t j = 0; j < gl; j++) {
                const double u = k->sums ? sg[j] : 0.0, v = k->sums ? sgx[j] : 0.0;
                if (!sw_back_sums_done(k, g + j, u, v))
                    sw_back_coef(k, g + j, (double)R, u, v, 1, &kg[j], &kx[j], &mx[j], &k0[j]);
            }
            if (k->output)
                sw_rows_gout(k->dx, k->dy, k->x, ymask, d, g, gl, 0, R, kg, kx, mx, k0, k->nt);
        }
        return;
    }
    sw_rows_gpart mine;
    const size_t w = SW_GROUP;
    sw_share(R, tid, nt, &lo, &hi);
    for (size_t g = 0; g < C; g += w) {
        const size_t gl = sw_min(w, C - g);
        size_t j0, j1;
        sw_share(gl, tid, nt, &j0, &j1);
        if (k->sums) {
            sw_rows_gsums(k->dy, k->x, ymask, d, g, gl, lo, hi, center + g, mine.sg, mine.sgx);
            k->part[tid] = &mine;
#pragma omp barrier
        }
        /* fused: every thread derives every coefficient, thread tid accumulates [j0, j1);
         * sums alone: thread tid stores [j0, j1) */
        for (size_t j = k->output ? 0 : j0; j < (k->output ? gl : j1); j++) {
            double sg = 0.0, sgx = 0.0;
            if (k->sums)
                for (size_t t = 0; t < nt; t++) {
                    const sw_rows_gpart *p = k->part[t];
                    sg += p->sg[j];
                    sgx += p->sgx[j];
                }
            if (!sw_back_sums_done(k, g + j, sg, sgx))
                sw_back_coef(k, g + j, (double)R, sg, sgx, j >= j0 && j < j1, &kg[j], &kx[j],
                             &mx[j], &k0[j]);
        }
        if (k->sums) {
#pragma omp barrier /* before `mine` is overwritten by the next group */
        }
        if (!k->output) continue;
        sw_rows_gout(k->dx, k->dy, k->x, ymask, d, g, gl, lo, hi, kg, kx, mx, k0, k->nt);
    }
}

static void sw_backward(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *dx, float *dgamma,
                        float *dbeta, const float *dy, const float *x, const float *y,
                        const float *gamma, const double *saved) {
    sw_back_ctx k = {.cfg = cfg,
                     .d = d,
                     .dx = dx,
                     .dgamma = dgamma,
                     .dbeta = dbeta,
                     .dy = dy,
                     .x = x,
                     .y = y,
                     .gamma = gamma,
                     .saved = saved,
                     .sums = 1,
                     .output = 1,
                     .nt = sw_stream(d->n * d->c * d->hw * sizeof(float))};
    sw_run(sw_threads(d->n * d->c * d->hw), d->planar ? sw_back_planar : sw_back_interleaved, &k);
}

/* Phase (c): the sums sweep of sw_backward alone. */
static void sw_grad_sums(const bnk_bn_config *cfg, const bnk__bn_dims *d, double *sum_g,
                         double *sum_gxh, const float *dy, const float *x, const float *y,
                         const double *saved) {
    sw_back_ctx k = {.cfg = cfg,
                     .d = d,
                     .dy = dy,
                     .x = x,
                     .y = y,
                     .saved = saved,
                     .sums = 1,
                     .output = 0,
                     .sum_g = sum_g,
                     .sum_gxh = sum_gxh};
    sw_run(sw_threads(d->n * d->c * d->hw), d->planar ? sw_back_planar : sw_back_interleaved, &k);
}

/* Phase (d): the dx sweep of sw_backward alone, from the group's sums and value count m. */
static void sw_grad_output(const bnk_bn_config *cfg, const bnk__bn_dims *d, double m, float *dx,
                           const double *sum_g, const double *sum_gxh, const float *dy,
                           const float *x, const float *y, const float *gamma,
                           const double *saved) {
    sw_back_ctx k = {.cfg = cfg,
                     .d = d,
                     .dx = dx,
                     .dy = dy,
                     .x = x,
                     .y = y,
                     .gamma = gamma,
                     .saved = saved,
                     .sums = 0,
                     .output = 1,
                     .sum_g = (double *)sum_g, /* only read when sums is off */
                     .sum_gxh = (double *)sum_gxh,
                     .m = m,
                     .nt = sw_stream(d->n * d->c * d->hw * sizeof(float))};
    sw_run(sw_threads(d->n * d->c * d->hw), d->planar ? sw_back_planar : sw_back_interleaved, &k);
}
