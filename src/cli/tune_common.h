/* Pieces shared by `bnkit tune` and the study commands (ask, tell, trials, best): building a
 * study configuration from options, turning a point into a training configuration, and
 * printing trials. Internal to the CLI. */
#ifndef BNKIT_CLI_TUNE_COMMON_H
#define BNKIT_CLI_TUNE_COMMON_H

#include <stdio.h>

#include "bnkit/train.h"
#include "bnkit/tune.h"
#include "cli/cli.h"

/* Options of the study configuration, for the tables of tune and ask. */
#define BNK_TUNE_STUDY_OPTS                                                                        \
    {"name", "NAME", "study name inside the file (default)"},                                      \
        {"sampler", "grid|random|sobol|tpe|gp", "search strategy (tpe)"},                          \
        {"seed", "N", "sampler seed (0)"},                                                         \
        {"grid-points", "K", "grid: values per continuous range (5)"},                             \
        {"multivariate", NULL, "tpe: model the parameters jointly"},                               \
        {"pruner", "none|median|asha", "stop unpromising trials early (median)"},                  \
        {"prune-percentile", "P",                                                                  \
         "median: stop a trial worse than the P-th percentile of the others, (0, 100] (50)"},      \
        {"param", "DEF",                                                                           \
         "a searched option, repeatable: NAME=float|log|int|logint:LO:HI or "                      \
         "NAME=cat:A,B[@PARENT=V1|V2] (default: the built-in BN space)"},                          \
    {                                                                                              \
        "default-space", NULL, "start from the built-in BN space even with --param"                \
    }

/* Builds the study configuration from the parsed group (options above) and argv (for the
 * repeatable --param), with the fixed training options train_args[0..ntrain-1] (checked by
 * parsing them, and every parameter checked to name a `bnkit train` option). train_args NULL:
 * a study for an outside training loop (`bnkit ask`), whose parameters are not checked. */
int bnk__tune_study_config(const char *ctx, int argc, char **argv, const bnk_cli_optgroup *group,
                           int ntrain, const char *const *train_args, bnk_study_config *cfg);

/* The training configuration of point x: defaults, then the fixed options, then each active
 * parameter as its option (bn.momentum -> --bn-momentum 0.95), then --threads when threads > 0
 * and the options do not set it. On a usage error returns BNK_CLI_USAGE with the reason in
 * reason[size] (nothing printed). */
int bnk__tune_train_config(const char *ctx, int ntrain, char *const *train_args,
                           const bnk_space *space, const bnk_point *x, int threads,
                           bnk_train_config *tc, char *reason, size_t size);

/* The `bnkit train` option of a parameter: "bn.normalize_with" -> "--bn-normalize-with". */
void bnk__tune_option(const char *param, char *buf, size_t size);

/* The best configuration of point x as text: command gets `bnkit train` with the study's fixed
 * options and each active parameter as its option; pytorch and keras the BN layer arguments of
 * each framework (momentum converted to its convention), as `bnkit tune` prints them. Returns
 * false, with pytorch and keras empty, when x does not make a valid training configuration. */
bool bnk__tune_best_lines(const bnk_study_config *cfg, const bnk_point *x, char *command,
                          size_t csize, char *pytorch, size_t psize, char *keras, size_t ksize);

/* Prints the best `top` complete trials, the counts per state, and the best configuration as a
 * `bnkit train` command and as PyTorch/Keras BN arguments. Returns the best trial or NULL. */
const bnk_trial *bnk__tune_print_summary(FILE *f, const bnk_study_config *cfg,
                                         const bnk_trial *trials, int64_t n, int top);

/* A trial as a JSON object: id, number, state, params (object), value, intermediate values,
 * worker, reason. */
void bnk__tune_print_trial_json(FILE *f, const bnk_study_config *cfg, const bnk_trial *t);

/* The final summary of `bnkit tune --json`. */
void bnk__tune_print_json_summary(FILE *f, const bnk_study_config *cfg, const bnk_trial *trials,
                                  int64_t n, const bnk_trial *best, double test_accuracy);

#endif /* BNKIT_CLI_TUNE_COMMON_H */
