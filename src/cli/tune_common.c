/* Study configuration from options, points to training configurations, and trial output for
 * `bnkit tune`, `ask`, `tell`, `trials` and `best`. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/tune_common.h"
#include "report/report_internal.h"

enum { MAX_PARAMS = BNK_SPACE_MAX_PARAMS, MAX_ARGV = 256 };

void bnk__tune_option(const char *param, char *buf, size_t size) {
    const char *rest = strncmp(param, "bn.", 3) == 0 ? param + 3 : param;
    size_t n = (size_t)snprintf(buf, size, "--%s", rest == param ? "" : "bn-");
    for (const char *p = rest; *p && n + 1 < size; p++)
        buf[n++] = (*p == '_' || *p == '.') ? '-' : *p;
    buf[n < size ? n : size - 1] = '\0';
}

int bnk__tune_train_config(const char *ctx, int ntrain, char *const *train_args,
                           const bnk_space *space, const bnk_point *x, int threads,
                           bnk_train_config *tc, char *reason, size_t size) {
    char *argv[MAX_ARGV];
    char opts[MAX_PARAMS][64], values[MAX_PARAMS][48], thr[16];
    int argc = 0;
    argv[argc++] = "train";
    bool has_threads = false;
    for (int i = 0; i < ntrain && argc < MAX_ARGV; i++) {
        argv[argc++] = train_args[i];
        has_threads |= strncmp(train_args[i], "--threads", 9) == 0;
    }
    for (int i = 0; i < space->n && argc + 2 < MAX_ARGV; i++) {
        if (!bnk_space_active(space, x, i) || isnan(x->v[i])) continue;
        bnk__tune_option(space->params[i].name, opts[i], sizeof opts[i]);
        bnk_space_value_str(space, i, x->v[i], values[i], sizeof values[i]);
        if (space->params[i].kind == BNK_PARAM_FLOAT) /* full precision for the trial */
            snprintf(values[i], sizeof values[i], "%.17g", x->v[i]);
        argv[argc++] = opts[i];
        argv[argc++] = values[i];
    }
    if (threads > 0 && !has_threads && argc + 2 <= MAX_ARGV) {
        snprintf(thr, sizeof thr, "%d", threads);
        argv[argc++] = "--threads";
        argv[argc++] = thr;
    }
    *tc = bnk_train_config_default();
    bnk__cli_capture(reason, size);
    int rc = bnk__cli_train_config(ctx, argc, argv, tc, NULL);
    bnk__cli_capture(NULL, 0);
    return rc;
}

int bnk__tune_study_config(const char *ctx, int argc, char **argv, const bnk_cli_optgroup *group,
                           int ntrain, const char *const *train_args, bnk_study_config *cfg) {
    *cfg = bnk_study_config_default();
    const char *v;
    int rc;
    if ((v = bnk__cli_value(group, "name")) &&
        snprintf(cfg->name, sizeof cfg->name, "%s", v) >= (int)sizeof cfg->name) {
        bnk__cli_error(ctx, "--name: longer than %zu characters", sizeof cfg->name - 1);
        return BNK_CLI_USAGE;
    }
    bnk_sampler_kind kind = BNK_SAMPLER_TPE;
    if ((v = bnk__cli_value(group, "sampler")) && bnk_sampler_kind_parse(v, &kind) != BNK_OK) {
        bnk__cli_error(ctx, "--sampler: %s", bnk_errmsg());
        return BNK_CLI_USAGE;
    }
    cfg->sampler = bnk_sampler_config_default(kind);
    int64_t n;
    if ((v = bnk__cli_value(group, "seed"))) {
        if ((rc = bnk__cli_parse_int64(ctx, "--seed", v, &n)) != BNK_CLI_OK) return rc;
        cfg->sampler.seed = (uint64_t)n;
    }
    if ((v = bnk__cli_value(group, "grid-points"))) {
        if ((rc = bnk__cli_parse_int64(ctx, "--grid-points", v, &n)) != BNK_CLI_OK) return rc;
        if (n < 1 || n > 1000) {
            bnk__cli_error(ctx, "--grid-points must be in [1, 1000], got %lld", (long long)n);
            return BNK_CLI_USAGE;
        }
        cfg->sampler.grid_points = (int)n;
    }
    cfg->sampler.multivariate = bnk__cli_value(group, "multivariate") != NULL;
    bnk_pruner_kind pk = BNK_PRUNER_MEDIAN;
    if ((v = bnk__cli_value(group, "pruner")) && bnk_pruner_kind_parse(v, &pk) != BNK_OK) {
        bnk__cli_error(ctx, "--pruner: %s", bnk_errmsg());
        return BNK_CLI_USAGE;
    }
    cfg->pruner = bnk_pruner_config_default(pk);
    if ((v = bnk__cli_value(group, "prune-percentile"))) {
        double p;
        if ((rc = bnk__cli_parse_double(ctx, "--prune-percentile", v, &p)) != BNK_CLI_OK) return rc;
        if (!(p > 0 && p <= 100)) {
            bnk__cli_error(ctx, "--prune-percentile must be in (0, 100], got %s", v);
            return BNK_CLI_USAGE;
        }
        cfg->pruner.percentile = p;
    }

    /* the search space: the built-in one, then every --param in order */
    const char *defs[MAX_PARAMS + 1];
    int ndefs = bnk__cli_collect(argc, argv, "param", defs, MAX_PARAMS + 1);
    bnk_space_init(&cfg->space);
    if ((ndefs == 0 || bnk__cli_value(group, "default-space")) &&
        bnk_space_default_bn(&cfg->space) != BNK_OK) {
        bnk__cli_error(ctx, "%s", bnk_errmsg());
        return BNK_CLI_FAIL;
    }
    for (int i = 0; i < ndefs; i++)
        if (i == MAX_PARAMS || bnk_space_add(&cfg->space, defs[i]) != BNK_OK) {
            bnk__cli_error(ctx, "--param %s: %s", i < MAX_PARAMS ? defs[i] : "...",
                           i < MAX_PARAMS ? bnk_errmsg() : "too many parameters");
            return BNK_CLI_USAGE;
        }

    /* the fixed training options, kept as one string for the study file */
    size_t len = 0;
    for (int i = 0; i < ntrain; i++) {
        if (strchr(train_args[i], ' ') || strchr(train_args[i], '\t')) {
            bnk__cli_error(ctx,
                           "training option '%s' contains a space; use --opt=value without "
                           "spaces",
                           train_args[i]);
            return BNK_CLI_USAGE;
        }
        int w = snprintf(cfg->train_args + len, sizeof cfg->train_args - len, "%s%s", i ? " " : "",
                         train_args[i]);
        if (w < 0 || (size_t)w >= sizeof cfg->train_args - len) {
            bnk__cli_error(ctx, "the training options are longer than %zu characters",
                           sizeof cfg->train_args - 1);
            return BNK_CLI_USAGE;
        }
        len += (size_t)w;
    }
    /* for `bnkit tune`, every parameter must name a training option and the fixed options must
     * parse; `bnkit ask` serves other training loops, whose parameters are their own */
    if (!train_args) return BNK_CLI_OK;
    char opt[64];
    for (int i = 0; i < cfg->space.n; i++) {
        bnk__tune_option(cfg->space.params[i].name, opt, sizeof opt);
        if (!bnk__cli_train_has_option(opt + 2)) {
            bnk__cli_error(ctx,
                           "--param %s: %s is not a `bnkit train` option (bn.momentum means "
                           "--bn-momentum, lr means --lr)",
                           cfg->space.params[i].name, opt);
            return BNK_CLI_USAGE;
        }
    }
    bnk_train_config tc;
    char reason[256];
    bnk_space none;
    bnk_space_init(&none);
    if (bnk__tune_train_config(ctx, ntrain, (char *const *)train_args, &none, NULL, 0, &tc, reason,
                               sizeof reason) != BNK_CLI_OK) {
        bnk__cli_error(ctx, "training options after --: %s", reason);
        return BNK_CLI_USAGE;
    }
    return BNK_CLI_OK;
}

/* The value of parameter i for tables: momentum also in PyTorch's convention. */
static void cell(const bnk_space *space, int i, double v, char *buf, size_t size) {
    bnk_space_value_str(space, i, v, buf, size);
    if (strcmp(space->params[i].name, "bn.momentum") == 0 && !isnan(v))
        snprintf(buf, size, "%.4g (pt %.3g)", v, 1.0 - v);
}

static int by_loss(const void *a, const void *b) {
    const bnk_trial *x = *(const bnk_trial *const *)a, *y = *(const bnk_trial *const *)b;
    return (x->loss > y->loss) - (x->loss < y->loss);
}

/* Appends printf output to buf[size] at *len, truncating at the end of the buffer. */
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...) BNK__PRINTF(4, 5);
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...) {
    if (*len >= size) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    if (w > 0) *len = *len + (size_t)w < size ? *len + (size_t)w : size - 1;
}

/* True when r bounds anything beyond its open default [open_lo, inf). */
static bool bounds(bnk_range r, double open_lo) {
    return r.lo > open_lo || r.hi < INFINITY;
}

/* True when bn clips its batch or running statistics (the source document's extension, which
 * neither PyTorch nor Keras has). */
static bool clips(const bnk_bn_config *bn) {
    return bounds(bn->mean_clip, -INFINITY) || bounds(bn->var_clip, 0.0) ||
           bounds(bn->running_mean_clip, -INFINITY) || bounds(bn->running_var_clip, 0.0) ||
           isfinite(bn->rel_clip_r) || isfinite(bn->rel_clip_d);
}

/* The BN layer arguments of PyTorch and Keras that reproduce the BN configuration bn, or the
 * closest they have with what is missing named. */
static void peer_args(const bnk_bn_config *bn, char *pytorch, size_t psize, char *keras,
                      size_t ksize) {
    char pt_mom[32];
    size_t len = 0;
    if (bn->cumulative)
        snprintf(pt_mom, sizeof pt_mom, "None");
    else
        snprintf(pt_mom, sizeof pt_mom, "%.6g", 1.0 - bn->momentum);
    const char *mode = bn->normalize_with == BNK_NORM_RUNNING  ? "normalize_with=running"
                       : bn->normalize_with == BNK_NORM_RENORM ? "normalize_with=renorm"
                                                               : NULL;
    const char *clip = clips(bn) ? "clipped statistics" : NULL;
    if (mode || clip)
        snprintf(pytorch, psize, "no built-in equivalent (%s%s%s)", mode ? mode : "",
                 mode && clip ? ", " : "", clip ? clip : "");
    else
        snprintf(pytorch, psize, "nn.BatchNorm1d/2d(C, eps=%g, momentum=%s%s)", bn->eps, pt_mom,
                 bn->center && bn->scale ? "" : ", affine=False");
    append(keras, ksize, &len, "BatchNormalization(momentum=%.6g, epsilon=%g", bn->momentum,
           bn->eps);
    if (!bn->center) append(keras, ksize, &len, ", center=False");
    if (!bn->scale) append(keras, ksize, &len, ", scale=False");
    if (bn->normalize_with == BNK_NORM_RENORM)
        append(keras, ksize, &len,
               ", renorm=True, renorm_clipping={'rmin': %.6g, 'rmax': %.6g, 'dmax': %.6g}",
               1.0 / bn->rmax, bn->rmax, bn->dmax);
    append(keras, ksize, &len, ")%s%s",
           bn->normalize_with == BNK_NORM_RUNNING ? "  (Keras has no running mode)" : "",
           clip ? "  (Keras has no clipped statistics)" : "");
}

bool bnk__tune_best_lines(const bnk_study_config *cfg, const bnk_point *x, char *command,
                          size_t csize, char *pytorch, size_t psize, char *keras, size_t ksize) {
    const bnk_space *s = &cfg->space;
    size_t len = 0;
    command[0] = pytorch[0] = keras[0] = '\0';
    append(command, csize, &len, "bnkit train");
    if (cfg->train_args[0]) append(command, csize, &len, " %s", cfg->train_args);
    for (int i = 0; i < s->n; i++) {
        if (isnan(x->v[i])) continue;
        char opt[64], val[48];
        bnk__tune_option(s->params[i].name, opt, sizeof opt);
        bnk_space_value_str(s, i, x->v[i], val, sizeof val);
        append(command, csize, &len, " %s %s", opt, val);
    }
    char *args[256];
    char copy[sizeof cfg->train_args];
    int nargs = 0;
    snprintf(copy, sizeof copy, "%s", cfg->train_args);
    for (char *tok = strtok(copy, " "); tok && nargs < 256; tok = strtok(NULL, " "))
        args[nargs++] = tok;
    bnk_train_config tc;
    char reason[256];
    if (bnk__tune_train_config("tune", nargs, args, s, x, 0, &tc, reason, sizeof reason) !=
        BNK_CLI_OK)
        return false;
    peer_args(&tc.bn, pytorch, psize, keras, ksize);
    return true;
}

const bnk_trial *bnk__tune_print_summary(FILE *f, const bnk_study_config *cfg,
                                         const bnk_trial *trials, int64_t n, int top) {
    int64_t count[4] = {0};
    const bnk_trial **done = malloc((size_t)(n + 1) * sizeof *done);
    int64_t nd = 0;
    for (int64_t i = 0; i < n; i++) {
        count[trials[i].state]++;
        if (trials[i].state == BNK_TRIAL_COMPLETE && done) done[nd++] = &trials[i];
    }
    fprintf(f, "trials: %lld complete, %lld pruned, %lld failed, %lld running\n",
            (long long)count[BNK_TRIAL_COMPLETE], (long long)count[BNK_TRIAL_PRUNED],
            (long long)count[BNK_TRIAL_FAILED], (long long)count[BNK_TRIAL_RUNNING]);
    if (!done || nd == 0) {
        free(done);
        fprintf(f, "no complete trial yet\n");
        return NULL;
    }
    qsort(done, (size_t)nd, sizeof *done, by_loss);
    const bnk_space *s = &cfg->space;
    fprintf(f, "best trials (%s, %s is better):\n  trial  %-10s", cfg->objective,
            cfg->maximize ? "higher" : "lower", "value");
    for (int i = 0; i < s->n; i++) fprintf(f, "  %-18s", s->params[i].name);
    fprintf(f, "\n");
    for (int64_t k = 0; k < nd && k < top; k++) {
        fprintf(f, "  %5lld  %-10.4f", (long long)done[k]->number, done[k]->value);
        for (int i = 0; i < s->n; i++) {
            char buf[48];
            cell(s, i, done[k]->x.v[i], buf, sizeof buf);
            fprintf(f, "  %-18s", buf);
        }
        fprintf(f, "\n");
    }
    const bnk_trial *best = done[0];
    free(done);
    /* the best configuration as a command, and as the peers' BN arguments */
    char command[4096], pytorch[256], keras[512];
    bool peers = bnk__tune_best_lines(cfg, &best->x, command, sizeof command, pytorch,
                                      sizeof pytorch, keras, sizeof keras);
    fprintf(f, "best configuration (trial %lld):\n  %s\n", (long long)best->number, command);
    if (peers) fprintf(f, "  PyTorch: %s\n  Keras:   %s\n", pytorch, keras);
    return best;
}

static json_t *trial_json(const bnk_study_config *cfg, const bnk_trial *t) {
    json_t *o = json_object(), *params = json_object(), *curve = json_array();
    json_object_set_new(o, "id", json_integer(t->id));
    json_object_set_new(o, "number", json_integer(t->number));
    json_object_set_new(o, "state", json_string(bnk_trial_state_str(t->state)));
    for (int i = 0; i < cfg->space.n; i++) {
        const double v = t->x.v[i];
        const bnk_param *p = &cfg->space.params[i];
        if (isnan(v)) continue;
        json_object_set_new(params, p->name,
                            p->kind == BNK_PARAM_CAT   ? json_string(p->choices[(int)v])
                            : p->kind == BNK_PARAM_INT ? json_integer((json_int_t)v)
                                                       : json_real(v));
        if (strcmp(p->name, "bn.momentum") == 0)
            json_object_set_new(params, "bn.momentum_pytorch", json_real(1.0 - v));
    }
    json_object_set_new(o, "params", params);
    json_object_set_new(o, "value", isfinite(t->value) ? json_real(t->value) : json_null());
    /* intermediate values back in the objective's units */
    for (int64_t k = 0; k < t->ncurve; k++) {
        double loss = t->curve[k];
        json_array_append_new(curve, isfinite(loss) ? json_real(cfg->maximize ? -loss : loss)
                                                    : json_null());
    }
    json_object_set_new(o, "intermediate", curve);
    json_object_set_new(o, "worker", json_string(t->worker));
    json_object_set_new(o, "reason", t->reason[0] ? json_string(t->reason) : json_null());
    json_object_set_new(o, "epochs", bnk__report_epochs_json(t)); /* the trainer's diagnostics */
    return o;
}

static void dump(FILE *f, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (s) fprintf(f, "%s\n", s);
    free(s);
    json_decref(j);
}

void bnk__tune_print_trial_json(FILE *f, const bnk_study_config *cfg, const bnk_trial *t) {
    dump(f, trial_json(cfg, t));
}

void bnk__tune_print_json_summary(FILE *f, const bnk_study_config *cfg, const bnk_trial *trials,
                                  int64_t n, const bnk_trial *best, double test_accuracy) {
    json_t *o = json_object();
    int64_t count[4] = {0};
    for (int64_t i = 0; i < n; i++) count[trials[i].state]++;
    json_object_set_new(o, "study", json_string(cfg->name));
    json_object_set_new(o, "sampler", json_string(bnk_sampler_kind_str(cfg->sampler.kind)));
    json_object_set_new(o, "complete", json_integer(count[BNK_TRIAL_COMPLETE]));
    json_object_set_new(o, "pruned", json_integer(count[BNK_TRIAL_PRUNED]));
    json_object_set_new(o, "failed", json_integer(count[BNK_TRIAL_FAILED]));
    json_object_set_new(o, "best", best ? trial_json(cfg, best) : json_null());
    json_object_set_new(o, "test_accuracy",
                        isfinite(test_accuracy) ? json_real(test_accuracy) : json_null());
    dump(f, o);
}
