/* Tests for the .npy reader and writer (include/bnkit/npy.h).
 *
 * Data round-trips bit for bit, so arrays are compared with memcmp / ==, never a tolerance.
 * Files NumPy wrote live in tests/fixtures/npy (made by scripts/gen_npy_fixtures.py); the
 * other inputs are built here byte by byte following NumPy's format rules.
 */
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

static void blob_free(blob *b) {
    free(b->p);
    b->p = NULL;
    b->len = 0;
}

/* Builds a .npy image the way NumPy does: prefix, dict text, spaces up to an align-byte boundary
 * (64 today, 16 before NumPy 1.9) including a final '\n', then nbytes of data. major selects the
 * 2-byte (1.0) or 4-byte (2.0, 3.0) length field. */
static blob npy_image_aligned(unsigned major, const char *dict, size_t align, const void *data,
                              size_t nbytes) {
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

static blob npy_image(unsigned major, const char *dict, const void *data, size_t nbytes) {
    return npy_image_aligned(major, dict, 64, data, nbytes);
}

/* Offset of the data in an image built above. */
static size_t image_data_offset(const blob *b) {
    if (b->p[6] == 1) return 10 + ((size_t)b->p[8] | (size_t)b->p[9] << 8);
    return 12 + ((size_t)b->p[8] | (size_t)b->p[9] << 8 | (size_t)b->p[10] << 16 |
                 (size_t)b->p[11] << 24);
}

static void make_path(char *buf, size_t size, const char *name) {
    int n = snprintf(buf, size, "%s/%s", g_dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

static void write_blob(const char *path, const blob *b) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, b->len, f), b->len);
    assert_int_equal(fclose(f), 0);
}

static blob read_whole(const char *path) {
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
static int dir_entries(void) {
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

static void assert_zeroed(const bnk_npy *a) {
    bnk_npy zero;
    memset(&zero, 0, sizeof zero);
    if (memcmp(a, &zero, sizeof zero) != 0) fail_msg("out was not zeroed on failure");
}

static void assert_msg_has(const char *needle) {
    if (strstr(bnk_errmsg(), needle) == NULL) {
        fail_msg("error message \"%s\" lacks \"%s\"", bnk_errmsg(), needle);
    }
}

/* Reads an image that must be refused with BNK_ERR_FORMAT and a message containing needle. */
static void expect_format(const char *label, const blob *b, const char *needle) {
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
static void expect_dict_format(const char *dict, const char *needle) {
    const float data[2] = {1.0f, 2.0f};
    blob b = npy_image(1, dict, data, sizeof data);
    expect_format(dict, &b, needle);
    blob_free(&b);
}

static const float k_f32_2x3[6] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
static const double k_f64_4[4] = {0.1, -2.5, 1e-300, 3.141592653589793};

/* ---- Setup ----------------------------------------------------------------------------------- */

static int group_setup(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || *tmp == '\0') tmp = "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/bnkit_test_npy_XXXXXX", tmp);
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int group_teardown(void **state) {
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

/* ---- Round trips ----------------------------------------------------------------------------- */

/* Checks the header of a file bnk_npy_write made: version 1.0, total a multiple of 64, the
 * expected dict, only spaces after it, and a final '\n'. */
static void check_written_header(const blob *b, const char *dict, size_t nbytes) {
    assert_true(b->len >= 10);
    assert_memory_equal(b->p, "\x93NUMPY\x01\x00", 8);
    size_t hlen = (size_t)b->p[8] | (size_t)b->p[9] << 8;
    size_t total = 10 + hlen;
    assert_int_equal(total % 64, 0);
    assert_int_equal(b->len, total + nbytes);
    assert_int_equal(b->p[total - 1], '\n');
    size_t dlen = strlen(dict);
    assert_true(dlen < hlen);
    if (memcmp(b->p + 10, dict, dlen) != 0) {
        fail_msg("header is \"%.*s\", expected \"%s\"", (int)dlen, (const char *)b->p + 10, dict);
    }
    for (size_t i = 10 + dlen; i < total - 1; i++) assert_int_equal(b->p[i], ' ');
}

static void roundtrip_one(bnk_dtype dtype, int ndim, const int64_t *shape, const char *shape_text,
                          uint64_t *rng) {
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)shape[i];
    size_t itemsize = dtype == BNK_DTYPE_F64 ? 8 : 4;
    unsigned char *data = malloc(count * itemsize);
    assert_non_null(data);
    for (size_t i = 0; i < count; i++) {
        double v = bnk_test_normal(rng) * 100.0;
        /* Special values survive too: the data are copied bit for bit. */
        if (i == 1) v = -0.0;
        if (i == 2) v = INFINITY;
        if (i == 3) v = NAN;
        if (i == 4) v = dtype == BNK_DTYPE_F64 ? 4.9e-324 : 1.4e-45; /* smallest subnormal */
        if (dtype == BNK_DTYPE_F64) {
            memcpy(data + 8 * i, &v, 8);
        } else {
            float f = (float)v;
            memcpy(data + 4 * i, &f, 4);
        }
    }
    char path[512], dict[256];
    make_path(path, sizeof path, "roundtrip.npy");
    assert_int_equal(bnk_npy_write(path, dtype, ndim, shape, data), BNK_OK);

    blob file = read_whole(path);
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
             dtype == BNK_DTYPE_F64 ? "<f8" : "<f4", shape_text);
    check_written_header(&file, dict, count * itemsize);
    blob_free(&file);

    bnk_npy a;
    assert_int_equal(bnk_npy_read(path, &a), BNK_OK);
    assert_int_equal(a.dtype, dtype);
    assert_int_equal(a.ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(a.shape[i], shape[i]);
    for (int i = ndim; i < BNK_NPY_MAX_DIMS; i++) assert_int_equal(a.shape[i], 0);
    assert_int_equal(a.count, count);
    assert_non_null(a.data);
    assert_memory_equal(a.data, data, count * itemsize);
    bnk_npy_free(&a);
    assert_null(a.data);
    assert_int_equal(unlink(path), 0);
    free(data);
}

static void test_roundtrip(void **state) {
    (void)state;
    static const int64_t s0[1] = {0}, s1[1] = {7}, s2[2] = {2, 3}, s4[4] = {2, 1, 3, 2};
    uint64_t rng = 42;
    for (int t = 0; t < 2; t++) {
        bnk_dtype dtype = t ? BNK_DTYPE_F64 : BNK_DTYPE_F32;
        roundtrip_one(dtype, 0, s0, "()", &rng); /* shape ignored for ndim 0 */
        roundtrip_one(dtype, 0, NULL, "()", &rng);
        roundtrip_one(dtype, 1, s1, "(7,)", &rng);
        roundtrip_one(dtype, 2, s2, "(2, 3)", &rng);
        roundtrip_one(dtype, 4, s4, "(2, 1, 3, 2)", &rng);
    }
    assert_int_equal(dir_entries(), 0); /* no temporary files left behind */
}

static void test_roundtrip_max_dims_and_big_dims(void **state) {
    (void)state;
    static const int64_t s8[8] = {1, 2, 1, 3, 1, 1, 2, 1};
    uint64_t rng = 7;
    roundtrip_one(BNK_DTYPE_F32, 8, s8, "(1, 2, 1, 3, 1, 1, 2, 1)", &rng);

#if SIZE_MAX > UINT32_MAX /* these byte sizes need a 64-bit size_t */
    /* Zero-size arrays with huge other dimensions: the header holds 19-digit numbers. */
    static const int64_t big[3] = {0, 1000000000000000000, 2};
    char path[512];
    make_path(path, sizeof path, "empty_big.npy");
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 3, big, NULL), BNK_OK);
    blob file = read_whole(path);
    check_written_header(
        &file, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1000000000000000000, 2), }",
        0);
    blob_free(&file);
    bnk_npy a;
    assert_int_equal(bnk_npy_read(path, &a), BNK_OK);
    assert_int_equal(a.ndim, 3);
    assert_int_equal(a.shape[1], 1000000000000000000);
    assert_int_equal(a.count, 0);
    assert_null(a.data);
    bnk_npy_free(&a);
    unlink(path);
#endif
}

static void test_roundtrip_empty(void **state) {
    (void)state;
    static const int64_t s1[1] = {0}, s2[2] = {3, 0};
    char path[512];
    make_path(path, sizeof path, "empty.npy");
    for (int t = 0; t < 2; t++) {
        const int64_t *shape = t ? s2 : s1;
        const char *dict = t ? "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }"
                             : "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }";
        assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, t + 1, shape, NULL), BNK_OK);
        blob file = read_whole(path);
        check_written_header(&file, dict, 0);
        blob_free(&file);
        bnk_npy a;
        assert_int_equal(bnk_npy_read(path, &a), BNK_OK);
        assert_int_equal(a.ndim, t + 1);
        assert_int_equal(a.count, 0);
        assert_null(a.data);
        assert_int_equal(bnk_npy_to_f32(&a), BNK_OK);
        bnk_npy_free(&a);
    }
    unlink(path);
}

static void test_write_overwrites_existing(void **state) {
    (void)state;
    char path[512];
    make_path(path, sizeof path, "overwrite.npy");
    const int64_t shape1[1] = {6}, shape2[2] = {4, 1};
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 1, shape1, k_f32_2x3), BNK_OK);
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F64, 2, shape2, k_f64_4), BNK_OK);
    bnk_npy a;
    assert_int_equal(bnk_npy_read(path, &a), BNK_OK);
    assert_int_equal(a.dtype, BNK_DTYPE_F64);
    assert_int_equal(a.ndim, 2);
    assert_memory_equal(a.data, k_f64_4, sizeof k_f64_4);
    bnk_npy_free(&a);
    unlink(path);
    assert_int_equal(dir_entries(), 0);
}

/* ---- Interoperability with NumPy ------------------------------------------------------------- */

static void test_numpy_fixtures(void **state) {
    (void)state;
    bnk_npy a;
    assert_int_equal(bnk_npy_read(FIXTURE("f32_2x3.npy"), &a), BNK_OK);
    assert_int_equal(a.dtype, BNK_DTYPE_F32);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.count, 6);
    const float *f = a.data;
    for (int i = 0; i < 6; i++) {
        if (f[i] != k_f32_2x3[i])
            fail_msg("f32_2x3[%d]: expected %g, got %g", i, k_f32_2x3[i], f[i]);
    }
    bnk_npy_free(&a);

    assert_int_equal(bnk_npy_read(FIXTURE("f64_4.npy"), &a), BNK_OK);
    assert_int_equal(a.dtype, BNK_DTYPE_F64);
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.shape[0], 4);
    assert_int_equal(a.count, 4);
    const double *d = a.data;
    for (int i = 0; i < 4; i++) {
        /* Python and C parse the same decimal literal to the same double. */
        if (d[i] != k_f64_4[i])
            fail_msg("f64_4[%d]: expected %.17g, got %.17g", i, k_f64_4[i], d[i]);
    }
    assert_int_equal(bnk_npy_to_f32(&a), BNK_OK);
    assert_int_equal(a.dtype, BNK_DTYPE_F32);
    f = a.data;
    for (int i = 0; i < 4; i++) assert_true(f[i] == (float)k_f64_4[i]);
    bnk_npy_free(&a);
}

/* bnk_npy_write's output is byte-identical to np.save's for the same array. */
static void test_write_matches_numpy(void **state) {
    (void)state;
    char path[512];
    make_path(path, sizeof path, "like_numpy.npy");
    const int64_t s2[2] = {2, 3}, s1[1] = {4};

    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 2, s2, k_f32_2x3), BNK_OK);
    blob ours = read_whole(path), theirs = read_whole(FIXTURE("f32_2x3.npy"));
    assert_int_equal(ours.len, theirs.len);
    assert_memory_equal(ours.p, theirs.p, ours.len);
    blob_free(&ours);
    blob_free(&theirs);

    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F64, 1, s1, k_f64_4), BNK_OK);
    ours = read_whole(path);
    theirs = read_whole(FIXTURE("f64_4.npy"));
    assert_int_equal(ours.len, theirs.len);
    assert_memory_equal(ours.p, theirs.p, ours.len);
    blob_free(&ours);
    blob_free(&theirs);
    unlink(path);
}

/* ---- Hand-crafted files that must be accepted ------------------------------------------------ */

static void expect_read(const char *label, const blob *b, bnk_dtype dtype, int ndim,
                        const int64_t *shape, const void *data, size_t nbytes) {
    bnk_npy a;
    bnk_status st = bnk_npy_read_mem(b->p, b->len, &a);
    if (st != BNK_OK) fail_msg("%s: %s (%s)", label, bnk_status_str(st), bnk_errmsg());
    assert_int_equal(a.dtype, dtype);
    assert_int_equal(a.ndim, ndim);
    for (int i = 0; i < ndim; i++) assert_int_equal(a.shape[i], shape[i]);
    assert_int_equal(a.count * (dtype == BNK_DTYPE_F64 ? 8 : 4), nbytes);
    if (nbytes > 0) assert_memory_equal(a.data, data, nbytes);
    bnk_npy_free(&a);
}

static void test_handcrafted_variants(void **state) {
    (void)state;
    static const int64_t s23[2] = {2, 3}, s6[1] = {6}, s32[2] = {3, 2};
    static const struct {
        const char *dict;
        int ndim;
        const int64_t *shape;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 2, s23},
        /* keys in any order, no trailing comma */
        {"{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", 2, s23},
        {"{'fortran_order': False, 'descr': '<f4', 'shape': (6,)}", 1, s6},
        /* double quotes */
        {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (3, 2)}", 2, s32},
        /* whitespace everywhere, trailing comma in a longer tuple */
        {"{ 'descr' :\t'<f4' ,\n 'fortran_order' : False ,\r\n 'shape' : ( 2 , 3 , ) , }", 2, s23},
        {"{'descr':'<f4','fortran_order':False,'shape':(6 ,)}", 1, s6},
        /* Python 2 longs (accepted in 1.0/2.0 files, like NumPy does) */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", 2, s23},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        blob b = npy_image(1, cases[i].dict, k_f32_2x3, sizeof k_f32_2x3);
        expect_read(cases[i].dict, &b, BNK_DTYPE_F32, cases[i].ndim, cases[i].shape, k_f32_2x3,
                    sizeof k_f32_2x3);
        blob_free(&b);
    }

    /* Old NumPy (< 1.9) aligned the header to 16 bytes. */
    blob b = npy_image_aligned(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", 16,
                               k_f64_4, sizeof k_f64_4);
    assert_int_not_equal(image_data_offset(&b) % 64, 0);
    static const int64_t s4[1] = {4};
    expect_read("16-byte alignment", &b, BNK_DTYPE_F64, 1, s4, k_f64_4, sizeof k_f64_4);
    blob_free(&b);

    /* Scalar: shape () holds one element. */
    const double one = 42.5;
    b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", &one, 8);
    expect_read("scalar", &b, BNK_DTYPE_F64, 0, NULL, &one, 8);
    blob_free(&b);

    /* Zero-size, with "-0" and "00" as dimensions (both are zero in Python, unlike "01"). */
    static const int64_t s0[3] = {0, 5, 0};
    b = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-0, 5, 00), }", NULL, 0);
    expect_read("zero-size", &b, BNK_DTYPE_F32, 3, s0, NULL, 0);
    blob_free(&b);

    /* A header with no padding at all and no final newline (NumPy reads it too). */
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}";
    size_t dlen = strlen(dict);
    b.len = 10 + dlen + sizeof k_f32_2x3;
    b.p = malloc(b.len);
    assert_non_null(b.p);
    memcpy(b.p, "\x93NUMPY\x01\x00", 8);
    b.p[8] = (unsigned char)dlen;
    b.p[9] = 0;
    memcpy(b.p + 10, dict, dlen);
    memcpy(b.p + 10 + dlen, k_f32_2x3, sizeof k_f32_2x3);
    expect_read("unpadded", &b, BNK_DTYPE_F32, 1, s6, k_f32_2x3, sizeof k_f32_2x3);
    blob_free(&b);
}

/* Version 2.0 and 3.0 use a 4-byte header length; np.save writes 2.0 only for huge headers, so
 * these are made by hand. */
static void test_version_2_and_3(void **state) {
    (void)state;
    static const int64_t s23[2] = {2, 3};
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    for (unsigned major = 2; major <= 3; major++) {
        blob b = npy_image(major, dict, k_f32_2x3, sizeof k_f32_2x3);
        assert_int_equal(b.p[6], major);
        assert_int_equal(image_data_offset(&b) % 64, 0);
        expect_read(major == 2 ? "v2.0" : "v3.0", &b, BNK_DTYPE_F32, 2, s23, k_f32_2x3,
                    sizeof k_f32_2x3);

        /* The same bytes through the file reader. */
        char path[512];
        make_path(path, sizeof path, "v2.npy");
        write_blob(path, &b);
        bnk_npy a;
        assert_int_equal(bnk_npy_read(path, &a), BNK_OK);
        assert_int_equal(a.ndim, 2);
        assert_memory_equal(a.data, k_f32_2x3, sizeof k_f32_2x3);
        bnk_npy_free(&a);
        unlink(path);
        blob_free(&b);
    }

    /* Python 2 'L' suffixes only ever appeared before 3.0. */
    blob b = npy_image(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (6L,), }", k_f32_2x3,
                       sizeof k_f32_2x3);
    expect_format("v3.0 with 6L", &b, "expected ',' or ')' after a dimension");
    blob_free(&b);
    /* 3.0 allows UTF-8 headers; a float header never needs one, and we accept only ASCII. */
    b = npy_image(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), '\xc3\xa9': 1}",
                  k_f32_2x3, sizeof k_f32_2x3);
    expect_format("v3.0 non-ASCII", &b, "unexpected byte 0xc3");
    blob_free(&b);
}

/* ---- Hand-crafted files that must be refused ------------------------------------------------- */

static const char *const k_good_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";

static void test_reject_magic_and_version(void **state) {
    (void)state;
    const float data[2] = {1.0f, 2.0f};
    blob b = npy_image(1, k_good_dict, data, sizeof data);
    unsigned char saved;

    saved = b.p[0];
    b.p[0] = 0x92;
    expect_format("bad magic byte 0", &b, "bad magic");
    b.p[0] = saved;
    saved = b.p[5];
    b.p[5] = 'Z';
    expect_format("bad magic NUMPZ", &b, "bad magic");
    b.p[5] = saved;

    static const unsigned char versions[][2] = {{1, 1}, {0, 0}, {4, 0}, {2, 1}, {255, 0}};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        b.p[6] = versions[i][0];
        b.p[7] = versions[i][1];
        char label[64];
        snprintf(label, sizeof label, "version %u.%u", versions[i][0], versions[i][1]);
        expect_format(label, &b, "unsupported .npy format version");
    }
    b.p[6] = 1;
    b.p[7] = 0;

    /* Too short for the magic, the version, the length field. */
    static const size_t shorts[] = {0, 3, 6, 7, 8, 9};
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++) {
        blob s = {b.p, shorts[i]};
        char label[64];
        snprintf(label, sizeof label, "%zu-byte file", shorts[i]);
        expect_format(label, &s, "truncated .npy file");
    }
    blob_free(&b);

    /* "NUMPY" without the 0x93 byte, e.g. a text file. */
    blob text = {(unsigned char *)"hello, world\n", 13};
    expect_format("text file", &text, "bad magic");
}

static void test_reject_header_length(void **state) {
    (void)state;
    const float data[2] = {1.0f, 2.0f};
    blob b = npy_image(1, k_good_dict, data, sizeof data);

    /* The length runs past the end of the file. */
    size_t total = b.len - 10 + 1;
    b.p[8] = (unsigned char)total;
    b.p[9] = (unsigned char)(total >> 8);
    expect_format("header past end", &b, "runs past the end of the file");
    b.p[8] = 0xff;
    b.p[9] = 0xff;
    expect_format("header 65535", &b, "runs past the end of the file");
    blob_free(&b);

    /* A 4-byte length far beyond any sane header is refused before anything is read. */
    b = npy_image(2, k_good_dict, data, sizeof data);
    static const uint32_t huge[] = {0xffffffffu, 0x80000000u, (1u << 20) + 1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        for (int k = 0; k < 4; k++) b.p[8 + k] = (unsigned char)(huge[i] >> (8 * k));
        expect_format("huge v2 header", &b, "exceeds the limit");
    }
    /* Zero-length header. */
    memset(b.p + 8, 0, 4);
    expect_format("empty header", &b, "expected '{'");
    blob_free(&b);
}

static void test_reject_fortran_order(void **state) {
    (void)state;
    expect_dict_format("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", "Fortran");
    expect_dict_format("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }",
                       "expected True or False");
    expect_dict_format("{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2,), }",
                       "expected True or False");
    expect_dict_format("{'descr': '<f4', 'fortran_order': 'False', 'shape': (2,), }",
                       "expected True or False");
}

static void test_reject_dtypes(void **state) {
    (void)state;
    static const char *const descrs[] = {
        "<f2",     ">f4",  ">f8", "|u1",
        "<i4",     "<i8",  "|O",  "O",
        "<c8",     "<f16", "=f4", "|f4",
        "float32", "<f4 ", "",    "<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4<f4",
    };
    for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++) {
        char dict[256];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (2,), }",
                 descrs[i]);
        expect_dict_format(dict, "unsupported dtype");
    }
    expect_dict_format("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }",
                       "structured");
    expect_dict_format("{'descr': ('<f4', (2,)), 'fortran_order': False, 'shape': (1,), }",
                       "structured");
    expect_dict_format("{'descr': 4, 'fortran_order': False, 'shape': (2,), }",
                       "expected a string for 'descr'");
}

static void test_reject_keys(void **state) {
    (void)state;
    expect_dict_format("{'fortran_order': False, 'shape': (2,), }", "lacks the 'descr' key");
    expect_dict_format("{'descr': '<f4', 'shape': (2,), }", "lacks the 'fortran_order' key");
    expect_dict_format("{'descr': '<f4', 'fortran_order': False, }", "lacks the 'shape' key");
    expect_dict_format("{}", "lacks the 'descr' key");
    expect_dict_format("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",
                       "unexpected key 'x'");
    expect_dict_format("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,)}",
                       "repeated key 'shape'");
    expect_dict_format("{'Descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
                       "unexpected key 'Descr'");
    expect_dict_format("{descr: '<f4', 'fortran_order': False, 'shape': (2,), }",
                       "expected a quoted string");
}

static void test_reject_shapes(void **state) {
    (void)state;
    static const struct {
        const char *shape, *needle;
    } cases[] = {
        {"(-1,)", "negative dimension -1"},
        {"(2, -3)", "negative dimension -3"},
        {"(1, 1, 1, 1, 1, 1, 1, 1, 2)", "more than 8 dimensions"},
        {"(2)", "not a tuple"},
        {"[2]", "expected a tuple"},
        {"2", "expected a tuple"},
        {"(2 1)", "expected ',' or ')'"},
        {"(,)", "expected an integer dimension"},
        {"(2,,)", "expected an integer dimension"},
        {"(2.0,)", "expected ',' or ')'"},
        {"(True,)", "expected an integer dimension"},
        {"(0x2,)", "expected ',' or ')' after a dimension"},
        {"(012,)", "leading zero"}, /* a syntax error in Python 3, octal in Python 2 */
        {"(2, 00000000000000000000000001)", "leading zero"},
        {"(2", "expected an integer dimension"}, /* "(2, }" */
        {"(9223372036854775808,)", "does not fit in int64"},
        {"(123456789012345678901234567890,)", "does not fit in int64"},
        /* count * 4 bytes overflows size_t (64-bit): 2^62 * 4 = 2^64 */
        {"(4611686018427387904,)", "overflows size_t"},
        {"(4294967296, 4294967296)", "overflows size_t"},
        {"(65536, 65536, 65536, 65536)", "overflows size_t"},
        /* like NumPy, the non-zero dimensions must fit even when another is zero */
        {"(0, 4611686018427387904)", "overflows size_t"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dict[256];
        snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                 cases[i].shape);
        expect_dict_format(dict, cases[i].needle);
    }
    /* 2^61 elements of 8 bytes overflow where 2^61 elements of 4 bytes would not. */
    expect_dict_format(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }",
        "overflows size_t");
#if SIZE_MAX > UINT32_MAX /* these byte sizes need a 64-bit size_t */
    expect_dict_format(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2305843009213693952,), }",
        "truncated data");
#endif
}

static void test_reject_syntax(void **state) {
    (void)state;
    static const struct {
        const char *dict, *needle;
    } cases[] = {
        {"['descr', '<f4']", "expected '{'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", "only padding"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }}", "only padding"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,) 'x': 1}", "',' or '}'"},
        {"{'descr' '<f4', 'fortran_order': False, 'shape': (2,), }", "expected ':'"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", "unsupported dtype '<f4, '"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", "header ends early"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,),, }", "expected a quoted string"},
        {"{, 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "expected a quoted string"},
        {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,), }", "escape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x", "unterminated string"},
        {"{'descr': '<f4',\x01 'fortran_order': False, 'shape': (2,), }", "unexpected byte 0x01"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\x80", "unexpected byte 0x80"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_dict_format(cases[i].dict, cases[i].needle);
    }
    /* A NUL inside the header. */
    const float data[2] = {1.0f, 2.0f};
    blob b = npy_image(1, k_good_dict, data, sizeof data);
    b.p[12] = '\0';
    expect_format("NUL in header", &b, "unexpected byte 0x00");
    blob_free(&b);
}

static void test_reject_data_length(void **state) {
    (void)state;
    blob b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", k_f64_4,
                       sizeof k_f64_4);
    blob s = {b.p, b.len - 1};
    expect_format("one byte short", &s,
                  "truncated data: shape (4,) of <f8 needs 32 bytes, only 31");
    s.len = image_data_offset(&b);
    expect_format("no data", &s, "only 0 follow");
    blob_free(&b);

    /* One trailing byte. */
    double data5[5] = {0};
    memcpy(data5, k_f64_4, sizeof k_f64_4);
    b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", data5, 33);
    expect_format("trailing byte", &b, "1 trailing bytes");
    blob_free(&b);

    /* A scalar needs exactly one element; a zero-size array none. */
    b = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", NULL, 0);
    expect_format("scalar without data", &b, "needs 4 bytes, only 0");
    blob_free(&b);
    b = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }", k_f32_2x3, 4);
    expect_format("empty with data", &b, "4 trailing bytes");
    blob_free(&b);
}

/* ---- The file reader ------------------------------------------------------------------------- */

static void expect_file_status(const char *path, bnk_status want, const char *needle) {
    bnk_npy a;
    memset(&a, 0xAB, sizeof a);
    bnk_status st = bnk_npy_read(path, &a);
    if (st != want) {
        fail_msg("%s: expected %s, got %s (%s)", path, bnk_status_str(want), bnk_status_str(st),
                 bnk_errmsg());
    }
    assert_zeroed(&a);
    assert_msg_has(path);
    assert_msg_has(needle);
}

static void test_read_file_errors(void **state) {
    (void)state;
    char path[512];
    make_path(path, sizeof path, "missing.npy");
    expect_file_status(path, BNK_ERR_IO, strerror(ENOENT));
    expect_file_status(g_dir, BNK_ERR_IO, "cannot read"); /* a directory */

    blob b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", k_f64_4,
                       sizeof k_f64_4);
    make_path(path, sizeof path, "truncated.npy");
    blob s = {b.p, b.len - 8};
    write_blob(path, &s);
    expect_file_status(path, BNK_ERR_FORMAT, "truncated data");
    s.len = 40; /* inside the header */
    write_blob(path, &s);
    expect_file_status(path, BNK_ERR_FORMAT, "runs past the end of the file");
    s.len = 9;
    write_blob(path, &s);
    expect_file_status(path, BNK_ERR_FORMAT, "truncated .npy file");
    s.len = 0;
    write_blob(path, &s);
    expect_file_status(path, BNK_ERR_FORMAT, "truncated .npy file: 0 bytes");
    unlink(path);
    blob_free(&b);

    double data5[5] = {0};
    b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", data5,
                  sizeof data5);
    make_path(path, sizeof path, "trailing.npy");
    write_blob(path, &b);
    expect_file_status(path, BNK_ERR_FORMAT, "8 trailing bytes");
    unlink(path);
    blob_free(&b);

#if SIZE_MAX > UINT32_MAX /* these byte sizes need a 64-bit size_t */
    /* A header claiming 2^50 bytes of data is refused from the file size, without allocating. */
    b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (131072, 1048576, 1024), }",
                  NULL, 0);
    make_path(path, sizeof path, "huge.npy");
    write_blob(path, &b);
    expect_file_status(path, BNK_ERR_FORMAT, "truncated data");
    unlink(path);
    blob_free(&b);
#endif
}

/* Streams an image through a FIFO, so the reader cannot learn the size from fstat. */
static bnk_status read_through_fifo(const blob *b, bnk_npy *a) {
    char path[512];
    make_path(path, sizeof path, "fifo.npy");
    assert_int_equal(mkfifo(path, 0600), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN); /* the reader may stop early */
        FILE *f = fopen(path, "wb");
        if (f == NULL) _exit(1);
        fwrite(b->p, 1, b->len, f);
        fclose(f);
        _exit(0);
    }
    bnk_status st = bnk_npy_read(path, a);
    int wstatus;
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    unlink(path);
    return st;
}

static void test_read_fifo(void **state) {
    (void)state;
    bnk_npy a;
    blob b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", k_f64_4,
                       sizeof k_f64_4);
    assert_int_equal(read_through_fifo(&b, &a), BNK_OK);
    assert_int_equal(a.count, 4);
    assert_memory_equal(a.data, k_f64_4, sizeof k_f64_4);
    bnk_npy_free(&a);

    blob s = {b.p, b.len - 1};
    assert_int_equal(read_through_fifo(&s, &a), BNK_ERR_FORMAT);
    assert_zeroed(&a);
    assert_msg_has("truncated data");
    blob_free(&b);

    double data5[5] = {0};
    b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", data5,
                  sizeof data5);
    assert_int_equal(read_through_fifo(&b, &a), BNK_ERR_FORMAT);
    assert_zeroed(&a);
    assert_msg_has("trailing bytes");
    blob_free(&b);

#if SIZE_MAX > UINT32_MAX /* these byte sizes need a 64-bit size_t */
    /* 2^40 bytes promised, a few delivered: the reader must not allocate them up front. */
    b = npy_image(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1024, 1024, 262144), }",
                  k_f32_2x3, sizeof k_f32_2x3);
    assert_int_equal(read_through_fifo(&b, &a), BNK_ERR_FORMAT);
    assert_zeroed(&a);
    assert_msg_has("truncated data");
    blob_free(&b);
#endif
}

/* ---- The writer's failures ------------------------------------------------------------------- */

static void test_write_errors(void **state) {
    (void)state;
    const int64_t shape[1] = {6};
    char path[512];

    /* Into a directory that does not exist. */
    make_path(path, sizeof path, "no_such_dir/x.npy");
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 1, shape, k_f32_2x3), BNK_ERR_IO);
    assert_msg_has(path);
    assert_msg_has(strerror(ENOENT));
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    assert_int_equal(dir_entries(), 0);

    /* Onto an existing directory: the rename fails and the temporary file is removed. */
    make_path(path, sizeof path, "a_dir.npy");
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 1, shape, k_f32_2x3), BNK_ERR_IO);
    assert_msg_has(path);
    assert_int_equal(dir_entries(), 1); /* only the directory itself */
    assert_int_equal(rmdir(path), 0);

    /* Argument errors: nothing is created. */
    make_path(path, sizeof path, "args.npy");
    const int64_t neg[2] = {2, -1}, big[2] = {INT64_MAX, 2}, over[2] = {(int64_t)1 << 62, 4};
    assert_int_equal(bnk_npy_write(NULL, BNK_DTYPE_F32, 1, shape, k_f32_2x3), BNK_ERR_NULL);
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 1, NULL, k_f32_2x3), BNK_ERR_NULL);
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 1, shape, NULL), BNK_ERR_NULL);
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, -1, shape, k_f32_2x3), BNK_ERR_SIZE);
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, BNK_NPY_MAX_DIMS + 1, shape, k_f32_2x3),
                     BNK_ERR_SIZE);
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 2, neg, k_f32_2x3), BNK_ERR_SIZE);
    assert_msg_has("shape[1] is negative");
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 2, big, k_f32_2x3), BNK_ERR_OVERFLOW);
    assert_int_equal(bnk_npy_write(path, BNK_DTYPE_F32, 2, over, k_f32_2x3), BNK_ERR_OVERFLOW);
    assert_int_equal(bnk_npy_write(path, (bnk_dtype)7, 1, shape, k_f32_2x3), BNK_ERR_UNSUPPORTED);
    assert_int_equal(dir_entries(), 0);
}

/* ---- Conversion, release, NULL arguments ----------------------------------------------------- */

static void test_to_f32(void **state) {
    (void)state;
    /* Values that round, overflow to infinity, underflow to zero, keep their sign or NaN. */
    const double src[9] = {0.1, -2.5, 1e300, -1e300, 1e-310, -0.0, NAN, (double)FLT_MAX, 1.0 / 3};
    const int64_t shape[2] = {3, 3};
    blob b = npy_image(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), }", src,
                       sizeof src);
    bnk_npy a;
    assert_int_equal(bnk_npy_read_mem(b.p, b.len, &a), BNK_OK);
    blob_free(&b);
    assert_int_equal(bnk_npy_to_f32(&a), BNK_OK);
    assert_int_equal(a.dtype, BNK_DTYPE_F32);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], shape[0]);
    assert_int_equal(a.count, 9);
    const float *f = a.data;
    /* Exact: the conversion is C's (float) cast, i.e. IEEE round to nearest. */
    for (int i = 0; i < 9; i++) {
        float want = (float)src[i];
        if (isnan(want) ? !isnan(f[i]) : memcmp(&f[i], &want, sizeof want) != 0) {
            fail_msg("index %d: expected %.9g, got %.9g", i, want, f[i]);
        }
    }
    assert_true(isinf(f[2]) && f[2] > 0);
    assert_true(isinf(f[3]) && f[3] < 0);
    assert_true(f[4] == 0.0f);
    assert_true(signbit(f[5]));

    /* Already float32: nothing changes, not even the pointer. */
    void *before = a.data;
    assert_int_equal(bnk_npy_to_f32(&a), BNK_OK);
    assert_ptr_equal(a.data, before);
    bnk_npy_free(&a);

    assert_int_equal(bnk_npy_to_f32(NULL), BNK_ERR_NULL);
    bnk_npy bad;
    memset(&bad, 0, sizeof bad);
    bad.dtype = BNK_DTYPE_F64;
    bad.count = 3;
    assert_int_equal(bnk_npy_to_f32(&bad), BNK_ERR_NULL);
    bad.dtype = (bnk_dtype)9;
    assert_int_equal(bnk_npy_to_f32(&bad), BNK_ERR_UNSUPPORTED);
}

static void test_free_and_null_args(void **state) {
    (void)state;
    bnk_npy_free(NULL);
    bnk_npy a;
    memset(&a, 0, sizeof a);
    bnk_npy_free(&a); /* zeroed struct: harmless */
    a.data = malloc(16);
    a.count = 4;
    a.ndim = 1;
    a.shape[0] = 4;
    bnk_npy_free(&a);
    assert_zeroed(&a);

    memset(&a, 0xAB, sizeof a);
    assert_int_equal(bnk_npy_read(NULL, &a), BNK_ERR_NULL);
    assert_zeroed(&a);
    assert_int_equal(bnk_npy_read(FIXTURE("f32_2x3.npy"), NULL), BNK_ERR_NULL);
    memset(&a, 0xAB, sizeof a);
    assert_int_equal(bnk_npy_read_mem(NULL, 10, &a), BNK_ERR_NULL);
    assert_zeroed(&a);
    assert_int_equal(bnk_npy_read_mem("x", 1, NULL), BNK_ERR_NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_roundtrip_max_dims_and_big_dims),
        cmocka_unit_test(test_roundtrip_empty),
        cmocka_unit_test(test_write_overwrites_existing),
        cmocka_unit_test(test_numpy_fixtures),
        cmocka_unit_test(test_write_matches_numpy),
        cmocka_unit_test(test_handcrafted_variants),
        cmocka_unit_test(test_version_2_and_3),
        cmocka_unit_test(test_reject_magic_and_version),
        cmocka_unit_test(test_reject_header_length),
        cmocka_unit_test(test_reject_fortran_order),
        cmocka_unit_test(test_reject_dtypes),
        cmocka_unit_test(test_reject_keys),
        cmocka_unit_test(test_reject_shapes),
        cmocka_unit_test(test_reject_syntax),
        cmocka_unit_test(test_reject_data_length),
        cmocka_unit_test(test_read_file_errors),
        cmocka_unit_test(test_read_fifo),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_to_f32),
        cmocka_unit_test(test_free_and_null_args),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
