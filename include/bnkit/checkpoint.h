/* bnkit/checkpoint.h — models saved to and loaded from safetensors files.
 *
 *     bnk_checkpoint_meta meta = {.data = "fashion-mnist", .scaling = BNK_SCALE_UNIT};
 *     if (bnk_checkpoint_save(model, "model.safetensors", &meta) != BNK_OK) ...
 *
 *     bnk_model *m;
 *     bnk_checkpoint_meta got;
 *     if (bnk_checkpoint_load(&m, "model.safetensors", 100, &got) != BNK_OK)
 *         fprintf(stderr, "%s\n", bnk_errmsg());     // names the problem: "tensor '0.dense.bias':
 *     ...                                            //  shape (64) but the model has (128)"
 *     bnk_checkpoint_meta_free(&got);
 *
 * The file is safetensors (https://github.com/huggingface/safetensors), readable by NumPy and
 * PyTorch users without bnkit (scripts/check_safetensors.py parses it with NumPy alone):
 *
 *     offset 0   N                 uint64 little-endian: length of the header
 *     offset 8   header            N bytes of UTF-8 JSON, padded with spaces so that the data
 *                                  start on an 8-byte boundary
 *     offset 8+N data              the tensors' raw bytes, little-endian float32, C order,
 *                                  back to back in the order the header's offsets give
 *
 * The header maps every tensor name (bnk_model_tensor's: "0.dense.weight", "2.bn.running_var",
 * PyTorch shapes) to {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} (byte
 * offsets into the data section), plus "__metadata__", a map of strings:
 *   format "bnkit", version "1", spec (the model spec), in_shape ("1,28,28"), bn_step (the BN
 *   step counter), bn_config (every bnk_bn_config field as JSON; infinities as "inf"/"-inf"),
 *   dropout, seed, and optionally data (the data-set spec trained on), test_data (a separate
 *   test set), scaling ("none"|"unit"|"standardize"), folded ("true" for a bnk_model_fold_bn
 *   export). Only format, version, spec, in_shape and bn_config are required; the others
 *   default to bn_step 0, dropout 0.5, seed 0, scaling unit, folded false, and other keys are
 *   ignored, so a file written by other tools with these few strings loads.
 * With scaling "standardize" two more tensors, "input.mean" and "input.std" (shape C, H, W),
 * hold the training set's per-feature statistics that every input must be scaled with.
 * Parameters, BN running statistics and the BN step counter are saved; optimiser state is not.
 *
 * Loading is strict: header length within the file and below 100 MB, valid JSON without
 * duplicate keys, every tensor F32 with a shape of at most 4 dimensions, offsets inside the
 * data section, non-overlapping and covering it without gaps, no bytes after the data, every
 * metadata value a string, the model's tensors all present with their exact shapes and nothing
 * else, finite values, non-negative running variances. Anything else is BNK_ERR_FORMAT with a
 * message naming the problem; a missing or unreadable file is BNK_ERR_IO. */
#ifndef BNKIT_CHECKPOINT_H
#define BNKIT_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "bnkit/data.h"
#include "bnkit/nn.h"
#include "bnkit/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a checkpoint records besides the model. bnk_checkpoint_save only reads it (NULL: no
 * data spec, BNK_SCALE_UNIT); bnk_checkpoint_load fills it with copies that
 * bnk_checkpoint_meta_free releases. */
typedef struct bnk_checkpoint_meta {
    const char *data;        /* data-set spec the model was trained on, or NULL               */
    const char *test_data;   /* spec of its separate test set (train's --test-data), or NULL  */
    bnk_scaling scaling;     /* how inputs must be scaled (bnk_dataset_batch)                 */
    const float *input_mean; /* [in_c*in_h*in_w] with BNK_SCALE_STANDARDIZE, else NULL       */
    const float *input_std;  /* likewise                                                     */
    bool folded;             /* written from a bnk_model_fold_bn model (inference only)       */
} bnk_checkpoint_meta;

/* Writes model (parameters, BN running statistics, BN step, configuration) and meta to path,
 * atomically: a temporary file in the same directory, fsync, rename; on failure path is left
 * as it was. Errors: BNK_ERR_NULL, BNK_ERR_PARAM (standardize without statistics, a data spec
 * that is not UTF-8),
 * BNK_ERR_IO, BNK_ERR_NOMEM. */
bnk_status bnk_checkpoint_save(bnk_model *model, const char *path, const bnk_checkpoint_meta *meta);

/* Re-creates the model a checkpoint describes (spec, input shape, BN configuration) for batches
 * of up to max_batch samples and loads every tensor and the BN step. meta may be NULL. On
 * failure *out is NULL and meta is zeroed. */
bnk_status bnk_checkpoint_load(bnk_model **out, const char *path, int64_t max_batch,
                               bnk_checkpoint_meta *meta);

/* Frees what bnk_checkpoint_load put in meta and zeroes it; NULL is harmless. */
void bnk_checkpoint_meta_free(bnk_checkpoint_meta *meta);

#ifdef __cplusplus
}
#endif

#endif /* BNKIT_CHECKPOINT_H */
