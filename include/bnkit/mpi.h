/* bnkit/mpi.h — running bnkit under MPI (Open MPI, MPICH, Slurm's srun).
 *
 * Built when CMake finds MPI (option BNKIT_MPI); link the target bnkit::mpi. libbnkit itself
 * never depends on MPI: the pieces that communicate take function pointers (bnk_bn_comm in
 * bnkit/bn.h), and this library fills them in from an MPI communicator.
 *
 *     if (bnk_mpi_launched() && bnk_mpi_init(&argc, &argv) != BNK_OK) { ... }
 *     ...
 *     bnk_mpi_finalize();
 */
#ifndef BNKIT_MPI_H
#define BNKIT_MPI_H

#include <stdbool.h>

#include <mpi.h>

#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* True when this process was started by an MPI launcher (mpirun, mpiexec, srun): one of the
 * environment variables OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK is set. A plain `bnkit`
 * run does not touch MPI at all. */
bool bnk_mpi_launched(void);

/* Initialises MPI (MPI_Init_thread with MPI_THREAD_FUNNELED: only the thread that called this
 * makes MPI calls) unless it is already initialised. BNK_ERR_IO with the reason on failure. */
bnk_status bnk_mpi_init(int *argc, char ***argv);

/* True between a successful bnk_mpi_init (or the caller's own MPI_Init) and MPI_Finalize. */
bool bnk_mpi_active(void);

/* Finalises MPI if bnk_mpi_init initialised it; harmless otherwise. */
void bnk_mpi_finalize(void);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_MPI_H */
