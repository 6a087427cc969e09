//! What a run measures and how: the probes of SPEC §3 by name, how often they run, and the
//! settings of each (Lanczos steps, trace estimators, the alignment's method, the expected
//! sharpness). Read from a run config's `[probes]` table.

use serde::{Deserialize, Serialize};

use crate::escape::TraceMethod;
use crate::sharpness::SharpnessConfig;

/// Which measurements run during training, how often, and their settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Steps between probes (0: never).
    pub every: u64,
    /// The probes.
    pub list: Vec<Probe>,
    /// Hessian eigenpairs for `spectrum` and `alignment`'s directional part.
    pub top_k: usize,
    /// Lanczos steps.
    pub lanczos_steps: usize,
    /// During training, start each probe's Lanczos from the previous probe's top-k Hessian
    /// eigenvectors (their sum plus a random part of 10% of its norm) instead of a random
    /// vector. H changes little between probes, so the same steps give more accurate top-k
    /// pairs; a direction that newly enters the top k is found more slowly than from a cold
    /// start. The run's first probe, and the first after `--resume`, start cold (so a resumed
    /// run's probe values differ from an uninterrupted run's; training does not).
    pub warm_start: bool,
    /// How Tr H is obtained for `escape` (Tr(HΣ̄)).
    pub trace_h: TraceMethod,
    /// How Tr(HΣ₁) is obtained for `escape`: `exact` (N Hessian products) or an unbiased
    /// estimate with its standard error in sample space, Tr(HΣ₁) = E_z[zᵀ B z] with
    /// B = (1/N) G_c H G_cᵀ (`hutchinson` or `hutch-plus-plus`: one Hessian product each).
    pub trace_h_sigma: TraceMethod,
    /// How ‖G_F‖_F² is obtained for `alignment`.
    pub frobenius: TraceMethod,
    /// How the `alignment` probe gets Tr(Σ₁G_F) and ‖G_F‖_F²: `"products"` (N Gauss-Newton
    /// products, and ‖G_F‖_F² by `frobenius`) or `"gram"` (both exactly from Gram matrices in
    /// sample space: far cheaper on wide nets, memory (outputs · samples)²). The directional
    /// alignments follow: Σ₁ and G_F products, or projections of the per-sample factors.
    pub alignment_method: AlignmentMethod,
    /// Per-sample gradients per block of Hessian products.
    pub chunk: usize,
    /// Expected sharpness.
    pub sharpness: SharpnessConfig,
    /// Samples the probes use: the first `samples` training samples (all when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            every: 0,
            list: Vec::new(),
            top_k: 5,
            lanczos_steps: 100,
            warm_start: false,
            trace_h: TraceMethod::Hutchinson { probes: 100 },
            trace_h_sigma: TraceMethod::Exact,
            frobenius: TraceMethod::Hutchinson { probes: 100 },
            alignment_method: AlignmentMethod::Products,
            chunk: 50,
            sharpness: SharpnessConfig::default(),
            samples: None,
        }
    }
}

impl ProbeConfig {
    /// Checks the probe settings against a net of `dim` parameters; the error names the field.
    pub fn check(&self, dim: usize) -> Result<(), String> {
        if self.top_k == 0 || self.top_k > dim {
            return Err(format!(
                "probes.top_k = {}: expected 1 ≤ k ≤ D = {dim}",
                self.top_k
            ));
        }
        if self.lanczos_steps == 0 {
            return Err("probes.lanczos_steps = 0: expected at least 1 step".into());
        }
        if self.chunk == 0 {
            return Err("probes.chunk = 0: expected at least 1 direction per block".into());
        }
        for (name, m) in [
            ("trace_h", self.trace_h),
            ("trace_h_sigma", self.trace_h_sigma),
            ("frobenius", self.frobenius),
        ] {
            let count = match m {
                TraceMethod::Exact => 1,
                TraceMethod::Hutchinson { probes } => probes,
                TraceMethod::HutchPlusPlus { matvecs } => matvecs,
            };
            if count == 0 {
                return Err(format!("probes.{name}: 0 products, expected at least 1"));
            }
        }
        let s = &self.sharpness;
        if !(s.delta.is_finite() && s.delta > 0.0) {
            return Err(format!(
                "probes.sharpness.delta = {}: expected a finite δ > 0",
                s.delta
            ));
        }
        if s.samples == 0 || s.batch == 0 {
            return Err(format!(
                "probes.sharpness: samples = {}, batch = {}: expected both ≥ 1",
                s.samples, s.batch
            ));
        }
        if self.samples == Some(0) {
            return Err(
                "probes.samples = 0: expected at least 1 sample (or leave it out for all)".into(),
            );
        }
        Ok(())
    }
}

/// How the average alignment's traces are computed (see `ProbeConfig::alignment_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlignmentMethod {
    /// Gauss-Newton products in parameter space.
    Products,
    /// Gram matrices of the per-sample factors in sample space.
    Gram,
}

/// One measurement of SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    /// λ_max and the top-k Hessian eigenvalues (Lanczos).
    Spectrum,
    /// Tr(HΣ), Tr H, Tr Σ₁, Tr(HΣ̄) and their ratio.
    Escape,
    /// Expected sharpness, both definitions.
    Sharpness,
    /// Tr Σ₁ and the top-k eigenvalues of Σ₁.
    Noise,
    /// Average alignment μ(θ) and the directional alignment along the top-k Hessian
    /// eigenvectors and k random directions.
    Alignment,
    /// The spectral density (SLQ) of H.
    Density,
    /// The escape direction (Wang and Wu): how Δθ = θ_t − θ_0 splits over the top-k Hessian
    /// eigenvectors at the run's first θ (θ* in an escape experiment).
    Direction,
}

impl std::str::FromStr for Probe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Probe::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
            .map_err(|_| format!("unknown probe `{s}`: expected spectrum, escape, sharpness, noise, alignment, density or direction"))
    }
}
