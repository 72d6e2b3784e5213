/* bnkit/bn_mpi.h — synchronised BN over an MPI communicator.
 *
 * A bnk_bn_mpi_comm turns an MPI_Comm into the bnk_bn_comm that bnk_bn_forward_train_sync,
 * bnk_bn_backward_sync and bnk_bn_layer_set_comm take (bnkit/bn.h). Link bnkit::mpi.
 *
 *     bnk_bn_mpi_comm *bc;
 *     if (bnk_bn_mpi_comm_create(&bc, MPI_COMM_WORLD) != BNK_OK) { ... bnk_errmsg() ... }
 *     bnk_bn_layer_set_comm(layer, bnk_bn_mpi_comm_get(bc));   // every rank, same C
 *     ... training: each rank runs the layer on its own shard of the batch ...
 *     bnk_bn_mpi_comm_destroy(bc);                             // collective, before MPI_Finalize
 *
 * What travels per call: forward, one MPI_Allreduce of 3*C doubles (count, mean, M2 per
 * channel) with a user-defined operation that merges moments with Chan et al.'s formula;
 * backward, one MPI_Allreduce (MPI_SUM) of 2*C + 1 doubles. Nothing depends on N*H*W.
 *
 * Identical results on every rank: the merge operation is registered as NON-commutative, so
 * MPI combines the ranks' moments in rank order, and Open MPI's allreduce algorithms for
 * non-commutative operations compute each partial result once (or identically on the ranks of
 * a pair) and hand the final value to every rank; the sums of the backward use MPI_SUM, whose
 * IEEE additions are commutative. The tests check that the results are bit-identical on every
 * rank for 1 to 4 ranks.
 *
 * Threads: the functions make MPI calls on the calling thread only (MPI_THREAD_FUNNELED is
 * enough); one bnk_bn_mpi_comm must not be used by two threads at once.
 */
#ifndef BNKIT_BN_MPI_H
#define BNKIT_BN_MPI_H

#include <stddef.h>

#include <mpi.h>

#include "bnkit/bn.h"
#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bnk_bn_mpi_comm bnk_bn_mpi_comm;

/* Creates the group from comm: duplicates it (MPI_Comm_dup, collective: every rank of comm
 * calls this), sets MPI_ERRORS_RETURN on the duplicate so that MPI failures come back as
 * BNK_ERR_IO with MPI's message instead of aborting, and creates the merge operation. MPI must
 * be initialised. *out is NULL on failure. */
bnk_status bnk_bn_mpi_comm_create(bnk_bn_mpi_comm **out, MPI_Comm comm);

/* Frees the group (collective: MPI_Comm_free). NULL is harmless. Call before MPI_Finalize. */
void bnk_bn_mpi_comm_destroy(bnk_bn_mpi_comm *c);

/* Makes sure that calls with up to `channels` channels never allocate: merge_moments repacks
 * the field-major moments into per-channel triples in a buffer held by the group, which also
 * serves as bnk_bn_backward_sync's workspace (4*C + 1 doubles, used when C > 1024), grown on
 * the first call that needs more (BNK_ERR_NOMEM if that fails). Call this once after create to
 * keep even the first training step free of allocation. */
bnk_status bnk_bn_mpi_comm_reserve(bnk_bn_mpi_comm *c, size_t channels);

/* The communicator interface to pass to the synchronised BN functions; valid until destroy. */
const bnk_bn_comm *bnk_bn_mpi_comm_get(const bnk_bn_mpi_comm *c);

/* This process's rank and the group's size. */
int bnk_bn_mpi_comm_rank(const bnk_bn_mpi_comm *c);
int bnk_bn_mpi_comm_size(const bnk_bn_mpi_comm *c);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_BN_MPI_H */
