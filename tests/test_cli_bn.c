/* Tests of the `bnkit bn` command (and the CLI's top level): the built executable BNK_CLI_PATH is
 * run with posix_spawn in a fresh temporary directory, its exit status and stderr captured, and
 * its .npy outputs compared with direct library calls on the same inputs, or with PyTorch's
 * outputs from tests/fixtures/torch/ (written by scripts/gen_torch_fixtures.py).
 *
 * Each test gets <root>/in (inputs), <root>/out (the --out directory, not created in advance)
 * and <root>/stdout.txt, <root>/stderr.txt. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bnkit/bn.h"
#include "bnkit/npy.h"
#include "test_util.h"

extern char **environ;

/* The CLI and the reference call run the same kernel on the same float32 inputs, so results agree
 * to the last bit in practice; the slack only covers a parallel reduction whose order could
 * depend on the thread count. */
#define SAME_ATOL 1e-6
#define SAME_RTOL 1e-6
/* PyTorch computes in float32 with its own summation order: the tolerance of the brief. */
#define TORCH_ATOL 1e-5
#define TORCH_RTOL 1e-4

enum { MAXC = 16, MAXARGS = 64 };

/* ---- Temporary directories and paths ------------------------------------------------------- */

typedef struct tctx {
    char root[64];
    char in[96], out[96], outf[96], errf[96];
    char x[128], gamma[128], beta[128], rmean[128], rvar[128], dy[128];
} tctx;

static void rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state) {
    tctx *c = calloc(1, sizeof *c);
    if (!c) return -1;
    snprintf(c->root, sizeof c->root, "/tmp/bnk_cli_XXXXXX");
    if (!mkdtemp(c->root)) {
        free(c);
        return -1;
    }
    snprintf(c->in, sizeof c->in, "%s/in", c->root);
    snprintf(c->out, sizeof c->out, "%s/out", c->root);
    snprintf(c->outf, sizeof c->outf, "%s/stdout.txt", c->root);
    snprintf(c->errf, sizeof c->errf, "%s/stderr.txt", c->root);
    snprintf(c->x, sizeof c->x, "%s/x.npy", c->in);
    snprintf(c->gamma, sizeof c->gamma, "%s/gamma.npy", c->in);
    snprintf(c->beta, sizeof c->beta, "%s/beta.npy", c->in);
    snprintf(c->rmean, sizeof c->rmean, "%s/running_mean.npy", c->in);
    snprintf(c->rvar, sizeof c->rvar, "%s/running_var.npy", c->in);
    snprintf(c->dy, sizeof c->dy, "%s/dy.npy", c->in);
    if (mkdir(c->in, 0777) != 0) return -1;
    *state = c;
    return 0;
}

static int teardown(void **state) {
    tctx *c = *state;
    rm_rf(c->root);
    free(c);
    return 0;
}

/* Entries in dir other than . and ..; -1 when dir does not exist. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static bool file_exists(const char *dir, const char *name) {
    char p[1100];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* ---- Running the CLI ------------------------------------------------------------------------ */

typedef struct args {
    const char *v[MAXARGS + 2];
    int n;
} args;

static void args_init(args *a) {
    a->v[0] = BNK_CLI_PATH;
    a->v[1] = NULL;
    a->n = 1;
}

static void arg(args *a, const char *s) {
    assert_true(a->n < MAXARGS);
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

typedef struct cli_result {
    int status;
    char out[8192];
    char err[4096];
} cli_result;

static void slurp(const char *path, char *buf, size_t size) {
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void run_cli(const tctx *c, const args *a, cli_result *r) {
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(
        posix_spawn_file_actions_addopen(&fa, 1, c->outf, O_WRONLY | O_CREAT | O_TRUNC, 0644), 0);
    assert_int_equal(
        posix_spawn_file_actions_addopen(&fa, 2, c->errf, O_WRONLY | O_CREAT | O_TRUNC, 0644), 0);
    pid_t pid;
    int rc = posix_spawn(&pid, BNK_CLI_PATH, &fa, NULL, (char *const *)a->v, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail_msg("cannot run %s: %s", BNK_CLI_PATH, strerror(rc));
    int ws;
    while (waitpid(pid, &ws, 0) < 0) assert_int_equal(errno, EINTR);
    if (!WIFEXITED(ws)) fail_msg("bnkit did not exit normally (wait status %d)", ws);
    r->status = WEXITSTATUS(ws);
    slurp(c->outf, r->out, sizeof r->out);
    slurp(c->errf, r->err, sizeof r->err);
}

static void show_command(const args *a) {
    fprintf(stderr, "command:");
    for (int i = 0; i < a->n; i++) fprintf(stderr, " %s", a->v[i]);
    fprintf(stderr, "\n");
}

/* Runs and expects success with nothing on stderr. */
static void run_ok(const tctx *c, const args *a, cli_result *r) {
    run_cli(c, a, r);
    if (r->status != 0 || r->err[0]) {
        show_command(a);
        fail_msg("exit %d, stderr: %s", r->status, r->err);
    }
}

/* Runs and expects exit status `want`, exactly one line on stderr starting "bnkit: " (and
 * containing `needle` when not NULL), and no output file left in the --out directory. */
static void run_err(const tctx *c, const args *a, int want, const char *needle) {
    cli_result r;
    run_cli(c, a, &r);
    size_t len = strlen(r.err);
    const char *nl = strchr(r.err, '\n');
    bool one_line = len > 0 && nl == r.err + len - 1;
    if (r.status != want || strncmp(r.err, "bnkit: ", 7) != 0 || !one_line ||
        (needle && !strstr(r.err, needle))) {
        show_command(a);
        fail_msg("expected exit %d and one 'bnkit: ' line%s%s; got exit %d, stderr: [%s]", want,
                 needle ? " containing " : "", needle ? needle : "", r.status, r.err);
    }
    int left = count_entries(c->out);
    if (left > 0) fail_msg("%d files left in %s after a failed run", left, c->out);
}

/* ---- Test data and the library reference ---------------------------------------------------- */

typedef struct bn_case {
    bnk_bn_shape shape;
    const char *layout_name;
    int ndim;
    int64_t dims[4];
    size_t numel;
    float *x, *dy;
    float gamma[MAXC], beta[MAXC], rmean[MAXC], rvar[MAXC];
} bn_case;

static size_t elem_index(const bnk_bn_shape *s, int64_t n, int64_t c, int64_t h, int64_t w) {
    switch (s->layout) {
    case BNK_LAYOUT_NCHW:
        return (size_t)(((n * s->c + c) * s->h + h) * s->w + w);
    default: /* NC is NHWC with h = w = 1 */
        return (size_t)(((n * s->h + h) * s->w + w) * s->c + c);
    }
}

/* Channel c of x has mean 3 + c and standard deviation 2 + c/2: far from the running statistics
 * 0.5c and 0.5 + 0.25c, so that every clip, renorm bound and momentum setting matters. */
static void case_init(bn_case *d, bnk_layout layout, int64_t n, int64_t ch, int64_t h, int64_t w,
                      uint64_t seed) {
    assert_true(ch <= MAXC);
    memset(d, 0, sizeof *d);
    d->shape = (bnk_bn_shape){layout, n, ch, h, w};
    if (layout == BNK_LAYOUT_NC) {
        d->layout_name = "nc";
        d->ndim = 2;
        d->dims[0] = n;
        d->dims[1] = ch;
    } else if (layout == BNK_LAYOUT_NCHW) {
        d->layout_name = "nchw";
        d->ndim = 4;
        d->dims[0] = n, d->dims[1] = ch, d->dims[2] = h, d->dims[3] = w;
    } else {
        d->layout_name = "nhwc";
        d->ndim = 4;
        d->dims[0] = n, d->dims[1] = h, d->dims[2] = w, d->dims[3] = ch;
    }
    d->numel = (size_t)(n * ch * h * w);
    d->x = malloc(d->numel * sizeof *d->x);
    d->dy = malloc(d->numel * sizeof *d->dy);
    assert_non_null(d->x);
    assert_non_null(d->dy);
    uint64_t rng = seed;
    for (int64_t in = 0; in < n; in++)
        for (int64_t c = 0; c < ch; c++)
            for (int64_t ih = 0; ih < h; ih++)
                for (int64_t iw = 0; iw < w; iw++) {
                    size_t i = elem_index(&d->shape, in, c, ih, iw);
                    d->x[i] = (float)(3.0 + c + (2.0 + 0.5 * c) * bnk_test_normal(&rng));
                    d->dy[i] = (float)bnk_test_normal(&rng);
                }
    for (int64_t c = 0; c < ch; c++) {
        d->gamma[c] = (float)(1.0 + 0.25 * c);
        d->beta[c] = (float)(0.5 - 0.3 * c);
        d->rmean[c] = (float)(0.5 * c);
        d->rvar[c] = (float)(0.5 + 0.25 * c);
    }
}

static void case_free(bn_case *d) {
    free(d->x);
    free(d->dy);
}

/* Writes x, gamma, beta, running stats and dy into c->in, as float32 or float64. */
static void write_array(const char *path, bnk_dtype dtype, int ndim, const int64_t *dims,
                        const float *v, size_t count) {
    bnk_status st;
    if (dtype == BNK_DTYPE_F32) {
        st = bnk_npy_write(path, dtype, ndim, dims, v);
    } else {
        double *dv = malloc(count * sizeof *dv);
        assert_non_null(dv);
        for (size_t i = 0; i < count; i++) dv[i] = v[i];
        st = bnk_npy_write(path, dtype, ndim, dims, dv);
        free(dv);
    }
    if (st != BNK_OK) fail_msg("writing %s: %s", path, bnk_errmsg());
}

static void write_case(const tctx *c, const bn_case *d, bnk_dtype dtype) {
    int64_t cd[1] = {d->shape.c};
    size_t cc = (size_t)d->shape.c;
    write_array(c->x, dtype, d->ndim, d->dims, d->x, d->numel);
    write_array(c->dy, dtype, d->ndim, d->dims, d->dy, d->numel);
    write_array(c->gamma, dtype, 1, cd, d->gamma, cc);
    write_array(c->beta, dtype, 1, cd, d->beta, cc);
    write_array(c->rmean, dtype, 1, cd, d->rmean, cc);
    write_array(c->rvar, dtype, 1, cd, d->rvar, cc);
}

typedef struct bn_ref {
    float *y, *dx;
    float rmean[MAXC], rvar[MAXC], dgamma[MAXC], dbeta[MAXC];
} bn_ref;

/* The library's answer: what `bnkit bn` must write. */
static void ref_compute(const bnk_bn_config *cfg, const bn_case *d, int64_t step, bool infer,
                        bn_ref *r) {
    size_t cc = (size_t)d->shape.c;
    r->y = malloc(d->numel * sizeof *r->y);
    r->dx = malloc(d->numel * sizeof *r->dx);
    assert_non_null(r->y);
    assert_non_null(r->dx);
    memcpy(r->rmean, d->rmean, cc * sizeof(float));
    memcpy(r->rvar, d->rvar, cc * sizeof(float));
    memset(r->dgamma, 0, sizeof r->dgamma);
    memset(r->dbeta, 0, sizeof r->dbeta);
    bnk_status st;
    if (infer) {
        st = bnk_bn_forward_infer(cfg, &d->shape, r->y, d->x, d->gamma, d->beta, d->rmean, d->rvar);
        if (st != BNK_OK) fail_msg("reference forward_infer: %s", bnk_errmsg());
        return;
    }
    double saved[BNK_BN_SAVED_FIELDS * MAXC];
    st = bnk_bn_forward_train(cfg, &d->shape, step, r->y, saved, r->rmean, r->rvar, d->x, d->gamma,
                              d->beta);
    if (st != BNK_OK) fail_msg("reference forward_train: %s", bnk_errmsg());
    st = bnk_bn_backward(cfg, &d->shape, r->dx, r->dgamma, r->dbeta, d->dy, d->x, r->y, d->gamma,
                         saved);
    if (st != BNK_OK) fail_msg("reference backward: %s", bnk_errmsg());
}

static void ref_free(bn_ref *r) {
    free(r->y);
    free(r->dx);
}

static bool differs(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(b[i]))) return true;
    return false;
}

/* Whether two references differ in any output (so that a flag is seen to matter). */
static bool ref_differs(const bn_ref *a, const bn_ref *b, const bn_case *d) {
    size_t cc = (size_t)d->shape.c;
    return differs(a->y, b->y, d->numel) || differs(a->dx, b->dx, d->numel) ||
           differs(a->rmean, b->rmean, cc) || differs(a->rvar, b->rvar, cc) ||
           differs(a->dgamma, b->dgamma, cc) || differs(a->dbeta, b->dbeta, cc);
}

/* Reads dir/name, checks float32 and the shape, compares with ref. */
static void expect_npy(const char *dir, const char *name, int ndim, const int64_t *dims,
                       const float *ref, size_t count, double atol, double rtol) {
    char path[1100], label[1100];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(label, sizeof label, "%s", path);
    bnk_npy a;
    if (bnk_npy_read(path, &a) != BNK_OK) fail_msg("reading %s: %s", path, bnk_errmsg());
    if (a.dtype != BNK_DTYPE_F32) fail_msg("%s: not float32", path);
    assert_int_equal(a.ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(a.shape[i], dims[i]);
    assert_int_equal(a.count, count);
    double *rd = malloc(count * sizeof *rd);
    assert_non_null(rd);
    for (size_t i = 0; i < count; i++) rd[i] = ref[i];
    bnk_test_close_f32(label, a.data, rd, count, atol, rtol);
    free(rd);
    bnk_npy_free(&a);
}

/* Checks every output of a run in dir against r. */
static void expect_outputs(const char *dir, const bn_case *d, const bn_ref *r, bool infer,
                           bool with_dy) {
    int64_t cd[1] = {d->shape.c};
    size_t cc = (size_t)d->shape.c;
    expect_npy(dir, "y.npy", d->ndim, d->dims, r->y, d->numel, SAME_ATOL, SAME_RTOL);
    if (infer) {
        assert_int_equal(count_entries(dir), 1);
        return;
    }
    expect_npy(dir, "running_mean.npy", 1, cd, r->rmean, cc, SAME_ATOL, SAME_RTOL);
    expect_npy(dir, "running_var.npy", 1, cd, r->rvar, cc, SAME_ATOL, SAME_RTOL);
    if (!with_dy) {
        assert_int_equal(count_entries(dir), 3);
        return;
    }
    expect_npy(dir, "dx.npy", d->ndim, d->dims, r->dx, d->numel, SAME_ATOL, SAME_RTOL);
    expect_npy(dir, "dgamma.npy", 1, cd, r->dgamma, cc, SAME_ATOL, SAME_RTOL);
    expect_npy(dir, "dbeta.npy", 1, cd, r->dbeta, cc, SAME_ATOL, SAME_RTOL);
    assert_int_equal(count_entries(dir), 6);
}

/* bn --layout L --x .. --gamma .. --beta .. --running-mean .. --running-var .. [--dy ..] --out */
static void full_args(args *a, const tctx *c, const bn_case *d, bool with_dy, const char *out) {
    args_init(a);
    arg(a, "bn");
    arg(a, "--layout");
    arg(a, d->layout_name);
    arg(a, "--x");
    arg(a, c->x);
    arg(a, "--gamma");
    arg(a, c->gamma);
    arg(a, "--beta");
    arg(a, c->beta);
    arg(a, "--running-mean");
    arg(a, c->rmean);
    arg(a, "--running-var");
    arg(a, c->rvar);
    if (with_dy) {
        arg(a, "--dy");
        arg(a, c->dy);
    }
    arg(a, "--out");
    arg(a, out);
}

/* ---- (a) training with --dy on every layout ------------------------------------------------- */

static void check_train_layout(tctx *c, bnk_layout layout, int64_t n, int64_t ch, int64_t h,
                               int64_t w) {
    bn_case d;
    case_init(&d, layout, n, ch, h, w, 11 + (uint64_t)layout);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    full_args(&a, c, &d, true, c->out);
    cli_result r;
    run_ok(c, &a, &r);
    bnk_bn_config cfg = bnk_bn_config_default();
    bn_ref ref;
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(c->out, &d, &ref, false, true);
    ref_free(&ref);
    case_free(&d);
}

static void test_train_nc(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NC, 7, 5, 1, 1);
}
static void test_train_nchw(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NCHW, 3, 4, 3, 5);
}
static void test_train_nhwc(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NHWC, 2, 3, 4, 5);
}

/* N = 1 is fine for a 4-D tensor: m = H*W values per channel. */
static void test_train_n1_spatial(void **state) {
    check_train_layout(*state, BNK_LAYOUT_NCHW, 1, 2, 2, 3);
}

/* ---- (b) every BN flag reaches the config --------------------------------------------------- */

static void set_momentum(bnk_bn_config *g) {
    g->momentum = 0.5;
}
static void set_eps(bnk_bn_config *g) {
    g->eps = 0.5;
}
static void set_cumulative(bnk_bn_config *g) {
    g->cumulative = true;
}
static void set_no_center(bnk_bn_config *g) {
    g->center = false;
}
static void set_no_scale(bnk_bn_config *g) {
    g->scale = false;
}
static void set_unbiased(bnk_bn_config *g) {
    g->unbiased_running_var = true;
}
static void set_mean_clip(bnk_bn_config *g) {
    g->mean_clip = (bnk_range){-0.5, 0.5};
}
static void set_mean_clip_inf(bnk_bn_config *g) {
    g->mean_clip = (bnk_range){-INFINITY, 1.0};
}
static void set_var_clip(bnk_bn_config *g) {
    g->var_clip = (bnk_range){0.0, 0.5};
}
static void set_rel_clip(bnk_bn_config *g) {
    g->rel_clip_r = 1.5;
    g->rel_clip_d = 0.5;
}
static void set_rel_clip_r(bnk_bn_config *g) {
    g->rel_clip_r = 1.5;
}
static void set_rel_clip_d(bnk_bn_config *g) {
    g->rel_clip_d = 0.5;
}
static void set_clip_warmup(bnk_bn_config *g) {
    g->clip_warmup = 5;
}
static void set_running_mean_clip(bnk_bn_config *g) {
    g->running_mean_clip = (bnk_range){-0.25, 0.25};
}
static void set_running_var_clip(bnk_bn_config *g) {
    g->running_var_clip = (bnk_range){0.1, 0.6};
}
static void set_norm_running(bnk_bn_config *g) {
    g->normalize_with = BNK_NORM_RUNNING;
}
static void set_norm_renorm(bnk_bn_config *g) {
    g->normalize_with = BNK_NORM_RENORM;
}
static void set_rmax(bnk_bn_config *g) {
    g->rmax = 1.2;
}
static void set_dmax(bnk_bn_config *g) {
    g->dmax = 0.5;
}
static void set_fuse_relu(bnk_bn_config *g) {
    g->fuse_relu = true;
}

typedef struct flag_case {
    const char *opt;   /* without "--" */
    const char *value; /* NULL: a flag */
    void (*set)(bnk_bn_config *);
    int64_t step;
    const char *extra[2];               /* options the flag needs to matter, e.g. renorm for rmax */
    void (*set_extra)(bnk_bn_config *); /* the same in the config */
} flag_case;

static const flag_case flag_cases[] = {
    {"momentum", "0.5", set_momentum, 0, {NULL, NULL}, NULL},
    {"eps", "0.5", set_eps, 0, {NULL, NULL}, NULL},
    /* step 3: beta_t = 3/4, so --step is checked too */
    {"cumulative", NULL, set_cumulative, 3, {NULL, NULL}, NULL},
    {"no-center", NULL, set_no_center, 0, {NULL, NULL}, NULL},
    {"no-scale", NULL, set_no_scale, 0, {NULL, NULL}, NULL},
    {"unbiased-running-var", NULL, set_unbiased, 0, {NULL, NULL}, NULL},
    {"mean-clip", "-0.5:0.5", set_mean_clip, 0, {NULL, NULL}, NULL},
    {"mean-clip", "-inf:1", set_mean_clip_inf, 0, {NULL, NULL}, NULL},
    {"var-clip", "0:0.5", set_var_clip, 0, {NULL, NULL}, NULL},
    {"rel-clip", "1.5:0.5", set_rel_clip, 0, {NULL, NULL}, NULL},
    {"rel-clip-r", "1.5", set_rel_clip_r, 0, {NULL, NULL}, NULL},
    {"rel-clip-d", "0.5", set_rel_clip_d, 0, {NULL, NULL}, NULL},
    /* step 2 < warmup 5: the relative clip is not applied yet */
    {"clip-warmup", "5", set_clip_warmup, 2, {"--rel-clip", "1.5:0.5"}, set_rel_clip},
    {"running-mean-clip", "-0.25:0.25", set_running_mean_clip, 0, {NULL, NULL}, NULL},
    {"running-var-clip", "0.1:0.6", set_running_var_clip, 0, {NULL, NULL}, NULL},
    {"normalize-with", "running", set_norm_running, 0, {NULL, NULL}, NULL},
    {"normalize-with", "renorm", set_norm_renorm, 0, {NULL, NULL}, NULL},
    {"rmax", "1.2", set_rmax, 0, {"--normalize-with", "renorm"}, set_norm_renorm},
    {"dmax", "0.5", set_dmax, 0, {"--normalize-with", "renorm"}, set_norm_renorm},
    {"fuse-relu", NULL, set_fuse_relu, 0, {NULL, NULL}, NULL},
};

static void test_every_bn_flag(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NCHW, 3, 4, 2, 2, 5);
    write_case(c, &d, BNK_DTYPE_F32);
    size_t ncase = sizeof flag_cases / sizeof flag_cases[0];
    for (size_t k = 0; k < ncase; k++) {
        const flag_case *fc = &flag_cases[k];
        bnk_bn_config base = bnk_bn_config_default();
        if (fc->set_extra) fc->set_extra(&base);
        bnk_bn_config cfg = base;
        fc->set(&cfg);
        bn_ref ref, ref_base;
        ref_compute(&cfg, &d, fc->step, false, &ref);
        ref_compute(&base, &d, fc->step, false, &ref_base);
        if (!ref_differs(&ref, &ref_base, &d))
            fail_msg("--%s %s does not change the result on the test input", fc->opt,
                     fc->value ? fc->value : "");
        ref_free(&ref_base);

        /* Valued options in both forms: --opt=value and --opt value. */
        for (int form = 0; form < (fc->value ? 2 : 1); form++) {
            char out[160], joined[128], step[32];
            snprintf(out, sizeof out, "%s/case%zu_%d", c->root, k, form);
            args a;
            full_args(&a, c, &d, true, out);
            if (fc->extra[0]) {
                arg(&a, fc->extra[0]);
                arg(&a, fc->extra[1]);
            }
            if (fc->step) {
                snprintf(step, sizeof step, "%lld", (long long)fc->step);
                arg(&a, "--step");
                arg(&a, step);
            }
            if (!fc->value) {
                snprintf(joined, sizeof joined, "--%s", fc->opt);
                arg(&a, joined);
            } else if (form == 0) {
                snprintf(joined, sizeof joined, "--%s=%s", fc->opt, fc->value);
                arg(&a, joined);
            } else {
                snprintf(joined, sizeof joined, "--%s", fc->opt);
                arg(&a, joined);
                arg(&a, fc->value);
            }
            cli_result r;
            run_ok(c, &a, &r);
            expect_outputs(out, &d, &ref, false, true);
        }
        ref_free(&ref);
    }
    case_free(&d);
}

/* Every option of the BN flag table appears in flag_cases (so a new flag needs a test). */
static void test_flag_cases_cover_help(void **state) {
    tctx *c = *state;
    args a;
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--help");
    cli_result r;
    run_ok(c, &a, &r);
    size_t ncase = sizeof flag_cases / sizeof flag_cases[0];
    for (size_t k = 0; k < ncase; k++) {
        char opt[64];
        snprintf(opt, sizeof opt, "--%s ", flag_cases[k].opt);
        if (!strstr(r.out, opt)) fail_msg("bnkit bn --help does not list %s", opt);
    }
    /* ...and the other way round: every "--name" in the BN flags part of the help is tested. */
    const char *p = strstr(r.out, "BN flags:");
    assert_non_null(p);
    while ((p = strstr(p, "\n  --")) != NULL) {
        p += 5;
        size_t len = strcspn(p, " \n");
        bool found = false;
        for (size_t k = 0; k < ncase && !found; k++)
            found = strlen(flag_cases[k].opt) == len && strncmp(flag_cases[k].opt, p, len) == 0;
        if (!found) fail_msg("BN flag --%.*s has no case in flag_cases", (int)len, p);
    }
}

/* A repeated option: the last one wins. */
static void test_repeated_option_last_wins(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 6, 3, 1, 1, 21);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--eps");
    arg(&a, "0.5");
    arg(&a, "--eps=0.25");
    cli_result r;
    run_ok(c, &a, &r);
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.eps = 0.25;
    bn_ref ref;
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(c->out, &d, &ref, false, true);
    ref_free(&ref);
    case_free(&d);
}

/* Negative values reach validation (and are refused there, not by the parser). */
static void test_negative_values_reach_validation(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 6, 3, 1, 1, 22);
    write_case(c, &d, BNK_DTYPE_F32);
    static const char *const bad[][3] = {
        {"--momentum=-0.5", NULL, "momentum must"},
        {"--momentum", "-0.5", "momentum must"},
        {"--eps", "-1e-3", "eps must be finite and > 0, got -0.001"},
        {"--rel-clip", "0.5:1", "rel_clip r must"},
        {"--rel-clip=2:-1", NULL, "rel_clip d must"},
        {"--mean-clip", "1:-1", "lower bound 1 exceeds upper bound -1"},
        {"--var-clip", "-1:1", ">= 0"},
        {"--clip-warmup", "-2", "clip_warmup must be >= 0, got -2"},
        {"--rmax", "0.5", "rmax must"},
        {"--dmax=-1", NULL, "dmax must"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        args a;
        full_args(&a, c, &d, true, c->out);
        arg(&a, bad[k][0]);
        if (bad[k][1]) arg(&a, bad[k][1]);
        run_err(c, &a, 2, bad[k][2]);
    }
    case_free(&d);
}

/* ---- (c) inference, (d) defaults, (e) float64 ----------------------------------------------- */

static void test_infer(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NHWC, 2, 3, 2, 4, 31);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--infer");
    arg(&a, "--fuse-relu");
    arg(&a, "--eps=0.01");
    cli_result r;
    run_ok(c, &a, &r);
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.fuse_relu = true;
    cfg.eps = 0.01;
    bn_ref ref;
    ref_compute(&cfg, &d, 0, true, &ref);
    expect_outputs(c->out, &d, &ref, true, false);
    ref_free(&ref);
    case_free(&d);
}

static void test_defaults(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 9, 4, 1, 1, 41);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--x");
    arg(&a, c->x);
    arg(&a, "--layout=nc");
    arg(&a, "--dy");
    arg(&a, c->dy);
    arg(&a, "--out");
    arg(&a, c->out);
    cli_result r;
    run_ok(c, &a, &r);
    for (int64_t k = 0; k < d.shape.c; k++) {
        d.gamma[k] = 1.0f;
        d.beta[k] = 0.0f;
        d.rmean[k] = 0.0f;
        d.rvar[k] = 1.0f;
    }
    bnk_bn_config cfg = bnk_bn_config_default();
    bn_ref ref;
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(c->out, &d, &ref, false, true);
    ref_free(&ref);

    /* Without --dy: the three forward outputs only. */
    char out2[160];
    snprintf(out2, sizeof out2, "%s/nody", c->root);
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, "nc");
    arg(&a, "--x");
    arg(&a, c->x);
    arg(&a, "--out");
    arg(&a, out2);
    run_ok(c, &a, &r);
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(out2, &d, &ref, false, false);
    ref_free(&ref);
    case_free(&d);
}

static void test_float64_inputs(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NCHW, 2, 3, 3, 3, 51);
    write_case(c, &d, BNK_DTYPE_F64); /* values are floats, so float64 -> float32 is exact */
    args a;
    full_args(&a, c, &d, true, c->out);
    cli_result r;
    run_ok(c, &a, &r);
    bnk_bn_config cfg = bnk_bn_config_default();
    bn_ref ref;
    ref_compute(&cfg, &d, 0, false, &ref);
    expect_outputs(c->out, &d, &ref, false, true);
    ref_free(&ref);
    case_free(&d);
}

/* ---- (f) errors ----------------------------------------------------------------------------- */

static void test_usage_errors(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 5, 3, 1, 1, 61);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;

    /* missing --x */
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, "nc");
    arg(&a, "--out");
    arg(&a, c->out);
    run_err(c, &a, 2, "missing --x");

    /* missing --out, missing --layout, bad --layout */
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, "nc");
    arg(&a, "--x");
    arg(&a, c->x);
    run_err(c, &a, 2, "missing --out");
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--x");
    arg(&a, c->x);
    arg(&a, "--out");
    arg(&a, c->out);
    run_err(c, &a, 2, "missing --layout");
    arg(&a, "--layout=nchwc");
    run_err(c, &a, 2, "--layout must be nc, nchw or nhwc, got 'nchwc'");

    /* x is 2-D but the layout says 4-D */
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, "nchw");
    arg(&a, "--x");
    arg(&a, c->x);
    arg(&a, "--out");
    arg(&a, c->out);
    run_err(c, &a, 2, "x must be 4-D");

    static const char *const bad[][3] = {
        {"--bogus", NULL, "unknown option --bogus"},
        {"--bogus=3", NULL, "unknown option --bogus"},
        {"-x", NULL, "unknown option -x"},
        {"stray", NULL, "unexpected argument 'stray'"},
        {"--infer=1", NULL, "--infer takes no value"},
        {"--eps", "1x", "--eps: expected a number, got '1x'"},
        {"--eps", " 1", "--eps: expected a number"},
        {"--eps", "1e999", "--eps: expected a number"},
        {"--eps=", NULL, "--eps: empty value"},
        {"--mean-clip", "1", "--mean-clip: expected LO:HI"},
        {"--mean-clip", "1:2:3", "--mean-clip: expected LO:HI"},
        {"--mean-clip", ":1", "--mean-clip: expected LO:HI"},
        {"--rel-clip", "2", "--rel-clip: expected two numbers"},
        {"--clip-warmup", "1.5", "--clip-warmup: expected an integer"},
        {"--clip-warmup", "99999999999999999999", "--clip-warmup: integer out of range"},
        {"--normalize-with", "bach", "--normalize-with must be batch, running or renorm"},
        {"--step", "-1", "--step must be >= 0, got -1"},
        {"--step", "x", "--step: expected an integer"},
        {"--eps", "0", "eps must be finite and > 0, got 0"},
        {"--momentum", "1", "momentum"},
        {"--momentum=nan", NULL, "momentum"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        full_args(&a, c, &d, true, c->out);
        arg(&a, bad[k][0]);
        if (bad[k][1]) arg(&a, bad[k][1]);
        run_err(c, &a, 2, bad[k][2]);
    }

    /* an option at the end without its value, and one followed by another option */
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--eps");
    run_err(c, &a, 2, "--eps needs a value");
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--momentum");
    arg(&a, "--infer");
    run_err(c, &a, 2, "--momentum needs a value");

    /* the exact line of the brief */
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--eps=0");
    cli_result r;
    run_cli(c, &a, &r);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "bnkit: bn: eps must be finite and > 0, got 0\n");

    /* --dy with --infer */
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--infer");
    run_err(c, &a, 2, "--dy");
    case_free(&d);
}

static void test_shape_errors(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 5, 3, 1, 1, 71);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.npy", c->in);

    /* gamma with 4 channels for x with 3 */
    float four[4] = {1, 2, 3, 4};
    int64_t d4[1] = {4};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 1, d4, four), BNK_OK);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--gamma");
    arg(&a, bad);
    run_err(c, &a, 2, "bnkit: bn: gamma has shape (4,) but x has 3 channels\n");

    /* a running var of shape (3, 1) */
    int64_t d31[2] = {3, 1};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 2, d31, four), BNK_OK);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--running-var");
    arg(&a, bad);
    run_err(c, &a, 2, "running_var has shape (3, 1) but x has 3 channels");

    /* dy of another shape */
    int64_t dd[2] = {5, 2};
    float ten[10] = {0};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 2, dd, ten), BNK_OK);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--dy");
    arg(&a, bad);
    run_err(c, &a, 2, "dy has shape (5, 2) but x has shape (5, 3)");

    /* an empty batch */
    int64_t d03[2] = {0, 3};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 2, d03, ten), BNK_OK);
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--x");
    arg(&a, bad);
    run_err(c, &a, 2, "empty dimension");

    /* m = 1 in training: N = 1 for NC */
    int64_t d13[2] = {1, 3};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 2, d13, four), BNK_OK);
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--x");
    arg(&a, bad);
    run_err(c, &a, 2, "at least 2 values per channel");
    /* ...which is fine for inference */
    arg(&a, "--infer");
    cli_result r;
    run_ok(c, &a, &r);
    assert_true(file_exists(c->out, "y.npy"));
    rm_rf(c->out);

    /* a negative running variance (refused by the library) in inference */
    float neg[3] = {1, -1, 1};
    int64_t d3[1] = {3};
    assert_int_equal(bnk_npy_write(bad, BNK_DTYPE_F32, 1, d3, neg), BNK_OK);
    full_args(&a, c, &d, false, c->out);
    arg(&a, "--running-var");
    arg(&a, bad);
    arg(&a, "--infer");
    run_err(c, &a, 2, "running_var");
    case_free(&d);
}

static void test_runtime_errors(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 5, 3, 1, 1, 81);
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    char path[160];

    /* a missing file */
    snprintf(path, sizeof path, "%s/nope.npy", c->in);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--beta");
    arg(&a, path);
    char want[300];
    snprintf(want, sizeof want, "bnkit: bn: --beta %s: cannot open: No such file or directory\n",
             path);
    run_err(c, &a, 1, want);

    /* a corrupt file, and a truncated one */
    snprintf(path, sizeof path, "%s/corrupt.npy", c->in);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("this is not a .npy file\n", f);
    fclose(f);
    full_args(&a, c, &d, true, c->out);
    arg(&a, "--x");
    arg(&a, path);
    run_err(c, &a, 1, "--x ");
    {
        FILE *src = fopen(c->x, "rb");
        assert_non_null(src);
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, src);
        fclose(src);
        f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(buf, 1, n - 5, f);
        fclose(f);
    }
    run_err(c, &a, 1, "--x ");

    /* --out is a regular file */
    full_args(&a, c, &d, true, c->x);
    run_err(c, &a, 1, "not a directory");
    /* --out two levels below a missing directory */
    snprintf(path, sizeof path, "%s/missing/deeper", c->root);
    full_args(&a, c, &d, true, path);
    run_err(c, &a, 1, "cannot create directory");
    case_free(&d);
}

/* A write that fails after others succeeded removes what this run wrote. */
static void test_partial_write_is_removed(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 5, 3, 1, 1, 91);
    write_case(c, &d, BNK_DTYPE_F32);
    /* running_var.npy is a directory: y.npy and running_mean.npy are written first, then the
     * rename onto running_var.npy fails. */
    char blocker[200];
    assert_int_equal(mkdir(c->out, 0777), 0);
    snprintf(blocker, sizeof blocker, "%s/running_var.npy", c->out);
    assert_int_equal(mkdir(blocker, 0777), 0);
    args a;
    full_args(&a, c, &d, true, c->out);
    cli_result r;
    run_cli(c, &a, &r);
    assert_int_equal(r.status, 1);
    assert_true(strncmp(r.err, "bnkit: bn: --out ", 17) == 0);
    assert_int_equal(count_entries(c->out), 1); /* only the blocker */
    assert_false(file_exists(c->out, "y.npy"));
    assert_false(file_exists(c->out, "running_mean.npy"));
    case_free(&d);
}

/* A failed write into a directory this run created removes the directory too. The first file
 * is made to fail with a file-size limit (inherited by the child, with SIGXFSZ ignored so that
 * write() returns EFBIG instead of killing it). */
static void test_failed_write_removes_created_dir(void **state) {
    tctx *c = *state;
    bn_case d;
    case_init(&d, BNK_LAYOUT_NC, 8, 4, 1, 1, 92); /* y.npy: 128 + 4*32 bytes */
    write_case(c, &d, BNK_DTYPE_F32);
    args a;
    full_args(&a, c, &d, true, c->out);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 200;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cli_result r;
    run_cli(c, &a, &r);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(r.status, 1);
    assert_true(strncmp(r.err, "bnkit: bn: --out ", 17) == 0);
    assert_int_equal(count_entries(c->out), -1); /* created, then removed */
    case_free(&d);
}

/* ---- The top level and the demo ------------------------------------------------------------- */

static void test_top_level(void **state) {
    tctx *c = *state;
    args a;
    cli_result r;
    args_init(&a);
    run_err(c, &a, 2, "missing command");
    arg(&a, "frobnicate");
    run_err(c, &a, 2, "frobnicate: unknown command");
    args_init(&a);
    arg(&a, "--frobnicate");
    run_err(c, &a, 2, "unknown option --frobnicate");

    args_init(&a);
    arg(&a, "--version");
    run_ok(c, &a, &r);
    assert_string_equal(r.out, "bnkit 0.1.0\n");
    args_init(&a);
    arg(&a, "--help");
    run_ok(c, &a, &r);
    assert_non_null(strstr(r.out, "usage: bnkit <command>"));
    assert_non_null(strstr(r.out, "  bn "));
    assert_non_null(strstr(r.out, "  demo "));
    args_init(&a);
    arg(&a, "help");
    arg(&a, "bn");
    run_ok(c, &a, &r);
    assert_non_null(strstr(r.out, "usage: bnkit bn"));
}

static void test_demo(void **state) {
    tctx *c = *state;
    args a;
    cli_result r;
    args_init(&a);
    arg(&a, "demo");
    arg(&a, "--seed=3");
    run_ok(c, &a, &r);
    int lines = 0;
    for (const char *p = r.out; *p; p++) lines += *p == '\n';
    assert_in_range(lines, 10, 30);
    assert_non_null(strstr(r.out, "kernel: "));
    assert_non_null(strstr(r.out, "PyTorch momentum 0.01"));
    /* reproducible from --seed */
    char first[sizeof r.out];
    memcpy(first, r.out, sizeof first);
    run_ok(c, &a, &r);
    assert_string_equal(first, r.out);
    arg(&a, "--seed");
    arg(&a, "-1");
    run_err(c, &a, 2, "--seed must be >= 0");
}

/* ---- (g) PyTorch fixtures ------------------------------------------------------------------- */

typedef struct torch_params {
    char layout[16];
    int train, unbiased, cumulative, center, scale;
    char momentum[32]; /* "0.1" or "none" */
    char eps[32];
    char step[32];
} torch_params;

static bool read_params(const char *path, torch_params *p) {
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = '\0';
        const char *k = line, *v = eq + 1;
        if (strcmp(k, "layout") == 0)
            snprintf(p->layout, sizeof p->layout, "%s", v);
        else if (strcmp(k, "torch_momentum") == 0)
            snprintf(p->momentum, sizeof p->momentum, "%s", v);
        else if (strcmp(k, "eps") == 0)
            snprintf(p->eps, sizeof p->eps, "%s", v);
        else if (strcmp(k, "step") == 0)
            snprintf(p->step, sizeof p->step, "%s", v);
        else if (strcmp(k, "train") == 0)
            p->train = strcmp(v, "1") == 0;
        else if (strcmp(k, "unbiased_running_var") == 0)
            p->unbiased = strcmp(v, "1") == 0;
        else if (strcmp(k, "cumulative") == 0)
            p->cumulative = strcmp(v, "1") == 0;
        else if (strcmp(k, "center") == 0)
            p->center = strcmp(v, "1") == 0;
        else if (strcmp(k, "scale") == 0)
            p->scale = strcmp(v, "1") == 0;
    }
    fclose(f);
    return p->layout[0] && p->momentum[0] && p->eps[0];
}

/* Compares a CLI output with a PyTorch file (float32 or float64). */
static void expect_torch(const char *got_dir, const char *got_name, const char *case_dir,
                         const char *want_name) {
    char gp[1100], wp[1100];
    snprintf(gp, sizeof gp, "%s/%s", got_dir, got_name);
    snprintf(wp, sizeof wp, "%s/%s", case_dir, want_name);
    bnk_npy got, want;
    if (bnk_npy_read(gp, &got) != BNK_OK) fail_msg("reading %s: %s", gp, bnk_errmsg());
    if (bnk_npy_read(wp, &want) != BNK_OK) fail_msg("reading %s: %s", wp, bnk_errmsg());
    assert_int_equal(got.dtype, BNK_DTYPE_F32);
    assert_int_equal(got.ndim, want.ndim);
    for (int i = 0; i < got.ndim; i++) assert_int_equal(got.shape[i], want.shape[i]);
    double *w = malloc(want.count * sizeof *w);
    assert_non_null(w);
    for (size_t i = 0; i < want.count; i++)
        w[i] = want.dtype == BNK_DTYPE_F32 ? ((float *)want.data)[i] : ((double *)want.data)[i];
    bnk_test_close_f32(gp, got.data, w, got.count, TORCH_ATOL, TORCH_RTOL);
    free(w);
    bnk_npy_free(&got);
    bnk_npy_free(&want);
}

static bool case_has(const char *dir, const char *name) {
    return file_exists(dir, name);
}

static void run_torch_case(tctx *c, const char *name) {
    char dir[512], params[600];
    snprintf(dir, sizeof dir, "%s/torch/%s", BNK_FIXTURE_DIR, name);
    snprintf(params, sizeof params, "%s/params.txt", dir);
    torch_params p;
    if (!read_params(params, &p)) fail_msg("%s: missing or incomplete", params);

    char out[200], xs[600], gs[600], bs[600], rms[600], rvs[600], dys[600], mom[64], eps[64],
        step[64];
    snprintf(out, sizeof out, "%s/torch_%s", c->root, name);
    snprintf(xs, sizeof xs, "%s/x.npy", dir);
    snprintf(gs, sizeof gs, "%s/gamma.npy", dir);
    snprintf(bs, sizeof bs, "%s/beta.npy", dir);
    snprintf(rms, sizeof rms, "%s/running_mean.npy", dir);
    snprintf(rvs, sizeof rvs, "%s/running_var.npy", dir);
    snprintf(dys, sizeof dys, "%s/dy.npy", dir);
    args a;
    args_init(&a);
    arg(&a, "bn");
    arg(&a, "--layout");
    arg(&a, p.layout);
    arg(&a, "--x");
    arg(&a, xs);
    if (p.scale) {
        arg(&a, "--gamma");
        arg(&a, gs);
    } else {
        arg(&a, "--no-scale");
    }
    if (p.center) {
        arg(&a, "--beta");
        arg(&a, bs);
    } else {
        arg(&a, "--no-center");
    }
    if (case_has(dir, "running_mean.npy")) {
        arg(&a, "--running-mean");
        arg(&a, rms);
    }
    if (case_has(dir, "running_var.npy")) {
        arg(&a, "--running-var");
        arg(&a, rvs);
    }
    snprintf(eps, sizeof eps, "--eps=%s", p.eps);
    arg(&a, eps);
    if (p.cumulative || strcmp(p.momentum, "none") == 0) {
        arg(&a, "--cumulative");
    } else {
        char *end;
        double pm = strtod(p.momentum, &end);
        if (*end || end == p.momentum) fail_msg("%s: bad torch_momentum '%s'", params, p.momentum);
        snprintf(mom, sizeof mom, "--momentum=%.17g", 1.0 - pm); /* bnkit beta = 1 - PyTorch p */
        arg(&a, mom);
    }
    if (p.unbiased) arg(&a, "--unbiased-running-var");
    if (p.step[0]) {
        snprintf(step, sizeof step, "--step=%s", p.step);
        arg(&a, step);
    }
    bool with_dy = p.train && case_has(dir, "dy.npy") && case_has(dir, "dx.npy");
    if (!p.train) arg(&a, "--infer");
    if (with_dy) {
        arg(&a, "--dy");
        arg(&a, dys);
    }
    arg(&a, "--out");
    arg(&a, out);
    cli_result r;
    run_ok(c, &a, &r);

    expect_torch(out, "y.npy", dir, "y.npy");
    if (!p.train) return;
    expect_torch(out, "running_mean.npy", dir, "running_mean_out.npy");
    expect_torch(out, "running_var.npy", dir, "running_var_out.npy");
    if (!with_dy) return;
    expect_torch(out, "dx.npy", dir, "dx.npy");
    if (p.scale) expect_torch(out, "dgamma.npy", dir, "dgamma.npy");
    if (p.center) expect_torch(out, "dbeta.npy", dir, "dbeta.npy");
}

/* Every case listed in tests/fixtures/torch/cases.txt (train/infer, every layout, cumulative,
 * biased/unbiased running variance, no affine parameters). Skipped when the fixtures are absent. */
static void test_torch_fixtures(void **state) {
    tctx *c = *state;
    char list[512];
    snprintf(list, sizeof list, "%s/torch/cases.txt", BNK_FIXTURE_DIR);
    FILE *f = fopen(list, "r");
    if (!f) {
        fprintf(stderr, "note: %s not found; PyTorch comparison skipped\n", list);
        skip();
    }
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n \t#")] = '\0';
        if (!line[0]) continue;
        run_torch_case(c, line);
        n++;
    }
    fclose(f);
    assert_true(n > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_train_nc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_nchw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_nhwc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_train_n1_spatial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_bn_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_cases_cover_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repeated_option_last_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_values_reach_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_infer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_float64_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shape_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_write_is_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_removes_created_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_top_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_demo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torch_fixtures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
