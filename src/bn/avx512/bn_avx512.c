/* AVX-512 BN kernels (AVX512F/BW/VL/DQ + FMA; this file alone is compiled with those flags and
 * runs only where bn_api.c's CPU check passed). The vector primitives are here; the threaded
 * sweeps, chunking and merges are src/bn/simd/bn_sweep_impl.h's, shared with the AVX2 kernel.
 *
 * Statistics and backward sums are accumulated in double: 8 floats are widened per
 * vcvtps2pd, 32 per loop trip into 4 independent accumulator chains. Output passes are float
 * FMAs on 16 lanes. Tails use masked loads and stores (no scalar loops, no reads past the end). */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "bn/bn_internal.h"

#define BNK_INLINE static inline __attribute__((always_inline))

BNK_INLINE __mmask8 mask8(size_t n) {
    return n >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << n) - 1u);
}
BNK_INLINE __mmask16 mask16(size_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

/* ---- Planar runs --------------------------------------------------------------------------- */

/* 8 floats at p widened to double, minus k. */
BNK_INLINE __m512d wide_sub(const float *p, __m512d k) {
    return _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(p)), k);
}

static void k_sums_runs(const float *x, size_t nruns, size_t len, size_t stride, double K,
                        double *s1, double *s2) {
    const __m512d k = _mm512_set1_pd(K);
    __m512d a0 = _mm512_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    __m512d q0 = a0, q1 = a0, q2 = a0, q3 = a0;
    for (size_t r = 0; r < nruns; r++) {
        const float *p = x + r * stride;
        size_t i = 0;
        for (; i + 32 <= len; i += 32) {
            const __m512d v0 = wide_sub(p + i, k), v1 = wide_sub(p + i + 8, k);
            const __m512d v2 = wide_sub(p + i + 16, k), v3 = wide_sub(p + i + 24, k);
            a0 = _mm512_add_pd(a0, v0);
            a1 = _mm512_add_pd(a1, v1);
            a2 = _mm512_add_pd(a2, v2);
            a3 = _mm512_add_pd(a3, v3);
            q0 = _mm512_fmadd_pd(v0, v0, q0);
            q1 = _mm512_fmadd_pd(v1, v1, q1);
            q2 = _mm512_fmadd_pd(v2, v2, q2);
            q3 = _mm512_fmadd_pd(v3, v3, q3);
        }
        for (; i + 8 <= len; i += 8) {
            const __m512d v = wide_sub(p + i, k);
            a0 = _mm512_add_pd(a0, v);
            q0 = _mm512_fmadd_pd(v, v, q0);
        }
        if (i < len) {
            const __mmask8 m = mask8(len - i);
            const __m512d v =
                _mm512_maskz_sub_pd(m, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, p + i)), k);
            a1 = _mm512_add_pd(a1, v);
            q1 = _mm512_fmadd_pd(v, v, q1);
        }
    }
    *s1 = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
    *s2 = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(q0, q1), _mm512_add_pd(q2, q3)));
}

BNK_INLINE __m512 affine(__m512 x, __m512 a, __m512 c, __m512 b, int relu) {
    const __m512 v = _mm512_fmadd_ps(a, _mm512_sub_ps(x, c), b);
    /* max(v, 0) returns its second operand for NaN: 0, like the reference's !(v > 0) */
    return relu ? _mm512_max_ps(v, _mm512_setzero_ps()) : v;
}

/* Asks for the line at p (data that the caller sweeps next) to be brought towards L2 while the
 * current pass writes: the reads of the next channel overlap the writes of this one. */
BNK_INLINE void prefetch_next(const float *p) {
    _mm_prefetch((const char *)p, _MM_HINT_T1);
}

/* Floats before p is 64-byte aligned (at most len). */
BNK_INLINE size_t to_line(const float *p, size_t len) {
    const size_t head = ((64 - ((uintptr_t)p & 63)) & 63) / sizeof(float);
    return head < len ? head : len;
}

/* y = affine(x) over len floats. nt: whole 64-byte lines of y are written with non-temporal
 * stores (the partial lines at either end with ordinary ones). */
BNK_INLINE void affine_run(float *y, const float *x, size_t len, __m512 a, __m512 c, __m512 b,
                           int relu, int nt, size_t pf) {
    size_t i = 0;
    if (nt) {
        const size_t head = to_line(y, len);
        if (head) {
            const __mmask16 m = mask16(head);
            _mm512_mask_storeu_ps(y, m, affine(_mm512_maskz_loadu_ps(m, x), a, c, b, relu));
        }
        for (i = head; i + 16 <= len; i += 16) {
            if (pf) prefetch_next(x + i + pf);
            _mm512_stream_ps(y + i, affine(_mm512_loadu_ps(x + i), a, c, b, relu));
        }
    } else {
        /* 256-bit loads and stores in the long loop: on the machine of docs/PERFORMANCE.md a
         * DRAM-bound stream ran ~12% slower with 512-bit ones, and in cache it makes no
         * difference here (the loop is one FMA per 8 floats). */
        const __m256 a8 = _mm512_castps512_ps256(a), c8 = _mm512_castps512_ps256(c),
                     b8 = _mm512_castps512_ps256(b);
        for (; i + 64 <= len; i += 64) {
            if (pf)
                for (int u = 0; u < 4; u++) prefetch_next(x + i + pf + 16 * (size_t)u);
            for (int u = 0; u < 8; u++) {
                __m256 v =
                    _mm256_fmadd_ps(a8, _mm256_sub_ps(_mm256_loadu_ps(x + i + 8 * u), c8), b8);
                if (relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
                _mm256_storeu_ps(y + i + 8 * u, v);
            }
        }
        for (; i + 16 <= len; i += 16)
            _mm512_storeu_ps(y + i, affine(_mm512_loadu_ps(x + i), a, c, b, relu));
    }
    if (i < len) {
        const __mmask16 m = mask16(len - i);
        _mm512_mask_storeu_ps(y + i, m, affine(_mm512_maskz_loadu_ps(m, x + i), a, c, b, relu));
    }
}

static void k_affine_runs(float *y, const float *x, size_t nruns, size_t len, size_t stride,
                          float a, float c, float b, int relu, int nt, size_t pf) {
    const __m512 av = _mm512_set1_ps(a), cv = _mm512_set1_ps(c), bv = _mm512_set1_ps(b);
    for (size_t r = 0; r < nruns; r++) {
        float *yr = y + r * stride;
        const float *xr = x + r * stride;
        if (relu)
            nt ? affine_run(yr, xr, len, av, cv, bv, 1, 1, pf)
               : affine_run(yr, xr, len, av, cv, bv, 1, 0, pf);
        else
            nt ? affine_run(yr, xr, len, av, cv, bv, 0, 1, pf)
               : affine_run(yr, xr, len, av, cv, bv, 0, 0, pf);
    }
    if (nt) _mm_sfence(); /* streamed lines become visible to other threads in order */
}

/* 8 upstream gradients at i widened to double, zero where the fused ReLU's y <= 0; m masks a
 * tail (loads beyond it are suppressed). */
BNK_INLINE __m512d grad8(const float *dy, const float *y, size_t i, __mmask8 m) {
    const __m256 d = _mm256_maskz_loadu_ps(m, dy + i);
    if (y)
        m = _mm256_mask_cmp_ps_mask(m, _mm256_maskz_loadu_ps(m, y + i), _mm256_setzero_ps(),
                                    _CMP_GT_OQ);
    return _mm512_maskz_cvtps_pd(m, d);
}

BNK_INLINE void gsums_run(const float *dy, const float *x, const float *y, size_t len, __m512d ctr,
                          __m512d *g, __m512d *gx) {
    size_t i = 0;
    for (; i + 32 <= len; i += 32) {
        for (int u = 0; u < 4; u++) {
            const __m512d gv = grad8(dy, y, i + 8 * (size_t)u, 0xFF);
            const __m512d xv = wide_sub(x + i + 8 * (size_t)u, ctr);
            g[u] = _mm512_add_pd(g[u], gv);
            gx[u] = _mm512_fmadd_pd(gv, xv, gx[u]);
        }
    }
    for (; i < len; i += 8) {
        const __mmask8 m = mask8(len - i);
        const __m512d gv = grad8(dy, y, i, m);
        const __m512d xv =
            _mm512_maskz_sub_pd(m, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i)), ctr);
        g[0] = _mm512_add_pd(g[0], gv);
        gx[0] = _mm512_fmadd_pd(gv, xv, gx[0]);
    }
}

static void k_gsums_runs(const float *dy, const float *x, const float *y, size_t nruns, size_t len,
                         size_t stride, double center, double *sg, double *sgx) {
    const __m512d ctr = _mm512_set1_pd(center);
    __m512d g[4], gx[4];
    for (int u = 0; u < 4; u++) g[u] = gx[u] = _mm512_setzero_pd();
    for (size_t r = 0; r < nruns; r++) {
        const size_t o = r * stride;
        if (y)
            gsums_run(dy + o, x + o, y + o, len, ctr, g, gx);
        else
            gsums_run(dy + o, x + o, NULL, len, ctr, g, gx);
    }
    *sg = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(g[0], g[1]), _mm512_add_pd(g[2], g[3])));
    *sgx = _mm512_reduce_add_pd(
        _mm512_add_pd(_mm512_add_pd(gx[0], gx[1]), _mm512_add_pd(gx[2], gx[3])));
}

/* 16 upstream gradients (float), masked by the fused ReLU when y != NULL. */
BNK_INLINE __m512 grad16(const float *dy, const float *y, size_t i, __mmask16 m) {
    const __m512 d = _mm512_maskz_loadu_ps(m, dy + i);
    if (y)
        m = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, y + i), _mm512_setzero_ps(),
                                    _CMP_GT_OQ);
    return _mm512_maskz_mov_ps(m, d);
}

BNK_INLINE __m512 gout(__m512 g, __m512 x, __m512 kg, __m512 kx, __m512 mx, __m512 k0) {
    return _mm512_fmadd_ps(kg, g, _mm512_fmadd_ps(kx, _mm512_sub_ps(x, mx), k0));
}

BNK_INLINE void gout_run(float *dx, const float *dy, const float *x, const float *y, size_t len,
                         __m512 kg, __m512 kx, __m512 mx, __m512 k0, int nt, size_t pf) {
    size_t i = 0;
    if (nt) {
        const size_t head = to_line(dx, len);
        if (head) {
            const __mmask16 m = mask16(head);
            _mm512_mask_storeu_ps(
                dx, m, gout(grad16(dy, y, 0, m), _mm512_maskz_loadu_ps(m, x), kg, kx, mx, k0));
        }
        for (i = head; i + 16 <= len; i += 16) {
            if (pf) {
                prefetch_next(x + i + pf);
                prefetch_next(dy + i + pf);
            }
            _mm512_stream_ps(
                dx + i, gout(grad16(dy, y, i, 0xFFFF), _mm512_loadu_ps(x + i), kg, kx, mx, k0));
        }
    } else {
        for (; i + 32 <= len; i += 32) {
            if (pf)
                for (int u = 0; u < 2; u++) {
                    prefetch_next(x + i + pf + 16 * (size_t)u);
                    prefetch_next(dy + i + pf + 16 * (size_t)u);
                }
            const __m512 v0 =
                gout(grad16(dy, y, i, 0xFFFF), _mm512_loadu_ps(x + i), kg, kx, mx, k0);
            const __m512 v1 =
                gout(grad16(dy, y, i + 16, 0xFFFF), _mm512_loadu_ps(x + i + 16), kg, kx, mx, k0);
            _mm512_storeu_ps(dx + i, v0);
            _mm512_storeu_ps(dx + i + 16, v1);
        }
    }
    for (; i < len; i += 16) {
        const __mmask16 m = mask16(len - i);
        const __m512 v = gout(grad16(dy, y, i, m), _mm512_maskz_loadu_ps(m, x + i), kg, kx, mx, k0);
        _mm512_mask_storeu_ps(dx + i, m, v);
    }
}

static void k_gout_runs(float *dx, const float *dy, const float *x, const float *y, size_t nruns,
                        size_t len, size_t stride, float kg, float kx, float mx, float k0, int nt,
                        size_t pf) {
    const __m512 g = _mm512_set1_ps(kg), s = _mm512_set1_ps(kx), m = _mm512_set1_ps(mx),
                 o = _mm512_set1_ps(k0);
    for (size_t r = 0; r < nruns; r++) {
        const size_t off = r * stride;
        if (y)
            nt ? gout_run(dx + off, dy + off, x + off, y + off, len, g, s, m, o, 1, pf)
               : gout_run(dx + off, dy + off, x + off, y + off, len, g, s, m, o, 0, pf);
        else
            nt ? gout_run(dx + off, dy + off, x + off, NULL, len, g, s, m, o, 1, pf)
               : gout_run(dx + off, dy + off, x + off, NULL, len, g, s, m, o, 0, pf);
    }
    if (nt) _mm_sfence();
}

/* ---- Interleaved rows ---------------------------------------------------------------------- */

/* Rows that follow one another without a gap (ld == nc), nc a power of 2 up to 16 (a blocked
 * layout's block, NHWC with C = 16, NC with C = 1): one stretch of len = nrows*nc floats, element i
 * of channel i % nc = i & (nc - 1). The *_flat loops sweep it as one run, each per-channel value
 * repeated into a 16-lane pattern kept in registers, rather than row by row (which costs more per
 * row than a 16-float row takes, and leaves the accumulators one latency-bound chain per row); the
 * sums are folded back to the nc channels at the end. The outputs get the same operations on every
 * element as from the row loops. */
BNK_INLINE int flat_rows(size_t ld, size_t nc) {
    return ld == nc && nc <= 16 && (nc & (nc - 1)) == 0;
}

/* The 16-lane pattern v[(phase + l) % nc], l < 16. */
BNK_INLINE __m512 pattern16(const float *v, size_t nc, size_t phase) {
    float t[16];
    for (size_t l = 0; l < 16; l++) t[l] = v[(phase + l) & (nc - 1)];
    return _mm512_loadu_ps(t);
}

/* Lanes [8h, 8h + 8) of the pattern of the doubles v. */
BNK_INLINE __m512d pattern8d(const double *v, size_t nc, size_t h) {
    double t[8];
    for (size_t l = 0; l < 8; l++) t[l] = v[(8 * h + l) & (nc - 1)];
    return _mm512_loadu_pd(t);
}

/* bnk__bn_fold16 of the 16 lanes lo (0-7) and hi (8-15). */
BNK_INLINE void fold16(__m512d lo, __m512d hi, size_t nc, double *out) {
    double t[16];
    _mm512_storeu_pd(t, lo);
    _mm512_storeu_pd(t + 8, hi);
    bnk__bn_fold16(t, nc, out);
}

/* k_sums_rows over a stretch of len floats without gaps (see flat_rows). */
static void sums_flat(const float *x, size_t len, size_t nc, const double *K, double *s1,
                      double *s2) {
    const __m512d k[2] = {pattern8d(K, nc, 0), pattern8d(K, nc, 1)};
    __m512d a[4], q[4];
    for (int u = 0; u < 4; u++) a[u] = q[u] = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 32 <= len; i += 32)
        for (int u = 0; u < 4; u++) {
            const __m512d v = wide_sub(x + i + 8 * (size_t)u, k[u & 1]);
            a[u] = _mm512_add_pd(a[u], v);
            q[u] = _mm512_fmadd_pd(v, v, q[u]);
        }
    for (; i < len; i += 8) { /* lanes [i % 16, +8) of the pattern; masked lanes add 0 */
        const __mmask8 m = mask8(len - i);
        const int h = (i & 8) != 0;
        const __m512d v =
            _mm512_maskz_sub_pd(m, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i)), k[h]);
        a[h] = _mm512_add_pd(a[h], v);
        q[h] = _mm512_fmadd_pd(v, v, q[h]);
    }
    fold16(_mm512_add_pd(a[0], a[2]), _mm512_add_pd(a[1], a[3]), nc, s1);
    fold16(_mm512_add_pd(q[0], q[2]), _mm512_add_pd(q[1], q[3]), nc, s2);
}

/* Each 16-channel column down the rows, accumulators in registers. */
static void sums_cols(const float *x, size_t nrows, size_t ld, size_t nc, const double *K,
                      double *s1, double *s2) {
    for (size_t j = 0; j < nc; j += 16) {
        const __mmask16 m = mask16(nc - j);
        const __mmask8 ml = (__mmask8)m, mh = (__mmask8)(m >> 8);
        /* masked lanes load x = 0 and K = 0, so they add 0 */
        const __m512d kl = _mm512_maskz_loadu_pd(ml, K + j),
                      kh = _mm512_maskz_loadu_pd(mh, K + j + 8);
        __m512d al0 = _mm512_setzero_pd(), ah0 = al0, ql0 = al0, qh0 = al0;
        __m512d al1 = al0, ah1 = al0, ql1 = al0, qh1 = al0;
        const float *p = x + j;
        size_t r = 0;
        for (; r + 2 <= nrows; r += 2, p += 2 * ld) {
            const __m512d l0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(ml, p)), kl);
            const __m512d h0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(mh, p + 8)), kh);
            const __m512d l1 =
                _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(ml, p + ld)), kl);
            const __m512d h1 =
                _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(mh, p + ld + 8)), kh);
            al0 = _mm512_add_pd(al0, l0);
            ah0 = _mm512_add_pd(ah0, h0);
            al1 = _mm512_add_pd(al1, l1);
            ah1 = _mm512_add_pd(ah1, h1);
            ql0 = _mm512_fmadd_pd(l0, l0, ql0);
            qh0 = _mm512_fmadd_pd(h0, h0, qh0);
            ql1 = _mm512_fmadd_pd(l1, l1, ql1);
            qh1 = _mm512_fmadd_pd(h1, h1, qh1);
        }
        if (r < nrows) {
            const __m512d l0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(ml, p)), kl);
            const __m512d h0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(mh, p + 8)), kh);
            al0 = _mm512_add_pd(al0, l0);
            ah0 = _mm512_add_pd(ah0, h0);
            ql0 = _mm512_fmadd_pd(l0, l0, ql0);
            qh0 = _mm512_fmadd_pd(h0, h0, qh0);
        }
        _mm512_mask_storeu_pd(s1 + j, ml, _mm512_add_pd(al0, al1));
        _mm512_mask_storeu_pd(s1 + j + 8, mh, _mm512_add_pd(ah0, ah1));
        _mm512_mask_storeu_pd(s2 + j, ml, _mm512_add_pd(ql0, ql1));
        _mm512_mask_storeu_pd(s2 + j + 8, mh, _mm512_add_pd(qh0, qh1));
    }
}

/* A full block of 64 channels, row by row: each row's 256 bytes read in one run (rather than a
 * 64-byte column at a time), in two halves of 32 channels so that the shifts and accumulators
 * stay in registers. */
static void sums_block64(const float *x, size_t nrows, size_t ld, const double *K, double *s1,
                         double *s2) {
    for (int h = 0; h < 2; h++) {
        const float *p = x + 32 * h;
        const double *k = K + 32 * h;
        __m512d kv[4], a[4], q[4];
        for (int u = 0; u < 4; u++) {
            kv[u] = _mm512_loadu_pd(k + 8 * u);
            a[u] = q[u] = _mm512_setzero_pd();
        }
        for (size_t r = 0; r < nrows; r++, p += ld)
            for (int u = 0; u < 4; u++) {
                const __m512d v = wide_sub(p + 8 * u, kv[u]);
                a[u] = _mm512_add_pd(a[u], v);
                q[u] = _mm512_fmadd_pd(v, v, q[u]);
            }
        for (int u = 0; u < 4; u++) {
            _mm512_storeu_pd(s1 + 32 * h + 8 * u, a[u]);
            _mm512_storeu_pd(s2 + 32 * h + 8 * u, q[u]);
        }
    }
}

static void k_sums_rows(const float *x, size_t nrows, size_t ld, size_t nc, const double *K,
                        double *s1, double *s2) {
    if (flat_rows(ld, nc))
        sums_flat(x, nrows * nc, nc, K, s1, s2);
    else if (nc == 64)
        sums_block64(x, nrows, ld, K, s1, s2);
    else
        sums_cols(x, nrows, ld, nc, K, s1, s2);
}

BNK_INLINE void affine_flat(float *y, const float *x, size_t len, size_t nc, const float *a,
                            const float *c, const float *b, int relu, int nt) {
    size_t i = 0;
    if (nt && (i = to_line(y, len)) > 0) {
        const __mmask16 m = mask16(i);
        _mm512_mask_storeu_ps(y, m,
                              affine(_mm512_maskz_loadu_ps(m, x), pattern16(a, nc, 0),
                                     pattern16(c, nc, 0), pattern16(b, nc, 0), relu));
    }
    /* from i on, every vector starts at an element of channel i % nc */
    const __m512 av = pattern16(a, nc, i), cv = pattern16(c, nc, i), bv = pattern16(b, nc, i);
    if (nt) {
        for (; i + 16 <= len; i += 16)
            _mm512_stream_ps(y + i, affine(_mm512_loadu_ps(x + i), av, cv, bv, relu));
    } else {
        /* 256-bit loads and stores in the long loop, as in affine_run (the pattern's halves) */
        const __m256 a8[2] = {_mm512_castps512_ps256(av), _mm512_extractf32x8_ps(av, 1)};
        const __m256 c8[2] = {_mm512_castps512_ps256(cv), _mm512_extractf32x8_ps(cv, 1)};
        const __m256 b8[2] = {_mm512_castps512_ps256(bv), _mm512_extractf32x8_ps(bv, 1)};
        for (; i + 64 <= len; i += 64)
            for (int u = 0; u < 8; u++) {
                __m256 v = _mm256_fmadd_ps(
                    a8[u & 1], _mm256_sub_ps(_mm256_loadu_ps(x + i + 8 * u), c8[u & 1]), b8[u & 1]);
                if (relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
                _mm256_storeu_ps(y + i + 8 * u, v);
            }
        for (; i + 16 <= len; i += 16)
            _mm512_storeu_ps(y + i, affine(_mm512_loadu_ps(x + i), av, cv, bv, relu));
    }
    if (i < len) {
        const __mmask16 m = mask16(len - i);
        _mm512_mask_storeu_ps(y + i, m, affine(_mm512_maskz_loadu_ps(m, x + i), av, cv, bv, relu));
    }
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
            /* ordinary stores up to the first line boundary, then whole streamed lines */
            const size_t head = to_line(y, nc);
            if (head) {
                const __mmask16 m = mask16(head);
                _mm512_mask_storeu_ps(
                    y, m,
                    affine(_mm512_maskz_loadu_ps(m, x), _mm512_maskz_loadu_ps(m, a),
                           _mm512_maskz_loadu_ps(m, c), _mm512_maskz_loadu_ps(m, b), relu));
            }
            for (j = head; j + 16 <= nc; j += 16)
                _mm512_stream_ps(y + j,
                                 affine(_mm512_loadu_ps(x + j), _mm512_loadu_ps(a + j),
                                        _mm512_loadu_ps(c + j), _mm512_loadu_ps(b + j), relu));
        } else {
            for (; j + 16 <= nc; j += 16)
                _mm512_storeu_ps(y + j,
                                 affine(_mm512_loadu_ps(x + j), _mm512_loadu_ps(a + j),
                                        _mm512_loadu_ps(c + j), _mm512_loadu_ps(b + j), relu));
        }
        if (j < nc) {
            const __mmask16 m = mask16(nc - j);
            const __m512 v =
                affine(_mm512_maskz_loadu_ps(m, x + j), _mm512_maskz_loadu_ps(m, a + j),
                       _mm512_maskz_loadu_ps(m, c + j), _mm512_maskz_loadu_ps(m, b + j), relu);
            _mm512_mask_storeu_ps(y + j, m, v);
        }
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
    for (size_t j = 0; j < nc; j += 16) {
        const __mmask16 m = mask16(nc - j);
        const __mmask8 ml = (__mmask8)m, mh = (__mmask8)(m >> 8);
        const __m512d cl = _mm512_maskz_loadu_pd(ml, ctr + j);
        const __m512d ch = _mm512_maskz_loadu_pd(mh, ctr + j + 8);
        __m512d gl = _mm512_setzero_pd(), gh = gl, xl = gl, xh = gl;
        size_t o = j;
        for (size_t r = 0; r < nrows; r++, o += ld) {
            const __m512d gvl = grad8(dy, y, o, ml), gvh = grad8(dy, y, o + 8, mh);
            const __m512d xvl =
                _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(ml, x + o)), cl);
            const __m512d xvh =
                _mm512_sub_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(mh, x + o + 8)), ch);
            gl = _mm512_add_pd(gl, gvl);
            gh = _mm512_add_pd(gh, gvh);
            xl = _mm512_fmadd_pd(gvl, xvl, xl);
            xh = _mm512_fmadd_pd(gvh, xvh, xh);
        }
        _mm512_mask_storeu_pd(sg + j, ml, gl);
        _mm512_mask_storeu_pd(sg + j + 8, mh, gh);
        _mm512_mask_storeu_pd(sgx + j, ml, xl);
        _mm512_mask_storeu_pd(sgx + j + 8, mh, xh);
    }
}

/* A full block of 64 channels, row by row, in two halves of 32 (see sums_block64). */
BNK_INLINE void gsums_block64(const float *dy, const float *x, const float *y, size_t nrows,
                              size_t ld, const double *ctr, double *sg, double *sgx) {
    for (size_t h = 0; h < 64; h += 32) {
        __m512d cv[4], g[4], gx[4];
        for (int u = 0; u < 4; u++) {
            cv[u] = _mm512_loadu_pd(ctr + h + 8 * (size_t)u);
            g[u] = gx[u] = _mm512_setzero_pd();
        }
        for (size_t r = 0, o = h; r < nrows; r++, o += ld)
            for (int u = 0; u < 4; u++) {
                const size_t i = o + 8 * (size_t)u;
                const __m512d gv = grad8(dy, y, i, 0xFF), xv = wide_sub(x + i, cv[u]);
                g[u] = _mm512_add_pd(g[u], gv);
                gx[u] = _mm512_fmadd_pd(gv, xv, gx[u]);
            }
        for (int u = 0; u < 4; u++) {
            _mm512_storeu_pd(sg + h + 8 * (size_t)u, g[u]);
            _mm512_storeu_pd(sgx + h + 8 * (size_t)u, gx[u]);
        }
    }
}

/* k_gsums_rows over a stretch of len floats without gaps (see flat_rows). */
BNK_INLINE void gsums_flat(const float *dy, const float *x, const float *y, size_t len, size_t nc,
                           const double *ctr, double *sg, double *sgx) {
    const __m512d cv[2] = {pattern8d(ctr, nc, 0), pattern8d(ctr, nc, 1)};
    __m512d g[4], gx[4];
    for (int u = 0; u < 4; u++) g[u] = gx[u] = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 32 <= len; i += 32)
        for (int u = 0; u < 4; u++) {
            const size_t o = i + 8 * (size_t)u;
            const __m512d gv = grad8(dy, y, o, 0xFF), xv = wide_sub(x + o, cv[u & 1]);
            g[u] = _mm512_add_pd(g[u], gv);
            gx[u] = _mm512_fmadd_pd(gv, xv, gx[u]);
        }
    for (; i < len; i += 8) {
        const __mmask8 m = mask8(len - i);
        const int h = (i & 8) != 0;
        const __m512d gv = grad8(dy, y, i, m);
        const __m512d xv =
            _mm512_maskz_sub_pd(m, _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + i)), cv[h]);
        g[h] = _mm512_add_pd(g[h], gv);
        gx[h] = _mm512_fmadd_pd(gv, xv, gx[h]);
    }
    fold16(_mm512_add_pd(g[0], g[2]), _mm512_add_pd(g[1], g[3]), nc, sg);
    fold16(_mm512_add_pd(gx[0], gx[2]), _mm512_add_pd(gx[1], gx[3]), nc, sgx);
}

static void k_gsums_rows(const float *dy, const float *x, const float *y, size_t nrows, size_t ld,
                         size_t nc, const double *ctr, double *sg, double *sgx) {
    if (flat_rows(ld, nc))
        y ? gsums_flat(dy, x, y, nrows * nc, nc, ctr, sg, sgx)
          : gsums_flat(dy, x, NULL, nrows * nc, nc, ctr, sg, sgx);
    else if (nc == 64)
        y ? gsums_block64(dy, x, y, nrows, ld, ctr, sg, sgx)
          : gsums_block64(dy, x, NULL, nrows, ld, ctr, sg, sgx);
    else
        y ? gsums_cols(dy, x, y, nrows, ld, nc, ctr, sg, sgx)
          : gsums_cols(dy, x, NULL, nrows, ld, nc, ctr, sg, sgx);
}

/* gout_rows over rows without gaps, as affine_flat. */
BNK_INLINE void gout_flat(float *dx, const float *dy, const float *x, const float *y, size_t len,
                          size_t nc, const float *kg, const float *kx, const float *mx,
                          const float *k0, int nt) {
    size_t i = 0;
    if (nt && (i = to_line(dx, len)) > 0) {
        const __mmask16 m = mask16(i);
        _mm512_mask_storeu_ps(dx, m,
                              gout(grad16(dy, y, 0, m), _mm512_maskz_loadu_ps(m, x),
                                   pattern16(kg, nc, 0), pattern16(kx, nc, 0), pattern16(mx, nc, 0),
                                   pattern16(k0, nc, 0)));
    }
    const size_t ph = i;
    const __m512 g = pattern16(kg, nc, ph), s = pattern16(kx, nc, ph), m = pattern16(mx, nc, ph),
                 o = pattern16(k0, nc, ph);
    if (nt) {
        for (; i + 16 <= len; i += 16)
            _mm512_stream_ps(dx + i,
                             gout(grad16(dy, y, i, 0xFFFF), _mm512_loadu_ps(x + i), g, s, m, o));
    } else {
        for (; i + 32 <= len; i += 32) {
            const __m512 v0 = gout(grad16(dy, y, i, 0xFFFF), _mm512_loadu_ps(x + i), g, s, m, o);
            const __m512 v1 =
                gout(grad16(dy, y, i + 16, 0xFFFF), _mm512_loadu_ps(x + i + 16), g, s, m, o);
            _mm512_storeu_ps(dx + i, v0);
            _mm512_storeu_ps(dx + i + 16, v1);
        }
    }
    for (; i < len; i += 16) {
        const __mmask16 t = mask16(len - i);
        _mm512_mask_storeu_ps(
            dx + i, t, gout(grad16(dy, y, i, t), _mm512_maskz_loadu_ps(t, x + i), g, s, m, o));
    }
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
            const size_t head = to_line(dx + o, nc);
            if (head) {
                const __mmask16 m = mask16(head);
                _mm512_mask_storeu_ps(
                    dx + o, m,
                    gout(grad16(dy, y, o, m), _mm512_maskz_loadu_ps(m, x + o),
                         _mm512_maskz_loadu_ps(m, kg), _mm512_maskz_loadu_ps(m, kx),
                         _mm512_maskz_loadu_ps(m, mx), _mm512_maskz_loadu_ps(m, k0)));
            }
            for (j = head; j + 16 <= nc; j += 16)
                _mm512_stream_ps(dx + o + j,
                                 gout(grad16(dy, y, o + j, 0xFFFF), _mm512_loadu_ps(x + o + j),
                                      _mm512_loadu_ps(kg + j), _mm512_loadu_ps(kx + j),
                                      _mm512_loadu_ps(mx + j), _mm512_loadu_ps(k0 + j)));
        }
        for (; j < nc; j += 16) {
            const __mmask16 m = mask16(nc - j);
            const __m512 v =
                gout(grad16(dy, y, o + j, m), _mm512_maskz_loadu_ps(m, x + o + j),
                     _mm512_maskz_loadu_ps(m, kg + j), _mm512_maskz_loadu_ps(m, kx + j),
                     _mm512_maskz_loadu_ps(m, mx + j), _mm512_maskz_loadu_ps(m, k0 + j));
            _mm512_mask_storeu_ps(dx + o + j, m, v);
        }
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

const bnk__bn_kernels bnk__bn_kernels_avx512 = {
    .name = "avx512",
    .forward_train = sw_forward_train,
    .forward_infer = sw_forward_infer,
    .backward = sw_backward,
    .moments = sw_moments,
    .train_output = sw_train_output,
    .grad_sums = sw_grad_sums,
    .grad_output = sw_grad_output,
};
