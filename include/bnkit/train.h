/* bnkit/train.h — one training run: data, model, optimiser, schedules, per-epoch metrics.
 * This is what `bnkit train` runs and what the tuner calls for every trial.
 *
 *     bnk_train_config tc = bnk_train_config_default();   // the document's model, Adam 1e-3
 *     tc.epochs = 10;
 *     bnk_train_result res;
 *     if (bnk_train_run(&tc, NULL, NULL, &res) != BNK_OK) fprintf(stderr, "%s\n", bnk_errmsg());
 *     printf("test accuracy %.4f\n", res.test_accuracy);
 *
 * Batches: the training set is shuffled every epoch (seeded) and cut into batches of `batch`;
 * a last partial batch is used when it holds at least 2 samples (BN needs 2) and dropped
 * otherwise. Evaluation (validation, test) runs in inference mode in chunks of `batch`. */
#ifndef BNKIT_TRAIN_H
#define BNKIT_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bnkit/bn.h"
#include "bnkit/data.h"
#include "bnkit/nn.h"
#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Data-parallel training over several processes (ranks): how bnk_train_run talks to the others.
 * libbnkit never depends on MPI; bnkit/train_mpi.h fills this in from an MPI communicator, and
 * any other transport can fill in the operations. Every rank calls bnk_train_run with the same
 * configuration (data, seed, model, batch, ...): each loads the whole data set and shuffles it
 * with the same seed, so all agree on every global batch of `batch` samples, and rank r trains
 * on its contiguous slice (sizes differ by at most one; a slice may be empty). The loss is the
 * global batch mean: each rank's gradients are its share (see bnk_model_forward_shard), summed
 * with sum_f32, and the optimiser then takes identical steps everywhere, so parameters stay
 * bit-identical on all ranks (checked once per epoch: BNK_ERR_IO when they are not). Reported
 * losses and accuracies are the global ones; evaluation is sharded and summed. Only rank 0 writes
 * progress lines to cfg->log; the epoch callback runs on every rank with identical metrics, and the
 * run stops when any rank's callback asks to.
 *
 * With bn_comm, BN is synchronised: batch statistics over the whole global batch, identical
 * running statistics on all ranks, and results equal to single-process training up to float
 * rounding. Without (ghost BN), each rank normalises with its own slice's statistics and keeps
 * its own running statistics, which are averaged over the ranks before every evaluation and at
 * the end of the run; a global batch smaller than 2 samples per rank then goes to fewer ranks
 * so that no slice holds a single sample.
 *
 * A rank that fails leaves the others waiting in a collective operation: the caller must abort
 * the job (the CLI calls MPI_Abort). */
typedef struct bnk_train_dist {
    int rank, size;             /* this rank in [0, size); size >= 1                           */
    const bnk_bn_comm *bn_comm; /* synchronised BN over the ranks; NULL: ghost (per-rank) BN  */
    /* Element-wise sums of buf[0, n) over all ranks, in place. The result must be bit-identical
     * on every rank (sum_f32 carries the gradients; identical sums keep parameters identical).
     * Return BNK_OK or an error status with bnk_errmsg() set. */
    bnk_status (*sum_f32)(void *ctx, float *buf, size_t n);
    bnk_status (*sum_f64)(void *ctx, double *buf, size_t n); /* losses, hit counts, flags */
    void *ctx;
} bnk_train_dist;

typedef enum bnk_lr_schedule {
    BNK_LR_CONSTANT,
    BNK_LR_STEP,  /* lr * gamma^(floor(epoch / step_epochs)), epochs counted from 0 */
    BNK_LR_COSINE /* lr * (1 + cos(pi * step / total_steps)) / 2                      */
} bnk_lr_schedule;

typedef struct bnk_train_config {
    const char *data;       /* bnk_dataset_load spec; "fashion-mnist"                      */
    const char *test_data;  /* spec of the test set; NULL: the TEST split of `data` when it
                               has one (fashion-mnist, mnist:DIR), else no test evaluation   */
    bool no_test;           /* never touch the test set (the tuner uses it once, at the end,
                               for the best configuration only)                             */
    const char *model;      /* model spec; "dense:128,relu,bn,dense:10"                    */
    int64_t epochs;         /* 10                                                          */
    int64_t batch;          /* 100                                                         */
    bnk_optim_config optim; /* Adam, lr 1e-3                                              */
    bnk_lr_schedule lr_schedule;
    double lr_gamma;        /* BNK_LR_STEP factor; 0.1                                     */
    int64_t lr_step_epochs; /* BNK_LR_STEP period; 5                                      */
    bnk_bn_config bn;       /* every BN layer; bnk_bn_config_default() with momentum 0.9   */
    /* Batch Renorm schedule (normalize_with = renorm): rmax = 1, dmax = 0 for the first
     * renorm_warmup steps, then rmax ramps linearly to bn.rmax by rmax_ramp_end and dmax to
     * bn.dmax by dmax_ramp_end (the paper: 5000, 40000, 25000). renorm_warmup < 0: off, use
     * bn.rmax/bn.dmax from the first step. */
    int64_t renorm_warmup, rmax_ramp_end, dmax_ramp_end;
    double dropout;             /* default rate of dropout layers; 0.5                          */
    uint64_t seed;              /* 0                                                            */
    int threads;                /* 0: OpenMP's default                                         */
    int64_t train_size;         /* 0: all (after the validation split)                          */
    int64_t val_size;           /* samples moved from the training set into validation; 5000    */
    int64_t max_steps;          /* 0: no limit                                                  */
    bnk_scaling scaling;        /* BNK_SCALE_UNIT                                               */
    int64_t print_every;        /* steps between loss lines on `log`; 0: none. 10               */
    FILE *log;                  /* progress lines; NULL: silent                                 */
    const bnk_train_dist *dist; /* data-parallel training over several ranks; NULL: this
                                   process alone                                            */
} bnk_train_config;

bnk_train_config bnk_train_config_default(void);

/* Metrics of one finished epoch, passed to the callback. */
enum { BNK_TRAIN_MAX_TENSORS = 64 };
typedef struct bnk_epoch_metrics {
    int64_t epoch;                     /* 1-based */
    int64_t steps;                     /* optimiser steps so far */
    double train_loss, train_accuracy; /* means over the epoch's batches (training mode) */
    double val_loss, val_accuracy;     /* NaN when there is no validation set          */
    double lr;                         /* learning rate of the epoch's last step        */
    double seconds;                    /* wall time of the epoch (training + validation) */
    double samples_per_sec;            /* training samples / training time              */
    /* Diagnostics: RMS over the epoch of each trainable tensor's gradient L2 norm, and for
     * each BN layer the mean and min/max of its running variance. */
    int ntensors;
    char tensor_name[BNK_TRAIN_MAX_TENSORS][48];
    double grad_norm[BNK_TRAIN_MAX_TENSORS];
    int nbn;
    char bn_name[BNK_TRAIN_MAX_TENSORS][48]; /* "<layer>.bn" */
    double bn_mean_abs_running_mean[BNK_TRAIN_MAX_TENSORS];
    double bn_min_running_var[BNK_TRAIN_MAX_TENSORS], bn_max_running_var[BNK_TRAIN_MAX_TENSORS];
    /* Warnings raised this epoch (definitions in docs/training.md): vanishing gradients and a
     * growing train/validation gap. */
    bool vanishing_gradients, overfitting;
} bnk_epoch_metrics;

/* Called after every epoch; return true to stop the run early (pruning). */
typedef bool (*bnk_epoch_fn)(const bnk_epoch_metrics *m, void *user);

typedef struct bnk_train_result {
    int64_t epochs; /* completed */
    int64_t steps;
    double train_loss;   /* last epoch's mean training loss */
    double val_accuracy; /* last epoch's; NaN without validation */
    double best_val_accuracy;
    double test_accuracy, test_loss; /* NaN without a test set */
    double seconds, samples_per_sec; /* whole run; training samples per training second */
    bool stopped_early;              /* the callback asked to stop */
    bool diverged;                   /* NaN/Inf loss: the run stopped */
    int64_t diverged_step;
} bnk_train_result;

/* Runs training. Returns BNK_OK also when the run diverged (res->diverged) or was stopped by
 * the callback; an error status for bad configuration, data or resources. model_out, when not
 * NULL, receives the trained model (caller destroys it). */
bnk_status bnk_train_run(const bnk_train_config *cfg, bnk_epoch_fn on_epoch, void *user,
                         bnk_train_result *res, bnk_model **model_out);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_TRAIN_H */
