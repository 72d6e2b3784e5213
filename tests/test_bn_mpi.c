/* Synchronised BN over real MPI (bnkit/bn_mpi.h), run by ctest on 1, 2, 3 and 4 ranks
 * (test_bn_mpi_1 .. _4), with every kernel (bnk_bn_kernel_select: the synchronised functions
 * run the selected kernel's phases). Every rank generates the same batch from a fixed seed,
 * computes the single-process reference over all of it, runs the synchronised forward and backward
 * on its own uneven shard (empty on one rank from 3 ranks on), and compares its shard's results
 * with the reference (bn_sync_cases.h): every layout (nChw8c for the blocked ones), every mode of
 * bnk_cases. The statistics must
 * also be bit-identical on every rank (hashes compared with MPI_Allgather), and a global batch
 * of one value must fail with BNK_ERR_BATCH on every rank. A plain main: prints every failure
 * and exits non-zero on any, on every rank. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "bn_sync_cases.h"
#include "bnkit/bn_mpi.h"

/* FNV-1a over bytes, chained. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t len) {
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

int main(int argc, char **argv) {
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "test_bn_mpi: MPI_Init failed\n");
        return 1;
    }
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int bad = 0, runs = 0;
    if (size > SYNC_MAX_MEMBERS) {
        if (rank == 0) fprintf(stderr, "test_bn_mpi: at most %d ranks\n", SYNC_MAX_MEMBERS);
        MPI_Finalize();
        return 1;
    }
    bnk_bn_mpi_comm *bc = NULL;
    if (bnk_bn_mpi_comm_create(&bc, MPI_COMM_WORLD) != BNK_OK) {
        fprintf(stderr, "test_bn_mpi: rank %d: %s\n", rank, bnk_errmsg());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    const bnk_bn_comm *comm = bnk_bn_mpi_comm_get(bc);
    if (bnk_bn_mpi_comm_rank(bc) != rank || bnk_bn_mpi_comm_size(bc) != size) {
        printf("FAIL rank %d: bn_mpi_comm reports rank %d of %d\n", rank, bnk_bn_mpi_comm_rank(bc),
               bnk_bn_mpi_comm_size(bc));
        bad++;
    }

    const struct {
        bnk_layout layout;
        int64_t n, h, w;
    } shapes[] = {{BNK_LAYOUT_NC, 13, 1, 1},
                  {BNK_LAYOUT_NCHW, 11, 3, 2},
                  {BNK_LAYOUT_NHWC, 11, 3, 2},
                  {BNK_LAYOUT_NCHW8C, 11, 3, 2}};
    bnk_case cases[64];
    const size_t ncases = bnk_cases(cases, 64);
    uint64_t *hashes = malloc((size_t)size * sizeof(uint64_t));
    if (!hashes || ncases > 64) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int kern = 0; kern < bnk_bn_kernel_count(); kern++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const char *kname = bnk_bn_kernel_at(kern);
            if (bnk_bn_kernel_select(kname) != BNK_OK) MPI_Abort(MPI_COMM_WORLD, 1);
            bnk_sync_problem p;
            if (bnk_sync_problem_init(&p, shapes[s].layout, shapes[s].n, shapes[s].h, shapes[s].w,
                                      42 + s) != 0)
                MPI_Abort(MPI_COMM_WORLD, 1);
            int64_t n[SYNC_MAX_MEMBERS];
            bnk_sync_shards(size, shapes[s].n, n);
            for (size_t ci = 0; ci < ncases; ci++) {
                char label[160];
                snprintf(label, sizeof label, "%s %s %s ranks=%d", kname,
                         bnk_sync_layout_name(shapes[s].layout), cases[ci].name, size);
                if (bnk_sync_reference(&p, &cases[ci].cfg, cases[ci].step) != BNK_OK) {
                    printf("FAIL [%s] rank %d: reference failed: %s\n", label, rank, bnk_errmsg());
                    bad++;
                    continue;
                }
                bnk_sync_member mb;
                if (bnk_sync_member_init(&mb, &p, n, rank) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
                bnk_sync_member_run(&mb, &p, &cases[ci].cfg, cases[ci].step, comm);
                bad += bnk_sync_compare_member(&p, &mb, rank, label);
                /* the group's parameter gradients: every rank's own, summed */
                double g[2 * SYNC_MAX_C];
                const size_t C = p.c;
                for (size_t c = 0; c < C; c++) g[c] = mb.dgamma[c], g[C + c] = mb.dbeta[c];
                MPI_Allreduce(MPI_IN_PLACE, g, (int)(2 * C), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
                if (rank == 0) bad += bnk_sync_compare_params(&p, g, g + C, label);
                /* bit-identical statistics on every rank */
                uint64_t h = 0xcbf29ce484222325ull;
                h = hash_bytes(h, mb.saved, sizeof mb.saved);
                h = hash_bytes(h, mb.rm, sizeof mb.rm);
                h = hash_bytes(h, mb.rv, sizeof mb.rv);
                MPI_Allgather(&h, 1, MPI_UINT64_T, hashes, 1, MPI_UINT64_T, MPI_COMM_WORLD);
                for (int r = 0; r < size; r++)
                    if (hashes[r] != hashes[0]) {
                        printf("FAIL [%s] rank %d: rank %d's statistics differ from rank 0's\n",
                               label, rank, r);
                        bad++;
                        break;
                    }
                bnk_sync_member_free(&mb);
                runs++;
            }
            bnk_sync_problem_free(&p);
        }

    /* One value per channel over the whole group (rank 0 holds it, the others are empty):
     * BNK_ERR_BATCH everywhere, running statistics untouched. */
    {
        bnk_sync_problem p;
        if (bnk_sync_problem_init(&p, BNK_LAYOUT_NC, 1, 1, 1, 5) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
        int64_t n[SYNC_MAX_MEMBERS] = {1, 0, 0, 0};
        bnk_sync_member mb;
        if (bnk_sync_member_init(&mb, &p, n, rank) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
        bnk_bn_config cfg = bnk_bn_config_default();
        bnk_sync_member_run(&mb, &p, &cfg, 0, comm);
        if (mb.st_forward != BNK_ERR_BATCH || memcmp(mb.rm, p.rm0, sizeof mb.rm) ||
            memcmp(mb.rv, p.rv0, sizeof mb.rv)) {
            printf("FAIL rank %d: a global batch of 1 gave %s (expected %s) or changed the "
                   "running statistics\n",
                   rank, bnk_status_str(mb.st_forward), bnk_status_str(BNK_ERR_BATCH));
            bad++;
        }
        bnk_sync_member_free(&mb);
        bnk_sync_problem_free(&p);
    }

    free(hashes);
    bnk_bn_mpi_comm_destroy(bc);
    int total = 0;
    MPI_Allreduce(&bad, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("test_bn_mpi: %d ranks, %d synchronised runs per rank, %d failures\n", size, runs,
               total);
    MPI_Finalize();
    return total != 0;
}
