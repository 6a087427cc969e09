//! Symmetric linear operators on the parameter space, applied to blocks of directions.
//!
//! Every spectral algorithm in this crate is written against [`Operator`]: a map
//! V [k, D] → A V [k, D] (directions as rows) for a symmetric D×D matrix A that is never formed.

use burn::prelude::*;
use burn::tensor::DType;
use noisescope_data::DeviceDataset;
use noisescope_models::ops::matmul;
use noisescope_models::{Linearization, Net, SampleGradients};

/// Where an operator's products live.
#[derive(Debug, Clone)]
pub struct Space {
    /// The dimension D.
    pub dim: usize,
    /// The device its products run on.
    pub device: Device,
    /// Their element type.
    pub dtype: DType,
}

/// A symmetric linear operator A on R^D, applied to k directions at once. Implementations
/// give `space` and `apply`; the rest is provided.
pub trait Operator {
    /// The space it acts on: D, the device its products run on and their element type.
    fn space(&self) -> Space;

    /// A Vᵀ for directions V, returned as rows.
    ///
    /// # Shapes
    /// `v`: [k, D]; returns [k, D].
    fn apply(&self, v: &Tensor<2>) -> Tensor<2>;

    /// The dimension D.
    fn dim(&self) -> usize {
        self.space().dim
    }

    /// The device its products run on.
    fn device(&self) -> Device {
        self.space().device
    }

    /// The element type of its products.
    fn dtype(&self) -> DType {
        self.space().dtype
    }

    /// The largest block `apply` takes at once; `apply_blocked` splits larger blocks.
    fn max_block(&self) -> usize {
        64
    }

    /// `apply` over any number of directions, in blocks of at most [`Operator::max_block`].
    fn apply_blocked(&self, v: &Tensor<2>) -> Tensor<2> {
        let [k, _] = v.dims();
        let b = self.max_block().max(1);
        if k <= b {
            return self.apply(v);
        }
        let parts = (0..k)
            .step_by(b)
            .map(|s| self.apply(&v.clone().narrow(0, s, b.min(k - s))))
            .collect();
        Tensor::cat(parts, 0)
    }
}

/// The Hessian H = ∇²L(θ) + γ I of the training loss with weight decay γ (which may be
/// negative), by Pearlmutter's R-operator: one forward and one R-pass pair per block.
#[derive(Debug, Clone, Copy)]
pub struct Hessian<'a> {
    /// The network.
    pub net: &'a Net,
    /// θ, [D].
    pub theta: &'a Tensor<1>,
    /// The data L averages over.
    pub data: &'a DeviceDataset,
    /// γ of the (γ/2)‖θ‖² term.
    pub weight_decay: f64,
}

impl Operator for Hessian<'_> {
    fn space(&self) -> Space {
        Space {
            dim: self.net.dim(),
            device: self.theta.device(),
            dtype: self.theta.dtype(),
        }
    }

    fn apply(&self, v: &Tensor<2>) -> Tensor<2> {
        with_decay(self.net.hvp(self.theta, self.data, v), v, self.weight_decay)
    }
}

impl<'a> Hessian<'a> {
    /// The same H with the forward and backward passes at θ taken once ([`Net::linearize`]),
    /// for many products at one θ (Lanczos, Hutchinson, SLQ): each product is then an
    /// R-forward and an R-backward pass, like an autograd HVP on a retained graph. Holds the
    /// activations of `data` until dropped.
    pub fn linearized(&self) -> LinearizedHessian<'a> {
        LinearizedHessian {
            net: self.net,
            at: self.net.linearize(self.theta, self.data, true),
            weight_decay: self.weight_decay,
            device: self.theta.device(),
            dtype: self.theta.dtype(),
        }
    }
}

/// ∇²L V + γ V.
fn with_decay(hv: Tensor<2>, v: &Tensor<2>, gamma: f64) -> Tensor<2> {
    if gamma == 0.0 {
        hv
    } else {
        hv + v.clone() * gamma
    }
}

/// H = ∇²L(θ) + γ I at a θ fixed by [`Hessian::linearized`].
#[derive(Debug, Clone)]
pub struct LinearizedHessian<'a> {
    net: &'a Net,
    at: Linearization,
    weight_decay: f64,
    device: Device,
    dtype: DType,
}

impl Operator for LinearizedHessian<'_> {
    fn space(&self) -> Space {
        Space {
            dim: self.net.dim(),
            device: self.device.clone(),
            dtype: self.dtype,
        }
    }

    fn apply(&self, v: &Tensor<2>) -> Tensor<2> {
        let hv = self.net.curvature_vp(&self.at, v, false);
        with_decay(hv, v, self.weight_decay)
    }
}

/// The Gauss-Newton (Fisher) matrix G_F = (1/N) Σ_n J_nᵀ Λ_n J_n.
#[derive(Debug, Clone, Copy)]
pub struct GaussNewton<'a> {
    /// The network.
    pub net: &'a Net,
    /// θ, [D].
    pub theta: &'a Tensor<1>,
    /// The data G_F averages over.
    pub data: &'a DeviceDataset,
}

impl Operator for GaussNewton<'_> {
    fn space(&self) -> Space {
        Space {
            dim: self.net.dim(),
            device: self.theta.device(),
            dtype: self.theta.dtype(),
        }
    }

    fn apply(&self, v: &Tensor<2>) -> Tensor<2> {
        self.net.ggn_vp(self.theta, self.data, v)
    }
}

/// The empirical Fisher F = (1/N) Gᵀ G, from the factored per-sample gradients.
#[derive(Debug, Clone)]
pub struct EmpiricalFisher<'a> {
    /// G in factored form.
    pub grads: &'a SampleGradients,
}

impl Operator for EmpiricalFisher<'_> {
    fn space(&self) -> Space {
        Space {
            dim: self.grads.dim(),
            device: self.grads.device(),
            dtype: self.grads.dtype(),
        }
    }

    fn apply(&self, v: &Tensor<2>) -> Tensor<2> {
        let n = self.grads.samples() as f64;
        self.grads.combine(&self.grads.project(v)) / n
    }
}

/// The one-sample gradient covariance Σ₁ = (1/N) Gᵀ G − ḡ ḡᵀ.
#[derive(Debug, Clone)]
pub struct GradientCovariance<'a> {
    /// G in factored form.
    pub grads: &'a SampleGradients,
    /// ḡ = (1/N) Σ_n g_n, [D].
    pub mean: &'a Tensor<1>,
}

impl Operator for GradientCovariance<'_> {
    fn space(&self) -> Space {
        Space {
            dim: self.grads.dim(),
            device: self.mean.device(),
            dtype: self.mean.dtype(),
        }
    }

    fn apply(&self, v: &Tensor<2>) -> Tensor<2> {
        let n = self.grads.samples() as f64;
        let d = self.dim();
        let m = self.mean.clone().reshape([1, d]);
        let mv = crate::linalg::inner_products(v, &m); // [k, 1]
        self.grads.combine(&self.grads.project(v)) / n - matmul(mv, false, m, false)
    }
}

/// An explicit symmetric matrix A [D, D] (tests, Gram matrices, small problems).
#[derive(Debug, Clone)]
pub struct DenseOperator {
    /// A, [D, D], symmetric.
    pub matrix: Tensor<2>,
}

impl Operator for DenseOperator {
    fn space(&self) -> Space {
        Space {
            dim: self.matrix.dims()[0],
            device: self.matrix.device(),
            dtype: self.matrix.dtype(),
        }
    }

    fn apply(&self, v: &Tensor<2>) -> Tensor<2> {
        matmul(v.clone(), false, self.matrix.clone(), false)
    }

    fn max_block(&self) -> usize {
        usize::MAX
    }
}

/// A with every block applied at most `block` directions at a time (bounds memory for big
/// nets: an HVP holds k copies of every activation).
#[derive(Debug, Clone, Copy)]
pub struct Blocked<A> {
    /// The operator.
    pub inner: A,
    /// Directions per pass.
    pub block: usize,
}

impl<A: Operator> Blocked<A> {
    /// `inner` applied at most `block` directions at a time (at least one).
    pub fn new(inner: A, block: usize) -> Self {
        Blocked {
            inner,
            block: block.max(1),
        }
    }
}

impl<A: Operator> Operator for Blocked<A> {
    fn space(&self) -> Space {
        Space {
            dim: self.inner.dim(),
            device: self.inner.device(),
            dtype: self.inner.dtype(),
        }
    }

    fn apply(&self, v: &Tensor<2>) -> Tensor<2> {
        self.inner.apply(v)
    }

    fn max_block(&self) -> usize {
        self.block
    }
}

/// The dense matrix of an operator, [D, D], by applying it to the identity in blocks
/// (D products: for small D and reference checks).
///
/// # Shapes
/// Returns [D, D] (D = `op.dim()`), row j = A e_j.
pub fn materialize(op: &impl Operator) -> Tensor<2> {
    let d = op.dim();
    let eye = Tensor::<2>::eye(d, &op.device()).cast(op.dtype());
    op.apply_blocked(&eye)
}

#[cfg(test)]
#[path = "operator_tests.rs"]
mod tests;
