//! Tests of the trace estimators against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn traces_exact_and_within_their_confidence_intervals() {
    let p = relu_ce();
    let h = p.hessian(0.0);
    let d = h.dim();
    let a = dense(&h);
    let want: f64 = (0..d).map(|i| a[i * d + i]).sum();
    let exact = exact_trace(&h);
    assert!(rel(exact.value, want) < 1e-10);
    let hutch = hutchinson(&h, 200, 4);
    assert!(
        (hutch.value - want).abs() < 4.0 * hutch.std_error,
        "{hutch:?} vs {want}"
    );
    assert!(hutch.std_error > 0.0 && hutch.std_error < want.abs());
    let pp = hutch_plus_plus(&h, 90, 4);
    assert!(
        (pp.value - want).abs() < 4.0 * pp.std_error + 1e-9,
        "{pp:?} vs {want}"
    );
    assert_eq!(pp.matvecs, 90);
    // Hutch++ deflates the top of the spectrum: its remainder varies less than plain probes.
    assert!(pp.std_error < hutch.std_error * (200.0f64 / 30.0).sqrt());
}
