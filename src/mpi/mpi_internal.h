/* Internals shared by the MPI glue (src/mpi/). Not installed. */
#ifndef BNKIT_MPI_INTERNAL_H
#define BNKIT_MPI_INTERNAL_H

#include <mpi.h>

#include "bnkit/status.h"

/* BNK_ERR_IO with "<ctx>: <what> failed: <MPI's message for rc>" in bnk_errmsg(). */
bnk_status bnk__mpi_fail(int rc, const char *ctx, const char *what);

#endif /* BNKIT_MPI_INTERNAL_H */
