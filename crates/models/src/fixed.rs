//! Layers with no trainable parameters other than a bias: a frozen linear map and a bias.
//!
//! Frozen linear, z = a Mᵀ with M [o, i] fixed (outside θ): δ_in = δ M, R z = R a Mᵀ,
//! R δ_in = R δ M. It carries Zhu et al.'s ±1 output weights and the −I of the 2-D toy.
//!
//! Bias, z = a + b with θ_l = b [f]: g_b = Σ_n δ, δ_in = δ, R z = R a + V_b, R g_b = Σ_n R δ,
//! R δ_in = R δ.

use burn::prelude::*;

use crate::layer::{Backward, Layer, LayerIo, RBackward, RIo, add_terms};

/// z = a Mᵀ with a fixed M [o, i].
#[derive(Debug, Clone)]
pub struct FrozenLinear {
    name: String,
    /// M, [o, i].
    matrix: Tensor<2>,
}

impl FrozenLinear {
    /// A frozen map with matrix M [o, i] (already on the device, in the net's precision).
    ///
    /// # Shapes
    /// `matrix`: [o, i]; the layer maps [n, i] to [n, o].
    pub fn new(name: impl Into<String>, matrix: Tensor<2>) -> Self {
        FrozenLinear {
            name: name.into(),
            matrix,
        }
    }
}

impl Layer for FrozenLinear {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_dim(&self) -> usize {
        self.matrix.dims()[1]
    }

    fn out_dim(&self) -> usize {
        self.matrix.dims()[0]
    }

    fn n_params(&self) -> usize {
        0
    }

    fn forward(&self, _: Option<&Tensor<1>>, a_in: Tensor<2>) -> Tensor<2> {
        a_in.matmul(self.matrix.clone().transpose())
    }

    fn backward(&self, _: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        Backward {
            grad: Vec::new(),
            delta_in: need_delta_in.then(|| delta.matmul(self.matrix.clone())),
        }
    }

    fn per_sample_grads(&self, _: LayerIo, _: &Tensor<2>) -> Option<Tensor<2>> {
        None
    }

    fn r_forward(&self, _: LayerIo, r: RIo) -> Option<Tensor<3>> {
        let ra = r.ra_in?;
        let [k, n, i] = ra.dims();
        Some(
            ra.clone()
                .reshape([k * n, i])
                .matmul(self.matrix.clone().transpose())
                .reshape([k, n, self.out_dim()]),
        )
    }

    fn r_backward(
        &self,
        _: LayerIo,
        _: RIo,
        _: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need: bool,
    ) -> RBackward {
        let [k, n, o] = r_delta.dims();
        RBackward {
            grad: Vec::new(),
            delta_in: need.then(|| {
                r_delta
                    .reshape([k * n, o])
                    .matmul(self.matrix.clone())
                    .reshape([k, n, self.in_dim()])
            }),
        }
    }
}

/// z = a + b, θ_l = b [f].
#[derive(Debug, Clone)]
pub struct Bias {
    name: String,
    features: usize,
}

impl Bias {
    /// A bias over `features` features.
    pub fn new(name: impl Into<String>, features: usize) -> Self {
        Bias {
            name: name.into(),
            features,
        }
    }
}

impl Layer for Bias {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_dim(&self) -> usize {
        self.features
    }

    fn out_dim(&self) -> usize {
        self.features
    }

    fn n_params(&self) -> usize {
        self.features
    }

    fn forward(&self, theta: Option<&Tensor<1>>, a_in: Tensor<2>) -> Tensor<2> {
        a_in + theta
            .expect("a bias has parameters")
            .clone()
            .unsqueeze_dim::<2>(0)
    }

    fn backward(&self, _: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        Backward {
            grad: vec![delta.clone().sum_dim(0).reshape([self.features])],
            delta_in: need_delta_in.then_some(delta),
        }
    }

    fn per_sample_grads(&self, _: LayerIo, delta: &Tensor<2>) -> Option<Tensor<2>> {
        Some(delta.clone())
    }

    fn r_forward(&self, io: LayerIo, r: RIo) -> Option<Tensor<3>> {
        let n = io.a_in.dims()[0];
        let vb = r.v.map(|v| {
            let k = v.dims()[0];
            v.clone()
                .unsqueeze_dim::<3>(1)
                .expand([k, n, self.features])
        });
        add_terms(r.ra_in.cloned(), vb)
    }

    fn r_backward(
        &self,
        _: LayerIo,
        _: RIo,
        _: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need: bool,
    ) -> RBackward {
        let [k, _, f] = r_delta.dims();
        RBackward {
            grad: vec![r_delta.clone().sum_dim(1).reshape([k, f])],
            delta_in: need.then_some(r_delta),
        }
    }
}
