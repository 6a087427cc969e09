//! 2 × 2 max-pooling with stride 2 over `[c, h, w]` inputs (h, w even), without parameters.
//!
//! The pass routes by the forward pass's argmax indices m: z = a[m]. It is piecewise linear,
//! so its R-passes are its passes: R z = (R a)[m]; δ_in = scatter of δ to m; R δ_in = scatter
//! of R δ to m. On the host the forward pass leaves m as its [`Memo`], which the other passes
//! read; without one (burn's kernels, or a pass called on its own) they recompute m from a_in.

use burn::prelude::*;
use burn::tensor::module::{max_pool2d_with_indices, max_pool2d_with_indices_backward};
use burn::tensor::ops::MaxPoolOptions;

use crate::host_conv::{self, Real, tensor, values};
use crate::kernels::{Burn, Engine, Host, with_kernels};
use std::sync::Arc;

use crate::layer::{Backward, Layer, LayerIo, Memo, RBackward, RIo};

/// 2 × 2 max-pooling.
#[derive(Debug, Clone)]
pub struct MaxPool2 {
    name: String,
    channels: usize,
    input: [usize; 2],
}

impl MaxPool2 {
    /// Pooling of `channels` planes of h × w (both even).
    pub fn new(name: impl Into<String>, channels: usize, input: [usize; 2]) -> Self {
        assert!(
            input[0].is_multiple_of(2) && input[1].is_multiple_of(2),
            "2×2 pooling needs even sizes"
        );
        MaxPool2 {
            name: name.into(),
            channels,
            input,
        }
    }

    /// Output height and width.
    pub fn output(&self) -> [usize; 2] {
        [self.input[0] / 2, self.input[1] / 2]
    }

    fn image(&self, a: Tensor<2>) -> Tensor<4> {
        let n = a.dims()[0];
        a.reshape([n, self.channels, self.input[0], self.input[1]])
    }

    /// Host memory: the argmax of each window of a_in's values `a` [n, c·h·w] as flat
    /// in-plane positions [n·c, h/2·w/2].
    fn host_argmax<T: Real>(&self, a: &[T]) -> Vec<u32> {
        let planes = a.len() / self.planes().0;
        host_conv::pool_argmax(planes, self.input, a)
    }

    /// Host memory: the argmax of the pass's a_in, from the forward pass's memo when it left
    /// one, else from a_in's values.
    fn host_argmax_of<T: Real>(&self, io: &LayerIo) -> Arc<Vec<u32>> {
        match io.memo {
            Some(Memo::PoolArgmax(arg)) => arg.clone(),
            None => Arc::new(self.host_argmax(&values::<T, 2>(io.a_in.clone()))),
        }
    }

    /// In-plane positions per input plane and per output plane.
    fn planes(&self) -> (usize, usize) {
        let [h2, w2] = self.output();
        (self.input[0] * self.input[1], h2 * w2)
    }

    /// Host memory: the gather z[r] = src[r][argmax], for `src` [m, c·h·w] with m a multiple
    /// of a_in's n, [m, c·h'·w'].
    fn host_gather<T: Real>(&self, arg: &[u32], src: &[T]) -> Vec<T> {
        let (plane, outs) = self.planes();
        host_conv::pool_gather(arg, outs, plane, src)
    }

    /// Host memory: the scatter of cotangents t [m, c·h'·w'] to the argmax positions,
    /// [m, c·h·w].
    fn host_scatter<T: Real>(&self, arg: &[u32], t: &[T]) -> Vec<T> {
        let (plane, outs) = self.planes();
        host_conv::pool_scatter(arg, outs, plane, t)
    }

    /// Argmax indices [n, c, h/2, w/2], flat positions h·W + w in each input plane.
    fn indices(&self, a_in: &Tensor<2>) -> Tensor<4, Int> {
        max_pool2d_with_indices(self.image(a_in.clone()), MaxPoolOptions::new([2, 2])).1
    }

    /// Scatters cotangents t [m, c·h'·w'] to the argmax positions for m = r·n samples whose
    /// indices repeat every n rows.
    fn scatter(&self, t: Tensor<2>, idx: &Tensor<4, Int>) -> Tensor<2> {
        let m = t.dims()[0];
        let n = idx.dims()[0];
        let [h2, w2] = self.output();
        let idx = if m == n {
            idx.clone()
        } else {
            idx.clone().repeat_dim(0, m / n)
        };
        let shape = Tensor::<4>::zeros(
            [m, self.channels, self.input[0], self.input[1]],
            (&t.device(), t.dtype()),
        );
        let grad = t.reshape([m, self.channels, h2, w2]);
        max_pool2d_with_indices_backward(shape, [2, 2], [2, 2], [0, 0], [1, 1], false, grad, idx)
            .reshape([m, self.in_dim()])
    }
}

impl Layer for MaxPool2 {
    fn name(&self) -> &str {
        &self.name
    }

    fn in_dim(&self) -> usize {
        self.channels * self.input[0] * self.input[1]
    }

    fn out_dim(&self) -> usize {
        let [h, w] = self.output();
        self.channels * h * w
    }

    fn n_params(&self) -> usize {
        0
    }

    fn forward(&self, theta: Option<&Tensor<1>>, a_in: Tensor<2>) -> Tensor<2> {
        self.forward_memo(theta, a_in).0
    }

    fn forward_memo(&self, _: Option<&Tensor<1>>, a_in: Tensor<2>) -> (Tensor<2>, Option<Memo>) {
        with_kernels!(Engine::of(&a_in), K => K::forward_memo(self, a_in))
    }

    fn backward(&self, io: LayerIo, delta: Tensor<2>, need_delta_in: bool) -> Backward {
        Backward {
            grad: Vec::new(),
            delta_in: need_delta_in
                .then(|| with_kernels!(Engine::of(&delta), K => K::scatter(self, &io, delta))),
        }
    }

    fn per_sample_grads(&self, _: LayerIo, _: &Tensor<2>) -> Option<Tensor<2>> {
        None
    }

    fn r_forward(&self, io: LayerIo, r: RIo) -> Option<Tensor<3>> {
        let ra = r.ra_in?;
        Some(with_kernels!(Engine::of(ra), K => K::r_gather(self, &io, ra)))
    }

    fn r_backward(
        &self,
        io: LayerIo,
        _: RIo,
        _: Option<&Tensor<2>>,
        r_delta: Tensor<3>,
        need: bool,
    ) -> RBackward {
        RBackward {
            grad: Vec::new(),
            delta_in: need.then(
                || with_kernels!(Engine::of(&r_delta), K => K::r_scatter(self, &io, r_delta)),
            ),
        }
    }
}

/// Pooling's passes as a kernel object runs them ([`crate::kernels`]).
trait PoolKernels {
    /// [`Layer::forward_memo`]: z = a[m], and m when the kernels keep it.
    fn forward_memo(p: &MaxPool2, a_in: Tensor<2>) -> (Tensor<2>, Option<Memo>);

    /// δ_in: δ [n, c·h'·w'] scattered to m, [n, c·h·w].
    fn scatter(p: &MaxPool2, io: &LayerIo, delta: Tensor<2>) -> Tensor<2>;

    /// R z = (R a)[m] for R a [k, n, c·h·w], [k, n, c·h'·w'].
    fn r_gather(p: &MaxPool2, io: &LayerIo, ra: &Tensor<3>) -> Tensor<3>;

    /// R δ_in: R δ [k, n, c·h'·w'] scattered to m, [k, n, c·h·w].
    fn r_scatter(p: &MaxPool2, io: &LayerIo, r_delta: Tensor<3>) -> Tensor<3>;
}

/// burn's pooling kernels, m recomputed from a_in by each pass.
impl PoolKernels for Burn {
    fn forward_memo(p: &MaxPool2, a_in: Tensor<2>) -> (Tensor<2>, Option<Memo>) {
        let n = a_in.dims()[0];
        let z = max_pool2d_with_indices(p.image(a_in), MaxPoolOptions::new([2, 2]))
            .0
            .reshape([n, p.out_dim()]);
        (z, None)
    }

    fn scatter(p: &MaxPool2, io: &LayerIo, delta: Tensor<2>) -> Tensor<2> {
        p.scatter(delta, &p.indices(io.a_in))
    }

    fn r_gather(p: &MaxPool2, io: &LayerIo, ra: &Tensor<3>) -> Tensor<3> {
        let [k, n, _] = ra.dims();
        let [h2, w2] = p.output();
        let plane = p.input[0] * p.input[1];
        let idx = p
            .indices(io.a_in)
            .reshape([n, p.channels, h2 * w2])
            .repeat_dim(0, k);
        let gathered = ra
            .clone()
            .reshape([k * n, p.channels, plane])
            .gather(2, idx);
        gathered.reshape([k, n, p.out_dim()])
    }

    fn r_scatter(p: &MaxPool2, io: &LayerIo, r_delta: Tensor<3>) -> Tensor<3> {
        let [k, n, _] = r_delta.dims();
        p.scatter(r_delta.reshape([k * n, p.out_dim()]), &p.indices(io.a_in))
            .reshape([k, n, p.in_dim()])
    }
}

/// The host kernels of `host_conv`, routing by the forward pass's memo.
impl<T: Real> PoolKernels for Host<T> {
    fn forward_memo(p: &MaxPool2, a_in: Tensor<2>) -> (Tensor<2>, Option<Memo>) {
        let (n, device) = (a_in.dims()[0], a_in.device());
        let a = values::<T, 2>(a_in);
        let arg = p.host_argmax(&a);
        let z = p.host_gather(&arg, &a);
        (
            tensor(z, [n, p.out_dim()], &device),
            Some(Memo::PoolArgmax(Arc::new(arg))),
        )
    }

    fn scatter(p: &MaxPool2, io: &LayerIo, delta: Tensor<2>) -> Tensor<2> {
        let (n, device) = (delta.dims()[0], delta.device());
        let t = p.host_scatter(&p.host_argmax_of::<T>(io), &values::<T, 2>(delta));
        tensor(t, [n, p.in_dim()], &device)
    }

    fn r_gather(p: &MaxPool2, io: &LayerIo, ra: &Tensor<3>) -> Tensor<3> {
        let [k, n, _] = ra.dims();
        let z = p.host_gather(&p.host_argmax_of::<T>(io), &values::<T, 3>(ra.clone()));
        tensor(z, [k, n, p.out_dim()], &ra.device())
    }

    fn r_scatter(p: &MaxPool2, io: &LayerIo, r_delta: Tensor<3>) -> Tensor<3> {
        let [k, n, _] = r_delta.dims();
        let device = r_delta.device();
        let t = p.host_scatter(&p.host_argmax_of::<T>(io), &values::<T, 3>(r_delta));
        tensor(t, [k, n, p.in_dim()], &device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{cpu, random_matrix};

    /// The argmax a forward pass leaves as its memo routes every other pass exactly as the
    /// argmax recomputed from a_in does.
    #[test]
    fn passes_with_the_forward_memo_equal_passes_without() {
        let device = cpu();
        let pool = MaxPool2::new("pool", 3, [4, 6]);
        let (n, k) = (5, 2);
        let a_in = random_matrix(n, pool.in_dim(), 1, &device);
        let (a_out, memo) = pool.forward_memo(None, a_in.clone());
        assert!(matches!(memo, Some(Memo::PoolArgmax(_))));
        let io = |memo| LayerIo {
            theta: None,
            a_in: &a_in,
            a_out: &a_out,
            memo,
        };
        let delta = random_matrix(n, pool.out_dim(), 2, &device);
        let ra = random_matrix(k * n, pool.in_dim(), 3, &device).reshape([k, n, pool.in_dim()]);
        let rd = random_matrix(k * n, pool.out_dim(), 4, &device).reshape([k, n, pool.out_dim()]);
        let r = RIo {
            ra_in: Some(&ra),
            v: None,
        };
        let host = |t: Tensor<3>| t.into_data().try_to_vec::<f64>().unwrap();
        let with = io(memo.as_ref());
        let without = io(None);
        let b = |io| pool.backward(io, delta.clone(), true).delta_in.unwrap();
        assert_eq!(host(b(with).unsqueeze()), host(b(without).unsqueeze()));
        let f = |io| pool.r_forward(io, r).unwrap();
        assert_eq!(host(f(with)), host(f(without)));
        let rb = |io| {
            pool.r_backward(io, r, Some(&delta), rd.clone(), true)
                .delta_in
                .unwrap()
        };
        assert_eq!(host(rb(with)), host(rb(without)));
        // and the pooled values are the window maxima the memo points at
        let [x, z] = [a_in, a_out].map(|t| t.into_data().try_to_vec::<f64>().unwrap());
        let Some(Memo::PoolArgmax(arg)) = memo else {
            unreachable!()
        };
        let (plane, outs) = pool.planes();
        for (r, &m) in arg.iter().enumerate() {
            let (p, j) = (r / outs, r % outs);
            assert_eq!(z[p * outs + j], x[p * plane + m as usize]);
        }
    }
}
