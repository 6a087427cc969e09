//! The escape indicator of Zhu et al.: Tr(H Σ) against its isotropic equivalent.
//!
//! Tr(A Σ₁) = (1/N) Σ_n (g_n − ḡ)ᵀ A (g_n − ḡ) exactly, with N operator products in blocks of
//! per-sample gradients; Tr(H Σ̄) = Tr H · Tr Σ₁ / D is what isotropic noise of the same total
//! variance would give.

use burn::prelude::*;
use noisescope_data::DeviceDataset;
use noisescope_models::Net;

use crate::covariance::GradientNoise;
use crate::linalg::to_host;
use crate::operator::{Hessian, Operator};
use crate::trace::{TraceEstimate, exact_trace, hutch_plus_plus, hutchinson};

/// How a trace is obtained.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "method", deny_unknown_fields)]
pub enum TraceMethod {
    /// D products with the unit vectors.
    Exact,
    /// Rademacher probes.
    Hutchinson {
        /// Number of probes.
        probes: usize,
    },
    /// Hutch++ with this many products.
    HutchPlusPlus {
        /// Operator products in all.
        matvecs: usize,
    },
}

impl TraceMethod {
    /// Tr A by this method.
    pub fn trace(&self, op: &impl Operator, seed: u64) -> TraceEstimate {
        match *self {
            TraceMethod::Exact => exact_trace(op),
            TraceMethod::Hutchinson { probes } => hutchinson(op, probes, seed),
            TraceMethod::HutchPlusPlus { matvecs } => hutch_plus_plus(op, matvecs, seed),
        }
    }
}

/// Tr(A Σ₁) = (1/N) Σ_n (g_n − ḡ)ᵀ A (g_n − ḡ), exact: per-sample gradients of `chunk`
/// samples at a time (recomputed, never N×D), centered by ḡ, then one block product each.
pub fn trace_with_covariance(
    op: &impl Operator,
    net: &Net,
    theta: &Tensor<1>,
    data: &DeviceDataset,
    mean: &Tensor<1>,
    chunk: usize,
) -> f64 {
    let d = net.dim();
    let m = mean.clone().reshape([1, d]);
    let mut total: Option<Tensor<1>> = None;
    net.per_sample_gradients_chunked(theta, data, chunk, |_, g| {
        let gc = g - m.clone();
        let part = (op.apply_blocked(&gc) * gc).sum();
        total = Some(match total.take() {
            Some(t) => t + part,
            None => part,
        });
    });
    to_host(total.expect("data has samples"))[0] / data.n as f64
}

/// Tr(HΣ), its isotropic equivalent and the pieces.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EscapeIndicator {
    /// Tr(H Σ₁), exact.
    pub trace_h_sigma: f64,
    /// Tr H (with its standard error when estimated).
    pub trace_h: TraceEstimate,
    /// Tr Σ₁.
    pub trace_sigma: f64,
    /// D.
    pub dim: usize,
    /// Tr(H Σ̄) = Tr H · Tr Σ₁ / D.
    pub isotropic: f64,
    /// Tr(H Σ) / Tr(H Σ̄).
    pub ratio: f64,
}

/// Settings of the escape indicator.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscapeConfig {
    /// How Tr H is obtained.
    pub trace_h: TraceMethod,
    /// Per-sample gradients per block of Hessian products.
    pub chunk: usize,
    /// Seed of the trace probes.
    pub seed: u64,
}

impl Default for EscapeConfig {
    fn default() -> Self {
        EscapeConfig {
            trace_h: TraceMethod::Exact,
            chunk: 50,
            seed: 0,
        }
    }
}

/// Tr(HΣ₁) exactly and Tr(HΣ̄) = Tr H · Tr Σ₁ / D, for the Hessian of L + (γ/2)‖θ‖², with
/// `noise` Σ₁ of the same net, θ and data.
pub fn escape_indicator(
    net: &Net,
    theta: &Tensor<1>,
    data: &DeviceDataset,
    noise: &GradientNoise,
    weight_decay: f64,
    cfg: EscapeConfig,
) -> EscapeIndicator {
    let h = Hessian {
        net,
        theta,
        data,
        weight_decay,
    };
    let h = crate::operator::Blocked {
        inner: h.linearized(),
        block: cfg.chunk.max(1),
    };
    let trace_h_sigma = trace_with_covariance(&h, net, theta, data, noise.mean(), cfg.chunk);
    let trace_h = cfg.trace_h.trace(&h, cfg.seed);
    let trace_sigma = noise.trace();
    let dim = net.dim();
    let isotropic = trace_h.value * trace_sigma / dim as f64;
    EscapeIndicator {
        trace_h_sigma,
        trace_h,
        trace_sigma,
        dim,
        isotropic,
        ratio: trace_h_sigma / isotropic,
    }
}
