/* Internals of the BN part: the kernel table, the per-channel scalar step shared by every kernel,
 * and the double-precision reference entry points used by the tests. Not installed. */
#ifndef BNKIT_BN_INTERNAL_H
#define BNKIT_BN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bnkit/bn.h"

/* A validated shape, reduced to what the loops need. Planar (NCHW) stores each channel's values
 * as n runs of hw contiguous floats; interleaved (NC, NHWC) stores rows of c floats. */
typedef struct bnk__bn_dims {
    int planar;
    size_t n, c, hw;
} bnk__bn_dims;

/* Kernels run only on validated arguments and cannot fail. */
typedef void (*bnk__bn_forward_train_fn)(const bnk_bn_config *cfg, const bnk__bn_dims *d,
                                         int64_t step, float *y, double *saved, float *running_mean,
                                         float *running_var, const float *x, const float *gamma,
                                         const float *beta);
typedef void (*bnk__bn_forward_infer_fn)(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                                         const float *x, const float *gamma, const float *beta,
                                         const float *running_mean, const float *running_var);
typedef void (*bnk__bn_backward_fn)(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *dx,
                                    float *dgamma, float *dbeta, const float *dy, const float *x,
                                    const float *y, const float *gamma, const double *saved);

typedef struct bnk__bn_kernels {
    const char *name;
    bnk__bn_forward_train_fn forward_train;
    bnk__bn_forward_infer_fn forward_infer;
    bnk__bn_backward_fn backward;
} bnk__bn_kernels;

extern const bnk__bn_kernels bnk__bn_kernels_ref;
extern const bnk__bn_kernels bnk__bn_kernels_opt;

/* The per-channel scalar part of the training forward (DESIGN §2 steps 2-4), shared by every
 * kernel so that they differ only in how they sweep the data. Given the batch mean and biased
 * variance of channel c over m values, it clips them, updates running_mean[c]/running_var[c]
 * (left unchanged when the batch statistics are not finite), and writes the channel's saved
 * fields saved[field*C + c]. */
void bnk__bn_channel_forward(const bnk_bn_config *cfg, double m, int64_t step, double batch_mean,
                             double batch_var, float *running_mean_c, float *running_var_c,
                             double *saved, size_t C, size_t c);

/* Per-channel backward coefficients: with g = dy masked by ReLU, sum_g = sum(g) and
 * sum_gxh = sum(g*(x - center)*inv_std) over the channel's m values,
 *   dx = scale_g*g + scale_x*(x - batch_mean) + shift. */
typedef struct bnk__bn_grad_coef {
    double scale_g, scale_x, shift;
    double dgamma, dbeta; /* this call's contributions, to be accumulated */
} bnk__bn_grad_coef;

bnk__bn_grad_coef bnk__bn_channel_backward(const bnk_bn_config *cfg, double m, double gamma,
                                           const double *saved, size_t C, size_t c, double sum_g,
                                           double sum_gxh);

/* Reference kernels in double precision on double data, for finite-difference tests. Same
 * contracts as the float versions; running statistics stay float. */
void bnk__bn_ref_forward_train_f64(const bnk_bn_config *cfg, const bnk__bn_dims *d, int64_t step,
                                   double *y, double *saved, float *running_mean,
                                   float *running_var, const double *x, const double *gamma,
                                   const double *beta);
void bnk__bn_ref_backward_f64(const bnk_bn_config *cfg, const bnk__bn_dims *d, double *dx,
                              double *dgamma, double *dbeta, const double *dy, const double *x,
                              const double *y, const double *gamma, const double *saved);

/* Converts a shape validated by bnk_bn_shape_validate. */
bnk__bn_dims bnk__bn_dims_of(const bnk_bn_shape *shape);

#endif /* BNKIT_BN_INTERNAL_H */
