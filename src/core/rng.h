/* Explicit-state pseudo-random numbers shared by every part of libbnkit (no global RNG): the
 * caller owns a uint64_t state seeded from --seed, so every run is reproducible. */
#ifndef BNKIT_CORE_RNG_H
#define BNKIT_CORE_RNG_H

#include <math.h>
#include <stdint.h>

/* splitmix64: advances *state and returns 64 random bits. */
static inline uint64_t bnk__rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double bnk__rng_uniform(uint64_t *state) {
    return (double)(bnk__rng_next(state) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, bound) without modulo bias (Lemire's method); bound >= 1. */
static inline uint64_t bnk__rng_below(uint64_t *state, uint64_t bound) {
    __uint128_t prod = (__uint128_t)bnk__rng_next(state) * bound;
    uint64_t low = (uint64_t)prod;
    if (low < bound) {
        uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            prod = (__uint128_t)bnk__rng_next(state) * bound;
            low = (uint64_t)prod;
        }
    }
    return (uint64_t)(prod >> 64);
}

/* Standard normal (Box-Muller; one of the pair is discarded for simplicity). */
static inline double bnk__rng_normal(uint64_t *state) {
    double u1 = bnk__rng_uniform(state), u2 = bnk__rng_uniform(state);
    if (u1 < 0x1.0p-60) u1 = 0x1.0p-60;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif /* BNKIT_CORE_RNG_H */
