/* The reference BN kernels — the specification in plain loops with double accumulators.
 * This file is a template: bn_ref.c includes it once per element type with
 *   BNK_REF_T       the element type of x, y, dy, dx, gamma, beta, dgamma, dbeta
 *   BNK_REF_NAME(f) the name of function f for that type
 * Running statistics are float in every instantiation. */

/* Index of value j (0 <= j < m) of channel c. */
static size_t BNK_REF_NAME(index)(const bnk__bn_dims *d, size_t c, size_t j) {
    const size_t n = j / d->hw, s = j % d->hw, B = d->blk;
    if (d->planar) return (n * d->c + c) * d->hw + s;
    if (B) return ((n * (d->c / B) + c / B) * d->hw + s) * B + c % B;
    return (n * d->hw + s) * d->c + c;
}

/* Mean and M2 (sum of squared deviations from the mean) of channel c, in two passes: the mean,
 * then the deviations from it. */
static void BNK_REF_NAME(channel_moments)(const bnk__bn_dims *d, size_t c, double *mean, double *m2,
                                          const BNK_REF_T *x) {
    const size_t m = d->n * d->hw;
    double sum = 0.0;
    for (size_t j = 0; j < m; j++) sum += (double)x[BNK_REF_NAME(index)(d, c, j)];
    const double mu = sum / (double)m;
    double sq = 0.0;
    for (size_t j = 0; j < m; j++) {
        double dev = (double)x[BNK_REF_NAME(index)(d, c, j)] - mu;
        sq += dev * dev;
    }
    *mean = mu;
    *m2 = sq;
}

/* Training output of channel c from its saved fields. */
static void BNK_REF_NAME(channel_output)(const bnk_bn_config *cfg, const bnk__bn_dims *d, size_t c,
                                         BNK_REF_T *y, const double *saved, const BNK_REF_T *x,
                                         const BNK_REF_T *gamma, const BNK_REF_T *beta) {
    const size_t m = d->n * d->hw;
    const double center = saved[BNK_SAVED_CENTER * d->c + c];
    const double inv_std = saved[BNK_SAVED_INV_STD * d->c + c];
    const double r = saved[BNK_SAVED_RENORM_R * d->c + c];
    const double shift = saved[BNK_SAVED_RENORM_D * d->c + c];
    const double g = cfg->scale ? (double)gamma[c] : 1.0;
    const double b = cfg->center ? (double)beta[c] : 0.0;
    for (size_t j = 0; j < m; j++) {
        size_t i = BNK_REF_NAME(index)(d, c, j);
        double xhat = ((double)x[i] - center) * inv_std * r + shift;
        double out = g * xhat + b;
        if (cfg->fuse_relu && !(out > 0.0)) out = 0.0;
        y[i] = (BNK_REF_T)out;
    }
}

/* sum(g) and sum(g*xhat) of channel c, g = dy masked by the fused ReLU. */
static void BNK_REF_NAME(channel_grad_sums)(const bnk_bn_config *cfg, const bnk__bn_dims *d,
                                            size_t c, double *sum_g, double *sum_gxh,
                                            const BNK_REF_T *dy, const BNK_REF_T *x,
                                            const BNK_REF_T *y, const double *saved) {
    const size_t m = d->n * d->hw;
    const double center = saved[BNK_SAVED_CENTER * d->c + c];
    const double inv_std = saved[BNK_SAVED_INV_STD * d->c + c];
    double sg = 0.0, sgxh = 0.0;
    for (size_t j = 0; j < m; j++) {
        size_t i = BNK_REF_NAME(index)(d, c, j);
        double g = (cfg->fuse_relu && !(y[i] > 0)) ? 0.0 : (double)dy[i];
        sg += g;
        sgxh += g * ((double)x[i] - center) * inv_std;
    }
    *sum_g = sg;
    *sum_gxh = sgxh;
}

/* dx of channel c from its backward coefficients. */
static void BNK_REF_NAME(channel_grad_output)(const bnk_bn_config *cfg, const bnk__bn_dims *d,
                                              size_t c, const bnk__bn_grad_coef *k, BNK_REF_T *dx,
                                              const BNK_REF_T *dy, const BNK_REF_T *x,
                                              const BNK_REF_T *y, const double *saved) {
    const size_t m = d->n * d->hw;
    const double mean = saved[BNK_SAVED_BATCH_MEAN * d->c + c];
    for (size_t j = 0; j < m; j++) {
        size_t i = BNK_REF_NAME(index)(d, c, j);
        double g = (cfg->fuse_relu && !(y[i] > 0)) ? 0.0 : (double)dy[i];
        dx[i] = (BNK_REF_T)(k->scale_g * g + k->scale_x * ((double)x[i] - mean) + k->shift);
    }
}

void BNK_REF_NAME(forward_train)(const bnk_bn_config *cfg, const bnk__bn_dims *d, int64_t step,
                                 BNK_REF_T *y, double *saved, float *running_mean,
                                 float *running_var, const BNK_REF_T *x, const BNK_REF_T *gamma,
                                 const BNK_REF_T *beta) {
    const size_t m = d->n * d->hw;
    for (size_t c = 0; c < d->c; c++) {
        double mean, m2;
        BNK_REF_NAME(channel_moments)(d, c, &mean, &m2, x);
        bnk__bn_channel_forward(cfg, (double)m, step, mean, m2 / (double)m, &running_mean[c],
                                &running_var[c], saved, d->c, c);
        BNK_REF_NAME(channel_output)(cfg, d, c, y, saved, x, gamma, beta);
    }
}

void BNK_REF_NAME(backward)(const bnk_bn_config *cfg, const bnk__bn_dims *d, BNK_REF_T *dx,
                            BNK_REF_T *dgamma, BNK_REF_T *dbeta, const BNK_REF_T *dy,
                            const BNK_REF_T *x, const BNK_REF_T *y, const BNK_REF_T *gamma,
                            const double *saved) {
    const size_t m = d->n * d->hw;
    for (size_t c = 0; c < d->c; c++) {
        double sum_g, sum_gxh;
        BNK_REF_NAME(channel_grad_sums)(cfg, d, c, &sum_g, &sum_gxh, dy, x, y, saved);
        bnk__bn_grad_coef k = bnk__bn_channel_backward(
            cfg, (double)m, cfg->scale ? (double)gamma[c] : 1.0, saved, d->c, c, sum_g, sum_gxh);
        BNK_REF_NAME(channel_grad_output)(cfg, d, c, &k, dx, dy, x, y, saved);
        if (cfg->scale && dgamma) dgamma[c] = (BNK_REF_T)((double)dgamma[c] + k.dgamma);
        if (cfg->center && dbeta) dbeta[c] = (BNK_REF_T)((double)dbeta[c] + k.dbeta);
    }
}
