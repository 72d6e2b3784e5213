/* AVX2 BN kernels (AVX2 + FMA; this file alone is compiled with those flags and runs only where
 * bn_api.c's CPU check passed). The vector primitives are here; the threaded sweeps, chunking
 * and merges are src/bn/simd/bn_sweep_impl.h's, shared with the AVX-512 kernel.
 *
 * Statistics and backward sums are accumulated in double (4 floats widened per vcvtps2pd, 16
 * per loop trip into 4 accumulator chains); output passes are float FMAs on 8 lanes. Tails
 * shorter than a vector are finished by scalar loops with the same arithmetic. */
#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "bn/bn_internal.h"

#define BNK_INLINE static inline __attribute__((always_inline))

BNK_INLINE double hsum(__m256d v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* The upstream gradient after the fused ReLU's mask (y == NULL: no mask). */
BNK_INLINE float grad1(const float *dy, const float *y, size_t i) {
    return (y && !(y[i] > 0.0f)) ? 0.0f : dy[i];
}

/* ---- Planar runs --------------------------------------------------------------------------- */

BNK_INLINE __m256d wide_sub(const float *p, __m256d k) {
    return _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p)), k);
}

static void k_sums_runs(const float *x, size_t nruns, size_t len, size_t stride, double K,
                        double *s1, double *s2) {
    const __m256d k = _mm256_set1_pd(K);
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    __m256d q0 = a0, q1 = a0, q2 = a0, q3 = a0;
    double t1 = 0.0, t2 = 0.0;
    for (size_t r = 0; r < nruns; r++) {
        const float *p = x + r * stride;
        size_t i = 0;
        for (; i + 16 <= len; i += 16) {
            const __m256d v0 = wide_sub(p + i, k), v1 = wide_sub(p + i + 4, k);
            const __m256d v2 = wide_sub(p + i + 8, k), v3 = wide_sub(p + i + 12, k);
            a0 = _mm256_add_pd(a0, v0);
            a1 = _mm256_add_pd(a1, v1);
            a2 = _mm256_add_pd(a2, v2);
            a3 = _mm256_add_pd(a3, v3);
            q0 = _mm256_fmadd_pd(v0, v0, q0);
            q1 = _mm256_fmadd_pd(v1, v1, q1);
            q2 = _mm256_fmadd_pd(v2, v2, q2);
            q3 = _mm256_fmadd_pd(v3, v3, q3);
        }
        for (; i + 4 <= len; i += 4) {
            const __m256d v = wide_sub(p + i, k);
            a0 = _mm256_add_pd(a0, v);
            q0 = _mm256_fmadd_pd(v, v, q0);
        }
        for (; i < len; i++) {
            const double v = (double)p[i] - K;
            t1 += v;
            t2 += v * v;
        }
    }
    *s1 = hsum(_mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3))) + t1;
    *s2 = hsum(_mm256_add_pd(_mm256_add_pd(q0, q1), _mm256_add_pd(q2, q3))) + t2;
}

BNK_INLINE __m256 affine(__m256 x, __m256 a, __m256 c, __m256 b, int relu) {
    const __m256 v = _mm256_fmadd_ps(a, _mm256_sub_ps(x, c), b);
    /* max(v, 0) returns its second operand for NaN: 0, like the reference's !(v > 0) */
    return relu ? _mm256_max_ps(v, _mm256_setzero_ps()) : v;
}

/* The scalar ends use fmaf, the same single rounding as the vector FMAs, so that an element
 * gets the same value whichever side of an alignment boundary it falls on. */
BNK_INLINE float affine1(float x, float a, float c, float b, int relu) {
    const float v = fmaf(a, x - c, b);
    return relu ? (v > 0.0f ? v : 0.0f) : v;
}

/* Floats before p is 32-byte aligned (at most len). */
BNK_INLINE size_t to_aligned(const float *p, size_t len) {
    const size_t head = ((32 - ((uintptr_t)p & 31)) & 31) / sizeof(float);
    return head < len ? head : len;
}

/* y = affine(x) over len floats. nt: aligned vectors of y are written with non-temporal
 * stores, the unaligned ends with ordinary ones. */
BNK_INLINE void affine_run(float *y, const float *x, size_t len, float a, float c, float b,
                           int relu, int nt) {
    const __m256 av = _mm256_set1_ps(a), cv = _mm256_set1_ps(c), bv = _mm256_set1_ps(b);
    size_t i = 0;
    if (nt) {
        for (const size_t head = to_aligned(y, len); i < head; i++)
            y[i] = affine1(x[i], a, c, b, relu);
        for (; i + 8 <= len; i += 8)
            _mm256_stream_ps(y + i, affine(_mm256_loadu_ps(x + i), av, cv, bv, relu));
    } else {
        for (; i + 32 <= len; i += 32) {
            const __m256 v0 = affine(_mm256_loadu_ps(x + i), av, cv, bv, relu);
            const __m256 v1 = affine(_mm256_loadu_ps(x + i + 8), av, cv, bv, relu);
            const __m256 v2 = affine(_mm256_loadu_ps(x + i + 16), av, cv, bv, relu);
            const __m256 v3 = affine(_mm256_loadu_ps(x + i + 24), av, cv, bv, relu);
            _mm256_storeu_ps(y + i, v0);
            _mm256_storeu_ps(y + i + 8, v1);
            _mm256_storeu_ps(y + i + 16, v2);
            _mm256_storeu_ps(y + i + 24, v3);
        }
        for (; i + 8 <= len; i += 8)
            _mm256_storeu_ps(y + i, affine(_mm256_loadu_ps(x + i), av, cv, bv, relu));
    }
    for (; i < len; i++) y[i] = affine1(x[i], a, c, b, relu);
}

static void k_affine_runs(float *y, const float *x, size_t nruns, size_t len, size_t stride,
                          float a, float c, float b, int relu, int nt, size_t pf) {
    (void)pf; /* the AVX2 kernel leaves prefetching to the hardware */
    for (size_t r = 0; r < nruns; r++) {
        float *yr = y + r * stride;
        const float *xr = x + r * stride;
        if (relu)
            nt ? affine_run(yr, xr, len, a, c, b, 1, 1) : affine_run(yr, xr, len, a, c, b, 1, 0);
        else
            nt ? affine_run(yr, xr, len, a, c, b, 0, 1) : affine_run(yr, xr, len, a, c, b, 0, 0);
    }
    if (nt) _mm_sfence(); /* streamed lines become visible to other threads in order */
}

/* 4 upstream gradients at i widened to double, zero where the fused ReLU's y <= 0. */
BNK_INLINE __m256d grad4(const float *dy, const float *y, size_t i) {
    __m128 d = _mm_loadu_ps(dy + i);
    if (y) d = _mm_and_ps(d, _mm_cmpgt_ps(_mm_loadu_ps(y + i), _mm_setzero_ps()));
    return _mm256_cvtps_pd(d);
}

BNK_INLINE void gsums_run(const float *dy, const float *x, const float *y, size_t len,
                          double center, __m256d *g, __m256d *gx, double *t) {
    const __m256d ctr = _mm256_set1_pd(center);
    size_t i = 0;
    for (; i + 16 <= len; i += 16) {
        for (int u = 0; u < 4; u++) {
            const __m256d gv = grad4(dy, y, i + 4 * (size_t)u);
            const __m256d xv = wide_sub(x + i + 4 * (size_t)u, ctr);
            g[u] = _mm256_add_pd(g[u], gv);
            gx[u] = _mm256_fmadd_pd(gv, xv, gx[u]);
        }
    }
    for (; i + 4 <= len; i += 4) {
        const __m256d gv = grad4(dy, y, i), xv = wide_sub(x + i, ctr);
        g[0] = _mm256_add_pd(g[0], gv);
        gx[0] = _mm256_fmadd_pd(gv, xv, gx[0]);
    }
    for (; i < len; i++) {
        const double gi = grad1(dy, y, i);
        t[0] += gi;
        t[1] += gi * ((double)x[i] - center);
    }
}

static void k_gsums_runs(const float *dy, const float *x, const float *y, size_t nruns, size_t len,
                         size_t stride, double center, double *sg, double *sgx) {
    __m256d g[4], gx[4];
    double t[2] = {0.0, 0.0};
    for (int u = 0; u < 4; u++) g[u] = gx[u] = _mm256_setzero_pd();
    for (size_t r = 0; r < nruns; r++) {
        const size_t o = r * stride;
        if (y)
            gsums_run(dy + o, x + o, y + o, len, center, g, gx, t);
        else
            gsums_run(dy + o, x + o, NULL, len, center, g, gx, t);
    }
    *sg = hsum(_mm256_add_pd(_mm256_add_pd(g[0], g[1]), _mm256_add_pd(g[2], g[3]))) + t[0];
    *sgx = hsum(_mm256_add_pd(_mm256_add_pd(gx[0], gx[1]), _mm256_add_pd(gx[2], gx[3]))) + t[1];
}

/* 8 upstream gradients (float), masked by the fused ReLU when y != NULL. */
BNK_INLINE __m256 grad8(const float *dy, const float *y, size_t i) {
    const __m256 d = _mm256_loadu_ps(dy + i);
    if (!y) return d;
    return _mm256_and_ps(d, _mm256_cmp_ps(_mm256_loadu_ps(y + i), _mm256_setzero_ps(), _CMP_GT_OQ));
}

BNK_INLINE __m256 gout(__m256 g, __m256 x, __m256 kg, __m256 kx, __m256 mx, __m256 k0) {
    return _mm256_fmadd_ps(kg, g, _mm256_fmadd_ps(kx, _mm256_sub_ps(x, mx), k0));
}

BNK_INLINE float gout1(float g, float x, float kg, float kx, float mx, float k0) {
    return fmaf(kg, g, fmaf(kx, x - mx, k0));
}

BNK_INLINE void gout_run(float *dx, const float *dy, const float *x, const float *y, size_t len,
                         float kg, float kx, float mx, float k0, int nt) {
    const __m256 g = _mm256_set1_ps(kg), s = _mm256_set1_ps(kx), m = _mm256_set1_ps(mx),
                 o = _mm256_set1_ps(k0);
    size_t i = 0;
    if (nt) {
        for (const size_t head = to_aligned(dx, len); i < head; i++)
            dx[i] = gout1(grad1(dy, y, i), x[i], kg, kx, mx, k0);
        for (; i + 8 <= len; i += 8)
            _mm256_stream_ps(dx + i, gout(grad8(dy, y, i), _mm256_loadu_ps(x + i), g, s, m, o));
    } else {
        for (; i + 16 <= len; i += 16) {
            const __m256 v0 = gout(grad8(dy, y, i), _mm256_loadu_ps(x + i), g, s, m, o);
            const __m256 v1 = gout(grad8(dy, y, i + 8), _mm256_loadu_ps(x + i + 8), g, s, m, o);
            _mm256_storeu_ps(dx + i, v0);
            _mm256_storeu_ps(dx + i + 8, v1);
        }
        for (; i + 8 <= len; i += 8)
            _mm256_storeu_ps(dx + i, gout(grad8(dy, y, i), _mm256_loadu_ps(x + i), g, s, m, o));
    }
    for (; i < len; i++) dx[i] = gout1(grad1(dy, y, i), x[i], kg, kx, mx, k0);
}

static void k_gout_runs(float *dx, const float *dy, const float *x, const float *y, size_t nruns,
                        size_t len, size_t stride, float kg, float kx, float mx, float k0, int nt,
                        size_t pf) {
    (void)pf; /* the AVX2 kernel leaves prefetching to the hardware */
    for (size_t r = 0; r < nruns; r++) {
        const size_t off = r * stride;
        if (y)
            nt ? gout_run(dx + off, dy + off, x + off, y + off, len, kg, kx, mx, k0, 1)
               : gout_run(dx + off, dy + off, x + off, y + off, len, kg, kx, mx, k0, 0);
        else
            nt ? gout_run(dx + off, dy + off, x + off, NULL, len, kg, kx, mx, k0, 1)
               : gout_run(dx + off, dy + off, x + off, NULL, len, kg, kx, mx, k0, 0);
    }
    if (nt) _mm_sfence();
}

/* ---- Interleaved rows ---------------------------------------------------------------------- */

/* Rows that follow one another without a gap (ld == nc), nc a power of 2 up to 16 (a blocked
 * layout's block, NHWC with C = 8, NC with C = 1): one stretch of len = nrows*nc floats, element i
 * of channel i % nc = i & (nc - 1). The *_flat loops sweep it as one run, each per-channel value
 * repeated into a 16-lane pattern kept in registers, rather than row by row (which costs more per
 * row than an 8-float row takes, and leaves the accumulators one latency-bound chain per row); the
 * sums are folded back to the nc channels at the end. The outputs get the same operations on every
 * element as from the row loops. */
BNK_INLINE int flat_rows(size_t ld, size_t nc) {
    return ld == nc && nc <= 16 && (nc & (nc - 1)) == 0;
}

/* Lanes [8h, 8h + 8) of the 16-lane pattern v[(phase + l) % nc]. */
BNK_INLINE __m256 pattern8(const float *v, size_t nc, size_t phase, size_t h) {
    float t[8];
    for (size_t l = 0; l < 8; l++) t[l] = v[(phase + 8 * h + l) & (nc - 1)];
    return _mm256_loadu_ps(t);
}

/* Lanes [4h, 4h + 4) of the 16-lane pattern of the doubles v (phase 0). */
BNK_INLINE __m256d pattern4d(const double *v, size_t nc, size_t h) {
    double t[4];
    for (size_t l = 0; l < 4; l++) t[l] = v[(4 * h + l) & (nc - 1)];
    return _mm256_loadu_pd(t);
}

/* k_sums_rows over a stretch of len floats without gaps (see flat_rows). */
static void sums_flat(const float *x, size_t len, size_t nc, const double *K, double *s1,
                      double *s2) {
    __m256d k[4], a[4], q[4];
    for (size_t u = 0; u < 4; u++) {
        k[u] = pattern4d(K, nc, u);
        a[u] = q[u] = _mm256_setzero_pd();
    }
    size_t i = 0;
    for (; i + 16 <= len; i += 16)
        for (size_t u = 0; u < 4; u++) {
            const __m256d v = wide_sub(x + i + 4 * u, k[u]);
            a[u] = _mm256_add_pd(a[u], v);
            q[u] = _mm256_fmadd_pd(v, v, q[u]);
        }
    for (; i + 4 <= len; i += 4) { /* lanes [i % 16, +4) of the pattern */
        const size_t u = (i % 16) / 4;
        const __m256d v = wide_sub(x + i, k[u]);
        a[u] = _mm256_add_pd(a[u], v);
        q[u] = _mm256_fmadd_pd(v, v, q[u]);
    }
    double t1[16], t2[16];
    for (size_t u = 0; u < 4; u++) {
        _mm256_storeu_pd(t1 + 4 * u, a[u]);
        _mm256_storeu_pd(t2 + 4 * u, q[u]);
    }
    for (; i < len; i++) {
        const double v = (double)x[i] - K[i & (nc - 1)];
        t1[i % 16] += v;
        t2[i % 16] += v * v;
    }
    bnk__bn_fold16(t1, nc, s1);
    bnk__bn_fold16(t2, nc, s2);
}

/* Each 8-channel column down the rows, accumulators in registers. */
static void sums_cols(const float *x, size_t nrows, size_t ld, size_t nc, const double *K,
                      double *s1, double *s2) {
    size_t j = 0;
    for (; j + 8 <= nc; j += 8) {
        const __m256d kl = _mm256_loadu_pd(K + j), kh = _mm256_loadu_pd(K + j + 4);
        __m256d al = _mm256_setzero_pd(), ah = al, ql = al, qh = al;
        const float *p = x + j;
        for (size_t r = 0; r < nrows; r++, p += ld) {
            const __m256d l = wide_sub(p, kl), h = wide_sub(p + 4, kh);
            al = _mm256_add_pd(al, l);
            ah = _mm256_add_pd(ah, h);
            ql = _mm256_fmadd_pd(l, l, ql);
            qh = _mm256_fmadd_pd(h, h, qh);
        }
        _mm256_storeu_pd(s1 + j, al);
        _mm256_storeu_pd(s1 + j + 4, ah);
        _mm256_storeu_pd(s2 + j, ql);
        _mm256_storeu_pd(s2 + j + 4, qh);
    }
    for (; j < nc; j++) {
        double a = 0.0, q = 0.0;
        for (size_t r = 0; r < nrows; r++) {
            const double v = (double)x[r * ld + j] - K[j];
            a += v;
            q += v * v;
        }
        s1[j] = a;
        s2[j] = q;
    }
}

static void k_sums_rows(const float *x, size_t nrows, size_t ld, size_t nc, const double *K,
                        double *s1, double *s2) {
    if (flat_rows(ld, nc))
        sums_flat(x, nrows * nc, nc, K, s1, s2);
    else
        sums_cols(x, nrows, ld, nc, K, s1, s2);
}

BNK_INLINE void affine_flat(float *y, const float *x, size_t len, size_t nc, const float *a,
                            const float *c, const float *b, int relu, int nt) {
    size_t i = 0;
    if (nt)
        for (const size_t head = to_aligned(y, len); i < head; i++)
            y[i] = affine1(x[i], a[i & (nc - 1)], c[i & (nc - 1)], b[i & (nc - 1)], relu);
    /* from i on, every vector pair starts at an element of channel i % nc */
    const size_t ph = i;
    const __m256 a0 = pattern8(a, nc, ph, 0), a1 = pattern8(a, nc, ph, 1);
    const __m256 c0 = pattern8(c, nc, ph, 0), c1 = pattern8(c, nc, ph, 1);
    const __m256 b0 = pattern8(b, nc, ph, 0), b1 = pattern8(b, nc, ph, 1);
    if (nt) {
        for (; i + 16 <= len; i += 16) {
            _mm256_stream_ps(y + i, affine(_mm256_loadu_ps(x + i), a0, c0, b0, relu));
            _mm256_stream_ps(y + i + 8, affine(_mm256_loadu_ps(x + i + 8), a1, c1, b1, relu));
        }
    } else {
        for (; i + 32 <= len; i += 32) {
            const __m256 v0 = affine(_mm256_loadu_ps(x + i), a0, c0, b0, relu);
            const __m256 v1 = affine(_mm256_loadu_ps(x + i + 8), a1, c1, b1, relu);
            const __m256 v2 = affine(_mm256_loadu_ps(x + i + 16), a0, c0, b0, relu);
            const __m256 v3 = affine(_mm256_loadu_ps(x + i + 24), a1, c1, b1, relu);
            _mm256_storeu_ps(y + i, v0);
            _mm256_storeu_ps(y + i + 8, v1);
            _mm256_storeu_ps(y + i + 16, v2);
            _mm256_storeu_ps(y + i + 24, v3);
        }
        for (; i + 16 <= len; i += 16) {
            _mm256_storeu_ps(y + i, affine(_mm256_loadu_ps(x + i), a0, c0, b0, relu));
            _mm256_storeu_ps(y + i + 8, affine(_mm256_loadu_ps(x + i + 8), a1, c1, b1, relu));
        }
    }
    if (i + 8 <= len) {
        _mm256_storeu_ps(y + i, affine(_mm256_loadu_ps(x + i), a0, c0, b0, relu));
        i += 8;
    }
    for (; i < len; i++)
        y[i] = affine1(x[i], a[i & (nc - 1)], c[i & (nc - 1)], b[i & (nc - 1)], relu);
}

BNK_INLINE void affine_rows(float *y, const float *x, size_t nrows, size_t ld, size_t nc,
                            const float *a, const float *c, const float *b, int relu, int nt) {
    if (flat_rows(ld, nc)) {
        affine_flat(y, x, nrows * nc, nc, a, c, b, relu, nt);
        return;
    }
    for (size_t r = 0; r < nrows; r++, x += ld, y += ld) {
        size_t j = 0;
        if (nt) {
            for (const size_t head = to_aligned(y, nc); j < head; j++)
                y[j] = affine1(x[j], a[j], c[j], b[j], relu);
            for (; j + 8 <= nc; j += 8)
                _mm256_stream_ps(y + j,
                                 affine(_mm256_loadu_ps(x + j), _mm256_loadu_ps(a + j),
                                        _mm256_loadu_ps(c + j), _mm256_loadu_ps(b + j), relu));
        } else {
            for (; j + 8 <= nc; j += 8)
                _mm256_storeu_ps(y + j,
                                 affine(_mm256_loadu_ps(x + j), _mm256_loadu_ps(a + j),
                                        _mm256_loadu_ps(c + j), _mm256_loadu_ps(b + j), relu));
        }
        for (; j < nc; j++) y[j] = affine1(x[j], a[j], c[j], b[j], relu);
    }
}

static void k_affine_rows(float *y, const float *x, size_t nrows, size_t ld, size_t nc,
                          const float *a, const float *c, const float *b, int relu, int nt) {
    if (relu)
        nt ? affine_rows(y, x, nrows, ld, nc, a, c, b, 1, 1)
           : affine_rows(y, x, nrows, ld, nc, a, c, b, 1, 0);
    else
        nt ? affine_rows(y, x, nrows, ld, nc, a, c, b, 0, 1)
           : affine_rows(y, x, nrows, ld, nc, a, c, b, 0, 0);
    if (nt) _mm_sfence();
}

BNK_INLINE void gsums_cols(const float *dy, const float *x, const float *y, size_t nrows, size_t ld,
                           size_t nc, const double *ctr, double *sg, double *sgx) {
    size_t j = 0;
    for (; j + 8 <= nc; j += 8) {
        const __m256d cl = _mm256_loadu_pd(ctr + j), ch = _mm256_loadu_pd(ctr + j + 4);
        __m256d gl = _mm256_setzero_pd(), gh = gl, xl = gl, xh = gl;
        size_t o = j;
        for (size_t r = 0; r < nrows; r++, o += ld) {
            const __m256d gvl = grad4(dy, y, o), gvh = grad4(dy, y, o + 4);
            const __m256d xvl = wide_sub(x + o, cl), xvh = wide_sub(x + o + 4, ch);
            gl = _mm256_add_pd(gl, gvl);
            gh = _mm256_add_pd(gh, gvh);
            xl = _mm256_fmadd_pd(gvl, xvl, xl);
            xh = _mm256_fmadd_pd(gvh, xvh, xh);
        }
        _mm256_storeu_pd(sg + j, gl);
        _mm256_storeu_pd(sg + j + 4, gh);
        _mm256_storeu_pd(sgx + j, xl);
        _mm256_storeu_pd(sgx + j + 4, xh);
    }
    for (; j < nc; j++) {
        double g = 0.0, gx = 0.0;
        for (size_t r = 0, o = j; r < nrows; r++, o += ld) {
            const double gi = grad1(dy, y, o);
            g += gi;
            gx += gi * ((double)x[o] - ctr[j]);
        }
        sg[j] = g;
        sgx[j] = gx;
    }
}

/* k_gsums_rows over a stretch of len floats without gaps (see flat_rows). */
BNK_INLINE void gsums_flat(const float *dy, const float *x, const float *y, size_t len, size_t nc,
                           const double *ctr, double *sg, double *sgx) {
    __m256d cv[4], g[4], gx[4];
    for (size_t u = 0; u < 4; u++) {
        cv[u] = pattern4d(ctr, nc, u);
        g[u] = gx[u] = _mm256_setzero_pd();
    }
    size_t i = 0;
    for (; i + 16 <= len; i += 16)
        for (size_t u = 0; u < 4; u++) {
            const size_t o = i + 4 * u;
            const __m256d gv = grad4(dy, y, o), xv = wide_sub(x + o, cv[u]);
            g[u] = _mm256_add_pd(g[u], gv);
            gx[u] = _mm256_fmadd_pd(gv, xv, gx[u]);
        }
    for (; i + 4 <= len; i += 4) {
        const size_t u = (i % 16) / 4;
        const __m256d gv = grad4(dy, y, i), xv = wide_sub(x + i, cv[u]);
        g[u] = _mm256_add_pd(g[u], gv);
        gx[u] = _mm256_fmadd_pd(gv, xv, gx[u]);
    }
    double t1[16], t2[16];
    for (size_t u = 0; u < 4; u++) {
        _mm256_storeu_pd(t1 + 4 * u, g[u]);
        _mm256_storeu_pd(t2 + 4 * u, gx[u]);
    }
    for (; i < len; i++) {
        const double gi = grad1(dy, y, i);
        t1[i % 16] += gi;
        t2[i % 16] += gi * ((double)x[i] - ctr[i & (nc - 1)]);
    }
    bnk__bn_fold16(t1, nc, sg);
    bnk__bn_fold16(t2, nc, sgx);
}

static void k_gsums_rows(const float *dy, const float *x, const float *y, size_t nrows, size_t ld,
                         size_t nc, const double *ctr, double *sg, double *sgx) {
    if (flat_rows(ld, nc))
        y ? gsums_flat(dy, x, y, nrows * nc, nc, ctr, sg, sgx)
          : gsums_flat(dy, x, NULL, nrows * nc, nc, ctr, sg, sgx);
    else if (y)
        gsums_cols(dy, x, y, nrows, ld, nc, ctr, sg, sgx);
    else
        gsums_cols(dy, x, NULL, nrows, ld, nc, ctr, sg, sgx);
}

/* gout_rows over rows without gaps, as affine_flat. */
BNK_INLINE void gout_flat(float *dx, const float *dy, const float *x, const float *y, size_t len,
                          size_t nc, const float *kg, const float *kx, const float *mx,
                          const float *k0, int nt) {
    size_t i = 0;
    if (nt)
        for (const size_t head = to_aligned(dx, len); i < head; i++)
            dx[i] = gout1(grad1(dy, y, i), x[i], kg[i & (nc - 1)], kx[i & (nc - 1)],
                          mx[i & (nc - 1)], k0[i & (nc - 1)]);
    const size_t ph = i;
    const __m256 g0 = pattern8(kg, nc, ph, 0), g1 = pattern8(kg, nc, ph, 1);
    const __m256 s0 = pattern8(kx, nc, ph, 0), s1 = pattern8(kx, nc, ph, 1);
    const __m256 m0 = pattern8(mx, nc, ph, 0), m1 = pattern8(mx, nc, ph, 1);
    const __m256 o0 = pattern8(k0, nc, ph, 0), o1 = pattern8(k0, nc, ph, 1);
    for (; i + 16 <= len; i += 16) {
        const __m256 v0 = gout(grad8(dy, y, i), _mm256_loadu_ps(x + i), g0, s0, m0, o0);
        const __m256 v1 = gout(grad8(dy, y, i + 8), _mm256_loadu_ps(x + i + 8), g1, s1, m1, o1);
        if (nt) {
            _mm256_stream_ps(dx + i, v0);
            _mm256_stream_ps(dx + i + 8, v1);
        } else {
            _mm256_storeu_ps(dx + i, v0);
            _mm256_storeu_ps(dx + i + 8, v1);
        }
    }
    if (i + 8 <= len) {
        _mm256_storeu_ps(dx + i, gout(grad8(dy, y, i), _mm256_loadu_ps(x + i), g0, s0, m0, o0));
        i += 8;
    }
    for (; i < len; i++)
        dx[i] = gout1(grad1(dy, y, i), x[i], kg[i & (nc - 1)], kx[i & (nc - 1)], mx[i & (nc - 1)],
                      k0[i & (nc - 1)]);
}

BNK_INLINE void gout_rows(float *dx, const float *dy, const float *x, const float *y, size_t nrows,
                          size_t ld, size_t nc, const float *kg, const float *kx, const float *mx,
                          const float *k0, int nt) {
    if (flat_rows(ld, nc)) {
        gout_flat(dx, dy, x, y, nrows * nc, nc, kg, kx, mx, k0, nt);
        return;
    }
    for (size_t r = 0, o = 0; r < nrows; r++, o += ld) {
        size_t j = 0;
        if (nt) {
            for (const size_t head = to_aligned(dx + o, nc); j < head; j++)
                dx[o + j] = gout1(grad1(dy, y, o + j), x[o + j], kg[j], kx[j], mx[j], k0[j]);
            for (; j + 8 <= nc; j += 8)
                _mm256_stream_ps(dx + o + j,
                                 gout(grad8(dy, y, o + j), _mm256_loadu_ps(x + o + j),
                                      _mm256_loadu_ps(kg + j), _mm256_loadu_ps(kx + j),
                                      _mm256_loadu_ps(mx + j), _mm256_loadu_ps(k0 + j)));
        } else {
            for (; j + 8 <= nc; j += 8)
                _mm256_storeu_ps(dx + o + j,
                                 gout(grad8(dy, y, o + j), _mm256_loadu_ps(x + o + j),
                                      _mm256_loadu_ps(kg + j), _mm256_loadu_ps(kx + j),
                                      _mm256_loadu_ps(mx + j), _mm256_loadu_ps(k0 + j)));
        }
        for (; j < nc; j++)
            dx[o + j] = gout1(grad1(dy, y, o + j), x[o + j], kg[j], kx[j], mx[j], k0[j]);
    }
}

static void k_gout_rows(float *dx, const float *dy, const float *x, const float *y, size_t nrows,
                        size_t ld, size_t nc, const float *kg, const float *kx, const float *mx,
                        const float *k0, int nt) {
    if (y)
        nt ? gout_rows(dx, dy, x, y, nrows, ld, nc, kg, kx, mx, k0, 1)
           : gout_rows(dx, dy, x, y, nrows, ld, nc, kg, kx, mx, k0, 0);
    else
        nt ? gout_rows(dx, dy, x, NULL, nrows, ld, nc, kg, kx, mx, k0, 1)
           : gout_rows(dx, dy, x, NULL, nrows, ld, nc, kg, kx, mx, k0, 0);
    if (nt) _mm_sfence();
}

#include "bn/simd/bn_sweep_impl.h"

const bnk__bn_kernels bnk__bn_kernels_avx2 = {
    .name = "avx2",
    .forward_train = sw_forward_train,
    .forward_infer = sw_forward_infer,
    .backward = sw_backward,
    .moments = sw_moments,
    .train_output = sw_train_output,
    .grad_sums = sw_grad_sums,
    .grad_output = sw_grad_output,
};
