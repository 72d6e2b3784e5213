/* Internals of checkpoints (include/bnkit/checkpoint.h): the safetensors header as data, its
 * in-memory parser and builder (ckpt_format.c, no model and no file needed, so it can be
 * fuzzed), and the model-size plan that lets the loader refuse a spec before allocating for it.
 * Not installed. */
#ifndef BNKIT_NN_CHECKPOINT_INTERNAL_H
#define BNKIT_NN_CHECKPOINT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bnkit/bn.h"
#include "bnkit/data.h"
#include "bnkit/nn.h"

#define BNK__CKPT_MAX_HEADER  100000000u /* safetensors' own limit on the header (100 MB)   */
#define BNK__CKPT_MAX_TENSORS 1024       /* a model has at most 4 per layer, 64 layers        */
#define BNK__CKPT_MAX_DIMS    4
#define BNK__CKPT_NAME_MAX    48 /* as bnk_tensor_info.name, with the NUL                  */
#define BNK__CKPT_FORMAT      "bnkit"
#define BNK__CKPT_VERSION     "1"

/* One entry of the header. Offsets are bytes into the data section; end - begin = 4*count. */
typedef struct bnk__ckpt_tensor {
    char name[BNK__CKPT_NAME_MAX];
    int ndim;
    int64_t shape[BNK__CKPT_MAX_DIMS];
    size_t count;
    uint64_t begin, end;
} bnk__ckpt_tensor;

/* A whole header: the metadata, decoded, and the tensor table. */
typedef struct bnk__ckpt_desc {
    char *spec;               /* model spec (owned)                                   */
    int64_t in_c, in_h, in_w; /* per-sample input shape                               */
    int64_t bn_step;
    bnk_bn_config bn;
    double dropout;
    uint64_t seed;
    char *data;      /* data-set spec, NULL when absent (owned) */
    char *test_data; /* test-set spec, NULL when absent (owned) */
    bnk_scaling scaling;
    bool folded;
    int ntensors;
    bnk__ckpt_tensor *tensors; /* [ntensors] (owned); sorted by begin after parsing      */
    uint64_t data_len;         /* bytes of the data section                           */
} bnk__ckpt_desc;

/* Frees the owned fields and zeroes d; NULL is harmless. */
void bnk__ckpt_desc_free(bnk__ckpt_desc *d);

/* Checks the 8-byte length prefix p[0..7] of a file of file_size bytes: *hlen is the header
 * length, between 2 and BNK__CKPT_MAX_HEADER, and the header fits in the file.
 * BNK_ERR_FORMAT otherwise (also when file_size < 8). */
bnk_status bnk__ckpt_prefix(const unsigned char *p, uint64_t file_size, uint64_t *hlen);

/* Parses header text[0..hlen-1] (not NUL-terminated) for a data section of data_len bytes
 * into d (zeroed first; freed again on failure). Validates everything that does not need the
 * model: JSON, keys, dtypes, shapes, offsets (inside the data, no overlap, no gap), metadata.
 * BNK_ERR_FORMAT with the reason, or BNK_ERR_NOMEM. */
bnk_status bnk__ckpt_parse_header(bnk__ckpt_desc *d, const char *text, size_t hlen,
                                  uint64_t data_len);

/* Prefix and header of a whole file held in memory (buf[0..len-1]). */
bnk_status bnk__ckpt_parse(bnk__ckpt_desc *d, const void *buf, size_t len);

/* The header text for d (its metadata and tensors with their offsets, in d's order), padded
 * with spaces so that 8 + *hlen is a multiple of 8. *text is malloc'd; BNK_ERR_NOMEM. */
bnk_status bnk__ckpt_build_header(const bnk__ckpt_desc *d, char **text, size_t *hlen);

/* Defined in model.c: the parameter count and BN-buffer count (running mean + variance
 * floats) of the model cfg describes, without allocating it. Errors as bnk_model_create. */
bnk_status bnk__model_plan(const bnk_model_config *cfg, size_t *num_params, size_t *num_buffers);

#endif /* BNKIT_NN_CHECKPOINT_INTERNAL_H */
