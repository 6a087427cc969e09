//! What the probe tests share: small problems (D ≤ 150) in f64 on the CPU and their dense
//! references (H and Σ₁ formed as D×D matrices, decomposed by a dense eigensolver). Each
//! source file's tests are in its `*_tests.rs`; they compare every probe with these.

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

pub(crate) use burn::prelude::*;
pub(crate) use burn::tensor::DType;
pub(crate) use noisescope_data::{DeviceDataset, Features, Precision, Targets};
pub(crate) use noisescope_models::{ActivationKind, Init, Loss, ModelSpec, Net};
pub(crate) use rand::SeedableRng;
pub(crate) use rand::distr::Distribution;
pub(crate) use rand_chacha::ChaCha8Rng;
pub(crate) use rand_distr::StandardNormal;

pub(crate) use crate::alignment::{
    SampleSpace, average_alignment, average_alignment_gram, directional_alignment,
    directional_alignment_gram, frobenius_sq,
};
pub(crate) use crate::decomposition::escape_decomposition;
pub(crate) use crate::density::{SlqConfig, slq};
pub(crate) use crate::escape::{
    IndicatorConfig, SampleSandwich, TraceMethod, escape_indicator, trace_times_covariance,
    trace_with_covariance,
};
pub(crate) use crate::linalg::{symmetric_eigen, to_device, to_host};
pub(crate) use crate::operator::materialize;
pub(crate) use crate::sharpness::{SharpnessConfig, expected_sharpness};
pub(crate) use crate::trace::{exact_trace, hutch_plus_plus, hutchinson};
pub(crate) use crate::*;

#[allow(deprecated)]
pub(crate) fn cpu() -> Device {
    Device::ndarray()
}

/// A small problem: net, θ (PyTorch's default init), data, all in f64 on the CPU.
pub(crate) struct Problem {
    pub(crate) net: Net,
    pub(crate) theta: Tensor<1>,
    pub(crate) data: DeviceDataset,
}

pub(crate) fn problem(
    activation: ActivationKind,
    loss: Loss,
    widths: Vec<usize>,
    n: usize,
    seed: u64,
) -> Problem {
    problem_in(Precision::F64, activation, loss, widths, n, seed)
}

pub(crate) fn problem_in(
    precision: Precision,
    activation: ActivationKind,
    loss: Loss,
    widths: Vec<usize>,
    n: usize,
    seed: u64,
) -> Problem {
    let device = cpu();
    let dim = widths[0];
    let classes = *widths.last().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let labels = (0..n).map(|i| ((i * 7 + 3) % classes) as u32).collect();
    let f = Features {
        n,
        dim,
        x,
        targets: Targets::Classes { labels, classes },
    };
    let net = ModelSpec::Mlp {
        widths,
        activation,
        loss,
    }
    .build(&device, precision)
    .unwrap();
    let theta = Init::TorchDefault.tensor(&net.layout, seed, &device, precision);
    let data = net.adapt(DeviceDataset::upload(&f, &device, precision));
    Problem { net, theta, data }
}

pub(crate) fn tanh_mse() -> Problem {
    problem(ActivationKind::Tanh, Loss::Mse, vec![6, 10, 3], 30, 1)
}

pub(crate) fn relu_ce() -> Problem {
    problem(
        ActivationKind::Relu,
        Loss::CrossEntropy,
        vec![6, 12, 4],
        40,
        2,
    )
}

impl Problem {
    pub(crate) fn hessian(&self, weight_decay: f64) -> Hessian<'_> {
        Hessian {
            net: &self.net,
            theta: &self.theta,
            data: &self.data,
            weight_decay,
        }
    }

    pub(crate) fn ggn(&self) -> GaussNewton<'_> {
        GaussNewton {
            net: &self.net,
            theta: &self.theta,
            data: &self.data,
        }
    }

    /// Σ₁ = (1/N) Gᵀ G − ḡ ḡᵀ and F = (1/N) Gᵀ G from the materialized G, on the host.
    pub(crate) fn dense_sigma_and_fisher(&self) -> (Vec<f64>, Vec<f64>) {
        let g = self.net.per_sample_gradients(&self.theta, &self.data);
        let [n, d] = g.dims();
        let g = to_host(g);
        let mut f = vec![0.0; d * d];
        let mut mean = vec![0.0; d];
        for s in 0..n {
            let row = &g[s * d..(s + 1) * d];
            for i in 0..d {
                mean[i] += row[i] / n as f64;
                for j in 0..d {
                    f[i * d + j] += row[i] * row[j] / n as f64;
                }
            }
        }
        let sigma = (0..d * d)
            .map(|ij| f[ij] - mean[ij / d] * mean[ij % d])
            .collect();
        (sigma, f)
    }
}

pub(crate) fn dense(op: &impl Operator) -> Vec<f64> {
    to_host(materialize(op))
}

pub(crate) fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// |⟨u, v⟩| for unit vectors: 1 when they span the same line.
pub(crate) fn overlap(u: &[f64], v: &[f64]) -> f64 {
    u.iter().zip(v).map(|(a, b)| a * b).sum::<f64>().abs()
}

pub(crate) fn trace_of_product(a: &[f64], b: &[f64], d: usize) -> f64 {
    (0..d)
        .flat_map(|i| (0..d).map(move |j| (i, j)))
        .map(|(i, j)| a[i * d + j] * b[j * d + i])
        .sum()
}
