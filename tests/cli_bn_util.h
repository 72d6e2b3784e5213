/* Helpers shared by the tests of the `bnkit bn` command (test_cli_bn.c: numerics against the
 * library and PyTorch; test_cli_bn_flags.c: options and the top level; test_cli_bn_errors.c:
 * errors and I/O). The built executable BNK_CLI_PATH is run with posix_spawn in a fresh
 * temporary directory, its exit status and stderr captured, and its .npy outputs compared with
 * direct library calls on the same inputs.
 *
 * Each test (setup/teardown) gets <root>/in (inputs), <root>/out (the --out directory, not
 * created in advance) and <root>/stdout.txt, <root>/stderr.txt. */
#ifndef BNKIT_TEST_CLI_BN_UTIL_H
#define BNKIT_TEST_CLI_BN_UTIL_H

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

static inline void rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                char sub[1024];
                int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                if (n > 0 && (size_t)n < sizeof sub) rm_rf(sub); /* the tests make short names */
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline int setup(void **state) {
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

static inline int teardown(void **state) {
    tctx *c = *state;
    rm_rf(c->root);
    free(c);
    return 0;
}

/* Entries in dir other than . and ..; -1 when dir does not exist. */
static inline int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

static inline bool file_exists(const char *dir, const char *name) {
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

static inline void args_init(args *a) {
    a->v[0] = BNK_CLI_PATH;
    a->v[1] = NULL;
    a->n = 1;
}

static inline void arg(args *a, const char *s) {
    assert_true(a->n < MAXARGS);
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

typedef struct cli_result {
    int status;
    char out[8192];
    char err[4096];
} cli_result;

static inline void slurp(const char *path, char *buf, size_t size) {
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static inline void run_cli(const tctx *c, const args *a, cli_result *r) {
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

static inline void show_command(const args *a) {
    fprintf(stderr, "command:");
    for (int i = 0; i < a->n; i++) fprintf(stderr, " %s", a->v[i]);
    fprintf(stderr, "\n");
}

/* Runs and expects success with nothing on stderr. */
static inline void run_ok(const tctx *c, const args *a, cli_result *r) {
    run_cli(c, a, r);
    if (r->status != 0 || r->err[0]) {
        show_command(a);
        fail_msg("exit %d, stderr: %s", r->status, r->err);
    }
}

/* Runs and expects exit status `want`, exactly one line on stderr starting "bnkit: " (and
 * containing `needle` when not NULL), and no output file left in the --out directory. */
static inline void run_err(const tctx *c, const args *a, int want, const char *needle) {
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
    int64_t dims[5];
    size_t numel;
    float *x, *dy;
    float gamma[MAXC], beta[MAXC], rmean[MAXC], rvar[MAXC];
} bn_case;

static inline size_t elem_index(const bnk_bn_shape *s, int64_t n, int64_t c, int64_t h, int64_t w) {
    const int64_t B = s->layout == BNK_LAYOUT_NCHW16C ? 16 : 8;
    switch (s->layout) {
    case BNK_LAYOUT_NCHW:
        return (size_t)(((n * s->c + c) * s->h + h) * s->w + w);
    case BNK_LAYOUT_NCHW16C:
    case BNK_LAYOUT_NCHW8C: /* x[n][c/B][h][w][c%B] */
        return (size_t)((((n * (s->c / B) + c / B) * s->h + h) * s->w + w) * B + c % B);
    default: /* NC is NHWC with h = w = 1 */
        return (size_t)(((n * s->h + h) * s->w + w) * s->c + c);
    }
}

/* Channel c of x has mean 3 + c and standard deviation 2 + c/2: far from the running statistics
 * 0.5c and 0.5 + 0.25c, so that every clip, renorm bound and momentum setting matters. */
static inline void case_init(bn_case *d, bnk_layout layout, int64_t n, int64_t ch, int64_t h,
                             int64_t w, uint64_t seed) {
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
    } else if (layout == BNK_LAYOUT_NCHW16C || layout == BNK_LAYOUT_NCHW8C) {
        const int64_t B = layout == BNK_LAYOUT_NCHW16C ? 16 : 8;
        assert_true(ch % B == 0);
        d->layout_name = B == 16 ? "nchw16c" : "nchw8c";
        d->ndim = 5; /* oneDNN's memory: (N, C/B, H, W, B) */
        d->dims[0] = n, d->dims[1] = ch / B, d->dims[2] = h, d->dims[3] = w, d->dims[4] = B;
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

static inline void case_free(bn_case *d) {
    free(d->x);
    free(d->dy);
}

/* Writes x, gamma, beta, running stats and dy into c->in, as float32 or float64. */
static inline void write_array(const char *path, bnk_dtype dtype, int ndim, const int64_t *dims,
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

static inline void write_case(const tctx *c, const bn_case *d, bnk_dtype dtype) {
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
static inline void ref_compute(const bnk_bn_config *cfg, const bn_case *d, int64_t step, bool infer,
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

static inline void ref_free(bn_ref *r) {
    free(r->y);
    free(r->dx);
}

static inline bool differs(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > 1e-4f * (1.0f + fabsf(b[i]))) return true;
    return false;
}

/* Whether two references differ in any output (so that a flag is seen to matter). */
static inline bool ref_differs(const bn_ref *a, const bn_ref *b, const bn_case *d) {
    size_t cc = (size_t)d->shape.c;
    return differs(a->y, b->y, d->numel) || differs(a->dx, b->dx, d->numel) ||
           differs(a->rmean, b->rmean, cc) || differs(a->rvar, b->rvar, cc) ||
           differs(a->dgamma, b->dgamma, cc) || differs(a->dbeta, b->dbeta, cc);
}

/* Reads dir/name, checks float32 and the shape, compares with ref. */
static inline void expect_npy(const char *dir, const char *name, int ndim, const int64_t *dims,
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
static inline void expect_outputs(const char *dir, const bn_case *d, const bn_ref *r, bool infer,
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
static inline void full_args(args *a, const tctx *c, const bn_case *d, bool with_dy,
                             const char *out) {
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

#endif /* BNKIT_TEST_CLI_BN_UTIL_H */
