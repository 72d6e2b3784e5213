/* Checkpoints on the command line: `bnkit eval` (loss and accuracy of a saved model in
 * inference mode), `bnkit export --fold-bn` (an inference checkpoint with every BN folded into a
 * dense/conv layer), and the `bnkit train --save FILE` writer. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bnkit/checkpoint.h"
#include "bnkit/data.h"
#include "bnkit/train.h"
#include "cli/cli.h"

/* ---- Output paths ---------------------------------------------------------------------------- */

int bnk__cli_check_writable(const char *ctx, const char *opt, const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (slash && slash[1] == '\0') {
        bnk__cli_error(ctx, "%s %s: names a directory, not a file", opt, path);
        return BNK_CLI_USAGE;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        bnk__cli_error(ctx, "%s %s: cannot write in directory '%s': %s", opt, path, dir,
                       strerror(errno));
        return BNK_CLI_FAIL;
    }
    return BNK_CLI_OK;
}

/* ---- bnkit train --save ---------------------------------------------------------------------- */

/* The per-feature statistics bnk_train_run standardised with: those of the training split after
 * the validation split and --train-size (src/nn/train.c, load_data and setup: the same calls
 * with the same seed give the same samples). */
static bnk_status train_feature_stats(const bnk_train_config *cfg, float **mean, float **std) {
    bnk_dataset *train = NULL, *val = NULL;
    bnk_status st = bnk_dataset_load(&train, cfg->data, BNK_SPLIT_TRAIN);
    if (st == BNK_OK && cfg->val_size > 0)
        st = bnk_dataset_split(train, cfg->val_size, cfg->seed ^ 0x76616cull, &val);
    if (st == BNK_OK && cfg->train_size > 0 && cfg->train_size < bnk_dataset_size(train))
        st = bnk_dataset_truncate(train, cfg->train_size);
    int64_t c = 0, h = 0, w = 0;
    bnk_dataset_shape(train, &c, &h, &w);
    const size_t feats = (size_t)(c * h * w);
    if (st == BNK_OK) {
        *mean = malloc(feats * sizeof(float));
        *std = malloc(feats * sizeof(float));
        st = *mean && *std ? bnk_dataset_feature_stats(train, *mean, *std) : BNK_ERR_NOMEM;
    }
    bnk_dataset_destroy(train);
    bnk_dataset_destroy(val);
    return st;
}

int bnk__cli_save_checkpoint(const char *ctx, const char *path, bnk_model *model,
                             const bnk_train_config *cfg) {
    bnk_checkpoint_meta meta = {
        .data = cfg->data, .test_data = cfg->test_data, .scaling = cfg->scaling};
    float *mean = NULL, *std = NULL;
    bnk_status st = BNK_OK;
    if (cfg->scaling == BNK_SCALE_STANDARDIZE) {
        st = train_feature_stats(cfg, &mean, &std);
        meta.input_mean = mean;
        meta.input_std = std;
    }
    if (st == BNK_OK) st = bnk_checkpoint_save(model, path, &meta);
    free(mean);
    free(std);
    if (st != BNK_OK) {
        bnk__cli_error(ctx, "--save %s: %s", path,
                       st == BNK_ERR_NOMEM ? "out of memory" : bnk_errmsg());
        return BNK_CLI_FAIL;
    }
    return BNK_CLI_OK;
}

/* ---- bnkit eval ------------------------------------------------------------------------------ */

static const bnk_cli_opt eval_opts[] = {
    {"checkpoint", "FILE", "the checkpoint to evaluate (required)"},
    {"data", "SPEC", "data set (default: the one the checkpoint was trained and tested on)"},
    {"split", "test|train", "which split of --data (test); csv: and npy: have one set"},
    {"batch", "N", "samples per forward pass (100)"},
    {"json", NULL, "print one JSON object instead of a line"},
    {"help", NULL, "print this help"},
};
enum { N_EVAL_OPTS = sizeof eval_opts / sizeof eval_opts[0] };

typedef struct eval_result {
    double loss, accuracy;
    int64_t samples;
} eval_result;

/* Loss and accuracy of model over ds in inference mode, in batches of B. */
static bnk_status evaluate(bnk_model *model, const bnk_dataset *ds, int64_t B,
                           const bnk_checkpoint_meta *meta, eval_result *r) {
    int64_t c, h, w;
    bnk_dataset_shape(ds, &c, &h, &w);
    const int64_t n = bnk_dataset_size(ds);
    float *x = malloc((size_t)(B * c * h * w) * sizeof(float));
    int32_t *labels = malloc((size_t)B * sizeof(int32_t));
    int64_t *idx = malloc((size_t)B * sizeof(int64_t));
    const float *stats[2] = {meta->input_mean, meta->input_std};
    bnk_status st = x && labels && idx ? BNK_OK : BNK_ERR_NOMEM;
    double total = 0.0;
    int64_t hits = 0;
    for (int64_t start = 0; st == BNK_OK && start < n; start += B) {
        const int64_t count = n - start < B ? n - start : B;
        for (int64_t i = 0; i < count; i++) idx[i] = start + i;
        double l = 0.0;
        int64_t k = 0;
        st = bnk_dataset_batch(ds, idx, count, meta->scaling, stats, x, labels);
        if (st == BNK_OK) st = bnk_model_forward(model, x, count, false);
        if (st == BNK_OK) st = bnk_model_loss(model, labels, count, &l, &k);
        total += l * (double)count;
        hits += k;
    }
    free(x);
    free(labels);
    free(idx);
    r->samples = n;
    r->loss = total / (double)n;
    r->accuracy = (double)hits / (double)n;
    return st;
}

static void json_num(FILE *f, const char *key, double v, const char *sep) {
    if (isfinite(v))
        fprintf(f, "\"%s\": %.9g%s", key, v, sep);
    else
        fprintf(f, "\"%s\": null%s", key, sep);
}

/* A JSON string with the characters JSON needs escaped. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

int bnk__cmd_eval(int argc, char **argv) {
    static const char *const CTX = "eval";
    const char *vals[N_EVAL_OPTS];
    bnk_cli_optgroup group = {"", eval_opts, N_EVAL_OPTS, vals};
    int rc;
    if (bnk__cli_parse_or_help(
            &rc, CTX, argc, argv, &group,
            "usage: bnkit eval --checkpoint FILE [--data SPEC] [--split test|train] "
            "[--batch N] [--json]\n\n"
            "Mean cross-entropy loss and accuracy of a checkpoint (bnkit train --save, bnkit\n"
            "export) in inference mode, with the input scaling recorded in it.\n\n"
            "options:\n"))
        return rc;
    const char *path = bnk__cli_value(&group, "checkpoint"), *v;
    if (!path) {
        bnk__cli_error(CTX, "--checkpoint FILE is required");
        return BNK_CLI_USAGE;
    }
    int64_t batch = 100;
    if ((v = bnk__cli_value(&group, "batch")) &&
        (rc = bnk__cli_parse_int64(CTX, "--batch", v, &batch)) != BNK_CLI_OK)
        return rc;
    if (batch < 1 || batch > (1 << 20)) {
        bnk__cli_error(CTX, "--batch must be in [1, 2^20], got %lld", (long long)batch);
        return BNK_CLI_USAGE;
    }
    bnk_split split = BNK_SPLIT_TEST;
    if ((v = bnk__cli_value(&group, "split"))) {
        if (strcmp(v, "train") == 0)
            split = BNK_SPLIT_TRAIN;
        else if (strcmp(v, "test") != 0) {
            bnk__cli_error(CTX, "--split: unknown value '%s' (test or train)", v);
            return BNK_CLI_USAGE;
        }
    }
    bnk_model *model = NULL;
    bnk_checkpoint_meta meta;
    bnk_status st = bnk_checkpoint_load(&model, path, batch, &meta);
    if (st != BNK_OK) {
        bnk__cli_error(CTX, "%s", bnk_errmsg());
        return bnk__cli_exit_for(st);
    }
    const char *data = bnk__cli_value(&group, "data");
    if (!data && split == BNK_SPLIT_TEST && meta.test_data) data = meta.test_data;
    if (!data) data = meta.data ? meta.data : "fashion-mnist";
    /* csv: and npy: specs name one set of files: the split does not apply */
    const bool one_set = strncmp(data, "csv:", 4) == 0 || strncmp(data, "npy:", 4) == 0;
    bnk_dataset *ds = NULL;
    eval_result r = {0};
    const bnk_model_config mc = bnk_model_get_config(model);
    int64_t c, h, w;
    if ((st = bnk_dataset_load(&ds, data, split)) != BNK_OK) {
        bnk__cli_error(CTX, "%s", bnk_errmsg());
        rc = bnk__cli_exit_for(st);
    } else if (bnk_dataset_shape(ds, &c, &h, &w), c != mc.in_c || h != mc.in_h || w != mc.in_w) {
        bnk__cli_error(CTX,
                       "data '%s' has samples of shape %lldx%lldx%lld but the model expects "
                       "%lldx%lldx%lld",
                       data, (long long)c, (long long)h, (long long)w, (long long)mc.in_c,
                       (long long)mc.in_h, (long long)mc.in_w);
        rc = BNK_CLI_USAGE;
    } else if (bnk_dataset_num_classes(ds) > bnk_model_num_outputs(model)) {
        bnk__cli_error(CTX, "data '%s' has %lld classes but the model outputs %lld scores", data,
                       (long long)bnk_dataset_num_classes(ds),
                       (long long)bnk_model_num_outputs(model));
        rc = BNK_CLI_USAGE;
    } else if ((st = evaluate(model, ds, batch, &meta, &r)) != BNK_OK) {
        bnk__cli_error(CTX, "%s", st == BNK_ERR_NOMEM ? "out of memory" : bnk_errmsg());
        rc = bnk__cli_exit_for(st);
    } else if (bnk__cli_value(&group, "json")) {
        printf("{");
        json_num(stdout, "loss", r.loss, ", ");
        json_num(stdout, "accuracy", r.accuracy, ", ");
        printf("\"samples\": %lld, \"data\": ", (long long)r.samples);
        json_str(stdout, data);
        printf(", \"split\": %s, \"checkpoint\": ", one_set                   ? "null"
                                                    : split == BNK_SPLIT_TEST ? "\"test\""
                                                                              : "\"train\"");
        json_str(stdout, path);
        printf("}\n");
    } else {
        printf("loss %.4f accuracy %.4f on %lld samples (%s%s)\n", r.loss, r.accuracy,
               (long long)r.samples, data,
               one_set                   ? ""
               : split == BNK_SPLIT_TEST ? ", test split"
                                         : ", train split");
    }
    bnk_dataset_destroy(ds);
    bnk_model_destroy(model);
    bnk_checkpoint_meta_free(&meta);
    return rc;
}

/* ---- bnkit export ---------------------------------------------------------------------------- */

static const bnk_cli_opt export_opts[] = {
    {"checkpoint", "FILE", "the checkpoint to read (required)"},
    {"out", "FILE", "the checkpoint to write (required)"},
    {"fold-bn", NULL, "fold every BN layer into a neighbouring dense/conv layer (required)"},
    {"help", NULL, "print this help"},
};
enum { N_EXPORT_OPTS = sizeof export_opts / sizeof export_opts[0] };

int bnk__cmd_export(int argc, char **argv) {
    static const char *const CTX = "export";
    const char *vals[N_EXPORT_OPTS];
    bnk_cli_optgroup group = {"", export_opts, N_EXPORT_OPTS, vals};
    int rc;
    if (bnk__cli_parse_or_help(
            &rc, CTX, argc, argv, &group,
            "usage: bnkit export --checkpoint IN --out OUT --fold-bn\n\n"
            "Writes an inference checkpoint in which every BN layer is folded into the dense\n"
            "or conv layer before it (W' = a*W, b' = a*b + c per output channel) or, when\n"
            "none is there (dense,relu,bn,dense), into the dense layer or unpadded conv after\n"
            "it (W' = W*a per input channel, b' = b + W*c), with a = gamma/sqrt(var + eps)\n"
            "and c = beta - a*mean from the running statistics. The result has no BN layers\n"
            "and the same outputs in inference up to float rounding.\n\n"
            "options:\n"))
        return rc;
    const char *in = bnk__cli_value(&group, "checkpoint"), *out = bnk__cli_value(&group, "out");
    if (!in || !out) {
        bnk__cli_error(CTX, "--checkpoint IN and --out OUT are required");
        return BNK_CLI_USAGE;
    }
    if (!bnk__cli_value(&group, "fold-bn")) {
        bnk__cli_error(CTX, "nothing to do: --fold-bn is the only export so far");
        return BNK_CLI_USAGE;
    }
    if ((rc = bnk__cli_check_writable(CTX, "--out", out)) != BNK_CLI_OK) return rc;
    bnk_model *model = NULL, *folded = NULL;
    bnk_checkpoint_meta meta;
    char summary[2048];
    bnk_status st = bnk_checkpoint_load(&model, in, 1, &meta);
    if (st == BNK_OK) st = bnk_model_fold_bn(&folded, model, summary, sizeof summary);
    if (st == BNK_OK) {
        bnk_checkpoint_meta m = meta;
        m.folded = true;
        st = bnk_checkpoint_save(folded, out, &m);
    }
    if (st != BNK_OK) {
        bnk__cli_error(CTX, "%s", bnk_errmsg());
        rc = bnk__cli_exit_for(st);
    } else {
        printf("folded: %s\nspec: %s\nwrote %s\n", summary[0] ? summary : "no BN layers",
               bnk_model_spec(folded), out);
    }
    bnk_model_destroy(model);
    bnk_model_destroy(folded);
    bnk_checkpoint_meta_free(&meta);
    return rc;
}
