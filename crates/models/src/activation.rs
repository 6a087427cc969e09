//! Element-wise activation a = φ(z), without parameters.
//!
//! - backward: δ_z = φ'(z) ⊙ δ_a
//! - R-forward: R a = φ'(z) ⊙ R z
//! - R-backward: R δ_z = φ'(z) ⊙ R δ_a + φ''(z) ⊙ R z ⊙ δ_a (Gauss-Newton: without the φ'' term)
//!
//! tanh: φ' = 1 − a², φ'' = −2a(1 − a²). ReLU: φ' = 1[z > 0], φ'' = 0 (almost everywhere).
//! Identity: φ' = 1, φ'' = 0.
//!
//! On host memory in f32, tanh and its backward product run as the host kernels of
//! [`host_activation`](crate::host_activation) (tanh within 6 ulp, 3.6·10⁻⁷, of the
//! correctly rounded value); elsewhere, and in f64, as burn's ops. The R-passes of tanh, and
//! of ReLU for blocks of two or more directions, on host memory (f32 and f64, directions stored
//! row-major) are one pass over every direction each, with the bits of the burn expressions
//! below them.

use burn::prelude::*;
use burn::tensor::activation::relu;

use burn::tensor::DType;

use crate::host_activation;
use crate::kernels::{Burn, Engine, Host, with_kernels};
use crate::layer::{Backward, Layer, LayerIo, RBackward, RIo, indicator, lift};

/// Which φ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivationKind {
    /// tanh.
    Tanh,
    /// max(z, 0).
    Relu,
    /// z.
    Identity,
}

/// An activation layer over `features` features.
#[derive(Debug, Clone)]
pub struct Activation {
    name: String,
    kind: ActivationKind,
    features: usize,
}

impl Activation {
    /// φ over `features` features.
    pub fn new(name: impl Into<String>, kind: ActivationKind, features: usize) -> Self {
        Activation {
            name: name.into(),
            kind,
            features,
        }
    }

    /// φ'(z), [n, f]; `None` for the identity.
    fn slope(&self, io: &LayerIo) -> Option<Tensor<2>> {
        match self.kind {
            ActivationKind::Tanh => Some(io.a_out.clone().powi_scalar(2).neg() + 1.0),
            ActivationKind::Relu => Some(indicator(io.a_in.clone().greater_elem(0.0), io.a_in)),
            ActivationKind::Identity => None,
        }
    }

    /// φ''(z), [n, f]; `None` where it vanishes.
    fn curvature(&self, io: &LayerIo) -> Option<Tensor<2>> {
        match self.kind {
            ActivationKind::Tanh => {
                let a = io.a_out.clone();
                Some((a.clone().powi_scalar(2).neg() + 1.0) * a * (-2.0))
            }
            ActivationKind::Relu | ActivationKind::Identity => None,
        }
    }
}

impl Layer for Activation {
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
        0
    }

    fn forward(&self, _: Option<&Tensor<1>>, z: Tensor<2>) -> Tensor<2> {
        with_kernels!(Engine::of(&z), K => K::forward(self, z))
    }

    fn backward(&self, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        let engine = Engine::of(&delta).and(io.a_in).and(io.a_out);
        Backward {
            grad: Vec::new(),
            delta_in: need_delta_in
                .then(|| with_kernels!(engine, K => K::backward(self, &io, delta))),
        }
    }

    fn per_sample_grads(&self, _: LayerIo, _: &Tensor<2>) -> Option<Tensor<2>> {
        None
    }

    fn r_forward(&self, io: LayerIo, r: RIo) -> Option<Tensor<3>> {
        let rz = r.ra_in?;
        let engine = Engine::of(rz).and(io.a_in).and(io.a_out);
        Some(with_kernels!(engine, K => K::r_forward(self, &io, rz)))
    }

    fn r_backward(
        &self,
        io: LayerIo,
        r: RIo,
        delta: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need_delta_in: bool,
    ) -> RBackward {
        // The φ'' term's operands join the engine's choice only when the term is formed.
        let cross = delta.zip(r.ra_in);
        let mut engine = Engine::of(&r_delta).and(io.a_in).and(io.a_out);
        if let Some((d, rz)) = cross {
            engine = engine.and(d).and(rz);
        }
        RBackward {
            grad: Vec::new(),
            delta_in: need_delta_in
                .then(|| with_kernels!(engine, K => K::r_backward(self, &io, cross, r_delta))),
        }
    }
}

/// An activation's passes as a kernel object runs them ([`crate::kernels`]).
trait ActivationKernels {
    /// a = φ(z).
    fn forward(act: &Activation, z: Tensor<2>) -> Tensor<2>;

    /// δ_z = φ'(z) ⊙ δ_a.
    fn backward(act: &Activation, io: &LayerIo, delta: Tensor<2>) -> Tensor<2>;

    /// R a = φ'(z) ⊙ R z.
    fn r_forward(act: &Activation, io: &LayerIo, rz: &Tensor<3>) -> Tensor<3>;

    /// R δ_z = φ'(z) ⊙ R δ_a, plus φ''(z) ⊙ R z ⊙ δ_a when `cross` holds (δ_a, R z).
    fn r_backward(
        act: &Activation,
        io: &LayerIo,
        cross: Option<(&Tensor<2>, &Tensor<3>)>,
        r_delta: Tensor<3>,
    ) -> Tensor<3>;
}

/// burn's ops, on any backend.
impl ActivationKernels for Burn {
    fn forward(act: &Activation, z: Tensor<2>) -> Tensor<2> {
        match act.kind {
            ActivationKind::Tanh => z.tanh(),
            ActivationKind::Relu => relu(z),
            ActivationKind::Identity => z,
        }
    }

    fn backward(act: &Activation, io: &LayerIo, delta: Tensor<2>) -> Tensor<2> {
        match act.slope(io) {
            Some(s) => s * delta,
            None => delta,
        }
    }

    fn r_forward(act: &Activation, io: &LayerIo, rz: &Tensor<3>) -> Tensor<3> {
        match act.slope(io) {
            Some(s) => lift(&s) * rz.clone(),
            None => rz.clone(),
        }
    }

    fn r_backward(
        act: &Activation,
        io: &LayerIo,
        cross: Option<(&Tensor<2>, &Tensor<3>)>,
        r_delta: Tensor<3>,
    ) -> Tensor<3> {
        let mut rd = match act.slope(io) {
            Some(s) => lift(&s) * r_delta,
            None => r_delta,
        };
        if let (Some((delta, rz)), Some(c)) = (cross, act.curvature(io)) {
            rd = rd + lift(&(c * delta.clone())) * rz.clone();
        }
        rd
    }
}

/// The host kernels of [`host_activation`] where they apply: tanh in f32, tanh's backward
/// product, and the R-passes of tanh and of ReLU over row-major blocks; burn's ops for the
/// rest (f64 tanh, ReLU's forward and backward, the identity, strided blocks).
impl<T: host_activation::Float> ActivationKernels for Host<T> {
    fn forward(act: &Activation, z: Tensor<2>) -> Tensor<2> {
        match act.kind {
            ActivationKind::Tanh if T::dtype() == DType::F32 => host_activation::tanh(z),
            _ => Burn::forward(act, z),
        }
    }

    fn backward(act: &Activation, io: &LayerIo, delta: Tensor<2>) -> Tensor<2> {
        match act.kind {
            ActivationKind::Tanh => host_activation::tanh_backward::<T>(io.a_out, delta),
            _ => Burn::backward(act, io, delta),
        }
    }

    fn r_forward(act: &Activation, io: &LayerIo, rz: &Tensor<3>) -> Tensor<3> {
        let host = match act.kind {
            ActivationKind::Tanh => host_activation::tanh_r_forward::<T>(io.a_out, rz),
            ActivationKind::Relu => host_activation::relu_r::<T>(io.a_in, rz),
            ActivationKind::Identity => None,
        };
        host.unwrap_or_else(|| Burn::r_forward(act, io, rz))
    }

    fn r_backward(
        act: &Activation,
        io: &LayerIo,
        cross: Option<(&Tensor<2>, &Tensor<3>)>,
        r_delta: Tensor<3>,
    ) -> Tensor<3> {
        let host = match act.kind {
            ActivationKind::Tanh => {
                host_activation::tanh_r_backward::<T>(io.a_out, &r_delta, cross)
            }
            ActivationKind::Relu => host_activation::relu_r::<T>(io.a_in, &r_delta),
            ActivationKind::Identity => None,
        };
        host.unwrap_or_else(|| Burn::r_backward(act, io, cross, r_delta))
    }
}
