//! Test fixtures shared by the model tests: devices, small data sets, the zoo table, dense
//! references in f64.

use burn::prelude::*;
use noisescope_data::synthetic::{Covariance, GaussianRegression, toy2d, uniform_square};
use noisescope_data::{DeviceDataset, Features, Precision, Targets};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::{ActivationKind, Init, Loss, ModelSpec, Net};

#[allow(deprecated)]
pub fn cpu() -> Device {
    Device::ndarray()
}

pub fn host(t: Tensor<1>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap()
}

pub fn host2(t: Tensor<2>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .unwrap()
}

pub fn gaussian_features(n: usize, dim: usize, classes: usize, seed: u64) -> Features {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let labels = (0..n).map(|i| (i % classes) as u32).collect();
    Features {
        n,
        dim,
        x,
        targets: Targets::Classes { labels, classes },
    }
}

/// A zoo model, or a net assembled from layers for a layer the zoo uses only at full size.
pub enum Spec {
    Zoo(ModelSpec),
    /// conv 3×3 2→3 on 6×6, max-pool 2, ReLU, dense 12→3, cross-entropy (D = 96): the
    /// convolution and pooling of `convyu` at a size where dense references are cheap.
    SmallCnn,
}

impl From<ModelSpec> for Spec {
    fn from(s: ModelSpec) -> Self {
        Spec::Zoo(s)
    }
}

/// One row of the zoo table: a small instance of each model, its data, and a θ that is not
/// at a kink.
pub struct Case {
    pub name: &'static str,
    pub spec: Spec,
    pub data: Features,
    pub theta: Option<Vec<f64>>,
    /// Too large for the dense D×D references.
    pub heavy: bool,
}

pub fn zoo_cases() -> Vec<Case> {
    vec![
        Case {
            name: "mlp-tanh-mse",
            spec: Spec::Zoo(ModelSpec::Mlp {
                widths: vec![5, 6, 3],
                activation: ActivationKind::Tanh,
                loss: Loss::Mse,
            }),
            data: gaussian_features(7, 5, 3, 1),
            theta: None,
            heavy: false,
        },
        Case {
            name: "mlp-relu-ce",
            spec: Spec::Zoo(ModelSpec::Mlp {
                widths: vec![5, 6, 4, 3],
                activation: ActivationKind::Relu,
                loss: Loss::CrossEntropy,
            }),
            data: gaussian_features(7, 5, 3, 2),
            theta: None,
            heavy: false,
        },
        Case {
            name: "fixed-output-relu",
            spec: Spec::Zoo(ModelSpec::FixedOutputRelu {
                width: 6,
                delta: 1e-3,
            }),
            data: uniform_square(9, 3),
            theta: None,
            heavy: false,
        },
        Case {
            name: "two-layer-tanh",
            spec: Spec::Zoo(ModelSpec::TwoLayer {
                inputs: 3,
                width: 6,
                activation: ActivationKind::Tanh,
            }),
            data: GaussianRegression {
                covariance: Covariance::Diagonal(vec![1.0, 0.5, 2.0]),
                teacher: vec![1.0, -1.0, 0.5],
                noise_std: 0.3,
            }
            .sample(8, 7)
            .unwrap(),
            theta: None,
            heavy: false,
        },
        Case {
            name: "linear",
            spec: Spec::Zoo(ModelSpec::Linear { inputs: 3 }),
            data: GaussianRegression {
                covariance: Covariance::Diagonal(vec![1.0, 0.5, 2.0]),
                teacher: vec![1.0, -1.0, 0.5],
                noise_std: 0.3,
            }
            .sample(8, 4)
            .unwrap(),
            theta: None,
            heavy: false,
        },
        Case {
            name: "softmax-regression",
            spec: Spec::Zoo(ModelSpec::SoftmaxRegression {
                inputs: 4,
                classes: 3,
            }),
            data: gaussian_features(6, 4, 3, 5),
            theta: None,
            heavy: false,
        },
        Case {
            name: "toy2d",
            spec: Spec::Zoo(ModelSpec::Toy2d),
            data: toy2d(10, 6),
            theta: Some(vec![0.8, 1.1]),
            heavy: false,
        },
        Case {
            name: "small-cnn",
            spec: Spec::SmallCnn,
            data: gaussian_features(5, 72, 3, 8),
            theta: None,
            heavy: false,
        },
        Case {
            name: "layers-cnn",
            spec: Spec::Zoo(ModelSpec::Layers {
                input: vec![2, 6, 6],
                layers: crate::layers::tests::small_cnn_layers(),
                loss: Loss::Mse,
            }),
            data: gaussian_features(5, 72, 3, 9),
            theta: None,
            heavy: false,
        },
        Case {
            name: "convyu",
            spec: Spec::Zoo(ModelSpec::Convyu),
            data: gaussian_features(3, 784, 10, 12),
            theta: None,
            heavy: true,
        },
    ]
}

impl Case {
    pub fn build(&self, device: &Device, precision: Precision) -> (Net, Tensor<1>, DeviceDataset) {
        let net = match &self.spec {
            Spec::Zoo(spec) => spec.build(device, precision).unwrap(),
            Spec::SmallCnn => {
                let mut layout = crate::Layout::default();
                let layers: Vec<Box<dyn crate::Layer>> = vec![
                    crate::layers::conv(&mut layout, "conv", 2, 3, 3, [6, 6]),
                    Box::new(crate::MaxPool2::new("pool", 3, [4, 4])),
                    Box::new(crate::Activation::new("relu", ActivationKind::Relu, 12)),
                    crate::layers::dense(&mut layout, "dense".into(), 12, 3),
                ];
                Net::new("small-cnn", layers, Loss::CrossEntropy, layout)
            }
        };
        let theta = match &self.theta {
            Some(t) => Tensor::from_data(
                TensorData::new(t.clone(), [t.len()]),
                (device, precision.dtype()),
            ),
            None => Init::TorchDefault.tensor(&net.layout, 7, device, precision),
        };
        let data = net.adapt(DeviceDataset::upload(&self.data, device, precision));
        (net, theta, data)
    }
}

/// max |a − b| / max(max |b|, tiny).
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// A [rows, cols] f64 matrix of standard normal entries.
pub fn random_matrix(rows: usize, cols: usize, seed: u64, device: &Device) -> Tensor<2> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..rows * cols)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    Tensor::from_data(
        TensorData::new(v, [rows, cols]),
        (device, burn::tensor::DType::F64),
    )
}
