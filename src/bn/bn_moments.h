/* Merging per-channel moments (count, mean, M2 = sum of squared deviations from the mean) of two
 * disjoint sets of values with the pairwise formula of Chan, Golub and LeVeque: the merge that
 * synchronised BN (DESIGN.md §2) uses across the members of a group. Header-only so that the
 * MPI glue (src/mpi/bn_mpi.c) and the tests' in-process groups run the very same operations.
 * Not installed. */
#ifndef BNKIT_BN_MOMENTS_H
#define BNKIT_BN_MOMENTS_H

/* (na, mean_a, m2_a) <- the moments of A united with B. An empty side is exact: merging with
 * nb = 0 leaves A as it was, and merging into na = 0 copies B, bit for bit. Otherwise
 *   n = na + nb,  delta = mean_b - mean_a,
 *   mean = mean_a + delta*(nb/n),  M2 = m2_a + m2_b + delta^2*(na*nb/n),
 * which never subtracts sums of squares, so a channel whose mean is large compared with its
 * spread keeps full relative accuracy. The result depends on the order of A and B in the last
 * bits: callers that need identical results everywhere merge in one fixed order. */
static inline void bnk__bn_moments_merge(double *na, double *mean_a, double *m2_a, double nb,
                                         double mean_b, double m2_b) {
    if (nb == 0.0) return;
    if (*na == 0.0) {
        *na = nb;
        *mean_a = mean_b;
        *m2_a = m2_b;
        return;
    }
    const double n = *na + nb, delta = mean_b - *mean_a;
    *mean_a += delta * (nb / n);
    *m2_a += m2_b + delta * delta * (*na * nb / n);
    *na = n;
}

#endif /* BNKIT_BN_MOMENTS_H */
