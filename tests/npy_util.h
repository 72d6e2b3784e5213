/* Helpers shared by the tests of the .npy reader and writer (include/bnkit/npy.h): test_npy.c
 * (round trips, NumPy's files, accepted variants, conversion) and test_npy_errors.c (refused
 * inputs, file reader and writer failures).
 *
 * Data round-trips bit for bit, so arrays are compared with memcmp / ==, never a tolerance.
 * Files NumPy wrote live in tests/fixtures/npy (made by scripts/gen_npy_fixtures.py); the
 * other inputs are built here byte by byte following NumPy's format rules. */
#ifndef BNKIT_TEST_NPY_UTIL_H
#define BNKIT_TEST_NPY_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bnkit/npy.h"
#include "test_util.h"

#define FIXTURE(name) BNK_FIXTURE_DIR "/npy/" name

/* A fresh directory per test run, removed at the end. */
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

/* Builds a .npy image the way NumPy does: prefix, dict text, spaces up to an align-byte boundary
 * (64 today, 16 before NumPy 1.9) including a final '\n', then nbytes of data. major selects the
 * 2-byte (1.0) or 4-byte (2.0, 3.0) length field. */
static inline blob npy_image_aligned(unsigned major, const char *dict, size_t align,
                                     const void *data, size_t nbytes) {
    size_t plen = major == 1 ? 10 : 12;
    size_t dlen = strlen(dict);
    size_t pad = align - (plen + dlen + 1) % align;
    size_t hlen = dlen + pad + 1;
    blob b = {malloc(plen + hlen + nbytes + 1), plen + hlen + nbytes};
    assert_non_null(b.p);
    memcpy(b.p, "\x93NUMPY", 6);
    b.p[6] = (unsigned char)major;
    b.p[7] = 0;
    for (size_t i = 0; i < plen - 8; i++) b.p[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b.p + plen, dict, dlen);
    memset(b.p + plen + dlen, ' ', pad);
    b.p[plen + hlen - 1] = '\n';
    if (nbytes > 0) memcpy(b.p + plen + hlen, data, nbytes);
    return b;
}

static inline blob npy_image(unsigned major, const char *dict, const void *data, size_t nbytes) {
    return npy_image_aligned(major, dict, 64, data, nbytes);
}

/* Offset of the data in an image built above. */
static inline size_t image_data_offset(const blob *b) {
    if (b->p[6] == 1) return 10 + ((size_t)b->p[8] | (size_t)b->p[9] << 8);
    return 12 + ((size_t)b->p[8] | (size_t)b->p[9] << 8 | (size_t)b->p[10] << 16 |
                 (size_t)b->p[11] << 24);
}

static inline void make_path(char *buf, size_t size, const char *name) {
    int n = snprintf(buf, size, "%s/%s", g_dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

static inline void write_blob(const char *path, const blob *b) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, b->len, f), b->len);
    assert_int_equal(fclose(f), 0);
}

static inline blob read_whole(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) fail_msg("cannot open %s: %s", path, strerror(errno));
    blob b = {NULL, 0};
    size_t cap = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (b.len == cap) {
            cap = cap ? 2 * cap : 256;
            b.p = realloc(b.p, cap);
            assert_non_null(b.p);
        }
        b.p[b.len++] = (unsigned char)c;
    }
    fclose(f);
    return b;
}

/* Number of entries (other than . and ..) in g_dir. */
static inline int dir_entries(void) {
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    }
    closedir(d);
    return n;
}

static inline void assert_zeroed(const bnk_npy *a) {
    bnk_npy zero;
    memset(&zero, 0, sizeof zero);
    if (memcmp(a, &zero, sizeof zero) != 0) fail_msg("out was not zeroed on failure");
}

static inline void assert_msg_has(const char *needle) {
    if (strstr(bnk_errmsg(), needle) == NULL) {
        fail_msg("error message \"%s\" lacks \"%s\"", bnk_errmsg(), needle);
    }
}

/* Reads an image that must be refused with BNK_ERR_FORMAT and a message containing needle. */
static inline void expect_format(const char *label, const blob *b, const char *needle) {
    bnk_npy a;
    memset(&a, 0xAB, sizeof a);
    bnk_status st = bnk_npy_read_mem(b->p, b->len, &a);
    if (st != BNK_ERR_FORMAT) {
        fail_msg("%s: expected BNK_ERR_FORMAT, got %s (%s)", label, bnk_status_str(st),
                 bnk_errmsg());
    }
    assert_zeroed(&a);
    if (strstr(bnk_errmsg(), needle) == NULL) {
        fail_msg("%s: error message \"%s\" lacks \"%s\"", label, bnk_errmsg(), needle);
    }
}

/* A dict that must be refused, with f32 data for shape (2,) so only the header is wrong. */
static inline void expect_dict_format(const char *dict, const char *needle) {
    const float data[2] = {1.0f, 2.0f};
    blob b = npy_image(1, dict, data, sizeof data);
    expect_format(dict, &b, needle);
    blob_free(&b);
}

static const float k_f32_2x3[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
static const double k_f64_4[4] = {0.1, -2.5, 1e-300, 3.141592653589793};

/* ---- Setup ----------------------------------------------------------------------------------- */

static inline int group_setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0') tmp = "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/bnkit_test_npy_XXXXXX", tmp);
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static inline int group_teardown(void **state) {
    (void)state;
    DIR *d = opendir(g_dir);
    if (d == NULL) return -1;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
        if (unlink(path) != 0) rmdir(path);
    }
    closedir(d);
    return rmdir(g_dir);
}

#endif /* BNKIT_TEST_NPY_UTIL_H */
