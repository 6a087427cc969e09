//! Every probe against its dense f64 reference on small nets (D ≤ 150): H and Σ₁ formed as
//! D×D matrices and decomposed by a dense eigensolver.

// Dense references index matrices by (i, j); iterator chains would hide the formulas.
#![allow(clippy::needless_range_loop)]

use burn::prelude::*;
use burn::tensor::DType;
use noisescope_data::{DeviceDataset, Features, Precision, Targets};
use noisescope_models::{ActivationKind, Init, Loss, ModelSpec, Net};
use rand::SeedableRng;
use rand::distr::Distribution;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::alignment::{
    SampleSpace, average_alignment, average_alignment_gram, directional_alignment,
    directional_alignment_gram, frobenius_sq,
};
use crate::decomposition::escape_decomposition;
use crate::density::{SlqConfig, slq};
use crate::escape::{
    IndicatorConfig, SampleSandwich, TraceMethod, escape_indicator, trace_times_covariance,
    trace_with_covariance,
};
use crate::linalg::{symmetric_eigen, to_device, to_host};
use crate::operator::materialize;
use crate::sharpness::{SharpnessConfig, expected_sharpness};
use crate::trace::{exact_trace, hutch_plus_plus, hutchinson};
use crate::*;

#[allow(deprecated)]
pub(crate) fn cpu() -> Device {
    Device::ndarray()
}

/// A small problem: net, θ (PyTorch's default init), data, all in f64 on the CPU.
struct Problem {
    net: Net,
    theta: Tensor<1>,
    data: DeviceDataset,
}

fn problem(
    activation: ActivationKind,
    loss: Loss,
    widths: Vec<usize>,
    n: usize,
    seed: u64,
) -> Problem {
    problem_in(Precision::F64, activation, loss, widths, n, seed)
}

fn problem_in(
    precision: Precision,
    activation: ActivationKind,
    loss: Loss,
    widths: Vec<usize>,
    n: usize,
    seed: u64,
) -> Problem {
    let device = cpu();
    let dim = widths[0];
    let classes = *widths.last().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let labels = (0..n).map(|i| ((i * 7 + 3) % classes) as u32).collect();
    let f = Features {
        n,
        dim,
        x,
        targets: Targets::Classes { labels, classes },
    };
    let net = ModelSpec::Mlp {
        widths,
        activation,
        loss,
    }
    .build(&device, precision)
    .unwrap();
    let theta = Init::TorchDefault.tensor(&net.layout, seed, &device, precision);
    let data = net.adapt(DeviceDataset::upload(&f, &device, precision));
    Problem { net, theta, data }
}

fn tanh_mse() -> Problem {
    problem(ActivationKind::Tanh, Loss::Mse, vec![6, 10, 3], 30, 1)
}

fn relu_ce() -> Problem {
    problem(
        ActivationKind::Relu,
        Loss::CrossEntropy,
        vec![6, 12, 4],
        40,
        2,
    )
}

impl Problem {
    fn hessian(&self, weight_decay: f64) -> Hessian<'_> {
        Hessian {
            net: &self.net,
            theta: &self.theta,
            data: &self.data,
            weight_decay,
        }
    }

    fn ggn(&self) -> GaussNewton<'_> {
        GaussNewton {
            net: &self.net,
            theta: &self.theta,
            data: &self.data,
        }
    }

    /// Σ₁ = (1/N) Gᵀ G − ḡ ḡᵀ and F = (1/N) Gᵀ G from the materialized G, on the host.
    fn dense_sigma_and_fisher(&self) -> (Vec<f64>, Vec<f64>) {
        let g = self.net.per_sample_gradients(&self.theta, &self.data);
        let [n, d] = g.dims();
        let g = to_host(g);
        let mut f = vec![0.0; d * d];
        let mut mean = vec![0.0; d];
        for s in 0..n {
            let row = &g[s * d..(s + 1) * d];
            for i in 0..d {
                mean[i] += row[i] / n as f64;
                for j in 0..d {
                    f[i * d + j] += row[i] * row[j] / n as f64;
                }
            }
        }
        let sigma = (0..d * d)
            .map(|ij| f[ij] - mean[ij / d] * mean[ij % d])
            .collect();
        (sigma, f)
    }
}

fn dense(op: &impl Operator) -> Vec<f64> {
    to_host(materialize(op))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

/// |⟨u, v⟩| for unit vectors: 1 when they span the same line.
fn overlap(u: &[f64], v: &[f64]) -> f64 {
    u.iter().zip(v).map(|(a, b)| a * b).sum::<f64>().abs()
}

fn trace_of_product(a: &[f64], b: &[f64], d: usize) -> f64 {
    (0..d)
        .flat_map(|i| (0..d).map(move |j| (i, j)))
        .map(|(i, j)| a[i * d + j] * b[j * d + i])
        .sum()
}

#[test]
fn lanczos_top_k_matches_the_dense_spectrum() {
    for p in [tanh_mse(), relu_ce()] {
        let h = p.hessian(0.0);
        let d = h.dim();
        let (vals, vecs) = symmetric_eigen(&dense(&h), d);
        let k = 5;
        let got = lanczos(
            &h,
            LanczosConfig {
                k,
                steps: 80,
                seed: 3,
                tol: 0.0,
            },
        );
        let u = to_host(got.vectors.clone());
        for j in 0..k {
            assert!(
                rel(got.values[j], vals[j]) < 1e-6,
                "{} λ{j}: {} vs {}",
                p.net.name,
                got.values[j],
                vals[j]
            );
            let o = overlap(&u[j * d..(j + 1) * d], &vecs[j * d..(j + 1) * d]);
            assert!(o > 1.0 - 1e-6, "{} u{j}: overlap {o}", p.net.name);
            assert!(
                got.residuals[j] < 1e-5 * vals[0].abs(),
                "residual {}",
                got.residuals[j]
            );
        }
    }
}

/// A Hessian linearized once at θ gives the same products as one that recomputes the forward
/// and backward passes for each block, weight decay included.
#[test]
fn linearized_hessian_gives_the_same_products() {
    for p in [tanh_mse(), relu_ce()] {
        for gamma in [0.0, -0.05] {
            let h = p.hessian(gamma);
            let v = crate::linalg::random_directions(
                4,
                p.net.dim(),
                crate::linalg::ProbeKind::Gaussian,
                5,
                &cpu(),
                DType::F64,
            );
            let want = to_host(h.apply(&v));
            let got = to_host(h.linearized().apply(&v));
            let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
            let err = got
                .iter()
                .zip(&want)
                .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err <= 1e-12 * scale, "{} γ={gamma}: {err:e}", p.net.name);
        }
    }
}

/// The host-memory recurrence (what ndarray runs) and the device one (what GPUs run) build
/// the same tridiagonal matrix and basis.
#[test]
fn lanczos_host_and_device_forms_agree() {
    for p in [tanh_mse(), relu_ce()] {
        let h = p.hessian(0.0);
        let d = p.net.dim();
        let start = crate::linalg::random_directions(
            1,
            d,
            crate::linalg::ProbeKind::Gaussian,
            3,
            &cpu(),
            DType::F64,
        );
        let a = crate::lanczos::lanczos_in_host_memory(&h, start.clone(), 12, None);
        let b = crate::lanczos::lanczos_on_device(&h, start, 12, None);
        assert_eq!(a.alpha.len(), b.alpha.len());
        for (x, y) in a
            .alpha
            .iter()
            .zip(&b.alpha)
            .chain(a.beta.iter().zip(&b.beta))
        {
            assert!(rel(*x, *y) < 1e-9, "{}: {x} vs {y}", p.net.name);
        }
        let diff = to_host((a.basis.to_tensor() - b.basis.to_tensor()).abs().max())[0];
        assert!(diff < 1e-9, "{}: bases differ by {diff}", p.net.name);
    }
}

#[test]
fn lanczos_with_weight_decay_shifts_every_eigenvalue() {
    let p = tanh_mse();
    let cfg = LanczosConfig {
        k: 3,
        steps: 80,
        seed: 1,
        tol: 0.0,
    };
    let plain = lanczos(&p.hessian(0.0), cfg);
    let shifted = lanczos(&p.hessian(-0.05), cfg);
    for (a, b) in plain.values.iter().zip(&shifted.values) {
        assert!((a - 0.05 - b).abs() < 1e-8, "{a} − 0.05 vs {b}");
    }
}

#[test]
fn lanczos_stops_at_its_residual_tolerance() {
    for p in [tanh_mse(), relu_ce()] {
        let h = p.hessian(0.0);
        let d = h.dim();
        let (vals, _) = symmetric_eigen(&dense(&h), d);
        let cfg = LanczosConfig {
            k: 3,
            steps: d,
            seed: 4,
            tol: 1e-6,
        };
        let got = lanczos(&h, cfg);
        assert!(got.matvecs < d, "{}: stopped early", p.net.name);
        let top = vals[0].abs();
        for (i, r) in got.residuals.iter().enumerate() {
            assert!(
                *r <= 1e-6 * top * (1.0 + 1e-9),
                "{}: residual {r}",
                p.net.name
            );
            // A Ritz value is within its residual of an eigenvalue (Bauer–Fike).
            assert!(
                (got.values[i] - vals[i]).abs() <= r + 1e-9 * top,
                "{}: {} vs {}",
                p.net.name,
                got.values[i],
                vals[i]
            );
        }
        // Warm-started from its own eigenvectors, it converges in fewer steps.
        let start = got.vectors.clone().sum_dim(0);
        let warm = lanczos_from(&h, start, cfg);
        assert!(
            warm.matvecs < got.matvecs,
            "{}: {} steps warm, {} cold",
            p.net.name,
            warm.matvecs,
            got.matvecs
        );
        for (a, b) in warm.values.iter().zip(&vals) {
            assert!((a - b).abs() <= 1e-5 * top, "{}: {a} vs {b}", p.net.name);
        }
    }
}

#[test]
fn power_iteration_finds_the_largest_magnitudes() {
    let p = tanh_mse();
    let h = p.hessian(0.0);
    let d = h.dim();
    let (vals, _) = symmetric_eigen(&dense(&h), d);
    let mut by_mag = vals.clone();
    by_mag.sort_by(|a, b| b.abs().total_cmp(&a.abs()));
    let got = power_iteration(
        &h,
        PowerConfig {
            k: 2,
            max_iter: 2000,
            tol: 1e-12,
            seed: 5,
        },
    );
    for j in 0..2 {
        assert!(
            rel(got.values[j], by_mag[j]) < 1e-6,
            "λ{j}: {} vs {}",
            got.values[j],
            by_mag[j]
        );
    }
}

#[test]
fn traces_exact_and_within_their_confidence_intervals() {
    let p = relu_ce();
    let h = p.hessian(0.0);
    let d = h.dim();
    let a = dense(&h);
    let want: f64 = (0..d).map(|i| a[i * d + i]).sum();
    let exact = exact_trace(&h);
    assert!(rel(exact.value, want) < 1e-10);
    let hutch = hutchinson(&h, 200, 4);
    assert!(
        (hutch.value - want).abs() < 4.0 * hutch.std_error,
        "{hutch:?} vs {want}"
    );
    assert!(hutch.std_error > 0.0 && hutch.std_error < want.abs());
    let pp = hutch_plus_plus(&h, 90, 4);
    assert!(
        (pp.value - want).abs() < 4.0 * pp.std_error + 1e-9,
        "{pp:?} vs {want}"
    );
    assert_eq!(pp.matvecs, 90);
    // Hutch++ deflates the top of the spectrum: its remainder varies less than plain probes.
    assert!(pp.std_error < hutch.std_error * (200.0f64 / 30.0).sqrt());
}

#[test]
fn slq_density_integrates_to_one_and_matches_the_moments() {
    let p = tanh_mse();
    let h = p.hessian(0.0);
    let d = h.dim();
    let a = dense(&h);
    let (vals, _) = symmetric_eigen(&a, d);
    let density = slq(
        &h,
        SlqConfig {
            vectors: 30,
            steps: 40,
            seed: 9,
        },
    );
    for w in &density.weights {
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-10);
    }
    let (lo, hi) = density.range();
    assert!(
        lo >= vals[d - 1] - 1e-8 && hi <= vals[0] + 1e-8,
        "nodes inside the spectrum"
    );
    let sigma = (vals[0] - vals[d - 1]) / 100.0;
    let grid = density.on_grid(4000, sigma);
    let integral: f64 = grid
        .windows(2)
        .map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0))
        .sum();
    assert!((integral - 1.0).abs() < 1e-3, "∫φ = {integral}");
    for power in 1..=3 {
        let want = vals.iter().map(|v| v.powi(power)).sum::<f64>() / d as f64;
        let (got, se) = density.moment(power);
        assert!(
            (got - want).abs() < 4.0 * se + 1e-12,
            "moment {power}: {got} ± {se} vs {want}"
        );
    }
}

#[test]
fn gradient_noise_matches_the_dense_covariance() {
    for p in [tanh_mse(), relu_ce()] {
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        let d = p.net.dim();
        let (sigma, fisher) = p.dense_sigma_and_fisher();
        let tr: f64 = (0..d).map(|i| sigma[i * d + i]).sum();
        assert!(rel(noise.trace(), tr) < 1e-10);
        let diag = to_host(noise.diagonal());
        for i in 0..d {
            assert!((diag[i] - sigma[i * d + i]).abs() < 1e-12 * tr);
        }
        let op = dense(&noise.operator());
        let err = op
            .iter()
            .zip(&sigma)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-12 * tr, "Σ₁ operator: {err:e}");
        for (centered, m) in [(true, &sigma), (false, &fisher)] {
            let (vals, vecs) = symmetric_eigen(m, d);
            let k = 4;
            let top = noise.top_k(k, centered);
            let u = to_host(top.vectors.clone());
            for j in 0..k {
                assert!(rel(top.values[j], vals[j]) < 1e-9, "{} λ{j}", p.net.name);
                let o = overlap(&u[j * d..(j + 1) * d], &vecs[j * d..(j + 1) * d]);
                assert!(o > 1.0 - 1e-9, "{} u{j} overlap {o}", p.net.name);
            }
        }
        let fop = dense(&noise.fisher());
        let err = fop
            .iter()
            .zip(&fisher)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-12 * tr, "F operator: {err:e}");
    }
}

#[test]
fn sigma_has_rank_at_most_n_minus_one() {
    // N = 5 samples: Σ₁ has rank ≤ 4, so asking for 10 pairs returns at most 4.
    let p = problem(ActivationKind::Tanh, Loss::Mse, vec![6, 10, 3], 5, 3);
    let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
    let top = noise.top_k(10, true);
    assert!(top.values.len() <= 4, "{:?}", top.values);
    let sum: f64 = top.values.iter().sum();
    assert!(
        rel(sum, noise.trace()) < 1e-9,
        "the pairs hold all of Tr Σ₁"
    );
}

/// In f32 the exact Tr(HΣ₁) does not drift with the chunk size: each sample's quadratic form
/// is summed on the host in f64 (a device sum over chunk × D entries lost digits).
#[test]
fn f32_trace_h_sigma_does_not_depend_on_the_chunk() {
    let args = (ActivationKind::Tanh, Loss::Mse, vec![30, 200, 10], 120, 3);
    let f64p = problem_in(
        Precision::F64,
        args.0,
        args.1,
        args.2.clone(),
        args.3,
        args.4,
    );
    let f32p = problem_in(Precision::F32, args.0, args.1, args.2, args.3, args.4);
    let exact = |p: &Problem, chunk: usize| {
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        trace_with_covariance(
            &p.hessian(0.0),
            &p.net,
            &p.theta,
            &p.data,
            noise.mean(),
            chunk,
        )
    };
    let want = exact(&f64p, 7);
    for chunk in [1, 7, 120] {
        let got = exact(&f32p, chunk);
        assert!(rel(got, want) < 2e-6, "f32, chunk {chunk}: {got} vs {want}");
    }
}

#[test]
fn trace_h_sigma_is_exact() {
    for p in [tanh_mse(), relu_ce()] {
        let d = p.net.dim();
        let h = dense(&p.hessian(0.0));
        let (sigma, _) = p.dense_sigma_and_fisher();
        let want = trace_of_product(&h, &sigma, d);
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        let got =
            trace_with_covariance(&p.hessian(0.0), &p.net, &p.theta, &p.data, noise.mean(), 7);
        assert!(rel(got, want) < 1e-10, "{}: {got} vs {want}", p.net.name);

        let ind = escape_indicator(
            &p.net,
            &p.theta,
            &p.data,
            &noise,
            0.0,
            IndicatorConfig {
                chunk: 16,
                ..Default::default()
            },
        );
        let tr_h: f64 = (0..d).map(|i| h[i * d + i]).sum();
        let tr_s: f64 = (0..d).map(|i| sigma[i * d + i]).sum();
        assert!(rel(ind.trace_h_sigma, want) < 1e-10);
        assert!(rel(ind.isotropic, tr_h * tr_s / d as f64) < 1e-10);
        assert!(rel(ind.ratio, want / (tr_h * tr_s / d as f64)) < 1e-10);
    }
}

#[test]
fn sample_space_trace_h_sigma_is_exact_and_its_estimates_are_honest() {
    for p in [tanh_mse(), relu_ce()] {
        let d = p.net.dim();
        let h = dense(&p.hessian(0.0));
        let (sigma, _) = p.dense_sigma_and_fisher();
        let want = trace_of_product(&h, &sigma, d);
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        let hess = p.hessian(0.0);
        let b = SampleSandwich {
            inner: &hess,
            noise: &noise,
        };
        assert_eq!(b.dim(), p.data.n);
        // B = (1/N) G_c H G_cᵀ is symmetric with trace Tr(HΣ₁).
        let dense_b = dense(&b);
        let n = p.data.n;
        for i in 0..n {
            for j in 0..n {
                assert!((dense_b[i * n + j] - dense_b[j * n + i]).abs() < 1e-10);
            }
        }
        assert!(rel(exact_trace(&b).value, want) < 1e-10, "{}", p.net.name);
        // Unbiased with an honest standard error: over 30 seeds every estimate lies within
        // 4 s.e. of the exact value, and the mean squared z-score is near 1. (Hutch++'s
        // error is that of its Hutchinson remainder alone, from a third of the products: too
        // few for a z-score this test could hold.)
        {
            let method = TraceMethod::Hutchinson { probes: 50 };
            let z: Vec<f64> = (0..30)
                .map(|seed| {
                    let e = trace_times_covariance(
                        &hess,
                        &p.net,
                        &p.theta,
                        &p.data,
                        &noise,
                        IndicatorConfig {
                            trace_h_sigma: method,
                            seed,
                            ..Default::default()
                        },
                    );
                    assert!(e.std_error > 0.0);
                    (e.value - want) / e.std_error
                })
                .collect();
            let worst = z.iter().fold(0f64, |m, v| m.max(v.abs()));
            let msz = z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64;
            assert!(worst < 4.0, "{} {method:?}: z = {z:?}", p.net.name);
            assert!(
                (0.3..3.0).contains(&msz),
                "{} {method:?}: mean z² = {msz}",
                p.net.name
            );
        }
    }
}

#[test]
fn alignment_matches_its_dense_formulas() {
    for p in [tanh_mse(), relu_ce()] {
        let d = p.net.dim();
        let gf = dense(&p.ggn());
        let (sigma, _) = p.dense_sigma_and_fisher();
        let loss = p.net.loss(&p.theta, &p.data);
        let fro: f64 = gf.iter().map(|v| v * v).sum();
        let want = trace_of_product(&sigma, &gf, d) / (2.0 * loss * fro);
        let noise = GradientNoise::of(&p.net, &p.theta, &p.data);
        let got = average_alignment(&p.net, &p.theta, &p.data, &noise, TraceMethod::Exact, 16, 0);
        assert!(
            rel(got.mu, want) < 1e-10,
            "{}: μ {} vs {want}",
            p.net.name,
            got.mu
        );
        // The sample-space computation gives the same numbers exactly.
        let ggn = p.net.ggn_factors(&p.theta, &p.data);
        let space = SampleSpace::new(&noise, &ggn, loss);
        let gram = average_alignment_gram(&space);
        assert!(rel(gram.mu, want) < 1e-10, "gram μ {} vs {want}", gram.mu);
        assert!(rel(gram.gf_frobenius_sq, fro) < 1e-10);
        assert!(rel(gram.trace_sigma_gf, got.trace_sigma_gf) < 1e-10);
        let (est, se) = frobenius_sq(&p.ggn(), TraceMethod::Hutchinson { probes: 300 }, 1);
        assert!((est - fro).abs() < 4.0 * se, "‖G_F‖² {est} ± {se} vs {fro}");
        // Directional alignment along the top Hessian eigenvectors and random directions.
        let top = lanczos(
            &p.hessian(0.0),
            LanczosConfig {
                k: 3,
                steps: 80,
                seed: 0,
                tol: 0.0,
            },
        );
        let rand = alignment::random_unit_directions(3, d, 8, &cpu(), DType::F64);
        for v in [top.vectors, rand] {
            let got = directional_alignment(&p.ggn(), &noise, loss, &v);
            let in_sample_space = directional_alignment_gram(&space, &v);
            let vh = to_host(v);
            for (j, g) in got.iter().enumerate() {
                let x = &vh[j * d..(j + 1) * d];
                let quad = |m: &[f64]| -> f64 {
                    (0..d)
                        .flat_map(|a| (0..d).map(move |b| (a, b)))
                        .map(|(a, b)| x[a] * m[a * d + b] * x[b])
                        .sum()
                };
                let want = quad(&sigma) / (2.0 * loss * quad(&gf));
                assert!(rel(*g, want) < 1e-10, "g(v{j}) {g} vs {want}");
                let s = in_sample_space[j];
                assert!(rel(s, want) < 1e-10, "sample-space g(v{j}) {s} vs {want}");
            }
        }
    }
}

#[test]
fn expected_sharpness_is_half_delta_squared_trace_h() {
    // For small δ, E[L(θ + ν)] − L(θ) = (δ²/2) Tr H + O(δ⁴): the linear term averages out.
    let p = tanh_mse();
    let tr_h = exact_trace(&p.hessian(0.0)).value;
    let delta = 1e-2;
    let cfg = SharpnessConfig {
        delta,
        samples: 4000,
        batch: 100,
        seed: 2,
        antithetic: false,
    };
    let s = expected_sharpness(&p.net, &p.theta, &p.data, cfg);
    let want = 0.5 * delta * delta * tr_h;
    assert!(
        (s.expected - want).abs() < 4.0 * s.expected_se + 0.05 * want.abs(),
        "{s:?} vs {want}"
    );
    assert!(s.absolute > s.expected.abs(), "E|ΔL| ≥ |EΔL|");
    // The same seed gives the same perturbations.
    let again = expected_sharpness(&p.net, &p.theta, &p.data, cfg);
    assert_eq!(s, again);
    // Antithetic pairs: the same expectations from the same number of losses, and the
    // expected sharpness's error far below the plain estimator's (the linear term cancels).
    let pairs = expected_sharpness(
        &p.net,
        &p.theta,
        &p.data,
        SharpnessConfig {
            antithetic: true,
            ..cfg
        },
    );
    assert!(
        (pairs.expected - want).abs() < 4.0 * pairs.expected_se + 0.05 * want.abs(),
        "{pairs:?} vs {want}"
    );
    assert!(
        (pairs.absolute - s.absolute).abs() < 4.0 * (pairs.absolute_se + s.absolute_se),
        "{pairs:?} vs {s:?}"
    );
    assert!(
        pairs.expected_se < 0.5 * s.expected_se,
        "{pairs:?} vs {s:?}"
    );
}

#[test]
fn escape_decomposition_splits_the_norm() {
    let device = cpu();
    let delta = to_device(vec![3.0, 4.0, 12.0], 1, 3, &device, DType::F64).reshape([3]);
    let u = to_device(
        vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        2,
        3,
        &device,
        DType::F64,
    );
    let e = escape_decomposition(&u, &delta);
    assert_eq!(e.components, vec![9.0, 16.0]);
    assert_eq!(e.norm_sq, 169.0);
    assert!((e.fraction - 25.0 / 169.0).abs() < 1e-15);
}

#[test]
fn minibatch_scales_of_spec_section_one() {
    use noisescope_data::Sampling;
    assert_eq!(
        minibatch_scale(100, 20, Sampling::WithReplacement),
        1.0 / 20.0
    );
    assert!(
        (minibatch_scale(100, 20, Sampling::WithoutReplacement) - 80.0 / (20.0 * 99.0)).abs()
            < 1e-15
    );
    assert_eq!(minibatch_scale(100, 100, Sampling::WithoutReplacement), 0.0);
}
