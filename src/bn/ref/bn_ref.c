/* Reference BN kernels: instantiates bn_ref_impl.h for float data (the "ref" kernel of the
 * dispatch table) and for double data (used by the finite-difference tests). */
#include <math.h>
#include <stddef.h>

#include "bn/bn_internal.h"

#define BNK_REF_T       float
#define BNK_REF_NAME(f) bnk__bn_ref_##f##_f32
#include "bn/ref/bn_ref_impl.h"
#undef BNK_REF_T
#undef BNK_REF_NAME

#define BNK_REF_T       double
#define BNK_REF_NAME(f) bnk__bn_ref_##f##_f64
#include "bn/ref/bn_ref_impl.h"
#undef BNK_REF_T
#undef BNK_REF_NAME

/* Inference has no statistics to accumulate; it needs only the float version. */
static void ref_forward_infer(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                              const float *x, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var) {
    const size_t m = d->n * d->hw;
    for (size_t c = 0; c < d->c; c++) {
        const double inv_std = 1.0 / sqrt((double)running_var[c] + cfg->eps);
        const double g = cfg->scale ? (double)gamma[c] : 1.0;
        const double b = cfg->center ? (double)beta[c] : 0.0;
        for (size_t j = 0; j < m; j++) {
            size_t i = bnk__bn_ref_index_f32(d, c, j);
            double out = g * ((double)x[i] - (double)running_mean[c]) * inv_std + b;
            if (cfg->fuse_relu && !(out > 0.0)) out = 0.0;
            y[i] = (float)out;
        }
    }
}

/* The phases of synchronised BN (bn_internal.h): the fused kernels' per-channel steps, one
 * phase at a time. */
static void ref_moments(const bnk__bn_dims *d, double *count, double *mean, double *m2,
                        const float *x) {
    for (size_t c = 0; c < d->c; c++) {
        count[c] = (double)(d->n * d->hw);
        bnk__bn_ref_channel_moments_f32(d, c, &mean[c], &m2[c], x);
    }
}

static void ref_train_output(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                             const double *saved, const float *x, const float *gamma,
                             const float *beta) {
    for (size_t c = 0; c < d->c; c++)
        bnk__bn_ref_channel_output_f32(cfg, d, c, y, saved, x, gamma, beta);
}

static void ref_grad_sums(const bnk_bn_config *cfg, const bnk__bn_dims *d, double *sum_g,
                          double *sum_gxh, const float *dy, const float *x, const float *y,
                          const double *saved) {
    for (size_t c = 0; c < d->c; c++)
        bnk__bn_ref_channel_grad_sums_f32(cfg, d, c, &sum_g[c], &sum_gxh[c], dy, x, y, saved);
}

static void ref_grad_output(const bnk_bn_config *cfg, const bnk__bn_dims *d, double m, float *dx,
                            const double *sum_g, const double *sum_gxh, const float *dy,
                            const float *x, const float *y, const float *gamma,
                            const double *saved) {
    for (size_t c = 0; c < d->c; c++) {
        const bnk__bn_grad_coef k = bnk__bn_channel_backward(
            cfg, m, cfg->scale ? (double)gamma[c] : 1.0, saved, d->c, c, sum_g[c], sum_gxh[c]);
        bnk__bn_ref_channel_grad_output_f32(cfg, d, c, &k, dx, dy, x, y, saved);
    }
}

const bnk__bn_kernels bnk__bn_kernels_ref = {
    .name = "ref",
    .forward_train = bnk__bn_ref_forward_train_f32,
    .forward_infer = ref_forward_infer,
    .backward = bnk__bn_ref_backward_f32,
    .moments = ref_moments,
    .train_output = ref_train_output,
    .grad_sums = ref_grad_sums,
    .grad_output = ref_grad_output,
};
