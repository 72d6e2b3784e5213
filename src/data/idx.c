/* MNIST-format IDX files (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT"):
 *
 *     offset 0   0x00 0x00 type ndims     magic: type 0x08 = unsigned byte
 *     offset 4   ndims big-endian uint32   dimensions, the first one the item count
 *     then       prod(dims) bytes          items in C order
 *
 * bnkit reads the two kinds MNIST uses: images, magic 0x00000803 (count, rows, cols), and
 * labels, magic 0x00000801 (count). Files may be gzipped (zlib reads both). The header is checked
 * first (every dimension > 0, at most 2 GiB of data), then the data must be exactly as long as
 * the header promises: a short file is truncated, a longer one has trailing garbage. The file
 * reader and the in-memory parser (used by the fuzzer) share bnk__idx_parse_header and
 * idx_check_data_len. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "data/data_internal.h"

#define IDX_TYPE_U8  0x08
#define IDX_MAX_HEAD 16 /* 4 + 4*3 */

static uint32_t idx_be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static const char *idx_kind(int ndims) {
    return ndims == 3 ? "images" : "labels";
}

bnk_status bnk__idx_parse_header(const unsigned char *p, size_t len, int ndims, const char *name,
                                 bnk__idx_header *h) {
    memset(h, 0, sizeof *h);
    uint32_t want = (uint32_t)IDX_TYPE_U8 << 8 | (uint32_t)ndims;
    if (len < 4) {
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s: truncated IDX file: %zu bytes, no room for the magic number", name,
                         len);
    }
    uint32_t magic = idx_be32(p);
    if (magic != want) {
        if (p[0] != 0 || p[1] != 0) {
            return bnk__fail(BNK_ERR_FORMAT,
                             "%s: not an IDX file: bad magic 0x%08" PRIx32 " (expected 0x%08" PRIx32
                             " for %s)",
                             name, magic, want, idx_kind(ndims));
        }
        if (p[2] != IDX_TYPE_U8) {
            return bnk__fail(BNK_ERR_FORMAT,
                             "%s: IDX element type 0x%02x is not supported (bnkit reads unsigned "
                             "bytes, type 0x08)",
                             name, p[2]);
        }
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s: IDX file has %u dimensions, expected %d for %s (magic 0x%08" PRIx32
                         ")",
                         name, p[3], ndims, idx_kind(ndims), want);
    }
    size_t head = 4 + 4 * (size_t)ndims;
    if (len < head) {
        return bnk__fail(BNK_ERR_FORMAT, "%s: truncated IDX header: %zu of %zu bytes", name, len,
                         head);
    }
    uint64_t bytes = 1;
    for (int i = 0; i < ndims; i++) {
        uint32_t d = idx_be32(p + 4 + 4 * i);
        if (d == 0) return bnk__fail(BNK_ERR_FORMAT, "%s: IDX dimension %d is 0", name, i);
        if (d > BNK__DATA_MAX_BYTES / bytes) {
            return bnk__fail(BNK_ERR_FORMAT,
                             "%s: IDX dimensions %" PRIu32 " x %" PRIu32 " x %" PRIu32
                             " exceed the limit of %" PRIu64 " bytes",
                             name, idx_be32(p + 4), ndims > 1 ? idx_be32(p + 8) : 1,
                             ndims > 2 ? idx_be32(p + 12) : 1, BNK__DATA_MAX_BYTES);
        }
        bytes *= d;
        h->dims[i] = d;
    }
    h->ndims = ndims;
    h->header_len = head;
    h->data_len = (size_t)bytes;
    return BNK_OK;
}

/* have = bytes found after the header (a reader that stops early passes data_len + 1). */
static bnk_status idx_check_data_len(const bnk__idx_header *h, size_t have, const char *name) {
    if (have < h->data_len) {
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s: truncated IDX file: the header promises %zu bytes of %s, the file "
                         "holds %zu",
                         name, h->data_len, idx_kind(h->ndims), have);
    }
    if (have > h->data_len) {
        return bnk__fail(BNK_ERR_FORMAT, "%s: trailing bytes after the %zu bytes of IDX %s", name,
                         h->data_len, idx_kind(h->ndims));
    }
    return BNK_OK;
}

/* Makes the data set from validated images and labels. pixels_owned (malloc'd, data_len
 * bytes) is adopted when not NULL, else pixels are copied. */
static bnk_status idx_build(bnk_dataset **out, const bnk__idx_header *ih, const uint8_t *pixels,
                            uint8_t *pixels_owned, const char *images_name,
                            const bnk__idx_header *lh, const uint8_t *labels,
                            const char *labels_name) {
    *out = NULL;
    if (ih->dims[0] != lh->dims[0]) {
        free(pixels_owned);
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s holds %" PRIu32 " images but %s holds %" PRIu32 " labels", images_name,
                         ih->dims[0], labels_name, lh->dims[0]);
    }
    bnk_dataset *ds;
    bnk_status st = bnk__dataset_alloc(&ds, ih->dims[0], 1, ih->dims[1], ih->dims[2],
                                       pixels_owned ? BNK__FEAT_NONE : BNK__FEAT_U8);
    if (st != BNK_OK) {
        free(pixels_owned);
        return st;
    }
    if (pixels_owned) {
        ds->u8 = pixels_owned;
    } else {
        memcpy(ds->u8, pixels, ih->data_len);
    }
    for (int64_t i = 0; i < ds->size; i++) ds->labels[i] = labels[i];
    bnk__dataset_finish(ds);
    *out = ds;
    return BNK_OK;
}

bnk_status bnk__idx_load_mem(bnk_dataset **out, const void *images, size_t images_len,
                             const char *images_name, const void *labels, size_t labels_len,
                             const char *labels_name) {
    *out = NULL;
    const unsigned char *ip = images, *lp = labels;
    bnk__idx_header ih, lh;
    bnk_status st;
    if ((st = bnk__idx_parse_header(ip, images_len, 3, images_name, &ih)) != BNK_OK) return st;
    st = idx_check_data_len(&ih, images_len - ih.header_len, images_name);
    if (st != BNK_OK) return st;
    if ((st = bnk__idx_parse_header(lp, labels_len, 1, labels_name, &lh)) != BNK_OK) return st;
    st = idx_check_data_len(&lh, labels_len - lh.header_len, labels_name);
    if (st != BNK_OK) return st;
    return idx_build(out, &ih, ip + ih.header_len, NULL, images_name, &lh, lp + lh.header_len,
                     labels_name);
}

/* ---- Files ----------------------------------------------------------------------------------- */

/* Opens dir/base.gz, or dir/base when that does not exist. *path receives the name opened
 * (malloc'd). */
static bnk_status idx_open(const char *dir, const char *base, const char *hint, gzFile *f,
                           char **path) {
    *f = NULL;
    size_t n = strlen(dir) + strlen(base) + 5;
    char *p = malloc(n);
    if (p == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate a path");
    snprintf(p, n, "%s/%s.gz", dir, base);
    errno = 0;
    *f = bnk__gz_open(p);
    if (*f == NULL && errno == ENOENT) {
        snprintf(p, n, "%s/%s", dir, base);
        errno = 0;
        *f = bnk__gz_open(p);
        if (*f == NULL && errno == ENOENT) {
            free(p);
            return bnk__fail(BNK_ERR_IO, "cannot find %s/%s.gz or %s/%s%s", dir, base, dir, base,
                             hint ? hint : "");
        }
    }
    if (*f == NULL) {
        int err = errno;
        bnk_status st =
            bnk__fail(err == ENOMEM ? BNK_ERR_NOMEM : BNK_ERR_IO, "cannot open '%s': %s", p,
                      err ? strerror(err) : "zlib could not start reading");
        free(p);
        return st;
    }
    *path = p;
    return BNK_OK;
}

/* Reads and checks one open IDX file; *data is malloc'd, h->data_len bytes. */
static bnk_status idx_read(gzFile f, const char *path, int ndims, bnk__idx_header *h,
                           uint8_t **data) {
    *data = NULL;
    unsigned char head[IDX_MAX_HEAD];
    size_t got;
    bnk_status st = bnk__gz_read(f, path, head, 4 + 4 * (size_t)ndims, &got);
    if (st == BNK_OK) st = bnk__idx_parse_header(head, got, ndims, path, h);
    if (st != BNK_OK) return st;
    unsigned char *buf;
    /* One byte more than promised, to notice trailing garbage. */
    if ((st = bnk__gz_read_upto(f, path, h->data_len + 1, &buf, &got)) != BNK_OK) return st;
    if ((st = idx_check_data_len(h, got, path)) != BNK_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    return BNK_OK;
}

bnk_status bnk__idx_load_dir(bnk_dataset **out, const char *dir, bnk_split split,
                             const char *missing_hint) {
    *out = NULL;
    const char *prefix = split == BNK_SPLIT_TEST ? "t10k" : "train";
    char img_base[32], lab_base[32];
    snprintf(img_base, sizeof img_base, "%s-images-idx3-ubyte", prefix);
    snprintf(lab_base, sizeof lab_base, "%s-labels-idx1-ubyte", prefix);

    gzFile fi = NULL, fl = NULL;
    char *img_path = NULL, *lab_path = NULL;
    uint8_t *pixels = NULL, *labels = NULL;
    bnk__idx_header ih, lh;
    /* Both files are opened before the large one is read, so a missing label file is reported
     * at once. */
    bnk_status st = idx_open(dir, img_base, missing_hint, &fi, &img_path);
    if (st == BNK_OK) st = idx_open(dir, lab_base, missing_hint, &fl, &lab_path);
    if (st == BNK_OK) st = idx_read(fl, lab_path, 1, &lh, &labels);
    if (st == BNK_OK) st = idx_read(fi, img_path, 3, &ih, &pixels);
    if (st == BNK_OK) {
        st = idx_build(out, &ih, NULL, pixels, img_path, &lh, labels, lab_path);
        pixels = NULL; /* adopted or freed */
    }
    if (fi) gzclose(fi);
    if (fl) gzclose(fl);
    free(pixels);
    free(labels);
    free(img_path);
    free(lab_path);
    return st;
}
