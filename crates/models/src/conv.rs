//! 2-D convolution, valid padding, stride 1: z = W ⊛ a + b with W [c_o, c_i, kh, kw], b [c_o];
//! θ_l = [vec(W); b]. Activations travel flat as [n, c·h·w] and are reshaped here.
//!
//! With the patches P = unfold(a), [n, c_i·kh·kw, L] (L = h'·w' output positions), a
//! convolution is the dense map z_n = W P_n + b per position, so every pass is the dense
//! layer's formula over (sample, position) pairs:
//! - backward: g_W = Σ_{n,l} δ P_ᵀ, g_b = Σ_{n,l} δ, δ_in = fold(Wᵀ δ)
//! - per sample: g_W,n = δ_n P_nᵀ (the per-sample gradients are small and materialized)
//! - R-forward: R z = W ⊛ R a + V_W ⊛ a + V_b
//! - R-backward: R g_W = Σ R δ Pᵀ + Σ δ (R P)ᵀ, R g_b = Σ R δ, R δ_in = fold(Wᵀ R δ + V_Wᵀ δ)
//!   (Gauss-Newton: without the δ terms)

use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::host_conv::{self, Geometry, Real, tensor, values};
use crate::host_ops;
use crate::kernels::{Burn, Engine, Host, with_kernels};
use crate::layer::{Backward, Layer, LayerIo, RBackward, RIo, add_terms};

/// A valid, stride-1 convolution on `[c_i, h, w]` inputs.
#[derive(Debug, Clone)]
pub struct Conv2d {
    name: String,
    c_in: usize,
    c_out: usize,
    kernel: [usize; 2],
    input: [usize; 2],
}

impl Conv2d {
    /// c_in → c_out channels with a kh × kw kernel, on h × w inputs.
    pub fn new(
        name: impl Into<String>,
        c_in: usize,
        c_out: usize,
        kernel: [usize; 2],
        input: [usize; 2],
    ) -> Self {
        assert!(
            kernel[0] <= input[0] && kernel[1] <= input[1],
            "kernel larger than input"
        );
        Conv2d {
            name: name.into(),
            c_in,
            c_out,
            kernel,
            input,
        }
    }

    /// Output height and width.
    pub fn output(&self) -> [usize; 2] {
        [
            self.input[0] - self.kernel[0] + 1,
            self.input[1] - self.kernel[1] + 1,
        ]
    }

    fn geometry(&self) -> Geometry {
        Geometry {
            c_in: self.c_in,
            c_out: self.c_out,
            input: self.input,
            kernel: self.kernel,
        }
    }

    /// The weight part's length c_o·c_i·kh·kw.
    fn n_weights(&self) -> usize {
        self.c_out * self.patch()
    }

    /// Direction rows [k, D_l] split into filters [k, c_o·c_i·kh·kw] and biases [k, c_o].
    fn split_directions<T: Copy>(&self, v: &[T], k: usize) -> (Vec<T>, Vec<T>) {
        let (p, d) = (self.n_weights(), self.n_weights() + self.c_out);
        let rows = || (0..k).map(|r| &v[r * d..(r + 1) * d]);
        (
            rows().flat_map(|r| r[..p].iter().copied()).collect(),
            rows().flat_map(|r| r[p..].iter().copied()).collect(),
        )
    }

    /// c_i · kh · kw, the length of one patch.
    fn patch(&self) -> usize {
        self.c_in * self.kernel[0] * self.kernel[1]
    }

    fn positions(&self) -> usize {
        let [h, w] = self.output();
        h * w
    }

    fn image(&self, a: Tensor<2>) -> Tensor<4> {
        let n = a.dims()[0];
        a.reshape([n, self.c_in, self.input[0], self.input[1]])
    }

    /// W [c_o, c_i, kh, kw] and b [c_o].
    fn weights(&self, theta: &Tensor<1>) -> (Tensor<4>, Tensor<1>) {
        let p = self.c_out * self.patch();
        let w = theta.clone().narrow(0, 0, p).reshape([
            self.c_out,
            self.c_in,
            self.kernel[0],
            self.kernel[1],
        ]);
        (w, theta.clone().narrow(0, p, self.c_out))
    }

    /// P = unfold(a), [n, c_i·kh·kw, L], patch entries ordered (channel, row, column) as
    /// burn's `unfold4d`. Built from kh·kw shifted slices: burn 0.22's ndarray `unfold4d` and
    /// `fold4d` took 0.3 s and 15 s for convyu's first layer at n = 1200; the slices take
    /// 0.2 s for both. (Host memory now takes `host_conv` instead; GPUs use these passes.)
    fn patches(&self, a: &Tensor<2>) -> Tensor<3> {
        let x = self.image(a.clone());
        let n = x.dims()[0];
        let ([kh, kw], [ho, wo]) = (self.kernel, self.output());
        let parts = (0..kh)
            .flat_map(|i| (0..kw).map(move |j| (i, j)))
            .map(|(i, j)| {
                x.clone()
                    .slice([0..n, 0..self.c_in, i..i + ho, j..j + wo])
                    .unsqueeze_dim::<5>(2)
            })
            .collect();
        host_ops::cat(parts, 2).reshape([n, self.patch(), ho * wo])
    }

    /// fold of columns [m, c_i·kh·kw, L] back to images (each patch entry added at its
    /// position), flat [m, c_i·h·w]: the adjoint of [`Conv2d::patches`], by shifted adds.
    fn fold(&self, cols: Tensor<3>) -> Tensor<2> {
        let m = cols.dims()[0];
        let ([kh, kw], [ho, wo], [h, w]) = (self.kernel, self.output(), self.input);
        let c = self.c_in;
        let cols = cols.reshape([m, c, kh, kw, ho, wo]);
        let mut out = Tensor::<4>::zeros([m, c, h, w], (&cols.device(), cols.dtype()));
        for i in 0..kh {
            for j in 0..kw {
                let part = cols
                    .clone()
                    .slice([0..m, 0..c, i..i + 1, j..j + 1, 0..ho, 0..wo])
                    .reshape([m, c, ho, wo]);
                let window = [0..m, 0..c, i..i + ho, j..j + wo];
                let cur = out.clone().slice(window.clone());
                out = out.slice_assign(window, cur + part);
            }
        }
        out.reshape([m, c * h * w])
    }

    /// [k, n, c_o·L] → [k, c_o, n·L]: channels first, (sample, position) pairs flattened.
    fn by_channel(&self, t: Tensor<3>) -> Tensor<3> {
        let [k, n, _] = t.dims();
        t.reshape([k, n, self.c_out, self.positions()])
            .swap_dims(1, 2)
            .reshape([k, self.c_out, n * self.positions()])
    }

    /// Patches as [n·L, c_i·kh·kw].
    fn patch_rows(&self, p: Tensor<3>) -> Tensor<2> {
        let n = p.dims()[0];
        p.swap_dims(1, 2)
            .reshape([n * self.positions(), self.patch()])
    }

    /// The convolution of images x [m, c_i·h·w] with c filters w [c, c_i, kh, kw] (and biases
    /// [c]), [m, c·L], by the backend's kernel (host memory takes `host_conv` instead).
    fn convolve(&self, x: Tensor<2>, w: Tensor<4>, b: Option<Tensor<1>>) -> Tensor<2> {
        let m = x.dims()[0];
        let c = w.dims()[0];
        let opts = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        conv2d(self.image(x), w, b, opts).reshape([m, c * self.positions()])
    }

    /// Wᵀ-columns of cotangents t [m, c_o·L] with weights w [c_o, c_i·kh·kw]: fold(Wᵀ t).
    fn transpose_conv(&self, w_flat: Tensor<2>, t: Tensor<2>) -> Tensor<2> {
        let m = t.dims()[0];
        let cols = w_flat
            .transpose()
            .matmul(
                t.reshape([m, self.c_out, self.positions()])
                    .swap_dims(0, 1)
                    .reshape([self.c_out, m * self.positions()]),
            )
            .reshape([self.patch(), m, self.positions()])
            .swap_dims(0, 1);
        self.fold(cols)
    }
}

impl Layer for Conv2d {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_dim(&self) -> usize {
        self.c_in * self.input[0] * self.input[1]
    }

    fn out_dim(&self) -> usize {
        self.c_out * self.positions()
    }

    fn n_params(&self) -> usize {
        self.c_out * self.patch() + self.c_out
    }

    fn forward(&self, theta: Option<&Tensor<1>>, a_in: Tensor<2>) -> Tensor<2> {
        let theta = theta.expect("a convolution has parameters");
        with_kernels!(Engine::of(&a_in).and(theta), K => K::forward(self, theta, a_in))
    }

    fn backward(&self, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        let engine = Engine::of(&delta).and_theta(io.theta);
        with_kernels!(engine, K => K::backward(self, io, delta, need_delta_in))
    }

    fn per_sample_grads(&self, io: LayerIo, delta: &Tensor<2>) -> Option<Tensor<2>> {
        let engine = Engine::of(delta).and_theta(io.theta);
        with_kernels!(engine, K => K::per_sample_grads(self, io, delta))
    }

    fn r_forward(&self, io: LayerIo, r: RIo) -> Option<Tensor<3>> {
        with_kernels!(Engine::of(io.a_in).and_theta(io.theta), K => K::r_forward(self, io, r))
    }

    fn r_backward(
        &self,
        io: LayerIo,
        r: RIo,
        delta: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need_delta_in: bool,
    ) -> RBackward {
        let engine = Engine::of(&r_delta).and_theta(io.theta);
        with_kernels!(engine, K => K::r_backward(self, io, r, delta, r_delta, need_delta_in))
    }
}

/// A convolution's passes as a kernel object runs them ([`crate::kernels`]); each is the
/// [`Layer`] method of the same name.
trait ConvKernels {
    fn forward(c: &Conv2d, theta: &Tensor<1>, a_in: Tensor<2>) -> Tensor<2>;

    fn backward(c: &Conv2d, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward;

    fn per_sample_grads(c: &Conv2d, io: LayerIo, delta: &Tensor<2>) -> Option<Tensor<2>>;

    fn r_forward(c: &Conv2d, io: LayerIo, r: RIo) -> Option<Tensor<3>>;

    fn r_backward(
        c: &Conv2d,
        io: LayerIo,
        r: RIo,
        delta: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need_delta_in: bool,
    ) -> RBackward;
}

/// burn's ops on any backend: the module's formulas over the patches and burn's `conv2d`.
impl ConvKernels for Burn {
    fn forward(c: &Conv2d, theta: &Tensor<1>, a_in: Tensor<2>) -> Tensor<2> {
        let (w, b) = c.weights(theta);
        c.convolve(a_in, w, Some(b))
    }

    fn backward(c: &Conv2d, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        let (w, _) = c.weights(io.theta.expect("a convolution has parameters"));
        let n = delta.dims()[0];
        let d = c
            .by_channel(delta.clone().unsqueeze_dim(0))
            .reshape([c.c_out, n * c.positions()]);
        let gw = d
            .clone()
            .matmul(c.patch_rows(c.patches(io.a_in)))
            .reshape([c.c_out * c.patch()]);
        let gb = d.sum_dim(1).reshape([c.c_out]);
        Backward {
            grad: vec![gw, gb],
            delta_in: need_delta_in
                .then(|| c.transpose_conv(w.reshape([c.c_out, c.patch()]), delta)),
        }
    }

    fn per_sample_grads(c: &Conv2d, io: LayerIo, delta: &Tensor<2>) -> Option<Tensor<2>> {
        let n = delta.dims()[0];
        let d = delta.clone().reshape([n, c.c_out, c.positions()]);
        // [n, c_o, L] @ [n, L, c_i·kh·kw] → [n, c_o, c_i·kh·kw].
        let gw = d
            .clone()
            .matmul(c.patches(io.a_in).swap_dims(1, 2))
            .reshape([n, c.c_out * c.patch()]);
        let gb = d.sum_dim(2).reshape([n, c.c_out]);
        Some(host_ops::cat(vec![gw, gb], 1))
    }

    fn r_forward(c: &Conv2d, io: LayerIo, r: RIo) -> Option<Tensor<3>> {
        let (w, _) = c.weights(io.theta.expect("a convolution has parameters"));
        let n = io.a_in.dims()[0];
        let from_input = r.ra_in.map(|ra| {
            let k = ra.dims()[0];
            let x = ra.clone().reshape([k * n, c.in_dim()]);
            c.convolve(x, w.clone(), None).reshape([k, n, c.out_dim()])
        });
        let from_params = r.v.map(|v| {
            let k = v.dims()[0];
            let p = c.c_out * c.patch();
            // The k weight directions as k·c_o output channels of one convolution.
            let vw =
                v.clone()
                    .narrow(1, 0, p)
                    .reshape([k * c.c_out, c.c_in, c.kernel[0], c.kernel[1]]);
            let vb = v.clone().narrow(1, p, c.c_out).reshape([k * c.c_out]);
            c.convolve(io.a_in.clone(), vw, Some(vb))
                .reshape([n, k, c.out_dim()])
                .swap_dims(0, 1)
        });
        add_terms(from_input, from_params)
    }

    fn r_backward(
        c: &Conv2d,
        io: LayerIo,
        r: RIo,
        delta: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need_delta_in: bool,
    ) -> RBackward {
        let (w, _) = c.weights(io.theta.expect("a convolution has parameters"));
        let [k, n, _] = r_delta.dims();
        let (pl, cp) = (n * c.positions(), c.patch());
        let rd = c.by_channel(r_delta.clone()); // [k, c_o, n·L]
        let mut rgw = rd
            .clone()
            .reshape([k * c.c_out, pl])
            .matmul(c.patch_rows(c.patches(io.a_in)))
            .reshape([k, c.c_out * cp]);
        if let (Some(delta), Some(ra)) = (delta, r.ra_in) {
            let d = c
                .by_channel(delta.clone().unsqueeze_dim(0))
                .reshape([c.c_out, pl]);
            let rp = c.patches(&ra.clone().reshape([k * n, c.in_dim()])); // [k·n, cp, L]
            let rp_rows = rp
                .reshape([k, n, cp, c.positions()])
                .permute([1, 3, 0, 2])
                .reshape([pl, k * cp]);
            let cross = d
                .matmul(rp_rows)
                .reshape([c.c_out, k, cp])
                .swap_dims(0, 1)
                .reshape([k, c.c_out * cp]);
            rgw = rgw + cross;
        }
        let rgb = rd.sum_dim(2).reshape([k, c.c_out]);
        let delta_in = need_delta_in.then(|| {
            let w_flat = w.reshape([c.c_out, cp]);
            let mut out = c
                .transpose_conv(w_flat, r_delta.reshape([k * n, c.out_dim()]))
                .reshape([k, n, c.in_dim()]);
            if let (Some(delta), Some(v)) = (delta, r.v) {
                // V_Wᵀ δ for all k: [k·cp, c_o] @ [c_o, n·L] → [k, n, cp, L] → fold.
                let vw = v
                    .clone()
                    .narrow(1, 0, c.c_out * cp)
                    .reshape([k, c.c_out, cp]);
                let d = c
                    .by_channel(delta.clone().unsqueeze_dim(0))
                    .reshape([c.c_out, pl]);
                let cols = vw
                    .swap_dims(1, 2)
                    .reshape([k * cp, c.c_out])
                    .matmul(d)
                    .reshape([k, cp, n, c.positions()])
                    .swap_dims(1, 2)
                    .reshape([k * n, cp, c.positions()]);
                out = out + c.fold(cols).reshape([k, n, c.in_dim()]);
            }
            out
        });
        RBackward {
            grad: vec![rgw, rgb],
            delta_in,
        }
    }
}

/// The host kernels of `host_conv` on host memory: the same formulas.
impl<T: Real> ConvKernels for Host<T> {
    fn forward(c: &Conv2d, theta: &Tensor<1>, a_in: Tensor<2>) -> Tensor<2> {
        let (n, device, p) = (a_in.dims()[0], a_in.device(), c.n_weights());
        let th = values::<T, 1>(theta.clone());
        let x = values::<T, 2>(a_in);
        let z = host_conv::forward(&c.geometry(), 1, n, &x, &th[..p], Some(&th[p..]));
        tensor(z, [n, c.out_dim()], &device)
    }

    fn backward(c: &Conv2d, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        let (n, device, g) = (delta.dims()[0], delta.device(), c.geometry());
        let th = values::<T, 1>(io.theta.expect("a convolution has parameters").clone());
        let d = values::<T, 2>(delta);
        let grad = host_conv::weight_grads(&g, 1, n, &values::<T, 2>(io.a_in.clone()), &d, true);
        Backward {
            grad: vec![tensor(grad, [c.n_params()], &device)],
            delta_in: need_delta_in.then(|| {
                let t = host_conv::transpose(&g, 1, n, &th[..c.n_weights()], &d);
                tensor(t, [n, c.in_dim()], &device)
            }),
        }
    }

    fn per_sample_grads(c: &Conv2d, io: LayerIo, delta: &Tensor<2>) -> Option<Tensor<2>> {
        let n = delta.dims()[0];
        let (a, d) = (
            values::<T, 2>(io.a_in.clone()),
            values::<T, 2>(delta.clone()),
        );
        let g = host_conv::per_sample_grads(&c.geometry(), n, &a, &d);
        Some(tensor(g, [n, c.n_params()], &delta.device()))
    }

    fn r_forward(c: &Conv2d, io: LayerIo, r: RIo) -> Option<Tensor<3>> {
        let (n, device, g) = (io.a_in.dims()[0], io.a_in.device(), c.geometry());
        let th = values::<T, 1>(io.theta.expect("a convolution has parameters").clone());
        let from_input = r.ra_in.map(|ra| {
            let k = ra.dims()[0];
            let z = host_conv::forward(
                &g,
                k,
                n,
                &values::<T, 3>(ra.clone()),
                &th[..c.n_weights()],
                None,
            );
            tensor(z, [k, n, c.out_dim()], &device)
        });
        let from_params = r.v.map(|v| {
            let k = v.dims()[0];
            let (vw, vb) = c.split_directions(&values::<T, 2>(v.clone()), k);
            let x = values::<T, 2>(io.a_in.clone());
            let z = host_conv::forward(&g, k, n, &x, &vw, Some(&vb));
            tensor(z, [k, n, c.out_dim()], &device)
        });
        add_terms(from_input, from_params)
    }

    fn r_backward(
        c: &Conv2d,
        io: LayerIo,
        r: RIo,
        delta: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need_delta_in: bool,
    ) -> RBackward {
        let [k, n, _] = r_delta.dims();
        let (device, g, p) = (r_delta.device(), c.geometry(), c.n_weights());
        let th = values::<T, 1>(io.theta.expect("a convolution has parameters").clone());
        let rd = values::<T, 3>(r_delta);
        let d = delta.map(|d| values::<T, 2>(d.clone()));
        let mut grads =
            host_conv::weight_grads(&g, k, n, &values::<T, 2>(io.a_in.clone()), &rd, true);
        if let (Some(d), Some(ra)) = (&d, r.ra_in) {
            // Σ δ (R P)ᵀ: the patches of R a_in against the shared δ.
            let cross = host_conv::weight_grads(&g, k, n, &values::<T, 3>(ra.clone()), d, false);
            for (row, extra) in grads.chunks_mut(c.n_params()).zip(cross.chunks(p)) {
                row[..p].iter_mut().zip(extra).for_each(|(x, &y)| *x += y);
            }
        }
        let delta_in = need_delta_in.then(|| {
            let mut out = host_conv::transpose(&g, k, n, &th[..p], &rd);
            if let (Some(d), Some(v)) = (&d, r.v) {
                // fold(V_Wᵀ δ) for each direction's filters.
                let (vw, _) = c.split_directions(&values::<T, 2>(v.clone()), k);
                let extra = host_conv::transpose(&g, k, n, &vw, d);
                out.iter_mut().zip(extra).for_each(|(x, y)| *x += y);
            }
            tensor(out, [k, n, c.in_dim()], &device)
        });
        RBackward {
            grad: vec![tensor(grads, [k, c.n_params()], &device)],
            delta_in,
        }
    }
}
