//! Spectral density by stochastic Lanczos quadrature (Lin, Saad, Yang 2016; Ghorbani et al.
//! 2019; PyHessian).
//!
//! For a unit start vector z, m Lanczos steps give T = S Θ Sᵀ, and zᵀ f(A) z ≈ Σ_i τ_i f(θ_i)
//! with nodes θ_i and weights τ_i = (S_{0i})², exact for polynomials of degree ≤ 2m − 1.
//! Averaging over random z estimates (1/D) Tr f(A): the density φ(t) = (1/D) Σ_j δ(t − λ_j).

use crate::lanczos::lanczos_tridiagonal;
use crate::linalg::{ProbeKind, random_directions, tridiagonal_eigen};
use crate::operator::Operator;

/// Settings of [`slq`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlqConfig {
    /// Random start vectors (Rademacher).
    pub vectors: usize,
    /// Lanczos steps per vector.
    pub steps: usize,
    /// Seed of the first vector (vector j uses seed + j).
    pub seed: u64,
}

impl Default for SlqConfig {
    fn default() -> Self {
        SlqConfig {
            vectors: 10,
            steps: 80,
            seed: 0,
        }
    }
}

/// Quadrature nodes and weights, one set per start vector.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SpectralDensity {
    /// θ_i per vector.
    pub nodes: Vec<Vec<f64>>,
    /// τ_i per vector (each set sums to 1).
    pub weights: Vec<Vec<f64>>,
}

/// The quadrature of the spectral density of `op`: `vectors` × `steps` operator products.
pub fn slq(op: &impl Operator, cfg: SlqConfig) -> SpectralDensity {
    let mut nodes = Vec::new();
    let mut weights = Vec::new();
    for j in 0..cfg.vectors.max(1) {
        let z = random_directions(
            1,
            op.dim(),
            ProbeKind::Rademacher,
            cfg.seed.wrapping_add(j as u64),
            &op.device(),
            op.dtype(),
        );
        let t = lanczos_tridiagonal(op, z, cfg.steps);
        let m = t.alpha.len();
        let (vals, vecs) = tridiagonal_eigen(&t.alpha, &t.beta);
        weights.push((0..m).map(|i| vecs[i * m].powi(2)).collect());
        nodes.push(vals);
    }
    SpectralDensity { nodes, weights }
}

impl SpectralDensity {
    /// The p-th moment (1/D) Tr A^p: its estimate (mean over vectors) and standard error.
    pub fn moment(&self, p: i32) -> (f64, f64) {
        let per: Vec<f64> = self
            .nodes
            .iter()
            .zip(&self.weights)
            .map(|(t, w)| t.iter().zip(w).map(|(t, w)| w * t.powi(p)).sum())
            .collect();
        let (mean, se) = crate::stats::mean_and_se(&per);
        (mean, se.unwrap_or(0.0))
    }

    /// The smallest and largest node.
    pub fn range(&self) -> (f64, f64) {
        self.nodes
            .iter()
            .flatten()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &t| {
                (lo.min(t), hi.max(t))
            })
    }

    /// The density smoothed by a Gaussian of width `sigma`, on `points` grid points spanning
    /// the nodes' range ± 5σ: (t, φ(t)) with ∫ φ = 1.
    pub fn on_grid(&self, points: usize, sigma: f64) -> Vec<(f64, f64)> {
        let (lo, hi) = self.range();
        let (lo, hi) = (lo - 5.0 * sigma, hi + 5.0 * sigma);
        let points = points.max(2);
        let norm = 1.0 / (self.nodes.len() as f64 * sigma * (2.0 * std::f64::consts::PI).sqrt());
        (0..points)
            .map(|g| {
                let t = lo + (hi - lo) * g as f64 / (points - 1) as f64;
                let phi: f64 = self
                    .nodes
                    .iter()
                    .zip(&self.weights)
                    .flat_map(|(ns, ws)| ns.iter().zip(ws))
                    .map(|(n, w)| w * (-0.5 * ((t - n) / sigma).powi(2)).exp())
                    .sum();
                (t, phi * norm)
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "density_tests.rs"]
mod tests;
