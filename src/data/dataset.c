/* The bnk_dataset object: allocation, accessors, and bnk_dataset_load's choice of reader. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "data/data_internal.h"

bnk_status bnk__dataset_alloc(bnk_dataset **out, int64_t size, int64_t c, int64_t h, int64_t w,
                              bnk__feat feat) {
    *out = NULL;
    if (size < 1 || c < 1 || h < 1 || w < 1) {
        return bnk__fail(BNK_ERR_SIZE,
                         "data set of %" PRId64 " samples of shape (%" PRId64 ", %" PRId64
                         ", %" PRId64 ")",
                         size, c, h, w);
    }
    /* Sizes come from checked headers and files, but guard the products anyway. */
    int64_t features = c;
    if (h > INT64_MAX / features || w > INT64_MAX / (features * h)) {
        return bnk__fail(BNK_ERR_OVERFLOW, "features per sample overflow");
    }
    features *= h * w;
    size_t item = feat == BNK__FEAT_F32 ? sizeof(float) : 1;
    if ((uint64_t)size > SIZE_MAX / sizeof(int32_t) ||
        (uint64_t)features > SIZE_MAX / item / (uint64_t)size) {
        return bnk__fail(BNK_ERR_OVERFLOW, "%" PRId64 " samples of %" PRId64 " features overflow",
                         size, features);
    }
    bnk_dataset *ds = calloc(1, sizeof *ds);
    if (ds == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a data set");
    ds->size = size;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->features = features;
    ds->labels = malloc((size_t)size * sizeof(int32_t));
    size_t nbytes = (size_t)size * (size_t)features * item;
    if (feat == BNK__FEAT_U8) ds->u8 = malloc(nbytes);
    if (feat == BNK__FEAT_F32) ds->f32 = malloc(nbytes);
    if (ds->labels == NULL || (feat == BNK__FEAT_U8 && ds->u8 == NULL) ||
        (feat == BNK__FEAT_F32 && ds->f32 == NULL)) {
        bnk_dataset_destroy(ds);
        return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %" PRId64 " samples (%zu bytes)", size,
                         nbytes);
    }
    *out = ds;
    return BNK_OK;
}

void bnk__dataset_finish(bnk_dataset *ds) {
    int32_t max = 1; /* at least two classes */
    for (int64_t i = 0; i < ds->size; i++) {
        if (ds->labels[i] > max) max = ds->labels[i];
    }
    ds->num_classes = (int64_t)max + 1;
}

const char *bnk__label_problem(double v) {
    if (isnan(v)) return "is NaN";
    if (isinf(v)) return "is infinite";
    if (v < 0) return "is negative";
    if (v >= BNK__DATA_MAX_CLASSES) return "is too large (labels must be below 65536)";
    if (v != (double)(int32_t)v) return "is not an integer";
    return NULL;
}

void bnk_dataset_destroy(bnk_dataset *ds) {
    if (ds == NULL) return;
    free(ds->u8);
    free(ds->f32);
    free(ds->labels);
    free(ds);
}

int64_t bnk_dataset_size(const bnk_dataset *ds) {
    return ds ? ds->size : 0;
}

int64_t bnk_dataset_num_classes(const bnk_dataset *ds) {
    return ds ? ds->num_classes : 0;
}

void bnk_dataset_shape(const bnk_dataset *ds, int64_t *c, int64_t *h, int64_t *w) {
    if (c) *c = ds ? ds->c : 0;
    if (h) *h = ds ? ds->h : 0;
    if (w) *w = ds ? ds->w : 0;
}

/* ---- Loading --------------------------------------------------------------------------------- */

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* npy:X,Y — exactly one comma separates the two paths. */
static bnk_status load_npy(bnk_dataset **out, const char *spec, const char *arg) {
    const char *comma = strchr(arg, ',');
    if (comma == NULL || strchr(comma + 1, ',') != NULL || comma == arg || comma[1] == '\0') {
        return bnk__fail(BNK_ERR_PARAM,
                         "data source '%s': expected npy:X.npy,Y.npy (two paths, one comma)", spec);
    }
    size_t xlen = (size_t)(comma - arg);
    char *x = malloc(xlen + 1);
    if (x == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a path");
    memcpy(x, arg, xlen);
    x[xlen] = '\0';
    bnk_status st = bnk__npy_pair_load(out, x, comma + 1);
    free(x);
    return st;
}

bnk_status bnk_dataset_load(bnk_dataset **out, const char *spec, bnk_split split) {
    if (out == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_dataset_load: out is NULL");
    *out = NULL;
    if (spec == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_dataset_load: spec is NULL");
    if (split != BNK_SPLIT_TRAIN && split != BNK_SPLIT_TEST) {
        return bnk__fail(BNK_ERR_PARAM, "bnk_dataset_load: split must be BNK_SPLIT_TRAIN or "
                                        "BNK_SPLIT_TEST");
    }
    if (strcmp(spec, "fashion-mnist") == 0) {
        return bnk__idx_load_dir(out, BNK__FASHION_MNIST_DIR, split, BNK__FASHION_MNIST_HINT);
    }
    static const char *const prefixes[] = {"mnist:", "csv:", "npy:"};
    for (int i = 0; i < 3; i++) {
        if (!starts_with(spec, prefixes[i])) continue;
        const char *arg = spec + strlen(prefixes[i]);
        if (*arg == '\0') {
            return bnk__fail(BNK_ERR_PARAM, "data source '%s' names no path", spec);
        }
        if (i == 0) return bnk__idx_load_dir(out, arg, split, NULL);
        if (i == 1) return bnk__csv_load(out, arg);
        return load_npy(out, spec, arg);
    }
    return bnk__fail(BNK_ERR_PARAM,
                     "unknown data source '%s' (expected fashion-mnist, mnist:DIR, csv:PATH or "
                     "npy:X.npy,Y.npy)",
                     spec);
}
