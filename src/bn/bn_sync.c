/* Synchronised BN (bnk_bn_forward_train_sync, bnk_bn_backward_sync): one batch spread over the
 * members of a group, each holding a shard of any size n >= 0. The members exchange O(C)
 * numbers per call through a bnk_bn_comm; no data tensor ever travels.
 *
 * Forward: each member takes its shard's per-channel (count, mean, M2) in double with two
 * passes (like the opt kernel), the group merges them with Chan et al.'s formula (one
 * merge_moments call), and everything after that is the shared per-channel step
 * (bnk__bn_channels_forward) with the global m and statistics, so that every member updates its
 * running statistics identically and the result equals single-process BN over the concatenated
 * batch. Backward: per-channel sum(g) and sum(g*xhat) of the shard plus its count are summed
 * over the group, and bnk__bn_channel_backward runs with the global m.
 *
 * Scratch, without allocation:
 *   forward   the caller's `saved` [8*C]: the packed moments [counts | means | M2s] occupy
 *             saved[5C, 8C) (the fields RENORM_D, GRAD_MEAN, GRAD_VAR, written last). After the
 *             merge, BATCH_MEAN = means and BATCH_VAR = M2/m are written to saved[0, 2C), which
 *             does not overlap the moments, and bnk__bn_channels_forward then reads those two
 *             fields back in place (each channel's values are read before its own fields are
 *             written, and no field it writes overlaps another channel's inputs) and
 *             overwrites the scratch with the saved fields proper.
 *   backward  `saved` is const there, so the sums live on the stack, SYNC_SUM_BLOCK channels at
 *             a time (4*SYNC_SUM_BLOCK + 1 doubles, 32 KiB): one sum call of 2*C + 1 doubles
 *             when C <= SYNC_SUM_BLOCK, ceil(C/SYNC_SUM_BLOCK) calls otherwise (every member
 *             makes the same calls, since C is common).
 *
 * Sweeps: loops compiled with -O3 that vectorise; OpenMP threads over channels (planar) or
 * blocks of SYNC_BLOCK channels (interleaved), as in src/bn/opt. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "bn/bn_internal.h"
#include "core/internal.h"

enum {
    SYNC_BLOCK = 64,             /* channels per block in the interleaved layouts          */
    SYNC_PARALLEL_MIN = 1 << 16, /* elements below which threads cost more than they save */
    SYNC_SUM_BLOCK = 1024        /* channels per backward sum call (stack scratch)          */
};

static inline size_t min_size(size_t a, size_t b) {
    return a < b ? a : b;
}

static inline float relu_if(int on, float v) {
    return on ? (v > 0.0f ? v : 0.0f) : v;
}

/* ---- Forward ----------------------------------------------------------------------------- */

/* Per-channel count, mean and M2 of the shard x (two passes in double). An empty shard gives
 * (0, 0, 0), which the merge treats exactly. */
static void local_moments(const bnk__bn_dims *d, const float *x, double *count, double *mean,
                          double *m2) {
    const size_t C = d->c, hw = d->hw, m = d->n * hw;
    if (m == 0) {
        for (size_t c = 0; c < C; c++) count[c] = mean[c] = m2[c] = 0.0;
        return;
    }
    if (d->planar) {
#pragma omp parallel for schedule(static) if (m * C >= SYNC_PARALLEL_MIN)
        for (size_t c = 0; c < C; c++) {
            double sum = 0.0;
            for (size_t n = 0; n < d->n; n++) {
                const float *xp = x + (n * C + c) * hw;
#pragma omp simd reduction(+ : sum)
                for (size_t s = 0; s < hw; s++) sum += (double)xp[s];
            }
            const double mu = sum / (double)m;
            double sq = 0.0;
            for (size_t n = 0; n < d->n; n++) {
                const float *xp = x + (n * C + c) * hw;
#pragma omp simd reduction(+ : sq)
                for (size_t s = 0; s < hw; s++) {
                    const double dev = (double)xp[s] - mu;
                    sq += dev * dev;
                }
            }
            count[c] = (double)m;
            mean[c] = mu;
            m2[c] = sq;
        }
        return;
    }
    const size_t blocks = (C + SYNC_BLOCK - 1) / SYNC_BLOCK;
#pragma omp parallel for schedule(static) if (m * C >= SYNC_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t c0 = blk * SYNC_BLOCK, nb = min_size(C - c0, SYNC_BLOCK);
        double sum[SYNC_BLOCK] = {0}, sq[SYNC_BLOCK] = {0}, mu[SYNC_BLOCK];
        for (size_t r = 0; r < m; r++) {
            const float *xr = x + r * C + c0;
#pragma omp simd
            for (size_t j = 0; j < nb; j++) sum[j] += (double)xr[j];
        }
        for (size_t j = 0; j < nb; j++) mu[j] = sum[j] / (double)m;
        for (size_t r = 0; r < m; r++) {
            const float *xr = x + r * C + c0;
#pragma omp simd
            for (size_t j = 0; j < nb; j++) {
                const double dev = (double)xr[j] - mu[j];
                sq[j] += dev * dev;
            }
        }
        for (size_t j = 0; j < nb; j++) {
            count[c0 + j] = (double)m;
            mean[c0 + j] = mu[j];
            m2[c0 + j] = sq[j];
        }
    }
}

/* y = a*(x - cx) + b (then ReLU) with each channel's coefficients from the saved fields. */
static void output_pass(const bnk_bn_config *cfg, const bnk__bn_dims *d, float *y,
                        const double *saved, const float *x, const float *gamma,
                        const float *beta) {
    const size_t C = d->c, hw = d->hw, m = d->n * hw;
    const int relu = cfg->fuse_relu;
    if (d->planar) {
#pragma omp parallel for schedule(static) if (m * C >= SYNC_PARALLEL_MIN)
        for (size_t c = 0; c < C; c++) {
            float a, cx, b;
            bnk__bn_train_coef(cfg, saved, C, c, gamma, beta, &a, &cx, &b);
            for (size_t n = 0; n < d->n; n++) {
                const float *xp = x + (n * C + c) * hw;
                float *yp = y + (n * C + c) * hw;
#pragma omp simd
                for (size_t s = 0; s < hw; s++) yp[s] = relu_if(relu, a * (xp[s] - cx) + b);
            }
        }
        return;
    }
    const size_t blocks = (C + SYNC_BLOCK - 1) / SYNC_BLOCK;
#pragma omp parallel for schedule(static) if (m * C >= SYNC_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t c0 = blk * SYNC_BLOCK, nb = min_size(C - c0, SYNC_BLOCK);
        float a[SYNC_BLOCK], cx[SYNC_BLOCK], b[SYNC_BLOCK];
        for (size_t j = 0; j < nb; j++)
            bnk__bn_train_coef(cfg, saved, C, c0 + j, gamma, beta, &a[j], &cx[j], &b[j]);
        for (size_t r = 0; r < m; r++) {
            const float *xr = x + r * C + c0;
            float *yr = y + r * C + c0;
#pragma omp simd
            for (size_t j = 0; j < nb; j++) yr[j] = relu_if(relu, a[j] * (xr[j] - cx[j]) + b[j]);
        }
    }
}

bnk_status bnk_bn_forward_train_sync(const bnk_bn_config *cfg, const bnk_bn_shape *shape,
                                     int64_t step, float *y, double *saved, float *running_mean,
                                     float *running_var, const float *x, const float *gamma,
                                     const float *beta, const bnk_bn_comm *comm) {
    bnk_status st = bnk__bn_check_common(cfg, shape, gamma, beta, 1);
    if (st != BNK_OK) return st;
    if (!saved || !running_mean || !running_var)
        return bnk__fail(BNK_ERR_NULL, "forward_train_sync: saved, running_mean and running_var "
                                       "must not be NULL");
    if (shape->n > 0 && (!y || !x))
        return bnk__fail(BNK_ERR_NULL, "forward_train_sync: y and x must not be NULL (n > 0)");
    if (!comm || !comm->merge_moments)
        return bnk__fail(BNK_ERR_NULL, "forward_train_sync: comm or its merge_moments is NULL");
    if (step < 0) return bnk__fail(BNK_ERR_PARAM, "step must be >= 0, got %lld", (long long)step);
    if ((st = bnk__bn_check_running(running_mean, running_var, shape->c)) != BNK_OK) return st;

    const bnk__bn_dims d = bnk__bn_dims_of(shape);
    const size_t C = d.c;
    double *const count = saved + 5 * C, *const mean = saved + 6 * C, *const m2 = saved + 7 * C;
    local_moments(&d, x, count, mean, m2);
    if ((st = comm->merge_moments(comm->ctx, count, C)) != BNK_OK) return st;

    const double m = count[0];
    for (size_t c = 1; c < C; c++)
        if (count[c] != m)
            return bnk__fail(BNK_ERR_SHAPE,
                             "forward_train_sync: merged counts differ between channels 0 and "
                             "%zu (%g and %g); do the members agree on C, H and W?",
                             c, m, count[c]);
    if (!(m >= 2.0))
        return bnk__fail(BNK_ERR_BATCH,
                         "training needs more than 1 value per channel over the whole group "
                         "(global n*h*w = %g); the batch variance is undefined",
                         m);

    double *const batch_mean = saved + BNK_SAVED_BATCH_MEAN * C;
    double *const batch_var = saved + BNK_SAVED_BATCH_VAR * C;
    for (size_t c = 0; c < C; c++) {
        batch_mean[c] = mean[c];
        batch_var[c] = m2[c] / m;
    }
    /* In place: reads fields 0 and 1 of channel c before writing channel c's fields. */
    bnk__bn_channels_forward(cfg, m, step, C, batch_mean, batch_var, running_mean, running_var,
                             saved, C, 0);
    if (d.n > 0) output_pass(cfg, &d, y, saved, x, gamma, beta);
    return BNK_OK;
}

/* ---- Backward ---------------------------------------------------------------------------- */

/* The upstream gradient after the fused ReLU's mask. */
static inline double masked(int relu, const float *dy, const float *y, size_t i) {
    return (relu && !(y[i] > 0.0f)) ? 0.0 : (double)dy[i];
}

/* Local sums of channels [c0, c0 + nb): sg[j] = sum(g), sgxh[j] = sum(g*(x - center))*inv_std. */
static void local_grad_sums(const bnk_bn_config *cfg, const bnk__bn_dims *d, size_t c0, size_t nb,
                            const float *dy, const float *x, const float *y, const double *saved,
                            double *sg, double *sgxh) {
    const size_t C = d->c, hw = d->hw, m = d->n * hw;
    const int relu = cfg->fuse_relu;
    const double *const center = saved + BNK_SAVED_CENTER * C;
    const double *const inv_std = saved + BNK_SAVED_INV_STD * C;
    if (m == 0) {
        for (size_t j = 0; j < nb; j++) sg[j] = sgxh[j] = 0.0;
        return;
    }
    if (d->planar) {
#pragma omp parallel for schedule(static) if (m * nb >= SYNC_PARALLEL_MIN)
        for (size_t j = 0; j < nb; j++) {
            const size_t c = c0 + j;
            const double ctr = center[c];
            double s_g = 0.0, s_gx = 0.0;
            for (size_t n = 0; n < d->n; n++) {
                const size_t base = (n * C + c) * hw;
#pragma omp simd reduction(+ : s_g, s_gx)
                for (size_t s = 0; s < hw; s++) {
                    const double g = masked(relu, dy, y, base + s);
                    s_g += g;
                    s_gx += g * ((double)x[base + s] - ctr);
                }
            }
            sg[j] = s_g;
            sgxh[j] = s_gx * inv_std[c];
        }
        return;
    }
    const size_t blocks = (nb + SYNC_BLOCK - 1) / SYNC_BLOCK;
#pragma omp parallel for schedule(static) if (m * nb >= SYNC_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t b0 = c0 + blk * SYNC_BLOCK, bn = min_size(c0 + nb - b0, SYNC_BLOCK);
        const double *ctr = center + b0;
        double s_g[SYNC_BLOCK] = {0}, s_gx[SYNC_BLOCK] = {0};
        for (size_t r = 0; r < m; r++) {
            const size_t base = r * C + b0;
#pragma omp simd
            for (size_t j = 0; j < bn; j++) {
                const double g = masked(relu, dy, y, base + j);
                s_g[j] += g;
                s_gx[j] += g * ((double)x[base + j] - ctr[j]);
            }
        }
        for (size_t j = 0; j < bn; j++) {
            sg[b0 - c0 + j] = s_g[j];
            sgxh[b0 - c0 + j] = s_gx[j] * inv_std[b0 + j];
        }
    }
}

/* dx of channels [c0, c0 + nb) from the group's sums, and this member's own dgamma/dbeta. */
static void grad_output(const bnk_bn_config *cfg, const bnk__bn_dims *d, size_t c0, size_t nb,
                        double m, const double *sg, const double *sgxh, const double *loc_sg,
                        const double *loc_sgxh, float *dx, float *dgamma, float *dbeta,
                        const float *dy, const float *x, const float *y, const float *gamma,
                        const double *saved) {
    const size_t C = d->c, hw = d->hw, rows = d->n * hw;
    const int relu = cfg->fuse_relu;
    const size_t blocks = (nb + SYNC_BLOCK - 1) / SYNC_BLOCK;
#pragma omp parallel for schedule(static) if (rows * nb >= SYNC_PARALLEL_MIN)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t j0 = blk * SYNC_BLOCK, bn = min_size(nb - j0, SYNC_BLOCK);
        float kg[SYNC_BLOCK], kx[SYNC_BLOCK], mx[SYNC_BLOCK], k0[SYNC_BLOCK];
        for (size_t j = 0; j < bn; j++) {
            const size_t c = c0 + j0 + j;
            const bnk__bn_grad_coef k = bnk__bn_channel_backward(
                cfg, m, cfg->scale ? (double)gamma[c] : 1.0, saved, C, c, sg[j0 + j], sgxh[j0 + j]);
            bnk__bn_grad_coef_f32(&k, saved[BNK_SAVED_BATCH_MEAN * C + c], &kg[j], &kx[j], &mx[j],
                                  &k0[j]);
            /* This member's own contributions (the same expressions as k.dgamma, k.dbeta). */
            const double r = saved[BNK_SAVED_RENORM_R * C + c];
            const double dd = saved[BNK_SAVED_RENORM_D * C + c];
            if (cfg->scale && dgamma)
                dgamma[c] =
                    (float)((double)dgamma[c] + (r * loc_sgxh[j0 + j] + dd * loc_sg[j0 + j]));
            if (cfg->center && dbeta) dbeta[c] = (float)((double)dbeta[c] + loc_sg[j0 + j]);
        }
        if (rows == 0) continue;
        if (d->planar) {
            for (size_t j = 0; j < bn; j++) {
                const size_t c = c0 + j0 + j;
                for (size_t n = 0; n < d->n; n++) {
                    const size_t base = (n * C + c) * hw;
#pragma omp simd
                    for (size_t s = 0; s < hw; s++) {
                        const float g = (relu && !(y[base + s] > 0.0f)) ? 0.0f : dy[base + s];
                        dx[base + s] = kg[j] * g + kx[j] * (x[base + s] - mx[j]) + k0[j];
                    }
                }
            }
        } else {
            for (size_t r = 0; r < rows; r++) {
                const size_t base = r * C + c0 + j0;
#pragma omp simd
                for (size_t j = 0; j < bn; j++) {
                    const float g = (relu && !(y[base + j] > 0.0f)) ? 0.0f : dy[base + j];
                    dx[base + j] = kg[j] * g + kx[j] * (x[base + j] - mx[j]) + k0[j];
                }
            }
        }
    }
}

bnk_status bnk_bn_backward_sync(const bnk_bn_config *cfg, const bnk_bn_shape *shape, float *dx,
                                float *dgamma, float *dbeta, const float *dy, const float *x,
                                const float *y, const float *gamma, const double *saved,
                                const bnk_bn_comm *comm) {
    bnk_status st = bnk_bn_config_validate(cfg);
    if (st != BNK_OK) return st;
    if ((st = bnk__bn_check_shape(shape, 1)) != BNK_OK) return st;
    if (cfg->scale && !gamma) return bnk__fail(BNK_ERR_NULL, "gamma is NULL but scale is on");
    if (!saved) return bnk__fail(BNK_ERR_NULL, "backward_sync: saved must not be NULL");
    if (shape->n > 0 && (!dx || !dy || !x))
        return bnk__fail(BNK_ERR_NULL, "backward_sync: dx, dy and x must not be NULL (n > 0)");
    if (shape->n > 0 && cfg->fuse_relu && !y)
        return bnk__fail(BNK_ERR_NULL, "backward_sync: y is needed for the fused ReLU's mask");
    if (!comm || !comm->sum)
        return bnk__fail(BNK_ERR_NULL, "backward_sync: comm or its sum is NULL");

    const bnk__bn_dims d = bnk__bn_dims_of(shape);
    const size_t C = d.c;
    /* [sum_g | sum_gxh | count] exchanged, then this member's own [sum_g | sum_gxh]. */
    double buf[2 * SYNC_SUM_BLOCK + 1], loc[2 * SYNC_SUM_BLOCK];
    double m = 0.0;
    for (size_t c0 = 0; c0 < C; c0 += SYNC_SUM_BLOCK) {
        const size_t nb = min_size(C - c0, SYNC_SUM_BLOCK);
        double *const sg = buf, *const sgxh = buf + nb;
        local_grad_sums(cfg, &d, c0, nb, dy, x, y, saved, sg, sgxh);
        memcpy(loc, buf, 2 * nb * sizeof(double));
        size_t len = 2 * nb;
        if (c0 == 0) buf[len++] = (double)(d.n * d.hw); /* the global m rides with block 0 */
        if ((st = comm->sum(comm->ctx, buf, len)) != BNK_OK) return st;
        if (c0 == 0) {
            m = buf[2 * nb];
            if (!(m >= 2.0))
                return bnk__fail(BNK_ERR_BATCH,
                                 "backward of training BN needs more than 1 value per channel "
                                 "over the whole group (global n*h*w = %g)",
                                 m);
        }
        grad_output(cfg, &d, c0, nb, m, sg, sgxh, loc, loc + nb, dx, dgamma, dbeta, dy, x, y, gamma,
                    saved);
    }
    return BNK_OK;
}
