//! Dense (fully connected) layer: z = a Wᵀ + b, θ_l = [vec(W) (o×i, row-major); b (o)].
//!
//! - backward: g_W = δᵀ a, g_b = Σ_n δ, δ_in = δ W
//! - per sample: g_W,n = δ_n a_nᵀ, g_b,n = δ_n
//! - R-forward: R z = R a Wᵀ + a V_Wᵀ + V_b
//! - R-backward: R g_W = R δᵀ a + δᵀ R a, R g_b = Σ_n R δ, R δ_in = R δ W + δ V_W
//!   (Gauss-Newton: without δᵀ R a and δ V_W)
//!
//! Every k-direction product is one 2-D matmul over a reshaped operand, not k small ones.

use burn::prelude::*;

use crate::layer::{Backward, Factors, Layer, LayerIo, RBackward, RIo, add_terms};

/// A dense layer with `inputs` → `outputs` features and a bias.
#[derive(Debug, Clone)]
pub struct Dense {
    name: String,
    inputs: usize,
    outputs: usize,
}

impl Dense {
    /// A dense layer i → o.
    pub fn new(name: impl Into<String>, inputs: usize, outputs: usize) -> Self {
        Dense {
            name: name.into(),
            inputs,
            outputs,
        }
    }

    /// W [o, i] and b [o] from θ_l.
    fn weights(&self, theta: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        let (o, i) = (self.outputs, self.inputs);
        let w = theta.clone().narrow(0, 0, o * i).reshape([o, i]);
        let b = theta.clone().narrow(0, o * i, o);
        (w, b)
    }

    /// V_W [k, o, i] and V_b [k, o] from V_l [k, D_l].
    fn directions(&self, v: &Tensor<2>) -> (Tensor<3>, Tensor<2>) {
        let (o, i) = (self.outputs, self.inputs);
        let k = v.dims()[0];
        let vw = v.clone().narrow(1, 0, o * i).reshape([k, o, i]);
        let vb = v.clone().narrow(1, o * i, o);
        (vw, vb)
    }
}

impl Layer for Dense {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_dim(&self) -> usize {
        self.inputs
    }

    fn out_dim(&self) -> usize {
        self.outputs
    }

    fn n_params(&self) -> usize {
        self.outputs * self.inputs + self.outputs
    }

    fn forward(&self, theta: Option<&Tensor<1>>, a_in: Tensor<2>) -> Tensor<2> {
        let (w, b) = self.weights(theta.expect("a dense layer has parameters"));
        a_in.matmul(w.transpose()) + b.unsqueeze_dim::<2>(0)
    }

    fn backward(&self, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        let (w, _) = self.weights(io.theta.expect("a dense layer has parameters"));
        let gw = delta
            .clone()
            .transpose()
            .matmul(io.a_in.clone())
            .reshape([self.outputs * self.inputs]);
        let gb = delta.clone().sum_dim(0).reshape([self.outputs]);
        Backward {
            grad: Some(Tensor::cat(vec![gw, gb], 0)),
            delta_in: need_delta_in.then(|| delta.matmul(w)),
        }
    }

    fn per_sample_grads(&self, io: LayerIo, delta: &Tensor<2>) -> Option<Tensor<2>> {
        self.per_sample_factors(io, delta).map(|f| f.materialize())
    }

    fn per_sample_factors(&self, io: LayerIo, delta: &Tensor<2>) -> Option<Factors> {
        let n = delta.dims()[0];
        let ones = Tensor::<2>::ones([n, 1], (&delta.device(), delta.dtype()));
        Some(Factors::Outer {
            inputs: Tensor::cat(vec![io.a_in.clone(), ones], 1),
            cotangents: delta.clone(),
        })
    }

    fn r_forward(&self, io: LayerIo, r: RIo) -> Option<Tensor<3>> {
        let (w, _) = self.weights(io.theta.expect("a dense layer has parameters"));
        let (o, i) = (self.outputs, self.inputs);
        let n = io.a_in.dims()[0];
        let from_input = r.ra_in.map(|ra| {
            let k = ra.dims()[0];
            ra.clone()
                .reshape([k * n, i])
                .matmul(w.transpose())
                .reshape([k, n, o])
        });
        let from_params = r.v.map(|v| {
            let k = v.dims()[0];
            let (vw, vb) = self.directions(v);
            // a V_Wᵀ for all k at once: [n, i] @ [i, k·o] → [n, k, o] → [k, n, o].
            let avw = io
                .a_in
                .clone()
                .matmul(vw.reshape([k * o, i]).transpose())
                .reshape([n, k, o])
                .swap_dims(0, 1);
            avw + vb.unsqueeze_dim::<3>(1)
        });
        add_terms(from_input, from_params)
    }

    fn r_backward(
        &self,
        io: LayerIo,
        r: RIo,
        delta: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need_delta_in: bool,
    ) -> RBackward {
        let (w, _) = self.weights(io.theta.expect("a dense layer has parameters"));
        let (o, i) = (self.outputs, self.inputs);
        let [k, n, _] = r_delta.dims();
        // R g_W = R δᵀ a: [k·o, n] @ [n, i].
        let mut rgw = r_delta
            .clone()
            .swap_dims(1, 2)
            .reshape([k * o, n])
            .matmul(io.a_in.clone())
            .reshape([k, o * i]);
        if let (Some(delta), Some(ra)) = (delta, r.ra_in) {
            // δᵀ R a: [o, n] @ [n, k·i] → [o, k, i] → [k, o, i].
            let cross = delta
                .clone()
                .transpose()
                .matmul(ra.clone().swap_dims(0, 1).reshape([n, k * i]))
                .reshape([o, k, i])
                .swap_dims(0, 1)
                .reshape([k, o * i]);
            rgw = rgw + cross;
        }
        let rgb = r_delta.clone().sum_dim(1).reshape([k, o]);
        let delta_in = need_delta_in.then(|| {
            let mut rd = r_delta.reshape([k * n, o]).matmul(w).reshape([k, n, i]);
            if let (Some(delta), Some(v)) = (delta, r.v) {
                let (vw, _) = self.directions(v);
                // δ V_W: [n, o] @ [o, k·i] → [n, k, i] → [k, n, i].
                let dv = delta
                    .clone()
                    .matmul(vw.swap_dims(0, 1).reshape([o, k * i]))
                    .reshape([n, k, i])
                    .swap_dims(0, 1);
                rd = rd + dv;
            }
            rd
        });
        RBackward {
            grad: Some(Tensor::cat(vec![rgw, rgb], 1)),
            delta_in,
        }
    }
}
