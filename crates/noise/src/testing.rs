//! What the noise tests share: a small net (D = 32) whose Σ₁, H and G_F are formed densely in
//! f64, and the check that the empirical covariance of 20 000 draws matches C entry by entry.
//! The tests are in `surrogate_tests.rs` and `trainer_tests.rs`.

// Dense references index matrices by (i, j).
#![allow(clippy::needless_range_loop)]

pub(crate) use burn::prelude::*;
pub(crate) use burn::tensor::DType;
pub(crate) use noisescope_data::{
    DeviceDataset, Features, MinibatchSampler, Precision, Sampling, Targets,
};
pub(crate) use noisescope_models::{ActivationKind, Init, Loss, ModelSpec, Net};
pub(crate) use noisescope_probe::linalg::{symmetric_eigen, to_host};
pub(crate) use noisescope_probe::operator::materialize;
pub(crate) use noisescope_probe::{GaussNewton, Hessian, minibatch_scale};
pub(crate) use rand::SeedableRng;
pub(crate) use rand::distr::Distribution;
pub(crate) use rand_chacha::ChaCha8Rng;
pub(crate) use rand_distr::StandardNormal;

pub(crate) use crate::*;

pub(crate) const DRAWS: usize = 20_000;

#[allow(deprecated)]
pub(crate) fn cpu() -> Device {
    Device::ndarray()
}

pub(crate) struct Small {
    pub(crate) net: Net,
    pub(crate) theta: Tensor<1>,
    pub(crate) data: DeviceDataset,
}

/// tanh MLP 3–5–2 (D = 32) with MSE on 12 samples.
pub(crate) fn small() -> Small {
    let device = cpu();
    let (n, dim, classes) = (12, 3, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x: Vec<f32> = (0..n * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let f = Features {
        n,
        dim,
        x,
        targets: Targets::Classes {
            labels: (0..n).map(|i| (i % classes) as u32).collect(),
            classes,
        },
    };
    let net = ModelSpec::Mlp {
        widths: vec![3, 5, 2],
        activation: ActivationKind::Tanh,
        loss: Loss::Mse,
    }
    .build(&device, Precision::F64)
    .unwrap();
    let theta = Init::TorchDefault.tensor(&net.layout, 2, &device, Precision::F64);
    let data = net.adapt(DeviceDataset::upload(&f, &device, Precision::F64));
    Small { net, theta, data }
}

impl Small {
    /// Per-sample gradients [N, D] and Σ₁ [D, D] on the host.
    pub(crate) fn dense_sigma(&self) -> (Vec<f64>, Vec<f64>) {
        let g = self.net.per_sample_gradients(&self.theta, &self.data);
        let [n, d] = g.dims();
        let g = to_host(g);
        let mut mean = vec![0.0; d];
        for s in 0..n {
            for i in 0..d {
                mean[i] += g[s * d + i] / n as f64;
            }
        }
        let mut sigma = vec![0.0; d * d];
        for s in 0..n {
            for i in 0..d {
                for j in 0..d {
                    sigma[i * d + j] +=
                        (g[s * d + i] - mean[i]) * (g[s * d + j] - mean[j]) / n as f64;
                }
            }
        }
        (g, sigma)
    }
}

/// Rows [S, D] → the empirical second moment (mean zero known), and a check of every entry
/// against C within 5 standard errors √((C_pp C_qq + C_pq²)/S), and of the mean.
pub(crate) fn assert_covariance(what: &str, rows: &[f64], d: usize, c: &[f64]) {
    let s = rows.len() / d;
    let mut cov = vec![0.0; d * d];
    let mut mean = vec![0.0; d];
    for r in 0..s {
        let x = &rows[r * d..(r + 1) * d];
        for p in 0..d {
            mean[p] += x[p] / s as f64;
            for q in 0..d {
                cov[p * d + q] += x[p] * x[q] / s as f64;
            }
        }
    }
    let scale = (0..d).map(|p| c[p * d + p]).fold(0f64, f64::max);
    for p in 0..d {
        let se = (c[p * d + p] / s as f64).sqrt();
        assert!(
            mean[p].abs() <= 5.0 * se + 1e-12 * scale,
            "{what}: mean[{p}] = {}",
            mean[p]
        );
        for q in 0..d {
            let se = ((c[p * d + p] * c[q * d + q] + c[p * d + q].powi(2)) / s as f64).sqrt();
            assert!(
                (cov[p * d + q] - c[p * d + q]).abs() <= 5.0 * se + 1e-12 * scale,
                "{what}: cov[{p},{q}] = {} vs {} (se {se:e})",
                cov[p * d + q],
                c[p * d + q]
            );
        }
    }
}

/// C = Σ_j λ_j u_j u_jᵀ over the first k pairs, rescaled to trace `target`.
pub(crate) fn top_k_matrix(m: &[f64], d: usize, k: usize, target: f64, positive: bool) -> Vec<f64> {
    let (vals, vecs) = symmetric_eigen(m, d);
    let keep: Vec<usize> = (0..k).filter(|&j| !positive || vals[j] > 0.0).collect();
    let total: f64 = keep.iter().map(|&j| vals[j]).sum();
    let mut c = vec![0.0; d * d];
    for &j in &keep {
        let u = &vecs[j * d..(j + 1) * d];
        for p in 0..d {
            for q in 0..d {
                c[p * d + q] += vals[j] * target / total * u[p] * u[q];
            }
        }
    }
    c
}

pub(crate) fn trace(c: &[f64], d: usize) -> f64 {
    (0..d).map(|i| c[i * d + i]).sum()
}
