/* Option parsing shared by every bnkit subcommand: long options, number parsers with end-pointer
 * checks, and the BN hyperparameter flags (see cli.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* ---- Messages and exit codes ---------------------------------------------------------------- */

static _Thread_local char *capture_buf;
static _Thread_local size_t capture_size;

void bnk__cli_capture(char *buf, size_t size) {
    capture_buf = buf;
    capture_size = size;
    if (buf && size) buf[0] = '\0';
}

void bnk__cli_error(const char *ctx, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line, whatever a library message or a file name contained. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    if (capture_buf) {
        snprintf(capture_buf, capture_size, "%s", msg);
        return;
    }
    if (ctx)
        fprintf(stderr, "bnkit: %s: %s\n", ctx, msg);
    else
        fprintf(stderr, "bnkit: %s\n", msg);
}

int bnk__cli_exit_for(bnk_status st) {
    switch (st) {
    case BNK_OK:
        return BNK_CLI_OK;
    case BNK_ERR_PARAM:
    case BNK_ERR_BATCH:
    case BNK_ERR_SHAPE:
    case BNK_ERR_SIZE:
    case BNK_ERR_UNSUPPORTED:
        return BNK_CLI_USAGE;
    default:
        return BNK_CLI_FAIL;
    }
}

/* ---- Long options --------------------------------------------------------------------------- */

/* Finds the option whose full name (prefix + name) is the len bytes at body. */
static bool find_opt(bnk_cli_optgroup *groups, size_t ngroups, const char *body, size_t len,
                     size_t *gi, size_t *oi) {
    for (size_t g = 0; g < ngroups; g++) {
        const char *prefix = groups[g].prefix ? groups[g].prefix : "";
        size_t plen = strlen(prefix);
        if (len < plen || strncmp(body, prefix, plen) != 0) continue;
        for (size_t k = 0; k < groups[g].count; k++) {
            const char *name = groups[g].opts[k].name;
            if (strlen(name) == len - plen && strncmp(body + plen, name, len - plen) == 0) {
                *gi = g;
                *oi = k;
                return true;
            }
        }
    }
    return false;
}

int bnk__cli_parse(const char *ctx, int argc, char **argv, bnk_cli_optgroup *groups, size_t ngroups,
                   const char **pos, int maxpos, int *npos) {
    for (size_t g = 0; g < ngroups; g++)
        for (size_t k = 0; k < groups[g].count; k++) groups[g].values[k] = NULL;
    int np = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (!pos || np >= maxpos) {
                bnk__cli_error(ctx, "unexpected argument '%s' (see 'bnkit %s --help')", a, ctx);
                return BNK_CLI_USAGE;
            }
            pos[np++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (a[1] != '-') {
            bnk__cli_error(ctx, "unknown option %s (options are long, e.g. --help)", a);
            return BNK_CLI_USAGE;
        }
        const char *body = a + 2;
        const char *eq = strchr(body, '=');
        size_t len = eq ? (size_t)(eq - body) : strlen(body);
        size_t g, k;
        if (!find_opt(groups, ngroups, body, len, &g, &k)) {
            bnk__cli_error(ctx, "unknown option --%.*s (see 'bnkit %s --help')", (int)len, body,
                           ctx);
            return BNK_CLI_USAGE;
        }
        const bnk_cli_opt *opt = &groups[g].opts[k];
        const char *value;
        if (!opt->metavar) {
            if (eq) {
                bnk__cli_error(ctx, "--%.*s takes no value, got '%s'", (int)len, body, eq + 1);
                return BNK_CLI_USAGE;
            }
            value = "";
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i]; /* anything, including "-1:1" and "-0.5" */
        } else {
            bnk__cli_error(ctx, "--%s needs a value (--%s %s)", body, body, opt->metavar);
            return BNK_CLI_USAGE;
        }
        if (opt->metavar && value[0] == '\0') {
            bnk__cli_error(ctx, "--%.*s: empty value (expected %s)", (int)len, body, opt->metavar);
            return BNK_CLI_USAGE;
        }
        groups[g].values[k] = value; /* a repeated option: the last one wins */
    }
    if (npos) *npos = np;
    return BNK_CLI_OK;
}

const char *bnk__cli_value(const bnk_cli_optgroup *group, const char *name) {
    for (size_t k = 0; k < group->count; k++)
        if (strcmp(group->opts[k].name, name) == 0) return group->values[k];
    return NULL;
}

void bnk__cli_print_opts(FILE *f, const bnk_cli_optgroup *group) {
    const char *prefix = group->prefix ? group->prefix : "";
    for (size_t k = 0; k < group->count; k++) {
        const bnk_cli_opt *o = &group->opts[k];
        char left[96];
        snprintf(left, sizeof left, "--%s%s%s%s", prefix, o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %-28s %s\n", left, o->help);
    }
}

/* ---- Numbers -------------------------------------------------------------------------------- */

/* Parses the number that spans exactly [s, stop): no leading blank, nothing left over, no
 * overflow. Accepts what strtod accepts (including inf, -inf and nan). */
static bool parse_span(const char *s, const char *stop, double *out) {
    if (s == stop || isspace((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != stop) return false;
    if (errno == ERANGE && isinf(v)) return false; /* 1e999; underflow to 0 or subnormal is fine */
    *out = v;
    return true;
}

int bnk__cli_parse_double(const char *ctx, const char *opt, const char *s, double *out) {
    if (!parse_span(s, s + strlen(s), out)) {
        bnk__cli_error(ctx, "%s: expected a number, got '%s'", opt, s);
        return BNK_CLI_USAGE;
    }
    return BNK_CLI_OK;
}

int bnk__cli_parse_int64(const char *ctx, const char *opt, const char *s, int64_t *out) {
    if (s[0] == '\0' || isspace((unsigned char)s[0])) {
        bnk__cli_error(ctx, "%s: expected an integer, got '%s'", opt, s);
        return BNK_CLI_USAGE;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0') {
        bnk__cli_error(ctx, "%s: expected an integer, got '%s'", opt, s);
        return BNK_CLI_USAGE;
    }
    if (errno == ERANGE) { /* long long is 64 bits on every platform bnkit targets */
        bnk__cli_error(ctx, "%s: integer out of range: '%s'", opt, s);
        return BNK_CLI_USAGE;
    }
    *out = (int64_t)v;
    return BNK_CLI_OK;
}

/* Splits "A:B" at its only colon and parses both numbers. */
static bool parse_two(const char *s, double *a, double *b) {
    const char *colon = strchr(s, ':');
    if (!colon || strchr(colon + 1, ':')) return false;
    return parse_span(s, colon, a) && parse_span(colon + 1, colon + 1 + strlen(colon + 1), b);
}

int bnk__cli_parse_range(const char *ctx, const char *opt, const char *s, bnk_range *out) {
    double lo, hi;
    if (!parse_two(s, &lo, &hi)) {
        bnk__cli_error(ctx, "%s: expected LO:HI (e.g. -1:1 or -inf:0.5), got '%s'", opt, s);
        return BNK_CLI_USAGE;
    }
    out->lo = lo;
    out->hi = hi;
    return BNK_CLI_OK;
}

int bnk__cli_parse_pair(const char *ctx, const char *opt, const char *s, double *a, double *b) {
    double x, y;
    if (!parse_two(s, &x, &y)) {
        bnk__cli_error(ctx, "%s: expected two numbers A:B (e.g. 3:5), got '%s'", opt, s);
        return BNK_CLI_USAGE;
    }
    *a = x;
    *b = y;
    return BNK_CLI_OK;
}

bool bnk__cli_parse_or_help(int *rc, const char *ctx, int argc, char **argv, bnk_cli_optgroup *g,
                            const char *usage, ...) {
    *rc = bnk__cli_parse(ctx, argc, argv, g, 1, NULL, 0, NULL);
    if (*rc != BNK_CLI_OK) return true;
    if (!bnk__cli_value(g, "help")) return false;
    va_list ap;
    va_start(ap, usage);
    vprintf(usage, ap);
    va_end(ap);
    bnk__cli_print_opts(stdout, g);
    return true;
}

/* ---- BN hyperparameters --------------------------------------------------------------------- */

const bnk_cli_opt bnk__cli_bn_opts[BNK_CLI_BN_NOPTS] = {
    {"momentum", "B", "B*running + (1-B)*batch, B in [0,1); PyTorch p = 1-B; 0.99"},
    {"eps", "E", "added to variances before the square root, > 0; 1e-3"},
    {"cumulative", NULL, "running stats = average of all updates (PyTorch None)"},
    {"no-center", NULL, "no learnable shift beta (beta = 0, no gradient)"},
    {"no-scale", NULL, "no learnable scale gamma (gamma = 1, no gradient)"},
    {"unbiased-running-var", NULL, "running var takes var*m/(m-1) (PyTorch) instead of var"},
    {"mean-clip", "LO:HI", "absolute bounds on the batch mean (ends may be -inf/inf)"},
    {"var-clip", "LO:HI", "absolute bounds on the batch variance, LO >= 0"},
    {"rel-clip", "R:D", "std in [sR/R, sR*R], mean in mR +- D*sR (running stats)"},
    {"rel-clip-r", "R", "the R of --rel-clip alone (inf: off), so that a tuner can search it"},
    {"rel-clip-d", "D", "the D of --rel-clip alone (inf: off)"},
    {"clip-warmup", "T", "steps before --rel-clip applies; 0"},
    {"running-mean-clip", "LO:HI", "bounds on the running mean after each update"},
    {"running-var-clip", "LO:HI", "bounds on the running variance after each update"},
    {"normalize-with", "MODE", "batch | running | renorm (Batch Renormalization); batch"},
    {"rmax", "R", "Batch Renorm bound on r, >= 1; 3"},
    {"dmax", "D", "Batch Renorm bound on |d|, >= 0; 5"},
    {"fuse-relu", NULL, "y <- max(y, 0) inside the kernel"},
};

int bnk__cli_bn_flag(const char *ctx, const char *prefix, const char *name, const char *value,
                     bnk_bn_config *cfg) {
    char opt[128];
    snprintf(opt, sizeof opt, "--%s%s", prefix ? prefix : "", name);
    const char *v = value ? value : "";

    if (strcmp(name, "momentum") == 0) return bnk__cli_parse_double(ctx, opt, v, &cfg->momentum);
    if (strcmp(name, "eps") == 0) return bnk__cli_parse_double(ctx, opt, v, &cfg->eps);
    if (strcmp(name, "cumulative") == 0) {
        cfg->cumulative = true;
        return BNK_CLI_OK;
    }
    if (strcmp(name, "no-center") == 0) {
        cfg->center = false;
        return BNK_CLI_OK;
    }
    if (strcmp(name, "no-scale") == 0) {
        cfg->scale = false;
        return BNK_CLI_OK;
    }
    if (strcmp(name, "unbiased-running-var") == 0) {
        cfg->unbiased_running_var = true;
        return BNK_CLI_OK;
    }
    if (strcmp(name, "mean-clip") == 0) return bnk__cli_parse_range(ctx, opt, v, &cfg->mean_clip);
    if (strcmp(name, "var-clip") == 0) return bnk__cli_parse_range(ctx, opt, v, &cfg->var_clip);
    if (strcmp(name, "rel-clip") == 0)
        return bnk__cli_parse_pair(ctx, opt, v, &cfg->rel_clip_r, &cfg->rel_clip_d);
    if (strcmp(name, "rel-clip-r") == 0)
        return bnk__cli_parse_double(ctx, opt, v, &cfg->rel_clip_r);
    if (strcmp(name, "rel-clip-d") == 0)
        return bnk__cli_parse_double(ctx, opt, v, &cfg->rel_clip_d);
    if (strcmp(name, "clip-warmup") == 0)
        return bnk__cli_parse_int64(ctx, opt, v, &cfg->clip_warmup);
    if (strcmp(name, "running-mean-clip") == 0)
        return bnk__cli_parse_range(ctx, opt, v, &cfg->running_mean_clip);
    if (strcmp(name, "running-var-clip") == 0)
        return bnk__cli_parse_range(ctx, opt, v, &cfg->running_var_clip);
    if (strcmp(name, "normalize-with") == 0) {
        if (strcmp(v, "batch") == 0)
            cfg->normalize_with = BNK_NORM_BATCH;
        else if (strcmp(v, "running") == 0)
            cfg->normalize_with = BNK_NORM_RUNNING;
        else if (strcmp(v, "renorm") == 0)
            cfg->normalize_with = BNK_NORM_RENORM;
        else {
            bnk__cli_error(ctx, "%s must be batch, running or renorm, got '%s'", opt, v);
            return BNK_CLI_USAGE;
        }
        return BNK_CLI_OK;
    }
    if (strcmp(name, "rmax") == 0) return bnk__cli_parse_double(ctx, opt, v, &cfg->rmax);
    if (strcmp(name, "dmax") == 0) return bnk__cli_parse_double(ctx, opt, v, &cfg->dmax);
    if (strcmp(name, "fuse-relu") == 0) {
        cfg->fuse_relu = true;
        return BNK_CLI_OK;
    }
    return -1;
}

int bnk__cli_bn_apply(const char *ctx, const bnk_cli_optgroup *group, bnk_bn_config *cfg) {
    for (size_t k = 0; k < group->count; k++) {
        if (!group->values[k]) continue;
        int rc = bnk__cli_bn_flag(ctx, group->prefix, group->opts[k].name, group->values[k], cfg);
        if (rc == -1) {
            bnk__cli_error(ctx, "internal error: --%s%s is not a BN option",
                           group->prefix ? group->prefix : "", group->opts[k].name);
            return BNK_CLI_FAIL;
        }
        if (rc != BNK_CLI_OK) return rc;
    }
    if (bnk_bn_config_validate(cfg) != BNK_OK) {
        bnk__cli_error(ctx, "%s", bnk_errmsg());
        return BNK_CLI_USAGE;
    }
    return BNK_CLI_OK;
}

int bnk__cli_collect(int argc, char **argv, const char *name, const char **out, int max) {
    const size_t len = strlen(name);
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) break;
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, len) != 0) continue;
        const char *value = NULL;
        if (a[2 + len] == '=')
            value = a + 3 + len;
        else if (a[2 + len] == '\0' && i + 1 < argc)
            value = argv[++i];
        if (value && n < max) out[n] = value;
        if (value) n++;
    }
    return n;
}
