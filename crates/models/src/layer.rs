//! The one trait every layer implements: forward, backward, per-sample gradients, R-forward
//! and R-backward, each written with burn tensor ops for any backend.
//!
//! Shape letters used in every layer file: n samples, k directions, i input features of the
//! layer, o output features, D_l parameters of the layer. Activations travel between layers as
//! `[n, features]` (a convolution reshapes to `[n, c, h, w]` inside); R-quantities (directional
//! derivatives along k directions at once) as `[k, n, features]`. A `None` R-quantity is zero,
//! so the first layer's input (data, independent of θ) costs nothing.
//!
//! The network chains the passes; a layer sees only its own slice of θ and of each direction.

use burn::prelude::*;

use crate::host_ops::{self, matmul};

/// What a layer's passes read: its parameters and the activations the forward pass produced.
#[derive(Debug, Clone, Copy)]
pub struct LayerIo<'a> {
    /// θ_l, the layer's slice of θ, [D_l]; `None` for a layer without parameters.
    pub theta: Option<&'a Tensor<1>>,
    /// Input a_in, [n, i].
    pub a_in: &'a Tensor<2>,
    /// Output a_out, [n, o].
    pub a_out: &'a Tensor<2>,
    /// What this layer's forward pass left for its other passes, if anything
    /// ([`Layer::forward_memo`]).
    pub memo: Option<&'a Memo>,
}

/// What a forward pass computes on the way and the layer's other passes need again at the same
/// (θ, a_in): kept beside the activations, so that a backward pass, and every curvature
/// product at a linearization, reads it instead of recomputing it from a_in.
#[derive(Debug, Clone)]
pub enum Memo {
    /// Max-pooling's window argmax on the host, as flat in-plane positions [n·c, h/2·w/2]:
    /// recomputing it meant copying the whole input out of burn (28 MB per pass for convyu's
    /// first pooling over 1200 images).
    PoolArgmax(std::sync::Arc<Vec<u32>>),
}

/// The directions of an R-pass as a layer sees them.
#[derive(Debug, Clone, Copy)]
pub struct RIo<'a> {
    /// R a_in = J_a_in · V, [k, n, i]; `None` when zero.
    pub ra_in: Option<&'a Tensor<3>>,
    /// V_l, the layer's slice of the k directions, [k, D_l]; `None` without parameters.
    pub v: Option<&'a Tensor<2>>,
}

/// The result of a backward pass through one layer.
#[derive(Debug, Clone)]
pub struct Backward {
    /// The parameter part Σ_n J_θᵀ δ, [D_l], in pieces that concatenate to it in θ's order
    /// (a dense layer: weights, then biases); empty without parameters. The net concatenates
    /// every layer's pieces once, instead of each layer its own first.
    pub grad: Vec<Tensor<1>>,
    /// δ_in = J_aᵀ δ_out, [n, i]; `None` when not asked for.
    pub delta_in: Option<Tensor<2>>,
}

/// The result of an R-backward pass through one layer.
#[derive(Debug, Clone)]
pub struct RBackward {
    /// R(Σ_n J_θᵀ δ), [k, D_l], in pieces along the second axis in θ's order, as
    /// [`Backward::grad`]; empty without parameters.
    pub grad: Vec<Tensor<2>>,
    /// R δ_in, [k, n, i]; `None` when not asked for.
    pub delta_in: Option<Tensor<3>>,
}

/// A layer's per-sample gradients in factored form, for Gram matrices and the diagonal of Σ₁
/// without forming the N×D matrix G.
#[derive(Debug, Clone)]
// Both variants hold only tensor handles; boxing one would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Factors {
    /// g_n = vec(δ_n ã_nᵀ) with ã_n = [a_n; 1] (a dense layer, weights then bias):
    /// Ã [n, i+1] and Δ [n, o]. The layer's Gram block is (Δ Δᵀ) ⊙ (Ã Ãᵀ).
    Outer {
        /// Ã, inputs with a trailing 1, [n, i+1].
        inputs: Tensor<2>,
        /// Δ, output cotangents, [n, o].
        cotangents: Tensor<2>,
    },
    /// The per-sample gradients themselves, [n, D_l] (convolutions, biases: small).
    Materialized(Tensor<2>),
}

impl Factors {
    /// This layer's block of the Gram matrix K = G_l G_lᵀ, [n, n].
    ///
    /// # Shapes
    /// Returns [n, n] for n rows (Ã [n, i+1] and Δ [n, o], or G_l [n, D_l]).
    pub fn gram(&self) -> Tensor<2> {
        match self {
            Factors::Outer { inputs, cotangents } => {
                matmul(cotangents.clone(), false, cotangents.clone(), true)
                    * matmul(inputs.clone(), false, inputs.clone(), true)
            }
            Factors::Materialized(g) => matmul(g.clone(), false, g.clone(), true),
        }
    }

    /// [`gram`](Self::gram) for rows in `sets` blocks of n sharing their inputs (see
    /// `SampleGradients::project_sets`): (Δ Δᵀ) ⊙ (1 1ᵀ ⊗ Ã_1 Ã_1ᵀ), the inputs' [n, n] Gram
    /// taken once from the first block and tiled, [sets·n, sets·n].
    ///
    /// # Shapes
    /// For rows = sets·n (Ã [sets·n, i+1], Δ [sets·n, o], or G_l [sets·n, D_l]), returns
    /// [sets·n, sets·n]; `sets` must divide the rows.
    pub fn gram_sets(&self, sets: usize) -> Tensor<2> {
        match self {
            Factors::Outer { inputs, cotangents } if sets > 1 => {
                let rows = inputs.dims()[0];
                assert!(rows.is_multiple_of(sets), "{rows} rows, {sets} blocks");
                let n = rows / sets;
                let a = inputs.clone().narrow(0, 0, n);
                matmul(cotangents.clone(), false, cotangents.clone(), true)
                    * matmul(a.clone(), false, a, true).repeat(&[sets, sets])
            }
            _ => self.gram(),
        }
    }

    /// The tensors holding this layer's factors (Ã and Δ, or the block).
    pub(crate) fn tensors(&self) -> Vec<&Tensor<2>> {
        match self {
            Factors::Outer { inputs, cotangents } => vec![inputs, cotangents],
            Factors::Materialized(g) => vec![g],
        }
    }

    /// The per-sample gradients G_l, [n, D_l] (materializes an outer product).
    ///
    /// # Shapes
    /// From Ã [n, i+1] and Δ [n, o], returns [n, o·(i+1)] (weights row-major, then the o biases);
    /// a materialized block [n, D_l] comes back as is.
    pub fn materialize(&self) -> Tensor<2> {
        match self {
            Factors::Outer { inputs, cotangents } => {
                let [n, i1] = inputs.dims();
                let o = cotangents.dims()[1];
                // Row-major W: δ_n a_nᵀ over the i real inputs (the last column of Ã is the
                // bias's 1, whose gradient is δ_n itself), formed contiguous so that the
                // reshape is free and only the final cat copies.
                let a = inputs.clone().narrow(1, 0, i1 - 1);
                // A batched rank-1 matmul [n, o, 1] × [n, 1, i]: ndarray's broadcast multiply
                // of the same shapes ran at 15M elements/s, the matmul at memory speed.
                let w = cotangents
                    .clone()
                    .unsqueeze_dim::<3>(2)
                    .matmul(a.unsqueeze_dim::<3>(1))
                    .reshape([n, o * (i1 - 1)]);
                host_ops::cat(vec![w, cotangents.clone()], 1)
            }
            Factors::Materialized(g) => g.clone(),
        }
    }
}

/// A layer of a network over a flat θ.
pub trait Layer: std::fmt::Debug + Send + Sync {
    /// Short name for layouts and messages (`dense0`).
    fn name(&self) -> &str;

    /// Input features i per sample.
    fn in_dim(&self) -> usize;

    /// Output features o per sample.
    fn out_dim(&self) -> usize;

    /// Parameters D_l (0 for activations, pooling and frozen layers).
    fn n_params(&self) -> usize;

    /// Forward: a_out = f(a_in; θ_l).
    ///
    /// # Shapes
    /// a_in [n, i] → [n, o].
    fn forward(&self, theta: Option<&Tensor<1>>, a_in: Tensor<2>) -> Tensor<2>;

    /// [`forward`](Self::forward) and what it leaves for the layer's other passes at this
    /// (θ, a_in) (handed back as [`LayerIo::memo`]); by default nothing.
    fn forward_memo(
        &self,
        theta: Option<&Tensor<1>>,
        a_in: Tensor<2>,
    ) -> (Tensor<2>, Option<Memo>) {
        (self.forward(theta, a_in), None)
    }

    /// Backward (vector-Jacobian product): Σ_n J_θᵀ δ_out ([D_l], as pieces in θ's order) and,
    /// when `need_delta_in`, δ_in = J_aᵀ δ_out ([n, i]).
    fn backward(&self, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward;

    /// Per-sample gradients J_θ,nᵀ δ_n for every sample n, [n, D_l]; `None` without
    /// parameters.
    fn per_sample_grads(&self, io: LayerIo, delta: &Tensor<2>) -> Option<Tensor<2>>;

    /// The same per-sample gradients in factored form; by default materialized.
    fn per_sample_factors(&self, io: LayerIo, delta: &Tensor<2>) -> Option<Factors> {
        self.per_sample_grads(io, delta).map(Factors::Materialized)
    }

    /// R-forward (Jacobian-vector product): R a_out = J_a R a_in + J_θ V_l, [k, n, o]; `None`
    /// when both terms are zero.
    fn r_forward(&self, io: LayerIo, r: RIo) -> Option<Tensor<3>>;

    /// R-backward: the derivative of the backward pass along (R a_in, V_l).
    ///
    /// Returns R(Σ_n J_θᵀ δ) [k, D_l] (as pieces along the second axis) and, when `need_delta_in`, R δ_in [k, n, i]. `delta` is
    /// δ_out [n, o]; `None` drops the terms that hold δ itself (the layer's second
    /// derivatives), which turns the Hessian-vector product into the Gauss-Newton product
    /// JᵀΛJ V.
    fn r_backward(
        &self,
        io: LayerIo,
        r: RIo,
        delta: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need_delta_in: bool,
    ) -> RBackward;
}

/// 1 where `mask` holds, else 0, in the dtype of `like`.
pub(crate) fn indicator<const D: usize>(mask: Tensor<D, Bool>, like: &Tensor<D>) -> Tensor<D> {
    mask.float().cast(like.dtype())
}

/// The sum of two R-terms where `None` is zero.
pub(crate) fn add_terms(a: Option<Tensor<3>>, b: Option<Tensor<3>>) -> Option<Tensor<3>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// `[n, f]` → `[1, n, f]`, to broadcast against `[k, n, f]`.
pub(crate) fn lift(t: &Tensor<2>) -> Tensor<3> {
    t.clone().unsqueeze_dim(0)
}
