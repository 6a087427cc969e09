//! Tests of power iteration against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn power_iteration_finds_the_largest_magnitudes() {
    let p = tanh_mse();
    let h = p.hessian(0.0);
    let d = h.dim();
    let (vals, _) = symmetric_eigen(&dense(&h), d);
    let mut by_mag = vals.clone();
    by_mag.sort_by(|a, b| b.abs().total_cmp(&a.abs()));
    let got = power_iteration(
        &h,
        PowerConfig {
            k: 2,
            max_iter: 2000,
            tol: 1e-12,
            seed: 5,
        },
    );
    for j in 0..2 {
        assert!(
            rel(got.values[j], by_mag[j]) < 1e-6,
            "λ{j}: {} vs {}",
            got.values[j],
            by_mag[j]
        );
    }
}
