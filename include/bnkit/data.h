/* bnkit/data.h — labelled data sets for classification: readers, splits, shuffling, batches.
 *
 *     bnk_dataset *train = NULL, *test = NULL;
 *     if (bnk_dataset_load(&train, "fashion-mnist", BNK_SPLIT_TRAIN) != BNK_OK) ...  // 60000
 * images bnk_dataset_load(&test, "fashion-mnist", BNK_SPLIT_TEST);                      // 10000
 * images bnk_dataset *val = NULL; bnk_dataset_split(train, 5000, seed, &val);   // moves 5000
 * seeded-random samples into val int64_t order[...]; bnk_dataset_shuffle(train, order, &rng); //
 * per epoch bnk_dataset_batch(train, order + k, 100, BNK_SCALE_UNIT, NULL, x, labels);     //
 * floats bnk_dataset_destroy(val); ...
 *
 * Sources (the `spec` of bnk_dataset_load):
 *   fashion-mnist     Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/ (when
 *                     absent, BNK_ERR_IO says `apt-get install dataset-fashion-mnist`)
 *   mnist:DIR         MNIST-format IDX files in DIR: {train,t10k}-{images-idx3,labels-idx1}-ubyte
 *                     each optionally gzipped (.gz tried first); images magic 0x00000803
 *                     (N, rows, cols) uint8, labels magic 0x00000801 (N,) uint8; the files must
 *                     hold exactly what their headers promise, at most 2 GiB each
 *   csv:PATH          one sample per line: integer label, then numeric features, comma-separated;
 *                     a header line (first field not a number) is skipped; LF or CRLF; blank
 *                     lines only at the end; the file may be gzipped
 *   npy:X,Y           X.npy features (N, F) or (N, C, H, W), float32/float64; Y.npy labels (N,),
 *                     float32/float64 holding non-negative integers; one comma between the paths
 * csv: and npy: name one set of files: `split` is ignored and the caller names a second spec for
 * its test set.
 * Samples are kept compactly: uint8 pixels stay uint8 until a batch is formed. Features are
 * per-sample tensors of shape (c, h, w): (1, 28, 28) for MNIST-style images, (f, 1, 1) for CSV
 * and 2-D .npy. Float features must be finite. Labels are integers 0 .. num_classes-1, below
 * 65536; num_classes = max label + 1 (at least 2), fixed at load (split and truncate keep it).
 * Errors: BNK_ERR_IO (missing/unreadable), BNK_ERR_FORMAT (corrupt, truncated, bad magic, label
 * out of range, NaN/Inf feature, ragged CSV row — the message names file, line/offset),
 * BNK_ERR_NOMEM, BNK_ERR_NULL, BNK_ERR_PARAM (bad spec or split).
 *
 * Randomness (split, shuffle) comes only from the caller's seed/state: the same seed gives the
 * same result on every platform. A data set is not safe to modify from two threads at once;
 * reading it concurrently (size, batch, feature_stats) is. */
#ifndef BNKIT_DATA_H
#define BNKIT_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bnk_split { BNK_SPLIT_TRAIN, BNK_SPLIT_TEST } bnk_split;

/* How features become floats in a batch. */
typedef enum bnk_scaling {
    BNK_SCALE_NONE,       /* as stored (uint8 0..255 become 0..255)                         */
    BNK_SCALE_UNIT,       /* uint8 / 255 -> [0, 1]; float features unchanged                */
    BNK_SCALE_STANDARDIZE /* (v - mean_f)/std_f per feature with statistics supplied by the
                             caller (bnk_dataset_feature_stats on the training split)        */
} bnk_scaling;

typedef struct bnk_dataset bnk_dataset;

/* Loads a data set (see the sources above). On failure *out is NULL and bnk_errmsg() says why. */
bnk_status bnk_dataset_load(bnk_dataset **out, const char *spec, bnk_split split);
/* Frees; NULL is harmless. */
void bnk_dataset_destroy(bnk_dataset *ds);

/* The accessors return 0 (and set 0) for a NULL data set. */
int64_t bnk_dataset_size(const bnk_dataset *ds);        /* number of samples            */
int64_t bnk_dataset_num_classes(const bnk_dataset *ds); /* labels are 0 .. this-1       */
/* Per-sample feature shape (c, h, w); features per sample = c*h*w. Any pointer may be NULL. */
void bnk_dataset_shape(const bnk_dataset *ds, int64_t *c, int64_t *h, int64_t *w);

/* Moves `count` samples chosen uniformly at random (from `seed` alone) into a new data set *out
 * (e.g. a validation split); ds keeps the rest. Both keep the samples' original relative order.
 * Errors: BNK_ERR_NULL, BNK_ERR_SIZE (count outside [1, size-1]), BNK_ERR_NOMEM; on error ds is
 * unchanged and *out is NULL. */
bnk_status bnk_dataset_split(bnk_dataset *ds, int64_t count, uint64_t seed, bnk_dataset **out);

/* Keeps only the first `count` samples (for --train-size style subsets; after a split).
 * Errors: BNK_ERR_NULL, BNK_ERR_SIZE (count outside [1, size]). */
bnk_status bnk_dataset_truncate(bnk_dataset *ds, int64_t count);

/* Writes a uniformly random permutation of 0..size-1 into order[size] (Fisher-Yates with
 * unbiased bounded draws), advancing *rng (explicit state, reproducible from the seed; any value
 * is a valid state). Does nothing when any argument is NULL. */
void bnk_dataset_shuffle(const bnk_dataset *ds, int64_t *order, uint64_t *rng);

/* Per-feature mean and standard deviation over the whole data set (after BNK_SCALE_UNIT-style
 * conversion of uint8 to [0,1]), for BNK_SCALE_STANDARDIZE: mean[f], std[f] with f = c*h*w
 * features; std is the population deviation (divides by size), floored at 1e-6 so constant
 * features do not divide by zero. Accumulates in double (exact integers for uint8).
 * Errors: BNK_ERR_NULL, BNK_ERR_NOMEM. */
bnk_status bnk_dataset_feature_stats(const bnk_dataset *ds, float *mean, float *std);

/* Forms a batch: x[count * features] (sample-major, each sample (c,h,w) C-order) and
 * labels[count] from the samples idx[0..count-1] (repeats allowed). stats is {mean, std} arrays
 * of `features` floats for BNK_SCALE_STANDARDIZE (ignored otherwise, may be NULL). uint8 pixels
 * v become v (NONE), v * (1/255) (UNIT: within one float ulp of v/255; 0 and 255 give exactly
 * 0 and 1) or (v * (1/255) - mean[f]) / std[f] (STANDARDIZE); float features are copied (NONE,
 * UNIT) or become (v - mean[f]) / std[f]. No allocation; safe to call from several threads.
 * Errors: BNK_ERR_NULL, BNK_ERR_SIZE (count < 0), BNK_ERR_PARAM (an index outside [0, size) or
 * an unknown scaling); on error x and labels are untouched. */
bnk_status bnk_dataset_batch(const bnk_dataset *ds, const int64_t *idx, int64_t count,
                             bnk_scaling scaling, const float *const stats[2], float *x,
                             int32_t *labels);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_DATA_H */
