//! Tests of the SLQ spectral density against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn slq_density_integrates_to_one_and_matches_the_moments() {
    let p = tanh_mse();
    let h = p.hessian(0.0);
    let d = h.dim();
    let a = dense(&h);
    let (vals, _) = symmetric_eigen(&a, d);
    let density = slq(
        &h,
        SlqConfig {
            vectors: 30,
            steps: 40,
            seed: 9,
        },
    );
    for w in &density.weights {
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-10);
    }
    let (lo, hi) = density.range();
    assert!(
        lo >= vals[d - 1] - 1e-8 && hi <= vals[0] + 1e-8,
        "nodes inside the spectrum"
    );
    let sigma = (vals[0] - vals[d - 1]) / 100.0;
    let grid = density.on_grid(4000, sigma);
    let integral: f64 = grid
        .windows(2)
        .map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0))
        .sum();
    assert!((integral - 1.0).abs() < 1e-3, "∫φ = {integral}");
    for power in 1..=3 {
        let want = vals.iter().map(|v| v.powi(power)).sum::<f64>() / d as f64;
        let (got, se) = density.moment(power);
        assert!(
            (got - want).abs() < 4.0 * se + 1e-12,
            "moment {power}: {got} ± {se} vs {want}"
        );
    }
}
