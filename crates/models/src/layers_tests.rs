use noisescope_data::{DeviceDataset, Precision};

use super::*;
use crate::testing::{cpu, gaussian_features, host};
use crate::{Init, Loss, ModelSpec};

/// A small CNN as a user declares it: conv 3×3 2→3 on 6×6, tanh, max-pool, flatten, dense
/// 12→5, ReLU, dense 5→3 (D = 140); also one of the zoo table's cases (testing.rs), so every
/// exact pass is checked on it against autodiff and finite differences.
pub(crate) fn small_cnn_layers() -> Vec<LayerSpec> {
    toml::from_str::<Declared>(
        r#"
        [[layers]]
        kind = "conv"
        channels = 3
        kernel = 3
        [[layers]]
        kind = "activation"
        function = "tanh"
        [[layers]]
        kind = "max-pool"
        [[layers]]
        kind = "flatten"
        [[layers]]
        kind = "dense"
        width = 5
        [[layers]]
        kind = "activation"
        function = "relu"
        [[layers]]
        kind = "dense"
        width = 3
        "#,
    )
    .unwrap()
    .layers
}

#[derive(serde::Deserialize)]
struct Declared {
    layers: Vec<LayerSpec>,
}

/// The zoo presets as explicit layer lists give the same layout (names, shapes, offsets,
/// fans) and the same loss and gradient, bit for bit, as the zoo entries.
#[test]
fn zoo_presets_and_their_layer_lists_are_the_same_net() {
    let device = cpu();
    let presets = [
        ModelSpec::Mlp {
            widths: vec![5, 6, 4, 3],
            activation: ActivationKind::Tanh,
            loss: Loss::CrossEntropy,
        },
        ModelSpec::Linear { inputs: 5 },
        ModelSpec::SoftmaxRegression {
            inputs: 5,
            classes: 3,
        },
        ModelSpec::Convyu,
    ];
    for preset in presets {
        let (input, layers, loss) = preset.as_layers().unwrap();
        let listed = ModelSpec::Layers {
            input,
            layers,
            loss,
        };
        let a = preset.build(&device, Precision::F32).unwrap();
        let b = listed.build(&device, Precision::F32).unwrap();
        assert_eq!(a.layout.blocks, b.layout.blocks, "{}", preset.name());
        let dim = a.in_dim();
        assert_eq!(dim, b.in_dim());
        let features = gaussian_features(4, dim, a.out_dim(), 3);
        let upload =
            |net: &crate::Net| net.adapt(DeviceDataset::upload(&features, &device, Precision::F32));
        let theta = Init::TorchDefault.tensor(&a.layout, 7, &device, Precision::F32);
        let (la, ga) = a.gradient(&theta, &upload(&a));
        let (lb, gb) = b.gradient(&theta, &upload(&b));
        assert_eq!(host(la), host(lb), "{}", preset.name());
        assert_eq!(host(ga), host(gb), "{}", preset.name());
    }
}

/// convyu's blocks as before the layer lists: θ of a saved run loads into the same places.
#[test]
fn convyu_keeps_its_blocks() {
    let net = ModelSpec::Convyu.build(&cpu(), Precision::F32).unwrap();
    let blocks: Vec<(&str, &[usize], usize)> = net
        .layout
        .blocks
        .iter()
        .map(|b| (b.name.as_str(), b.shape.as_slice(), b.offset))
        .collect();
    assert_eq!(
        blocks,
        [
            ("conv0.weight", &[10, 1, 5, 5][..], 0),
            ("conv0.bias", &[10][..], 250),
            ("conv1.weight", &[10, 10, 5, 5][..], 260),
            ("conv1.bias", &[10][..], 2760),
            ("dense0.weight", &[50, 160][..], 2770),
            ("dense0.bias", &[50][..], 10770),
            ("dense1.weight", &[10, 50][..], 10820),
            ("dense1.bias", &[10][..], 11320),
        ]
    );
    assert_eq!(net.dim(), 11_330);
}

#[test]
fn shapes_that_do_not_fit_are_errors_naming_the_layer() {
    let mut layout = Layout::default();
    let cases: Vec<(Vec<usize>, Vec<LayerSpec>, &str)> = vec![
        (vec![784], vec![LayerSpec::MaxPool], "layer 1 (max-pool)"),
        (
            vec![1, 28, 28],
            vec![LayerSpec::Dense {
                width: 10,
                name: None,
            }],
            "put a `flatten` layer before it",
        ),
        (
            vec![1, 5, 5],
            vec![LayerSpec::MaxPool],
            "needs even height and width",
        ),
        (
            vec![1, 4, 4],
            vec![LayerSpec::Conv {
                channels: 2,
                kernel: 5,
            }],
            "layer 1 (conv)",
        ),
        (
            vec![784],
            vec![LayerSpec::Flatten],
            "no layer has parameters",
        ),
        (vec![784], vec![], "at least one layer"),
        (vec![3, 4], vec![LayerSpec::Flatten], "input [3, 4]"),
        (
            vec![4],
            vec![
                LayerSpec::Dense {
                    width: 3,
                    name: Some("a".into()),
                },
                LayerSpec::Dense {
                    width: 3,
                    name: Some("a".into()),
                },
            ],
            "layer 2 (dense): name `a`",
        ),
    ];
    for (input, layers, want) in cases {
        let e = match build_layers(&input, &layers, &mut layout) {
            Ok(_) => panic!("{input:?} {layers:?}: accepted"),
            Err(e) => e,
        };
        assert!(e.contains(want), "{e}");
        layout = Layout::default();
    }
}

/// A config declares a net as `[[model.layers]]`; an unknown kind or key is an error.
#[test]
fn a_config_declares_a_net_layer_by_layer() {
    let spec: ModelSpec = toml::from_str(
        r#"
        model = "layers"
        input = [2, 6, 6]
        loss = { kind = "mse" }
        [[layers]]
        kind = "conv"
        channels = 3
        kernel = 3
        [[layers]]
        kind = "max-pool"
        [[layers]]
        kind = "flatten"
        [[layers]]
        kind = "dense"
        width = 3
        "#,
    )
    .unwrap();
    let net = spec.build(&cpu(), Precision::F32).unwrap();
    assert_eq!(net.dim(), (2 * 9 * 3 + 3) + (12 * 3 + 3));
    assert_eq!((net.in_dim(), net.out_dim()), (72, 3));
    for bad in [
        "model = \"layers\"\ninput = [4]\nloss = { kind = \"mse\" }\n[[layers]]\nkind = \"pool\"",
        "model = \"layers\"\ninput = [4]\nloss = { kind = \"mse\" }\n[[layers]]\nkind = \"dense\"\nwidth = 2\nstride = 1",
    ] {
        assert!(toml::from_str::<ModelSpec>(bad).is_err(), "{bad}");
    }
    let toy = ModelSpec::Layers {
        input: vec![2],
        layers: vec![LayerSpec::Dense {
            width: 2,
            name: None,
        }],
        loss: Loss::Toy2d,
    };
    assert!(toy.build(&cpu(), Precision::F32).is_err());
}
