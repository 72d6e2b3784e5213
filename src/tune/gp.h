/* Gaussian-process regression and log expected improvement for the GP sampler (internal; the
 * sampler itself is bnk__gp_suggest in gp_acq.c, declared in tune_internal.h).
 *
 * The model follows Optuna's GPSampler (optuna/_gp/{gp,prior}.py):
 *
 *     k(x, x') = s * matern52(r),   r^2 = sum_i lam_i * d_i(x, x')^2,   lam_i = 1 / l_i^2 (ARD)
 *     y = f(x) + N(0, noise),      noise >= BNK__GP_MIN_NOISE
 *
 * on standardised targets (zero prior mean). Every search-space parameter is one kernel
 * dimension, encoded as two numbers (see bnk__gp_data): numeric parameters compare by squared
 * difference of unit coordinates, categorical ones by Hamming distance 1[c != c']. Conditional
 * parameters that are inactive take a fixed imputed position plus an "inactive" indicator, so
 * that the distance is still Euclidean (the kernel stays positive definite):
 *
 *     numeric:      d^2 = (u - u')^2 + (a - a')^2    u = 0.5 and a = 1 when inactive, else a = 0
 *     categorical:  d^2 = 1[c != c']                 c = -1 (an extra category) when inactive
 *
 * The hyperparameters theta = (log lam_0 .. log lam_{d-1}, log s, log(noise - min_noise)) are
 * the maximum a posteriori estimate under Optuna's weak priors
 *
 *     log p = sum_i -(0.1/lam_i + 0.1*lam_i) + Gamma(s | 2, rate 1) + Gamma(noise | 1.1, rate 30)
 *
 * found by NLopt's L-BFGS with the analytic gradient of the log marginal likelihood (Cholesky
 * by LAPACKE). */
#ifndef BNKIT_TUNE_GP_H
#define BNKIT_TUNE_GP_H

#include <stdbool.h>
#include <stdint.h>

#include "bnkit/tune.h"

enum { BNK__GP_MAX_DIM = BNK_SPACE_MAX_PARAMS, BNK__GP_MAX_THETA = BNK__GP_MAX_DIM + 2 };

#define BNK__GP_MIN_NOISE 1e-6

/* Training data. x[j*2d + 2i] is observation j's coordinate in dimension i (unit coordinate,
 * or category index, -1 when inactive); x[j*2d + 2i + 1] its inactive indicator (numeric only,
 * 0 or 1). */
typedef struct bnk__gp_data {
    int n;                     /* observations, >= 1                                  */
    int d;                     /* kernel dimensions, 1 .. BNK__GP_MAX_DIM             */
    bool cat[BNK__GP_MAX_DIM]; /* dimension i compares by Hamming distance            */
    const double *x;           /* [n][2d] encoded inputs                              */
    const double *y;           /* [n] targets, standardised (mean 0, sd 1)            */
} bnk__gp_data;

/* A fitted model: the hyperparameters and the factors that predictions need. */
typedef struct bnk__gp {
    bnk__gp_data data;
    double theta[BNK__GP_MAX_THETA];
    double lam[BNK__GP_MAX_DIM], scale, noise;
    double *chol;    /* [n][n] column-major lower Cholesky factor of K + noise*I     */
    double *alpha;   /* [n] (K + noise*I)^-1 y                                        */
    double log_post; /* log marginal likelihood + log prior at theta            */
} bnk__gp;

/* Matérn-5/2 of r = sqrt(r2): (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r); *dm (may be NULL) gets its
 * derivative with respect to r2, -(5/6)(1 + sqrt5 r) exp(-sqrt5 r) (finite at r = 0). */
double bnk__gp_matern52(double r2, double *dm);

/* Squared per-dimension distance d_i(a, b)^2 of two encoded inputs [2d]. */
double bnk__gp_dist2(const bnk__gp_data *data, int i, const double *a, const double *b);

/* Log posterior (log marginal likelihood + log prior, up to a constant) at theta [d + 2];
 * grad (may be NULL) [d + 2] receives its gradient. work: [3 n^2 + n] doubles. Returns -INFINITY
 * when K + noise*I is not numerically positive definite. */
double bnk__gp_log_posterior(const bnk__gp_data *data, const double *theta, double *grad,
                             double *work);

/* The defaults the fit starts from (lam = 1, s = 1, noise = 1e-2; Optuna's) in theta [d + 2]. */
void bnk__gp_theta_default(int d, double *theta);

/* Fits the hyperparameters (MAP, L-BFGS from the defaults and `nrestarts` more starting points
 * drawn from *rng) and factorises the kernel matrix. gp is caller-owned; data's arrays must
 * outlive it. BNK_ERR_NOMEM, or BNK_ERR_PARAM when no starting point gives a positive-definite
 * kernel matrix. bnk__gp_free releases what it allocated (also after a failure). */
bnk_status bnk__gp_fit(bnk__gp *gp, const bnk__gp_data *data, int nrestarts, uint64_t *rng);

/* Sets the hyperparameters to theta without optimising and factorises (tests, warm paths). */
bnk_status bnk__gp_set_theta(bnk__gp *gp, const bnk__gp_data *data, const double *theta);

void bnk__gp_free(bnk__gp *gp); /* NULL and a zeroed struct are harmless */

/* Posterior of the latent f at one encoded input x [2d]: mean, variance (noise excluded,
 * clamped at 0). dmean/dvar (both NULL or both [d]) get the derivatives with respect to each
 * numeric dimension's coordinate x[2i] (0 for categorical dimensions). work: [3n]. */
void bnk__gp_predict(const bnk__gp *gp, const double *x, double *mean, double *var, double *dmean,
                     double *dvar, double *work);

/* The same for m inputs x [m][2d] at once (no derivatives): mean [m], var [m]. work: [n*m]. */
void bnk__gp_predict_many(const bnk__gp *gp, int m, const double *x, double *mean, double *var,
                          double *work);

/* log h(z) with h(z) = phi(z) + z Phi(z), so that log EI = log sigma + log h((best - mu)/sigma)
 * for minimisation. Accurate for every finite z (continued fraction for z < -5, no
 * cancellation); *ratio (may be NULL) = d log h / dz = Phi(z) / h(z). */
double bnk__gp_log_h(double z, double *ratio);

#endif /* BNKIT_TUNE_GP_H */
