//! Tests of the expected sharpness against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn expected_sharpness_is_half_delta_squared_trace_h() {
    // For small δ, E[L(θ + ν)] − L(θ) = (δ²/2) Tr H + O(δ⁴): the linear term averages out.
    let p = tanh_mse();
    let tr_h = exact_trace(&p.hessian(0.0)).value;
    let delta = 1e-2;
    let cfg = SharpnessConfig {
        delta,
        samples: 4000,
        batch: 100,
        seed: 2,
        antithetic: false,
    };
    let s = expected_sharpness(&p.net, &p.theta, &p.data, cfg);
    let want = 0.5 * delta * delta * tr_h;
    assert!(
        (s.expected - want).abs() < 4.0 * s.expected_se + 0.05 * want.abs(),
        "{s:?} vs {want}"
    );
    assert!(s.absolute > s.expected.abs(), "E|ΔL| ≥ |EΔL|");
    // The same seed gives the same perturbations.
    let again = expected_sharpness(&p.net, &p.theta, &p.data, cfg);
    assert_eq!(s, again);
    // Antithetic pairs: the same expectations from the same number of losses, and the
    // expected sharpness's error far below the plain estimator's (the linear term cancels).
    let pairs = expected_sharpness(
        &p.net,
        &p.theta,
        &p.data,
        SharpnessConfig {
            antithetic: true,
            ..cfg
        },
    );
    assert!(
        (pairs.expected - want).abs() < 4.0 * pairs.expected_se + 0.05 * want.abs(),
        "{pairs:?} vs {want}"
    );
    assert!(
        (pairs.absolute - s.absolute).abs() < 4.0 * (pairs.absolute_se + s.absolute_se),
        "{pairs:?} vs {s:?}"
    );
    assert!(
        pairs.expected_se < 0.5 * s.expected_se,
        "{pairs:?} vs {s:?}"
    );
}
