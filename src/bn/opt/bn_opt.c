/* Optimised portable BN kernels: loops the compiler vectorises (OpenMP simd), OpenMP threads over
 * channels, statistics accumulated in double. The per-channel scalar math is shared with the
 * reference (bn_channel.c); only the sweeps over the data differ.
 *
 * Accuracy: sums are taken in double, the variance from deviations about the double mean (two
 * passes), and the float output pass computes a*(x - cx) + b with cx the channel's centre rounded
 * to float, so that channels with a large mean and a small spread do not cancel catastrophically.
 *
 * Layout: planar (NCHW with H*W > 1) sweeps each channel's n runs of hw floats; interleaved (NC,
 * NHWC) sweeps rows of C floats in blocks of OPT_BLOCK channels with per-block accumulators on
 * the stack (no allocation). Blocked (nChw16c, nChw8c) is interleaved, one channel block of the
 * layout at a time: its rows (bnk__bn_rows) are swept image by image, one contiguous run each. */
#include <math.h>
#include <stddef.h>

#include "bn/bn_internal.h"

enum {
    OPT_BLOCK = 64,             /* channels per block in the interleaved layouts      */
    OPT_PARALLEL_MIN = 1 << 16, /* elements below which threads cost more than they save */
    OPT_ROW_CHUNK = 256         /* rows per task in the interleaved inference sweep  */
};

static inline float relu_if(int on, float v) {
    return on ? (v > 0.0f ? v : 0.0f) : v;
}

/* ---- Inner loops, shared by the fused kernels and the phases ------------------------------- */

/* Planar channel c: its mean and M2 in two passes over its n runs of hw values. */
static inline void planar_moments(const bnk__bn_dims *d, size_t c, double *mean_out, double *m2_out,
                                  const float *x) {
    const size_t C = d->c, hw = d->hw, m = d->n * hw;
    double sum = 0.0;
    for (size_t n = 0; n < d->n; n++) {
        const float *xp = x + (n * C + c) * hw;
#pragma omp simd reduction(+ : sum)
        for (size_t s = 0; s < hw; s++) sum += (double)xp[s];
    }
    const double mean = sum / (double)m;
    double sq = 0.0;
    for (size_t n = 0; n < d->n; n++) {
        const float *xp = x + (n * C + c) * hw;
#pragma omp simd reduction(+ : sq)
        for (size_t s = 0; s < hw; s++) {
            double dev = (double)xp[s] - mean;
            sq += dev * dev;
        }
    }
    *mean_out = mean;
    *m2_out = sq;
}

/* y = a*(x - cx) + b (then ReLU) over planar channel c. */
static inline void planar_affine(const bnk__bn_dims *d, size_t c, int relu, float a, float cx,
                                 float b, float *y, const float *x) {
    const size_t C = d->c, hw = d->hw;
    for (size_t n = 0; n < d->n; n++) {
        const float *xp = x + (n * C + c) * hw;
        float *yp = y + (n * C + c) * hw;
#pragma omp simd
        for (size_t s = 0; s < hw; s++) yp[s] = relu_if(relu, a * (xp[s] - cx) + b);
    }
}

/* Channels per interleaved block: OPT_BLOCK, or the layout's channel block (so that a block of
 * the loops below never crosses one of the layout). */
static inline size_t block_width(const bnk__bn_dims *d) {
    return d->blk ? d->blk : OPT_BLOCK;
}

/* Interleaved channels [c0, c0 + nb), nb <= block_width: means and M2s in two passes. Rows go
 * run by run (bnk__bn_rows): a run's first row at offset o, its len rows ld apart. */
static inline void block_moments(const bnk__bn_dims *d, size_t c0, size_t nb, double *mean,
                                 double *sq, const float *x) {
    const bnk__bn_rows g = bnk__bn_rows_of(d);
    const size_t rows = d->n * d->hw, ld = g.ld;
    double sum[OPT_BLOCK] = {0};
    for (size_t j = 0; j < nb; j++) sq[j] = 0.0;
    for (size_t r0 = 0, len = 0; r0 < rows; r0 += len) {
        len = bnk__bn_rows_len(&g, r0, rows);
        const float *xs = x + bnk__bn_rows_off(&g, r0, c0);
        for (size_t r = 0; r < len; r++) {
            const float *xr = xs + r * ld;
#pragma omp simd
            for (size_t j = 0; j < nb; j++) sum[j] += (double)xr[j];
        }
    }
    for (size_t j = 0; j < nb; j++) mean[j] = sum[j] / (double)rows;
    for (size_t r0 = 0, len = 0; r0 < rows; r0 += len) {
        len = bnk__bn_rows_len(&g, r0, rows);
        const float *xs = x + bnk__bn_rows_off(&g, r0, c0);
        for (size_t r = 0; r < len; r++) {
            const float *xr = xs + r * ld;
#pragma omp simd
            for (size_t j = 0; j < nb; j++) {
                double dev = (double)xr[j] - mean[j];
                sq[j] += dev * dev;
            }
        }
    }
}

/* y = a*(x - cx) + b (then ReLU) over rows [r0, r1) of interleaved channels [c0, c0 + nb). */
static inline void block_affine(const bnk__bn_dims *d, size_t c0, size_t nb, size_t r0, size_t r1,
                                int relu, const float *a, const float *cx, const float *b, float *y,
                                const float *x) {
    const bnk__bn_rows g = bnk__bn_rows_of(d);
    const size_t ld = g.ld;
    for (size_t len = 0; r0 < r1; r0 += len) {
        len = bnk__bn_rows_len(&g, r0, r1);
        const size_t o = bnk__bn_rows_off(&g, r0, c0);
        for (size_t r = 0; r < len; r++) {
            const float *xr = x + o + r * ld;
            float *yr = y + o + r * ld;
#pragma omp simd
            for (size_t j = 0; j < nb; j++) yr[j] = relu_if(relu, a[j] * (xr[j] - cx[j]) + b[j]);
        }
    }
}

/* The upstream gradient after the fused ReLU's mask. */
static inline double masked(int relu, const float *dy, const float *y, size_t i) {
    return (relu && !(y[i] > 0.0f)) ? 0.0 : (double)dy[i];
}

/* Planar channel c: sum(g) and sum(g*(x - center)). */
static inline void planar_gsums(const bnk__bn_dims *d, size_t c, int relu, double center,
                                double *sg, double *sgx, const float *dy, const float *x,
                                const float *y) {
    const size_t C = d->c, hw = d->hw;
    double sum_g = 0.0, sum_gx = 0.0;
    for (size_t n = 0; n < d->n; n++) {
        const size_t base = (n * C + c) * hw;
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (size_t s = 0; s < hw; s++) {
            double g = masked(relu, dy, y, base + s);
            sum_g += g;
            sum_gx += g * ((double)x[base + s] - center);
        }
    }
    *sg = sum_g;
    *sgx = sum_gx;
}

static inline void planar_gout(const bnk__bn_dims *d, size_t c, int relu, float kg, float kx,
                               float mx, float k0, float *dx, const float *dy, const float *x,
                               const float *y) {
    const size_t C = d->c, hw = d->hw;
    for (size_t n = 0; n < d->n; n++) {
        const size_t base = (n * C + c) * hw;
#pragma omp simd
        for (size_t s = 0; s < hw; s++) {
            float g = (relu && !(y[base + s] > 0.0f)) ? 0.0f : dy[base + s];
            dx[base + s] = kg * g + kx * (x[base + s] - mx) + k0;
        }
    }
}

/* Interleaved channels [c0, c0 + nb): sums about center[j] (channel c0 + j's). */
static inline void block_gsums(const bnk__bn_dims *d, size_t c0, size_t nb, int relu,
                               const double *center, double *sum_g, double *sum_gx, const float *dy,
                               const float *x, const float *y) {
    const bnk__bn_rows geo = bnk__bn_rows_of(d);
    const size_t rows = d->n * d->hw;
    for (size_t j = 0; j < nb; j++) sum_g[j] = sum_gx[j] = 0.0;
    for (size_t r0 = 0, len = 0; r0 < rows; r0 += len) {
        len = bnk__bn_rows_len(&geo, r0, rows);
        const size_t o = bnk__bn_rows_off(&geo, r0, c0);
        for (size_t r = 0; r < len; r++) {
            const size_t base = o + r * geo.ld;
#pragma omp simd
            for (size_t j = 0; j < nb; j++) {
                double g = masked(relu, dy, y, base + j);
                sum_g[j] += g;
                sum_gx[j] += g * ((double)x[base + j] - center[j]);
            }
        }
    }
}

static inline void block_gout(const bnk__bn_dims *d, size_t c0, size_t nb, int relu,
                              const float *kg, const float *kx, const float *mx, const float *k0,
                              float *dx, const float *dy, const float *x, const float *y) {
    const bnk__bn_rows geo = bnk__bn_rows_of(d);
    const size_t rows = d->n * d->hw;
    for (size_t r0 = 0, len = 0; r0 < rows; r0 += len) {
        len = bnk__bn_rows_len(&geo, r0, rows);
        const size_t o = bnk__bn_rows_off(&geo, r0, c0);
        for (size_t r = 0; r < len; r++) {
            const size_t base = o + r * geo.ld;
#pragma omp simd
            for (size_t j = 0; j < nb; j++) {
                float g = (relu && !(y[base + j] > 0.0f)) ? 0.0f : dy[base + j];
                dx[base + j] = kg[j] * g + kx[j] * (x[base + j] - mx[j]) + k0[j];
            }
        }
    }
}

/* Backward coefficients of channel c from sum(g), sum(g*(x - center)) over m values. */
static inline bnk__bn_grad_coef grad_coef(const bnk_bn_config *cfg, size_t C, size_t c, double m,
                                          double sum_g, double sum_gxh, const float *gamma,
                                          const double *saved, float *kg, float *kx, float *mx,
                                          float *k0) {
    bnk__bn_grad_coef k = bnk__bn_channel_backward(cfg, m, cfg->scale ? (double)gamma[c] : 1.0,
                                                   saved, C, c, sum_g, sum_gxh);
    bnk__bn_grad_coef_f32(&k, saved[BNK_SAVED_BATCH_MEAN * C + c], kg, kx, mx, k0);
    return k;
}

/* ---- Training forward -------------------------------------------------------------------- */

static void train_planar(const bnk_bn_config *cfg, const bnk__bn_dims *d, int64_t step, float *y,
                         double *saved, float *running_mean, float *running_var, const float *x,
                         const float *gamma, const float *beta) {
    const size_t C = d->c, hw = d->hw, m = d->n * hw;
    const int relu = cfg->fuse_relu;
#pragma omp parallel for schedule(static) if (d->n * C * hw >= OPT_PARALLEL_MIN)
    for (size_t c = 0; c < C; c++) {
        double mean, sq;
        planar_moments(d, c, &mean, &sq, x);
        bnk__bn_channel_forward(cfg, (double)m, step, mean, sq / (double)m, &running_mean[c],
                                &running_var[c], saved, C, c);
        float a, cx, b;
        bnk__bn_train_coef(cfg, saved, C, c, gamma, beta, &a, &cx, &b);
        planar_affine(d, c, relu, a, cx, b, y, x);
    }
}

static void train_interleaved(const bnk_bn_config *cfg, const bnk__bn_dims *d, int64_t step,
                              float *y, double *saved, float *running_mean, float *running_var,
                              const float *x, const float *gamma, const float *beta) {
    const size_t C = d->c, rows = d->n * d->hw;
    const size_t W = block_width(d), blocks = (C + W - 1) / W;
    const int relu = cfg->fuse_relu;
#pragma omp parallel for schedule(static) if (rows * C >= OPT_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t c0 = blk * W, nb = C - c0 < W ? C - c0 : W;
        double mean[OPT_BLOCK], sq[OPT_BLOCK];
        block_moments(d, c0, nb, mean, sq, x);
        float a[OPT_BLOCK], cx[OPT_BLOCK], b[OPT_BLOCK];
        for (size_t j = 0; j < nb; j++) {
            bnk__bn_channel_forward(cfg, (double)rows, step, mean[j], sq[j] / (double)rows,
                                    &running_mean[c0 + j], &running_var[c0 + j], saved, C, c0 + j);
            bnk__bn_train_coef(cfg, saved, C, c0 + j, gamma, beta, &a[j], &cx[j], &b[j]);
        }
        block_affine(d, c0, nb, 0, d->n * d->hw, relu, a, cx, b, y, x);
    }
}

static void opt_forward_train(const bnk_bn_config *cfg, const bnk__bn_dims *d, int64_t step,
                              float *y, double *saved, float *running_mean, float *running_var,
                              const float *x, const float *gamma, const float *beta) {
    if (d->planar)
        train_planar(cfg, d, step, y, saved, running_mean, running_var, x, gamma, beta);
    else
        train_interleaved(cfg, d, step, y, saved, running_mean, running_var, x, gamma, beta);
}

/* ---- Inference forward ------------------------------------------------------------------- */

static void opt_forward_infer(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                              const float *x, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var) {
    const size_t C = d->c, hw = d->hw;
    const int relu = cfg->fuse_relu;
    if (d->planar) {
        const size_t planes = d->n * C;
#pragma omp parallel for schedule(static) if (planes * hw >= OPT_PARALLEL_MIN)
        for (size_t p = 0; p < planes; p++) {
            const size_t c = p % C;
            float a, b;
            bnk__bn_infer_coef(cfg, c, gamma, beta, running_var, &a, &b);
            const float mu = running_mean[c];
            const float *xp = x + p * hw;
            float *yp = y + p * hw;
#pragma omp simd
            for (size_t s = 0; s < hw; s++) yp[s] = relu_if(relu, a * (xp[s] - mu) + b);
        }
        return;
    }
    const size_t rows = d->n * hw, chunks = (rows + OPT_ROW_CHUNK - 1) / OPT_ROW_CHUNK;
    const size_t W = block_width(d);
#pragma omp parallel for schedule(static) if (rows * C >= OPT_PARALLEL_MIN)
    for (size_t chunk = 0; chunk < chunks; chunk++) {
        const size_t r0 = chunk * OPT_ROW_CHUNK;
        const size_t r1 = rows - r0 < OPT_ROW_CHUNK ? rows : r0 + OPT_ROW_CHUNK;
        for (size_t c0 = 0; c0 < C; c0 += W) {
            const size_t nb = C - c0 < W ? C - c0 : W;
            float a[OPT_BLOCK], b[OPT_BLOCK];
            for (size_t j = 0; j < nb; j++)
                bnk__bn_infer_coef(cfg, c0 + j, gamma, beta, running_var, &a[j], &b[j]);
            block_affine(d, c0, nb, r0, r1, relu, a, running_mean + c0, b, y, x);
        }
    }
}

/* ---- Backward ---------------------------------------------------------------------------- */

static void backward_planar(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *dx,
                            float *dgamma, float *dbeta, const float *dy, const float *x,
                            const float *y, const float *gamma, const double *saved) {
    const size_t C = d->c, hw = d->hw, m = d->n * hw;
    const int relu = cfg->fuse_relu;
#pragma omp parallel for schedule(static) if (d->n * C * hw >= OPT_PARALLEL_MIN)
    for (size_t c = 0; c < C; c++) {
        double sum_g, sum_gx;
        planar_gsums(d, c, relu, saved[BNK_SAVED_CENTER * C + c], &sum_g, &sum_gx, dy, x, y);
        float kg, kx, mx, k0;
        const bnk__bn_grad_coef k =
            grad_coef(cfg, C, c, (double)m, sum_g, sum_gx * saved[BNK_SAVED_INV_STD * C + c], gamma,
                      saved, &kg, &kx, &mx, &k0);
        planar_gout(d, c, relu, kg, kx, mx, k0, dx, dy, x, y);
        if (cfg->scale && dgamma) dgamma[c] = (float)((double)dgamma[c] + k.dgamma);
        if (cfg->center && dbeta) dbeta[c] = (float)((double)dbeta[c] + k.dbeta);
    }
}

static void backward_interleaved(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *dx,
                                 float *dgamma, float *dbeta, const float *dy, const float *x,
                                 const float *y, const float *gamma, const double *saved) {
    const size_t C = d->c, rows = d->n * d->hw;
    const size_t W = block_width(d), blocks = (C + W - 1) / W;
    const int relu = cfg->fuse_relu;
#pragma omp parallel for schedule(static) if (rows * C >= OPT_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t c0 = blk * W, nb = C - c0 < W ? C - c0 : W;
        double sum_g[OPT_BLOCK], sum_gx[OPT_BLOCK];
        block_gsums(d, c0, nb, relu, saved + BNK_SAVED_CENTER * C + c0, sum_g, sum_gx, dy, x, y);
        float kg[OPT_BLOCK], kx[OPT_BLOCK], mx[OPT_BLOCK], k0[OPT_BLOCK];
        for (size_t j = 0; j < nb; j++) {
            const size_t c = c0 + j;
            const bnk__bn_grad_coef k = grad_coef(cfg, C, c, (double)rows, sum_g[j],
                                                  sum_gx[j] * saved[BNK_SAVED_INV_STD * C + c],
                                                  gamma, saved, &kg[j], &kx[j], &mx[j], &k0[j]);
            if (cfg->scale && dgamma) dgamma[c] = (float)((double)dgamma[c] + k.dgamma);
            if (cfg->center && dbeta) dbeta[c] = (float)((double)dbeta[c] + k.dbeta);
        }
        block_gout(d, c0, nb, relu, kg, kx, mx, k0, dx, dy, x, y);
    }
}

static void opt_backward(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *dx, float *dgamma,
                         float *dbeta, const float *dy, const float *x, const float *y,
                         const float *gamma, const double *saved) {
    if (d->planar)
        backward_planar(cfg, d, dx, dgamma, dbeta, dy, x, y, gamma, saved);
    else
        backward_interleaved(cfg, d, dx, dgamma, dbeta, dy, x, y, gamma, saved);
}

/* ---- Phases of synchronised BN (bn_internal.h): the loops above, one phase at a time ------ */

static void opt_moments(const bnk__bn_dims *d, double *count, double *mean, double *m2,
                        const float *x) {
    const size_t C = d->c, m = d->n * d->hw;
    for (size_t c = 0; c < C; c++) count[c] = (double)m;
    if (d->planar) {
#pragma omp parallel for schedule(static) if (m * C >= OPT_PARALLEL_MIN)
        for (size_t c = 0; c < C; c++) planar_moments(d, c, &mean[c], &m2[c], x);
        return;
    }
    const size_t W = block_width(d), blocks = (C + W - 1) / W;
#pragma omp parallel for schedule(static) if (m * C >= OPT_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t c0 = blk * W, nb = C - c0 < W ? C - c0 : W;
        block_moments(d, c0, nb, mean + c0, m2 + c0, x);
    }
}

static void opt_train_output(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                             const double *saved, const float *x, const float *gamma,
                             const float *beta) {
    const size_t C = d->c, m = d->n * d->hw;
    const int relu = cfg->fuse_relu;
    if (d->planar) {
#pragma omp parallel for schedule(static) if (m * C >= OPT_PARALLEL_MIN)
        for (size_t c = 0; c < C; c++) {
            float a, cx, b;
            bnk__bn_train_coef(cfg, saved, C, c, gamma, beta, &a, &cx, &b);
            planar_affine(d, c, relu, a, cx, b, y, x);
        }
        return;
    }
    const size_t W = block_width(d), blocks = (C + W - 1) / W;
#pragma omp parallel for schedule(static) if (m * C >= OPT_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t c0 = blk * W, nb = C - c0 < W ? C - c0 : W;
        float a[OPT_BLOCK], cx[OPT_BLOCK], b[OPT_BLOCK];
        for (size_t j = 0; j < nb; j++)
            bnk__bn_train_coef(cfg, saved, C, c0 + j, gamma, beta, &a[j], &cx[j], &b[j]);
        block_affine(d, c0, nb, 0, d->n * d->hw, relu, a, cx, b, y, x);
    }
}

static void opt_grad_sums(const bnk_bn_config *cfg, const bnk__bn_dims *d, double *sum_g,
                          double *sum_gxh, const float *dy, const float *x, const float *y,
                          const double *saved) {
    const size_t C = d->c, m = d->n * d->hw;
    const int relu = cfg->fuse_relu;
    const double *center = saved + BNK_SAVED_CENTER * C, *inv_std = saved + BNK_SAVED_INV_STD * C;
    if (d->planar) {
#pragma omp parallel for schedule(static) if (m * C >= OPT_PARALLEL_MIN)
        for (size_t c = 0; c < C; c++) {
            planar_gsums(d, c, relu, center[c], &sum_g[c], &sum_gxh[c], dy, x, y);
            sum_gxh[c] *= inv_std[c];
        }
        return;
    }
    const size_t W = block_width(d), blocks = (C + W - 1) / W;
#pragma omp parallel for schedule(static) if (m * C >= OPT_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t c0 = blk * W, nb = C - c0 < W ? C - c0 : W;
        block_gsums(d, c0, nb, relu, center + c0, sum_g + c0, sum_gxh + c0, dy, x, y);
        for (size_t j = 0; j < nb; j++) sum_gxh[c0 + j] *= inv_std[c0 + j];
    }
}

static void opt_grad_output(const bnk_bn_config *cfg, const bnk__bn_dims *d, double m, float *dx,
                            const double *sum_g, const double *sum_gxh, const float *dy,
                            const float *x, const float *y, const float *gamma,
                            const double *saved) {
    const size_t C = d->c, rows = d->n * d->hw;
    const int relu = cfg->fuse_relu;
    if (d->planar) {
#pragma omp parallel for schedule(static) if (rows * C >= OPT_PARALLEL_MIN)
        for (size_t c = 0; c < C; c++) {
            float kg, kx, mx, k0;
            grad_coef(cfg, C, c, m, sum_g[c], sum_gxh[c], gamma, saved, &kg, &kx, &mx, &k0);
            planar_gout(d, c, relu, kg, kx, mx, k0, dx, dy, x, y);
        }
        return;
    }
    const size_t W = block_width(d), blocks = (C + W - 1) / W;
#pragma omp parallel for schedule(static) if (rows * C >= OPT_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t c0 = blk * W, nb = C - c0 < W ? C - c0 : W;
        float kg[OPT_BLOCK], kx[OPT_BLOCK], mx[OPT_BLOCK], k0[OPT_BLOCK];
        for (size_t j = 0; j < nb; j++)
            grad_coef(cfg, C, c0 + j, m, sum_g[c0 + j], sum_gxh[c0 + j], gamma, saved, &kg[j],
                      &kx[j], &mx[j], &k0[j]);
        block_gout(d, c0, nb, relu, kg, kx, mx, k0, dx, dy, x, y);
    }
}

const bnk__bn_kernels bnk__bn_kernels_opt = {
    .name = "opt",
    .forward_train = opt_forward_train,
    .forward_infer = opt_forward_infer,
    .backward = opt_backward,
    .moments = opt_moments,
    .train_output = opt_train_output,
    .grad_sums = opt_grad_sums,
    .grad_output = opt_grad_output,
};
