//! Dense (fully connected) layer: z = a Wᵀ + b, θ_l = [vec(W) (o×i, row-major); b (o)].
//!
//! - backward: g_W = δᵀ a, g_b = Σ_n δ, δ_in = δ W
//! - per sample: g_W,n = δ_n a_nᵀ, g_b,n = δ_n
//! - R-forward: R z = R a Wᵀ + a V_Wᵀ + V_b
//! - R-backward: R g_W = R δᵀ a + δᵀ R a, R g_b = Σ_n R δ, R δ_in = R δ W + δ V_W
//!   (Gauss-Newton: without δᵀ R a and δ V_W)
//!
//! Every k-direction product is one 2-D matmul over a reshaped operand, or one batched matmul
//! where a reshape would need a transposed copy. Products and concatenations go through
//! [`host_ops`](crate::host_ops), which on host memory reads transposed operands in place.

use burn::prelude::*;

use crate::host_ops::{
    ROWS_IN_PLACE, batched_matmul, batched_matmul_rows, cat, matmul, matmul_each, matmul_plus_row,
    narrow, reshape,
};
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
        let w = narrow(theta.clone(), 0, 0, o * i).reshape([o, i]);
        let b = narrow(theta.clone(), 0, o * i, o);
        (w, b)
    }

    /// V_W [k, o·i] (one [o, i] block per row) and V_b [k, o] from V_l [k, D_l]: views of V.
    fn directions(&self, v: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (o, i) = (self.outputs, self.inputs);
        let vw = narrow(v.clone(), 1, 0, o * i);
        let vb = narrow(v.clone(), 1, o * i, o);
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
        matmul_plus_row(a_in, false, w, true, b)
    }

    fn backward(&self, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        let (w, _) = self.weights(io.theta.expect("a dense layer has parameters"));
        let gw = matmul(delta.clone(), true, io.a_in.clone(), false)
            .reshape([self.outputs * self.inputs]);
        let gb = delta.clone().sum_dim(0).reshape([self.outputs]);
        Backward {
            grad: vec![gw, gb],
            delta_in: need_delta_in.then(|| matmul(delta, false, w, false)),
        }
    }

    fn per_sample_grads(&self, io: LayerIo, delta: &Tensor<2>) -> Option<Tensor<2>> {
        self.per_sample_factors(io, delta).map(|f| f.materialize())
    }

    fn per_sample_factors(&self, io: LayerIo, delta: &Tensor<2>) -> Option<Factors> {
        let n = delta.dims()[0];
        let ones = Tensor::<2>::ones([n, 1], (&delta.device(), delta.dtype()));
        Some(Factors::Outer {
            inputs: cat(vec![io.a_in.clone(), ones], 1),
            cotangents: delta.clone(),
        })
    }

    fn r_forward(&self, io: LayerIo, r: RIo) -> Option<Tensor<3>> {
        let (w, _) = self.weights(io.theta.expect("a dense layer has parameters"));
        let (o, i) = (self.outputs, self.inputs);
        let n = io.a_in.dims()[0];
        let from_input = r.ra_in.map(|ra| {
            let k = ra.dims()[0];
            matmul(ra.clone().reshape([k * n, i]), false, w.clone(), true).reshape([k, n, o])
        });
        let from_params = r.v.map(|v| {
            let (vw, vb) = self.directions(v);
            // a V_Wᵀ for all k directions: [n, i] @ [i, o] each → [k, n, o].
            let avw = if o * i >= ROWS_IN_PLACE {
                batched_matmul_rows(
                    io.a_in.clone().unsqueeze_dim::<3>(0),
                    false,
                    vw,
                    [o, i],
                    true,
                )
            } else {
                let k = vw.dims()[0];
                matmul_each(io.a_in.clone(), reshape(vw, [k, o, i]))
            };
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
        // R g_W = R δᵀ a: per direction [o, n] @ [n, i], R δ read transposed in place.
        let mut rgw = batched_matmul(
            r_delta.clone(),
            true,
            io.a_in.clone().unsqueeze_dim::<3>(0),
            false,
        )
        .reshape([k, o * i]);
        if let (Some(delta), Some(ra)) = (delta, r.ra_in) {
            // δᵀ R a: per direction [o, n] @ [n, i].
            let cross =
                batched_matmul(delta.clone().unsqueeze_dim::<3>(0), true, ra.clone(), false)
                    .reshape([k, o * i]);
            rgw = rgw + cross;
        }
        let rgb = r_delta.clone().sum_dim(1).reshape([k, o]);
        let delta_in = need_delta_in.then(|| {
            let mut rd = matmul(r_delta.reshape([k * n, o]), false, w, false).reshape([k, n, i]);
            if let (Some(delta), Some(v)) = (delta, r.v) {
                let (vw, _) = self.directions(v);
                // δ V_W: per direction [n, o] @ [o, i].
                let dv = batched_matmul_rows(
                    delta.clone().unsqueeze_dim::<3>(0),
                    false,
                    vw,
                    [o, i],
                    false,
                );
                rd = rd + dv;
            }
            rd
        });
        RBackward {
            grad: vec![rgw, rgb],
            delta_in,
        }
    }
}
