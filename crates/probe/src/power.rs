//! Power iteration with deflation, as in PyHessian (Yao et al. 2020): the comparison method
//! for Lanczos, and Zhu et al.'s way to the top Hessian eigenvector.

use burn::prelude::*;

use crate::lanczos::Eigenpairs;
use crate::linalg::{ProbeKind, random_directions, to_host};
use crate::operator::Operator;

/// Settings of [`power_iteration`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerConfig {
    /// Eigenpairs wanted, found one after the other (largest |λ| first).
    pub k: usize,
    /// Iterations per eigenpair at most (Zhu et al.'s code: 30; PyHessian: 100).
    pub max_iter: usize,
    /// Stop when |λ_t − λ_{t−1}| ≤ tol (|λ_{t−1}| + 1e-6) (PyHessian: 1e-3). 0 runs all
    /// iterations.
    pub tol: f64,
    /// Seed of the start vectors.
    pub seed: u64,
}

/// The k eigenpairs of largest |λ| by power iteration, each orthogonalized against those
/// already found (deflation). One operator product per iteration.
pub fn power_iteration(op: &impl Operator, cfg: PowerConfig) -> Eigenpairs {
    let d = op.dim();
    let mut found: Vec<Tensor<2>> = Vec::new();
    let mut values = Vec::new();
    let mut residuals = Vec::new();
    let mut matvecs = 0;
    for i in 0..cfg.k {
        let mut v = random_directions(
            1,
            d,
            ProbeKind::Gaussian,
            cfg.seed.wrapping_add(i as u64),
            &op.device(),
            op.dtype(),
        );
        let mut lambda = f64::NAN;
        let mut residual = f64::NAN;
        let mut unit = v.clone();
        for it in 0..cfg.max_iter.max(1) {
            v = deflate(v, &found);
            let norm = to_host(v.clone().square().sum())[0].sqrt();
            v = v / norm;
            unit = v.clone();
            let hv = op.apply(&v);
            matvecs += 1;
            let new = to_host(hv.clone().mul(v.clone()).sum())[0];
            residual = to_host((hv.clone() - v.clone() * new).square().sum())[0].sqrt();
            let converged = it > 0 && (new - lambda).abs() <= cfg.tol * (lambda.abs() + 1e-6);
            lambda = new;
            if converged {
                break;
            }
            v = hv;
        }
        values.push(lambda);
        residuals.push(residual);
        found.push(unit);
    }
    let vectors = if found.is_empty() {
        Tensor::zeros([0, d], (&op.device(), op.dtype()))
    } else {
        Tensor::cat(found, 0)
    };
    Eigenpairs {
        values,
        vectors,
        residuals,
        matvecs,
    }
}

/// v minus its components along the unit rows `found`.
fn deflate(mut v: Tensor<2>, found: &[Tensor<2>]) -> Tensor<2> {
    for u in found {
        let c = v.clone().mul(u.clone()).sum().reshape([1, 1]);
        v = v - u.clone() * c;
    }
    v
}

#[cfg(test)]
#[path = "power_tests.rs"]
mod tests;
