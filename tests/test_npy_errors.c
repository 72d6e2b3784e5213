/* Tests for the .npy reader and writer (include/bnkit/npy.h) on hostile inputs and failures:
 * hand-crafted files that must be refused, the file reader's errors (missing files, FIFOs) and
 * the writer's. Helpers in npy_util.h; valid data in test_npy.c. */
#include "npy_util.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
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
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
