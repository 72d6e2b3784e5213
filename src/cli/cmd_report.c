/* `bnkit report`: the HTML report of a study (charts, importance, summary, the best
 * configuration as a `bnkit train` command and as PyTorch/Keras arguments) and CSV/JSON exports
 * of every trial. The library writes the files (bnkit/report.h); the CLI supplies the parts only
 * it knows: how the best point becomes `bnkit train` options and peer-framework arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnkit/report.h"
#include "cli/tune_common.h"

static const bnk_cli_opt report_opts[] = {
    {"study", "FILE", "SQLite study file"},
    {"name", "NAME", "study name inside the file (the file's only study)"},
    {"out", "FILE.html", "write the HTML report (self-contained: no scripts, no network)"},
    {"csv", "FILE.csv", "write every trial as CSV (one row per trial)"},
    {"json", "FILE.json", "write the study and every trial as JSON"},
    {"top", "Q", "fraction of complete trials counted as top trials for importance (0.1)"},
    {"title", "TEXT", "page title (Tuning report: <study name>)"},
    {"help", NULL, "print this help"},
};
enum { N_REPORT = sizeof report_opts / sizeof report_opts[0] };

int bnk__cmd_report(int argc, char **argv) {
    const char *vals[N_REPORT];
    bnk_cli_optgroup g = {"", report_opts, N_REPORT, vals};
    int rc;
    if (bnk__cli_parse_or_help(
            &rc, "report", argc, argv, &g,
            "usage: bnkit report --study FILE [--out report.html] [--csv FILE] [--json FILE]\n\n"
            "Writes a one-file HTML report of a study: optimisation history, parameter\n"
            "importance (PED-ANOVA), parallel coordinates, slice plots, learning curves, a\n"
            "plain-language summary and the best configuration as a `bnkit train` command and\n"
            "as PyTorch/Keras arguments. --csv and --json export every trial.\n\noptions:\n"))
        return rc;
    const char *path = bnk__cli_value(&g, "study"), *out = bnk__cli_value(&g, "out"),
               *csv = bnk__cli_value(&g, "csv"), *json = bnk__cli_value(&g, "json");
    if (!path) {
        bnk__cli_error("report", "--study FILE is required");
        return BNK_CLI_USAGE;
    }
    if (!out && !csv && !json) {
        bnk__cli_error("report", "nothing to write: give --out, --csv or --json");
        return BNK_CLI_USAGE;
    }
    bnk_report_options opt = bnk_report_options_default();
    const char *v = bnk__cli_value(&g, "top");
    if (v) {
        if ((rc = bnk__cli_parse_double("report", "--top", v, &opt.top_quantile)) != BNK_CLI_OK)
            return rc;
        if (!(opt.top_quantile > 0 && opt.top_quantile <= 1)) {
            bnk__cli_error("report", "--top must be in (0, 1], got %s", v);
            return BNK_CLI_USAGE;
        }
    }
    opt.title = bnk__cli_value(&g, "title");
    opt.source = path;

    bnk_study *study = NULL;
    bnk_status st = bnk_study_open_existing(&study, path, bnk__cli_value(&g, "name"));
    if (st != BNK_OK) {
        bnk__cli_error("report", "%s: %s", path, bnk_errmsg());
        return bnk__cli_exit_for(st);
    }
    const bnk_study_config *cfg = bnk_study_config_get(study);
    bnk_trial *trials = NULL;
    int64_t n = 0;
    st = bnk_study_trials(study, &trials, &n);
    /* the best configuration in ready-to-paste forms, as `bnkit tune` prints it */
    char command[4096] = "", pytorch[256] = "", keras[512] = "";
    const bnk_trial *best = NULL;
    for (int64_t i = 0; st == BNK_OK && i < n; i++)
        if (trials[i].state == BNK_TRIAL_COMPLETE && isfinite(trials[i].loss) &&
            (!best || trials[i].loss < best->loss))
            best = &trials[i];
    if (best) {
        bool peers = bnk__tune_best_lines(cfg, &best->x, command, sizeof command, pytorch,
                                          sizeof pytorch, keras, sizeof keras);
        opt.train_command = command;
        opt.pytorch_args = peers ? pytorch : NULL;
        opt.keras_args = peers ? keras : NULL;
    }
    if (st != BNK_OK) bnk__cli_error("report", "%s: %s", path, bnk_errmsg());
    /* the writers' messages name their file */
    if (st == BNK_OK && out && (st = bnk_report_write_html(out, cfg, trials, n, &opt)) != BNK_OK)
        bnk__cli_error("report", "%s", bnk_errmsg());
    if (st == BNK_OK && csv && (st = bnk_report_write_csv(csv, cfg, trials, n)) != BNK_OK)
        bnk__cli_error("report", "%s", bnk_errmsg());
    if (st == BNK_OK && json && (st = bnk_report_write_json(json, cfg, trials, n)) != BNK_OK)
        bnk__cli_error("report", "%s", bnk_errmsg());
    bnk_trials_free(trials, n);
    bnk_study_close(study);
    return st == BNK_OK ? BNK_CLI_OK : bnk__cli_exit_for(st);
}
