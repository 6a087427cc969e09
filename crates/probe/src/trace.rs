//! Trace estimates: exact (D products), Hutchinson and Hutch++ with their standard errors.

use burn::prelude::*;
use burn::tensor::DType;
use noisescope_models::ops::matmul;

use crate::linalg::{
    ProbeKind, inner_products, orthonormalize_rows, random_directions, row_dots, to_host,
};
use crate::operator::Operator;

/// A trace estimate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TraceEstimate {
    /// The estimate of Tr A.
    pub value: f64,
    /// Its standard error (0 for the exact trace).
    pub std_error: f64,
    /// Operator products used, in directions.
    pub matvecs: usize,
}

/// Rows `s..s + b` of the D × D identity, [b, D], built without the whole identity (which
/// is 10 GB at D = 50 890 in f32).
pub(crate) fn unit_rows(s: usize, b: usize, d: usize, device: &Device, dtype: DType) -> Tensor<2> {
    let mut v = vec![0f32; b * d];
    for i in 0..b {
        v[i * d + s + i] = 1.0;
    }
    Tensor::from_data(TensorData::new(v, [b, d]), (device, dtype))
}

/// Tr A = Σ_j e_jᵀ A e_j exactly, with D products in blocks of the operator's block size.
pub fn exact_trace(op: &impl Operator) -> TraceEstimate {
    let d = op.dim();
    let block = op.max_block().clamp(1, d.max(1));
    let mut total = 0.0;
    for s in (0..d).step_by(block) {
        let e = unit_rows(s, block.min(d - s), d, &op.device(), op.dtype());
        total += to_host(row_dots(&op.apply(&e), &e)).iter().sum::<f64>();
    }
    TraceEstimate {
        value: total,
        std_error: 0.0,
        matvecs: d,
    }
}

/// Per-probe quadratic forms z_jᵀ A z_j, [m].
fn quadratic_forms(op: &impl Operator, z: &Tensor<2>) -> Vec<f64> {
    let az = op.apply_blocked(z);
    to_host(row_dots(&az, z))
}

/// Mean and standard error; one vector's error is unknown: ∞.
fn mean_and_error(v: &[f64]) -> (f64, f64) {
    let (mean, se) = crate::stats::mean_and_se(v);
    (mean, se.unwrap_or(f64::INFINITY))
}

/// Hutchinson's estimate Tr A ≈ (1/m) Σ_j z_jᵀ A z_j with m Rademacher probes; the standard
/// error is the probes' sample standard deviation over √m.
pub fn hutchinson(op: &impl Operator, probes: usize, seed: u64) -> TraceEstimate {
    let z = random_directions(
        probes.max(1),
        op.dim(),
        ProbeKind::Rademacher,
        seed,
        &op.device(),
        op.dtype(),
    );
    let (value, std_error) = mean_and_error(&quadratic_forms(op, &z));
    TraceEstimate {
        value,
        std_error,
        matvecs: probes.max(1),
    }
}

/// Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with m products: a third sketch the top of the
/// spectrum, Q = orth(A S), whose part Tr(Qᵀ A Q) is exact; a third estimates the remainder
/// Tr((I − QQᵀ) A (I − QQᵀ)) by Hutchinson. The standard error is that of the remainder.
pub fn hutch_plus_plus(op: &impl Operator, matvecs: usize, seed: u64) -> TraceEstimate {
    let d = op.dim();
    let s = (matvecs / 3).max(1);
    let (device, dtype) = (op.device(), op.dtype());
    let sketch = random_directions(s, d, ProbeKind::Rademacher, seed, &device, dtype);
    let q = orthonormalize_rows(op.apply_blocked(&sketch));
    let top = to_host((op.apply_blocked(&q) * q.clone()).sum())[0];
    let g = random_directions(
        s,
        d,
        ProbeKind::Rademacher,
        seed.wrapping_add(1),
        &device,
        dtype,
    );
    // (I − QᵀQ) g for row vectors: g − (g Qᵀ) Q.
    let g = g.clone() - matmul(inner_products(&g, &q), false, q.clone(), false);
    let (rest, std_error) = mean_and_error(&quadratic_forms(op, &g));
    TraceEstimate {
        value: top + rest,
        std_error,
        matvecs: 2 * s + q.dims()[0],
    }
}

#[cfg(test)]
#[path = "trace_tests.rs"]
mod tests;
