/* Internals of the BN part: the kernel table, the per-channel scalar step shared by every kernel,
 * and the double-precision reference entry points used by the tests. Not installed. */
#ifndef BNKIT_BN_INTERNAL_H
#define BNKIT_BN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "bnkit/bn.h"

/* A validated shape, reduced to what the loops need. Planar (NCHW) stores each channel's values
 * as n runs of hw contiguous floats; interleaved (NC, NHWC) stores rows of c floats. Blocked
 * (nChw16c, nChw8c; blk = 16 or 8, else 0) is interleaved too, seen one channel block at a time:
 * rows of blk floats (see bnk__bn_rows). */
typedef struct bnk__bn_dims {
    int planar;
    size_t n, c, hw;
    size_t blk; /* channel block of a blocked layout; 0: not blocked */
} bnk__bn_dims;

/* Where the rows of an interleaved tensor lie. Row r (0 <= r < n*hw; r = n*hw + s) holds the
 * values of pixel s of image n; its channels [c, c + k) that do not cross a block (width) are k
 * contiguous floats. Consecutive rows are ld floats apart within a run of `run` rows; runs are
 * `step` floats apart. NC, NHWC: one run of all rows, ld = width = C. Blocked: a run per image,
 * ld = width = blk, step = C*hw, and channel block b starts at b*hw*blk: within an image, one
 * block's hw rows are one contiguous stretch, and the blocks follow one another. */
typedef struct bnk__bn_rows {
    size_t ld, run, step, width, bstride;
} bnk__bn_rows;

static inline bnk__bn_rows bnk__bn_rows_of(const bnk__bn_dims *d) {
    bnk__bn_rows g;
    if (d->blk) {
        g.ld = g.width = d->blk;
        g.run = d->hw;
        g.step = d->c * d->hw;
        g.bstride = d->hw * d->blk;
    } else {
        g.ld = g.width = d->c;
        g.run = d->n * d->hw;
        g.step = g.run * d->c;
        g.bstride = 0; /* one block; 0 marks the plain layouts */
    }
    return g;
}

/* out[j] = the sum of the lanes l % nc == j of t[16], for j < nc (nc a power of two <= 16): the
 * per-channel totals of 16 accumulator lanes that cycled through nc channels (the SIMD kernels'
 * sweeps over gap-free rows). */
static inline void bnk__bn_fold16(const double *t, size_t nc, double *out) {
    for (size_t j = 0; j < nc; j++) {
        double v = 0.0;
        for (size_t l = j; l < 16; l += nc) v += t[l];
        out[j] = v;
    }
}

/* Element offset of channel c in row r (no division for NC, NHWC). */
static inline size_t bnk__bn_rows_off(const bnk__bn_rows *g, size_t r, size_t c) {
    if (!g->bstride) return r * g->ld + c;
    return r / g->run * g->step + r % g->run * g->ld + c / g->width * g->bstride + c % g->width;
}

/* Rows from r up to r1 (> r) that lie in r's run. */
static inline size_t bnk__bn_rows_len(const bnk__bn_rows *g, size_t r, size_t r1) {
    if (!g->bstride) return r1 - r; /* one run */
    const size_t left = g->run - r % g->run;
    return r1 - r < left ? r1 - r : left;
}

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

/* The phases of the training forward and backward, for synchronised BN (bn_sync.c), which
 * exchanges per-channel numbers between the sweeps over the data. Each kernel builds them from
 * the same inner loops as its fused kernels above (which may keep fusing phases, so that a
 * channel's data is re-read from cache), and they compute the same quantities as accurately.
 * d->n >= 1.
 *   moments       (a) count[C] = m, mean[C], m2[C] = sum of squared deviations from the mean
 *                     of each channel's m = n*hw values (as accurate as forward_train's)
 *   train_output  (b) y = gamma*xhat + beta (then ReLU) with each channel's coefficients from the
 *                     saved fields (bnk__bn_train_coef)
 *   grad_sums     (c) sum_g[C] = sum(g), sum_gxh[C] = sum(g*(x - center))*inv_std, g = dy masked
 *                     by y > 0 when fuse_relu (y is read only then)
 *   grad_output   (d) dx from the sums and value count m of the whole group (which may exceed
 *                     this shard's): bnk__bn_channel_backward's coefficients, as in backward;
 *                     dgamma and dbeta are the caller's business */
typedef void (*bnk__bn_moments_fn)(const bnk__bn_dims *d, double *count, double *mean, double *m2,
                                   const float *x);
typedef void (*bnk__bn_train_output_fn)(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                                        const double *saved, const float *x, const float *gamma,
                                        const float *beta);
typedef void (*bnk__bn_grad_sums_fn)(const bnk_bn_config *cfg, const bnk__bn_dims *d, double *sum_g,
                                     double *sum_gxh, const float *dy, const float *x,
                                     const float *y, const double *saved);
typedef void (*bnk__bn_grad_output_fn)(const bnk_bn_config *cfg, const bnk__bn_dims *d, double m,
                                       float *dx, const double *sum_g, const double *sum_gxh,
                                       const float *dy, const float *x, const float *y,
                                       const float *gamma, const double *saved);

typedef struct bnk__bn_kernels {
    const char *name;
    bnk__bn_forward_train_fn forward_train;
    bnk__bn_forward_infer_fn forward_infer;
    bnk__bn_backward_fn backward;
    bnk__bn_moments_fn moments;
    bnk__bn_train_output_fn train_output;
    bnk__bn_grad_sums_fn grad_sums;
    bnk__bn_grad_output_fn grad_output;
} bnk__bn_kernels;

/* The kernels that the next call runs (bnk_bn_kernel_name()'s). */
const bnk__bn_kernels *bnk__bn_kernels_active(void);

extern const bnk__bn_kernels bnk__bn_kernels_ref;
extern const bnk__bn_kernels bnk__bn_kernels_opt;
/* Explicit-SIMD kernels (src/bn/avx2, src/bn/avx512), compiled when CMake finds the compiler
 * flags (BNK_HAVE_AVX2, BNK_HAVE_AVX512) and used only where the CPU has the instructions. */
extern const bnk__bn_kernels bnk__bn_kernels_avx2;
extern const bnk__bn_kernels bnk__bn_kernels_avx512;

/* The per-channel scalar part of the training forward (DESIGN §2 steps 2-4), shared by every
 * kernel so that they differ only in how they sweep the data. Given the batch mean and biased
 * variance of channel c over m values, it clips them, updates running_mean[c]/running_var[c]
 * (left unchanged when the batch statistics are not finite), and writes the channel's saved
 * fields saved[field*C + c]. */
void bnk__bn_channel_forward(const bnk_bn_config *cfg, double m, int64_t step, double batch_mean,
                             double batch_var, float *running_mean_c, float *running_var_c,
                             double *saved, size_t C, size_t c);

/* The same for channels [c0, c0 + count): batch_mean[j], batch_var[j] are channel c0 + j's. */
void bnk__bn_channels_forward(const bnk_bn_config *cfg, double m, int64_t step, size_t count,
                              const double *batch_mean, const double *batch_var,
                              float *running_mean, float *running_var, double *saved, size_t C,
                              size_t c0);

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

/* Float coefficients of the training output pass y = a*(x - cx) + b for channel c, from the
 * saved fields that bnk__bn_channel_forward wrote: cx is the centre rounded to float and b
 * absorbs that rounding, so channels with |mean| >> std do not cancel catastrophically. */
void bnk__bn_train_coef(const bnk_bn_config *cfg, const double *saved, size_t C, size_t c,
                        const float *gamma, const float *beta, float *a, float *cx, float *b);

/* Float coefficients of the backward output pass dx = kg*g + kx*(x - mx) + k0 (mx is the batch
 * mean rounded to float, k0 absorbs the rounding). */
void bnk__bn_grad_coef_f32(const bnk__bn_grad_coef *k, double batch_mean, float *kg, float *kx,
                           float *mx, float *k0);

/* Float coefficients of the inference pass y = a*(x - running_mean[c]) + b. */
void bnk__bn_infer_coef(const bnk_bn_config *cfg, size_t c, const float *gamma, const float *beta,
                        const float *running_var, float *a, float *b);

/* Reference kernels in double precision on double data, for finite-difference tests. Same
 * contracts as the float versions; running statistics stay float. */
void bnk__bn_ref_forward_train_f64(const bnk_bn_config *cfg, const bnk__bn_dims *d, int64_t step,
                                   double *y, double *saved, float *running_mean,
                                   float *running_var, const double *x, const double *gamma,
                                   const double *beta);
void bnk__bn_ref_backward_f64(const bnk_bn_config *cfg, const bnk__bn_dims *d, double *dx,
                              double *dgamma, double *dbeta, const double *dy, const double *x,
                              const double *y, const double *gamma, const double *saved);

/* Outputs larger than this many bytes are written with non-temporal stores by the kernels that
 * stream (avx2, avx512): half the last-level cache (sysconf), 16 MiB when unknown. Tests set it
 * (1: stream everything; 0: back to the default) to reach those paths on small shapes. */
size_t bnk__bn_stream_limit(void);
void bnk__bn_set_stream_limit(size_t bytes);

/* Converts a shape validated by bnk_bn_shape_validate (or bnk__bn_check_shape). */
bnk__bn_dims bnk__bn_dims_of(const bnk_bn_shape *shape);

/* Argument checks of the public entry points (bn_api.c), shared with the synchronised ones
 * (bn_sync.c). bnk__bn_check_shape is bnk_bn_shape_validate, except that allow_empty admits
 * n = 0 (a member of a synchronised group with an empty shard). bnk__bn_check_common validates
 * cfg and shape and requires gamma (beta) when scale (center) is on. bnk__bn_check_running
 * requires finite running means and finite, non-negative running variances. */
bnk_status bnk__bn_check_shape(const bnk_bn_shape *shape, int allow_empty);
bnk_status bnk__bn_check_common(const bnk_bn_config *cfg, const bnk_bn_shape *shape,
                                const float *gamma, const float *beta, int allow_empty);
bnk_status bnk__bn_check_running(const float *running_mean, const float *running_var, int64_t c);

#endif /* BNKIT_BN_INTERNAL_H */
