//! The workloads of SPEC §6 as the anchor runs them (`docs/dev/torch-anchor-rows.md` lists
//! the anchor's rows; every `params_str` here is byte-for-byte the anchor's where a PyTorch
//! row computes the same thing). One file per workload; what they share is here.

use std::collections::HashMap;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::Distribution;
use noisescope_data::{DeviceDataset, Features, Precision, Targets};
use noisescope_models::{ActivationKind, Init, Loss, ModelSpec, Net};
use noisescope_noise::{NoiseShape, NoiseStream, Optimizer, OptimizerConfig};
use noisescope_probe::escape::trace_with_covariance;
use noisescope_probe::linalg::{
    ProbeKind, REDUCTION_CHUNK, inner_products, orthonormalize_rows, random_directions, row_dots,
    row_sums, to_device, to_host,
};
use noisescope_probe::trace::hutchinson;
use noisescope_probe::{GradientNoise, Hessian, LanczosConfig, Operator, lanczos};
use rand::SeedableRng;
use rand_distr::{Distribution as _, StandardNormal};
use serde_json::json;

use super::timing::{per_call, whole_runs};
use super::{Ctx, Recorder, ensure};

mod cnn;
mod hw;
mod w1;
mod w2;
mod w3;
mod w4;
mod w5;
mod w6;

pub use cnn::cnn;
pub use hw::hw;
pub use w1::w1;
pub use w2::w2;
pub use w3::w3;
pub use w4::w4;
pub use w5::w5;
pub use w6::w6;

const INPUTS: usize = 784;
const CLASSES: usize = 10;

/// The pool: x standard normal [n, 784], labels uniform in 0..9 (the anchor's `make_data`, with
/// ChaCha8 in place of numpy's stream).
pub fn make_data(n: usize, seed: u64) -> Features {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * INPUTS)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let labels = (0..n)
        .map(|_| rand::Rng::random_range(&mut rng, 0..CLASSES as u32))
        .collect();
    Features {
        n,
        dim: INPUTS,
        x,
        targets: Targets::Classes {
            labels,
            classes: CLASSES,
        },
    }
}

/// Samples `from..from + n` of the pool.
fn slice(pool: &Features, from: usize, n: usize) -> Features {
    let Targets::Classes { labels, classes } = &pool.targets else {
        unreachable!("the pool has class labels")
    };
    Features {
        n,
        dim: pool.dim,
        x: pool.x[from * pool.dim..(from + n) * pool.dim].to_vec(),
        targets: Targets::Classes {
            labels: labels[from..from + n].to_vec(),
            classes: *classes,
        },
    }
}

/// The step workloads' batches: samples [i·B, (i+1)·B) of the pool for i < `w1_pool_batches`,
/// on the bench device, targets shaped for `net`.
fn batch_pool(c: &Ctx, net: &Net, batch: usize) -> Vec<DeviceDataset> {
    (0..c.sizes.w1_pool_batches)
        .map(|i| {
            net.adapt(DeviceDataset::upload(
                &slice(&c.pool, i * batch, batch),
                &c.target.device,
                Precision::F32,
            ))
        })
        .collect()
}

/// D of the MLP 784–d–10.
fn params_of(d: usize) -> usize {
    INPUTS * d + d + CLASSES * d + CLASSES
}

/// FLOPs of one forward pass of 784–d–10 on n samples (the matmuls).
fn forward_flops(n: usize, d: usize) -> f64 {
    2.0 * n as f64 * (INPUTS * d + d * CLASSES) as f64
}

/// FLOPs of one gradient: forward, weight gradients, and δ through the output layer (the
/// anchor's `train_flops`).
fn gradient_flops(n: usize, d: usize) -> f64 {
    2.0 * forward_flops(n, d) + 2.0 * (n * d * CLASSES) as f64
}

/// Pearlmutter's HVP is at least a gradient and its R-pass: ≈ 2 gradients.
fn hvp_flops(n: usize, d: usize) -> f64 {
    2.0 * gradient_flops(n, d)
}

/// The anchor's two models: (a) tanh 784–2048–10 MSE, (b) ReLU 784–512–10 cross-entropy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    A,
    B,
}

impl Model {
    fn tag(self) -> &'static str {
        match self {
            Model::A => "a",
            Model::B => "b",
        }
    }

    fn width(self) -> usize {
        match self {
            Model::A => 2048,
            Model::B => 512,
        }
    }

    fn spec(self, width: usize) -> ModelSpec {
        let (activation, loss) = match self {
            Model::A => (ActivationKind::Tanh, Loss::Mse),
            Model::B => (ActivationKind::Relu, Loss::CrossEntropy),
        };
        ModelSpec::Mlp {
            widths: vec![INPUTS, width, CLASSES],
            activation,
            loss,
        }
    }

    fn arch(self, width: usize) -> String {
        match self {
            Model::A => format!("tanh 784-{width}-10 mse"),
            Model::B => format!("relu 784-{width}-10 ce"),
        }
    }
}

/// A network, θ and data on the bench's device.
struct Problem {
    model: Model,
    net: Net,
    theta: Tensor<1>,
    data: DeviceDataset,
}

impl Problem {
    fn new(c: &Ctx, model: Model, n: usize, init_seed: u64) -> Result<Self> {
        Self::on(
            c,
            model,
            model.width(),
            n,
            init_seed,
            &c.target.device,
            Precision::F32,
        )
    }

    fn on(
        c: &Ctx,
        model: Model,
        width: usize,
        n: usize,
        init_seed: u64,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        let net = model.spec(width).build(device, precision)?;
        let theta = Init::TorchDefault.tensor(&net.layout, init_seed, device, precision);
        let data = net.adapt(DeviceDataset::upload(
            &slice(&c.pool, 0, n),
            device,
            precision,
        ));
        Ok(Problem {
            model,
            net,
            theta,
            data,
        })
    }

    fn dim(&self) -> usize {
        self.net.dim()
    }

    fn hessian(&self) -> Hessian<'_> {
        Hessian {
            net: &self.net,
            theta: &self.theta,
            data: &self.data,
            weight_decay: 0.0,
        }
    }

    fn params(&self, n: usize) -> serde_json::Value {
        json!({"model": self.model.tag(), "arch": self.model.arch(self.model.width()), "N": n, "D": self.dim()})
    }
}

/// A small float as Python's repr writes it: 1e-06, 2.5e-07.
fn python_exp(v: f64) -> String {
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&diff) / norm(b).max(f64::MIN_POSITIVE)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// For the first row u of `vectors` (a unit eigenvector estimate with value λ):
/// (‖A u − λ u‖ / |λ|, uᵀ A u).
fn top_pair(op: &impl Operator, vectors: &Tensor<2>, value: f64) -> (f64, f64) {
    let u = vectors.clone().narrow(0, 0, 1);
    let au = to_host(op.apply(&u));
    let uh = to_host(u);
    let resid: Vec<f64> = au.iter().zip(&uh).map(|(a, x)| a - value * x).collect();
    (norm(&resid) / value.abs(), dot(&uh, &au))
}

/// H v in f64 on the CPU for the same net, θ (as initialized) and data: the reference a
/// device's f32 HVP is held to (the R-op itself is checked against finite differences by
/// `hvp_fd_check`; this catches a backend that computes it wrongly).
fn reference_hvp(
    c: &Ctx,
    p: &Problem,
    n: usize,
    init_seed: u64,
    v: &Tensor<2>,
) -> Result<Vec<f64>> {
    let r = Problem::on(
        c,
        p.model,
        p.model.width(),
        n,
        init_seed,
        &c.target.reference,
        Precision::F64,
    )?;
    let [k, d] = v.dims();
    let v64 = to_device(
        to_host(v.clone()),
        k,
        d,
        &c.target.reference,
        Precision::F64.dtype(),
    );
    Ok(to_host(r.net.hvp(&r.theta, &r.data, &v64)))
}

/// The top of Σ₁ from W3, for W6's low-rank noise: unit vectors [k, D], eigenvalues, Tr Σ₁.
#[derive(Clone)]
pub struct Factor {
    vectors: Tensor<2>,
    values: Vec<f64>,
    trace: f64,
}

/// W3's factors by model.
pub type Factors = HashMap<Model, Factor>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_python_does() {
        assert_eq!(python_exp(1e-6), "1e-06");
        assert_eq!(python_exp(2.5e-7), "2.5e-07");
        assert_eq!(python_exp(1e-12), "1e-12");
    }

    #[test]
    fn parameter_counts_match_the_anchor() {
        assert_eq!(params_of(2048), 1_628_170);
        assert_eq!(params_of(512), 407_050);
        assert_eq!(params_of(16), 12_730);
    }
}
