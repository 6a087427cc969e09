//! Tests of the operators against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

/// A Hessian linearized once at θ gives the same products as one that recomputes the forward
/// and backward passes for each block, weight decay included.
#[test]
fn linearized_hessian_gives_the_same_products() {
    for p in [tanh_mse(), relu_ce()] {
        for gamma in [0.0, -0.05] {
            let h = p.hessian(gamma);
            let v = crate::linalg::random_directions(
                4,
                p.net.dim(),
                crate::linalg::ProbeKind::Gaussian,
                5,
                &cpu(),
                DType::F64,
            );
            let want = to_host(h.apply(&v));
            let got = to_host(h.linearized().apply(&v));
            let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
            let err = got
                .iter()
                .zip(&want)
                .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-12 * scale, "{} γ={gamma}: {err:e}", p.net.name);
        }
    }
}
