/* npy:X,Y data sets: features X.npy (N, F) or (N, C, H, W) and labels Y.npy (N,), both float32
 * or float64 (bnk_npy_read does the file format). Features become float32 and must be finite;
 * labels must be non-negative integers below BNK__DATA_MAX_CLASSES. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bnkit/npy.h"
#include "core/internal.h"
#include "data/data_internal.h"

/* Reads one file, prefixing a format error with the path where the .npy reader's message does
 * not name the file (its header checks describe only the problem). */
static bnk_status pair_read(const char *path, bnk_npy *a) {
    bnk_status st = bnk_npy_read(path, a);
    if (st == BNK_ERR_FORMAT && strstr(bnk_errmsg(), path) == NULL) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", bnk_errmsg());
        return bnk__fail(st, "%s: %s", path, msg);
    }
    return st;
}

static bnk_status pair_check(const bnk_npy *x, const char *x_path, const bnk_npy *y,
                             const char *y_path) {
    if (x->ndim != 2 && x->ndim != 4) {
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s: features must have shape (N, F) or (N, C, H, W), not %d dimensions",
                         x_path, x->ndim);
    }
    for (int i = 0; i < x->ndim; i++) {
        if (x->shape[i] == 0) {
            return bnk__fail(BNK_ERR_FORMAT, "%s: dimension %d is 0 (no samples or features)",
                             x_path, i);
        }
    }
    if (y->ndim != 1) {
        return bnk__fail(BNK_ERR_FORMAT, "%s: labels must have shape (N,), not %d dimensions",
                         y_path, y->ndim);
    }
    if (y->shape[0] != x->shape[0]) {
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s holds %" PRId64 " samples but %s holds %" PRId64 " labels", x_path,
                         x->shape[0], y_path, y->shape[0]);
    }
    return BNK_OK;
}

bnk_status bnk__npy_pair_load(bnk_dataset **out, const char *x_path, const char *y_path) {
    *out = NULL;
    bnk_npy x, y;
    memset(&y, 0, sizeof y);
    bnk_status st = pair_read(x_path, &x);
    if (st == BNK_OK) st = pair_read(y_path, &y);
    if (st == BNK_OK) st = pair_check(&x, x_path, &y, y_path);
    if (st == BNK_OK) st = bnk_npy_to_f32(&x);
    if (st != BNK_OK) goto done;

    const float *xf = x.data;
    for (size_t i = 0; i < x.count; i++) {
        if (!isfinite(xf[i])) {
            size_t per = x.count / (size_t)x.shape[0];
            st = bnk__fail(BNK_ERR_FORMAT,
                           "%s: sample %zu, feature %zu is %s (features must be finite float32)",
                           x_path, i / per, i % per, isnan(xf[i]) ? "NaN" : "infinite");
            goto done;
        }
    }
    int64_t n = x.shape[0];
    for (int64_t i = 0; i < n; i++) {
        double v = y.dtype == BNK_DTYPE_F64 ? ((const double *)y.data)[i]
                                            : (double)((const float *)y.data)[i];
        const char *problem = bnk__label_problem(v);
        if (problem != NULL) {
            st = bnk__fail(BNK_ERR_FORMAT, "%s: label %" PRId64 " (%g) %s", y_path, i, v, problem);
            goto done;
        }
    }
    bnk_dataset *ds;
    if (x.ndim == 2) {
        st = bnk__dataset_alloc(&ds, n, x.shape[1], 1, 1, BNK__FEAT_NONE);
    } else {
        st = bnk__dataset_alloc(&ds, n, x.shape[1], x.shape[2], x.shape[3], BNK__FEAT_NONE);
    }
    if (st != BNK_OK) goto done;
    for (int64_t i = 0; i < n; i++) {
        ds->labels[i] = (int32_t)(y.dtype == BNK_DTYPE_F64 ? ((const double *)y.data)[i]
                                                           : ((const float *)y.data)[i]);
    }
    ds->f32 = x.data; /* adopted */
    x.data = NULL;
    bnk__dataset_finish(ds);
    *out = ds;
done:
    bnk_npy_free(&x);
    bnk_npy_free(&y);
    return st;
}
