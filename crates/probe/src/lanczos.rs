//! Lanczos with full reorthogonalization, for the top-k eigenpairs of a symmetric operator and
//! for the tridiagonal matrices of stochastic Lanczos quadrature.
//!
//! m steps build an orthonormal basis Q [m, D] of the Krylov space of a start vector and the
//! tridiagonal T = Q A Qᵀ; the eigenpairs (θ_i, s_i) of T give Ritz pairs (θ_i, s_iᵀ Q) with
//! residual ‖A y_i − θ_i y_i‖ = β_m |s_i[m−1]|. Every new vector is orthogonalized against the
//! whole basis twice (classical Gram-Schmidt, one [j, D] product each), which keeps the basis
//! orthogonal to rounding error and suppresses ghost eigenvalues.

use burn::prelude::*;

use crate::linalg::{
    ProbeKind, inner_products, random_directions, to_device, to_host, tridiagonal_eigen,
};
use crate::operator::Operator;

/// The tridiagonal matrix of m Lanczos steps and its basis.
#[derive(Debug, Clone)]
pub struct Tridiagonal {
    /// Diagonal α, [m].
    pub alpha: Vec<f64>,
    /// Off-diagonal β_1 … β_{m−1}.
    pub beta: Vec<f64>,
    /// The norm β_m of the residual after the last step (0 when the Krylov space closed).
    pub last_beta: f64,
    /// The orthonormal basis Q, [m, D].
    pub basis: Tensor<2>,
}

/// Runs up to `steps` Lanczos steps from `start` [1, D] (normalized here). Stops early when the
/// Krylov space becomes invariant (β below 1e-10 of the largest |α| seen).
pub fn lanczos_tridiagonal(op: &impl Operator, start: Tensor<2>, steps: usize) -> Tridiagonal {
    let m = steps.clamp(1, op.dim());
    let norm = to_host(start.clone().square().sum())[0].sqrt();
    let mut q = start / norm;
    // The basis grows by one row per step; a block is re-assembled once per step for the
    // reorthogonalization product (O(jD), the same order as the product itself).
    let mut rows: Vec<Tensor<2>> = Vec::with_capacity(m);
    let mut alpha = Vec::with_capacity(m);
    let mut beta = Vec::with_capacity(m);
    let mut scale = 0f64;
    let mut last_beta = 0.0;
    for j in 0..m {
        rows.push(q.clone());
        let mut w = op.apply(&q);
        alpha.push(to_host(w.clone().mul(q.clone()).sum())[0]);
        scale = scale.max(alpha[j].abs());
        // Full reorthogonalization against q_0 … q_j, twice; it also removes α_j q_j and
        // β_{j−1} q_{j−1}, the three-term recurrence's own subtractions.
        let qs = Tensor::cat(rows.clone(), 0);
        for _ in 0..2 {
            let c = inner_products(&w, &qs); // [1, j+1]
            w = w - c.matmul(qs.clone());
        }
        let b = to_host(w.clone().square().sum())[0].sqrt();
        if j + 1 == m || b <= 1e-10 * scale.max(f64::MIN_POSITIVE) {
            last_beta = b;
            break;
        }
        beta.push(b);
        q = w / b;
    }
    let basis = Tensor::cat(rows, 0);
    Tridiagonal {
        alpha,
        beta,
        last_beta,
        basis,
    }
}

/// Eigenpairs of an operator: values in descending order, unit eigenvectors as rows.
#[derive(Debug, Clone)]
pub struct Eigenpairs {
    /// Eigenvalues λ_1 ≥ … ≥ λ_k.
    pub values: Vec<f64>,
    /// Unit eigenvectors as rows, [k, D].
    pub vectors: Tensor<2>,
    /// Residual norms ‖A u_i − λ_i u_i‖ (as the method estimates them).
    pub residuals: Vec<f64>,
    /// Operator products used, in directions.
    pub matvecs: usize,
}

/// Settings of [`lanczos`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanczosConfig {
    /// Eigenpairs wanted (the k largest eigenvalues, algebraically).
    pub k: usize,
    /// Lanczos steps m ≥ k (more steps, better convergence of the top pairs).
    pub steps: usize,
    /// Seed of the Gaussian start vector.
    pub seed: u64,
}

impl LanczosConfig {
    /// k pairs with SPEC §6's default of 100 steps (at least 3k).
    pub fn top(k: usize) -> Self {
        LanczosConfig {
            k,
            steps: 100.max(3 * k),
            seed: 0,
        }
    }
}

/// The top-k eigenpairs of `op` (largest algebraic eigenvalues) by Lanczos with full
/// reorthogonalization: `cfg.steps` operator products plus an [m, D] basis.
pub fn lanczos(op: &impl Operator, cfg: LanczosConfig) -> Eigenpairs {
    let start = random_directions(
        1,
        op.dim(),
        ProbeKind::Gaussian,
        cfg.seed,
        &op.device(),
        op.dtype(),
    );
    let t = lanczos_tridiagonal(op, start, cfg.steps.max(cfg.k));
    let m = t.alpha.len();
    let (vals, vecs) = tridiagonal_eigen(&t.alpha, &t.beta);
    let k = cfg.k.min(m);
    let s: Vec<f64> = vecs[..k * m].to_vec();
    let residuals = (0..k)
        .map(|i| (t.last_beta * vecs[i * m + m - 1]).abs())
        .collect();
    let s = to_device(s, k, m, &op.device(), op.dtype());
    Eigenpairs {
        values: vals[..k].to_vec(),
        vectors: s.matmul(t.basis),
        residuals,
        matvecs: m,
    }
}
