//! The gradient noise Σ₁ = (1/N) Gᵀ G − ḡ ḡᵀ from the factored per-sample gradients, without
//! forming N×D or D×D: trace, diagonal, top-k eigenpairs through the N×N centered Gram matrix,
//! and the minibatch scaling of SPEC §1.

use burn::prelude::*;
use noisescope_data::{DeviceDataset, Sampling};
use noisescope_models::ops::matmul;
use noisescope_models::{Net, SampleGradients};

use crate::lanczos::Eigenpairs;
use crate::linalg::{symmetric_eigen, to_device, to_host};
use crate::operator::{EmpiricalFisher, GradientCovariance};

/// The factor s with Σ_m = s Σ₁ for minibatches of m out of N samples: 1/m with replacement,
/// (N − m) / (m (N − 1)) without. An epoch-shuffling sampler draws each batch without
/// replacement.
pub fn minibatch_scale(n: usize, m: usize, sampling: Sampling) -> f64 {
    let (n, m) = (n as f64, m as f64);
    match sampling {
        Sampling::WithReplacement => 1.0 / m,
        Sampling::WithoutReplacement | Sampling::Shuffle => {
            if n <= 1.0 {
                0.0
            } else {
                (n - m) / (m * (n - 1.0))
            }
        }
    }
}

/// Σ₁ at one θ: the per-sample gradients and their mean ḡ.
#[derive(Debug, Clone)]
pub struct GradientNoise {
    grads: SampleGradients,
    mean: Tensor<1>,
}

impl GradientNoise {
    /// From factored per-sample gradients; ḡ = (1/N) Σ_n g_n.
    pub fn new(grads: SampleGradients) -> Self {
        let n = grads.samples();
        let w = Tensor::<2>::ones([1, n], (&grads.device(), grads.dtype())) / n as f64;
        let d = grads.dim();
        let mean = grads.combine(&w).reshape([d]);
        GradientNoise { grads, mean }
    }

    /// Σ₁ of `net` at θ over `data`.
    ///
    /// # Shapes
    /// `theta`: [D] (D = `net.dim()`); `data.x`: [N, p]; holds G [N, D] factored and ḡ [D].
    pub fn of(net: &Net, theta: &Tensor<1>, data: &DeviceDataset) -> Self {
        Self::new(net.sample_gradients(theta, data))
    }

    /// The per-sample gradients.
    pub fn grads(&self) -> &SampleGradients {
        &self.grads
    }

    /// ḡ, [D].
    ///
    /// # Shapes
    /// Returns [D].
    pub fn mean(&self) -> &Tensor<1> {
        &self.mean
    }

    /// Σ₁ as an operator.
    pub fn operator(&self) -> GradientCovariance<'_> {
        GradientCovariance {
            grads: &self.grads,
            mean: &self.mean,
        }
    }

    /// The empirical Fisher F = (1/N) Gᵀ G as an operator.
    pub fn fisher(&self) -> EmpiricalFisher<'_> {
        EmpiricalFisher { grads: &self.grads }
    }

    /// diag Σ₁ = (1/N) Σ_n g_n² − ḡ², [D].
    ///
    /// # Shapes
    /// Returns [D].
    pub fn diagonal(&self) -> Tensor<1> {
        let n = self.grads.samples() as f64;
        self.grads.square_sum() / n - self.mean.clone().square()
    }

    /// Tr Σ₁ = (1/N) Σ_n ‖g_n‖² − ‖ḡ‖², as a [1] tensor (no host synchronization).
    ///
    /// # Shapes
    /// Returns [1].
    pub fn trace_tensor(&self) -> Tensor<1> {
        self.diagonal().sum()
    }

    /// Tr Σ₁.
    pub fn trace(&self) -> f64 {
        to_host(self.trace_tensor())[0]
    }

    /// The top-k eigenpairs of Σ₁ (`centered`) or of F: the N×N matrix K_c = (1/N) P K P
    /// (P = I − 11ᵀ/N, K = G Gᵀ) or K/N goes to the host in f64 for a dense eigensolve; a
    /// pair (λ, w) gives the unit eigenvector u = G_cᵀ w / √(N λ) with one product on the
    /// device. Pairs with λ ≤ 0 (at most rank N − 1 for Σ₁) are dropped.
    pub fn top_k(&self, k: usize, centered: bool) -> Eigenpairs {
        let n = self.grads.samples();
        let nf = n as f64;
        let mut kmat = to_host(self.grads.gram());
        if centered {
            let rows: Vec<f64> = (0..n)
                .map(|i| kmat[i * n..(i + 1) * n].iter().sum::<f64>() / nf)
                .collect();
            let all = rows.iter().sum::<f64>() / nf;
            for i in 0..n {
                for j in 0..n {
                    kmat[i * n + j] += all - rows[i] - rows[j];
                }
            }
        }
        kmat.iter_mut().for_each(|v| *v /= nf);
        let (vals, vecs) = symmetric_eigen(&kmat, n);
        let scale = vals
            .first()
            .copied()
            .unwrap_or(0.0)
            .abs()
            .max(f64::MIN_POSITIVE);
        let keep: Vec<usize> = (0..k.min(n)).filter(|&j| vals[j] > 1e-12 * scale).collect();
        let mut w = Vec::with_capacity(keep.len() * n);
        for &j in &keep {
            let s = 1.0 / (nf * vals[j]).sqrt();
            w.extend(vecs[j * n..(j + 1) * n].iter().map(|x| x * s));
        }
        let (device, dtype) = (self.grads.device(), self.grads.dtype());
        let d = self.grads.dim();
        let wt = to_device(w, keep.len(), n, &device, dtype);
        let mut u = self.grads.combine(&wt);
        if centered {
            // G_cᵀ w = Gᵀ w − ḡ (1ᵀ w).
            let sums = wt.sum_dim(1); // [k, 1]
            u = u - matmul(sums, false, self.mean.clone().reshape([1, d]), false);
        }
        Eigenpairs {
            values: keep.iter().map(|&j| vals[j]).collect(),
            vectors: u,
            residuals: vec![0.0; keep.len()],
            matvecs: 0,
        }
    }
}

#[cfg(test)]
#[path = "covariance_tests.rs"]
mod tests;
