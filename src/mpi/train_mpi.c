/* Data-parallel training over MPI (bnkit/train_mpi.h): the bnk_train_dist operations. */
#include <limits.h>
#include <string.h>

#include "bnkit/train_mpi.h"
#include "core/internal.h"
#include "mpi/mpi_internal.h"

enum { CHUNK = INT_MAX / 2 }; /* elements per MPI call: MPI counts are ints */

/* Sum over the ranks in place with MPI_Allreduce (MPI_SUM); identical on every rank, see
 * bnkit/train_mpi.h. */
static bnk_status sum_typed(MPI_Comm comm, void *buf, size_t n, MPI_Datatype type, size_t size) {
    for (size_t done = 0; done < n; done += CHUNK) {
        const int count = (int)(n - done < CHUNK ? n - done : CHUNK);
        char *p = (char *)buf + done * size;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p, count, type, MPI_SUM, comm);
        if (rc != MPI_SUCCESS) return bnk__mpi_fail(rc, "data-parallel training", "MPI_Allreduce");
    }
    return BNK_OK;
}

static bnk_status sum_f32(void *ctx, float *buf, size_t n) {
    return sum_typed(((bnk_train_mpi *)ctx)->comm, buf, n, MPI_FLOAT, sizeof(float));
}

static bnk_status sum_f64(void *ctx, double *buf, size_t n) {
    return sum_typed(((bnk_train_mpi *)ctx)->comm, buf, n, MPI_DOUBLE, sizeof(double));
}

bnk_status bnk_train_mpi_init(bnk_train_mpi *tm, MPI_Comm comm, bool sync_bn) {
    if (!tm) return bnk__fail(BNK_ERR_NULL, "train_mpi: tm is NULL");
    memset(tm, 0, sizeof *tm);
    tm->comm = MPI_COMM_NULL;
    int rank = 0, size = 0;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS ||
        MPI_Comm_dup(comm, &tm->comm) != MPI_SUCCESS) {
        tm->comm = MPI_COMM_NULL;
        return bnk__fail(BNK_ERR_IO, "train_mpi: cannot query or duplicate the communicator");
    }
    /* errors come back as codes (reported through bnk_errmsg) instead of aborting inside MPI */
    MPI_Comm_set_errhandler(tm->comm, MPI_ERRORS_RETURN);
    if (sync_bn) {
        bnk_status st = bnk_bn_mpi_comm_create(&tm->bn, comm);
        if (st != BNK_OK) {
            MPI_Comm_free(&tm->comm);
            tm->comm = MPI_COMM_NULL;
            return st;
        }
    }
    tm->dist.rank = rank;
    tm->dist.size = size;
    tm->dist.bn_comm = tm->bn ? bnk_bn_mpi_comm_get(tm->bn) : NULL;
    tm->dist.sum_f32 = sum_f32;
    tm->dist.sum_f64 = sum_f64;
    tm->dist.ctx = tm;
    return BNK_OK;
}

void bnk_train_mpi_free(bnk_train_mpi *tm) {
    if (!tm) return;
    bnk_bn_mpi_comm_destroy(tm->bn);
    tm->bn = NULL;
    if (tm->comm != MPI_COMM_NULL) MPI_Comm_free(&tm->comm);
    tm->comm = MPI_COMM_NULL;
}
