/* The per-channel scalar steps of BN (DESIGN.md §2 steps 2-4) and the output coefficients,
 * written once, as loops over a range of channels that compilers vectorise (the branches on
 * the configuration are loop-invariant; those on the data become selects). bn_channel.c
 * includes this for the portable entry points (bnk__bn_channel_forward is this loop with one
 * channel); the explicit-SIMD kernel files include it too, so that the same source is compiled
 * for their instruction set and a kernel pays a few nanoseconds per channel rather than tens
 * (which matters for MLP shapes such as 100x128, where the data sweep itself takes ~1 µs).
 *
 * Every operation is the same IEEE operation in the scalar and in the vector code (sqrt and
 * division are correctly rounded, nothing is contracted into FMAs under -std=c11), so all
 * instantiations give bit-identical results. */
#ifndef BNKIT_BN_CHANNEL_IMPL_H
#define BNKIT_BN_CHANNEL_IMPL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "bn/bn_internal.h"

/* Clamps v into [lo, hi]; a moved value zeroes the derivative g (it stays as it was otherwise;
 * NaN passes through unchanged). Written with selects, so that loops over channels vectorise. */
#define BNK__CLAMP_INTO(v, lo, hi, g)                                                              \
    do {                                                                                           \
        const double lo_ = (lo), hi_ = (hi);                                                       \
        const int below_ = (v)<lo_, above_ = (v)> hi_;                                             \
        (g) = (below_ | above_) ? 0.0 : (g);                                                       \
        (v) = below_ ? lo_ : above_ ? hi_ : (v);                                                   \
    } while (0)

/* Steps 2-4 for `count` channels: batch_mean[j], batch_var[j] (biased, over m values) of
 * channel c0 + j; running_mean, running_var and saved point at channel c0 (saved's fields are
 * C apart). Clips, updates the running statistics (left unchanged for a channel whose batch
 * statistics are not finite) and writes the saved fields. */
static inline void bnk__bn_channels_forward_impl(const bnk_bn_config *cfg, double m, int64_t step,
                                                 size_t count, const double *batch_mean,
                                                 const double *batch_var, float *running_mean,
                                                 float *running_var, double *saved, size_t C) {
    const double eps = cfg->eps;
    const int rel = step >= cfg->clip_warmup;
    const int rel_d = rel && isfinite(cfg->rel_clip_d), rel_r = rel && isfinite(cfg->rel_clip_r);
    const double rd = cfg->rel_clip_d, rr = cfg->rel_clip_r;
    const double mlo = cfg->mean_clip.lo, mhi = cfg->mean_clip.hi;
    const double vlo = cfg->var_clip.lo, vhi = cfg->var_clip.hi;
    const double rmlo = cfg->running_mean_clip.lo, rmhi = cfg->running_mean_clip.hi;
    const double rvlo = cfg->running_var_clip.lo, rvhi = cfg->running_var_clip.hi;
    const double beta = cfg->cumulative ? (double)step / ((double)step + 1.0) : cfg->momentum;
    const double bessel = cfg->unbiased_running_var ? m / (m - 1.0) : 1.0;
    const int running = cfg->normalize_with == BNK_NORM_RUNNING;
    const int renorm = cfg->normalize_with == BNK_NORM_RENORM;
    const double rmax = cfg->rmax, rmin = 1.0 / cfg->rmax, dmax = cfg->dmax;
    double *const s_mean = saved + BNK_SAVED_BATCH_MEAN * C;
    double *const s_var = saved + BNK_SAVED_BATCH_VAR * C;
    double *const s_center = saved + BNK_SAVED_CENTER * C;
    double *const s_inv = saved + BNK_SAVED_INV_STD * C;
    double *const s_r = saved + BNK_SAVED_RENORM_R * C;
    double *const s_d = saved + BNK_SAVED_RENORM_D * C;
    double *const s_gm = saved + BNK_SAVED_GRAD_MEAN * C;
    double *const s_gv = saved + BNK_SAVED_GRAD_VAR * C;
#pragma omp simd
    for (size_t j = 0; j < count; j++) {
        const double bm = batch_mean[j], bv = batch_var[j];
        const double rm_old = running_mean[j], rv_old = running_var[j];
        const double sigma_r_old = sqrt(rv_old + eps);

        /* Step 2: relative clip (from the running statistics before this step), then absolute.
         * A clip that is off clamps into (-inf, inf), which moves nothing. */
        double mean = bm, var = bv, g_mean = 1.0, g_var = 1.0;
        const double half = rd * sigma_r_old;
        BNK__CLAMP_INTO(mean, rel_d ? rm_old - half : -INFINITY, rel_d ? rm_old + half : INFINITY,
                        g_mean);
        const double lo_std = sigma_r_old / rr, hi_std = sigma_r_old * rr;
        const double vlo_rel = lo_std * lo_std - eps;
        BNK__CLAMP_INTO(var, rel_r ? (vlo_rel > 0.0 ? vlo_rel : 0.0) : -INFINITY,
                        rel_r ? hi_std * hi_std - eps : INFINITY, g_var);
        BNK__CLAMP_INTO(mean, mlo, mhi, g_mean);
        BNK__CLAMP_INTO(var, vlo, vhi, g_var);

        /* Step 3: running update, then the running bounds; not for non-finite statistics. */
        double rm_new = beta * rm_old + (1.0 - beta) * mean;
        double rv_new = beta * rv_old + (1.0 - beta) * bessel * var;
        double g_rm = 1.0, g_rv = 1.0;
        BNK__CLAMP_INTO(rm_new, rmlo, rmhi, g_rm);
        BNK__CLAMP_INTO(rv_new, rvlo, rvhi, g_rv);
        const int finite = isfinite(bm) & isfinite(bv);
        rm_new = finite ? rm_new : rm_old;
        rv_new = finite ? rv_new : rv_old;
        g_rm = finite ? g_rm : 0.0;
        g_rv = finite ? g_rv : 0.0;
        running_mean[j] = (float)rm_new;
        running_var[j] = (float)rv_new;

        /* Step 4: what x is normalised with, and how that depends on the batch statistics. */
        const double inv_batch = 1.0 / sqrt(var + eps), inv_run = 1.0 / sqrt(rv_new + eps);
        const double center = running ? rm_new : mean;
        const double inv_std = running ? inv_run : inv_batch;
        const double grad_mean = running ? (1.0 - beta) * g_rm * g_mean : g_mean;
        const double grad_var = running ? (1.0 - beta) * bessel * g_rv * g_var : g_var;
        double r = sqrt(var + eps) / sigma_r_old, d = (mean - rm_old) / sigma_r_old;
        r = r < rmin ? rmin : r > rmax ? rmax : r;
        d = d < -dmax ? -dmax : d > dmax ? dmax : d;
        r = renorm ? r : 1.0;
        d = renorm ? d : 0.0;
        s_mean[j] = bm;
        s_var[j] = bv;
        s_center[j] = center;
        s_inv[j] = inv_std;
        s_r[j] = r;
        s_d[j] = d;
        s_gm[j] = grad_mean;
        s_gv[j] = grad_var;
    }
}

/* One coefficient loop; SCALE and CENTER are constants, so that gamma and beta (NULL when
 * their flag is off) are never touched when off. */
#define BNK__TRAIN_COEF_LOOP(SCALE, CENTER)                                                        \
    _Pragma("omp simd") for (size_t j = 0; j < count; j++) {                                       \
        const double center = s_center[j];                                                         \
        const double g = (SCALE) ? (double)gamma[j] : 1.0;                                         \
        const double sc = g * s_inv[j] * s_r[j];                                                   \
        const float cxf = (float)center;                                                           \
        a[j] = (float)sc;                                                                          \
        cx[j] = cxf;                                                                               \
        b[j] = (float)(sc * ((double)cxf - center) + g * s_d[j] +                                  \
                       ((CENTER) ? (double)beta[j] : 0.0));                                        \
    }

/* Float coefficients of the training output pass y = a*(x - cx) + b for `count` channels from
 * saved (pointing at channel c0, fields C apart); gamma, beta point at c0, or are NULL when
 * their flag is off. cx is the centre rounded to float and b absorbs that rounding, so that
 * channels with |mean| >> std do not cancel catastrophically. */
static inline void bnk__bn_train_coefs_impl(const bnk_bn_config *cfg, size_t count,
                                            const double *saved, size_t C, const float *gamma,
                                            const float *beta, float *a, float *cx, float *b) {
    const double *const s_center = saved + BNK_SAVED_CENTER * C;
    const double *const s_inv = saved + BNK_SAVED_INV_STD * C;
    const double *const s_r = saved + BNK_SAVED_RENORM_R * C;
    const double *const s_d = saved + BNK_SAVED_RENORM_D * C;
    if (cfg->scale && cfg->center) {
        BNK__TRAIN_COEF_LOOP(1, 1)
    } else if (cfg->scale) {
        BNK__TRAIN_COEF_LOOP(1, 0)
    } else if (cfg->center) {
        BNK__TRAIN_COEF_LOOP(0, 1)
    } else {
        BNK__TRAIN_COEF_LOOP(0, 0)
    }
}

#endif /* BNKIT_BN_CHANNEL_IMPL_H */
