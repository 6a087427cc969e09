//! One training run's state and its step: gradient (full batch, or a minibatch for `sgd`),
//! noise, update. Everything needed to continue a run bit for bit is in [`TrainerState`].

use burn::prelude::*;
use noisescope_data::{DeviceDataset, MinibatchSampler, SamplerState};
use noisescope_models::Net;

use crate::dynamic::{Apply, Dynamic, NoiseConfig};
use crate::optimizer::{Optimizer, OptimizerConfig, OptimizerState};
use crate::shape::NoiseShape;
use crate::stream::{NoiseStream, StreamState};
use crate::surrogate::{Covariance, NoiseError, Surrogate};

/// Why a step failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StepError {
    /// The loss became NaN or infinite.
    #[error(
        "step {step}: the training loss is {loss} (diverged); θ of step {step} is the last good one"
    )]
    Diverged {
        /// The step whose loss was not finite.
        step: u64,
        /// The loss.
        loss: f64,
    },
    /// The noise could not be drawn.
    #[error(transparent)]
    Noise(#[from] NoiseError),
    /// The sampler could not be set up.
    #[error("sampler: {0}")]
    Sampler(String),
    /// A saved state does not fit this run (another model, optimizer or dynamic).
    #[error("{field}: {detail}")]
    State {
        /// The part of the state that is wrong (`theta`, `optimizer.first`, `sampler`, …).
        field: &'static str,
        /// Expected against found.
        detail: String,
    },
}

fn bad_state(field: &'static str, detail: impl Into<String>) -> StepError {
    StepError::State {
        field,
        detail: detail.into(),
    }
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The step index t (θ_t → θ_{t+1}).
    pub step: u64,
    /// The loss the gradient was taken on at θ_t (the minibatch's for `sgd`).
    pub loss: f64,
    /// Tr C of the injected noise (0 without noise).
    pub trace_c: f64,
    /// Tr Σ_m when it was computed this step.
    pub trace_sigma_m: Option<f64>,
    /// Hessian-vector products of this step's refresh (hessian-k, hessian-top1; else 0).
    pub hvps: usize,
}

/// Everything that determines the rest of a run.
#[derive(Debug, Clone)]
pub struct TrainerState {
    /// Steps done.
    pub step: u64,
    /// θ.
    pub theta: Tensor<1>,
    /// The optimizer's buffers.
    pub optimizer: OptimizerState,
    /// The noise stream's position.
    pub stream: StreamState,
    /// The minibatch sampler's state (`sgd`).
    pub sampler: Option<SamplerState>,
    /// The covariance kept between refreshes.
    pub cached_noise: Option<Covariance>,
}

fn all_finite(t: &Tensor<1>) -> bool {
    noisescope_data::transfer::to_host(t.clone())
        .iter()
        .all(|v| v.is_finite())
}

/// A run: net, training data, dynamic, optimizer and random streams.
pub struct Trainer<'a> {
    net: &'a Net,
    data: &'a DeviceDataset,
    surrogate: Surrogate,
    optimizer: Optimizer,
    stream: NoiseStream,
    sampler: Option<MinibatchSampler>,
    theta: Tensor<1>,
    step: u64,
}

impl<'a> Trainer<'a> {
    /// A run from θ₀ for `total` steps; `seed` drives the noise, the batches and the
    /// eigensolver starts.
    ///
    /// # Shapes
    /// `theta`: θ₀, [D] with D = `net.dim()`; `data` is the training set, [N, p] inputs.
    pub fn new(
        net: &'a Net,
        data: &'a DeviceDataset,
        noise: NoiseConfig,
        optimizer: OptimizerConfig,
        theta: Tensor<1>,
        total: u64,
        seed: u64,
    ) -> Result<Self, StepError> {
        let sampler = if noise.dynamic == Dynamic::Sgd {
            Some(
                MinibatchSampler::new(data.n, noise.batch, noise.sampling, seed ^ 0x5A5A)
                    .map_err(|e| StepError::Sampler(e.to_string()))?,
            )
        } else {
            None
        };
        let weight_decay = optimizer.weight_decay;
        Ok(Trainer {
            net,
            data,
            surrogate: Surrogate::new(noise, weight_decay, seed),
            optimizer: Optimizer::new(optimizer, total),
            stream: NoiseStream::new(seed),
            sampler,
            theta,
            step: 0,
        })
    }

    /// Puts a saved state back after checking it against this run.
    ///
    /// # Errors
    /// [`StepError::State`] names the first part of `state` that does not fit: θ of another
    /// length or with non-finite entries, an optimizer buffer the rule needs but lacks (or has
    /// and does not use), a sampler state for a dynamic without one (or none for `sgd`), an
    /// index or permutation outside the data, or a cached covariance of another shape.
    pub fn restore(&mut self, state: TrainerState) -> Result<(), StepError> {
        self.check(&state)?;
        self.step = state.step;
        self.theta = state.theta;
        self.optimizer.state = state.optimizer;
        self.stream = NoiseStream::restore(state.stream);
        self.sampler = match state.sampler {
            Some(s) => {
                let c = &self.surrogate.config;
                Some(
                    MinibatchSampler::restore(self.data.n, c.batch, c.sampling, &s)
                        .map_err(|e| StepError::Sampler(e.to_string()))?,
                )
            }
            None => None,
        };
        self.surrogate.cached = state.cached_noise;
        Ok(())
    }

    /// Whether `state` fits this run (see [`Trainer::restore`]).
    pub fn check(&self, state: &TrainerState) -> Result<(), StepError> {
        let d = self.net.dim();
        let len = |t: &Tensor<1>| t.dims()[0];
        if len(&state.theta) != d {
            return Err(bad_state(
                "theta",
                format!(
                    "{} entries, the {} net has D = {d}",
                    len(&state.theta),
                    self.net.name
                ),
            ));
        }
        if !all_finite(&state.theta) {
            return Err(bad_state("theta", "holds NaN or infinite entries"));
        }
        let oc = &self.optimizer.config;
        let (wants_first, wants_second) = match oc.algorithm {
            crate::optimizer::Algorithm::Adam { .. } => (true, true),
            crate::optimizer::Algorithm::Sgd => (oc.momentum != 0.0, false),
        };
        // Buffers exist from the first update on; a state before any update has none.
        let started = state.optimizer.t > 0;
        for (field, buf, wanted) in [
            ("optimizer.first", &state.optimizer.first, wants_first),
            ("optimizer.second", &state.optimizer.second, wants_second),
        ] {
            match buf {
                None if wanted && started => {
                    return Err(bad_state(
                        field,
                        format!(
                            "missing, but the optimizer ({oc:?}) keeps it after {} updates",
                            state.optimizer.t
                        ),
                    ));
                }
                Some(_) if !wanted => {
                    return Err(bad_state(
                        field,
                        format!("present, but the optimizer ({oc:?}) has none"),
                    ));
                }
                Some(b) if len(b) != d => {
                    return Err(bad_state(field, format!("{} entries, D = {d}", len(b))));
                }
                Some(b) if !all_finite(b) => {
                    return Err(bad_state(field, "holds NaN or infinite entries"));
                }
                _ => {}
            }
        }
        if state.optimizer.t != state.step {
            return Err(bad_state(
                "optimizer.t",
                format!("{} updates at step {}", state.optimizer.t, state.step),
            ));
        }
        let c = &self.surrogate.config;
        match (&state.sampler, self.sampler.is_some()) {
            (None, true) => {
                return Err(bad_state(
                    "sampler",
                    format!("missing, but {} draws minibatches", c.dynamic),
                ));
            }
            (Some(_), false) => {
                return Err(bad_state(
                    "sampler",
                    format!("present, but {} draws no minibatches", c.dynamic),
                ));
            }
            (Some(s), true) => {
                let n = self.data.n;
                let mut seen = vec![false; n];
                for &i in &s.perm {
                    if i >= n || std::mem::replace(&mut seen[i], true) {
                        return Err(bad_state(
                            "sampler.perm",
                            format!("not a permutation of 0..{n} (index {i})"),
                        ));
                    }
                }
                if s.pos > n {
                    return Err(bad_state(
                        "sampler.pos",
                        format!("{} is past {n} samples", s.pos),
                    ));
                }
            }
            (None, false) => {}
        }
        let Some(cached) = &state.cached_noise else {
            return Ok(());
        };
        if !c.dynamic.refreshed() {
            return Err(bad_state(
                "noise",
                format!(
                    "a cached covariance, but {} keeps none between steps",
                    c.dynamic
                ),
            ));
        }
        let other = || {
            bad_state(
                "noise",
                format!(
                    "{} keeps another kind of covariance than the state holds",
                    c.dynamic
                ),
            )
        };
        match (c.dynamic, cached) {
            (Dynamic::IsoDynamic, Covariance::Shape(NoiseShape::Iso { std, dim })) => {
                if *dim != d || !(std.is_finite() && *std >= 0.0) {
                    return Err(bad_state(
                        "noise",
                        format!(
                            "isotropic σ = {std} over {dim} coordinates; expected a finite σ ≥ 0 over D = {d}"
                        ),
                    ));
                }
            }
            (Dynamic::Diag, Covariance::Shape(NoiseShape::Diag { std })) => {
                if len(std) != d || !all_finite(std) {
                    return Err(bad_state(
                        "noise.std",
                        format!("{} finite entries expected, of D = {d}", len(std)),
                    ));
                }
            }
            (Dynamic::Ggn, Covariance::Ggn { scale, trace }) => {
                if !(scale.is_finite() && *scale >= 0.0 && trace.is_finite() && *trace >= 0.0) {
                    return Err(bad_state(
                        "noise",
                        format!("ggn scale {scale} and Tr C {trace}: expected finite values ≥ 0"),
                    ));
                }
            }
            (
                Dynamic::LowRank(_) | Dynamic::Hessian(_) | Dynamic::HessianTop1,
                Covariance::Shape(NoiseShape::LowRank { vectors, std }),
            ) => {
                let [k, dd] = vectors.dims();
                let most = match c.dynamic {
                    Dynamic::LowRank(k) | Dynamic::Hessian(k) => k,
                    _ => 1,
                };
                if dd != d || k != std.len() || k > most {
                    return Err(bad_state(
                        "noise.vectors",
                        format!(
                            "[{k}, {dd}] with {} scales; {} keeps at most {most} rows of D = {d}",
                            std.len(),
                            c.dynamic
                        ),
                    ));
                }
                if std.iter().any(|s| !s.is_finite())
                    || !all_finite(&vectors.clone().reshape([k * dd]))
                {
                    return Err(bad_state("noise.vectors", "holds NaN or infinite entries"));
                }
            }
            _ => return Err(other()),
        }
        Ok(())
    }

    /// The state after the steps done so far.
    pub fn state(&self) -> TrainerState {
        TrainerState {
            step: self.step,
            theta: self.theta.clone(),
            optimizer: self.optimizer.state.clone(),
            stream: self.stream.state(),
            sampler: self.sampler.as_ref().map(MinibatchSampler::state),
            cached_noise: self.surrogate.cached.clone(),
        }
    }

    /// θ now.
    ///
    /// # Shapes
    /// Returns [D].
    pub fn theta(&self) -> &Tensor<1> {
        &self.theta
    }

    /// Steps done.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.optimizer
            .config
            .lr_at(self.optimizer.state.t, self.optimizer.total)
    }

    /// One step θ_t → θ_{t+1}. On error θ stays θ_t.
    pub fn step(&mut self) -> Result<StepReport, StepError> {
        let t = self.step;
        let (loss, grad) = match &mut self.sampler {
            Some(s) => {
                let batch = self.data.gather(&s.next_batch());
                self.net.gradient(&self.theta, &batch)
            }
            None => self.net.gradient(&self.theta, self.data),
        };
        let loss = loss.into_scalar::<f64>();
        if !loss.is_finite() {
            return Err(StepError::Diverged { step: t, loss });
        }
        let draw = self
            .surrogate
            .draw(t, self.net, &self.theta, self.data, &mut self.stream)?;
        let apply = self.surrogate.config.apply;
        let grad = match (&draw.xi, apply) {
            (Some(xi), Apply::Gradient) => grad + xi.clone(),
            _ => grad,
        };
        let mut theta = self.optimizer.step(self.theta.clone(), grad);
        if let (Some(xi), Apply::Weights) = (draw.xi, apply) {
            theta = theta + xi;
        }
        self.theta = theta;
        self.step += 1;
        Ok(StepReport {
            step: t,
            loss,
            trace_c: draw.trace_c,
            trace_sigma_m: draw.trace_sigma_m,
            hvps: draw.hvps,
        })
    }
}

#[cfg(test)]
#[path = "trainer_tests.rs"]
mod tests;
