/* Detecting an MPI launch and initialising MPI (bnkit/mpi.h). */
#include <stdlib.h>

#include "bnkit/mpi.h"
#include "core/internal.h"
#include "mpi/mpi_internal.h"

static bool initialised_here;

bool bnk_mpi_launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

bnk_status bnk_mpi_init(int *argc, char ***argv) {
    int done = 0;
    MPI_Initialized(&done);
    if (done) return BNK_OK;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return bnk__fail(BNK_ERR_IO, "MPI_Init_thread failed");
    initialised_here = true;
    return BNK_OK;
}

bool bnk_mpi_active(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

void bnk_mpi_finalize(void) {
    if (initialised_here && bnk_mpi_active()) MPI_Finalize();
    initialised_here = false;
}

bnk_status bnk__mpi_fail(int rc, const char *ctx, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
    return bnk__fail(BNK_ERR_IO, "%s: %s failed: %s", ctx, what, len ? msg : "unknown MPI error");
}
