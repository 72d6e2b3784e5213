/* Gaussian-process regression for the GP sampler: the Matérn-5/2 ARD kernel with categorical
 * (Hamming) and inactive dimensions, the MAP fit of its hyperparameters (NLopt L-BFGS on the
 * analytic gradient of the log marginal likelihood), posterior predictions, and a numerically
 * stable log expected improvement. gp.h documents the model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <lapacke.h>
#include <nlopt.h>

#include "core/internal.h"
#include "core/rng.h"
#include "tune/gp.h"

static const double SQRT5 = 2.23606797749978969641;
static const double LOG_2PI = 1.83787706640934548356;

/* Box constraints of theta in the fit: lam in [e^-10, e^10] (length scales 0.007 .. 150 unit
 * widths), s in [e^-7, e^7] (targets are standardised, s is near 1), noise in
 * [1e-6, 1e-6 + e^3]. */
#define LOG_LAM_MIN   (-10.0)
#define LOG_LAM_MAX   10.0
#define LOG_SCALE_MIN (-7.0)
#define LOG_SCALE_MAX 7.0
#define LOG_NOISE_MIN (-25.0)
#define LOG_NOISE_MAX 3.0

double bnk__gp_matern52(double r2, double *dm) {
    const double r = sqrt(r2 > 0 ? r2 : 0), e = exp(-SQRT5 * r);
    if (dm) *dm = -(5.0 / 6.0) * (1 + SQRT5 * r) * e;
    return (1 + SQRT5 * r + (5.0 / 3.0) * r2) * e;
}

double bnk__gp_dist2(const bnk__gp_data *data, int i, const double *a, const double *b) {
    if (data->cat[i]) return a[2 * i] != b[2 * i] ? 1.0 : 0.0;
    const double du = a[2 * i] - b[2 * i], da = a[2 * i + 1] - b[2 * i + 1];
    return du * du + da * da;
}

/* r^2 = sum_i lam_i d_i^2 between two encoded inputs. */
static double weighted_r2(const bnk__gp_data *data, const double *lam, const double *a,
                          const double *b) {
    double r2 = 0;
    for (int i = 0; i < data->d; i++) r2 += lam[i] * bnk__gp_dist2(data, i, a, b);
    return r2;
}

/* theta -> (lam, s, noise). */
static void unpack_theta(int d, const double *theta, double *lam, double *scale, double *noise) {
    for (int i = 0; i < d; i++) lam[i] = exp(theta[i]);
    *scale = exp(theta[d]);
    *noise = exp(theta[d + 1]) + BNK__GP_MIN_NOISE;
}

/* Fills the lower triangle of K + noise*I (column-major [n][n]) and of r2 [n][n]. */
static void build_kernel(const bnk__gp_data *data, const double *lam, double scale, double noise,
                         double *K, double *R2) {
    const int n = data->n, d2 = 2 * data->d;
    for (int k = 0; k < n; k++) {
        const double *xk = data->x + (size_t)k * d2;
        K[k + (size_t)k * n] = scale + noise;
        if (R2) R2[k + (size_t)k * n] = 0;
        for (int j = k + 1; j < n; j++) {
            const double r2 = weighted_r2(data, lam, data->x + (size_t)j * d2, xk);
            K[j + (size_t)k * n] = scale * bnk__gp_matern52(r2, NULL);
            if (R2) R2[j + (size_t)k * n] = r2;
        }
    }
}

/* Log prior of Optuna's GPSampler (optuna/_gp/prior.py) and its gradient in theta. */
static double log_prior(int d, const double *theta, double *grad) {
    double lp = 0;
    for (int i = 0; i < d; i++) {
        const double lam = exp(theta[i]);
        lp += -(0.1 / lam + 0.1 * lam);
        if (grad) grad[i] += 0.1 / lam - 0.1 * lam;
    }
    const double s = exp(theta[d]), en = exp(theta[d + 1]), noise = en + BNK__GP_MIN_NOISE;
    lp += log(s) - s;                    /* Gamma(2, rate 1), up to a constant   */
    lp += 0.1 * log(noise) - 30 * noise; /* Gamma(1.1, rate 30)                 */
    if (grad) {
        grad[d] += 1 - s;
        grad[d + 1] += (0.1 / noise - 30) * en;
    }
    return lp;
}

double bnk__gp_log_posterior(const bnk__gp_data *data, const double *theta, double *grad,
                             double *work) {
    const int n = data->n, d = data->d;
    const size_t nn = (size_t)n * n;
    double *L = work, *Kinv = work + nn, *R2 = work + 2 * nn, *alpha = work + 3 * nn;
    double lam[BNK__GP_MAX_DIM], s, noise;
    unpack_theta(d, theta, lam, &s, &noise);
    build_kernel(data, lam, s, noise, L, R2);
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, L, n) != 0) return -INFINITY;
    memcpy(alpha, data->y, (size_t)n * sizeof *alpha);
    LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', n, 1, L, n, alpha, n);
    double quad = 0, logdet = 0;
    for (int j = 0; j < n; j++) {
        quad += data->y[j] * alpha[j];
        logdet += 2 * log(L[j + (size_t)j * n]);
    }
    const double lml = -0.5 * quad - 0.5 * logdet - 0.5 * n * LOG_2PI;
    if (!grad) return lml + log_prior(d, theta, NULL);

    /* d lml / d theta_p = 1/2 tr(W dK/dtheta_p), W = alpha alpha^T - K^-1 (symmetric: the
     * strictly lower pairs count twice, the diagonal once). */
    memcpy(Kinv, L, nn * sizeof *Kinv);
    if (LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', n, Kinv, n) != 0) return -INFINITY;
    for (int p = 0; p < d + 2; p++) grad[p] = 0;
    double g_scale = 0, g_diag = 0;
    for (int k = 0; k < n; k++) {
        const double *xk = data->x + (size_t)k * 2 * d;
        g_diag += alpha[k] * alpha[k] - Kinv[k + (size_t)k * n];
        for (int j = k + 1; j < n; j++) {
            const double w = alpha[j] * alpha[k] - Kinv[j + (size_t)k * n];
            double dm;
            const double m = bnk__gp_matern52(R2[j + (size_t)k * n], &dm);
            g_scale += w * s * m;
            const double c = w * s * dm;
            const double *xj = data->x + (size_t)j * 2 * d;
            for (int i = 0; i < d; i++) grad[i] += c * lam[i] * bnk__gp_dist2(data, i, xj, xk);
        }
    }
    grad[d] = g_scale + 0.5 * g_diag * s;                     /* dK/dlog s = K_f */
    grad[d + 1] = 0.5 * g_diag * (noise - BNK__GP_MIN_NOISE); /* dK/draw = e^raw I */
    return lml + log_prior(d, theta, grad);
}

void bnk__gp_theta_default(int d, double *theta) {
    for (int i = 0; i < d; i++) theta[i] = 0; /* lam = 1 */
    theta[d] = 0;                             /* s = 1   */
    theta[d + 1] = log(1e-2 - BNK__GP_MIN_NOISE);
}

void bnk__gp_free(bnk__gp *gp) {
    if (!gp) return;
    free(gp->chol);
    free(gp->alpha);
    gp->chol = gp->alpha = NULL;
}

bnk_status bnk__gp_set_theta(bnk__gp *gp, const bnk__gp_data *data, const double *theta) {
    const int n = data->n, d = data->d;
    if (!gp->chol) gp->chol = malloc((size_t)n * n * sizeof *gp->chol);
    if (!gp->alpha) gp->alpha = malloc((size_t)n * sizeof *gp->alpha);
    if (!gp->chol || !gp->alpha) return bnk__fail(BNK_ERR_NOMEM, "GP sampler: out of memory");
    gp->data = *data;
    memcpy(gp->theta, theta, (size_t)(d + 2) * sizeof *theta);
    gp->log_post = NAN; /* bnk__gp_fit fills it in */
    unpack_theta(d, theta, gp->lam, &gp->scale, &gp->noise);
    build_kernel(data, gp->lam, gp->scale, gp->noise, gp->chol, NULL);
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, gp->chol, n) != 0)
        return bnk__fail(BNK_ERR_PARAM, "GP sampler: kernel matrix is not positive definite");
    memcpy(gp->alpha, data->y, (size_t)n * sizeof *gp->alpha);
    LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', n, 1, gp->chol, n, gp->alpha, n);
    return BNK_OK;
}

/* ---- MAP fit ------------------------------------------------------------------------------ */

typedef struct fit_ctx {
    const bnk__gp_data *data;
    double *work;
    double best, best_theta[BNK__GP_MAX_THETA];
} fit_ctx;

/* NLopt minimises: -log posterior. Points where the Cholesky fails get a huge value and a zero
 * gradient, which makes the line search step back. */
static double fit_objective(unsigned nv, const double *theta, double *grad, void *p) {
    fit_ctx *c = p;
    const double lp = bnk__gp_log_posterior(c->data, theta, grad, c->work);
    if (!isfinite(lp)) {
        if (grad) memset(grad, 0, nv * sizeof *grad);
        return 1e30;
    }
    if (lp > c->best) {
        c->best = lp;
        memcpy(c->best_theta, theta, nv * sizeof *theta);
    }
    if (grad)
        for (unsigned k = 0; k < nv; k++) grad[k] = -grad[k];
    return -lp;
}

bnk_status bnk__gp_fit(bnk__gp *gp, const bnk__gp_data *data, int nrestarts, uint64_t *rng) {
    const int n = data->n, d = data->d, nv = d + 2;
    const size_t nn = (size_t)n * n;
    fit_ctx c = {.data = data, .best = -INFINITY};
    c.work = malloc((3 * nn + (size_t)n) * sizeof *c.work);
    nlopt_opt opt = nlopt_create(NLOPT_LD_LBFGS, (unsigned)nv);
    if (!c.work || !opt) {
        free(c.work);
        nlopt_destroy(opt);
        return bnk__fail(BNK_ERR_NOMEM, "GP sampler: out of memory");
    }
    double lo[BNK__GP_MAX_THETA], hi[BNK__GP_MAX_THETA], theta[BNK__GP_MAX_THETA];
    for (int i = 0; i < d; i++) {
        lo[i] = LOG_LAM_MIN;
        hi[i] = LOG_LAM_MAX;
    }
    lo[d] = LOG_SCALE_MIN;
    hi[d] = LOG_SCALE_MAX;
    lo[d + 1] = LOG_NOISE_MIN;
    hi[d + 1] = LOG_NOISE_MAX;
    nlopt_set_lower_bounds(opt, lo);
    nlopt_set_upper_bounds(opt, hi);
    nlopt_set_min_objective(opt, fit_objective, &c);
    nlopt_set_ftol_rel(opt, 1e-7);
    nlopt_set_xtol_rel(opt, 1e-5);
    nlopt_set_maxeval(opt, 200);
    for (int r = 0; r <= nrestarts; r++) {
        bnk__gp_theta_default(d, theta);
        if (r > 0) { /* lam log-uniform in [0.1, 20], noise log-uniform in [1e-5, 1e-1] */
            for (int i = 0; i < d; i++)
                theta[i] = log(0.1) + bnk__rng_uniform(rng) * (log(20.0) - log(0.1));
            theta[d + 1] = log(1e-5) + bnk__rng_uniform(rng) * (log(1e-1) - log(1e-5));
        }
        double f;
        nlopt_optimize(opt, theta, &f); /* the best point is tracked by fit_objective */
    }
    nlopt_destroy(opt);
    free(c.work);
    if (!isfinite(c.best))
        return bnk__fail(BNK_ERR_PARAM, "GP sampler: kernel matrix is not positive definite");
    bnk_status st = bnk__gp_set_theta(gp, data, c.best_theta);
    gp->log_post = c.best;
    return st;
}

/* ---- Prediction ---------------------------------------------------------------------------- */

void bnk__gp_predict(const bnk__gp *gp, const double *x, double *mean, double *var, double *dmean,
                     double *dvar, double *work) {
    const bnk__gp_data *data = &gp->data;
    const int n = data->n, d = data->d;
    double *kx = work, *v = work + n, *r2 = work + 2 * n;
    double mu = 0;
    for (int j = 0; j < n; j++) {
        r2[j] = weighted_r2(data, gp->lam, x, data->x + (size_t)j * 2 * d);
        kx[j] = gp->scale * bnk__gp_matern52(r2[j], NULL);
        mu += kx[j] * gp->alpha[j];
    }
    memcpy(v, kx, (size_t)n * sizeof *v);
    cblas_dtrsv(CblasColMajor, CblasLower, CblasNoTrans, CblasNonUnit, n, gp->chol, n, v, 1);
    const double s2 = gp->scale - cblas_ddot(n, v, 1, v, 1);
    *mean = mu;
    *var = s2 > 0 ? s2 : 0;
    if (!dmean) return;
    /* d mean = sum_j alpha_j dk_j, d var = -2 sum_j (K^-1 k)_j dk_j, with
     * dk_j / dx_i = s m'(r2_j) lam_i 2 (x_i - x_ji). */
    cblas_dtrsv(CblasColMajor, CblasLower, CblasTrans, CblasNonUnit, n, gp->chol, n, v, 1);
    for (int i = 0; i < d; i++) dmean[i] = dvar[i] = 0;
    for (int j = 0; j < n; j++) {
        double dm;
        bnk__gp_matern52(r2[j], &dm);
        const double *xj = data->x + (size_t)j * 2 * d, c = gp->scale * dm;
        for (int i = 0; i < d; i++) {
            if (data->cat[i]) continue;
            const double dk = c * gp->lam[i] * 2 * (x[2 * i] - xj[2 * i]);
            dmean[i] += gp->alpha[j] * dk;
            dvar[i] -= 2 * v[j] * dk;
        }
    }
    if (s2 <= 0)
        for (int i = 0; i < d; i++) dvar[i] = 0;
}

void bnk__gp_predict_many(const bnk__gp *gp, int m, const double *x, double *mean, double *var,
                          double *work) {
    const bnk__gp_data *data = &gp->data;
    const int n = data->n, d = data->d;
    for (int c = 0; c < m; c++) { /* column c of work: k(X, x_c) */
        double *kc = work + (size_t)c * n;
        const double *xc = x + (size_t)c * 2 * d;
        for (int j = 0; j < n; j++)
            kc[j] =
                gp->scale *
                bnk__gp_matern52(weighted_r2(data, gp->lam, xc, data->x + (size_t)j * 2 * d), NULL);
        mean[c] = cblas_ddot(n, kc, 1, gp->alpha, 1);
    }
    cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, m, 1.0,
                gp->chol, n, work, n);
    for (int c = 0; c < m; c++) {
        const double *vc = work + (size_t)c * n;
        const double s2 = gp->scale - cblas_ddot(n, vc, 1, vc, 1);
        var[c] = s2 > 0 ? s2 : 0;
    }
}

/* ---- log EI -------------------------------------------------------------------------------- */

/* For t >= 5: the continued fraction c(t) = 1/(t + 2/(t + 3/(t + ...))) of the Mills ratio
 * R(t) = (1 - Phi(t))/phi(t) = 1/(t + c(t)), evaluated from depth 60 backwards (at t = 5 the
 * tail's effect is below 1e-17). */
static double mills_tail(double t) {
    double tail = t;
    for (int k = 60; k >= 2; k--) tail = t + k / tail;
    return 1 / tail;
}

double bnk__gp_log_h(double z, double *ratio) {
    if (z > -5) { /* direct: the cancellation in phi + z Phi loses < 2 digits for z > -5 */
        const double Phi = 0.5 * erfc(-z / 1.41421356237309504880);
        const double phi = exp(-0.5 * z * z) / 2.50662827463100050242;
        const double h = phi + z * Phi;
        if (ratio) *ratio = Phi / h;
        return log(h);
    }
    /* z = -t, t > 5: h = phi(t) (1 - t R(t)) = phi(t) c / (t + c), and Phi(z)/h(z) = 1/c. */
    const double t = -z, c = mills_tail(t);
    if (ratio) *ratio = 1 / c;
    return -0.5 * t * t - 0.5 * LOG_2PI + log(c) - log(t + c);
}
