/* STREAM-style triad a[i] = b[i] + s*c[i] on doubles, OpenMP threads: the memory bandwidth that
 * docs/PERFORMANCE.md relates the BN kernels to. Counts 3 x 8 bytes per element (STREAM's
 * convention: the write-allocate read of a is not counted).
 *
 *   bench_triad [--threads T] [--mib M] [--reps R] [--json]
 *
 * Arrays of M MiB each (default 256, far larger than any L3 here); prints the best and median
 * of R timed triads (default 20) after one untimed pass that faults the pages in. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static long parse_long(const char *opt, const char *s, long lo, long hi) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bench_triad: %s: expected an integer in [%ld, %ld], got '%s'\n", opt, lo,
                hi, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    long threads = 1, mib = 256, reps = 20;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
            threads = parse_long("--threads", argv[++i], 1, 4096);
        else if (i + 1 < argc && strcmp(argv[i], "--mib") == 0)
            mib = parse_long("--mib", argv[++i], 1, 1 << 16);
        else if (i + 1 < argc && strcmp(argv[i], "--reps") == 0)
            reps = parse_long("--reps", argv[++i], 1, 100000);
        else {
            fprintf(stderr, "usage: bench_triad [--threads T] [--mib M] [--reps R] [--json]\n");
            return 2;
        }
    }
    omp_set_num_threads((int)threads);
    const size_t n = (size_t)mib * 1024 * 1024 / sizeof(double);
    double *a = aligned_alloc(64, n * sizeof(double)), *b = aligned_alloc(64, n * sizeof(double)),
           *c = aligned_alloc(64, n * sizeof(double)), *t = malloc((size_t)reps * sizeof(double));
    if (!a || !b || !c || !t) {
        fprintf(stderr, "bench_triad: out of memory\n");
        return 1;
    }
    const double s = 3.0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0;
        b[i] = 1.0;
        c[i] = 2.0;
    }
    for (long r = -1; r < reps; r++) {
        const double t0 = now_s();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + s * c[i];
        if (r >= 0) t[r] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    const double bytes = 3.0 * sizeof(double) * (double)n;
    const double best = bytes / t[0] * 1e-9, med = bytes / t[reps / 2] * 1e-9;
    if (a[n / 2] != 7.0) fprintf(stderr, "bench_triad: wrong result %g\n", a[n / 2]);
    if (json)
        printf("{\"bench\": \"triad\", \"threads\": %ld, \"mib\": %ld, \"reps\": %ld, "
               "\"best_gbs\": %.2f, \"median_gbs\": %.2f}\n",
               threads, mib, reps, best, med);
    else
        printf("triad: %ld thread(s), 3 x %ld MiB: best %.2f GB/s, median %.2f GB/s\n", threads,
               mib, best, med);
    free(a);
    free(b);
    free(c);
    free(t);
    return 0;
}
