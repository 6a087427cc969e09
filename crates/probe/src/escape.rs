//! The escape indicator of Zhu et al.: Tr(H Σ) against its isotropic equivalent.
//!
//! Tr(A Σ₁) = (1/N) Σ_n (g_n − ḡ)ᵀ A (g_n − ḡ) exactly, with N operator products in blocks of
//! per-sample gradients, or estimated in sample space: Tr(A Σ₁) = Tr(B) for the N×N matrix
//! B = (1/N) G_c A G_cᵀ (G_c the centred per-sample gradients as rows), so Hutchinson's
//! E_z[zᵀ B z] with Rademacher z ∈ R^N takes one product with A per probe (G_cᵀ z is a
//! weighted sum of the gradients). Tr(H Σ̄) = Tr H · Tr Σ₁ / D is what isotropic noise of the
//! same total variance would give.

use burn::prelude::*;
use noisescope_data::DeviceDataset;
use noisescope_models::Net;
use noisescope_models::ops::matmul;

use crate::covariance::GradientNoise;

use crate::linalg::{inner_products, row_dots, to_host};
use crate::operator::{Hessian, Operator, Space};
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
///
/// # Shapes
/// `op` acts on R^D (D = `net.dim()`); `theta`, `mean` (ḡ): [D]; `data.x`: [N, p]; each
/// chunk's G [c, D] with c ≤ `chunk`. Returns a host scalar.
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
    // One quadratic form per sample, summed on the host in f64: a device sum over chunk × D
    // entries and a running device total lose f32 digits as the chunk grows (the quickstart's
    // f32 value was 5.9e-4 off at chunk 50, against torch.func in f64; docs/interop.md).
    let mut total = 0.0;
    net.per_sample_gradients_chunked(theta, data, chunk, |_, g| {
        let gc = g - m.clone();
        let forms = row_dots(&op.apply_blocked(&gc), &gc);
        total += to_host(forms).iter().sum::<f64>();
    });
    total / data.n as f64
}

/// B = (1/N) G_c A G_cᵀ on R^N (G_c = G − 1ḡᵀ, [N, D]): Tr B = Tr(A Σ₁), and B's products
/// cost one product with A each.
///
/// # Shapes
/// `apply`: Z [k, N] → Z B [k, N], through V = Z G_c [k, D] and A V.
pub struct SampleSandwich<'a, A> {
    /// A, symmetric on R^D.
    pub inner: &'a A,
    /// Σ₁: the per-sample gradients G and ḡ.
    pub noise: &'a GradientNoise,
}

impl<A: Operator> Operator for SampleSandwich<'_, A> {
    fn space(&self) -> Space {
        Space {
            dim: self.noise.grads().samples(),
            device: self.inner.device(),
            dtype: self.inner.dtype(),
        }
    }

    fn apply(&self, z: &Tensor<2>) -> Tensor<2> {
        let grads = self.noise.grads();
        let n = grads.samples();
        let d = grads.dim();
        let mean = self.noise.mean().clone().reshape([1, d]);
        // Z G_c = Z G − (Z 1) ḡᵀ.
        let v = grads.combine(z) - matmul(z.clone().sum_dim(1), false, mean.clone(), false);
        let av = self.inner.apply_blocked(&v);
        // (A V) G_cᵀ = (A V) Gᵀ − (A V ḡ) 1ᵀ.
        let avg = inner_products(&av, &mean); // [k, 1]
        (grads.project(&av) - avg.repeat_dim(1, n)) / n as f64
    }

    fn max_block(&self) -> usize {
        self.inner.max_block()
    }
}

/// Tr(A Σ₁) by `cfg.trace_h_sigma`: exact with N products ([`trace_with_covariance`],
/// per-sample gradients recomputed in chunks of `cfg.chunk`), or Hutchinson / Hutch++ on
/// [`SampleSandwich`] with a standard error (probes seeded by `cfg.seed`).
///
/// # Shapes
/// `op` acts on R^D (D = `net.dim()`); `theta`: [D]; `data.x`: [N, p]; `noise`: Σ₁ of the
/// same net, θ and data.
///
/// # Returns
/// A [`TraceEstimate`]: Tr(A Σ₁), its standard error (0 when exact) and the products with A
/// used (N when exact).
pub fn trace_times_covariance(
    op: &impl Operator,
    net: &Net,
    theta: &Tensor<1>,
    data: &DeviceDataset,
    noise: &GradientNoise,
    cfg: IndicatorConfig,
) -> TraceEstimate {
    match cfg.trace_h_sigma {
        TraceMethod::Exact => TraceEstimate {
            value: trace_with_covariance(op, net, theta, data, noise.mean(), cfg.chunk),
            std_error: 0.0,
            matvecs: data.n,
        },
        method => method.trace(&SampleSandwich { inner: op, noise }, cfg.seed),
    }
}

/// Tr(HΣ), its isotropic equivalent and the pieces.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EscapeIndicator {
    /// Tr(H Σ₁).
    pub trace_h_sigma: f64,
    /// Its standard error (0 when exact).
    pub trace_h_sigma_se: f64,
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
pub struct IndicatorConfig {
    /// How Tr H is obtained.
    pub trace_h: TraceMethod,
    /// How Tr(H Σ₁) is obtained (exact: N Hessian products).
    #[serde(default = "exact")]
    pub trace_h_sigma: TraceMethod,
    /// Per-sample gradients per block of Hessian products.
    pub chunk: usize,
    /// Seed of the trace probes.
    pub seed: u64,
}

impl Default for IndicatorConfig {
    fn default() -> Self {
        IndicatorConfig {
            trace_h: TraceMethod::Exact,
            trace_h_sigma: TraceMethod::Exact,
            chunk: 50,
            seed: 0,
        }
    }
}

fn exact() -> TraceMethod {
    TraceMethod::Exact
}

/// Tr(HΣ₁) and Tr(HΣ̄) = Tr H · Tr Σ₁ / D, for the Hessian of L + (γ/2)‖θ‖², with
/// `noise` Σ₁ of the same net, θ and data.
///
/// # Shapes
/// `theta`: [D] (D = `net.dim()`); `data.x`: [N, p]; `noise`: Σ₁ of the same net, θ and data.
///
/// # Returns
/// An [`EscapeIndicator`]: Tr(H Σ₁) with its standard error, Tr H (a [`TraceEstimate`]),
/// Tr Σ₁, D, Tr(H Σ̄) and the ratio Tr(H Σ₁) / Tr(H Σ̄).
pub fn escape_indicator(
    net: &Net,
    theta: &Tensor<1>,
    data: &DeviceDataset,
    noise: &GradientNoise,
    weight_decay: f64,
    cfg: IndicatorConfig,
) -> EscapeIndicator {
    let h = Hessian {
        net,
        theta,
        data,
        weight_decay,
    };
    let h = crate::operator::Blocked::new(h.linearized(), cfg.chunk);
    let hs = trace_times_covariance(
        &h,
        net,
        theta,
        data,
        noise,
        IndicatorConfig {
            seed: cfg.seed ^ 0x5A5A,
            ..cfg
        },
    );
    let trace_h_sigma = hs.value;
    let trace_h = cfg.trace_h.trace(&h, cfg.seed);
    let trace_sigma = noise.trace();
    let dim = net.dim();
    let isotropic = trace_h.value * trace_sigma / dim as f64;
    EscapeIndicator {
        trace_h_sigma,
        trace_h_sigma_se: hs.std_error,
        trace_h,
        trace_sigma,
        dim,
        isotropic,
        ratio: trace_h_sigma / isotropic,
    }
}

#[cfg(test)]
#[path = "escape_tests.rs"]
mod tests;
