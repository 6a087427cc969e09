//! The probes of SPEC §3 at one θ, sharing what they have in common.
//!
//! A [`Session`] holds a net at θ on a dataset with the run's weight decay γ. It builds the
//! linearized Hessian, the per-sample gradient noise Σ₁ and the top-k Hessian eigenpairs at
//! most once, when the first probe that needs them asks, and answers a list of probes with a
//! typed [`ProbeReport`]. Online probing during training, the escape experiment's λ_max(θ*)
//! and `noisescope probe` on checkpoints all go through it.

use std::cell::OnceCell;

use burn::prelude::*;
use noisescope_data::DeviceDataset;
use noisescope_models::Net;
use serde::{Deserialize, Serialize};

use crate::alignment::{
    AverageAlignment, SampleSpace, average_alignment, average_alignment_gram,
    directional_alignment, directional_alignment_gram,
};
use crate::config::{AlignmentMethod, Probe, ProbeConfig};
use crate::decomposition::escape_decomposition;
use crate::density::{SlqConfig, SpectralDensity, slq};
use crate::escape::{IndicatorConfig, escape_indicator};
use crate::linalg::random_unit_directions;
use crate::sharpness::expected_sharpness;
use crate::{
    Blocked, Eigenpairs, GaussNewton, GradientNoise, Hessian, LanczosConfig, LinearizedHessian,
    Operator, lanczos, lanczos_from, warm_start,
};

/// What the probes found at one θ. A field is present exactly when a probe that sets it ran;
/// serialized, absent fields are left out, so a metrics line lists what was measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `spectrum`, `alignment`: λ_max, the largest of the top-k Hessian eigenvalues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_max: Option<f64>,
    /// `spectrum`, `alignment`: the top-k Hessian eigenvalues, descending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hessian_top: Option<Vec<f64>>,
    /// `escape`: Tr(HΣ₁).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_h_sigma: Option<f64>,
    /// `escape`: standard error of Tr(HΣ₁) (0 or null when exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_h_sigma_se: Option<f64>,
    /// `escape`: Tr(HΣ̄) = Tr H · Tr Σ₁ / D, the isotropic noise of the same trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_h_sigma_iso: Option<f64>,
    /// `escape`: Tr(HΣ₁) / Tr(HΣ̄).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape_ratio: Option<f64>,
    /// `escape`: Tr H.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_h: Option<f64>,
    /// `escape`: standard error of Tr H.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_h_se: Option<f64>,
    /// `escape`, `noise`: Tr Σ₁.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sigma: Option<f64>,
    /// `sharpness`: E[L(θ+ν)] − L(θ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness: Option<f64>,
    /// `sharpness`: its standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_se: Option<f64>,
    /// `sharpness`: E|L(θ+ν) − L(θ)|.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_abs: Option<f64>,
    /// `sharpness`: its standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharpness_abs_se: Option<f64>,
    /// `noise`: the top-k eigenvalues of Σ₁, descending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma_top: Option<Vec<f64>>,
    /// `alignment`: μ = Tr(Σ₁G_F) / (2L ‖G_F‖_F²).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment_mu: Option<f64>,
    /// `alignment`: Tr(Σ₁G_F).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sigma_gf: Option<f64>,
    /// `alignment`: ‖G_F‖_F².
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gf_frobenius_sq: Option<f64>,
    /// `alignment`: the directional alignment along each top-k Hessian eigenvector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment_top: Option<Vec<f64>>,
    /// `alignment`: the same along k random unit directions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment_random: Option<Vec<f64>>,
    /// `direction`: the share of ‖θ − θ₀‖² in the top-k Hessian eigenvectors at θ₀.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction_sharp_fraction: Option<f64>,
    /// `direction`: the share along the top eigenvector alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction_top1_fraction: Option<f64>,
    /// `direction`: the squared components along each top-k eigenvector at θ₀.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction_components: Option<Vec<f64>>,
    /// `direction`: ‖θ − θ₀‖².
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction_norm_sq: Option<f64>,
    /// `direction`: the anchor's top-k eigenvalues at θ₀.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction_anchor_top: Option<Vec<f64>>,
    /// `density`: the Hessian's spectral density by stochastic Lanczos quadrature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub density: Option<SpectralDensity>,
}

/// The reference of the `direction` probe: θ₀ and the top-k Hessian eigenpairs there.
pub struct Anchor {
    /// θ₀.
    pub theta: Tensor<1>,
    /// Unit eigenvectors as rows, [k, D], eigenvalues descending.
    pub vectors: Tensor<2>,
    /// Their eigenvalues.
    pub values: Vec<f64>,
}

impl Anchor {
    /// The top-k Hessian eigenpairs at θ₀ by the session's Lanczos (`top_k`, `lanczos_steps`),
    /// from a random start.
    pub fn at(session: &Session) -> Self {
        let eig = session.top_hessian();
        Anchor {
            theta: session.theta.clone(),
            vectors: eig.vectors.clone(),
            values: eig.values.clone(),
        }
    }
}

/// A net at one θ on one dataset, with the run's weight decay γ and probe settings: the
/// shared pieces of the probes, each built once on first use.
pub struct Session<'a> {
    cfg: &'a ProbeConfig,
    net: &'a Net,
    theta: &'a Tensor<1>,
    data: &'a DeviceDataset,
    weight_decay: f64,
    seed: u64,
    warm: Option<&'a Tensor<2>>,
    anchor: Option<&'a Anchor>,
    hessian: OnceCell<Blocked<LinearizedHessian<'a>>>,
    noise: OnceCell<GradientNoise>,
    top: OnceCell<Eigenpairs>,
}

impl<'a> Session<'a> {
    /// A session at θ on `data` (the training set or the probe subset) with weight decay γ;
    /// `seed` drives every random start and estimator.
    pub fn new(
        cfg: &'a ProbeConfig,
        net: &'a Net,
        theta: &'a Tensor<1>,
        data: &'a DeviceDataset,
        weight_decay: f64,
        seed: u64,
    ) -> Self {
        Session {
            cfg,
            net,
            theta,
            data,
            weight_decay,
            seed,
            warm: None,
            anchor: None,
            hessian: OnceCell::new(),
            noise: OnceCell::new(),
            top: OnceCell::new(),
        }
    }

    /// Starts the top-k Lanczos from `vectors` [k, D] (a previous probe's eigenvectors, Σ_j u_j
    /// plus a random part of 10% of its norm) when `probes.warm_start` is on. The random part
    /// keeps the Krylov space from being confined to the old subspace, but a direction that
    /// newly enters the top k has ≈ 10× less weight in the start than from a cold start, so it
    /// is found more slowly. Vectors of another shape are ignored.
    pub fn warm_started(mut self, vectors: Option<&'a Tensor<2>>) -> Self {
        self.warm = vectors.filter(|_| self.cfg.warm_start);
        self
    }

    /// The `direction` probe's reference θ₀ (without one, as for a checkpoint probed on its
    /// own, that probe reports nothing).
    pub fn anchored(mut self, anchor: Option<&'a Anchor>) -> Self {
        self.anchor = anchor;
        self
    }

    /// H at θ with weight decay, linearized (one forward and backward pass, activations kept)
    /// and applied in blocks of `chunk` directions.
    pub fn hessian(&self) -> &Blocked<LinearizedHessian<'a>> {
        self.hessian.get_or_init(|| {
            Blocked::new(
                Hessian {
                    net: self.net,
                    theta: self.theta,
                    data: self.data,
                    weight_decay: self.weight_decay,
                }
                .linearized(),
                self.cfg.chunk,
            )
        })
    }

    /// The per-sample gradient noise Σ₁ at θ.
    pub fn noise(&self) -> &GradientNoise {
        self.noise
            .get_or_init(|| GradientNoise::of(self.net, self.theta, self.data))
    }

    /// The top `top_k` eigenpairs of H by Lanczos with `lanczos_steps` (at least 2k) steps.
    pub fn top_hessian(&self) -> &Eigenpairs {
        self.top.get_or_init(|| {
            let h = self.hessian();
            let lc = LanczosConfig {
                k: self.cfg.top_k,
                steps: self.cfg.lanczos_steps.max(2 * self.cfg.top_k),
                seed: self.seed,
                tol: 0.0,
            };
            match self.warm {
                Some(u) if u.dims() == [self.cfg.top_k, h.dim()] => {
                    lanczos_from(h, warm_start(u, self.seed), lc)
                }
                _ => lanczos(h, lc),
            }
        })
    }

    /// The top-k Hessian eigenvectors [k, D] when a probe computed them and their eigenvalues
    /// are finite: the next probe's warm start (non-finite pairs would poison every later one).
    pub fn warm_vectors(&self) -> Option<Tensor<2>> {
        self.top
            .get()
            .filter(|e| e.values.iter().all(|v| v.is_finite()))
            .map(|e| e.vectors.clone())
    }

    /// Runs the probes of `list` in order.
    pub fn run(&self, list: &[Probe]) -> ProbeReport {
        let mut r = ProbeReport::default();
        for p in list {
            match p {
                Probe::Spectrum => self.spectrum(&mut r),
                Probe::Escape => self.escape(&mut r),
                Probe::Sharpness => {
                    let s = expected_sharpness(self.net, self.theta, self.data, self.cfg.sharpness);
                    r.sharpness = Some(s.expected);
                    r.sharpness_se = Some(s.expected_se);
                    r.sharpness_abs = Some(s.absolute);
                    r.sharpness_abs_se = Some(s.absolute_se);
                }
                Probe::Noise => {
                    let n = self.noise();
                    r.trace_sigma = Some(n.trace());
                    r.sigma_top = Some(n.top_k(self.cfg.top_k, true).values);
                }
                Probe::Alignment => self.alignment(&mut r),
                Probe::Direction => self.direction(&mut r),
                Probe::Density => {
                    r.density = Some(slq(
                        self.hessian(),
                        SlqConfig {
                            vectors: 5,
                            steps: self.cfg.lanczos_steps.min(self.net.dim()),
                            seed: self.seed,
                        },
                    ));
                }
            }
        }
        r
    }

    fn spectrum(&self, r: &mut ProbeReport) {
        let eig = self.top_hessian();
        r.lambda_max = eig.values.first().copied();
        r.hessian_top = Some(eig.values.clone());
    }

    fn escape(&self, r: &mut ProbeReport) {
        let e = escape_indicator(
            self.net,
            self.theta,
            self.data,
            self.noise(),
            self.weight_decay,
            IndicatorConfig {
                trace_h: self.cfg.trace_h,
                trace_h_sigma: self.cfg.trace_h_sigma,
                chunk: self.cfg.chunk,
                seed: self.seed,
            },
        );
        r.trace_h_sigma = Some(e.trace_h_sigma);
        r.trace_h_sigma_se = Some(e.trace_h_sigma_se);
        r.trace_h_sigma_iso = Some(e.isotropic);
        r.escape_ratio = Some(e.ratio);
        r.trace_h = Some(e.trace_h.value);
        r.trace_h_se = Some(e.trace_h.std_error);
        r.trace_sigma = Some(e.trace_sigma);
    }

    fn alignment(&self, r: &mut ProbeReport) {
        // The directional part needs the top-k eigenvectors: the spectrum comes with it.
        self.spectrum(r);
        let (net, theta, data, cfg) = (self.net, self.theta, self.data, self.cfg);
        let n = self.noise();
        let top = &self.top_hessian().vectors;
        let random = random_unit_directions(
            cfg.top_k,
            net.dim(),
            self.seed ^ 0xA11,
            &theta.device(),
            theta.dtype(),
        );
        let (a, along_top, along_random): (AverageAlignment, _, _) = match cfg.alignment_method {
            AlignmentMethod::Products => {
                let gf = Blocked::new(GaussNewton { net, theta, data }, cfg.chunk);
                let a = average_alignment(net, theta, data, n, cfg.frobenius, cfg.chunk, self.seed);
                let top = directional_alignment(&gf, n, a.loss, top);
                let random = directional_alignment(&gf, n, a.loss, &random);
                (a, top, random)
            }
            AlignmentMethod::Gram => {
                let ggn = net.ggn_factors(theta, data);
                let space = SampleSpace::new(n, &ggn, net.loss(theta, data));
                let a = average_alignment_gram(&space);
                // One projection of the factors for both sets of directions.
                let both = Tensor::cat(vec![top.clone(), random], 0);
                let mut top = directional_alignment_gram(&space, &both);
                let random = top.split_off(top.len() - cfg.top_k);
                (a, top, random)
            }
        };
        r.alignment_mu = Some(a.mu);
        r.trace_sigma_gf = Some(a.trace_sigma_gf);
        r.gf_frobenius_sq = Some(a.gf_frobenius_sq);
        r.alignment_top = Some(along_top);
        r.alignment_random = Some(along_random);
    }

    fn direction(&self, r: &mut ProbeReport) {
        let Some(a) = self.anchor else {
            return;
        };
        let d = escape_decomposition(&a.vectors, &(self.theta.clone() - a.theta.clone()));
        r.direction_sharp_fraction = Some(d.fraction);
        r.direction_top1_fraction = Some(match d.components.first() {
            Some(c) if d.norm_sq > 0.0 => c / d.norm_sq,
            _ => 0.0,
        });
        r.direction_components = Some(d.components);
        r.direction_norm_sq = Some(d.norm_sq);
        r.direction_anchor_top = Some(a.values.clone());
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
