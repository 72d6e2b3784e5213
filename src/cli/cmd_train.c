/* `bnkit train`: one training run from the command line (bnk_train_run), with per-epoch lines,
 * an optional JSON-lines metrics file and a final JSON summary. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/train.h"
#include "cli/cli.h"
#ifdef BNKIT_HAVE_MPI
#include "bnkit/mpi.h"
#include "bnkit/train_mpi.h"
#endif

static const char *const CTX = "train";

static const bnk_cli_opt train_opts[] = {
    {"data", "SPEC", "fashion-mnist | mnist:DIR | csv:PATH | npy:X.npy,Y.npy (fashion-mnist)"},
    {"test-data", "SPEC", "test set (default: the test split of --data, when it has one)"},
    {"model", "SPEC", "layers, e.g. dense:128,relu,bn,dense:10 (the default)"},
    {"epochs", "N", "passes over the training set (10)"},
    {"batch", "N", "batch size (100)"},
    {"optimizer", "adam|sgd", "optimiser (adam)"},
    {"lr", "LR", "learning rate (1e-3 for adam, 1e-2 for sgd)"},
    {"beta1", "B1", "Adam beta1 (0.9)"},
    {"beta2", "B2", "Adam beta2 (0.999)"},
    {"adam-eps", "E", "Adam epsilon (1e-8)"},
    {"sgd-momentum", "M", "SGD momentum (0.9)"},
    {"weight-decay", "WD", "L2 weight decay on dense/conv weights (0)"},
    {"lr-schedule", "constant|step|cosine", "learning-rate schedule (constant)"},
    {"lr-gamma", "G", "step schedule: factor per period (0.1)"},
    {"lr-step-epochs", "N", "step schedule: period in epochs (5)"},
    {"dropout", "RATE", "rate of dropout layers without their own (0.5)"},
    {"seed", "N", "seed for initialisation, shuffling, splits, dropout (0)"},
    {"threads", "N", "OpenMP threads (default: all cores)"},
    {"train-size", "N", "use only N training samples (after the validation split)"},
    {"val-size", "N", "validation samples taken from the training set (5000; 0: none)"},
    {"max-steps", "N", "stop after N optimiser steps"},
    {"scaling", "unit|standardize|none", "feature scaling (unit: uint8 / 255)"},
    {"print-every", "N", "print the loss every N steps (10; 0: never)"},
    {"renorm-warmup", "N", "Batch Renorm schedule: rmax=1, dmax=0 for N steps, then ramp (off)"},
    {"rmax-ramp-end", "N", "step at which rmax reaches --bn-rmax (40000)"},
    {"dmax-ramp-end", "N", "step at which dmax reaches --bn-dmax (25000)"},
    {"metrics", "FILE", "write one JSON object per epoch to FILE"},
    {"save", "FILE", "write the trained model to FILE, a checkpoint (see bnkit eval, export)"},
    {"json", NULL, "print a final JSON summary on stdout (progress goes to stderr)"},
    {"bn-sync", "on|off",
     "under mpirun: BN statistics over the whole global batch (on) or per rank (off); on"},
    {"help", NULL, "print this help"},
};
enum { N_TRAIN_OPTS = sizeof train_opts / sizeof train_opts[0] };

typedef struct epoch_sink {
    FILE *log;     /* human-readable lines; NULL: none (ranks other than 0) */
    FILE *metrics; /* JSON lines, or NULL */
    const char *metrics_path;
    bool write_failed;
} epoch_sink;

/* JSON number, or null for NaN/Inf (JSON has no NaN). */
static void json_num(FILE *f, const char *key, double v, bool comma) {
    if (isfinite(v))
        fprintf(f, "\"%s\": %.9g%s", key, v, comma ? ", " : "");
    else
        fprintf(f, "\"%s\": null%s", key, comma ? ", " : "");
}

static void write_metrics(FILE *f, const bnk_epoch_metrics *m) {
    fprintf(f, "{\"epoch\": %lld, \"steps\": %lld, ", (long long)m->epoch, (long long)m->steps);
    json_num(f, "train_loss", m->train_loss, true);
    json_num(f, "train_accuracy", m->train_accuracy, true);
    json_num(f, "val_loss", m->val_loss, true);
    json_num(f, "val_accuracy", m->val_accuracy, true);
    json_num(f, "lr", m->lr, true);
    json_num(f, "seconds", m->seconds, true);
    json_num(f, "samples_per_sec", m->samples_per_sec, true);
    fprintf(f, "\"grad_norm\": {");
    for (int i = 0; i < m->ntensors; i++)
        json_num(f, m->tensor_name[i], m->grad_norm[i], i + 1 < m->ntensors);
    fprintf(f, "}, \"bn\": {");
    for (int i = 0; i < m->nbn; i++) {
        fprintf(f, "\"%s\": {", m->bn_name[i]);
        json_num(f, "mean_abs_running_mean", m->bn_mean_abs_running_mean[i], true);
        json_num(f, "min_running_var", m->bn_min_running_var[i], true);
        json_num(f, "max_running_var", m->bn_max_running_var[i], false);
        fprintf(f, "}%s", i + 1 < m->nbn ? ", " : "");
    }
    fprintf(f, "}, \"vanishing_gradients\": %s, \"overfitting\": %s}\n",
            m->vanishing_gradients ? "true" : "false", m->overfitting ? "true" : "false");
}

static bool on_epoch(const bnk_epoch_metrics *m, void *user) {
    epoch_sink *s = user;
    if (!s->log) return false;
    fprintf(s->log, "epoch %lld: train loss %.4f acc %.4f", (long long)m->epoch, m->train_loss,
            m->train_accuracy);
    if (!isnan(m->val_accuracy))
        fprintf(s->log, " | val loss %.4f acc %.4f", m->val_loss, m->val_accuracy);
    fprintf(s->log, " | %.0f samples/s, %.2f s\n", m->samples_per_sec, m->seconds);
    if (m->vanishing_gradients)
        fprintf(s->log, "warning: vanishing gradients: the first layer's gradient norm is below "
                        "1e-3 of the last layer's (see --metrics grad_norm)\n");
    if (m->overfitting)
        fprintf(s->log,
                "warning: overfitting: the train/validation accuracy gap (%.1f points) "
                "has grown two epochs in a row\n",
                100.0 * (m->train_accuracy - m->val_accuracy));
    if (s->metrics) {
        write_metrics(s->metrics, m);
        if (fflush(s->metrics) != 0 || ferror(s->metrics)) s->write_failed = true;
    }
    return s->write_failed; /* stop: metrics can no longer be recorded */
}

static int parse_choice(const char *ctx, const char *opt, const char *v, const char *const *names,
                        int n, int *out) {
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return BNK_CLI_OK;
        }
    bnk__cli_error(ctx, "%s: unknown value '%s'", opt, v);
    return BNK_CLI_USAGE;
}

/* Fills cfg from the parsed options; BNK_CLI_OK or BNK_CLI_USAGE (message printed). */
static int build_config(const char *ctx, const bnk_cli_optgroup *g, const bnk_cli_optgroup *bn,
                        bnk_train_config *cfg) {
    const char *v;
    int rc = BNK_CLI_OK, choice;
    if ((v = bnk__cli_value(g, "data"))) cfg->data = v;
    if ((v = bnk__cli_value(g, "test-data"))) cfg->test_data = v;
    if ((v = bnk__cli_value(g, "model"))) cfg->model = v;
    if ((v = bnk__cli_value(g, "optimizer"))) {
        static const char *const names[] = {"adam", "sgd"};
        if ((rc = parse_choice(ctx, "--optimizer", v, names, 2, &choice)) != BNK_CLI_OK) return rc;
        cfg->optim = bnk_optim_config_default(choice ? BNK_OPTIM_SGD : BNK_OPTIM_ADAM);
    }
    if ((v = bnk__cli_value(g, "lr-schedule"))) {
        static const char *const names[] = {"constant", "step", "cosine"};
        if ((rc = parse_choice(ctx, "--lr-schedule", v, names, 3, &choice)) != BNK_CLI_OK)
            return rc;
        cfg->lr_schedule = (bnk_lr_schedule)choice;
    }
    if ((v = bnk__cli_value(g, "scaling"))) {
        static const char *const names[] = {"none", "unit", "standardize"};
        if ((rc = parse_choice(ctx, "--scaling", v, names, 3, &choice)) != BNK_CLI_OK) return rc;
        cfg->scaling = (bnk_scaling)choice;
    }
    static const struct {
        const char *name;
        size_t offset;
    } doubles[] = {
        {"lr", offsetof(bnk_train_config, optim.lr)},
        {"beta1", offsetof(bnk_train_config, optim.beta1)},
        {"beta2", offsetof(bnk_train_config, optim.beta2)},
        {"adam-eps", offsetof(bnk_train_config, optim.eps)},
        {"sgd-momentum", offsetof(bnk_train_config, optim.momentum)},
        {"weight-decay", offsetof(bnk_train_config, optim.weight_decay)},
        {"lr-gamma", offsetof(bnk_train_config, lr_gamma)},
        {"dropout", offsetof(bnk_train_config, dropout)},
    };
    static const struct {
        const char *name;
        size_t offset;
    } ints[] = {
        {"epochs", offsetof(bnk_train_config, epochs)},
        {"batch", offsetof(bnk_train_config, batch)},
        {"lr-step-epochs", offsetof(bnk_train_config, lr_step_epochs)},
        {"train-size", offsetof(bnk_train_config, train_size)},
        {"val-size", offsetof(bnk_train_config, val_size)},
        {"max-steps", offsetof(bnk_train_config, max_steps)},
        {"print-every", offsetof(bnk_train_config, print_every)},
        {"renorm-warmup", offsetof(bnk_train_config, renorm_warmup)},
        {"rmax-ramp-end", offsetof(bnk_train_config, rmax_ramp_end)},
        {"dmax-ramp-end", offsetof(bnk_train_config, dmax_ramp_end)},
    };
    char opt[48];
    for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
        if ((v = bnk__cli_value(g, doubles[i].name))) {
            snprintf(opt, sizeof opt, "--%s", doubles[i].name);
            double *dst = (double *)((char *)cfg + doubles[i].offset);
            if ((rc = bnk__cli_parse_double(ctx, opt, v, dst)) != BNK_CLI_OK) return rc;
        }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if ((v = bnk__cli_value(g, ints[i].name))) {
            snprintf(opt, sizeof opt, "--%s", ints[i].name);
            int64_t *dst = (int64_t *)((char *)cfg + ints[i].offset);
            if ((rc = bnk__cli_parse_int64(ctx, opt, v, dst)) != BNK_CLI_OK) return rc;
        }
    int64_t n;
    if ((v = bnk__cli_value(g, "seed"))) {
        if ((rc = bnk__cli_parse_int64(ctx, "--seed", v, &n)) != BNK_CLI_OK) return rc;
        cfg->seed = (uint64_t)n;
    }
    if ((v = bnk__cli_value(g, "threads"))) {
        if ((rc = bnk__cli_parse_int64(ctx, "--threads", v, &n)) != BNK_CLI_OK) return rc;
        if (n < 0 || n > 1024) {
            bnk__cli_error(ctx, "--threads must be in [0, 1024], got %lld", (long long)n);
            return BNK_CLI_USAGE;
        }
        cfg->threads = (int)n;
    }
    return bnk__cli_bn_apply(ctx, bn, &cfg->bn);
}

static void print_help(const bnk_cli_optgroup *groups) {
    printf("usage: bnkit train [options] [--bn-<flag> ...]\n\n"
           "Trains a model with BN on a data set and reports loss and accuracy per epoch and the\n"
           "test accuracy at the end. The defaults reproduce the source document's experiment:\n"
           "dense:128,relu,bn,dense:10 on Fashion-MNIST, Adam 1e-3, batch 100, BN momentum 0.9\n"
           "(Keras convention; PyTorch 0.1), eps 1e-3. Exit status 3 when training diverges.\n\n"
           "options:\n");
    bnk__cli_print_opts(stdout, &groups[0]);
    printf("\nBN flags (as in 'bnkit bn', prefixed with bn-):\n");
    bnk__cli_print_opts(stdout, &groups[1]);
}

bool bnk__cli_train_has_option(const char *name) {
    for (size_t i = 0; i < N_TRAIN_OPTS; i++)
        if (strcmp(train_opts[i].name, name) == 0) return true;
    if (strncmp(name, "bn-", 3) != 0) return false;
    for (size_t i = 0; i < BNK_CLI_BN_NOPTS; i++)
        if (strcmp(bnk__cli_bn_opts[i].name, name + 3) == 0) return true;
    return false;
}

int bnk__cli_train_config(const char *ctx, int argc, char **argv, bnk_train_config *cfg,
                          bnk_cli_train_extras *extras) {
    const char *vals[N_TRAIN_OPTS], *bn_vals[BNK_CLI_BN_NOPTS];
    bnk_cli_optgroup groups[] = {{"", train_opts, N_TRAIN_OPTS, vals},
                                 {"bn-", bnk__cli_bn_opts, BNK_CLI_BN_NOPTS, bn_vals}};
    int rc = bnk__cli_parse(ctx, argc, argv, groups, 2, NULL, 0, NULL);
    if (rc != BNK_CLI_OK) return rc;
    static const char *const extra_opts[] = {"help", "json", "metrics", "save", "bn-sync"};
    for (int i = 0; !extras && i < 5; i++)
        if (bnk__cli_value(&groups[0], extra_opts[i])) {
            bnk__cli_error(ctx, "--%s is not a training option here", extra_opts[i]);
            return BNK_CLI_USAGE;
        }
    if (extras) {
        extras->help = bnk__cli_value(&groups[0], "help") != NULL;
        extras->json = bnk__cli_value(&groups[0], "json") != NULL;
        extras->metrics = bnk__cli_value(&groups[0], "metrics");
        extras->save = bnk__cli_value(&groups[0], "save");
        if (extras->help) {
            print_help(groups);
            return BNK_CLI_OK;
        }
    }
    return build_config(ctx, &groups[0], &groups[1], cfg);
}

typedef struct dist_setup dist_setup;
static int run_train(const bnk_train_config *cfgp, const bnk_cli_train_extras *xp,
                     const dist_setup *dist, bool sync);

/* --bn-sync on|off (default on): BNK_CLI_OK or BNK_CLI_USAGE after a message. */
static int parse_bn_sync(int argc, char **argv, bool *sync) {
    const char *vals[32];
    int n = bnk__cli_collect(argc, argv, "bn-sync", vals, 32);
    *sync = true;
    if (n == 0) return BNK_CLI_OK;
    const char *v = vals[(n < 32 ? n : 32) - 1]; /* the last one wins, as for every option */
    static const char *const names[] = {"off", "on"};
    int choice;
    int rc = parse_choice(CTX, "--bn-sync", v, names, 2, &choice);
    *sync = choice == 1;
    return rc;
}

/* Data-parallel training when launched on several MPI ranks: every rank runs this command
 * with the same options; only rank 0 prints, writes --metrics, --json and --save. */
struct dist_setup {
    int rank, size;
#ifdef BNKIT_HAVE_MPI
    bnk_train_mpi tm;
#endif
};

static int dist_begin(dist_setup *d, bool sync, bnk_train_config *cfg) {
    d->rank = 0;
    d->size = 1;
#ifdef BNKIT_HAVE_MPI
    if (!bnk_mpi_active()) return BNK_CLI_OK;
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    if (d->size <= 1) return BNK_CLI_OK;
    if (bnk_train_mpi_init(&d->tm, MPI_COMM_WORLD, sync) != BNK_OK) {
        bnk__cli_error(CTX, "%s", bnk_errmsg());
        return BNK_CLI_FAIL;
    }
    d->rank = d->tm.dist.rank;
    cfg->dist = &d->tm.dist;
#else
    (void)sync;
    (void)cfg;
#endif
    return BNK_CLI_OK;
}

static void dist_end(dist_setup *d) {
#ifdef BNKIT_HAVE_MPI
    if (d->size > 1) bnk_train_mpi_free(&d->tm);
#endif
    (void)d;
}

int bnk__cmd_train(int argc, char **argv) {
    bnk_train_config cfg = bnk_train_config_default();
    bnk_cli_train_extras extras;
    int rc = bnk__cli_train_config(CTX, argc, argv, &cfg, &extras);
    if (rc != BNK_CLI_OK || extras.help) return rc;
    bool sync;
    if ((rc = parse_bn_sync(argc, argv, &sync)) != BNK_CLI_OK) return rc;
    dist_setup dist;
    if ((rc = dist_begin(&dist, sync, &cfg)) != BNK_CLI_OK) return rc;
    rc = run_train(&cfg, &extras, &dist, sync);
    dist_end(&dist);
    return rc;
}

static int run_train(const bnk_train_config *cfgp, const bnk_cli_train_extras *xp,
                     const dist_setup *dist, bool sync) {
    bnk_train_config cfg = *cfgp;
    const bnk_cli_train_extras extras = *xp;
    int rc = BNK_CLI_OK;
    const bool lead = dist->rank == 0; /* the rank that prints and writes files */
    const bool json = extras.json && lead;
    epoch_sink sink = {.log = !lead ? NULL : extras.json ? stderr : stdout};
    cfg.log = sink.log;
    if (lead && dist->size > 1) {
        const long long lo = (long long)(cfg.batch / dist->size),
                        hi = (long long)((cfg.batch + dist->size - 1) / dist->size);
        fprintf(sink.log, "data-parallel training on %d ranks: global batch %lld, ", dist->size,
                (long long)cfg.batch);
        if (lo == hi)
            fprintf(sink.log, "%lld per rank, ", lo);
        else
            fprintf(sink.log, "%lld-%lld per rank, ", lo, hi);
        fprintf(sink.log, "%s\n",
                sync ? "synchronised BN (batch statistics over all ranks)"
                     : "ghost BN (batch statistics per rank)");
    }
    if (lead && extras.save &&
        (rc = bnk__cli_check_writable(CTX, "--save", extras.save)) != BNK_CLI_OK)
        return rc;
    const char *metrics = lead ? extras.metrics : NULL;
    if (metrics && !(sink.metrics = fopen(metrics, "w"))) {
        bnk__cli_error(CTX, "--metrics %s: cannot open: %s", metrics, strerror(errno));
        return BNK_CLI_FAIL;
    }
    sink.metrics_path = metrics;
    bnk_train_result res;
    bnk_model *model = NULL;
    const bool save = extras.save && lead;
    bnk_status st = bnk_train_run(&cfg, on_epoch, &sink, &res, save ? &model : NULL);
    if (sink.metrics && fclose(sink.metrics) != 0) sink.write_failed = true;
    if (st == BNK_OK && !sink.write_failed && !res.diverged && save)
        rc = bnk__cli_save_checkpoint(CTX, extras.save, model, &cfg);
    bnk_model_destroy(model);
    if (rc != BNK_CLI_OK) return rc;
    if (st != BNK_OK) {
        /* every failing rank says why: the first to fail aborts the job (main.c), possibly
         * before rank 0 could print */
        if (lead)
            bnk__cli_error(CTX, "%s", bnk_errmsg());
        else
            bnk__cli_error(CTX, "rank %d: %s", dist->rank, bnk_errmsg());
        return bnk__cli_exit_for(st);
    }
    /* divergence is seen by every rank at the same step: rank 0 reports it and exits 3 */
    if (!lead) return BNK_CLI_OK;
    if (sink.write_failed) {
        bnk__cli_error(CTX, "--metrics %s: write failed: %s", metrics, strerror(errno));
        return BNK_CLI_FAIL;
    }
    if (res.diverged) {
        bnk__cli_error(CTX,
                       "diverged: the loss became NaN or infinite at step %lld (try a "
                       "smaller --lr or a larger --bn-eps)",
                       (long long)res.diverged_step);
        return 3;
    }
    if (!isnan(res.test_accuracy))
        fprintf(sink.log, "test accuracy %.4f (loss %.4f) after %lld epochs, %.1f s\n",
                res.test_accuracy, res.test_loss, (long long)res.epochs, res.seconds);
    if (json) {
        printf("{");
        json_num(stdout, "test_accuracy", res.test_accuracy, true);
        json_num(stdout, "val_accuracy", res.val_accuracy, true);
        json_num(stdout, "best_val_accuracy", res.best_val_accuracy, true);
        json_num(stdout, "train_loss", res.train_loss, true);
        json_num(stdout, "test_loss", res.test_loss, true);
        printf("\"epochs\": %lld, \"steps\": %lld, ", (long long)res.epochs, (long long)res.steps);
        json_num(stdout, "samples_per_sec", res.samples_per_sec, true);
        json_num(stdout, "seconds", res.seconds, false);
        printf("}\n");
    }
    return BNK_CLI_OK;
}
