//! A network: a stack of layers over one flat θ and a per-sample loss, with every quantity
//! the harness needs, computed by chaining the layers' passes.
//!
//! Training loss L(θ) = (1/N) Σ_n ℓ(f(x_n; θ), y_n). Shapes: n samples, k directions, D
//! parameters, o outputs.
//!
//! - [`Net::gradient`]: ∇L, one forward and one backward pass.
//! - [`Net::per_sample_gradients`]: G = [∇ℓ_1 … ∇ℓ_N]ᵀ, [n, D], chunk by chunk.
//! - [`Net::hvp`]: H V for k directions at once: one forward pass, then an R-forward and an
//!   R-backward pass (Pearlmutter) over all k directions, batched in each matmul. One HVP
//!   costs about 1.5–2 gradients; each further direction adds the R-passes' work.
//! - [`Net::ggn_vp`]: G_F V = (1/N) Σ_n J_nᵀ Λ_n J_n V, the same passes without the
//!   second-derivative terms.
//! - [`Net::ggn_sample`]: ξ = (1/√N) Σ_n J_nᵀ Λ_n^{1/2} z_n with z_n ~ N(0, I_o), so that
//!   Cov ξ = G_F exactly; one backward pass with random output cotangents.

use burn::prelude::*;
use noisescope_data::DeviceDataset;

use crate::error::ModelError;
use crate::host_ops;
use crate::layer::{Factors, Layer, LayerIo, Memo, RIo};
use crate::layout::Layout;
use crate::loss::Loss;
use crate::sample_grads::SampleGradients;

/// A network over a flat θ.
#[derive(Debug)]
pub struct Net {
    /// The zoo name it was built as (`mlp`, `convyu`, …).
    pub name: String,
    layers: Vec<Box<dyn Layer>>,
    /// The per-sample loss ℓ (the method `loss` is L(θ), its mean).
    pub loss_fn: Loss,
    /// θ's named blocks.
    pub layout: Layout,
    /// Offset of each layer's slice of θ.
    offsets: Vec<usize>,
}

/// Activations of one forward pass: a_0 = x, a_1, …, a_L = f, and each layer's memo.
#[derive(Debug, Clone)]
struct Forward {
    acts: Vec<Tensor<2>>,
    memos: Vec<Option<Memo>>,
}

/// A net's state at one θ on one data set, for repeated curvature products
/// ([`Net::linearize`], [`Net::curvature_vp`]).
#[derive(Debug, Clone)]
pub struct Linearization {
    thetas: Vec<Option<Tensor<1>>>,
    fw: Forward,
    /// The targets the loss compares f with.
    y: Option<Tensor<2>>,
    /// δ_l = ∂L/∂a_{l+1} at every layer's output (`None` past the first layer with
    /// parameters, or without the loss gradient).
    deltas: Vec<Option<Tensor<2>>>,
}

impl Net {
    /// A network from layers (their parameter blocks already in `layout`, in layer order).
    ///
    /// # Panics
    /// When the layout's size disagrees with the layers' or consecutive layers' feature counts
    /// disagree: a bug in the zoo, not something a user can cause.
    pub fn new(
        name: impl Into<String>,
        layers: Vec<Box<dyn Layer>>,
        loss: Loss,
        layout: Layout,
    ) -> Self {
        let mut offsets = Vec::with_capacity(layers.len());
        let mut at = 0;
        for (l, pair) in layers
            .iter()
            .zip(layers.iter().skip(1).map(Some).chain([None]))
        {
            offsets.push(at);
            at += l.n_params();
            if let Some(next) = pair {
                assert_eq!(
                    l.out_dim(),
                    next.in_dim(),
                    "{} feeds {}",
                    l.name(),
                    next.name()
                );
            }
        }
        assert_eq!(at, layout.dim(), "layout and layers disagree on D");
        Net {
            name: name.into(),
            layers,
            loss_fn: loss,
            layout,
            offsets,
        }
    }

    /// Checks that θ and `data` fit this net: θ has D entries, inputs have the net's input
    /// features, and targets exist with the net's output width when the loss needs them.
    /// Shape errors inside the passes are bugs; this turns a user's mismatch into an error.
    ///
    /// # Shapes
    /// Checks `theta` against [D], `data.x` against [n, p] with p = [`in_dim`](Self::in_dim) and,
    /// when the loss needs targets, `data.y` against [n, o].
    pub fn check(&self, theta: &Tensor<1>, data: &DeviceDataset) -> Result<(), ModelError> {
        let err = |detail: String| ModelError {
            model: self.name.clone(),
            detail,
        };
        if theta.dims()[0] != self.dim() {
            return Err(err(format!(
                "θ has {} entries, the net has D = {}",
                theta.dims()[0],
                self.dim()
            )));
        }
        let [_, p] = data.x.dims();
        if p != self.in_dim() {
            return Err(err(format!(
                "the data has {p} input features, the net takes {}",
                self.in_dim()
            )));
        }
        if self.loss_fn.needs_targets() {
            match &data.y {
                None => {
                    return Err(err(format!(
                        "the {:?} loss needs targets; the data has none",
                        self.loss_fn
                    )));
                }
                Some(y) if y.dims()[1] != self.out_dim() => {
                    return Err(err(format!(
                        "targets have width {}, the net has {} outputs",
                        y.dims()[1],
                        self.out_dim()
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// `data` with targets shaped for this net: a single-output net on labelled data fits the
    /// label values (Zhu et al.'s binary task); others keep one-hot or regression targets.
    pub fn adapt(&self, data: DeviceDataset) -> DeviceDataset {
        if self.out_dim() == 1 && data.labels.is_some() {
            data.with_label_targets()
        } else {
            data
        }
    }

    /// Number of parameters D.
    pub fn dim(&self) -> usize {
        self.layout.dim()
    }

    /// Input features per sample.
    pub fn in_dim(&self) -> usize {
        self.layers[0].in_dim()
    }

    /// Outputs per sample o.
    pub fn out_dim(&self) -> usize {
        self.layers.last().expect("a net has layers").out_dim()
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    fn slice(&self, theta: &Tensor<1>, l: usize) -> Option<Tensor<1>> {
        let p = self.layers[l].n_params();
        (p > 0).then(|| host_ops::narrow(theta.clone(), 0, self.offsets[l], p))
    }

    fn slice_dirs(&self, v: &Tensor<2>, l: usize) -> Option<Tensor<2>> {
        let p = self.layers[l].n_params();
        (p > 0).then(|| host_ops::narrow(v.clone(), 1, self.offsets[l], p))
    }

    fn run_forward(&self, thetas: &[Option<Tensor<1>>], x: &Tensor<2>) -> Forward {
        let mut acts = Vec::with_capacity(self.layers.len() + 1);
        let mut memos = Vec::with_capacity(self.layers.len());
        acts.push(x.clone());
        for (l, layer) in self.layers.iter().enumerate() {
            let (a, memo) = layer.forward_memo(thetas[l].as_ref(), acts[l].clone());
            acts.push(a);
            memos.push(memo);
        }
        Forward { acts, memos }
    }

    fn thetas(&self, theta: &Tensor<1>) -> Vec<Option<Tensor<1>>> {
        (0..self.layers.len())
            .map(|l| self.slice(theta, l))
            .collect()
    }

    fn io<'a>(&self, thetas: &'a [Option<Tensor<1>>], fw: &'a Forward, l: usize) -> LayerIo<'a> {
        LayerIo {
            theta: thetas[l].as_ref(),
            a_in: &fw.acts[l],
            a_out: &fw.acts[l + 1],
            memo: fw.memos[l].as_ref(),
        }
    }

    /// Network outputs f(x; θ), [n, o].
    ///
    /// # Shapes
    /// `theta`: [D]; `x`: [n, p] (p = [`in_dim`](Self::in_dim)); returns [n, o].
    pub fn forward(&self, theta: &Tensor<1>, x: &Tensor<2>) -> Tensor<2> {
        let thetas = self.thetas(theta);
        self.run_forward(&thetas, x)
            .acts
            .pop()
            .expect("a net has layers")
    }

    /// Per-sample losses ℓ_n, [n].
    ///
    /// # Shapes
    /// `theta`: [D]; `data.x`: [n, p]; returns [n].
    pub fn losses(&self, theta: &Tensor<1>, data: &DeviceDataset) -> Tensor<1> {
        let f = self.forward(theta, &data.x);
        self.loss_fn.values(&f, data.y.as_ref())
    }

    /// L(θ), the mean loss, as a [1] tensor (no host synchronization).
    ///
    /// # Shapes
    /// `theta`: [D]; returns [1].
    pub fn loss_tensor(&self, theta: &Tensor<1>, data: &DeviceDataset) -> Tensor<1> {
        self.losses(theta, data).mean()
    }

    /// L(θ) read back to the host.
    ///
    /// # Shapes
    /// `theta`: [D]; `data.x`: [n, p]; returns a host scalar.
    pub fn loss(&self, theta: &Tensor<1>, data: &DeviceDataset) -> f64 {
        self.loss_tensor(theta, data).into_scalar::<f64>()
    }

    /// Fraction of samples classified correctly: argmax f = label for several outputs,
    /// 1[f > ½] = label for one output; `None` for data without labels.
    ///
    /// # Shapes
    /// `theta`: [D]; compares f [n, o] with `data.labels` [n].
    pub fn accuracy(&self, theta: &Tensor<1>, data: &DeviceDataset) -> Option<f64> {
        data.labels.as_ref()?;
        self.accuracy_of(&self.forward(theta, &data.x), data)
    }

    /// L(θ) and the accuracy (as [`accuracy`](Self::accuracy)) from one forward pass.
    ///
    /// # Shapes
    /// `theta`: [D]; `data.x`: [n, p]; `data.labels`: [n] when present.
    ///
    /// # Returns
    /// L(θ) read back to the host, and the accuracy (`None` for data without labels).
    pub fn loss_and_accuracy(&self, theta: &Tensor<1>, data: &DeviceDataset) -> (f64, Option<f64>) {
        let f = self.forward(theta, &data.x);
        let loss = self
            .loss_fn
            .values(&f, data.y.as_ref())
            .mean()
            .into_scalar::<f64>();
        (loss, self.accuracy_of(&f, data))
    }

    fn accuracy_of(&self, f: &Tensor<2>, data: &DeviceDataset) -> Option<f64> {
        let labels = data.labels.as_ref()?;
        let f = f.clone();
        let n = f.dims()[0];
        let pred: Tensor<1, Int> = if self.out_dim() == 1 {
            f.greater_elem(0.5).int().reshape([n])
        } else {
            f.argmax(1).reshape([n])
        };
        let hits = pred.equal(labels.clone()).int().sum().into_scalar::<i64>();
        Some(hits as f64 / n as f64)
    }

    /// L(θ) ([1]) and ∇L(θ) ([D]).
    ///
    /// # Shapes
    /// `theta`: [D]; `data.x`: [n, p].
    ///
    /// # Returns
    /// L(θ) as [1] and ∇L(θ) as [D], both on θ's device (no host synchronization).
    pub fn gradient(&self, theta: &Tensor<1>, data: &DeviceDataset) -> (Tensor<1>, Tensor<1>) {
        let thetas = self.thetas(theta);
        let fw = self.run_forward(&thetas, &data.x);
        let f = fw.acts.last().expect("a net has layers");
        let n = f.dims()[0] as f64;
        let loss = self.loss_fn.values(f, data.y.as_ref()).mean();
        let delta = self.loss_fn.grad(f, data.y.as_ref()) / n;
        let grad = self.backward(&thetas, &fw, delta);
        (loss, grad)
    }

    /// Σ over layers of J_θᵀ δ for the output cotangent `delta` [n, o], as [D].
    fn backward(
        &self,
        thetas: &[Option<Tensor<1>>],
        fw: &Forward,
        mut delta: Tensor<2>,
    ) -> Tensor<1> {
        let mut parts = Vec::new();
        for l in (0..self.layers.len()).rev() {
            let need = l > 0 && self.offsets[l] > 0;
            let b = self.layers[l].backward(self.io(thetas, fw, l), delta, need);
            parts.push(b.grad);
            match b.delta_in {
                Some(d) => delta = d,
                None => break,
            }
        }
        // Layers came last to first; each layer's pieces are in θ's order.
        host_ops::cat(parts.into_iter().rev().flatten().collect(), 0)
    }

    /// Per-sample gradients ∇ℓ_n (without the 1/N), [n, D], for all of `data` at once.
    ///
    /// # Shapes
    /// `theta`: [D]; returns [n, D] with n = `data.n`.
    pub fn per_sample_gradients(&self, theta: &Tensor<1>, data: &DeviceDataset) -> Tensor<2> {
        let parts = self.per_sample_factors(theta, data);
        host_ops::cat(parts.iter().map(Factors::materialize).collect(), 1)
    }

    /// The per-sample gradients ∇ℓ_n in factored form, one entry per layer with parameters,
    /// in θ order (dense layers as Ã, Δ; others materialized).
    ///
    /// # Shapes
    /// `theta`: [D]; `data.x`: [n, p].
    ///
    /// # Returns
    /// One [`Factors`] per layer with parameters, in θ order: dense layers as `Outer` with
    /// Ã [n, i+1] and Δ [n, o_l], others `Materialized` as [n, D_l]; the D_l add up to D.
    pub fn per_sample_factors(&self, theta: &Tensor<1>, data: &DeviceDataset) -> Vec<Factors> {
        let thetas = self.thetas(theta);
        let fw = self.run_forward(&thetas, &data.x);
        let f = fw.acts.last().expect("a net has layers");
        let delta = self.loss_fn.grad(f, data.y.as_ref());
        self.factors_for(&thetas, &fw, delta)
    }

    /// Tr G_F = (1/N) Σ_n ‖Λ_n^{1/2}ᵀ J_n‖_F², exactly, as a [1] tensor: for each output j the
    /// per-sample "gradients" J_nᵀ Λ_n^{1/2} e_j (one backward pass each, o in all), squared
    /// and summed. Used to scale exact samples of N(0, G_F) to a given trace.
    ///
    /// # Shapes
    /// `theta`: [D]; returns [1].
    pub fn ggn_trace(&self, theta: &Tensor<1>, data: &DeviceDataset) -> Tensor<1> {
        let thetas = self.thetas(theta);
        let fw = self.run_forward(&thetas, &data.x);
        let f = fw.acts.last().expect("a net has layers");
        let [n, o] = f.dims();
        let mut total: Option<Tensor<1>> = None;
        for j in 0..o {
            let e = Tensor::<2>::zeros([n, o], (&f.device(), f.dtype())).slice_assign(
                [0..n, j..j + 1],
                Tensor::ones([n, 1], (&f.device(), f.dtype())),
            );
            let delta = self.loss_fn.sqrt_hess_vec(f, data.y.as_ref(), e);
            let part = self
                .factors_for(&thetas, &fw, delta)
                .iter()
                .map(fac_square_total)
                .reduce(|a, b| a + b)
                .expect("a net has parameters");
            total = Some(match total {
                Some(t) => t + part,
                None => part,
            });
        }
        total.expect("a net has outputs") / n as f64
    }

    /// The rows r_{p,n} = J_nᵀ Λ_n^{1/2} e_p of the Gauss-Newton matrix, o sets of n stacked
    /// output by output (row p·n + i), in factored form: G_F = (1/n) Σ r rᵀ. Their Gram and
    /// cross Gram matrices give G_F's traces in sample space (o backward passes).
    ///
    /// # Shapes
    /// `theta`: [D]; `data.x`: [n, p].
    ///
    /// # Returns
    /// The rows r_{p,n} as [`SampleGradients`] of o·n rows (row p·n + i: output p, sample i) over
    /// D parameters, in factored form.
    pub fn ggn_factors(&self, theta: &Tensor<1>, data: &DeviceDataset) -> SampleGradients {
        let thetas = self.thetas(theta);
        let fw = self.run_forward(&thetas, &data.x);
        let f = fw.acts.last().expect("a net has layers");
        let [n, o] = f.dims();
        let parts = (0..o)
            .map(|j| {
                let e = Tensor::<2>::zeros([n, o], (&f.device(), f.dtype())).slice_assign(
                    [0..n, j..j + 1],
                    Tensor::ones([n, 1], (&f.device(), f.dtype())),
                );
                let delta = self.loss_fn.sqrt_hess_vec(f, data.y.as_ref(), e);
                SampleGradients::new(self.factors_for(&thetas, &fw, delta))
            })
            .collect();
        SampleGradients::stack(parts)
    }

    /// Per-sample factors of J_nᵀ δ_n for output cotangents `delta` [n, o].
    fn factors_for(
        &self,
        thetas: &[Option<Tensor<1>>],
        fw: &Forward,
        mut delta: Tensor<2>,
    ) -> Vec<Factors> {
        let mut parts = Vec::new();
        for l in (0..self.layers.len()).rev() {
            let io = self.io(thetas, fw, l);
            parts.extend(self.layers[l].per_sample_factors(io, &delta));
            if l == 0 || self.offsets[l] == 0 {
                break;
            }
            delta = self.layers[l]
                .backward(io, delta, true)
                .delta_in
                .expect("asked for δ_in");
        }
        parts.reverse();
        parts
    }

    /// The Gram matrix K = G Gᵀ of the per-sample gradients, [n, n], from the factors:
    /// K = Σ_l (Δ_l Δ_lᵀ) ⊙ (Ã_l Ã_lᵀ) for dense layers, G_l G_lᵀ for the others.
    ///
    /// # Shapes
    /// `theta`: [D]; returns [n, n] with n = `data.n`.
    pub fn gram(&self, theta: &Tensor<1>, data: &DeviceDataset) -> Tensor<2> {
        self.per_sample_factors(theta, data)
            .iter()
            .map(Factors::gram)
            .reduce(|a, b| a + b)
            .expect("a net has parameters")
    }

    /// G in factored form, for products with G and Gᵀ that never form N×D.
    ///
    /// # Shapes
    /// `theta`: [D]; `data.x`: [n, p].
    ///
    /// # Returns
    /// G [n, D] (n = `data.n`) as [`SampleGradients`]: one [`Factors`] per layer with parameters.
    pub fn sample_gradients(&self, theta: &Tensor<1>, data: &DeviceDataset) -> SampleGradients {
        SampleGradients::new(self.per_sample_factors(theta, data))
    }

    /// Per-sample gradients in chunks of at most `chunk` samples: `each(first_index, G_chunk)`
    /// with G_chunk [≤ chunk, D]. The full N×D matrix is never held unless the caller keeps it.
    ///
    /// # Shapes
    /// `theta`: [D]; `each` receives the chunk's first sample index and G_chunk [c, D] with
    /// c = min(`chunk`, n − first index) (a `chunk` of 0 counts as 1).
    pub fn per_sample_gradients_chunked(
        &self,
        theta: &Tensor<1>,
        data: &DeviceDataset,
        chunk: usize,
        mut each: impl FnMut(usize, Tensor<2>),
    ) {
        let chunk = chunk.max(1);
        for start in (0..data.n).step_by(chunk) {
            let idx: Vec<usize> = (start..(start + chunk).min(data.n)).collect();
            each(start, self.per_sample_gradients(theta, &data.gather(&idx)));
        }
    }

    /// H V: the Hessian of L(θ) times k directions V [k, D], as [k, D].
    ///
    /// # Shapes
    /// `theta`: [D]; `v`: [k, D]; returns [k, D].
    pub fn hvp(&self, theta: &Tensor<1>, data: &DeviceDataset, v: &Tensor<2>) -> Tensor<2> {
        self.curvature_vp(&self.linearize(theta, data, true), v, false)
    }

    /// G_F V: the Gauss-Newton matrix (1/N) Σ_n J_nᵀ Λ_n J_n times V [k, D], as [k, D].
    ///
    /// # Shapes
    /// `theta`: [D]; `v`: [k, D]; returns [k, D].
    pub fn ggn_vp(&self, theta: &Tensor<1>, data: &DeviceDataset, v: &Tensor<2>) -> Tensor<2> {
        self.curvature_vp(&self.linearize(theta, data, false), v, true)
    }

    /// The net at θ on `data`, kept for many curvature products at that point: the forward
    /// activations and, with `loss_gradient`, the loss gradient's cotangents δ_l at every
    /// layer's output. A product then costs an R-forward and an R-backward pass only (the
    /// forward and backward passes at θ are the same for every direction).
    ///
    /// # Shapes
    /// `theta`: [D]; `data.x`: [n, p]; `data.y`: [n, o] when the loss needs targets.
    ///
    /// # Returns
    /// A [`Linearization`]: every layer's slice of θ ([D_l]), the forward activations
    /// [n, features] (a_0 = x [n, p] … a_L = f [n, o]) with the layers' memos, the targets and,
    /// with `loss_gradient`, the cotangents δ_l [n, layer l's out features] from the last layer
    /// back to the first with parameters.
    pub fn linearize(
        &self,
        theta: &Tensor<1>,
        data: &DeviceDataset,
        loss_gradient: bool,
    ) -> Linearization {
        let thetas = self.thetas(theta);
        let fw = self.run_forward(&thetas, &data.x);
        let mut deltas = vec![None; self.layers.len()];
        if loss_gradient {
            let f = fw.acts.last().expect("a net has layers");
            let mut delta = self.loss_fn.grad(f, data.y.as_ref()) / f.dims()[0] as f64;
            for l in (0..self.layers.len()).rev() {
                deltas[l] = Some(delta.clone());
                if !(l > 0 && self.offsets[l] > 0) {
                    break;
                }
                match self.layers[l]
                    .backward(self.io(&thetas, &fw, l), delta, true)
                    .delta_in
                {
                    Some(d) => delta = d,
                    None => break,
                }
            }
        }
        Linearization {
            thetas,
            fw,
            y: data.y.clone(),
            deltas,
        }
    }

    /// H V (with `gn` false; the linearization must hold the loss gradient) or G_F V at the
    /// linearization's θ, [k, D].
    ///
    /// # Shapes
    /// `v`: [k, D]; returns [k, D] (θ and the n samples are those of `at`).
    pub fn curvature_vp(&self, at: &Linearization, v: &Tensor<2>, gn: bool) -> Tensor<2> {
        let (thetas, fw) = (&at.thetas, &at.fw);
        assert!(
            gn || at.deltas.iter().any(Option::is_some),
            "curvature_vp: a Hessian product needs a linearization with the loss gradient"
        );
        let vs: Vec<Option<Tensor<2>>> = (0..self.layers.len())
            .map(|l| self.slice_dirs(v, l))
            .collect();
        // R-forward: R a_l for every layer.
        let mut ra: Vec<Option<Tensor<3>>> = vec![None];
        for l in 0..self.layers.len() {
            let r = RIo {
                ra_in: ra[l].as_ref(),
                v: vs[l].as_ref(),
            };
            let next = self.layers[l].r_forward(self.io(thetas, fw, l), r);
            ra.push(next);
        }
        let f = fw.acts.last().expect("a net has layers");
        let n = f.dims()[0] as f64;
        let k = v.dims()[0];
        let rf = ra.last().cloned().flatten().unwrap_or_else(|| {
            Tensor::zeros([k, f.dims()[0], f.dims()[1]], (&f.device(), f.dtype()))
        });
        let mut r_delta = self.loss_fn.hess_vec(f, at.y.as_ref(), rf) / n;
        let mut parts = Vec::new();
        for l in (0..self.layers.len()).rev() {
            let io = self.io(thetas, fw, l);
            let need = l > 0 && self.offsets[l] > 0;
            let r = RIo {
                ra_in: ra[l].as_ref(),
                v: vs[l].as_ref(),
            };
            let delta = if gn { None } else { at.deltas[l].as_ref() };
            let rb = self.layers[l].r_backward(io, r, delta, r_delta, need);
            parts.push(rb.grad);
            if !need {
                break;
            }
            r_delta = rb.delta_in.expect("asked for R δ_in");
        }
        // Layers came last to first; each layer's pieces are in θ's order.
        host_ops::cat(parts.into_iter().rev().flatten().collect(), 1)
    }

    /// The vector-Jacobian product Σ_n J_nᵀ c_n of the network outputs for cotangents c [n, o],
    /// as [D] (J_n = ∂f(x_n; θ)/∂θ, [o, D]).
    ///
    /// # Shapes
    /// `theta`: [D]; `x`: [n, p]; `cotangent`: [n, o]; returns [D].
    pub fn vjp(&self, theta: &Tensor<1>, x: &Tensor<2>, cotangent: Tensor<2>) -> Tensor<1> {
        let thetas = self.thetas(theta);
        let fw = self.run_forward(&thetas, x);
        self.backward(&thetas, &fw, cotangent)
    }

    /// ξ = (1/√N) Σ_n J_nᵀ Λ_n^{1/2} z_n for given z [n, o] (standard normal for a sample of
    /// N(0, G_F)), as [D].
    ///
    /// # Shapes
    /// `theta`: [D]; `z`: [n, o] with n = `data.n`; returns [D].
    pub fn ggn_sample(&self, theta: &Tensor<1>, data: &DeviceDataset, z: Tensor<2>) -> Tensor<1> {
        let thetas = self.thetas(theta);
        let fw = self.run_forward(&thetas, &data.x);
        let f = fw.acts.last().expect("a net has layers");
        let n = f.dims()[0] as f64;
        let delta = self.loss_fn.sqrt_hess_vec(f, data.y.as_ref(), z) / n.sqrt();
        self.backward(&thetas, &fw, delta)
    }
}

/// Σ_n ‖g_n‖² of one layer's factors, [1].
fn fac_square_total(f: &Factors) -> Tensor<1> {
    match f {
        // ‖δ_n ã_nᵀ‖² = ‖δ_n‖² ‖ã_n‖².
        Factors::Outer { inputs, cotangents } => {
            (cotangents.clone().square().sum_dim(1) * inputs.clone().square().sum_dim(1)).sum()
        }
        Factors::Materialized(g) => g.clone().square().sum(),
    }
}

#[cfg(test)]
mod tests {
    use noisescope_data::Precision;

    use super::*;
    use crate::testing::{Case, cpu, host, host2, rel_err, zoo_cases};
    use crate::{ActivationKind, ModelSpec};

    fn autodiff_grad(net: &Net, theta: &Tensor<1>, data: &DeviceDataset) -> Vec<f64> {
        let th = theta.clone().autodiff().require_grad();
        let grads = net.loss_tensor(&th, data).backward();
        host(th.grad(&grads).expect("θ requires grad"))
    }

    fn dirs(d: usize, k: usize, seed: u64, device: &Device, p: Precision) -> Tensor<2> {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let v: Vec<f64> = (0..k * d)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
            .collect();
        Tensor::from_data(TensorData::new(v, [k, d]), (device, p.dtype()))
    }

    fn grad_at(net: &Net, theta: &[f64], data: &DeviceDataset) -> Vec<f64> {
        let t = Tensor::from_data(
            TensorData::new(theta.to_vec(), [theta.len()]),
            (&cpu(), Precision::F64.dtype()),
        );
        host(net.gradient(&t, data).1)
    }

    /// H v by central differences of the gradient with one Richardson step: error O(ε⁴).
    fn fd_hvp(net: &Net, theta: &[f64], v: &[f64], data: &DeviceDataset, eps: f64) -> Vec<f64> {
        let central = |e: f64| {
            let plus: Vec<f64> = theta.iter().zip(v).map(|(t, d)| t + e * d).collect();
            let minus: Vec<f64> = theta.iter().zip(v).map(|(t, d)| t - e * d).collect();
            let (gp, gm) = (grad_at(net, &plus, data), grad_at(net, &minus, data));
            gp.iter()
                .zip(&gm)
                .map(|(a, b)| (a - b) / (2.0 * e))
                .collect::<Vec<f64>>()
        };
        let (d1, d2) = (central(eps), central(eps / 2.0));
        d1.iter()
            .zip(&d2)
            .map(|(a, b)| (4.0 * b - a) / 3.0)
            .collect()
    }

    #[test]
    fn gradient_matches_autodiff_for_every_model() {
        for case in zoo_cases() {
            let (net, theta, data) = case.build(&cpu(), Precision::F64);
            let (loss, g) = net.gradient(&theta, &data);
            let reference = autodiff_grad(&net, &theta, &data);
            let e = rel_err(&host(g), &reference);
            assert!(e < 1e-12, "{}: gradient rel. error {e:e}", case.name);
            assert!((loss.into_scalar::<f64>() - net.loss(&theta, &data)).abs() < 1e-14);
        }
    }

    #[test]
    fn per_sample_gradients_match_autodiff_on_single_samples() {
        for case in zoo_cases() {
            let (net, theta, data) = case.build(&cpu(), Precision::F64);
            let g = host2(net.per_sample_gradients(&theta, &data));
            let d = net.dim();
            for i in 0..data.n {
                let reference = autodiff_grad(&net, &theta, &data.gather(&[i]));
                let e = rel_err(&g[i * d..(i + 1) * d], &reference);
                assert!(e < 1e-12, "{} sample {i}: rel. error {e:e}", case.name);
            }
            // Their mean is the gradient.
            let mean: Vec<f64> = (0..d)
                .map(|j| (0..data.n).map(|i| g[i * d + j]).sum::<f64>() / data.n as f64)
                .collect();
            assert!(
                rel_err(&mean, &host(net.gradient(&theta, &data).1)) < 1e-12,
                "{}",
                case.name
            );
            // Chunks reassemble the same matrix.
            let mut rows = vec![0.0; data.n * d];
            net.per_sample_gradients_chunked(&theta, &data, 3, |start, c| {
                let c = host2(c);
                rows[start * d..start * d + c.len()].copy_from_slice(&c);
            });
            assert!(rel_err(&rows, &g) < 1e-15, "{}", case.name);
        }
    }

    #[test]
    fn mismatched_theta_and_data_are_errors() {
        let cases = zoo_cases();
        let (net, theta, data) = cases[0].build(&cpu(), Precision::F64);
        assert!(net.check(&theta, &data).is_ok());
        let e = net
            .check(&theta.clone().narrow(0, 0, 3), &data)
            .unwrap_err();
        assert!(e.to_string().contains("θ has 3 entries"), "{e}");
        let (_, _, other) = cases[4].build(&cpu(), Precision::F64); // 4 input features
        let e = net.check(&theta, &other).unwrap_err();
        assert!(e.to_string().contains("input features"), "{e}");
        let unlabelled = DeviceDataset {
            y: None,
            labels: None,
            ..data.clone()
        };
        assert!(
            net.check(&theta, &unlabelled)
                .unwrap_err()
                .to_string()
                .contains("needs targets")
        );
        let (_, _, wide) = cases[1].build(&cpu(), Precision::F64); // 5 inputs, 3 classes
        let narrow_y = DeviceDataset {
            y: Some(wide.y.clone().unwrap().narrow(1, 0, 2)),
            ..wide
        };
        assert!(
            net.check(&theta, &narrow_y)
                .unwrap_err()
                .to_string()
                .contains("targets have width 2")
        );
    }

    #[test]
    fn factors_give_the_gram_matrix_and_the_gradients() {
        for case in zoo_cases() {
            let (net, theta, data) = case.build(&cpu(), Precision::F64);
            let g = net.per_sample_gradients(&theta, &data);
            let from_factors = Tensor::cat(
                net.per_sample_factors(&theta, &data)
                    .iter()
                    .map(Factors::materialize)
                    .collect(),
                1,
            );
            assert!(
                rel_err(&host2(from_factors), &host2(g.clone())) < 1e-15,
                "{}",
                case.name
            );
            let k = host2(g.clone().matmul(g.transpose()));
            assert!(
                rel_err(&host2(net.gram(&theta, &data)), &k) < 1e-13,
                "{}: Gram",
                case.name
            );
        }
    }

    #[test]
    fn hvp_matches_finite_differences_and_blocks_agree() {
        for case in zoo_cases() {
            let (net, theta, data) = case.build(&cpu(), Precision::F64);
            let d = net.dim();
            // Unit directions keep the finite-difference steps off ReLU and max-pool kinks.
            let v = dirs(d, 3, 11, &cpu(), Precision::F64);
            let v = v.clone() / v.powi_scalar(2).sum_dim(1).sqrt();
            let hv = host2(net.hvp(&theta, &data, &v));
            let th = host(theta.clone());
            let vh = host2(v.clone());
            for j in 0..3 {
                let reference = fd_hvp(&net, &th, &vh[j * d..(j + 1) * d], &data, 1e-5);
                let e = rel_err(&hv[j * d..(j + 1) * d], &reference);
                assert!(
                    e < 1e-8,
                    "{} direction {j}: HVP rel. error {e:e}",
                    case.name
                );
                let single = host2(net.hvp(&theta, &data, &v.clone().narrow(0, j, 1)));
                assert!(
                    rel_err(&single, &hv[j * d..(j + 1) * d]) < 1e-13,
                    "{} block vs single",
                    case.name
                );
            }
        }
    }

    fn dense(net: &Net, theta: &Tensor<1>, data: &DeviceDataset, ggn: bool) -> Vec<f64> {
        let d = net.dim();
        let eye = Tensor::<2>::eye(d, &cpu()).cast(Precision::F64.dtype());
        host2(if ggn {
            net.ggn_vp(theta, data, &eye)
        } else {
            net.hvp(theta, data, &eye)
        })
    }

    #[test]
    fn dense_hessian_is_symmetric_and_matches_finite_differences() {
        let case = Case {
            name: "mlp-tanh-92",
            spec: ModelSpec::Mlp {
                widths: vec![6, 8, 4],
                activation: ActivationKind::Tanh,
                loss: crate::Loss::CrossEntropy,
            }
            .into(),
            data: crate::testing::gaussian_features(12, 6, 4, 9),
            theta: None,
            heavy: false,
        };
        let (net, theta, data) = case.build(&cpu(), Precision::F64);
        let d = net.dim();
        assert_eq!(d, 92);
        let h = dense(&net, &theta, &data, false);
        let scale = h.iter().fold(0f64, |m, v| m.max(v.abs()));
        for a in 0..d {
            for b in 0..a {
                assert!(
                    (h[a * d + b] - h[b * d + a]).abs() <= 1e-12 * scale,
                    "H[{a},{b}]"
                );
            }
        }
        let th = host(theta);
        for col in [0, 17, 55, 91] {
            let mut e = vec![0.0; d];
            e[col] = 1.0;
            let reference = fd_hvp(&net, &th, &e, &data, 1e-3);
            let err = rel_err(&h[col * d..(col + 1) * d], &reference);
            assert!(err < 1e-8, "column {col}: {err:e}");
        }
    }

    /// G_F = (1/N) Σ_n J_nᵀ Λ_n J_n built densely: J_n's rows from one-hot cotangents, Λ_n from
    /// the loss's Hessian-vector product on the output basis.
    fn dense_ggn(net: &Net, theta: &Tensor<1>, data: &DeviceDataset) -> Vec<f64> {
        let (d, n, o) = (net.dim(), data.n, net.out_dim());
        let f = net.forward(theta, &data.x);
        let eye_o = Tensor::<2>::eye(o, &cpu()).cast(Precision::F64.dtype());
        let basis = eye_o.unsqueeze_dim::<3>(1).expand([o, n, o]);
        let lam = host2(
            net.loss_fn
                .hess_vec(&f, data.y.as_ref(), basis)
                .reshape([o * n, o]),
        ); // [a][n][b]
        let mut g = vec![0.0; d * d];
        for s in 0..n {
            let jac: Vec<Vec<f64>> = (0..o)
                .map(|a| {
                    let mut c = vec![0.0; n * o];
                    c[s * o + a] = 1.0;
                    let c = Tensor::from_data(
                        TensorData::new(c, [n, o]),
                        (&cpu(), Precision::F64.dtype()),
                    );
                    host(net.vjp(theta, &data.x, c))
                })
                .collect();
            for a in 0..o {
                for b in 0..o {
                    let l = lam[(a * n + s) * o + b];
                    if l == 0.0 {
                        continue;
                    }
                    for p in 0..d {
                        for q in 0..d {
                            g[p * d + q] += jac[a][p] * l * jac[b][q] / n as f64;
                        }
                    }
                }
            }
        }
        g
    }

    #[test]
    fn ggn_matches_dense_jt_lambda_j() {
        for case in zoo_cases().into_iter().filter(|c| !c.heavy) {
            let (net, theta, data) = case.build(&cpu(), Precision::F64);
            let got = dense(&net, &theta, &data, true);
            let want = dense_ggn(&net, &theta, &data);
            let e = rel_err(&got, &want);
            assert!(e < 1e-12, "{}: GGN rel. error {e:e}", case.name);
        }
        // For a linear model under MSE the Hessian is the Gauss-Newton matrix.
        let case = zoo_cases()
            .into_iter()
            .find(|c| c.name == "linear")
            .unwrap();
        let (net, theta, data) = case.build(&cpu(), Precision::F64);
        assert!(
            rel_err(
                &dense(&net, &theta, &data, false),
                &dense(&net, &theta, &data, true)
            ) < 1e-14
        );
    }

    #[test]
    fn ggn_trace_is_the_trace_of_the_dense_ggn() {
        for case in zoo_cases().into_iter().filter(|c| !c.heavy) {
            let (net, theta, data) = case.build(&cpu(), Precision::F64);
            let d = net.dim();
            let want = dense_ggn(&net, &theta, &data);
            let tr: f64 = (0..d).map(|i| want[i * d + i]).sum();
            let got = net.ggn_trace(&theta, &data).into_scalar::<f64>();
            assert!(
                (got - tr).abs() <= 1e-12 * tr.abs().max(1e-300),
                "{}: Tr G_F {got} vs {tr}",
                case.name
            );
        }
    }

    #[test]
    fn ggn_samples_have_covariance_g_f() {
        let case = zoo_cases()
            .into_iter()
            .find(|c| c.name == "softmax-regression")
            .unwrap();
        let (net, theta, data) = case.build(&cpu(), Precision::F64);
        let (d, n, o) = (net.dim(), data.n, net.out_dim());
        let want = dense(&net, &theta, &data, true);
        let draws = 20_000;
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(3);
        let mut cov = vec![0.0; d * d];
        let mut mean = vec![0.0; d];
        for _ in 0..draws {
            let z: Vec<f64> = (0..n * o)
                .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
                .collect();
            let z = Tensor::from_data(TensorData::new(z, [n, o]), (&cpu(), Precision::F64.dtype()));
            let xi = host(net.ggn_sample(&theta, &data, z));
            for p in 0..d {
                mean[p] += xi[p] / draws as f64;
                for q in 0..d {
                    cov[p * d + q] += xi[p] * xi[q] / draws as f64;
                }
            }
        }
        // Mean zero, second moment G_F: each entry within 5 standard errors,
        // sd(ĉ_pq) = √((G_pp G_qq + G_pq²) / S).
        for p in 0..d {
            let se = (want[p * d + p] / draws as f64).sqrt();
            assert!(mean[p].abs() < 5.0 * se + 1e-15, "mean[{p}] = {}", mean[p]);
            for q in 0..d {
                let se = ((want[p * d + p] * want[q * d + q] + want[p * d + q].powi(2))
                    / draws as f64)
                    .sqrt();
                assert!(
                    (cov[p * d + q] - want[p * d + q]).abs() < 5.0 * se + 1e-15,
                    "cov[{p},{q}]"
                );
            }
        }
    }

    #[test]
    fn f32_agrees_with_f64_for_every_model() {
        for case in zoo_cases() {
            let (n64, t64, d64) = case.build(&cpu(), Precision::F64);
            let (n32, t32, d32) = case.build(&cpu(), Precision::F32);
            let g = rel_err(
                &host(n32.gradient(&t32, &d32).1),
                &host(n64.gradient(&t64, &d64).1),
            );
            assert!(g < 1e-4, "{}: f32 gradient rel. error {g:e}", case.name);
            let v64 = dirs(n64.dim(), 2, 5, &cpu(), Precision::F64);
            let v32 = dirs(n64.dim(), 2, 5, &cpu(), Precision::F32);
            let h = rel_err(
                &host2(n32.hvp(&t32, &d32, &v32)),
                &host2(n64.hvp(&t64, &d64, &v64)),
            );
            assert!(h < 1e-4, "{}: f32 HVP rel. error {h:e}", case.name);
        }
    }
}
