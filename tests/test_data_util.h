/* Helpers shared by test_data.c (readers) and test_data_ops.c (split, shuffle, batches): a
 * per-run temporary directory, file writers (plain and gzipped), status/message checks, and
 * builders of small synthetic IDX files. Include it first: it sets _XOPEN_SOURCE for nftw. */
#ifndef BNKIT_TEST_DATA_UTIL_H
#define BNKIT_TEST_DATA_UTIL_H

#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "bnkit/data.h"
#include "bnkit/npy.h"
#include "data/data_internal.h"
#include "test_util.h"

/* A fresh directory per test program run (group_setup), removed at the end. */
static char g_dir[256];

/* ---- Helpers --------------------------------------------------------------------------------- */

typedef struct blob {
    unsigned char *p;
    size_t len;
} blob;

static inline void blob_free(blob *b) {
    free(b->p);
    b->p = NULL;
    b->len = 0;
}

/* "<g_dir>/<name>" in a static ring of buffers (enough for one call's arguments). */
static inline const char *path_of(const char *name) {
    static char bufs[4][512];
    static int next;
    char *p = bufs[next++ % 4];
    int n = snprintf(p, sizeof bufs[0], "%s/%s", g_dir, name);
    assert_true(n > 0 && (size_t)n < sizeof bufs[0]);
    return p;
}

static inline void write_bytes(const char *name, const void *p, size_t len, int gz) {
    const char *path = path_of(name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (f == NULL) fail_msg("gzopen %s failed", path);
        if (len > 0) assert_int_equal(gzwrite(f, p, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        if (f == NULL) fail_msg("cannot create %s: %s", path, strerror(errno));
        assert_int_equal(fwrite(p, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
}

static inline blob read_bytes(const char *name) {
    FILE *f = fopen(path_of(name), "rb");
    if (f == NULL) fail_msg("cannot open %s", path_of(name));
    blob b = {malloc(1 << 20), 0};
    assert_non_null(b.p);
    b.len = fread(b.p, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static inline void make_dir(const char *name) {
    if (mkdir(path_of(name), 0700) != 0 && errno != EEXIST) fail_msg("mkdir %s", name);
}

/* Checks a failure's status and that its message contains needle; `where` names the case. */
static inline void expect_fail(const char *where, bnk_status st, bnk_status want,
                               const char *needle) {
    if (st != want) {
        fail_msg("%s: expected %s, got %s (%s)", where, bnk_status_str(want), bnk_status_str(st),
                 bnk_errmsg());
    }
    if (needle != NULL && strstr(bnk_errmsg(), needle) == NULL) {
        fail_msg("%s: message \"%s\" lacks \"%s\"", where, bnk_errmsg(), needle);
    }
}

/* Loads spec, which must fail with want (message containing needle), leaving *out NULL. */
static inline void expect_load_fail(const char *spec, bnk_split split, bnk_status want,
                                    const char *needle) {
    bnk_dataset *ds = (bnk_dataset *)&ds; /* must be reset to NULL */
    bnk_status st = bnk_dataset_load(&ds, spec, split);
    expect_fail(spec, st, want, needle);
    if (ds != NULL) fail_msg("%s: *out not NULL after a failure", spec);
}

static inline bnk_dataset *load_ok(const char *spec, bnk_split split) {
    bnk_dataset *ds = NULL;
    bnk_status st = bnk_dataset_load(&ds, spec, split);
    if (st != BNK_OK) fail_msg("loading %s: %s: %s", spec, bnk_status_str(st), bnk_errmsg());
    assert_non_null(ds);
    return ds;
}

static inline int64_t features_of(const bnk_dataset *ds) {
    int64_t c, h, w;
    bnk_dataset_shape(ds, &c, &h, &w);
    return c * h * w;
}

/* Whole data set as a NONE-scaled batch in its own order (caller frees *x and *y). */
static inline void dump(const bnk_dataset *ds, float **x, int32_t **y) {
    int64_t n = bnk_dataset_size(ds), f = features_of(ds);
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    *x = malloc((size_t)(n * f) * sizeof **x);
    *y = malloc((size_t)n * sizeof **y);
    assert_true(idx && *x && *y);
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    assert_int_equal(bnk_dataset_batch(ds, idx, n, BNK_SCALE_NONE, NULL, *x, *y), BNK_OK);
    free(idx);
}

/* ---- IDX builders ---------------------------------------------------------------------------- */

/* Pixel j of image i in the synthetic sets: distinct per (i, j) for small sets. */
static inline uint8_t pixel(size_t i, size_t j) {
    return (uint8_t)(i * 37 + j * 11 + 5);
}

static inline uint8_t label_of(size_t i) {
    return (uint8_t)(i * 3 % 11); /* 0..10: more than ten classes is fine */
}

static inline void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* An images file: magic, dims (count, rows, cols), then `data` bytes of pixels (may differ from
 * count*rows*cols to build truncated or overlong files). */
static inline blob idx_images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                              size_t data) {
    blob b = {malloc(16 + data + 1), 16 + data};
    assert_non_null(b.p);
    put_be32(b.p, magic);
    put_be32(b.p + 4, n);
    put_be32(b.p + 8, rows);
    put_be32(b.p + 12, cols);
    size_t per = (size_t)rows * cols;
    for (size_t k = 0; k < data; k++) b.p[16 + k] = pixel(k / per, k % per);
    return b;
}

static inline blob idx_labels(uint32_t magic, uint32_t n, size_t data) {
    blob b = {malloc(8 + data + 1), 8 + data};
    assert_non_null(b.p);
    put_be32(b.p, magic);
    put_be32(b.p + 4, n);
    for (size_t k = 0; k < data; k++) b.p[8 + k] = label_of(k);
    return b;
}

/* Writes a complete, valid MNIST-style directory: n_train / n_test images of rows x cols. */
static inline void write_mnist_dir(const char *dir, uint32_t n_train, uint32_t n_test,
                                   uint32_t rows, uint32_t cols, int gz) {
    make_dir(dir);
    char name[128];
    const char *suffix = gz ? ".gz" : "";
    for (int t = 0; t < 2; t++) {
        uint32_t n = t ? n_test : n_train;
        const char *pre = t ? "t10k" : "train";
        blob im = idx_images(0x803, n, rows, cols, (size_t)n * rows * cols);
        blob lb = idx_labels(0x801, n, n);
        snprintf(name, sizeof name, "%s/%s-images-idx3-ubyte%s", dir, pre, suffix);
        write_bytes(name, im.p, im.len, gz);
        snprintf(name, sizeof name, "%s/%s-labels-idx1-ubyte%s", dir, pre, suffix);
        write_bytes(name, lb.p, lb.len, gz);
        blob_free(&im);
        blob_free(&lb);
    }
}

static inline bnk_dataset *load_csv_text(const char *name, const char *text) {
    write_bytes(name, text, strlen(text), 0);
    char spec[600];
    snprintf(spec, sizeof spec, "csv:%s", path_of(name));
    return load_ok(spec, BNK_SPLIT_TRAIN);
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- Group setup: the temporary directory ---------------------------------------------------- */

static inline int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline int group_setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/bnkit_data_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static inline int group_teardown(void **state) {
    (void)state;
    return nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* BNKIT_TEST_DATA_UTIL_H */
