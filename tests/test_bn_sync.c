/* Synchronised BN without MPI: a group of K members are K threads sharing an in-process
 * bnk_bn_comm (a barrier; member 0 merges or sums everyone's buffers in a fixed order, then
 * every member copies the result). Checks that K = 1..4 members with uneven shards, one of
 * them empty, reproduce single-process BN over the concatenated batch in every layout and
 * every mode of bnk_cases (bn_cases.h), with every kernel (the synchronised functions run the
 * selected kernel's phases) and, on shapes large enough, OpenMP teams of 3 inside each member
 * (the kernels' threaded sweeps); C > 1024 through the comm's workspace; the error paths. */
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bn/bn_moments.h"
#include "bn_sync_cases.h"

/* ---- In-process group -------------------------------------------------------------------- */

enum {
    WIDE_C = 1100,             /* channels of the test beyond the backward's stack scratch */
    GROUP_CAP = 4 * WIDE_C + 8 /* doubles of the shared result buffer */
};

typedef struct group {
    int size;
    pthread_barrier_t barrier;
    double *slot[SYNC_MAX_MEMBERS]; /* each member's buffer during an operation */
    double result[GROUP_CAP];
    bnk_status fail_with; /* != BNK_OK: every operation fails with it (error-path tests) */
} group;

typedef struct member_ctx {
    group *g;
    int rank;
    bnk_bn_comm comm;
    double work[GROUP_CAP]; /* lent by group_workspace */
} member_ctx;

static bnk_status group_workspace(void *ctx, size_t len, double **out) {
    member_ctx *mc = ctx;
    *out = len <= GROUP_CAP ? mc->work : NULL;
    return *out ? BNK_OK : BNK_ERR_NOMEM;
}

static bnk_status group_merge(void *ctx, double *mom, size_t C) {
    member_ctx *mc = ctx;
    group *g = mc->g;
    if (g->fail_with != BNK_OK) return g->fail_with;
    g->slot[mc->rank] = mom;
    pthread_barrier_wait(&g->barrier);
    if (mc->rank == 0) {
        for (size_t c = 0; c < C; c++) {
            double n = g->slot[0][c], mean = g->slot[0][C + c], m2 = g->slot[0][2 * C + c];
            for (int k = 1; k < g->size; k++)
                bnk__bn_moments_merge(&n, &mean, &m2, g->slot[k][c], g->slot[k][C + c],
                                      g->slot[k][2 * C + c]);
            g->result[c] = n, g->result[C + c] = mean, g->result[2 * C + c] = m2;
        }
    }
    pthread_barrier_wait(&g->barrier);
    memcpy(mom, g->result, 3 * C * sizeof(double));
    pthread_barrier_wait(&g->barrier); /* nobody reuses result before everyone has copied it */
    return BNK_OK;
}

static bnk_status group_sum(void *ctx, double *buf, size_t len) {
    member_ctx *mc = ctx;
    group *g = mc->g;
    if (g->fail_with != BNK_OK) return g->fail_with;
    g->slot[mc->rank] = buf;
    pthread_barrier_wait(&g->barrier);
    if (mc->rank == 0)
        for (size_t i = 0; i < len; i++) {
            double s = 0.0;
            for (int k = 0; k < g->size; k++) s += g->slot[k][i];
            g->result[i] = s;
        }
    pthread_barrier_wait(&g->barrier);
    memcpy(buf, g->result, len * sizeof(double));
    pthread_barrier_wait(&g->barrier);
    return BNK_OK;
}

typedef struct job {
    member_ctx ctx;
    bnk_sync_member *mb;
    const bnk_sync_problem *p;
    const bnk_bn_config *cfg;
    int64_t step;
    int threads; /* OpenMP team size of the member's kernels; 0: the default */
} job;

static void *member_main(void *arg) {
    job *j = arg;
    if (j->threads > 0) omp_set_num_threads(j->threads);
    bnk_sync_member_run(j->mb, j->p, j->cfg, j->step, &j->ctx.comm);
    return NULL;
}

/* Runs a K-member group over the shards n[] of p; results land in mb[0..K). */
static void run_group(const bnk_sync_problem *p, const bnk_bn_config *cfg, int64_t step, int K,
                      bnk_sync_member *mb, bnk_status fail_with, int threads) {
    group g = {.size = K, .fail_with = fail_with};
    assert_int_equal(pthread_barrier_init(&g.barrier, NULL, (unsigned)K), 0);
    job *jobs = calloc(SYNC_MAX_MEMBERS, sizeof *jobs); /* ~35 KiB each: not on the stack */
    assert_non_null(jobs);
    pthread_t th[SYNC_MAX_MEMBERS];
    for (int k = 0; k < K; k++) {
        jobs[k].ctx = (member_ctx){&g, k, {group_merge, group_sum, NULL, NULL}, {0}};
        jobs[k].ctx.comm.ctx = &jobs[k].ctx;
        jobs[k].mb = &mb[k], jobs[k].p = p, jobs[k].cfg = cfg, jobs[k].step = step;
        jobs[k].threads = threads;
        assert_int_equal(pthread_create(&th[k], NULL, member_main, &jobs[k]), 0);
    }
    for (int k = 0; k < K; k++) pthread_join(th[k], NULL);
    pthread_barrier_destroy(&g.barrier);
    free(jobs);
}

/* ---- Equivalence ------------------------------------------------------------------------- */

static void test_equivalence(void **state) {
    (void)state;
    /* The small shapes run on one thread; the large ones (members' shards up to ~190k values)
     * in OpenMP teams of 3, so that the kernels split channels and rows between threads (nChw8c's
     * 2 blocks: rows with 3 threads, blocks with 2). */
    const struct {
        bnk_layout layout;
        int64_t n, h, w;
        int threads;
    } shapes[] = {{BNK_LAYOUT_NC, 13, 1, 1, 0},       {BNK_LAYOUT_NCHW, 11, 3, 2, 0},
                  {BNK_LAYOUT_NHWC, 11, 3, 2, 0},     {BNK_LAYOUT_NCHW8C, 11, 3, 2, 0},
                  {BNK_LAYOUT_NCHW, 40, 32, 32, 3},   {BNK_LAYOUT_NHWC, 40, 32, 32, 3},
                  {BNK_LAYOUT_NCHW8C, 40, 16, 16, 3}, {BNK_LAYOUT_NCHW8C, 24, 16, 16, 2},
                  {BNK_LAYOUT_NC, 20000, 1, 1, 3}};
    bnk_case cases[64];
    const size_t ncases = bnk_cases(cases, 64);
    assert_true(ncases <= 64);
    const int team0 = omp_get_max_threads();
    int bad = 0, runs = 0;
    for (int kern = 0; kern < bnk_bn_kernel_count(); kern++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const char *kname = bnk_bn_kernel_at(kern);
            assert_int_equal(bnk_bn_kernel_select(kname), BNK_OK);
            bnk_sync_problem p;
            assert_int_equal(bnk_sync_problem_init(&p, shapes[s].layout, shapes[s].n, shapes[s].h,
                                                   shapes[s].w, 42 + s),
                             0);
            for (size_t ci = 0; ci < ncases; ci++) {
                omp_set_num_threads(shapes[s].threads > 0 ? shapes[s].threads : team0);
                assert_int_equal(bnk_sync_reference(&p, &cases[ci].cfg, cases[ci].step), BNK_OK);
                omp_set_num_threads(team0);
                for (int K = 1; K <= SYNC_MAX_MEMBERS; K++) {
                    int64_t n[SYNC_MAX_MEMBERS];
                    bnk_sync_shards(K, shapes[s].n, n);
                    bnk_sync_member mb[SYNC_MAX_MEMBERS];
                    for (int k = 0; k < K; k++)
                        assert_int_equal(bnk_sync_member_init(&mb[k], &p, n, k), 0);
                    run_group(&p, &cases[ci].cfg, cases[ci].step, K, mb, BNK_OK, shapes[s].threads);
                    char label[160];
                    snprintf(label, sizeof label, "%s %s %s n=%lld K=%d", kname,
                             bnk_sync_layout_name(shapes[s].layout), cases[ci].name,
                             (long long)shapes[s].n, K);
                    double dg[SYNC_MAX_C] = {0}, db[SYNC_MAX_C] = {0};
                    for (int k = 0; k < K; k++) {
                        bad += bnk_sync_compare_member(&p, &mb[k], k, label);
                        for (size_t c = 0; c < p.c; c++)
                            dg[c] += mb[k].dgamma[c], db[c] += mb[k].dbeta[c];
                        /* every member ends with the same statistics, bit for bit */
                        if (memcmp(mb[k].saved, mb[0].saved, sizeof mb[0].saved) ||
                            memcmp(mb[k].rm, mb[0].rm, sizeof mb[0].rm) ||
                            memcmp(mb[k].rv, mb[0].rv, sizeof mb[0].rv)) {
                            printf("FAIL [%s] member %d's statistics differ from member 0's\n",
                                   label, k);
                            bad++;
                        }
                    }
                    bad += bnk_sync_compare_params(&p, dg, db, label);
                    for (int k = 0; k < K; k++) bnk_sync_member_free(&mb[k]);
                    runs++;
                }
            }
            bnk_sync_problem_free(&p);
        }
    assert_int_equal(bnk_bn_kernel_select(bnk_bn_kernel_at(bnk_bn_kernel_count() - 1)), BNK_OK);
    printf("%d synchronised runs compared, %d failures\n", runs, bad);
    assert_int_equal(bad, 0);
}

/* ---- Errors ------------------------------------------------------------------------------ */

/* m = 1 and m = 0 over the whole group are BNK_ERR_BATCH on every member, with y and the
 * running statistics untouched; the backward judges its global m the same way. */
static void test_global_batch_too_small(void **state) {
    (void)state;
    bnk_sync_problem p;
    assert_int_equal(bnk_sync_problem_init(&p, BNK_LAYOUT_NC, 1, 1, 1, 7), 0);
    bnk_bn_config cfg = bnk_bn_config_default();
    for (int total = 0; total <= 1; total++) {
        int64_t n[2] = {0, total};
        bnk_sync_member mb[2];
        for (int k = 0; k < 2; k++) {
            assert_int_equal(bnk_sync_member_init(&mb[k], &p, n, k), 0);
            if (mb[k].y) mb[k].y[0] = 123.0f;
        }
        run_group(&p, &cfg, 0, 2, mb, BNK_OK, 0);
        for (int k = 0; k < 2; k++) {
            assert_int_equal(mb[k].st_forward, BNK_ERR_BATCH);
            assert_memory_equal(mb[k].rm, p.rm0, sizeof p.rm0);
            assert_memory_equal(mb[k].rv, p.rv0, sizeof p.rv0);
            if (mb[k].y) assert_true(mb[k].y[0] == 123.0f);
            bnk_sync_member_free(&mb[k]);
        }
    }
    bnk_sync_problem_free(&p);
}

static bnk_status io_fail(void *ctx, double *buf, size_t len) {
    (void)ctx, (void)buf, (void)len;
    return BNK_ERR_IO;
}
static bnk_status io_fail_merge(void *ctx, double *buf, size_t channels) {
    (void)ctx, (void)buf, (void)channels;
    return BNK_ERR_IO;
}

static void test_bad_args(void **state) {
    (void)state;
    bnk_sync_problem p;
    assert_int_equal(bnk_sync_problem_init(&p, BNK_LAYOUT_NHWC, 4, 2, 2, 9), 0);
    const bnk_bn_config cfg = bnk_bn_config_default();
    bnk_bn_config bad_cfg = cfg;
    bad_cfg.eps = 0.0;
    const bnk_bn_comm failing = {io_fail_merge, io_fail, NULL, NULL};
    const bnk_bn_comm no_ops = {NULL, NULL, NULL, NULL};
    float *y = malloc(p.numel * sizeof(float)), *dx = malloc(p.numel * sizeof(float));
    assert_non_null(y);
    assert_non_null(dx);
    for (size_t i = 0; i < p.numel; i++) y[i] = dx[i] = -7.0f;
    double saved[BNK_BN_SAVED_FIELDS * SYNC_C];
    float rm[SYNC_C], rv[SYNC_C], dg[SYNC_C] = {0}, db[SYNC_C] = {0};
    memcpy(rm, p.rm0, sizeof rm);
    memcpy(rv, p.rv0, sizeof rv);
    bnk_bn_shape shape = p.shape, neg = p.shape, zero_c = p.shape;
    neg.n = -1;
    zero_c.c = 0;

#define FWD(cfg_, shape_, y_, saved_, x_, comm_)                                                   \
    bnk_bn_forward_train_sync(cfg_, shape_, 0, y_, saved_, rm, rv, x_, p.gamma, p.beta, comm_)
    assert_int_equal(FWD(&cfg, &shape, y, saved, p.x, NULL), BNK_ERR_NULL);
    assert_int_equal(FWD(&cfg, &shape, y, saved, p.x, &no_ops), BNK_ERR_NULL);
    assert_int_equal(FWD(&bad_cfg, &shape, y, saved, p.x, &failing), BNK_ERR_PARAM);
    assert_int_equal(FWD(&cfg, &neg, y, saved, p.x, &failing), BNK_ERR_SIZE);
    assert_int_equal(FWD(&cfg, &zero_c, y, saved, p.x, &failing), BNK_ERR_SIZE);
    assert_int_equal(FWD(&cfg, &shape, NULL, saved, p.x, &failing), BNK_ERR_NULL);
    assert_int_equal(FWD(&cfg, &shape, y, NULL, p.x, &failing), BNK_ERR_NULL);
    assert_int_equal(FWD(&cfg, &shape, y, saved, NULL, &failing), BNK_ERR_NULL);
    assert_int_equal(bnk_bn_forward_train_sync(&cfg, &shape, -1, y, saved, rm, rv, p.x, p.gamma,
                                               p.beta, &failing),
                     BNK_ERR_PARAM);
    /* a communication error comes back as is; y and the running statistics stay untouched */
    assert_int_equal(FWD(&cfg, &shape, y, saved, p.x, &failing), BNK_ERR_IO);
    assert_memory_equal(rm, p.rm0, sizeof rm);
    assert_memory_equal(rv, p.rv0, sizeof rv);
    for (size_t i = 0; i < p.numel; i++) assert_true(y[i] == -7.0f);
#undef FWD

    /* a valid saved for the backward checks */
    assert_int_equal(bnk_sync_reference(&p, &cfg, 0), BNK_OK);
#define BWD(cfg_, shape_, dx_, dy_, x_, comm_)                                                     \
    bnk_bn_backward_sync(cfg_, shape_, dx_, dg, db, dy_, x_, p.y, p.gamma, p.saved, comm_)
    assert_int_equal(BWD(&cfg, &shape, dx, p.dy, p.x, NULL), BNK_ERR_NULL);
    assert_int_equal(BWD(&cfg, &shape, dx, p.dy, p.x, &no_ops), BNK_ERR_NULL);
    assert_int_equal(BWD(&bad_cfg, &shape, dx, p.dy, p.x, &failing), BNK_ERR_PARAM);
    assert_int_equal(BWD(&cfg, &neg, dx, p.dy, p.x, &failing), BNK_ERR_SIZE);
    assert_int_equal(BWD(&cfg, &shape, NULL, p.dy, p.x, &failing), BNK_ERR_NULL);
    assert_int_equal(BWD(&cfg, &shape, dx, NULL, p.x, &failing), BNK_ERR_NULL);
    assert_int_equal(BWD(&cfg, &shape, dx, p.dy, NULL, &failing), BNK_ERR_NULL);
    assert_int_equal(
        bnk_bn_backward_sync(&cfg, &shape, dx, dg, db, p.dy, p.x, p.y, p.gamma, NULL, &failing),
        BNK_ERR_NULL);
    bnk_bn_config relu = cfg;
    relu.fuse_relu = true;
    assert_int_equal(bnk_bn_backward_sync(&relu, &shape, dx, dg, db, p.dy, p.x, NULL, p.gamma,
                                          p.saved, &failing),
                     BNK_ERR_NULL);
    assert_int_equal(BWD(&cfg, &shape, dx, p.dy, p.x, &failing), BNK_ERR_IO);
    for (size_t i = 0; i < p.numel; i++) assert_true(dx[i] == -7.0f);
    for (size_t c = 0; c < SYNC_C; c++) assert_true(dg[c] == 0.0f && db[c] == 0.0f);
#undef BWD
    free(y);
    free(dx);
    bnk_sync_problem_free(&p);
}

/* ---- More channels than the backward's stack scratch ----------------------------------- */

typedef struct wide_job {
    member_ctx ctx;
    const bnk_bn_config *cfg;
    bnk_bn_shape shape;
    const float *x, *dy, *gamma, *beta;
    float *y, *dx, *rm, *rv, *dgamma, *dbeta; /* y, dx: the member's shard; others [WIDE_C] */
    double *saved;
    bnk_status st_forward, st_backward;
} wide_job;

static void *wide_main(void *arg) {
    wide_job *j = arg;
    j->st_forward = bnk_bn_forward_train_sync(j->cfg, &j->shape, 0, j->y, j->saved, j->rm, j->rv,
                                              j->x, j->gamma, j->beta, &j->ctx.comm);
    return NULL;
}

static void *wide_back_main(void *arg) {
    wide_job *j = arg;
    j->st_backward = bnk_bn_backward_sync(j->cfg, &j->shape, j->dx, j->dgamma, j->dbeta, j->dy,
                                          j->x, j->y, j->gamma, j->saved, &j->ctx.comm);
    return NULL;
}

/* C = WIDE_C > 1024 over two members (NHWC, shards of 2 and 3 samples): with the comm's
 * workspace the backward makes its one sum call and matches single-process BN; without it the
 * backward fails with BNK_ERR_NULL before communicating, every output untouched. */
static void test_wide_channels(void **state) {
    (void)state;
    const int64_t N = 5, H = 2, W = 3, n0 = 2;
    const size_t C = WIDE_C, per = (size_t)(H * W) * C, numel = (size_t)N * per;
    const bnk_bn_config cfg = bnk_bn_config_default();
    float *buf = calloc(6 * numel + 12 * C, sizeof(float));
    double *saved = calloc(3 * BNK_BN_SAVED_FIELDS * C, sizeof(double));
    assert_non_null(buf);
    assert_non_null(saved);
    float *x = buf, *dy = x + numel, *y_ref = dy + numel, *dx_ref = y_ref + numel;
    float *y = dx_ref + numel, *dx = y + numel, *par = dx + numel;
    float *gamma = par, *beta = par + C, *rm_ref = par + 2 * C, *rv_ref = par + 3 * C;
    float *dg_ref = par + 4 * C, *db_ref = par + 5 * C;
    uint64_t rng = 99;
    for (size_t i = 0; i < numel; i++) {
        x[i] = (float)(1.0 + 2.0 * bnk_test_normal(&rng));
        dy[i] = (float)bnk_test_normal(&rng);
    }
    for (size_t c = 0; c < C; c++) gamma[c] = 1.0f + 0.001f * (float)c, rv_ref[c] = 1.0f;
    const bnk_bn_shape whole = {BNK_LAYOUT_NHWC, N, (int64_t)C, H, W};
    assert_int_equal(
        bnk_bn_forward_train(&cfg, &whole, 0, y_ref, saved, rm_ref, rv_ref, x, gamma, beta),
        BNK_OK);
    assert_int_equal(
        bnk_bn_backward(&cfg, &whole, dx_ref, dg_ref, db_ref, dy, x, y_ref, gamma, saved), BNK_OK);

    for (int with_ws = 1; with_ws >= 0; with_ws--) {
        group g = {.size = 2, .fail_with = BNK_OK};
        assert_int_equal(pthread_barrier_init(&g.barrier, NULL, 2), 0);
        wide_job *jobs = calloc(2, sizeof *jobs);
        float *mpar = calloc(8 * C, sizeof(float));
        assert_non_null(jobs);
        assert_non_null(mpar);
        pthread_t th[2];
        for (int k = 0; k < 2; k++) {
            wide_job *j = &jobs[k];
            const size_t off = k ? (size_t)n0 * per : 0;
            j->ctx = (member_ctx){&g, k, {group_merge, group_sum, NULL, NULL}, {0}};
            j->ctx.comm.ctx = &j->ctx;
            if (with_ws) j->ctx.comm.workspace = group_workspace;
            j->cfg = &cfg;
            j->shape = whole;
            j->shape.n = k ? N - n0 : n0;
            j->x = x + off, j->dy = dy + off, j->y = y + off, j->dx = dx + off;
            j->gamma = gamma, j->beta = beta;
            j->rm = mpar + 4 * C * (size_t)k, j->rv = j->rm + C;
            j->dgamma = j->rm + 2 * C, j->dbeta = j->rm + 3 * C;
            for (size_t c = 0; c < C; c++) j->rv[c] = 1.0f;
            j->saved = saved + (size_t)(k + 1) * BNK_BN_SAVED_FIELDS * C;
            assert_int_equal(pthread_create(&th[k], NULL, wide_main, j), 0);
        }
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        for (int k = 0; k < 2; k++) assert_int_equal(jobs[k].st_forward, BNK_OK);
        for (size_t i = 0; i < numel; i++) dx[i] = -7.0f;
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_create(&th[k], NULL, wide_back_main, &jobs[k]), 0);
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        pthread_barrier_destroy(&g.barrier);
        int bad = 0;
        if (with_ws) {
            const double ymax = bnk_sync_maxabs_f(y_ref, numel);
            const double dxmax = bnk_sync_maxabs_f(dx_ref, numel);
            bad += bnk_sync_close_f("y", "wide", -1, numel, y, y_ref, 1e-5 * ymax, 1e-5);
            bad += bnk_sync_close_f("dx", "wide", -1, numel, dx, dx_ref, 1e-5 * dxmax, 1e-5);
            for (int k = 0; k < 2; k++) {
                assert_int_equal(jobs[k].st_backward, BNK_OK);
                bad += bnk_sync_close_f("running_var", "wide", k, C, jobs[k].rv, rv_ref, 0.0, 2e-7);
            }
            float dgs[WIDE_C];
            for (size_t c = 0; c < C; c++) dgs[c] = jobs[0].dgamma[c] + jobs[1].dgamma[c];
            bad += bnk_sync_close_f("sum of dgamma", "wide", -1, C, dgs, dg_ref,
                                    1e-5 * bnk_sync_maxabs_f(dg_ref, C), 1e-5);
        } else {
            for (int k = 0; k < 2; k++) {
                assert_int_equal(jobs[k].st_backward, BNK_ERR_NULL);
                for (size_t c = 0; c < C; c++) assert_true(jobs[k].dgamma[c] == 0.0f);
            }
            for (size_t i = 0; i < numel; i++) assert_true(dx[i] == -7.0f);
        }
        assert_int_equal(bad, 0);
        free(jobs);
        free(mpar);
    }
    free(buf);
    free(saved);
}

/* ---- Layer ------------------------------------------------------------------------------- */

typedef struct layer_job {
    member_ctx ctx;
    bnk_bn_layer *layer;
    bnk_bn_shape shape;
    const float *x, *dy;
    float *y, *dx;
    bnk_status st;
} layer_job;

static void *layer_main(void *arg) {
    layer_job *j = arg;
    for (int it = 0; it < 2 && j->st == BNK_OK; it++) { /* two steps: the step counter advances */
        j->st = bnk_bn_layer_forward(j->layer, &j->shape, true, j->y, j->x);
        if (j->st == BNK_OK)
            j->st = bnk_bn_layer_backward(j->layer, &j->shape, j->dx, j->dy, j->x, j->y);
    }
    return NULL;
}

/* Two layers synchronised over a 2-member group equal one layer over the whole batch. */
static void test_layer(void **state) {
    (void)state;
    bnk_sync_problem p;
    assert_int_equal(bnk_sync_problem_init(&p, BNK_LAYOUT_NCHW, 6, 2, 3, 11), 0);
    bnk_bn_config cfg = bnk_bn_config_default();
    cfg.cumulative = true;
    cfg.fuse_relu = true;
    bnk_bn_layer *whole, *part[2];
    assert_int_equal(bnk_bn_layer_create(&whole, &cfg, SYNC_C), BNK_OK);
    float *y = malloc(p.numel * sizeof(float)), *dx = malloc(p.numel * sizeof(float));
    assert_non_null(y);
    assert_non_null(dx);
    for (int it = 0; it < 2; it++) {
        assert_int_equal(bnk_bn_layer_forward(whole, &p.shape, true, p.y, p.x), BNK_OK);
        assert_int_equal(bnk_bn_layer_backward(whole, &p.shape, p.dx, p.dy, p.x, p.y), BNK_OK);
    }
    group g = {.size = 2, .fail_with = BNK_OK};
    assert_int_equal(pthread_barrier_init(&g.barrier, NULL, 2), 0);
    layer_job jobs[2];
    pthread_t th[2];
    const int64_t n0[2] = {0, 2}, nk[2] = {2, 4};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(bnk_bn_layer_create(&part[k], &cfg, SYNC_C), BNK_OK);
        const size_t off = (size_t)n0[k] * p.per_sample;
        jobs[k] = (layer_job){{&g, k, {group_merge, group_sum, NULL, NULL}, {0}},
                              part[k],
                              p.shape,
                              p.x + off,
                              p.dy + off,
                              y + off,
                              dx + off,
                              BNK_OK};
        jobs[k].shape.n = nk[k];
        jobs[k].ctx.comm.ctx = &jobs[k].ctx;
        bnk_bn_layer_set_comm(part[k], &jobs[k].ctx.comm);
        assert_int_equal(pthread_create(&th[k], NULL, layer_main, &jobs[k]), 0);
    }
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    pthread_barrier_destroy(&g.barrier);
    for (int k = 0; k < 2; k++) assert_int_equal(jobs[k].st, BNK_OK);
    const double ymax = bnk_sync_maxabs_f(p.y, p.numel), dxmax = bnk_sync_maxabs_f(p.dx, p.numel);
    int bad = bnk_sync_close_f("y", "layer", 0, p.numel, y, p.y, 1e-5 * ymax, 1e-5) +
              bnk_sync_close_f("dx", "layer", 0, p.numel, dx, p.dx, 1e-5 * dxmax, 1e-5);
    float dgs[SYNC_C];
    for (size_t c = 0; c < SYNC_C; c++)
        dgs[c] = bnk_bn_layer_dgamma(part[0])[c] + bnk_bn_layer_dgamma(part[1])[c];
    bad += bnk_sync_close_f("dgamma", "layer", 0, SYNC_C, dgs, bnk_bn_layer_dgamma(whole),
                            1e-5 * bnk_sync_maxabs_f(bnk_bn_layer_dgamma(whole), SYNC_C), 1e-5);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(bnk_bn_layer_step(part[k]), 2);
        bad +=
            bnk_sync_close_f("running_mean", "layer", k, SYNC_C, bnk_bn_layer_running_mean(part[k]),
                             bnk_bn_layer_running_mean(whole), 0.0, 2e-7);
        bad +=
            bnk_sync_close_f("running_var", "layer", k, SYNC_C, bnk_bn_layer_running_var(part[k]),
                             bnk_bn_layer_running_var(whole), 0.0, 2e-7);
        bnk_bn_layer_destroy(part[k]);
    }
    assert_int_equal(bad, 0);
    bnk_bn_layer_destroy(whole);
    free(y);
    free(dx);
    bnk_sync_problem_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equivalence), cmocka_unit_test(test_global_batch_too_small),
        cmocka_unit_test(test_bad_args),    cmocka_unit_test(test_wide_channels),
        cmocka_unit_test(test_layer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
