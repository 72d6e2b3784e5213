/* Internals of the data-set module (src/data/, not installed).
 *
 *     dataset.c   the bnk_dataset object: allocation, accessors, bnk_dataset_load's dispatch
 *     gzio.c      reading files through zlib (gzipped or plain, transparently)
 *     idx.c       MNIST IDX files (gzipped or plain): in-memory parser + file reader
 *     csv.c       CSV files: in-memory parser + file reader
 *     npy_pair.c  npy:X,Y through bnk_npy_read
 *     subset.c    split, truncate, shuffle (seeded, explicit PRNG state)
 *     batch.c     feature statistics and batch formation (the training hot path)
 *
 * Randomness uses core/rng.h (splitmix64 with explicit state, unbiased bounded integers).
 *
 * The in-memory parsers (bnk__idx_*_mem, bnk__csv_parse_mem) are what the file readers use and
 * what the fuzz targets in tests/fuzz/ drive. */
#ifndef BNKIT_DATA_INTERNAL_H
#define BNKIT_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "bnkit/data.h"

/* Labels must lie in [0, BNK__DATA_MAX_CLASSES) whatever the source (IDX labels are bytes). */
#define BNK__DATA_MAX_CLASSES 65536
/* Largest feature array a parser will build: a lying IDX header or a huge CSV file is refused
 * before it can ask for more than this. */
#define BNK__DATA_MAX_BYTES ((uint64_t)1 << 31)

/* Where Debian's dataset-fashion-mnist puts the files, and what to say when they are missing. */
#define BNK__FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define BNK__FASHION_MNIST_HINT                                                                    \
    " (install Fashion-MNIST with `apt-get install dataset-fashion-mnist`)"

/* Exactly one of u8 / f32 holds the features, size*features values, sample-major, each sample
 * (c, h, w) in C order. */
struct bnk_dataset {
    int64_t size;        /* samples                                                  */
    int64_t c, h, w;     /* per-sample shape                                         */
    int64_t features;    /* c*h*w                                                    */
    int64_t num_classes; /* fixed at load: split and truncate keep it                */
    uint8_t *u8;         /* [size][features] raw pixels, or NULL                     */
    float *f32;          /* [size][features] finite floats, or NULL                  */
    int32_t *labels;     /* [size] in 0 .. num_classes-1                             */
};

/* ---- dataset.c ------------------------------------------------------------------------------ */

typedef enum bnk__feat { BNK__FEAT_NONE, BNK__FEAT_U8, BNK__FEAT_F32 } bnk__feat;

/* Allocates a data set of `size` samples of shape (c, h, w) with uninitialised labels and, per
 * feat, uninitialised uint8 or float features (NONE: the caller attaches u8 or f32 itself).
 * num_classes is left 0 (see bnk__dataset_finish). */
bnk_status bnk__dataset_alloc(bnk_dataset **out, int64_t size, int64_t c, int64_t h, int64_t w,
                              bnk__feat feat);

/* Sets num_classes = max label + 1 (at least 2). Labels must already be checked in range. */
void bnk__dataset_finish(bnk_dataset *ds);

/* Checks a label value read as a double: finite, integral, in [0, BNK__DATA_MAX_CLASSES).
 * Returns NULL when fine, else a static description of the problem ("is negative"). */
const char *bnk__label_problem(double v);

/* ---- gzio.c --------------------------------------------------------------------------------- */

/* Opens path for reading through zlib (gzip or plain). NULL with errno set on failure. */
gzFile bnk__gz_open(const char *path);

/* Reads up to n bytes into buf, fewer only at the end of the stream (*got says how many).
 * BNK_ERR_IO for a read error, BNK_ERR_FORMAT for a corrupt or truncated gzip stream; the
 * messages name path. */
bnk_status bnk__gz_read(gzFile f, const char *path, void *buf, size_t n, size_t *got);

/* Reads up to max bytes from the current position into a malloc'd buffer that grows as data
 * arrive (so a lying header cannot make us allocate more than the stream holds), plus one
 * spare byte set to '\0'. *got is the byte count; *buf must be freed by the caller. */
bnk_status bnk__gz_read_upto(gzFile f, const char *path, size_t max, unsigned char **buf,
                             size_t *got);

/* ---- idx.c ---------------------------------------------------------------------------------- */

/* A validated IDX header: magic 0x0000080N (unsigned bytes, N dimensions), N big-endian uint32
 * dimensions. Images have N = 3 (count, rows, cols), labels N = 1 (count). */
typedef struct bnk__idx_header {
    int ndims;         /* 1 or 3                           */
    uint32_t dims[3];  /* dims[0] = number of items        */
    size_t header_len; /* 4 + 4*ndims                      */
    size_t data_len;   /* product of dims, bytes; <= 2 GiB */
} bnk__idx_header;

/* Checks the header at p[0..len): magic for ndims dimensions (1 or 3), every dimension > 0,
 * data size within BNK__DATA_MAX_BYTES. name appears in messages. BNK_ERR_FORMAT otherwise. */
bnk_status bnk__idx_parse_header(const unsigned char *p, size_t len, int ndims, const char *name,
                                 bnk__idx_header *h);

/* Builds a data set from in-memory images (ndims 3) and labels (ndims 1) IDX files: headers
 * valid, data exactly as long as promised (no truncation, no trailing bytes), equal counts. */
bnk_status bnk__idx_load_mem(bnk_dataset **out, const void *images, size_t images_len,
                             const char *images_name, const void *labels, size_t labels_len,
                             const char *labels_name);

/* Loads {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] from dir (.gz tried first). When a
 * file is missing the BNK_ERR_IO message ends with missing_hint if it is not NULL. */
bnk_status bnk__idx_load_dir(bnk_dataset **out, const char *dir, bnk_split split,
                             const char *missing_hint);

/* ---- csv.c ---------------------------------------------------------------------------------- */

/* Parses CSV text buf[0..len) (no terminator needed) named `name` in messages. */
bnk_status bnk__csv_parse_mem(bnk_dataset **out, const char *buf, size_t len, const char *name);

/* Reads and parses a CSV file (gzipped or plain). */
bnk_status bnk__csv_load(bnk_dataset **out, const char *path);

/* ---- npy_pair.c ----------------------------------------------------------------------------- */

/* Loads features x_path (N, F) or (N, C, H, W) and labels y_path (N,). */
bnk_status bnk__npy_pair_load(bnk_dataset **out, const char *x_path, const char *y_path);

#endif /* BNKIT_DATA_INTERNAL_H */
