/* The per-channel scalar steps of BN (DESIGN.md §2), in double precision: clipping, the running
 * update, the normalisation constants, and the backward coefficients. Every kernel (reference
 * and optimised) calls these, so the kernels differ only in how they sweep the data. The
 * forward steps are written once in bn_channel_impl.h, which the explicit-SIMD kernels also
 * include to run them vectorised over many channels. */
#include <math.h>

#include "bn/bn_channel_impl.h"
#include "bn/bn_internal.h"

void bnk__bn_channel_forward(const bnk_bn_config *cfg, double m, int64_t step, double batch_mean,
                             double batch_var, float *running_mean_c, float *running_var_c,
                             double *saved, size_t C, size_t c) {
    bnk__bn_channels_forward_impl(cfg, m, step, 1, &batch_mean, &batch_var, running_mean_c,
                                  running_var_c, saved + c, C);
}

void bnk__bn_channels_forward(const bnk_bn_config *cfg, double m, int64_t step, size_t count,
                              const double *batch_mean, const double *batch_var,
                              float *running_mean, float *running_var, double *saved, size_t C,
                              size_t c0) {
    bnk__bn_channels_forward_impl(cfg, m, step, count, batch_mean, batch_var, running_mean + c0,
                                  running_var + c0, saved + c0, C);
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

void bnk__bn_train_coef(const bnk_bn_config *cfg, const double *saved, size_t C, size_t c,
                        const float *gamma, const float *beta, float *a, float *cx, float *b) {
    bnk__bn_train_coefs_impl(cfg, 1, saved + c, C, gamma ? gamma + c : NULL, beta ? beta + c : NULL,
                             a, cx, b);
}

void bnk__bn_grad_coef_f32(const bnk__bn_grad_coef *k, double batch_mean, float *kg, float *kx,
                           float *mx, float *k0) {
    const float mxf = (float)batch_mean;
    *kg = (float)k->scale_g;
    *kx = (float)k->scale_x;
    *mx = mxf;
    *k0 = (float)(k->shift + k->scale_x * ((double)mxf - batch_mean));
}

void bnk__bn_infer_coef(const bnk_bn_config *cfg, size_t c, const float *gamma, const float *beta,
                        const float *running_var, float *a, float *b) {
    const double g = cfg->scale ? (double)gamma[c] : 1.0;
    *a = (float)(g / sqrt((double)running_var[c] + cfg->eps));
    *b = cfg->center ? beta[c] : 0.0f;
}
