/* `bnkit bench`: kernel benchmarks. `bnkit bench bn` times the BN kernels:
 *
 *   bnkit bench bn [--shape N,C,H,W | N,C | A..F] [--layout nchw|nhwc|nchw16c|nchw8c|nc]
 *                  [--op fwd_train|fwd_infer|bwd|all] [--threads T] [--kernel NAME]
 *                  [--min-time S | --reps R] [--seed S] [--json] [BN flags]
 *
 * Each case allocates its tensors once, fills them from --seed, makes warm-up calls (so the data
 * is as warm in cache as its size allows), then times calls one by one and reports the median.
 * Effective bandwidth counts the bytes a kernel must move at least: 2 x 4 bytes per element for
 * the forwards (read x, write y), 3 x 4 for the backward (read x and dy, write dx); DESIGN.md §4.
 * Without --shape it runs issue 5's set: A (32,64,56,56), B (32,256,56,56), C (32,512,28,28),
 * D (32,2048,7,7) in NCHW and NHWC, and the MLP shapes E (256,128), F (100,128) in NC. */
#include <omp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bnkit/bn.h"
#include "cli/cli.h"
#include "core/rng.h"

static const char *const CTX = "bench";

typedef struct named_shape {
    const char *name;
    int64_t n, c, h, w;
} named_shape;

static const named_shape issue5_shapes[] = {
    {"A", 32, 64, 56, 56}, {"B", 32, 256, 56, 56}, {"C", 32, 512, 28, 28},
    {"D", 32, 2048, 7, 7}, {"E", 256, 128, 1, 1},  {"F", 100, 128, 1, 1},
};
enum { N_ISSUE5 = sizeof issue5_shapes / sizeof issue5_shapes[0] };

typedef enum bench_op { OP_FWD_TRAIN, OP_FWD_INFER, OP_BWD, N_OPS } bench_op;
static const char *const op_names[N_OPS] = {"fwd_train", "fwd_infer", "bwd"};
static const int op_bytes[N_OPS] = {8, 8, 12}; /* bytes per element that must move */
/* indexed by bnk_layout */
static const char *const layout_names[] = {"nc", "nchw", "nhwc", "nchw16c", "nchw8c"};
enum { N_LAYOUTS = sizeof layout_names / sizeof layout_names[0] };

static const bnk_cli_opt bench_opts[] = {
    {"shape", "N,C,H,W", "one shape (N,C for NC), or a name A..F of issue 5's set; default all"},
    {"layout", "L", "nchw, nhwc, nchw16c, nchw8c or nc; default nchw and nhwc (nc for 2-D)"},
    {"op", "OP", "fwd_train, fwd_infer, bwd or all (default)"},
    {"threads", "T", "OpenMP threads; default 1, 0 = OpenMP's default"},
    {"kernel", "NAME", "BN kernel (ref, opt, avx2, avx512); default the library's choice"},
    {"min-time", "S", "seconds of timed calls per case; default 0.3"},
    {"reps", "R", "exact number of timed calls per case (overrides --min-time)"},
    {"seed", "S", "seed of the data; default 1"},
    {"json", NULL, "one JSON object per case (JSON Lines)"},
    {"help", NULL, "print this help"},
};
enum { N_BENCH_OPTS = sizeof bench_opts / sizeof bench_opts[0] };

static void print_help(const bnk_cli_optgroup *groups) {
    printf("usage: bnkit bench bn [--shape N,C,H,W | N,C | A..F]\n"
           "                      [--layout nchw|nhwc|nchw16c|nchw8c|nc]\n"
           "                      [--op fwd_train|fwd_infer|bwd|all] [--threads T]\n"
           "                      [--kernel NAME] [--min-time S | --reps R] [--json]\n"
           "                      [BN flags]\n\n"
           "Times the BN kernels: the median of many calls on warm data, and the effective\n"
           "bandwidth 8 bytes/element (forwards) or 12 (backward) / median. Without --shape:\n"
           "A (32,64,56,56), B (32,256,56,56), C (32,512,28,28), D (32,2048,7,7) in NCHW and\n"
           "NHWC, E (256,128) and F (100,128) in NC; --layout picks one layout for A..D\n"
           "(nchw16c, nchw8c: oneDNN's blocked nChw16c, nChw8c).\n"
           "bench/bn/ compares with oneDNN, PyTorch and a STREAM triad (docs/PERFORMANCE.md).\n\n"
           "options:\n");
    bnk__cli_print_opts(stdout, &groups[0]);
    printf("\nBN flags (the configuration timed; default bnk_bn_config_default()):\n");
    bnk__cli_print_opts(stdout, &groups[1]);
}

typedef struct bench_opts_t {
    bnk_bn_config cfg;
    bool json;
    int threads;
    double min_time;
    int64_t reps; /* 0: from min_time */
    uint64_t seed;
    bool header_done; /* the text table's header was printed */
} bench_opts_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* 64-byte aligned floats, rounded up to whole cache lines. */
static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

typedef struct bench_bufs {
    float *x, *y, *dy, *dx, *gamma, *beta, *rm, *rv, *dg, *db;
    double *saved;
} bench_bufs;

static void bufs_free(bench_bufs *b) {
    free(b->x);
    free(b->y);
    free(b->dy);
    free(b->dx);
    free(b->gamma);
    free(b->beta);
    free(b->rm);
    free(b->rv);
    free(b->dg);
    free(b->db);
    free(b->saved);
}

static bool bufs_alloc(bench_bufs *b, size_t numel, size_t C) {
    memset(b, 0, sizeof *b);
    b->x = alloc_floats(numel);
    b->y = alloc_floats(numel);
    b->dy = alloc_floats(numel);
    b->dx = alloc_floats(numel);
    b->gamma = alloc_floats(C);
    b->beta = alloc_floats(C);
    b->rm = alloc_floats(C);
    b->rv = alloc_floats(C);
    b->dg = alloc_floats(C);
    b->db = alloc_floats(C);
    b->saved = malloc(BNK_BN_SAVED_FIELDS * C * sizeof(double));
    return b->x && b->y && b->dy && b->dx && b->gamma && b->beta && b->rm && b->rv && b->dg &&
           b->db && b->saved;
}

static bnk_status call_op(bench_op op, const bnk_bn_config *cfg, const bnk_bn_shape *s,
                          bench_bufs *b) {
    switch (op) {
    case OP_FWD_TRAIN:
        return bnk_bn_forward_train(cfg, s, 0, b->y, b->saved, b->rm, b->rv, b->x, b->gamma,
                                    b->beta);
    case OP_FWD_INFER:
        return bnk_bn_forward_infer(cfg, s, b->y, b->x, b->gamma, b->beta, b->rm, b->rv);
    case OP_BWD:
        return bnk_bn_backward(cfg, s, b->dx, b->dg, b->db, b->dy, b->x, b->y, b->gamma, b->saved);
    default:
        return BNK_ERR_PARAM;
    }
}

/* Times one case and prints its line. */
static int run_case(bench_opts_t *o, const char *name, const bnk_bn_shape *s, bench_op op) {
    const size_t numel = bnk_bn_shape_numel(s), C = (size_t)s->c;
    bench_bufs b;
    if (!bufs_alloc(&b, numel, C)) {
        bufs_free(&b);
        bnk__cli_error(CTX, "out of memory for %zu elements", numel);
        return BNK_CLI_FAIL;
    }
    uint64_t rng = o->seed;
    for (size_t i = 0; i < numel; i++) {
        b.x[i] = (float)(0.5 + bnk__rng_normal(&rng));
        b.dy[i] = (float)bnk__rng_normal(&rng);
    }
    for (size_t c = 0; c < C; c++) {
        b.gamma[c] = (float)(1.0 + 0.1 * bnk__rng_normal(&rng));
        b.beta[c] = (float)(0.1 * bnk__rng_normal(&rng));
        b.rm[c] = 0.0f;
        b.rv[c] = 1.0f;
        b.dg[c] = b.db[c] = 0.0f;
    }
    /* backward needs y and the saved statistics of a training forward */
    bnk_status st = call_op(OP_FWD_TRAIN, &o->cfg, s, &b);
    double *times = NULL;
    int rc = BNK_CLI_OK;
    if (st != BNK_OK) goto fail;
    /* warm-up: at least 2 calls and 0.05 s; estimates the time per call */
    double t0 = now_s(), elapsed;
    int warm = 0;
    do {
        if ((st = call_op(op, &o->cfg, s, &b)) != BNK_OK) goto fail;
        warm++;
        elapsed = now_s() - t0;
    } while (warm < 2 || elapsed < 0.05);
    int64_t reps = o->reps;
    if (reps <= 0) {
        double per = elapsed / warm;
        reps = (int64_t)(o->min_time / (per > 1e-9 ? per : 1e-9));
        if (reps < 5) reps = 5;
        if (reps > 200000) reps = 200000;
    }
    times = malloc((size_t)reps * sizeof(double));
    if (!times) {
        bnk__cli_error(CTX, "out of memory");
        rc = BNK_CLI_FAIL;
        goto done;
    }
    for (int64_t r = 0; r < reps; r++) {
        const double a = now_s();
        st = call_op(op, &o->cfg, s, &b);
        times[r] = now_s() - a;
        if (st != BNK_OK) goto fail;
    }
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    const double med = (reps % 2) ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    const double gbs = (double)op_bytes[op] * (double)numel / med * 1e-9;
    const int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
    if (o->json) {
        printf("{\"bench\": \"bn\", \"name\": \"%s\", \"op\": \"%s\", \"layout\": \"%s\", "
               "\"shape\": [%lld, %lld, %lld, %lld], \"threads\": %d, \"kernel\": \"%s\", "
               "\"median_us\": %.3f, \"min_us\": %.3f, \"reps\": %lld, \"gbs\": %.3f, "
               "\"bytes_per_elem\": %d}\n",
               name, op_names[op], layout_names[s->layout], (long long)s->n, (long long)s->c,
               (long long)s->h, (long long)s->w, threads, bnk_bn_kernel_name(), med * 1e6,
               times[0] * 1e6, (long long)reps, gbs, op_bytes[op]);
    } else {
        if (!o->header_done) {
            printf("%-4s %-9s %-7s %-16s %7s %-7s %11s %11s %8s\n", "case", "op", "layout", "shape",
                   "threads", "kernel", "median_us", "min_us", "GB/s");
            o->header_done = true;
        }
        char shape[64];
        snprintf(shape, sizeof shape, "%lldx%lldx%lldx%lld", (long long)s->n, (long long)s->c,
                 (long long)s->h, (long long)s->w);
        printf("%-4s %-9s %-7s %-16s %7d %-7s %11.1f %11.1f %8.2f\n", name, op_names[op],
               layout_names[s->layout], shape, threads, bnk_bn_kernel_name(), med * 1e6,
               times[0] * 1e6, gbs);
    }
    fflush(stdout);
    goto done;
fail:
    bnk__cli_error(CTX, "%s: %s", op_names[op], bnk_errmsg());
    rc = bnk__cli_exit_for(st);
done:
    free(times);
    bufs_free(&b);
    return rc;
}

/* "N,C,H,W" or "N,C" (h = w = 1). */
static int parse_shape(const char *s, int64_t dims[4], int *ndim) {
    int k = 0;
    const char *p = s;
    while (k < 4) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0) return BNK_CLI_USAGE;
        dims[k++] = (int64_t)v;
        if (*end == '\0') break;
        if (*end != ',') return BNK_CLI_USAGE;
        p = end + 1;
    }
    if (*p == '\0' || (k != 2 && k != 4)) return BNK_CLI_USAGE;
    for (const char *q = p; *q; q++)
        if (*q == ',') return BNK_CLI_USAGE; /* more than 4 numbers */
    if (k == 2) dims[2] = dims[3] = 1;
    *ndim = k;
    return BNK_CLI_OK;
}

static int parse_layout(const char *s, bnk_layout *out) {
    for (int l = 0; l < N_LAYOUTS; l++)
        if (strcmp(s, layout_names[l]) == 0) {
            *out = (bnk_layout)l;
            return BNK_CLI_OK;
        }
    bnk__cli_error(CTX, "--layout: expected nchw, nhwc, nchw16c, nchw8c or nc, got '%s'", s);
    return BNK_CLI_USAGE;
}

/* Runs every requested op of one shape in each of its layouts. */
static int run_shape(bench_opts_t *o, const char *name, const int64_t dims[4], bool flat,
                     const char *layout_opt, const bool ops[N_OPS]) {
    bnk_layout layouts[2];
    int nl = 0;
    if (layout_opt) {
        if (parse_layout(layout_opt, &layouts[0]) != BNK_CLI_OK) return BNK_CLI_USAGE;
        nl = 1;
    } else if (flat) {
        layouts[nl++] = BNK_LAYOUT_NC;
    } else {
        layouts[nl++] = BNK_LAYOUT_NCHW;
        layouts[nl++] = BNK_LAYOUT_NHWC;
    }
    for (int l = 0; l < nl; l++) {
        const bnk_bn_shape s = {layouts[l], dims[0], dims[1], dims[2], dims[3]};
        if (bnk_bn_shape_validate(&s) != BNK_OK) {
            bnk__cli_error(CTX, "--shape: %s", bnk_errmsg());
            return BNK_CLI_USAGE;
        }
        for (int op = 0; op < N_OPS; op++) {
            if (!ops[op]) continue;
            int rc = run_case(o, name, &s, (bench_op)op);
            if (rc != BNK_CLI_OK) return rc;
        }
    }
    return BNK_CLI_OK;
}

static int bench_bn(int argc, char **argv) {
    const char *vals[N_BENCH_OPTS], *bn_vals[BNK_CLI_BN_NOPTS];
    bnk_cli_optgroup groups[] = {{"", bench_opts, N_BENCH_OPTS, vals},
                                 {"", bnk__cli_bn_opts, BNK_CLI_BN_NOPTS, bn_vals}};
    int rc = bnk__cli_parse(CTX, argc, argv, groups, 2, NULL, 0, NULL);
    if (rc != BNK_CLI_OK) return rc;
    if (bnk__cli_value(&groups[0], "help")) {
        print_help(groups);
        return BNK_CLI_OK;
    }
    bench_opts_t o = {.cfg = bnk_bn_config_default(), .threads = 1, .min_time = 0.3, .seed = 1};
    if ((rc = bnk__cli_bn_apply(CTX, &groups[1], &o.cfg)) != BNK_CLI_OK) return rc;
    o.json = bnk__cli_value(&groups[0], "json") != NULL;
    const char *v;
    int64_t iv;
    if ((v = bnk__cli_value(&groups[0], "threads"))) {
        if ((rc = bnk__cli_parse_int64(CTX, "--threads", v, &iv)) != BNK_CLI_OK) return rc;
        if (iv < 0 || iv > 4096) {
            bnk__cli_error(CTX, "--threads: expected 0..4096, got %lld", (long long)iv);
            return BNK_CLI_USAGE;
        }
        o.threads = (int)iv;
    }
    if ((v = bnk__cli_value(&groups[0], "min-time"))) {
        if ((rc = bnk__cli_parse_double(CTX, "--min-time", v, &o.min_time)) != BNK_CLI_OK)
            return rc;
        if (!(o.min_time > 0.0 && o.min_time <= 3600.0)) {
            bnk__cli_error(CTX, "--min-time: expected seconds in (0, 3600], got %s", v);
            return BNK_CLI_USAGE;
        }
    }
    if ((v = bnk__cli_value(&groups[0], "reps"))) {
        if ((rc = bnk__cli_parse_int64(CTX, "--reps", v, &o.reps)) != BNK_CLI_OK) return rc;
        if (o.reps < 1 || o.reps > 10000000) {
            bnk__cli_error(CTX, "--reps: expected 1..10000000, got %s", v);
            return BNK_CLI_USAGE;
        }
    }
    if ((v = bnk__cli_value(&groups[0], "seed"))) {
        if ((rc = bnk__cli_parse_int64(CTX, "--seed", v, &iv)) != BNK_CLI_OK) return rc;
        o.seed = (uint64_t)iv;
    }
    bool ops[N_OPS] = {true, true, true};
    if ((v = bnk__cli_value(&groups[0], "op")) && strcmp(v, "all") != 0) {
        int found = -1;
        for (int k = 0; k < N_OPS; k++)
            if (strcmp(v, op_names[k]) == 0) found = k;
        if (found < 0) {
            bnk__cli_error(CTX, "--op: expected fwd_train, fwd_infer, bwd or all, got '%s'", v);
            return BNK_CLI_USAGE;
        }
        for (int k = 0; k < N_OPS; k++) ops[k] = k == found;
    }
    if ((v = bnk__cli_value(&groups[0], "kernel"))) {
        if (bnk_bn_kernel_select(v) != BNK_OK) {
            bnk__cli_error(CTX, "--kernel: %s", bnk_errmsg());
            return BNK_CLI_USAGE;
        }
    }
    const char *layout = bnk__cli_value(&groups[0], "layout");
    if (layout) {
        bnk_layout dummy;
        if ((rc = parse_layout(layout, &dummy)) != BNK_CLI_OK) return rc;
    }
    if (o.threads > 0) omp_set_num_threads(o.threads);

    const char *shape = bnk__cli_value(&groups[0], "shape");
    if (shape) {
        for (int k = 0; k < N_ISSUE5; k++)
            if (strcmp(shape, issue5_shapes[k].name) == 0) {
                const named_shape *ns = &issue5_shapes[k];
                const int64_t dims[4] = {ns->n, ns->c, ns->h, ns->w};
                return run_shape(&o, ns->name, dims, ns->h * ns->w == 1, layout, ops);
            }
        int64_t dims[4];
        int ndim;
        if (parse_shape(shape, dims, &ndim) != BNK_CLI_OK) {
            bnk__cli_error(CTX,
                           "--shape: expected N,C,H,W or N,C (positive integers) or A..F, "
                           "got '%s'",
                           shape);
            return BNK_CLI_USAGE;
        }
        return run_shape(&o, "-", dims, ndim == 2, layout, ops);
    }
    for (int k = 0; k < N_ISSUE5; k++) {
        const named_shape *ns = &issue5_shapes[k];
        const int64_t dims[4] = {ns->n, ns->c, ns->h, ns->w};
        const bool flat = ns->h * ns->w == 1;
        /* --layout nchw|nhwc|nchw16c|nchw8c applies to A..D (E and F stay NC); --layout nc runs
         * E and F only */
        if (!flat && layout && strcmp(layout, "nc") == 0) continue;
        const char *lay = flat ? "nc" : layout;
        if ((rc = run_shape(&o, ns->name, dims, flat, lay, ops)) != BNK_CLI_OK) return rc;
    }
    return BNK_CLI_OK;
}

int bnk__cmd_bench(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "bn") == 0) return bench_bn(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
        printf("usage: bnkit bench bn [options]   (bnkit bench bn --help)\n\n"
               "benchmarks:\n  bn       BN kernels: forward (training, inference) and backward\n");
        return BNK_CLI_OK;
    }
    if (argc < 2)
        bnk__cli_error(CTX, "missing benchmark name: bn (see 'bnkit bench --help')");
    else
        bnk__cli_error(CTX, "unknown benchmark '%s': expected bn (see 'bnkit bench --help')",
                       argv[1]);
    return BNK_CLI_USAGE;
}
