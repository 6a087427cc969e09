//! The tail of SGD's stationary distribution in one dimension (SPEC §4, Ziyin et al. §6.6):
//! the paper's discrete-time estimate, the continuous-time one, and the exact Kesten–Goldie
//! index of the 1-d recursion w' = (1 − (λa/S) Z) w + (noise), Z ~ χ²_S, which both
//! estimates approximate.

/// The 1-d tail index β (P(|w| > x) ~ x^−β) at curvature a: Ziyin et al.'s discrete-time
/// β = 2S/(aλ) − S, and the continuous-time theory's 2S/(aλ) + 1.
pub fn tail_index(a: f64, lr: f64, batch: f64) -> (f64, f64) {
    let x = 2.0 * batch / (a * lr);
    (x - batch, x + 1.0)
}

/// Quadrature nodes per piece: the integrands have a kink (and for E log|M| a log
/// singularity) at Z = 1/c, so each side gets its own midpoint rule.
const NODES: usize = 40_000;

/// E[f(1 − cZ)] for Z ~ χ²_S, by the midpoint rule in t = √Z on [0, 1/√c] and beyond (the
/// midpoints never land on the kink). The χ_S density t^{S−1} e^{−t²/2} is normalised by
/// the same rule, so no Γ function is needed.
fn chi2_expectation(c: f64, batch: usize, f: impl Fn(f64) -> f64) -> f64 {
    let kink = 1.0 / c.sqrt();
    let t_max = (batch as f64).sqrt() + 14.0;
    let density = |t: f64| t.powi(batch as i32 - 1) * (-0.5 * t * t).exp();
    let (mut num, mut den) = (0.0, 0.0);
    let pieces: &[(f64, f64)] = if kink < t_max {
        &[(0.0, kink), (kink, t_max)]
    } else {
        &[(0.0, t_max)]
    };
    for &(lo, hi) in pieces {
        let h = (hi - lo) / NODES as f64;
        for i in 0..NODES {
            let t = lo + (i as f64 + 0.5) * h;
            let w = density(t) * h;
            num += w * f(1.0 - c * t * t);
            den += w;
        }
    }
    num / den
}

/// The exact tail index κ of the stationary distribution of 1-d SGD with label noise:
/// w_{t+1} − u = M_t (w_t − u) + (λ/S) Σ x ε with M = 1 − (λa/S) Z, Z ~ χ²_S, is a Kesten
/// recursion, whose stationary law has P(|w − u| > x) ~ x^−κ with E|M|^κ = 1 (Kesten 1973,
/// Goldie 1991). `None` when E log|M| ≥ 0: there is no stationary distribution.
pub fn kesten_tail_index(a: f64, lr: f64, batch: usize) -> Option<f64> {
    let c = lr * a / batch as f64;
    if c <= 0.0 {
        return None;
    }
    if chi2_expectation(c, batch, |m| m.abs().ln()) >= 0.0 {
        return None;
    }
    // h(κ) = E|M|^κ − 1 is convex with h(0) = 0 and h'(0) < 0: one positive root.
    let h = |k: f64| chi2_expectation(c, batch, |m| m.abs().powf(k)) - 1.0;
    let (mut lo, mut hi) = (1e-9, 1.0);
    while h(hi) < 0.0 {
        lo = hi;
        hi *= 2.0;
        if hi > 1e4 {
            return Some(f64::INFINITY);
        }
    }
    // Each h(κ) is a quadrature over 80 000 nodes: stop at a relative width of 1e-9 (about 30
    // halvings) rather than at machine precision.
    while hi - lo > 1e-9 * hi {
        let mid = 0.5 * (lo + hi);
        if h(mid) < 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ziyin_formulas() {
        assert_eq!(tail_index(1.0, 0.5, 2.0), (6.0, 9.0));
    }

    /// E M² = 1 − 2cS + c²S(S + 2) and E M⁴ from the χ² moments S(S+2)…(S+2j−2): where these
    /// equal 1 the index is exactly 2, resp. 4.
    #[test]
    fn kesten_index_at_even_moments() {
        for s in [1usize, 2, 5, 10] {
            let sf = s as f64;
            // κ = 2 at c = 2/(S + 2), i.e. λ = 2S/(S + 2) for a = 1; Thm. 2's variance diverges
            // there too, and Ziyin et al.'s β = 2S/(aλ) − S is exactly 2 at that point.
            let lr = 2.0 * sf / (sf + 2.0);
            let k2 = kesten_tail_index(1.0, lr, s).unwrap();
            assert!((k2 - 2.0).abs() < 1e-4, "S {s}: {k2}");
            assert!((tail_index(1.0, lr, sf).0 - 2.0).abs() < 1e-12);
            // κ = 4: solve E M⁴ = 1 for c by bisection on the polynomial.
            let m = |j: usize| (0..j).map(|i| sf + 2.0 * i as f64).product::<f64>();
            let em4 = |c: f64| {
                1.0 - 4.0 * c * m(1) + 6.0 * c * c * m(2) - 4.0 * c.powi(3) * m(3)
                    + c.powi(4) * m(4)
            };
            let (mut lo, mut hi) = (1e-6, 2.0 / (sf + 2.0));
            for _ in 0..100 {
                let mid = 0.5 * (lo + hi);
                if em4(mid) < 1.0 { lo = mid } else { hi = mid }
            }
            let c4 = 0.5 * (lo + hi);
            let k4 = kesten_tail_index(1.0, c4 * sf, s).unwrap();
            assert!((k4 - 4.0).abs() < 1e-3, "S {s}: {k4}");
        }
    }

    #[test]
    fn no_stationary_distribution_past_the_log_moment_boundary() {
        assert!(kesten_tail_index(1.0, 5.0, 1).is_none());
        // Heavier tails at larger learning rates.
        let a = kesten_tail_index(1.0, 0.2, 1).unwrap();
        let b = kesten_tail_index(1.0, 0.8, 1).unwrap();
        assert!(a > b && b > 0.0, "{a} {b}");
    }
}
