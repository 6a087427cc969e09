//! Statistical tests of every surrogate on a small net (D = 32) whose Σ₁, H and G_F are formed
//! densely in f64: the empirical covariance of 20 000 draws matches C entry by entry, Tr C
//! matches Tr Σ_m, and SGD's minibatch noise has covariance Σ_m with and without replacement.

// Dense references index matrices by (i, j).
#![allow(clippy::needless_range_loop)]

use burn::prelude::*;
use burn::tensor::DType;
use noisescope_data::{DeviceDataset, Features, MinibatchSampler, Precision, Sampling, Targets};
use noisescope_models::{ActivationKind, Init, Loss, ModelSpec, Net};
use noisescope_probe::linalg::{symmetric_eigen, to_host};
use noisescope_probe::operator::materialize;
use noisescope_probe::{GaussNewton, Hessian, minibatch_scale};
use rand::SeedableRng;
use rand::distr::Distribution;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::*;

const DRAWS: usize = 20_000;

#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

struct Small {
    net: Net,
    theta: Tensor<1>,
    data: DeviceDataset,
}

/// tanh MLP 3–5–2 (D = 32) with MSE on 12 samples.
fn small() -> Small {
    let device = cpu();
    let (n, dim, classes) = (12, 3, 2);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x: Vec<f32> = (0..n * dim)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let f = Features {
        n,
        dim,
        x,
        targets: Targets::Classes {
            labels: (0..n).map(|i| (i % classes) as u32).collect(),
            classes,
        },
    };
    let net = ModelSpec::Mlp {
        widths: vec![3, 5, 2],
        activation: ActivationKind::Tanh,
        loss: Loss::Mse,
    }
    .build(&device, Precision::F64)
    .unwrap();
    let theta = Init::TorchDefault.tensor(&net.layout, 2, &device, Precision::F64);
    let data = net.adapt(DeviceDataset::upload(&f, &device, Precision::F64));
    Small { net, theta, data }
}

impl Small {
    /// Per-sample gradients [N, D] and Σ₁ [D, D] on the host.
    fn dense_sigma(&self) -> (Vec<f64>, Vec<f64>) {
        let g = self.net.per_sample_gradients(&self.theta, &self.data);
        let [n, d] = g.dims();
        let g = to_host(g);
        let mut mean = vec![0.0; d];
        for s in 0..n {
            for i in 0..d {
                mean[i] += g[s * d + i] / n as f64;
            }
        }
        let mut sigma = vec![0.0; d * d];
        for s in 0..n {
            for i in 0..d {
                for j in 0..d {
                    sigma[i * d + j] +=
                        (g[s * d + i] - mean[i]) * (g[s * d + j] - mean[j]) / n as f64;
                }
            }
        }
        (g, sigma)
    }
}

/// Rows [S, D] → the empirical second moment (mean zero known), and a check of every entry
/// against C within 5 standard errors √((C_pp C_qq + C_pq²)/S), and of the mean.
fn assert_covariance(what: &str, rows: &[f64], d: usize, c: &[f64]) {
    let s = rows.len() / d;
    let mut cov = vec![0.0; d * d];
    let mut mean = vec![0.0; d];
    for r in 0..s {
        let x = &rows[r * d..(r + 1) * d];
        for p in 0..d {
            mean[p] += x[p] / s as f64;
            for q in 0..d {
                cov[p * d + q] += x[p] * x[q] / s as f64;
            }
        }
    }
    let scale = (0..d).map(|p| c[p * d + p]).fold(0f64, f64::max);
    for p in 0..d {
        let se = (c[p * d + p] / s as f64).sqrt();
        assert!(
            mean[p].abs() <= 5.0 * se + 1e-12 * scale,
            "{what}: mean[{p}] = {}",
            mean[p]
        );
        for q in 0..d {
            let se = ((c[p * d + p] * c[q * d + q] + c[p * d + q].powi(2)) / s as f64).sqrt();
            assert!(
                (cov[p * d + q] - c[p * d + q]).abs() <= 5.0 * se + 1e-12 * scale,
                "{what}: cov[{p},{q}] = {} vs {} (se {se:e})",
                cov[p * d + q],
                c[p * d + q]
            );
        }
    }
}

/// C = Σ_j λ_j u_j u_jᵀ over the first k pairs, rescaled to trace `target`.
fn top_k_matrix(m: &[f64], d: usize, k: usize, target: f64, positive: bool) -> Vec<f64> {
    let (vals, vecs) = symmetric_eigen(m, d);
    let keep: Vec<usize> = (0..k).filter(|&j| !positive || vals[j] > 0.0).collect();
    let total: f64 = keep.iter().map(|&j| vals[j]).sum();
    let mut c = vec![0.0; d * d];
    for &j in &keep {
        let u = &vecs[j * d..(j + 1) * d];
        for p in 0..d {
            for q in 0..d {
                c[p * d + q] += vals[j] * target / total * u[p] * u[q];
            }
        }
    }
    c
}

fn trace(c: &[f64], d: usize) -> f64 {
    (0..d).map(|i| c[i * d + i]).sum()
}

#[test]
fn every_surrogate_samples_its_covariance_with_the_matched_trace() {
    let p = small();
    let d = p.net.dim();
    let (_, sigma) = p.dense_sigma();
    let (m, n) = (4, p.data.n);
    let s = minibatch_scale(n, m, Sampling::WithReplacement);
    let target = s * trace(&sigma, d);
    let h = to_host(materialize(&Hessian {
        net: &p.net,
        theta: &p.theta,
        data: &p.data,
        weight_decay: 0.0,
    }));
    let gf = to_host(materialize(&GaussNewton {
        net: &p.net,
        theta: &p.theta,
        data: &p.data,
    }));
    let sigma_m: Vec<f64> = sigma.iter().map(|v| v * s).collect();
    let iso: Vec<f64> = (0..d * d)
        .map(|ij| {
            if ij / d == ij % d {
                target / d as f64
            } else {
                0.0
            }
        })
        .collect();
    let diag: Vec<f64> = (0..d * d)
        .map(|ij| if ij / d == ij % d { sigma_m[ij] } else { 0.0 })
        .collect();
    let tr_gf = trace(&gf, d);
    let ggn: Vec<f64> = gf.iter().map(|v| v * target / tr_gf).collect();
    let cases: Vec<(Dynamic, Vec<f64>, usize)> = vec![
        (Dynamic::IsoDynamic, iso, DRAWS),
        (Dynamic::Diag, diag, DRAWS),
        (
            Dynamic::LowRank(3),
            top_k_matrix(&sigma_m, d, 3, target, false),
            DRAWS,
        ),
        (
            Dynamic::Hessian(3),
            top_k_matrix(&h, d, 3, target, true),
            DRAWS,
        ),
        (
            Dynamic::HessianTop1,
            top_k_matrix(&h, d, 1, target, true),
            DRAWS,
        ),
        // Every GGN draw is a backward pass: fewer draws, the same 5-standard-error bound.
        (Dynamic::Ggn, ggn, 4000),
    ];
    for (dynamic, c, draws) in cases {
        let cfg = NoiseConfig {
            dynamic,
            batch: m,
            sampling: Sampling::WithReplacement,
            eigensolver: EigenSolver::Lanczos {
                steps: 32,
                tol: 0.0,
                warm_start: false,
            },
            ..Default::default()
        };
        let mut sur = Surrogate::new(cfg, 0.0, 1);
        let prepared = sur.prepare(0, &p.net, &p.theta, &p.data).unwrap();
        assert!(
            (prepared.trace_c - target).abs() <= 1e-5 * target,
            "{dynamic}: Tr C {} vs Tr Σ_m {target}",
            prepared.trace_c
        );
        assert!(
            (trace(&c, d) - target).abs() <= 1e-9 * target,
            "{dynamic}: reference trace"
        );
        let mut stream = NoiseStream::new(7);
        let rows = match prepared.covariance.unwrap() {
            Covariance::Shape(shape) => {
                assert!((shape.trace() - target).abs() <= 1e-5 * target);
                to_host(shape.sample_block(&mut stream, draws, &cpu(), DType::F64))
            }
            Covariance::Ggn { .. } => (0..draws)
                .flat_map(|_| {
                    to_host(
                        sur.draw(0, &p.net, &p.theta, &p.data, &mut stream)
                            .unwrap()
                            .xi
                            .unwrap(),
                    )
                })
                .collect(),
        };
        assert_covariance(&dynamic.to_string(), &rows, d, &c);
    }
}

#[test]
fn iso_const_has_the_fixed_sigma_and_lowrank_can_skip_rescaling() {
    let p = small();
    let d = p.net.dim();
    let mut iso = Surrogate::new(
        NoiseConfig {
            dynamic: Dynamic::IsoConst,
            sigma: 0.02,
            ..Default::default()
        },
        0.0,
        0,
    );
    let pr = iso.prepare(0, &p.net, &p.theta, &p.data).unwrap();
    assert!((pr.trace_c - 0.0004 * d as f64).abs() < 1e-15);
    // Without rescaling, lowrank-k's trace is the sum of the top k eigenvalues of Σ_m.
    let (_, sigma) = p.dense_sigma();
    let s = minibatch_scale(p.data.n, 4, Sampling::Shuffle);
    let (vals, _) = symmetric_eigen(&sigma, d);
    let want: f64 = vals[..2].iter().sum::<f64>() * s;
    let mut lr = Surrogate::new(
        NoiseConfig {
            dynamic: Dynamic::LowRank(2),
            batch: 4,
            rescale: false,
            ..Default::default()
        },
        0.0,
        0,
    );
    let pr = lr.prepare(0, &p.net, &p.theta, &p.data).unwrap();
    assert!(
        (pr.trace_c - want).abs() < 1e-9 * want,
        "{} vs {want}",
        pr.trace_c
    );
    assert!(pr.trace_c < s * trace(&sigma, d));
}

#[test]
fn refresh_schedule_and_injection_on_refresh_steps_only() {
    let p = small();
    let mut sur = Surrogate::new(
        NoiseConfig {
            dynamic: Dynamic::LowRank(2),
            batch: 4,
            refresh: 3,
            inject: Injection::RefreshSteps,
            ..Default::default()
        },
        0.0,
        0,
    );
    let mut stream = NoiseStream::new(0);
    let mut theta = p.theta.clone();
    for step in 0..7u64 {
        let draw = sur
            .draw(step, &p.net, &theta, &p.data, &mut stream)
            .unwrap();
        let refresh = step % 3 == 0;
        assert_eq!(draw.xi.is_some(), refresh, "step {step}");
        assert_eq!(draw.trace_sigma_m.is_some(), refresh, "step {step}");
        theta = theta + 1e-2;
    }
    // The moment-matched dynamics follow the same cadence: Tr Σ_m (and diag Σ_m, Tr G_F) at
    // refresh steps only, the noise at every step from the covariance kept in between.
    for dynamic in [Dynamic::IsoDynamic, Dynamic::Diag, Dynamic::Ggn] {
        let mut sur = Surrogate::new(
            NoiseConfig {
                dynamic,
                batch: 4,
                refresh: 3,
                ..Default::default()
            },
            0.0,
            0,
        );
        let mut theta = p.theta.clone();
        let mut traces = Vec::new();
        for step in 0..7u64 {
            let draw = sur
                .draw(step, &p.net, &theta, &p.data, &mut stream)
                .unwrap();
            let refresh = step % 3 == 0;
            assert!(draw.xi.is_some(), "{dynamic} step {step}");
            assert_eq!(
                draw.trace_sigma_m.is_some(),
                refresh,
                "{dynamic} step {step}"
            );
            traces.push(draw.trace_c);
            theta = theta + 1e-2;
        }
        assert_eq!(traces[1], traces[0], "{dynamic}: C kept between refreshes");
        assert_eq!(traces[2], traces[0], "{dynamic}");
        assert_ne!(traces[3], traces[0], "{dynamic}: C re-estimated at step 3");
    }
}

#[test]
fn sgd_minibatch_noise_has_covariance_sigma_m() {
    let p = small();
    let d = p.net.dim();
    let (g, sigma) = p.dense_sigma();
    let n = p.data.n;
    let mean: Vec<f64> = (0..d)
        .map(|i| (0..n).map(|s| g[s * d + i]).sum::<f64>() / n as f64)
        .collect();
    let m = 4;
    for sampling in [Sampling::WithReplacement, Sampling::WithoutReplacement] {
        let scale = minibatch_scale(n, m, sampling);
        let want: Vec<f64> = sigma.iter().map(|v| v * scale).collect();
        let mut sampler = MinibatchSampler::new(n, m, sampling, 11).unwrap();
        let mut rows = Vec::with_capacity(DRAWS * d);
        for _ in 0..DRAWS {
            let batch = sampler.next_batch();
            // g_B − ḡ, with g_B the batch mean of the per-sample gradients.
            rows.extend(
                (0..d)
                    .map(|i| batch.iter().map(|&s| g[s * d + i]).sum::<f64>() / m as f64 - mean[i]),
            );
        }
        assert_covariance(&format!("sgd {sampling:?}"), &rows, d, &want);
    }
    // The batch gradient the trainer uses is the mean of the per-sample gradients.
    let idx = [3, 7, 7, 1];
    let got = to_host(p.net.gradient(&p.theta, &p.data.gather(&idx)).1);
    for i in 0..d {
        let want = idx.iter().map(|&s| g[s * d + i]).sum::<f64>() / 4.0;
        assert!((got[i] - want).abs() < 1e-12);
    }
}

#[test]
fn a_resumed_run_continues_bit_for_bit() {
    let p = small();
    for dynamic in [
        Dynamic::Sgd,
        Dynamic::LowRank(2),
        Dynamic::Diag,
        Dynamic::IsoDynamic,
        Dynamic::Ggn,
        Dynamic::Hessian(2),
    ] {
        // Hessian: warm-started Lanczos with a residual tolerance, whose start is the
        // covariance kept in the state.
        let noise = NoiseConfig {
            dynamic,
            batch: 4,
            refresh: 4,
            eigensolver: EigenSolver::Lanczos {
                steps: 12,
                tol: 1e-3,
                warm_start: true,
            },
            ..Default::default()
        };
        let opt = OptimizerConfig {
            lr: 0.05,
            momentum: 0.5,
            ..Default::default()
        };
        let fresh = || {
            Trainer::new(
                &p.net,
                &p.data,
                noise.clone(),
                opt.clone(),
                p.theta.clone(),
                10,
                3,
            )
            .unwrap()
        };
        let run = |stop: Option<u64>| -> Vec<f64> {
            let mut t = fresh();
            let mut losses = Vec::new();
            for _ in 0..10 {
                if Some(t.steps_done()) == stop {
                    let saved = t.state();
                    t = fresh();
                    t.restore(saved).unwrap();
                }
                losses.push(t.step().unwrap().loss);
            }
            losses.extend(to_host(t.theta().clone()));
            losses
        };
        assert_eq!(run(None), run(Some(6)), "{dynamic}");
    }
}

#[test]
fn divergence_names_the_step() {
    let p = small();
    let opt = OptimizerConfig {
        lr: 1e6,
        ..Default::default()
    };
    let noise = NoiseConfig::default();
    let mut t = Trainer::new(&p.net, &p.data, noise, opt, p.theta.clone(), 100, 0).unwrap();
    let err = (0..100).find_map(|_| t.step().err()).expect("diverges");
    let StepError::Diverged { step, .. } = err else {
        panic!("{err}")
    };
    assert!(err.to_string().contains(&format!("step {step}")));
    assert_eq!(t.steps_done(), step, "θ stays at the last good step");
}
