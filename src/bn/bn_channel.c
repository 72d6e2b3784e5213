/* The per-channel scalar steps of BN (DESIGN.md §2), in double precision: clipping, the running
 * update, the normalisation constants, and the backward coefficients. Every kernel (reference
 * and optimised) calls these, so the kernels differ only in how they sweep the data. */
#include <math.h>

#include "bn/bn_internal.h"

/* Clamps *v into [lo, hi]; returns 1 when the value was left alone (derivative 1) and 0 when it
 * was moved onto a bound (derivative 0). NaN passes through unchanged. */
static double clamp_into(double *v, double lo, double hi) {
    if (*v < lo) {
        *v = lo;
        return 0.0;
    }
    if (*v > hi) {
        *v = hi;
        return 0.0;
    }
    return 1.0;
}

static double clamp(double v, double lo, double hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

void bnk__bn_channel_forward(const bnk_bn_config *cfg, double m, int64_t step, double batch_mean,
                             double batch_var, float *running_mean_c, float *running_var_c,
                             double *saved, size_t C, size_t c) {
    const double eps = cfg->eps;
    const double rm_old = *running_mean_c, rv_old = *running_var_c;
    const double sigma_r_old = sqrt(rv_old + eps);

    /* Step 2: relative clip (from the running statistics before this step), then absolute. */
    double mean = batch_mean, var = batch_var;
    double g_mean = 1.0, g_var = 1.0;
    if (step >= cfg->clip_warmup) {
        if (isfinite(cfg->rel_clip_d)) {
            double half = cfg->rel_clip_d * sigma_r_old;
            g_mean *= clamp_into(&mean, rm_old - half, rm_old + half);
        }
        if (isfinite(cfg->rel_clip_r)) {
            double lo_std = sigma_r_old / cfg->rel_clip_r, hi_std = sigma_r_old * cfg->rel_clip_r;
            g_var *= clamp_into(&var, fmax(0.0, lo_std * lo_std - eps), hi_std * hi_std - eps);
        }
    }
    g_mean *= clamp_into(&mean, cfg->mean_clip.lo, cfg->mean_clip.hi);
    g_var *= clamp_into(&var, cfg->var_clip.lo, cfg->var_clip.hi);

    /* Step 3: running update, then the running bounds. */
    const double beta = cfg->cumulative ? (double)step / ((double)step + 1.0) : cfg->momentum;
    const double bessel = cfg->unbiased_running_var ? m / (m - 1.0) : 1.0;
    double rm_new = rm_old, rv_new = rv_old, g_rm = 0.0, g_rv = 0.0;
    if (isfinite(batch_mean) && isfinite(batch_var)) {
        rm_new = beta * rm_old + (1.0 - beta) * mean;
        rv_new = beta * rv_old + (1.0 - beta) * bessel * var;
        g_rm = clamp_into(&rm_new, cfg->running_mean_clip.lo, cfg->running_mean_clip.hi);
        g_rv = clamp_into(&rv_new, cfg->running_var_clip.lo, cfg->running_var_clip.hi);
        *running_mean_c = (float)rm_new;
        *running_var_c = (float)rv_new;
    }

    /* Step 4: what x is normalised with, and how that depends on the batch statistics. */
    double center = mean, inv_std = 1.0 / sqrt(var + eps), r = 1.0, d = 0.0;
    double grad_mean = g_mean, grad_var = g_var;
    switch (cfg->normalize_with) {
    case BNK_NORM_BATCH:
        break;
    case BNK_NORM_RUNNING:
        center = rm_new;
        inv_std = 1.0 / sqrt(rv_new + eps);
        grad_mean = (1.0 - beta) * g_rm * g_mean;
        grad_var = (1.0 - beta) * bessel * g_rv * g_var;
        break;
    case BNK_NORM_RENORM:
        r = clamp(sqrt(var + eps) / sigma_r_old, 1.0 / cfg->rmax, cfg->rmax);
        d = clamp((mean - rm_old) / sigma_r_old, -cfg->dmax, cfg->dmax);
        break;
    }

    saved[BNK_SAVED_BATCH_MEAN * C + c] = batch_mean;
    saved[BNK_SAVED_BATCH_VAR * C + c] = batch_var;
    saved[BNK_SAVED_CENTER * C + c] = center;
    saved[BNK_SAVED_INV_STD * C + c] = inv_std;
    saved[BNK_SAVED_RENORM_R * C + c] = r;
    saved[BNK_SAVED_RENORM_D * C + c] = d;
    saved[BNK_SAVED_GRAD_MEAN * C + c] = grad_mean;
    saved[BNK_SAVED_GRAD_VAR * C + c] = grad_var;
}

/* With xhat = (x - center)*s*r + d and y = gamma*xhat + beta, the chain rule through center
 * (d center/d x_i = grad_mean/m) and the normalising variance (d var/d x_i =
 * grad_var*2*(x_i - mu_B)/m) gives
 *   dx_i = gamma*s*r*(g_i - grad_mean*mean(g) - grad_var*s*(x_i - mu_B)*mean(g*(x - center)*s)). */
bnk__bn_grad_coef bnk__bn_channel_backward(const bnk_bn_config *cfg, double m, double gamma,
                                           const double *saved, size_t C, size_t c, double sum_g,
                                           double sum_gxh) {
    const double s = saved[BNK_SAVED_INV_STD * C + c];
    const double r = saved[BNK_SAVED_RENORM_R * C + c];
    const double d = saved[BNK_SAVED_RENORM_D * C + c];
    const double grad_mean = saved[BNK_SAVED_GRAD_MEAN * C + c];
    const double grad_var = saved[BNK_SAVED_GRAD_VAR * C + c];
    const double g = cfg->scale ? gamma : 1.0;
    const double a = g * s * r;

    bnk__bn_grad_coef k;
    k.scale_g = a;
    k.scale_x = -a * grad_var * s * sum_gxh / m;
    k.shift = -a * grad_mean * sum_g / m;
    k.dgamma = r * sum_gxh + d * sum_g;
    k.dbeta = sum_g;
    return k;
}
