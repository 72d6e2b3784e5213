/* cli/cli.h — internal pieces of the `bnkit` command (not installed).
 *
 * Every subcommand is a function `int bnk__cmd_<name>(int argc, char **argv)` with argv[0] the
 * command name; it returns the process exit status: BNK_CLI_OK (0), BNK_CLI_FAIL (1, runtime
 * failure: unreadable or corrupt file, write failure, out of memory) or BNK_CLI_USAGE (2, bad
 * command line, invalid hyperparameter, shape mismatch). Only the CLI prints; every error is ONE
 * line on stderr, `bnkit: <context>: <message>`, written with bnk__cli_error().
 *
 * Options (args.c) are long only and described by tables of bnk_cli_opt, grouped with a name
 * prefix so that one table can serve several commands:
 *
 *     static const bnk_cli_opt opts[] = {{"x", "X.npy", "input"}, {"infer", NULL, "..."}};
 *     const char *vals[2], *bn_vals[BNK_CLI_BN_NOPTS];
 *     bnk_cli_optgroup groups[] = {{"", opts, 2, vals},
 *                                  {"bn-", bnk__cli_bn_opts, BNK_CLI_BN_NOPTS, bn_vals}};
 *     int rc = bnk__cli_parse("train", argc, argv, groups, 2, NULL, 0, NULL);
 *     bnk_bn_config cfg = bnk_bn_config_default();
 *     if (rc == 0) rc = bnk__cli_bn_apply("train", &groups[1], &cfg);  // --bn-momentum, ...
 */
#ifndef BNKIT_CLI_CLI_H
#define BNKIT_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bnkit/bn.h"
#include "bnkit/status.h"
#include "core/internal.h"

/* PROJECT_VERSION of CMakeLists.txt; hardcoded until the build generates a version header. */
#define BNK_CLI_VERSION "0.1.0"

enum { BNK_CLI_OK = 0, BNK_CLI_FAIL = 1, BNK_CLI_USAGE = 2 };

/* Prints "bnkit: <ctx>: <message>\n" to stderr (or "bnkit: <message>" when ctx is NULL). The
 * message must not contain a newline. */
void bnk__cli_error(const char *ctx, const char *fmt, ...) BNK__PRINTF(2, 3);

/* While buf is not NULL, bnk__cli_error stores its message in buf (size bytes) on this thread
 * instead of printing it: for errors that become data, such as a trial's failure reason.
 * bnk__cli_capture(NULL, 0) prints again. */
void bnk__cli_capture(char *buf, size_t size);

/* The exit status for a library error: BNK_CLI_USAGE for what the user fixes on the command line
 * or in the inputs' shapes (PARAM, BATCH, SHAPE, SIZE, UNSUPPORTED), BNK_CLI_FAIL otherwise (IO,
 * FORMAT, NOMEM, OVERFLOW, NULL). */
int bnk__cli_exit_for(bnk_status st);

/* ---- Option parsing (args.c) ---------------------------------------------------------------- */

/* One long option. metavar NULL: a flag that takes no value. */
typedef struct bnk_cli_opt {
    const char *name;    /* without "--" and without the group prefix: "momentum" */
    const char *metavar; /* "B", "LO:HI", "X.npy"; NULL for a flag                 */
    const char *help;    /* one line for --help                                    */
} bnk_cli_opt;

/* A table of options recognised as `--<prefix><name>`. After bnk__cli_parse, values[i] is the
 * value of the LAST occurrence of opts[i] (a repeated option: the last one wins, as in most
 * Unix tools, so a script can append an override), "" for a flag that was given, and NULL when
 * the option was absent. */
typedef struct bnk_cli_optgroup {
    const char *prefix;
    const bnk_cli_opt *opts;
    size_t count;
    const char **values; /* [count], written by bnk__cli_parse */
} bnk_cli_optgroup;

/* Parses argv[1..argc-1] (argv[0] is the command name) against the groups.
 *   --name=value   value is everything after the first '='; an empty value is an error
 *   --name value   the next argument, whatever it looks like (so negative numbers such as
 *                  `--mean-clip -1:1` work), unless it starts with "--": then the value is
 *                  missing (write --name=--odd to pass such a value)
 *   --flag         flags take no value; `--flag=...` is an error
 *   --             ends the options; the rest are positional arguments
 * Positional arguments go to pos[0..maxpos-1] and their number to *npos; more than maxpos of
 * them (or any when pos is NULL) is an error. Single-dash words ("-x") are unknown options, a
 * lone "-" is positional. Returns BNK_CLI_OK, or BNK_CLI_USAGE after printing the reason, which
 * names the option ("unknown option --foo", "--x needs a value"). */
int bnk__cli_parse(const char *ctx, int argc, char **argv, bnk_cli_optgroup *groups, size_t ngroups,
                   const char **pos, int maxpos, int *npos);

/* The value of option `name` (without prefix) in a parsed group; NULL when absent or unknown. */
const char *bnk__cli_value(const bnk_cli_optgroup *group, const char *name);

/* Every value of a repeatable option (`--param A --param=B`) in argv, in order, after
 * bnk__cli_parse has accepted argv (which keeps only the last one): up to max of them in out;
 * returns how many there are (possibly more than max). Stops at "--". */
int bnk__cli_collect(int argc, char **argv, const char *name, const char **out, int max);

/* Prints the options of a group for --help, one per line, to f. */
void bnk__cli_print_opts(FILE *f, const bnk_cli_optgroup *group);

/* The usual start of a command with one option group: parses argv into g; on a usage error
 * (already reported) or --help (usage, a printf format with its arguments, then the options,
 * printed on stdout) returns true with the exit status in *rc; false when the command goes on. */
bool bnk__cli_parse_or_help(int *rc, const char *ctx, int argc, char **argv, bnk_cli_optgroup *g,
                            const char *usage, ...) BNK__PRINTF(6, 7);

/* Number parsers: the whole string must be consumed (strtod/strtoll with an end-pointer check,
 * no leading blanks, no overflow). On error they print "bnkit: <ctx>: <opt>: ..." and return
 * BNK_CLI_USAGE, else BNK_CLI_OK. opt is the option as the user wrote it ("--eps"). Values are
 * NOT range-checked here: "-0.5" parses, and bnk_bn_config_validate rejects it where it must. */
int bnk__cli_parse_double(const char *ctx, const char *opt, const char *s, double *out);
int bnk__cli_parse_int64(const char *ctx, const char *opt, const char *s, int64_t *out);
/* "LO:HI"; either end may be -inf / inf ("-inf:0.5"). lo > hi is left to validation. */
int bnk__cli_parse_range(const char *ctx, const char *opt, const char *s, bnk_range *out);
/* "A:B", two numbers ("3:5" for --rel-clip R:D). */
int bnk__cli_parse_pair(const char *ctx, const char *opt, const char *s, double *a, double *b);

/* ---- BN hyperparameter flags (args.c) ------------------------------------------------------- */

/* Every field of bnk_bn_config as an option: momentum, eps, cumulative, no-center, no-scale,
 * unbiased-running-var, mean-clip, var-clip, rel-clip, clip-warmup, running-mean-clip,
 * running-var-clip, normalize-with, rmax, dmax, fuse-relu. Put the table in a group with prefix
 * "" (bnkit bn) or "bn-" (bnkit train: --bn-momentum ...). */
#define BNK_CLI_BN_NOPTS 18
extern const bnk_cli_opt bnk__cli_bn_opts[BNK_CLI_BN_NOPTS];

/* Applies one BN option to cfg. name is without the prefix ("momentum"); prefix is used only in
 * messages ("--bn-momentum"). value is NULL or "" for flags. Returns BNK_CLI_OK, BNK_CLI_USAGE
 * after printing a message naming the option (bad number, unknown --normalize-with), or -1
 * without printing when name is not a BN option. */
int bnk__cli_bn_flag(const char *ctx, const char *prefix, const char *name, const char *value,
                     bnk_bn_config *cfg);

/* Applies every option given in a parsed group built on bnk__cli_bn_opts, then validates cfg
 * with bnk_bn_config_validate ("bnkit: <ctx>: eps must be finite and > 0, got 0"). Returns
 * BNK_CLI_OK or BNK_CLI_USAGE. */
int bnk__cli_bn_apply(const char *ctx, const bnk_cli_optgroup *group, bnk_bn_config *cfg);

/* ---- Commands ------------------------------------------------------------------------------- */

int bnk__cmd_bn(int argc, char **argv);
int bnk__cmd_demo(int argc, char **argv);
int bnk__cmd_train(int argc, char **argv);
int bnk__cmd_tune(int argc, char **argv);
int bnk__cmd_ask(int argc, char **argv);
int bnk__cmd_tell(int argc, char **argv);
int bnk__cmd_trials(int argc, char **argv);
int bnk__cmd_best(int argc, char **argv);
int bnk__cmd_eval(int argc, char **argv);   /* cmd_checkpoint.c */
int bnk__cmd_export(int argc, char **argv); /* cmd_checkpoint.c */
int bnk__cmd_report(int argc, char **argv);
int bnk__cmd_bench(int argc, char **argv); /* cmd_bench.c */

/* ---- Training options (cmd_train.c), shared with `bnkit tune` -------------------------------- */

typedef struct bnk_cli_train_extras {
    bool help, json;     /* --help (help was printed), --json */
    const char *metrics; /* --metrics FILE, or NULL */
    const char *save;    /* --save FILE, or NULL */
} bnk_cli_train_extras;

struct bnk_train_config;

/* Parses `bnkit train` options (argv[0] is ignored) into cfg, which holds the defaults to start
 * from. extras NULL: --help, --json and --metrics are refused (the tuner's trial options).
 * Returns BNK_CLI_OK or BNK_CLI_USAGE after printing the reason. */
int bnk__cli_train_config(const char *ctx, int argc, char **argv, struct bnk_train_config *cfg,
                          bnk_cli_train_extras *extras);

/* Whether `bnkit train` has the option --<name> (e.g. "lr", "bn-momentum"). */
bool bnk__cli_train_has_option(const char *name);

/* ---- Checkpoints (cmd_checkpoint.c) ---------------------------------------------------------- */

struct bnk_model;

/* Checks before a long run that the directory of output file `path` (given with option opt)
 * is writable: BNK_CLI_OK, or an error printed and BNK_CLI_FAIL / BNK_CLI_USAGE. */
int bnk__cli_check_writable(const char *ctx, const char *opt, const char *path);

/* Writes model, trained with cfg, to a checkpoint at path (bnkit train --save), with the data
 * spec, the scaling and, for standardize, the training split's feature statistics. BNK_CLI_OK
 * or BNK_CLI_FAIL after printing the reason. */
int bnk__cli_save_checkpoint(const char *ctx, const char *path, struct bnk_model *model,
                             const struct bnk_train_config *cfg);

#endif /* BNKIT_CLI_CLI_H */
