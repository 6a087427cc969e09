//! Lanczos with full reorthogonalization, for the top-k eigenpairs of a symmetric operator and
//! for the tridiagonal matrices of stochastic Lanczos quadrature.
//!
//! m steps build an orthonormal basis Q [m, D] of the Krylov space of a start vector and the
//! tridiagonal T = Q A Qᵀ; the eigenpairs (θ_i, s_i) of T give Ritz pairs (θ_i, s_iᵀ Q) with
//! residual ‖A y_i − θ_i y_i‖ = β_m |s_i[m−1]|. Every new vector is orthogonalized against the
//! whole basis twice (classical Gram-Schmidt, one [j, D] product each), which keeps the basis
//! orthogonal to rounding error and suppresses ghost eigenvalues.

use burn::prelude::*;
use burn::tensor::DType;
use noisescope_models::ops::matmul;

use crate::host_rows::{Element, HostRows};
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
    pub basis: Basis,
}

/// A Lanczos basis Q [m, D]: on the device, or as host rows (backends that compute in host
/// memory) in the run's element type.
#[derive(Debug, Clone)]
pub enum Basis {
    /// Rows of a device tensor (boxed: a tensor handle is large next to the host variants).
    Device(Box<Tensor<2>>),
    /// f32 host rows, and the device and dtype of the run.
    HostF32(HostRows<f32>, Device, DType),
    /// f64 host rows, and the device and dtype of the run.
    HostF64(HostRows<f64>, Device, DType),
}

impl Basis {
    /// S Q for S [k, m] on the host (row-major), as [k, D] on the run's device.
    ///
    /// # Shapes
    /// `s`: k·m values, [k, m] row-major (m = basis rows); returns [k, D].
    pub fn combine(&self, s: &[f64], k: usize) -> Tensor<2> {
        match self {
            Basis::Device(q) => {
                let m = q.dims()[0];
                matmul(
                    to_device(s.to_vec(), k, m, &q.device(), q.dtype()),
                    false,
                    *q.clone(),
                    false,
                )
            }
            Basis::HostF32(rows, device, dtype) => rows.combine(s, k, device, *dtype),
            Basis::HostF64(rows, device, dtype) => rows.combine(s, k, device, *dtype),
        }
    }

    /// Q itself, [m, D], on the run's device.
    ///
    /// # Shapes
    /// Returns [m, D].
    pub fn to_tensor(&self) -> Tensor<2> {
        match self {
            Basis::Device(q) => *q.clone(),
            Basis::HostF32(rows, device, dtype) => rows.to_tensor(device, *dtype),
            Basis::HostF64(rows, device, dtype) => rows.to_tensor(device, *dtype),
        }
    }
}

/// Runs up to `steps` Lanczos steps from `start` [1, D] (normalized here). Stops early when the
/// Krylov space becomes invariant (β below 1e-10 of the largest |α| seen).
///
/// On a backend that computes in host memory the basis and the Gram–Schmidt products live in
/// host loops (f32 basis, f64 sums): on ndarray the device form spent ≈ 90% of each step
/// re-assembling the basis and packing it for [1, D] × [D, j] products (240 of 290 ms per step
/// at D = 1.6 M). The two forms compute the same recurrence; a test holds them together.
///
/// # Shapes
/// `start`: [1, D] (D = `op.dim()`).
///
/// # Returns
/// A [`Tridiagonal`] of m steps, 1 ≤ m ≤ `steps`.clamp(1, D): α [m], β_1 … β_{m−1}, the last
/// residual norm β_m, and the basis Q [m, D].
pub fn lanczos_tridiagonal(op: &impl Operator, start: Tensor<2>, steps: usize) -> Tridiagonal {
    lanczos_tridiagonal_until(op, start, steps, None)
}

/// [`lanczos_tridiagonal`] that also stops once the top `k` Ritz pairs have converged:
/// β_j |s_i[j]| ≤ tol · |θ_1| for i < k (the residual ‖A y_i − θ_i y_i‖ relative to the
/// largest Ritz value). The check solves the j×j tridiagonal eigenproblem after every step,
/// O(j²) host work next to an operator product.
///
/// # Shapes
/// `start`: [1, D] (D = `op.dim()`).
///
/// # Returns
/// A [`Tridiagonal`] of m steps, 1 ≤ m ≤ `steps`.clamp(1, D): α [m], β_1 … β_{m−1}, the last
/// residual norm β_m, and the basis Q [m, D].
pub fn lanczos_tridiagonal_until(
    op: &impl Operator,
    start: Tensor<2>,
    steps: usize,
    converged: Option<Convergence>,
) -> Tridiagonal {
    if noisescope_models::Engine::of_device(&op.device(), op.dtype())
        .host()
        .is_some()
    {
        lanczos_in_host_memory(op, start, steps, converged)
    } else {
        lanczos_on_device(op, start, steps, converged)
    }
}

/// When a Lanczos run may stop before its step budget: the top `k` Ritz pairs have relative
/// residuals ≤ `tol`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Convergence {
    /// Pairs that must have converged.
    pub k: usize,
    /// Residual bound relative to |θ_1|.
    pub tol: f64,
}

impl Convergence {
    /// Whether T (diagonal `alpha`, off-diagonal `beta`) with next residual norm `b` has
    /// converged top-k Ritz pairs.
    fn reached(&self, alpha: &[f64], beta: &[f64], b: f64) -> bool {
        let m = alpha.len();
        if m < self.k.max(1) {
            return false;
        }
        let (vals, vecs) = tridiagonal_eigen(alpha, beta);
        let scale = vals.first().map_or(0.0, |v| v.abs()).max(f64::MIN_POSITIVE);
        (0..self.k.min(m)).all(|i| (b * vecs[i * m + m - 1]).abs() <= self.tol * scale)
    }
}

/// Whether the recurrence stops after step j (of m) with residual norm b.
fn stops(
    j: usize,
    m: usize,
    b: f64,
    scale: f64,
    converged: Option<Convergence>,
    alpha: &[f64],
    beta: &[f64],
) -> bool {
    j + 1 == m
        || b <= 1e-10 * scale.max(f64::MIN_POSITIVE)
        || converged.is_some_and(|c| c.reached(alpha, beta, b))
}

/// The recurrence with the basis as host rows: w = A q_j read back, α_j = wᵀq_j, classical
/// Gram–Schmidt twice against q_0 … q_j with f64 sums ([`HostRows::orthogonalize_twice`]),
/// q_{j+1} = w/β_j uploaded for the next product. The basis holds each q as the device saw it
/// (f32 rows in f32 runs), so that Q stays the basis of the products actually taken.
pub(crate) fn lanczos_in_host_memory(
    op: &impl Operator,
    start: Tensor<2>,
    steps: usize,
    converged: Option<Convergence>,
) -> Tridiagonal {
    let (device, dtype) = (op.device(), op.dtype());
    let (alpha, beta, last_beta, basis) = if dtype == DType::F32 {
        let (a, b, last, rows) = host_recurrence::<f32>(op, start, steps, converged);
        (a, b, last, Basis::HostF32(rows, device, dtype))
    } else {
        let (a, b, last, rows) = host_recurrence::<f64>(op, start, steps, converged);
        (a, b, last, Basis::HostF64(rows, device, dtype))
    };
    Tridiagonal {
        alpha,
        beta,
        last_beta,
        basis,
    }
}

/// The host recurrence in rows of T: α, β, β_m and the basis.
fn host_recurrence<T: Element>(
    op: &impl Operator,
    start: Tensor<2>,
    steps: usize,
    converged: Option<Convergence>,
) -> (Vec<f64>, Vec<f64>, f64, HostRows<T>) {
    let d = op.dim();
    let m = steps.clamp(1, d);
    let (device, dtype) = (op.device(), op.dtype());
    let mut q = to_host(start);
    let norm = q.iter().map(|x| x * x).sum::<f64>().sqrt();
    q.iter_mut().for_each(|x| *x /= norm);
    let mut rows = HostRows::<T>::new(d, m);
    let mut alpha: Vec<f64> = Vec::with_capacity(m);
    let mut beta = Vec::with_capacity(m);
    let (mut scale, mut last_beta) = (0f64, 0.0);
    for j in 0..m {
        rows.push(&q);
        let mut w = to_host(op.apply(&rows.last_to_device(&device, dtype)));
        // The first pass's coefficient on the newest row is α_j = q_jᵀ A q_j.
        let (c, norm_sq) = rows.orthogonalize_twice(&mut w);
        alpha.push(c[j]);
        scale = scale.max(alpha[j].abs());
        let b = norm_sq.sqrt();
        if stops(j, m, b, scale, converged, &alpha, &beta) {
            last_beta = b;
            break;
        }
        beta.push(b);
        w.iter_mut().for_each(|x| *x /= b);
        q = w;
    }
    (alpha, beta, last_beta, rows)
}

/// The recurrence with the basis on the device (GPUs: no transfers but α and β).
pub(crate) fn lanczos_on_device(
    op: &impl Operator,
    start: Tensor<2>,
    steps: usize,
    converged: Option<Convergence>,
) -> Tridiagonal {
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
            w = w - matmul(c, false, qs.clone(), false);
        }
        let b = to_host(w.clone().square().sum())[0].sqrt();
        if stops(j, m, b, scale, converged, &alpha, &beta) {
            last_beta = b;
            break;
        }
        beta.push(b);
        q = w / b;
    }
    Tridiagonal {
        alpha,
        beta,
        last_beta,
        basis: Basis::Device(Box::new(Tensor::cat(rows, 0))),
    }
}

/// A Lanczos start [1, D] from previous eigenvectors U [k, D] of an operator that changed
/// little: Σ_i u_i plus a random unit direction scaled to 10% of that sum's norm, so that a
/// direction that newly entered the top k is still found (a start inside an invariant
/// subspace never leaves it).
///
/// # Shapes
/// `u`: [k, D]; returns [1, D] in `u`'s dtype on its device.
pub fn warm_start(u: &Tensor<2>, seed: u64) -> Tensor<2> {
    let d = u.dims()[1];
    let z = crate::linalg::random_unit_directions(1, d, seed, &u.device(), u.dtype());
    let start = u.clone().sum_dim(0);
    let norm = crate::linalg::row_sums(start.clone().square())
        .sqrt()
        .reshape([1, 1]);
    start + z * norm * 0.1
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
    /// Stop before `steps` once the top k Ritz pairs have residuals ≤ tol · |λ_1|
    /// (0: always take `steps` steps).
    #[serde(default)]
    pub tol: f64,
}

impl LanczosConfig {
    /// k pairs with SPEC §6's default of 100 steps (at least 3k).
    pub fn top(k: usize) -> Self {
        LanczosConfig {
            k,
            steps: 100.max(3 * k),
            seed: 0,
            tol: 0.0,
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
    lanczos_from(op, start, cfg)
}

/// [`lanczos`] from a given start vector [1, D] (normalized here; `cfg.seed` unused), e.g.
/// the previous top-k eigenvectors of an operator that changed little: when the start lies
/// in an invariant subspace of dimension k, k steps span it exactly.
///
/// # Shapes
/// `start`: [1, D] (D = `op.dim()`).
///
/// # Returns
/// [`Eigenpairs`] of min(`cfg.k`, m) pairs after m steps, m ≤ max(`cfg.steps`, `cfg.k`)
/// clamped to [1, D]: the values (descending), unit eigenvectors as rows [min(k, m), D], their
/// residual norms, and m products.
pub fn lanczos_from(op: &impl Operator, start: Tensor<2>, cfg: LanczosConfig) -> Eigenpairs {
    let converged = (cfg.tol > 0.0).then_some(Convergence {
        k: cfg.k,
        tol: cfg.tol,
    });
    let t = lanczos_tridiagonal_until(op, start, cfg.steps.max(cfg.k), converged);
    let m = t.alpha.len();
    let (vals, vecs) = tridiagonal_eigen(&t.alpha, &t.beta);
    let k = cfg.k.min(m);
    let residuals = (0..k)
        .map(|i| (t.last_beta * vecs[i * m + m - 1]).abs())
        .collect();
    let vectors = t.basis.combine(&vecs[..k * m], k);
    Eigenpairs {
        values: vals[..k].to_vec(),
        vectors,
        residuals,
        matvecs: m,
    }
}

#[cfg(test)]
#[path = "lanczos_tests.rs"]
mod tests;
