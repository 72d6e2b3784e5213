/* Tests for the .npy reader and writer (include/bnkit/npy.h) on valid data: round trips, files
 * NumPy wrote and files it would read, hand-crafted variants that must be accepted, conversion
 * and release. Helpers in npy_util.h; refused inputs and failures in test_npy_errors.c. */
#include "npy_util.h"

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
        cmocka_unit_test(test_to_f32),
        cmocka_unit_test(test_free_and_null_args),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
