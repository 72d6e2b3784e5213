/* bnkit/train_mpi.h — data-parallel training over an MPI communicator (bnk_train_run on every
 * rank, each with a slice of every global batch; see bnk_train_dist in bnkit/train.h).
 *
 *     bnk_train_mpi tm;
 *     if (bnk_train_mpi_init(&tm, MPI_COMM_WORLD, true) != BNK_OK) MPI_Abort(MPI_COMM_WORLD, 1);
 *     bnk_train_config tc = bnk_train_config_default();   // the same on every rank
 *     tc.dist = &tm.dist;
 *     tc.log = tm.dist.rank == 0 ? stdout : NULL;
 *     bnk_status st = bnk_train_run(&tc, NULL, NULL, &res, NULL);
 *     if (st != BNK_OK) MPI_Abort(MPI_COMM_WORLD, 1);      // the others wait in a collective
 *     bnk_train_mpi_free(&tm);
 *
 * Collectives per training step: the gradient sum (one MPI_Allreduce, MPI_SUM, of the whole
 * gradient arena) and, with synchronised BN, two small ones per BN layer (bnkit/bn_mpi.h).
 * Losses and hit counts are summed once per epoch (and at each --print-every step).
 *
 * Identical parameters on every rank need the gradient sum to give the same bits everywhere.
 * MPI does not promise that, but Open MPI's allreduce algorithms deliver it for MPI_SUM: each
 * element's sum is either computed once and then distributed (ring, reduce-scatter +
 * allgather, reduce + broadcast) or computed by both partners of a pair from the same two
 * partial sums (recursive doubling), and IEEE addition is commutative (a+b and b+a are the
 * same bits). The order is fixed by the communicator size and message length, so runs are
 * reproducible. bnk_train_run checks this once per epoch (a hash of the parameters compared
 * across ranks) and fails with BNK_ERR_IO rather than letting the ranks drift apart. An
 * MPI_Reduce + MPI_Bcast pair would guarantee it by construction but measured twice as slow
 * for the document's model (2.0 against 1.0 ms per step for 101,770 floats on 2 ranks).
 */
#ifndef BNKIT_TRAIN_MPI_H
#define BNKIT_TRAIN_MPI_H

#include <stdbool.h>

#include <mpi.h>

#include "bnkit/bn.h"
#include "bnkit/bn_mpi.h"
#include "bnkit/status.h"
#include "bnkit/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Caller-owned; the struct must stay where it is between _init and _free (dist.ctx and
 * dist.bn_comm point into it). */
typedef struct bnk_train_mpi {
    bnk_train_dist dist; /* pass &tm.dist as bnk_train_config.dist */
    bnk_bn_mpi_comm *bn; /* synchronised BN (bnkit/bn_mpi.h); NULL for ghost BN        */
    MPI_Comm comm;       /* a duplicate of the communicator given to _init, for sums  */
} bnk_train_mpi;

/* Fills tm for the ranks of comm (duplicated, so that training traffic never mixes with the
 * caller's). sync_bn: BN statistics over the whole global batch (a bnk_bn_mpi_comm of
 * bnkit/bn_mpi.h); false: ghost BN, each rank with its own slice's statistics. Collective over
 * comm; MPI must be initialised. Errors: BNK_ERR_NULL, BNK_ERR_IO (an MPI call failed),
 * BNK_ERR_NOMEM; on error nothing is left to free. */
bnk_status bnk_train_mpi_init(bnk_train_mpi *tm, MPI_Comm comm, bool sync_bn);

/* Releases the communicators (collective; before MPI_Finalize). NULL is harmless. */
void bnk_train_mpi_free(bnk_train_mpi *tm);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_TRAIN_MPI_H */
