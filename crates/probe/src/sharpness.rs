//! Expected sharpness under Gaussian weight perturbations ν ~ N(0, δ² I), SPEC §3.

use burn::prelude::*;
use noisescope_data::DeviceDataset;
use noisescope_models::Net;

use crate::linalg::{ProbeKind, random_directions, to_host};

/// Settings of [`expected_sharpness`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharpnessConfig {
    /// δ, the standard deviation of each coordinate of ν (SPEC: 0.01).
    pub delta: f64,
    /// Perturbations averaged over (SPEC: 1000).
    pub samples: usize,
    /// Perturbations drawn and evaluated per batch (bounds memory: batch × D values).
    pub batch: usize,
    /// Seed of the perturbations.
    pub seed: u64,
    /// Evaluate each drawn ν as the pair ±ν (`samples` / 2 draws, `samples` losses) and
    /// average within pairs: still unbiased for both definitions (ν and −ν have the same
    /// law), and the first-order term ∇Lᵀν, which dominates the plain estimator's variance
    /// away from a minimum, cancels in the expected sharpness. The standard errors are over
    /// pairs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub antithetic: bool,
}

impl Default for SharpnessConfig {
    fn default() -> Self {
        SharpnessConfig {
            delta: 0.01,
            samples: 1000,
            batch: 50,
            seed: 0,
            antithetic: false,
        }
    }
}

/// Both definitions of expected sharpness, with standard errors over the perturbations.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sharpness {
    /// E_ν[L(θ + ν)] − L(θ) (SPEC's definition).
    pub expected: f64,
    /// Its standard error.
    pub expected_se: f64,
    /// E_ν|L(θ + ν) − L(θ)| (Zhu et al.'s released code).
    pub absolute: f64,
    /// Its standard error.
    pub absolute_se: f64,
    /// L(θ).
    pub loss: f64,
}

/// E_ν[L(θ + ν)] − L(θ) and E_ν|L(θ + ν) − L(θ)| over `cfg.samples` perturbations drawn on
/// the host (same values on every backend), `cfg.batch` at a time, one read-back per batch.
///
/// # Shapes
/// `theta`: [D] (D = `net.dim()`); `data.x`: [N, p]; each batch draws ν as [b, D] with
/// b ≤ `cfg.batch`.
///
/// # Returns
/// A [`Sharpness`]: E_ν[L(θ + ν)] − L(θ) and E_ν|L(θ + ν) − L(θ)| with their standard errors,
/// and L(θ).
pub fn expected_sharpness(
    net: &Net,
    theta: &Tensor<1>,
    data: &DeviceDataset,
    cfg: SharpnessConfig,
) -> Sharpness {
    let d = net.dim();
    let base = net.loss(theta, data);
    let batch = cfg.batch.max(1);
    let draws = if cfg.antithetic {
        cfg.samples.div_ceil(2)
    } else {
        cfg.samples
    };
    let mut diffs = Vec::with_capacity(cfg.samples);
    let mut mirrored = Vec::with_capacity(if cfg.antithetic { draws } else { 0 });
    let mut drawn = 0;
    let mut b = 0u64;
    while drawn < draws {
        let k = batch.min(draws - drawn);
        let nu = random_directions(
            k,
            d,
            ProbeKind::Gaussian,
            cfg.seed.wrapping_mul(1 << 20).wrapping_add(b),
            &theta.device(),
            theta.dtype(),
        ) * cfg.delta;
        // L(θ + sign·ν_j) − L(θ) for the block's k perturbations.
        let diffs_at = |sign: f64| -> Vec<f64> {
            let losses: Vec<Tensor<1>> = (0..k)
                .map(|j| {
                    let t = theta.clone() + nu.clone().narrow(0, j, 1).reshape([d]) * sign;
                    net.loss_tensor(&t, data)
                })
                .collect();
            to_host(Tensor::cat(losses, 0))
                .into_iter()
                .map(|l| l - base)
                .collect()
        };
        diffs.extend(diffs_at(1.0));
        if cfg.antithetic {
            mirrored.extend(diffs_at(-1.0));
        }
        drawn += k;
        b += 1;
    }
    let (plain, abs): (Vec<f64>, Vec<f64>) = if cfg.antithetic {
        diffs
            .iter()
            .zip(&mirrored)
            .map(|(a, b)| ((a + b) / 2.0, (a.abs() + b.abs()) / 2.0))
            .unzip()
    } else {
        (diffs.clone(), diffs.iter().map(|x| x.abs()).collect())
    };
    let (expected, expected_se) = mean_se(&plain);
    let (absolute, absolute_se) = mean_se(&abs);
    Sharpness {
        expected,
        expected_se,
        absolute,
        absolute_se,
        loss: base,
    }
}

/// Mean and standard error; one sample's error is 0.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let (mean, se) = crate::stats::mean_and_se(v);
    (mean, se.unwrap_or(0.0))
}

#[cfg(test)]
#[path = "sharpness_tests.rs"]
mod tests;
