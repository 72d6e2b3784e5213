/* Synchronised BN over MPI against local BN: per-call time of the training forward and the
 * backward on the ResNet-50 BN shapes, each rank holding a shard of N/K samples.
 *
 *     OMP_NUM_THREADS=1 mpirun -np 2 bench_bn_mpi [reps]
 *
 * Columns, per rank shard (times are the slowest rank's, median of `reps` calls, µs):
 *   local      bnk_bn_forward_train / bnk_bn_backward on the shard alone (default kernel)
 *   sync-0     the synchronised entry points with a communicator that does nothing (the cost of
 *              the kernel's phases, run one after the other, without communication)
 *   sync       the synchronised entry points over MPI (bnkit/bn_mpi.h)
 *   overhead   sync - local
 *   bytes      doubles exchanged per call and rank: forward 3*C*8, backward (2*C + 1)*8 — O(C),
 *              independent of N*H*W. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>
#include <omp.h>

#include "bnkit/bn.h"
#include "bnkit/bn_mpi.h"

static bnk_status noop_merge(void *ctx, double *moments, size_t channels) {
    (void)ctx, (void)moments, (void)channels;
    return BNK_OK;
}
static bnk_status noop_sum(void *ctx, double *buf, size_t len) {
    (void)ctx, (void)buf, (void)len;
    return BNK_OK;
}
/* The backward's scratch beyond 1024 channels (bnk_bn_comm.workspace): 4*C + 1 doubles. */
static double noop_work[4 * 2048 + 1];
static bnk_status noop_workspace(void *ctx, size_t len, double **out) {
    (void)ctx;
    *out = len <= sizeof noop_work / sizeof noop_work[0] ? noop_work : NULL;
    return *out ? BNK_OK : BNK_ERR_NOMEM;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { OP_FWD, OP_BWD };

typedef struct bench_ctx {
    const bnk_bn_config *cfg;
    const bnk_bn_shape *shape;
    float *x, *y, *dy, *dx, *gamma, *beta, *rm, *rv, *dgamma, *dbeta;
    double *saved;
} bench_ctx;

/* One call; comm NULL: local. Returns the status. */
static bnk_status call(const bench_ctx *b, int op, const bnk_bn_comm *comm) {
    if (op == OP_FWD)
        return comm ? bnk_bn_forward_train_sync(b->cfg, b->shape, 1, b->y, b->saved, b->rm, b->rv,
                                                b->x, b->gamma, b->beta, comm)
                    : bnk_bn_forward_train(b->cfg, b->shape, 1, b->y, b->saved, b->rm, b->rv, b->x,
                                           b->gamma, b->beta);
    return comm ? bnk_bn_backward_sync(b->cfg, b->shape, b->dx, b->dgamma, b->dbeta, b->dy, b->x,
                                       b->y, b->gamma, b->saved, comm)
                : bnk_bn_backward(b->cfg, b->shape, b->dx, b->dgamma, b->dbeta, b->dy, b->x, b->y,
                                  b->gamma, b->saved);
}

/* Median per-call time in µs over reps calls, each started together after a barrier; the
 * slowest rank's. */
static double time_op(const bench_ctx *b, int op, const bnk_bn_comm *comm, int reps) {
    double t[64];
    if (reps > 64) reps = 64;
    if (call(b, op, comm) != BNK_OK) { /* warm-up */
        fprintf(stderr, "bench_bn_mpi: %s\n", bnk_errmsg());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        call(b, op, comm);
        t[r] = (MPI_Wtime() - t0) * 1e6;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    double med = t[reps / 2], worst = 0.0;
    MPI_Allreduce(&med, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const int reps = argc > 1 ? atoi(argv[1]) : 11;
    bnk_bn_mpi_comm *bc = NULL;
    if (bnk_bn_mpi_comm_create(&bc, MPI_COMM_WORLD) != BNK_OK ||
        bnk_bn_mpi_comm_reserve(bc, 2048) != BNK_OK) {
        fprintf(stderr, "bench_bn_mpi: %s\n", bnk_errmsg());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const bnk_bn_comm noop = {noop_merge, noop_sum, NULL, noop_workspace};
    const struct {
        const char *name;
        int64_t n, c, h, w;
    } shapes[] = {{"A", 32, 64, 56, 56},
                  {"B", 32, 256, 56, 56},
                  {"C", 32, 512, 28, 28},
                  {"D", 32, 2048, 7, 7}};
    const bnk_layout layouts[] = {BNK_LAYOUT_NHWC, BNK_LAYOUT_NCHW};
    if (rank == 0) {
        printf("# %d ranks, kernel %s, %d OpenMP threads per rank, median of %d calls, slowest "
               "rank; times in us per call\n",
               size, bnk_bn_kernel_name(), omp_get_max_threads(), reps);
        printf("%-5s %-4s %5s %-16s %4s | %9s %9s %9s %9s %7s | %9s %9s %9s %9s %7s\n", "shape",
               "lay", "ranks", "shard", "C", "fwd local", "sync-0", "sync", "overhead", "bytes",
               "bwd local", "sync-0", "sync", "overhead", "bytes");
    }
    const bnk_bn_config cfg = bnk_bn_config_default();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t l = 0; l < 2; l++) {
            bnk_bn_shape shape = {layouts[l], shapes[s].n / size, shapes[s].c, shapes[s].h,
                                  shapes[s].w};
            const size_t C = (size_t)shape.c, numel = bnk_bn_shape_numel(&shape);
            bench_ctx b = {.cfg = &cfg, .shape = &shape};
            b.x = malloc(numel * sizeof(float));
            b.y = malloc(numel * sizeof(float));
            b.dy = malloc(numel * sizeof(float));
            b.dx = malloc(numel * sizeof(float));
            b.gamma = malloc(6 * C * sizeof(float));
            b.saved = malloc(BNK_BN_SAVED_FIELDS * C * sizeof(double));
            if (!b.x || !b.y || !b.dy || !b.dx || !b.gamma || !b.saved)
                MPI_Abort(MPI_COMM_WORLD, 1);
            b.beta = b.gamma + C, b.rm = b.gamma + 2 * C, b.rv = b.gamma + 3 * C;
            b.dgamma = b.gamma + 4 * C, b.dbeta = b.gamma + 5 * C;
            uint64_t st = 12345u + (uint64_t)rank;
            for (size_t i = 0; i < numel; i++) {
                st = st * 6364136223846793005ull + 1442695040888963407ull;
                b.x[i] = (float)((double)(st >> 40) / (double)(1u << 24)) * 4.0f - 1.0f;
                b.dy[i] = (float)((double)((st >> 16) & 0xffffff) / (double)(1u << 24)) - 0.5f;
            }
            for (size_t c = 0; c < C; c++) {
                b.gamma[c] = 1.0f, b.beta[c] = 0.0f, b.rm[c] = 0.0f, b.rv[c] = 1.0f;
                b.dgamma[c] = b.dbeta[c] = 0.0f;
            }
            double t[2][3];
            for (int op = OP_FWD; op <= OP_BWD; op++) {
                t[op][0] = time_op(&b, op, NULL, reps);
                t[op][1] = time_op(&b, op, &noop, reps);
                t[op][2] = time_op(&b, op, bnk_bn_mpi_comm_get(bc), reps);
            }
            if (rank == 0) {
                char shard[32];
                snprintf(shard, sizeof shard, "(%lld,%lld,%lld,%lld)", (long long)shape.n,
                         (long long)shape.c, (long long)shape.h, (long long)shape.w);
                printf("%-5s %-4s %5d %-16s %4zu | %9.0f %9.0f %9.0f %9.0f %7zu | %9.0f %9.0f "
                       "%9.0f %9.0f %7zu\n",
                       shapes[s].name, layouts[l] == BNK_LAYOUT_NHWC ? "NHWC" : "NCHW", size, shard,
                       C, t[0][0], t[0][1], t[0][2], t[0][2] - t[0][0], 3 * C * 8, t[1][0], t[1][1],
                       t[1][2], t[1][2] - t[1][0], (2 * C + 1) * 8);
                fflush(stdout);
            }
            free(b.x), free(b.y), free(b.dy), free(b.dx), free(b.gamma), free(b.saved);
        }
    }
    bnk_bn_mpi_comm_destroy(bc);
    MPI_Finalize();
    return 0;
}
