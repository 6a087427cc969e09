//! A network declared as a list of layers (`[[model.layers]]` in a config), so that a user's
//! own MLP or small CNN runs without Rust. The zoo's `mlp`, `linear`, `softmax-regression`
//! and `convyu` are presets of it ([`crate::ModelSpec::as_layers`]): built through here, with
//! the same parameter blocks, names and order, hence the same θ layout and numbers.
//!
//! Activations flow between layers as [B, features] rows; an image is its channels' planes
//! one after another (c·h·w, row-major), as the convolution and pooling kernels read them.
//! The declared shapes are checked layer by layer, and every error names the layer.

use crate::activation::{Activation, ActivationKind};
use crate::conv::Conv2d;
use crate::dense::Dense;
use crate::layer::Layer;
use crate::layout::Layout;
use crate::pool::MaxPool2;

/// One declared layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LayerSpec {
    /// A dense layer `features → width` with a bias (blocks `<name>.weight` [width,
    /// features] and `<name>.bias`; the name defaults to `dense<i>`, i counting dense layers).
    Dense {
        /// Output features.
        width: usize,
        /// The parameter blocks' name prefix.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A valid (no padding), stride-1 convolution `c → channels` with a `kernel × kernel`
    /// window and a bias (blocks `conv<i>.weight` [channels, c, k, k] and `conv<i>.bias`).
    Conv {
        /// Output channels.
        channels: usize,
        /// Kernel side.
        kernel: usize,
    },
    /// 2 × 2 max-pooling with stride 2 (planes of even height and width).
    MaxPool,
    /// An elementwise activation.
    Activation {
        /// tanh, relu or identity.
        function: ActivationKind,
    },
    /// From an image to its c·h·w features (the rows already hold them in that order, so this
    /// only records the change of shape; a dense layer after a convolution needs it).
    Flatten,
}

/// The shape of what flows between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Flat(usize),
    Image { c: usize, h: usize, w: usize },
}

impl Shape {
    fn features(self) -> usize {
        match self {
            Shape::Flat(n) => n,
            Shape::Image { c, h, w } => c * h * w,
        }
    }

    fn describe(self) -> String {
        match self {
            Shape::Flat(n) => format!("{n} features"),
            Shape::Image { c, h, w } => format!("{c} × {h} × {w} image"),
        }
    }
}

/// Builds the declared layers on inputs of shape `input` (`[features]`, or `[channels,
/// height, width]`), pushing their parameter blocks onto `layout`.
///
/// # Returns
/// The layers and the number of output features, or a message naming the first layer
/// (1-based, as a reader counts `[[model.layers]]` tables) whose shape does not fit.
pub fn build_layers(
    input: &[usize],
    specs: &[LayerSpec],
    layout: &mut Layout,
) -> Result<(Vec<Box<dyn Layer>>, usize), String> {
    let mut shape = match *input {
        [n] if n > 0 => Shape::Flat(n),
        [c, h, w] if c > 0 && h > 0 && w > 0 => Shape::Image { c, h, w },
        _ => {
            return Err(format!(
                "input {input:?}: give [features] or [channels, height, width], all > 0"
            ));
        }
    };
    if specs.is_empty() {
        return Err("layers: declare at least one layer".into());
    }
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    let (mut n_dense, mut n_conv, mut n_pool, mut n_act) = (0, 0, 0, 0);
    for (i, spec) in specs.iter().enumerate() {
        let at = |detail: String| format!("layer {} ({}): {detail}", i + 1, kind(spec));
        match spec {
            LayerSpec::Dense { width, name } => {
                let Shape::Flat(features) = shape else {
                    return Err(at(format!(
                        "its input is a {}; put a `flatten` layer before it",
                        shape.describe()
                    )));
                };
                if *width == 0 {
                    return Err(at("width must be > 0".into()));
                }
                let name = name.clone().unwrap_or_else(|| format!("dense{n_dense}"));
                if name.is_empty()
                    || layout
                        .blocks
                        .iter()
                        .any(|b| b.name == format!("{name}.weight"))
                {
                    return Err(at(format!("name `{name}`: empty or used twice")));
                }
                layers.push(dense(layout, name, features, *width));
                n_dense += 1;
                shape = Shape::Flat(*width);
            }
            LayerSpec::Conv { channels, kernel } => {
                let Shape::Image { c, h, w } = shape else {
                    return Err(at(format!(
                        "its input is {}: a convolution needs an image (input = [channels, height, width])",
                        shape.describe()
                    )));
                };
                if *channels == 0 || *kernel == 0 || *kernel > h || *kernel > w {
                    return Err(at(format!(
                        "{channels} channels with a {kernel} × {kernel} kernel on a {}: need channels > 0 and 0 < kernel ≤ height, width",
                        shape.describe()
                    )));
                }
                let name = format!("conv{n_conv}");
                layers.push(conv(layout, &name, c, *channels, *kernel, [h, w]));
                n_conv += 1;
                shape = Shape::Image {
                    c: *channels,
                    h: h - kernel + 1,
                    w: w - kernel + 1,
                };
            }
            LayerSpec::MaxPool => {
                let Shape::Image { c, h, w } = shape else {
                    return Err(at(format!(
                        "its input is {}: pooling needs an image",
                        shape.describe()
                    )));
                };
                if h % 2 != 0 || w % 2 != 0 {
                    return Err(at(format!(
                        "a {}: 2 × 2 pooling needs even height and width",
                        shape.describe()
                    )));
                }
                layers.push(Box::new(MaxPool2::new(format!("pool{n_pool}"), c, [h, w])));
                n_pool += 1;
                shape = Shape::Image {
                    c,
                    h: h / 2,
                    w: w / 2,
                };
            }
            LayerSpec::Activation { function } => {
                let name = format!("{}{n_act}", function_name(*function));
                layers.push(Box::new(Activation::new(name, *function, shape.features())));
                n_act += 1;
            }
            LayerSpec::Flatten => shape = Shape::Flat(shape.features()),
        }
    }
    if layout.dim() == 0 {
        return Err("layers: no layer has parameters (declare a dense or conv layer)".into());
    }
    Ok((layers, shape.features()))
}

/// A dense layer `i → o` named `name`, with its blocks `<name>.weight` [o, i] and
/// `<name>.bias` [o] pushed onto `layout`.
pub(crate) fn dense(layout: &mut Layout, name: String, i: usize, o: usize) -> Box<dyn Layer> {
    layout.push(format!("{name}.weight"), vec![o, i], i, o, false);
    layout.push(format!("{name}.bias"), vec![o], i, o, true);
    Box::new(Dense::new(name, i, o))
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

fn kind(spec: &LayerSpec) -> &'static str {
    match spec {
        LayerSpec::Dense { .. } => "dense",
        LayerSpec::Conv { .. } => "conv",
        LayerSpec::MaxPool => "max-pool",
        LayerSpec::Activation { .. } => "activation",
        LayerSpec::Flatten => "flatten",
    }
}

fn function_name(f: ActivationKind) -> &'static str {
    match f {
        ActivationKind::Tanh => "tanh",
        ActivationKind::Relu => "relu",
        ActivationKind::Identity => "identity",
    }
}

#[cfg(test)]
#[path = "layers_tests.rs"]
pub(crate) mod tests;
