/* The study commands: `bnkit ask` / `bnkit tell` (drive a study from any training loop, e.g. a
 * PyTorch script), `bnkit trials` and `bnkit best` (read a study). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tune_common.h"

/* Option rows shared by the commands below. */
/* clang-format off */
#define OPT_STUDY {"study", "FILE", "SQLite study file"}
#define OPT_NAME {"name", "NAME", "study name inside the file (the file's only study)"}
#define OPT_HELP {"help", NULL, "print this help"}
/* clang-format on */

/* Opens the study at path for command ctx: created or checked against cfg, or with cfg NULL
 * the stored configuration of study `name`. Reports a missing --study or a failure. */
static int open_study(const char *ctx, const char *path, const char *name,
                      const bnk_study_config *cfg, bnk_study **study) {
    if (!path) {
        bnk__cli_error(ctx, "--study FILE is required");
        return BNK_CLI_USAGE;
    }
    bnk_status st =
        cfg ? bnk_study_open(study, path, cfg) : bnk_study_open_existing(study, path, name);
    if (st != BNK_OK) {
        bnk__cli_error(ctx, "%s: %s", path, bnk_errmsg());
        return bnk__cli_exit_for(st);
    }
    return BNK_CLI_OK;
}

/* Closes the study and returns the exit status for st (its message already reported). */
static int close_study(bnk_study *study, bnk_status st) {
    bnk_study_close(study);
    return bnk__cli_exit_for(st);
}

/* ---- ask ---------------------------------------------------------------------------------- */

static const bnk_cli_opt ask_opts[] = {
    {"study", "FILE", "SQLite study file (created on first use)"},
    {"trials", "N", "budget: answer {\"id\": null} once N trials are used (unlimited)"},
    {"worker", "NAME", "who runs the trial (ask)"},
    BNK_TUNE_STUDY_OPTS,
    OPT_HELP,
};
enum { N_ASK = sizeof ask_opts / sizeof ask_opts[0] };

int bnk__cmd_ask(int argc, char **argv) {
    const char *vals[N_ASK];
    bnk_cli_optgroup g = {"", ask_opts, N_ASK, vals};
    int rc;
    if (bnk__cli_parse_or_help(&rc, "ask", argc, argv, &g,
                               "usage: bnkit ask --study FILE [--trials N] [study options]\n\n"
                               "Starts a trial and prints it as JSON: {\"id\": ID, \"number\": N,\n"
                               "\"params\": {...}}. The first ask creates the study from the study "
                               "options; later\nones may omit them. Report with `bnkit tell`.\n\n"
                               "options:\n"))
        return rc;
    const char *path = bnk__cli_value(&g, "study");
    int64_t budget = INT64_MAX;
    const char *v = bnk__cli_value(&g, "trials");
    if (v && (rc = bnk__cli_parse_int64("ask", "--trials", v, &budget)) != BNK_CLI_OK) return rc;
    /* configuration options given: create or check the study; none: use the stored one */
    static const char *const cfg_opts[] = {"sampler",      "seed",         "grid-points",
                                           "multivariate", "pruner",       "prune-percentile",
                                           "param",        "default-space"};
    bool configure = false;
    for (size_t i = 0; i < sizeof cfg_opts / sizeof cfg_opts[0]; i++)
        configure |= bnk__cli_value(&g, cfg_opts[i]) != NULL;
    bnk_study_config cfg;
    if (configure &&
        (rc = bnk__tune_study_config("ask", argc, argv, &g, 0, NULL, &cfg)) != BNK_CLI_OK)
        return rc;
    bnk_study *study = NULL;
    if ((rc = open_study("ask", path, bnk__cli_value(&g, "name"), configure ? &cfg : NULL,
                         &study)) != BNK_CLI_OK)
        return rc;
    const char *worker = bnk__cli_value(&g, "worker");
    int64_t id;
    bnk_point x;
    bnk_status st = bnk_study_ask(study, worker ? worker : "ask", budget, &id, &x);
    if (st == BNK_OK) {
        if (id < 0) {
            printf("{\"id\": null, \"reason\": \"budget used up or grid exhausted\"}\n");
        } else {
            bnk_trial *trials = NULL;
            int64_t n = 0;
            st = bnk_study_trials(study, &trials, &n);
            for (int64_t i = 0; st == BNK_OK && i < n; i++)
                if (trials[i].id == id)
                    bnk__tune_print_trial_json(stdout, bnk_study_config_get(study), &trials[i]);
            bnk_trials_free(trials, n);
        }
    }
    if (st != BNK_OK) bnk__cli_error("ask", "%s: %s", path, bnk_errmsg());
    return close_study(study, st);
}

/* ---- tell --------------------------------------------------------------------------------- */

static const bnk_cli_opt tell_opts[] = {
    OPT_STUDY,
    OPT_NAME,
    {"trial", "ID", "the trial id printed by `bnkit ask`"},
    {"value", "V", "the objective (final, or at --step)"},
    {"step", "S", "report an intermediate value at step S (1-based) instead of finishing"},
    {"state", "complete|pruned|failed", "how the trial ended (complete)"},
    {"reason", "TEXT", "why it failed"},
    {"train-loss", "L", "with --step: the epoch's training loss (kept for the report)"},
    {"train-accuracy", "A", "with --step: the epoch's training accuracy"},
    {"val-loss", "L", "with --step: the epoch's validation loss"},
    {"val-accuracy", "A", "with --step: the epoch's validation accuracy"},
    {"overfitting", NULL, "with --step: the trainer flagged overfitting this epoch"},
    {"vanishing-gradients", NULL, "with --step: the trainer flagged vanishing gradients"},
    OPT_HELP,
};
enum { N_TELL = sizeof tell_opts / sizeof tell_opts[0] };

/* The diagnostics options of `tell --step`: *any true when at least one was given. */
static int tell_diag(const bnk_cli_optgroup *g, bnk_trial_epoch *e, bool *any) {
    static const char *const names[] = {"train-loss", "train-accuracy", "val-loss", "val-accuracy"};
    double *fields[] = {&e->train_loss, &e->train_accuracy, &e->val_loss, &e->val_accuracy};
    *e = bnk_trial_epoch_empty();
    *any = false;
    for (int k = 0; k < 4; k++) {
        const char *v = bnk__cli_value(g, names[k]);
        if (!v) continue;
        char opt[32];
        snprintf(opt, sizeof opt, "--%s", names[k]);
        const int rc = bnk__cli_parse_double("tell", opt, v, fields[k]);
        if (rc != BNK_CLI_OK) return rc;
        *any = true;
    }
    e->overfitting = bnk__cli_value(g, "overfitting") != NULL;
    e->vanishing_gradients = bnk__cli_value(g, "vanishing-gradients") != NULL;
    *any |= e->overfitting || e->vanishing_gradients;
    return BNK_CLI_OK;
}

int bnk__cmd_tell(int argc, char **argv) {
    const char *vals[N_TELL];
    bnk_cli_optgroup g = {"", tell_opts, N_TELL, vals};
    int rc;
    if (bnk__cli_parse_or_help(
            &rc, "tell", argc, argv, &g,
            "usage: bnkit tell --study FILE --trial ID --value V [--state S] "
            "[--reason R]\n"
            "       bnkit tell --study FILE --trial ID --step S --value V "
            "[--train-loss L ...]\n\n"
            "Finishes a trial, or reports an intermediate value (and optionally the "
            "epoch's\ndiagnostics, shown by `bnkit report`) and prints "
            "{\"prune\": true|false}.\n\noptions:\n"))
        return rc;
    int64_t id = -1, step = 0;
    double value = NAN;
    const char *v;
    if (!(v = bnk__cli_value(&g, "trial"))) {
        bnk__cli_error("tell", "--trial ID is required");
        return BNK_CLI_USAGE;
    }
    if ((rc = bnk__cli_parse_int64("tell", "--trial", v, &id)) != BNK_CLI_OK) return rc;
    if ((v = bnk__cli_value(&g, "value")) &&
        (rc = bnk__cli_parse_double("tell", "--value", v, &value)) != BNK_CLI_OK)
        return rc;
    if ((v = bnk__cli_value(&g, "step")) &&
        (rc = bnk__cli_parse_int64("tell", "--step", v, &step)) != BNK_CLI_OK)
        return rc;
    bnk_trial_state state = BNK_TRIAL_COMPLETE;
    if ((v = bnk__cli_value(&g, "state"))) {
        if (strcmp(v, "complete") == 0)
            state = BNK_TRIAL_COMPLETE;
        else if (strcmp(v, "pruned") == 0)
            state = BNK_TRIAL_PRUNED;
        else if (strcmp(v, "failed") == 0)
            state = BNK_TRIAL_FAILED;
        else {
            bnk__cli_error("tell", "--state: unknown value '%s' (complete, pruned, failed)", v);
            return BNK_CLI_USAGE;
        }
    }
    if (state != BNK_TRIAL_FAILED && !bnk__cli_value(&g, "value")) {
        bnk__cli_error("tell", "--value V is required (or --state failed)");
        return BNK_CLI_USAGE;
    }
    if (bnk__cli_value(&g, "step") && (step < 1 || bnk__cli_value(&g, "state"))) {
        bnk__cli_error("tell", "--step must be >= 1 and cannot be combined with --state");
        return BNK_CLI_USAGE;
    }
    bnk_trial_epoch diag;
    bool have_diag;
    if ((rc = tell_diag(&g, &diag, &have_diag)) != BNK_CLI_OK) return rc;
    if (have_diag && step < 1) {
        bnk__cli_error("tell", "--train-loss, --val-loss, ... need --step (they describe an "
                               "epoch)");
        return BNK_CLI_USAGE;
    }
    bnk_study *study = NULL;
    if ((rc = open_study("tell", bnk__cli_value(&g, "study"), bnk__cli_value(&g, "name"), NULL,
                         &study)) != BNK_CLI_OK)
        return rc;
    bnk_status st;
    if (step > 0) {
        bool prune = false;
        st = bnk_study_report_ex(study, id, step, value, have_diag ? &diag : NULL, &prune);
        if (st == BNK_OK) printf("{\"prune\": %s}\n", prune ? "true" : "false");
    } else {
        st = bnk_study_tell(study, id, state, value, bnk__cli_value(&g, "reason"));
    }
    if (st != BNK_OK) bnk__cli_error("tell", "trial %lld: %s", (long long)id, bnk_errmsg());
    return close_study(study, st);
}

/* ---- trials, best ------------------------------------------------------------------------- */

static const bnk_cli_opt read_opts[] = {
    OPT_STUDY,
    OPT_NAME,
    {"json", NULL, "JSON output"},
    OPT_HELP,
};
enum { N_READ = sizeof read_opts / sizeof read_opts[0] };

static int read_study(const char *ctx, int argc, char **argv, bool best_only) {
    const char *vals[N_READ];
    bnk_cli_optgroup g = {"", read_opts, N_READ, vals};
    int rc;
    if (bnk__cli_parse_or_help(
            &rc, ctx, argc, argv, &g,
            "usage: bnkit %s --study FILE [--name NAME] [--json]\n\n%s\n\noptions:\n", ctx,
            best_only ? "Prints the best complete trial."
                      : "Lists every trial: id, state, parameters, value, intermediate "
                        "values, failure reason."))
        return rc;
    bnk_study *study = NULL;
    if ((rc = open_study(ctx, bnk__cli_value(&g, "study"), bnk__cli_value(&g, "name"), NULL,
                         &study)) != BNK_CLI_OK)
        return rc;
    const bnk_study_config *cfg = bnk_study_config_get(study);
    const bool json = bnk__cli_value(&g, "json") != NULL;
    bnk_trial *trials = NULL;
    int64_t n = 0;
    bnk_status st = bnk_study_trials(study, &trials, &n);
    if (st == BNK_OK && best_only) {
        const bnk_trial *best = NULL;
        for (int64_t i = 0; i < n; i++)
            if (trials[i].state == BNK_TRIAL_COMPLETE && (!best || trials[i].loss < best->loss))
                best = &trials[i];
        if (json)
            best ? bnk__tune_print_trial_json(stdout, cfg, best) : (void)printf("null\n");
        else
            bnk__tune_print_summary(stdout, cfg, trials, n, 1);
    } else if (st == BNK_OK && json) {
        printf("[");
        for (int64_t i = 0; i < n; i++) {
            if (i) printf(",");
            bnk__tune_print_trial_json(stdout, cfg, &trials[i]);
        }
        printf("]\n");
    } else if (st == BNK_OK) {
        printf("%5s  %-8s  %-10s", "trial", "state", cfg->objective);
        for (int i = 0; i < cfg->space.n; i++) printf("  %-14s", cfg->space.params[i].name);
        printf("  reason\n");
        for (int64_t k = 0; k < n; k++) {
            const bnk_trial *t = &trials[k];
            printf("%5lld  %-8s  %-10.4f", (long long)t->number, bnk_trial_state_str(t->state),
                   t->value);
            for (int i = 0; i < cfg->space.n; i++) {
                char buf[32];
                bnk_space_value_str(&cfg->space, i, t->x.v[i], buf, sizeof buf);
                printf("  %-14s", buf);
            }
            printf("  %s\n", t->reason);
        }
    }
    if (st != BNK_OK) bnk__cli_error(ctx, "%s", bnk_errmsg());
    bnk_trials_free(trials, n);
    return close_study(study, st);
}

int bnk__cmd_trials(int argc, char **argv) {
    return read_study("trials", argc, argv, false);
}

int bnk__cmd_best(int argc, char **argv) {
    return read_study("best", argc, argv, true);
}
