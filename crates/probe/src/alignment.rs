//! Alignment of the gradient noise with the curvature (Wang and Wu): the average alignment
//! μ(θ) = Tr(Σ₁ G_F) / (2 L(θ) ‖G_F‖_F²) and the directional alignment
//! g(θ; v) = vᵀ Σ₁ v / (2 L(θ) vᵀ G_F v).

use burn::prelude::*;
use noisescope_data::DeviceDataset;
use noisescope_models::{Net, SampleGradients};

use crate::covariance::GradientNoise;
use crate::escape::{TraceMethod, trace_with_covariance};
pub use crate::linalg::random_unit_directions;
use crate::linalg::{ProbeKind, random_directions, row_dots, row_sums, to_host};
use crate::operator::{Blocked, GaussNewton, Operator};
use crate::trace::unit_rows;

/// The average alignment and its pieces.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AverageAlignment {
    /// μ(θ).
    pub mu: f64,
    /// Tr(Σ₁ G_F), exact.
    pub trace_sigma_gf: f64,
    /// ‖G_F‖_F² = Tr(G_F²).
    pub gf_frobenius_sq: f64,
    /// Its standard error (0 when exact).
    pub gf_frobenius_sq_se: f64,
    /// L(θ).
    pub loss: f64,
}

/// ‖A‖_F² = Σ_j ‖A e_j‖² exactly (D products), or E‖A z‖² over Rademacher z.
pub fn frobenius_sq(op: &impl Operator, method: TraceMethod, seed: u64) -> (f64, f64) {
    let d = op.dim();
    let sq = |v: &Tensor<2>| to_host(row_sums(op.apply_blocked(v).square()));
    match method {
        TraceMethod::Exact => {
            // The identity in blocks of rows: never D × D at once.
            let block = op.max_block().clamp(1, d.max(1));
            let total = (0..d)
                .step_by(block)
                .map(|s| {
                    let e = unit_rows(s, block.min(d - s), d, &op.device(), op.dtype());
                    sq(&e).iter().sum::<f64>()
                })
                .sum();
            (total, 0.0)
        }
        TraceMethod::Hutchinson { probes } | TraceMethod::HutchPlusPlus { matvecs: probes } => {
            let z = random_directions(
                probes.max(2),
                d,
                ProbeKind::Rademacher,
                seed,
                &op.device(),
                op.dtype(),
            );
            let (mean, se) = crate::stats::mean_and_se(&sq(&z));
            (mean, se.unwrap_or(f64::NAN))
        }
    }
}

/// μ(θ) with Tr(Σ₁ G_F) exact (N Gauss-Newton products in blocks of `chunk`) and ‖G_F‖_F² by
/// `frobenius` (exact: D products).
///
/// # Shapes
/// `theta`: [D] (D = `net.dim()`); `data.x`: [N, p]; `noise`: Σ₁ of the same net, θ and data.
///
/// # Returns
/// An [`AverageAlignment`]: μ(θ), Tr(Σ₁ G_F), ‖G_F‖_F² with its standard error (0 when
/// exact), and L(θ).
pub fn average_alignment(
    net: &Net,
    theta: &Tensor<1>,
    data: &DeviceDataset,
    noise: &GradientNoise,
    frobenius: TraceMethod,
    chunk: usize,
    seed: u64,
) -> AverageAlignment {
    let gf = Blocked::new(GaussNewton { net, theta, data }, chunk);
    let loss = net.loss(theta, data);
    let trace_sigma_gf = trace_with_covariance(&gf, net, theta, data, noise.mean(), chunk);
    let (fro, fro_se) = frobenius_sq(&gf, frobenius, seed);
    AverageAlignment {
        mu: trace_sigma_gf / (2.0 * loss * fro),
        trace_sigma_gf,
        gf_frobenius_sq: fro,
        gf_frobenius_sq_se: fro_se,
        loss,
    }
}

/// The per-sample gradients G [n, D] and the Gauss-Newton rows R [o·n, D] of one θ on one data
/// set (R's rows J_nᵀΛ_n^{1/2}e_p, from `Net::ggn_factors`, so that G_F = RᵀR/n), stacked once
/// as [G; R]: o + 1 blocks of the same n samples, which share their layer inputs. μ and the
/// directional alignments are computed from it in sample space, with no product in parameter
/// space.
pub struct SampleSpace {
    rows: SampleGradients,
    n: usize,
    sets: usize,
    loss: f64,
}

impl SampleSpace {
    /// From Σ₁'s per-sample gradients, R at the same θ on the same data, and L(θ) there.
    pub fn new(noise: &GradientNoise, ggn: &SampleGradients, loss: f64) -> Self {
        let n = noise.grads().samples();
        assert!(
            n > 0 && ggn.samples() > 0 && ggn.samples().is_multiple_of(n),
            "alignment in sample space: {} Gauss-Newton rows are not blocks of the {n} samples",
            ggn.samples()
        );
        SampleSpace {
            rows: SampleGradients::stack(vec![noise.grads().clone(), ggn.clone()]),
            n,
            sets: ggn.samples() / n + 1,
            loss,
        }
    }
}

/// μ(θ) exactly in sample space: ‖G_F‖_F² = ‖R Rᵀ‖_F² / n² and
/// Tr(Σ₁ G_F) = ‖R (G − 1ḡᵀ)ᵀ‖_F² / n², both from one Gram matrix of [G; R] (each layer's
/// input Gram formed once), O(((o+1)·n)²) entries. Cheaper than [`average_alignment`] when o·n
/// is small next to D (an online probe on a wide net); its memory grows as (o·n)².
pub fn average_alignment_gram(space: &SampleSpace) -> AverageAlignment {
    let (n, loss) = (space.n, space.loss);
    // The lower-right block of K is R Rᵀ, its lower-left block C = R Gᵀ [o·n, n], whose
    // column i is R g_i (mean R ḡ).
    let k = space.rows.gram_sets(space.sets);
    let all = space.sets * n;
    let rrt = k.clone().slice([n..all, n..all]);
    let c = k.slice([n..all, 0..n]);
    let nn = (n * n) as f64;
    let fro = to_host(rrt.square().sum())[0] / nn;
    let centred = c.clone() - c.mean_dim(1);
    let trace_sigma_gf = to_host(centred.square().sum())[0] / nn;
    AverageAlignment {
        mu: trace_sigma_gf / (2.0 * loss * fro),
        trace_sigma_gf,
        gf_frobenius_sq: fro,
        gf_frobenius_sq_se: 0.0,
        loss,
    }
}

/// g(θ; v_j) in sample space, equal to [`directional_alignment`]: with p_{ij} = g_iᵀv_j and
/// q_{(p,i)j} = r_{p,i}ᵀv_j, v_jᵀΣ₁v_j = (1/n) Σ_i (p_{ij} − p̄_j)² and
/// v_jᵀG_F v_j = (1/n) Σ_{p,i} q_{(p,i)j}². Both projections come from the layers' factors,
/// which share their inputs, so each dense layer costs one [n, i+1] × [i+1, k·o_l] product
/// for all k directions (on 784–2048–10 at n = 128, 5 directions, ≈ 20× cheaper than the Σ₁
/// and G_F products).
///
/// # Shapes
/// `v`: [k, D]; returns k host values, g(θ; v_j) in row order.
pub fn directional_alignment_gram(space: &SampleSpace, v: &Tensor<2>) -> Vec<f64> {
    let (n, sets) = (space.n, space.sets);
    let proj = space.rows.project_sets(sets, v); // [k, sets·n]
    let p = proj.clone().narrow(1, 0, n);
    let centred = p.clone() - p.mean_dim(1);
    let sigma = to_host(centred.square().mean_dim(1));
    let curv = to_host(proj.narrow(1, n, (sets - 1) * n).square().sum_dim(1));
    sigma
        .iter()
        .zip(&curv)
        .map(|(s, c)| s / (2.0 * space.loss * c / n as f64))
        .collect()
}

/// g(θ; v_j) = v_jᵀ Σ₁ v_j / (2 L v_jᵀ G_F v_j) for each row of V [k, D] (any norm: the ratio
/// is scale-free).
///
/// # Shapes
/// `v`: [k, D]; `gf` and `noise` act on R^D; returns k host values, g(θ; v_j) in row order.
pub fn directional_alignment(
    gf: &impl Operator,
    noise: &GradientNoise,
    loss: f64,
    v: &Tensor<2>,
) -> Vec<f64> {
    let sigma = to_host(row_dots(&noise.operator().apply(v), v));
    let curv = to_host(row_dots(&gf.apply_blocked(v), v));
    sigma
        .iter()
        .zip(&curv)
        .map(|(s, c)| s / (2.0 * loss * c))
        .collect()
}

#[cfg(test)]
#[path = "alignment_tests.rs"]
mod tests;
