//! noisescope's measurements (SPEC §3): curvature and noise as symmetric linear operators with
//! block apply, and the algorithms written once against them.
//!
//! - [`operator`]: H (with weight decay), G_F, F and Σ₁ as [`Operator`]s.
//! - [`lanczos`], [`power`]: top-k eigenpairs (Lanczos with full reorthogonalization; power
//!   iteration with deflation as in PyHessian).
//! - [`trace`], [`density`]: Hutchinson, Hutch++, exact traces; stochastic Lanczos quadrature.
//! - [`covariance`]: Tr Σ₁, diag Σ₁ and the top-k of Σ₁ and F through the N×N Gram matrix.
//! - [`escape`], [`sharpness`], [`alignment`], [`decomposition`], [`stats`]: Tr(HΣ) against
//!   Tr(HΣ̄), expected sharpness, Wang and Wu's alignment, the escape direction, loss
//!   variance and tail index.
//! - [`session`]: the probes at one θ, sharing the linearized Hessian, Σ₁ and the top-k
//!   eigenpairs, answered as a typed [`ProbeReport`].
#![warn(missing_docs)]

pub mod alignment;
pub mod config;
pub mod covariance;
pub mod decomposition;
pub mod density;
pub mod escape;
pub mod host_rows;
pub mod lanczos;
pub mod linalg;
pub mod operator;
pub mod power;
pub mod session;
pub mod sharpness;
pub mod stats;
pub mod trace;

#[cfg(test)]
mod testing;

pub use covariance::{GradientNoise, minibatch_scale};
pub use lanczos::{Eigenpairs, LanczosConfig, lanczos, lanczos_from, warm_start};
pub use operator::{
    Blocked, DenseOperator, EmpiricalFisher, GaussNewton, GradientCovariance, Hessian,
    LinearizedHessian, Operator, Space,
};
pub use power::{PowerConfig, power_iteration};
pub use session::{Anchor, ProbeReport, Session};
