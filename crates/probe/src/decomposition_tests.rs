//! Tests of the escape decomposition against dense f64 references (`testing.rs`).

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use crate::testing::*;

#[test]
fn escape_decomposition_splits_the_norm() {
    let device = cpu();
    let delta = to_device(vec![3.0, 4.0, 12.0], 1, 3, &device, DType::F64).reshape([3]);
    let u = to_device(
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        2,
        3,
        &device,
        DType::F64,
    );
    let e = escape_decomposition(&u, &delta);
    assert_eq!(e.components, vec![9.0, 16.0]);
    assert_eq!(e.norm_sq, 169.0);
    assert!((e.fraction - 25.0 / 169.0).abs() < 1e-15);
}
