/* The study commands: `bnkit ask` / `bnkit tell` (drive a study from any training loop, e.g. a
 * PyTorch script), `bnkit trials` and `bnkit best` (read a study). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/tune_common.h"

/* Opens the study of a read or tell command: the stored configuration. */
static int open_stored(const char *ctx, const char *path, const char *name, bnk_study **study) {
    if (!path) {
        bnk__cli_error(ctx, "--study FILE is required");
        return BNK_CLI_USAGE;
    }
    bnk_status st = bnk_study_open_existing(study, path, name);
    if (st != BNK_OK) {
        bnk__cli_error(ctx, "%s: %s", path, bnk_errmsg());
        return bnk__cli_exit_for(st);
    }
    return BNK_CLI_OK;
}

/* ---- ask ---------------------------------------------------------------------------------- */

static const bnk_cli_opt ask_opts[] = {
    {"study", "FILE", "SQLite study file (created on first use)"},
    {"trials", "N", "budget: answer {\"id\": null} once N trials are used (unlimited)"},
    {"worker", "NAME", "who runs the trial (ask)"},
    BNK_TUNE_STUDY_OPTS,
    {"help", NULL, "print this help"},
};
enum { N_ASK = sizeof ask_opts / sizeof ask_opts[0] };

int bnk__cmd_ask(int argc, char **argv) {
    const char *vals[N_ASK];
    bnk_cli_optgroup g = {"", ask_opts, N_ASK, vals};
    int rc = bnk__cli_parse("ask", argc, argv, &g, 1, NULL, 0, NULL);
    if (rc != BNK_CLI_OK) return rc;
    if (bnk__cli_value(&g, "help")) {
        printf("usage: bnkit ask --study FILE [--trials N] [study options]\n\n"
               "Starts a trial and prints it as JSON: {\"id\": ID, \"number\": N,\n"
               "\"params\": {...}}. The first ask creates the study from the study options; "
               "later\nones may omit them. Report with `bnkit tell`.\n\noptions:\n");
        bnk__cli_print_opts(stdout, &g);
        return BNK_CLI_OK;
    }
    const char *path = bnk__cli_value(&g, "study");
    int64_t budget = INT64_MAX;
    const char *v = bnk__cli_value(&g, "trials");
    if (v && (rc = bnk__cli_parse_int64("ask", "--trials", v, &budget)) != BNK_CLI_OK) return rc;
    /* configuration options given: create or check the study; none: use the stored one */
    static const char *const cfg_opts[] = {"sampler", "seed",  "grid-points",  "multivariate",
                                           "pruner",  "param", "default-space"};
    bool configure = false;
    for (size_t i = 0; i < sizeof cfg_opts / sizeof cfg_opts[0]; i++)
        configure |= bnk__cli_value(&g, cfg_opts[i]) != NULL;
    bnk_study *study = NULL;
    if (configure) {
        bnk_study_config cfg;
        if ((rc = bnk__tune_study_config("ask", argc, argv, &g, 0, NULL, &cfg)) != BNK_CLI_OK)
            return rc;
        if (!path) {
            bnk__cli_error("ask", "--study FILE is required");
            return BNK_CLI_USAGE;
        }
        bnk_status st = bnk_study_open(&study, path, &cfg);
        if (st != BNK_OK) {
            bnk__cli_error("ask", "%s: %s", path, bnk_errmsg());
            return bnk__cli_exit_for(st);
        }
    } else if ((rc = open_stored("ask", path, bnk__cli_value(&g, "name"), &study)) != BNK_CLI_OK) {
        return rc;
    }
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
    bnk_study_close(study);
    return st == BNK_OK ? BNK_CLI_OK : bnk__cli_exit_for(st);
}

/* ---- tell --------------------------------------------------------------------------------- */

static const bnk_cli_opt tell_opts[] = {
    {"study", "FILE", "SQLite study file"},
    {"name", "NAME", "study name inside the file (the file's only study)"},
    {"trial", "ID", "the trial id printed by `bnkit ask`"},
    {"value", "V", "the objective (final, or at --step)"},
    {"step", "S", "report an intermediate value at step S (1-based) instead of finishing"},
    {"state", "complete|pruned|failed", "how the trial ended (complete)"},
    {"reason", "TEXT", "why it failed"},
    {"help", NULL, "print this help"},
};
enum { N_TELL = sizeof tell_opts / sizeof tell_opts[0] };

int bnk__cmd_tell(int argc, char **argv) {
    const char *vals[N_TELL];
    bnk_cli_optgroup g = {"", tell_opts, N_TELL, vals};
    int rc = bnk__cli_parse("tell", argc, argv, &g, 1, NULL, 0, NULL);
    if (rc != BNK_CLI_OK) return rc;
    if (bnk__cli_value(&g, "help")) {
        printf("usage: bnkit tell --study FILE --trial ID --value V [--state S] [--reason R]\n"
               "       bnkit tell --study FILE --trial ID --step S --value V\n\n"
               "Finishes a trial, or reports an intermediate value and prints {\"prune\": "
               "true|false}.\n\noptions:\n");
        bnk__cli_print_opts(stdout, &g);
        return BNK_CLI_OK;
    }
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
    bnk_study *study = NULL;
    if ((rc = open_stored("tell", bnk__cli_value(&g, "study"), bnk__cli_value(&g, "name"),
                          &study)) != BNK_CLI_OK)
        return rc;
    bnk_status st;
    if (step > 0) {
        bool prune = false;
        st = bnk_study_report(study, id, step, value, &prune);
        if (st == BNK_OK) printf("{\"prune\": %s}\n", prune ? "true" : "false");
    } else {
        st = bnk_study_tell(study, id, state, value, bnk__cli_value(&g, "reason"));
    }
    if (st != BNK_OK) bnk__cli_error("tell", "trial %lld: %s", (long long)id, bnk_errmsg());
    bnk_study_close(study);
    return st == BNK_OK ? BNK_CLI_OK : bnk__cli_exit_for(st);
}

/* ---- trials, best ------------------------------------------------------------------------- */

static const bnk_cli_opt read_opts[] = {
    {"study", "FILE", "SQLite study file"},
    {"name", "NAME", "study name inside the file (the file's only study)"},
    {"json", NULL, "JSON output"},
    {"help", NULL, "print this help"},
};
enum { N_READ = sizeof read_opts / sizeof read_opts[0] };

static int read_study(const char *ctx, int argc, char **argv, bool best_only) {
    const char *vals[N_READ];
    bnk_cli_optgroup g = {"", read_opts, N_READ, vals};
    int rc = bnk__cli_parse(ctx, argc, argv, &g, 1, NULL, 0, NULL);
    if (rc != BNK_CLI_OK) return rc;
    if (bnk__cli_value(&g, "help")) {
        printf("usage: bnkit %s --study FILE [--name NAME] [--json]\n\n%s\n\noptions:\n", ctx,
               best_only ? "Prints the best complete trial."
                         : "Lists every trial: id, state, parameters, value, intermediate "
                           "values, failure reason.");
        bnk__cli_print_opts(stdout, &g);
        return BNK_CLI_OK;
    }
    bnk_study *study = NULL;
    if ((rc = open_stored(ctx, bnk__cli_value(&g, "study"), bnk__cli_value(&g, "name"), &study)) !=
        BNK_CLI_OK)
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
    bnk_study_close(study);
    return st == BNK_OK ? BNK_CLI_OK : bnk__cli_exit_for(st);
}

int bnk__cmd_trials(int argc, char **argv) {
    return read_study("trials", argc, argv, false);
}

int bnk__cmd_best(int argc, char **argv) {
    return read_study("best", argc, argv, true);
}
