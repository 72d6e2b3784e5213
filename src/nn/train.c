/* bnk_train_run: the training loop shared by `bnkit train` and the tuner. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bnkit/train.h"
#include "core/internal.h"
#include "core/rng.h"

bnk_train_config bnk_train_config_default(void) {
    bnk_train_config c = {
        .data = "fashion-mnist",
        .test_data = NULL,
        .no_test = false,
        .model = "dense:128,relu,bn,dense:10",
        .epochs = 10,
        .batch = 100,
        .optim = bnk_optim_config_default(BNK_OPTIM_ADAM),
        .lr_schedule = BNK_LR_CONSTANT,
        .lr_gamma = 0.1,
        .lr_step_epochs = 5,
        .bn = bnk_bn_config_default(),
        .renorm_warmup = -1,
        .rmax_ramp_end = 40000,
        .dmax_ramp_end = 25000,
        .dropout = 0.5,
        .seed = 0,
        .threads = 0,
        .train_size = 0,
        .val_size = 5000,
        .max_steps = 0,
        .scaling = BNK_SCALE_UNIT,
        .print_every = 10,
        .log = NULL,
        .dist = NULL,
    };
    c.bn.momentum = 0.9;
    return c;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bnk_status validate(const bnk_train_config *c) {
    if (!c->data || !c->model) return bnk__fail(BNK_ERR_NULL, "train: data and model required");
    if (c->epochs < 1)
        return bnk__fail(BNK_ERR_PARAM, "epochs must be >= 1, got %lld", (long long)c->epochs);
    if (c->batch < 2 || c->batch > 1 << 20)
        return bnk__fail(BNK_ERR_PARAM,
                         "batch must be in [2, 2^20] (BN needs 2 samples), got "
                         "%lld",
                         (long long)c->batch);
    if (c->train_size < 0 || c->val_size < 0 || c->max_steps < 0 || c->print_every < 0 ||
        c->threads < 0)
        return bnk__fail(BNK_ERR_PARAM, "train-size, val-size, max-steps, print-every and "
                                        "threads must be >= 0");
    if (c->lr_schedule == BNK_LR_STEP &&
        (c->lr_step_epochs < 1 || !(c->lr_gamma > 0.0 && c->lr_gamma <= 1.0)))
        return bnk__fail(BNK_ERR_PARAM, "step schedule needs step epochs >= 1 and gamma in "
                                        "(0, 1]");
    if (c->renorm_warmup >= 0 &&
        (c->rmax_ramp_end < c->renorm_warmup || c->dmax_ramp_end < c->renorm_warmup))
        return bnk__fail(BNK_ERR_PARAM, "renorm schedule: ramp ends must not precede the warmup");
    const bnk_train_dist *d = c->dist;
    if (d && (d->size < 1 || d->rank < 0 || d->rank >= d->size))
        return bnk__fail(BNK_ERR_PARAM, "train: rank %d of %d ranks is invalid", d->rank, d->size);
    if (d && d->size > 1 && (!d->sum_f32 || !d->sum_f64))
        return bnk__fail(BNK_ERR_NULL, "train: distributed training needs sum_f32 and sum_f64");
    bnk_status st = bnk_optim_config_validate(&c->optim);
    return st == BNK_OK ? bnk_bn_config_validate(&c->bn) : st;
}

static double lr_at(const bnk_train_config *c, int64_t epoch0, int64_t step, int64_t total) {
    switch (c->lr_schedule) {
    case BNK_LR_STEP:
        return c->optim.lr * pow(c->lr_gamma, (double)(epoch0 / c->lr_step_epochs));
    case BNK_LR_COSINE:
        return c->optim.lr * 0.5 * (1.0 + cos(3.141592653589793 * (double)step / (double)total));
    case BNK_LR_CONSTANT:
        break;
    }
    return c->optim.lr;
}

/* Batch Renorm limits at a step: 1/0 during warmup, then linear ramps to the configured ones. */
static void renorm_limits(const bnk_train_config *c, int64_t step, double *rmax, double *dmax) {
    *rmax = c->bn.rmax;
    *dmax = c->bn.dmax;
    if (c->renorm_warmup < 0) return;
    double fr =
        c->rmax_ramp_end > c->renorm_warmup
            ? (double)(step - c->renorm_warmup) / (double)(c->rmax_ramp_end - c->renorm_warmup)
            : 1.0;
    double fd =
        c->dmax_ramp_end > c->renorm_warmup
            ? (double)(step - c->renorm_warmup) / (double)(c->dmax_ramp_end - c->renorm_warmup)
            : 1.0;
    fr = step < c->renorm_warmup ? 0.0 : fmin(1.0, fr);
    fd = step < c->renorm_warmup ? 0.0 : fmin(1.0, fd);
    *rmax = 1.0 + (c->bn.rmax - 1.0) * fr;
    *dmax = c->bn.dmax * fd;
}

typedef struct run {
    const bnk_train_config *cfg;
    bnk_dataset *train, *val, *test;
    bnk_model *model;
    bnk_optim *opt;
    float *x;
    int32_t *labels;
    int64_t *order, *eval_idx;
    float *stats; /* [2 * features]: mean, std for BNK_SCALE_STANDARDIZE */
    const float *stats_ptr[2];
    /* data-parallel training (cfg->dist); rank 0 of 1 without */
    const bnk_train_dist *dist;
    int rank, size;
    bool ghost;          /* several ranks, per-rank BN statistics                     */
    bool ghost_synced;   /* ghost BN: running statistics averaged since the last step */
    int64_t shard_batch; /* the most samples one rank's forward sees: ceil(batch/size) */
} run;

/* Element-wise sums over the ranks (nothing to do alone). */
static bnk_status sum_f32(const run *r, float *buf, size_t n) {
    return r->size > 1 ? r->dist->sum_f32(r->dist->ctx, buf, n) : BNK_OK;
}

static bnk_status sum_f64(const run *r, double *buf, size_t n) {
    return r->size > 1 ? r->dist->sum_f64(r->dist->ctx, buf, n) : BNK_OK;
}

/* This rank's contiguous slice [*off, *off + *cnt) of a global batch of count samples: the
 * first count % k ranks take one sample more. Ghost BN never gives a rank a single sample (its
 * BN would see m = 1): a batch of fewer than 2k samples goes to count/2 ranks. */
static void shard(const run *r, int64_t count, int64_t *off, int64_t *cnt) {
    int64_t k = r->size;
    if (r->ghost && count < 2 * k) k = count / 2 > 1 ? count / 2 : 1;
    if (r->rank >= k) {
        *off = count;
        *cnt = 0;
        return;
    }
    const int64_t base = count / k, extra = count % k, rank = r->rank;
    *cnt = base + (rank < extra ? 1 : 0);
    *off = rank * base + (rank < extra ? rank : extra);
}

static bool all_finite(const float *v, size_t n) {
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += v[i] - v[i]; /* 0, or NaN for NaN/Inf */
    return acc == 0.0f;
}

/* Several ranks: checks once per epoch that the parameters (and, with synchronised BN, the
 * running statistics) are the same bits on every rank, as an identical gradient sum keeps them.
 * A 64-bit hash is cut into 16-bit pieces q; all ranks agree exactly when K*sum(q^2) equals
 * sum(q)^2 for every piece, and those sums of integers are exact in double, so every rank
 * reaches the same verdict. */
static bnk_status check_identical(const run *r) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < bnk_model_tensor_count(r->model); i++) {
        bnk_tensor_info t;
        bnk_model_tensor(r->model, i, &t);
        if (!t.trainable && r->ghost) continue; /* ghost BN: per-rank running statistics */
        const unsigned char *p = (const unsigned char *)t.data;
        for (size_t j = 0; j < t.count * sizeof(float); j++) h = (h ^ p[j]) * 1099511628211ull;
    }
    double q[8];
    for (int k = 0; k < 4; k++) {
        q[k] = (double)((h >> (16 * k)) & 0xffff);
        q[4 + k] = q[k] * q[k];
    }
    bnk_status st = sum_f64(r, q, 8);
    if (st != BNK_OK) return st;
    for (int k = 0; k < 4; k++)
        if ((double)r->size * q[4 + k] != q[k] * q[k])
            return bnk__fail(BNK_ERR_IO,
                             "train: the parameters differ between ranks: the gradient sum "
                             "(bnk_train_dist.sum_f32) must give identical bits on every rank");
    return BNK_OK;
}

/* Ghost BN: every rank takes the average of the ranks' running statistics (before evaluating
 * and at the end), so that inference is the same everywhere. */
static bnk_status sync_ghost_stats(run *r) {
    if (!r->ghost || r->ghost_synced) return BNK_OK;
    for (int i = 0; i < bnk_model_tensor_count(r->model); i++) {
        bnk_tensor_info t;
        bnk_model_tensor(r->model, i, &t);
        if (t.trainable) continue;
        bnk_status st = sum_f32(r, t.data, t.count);
        if (st != BNK_OK) return st;
        for (size_t j = 0; j < t.count; j++) t.data[j] /= (float)r->size;
    }
    r->ghost_synced = true;
    return BNK_OK;
}

static void run_free(run *r) {
    bnk_dataset_destroy(r->train);
    bnk_dataset_destroy(r->val);
    bnk_dataset_destroy(r->test);
    bnk_model_destroy(r->model);
    bnk_optim_destroy(r->opt);
    free(r->x);
    free(r->labels);
    free(r->order);
    free(r->eval_idx);
    free(r->stats);
}

static bnk_status load_data(run *r) {
    const bnk_train_config *c = r->cfg;
    bnk_status st = bnk_dataset_load(&r->train, c->data, BNK_SPLIT_TRAIN);
    if (st != BNK_OK) return st;
    const char *test_spec = c->test_data;
    bool has_test_split =
        strcmp(c->data, "fashion-mnist") == 0 || strncmp(c->data, "mnist:", 6) == 0;
    if (!test_spec && has_test_split) test_spec = c->data;
    if (c->no_test) test_spec = NULL;
    if (test_spec && (st = bnk_dataset_load(&r->test, test_spec, BNK_SPLIT_TEST)) != BNK_OK)
        return st;
    if (c->val_size > 0) {
        if (c->val_size >= bnk_dataset_size(r->train) - 1)
            return bnk__fail(BNK_ERR_PARAM,
                             "val-size %lld leaves fewer than 2 training samples "
                             "of %lld",
                             (long long)c->val_size, (long long)bnk_dataset_size(r->train));
        st = bnk_dataset_split(r->train, c->val_size, c->seed ^ 0x76616cull, &r->val);
        if (st != BNK_OK) return st;
    }
    if (c->train_size > 0 && c->train_size < bnk_dataset_size(r->train) &&
        (st = bnk_dataset_truncate(r->train, c->train_size)) != BNK_OK)
        return st;
    if (bnk_dataset_size(r->train) < 2)
        return bnk__fail(BNK_ERR_PARAM, "the training set needs at least 2 samples");
    return BNK_OK;
}

static bnk_status setup(run *r) {
    const bnk_train_config *c = r->cfg;
    bnk_status st = load_data(r);
    if (st != BNK_OK) return st;
    int64_t ch, h, w;
    bnk_dataset_shape(r->train, &ch, &h, &w);
    bnk_model_config mc = bnk_model_config_default();
    mc.spec = c->model;
    mc.in_c = ch;
    mc.in_h = h;
    mc.in_w = w;
    mc.max_batch = r->shard_batch;
    mc.bn = c->bn;
    mc.dropout = c->dropout;
    mc.seed = c->seed;
    if ((st = bnk_model_create(&r->model, &mc)) != BNK_OK) return st;
    if (r->size > 1 && r->dist->bn_comm) bnk_model_set_bn_comm(r->model, r->dist->bn_comm);
    const int64_t classes = bnk_dataset_num_classes(r->train);
    if (bnk_model_num_outputs(r->model) < classes)
        return bnk__fail(BNK_ERR_SHAPE,
                         "the model outputs %lld scores but the data has %lld "
                         "classes",
                         (long long)bnk_model_num_outputs(r->model), (long long)classes);
    if ((st = bnk_optim_create(&r->opt, &c->optim, bnk_model_num_params(r->model))) != BNK_OK)
        return st;
    const size_t feats = (size_t)(ch * h * w), n = (size_t)bnk_dataset_size(r->train);
    const size_t nb = (size_t)r->shard_batch;
    r->x = malloc(nb * feats * sizeof(float));
    r->labels = malloc(nb * sizeof(int32_t));
    r->order = malloc(n * sizeof(int64_t));
    r->eval_idx = malloc(nb * sizeof(int64_t));
    r->stats = malloc(2 * feats * sizeof(float));
    if (!r->x || !r->labels || !r->order || !r->eval_idx || !r->stats)
        return bnk__fail(BNK_ERR_NOMEM, "cannot allocate training buffers");
    r->stats_ptr[0] = r->stats;
    r->stats_ptr[1] = r->stats + feats;
    /* standardisation uses the training split's statistics everywhere */
    if (c->scaling == BNK_SCALE_STANDARDIZE)
        return bnk_dataset_feature_stats(r->train, r->stats, r->stats + feats);
    return BNK_OK;
}

/* Mean loss and accuracy of the model in inference mode over a whole data set. Several ranks
 * each evaluate a contiguous slice and sum. */
static bnk_status evaluate(run *r, const bnk_dataset *ds, double *loss, double *accuracy) {
    const int64_t n = bnk_dataset_size(ds), B = r->shard_batch;
    const int64_t lo = n * r->rank / r->size, hi = n * (r->rank + 1) / r->size;
    bnk_status st = sync_ghost_stats(r);
    if (st != BNK_OK) return st;
    double total = 0.0;
    int64_t hits = 0;
    for (int64_t start = lo; start < hi; start += B) {
        const int64_t count = hi - start < B ? hi - start : B;
        for (int64_t i = 0; i < count; i++) r->eval_idx[i] = start + i;
        st = bnk_dataset_batch(ds, r->eval_idx, count, r->cfg->scaling, r->stats_ptr, r->x,
                               r->labels);
        if (st == BNK_OK) st = bnk_model_forward(r->model, r->x, count, false);
        double l;
        int64_t c;
        if (st == BNK_OK) st = bnk_model_loss(r->model, r->labels, count, &l, &c);
        if (st != BNK_OK) return st;
        total += l * (double)count;
        hits += c;
    }
    double sums[2] = {total, (double)hits};
    if ((st = sum_f64(r, sums, 2)) != BNK_OK) return st;
    *loss = sums[0] / (double)n;
    *accuracy = sums[1] / (double)n;
    return BNK_OK;
}

/* Fills the diagnostic fields of m from the accumulated squared gradient norms. */
static void diagnostics(run *r, bnk_epoch_metrics *m, const double *grad_sq, int64_t samples,
                        const bnk_epoch_metrics *prev, const bnk_epoch_metrics *prev2) {
    m->ntensors = m->nbn = 0;
    double first_w = NAN, last_w = NAN, min_w = INFINITY;
    for (int i = 0; i < bnk_model_tensor_count(r->model); i++) {
        bnk_tensor_info t;
        bnk_model_tensor(r->model, i, &t);
        if (t.trainable && m->ntensors < BNK_TRAIN_MAX_TENSORS) {
            const int k = m->ntensors++;
            memcpy(m->tensor_name[k], t.name, sizeof t.name);
            m->grad_norm[k] = samples ? sqrt(grad_sq[k] / (double)samples) : NAN;
            if (strstr(t.name, ".weight")) {
                if (isnan(first_w)) first_w = m->grad_norm[k];
                last_w = m->grad_norm[k];
                min_w = fmin(min_w, m->grad_norm[k]);
            }
        }
        if (!t.trainable && strstr(t.name, "running_mean") && m->nbn < BNK_TRAIN_MAX_TENSORS) {
            bnk_tensor_info v;
            bnk_model_tensor(r->model, i + 1, &v); /* running_var follows running_mean */
            const int k = m->nbn++;
            snprintf(m->bn_name[k], sizeof m->bn_name[k], "%.*s",
                     (int)(strstr(t.name, ".running") - t.name), t.name);
            double sum = 0.0, lo = INFINITY, hi = -INFINITY;
            for (size_t j = 0; j < t.count; j++) {
                sum += fabs(t.data[j]);
                lo = fmin(lo, v.data[j]);
                hi = fmax(hi, v.data[j]);
            }
            m->bn_mean_abs_running_mean[k] = sum / (double)t.count;
            m->bn_min_running_var[k] = lo;
            m->bn_max_running_var[k] = hi;
        }
    }
    /* vanishing: the input-side weights get < 1e-3 of the output-side gradient, or any weight
     * gradient is below 1e-8 (docs/training.md) */
    m->vanishing_gradients = min_w < 1e-8 || (first_w < 1e-3 * last_w);
    /* overfitting: the train/validation accuracy gap exceeds 3 points and grew two epochs in
     * a row */
    m->overfitting = false;
    if (prev && prev2 && !isnan(m->val_accuracy)) {
        double g0 = prev2->train_accuracy - prev2->val_accuracy;
        double g1 = prev->train_accuracy - prev->val_accuracy;
        double g2 = m->train_accuracy - m->val_accuracy;
        m->overfitting = g2 > 0.03 && g2 > g1 && g1 > g0;
    }
}

/* Σ g² in double, vectorised (the sum is reordered across lanes; a diagnostic only). */
BNK__MULTIVERSION
static double sum_squares(const float *restrict g, size_t n) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (size_t j = 0; j < n; j++) s += (double)g[j] * (double)g[j];
    return s;
}

static void accumulate_grad_norms(run *r, double *grad_sq) {
    const float *g = bnk_model_grads(r->model), *p0 = bnk_model_params(r->model);
    int k = 0;
    for (int i = 0; i < bnk_model_tensor_count(r->model) && k < BNK_TRAIN_MAX_TENSORS; i++) {
        bnk_tensor_info t;
        bnk_model_tensor(r->model, i, &t);
        if (!t.trainable) continue;
        const float *gt = g + (t.data - p0);
        grad_sq[k++] += sum_squares(gt, t.count);
    }
}

bnk_status bnk_train_run(const bnk_train_config *cfg, bnk_epoch_fn on_epoch, void *user,
                         bnk_train_result *res, bnk_model **model_out) {
    if (!cfg || !res) return bnk__fail(BNK_ERR_NULL, "train: config and result required");
    if (model_out) *model_out = NULL;
    memset(res, 0, sizeof *res);
    res->val_accuracy = res->best_val_accuracy = res->test_accuracy = res->test_loss = NAN;
    bnk_status st = validate(cfg);
    if (st != BNK_OK) return st;
    if (cfg->threads > 0) omp_set_num_threads(cfg->threads);
    run r = {.cfg = cfg, .dist = cfg->dist, .rank = 0, .size = 1, .shard_batch = cfg->batch};
    if (cfg->dist && cfg->dist->size > 1) {
        r.rank = cfg->dist->rank;
        r.size = cfg->dist->size;
        r.ghost = !cfg->dist->bn_comm;
        r.shard_batch = (cfg->batch + r.size - 1) / r.size;
        /* ghost BN hands a small batch to fewer ranks: at most 3 samples each (see shard) */
        if (r.ghost && r.shard_batch < 3) r.shard_batch = 3;
    }
    FILE *log = r.rank == 0 ? cfg->log : NULL;
    const double t_start = now_seconds();
    if ((st = setup(&r)) != BNK_OK) {
        run_free(&r);
        return st;
    }
    const int64_t n = bnk_dataset_size(r.train), B = cfg->batch;
    const int64_t per_epoch = n / B + (n % B >= 2 ? 1 : 0);
    const int64_t total_steps = cfg->max_steps > 0 && cfg->max_steps < per_epoch * cfg->epochs
                                    ? cfg->max_steps
                                    : per_epoch * cfg->epochs;
    uint64_t rng = cfg->seed ^ 0x73687566666c65ull; /* "shuffle" */
    bnk_bn_config bn = cfg->bn;
    bnk_epoch_metrics hist[3];
    int64_t step = 0;
    double train_seconds = 0.0, trained = 0.0;
    for (int64_t epoch = 0; epoch < cfg->epochs && step < total_steps; epoch++) {
        const double t0 = now_seconds();
        bnk_dataset_shuffle(r.train, r.order, &rng);
        double loss_sum = 0.0, grad_sq[BNK_TRAIN_MAX_TENSORS] = {0}, lr = cfg->optim.lr;
        int64_t hits = 0, seen = 0, batches = 0, grad_samples = 0;
        for (int64_t start = 0; start + 2 <= n && step < total_steps; start += B) {
            const int64_t count = n - start < B ? n - start : B;
            lr = lr_at(cfg, epoch, step, total_steps);
            if (bn.normalize_with == BNK_NORM_RENORM && cfg->renorm_warmup >= 0) {
                renorm_limits(cfg, step, &bn.rmax, &bn.dmax);
                if ((st = bnk_model_set_bn_config(r.model, &bn)) != BNK_OK) break;
            }
            double loss;
            int64_t c, off, cnt;
            shard(&r, count, &off, &cnt);
            st = bnk_dataset_batch(r.train, r.order + start + off, cnt, cfg->scaling, r.stats_ptr,
                                   r.x, r.labels);
            if (st == BNK_OK) st = bnk_model_forward_shard(r.model, r.x, cnt, off, count, true);
            if (st == BNK_OK) st = bnk_model_loss(r.model, r.labels, cnt, &loss, &c);
            if (st != BNK_OK) break;
            r.ghost_synced = false;
            if (r.size == 1 && !isfinite(loss)) {
                res->diverged = true;
                res->diverged_step = step + 1;
                break;
            }
            bnk_model_zero_grad(r.model);
            if ((st = bnk_model_backward(r.model, cnt)) != BNK_OK) break;
            if (r.size > 1) {
                /* Several ranks: one collective per step besides BN's, the gradient sum. A
                 * non-finite loss share makes this rank's gradient NaN, so the summed gradient
                 * tells every rank at once that the global loss diverged. Losses and hits are
                 * this rank's shares, summed over the ranks at the end of the epoch. */
                float *g = bnk_model_grads(r.model);
                const size_t np = bnk_model_num_params(r.model);
                if (!isfinite(loss) && np) g[0] = NAN;
                if ((st = sum_f32(&r, g, np)) != BNK_OK) break;
                if (!all_finite(g, np)) {
                    res->diverged = true;
                    res->diverged_step = step + 1;
                    break;
                }
            }
            if (step % 10 == 0 || batches == 0) { /* every 10th step, and every epoch's first */
                accumulate_grad_norms(&r, grad_sq);
                grad_samples++;
            }
            bnk_optim_step(r.opt, bnk_model_params(r.model), bnk_model_grads(r.model),
                           bnk_model_decay_mask(r.model), lr);
            step++;
            loss_sum += loss;
            hits += c;
            seen += count;
            batches++;
            if (cfg->print_every && step % cfg->print_every == 0) {
                if (r.size > 1 && (st = sum_f64(&r, &loss, 1)) != BNK_OK) break; /* global */
                if (log)
                    fprintf(log, "epoch %lld step %lld loss %.4f\n", (long long)epoch + 1,
                            (long long)step, loss);
            }
        }
        if (st == BNK_OK && !res->diverged && r.size > 1) {
            double sums[2] = {loss_sum, (double)hits}; /* the global batch means, over steps */
            st = sum_f64(&r, sums, 2);
            loss_sum = sums[0];
            hits = (int64_t)sums[1];
            if (st == BNK_OK) st = check_identical(&r);
        }
        if (st != BNK_OK || res->diverged || batches == 0) break;
        const double t_train = now_seconds() - t0;
        train_seconds += t_train;
        trained += (double)seen;
        bnk_epoch_metrics *m = &hist[epoch % 3];
        memset(m, 0, sizeof *m);
        m->epoch = epoch + 1;
        m->steps = step;
        m->train_loss = loss_sum / (double)batches;
        m->train_accuracy = (double)hits / (double)seen;
        m->val_loss = m->val_accuracy = NAN;
        m->lr = lr;
        if (r.val && (st = evaluate(&r, r.val, &m->val_loss, &m->val_accuracy)) != BNK_OK) break;
        m->seconds = now_seconds() - t0;
        m->samples_per_sec = (double)seen / t_train;
        diagnostics(&r, m, grad_sq, grad_samples, epoch >= 1 ? &hist[(epoch - 1) % 3] : NULL,
                    epoch >= 2 ? &hist[(epoch - 2) % 3] : NULL);
        res->epochs = m->epoch;
        res->train_loss = m->train_loss;
        res->val_accuracy = m->val_accuracy;
        if (!isnan(m->val_accuracy) &&
            (isnan(res->best_val_accuracy) || m->val_accuracy > res->best_val_accuracy))
            res->best_val_accuracy = m->val_accuracy;
        double stop = on_epoch && on_epoch(m, user) ? 1.0 : 0.0;
        if ((st = sum_f64(&r, &stop, 1)) != BNK_OK) break; /* any rank's request stops all */
        if (stop > 0.0) {
            res->stopped_early = true;
            break;
        }
    }
    res->steps = step;
    if (st == BNK_OK && !res->diverged && r.test)
        st = evaluate(&r, r.test, &res->test_loss, &res->test_accuracy);
    res->seconds = now_seconds() - t_start;
    res->samples_per_sec = train_seconds > 0 ? trained / train_seconds : 0.0;
    if (st == BNK_OK && model_out) st = sync_ghost_stats(&r);
    if (st == BNK_OK && model_out) {
        *model_out = r.model;
        r.model = NULL;
    }
    run_free(&r);
    return st;
}
