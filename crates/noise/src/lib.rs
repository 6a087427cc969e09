//! noisescope's noise-injecting optimizer (SPEC §2): GD, SGD and the generalized Langevin
//! dynamics θ ← θ − η (∇L(θ) + ξ), ξ ~ N(0, C), whose C has SGD's total strength Tr Σ_m and
//! a chosen shape (isotropic, diagonal, low-rank, Hessian, Gauss-Newton, top Hessian
//! eigenvector); momentum, weight decay, schedules, Adam; reproducible random streams.
//!
//! - [`dynamic`]: the dynamics and their settings (including Zhu et al.'s code's options).
//! - [`surrogate`]: ξ at θ_t for each dynamic (the noise that replaces SGD's).
//! - [`shape`]: C in factored form and its sampling.
//! - [`optimizer`]: the update rule.
//! - [`stored`]: the cached covariance as a checkpoint stores it.
//! - [`stream`]: the seeded, restorable normal stream.
//! - [`trainer`]: one run's state and step.
//! - [`chains`]: many SGD chains on linear regression at once, for the theory experiments.
#![warn(missing_docs)]

pub mod chains;
pub mod dynamic;
pub mod optimizer;
pub mod shape;
pub mod stored;
pub mod stream;
pub mod surrogate;
pub mod trainer;

#[cfg(test)]
mod testing;

pub use chains::{BlockSums, ChainData, LinearChains, Moments};
pub use dynamic::{
    Apply, CovarianceEstimate, Dynamic, EigenSolver, Injection, NoiseConfig, TraceTarget,
};
pub use optimizer::{Algorithm, Optimizer, OptimizerConfig, OptimizerState, Schedule};
pub use shape::NoiseShape;
pub use stored::{NamedTensor, NoiseRecord, StoredError, StoredNoiseError};
pub use stream::{NoiseStream, StreamState};
pub use surrogate::{Covariance, Draw, NoiseError, Prepared, Surrogate};
pub use trainer::{StepError, StepReport, Trainer, TrainerState};
