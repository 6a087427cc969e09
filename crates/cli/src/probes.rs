//! The probes of SPEC §3 at one θ, as JSON for metrics lines and probe files. Shared by online
//! probing during training and by `noisescope probe` on checkpoints.

use burn::prelude::*;
use noisescope_data::DeviceDataset;
use noisescope_models::Net;
use noisescope_probe::alignment::{
    SampleSpace, average_alignment, average_alignment_gram, directional_alignment,
    directional_alignment_gram, random_unit_directions,
};
use noisescope_probe::decomposition::escape_decomposition;
use noisescope_probe::density::{SlqConfig, slq};
use noisescope_probe::escape::{IndicatorConfig, escape_indicator};
use noisescope_probe::sharpness::expected_sharpness;
use noisescope_probe::{
    Blocked, Eigenpairs, GaussNewton, GradientNoise, Hessian, LanczosConfig, LinearizedHessian,
    Operator, lanczos, lanczos_from, warm_start,
};
use serde_json::{Map, Value, json};

use crate::config::{AlignmentMethod, Probe, ProbeConfig};

/// The reference of the `direction` probe: θ_0 and the top-k Hessian eigenpairs there.
pub struct Anchor {
    pub theta: Tensor<1>,
    /// Unit eigenvectors as rows, [k, D], eigenvalues descending.
    pub vectors: Tensor<2>,
    pub values: Vec<f64>,
}

impl Anchor {
    /// Lanczos at θ_0 with the probes' `top_k` and `lanczos_steps`.
    pub fn at(
        cfg: &ProbeConfig,
        net: &Net,
        theta: &Tensor<1>,
        data: &DeviceDataset,
        weight_decay: f64,
        seed: u64,
    ) -> Self {
        let eig = top_hessian(
            cfg,
            &hessian(cfg, net, theta, data, weight_decay),
            seed,
            None,
        );
        Anchor {
            theta: theta.clone(),
            vectors: eig.vectors,
            values: eig.values,
        }
    }
}

/// H at θ (with the run's weight decay), applied in blocks of `chunk` directions.
fn hessian<'a>(
    cfg: &ProbeConfig,
    net: &'a Net,
    theta: &'a Tensor<1>,
    data: &'a DeviceDataset,
    weight_decay: f64,
) -> Blocked<LinearizedHessian<'a>> {
    Blocked::new(
        Hessian {
            net,
            theta,
            data,
            weight_decay,
        }
        .linearized(),
        cfg.chunk,
    )
}

/// The top `top_k` eigenpairs of H by Lanczos with `lanczos_steps` (at least 2k) steps, from a
/// random start or, given `warm` [k, D], from Σ_j u_j plus a random part of 10% of its norm.
/// The random part keeps the Krylov space from being confined to the old subspace, but a
/// direction that newly enters the top k has ≈ 10× less weight in the start than from a cold
/// start, so it is found more slowly.
fn top_hessian(
    cfg: &ProbeConfig,
    h: &Blocked<LinearizedHessian>,
    seed: u64,
    warm: Option<&Tensor<2>>,
) -> Eigenpairs {
    let lc = LanczosConfig {
        k: cfg.top_k,
        steps: cfg.lanczos_steps.max(2 * cfg.top_k),
        seed,
        tol: 0.0,
    };
    match warm {
        Some(u) if u.dims() == [cfg.top_k, h.dim()] => lanczos_from(h, warm_start(u, seed), lc),
        _ => lanczos(h, lc),
    }
}

/// What the probes found at one θ.
pub struct ProbeResult {
    /// Values by name.
    pub values: Map<String, Value>,
    /// The top-k Hessian eigenvectors [k, D] when a probe computed them and their eigenvalues
    /// are finite (the next probe's warm start).
    pub hessian_vectors: Option<Tensor<2>>,
}

/// Runs `list` at θ on `data` (the training set or the probe subset); `anchor` is the
/// `direction` probe's reference (none outside a run), `warm` the previous probe's top-k
/// Hessian eigenvectors for a warm-started Lanczos (used when `cfg.warm_start`).
#[allow(clippy::too_many_arguments)] // each is a separate input of the measurement
pub fn run(
    cfg: &ProbeConfig,
    list: &[Probe],
    net: &Net,
    theta: &Tensor<1>,
    data: &DeviceDataset,
    weight_decay: f64,
    seed: u64,
    anchor: Option<&Anchor>,
    warm: Option<&Tensor<2>>,
) -> ProbeResult {
    let mut values = Map::new();
    // H is linearized (a forward and a backward pass, activations kept) only for the probes
    // that take its products.
    let h = list
        .iter()
        .any(|p| matches!(p, Probe::Spectrum | Probe::Alignment | Probe::Density))
        .then(|| hessian(cfg, net, theta, data, weight_decay));
    let needs_spectrum = list
        .iter()
        .any(|p| matches!(p, Probe::Spectrum | Probe::Alignment));
    let mut hessian_vectors = None;
    let mut finite_pairs = false;
    if needs_spectrum {
        let h = h.as_ref().expect("linearized above");
        let eig = top_hessian(cfg, h, seed, warm.filter(|_| cfg.warm_start));
        values.insert("lambda_max".into(), json!(eig.values.first()));
        values.insert("hessian_top".into(), json!(eig.values));
        // Non-finite pairs would poison every later warm start.
        finite_pairs = eig.values.iter().all(|v| v.is_finite());
        hessian_vectors = Some(eig.vectors);
    }
    let noise = list
        .iter()
        .any(|p| matches!(p, Probe::Noise | Probe::Alignment | Probe::Escape))
        .then(|| GradientNoise::of(net, theta, data));
    for p in list {
        match p {
            Probe::Spectrum => {}
            Probe::Escape => {
                let e = escape_indicator(
                    net,
                    theta,
                    data,
                    noise.as_ref().expect("computed above"),
                    weight_decay,
                    IndicatorConfig {
                        trace_h: cfg.trace_h,
                        trace_h_sigma: cfg.trace_h_sigma,
                        chunk: cfg.chunk,
                        seed,
                    },
                );
                values.insert("trace_h_sigma".into(), json!(e.trace_h_sigma));
                values.insert("trace_h_sigma_se".into(), json!(e.trace_h_sigma_se));
                values.insert("trace_h_sigma_iso".into(), json!(e.isotropic));
                values.insert("escape_ratio".into(), json!(e.ratio));
                values.insert("trace_h".into(), json!(e.trace_h.value));
                values.insert("trace_h_se".into(), json!(e.trace_h.std_error));
                values.insert("trace_sigma".into(), json!(e.trace_sigma));
            }
            Probe::Sharpness => {
                let s = expected_sharpness(net, theta, data, cfg.sharpness);
                values.insert("sharpness".into(), json!(s.expected));
                values.insert("sharpness_se".into(), json!(s.expected_se));
                values.insert("sharpness_abs".into(), json!(s.absolute));
                values.insert("sharpness_abs_se".into(), json!(s.absolute_se));
            }
            Probe::Noise => {
                let n = noise.as_ref().expect("computed above");
                values.insert("trace_sigma".into(), json!(n.trace()));
                values.insert("sigma_top".into(), json!(n.top_k(cfg.top_k, true).values));
            }
            Probe::Alignment => {
                let n = noise.as_ref().expect("computed above");
                let top = hessian_vectors.as_ref().expect("computed above");
                let random = random_unit_directions(
                    cfg.top_k,
                    net.dim(),
                    seed ^ 0xA11,
                    &theta.device(),
                    theta.dtype(),
                );
                let (a, along_top, along_random) = match cfg.alignment_method {
                    AlignmentMethod::Products => {
                        let gf = Blocked::new(GaussNewton { net, theta, data }, cfg.chunk);
                        let a =
                            average_alignment(net, theta, data, n, cfg.frobenius, cfg.chunk, seed);
                        let top = directional_alignment(&gf, n, a.loss, top);
                        let random = directional_alignment(&gf, n, a.loss, &random);
                        (a, top, random)
                    }
                    AlignmentMethod::Gram => {
                        let ggn = net.ggn_factors(theta, data);
                        let space = SampleSpace::new(n, &ggn, net.loss(theta, data));
                        let a = average_alignment_gram(&space);
                        // One projection of the factors for both sets of directions.
                        let both = Tensor::cat(vec![top.clone(), random], 0);
                        let mut top = directional_alignment_gram(&space, &both);
                        let random = top.split_off(top.len() - cfg.top_k);
                        (a, top, random)
                    }
                };
                values.insert("alignment_mu".into(), json!(a.mu));
                values.insert("trace_sigma_gf".into(), json!(a.trace_sigma_gf));
                values.insert("gf_frobenius_sq".into(), json!(a.gf_frobenius_sq));
                values.insert("alignment_top".into(), json!(along_top));
                values.insert("alignment_random".into(), json!(along_random));
            }
            Probe::Direction => {
                // Without an anchor (a checkpoint probed on its own) there is no θ_0.
                if let Some(a) = anchor {
                    let d = escape_decomposition(&a.vectors, &(theta.clone() - a.theta.clone()));
                    values.insert("direction_sharp_fraction".into(), json!(d.fraction));
                    let top1 = match d.components.first() {
                        Some(c) if d.norm_sq > 0.0 => c / d.norm_sq,
                        _ => 0.0,
                    };
                    values.insert("direction_top1_fraction".into(), json!(top1));
                    values.insert("direction_components".into(), json!(d.components));
                    values.insert("direction_norm_sq".into(), json!(d.norm_sq));
                    values.insert("direction_anchor_top".into(), json!(a.values));
                }
            }
            Probe::Density => {
                let d = slq(
                    h.as_ref().expect("linearized above"),
                    SlqConfig {
                        vectors: 5,
                        steps: cfg.lanczos_steps.min(net.dim()),
                        seed,
                    },
                );
                values.insert(
                    "density".into(),
                    json!({"nodes": d.nodes, "weights": d.weights}),
                );
            }
        }
    }
    ProbeResult {
        values,
        hessian_vectors: hessian_vectors.filter(|_| finite_pairs),
    }
}
