//! HVPs of the `mlp` zoo models against the independent reference: reverse-over-reverse through
//! burn's nested autodiff, `Autodiff<Autodiff<NdArray>>`, on an MLP written in backend
//! primitives.
//!
//! burn 0.22's public `Tensor` offers first-order autodiff only; nesting works at the backend
//! level. The first backward pass runs on the outer tape and records its own operations on the
//! inner one, so differentiating g·v there gives H v. It uses only the public API of
//! `noisescope-models` for our side.
#![allow(deprecated)]

use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::{Autodiff, AutodiffBackend, NdArray, NdArrayDevice, TensorData, read_sync};

type B0 = NdArray;
type B2 = Autodiff<B0>;
type B1 = Autodiff<B2>;

/// An MLP as the reference sees it.
struct MlpRef {
    widths: Vec<usize>,
    tanh: bool,
    cross_entropy: bool,
}

fn host(t: burn::backend::tensor::FloatTensor<B0>) -> Vec<f64> {
    read_sync(B0::float_into_data(t))
        .expect("read back")
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("f64 data")
}

impl MlpRef {
    /// H v of L(θ) = (1/n) Σ ℓ(f(x_i; θ), y_i) with θ laid out as our `mlp` (per layer W [o, i]
    /// row-major, then b [o]); x [n, widths[0]], y [n, widths[last]], row-major.
    fn nested_hvp(&self, theta: &[f64], x: &[f64], y: &[f64], n: usize, v: &[f64]) -> Vec<f64> {
        let dev = NdArrayDevice::default();
        let mk = |vals: &[f64], shape: Vec<usize>| {
            B0::float_from_data(TensorData::new(vals.to_vec(), shape), &dev)
        };
        let mut inner = Vec::new();
        let mut outer = Vec::new();
        let mut dirs = Vec::new();
        let mut at = 0;
        for w in self.widths.windows(2) {
            let (i, o) = (w[0], w[1]);
            for shape in [vec![o, i], vec![1, o]] {
                let len: usize = shape.iter().product();
                let t2 = B2::float_set_require_grad(
                    B2::from_inner(mk(&theta[at..at + len], shape.clone())),
                    true,
                );
                outer.push(B1::float_set_require_grad(B1::from_inner(t2.clone()), true));
                inner.push(t2);
                dirs.push(B2::from_inner(mk(&v[at..at + len], shape)));
                at += len;
            }
        }
        assert_eq!(at, theta.len());
        let lift = |t: burn::backend::tensor::FloatTensor<B0>| B1::from_inner(B2::from_inner(t));
        let mut a = lift(mk(x, vec![n, self.widths[0]]));
        let layers = self.widths.len() - 1;
        for l in 0..layers {
            let z = B1::float_add(
                B1::float_matmul(a, B1::float_transpose(outer[2 * l].clone())),
                outer[2 * l + 1].clone(),
            );
            a = if l + 1 == layers {
                z
            } else if self.tanh {
                B1::float_tanh(z)
            } else {
                B1::relu(z)
            };
        }
        let out = *self.widths.last().unwrap();
        let yt = lift(mk(y, vec![n, out]));
        let per = if self.cross_entropy {
            let lse = B1::float_log(B1::float_sum_dim(B1::float_exp(a.clone()), 1));
            B1::float_sub(lse, B1::float_sum_dim(B1::float_mul(a, yt), 1))
        } else {
            let r = B1::float_sub(a, yt);
            B1::float_mul_scalar(
                B1::float_sum_dim(B1::float_mul(r.clone(), r), 1),
                0.5.into(),
            )
        };
        // The mean, not sum / n: burn-autodiff's backward of a division by a scalar was seen to
        // round 1/n to f32 (a relative error of 4.5e-8 for n = 7).
        let loss = B1::float_mean(per);
        let grads1 = B1::backward(loss);
        let mut gv = None;
        for (leaf, dir) in outer.iter().zip(dirs) {
            let g = B1::grad(leaf, &grads1).expect("outer gradient");
            let term = B2::float_sum(B2::float_mul(g, dir));
            gv = Some(match gv {
                None => term,
                Some(acc) => B2::float_add(acc, term),
            });
        }
        let grads2 = B2::backward(gv.expect("an MLP has parameters"));
        inner
            .iter()
            .flat_map(|leaf| host(B2::grad(leaf, &grads2).expect("inner gradient")))
            .collect()
    }
}

use burn::prelude::*;
use noisescope_data::{DeviceDataset, Features, Precision, Targets};
use noisescope_models::{ActivationKind, Init, Loss, ModelSpec};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

fn cpu() -> Device {
    Device::ndarray()
}

fn to_host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap()
}

fn check(widths: Vec<usize>, activation: ActivationKind, loss: Loss, n: usize, seed: u64) {
    let device = cpu();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (d_in, classes) = (widths[0], *widths.last().unwrap());
    let features = Features {
        n,
        dim: d_in,
        x: (0..n * d_in)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect(),
        targets: Targets::Classes {
            labels: (0..n).map(|i| (i % classes) as u32).collect(),
            classes,
        },
    };
    let data = DeviceDataset::upload(&features, &device, Precision::F64);
    let spec = ModelSpec::Mlp {
        widths: widths.clone(),
        activation,
        loss,
    };
    let net = spec.build(&device, Precision::F64).unwrap();
    let theta = Init::TorchDefault.tensor(&net.layout, seed, &device, Precision::F64);
    let d = net.dim();
    let v: Vec<f64> = (0..3 * d)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let vt = Tensor::<2>::from_data(
        TensorData::new(v.clone(), [3, d]),
        (&device, Precision::F64.dtype()),
    );
    let hv = to_host(net.hvp(&theta, &data, &vt));
    let reference = MlpRef {
        widths,
        tanh: activation == ActivationKind::Tanh,
        cross_entropy: loss == Loss::CrossEntropy,
    };
    let (th, x, y) = (
        to_host(theta),
        to_host(data.x.clone()),
        to_host(data.y.clone().unwrap()),
    );
    for j in 0..3 {
        let want = reference.nested_hvp(&th, &x, &y, n, &v[j * d..(j + 1) * d]);
        let got = &hv[j * d..(j + 1) * d];
        let scale = want.iter().fold(0f64, |m, w| m.max(w.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()))
            / scale;

        assert!(
            err < 1e-10,
            "{activation:?} {loss:?} direction {j}: rel. error {err:e} against nested autodiff"
        );
    }
}

#[test]
fn tanh_mse_mlp_hvp_matches_nested_autodiff() {
    check(vec![5, 6, 3], ActivationKind::Tanh, Loss::Mse, 7, 1);
}

#[test]
fn relu_cross_entropy_mlp_hvp_matches_nested_autodiff() {
    check(
        vec![5, 6, 4, 3],
        ActivationKind::Relu,
        Loss::CrossEntropy,
        7,
        2,
    );
}

#[test]
fn tanh_cross_entropy_deep_mlp_hvp_matches_nested_autodiff() {
    check(
        vec![4, 5, 5, 3],
        ActivationKind::Tanh,
        Loss::CrossEntropy,
        6,
        3,
    );
}
