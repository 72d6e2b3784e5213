/* `bnkit bn`: one BN forward (training or inference), and optionally the backward, on .npy files.
 *
 *   bnkit bn --layout nc|nchw|nhwc|nchw16c|nchw8c --x X.npy [--gamma G.npy] [--beta B.npy]
 *            [--running-mean RM.npy] [--running-var RV.npy] [--dy DY.npy] [--infer] [--step T]
 *            --out DIR [BN flags]
 *
 * Order of work, so that a failure leaves nothing behind: parse and validate the command line
 * and the configuration; read every input; check every shape; compute everything; then create
 * DIR and write the outputs, removing those already written (and DIR, if this run created it)
 * when a write fails. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "bnkit/bn.h"
#include "bnkit/npy.h"
#include "cli/cli.h"

static const char *const CTX = "bn";

static const bnk_cli_opt bn_cmd_opts[] = {
    {"layout", "L", "x's layout: nc (N,C), nchw (N,C,H,W), nhwc (N,H,W,C), nchw16c, nchw8c"},
    {"x", "X.npy", "input tensor (float32 or float64)"},
    {"gamma", "G.npy", "scale, shape (C,); default 1"},
    {"beta", "B.npy", "shift, shape (C,); default 0"},
    {"running-mean", "RM.npy", "running mean before the step, shape (C,); default 0"},
    {"running-var", "RV.npy", "running variance before the step, shape (C,); default 1"},
    {"dy", "DY.npy", "gradient w.r.t. y, x's shape: also run the backward"},
    {"infer", NULL, "inference forward with the running stats (y.npy only)"},
    {"step", "T", "running-stat updates before this step; 0"},
    {"out", "DIR", "output directory (created if missing)"},
    {"help", NULL, "print this help"},
};
enum { N_CMD_OPTS = sizeof bn_cmd_opts / sizeof bn_cmd_opts[0] };

static void print_help(const bnk_cli_optgroup *groups) {
    printf("usage: bnkit bn --layout nc|nchw|nhwc|nchw16c|nchw8c --x X.npy [--gamma G.npy]\n"
           "                [--beta B.npy] [--running-mean RM.npy] [--running-var RV.npy]\n"
           "                [--dy DY.npy] [--infer] [--step T] --out DIR [BN flags]\n\n"
           "Runs one batch-normalization step on .npy files. Training writes DIR/y.npy,\n"
           "running_mean.npy, running_var.npy, and with --dy also dx.npy, dgamma.npy, dbeta.npy;\n"
           "--infer writes DIR/y.npy only. Outputs are float32; y and dx have x's shape. The\n"
           "blocked layouts are oneDNN's nChw16c and nChw8c as its memory holds them: x of\n"
           "shape (N, C/16, H, W, 16) or (N, C/8, H, W, 8). Options take --opt VALUE or\n"
           "--opt=VALUE; a repeated option: the last one wins.\n\noptions:\n");
    bnk__cli_print_opts(stdout, &groups[0]);
    printf("\nBN flags:\n");
    bnk__cli_print_opts(stdout, &groups[1]);
}

/* "(2, 3)" / "(4,)" like NumPy. */
static const char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < size) snprintf(buf + n, size - n, ndim == 1 ? ",)" : ")");
    return buf;
}

enum { IN_X, IN_GAMMA, IN_BETA, IN_RMEAN, IN_RVAR, IN_DY, N_INPUTS };

typedef struct bn_input {
    const char *opt;  /* option name, without "--" */
    const char *what; /* name in messages */
    const char *path; /* NULL: not given */
    bnk_npy arr;
} bn_input;

/* One output file. */
typedef struct bn_output {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} bn_output;

/* The library's message with the quoted file name taken out, because ours names the file first:
 * "cannot open 'a.npy': No such file or directory" -> "cannot open: No such file or directory",
 * "'a.npy': not a .npy file: ..." -> "not a .npy file: ...". Unchanged when the name is absent. */
static const char *msg_without_path(char *buf, size_t size, const char *msg, const char *path) {
    size_t plen = strlen(path);
    for (const char *q = strchr(msg, '\''); q; q = strchr(q + 1, '\'')) {
        if (strncmp(q + 1, path, plen) != 0 || q[1 + plen] != '\'') continue;
        size_t pre = (size_t)(q - msg);
        const char *rest = q + plen + 2;
        if (pre > 0 && msg[pre - 1] == ' ')
            pre--;
        else if (pre == 0 && strncmp(rest, ": ", 2) == 0)
            rest += 2;
        snprintf(buf, size, "%.*s%s", (int)pre, msg, rest);
        return buf;
    }
    return msg;
}

/* Creates dir if missing. *created tells whether this call made it. */
static int make_out_dir(const char *dir, bool *created) {
    *created = false;
    if (mkdir(dir, 0777) == 0) {
        *created = true;
        return BNK_CLI_OK;
    }
    int err = errno;
    struct stat sb;
    if (err == EEXIST && stat(dir, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return BNK_CLI_OK;
        bnk__cli_error(CTX, "--out %s: not a directory", dir);
        return BNK_CLI_FAIL;
    }
    bnk__cli_error(CTX, "--out %s: cannot create directory: %s", dir, strerror(err));
    return BNK_CLI_FAIL;
}

/* Writes the outputs into dir; on failure removes the files this call wrote (and dir when
 * remove_dir) so that no partial result is left. */
static int write_outputs(const char *dir, bool remove_dir, const bn_output *outs, int nout) {
    size_t dlen = strlen(dir);
    char *paths[8] = {NULL};
    int written = 0, rc = BNK_CLI_OK;
    for (int i = 0; i < nout; i++) {
        paths[i] = malloc(dlen + strlen(outs[i].name) + 2);
        if (!paths[i]) {
            bnk__cli_error(CTX, "out of memory");
            rc = BNK_CLI_FAIL;
            break;
        }
        sprintf(paths[i], "%s/%s", dir, outs[i].name);
        bnk_status st =
            bnk_npy_write(paths[i], BNK_DTYPE_F32, outs[i].ndim, outs[i].shape, outs[i].data);
        if (st != BNK_OK) {
            char mb[600];
            bnk__cli_error(CTX, "--out %s: %s", paths[i],
                           msg_without_path(mb, sizeof mb, bnk_errmsg(), paths[i]));
            rc = BNK_CLI_FAIL;
            break;
        }
        written++;
    }
    if (rc != BNK_CLI_OK) {
        for (int i = 0; i < written; i++) unlink(paths[i]);
        if (remove_dir) rmdir(dir);
    }
    for (int i = 0; i < nout; i++) free(paths[i]);
    return rc;
}

/* Reads and converts one input; prints the error. */
static int read_input(bn_input *in) {
    bnk_status st = bnk_npy_read(in->path, &in->arr);
    if (st == BNK_OK) st = bnk_npy_to_f32(&in->arr);
    if (st != BNK_OK) {
        char mb[600];
        bnk__cli_error(CTX, "--%s %s: %s", in->opt, in->path,
                       msg_without_path(mb, sizeof mb, bnk_errmsg(), in->path));
        /* A file that is not a usable .npy is a runtime failure, whatever the library's code. */
        return BNK_CLI_FAIL;
    }
    return BNK_CLI_OK;
}

/* The layouts by name, with the shape that x has in each. */
static const struct {
    const char *name, *dims;
    bnk_layout layout;
    int ndim;
    int64_t block; /* channel block of a blocked layout, else 0 */
} layouts[] = {
    {"nc", "(N, C)", BNK_LAYOUT_NC, 2, 0},
    {"nchw", "(N, C, H, W)", BNK_LAYOUT_NCHW, 4, 0},
    {"nhwc", "(N, H, W, C)", BNK_LAYOUT_NHWC, 4, 0},
    {"nchw16c", "(N, C/16, H, W, 16)", BNK_LAYOUT_NCHW16C, 5, 16},
    {"nchw8c", "(N, C/8, H, W, 8)", BNK_LAYOUT_NCHW8C, 5, 8},
};
enum { N_LAYOUTS = sizeof layouts / sizeof layouts[0] };

/* Fills shape from x (layouts[li]) and checks every input's shape. */
static int check_shapes(int li, bn_input *in, bnk_bn_shape *shape) {
    char b1[160], b2[160];
    const bnk_npy *x = &in[IN_X].arr;
    const bnk_layout layout = layouts[li].layout;
    const int64_t blk = layouts[li].block;
    if (x->ndim != layouts[li].ndim) {
        bnk__cli_error(CTX, "x must be %d-D %s for --layout %s, got shape %s", layouts[li].ndim,
                       layouts[li].dims, layouts[li].name,
                       shape_str(b1, sizeof b1, x->ndim, x->shape));
        return BNK_CLI_USAGE;
    }
    for (int i = 0; i < x->ndim; i++) {
        if (x->shape[i] < 1) {
            bnk__cli_error(CTX, "x has an empty dimension: shape %s",
                           shape_str(b1, sizeof b1, x->ndim, x->shape));
            return BNK_CLI_USAGE;
        }
    }
    shape->layout = layout;
    shape->h = shape->w = 1;
    if (layout == BNK_LAYOUT_NC) {
        shape->n = x->shape[0];
        shape->c = x->shape[1];
    } else if (layout == BNK_LAYOUT_NCHW) {
        shape->n = x->shape[0];
        shape->c = x->shape[1];
        shape->h = x->shape[2];
        shape->w = x->shape[3];
    } else if (blk) {
        if (x->shape[4] != blk) {
            bnk__cli_error(CTX,
                           "x must be %s for --layout %s: its last dimension is the channel "
                           "block, %lld, got shape %s",
                           layouts[li].dims, layouts[li].name, (long long)blk,
                           shape_str(b1, sizeof b1, x->ndim, x->shape));
            return BNK_CLI_USAGE;
        }
        shape->n = x->shape[0];
        shape->c = x->shape[1] * blk; /* no overflow: the file's size bounds x->shape[1] */
        shape->h = x->shape[2];
        shape->w = x->shape[3];
    } else {
        shape->n = x->shape[0];
        shape->h = x->shape[1];
        shape->w = x->shape[2];
        shape->c = x->shape[3];
    }
    if (bnk_bn_shape_validate(shape) != BNK_OK) {
        bnk__cli_error(CTX, "x has shape %s: %s", shape_str(b1, sizeof b1, x->ndim, x->shape),
                       bnk_errmsg());
        return BNK_CLI_USAGE;
    }
    for (int k = IN_GAMMA; k <= IN_RVAR; k++) {
        const bnk_npy *a = &in[k].arr;
        if (!in[k].path) continue;
        if (a->ndim != 1 || a->shape[0] != shape->c) {
            bnk__cli_error(CTX, "%s has shape %s but x has %lld channels", in[k].what,
                           shape_str(b1, sizeof b1, a->ndim, a->shape), (long long)shape->c);
            return BNK_CLI_USAGE;
        }
    }
    if (in[IN_DY].path) {
        const bnk_npy *dy = &in[IN_DY].arr;
        bool same = dy->ndim == x->ndim;
        for (int i = 0; same && i < x->ndim; i++) same = dy->shape[i] == x->shape[i];
        if (!same) {
            bnk__cli_error(CTX, "dy has shape %s but x has shape %s",
                           shape_str(b1, sizeof b1, dy->ndim, dy->shape),
                           shape_str(b2, sizeof b2, x->ndim, x->shape));
            return BNK_CLI_USAGE;
        }
    }
    return BNK_CLI_OK;
}

/* A per-channel vector: the file's data, or a new array filled with def. */
static float *channel_vec(bn_input *in, int64_t c, float def, float **owned) {
    if (in->path) return in->arr.data;
    float *v = malloc((size_t)c * sizeof *v);
    if (v)
        for (int64_t i = 0; i < c; i++) v[i] = def;
    *owned = v;
    return v;
}

int bnk__cmd_bn(int argc, char **argv) {
    const char *vals[N_CMD_OPTS], *bn_vals[BNK_CLI_BN_NOPTS];
    bnk_cli_optgroup groups[2] = {{"", bn_cmd_opts, N_CMD_OPTS, vals},
                                  {"", bnk__cli_bn_opts, BNK_CLI_BN_NOPTS, bn_vals}};
    int rc = bnk__cli_parse(CTX, argc, argv, groups, 2, NULL, 0, NULL);
    if (rc != BNK_CLI_OK) return rc;
    if (bnk__cli_value(&groups[0], "help")) {
        print_help(groups);
        return BNK_CLI_OK;
    }

    /* ---- Command line ---- */
    const char *layout_name = bnk__cli_value(&groups[0], "layout");
    const char *out_dir = bnk__cli_value(&groups[0], "out");
    bool infer = bnk__cli_value(&groups[0], "infer") != NULL;
    const char *step_str = bnk__cli_value(&groups[0], "step");
    bn_input in[N_INPUTS] = {
        {"x", "x", NULL, {0}},
        {"gamma", "gamma", NULL, {0}},
        {"beta", "beta", NULL, {0}},
        {"running-mean", "running_mean", NULL, {0}},
        {"running-var", "running_var", NULL, {0}},
        {"dy", "dy", NULL, {0}},
    };
    for (int k = 0; k < N_INPUTS; k++) in[k].path = bnk__cli_value(&groups[0], in[k].opt);

    if (!layout_name) {
        bnk__cli_error(CTX, "missing --layout nc|nchw|nhwc|nchw16c|nchw8c (see 'bnkit bn --help')");
        return BNK_CLI_USAGE;
    }
    if (!in[IN_X].path) {
        bnk__cli_error(CTX, "missing --x X.npy (see 'bnkit bn --help')");
        return BNK_CLI_USAGE;
    }
    if (!out_dir) {
        bnk__cli_error(CTX, "missing --out DIR (see 'bnkit bn --help')");
        return BNK_CLI_USAGE;
    }
    int li = 0;
    while (li < N_LAYOUTS && strcmp(layout_name, layouts[li].name) != 0) li++;
    if (li == N_LAYOUTS) {
        bnk__cli_error(CTX, "--layout must be nc, nchw, nhwc, nchw16c or nchw8c, got '%s'",
                       layout_name);
        return BNK_CLI_USAGE;
    }
    if (infer && in[IN_DY].path) {
        bnk__cli_error(CTX, "--dy needs a training step: the backward is that of the training "
                            "forward; drop --infer or --dy");
        return BNK_CLI_USAGE;
    }
    int64_t step = 0;
    if (step_str) {
        if ((rc = bnk__cli_parse_int64(CTX, "--step", step_str, &step)) != BNK_CLI_OK) return rc;
        if (step < 0) {
            bnk__cli_error(CTX, "--step must be >= 0, got %lld", (long long)step);
            return BNK_CLI_USAGE;
        }
    }
    bnk_bn_config cfg = bnk_bn_config_default();
    if ((rc = bnk__cli_bn_apply(CTX, &groups[1], &cfg)) != BNK_CLI_OK) return rc;

    /* ---- Inputs ---- */
    float *y = NULL, *dx = NULL, *dgamma = NULL, *dbeta = NULL;
    float *own_gamma = NULL, *own_beta = NULL, *own_rmean = NULL, *own_rvar = NULL;
    double *saved = NULL;
    for (int k = 0; k < N_INPUTS; k++) {
        if (in[k].path && (rc = read_input(&in[k])) != BNK_CLI_OK) goto done;
    }
    bnk_bn_shape shape;
    if ((rc = check_shapes(li, in, &shape)) != BNK_CLI_OK) goto done;
    int64_t m = shape.n * shape.h * shape.w;
    if (!infer && m < 2) {
        bnk__cli_error(CTX,
                       "training needs at least 2 values per channel, but x has N*H*W = %lld "
                       "(use a larger batch, or --infer)",
                       (long long)m);
        rc = BNK_CLI_USAGE;
        goto done;
    }

    /* ---- Compute ---- */
    int64_t c = shape.c;
    size_t numel = bnk_bn_shape_numel(&shape);
    float *gamma = channel_vec(&in[IN_GAMMA], c, 1.0f, &own_gamma);
    float *beta = channel_vec(&in[IN_BETA], c, 0.0f, &own_beta);
    float *rmean = channel_vec(&in[IN_RMEAN], c, 0.0f, &own_rmean);
    float *rvar = channel_vec(&in[IN_RVAR], c, 1.0f, &own_rvar);
    y = malloc(numel * sizeof *y);
    bool backward = in[IN_DY].path != NULL;
    if (!infer) saved = malloc((size_t)BNK_BN_SAVED_FIELDS * (size_t)c * sizeof *saved);
    if (backward) {
        dx = malloc(numel * sizeof *dx);
        dgamma = calloc((size_t)c, sizeof *dgamma);
        dbeta = calloc((size_t)c, sizeof *dbeta);
    }
    if (!gamma || !beta || !rmean || !rvar || !y || (!infer && !saved) ||
        (backward && (!dx || !dgamma || !dbeta))) {
        bnk__cli_error(CTX, "out of memory");
        rc = BNK_CLI_FAIL;
        goto done;
    }
    const float *x = in[IN_X].arr.data;
    bnk_status st;
    if (infer) {
        st = bnk_bn_forward_infer(&cfg, &shape, y, x, gamma, beta, rmean, rvar);
    } else {
        st = bnk_bn_forward_train(&cfg, &shape, step, y, saved, rmean, rvar, x, gamma, beta);
        if (st == BNK_OK && backward)
            st = bnk_bn_backward(&cfg, &shape, dx, dgamma, dbeta, in[IN_DY].arr.data, x, y, gamma,
                                 saved);
    }
    if (st != BNK_OK) {
        bnk__cli_error(CTX, "%s", bnk_errmsg());
        rc = bnk__cli_exit_for(st);
        goto done;
    }

    /* ---- Write ---- */
    const int64_t *xshape = in[IN_X].arr.shape;
    int xndim = in[IN_X].arr.ndim;
    const int64_t cshape[1] = {c};
    bn_output outs[6] = {{"y.npy", xndim, xshape, y}};
    int nout = 1;
    if (!infer) {
        outs[nout++] = (bn_output){"running_mean.npy", 1, cshape, rmean};
        outs[nout++] = (bn_output){"running_var.npy", 1, cshape, rvar};
        if (backward) {
            outs[nout++] = (bn_output){"dx.npy", xndim, xshape, dx};
            outs[nout++] = (bn_output){"dgamma.npy", 1, cshape, dgamma};
            outs[nout++] = (bn_output){"dbeta.npy", 1, cshape, dbeta};
        }
    }
    bool created;
    if ((rc = make_out_dir(out_dir, &created)) != BNK_CLI_OK) goto done;
    rc = write_outputs(out_dir, created, outs, nout);

done:
    free(y);
    free(dx);
    free(dgamma);
    free(dbeta);
    free(saved);
    free(own_gamma);
    free(own_beta);
    free(own_rmean);
    free(own_rvar);
    for (int k = 0; k < N_INPUTS; k++) bnk_npy_free(&in[k].arr);
    return rc;
}
