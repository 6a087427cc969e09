//! Closed forms of SPEC §4 (Ziyin et al., "Strength of minibatch noise in SGD"), in f64 dense
//! linear algebra: the fluctuation equation (Thm. 1) solved as a linear system, the
//! label-noise covariance (Lemma 1), the stationary Σ and C of Thms. 2 and 3, the test loss of
//! Thm. 4, Thm. 6's high-dimensional fluctuation, the 1-d tail index (the paper's estimate and
//! the exact Kesten–Goldie index), the two Hessian-approximation baselines, and the exact
//! stationary second moment of SGD on a fixed training set (`finite`). No tensors: the
//! `theory` command simulates on the device and compares with these.
#![warn(missing_docs)]

pub mod finite;
pub mod fluctuation;
pub mod matrix;
pub mod regularized;
pub mod tail;

#[cfg(test)]
mod testing;

pub use finite::finite_data_trace;
pub use fluctuation::{
    NoiseModel, TheoryError, continuous_time_sigma, hessian_approximation_sigma, label_noise_c,
    solve_fluctuation, thm2_sigma, thm3_c,
};
pub use matrix::Matrix;
pub use regularized::{
    continuous_time_trace, hessian_approximation_trace, noiseless_test_loss, thm4_test_loss,
    thm6_gaussian_trace, thm6_trace,
};
pub use tail::{kesten_tail_index, tail_index};
