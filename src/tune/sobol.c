/* Owen-scrambled Sobol points in up to 32 dimensions, and the SOBOL sampler.
 *
 * Unscrambled Sobol: the integer coordinate of point n in dimension j is the XOR of the
 * direction numbers V_j[b] over the set bits b of n (32-bit, most significant bit first).
 * Direction numbers: dimension 1 is van der Corput (V[b] = 2^(31-b)); dimensions 2..32 use the
 * primitive polynomials and initial values m_1..m_s of Joe & Kuo's new-joe-kuo-6.21201 file
 * (S. Joe and F. Y. Kuo, "Constructing Sobol sequences with better two-dimensional
 * projections", SIAM J. Sci. Comput. 30 (2008) 2635-2654; table from
 * https://web.maths.unsw.edu.au/~fkuo/sobol/new-joe-kuo-6.21201), expanded by Bratley & Fox's
 * recurrence as in Joe & Kuo's reference code.
 *
 * Scramble: nested uniform (Owen) scrambling of each coordinate by a hash of its bits (Burley,
 * "Practical Hash-based Owen Scrambling", JCGT 9(4) 2020), with a per-dimension seed drawn from
 * the sampler's seed. In bit-reversed order, adding a seed, multiplying by an odd constant and
 * x ^= x * (even constant) each flip bit k by a function of the bits below k only — that is, of
 * the more significant digits of the coordinate — which is what an Owen scramble is. It keeps
 * the (t, m, s)-net structure: the first 2^m points still have one point per dyadic interval
 * of length 2^-m in every coordinate. */
#include <math.h>
#include <stdint.h>

#include "core/rng.h"
#include "tune/tune_internal.h"

/* Joe-Kuo new-joe-kuo-6.21201, dimensions 2..32: degree s, coefficients a, initial m_1..m_s. */
static const struct {
    int s, a;
    uint32_t m[7];
} joe_kuo[BNK__SOBOL_MAX_DIM - 1] = {
    {1, 0, {1}},
    {2, 1, {1, 3}},
    {3, 1, {1, 3, 1}},
    {3, 2, {1, 1, 1}},
    {4, 1, {1, 1, 3, 3}},
    {4, 4, {1, 3, 5, 13}},
    {5, 2, {1, 1, 5, 5, 17}},
    {5, 4, {1, 1, 5, 5, 5}},
    {5, 7, {1, 1, 7, 11, 19}},
    {5, 11, {1, 1, 5, 1, 1}},
    {5, 13, {1, 1, 1, 3, 11}},
    {5, 14, {1, 3, 5, 5, 31}},
    {6, 1, {1, 3, 3, 9, 7, 49}},
    {6, 13, {1, 1, 1, 15, 21, 21}},
    {6, 16, {1, 3, 1, 13, 27, 49}},
    {6, 19, {1, 1, 1, 15, 7, 5}},
    {6, 22, {1, 3, 1, 15, 13, 25}},
    {6, 25, {1, 1, 5, 5, 19, 61}},
    {7, 1, {1, 3, 7, 11, 23, 15, 103}},
    {7, 4, {1, 3, 7, 13, 13, 15, 69}},
    {7, 7, {1, 1, 3, 13, 7, 35, 63}},
    {7, 8, {1, 3, 5, 9, 1, 25, 53}},
    {7, 14, {1, 3, 1, 13, 9, 35, 107}},
    {7, 19, {1, 3, 1, 5, 27, 61, 31}},
    {7, 21, {1, 1, 5, 11, 19, 41, 61}},
    {7, 28, {1, 3, 5, 3, 3, 13, 69}},
    {7, 31, {1, 1, 7, 13, 1, 19, 1}},
    {7, 32, {1, 3, 7, 5, 13, 19, 59}},
    {7, 37, {1, 1, 3, 9, 25, 29, 41}},
    {7, 41, {1, 3, 5, 13, 23, 1, 55}},
    {7, 42, {1, 3, 7, 3, 13, 59, 17}},
};

/* The 32 direction numbers of dimension j (0-based): v[b] is XORed in when bit b of the index
 * is set. */
static void direction_numbers(int j, uint32_t v[32]) {
    if (j == 0) {
        for (int b = 0; b < 32; b++) v[b] = 1u << (31 - b);
        return;
    }
    const int s = joe_kuo[j - 1].s;
    const uint32_t a = (uint32_t)joe_kuo[j - 1].a;
    for (int b = 0; b < s; b++) v[b] = joe_kuo[j - 1].m[b] << (31 - b);
    for (int b = s; b < 32; b++) {
        uint32_t x = v[b - s] ^ (v[b - s] >> s);
        for (int k = 1; k < s; k++)
            if ((a >> (s - 1 - k)) & 1u) x ^= v[b - k];
        v[b] = x;
    }
}

static uint32_t reverse_bits(uint32_t x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
    x = ((x >> 8) & 0x00FF00FFu) | ((x & 0x00FF00FFu) << 8);
    return (x >> 16) | (x << 16);
}

/* Owen scramble of a 32-bit coordinate (Burley 2020, with Vegdahl's improved constants). */
static uint32_t owen_scramble(uint32_t x, uint32_t seed) {
    x = reverse_bits(x);
    x ^= x * 0x3d20adeau;
    x += seed;
    x *= (seed >> 16) | 1u;
    x ^= x * 0x05526c56u;
    x ^= x * 0x53a22864u;
    return reverse_bits(x);
}

void bnk__sobol_point(uint64_t scramble_seed, uint64_t index, int dim, double *u) {
    uint64_t rng = scramble_seed;
    for (int j = 0; j < dim && j < BNK__SOBOL_MAX_DIM; j++) {
        uint32_t v[32], x = 0;
        direction_numbers(j, v);
        /* 2^32 points per sequence; the index wraps beyond (never reached in a study). */
        const uint32_t n = (uint32_t)index;
        for (int b = 0; b < 32; b++)
            if ((n >> b) & 1u) x ^= v[b];
        const uint32_t seed = (uint32_t)(bnk__rng_next(&rng) >> 32);
        /* +0.5: the centre of the 2^-32 cell, so u is never exactly 0 or 1. */
        u[j] = ((double)owen_scramble(x, seed) + 0.5) * 0x1.0p-32;
    }
}

bnk_status bnk__sobol_suggest(const bnk_sampler_config *cfg, const bnk_space *space, int64_t number,
                              bnk_point *out) {
    double u[BNK__SOBOL_MAX_DIM];
    /* One scramble per seed (trial number 0 of the Sobol stream), shared by every trial. */
    bnk__sobol_point(bnk__trial_rng(cfg->seed, 0, BNK__STREAM_SOBOL), (uint64_t)number, space->n,
                     u);
    for (int i = 0; i < space->n; i++) {
        const bnk_param *p = &space->params[i];
        if (!bnk_space_active(space, out, i)) {
            out->v[i] = NAN;
        } else if (p->kind == BNK_PARAM_CAT) {
            int k = (int)floor(u[i] * p->nchoices);
            out->v[i] = k < p->nchoices ? k : p->nchoices - 1;
        } else {
            out->v[i] = bnk_space_from_unit(space, i, u[i]);
        }
    }
    return BNK_OK;
}
