/* png_stats FILE.png [RRGGBB ...] — what a screenshot shows, for test_report_browser.sh:
 *
 *     width=1280 height=2000 colours=2714 content=0.412 0072b2=18233 009e73=912
 *
 * colours: distinct RGB values; content: the fraction of pixels that differ from the most common
 * colour (the page background); then, for each colour asked for, how many pixels have exactly
 * that value. Reads 8-bit RGB or RGBA, non-interlaced PNGs (what Chromium writes). Exit status 1
 * when the file is not such a PNG. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int fail(const char *path, const char *why) {
    fprintf(stderr, "png_stats: %s: %s\n", path, why);
    return 1;
}

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: png_stats FILE.png [RRGGBB ...]\n");
        return 2;
    }
    const char *path = argv[1];
    FILE *f = fopen(path, "rb");
    if (!f) return fail(path, "cannot open");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *file = malloc(size > 0 ? (size_t)size : 1);
    if (!file || size < 8 || fread(file, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return fail(path, "cannot read");
    }
    fclose(f);
    static const unsigned char sig[8] = {137, 'P', 'N', 'G', '\r', '\n', 26, '\n'};
    if (memcmp(file, sig, 8) != 0) return fail(path, "not a PNG");

    uint32_t w = 0, h = 0;
    int bpp = 0;
    unsigned char *idat = malloc((size_t)size);
    size_t nidat = 0;
    for (long off = 8; off + 12 <= size;) {
        uint32_t len = be32(file + off);
        const unsigned char *type = file + off + 4, *data = file + off + 8;
        if (len > (uint32_t)(size - off - 12)) return fail(path, "truncated chunk");
        if (memcmp(type, "IHDR", 4) == 0) {
            w = be32(data);
            h = be32(data + 4);
            if (data[8] != 8 || (data[9] != 2 && data[9] != 6) || data[12] != 0)
                return fail(path, "only 8-bit RGB/RGBA non-interlaced PNGs are read");
            bpp = data[9] == 6 ? 4 : 3;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            memcpy(idat + nidat, data, len);
            nidat += len;
        } else if (memcmp(type, "IEND", 4) == 0) {
            break;
        }
        off += 12 + (long)len;
    }
    if (w == 0 || h == 0 || w > 20000 || h > 40000) return fail(path, "bad or missing IHDR");
    const size_t stride = (size_t)w * (size_t)bpp, raw_size = (stride + 1) * h;
    unsigned char *raw = malloc(raw_size);
    uLongf got = (uLongf)raw_size;
    if (!raw || uncompress(raw, &got, idat, (uLong)nidat) != Z_OK || got != raw_size)
        return fail(path, "cannot inflate the image data");

    /* undo the per-row filters in place */
    for (uint32_t y = 0; y < h; y++) {
        unsigned char *row = raw + y * (stride + 1) + 1;
        const unsigned char *up = y ? row - (stride + 1) : NULL;
        const int ft = row[-1];
        for (size_t x = 0; x < stride; x++) {
            int a = x >= (size_t)bpp ? row[x - bpp] : 0, b = up ? up[x] : 0,
                c = up && x >= (size_t)bpp ? up[x - bpp] : 0;
            int pred = ft == 0   ? 0
                       : ft == 1 ? a
                       : ft == 2 ? b
                       : ft == 3 ? (a + b) / 2
                                 : paeth(a, b, c);
            if (ft > 4) return fail(path, "bad filter type");
            row[x] = (unsigned char)(row[x] + pred);
        }
    }

    /* distinct colours (a bit per 24-bit value), the most common one, and the asked ones */
    unsigned char *seen = calloc(1u << 21, 1);
    uint32_t *hist = calloc(1u << 12, sizeof *hist); /* 4-bit-per-channel buckets for the mode */
    int nwant = argc - 2;
    uint32_t *want = calloc((size_t)nwant + 1, sizeof *want);
    uint64_t *wcount = calloc((size_t)nwant + 1, sizeof *wcount);
    if (!seen || !hist || !want || !wcount) return fail(path, "out of memory");
    for (int k = 0; k < nwant; k++) want[k] = (uint32_t)strtoul(argv[k + 2], NULL, 16);
    uint64_t colours = 0;
    for (uint32_t y = 0; y < h; y++) {
        const unsigned char *row = raw + y * (stride + 1) + 1;
        for (uint32_t x = 0; x < w; x++) {
            const unsigned char *p = row + (size_t)x * bpp;
            uint32_t rgb = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
            if (!(seen[rgb >> 3] & (1u << (rgb & 7)))) {
                seen[rgb >> 3] |= (unsigned char)(1u << (rgb & 7));
                colours++;
            }
            hist[(p[0] >> 4) << 8 | (p[1] >> 4) << 4 | p[2] >> 4]++;
            for (int k = 0; k < nwant; k++) wcount[k] += rgb == want[k];
        }
    }
    uint32_t mode = 0;
    for (uint32_t k = 1; k < (1u << 12); k++)
        if (hist[k] > hist[mode]) mode = k;
    const double content = 1.0 - (double)hist[mode] / ((double)w * (double)h);
    printf("width=%u height=%u colours=%llu content=%.3f", w, h, (unsigned long long)colours,
           content);
    for (int k = 0; k < nwant; k++) printf(" %06x=%llu", want[k], (unsigned long long)wcount[k]);
    printf("\n");
    free(file);
    free(idat);
    free(raw);
    free(seen);
    free(hist);
    free(want);
    free(wcount);
    return 0;
}
