//! One training run's state and its step: gradient (full batch, or a minibatch for `sgd`),
//! noise, update. Everything needed to continue a run bit for bit is in [`TrainerState`].

use burn::prelude::*;
use noisescope_data::{DeviceDataset, MinibatchSampler, SamplerState};
use noisescope_models::Net;

use crate::dynamic::{Apply, Dynamic, NoiseConfig};
use crate::gld::{NoiseError, Surrogate};
use crate::optimizer::{Optimizer, OptimizerConfig, OptimizerState};
use crate::stream::{NoiseStream, StreamState};
use crate::surrogate::NoiseShape;

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
    pub cached_noise: Option<NoiseShape>,
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

    /// Puts a saved state back (the run must have been created with the same settings).
    pub fn restore(&mut self, state: TrainerState) -> Result<(), StepError> {
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
        })
    }
}
