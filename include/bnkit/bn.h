/* bnkit/bn.h — batch normalization: every mode of the bnkit design, float32 data.
 *
 * Quick start (one training step, then backward, on an NCHW tensor):
 *
 *     bnk_bn_config cfg = bnk_bn_config_default();     // momentum 0.99, eps 1e-3, ...
 *     cfg.momentum = 0.9;                               // Keras convention: PyTorch p = 1 - 0.9
 *     bnk_bn_shape shape = {BNK_LAYOUT_NCHW, n, c, h, w};
 *     double saved[BNK_BN_SAVED_FIELDS * c];            // statistics kept for backward
 *     bnk_status st = bnk_bn_forward_train(&cfg, &shape, step, y, saved, run_mean, run_var,
 *                                          x, gamma, beta);
 *     if (st != BNK_OK) fprintf(stderr, "bn: %s\n", bnk_errmsg());
 *     st = bnk_bn_backward(&cfg, &shape, dx, dgamma, dbeta, dy, x, y, gamma, saved);
 *
 * Or let a bnk_bn_layer own parameters, running statistics, the step counter and the saved
 * statistics (bnk_bn_layer_create / _forward / _backward below).
 *
 * Math (docs/batchnorm.md has the full statement and every convention). Per channel c, a training
 * step sees the m = N*H*W values of that channel:
 *   1. batch mean mu_B and biased variance var_B, accumulated in double with a two-pass method;
 *   2. clipping: relative bounds (from the running statistics before this step, once
 *      step >= clip_warmup), then absolute bounds -> mu~, var~;
 *   3. running update  run <- momentum*run + (1-momentum)*new  (Keras convention; PyTorch's
 *      momentum p equals 1 - momentum here), variance optionally times m/(m-1), then the running
 *      bounds;
 *   4. normalisation with the batch statistics, the freshly updated running statistics, or
 *      Batch Renormalization's r and d;
 *   5. y = gamma*xhat + beta, then max(y, 0) when fuse_relu.
 *
 * Conventions of this API:
 *   - Forward functions write their outputs. bnk_bn_backward WRITES dx and ACCUMULATES into
 *     dgamma and dbeta (+=), so parameter gradients can be summed over several calls; zero them
 *     before the first call.
 *   - Buffers are caller-owned; no function allocates except bnk_bn_layer_create.
 *   - y may alias x (in-place forward) and dx may alias dy (in-place backward).
 *   - Errors: a bnk_status from bnkit/status.h; bnk_errmsg() has the detail. A failing call
 *     leaves every output buffer and running statistic untouched.
 *   - Thread safety: kernels are reentrant; a bnk_bn_layer is used by one thread at a time.
 */
#ifndef BNKIT_BN_H
#define BNKIT_BN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Memory layout of the data tensors x, y, dy, dx. NC is a 2-D (batch, channels) tensor, as after
 * a dense layer; it is stored like NHWC with H = W = 1.
 *
 * The blocked layouts are oneDNN's nChw16c (aBcd16b) and nChw8c (aBcd8b): the channels are cut
 * into blocks of B = 16 (8), and each image stores block after block, each block as H*W rows of
 * B channels. oneDNN's convolutions produce them (nChw16c on AVX-512, nChw8c on AVX2), so a
 * oneDNN user can run bnkit's BN on a convolution's output without reordering it. C must be a
 * multiple of B (oneDNN's zero-padded channels are not supported); with H*W = 1 or C = B the
 * layout is the same memory as NC / NHWC. Results equal those of the same tensor in NCHW, up to
 * the float rounding of the summation order. */
typedef enum bnk_layout {
    BNK_LAYOUT_NC,      /* x[n*C + c]                                              */
    BNK_LAYOUT_NCHW,    /* x[((n*C + c)*H + h)*W + w]                              */
    BNK_LAYOUT_NHWC,    /* x[((n*H + h)*W + w)*C + c]                              */
    BNK_LAYOUT_NCHW16C, /* x[((n*(C/16) + c/16)*H*W + h*W + w)*16 + c%16], nChw16c */
    BNK_LAYOUT_NCHW8C   /* x[((n*(C/8) + c/8)*H*W + h*W + w)*8 + c%8], nChw8c      */
} bnk_layout;

/* What the training forward normalises with (DESIGN step 4). */
typedef enum bnk_bn_norm {
    BNK_NORM_BATCH,   /* standard BN: the (clipped) batch statistics                      */
    BNK_NORM_RUNNING, /* the running statistics just updated by this step                 */
    BNK_NORM_RENORM   /* Batch Renormalization: batch statistics corrected by r and d     */
} bnk_bn_norm;

/* A closed interval [lo, hi]; infinite ends mean "no bound". */
typedef struct bnk_range {
    double lo, hi;
} bnk_range;

typedef struct bnk_bn_config {
    double momentum;           /* beta in [0,1): run <- beta*run + (1-beta)*batch. Default 0.99 */
    bool cumulative;           /* use beta_t = t/(t+1) instead (plain average); default false  */
    double eps;                /* > 0, added to variances before the square root; 1e-3         */
    bool center;               /* learnable shift beta (else 0, no gradient); default true     */
    bool scale;                /* learnable scale gamma (else 1, no gradient); default true    */
    bool unbiased_running_var; /* running var takes var*m/(m-1) (PyTorch); default false (Keras) */
    bnk_range mean_clip;       /* absolute bounds on the batch mean; default (-inf, inf)       */
    bnk_range var_clip;        /* absolute bounds on the batch variance, lo >= 0; [0, inf)     */
    double rel_clip_r;         /* >= 1: std within [sigma_R/r, sigma_R*r]; inf = off (default) */
    double rel_clip_d;         /* >= 0: mean within mu_R +- d*sigma_R; inf = off (default)     */
    int64_t clip_warmup;       /* >= 0: steps before the relative clip applies; default 0      */
    bnk_range running_mean_clip; /* bounds on the running mean after each update; off       */
    bnk_range running_var_clip;  /* bounds on the running variance, lo >= 0; off             */
    bnk_bn_norm normalize_with;  /* default BNK_NORM_BATCH                                   */
    double rmax;                 /* >= 1, Batch Renorm bound on r (1/rmax <= r <= rmax); 3   */
    double dmax;                 /* >= 0, Batch Renorm bound on |d|; 5                       */
    bool fuse_relu;              /* y <- max(y, 0), in training and inference; default false */
} bnk_bn_config;

/* The defaults of the design (Keras-like): momentum 0.99, eps 1e-3, center and scale on,
 * biased running variance, no clipping, normalise with the batch, rmax 3, dmax 5. */
bnk_bn_config bnk_bn_config_default(void);

/* Checks every hyperparameter. Returns BNK_OK, or BNK_ERR_PARAM (BNK_ERR_NULL for cfg == NULL)
 * with the reason in bnk_errmsg(), e.g. "eps must be finite and > 0, got 0". */
bnk_status bnk_bn_config_validate(const bnk_bn_config *cfg);

/* Tensor shape. For BNK_LAYOUT_NC, h and w must be 1; for the blocked layouts, c must be a
 * multiple of the block (16 or 8). All sizes must be >= 1. */
typedef struct bnk_bn_shape {
    bnk_layout layout;
    int64_t n, c, h, w;
} bnk_bn_shape;

/* Checks a shape (sizes >= 1, no size_t overflow of n*c*h*w*sizeof(float), NC has h = w = 1,
 * a blocked layout has c a multiple of its block). BNK_ERR_SIZE, with the reason in bnk_errmsg(),
 * e.g. "layout nchw16c needs C to be a multiple of 16, got 20". */
bnk_status bnk_bn_shape_validate(const bnk_bn_shape *shape);

/* Number of elements n*c*h*w of a valid shape. */
size_t bnk_bn_shape_numel(const bnk_bn_shape *shape);

/* Saved statistics: forward_train writes BNK_BN_SAVED_FIELDS*C doubles, field-major:
 * saved[field*C + c]. backward reads them. Kept in double so that backward stays accurate on
 * channels whose mean is large compared with their spread. */
enum {
    BNK_SAVED_BATCH_MEAN = 0, /* mu_B, the batch mean before clipping                      */
    BNK_SAVED_BATCH_VAR,      /* var_B, the biased batch variance before clipping          */
    BNK_SAVED_CENTER,         /* the value subtracted from x when normalising              */
    BNK_SAVED_INV_STD,        /* 1/sqrt(var + eps) of the variance normalised with         */
    BNK_SAVED_RENORM_R,       /* Batch Renorm r (1 in the other modes)                     */
    BNK_SAVED_RENORM_D,       /* Batch Renorm d (0 in the other modes)                     */
    BNK_SAVED_GRAD_MEAN,      /* d(center)/d(mu_B): 0 when a bound clipped, (1-beta) in running */
    BNK_SAVED_GRAD_VAR,       /* d(normalising var)/d(var_B), likewise                     */
    BNK_BN_SAVED_FIELDS
};

/* Training forward.
 *   cfg, shape   hyperparameters and shape (validated)
 *   step         number of running-statistic updates made before this call (t >= 0); drives
 *                cumulative averaging and clip_warmup
 *   y            [shape] output (may alias x)
 *   saved        [BNK_BN_SAVED_FIELDS*C] statistics for backward (see above)
 *   running_mean [C] in/out, running_var [C] in/out (updated by this step)
 *   x            [shape] input
 *   gamma [C], beta [C]  parameters; each may be NULL when its flag (scale, center) is off
 * Errors: BNK_ERR_NULL, BNK_ERR_SIZE, BNK_ERR_OVERFLOW, BNK_ERR_PARAM, BNK_ERR_BATCH (m = 1).
 * A channel whose batch statistics are not finite (NaN/Inf in x) leaves its running statistics
 * unchanged instead of poisoning them; its y is NaN. */
bnk_status bnk_bn_forward_train(const bnk_bn_config *cfg, const bnk_bn_shape *shape, int64_t step,
                                float *y, double *saved, float *running_mean, float *running_var,
                                const float *x, const float *gamma, const float *beta);

/* Inference forward: y = gamma*(x - running_mean)/sqrt(running_var + eps) + beta (then ReLU if
 * fused). y [shape] (may alias x); x [shape]; gamma, beta [C] (NULL allowed when off);
 * running_mean, running_var [C]. A negative running_var is BNK_ERR_PARAM. */
bnk_status bnk_bn_forward_infer(const bnk_bn_config *cfg, const bnk_bn_shape *shape, float *y,
                                const float *x, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var);

/* Backward of bnk_bn_forward_train: the exact derivative of the training forward, with the old
 * running statistics and Batch Renorm's r, d held constant, and clamps contributing 1 where they
 * did not clip and 0 where they did.
 *   dx      [shape] written (may alias dy)
 *   dgamma  [C] accumulated (+= sum dy*xhat); may be NULL, and is left alone when scale is off
 *   dbeta   [C] accumulated (+= sum dy); may be NULL, and is left alone when center is off
 *   dy      [shape] gradient of the loss w.r.t. y
 *   x       [shape] the forward input
 *   y       [shape] the forward output; read only when fuse_relu (mask y > 0), else may be NULL
 *   gamma   [C] (NULL allowed when scale is off)
 *   saved   [BNK_BN_SAVED_FIELDS*C] from the matching forward_train */
bnk_status bnk_bn_backward(const bnk_bn_config *cfg, const bnk_bn_shape *shape, float *dx,
                           float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *y, const float *gamma, const double *saved);

/* ---- Synchronised BN: one batch spread over several processes -------------------------- */

/* The group of processes (ranks) that together hold one batch, as BN needs it. Every member
 * calls the same synchronised function with the same cfg, layout, C, H and W; its own shard
 * of the batch may have any n >= 0 (an empty shard takes part with n = 0). bnkit/bn_mpi.h makes
 * one from an MPI communicator; any other transport can fill in the two operations.
 * Both return BNK_OK, or an error status with bnk_errmsg() set; they must leave identical
 * results on every member. */
typedef struct bnk_bn_comm {
    /* Merges per-channel moments across the group, in place. moments holds 3*channels doubles:
     * [0, C) the counts, [C, 2C) the means, [2C, 3C) the sums of squared deviations from the
     * mean (M2). On return they are the moments of the union of all members' values, merged
     * with Chan et al.'s pairwise formula (never from sums of squares). */
    bnk_status (*merge_moments)(void *ctx, double *moments, size_t channels);
    /* Element-wise sum of buf[0, len) across the group, in place. */
    bnk_status (*sum)(void *ctx, double *buf, size_t len);
    void *ctx;
    /* Optional (may be NULL): lends scratch of at least len doubles, valid until the next call
     * of any operation of this comm; *out = NULL and an error status when it cannot.
     * bnk_bn_backward_sync needs 4*C + 1 doubles and takes them from its stack up to C = 1024
     * (32 KiB), from here beyond (so a comm without it serves C <= 1024 only). bnkit/bn_mpi.h's
     * comm provides it. Local work: it must not communicate. */
    bnk_status (*workspace)(void *ctx, size_t len, double **out);
} bnk_bn_comm;

/* Training forward over the union of the members' shards: the batch statistics and m are the
 * global ones (m = 1 is judged on the global count), every member updates its running
 * statistics identically, and y is this member's shard. Same arguments as
 * bnk_bn_forward_train plus comm; shape->n may be 0 (then x and y may be NULL). With a
 * one-member group it equals bnk_bn_forward_train. One merge_moments call per forward.
 * Errors: argument checks are local and come before any communication, so a member that fails
 * them does not take part (the others then wait in the collective: give every member the same
 * cfg, C, H, W). After the exchange, BNK_ERR_BATCH (global m < 2) and a comm error leave y and
 * the running statistics untouched, but saved's contents are then unspecified (it holds the
 * exchanged moments: the call allocates nothing). */
bnk_status bnk_bn_forward_train_sync(const bnk_bn_config *cfg, const bnk_bn_shape *shape,
                                     int64_t step, float *y, double *saved, float *running_mean,
                                     float *running_var, const float *x, const float *gamma,
                                     const float *beta, const bnk_bn_comm *comm);

/* Backward of bnk_bn_forward_train_sync: dx of this member's shard is the exact derivative of
 * the global loss (the per-channel sums of dy and dy*xhat, and the member's value count, which
 * gives the global m, are summed over the group). dgamma and dbeta ACCUMULATE this member's own
 * contributions only, so that summing parameter gradients over the group (as data-parallel
 * training does) gives the global ones. shape->n may be 0 (then dx, dy, x, y may be NULL).
 * One sum call of 2*C + 1 doubles. Scratch: 4*C + 1 doubles (the exchanged sums and this
 * member's own), on the stack when C <= 1024, else from comm->workspace (BNK_ERR_NULL when the
 * comm has none, or its error; local, before any communication). A comm error and global
 * m < 2 (BNK_ERR_BATCH) leave every output untouched. */
bnk_status bnk_bn_backward_sync(const bnk_bn_config *cfg, const bnk_bn_shape *shape, float *dx,
                                float *dgamma, float *dbeta, const float *dy, const float *x,
                                const float *y, const float *gamma, const double *saved,
                                const bnk_bn_comm *comm);

/* Kernel selection. The implementations compiled in AND runnable on this CPU are listed by
 * bnk_bn_kernel_count() / bnk_bn_kernel_at(i): "ref" first (the double-precision reference that
 * is the specification in code), then "opt" (portable vectorised C), "avx2", "avx512". The
 * default is the last (fastest) one; the environment variable BNK_ARCH=<name> or
 * bnk_bn_kernel_select(name) forces one. bnk_bn_kernel_name() names the
 * kernel that the next call will run. Selection is process-wide; do not change it while other
 * threads run BN. */
int bnk_bn_kernel_count(void);
const char *bnk_bn_kernel_at(int i);
bnk_status bnk_bn_kernel_select(const char *name);
const char *bnk_bn_kernel_name(void);

/* ---- Stateful layer ---------------------------------------------------------------------- */

/* A BN layer over C channels: owns gamma (init 1), beta (init 0), running mean (0) and variance
 * (1), gradient buffers dgamma/dbeta, the step counter and the saved statistics of the last
 * training forward. */
typedef struct bnk_bn_layer bnk_bn_layer;

/* Creates a layer; *out is NULL on failure. */
bnk_status bnk_bn_layer_create(bnk_bn_layer **out, const bnk_bn_config *cfg, int64_t channels);
/* Frees a layer; NULL is harmless. */
void bnk_bn_layer_destroy(bnk_bn_layer *layer);

/* Replaces the configuration (e.g. a Batch Renorm rmax/dmax schedule). Validated first. */
bnk_status bnk_bn_layer_set_config(bnk_bn_layer *layer, const bnk_bn_config *cfg);
const bnk_bn_config *bnk_bn_layer_config(const bnk_bn_layer *layer);

/* Forward: training (batch statistics, running update, step += 1) or inference. */
bnk_status bnk_bn_layer_forward(bnk_bn_layer *layer, const bnk_bn_shape *shape, bool training,
                                float *y, const float *x);
/* Backward of the last training forward: writes dx, accumulates into the layer's dgamma/dbeta.
 * y is needed only when fuse_relu. */
bnk_status bnk_bn_layer_backward(bnk_bn_layer *layer, const bnk_bn_shape *shape, float *dx,
                                 const float *dy, const float *x, const float *y);
/* Sets dgamma and dbeta to 0. */
void bnk_bn_layer_zero_grad(bnk_bn_layer *layer);

int64_t bnk_bn_layer_channels(const bnk_bn_layer *layer);
int64_t bnk_bn_layer_step(const bnk_bn_layer *layer);
void bnk_bn_layer_set_step(bnk_bn_layer *layer, int64_t step);
/* Views of the layer's [C] arrays; writable so that callers can load and update them. */
float *bnk_bn_layer_gamma(bnk_bn_layer *layer);
float *bnk_bn_layer_beta(bnk_bn_layer *layer);
float *bnk_bn_layer_running_mean(bnk_bn_layer *layer);
float *bnk_bn_layer_running_var(bnk_bn_layer *layer);
float *bnk_bn_layer_dgamma(bnk_bn_layer *layer);
float *bnk_bn_layer_dbeta(bnk_bn_layer *layer);
/* Makes the layer's training forward and backward synchronised over comm (NULL: local BN,
 * the default). The layer keeps the pointer; comm must outlive its use. */
void bnk_bn_layer_set_comm(bnk_bn_layer *layer, const bnk_bn_comm *comm);

/* [BNK_BN_SAVED_FIELDS*C] statistics of the last training forward. */
const double *bnk_bn_layer_saved(const bnk_bn_layer *layer);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_BN_H */
