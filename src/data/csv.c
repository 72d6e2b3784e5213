/* CSV data sets: one sample per line, the integer label first, then the numeric features.
 *
 *     label,f0,f1,f2          optional header: taken as one when its first field is not a number
 *     3,0.5,1e-3,7
 *     0,1,2,3
 *
 * Lines end in LF or CRLF; the last line may lack its newline, and blank lines (empty or spaces
 * only) may follow the data but not sit inside it. Fields are separated by commas, may carry
 * spaces or tabs around them, and are parsed with strtod (an end-pointer check refuses
 * "1.5abc"); quotes are not understood. Every row must have as many fields as the first one (and
 * as the header). Features must be finite; labels finite non-negative integers below
 * BNK__DATA_MAX_CLASSES. Every error names file:line. The text is parsed from memory
 * (bnk__csv_parse_mem, which the fuzzer drives); the file reader reads it whole first. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "data/data_internal.h"

#define CSV_FIELD_MAX 128 /* longest field we parse (a double needs < 30 characters) */
#define CSV_EXCERPT   24  /* characters of a bad field quoted in a message            */

/* Growing storage for parsed rows. */
typedef struct csv_rows {
    float *x;    /* [cap][features] */
    int32_t *y;  /* [cap]           */
    size_t rows; /* filled          */
    size_t cap;
} csv_rows;

static int csv_is_space(char ch) {
    return ch == ' ' || ch == '\t';
}

static int csv_is_blank(const char *s, const char *e) {
    while (s < e && csv_is_space(*s)) s++;
    return s == e;
}

/* Outcome of parsing one field. */
typedef enum csv_num { CSV_NUM_OK, CSV_NUM_EMPTY, CSV_NUM_BAD, CSV_NUM_LONG } csv_num;

/* Parses [s, e) as one number with optional surrounding spaces. The field is copied and
 * terminated first: the buffer need not be, and strtod must not run on into the next field. */
static csv_num csv_number(const char *s, const char *e, double *v) {
    while (s < e && csv_is_space(*s)) s++;
    while (e > s && csv_is_space(e[-1])) e--;
    if (s == e) return CSV_NUM_EMPTY;
    size_t n = (size_t)(e - s);
    if (n >= CSV_FIELD_MAX) return CSV_NUM_LONG;
    char tmp[CSV_FIELD_MAX];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    *v = strtod(tmp, &end);
    return end == tmp + n ? CSV_NUM_OK : CSV_NUM_BAD;
}

/* A printable excerpt of [s, e) for messages. */
static const char *csv_excerpt(char *buf, size_t size, const char *s, const char *e) {
    while (s < e && csv_is_space(*s)) s++;
    size_t n = 0;
    for (; s < e && n + 4 < size && n < CSV_EXCERPT; s++) {
        buf[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    }
    if (s < e && n + 4 <= size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* Reports a field that did not parse as a number. */
static bnk_status csv_fail_field(const char *name, int64_t line, size_t field, csv_num r,
                                 const char *s, const char *e) {
    char ex[CSV_EXCERPT + 8];
    const char *what = field == 0 ? "label" : "feature";
    if (r == CSV_NUM_EMPTY) {
        return bnk__fail(BNK_ERR_FORMAT, "%s:%" PRId64 ": field %zu (%s) is empty", name, line,
                         field + 1, what);
    }
    return bnk__fail(BNK_ERR_FORMAT, "%s:%" PRId64 ": field %zu (%s) is not a number: '%s'", name,
                     line, field + 1, what, csv_excerpt(ex, sizeof ex, s, e));
}

/* Makes room for one more row of `features` values. */
static bnk_status csv_grow(csv_rows *r, size_t features, const char *name) {
    if (r->rows < r->cap) return BNK_OK;
    size_t cap = r->cap ? 2 * r->cap : 256;
    uint64_t max_rows = BNK__DATA_MAX_BYTES / sizeof(float) / features;
    if (r->rows >= max_rows) {
        return bnk__fail(BNK_ERR_FORMAT,
                         "%s: more than %" PRIu64
                         " rows of %zu features exceed the limit of %" PRIu64 " bytes",
                         name, max_rows, features, BNK__DATA_MAX_BYTES);
    }
    if (cap > max_rows) cap = (size_t)max_rows;
    float *x = realloc(r->x, cap * features * sizeof(float));
    if (x == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %zu CSV rows", cap);
    r->x = x;
    int32_t *y = realloc(r->y, cap * sizeof(int32_t));
    if (y == NULL) return bnk__fail(BNK_ERR_NOMEM, "cannot allocate %zu CSV labels", cap);
    r->y = y;
    r->cap = cap;
    return BNK_OK;
}

/* Parses the data line [s, e) of exactly `fields` fields (already counted) into row r->rows. */
static bnk_status csv_row(csv_rows *r, const char *s, const char *e, size_t fields,
                          const char *name, int64_t line) {
    float *x = r->x + r->rows * (fields - 1);
    for (size_t k = 0; k < fields; k++) {
        const char *fe = memchr(s, ',', (size_t)(e - s));
        if (fe == NULL) fe = e;
        double v;
        csv_num res = csv_number(s, fe, &v);
        if (res != CSV_NUM_OK) return csv_fail_field(name, line, k, res, s, fe);
        if (k == 0) {
            const char *problem = bnk__label_problem(v);
            if (problem != NULL) {
                char ex[CSV_EXCERPT + 8];
                return bnk__fail(BNK_ERR_FORMAT, "%s:%" PRId64 ": label '%s' %s", name, line,
                                 csv_excerpt(ex, sizeof ex, s, fe), problem);
            }
            r->y[r->rows] = (int32_t)v;
        } else {
            float f = (float)v;
            if (!isfinite(f)) {
                char ex[CSV_EXCERPT + 8];
                return bnk__fail(BNK_ERR_FORMAT,
                                 "%s:%" PRId64 ": field %zu '%s' is %s (features must be finite)",
                                 name, line, k + 1, csv_excerpt(ex, sizeof ex, s, fe),
                                 isnan(f) ? "NaN" : "infinite or overflows float");
            }
            x[k - 1] = f;
        }
        s = fe + 1;
    }
    r->rows++;
    return BNK_OK;
}

static size_t csv_count_fields(const char *s, const char *e) {
    size_t n = 1;
    while ((s = memchr(s, ',', (size_t)(e - s))) != NULL) {
        n++;
        s++;
    }
    return n;
}

/* The parse proper; fills r and *features, leaves freeing r to the caller. */
static bnk_status csv_parse(csv_rows *r, size_t *features, const char *buf, size_t len,
                            const char *name) {
    const char *p = buf, *end = buf + len;
    int64_t line = 0, blank_line = 0, shape_line = 0;
    size_t fields = 0; /* of every row, fixed by the header or the first data row */
    int seen_content = 0;
    bnk_status st;
    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL) eol = end;
        const char *le = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        const char *next = eol < end ? eol + 1 : end;
        if (csv_is_blank(p, le)) {
            if (blank_line == 0) blank_line = line;
            p = next;
            continue;
        }
        if (blank_line != 0) {
            return bnk__fail(BNK_ERR_FORMAT,
                             "%s:%" PRId64 ": data after the blank line %" PRId64
                             " (blank lines may only end the file)",
                             name, line, blank_line);
        }
        size_t n = csv_count_fields(p, le);
        if (!seen_content) {
            seen_content = 1;
            const char *fe = memchr(p, ',', (size_t)(le - p));
            double v;
            if (csv_number(p, fe ? fe : le, &v) != CSV_NUM_OK) { /* a header */
                fields = n;
                shape_line = line;
                p = next;
                continue;
            }
        }
        if (fields == 0) {
            fields = n;
            shape_line = line;
        }
        if (n != fields) {
            return bnk__fail(BNK_ERR_FORMAT,
                             "%s:%" PRId64 ": %zu fields, but line %" PRId64 " has %zu", name, line,
                             n, shape_line, fields);
        }
        if (fields < 2) {
            return bnk__fail(BNK_ERR_FORMAT,
                             "%s:%" PRId64 ": a row needs a label and at least one feature", name,
                             line);
        }
        if ((st = csv_grow(r, fields - 1, name)) != BNK_OK) return st;
        if ((st = csv_row(r, p, le, fields, name, line)) != BNK_OK) return st;
        p = next;
    }
    if (r->rows == 0) {
        return bnk__fail(BNK_ERR_FORMAT, "%s: no samples (%s)", name,
                         seen_content ? "only a header line" : "empty file");
    }
    *features = fields - 1;
    return BNK_OK;
}

bnk_status bnk__csv_parse_mem(bnk_dataset **out, const char *buf, size_t len, const char *name) {
    *out = NULL;
    csv_rows r = {NULL, NULL, 0, 0};
    size_t features = 0;
    bnk_status st = csv_parse(&r, &features, buf, len, name);
    bnk_dataset *ds = NULL;
    if (st == BNK_OK) {
        st = bnk__dataset_alloc(&ds, (int64_t)r.rows, (int64_t)features, 1, 1, BNK__FEAT_NONE);
    }
    if (st != BNK_OK) {
        free(r.x);
        free(r.y);
        return st;
    }
    float *shrunk = realloc(r.x, r.rows * features * sizeof(float));
    ds->f32 = shrunk ? shrunk : r.x;
    memcpy(ds->labels, r.y, r.rows * sizeof(int32_t));
    free(r.y);
    bnk__dataset_finish(ds);
    *out = ds;
    return BNK_OK;
}

bnk_status bnk__csv_load(bnk_dataset **out, const char *path) {
    *out = NULL;
    gzFile f = bnk__gz_open(path);
    if (f == NULL) {
        return bnk__fail(BNK_ERR_IO, "cannot open '%s': %s", path,
                         errno ? strerror(errno) : "zlib could not start reading");
    }
    unsigned char *buf;
    size_t len;
    bnk_status st = bnk__gz_read_upto(f, path, BNK__DATA_MAX_BYTES + 1, &buf, &len);
    gzclose(f);
    if (st != BNK_OK) return st;
    if (len > BNK__DATA_MAX_BYTES) {
        st = bnk__fail(BNK_ERR_FORMAT, "%s: larger than the limit of %" PRIu64 " bytes", path,
                       BNK__DATA_MAX_BYTES);
    } else {
        st = bnk__csv_parse_mem(out, (const char *)buf, len, path);
    }
    free(buf);
    return st;
}
