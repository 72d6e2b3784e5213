/* Synchronised BN (bnk_bn_forward_train_sync, bnk_bn_backward_sync): one batch spread over the
 * members of a group, each holding a shard of any size n >= 0. The members exchange O(C)
 * numbers per call through a bnk_bn_comm; no data tensor ever travels.
 *
 * The sweeps over the data are the selected kernel's phases (bn_internal.h), the same inner
 * loops as its local kernels, so synchronised BN runs at the speed of local BN's kernel (plus
 * the one extra read of the data that the exchange between the phases costs where the local
 * kernel would re-read a channel from cache):
 *   forward   moments (a) of the shard -> one merge_moments call -> the shared per-channel
 *             step (bnk__bn_channels_forward) with the global m and statistics, so that every
 *             member updates its running statistics identically and the result equals
 *             single-process BN over the concatenated batch -> train_output (b);
 *   backward  grad_sums (c) of the shard -> one sum call of [sum_g | sum_gxh | count] ->
 *             grad_output (d) with the group's sums and m; dgamma, dbeta from the member's own
 *             sums (saved before the exchange).
 * An empty shard (n = 0) runs no phase: its moments and sums are 0, which the merge and the
 * sum treat exactly.
 *
 * Scratch, without allocation:
 *   forward   the caller's `saved` [8*C]: the packed moments [counts | means | M2s] occupy
 *             saved[5C, 8C) (the fields RENORM_D, GRAD_MEAN, GRAD_VAR, written last). After the
 *             merge, BATCH_MEAN = means and BATCH_VAR = M2/m are written to saved[0, 2C), which
 *             does not overlap the moments, and bnk__bn_channels_forward then reads those two
 *             fields back in place (each channel's values are read before its own fields are
 *             written, and no field it writes overlaps another channel's inputs) and
 *             overwrites the scratch with the saved fields proper.
 *   backward  `saved` is const there, and dgamma, dbeta accumulate, so the 4*C + 1 doubles
 *             (exchanged [sum_g | sum_gxh | count], then the member's own [sum_g | sum_gxh])
 *             live on the stack up to SYNC_STACK_CHANNELS channels (32 KiB) and come from
 *             comm->workspace beyond. */
#include <stddef.h>
#include <string.h>

#include "bn/bn_internal.h"
#include "core/internal.h"

enum { SYNC_STACK_CHANNELS = 1024 /* channels whose backward scratch fits the stack */ };

/* ---- Forward ----------------------------------------------------------------------------- */

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
    const bnk__bn_kernels *kern = bnk__bn_kernels_active();
    double *const count = saved + 5 * C, *const mean = saved + 6 * C, *const m2 = saved + 7 * C;
    if (d.n > 0)
        kern->moments(&d, count, mean, m2, x);
    else
        for (size_t c = 0; c < C; c++) count[c] = mean[c] = m2[c] = 0.0;
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
    if (d.n > 0) kern->train_output(cfg, &d, y, saved, x, gamma, beta);
    return BNK_OK;
}

/* ---- Backward ---------------------------------------------------------------------------- */

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
    double stack[4 * SYNC_STACK_CHANNELS + 1], *buf = stack;
    if (C > SYNC_STACK_CHANNELS) {
        if (!comm->workspace)
            return bnk__fail(BNK_ERR_NULL,
                             "backward_sync: C = %zu > %d channels needs comm->workspace, which "
                             "is NULL",
                             C, (int)SYNC_STACK_CHANNELS);
        if ((st = comm->workspace(comm->ctx, 4 * C + 1, &buf)) != BNK_OK) return st;
    }
    double *const sg = buf, *const sgxh = buf + C, *const loc = buf + 2 * C + 1;
    if (d.n > 0)
        bnk__bn_kernels_active()->grad_sums(cfg, &d, sg, sgxh, dy, x, y, saved);
    else
        for (size_t i = 0; i < 2 * C; i++) buf[i] = 0.0;
    buf[2 * C] = (double)(d.n * d.hw);
    memcpy(loc, buf, 2 * C * sizeof(double));
    if ((st = comm->sum(comm->ctx, buf, 2 * C + 1)) != BNK_OK) return st;
    const double m = buf[2 * C];
    if (!(m >= 2.0))
        return bnk__fail(BNK_ERR_BATCH,
                         "backward of training BN needs more than 1 value per channel over the "
                         "whole group (global n*h*w = %g)",
                         m);
    if (d.n > 0)
        bnk__bn_kernels_active()->grad_output(cfg, &d, m, dx, sg, sgxh, dy, x, y, gamma, saved);
    /* This member's own contributions (the expressions of bnk__bn_channel_backward's dgamma,
     * dbeta), so that the group's sum of them is the gradient of the whole batch. */
    for (size_t c = 0; c < C; c++) {
        const double r = saved[BNK_SAVED_RENORM_R * C + c];
        const double dd = saved[BNK_SAVED_RENORM_D * C + c];
        if (cfg->scale && dgamma)
            dgamma[c] = (float)((double)dgamma[c] + (r * loc[C + c] + dd * loc[c]));
        if (cfg->center && dbeta) dbeta[c] = (float)((double)dbeta[c] + loc[c]);
    }
    return BNK_OK;
}
