/* .npy reader and writer: C-order, little-endian float32/float64 arrays.
 *
 * File layout (NumPy's format specification, versions 1.0 to 3.0):
 *
 *     offset 0   "\x93NUMPY"                magic, 6 bytes
 *     offset 6   major, minor               1 byte each: 1.0, 2.0 or 3.0
 *     offset 8   header length              uint16 LE (1.0) or uint32 LE (2.0, 3.0)
 *     offset 10/12  header                  a Python dict literal, e.g.
 *                                           {'descr': '<f4', 'fortran_order': False, 'shape': (2,
 * 3), } padded with spaces and a final '\n' so that the data starts on a 64-byte boundary (16 in
 * old files) then       prod(shape) elements in C order
 *
 * 2.0 only widens the length field; 3.0 also allows a UTF-8 header, which we accept when it is
 * plain ASCII (the only text a float32/float64 header ever needs). The header is parsed by hand
 * with a small recursive-descent scanner; anything that is not a well-formed dict with exactly
 * the three keys is refused.
 *
 * One parser serves both readers: npy_parse_prefix() checks magic, version and header length,
 * npy_parse_header() the dict, npy_check_data_len() the byte count. bnk_npy_read() reads the
 * prefix and header first and checks the data size against the file size before allocating, so
 * a lying header cannot make it allocate more than the file holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bnkit/npy.h"
#include "core/internal.h"

_Static_assert(sizeof(float) == 4 && FLT_MANT_DIG == 24, "float must be IEEE-754 binary32");
_Static_assert(sizeof(double) == 8 && DBL_MANT_DIG == 53, "double must be IEEE-754 binary64");

#define NPY_MAGIC         "\x93NUMPY"
#define NPY_MAGIC_LEN     6
#define NPY_ALIGN         64 /* NumPy >= 1.9 pads the header to this boundary */
#define NPY_GROWTH_DIGITS 21 /* NumPy leaves room for shape[0] to grow to this many digits */
#define NPY_MAX_HEADER    (1u << 20) /* a float header needs ~300 bytes; 1 MiB allows any padding */
#define NPY_MAX_V1_HEADER 65535u
#define NPY_SHAPE_STR     (BNK_NPY_MAX_DIMS * 22 + 4) /* "(d, d, ...)" with 20-char dims */
#define NPY_READ_CHUNK    ((size_t)1 << 24) /* growth step when the file size is unknown */

/* What the header says, once validated. */
typedef struct npy_info {
    bnk_dtype dtype;
    int ndim;
    int64_t shape[BNK_NPY_MAX_DIMS];
    size_t count;  /* prod(shape) */
    size_t nbytes; /* count * itemsize */
} npy_info;

/* ---- Small helpers --------------------------------------------------------------------------- */

/* The data are copied verbatim, so the host must store numbers little-endian like the files. */
static bnk_status npy_check_host(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    if (first != 1) {
        return bnk__fail(BNK_ERR_UNSUPPORTED, ".npy I/O needs a little-endian host");
    }
    return BNK_OK;
}

static size_t npy_itemsize(bnk_dtype dtype) {
    return dtype == BNK_DTYPE_F64 ? 8 : 4;
}

static const char *npy_descr(bnk_dtype dtype) {
    return dtype == BNK_DTYPE_F64 ? "<f8" : "<f4";
}

/* Formats a shape the way Python prints a tuple: "()", "(3,)", "(2, 3)". */
static void npy_format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && n < size; i++) {
        n += (size_t)snprintf(buf + n, size - n, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    }
    if (n < size) snprintf(buf + n, size - n, ndim == 1 ? ",)" : ")");
}

/* Element count and byte size of a shape of non-negative dimensions. Like NumPy, the byte size
 * of the non-zero dimensions must fit even when another dimension is zero. Returns 0 on
 * overflow of size_t. */
static int npy_shape_size(int ndim, const int64_t *shape, size_t itemsize, size_t *count,
                          size_t *nbytes) {
    size_t bytes = itemsize;
    int empty = 0;
    for (int i = 0; i < ndim; i++) {
        uint64_t d = (uint64_t)shape[i];
        if (d == 0) {
            empty = 1;
            continue;
        }
        if (d > SIZE_MAX || bytes > SIZE_MAX / (size_t)d) return 0;
        bytes *= (size_t)d;
    }
    *nbytes = empty ? 0 : bytes;
    *count = *nbytes / itemsize;
    return 1;
}

/* ---- Prefix: magic, version, header length --------------------------------------------------- */

/* Bytes before the header text for a format major version. */
static size_t npy_prefix_len(unsigned major) {
    return major == 1 ? 10 : 12;
}

/* Checks the first len bytes of a file (len may be short: the error then says so). On success
 * *major is the format version and *hlen the header length that follows the prefix. */
static bnk_status npy_parse_prefix(const unsigned char *p, size_t len, unsigned *major,
                                   uint32_t *hlen) {
    size_t m = len < NPY_MAGIC_LEN ? len : NPY_MAGIC_LEN;
    if (memcmp(p, NPY_MAGIC, m) != 0) {
        return bnk__fail(BNK_ERR_FORMAT, "not a .npy file: bad magic (expected \\x93NUMPY)");
    }
    if (len < 8) {
        return bnk__fail(BNK_ERR_FORMAT, "truncated .npy file: %zu bytes, no room for the version",
                         len);
    }
    if (p[7] != 0 || p[6] < 1 || p[6] > 3) {
        return bnk__fail(BNK_ERR_FORMAT,
                         "unsupported .npy format version %u.%u (bnkit reads 1.0, 2.0 and 3.0)",
                         p[6], p[7]);
    }
    *major = p[6];
    size_t plen = npy_prefix_len(*major);
    if (len < plen) {
        return bnk__fail(BNK_ERR_FORMAT,
                         "truncated .npy file: %zu bytes, no room for the header length", len);
    }
    uint32_t h = (uint32_t)p[8] | (uint32_t)p[9] << 8;
    if (plen == 12) h |= (uint32_t)p[10] << 16 | (uint32_t)p[11] << 24;
    if (h > NPY_MAX_HEADER) {
        return bnk__fail(BNK_ERR_FORMAT, "header length %" PRIu32 " exceeds the limit of %u bytes",
                         h, NPY_MAX_HEADER);
    }
    *hlen = h;
    return BNK_OK;
}

static bnk_status npy_fail_header_past_end(uint32_t hlen, uint64_t have) {
    return bnk__fail(BNK_ERR_FORMAT,
                     "header length %" PRIu32 " runs past the end of the file (%" PRIu64
                     " bytes follow the length field)",
                     hlen, have);
}

/* ---- Header dict ----------------------------------------------------------------------------- */

typedef struct npy_scan {
    const char *start, *p, *end;
    unsigned major;
} npy_scan;

enum { NPY_KEY_DESCR = 1, NPY_KEY_FORTRAN = 2, NPY_KEY_SHAPE = 4 };

static size_t npy_offset(const npy_scan *s) {
    return (size_t)(s->p - s->start);
}

/* Whitespace Python allows between tokens inside brackets. */
static void npy_skip_ws(npy_scan *s) {
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r' || *s->p == '\f')) {
        s->p++;
    }
}

static int npy_peek(const npy_scan *s) {
    return s->p < s->end ? (unsigned char)*s->p : -1;
}

static int npy_is_ident_char(int c) {
    return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bnk_status npy_expected(const npy_scan *s, const char *what) {
    if (s->p >= s->end) {
        return bnk__fail(BNK_ERR_FORMAT, "header ends early: expected %s", what);
    }
    return bnk__fail(BNK_ERR_FORMAT, "header: expected %s at offset %zu, found '%c'", what,
                     npy_offset(s), *s->p);
}

/* A quoted string without escapes. Copies at most size-1 characters to buf; *len is the full
 * length, so a caller comparing it against a known word sees an overlong string as different. */
static bnk_status npy_scan_string(npy_scan *s, char *buf, size_t size, size_t *len) {
    int q = npy_peek(s);
    if (q != '\'' && q != '"') return npy_expected(s, "a quoted string");
    const char *begin = ++s->p;
    while (s->p < s->end && *s->p != q && *s->p != '\n') {
        if (*s->p == '\\') {
            return bnk__fail(BNK_ERR_FORMAT, "header: unsupported escape in a string at offset %zu",
                             npy_offset(s));
        }
        s->p++;
    }
    if (s->p >= s->end || *s->p != q) {
        return bnk__fail(BNK_ERR_FORMAT, "header: unterminated string at offset %zu",
                         (size_t)(begin - 1 - s->start));
    }
    *len = (size_t)(s->p - begin);
    size_t n = *len < size - 1 ? *len : size - 1;
    memcpy(buf, begin, n);
    buf[n] = '\0';
    s->p++;
    return BNK_OK;
}

static int npy_word_is(const char *buf, size_t len, const char *word) {
    return len == strlen(word) && memcmp(buf, word, len) == 0;
}

static bnk_status npy_scan_descr(npy_scan *s, bnk_dtype *dtype) {
    int c = npy_peek(s);
    if (c == '[' || c == '(') {
        return bnk__fail(BNK_ERR_FORMAT, "unsupported dtype: structured or subarray 'descr' "
                                         "(bnkit reads only '<f4' and '<f8')");
    }
    if (c != '\'' && c != '"') return npy_expected(s, "a string for 'descr'");
    char buf[32];
    size_t len;
    bnk_status st = npy_scan_string(s, buf, sizeof buf, &len);
    if (st != BNK_OK) return st;
    if (npy_word_is(buf, len, "<f4")) {
        *dtype = BNK_DTYPE_F32;
    } else if (npy_word_is(buf, len, "<f8")) {
        *dtype = BNK_DTYPE_F64;
    } else {
        return bnk__fail(BNK_ERR_FORMAT,
                         "unsupported dtype '%s%s' (bnkit reads only '<f4' and '<f8')", buf,
                         len >= sizeof buf ? "..." : "");
    }
    return BNK_OK;
}

static bnk_status npy_scan_bool(npy_scan *s, int *value) {
    size_t rest = (size_t)(s->end - s->p);
    size_t n = 0;
    if (rest >= 4 && memcmp(s->p, "True", 4) == 0) {
        n = 4;
        *value = 1;
    } else if (rest >= 5 && memcmp(s->p, "False", 5) == 0) {
        n = 5;
        *value = 0;
    }
    if (n == 0 || (n < rest && npy_is_ident_char((unsigned char)s->p[n]))) {
        return npy_expected(s, "True or False for 'fortran_order'");
    }
    s->p += n;
    return BNK_OK;
}

/* One dimension: a Python decimal integer (no leading zeros), optionally negative (refused with
 * a precise message), with the 'L' suffix that Python 2 wrote in version 1.0 and 2.0 files. */
static bnk_status npy_scan_dim(npy_scan *s, int64_t *dim) {
    const char *begin = s->p;
    int negative = 0;
    if (npy_peek(s) == '-') {
        negative = 1;
        s->p++;
        npy_skip_ws(s);
    }
    int c = npy_peek(s);
    if (c < '0' || c > '9') return npy_expected(s, "an integer dimension in 'shape'");
    int leading_zero = c == '0';
    uint64_t v = 0;
    int too_big = 0;
    while ((c = npy_peek(s)) >= '0' && c <= '9') {
        unsigned digit = (unsigned)(c - '0');
        if (v > ((uint64_t)INT64_MAX - digit) / 10) too_big = 1;
        if (!too_big) v = v * 10 + digit;
        s->p++;
    }
    if (s->major <= 2 && (npy_peek(s) == 'L' || npy_peek(s) == 'l')) s->p++;
    if (npy_is_ident_char(npy_peek(s))) return npy_expected(s, "',' or ')' after a dimension");
    int shown = s->p - begin > 40 ? 40 : (int)(s->p - begin);
    if (leading_zero && (v != 0 || too_big)) {
        /* Python 3 refuses "012" (Python 2 read it as octal), and so does NumPy */
        return bnk__fail(BNK_ERR_FORMAT, "dimension %.*s in 'shape' has a leading zero", shown,
                         begin);
    }
    if (too_big) {
        return bnk__fail(BNK_ERR_FORMAT, "dimension %.*s%s in 'shape' does not fit in int64", shown,
                         begin, shown < s->p - begin ? "..." : "");
    }
    if (negative && v != 0) {
        return bnk__fail(BNK_ERR_FORMAT, "negative dimension %.*s in 'shape'", shown, begin);
    }
    *dim = (int64_t)v;
    return BNK_OK;
}

/* A tuple of dimensions: "()", "(3,)", "(2, 3)", "(2, 3,)". "(3)" is an int in Python, not a
 * tuple, and is refused like NumPy does. */
static bnk_status npy_scan_shape(npy_scan *s, int *ndim, int64_t *shape) {
    if (npy_peek(s) != '(') return npy_expected(s, "a tuple for 'shape'");
    s->p++;
    npy_skip_ws(s);
    *ndim = 0;
    if (npy_peek(s) == ')') {
        s->p++;
        return BNK_OK;
    }
    for (;;) {
        int64_t dim = 0;
        bnk_status st = npy_scan_dim(s, &dim);
        if (st != BNK_OK) return st;
        if (*ndim == BNK_NPY_MAX_DIMS) {
            return bnk__fail(BNK_ERR_FORMAT, "'shape' has more than %d dimensions",
                             BNK_NPY_MAX_DIMS);
        }
        shape[(*ndim)++] = dim;
        npy_skip_ws(s);
        if (npy_peek(s) == ',') {
            s->p++;
            npy_skip_ws(s);
            if (npy_peek(s) == ')') break;
        } else if (npy_peek(s) == ')') {
            if (*ndim == 1) {
                return bnk__fail(BNK_ERR_FORMAT,
                                 "'shape' (%" PRId64 ") is not a tuple: a "
                                 "one-dimension shape needs a trailing comma",
                                 shape[0]);
            }
            break;
        } else {
            return npy_expected(s, "',' or ')' in 'shape'");
        }
    }
    s->p++;
    return BNK_OK;
}

/* Parses the header text (hlen bytes) into *info, including the element count and byte size. */
static bnk_status npy_parse_header(const char *text, size_t hlen, unsigned major, npy_info *info) {
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x80 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f')) {
            return bnk__fail(BNK_ERR_FORMAT, "header: unexpected byte 0x%02x at offset %zu", c, i);
        }
    }
    npy_scan s = {text, text, text + hlen, major};
    unsigned seen = 0;
    int fortran = 0;
    bnk_status st;

    memset(info, 0, sizeof *info);
    npy_skip_ws(&s);
    if (npy_peek(&s) != '{') return npy_expected(&s, "'{' opening the header dict");
    s.p++;
    for (;;) {
        npy_skip_ws(&s);
        if (npy_peek(&s) == '}') break;
        char key[32];
        size_t keylen;
        if ((st = npy_scan_string(&s, key, sizeof key, &keylen)) != BNK_OK) return st;
        unsigned which = npy_word_is(key, keylen, "descr")           ? NPY_KEY_DESCR
                         : npy_word_is(key, keylen, "fortran_order") ? NPY_KEY_FORTRAN
                         : npy_word_is(key, keylen, "shape")         ? NPY_KEY_SHAPE
                                                                     : 0;
        if (which == 0) {
            return bnk__fail(BNK_ERR_FORMAT, "header: unexpected key '%s%s'", key,
                             keylen >= sizeof key ? "..." : "");
        }
        if (seen & which) return bnk__fail(BNK_ERR_FORMAT, "header: repeated key '%s'", key);
        seen |= which;
        npy_skip_ws(&s);
        if (npy_peek(&s) != ':') return npy_expected(&s, "':' after a key");
        s.p++;
        npy_skip_ws(&s);
        if (which == NPY_KEY_DESCR) {
            st = npy_scan_descr(&s, &info->dtype);
        } else if (which == NPY_KEY_FORTRAN) {
            st = npy_scan_bool(&s, &fortran);
        } else {
            st = npy_scan_shape(&s, &info->ndim, info->shape);
        }
        if (st != BNK_OK) return st;
        npy_skip_ws(&s);
        if (npy_peek(&s) == ',') {
            s.p++;
        } else if (npy_peek(&s) != '}') {
            return npy_expected(&s, "',' or '}' in the header dict");
        }
    }
    s.p++;
    npy_skip_ws(&s); /* the padding: spaces and a final '\n' */
    if (s.p != s.end) return npy_expected(&s, "only padding after the header dict");

    static const char *const names[] = {"descr", "fortran_order", "shape"};
    for (unsigned k = 0; k < 3; k++) {
        if (!(seen & (1u << k))) {
            return bnk__fail(BNK_ERR_FORMAT, "header lacks the '%s' key", names[k]);
        }
    }
    if (fortran) {
        return bnk__fail(BNK_ERR_FORMAT, "Fortran-order arrays are not supported (save a C-order "
                                         "array, e.g. np.ascontiguousarray)");
    }
    if (!npy_shape_size(info->ndim, info->shape, npy_itemsize(info->dtype), &info->count,
                        &info->nbytes)) {
        char sh[NPY_SHAPE_STR];
        npy_format_shape(sh, sizeof sh, info->ndim, info->shape);
        return bnk__fail(BNK_ERR_FORMAT, "shape %s of %s: byte size overflows size_t", sh,
                         npy_descr(info->dtype));
    }
    return BNK_OK;
}

/* Checks that exactly info->nbytes of data follow the header. */
static bnk_status npy_check_data_len(const npy_info *info, uint64_t have) {
    if (have == info->nbytes) return BNK_OK;
    char sh[NPY_SHAPE_STR];
    npy_format_shape(sh, sizeof sh, info->ndim, info->shape);
    if (have < info->nbytes) {
        return bnk__fail(BNK_ERR_FORMAT,
                         "truncated data: shape %s of %s needs %zu bytes, only %" PRIu64
                         " follow the header",
                         sh, npy_descr(info->dtype), info->nbytes, have);
    }
    return bnk__fail(BNK_ERR_FORMAT,
                     "%" PRIu64 " trailing bytes after the data (shape %s of %s needs %zu bytes)",
                     have - info->nbytes, sh, npy_descr(info->dtype), info->nbytes);
}

static void npy_fill(bnk_npy *out, const npy_info *info, void *data) {
    out->dtype = info->dtype;
    out->ndim = info->ndim;
    memcpy(out->shape, info->shape, sizeof out->shape);
    out->count = info->count;
    out->data = data;
}

/* ---- Reading --------------------------------------------------------------------------------- */

bnk_status bnk_npy_read_mem(const void *buf, size_t len, bnk_npy *out) {
    if (out == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_npy_read_mem: out is NULL");
    memset(out, 0, sizeof *out);
    if (buf == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_npy_read_mem: buf is NULL");
    bnk_status st = npy_check_host();
    if (st != BNK_OK) return st;

    const unsigned char *p = buf;
    unsigned major;
    uint32_t hlen;
    if ((st = npy_parse_prefix(p, len, &major, &hlen)) != BNK_OK) return st;
    size_t plen = npy_prefix_len(major);
    if (hlen > len - plen) return npy_fail_header_past_end(hlen, len - plen);
    npy_info info;
    if ((st = npy_parse_header((const char *)p + plen, hlen, major, &info)) != BNK_OK) return st;
    size_t data_off = plen + hlen;
    if ((st = npy_check_data_len(&info, len - data_off)) != BNK_OK) return st;

    void *data = NULL;
    if (info.nbytes > 0) {
        data = malloc(info.nbytes);
        if (data == NULL) {
            return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %zu bytes of array data", info.nbytes);
        }
        memcpy(data, p + data_off, info.nbytes);
    }
    npy_fill(out, &info, data);
    return BNK_OK;
}

/* Reads n bytes of array data. When the file size is known (regular file, already checked
 * against n) the buffer is allocated at once; otherwise (pipe) it grows as bytes arrive, so a
 * lying header cannot make us allocate far more than the stream delivers. */
static bnk_status npy_read_data(FILE *f, const char *path, const npy_info *info, int size_known,
                                void **out) {
    size_t n = info->nbytes;
    size_t cap = size_known || n < NPY_READ_CHUNK ? n : NPY_READ_CHUNK;
    size_t got = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %zu bytes", cap);
    for (;;) {
        got += fread(buf + got, 1, cap - got, f);
        if (got == n) break;
        if (got < cap) {
            int err = errno;
            free(buf);
            if (ferror(f))
                return bnk__fail(BNK_ERR_IO, "cannot read '%s': %s", path, strerror(err));
            return npy_check_data_len(info, got);
        }
        size_t next = n - cap > cap ? 2 * cap : n;
        unsigned char *grown = realloc(buf, next);
        if (grown == NULL) {
            free(buf);
            return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %zu bytes", next);
        }
        buf = grown;
        cap = next;
    }
    *out = buf;
    return BNK_OK;
}

/* Reads exactly n bytes (fewer only at end of file) into buf; BNK_ERR_IO on a read error. */
static bnk_status npy_fread(FILE *f, const char *path, void *buf, size_t n, size_t *got) {
    *got = fread(buf, 1, n, f);
    if (*got < n && ferror(f)) {
        return bnk__fail(BNK_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
    }
    return BNK_OK;
}

/* The body of bnk_npy_read once the file is open. */
static bnk_status npy_read_file(FILE *f, const char *path, bnk_npy *out) {
    unsigned char prefix[12];
    size_t got, more;
    unsigned major;
    uint32_t hlen;
    bnk_status st;

    /* Magic and version first: they say how long the length field is. */
    if ((st = npy_fread(f, path, prefix, 8, &got)) != BNK_OK) return st;
    if (got == 8 && prefix[6] >= 1 && prefix[6] <= 3) {
        if ((st = npy_fread(f, path, prefix + 8, npy_prefix_len(prefix[6]) - 8, &more)) != BNK_OK)
            return st;
        got += more;
    }
    if ((st = npy_parse_prefix(prefix, got, &major, &hlen)) != BNK_OK) return st;
    size_t plen = npy_prefix_len(major);

    char *text = malloc(hlen ? hlen : 1);
    if (text == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %" PRIu32 " bytes", hlen);
    st = npy_fread(f, path, text, hlen, &got);
    if (st == BNK_OK && got < hlen) st = npy_fail_header_past_end(hlen, got);
    npy_info info;
    if (st == BNK_OK) st = npy_parse_header(text, hlen, major, &info);
    free(text);
    if (st != BNK_OK) return st;

    /* Regular file: compare the data size with the file size before allocating anything. */
    struct stat sb;
    int size_known = fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode);
    if (size_known) {
        uint64_t size = (uint64_t)sb.st_size, off = plen + hlen;
        if ((st = npy_check_data_len(&info, size > off ? size - off : 0)) != BNK_OK) return st;
    }

    void *data = NULL;
    if (info.nbytes > 0 && (st = npy_read_data(f, path, &info, size_known, &data)) != BNK_OK) {
        return st;
    }
    /* The file may have changed since fstat, or be a pipe: confirm it ends here. */
    if (fgetc(f) != EOF) {
        free(data);
        return bnk__fail(BNK_ERR_FORMAT, "trailing bytes after the %zu bytes of data", info.nbytes);
    }
    if (ferror(f)) {
        int err = errno;
        free(data);
        return bnk__fail(BNK_ERR_IO, "cannot read '%s': %s", path, strerror(err));
    }
    npy_fill(out, &info, data);
    return BNK_OK;
}

bnk_status bnk_npy_read(const char *path, bnk_npy *out) {
    if (out == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_npy_read: out is NULL");
    memset(out, 0, sizeof *out);
    if (path == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_npy_read: path is NULL");
    bnk_status st = npy_check_host();
    if (st != BNK_OK) return st;

    FILE *f = fopen(path, "rb");
    if (f == NULL) return bnk__fail(BNK_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    st = npy_read_file(f, path, out);
    fclose(f); /* read-only stream: nothing buffered can be lost */
    if (st == BNK_ERR_FORMAT) {
        /* Name the file in format errors; the parser's message does not know it. */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", bnk_errmsg());
        bnk__fail(st, "'%s': %s", path, msg);
    }
    if (st != BNK_OK) memset(out, 0, sizeof *out);
    return st;
}

/* ---- Conversion and release ------------------------------------------------------------------ */

bnk_status bnk_npy_to_f32(bnk_npy *arr) {
    if (arr == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_npy_to_f32: arr is NULL");
    if (arr->dtype == BNK_DTYPE_F32) return BNK_OK;
    if (arr->dtype != BNK_DTYPE_F64) {
        return bnk__fail(BNK_ERR_UNSUPPORTED, "bnk_npy_to_f32: unknown dtype %d", (int)arr->dtype);
    }
    if (arr->data == NULL && arr->count > 0) {
        return bnk__fail(BNK_ERR_NULL, "bnk_npy_to_f32: data is NULL with %zu elements",
                         arr->count);
    }
    /* In place, front to back: float i (bytes 4i..4i+3) never overlaps a double not yet read
     * (bytes 8j.. for j > i). memcpy keeps the type punning well defined. */
    unsigned char *bytes = arr->data;
    for (size_t i = 0; i < arr->count; i++) {
        double d;
        memcpy(&d, bytes + 8 * i, sizeof d);
        float f = (float)d; /* IEEE conversion: round to nearest, out of range -> +-inf */
        memcpy(bytes + 4 * i, &f, sizeof f);
    }
    if (arr->count > 0) {
        void *shrunk = realloc(arr->data, arr->count * sizeof(float));
        if (shrunk != NULL) arr->data = shrunk; /* on failure the larger block still works */
    }
    arr->dtype = BNK_DTYPE_F32;
    return BNK_OK;
}

void bnk_npy_free(bnk_npy *arr) {
    if (arr == NULL) return;
    free(arr->data);
    memset(arr, 0, sizeof *arr);
}

/* ---- Writing --------------------------------------------------------------------------------- */

/* Builds the prefix and padded header exactly as NumPy's np.save does: dict keys sorted, spare
 * spaces for shape[0] to grow to 21 digits, then spaces and '\n' so that prefix + header is a
 * multiple of 64 bytes (a full 64 bytes of padding when it already is, as NumPy does). Version
 * 1.0 unless the header exceeds 65535 bytes. Returns the total length. */
static size_t npy_build_header(char *buf, size_t size, bnk_dtype dtype, int ndim,
                               const int64_t *shape) {
    char sh[NPY_SHAPE_STR];
    npy_format_shape(sh, sizeof sh, ndim, shape);
    char dict[NPY_SHAPE_STR + 96];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     npy_descr(dtype), sh);
    size_t growth = 0;
    if (ndim > 0) {
        char first[24];
        int digits = snprintf(first, sizeof first, "%" PRId64, shape[0]);
        growth = digits < NPY_GROWTH_DIGITS ? (size_t)(NPY_GROWTH_DIGITS - digits) : 0;
    }
    size_t text = (size_t)n + growth + 1; /* + '\n' */
    size_t plen = 10;
    size_t pad = NPY_ALIGN - (plen + text) % NPY_ALIGN;
    if (text + pad > NPY_MAX_V1_HEADER) {
        plen = 12;
        pad = NPY_ALIGN - (plen + text) % NPY_ALIGN;
    }
    size_t hlen = text + pad, total = plen + hlen;
    if (total > size) return 0; /* cannot happen: size is computed from BNK_NPY_MAX_DIMS */

    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = plen == 10 ? 1 : 2;
    buf[7] = 0;
    for (size_t i = 0; i < plen - 8; i++) buf[8 + i] = (char)(hlen >> (8 * i) & 0xff);
    memcpy(buf + plen, dict, (size_t)n);
    memset(buf + plen + n, ' ', growth + pad);
    buf[total - 1] = '\n';
    return total;
}

/* What bnk_npy_write puts in the file: the header, then the data. */
typedef struct npy_file {
    const char *header;
    size_t hlen;
    const void *data;
    size_t nbytes;
} npy_file;

static int npy_write_parts(int fd, void *ctx) {
    const npy_file *f = ctx;
    int err = bnk__write_all(fd, f->header, f->hlen);
    if (err == 0 && f->nbytes > 0) err = bnk__write_all(fd, f->data, f->nbytes);
    return err;
}

bnk_status bnk_npy_write(const char *path, bnk_dtype dtype, int ndim, const int64_t *shape,
                         const void *data) {
    if (path == NULL) return bnk__fail(BNK_ERR_NULL, "bnk_npy_write: path is NULL");
    if (dtype != BNK_DTYPE_F32 && dtype != BNK_DTYPE_F64) {
        return bnk__fail(BNK_ERR_UNSUPPORTED, "bnk_npy_write: unknown dtype %d", (int)dtype);
    }
    if (ndim < 0 || ndim > BNK_NPY_MAX_DIMS) {
        return bnk__fail(BNK_ERR_SIZE, "bnk_npy_write: ndim must be in [0, %d], got %d",
                         BNK_NPY_MAX_DIMS, ndim);
    }
    if (shape == NULL && ndim > 0) return bnk__fail(BNK_ERR_NULL, "bnk_npy_write: shape is NULL");
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            return bnk__fail(BNK_ERR_SIZE, "bnk_npy_write: shape[%d] is negative (%" PRId64 ")", i,
                             shape[i]);
        }
    }
    size_t count, nbytes;
    if (!npy_shape_size(ndim, shape, npy_itemsize(dtype), &count, &nbytes)) {
        return bnk__fail(BNK_ERR_OVERFLOW, "bnk_npy_write: byte size of the shape overflows");
    }
    if (data == NULL && count > 0) return bnk__fail(BNK_ERR_NULL, "bnk_npy_write: data is NULL");
    bnk_status st = npy_check_host();
    if (st != BNK_OK) return st;

    char header[NPY_SHAPE_STR + 96 + NPY_GROWTH_DIGITS + NPY_ALIGN + 16];
    size_t hlen = npy_build_header(header, sizeof header, dtype, ndim, shape);
    if (hlen == 0) return bnk__fail(BNK_ERR_SIZE, "bnk_npy_write: header too long");

    npy_file f = {header, hlen, data, nbytes};
    return bnk__write_file_atomic(path, npy_write_parts, &f);
}
