/* Synchronised BN over MPI (bnkit/bn_mpi.h): the two operations of bnk_bn_comm as MPI
 * collectives on a private duplicate of the user's communicator.
 *
 * merge_moments: bnk_bn_comm packs the moments field-major ([counts | means | M2s]), but an
 * MPI_Op combines element by element, so they are repacked into per-channel triples
 * (count, mean, M2) — one MPI datatype of 3 contiguous doubles — in a buffer held by the group
 * (grown on demand, or once by bnk_bn_mpi_comm_reserve), reduced with ONE MPI_Allreduce whose
 * operation is Chan et al.'s pairwise merge (bn/bn_moments.h, exact for empty members), and
 * unpacked. The operation is created non-commutative: MPI then combines operands in rank
 * order (invec holds the lower ranks' moments), which is what keeps every rank's result the
 * same (see bnkit/bn_mpi.h). */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "bn/bn_moments.h"
#include "bnkit/bn_mpi.h"
#include "core/internal.h"
#include "mpi/mpi_internal.h"

struct bnk_bn_mpi_comm {
    bnk_bn_comm iface;   /* ctx points at this object */
    MPI_Comm comm;       /* duplicate of the user's communicator, MPI_ERRORS_RETURN */
    MPI_Datatype triple; /* 3 contiguous doubles: one channel's (count, mean, M2) */
    MPI_Op merge;        /* Chan's merge on triples, non-commutative */
    double *scratch;     /* the merge's triples [3*C], or the backward's workspace [4*C + 1] */
    size_t cap;          /* doubles the scratch holds */
    int rank, size;
};

/* inout[i] <- in[i] merged with inout[i]; `in` holds the lower-ranked operand. */
static void merge_triples(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const double *a = in;
    double *b = inout;
    for (int i = 0; i < *len; i++) {
        double n = a[3 * i], mean = a[3 * i + 1], m2 = a[3 * i + 2];
        bnk__bn_moments_merge(&n, &mean, &m2, b[3 * i], b[3 * i + 1], b[3 * i + 2]);
        b[3 * i] = n;
        b[3 * i + 1] = mean;
        b[3 * i + 2] = m2;
    }
}

static bnk_status mpi_fail(int rc, const char *what) {
    return bnk__mpi_fail(rc, "synchronised BN", what);
}

/* Grows the scratch to at least len doubles. */
static bnk_status scratch_grow(bnk_bn_mpi_comm *c, size_t len) {
    if (len <= c->cap) return BNK_OK;
    double *p = len <= SIZE_MAX / sizeof(double) ? realloc(c->scratch, len * sizeof(double)) : NULL;
    if (!p)
        return bnk__fail(BNK_ERR_NOMEM, "synchronised BN: cannot allocate %zu doubles of scratch",
                         len);
    c->scratch = p;
    c->cap = len;
    return BNK_OK;
}

bnk_status bnk_bn_mpi_comm_reserve(bnk_bn_mpi_comm *c, size_t channels) {
    if (!c) return bnk__fail(BNK_ERR_NULL, "bn_mpi_comm is NULL");
    if (channels > (size_t)INT_MAX)
        return bnk__fail(BNK_ERR_SIZE, "synchronised BN: %zu channels exceed MPI's int counts",
                         channels);
    return scratch_grow(c, 4 * channels + 1);
}

/* The backward's workspace (bnk_bn_comm.workspace): the scratch, which the merge uses only
 * within its own call. */
static bnk_status mpi_workspace(void *ctx, size_t len, double **out) {
    bnk_bn_mpi_comm *c = ctx;
    bnk_status st = scratch_grow(c, len);
    *out = st == BNK_OK ? c->scratch : NULL;
    return st;
}

static bnk_status mpi_merge_moments(void *ctx, double *moments, size_t channels) {
    bnk_bn_mpi_comm *c = ctx;
    bnk_status st = bnk_bn_mpi_comm_reserve(c, channels);
    if (st != BNK_OK) return st;
    const size_t C = channels;
    double *t = c->scratch;
    for (size_t i = 0; i < C; i++) {
        t[3 * i] = moments[i];
        t[3 * i + 1] = moments[C + i];
        t[3 * i + 2] = moments[2 * C + i];
    }
    int rc = MPI_Allreduce(MPI_IN_PLACE, t, (int)C, c->triple, c->merge, c->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allreduce of the moments");
    for (size_t i = 0; i < C; i++) {
        moments[i] = t[3 * i];
        moments[C + i] = t[3 * i + 1];
        moments[2 * C + i] = t[3 * i + 2];
    }
    return BNK_OK;
}

static bnk_status mpi_sum(void *ctx, double *buf, size_t len) {
    bnk_bn_mpi_comm *c = ctx;
    if (len > (size_t)INT_MAX)
        return bnk__fail(BNK_ERR_SIZE, "synchronised BN: %zu values exceed MPI's int counts", len);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)len, MPI_DOUBLE, MPI_SUM, c->comm);
    return rc == MPI_SUCCESS ? BNK_OK : mpi_fail(rc, "MPI_Allreduce of the gradient sums");
}

bnk_status bnk_bn_mpi_comm_create(bnk_bn_mpi_comm **out, MPI_Comm comm) {
    if (!out) return bnk__fail(BNK_ERR_NULL, "bn_mpi_comm output pointer is NULL");
    *out = NULL;
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin)
        return bnk__fail(BNK_ERR_UNSUPPORTED, "synchronised BN needs MPI to be initialised");
    if (comm == MPI_COMM_NULL) return bnk__fail(BNK_ERR_NULL, "MPI communicator is MPI_COMM_NULL");
    bnk_bn_mpi_comm *c = calloc(1, sizeof *c);
    if (!c) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a bn_mpi_comm");
    c->comm = MPI_COMM_NULL;
    c->triple = MPI_DATATYPE_NULL;
    c->merge = MPI_OP_NULL;
    int rc = MPI_Comm_dup(comm, &c->comm);
    if (rc != MPI_SUCCESS) {
        free(c);
        return mpi_fail(rc, "MPI_Comm_dup");
    }
    const char *what = "MPI_Comm_set_errhandler";
    rc = MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) {
        what = "MPI_Type_contiguous";
        rc = MPI_Type_contiguous(3, MPI_DOUBLE, &c->triple);
    }
    if (rc == MPI_SUCCESS) {
        what = "MPI_Type_commit";
        rc = MPI_Type_commit(&c->triple);
    }
    if (rc == MPI_SUCCESS) {
        what = "MPI_Op_create";
        rc = MPI_Op_create(merge_triples, 0 /* not commutative: rank order */, &c->merge);
    }
    if (rc == MPI_SUCCESS) {
        what = "MPI_Comm_rank";
        rc = MPI_Comm_rank(c->comm, &c->rank);
    }
    if (rc == MPI_SUCCESS) {
        what = "MPI_Comm_size";
        rc = MPI_Comm_size(c->comm, &c->size);
    }
    if (rc != MPI_SUCCESS) {
        bnk_status st = mpi_fail(rc, what);
        bnk_bn_mpi_comm_destroy(c);
        return st;
    }
    c->iface.merge_moments = mpi_merge_moments;
    c->iface.sum = mpi_sum;
    c->iface.workspace = mpi_workspace;
    c->iface.ctx = c;
    *out = c;
    return BNK_OK;
}

void bnk_bn_mpi_comm_destroy(bnk_bn_mpi_comm *c) {
    if (!c) return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) {
        if (c->merge != MPI_OP_NULL) MPI_Op_free(&c->merge);
        if (c->triple != MPI_DATATYPE_NULL) MPI_Type_free(&c->triple);
        if (c->comm != MPI_COMM_NULL) MPI_Comm_free(&c->comm);
    }
    free(c->scratch);
    free(c);
}

const bnk_bn_comm *bnk_bn_mpi_comm_get(const bnk_bn_mpi_comm *c) {
    return c ? &c->iface : NULL;
}

int bnk_bn_mpi_comm_rank(const bnk_bn_mpi_comm *c) {
    return c->rank;
}

int bnk_bn_mpi_comm_size(const bnk_bn_mpi_comm *c) {
    return c->size;
}
