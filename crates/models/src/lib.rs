//! noisescope's networks over a flat parameter vector θ, with exact gradients, per-sample
//! gradients, Hessian-vector and Gauss-Newton-vector products for blocks of directions, and
//! exact sampling from N(0, G_F), all written once in burn tensor ops for every backend.
//!
//! Each layer carries its own forward, backward, R-forward and R-backward passes (one file per
//! layer); [`Net`] chains them. burn has only first-order autodiff, so second order comes from
//! Pearlmutter's R-operator rather than from differentiating twice.
#![warn(missing_docs)]

mod activation;
mod blas;
mod conv;
mod dense;
mod error;
mod fixed;
mod host_activation;
mod host_conv;
mod host_ops;
mod init;
mod kernels;
mod layer;
mod layers;
mod layout;
mod loss;
mod net;
mod pool;
mod sample_grads;
mod threads;
mod zoo;

#[cfg(test)]
mod backends;
#[cfg(test)]
mod testing;

pub use activation::{Activation, ActivationKind};
pub use blas::{builtin_matmul_engine, init_matmul_engine, matmul_engine};
pub use conv::Conv2d;
pub use dense::Dense;
pub use error::ModelError;
pub use fixed::{Bias, FrozenLinear};
pub use init::Init;
pub use kernels::Engine;
pub use layer::{Backward, Factors, Layer, LayerIo, Memo, RBackward, RIo};
pub use layers::{LayerSpec, build_layers};
pub use layout::{Block, Layout};
pub use loss::Loss;
pub use net::{Linearization, Net};
pub use pool::MaxPool2;
pub use sample_grads::SampleGradients;
pub use threads::{host_threads, set_host_threads};
pub use zoo::ModelSpec;

/// Products, concatenation and sums as noisescope's passes run them: on host memory through
/// the CPU's matrix engine ([`matmul_engine`]) with transposed operands read in place, and
/// sums without ndarray's per-element slow path; elsewhere as burn's ops.
pub mod ops {
    pub use crate::host_ops::{batched_matmul, cat, matmul, sum_dim};
}
