//! The noise ξ ~ N(0, C) of each generalized Langevin dynamic at θ_t (SPEC §2): Σ_m from the
//! per-sample gradients (or Zhu et al.'s minibatch estimate), the surrogate's shape, and the
//! scaling of Tr C to the target.

use burn::prelude::*;
use noisescope_data::DeviceDataset;
use noisescope_models::{Factors, Net, SampleGradients};
use noisescope_probe::{
    Blocked, GradientNoise, Hessian, LanczosConfig, PowerConfig, lanczos, lanczos_from,
    minibatch_scale, power_iteration,
};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::dynamic::{
    CovarianceEstimate, Dynamic, EigenSolver, Injection, NoiseConfig, TraceTarget,
};
use crate::shape::NoiseShape;
use crate::stream::NoiseStream;

/// Why no noise could be drawn.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoiseError {
    /// hessian-k found no positive eigenvalue among its k.
    #[error(
        "step {step}: {dynamic} found no positive Hessian eigenvalue (top: {top:e}); the covariance would be empty"
    )]
    NoPositiveCurvature {
        /// The step.
        step: u64,
        /// The dynamic.
        dynamic: Dynamic,
        /// The largest eigenvalue found.
        top: f64,
    },
    /// The gradient noise vanished or is not finite, so Tr C cannot be matched.
    #[error("step {step}: Tr Σ_m = {trace} cannot be matched by {dynamic}")]
    BadTrace {
        /// The step.
        step: u64,
        /// The dynamic.
        dynamic: Dynamic,
        /// The trace found.
        trace: f64,
    },
    /// A batch size that does not fit the data.
    #[error("batch size {batch} does not fit {n} training samples")]
    Batch {
        /// m.
        batch: usize,
        /// N.
        n: usize,
    },
}

/// One draw of the noise and what its distribution was.
#[derive(Debug, Clone)]
pub struct Draw {
    /// ξ, [D]; `None` for gd, sgd and the steps without injection.
    pub xi: Option<Tensor<1>>,
    /// Tr C of the distribution ξ came from (0 without noise).
    pub trace_c: f64,
    /// Tr Σ_m at this step, when it was computed.
    pub trace_sigma_m: Option<f64>,
    /// Hessian-vector products of this step's refresh (hessian-k, hessian-top1; else 0).
    pub hvps: usize,
}

/// C at one step.
#[derive(Debug, Clone)]
// Both variants are short-lived and one per step; boxing the shape buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Covariance {
    /// C in factored form.
    Shape(NoiseShape),
    /// C = scale² G_F(θ), sampled exactly as scale · (1/√N) Σ_n J_nᵀ Λ_n^{1/2} z_n at the
    /// current θ; the scale is kept between refreshes.
    Ggn {
        /// √(Tr C / Tr G_F) at the last refresh.
        scale: f64,
        /// Tr C at the last refresh.
        trace: f64,
    },
}

impl Covariance {
    /// Tr C (for ggn: at the last refresh).
    pub fn trace(&self) -> f64 {
        match self {
            Covariance::Shape(shape) => shape.trace(),
            Covariance::Ggn { trace, .. } => *trace,
        }
    }
}

/// C for one step and the traces behind it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// C; `None` for gd, sgd and the steps without injection.
    pub covariance: Option<Covariance>,
    /// Tr C (0 without noise).
    pub trace_c: f64,
    /// Tr Σ_m when it was computed this step.
    pub trace_sigma_m: Option<f64>,
    /// Hessian-vector products of this step's refresh (hessian-k, hessian-top1; else 0).
    pub hvps: usize,
}

/// What one refresh estimated.
struct Estimate {
    covariance: Covariance,
    /// Tr Σ_m at the refresh.
    trace_sigma_m: f64,
    /// Hessian-vector products of its eigensolver (0 where none runs on H).
    hvps: usize,
}

/// The surrogate noise of one run: settings, and the covariance kept between refreshes.
#[derive(Debug, Clone)]
pub struct Surrogate {
    /// Settings.
    pub config: NoiseConfig,
    /// γ, so that the Hessian includes the weight-decay term.
    pub weight_decay: f64,
    /// The run's seed (eigensolver starts and minibatch passes derive from it and the step).
    pub seed: u64,
    /// The covariance in use, kept between refreshes.
    pub cached: Option<Covariance>,
}

impl Surrogate {
    /// A surrogate with nothing cached.
    pub fn new(config: NoiseConfig, weight_decay: f64, seed: u64) -> Self {
        Surrogate {
            config,
            weight_decay,
            seed,
            cached: None,
        }
    }

    /// Σ₁-shaped noise of `data` at θ and the factor s with Σ_m = s Σ.
    fn sigma(
        &self,
        net: &Net,
        theta: &Tensor<1>,
        data: &DeviceDataset,
        step: u64,
    ) -> Result<(GradientNoise, f64), NoiseError> {
        let m = self.config.batch;
        let n = data.n;
        if m == 0 || m > n {
            return Err(NoiseError::Batch { batch: m, n });
        }
        Ok(match self.config.estimate {
            CovarianceEstimate::Exact => (
                GradientNoise::of(net, theta, data),
                minibatch_scale(n, m, self.config.sampling),
            ),
            CovarianceEstimate::MinibatchPass => {
                let mut perm: Vec<usize> = (0..n).collect();
                perm.shuffle(&mut ChaCha8Rng::seed_from_u64(self.stream_seed(step, 1)));
                let batches = n / m;
                let rows: Vec<Tensor<2>> = (0..batches)
                    .map(|b| {
                        let part = data.gather(&perm[b * m..(b + 1) * m]);
                        let g = net.gradient(theta, &part).1;
                        g.reshape([1, net.dim()])
                    })
                    .collect();
                let grads = SampleGradients::new(vec![Factors::Materialized(Tensor::cat(rows, 0))]);
                // GradientNoise divides by the number of rows; Zhu et al. divide by rows − 1.
                let k = batches as f64;
                (
                    GradientNoise::new(grads),
                    if batches > 1 { k / (k - 1.0) } else { 0.0 },
                )
            }
        })
    }

    fn stream_seed(&self, step: u64, salt: u64) -> u64 {
        self.seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(step.wrapping_mul(0xBF58_476D_1CE4_E5B9))
            .wrapping_add(salt)
    }

    fn target(&self, trace_sigma_m: f64) -> f64 {
        match self.config.trace {
            TraceTarget::Match => trace_sigma_m,
            TraceTarget::Fixed(v) => v,
        }
    }

    /// The covariance C for step `step` at θ over the training set `data`, without drawing.
    ///
    /// # Shapes
    /// `theta`: [D] (D = `net.dim()`); `data.x`: [N, p].
    ///
    /// # Returns
    /// A [`Prepared`]: C (`None` for gd, sgd and steps without injection; a low-rank C holds its
    /// vectors as [k, D], a diagonal one its s as [D]), Tr C, and Tr Σ_m when estimated this step.
    pub fn prepare(
        &mut self,
        step: u64,
        net: &Net,
        theta: &Tensor<1>,
        data: &DeviceDataset,
    ) -> Result<Prepared, NoiseError> {
        let cfg = self.config.clone();
        let dynamic = cfg.dynamic;
        let d = net.dim();
        let none = Prepared {
            covariance: None,
            trace_c: 0.0,
            trace_sigma_m: None,
            hvps: 0,
        };
        let refresh_step = step.is_multiple_of(cfg.refresh.max(1) as u64);
        match dynamic {
            Dynamic::Gd | Dynamic::Sgd => return Ok(none),
            Dynamic::IsoConst => {
                let shape = NoiseShape::Iso {
                    std: cfg.sigma,
                    dim: d,
                };
                return Ok(Prepared {
                    trace_c: shape.trace(),
                    covariance: Some(Covariance::Shape(shape)),
                    trace_sigma_m: None,
                    hvps: 0,
                });
            }
            _ => {}
        }
        let mut trace_sigma_m = None;
        let mut hvps = 0;
        if refresh_step || self.cached.is_none() {
            let (noise, s) = self.sigma(net, theta, data, step)?;
            let e = self.estimate(step, net, theta, data, &noise, s)?;
            trace_sigma_m = Some(e.trace_sigma_m);
            hvps = e.hvps;
            self.cached = Some(e.covariance);
        }
        if cfg.inject == Injection::RefreshSteps && !refresh_step {
            return Ok(Prepared {
                trace_sigma_m,
                hvps,
                ..none
            });
        }
        let covariance = self.cached.clone().expect("estimated above");
        Ok(Prepared {
            trace_c: covariance.trace(),
            covariance: Some(covariance),
            trace_sigma_m,
            hvps,
        })
    }

    /// C at θ from Σ₁ (`noise`, with Σ_m = s Σ₁), Tr Σ_m and the Hessian-vector products the
    /// eigensolver used, for every dynamic that matches the trace.
    fn estimate(
        &self,
        step: u64,
        net: &Net,
        theta: &Tensor<1>,
        data: &DeviceDataset,
        noise: &GradientNoise,
        s: f64,
    ) -> Result<Estimate, NoiseError> {
        let dynamic = self.config.dynamic;
        let d = net.dim();
        if matches!(
            dynamic,
            Dynamic::LowRank(_) | Dynamic::Hessian(_) | Dynamic::HessianTop1
        ) {
            let tsm = s * noise.trace();
            let target = self.target(tsm);
            if !(target.is_finite() && target > 0.0) {
                return Err(NoiseError::BadTrace {
                    step,
                    dynamic,
                    trace: target,
                });
            }
            let (shape, hvps) = self.refreshed_shape(step, net, theta, data, noise, s, target)?;
            return Ok(Estimate {
                covariance: Covariance::Shape(shape),
                trace_sigma_m: tsm,
                hvps,
            });
        }
        // iso-dynamic, diag, ggn: diag Σ₁ is formed once and gives the trace too.
        let diag = noise.diagonal();
        let tsm = s * diag.clone().sum().into_scalar::<f64>();
        let target = self.target(tsm);
        if !(target.is_finite() && target >= 0.0) {
            return Err(NoiseError::BadTrace {
                step,
                dynamic,
                trace: target,
            });
        }
        let covariance = match dynamic {
            Dynamic::IsoDynamic => Covariance::Shape(NoiseShape::Iso {
                std: (target / d as f64).sqrt(),
                dim: d,
            }),
            Dynamic::Diag => {
                let diag = diag.clamp_min(0.0);
                let total = diag.clone().sum().into_scalar::<f64>();
                let c = if total > 0.0 { target / total } else { 0.0 };
                Covariance::Shape(NoiseShape::Diag {
                    std: (diag * c).sqrt(),
                })
            }
            Dynamic::Ggn => {
                let tr = net.ggn_trace(theta, data).into_scalar::<f64>();
                if !(tr.is_finite() && tr > 0.0) {
                    return Err(NoiseError::BadTrace {
                        step,
                        dynamic,
                        trace: tr,
                    });
                }
                Covariance::Ggn {
                    scale: (target / tr).sqrt(),
                    trace: target,
                }
            }
            _ => unreachable!("gd, sgd and iso-const keep no covariance"),
        };
        Ok(Estimate {
            covariance,
            trace_sigma_m: tsm,
            hvps: 0,
        })
    }

    /// The noise for step `step` at θ over the training set `data`.
    ///
    /// # Shapes
    /// `theta`: [D] (D = `net.dim()`); `data.x`: [N, p].
    ///
    /// # Returns
    /// A [`Draw`]: ξ [D] on θ's device in θ's dtype (`None` without noise), Tr C, and Tr Σ_m when
    /// estimated this step.
    pub fn draw(
        &mut self,
        step: u64,
        net: &Net,
        theta: &Tensor<1>,
        data: &DeviceDataset,
        stream: &mut NoiseStream,
    ) -> Result<Draw, NoiseError> {
        let p = self.prepare(step, net, theta, data)?;
        let (device, dtype) = (theta.device(), theta.dtype());
        let xi = p.covariance.map(|c| match c {
            Covariance::Shape(shape) => shape.sample(stream, &device, dtype),
            Covariance::Ggn { scale, .. } => {
                let z = stream.tensor(data.n, net.out_dim(), &device, dtype);
                net.ggn_sample(theta, data, z) * scale
            }
        });
        Ok(Draw {
            xi,
            trace_c: p.trace_c,
            trace_sigma_m: p.trace_sigma_m,
            hvps: p.hvps,
        })
    }

    /// The covariance of lowrank-k, hessian-k or hessian-top1 at θ, and the Hessian-vector
    /// products its eigensolver used (0 for lowrank-k).
    #[allow(clippy::too_many_arguments)]
    fn refreshed_shape(
        &self,
        step: u64,
        net: &Net,
        theta: &Tensor<1>,
        data: &DeviceDataset,
        noise: &GradientNoise,
        s: f64,
        target: f64,
    ) -> Result<(NoiseShape, usize), NoiseError> {
        let dynamic = self.config.dynamic;
        let pairs = match dynamic {
            Dynamic::LowRank(k) => {
                let top = noise.top_k(k, true);
                let values: Vec<f64> = top.values.iter().map(|l| l * s).collect();
                let total: f64 = values.iter().sum();
                let c = if self.config.rescale && total > 0.0 {
                    target / total
                } else {
                    1.0
                };
                return Ok((
                    NoiseShape::LowRank {
                        vectors: top.vectors,
                        std: values.iter().map(|l| (l * c).sqrt()).collect(),
                    },
                    0,
                ));
            }
            Dynamic::Hessian(k) => self.hessian_pairs(step, net, theta, data, k),
            Dynamic::HessianTop1 => self.hessian_pairs(step, net, theta, data, 1),
            _ => unreachable!("only refreshed dynamics"),
        };
        let keep: Vec<usize> = (0..pairs.values.len())
            .filter(|&j| pairs.values[j] > 0.0)
            .collect();
        if keep.is_empty() {
            return Err(NoiseError::NoPositiveCurvature {
                step,
                dynamic,
                top: pairs.values.first().copied().unwrap_or(f64::NAN),
            });
        }
        let total: f64 = keep.iter().map(|&j| pairs.values[j]).sum();
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(
                keep.iter().map(|&j| j as i64).collect::<Vec<_>>(),
                [keep.len()],
            ),
            &theta.device(),
        );
        let std = if dynamic == Dynamic::HessianTop1 {
            vec![target.sqrt()]
        } else {
            keep.iter()
                .map(|&j| (pairs.values[j] * target / total).sqrt())
                .collect()
        };
        Ok((
            NoiseShape::LowRank {
                vectors: pairs.vectors.select(0, idx),
                std,
            },
            pairs.matvecs,
        ))
    }

    fn hessian_pairs(
        &self,
        step: u64,
        net: &Net,
        theta: &Tensor<1>,
        data: &DeviceDataset,
        k: usize,
    ) -> noisescope_probe::Eigenpairs {
        let h = Blocked::new(
            Hessian {
                net,
                theta,
                data,
                weight_decay: self.weight_decay,
            }
            .linearized(),
            32,
        );
        let seed = self.stream_seed(step, 2);
        match self.config.eigensolver {
            EigenSolver::Lanczos {
                steps,
                tol,
                warm_start,
            } => {
                let cfg = LanczosConfig {
                    k,
                    steps: steps.max(k).max(2 * k),
                    seed,
                    tol,
                };
                match (&self.cached, warm_start) {
                    (Some(Covariance::Shape(NoiseShape::LowRank { vectors, .. })), true)
                        if vectors.dims()[1] == net.dim() =>
                    {
                        lanczos_from(&h, noisescope_probe::warm_start(vectors, seed), cfg)
                    }
                    _ => lanczos(&h, cfg),
                }
            }
            EigenSolver::Power { iterations } => power_iteration(
                &h,
                PowerConfig {
                    k,
                    max_iter: iterations,
                    tol: 0.0,
                    seed,
                },
            ),
        }
    }
}

#[cfg(test)]
#[path = "surrogate_tests.rs"]
mod tests;
