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
//! | `layers` | any list of dense, conv, max-pool, activation and flatten layers (layers.rs) | any but toy2d | |
//!
//! `mlp`, `linear`, `softmax-regression` and `convyu` are presets of `layers`
//! ([`ModelSpec::as_layers`]); the others hold frozen layers that a list does not declare.

use burn::prelude::*;
use noisescope_data::Precision;

use crate::activation::{Activation, ActivationKind};
use crate::error::ModelError;
use crate::fixed::{Bias, FrozenLinear};
use crate::layer::Layer;
use crate::layers::{LayerSpec, build_layers, dense};
use crate::layout::Layout;
use crate::loss::Loss;
use crate::net::Net;

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
    /// A network declared layer by layer (`[[model.layers]]`).
    Layers {
        /// The input's shape: `[features]`, or `[channels, height, width]` for images.
        input: Vec<usize>,
        /// The layers, input side first.
        layers: Vec<LayerSpec>,
        /// Loss on the output.
        loss: Loss,
    },
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
            ModelSpec::Layers { .. } => "layers",
        }
    }

    /// The model as a list of layers, for the zoo entries that are presets of one: its input
    /// shape, layers and loss. `None` for the models with frozen layers.
    pub fn as_layers(&self) -> Option<(Vec<usize>, Vec<LayerSpec>, Loss)> {
        let dense = |width: usize, name: Option<&str>| LayerSpec::Dense {
            width,
            name: name.map(str::to_string),
        };
        let act = |function: ActivationKind| LayerSpec::Activation { function };
        match self {
            ModelSpec::Mlp {
                widths,
                activation,
                loss,
            } => {
                let mut layers = Vec::new();
                for (l, w) in widths.iter().skip(1).enumerate() {
                    if l > 0 {
                        layers.push(act(*activation));
                    }
                    layers.push(dense(*w, None));
                }
                Some((
                    widths.first().map(|&w| vec![w]).unwrap_or_default(),
                    layers,
                    *loss,
                ))
            }
            ModelSpec::Linear { inputs } => {
                Some((vec![*inputs], vec![dense(1, Some("linear"))], Loss::Mse))
            }
            ModelSpec::SoftmaxRegression { inputs, classes } => Some((
                vec![*inputs],
                vec![dense(*classes, Some("linear"))],
                Loss::CrossEntropy,
            )),
            ModelSpec::Convyu => {
                let conv = |channels| LayerSpec::Conv {
                    channels,
                    kernel: 5,
                };
                let relu = act(ActivationKind::Relu);
                Some((
                    vec![1, 28, 28],
                    vec![
                        conv(10),
                        LayerSpec::MaxPool,
                        relu.clone(),
                        conv(10),
                        LayerSpec::MaxPool,
                        relu.clone(),
                        LayerSpec::Flatten,
                        dense(50, None),
                        relu,
                        dense(10, None),
                    ],
                    Loss::CrossEntropy,
                ))
            }
            ModelSpec::Layers {
                input,
                layers,
                loss,
            } => Some((input.clone(), layers.clone(), *loss)),
            ModelSpec::FixedOutputRelu { .. } | ModelSpec::TwoLayer { .. } | ModelSpec::Toy2d => {
                None
            }
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
            ModelSpec::Mlp { widths, .. } if widths.len() < 2 || widths.contains(&0) => {
                return Err(err(format!(
                    "widths {widths:?}: need at least input and output, all > 0"
                )));
            }
            ModelSpec::SoftmaxRegression { classes, .. } if *classes < 2 => {
                return Err(err(format!("{classes} classes: need at least 2")));
            }
            ModelSpec::Mlp { .. }
            | ModelSpec::Linear { .. }
            | ModelSpec::SoftmaxRegression { .. }
            | ModelSpec::Convyu
            | ModelSpec::Layers { .. } => {
                let (input, specs, loss) = self.as_layers().expect("a preset of a layer list");
                if matches!(loss, Loss::Toy2d) {
                    return Err(err(
                        "the toy2d potential is the toy2d model's own loss".into()
                    ));
                }
                layers = build_layers(&input, &specs, &mut layout).map_err(err)?.0;
                loss
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
