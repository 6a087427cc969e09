//! The model zoo: the networks of the three papers, built from a config.
//!
//! | model | layers | loss | D |
//! |---|---|---|---|
//! | `mlp` | dense → φ → … → dense, any widths, tanh or ReLU | MSE on one-hot or cross-entropy | Σ (i+1) o |
//! | `fixed-output-relu` | dense 2→h, ReLU, frozen ±1 output (first half +1) | clipped MSE | 3h |
//! | `linear` | dense i→1 | MSE | i + 1 |
//! | `softmax-regression` | dense i→c | cross-entropy | (i+1) c |
//! | `toy2d` | f = w − x (frozen −I, then w as a bias) | Zhu's 2-D potential | 2 |
//! | `convyu` | conv 5×5 1→10, pool 2, ReLU, conv 5×5 10→10, pool 2, ReLU, dense 160→50, ReLU, dense 50→10 | cross-entropy | 11 330 |

use burn::prelude::*;
use noisescope_data::Precision;

use crate::activation::{Activation, ActivationKind};
use crate::conv::Conv2d;
use crate::dense::Dense;
use crate::fixed::{Bias, FrozenLinear};
use crate::layer::Layer;
use crate::layout::Layout;
use crate::loss::Loss;
use crate::net::Net;
use crate::pool::MaxPool2;

/// A model as a config names it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelSpec {
    /// A multilayer perceptron `widths[0] → … → widths[last]`.
    Mlp {
        /// Layer widths, input first, output last (784, 2048, 10).
        widths: Vec<usize>,
        /// Hidden activation.
        activation: ActivationKind,
        /// Loss on the output.
        loss: Loss,
    },
    /// Zhu et al.'s Fig. 4 net: 2 → h ReLU units with bias, output weights fixed to ±1,
    /// clipped-output MSE.
    FixedOutputRelu {
        /// Hidden width h (even).
        width: usize,
        /// Clipping margin δ.
        delta: f64,
    },
    /// Wang and Wu's two-layer net with a fixed second layer: f(x) = (1/√m) Σ_j a_j σ(w_jᵀx + b_j)
    /// with a_j = +1 for the first half of the m units and −1 for the second, MSE on one output.
    /// θ is the first layer only.
    TwoLayer {
        /// Input features.
        inputs: usize,
        /// Hidden width m (even).
        width: usize,
        /// σ.
        activation: ActivationKind,
    },
    /// Linear regression with one output and a bias.
    Linear {
        /// Input features.
        inputs: usize,
    },
    /// Multinomial logistic regression.
    SoftmaxRegression {
        /// Input features.
        inputs: usize,
        /// Classes.
        classes: usize,
    },
    /// Zhu et al.'s 2-D potential, θ = w ∈ R².
    Toy2d,
    /// Zhu et al.'s Fashion-MNIST CNN (SPEC §5.2), on 28 × 28 single-channel images.
    Convyu,
}

/// A zoo spec that cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("model {model}: {detail}")]
pub struct ModelError {
    /// The model's name.
    pub model: String,
    /// What is wrong.
    pub detail: String,
}

pub(crate) fn dense(layout: &mut Layout, name: String, i: usize, o: usize) -> Box<dyn Layer> {
    layout.push(format!("{name}.weight"), vec![o, i], i, o, false);
    layout.push(format!("{name}.bias"), vec![o], i, o, true);
    Box::new(Dense::new(name, i, o))
}

impl ModelSpec {
    /// The zoo name.
    pub fn name(&self) -> &'static str {
        match self {
            ModelSpec::Mlp { .. } => "mlp",
            ModelSpec::FixedOutputRelu { .. } => "fixed-output-relu",
            ModelSpec::TwoLayer { .. } => "two-layer",
            ModelSpec::Linear { .. } => "linear",
            ModelSpec::SoftmaxRegression { .. } => "softmax-regression",
            ModelSpec::Toy2d => "toy2d",
            ModelSpec::Convyu => "convyu",
        }
    }

    /// Builds the net; frozen matrices are created on `device` in `precision`.
    pub fn build(&self, device: &Device, precision: Precision) -> Result<Net, ModelError> {
        let err = |detail: String| ModelError {
            model: self.name().to_string(),
            detail,
        };
        let mut layout = Layout::default();
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        let loss = match self {
            ModelSpec::Mlp {
                widths,
                activation,
                loss,
            } => {
                if widths.len() < 2 || widths.contains(&0) {
                    return Err(err(format!(
                        "widths {widths:?}: need at least input and output, all > 0"
                    )));
                }
                if matches!(loss, Loss::Toy2d) {
                    return Err(err(
                        "the toy2d potential is the toy2d model's own loss".into()
                    ));
                }
                for (l, w) in widths.windows(2).enumerate() {
                    if l > 0 {
                        layers.push(Box::new(Activation::new(
                            format!("act{}", l - 1),
                            *activation,
                            w[0],
                        )));
                    }
                    layers.push(dense(&mut layout, format!("dense{l}"), w[0], w[1]));
                }
                *loss
            }
            ModelSpec::FixedOutputRelu { width, delta } => {
                if *width == 0 || width % 2 != 0 {
                    return Err(err(format!("width {width}: must be even and > 0")));
                }
                if !(0.0..0.5).contains(delta) {
                    return Err(err(format!("delta {delta}: must be in [0, 0.5)")));
                }
                layers.push(dense(&mut layout, "hidden".into(), 2, *width));
                layers.push(Box::new(Activation::new(
                    "relu",
                    ActivationKind::Relu,
                    *width,
                )));
                let signs: Vec<f64> = (0..*width)
                    .map(|j| if j < width / 2 { 1.0 } else { -1.0 })
                    .collect();
                let m = Tensor::from_data(
                    TensorData::new(signs, [1, *width]),
                    (device, precision.dtype()),
                );
                layers.push(Box::new(FrozenLinear::new("output", m)));
                Loss::ClippedMse { delta: *delta }
            }
            ModelSpec::TwoLayer {
                inputs,
                width,
                activation,
            } => {
                if *width == 0 || width % 2 != 0 || *inputs == 0 {
                    return Err(err(format!(
                        "inputs {inputs}, width {width}: need inputs > 0 and an even width > 0"
                    )));
                }
                layers.push(dense(&mut layout, "hidden".into(), *inputs, *width));
                layers.push(Box::new(Activation::new("act", *activation, *width)));
                let a = 1.0 / (*width as f64).sqrt();
                let signs: Vec<f64> = (0..*width)
                    .map(|j| if j < width / 2 { a } else { -a })
                    .collect();
                let m = Tensor::from_data(
                    TensorData::new(signs, [1, *width]),
                    (device, precision.dtype()),
                );
                layers.push(Box::new(FrozenLinear::new("output", m)));
                Loss::Mse
            }
            ModelSpec::Linear { inputs } => {
                layers.push(dense(&mut layout, "linear".into(), *inputs, 1));
                Loss::Mse
            }
            ModelSpec::SoftmaxRegression { inputs, classes } => {
                if *classes < 2 {
                    return Err(err(format!("{classes} classes: need at least 2")));
                }
                layers.push(dense(&mut layout, "linear".into(), *inputs, *classes));
                Loss::CrossEntropy
            }
            ModelSpec::Convyu => {
                layers = convyu(&mut layout);
                Loss::CrossEntropy
            }
            ModelSpec::Toy2d => {
                let minus_i = TensorData::new(vec![-1.0f64, 0.0, 0.0, -1.0], [2, 2]);
                let m = Tensor::from_data(minus_i, (device, precision.dtype()));
                layers.push(Box::new(FrozenLinear::new("negate", m)));
                layout.push("w".into(), vec![2], 1, 1, true);
                layers.push(Box::new(Bias::new("w", 2)));
                Loss::Toy2d
            }
        };
        Ok(Net::new(self.name(), layers, loss, layout))
    }
}

/// A valid stride-1 convolution's parameter blocks and layer.
pub(crate) fn conv(
    layout: &mut Layout,
    name: &str,
    c_in: usize,
    c_out: usize,
    k: usize,
    input: [usize; 2],
) -> Box<dyn Layer> {
    let (fan_in, fan_out) = (c_in * k * k, c_out * k * k);
    layout.push(
        format!("{name}.weight"),
        vec![c_out, c_in, k, k],
        fan_in,
        fan_out,
        false,
    );
    layout.push(format!("{name}.bias"), vec![c_out], fan_in, fan_out, true);
    Box::new(Conv2d::new(name, c_in, c_out, [k, k], input))
}

/// Zhu et al.'s CNN: two conv-pool-ReLU stages and two dense layers on 28 × 28 × 1 inputs.
fn convyu(layout: &mut Layout) -> Vec<Box<dyn Layer>> {
    vec![
        conv(layout, "conv0", 1, 10, 5, [28, 28]),
        Box::new(MaxPool2::new("pool0", 10, [24, 24])),
        Box::new(Activation::new("relu0", ActivationKind::Relu, 10 * 12 * 12)),
        conv(layout, "conv1", 10, 10, 5, [12, 12]),
        Box::new(MaxPool2::new("pool1", 10, [8, 8])),
        Box::new(Activation::new("relu1", ActivationKind::Relu, 160)),
        dense(layout, "dense0".into(), 160, 50),
        Box::new(Activation::new("relu2", ActivationKind::Relu, 50)),
        dense(layout, "dense1".into(), 50, 10),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::cpu;

    #[test]
    fn convyu_has_11330_parameters() {
        let net = ModelSpec::Convyu.build(&cpu(), Precision::F32).unwrap();
        assert_eq!(net.dim(), 11_330);
        assert_eq!((net.in_dim(), net.out_dim()), (784, 10));
    }

    #[test]
    fn bad_specs_are_errors() {
        let e = ModelSpec::FixedOutputRelu {
            width: 3,
            delta: 1e-3,
        }
        .build(&cpu(), Precision::F32)
        .unwrap_err();
        assert!(e.to_string().contains("even"), "{e}");
        let e = ModelSpec::Mlp {
            widths: vec![4],
            activation: ActivationKind::Tanh,
            loss: Loss::Mse,
        }
        .build(&cpu(), Precision::F32)
        .unwrap_err();
        assert!(e.to_string().contains("widths"), "{e}");
    }
}
